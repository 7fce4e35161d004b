#include <criterion/criterion.h>

#include "kube/decode.h"
#include "../testobj.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <valgrind/valgrind.h>

/* --- a recorder: every callback becomes one line of a transcript ---------- */

static void put_time(buf_t *b, const char *key, vd_time_t t)
{
    char s[TIME_RFC3339_MAX];
    if (!t.sec && !t.nsec) {
        buf_printf(b, " %s=-", key);
        return;
    }
    time_format_rfc3339(t, t.nsec ? 9 : 0, s, sizeof(s));
    buf_printf(b, " %s=%s", key, s);
}

static void put_kv(buf_t *b, const char *what, const kube_kv_t *kv, size_t n)
{
    buf_printf(b, " %s={", what);
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s%s=%s", i ? "," : "", kv[i].key, kv[i].value);
    buf_puts(b, "}");
}

static void put_node(buf_t *b, const kube_node_t *n)
{
    buf_printf(b, " unschedulable=%d ready=%s taints=[", n->unschedulable,
               kube_cond_name(n->ready));
    for (size_t i = 0; i < n->n_taints; i++)
        buf_printf(b, "%s%s=%s:%s", i ? "," : "", n->taints[i].key, n->taints[i].value,
                   n->taints[i].effect);
    buf_puts(b, "]");
}

static void put_vmi(buf_t *b, const kube_vmi_t *v)
{
    buf_printf(b, " eviction=%s guest=%lld request=%lld node=%s phase=%s",
               kube_eviction_strategy_name(v->eviction_strategy), (long long)v->guest_memory,
               (long long)v->memory_request, v->node_name, kube_vmi_phase_name(v->phase));
    buf_printf(b, " migratable=%s(%s: %s) method=%s", kube_cond_name(v->migratable),
               v->migratable_reason, v->migratable_message, v->migration_method);
    if (v->evacuation_node[0])
        buf_printf(b, " evacuation=%s", v->evacuation_node);
    if (!v->has_migration_state) {
        buf_puts(b, " mstate=-");
        return;
    }
    const kube_migration_state_t *m = &v->migration;
    buf_printf(b, " mstate={uid=%s src=%s dst=%s pod=%s", m->migration_uid, m->source_node,
               m->target_node, m->target_pod);
    put_time(b, "start", m->start);
    put_time(b, "end", m->end);
    buf_printf(b, " completed=%d failed=%d abortRequested=%d abort=%s}", m->completed, m->failed,
               m->abort_requested, kube_abort_status_name(m->abort_status));
}

static void put_kind_fields(buf_t *b, const kube_obj_t *o)
{
    const kube_pod_t *pod = kube_obj_as_pod(o);
    const kube_migration_t *mig = kube_obj_as_migration(o);
    const kube_configmap_t *cm = kube_obj_as_configmap(o);
    const kube_migration_policy_t *pol = kube_obj_as_migration_policy(o);

    buf_puts(b, " |");
    if (kube_obj_as_node(o))
        put_node(b, kube_obj_as_node(o));
    if (pod)
        buf_printf(b, " node=%s phase=%s", pod->node_name, kube_pod_phase_name(pod->phase));
    if (kube_obj_as_vmi(o))
        put_vmi(b, kube_obj_as_vmi(o));
    if (mig) {
        buf_printf(b, " vmi=%s phase=%s", mig->vmi_name, kube_migration_phase_name(mig->phase));
        put_time(b, "changed", mig->phase_changed);
    }
    if (cm)
        put_kv(b, "data", cm->data, cm->n_data);
    if (pol) {
        buf_printf(b, " bandwidth=%lld timeout=%lld", (long long)pol->bandwidth,
                   (long long)pol->completion_timeout_per_gib);
        put_kv(b, "selector", pol->vmi_selector, pol->n_vmi_selector);
    }
    const kube_nodedrain_t *nd = kube_obj_as_nodedrain(o);
    if (nd) {
        buf_printf(b, " node=%s reason=%s uncordon=%s phase=%s trigger=%s", nd->node_name,
                   nd->reason, nd->uncordon_policy, nd->phase, nd->trigger);
        put_time(b, "completed", nd->completion_time);
        buf_printf(b, " finalizers=%d ours=%d", nd->n_finalizers, nd->finalizer_index);
        for (int i = 0; i < 3; i++) {
            buf_printf(b, " c%d=%s", i, kube_cond_name(nd->conds[i].status));
            put_time(b, "since", nd->conds[i].since);
        }
    }
    const kube_kubevirt_t *kv = kube_obj_as_kubevirt(o);
    if (kv)
        buf_printf(b,
                   " parallel=%lld outbound=%lld bandwidth=%lld timeout=%lld progress=%lld "
                   "taint=%s eviction=%s phase=%s",
                   (long long)kv->parallel_migrations_per_cluster,
                   (long long)kv->parallel_outbound_per_node,
                   (long long)kv->bandwidth_per_migration,
                   (long long)kv->completion_timeout_per_gib, (long long)kv->progress_timeout,
                   kv->node_drain_taint_key, kube_eviction_strategy_name(kv->eviction_strategy),
                   kv->phase);
}

/* One line for an object; the object is freed (the callee owns it). */
static void put_obj(buf_t *b, kube_obj_t *o)
{
    char key[256];
    buf_printf(b, "%s %s uid=%s rv=%s gen=%lld", kube_kind_name(o->kind),
               kube_obj_key(o, key, sizeof(key)), o->uid, o->resource_version,
               (long long)o->generation);
    put_time(b, "created", o->created);
    put_time(b, "deleted", o->deleted);
    put_kv(b, "labels", o->labels, o->n_labels);
    put_kv(b, "annotations", o->annotations, o->n_annotations);
    put_kind_fields(b, o);
    buf_puts(b, "\n");
    kube_obj_free(o);
}

static void rec_item(void *ud, kube_obj_t *obj)
{
    buf_puts(ud, "ITEM ");
    put_obj(ud, obj);
}

static void rec_meta(void *ud, const char *rv, const char *cont)
{
    buf_printf(ud, "META rv=%s continue=%s\n", rv, cont);
}

static void rec_status(void *ud, const kube_status_t *st)
{
    buf_printf(ud, "STATUS code=%d reason=%s message=%s\n", st->code, st->reason, st->message);
}

static void rec_event(void *ud, kube_event_type_t type, kube_obj_t *obj, const kube_status_t *st)
{
    buf_printf(ud, "EVENT %s ", kube_event_type_name(type));
    if (obj)
        put_obj(ud, obj);
    if (st)
        buf_printf(ud, "code=%d reason=%s message=%s\n", st->code, st->reason, st->message);
}

static void rec_skip(void *ud, const char *why)
{
    buf_printf(ud, "SKIP %s\n", why);
}

static void rec_warning(void *ud, const char *what)
{
    buf_printf(ud, "WARN %s\n", what);
}

static const kube_decoder_cb_t rec_cb = {rec_item,  rec_meta, rec_status,
                                         rec_event, rec_skip, rec_warning};

