#include <criterion/criterion.h>

#include "kube/http.h"
#include "testserver.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- fixture --------------------------------------------------------------- */

static struct ev_loop *loop;
static testserver_t *srv;
static kube_config_t cfg;
static kube_http_t *h;
static char tokpath[64];
static FILE *logsink;
static char *logged;
static size_t logged_len;
static bool in_request; /* true while kube_http_request() runs */
static bool in_data;    /* true while on_data runs */
/* true in teardown: the requests a test left pending end there, and their
 * outcomes (on the test's stack) are gone */
static bool tearing_down;

static void set_cfg(const char *server)
{
    free(cfg.server);
    free(cfg.token);
    free(cfg.source);
    free(cfg.tls_server_name);
    memset(&cfg, 0, sizeof(cfg));
    cfg.source = strdup("test");
    cfg.server = strdup(server);
    cfg.token = strdup("token-one-1111");
}

static testserver_pki_t pki;

/* libcurl honours the proxy environment; the test servers are local. */
static void no_proxy(void)
{
    static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                       "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void setup(void)
{
    char err[256];
    no_proxy();
    logsink = open_memstream(&logged, &logged_len);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, logsink);
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    srv = testserver_start();
    cr_assert_not_null(srv);
    set_cfg(testserver_url(srv));
    h = kube_http_new(loop, &cfg, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
}

/* An HTTPS server; each test sets the TLS fields of cfg (which borrow
 * pki's PEM text) and then calls renew_transport(). */
static void setup_tls(void)
{
    no_proxy();
    logsink = open_memstream(&logged, &logged_len);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, logsink);
    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    cr_assert_eq(testserver_pki_make(&pki), 0);
    srv = testserver_start_tls(&pki);
    cr_assert_not_null(srv);
    set_cfg(testserver_url(srv));
}

