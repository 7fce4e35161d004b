#include "drain/controller.h"
#include "drain/config.h"
#include "drain/planner.h"
#include "drain/reconcile.h"
#include "kube/informer.h"
#include "kube/workqueue.h"
#include "kube/writer.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/metrics.h"
#include "web/admission.h"
#include "web/server.h"
#include "kube/decode.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SELECT       64
#define CREATE_RETRY     5.0 /* seconds before a failed create is tried again */
#define NODE_KEY_MAX     254
#define VIEW_MAX_DEFAULT 64

/* What the controller remembers of a node between reconciles: only what
 * paces its writes, never drain state (that lives on the node). */
typedef struct node_rt {
    double last_patch;
    bool patching;
    drain_state_t state; /* at the last reconcile, for the gauges */
    int blocked;
    hmap_t cands; /* VMI key -> (void *)1: its candidates at the last reconcile */
} node_rt_t;

/* The newest candidate of a VMI, for creating its migration. */
typedef struct cand {
    char name[64];
    char node[NODE_KEY_MAX];
    int attempt;
    int failures; /* of this drain, before this attempt */
} cand_t;

struct drain_controller {
    struct ev_loop *loop;
    kube_http_t *http;
    char *cfg_ns, *cfg_name;
    double patch_interval;
    drain_config_t cfg;
    bool cfg_seen;

    informer_t *nodes, *vmis, *migs, *cms, *pods;
    int synced;
    bool ready, stopped;
    workqueue_t *queue;
    planner_t *planner;
    hmap_t rt;          /* node name -> node_rt_t */
    hmap_t cands;       /* VMI key -> cand_t */
    hmap_t deleting;    /* migration uid -> (void *)1 */
    hmap_t unlabelling; /* VMI uid -> (void *)1 */
    hmap_t unmarking;   /* VMI uid -> (void *)1 */
    char *policy_body;
    bool policy_absent;
    double policy_checked;
    int writes;
    ev_timer ready_timer;
};

static metrics_gauge_t *g_in_flight, *g_drains, *g_blocked, *g_nodes;
static metrics_counter_t *c_migrations;
static metrics_histogram_t *h_migration, *h_drain;

static void dispatch(drain_controller_t *c);
static void maybe_unlabel(drain_controller_t *c, const kube_vmi_t *vmi);
static void ensure_policy(drain_controller_t *c);
static void unmark(drain_controller_t *c, const kube_vmi_t *vmi, const char *why);

/* --- helpers ---------------------------------------------------------------------- */

static node_rt_t *rt_get(drain_controller_t *c, const char *node)
{
    node_rt_t *r = hmap_get(&c->rt, node);
    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    hmap_init(&r->cands);
    r->last_patch = -1e9;
    if (hmap_put(&c->rt, node, r, NULL) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void enqueue(drain_controller_t *c, const char *node)
{
    if (node && *node && !c->stopped)
        workqueue_add(c->queue, node);
}

static const char *vmi_node_index(const kube_obj_t *o)
{
    const kube_vmi_t *v = kube_obj_as_vmi(o);
    return v && v->node_name[0] ? v->node_name : NULL;
}

static const char *mig_vmi_index(const kube_obj_t *o)
{
    const kube_migration_t *m = kube_obj_as_migration(o);
    return m && m->vmi_name[0] ? m->vmi_name : NULL;
}

/* The source node: ours carry it as a label, KubeVirt's evacuations as an
 * annotation. */
static const char *mig_node_index(const kube_obj_t *o)
{
    const char *node = kube_obj_label(o, DRAIN_LABEL_NODE);
    return node ? node : kube_obj_annotation(o, DRAIN_ANN_EVACUATION);
}

static bool is_ours(const kube_obj_t *o)
{
    const char *v = kube_obj_label(o, DRAIN_LABEL_MANAGED_BY);
    return v && strcmp(v, "vmdrain") == 0;
}

/* The VMI a migration moves, from the cache, or NULL. */
static const kube_vmi_t *vmi_of(drain_controller_t *c, const kube_migration_t *m)
{
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", m->obj.ns, m->vmi_name);
    return kube_obj_as_vmi(informer_get(c->vmis, key));
}

/* The node a migration leaves: ours say so in a label; for others the VMI
 * is still on its source node while the migration runs. */
static const char *source_of(drain_controller_t *c, const kube_migration_t *m)
{
    const char *n = kube_obj_label(&m->obj, DRAIN_LABEL_NODE);
    if (n)
        return n;
    const kube_vmi_t *v = vmi_of(c, m);
    if (v && v->has_migration_state && v->migration.source_node[0])
        return v->migration.source_node;
    return v ? v->node_name : NULL;
}

/* --- informer handlers ---------------------------------------------------------- */

static void node_changed(void *ud, const kube_obj_t *obj)
{
    enqueue(ud, obj->name);
}

static void node_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    enqueue(ud, obj->name);
}

static void vmi_changed(void *ud, const kube_obj_t *obj)
{
    enqueue(ud, kube_obj_as_vmi(obj)->node_name);
    maybe_unlabel(ud, kube_obj_as_vmi(obj));
}

static void vmi_deleted(void *ud, const kube_obj_t *obj)
{
    enqueue(ud, kube_obj_as_vmi(obj)->node_name);
}

static void vmi_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    enqueue(ud, kube_obj_as_vmi(old)->node_name);
    enqueue(ud, kube_obj_as_vmi(obj)->node_name);
    maybe_unlabel(ud, kube_obj_as_vmi(obj));
}

static void mig_touch(drain_controller_t *c, const kube_migration_t *m)
{
    const kube_vmi_t *v = vmi_of(c, m);
    enqueue(c, mig_node_index(&m->obj)); /* the source node, ours or an evacuation's */
    if (v) {
        enqueue(c, v->node_name);
        maybe_unlabel(c, v);
    }
}

static void mig_changed(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    if (obj->deleted.sec)
        hmap_del(&c->deleting, obj->uid);
    mig_touch(c, kube_obj_as_migration(obj));
    if (c->ready)
        dispatch(c);
}

