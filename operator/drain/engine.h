/*
 * drain/engine — the controller's private parts, shared by its rooms.
 *
 * Not a public header: only drain/controller.c (lifecycle, informers, the
 * watch handlers), drain/sources.c (configuration), drain/sync.c (one node's reconcile),
 * drain/dispatch.c (pacing), drain/writer.c (the one writer) and
 * drain/evict.c (eviction requests) include it.
 *
 * The data flow, one way:
 *
 *   watch event -> handler -> work queue (node name)
 *   queue batch -> sync: cache view -> drain_reconcile() -> plan
 *                  -> writer (node patch, deletes, VMI metadata, Events)
 *                  -> planner (candidates)
 *   batch end   -> dispatch: recount in flight -> planner_select()
 *                  -> writer (label, then create the migration)
 *
 * Watch handlers and the eviction entry only record facts and enqueue;
 * every write to the cluster goes through writer.c.
 */
#ifndef VMDRAIN_DRAIN_ENGINE_H
#define VMDRAIN_DRAIN_ENGINE_H

#include "drain/config.h"
#include "drain/controller.h"
#include "drain/planner.h"
#include "drain/reconcile.h"
#include "kube/informer.h"
#include "kube/workqueue.h"
#include "util/hmap.h"

#include <ev.h>
#include <stdbool.h>

#define DRAIN_NODE_KEY_MAX 254
#define DRAIN_VMI_KEY_MAX  512
/* The migrations cache's index of those in flight (its only value too). */
#define DRAIN_INDEX_IN_FLIGHT "in-flight"

/* The values of node_rt_t.ended. */
#define DRAIN_ENDED_WATCHED ((void *)1)
#define DRAIN_ENDED_FOUND   ((void *)2)

/* What the controller remembers of a node between reconciles: only what
 * paces its writes and what the watch told it, never drain state (that
 * lives on the node). */
typedef struct node_rt {
    double last_patch;
    bool patching;
    drain_state_t state; /* at the last reconcile, for the gauges */
    int blocked, pending, migrating;
    hmap_t cands; /* VMI key -> (void *)1: its candidates at the last reconcile */
    /* migration key -> DRAIN_ENDED_WATCHED or DRAIN_ENDED_FOUND: ends to
     * report, delivered by the watch or found unreported in a list (they
     * happened while vmdrain was down or did not lead) */
    hmap_t ended;
    vd_time_t started_unwritten; /* the drain start planned, until the node shows one */
    /* the node's NodeDrain: a write in flight, when the last status was
     * sent, and that status (with the uid of its object) */
    bool nd_writing;
    double last_nd_status;
    char *nd_status;
    char nd_uid[64];
} node_rt_t;

/* The newest candidate of a VMI, for creating its migration. */
typedef struct cand {
    char name[64];
    char node[DRAIN_NODE_KEY_MAX];
    int attempt;
    int failures; /* of this drain, before this attempt */
} cand_t;

/* An eviction request answered while its mark is not written yet: the
 * node's reconcile treats the VMI as marked and plans the mark. */
typedef struct evict_request {
    char node[DRAIN_NODE_KEY_MAX];
    char uid[64];
} evict_request_t;

struct drain_controller {
    struct ev_loop *loop;
    kube_http_t *http;
    char *cfg_ns, *cfg_name;
    double patch_interval;
    informer_initial_t initial; /* how the informers load the whole state */
    drain_config_t cfg;         /* in force: cm_cfg over kv_cfg (drain/sources.c) */
    drain_config_t cm_cfg;      /* the ConfigMap's last good one (defaults when none) */
    drain_config_t kv_cfg;      /* the KubeVirt CR's last good one */
    bool cfg_seen, kv_seen;
    char *kv_ns, *kv_name; /* --kubevirt; NULL when not read */
    bool taint_shared;     /* KubeVirt acts on vmdrain's taint key (last said) */

    informer_t *nodes, *vmis, *migs, *cms, *pods, *kvs, *nds;
    double records_ttl; /* seconds a finished NodeDrain record is kept */
    int synced, n_informers;
    bool ready, stopped;
    bool leading; /* this replica writes (else only the marks of its evictions) */
    workqueue_t *queue;
    planner_t *planner;
    hmap_t rt;       /* node name -> node_rt_t */
    hmap_t cands;    /* VMI key -> cand_t */
    hmap_t deleting; /* migration uid -> (void *)1: a delete sent, not yet seen */
    /* node name -> (void *)1: deleted nodes whose leftovers were reported
     * (forgotten when a node of that name is seen again) */
    hmap_t gone;
    hmap_t vmi_meta; /* "<VMI uid>/<kind>" -> (void *)1: a VMI metadata patch in flight */
    hmap_t requests; /* VMI key -> evict_request_t */
    hmap_t lookups;  /* pointer text -> struct evict_lookup: pod GETs in flight */
    char *policy_body;
    bool policy_absent;
    int writes;
    ev_timer ready_timer;
};

/* --- controller.c ---------------------------------------------------------------------- */

/* Frees a node's runtime record (not in c->rt any more). */
void drain__rt_free(node_rt_t *r);

/* Queues a node for a reconcile (no-op for NULL or "" or once stopped). */
void drain__enqueue(drain_controller_t *c, const char *node);