static void teardown(void)
{
    tearing_down = true;
    kube_http_free(h);
    tearing_down = false;
    h = NULL;
    testserver_stop(srv);
    ev_loop_destroy(loop);
    free(cfg.server);
    free(cfg.token);
    free(cfg.source);
    free(cfg.tls_server_name);
    memset(&cfg, 0, sizeof(cfg));
    if (tokpath[0])
        unlink(tokpath);
    metrics_free_all();
    kube_http_global_cleanup();
    log_clear_secrets();
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(logsink);
    free(logged);
    testserver_pki_free(&pki);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(http_tls, .init = setup_tls, .fini = teardown, .timeout = 30);

/* What a request's callbacks saw. */
typedef struct outcome {
    int calls; /* on_done */
    bool done;
    bool cancelled;
    long status;
    char *error;
    char *reason;
    char *message;
    char *warnings;
    long code;
    char *body; /* NULL when the result had none */
    size_t body_len;
    buf_t data; /* on_data bytes */
    int data_calls;
    bool got_data;
    ev_tstamp started;
    ev_tstamp finished;
    kube_req_t *req;
    /* actions taken from the callbacks */
    bool cancel_self_on_data;
    kube_req_t *cancel_on_data;
    kube_req_t *cancel_on_done;
    bool free_on_data;
    bool free_on_done;
    const char *abort_with; /* on_data fails with this error */
} outcome_t;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void on_done(void *ud, const kube_result_t *res)
{
    outcome_t *o = ud;
    if (tearing_down)
        return;
    cr_assert_not(in_request, "on_done ran inside kube_http_request()");
    o->calls++;
    o->done = true;
    o->finished = ev_time();
    cr_assert_not(in_data, "on_done ran inside on_data");
    o->status = res->status;
    o->cancelled = res->cancelled;
    o->error = dup_or_null(res->error);
    o->reason = dup_or_null(res->reason);
    o->message = dup_or_null(res->message);
    o->warnings = dup_or_null(res->warnings);
    o->code = res->code;
    if (res->body) {
        o->body = malloc(res->body_len + 1);
        memcpy(o->body, res->body, res->body_len + 1);
        o->body_len = res->body_len;
    }
    if (o->cancel_on_done)
        kube_req_cancel(o->cancel_on_done);
    if (o->free_on_done) {
        kube_http_free(h);
        h = NULL;
    }
}

static int on_data(void *ud, const char *data, size_t len)
{
    outcome_t *o = ud;
    in_data = true;
    o->data_calls++;
    o->got_data = true;
    buf_append(&o->data, data, len);
    if (o->cancel_on_data)
        kube_req_cancel(o->cancel_on_data);
    if (o->cancel_self_on_data)
        kube_req_cancel(o->req);
    if (o->free_on_data) {
        kube_http_free(h);
        h = NULL;
    }
    in_data = false;
    if (o->abort_with) {
        kube_req_set_error(o->req, o->abort_with);
        return -1;
    }
    return 0;
}

static void outcome_free(outcome_t *o)
{
    free(o->error);
    free(o->reason);
    free(o->message);
    free(o->warnings);
    free(o->body);
    buf_free(&o->data);
}

/* Starts a request reporting into o; streaming when stream is set. */
static kube_req_t *start(kube_req_opts_t opts, outcome_t *o, bool stream)
{
    buf_init(&o->data, 1 << 20);
    opts.on_done = on_done;
    opts.on_data = stream ? on_data : NULL;
    opts.ud = o;
    o->started = ev_time();
    in_request = true;
    o->req = kube_http_request(h, &opts);
    in_request = false;
    return o->req;
}

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* Runs the loop until *flag is set or seconds passed; returns *flag. A
 * ticking timer keeps each loop iteration short, so the deadline holds. */
static bool run_until(const bool *flag, double seconds)
{
    ev_timer tick;
    ev_timer_init(&tick, on_deadline, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    double end = ev_time() + seconds;
    while (!*flag && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return *flag;
}

static void run_for(double seconds)
{
    bool never = false;
    run_until(&never, seconds);
}

static const char *logs(void)
{
    fflush(logsink);
    return logged ? logged : "";
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void use_token_file(const char *initial)
{
    snprintf(tokpath, sizeof(tokpath), "/tmp/vmdrain-token-XXXXXX");
    int fd = mkstemp(tokpath);
    cr_assert(fd >= 0);
    close(fd);
    write_file(tokpath, initial);
    cfg.token_file = tokpath;
    free(cfg.token);
    cfg.token = strdup(initial);
}

/* A fresh transport for cfg as it is now (after changing the server). */
static void renew_transport(void)
{
    char err[256];
    kube_http_free(h);
    h = kube_http_new(loop, &cfg, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
}

static const char *const forbidden_json =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
    "\"message\":\"pods is forbidden: User \\\"x\\\" cannot list resource \\\"pods\\\" in API "
    "group \\\"\\\" at the cluster scope\",\"reason\":\"Forbidden\",\"details\":{\"kind\":"
    "\"pods\"},\"code\":403}";

/* ---- buffered requests ------------------------------------------------------ */

Test(http, get_buffers_the_body_and_sends_the_expected_headers)
{
    static const char *const json = "{\"kind\":\"PodList\",\"items\":[]}";
    testserver_json(testserver_route(srv, "GET", "/api/v1/pods", 200), json);
    outcome_t o = {0};
    cr_assert_not_null(start((kube_req_opts_t){.path = "/api/v1/pods?limit=5"}, &o, false));
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 200);
    cr_expect_null(o.error);
    cr_assert_not_null(o.body);
    cr_expect_str_eq(o.body, json);
    cr_expect_eq(o.body_len, strlen(json));
    const testserver_request_t *q = testserver_request(srv, 0);
    cr_assert_not_null(q);
    cr_expect_str_eq(q->method, "GET");
    cr_expect_str_eq(q->target, "/api/v1/pods?limit=5");
    cr_expect_str_eq(testserver_request_header(q, "Authorization"), "Bearer token-one-1111");
    cr_expect_str_eq(testserver_request_header(q, "Accept"), "application/json");
    const char *ua = testserver_request_header(q, "User-Agent");
    cr_expect(ua && strncmp(ua, "vmdrain/", 8) == 0, "User-Agent %s", ua ? ua : "(none)");
    run_for(0.05);
    cr_expect_eq(o.calls, 1, "on_done exactly once");
    cr_expect_eq(kube_http_pending(h), 0);
    outcome_free(&o);
}

Test(http, warning_headers_reach_the_result)
{
    testserver_route_t *r = testserver_route(srv, "POST", "/api/v1/namespaces/ns/pods/", 404);
    testserver_header(r, "Warning", "299 - \"vmdrain (dry run) allowed: pod ns/p not found\"");
    testserver_header(r, "warning", "299 - \"second\"");
    testserver_json(r, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
    testserver_json(testserver_route(srv, "GET", "/api/v1/nodes", 200), "{}");
    outcome_t o = {0}, plain = {0};
    start((kube_req_opts_t){.method = "POST", .path = "/api/v1/namespaces/ns/pods/p/eviction"}, &o,
          false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 404);
    cr_assert_not_null(o.warnings);
    cr_expect_str_eq(o.warnings, "vmdrain (dry run) allowed: pod ns/p not found\nsecond");
    start((kube_req_opts_t){.path = "/api/v1/nodes"}, &plain, false);
    cr_assert(run_until(&plain.done, 10));
    cr_expect_null(plain.warnings, "a response without Warning headers has none");
    outcome_free(&o);
    outcome_free(&plain);
}

Test(http, body_is_copied_and_sent_with_method_and_content_type)
{
    testserver_json(testserver_route(srv, "POST", "/apis/kubevirt.io/v1/", 201), "{}");
    testserver_route(srv, "PATCH", "/api/v1/nodes/n1", 200);
    testserver_route(srv, "DELETE", "/apis/kubevirt.io/v1/", 200);
    char body[] = "{\"kind\":\"VirtualMachineInstanceMigration\"}";
    outcome_t post = {0}, patch = {0}, del = {0};
    start((kube_req_opts_t){.method = "POST",
                            .path = "/apis/kubevirt.io/v1/namespaces/ns/"
                                    "virtualmachineinstancemigrations",
                            .content_type = "application/json",
                            .body = body,
                            .body_len = strlen(body)},
          &post, false);
    memset(body, 'X', sizeof(body) - 1); /* the request holds its own copy */
    cr_assert(run_until(&post.done, 10));
    cr_expect_eq(post.status, 201);
    start((kube_req_opts_t){.method = "PATCH",
                            .path = "/api/v1/nodes/n1",
                            .content_type = "application/merge-patch+json",
                            .body = "{\"spec\":{\"unschedulable\":true}}",
                            .body_len = 31},
          &patch, false);
    cr_assert(run_until(&patch.done, 10));
    cr_expect_eq(patch.status, 200);
    start((kube_req_opts_t){.method = "DELETE",
                            .path = "/apis/kubevirt.io/v1/namespaces/ns/"
                                    "virtualmachineinstancemigrations/m"},
          &del, false);
    cr_assert(run_until(&del.done, 10));
    cr_expect_eq(del.status, 200);

    cr_assert_eq(testserver_nrequests(srv), 3);
    const testserver_request_t *q = testserver_request(srv, 0);
    cr_expect_str_eq(q->method, "POST");
    cr_expect_str_eq(q->body, "{\"kind\":\"VirtualMachineInstanceMigration\"}");
    cr_expect_str_eq(testserver_request_header(q, "Content-Type"), "application/json");
    cr_expect_null(testserver_request_header(q, "Expect"));
    q = testserver_request(srv, 1);
    cr_expect_str_eq(q->method, "PATCH");
    cr_expect_str_eq(q->body, "{\"spec\":{\"unschedulable\":true}}");
    cr_expect_str_eq(testserver_request_header(q, "Content-Type"), "application/merge-patch+json");
    q = testserver_request(srv, 2);
    cr_expect_str_eq(q->method, "DELETE");
    cr_expect_eq(q->body_len, 0);
    outcome_free(&post);
    outcome_free(&patch);
    outcome_free(&del);
}

Test(http, sequential_requests_reuse_one_connection)
{
    testserver_json(testserver_route(srv, "GET", "/", 200), "{}");
    outcome_t a = {0}, b = {0};
    start((kube_req_opts_t){.path = "/a"}, &a, false);
    cr_assert(run_until(&a.done, 10));
    start((kube_req_opts_t){.path = "/b"}, &b, false);
    cr_assert(run_until(&b.done, 10));
    cr_assert_eq(testserver_nrequests(srv), 2);
    cr_expect_eq(testserver_request(srv, 0)->conn, testserver_request(srv, 1)->conn);
    outcome_free(&a);
    outcome_free(&b);
}

Test(http, body_cap_is_enforced)
{
    char big[2001];
    memset(big, 'a', 2000);
    big[2000] = '\0';
    testserver_body(testserver_route(srv, "GET", "/big", 200), big, 2000);
    testserver_body(testserver_route(srv, "GET", "/fits", 200), big, 1000);
    outcome_t over = {0}, fits = {0};
    start((kube_req_opts_t){.path = "/big", .max_body = 1000}, &over, false);
    start((kube_req_opts_t){.path = "/fits", .max_body = 1000}, &fits, false);
    cr_assert(run_until(&over.done, 10));
    cr_assert(run_until(&fits.done, 10));
    cr_expect_eq(over.status, 0);
    cr_expect_str_eq(over.error, "GET /big: response body exceeds 1000 bytes");
    cr_expect_eq(fits.status, 200);
    cr_expect_null(fits.error);
    cr_expect_eq(fits.body_len, 1000);
    outcome_free(&over);
    outcome_free(&fits);
}

/* ---- streaming ---------------------------------------------------------------- */

static const char event[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}}\n";

Test(http, streamed_bytes_arrive_complete_and_in_order)
{
    size_t len = strlen(event);
    testserver_route_t *rt = testserver_route(srv, "GET", "/api/v1/pods", 200);
    for (size_t i = 0; i < len; i++)
        testserver_chunk(rt, event + i, 1, 2);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/api/v1/pods?watch=1", .watch = true}, &o, true);
    cr_assert(run_until(&o.done, 10));
    cr_expect_null(o.error, "%s", o.error);
    cr_expect_eq(o.status, 200);
    cr_expect_null(o.body, "a streamed body is not buffered");
    cr_assert_eq(o.data.len, len);
    cr_expect_str_eq(o.data.data, event);
    cr_expect_gt(o.data_calls, 1, "delivered as it arrived");
    outcome_free(&o);
}

Test(http, a_body_split_at_every_byte_boundary_is_reassembled)
{
    size_t len = strlen(event);
    for (size_t k = 1; k < len; k++) {
        testserver_route_t *rt = testserver_route(srv, "GET", "/split", 200);
        testserver_limit(rt, 1);
        testserver_chunk(rt, event, k, 0);
        testserver_chunk(rt, event + k, len - k, 3);
        outcome_t o = {0};
        start((kube_req_opts_t){.path = "/split", .watch = true}, &o, true);
        cr_assert(run_until(&o.done, 10), "split at %zu", k);
        cr_expect_null(o.error, "split at %zu: %s", k, o.error);
        cr_expect_str_eq(o.data.data, event, "split at %zu", k);
        outcome_free(&o);
    }
}

Test(http, a_connection_dropped_mid_event_is_a_transport_error)
{
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "abc", 3, 0);
    testserver_chunk(rt, "defgh", 5, 5);
    testserver_close_after(rt, 5);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/w", .watch = true}, &o, true);
    cr_assert(run_until(&o.done, 10));
    cr_expect_str_eq(o.data.data, "abcde");
    cr_expect_eq(o.status, 0);
    cr_assert_not_null(o.error);
    cr_expect(strncmp(o.error, "GET /w: ", 8) == 0, "%s", o.error);
    outcome_free(&o);
}

Test(http, on_data_can_abort_with_its_own_error)
{
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "not json", 8, 0);
    testserver_hold(rt);
    outcome_t o = {.abort_with = "watch event: invalid JSON"};
    start((kube_req_opts_t){.path = "/w", .watch = true}, &o, true);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 0);
    cr_expect_str_eq(o.error, "GET /w: watch event: invalid JSON");
    cr_expect_eq(o.data_calls, 1);
    outcome_free(&o);
}

/* ---- errors ------------------------------------------------------------------- */

Test(http, forbidden_status_is_decoded)
{
    testserver_json(testserver_route(srv, "GET", "/api/v1/pods", 403), forbidden_json);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/api/v1/pods", .verb = "list"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 403);
    cr_expect_str_eq(o.reason, "Forbidden");
    cr_expect_eq(o.code, 403);
    cr_expect_str_eq(o.message, "pods is forbidden: User \"x\" cannot list resource \"pods\" in "
                                "API group \"\" at the cluster scope");
    cr_expect_str_eq(o.error, "GET /api/v1/pods: 403 Forbidden: pods is forbidden: User \"x\" "
                              "cannot list resource \"pods\" in API group \"\" at the cluster "
                              "scope");
    cr_expect_str_eq(o.body, forbidden_json, "the error body is handed over too");
    outcome_free(&o);
}

Test(http, gone_on_a_watch_is_decoded_and_not_streamed)
{
    testserver_json(testserver_route(srv, "GET", "/api/v1/pods", 410),
                    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                    "\"message\":\"too old resource version: 12 (345)\",\"reason\":\"Expired\","
                    "\"code\":410}");
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/api/v1/pods?watch=1&resourceVersion=12", .watch = true}, &o,
          true);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 410);
    cr_expect_eq(o.code, 410);
    cr_expect_str_eq(o.reason, "Expired");
    cr_expect_str_eq(o.message, "too old resource version: 12 (345)");
    cr_expect_eq(o.data_calls, 0, "a non-2xx body never reaches on_data");
    cr_expect_str_eq(o.error, "GET /api/v1/pods?watch=1&resourceVersion=12: 410 Expired: too "
                              "old resource version: 12 (345)");
    outcome_free(&o);
}