/* --- running the decoder -------------------------------------------------- */

static char *slurp(const char *name, size_t *n)
{
    char path[256];
    snprintf(path, sizeof(path), "unit/testdata/%s", name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (tests run from the repository root)", path);
    buf_t b;
    buf_init(&b, 1 << 22);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        cr_assert_eq(buf_append(&b, chunk, got), 0);
    fclose(f);
    *n = b.len;
    return buf_steal(&b);
}

/* How a body is cut into chunks: at one offset (0: whole), or into pieces
 * of `step` bytes. */
struct cut {
    size_t at;
    size_t step;
};

/* Decodes body as cut, and returns the transcript (caller frees), ended by
 * an "END" line with the return values, the skip count and the error. */
static char *run(kube_kind_t kind, kube_decode_mode_t mode, const char *body, size_t n,
                 struct cut cut, size_t cap)
{
    buf_t out;
    buf_init(&out, 1 << 22);
    kube_decoder_t *d = kube_decoder_new(kind, mode, &rec_cb, &out, cap);
    cr_assert_not_null(d);
    int fed = 0;
    if (cut.step) {
        for (size_t i = 0; i < n && fed == 0; i += cut.step)
            fed = kube_decoder_feed(d, body + i, n - i < cut.step ? n - i : cut.step);
    } else {
        fed = kube_decoder_feed(d, body, cut.at);
        if (fed == 0)
            fed = kube_decoder_feed(d, body + cut.at, n - cut.at);
    }
    int fin = fed == 0 ? kube_decoder_finish(d) : -1;
    buf_printf(&out, "END feed=%d finish=%d skipped=%zu error=%s\n", fed, fin,
               kube_decoder_skipped(d), kube_decoder_error(d));
    kube_decoder_free(d);
    return buf_steal(&out);
}

/* Asserts that the transcript of a body is exactly `want` when decoded in
 * one piece, one byte at a time, and cut in two at every byte boundary. */
static void expect_every_split(kube_kind_t kind, kube_decode_mode_t mode, const char *file,
                               size_t cap, const char *want)
{
    size_t n;
    char *body = slurp(file, &n);
    char *got = run(kind, mode, body, n, (struct cut){n, 0}, cap);
    cr_assert_str_eq(got, want, "%s decoded whole", file);
    free(got);
    got = run(kind, mode, body, n, (struct cut){0, 1}, cap);
    cr_assert_str_eq(got, want, "%s decoded one byte at a time", file);
    free(got);
    /* Under valgrind (whose job here is memory checking) every 37th cut;
     * the sanitizer run checks every one. */
    size_t stride = RUNNING_ON_VALGRIND ? 37 : 1;
    for (size_t at = 0; at <= n; at += stride) {
        got = run(kind, mode, body, n, (struct cut){at, 0}, cap);
        if (strcmp(got, want) != 0)
            cr_assert_str_eq(got, want, "%s cut at byte %zu", file, at);
        free(got);
    }
    free(body);
}

/* Decodes a literal body whole and in single bytes; both transcripts must
 * be `want`. */
static void expect_text(kube_kind_t kind, kube_decode_mode_t mode, const char *body, size_t cap,
                        const char *want)
{
    size_t n = strlen(body);
    char *got = run(kind, mode, body, n, (struct cut){n, 0}, cap);
    cr_assert_str_eq(got, want, "body %s", body);
    free(got);
    got = run(kind, mode, body, n, (struct cut){0, 1}, cap);
    cr_assert_str_eq(got, want, "body %s, one byte at a time", body);
    free(got);
}

/* Asserts that a body fails with an error containing `why` (whole and in
 * single bytes). */
static void expect_failure(kube_kind_t kind, kube_decode_mode_t mode, const char *body,
                           const char *why)
{
    size_t n = strlen(body);
    for (size_t step = 0; step <= 1; step++) {
        char *got = run(kind, mode, body, n, (struct cut){n, step}, 0);
        const char *err = strstr(got, "error=");
        cr_assert(strstr(got, "finish=-1"), "body %s accepted: %s", body, got);
        cr_assert(err && strstr(err, why), "body %s: error does not say \"%s\": %s", body, why,
                  got);
        free(got);
    }
}

/* --- recorded bodies, cut everywhere -------------------------------------- */

#define LAUNCHER_LABELS                                                                            \
    "labels={kubevirt.io=virt-launcher,kubevirt.io/created-by=0f6d2c1e-5a7b-4c3d-8e9f-"            \
    "112233445566,kubevirt.io/nodeName=worker-1}"
#define LAUNCHER_ANNOTATIONS                                                                       \
    "annotations={kubevirt.io/domain=rhel9-web,kubevirt.io/migrationTransportUnix=true,"           \
    "kubevirt.io/vm-generation=1"

Test(decode, podlist_every_split)
{
    expect_every_split(
        KUBE_KIND_POD, KUBE_DECODE_LIST, "podlist.json", 0,
        "ITEM Pod prod/virt-launcher-rhel9-web-7xk2p uid=5b0c5b8e-1a7e-4b0f-9a55-7d1c2f8e9a01 "
        "rv=184467 gen=0 created=2024-05-13T09:12:44Z deleted=- " LAUNCHER_LABELS
        " " LAUNCHER_ANNOTATIONS "} | node=worker-1 phase=Running\n"
        "ITEM Pod kube-system/coredns-5d78c9869d-4hxqz uid=8e3a1f2b-6c4d-4e5f-a7b8-c9d0e1f2a3b4 "
        "rv=912 gen=0 created=2024-05-12T21:03:11Z deleted=- labels={} annotations={} | "
        "node=control-plane phase=Running\n"
        "ITEM Pod batch/virt-launcher-batch-job-q9zrt uid=c4f2a7d1-0b3e-4c5f-8a9d-2e1f0a3b4c5d "
        "rv=184502 gen=2 created=2024-05-13T08:00:00.123456000Z deleted=2024-05-13T08:01:30Z "
        "labels={kubevirt.io=virt-launcher,kubevirt.io/created-by=77aa88bb-99cc-4dde-8eff-"
        "001122334455} annotations={kubevirt.io/domain=batch-job,kubevirt.io/migrationJobUID="
        "ab12cd34-ef56-4a78-9b0c-d1e2f3a4b5c6} | node=worker-2 phase=Succeeded\n"
        "META rv=184555 continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTg0NTU1LCJzdGFydCI6InByb2Qv"
        "dmlydC1sYXVuY2hlci1yaGVsOS13ZWItN3hrMnBcdTAwMDAifQ\n"
        "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, vmilist_every_split)
{
    expect_every_split(
        KUBE_KIND_VMI, KUBE_DECODE_LIST, "vmilist.json", 0,
        "ITEM VirtualMachineInstance prod/rhel9-web uid=0f6d2c1e-5a7b-4c3d-8e9f-112233445566 "
        "rv=201933 gen=14 created=2024-05-13T09:12:44Z deleted=- "
        "labels={kubevirt.io/nodeName=worker-2,kubevirt.io/vm=rhel9-web} "
        "annotations={kubevirt.io/latest-observed-api-version=v1,kubevirt.io/storage-observed-"
        "api-version=v1,kubevirt.io/vm-generation=1,vmdrain.io/evacuate-from=worker-1,"
        "sim.vmdrain.io/dirty-rate=0} | eviction=LiveMigrate guest=2147483648 "
        "request=2147483648 node=worker-2 phase=Running migratable=False(DisksNotLiveMigratable: "
        "cannot migrate VMI: PVC rhel9-web-root is not shared, live migration requires that all "
        "PVCs must be shared (using ReadWriteMany access mode)) method=BlockMigration "
        "mstate={uid=3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7 src=worker-1 dst=worker-2 "
        "pod=virt-launcher-rhel9-web-zr4mk start=2024-05-13T09:43:31Z end=2024-05-13T09:44:10Z "
        "completed=1 failed=0 abortRequested=1 abort=Failed}\n"
        "ITEM VirtualMachineInstance dev/cirros-scratch uid=11111111-2222-4333-8444-555555555555 "
        "rv=198001 gen=5 created=2024-05-13T07:00:00Z deleted=- labels={kubevirt.io/size=small} "
        "annotations={} | eviction=LiveMigrateIfPossible guest=134217728 request=128000000 "
        "node=worker-1 phase=Scheduled migratable=True(: ) method= mstate=-\n"
        "META rv=202000 continue=\n"
        "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, migrationlist_every_split)
{
    expect_every_split(
        KUBE_KIND_MIGRATION, KUBE_DECODE_LIST, "migrationlist.json", 0,
        "ITEM VirtualMachineInstanceMigration prod/vmdrain-0f6d2c1e-1 "
        "uid=3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7 rv=201940 gen=1 created=2024-05-13T09:43:30Z "
        "deleted=- labels={kubevirt.io/vmi-name=rhel9-web,vmdrain.io/managed-by=vmdrain,"
        "vmdrain.io/node=worker-1,vmdrain.io/vmi-uid=0f6d2c1e-5a7b-4c3d-8e9f-112233445566} "
        "annotations={kubevirt.io/evacuationMigration=worker-1,kubevirt.io/latest-observed-api-"
        "version=v1} | vmi=rhel9-web phase=Succeeded changed=2024-05-13T09:44:10.500000000Z\n"
        "WARN VirtualMachineInstanceMigration dev/kubevirt-evacuation-abcde: "
        "status.phaseTransitionTimestamps[].phaseTransitionTimestamp: ignored: invalid RFC 3339 "
        "time \"not-a-time\": bad date, want YYYY-MM-DD\n"
        "ITEM VirtualMachineInstanceMigration dev/kubevirt-evacuation-abcde "
        "uid=99999999-8888-4777-8666-555555555555 rv=202010 gen=1 created=2024-05-13T09:50:00Z "
        "deleted=- labels={} annotations={kubevirt.io/evacuationMigration=worker-1} | "
        "vmi=cirros-scratch phase=Other changed=2024-05-13T09:50:01Z\n"
        "META rv=202011 continue=\n"
        "END feed=0 finish=0 skipped=0 error=\n");
}

#define NODE_COMMON                                                                                \
    "gen=0 created=2024-05-12T21:02:40Z deleted=- labels={kubevirt.io/schedulable=true"

Test(decode, nodelist_every_split)
{
    expect_every_split(
        KUBE_KIND_NODE, KUBE_DECODE_LIST, "nodelist.json", 0,
        "ITEM Node worker-1 uid=f0e1d2c3-b4a5-4697-8879-726b65722d31 rv=201500 " NODE_COMMON
        ",vmdrain.io/state=draining} annotations={kubevirt.io/heartbeat=2024-05-13T09:40:11Z,"
        "vmdrain.io/state=Draining,vmdrain.io/progress=3/7,vmdrain.io/cordoned-by=vmdrain} | "
        "unschedulable=1 ready=True taints=[kubevirt.io/drain=draining:NoSchedule,"
        "node.kubernetes.io/unschedulable=:NoSchedule]\n"
        "ITEM Node worker-2 uid=f0e1d2c3-b4a5-4697-8879-726b65722d32 rv=201400 " NODE_COMMON
        "} annotations={kubevirt.io/heartbeat=2024-05-13T09:40:11Z} | unschedulable=0 "
        "ready=False taints=[]\n"
        "ITEM Node worker-3 uid=f0e1d2c3-b4a5-4697-8879-726b65722d33 rv=201300 " NODE_COMMON
        "} annotations={kubevirt.io/heartbeat=2024-05-13T09:40:11Z} | unschedulable=0 "
        "ready=Unknown taints=[]\n"
        "META rv=201555 continue=\n"
        "END feed=0 finish=0 skipped=0 error=\n");
}

#define WATCHED_POD                                                                                \
    "Pod prod/virt-launcher-rhel9-web-7xk2p uid=5b0c5b8e-1a7e-4b0f-9a55-7d1c2f8e9a01 "

Test(decode, watch_pods_every_split)
{
    expect_every_split(
        KUBE_KIND_POD, KUBE_DECODE_WATCH, "watch-pods.json", 0,
        "EVENT ADDED " WATCHED_POD
        "rv=184467 gen=0 created=2024-05-13T09:12:44Z deleted=- " LAUNCHER_LABELS
        " " LAUNCHER_ANNOTATIONS "} | node=worker-1 phase=Running\n"
        "EVENT MODIFIED " WATCHED_POD
        "rv=184470 gen=0 created=2024-05-13T09:12:44Z deleted=- " LAUNCHER_LABELS
        " " LAUNCHER_ANNOTATIONS
        ",kubevirt.io/migrationJobUID=3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7} | node=worker-1 "
        "phase=Failed\n"
        "EVENT BOOKMARK Pod  uid= rv=184480 gen=0 created=- deleted=- labels={} "
        "annotations={k8s.io/initial-events-end=true} | "
        "node= phase=\n"
        "EVENT DELETED " WATCHED_POD "rv=184490 gen=0 created=2024-05-13T09:12:44Z "
        "deleted=2024-05-13T09:45:00Z " LAUNCHER_LABELS " " LAUNCHER_ANNOTATIONS
        ",kubevirt.io/migrationJobUID=3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7} | node=worker-1 "
        "phase=Failed\n"
        "EVENT ERROR code=410 reason=Expired message=too old resource version: 184000 (184467)\n"
        "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, configmap_and_policy)
{
    expect_every_split(
        KUBE_KIND_CONFIGMAP, KUBE_DECODE_LIST, "configmaplist.json", 0,
        "ITEM ConfigMap kubevirt/kubevirt-config uid=aaaabbbb-cccc-4ddd-8eee-ffff00001111 rv=5001 "
        "gen=0 created=2024-05-12T21:05:00Z deleted=- labels={} annotations={} | "
        "data={feature-gates=LiveMigration,Snapshot,migrations=parallelMigrationsPerCluster: 5\n"
        "parallelOutboundMigrationsPerNode: 2\nbandwidthPerMigration: 64Mi\n"
        "completionTimeoutPerGiB: 800\nprogressTimeout: 150\n,empty=}\n"
        "META rv=5002 continue=\n"
        "END feed=0 finish=0 skipped=0 error=\n");
    expect_every_split(
        KUBE_KIND_MIGRATION_POLICY, KUBE_DECODE_LIST, "policylist.json", 0,
        "ITEM MigrationPolicy vmdrain-bandwidth uid=12121212-3434-4565-8787-909090909090 rv=6001 "
        "gen=3 created=2024-05-12T21:06:00Z deleted=- labels={vmdrain.io/managed-by=vmdrain} "
        "annotations={} | bandwidth=67108864 timeout=800 "
        "selector={vmdrain.io/policy=default,workload=web}\n"
        "META rv=6002 continue=\n"
        "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, nodedrain_spec_status_and_finalizers)
{
    expect_every_split(
        KUBE_KIND_NODEDRAIN, KUBE_DECODE_LIST, "nodedrainlist.json", 0,
        "ITEM NodeDrain n1 uid=0d0d0d0d-1111-4222-8333-444455556666 rv=7000 gen=2 "
        "created=2026-11-30T10:00:00Z deleted=- labels={vmdrain.io/managed-by=vmdrain} "
        "annotations={} | node=n1 reason=kernel upgrade uncordon=OnCompletion phase=Draining "
        "trigger=nodedrain completed=- finalizers=2 ours=1 c0=True since=2026-11-30T10:00:03Z "
        "c1=False since=2026-11-30T10:00:02Z c2=Unknown since=-\n"
        "ITEM NodeDrain n2 uid=0d0d0d0d-1111-4222-8333-444455557777 rv=7001 gen=0 "
        "created=2026-11-30T10:00:01Z deleted=2026-11-30T11:00:00Z labels={} annotations={} | "
        "node=n2 reason= uncordon= phase=Completed trigger=taint completed=2026-11-30T10:30:00Z "
        "finalizers=0 ours=-1 c0=Unknown since=- c1=Unknown since=- c2=Unknown since=-\n"
        "SKIP NodeDrain n3 (items[2]): metadata.finalizers[]: expected a string, got a number\n"
        "SKIP NodeDrain n4 (items[3]): metadata.finalizers[]: expected a string, got an object\n"
        "WARN NodeDrain n5: status.completionTime: ignored: invalid RFC 3339 time \"yesterday\": "
        "bad date, want YYYY-MM-DD\n"
        "ITEM NodeDrain n5 uid=u5 rv= gen=0 created=- deleted=- labels={} annotations={} | "
        "node=n5 reason= uncordon= phase= trigger= completed=- finalizers=0 ours=-1 c0=Unknown "
        "since=- c1=Unknown since=- c2=Unknown since=-\n"
        "META rv=7002 continue=\n"
        "END feed=0 finish=0 skipped=2 error=\n");
}

Test(decode, node_allocatable_and_pod_memory_requests)
{
    kube_obj_t *n = test_obj_from_json(KUBE_KIND_NODE,
                                       "{\"metadata\":{\"name\":\"n\"},\"status\":{\"allocatable\":"
                                       "{\"cpu\":\"32\",\"memory\":\"256Gi\",\"pods\":\"110\"}}}");
    cr_expect_eq(kube_obj_as_node(n)->allocatable_memory, 256LL << 30);
    kube_obj_free(n);
    /* every container's request counts; limits and CPU do not */
    kube_obj_t *p = test_obj_from_json(
        KUBE_KIND_POD,
        "{\"metadata\":{\"name\":\"p\",\"namespace\":\"x\"},\"spec\":{\"containers\":["
        "{\"name\":\"compute\",\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":"
        "\"2282Mi\"},\"limits\":{\"memory\":\"9Gi\"}}},{\"name\":\"side\",\"resources\":"
        "{\"requests\":{\"memory\":\"40M\"}}},{\"name\":\"none\"}]}}");
    cr_expect_eq(kube_obj_as_pod(p)->memory_request, 2282LL * (1 << 20) + 40000000LL);
    kube_obj_free(p);
    p = test_obj_from_json(KUBE_KIND_POD,
                           "{\"metadata\":{\"name\":\"p\",\"namespace\":\"x\"},"
                           "\"spec\":{\"containers\":[{\"resources\":{\"requests\":"
                           "{\"memory\":\"8E\"}}},{\"resources\":{\"requests\":{\"memory\":"
                           "\"8E\"}}}]}}");
    cr_expect_eq(kube_obj_as_pod(p)->memory_request, INT64_MAX, "the sum saturates");
    kube_obj_free(p);
}

/* --- skipped objects and their neighbours ----------------------------------- */

#define GOOD_NODE(name, uid, rv)                                                                   \
    "ITEM Node " name " uid=f0e1d2c3-b4a5-4697-8879-" uid " rv=" rv " " NODE_COMMON                \
    "} annotations={} | unschedulable=0 ready=True taints=[k=v:NoExecute]\n"

Test(decode, bad_items_are_skipped_and_neighbours_survive)
{
    /* 1 KiB per object: the 24 feature labels of "too-big" exceed it */
    expect_every_split(
        KUBE_KIND_NODE, KUBE_DECODE_LIST, "nodelist-bad.json", 1024,
        GOOD_NODE(
            "good-1", "676f6f642d31",
            "1") "SKIP Node bad-bool (items[1]): spec.unschedulable: expected a boolean, got a "
                 "string\n"
                 "SKIP Node bad-labels (items[2]): metadata.labels: expected an object, got an "
                 "array\n" GOOD_NODE(
                     "good-2", "676f6f642d32",
                     "4") "SKIP Node too-big (items[4]): object larger than 1024 bytes\n"
                          "SKIP Node bad-time (items[5]): metadata.creationTimestamp: invalid RFC "
                          "3339 time "
                          "\"yesterday\": bad date, want YYYY-MM-DD\n"
                          "SKIP Node bad-taint (items[6]): spec.taints[].effect: expected a "
                          "string, got a number\n"
                          "SKIP Node bad-label-value (items[7]): "
                          "metadata.labels.kubevirt.io/schedulable: "
                          "expected a string, got a boolean\n"
                          "SKIP NodeList items[8]: expected an object, got a string\n" GOOD_NODE(
                              "good-3", "676f6f642d33",
                              "9") "META rv=10 continue=\n"
                                   "END feed=0 finish=0 skipped=7 error=\n");
}

#define SMALL_VMI(type, name, rv)                                                                  \
    "EVENT " type " VirtualMachineInstance ns1/" name " uid=u-" name " rv=" rv                     \
    " gen=0 created=- deleted=- labels={} annotations={} | eviction=LiveMigrate "                  \
    "guest=1073741824 request=0 node=worker-1 phase=Running migratable=Unknown(: ) method= "       \
    "mstate=-\n"

Test(decode, bad_events_are_skipped_and_neighbours_survive)
{
    expect_every_split(
        KUBE_KIND_VMI, KUBE_DECODE_WATCH, "watch-vmis-bad.json", 1024,
        SMALL_VMI(
            "ADDED", "ok-1",
            "1") "SKIP watch MODIFIED VirtualMachineInstance ns1/bad-quantity: "
                 "spec.domain.memory.guest: "
                 "invalid quantity \"4GB\": unknown suffix\n"
                 "SKIP watch MODIFIED VirtualMachineInstance ns1/bad-mstate: "
                 "status.migrationState.completed: expected a boolean, got a string\n" SMALL_VMI(
                     "ADDED", "ok-2",
                     "4") "SKIP watch MODIFIED VirtualMachineInstance ns1/huge: object larger than "
                          "1024 bytes\n"
                          "SKIP watch ADDED VirtualMachineInstance ns1/wrong-kind: kind is "
                          "\"Pod\", expected "
                          "VirtualMachineInstance\n"
                          "SKIP watch event of unknown type \"SURPRISE\"\n"
                          "SKIP watch event: type: expected a string, got a number\n"
                          "SKIP watch ADDED event without an object\n"
                          "SKIP watch ADDED VirtualMachineInstance (no name): metadata.name "
                          "missing\n" SMALL_VMI("DELETED", "ok-3",
                                                "9") "END feed=0 finish=0 skipped=8 error=\n");
}

Test(decode, skip_callback_is_optional_and_counts)
{
    size_t n;
    char *body = slurp("nodelist-bad.json", &n);
    kube_decoder_cb_t cb = {0};
    kube_decoder_t *d = kube_decoder_new(KUBE_KIND_NODE, KUBE_DECODE_LIST, &cb, NULL, 1024);
    cr_assert_eq(kube_decoder_feed(d, body, n), 0);
    cr_assert_eq(kube_decoder_finish(d), 0);
    cr_expect_eq(kube_decoder_skipped(d), 7); /* and the three good nodes were freed */
    kube_decoder_free(d);
    free(body);
}

/* --- typed values ------------------------------------------------------------ */

static kube_obj_t *kept[8];
static size_t n_kept;

static void keep_item(void *ud, kube_obj_t *obj)
{
    (void)ud;
    cr_assert_lt(n_kept, 8);
    kept[n_kept++] = obj;
}

/* Decodes a LIST fixture and keeps its items in kept[]. */
static void decode_list_file(kube_kind_t kind, const char *file)
{
    size_t n;
    char *body = slurp(file, &n);
    kube_decoder_cb_t cb = {.on_item = keep_item};
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, NULL, 0);
    n_kept = 0;
    cr_assert_eq(kube_decoder_feed(d, body, n), 0, "%s", kube_decoder_error(d));
    cr_assert_eq(kube_decoder_finish(d), 0, "%s", kube_decoder_error(d));
    kube_decoder_free(d);
    free(body);
}

static void free_kept(void)
{
    for (size_t i = 0; i < n_kept; i++)
        kube_obj_free(kept[i]);
    n_kept = 0;
}

Test(decode, vmi_typed_fields)
{
    decode_list_file(KUBE_KIND_VMI, "vmilist.json");
    cr_assert_eq(n_kept, 2);
    const kube_vmi_t *v = kube_obj_as_vmi(kept[0]);
    cr_assert_not_null(v);
    cr_expect_eq(v->eviction_strategy, KUBE_EVICTION_LIVE_MIGRATE);
    cr_expect_eq(v->guest_memory, 2LL << 30);
    cr_expect_eq(v->memory_request, 2LL << 30);
    cr_expect_eq(v->phase, KUBE_VMI_RUNNING);
    cr_expect_eq(v->migratable, KUBE_COND_FALSE);
    cr_expect_str_eq(v->migratable_reason, "DisksNotLiveMigratable");
    cr_expect(v->has_migration_state);
    cr_expect_eq(v->migration.start.sec, 1715593411); /* 2024-05-13T09:43:31Z */
    cr_expect_eq(v->migration.end.sec, 1715593450);   /* 2024-05-13T09:44:10Z */
    cr_expect(v->migration.completed);
    cr_expect_not(v->migration.failed);
    cr_expect_eq(v->migration.abort_status, KUBE_ABORT_FAILED);
    cr_expect_eq(v->obj.generation, 14);
    cr_expect_str_eq(kube_obj_annotation(kept[0], "vmdrain.io/evacuate-from"), "worker-1");
    cr_expect_null(kube_obj_label(kept[0], "app"));

    const kube_vmi_t *s = kube_obj_as_vmi(kept[1]);
    cr_expect_eq(s->eviction_strategy, KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE);
    cr_expect_eq(s->guest_memory, 134217728);
    cr_expect_eq(s->memory_request, 128000000);
    cr_expect_eq(s->migratable, KUBE_COND_TRUE);
    cr_expect_str_eq(s->migratable_reason, "");
    cr_expect_not(s->has_migration_state);
    free_kept();
}

Test(decode, migration_phase_changed_is_the_latest_transition)
{
    decode_list_file(KUBE_KIND_MIGRATION, "migrationlist.json");
    cr_assert_eq(n_kept, 2);
    const kube_migration_t *m = kube_obj_as_migration(kept[0]);
    /* the latest (09:44:10.5) is not the last entry of the array */
    cr_expect_eq(m->phase_changed.sec, 1715593450);
    cr_expect_eq(m->phase_changed.nsec, 500000000);
    cr_expect_eq(m->phase, KUBE_MIGRATION_SUCCEEDED);
    cr_expect_str_eq(kube_obj_label(kept[0], "vmdrain.io/vmi-uid"),
                     "0f6d2c1e-5a7b-4c3d-8e9f-112233445566");
    cr_expect_str_eq(kube_obj_annotation(kept[0], "kubevirt.io/evacuationMigration"), "worker-1");
    /* "WaitingForSync" is not a phase this version knows */
    cr_expect_eq(kube_obj_as_migration(kept[1])->phase, KUBE_MIGRATION_PHASE_OTHER);
    free_kept();
}

Test(decode, node_and_pod_typed_fields)
{
    decode_list_file(KUBE_KIND_NODE, "nodelist.json");
    cr_assert_eq(n_kept, 3);
    const kube_node_t *n = kube_obj_as_node(kept[0]);
    cr_expect(n->unschedulable);
    cr_expect_eq(n->ready, KUBE_COND_TRUE);
    cr_assert_eq(n->n_taints, 2);
    cr_expect_str_eq(n->taints[0].key, "kubevirt.io/drain");
    cr_expect_str_eq(n->taints[1].value, "");
    cr_expect_str_eq(kube_obj_key(kept[0], (char[64]){0}, 64), "worker-1");
    free_kept();

    decode_list_file(KUBE_KIND_POD, "podlist.json");
    cr_assert_eq(n_kept, 3);
    const kube_pod_t *p = kube_obj_as_pod(kept[0]);
    cr_expect_str_eq(kube_obj_label(kept[0], "kubevirt.io"), "virt-launcher");
    cr_expect_str_eq(kube_obj_annotation(kept[0], "kubevirt.io/domain"), "rhel9-web");
    cr_expect_eq(p->phase, KUBE_POD_RUNNING);
    cr_expect_eq(kube_obj_as_pod(kept[2])->phase, KUBE_POD_SUCCEEDED);
    cr_expect_eq(kept[2]->deleted.sec, 1715587290); /* 2024-05-13T10:01:30+02:00 */
    cr_expect_eq(kept[2]->created.nsec, 123456000);
    free_kept();
}

/* --- LIST shapes ------------------------------------------------------------ */

Test(decode, list_keys_in_any_order)
{
    expect_text(KUBE_KIND_POD, KUBE_DECODE_LIST,
                "{\"items\":[{\"status\":{\"phase\":\"Pending\"},\"metadata\":{\"namespace\":\"a\","
                "\"name\":\"p\"}}],\"metadata\":{\"continue\":\"c1\",\"resourceVersion\":\"7\"},"
                "\"apiVersion\":\"v1\",\"kind\":\"PodList\"}",
                0,
                "ITEM Pod a/p uid= rv= gen=0 created=- deleted=- labels={} annotations={} | "
                "node= phase=Pending\n"
                "META rv=7 continue=c1\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, empty_list_and_missing_items)
{
    expect_text(KUBE_KIND_NODE, KUBE_DECODE_LIST,
                "{\"kind\":\"NodeList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}", 0,
                "META rv=1 continue=\nEND feed=0 finish=0 skipped=0 error=\n");
    expect_text(KUBE_KIND_NODE, KUBE_DECODE_LIST, " { } ", 0,
                "META rv= continue=\nEND feed=0 finish=0 skipped=0 error=\n");
    expect_text(KUBE_KIND_NODE, KUBE_DECODE_LIST, "{\"items\":null}", 0,
                "META rv= continue=\nEND feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, list_body_that_is_a_status)
{
    size_t n;
    char *body = slurp("list-status.json", &n);
    char *got = run(KUBE_KIND_POD, KUBE_DECODE_LIST, body, n, (struct cut){n, 0}, 0);
    cr_expect_str_eq(got, "STATUS code=410 reason=Expired message=The provided continue parameter "
                          "is too old to display a consistent list result. You can start a new "
                          "list without the continue parameter.\n"
                          "END feed=0 finish=-1 skipped=0 error=PodList body is a Status: 410 "
                          "Expired: The provided continue parameter is too old to display a "
                          "consistent list result. You can start a new list without the "
                          "continue parameter.\n");
    free(got);
    free(body);
}

Test(decode, list_of_another_kind_fails_early)
{
    size_t n;
    char *body = slurp("nodelist.json", &n);
    char *got = run(KUBE_KIND_POD, KUBE_DECODE_LIST, body, n, (struct cut){n, 0}, 0);
    cr_expect_str_eq(got, "END feed=-1 finish=-1 skipped=0 error=PodList body: kind is "
                          "\"NodeList\"\n");
    free(got);
    free(body);
}

Test(decode, list_level_type_errors_are_hard)
{
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "{\"items\":{}}",
                   "PodList body: items: expected an array, got an object");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "{\"metadata\":{\"resourceVersion\":5}}",
                   "PodList body: metadata.resourceVersion: expected a string, got a number");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "[]", "LIST body is not a JSON object");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "\"PodList\"",
                   "LIST body is not a JSON object (got a string)");
}

Test(decode, list_items_that_are_not_objects)
{
    expect_text(KUBE_KIND_POD, KUBE_DECODE_LIST,
                "{\"items\":[null,[1],{\"metadata\":{\"name\":\"ok\"}},7]}", 0,
                "SKIP PodList items[0]: expected an object, got null\n"
                "SKIP PodList items[1]: expected an object, got an array\n"
                "ITEM Pod ok uid= rv= gen=0 created=- deleted=- labels={} annotations={} | node= "
                "phase=\n"
                "SKIP PodList items[3]: expected an object, got a number\n"
                "META rv= continue=\n"
                "END feed=0 finish=0 skipped=3 error=\n");
}

/* --- WATCH shapes ----------------------------------------------------------- */

Test(decode, watch_type_after_object_and_nulls)
{
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH,
                "{\"object\":{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"labels\":null,"
                "\"deletionTimestamp\":null,\"annotations\":{\"kubevirt.io/x\":null}},\"spec\":"
                "null},\"type\":\"DELETED\"}\r\n\t {\"type\":\"ADDED\",\"object\":{\"metadata\":"
                "{\"name\":\"q\"}}}",
                0,
                "EVENT DELETED Pod n/p uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={kubevirt.io/x=} | node= phase=\n"
                "EVENT ADDED Pod q uid= rv= gen=0 created=- deleted=- labels={} annotations={} | "
                "node= phase=\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, watch_error_is_always_delivered)
{
    /* type after the object, and an object that would not make a Pod */
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH,
                "{\"object\":{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":410,"
                "\"reason\":\"Gone\",\"message\":\"too old\"},\"type\":\"ERROR\"}\n"
                "{\"type\":\"ERROR\"}\n",
                0,
                "EVENT ERROR code=410 reason=Gone message=too old\n"
                "EVENT ERROR code=0 reason= message=\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, empty_watch_body_is_fine)
{
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH, "", 0, "END feed=0 finish=0 skipped=0 error=\n");
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH, "\n \n", 0,
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, watch_values_that_are_not_events)
{
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\"}\n42\n",
                   "watch event is not a JSON object (got a number)");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "[{\"type\":\"ADDED\"}]",
                   "watch event is not a JSON object (got an array)");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "true", "watch event is not a JSON object");
}

/* --- malformed and truncated bodies --------------------------------------------- */

Test(decode, malformed_json_is_a_hard_error)
{
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\",\"object\":{]}",
                   "malformed JSON in watch stream: parse error");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "{\"items\":[tru]}",
                   "malformed JSON in LIST body: lexical error");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "{\"kind\":\"PodList\"} {}",
                   "malformed JSON in LIST body: parse error: trailing garbage");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "{\"type\":\"\xff\"}",
                   "invalid bytes in UTF8 string");
}

Test(decode, hard_error_is_sticky)
{
    buf_t out;
    buf_init(&out, 1 << 16);
    kube_decoder_t *d = kube_decoder_new(KUBE_KIND_POD, KUBE_DECODE_WATCH, &rec_cb, &out, 0);
    cr_assert_eq(kube_decoder_feed(d, "{\"type\":}", 9), -1);
    const char *err = kube_decoder_error(d);
    cr_expect(strstr(err, "malformed JSON") != NULL, "%s", err);
    cr_expect(strstr(err, "(at byte ") != NULL, "%s", err);
    cr_expect_eq(kube_decoder_feed(d, "{}", 2), -1);
    cr_expect_eq(kube_decoder_finish(d), -1);
    kube_decoder_free(d);
    buf_free(&out);
}

Test(decode, truncated_bodies_fail_at_finish)
{
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "", "premature EOF");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, "{\"items\":[{\"metadata\":{}}",
                   "premature EOF");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\"}\n{\"type\"",
                   "premature EOF");
    /* a top-level token cut short: nothing was reported for it yet */
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "{\"type\":\"ADDED\"}\n\"abc",
                   "premature EOF");
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_WATCH, "{}\ntru", "");
}