/* Reports a migration of ours that reached its end. */
static void mig_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    const kube_migration_t *m = kube_obj_as_migration(obj);
    const kube_migration_t *o = kube_obj_as_migration(old);

    if (m->phase != o->phase && is_ours(obj) &&
        (m->phase == KUBE_MIGRATION_SUCCEEDED || m->phase == KUBE_MIGRATION_FAILED)) {
        bool ok = m->phase == KUBE_MIGRATION_SUCCEEDED;
        const char *labels[] = {ok ? "succeeded" : "failed"};
        char msg[512];
        const kube_vmi_t *v = vmi_of(c, m);
        const char *node = kube_obj_label(obj, DRAIN_LABEL_NODE);
        const kube_obj_t *n = node ? informer_get(c->nodes, node) : NULL;
        snprintf(msg, sizeof(msg), "Migration %s of VMI %s/%s from node %s %s", m->obj.name,
                 m->obj.ns, m->vmi_name, node ? node : "?", ok ? "succeeded" : "failed");
        metrics_counter_add(c_migrations, 1, labels);
        if (m->phase_changed.sec)
            metrics_histogram_observe(h_migration, time_diff(m->obj.created, m->phase_changed),
                                      NULL);
        if (n)
            kube_event(c->http, n, ok ? "Normal" : "Warning",
                       ok ? "MigrationSucceeded" : "MigrationFailed", msg);
        if (v)
            kube_event(c->http, &v->obj, ok ? "Normal" : "Warning",
                       ok ? "MigrationSucceeded" : "MigrationFailed", msg);
    }
    if (obj->deleted.sec)
        hmap_del(&c->deleting, obj->uid);
    mig_touch(c, m);
    if (c->ready)
        dispatch(c);
}

static void mig_deleted(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    hmap_del(&c->deleting, obj->uid);
    mig_changed(ud, obj);
}

static int enqueue_node(void *ud, const kube_obj_t *obj)
{
    enqueue(ud, obj->name);
    return 0;
}

/* Applies a ConfigMap: all or nothing; an invalid one keeps the last good
 * configuration in force and says why. */
static void config_changed(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    const kube_configmap_t *cm = kube_obj_as_configmap(obj);
    drain_config_t next;
    char err[512], desc[768];

    if (drain_config_parse(kube_configmap_get(cm, "feature-gates"),
                           kube_configmap_get(cm, "migrations"), &next, err, sizeof(err)) < 0) {
        log_error("invalid configuration, keeping the last good one", "configmap", c->cfg_name,
                  "namespace", c->cfg_ns, "error", err);
        kube_event(c->http, obj, "Warning", "InvalidConfiguration", err);
        return;
    }
    c->cfg = next;
    c->cfg_seen = true;
    drain_config_describe(&c->cfg, desc, sizeof(desc));
    log_info("configuration applied", "configmap", c->cfg_name, "namespace", c->cfg_ns, "config",
             desc);
    if (!c->cfg.live_migration_enabled)
        log_warn("the LiveMigration feature gate is not in feature-gates: nothing will be "
                 "migrated",
                 "configmap", c->cfg_name);
    planner_set_limits(c->planner, c->cfg.parallel_migrations_per_cluster,
                       c->cfg.parallel_outbound_per_node);
    /* new limits or rules: every node is looked at again, and a raised
     * limit starts more migrations at once */
    if (c->ready) {
        ensure_policy(c);
        informer_foreach(c->nodes, enqueue_node, c);
        dispatch(c);
    }
}

static void config_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    config_changed(ud, obj);
}

static void config_deleted(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    (void)obj;
    log_warn("configuration ConfigMap deleted; the last good configuration stays", "configmap",
             c->cfg_name, "namespace", c->cfg_ns);
}

static void on_synced(void *ud)
{
    drain_controller_t *c = ud;
    if (++c->synced < 5)
        return;
    c->ready = true;
    if (!c->cfg_seen)
        log_warn("configuration ConfigMap not found: the LiveMigration feature gate counts as "
                 "off, nothing will be migrated",
                 "configmap", c->cfg_name, "namespace", c->cfg_ns);
    log_info("caches synced, reconciling", "nodes", "all");
    ensure_policy(c);
    informer_foreach(c->nodes, enqueue_node, c);
}

/* --- writes --------------------------------------------------------------------------- */

typedef struct write_ctx {
    drain_controller_t *c;
    char node[NODE_KEY_MAX];
    char key[512];
    char uid[64];
    /* a migration to delete once the VMI's abort record is written */
    char mig_ns[254], mig_name[254];
    char *body;   /* a migration to create once the VMI is labelled */
    int failures; /* for a created migration: earlier failed attempts */
} write_ctx_t;

static write_ctx_t *wctx(drain_controller_t *c, const char *node, const char *key)
{
    write_ctx_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->c = c;
    snprintf(w->node, sizeof(w->node), "%s", node ? node : "");
    snprintf(w->key, sizeof(w->key), "%s", key ? key : "");
    c->writes++;
    return w;
}

static void wdone(write_ctx_t *w)
{
    w->c->writes--;
    free(w->body);
    free(w);
}

static void on_patched(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    drain_controller_t *c = w->c;
    node_rt_t *r = hmap_get(&c->rt, w->node);

    if (r) {
        r->patching = false;
        r->last_patch = ev_now(c->loop);
    }
    if (res->error) {
        if (res->status == 409)
            log_debug("node changed under the patch, reconciling again", "node", w->node);
        else
            log_error("node patch failed", "node", w->node, "error", res->error);
        if (!c->stopped)
            workqueue_add_rate_limited(c->queue, w->node);
    } else if (!c->stopped) {
        workqueue_forget(c->queue, w->node);
    }
    wdone(w);
}

static void on_deleted(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    /* on success the mark stays until the watch shows the deletion, so a
     * reconcile in between cannot abort the same migration twice */
    if (res->error && res->status != 404) {
        hmap_del(&w->c->deleting, w->uid);
        log_error("migration delete failed", "migration", w->key, "error", res->error);
    }
    enqueue(w->c, w->node);
    wdone(w);
}

