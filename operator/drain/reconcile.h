/*
 * reconcile — the node drain state machine, as a pure function.
 *
 * drain_reconcile() looks at one node as the caches show it (the node, the
 * VMIs on it, the migrations that concern them) and computes the plan: the
 * node's desired cordon, taints, annotations and label, the migrations to
 * start (candidates for the planner) and to delete, and the Events that
 * mark state changes. It remembers nothing between calls: everything it
 * needs is in the cluster (docs/architecture.md, "State"), so it can run
 * again at any time and a restarted vmdrain computes the same plan. It does
 * no I/O; the controller's writer (drain/writer.c) applies the plan, and
 * drain/bodies.c turns it into JSON.
 *
 * May call: drain/config, kube/objects, util/timefmt, util/num.
 */
#ifndef VMDRAIN_DRAIN_RECONCILE_H
#define VMDRAIN_DRAIN_RECONCILE_H

#include "drain/capacity.h"
#include "drain/config.h"
#include "kube/objects.h"
#include "util/timefmt.h"

#include <stdbool.h>
#include <stddef.h>

/* Annotation and label names (docs/architecture.md, "Names"). */
#define DRAIN_ANN_PREFIX        "vmdrain.io/"
#define DRAIN_ANN_STATE         "vmdrain.io/state"
#define DRAIN_ANN_PROGRESS      "vmdrain.io/progress"
#define DRAIN_ANN_MIGRATING     "vmdrain.io/migrating"
#define DRAIN_ANN_PENDING       "vmdrain.io/pending"
#define DRAIN_ANN_FAILED        "vmdrain.io/failed"
#define DRAIN_ANN_BLOCKED       "vmdrain.io/blocked"
#define DRAIN_ANN_STARTED_AT    "vmdrain.io/started-at"
#define DRAIN_ANN_COMPLETED_AT  "vmdrain.io/completed-at"
#define DRAIN_ANN_MESSAGE       "vmdrain.io/message"
#define DRAIN_ANN_CORDONED_BY   "vmdrain.io/cordoned-by"
#define DRAIN_ANN_TRIGGER       "vmdrain.io/trigger" /* "taint", "eviction" or "nodedrain" */
#define DRAIN_LABEL_STATE       "vmdrain.io/state"
#define DRAIN_LABEL_MANAGED_BY  "vmdrain.io/managed-by"
#define DRAIN_LABEL_NODE        "vmdrain.io/node"
#define DRAIN_LABEL_VMI_UID     "vmdrain.io/vmi-uid"
#define DRAIN_ANN_EVACUATION    "kubevirt.io/evacuationMigration"
#define DRAIN_ANN_EVACUATE_FROM "vmdrain.io/evacuate-from"
/* On a VMI: the migrations vmdrain aborted, "node/name@unix-seconds,...",
 * so that attempts survive the deletion of their migration objects. */
#define DRAIN_ANN_ABORTED "vmdrain.io/aborted"
/* On a migration of vmdrain's: its end was reported (the Events on the
 * node and the VMI were sent), "Succeeded" or "Failed". */
#define DRAIN_ANN_REPORTED     "vmdrain.io/reported"
#define DRAIN_LABEL_EVACUATING "vmdrain.io/evacuating"
/* The MigrationPolicy vmdrain owns: it selects VMIs labelled
 * DRAIN_LABEL_EVACUATING=true and carries the configured bandwidth. */
#define DRAIN_POLICY_NAME "vmdrain-evacuation"
/* Entries kept in DRAIN_ANN_ABORTED (the oldest are dropped). */
#define DRAIN_ABORTED_MAX 16

/* Highest attempt number read from a migration's name or an abort record;
 * larger ones are not numbers vmdrain wrote, and are ignored. */
#define DRAIN_ATTEMPT_MAX 1000000

/* Longest value written to the blocked annotation. */
#define DRAIN_BLOCKED_MAX 1024

typedef enum drain_state {
    DRAIN_STATE_NONE, /* never drained, or the annotation is absent */
    DRAIN_STATE_DRAINING,
    DRAIN_STATE_DRAINED,
    DRAIN_STATE_BLOCKED,
    DRAIN_STATE_FAILED,
    DRAIN_STATE_CANCELLED,
    DRAIN_STATE_COMPLETED,
} drain_state_t;