Test(decode, every_truncation_of_a_list_fails)
{
    size_t n;
    char *body = slurp("vmilist.json", &n);
    /* the body ends with "}\n": every cut before the closing brace fails */
    for (size_t len = 0; len + 1 < n; len += RUNNING_ON_VALGRIND ? 37 : 1) {
        char *got = run(KUBE_KIND_VMI, KUBE_DECODE_LIST, body, len, (struct cut){len, 0}, 0);
        cr_assert(strstr(got, "finish=-1") && !strstr(got, "META"), "cut at %zu accepted: %s", len,
                  got);
        free(got);
    }
    free(body);
}

Test(decode, feeding_after_finish_fails)
{
    kube_decoder_t *d = kube_decoder_new(KUBE_KIND_POD, KUBE_DECODE_WATCH, NULL, NULL, 0);
    cr_assert_eq(kube_decoder_finish(d), 0);
    cr_expect_eq(kube_decoder_feed(d, "{}", 2), -1);
    cr_expect_str_eq(kube_decoder_error(d), "data fed after the end of the body");
    kube_decoder_free(d);
}

/* --- caps ----------------------------------------------------------------------- */

/* n levels of {"a": ... } inside the metadata of a watched Pod. */
static char *deep_event(int n)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"deep\"},\"x\":");
    for (int i = 0; i < n; i++)
        buf_puts(&b, "{\"a\":");
    buf_puts(&b, "1");
    for (int i = 0; i < n; i++)
        buf_puts(&b, "}");
    buf_puts(&b, "}}\n{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"next\"}}}\n");
    return buf_steal(&b);
}

