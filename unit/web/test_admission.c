#include <criterion/criterion.h>

#include "kube/decode.h"
#include "util/metrics.h"
#include "web/admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURES "unit/testdata/admission/"

/* --- fixtures ------------------------------------------------------------ */

/* Reads a recorded AdmissionReview; the caller frees it. */
static char *fixture(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    char *data;
    long n;

    snprintf(path, sizeof(path), FIXTURES "%s", name);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

/* Decodes a fixture that must be valid. */
static admission_request_t decode_ok(const char *name)
{
    admission_request_t rq;
    char err[256] = "";
    size_t len;
    char *body = fixture(name, &len);

    cr_assert_eq(admission_decode(body, len, &rq, err, sizeof(err)), 0, "%s: %s", name, err);
    free(body);
    return rq;
}

/* Decodes text that must be refused; returns the error. */
static const char *decode_bad(const char *text, size_t len)
{
    static char err[256];
    admission_request_t rq;

    err[0] = '\0';
    cr_assert_eq(admission_decode(text, len, &rq, err, sizeof(err)), -1, "accepted: %.200s", text);
    cr_assert_str_empty(rq.uid);
    return err;
}

static const char *decode_bad_fixture(const char *name)
{
    size_t len;
    char *body = fixture(name, &len);
    const char *err = decode_bad(body, len);
    free(body);
    return err;
}

/* Cache objects, decoded from Kubernetes JSON as the informers do. */
static kube_obj_t *decoded;

static void take(void *ud, kube_obj_t *obj)
{
    (void)ud;
    decoded = obj;
}

#define MAX_OBJS 16
static kube_obj_t *pool[MAX_OBJS];
static int npool;

static kube_obj_t *from_json(kube_kind_t kind, const char *item)
{
    kube_decoder_cb_t cb = {.on_item = take};
    char body[12288];
    kube_decoder_t *d;

    snprintf(body, sizeof(body),
             "{\"kind\":\"%s\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[%s]}",
             kube_kind_list_name(kind), item);
    d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, NULL, 0);
    decoded = NULL;
    cr_assert_eq(kube_decoder_feed(d, body, strlen(body)), 0, "%s", kube_decoder_error(d));
    cr_assert_eq(kube_decoder_finish(d), 0, "%s", kube_decoder_error(d));
    kube_decoder_free(d);
    cr_assert_not_null(decoded, "fixture skipped: %s", item);
    cr_assert_lt(npool, MAX_OBJS);
    pool[npool++] = decoded;
    return decoded;
}

static void teardown(void)
{
    for (int i = 0; i < npool; i++)
        kube_obj_free(pool[i]);
    npool = 0;
    metrics_free_all();
}

TestSuite(admission, .fini = teardown, .timeout = 10);

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

/* Decides the drain.json request over the given cache. */
static admission_result_t decide(const admission_input_t *in)
{
    admission_request_t rq = decode_ok("drain.json");
    admission_result_t res;
    admission_decide(&rq, in, &res);
    return res;
}

static admission_input_t input(const kube_pod_t *pod, const kube_vmi_t *v)
{
    admission_input_t in = {
        .pod = pod, .vmi = v, .default_strategy = KUBE_EVICTION_NONE, .live_migration_gate = true};
    return in;
}

/* --- decoding -------------------------------------------------------------- */

Test(admission, decodes_a_kubectl_drain_review)
{
    admission_request_t rq = decode_ok("drain.json");
    cr_expect_str_eq(rq.uid, "6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13");
    cr_expect_str_eq(rq.name, "virt-launcher-vm-a-7xk2p");
    cr_expect_str_eq(rq.ns, "default");
    cr_expect_str_eq(rq.username, "kubernetes-admin");
    cr_expect_not(rq.dry_run);
}

Test(admission, decodes_service_account_and_grace_period)
{
    admission_request_t rq = decode_ok("drain-grace-period.json");
    cr_expect_str_eq(rq.username, "system:serviceaccount:kube-system:node-drainer");
    cr_expect_str_eq(rq.ns, "prod");
    cr_expect_str_eq(rq.name, "virt-launcher-db-0-x9q2m");
    cr_expect_not(rq.dry_run);
}

Test(admission, dry_run_from_delete_options_or_from_the_review)
{
    cr_expect(decode_ok("drain-dry-run-server.json").dry_run);
    cr_expect(decode_ok("review-dry-run.json").dry_run);
}

