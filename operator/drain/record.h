/*
 * drain/record — a node's NodeDrain (crds/nodedrains.vmdrain.io.yaml), the
 * words for the three triggers and the capacity verdict of a drain, as pure
 * functions of the view and the plan.
 *
 * A NodeDrain is named after its node. One of the user's asks for the
 * drain (the third trigger, beside the taint and eviction requests) until
 * it is deleted; vmdrain's finalizer holds it until the node shows the end
 * of the drain. For a drain started by the taint or by evictions vmdrain
 * writes a record of its own (labelled vmdrain.io/managed-by=vmdrain),
 * deleted records_ttl after the drain ended. Either way vmdrain writes its
 * status from the node's plan: phase, trigger, counts, the VMIs, times, an
 * estimate of the end, and the conditions Progressing, Drained and Blocked.
 * The writer (drain/writer.c) sends what these functions decide.
 *
 * May call: drain/reconcile.h (the view, the plan, the names), drain/config,
 * drain/capacity, kube/objects, util/jsongen, util/num, util/timefmt.
 */
#ifndef VMDRAIN_DRAIN_RECORD_H
#define VMDRAIN_DRAIN_RECORD_H

#include "drain/reconcile.h"

#include <stdbool.h>

/* The NodeDrain's group, version and plural (drain/writer.c, the tests). */
#define DRAIN_ND_API_VERSION "vmdrain.io/v1alpha1"

/* Entries kept in status.vmis and status.blockedVMIs (the CRD's maxItems). */
#define DRAIN_ND_VMIS_MAX 100

/* True when the view's NodeDrain is a user's that asks for the drain now:
 * not vmdrain's record, not being deleted, and not already completed under
 * its uncordonPolicy OnCompletion. */
bool drain_nodedrain_asks(const drain_view_t *v);

/* True when that NodeDrain's uncordonPolicy is OnCompletion. */
bool drain_nodedrain_on_completion(const drain_view_t *v);

/* The trigger of the plan's drain for messages: "taint kubevirt.io/drain",
 * "NodeDrain n1: kernel upgrade", "eviction requests for its VMIs". */
void drain_trigger_text(const drain_view_t *v, const drain_plan_t *p, char *out, size_t n);

/* What ended a cancelled drain, by the trigger the node records: "the taint
 * was removed", "the node was uncordoned", "the NodeDrain was deleted". */
const char *drain_ended_by(const drain_view_t *v);

/* The drain ends as soon as it is Drained: uncordonPolicy OnCompletion of
 * the NodeDrain that asks for it or, under the taint, the configuration's. */
bool drain_ends_on_completion(const drain_view_t *v, const drain_plan_t *p);

/* The capacity check of a draining plan (the view's targets; none: no
 * check): the VMIs still pending, each needing its memory request (else
 * its guest memory). When they do not fit, the plan says so: its message
 * while Draining, a Warning InsufficientCapacity when the drain starts,
 * and the NodeDrain's Blocked condition. Returns 0 or -1 (memory). */
int drain_plan_capacity(const drain_view_t *v, drain_plan_t *p);

/* What a VMI's migration moves: its guest memory, else its memory
 * request, bytes (0 when neither is known). */
int64_t drain_vmi_memory(const kube_vmi_t *vmi);

/* The node a migration evacuates: vmdrain's carry it as the label
 * vmdrain.io/node, KubeVirt's evacuations as the annotation
 * kubevirt.io/evacuationMigration; NULL for neither. */
const char *drain_mig_source(const kube_obj_t *mig);

/* True when m is a migration of vmdrain's that ended (Succeeded or Failed)
 * and whose end is not reported yet (no vmdrain.io/reported annotation):
 * its Events are owed, also when it ended while vmdrain was not running
 * or not leading. */
bool drain_mig_unreported(const kube_migration_t *m);

/* What a VMI needs on a target node: its memory request, else its guest
 * memory, bytes. */
int64_t drain_vmi_need(const kube_vmi_t *vmi);

/* Whether a node could take the VMIs of a drain (a target of the capacity
 * check): schedulable, Ready, its allocatable memory known, and not drained
 * itself (no drain taint, no drain under way). */
bool drain_capacity_target(const kube_node_t *n, const drain_config_t *cfg);

/* What a plan asks of the node's NodeDrain. */
typedef struct drain_record_plan {
    bool create;      /* write vmdrain's record of the drain (there is no NodeDrain) */
    bool expire;      /* delete vmdrain's record: its drain ended records_ttl ago */
    int finalizer;    /* +1 add vmdrain's finalizer, -1 remove it, 0 leave it */
    bool status;      /* write the status (drain_record_status()) */
    double expire_in; /* seconds until the record expires; 0 for none */
} drain_record_plan_t;

/* Decides, from the view (its node and NodeDrain) and the node's plan. */
void drain_record_decide(const drain_view_t *v, const drain_plan_t *p, drain_record_plan_t *out);

/* The record to create for the view's node, as JSON. Returns its length or
 * -1 (memory); the caller frees *out. */
int drain_record_body(const drain_view_t *v, const drain_plan_t *p, char **out);

/* The merge patch of the status subresource: {"status": {...}}. Returns its
 * length or -1 (memory); the caller frees *out. */
int drain_record_status(const drain_view_t *v, const drain_plan_t *p, char **out);

/* The JSON patch that adds (add) or removes vmdrain's finalizer, guarded
 * by the object's resourceVersion. Returns its length or -1. */
int drain_record_finalizer_patch(const kube_nodedrain_t *nd, bool add, char **out);

/* Seconds until the VMIs still to move have moved: each takes its guest
 * memory / bandwidth seconds (one in flight what is left of that since its
 * migration was made), at most parallel at once, in the order given
 * (those in flight first). -1 when the bandwidth is unlimited (0). */
double drain_estimate_seconds(const drain_vmi_entry_t *e, size_t n, vd_time_t now,
                              int64_t bandwidth, int parallel);

#endif