Test(decode, deep_nesting_inside_an_object_skips_it)
{
    char *body = deep_event(200);
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, 0,
                "SKIP watch ADDED Pod deep: JSON nested deeper than 64 levels\n"
                "EVENT ADDED Pod next uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={} | node= phase=\n"
                "END feed=0 finish=0 skipped=1 error=\n");
    free(body);
    body = deep_event(63); /* event and object are 2 levels: 2 + 63 > 64 */
    char *got =
        run(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, strlen(body), (struct cut){strlen(body), 0}, 0);
    cr_expect(strstr(got, "SKIP watch ADDED Pod deep") != NULL, "%s", got);
    free(got);
    free(body);
    body = deep_event(62);
    got =
        run(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, strlen(body), (struct cut){strlen(body), 0}, 0);
    cr_expect(strstr(got, "EVENT ADDED Pod deep") != NULL, "%s", got);
    free(got);
    free(body);
}

Test(decode, deep_nesting_outside_objects_is_a_hard_error)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"x\":");
    for (int i = 0; i < 100; i++)
        buf_puts(&b, "[");
    char *body = buf_steal(&b);
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, body, "JSON nested deeper than 64 levels");
    free(body);
    /* far too deep inside an object: skipping it would cost unbounded state */
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"items\":[{\"x\":");
    for (int i = 0; i < 5000; i++)
        buf_puts(&b, "[");
    body = buf_steal(&b);
    expect_failure(KUBE_KIND_POD, KUBE_DECODE_LIST, body, "JSON nested deeper than 4160 levels");
    free(body);
}

