#include <criterion/criterion.h>

#include "drain/controller.h"
#include "kube/http.h"
#include "../kube/testserver.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/metrics.h"

#include <ev.h>
#include <valgrind/valgrind.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole engine (informers, work queue, planner, writer) against the
 * scripted API server: lists and watches are scripted, every write is
 * recorded and counted. Times are wall-clock; the waits are generous. */

/* Under valgrind (whose job here is memory checking) everything runs some
 * ten times slower: the scripted delays and the waits stretch by this. */
#define SLOW (RUNNING_ON_VALGRIND ? 10 : 1)

static struct ev_loop *loop;
static testserver_t *srv;
static kube_config_t cfg;
static kube_http_t *http;
static drain_controller_t *ctl;
static FILE *logsink;
static char *logged;
static size_t logged_len;

#define NODES   "/api/v1/nodes"
#define VMIS    "/apis/kubevirt.io/v1/virtualmachineinstances"
#define MIGS    "/apis/kubevirt.io/v1/virtualmachineinstancemigrations"
#define PODS    "/api/v1/pods"
#define CMS     "/api/v1/namespaces/kubevirt/configmaps"
#define NS_MIGS "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations"
#define NS_VMIS "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/"
#define NDS     "/apis/vmdrain.io/v1alpha1/nodedrains"

static void setup(void)
{
    char err[256];
    logsink = open_memstream(&logged, &logged_len);
    log_setup(LOG_LEVEL_DEBUG, LOG_FORMAT_TEXT, logsink);
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = testserver_start();
    cr_assert_not_null(srv);
    memset(&cfg, 0, sizeof(cfg));
    cfg.source = strdup("test");
    cfg.server = strdup(testserver_url(srv));
    http = kube_http_new(loop, &cfg, err, sizeof(err));
    cr_assert_not_null(http, "%s", err);
    /* writes succeed unless a test says otherwise */
    testserver_json(testserver_route(srv, "POST", "/", 201), "{}");
    testserver_json(testserver_route(srv, "PATCH", "/", 200), "{}");
    testserver_json(testserver_route(srv, "DELETE", "/", 200), "{}");
    /* no NodeDrain unless a test scripts one, and a silent watch */
    testserver_json(testserver_route(srv, "GET", NDS "?limit", 200),
                    "{\"kind\":\"NodeDrainList\",\"apiVersion\":\"vmdrain.io/v1alpha1\","
                    "\"metadata\":{\"resourceVersion\":\"100\"},\"items\":[]}");
    testserver_route_t *nd_watch = testserver_route(srv, "GET", NDS "?watch=1", 200);
    testserver_chunk(nd_watch, "\n", 1, 0);
    testserver_hold(nd_watch);
    ctl = NULL;
}

static bool quiet(void);
static bool run_until(bool (*c)(void), double seconds);

static void teardown(void)
{
    hmap__fail_key = NULL;
    /* as `vmdrain run` stops: writes already sent may finish */
    if (ctl)
        drain_controller_stop(ctl);
    run_until(quiet, 2.0);
    kube_http_free(http); /* before the controller: it ends what is pending */
    drain_controller_free(ctl);
    ev_run(loop, EVRUN_NOWAIT);
    testserver_stop(srv);
    ev_loop_destroy(loop);
    kube_config_free(&cfg);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(logsink);
    free(logged);
    metrics_free_all();
}

TestSuite(controller, .init = setup, .fini = teardown, .timeout = 60);

/* --- objects ------------------------------------------------------------------------------ */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* A formatted string from a ring of buffers (the tests' JSON pieces). */
static char *fmt(const char *f, ...)
{
    static char ring[16][4096];
    static int i;
    char *b = ring[i++ % 16];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof(ring[0]), f, ap);
    va_end(ap);
    return b;
}

#define TAINT "{\"key\":\"kubevirt.io/drain\",\"value\":\"draining\",\"effect\":\"NoSchedule\"}"

static const char *node_json(const char *name, const char *rv, bool tainted)
{
    return fmt("{\"metadata\":{\"name\":\"%s\",\"uid\":\"u-%s\",\"resourceVersion\":\"%s\"},"
               "\"spec\":{\"taints\":[%s]}}",
               name, name, rv, tainted ? TAINT : "");
}

/* A running, migratable LiveMigrate VMI of 1Gi; uid starts with its name. */
static const char *vmi_json(const char *name, const char *node, const char *rv, const char *ann)
{
    return fmt("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"%s-0000-uid\","
               "\"resourceVersion\":\"%s\",\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
               "\"annotations\":{%s}},"
               "\"spec\":{\"evictionStrategy\":\"LiveMigrate\",\"domain\":{\"memory\":"
               "{\"guest\":\"1Gi\"}}},"
               "\"status\":{\"nodeName\":\"%s\",\"phase\":\"Running\",\"conditions\":"
               "[{\"type\":\"LiveMigratable\",\"status\":\"True\"}]}}",
               name, name, rv, ann, node);
}

/* A migration of vm's; ours (named as vmdrain names them, from node) when
 * ours, else KubeVirt's evacuation from node. */
static const char *mig_json(const char *vm, const char *name, const char *node, bool ours,
                            const char *phase, const char *rv, const char *extra_meta)
{
    return fmt("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"m-%s\","
               "\"resourceVersion\":\"%s\",\"creationTimestamp\":\"2026-01-01T00:00:00Z\",%s%s"
               "},\"spec\":{\"vmiName\":\"%s\"},\"status\":{\"phase\":\"%s\"}}",
               name, name, rv, extra_meta,
               ours ? fmt("\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\",\"vmdrain.io/node\":"
                          "\"%s\",\"vmdrain.io/vmi-uid\":\"%s-0000-uid\"}",
                          node, vm)
                    : fmt("\"annotations\":{\"kubevirt.io/evacuationMigration\":\"%s\"}", node),
               vm, phase);
}

