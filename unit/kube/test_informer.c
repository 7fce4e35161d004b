#include <criterion/criterion.h>

#include "kube/informer.h"
#include "testserver.h"
#include "util/log.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The informer against the scripted server: the exact sequence of handler
 * calls is recorded as text and compared. */

static struct ev_loop *loop;
static testserver_t *srv;
static kube_config_t cfg;
static kube_http_t *http;
static informer_t *inf;
static char trace[8192];
static FILE *logsink;
static char *logged;
static size_t logged_len;
static long last_error_status;

static void note(const char *what, const kube_obj_t *obj)
{
    char key[256], line[320];
    snprintf(line, sizeof(line), "%s %s@%s;", what, kube_obj_key(obj, key, sizeof(key)),
             obj->resource_version);
    strncat(trace, line, sizeof(trace) - strlen(trace) - 1);
}

static void on_add(void *ud, const kube_obj_t *obj)
{
    (void)ud;
    note("add", obj);
}

static void on_update(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)ud;
    (void)old;
    note("update", obj);
}

static void on_delete(void *ud, const kube_obj_t *obj)
{
    (void)ud;
    note("delete", obj);
}

static void on_synced(void *ud)
{
    (void)ud;
    strncat(trace, "synced;", sizeof(trace) - strlen(trace) - 1);
}

static void on_error(void *ud, const char *msg, long status)
{
    (void)ud;
    (void)msg;
    last_error_status = status;
    strncat(trace, "error;", sizeof(trace) - strlen(trace) - 1);
}

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
    trace[0] = '\0';
    last_error_status = 0;
}

static void teardown(void)
{
    informer_free(inf);
    inf = NULL;
    kube_http_free(http);
    ev_run(loop, EVRUN_NOWAIT);
    testserver_stop(srv);
    ev_loop_destroy(loop);
    kube_config_free(&cfg);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(logsink);
    free(logged);
}

TestSuite(informer, .init = setup, .fini = teardown);

static const char *pod(const char *name, const char *rv)
{
    static char buf[4][512];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 512,
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\",\"uid\":\"u-%s\","
             "\"resourceVersion\":\"%s\",\"labels\":{\"kubevirt.io\":\"virt-launcher\"}},"
             "\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"}}",
             name, name, rv);
    return b;
}

static char *event(const char *type, const char *obj)
{
    static char buf[8][640];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 640, "{\"type\":\"%s\",\"object\":%s}\n", type, obj);
    return b;
}

static const char *node_index(const kube_obj_t *o)
{
    const kube_pod_t *p = kube_obj_as_pod(o);
    return p && p->node_name[0] ? p->node_name : NULL;
}

static void make_informer_by(int page_size, informer_initial_t initial)
{
    informer_opts_t o = {.resource = kube_resource_find("pods"),
                         .page_size = page_size,
                         .initial = initial,
                         .label_selector = "kubevirt.io=virt-launcher",
                         .backoff_base = 0.01,
                         .backoff_max = 0.05,
                         .watch_timeout = 30};
    informer_handlers_t h = {on_add, on_update, on_delete, on_synced, on_error};
    inf = informer_new(http, loop, &o, &h, NULL);
    cr_assert_not_null(inf);
    cr_assert_eq(informer_add_index(inf, "node", node_index), 0);
}

/* The paged LISTs of etcd: the tests of paging, resuming and 410. */
static void make_informer(int page_size)
{
    make_informer_by(page_size, INFORMER_INITIAL_PAGED);
}

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

static const char *until;

static void on_check(struct ev_loop *l, ev_check *w, int revents)
{
    (void)w;
    (void)revents;
    if (until && strstr(trace, until))
        ev_break(l, EVBREAK_ALL);
}

/* Runs the loop until trace contains want, or 5 s. */
static void run_until(const char *want)
{
    ev_timer deadline;
    ev_check check;
    until = want;
    ev_timer_init(&deadline, on_deadline, 5.0, 0);
    ev_check_init(&check, on_check);
    ev_timer_start(loop, &deadline);
    ev_check_start(loop, &check);
    ev_run(loop, 0);
    ev_check_stop(loop, &check);
    ev_timer_stop(loop, &deadline);
    fflush(logsink);
    cr_assert_not_null(strstr(trace, want), "waited for \"%s\", trace: %s\nlog:\n%s", want, trace,
                       logged ? logged : "");
}

