/*
 * drain/gone — what a node deleted during its drain leaves behind, as a
 * pure function of the view: the VMIs that still name the node and that no
 * migration is moving, to be reported (an Event on each, a log line, a
 * metric), and vmdrain's marks and labels on them, to be cleared. The
 * migrations in flight from the node are left to finish. The writer
 * (drain/writer.c) sends what this decides; the node's state in memory is
 * dropped by drain/sync.c.
 *
 * May call: drain/reconcile.h (the view, the plan, the names),
 * drain/history.h, kube/objects.
 */
#ifndef VMDRAIN_DRAIN_GONE_H
#define VMDRAIN_DRAIN_GONE_H

#include "drain/reconcile.h"

#include <stdbool.h>

/* Whether a node's drain was under way by what is known of it once the
 * node is gone: the state of this replica's last reconcile of it, or the
 * phase of its NodeDrain (nd may be NULL). */
bool drain_gone_was_draining(drain_state_t last, const kube_nodedrain_t *nd);

/* The plan for a node that is gone while the view's VMIs still name it
 * (v->node carries only the name). A VMI is of the drain when draining, or
 * when it carries vmdrain's mark (vmdrain.io/evacuate-from=<node>) or
 * label (vmdrain.io/evacuating). Of those, each with a migration in flight
 * counts in p->migrating; each other is left: an entry in p->entries
 * (state PENDING, its reason), and its mark and label are cleared
 * (p->vmi_writes). Returns 0, or -1 when memory runs out; the caller
 * releases the plan with drain_plan_free(). */
int drain_reconcile_gone(const drain_view_t *v, bool draining, drain_plan_t *p);

#endif
