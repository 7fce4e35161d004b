/*
 * webhook_bench — latency of the eviction webhook over TLS on loopback.
 *
 * Starts the webhook server in this process, on its own thread with its
 * own libev loop, with a fresh self-signed certificate, and the
 * /validate-eviction handler the operator uses (decode, decide over a
 * small in-memory cache, encode). Then one client thread keeps CLIENTS
 * requests in flight with libcurl's multi interface (one kept-alive TLS
 * connection per transfer, certificate verified) until REQUESTS
 * AdmissionReviews were answered, and times each one. The connections are
 * opened first and timed apart. Prints p50, p99, max and the error count;
 * exits 1 when a request failed. Timing is printed, never asserted.
 *
 *   webhook_bench [requests [clients]]     (defaults 2000 16)
 */
#include "kube/decode.h"
#include "testcert.h"
#include "util/log.h"
#include "util/metrics.h"
#include "drain/eviction.h"
#include "web/admission.h"
#include "web/server.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256

/* --- the server side (its own thread and loop) --------------------------- */

static kube_obj_t *pod, *vmi;
static struct ev_loop *srv_loop;
static ev_async stop_async;
static atomic_int srv_port;
static char cert_path[128], key_path[128];

static const char review_fmt[] =
    "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{"
    "\"uid\":\"%08x-9b7d-4c52-8e1f-2d4a6b8c0e13\",\"kind\":{\"group\":\"policy\",\"version\":"
    "\"v1\",\"kind\":\"Eviction\"},\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":"
    "\"pods\"},\"subResource\":\"eviction\",\"requestKind\":{\"group\":\"policy\",\"version\":"
    "\"v1\",\"kind\":\"Eviction\"},\"requestResource\":{\"group\":\"\",\"version\":\"v1\","
    "\"resource\":\"pods\"},\"requestSubResource\":\"eviction\",\"name\":"
    "\"virt-launcher-vm-a-7xk2p\",\"namespace\":\"default\",\"operation\":\"CREATE\","
    "\"userInfo\":{\"username\":\"kubernetes-admin\",\"groups\":[\"system:masters\","
    "\"system:authenticated\"]},\"object\":{\"kind\":\"Eviction\",\"apiVersion\":\"policy/v1\","
    "\"metadata\":{\"name\":\"virt-launcher-vm-a-7xk2p\",\"namespace\":\"default\","
    "\"creationTimestamp\":null},\"deleteOptions\":{}},\"oldObject\":null,\"dryRun\":false,"
    "\"options\":{\"kind\":\"CreateOptions\",\"apiVersion\":\"meta.k8s.io/v1\"}}}";

static void take(void *ud, kube_obj_t *obj)
{
    *(kube_obj_t **)ud = obj;
}

static kube_obj_t *load(kube_kind_t kind, const char *item)
{
    kube_obj_t *obj = NULL;
    kube_decoder_cb_t cb = {.on_item = take};
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, &obj, 0);
    char body[2048];

    snprintf(body, sizeof(body), "{\"kind\":\"%s\",\"metadata\":{},\"items\":[%s]}",
             kube_kind_list_name(kind), item);
    if (!d || kube_decoder_feed(d, body, strlen(body)) < 0 || kube_decoder_finish(d) < 0 || !obj) {
        fprintf(stderr, "webhook_bench: cannot build the cache\n");
        exit(2);
    }
    kube_decoder_free(d);
    return obj;
}

/* /validate-eviction, as the operator answers it. */
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
    in.pod = strcmp(rq.name, pod->name) == 0 ? kube_obj_as_pod(pod) : NULL;
    in.pod_looked_up = true;
    in.vmi = kube_obj_as_vmi(vmi);
    drain_evict_req_t er = {.ns = rq.ns, .name = rq.name, .dry_run = rq.dry_run};
    drain_eviction_decide(&er, &in, &res);
    drain_eviction_count(&res);
    admission_response_t r = {
        .allowed = res.allowed, .code = res.code, .reason = res.reason, .message = res.message};
    admission_respond(req, rq.uid, &r);
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *server_main(void *arg)
{
    web_server_opts_t o = {.listen = "127.0.0.1:0", .cert_file = cert_path, .key_file = key_path};
    char err[512];
    web_server_t *s;

    (void)arg;
    s = web_server_new(srv_loop, &o);
    if (!s ||
        web_server_route(s, "POST", "/validate-eviction", WEB_ROUTE_JSON, on_eviction, NULL) < 0 ||
        web_server_start(s, err, sizeof(err)) < 0) {
        fprintf(stderr, "webhook_bench: server: %s\n", s ? err : "out of memory");
        atomic_store(&srv_port, -1);
        web_server_free(s);
        return NULL;
    }
    atomic_store(&srv_port, web_server_port(s));
    ev_run(srv_loop, 0);
    web_server_free(s);
    return NULL;
}