static const char *pod_json(const char *name, const char *vm, const char *node)
{
    return fmt("{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"p-%s\","
               "\"resourceVersion\":\"3\",\"labels\":{\"kubevirt.io\":\"virt-launcher\"},"
               "\"annotations\":{\"kubevirt.io/domain\":\"%s\"}},"
               "\"spec\":{\"nodeName\":\"%s\"},\"status\":{\"phase\":\"Running\"}}",
               name, name, vm, node);
}

/* The configuration ConfigMap; migrations is YAML. */
static const char *config_json(const char *migrations)
{
    return fmt("{\"metadata\":{\"name\":\"kubevirt-config\",\"namespace\":\"kubevirt\","
               "\"uid\":\"cm-1\",\"resourceVersion\":\"2\"},"
               "\"data\":{\"feature-gates\":\"LiveMigration\",\"migrations\":\"%s\"}}",
               migrations);
}

/* A watch event; its own ring, so that scripting the routes (which
 * formats paths) never overwrites an event not yet handed over. */
static const char *event_json(const char *type, const char *obj)
{
    static char ring[8][4096];
    static int i;
    char *b = ring[i++ % 8];
    snprintf(b, sizeof(ring[0]), "{\"type\":\"%s\",\"object\":%s}\n", type, obj);
    return b;
}

/* --- scripting --------------------------------------------------------------------------- */

static void list(const char *path, const char *kind, const char *items)
{
    char body[16384];
    snprintf(body, sizeof(body),
             "{\"kind\":\"%s\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"100\"},"
             "\"items\":[%s]}",
             kind, items);
    testserver_json(testserver_route(srv, "GET", fmt("%s?limit", path), 200), body);
}

/* A watch on path: the events with their delays (ms after the previous
 * one), then held open. n == 0: a watch that stays silent. */
static void watch(const char *path, const char *const *events, const int *delays, int n)
{
    /* later watches (after a resume) stay silent; the newest route with
     * uses left wins, so this one serves only once the first is used */
    testserver_route_t *rest = testserver_route(srv, "GET", fmt("%s?watch=1", path), 200);
    testserver_chunk(rest, "\n", 1, 0);
    testserver_hold(rest);
    testserver_route_t *r = testserver_route(srv, "GET", fmt("%s?watch=1", path), 200);
    testserver_header(r, "Content-Type", "application/json");
    for (int i = 0; i < n; i++)
        testserver_chunk(r, events[i], strlen(events[i]), delays ? delays[i] : 0);
    if (n == 0)
        testserver_chunk(r, "\n", 1, 0);
    testserver_hold(r);
    testserver_limit(r, 1);
}

/* The events of one scripted watch and their delays; {0}: silent. */
typedef struct scripted {
    const char *const *evs;
    const int *delays;
    int n;
} scripted_t;

#define SCRIPTED(evs, delays) ((scripted_t){evs, delays, (int)(sizeof(evs) / sizeof(evs[0]))})
#define SILENT                ((scripted_t){NULL, NULL, 0})

/* The five lists (no pod), the node and migration watches as scripted,
 * the others silent. */
static void cluster_with(const char *nodes, const char *vmis, const char *migs, scripted_t node_w,
                         scripted_t mig_w)
{
    list(NODES, "NodeList", nodes);
    list(VMIS, "VirtualMachineInstanceList", vmis);
    list(MIGS, "VirtualMachineInstanceMigrationList", migs);
    list(PODS, "PodList", "");
    list(CMS, "ConfigMapList", config_json(""));
    watch(NODES, node_w.evs, node_w.delays, node_w.n);
    watch(VMIS, NULL, NULL, 0);
    watch(MIGS, mig_w.evs, mig_w.delays, mig_w.n);
    watch(PODS, NULL, NULL, 0);
    watch(CMS, NULL, NULL, 0);
}

/* The five lists; every watch silent unless the test scripts one after. */
static void cluster(const char *nodes, const char *vmis, const char *migs, const char *pods,
                    const char *migrations)
{
    list(NODES, "NodeList", nodes);
    list(VMIS, "VirtualMachineInstanceList", vmis);
    list(MIGS, "VirtualMachineInstanceMigrationList", migs);
    list(PODS, "PodList", pods);
    list(CMS, "ConfigMapList", config_json(migrations));
    watch(NODES, NULL, NULL, 0);
    watch(VMIS, NULL, NULL, 0);
    watch(MIGS, NULL, NULL, 0);
    watch(PODS, NULL, NULL, 0);
    watch(CMS, NULL, NULL, 0);
}

static void start_as(bool follower)
{
    drain_controller_opts_t o = {.config_ns = "kubevirt",
                                 .config_name = "kubevirt-config",
                                 .patch_interval = 0.05,
                                 .follower = follower,
                                 /* the scripted server answers LISTs; how the
                                  * whole state streams is test_informer's */
                                 .initial = INFORMER_INITIAL_PAGED};
    ctl = drain_controller_new(loop, http, &o);
    cr_assert_not_null(ctl);
    drain_controller_start(ctl);
}

static void start(void)
{
    start_as(false);
}

/* Requests recorded with this method whose target starts with prefix. */
static int count(const char *method, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < testserver_nrequests(srv); i++) {
        const testserver_request_t *q = testserver_request(srv, i);
        if (strcmp(q->method, method) == 0 && strncmp(q->target, prefix, strlen(prefix)) == 0)
            n++;
    }
    return n;
}

