#include <criterion/criterion.h>

#include "drain/bodies.h"
#include "drain/reconcile.h"
#include "../testobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects for the tests are made the way the operator makes them: decoded
 * from Kubernetes JSON (../testobj.h). */
#define from_json test_obj_from_json

/* Node annotations of a drain that started at 2026-01-02T00:00:00Z. */
#define DRAINING_SINCE_MIDNIGHT                                                                    \
    "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\""

TestSuite(reconcile, .fini = test_obj_release);

/* A node; annotations is the inside of a JSON object, or "". */
static const kube_node_t *node(bool tainted, bool unschedulable, const char *annotations)
{
    char j[4096];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"n1\",\"uid\":\"node-uid\",\"resourceVersion\":\"77\","
             "\"annotations\":{%s}},\"spec\":{\"unschedulable\":%s,\"taints\":[%s]}}",
             annotations, unschedulable ? "true" : "false",
             tainted ? "{\"key\":\"kubevirt.io/drain\",\"value\":\"draining\","
                       "\"effect\":\"NoSchedule\"},{\"key\":\"other\",\"effect\":\"NoExecute\"}"
                     : "{\"key\":\"other\",\"effect\":\"NoExecute\"}");
    return kube_obj_as_node(test_obj_kept(KUBE_KIND_NODE, j));
}

static const kube_vmi_t *vmi_ann(const char *name, const char *uid, const char *strategy,
                                 bool migratable, const char *annotations);

static const kube_vmi_t *vmi(const char *name, const char *uid, const char *strategy,
                             bool migratable)
{
    return vmi_ann(name, uid, strategy, migratable, "");
}

static const kube_vmi_t *vmi_ann(const char *name, const char *uid, const char *strategy,
                                 bool migratable, const char *annotations)
{
    char j[4096], strat[64] = "";
    if (strategy)
        snprintf(strat, sizeof(strat), "\"evictionStrategy\":\"%s\",", strategy);
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"%s\","
             "\"resourceVersion\":\"5\",\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
             "\"annotations\":{%s}},"
             "\"spec\":{%s\"domain\":{\"memory\":{\"guest\":\"2Gi\"}}},"
             "\"status\":{\"nodeName\":\"n1\",\"phase\":\"Running\",\"conditions\":[{\"type\":"
             "\"LiveMigratable\",\"status\":\"%s\"%s}]}}",
             name, uid, annotations, strat, migratable ? "True" : "False",
             migratable ? "" : ",\"reason\":\"DisksNotLiveMigratable\",\"message\":\"PVC is RWO\"");
    return kube_obj_as_vmi(test_obj_kept(KUBE_KIND_VMI, j));
}

/* A migration; ours when attempt > 0 (named vmdrain-<uid8>-<attempt>). */
static const kube_migration_t *mig(const char *vmi_name, const char *vmi_uid, int attempt,
                                   const char *phase, const char *created, const char *changed)
{
    char j[4096], name[64], labels[256] = "";
    if (attempt > 0) {
        snprintf(name, sizeof(name), "vmdrain-%.8s-%d", vmi_uid, attempt);
        snprintf(labels, sizeof(labels),
                 "\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\",\"vmdrain.io/node\":\"n1\","
                 "\"vmdrain.io/vmi-uid\":\"%s\"},",
                 vmi_uid);
    } else {
        snprintf(name, sizeof(name), "foreign-%s", vmi_name);
    }
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"m-%s\",%s"
             "\"resourceVersion\":\"9\",\"creationTimestamp\":\"%s\"},"
             "\"spec\":{\"vmiName\":\"%s\"},\"status\":{\"phase\":\"%s\","
             "\"phaseTransitionTimestamps\":[{\"phase\":\"%s\",\"phaseTransitionTimestamp\":"
             "\"%s\"}]}}",
             name, name, labels, created, vmi_name, phase, phase, changed);
    return kube_obj_as_migration(test_obj_kept(KUBE_KIND_MIGRATION, j));
}

/* A migration of KubeVirt's evacuation controller: not ours, the source
 * node in the kubevirt.io/evacuationMigration annotation. */
static const kube_migration_t *evac(const char *vmi_name, const char *from, const char *phase,
                                    const char *created, const char *changed)
{
    char j[4096];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"kubevirt-evacuation-%s\",\"namespace\":\"default\","
             "\"uid\":\"e-%s\",\"resourceVersion\":\"9\",\"creationTimestamp\":\"%s\","
             "\"annotations\":{\"kubevirt.io/evacuationMigration\":\"%s\"}},"
             "\"spec\":{\"vmiName\":\"%s\"},\"status\":{\"phase\":\"%s\","
             "\"phaseTransitionTimestamps\":[{\"phase\":\"%s\",\"phaseTransitionTimestamp\":"
             "\"%s\"}]}}",
             vmi_name, vmi_name, created, from, vmi_name, phase, phase, changed);
    return kube_obj_as_migration(test_obj_kept(KUBE_KIND_MIGRATION, j));
}

static drain_config_t config(void)
{
    drain_config_t c;
    drain_config_defaults(&c);
    c.live_migration_enabled = true;
    return c;
}

static vd_time_t at(const char *s)
{
    vd_time_t t;
    cr_assert_eq(time_parse_rfc3339(s, &t, NULL, 0), 0);
    return t;
}

