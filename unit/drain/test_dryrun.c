#include <criterion/criterion.h>

#include "drain/dryrun.h"
#include "../testobj.h"

#include <stdio.h>
#include <string.h>

#define GI (1LL << 30)

static const kube_node_t *node(const char *name, const char *mem, bool cordoned)
{
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"uid\":\"u-%s\"},\"spec\":{\"unschedulable\":%s},"
             "\"status\":{\"allocatable\":{\"memory\":\"%s\"},\"conditions\":[{\"type\":"
             "\"Ready\",\"status\":\"True\"}]}}",
             name, name, cordoned ? "true" : "false", mem);
    return kube_obj_as_node(test_obj_kept(KUBE_KIND_NODE, j));
}

/* A running VMI on node; created at second `created` (the planner's FIFO
 * tie-break). */
static const kube_vmi_t *vmi(const char *name, const char *node_name, const char *mem,
                             const char *strategy, bool migratable, int created)
{
    char j[2048];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"uid\":\"uid-%s\","
             "\"creationTimestamp\":\"2026-01-01T00:00:%02dZ\"},"
             "\"spec\":{\"evictionStrategy\":\"%s\",\"domain\":{\"memory\":{\"guest\":\"%s\"}}},"
             "\"status\":{\"nodeName\":\"%s\",\"phase\":\"Running\",\"conditions\":[{\"type\":"
             "\"LiveMigratable\",\"status\":\"%s\"%s}]}}",
             name, name, created, strategy, mem, node_name, migratable ? "True" : "False",
             migratable ? "" : ",\"reason\":\"DisksNotLiveMigratable\"");
    return kube_obj_as_vmi(test_obj_kept(KUBE_KIND_VMI, j));
}

static drain_config_t config(int cluster, int per_node, int64_t bandwidth)
{
    drain_config_t c;
    drain_config_defaults(&c);
    c.live_migration_enabled = true;
    c.parallel_migrations_per_cluster = cluster;
    c.parallel_outbound_per_node = per_node;
    c.bandwidth_per_migration = bandwidth;
    return c;
}

static const drain_dryrun_vmi_t *find(const drain_dryrun_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_vmis; i++)
        if (strcmp(d->vmis[i].vmi->obj.name, name) == 0)
            return &d->vmis[i];
    cr_assert_fail("no VMI %s in the plan", name);
    return NULL;
}

Test(dryrun, moves_in_planner_order_on_the_virtual_clock, .fini = test_obj_release)
{
    const kube_node_t *n1 = node("n1", "64Gi", false), *n2 = node("n2", "64Gi", false);
    const kube_vmi_t *v[] = {
        vmi("small", "n1", "1Gi", "LiveMigrate", true, 1),
        vmi("large", "n1", "4Gi", "LiveMigrate", true, 2),
        vmi("mid", "n1", "2Gi", "LiveMigrate", true, 3),
        vmi("stuck", "n1", "1Gi", "LiveMigrate", false, 4),
        vmi("none", "n1", "1Gi", "None", true, 5),
        vmi("elsewhere", "n2", "8Gi", "LiveMigrate", true, 6),
    };
    const kube_node_t *plan[] = {n1}, *all[] = {n1, n2};
    drain_config_t cfg = config(5, 2, GI); /* 1 GiB/s: a GiB is a second */
    drain_dryrun_in_t in = {
        .cfg = &cfg, .plan = plan, .n_plan = 1, .nodes = all, .n_nodes = 2, .vmis = v, .n_vmis = 6};
    drain_dryrun_t d;

    cr_assert_eq(drain_dryrun(&in, &d), 0);
    /* largest first, two at a time: large 0-4, mid 0-2, small 2-3 */
    cr_expect_eq(find(&d, "large")->order, 1);
    cr_expect_eq(find(&d, "mid")->order, 2);
    cr_expect_eq(find(&d, "small")->order, 3);
    cr_expect_float_eq(find(&d, "small")->start, 2.0, 1e-9);
    cr_expect_float_eq(find(&d, "small")->end, 3.0, 1e-9);
    cr_expect_float_eq(d.seconds, 4.0, 1e-9);
    cr_expect_eq(d.peak_in_flight, 2);
    cr_expect_eq(find(&d, "stuck")->kind, DRAIN_DRYRUN_BLOCKED);
    cr_expect_str_eq(find(&d, "stuck")->reason, "DisksNotLiveMigratable");
    cr_expect_eq(find(&d, "none")->kind, DRAIN_DRYRUN_LEFT);
    cr_expect(strstr(find(&d, "none")->reason, "None") != NULL);
    cr_expect_eq(d.n_vmis, 5, "the VMI on the other node is not part of the plan");
    cr_expect_str_eq(d.vmis[0].vmi->obj.name, "large", "moves come first, in order");
    cr_expect_eq(d.nodes[0].moves, 3);
    cr_expect_eq(d.nodes[0].blocked, 1);
    cr_expect_eq(d.nodes[0].left, 1);
    cr_expect(drain_capacity_fits(&d.capacity));
    cr_expect_eq(d.capacity.targets, 1);
    cr_expect_not(d.complete, "a VMI would block");
    cr_expect_not(d.rate_assumed);
    drain_dryrun_free(&d);
}

