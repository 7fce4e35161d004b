/*
 * drain/record — see record.h: what a node's plan asks of its NodeDrain,
 * and the JSON of those writes. Pure: no I/O.
 *
 * Calls drain/history (labels), util/jsongen, util/num and util/timefmt;
 * called by drain/reconcile.c (the trigger), drain/writer.c and the tests.
 */
#include "drain/history.h"
#include "drain/record.h"
#include "util/jsongen.h"
#include "util/num.h"
#include "util/text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESTIMATE_LANES_MAX 64
/* The estimate is rounded up to this many seconds, so that the status is
 * not rewritten every second while nothing changes. */
#define ESTIMATE_STEP 10

static const char *ann(const kube_node_t *n, const char *key)
{
    const char *v = kube_obj_annotation(&n->obj, key);
    return v ? v : "";
}

static bool is_record(const kube_nodedrain_t *nd)
{
    return drain__label_is(&nd->obj, DRAIN_LABEL_MANAGED_BY, "vmdrain");
}

bool drain_nodedrain_on_completion(const drain_view_t *v)
{
    return v->nodedrain && strcmp(v->nodedrain->uncordon_policy, "OnCompletion") == 0;
}

bool drain_nodedrain_asks(const drain_view_t *v)
{
    const kube_nodedrain_t *nd = v->nodedrain;
    const kube_node_t *n = v->node;
    vd_time_t done;

    if (!nd || nd->obj.deleted.sec || is_record(nd) || strcmp(nd->node_name, n->obj.name) != 0 ||
        strcmp(nd->phase, "Completed") == 0)
        return false;
    /* OnCompletion: the node shows this NodeDrain's drain completed, and its
     * status does not say so yet */
    return !(drain_state_parse(ann(n, DRAIN_ANN_STATE)) == DRAIN_STATE_COMPLETED &&
             strcmp(ann(n, DRAIN_ANN_TRIGGER), "nodedrain") == 0 &&
             time_parse_rfc3339(ann(n, DRAIN_ANN_COMPLETED_AT), &done, NULL, 0) == 0 &&
             done.sec >= nd->obj.created.sec);
}

void drain_trigger_text(const drain_view_t *v, const drain_plan_t *p, char *out, size_t n)
{
    const kube_nodedrain_t *nd = v->nodedrain;
    if (p->tainted)
        snprintf(out, n, "taint %.300s", v->cfg->node_drain_taint_key);
    else if (p->requested)
        snprintf(out, n, "NodeDrain %s%s%.200s", nd->obj.name, nd->reason[0] ? ": " : "",
                 nd->reason);
    else
        snprintf(out, n, "eviction requests for its VMIs");
}

const char *drain_ended_by(const drain_view_t *v)
{
    const char *trigger = ann(v->node, DRAIN_ANN_TRIGGER);
    if (strcmp(trigger, "nodedrain") == 0)
        return v->nodedrain ? "the NodeDrain is being deleted" : "the NodeDrain was deleted";
    if (strcmp(trigger, "eviction") == 0)
        return "the node was uncordoned";
    return "the taint was removed";
}

bool drain_ends_on_completion(const drain_view_t *v, const drain_plan_t *p)
{
    if (p->requested)
        return drain_nodedrain_on_completion(v);
    return p->tainted && v->cfg->uncordon_policy == UNCORDON_ON_COMPLETION;
}

int64_t drain_vmi_memory(const kube_vmi_t *vmi)
{
    return vmi->guest_memory ? vmi->guest_memory : vmi->memory_request;
}

const char *drain_mig_source(const kube_obj_t *mig)
{
    const char *node = kube_obj_label(mig, DRAIN_LABEL_NODE);
    return node ? node : kube_obj_annotation(mig, DRAIN_ANN_EVACUATION);
}

bool drain_mig_unreported(const kube_migration_t *m)
{
    return drain__mig_is_ours(m) && !drain_migration_in_flight(m) &&
           !kube_obj_annotation(&m->obj, DRAIN_ANN_REPORTED);
}

int64_t drain_vmi_need(const kube_vmi_t *vmi)
{
    return vmi->memory_request ? vmi->memory_request : vmi->guest_memory;
}