Test(http, gone_without_status_body_uses_the_http_phrase)
{
    testserver_route(srv, "GET", "/x", 410);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/x"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 410);
    cr_expect_null(o.reason);
    cr_expect_str_eq(o.error, "GET /x: 410 Gone");
    outcome_free(&o);
}

Test(http, a_non_status_error_body_is_quoted_on_one_line)
{
    static const char text[] = "upstream exploded\n<html>";
    testserver_body(testserver_route(srv, "GET", "/x", 500), text, strlen(text));
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/x"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 500);
    cr_expect_str_eq(o.error, "GET /x: 500 Internal Server Error: upstream exploded <html>");
    outcome_free(&o);
}

Test(http, connection_refused_is_a_transport_error)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    close(fd); /* nobody listens on that port now */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    set_cfg(url);
    renew_transport();
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/api/v1/nodes"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 0);
    cr_assert_not_null(o.error);
    cr_expect(strncmp(o.error, "GET /api/v1/nodes: ", 19) == 0, "%s", o.error);
    cr_expect(strstr(o.error, "onnect") != NULL, "names the failure: %s", o.error);
    double v = 0;
    cr_expect_eq(metrics_get("api_requests_total", (const char *const[]){"get", "error"}, &v), 0);
    cr_expect_eq(v, 1);
    outcome_free(&o);
}

Test(http, garbage_instead_of_a_response_is_a_transport_error)
{
    testserver_raw(testserver_route(srv, "GET", "/x", 200), "\x01\x02 garbage\r\n\r\n", 14);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/x"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_eq(o.status, 0);
    cr_assert_not_null(o.error);
    cr_expect(strncmp(o.error, "GET /x: ", 8) == 0, "%s", o.error);
    outcome_free(&o);
}

