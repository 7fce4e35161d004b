/*
 * decode_bench — how fast the streaming decoder runs and how little the
 * projections it makes hold.
 *
 * Builds a PodList of 100,000 realistic Pods (about 3.8 KB of JSON each, with
 * managedFields, owner references, container specs and statuses; a third
 * of them virt-launcher pods) and a VirtualMachineInstanceList of 20,000
 * VMIs in memory, decodes each in 64 KiB chunks keeping every object, and
 * prints figures only: throughput (best of 3 runs), bytes held per cached
 * object (the sum of kube_obj_size() and the growth of the resident set,
 * each divided by the count) and JSON bytes per object for comparison.
 *
 *   decode_bench [PODS [VMIS [DIR]]]
 *
 * With DIR, the two lists are also written there (pods.json, vmis.json)
 * for a peer to decode the same bytes (e2e/cmd/decodepeer, make bench).
 */
#include "kube/decode.h"
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define RUNS  3

/* --- synthetic bodies -------------------------------------------------------- */

/* Appends one Pod; i varies names, namespaces, nodes and kinds of pod. */
static void put_pod(buf_t *b, unsigned i)
{
    bool launcher = i % 3 == 0;
    unsigned node = i % 97, ns = i % 13;
    buf_printf(b,
               "{\"metadata\":{\"name\":\"%s-%06u-x%04x\",\"generateName\":\"%s-%06u-\","
               "\"namespace\":\"team-%02u\",\"uid\":\"%08x-1a7e-4b0f-9a55-%012x\","
               "\"resourceVersion\":\"%u\",\"creationTimestamp\":\"2024-05-13T09:12:44Z\",",
               launcher ? "virt-launcher-vm" : "web", i, i * 2654435761u & 0xffff,
               launcher ? "virt-launcher-vm" : "web", i, ns, i * 2654435761u, i, 100000 + i);
    if (launcher)
        buf_printf(b,
                   "\"labels\":{\"kubevirt.io\":\"virt-launcher\",\"kubevirt.io/created-by\":"
                   "\"%08x-5a7b-4c3d-8e9f-112233445566\",\"vm.kubevirt.io/name\":\"vm-%06u\"},"
                   "\"annotations\":{\"kubevirt.io/domain\":\"vm-%06u\",\"kubectl.kubernetes.io/"
                   "default-container\":\"compute\",\"kubevirt.io/migrationTransportUnix\":"
                   "\"true\"},",
                   i, i, i);
    else
        buf_printf(b,
                   "\"labels\":{\"app\":\"web\",\"pod-template-hash\":\"5d78c9869d\","
                   "\"app.kubernetes.io/part-of\":\"shop-%02u\"},\"annotations\":{"
                   "\"prometheus.io/scrape\":\"true\",\"prometheus.io/port\":\"9090\"},",
                   ns);
    buf_printf(
        b,
        "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":"
        "\"web-5d78c9869d\",\"uid\":\"1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d\",\"controller\":"
        "true,\"blockOwnerDeletion\":true}],\"managedFields\":[{\"manager\":"
        "\"kube-controller-manager\",\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":"
        "\"2024-05-13T09:12:44Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{"
        "\"f:generateName\":{},\"f:labels\":{\".\":{},\"f:app\":{},\"f:pod-template-hash\":{}},"
        "\"f:ownerReferences\":{\".\":{},\"k:{\\\"uid\\\":\\\"1a2b3c4d-5e6f-4a8b-9c0d-"
        "1e2f3a4b5c6d\\\"}\":{}}},\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"main\\\"}"
        "\":{\".\":{},\"f:image\":{},\"f:imagePullPolicy\":{},\"f:name\":{},\"f:ports\":{\".\":{}"
        ",\"k:{\\\"containerPort\\\":8080,\\\"protocol\\\":\\\"TCP\\\"}\":{\".\":{},"
        "\"f:containerPort\":{},\"f:protocol\":{}}},\"f:resources\":{\".\":{},\"f:limits\":{"
        "\".\":{},\"f:memory\":{}},\"f:requests\":{\".\":{},\"f:cpu\":{},\"f:memory\":{}}}}},"
        "\"f:dnsPolicy\":{},\"f:enableServiceLinks\":{},\"f:restartPolicy\":{},"
        "\"f:schedulerName\":{},\"f:securityContext\":{},\"f:terminationGracePeriodSeconds\":{}"
        "}}},{\"manager\":\"kubelet\",\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":"
        "\"2024-05-13T09:13:02Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:status\":{"
        "\"f:conditions\":{\"k:{\\\"type\\\":\\\"ContainersReady\\\"}\":{\".\":{},"
        "\"f:lastProbeTime\":{},\"f:lastTransitionTime\":{},\"f:status\":{},\"f:type\":{}},"
        "\"k:{\\\"type\\\":\\\"Ready\\\"}\":{\".\":{},\"f:lastProbeTime\":{},"
        "\"f:lastTransitionTime\":{},\"f:status\":{},\"f:type\":{}}},\"f:containerStatuses\":{}"
        ",\"f:hostIP\":{},\"f:phase\":{},\"f:podIP\":{},\"f:podIPs\":{},\"f:startTime\":{}}},"
        "\"subresource\":\"status\"}]},");
    buf_printf(
        b,
        "\"spec\":{\"volumes\":[{\"name\":\"kube-api-access-%05u\",\"projected\":{\"sources\":["
        "{\"serviceAccountToken\":{\"expirationSeconds\":3607,\"path\":\"token\"}},"
        "{\"configMap\":{\"name\":\"kube-root-ca.crt\"}}],\"defaultMode\":420}}],\"containers\":[{"
        "\"name\":\"main\",\"image\":"
        "\"registry.example.com/shop/web:1.%u.0\",\"ports\":[{\"containerPort\":8080,"
        "\"protocol\":\"TCP\"}],\"resources\":{\"limits\":{\"memory\":\"512Mi\"},\"requests\":"
        "{\"cpu\":\"250m\",\"memory\":\"256Mi\"}},\"volumeMounts\":[{\"name\":"
        "\"kube-api-access-%05u\",\"readOnly\":true,\"mountPath\":"
        "\"/var/run/secrets/kubernetes.io/serviceaccount\"}],\"terminationMessagePath\":"
        "\"/dev/termination-log\",\"terminationMessagePolicy\":\"File\",\"imagePullPolicy\":"
        "\"IfNotPresent\"}],\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,"
        "\"dnsPolicy\":\"ClusterFirst\",\"serviceAccountName\":\"default\",\"nodeName\":"
        "\"worker-%02u\",\"securityContext\":{},\"schedulerName\":\"default-scheduler\","
        "\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\","
        "\"effect\":\"NoExecute\",\"tolerationSeconds\":300}],\"priority\":0,"
        "\"enableServiceLinks\":true,"
        "\"preemptionPolicy\":\"PreemptLowerPriority\"},",
        i % 100000, i % 7, i % 100000, node);
    buf_printf(
        b,
        "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Initialized\",\"status\":"
        "\"True\",\"lastProbeTime\":null,\"lastTransitionTime\":\"2024-05-13T09:12:44Z\"},"
        "{\"type\":\"Ready\",\"status\":\"True\",\"lastProbeTime\":null,\"lastTransitionTime\":"
        "\"2024-05-13T09:13:02Z\"},{\"type\":\"ContainersReady\",\"status\":\"True\","
        "\"lastProbeTime\":null,\"lastTransitionTime\":\"2024-05-13T09:13:02Z\"}],\"hostIP\":\"192."
        "168.10.%u\",\"podIP\":\"10.244.%u.%u\","
        "\"podIPs\":[{\"ip\":\"10.244.%u.%u\"}],\"startTime\":\"2024-05-13T09:12:44Z\","
        "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"running\":{\"startedAt\":"
        "\"2024-05-13T09:13:01Z\"}},\"lastState\":{},\"ready\":true,\"restartCount\":0,"
        "\"image\":\"registry.example.com/shop/web:1.%u.0\",\"imageID\":\"registry.example.com/"
        "shop/web@sha256:4f5e1c0a3b2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f\","
        "\"containerID\":\"containerd://%08x9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b"
        "\",\"started\":true}],\"qosClass\":\"Burstable\"}}",
        node + 10, node, i % 250, node, i % 250, i % 7, i);
}