Test(admission, accepts_a_request_converted_from_policy_v1beta1)
{
    admission_request_t rq = decode_ok("drain-v1beta1-client.json");
    cr_expect_str_eq(rq.uid, "e9d8c7b6-a5f4-4e3d-8c2b-1a0f9e8d7c6b");
    cr_expect_str_eq(rq.username, "system:admin");
}

Test(admission, refuses_bad_reviews_naming_the_field)
{
    cr_expect_str_eq(decode_bad_fixture("bad-review-v1beta1.json"),
                     "apiVersion: want \"admission.k8s.io/v1\", got \"admission.k8s.io/v1beta1\"");
    cr_expect_str_eq(decode_bad_fixture("bad-pod-create.json"),
                     "request.kind.group: want \"policy\", got \"\"");
    cr_expect_str_eq(decode_bad_fixture("bad-no-uid.json"), "request.uid: missing");
    cr_expect_str_eq(decode_bad_fixture("bad-dry-run-type.json"),
                     "request.object.deleteOptions.dryRun: want an array, got a string");
    cr_expect(strstr(decode_bad_fixture("bad-truncated.json"), "body: invalid JSON") != NULL);
}

/* Replaces the first occurrence of from in drain.json by to and decodes. */
static const char *decode_edited(const char *from, const char *to)
{
    static char text[4096];
    size_t len;
    char *body = fixture("drain.json", &len);
    char *at = strstr(body, from);
    cr_assert_not_null(at, "%s not in drain.json", from);
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
    free(body);
    return decode_bad(text, strlen(text));
}

Test(admission, refuses_other_operations_and_resources)
{
    cr_expect_str_eq(decode_edited("\"operation\":\"CREATE\"", "\"operation\":\"DELETE\""),
                     "request.operation: want \"CREATE\", got \"DELETE\"");
    cr_expect_str_eq(decode_edited("\"subResource\":\"eviction\"", "\"subResource\":\"status\""),
                     "request.subResource: want \"eviction\", got \"status\"");
    cr_expect_str_eq(decode_edited("\"resource\":\"pods\"", "\"resource\":\"nodes\""),
                     "request.resource.resource: want \"pods\", got \"nodes\"");
    cr_expect_str_eq(decode_edited("\"name\":\"virt-launcher-vm-a-7xk2p\",\"namespace\"",
                                   "\"name\":\"\",\"namespace\""),
                     "request.name: missing");
    cr_expect_str_eq(decode_edited("\"dryRun\":false", "\"dryRun\":\"false\""),
                     "request.dryRun: want a boolean, got a string");
    cr_expect_str_eq(decode_edited("\"userInfo\":{", "\"userInfo\":[],\"x\":{"),
                     "request.userInfo: want an object, got an array");
    cr_expect_str_eq(decode_edited("\"apiVersion\":\"policy/v1\"", "\"apiVersion\":\"v1\""),
                     "request.object.apiVersion: want \"policy/v1\", got \"v1\"");
    cr_expect_str_eq(decode_edited("\"deleteOptions\":{}", "\"deleteOptions\":{\"dryRun\":[1]}"),
                     "request.object.deleteOptions.dryRun[0]: want a string, got a number");
}

Test(admission, refuses_garbage_deep_nesting_nul_and_oversize)
{
    cr_expect_str_eq(decode_bad("", 0), "body: empty");
    cr_expect_str_eq(decode_bad("[1,2]", 5), "body: want a JSON object, got an array");
    cr_expect(strstr(decode_bad("{\"a\":", 5), "invalid JSON") != NULL);
    cr_expect_str_eq(decode_bad("{\"a\":1}\0x", 9), "body: contains a NUL byte");
    cr_expect_str_eq(decode_bad("/* c */ {}", 10), "body: invalid JSON: comments are not allowed");

    char deep[200];
    memset(deep, '[', sizeof(deep));
    cr_expect_str_eq(decode_bad(deep, sizeof(deep)), "body: JSON nested deeper than 32 levels");

    /* brackets inside strings do not count */
    char text[512];
    snprintf(text, sizeof(text), "{\"kind\":\"%s\"}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    cr_expect_str_eq(decode_bad(text, strlen(text)),
                     "apiVersion: missing (want \"admission.k8s.io/v1\")");

    size_t big = ADMISSION_BODY_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    cr_expect_str_eq(decode_bad(huge, big), "body: larger than 1048576 bytes");
    free(huge);
}