bool drain_capacity_target(const kube_node_t *n, const drain_config_t *cfg)
{
    const char *state = kube_obj_annotation(&n->obj, DRAIN_ANN_STATE);
    return !n->unschedulable && n->ready == KUBE_COND_TRUE && n->allocatable_memory > 0 &&
           !kube_node_has_taint(n, cfg->node_drain_taint_key, "NoSchedule") &&
           !drain_state_active(drain_state_parse(state));
}

int drain_plan_capacity(const drain_view_t *v, drain_plan_t *p)
{
    const drain_target_t *targets;
    int64_t *need = NULL;
    size_t n = 0, n_targets = 0;
    drain_capacity_t cap;

    if (!v->targets || p->state != DRAIN_STATE_DRAINING || p->pending == 0 ||
        !(targets = v->targets(v->targets_ud, &n_targets)))
        return 0;
    need = malloc((p->n_entries ? p->n_entries : 1) * sizeof(*need));
    if (!need)
        return -1;
    for (size_t i = 0; i < p->n_entries; i++)
        if (p->entries[i].state == DRAIN_VMI_PENDING ||
            p->entries[i].state == DRAIN_VMI_BY_KUBEVIRT)
            need[n++] = drain_vmi_need(p->entries[i].vmi);
    int rc = drain_capacity_check(targets, n_targets, need, n, &cap);
    free(need);
    if (rc < 0)
        return -1;
    if (drain_capacity_fits(&cap))
        return 0;
    p->short_of_capacity = true;
    drain_capacity_text(&cap, p->capacity, sizeof(p->capacity));
    if (p->n_deletes == 0) { /* an abort's message stays the notable thing */
        char line[sizeof(p->message) + sizeof(p->capacity) + 16];
        snprintf(line, sizeof(line), "%s; capacity: %s", p->message, p->capacity);
        text_copy_cut(p->message, sizeof(p->message), line);
    }
    /* said once, with the drain's start */
    bool starting = false;
    for (size_t i = 0; i < p->n_events; i++)
        starting = starting || strcmp(p->events[i].reason, "DrainStarted") == 0;
    if (starting && p->n_events < DRAIN_MAX_EVENTS) {
        drain_event_t *e = &p->events[p->n_events++];
        *e = (drain_event_t){.reason = "InsufficientCapacity", .type = "Warning"};
        snprintf(e->message, sizeof(e->message),
                 "Node %s: the other schedulable nodes cannot hold every VMI of the drain: %s; "
                 "vmdrain migrates what fits",
                 v->node->obj.name, p->capacity);
    }
    return 0;
}

/* The node shows that the drain a deleted NodeDrain drove has ended (or
 * another trigger drives it now), and nothing of that end is unwritten. */
static bool end_written(const drain_view_t *v, const drain_plan_t *p)
{
    bool drove = drain_state_active(p->observed) &&
                 strcmp(ann(v->node, DRAIN_ANN_TRIGGER), "nodedrain") == 0;
    return !drove && p->cordon >= 0;
}

void drain_record_decide(const drain_view_t *v, const drain_plan_t *p, drain_record_plan_t *out)
{
    const kube_nodedrain_t *nd = v->nodedrain;
    bool active = p->tainted || p->requested || p->evicting;

    memset(out, 0, sizeof(*out));
    if (!nd) {
        out->create = p->tainted || p->evicting;
        return;
    }
    if (nd->obj.deleted.sec) {
        if (nd->finalizer_index >= 0 && end_written(v, p))
            out->finalizer = -1;
        return;
    }
    if (p->requested && nd->finalizer_index < 0)
        out->finalizer = +1;
    if (p->state == DRAIN_STATE_NONE)
        return; /* the node was never drained: nothing to report */
    if (is_record(nd) && !active && nd->completion_time.sec) {
        double left = v->records_ttl - time_diff(nd->completion_time, v->now);
        if (left <= 0) {
            out->expire = true;
            return;
        }
        out->expire_in = left;
    }
    out->status = true;
}

/* --- the estimate ------------------------------------------------------------------------- */