static drain_plan_t run(const drain_config_t *cfg, const char *now, const kube_node_t *n,
                        const kube_vmi_t **vmis, size_t nv, const kube_migration_t **migs,
                        size_t nm)
{
    drain_view_t v = {.cfg = cfg,
                      .now = at(now),
                      .node = n,
                      .vmis = vmis,
                      .n_vmis = nv,
                      .migs = migs,
                      .n_migs = nm};
    drain_plan_t p;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    return p;
}

static const drain_event_t *event(const drain_plan_t *p, const char *reason)
{
    for (size_t i = 0; i < p->n_events; i++)
        if (strcmp(p->events[i].reason, reason) == 0)
            return &p->events[i];
    return NULL;
}

Test(reconcile, taint_starts_a_drain_with_mixed_strategies)
{
    drain_config_t cfg = config();
    const kube_node_t *n = node(true, false, "");
    const kube_vmi_t *vmis[] = {
        vmi("lm-ok", "aaaaaaaa-1111", "LiveMigrate", true),
        vmi("lm-blocked", "bbbbbbbb-2222", "LiveMigrate", false),
        vmi("ifp-no", "cccccccc-3333", "LiveMigrateIfPossible", false),
        vmi("ifp-ok", "dddddddd-4444", "LiveMigrateIfPossible", true),
        vmi("none", "eeeeeeee-5555", "None", true),
        vmi("default", "ffffffff-6666", NULL, true),
    };
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", n, vmis, 6, NULL, 0);
    cr_expect(p.tainted);
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING);
    cr_expect_eq(p.cordon, +1);
    cr_expect_str_eq(p.cordoned_by, "vmdrain");
    cr_expect_str_eq(p.started_at, "2026-01-02T00:00:00Z");
    cr_assert_eq(p.n_candidates, 2);
    cr_expect_str_eq(p.candidates[0].name, "vmdrain-aaaaaaaa-1");
    cr_expect_str_eq(p.candidates[1].name, "vmdrain-dddddddd-1");
    cr_expect_eq(p.candidates[0].memory, 2LL << 30);
    cr_expect_eq(p.blocked, 1);
    cr_expect_str_eq(p.blocked_list, "default/lm-blocked:DisksNotLiveMigratable");
    cr_expect_str_eq(p.progress, "0/3");
    cr_expect_eq(p.pending, 2);
    cr_expect_not_null(event(&p, "DrainStarted"));
    const drain_event_t *b = event(&p, "VMIBlocked");
    cr_assert_not_null(b);
    cr_expect_eq(b->vmi, vmis[1]);
    cr_expect_not_null(strstr(b->message, "PVC is RWO"), "got: %s", b->message);
    drain_plan_free(&p);
}

Test(reconcile, cluster_default_strategy_applies_to_unset_vmis)
{
    drain_config_t cfg = config();
    cfg.eviction_strategy = KUBE_EVICTION_LIVE_MIGRATE;
    const kube_vmi_t *vmis[] = {vmi("default", "ffffffff-6666", NULL, true)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(true, false, ""), vmis, 1, NULL, 0);
    cr_expect_eq(p.n_candidates, 1);
    drain_plan_free(&p);
}

Test(reconcile, admin_cordon_is_not_claimed)
{
    drain_config_t cfg = config();
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(true, true, ""), NULL, 0, NULL, 0);
    cr_expect_eq(p.cordon, 0);
    cr_expect_null(p.cordoned_by, "an admin's cordon is not vmdrain's");
    cr_expect_eq(p.state, DRAIN_STATE_DRAINED);
    drain_plan_free(&p);
}

Test(reconcile, in_flight_migrations_are_adopted_not_duplicated)
{
    drain_config_t cfg = config();
    const kube_node_t *n =
        node(true, true,
             "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
             "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"");
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true),
                                vmi("b", "bbbbbbbb-2", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 0, "Running", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z"),
        mig("b", "bbbbbbbb-2", 1, "Scheduling", "2026-01-02T00:00:01Z", "2026-01-02T00:00:01Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:00Z", n, vmis, 2, migs, 2);
    cr_expect_eq(p.n_candidates, 0, "both VMIs have a migration in flight");
    cr_expect_eq(p.migrating, 2);
    cr_expect_eq(p.cordon, 0);
    cr_expect_null(event(&p, "DrainStarted"), "an ongoing drain does not start again");
    cr_expect_str_eq(p.started_at, "2026-01-02T00:00:00Z");
    drain_plan_free(&p);
}

Test(reconcile, failures_back_off_then_retry_with_the_next_attempt_number)
{
    drain_config_t cfg = config();
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Failed", "2026-01-02T00:00:01Z", "2026-01-02T00:01:00Z"),
        mig("a", "aaaaaaaa-1", 2, "Failed", "2026-01-02T00:01:30Z", "2026-01-02T00:02:00Z")};
    /* two failures: the wait is 20 s * 2^1 = 40 s after the last one,
     * counted from the end of its whole-second timestamp */
    drain_plan_t p = run(&cfg, "2026-01-02T00:02:30Z", node(true, true, ann), vmis, 1, migs, 2);
    cr_expect_eq(p.n_candidates, 0, "still backing off");
    cr_expect_float_eq(p.requeue_after, 11.0, 1e-6, "requeue in %.3f", p.requeue_after);
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING);
    drain_plan_free(&p);

    p = run(&cfg, "2026-01-02T00:02:40Z", node(true, true, ann), vmis, 1, migs, 2);
    cr_expect_eq(p.n_candidates, 0, "40 s after the floored timestamp is too early");
    drain_plan_free(&p);
    p = run(&cfg, "2026-01-02T00:02:41Z", node(true, true, ann), vmis, 1, migs, 2);
    cr_assert_eq(p.n_candidates, 1);
    cr_expect_eq(p.candidates[0].attempt, 3);
    cr_expect_eq(p.candidates[0].failures, 2, "a retry: MigrationRetry names two failures");
    cr_expect_str_eq(p.candidates[0].name, "vmdrain-aaaaaaaa-3");
    drain_plan_free(&p);
}

