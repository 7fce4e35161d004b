/*
 * drain/dryrun — see dryrun.h: the reconciler's verdict on each planned
 * node as if it were tainted, the moves on the planner's virtual clock,
 * and the capacity check over the nodes outside the plan.
 */
#include "drain/dryrun.h"
#include "drain/planner.h"
#include "drain/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *drain_dryrun_kind_name(drain_dryrun_kind_t k)
{
    static const char *const names[] = {"move",    "kubevirt", "migrating",
                                        "blocked", "failed",   "left"};
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "";
}

static drain_dryrun_vmi_t *push_vmi(drain_dryrun_t *d, size_t *cap)
{
    if (d->n_vmis == *cap) {
        size_t n = *cap ? *cap * 2 : 32;
        drain_dryrun_vmi_t *p = realloc(d->vmis, n * sizeof(*p));
        if (!p)
            return NULL;
        d->vmis = p;
        *cap = n;
    }
    drain_dryrun_vmi_t *v = &d->vmis[d->n_vmis++];
    memset(v, 0, sizeof(*v));
    v->reason = "";
    return v;
}

/* Why a VMI the drain does not move is left where it is. */
static const char *left_reason(const kube_vmi_t *vmi, const drain_config_t *cfg)
{
    switch (drain_vmi_strategy(vmi, cfg)) {
    case KUBE_EVICTION_NONE:
        return "evictionStrategy None: it stays; an eviction (kubectl drain) stops it";
    case KUBE_EVICTION_EXTERNAL:
        return "evictionStrategy External: left to the component that handles External";
    case KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE:
        return "LiveMigrateIfPossible but not live-migratable: an eviction stops it";
    default:
        return "an evictionStrategy vmdrain does not handle";
    }
}

static drain_dryrun_kind_t kind_of(drain_vmi_state_t s)
{
    switch (s) {
    case DRAIN_VMI_MIGRATING:
        return DRAIN_DRYRUN_MIGRATING;
    case DRAIN_VMI_FAILED:
        return DRAIN_DRYRUN_FAILED;
    case DRAIN_VMI_BLOCKED:
        return DRAIN_DRYRUN_BLOCKED;
    case DRAIN_VMI_BY_KUBEVIRT:
        return DRAIN_DRYRUN_KUBEVIRT;
    default:
        return DRAIN_DRYRUN_MOVE;
    }
}

static bool in_plan(const kube_vmi_t *vmi, const drain_plan_t *p)
{
    for (size_t i = 0; i < p->n_entries; i++)
        if (p->entries[i].vmi == vmi)
            return true;
    return false;
}

/* Adds the node's VMIs, as the plan sorted them, and those it left. */
static int take_plan(const drain_dryrun_in_t *in, const kube_vmi_t *const *vmis, size_t n,
                     const drain_plan_t *p, drain_dryrun_t *d, size_t *cap)
{
    drain_dryrun_node_t *nd = &d->nodes[d->n_nodes - 1];
    for (size_t i = 0; i < p->n_entries; i++) {
        const drain_vmi_entry_t *e = &p->entries[i];
        drain_dryrun_vmi_t *v = push_vmi(d, cap);
        if (!v)
            return -1;
        v->vmi = e->vmi;
        v->node = nd->name;
        v->kind = kind_of(e->state);
        v->memory = drain_vmi_memory(e->vmi);
        v->need = drain_vmi_need(e->vmi);
        v->reason = e->reason ? e->reason : "";
        nd->moves += v->kind == DRAIN_DRYRUN_MOVE || v->kind == DRAIN_DRYRUN_KUBEVIRT;
        nd->migrating += v->kind == DRAIN_DRYRUN_MIGRATING;
        nd->blocked += v->kind == DRAIN_DRYRUN_BLOCKED;
        nd->failed += v->kind == DRAIN_DRYRUN_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        if (vmis[i]->phase != KUBE_VMI_RUNNING || vmis[i]->obj.deleted.sec || in_plan(vmis[i], p))
            continue;
        drain_dryrun_vmi_t *v = push_vmi(d, cap);
        if (!v)
            return -1;
        *v = (drain_dryrun_vmi_t){.vmi = vmis[i],
                                  .node = nd->name,
                                  .kind = DRAIN_DRYRUN_LEFT,
                                  .memory = drain_vmi_memory(vmis[i]),
                                  .need = drain_vmi_need(vmis[i]),
                                  .reason = left_reason(vmis[i], in->cfg)};
        nd->left++;
    }
    return 0;
}

