#include <criterion/criterion.h>

#include "../testobj.h"
#include "util/metrics.h"
#include "drain/eviction.h"
#include "drain/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- fixtures ------------------------------------------------------------ */

/* Cache objects, decoded from Kubernetes JSON as the informers do
 * (../testobj.h), kept until the test's end. */
#define MAX_OBJS 16
static kube_obj_t *pool[MAX_OBJS];
static int npool;

static kube_obj_t *from_json(kube_kind_t kind, const char *item)
{
    cr_assert_lt(npool, MAX_OBJS);
    return pool[npool++] = test_obj_from_json(kind, item);
}

static void teardown(void)
{
    for (int i = 0; i < npool; i++)
        kube_obj_free(pool[i]);
    npool = 0;
    metrics_free_all();
}

TestSuite(eviction, .fini = teardown, .timeout = 10);

/* A virt-launcher pod of VMI vm-a on node-1; extra_labels is the inside of
 * a JSON object (after the kubevirt.io label) or "". */
static const kube_pod_t *launcher(const char *name, const char *node, const char *phase,
                                  const char *extra_labels)
{
    char j[2048];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"pod-uid-%s\","
             "\"labels\":{\"kubevirt.io\":\"virt-launcher\"%s%s},"
             "\"annotations\":{\"kubevirt.io/domain\":\"vm-a\"}},"
             "\"spec\":{\"nodeName\":\"%s\"},\"status\":{\"phase\":\"%s\"}}",
             name, name, *extra_labels ? "," : "", extra_labels, node, phase);
    return kube_obj_as_pod(from_json(KUBE_KIND_POD, j));
}

/* VMI default/vm-a on node; strategy "" for none; cond is the
 * LiveMigratable condition object's inside, or "" for none; mstate the
 * migrationState object's inside, or "". */
static const kube_vmi_t *vmi(const char *strategy, const char *node, const char *phase,
                             const char *cond, const char *mstate)
{
    char j[8192], spec[128] = "{}", conds[4096] = "[]", ms[1024] = "";
    if (*strategy)
        snprintf(spec, sizeof(spec), "{\"evictionStrategy\":\"%s\"}", strategy);
    if (*cond)
        snprintf(conds, sizeof(conds), "[{\"type\":\"LiveMigratable\",%s}]", cond);
    if (*mstate)
        snprintf(ms, sizeof(ms), ",\"migrationState\":{%s}", mstate);
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\","
             "\"uid\":\"0d3f2c1a-aaaa-4bbb-8ccc-123456789abc\"},\"spec\":%s,"
             "\"status\":{\"nodeName\":\"%s\",\"phase\":\"%s\",\"conditions\":%s%s}}",
             spec, node, phase, conds, ms);
    return kube_obj_as_vmi(from_json(KUBE_KIND_VMI, j));
}

static const kube_migration_t *migration(const char *name, const char *uid, const char *phase)
{
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"%s\"},"
             "\"spec\":{\"vmiName\":\"vm-a\"},\"status\":{\"phase\":\"%s\"}}",
             name, uid, phase);
    return kube_obj_as_migration(from_json(KUBE_KIND_MIGRATION, j));
}

#define MIGRATABLE "\"status\":\"True\""
#define NOT_MIGRATABLE                                                                             \
    "\"status\":\"False\",\"reason\":\"DisksNotLiveMigratable\","                                  \
    "\"message\":\"cannot migrate VMI: PVC vm-a-disk is not shared, live migration requires "      \
    "that all PVCs must be shared (using ReadWriteMany access mode)\""

/* The request kubectl drain sends for the launcher pod of vm-a. */
static const drain_evict_req_t drain_rq = {.ns = "default", .name = "virt-launcher-vm-a-7xk2p"};

/* Decides that request over the given cache. */
static drain_evict_result_t decide(const drain_evict_input_t *in)
{
    drain_evict_result_t res;
    drain_eviction_decide(&drain_rq, in, &res);
    return res;
}

