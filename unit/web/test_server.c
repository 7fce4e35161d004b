#include <criterion/criterion.h>

#include "kube/decode.h"
#include "../testobj.h"
#include "testcert.h"
#include "util/log.h"
#include "util/metrics.h"
#include "drain/eviction.h"
#include "web/admission.h"
#include "web/server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * The server runs on a libev loop in the test's own thread; each client
 * runs in a second thread with blocking sockets and records what it saw.
 * The test thread turns the loop until the client is done, then asserts:
 * the server is only ever touched from the thread that owns its loop.
 */

static struct ev_loop *loop;
static ev_async wake;
static web_server_t *srv;
static char dir[64];
static char cert_path[128], key_path[128];
static atomic_int ready_flag;
static FILE *logsink;
static char *logged;
static size_t logged_len;
static kube_obj_t *cache_pod, *cache_vmi;
static web_request_t *parked; /* a request the "never" handler keeps */

/* --- the cache behind the test's eviction handler --------------------------- */

#define from_json test_obj_from_json /* ../testobj.h */

/* /validate-eviction as the operator serves it, over a fixed cache. */
static void on_eviction(web_request_t *req, void *ud)
{
    admission_request_t rq;
    drain_evict_result_t res;
    drain_evict_input_t in = {.default_strategy = KUBE_EVICTION_NONE, .live_migration_gate = true};
    char err[256];
    size_t len;
    const char *body = web_request_body(req, &len);

    (void)ud;
    if (admission_decode(body, len, &rq, err, sizeof(err)) < 0) {
        web_respond_text(req, 400, err);
        return;
    }
    if (strcmp(rq.name, cache_pod->name) == 0)
        in.pod = kube_obj_as_pod(cache_pod);
    in.pod_looked_up = true;
    in.vmi = kube_obj_as_vmi(cache_vmi);
    drain_evict_req_t er = {.ns = rq.ns, .name = rq.name, .dry_run = rq.dry_run};
    drain_eviction_decide(&er, &in, &res);
    drain_eviction_count(&res);
    admission_response_t r = {
        .allowed = res.allowed, .code = res.code, .reason = res.reason, .message = res.message};
    admission_respond(req, rq.uid, &r);
}

/* /echo: what the server made of the request. */
static void on_echo(web_request_t *req, void *ud)
{
    char text[512];
    size_t len;
    const char *body = web_request_body(req, &len);

    (void)ud;
    snprintf(text, sizeof(text), "%s %s ?%s ct=%s len=%zu gone=%d body=%.64s",
             web_request_method(req), web_request_path(req), web_request_query(req),
             web_request_content_type(req), len, web_request_gone(req), body);
    web_respond_text(req, 200, text);
}

/* /later: answered 50 ms later from a timer. */
static ev_timer later_timer;
static web_request_t *later_req;

static void on_later_timer(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    web_respond_text(later_req, 200, "later");
    later_req = NULL;
}

static void on_later(web_request_t *req, void *ud)
{
    (void)ud;
    later_req = req;
    ev_timer_init(&later_timer, on_later_timer, 0.05, 0);
    ev_timer_start(loop, &later_timer);
}

/* /never: keeps the request; teardown answers it, which frees it. */
static void on_never(web_request_t *req, void *ud)
{
    (void)ud;
    parked = req;
}

static bool is_ready(void *ud, char *note, size_t n)
{
    (void)ud;
    if (atomic_load(&ready_flag) > 1)
        snprintf(note, n, "warning: %d", atomic_load(&ready_flag));
    return atomic_load(&ready_flag) != 0;
}

static void on_wake(struct ev_loop *l, ev_async *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&wake, on_wake);
    ev_async_start(loop, &wake);
    strcpy(dir, "/tmp/vmdrain-web-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cert_path, sizeof(cert_path), "%s/tls.crt", dir);
    snprintf(key_path, sizeof(key_path), "%s/tls.key", dir);
    cr_assert_eq(testcert_write(cert_path, key_path, 1), 0);
    logsink = open_memstream(&logged, &logged_len);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, logsink);
    atomic_store(&ready_flag, 0);
    cache_pod =
        from_json(KUBE_KIND_POD,
                  "{\"metadata\":{\"name\":\"virt-launcher-vm-a-7xk2p\",\"namespace\":\"default\","
                  "\"labels\":{\"kubevirt.io\":\"virt-launcher\"},\"annotations\":{\"kubevirt.io/"
                  "domain\":\"vm-a\"}},\"spec\":{\"nodeName\":\"node-1\"},\"status\":{\"phase\":"
                  "\"Running\"}}");
    cache_vmi = from_json(KUBE_KIND_VMI,
                          "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":"
                          "\"0d3f2c1a-1\"},\"spec\":{\"evictionStrategy\":\"LiveMigrate\"},"
                          "\"status\":{\"nodeName\":\"node-1\",\"phase\":\"Running\","
                          "\"conditions\":[{\"type\":\"LiveMigratable\",\"status\":\"True\"}]}}");
}

static void teardown(void)
{
    char cmd[128];

    web_server_free(srv);
    srv = NULL;
    if (parked) {
        cr_expect(web_request_gone(parked));
        web_respond_text(parked, 200, "too late");
        parked = NULL;
    }
    if (later_req) {
        ev_timer_stop(loop, &later_timer);
        web_respond_text(later_req, 200, "late");
        later_req = NULL;
    }
    ev_async_stop(loop, &wake);
    ev_loop_destroy(loop);
    kube_obj_free(cache_pod);
    kube_obj_free(cache_vmi);
    metrics_free_all();
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(logsink);
    free(logged);
    logged = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 60);

/* Options every test starts from: this test's files, a quick reload
 * check, and timeouts long enough for TLS under valgrind; tests of the
 * timeouts shorten them. */
static web_server_opts_t test_opts(void)
{
    web_server_opts_t o = {
        .listen = "127.0.0.1:0",
        .cert_file = cert_path,
        .key_file = key_path,
        .ready = is_ready,
        .first_timeout = 10,
        .read_timeout = 10,
        .idle_timeout = 20,
        .handler_timeout = 10,
        .write_timeout = 10,
        .reload_interval = 0.1,
    };
    return o;
}

