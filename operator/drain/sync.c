/*
 * drain/sync — one node's reconcile, as the work queue runs it.
 *
 * Collects the view of the node from the caches (its VMIs, the migrations
 * that concern them, the eviction requests not yet written, the ends the
 * watch delivered), calls drain_reconcile(), hands the plan's writes to
 * the writer and its candidates to the planner. Starting migrations is
 * drain/dispatch.c's, after the batch.
 *
 * May call: drain/reconcile, drain/record (the capacity targets),
 * drain/planner, drain/writer (through engine.h), kube/informer,
 * util/hmap, util/metrics, util/log.
 */
#include "drain/engine.h"
#include "drain/gone.h"
#include "drain/record.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_MAX_DEFAULT 64

typedef struct collect {
    const kube_obj_t **items;
    size_t n, cap;
    const char *ns; /* filter, or NULL */
    bool failed;    /* memory ran out */
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
        if (!p) {
            col->failed = true;
            return 1;
        }
        col->items = p;
        col->cap = cap;
    }
    col->items[col->n++] = obj;
    return 0;
}

void drain__drop_candidates(drain_controller_t *c, node_rt_t *r, const char *node)
{
    for (hmap_entry_t *e = hmap_first(&r->cands); e; e = hmap_next(&r->cands, e)) {
        cand_t *cd = hmap_get(&c->cands, e->key);
        /* a VMI that moved on is another node's candidate now: keep it */
        if (cd && strcmp(cd->node, node) == 0) {
            planner_remove(c->planner, e->key);
            free(hmap_del(&c->cands, e->key));
        }
    }
    hmap_free(&r->cands);
    hmap_init(&r->cands);
}

/* Records one candidate for dispatch and queues it in the planner.
 * Returns 0, or -1 when memory ran out (nothing recorded). */
static int take_candidate(drain_controller_t *c, const drain_candidate_t *d, const char *node,
                          double drain_start, hmap_t *now)
{
    char key[DRAIN_VMI_KEY_MAX];
    cand_t *cd;

    drain__key(&d->vmi->obj, key, sizeof(key));
    cd = hmap_get(&c->cands, key);
    if (!cd) {
        cd = calloc(1, sizeof(*cd));
        if (!cd || hmap_put(&c->cands, key, cd, NULL) < 0) {
            free(cd);
            return -1;
        }
    }
    if (hmap_put(now, key, (void *)1, NULL) < 0)
        return -1;
    snprintf(cd->name, sizeof(cd->name), "%s", d->name);
    snprintf(cd->node, sizeof(cd->node), "%s", node);
    cd->attempt = d->attempt;
    cd->failures = d->failures;
    planner_candidate_t pc = {
        .key = key,
        .uid = d->vmi->obj.uid,
        .node = node,
        .memory = d->memory,
        .seq =
            (uint64_t)d->vmi->obj.created.sec * 1000000000ULL + (uint64_t)d->vmi->obj.created.nsec,
        .not_before = 0,
        .drain_start = drain_start,
    };
    planner_add(c->planner, &pc);
    return 0;
}

/* Hands the plan's candidates to the planner and takes back those of this
 * node that are no longer candidates. Returns 0, or -1 when memory ran
 * out: then nothing is taken back, and the caller retries. */
static int apply_candidates(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                            const drain_plan_t *p)
{
    hmap_t now;
    vd_time_t started = v->now;
    const char *node = v->node->obj.name;

    time_parse_rfc3339(p->started_at, &started, NULL, 0);
    hmap_init(&now);
    for (size_t i = 0; i < p->n_candidates; i++) {
        if (take_candidate(c, &p->candidates[i], node, (double)started.sec, &now) < 0) {
            /* keep every old expectation; merge the new ones in */
            for (hmap_entry_t *e = hmap_first(&now); e; e = hmap_next(&now, e))
                hmap_put(&r->cands, e->key, (void *)1, NULL);
            hmap_free(&now);
            return -1;
        }
    }
    for (hmap_entry_t *e = hmap_first(&r->cands); e; e = hmap_next(&r->cands, e)) {
        cand_t *cd = hmap_get(&c->cands, e->key);
        if (!hmap_get(&now, e->key) && cd && strcmp(cd->node, node) == 0) {
            planner_remove(c->planner, e->key);
            free(hmap_del(&c->cands, e->key));
        }
    }
    hmap_free(&r->cands);
    r->cands = now;
    return 0;
}