static double vmi_seconds(const kube_vmi_t *vmi, int64_t bandwidth)
{
    return (double)drain_vmi_memory(vmi) / (double)bandwidth;
}

double drain_estimate_seconds(const drain_vmi_entry_t *e, size_t n, vd_time_t now,
                              int64_t bandwidth, int parallel)
{
    double lanes[ESTIMATE_LANES_MAX] = {0}, end = 0;
    int k = parallel < 1 ? 1 : parallel > ESTIMATE_LANES_MAX ? ESTIMATE_LANES_MAX : parallel;

    if (bandwidth <= 0)
        return -1;
    /* in flight first, then the rest in the order given: each on the lane
     * that is free first */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool flying = e[i].state == DRAIN_VMI_MIGRATING;
            if (e[i].state == DRAIN_VMI_BLOCKED || e[i].state == DRAIN_VMI_FAILED ||
                flying != (pass == 0))
                continue;
            double d = vmi_seconds(e[i].vmi, bandwidth);
            if (flying && e[i].mig)
                d = fmax(0, d - time_diff(e[i].mig->obj.created, now));
            int best = 0;
            for (int l = 1; l < k; l++)
                if (lanes[l] < lanes[best])
                    best = l;
            lanes[best] += d;
            end = fmax(end, lanes[best]);
        }
    }
    return end;
}

/* --- bodies ---------------------------------------------------------------------------- */

int drain_record_body(const drain_view_t *v, const drain_plan_t *p, char **out)
{
    const char *node = v->node->obj.name;
    char reason[400];
    util_jgen_t g;

    if (p->tainted)
        snprintf(reason, sizeof(reason), "recorded by vmdrain: a drain by the taint %s",
                 v->cfg->node_drain_taint_key);
    else
        snprintf(reason, sizeof(reason),
                 "recorded by vmdrain: a drain by eviction requests (kubectl drain)");
    util_jgen_init(&g);
    util_jgen_map_open(&g);
    util_jgen_kv(&g, "apiVersion", DRAIN_ND_API_VERSION);
    util_jgen_kv(&g, "kind", "NodeDrain");
    util_jgen_str(&g, "metadata");
    util_jgen_map_open(&g);
    util_jgen_kv(&g, "name", node);
    util_jgen_str(&g, "labels");
    util_jgen_map_open(&g);
    util_jgen_kv(&g, DRAIN_LABEL_MANAGED_BY, "vmdrain");
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    util_jgen_str(&g, "spec");
    util_jgen_map_open(&g);
    util_jgen_kv(&g, "nodeName", node);
    util_jgen_kv(&g, "reason", reason);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    return util_jgen_finish(&g, out);
}

static const char *entry_state(drain_vmi_state_t s)
{
    static const char *const names[] = {
        [DRAIN_VMI_PENDING] = "Pending",
        [DRAIN_VMI_MIGRATING] = "Migrating",
        [DRAIN_VMI_FAILED] = "Failed",
        [DRAIN_VMI_BLOCKED] = "Blocked",
        [DRAIN_VMI_BY_KUBEVIRT] = "LeftToKubeVirt",
    };
    return s <= DRAIN_VMI_BY_KUBEVIRT ? names[s] : "Pending";
}

static void gen_vmis(util_jgen_t *g, const drain_plan_t *p)
{
    size_t listed = 0, blocked = 0;

    util_jgen_str(g, "vmis");
    util_jgen_array_open(g);
    for (size_t i = 0; i < p->n_entries && listed < DRAIN_ND_VMIS_MAX; i++, listed++) {
        const drain_vmi_entry_t *e = &p->entries[i];
        util_jgen_map_open(g);
        util_jgen_kv(g, "namespace", e->vmi->obj.ns);
        util_jgen_kv(g, "name", e->vmi->obj.name);
        util_jgen_kv(g, "state", entry_state(e->state));
        if (e->attempts > 0)
            util_jgen_kint(g, "attempts", e->attempts);
        if (e->mig)
            util_jgen_kv(g, "migration", e->mig->obj.name);
        if (e->reason[0])
            util_jgen_kv(g, "reason", e->reason);
        util_jgen_map_close(g);
    }
    util_jgen_array_close(g);
    util_jgen_kint(g, "vmisOmitted", (long long)(p->n_entries - listed));
    util_jgen_str(g, "blockedVMIs");
    util_jgen_array_open(g);
    for (size_t i = 0; i < p->n_entries && blocked < DRAIN_ND_VMIS_MAX; i++) {
        const drain_vmi_entry_t *e = &p->entries[i];
        if (e->state != DRAIN_VMI_BLOCKED)
            continue;
        blocked++;
        util_jgen_map_open(g);
        util_jgen_kv(g, "namespace", e->vmi->obj.ns);
        util_jgen_kv(g, "name", e->vmi->obj.name);
        util_jgen_kv(g, "reason", e->reason);
        util_jgen_map_close(g);
    }
    util_jgen_array_close(g);
}