/* ---- timeouts ------------------------------------------------------------------ */

Test(http, total_timeout_fires_on_a_slow_request)
{
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/slow", .timeout = 0.3}, &o, false);
    cr_assert(run_until(&o.done, 10));
    double took = o.finished - o.started;
    cr_expect_eq(o.status, 0);
    cr_assert_not_null(o.error);
    cr_expect(strstr(o.error, "timed out") != NULL, "%s", o.error);
    cr_expect(took >= 0.25 && took < 5, "took %.3f s", took);
    outcome_free(&o);
}

Test(http, idle_timeout_fires_on_a_silent_watch)
{
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "hello", 5, 0);
    testserver_hold(rt);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/w", .watch = true, .idle_timeout = 1, .timeout = 0.05}, &o,
          true);
    cr_assert(run_until(&o.done, 10));
    double took = o.finished - o.started;
    cr_expect_str_eq(o.data.data, "hello");
    cr_expect_eq(o.status, 0);
    cr_expect_str_eq(o.error, "GET /w: no data for 1 s (watch idle timeout)");
    cr_expect(took >= 0.98 && took < 5, "took %.3f s", took);
    outcome_free(&o);
}

Test(http, a_watch_outlives_the_total_timeout_while_data_flows)
{
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    for (int i = 0; i < 8; i++)
        testserver_chunk(rt, "x", 1, 100);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/w", .watch = true, .idle_timeout = 3, .timeout = 0.2}, &o,
          true);
    cr_assert(run_until(&o.done, 10));
    cr_expect_null(o.error, "%s", o.error);
    cr_expect_str_eq(o.data.data, "xxxxxxxx");
    cr_expect(o.finished - o.started >= 0.6, "took %.3f s", o.finished - o.started);
    outcome_free(&o);
}

/* ---- cancellation and teardown ------------------------------------------------- */

Test(http, cancel_from_inside_on_data_stops_both_requests_silently)
{
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "a", 1, 0);
    testserver_chunk(rt, "b", 1, 50);
    testserver_hold(rt);
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    outcome_t slow = {0}, w = {.cancel_self_on_data = true};
    start((kube_req_opts_t){.path = "/slow"}, &slow, false);
    w.cancel_on_data = slow.req;
    start((kube_req_opts_t){.path = "/w", .watch = true}, &w, true);
    cr_assert(run_until(&w.got_data, 10));
    run_for(0.3);
    cr_expect_eq(w.data_calls, 1, "nothing after the cancel");
    cr_expect_eq(w.calls, 0);
    cr_expect_eq(slow.calls, 0);
    cr_expect_eq(kube_http_pending(h), 0);
    outcome_free(&slow);
    outcome_free(&w);
}

Test(http, cancel_before_the_loop_runs)
{
    testserver_json(testserver_route(srv, "GET", "/", 200), "{}");
    outcome_t o = {0};
    kube_req_cancel(start((kube_req_opts_t){.path = "/x"}, &o, false));
    run_for(0.2);
    cr_expect_eq(o.calls, 0);
    cr_expect_eq(testserver_nrequests(srv), 0);
    cr_expect_eq(kube_http_pending(h), 0);
    outcome_free(&o);
}

Test(http, cancel_from_on_done_of_another_request)
{
    testserver_json(testserver_route(srv, "GET", "/fast", 200), "{}");
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    outcome_t fast = {0}, slow = {0};
    start((kube_req_opts_t){.path = "/slow"}, &slow, false);
    fast.cancel_on_done = slow.req;
    start((kube_req_opts_t){.path = "/fast"}, &fast, false);
    cr_assert(run_until(&fast.done, 10));
    run_for(0.2);
    cr_expect_eq(fast.calls, 1);
    cr_expect_eq(slow.calls, 0);
    cr_expect_eq(kube_http_pending(h), 0);
    outcome_free(&fast);
    outcome_free(&slow);
}

Test(http, requests_cancelling_each_other_from_on_done_end_with_one_call)
{
    testserver_json(testserver_route(srv, "GET", "/", 200), "{}");
    for (int i = 0; i < 20; i++) {
        outcome_t a = {0}, b = {0};
        start((kube_req_opts_t){.path = "/a"}, &a, false);
        start((kube_req_opts_t){.path = "/b"}, &b, false);
        a.cancel_on_done = b.req;
        b.cancel_on_done = a.req;
        bool any = false;
        for (double t = 0; t < 10 && !any; t += 0.01) {
            run_for(0.01);
            any = a.done || b.done;
        }
        run_for(0.05);
        cr_expect_eq(a.calls + b.calls, 1, "round %d", i);
        cr_expect_eq(kube_http_pending(h), 0);
        outcome_free(&a);
        outcome_free(&b);
    }
}

Test(http, free_ends_every_pending_request_once_as_cancelled)
{
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "a", 1, 0);
    testserver_hold(rt);
    outcome_t a = {0}, b = {0}, c = {0};
    start((kube_req_opts_t){.path = "/slow"}, &a, false);
    start((kube_req_opts_t){.path = "/w", .watch = true}, &b, true);
    cr_assert(run_until(&b.got_data, 10));
    start((kube_req_opts_t){.path = "/slow"}, &c, false); /* not started yet */
    kube_http_free(h);
    h = NULL;
    cr_expect_eq(a.calls, 1);
    cr_expect_eq(b.calls, 1);
    cr_expect_eq(c.calls, 1);
    run_for(0.2);
    cr_expect_eq(a.calls + b.calls + c.calls, 3);
    outcome_t *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        cr_expect(all[i]->cancelled, "request %d", i);
        cr_expect_eq(all[i]->status, 0);
        cr_expect_not_null(all[i]->error);
        cr_expect(all[i]->error && strstr(all[i]->error, KUBE_HTTP_CANCELLED_TEXT), "%s",
                  all[i]->error);
        outcome_free(all[i]);
    }
}

Test(http, free_skips_requests_the_caller_cancelled)
{
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    outcome_t a = {0}, b = {0};
    start((kube_req_opts_t){.path = "/slow"}, &a, false);
    start((kube_req_opts_t){.path = "/slow"}, &b, false);
    run_for(0.1);
    kube_req_cancel(a.req);
    kube_http_free(h);
    h = NULL;
    run_for(0.1);
    cr_expect_eq(a.calls, 0);
    cr_expect_eq(b.calls, 1);
    cr_expect(b.cancelled);
    outcome_free(&a);
    outcome_free(&b);
}

