/*
 * drain/dryrun — what a drain of some nodes would do, decided without
 * writing anything: the plan of `kubectl vmdrain plan`.
 *
 * Each node is given to the reconciler (drain/reconcile) as if it carried
 * the drain taint, with the VMIs and migrations the caller read, so the
 * same rules that drain a node decide here which VMIs move, which block
 * and why, which KubeVirt's own evacuation moves and which are left to
 * their owners (evictionStrategy None or External; LiveMigrateIfPossible
 * that cannot migrate is evicted). The moves then run through the pacing
 * planner (drain/planner) on a virtual clock: every migration takes its
 * guest memory ÷ the bandwidth per migration (as bench/pacing_bench.c
 * does), migrations already in flight hold their slots for a whole
 * transfer from now, and none fails. So the predicted time is a lower
 * bound of the real one, which adds scheduling, dirty pages and retries.
 * Last, the capacity check (drain/capacity) places every VMI that would
 * move on the schedulable nodes outside the plan.
 *
 * Pure: no I/O, no clock (the caller passes now). Called by the plugin
 * (cmd/plugin_plan.c) and the unit tests.
 *
 * May call: drain/reconcile, drain/record, drain/capacity, drain/planner,
 * drain/config, kube/objects.
 */
#ifndef VMDRAIN_DRAIN_DRYRUN_H
#define VMDRAIN_DRAIN_DRYRUN_H

#include "drain/capacity.h"
#include "drain/config.h"
#include "drain/reconcile.h"
#include "kube/objects.h"
#include "util/timefmt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The rate assumed for a migration when the configuration sets none
 * (bandwidthPerMigration 0, unlimited): 125 MiB/s, about a 1 Gbit/s link. */
#define DRAIN_DRYRUN_DEFAULT_RATE (125LL << 20)

typedef enum drain_dryrun_kind {
    DRAIN_DRYRUN_MOVE,      /* vmdrain would migrate it */
    DRAIN_DRYRUN_KUBEVIRT,  /* KubeVirt's own evacuation would migrate it */
    DRAIN_DRYRUN_MIGRATING, /* a migration of it is in flight already */
    DRAIN_DRYRUN_BLOCKED,   /* must move but cannot: the reason says why */
    DRAIN_DRYRUN_FAILED,    /* every attempt of this drain failed already */
    DRAIN_DRYRUN_LEFT,      /* left to its owner: the reason says what happens */
} drain_dryrun_kind_t;

/* One VMI of a planned node. */
typedef struct drain_dryrun_vmi {
    const kube_vmi_t *vmi; /* borrowed from the input */
    const char *node;
    drain_dryrun_kind_t kind;
    int64_t memory;     /* what its transfer moves (guest memory, else the request), bytes */
    int64_t need;       /* what it needs on a target (the request, else guest memory), bytes */
    int order;          /* MOVE and KUBEVIRT: 1 for the first to start; else 0 */
    double start;       /* seconds from now its migration starts (MIGRATING: 0) */
    double end;         /* seconds from now its migration ends */
    const char *reason; /* BLOCKED, FAILED, LEFT: why; "" otherwise */
} drain_dryrun_vmi_t;

/* One planned node. */
typedef struct drain_dryrun_node {
    const char *name;
    drain_state_t state; /* the drain under way now, DRAIN_STATE_NONE when none */
    int moves, migrating, blocked, failed, left;
    double seconds; /* when its last migration would end, from now */
} drain_dryrun_node_t;

typedef struct drain_dryrun_in {
    const drain_config_t *cfg;
    vd_time_t now;
    const kube_node_t *const *plan; /* the nodes to drain */
    size_t n_plan;
    const kube_node_t *const *nodes; /* every node (targets of the capacity check) */
    size_t n_nodes;
    const kube_vmi_t *const *vmis; /* every VMI */
    size_t n_vmis;
    const kube_migration_t *const *migs; /* every migration */
    size_t n_migs;
    const kube_pod_t *const *pods; /* the launcher pods: what is requested on the targets */
    size_t n_pods;
    int64_t rate; /* bytes/s a migration moves when cfg sets no bandwidth; <= 0: the default */
} drain_dryrun_in_t;

typedef struct drain_dryrun {
    drain_dryrun_vmi_t *vmis; /* owned; MOVE and KUBEVIRT first, in start order */
    size_t n_vmis;
    drain_dryrun_node_t *nodes; /* owned, in the order of in->plan */
    size_t n_nodes;
    int64_t rate;       /* the bandwidth per migration the clock used */
    bool rate_assumed;  /* the configuration sets none: rate is in->rate or the default */
    double seconds;     /* predicted time until the last migration ends */
    int peak_in_flight; /* most migrations at once on the virtual clock */
    drain_capacity_t capacity;
    char capacity_text[256];
    bool complete; /* nothing would block or fail, and everything fits */
} drain_dryrun_t;

/* Plans the drain of in->plan. Returns 0, or -1 when memory runs out (out
 * zeroed). Free out with drain_dryrun_free(). */
int drain_dryrun(const drain_dryrun_in_t *in, drain_dryrun_t *out);
void drain_dryrun_free(drain_dryrun_t *d);

/* "move", "kubevirt", "migrating", "blocked", "failed", "left". */
const char *drain_dryrun_kind_name(drain_dryrun_kind_t k);

#endif