/* Requests with method and prefix whose body contains needle. */
static int count_body(const char *method, const char *prefix, const char *needle)
{
    int n = 0;
    for (int i = 0; i < testserver_nrequests(srv); i++) {
        const testserver_request_t *q = testserver_request(srv, i);
        if (strcmp(q->method, method) == 0 && strncmp(q->target, prefix, strlen(prefix)) == 0 &&
            q->body && strstr(q->body, needle))
            n++;
    }
    return n;
}

/* The index of the first request matching, or -1. */
static int first(const char *method, const char *prefix, const char *needle, int from)
{
    for (int i = from; i < testserver_nrequests(srv); i++) {
        const testserver_request_t *q = testserver_request(srv, i);
        if (strcmp(q->method, method) == 0 && strncmp(q->target, prefix, strlen(prefix)) == 0 &&
            (!needle || (q->body && strstr(q->body, needle))))
            return i;
    }
    return -1;
}

typedef bool (*cond_fn)(void);
static cond_fn cond;
static void (*each)(void);

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

static void on_check(struct ev_loop *l, ev_check *w, int revents)
{
    (void)w;
    (void)revents;
    if (each)
        each();
    if (cond && cond())
        ev_break(l, EVBREAK_ALL);
}

/* Runs the loop until c() holds (NULL: for the whole time), at most
 * seconds. Returns whether it held. */
static bool run_until(cond_fn c, double seconds)
{
    ev_timer deadline;
    ev_check check;
    cond = c;
    ev_timer_init(&deadline, on_deadline, seconds, 0);
    ev_check_init(&check, on_check);
    ev_timer_start(loop, &deadline);
    ev_check_start(loop, &check);
    ev_run(loop, 0);
    ev_check_stop(loop, &check);
    ev_timer_stop(loop, &deadline);
    return c ? c() : true;
}

static bool quiet(void)
{
    return kube_http_pending(http) == 0;
}

static bool is_ready(void)
{
    return drain_controller_ready(ctl);
}

static int creates(void)
{
    return count("POST", NS_MIGS);
}

static bool two_creates(void)
{
    return creates() >= 2;
}

static bool one_create(void)
{
    return creates() >= 1;
}

/* A sample of the registry, or -1 when it has none. */
/* A sample as a scrape sees it: rendering runs the collectors (the drain
 * gauges are counted then). */
static double metric(const char *name, const char *a, const char *b)
{
    double v = -1;
    buf_t out;
    buf_init(&out, 1 << 20);
    cr_assert_eq(metrics_render(&out), 0);
    buf_free(&out);
    return metrics_get(name, (const char *const[]){a, b}, &v) == 0 ? v : -1;
}

/* --- the drain ---------------------------------------------------------------------------- */

Test(controller, taint_cordons_and_creates_migrations_within_the_node_limit)
{
    cluster(node_json("n1", "10", true),
            fmt("%s,%s,%s", vmi_json("a", "n1", "20", ""), vmi_json("b", "n1", "21", ""),
                vmi_json("c", "n1", "22", "")),
            "", "", "parallelOutboundMigrationsPerNode: 2");
    start();
    cr_assert(run_until(two_creates, 5));
    run_until(NULL, 0.5);
    cr_expect_eq(creates(), 2, "per-node limit 2, got %d creates", creates());
    cr_expect_geq(count_body("PATCH", NODES "/n1", "\"unschedulable\":true"), 1);
    cr_expect_geq(count_body("PATCH", NS_VMIS, "\"vmdrain.io/evacuating\":\"true\""), 2);
    cr_expect_eq(metric("node_drain_state", "n1", "draining"), 1);
    cr_expect_eq(metric("node_migrations_queued", "n1", NULL), 3, "the cache shows none yet");
    cr_expect_eq(metric("node_migrations_in_flight", "n1", NULL), 0);
    cr_expect_eq(metric("migrations_limit", "node", NULL), 2);
    cr_expect_eq(metric("migrations_limit", "cluster", NULL), 5);
}

Test(controller, another_creators_migration_counts_against_the_limit_and_is_not_duplicated)
{
    cluster(node_json("n1", "10", true),
            fmt("%s,%s", vmi_json("a", "n1", "20", ""), vmi_json("b", "n1", "21", "")),
            mig_json("a", "kubevirt-evacuation-a", "n1", false, "Running", "30", ""), "",
            "parallelOutboundMigrationsPerNode: 2");
    start();
    cr_assert(run_until(one_create, 5));
    run_until(NULL, 0.5);
    cr_expect_eq(creates(), 1);
    cr_expect_eq(count_body("POST", NS_MIGS, "\"vmiName\":\"a\""), 0, "a is migrating already");
}

/* The planner's contract: a migration vmdrain started and the watch shows
 * is counted once (observed), not also as started. */
static double max_in_flight;
static void sample_in_flight(void)
{
    double v = 0;
    if (metrics_get("migrations_in_flight", NULL, &v) == 0 && v > max_in_flight)
        max_in_flight = v;
}