/* A migration that concerns one of vmis, or says it is from node. */
static bool mig_concerns(const kube_migration_t *m, const char *node, const kube_vmi_t *const *vmis,
                         size_t n)
{
    const char *from = drain_mig_source(&m->obj);
    if (from && strcmp(from, node) == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (m->vmi_name && strcmp(m->vmi_name, vmis[i]->obj.name) == 0 &&
            strcmp(m->obj.ns, vmis[i]->obj.ns) == 0)
            return true;
    return false;
}

/* The reconciler's plan for node as if the drain taint were on it. */
static int plan_node(const drain_dryrun_in_t *in, const kube_node_t *node, drain_dryrun_t *d,
                     size_t *cap)
{
    kube_taint_t *taints = calloc(node->n_taints + 1, sizeof(*taints));
    const kube_vmi_t **vmis = calloc(in->n_vmis + 1, sizeof(*vmis));
    const kube_migration_t **migs = calloc(in->n_migs + 1, sizeof(*migs));
    size_t nv = 0, nm = 0;
    drain_plan_t p;
    int rc = -1;

    if (!taints || !vmis || !migs)
        goto out;
    if (node->n_taints)
        memcpy(taints, node->taints, node->n_taints * sizeof(*taints));
    taints[node->n_taints] =
        (kube_taint_t){.key = in->cfg->node_drain_taint_key, .value = "", .effect = "NoSchedule"};
    kube_node_t tainted = *node;
    tainted.taints = taints;
    tainted.n_taints = kube_node_has_taint(node, in->cfg->node_drain_taint_key, "NoSchedule")
                           ? node->n_taints
                           : node->n_taints + 1;
    for (size_t i = 0; i < in->n_vmis; i++)
        if (in->vmis[i]->node_name && strcmp(in->vmis[i]->node_name, node->obj.name) == 0)
            vmis[nv++] = in->vmis[i];
    for (size_t i = 0; i < in->n_migs; i++)
        if (mig_concerns(in->migs[i], node->obj.name, vmis, nv))
            migs[nm++] = in->migs[i];
    drain_view_t v = {.cfg = in->cfg,
                      .now = in->now,
                      .node = &tainted,
                      .vmis = vmis,
                      .n_vmis = nv,
                      .migs = migs,
                      .n_migs = nm};
    if (drain_reconcile(&v, &p) == 0) {
        rc = take_plan(in, vmis, nv, &p, d, cap);
        drain_plan_free(&p);
    }
out:
    free(taints);
    free(vmis);
    free(migs);
    return rc;
}

/* --- the virtual clock -------------------------------------------------------------------- */

typedef struct run {
    size_t vmi;  /* index in d->vmis */
    double end;  /* when it ends */
    bool queued; /* selected by the planner (else in flight before) */
} run_t;

typedef struct clock {
    planner_t *pl;
    drain_dryrun_t *d;
    run_t *runs;
    int nruns, order;
    int *observed; /* per planned node: migrations in flight before the plan */
} vclock_t;

static size_t node_index(const drain_dryrun_t *d, const char *node)
{
    size_t i = 0;
    while (i < d->n_nodes && strcmp(d->nodes[i].name, node) != 0)
        i++;
    return i;
}

static double transfer(const drain_dryrun_t *d, int64_t memory)
{
    return (double)memory / (double)d->rate;
}

/* Starts what the planner selects at now. */
static void start_selected(vclock_t *k, double now)
{
    planner_choice_t ch[16];
    int n;
    while ((n = planner_select(k->pl, now, ch, 16)) > 0)
        for (int i = 0; i < n; i++) {
            size_t idx = strtoul(ch[i].key, NULL, 10);
            drain_dryrun_vmi_t *v = &k->d->vmis[idx];
            v->order = ++k->order;
            v->start = now;
            v->end = now + transfer(k->d, v->memory);
            k->runs[k->nruns++] = (run_t){idx, v->end, true};
        }
    if (planner_in_flight(k->pl, NULL) > k->d->peak_in_flight)
        k->d->peak_in_flight = planner_in_flight(k->pl, NULL);
}

/* Ends the runs due at now, as the controller reports them. */
static void end_due(vclock_t *k, double now)
{
    for (int i = 0; i < k->nruns;) {
        const run_t *r = &k->runs[i];
        char key[32];
        if (r->end > now) {
            i++;
            continue;
        }
        snprintf(key, sizeof(key), "%zu", r->vmi);
        if (r->queued) {
            planner_finished(k->pl, key);
        } else {
            const char *node = k->d->vmis[r->vmi].node;
            size_t ni = node_index(k->d, node);
            planner_set_in_flight(k->pl, node, --k->observed[ni]);
        }
        k->runs[i] = k->runs[--k->nruns];
    }
}

/* Queues the moves and the migrations in flight. Returns 0 or -1. */
static int clock_load(vclock_t *k)
{
    drain_dryrun_t *d = k->d;
    for (size_t i = 0; i < d->n_vmis; i++) {
        drain_dryrun_vmi_t *v = &d->vmis[i];
        char key[32];
        snprintf(key, sizeof(key), "%zu", i);
        if (v->kind == DRAIN_DRYRUN_MIGRATING) {
            size_t ni = node_index(d, v->node);
            v->end = transfer(d, v->memory);
            k->runs[k->nruns++] = (run_t){i, v->end, false};
            if (planner_set_in_flight(k->pl, v->node, ++k->observed[ni]) < 0)
                return -1;
        } else if (v->kind == DRAIN_DRYRUN_MOVE || v->kind == DRAIN_DRYRUN_KUBEVIRT) {
            const kube_obj_t *o = &v->vmi->obj;
            planner_candidate_t c = {
                .key = key,
                .uid = key,
                .node = v->node,
                .memory = v->memory,
                .seq = (uint64_t)o->created.sec * 1000000000ULL + (uint64_t)o->created.nsec,
            };
            if (planner_add(k->pl, &c) < 0)
                return -1;
        }
    }
    return 0;
}

/* Runs the moves through the planner until the last one ends. */
static int simulate(const drain_config_t *cfg, drain_dryrun_t *d)
{
    vclock_t k = {.d = d};
    double now = 0;
    int rc = -1;

    k.pl = planner_new(PLANNER_DEFAULT_ORDER);
    k.runs = calloc(d->n_vmis + 1, sizeof(*k.runs));
    k.observed = calloc(d->n_nodes + 1, sizeof(*k.observed));
    if (!k.pl || !k.runs || !k.observed ||
        planner_set_limits(k.pl, cfg->parallel_migrations_per_cluster,
                           cfg->parallel_outbound_per_node) < 0 ||
        clock_load(&k) < 0)
        goto out;
    for (;;) {
        start_selected(&k, now);
        if (k.nruns == 0)
            break;
        double next = k.runs[0].end;
        for (int i = 1; i < k.nruns; i++)
            if (k.runs[i].end < next)
                next = k.runs[i].end;
        now = next;
        end_due(&k, now);
    }
    planner_stats_t st;
    planner_stats(k.pl, &st);
    /* a limit of 0 pauses every start: the drain would never end */
    d->seconds = st.queued ? -1 : now;
    for (size_t i = 0; i < d->n_vmis; i++) {
        size_t ni = node_index(d, d->vmis[i].node);
        if (ni < d->n_nodes && d->vmis[i].end > d->nodes[ni].seconds)
            d->nodes[ni].seconds = d->vmis[i].end;
    }
    rc = 0;
out:
    planner_free(k.pl);
    free(k.runs);
    free(k.observed);
    return rc;
}

/* --- the capacity check -------------------------------------------------------------------- */

static bool planned(const drain_dryrun_in_t *in, const kube_node_t *n)
{
    for (size_t i = 0; i < in->n_plan; i++)
        if (strcmp(in->plan[i]->obj.name, n->obj.name) == 0)
            return true;
    return false;
}

static int64_t requested_on(const drain_dryrun_in_t *in, const char *node)
{
    int64_t sum = 0;
    for (size_t i = 0; i < in->n_pods; i++) {
        const kube_pod_t *p = in->pods[i];
        if (p->node_name && strcmp(p->node_name, node) == 0 && p->phase != KUBE_POD_SUCCEEDED &&
            p->phase != KUBE_POD_FAILED)
            sum = p->memory_request > INT64_MAX - sum ? INT64_MAX : sum + p->memory_request;
    }
    return sum;
}

static int check_capacity(const drain_dryrun_in_t *in, drain_dryrun_t *d)
{
    drain_target_t *t = calloc(in->n_nodes + 1, sizeof(*t));
    int64_t *need = calloc(d->n_vmis + 1, sizeof(*need));
    int rc = -1;

    if (t && need) {
        size_t nt = 0, nn = 0;
        for (size_t i = 0; i < in->n_nodes; i++)
            if (!planned(in, in->nodes[i]) && drain_capacity_target(in->nodes[i], in->cfg))
                t[nt++] = (drain_target_t){.name = in->nodes[i]->obj.name,
                                           .allocatable = in->nodes[i]->allocatable_memory,
                                           .requested = requested_on(in, in->nodes[i]->obj.name)};
        for (size_t i = 0; i < d->n_vmis; i++)
            if (d->vmis[i].kind == DRAIN_DRYRUN_MOVE || d->vmis[i].kind == DRAIN_DRYRUN_KUBEVIRT)
                need[nn++] = d->vmis[i].need;
        rc = drain_capacity_check(t, nt, need, nn, &d->capacity);
    }
    if (rc == 0)
        drain_capacity_text(&d->capacity, d->capacity_text, sizeof(d->capacity_text));
    free(t);
    free(need);
    return rc;
}

/* --- the whole plan ------------------------------------------------------------------------ */

/* Moves first, in start order; then by node, kind and name. */
static int by_order(const void *a, const void *b)
{
    const drain_dryrun_vmi_t *x = a, *y = b;
    if ((x->order > 0) != (y->order > 0))
        return x->order > 0 ? -1 : 1;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    int c = strcmp(x->node, y->node);
    if (c == 0)
        c = (int)x->kind - (int)y->kind;
    if (c == 0)
        c = strcmp(x->vmi->obj.ns, y->vmi->obj.ns);
    return c ? c : strcmp(x->vmi->obj.name, y->vmi->obj.name);
}

int drain_dryrun(const drain_dryrun_in_t *in, drain_dryrun_t *d)
{
    size_t cap = 0;
    bool stuck = false;

    memset(d, 0, sizeof(*d));
    d->rate = in->cfg->bandwidth_per_migration;
    if (d->rate <= 0) {
        d->rate = in->rate > 0 ? in->rate : DRAIN_DRYRUN_DEFAULT_RATE;
        d->rate_assumed = true;
    }
    d->nodes = calloc(in->n_plan + 1, sizeof(*d->nodes));
    if (!d->nodes)
        return -1;
    for (size_t i = 0; i < in->n_plan; i++) {
        const kube_node_t *n = in->plan[i];
        drain_dryrun_node_t *nd = &d->nodes[d->n_nodes++];
        nd->name = n->obj.name;
        nd->state = drain_state_parse(kube_obj_annotation(&n->obj, DRAIN_ANN_STATE));
        if (plan_node(in, n, d, &cap) < 0)
            goto fail;
        stuck =
            stuck || nd->blocked || nd->failed || (nd->moves && !in->cfg->live_migration_enabled);
    }
    if (simulate(in->cfg, d) < 0 || check_capacity(in, d) < 0)
        goto fail;
    if (d->n_vmis)
        qsort(d->vmis, d->n_vmis, sizeof(*d->vmis), by_order);
    d->complete = !stuck && d->seconds >= 0 && drain_capacity_fits(&d->capacity);
    return 0;
fail:
    drain_dryrun_free(d);
    return -1;
}

void drain_dryrun_free(drain_dryrun_t *d)
{
    free(d->vmis);
    free(d->nodes);
    memset(d, 0, sizeof(*d));
}
