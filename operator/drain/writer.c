/*
 * drain/writer — the one writer: every write vmdrain makes to the cluster.
 *
 * Fed by one plan (drain/sync.c) or one pacing decision (drain/dispatch.c):
 * the node patch (coalesced to one per node per patch interval) and the
 * Events it announces, migration deletes (an abort recorded on the VMI
 * first), the label then the create of a migration, vmdrain's marks and
 * labels on VMIs, the reports of finished migrations, the MigrationPolicy.
 * Each write records its expectation before it is sent (a delete, a VMI
 * patch in flight); when the record cannot be made, nothing is sent and
 * the node is reconciled again later, so no expectation is ever lost.
 *
 * May call: drain/bodies, drain/planner, kube/writer, kube/informer,
 * util/hmap, util/metrics, util/log.
 */
#include "drain/bodies.h"
#include "drain/engine.h"
#include "kube/writer.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CREATE_RETRY 5.0 /* seconds before a failed create is tried again */

static metrics_histogram_t *h_drain;
static metrics_counter_t *c_aborts;

void drain__writer_metrics(void)
{
    static const double drain_buckets[] = {30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400};
    static const char *const reason[] = {"reason"}, *const reasons[] = DRAIN_ABORT_REASONS;

    drain__report_metrics();
    if (h_drain)
        return;
    h_drain = metrics_histogram_new(
        "drain_duration_seconds", "Time from a drain's start to the state Drained.",
        (int)(sizeof(drain_buckets) / sizeof(drain_buckets[0])), drain_buckets, 0, NULL);
    c_aborts = metrics_counter_new("migration_aborts_total",
                                   "Migrations of vmdrain's it deleted before they ended, by "
                                   "reason: a timeout, or the drain ended first.",
                                   1, reason);
    /* every reason from the start, so that increase() sees the first one */
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        metrics_counter_add(c_aborts, 0, &reasons[i]);
}

/* --- write contexts -------------------------------------------------------------------- */

typedef struct write_ctx {
    drain_controller_t *c;
    char node[DRAIN_NODE_KEY_MAX];
    char key[DRAIN_VMI_KEY_MAX];
    char uid[64];
    char expect[128]; /* the vmi_meta record this write holds, or "" */
    /* a migration to delete once the VMI's abort record is written */
    char mig_ns[254], mig_name[254];
    const char *abort_reason; /* a delete's, counted once it is done */
    char *body;               /* a migration to create once the VMI is labelled */
    int failures;             /* for a created migration: earlier failed attempts */
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
    if (w->expect[0])
        hmap_del(&w->c->vmi_meta, w->expect);
    w->c->writes--;
    free(w->body);
    free(w);
}

/* A write the transport ended at shutdown: nothing to retry or report.
 * Returns true when w was released. */
static bool ended_by_shutdown(write_ctx_t *w, const kube_result_t *res)
{
    if (!res->cancelled)
        return false;
    wdone(w);
    return true;
}

/* An Event on the node and, when given, on the VMI. */
static void event2(drain_controller_t *c, const kube_obj_t *node, const kube_obj_t *vmi,
                   const char *type, const char *reason, const char *msg)
{
    if (node)
        kube_event(c->http, node, type, reason, msg);
    if (vmi)
        kube_event(c->http, vmi, type, reason, msg);
}

/* --- the node patch ----------------------------------------------------------------------- */

static void on_patched(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (ended_by_shutdown(w, res))
        return;
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

/* Logs what the patch is about to change. */
static void log_node_change(const drain_view_t *v, const drain_plan_t *p)
{
    const char *name = v->node->obj.name;

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
}

/* Sends the node patch unless one is in flight or the last was too recent
 * (at most one per node per patch_interval). Events go out with the patch
 * that records the state they announce. */
static void write_node(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
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
    log_node_change(v, p);
    write_ctx_t *w = wctx(c, name, NULL);
    if (w && kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_NODE), NULL, name, NULL,
                        KUBE_MERGE_PATCH, patch, on_patched, w)) {
        r->patching = true;
        for (size_t i = 0; i < p->n_events; i++) {
            const drain_event_t *e = &p->events[i];
            event2(c, &v->node->obj, e->vmi ? &e->vmi->obj : NULL, e->type, e->reason, e->message);
        }
    } else if (w) {
        wdone(w);
        workqueue_add_rate_limited(c->queue, name);
    }
    free(patch);
}