Test(controller, a_migration_seen_by_the_watch_before_the_reconcile_is_counted_once)
{
    const char *evs[] = {
        event_json("ADDED", mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Pending", "40", "")),
        event_json("ADDED", mig_json("b", "vmdrain-b-0000-u-1", "n1", true, "Pending", "41", "")),
    };
    const int delays[] = {600 * SLOW, 0};
    list(NODES, "NodeList", node_json("n1", "10", true));
    list(VMIS, "VirtualMachineInstanceList",
         fmt("%s,%s,%s", vmi_json("a", "n1", "20", "\"x\":\"1\""),
             vmi_json("b", "n1", "21", "\"x\":\"1\""), vmi_json("c", "n1", "22", "\"x\":\"1\"")));
    list(MIGS, "VirtualMachineInstanceMigrationList", "");
    list(PODS, "PodList", "");
    list(CMS, "ConfigMapList",
         config_json("parallelOutboundMigrationsPerNode: 2\\nparallelMigrationsPerCluster: 5"));
    watch(NODES, NULL, NULL, 0);
    watch(VMIS, NULL, NULL, 0);
    watch(MIGS, evs, delays, 2);
    watch(PODS, NULL, NULL, 0);
    watch(CMS, NULL, NULL, 0);
    max_in_flight = 0;
    each = sample_in_flight;
    start();
    cr_assert(run_until(two_creates, 0.5 * SLOW), "the creates did not come before the watch");
    run_until(NULL, 0.8 * SLOW);
    each = NULL;
    cr_expect_eq(creates(), 2);
    cr_expect_leq(max_in_flight, 2, "in flight counted as %g with 2 migrations", max_in_flight);
}

static bool create_for_a_from_n2(void)
{
    return count_body("POST", NS_MIGS, "\"vmdrain.io/node\":\"n2\"") >= 1;
}

/* vmi_json's VMI with strategy None (not vmdrain's to move), into dst. */
static void none_strategy(char *dst, size_t n, const char *vmi)
{
    const char *at = strstr(vmi, "\"LiveMigrate\"");
    cr_assert_not_null(at);
    snprintf(dst, n, "%.*s\"None\"%s", (int)(at - vmi), vmi, at + strlen("\"LiveMigrate\""));
}

Test(controller, a_vmi_that_moves_between_nodes_keeps_its_candidate)
{
    /* n1 and n2 drain; the one slot is taken by b's migration from n3.
     * VMI a moves from n1 to n2 while it waits, in the same watch read as
     * a change of VMI d on n2, so n2 is reconciled before n1. When b's
     * migration ends, a must start from n2. */
    char d_old[4096], d_new[4096], both[8192];
    none_strategy(d_old, sizeof(d_old), vmi_json("d", "n2", "23", ""));
    none_strategy(d_new, sizeof(d_new), vmi_json("d", "n2", "53", "\"touched\":\"1\""));
    snprintf(both, sizeof(both), "%s%s", event_json("MODIFIED", d_new),
             event_json("MODIFIED", vmi_json("a", "n2", "54", "")));
    const char *vmi_evs[] = {both};
    const int vmi_delays[] = {500 * SLOW};
    const char *mig_evs[] = {event_json(
        "MODIFIED", mig_json("b", "vmdrain-b-0000-u-1", "n3", true, "Succeeded", "60", ""))};
    const int mig_delays[] = {600 * SLOW};
    list(NODES, "NodeList",
         fmt("%s,%s,%s", node_json("n1", "10", true), node_json("n2", "11", true),
             node_json("n3", "12", false)));
    list(VMIS, "VirtualMachineInstanceList",
         fmt("%s,%s,%s", vmi_json("a", "n1", "20", ""), vmi_json("b", "n3", "21", ""), d_old));
    list(MIGS, "VirtualMachineInstanceMigrationList",
         mig_json("b", "vmdrain-b-0000-u-1", "n3", true, "Running", "30", ""));
    list(PODS, "PodList", "");
    list(CMS, "ConfigMapList", config_json("parallelMigrationsPerCluster: 1"));
    watch(NODES, NULL, NULL, 0);
    watch(VMIS, vmi_evs, vmi_delays, 1);
    watch(MIGS, mig_evs, mig_delays, 1);
    watch(PODS, NULL, NULL, 0);
    watch(CMS, NULL, NULL, 0);
    start();
    run_until(NULL, 0.45 * SLOW);
    cr_expect_eq(creates(), 0, "the slot is taken");
    /* the slot frees at 600 ms: a starts then, not at some later reconcile */
    cr_expect(run_until(create_for_a_from_n2, 0.45 * SLOW),
              "a was not started from n2 once the slot freed");
    cr_expect_eq(count_body("POST", NS_MIGS, "\"vmiName\":\"d\""), 0);
}

static bool one_delete(void)
{
    return count("DELETE", NS_MIGS) >= 1;
}

Test(controller, a_failed_insert_never_loses_an_expectation)
{
    /* a's migration made no progress for longer than progressTimeout: it
     * is aborted. While the delete cannot be recorded, nothing is sent;
     * afterwards exactly one abort is. */
    cluster(node_json("n1", "10", true), vmi_json("a", "n1", "20", ""),
            mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Scheduling", "30", ""), "",
            "progressTimeout: 1");
    hmap__fail_key = "m-vmdrain-a-0000-u-1";
    start();
    cr_assert(run_until(is_ready, 5));
    run_until(NULL, 1.2);
    cr_expect_eq(count("DELETE", NS_MIGS), 0, "a delete went out without its record");
    cr_expect_eq(count_body("PATCH", NS_VMIS, "vmdrain.io/aborted"), 0);
    hmap__fail_key = NULL;
    cr_expect(run_until(one_delete, 5));
    run_until(NULL, 1.0);
    cr_expect_eq(count("DELETE", NS_MIGS), 1);
    cr_expect_eq(count_body("PATCH", NS_VMIS, "vmdrain.io/aborted"), 1);
}

/* Sustained watch traffic: a pod watch that streams without a pause must
 * not keep the node's reconcile (its cordon) waiting until it ends. */
static bool second_pod_watch(void)
{
    return count("GET", PODS "?watch=1") >= 2;
}

Test(controller, sustained_watch_traffic_does_not_starve_reconciles)
{
    /* the taint arrives 200 ms into a flood of pod watch events */
    const char *node_evs[] = {event_json("MODIFIED", node_json("n1", "50", true))};
    const int node_delays[] = {500};
    list(NODES, "NodeList", node_json("n1", "10", false));
    list(VMIS, "VirtualMachineInstanceList", "");
    list(MIGS, "VirtualMachineInstanceMigrationList", "");
    list(PODS, "PodList", "");
    list(CMS, "ConfigMapList", config_json(""));
    watch(NODES, node_evs, node_delays, 1);
    watch(VMIS, NULL, NULL, 0);
    watch(MIGS, NULL, NULL, 0);
    watch(CMS, NULL, NULL, 0);
    /* the pod watch: 300 ms of silence (every list is in), then the flood */
    testserver_route_t *rest = testserver_route(srv, "GET", PODS "?watch=1", 200);
    testserver_chunk(rest, "\n", 1, 0);
    testserver_hold(rest);
    testserver_route_t *r = testserver_route(srv, "GET", PODS "?watch=1", 200);
    testserver_header(r, "Content-Type", "application/json");
    static char block[64 * 1024];
    size_t len = 0;
    for (int i = 0; len + 200 < sizeof(block); i++)
        len += (size_t)snprintf(block + len, sizeof(block) - len,
                                "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
                                "{\"resourceVersion\":\"%d\"}}}\n",
                                1000 + i);
    testserver_chunk(r, "\n", 1, 300);
    for (int i = 0; i < 1500 / SLOW; i++)
        testserver_chunk(r, block, len, 0);
    testserver_limit(r, 1);
    start();
    cr_assert(run_until(second_pod_watch, 25), "the pod stream did not end");
    int patch = first("PATCH", NODES "/n1", "\"unschedulable\":true", 0);
    int resumed = first("GET", PODS "?watch=1", NULL, first("GET", PODS "?watch=1", NULL, 0) + 1);
    cr_assert_geq(patch, 0, "the node was never cordoned");
    cr_expect_lt(patch, resumed, "the cordon waited for the end of the stream");
}

static bool reported(void)
{
    return count_body("POST", "/api/v1/namespaces/default/events", "MigrationSucceeded") >= 2;
}

Test(controller, the_end_of_a_migration_is_reported_once)
{
    const char *evs[] = {
        event_json("MODIFIED",
                   mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Succeeded", "60", "")),
        event_json("MODIFIED", mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Succeeded", "61",
                                        "\"finalizers\":[\"x\"],")),
    };
    const int delays[] = {300, 300};
    cluster_with(node_json("n1", "10", true), vmi_json("a", "n1", "20", ""),
                 mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Running", "30", ""), SILENT,
                 SCRIPTED(evs, delays));
    start();
    cr_assert(run_until(reported, 5));
    run_until(NULL, 1.0);
    /* once on the node, once on the VMI */
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events", "MigrationSucceeded"), 2);
    double v = 0;
    cr_expect_eq(metrics_get("migrations_total", (const char *const[]){"succeeded"}, &v), 0);
    cr_expect_eq(v, 1);
}

/* A migration of ours that ended while vmdrain was down: at the start the
 * list shows it Succeeded, with no record of a report. */
static const char *ended_mig(const char *extra_meta)
{
    char *m =
        (char *)mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Succeeded", "30", extra_meta);
    char *st = strstr(m, "\"status\":");
    snprintf(st, 4096 - (size_t)(st - m), "%s",
             "\"status\":{\"phase\":\"Succeeded\",\"phaseTransitionTimestamps\":[{\"phase\":"
             "\"Succeeded\",\"phaseTransitionTimestamp\":\"2026-01-01T00:05:00Z\"}]}}");
    return m;
}

static bool end_recorded(void)
{
    return count_body("PATCH", NS_MIGS "/vmdrain-a-0000-u-1",
                      "\"vmdrain.io/reported\":\"Succeeded\"") >= 1;
}

Test(controller, an_end_vmdrain_did_not_see_is_reported_at_the_start_and_recorded)
{
    cluster(node_json("n1", "10", false), vmi_json("a", "n2", "20", ""), ended_mig(""), "", "");
    start();
    cr_assert(run_until(end_recorded, 5), "the report was never recorded on the migration");
    run_until(NULL, 0.3);
    /* once on the node, once on the VMI, each named after the migration */
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events", "MigrationSucceeded"), 2);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events",
                            "\"message\":\"Migration vmdrain-a-0000-u-1 of VMI default/a from node "
                            "n1 succeeded at 2026-01-01T00:05:00Z\""),
                 2);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events", "\"name\":\"n1.r"), 1);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events", "\"name\":\"a.r"), 1);
    cr_expect_not_null(strstr(logged, "reporting the end of a migration vmdrain did not see"));
    double v = 0;
    cr_expect_eq(metrics_get("migrations_total", (const char *const[]){"succeeded"}, &v), 0);
    cr_expect_eq(v, 1);
}

