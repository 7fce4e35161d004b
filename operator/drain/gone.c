/*
 * drain/gone — see gone.h. Calls drain/history; called by drain/sync.c.
 */
#include "drain/gone.h"
#include "drain/history.h"

#include <stdlib.h>
#include <string.h>

bool drain_gone_was_draining(drain_state_t last, const kube_nodedrain_t *nd)
{
    drain_state_t s = last;
    if (s == DRAIN_STATE_NONE && nd && !nd->obj.deleted.sec)
        s = drain_state_parse(nd->phase);
    return s == DRAIN_STATE_DRAINING || s == DRAIN_STATE_BLOCKED || s == DRAIN_STATE_FAILED;
}

static bool in_flight(const drain_view_t *v, const kube_vmi_t *vmi)
{
    for (size_t i = 0; i < v->n_migs; i++)
        if (drain__mig_of_vmi(v->migs[i], vmi) && drain_migration_in_flight(v->migs[i]))
            return true;
    return false;
}

static const char why_left[] = "its node was deleted during the drain";

int drain_reconcile_gone(const drain_view_t *v, bool draining, drain_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    if (v->n_vmis == 0)
        return 0;
    p->entries = calloc(v->n_vmis, sizeof(*p->entries));
    p->vmi_writes = calloc(2 * v->n_vmis, sizeof(*p->vmi_writes));
    if (!p->entries || !p->vmi_writes) {
        drain_plan_free(p);
        return -1;
    }
    for (size_t i = 0; i < v->n_vmis; i++) {
        const kube_vmi_t *vmi = v->vmis[i];
        const char *mark = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
        bool marked = mark && strcmp(mark, v->node->obj.name) == 0;
        bool labelled = kube_obj_label(&vmi->obj, DRAIN_LABEL_EVACUATING) != NULL;
        if (!draining && !marked && !labelled)
            continue;
        if (in_flight(v, vmi)) {
            p->migrating++;
            continue;
        }
        p->entries[p->n_entries++] =
            (drain_vmi_entry_t){.vmi = vmi, .state = DRAIN_VMI_PENDING, .reason = why_left};
        if (marked)
            p->vmi_writes[p->n_vmi_writes++] = (drain_vmi_write_t){vmi, DRAIN_VMI_UNMARK, why_left};
        if (labelled)
            p->vmi_writes[p->n_vmi_writes++] =
                (drain_vmi_write_t){vmi, DRAIN_VMI_UNLABEL, why_left};
    }
    p->total = (int)p->n_entries + p->migrating;
    return 0;
}