Test(admission, long_username_is_cut_on_a_utf8_boundary)
{
    char text[4096], user[700];
    size_t len;
    char *body = fixture("drain.json", &len);
    char *at = strstr(body, "kubernetes-admin");
    admission_request_t rq;
    char err[256];

    /* 300 two-byte characters: the cut must not split one */
    user[0] = '\0';
    for (int i = 0; i < 300; i++)
        strcat(user, "\xc3\xa9");
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - body), body, user,
             at + strlen("kubernetes-admin"));
    free(body);
    cr_assert_eq(admission_decode(text, strlen(text), &rq, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(strlen(rq.username), 254);
    cr_expect_eq(strncmp(rq.username, user, 254), 0);
}

/* --- the decision ------------------------------------------------------------ */

Test(admission, pod_not_cached_needs_a_lookup_then_lookup_results)
{
    admission_input_t in = input(NULL, NULL);
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_NEED_LOOKUP);
    cr_expect_str_eq(r.label, "lookup");

    in.pod_looked_up = true;
    r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_NO_POD);
    cr_expect(r.allowed);
    cr_expect_eq(r.code, 200);

    in.lookup_failed = true;
    r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_LOOKUP_FAILED);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message, "Eviction of pod default/virt-launcher-vm-a-7xk2p deferred: the "
                                "pod could not be read; retry");
}

Test(admission, non_launcher_pod_is_allowed)
{
    const kube_pod_t *p = kube_obj_as_pod(
        from_json(KUBE_KIND_POD, "{\"metadata\":{\"name\":\"virt-launcher-vm-a-7xk2p\","
                                 "\"namespace\":\"default\",\"labels\":{\"kubevirt.io\":\"virt-"
                                 "handler\"}},\"spec\":{\"nodeName\":\"node-1\"},"
                                 "\"status\":{\"phase\":\"Running\"}}"));
    admission_input_t in = input(p, vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_NOT_LAUNCHER);
    cr_expect(r.allowed);
    cr_expect_str_eq(r.label, "not_launcher");
    cr_expect_eq(r.effects, 0);
}

Test(admission, finished_pod_is_allowed)
{
    const kube_vmi_t *v = vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, "");
    admission_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Succeeded", ""), v);
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_FINISHED_POD);
    cr_expect_str_eq(r.message, "pod default/virt-launcher-vm-a-7xk2p has finished (Succeeded)");

    in.pod = launcher("virt-launcher-vm-a-7xk2p", "node-1", "Failed", "");
    cr_expect_eq(decide(&in).decision, ADMISSION_ALLOW_FINISHED_POD);
}

Test(admission, target_pod_of_a_running_migration_is_denied)
{
    const kube_migration_t *m =
        migration("vmdrain-0d3f2c1a-1", "9a8b7c6d-0000-4000-8000-000000000001", "Running");
    const kube_migration_t *const migs[] = {m};
    admission_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-2", "Running",
                       "\"kubevirt.io/migrationJobUID\":\"9a8b7c6d-0000-4000-8000-000000000001\""),
              vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.migs = migs;
    in.n_migs = 1;
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_TARGET_POD);
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
    cr_expect_eq(r.decision, ADMISSION_DENY_MIGRATE);
}

Test(admission, target_pod_known_from_the_vmi_migration_state)
{
    admission_input_t in = input(
        launcher("virt-launcher-vm-a-7xk2p", "node-2", "Running", ""),
        vmi("LiveMigrate", "node-1", "Running", MIGRATABLE,
            "\"migrationUid\":\"9a8b7c6d-0000-4000-8000-000000000002\",\"sourceNode\":\"node-1\","
            "\"targetNode\":\"node-2\",\"targetPod\":\"virt-launcher-vm-a-7xk2p\""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_TARGET_POD);
    cr_expect(strstr(r.message, "target of migration 9a8b7c6d-0000-4000-8000-000000000002") !=
              NULL);
}

Test(admission, launcher_of_no_vmi_is_allowed)
{
    admission_input_t in =
        input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""), NULL);
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_NO_VMI);
    cr_expect(r.allowed);
    cr_expect_str_eq(r.label, "no_vmi");
}

Test(admission, finished_vmi_and_vmi_elsewhere_are_allowed)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Failed", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_FINISHED_VMI);
    cr_expect_str_eq(r.message, "VMI default/vm-a has finished (Failed)");

    in.vmi = vmi("LiveMigrate", "node-2", "Running", MIGRATABLE,
                 "\"migrationUid\":\"u1\",\"targetPod\":\"virt-launcher-vm-a-new\","
                 "\"completed\":true");
    r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_VMI_ELSEWHERE);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a runs on node node-2, not on the pod's node node-1");
    cr_expect_str_eq(r.label, "elsewhere");
}