static void list_page(const char *prefix, const char *items, const char *rv, const char *cont)
{
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":"
             "\"%s\",\"continue\":\"%s\"},\"items\":[%s]}",
             rv, cont, items);
    testserver_route_t *r = testserver_route(srv, "GET", prefix, 200);
    testserver_json(r, body);
    testserver_limit(r, 1);
}

Test(informer, paginated_list_then_watch_delivers_exact_sequence)
{
    char items1[1200], items2[600];
    snprintf(items1, sizeof(items1), "%s,%s", pod("a", "10"), pod("b", "11"));
    snprintf(items2, sizeof(items2), "%s", pod("c", "12"));
    list_page("/api/v1/pods?limit=2", items1, "20", "tok");
    list_page("/api/v1/pods?limit=2&continue=tok", items2, "20", "");
    testserver_route_t *w = testserver_route(srv, "GET", "/api/v1/pods?watch=1", 200);
    const char *evs[] = {
        event("MODIFIED", pod("a", "21")),
        event("ADDED", pod("d", "22")),
        "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":"
        "\"25\"}}}\n",
        event("DELETED", pod("b", "26")),
    };
    /* the stream split inside events, too */
    for (size_t i = 0; i < 4; i++) {
        size_t n = strlen(evs[i]);
        testserver_chunk(w, evs[i], n / 2, 10);
        testserver_chunk(w, evs[i] + n / 2, n - n / 2, 0);
    }
    testserver_hold(w);
    make_informer(2);
    informer_start(inf);
    run_until("delete ns/b@26;");
    cr_expect_str_eq(trace, "add ns/a@10;add ns/b@11;add ns/c@12;synced;update ns/a@21;"
                            "add ns/d@22;delete ns/b@26;");
    cr_expect(informer_synced(inf));
    cr_expect_eq(informer_len(inf), 3);
    cr_expect_str_eq(informer_resource_version(inf), "26");
    cr_expect_eq(informer_index_count(inf, "node", "n1"), 3);
    cr_expect_null(informer_get(inf, "ns/b"));
    cr_assert_not_null(informer_get(inf, "ns/a"));
    cr_expect_str_eq(informer_get(inf, "ns/a")->resource_version, "21");

    /* what the server was asked */
    const testserver_request_t *q0 = testserver_request(srv, 0);
    const testserver_request_t *q1 = testserver_request(srv, 1);
    const testserver_request_t *q2 = testserver_request(srv, 2);
    cr_assert(q0 && q1 && q2);
    cr_expect_str_eq(q0->target, "/api/v1/pods?limit=2&labelSelector=kubevirt.io%3Dvirt-launcher");
    cr_expect_str_eq(q1->target, "/api/v1/pods?limit=2&continue=tok&labelSelector=kubevirt.io%3D"
                                 "virt-launcher");
    cr_expect_not_null(strstr(q2->target, "allowWatchBookmarks=true"), "%s", q2->target);
    cr_expect_not_null(strstr(q2->target, "resourceVersion=20"), "%s", q2->target);
    informer_stats_t st;
    informer_get_stats(inf, &st);
    cr_expect_eq(st.lists, 2);
    cr_expect_eq(st.bookmarks, 1);
    cr_expect_eq(st.events, 3);
}

Test(informer, disconnect_resumes_from_the_last_resource_version)
{
    /* routes: the newest match with uses left wins, so the later ones are
     * registered first */
    testserver_route_t *w2 =
        testserver_route(srv, "GET", "/api/v1/pods?watch=1&allowWatchBookmarks=true", 200);
    char *e3 = event("MODIFIED", pod("b", "12"));
    testserver_chunk(w2, e3, strlen(e3), 0);
    testserver_hold(w2);
    testserver_route_t *w1 = testserver_route(srv, "GET", "/api/v1/pods?watch=1", 200);
    char *e1 = event("ADDED", pod("b", "11"));
    char *e2 = event("MODIFIED", pod("b", "12"));
    char both[1400];
    snprintf(both, sizeof(both), "%s%s", e1, e2);
    testserver_chunk(w1, both, strlen(both), 0);
    testserver_close_after(w1, strlen(e1) + 10); /* drops mid-way through the 2nd event */
    testserver_limit(w1, 1);
    list_page("/api/v1/pods?limit=500", pod("a", "10"), "10", "");
    make_informer(0);
    informer_start(inf);
    run_until("update ns/b@12;");
    cr_expect_str_eq(trace, "add ns/a@10;synced;add ns/b@11;error;update ns/b@12;",
                     "no event missed or duplicated");
    const testserver_request_t *q = testserver_request(srv, 2);
    cr_assert_not_null(q);
    cr_expect_not_null(strstr(q->target, "resourceVersion=11"), "resumed at %s", q->target);
}