/* --- deletes and aborts ----------------------------------------------------------------- */

static void on_deleted(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (ended_by_shutdown(w, res))
        return;
    /* on success the record stays until the watch shows the object gone;
     * meanwhile the reconcile sees its deletionTimestamp and plans no
     * second delete */
    if (res->error && res->status != 404) {
        hmap_del(&w->c->deleting, w->uid);
        log_error("migration delete failed", "migration", w->key, "error", res->error);
    } else if (!res->error && w->abort_reason) {
        metrics_counter_add(c_aborts, 1, (const char *const[]){w->abort_reason});
    }
    drain__enqueue(w->c, w->node);
    wdone(w);
}

static void send_delete(write_ctx_t *w)
{
    if (!kube_delete(w->c->http, kube_resource_of_kind(KUBE_KIND_MIGRATION), w->mig_ns, w->mig_name,
                     w->uid, on_deleted, w)) {
        hmap_del(&w->c->deleting, w->uid);
        drain__enqueue(w->c, w->node);
        wdone(w);
    }
}

/* The VMI now records the abort: the attempt counts even after the
 * migration object is gone, so the delete may go. */
static void on_abort_recorded(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (ended_by_shutdown(w, res))
        return;
    if (res->error) {
        log_error("cannot record the abort on the VMI; the migration is kept for now", "vmi",
                  w->key, "migration", w->mig_name, "error", res->error);
        hmap_del(&w->c->deleting, w->uid);
        drain__enqueue(w->c, w->node);
        wdone(w);
        return;
    }
    send_delete(w);
}

/* One delete of the plan: the expectation first, then the abort record
 * (for an abort) or the delete itself. */
static void write_delete(drain_controller_t *c, const drain_view_t *v, const drain_delete_t *d)
{
    const kube_migration_t *m = d->mig;
    char key[DRAIN_VMI_KEY_MAX], msg[1024], *patch = NULL;

    if (hmap_get(&c->deleting, m->obj.uid))
        return;
    snprintf(key, sizeof(key), "%s/%s", m->obj.ns, m->vmi_name);
    write_ctx_t *w = wctx(c, v->node->obj.name, key);
    if (!w || hmap_put(&c->deleting, m->obj.uid, (void *)1, NULL) < 0) {
        log_error("out of memory: the migration is deleted later", "migration", m->obj.name);
        if (w)
            wdone(w);
        workqueue_add_rate_limited(c->queue, v->node->obj.name);
        return;
    }
    snprintf(w->uid, sizeof(w->uid), "%s", m->obj.uid);
    snprintf(w->mig_ns, sizeof(w->mig_ns), "%s", m->obj.ns);
    snprintf(w->mig_name, sizeof(w->mig_name), "%s", m->obj.name);
    w->abort_reason = d->abort_reason;
    snprintf(msg, sizeof(msg), "Migration %s of VMI %s/%s %s: %s", m->obj.name, m->obj.ns,
             m->vmi_name, d->vmi ? "aborted" : "deleted", d->reason);
    log_info(d->vmi ? "aborting migration" : "deleting migration", "migration", m->obj.name, "vmi",
             key, "why", d->reason);
    event2(c, &v->node->obj, d->vmi ? &d->vmi->obj : NULL, "Warning", "MigrationAborted", msg);
    if (!d->vmi) {
        send_delete(w);
        return;
    }
    if (drain_annotation_patch(DRAIN_ANN_ABORTED, d->record, &patch) < 0 ||
        !kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), d->vmi->obj.ns, d->vmi->obj.name,
                    NULL, KUBE_MERGE_PATCH, patch, on_abort_recorded, w)) {
        hmap_del(&c->deleting, m->obj.uid);
        wdone(w);
        workqueue_add_rate_limited(c->queue, v->node->obj.name);
    }
    free(patch);
}