/* "Draining", ...; "" for NONE. */
const char *drain_state_name(drain_state_t s);
/* "draining", ...: the vmdrain.io/state label; "" for NONE. */
const char *drain_state_label(drain_state_t s);
drain_state_t drain_state_parse(const char *s);
/* A drain is under way in these states: Draining, Drained, Blocked, Failed. */
bool drain_state_active(drain_state_t s);

/* What the reconciler sees of one node. The arrays are borrowed. */
typedef struct drain_view {
    const drain_config_t *cfg;
    vd_time_t now;
    const kube_node_t *node;
    const kube_vmi_t *const *vmis; /* status.nodeName == node */
    size_t n_vmis;
    /* every migration whose VMI is in vmis, and every migration labelled
     * vmdrain.io/node=<node> or, not ours, annotated
     * kubevirt.io/evacuationMigration=<node> (a migration appears once only) */
    const kube_migration_t *const *migs;
    size_t n_migs;
    /* uids of VMIs of this node whose eviction request was answered and
     * whose vmdrain.io/evacuate-from mark is not written yet */
    const char *const *requested;
    size_t n_requested;
    /* migrations from this node whose end (Succeeded or Failed) the watch
     * delivered since the last reconcile, or that a list showed ended and
     * not reported (vmdrain was down or did not lead) */
    const kube_migration_t *const *ended;
    size_t n_ended;
    /* the start of this drain as an earlier plan of this replica set it,
     * while the node does not show it yet (its patch failed or is on its
     * way); {0, 0} when none. The drain keeps that start (migrations made
     * since count) and its DrainStarted Event is not sent again. */
    vd_time_t started_unwritten;
    /* the NodeDrain named after the node, or NULL (drain/record.h) */
    const kube_nodedrain_t *nodedrain;
    /* seconds a finished NodeDrain record of vmdrain's is kept */
    double records_ttl;
    /* the nodes that could take this node's VMIs (drain/capacity.h): asked
     * for only when the capacity check runs (a Draining plan), with
     * targets_ud; NULL, or a NULL answer: no check */
    const drain_target_t *(*targets)(void *ud, size_t *n);
    void *targets_ud;
} drain_view_t;

/* A VMI ready for its next migration attempt. */
typedef struct drain_candidate {
    const kube_vmi_t *vmi;
    int attempt;    /* 1 for the first */
    int failures;   /* failed attempts of this drain before this one */
    int64_t memory; /* guest memory, else the request, bytes */
    char name[64];  /* the migration's name: vmdrain-<uid8>-<attempt> */
} drain_candidate_t;

typedef struct drain_delete {
    const kube_migration_t *mig;
    const kube_vmi_t *vmi; /* for an abort: the VMI whose record grows, else NULL */
    char reason[160];
    /* why, as vmdrain_migration_aborts_total counts it: one of
     * DRAIN_ABORT_REASONS (static) */
    const char *abort_reason;
    /* for an abort: the new value of the VMI's DRAIN_ANN_ABORTED, to be
     * written before the delete is sent */
    char record[DRAIN_ABORTED_MAX * 96];
} drain_delete_t;

/* The reasons of vmdrain_migration_aborts_total: a timeout of the
 * migration (drain/reconcile's check_timeouts), or the drain ended before
 * it started running. */
#define DRAIN_ABORT_PROGRESS_TIMEOUT   "progress_timeout"
#define DRAIN_ABORT_COMPLETION_TIMEOUT "completion_timeout"
#define DRAIN_ABORT_DRAIN_CANCELLED    "drain_cancelled"
#define DRAIN_ABORT_REASONS                                                                        \
    {                                                                                              \
        DRAIN_ABORT_PROGRESS_TIMEOUT, DRAIN_ABORT_COMPLETION_TIMEOUT, DRAIN_ABORT_DRAIN_CANCELLED  \
    }

typedef struct drain_event {
    const char *reason; /* DrainStarted, ... */
    const char *type;   /* "Normal" or "Warning" */
    char message[512];
    const kube_vmi_t *vmi; /* also recorded on this VMI, or NULL */
} drain_event_t;

#define DRAIN_MAX_EVENTS 8

/* Where one VMI of the drain stands (a NodeDrain's status.vmis). */
typedef enum drain_vmi_state {
    DRAIN_VMI_PENDING,
    DRAIN_VMI_MIGRATING,
    DRAIN_VMI_FAILED,
    DRAIN_VMI_BLOCKED,
    DRAIN_VMI_BY_KUBEVIRT, /* KubeVirt's own evacuation moves it */
} drain_vmi_state_t;

