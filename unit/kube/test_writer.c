#include <criterion/criterion.h>

#include "kube/decode.h"
#include "kube/http.h"
#include "kube/resources.h"
#include "kube/writer.h"
#include "testserver.h"
#include "util/log.h"
#include "util/metrics.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ev_loop *loop;
static testserver_t *srv;
static kube_config_t cfg;
static kube_http_t *http;
static FILE *logsink;
static char *logged;
static size_t logged_len;

static void setup(void)
{
    char err[256];
    unsetenv("http_proxy");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
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
}

static void teardown(void)
{
    kube_http_free(http);
    testserver_stop(srv);
    ev_loop_destroy(loop);
    kube_config_free(&cfg);
    metrics_free_all();
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(logsink);
    free(logged);
}

TestSuite(kube_writer, .init = setup, .fini = teardown, .timeout = 30);

static kube_obj_t *a_pod(void)
{
    static const char json[] = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"virt-launcher-a\","
                               "\"namespace\":\"vms\",\"uid\":\"u-1\",\"resourceVersion\":\"7\"}}";
    char err[128];
    kube_obj_t *o = kube_decode_one(KUBE_KIND_POD, json, sizeof(json) - 1, err, sizeof(err));
    cr_assert_not_null(o, "%s", err);
    return o;
}

/* Runs the loop until n requests reached the server, or 5 s. */
static bool run_until_requests(int n)
{
    for (int i = 0; i < 500 && testserver_nrequests(srv) < n; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(10000);
    }
    return testserver_nrequests(srv) >= n;
}

static const char *logs(void)
{
    fflush(logsink);
    return logged ? logged : "";
}