Test(dryrun, the_nodes_outside_the_plan_must_hold_the_moves, .fini = test_obj_release)
{
    const kube_node_t *n1 = node("n1", "64Gi", false), *n2 = node("n2", "4Gi", false),
                      *n3 = node("n3", "64Gi", true);
    const kube_vmi_t *v[] = {vmi("a", "n1", "3Gi", "LiveMigrate", true, 1),
                             vmi("b", "n1", "3Gi", "LiveMigrate", true, 2)};
    const kube_node_t *plan[] = {n1}, *all[] = {n1, n2, n3};
    drain_config_t cfg = config(5, 2, 0);
    drain_dryrun_in_t in = {.cfg = &cfg,
                            .plan = plan,
                            .n_plan = 1,
                            .nodes = all,
                            .n_nodes = 3,
                            .vmis = v,
                            .n_vmis = 2,
                            .rate = GI};
    drain_dryrun_t d;

    cr_assert_eq(drain_dryrun(&in, &d), 0);
    /* the cordoned n3 takes nothing; n2 holds one of the two */
    cr_expect_eq(d.capacity.targets, 1);
    cr_expect_eq(d.capacity.unplaced, 1);
    cr_expect_not(d.complete);
    cr_expect(d.rate_assumed, "bandwidthPerMigration 0 is unlimited: the rate is assumed");
    cr_expect_eq(d.rate, GI);
    cr_expect_float_eq(d.seconds, 3.0, 1e-9);
    drain_dryrun_free(&d);

    /* without the second VMI it fits and would complete */
    in.n_vmis = 1;
    cr_assert_eq(drain_dryrun(&in, &d), 0);
    cr_expect(d.complete);
    drain_dryrun_free(&d);
}

Test(dryrun, a_limit_of_zero_never_ends, .fini = test_obj_release)
{
    const kube_node_t *n1 = node("n1", "64Gi", false), *n2 = node("n2", "64Gi", false);
    const kube_vmi_t *v[] = {vmi("a", "n1", "1Gi", "LiveMigrate", true, 1)};
    const kube_node_t *plan[] = {n1}, *all[] = {n1, n2};
    drain_config_t cfg = config(0, 2, GI);
    drain_dryrun_in_t in = {
        .cfg = &cfg, .plan = plan, .n_plan = 1, .nodes = all, .n_nodes = 2, .vmis = v, .n_vmis = 1};
    drain_dryrun_t d;

    cr_assert_eq(drain_dryrun(&in, &d), 0);
    cr_expect_lt(d.seconds, 0);
    cr_expect_eq(find(&d, "a")->order, 0);
    cr_expect_not(d.complete);
    drain_dryrun_free(&d);
}