/* --- the clients: one thread, CLIENTS transfers in flight ------------------ */

typedef struct transfer {
    CURL *h;
    int req;   /* the request number in flight */
    double t0; /* when it was handed to curl */
    char body[2048];
    char out[4096];
    size_t out_len;
    char err[CURL_ERROR_SIZE];
} transfer_t;

typedef struct run {
    CURLM *multi;
    double *lat; /* seconds, per request number */
    int next;    /* the next request number to send */
    int requests;
    int done;
    int errors;
    char first_err[512];
} run_t;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    transfer_t *t = ud;
    size_t len = size * n, room = sizeof(t->out) - 1 - t->out_len;

    memcpy(t->out + t->out_len, p, len < room ? len : room);
    t->out_len += len < room ? len : room;
    t->out[t->out_len] = '\0';
    return len;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hands the next request to t's easy handle. */
static void send_next(run_t *r, transfer_t *t)
{
    t->req = r->next++;
    snprintf(t->body, sizeof(t->body), review_fmt, (unsigned)t->req);
    t->out_len = 0;
    t->out[0] = '\0';
    t->err[0] = '\0';
    curl_easy_setopt(t->h, CURLOPT_POSTFIELDS, t->body);
    t->t0 = now_s();
    curl_multi_add_handle(r->multi, t->h);
}

/* Records a finished transfer and starts the next one on its handle. */
static void finished(run_t *r, transfer_t *t, CURLcode rc)
{
    long code = 0;

    r->lat[t->req] = now_s() - t->t0;
    r->done++;
    if (rc == CURLE_OK)
        curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200 || !strstr(t->out, "\"allowed\":false")) {
        if (!r->errors)
            snprintf(r->first_err, sizeof(r->first_err), "%s (HTTP %ld) %.200s", t->err, code,
                     t->out);
        r->errors++;
    }
    curl_multi_remove_handle(r->multi, t->h);
    if (r->next < r->requests)
        send_next(r, t);
}