/* Starts srv with o and the test routes. */
static void start(const web_server_opts_t *o)
{
    char err[512] = "";

    srv = web_server_new(loop, o);
    cr_assert_not_null(srv);
    cr_assert_eq(
        web_server_route(srv, "POST", "/validate-eviction", WEB_ROUTE_JSON, on_eviction, NULL), 0);
    cr_assert_eq(web_server_route(srv, "POST", "/echo", 0, on_echo, NULL), 0);
    cr_assert_eq(web_server_route(srv, "GET", "/echo", 0, on_echo, NULL), 0);
    cr_assert_eq(web_server_route(srv, "GET", "/later", 0, on_later, NULL), 0);
    cr_assert_eq(web_server_route(srv, "GET", "/never", 0, on_never, NULL), 0);
    cr_assert_eq(web_server_route(srv, "GET", "/echo", 0, on_echo, NULL), -1, "duplicate route");
    cr_assert_eq(web_server_start(srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_gt(web_server_port(srv), 0);
}

static void start_default(void)
{
    web_server_opts_t o = test_opts();
    start(&o);
}

/* --- running clients -------------------------------------------------------- */

typedef void (*client_fn)(void *arg);

typedef struct runner {
    client_fn fn;
    void *arg;
    atomic_int done;
} runner_t;

static void *runner_main(void *p)
{
    runner_t *r = p;

    r->fn(r->arg);
    atomic_store(&r->done, 1);
    ev_async_send(loop, &wake);
    return NULL;
}

/* Runs fn(arg) in a client thread while this thread turns the loop. */
static void run_client(client_fn fn, void *arg)
{
    runner_t r = {.fn = fn, .arg = arg};
    pthread_t t;

    atomic_store(&r.done, 0);
    cr_assert_eq(pthread_create(&t, NULL, runner_main, &r), 0);
    while (!atomic_load(&r.done))
        ev_run(loop, EVRUN_ONCE);
    pthread_join(t, NULL);
}

static void on_run_for(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)revents;
    *(bool *)w->data = true;
}

/* Turns the loop for seconds. */
static void run_for(double seconds)
{
    ev_timer t;
    bool fired = false;

    ev_timer_init(&t, on_run_for, seconds, 0);
    t.data = &fired;
    ev_timer_start(loop, &t);
    while (!fired)
        ev_run(loop, EVRUN_ONCE);
}

/* --- the client side (runs in the client thread; no assertions) ------------ */

typedef struct tconn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char rbuf[1 << 16];
    size_t rlen;
} tconn_t;

typedef struct resp {
    int status;
    char head[4096];
    char body[1 << 15];
    size_t body_len;
} resp_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Connects to 127.0.0.1:port, with TLS when tls (no handshake when
 * handshake is false). Returns 0 or -1. */
static int tconn_open(tconn_t *t, int port, bool tls, bool handshake)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};

    memset(t, 0, offsetof(tconn_t, rbuf));
    t->rlen = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (t->fd < 0)
        return -1;
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    if (!tls || !handshake)
        return 0;
    t->ctx = SSL_CTX_new(TLS_client_method());
    t->ssl = SSL_new(t->ctx);
    SSL_set_fd(t->ssl, t->fd);
    return SSL_connect(t->ssl) == 1 ? 0 : -1;
}

static void tconn_close(tconn_t *t)
{
    if (t->ssl)
        SSL_free(t->ssl);
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    if (t->fd >= 0)
        close(t->fd);
    t->ssl = NULL;
    t->ctx = NULL;
    t->fd = -1;
    ERR_clear_error();
}

static int tconn_send(tconn_t *t, const char *data, size_t len)
{
    while (len) {
        ssize_t n =
            t->ssl ? SSL_write(t->ssl, data, (int)len) : send(t->fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into rbuf: >0, 0 at EOF, -1 on error or timeout. */
static int tconn_fill(tconn_t *t)
{
    size_t room = sizeof(t->rbuf) - t->rlen;
    ssize_t n;

    if (room == 0)
        return -1;
    n = t->ssl ? SSL_read(t->ssl, t->rbuf + t->rlen, (int)room)
               : recv(t->fd, t->rbuf + t->rlen, room, 0);
    if (n > 0)
        t->rlen += (size_t)n;
    if (n < 0 ||
        (t->ssl && n == 0 && SSL_get_error(t->ssl, 0) != SSL_ERROR_ZERO_RETURN && errno == EAGAIN))
        return -1;
    return n > 0 ? (int)n : 0;
}

/* Reads one final response (skipping 100 Continue). Returns 0 or -1. */
static int tconn_response(tconn_t *t, resp_t *r)
{
    for (;;) {
        char *end = memmem(t->rbuf, t->rlen, "\r\n\r\n", 4);
        if (!end) {
            if (tconn_fill(t) <= 0)
                return -1;
            continue;
        }
        size_t hlen = (size_t)(end - t->rbuf) + 4;
        memset(r, 0, sizeof(*r));
        snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, t->rbuf);
        r->status = atoi(t->rbuf + 9);
        const char *cl = strcasestr(r->head, "\r\nContent-Length:");
        size_t blen = cl ? strtoul(cl + 17, NULL, 10) : 0;
        while (t->rlen < hlen + blen)
            if (tconn_fill(t) <= 0)
                return -1;
        r->body_len = blen < sizeof(r->body) ? blen : sizeof(r->body) - 1;
        memcpy(r->body, t->rbuf + hlen, r->body_len);
        memmove(t->rbuf, t->rbuf + hlen + blen, t->rlen - hlen - blen);
        t->rlen -= hlen + blen;
        if (r->status != 100)
            return 0;
    }
}

/* Whether the server closes the connection within 5 s (TLS close_notify,
 * EOF or reset). */
static bool tconn_closed(tconn_t *t)
{
    char c;
    ssize_t n;

    if (t->ssl) {
        int r = SSL_read(t->ssl, &c, 1);
        int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        ERR_clear_error();
        return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL;
    }
    n = recv(t->fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* The serial number of the server's certificate, or -1. */
static long tconn_serial(tconn_t *t)
{
    X509 *x = t->ssl ? SSL_get1_peer_certificate(t->ssl) : NULL;
    long serial = x ? ASN1_INTEGER_get(X509_get0_serialNumber(x)) : -1;
    X509_free(x);
    return serial;
}

/* One connection, requests sent in turn (or all at once), responses read. */
typedef struct exchange {
    int port;
    bool plain;
    bool pipeline;
    const char *reqs[4];
    size_t lens[4]; /* 0: strlen */
    int nreqs;
    bool check_close;
    /* results */
    int opened;
    resp_t resps[4];
    int nresps;
    bool closed;
    long serial;
} exchange_t;

static void do_exchange(void *arg)
{
    exchange_t *x = arg;
    tconn_t *t = malloc(sizeof(*t));

    x->opened = tconn_open(t, x->port, !x->plain, true) == 0;
    if (x->opened) {
        x->serial = tconn_serial(t);
        for (int i = 0; i < x->nreqs; i++) {
            size_t len = x->lens[i] ? x->lens[i] : strlen(x->reqs[i]);
            if (tconn_send(t, x->reqs[i], len) < 0)
                break;
            if (x->pipeline && i + 1 < x->nreqs)
                continue;
            while (x->nresps <= i && tconn_response(t, &x->resps[x->nresps]) == 0)
                x->nresps++;
        }
        if (x->check_close)
            x->closed = tconn_closed(t);
    }
    tconn_close(t);
    free(t);
}

/* One request on a fresh TLS connection; the response. */
static resp_t request1(const char *req, bool check_close, bool *closed)
{
    exchange_t *x = calloc(1, sizeof(*x));
    resp_t r;

    x->port = web_server_port(srv);
    x->reqs[0] = req;
    x->nreqs = 1;
    x->check_close = check_close;
    run_client(do_exchange, x);
    cr_assert(x->opened, "cannot connect");
    cr_assert_eq(x->nresps, 1, "no response to %.60s", req);
    r = x->resps[0];
    if (closed)
        *closed = x->closed;
    free(x);
    return r;
}

static resp_t get(const char *path)
{
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    return request1(req, false, NULL);
}

/* A POST of body with a content type; the caller frees the result. */
static char *post(const char *path, const char *ctype, const char *body)
{
    char *req;
    cr_assert(asprintf(&req,
                       "POST %s HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nContent-Type: %s\r\n"
                       "Content-Length: %zu\r\nAccept: application/json, */*\r\n\r\n%s",
                       path, ctype, strlen(body), body) > 0);
    return req;
}

static char *read_fixture(const char *name)
{
    char path[256];
    FILE *f;
    char *data = calloc(1, 1 << 16);

    snprintf(path, sizeof(path), "unit/testdata/admission/%s", name);
    f = fopen(path, "rb");
    cr_assert_not_null(f);
    cr_assert_gt(fread(data, 1, (1 << 16) - 1, f), 0);
    fclose(f);
    data[strcspn(data, "\n")] = '\0';
    return data;
}

static const char *log_text(void)
{
    fflush(logsink);
    return logged ? logged : "";
}

/* Occurrences of needle in the log so far. */
static int log_count(const char *needle)
{
    int n = 0;
    for (const char *p = log_text(); (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static double metric(const char *sample, const char *const *labels)
{
    double v = -1;
    if (metrics_get(sample, labels, &v) < 0)
        return -1;
    return v;
}

/* --- routes ------------------------------------------------------------------ */

Test(server, healthz_readyz_and_metrics)
{
    start_default();
    resp_t r = get("/healthz");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "ok\n");
    cr_expect(strstr(r.head, "Connection: keep-alive") != NULL);

    r = get("/readyz");
    cr_expect_eq(r.status, 503);
    cr_expect_str_eq(r.body, "not ready\n");
    atomic_store(&ready_flag, 1);
    r = get("/readyz");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "ok\n");
    atomic_store(&ready_flag, 7); /* ready, with a note */
    r = get("/readyz");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "ok\nwarning: 7\n");
    atomic_store(&ready_flag, 1);

    r = get("/metrics");
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.head, "Content-Type: text/plain; version=0.0.4") != NULL, "%s", r.head);
    cr_expect(strstr(r.body, "# TYPE vmdrain_webhook_request_duration_seconds histogram") != NULL,
              "%s", r.body);
    /* probes are not webhook requests */
    cr_expect_eq(metric("webhook_request_duration_seconds_count", NULL), 0);
}

Test(server, eviction_roundtrip)
{
    start_default();
    char *body = read_fixture("drain.json");
    char *req = post("/validate-eviction", "application/json", body);
    resp_t r = request1(req, false, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.head, "Content-Type: application/json") != NULL);
    cr_expect_str_eq(r.body,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                     "\"response\":{\"uid\":\"6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13\","
                     "\"allowed\":false,\"status\":{\"code\":429,\"message\":\"Eviction triggered "
                     "evacuation of VMI default/vm-a: migration queued\","
                     "\"reason\":\"TooManyRequests\"}}}");
    cr_expect_eq(metric("evictions_total", (const char *const[]){"migrate"}), 1);
    cr_expect_eq(metric("webhook_request_duration_seconds_count", NULL), 1);
    free(req);
    free(body);

    /* charset parameters are fine */
    body = read_fixture("drain-grace-period.json");
    req = post("/validate-eviction", "Application/JSON; charset=utf-8", body);
    r = request1(req, false, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "\"allowed\":true") != NULL, "%s", r.body);
    cr_expect_eq(metric("evictions_total", (const char *const[]){"no_pod"}), 1);
    free(req);
    free(body);
}