Test(decode, a_token_longer_than_the_cap_is_a_hard_error)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"");
    for (int i = 0; i < 3000; i++)
        buf_puts(&b, "x");
    buf_puts(&b, "\"}}}\n");
    char *body = buf_steal(&b);
    size_t n = strlen(body);
    for (size_t step = 1; step <= 4096 * 64; step *= 64) {
        char *got = run(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, n, (struct cut){0, step}, 1024);
        cr_expect(strstr(got, "error=a JSON token longer than 1024 bytes") != NULL, "step %zu: %s",
                  step, got);
        free(got);
    }
    /* the same event under the default cap is fine */
    char *got = run(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, n, (struct cut){0, 7}, 0);
    cr_expect(strstr(got, "EVENT ADDED Pod xxx") != NULL, "%s", got);
    free(got);
    free(body);
}

Test(decode, object_cap_counts_only_object_bytes)
{
    /* an object of exactly 64 bytes passes a 64-byte cap, 65 do not */
    const char *obj64 =
        "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"x\":\"01234567890123456789012\"}}";
    const char *obj65 =
        "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"x\":\"012345678901234567890123\"}}";
    cr_assert_eq(strlen(obj64), 64);
    char body[512];
    snprintf(body, sizeof(body), "{\"type\":\"ADDED\",           \"object\":%s}", obj64);
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, 64,
                "EVENT ADDED Pod p uid= rv= gen=0 created=- deleted=- labels={} annotations={} | "
                "node= phase=\nEND feed=0 finish=0 skipped=0 error=\n");
    snprintf(body, sizeof(body), "{\"type\":\"ADDED\",\"object\":%s}", obj65);
    expect_text(KUBE_KIND_POD, KUBE_DECODE_WATCH, body, 64,
                "SKIP watch ADDED Pod p: object larger than 64 bytes\n"
                "END feed=0 finish=0 skipped=1 error=\n");
}

