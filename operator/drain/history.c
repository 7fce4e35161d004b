/*
 * drain/history — see history.h. Calls util/num and util/timefmt; called
 * by drain/reconcile.c and drain/record.c.
 */
#include "drain/history.h"
#include "drain/record.h"
#include "util/num.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool drain__mig_is_ours(const kube_migration_t *m)
{
    const char *v = kube_obj_label(&m->obj, DRAIN_LABEL_MANAGED_BY);
    return v && strcmp(v, "vmdrain") == 0;
}

bool drain__label_is(const kube_obj_t *o, const char *key, const char *value)
{
    const char *v = kube_obj_label(o, key);
    return v && strcmp(v, value) == 0;
}

bool drain__mig_of_vmi(const kube_migration_t *m, const kube_vmi_t *vmi)
{
    return strcmp(m->obj.ns, vmi->obj.ns) == 0 && strcmp(m->vmi_name, vmi->obj.name) == 0;
}

/* The attempt number in "vmdrain-<uid8>-<attempt>", or 0 when the name
 * has none; a number that is not one (or past DRAIN_ATTEMPT_MAX) counts
 * in p->bad_numbers and is ignored. */
static int attempt_of(const kube_migration_t *m, drain_plan_t *p)
{
    const char *dash = strrchr(m->obj.name, '-');
    int n;
    if (!dash || strncmp(m->obj.name, "vmdrain-", 8) != 0)
        return 0;
    if (num_parse_int(dash + 1, 1, DRAIN_ATTEMPT_MAX, &n) < 0) {
        p->bad_numbers++;
        snprintf(p->bad_number, sizeof(p->bad_number), "%s", m->obj.name);
        return 0;
    }
    return n;
}

/* One entry "node/vmdrain-<uid8>-<attempt>@<unix-seconds>" of an abort
 * record: its attempt and time, or -1 when it is not well formed. */
static int abort_entry(const char *e, size_t len, int *attempt, int64_t *at_sec)
{
    const char *at = memchr(e, '@', len);
    const char *dash = at;
    int64_t a;

    while (dash && dash > e && dash[-1] != '-')
        dash--;
    if (!at || !dash || dash == e ||
        num_parse_i64(dash, (size_t)(at - dash), 1, DRAIN_ATTEMPT_MAX, &a) < 0 ||
        num_parse_i64(at + 1, len - (size_t)(at + 1 - e), 0, INT64_MAX / 2, at_sec) < 0)
        return -1;
    *attempt = (int)a;
    return 0;
}

/* Reads the VMI's record of aborted migrations: entries of this node made
 * since the drain started count as failed attempts. Returns how many; sets
 * *last_attempt and *last_failure. Entries that are not well formed count
 * in p->bad_numbers and are ignored. */
static int aborted_of(const kube_vmi_t *vmi, const char *node, vd_time_t started, int *last_attempt,
                      vd_time_t *last_failure, drain_plan_t *p)
{
    const char *rec = kube_obj_annotation(&vmi->obj, DRAIN_ANN_ABORTED);
    size_t nlen = strlen(node);
    int n = 0;

    for (const char *e = rec; e && *e;) {
        size_t len = strcspn(e, ",");
        int attempt;
        int64_t t;
        if (abort_entry(e, len, &attempt, &t) < 0) {
            p->bad_numbers++;
            snprintf(p->bad_number, sizeof(p->bad_number), "%s/%s %s", vmi->obj.ns, vmi->obj.name,
                     DRAIN_ANN_ABORTED);
        } else {
            if (attempt > *last_attempt)
                *last_attempt = attempt; /* any node: names are per VMI */
            if (len > nlen + 1 && strncmp(e, node, nlen) == 0 && e[nlen] == '/' &&
                t >= started.sec) {
                n++;
                if (t > last_failure->sec)
                    *last_failure = (vd_time_t){t, 0};
            }
        }
        e += len;
        if (*e == ',')
            e++;
    }
    return n;
}

/* True when the VMI's abort record names migration m. */
static bool aborted_has(const kube_vmi_t *vmi, const kube_migration_t *m)
{
    const char *rec = kube_obj_annotation(&vmi->obj, DRAIN_ANN_ABORTED);
    size_t len = strlen(m->obj.name);
    for (const char *p = rec ? strchr(rec, '/') : NULL; p; p = strchr(p + 1, '/'))
        if (strncmp(p + 1, m->obj.name, len) == 0 && p[1 + len] == '@')
            return true;
    return false;
}

/* An evacuation migration of someone else's from node (KubeVirt's own
 * evacuation controller annotates the source node), which the drain adopts. */
static bool adopted_from(const kube_migration_t *m, const char *node)
{
    const char *from = kube_obj_annotation(&m->obj, DRAIN_ANN_EVACUATION);
    return !drain__mig_is_ours(m) && from && strcmp(from, node) == 0;
}

/* A success the node's progress counts as migrated: ours from the node
 * created since the drain started, or an adopted evacuation from the node
 * that ended since then. */
static bool counted_as_migrated(const kube_migration_t *m, const char *node, vd_time_t started)
{
    if (m->phase != KUBE_MIGRATION_SUCCEEDED)
        return false;
    if (drain__mig_is_ours(m))
        return drain__label_is(&m->obj, DRAIN_LABEL_NODE, node) &&
               time_diff(started, m->obj.created) >= 0;
    return adopted_from(m, node) && m->phase_changed.sec &&
           time_diff(started, m->phase_changed) >= 0;
}