Test(server, wrong_type_path_method_and_malformed_json)
{
    start_default();
    char *body = read_fixture("drain.json");
    char *req = post("/validate-eviction", "text/plain", body);
    resp_t r = request1(req, false, NULL);
    cr_expect_eq(r.status, 415);
    cr_expect_str_eq(r.body, "content type must be application/json\n");
    free(req);

    r = get("/nope");
    cr_expect_eq(r.status, 404);
    r = get("/validate-eviction");
    cr_expect_eq(r.status, 405);
    cr_expect(strstr(r.head, "Allow: POST\r\n") != NULL, "%s", r.head);

    req = post("/validate-eviction", "application/json", "{\"apiVersion\":");
    r = request1(req, false, NULL);
    cr_expect_eq(r.status, 400);
    cr_expect(strstr(r.body, "body: invalid JSON") == r.body, "%s", r.body);
    free(req);

    req = post("/validate-eviction", "application/json", "{\"kind\":\"AdmissionReview\"}");
    r = request1(req, false, NULL);
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(r.body, "apiVersion: missing (want \"admission.k8s.io/v1\")\n");
    free(req);
    free(body);
    /* every one of those counted as a webhook request */
    cr_expect_eq(metric("webhook_request_duration_seconds_count", NULL), 5);
}

Test(server, request_parts_reach_the_handler)
{
    start_default();
    char *req = post("/echo?x=1&y=2#frag", "text/plain", "hello");
    resp_t r = request1(req, false, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "POST /echo ?x=1&y=2 ct=text/plain len=5 gone=0 body=hello\n");
    free(req);

    /* absolute-form target, chunked body */
    r = request1("POST https://127.0.0.1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                 "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                 false, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "POST /echo ? ct= len=5 gone=0 body=abcde\n");
}

Test(server, malformed_http_gets_400_and_close)
{
    start_default();
    bool closed = false;
    resp_t r = request1("GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", true, &closed);
    cr_expect_eq(r.status, 400);
    cr_expect(strstr(r.head, "Connection: close") != NULL);
    cr_expect(closed);

    r = request1("BREW /pot HTTP/1.1\r\n\r\n", true, &closed);
    cr_expect_eq(r.status, 400);
    r = request1("GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", true,
                 &closed);
    cr_expect_eq(r.status, 400);
    r = request1("GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", true, &closed);
    cr_expect_eq(r.status, 400);
    cr_expect_str_eq(r.body, "protocol upgrade not supported\n");
}

/* --- limits -------------------------------------------------------------------- */

Test(server, body_over_the_cap_gets_413)
{
    web_server_opts_t o = test_opts();
    o.max_body = 1024;
    start(&o);
    bool closed = false;
    resp_t r = request1("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", true,
                        &closed);
    cr_expect_eq(r.status, 413);
    cr_expect(closed);

    /* a chunked body that grows past the cap, sent in full */
    char *big = malloc(4096 + 256);
    int n = sprintf(big, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "800\r\n");
    memset(big + n, 'a', 2048);
    strcpy(big + n + 2048, "\r\n0\r\n\r\n");
    r = request1(big, true, &closed);
    cr_expect_eq(r.status, 413);
    cr_expect(closed);

    /* exactly the cap is fine */
    char *exact = malloc(1025);
    memset(exact, 'b', 1024);
    exact[1024] = '\0';
    char *req = post("/echo", "text/plain", exact);
    r = request1(req, false, NULL);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "len=1024") != NULL, "%s", r.body);
    free(req);
    free(exact);
    free(big);
}