static void on_created(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    drain_controller_t *c = w->c;

    if (res->error && res->status != 409) {
        log_error("migration create failed, retrying", "vmi", w->key, "node", w->node, "error",
                  res->error);
        if (!c->stopped) {
            planner_finished(c->planner, w->key);
            workqueue_add_after(c->queue, w->node, CREATE_RETRY);
        }
    } else if (!res->error) {
        const kube_obj_t *n = informer_get(c->nodes, w->node);
        const kube_obj_t *v = informer_get(c->vmis, w->key);
        char msg[1024];
        snprintf(msg, sizeof(msg), "Migration %s created for VMI %s leaving node %s", w->uid,
                 w->key, w->node);
        if (n)
            kube_event(c->http, n, "Normal", "MigrationCreated", msg);
        if (v)
            kube_event(c->http, v, "Normal", "MigrationCreated", msg);
        if (w->failures > 0) {
            snprintf(msg, sizeof(msg),
                     "Retrying VMI %s leaving node %s after %d failed attempt(s) of %d: "
                     "migration %s",
                     w->key, w->node, w->failures, c->cfg.max_migration_attempts, w->uid);
            if (n)
                kube_event(c->http, n, "Normal", "MigrationRetry", msg);
            if (v)
                kube_event(c->http, v, "Normal", "MigrationRetry", msg);
        }
    }
    wdone(w);
}

/* --- reconcile ------------------------------------------------------------------------ */

typedef struct collect {
    const kube_obj_t **items;
    size_t n, cap;
    const char *ns; /* filter, or NULL */
} collect_t;

static int collect_one(void *ud, const kube_obj_t *obj)
{
    collect_t *col = ud;
    if (col->ns && strcmp(obj->ns, col->ns) != 0)
        return 0;
    for (size_t i = 0; i < col->n; i++)
        if (col->items[i] == obj)
            return 0;
    if (col->n == col->cap) {
        size_t cap = col->cap ? col->cap * 2 : VIEW_MAX_DEFAULT;
        const kube_obj_t **p = realloc(col->items, cap * sizeof(*p));
        if (!p)
            return 1;
        col->items = p;
        col->cap = cap;
    }
    col->items[col->n++] = obj;
    return 0;
}

/* Sends the node patch unless one is in flight or the last was too recent
 * (writes are coalesced: at most one per node per patch_interval). Events
 * go out with the patch that records the state they announce. */
static void apply_node(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                       const drain_plan_t *p)
{
    const char *name = v->node->obj.name;
    char *patch = NULL;
    double wait = r->last_patch + c->patch_interval - ev_now(c->loop);

    if (drain_node_patch(v, p, &patch) <= 0)
        return;
    if (r->patching || wait > 0) {
        if (!r->patching)
            workqueue_add_after(c->queue, name, wait);
        free(patch);
        return;
    }
    if (p->state == DRAIN_STATE_DRAINED && p->observed != DRAIN_STATE_DRAINED) {
        vd_time_t started;
        if (time_parse_rfc3339(p->started_at, &started, NULL, 0) == 0)
            metrics_histogram_observe(h_drain, time_diff(started, v->now), NULL);
    }
    if (p->state != p->observed)
        log_info("drain state", "node", name, "from", drain_state_name(p->observed), "to",
                 drain_state_name(p->state), "progress", p->progress, "why", p->message);
    if (p->cordon > 0)
        log_info("cordoning node", "node", name, "why", "drain taint present");
    else if (p->cordon < 0)
        log_info("uncordoning node", "node", name, "why",
                 "vmdrain cordoned it and the drain ended");
    write_ctx_t *w = wctx(c, name, NULL);
    if (w && kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_NODE), NULL, name, NULL,
                        KUBE_MERGE_PATCH, patch, on_patched, w)) {
        r->patching = true;
        for (size_t i = 0; i < p->n_events; i++) {
            const drain_event_t *e = &p->events[i];
            kube_event(c->http, &v->node->obj, e->type, e->reason, e->message);
            if (e->vmi)
                kube_event(c->http, &e->vmi->obj, e->type, e->reason, e->message);
        }
    } else if (w) {
        wdone(w);
    }
    free(patch);
}

/* Sends the DELETE of the migration w names. */
static void send_delete(write_ctx_t *w)
{
    if (!kube_delete(w->c->http, kube_resource_of_kind(KUBE_KIND_MIGRATION), w->mig_ns, w->mig_name,
                     w->uid, on_deleted, w)) {
        hmap_del(&w->c->deleting, w->uid);
        wdone(w);
    }
}

/* The VMI now records the abort: the attempt counts even after the
 * migration object is gone, so the delete may go. */
static void on_abort_recorded(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (res->error) {
        log_error("cannot record the abort on the VMI; the migration is kept for now", "vmi",
                  w->key, "migration", w->mig_name, "error", res->error);
        hmap_del(&w->c->deleting, w->uid);
        enqueue(w->c, w->node);
        wdone(w);
        return;
    }
    send_delete(w);
}

/* Deletes what the plan says: queued migrations of a drain that ended, and
 * aborted ones (whose abort is first recorded on the VMI). */