Test(informer, expired_watch_relists_and_replaces_the_cache)
{
    /* served last: the watch after the relist */
    testserver_route_t *w2 = testserver_route(srv, "GET", "/api/v1/pods?watch=1", 200);
    testserver_hold(w2);
    /* the relist: a unchanged, b gone, c new */
    char items2[1200];
    snprintf(items2, sizeof(items2), "%s,%s", pod("a", "10"), pod("c", "30"));
    list_page("/api/v1/pods?limit=500", items2, "31", "");
    /* the first watch says the version expired */
    testserver_route_t *w = testserver_route(srv, "GET", "/api/v1/pods?watch=1", 200);
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
                       "\"v1\",\"status\":\"Failure\",\"message\":\"too old resource version\","
                       "\"reason\":\"Expired\",\"code\":410}}\n";
    testserver_chunk(w, gone, strlen(gone), 0);
    testserver_limit(w, 1);
    /* served first */
    char items[1200];
    snprintf(items, sizeof(items), "%s,%s", pod("a", "10"), pod("b", "11"));
    list_page("/api/v1/pods?limit=500", items, "11", "");
    make_informer(0);
    informer_start(inf);
    run_until("delete ns/b@11;");
    cr_expect_str_eq(trace, "add ns/a@10;add ns/b@11;synced;add ns/c@30;delete ns/b@11;",
                     "a relist fires only the differences");
    informer_stats_t st;
    informer_get_stats(inf, &st);
    cr_expect_eq(st.relists, 1);
    cr_expect_eq(informer_len(inf), 2);
}

Test(informer, forbidden_list_is_reported_and_retried)
{
    testserver_route_t *w = testserver_route(srv, "GET", "/api/v1/pods?watch=1", 200);
    testserver_hold(w);
    list_page("/api/v1/pods?limit=500", pod("a", "10"), "10", "");
    testserver_route_t *r = testserver_route(srv, "GET", "/api/v1/pods?limit=500", 403);
    testserver_json(r, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                       "\"message\":\"pods is forbidden: User \\\"x\\\" cannot list resource "
                       "\\\"pods\\\"\",\"reason\":\"Forbidden\",\"code\":403}");
    testserver_limit(r, 1);
    make_informer(0);
    informer_start(inf);
    run_until("synced;");
    cr_expect_str_eq(trace, "error;add ns/a@10;synced;");
    cr_expect_eq(last_error_status, 403);
    fflush(logsink);
    cr_expect_not_null(strstr(logged, "pods is forbidden"), "log: %s", logged);
}

Test(informer, garbage_in_the_watch_restarts_it)
{
    testserver_route_t *w2 =
        testserver_route(srv, "GET", "/api/v1/pods?watch=1&allowWatchBookmarks=true", 200);
    char *e2 = event("ADDED", pod("z", "12"));
    testserver_chunk(w2, e2, strlen(e2), 0);
    testserver_hold(w2);
    testserver_route_t *w = testserver_route(srv, "GET", "/api/v1/pods?watch=1", 200);
    char *e1 = event("MODIFIED", pod("a", "11"));
    testserver_chunk(w, e1, strlen(e1), 0);
    testserver_chunk(w, "{\"type\":\"ADDED\",\"object\":[}}\n", 29, 0);
    testserver_limit(w, 1);
    list_page("/api/v1/pods?limit=500", pod("a", "10"), "10", "");
    make_informer(0);
    informer_start(inf);
    run_until("add ns/z@12;");
    cr_expect_str_eq(trace, "add ns/a@10;synced;update ns/a@11;error;add ns/z@12;");
}