Test(server, head_over_the_cap_gets_431)
{
    start_default();
    char *req = malloc(40000);
    int n = sprintf(req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', 20000);
    strcpy(req + n + 20000, "\r\n\r\n");
    bool closed = false;
    resp_t r = request1(req, true, &closed);
    cr_expect_eq(r.status, 431);
    cr_expect(closed);

    /* many small headers add up too */
    n = sprintf(req, "GET /healthz HTTP/1.1\r\n");
    for (int i = 0; i < 1200; i++)
        n += sprintf(req + n, "X-H%d: 0123456789\r\n", i);
    strcpy(req + n, "\r\n");
    r = request1(req, true, &closed);
    cr_expect_eq(r.status, 431);
    /* and a long target */
    n = sprintf(req, "GET /");
    memset(req + n, 'p', 17000);
    strcpy(req + n + 17000, " HTTP/1.1\r\n\r\n");
    r = request1(req, true, &closed);
    cr_expect_eq(r.status, 431);
    free(req);
}

/* Connects and sends prefix (may be NULL), then waits for the server to
 * close; records how long that took. */
typedef struct slow {
    int port;
    bool handshake;
    const char *prefix;
    bool closed;
    double elapsed;
} slow_t;

static void do_slow(void *arg)
{
    slow_t *s = arg;
    tconn_t *t = malloc(sizeof(*t));
    double t0 = now_s();

    if (tconn_open(t, s->port, true, s->handshake) == 0) {
        if (s->prefix)
            tconn_send(t, s->prefix, strlen(s->prefix));
        s->closed = tconn_closed(t);
        s->elapsed = now_s() - t0;
    }
    tconn_close(t);
    free(t);
}

Test(server, slow_clients_are_cut_off)
{
    web_server_opts_t o = test_opts();
    o.first_timeout = 2;
    o.read_timeout = 2;
    start(&o);
    slow_t s = {.port = web_server_port(srv)};
    run_client(do_slow, &s);
    cr_expect(s.closed, "silent client not closed");
    cr_expect_geq(s.elapsed, 1.9);
    cr_expect_lt(s.elapsed, 9.0);

    /* handshake done, half a request head */
    slow_t h = {.port = web_server_port(srv),
                .handshake = true,
                .prefix = "GET /healthz HTTP/1.1\r\nHost: x\r\n"};
    run_client(do_slow, &h);
    cr_expect(h.closed, "slow head not closed");
    cr_expect_geq(h.elapsed, 1.9);
    cr_expect_lt(h.elapsed, 9.0);
    cr_expect_eq(web_server_conns(srv), 0);
}

/* Holds n connections to port (TLS begun or not, prefix sent on each),
 * then asks /healthz on a new TLS connection and on the plain listener,
 * and looks whether the first and the last held connections were closed. */
typedef struct flood {
    int port, plain_port, n;
    bool handshake;
    const char *prefix; /* NULL: nothing sent */
    /* results */
    int opened;
    int extra_status; /* 0: the new connection was refused */
    int plain_status;
    bool first_closed, last_closed;
} flood_t;

/* Whether the server closed t within ms milliseconds. */
static bool tconn_closed_within(tconn_t *t, int ms)
{
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1 && tconn_closed(t);
}

/* The status of GET /healthz on a new connection, 0 when none came. */
static int healthz_status(int port, bool tls)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    tconn_t *t = malloc(sizeof(*t));
    resp_t *r = calloc(1, sizeof(*r));
    int status = 0;

    if (tconn_open(t, port, tls, true) == 0 && tconn_send(t, req, sizeof(req) - 1) == 0 &&
        tconn_response(t, r) == 0)
        status = r->status;
    tconn_close(t);
    free(r);
    free(t);
    return status;
}

static void do_flood(void *arg)
{
    flood_t *x = arg;
    tconn_t *t = calloc((size_t)x->n, sizeof(tconn_t));

    for (int i = 0; i < x->n; i++) {
        x->opened += tconn_open(&t[i], x->port, true, x->handshake) == 0;
        if (x->prefix)
            tconn_send(&t[i], x->prefix, strlen(x->prefix));
    }
    usleep(200 * 1000); /* the server accepts and reads them all */
    x->extra_status = healthz_status(x->port, true);
    if (x->plain_port > 0)
        x->plain_status = healthz_status(x->plain_port, false);
    x->first_closed = tconn_closed_within(&t[0], 500);
    x->last_closed = tconn_closed_within(&t[x->n - 1], 200);
    for (int i = 0; i < x->n; i++)
        tconn_close(&t[i]);
    free(t);
}

static const char half_head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";

Test(server, busy_connections_beyond_the_limit_are_refused_on_that_listener_only)
{
    web_server_opts_t o = test_opts();
    o.plain_listen = "127.0.0.1:0";
    o.max_conns = 2;
    start(&o);
    flood_t m = {.port = web_server_port(srv),
                 .plain_port = web_server_plain_port(srv),
                 .n = 2,
                 .handshake = true,
                 .prefix = half_head};
    run_client(do_flood, &m);
    cr_expect_eq(m.opened, 2);
    cr_expect_eq(m.extra_status, 0, "a third webhook connection was served");
    cr_expect_eq(m.plain_status, 200, "the plain listener shares the webhook's budget");
    cr_expect_not(m.first_closed);
    cr_expect(strstr(log_text(), "connection limit reached") != NULL);
}

Test(server, connections_from_one_address_are_capped)
{
    web_server_opts_t o = test_opts();
    o.max_conns_per_addr = 2;
    start(&o);
    flood_t m = {.port = web_server_port(srv), .n = 2, .handshake = true, .prefix = half_head};
    run_client(do_flood, &m);
    cr_expect_eq(m.opened, 2);
    cr_expect_eq(m.extra_status, 0, "a third connection from 127.0.0.1 was served");
    cr_expect_not(m.first_closed);
}

Test(server, the_oldest_idle_connection_makes_room)
{
    web_server_opts_t o = test_opts();
    o.max_conns = 3;
    start(&o);
    /* idle after the handshake, then never begun: TCP only */
    for (int handshake = 1; handshake >= 0; handshake--) {
        flood_t m = {.port = web_server_port(srv), .n = 3, .handshake = handshake};
        run_client(do_flood, &m);
        cr_expect_eq(m.opened, 3);
        cr_expect_eq(m.extra_status, 200, "handshake %d: the new connection was refused",
                     handshake);
        cr_expect(m.first_closed, "handshake %d: the oldest idle one stays", handshake);
        cr_expect_not(m.last_closed, "handshake %d: a newer one was closed", handshake);
        for (int i = 0; i < 100 && web_server_conns(srv) > 0; i++)
            run_for(0.01);
    }
    /* per address too */
    web_server_free(srv);
    o.max_conns = 0;
    o.max_conns_per_addr = 3;
    start(&o);
    flood_t m = {.port = web_server_port(srv), .n = 3, .handshake = true};
    run_client(do_flood, &m);
    cr_expect_eq(m.extra_status, 200);
    cr_expect(m.first_closed);
}