Test(admission, strategy_none_is_not_ours)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("None", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_NOT_OURS);
    cr_expect_str_eq(r.label, "none");

    /* no strategy on the VMI: the cluster default decides */
    in.vmi = vmi("", "node-1", "Running", MIGRATABLE, "");
    cr_expect_eq(decide(&in).decision, ADMISSION_ALLOW_NOT_OURS);
    in.default_strategy = KUBE_EVICTION_UNSET;
    cr_expect_eq(decide(&in).decision, ADMISSION_ALLOW_NOT_OURS);
    in.default_strategy = KUBE_EVICTION_LIVE_MIGRATE;
    cr_expect_eq(decide(&in).decision, ADMISSION_DENY_MIGRATE);
}

Test(admission, live_migrate_denies_marks_and_queues)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_MIGRATE);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration queued");
    cr_expect_eq(r.effects, ADMISSION_EFFECT_MARK | ADMISSION_EFFECT_QUEUE);
    cr_expect_eq(r.wanted_effects, r.effects);
    cr_expect_str_eq(r.node, "node-1");
    cr_expect_str_eq(r.label, "migrate");
}

Test(admission, live_migrate_with_a_migration_in_flight_says_in_progress)
{
    const kube_migration_t *m = migration("someone-elses", "u-77", "Scheduling");
    const kube_migration_t *const migs[] = {m};
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.migs = migs;
    in.n_migs = 1;
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_MIGRATE);
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

Test(admission, live_migrate_not_migratable_is_blocked)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", NOT_MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_BLOCKED);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a cannot be live-migrated: DisksNotLiveMigratable: cannot "
                     "migrate VMI: PVC vm-a-disk is not shared, live migration requires that all "
                     "PVCs must be shared (using ReadWriteMany access mode)");
    cr_expect_eq(r.effects, ADMISSION_EFFECT_BLOCKED);
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

Test(admission, long_condition_message_is_cut_on_a_utf8_boundary)
{
    char cond[3000] = "\"status\":\"False\",\"reason\":\"R\",\"message\":\"";
    for (int i = 0; i < 600; i++)
        strcat(cond, "\xe2\x82\xac"); /* the euro sign, three bytes */
    strcat(cond, "\"");
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", cond, ""));
    admission_result_t r = decide(&in);
    size_t n = strlen(r.message);
    cr_expect_leq(n, ADMISSION_MESSAGE_MAX - 1);
    cr_expect_gt(n, ADMISSION_MESSAGE_MAX - 4);
    /* the message ends on a whole character */
    cr_expect_eq(strcmp(r.message + n - 3, "\xe2\x82\xac"), 0);

    buf_t out;
    buf_init(&out, 1 << 16);
    cr_expect_eq(admission_encode("uid-1", &r, &out), 0);
    buf_free(&out);
}

Test(admission, if_possible_migrates_when_it_can_else_allows)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrateIfPossible", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_MIGRATE);
    cr_expect_str_eq(r.message,
                     "Eviction triggered evacuation of VMI default/vm-a: migration queued");
    cr_expect_eq(r.effects, ADMISSION_EFFECT_MARK | ADMISSION_EFFECT_QUEUE);

    in.vmi = vmi("LiveMigrateIfPossible", "node-1", "Running",
                 "\"status\":\"False\",\"reason\":\"DisksNotLiveMigratable\"", "");
    r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_IF_POSSIBLE);
    cr_expect(r.allowed);
    cr_expect_eq(r.effects, 0);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a cannot be live-migrated (DisksNotLiveMigratable); "
                     "eviction allowed by strategy LiveMigrateIfPossible");

    /* migratable, but the gate is off: it cannot migrate, so it may go */
    in.vmi = vmi("LiveMigrateIfPossible", "node-1", "Running", MIGRATABLE, "");
    in.live_migration_gate = false;
    r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_ALLOW_IF_POSSIBLE);
    cr_expect(strstr(r.message, "the LiveMigration feature gate is off") != NULL);
}

Test(admission, external_denies_and_marks_without_migration)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("External", "node-1", "Running", NOT_MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_EXTERNAL);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message, "Eviction triggered evacuation of VMI default/vm-a: evacuation is "
                                "handled by an external controller");
    cr_expect_eq(r.effects, ADMISSION_EFFECT_MARK);
    cr_expect_str_eq(r.node, "node-1");
}

Test(admission, live_migrate_without_the_gate_is_denied)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    in.live_migration_gate = false;
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_GATE_OFF);
    cr_expect_eq(r.code, 429);
    cr_expect_str_eq(r.message,
                     "VMI default/vm-a cannot be evacuated: the LiveMigration feature gate is off");
    cr_expect_str_eq(r.label, "gate_off");
}