Test(reconcile, max_attempts_fails_the_vmi_and_the_node)
{
    drain_config_t cfg = config();
    cfg.max_migration_attempts = 2;
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Failed", "2026-01-02T00:00:01Z", "2026-01-02T00:01:00Z"),
        mig("a", "aaaaaaaa-1", 2, "Failed", "2026-01-02T00:01:30Z", "2026-01-02T00:02:00Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T01:00:00Z", node(true, true, ann), vmis, 1, migs, 2);
    cr_expect_eq(p.n_candidates, 0);
    cr_expect_eq(p.failed, 1);
    cr_expect_eq(p.state, DRAIN_STATE_FAILED);
    cr_expect_not_null(strstr(p.message, "failed 2 migration attempts"), "got: %s", p.message);
    drain_plan_free(&p);
}

Test(reconcile, succeeded_migration_counts_and_the_node_ends_drained)
{
    drain_config_t cfg = config();
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Succeeded", "2026-01-02T00:00:01Z", "2026-01-02T00:01:00Z"),
        mig("old", "99999999-9", 1, "Succeeded", "2025-12-01T00:00:01Z", "2025-12-01T00:01:00Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:05:00Z", node(true, true, ann), NULL, 0, migs, 2);
    cr_expect_eq(p.state, DRAIN_STATE_DRAINED);
    cr_expect_str_eq(p.progress, "1/1", "an earlier drain's migration does not count");
    cr_expect_str_eq(p.completed_at, "2026-01-02T00:05:00Z");
    cr_expect_not_null(event(&p, "DrainCompleted"));
    cr_expect_eq(p.cordon, 0, "stays cordoned while the taint is there");
    drain_plan_free(&p);
}

Test(reconcile, success_not_yet_visible_on_the_vmi_is_not_retried)
{
    drain_config_t cfg = config();
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Succeeded", "2026-01-02T00:00:01Z", "2026-01-02T00:01:00Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:01Z", node(true, true, ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_candidates, 0, "the VMI is about to move");
    cr_expect_str_eq(p.progress, "1/1", "counted once, as migrated");
    cr_expect_eq(p.migrating, 0);
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING, "drained once the cache shows the move");
    drain_plan_free(&p);
}

