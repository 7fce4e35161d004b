/*
 * drain/reconcile — see reconcile.h. Pure: cache snapshot in, plan out.
 * Calls drain/history and util/num; called by drain/sync.c and the tests.
 */
#include "drain/history.h"
#include "drain/reconcile.h"
#include "drain/kubevirt.h"
#include "drain/record.h"
#include "util/num.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
    [DRAIN_STATE_NONE] = "",
    [DRAIN_STATE_DRAINING] = "Draining",
    [DRAIN_STATE_DRAINED] = "Drained",
    [DRAIN_STATE_BLOCKED] = "Blocked",
    [DRAIN_STATE_FAILED] = "Failed",
    [DRAIN_STATE_CANCELLED] = "Cancelled",
    [DRAIN_STATE_COMPLETED] = "Completed",
};

/* The same in lower case: the vmdrain.io/state label, the metric's label. */
static const char *const state_labels[] = {
    [DRAIN_STATE_NONE] = "",
    [DRAIN_STATE_DRAINING] = "draining",
    [DRAIN_STATE_DRAINED] = "drained",
    [DRAIN_STATE_BLOCKED] = "blocked",
    [DRAIN_STATE_FAILED] = "failed",
    [DRAIN_STATE_CANCELLED] = "cancelled",
    [DRAIN_STATE_COMPLETED] = "completed",
};

const char *drain_state_name(drain_state_t s)
{
    return s <= DRAIN_STATE_COMPLETED ? state_names[s] : "";
}

const char *drain_state_label(drain_state_t s)
{
    return s <= DRAIN_STATE_COMPLETED ? state_labels[s] : "";
}

drain_state_t drain_state_parse(const char *s)
{
    for (int i = DRAIN_STATE_DRAINING; s && i <= DRAIN_STATE_COMPLETED; i++)
        if (strcmp(s, state_names[i]) == 0)
            return (drain_state_t)i;
    return DRAIN_STATE_NONE;
}

bool drain_state_active(drain_state_t s)
{
    return s == DRAIN_STATE_DRAINING || s == DRAIN_STATE_DRAINED || s == DRAIN_STATE_BLOCKED ||
           s == DRAIN_STATE_FAILED;
}

bool drain_migration_in_flight(const kube_migration_t *m)
{
    /* a deletion does not end it: KubeVirt aborts a deleted migration and
     * releases its finalizer only once the abort is over */
    return m->phase != KUBE_MIGRATION_SUCCEEDED && m->phase != KUBE_MIGRATION_FAILED;
}

/* Being deleted: vmdrain (or someone) asked for the end already. */
static bool being_deleted(const kube_migration_t *m)
{
    return m->obj.deleted.sec != 0;
}

kube_eviction_strategy_t drain_vmi_strategy(const kube_vmi_t *vmi, const drain_config_t *cfg)
{
    kube_eviction_strategy_t s = vmi->eviction_strategy != KUBE_EVICTION_UNSET
                                     ? vmi->eviction_strategy
                                     : cfg->eviction_strategy;
    /* evacuateExternal: External is handed to vmdrain, and moves as LiveMigrate */
    return s == KUBE_EVICTION_EXTERNAL && cfg->evacuate_external ? KUBE_EVICTION_LIVE_MIGRATE : s;
}

/* Appends "ns/name:reason" to the bounded blocked list. */
static void blocked_add(drain_plan_t *p, const kube_vmi_t *vmi, const char *reason, int *dropped)
{
    char item[320];
    size_t len = strlen(p->blocked_list);
    int n = snprintf(item, sizeof(item), "%s%s/%s:%s", len ? "," : "", vmi->obj.ns, vmi->obj.name,
                     reason);
    /* keep room for ",+NNN more" */
    if (n < 0 || len + (size_t)n + 12 > DRAIN_BLOCKED_MAX) {
        (*dropped)++;
        return;
    }
    memcpy(p->blocked_list + len, item, (size_t)n + 1);
}