/* Appends one VMI with a full KubeVirt status. */
static void put_vmi(buf_t *b, unsigned i)
{
    buf_printf(
        b,
        "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\",\"metadata\":{"
        "\"name\":\"vm-%06u\",\"namespace\":\"team-%02u\",\"uid\":\"%08x-5a7b-4c3d-8e9f-"
        "112233445566\",\"resourceVersion\":\"%u\",\"generation\":14,\"creationTimestamp\":"
        "\"2024-05-13T09:12:44Z\",\"labels\":{\"kubevirt.io/nodeName\":\"worker-%02u\","
        "\"kubevirt.io/vm\":\"vm-%06u\",\"app\":\"db\"},\"annotations\":{\"kubevirt.io/"
        "latest-observed-api-version\":\"v1\",\"kubevirt.io/storage-observed-api-version\":"
        "\"v1\",\"kubevirt.io/vm-generation\":\"1\"},\"finalizers\":[\"kubevirt.io/"
        "virtualMachineControllerFinalize\",\"foregroundDeleteVirtualMachine\"],"
        "\"ownerReferences\":[{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\","
        "\"name\":\"vm-%06u\",\"uid\":\"9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a\",\"controller\":"
        "true,\"blockOwnerDeletion\":true}],\"managedFields\":[{\"apiVersion\":\"kubevirt.io/v1\""
        ",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:status\":{\"f:activePods\":{},"
        "\"f:conditions\":{},\"f:guestOSInfo\":{},\"f:interfaces\":{},\"f:migrationState\":{"
        "\"f:completed\":{},\"f:endTimestamp\":{}},\"f:nodeName\":{},\"f:phase\":{}}},"
        "\"manager\":\"virt-handler\",\"operation\":\"Update\",\"time\":"
        "\"2024-05-13T09:44:10Z\"}]},",
        i, i % 13, i * 2654435761u, 200000 + i, i % 97, i, i);
    buf_printf(
        b,
        "\"spec\":{\"architecture\":\"amd64\",\"domain\":{\"cpu\":{\"cores\":2,\"model\":"
        "\"host-model\",\"sockets\":1,\"threads\":1},\"devices\":{\"disks\":[{\"disk\":{\"bus\":"
        "\"virtio\"},\"name\":\"rootdisk\"},{\"disk\":{\"bus\":\"virtio\"},\"name\":"
        "\"cloudinitdisk\"}],\"interfaces\":[{\"masquerade\":{},\"name\":\"default\"}],\"rng\":{}}"
        ",\"features\":{\"acpi\":{\"enabled\":true}},\"firmware\":{\"uuid\":"
        "\"5a1c0e39-0c6b-5d2e-9f43-%012x\"},\"machine\":{\"type\":\"q35\"},\"memory\":{\"guest\":"
        "\"%uGi\"},\"resources\":{\"requests\":{\"memory\":\"%uGi\",\"cpu\":\"100m\"}}},"
        "\"evictionStrategy\":\"LiveMigrate\",\"networks\":[{\"name\":\"default\",\"pod\":{}}],"
        "\"terminationGracePeriodSeconds\":180,\"volumes\":[{\"name\":\"rootdisk\","
        "\"persistentVolumeClaim\":{\"claimName\":\"vm-%06u-root\"}},{\"cloudInitNoCloud\":{"
        "\"userData\":\"#cloud-config\\nuser: cloud-user\\n\"},\"name\":\"cloudinitdisk\"}]},",
        i, 1 + i % 8, 1 + i % 8, i);
    buf_printf(
        b,
        "\"status\":{\"activePods\":{\"%08x-1a7e-4b0f-9a55-7d1c2f8e9a01\":\"worker-%02u\"},"
        "\"conditions\":[{\"lastProbeTime\":null,\"lastTransitionTime\":"
        "\"2024-05-13T09:13:05Z\",\"status\":\"True\",\"type\":\"Ready\"},{\"lastProbeTime\":null,"
        "\"lastTransitionTime\":null,\"status\":\"True\",\"type\":\"LiveMigratable\"},"
        "{\"lastProbeTime\":\"2024-05-13T09:13:20Z\",\"lastTransitionTime\":null,\"status\":"
        "\"True\",\"type\":\"AgentConnected\"}],\"guestOSInfo\":{\"id\":\"rhel\",\"name\":"
        "\"Red Hat Enterprise Linux\",\"version\":\"9.3\"},\"interfaces\":[{\"infoSource\":"
        "\"domain, guest-agent\",\"interfaceName\":\"enp1s0\",\"ipAddress\":\"10.244.2.9\","
        "\"ipAddresses\":[\"10.244.2.9\"],\"mac\":\"52:54:00:8a:1b:2c\",\"name\":\"default\","
        "\"queueCount\":1}],\"launcherContainerImageVersion\":"
        "\"quay.io/kubevirt/virt-launcher:v1.2.0\",\"migrationMethod\":\"LiveMigration\","
        "\"migrationState\":{\"completed\":true,\"endTimestamp\":\"2024-05-13T09:44:10Z\","
        "\"migrationUid\":\"%08x-7c8d-4e9f-a0b1-c2d3e4f5a6b7\",\"mode\":\"PreCopy\","
        "\"sourceNode\":\"worker-%02u\",\"sourcePod\":\"virt-launcher-vm-%06u-abcde\","
        "\"startTimestamp\":\"2024-05-13T09:43:31Z\",\"targetNode\":\"worker-%02u\","
        "\"targetNodeAddress\":\"10.244.2.1\",\"targetNodeDomainDetected\":true,"
        "\"targetPod\":\"virt-launcher-vm-%06u-zr4mk\"},\"migrationTransport\":\"Unix\","
        "\"nodeName\":\"worker-%02u\",\"phase\":\"Running\",\"phaseTransitionTimestamps\":["
        "{\"phase\":\"Pending\",\"phaseTransitionTimestamp\":\"2024-05-13T09:12:44Z\"},"
        "{\"phase\":\"Scheduling\",\"phaseTransitionTimestamp\":\"2024-05-13T09:12:44Z\"},"
        "{\"phase\":\"Scheduled\",\"phaseTransitionTimestamp\":\"2024-05-13T09:13:01Z\"},"
        "{\"phase\":\"Running\",\"phaseTransitionTimestamp\":\"2024-05-13T09:13:05Z\"}],"
        "\"qosClass\":\"Burstable\",\"volumeStatus\":[{\"name\":\"cloudinitdisk\",\"size\":"
        "1048576,\"target\":\"vdb\"},{\"name\":\"rootdisk\",\"persistentVolumeClaimInfo\":{"
        "\"accessModes\":[\"ReadWriteMany\"],\"capacity\":{\"storage\":\"30Gi\"},"
        "\"filesystemOverhead\":\"0.055\",\"requests\":{\"storage\":\"30Gi\"},\"volumeMode\":"
        "\"Block\"},\"target\":\"vda\"}]}}",
        i, (i + 1) % 97, i, (i + 1) % 97, i, i % 97, i, i % 97);
}