static void apply_deletes(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p)
{
    for (size_t i = 0; i < p->n_deletes; i++) {
        const drain_delete_t *d = &p->deletes[i];
        const kube_migration_t *m = d->mig;
        if (hmap_get(&c->deleting, m->obj.uid))
            continue;
        char key[512], msg[1024];
        snprintf(key, sizeof(key), "%s/%s", m->obj.ns, m->vmi_name);
        snprintf(msg, sizeof(msg), "Migration %s of VMI %s/%s %s: %s", m->obj.name, m->obj.ns,
                 m->vmi_name, d->vmi ? "aborted" : "deleted", d->reason);
        write_ctx_t *w = wctx(c, v->node->obj.name, key);
        if (!w)
            continue;
        snprintf(w->uid, sizeof(w->uid), "%s", m->obj.uid);
        snprintf(w->mig_ns, sizeof(w->mig_ns), "%s", m->obj.ns);
        snprintf(w->mig_name, sizeof(w->mig_name), "%s", m->obj.name);
        hmap_put(&c->deleting, m->obj.uid, (void *)1, NULL);
        log_info(d->vmi ? "aborting migration" : "deleting migration", "migration", m->obj.name,
                 "vmi", key, "why", d->reason);
        kube_event(c->http, &v->node->obj, "Warning", "MigrationAborted", msg);
        if (!d->vmi) {
            send_delete(w);
            continue;
        }
        kube_event(c->http, &d->vmi->obj, "Warning", "MigrationAborted", msg);
        char *patch = NULL;
        if (drain_annotation_patch(DRAIN_ANN_ABORTED, d->record, &patch) < 0 ||
            !kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), d->vmi->obj.ns,
                        d->vmi->obj.name, NULL, KUBE_MERGE_PATCH, patch, on_abort_recorded, w)) {
            hmap_del(&c->deleting, m->obj.uid);
            wdone(w);
        }
        free(patch);
    }
}

/* Hands the plan's candidates to the planner and takes back those that are
 * no longer candidates. */
static void apply_candidates(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                             const drain_plan_t *p)
{
    hmap_t now;
    vd_time_t started = v->now;
    const char *node = v->node->obj.name;

    time_parse_rfc3339(p->started_at, &started, NULL, 0);
    hmap_init(&now);
    for (size_t i = 0; i < p->n_candidates; i++) {
        const drain_candidate_t *d = &p->candidates[i];
        char key[512];
        snprintf(key, sizeof(key), "%s/%s", d->vmi->obj.ns, d->vmi->obj.name);
        cand_t *cd = hmap_get(&c->cands, key);
        if (!cd) {
            cd = calloc(1, sizeof(*cd));
            if (!cd || hmap_put(&c->cands, key, cd, NULL) < 0) {
                free(cd);
                continue;
            }
        }
        snprintf(cd->name, sizeof(cd->name), "%s", d->name);
        snprintf(cd->node, sizeof(cd->node), "%s", node);
        cd->attempt = d->attempt;
        cd->failures = d->failures;
        planner_candidate_t pc = {
            .key = key,
            .uid = d->vmi->obj.uid,
            .node = node,
            .memory = d->memory,
            .seq = (uint64_t)d->vmi->obj.created.sec * 1000000000ULL +
                   (uint64_t)d->vmi->obj.created.nsec,
            .not_before = 0,
            .drain_start = (double)started.sec,
        };
        planner_add(c->planner, &pc);
        hmap_put(&now, key, (void *)1, NULL);
    }
    for (hmap_entry_t *e = hmap_first(&r->cands), *next; e; e = next) {
        next = hmap_next(&r->cands, e);
        if (!hmap_get(&now, e->key)) {
            planner_remove(c->planner, e->key);
            free(hmap_del(&c->cands, e->key));
        }
    }
    hmap_free(&r->cands);
    r->cands = now;
}

static void update_gauges(drain_controller_t *c)
{
    int by_state[DRAIN_STATE_COMPLETED + 1] = {0}, blocked = 0;
    for (hmap_entry_t *e = hmap_first(&c->rt); e; e = hmap_next(&c->rt, e)) {
        const node_rt_t *r = e->value;
        if (r->state >= 0 && r->state <= DRAIN_STATE_COMPLETED)
            by_state[r->state]++;
        blocked += r->blocked;
    }
    metrics_gauge_set(g_drains, by_state[DRAIN_STATE_DRAINING], NULL);
    metrics_gauge_set(g_blocked, blocked, NULL);
    for (int s = DRAIN_STATE_DRAINING; s <= DRAIN_STATE_COMPLETED; s++) {
        const char *const values[] = {drain_state_label((drain_state_t)s)};
        metrics_gauge_set(g_nodes, by_state[s], values);
    }
}

static void reconcile(void *ud, const char *name)
{
    drain_controller_t *c = ud;
    collect_t vmis = {0}, migs = {0};
    drain_plan_t plan;

    if (c->stopped)
        return;
    if (!c->ready) {
        workqueue_add_after(c->queue, name, 1.0);
        return;
    }
    const kube_node_t *node = kube_obj_as_node(informer_get(c->nodes, name));
    node_rt_t *r = rt_get(c, name);
    if (!r)
        return;
    if (!node) {
        for (hmap_entry_t *e = hmap_first(&r->cands); e; e = hmap_next(&r->cands, e)) {
            planner_remove(c->planner, e->key);
            free(hmap_del(&c->cands, e->key));
        }
        hmap_free(&r->cands);
        if (!r->patching) {
            hmap_del(&c->rt, name);
            free(r);
        }
        return;
    }
    informer_index_foreach(c->vmis, "node", name, collect_one, &vmis);
    informer_index_foreach(c->migs, "node", name, collect_one, &migs);
    for (size_t i = 0; i < vmis.n; i++) {
        migs.ns = vmis.items[i]->ns;
        informer_index_foreach(c->migs, "vmi", vmis.items[i]->name, collect_one, &migs);
    }
    drain_view_t v = {
        .cfg = &c->cfg,
        .now = {(int64_t)ev_now(c->loop), 0},
        .node = node,
        .vmis = (const kube_vmi_t *const *)vmis.items,
        .n_vmis = vmis.n,
        .migs = (const kube_migration_t *const *)migs.items,
        .n_migs = migs.n,
    };
    if (drain_reconcile(&v, &plan) == 0) {
        r->state = plan.state;
        r->blocked = plan.blocked;
        update_gauges(c);
        apply_node(c, r, &v, &plan);
        apply_deletes(c, &v, &plan);
        apply_candidates(c, r, &v, &plan);
        for (size_t i = 0; i < plan.n_unmark; i++)
            unmark(c, plan.unmark[i], "the node was uncordoned without a drain taint");
        if (plan.requeue_after > 0)
            workqueue_add_after(c->queue, name, plan.requeue_after + 0.05);
        drain_plan_free(&plan);
    } else {
        log_error("reconcile failed: out of memory", "node", name);
        workqueue_add_rate_limited(c->queue, name);
    }
    free(vmis.items);
    free(migs.items);
    dispatch(c);
}