/* The series of each node under drain: its state (1), its queued and in
 * flight migrations. Every series is set again, so a node whose drain
 * ended (or a replica that stopped leading) leaves none behind. */
static void update_node_gauges(drain_controller_t *c)
{
    static metrics_gauge_t *g_state, *g_queued, *g_flying;
    static const char *const state_labels[] = {"node", "state"}, *const node_label[] = {"node"};

    if (!g_state) {
        g_state = metrics_gauge_new(
            "node_drain_state",
            "1 for each node under drain, labelled with its drain state (lower case).", 2,
            state_labels);
        g_queued = metrics_gauge_new("node_migrations_queued",
                                     "VMIs of a node's drain waiting for their migration (the "
                                     "node's vmdrain.io/pending).",
                                     1, node_label);
        g_flying = metrics_gauge_new("node_migrations_in_flight",
                                     "Migrations in flight leaving a node under drain, all "
                                     "creators (the node's vmdrain.io/migrating).",
                                     1, node_label);
    }
    metrics_gauge_clear(g_state);
    metrics_gauge_clear(g_queued);
    metrics_gauge_clear(g_flying);
    for (hmap_entry_t *e = c->leading ? hmap_first(&c->rt) : NULL; e; e = hmap_next(&c->rt, e)) {
        const node_rt_t *r = e->value;
        if (!drain_state_active(r->state))
            continue;
        metrics_gauge_set(g_state, 1, (const char *const[]){e->key, drain_state_label(r->state)});
        metrics_gauge_set(g_queued, r->pending, (const char *const[]){e->key});
        metrics_gauge_set(g_flying, r->migrating, (const char *const[]){e->key});
    }
}

/* A collector (metrics_add_collector): the gauges are counted over the
 * nodes when /metrics is scraped, so that a reconcile costs the same on a
 * cluster of any size. */
void drain__collect_gauges(void *ud)
{
    drain_controller_t *c = ud;
    static metrics_gauge_t *g_drains, *g_blocked, *g_nodes;
    static const char *const state_label[] = {"state"};
    int by_state[DRAIN_STATE_COMPLETED + 1] = {0}, blocked = 0;

    if (!g_drains) {
        g_drains = metrics_gauge_new("drains_in_progress", "Nodes in state Draining.", 0, NULL);
        g_nodes = metrics_gauge_new("drain_nodes",
                                    "Nodes by drain state (their vmdrain.io/state annotation).", 1,
                                    state_label);
        g_blocked =
            metrics_gauge_new("vmis_blocked", "VMIs that cannot leave a draining node.", 0, NULL);
    }
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
    update_node_gauges(c);
}

/* A node that is gone: what its drain leaves behind is reported and
 * vmdrain's marks on those VMIs cleared (drain/gone.h), its candidates and
 * records are dropped, and so is its NodeDrain record
 * (drain__write_record_gone). vmis and migs are the view's. */