typedef struct drain_vmi_entry {
    const kube_vmi_t *vmi;
    drain_vmi_state_t state;
    int attempts;                /* of vmdrain's, this drain */
    const kube_migration_t *mig; /* the migration in flight, or NULL */
    const char *reason;          /* why it is blocked or failed; "" */
} drain_vmi_entry_t;

/* A write of vmdrain's own metadata on a VMI. */
typedef enum drain_vmi_write_kind {
    DRAIN_VMI_MARK,    /* set vmdrain.io/evacuate-from=<node> (an eviction request) */
    DRAIN_VMI_UNMARK,  /* remove vmdrain.io/evacuate-from */
    DRAIN_VMI_UNLABEL, /* remove vmdrain.io/evacuating (no migration in flight) */
} drain_vmi_write_kind_t;

typedef struct drain_vmi_write {
    const kube_vmi_t *vmi;
    drain_vmi_write_kind_t kind;
    const char *why; /* static, for the log */
} drain_vmi_write_t;

typedef struct drain_plan {
    bool tainted;   /* the drain taint is on the node */
    bool evicting;  /* no taint, but evictions marked VMIs of this cordoned node */
    bool requested; /* a NodeDrain of the user's asks for the drain */
    drain_state_t observed;
    drain_state_t state;

    /* node writes, each only when it changes something */
    int cordon;        /* +1 cordon, -1 uncordon, 0 leave */
    bool remove_taint; /* uncordonPolicy OnCompletion */
    bool annotations_changed;
    char progress[32];
    int migrated, total, migrating, pending, failed, blocked;
    /* of pending: VMIs KubeVirt's own controllers migrate for this drain
     * (drain_kubevirt_moves), which vmdrain only waits for */
    int by_kubevirt;
    int settling; /* counted in migrated, but the cache still shows the VMI here */
    char blocked_list[DRAIN_BLOCKED_MAX + 1];
    char failed_list[DRAIN_BLOCKED_MAX + 1]; /* "ns/name,..." */
    char started_at[TIME_RFC3339_MAX];
    char completed_at[TIME_RFC3339_MAX];
    char message[256];
    const char *cordoned_by; /* "vmdrain", or NULL to remove */
    /* "taint", "nodedrain", "eviction", or NULL to keep what the node says */
    const char *trigger;

    drain_candidate_t *candidates; /* owned by the plan */
    size_t n_candidates;
    drain_delete_t *deletes; /* owned by the plan */
    size_t n_deletes;
    drain_event_t events[DRAIN_MAX_EVENTS];
    size_t n_events;
    drain_vmi_write_t *vmi_writes; /* owned by the plan */
    size_t n_vmi_writes;
    /* the VMIs of the drain still on the node (owned array) */
    drain_vmi_entry_t *entries;
    size_t n_entries;
    /* migrations of ours whose end is to be reported (owned array) */
    const kube_migration_t **finished;
    size_t n_finished;

    /* numbers read from the cluster that were not numbers vmdrain wrote
     * (ignored; the caller logs them), and the object of the last one */
    int bad_numbers;
    char bad_number[320];

    double requeue_after; /* seconds until a backoff ends; 0 for none */

    /* the VMIs still to move do not fit on the other nodes (the view's
     * targets), and what the check said */
    bool short_of_capacity;
    char capacity[256];
} drain_plan_t;

/* Computes the plan for v. Returns 0, or -1 when memory runs out. The
 * caller releases the plan with drain_plan_free(). */
int drain_reconcile(const drain_view_t *v, drain_plan_t *out);
void drain_plan_free(drain_plan_t *p);

/* The strategy the drain applies to a VMI: its own, else the cluster
 * default; External counts as LiveMigrate under evacuateExternal. */
kube_eviction_strategy_t drain_vmi_strategy(const kube_vmi_t *vmi, const drain_config_t *cfg);

/* True when a migration is still running or waiting to run: not Succeeded
 * and not Failed. A migration being deleted is still in flight (KubeVirt
 * aborts it first). The one rule used by the webhook, the reconciler and
 * the pacing recount. */
bool drain_migration_in_flight(const kube_migration_t *m);

#endif