/* A time key: the RFC 3339 text, or null (removed) when it is "". */
static void gen_time(util_jgen_t *g, const char *key, const char *rfc3339)
{
    util_jgen_kv(g, key, rfc3339 && rfc3339[0] ? rfc3339 : NULL);
}

static void gen_cond(util_jgen_t *g, const drain_view_t *v, int i, bool status, const char *reason,
                     const char *message)
{
    static const char *const types[] = KUBE_NODEDRAIN_CONDS;
    const kube_nodedrain_t *nd = v->nodedrain;
    kube_cond_t want = status ? KUBE_COND_TRUE : KUBE_COND_FALSE;
    vd_time_t since =
        nd->conds[i].status == want && nd->conds[i].since.sec ? nd->conds[i].since : v->now;
    char when[TIME_RFC3339_MAX];

    time_format_rfc3339(since, 0, when, sizeof(when));
    util_jgen_map_open(g);
    util_jgen_kv(g, "type", types[i]);
    util_jgen_kv(g, "status", status ? "True" : "False");
    util_jgen_kint(g, "observedGeneration", nd->obj.generation);
    util_jgen_kv(g, "lastTransitionTime", when);
    util_jgen_kv(g, "reason", reason);
    util_jgen_kv(g, "message", message[0] ? message : reason);
    util_jgen_map_close(g);
}

static void gen_conditions(util_jgen_t *g, const drain_view_t *v, const drain_plan_t *p)
{
    const char *state = drain_state_name(p->state);
    bool draining = p->state == DRAIN_STATE_DRAINING;
    bool drained = p->state == DRAIN_STATE_DRAINED || p->state == DRAIN_STATE_COMPLETED;
    bool ended = p->state == DRAIN_STATE_COMPLETED || p->state == DRAIN_STATE_CANCELLED;
    bool blocked = !ended && (p->blocked > 0 || p->failed > 0 || p->short_of_capacity);
    char why[DRAIN_BLOCKED_MAX + 64];

    if (p->short_of_capacity && !p->blocked && !p->failed)
        snprintf(why, sizeof(why), "%s", p->capacity);
    else if (p->blocked > 0)
        snprintf(why, sizeof(why), "%d VMI(s) cannot be live-migrated: %s", p->blocked,
                 p->blocked_list);
    else
        snprintf(why, sizeof(why), "%d VMI(s) failed every migration attempt: %s", p->failed,
                 p->failed_list);
    util_jgen_str(g, "conditions");
    util_jgen_array_open(g);
    gen_cond(g, v, 0, draining, draining ? (p->migrating ? "Migrating" : "Waiting") : state,
             p->message);
    gen_cond(g, v, 1, drained,
             drained    ? "AllVMIsLeft"
             : draining ? "VMIsRemain"
                        : state,
             p->message);
    gen_cond(g, v, 2, blocked,
             !blocked         ? "NoneBlocked"
             : p->blocked > 0 ? "NotLiveMigratable"
             : p->failed > 0  ? "MigrationsFailed"
                              : "InsufficientCapacity",
             blocked ? why : "");
    util_jgen_array_close(g);
}

