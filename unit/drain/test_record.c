#include <criterion/criterion.h>

#include "drain/record.h"
#include "drain/reconcile.h"
#include "../testobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NodeDrains (the third trigger, the records, their status), decided by
 * drain_reconcile() and drain/record.c from objects decoded as the
 * operator decodes them. */

TestSuite(record, .fini = test_obj_release);

/* Node n1: cordoned or not, tainted or not, with these annotations. */
static const kube_node_t *n1(bool unschedulable, bool tainted, const char *annotations)
{
    char j[2048];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-n1\",\"resourceVersion\":\"4\","
             "\"annotations\":{%s}},\"spec\":{\"unschedulable\":%s%s}}",
             annotations, unschedulable ? "true" : "false",
             tainted ? ",\"taints\":[{\"key\":\"kubevirt.io/drain\",\"effect\":\"NoSchedule\"}]"
                     : "");
    return kube_obj_as_node(test_obj_kept(KUBE_KIND_NODE, j));
}

/* The NodeDrain n1; metadata and status are the insides of their objects. */
static const kube_nodedrain_t *nd(const char *metadata, const char *spec, const char *status)
{
    char j[2048];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-nd\",\"resourceVersion\":\"31\","
             "\"generation\":2,\"creationTimestamp\":\"2026-03-01T10:00:00Z\"%s%s},"
             "\"spec\":{\"nodeName\":\"n1\"%s%s},\"status\":{%s}}",
             metadata[0] ? "," : "", metadata, spec[0] ? "," : "", spec, status);
    return kube_obj_as_nodedrain(test_obj_kept(KUBE_KIND_NODEDRAIN, j));
}

static const kube_vmi_t *vmi1(const char *name, const char *uid)
{
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"uid\":\"%s\"},"
             "\"spec\":{\"evictionStrategy\":\"LiveMigrate\",\"domain\":{\"memory\":"
             "{\"guest\":\"2Gi\"}}},\"status\":{\"nodeName\":\"n1\",\"phase\":\"Running\","
             "\"conditions\":[{\"type\":\"LiveMigratable\",\"status\":\"True\"}]}}",
             name, uid);
    return kube_obj_as_vmi(test_obj_kept(KUBE_KIND_VMI, j));
}

static drain_config_t cfg;

static drain_view_t view(const char *now, const kube_node_t *n, const kube_nodedrain_t *d,
                         const kube_vmi_t *const *vmis, size_t nv)
{
    drain_config_defaults(&cfg);
    cfg.live_migration_enabled = true;
    drain_view_t v = {.cfg = &cfg, .node = n, .vmis = vmis, .n_vmis = nv, .nodedrain = d};
    cr_assert_eq(time_parse_rfc3339(now, &v.now, NULL, 0), 0);
    v.records_ttl = 3600;
    return v;
}

static const drain_event_t *find_event(const drain_plan_t *p, const char *reason)
{
    for (size_t i = 0; i < p->n_events; i++)
        if (strcmp(p->events[i].reason, reason) == 0)
            return &p->events[i];
    return NULL;
}

#define DRAINING_BY_ND                                                                             \
    "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"nodedrain\","                      \
    "\"vmdrain.io/cordoned-by\":\"vmdrain\",\"vmdrain.io/started-at\":\"2026-03-01T10:00:01Z\""

Test(record, a_nodedrain_starts_the_drain_and_gets_the_finalizer)
{
    const kube_vmi_t *vmis[] = {vmi1("a", "aaaaaaaa-1")};
    drain_view_t v = view("2026-03-01T10:00:01Z", n1(false, false, ""),
                          nd("", "\"reason\":\"kernel upgrade\"", ""), vmis, 1);
    drain_plan_t p;
    drain_record_plan_t rp;

    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect(p.requested && !p.tainted && !p.evicting);
    cr_expect_str_eq(p.trigger, "nodedrain");
    cr_expect_eq(p.cordon, +1);
    cr_expect_str_eq(p.cordoned_by, "vmdrain");
    cr_expect_eq(p.n_candidates, 1);
    const drain_event_t *e = find_event(&p, "DrainStarted");
    cr_assert_not_null(e);
    cr_expect_not_null(strstr(e->message, "NodeDrain n1: kernel upgrade"), "%s", e->message);
    drain_record_decide(&v, &p, &rp);
    cr_expect_eq(rp.finalizer, +1);
    cr_expect(rp.status && !rp.create && !rp.expire);
    drain_plan_free(&p);
}