Test(controller, an_end_reported_before_is_not_reported_again)
{
    cluster(node_json("n1", "10", false), vmi_json("a", "n2", "20", ""),
            ended_mig("\"annotations\":{\"vmdrain.io/reported\":\"Succeeded\"},"), "", "");
    start();
    cr_assert(run_until(is_ready, 5));
    run_until(NULL, 0.5);
    cr_expect_eq(count("POST", "/api/v1/namespaces/default/events"), 0);
    cr_expect_eq(count("PATCH", NS_MIGS), 0);
}

Test(controller, an_event_the_apiserver_has_already_counts_as_sent)
{
    testserver_json(testserver_route(srv, "POST", "/api/v1/namespaces/default/events", 409),
                    "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409}");
    cluster(node_json("n1", "10", false), vmi_json("a", "n2", "20", ""), ended_mig(""), "", "");
    start();
    cr_assert(run_until(end_recorded, 5), "a 409 kept the report from being recorded");
    cr_expect_null(strstr(logged, "write failed"), "%s", logged);
}

Test(controller, a_failed_event_leaves_the_end_unrecorded)
{
    testserver_json(testserver_route(srv, "POST", "/api/v1/namespaces/default/events", 403),
                    "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"code\":403}");
    cluster(node_json("n1", "10", false), vmi_json("a", "n2", "20", ""), ended_mig(""), "", "");
    start();
    cr_assert(run_until(is_ready, 5));
    run_until(NULL, 0.5);
    cr_expect_geq(count("POST", "/api/v1/namespaces/default/events"), 1);
    cr_expect_eq(count("PATCH", NS_MIGS), 0, "an end whose Event failed was recorded as reported");
}