static drain_evict_input_t input(const kube_pod_t *pod, const kube_vmi_t *v)
{
    drain_evict_input_t in = {
        .pod = pod, .vmi = v, .default_strategy = KUBE_EVICTION_NONE, .live_migration_gate = true};
    return in;
}

/* --- the decision ------------------------------------------------------------ */

Test(eviction, not_ready_is_denied_with_429_so_kubectl_retries)
{
    drain_evict_result_t r;
    drain_eviction_not_ready(&drain_rq, "has not synced its caches yet", &r);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_NOT_READY);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.code, 429);
    cr_expect_eq(r.effects, 0);
    cr_expect_str_eq(r.message, "Eviction of pod default/virt-launcher-vm-a-7xk2p deferred: "
                                "vmdrain has not synced its caches yet");
}

/* One rule for "in flight" (drain_migration_in_flight): a migration being
 * deleted is still in flight (KubeVirt aborts it first), so its target pod
 * stays protected and the VMI counts as migrating. */
Test(eviction, a_migration_being_deleted_is_still_in_flight)
{
    char j[1024];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"m1\",\"namespace\":\"default\",\"uid\":\"mig-uid-1\","
             "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},"
             "\"spec\":{\"vmiName\":\"vm-a\"},\"status\":{\"phase\":\"Running\"}}");
    const kube_migration_t *m = kube_obj_as_migration(from_json(KUBE_KIND_MIGRATION, j));
    cr_assert(m->obj.deleted.sec != 0);
    cr_expect(drain_migration_in_flight(m));
    const kube_migration_t *migs[] = {m};
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-target", "node-2", "Running",
                                            "\"kubevirt.io/migrationJobUID\":\"mig-uid-1\""),
                                   vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.migs = migs;
    in.n_migs = 1;
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_DENY_TARGET_POD);
    in.pod = launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", "");
    cr_expect_str_eq(decide(&in).message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration in progress");
}

Test(eviction, pod_not_cached_needs_a_lookup_then_lookup_results)
{
    drain_evict_input_t in = input(NULL, NULL);
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_NEED_LOOKUP);
    cr_expect_str_eq(r.label, "lookup");

    in.pod_looked_up = true;
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_NO_POD);
    cr_expect(r.allowed);
    cr_expect_eq(r.code, 200);

    in.lookup_failed = true;
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_LOOKUP_FAILED);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message, "Eviction of pod default/virt-launcher-vm-a-7xk2p deferred: the "
                                "pod could not be read; retry");
}

Test(eviction, non_launcher_pod_is_allowed)
{
    const kube_pod_t *p = kube_obj_as_pod(
        from_json(KUBE_KIND_POD, "{\"metadata\":{\"name\":\"virt-launcher-vm-a-7xk2p\","
                                 "\"namespace\":\"default\",\"labels\":{\"kubevirt.io\":\"virt-"
                                 "handler\"}},\"spec\":{\"nodeName\":\"node-1\"},"
                                 "\"status\":{\"phase\":\"Running\"}}"));
    drain_evict_input_t in = input(p, vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_NOT_LAUNCHER);
    cr_expect(r.allowed);
    cr_expect_str_eq(r.label, "not_launcher");
    cr_expect_eq(r.effects, 0);
}

Test(eviction, finished_pod_is_allowed)
{
    const kube_vmi_t *v = vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, "");
    drain_evict_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Succeeded", ""), v);
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_FINISHED_POD);
    cr_expect_str_eq(r.message, "pod default/virt-launcher-vm-a-7xk2p has finished (Succeeded)");

    in.pod = launcher("virt-launcher-vm-a-7xk2p", "node-1", "Failed", "");
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_ALLOW_FINISHED_POD);
}