Test(server, a_connection_must_begin_its_first_request_soon)
{
    web_server_opts_t o = test_opts();
    o.first_timeout = 0.3;
    start(&o);
    /* TCP only, then TLS done: both silent */
    for (int handshake = 0; handshake <= 1; handshake++) {
        slow_t s = {.port = web_server_port(srv), .handshake = handshake};
        run_client(do_slow, &s);
        cr_expect(s.closed, "handshake %d: silent client not closed", handshake);
        cr_expect_geq(s.elapsed, 0.25);
        cr_expect_lt(s.elapsed, 3.0, "handshake %d: closed after %.2f s", handshake, s.elapsed);
    }
}

/* --- connections ---------------------------------------------------------------- */

Test(server, keep_alive_serves_requests_in_turn_and_pipelined)
{
    start_default();
    char *body = read_fixture("drain.json");
    char *ev = post("/validate-eviction", "application/json", body);
    exchange_t *x = calloc(1, sizeof(*x));
    x->port = web_server_port(srv);
    x->reqs[0] = ev;
    x->reqs[1] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[2] = ev;
    x->nreqs = 3;
    run_client(do_exchange, x);
    cr_assert_eq(x->nresps, 3);
    cr_expect_eq(x->resps[0].status, 200);
    cr_expect_eq(x->resps[1].status, 200);
    cr_expect_eq(x->resps[2].status, 200);
    cr_expect(strstr(x->resps[2].body, "migration queued") != NULL);

    /* pipelined: three requests in one write, three responses in order */
    memset(x, 0, sizeof(*x));
    x->port = web_server_port(srv);
    x->pipeline = true;
    x->reqs[0] = "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[1] = ev;
    x->reqs[2] = "GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    x->nreqs = 3;
    x->check_close = true;
    run_client(do_exchange, x);
    cr_assert_eq(x->nresps, 3);
    cr_expect(strstr(x->resps[0].body, "?n=1") != NULL);
    cr_expect(strstr(x->resps[1].body, "migration queued") != NULL);
    cr_expect(strstr(x->resps[2].body, "?n=3") != NULL);
    cr_expect(strstr(x->resps[2].head, "Connection: close") != NULL);
    cr_expect(x->closed);
    free(x);
    free(ev);
    free(body);
}

Test(server, http10_closes_after_the_response)
{
    start_default();
    bool closed = false;
    resp_t r = request1("GET /healthz HTTP/1.0\r\n\r\n", true, &closed);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.head, "Connection: close") != NULL);
    cr_expect(closed);
}

Test(server, async_answer_and_handler_timeout)
{
    web_server_opts_t o = test_opts();
    o.handler_timeout = 1;
    start(&o);
    resp_t r = get("/later");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "later\n");

    r = get("/never");
    cr_expect_eq(r.status, 503);
    cr_expect_str_eq(r.body, "the handler did not answer in time\n");
    cr_assert_not_null(parked);
    cr_expect(web_request_gone(parked));
    web_respond_text(parked, 200, "too late"); /* frees it; nothing is sent */
    parked = NULL;
    cr_expect(strstr(log_text(), "handler did not answer in time") != NULL);
}

/* Sends one request and leaves without reading the answer. */
static void do_send_only(void *arg)
{
    exchange_t *x = arg;
    tconn_t *t = malloc(sizeof(*t));

    x->opened = tconn_open(t, x->port, true, true) == 0;
    if (x->opened)
        tconn_send(t, x->reqs[0], strlen(x->reqs[0]));
    tconn_close(t);
    free(t);
}

Test(server, free_with_a_request_pending_detaches_it)
{
    start_default();
    exchange_t *x = calloc(1, sizeof(*x));
    x->port = web_server_port(srv);
    x->reqs[0] = "GET /never HTTP/1.1\r\nHost: x\r\n\r\n";
    run_client(do_send_only, x);
    cr_expect(x->opened);
    free(x);
    for (int i = 0; i < 200 && !parked; i++)
        run_for(0.01);
    cr_assert_not_null(parked);
    cr_expect_not(web_request_gone(parked));
    cr_expect_eq(web_server_conns(srv), 1);
    web_server_free(srv);
    srv = NULL;
    cr_expect(web_request_gone(parked));
    web_respond(parked, 200, NULL, "x", 1); /* only frees it */
    parked = NULL;
}

Test(server, plain_listener_serves_probes_and_metrics_only)
{
    web_server_opts_t o = test_opts();
    o.plain_listen = "127.0.0.1:0";
    start(&o);
    cr_assert_gt(web_server_plain_port(srv), 0);
    cr_expect_neq(web_server_plain_port(srv), web_server_port(srv));
    char *body = read_fixture("drain.json");
    char *ev = post("/validate-eviction", "application/json", body);
    exchange_t *x = calloc(1, sizeof(*x));
    x->port = web_server_plain_port(srv);
    x->plain = true;
    x->reqs[0] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[1] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[2] = ev;
    x->nreqs = 3;
    run_client(do_exchange, x);
    cr_assert_eq(x->nresps, 3);
    cr_expect_eq(x->resps[0].status, 200);
    cr_expect(strstr(x->resps[0].body, "vmdrain_webhook_request_duration_seconds") != NULL);
    cr_expect_eq(x->resps[1].status, 200);
    cr_expect_eq(x->resps[2].status, 404);
    free(x);
    free(ev);
    free(body);
}

/* Without a certificate (no webhook) the plain listener alone serves
 * /metrics and the probes; a half-given TLS pair is still refused. */