/* --- the evacuation label and the MigrationPolicy ---------------------------------- */

static void send_create(write_ctx_t *w, const char *ns)
{
    if (!kube_create(w->c->http, kube_resource_of_kind(KUBE_KIND_MIGRATION), ns, w->body,
                     on_created, w)) {
        planner_finished(w->c->planner, w->key);
        wdone(w);
    }
}

static void on_labelled(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (res->error) {
        log_error("cannot label the VMI before its migration, retrying", "vmi", w->key, "error",
                  res->error);
        if (!w->c->stopped) {
            planner_finished(w->c->planner, w->key);
            workqueue_add_after(w->c->queue, w->node, CREATE_RETRY);
        }
        wdone(w);
        return;
    }
    send_create(w, w->mig_ns);
}

/* Labels the VMI vmdrain.io/evacuating=true (so that the vmdrain-evacuation
 * MigrationPolicy applies to its migration), then creates the migration. */
static int label_then_create(drain_controller_t *c, write_ctx_t *w, const kube_vmi_t *vmi)
{
    const char *cur = kube_obj_label(&vmi->obj, DRAIN_LABEL_EVACUATING);
    char *patch = NULL;

    snprintf(w->mig_ns, sizeof(w->mig_ns), "%s", vmi->obj.ns);
    if (cur && strcmp(cur, "true") == 0) {
        send_create(w, vmi->obj.ns);
        return 0;
    }
    if (drain_label_patch(DRAIN_LABEL_EVACUATING, "true", &patch) < 0)
        return -1;
    kube_req_t *r = kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), vmi->obj.ns,
                               vmi->obj.name, NULL, KUBE_MERGE_PATCH, patch, on_labelled, w);
    free(patch);
    return r ? 0 : -1;
}

typedef struct flight_check {
    const char *ns;
    bool in_flight;
} flight_check_t;

static int any_in_flight(void *ud, const kube_obj_t *obj)
{
    flight_check_t *f = ud;
    if (strcmp(obj->ns, f->ns) == 0 && drain_migration_in_flight(kube_obj_as_migration(obj)))
        f->in_flight = true;
    return f->in_flight;
}

static void on_unlabelled(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    hmap_del(&w->c->unlabelling, w->uid);
    if (res->error && res->status != 404)
        log_warn("cannot remove the evacuation label", "vmi", w->key, "error", res->error);
    wdone(w);
}

static void on_unmarked(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    hmap_del(&w->c->unmarking, w->uid);
    if (res->error && res->status != 404)
        log_warn("cannot remove the evacuation mark", "vmi", w->key, "error", res->error);
    wdone(w);
}

/* Removes the eviction mark vmdrain.io/evacuate-from from a VMI. */
static void unmark(drain_controller_t *c, const kube_vmi_t *vmi, const char *why)
{
    char key[512], *patch = NULL;

    if (c->stopped || hmap_get(&c->unmarking, vmi->obj.uid))
        return;
    snprintf(key, sizeof(key), "%s/%s", vmi->obj.ns, vmi->obj.name);
    write_ctx_t *w = wctx(c, vmi->node_name, key);
    if (!w)
        return;
    snprintf(w->uid, sizeof(w->uid), "%s", vmi->obj.uid);
    if (drain_annotation_patch(DRAIN_ANN_EVACUATE_FROM, NULL, &patch) < 0 ||
        !kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), vmi->obj.ns, vmi->obj.name, NULL,
                    KUBE_MERGE_PATCH, patch, on_unmarked, w)) {
        wdone(w);
    } else {
        hmap_put(&c->unmarking, vmi->obj.uid, (void *)1, NULL);
        log_info("clearing the eviction mark", "vmi", key, "why", why);
    }
    free(patch);
}

/* Removes vmdrain.io/evacuating from a VMI that no longer migrates, and the
 * eviction mark from a VMI that has left the node it named. */
static void maybe_unlabel(drain_controller_t *c, const kube_vmi_t *vmi)
{
    const char *from = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
    if (from && c->ready && vmi->node_name[0] && strcmp(from, vmi->node_name) != 0)
        unmark(c, vmi, "the VMI left the node");
    char key[512], *patch = NULL;
    flight_check_t f = {.ns = vmi->obj.ns};

    if (c->stopped || !c->ready || !kube_obj_label(&vmi->obj, DRAIN_LABEL_EVACUATING) ||
        hmap_get(&c->unlabelling, vmi->obj.uid))
        return;
    snprintf(key, sizeof(key), "%s/%s", vmi->obj.ns, vmi->obj.name);
    /* still a candidate: its migration may be on its way (created, or just
     * labelled for), and the cache has not shown it yet */
    if (hmap_get(&c->cands, key))
        return;
    informer_index_foreach(c->migs, "vmi", vmi->obj.name, any_in_flight, &f);
    if (f.in_flight)
        return;
    write_ctx_t *w = wctx(c, vmi->node_name, key);
    if (!w)
        return;
    snprintf(w->uid, sizeof(w->uid), "%s", vmi->obj.uid);
    if (drain_label_patch(DRAIN_LABEL_EVACUATING, NULL, &patch) < 0 ||
        !kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), vmi->obj.ns, vmi->obj.name, NULL,
                    KUBE_MERGE_PATCH, patch, on_unlabelled, w)) {
        wdone(w);
    } else {
        hmap_put(&c->unlabelling, vmi->obj.uid, (void *)1, NULL);
    }
    free(patch);
}

static void on_policy_created(void *ud, const kube_result_t *res)
{
    drain_controller_t *c = ud;
    c->writes--;
    if (res->error && res->status == 404) {
        if (!c->policy_absent)
            log_warn("the MigrationPolicy API (migrations.kubevirt.io/v1alpha1) is absent: "
                     "migrations run with KubeVirt's own bandwidth settings");
        c->policy_absent = true;
    } else if (res->error && res->status != 409) {
        log_error("cannot create the MigrationPolicy", "name", DRAIN_POLICY_NAME, "error",
                  res->error);
    } else if (!res->error) {
        log_info("MigrationPolicy created", "name", DRAIN_POLICY_NAME);
    }
}