/* An easy handle for url; its connection stays open between requests. */
static void transfer_init(transfer_t *t, const char *url, struct curl_slist *hdr)
{
    t->h = curl_easy_init();
    curl_easy_setopt(t->h, CURLOPT_URL, url);
    curl_easy_setopt(t->h, CURLOPT_CAINFO, cert_path);
    curl_easy_setopt(t->h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(t->h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->h, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->h, CURLOPT_ERRORBUFFER, t->err);
    curl_easy_setopt(t->h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(t->h, CURLOPT_NOSIGNAL, 1L);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The q-quantile of sorted values (nearest rank). */
static double quantile(const double *v, int n, double q)
{
    int i = (int)(q * n + 0.999999) - 1;

    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Drives the transfers until every request was answered. */
static void drive(run_t *r)
{
    int running = 1;

    while (r->done < r->requests) {
        CURLMsg *m;
        int left;
        curl_multi_perform(r->multi, &running);
        while ((m = curl_multi_info_read(r->multi, &left)) != NULL) {
            transfer_t *t = NULL;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            finished(r, t, m->data.result);
        }
        if (r->done < r->requests)
            curl_multi_poll(r->multi, NULL, 0, 100, NULL);
    }
}

/* Server-side time per request, from the server's own histogram. */
static double server_mean(void)
{
    double sum = 0, count = 0;

    if (metrics_get("webhook_request_duration_seconds_sum", NULL, &sum) < 0 ||
        metrics_get("webhook_request_duration_seconds_count", NULL, &count) < 0 || count == 0)
        return 0;
    return sum / count;
}

/* Prints p50, p99 and max of n latencies (sorted in place). */
static void print_latencies(const char *what, double *lat, int n, int errors)
{
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("  %-28s p50 %.3f ms  p99 %.3f ms  max %.3f ms  errors %d\n", what,
           quantile(lat, n, 0.50) * 1e3, quantile(lat, n, 0.99) * 1e3, lat[n - 1] * 1e3, errors);
}

/* Sends requests with clients in flight over the transfers t, on the
 * connections multi holds (opened when there are none yet). Returns the
 * error count. */
static int run_phase(CURLM *multi, transfer_t *t, int clients, int requests, double *lat,
                     double *wall, char *first_err, size_t errlen)
{
    run_t r = {.multi = multi, .requests = requests, .lat = lat};
    double t0 = now_s();

    for (int i = 0; i < clients && i < requests; i++)
        send_next(&r, &t[i]);
    drive(&r);
    *wall = now_s() - t0;
    if (r.errors)
        snprintf(first_err, errlen, "%s", r.first_err);
    return r.errors;
}

/* Opens the connections (one request each, timed apart), then runs the
 * measured requests on them; prints the figures and returns the errors. */
static int run_clients(int requests, int clients)
{
    transfer_t *t = calloc((size_t)clients, sizeof(*t));
    double *lat = calloc((size_t)requests, sizeof(double));
    double *warm = calloc((size_t)clients, sizeof(double));
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128], err[512] = "";
    double wall;
    int errors, werrors;

    hdr = curl_slist_append(hdr, "Accept: application/json, */*");
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/validate-eviction", atomic_load(&srv_port));
    CURLM *multi = curl_multi_init();

    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)clients);
    for (int i = 0; i < clients; i++)
        transfer_init(&t[i], url, hdr);
    werrors = run_phase(multi, t, clients, clients, warm, &wall, err, sizeof(err));
    errors = run_phase(multi, t, clients, requests, lat, &wall, err, sizeof(err));
    if (errors + werrors)
        fprintf(stderr, "webhook_bench: first error: %s\n", err);
    printf("webhook_bench: %d AdmissionReviews over TLS, %d in flight on %d kept-alive "
           "connections\n",
           requests, clients, clients);
    print_latencies("connection setup (TLS):", warm, clients, werrors);
    print_latencies("requests:", lat, requests, errors);
    printf("  %.0f requests/s; server-side mean %.3f ms per request\n", requests / wall,
           server_mean() * 1e3);
    for (int i = 0; i < clients; i++)
        curl_easy_cleanup(t[i].h);
    curl_multi_cleanup(multi);
    curl_slist_free_all(hdr);
    free(warm);
    free(lat);
    free(t);
    return errors + werrors;
}

/* Writes the certificate pair into a fresh temporary directory. */
static int make_cert(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/vmdrain-bench-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/tls.crt", dir);
    snprintf(key_path, sizeof(key_path), "%s/tls.key", dir);
    return testcert_write(cert_path, key_path, 1);
}

static void remove_cert(const char *dir)
{
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int requests = argc > 1 ? atoi(argv[1]) : 2000;
    int clients = argc > 2 ? atoi(argv[2]) : 16;
    char dir[64];
    pthread_t st;
    int errors;

    if (requests < 1 || clients < 1 || clients > MAX_CLIENTS || clients > requests) {
        fprintf(stderr, "usage: webhook_bench [requests [clients (1..%d)]]\n", MAX_CLIENTS);
        return 2;
    }
    log_setup(LOG_LEVEL_WARN, LOG_FORMAT_TEXT, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (make_cert(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "webhook_bench: cannot write a test certificate\n");
        return 2;
    }
    pod = load(KUBE_KIND_POD,
               "{\"metadata\":{\"name\":\"virt-launcher-vm-a-7xk2p\",\"namespace\":\"default\","
               "\"labels\":{\"kubevirt.io\":\"virt-launcher\"},\"annotations\":{\"kubevirt.io/"
               "domain\":\"vm-a\"}},\"spec\":{\"nodeName\":\"node-1\"},\"status\":{\"phase\":"
               "\"Running\"}}");
    vmi = load(KUBE_KIND_VMI,
               "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-1\"},"
               "\"spec\":{\"evictionStrategy\":\"LiveMigrate\"},\"status\":{\"nodeName\":"
               "\"node-1\",\"phase\":\"Running\",\"conditions\":[{\"type\":\"LiveMigratable\","
               "\"status\":\"True\"}]}}");
    srv_loop = ev_loop_new(EVFLAG_AUTO);
    ev_async_init(&stop_async, on_stop);
    ev_async_start(srv_loop, &stop_async);
    pthread_create(&st, NULL, server_main, NULL);
    while (atomic_load(&srv_port) == 0)
        usleep(1000);
    errors = atomic_load(&srv_port) < 0 ? 1 : run_clients(requests, clients);
    ev_async_send(srv_loop, &stop_async);
    pthread_join(st, NULL);
    ev_loop_destroy(srv_loop);
    kube_obj_free(pod);
    kube_obj_free(vmi);
    remove_cert(dir);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