static void node_gone(drain_controller_t *c, node_rt_t *r, const char *name, const collect_t *vmis,
                      const collect_t *migs)
{
    const kube_nodedrain_t *nd = kube_obj_as_nodedrain(informer_get(c->nds, name));
    kube_node_t stand_in = {0};
    drain_plan_t plan;

    stand_in.obj = (kube_obj_t){.kind = KUBE_KIND_NODE, .name = name, .ns = "", .uid = ""};
    drain_view_t v = {.cfg = &c->cfg,
                      .now = {(int64_t)ev_now(c->loop), 0},
                      .node = &stand_in,
                      .vmis = (const kube_vmi_t *const *)vmis->items,
                      .n_vmis = vmis->n,
                      .migs = (const kube_migration_t *const *)migs->items,
                      .n_migs = migs->n};
    if (c->leading && !vmis->failed && !migs->failed && !hmap_get(&c->gone, name)) {
        if (drain_reconcile_gone(&v, drain_gone_was_draining(r->state, nd), &plan) < 0) {
            log_error("out of memory: a deleted node's VMIs go unreported", "node", name);
        } else {
            drain__write_gone(c, &v, &plan);
            if (plan.total > 0 && hmap_put(&c->gone, name, (void *)1, NULL) < 0)
                log_debug("out of memory: a deleted node may be reported again", "node", name);
        }
        drain_plan_free(&plan);
    }
    drain__drop_candidates(c, r, name);
    hmap_free(&r->ended);
    hmap_init(&r->ended);
    if (nd && c->leading)
        drain__write_record_gone(c, nd);
    if (!r->patching) {
        hmap_del(&c->rt, name);
        drain__rt_free(r);
    }
}

/* The unreported ends of migrations from this node, from the cache; the
 * records of migrations gone or reported (by another replica) are dropped.
 * The leader forgets the rest once the plan is written. */
static void take_ended(drain_controller_t *c, node_rt_t *r, collect_t *out)
{
    hmap_entry_t *e = hmap_first(&r->ended);
    while (e) {
        const kube_obj_t *m = informer_get(c->migs, e->key);
        hmap_entry_t *next = hmap_next(&r->ended, e);
        if (m && drain_mig_unreported(kube_obj_as_migration(m)))
            collect_one(out, m);
        else
            hmap_del(&r->ended, e->key);
        e = next;
    }
}

/* --- the capacity check's targets ------------------------------------------------------ */

typedef struct targets {
    drain_controller_t *c;
    const char *self;
    drain_target_t *items;
    size_t n, cap;
    bool done, failed;
} targets_t;

static int add_request(void *ud, const kube_obj_t *obj)
{
    const kube_pod_t *pod = kube_obj_as_pod(obj);
    int64_t *sum = ud;
    if (pod && pod->phase != KUBE_POD_SUCCEEDED && pod->phase != KUBE_POD_FAILED)
        *sum = pod->memory_request > INT64_MAX - *sum ? INT64_MAX : *sum + pod->memory_request;
    return 0;
}

/* A target of the capacity check (drain_capacity_target), other than the
 * node drained. */
static int add_target(void *ud, const kube_obj_t *obj)
{
    targets_t *t = ud;
    const kube_node_t *n = kube_obj_as_node(obj);

    if (strcmp(obj->name, t->self) == 0 || !drain_capacity_target(n, &t->c->cfg))
        return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        drain_target_t *p = realloc(t->items, cap * sizeof(*p));
        if (!p) {
            t->failed = true;
            return 1;
        }
        t->items = p;
        t->cap = cap;
    }
    drain_target_t *d = &t->items[t->n++];
    *d = (drain_target_t){.name = obj->name, .allocatable = n->allocatable_memory};
    /* the launcher pods vmdrain caches: on a node of VMs they hold the
     * memory (other pods' requests are not seen) */
    informer_index_foreach(t->c->pods, "node", obj->name, add_request, &d->requested);
    return 0;
}

/* The view's targets: collected the first time the capacity check asks
 * (a Draining plan with pending VMIs), kept for the rest of the reconcile;
 * NULL when memory ran out (the check is skipped). */
static const drain_target_t *collect_targets(void *ud, size_t *n)
{
    targets_t *t = ud;

    if (!t->done) {
        t->done = true;
        informer_foreach(t->c->nodes, add_target, t);
        /* no target at all is a verdict too */
        if (!t->failed && !t->items && !(t->items = malloc(sizeof(*t->items))))
            t->failed = true;
    }
    *n = t->n;
    return t->failed ? NULL : t->items;
}