Test(controller, a_replica_that_takes_the_lead_reports_the_ends_it_kept)
{
    const char *evs[] = {event_json(
        "MODIFIED", mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Succeeded", "60", ""))};
    const int delays[] = {100};
    cluster_with(node_json("n1", "10", false), vmi_json("a", "n2", "20", ""),
                 mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Running", "30", ""), SILENT,
                 SCRIPTED(evs, delays));
    start_as(true);
    cr_assert(run_until(is_ready, 5));
    run_until(NULL, 0.6);
    cr_expect_eq(count("POST", "/api/v1/namespaces/default/events"), 0,
                 "a replica that does not lead sent an Event");
    drain_controller_set_leading(ctl, true);
    cr_expect(run_until(end_recorded, 5), "the new leader did not report the end");
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events", "MigrationSucceeded"), 2);
}

/* --- a node deleted -------------------------------------------------------------------------- */

static bool vmi_unmarked(void)
{
    return count_body("PATCH", NS_VMIS "a", "\"vmdrain.io/evacuate-from\":null") >= 1;
}

static int node_deleted_events(void)
{
    return count_body("POST", "/api/v1/namespaces/default/events", "\"reason\":\"NodeDeleted\"");
}

Test(controller, a_vmi_marked_for_a_node_that_is_gone_is_reported_and_unmarked)
{
    /* the node was deleted while vmdrain was down: only the VMI names it */
    cluster("", vmi_json("a", "n1", "20", "\"vmdrain.io/evacuate-from\":\"n1\""), "", "", "");
    start();
    cr_assert(run_until(vmi_unmarked, 5), "the mark was not cleared");
    run_until(NULL, 0.5);
    cr_expect_eq(node_deleted_events(), 1);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events",
                            "Node n1 was deleted during its drain: VMI default/a was not migrated"),
                 1);
    cr_expect_not_null(strstr(logged, "the node was deleted during its drain"));
    double v = 0;
    cr_expect_eq(metrics_get("node_deleted_vmis_total", NULL, &v), 0);
    cr_expect_eq(v, 1);
}

static bool a_node_deleted_event(void)
{
    return node_deleted_events() >= 1;
}

Test(controller, a_node_deleted_while_its_drain_is_blocked_reports_each_vmi_once)
{
    /* a VMI that cannot migrate keeps the drain Blocked until the node goes */
    const char *stuck =
        "{\"metadata\":{\"name\":\"a\",\"namespace\":\"default\",\"uid\":\"a-0000-uid\","
        "\"resourceVersion\":\"20\"},\"spec\":{\"evictionStrategy\":\"LiveMigrate\"},"
        "\"status\":{\"nodeName\":\"n1\",\"phase\":\"Running\",\"conditions\":[{\"type\":"
        "\"LiveMigratable\",\"status\":\"False\",\"reason\":\"DisksNotLiveMigratable\"}]}}";
    const char *evs[] = {event_json("DELETED", node_json("n1", "11", true)),
                         event_json("MODIFIED", node_json("n2", "12", false))};
    const int delays[] = {600, 300};
    cluster_with(fmt("%s,%s", node_json("n1", "10", true), node_json("n2", "10", false)), stuck, "",
                 SCRIPTED(evs, delays), SILENT);
    start();
    cr_assert(run_until(a_node_deleted_event, 5), "no NodeDeleted Event");
    run_until(NULL, 0.6);
    cr_expect_eq(node_deleted_events(), 1);
    cr_expect_eq(count("PATCH", NS_VMIS), 0, "a VMI without vmdrain's marks was patched");
}

Test(controller, numbers_vmdrain_did_not_write_are_ignored_with_a_log_line)
{
    cluster(node_json("n1", "10", true), vmi_json("a", "n1", "20", ""),
            mig_json("a", "vmdrain-a-0000-u-2147483647", "n1", true, "Failed", "30", ""), "", "");
    start();
    cr_assert(run_until(one_create, 5));
    fflush(logsink);
    cr_expect(strstr(logged, "numbers that vmdrain did not write were ignored") != NULL);
    /* the bogus attempt is not continued from: the next is attempt 1 */
    cr_expect_eq(count_body("POST", NS_MIGS, "\"name\":\"vmdrain-a-0000-u-1\""), 1);
}

Test(controller, an_invalid_configuration_keeps_the_last_good_one_and_says_why)
{
    cluster(node_json("n1", "10", false), "", "", "", "parallelMigrationsPerCluster: lots");
    start();
    cr_assert(run_until(is_ready, 5));
    run_until(NULL, 0.3);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/kubevirt/events", "InvalidConfiguration"),
                 1);
    fflush(logsink);
    cr_expect(strstr(logged, "parallelMigrationsPerCluster") != NULL);
}