Test(eviction, target_pod_of_a_running_migration_is_denied)
{
    const kube_migration_t *m =
        migration("vmdrain-0d3f2c1a-1", "9a8b7c6d-0000-4000-8000-000000000001", "Running");
    const kube_migration_t *const migs[] = {m};
    drain_evict_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-2", "Running",
                       "\"kubevirt.io/migrationJobUID\":\"9a8b7c6d-0000-4000-8000-000000000001\""),
              vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.migs = migs;
    in.n_migs = 1;
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_TARGET_POD);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.reason, "TooManyRequests");
    cr_expect_str_eq(r.label, "target");
    cr_expect_str_eq(r.message, "Pod default/virt-launcher-vm-a-7xk2p is the target of migration "
                                "vmdrain-0d3f2c1a-1; evict it once the migration ended");
    cr_expect_eq(r.effects, 0);

    /* once the migration ended, the label alone does not make a target:
     * the VMI now runs in this pod */
    const kube_migration_t *done =
        migration("vmdrain-0d3f2c1a-1", "9a8b7c6d-0000-4000-8000-000000000001", "Succeeded");
    const kube_migration_t *const ended[] = {done};
    in.migs = ended;
    in.vmi = vmi("LiveMigrate", "node-2", "Running", MIGRATABLE, "");
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
}

Test(eviction, target_pod_known_from_the_vmi_migration_state)
{
    drain_evict_input_t in = input(
        launcher("virt-launcher-vm-a-7xk2p", "node-2", "Running", ""),
        vmi("LiveMigrate", "node-1", "Running", MIGRATABLE,
            "\"migrationUid\":\"9a8b7c6d-0000-4000-8000-000000000002\",\"sourceNode\":\"node-1\","
            "\"targetNode\":\"node-2\",\"targetPod\":\"virt-launcher-vm-a-7xk2p\""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_TARGET_POD);
    cr_expect(strstr(r.message, "target of migration 9a8b7c6d-0000-4000-8000-000000000002") !=
              NULL);
}

Test(eviction, launcher_of_no_vmi_is_allowed)
{
    drain_evict_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""), NULL);
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_NO_VMI);
    cr_expect(r.allowed);
    cr_expect_str_eq(r.label, "no_vmi");
}

Test(eviction, finished_vmi_and_vmi_elsewhere_are_allowed)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Failed", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_FINISHED_VMI);
    cr_expect_str_eq(r.message, "VMI default/vm-a has finished (Failed)");

    in.vmi = vmi("LiveMigrate", "node-2", "Running", MIGRATABLE,
                 "\"migrationUid\":\"u1\",\"targetPod\":\"virt-launcher-vm-a-new\","
                 "\"completed\":true");
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_VMI_ELSEWHERE);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a runs on node node-2, not on the pod's node node-1");
    cr_expect_str_eq(r.label, "elsewhere");
}

Test(eviction, strategy_none_is_not_ours)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("None", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_NOT_OURS);
    cr_expect_str_eq(r.label, "none");

    /* no strategy on the VMI: the cluster default decides */
    in.vmi = vmi("", "node-1", "Running", MIGRATABLE, "");
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_ALLOW_NOT_OURS);
    in.default_strategy = KUBE_EVICTION_UNSET;
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_ALLOW_NOT_OURS);
    in.default_strategy = KUBE_EVICTION_LIVE_MIGRATE;
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_DENY_MIGRATE);
}

Test(eviction, live_migrate_denies_marks_and_queues)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration queued");
    cr_expect_eq(r.effects, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE);
    cr_expect_eq(r.wanted_effects, r.effects);
    cr_expect_str_eq(r.node, "node-1");
    cr_expect_str_eq(r.label, "migrate");

    /* on a node the cache shows uncordoned nothing is queued yet: the
     * message says what it waits for, the request is kept as before */
    in.node_uncordoned = true;
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_str_eq(r.message, "Eviction of VMI default/vm-a waits for node node-1 to be "
                                "cordoned: vmdrain migrates VMIs only from cordoned nodes "
                                "(kubectl drain cordons first)");
    cr_expect_eq(r.effects, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE);
}