/* What a shutdown on_done may do: cancel another request (which then gets
 * no call), start one (refused), free the transport again (no-op). */
static outcome_t *victim;
static kube_req_t *refused = (kube_req_t *)1;
static void on_done_at_shutdown(void *ud, const kube_result_t *res)
{
    outcome_t *o = ud;
    if (tearing_down)
        return;
    o->calls++;
    o->cancelled = res->cancelled;
    if (victim)
        kube_req_cancel(victim->req);
    victim = NULL;
    refused = kube_http_request(h, &(kube_req_opts_t){.path = "/x", .on_done = on_done, .ud = o});
    kube_http_free(h);
}

Test(http, a_shutdown_on_done_may_cancel_start_and_free)
{
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    outcome_t a = {0}, b = {0};
    kube_req_opts_t o = {.path = "/slow", .on_done = on_done_at_shutdown, .ud = &a};
    cr_assert_not_null(kube_http_request(h, &o));
    start((kube_req_opts_t){.path = "/slow"}, &b, false);
    victim = &b;
    run_for(0.1);
    kube_http_free(h); /* ends them in the order they were made: a, then b */
    h = NULL;
    cr_expect_eq(a.calls, 1);
    cr_expect(a.cancelled);
    cr_expect_null(refused);
    cr_expect_eq(b.calls, 0);
    outcome_free(&a);
    outcome_free(&b);
}

Test(http, free_from_inside_on_done)
{
    testserver_json(testserver_route(srv, "GET", "/fast", 200), "{}");
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    outcome_t fast = {.free_on_done = true}, slow = {0};
    start((kube_req_opts_t){.path = "/slow"}, &slow, false);
    start((kube_req_opts_t){.path = "/fast"}, &fast, false);
    cr_assert(run_until(&fast.done, 10));
    cr_expect_null(h);
    run_for(0.2);
    cr_expect_eq(fast.calls, 1);
    cr_expect_not(fast.cancelled);
    cr_expect_eq(slow.calls, 1);
    cr_expect(slow.cancelled);
    outcome_free(&fast);
    outcome_free(&slow);
}

Test(http, free_from_inside_on_data)
{
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "a", 1, 0);
    testserver_chunk(rt, "b", 1, 50);
    testserver_hold(rt);
    outcome_t w = {.free_on_data = true};
    start((kube_req_opts_t){.path = "/w", .watch = true}, &w, true);
    cr_assert(run_until(&w.got_data, 10));
    run_for(0.2);
    cr_expect_null(h);
    cr_expect_eq(w.data_calls, 1);
    cr_expect_eq(w.calls, 1); /* after on_data returned, outside libcurl */
    cr_expect(w.cancelled);
    outcome_free(&w);
}

Test(http, invalid_requests_are_refused_without_a_callback)
{
    outcome_t o = {0};
    cr_expect_null(start((kube_req_opts_t){.path = "api/v1/pods"}, &o, false));
    cr_expect_null(start((kube_req_opts_t){.path = NULL}, &o, false));
    cr_expect_null(kube_http_request(h, &(kube_req_opts_t){.path = "/x"}), "on_done is required");
    cr_expect_null(kube_http_request(h, NULL));
    run_for(0.1);
    cr_expect_eq(o.calls, 0);
    cr_expect_eq(kube_http_pending(h), 0);
    outcome_free(&o);
}

Test(http, unusable_server_urls_are_refused)
{
    char err[256] = "";
    kube_config_t c = {.source = "kc.yaml", .server = "ftp://example.org"};
    cr_expect_null(kube_http_new(loop, &c, err, sizeof(err)));
    cr_expect_str_eq(err, "kc.yaml: server URL \"ftp://example.org\" is neither https nor http");
    c.server = "https://exa mple:x";
    cr_expect_null(kube_http_new(loop, &c, err, sizeof(err)));
    cr_expect(strstr(err, "is not valid") != NULL, "%s", err);
    c.server = NULL;
    cr_expect_null(kube_http_new(loop, &c, err, sizeof(err)));
}

/* ---- tls-server-name, tokens, metrics ------------------------------------------ */

Test(http, tls_server_name_is_the_requested_host_while_the_server_address_is_used)
{
    testserver_json(testserver_route(srv, "GET", "/version", 200), "{}");
    cfg.tls_server_name = strdup("apiserver.test");
    renew_transport();
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/version"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_null(o.error, "%s", o.error);
    char want[64];
    snprintf(want, sizeof(want), "apiserver.test:%d", testserver_port(srv));
    cr_expect_str_eq(testserver_request_header(testserver_request(srv, 0), "Host"), want);
    outcome_free(&o);
}

Test(http, a_rotated_token_file_is_used_after_the_timer_reload)
{
    testserver_json(testserver_route(srv, "GET", "/", 200), "{}");
    use_token_file("token-aaaa-1111");
    renew_transport();
    kube_http_set_token_interval(h, 0.1);
    outcome_t a = {0}, b = {0};
    start((kube_req_opts_t){.path = "/a"}, &a, false);
    cr_assert(run_until(&a.done, 10));
    write_file(tokpath, "token-bbbb-2222\n");
    run_for(0.35);
    start((kube_req_opts_t){.path = "/b"}, &b, false);
    cr_assert(run_until(&b.done, 10));
    cr_assert_eq(testserver_nrequests(srv), 2);
    cr_expect_str_eq(testserver_request_header(testserver_request(srv, 0), "Authorization"),
                     "Bearer token-aaaa-1111");
    cr_expect_str_eq(testserver_request_header(testserver_request(srv, 1), "Authorization"),
                     "Bearer token-bbbb-2222");
    cr_expect(strstr(logs(), "API token reloaded") != NULL, "%s", logs());
    cr_expect_null(strstr(logs(), "token-bbbb"), "the token is never logged");
    outcome_free(&a);
    outcome_free(&b);
}

Test(http, a_401_reloads_the_token_at_once)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    testserver_limit(testserver_route(srv, "GET", "/r", 401), 1);
    use_token_file("token-aaaa-1111");
    renew_transport(); /* the timer interval stays at 60 s */
    write_file(tokpath, "token-bbbb-2222");
    outcome_t a = {0}, b = {0};
    start((kube_req_opts_t){.path = "/r"}, &a, false);
    cr_assert(run_until(&a.done, 10));
    cr_expect_eq(a.status, 401);
    start((kube_req_opts_t){.path = "/r"}, &b, false);
    cr_assert(run_until(&b.done, 10));
    cr_expect_eq(b.status, 200);
    cr_assert_eq(testserver_nrequests(srv), 2);
    cr_expect_str_eq(testserver_request_header(testserver_request(srv, 0), "Authorization"),
                     "Bearer token-aaaa-1111", "the file is not read per request");
    cr_expect_str_eq(testserver_request_header(testserver_request(srv, 1), "Authorization"),
                     "Bearer token-bbbb-2222");
    outcome_free(&a);
    outcome_free(&b);
}