static void on_policy_patched(void *ud, const kube_result_t *res)
{
    drain_controller_t *c = ud;
    if (res->error && res->status == 404 && c->policy_body) {
        /* absent: create it (c->writes stays counted for the create) */
        if (kube_create(c->http, kube_resource_of_kind(KUBE_KIND_MIGRATION_POLICY), NULL,
                        c->policy_body, on_policy_created, c))
            return;
    } else if (res->error) {
        log_error("cannot update the MigrationPolicy", "name", DRAIN_POLICY_NAME, "error",
                  res->error);
    }
    c->writes--;
}

/* Makes the vmdrain-evacuation MigrationPolicy carry the configured
 * bandwidth and completion timeout. */
static void ensure_policy(drain_controller_t *c)
{
    char bw[32];
    const kube_resource_t *r = kube_resource_of_kind(KUBE_KIND_MIGRATION_POLICY);

    if (c->stopped || c->policy_absent)
        return;
    if (c->cfg.bandwidth_per_migration % (1 << 20) == 0)
        snprintf(bw, sizeof(bw), "%lldMi", (long long)(c->cfg.bandwidth_per_migration >> 20));
    else
        snprintf(bw, sizeof(bw), "%lld", (long long)c->cfg.bandwidth_per_migration);
    free(c->policy_body);
    c->policy_body = NULL;
    if (drain_policy_body(DRAIN_POLICY_NAME, c->cfg.bandwidth_per_migration ? bw : NULL,
                          c->cfg.completion_timeout_per_gib, &c->policy_body) < 0)
        return;
    c->writes++;
    if (!kube_patch(c->http, r, NULL, DRAIN_POLICY_NAME, NULL, KUBE_MERGE_PATCH, c->policy_body,
                    on_policy_patched, c))
        c->writes--;
    c->policy_checked = ev_now(c->loop);
}

/* --- dispatch ----------------------------------------------------------------------- */

typedef struct recount {
    drain_controller_t *c;
    hmap_t per_node; /* node -> (intptr_t) count */
    int total;
} recount_t;

static int count_in_flight(void *ud, const kube_obj_t *obj)
{
    recount_t *rc = ud;
    const kube_migration_t *m = kube_obj_as_migration(obj);
    if (!drain_migration_in_flight(m))
        return 0;
    const char *src = source_of(rc->c, m);
    if (!src)
        src = "";
    intptr_t n = (intptr_t)hmap_get(&rc->per_node, src);
    hmap_put(&rc->per_node, src, (void *)(n + 1), NULL);
    rc->total++;
    return 0;
}

/* Recounts what is in flight from the cache, then starts what the planner
 * selects. Runs after every reconcile and every migration event, so a
 * freed slot is used at once. */
static void dispatch(drain_controller_t *c)
{
    planner_choice_t picks[MAX_SELECT];
    recount_t rc = {.c = c};

    if (c->stopped || !c->ready)
        return;
    hmap_init(&rc.per_node);
    informer_foreach(c->migs, count_in_flight, &rc);
    planner_reset_in_flight(c->planner);
    for (hmap_entry_t *e = hmap_first(&rc.per_node); e; e = hmap_next(&rc.per_node, e))
        planner_set_in_flight(c->planner, e->key, (int)(intptr_t)e->value);
    hmap_free(&rc.per_node);
    planner_set_limits(c->planner, c->cfg.parallel_migrations_per_cluster,
                       c->cfg.parallel_outbound_per_node);
    int n = c->cfg.live_migration_enabled
                ? planner_select(c->planner, ev_now(c->loop), picks, MAX_SELECT)
                : 0;
    for (int i = 0; i < n; i++) {
        cand_t *cd = hmap_get(&c->cands, picks[i].key);
        const kube_vmi_t *vmi = kube_obj_as_vmi(informer_get(c->vmis, picks[i].key));
        if (!cd || !vmi) {
            planner_finished(c->planner, picks[i].key);
            continue;
        }
        drain_candidate_t dc = {.vmi = vmi, .attempt = cd->attempt, .memory = picks[i].memory};
        snprintf(dc.name, sizeof(dc.name), "%s", cd->name);
        write_ctx_t *w = wctx(c, cd->node, picks[i].key);
        if (!w || drain_migration_body(&dc, cd->node, &w->body) < 0 ||
            label_then_create(c, w, vmi) < 0) {
            if (w)
                wdone(w);
            planner_finished(c->planner, picks[i].key);
            continue;
        }
        snprintf(w->uid, sizeof(w->uid), "%s", cd->name);
        w->failures = cd->failures;
        char attempt[16];
        snprintf(attempt, sizeof(attempt), "%d", cd->attempt);
        log_info("creating migration", "migration", cd->name, "vmi", picks[i].key, "node", cd->node,
                 "attempt", attempt, "why", "a pacing slot is free");
    }
    metrics_gauge_set(g_in_flight, planner_in_flight(c->planner, NULL), NULL);
    double next = planner_next_ready(c->planner, ev_now(c->loop));
    if (next > 0) {
        ev_timer_stop(c->loop, &c->ready_timer);
        ev_timer_set(&c->ready_timer, next - ev_now(c->loop), 0);
        ev_timer_start(c->loop, &c->ready_timer);
    }
}

static void on_ready_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    dispatch(w->data);
}

/* --- lifecycle ------------------------------------------------------------------------ */

static informer_t *make_informer(drain_controller_t *c, kube_kind_t kind, const char *ns,
                                 const char *field_selector, const informer_handlers_t *h)
{
    informer_opts_t o = {
        .resource = kube_resource_of_kind(kind), .ns = ns, .field_selector = field_selector};
    return informer_new(c->http, c->loop, &o, h, c);
}

