/*
 * drain/capacity — can the rest of the cluster hold the VMIs a drain moves?
 *
 * A pure check on numbers the caller collects: the memory each VMI to move
 * needs on its target (its launcher's request: the VMI's memory request,
 * else its guest memory) and, for every node that could take one, its
 * allocatable memory minus what the pods on it request. The VMIs are placed
 * largest first, each on the target with the most room left (the spread a
 * scheduler's balanced allocation gives); what does not fit anywhere is the
 * shortfall. A first-fit of sizes is a lower bound of what a scheduler
 * must solve (CPU, affinity and the rest are not seen), so "does not fit"
 * is certain and "fits" is only likely.
 *
 * Used by the engine when a drain starts (drain/sync.c) and by the kubectl
 * plugin's dry run (cmd/plugin_plan.c).
 *
 * May call: libc only.
 */
#ifndef VMDRAIN_DRAIN_CAPACITY_H
#define VMDRAIN_DRAIN_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A node that could take VMIs: schedulable (not cordoned, Ready, not
 * itself drained). */
typedef struct drain_target {
    const char *name;
    int64_t allocatable; /* status.allocatable.memory, bytes */
    int64_t requested;   /* memory requested by the pods on it, bytes */
} drain_target_t;

typedef struct drain_capacity {
    int vmis;                 /* VMIs to place */
    int64_t needed;           /* their memory, bytes */
    int targets;              /* nodes that could take them */
    int64_t free;             /* allocatable - requested, summed over the targets (>= 0 each) */
    int unplaced;             /* VMIs that fit on no target */
    int64_t shortfall;        /* memory of those, bytes */
    int64_t largest_unplaced; /* the largest of them, bytes */
} drain_capacity_t;

/* Places the VMIs' memory (need[i] bytes, n of them) on the targets.
 * Returns 0, or -1 when memory runs out (*out zeroed). */
int drain_capacity_check(const drain_target_t *targets, size_t n_targets, const int64_t *need,
                         size_t n, drain_capacity_t *out);

/* True when everything was placed. */
bool drain_capacity_fits(const drain_capacity_t *c);

/* One line for messages: "3 VMI(s) needing 12.0 GiB do not fit: 4.5 GiB free
 * on 2 schedulable node(s), the largest needs 8.0 GiB". Returns out. */
const char *drain_capacity_text(const drain_capacity_t *c, char *out, size_t n);

#endif