Test(informer, a_transport_freed_under_it_is_an_end_not_an_error)
{
    testserver_delay(testserver_route(srv, "GET", "/api/v1/pods", 200), -1);
    make_informer(0);
    informer_start(inf);
    for (int i = 0; i < 500 && testserver_nrequests(srv) < 1; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(10000);
    }
    cr_assert_eq(testserver_nrequests(srv), 1);
    kube_http_free(http); /* the LIST is pending: its on_done says cancelled */
    http = NULL;
    ev_run(loop, EVRUN_NOWAIT);
    informer_stats_t st;
    informer_get_stats(inf, &st);
    cr_expect_eq(st.errors, 0);
    cr_expect_null(strstr(trace, "error;"), "%s", trace);
    fflush(logsink);
    cr_expect_null(strstr(logged ? logged : "", "retrying"), "%s", logged);
}

/* --- the whole state streamed, or listed from the watch cache ------------ */

static const char *const initial_end =
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
    "{\"resourceVersion\":\"%s\",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}}}}\n";

static const char *const expired =
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
    "\"Failure\",\"message\":\"too old resource version\",\"reason\":\"Expired\",\"code\":410}}\n";

/* A route streaming the events given (NULL-terminated), then held open or
 * used once and ended. */
static testserver_route_t *stream_route(const char *prefix, bool hold, const char *const *evs)
{
    testserver_route_t *r = testserver_route(srv, "GET", prefix, 200);
    for (size_t i = 0; evs[i]; i++)
        testserver_chunk(r, evs[i], strlen(evs[i]), 0);
    if (hold)
        testserver_hold(r);
    else
        testserver_limit(r, 1);
    return r;
}

Test(informer, the_whole_state_is_streamed_then_watched)
{
    char end[256];
    snprintf(end, sizeof(end), initial_end, "20");
    const char *evs[] = {event("ADDED", pod("a", "10")), event("ADDED", pod("b", "11")), end,
                         event("MODIFIED", pod("a", "21")), NULL};
    stream_route("/api/v1/pods?watch=1&sendInitialEvents=true", true, evs);
    make_informer_by(0, INFORMER_INITIAL_AUTO);
    informer_start(inf);
    run_until("update ns/a@21;");
    cr_expect_str_eq(trace, "add ns/a@10;add ns/b@11;synced;update ns/a@21;");
    cr_expect_str_eq(informer_loaded_by(inf), "stream");
    cr_expect_str_eq(informer_resource_version(inf), "21");
    const testserver_request_t *q = testserver_request(srv, 0);
    cr_assert_not_null(q);
    cr_expect_str_eq(q->target,
                     "/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch="
                     "NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30&"
                     "labelSelector=kubevirt.io%3Dvirt-launcher",
                     "no resourceVersion: at least as new as etcd");
    informer_stats_t st;
    informer_get_stats(inf, &st);
    cr_expect_eq(st.lists, 0);
    cr_expect_eq(st.streams, 1);
    cr_expect_eq(testserver_nrequests(srv), 1, "one request for the state and the watch");
}

Test(informer, a_410_streams_the_whole_state_again_and_fires_the_differences)
{
    char end1[256], end2[256];
    snprintf(end1, sizeof(end1), initial_end, "11");
    snprintf(end2, sizeof(end2), initial_end, "31");
    const char *second[] = {event("ADDED", pod("a", "10")), event("ADDED", pod("c", "30")), end2,
                            NULL};
    stream_route("/api/v1/pods?watch=1&sendInitialEvents=true", true, second);
    const char *first[] = {event("ADDED", pod("a", "10")), event("ADDED", pod("b", "11")), end1,
                           expired, NULL};
    stream_route("/api/v1/pods?watch=1&sendInitialEvents=true", false, first);
    make_informer_by(0, INFORMER_INITIAL_AUTO);
    informer_start(inf);
    run_until("delete ns/b@11;");
    cr_expect_str_eq(trace, "add ns/a@10;add ns/b@11;synced;add ns/c@30;delete ns/b@11;");
    informer_stats_t st;
    informer_get_stats(inf, &st);
    cr_expect_eq(st.streams, 2);
    cr_expect_eq(st.relists, 1);
    cr_expect_eq(st.lists, 0);
    cr_expect_eq(st.errors, 0);
    cr_expect_str_eq(informer_resource_version(inf), "31");
}