/* --- VMI metadata: marks and labels ----------------------------------------------------- */

static void on_vmi_meta(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (ended_by_shutdown(w, res))
        return;
    if (res->error && res->status != 404) {
        log_warn("cannot update the VMI's vmdrain metadata", "vmi", w->key, "change", w->mig_name,
                 "error", res->error);
        drain__enqueue(w->c, w->node);
    }
    wdone(w);
}

/* One mark or label change, unless the same change is in flight. */
static void write_vmi_meta(drain_controller_t *c, const drain_view_t *v,
                           const drain_vmi_write_t *vw)
{
    static const char *const what[] = {"mark", "unmark", "unlabel"};
    const kube_vmi_t *vmi = vw->vmi;
    const char *node = v->node->obj.name;
    char key[DRAIN_VMI_KEY_MAX], expect[128], *patch = NULL;
    int rc;

    snprintf(expect, sizeof(expect), "%s/%s", vmi->obj.uid, what[vw->kind]);
    if (c->stopped || hmap_get(&c->vmi_meta, expect))
        return;
    drain__key(&vmi->obj, key, sizeof(key));
    if (vw->kind == DRAIN_VMI_MARK)
        rc = drain_annotation_patch(DRAIN_ANN_EVACUATE_FROM, node, &patch);
    else if (vw->kind == DRAIN_VMI_UNMARK)
        rc = drain_annotation_patch(DRAIN_ANN_EVACUATE_FROM, NULL, &patch);
    else
        rc = drain_label_patch(DRAIN_LABEL_EVACUATING, NULL, &patch);
    write_ctx_t *w = rc < 0 ? NULL : wctx(c, node, key);
    if (!w || hmap_put(&c->vmi_meta, expect, (void *)1, NULL) < 0) {
        if (w)
            wdone(w);
        free(patch);
        workqueue_add_rate_limited(c->queue, node);
        return;
    }
    snprintf(w->expect, sizeof(w->expect), "%s", expect);
    snprintf(w->mig_name, sizeof(w->mig_name), "%s", what[vw->kind]);
    const kube_resource_t *res = kube_resource_of_kind(KUBE_KIND_VMI);
    if (!(c->leading ? kube_patch(c->http, res, vmi->obj.ns, vmi->obj.name, NULL, KUBE_MERGE_PATCH,
                                  patch, on_vmi_meta, w)
                     : kube_patch_unfenced(c->http, res, vmi->obj.ns, vmi->obj.name,
                                           KUBE_MERGE_PATCH, patch, on_vmi_meta, w))) {
        wdone(w);
    } else if (vw->kind == DRAIN_VMI_MARK) {
        const char *msg = c->leading ? drain__evict_announce(c, key) : NULL;
        log_info("marking the VMI for evacuation", "vmi", key, "node", node, "why", vw->why,
                 "leading", c->leading ? "yes" : "no");
        if (msg)
            event2(c, &v->node->obj, &vmi->obj, "Normal", "EvictionIntercepted", msg);
    } else if (vw->kind == DRAIN_VMI_UNMARK) {
        log_info("clearing the eviction mark", "vmi", key, "node", node, "why", vw->why);
    }
    free(patch);
}

void drain__write_marks(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p)
{
    if (c->stopped)
        return;
    for (size_t i = 0; i < p->n_vmi_writes; i++)
        if (p->vmi_writes[i].kind == DRAIN_VMI_MARK)
            write_vmi_meta(c, v, &p->vmi_writes[i]);
}

void drain__write_vmi_meta(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p)
{
    for (size_t i = 0; i < p->n_vmi_writes; i++)
        write_vmi_meta(c, v, &p->vmi_writes[i]);
}

void drain__write_plan(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                       const drain_plan_t *p)
{
    if (c->stopped || !c->leading)
        return;
    write_node(c, r, v, p);
    for (size_t i = 0; i < p->n_deletes; i++)
        write_delete(c, v, &p->deletes[i]);
    drain__write_vmi_meta(c, v, p);
    for (size_t i = 0; i < p->n_finished; i++)
        drain__write_finished(c, r, v, p->finished[i]);
}