Test(decode, configmap_data_cap)
{
    buf_t b;
    buf_init(&b, 4 << 20);
    buf_puts(&b, "{\"items\":[{\"metadata\":{\"name\":\"big\"},\"data\":{");
    for (int i = 0; i < 5; i++) {
        buf_printf(&b, "%s\"k%d\":\"", i ? "," : "", i);
        for (int j = 0; j < 256 * 1024; j++)
            buf_puts(&b, "v");
        buf_puts(&b, "\"");
    }
    buf_puts(&b, "}},{\"metadata\":{\"name\":\"small\"},\"data\":{\"a\":\"b\"}}]}");
    size_t n = b.len;
    char *body = buf_steal(&b);
    char *got = run(KUBE_KIND_CONFIGMAP, KUBE_DECODE_LIST, body, n, (struct cut){0, 65536}, 0);
    cr_expect_str_eq(got, "SKIP ConfigMap big (items[0]): data larger than 1048576 bytes\n"
                          "ITEM ConfigMap small uid= rv= gen=0 created=- deleted=- labels={} "
                          "annotations={} | data={a=b}\n"
                          "META rv= continue=\n"
                          "END feed=0 finish=0 skipped=1 error=\n");
    free(got);
    free(body);
}

/* --- field rules ----------------------------------------------------------------- */