Test(reconcile, taint_removed_mid_drain_cancels_queued_and_uncordons)
{
    drain_config_t cfg = config();
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\","
                      "\"vmdrain.io/progress\":\"1/3\"";
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true),
                                vmi("b", "bbbbbbbb-2", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Running", "2026-01-02T00:00:01Z", "2026-01-02T00:00:05Z"),
        mig("b", "bbbbbbbb-2", 1, "Scheduling", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z"),
        mig("c", "cccccccc-3", 0, "Pending", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:03:00Z", node(false, true, ann), vmis, 2, migs, 3);
    cr_expect_not(p.tainted);
    cr_expect_eq(p.state, DRAIN_STATE_CANCELLED);
    cr_expect_eq(p.cordon, -1);
    cr_expect_null(p.cordoned_by);
    cr_assert_eq(p.n_deletes, 1, "only ours that have not started running");
    cr_expect_eq(p.deletes[0].mig, migs[1]);
    cr_expect_str_eq(p.deletes[0].abort_reason, DRAIN_ABORT_DRAIN_CANCELLED);
    cr_expect_eq(p.n_candidates, 0);
    cr_expect_not_null(event(&p, "DrainCancelled"));
    cr_expect_not_null(event(&p, "NodeUncordoned"));
    cr_expect_str_eq(p.progress, "1/3", "progress keeps its last value");
    drain_plan_free(&p);
}

Test(reconcile, taint_removed_after_drained_completes_and_keeps_admin_cordon)
{
    drain_config_t cfg = config();
    const char *ann = "\"vmdrain.io/state\":\"Drained\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    drain_plan_t p = run(&cfg, "2026-01-02T00:09:00Z", node(false, true, ann), NULL, 0, NULL, 0);
    cr_expect_eq(p.state, DRAIN_STATE_COMPLETED);
    cr_expect_eq(p.cordon, 0, "never uncordon a node cordoned by someone else");
    cr_expect_not_null(event(&p, "DrainCompleted"));
    cr_expect_null(event(&p, "NodeUncordoned"));
    drain_plan_free(&p);
}

Test(reconcile, on_completion_policy_removes_the_taint_and_uncordons)
{
    drain_config_t cfg = config();
    cfg.uncordon_policy = UNCORDON_ON_COMPLETION;
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    const kube_node_t *n = node(true, true, ann);
    drain_plan_t p = run(&cfg, "2026-01-02T00:09:00Z", n, NULL, 0, NULL, 0);
    cr_expect(p.remove_taint);
    cr_expect_eq(p.cordon, -1);
    cr_expect_eq(p.state, DRAIN_STATE_COMPLETED);
    drain_view_t v = {.cfg = &cfg, .now = at("2026-01-02T00:09:00Z"), .node = n};
    char *patch = NULL;
    cr_assert_gt(drain_node_patch(&v, &p, &patch), 0);
    cr_expect_not_null(strstr(patch, "\"taints\":[{\"key\":\"other\",\"effect\":\"NoExecute\"}]"),
                       "got: %s", patch);
    cr_expect_not_null(strstr(patch, "\"unschedulable\":null"), "got: %s", patch);
    cr_expect_not_null(strstr(patch, "\"resourceVersion\":\"77\""), "got: %s", patch);
    free(patch);
    drain_plan_free(&p);
}

Test(reconcile, uncordon_during_drain_is_undone_with_an_event)
{
    drain_config_t cfg = config();
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:00Z", node(true, false, ann), vmis, 1, NULL, 0);
    cr_expect_eq(p.cordon, +1);
    cr_expect_not_null(event(&p, "NodeCordoned"));
    drain_plan_free(&p);
}

Test(reconcile, without_the_gate_nothing_migrates_and_the_node_says_why)
{
    drain_config_t cfg = config();
    cfg.live_migration_enabled = false;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:00Z", node(true, false, ""), vmis, 1, NULL, 0);
    cr_expect_eq(p.n_candidates, 0);
    cr_expect_eq(p.state, DRAIN_STATE_BLOCKED);
    cr_expect_not_null(strstr(p.message, "LiveMigration feature gate"), "got: %s", p.message);
    drain_plan_free(&p);
}

Test(reconcile, patch_is_empty_once_the_node_shows_the_plan)
{
    drain_config_t cfg = config();
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_node_t *n = node(true, false, "");
    drain_view_t v = {
        .cfg = &cfg, .now = at("2026-01-02T00:00:00Z"), .node = n, .vmis = vmis, .n_vmis = 1};
    drain_plan_t p;
    char *patch = NULL;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_assert_gt(drain_node_patch(&v, &p, &patch), 0);
    cr_expect_not_null(strstr(patch, "\"vmdrain.io/state\":\"Draining\""), "got: %s", patch);
    cr_expect_not_null(strstr(patch, "\"labels\":{\"vmdrain.io/state\":\"draining\"}"), "got: %s",
                       patch);
    cr_expect_not_null(strstr(patch, "\"unschedulable\":true"), "got: %s", patch);
    free(patch);
    drain_plan_free(&p);

    /* the node after that patch: the same plan needs no write */
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\","
                      "\"vmdrain.io/progress\":\"0/1\",\"vmdrain.io/migrating\":\"0\","
                      "\"vmdrain.io/pending\":\"1\",\"vmdrain.io/failed\":\"0\","
                      "\"vmdrain.io/message\":\"0 migrating, 1 pending\","
                      "\"vmdrain.io/trigger\":\"taint\"";
    char j[2048];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"78\",\"labels\":{"
             "\"vmdrain.io/state\":\"draining\"},\"annotations\":{%s}},\"spec\":{"
             "\"unschedulable\":true,\"taints\":[{\"key\":\"kubevirt.io/drain\",\"effect\":"
             "\"NoSchedule\"}]}}",
             ann);
    v.node = kube_obj_as_node(test_obj_kept(KUBE_KIND_NODE, j));
    v.now = at("2026-01-02T00:00:07Z");
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_eq(drain_node_patch(&v, &p, &patch), 0, "unexpected patch: %s", patch);
    free(patch);
    drain_plan_free(&p);
}

Test(reconcile, migration_body_has_the_contract_names)
{
    const kube_vmi_t *v = vmi("vm-7", "0123456789abcdef", "LiveMigrate", true);
    drain_candidate_t c = {.vmi = v, .attempt = 2};
    snprintf(c.name, sizeof(c.name), "vmdrain-01234567-2");
    char *body = NULL;
    cr_assert_gt(drain_migration_body(&c, "n1", &body), 0);
    cr_expect_not_null(strstr(body, "\"name\":\"vmdrain-01234567-2\",\"namespace\":\"default\""),
                       "got: %s", body);
    cr_expect_not_null(strstr(body, "\"vmdrain.io/managed-by\":\"vmdrain\",\"vmdrain.io/node\":"
                                    "\"n1\",\"vmdrain.io/vmi-uid\":\"0123456789abcdef\""),
                       "got: %s", body);
    cr_expect_not_null(strstr(body, "\"kubevirt.io/evacuationMigration\":\"n1\""));
    cr_expect_not_null(strstr(body, "\"spec\":{\"vmiName\":\"vm-7\"}"));
    free(body);
}

Test(reconcile, vmi_gone_before_its_migration_ends_still_counts)
{
    drain_config_t cfg = config();
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    /* the VMI already shows the target node, its migration still Running */
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Running", "2026-01-02T00:00:01Z", "2026-01-02T00:00:05Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:00Z", node(true, true, ann), NULL, 0, migs, 1);
    cr_expect_eq(p.migrating, 1);
    cr_expect_str_eq(p.progress, "0/1", "the total does not dip");
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING, "not drained before the migration ends");
    drain_plan_free(&p);
}

static const char *draining_ann = "\"vmdrain.io/state\":\"Draining\","
                                  "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";