/* --- creating a migration ------------------------------------------------------------------ */

static void on_created(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (ended_by_shutdown(w, res))
        return;
    drain_controller_t *c = w->c;

    if (res->error && res->status != 409) {
        log_error("migration create failed, retrying", "vmi", w->key, "node", w->node, "error",
                  res->error);
        if (!c->stopped) {
            planner_finished(c->planner, w->key);
            workqueue_add_after(c->queue, w->node, CREATE_RETRY);
        }
    } else if (!res->error && !c->stopped) {
        const kube_obj_t *n = informer_get(c->nodes, w->node);
        const kube_obj_t *v = informer_get(c->vmis, w->key);
        char msg[1024];
        snprintf(msg, sizeof(msg), "Migration %s created for VMI %s leaving node %s", w->uid,
                 w->key, w->node);
        event2(c, n, v, "Normal", "MigrationCreated", msg);
        if (w->failures > 0) {
            snprintf(msg, sizeof(msg),
                     "Retrying VMI %s leaving node %s after %d failed attempt(s) of %d: "
                     "migration %s",
                     w->key, w->node, w->failures, c->cfg.max_migration_attempts, w->uid);
            event2(c, n, v, "Normal", "MigrationRetry", msg);
        }
    }
    wdone(w);
}

static void send_create(write_ctx_t *w)
{
    if (!kube_create(w->c->http, kube_resource_of_kind(KUBE_KIND_MIGRATION), w->mig_ns, w->body,
                     on_created, w)) {
        planner_finished(w->c->planner, w->key);
        drain__enqueue(w->c, w->node);
        wdone(w);
    }
}

static void on_labelled(void *ud, const kube_result_t *res)
{
    write_ctx_t *w = ud;
    if (ended_by_shutdown(w, res))
        return;
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
    send_create(w);
}

int drain__write_create(drain_controller_t *c, const drain_candidate_t *dc, const char *node,
                        const char *key, int failures)
{
    const kube_vmi_t *vmi = dc->vmi;
    const char *cur = kube_obj_label(&vmi->obj, DRAIN_LABEL_EVACUATING);
    char *patch = NULL;
    write_ctx_t *w = wctx(c, node, key);

    if (!w || drain_migration_body(dc, node, &w->body) < 0) {
        if (w)
            wdone(w);
        return -1;
    }
    snprintf(w->uid, sizeof(w->uid), "%s", dc->name);
    snprintf(w->mig_ns, sizeof(w->mig_ns), "%s", vmi->obj.ns);
    w->failures = failures;
    if (cur && strcmp(cur, "true") == 0) {
        send_create(w);
        return 0;
    }
    /* the label makes the vmdrain-evacuation MigrationPolicy apply */
    if (drain_label_patch(DRAIN_LABEL_EVACUATING, "true", &patch) < 0 ||
        !kube_patch(c->http, kube_resource_of_kind(KUBE_KIND_VMI), vmi->obj.ns, vmi->obj.name, NULL,
                    KUBE_MERGE_PATCH, patch, on_labelled, w)) {
        free(patch);
        wdone(w);
        return -1;
    }
    free(patch);
    return 0;
}

void drain__write_event(drain_controller_t *c, const kube_obj_t *obj, const char *type,
                        const char *reason, const char *msg)
{
    if (!c->stopped && c->leading)
        kube_event(c->http, obj, type, reason, msg);
}

/* --- the MigrationPolicy ---------------------------------------------------------------- */

static void on_policy_created(void *ud, const kube_result_t *res)
{
    drain_controller_t *c = ud;
    c->writes--;
    if (res->cancelled)
        return;
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
    if (res->cancelled) {
        c->writes--;
        return;
    }
    if (res->error && res->status == 404 && c->policy_body && !c->stopped) {
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

void drain__write_policy(drain_controller_t *c)
{
    char bw[32];
    const kube_resource_t *r = kube_resource_of_kind(KUBE_KIND_MIGRATION_POLICY);

    if (c->stopped || c->policy_absent || !c->leading)
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
}