/* A whole list body of n items; the caller frees it. */
static char *make_list(const char *kind, void (*put)(buf_t *, unsigned), unsigned n, size_t *len)
{
    buf_t b;
    buf_init(&b, (size_t)1 << 34);
    buf_printf(&b,
               "{\"kind\":\"%s\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
               "\"987654\"},\"items\":[",
               kind);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            buf_puts(&b, ",");
        put(&b, i);
    }
    if (buf_puts(&b, "]}\n") < 0) {
        fprintf(stderr, "decode_bench: out of memory building the %s\n", kind);
        exit(1);
    }
    *len = b.len;
    return buf_steal(&b);
}

/* --- decoding and measuring ------------------------------------------------------ */

struct cache {
    kube_obj_t **objs;
    size_t n, cap;
    size_t bytes; /* sum of kube_obj_size() */
};

static void keep(void *ud, kube_obj_t *obj)
{
    struct cache *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->objs = realloc(c->objs, c->cap * sizeof(*c->objs));
        if (!c->objs) {
            fprintf(stderr, "decode_bench: out of memory\n");
            exit(1);
        }
    }
    c->objs[c->n++] = obj;
    c->bytes += kube_obj_size(obj);
}

static void drop(struct cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        kube_obj_free(c->objs[i]);
    free(c->objs);
    memset(c, 0, sizeof(*c));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Decodes body in CHUNK pieces into c; returns the seconds taken. */
static double decode(kube_kind_t kind, const char *body, size_t len, struct cache *c)
{
    kube_decoder_cb_t cb = {.on_item = keep};
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, c, 0);
    double t0 = now();
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0; at += CHUNK)
        rc = kube_decoder_feed(d, body + at, len - at < CHUNK ? len - at : CHUNK);
    if (rc == 0)
        rc = kube_decoder_finish(d);
    double t = now() - t0;
    if (rc < 0 || kube_decoder_skipped(d)) {
        fprintf(stderr, "decode_bench: %s (%zu skipped)\n", kube_decoder_error(d),
                kube_decoder_skipped(d));
        exit(1);
    }
    kube_decoder_free(d);
    return t;
}

