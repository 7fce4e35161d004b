/*
 * drain/dispatch — pacing on the loop: what is in flight, what starts now.
 *
 * After each batch of reconciles (and when a backoff ends, or the
 * configuration changes) the in-flight migrations are recounted from the
 * cache's in-flight index (the finished ones are not walked), whoever made
 * them, by source node; candidates whose migration the
 * cache already shows leave the planner in the same pass (the planner's
 * contract in planner.h: nothing is counted twice); then the planner picks
 * what may start and the writer creates it.
 *
 * May call: drain/planner, drain/reconcile (the in-flight rule),
 * drain/writer (through engine.h), kube/informer, util/metrics, util/log.
 */
#include "drain/engine.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SELECT 64

typedef struct recount {
    drain_controller_t *c;
    hmap_t per_node; /* node -> (intptr_t) count */
    int total;
    bool failed;
} recount_t;

/* The node a migration leaves: ours say so in a label; for others the VMI
 * is still on its source node while the migration runs. */
static const char *source_of(drain_controller_t *c, const kube_migration_t *m)
{
    const char *n = kube_obj_label(&m->obj, DRAIN_LABEL_NODE);
    char key[DRAIN_VMI_KEY_MAX];

    if (n)
        return n;
    snprintf(key, sizeof(key), "%s/%s", m->obj.ns, m->vmi_name);
    const kube_vmi_t *v = kube_obj_as_vmi(informer_get(c->vmis, key));
    if (v && v->has_migration_state && v->migration.source_node[0])
        return v->migration.source_node;
    return v ? v->node_name : NULL;
}

static int count_in_flight(void *ud, const kube_obj_t *obj)
{
    recount_t *rc = ud;
    const kube_migration_t *m = kube_obj_as_migration(obj);
    char key[DRAIN_VMI_KEY_MAX];

    if (!drain_migration_in_flight(m))
        return 0;
    /* visible now: counted as observed, so no longer as started */
    snprintf(key, sizeof(key), "%s/%s", m->obj.ns, m->vmi_name);
    if (hmap_get(&rc->c->cands, key))
        planner_remove(rc->c->planner, key);
    const char *src = source_of(rc->c, m);
    if (!src)
        src = "";
    intptr_t n = (intptr_t)hmap_get(&rc->per_node, src);
    if (hmap_put(&rc->per_node, src, (void *)(n + 1), NULL) < 0)
        rc->failed = true;
    rc->total++;
    return 0;
}

/* Recounts in flight from the cache into the planner. Returns 0, or -1
 * when memory ran out (then nothing may start: the count is unknown). */
static int recount(drain_controller_t *c)
{
    recount_t rc = {.c = c};

    hmap_init(&rc.per_node);
    informer_index_foreach(c->migs, DRAIN_INDEX_IN_FLIGHT, DRAIN_INDEX_IN_FLIGHT, count_in_flight,
                           &rc);
    planner_reset_in_flight(c->planner);
    for (hmap_entry_t *e = hmap_first(&rc.per_node); e; e = hmap_next(&rc.per_node, e))
        if (planner_set_in_flight(c->planner, e->key, (int)(intptr_t)e->value) < 0)
            rc.failed = true;
    hmap_free(&rc.per_node);
    return rc.failed ? -1 : 0;
}

/* Starts one selected candidate; frees its slot when nothing was sent. */
static void start_one(drain_controller_t *c, const planner_choice_t *pick)
{
    cand_t *cd = hmap_get(&c->cands, pick->key);
    const kube_vmi_t *vmi = kube_obj_as_vmi(informer_get(c->vmis, pick->key));
    char attempt[16];

    if (!cd || !vmi) {
        planner_finished(c->planner, pick->key);
        return;
    }
    drain_candidate_t dc = {.vmi = vmi, .attempt = cd->attempt, .memory = pick->memory};
    snprintf(dc.name, sizeof(dc.name), "%s", cd->name);
    if (drain__write_create(c, &dc, cd->node, pick->key, cd->failures) < 0) {
        planner_finished(c->planner, pick->key);
        drain__enqueue(c, cd->node);
        return;
    }
    snprintf(attempt, sizeof(attempt), "%d", cd->attempt);
    log_info("creating migration", "migration", cd->name, "vmi", pick->key, "node", cd->node,
             "attempt", attempt, "why", "a pacing slot is free");
}

void drain__dispatch(drain_controller_t *c)
{
    static metrics_gauge_t *g_in_flight, *g_limit;
    static const char *const scope[] = {"scope"};
    planner_choice_t picks[MAX_SELECT];

    if (!g_in_flight) {
        g_in_flight = metrics_gauge_new(
            "migrations_in_flight", "Migrations in flight in the cluster, all creators.", 0, NULL);
        g_limit = metrics_gauge_new("migrations_limit",
                                    "The pacing limits in force: parallelMigrationsPerCluster "
                                    "(scope cluster), parallelOutboundMigrationsPerNode (node).",
                                    1, scope);
    }
    metrics_gauge_set(g_limit, c->cfg.parallel_migrations_per_cluster,
                      (const char *const[]){"cluster"});
    metrics_gauge_set(g_limit, c->cfg.parallel_outbound_per_node, (const char *const[]){"node"});
    if (c->stopped || !c->ready || !c->leading)
        return;
    if (recount(c) < 0) {
        log_error("cannot count the migrations in flight: out of memory; nothing starts now");
        return;
    }
    planner_set_limits(c->planner, c->cfg.parallel_migrations_per_cluster,
                       c->cfg.parallel_outbound_per_node);
    int n = c->cfg.live_migration_enabled
                ? planner_select(c->planner, ev_now(c->loop), picks, MAX_SELECT)
                : 0;
    for (int i = 0; i < n; i++)
        start_one(c, &picks[i]);
    metrics_gauge_set(g_in_flight, planner_in_flight(c->planner, NULL), NULL);
    double next = planner_next_ready(c->planner, ev_now(c->loop));
    if (next > 0) {
        ev_timer_stop(c->loop, &c->ready_timer);
        ev_timer_set(&c->ready_timer, next - ev_now(c->loop), 0);
        ev_timer_start(c->loop, &c->ready_timer);
    }
}

void drain__on_batch(void *ud)
{
    drain__dispatch(ud);
}