Test(reconcile, stuck_before_running_is_aborted_after_progress_timeout_with_a_record)
{
    drain_config_t cfg = config();
    cfg.progress_timeout = 30;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Scheduling", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z")};
    drain_plan_t p =
        run(&cfg, "2026-01-02T00:00:20Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_deletes, 0, "not yet");
    cr_expect_float_eq(p.requeue_after, 12.0, 1e-6, "deadline in %.1f s", p.requeue_after);
    drain_plan_free(&p);

    p = run(&cfg, "2026-01-02T00:00:33Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_assert_eq(p.n_deletes, 1);
    cr_expect_eq(p.deletes[0].mig, migs[0]);
    cr_expect_eq(p.deletes[0].vmi, vmis[0]);
    cr_expect_not_null(strstr(p.deletes[0].reason, "progressTimeout"), "%s", p.deletes[0].reason);
    cr_expect_str_eq(p.deletes[0].abort_reason, DRAIN_ABORT_PROGRESS_TIMEOUT);
    cr_expect_str_eq(p.deletes[0].record, "n1/vmdrain-aaaaaaaa-1@1767312033");
    cr_expect_not_null(strstr(p.message, "progressTimeout"), "message: %s", p.message);
    drain_plan_free(&p);
}

Test(reconcile, running_too_long_is_aborted_by_completion_timeout_per_gib)
{
    drain_config_t cfg = config();
    cfg.completion_timeout_per_gib = 100; /* 2 GiB: 200 s */
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Running", "2026-01-02T00:00:01Z", "2026-01-02T00:00:10Z")};
    drain_plan_t p =
        run(&cfg, "2026-01-02T00:03:00Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_deletes, 0, "170 s of 200 s");
    cr_expect_float_eq(p.requeue_after, 30.0, 1e-6);
    drain_plan_free(&p);
    p = run(&cfg, "2026-01-02T00:03:31Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_assert_eq(p.n_deletes, 1);
    cr_expect_not_null(strstr(p.deletes[0].reason, "completionTimeoutPerGiB"), "%s",
                       p.deletes[0].reason);
    cr_expect_str_eq(p.deletes[0].abort_reason, DRAIN_ABORT_COMPLETION_TIMEOUT);
    drain_plan_free(&p);
}

Test(reconcile, foreign_migrations_are_never_aborted)
{
    drain_config_t cfg = config();
    cfg.progress_timeout = 1;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 0, "Scheduling", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z")};
    drain_plan_t p =
        run(&cfg, "2026-01-02T01:00:00Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_deletes, 0);
    cr_expect_eq(p.migrating, 1);
    drain_plan_free(&p);
}

Test(reconcile, aborted_attempts_count_after_their_objects_are_gone)
{
    drain_config_t cfg = config();
    /* attempt 1 aborted at 00:01:00, its object deleted; attempt 2 Failed
     * (and also recorded, so it must count once) */
    const kube_vmi_t *vmis[] = {
        vmi_ann("a", "aaaaaaaa-1", "LiveMigrate", true,
                "\"vmdrain.io/aborted\":\"other/vmdrain-aaaaaaaa-7@1767312000,"
                "n1/vmdrain-aaaaaaaa-1@1767312060,"
                "n1/vmdrain-aaaaaaaa-2@1767312120\"")};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 2, "Failed", "2026-01-02T00:01:30Z", "2026-01-02T00:02:00Z")};
    /* two failures: wait 40 s after 00:02:00 */
    drain_plan_t p =
        run(&cfg, "2026-01-02T00:02:30Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_candidates, 0);
    cr_expect_float_eq(p.requeue_after, 11.0, 1e-6, "got %.1f", p.requeue_after);
    drain_plan_free(&p);
    p = run(&cfg, "2026-01-02T00:02:41Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_assert_eq(p.n_candidates, 1);
    /* numbered after every attempt of the VMI, the other node's 7 included */
    cr_expect_eq(p.candidates[0].attempt, 8);
    drain_plan_free(&p);
    cfg.max_migration_attempts = 2;
    p = run(&cfg, "2026-01-02T00:09:00Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_expect_eq(p.failed, 1);
    cr_expect_eq(p.state, DRAIN_STATE_FAILED);
    cr_expect_not_null(strstr(p.message, "default/a"), "the failed VMI is named: %s", p.message);
    drain_plan_free(&p);
}

Test(reconcile, eviction_marks_drain_a_cordoned_node_without_the_taint)
{
    drain_config_t cfg = config();
    const kube_vmi_t *vmis[] = {
        vmi_ann("a", "aaaaaaaa-1", "LiveMigrate", true, "\"vmdrain.io/evacuate-from\":\"n1\""),
        vmi("b", "bbbbbbbb-2", "LiveMigrate", true), /* not evicted (yet) */
        vmi_ann("c", "cccccccc-3", "LiveMigrate", false, "\"vmdrain.io/evacuate-from\":\"n1\"")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(false, true, ""), vmis, 3, NULL, 0);
    cr_expect(p.evicting);
    cr_expect_str_eq(p.trigger, "eviction");
    cr_expect_eq(p.cordon, 0, "kubectl drain cordoned the node itself");
    cr_expect_null(p.cordoned_by);
    cr_assert_eq(p.n_candidates, 1, "only the marked, migratable VMI");
    cr_expect_eq(p.candidates[0].vmi, vmis[0]);
    cr_expect_eq(p.blocked, 1);
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING);
    drain_plan_free(&p);
}

Test(reconcile, eviction_drain_ends_drained_then_completes_on_uncordon)
{
    drain_config_t cfg = config();
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"eviction\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Succeeded", "2026-01-02T00:00:01Z", "2026-01-02T00:00:09Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:10Z", node(false, true, ann), NULL, 0, migs, 1);
    cr_expect(p.evicting, "the VMIs left, the node is still cordoned");
    cr_expect_eq(p.state, DRAIN_STATE_DRAINED);
    cr_expect_str_eq(p.progress, "1/1");
    drain_plan_free(&p);
    const char *drained = "\"vmdrain.io/state\":\"Drained\",\"vmdrain.io/trigger\":\"eviction\","
                          "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    p = run(&cfg, "2026-01-02T00:05:00Z", node(false, false, drained), NULL, 0, migs, 1);
    cr_expect_not(p.evicting);
    cr_expect_eq(p.state, DRAIN_STATE_COMPLETED);
    cr_expect_eq(p.cordon, 0);
    drain_plan_free(&p);
}

Test(reconcile, uncordon_cancels_an_eviction_drain_and_clears_the_marks)
{
    drain_config_t cfg = config();
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"eviction\","
                      "\"vmdrain.io/started-at\":\"2026-01-02T00:00:00Z\"";
    const kube_vmi_t *vmis[] = {
        vmi_ann("a", "aaaaaaaa-1", "LiveMigrate", true, "\"vmdrain.io/evacuate-from\":\"n1\"")};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Pending", "2026-01-02T00:00:01Z", "2026-01-02T00:00:01Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:30Z", node(false, false, ann), vmis, 1, migs, 1);
    cr_expect_not(p.evicting);
    cr_expect_eq(p.state, DRAIN_STATE_CANCELLED);
    cr_assert_eq(p.n_vmi_writes, 1);
    cr_expect_eq(p.vmi_writes[0].vmi, vmis[0]);
    cr_expect_eq(p.vmi_writes[0].kind, DRAIN_VMI_UNMARK);
    cr_assert_eq(p.n_deletes, 1);
    drain_plan_free(&p);
}

Test(reconcile, an_abort_is_recorded_once)
{
    drain_config_t cfg = config();
    cfg.progress_timeout = 5;
    /* recorded already, the delete did not go out: abort again, record once */
    const kube_vmi_t *vmis[] = {
        vmi_ann("a", "aaaaaaaa-1", "LiveMigrate", true,
                "\"vmdrain.io/aborted\":\"n1/vmdrain-aaaaaaaa-1@1767312010\"")};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Scheduling", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z")};
    drain_plan_t p =
        run(&cfg, "2026-01-02T00:00:30Z", node(true, true, draining_ann), vmis, 1, migs, 1);
    cr_assert_eq(p.n_deletes, 1);
    cr_expect_str_eq(p.deletes[0].record, "n1/vmdrain-aaaaaaaa-1@1767312010");
    drain_plan_free(&p);
}

Test(reconcile, a_vmi_drained_before_gets_the_next_attempt_number)
{
    drain_config_t cfg = config();
    /* an earlier drain of another node moved this VMI with attempt 1; the
     * object is kept, so this drain must not reuse its name */
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"vmdrain-aaaaaaaa-1\",\"namespace\":\"default\",\"uid\":"
             "\"m-old\",\"resourceVersion\":\"3\",\"creationTimestamp\":\"2025-12-01T00:00:00Z\","
             "\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\",\"vmdrain.io/node\":\"other\","
             "\"vmdrain.io/vmi-uid\":\"aaaaaaaa-1\"}},\"spec\":{\"vmiName\":\"a\"},"
             "\"status\":{\"phase\":\"Succeeded\"}}");
    const kube_migration_t *migs[] = {kube_obj_as_migration(test_obj_kept(KUBE_KIND_MIGRATION, j))};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(true, false, ""), vmis, 1, migs, 1);
    cr_assert_eq(p.n_candidates, 1);
    cr_expect_str_eq(p.candidates[0].name, "vmdrain-aaaaaaaa-2");
    cr_expect_eq(p.candidates[0].failures, 0, "attempt 2 of a new drain is not a retry");
    cr_expect_eq(p.migrating, 0, "an old success is not a migration in progress");
    drain_plan_free(&p);
}