drain_controller_t *drain_controller_new(struct ev_loop *loop, kube_http_t *http,
                                         const drain_controller_opts_t *opts)
{
    static const char *const result_label[] = {"result"}, *const state_label[] = {"state"};
    drain_controller_t *c = calloc(1, sizeof(*c));
    char selector[320];

    if (!c)
        return NULL;
    if (!g_in_flight) {
        g_in_flight = metrics_gauge_new(
            "migrations_in_flight", "Migrations in flight in the cluster, all creators.", 0, NULL);
        g_drains = metrics_gauge_new("drains_in_progress", "Nodes in state Draining.", 0, NULL);
        g_nodes = metrics_gauge_new("drain_nodes",
                                    "Nodes by drain state (their vmdrain.io/state annotation).", 1,
                                    state_label);
        g_blocked =
            metrics_gauge_new("vmis_blocked", "VMIs that cannot leave a draining node.", 0, NULL);
        c_migrations = metrics_counter_new(
            "migrations_total", "Migrations of vmdrain's that ended, by result.", 1, result_label);
        static const double mig_buckets[] = {5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};
        static const double drain_buckets[] = {30,   60,   120,  300,  600,
                                               1200, 1800, 3600, 7200, 14400};
        h_migration = metrics_histogram_new(
            "migration_duration_seconds",
            "Time from the creation of a migration of vmdrain's to its end, success or failure.",
            (int)(sizeof(mig_buckets) / sizeof(mig_buckets[0])), mig_buckets, 0, NULL);
        h_drain = metrics_histogram_new(
            "drain_duration_seconds", "Time from a drain's start to the state Drained.",
            (int)(sizeof(drain_buckets) / sizeof(drain_buckets[0])), drain_buckets, 0, NULL);
    }
    c->loop = loop;
    c->http = http;
    c->cfg_ns = strdup(opts->config_ns);
    c->cfg_name = strdup(opts->config_name);
    c->patch_interval = opts->patch_interval > 0 ? opts->patch_interval : 1.0;
    drain_config_defaults(&c->cfg);
    hmap_init(&c->rt);
    hmap_init(&c->cands);
    hmap_init(&c->deleting);
    hmap_init(&c->unlabelling);
    hmap_init(&c->unmarking);
    ev_init(&c->ready_timer, on_ready_timer);
    c->ready_timer.data = c;
    c->queue = workqueue_new(loop, reconcile, c, 0.5, 60);
    c->planner = planner_new(PLANNER_DEFAULT_ORDER);

    informer_handlers_t hn = {.on_add = node_changed,
                              .on_update = node_updated,
                              .on_delete = node_changed,
                              .on_synced = on_synced};
    informer_handlers_t hv = {.on_add = vmi_changed,
                              .on_update = vmi_updated,
                              .on_delete = vmi_deleted,
                              .on_synced = on_synced};
    informer_handlers_t hm = {.on_add = mig_changed,
                              .on_update = mig_updated,
                              .on_delete = mig_deleted,
                              .on_synced = on_synced};
    informer_handlers_t hc = {.on_add = config_changed,
                              .on_update = config_updated,
                              .on_delete = config_deleted,
                              .on_synced = on_synced};
    snprintf(selector, sizeof(selector), "metadata.name=%s", opts->config_name);
    c->nodes = make_informer(c, KUBE_KIND_NODE, NULL, NULL, &hn);
    c->vmis = make_informer(c, KUBE_KIND_VMI, NULL, NULL, &hv);
    c->migs = make_informer(c, KUBE_KIND_MIGRATION, NULL, NULL, &hm);
    c->cms = make_informer(c, KUBE_KIND_CONFIGMAP, opts->config_ns, selector, &hc);
    informer_handlers_t hp = {.on_synced = on_synced};
    informer_opts_t po = {.resource = kube_resource_of_kind(KUBE_KIND_POD),
                          .label_selector = "kubevirt.io=virt-launcher"};
    c->pods = informer_new(c->http, c->loop, &po, &hp, c);
    if (!c->cfg_ns || !c->cfg_name || !c->queue || !c->planner || !c->nodes || !c->vmis ||
        !c->migs || !c->cms || !c->pods ||
        informer_add_index(c->vmis, "node", vmi_node_index) < 0 ||
        informer_add_index(c->migs, "vmi", mig_vmi_index) < 0 ||
        informer_add_index(c->migs, "node", mig_node_index) < 0) {
        drain_controller_free(c);
        return NULL;
    }
    return c;
}

void drain_controller_start(drain_controller_t *c)
{
    informer_start(c->cms);
    informer_start(c->nodes);
    informer_start(c->vmis);
    informer_start(c->migs);
    informer_start(c->pods);
}

bool drain_controller_ready(const drain_controller_t *c)
{
    return c->ready && !c->stopped;
}

int drain_controller_pending_writes(const drain_controller_t *c)
{
    return c->writes;
}

int drain_controller_stop(drain_controller_t *c)
{
    if (!c->stopped) {
        c->stopped = true;
        ev_timer_stop(c->loop, &c->ready_timer);
        informer_free(c->nodes);
        informer_free(c->vmis);
        informer_free(c->migs);
        informer_free(c->cms);
        informer_free(c->pods);
        c->nodes = c->vmis = c->migs = c->cms = c->pods = NULL;
    }
    return c->writes;
}

void drain_controller_free(drain_controller_t *c)
{
    if (!c)
        return;
    drain_controller_stop(c);
    workqueue_free(c->queue);
    planner_free(c->planner);
    for (hmap_entry_t *e = hmap_first(&c->rt); e; e = hmap_next(&c->rt, e)) {
        node_rt_t *r = e->value;
        hmap_free(&r->cands);
        free(r);
    }
    hmap_free(&c->rt);
    for (hmap_entry_t *e = hmap_first(&c->cands); e; e = hmap_next(&c->cands, e))
        free(e->value);
    hmap_free(&c->cands);
    hmap_free(&c->deleting);
    hmap_free(&c->unlabelling);
    hmap_free(&c->unmarking);
    free(c->policy_body);
    free(c->cfg_ns);
    free(c->cfg_name);
    free(c);
}