Test(server, metrics_and_probes_without_a_certificate)
{
    char err[512] = "";
    web_server_opts_t o = {.plain_listen = "127.0.0.1:0", .ready = is_ready};

    srv = web_server_new(loop, &o);
    cr_assert_not_null(srv);
    cr_assert_eq(web_server_start(srv, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(web_server_port(srv), -1, "no TLS listener without a certificate");
    cr_assert_gt(web_server_plain_port(srv), 0);
    exchange_t *x = calloc(1, sizeof(*x));
    x->port = web_server_plain_port(srv);
    x->plain = true;
    x->reqs[0] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[1] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[2] = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";
    x->nreqs = 3;
    run_client(do_exchange, x);
    cr_assert_eq(x->nresps, 3);
    cr_expect_eq(x->resps[0].status, 200);
    cr_expect(strstr(x->resps[0].body, "# TYPE") != NULL);
    cr_expect_eq(x->resps[1].status, 200);
    cr_expect_eq(x->resps[2].status, 503, "not ready yet");
    free(x);
    web_server_free(srv);

    o.cert_file = "tls.crt"; /* a pair and an address, or neither */
    srv = web_server_new(loop, &o);
    cr_expect_eq(web_server_start(srv, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "webhook: listen, cert_file and key_file are required");
}

Test(server, start_errors_name_the_address_or_file)
{
    char err[512] = "";
    web_server_opts_t o = test_opts();

    o.listen = "127.0.0.1:99999";
    srv = web_server_new(loop, &o);
    cr_expect_eq(web_server_start(srv, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "listen 127.0.0.1:99999: want host:port with a port from 0 to 65535");
    cr_expect_eq(web_server_port(srv), -1);
    web_server_free(srv);

    o = test_opts();
    o.cert_file = "/nonexistent/tls.crt";
    srv = web_server_new(loop, &o);
    cr_expect_eq(web_server_start(srv, err, sizeof(err)), -1);
    cr_expect(strstr(err, "/nonexistent/tls.crt") != NULL, "%s", err);
    web_server_free(srv);

    o = test_opts();
    o.key_file = cert_path; /* a certificate is no key */
    srv = web_server_new(loop, &o);
    cr_expect_eq(web_server_start(srv, err, sizeof(err)), -1);
    cr_expect(strstr(err, "key_file") == err, "%s", err);
    web_server_free(srv);
    srv = NULL;

    /* the port is taken */
    start_default();
    char taken[64];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", web_server_port(srv));
    o = test_opts();
    o.listen = taken;
    web_server_t *second = web_server_new(loop, &o);
    cr_expect_eq(web_server_start(second, err, sizeof(err)), -1);
    char want[128];
    snprintf(want, sizeof(want), "listen %s: Address already in use", taken);
    cr_expect_str_eq(err, want);
    web_server_free(second);

    /* a missing required option */
    web_server_opts_t none = {0};
    second = web_server_new(loop, &none);
    cr_expect_eq(web_server_start(second, err, sizeof(err)), -1);
    web_server_free(second);
    web_server_free(NULL);
}

/* --- certificate reload ------------------------------------------------------------ */

/* A client that keeps one connection across the server's reloads: phase
 * by phase, driven by the test thread. */
typedef struct reload {
    int port;
    atomic_int phase; /* set by the client when a step is done */
    atomic_int go;    /* set by the test to start the next step */
    long serial_a, serial_a_later, serial_b, serial_c;
    int status_a_later;
} reload_t;

static void wait_go(reload_t *r, int v)
{
    while (atomic_load(&r->go) < v)
        usleep(1000);
}

static void step_done(reload_t *r, int v)
{
    atomic_store(&r->phase, v);
    ev_async_send(loop, &wake);
}

static void do_reload(void *arg)
{
    reload_t *r = arg;
    tconn_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    resp_t *resp = malloc(sizeof(*resp));
    const char *hz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    if (tconn_open(a, r->port, true, true) == 0)
        r->serial_a = tconn_serial(a);
    step_done(r, 1);
    wait_go(r, 1);
    /* the old connection still works after the swap */
    if (tconn_send(a, hz, strlen(hz)) == 0 && tconn_response(a, resp) == 0)
        r->status_a_later = resp->status;
    r->serial_a_later = tconn_serial(a);
    if (tconn_open(b, r->port, true, true) == 0)
        r->serial_b = tconn_serial(b);
    tconn_close(b);
    step_done(r, 2);
    wait_go(r, 2);
    if (tconn_open(b, r->port, true, true) == 0)
        r->serial_c = tconn_serial(b);
    tconn_close(b);
    tconn_close(a);
    free(a);
    free(b);
    free(resp);
}

static void run_until_phase(reload_t *r, int v)
{
    while (atomic_load(&r->phase) < v)
        ev_run(loop, EVRUN_ONCE);
}

static void start_reload_client(reload_t *r, pthread_t *t, runner_t *run)
{
    run->fn = do_reload;
    run->arg = r;
    atomic_store(&run->done, 0);
    cr_assert_eq(pthread_create(t, NULL, runner_main, run), 0);
}

static void finish_reload_client(pthread_t t, runner_t *run)
{
    while (!atomic_load(&run->done))
        ev_run(loop, EVRUN_ONCE);
    pthread_join(t, NULL);
}

Test(server, cert_reload_from_replaced_files_keeps_old_on_bad_pair)
{
    start_default(); /* reload_interval 0.1 s */
    reload_t *r = calloc(1, sizeof(*r));
    runner_t run;
    pthread_t t;
    char tmp_cert[160], tmp_key[160], err[512] = "";

    r->port = web_server_port(srv);
    start_reload_client(r, &t, &run);
    run_until_phase(r, 1);

    /* a new pair, renamed into place as a rotation tool would */
    snprintf(tmp_cert, sizeof(tmp_cert), "%s/new.crt", dir);
    snprintf(tmp_key, sizeof(tmp_key), "%s/new.key", dir);
    cr_assert_eq(testcert_write(tmp_cert, tmp_key, 2), 0);
    cr_assert_eq(rename(tmp_key, key_path), 0);
    cr_assert_eq(rename(tmp_cert, cert_path), 0);
    run_for(0.4);
    cr_expect_geq(log_count("certificate reloaded"), 1, "%s", log_text());
    atomic_store(&r->go, 1);
    run_until_phase(r, 2);

    /* a broken pair: a certificate for another key */
    int failures = log_count("certificate reload failed");
    cr_assert_eq(testcert_write_cert_only(tmp_cert, 3), 0);
    cr_assert_eq(rename(tmp_cert, cert_path), 0);
    run_for(0.4);
    cr_expect_eq(log_count("certificate reload failed"), failures + 1, "%s", log_text());
    /* and it is not retried while the files stay as they are */
    run_for(0.3);
    cr_expect_eq(log_count("certificate reload failed"), failures + 1);
    cr_expect_eq(web_server_reload_now(srv, err, sizeof(err)), -1);
    cr_expect(strstr(err, "does not match") != NULL, "%s", err);
    atomic_store(&r->go, 2);
    finish_reload_client(t, &run);

    cr_expect_eq(r->serial_a, 1);
    cr_expect_eq(r->status_a_later, 200);
    cr_expect_eq(r->serial_a_later, 1);
    cr_expect_eq(r->serial_b, 2);
    cr_expect_eq(r->serial_c, 2);
    free(r);
}

/* Lays out dir/tls.crt -> ..data/tls.crt, ..data -> ..vN as a Kubernetes
 * Secret volume does, with a fresh pair of serial n in ..vN. */
static void secret_volume_swap(int n)
{
    char ver[160], c[200], k[200], tmp[160], data[160];

    snprintf(ver, sizeof(ver), "%s/..v%d", dir, n);
    cr_assert_eq(mkdir(ver, 0700), 0);
    snprintf(c, sizeof(c), "%s/tls.crt", ver);
    snprintf(k, sizeof(k), "%s/tls.key", ver);
    cr_assert_eq(testcert_write(c, k, n), 0);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
    snprintf(data, sizeof(data), "%s/..data", dir);
    snprintf(c, sizeof(c), "..v%d", n);
    cr_assert_eq(symlink(c, tmp), 0);
    cr_assert_eq(rename(tmp, data), 0);
}

Test(server, cert_reload_through_a_secret_volume_symlink_swap)
{
    char link_cert[160], link_key[160];

    unlink(cert_path);
    unlink(key_path);
    secret_volume_swap(10);
    snprintf(link_cert, sizeof(link_cert), "%s/tls.crt", dir);
    snprintf(link_key, sizeof(link_key), "%s/tls.key", dir);
    cr_assert_eq(symlink("..data/tls.crt", link_cert), 0);
    cr_assert_eq(symlink("..data/tls.key", link_key), 0);
    start_default();

    reload_t *r = calloc(1, sizeof(*r));
    runner_t run;
    pthread_t t;
    r->port = web_server_port(srv);
    start_reload_client(r, &t, &run);
    run_until_phase(r, 1);
    secret_volume_swap(11);
    run_for(0.4);
    atomic_store(&r->go, 1);
    run_until_phase(r, 2);
    atomic_store(&r->go, 2);
    finish_reload_client(t, &run);
    cr_expect_eq(r->serial_a, 10);
    cr_expect_eq(r->serial_a_later, 10);
    cr_expect_eq(r->status_a_later, 200);
    cr_expect_eq(r->serial_b, 11);
    cr_expect_eq(r->serial_c, 11);
    cr_expect_eq(log_count("certificate reload failed"), 0, "%s", log_text());
    free(r);
}

/* --- garbage ------------------------------------------------------------------------ */

typedef struct garbage {
    int port;
    int plain_port;
    int rounds_closed;
} garbage_t;

/* Reads and drops whatever comes until the server closes: true, or false
 * after a 5 s silence. */
static bool drained_to_close(tconn_t *t)
{
    char tmp[4096];

    for (;;) {
        if (t->ssl) {
            int r = SSL_read(t->ssl, tmp, sizeof(tmp));
            if (r > 0)
                continue;
            int e = SSL_get_error(t->ssl, r);
            ERR_clear_error();
            return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
        }
        ssize_t n = recv(t->fd, tmp, sizeof(tmp), 0);
        if (n > 0)
            continue;
        return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
}

/* Sends random bytes: raw on the TLS port (no handshake), inside TLS, and
 * on the plain port; counts the connections the server closed. */
static void do_garbage(void *arg)
{
    garbage_t *g = arg;
    tconn_t *t = malloc(sizeof(*t));
    char junk[3000];
    unsigned seed = 7;

    for (int round = 0; round < 9; round++) {
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (char)(rand_r(&seed) & 0xff);
        int mode = round % 3;
        int port = mode == 2 ? g->plain_port : g->port;
        if (tconn_open(t, port, mode != 2, mode == 1) == 0) {
            tconn_send(t, junk, sizeof(junk));
            g->rounds_closed += drained_to_close(t);
        }
        tconn_close(t);
    }
    free(t);
}

Test(server, garbage_bytes_never_crash_the_server)
{
    web_server_opts_t o = test_opts();
    o.plain_listen = "127.0.0.1:0";
    start(&o);
    garbage_t g = {.port = web_server_port(srv), .plain_port = web_server_plain_port(srv)};
    run_client(do_garbage, &g);
    cr_expect_eq(g.rounds_closed, 9);
    run_for(0.1);
    cr_expect_eq(web_server_conns(srv), 0);
    /* still serving */
    resp_t r = get("/healthz");
    cr_expect_eq(r.status, 200);
}

/* --- a real client: libcurl ---------------------------------------------------------- */

typedef struct curl_run {
    char url[128];
    const char *body;
    long codes[2];
    long new_conns[2];
    char out[2][4096];
    size_t out_len[2];
    int err;
    char errbuf[CURL_ERROR_SIZE];
    const char *client_cert, *client_key; /* NULL: no client certificate */
} curl_run_t;

static size_t curl_sink(char *p, size_t size, size_t n, void *ud)
{
    curl_run_t *c = ud;
    int i = c->codes[0] ? 1 : 0;
    size_t len = size * n, room = sizeof(c->out[i]) - 1 - c->out_len[i];
    memcpy(c->out[i] + c->out_len[i], p, len < room ? len : room);
    c->out_len[i] += len < room ? len : room;
    return len;
}

/* Two POSTs on one easy handle, verifying the server's certificate. */
static void do_curl(void *arg)
{
    curl_run_t *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");

    hdr = curl_slist_append(hdr, "Expect: 100-continue");

    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_CAINFO, cert_path);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
    /* without the server's 100 Continue, curl would wait past the timeout */
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    if (c->client_cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->client_key);
    }
    for (int i = 0; i < 2; i++) {
        if (curl_easy_perform(h) != CURLE_OK) {
            c->err++;
            continue;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->codes[i]);
        curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &c->new_conns[i]);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

Test(server, libcurl_posts_with_expect_continue_over_one_connection)
{
    start_default();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl_run_t *c = calloc(1, sizeof(*c));
    char *body = read_fixture("drain-grace-period.json");
    snprintf(c->url, sizeof(c->url), "https://127.0.0.1:%d/validate-eviction",
             web_server_port(srv));
    c->body = body;
    run_client(do_curl, c);
    cr_expect_eq(c->err, 0, "%s", c->errbuf);
    cr_expect_eq(c->codes[0], 200);
    cr_expect_eq(c->codes[1], 200);
    cr_expect_eq(c->new_conns[0], 1);
    cr_expect_eq(c->new_conns[1], 0, "second request did not reuse the connection");
    cr_expect(strstr(c->out[0], "\"uid\":\"0b1d9e4f-3a62-4f7c-9d15-7e8a2c4b6f01\"") != NULL, "%s",
              c->out[0]);
    free(body);
    free(c);
    curl_global_cleanup();
}

/* Posts twice with the client certificate pair named (NULL: none) and
 * returns how many of the two posts failed. */
static int post_as(const char *cert, const char *key, const char *body, long *code)
{
    curl_run_t *c = calloc(1, sizeof(*c));
    int err;

    snprintf(c->url, sizeof(c->url), "https://127.0.0.1:%d/validate-eviction",
             web_server_port(srv));
    c->body = body;
    c->client_cert = cert;
    c->client_key = key;
    run_client(do_curl, c);
    err = c->err;
    *code = c->codes[0];
    free(c);
    return err;
}

Test(server, a_client_ca_refuses_clients_without_a_certificate_it_signed)
{
    char ca[300], ca_key[300], other[300], other_key[300], err[512] = "";
    char *body = read_fixture("drain-grace-period.json");
    long code = 0;

    snprintf(ca, sizeof(ca), "%s/client.crt", dir);
    snprintf(ca_key, sizeof(ca_key), "%s/client.key", dir);
    snprintf(other, sizeof(other), "%s/other.crt", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    /* the client's own self-signed certificate is the CA that trusts it */
    cr_assert_eq(testcert_write(ca, ca_key, 7), 0);
    cr_assert_eq(testcert_write(other, other_key, 8), 0);
    web_server_opts_t o = test_opts();
    o.client_ca_file = ca;
    start(&o);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    cr_expect_eq(post_as(NULL, NULL, body, &code), 2, "no client certificate: refused");
    cr_expect_eq(
        metric("webhook_client_cert_refused_total", (const char *const[]){"no_certificate"}), 2);
    cr_expect_eq(post_as(other, other_key, body, &code), 2, "a certificate the CA did not sign");
    cr_expect_eq(
        metric("webhook_client_cert_refused_total", (const char *const[]){"bad_certificate"}), 2);
    cr_expect_eq(post_as(ca, ca_key, body, &code), 0, "the CA's client is served");
    cr_expect_eq(code, 200);
    fflush(logsink);
    cr_expect(strstr(logged, "client certificate refused") != NULL, "%s", logged);

    /* the CA file is reloaded with the pair: now the other client is trusted */
    cr_assert_eq(testcert_write(ca, ca_key, 9), 0);
    cr_assert_eq(web_server_reload_now(srv, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(post_as(ca, ca_key, body, &code), 0, "the new CA's client is served");
    cr_expect_eq(code, 200);
    free(body);
    curl_global_cleanup();
}

Test(server, a_client_ca_without_a_certificate_is_a_start_error)
{
    char ca[300], err[512] = "";
    FILE *f;

    snprintf(ca, sizeof(ca), "%s/empty.crt", dir);
    f = fopen(ca, "w");
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    web_server_opts_t o = test_opts();
    o.client_ca_file = ca;
    srv = web_server_new(loop, &o);
    cr_assert_not_null(srv);
    cr_expect_lt(web_server_start(srv, err, sizeof(err)), 0);
    cr_expect(strstr(err, "client_ca_file") != NULL && strstr(err, ca) != NULL, "%s", err);
    snprintf(ca, sizeof(ca), "%s/missing.crt", dir);
    web_server_free(srv);
    o.client_ca_file = ca;
    srv = web_server_new(loop, &o);
    cr_assert_not_null(srv);
    cr_expect_lt(web_server_start(srv, err, sizeof(err)), 0);
    cr_expect(strstr(err, "missing.crt") != NULL, "%s", err);
}

/* --- the socketless parsing path -------------------------------------------------- */

static int feed(const char *text, size_t chunk, buf_t *out)
{
    buf_reset(out);
    return web__parse_feed(srv, text, strlen(text), chunk, out);
}

Test(server, feed_parses_byte_by_byte_and_pipelined)
{
    web_server_opts_t o = test_opts();
    buf_t out;
    srv = web_server_new(loop, &o); /* never started: no sockets */
    cr_assert_eq(web_server_route(srv, "POST", "/echo", 0, on_echo, NULL), 0);
    buf_init(&out, 1 << 20);
    const char *two = "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /healthz HTTP/1.1\r\n\r\n";
    for (size_t chunk = 1; chunk < 8; chunk++) {
        cr_expect_eq(feed(two, chunk, &out), 2, "chunk %zu", chunk);
        cr_expect(strstr(out.data, "body=abc") != NULL);
        cr_expect(strstr(out.data, "\r\n\r\nok\n") != NULL);
    }
    cr_expect_eq(feed("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 0, &out), -1);
    cr_expect(strncmp(out.data, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out.data);
    cr_expect_eq(feed("GET /healthz HTTP/1.1\r\nHo", 0, &out), 0);
    cr_expect_eq(out.len, 0);
    cr_expect_eq(feed("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, &out), -1);
    cr_expect(strncmp(out.data, "HTTP/1.1 400 ", 13) == 0, "%s", out.data);
    cr_expect_eq(
        feed("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", 0, &out),
        1);
    cr_expect(strncmp(out.data, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 40) == 0, "%s",
              out.data);
    buf_free(&out);
}

/* A metrics guard that lets "Bearer good" through and records what it saw. */
static char guard_saw[128];
static int guard_calls;

static void test_guard(web_request_t *req, void *ud)
{
    (void)ud;
    guard_calls++;
    snprintf(guard_saw, sizeof(guard_saw), "%s", web_request_authorization(req));
    if (strcmp(web_request_authorization(req), "Bearer good") == 0)
        web_respond_metrics(req);
    else
        web_respond_headers(req, 401, NULL, "WWW-Authenticate: Bearer\r\n", "no\n", 3);
}

/* plain_tls: the second listener speaks TLS (and asks for no client
 * certificate even when the webhook's listener does); the metrics guard
 * sees the Authorization header and decides /metrics on both listeners,
 * while the probes stay open. */
Test(server, a_tls_metrics_listener_with_a_guard)
{
    char ca[300], ca_key[300];

    snprintf(ca, sizeof(ca), "%s/client.crt", dir);
    snprintf(ca_key, sizeof(ca_key), "%s/client.key", dir);
    cr_assert_eq(testcert_write(ca, ca_key, 7), 0);
    web_server_opts_t o = test_opts();
    o.plain_listen = "127.0.0.1:0";
    o.plain_tls = true;
    o.client_ca_file = ca;
    o.metrics_guard = test_guard;
    start(&o);

    exchange_t *x = calloc(1, sizeof(*x));
    x->port = web_server_plain_port(srv);
    x->reqs[0] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    x->reqs[1] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad\r\n\r\n";
    x->reqs[2] = "GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer good\r\n\r\n";
    x->reqs[3] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    x->nreqs = 4;
    run_client(do_exchange, x); /* TLS, no client certificate */
    cr_assert(x->opened, "TLS on the metrics listener without a client certificate");
    cr_assert_eq(x->nresps, 4);
    cr_expect_eq(x->resps[0].status, 401);
    cr_expect(strstr(x->resps[0].head, "WWW-Authenticate: Bearer") != NULL, "%s", x->resps[0].head);
    cr_expect_eq(x->resps[1].status, 401);
    cr_expect_eq(x->resps[2].status, 200);
    cr_expect(strstr(x->resps[2].body, "vmdrain_webhook_request_duration_seconds") != NULL);
    cr_expect_eq(x->resps[3].status, 200, "the probes need no token");
    cr_expect_eq(guard_calls, 3);
    cr_expect_str_eq(guard_saw, "Bearer good", "the value, leading spaces dropped");
    free(x);
    x = calloc(1, sizeof(*x));
    x->port = web_server_plain_port(srv);
    x->plain = true;
    x->reqs[0] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    x->nreqs = 1;
    run_client(do_exchange, x);
    cr_expect_eq(x->nresps, 0, "plain HTTP on the TLS metrics listener gets no HTTP answer");
    free(x);
}

/* plain_tls needs the certificate pair. */
Test(server, a_tls_metrics_listener_needs_the_pair)
{
    char err[512] = "";
    web_server_opts_t o = {.plain_listen = "127.0.0.1:0", .plain_tls = true};

    srv = web_server_new(loop, &o);
    cr_assert_not_null(srv);
    cr_expect_eq(web_server_start(srv, err, sizeof(err)), -1);
    cr_expect(strstr(err, "cert_file and key_file") != NULL, "%s", err);
}