Test(record, a_record_or_a_deleted_nodedrain_asks_for_nothing)
{
    drain_view_t v =
        view("2026-03-01T10:00:01Z", n1(false, false, ""),
             nd("\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\"}", "", ""), NULL, 0);
    cr_expect_not(drain_nodedrain_asks(&v), "vmdrain's record is no trigger");
    v.nodedrain = nd("\"deletionTimestamp\":\"2026-03-01T10:05:00Z\"", "", "");
    cr_expect_not(drain_nodedrain_asks(&v));
    v.nodedrain = nd("", "", "\"phase\":\"Completed\"");
    cr_expect_not(drain_nodedrain_asks(&v), "completed under OnCompletion");
    v.nodedrain = nd("", "", "");
    cr_expect(drain_nodedrain_asks(&v));
}

Test(record, deleting_the_nodedrain_cancels_then_releases_it)
{
    const kube_nodedrain_t *gone =
        nd("\"deletionTimestamp\":\"2026-03-01T10:05:00Z\",\"finalizers\":[\"vmdrain.io/drain\"]",
           "", "\"phase\":\"Draining\"");
    drain_view_t v = view("2026-03-01T10:05:01Z", n1(true, false, DRAINING_BY_ND), gone, NULL, 0);
    drain_plan_t p;
    drain_record_plan_t rp;

    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_eq(p.state, DRAIN_STATE_CANCELLED);
    cr_expect_eq(p.cordon, -1);
    cr_expect_str_eq(p.message, "drain cancelled: the NodeDrain is being deleted");
    drain_record_decide(&v, &p, &rp);
    cr_expect_eq(rp.finalizer, 0, "the uncordon is not written yet");
    drain_plan_free(&p);

    /* the node shows the end: the finalizer goes */
    v.node =
        n1(false, false, "\"vmdrain.io/state\":\"Cancelled\",\"vmdrain.io/trigger\":\"nodedrain\"");
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_eq(p.cordon, 0);
    drain_record_decide(&v, &p, &rp);
    cr_expect_eq(rp.finalizer, -1);
    drain_plan_free(&p);
}

Test(record, each_trigger_names_what_ended_it)
{
    /* kubectl drain, then kubectl uncordon: no taint was ever there */
    drain_view_t v = view(
        "2026-03-01T10:05:01Z",
        n1(false, false, "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"eviction\""),
        NULL, NULL, 0);
    drain_plan_t p;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_eq(p.state, DRAIN_STATE_CANCELLED);
    cr_expect_str_eq(p.message, "drain cancelled: the node was uncordoned");
    const drain_event_t *e = find_event(&p, "DrainCancelled");
    cr_assert_not_null(e);
    cr_expect_not_null(strstr(e->message, "the node was uncordoned"), "%s", e->message);
    drain_plan_free(&p);

    v.node = n1(true, false, "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"taint\"");
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_str_eq(p.message, "drain cancelled: the taint was removed");
    drain_plan_free(&p);

    v.node = n1(true, false, DRAINING_BY_ND);
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_str_eq(p.message, "drain cancelled: the NodeDrain was deleted");
    drain_plan_free(&p);
}

Test(record, on_completion_uncordons_once_and_keeps_the_nodedrain)
{
    const kube_nodedrain_t *d = nd("", "\"uncordonPolicy\":\"OnCompletion\"", "");
    drain_view_t v = view("2026-03-01T10:09:00Z", n1(true, false, DRAINING_BY_ND), d, NULL, 0);
    drain_plan_t p;
    drain_record_plan_t rp;

    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_eq(p.state, DRAIN_STATE_COMPLETED);
    cr_expect_eq(p.cordon, -1);
    cr_expect_not(p.remove_taint, "there is no taint to remove");
    cr_expect_not_null(find_event(&p, "DrainCompleted"));
    drain_record_decide(&v, &p, &rp);
    cr_expect(rp.status && rp.finalizer == 0 && !rp.expire);
    drain_plan_free(&p);

    /* the node shows the end, the NodeDrain's status not yet: no new drain */
    v.node = n1(false, false,
                "\"vmdrain.io/state\":\"Completed\",\"vmdrain.io/trigger\":\"nodedrain\","
                "\"vmdrain.io/completed-at\":\"2026-03-01T10:09:00Z\"");
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_not(p.requested);
    cr_expect_eq(p.cordon, 0, "a completed NodeDrain does not cordon again");
    cr_expect_eq(p.state, DRAIN_STATE_COMPLETED);
    drain_plan_free(&p);
}