/* Reads the migrations of one VMI. A migration that succeeded since the
 * drain started while the cache still shows the VMI here is "finishing":
 * the VMI's move is not visible yet (unless the VMI records that very
 * migration as having brought it to this node). */
void drain__history_of(const drain_view_t *v, const kube_vmi_t *vmi, vd_time_t started,
                       drain_history_t *h, drain_plan_t *p)
{
    const char *node = v->node->obj.name;
    vd_time_t last_object = {0, 0};

    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i < v->n_migs; i++) {
        const kube_migration_t *m = v->migs[i];
        if (!drain__mig_of_vmi(m, vmi))
            continue;
        if (drain_migration_in_flight(m)) {
            h->active = m;
            continue;
        }
        /* created since the drain started, or (an adopted one) ended since */
        if (m->phase == KUBE_MIGRATION_SUCCEEDED &&
            (time_diff(started, m->obj.created) >= 0 ||
             (m->phase_changed.sec && time_diff(started, m->phase_changed) >= 0))) {
            bool came_here = vmi->has_migration_state &&
                             strcmp(vmi->migration.migration_uid, m->obj.uid) == 0 &&
                             strcmp(vmi->migration.target_node, node) == 0;
            if (!came_here) {
                h->finishing = true;
                h->finishing_counted |= counted_as_migrated(m, node, started);
            }
        }
        if (!drain__mig_is_ours(m) || !drain__label_is(&m->obj, DRAIN_LABEL_VMI_UID, vmi->obj.uid))
            continue;
        /* attempt numbers go on across drains: an earlier drain's migration
         * of this VMI (kept by KubeVirt) still holds its name */
        int a = attempt_of(m, p);
        if (a > h->last_attempt)
            h->last_attempt = a;
        if (!drain__label_is(&m->obj, DRAIN_LABEL_NODE, node))
            continue;
        if (m->phase == KUBE_MIGRATION_FAILED && !aborted_has(vmi, m)) {
            h->failures++;
            h->failed_objects++;
            vd_time_t t = m->phase_changed.sec ? m->phase_changed : m->obj.created;
            if (time_diff(h->last_failure, t) > 0)
                h->last_failure = t;
        }
    }
    last_object = h->last_failure;
    h->failures += aborted_of(vmi, node, started, &h->last_attempt, &h->last_failure, p);
    if (time_diff(last_object, h->last_failure) != 0)
        h->failed_objects = 0; /* an abort came last: its object is gone */
}

/* Migrations that concern this node's drain and succeeded since it started:
 * the "migrated" count of the progress annotation. */
int drain__count_migrated(const drain_view_t *v, vd_time_t started)
{
    int n = 0;
    for (size_t i = 0; i < v->n_migs; i++)
        n += counted_as_migrated(v->migs[i], v->node->obj.name, started);
    return n;
}

/* Migrations of ours from this node, still in flight, whose VMI the cache
 * already shows elsewhere (the VMI's update arrived before the migration's):
 * still counted as migrating, so the total never dips. */
int drain__count_in_transit(const drain_view_t *v, vd_time_t started)
{
    int n = 0;
    for (size_t i = 0; i < v->n_migs; i++) {
        const kube_migration_t *m = v->migs[i];
        bool here = false;
        if (!drain_migration_in_flight(m))
            continue;
        if (drain__mig_is_ours(m)
                ? !drain__label_is(&m->obj, DRAIN_LABEL_NODE, v->node->obj.name) ||
                      time_diff(started, m->obj.created) < 0
                : !adopted_from(m, v->node->obj.name))
            continue;
        for (size_t j = 0; j < v->n_vmis && !here; j++)
            here = drain__mig_of_vmi(m, v->vmis[j]);
        if (!here)
            n++;
    }
    return n;
}

/* The VMI's abort record with "node/name@now" added (the oldest entries
 * dropped beyond DRAIN_ABORTED_MAX). */
void drain__record_abort(const drain_view_t *v, const kube_vmi_t *vmi, const kube_migration_t *m,
                         char *out, size_t n)
{
    const char *rec = kube_obj_annotation(&vmi->obj, DRAIN_ANN_ABORTED);
    int entries = 1;

    if (!rec)
        rec = "";
    if (aborted_has(vmi, m)) {
        /* recorded before (the delete did not go out): record it once */
        snprintf(out, n, "%s", rec);
        return;
    }
    for (const char *p = rec; *p; p++)
        entries += *p == ',';
    while (*rec && entries > DRAIN_ABORTED_MAX) {
        const char *comma = strchr(rec, ',');
        rec = comma ? comma + 1 : "";
        entries--;
    }
    snprintf(out, n, "%s%s%s/%s@%lld", rec, *rec ? "," : "", v->node->obj.name, m->obj.name,
             (long long)v->now.sec);
}

/* Migrations of ours from this node whose end the watch delivered, or that
 * ended unreported while vmdrain was down: each is reported (the Events,
 * the metrics) once. */
int drain__plan_finished(const drain_view_t *v, drain_plan_t *p)
{
    if (v->n_ended == 0)
        return 0;
    p->finished = calloc(v->n_ended, sizeof(*p->finished));
    if (!p->finished)
        return -1;
    for (size_t i = 0; i < v->n_ended; i++) {
        const kube_migration_t *m = v->ended[i];
        if (drain_mig_unreported(m))
            p->finished[p->n_finished++] = m;
    }
    return 0;
}