Test(informer, a_refused_stream_lists_from_the_watch_cache_then_etcd_when_it_is_behind)
{
    /* registered last to first: the paged LIST from etcd and its watch */
    testserver_hold(testserver_route(srv, "GET", "/api/v1/pods?watch=1&allowWatchBookmarks", 200));
    char items[1200];
    snprintf(items, sizeof(items), "%s,%s", pod("a", "10"), pod("c", "30"));
    list_page("/api/v1/pods?limit=500&labelSelector=", items, "31", "");
    /* the relist from the cache times out: the cache is behind */
    testserver_route_t *slow = testserver_route(
        srv, "GET", "/api/v1/pods?limit=500&resourceVersion=10&resourceVersionMatch=NotOlderThan",
        504);
    testserver_json(slow, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                          "\"message\":\"Too large resource version\",\"reason\":\"Timeout\","
                          "\"code\":504}");
    testserver_limit(slow, 1);
    const char *gone[] = {expired, NULL};
    stream_route("/api/v1/pods?watch=1&allowWatchBookmarks", false, gone);
    list_page("/api/v1/pods?limit=500&resourceVersion=0&", pod("a", "10"), "10", "");
    testserver_route_t *r =
        testserver_route(srv, "GET", "/api/v1/pods?watch=1&sendInitialEvents=true", 422);
    testserver_json(r, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                       "\"message\":\"ListOptions.meta.k8s.io \\\"\\\" is invalid: "
                       "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch "
                       "unless the WatchList feature gate is enabled\",\"reason\":\"Invalid\","
                       "\"code\":422}");
    testserver_limit(r, 1);
    make_informer_by(0, INFORMER_INITIAL_AUTO);
    informer_start(inf);
    run_until("add ns/c@30;");
    cr_expect_str_eq(trace, "add ns/a@10;synced;error;add ns/c@30;",
                     "the refusal is no error; the 504 is, and is retried");
    cr_expect_str_eq(informer_loaded_by(inf), "paged");
    informer_stats_t st;
    informer_get_stats(inf, &st);
    cr_expect_eq(st.streams, 1, "a refused stream is not tried again");
    cr_expect_eq(st.lists, 3);
    fflush(logsink);
    cr_expect_not_null(strstr(logged, "does not stream the initial state"), "%s", logged);
    cr_expect_not_null(strstr(logged, "WatchList feature gate"), "%s", logged);
    cr_expect_not_null(strstr(logged, "the next LIST reads etcd"), "%s", logged);
}

Test(informer, a_server_that_ignores_sendInitialEvents_is_listed_instead)
{
    testserver_hold(testserver_route(srv, "GET", "/api/v1/pods?watch=1&allowWatchBookmarks", 200));
    char items[1200];
    snprintf(items, sizeof(items), "%s,%s", pod("a", "10"), pod("b", "11"));
    list_page("/api/v1/pods?limit=500&resourceVersion=0&", items, "12", "");
    /* an old server: the objects as ADDED events, then a plain bookmark */
    const char *evs[] = {event("ADDED", pod("a", "10")),
                         "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{"
                         "\"resourceVersion\":\"12\"}}}\n",
                         NULL};
    stream_route("/api/v1/pods?watch=1&sendInitialEvents=true", true, evs);
    make_informer_by(0, INFORMER_INITIAL_AUTO);
    informer_start(inf);
    run_until("synced;");
    cr_expect_str_eq(trace, "add ns/a@10;add ns/b@11;synced;");
    cr_expect_str_eq(informer_loaded_by(inf), "cache");
}

Test(informer, the_cache_mode_never_streams)
{
    testserver_hold(testserver_route(srv, "GET", "/api/v1/pods?watch=1&allowWatchBookmarks", 200));
    list_page("/api/v1/pods?limit=500&resourceVersion=0&", pod("a", "10"), "10", "");
    make_informer_by(0, INFORMER_INITIAL_CACHE);
    informer_start(inf);
    run_until("synced;");
    cr_expect_str_eq(trace, "add ns/a@10;synced;");
    const testserver_request_t *q = testserver_request(srv, 0);
    cr_assert_not_null(q);
    cr_expect_null(strstr(q->target, "sendInitialEvents"), "%s", q->target);
    informer_initial_t v;
    cr_expect_eq(informer_initial_parse("paged", &v), 0);
    cr_expect_eq(v, INFORMER_INITIAL_PAGED);
    cr_expect_eq(informer_initial_parse("etcd", &v), -1);
    cr_expect_str_eq(informer_initial_name(INFORMER_INITIAL_CACHE), "cache");
}