/* The counts: migrated and total from the progress the node shows. */
static void gen_counts(util_jgen_t *g, const drain_plan_t *p)
{
    int migrated = p->migrated, total = p->total;
    const char *slash = strchr(p->progress, '/');
    char head[16];

    if (slash && (size_t)(slash - p->progress) < sizeof(head)) {
        memcpy(head, p->progress, (size_t)(slash - p->progress));
        head[slash - p->progress] = '\0';
        if (num_parse_int(head, 0, 1 << 30, &migrated) < 0 ||
            num_parse_int(slash + 1, 0, 1 << 30, &total) < 0)
            migrated = total = 0;
    }
    util_jgen_kv(g, "progress", p->progress[0] ? p->progress : NULL);
    util_jgen_kint(g, "total", total);
    util_jgen_kint(g, "migrated", migrated);
    util_jgen_kint(g, "migrating", p->migrating);
    util_jgen_kint(g, "pending", p->pending);
    util_jgen_kint(g, "failed", p->failed);
    util_jgen_kint(g, "blocked", p->blocked);
}

int drain_record_status(const drain_view_t *v, const drain_plan_t *p, char **out)
{
    const char *trigger = p->trigger ? p->trigger : ann(v->node, DRAIN_ANN_TRIGGER);
    const drain_config_t *cfg = v->cfg;
    char eta[TIME_RFC3339_MAX] = "";
    util_jgen_t g;

    if (p->state == DRAIN_STATE_DRAINING) {
        int k = cfg->parallel_outbound_per_node < cfg->parallel_migrations_per_cluster
                    ? cfg->parallel_outbound_per_node
                    : cfg->parallel_migrations_per_cluster;
        double left = drain_estimate_seconds(p->entries, p->n_entries, v->now,
                                             cfg->bandwidth_per_migration, k);
        if (left >= 0) {
            int64_t at = v->now.sec + (int64_t)ceil(left);
            at += (ESTIMATE_STEP - at % ESTIMATE_STEP) % ESTIMATE_STEP;
            time_format_rfc3339((vd_time_t){at, 0}, 0, eta, sizeof(eta));
        }
    }
    util_jgen_init(&g);
    util_jgen_map_open(&g);
    util_jgen_str(&g, "status");
    util_jgen_map_open(&g);
    util_jgen_kv(&g, "phase", drain_state_name(p->state));
    util_jgen_kv(&g, "trigger", trigger[0] ? trigger : NULL);
    util_jgen_kint(&g, "observedGeneration", v->nodedrain->obj.generation);
    gen_counts(&g, p);
    util_jgen_kv(&g, "message", p->message);
    gen_vmis(&g, p);
    gen_time(&g, "startTime", p->started_at);
    gen_time(&g, "completionTime", p->completed_at);
    gen_time(&g, "estimatedCompletionTime", eta);
    gen_conditions(&g, v, p);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    return util_jgen_finish(&g, out);
}

int drain_record_finalizer_patch(const kube_nodedrain_t *nd, bool add, char **out)
{
    char path[64];
    util_jgen_t g;

    util_jgen_init(&g);
    util_jgen_array_open(&g);
    util_jgen_map_open(&g);
    util_jgen_kv(&g, "op", "test");
    util_jgen_kv(&g, "path", "/metadata/resourceVersion");
    util_jgen_kv(&g, "value", nd->obj.resource_version);
    util_jgen_map_close(&g);
    util_jgen_map_open(&g);
    if (add && nd->n_finalizers == 0) {
        util_jgen_kv(&g, "op", "add");
        util_jgen_kv(&g, "path", "/metadata/finalizers");
        util_jgen_str(&g, "value");
        util_jgen_array_open(&g);
        util_jgen_str(&g, KUBE_NODEDRAIN_FINALIZER);
        util_jgen_array_close(&g);
    } else if (add) {
        util_jgen_kv(&g, "op", "add");
        util_jgen_kv(&g, "path", "/metadata/finalizers/-");
        util_jgen_kv(&g, "value", KUBE_NODEDRAIN_FINALIZER);
    } else {
        snprintf(path, sizeof(path), "/metadata/finalizers/%d", nd->finalizer_index);
        util_jgen_kv(&g, "op", "remove");
        util_jgen_kv(&g, "path", path);
    }
    util_jgen_map_close(&g);
    util_jgen_array_close(&g);
    return util_jgen_finish(&g, out);
}