Test(admission, unknown_strategy_is_denied)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("Teleport", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    cr_expect_eq(r.decision, ADMISSION_DENY_UNKNOWN_STRATEGY);
    cr_expect_not(r.allowed);
    cr_expect_eq(r.effects, 0);
}

Test(admission, dry_run_has_the_same_answer_and_no_side_effects)
{
    static const char *const dry[] = {"drain-dry-run-server.json", "review-dry-run.json"};
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    for (int i = 0; i < 2; i++) {
        admission_request_t rq = decode_ok(dry[i]);
        admission_result_t r;
        admission_decide(&rq, &in, &r);
        cr_expect_eq(r.decision, ADMISSION_DENY_MIGRATE, "%s", dry[i]);
        cr_expect_eq(r.wanted_effects, ADMISSION_EFFECT_MARK | ADMISSION_EFFECT_QUEUE);
        cr_expect_eq(r.effects, 0, "%s", dry[i]);
    }
}

Test(admission, every_decision_has_a_distinct_name_and_a_label)
{
    for (int i = 0; i < ADMISSION_DECISION_COUNT; i++) {
        const char *label = admission_decision_label((admission_decision_t)i);
        cr_expect(label && *label);
        for (const char *p = label; *p; p++)
            cr_expect((*p >= 'a' && *p <= 'z') || *p == '_', "label %s", label);
        for (int j = 0; j < i; j++)
            cr_expect_str_neq(admission_decision_name((admission_decision_t)i),
                              admission_decision_name((admission_decision_t)j));
    }
}

/* --- the response --------------------------------------------------------------- */

Test(admission, encodes_a_denial_with_status)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    buf_t out;
    buf_init(&out, 1 << 16);
    cr_assert_eq(admission_encode("6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13", &r, &out), 0);
    cr_expect_str_eq(out.data,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                     "\"response\":{\"uid\":\"6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13\","
                     "\"allowed\":false,\"status\":{\"code\":429,\"message\":\"Eviction triggered "
                     "evacuation of VMI default/vm-a: migration queued\","
                     "\"reason\":\"TooManyRequests\"}}}");
    buf_free(&out);
}

Test(admission, encodes_an_allowance_and_escapes_strings)
{
    admission_result_t r = {0};
    buf_t out;
    r.allowed = true;
    r.code = 200;
    buf_init(&out, 1 << 16);
    cr_assert_eq(admission_encode("a\"b\\c", &r, &out), 0);
    cr_expect_str_eq(out.data,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                     "\"response\":{\"uid\":\"a\\\"b\\\\c\",\"allowed\":true}}");

    /* invalid UTF-8 never reaches the wire */
    buf_reset(&out);
    r.allowed = false;
    r.reason = "TooManyRequests";
    snprintf(r.message, sizeof(r.message), "bad \xff byte");
    cr_expect_eq(admission_encode("u", &r, &out), -1);

    /* the buffer cap is honoured */
    buf_t tiny;
    buf_init(&tiny, 16);
    r.allowed = true;
    cr_expect_eq(admission_encode("u", &r, &tiny), -1);
    buf_free(&tiny);
    buf_free(&out);
}

Test(admission, counts_decisions_by_label)
{
    admission_input_t in = input(launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", ""),
                                 vmi("LiveMigrate", "node-1", "Running", MIGRATABLE, ""));
    admission_result_t r = decide(&in);
    admission_count(&r);
    admission_count(&r);
    in.vmi = vmi("None", "node-1", "Running", MIGRATABLE, "");
    r = decide(&in);
    admission_count(&r);
    double v = 0;
    cr_assert_eq(metrics_get("evictions_total", (const char *const[]){"migrate"}, &v), 0);
    cr_expect_eq(v, 2);
    cr_assert_eq(metrics_get("evictions_total", (const char *const[]){"none"}, &v), 0);
    cr_expect_eq(v, 1);
    cr_expect_eq(metrics_get("evictions_total", (const char *const[]){"blocked"}, &v), -1);
}

Test(admission, pod_vmi_name_comes_from_the_domain_annotation)
{
    const kube_pod_t *p = launcher("virt-launcher-vm-a-7xk2p", "node-1", "Running", "");
    cr_expect_str_eq(admission_pod_vmi_name(p), "vm-a");
    cr_expect_null(admission_pod_vmi_name(NULL));
    const kube_pod_t *bare = kube_obj_as_pod(
        from_json(KUBE_KIND_POD, "{\"metadata\":{\"name\":\"x\",\"namespace\":\"default\"}}"));
    cr_expect_null(admission_pod_vmi_name(bare));
}