Test(controller, taking_the_lead_sends_the_warning_a_replica_that_did_not_lead_kept_back)
{
    cluster(node_json("n1", "10", false), "", "", "", "parallelMigrationsPerCluster: lots");
    start_as(true);
    cr_assert(run_until(is_ready, 5));
    run_until(NULL, 0.3);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/kubevirt/events", "InvalidConfiguration"),
                 0, "a replica that does not lead sends no Event");
    drain_controller_set_leading(ctl, true);
    run_until(NULL, 0.3);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/kubevirt/events", "InvalidConfiguration"),
                 1, "the new leader reports the invalid ConfigMap it holds");
}

Test(controller, the_taint_removed_cancels_queued_migrations_and_uncordons)
{
    const char *ann = "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/cordoned-by\":\"vmdrain\","
                      "\"vmdrain.io/started-at\":\"2026-01-01T00:00:00Z\"";
    cluster(fmt("{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-n1\",\"resourceVersion\":\"10\","
                "\"annotations\":{%s}},\"spec\":{\"unschedulable\":true}}",
                ann),
            vmi_json("a", "n1", "20", ""),
            mig_json("a", "vmdrain-a-0000-u-1", "n1", true, "Scheduling", "30", ""), "", "");
    start();
    cr_assert(run_until(one_delete, 5));
    run_until(NULL, 0.5);
    cr_expect_eq(count("DELETE", NS_MIGS), 1);
    cr_expect_geq(count_body("PATCH", NODES "/n1", "\"unschedulable\":null"), 1);
    cr_expect_eq(creates(), 0);
    cr_expect_eq(metric("migration_aborts_total", "drain_cancelled", NULL), 1);
    cr_expect_eq(metric("migration_aborts_total", "progress_timeout", NULL), 0);
    cr_expect_eq(metric("node_drain_state", "n1", "draining"), -1, "the drain ended");
    cr_expect_eq(metric("node_drain_state", "n1", "cancelled"), -1, "the drain ended");
    cr_expect_eq(metric("node_migrations_queued", "n1", NULL), -1);
}

/* --- evictions ----------------------------------------------------------------------- */

static int answers;
static drain_evict_result_t answer;

static void on_answer(void *ud, const drain_evict_result_t *res)
{
    (void)ud;
    answers++;
    answer = *res;
}

static bool marked(void)
{
    return count_body("PATCH", NS_VMIS "a", "\"vmdrain.io/evacuate-from\":\"n1\"") >= 1;
}