static void add_event(drain_plan_t *p, const char *reason, const char *type, const kube_vmi_t *vmi,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_event(drain_plan_t *p, const char *reason, const char *type, const kube_vmi_t *vmi,
                      const char *fmt, ...)
{
    if (p->n_events == DRAIN_MAX_EVENTS)
        return;
    drain_event_t *e = &p->events[p->n_events++];
    va_list ap;
    e->reason = reason;
    e->type = type;
    e->vmi = vmi;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* True when the observed blocked annotation already names the VMI. */
static bool already_blocked(const kube_node_t *n, const kube_vmi_t *vmi)
{
    const char *list = kube_obj_annotation(&n->obj, DRAIN_ANN_BLOCKED);
    char needle[300];
    if (!list)
        return false;
    int k = snprintf(needle, sizeof(needle), "%s/%s:", vmi->obj.ns, vmi->obj.name);
    for (const char *p = strstr(list, needle); p; p = strstr(p + 1, needle))
        if (p == list || p[-1] == ',')
            return k > 0;
    return false;
}

/* Appends a zeroed element of size bytes to the owned array *arr of *n
 * elements; returns it, or NULL when memory runs out (nothing changed). */
static void *push(void *arr, size_t *n, size_t size)
{
    void **slot = arr;
    char *grown = realloc(*slot, (*n + 1) * size);
    if (!grown)
        return NULL;
    *slot = grown;
    memset(grown + *n * size, 0, size);
    return grown + (*n)++ * size;
}

static int push_entry(drain_plan_t *p, const kube_vmi_t *vmi, drain_vmi_state_t state, int attempts,
                      const kube_migration_t *mig, const char *reason)
{
    drain_vmi_entry_t *e = push(&p->entries, &p->n_entries, sizeof(*e));
    if (!e)
        return -1;
    *e = (drain_vmi_entry_t){vmi, state, attempts, mig, reason ? reason : ""};
    return 0;
}

static int push_candidate(drain_plan_t *p, const kube_vmi_t *vmi, int attempt, int failures)
{
    drain_candidate_t *c = push(&p->candidates, &p->n_candidates, sizeof(*c));
    if (!c)
        return -1;
    c->vmi = vmi;
    c->attempt = attempt;
    c->failures = failures;
    c->memory = drain_vmi_memory(vmi);
    snprintf(c->name, sizeof(c->name), "vmdrain-%.8s-%d", vmi->obj.uid, attempt);
    return 0;
}

static drain_delete_t *push_delete(drain_plan_t *p, const kube_migration_t *m, const char *reason)
{
    drain_delete_t *d = push(&p->deletes, &p->n_deletes, sizeof(*d));
    if (!d)
        return NULL;
    d->mig = m;
    d->abort_reason = DRAIN_ABORT_DRAIN_CANCELLED; /* a timeout says its own */
    snprintf(d->reason, sizeof(d->reason), "%s", reason);
    return d;
}

/* Aborts a migration of ours that stopped making progress: before Running
 * no phase change for progressTimeout (KubeVirt's launcher never sees a
 * migration whose target was not scheduled), in Running longer than
 * completionTimeoutPerGiB x guest GiB. Returns 1 when aborted, 0 when not
 * (*next gets the seconds until its deadline), -1 on memory. */
static int check_timeouts(const drain_view_t *v, drain_plan_t *p, const kube_vmi_t *vmi,
                          const kube_migration_t *m, double *next)
{
    const drain_config_t *cfg = v->cfg;
    vd_time_t since = m->phase_changed.sec ? m->phase_changed : m->obj.created;
    double elapsed = time_diff(since, v->now), limit;
    char reason[160];

    if (m->phase == KUBE_MIGRATION_RUNNING) {
        int64_t mem = drain_vmi_memory(vmi);
        double gib = (double)mem / (double)(1LL << 30);
        limit = cfg->completion_timeout_per_gib * (gib > 1 ? gib : 1);
        snprintf(reason, sizeof(reason),
                 "completionTimeoutPerGiB: still Running after %.0fs (limit %.0fs for %.1f GiB)",
                 elapsed, limit, gib);
    } else {
        limit = cfg->progress_timeout;
        snprintf(reason, sizeof(reason), "progressTimeout: no progress for %.0fs in phase %s",
                 elapsed,
                 kube_migration_phase_name(m->phase)[0] ? kube_migration_phase_name(m->phase)
                                                        : "Pending");
    }
    if (elapsed < limit) {
        *next = limit - elapsed;
        return 0;
    }
    drain_delete_t *d = push_delete(p, m, reason);
    if (!d)
        return -1;
    d->vmi = vmi;
    d->abort_reason = m->phase == KUBE_MIGRATION_RUNNING ? DRAIN_ABORT_COMPLETION_TIMEOUT
                                                         : DRAIN_ABORT_PROGRESS_TIMEOUT;
    drain__record_abort(v, vmi, m, d->record, sizeof(d->record));
    snprintf(p->message, sizeof(p->message), "aborted %s of %s/%s: %s", m->obj.name, vmi->obj.ns,
             vmi->obj.name, reason);
    return 1;
}

/* True when an eviction request for the VMI was answered and its mark is
 * not written yet (the view's requests are all for this node). */
static bool is_requested(const drain_view_t *v, const kube_vmi_t *vmi)
{
    for (size_t i = 0; i < v->n_requested; i++)
        if (strcmp(v->requested[i], vmi->obj.uid) == 0)
            return true;
    return false;
}

/* True when an eviction request marked the VMI for evacuation from this
 * node: the mark on the VMI, or a request not yet written. */
static bool is_marked(const drain_view_t *v, const kube_vmi_t *vmi)
{
    const char *from = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
    return (from && strcmp(from, v->node->obj.name) == 0) || is_requested(v, vmi);
}

/* A VMI that must move but cannot: counted, listed, announced once. */
static int plan_blocked(const drain_view_t *v, drain_plan_t *p, const kube_vmi_t *vmi, int *dropped)
{
    const char *reason = vmi->migratable_reason[0] ? vmi->migratable_reason : "NotLiveMigratable";
    p->blocked++;
    if (push_entry(p, vmi, DRAIN_VMI_BLOCKED, 0, NULL, reason) < 0)
        return -1;
    blocked_add(p, vmi, reason, dropped);
    if (!already_blocked(v->node, vmi))
        add_event(p, "VMIBlocked", "Warning", vmi, "VMI %s/%s cannot leave node %s: %s%s%s",
                  vmi->obj.ns, vmi->obj.name, v->node->obj.name, reason,
                  vmi->migratable_message[0] ? ": " : "", vmi->migratable_message);
    return 0;
}

/* Keeps the earliest deadline for the node's next reconcile. */
static void requeue_within(drain_plan_t *p, double seconds)
{
    if (p->requeue_after == 0 || seconds < p->requeue_after)
        p->requeue_after = seconds;
}

/* One migratable VMI of the drain: migrating, failed, waiting for its
 * backoff, or a candidate. Returns 0 or -1 (memory). */
static int plan_vmi(const drain_view_t *v, drain_plan_t *p, const kube_vmi_t *vmi,
                    vd_time_t started)
{
    const drain_config_t *cfg = v->cfg;
    drain_history_t h;

    drain__history_of(v, vmi, started, &h, p);
    if (h.active && drain__mig_is_ours(h.active) && !being_deleted(h.active) &&
        drain__label_is(&h.active->obj, DRAIN_LABEL_NODE, v->node->obj.name)) {
        double next = 0;
        int rc = check_timeouts(v, p, vmi, h.active, &next);
        if (rc < 0)
            return -1;
        if (rc == 0)
            requeue_within(p, next);
    }
    if (h.active || h.finishing) {
        /* a success already in "migrated" is not counted twice */
        if (h.active || !h.finishing_counted)
            p->migrating++;
        else
            p->settling++;
        return push_entry(p, vmi, DRAIN_VMI_MIGRATING, h.last_attempt, h.active, NULL);
    }
    if (h.failures >= cfg->max_migration_attempts) {
        size_t len = strlen(p->failed_list);
        p->failed++;
        snprintf(p->failed_list + len, sizeof(p->failed_list) - len, "%s%s/%s", len ? "," : "",
                 vmi->obj.ns, vmi->obj.name);
        return push_entry(p, vmi, DRAIN_VMI_FAILED, h.failures, NULL,
                          "every migration attempt failed");
    }
    p->pending++;
    bool by_kubevirt =
        cfg->live_migration_enabled && drain_kubevirt_moves(cfg, v->node, vmi, is_marked(v, vmi));
    if (push_entry(p, vmi, by_kubevirt ? DRAIN_VMI_BY_KUBEVIRT : DRAIN_VMI_PENDING, h.last_attempt,
                   NULL, NULL) < 0)
        return -1;
    if (!cfg->live_migration_enabled)
        return 0;
    if (by_kubevirt) {
        /* its migration appears (and is adopted) or is refused by KubeVirt:
         * a second one of ours would race it */
        p->by_kubevirt++;
        return 0;
    }
    if (h.failures > 0) {
        double wait = drain_kubevirt_retry_wait(cfg, h.failures, h.failed_objects);
        /* failure times have whole seconds: the failure may have come up
         * to a second later, so the wait counts from the end of it */
        double left = wait + 1 - time_diff(h.last_failure, v->now);
        if (left > 0) {
            requeue_within(p, left);
            return 0;
        }
    }
    return push_candidate(p, vmi, h.last_attempt + 1, h.failures);
}

/* Classifies every VMI of a draining node: all of them under the taint,
 * only those marked by an eviction request otherwise. */
static int plan_evacuation(const drain_view_t *v, drain_plan_t *p, vd_time_t started)
{
    int dropped = 0;

    for (size_t i = 0; i < v->n_vmis; i++) {
        const kube_vmi_t *vmi = v->vmis[i];
        kube_eviction_strategy_t s = drain_vmi_strategy(vmi, v->cfg);
        bool migratable = vmi->migratable == KUBE_COND_TRUE;
        if (vmi->phase != KUBE_VMI_RUNNING || vmi->obj.deleted.sec != 0)
            continue;
        if (p->evicting && !is_marked(v, vmi))
            continue;
        if (s == KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE && !migratable)
            continue; /* may be evicted: not ours */
        if (s != KUBE_EVICTION_LIVE_MIGRATE && s != KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE)
            continue;
        if (!migratable ? plan_blocked(v, p, vmi, &dropped) < 0 : plan_vmi(v, p, vmi, started) < 0)
            return -1;
    }
    if (dropped)
        snprintf(p->blocked_list + strlen(p->blocked_list),
                 sizeof(p->blocked_list) - strlen(p->blocked_list), ",+%d more", dropped);
    p->migrated = drain__count_migrated(v, started);
    p->migrating += drain__count_in_transit(v, started);
    p->total = p->migrated + p->migrating + p->pending + p->failed + p->blocked;
    snprintf(p->progress, sizeof(p->progress), "%d/%d", p->migrated, p->total);
    return 0;
}

/* Cancels what is queued once the drain ends: ours for this node that
 * have not started running. */
static int plan_cancel(const drain_view_t *v, drain_plan_t *p)
{
    for (size_t i = 0; i < v->n_migs; i++) {
        const kube_migration_t *m = v->migs[i];
        if (drain__mig_is_ours(m) &&
            drain__label_is(&m->obj, DRAIN_LABEL_NODE, v->node->obj.name) &&
            drain_migration_in_flight(m) && !being_deleted(m) &&
            m->phase < KUBE_MIGRATION_RUNNING &&
            !push_delete(p, m, "the drain ended before the migration started"))
            return -1;
    }
    return 0;
}

static const char *ann(const kube_node_t *n, const char *key)
{
    const char *v = kube_obj_annotation(&n->obj, key);
    return v ? v : "";
}

static void draining(const drain_view_t *v, drain_plan_t *p)
{
    const kube_node_t *n = v->node;
    const char *name = n->obj.name;
    bool by_us = strcmp(ann(n, DRAIN_ANN_CORDONED_BY), "vmdrain") == 0;
    char why[320];

    drain_trigger_text(v, p, why, sizeof(why));
    if (!n->unschedulable && !p->evicting) {
        p->cordon = +1;
        if (drain_state_active(p->observed))
            add_event(p, "NodeCordoned", "Warning", NULL,
                      "Node %s was uncordoned while its drain (%s) goes on; cordoned again", name,
                      why);
    }
    p->cordoned_by = ((!n->unschedulable && !p->evicting) || by_us) ? "vmdrain" : NULL;
    if (!drain_state_active(p->observed) && v->started_unwritten.sec) {
        time_format_rfc3339(v->started_unwritten, 0, p->started_at, sizeof(p->started_at));
    } else if (!drain_state_active(p->observed)) {
        time_format_rfc3339(v->now, 0, p->started_at, sizeof(p->started_at));
        add_event(p, "DrainStarted", "Normal", NULL, "Drain of node %s started (%s)", name, why);
    } else {
        snprintf(p->started_at, sizeof(p->started_at), "%s", ann(n, DRAIN_ANN_STARTED_AT));
    }
}

static void decide_state(const drain_view_t *v, drain_plan_t *p)
{
    const char *name = v->node->obj.name;

    if (p->migrating + p->pending + p->settling > 0)
        p->state = DRAIN_STATE_DRAINING;
    else if (p->blocked > 0)
        p->state = DRAIN_STATE_BLOCKED;
    else if (p->failed > 0)
        p->state = DRAIN_STATE_FAILED;
    else
        p->state = DRAIN_STATE_DRAINED;

    if (!v->cfg->live_migration_enabled && p->pending > 0) {
        p->state = DRAIN_STATE_BLOCKED;
        snprintf(p->message, sizeof(p->message),
                 "the LiveMigration feature gate is not enabled: nothing is migrated");
    } else if (p->state == DRAIN_STATE_BLOCKED) {
        snprintf(p->message, sizeof(p->message), "%d VMI(s) cannot be live-migrated", p->blocked);
    } else if (p->state == DRAIN_STATE_FAILED) {
        snprintf(p->message, sizeof(p->message), "%d VMI(s) failed %d migration attempts: %.150s",
                 p->failed, v->cfg->max_migration_attempts, p->failed_list);
    } else if (p->state == DRAIN_STATE_DRAINED) {
        snprintf(p->message, sizeof(p->message), "all VMIs left the node");
    } else if (p->n_deletes == 0) {
        /* an abort's message stays the notable thing of this pass */
        int n = snprintf(p->message, sizeof(p->message), "%d migrating, %d pending", p->migrating,
                         p->pending);
        if (p->by_kubevirt > 0 && n > 0 && (size_t)n < sizeof(p->message))
            snprintf(p->message + n, sizeof(p->message) - (size_t)n,
                     " (%d left to KubeVirt's evacuation)", p->by_kubevirt);
    }
    if (p->state == DRAIN_STATE_DRAINED && p->observed != DRAIN_STATE_DRAINED) {
        time_format_rfc3339(v->now, 0, p->completed_at, sizeof(p->completed_at));
        if (!drain_ends_on_completion(v, p))
            add_event(p, "DrainCompleted", "Normal", NULL, "Node %s is drained: %d VMI(s) migrated",
                      name, p->migrated);
    } else if (p->state == DRAIN_STATE_DRAINED) {
        snprintf(p->completed_at, sizeof(p->completed_at), "%s",
                 ann(v->node, DRAIN_ANN_COMPLETED_AT));
    }
}

/* The drain ends: its trigger is gone (or OnCompletion ends it). */
static int finish(const drain_view_t *v, drain_plan_t *p, bool completed, bool ending)
{
    const kube_node_t *n = v->node;
    bool by_us = strcmp(ann(n, DRAIN_ANN_CORDONED_BY), "vmdrain") == 0;

    if (by_us && n->unschedulable) {
        p->cordon = -1;
        add_event(p, "NodeUncordoned", "Normal", NULL, "Node %s uncordoned: vmdrain cordoned it",
                  n->obj.name);
    }
    p->cordoned_by = NULL;
    if (drain_state_active(p->observed) || ending) {
        p->state = completed ? DRAIN_STATE_COMPLETED : DRAIN_STATE_CANCELLED;
        time_format_rfc3339(v->now, 0, p->completed_at, sizeof(p->completed_at));
        if (completed) {
            add_event(p, "DrainCompleted", "Normal", NULL, "Drain of node %s completed",
                      n->obj.name);
            snprintf(p->message, sizeof(p->message), "drain completed");
        } else {
            snprintf(p->message, sizeof(p->message), "drain cancelled: %s", drain_ended_by(v));
            add_event(p, "DrainCancelled", "Normal", NULL, "Drain of node %s cancelled: %s",
                      n->obj.name, drain_ended_by(v));
        }
    } else {
        /* already ended: keep what the node says */
        p->state = p->observed;
        snprintf(p->completed_at, sizeof(p->completed_at), "%s", ann(n, DRAIN_ANN_COMPLETED_AT));
        snprintf(p->message, sizeof(p->message), "%s", ann(n, DRAIN_ANN_MESSAGE));
    }
    snprintf(p->started_at, sizeof(p->started_at), "%s", ann(n, DRAIN_ANN_STARTED_AT));
    snprintf(p->progress, sizeof(p->progress), "%s", ann(n, DRAIN_ANN_PROGRESS));
    return plan_cancel(v, p);
}

/* True when the plan starts a migration of vmi. */
static bool is_candidate(const drain_plan_t *p, const kube_vmi_t *vmi)
{
    for (size_t i = 0; i < p->n_candidates; i++)
        if (p->candidates[i].vmi == vmi)
            return true;
    return false;
}

/* True when some migration of vmi is in flight. */
static bool vmi_in_flight(const drain_view_t *v, const kube_vmi_t *vmi)
{
    for (size_t i = 0; i < v->n_migs; i++)
        if (drain__mig_of_vmi(v->migs[i], vmi) && drain_migration_in_flight(v->migs[i]))
            return true;
    return false;
}

static int push_vmi_write(drain_plan_t *p, const kube_vmi_t *vmi, drain_vmi_write_kind_t kind,
                          const char *why)
{
    drain_vmi_write_t *w = push(&p->vmi_writes, &p->n_vmi_writes, sizeof(*w));
    if (!w)
        return -1;
    *w = (drain_vmi_write_t){.vmi = vmi, .kind = kind, .why = why};
    return 0;
}

/* What vmdrain's own marks and labels on the node's VMIs need: the mark of
 * an eviction request not yet written; a mark removed once its VMI left
 * the node it names, or once the node was uncordoned without a taint; the
 * evacuation label removed from a VMI that no longer migrates. */
static int plan_vmi_meta(const drain_view_t *v, drain_plan_t *p)
{
    const char *node = v->node->obj.name;
    bool active = p->tainted || p->evicting;

    for (size_t i = 0; i < v->n_vmis; i++) {
        const kube_vmi_t *vmi = v->vmis[i];
        const char *from = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
        int rc = 0;
        bool here = from && strcmp(from, node) == 0;
        if (!here && active && is_requested(v, vmi))
            rc = push_vmi_write(p, vmi, DRAIN_VMI_MARK, "an eviction request was answered");
        else if (from && !here)
            rc = push_vmi_write(p, vmi, DRAIN_VMI_UNMARK, "the VMI left the node");
        else if (here && !active)
            rc = push_vmi_write(p, vmi, DRAIN_VMI_UNMARK,
                                "the node was uncordoned without a drain taint");
        if (rc == 0 && kube_obj_label(&vmi->obj, DRAIN_LABEL_EVACUATING) && !is_candidate(p, vmi) &&
            !vmi_in_flight(v, vmi))
            rc = push_vmi_write(p, vmi, DRAIN_VMI_UNLABEL, "no migration of the VMI is in flight");
        if (rc < 0)
            return -1;
    }
    return 0;
}

int drain_reconcile(const drain_view_t *v, drain_plan_t *p)
{
    const kube_node_t *n = v->node;
    memset(p, 0, sizeof(*p));
    p->observed = drain_state_parse(kube_obj_annotation(&n->obj, DRAIN_ANN_STATE));
    p->tainted = kube_node_has_taint(n, v->cfg->node_drain_taint_key, "NoSchedule");
    p->requested = !p->tainted && drain_nodedrain_asks(v);
    bool marked = false;
    for (size_t i = 0; i < v->n_vmis && !marked; i++)
        marked = is_marked(v, v->vmis[i]);
    /* kubectl drain: the node is cordoned and evictions marked VMIs */
    const char *trigger = kube_obj_annotation(&n->obj, DRAIN_ANN_TRIGGER);
    p->evicting = !p->tainted && !p->requested && n->unschedulable &&
                  (marked || (drain_state_active(p->observed) && trigger &&
                              strcmp(trigger, "eviction") == 0));
    p->trigger = p->tainted     ? "taint"
                 : p->requested ? "nodedrain"
                 : p->evicting  ? "eviction"
                                : NULL;
    if (p->tainted || p->requested || p->evicting) {
        vd_time_t started = v->now;
        draining(v, p);
        time_parse_rfc3339(p->started_at, &started, NULL, 0);
        if (plan_evacuation(v, p, started) < 0)
            goto out_fail;
        decide_state(v, p);
        if (drain_plan_capacity(v, p) < 0)
            goto out_fail;
        if (drain_ends_on_completion(v, p) && p->state == DRAIN_STATE_DRAINED) {
            /* the taint is removed; a NodeDrain stays, in phase Completed */
            p->remove_taint = p->tainted;
            p->tainted = p->requested = false;
            p->cordon = 0;
            char progress[32];
            memcpy(progress, p->progress, sizeof(progress));
            if (finish(v, p, true, true) < 0)
                goto out_fail;
            memcpy(p->progress, progress, sizeof(progress));
        }
    } else if (finish(v, p, p->observed == DRAIN_STATE_DRAINED, false) < 0) {
        goto out_fail;
    }
    if (plan_vmi_meta(v, p) < 0 || drain__plan_finished(v, p) < 0)
        goto out_fail;
    return 0;
out_fail:
    drain_plan_free(p);
    return -1;
}

void drain_plan_free(drain_plan_t *p)
{
    free(p->entries);
    free(p->candidates);
    free(p->deletes);
    free(p->vmi_writes);
    free(p->finished);
    p->entries = NULL;
    p->candidates = NULL;
    p->deletes = NULL;
    p->vmi_writes = NULL;
    p->finished = NULL;
    p->n_entries = p->n_candidates = p->n_deletes = p->n_vmi_writes = p->n_finished = 0;
}