Test(decode, only_kept_labels_and_annotations)
{
    expect_text(
        KUBE_KIND_POD, KUBE_DECODE_LIST,
        "{\"items\":[{\"metadata\":{\"name\":\"p\",\"labels\":{\"kubevirt.io\":\"x\","
        "\"kubevirt.iox\":\"no\",\"vm.kubevirt.io/name\":\"no\",\"vmdrain.io/a\":\"1\","
        "\"sim.vmdrain.io/b\":\"2\",\"app\":\"no\",\"kubevirt.io/c\":\"3\"},"
        "\"annotations\":{\"other\":\"no\",\"kubevirt.io/d\":\"4\"}}},"
        /* a map that is not a string map is wrong even where nothing is kept */
        "{\"metadata\":{\"name\":\"q\",\"annotations\":{\"other\":{\"n\":1}}}}]}",
        0,
        "ITEM Pod p uid= rv= gen=0 created=- deleted=- labels={kubevirt.io=x,"
        "vmdrain.io/a=1,sim.vmdrain.io/b=2,kubevirt.io/c=3} annotations={kubevirt.io/d=4} | "
        "node= phase=\n"
        "SKIP Pod q (items[1]): metadata.annotations.other: expected a string, got an "
        "object\n"
        "META rv= continue=\n"
        "END feed=0 finish=0 skipped=1 error=\n");
}

