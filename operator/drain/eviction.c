/*
 * drain/eviction — see eviction.h. The decision table is in
 * docs/webhook.md; each branch below is one of its rows. Calls
 * drain/reconcile.h (the in-flight rule), util/text and util/metrics;
 * called by drain/evict.c, the webhook benchmark and the fuzz driver.
 */
#include "drain/eviction.h"
#include "drain/reconcile.h"
#include "util/metrics.h"
#include "util/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Per decision: its name, its metric label and whether it allows. */
static const struct {
    const char *name;
    const char *label;
    bool allowed;
} decisions[DRAIN_EVICT_DECISION_COUNT] = {
    [DRAIN_EVICT_NEED_LOOKUP] = {"NEED_LOOKUP", "lookup", false},
    [DRAIN_EVICT_DENY_LOOKUP_FAILED] = {"DENY_LOOKUP_FAILED", "lookup_failed", false},
    [DRAIN_EVICT_ALLOW_NO_POD] = {"ALLOW_NO_POD", "no_pod", true},
    [DRAIN_EVICT_ALLOW_NOT_LAUNCHER] = {"ALLOW_NOT_LAUNCHER", "not_launcher", true},
    [DRAIN_EVICT_ALLOW_FINISHED_POD] = {"ALLOW_FINISHED_POD", "finished", true},
    [DRAIN_EVICT_DENY_TARGET_POD] = {"DENY_TARGET_POD", "target", false},
    [DRAIN_EVICT_ALLOW_NO_VMI] = {"ALLOW_NO_VMI", "no_vmi", true},
    [DRAIN_EVICT_ALLOW_FINISHED_VMI] = {"ALLOW_FINISHED_VMI", "finished", true},
    [DRAIN_EVICT_ALLOW_VMI_ELSEWHERE] = {"ALLOW_VMI_ELSEWHERE", "elsewhere", true},
    [DRAIN_EVICT_ALLOW_NOT_OURS] = {"ALLOW_NOT_OURS", "none", true},
    [DRAIN_EVICT_DENY_MIGRATE] = {"DENY_MIGRATE", "migrate", false},
    [DRAIN_EVICT_DENY_BLOCKED] = {"DENY_BLOCKED", "blocked", false},
    [DRAIN_EVICT_ALLOW_IF_POSSIBLE] = {"ALLOW_IF_POSSIBLE", "if_possible", true},
    [DRAIN_EVICT_DENY_EXTERNAL] = {"DENY_EXTERNAL", "external", false},
    [DRAIN_EVICT_DENY_GATE_OFF] = {"DENY_GATE_OFF", "gate_off", false},
    [DRAIN_EVICT_DENY_UNKNOWN_STRATEGY] = {"DENY_UNKNOWN_STRATEGY", "unknown_strategy", false},
    [DRAIN_EVICT_DENY_NOT_READY] = {"DENY_NOT_READY", "not_ready", false},
};

const char *drain_eviction_decision_name(drain_evict_decision_t d)
{
    if ((unsigned)d >= DRAIN_EVICT_DECISION_COUNT)
        return "?";
    return decisions[d].name;
}

const char *drain_eviction_decision_label(drain_evict_decision_t d)
{
    if ((unsigned)d >= DRAIN_EVICT_DECISION_COUNT)
        return "other";
    return decisions[d].label;
}

/* --- the decision ----------------------------------------------------- */

