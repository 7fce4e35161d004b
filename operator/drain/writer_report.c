/*
 * drain/writer_report — the one writer's reports: the end of each
 * migration of vmdrain's (the Events on the node and the VMI, the metrics,
 * the record vmdrain.io/reported on the migration), and what a node
 * deleted during its drain left behind (an Event on each VMI left, a log
 * line, a metric; the clearing of vmdrain's marks goes through the VMI
 * metadata writer).
 *
 * Each of these Events is sent once: it is named after its object and what
 * it reports (kube_event_once), so the same report made again after a
 * restart, or by a replica that took the lead, is answered 409 and counts
 * as sent. A migration records its report only once both its Events are
 * answered; one that failed is reported again by the next start.
 *
 * May call: kube/writer, kube/informer, util/hmap, util/metrics,
 * util/timefmt, util/log (and the engine's records through engine.h).
 */
#include "drain/engine.h"
#include "kube/writer.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static metrics_counter_t *c_migrations, *c_gone;
static metrics_histogram_t *h_migration;

void drain__report_metrics(void)
{
    static const char *const result_label[] = {"result"};
    static const double mig_buckets[] = {5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};

    if (c_migrations)
        return;
    c_migrations = metrics_counter_new(
        "migrations_total", "Migrations of vmdrain's that ended, by result.", 1, result_label);
    h_migration = metrics_histogram_new(
        "migration_duration_seconds",
        "Time from the creation of a migration of vmdrain's to its end, success or failure.",
        (int)(sizeof(mig_buckets) / sizeof(mig_buckets[0])), mig_buckets, 0, NULL);
    c_gone = metrics_counter_new(
        "node_deleted_vmis_total",
        "VMIs a drain left unmigrated because their node was deleted during it.", 0, NULL);
}

/* A migration's report in flight: its Events not answered yet. */
typedef struct report {
    drain_controller_t *c;
    char ns[254], name[254];
    const char *phase; /* "Succeeded" or "Failed": what the record says */
    int pending, failed;
} report_t;

/* One Event of a report is answered: once all are, and none failed, the
 * migration records that its end was reported. */
static void on_reported(void *ud, const kube_result_t *res)
{
    report_t *rp = ud;

    if (res->error)
        rp->failed++;
    if (--rp->pending > 0)
        return;
    if (!rp->failed && !rp->c->stopped) {
        char patch[128];
        snprintf(patch, sizeof(patch), "{\"metadata\":{\"annotations\":{\"%s\":\"%s\"}}}",
                 DRAIN_ANN_REPORTED, rp->phase);
        kube_patch(rp->c->http, kube_resource_of_kind(KUBE_KIND_MIGRATION), rp->ns, rp->name, NULL,
                   KUBE_MERGE_PATCH, patch, NULL, NULL);
    }
    rp->c->writes--;
    free(rp);
}

/* Sends the report's Events on the node and, when cached, the VMI. */
static void send_report(drain_controller_t *c, const kube_migration_t *m, const kube_obj_t *node,
                        const kube_obj_t *vmi, const char *key, const char *msg)
{
    bool ok = m->phase == KUBE_MIGRATION_SUCCEEDED;
    report_t *rp = calloc(1, sizeof(*rp));
    const kube_obj_t *about[] = {node, vmi};

    if (!rp) {
        log_error("out of memory: the end of a migration goes unreported", "migration", key);
        return;
    }
    rp->c = c;
    snprintf(rp->ns, sizeof(rp->ns), "%s", m->obj.ns);
    snprintf(rp->name, sizeof(rp->name), "%s", m->obj.name);
    rp->phase = ok ? "Succeeded" : "Failed";
    rp->pending = 1 + (vmi != NULL);
    c->writes++;
    for (size_t i = 0; i < 2; i++)
        if (about[i] &&
            !kube_event_once(c->http, about[i], key, ok ? "Normal" : "Warning",
                             ok ? "MigrationSucceeded" : "MigrationFailed", msg, on_reported, rp))
            on_reported(rp, &(kube_result_t){.error = "not sent"});
}

void drain__write_finished(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                           const kube_migration_t *m)
{
    bool ok = m->phase == KUBE_MIGRATION_SUCCEEDED;
    const char *labels[] = {ok ? "succeeded" : "failed"};
    char vkey[DRAIN_VMI_KEY_MAX], mkey[DRAIN_VMI_KEY_MAX], msg[1400], at[TIME_RFC3339_MAX] = "";

    snprintf(vkey, sizeof(vkey), "%s/%s", m->obj.ns, m->vmi_name);
    bool found = hmap_get(&r->ended, drain__key(&m->obj, mkey, sizeof(mkey))) == DRAIN_ENDED_FOUND;
    if (found && m->phase_changed.sec)
        time_format_rfc3339(m->phase_changed, 0, at, sizeof(at));
    snprintf(msg, sizeof(msg), "Migration %s of VMI %s from node %s %s%s%s", m->obj.name, vkey,
             v->node->obj.name, ok ? "succeeded" : "failed", at[0] ? " at " : "", at);
    if (found)
        log_info("reporting the end of a migration vmdrain did not see happen", "migration", mkey,
                 "phase", ok ? "Succeeded" : "Failed", "ended", at[0] ? at : "unknown");
    metrics_counter_add(c_migrations, 1, labels);
    if (m->phase_changed.sec)
        metrics_histogram_observe(h_migration, time_diff(m->obj.created, m->phase_changed), NULL);
    send_report(c, m, &v->node->obj, informer_get(c->vmis, vkey), mkey, msg);
}

void drain__write_gone(drain_controller_t *c, const drain_view_t *v, const drain_plan_t *p)
{
    const char *node = v->node->obj.name;
    char key[DRAIN_VMI_KEY_MAX], msg[640], once[DRAIN_NODE_KEY_MAX + 16];
    char left[16], migrating[16];

    if (c->stopped || !c->leading || p->total == 0)
        return;
    snprintf(left, sizeof(left), "%zu", p->n_entries);
    snprintf(migrating, sizeof(migrating), "%d", p->migrating);
    log_warn("the node was deleted during its drain: its VMIs that no migration moves are left",
             "node", node, "left", left, "migrating", migrating);
    snprintf(once, sizeof(once), "node-deleted/%s", node);
    for (size_t i = 0; i < p->n_entries; i++) {
        const kube_vmi_t *vmi = p->entries[i].vmi;
        drain__key(&vmi->obj, key, sizeof(key));
        snprintf(msg, sizeof(msg),
                 "Node %s was deleted during its drain: VMI %s was not migrated and is left to "
                 "KubeVirt and its owner",
                 node, key);
        kube_event_once(c->http, &vmi->obj, once, "Warning", "NodeDeleted", msg, NULL, NULL);
        metrics_counter_add(c_gone, 1, NULL);
    }
    drain__write_vmi_meta(c, v, p);
}