Test(decode, wrong_types_name_the_field)
{
    expect_text(KUBE_KIND_VMI, KUBE_DECODE_LIST,
                "{\"items\":[{\"metadata\":{\"name\":\"a\"},\"spec\":{\"domain\":{\"resources\":"
                "{\"requests\":{\"memory\":true}}}}},"
                "{\"metadata\":{\"name\":\"b\",\"generation\":1.5}},"
                "{\"metadata\":{\"name\":\"c\"},\"status\":{\"conditions\":{}}},"
                "{\"metadata\":{\"name\":\"d\"},\"status\":{\"conditions\":[\"x\"]}},"
                "{\"metadata\":{\"name\":\"e\",\"namespace\":\"n\"},\"spec\":{\"domain\":{"
                "\"memory\":{\"guest\":\"-1Gi\"}}}},"
                "{\"metadata\":{\"name\":\"f\",\"labels\":{\"kubevirt.io/x\":\"a\\u0000b\"}}}]}",
                0,
                "SKIP VirtualMachineInstance a (items[0]): spec.domain.resources.requests.memory: "
                "expected a quantity, got a boolean\n"
                "SKIP VirtualMachineInstance b (items[1]): metadata.generation: expected an "
                "integer, got 1.5\n"
                "SKIP VirtualMachineInstance c (items[2]): status.conditions: expected an array, "
                "got an object\n"
                "SKIP VirtualMachineInstance d (items[3]): status.conditions[]: expected an "
                "object, got a string\n"
                "SKIP VirtualMachineInstance n/e (items[4]): spec.domain.memory.guest: invalid "
                "quantity \"-1Gi\": must not be negative\n"
                "SKIP VirtualMachineInstance f (items[5]): metadata.labels.kubevirt.io/x: "
                "contains a NUL character\n"
                "META rv= continue=\n"
                "END feed=0 finish=0 skipped=6 error=\n");
}

Test(decode, quantities_as_numbers_and_policy_defaults)
{
    expect_text(KUBE_KIND_MIGRATION_POLICY, KUBE_DECODE_LIST,
                "{\"items\":[{\"metadata\":{\"name\":\"p1\"},\"spec\":{\"bandwidthPerMigration\":"
                "1e3}},{\"metadata\":{\"name\":\"p2\"},\"spec\":{}}]}",
                0,
                "ITEM MigrationPolicy p1 uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={} | bandwidth=1000 timeout=-1 selector={}\n"
                "ITEM MigrationPolicy p2 uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={} | bandwidth=-1 timeout=-1 selector={}\n"
                "META rv= continue=\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, kubevirt_cr_and_evacuation_mark)
{
    expect_every_split(
        KUBE_KIND_KUBEVIRT, KUBE_DECODE_LIST, "kubevirtlist.json", 0,
        "ITEM KubeVirt kubevirt/kubevirt uid= rv= gen=0 created=- deleted=- labels={} "
        "annotations={} | parallel=7 outbound=3 bandwidth=67108864 timeout=150 progress=90 "
        "taint=kubevirt.io/drain eviction=LiveMigrate phase=Deployed\n"
        "ITEM KubeVirt kv/bare uid= rv= gen=0 created=- deleted=- labels={} annotations={} | "
        "parallel=-1 outbound=-1 bandwidth=-1 timeout=-1 progress=-1 taint= eviction= phase=\n"
        "SKIP KubeVirt kv/bad (items[2]): spec.configuration.migrations."
        "parallelMigrationsPerCluster: expected an integer, got a string\n"
        "META rv=7 continue=\n"
        "END feed=0 finish=0 skipped=1 error=\n");
    expect_text(KUBE_KIND_VMI, KUBE_DECODE_LIST,
                "{\"items\":[{\"metadata\":{\"name\":\"v\"},\"status\":{"
                "\"evacuationNodeName\":\"worker-1\",\"nodeName\":\"worker-1\"}}]}",
                0,
                "ITEM VirtualMachineInstance v uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={} | eviction= guest=0 request=0 node=worker-1 phase= "
                "migratable=Unknown(: ) method= evacuation=worker-1 mstate=-\n"
                "META rv= continue=\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, last_condition_of_a_type_wins_and_others_leave_nothing)
{
    const char *body =
        "{\"items\":[{\"metadata\":{\"name\":\"v\"},\"status\":{\"conditions\":["
        "{\"type\":\"LiveMigratable\",\"status\":\"True\",\"reason\":\"r1\",\"message\":\"m1\"},"
        "{\"message\":\"unrelated long message\",\"reason\":\"Other\",\"type\":\"Paused\"},"
        "{\"status\":\"False\",\"message\":\"m2\",\"type\":\"LiveMigratable\"}]}}]}";
    expect_text(KUBE_KIND_VMI, KUBE_DECODE_LIST, body, 0,
                "ITEM VirtualMachineInstance v uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={} | eviction= guest=0 request=0 node= phase= "
                "migratable=False(: m2) method= mstate=-\n"
                "META rv= continue=\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}

Test(decode, unknown_enum_values_are_other)
{
    expect_text(KUBE_KIND_VMI, KUBE_DECODE_LIST,
                "{\"items\":[{\"metadata\":{\"name\":\"v\"},\"spec\":{\"evictionStrategy\":"
                "\"Teleport\"},\"status\":{\"phase\":\"Hibernating\",\"migrationState\":{"
                "\"abortStatus\":\"Maybe\"}}}]}",
                0,
                "ITEM VirtualMachineInstance v uid= rv= gen=0 created=- deleted=- labels={} "
                "annotations={} | eviction=Other guest=0 request=0 node= phase=Other "
                "migratable=Unknown(: ) method= mstate={uid= src= dst= pod= start=- end=- "
                "completed=0 failed=0 abortRequested=0 abort=Other}\n"
                "META rv= continue=\n"
                "END feed=0 finish=0 skipped=0 error=\n");
}
