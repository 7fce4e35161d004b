#include <criterion/criterion.h>

#include "drain/gone.h"
#include "drain/reconcile.h"
#include "../testobj.h"

#include <stdio.h>
#include <string.h>

/* A node deleted during its drain (drain/gone.c): which VMIs are left,
 * which are still moving, and which of vmdrain's marks are cleared. */

TestSuite(gone, .fini = test_obj_release);

/* VMI name on node n1; meta is more of its metadata ("" for none). */
static const kube_vmi_t *vmi(const char *name, const char *meta)
{
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"uid\":\"u-%s\"%s%s},"
             "\"spec\":{\"evictionStrategy\":\"LiveMigrate\"},"
             "\"status\":{\"nodeName\":\"n1\",\"phase\":\"Running\"}}",
             name, name, meta[0] ? "," : "", meta);
    return kube_obj_as_vmi(test_obj_kept(KUBE_KIND_VMI, j));
}

static const kube_migration_t *mig(const char *vm, const char *phase)
{
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"vmdrain-%s-1\",\"namespace\":\"ns\",\"uid\":\"m-%s\","
             "\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\",\"vmdrain.io/node\":\"n1\"}},"
             "\"spec\":{\"vmiName\":\"%s\"},\"status\":{\"phase\":\"%s\"}}",
             vm, vm, vm, phase);
    return kube_obj_as_migration(test_obj_kept(KUBE_KIND_MIGRATION, j));
}

static kube_node_t stand_in;

static drain_view_t view(const kube_vmi_t *const *vmis, size_t nv,
                         const kube_migration_t *const *migs, size_t nm)
{
    stand_in.obj = (kube_obj_t){.kind = KUBE_KIND_NODE, .name = "n1", .ns = "", .uid = ""};
    return (drain_view_t){
        .node = &stand_in, .vmis = vmis, .n_vmis = nv, .migs = migs, .n_migs = nm};
}

static size_t writes_of(const drain_plan_t *p, const kube_vmi_t *v, drain_vmi_write_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_vmi_writes; i++)
        n += p->vmi_writes[i].vmi == v && p->vmi_writes[i].kind == kind;
    return n;
}

Test(gone, a_draining_node_leaves_the_vmis_no_migration_moves_and_clears_their_marks)
{
    const kube_vmi_t *waiting = vmi("waiting", "");
    const kube_vmi_t *marked =
        vmi("marked", "\"annotations\":{\"vmdrain.io/evacuate-from\":\"n1\"},"
                      "\"labels\":{\"vmdrain.io/evacuating\":\"true\"}");
    const kube_vmi_t *moving = vmi("moving", "\"labels\":{\"vmdrain.io/evacuating\":\"true\"}");
    const kube_vmi_t *failed = vmi("failed", "");
    const kube_vmi_t *vmis[] = {waiting, marked, moving, failed};
    const kube_migration_t *migs[] = {mig("moving", "Running"), mig("failed", "Failed")};
    drain_view_t v = view(vmis, 4, migs, 2);
    drain_plan_t p;

    cr_assert_eq(drain_reconcile_gone(&v, true, &p), 0);
    cr_expect_eq(p.n_entries, 3);
    cr_expect_eq(p.migrating, 1);
    cr_expect_eq(p.total, 4);
    for (size_t i = 0; i < p.n_entries; i++) {
        cr_expect_neq(p.entries[i].vmi, moving, "a VMI whose migration runs was left");
        cr_expect_str_eq(p.entries[i].reason, "its node was deleted during the drain");
    }
    cr_expect_eq(writes_of(&p, marked, DRAIN_VMI_UNMARK), 1);
    cr_expect_eq(writes_of(&p, marked, DRAIN_VMI_UNLABEL), 1);
    cr_expect_eq(writes_of(&p, moving, DRAIN_VMI_UNLABEL), 0,
                 "the label of a moving VMI was cleared");
    cr_expect_eq(writes_of(&p, waiting, DRAIN_VMI_UNMARK) +
                     writes_of(&p, waiting, DRAIN_VMI_UNLABEL),
                 0, "a write for a VMI without marks");
    drain_plan_free(&p);
}

Test(gone, a_node_not_draining_leaves_only_the_vmis_vmdrain_marked)
{
    const kube_vmi_t *plain = vmi("plain", "");
    const kube_vmi_t *marked =
        vmi("marked", "\"annotations\":{\"vmdrain.io/evacuate-from\":\"n1\"}");
    const kube_vmi_t *elsewhere =
        vmi("elsewhere", "\"annotations\":{\"vmdrain.io/evacuate-from\":\"n9\"}");
    const kube_vmi_t *vmis[] = {plain, marked, elsewhere};
    drain_view_t v = view(vmis, 3, NULL, 0);
    drain_plan_t p;

    cr_assert_eq(drain_reconcile_gone(&v, false, &p), 0);
    cr_assert_eq(p.n_entries, 1);
    cr_expect_eq(p.entries[0].vmi, marked);
    cr_expect_eq(p.n_vmi_writes, 1);
    cr_expect_eq(writes_of(&p, marked, DRAIN_VMI_UNMARK), 1);
    drain_plan_free(&p);
}

Test(gone, whether_the_drain_was_under_way)
{
    const kube_nodedrain_t *draining = kube_obj_as_nodedrain(
        test_obj_kept(KUBE_KIND_NODEDRAIN,
                      "{\"metadata\":{\"name\":\"n1\",\"uid\":\"nd\"},\"spec\":{\"nodeName\":"
                      "\"n1\"},\"status\":{\"phase\":\"Draining\"}}"));
    const kube_nodedrain_t *drained = kube_obj_as_nodedrain(
        test_obj_kept(KUBE_KIND_NODEDRAIN,
                      "{\"metadata\":{\"name\":\"n1\",\"uid\":\"nd2\"},\"spec\":{\"nodeName\":"
                      "\"n1\"},\"status\":{\"phase\":\"Drained\"}}"));
    cr_expect(drain_gone_was_draining(DRAIN_STATE_DRAINING, NULL));
    cr_expect(drain_gone_was_draining(DRAIN_STATE_BLOCKED, NULL));
    cr_expect_not(drain_gone_was_draining(DRAIN_STATE_DRAINED, draining),
                  "the last reconcile is what this replica knows best");
    cr_expect_not(drain_gone_was_draining(DRAIN_STATE_NONE, NULL));
    cr_expect(drain_gone_was_draining(DRAIN_STATE_NONE, draining), "after a restart");
    cr_expect_not(drain_gone_was_draining(DRAIN_STATE_NONE, drained));
}

Test(gone, no_vmi_no_plan)
{
    drain_view_t v = view(NULL, 0, NULL, 0);
    drain_plan_t p;
    cr_assert_eq(drain_reconcile_gone(&v, true, &p), 0);
    cr_expect_eq(p.total, 0);
    cr_expect_eq(p.n_entries, 0);
    drain_plan_free(&p);
}