/* Sets the decision, its fixed attributes and the formatted message. */
static void decide_as(drain_evict_result_t *out, drain_evict_decision_t d, unsigned effects,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void decide_as(drain_evict_result_t *out, drain_evict_decision_t d, unsigned effects,
                      const char *fmt, ...)
{
    char msg[DRAIN_EVICT_MESSAGE_MAX * 2];
    va_list ap;

    out->decision = d;
    out->allowed = decisions[d].allowed;
    out->code = out->allowed ? 200 : 429;
    out->label = decisions[d].label;
    out->reason = out->allowed ? "" : "TooManyRequests";
    out->wanted_effects = effects;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    text_copy_cut(out->message, sizeof(out->message), msg);
}

/* The first migration of the VMI still in flight, or NULL. */
static const kube_migration_t *first_in_flight(const drain_evict_input_t *in)
{
    for (size_t i = 0; i < in->n_migs; i++)
        if (in->migs[i] && drain_migration_in_flight(in->migs[i]))
            return in->migs[i];
    return NULL;
}

/* Whether the VMI's migrationState describes a migration not yet ended. */
static bool vmi_migrating(const kube_vmi_t *vmi)
{
    const kube_migration_state_t *m = &vmi->migration;

    return vmi->has_migration_state && !m->completed && !m->failed && m->migration_uid[0];
}

/* When pod is the target pod of a migration in flight, returns that
 * migration's name (or its uid when only the VMI's migrationState knows
 * it); otherwise NULL. */
static const char *target_of(const drain_evict_input_t *in)
{
    const kube_pod_t *pod = in->pod;
    const char *job = kube_obj_label(&pod->obj, DRAIN_LABEL_MIGRATION_JOB);

    if (job && *job)
        for (size_t i = 0; i < in->n_migs; i++) {
            const kube_migration_t *m = in->migs[i];
            if (m && strcmp(m->obj.uid, job) == 0 && drain_migration_in_flight(m))
                return m->obj.name;
        }
    if (in->vmi && vmi_migrating(in->vmi) &&
        strcmp(in->vmi->migration.target_pod, pod->obj.name) == 0) {
        for (size_t i = 0; i < in->n_migs; i++)
            if (in->migs[i] && strcmp(in->migs[i]->obj.uid, in->vmi->migration.migration_uid) == 0)
                return in->migs[i]->obj.name;
        return in->vmi->migration.migration_uid;
    }
    return NULL;
}

/* "reason: message" of the VMI's LiveMigratable condition, with fallbacks
 * when either is empty. */
static void why_not_migratable(const kube_vmi_t *vmi, char *buf, size_t n)
{
    const char *r = vmi->migratable_reason, *m = vmi->migratable_message;

    if (*r && *m)
        snprintf(buf, n, "%s: %s", r, m);
    else if (*r || *m)
        snprintf(buf, n, "%s", *r ? r : m);
    else
        snprintf(buf, n, "condition LiveMigratable is %s",
                 vmi->migratable == KUBE_COND_FALSE ? "False" : "not True");
}

/* The pod is absent from the cache (or the cluster). */
static void decide_no_pod(const drain_evict_req_t *req, const drain_evict_input_t *in,
                          drain_evict_result_t *out)
{
    if (in->lookup_failed)
        decide_as(out, DRAIN_EVICT_DENY_LOOKUP_FAILED, 0,
                  "Eviction of pod %s/%s deferred: the pod could not be read; retry", req->ns,
                  req->name);
    else if (!in->pod_looked_up)
        decide_as(out, DRAIN_EVICT_NEED_LOOKUP, 0, "pod %s/%s is not in the cache", req->ns,
                  req->name);
    else
        decide_as(out, DRAIN_EVICT_ALLOW_NO_POD, 0, "pod %s/%s not found", req->ns, req->name);
}

/* The migrate branch shared by LiveMigrate and LiveMigrateIfPossible. A
 * migration is queued only from a cordoned node: on one the cache shows
 * uncordoned the request waits for the cordon, and the message says so. */
static void decide_migrate(const drain_evict_input_t *in, const char *vkey, bool in_progress,
                           drain_evict_result_t *out)
{
    if (!in_progress && in->node_uncordoned)
        decide_as(out, DRAIN_EVICT_DENY_MIGRATE, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE,
                  "Eviction of VMI %s waits for node %s to be cordoned: vmdrain migrates VMIs "
                  "only from cordoned nodes (kubectl drain cordons first)",
                  vkey, in->vmi->node_name);
    else
        decide_as(out, DRAIN_EVICT_DENY_MIGRATE, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE,
                  "Eviction triggered evacuation of VMI %s: migration %s", vkey,
                  in_progress ? "in progress" : "queued");
}

/* The strategy decides, for a launcher pod of a VMI on the pod's node. */
static void decide_strategy(const drain_evict_input_t *in, kube_eviction_strategy_t strategy,
                            drain_evict_result_t *out)
{
    const kube_vmi_t *vmi = in->vmi;
    bool migrating = first_in_flight(in) || vmi_migrating(vmi);
    bool migratable = vmi->migratable == KUBE_COND_TRUE;
    char vkey[330], why[DRAIN_EVICT_MESSAGE_MAX];

    kube_obj_key(&vmi->obj, vkey, sizeof(vkey));
    why_not_migratable(vmi, why, sizeof(why));
    switch (strategy) {
    case KUBE_EVICTION_UNSET:
    case KUBE_EVICTION_NONE:
        decide_as(out, DRAIN_EVICT_ALLOW_NOT_OURS, 0, "VMI %s has eviction strategy None", vkey);
        break;
    case KUBE_EVICTION_LIVE_MIGRATE:
        if (migrating || (migratable && in->live_migration_gate))
            decide_migrate(in, vkey, migrating, out);
        else if (!in->live_migration_gate)
            decide_as(out, DRAIN_EVICT_DENY_GATE_OFF, DRAIN_EVICT_EFFECT_BLOCKED,
                      "VMI %s cannot be evacuated: the LiveMigration feature gate is off", vkey);
        else
            decide_as(out, DRAIN_EVICT_DENY_BLOCKED, DRAIN_EVICT_EFFECT_BLOCKED,
                      "VMI %s cannot be live-migrated: %s", vkey, why);
        break;
    case KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE:
        if (migrating || (migratable && in->live_migration_gate))
            decide_migrate(in, vkey, migrating, out);
        else
            decide_as(out, DRAIN_EVICT_ALLOW_IF_POSSIBLE, 0,
                      "VMI %s cannot be live-migrated (%s); eviction allowed by strategy "
                      "LiveMigrateIfPossible",
                      vkey, migratable ? "the LiveMigration feature gate is off" : why);
        break;
    case KUBE_EVICTION_EXTERNAL:
        if (in->evacuate_external) {
            /* handed to vmdrain: as LiveMigrate */
            decide_strategy(in, KUBE_EVICTION_LIVE_MIGRATE, out);
            break;
        }
        decide_as(out, DRAIN_EVICT_DENY_EXTERNAL, DRAIN_EVICT_EFFECT_MARK,
                  "Eviction triggered evacuation of VMI %s: evacuation is handled by an "
                  "external controller",
                  vkey);
        break;
    default:
        decide_as(out, DRAIN_EVICT_DENY_UNKNOWN_STRATEGY, 0,
                  "VMI %s has an eviction strategy this version does not know; eviction denied",
                  vkey);
        break;
    }
}

/* A cached launcher pod of a known VMI: target pod, finished VMI, VMI
 * elsewhere, else the strategy. */
static void decide_launcher(const drain_evict_req_t *req, const drain_evict_input_t *in,
                            drain_evict_result_t *out)
{
    const kube_vmi_t *vmi = in->vmi;
    const char *target = target_of(in);
    kube_eviction_strategy_t strategy;
    char vkey[330];

    if (target) {
        decide_as(out, DRAIN_EVICT_DENY_TARGET_POD, 0,
                  "Pod %s/%s is the target of migration %s; evict it once the migration ended",
                  req->ns, req->name, target);
        return;
    }
    if (!vmi) {
        decide_as(out, DRAIN_EVICT_ALLOW_NO_VMI, 0, "pod %s/%s belongs to no known VMI", req->ns,
                  req->name);
        return;
    }
    kube_obj_key(&vmi->obj, vkey, sizeof(vkey));
    if (vmi->phase == KUBE_VMI_SUCCEEDED || vmi->phase == KUBE_VMI_FAILED) {
        decide_as(out, DRAIN_EVICT_ALLOW_FINISHED_VMI, 0, "VMI %s has finished (%s)", vkey,
                  kube_vmi_phase_name(vmi->phase));
        return;
    }
    if (*vmi->node_name && *in->pod->node_name && strcmp(vmi->node_name, in->pod->node_name)) {
        decide_as(out, DRAIN_EVICT_ALLOW_VMI_ELSEWHERE, 0,
                  "VMI %s runs on node %s, not on the pod's node %s", vkey, vmi->node_name,
                  in->pod->node_name);
        return;
    }
    strategy = vmi->eviction_strategy;
    if (strategy == KUBE_EVICTION_UNSET)
        strategy = in->default_strategy;
    decide_strategy(in, strategy, out);
}

void drain_eviction_decide(const drain_evict_req_t *req, const drain_evict_input_t *in,
                           drain_evict_result_t *out)
{
    const kube_pod_t *pod = in->pod;

    memset(out, 0, sizeof(*out));
    if (!pod) {
        decide_no_pod(req, in, out);
    } else {
        const char *app = kube_obj_label(&pod->obj, DRAIN_LABEL_APP);
        if (!app || strcmp(app, DRAIN_LAUNCHER) != 0)
            decide_as(out, DRAIN_EVICT_ALLOW_NOT_LAUNCHER, 0,
                      "pod %s/%s is not a virt-launcher pod", req->ns, req->name);
        else if (pod->phase == KUBE_POD_SUCCEEDED || pod->phase == KUBE_POD_FAILED)
            decide_as(out, DRAIN_EVICT_ALLOW_FINISHED_POD, 0, "pod %s/%s has finished (%s)",
                      req->ns, req->name, kube_pod_phase_name(pod->phase));
        else
            decide_launcher(req, in, out);
    }
    if (out->wanted_effects && in->vmi)
        text_copy_cut(out->node, sizeof(out->node),
                      *in->vmi->node_name ? in->vmi->node_name : (pod ? pod->node_name : ""));
    out->effects = req->dry_run ? 0 : out->wanted_effects;
}

void drain_eviction_not_ready(const drain_evict_req_t *req, const char *why,
                              drain_evict_result_t *out)
{
    memset(out, 0, sizeof(*out));
    decide_as(out, DRAIN_EVICT_DENY_NOT_READY, 0, "Eviction of pod %s/%s deferred: vmdrain %s",
              req->ns, req->name, why);
}

void drain_eviction_count(const drain_evict_result_t *res)
{
    static const char *const labels[] = {"decision"};
    metrics_counter_t *c = metrics_counter_new(
        "evictions_total", "Eviction requests answered by the webhook, by decision.", 1, labels);
    if (c) {
        const char *values[] = {res->label ? res->label : "other"};
        metrics_counter_add(c, 1, values);
    }
}

const char *drain_pod_vmi_name(const kube_pod_t *pod)
{
    const char *name;

    if (!pod)
        return NULL;
    name = kube_obj_annotation(&pod->obj, DRAIN_ANN_DOMAIN);
    return name && *name ? name : NULL;
}