Test(http, a_failed_token_reload_keeps_the_old_token)
{
    testserver_json(testserver_route(srv, "GET", "/", 200), "{}");
    use_token_file("token-aaaa-1111");
    renew_transport();
    write_file(tokpath, "");
    cr_expect_eq(kube_http_reload_token(h), -1);
    outcome_t o = {0};
    start((kube_req_opts_t){.path = "/a"}, &o, false);
    cr_assert(run_until(&o.done, 10));
    cr_expect_str_eq(testserver_request_header(testserver_request(srv, 0), "Authorization"),
                     "Bearer token-aaaa-1111");
    cr_expect(strstr(logs(), "cannot reload the bearer token") != NULL, "%s", logs());
    write_file(tokpath, "token-cccc-3333");
    cr_expect_eq(kube_http_reload_token(h), 1);
    cr_expect_eq(kube_http_reload_token(h), 0, "unchanged");
    outcome_free(&o);
}

Test(http, api_requests_total_counts_by_verb_and_code)
{
    testserver_json(testserver_route(srv, "GET", "/ok", 200), "{}");
    testserver_json(testserver_route(srv, "GET", "/no", 403), forbidden_json);
    testserver_delay(testserver_route(srv, "GET", "/slow", 200), -1);
    testserver_json(testserver_route(srv, "POST", "/ok", 201), "{}");
    outcome_t o[5] = {0};
    start((kube_req_opts_t){.path = "/ok"}, &o[0], false);
    start((kube_req_opts_t){.path = "/ok", .verb = "list"}, &o[1], false);
    start((kube_req_opts_t){.path = "/no", .verb = "list"}, &o[2], false);
    start((kube_req_opts_t){.path = "/slow", .timeout = 0.2}, &o[3], false);
    start((kube_req_opts_t){.method = "POST", .path = "/ok", .body = "{}", .body_len = 2}, &o[4],
          false);
    for (int i = 0; i < 5; i++)
        cr_assert(run_until(&o[i].done, 10), "request %d", i);
    double v;
    struct {
        const char *verb, *code;
        double want;
    } want[] = {{"get", "200", 1},
                {"list", "200", 1},
                {"list", "403", 1},
                {"get", "error", 1},
                {"create", "201", 1}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        v = -1;
        cr_expect_eq(metrics_get("api_requests_total",
                                 (const char *const[]){want[i].verb, want[i].code}, &v),
                     0, "%s %s", want[i].verb, want[i].code);
        cr_expect_eq(v, want[i].want, "%s %s", want[i].verb, want[i].code);
    }
    buf_t out;
    buf_init(&out, 1 << 16);
    cr_assert_eq(metrics_render(&out), 0);
    cr_expect(strstr(out.data, "vmdrain_api_requests_total{verb=\"list\",code=\"403\"} 1\n") !=
                  NULL,
              "%s", out.data);
    buf_free(&out);
    for (int i = 0; i < 5; i++)
        outcome_free(&o[i]);
}

/* ---- Status decoding ------------------------------------------------------------ */