Test(record, a_taint_drain_is_recorded_and_the_record_expires)
{
    drain_view_t v = view("2026-03-01T10:00:01Z", n1(false, true, ""), NULL, NULL, 0);
    drain_plan_t p;
    drain_record_plan_t rp;
    char *body = NULL;

    cr_assert_eq(drain_reconcile(&v, &p), 0);
    drain_record_decide(&v, &p, &rp);
    cr_expect(rp.create);
    cr_assert_gt(drain_record_body(&v, &p, &body), 0);
    cr_expect_not_null(strstr(body, "\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\"}"), "%s",
                       body);
    cr_expect_not_null(strstr(body, "the taint kubevirt.io/drain"), "%s", body);
    cr_expect_not_null(strstr(body, "\"nodeName\":\"n1\""), "%s", body);
    free(body);
    drain_plan_free(&p);

    /* ended ten minutes ago: kept for an hour, gone with a retention of 5 min */
    v.node =
        n1(false, false, "\"vmdrain.io/state\":\"Completed\",\"vmdrain.io/trigger\":\"taint\"");
    v.nodedrain = nd("\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\"}", "",
                     "\"phase\":\"Completed\",\"completionTime\":\"2026-03-01T09:50:01Z\"");
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    drain_record_decide(&v, &p, &rp);
    cr_expect(!rp.expire && rp.status);
    cr_expect_float_eq(rp.expire_in, 3000, 1e-9, "the node is reconciled when it expires");
    v.records_ttl = 300;
    drain_record_decide(&v, &p, &rp);
    cr_expect(rp.expire && !rp.status);
    drain_plan_free(&p);
}

Test(record, the_status_keeps_transition_times_and_lists_the_vmis)
{
    const kube_vmi_t *vmis[] = {vmi1("a", "aaaaaaaa-1"), vmi1("b", "bbbbbbbb-2")};
    const kube_nodedrain_t *d =
        nd("", "",
           "\"conditions\":[{\"type\":\"Progressing\",\"status\":\"True\","
           "\"lastTransitionTime\":\"2026-03-01T10:00:02Z\"},{\"type\":\"Drained\","
           "\"status\":\"True\",\"lastTransitionTime\":\"2026-03-01T09:00:00Z\"}]");
    drain_view_t v = view("2026-03-01T10:01:00Z", n1(true, false, DRAINING_BY_ND), d, vmis, 2);
    drain_plan_t p;
    char *body = NULL;

    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_assert_gt(drain_record_status(&v, &p, &body), 0);
    cr_expect_not_null(strstr(body, "\"phase\":\"Draining\",\"trigger\":\"nodedrain\","
                                    "\"observedGeneration\":2,\"progress\":\"0/2\",\"total\":2"),
                       "%s", body);
    cr_expect_not_null(strstr(body, "{\"namespace\":\"ns\",\"name\":\"a\",\"state\":\"Pending\"}"),
                       "%s", body);
    cr_expect_not_null(strstr(body, "\"type\":\"Progressing\",\"status\":\"True\","
                                    "\"observedGeneration\":2,"
                                    "\"lastTransitionTime\":\"2026-03-01T10:00:02Z\""),
                       "an unchanged condition keeps its time: %s", body);
    cr_expect_not_null(strstr(body, "\"type\":\"Drained\",\"status\":\"False\","
                                    "\"observedGeneration\":2,"
                                    "\"lastTransitionTime\":\"2026-03-01T10:01:00Z\""),
                       "a changed one takes the time of the change: %s", body);
    /* two 2 GiB VMIs at 64 MiB/s, two at a time: 32 s, rounded up to 10 s */
    cr_expect_not_null(strstr(body, "\"estimatedCompletionTime\":\"2026-03-01T10:01:40Z\""), "%s",
                       body);
    cr_expect_not_null(strstr(body, "\"completionTime\":null"), "%s", body);
    free(body);
    drain_plan_free(&p);
}

Test(record, the_estimate_paces_what_is_left)
{
    const kube_vmi_t *a = vmi1("a", "aaaaaaaa-1");
    const kube_migration_t *m = kube_obj_as_migration(test_obj_kept(
        KUBE_KIND_MIGRATION, "{\"metadata\":{\"name\":\"m\",\"namespace\":\"ns\",\"uid\":\"u-m\","
                             "\"creationTimestamp\":\"2026-03-01T10:00:00Z\"},"
                             "\"spec\":{\"vmiName\":\"a\"},\"status\":{\"phase\":\"Running\"}}"));
    vd_time_t now;
    cr_assert_eq(time_parse_rfc3339("2026-03-01T10:00:10Z", &now, NULL, 0), 0);
    /* 2 GiB at 64 MiB/s: 32 s each; the one in flight for 10 s has 22 left */
    drain_vmi_entry_t e[] = {
        {a, DRAIN_VMI_PENDING, 0, NULL, ""},     {a, DRAIN_VMI_MIGRATING, 1, m, ""},
        {a, DRAIN_VMI_BLOCKED, 0, NULL, "x"},    {a, DRAIN_VMI_PENDING, 0, NULL, ""},
        {a, DRAIN_VMI_BY_KUBEVIRT, 0, NULL, ""},
    };
    int64_t bw = 64LL << 20;
    cr_expect_float_eq(drain_estimate_seconds(e, 5, now, bw, 1), 22 + 3 * 32, 1e-9);
    /* two lanes: 22 | 32, then 22+32=54 | 32+32=64 */
    cr_expect_float_eq(drain_estimate_seconds(e, 5, now, bw, 2), 64, 1e-9);
    cr_expect_float_eq(drain_estimate_seconds(e, 5, now, bw, 10), 32, 1e-9);
    cr_expect_float_eq(drain_estimate_seconds(e, 5, now, 0, 2), -1, 1e-9, "unlimited bandwidth");
    cr_expect_float_eq(drain_estimate_seconds(e, 0, now, bw, 2), 0, 1e-9);
}