Test(eviction, live_migrate_with_a_migration_in_flight_says_in_progress)
{
    const kube_migration_t *m = migration("someone-elses", "u-77", "Scheduling");
    const kube_migration_t *const migs[] = {m};
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.migs = migs;
    in.n_migs = 1;
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration in progress");

    /* the same seen only in the VMI's migrationState */
    in.n_migs = 0;
    in.vmi = vmi("LiveMigrate", "node-1", "Running", MIGRATABLE,
                 "\"migrationUid\":\"u-78\",\"sourceNode\":\"node-1\",\"targetNode\":\"node-3\","
                 "\"targetPod\":\"virt-launcher-vm-a-zzzzz\"");
    r = decide(&in);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration in progress");

    /* a finished migration is not in flight */
    const kube_migration_t *old = migration("old", "u-1", "Failed");
    const kube_migration_t *const olds[] = {old};
    in.migs = olds;
    in.n_migs = 1;
    in.vmi = vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, "");
    cr_expect_str_eq(decide(&in).message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration queued");
}

Test(eviction, live_migrate_not_migratable_is_blocked)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", NOT_MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_BLOCKED);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a cannot be live-migrated: DisksNotLiveMigratable: cannot "
                     "migrate VMI: PVC vm-a-disk is not shared, live migration requires that all "
                     "PVCs must be shared (using ReadWriteMany access mode)");
    cr_expect_eq(r.effects, DRAIN_EVICT_EFFECT_BLOCKED);
    cr_expect_str_eq(r.node, "node-1");
    cr_expect_str_eq(r.label, "blocked");

    in.vmi = vmi("LiveMigrate", "node-1", "Running", "", "");
    cr_expect_str_eq(
        decide(&in).message,
        "VMI default/vm-a cannot be live-migrated: condition LiveMigratable is not True");
    in.vmi = vmi("LiveMigrate", "node-1", "Running",
                 "\"status\":\"False\",\"reason\":\"InterfaceNotLiveMigratable\"", "");
    cr_expect_str_eq(decide(&in).message,
                     "VMI default/vm-a cannot be live-migrated: InterfaceNotLiveMigratable");
}

Test(eviction, long_condition_message_is_cut_on_a_utf8_boundary)
{
    char cond[3000] = "\"status\":\"False\",\"reason\":\"R\",\"message\":\"";
    for (int i = 0; i < 600; i++)
        strcat(cond, "\xe2\x82\xac"); /* the euro sign, three bytes */
    strcat(cond, "\"");
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", cond, ""));
    drain_evict_result_t r = decide(&in);
    size_t n = strlen(r.message);
    cr_expect_leq(n, DRAIN_EVICT_MESSAGE_MAX - 1);
    cr_expect_gt(n, DRAIN_EVICT_MESSAGE_MAX - 4);
    /* the message ends on a whole character */
    cr_expect_eq(strcmp(r.message + n - 3, "\xe2\x82\xac"), 0);
}

Test(eviction, if_possible_migrates_when_it_can_else_allows)
{
    drain_evict_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
              vmi("LiveMigrateIfPossible", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration queued");
    cr_expect_eq(r.effects, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE);

    in.vmi = vmi("LiveMigrateIfPossible", "node-1", "Running",
                 "\"status\":\"False\",\"reason\":\"DisksNotLiveMigratable\"", "");
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_IF_POSSIBLE);
    cr_expect(r.allowed);
    cr_expect_eq(r.effects, 0);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a cannot be live-migrated (DisksNotLiveMigratable); "
                     "eviction allowed by strategy LiveMigrateIfPossible");

    /* migratable, but the gate is off: it cannot migrate, so it may go */
    in.vmi = vmi("LiveMigrateIfPossible", "node-1", "Running", MIGRATABLE, "");
    in.live_migration_gate = false;
    r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_ALLOW_IF_POSSIBLE);
    cr_expect(strstr(r.message, "the LiveMigration feature gate is off") != NULL);
}