Test(controller, an_eviction_is_answered_then_its_mark_and_migration_are_written)
{
    cluster(fmt("{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-n1\",\"resourceVersion\":\"10\"},"
                "\"spec\":{\"unschedulable\":true}}"),
            vmi_json("a", "n1", "20", ""), "", pod_json("virt-launcher-a-x1", "a", "n1"), "");
    start();
    cr_assert(run_until(is_ready, 5));
    answers = 0;
    drain_evict_req_t rq = {.ns = "default", .name = "virt-launcher-a-x1"};
    drain_controller_evict(ctl, &rq, "kubernetes-admin", on_answer, NULL);
    cr_assert_eq(answers, 1, "a cached pod is answered at once");
    cr_expect_eq(answer.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect_eq(answer.code, 429);
    cr_expect_eq(count("PATCH", NS_VMIS), 0, "the webhook itself writes nothing");
    cr_expect(run_until(marked, 3));
    cr_expect(run_until(one_create, 3), "the VMI was not queued");
    run_until(NULL, 0.3);
    cr_expect_eq(count_body("POST", "/api/v1/namespaces/default/events", "EvictionIntercepted"), 2);
}

Test(controller, a_dry_run_eviction_writes_nothing)
{
    cluster(fmt("{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-n1\",\"resourceVersion\":\"10\"},"
                "\"spec\":{\"unschedulable\":true}}"),
            vmi_json("a", "n1", "20", ""), "", pod_json("virt-launcher-a-x1", "a", "n1"), "");
    start();
    cr_assert(run_until(is_ready, 5));
    answers = 0;
    drain_evict_req_t rq = {.ns = "default", .name = "virt-launcher-a-x1", .dry_run = true};
    drain_controller_evict(ctl, &rq, "u", on_answer, NULL);
    cr_assert_eq(answers, 1);
    cr_expect_eq(answer.decision, DRAIN_EVICT_DENY_MIGRATE);
    run_until(NULL, 0.8);
    cr_expect_eq(count("PATCH", NS_VMIS), 0);
    cr_expect_eq(creates(), 0);
}

Test(controller, an_eviction_before_the_caches_synced_is_denied_for_a_retry)
{
    cluster("", "", "", "", "");
    start();
    answers = 0;
    drain_evict_req_t rq = {.ns = "default", .name = "virt-launcher-a-x1"};
    drain_controller_evict(ctl, &rq, "u", on_answer, NULL);
    cr_assert_eq(answers, 1);
    cr_expect_eq(answer.decision, DRAIN_EVICT_DENY_NOT_READY);
    cr_expect_not(answer.allowed);
    cr_expect_eq(answer.code, 429);
}

/* An eviction whose pod is not cached waits for a GET; the controller
 * stops while it is pending: it is answered once, and nothing leaks (the
 * suite runs under LeakSanitizer and valgrind). */
Test(controller, shutdown_with_a_pending_eviction_lookup_answers_it_and_leaks_nothing)
{
    cluster(node_json("n1", "10", false), "", "", "", "");
    testserver_delay(testserver_route(srv, "GET", "/api/v1/namespaces/default/pods/", 200), -1);
    start();
    cr_assert(run_until(is_ready, 5));
    answers = 0;
    drain_evict_req_t rq = {.ns = "default", .name = "virt-launcher-b-y2"};
    drain_controller_evict(ctl, &rq, "u", on_answer, NULL);
    run_until(NULL, 0.2);
    cr_assert_eq(answers, 0, "the lookup is pending");
    drain_controller_stop(ctl);
    cr_expect_eq(answers, 1);
    cr_expect_eq(answer.decision, DRAIN_EVICT_DENY_NOT_READY);
}

/* --- leader election: a replica that does not lead ------------------------------------------ */

/* Writes the server received (anything but GET). */
static int writes(void)
{
    int n = 0;
    for (int i = 0; i < testserver_nrequests(srv); i++)
        if (strcmp(testserver_request(srv, i)->method, "GET") != 0)
            n++;
    return n;
}

Test(controller, a_replica_that_does_not_lead_writes_nothing_until_it_leads)
{
    cluster(node_json("n1", "10", true),
            fmt("%s,%s", vmi_json("a", "n1", "20", ""), vmi_json("b", "n1", "21", "")), "", "",
            "parallelOutboundMigrationsPerNode: 2");
    start_as(true);
    cr_assert(run_until(is_ready, 5), "its caches sync as a leader's do");
    run_until(NULL, 1.0);
    cr_expect_eq(writes(), 0, "%d writes from a replica that does not lead", writes());
    cr_expect_not(drain_controller_leading(ctl));
    drain_controller_set_leading(ctl, true);
    cr_expect(run_until(two_creates, 5), "taking the lead reconciles every node");
    cr_expect_geq(count_body("PATCH", NODES "/n1", "\"unschedulable\":true"), 1);
    /* the lead lost: nothing more is written, not even what was due (the
     * writes on the wire are let arrive first: a loaded machine may hold a
     * sent request back past the fence) */
    run_until(quiet, 2.0);
    cr_expect_eq(metric("node_drain_state", "n1", "draining"), 1);
    drain_controller_set_leading(ctl, false);
    cr_expect_eq(metric("node_drain_state", "n1", "draining"), -1, "a series of the leader's");
    int before = writes();
    run_until(NULL, 1.0);
    cr_expect_eq(writes(), before, "writes after the lead was lost");
}

Test(controller, a_replica_that_does_not_lead_answers_an_eviction_and_writes_only_the_mark)
{
    cluster(fmt("{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-n1\",\"resourceVersion\":\"10\"},"
                "\"spec\":{\"unschedulable\":true}}"),
            vmi_json("a", "n1", "20", ""), "", pod_json("virt-launcher-a-x1", "a", "n1"), "");
    start_as(true);
    cr_assert(run_until(is_ready, 5));
    answers = 0;
    drain_evict_req_t rq = {.ns = "default", .name = "virt-launcher-a-x1"};
    drain_controller_evict(ctl, &rq, "kubernetes-admin", on_answer, NULL);
    cr_assert_eq(answers, 1);
    cr_expect_eq(answer.decision, DRAIN_EVICT_DENY_MIGRATE);
    cr_expect(run_until(marked, 3), "the mark is written through the fence");
    run_until(NULL, 0.8);
    cr_expect_eq(writes(), 1, "the mark only: %d writes", writes());
    cr_expect_eq(creates(), 0);
}

/* --- NodeDrains ------------------------------------------------------------------------ */

static bool recorded(void)
{
    return count_body("POST", NDS, "recorded by vmdrain: a drain by the taint") >= 1;
}

Test(controller, a_taint_drain_is_recorded_once_as_a_nodedrain)
{
    cluster(node_json("n1", "10", true), vmi_json("a", "n1", "20", ""), "", "", "");
    start();
    cr_assert(run_until(recorded, 5), "no NodeDrain record was created");
    run_until(NULL, 1.5);
    /* the cache never shows it here: each later reconcile may try again,
     * but one write at a time, and AlreadyExists is success */
    cr_expect_eq(count_body("POST", NDS, "\"name\":\"n1\""), count("POST", NDS));
    cr_expect_eq(count("PATCH", NDS), 0, "no status before the record is cached");
    cr_expect(one_create(), "the drain itself goes on");
}

Test(controller, a_nodedrain_of_the_users_drains_its_node)
{
    const char *nd = "{\"metadata\":{\"name\":\"n1\",\"uid\":\"u-nd\",\"resourceVersion\":\"40\","
                     "\"generation\":1,\"creationTimestamp\":\"2026-01-01T00:00:00Z\","
                     "\"finalizers\":[\"vmdrain.io/drain\"]},"
                     "\"spec\":{\"nodeName\":\"n1\",\"reason\":\"disk\"}}";
    cluster(node_json("n1", "10", false), vmi_json("a", "n1", "20", ""), "", "", "");
    list(NDS, "NodeDrainList", nd);
    start();
    cr_assert(run_until(one_create, 5), "the NodeDrain did not start the drain");
    run_until(NULL, 1.5);
    cr_expect_geq(count_body("PATCH", NODES "/n1", "\"vmdrain.io/trigger\":\"nodedrain\""), 1);
    cr_expect_geq(count_body("PATCH", NODES "/n1", "\"unschedulable\":true"), 1);
    cr_expect_eq(count_body("PATCH", NDS "/n1", "/metadata/finalizers"), 0,
                 "the finalizer is there already");
    cr_expect_geq(count_body("PATCH", NDS "/n1/status", "\"phase\":\"Draining\""), 1);
    cr_expect_eq(count("POST", NDS), 0, "a user's NodeDrain gets no record beside it");
}