Test(http, status_decode_reads_top_level_fields_only)
{
    kube_api_status_t st;
    char err[128];
    static const char body[] = "{\"details\":{\"reason\":\"nested\",\"code\":1},\"reason\":"
                               "\"NotFound\",\"code\":404,\"message\":\"pods \\\"x\\\" not "
                               "found\",\"extra\":[1,{\"message\":\"no\"}],\"n\":null}";
    cr_assert_eq(kube_api_status_decode(body, strlen(body), &st, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(st.code, 404);
    cr_expect_str_eq(st.reason, "NotFound");
    cr_expect_str_eq(st.message, "pods \"x\" not found");
}

Test(http, status_decode_rejects_what_is_not_an_object)
{
    kube_api_status_t st;
    char err[128];
    const char *bad[] = {"[]", "\"Forbidden\"", "42",          "",
                         "{",  "{\"code\":}",   "{} trailing", "<html></html>"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_expect_eq(kube_api_status_decode(bad[i], strlen(bad[i]), &st, err, sizeof(err)), -1,
                     "%s", bad[i]);
        cr_expect(strncmp(err, "Status body", 11) == 0, "%s: %s", bad[i], err);
        cr_expect_eq(st.code, 0);
        cr_expect_str_eq(st.reason, "");
    }
}

Test(http, status_decode_caps_depth_and_lengths)
{
    kube_api_status_t st;
    char err[128];
    char deep[200];
    memset(deep, '[', sizeof(deep));
    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);
    cr_expect_eq(kube_api_status_decode(deep, sizeof(deep), &st, err, sizeof(err)), -1);
    cr_expect(strstr(err, "deeper than 32") != NULL, "%s", err);

    /* a message longer than the field, ending in a two-byte character at the
     * cut, with a newline and a tab */
    buf_t b;
    buf_init(&b, 1 << 16);
    buf_puts(&b, "{\"message\":\"line1\\nline2\\t");
    for (int i = 0; i < 1010; i++)
        buf_puts(&b, "m");
    buf_puts(&b, "\xc3\xa9\xc3\xa9\",\"code\":1.5}");
    cr_assert_eq(kube_api_status_decode(b.data, b.len, &st, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(strncmp(st.message, "line1 line2 mmm", 15), 0, "%s", st.message);
    size_t n = strlen(st.message);
    cr_expect_leq(n, sizeof(st.message) - 1);
    cr_expect_eq(n, 1022, "the cut does not split the character");
    cr_expect_eq(st.code, 0, "a fractional code is ignored");
    buf_free(&b);
}

/* ---- TLS ------------------------------------------------------------------------ */

static void use_ca(const char *pem)
{
    cfg.ca_pem = (char *)pem;
    cfg.ca_pem_len = strlen(pem);
}

static void use_client_cert(const char *cert, const char *key)
{
    cfg.cert_pem = (char *)cert;
    cfg.cert_pem_len = strlen(cert);
    cfg.key_pem = (char *)key;
    cfg.key_pem_len = strlen(key);
}

/* Sends GET /version through a fresh transport built from cfg. */
static void get_version(outcome_t *o)
{
    renew_transport();
    start((kube_req_opts_t){.path = "/version"}, o, false);
    cr_assert(run_until(&o->done, 10));
}

Test(http_tls, pem_blobs_verify_the_server_and_present_the_client_certificate)
{
    testserver_json(testserver_route(srv, "GET", "/version", 200), "{\"major\":\"1\"}");
    use_ca(pki.ca_pem);
    use_client_cert(pki.client_cert_pem, pki.client_key_pem);
    outcome_t o = {0}, anon = {0};
    get_version(&o);
    cr_expect_null(o.error, "%s", o.error);
    cr_expect_eq(o.status, 200);
    cr_expect_str_eq(o.body, "{\"major\":\"1\"}");
    cr_assert_eq(testserver_nrequests(srv), 1);
    cr_expect_str_eq(testserver_request(srv, 0)->client_cn, "vmdrain-test-client");
    cfg.cert_pem = cfg.key_pem = NULL;
    cfg.cert_pem_len = cfg.key_pem_len = 0;
    get_version(&anon);
    cr_expect_eq(anon.status, 200);
    cr_assert_eq(testserver_nrequests(srv), 2);
    cr_expect_str_eq(testserver_request(srv, 1)->client_cn, "", "no certificate without one");
    outcome_free(&o);
    outcome_free(&anon);
}

Test(http_tls, a_server_certificate_from_another_ca_is_refused)
{
    testserver_route(srv, "GET", "/version", 200);
    use_ca(pki.other_ca_pem);
    outcome_t o = {0};
    get_version(&o);
    cr_expect_eq(o.status, 0);
    cr_assert_not_null(o.error);
    cr_expect(strstr(o.error, "GET /version: SSL certificate problem") == o.error, "%s", o.error);
    cr_expect_eq(testserver_nrequests(srv), 0);
    outcome_free(&o);
}

Test(http_tls, insecure_skip_tls_verify_accepts_any_server_certificate)
{
    testserver_route(srv, "GET", "/version", 200);
    use_ca(pki.other_ca_pem);
    cfg.insecure_skip_tls_verify = true;
    outcome_t o = {0};
    get_version(&o);
    cr_expect_null(o.error, "%s", o.error);
    cr_expect_eq(o.status, 200);
    outcome_free(&o);
}

Test(http_tls, tls_server_name_is_the_name_verified)
{
    testserver_route(srv, "GET", "/version", 200);
    use_ca(pki.ca_pem);
    cfg.tls_server_name = strdup("apiserver.test");
    outcome_t good = {0}, bad = {0};
    get_version(&good);
    cr_expect_null(good.error, "%s", good.error);
    cr_expect_eq(good.status, 200);
    free(cfg.tls_server_name);
    cfg.tls_server_name = strdup("wrong.test");
    get_version(&bad);
    cr_expect_eq(bad.status, 0);
    cr_assert_not_null(bad.error);
    cr_expect(strstr(bad.error, "wrong.test") != NULL, "%s", bad.error);
    outcome_free(&good);
    outcome_free(&bad);
}

Test(http_tls, an_unusable_client_key_is_a_transport_error)
{
    testserver_route(srv, "GET", "/version", 200);
    use_ca(pki.ca_pem);
    use_client_cert(pki.client_cert_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE "
                                         "KEY-----\n");
    outcome_t o = {0};
    get_version(&o);
    cr_expect_eq(o.status, 0);
    cr_assert_not_null(o.error);
    cr_expect(strncmp(o.error, "GET /version: ", 14) == 0, "%s", o.error);
    outcome_free(&o);
}

/* ---- the rate limit ----------------------------------------------------------- */

/* A fresh transport with a rate limit. */
static void limited_transport(double qps, int burst)
{
    char err[256];
    kube_http_free(h);
    kube_http_opts_t o = {.qps = qps, .burst = burst};
    h = kube_http_new_opts(loop, &cfg, &o, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
}

static double throttled(void)
{
    double v = -1;
    if (metrics_get("api_throttled_requests_total", NULL, &v) < 0)
        return 0;
    return v;
}

Test(http, requests_over_the_burst_wait_their_turn_without_blocking)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    limited_transport(4, 2);
    outcome_t o[5] = {{0}};
    double t0 = ev_time();
    for (int i = 0; i < 5; i++)
        cr_assert_not_null(start((kube_req_opts_t){.path = "/r"}, &o[i], false));
    /* waiting in kube_http_request() would take 0.75 s */
    cr_expect_lt(ev_time() - t0, 0.5, "kube_http_request() must not wait");
    cr_expect_float_eq(throttled(), 3, 1e-9);
    cr_expect_eq(kube_http_pending(h), 5);
    cr_assert(run_until(&o[4].done, 10));
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(o[i].calls, 1, "request %d", i);
        cr_expect_eq(o[i].status, 200, "request %d", i);
    }
    /* two at once, then one every 250 ms: none can end before its turn
     * (lower bounds only: a loaded machine may be late, never early) */
    for (int i = 2; i < 5; i++)
        cr_expect_geq(o[i].finished - t0, (i - 1) * 0.25 - 0.01, "request %d", i);
    kube_http_free(h); /* the outcomes live on this stack */
    h = NULL;
    for (int i = 0; i < 5; i++)
        outcome_free(&o[i]);
}

Test(http, watches_are_not_rate_limited)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    testserver_route_t *rt = testserver_route(srv, "GET", "/w", 200);
    testserver_chunk(rt, "a", 1, 0);
    testserver_hold(rt);
    limited_transport(0.1, 1);
    outcome_t a = {0}, w = {0};
    start((kube_req_opts_t){.path = "/r"}, &a, false); /* takes the only token for 10 s */
    start((kube_req_opts_t){.path = "/w", .watch = true}, &w, true);
    cr_assert(run_until(&w.got_data, 5.0), "the watch waited for the rate limit");
    cr_expect_float_eq(throttled(), 0, 1e-9);
    kube_http_free(h); /* before the outcomes its on_done calls write to go */
    h = NULL;
    outcome_free(&a);
    outcome_free(&w);
}

Test(http, a_cancelled_waiting_request_is_never_sent)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    limited_transport(2, 1);
    outcome_t a = {0}, b = {0}, c = {0};
    start((kube_req_opts_t){.path = "/r"}, &a, false);
    start((kube_req_opts_t){.path = "/r?b"}, &b, false); /* waits 0.5 s */
    start((kube_req_opts_t){.path = "/r?c"}, &c, false); /* waits 1 s */
    cr_expect_float_eq(throttled(), 2, 1e-9);
    kube_req_cancel(b.req);
    cr_assert(run_until(&c.done, 5));
    cr_expect_eq(a.calls, 1);
    cr_expect_eq(b.calls, 0);
    cr_expect_eq(c.calls, 1);
    cr_expect_eq(testserver_nrequests(srv), 2);
    for (int i = 0; i < testserver_nrequests(srv); i++)
        cr_expect_null(strstr(testserver_request(srv, i)->target, "?b"));
    cr_expect_eq(kube_http_pending(h), 0);
    kube_http_free(h);
    h = NULL;
    outcome_free(&a);
    outcome_free(&b);
    outcome_free(&c);
}