/* The runtime record of a node, created when absent (NULL: memory). */
node_rt_t *drain__rt_get(drain_controller_t *c, const char *node);

/* "ns/name" of an object into buf. */
const char *drain__key(const kube_obj_t *o, char *buf, size_t n);

/* True when vmdrain made the object (label vmdrain.io/managed-by). */
bool drain__is_ours(const kube_obj_t *o);

/* An informer has synced; reconciling starts when all have. */
void drain__on_synced(void *ud);

/* --- sources.c ------------------------------------------------------------------------------ */

/* The ConfigMap's and the KubeVirt CR's watch handlers. */
extern const informer_handlers_t drain__config_handlers, drain__kubevirt_handlers;

/* Registers vmdrain_kubevirt_taint_key_shared. */
void drain__sources_metrics(void);

/* This replica took the lead: it sends again the Warnings that only a
 * leader sends about what the sources hold now (InvalidConfiguration of
 * the cached ConfigMap or CR, DrainTaintShared). */
void drain__sources_lead(drain_controller_t *c);

/* Says, once all caches synced, which sources were not found. */
void drain__sources_synced(drain_controller_t *c);

/* --- sync.c ---------------------------------------------------------------------------------- */

/* The work queue's function: reconciles one node. */
void drain__sync(void *ud, const char *node);

/* The gauges of drain states, from the runtime records as the last
 * reconciles left them; the series of each node under drain only while
 * this replica leads. A metrics collector (ud: the controller), run when
 * /metrics is rendered. */
void drain__collect_gauges(void *ud);

/* Forgets the candidates of a node (its record stays). */
void drain__drop_candidates(drain_controller_t *c, node_rt_t *r, const char *node);

/* --- dispatch.c ------------------------------------------------------------------------- */

/* Recounts what is in flight from the cache, then starts what the planner
 * selects. Runs after each batch of reconciles. */
void drain__dispatch(drain_controller_t *c);

/* After a batch of the work queue. */
void drain__on_batch(void *ud);

/* --- writer.c -------------------------------------------------------------------------------- */

/* Registers the metrics the writer reports. */
void drain__writer_metrics(void);

/* Applies a plan's writes for node v->node: the node patch (coalesced),
 * its Events, the deletes (aborts recorded first), the VMI metadata, the
 * reports of finished migrations. */
void drain__write_plan(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                       const drain_plan_t *p);

/* The writes the plan asks of the node's NodeDrain (drain/record.h): its
 * record created, the finalizer, the status (coalesced like the node
 * patch), an expired record deleted. One write per node at a time. */
void drain__write_record(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                         const drain_plan_t *p);

/* A node is gone: vmdrain's record of it is deleted, and vmdrain's
 * finalizer taken off a NodeDrain of the user's (nothing is left to end). */
void drain__write_record_gone(drain_controller_t *c, const kube_nodedrain_t *nd);

/* A replica that does not lead: writes only the eviction marks of the
 * plan (through the fence), nothing else. */
void drain__write_marks(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p);

/* The plan's writes of vmdrain's metadata on VMIs (marks, labels). */
void drain__write_vmi_meta(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p);

/* --- writer_report.c ------------------------------------------------------------------------- */

/* Registers the metrics of the reports (drain__writer_metrics calls it). */
void drain__report_metrics(void);

/* Reports the end of migration m from node v->node: the Events on the
 * node and the VMI, each once, then the record on the migration; the
 * metrics. An end r->ended holds as DRAIN_ENDED_FOUND says when it was. */
void drain__write_finished(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                           const kube_migration_t *m);

/* What node v->node, deleted during its drain, left behind (the plan of
 * drain_reconcile_gone): a log line, an Event on each VMI left, the
 * metric, the marks and labels cleared. Only the leader writes. */
void drain__write_gone(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p);

/* Labels the VMI for the MigrationPolicy (when not yet), then creates the
 * migration of candidate dc from node. Returns 0, or -1 when nothing was
 * sent (the caller frees the planner slot). */
int drain__write_create(drain_controller_t *c, const drain_candidate_t *dc, const char *node,
                        const char *key, int failures);

/* An Event about obj that no node's plan carries (an invalid
 * configuration). */
void drain__write_event(drain_controller_t *c, const kube_obj_t *obj, const char *type,
                        const char *reason, const char *msg);

/* Makes the vmdrain-evacuation MigrationPolicy carry the configuration. */
void drain__write_policy(drain_controller_t *c);

/* --- evict.c --------------------------------------------------------------------------------- */

/* Answers every pending eviction lookup as not ready (shutdown). */
void drain__evict_cancel_all(drain_controller_t *c);

/* Forgets eviction requests whose mark the cache shows or that no longer
 * apply to the view's node; returns the uids still requested for the view
 * (an array owned by the caller, and its length in *n). */
const char **drain__evict_requested(drain_controller_t *c, const drain_view_t *v, size_t *n);

/* The decision message of the eviction request recorded for a VMI key the
 * first time it is asked for (its EvictionIntercepted Event is sent once,
 * however often the mark is written until the cache shows it); NULL after,
 * or when there is none. */
const char *drain__evict_announce(drain_controller_t *c, const char *vmi_key);

#endif