/* --- the eviction webhook --------------------------------------------------------- */

typedef struct eviction {
    drain_controller_t *c;
    web_request_t *req;
    admission_request_t rq;
} eviction_t;

static void on_marked(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (res->error)
        log_error("cannot mark the VMI for evacuation", "vmi", w->key, "error", res->error);
    else
        enqueue(w->c, w->node);
    wdone(w);
}

/* Applies the decision's effects: the mark on the VMI (which makes the
 * node's reconcile evacuate it, paced like any drain) and the Events. */
static void apply_effects(drain_controller_t *c, const admission_result_t *res,
                          const kube_vmi_t *vmi)
{
    char key[512], *patch = NULL;

    if (!vmi || !(res->effects & (ADMISSION_EFFECT_MARK | ADMISSION_EFFECT_BLOCKED)))
        return;
    enqueue(c, res->node);
    const char *cur = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
    if (cur && strcmp(cur, res->node) == 0)
        return; /* marked already: kubectl retries every 5 s */
    snprintf(key, sizeof(key), "%s/%s", vmi->obj.ns, vmi->obj.name);
    kube_event(c->http, &vmi->obj, "Normal", "EvictionIntercepted", res->message);
    const kube_obj_t *node = informer_get(c->nodes, res->node);
    if (node)
        kube_event(c->http, node, "Normal", "EvictionIntercepted", res->message);
    write_ctx_t *w = wctx(c, res->node, key);
    if (!w)
        return;
    if (drain_annotation_patch(DRAIN_ANN_EVACUATE_FROM, res->node, &patch) < 0 ||
        !kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), vmi->obj.ns, vmi->obj.name, NULL,
                    KUBE_MERGE_PATCH, patch, on_marked, w))
        wdone(w);
    free(patch);
}

static int collect_migs(void *ud, const kube_obj_t *obj)
{
    return collect_one(ud, obj);
}

/* Decides with pod (cached, looked up, or NULL) and answers. */
static void decide_and_answer(eviction_t *e, const kube_pod_t *pod, bool looked_up, bool failed)
{
    drain_controller_t *c = e->c;
    admission_input_t in = {.pod = pod, .pod_looked_up = looked_up, .lookup_failed = failed};
    admission_result_t res;
    collect_t migs = {0};
    const kube_vmi_t *vmi = NULL;

    if (pod) {
        const char *name = admission_pod_vmi_name(pod);
        if (name) {
            char key[512];
            snprintf(key, sizeof(key), "%s/%s", pod->obj.ns, name);
            vmi = kube_obj_as_vmi(informer_get(c->vmis, key));
        }
        if (vmi) {
            migs.ns = vmi->obj.ns;
            informer_index_foreach(c->migs, "vmi", vmi->obj.name, collect_migs, &migs);
        }
    }
    in.vmi = vmi;
    in.migs = (const kube_migration_t *const *)migs.items;
    in.n_migs = migs.n;
    in.default_strategy = c->cfg.eviction_strategy;
    in.live_migration_gate = c->cfg.live_migration_enabled;
    admission_decide(&e->rq, &in, &res);
    if (res.decision == ADMISSION_NEED_LOOKUP) {
        /* cannot happen after a lookup; deny rather than loop */
        res.allowed = false;
        res.code = 429;
    }
    apply_effects(c, &res, vmi);
    log_info("eviction", "pod", e->rq.name, "namespace", e->rq.ns, "user", e->rq.username,
             "decision", res.label, "dry_run", e->rq.dry_run ? "true" : "false", "message",
             res.message);
    admission_respond(e->req, e->rq.uid, &res);
    free(migs.items);
}

static void on_pod_fetched(void *ud, const kube_result_t *res)
{
    eviction_t *e = ud;
    kube_obj_t *obj = NULL;
    bool failed = false;

    e->c->writes--;
    if (!res->error) {
        char err[256];
        obj = kube_decode_one(KUBE_KIND_POD, res->body, res->body_len, err, sizeof(err));
        failed = !obj;
    } else if (res->status != 404) {
        failed = true;
    }
    decide_and_answer(e, kube_obj_as_pod(obj), true, failed);
    kube_obj_free(obj);
    free(e);
}

void drain_controller_eviction(web_request_t *req, void *ud)
{
    drain_controller_t *c = ud;
    size_t len;
    const char *body = web_request_body(req, &len);
    char err[256], key[512];
    eviction_t *e = calloc(1, sizeof(*e));

    if (!e) {
        web_respond_text(req, 500, "out of memory");
        return;
    }
    e->c = c;
    e->req = req;
    if (!c->ready || c->stopped) {
        /* failurePolicy Fail turns this into a denied eviction: no VM is
         * lost while vmdrain cannot decide */
        web_respond_text(req, 503, "vmdrain is not ready: its caches are not synced");
        free(e);
        return;
    }
    if (admission_decode(body, len, &e->rq, err, sizeof(err)) < 0) {
        web_respond_text(req, 400, err);
        free(e);
        return;
    }
    snprintf(key, sizeof(key), "%s/%s", e->rq.ns, e->rq.name);
    const kube_pod_t *pod = c->pods ? kube_obj_as_pod(informer_get(c->pods, key)) : NULL;
    if (pod) {
        decide_and_answer(e, pod, false, false);
        free(e);
        return;
    }
    /* not cached (yet): ask the server */
    buf_t path;
    buf_init(&path, 1024);
    kube_resource_path(kube_resource_of_kind(KUBE_KIND_POD), e->rq.ns, e->rq.name, NULL, &path);
    kube_req_opts_t o = {.method = "GET",
                         .path = path.data,
                         .on_done = on_pod_fetched,
                         .ud = e,
                         .verb = "get",
                         .timeout = 5};
    c->writes++;
    if (!kube_http_request(c->http, &o)) {
        c->writes--;
        decide_and_answer(e, NULL, true, true);
        free(e);
    }
    buf_free(&path);
}
