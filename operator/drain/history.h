/*
 * drain/history — what the migration objects and a VMI's abort record say
 * about one VMI: its migration in flight, a success whose move the cache
 * does not show yet, its failed attempts and the next attempt number, and
 * the node's migrated and in-transit counts.
 *
 * Private to the reconciler (drain/reconcile.c): pure functions of the
 * view, no I/O. Every number read from the cluster (attempts, times) goes
 * through util/num; a number vmdrain did not write is counted in the
 * plan's bad_numbers and ignored.
 *
 * May call: drain/reconcile.h (the view, the plan, the names), kube/objects,
 * util/num, util/timefmt.
 */
#ifndef VMDRAIN_DRAIN_HISTORY_H
#define VMDRAIN_DRAIN_HISTORY_H

#include "drain/reconcile.h"

#include <stdbool.h>
#include <stddef.h>

/* What the migrations say about one VMI of the node. */
typedef struct drain_history {
    const kube_migration_t *active; /* in flight, ours or adopted */
    bool finishing;                 /* a migration succeeded, the VMI has not moved yet */
    bool finishing_counted;         /* ... and progress counts it as migrated already */
    int failures;                   /* our failed attempts from this node */
    /* of those, the ones whose Failed migration object is still there,
     * when the newest failure is one of them (not an abort): what KubeVirt's
     * own evacuation backoff counts; 0 otherwise */
    int failed_objects;
    int last_attempt; /* highest attempt number of ours */
    vd_time_t last_failure;
} drain_history_t;

/* True when vmdrain made the migration (label vmdrain.io/managed-by). */
bool drain__mig_is_ours(const kube_migration_t *m);

/* True when the object's label key has exactly value. */
bool drain__label_is(const kube_obj_t *o, const char *key, const char *value);

/* True when m moves vmi (same namespace, spec.vmiName). */
bool drain__mig_of_vmi(const kube_migration_t *m, const kube_vmi_t *vmi);

/* Reads the migrations of one VMI of the view's node into h (numbers that
 * are not vmdrain's count in p->bad_numbers). */
void drain__history_of(const drain_view_t *v, const kube_vmi_t *vmi, vd_time_t started,
                       drain_history_t *h, drain_plan_t *p);

/* Migrations that concern this node's drain and succeeded since it
 * started: the "migrated" count of the progress annotation. */
int drain__count_migrated(const drain_view_t *v, vd_time_t started);

/* Migrations of this drain still in flight whose VMI the cache already
 * shows elsewhere: still counted as migrating, so the total never dips. */
int drain__count_in_transit(const drain_view_t *v, vd_time_t started);

/* The VMI's abort record with "node/name@now" added for m (the oldest
 * entries dropped beyond DRAIN_ABORTED_MAX), into out. */
void drain__record_abort(const drain_view_t *v, const kube_vmi_t *vmi, const kube_migration_t *m,
                         char *out, size_t n);

/* Migrations of ours from this node whose end the watch delivered, into
 * p->finished: each is reported (an Event, the metrics) once. Returns 0 or
 * -1 (memory). */
int drain__plan_finished(const drain_view_t *v, drain_plan_t *p);

#endif