Test(kube_writer, an_event_is_posted_as_one_json_document)
{
    testserver_route(srv, "POST", "/api/v1/namespaces/vms/events", 201);
    kube_obj_t *pod = a_pod();
    kube_event(http, pod, "Normal", "Migrating", "moving \"a\" to n2");
    cr_assert(run_until_requests(1));
    const testserver_request_t *q = testserver_request(srv, 0);
    cr_expect_str_eq(q->method, "POST");
    cr_expect_str_eq(q->target, "/api/v1/namespaces/vms/events");
    const char *want[] = {"{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":{\"name\":"
                          "\"virt-launcher-a.",
                          "\"involvedObject\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"name\":"
                          "\"virt-launcher-a\",\"namespace\":\"vms\",\"uid\":\"u-1\"}",
                          "\"reason\":\"Migrating\",\"message\":\"moving \\\"a\\\" to n2\","
                          "\"type\":\"Normal\"",
                          "\"count\":1}"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect_not_null(strstr(q->body, want[i]), "%s not in %s", want[i], q->body);
    free(pod);
}

/* The name the request's body gives the Event. */
static void event_name_of(const testserver_request_t *q, char *out, size_t n)
{
    const char *p = strstr(q->body, "\"name\":\"");
    cr_assert_not_null(p, "%s", q->body);
    p += 8;
    snprintf(out, n, "%.*s", (int)strcspn(p, "\""), p);
}

Test(kube_writer, an_event_again_patches_the_count_of_the_first)
{
    testserver_route(srv, "POST", "/api/v1/namespaces/vms/events", 201);
    testserver_route(srv, "PATCH", "/api/v1/namespaces/vms/events/", 200);
    kube_obj_t *pod = a_pod();
    char first[320], path[400];
    kube_event(http, pod, "Warning", "MigrationFailed", "m-1 failed");
    cr_assert(run_until_requests(1));
    event_name_of(testserver_request(srv, 0), first, sizeof(first));
    kube_event(http, pod, "Warning", "MigrationFailed", "m-1 failed");
    cr_assert(run_until_requests(2));
    kube_event(http, pod, "Warning", "MigrationFailed", "m-1 failed");
    cr_assert(run_until_requests(3));
    kube_event(http, pod, "Warning", "MigrationFailed", "m-2 failed"); /* another message */
    cr_assert(run_until_requests(4));
    snprintf(path, sizeof(path), "/api/v1/namespaces/vms/events/%s", first);
    for (int i = 1; i <= 2; i++) {
        const testserver_request_t *q = testserver_request(srv, i);
        char count[64];
        snprintf(count, sizeof(count), "{\"count\":%d,\"lastTimestamp\":\"", i + 1);
        cr_expect_str_eq(q->method, "PATCH");
        cr_expect_str_eq(q->target, path);
        cr_expect_str_eq(testserver_request_header(q, "Content-Type"), KUBE_MERGE_PATCH);
        cr_expect(strncmp(q->body, count, strlen(count)) == 0, "%s", q->body);
    }
    cr_expect_str_eq(testserver_request(srv, 3)->method, "POST");
    cr_expect_not_null(strstr(testserver_request(srv, 3)->body, "m-2 failed"));
    free(pod);
}

Test(kube_writer, an_aggregated_event_that_expired_is_posted_anew)
{
    testserver_route(srv, "POST", "/api/v1/namespaces/vms/events", 201);
    testserver_json(testserver_route(srv, "PATCH", "/api/v1/namespaces/vms/events/", 404),
                    "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}");
    kube_obj_t *pod = a_pod();
    char first[320], second[320];
    kube_event(http, pod, "Normal", "DrainStarted", "drain of n1 started");
    cr_assert(run_until_requests(1));
    kube_event(http, pod, "Normal", "DrainStarted", "drain of n1 started");
    cr_assert(run_until_requests(3)); /* the PATCH (404), then a POST */
    cr_expect_str_eq(testserver_request(srv, 1)->method, "PATCH");
    const testserver_request_t *q = testserver_request(srv, 2);
    cr_expect_str_eq(q->method, "POST");
    event_name_of(testserver_request(srv, 0), first, sizeof(first));
    event_name_of(q, second, sizeof(second));
    cr_expect_str_neq(first, second);
    cr_expect_not_null(strstr(q->body, "\"count\":1}"), "%s", q->body);
    free(pod);
}

Test(kube_writer, an_event_that_cannot_be_encoded_is_logged_not_sent)
{
    testserver_route(srv, "POST", "/api/v1/namespaces/vms/events", 201);
    kube_obj_t *pod = a_pod();
    kube_event(http, pod, "Warning", "Bad", "cut in the middle of \xc3");
    kube_event(http, pod, "Normal", "Good", "fine");
    cr_assert(run_until_requests(1));
    run_until_requests(2); /* a second request would arrive meanwhile */
    cr_expect_eq(testserver_nrequests(srv), 1);
    cr_expect_not_null(strstr(testserver_request(srv, 0)->body, "\"reason\":\"Good\""));
    cr_expect_not_null(strstr(logs(), "cannot encode an event"), "%s", logs());
    free(pod);
}

Test(kube_writer, a_write_ended_by_shutdown_is_not_logged_as_a_failure)
{
    testserver_delay(testserver_route(srv, "PATCH", "/api/v1/namespaces/vms/pods", 200), -1);
    kube_req_t *r = kube_patch(http, kube_resource_of_kind(KUBE_KIND_POD), "vms", "a", NULL,
                               "application/merge-patch+json", "{}", NULL, NULL);
    cr_assert_not_null(r);
    cr_assert(run_until_requests(1));
    kube_http_free(http);
    http = NULL;
    cr_expect_null(strstr(logs(), "write failed"), "%s", logs());
}

static int once_calls;
static const char *once_error;
static void on_once(void *ud, const kube_result_t *res)
{
    (void)ud;
    once_calls++;
    once_error = res->error;
}

Test(kube_writer, an_event_sent_once_has_one_name_and_a_409_counts_as_sent)
{
    testserver_json(testserver_route(srv, "POST", "/api/v1/namespaces/vms/events", 409),
                    "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409}");
    kube_obj_t *pod = a_pod();
    cr_assert(kube_event_once(http, pod, "vms/m-1", "Normal", "Done", "m-1 done", on_once, NULL));
    cr_assert(kube_event_once(http, pod, "vms/m-1", "Normal", "Done", "m-1 done", on_once, NULL));
    cr_assert(kube_event_once(http, pod, "vms/m-2", "Normal", "Done", "m-2 done", on_once, NULL));
    cr_assert(run_until_requests(3));
    for (int i = 0; i < 100 && once_calls < 3; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(10000);
    }
    cr_expect_eq(once_calls, 3);
    cr_expect_null(once_error, "a 409 was reported as a failure: %s", once_error);
    char names[3][64];
    int m1 = 0;
    for (int i = 0; i < 3; i++) {
        const char *body = testserver_request(srv, i)->body;
        const char *n = strstr(body, "\"name\":\"virt-launcher-a.r");
        cr_assert_not_null(n, "%s", body);
        /* the requests may arrive in any order: m-1's first */
        int slot = strstr(body, "m-1 done") ? m1++ : 2;
        snprintf(names[slot], sizeof(names[slot]), "%.40s", n);
    }
    cr_assert_eq(m1, 2);
    cr_expect_str_eq(names[0], names[1], "the same Event got two names");
    cr_expect_str_neq(names[0], names[2], "two Events got one name");
    cr_expect_null(strstr(logs(), "write failed"), "%s", logs());
    free(pod);
}