Test(reconcile, an_adopted_evacuation_that_ended_during_the_drain_counts_as_migrated)
{
    drain_config_t cfg = config();
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    /* a has left: KubeVirt's evacuation, started before the drain, ended
     * during it; b waits */
    const kube_vmi_t *vmis[] = {vmi("b", "bbbbbbbb-2", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        evac("a", "n1", "Succeeded", "2026-01-01T23:59:00Z", "2026-01-02T00:00:30Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:00Z", node(true, true, ann), vmis, 1, migs, 1);
    cr_expect_str_eq(p.progress, "1/2");
    cr_expect_eq(p.n_candidates, 1);
    drain_plan_free(&p);

    /* from another node, or ended before this drain: not this drain's */
    const kube_migration_t *other[] = {
        evac("c", "n2", "Succeeded", "2026-01-01T23:59:00Z", "2026-01-02T00:00:30Z"),
        evac("d", "n1", "Succeeded", "2026-01-01T23:58:00Z", "2026-01-01T23:59:30Z")};
    p = run(&cfg, "2026-01-02T00:01:00Z", node(true, true, ann), vmis, 1, other, 2);
    cr_expect_str_eq(p.progress, "0/1");
    drain_plan_free(&p);
}

Test(reconcile, an_adopted_success_not_yet_visible_on_the_vmi_is_not_migrated_again)
{
    drain_config_t cfg = config();
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    /* the migration's Succeeded arrived before the VMI's move; the
     * migration was created before the drain started */
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        evac("a", "n1", "Succeeded", "2026-01-01T23:59:00Z", "2026-01-02T00:00:30Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:31Z", node(true, true, ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_candidates, 0, "a second migration would move the VM twice");
    cr_expect_str_eq(p.progress, "1/1");
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING);
    drain_plan_free(&p);
}

Test(reconcile, an_adopted_evacuation_in_transit_counts_as_migrating)
{
    drain_config_t cfg = config();
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    /* the cache shows a elsewhere already, its migration still Running */
    const kube_migration_t *migs[] = {
        evac("a", "n1", "Running", "2026-01-01T23:59:00Z", "2026-01-01T23:59:10Z")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:31Z", node(true, true, ann), NULL, 0, migs, 1);
    cr_expect_eq(p.migrating, 1);
    cr_expect_str_eq(p.progress, "0/1");
    cr_expect_eq(p.state, DRAIN_STATE_DRAINING);
    drain_plan_free(&p);
}

Test(reconcile, external_vmis_move_only_when_handed_to_vmdrain)
{
    drain_config_t cfg = config();
    const kube_node_t *n = node(true, false, "");
    const kube_vmi_t *vmis[] = {vmi("ext", "aaaaaaaa-1111", "External", true),
                                vmi("ext-rwo", "bbbbbbbb-2222", "External", false)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", n, vmis, 2, NULL, 0);
    cr_expect_eq(p.n_candidates, 0);
    cr_expect_eq(p.blocked, 0);
    cr_expect_eq(p.state, DRAIN_STATE_DRAINED);
    drain_plan_free(&p);
    cfg.evacuate_external = true;
    p = run(&cfg, "2026-01-02T00:00:00Z", n, vmis, 2, NULL, 0);
    cr_assert_eq(p.n_candidates, 1);
    cr_expect_str_eq(p.candidates[0].name, "vmdrain-aaaaaaaa-1");
    cr_expect_eq(p.blocked, 1);
    cr_expect_str_eq(p.progress, "0/2");
    drain_plan_free(&p);
}

/* --- beside KubeVirt's own evacuation controller ---------------------------------- */

static drain_config_t kubevirt_config(const char *kubevirt_taint_key)
{
    drain_config_t c = config();
    c.kubevirt_seen = true;
    snprintf(c.kubevirt_taint_key, sizeof(c.kubevirt_taint_key), "%s", kubevirt_taint_key);
    return c;
}

Test(reconcile, kubevirt_on_the_same_taint_moves_its_vmis_and_vmdrain_the_rest)
{
    drain_config_t cfg = kubevirt_config("kubevirt.io/drain");
    cfg.evacuate_external = true;
    const kube_vmi_t *vmis[] = {vmi("lm", "aaaaaaaa-1", "LiveMigrate", true),
                                vmi("ifp", "bbbbbbbb-2", "LiveMigrateIfPossible", true),
                                vmi("ext", "cccccccc-3", "External", true)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(true, false, ""), vmis, 3, NULL, 0);
    cr_assert_eq(p.n_candidates, 1, "KubeVirt migrates LiveMigrate and LiveMigrateIfPossible");
    cr_expect_eq(p.candidates[0].vmi, vmis[2], "External is handed to vmdrain");
    cr_expect_eq(p.pending, 3);
    cr_expect_eq(p.by_kubevirt, 2);
    cr_expect_str_eq(p.progress, "0/3");
    cr_expect_not_null(strstr(p.message, "2 left to KubeVirt"), "got: %s", p.message);
    drain_plan_free(&p);

    /* KubeVirt's evacuation appears: adopted, counted as migrating */
    const kube_migration_t *migs[] = {
        evac("lm", "n1", "Running", "2026-01-02T00:00:01Z", "2026-01-02T00:00:02Z")};
    p = run(&cfg, "2026-01-02T00:00:03Z", node(true, true, DRAINING_SINCE_MIDNIGHT), vmis, 3, migs,
            1);
    cr_expect_eq(p.migrating, 1);
    cr_expect_eq(p.by_kubevirt, 1);
    cr_expect_eq(p.n_candidates, 1);
    drain_plan_free(&p);
}

Test(reconcile, kubevirt_on_another_taint_leaves_the_drain_to_vmdrain)
{
    drain_config_t cfg = kubevirt_config("kubevirt.io/drain-by-kubevirt");
    const kube_vmi_t *vmis[] = {vmi("lm", "aaaaaaaa-1", "LiveMigrate", true),
                                vmi("ifp", "bbbbbbbb-2", "LiveMigrateIfPossible", true)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(true, false, ""), vmis, 2, NULL, 0);
    cr_expect_eq(p.n_candidates, 2);
    cr_expect_eq(p.by_kubevirt, 0);
    drain_plan_free(&p);
}

Test(reconcile, evictions_beside_kubevirt_are_kubevirts_but_external)
{
    drain_config_t cfg = kubevirt_config("kubevirt.io/drain-by-kubevirt");
    cfg.evacuate_external = true;
    const char *mark = "\"vmdrain.io/evacuate-from\":\"n1\"";
    const kube_vmi_t *vmis[] = {vmi_ann("lm", "aaaaaaaa-1", "LiveMigrate", true, mark),
                                vmi_ann("ext", "cccccccc-3", "External", true, mark)};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(false, true, ""), vmis, 2, NULL, 0);
    cr_expect(p.evicting);
    cr_assert_eq(p.n_candidates, 1, "virt-api answered the eviction too: KubeVirt moves lm");
    cr_expect_eq(p.candidates[0].vmi, vmis[1]);
    cr_expect_eq(p.by_kubevirt, 1);
    drain_plan_free(&p);
}

Test(reconcile, kubevirts_own_mark_is_kubevirts_even_unconfigured)
{
    drain_config_t cfg = config(); /* no --kubevirt */
    const kube_vmi_t *marked = kube_obj_as_vmi(test_obj_kept(
        KUBE_KIND_VMI,
        "{\"metadata\":{\"name\":\"lm\",\"namespace\":\"default\",\"uid\":\"aaaaaaaa-1\","
        "\"annotations\":{\"vmdrain.io/evacuate-from\":\"n1\"}},\"spec\":{\"evictionStrategy\":"
        "\"LiveMigrate\"},\"status\":{\"nodeName\":\"n1\",\"phase\":\"Running\","
        "\"evacuationNodeName\":\"n1\",\"conditions\":[{\"type\":\"LiveMigratable\","
        "\"status\":\"True\"}]}}"));
    const kube_vmi_t *vmis[] = {marked, vmi_ann("other", "bbbbbbbb-2", "LiveMigrate", true,
                                                "\"vmdrain.io/evacuate-from\":\"n1\"")};
    drain_plan_t p = run(&cfg, "2026-01-02T00:00:00Z", node(false, true, ""), vmis, 2, NULL, 0);
    cr_assert_eq(p.n_candidates, 1, "status.evacuationNodeName: KubeVirt's evacuation");
    cr_expect_eq(p.candidates[0].vmi, vmis[1], "without KubeVirt's mark vmdrain moves it");
    cr_expect_eq(p.by_kubevirt, 1);
    drain_plan_free(&p);
}

Test(reconcile, retries_beside_kubevirt_wait_for_its_backoff_after_a_failure_not_an_abort)
{
    drain_config_t cfg = kubevirt_config("kubevirt.io/drain-by-kubevirt");
    cfg.retry_backoff_seconds = 2;
    const char *ann = DRAINING_SINCE_MIDNIGHT;
    const kube_vmi_t *vmis[] = {vmi("a", "aaaaaaaa-1", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Failed", "2026-01-02T00:00:01Z", "2026-01-02T00:01:00Z")};
    /* 10 s after a Failed migration: vmdrain's 2 s are over, KubeVirt's 20 s not */
    drain_plan_t p = run(&cfg, "2026-01-02T00:01:10Z", node(true, true, ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_candidates, 0, "KubeVirt would hold the retry in Pending");
    cr_expect_float_eq(p.requeue_after, 11.0, 1e-6, "requeue in %.3f", p.requeue_after);
    drain_plan_free(&p);
    p = run(&cfg, "2026-01-02T00:01:21Z", node(true, true, ann), vmis, 1, migs, 1);
    cr_expect_eq(p.n_candidates, 1);
    drain_plan_free(&p);

    /* an abort (the migration deleted, recorded on the VMI): KubeVirt has
     * nothing to count, vmdrain's own backoff applies */
    const kube_vmi_t *aborted[] = {
        vmi_ann("a", "aaaaaaaa-1", "LiveMigrate", true,
                "\"vmdrain.io/aborted\":\"n1/vmdrain-aaaaaaaa-1@1767312060\"")};
    p = run(&cfg, "2026-01-02T00:01:10Z", node(true, true, ann), aborted, 1, NULL, 0);
    cr_assert_eq(p.n_candidates, 1, "2 s after the abort");
    cr_expect_eq(p.candidates[0].attempt, 2);
    drain_plan_free(&p);
}

/* The node patch that records a drain's start failed (a conflict with
 * kubectl drain's cordon): the next reconcile keeps the start it planned,
 * so the migrations made since count, and DrainStarted is not sent twice. */
Test(reconcile, a_start_the_node_does_not_show_yet_is_kept)
{
    drain_config_t cfg = config();
    const kube_vmi_t *vmis[] = {vmi("b", "bbbbbbbb-2", "LiveMigrate", true)};
    const kube_migration_t *migs[] = {
        mig("a", "aaaaaaaa-1", 1, "Succeeded", "2026-01-02T00:00:00Z", "2026-01-02T00:00:01Z")};
    const kube_node_t *n = node(true, true, "");
    drain_view_t v = {.cfg = &cfg,
                      .now = at("2026-01-02T00:00:02Z"),
                      .node = n,
                      .vmis = vmis,
                      .n_vmis = 1,
                      .migs = migs,
                      .n_migs = 1,
                      .started_unwritten = at("2026-01-02T00:00:00Z")};
    drain_plan_t p;
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_str_eq(p.started_at, "2026-01-02T00:00:00Z");
    cr_expect_str_eq(p.progress, "1/2", "the migration made since the planned start counts");
    cr_expect_null(event(&p, "DrainStarted"), "the start was announced already");
    drain_plan_free(&p);
    /* the same view without the planned start: a new start, now */
    v.started_unwritten = (vd_time_t){0, 0};
    cr_assert_eq(drain_reconcile(&v, &p), 0);
    cr_expect_str_eq(p.started_at, "2026-01-02T00:00:02Z");
    cr_expect_str_eq(p.progress, "0/1");
    cr_expect_not_null(event(&p, "DrainStarted"));
    drain_plan_free(&p);
}