Test(record, finalizer_patches_are_guarded_by_the_resource_version)
{
    char *body = NULL;
    const kube_nodedrain_t *none = nd("", "", "");
    cr_assert_gt(drain_record_finalizer_patch(none, true, &body), 0);
    cr_expect_str_eq(body, "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":"
                           "\"31\"},{\"op\":\"add\",\"path\":\"/metadata/finalizers\",\"value\":"
                           "[\"vmdrain.io/drain\"]}]");
    free(body);
    const kube_nodedrain_t *two = nd("\"finalizers\":[\"a.io/x\",\"vmdrain.io/drain\"]", "", "");
    cr_assert_gt(drain_record_finalizer_patch(two, true, &body), 0);
    cr_expect_not_null(strstr(body, "{\"op\":\"add\",\"path\":\"/metadata/finalizers/-\","
                                    "\"value\":\"vmdrain.io/drain\"}"),
                       "%s", body);
    free(body);
    cr_assert_gt(drain_record_finalizer_patch(two, false, &body), 0);
    cr_expect_not_null(strstr(body, "{\"op\":\"remove\",\"path\":\"/metadata/finalizers/1\"}"),
                       "%s", body);
    free(body);
}

static const drain_target_t *given_targets;
static size_t n_given, asked;

static const drain_target_t *targets_of(void *ud, size_t *n)
{
    (void)ud;
    asked++;
    *n = n_given;
    return given_targets;
}

Test(record, vmis_that_do_not_fit_elsewhere_are_said_at_the_start)
{
    const kube_vmi_t *vmis[] = {vmi1("a", "aaaaaaaa-1"), vmi1("b", "bbbbbbbb-2")};
    /* 3 GiB free in all, 2 GiB at most on one node: one 2 GiB VMI fits */
    const drain_target_t t[] = {{"n2", 8LL << 30, 6LL << 30}, {"n3", 8LL << 30, 7LL << 30}};
    drain_view_t v = view("2026-03-01T10:00:01Z", n1(false, true, ""), NULL, vmis, 2);
    drain_plan_t p;

    given_targets = t;
    n_given = 2;
    v.targets = targets_of;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect(p.short_of_capacity);
    cr_expect_eq(p.n_candidates, 2, "vmdrain still migrates what fits");
    cr_expect_str_eq(p.message, "0 migrating, 2 pending; capacity: 1 of 2 VMI(s) (2.0 GiB) do not "
                                "fit: 3.0 GiB free on 2 schedulable node(s), the largest of "
                                "them needs 2.0 GiB");
    const drain_event_t *e = find_event(&p, "InsufficientCapacity");
    cr_assert_not_null(e, "a Warning with the drain's start");
    cr_expect_str_eq(e->type, "Warning");
    drain_plan_free(&p);

    /* under way: the message stays, the Event is not sent again */
    v.node = n1(true, true,
                "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"taint\","
                "\"vmdrain.io/cordoned-by\":\"vmdrain\","
                "\"vmdrain.io/started-at\":\"2026-03-01T10:00:01Z\"");
    v.nodedrain = nd("\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\"}", "", "");
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect(p.short_of_capacity);
    cr_expect_null(find_event(&p, "InsufficientCapacity"));
    char *body = NULL;
    cr_assert_gt(drain_record_status(&v, &p, &body), 0);
    cr_expect_not_null(strstr(body, "\"type\":\"Blocked\",\"status\":\"True\""), "%s", body);
    cr_expect_not_null(strstr(body, "\"reason\":\"InsufficientCapacity\""), "%s", body);
    free(body);
    drain_plan_free(&p);

    /* room enough: nothing said */
    const drain_target_t big[] = {{"n2", 64LL << 30, 0}};
    given_targets = big;
    n_given = 1;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_not(p.short_of_capacity);
    cr_expect_str_eq(p.message, "0 migrating, 2 pending");
    drain_plan_free(&p);

    /* a node that does not drain never asks for the targets */
    asked = 0;
    v.node = n1(true, false, "");
    v.nodedrain = NULL;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_eq(asked, 0, "the nodes are walked only when the check runs");
    drain_plan_free(&p);
}