/* Runs the measurements for one kind and prints them. The first run keeps
 * its objects while the resident set is measured. */
/* Writes body to DIR/name; exits on an error. */
static void write_body(const char *dir, const char *name, const char *body, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(body, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "decode_bench: cannot write %s\n", path);
        exit(1);
    }
}

static void bench(const char *what, kube_kind_t kind, const char *list_kind,
                  void (*put)(buf_t *, unsigned), unsigned count, const char *dir, const char *file)
{
    size_t len;
    char *body = make_list(list_kind, put, count, &len);
    if (dir)
        write_body(dir, file, body, len);
    double best = 0;
    size_t held = 0, rss_growth = 0, n = 0;

    for (int run = 0; run < RUNS; run++) {
        struct cache c = {0};
        size_t before = rss();
        double t = decode(kind, body, len, &c);
        if (run == 0) {
            size_t after = rss();
            rss_growth = after > before ? after - before : 0;
            held = c.bytes;
            n = c.n;
        }
        if (best == 0 || t < best)
            best = t;
        drop(&c);
    }
    printf("%s: %u objects, %.1f MB of JSON\n", what, count, (double)len / 1e6);
    printf("  decode throughput (best of %d, %d KiB chunks): %.1f MB/s, %.0f objects/s\n", RUNS,
           CHUNK / 1024, (double)len / 1e6 / best, (double)count / best);
    printf("  JSON bytes per object:            %.0f\n", (double)len / (double)count);
    printf("  bytes held per cached object:     %.0f (sum of kube_obj_size)\n",
           (double)held / (double)n);
    printf("  RSS growth per cached object:     %.0f (from /proc/self/statm, incl. the cache's "
           "pointer array)\n",
           (double)rss_growth / (double)n);
    free(body);
}

int main(int argc, char **argv)
{
    unsigned pods = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
    unsigned vmis = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 20000;
    const char *dir = argc > 3 ? argv[3] : NULL;
    if (!pods || !vmis) {
        fprintf(stderr, "usage: decode_bench [PODS [VMIS [DIR]]]\n");
        return 2;
    }
    bench("Pods", KUBE_KIND_POD, "PodList", put_pod, pods, dir, "pods.json");
    bench("VMIs", KUBE_KIND_VMI, "VirtualMachineInstanceList", put_vmi, vmis, dir, "vmis.json");
    return 0;
}