Test(eviction, external_denies_and_marks_without_migration)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("External", "node-1", "Running", NOT_MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_EXTERNAL);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message, "Eviction triggered evacuation of VMI default/vm-a: evacuation is "
                                "handled by an external controller");
    cr_expect_eq(r.effects, DRAIN_EVICT_EFFECT_MARK);
    cr_expect_str_eq(r.node, "node-1");
}

Test(eviction, live_migrate_without_the_gate_is_denied)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.live_migration_gate = false;
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_GATE_OFF);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a cannot be evacuated: the LiveMigration feature gate is off");
    cr_expect_str_eq(r.label, "gate_off");
}

Test(eviction, unknown_strategy_is_denied)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("Teleport", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_UNKNOWN_STRATEGY);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.effects, 0);
}

Test(eviction, dry_run_has_the_same_answer_and_no_side_effects)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_req_t rq = drain_rq;
    drain_evict_result_t r, wet = decide(&in);
    rq.dry_run = true;
    drain_eviction_decide(&rq, &in, &r);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_str_eq(r.message, wet.message);
    cr_expect_eq(r.wanted_effects, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE);
    cr_expect_eq(r.effects, 0);
    cr_expect_eq(wet.effects, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE);
}

Test(eviction, every_decision_has_a_distinct_name_and_a_label)
{
    for (int i = 0; i < DRAIN_EVICT_DECISION_COUNT; i++) {
        const char *label = drain_eviction_decision_label((drain_evict_decision_t)i);
        cr_expect(label && *label);
        for (const char *p = label; *p; p++)
            cr_expect((*p >= 'a' && *p <= 'z') || *p == '_', "label %s", label);
        for (int j = 0; j < i; j++)
            cr_expect_str_neq(drain_eviction_decision_name((drain_evict_decision_t)i),
                              drain_eviction_decision_name((drain_evict_decision_t)j));
    }
}

/* --- the response --------------------------------------------------------------- */

Test(eviction, counts_decisions_by_label)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    drain_evict_result_t r = decide(&in);
    drain_eviction_count(&r);
    drain_eviction_count(&r);
    in.vmi = vmi("None", "node-1", "Running", MIGRATABLE, "");
    r = decide(&in);
    drain_eviction_count(&r);
    double v = 0;
    cr_assert_eq(metrics_get("evictions_total", (const char *const[]){"migrate"}, &v), 0);
    cr_expect_eq(v, 2);
    cr_assert_eq(metrics_get("evictions_total", (const char *const[]){"none"}, &v), 0);
    cr_expect_eq(v, 1);
    cr_expect_eq(metrics_get("evictions_total", (const char *const[]){"blocked"}, &v), -1);
}

Test(eviction, pod_vmi_name_comes_from_the_domain_annotation)
{
    const kube_pod_t *p = launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", "");
    cr_expect_str_eq(drain_pod_vmi_name(p), "vm-a");
    cr_expect_null(drain_pod_vmi_name(NULL));
    const kube_pod_t *bare = kube_obj_as_pod(
        from_json(KUBE_KIND_POD, "{\"metadata\":{\"name\":\"x\",\"namespace\":\"default\"}}"));
    cr_expect_null(drain_pod_vmi_name(bare));
}

/* evacuateExternal: the hand-off KubeVirt offers (its controllers leave
 * External VMIs alone) taken by vmdrain: External moves as LiveMigrate. */
Test(eviction, external_handed_to_vmdrain_migrates_or_blocks_as_live_migrate)
{
    drain_evict_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                   vmi("External", "node-1", "Running", MIGRATABLE, ""));
    in.evacuate_external = true;
    drain_evict_result_t r = decide(&in);
    cr_expect_eq(r.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_eq(r.effects, DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_QUEUE);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration queued");
    in.vmi = vmi("External", "node-1", "Running", NOT_MIGRATABLE, "");
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_DENY_BLOCKED);
    in.evacuate_external = false;
    cr_expect_eq(decide(&in).decision, DRAIN_EVICT_DENY_EXTERNAL);
}