Test(http, free_ends_waiting_requests_as_cancelled)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    limited_transport(0.1, 1);
    outcome_t a = {0}, b = {0};
    start((kube_req_opts_t){.path = "/r"}, &a, false);
    start((kube_req_opts_t){.path = "/r"}, &b, false); /* waits 10 s */
    cr_assert(run_until(&a.done, 5));
    cr_expect_eq(kube_http_pending(h), 1);
    kube_http_free(h);
    h = NULL;
    cr_expect_eq(b.calls, 1);
    cr_expect(b.cancelled);
    cr_expect_eq(testserver_nrequests(srv), 1);
    outcome_free(&a);
    outcome_free(&b);
}

Test(http, zero_qps_is_unlimited)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    limited_transport(0, 1);
    outcome_t o[20] = {{0}};
    for (int i = 0; i < 20; i++)
        start((kube_req_opts_t){.path = "/r"}, &o[i], false);
    cr_expect_float_eq(throttled(), 0, 1e-9);
    cr_assert(run_until(&o[19].done, 10));
    kube_http_free(h); /* the outcomes live on this stack */
    h = NULL;
    for (int i = 0; i < 20; i++)
        outcome_free(&o[i]);
}

Test(http, the_default_limit_is_fifty_a_second_after_a_burst_of_a_hundred)
{
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    static outcome_t o[130];
    memset(o, 0, sizeof(o));
    double t0 = ev_time();
    for (int i = 0; i < 130; i++)
        start((kube_req_opts_t){.path = "/r"}, &o[i], false);
    double took = ev_time() - t0;
    /* 100 at once, then 50 a second while the loop above ran */
    double least = 130 - 100 - 50 * took - 1;
    cr_expect_geq(throttled(), least, "%g throttled in %g s", throttled(), took);
    cr_expect_leq(throttled(), 30);
    kube_http_free(h);
    h = NULL;
    for (int i = 0; i < 130; i++)
        outcome_free(&o[i]);
}

/* ---- the fence ------------------------------------------------------------------- */

Test(http, a_fenced_transport_sends_reads_and_unfenced_writes_only)
{
    testserver_json(testserver_route(srv, NULL, "/ok", 200), "{}");
    kube_http_fence(h, "not the leader");
    outcome_t o[4] = {0};
    start((kube_req_opts_t){.path = "/ok"}, &o[0], false);
    start((kube_req_opts_t){.method = "POST", .path = "/ok", .body = "{}", .body_len = 2}, &o[1],
          false);
    start(
        (kube_req_opts_t){
            .method = "PATCH", .path = "/ok", .body = "{}", .body_len = 2, .unfenced = true},
        &o[2], false);
    start((kube_req_opts_t){.method = "DELETE", .path = "/ok"}, &o[3], false);
    for (int i = 0; i < 4; i++)
        cr_assert(run_until(&o[i].done, 10), "request %d", i);
    cr_expect_null(o[0].error);
    cr_expect_null(o[2].error);
    for (int i = 1; i < 4; i += 2) {
        cr_expect_eq(o[i].status, 0);
        cr_assert_not_null(o[i].error);
        cr_expect(strstr(o[i].error, "fenced: not the leader") != NULL, "%s", o[i].error);
        cr_expect_not(o[i].cancelled);
    }
    cr_expect_eq(testserver_nrequests(srv), 2, "only the GET and the unfenced PATCH were sent");
    for (int i = 0; i < testserver_nrequests(srv); i++) {
        const char *m = testserver_request(srv, i)->method;
        cr_expect(strcmp(m, "GET") == 0 || strcmp(m, "PATCH") == 0, "%s was sent", m);
    }
    double v = -1;
    cr_expect_eq(metrics_get("api_fenced_requests_total", (const char *const[]){"create"}, &v), 0);
    cr_expect_eq(v, 1);
    cr_expect_neq(metrics_get("api_requests_total", (const char *const[]){"create", "error"}, &v),
                  0, "a fenced write counts as a request");
    /* lifted: writes go again */
    kube_http_fence(h, NULL);
    outcome_t again = {0};
    start((kube_req_opts_t){.method = "POST", .path = "/ok", .body = "{}", .body_len = 2}, &again,
          false);
    cr_assert(run_until(&again.done, 10));
    cr_expect_null(again.error);
    for (int i = 0; i < 4; i++)
        outcome_free(&o[i]);
    outcome_free(&again);
}

Test(http, the_fence_ends_writes_in_flight_and_waiting_at_once)
{
    kube_http_opts_t slow = {.qps = 0.5, .burst = 1};
    char err[256];
    kube_http_free(h);
    h = kube_http_new_opts(loop, &cfg, &slow, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    testserver_delay(testserver_route(srv, "PUT", "/hang", 200), -1);
    outcome_t sent = {0}, waiting = {0};
    start((kube_req_opts_t){.method = "PUT", .path = "/hang", .body = "{}", .body_len = 2}, &sent,
          false);
    start((kube_req_opts_t){.method = "PUT", .path = "/hang", .body = "{}", .body_len = 2},
          &waiting, false);
    for (double t0 = ev_time(); testserver_nrequests(srv) < 1 && ev_time() - t0 < 5;)
        run_for(0.05);
    cr_assert_eq(testserver_nrequests(srv), 1);
    run_for(0.1);
    cr_expect_not(sent.done);
    cr_expect_not(waiting.done, "the second waits for the rate limit");
    double at = ev_time();
    kube_http_fence(h, "lost the lease");
    cr_assert(run_until(&sent.done, 2) && run_until(&waiting.done, 2));
    cr_expect(sent.finished - at < 0.5, "ended %.3f s after the fence", sent.finished - at);
    cr_expect(strstr(sent.error, "fenced: lost the lease") != NULL, "%s", sent.error);
    cr_expect(strstr(waiting.error, "fenced: lost the lease") != NULL, "%s", waiting.error);
    run_for(2.2);
    cr_expect_eq(testserver_nrequests(srv), 1, "the waiting write was never sent");
    outcome_free(&sent);
    outcome_free(&waiting);
}