/* Reconciles with the view collected; returns 0, or -1 to retry later. */
static int reconcile_view(drain_controller_t *c, node_rt_t *r, drain_view_t *v)
{
    drain_plan_t plan;
    const char *name = v->node->obj.name;

    if (drain_reconcile(v, &plan) < 0)
        return -1;
    if (plan.bad_numbers)
        log_warn("numbers that vmdrain did not write were ignored", "node", name, "object",
                 plan.bad_number);
    if (!c->leading) { /* the leader writes the rest, and reports the ends:
                          they are kept for a lead this replica may take */
        drain__write_marks(c, v, &plan);
        drain_plan_free(&plan);
        return 0;
    }
    r->state = plan.state;
    r->blocked = plan.blocked;
    r->pending = plan.pending;
    r->migrating = plan.migrating;
    /* a start the node does not show yet is kept until it does */
    r->started_unwritten = (vd_time_t){0, 0};
    if (plan.started_at[0] && !kube_obj_annotation(&v->node->obj, DRAIN_ANN_STARTED_AT))
        time_parse_rfc3339(plan.started_at, &r->started_unwritten, NULL, 0);
    int rc = apply_candidates(c, r, v, &plan);
    drain__write_plan(c, r, v, &plan);
    drain__write_record(c, r, v, &plan);
    hmap_free(&r->ended); /* reported: each end once */
    hmap_init(&r->ended);
    if (plan.requeue_after > 0)
        workqueue_add_after(c->queue, name, plan.requeue_after + 0.05);
    drain_plan_free(&plan);
    return rc;
}

void drain__sync(void *ud, const char *name)
{
    drain_controller_t *c = ud;
    collect_t vmis = {0}, migs = {0}, ended = {0};
    size_t n_req = 0;

    if (c->stopped)
        return;
    if (!c->ready) {
        workqueue_add_after(c->queue, name, 1.0);
        return;
    }
    const kube_node_t *node = kube_obj_as_node(informer_get(c->nodes, name));
    node_rt_t *r = drain__rt_get(c, name);
    if (!r) {
        workqueue_add_rate_limited(c->queue, name);
        return;
    }
    informer_index_foreach(c->vmis, "node", name, collect_one, &vmis);
    informer_index_foreach(c->migs, "node", name, collect_one, &migs);
    for (size_t i = 0; i < vmis.n; i++) {
        migs.ns = vmis.items[i]->ns;
        informer_index_foreach(c->migs, "vmi", vmis.items[i]->name, collect_one, &migs);
    }
    if (!node) {
        node_gone(c, r, name, &vmis, &migs);
        free(vmis.items);
        free(migs.items);
        return;
    }
    hmap_del(&c->gone, name);
    take_ended(c, r, &ended);
    drain_view_t v = {
        .cfg = &c->cfg,
        .now = {(int64_t)ev_now(c->loop), 0},
        .node = node,
        .vmis = (const kube_vmi_t *const *)vmis.items,
        .n_vmis = vmis.n,
        .migs = (const kube_migration_t *const *)migs.items,
        .n_migs = migs.n,
        .ended = (const kube_migration_t *const *)ended.items,
        .n_ended = ended.n,
        .started_unwritten = r->started_unwritten,
        .nodedrain = kube_obj_as_nodedrain(informer_get(c->nds, name)),
        .records_ttl = c->records_ttl,
    };
    targets_t targets = {.c = c, .self = name};
    v.targets = collect_targets;
    v.targets_ud = &targets;
    const char **req = drain__evict_requested(c, &v, &n_req);
    v.requested = req;
    v.n_requested = req ? n_req : 0;
    if (vmis.failed || migs.failed || ended.failed || (n_req && !req) ||
        reconcile_view(c, r, &v) < 0) {
        log_error("reconcile failed: out of memory", "node", name);
        workqueue_add_rate_limited(c->queue, name);
    }
    free(req);
    free(targets.items);
    free(vmis.items);
    free(migs.items);
    free(ended.items);
}
