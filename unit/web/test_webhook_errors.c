#include <criterion/criterion.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "web/server.h"
#include "web/server_int.h" /* web__count_error */

#include <ev.h>
#include <stdio.h>
#include <string.h>

/* vmdrain_webhook_errors_total and vmdrain_ready, through the socketless
 * parsing path of a server that is never started (no sockets). */

static struct ev_loop *loop;
static web_server_t *srv;
static buf_t out;
static bool ready_now;

static bool is_ready(void *ud, char *note, size_t n)
{
    (void)ud;
    snprintf(note, n, "a note");
    return ready_now;
}

/* The webhook's route: answers as its body asks. */
static void on_review(web_request_t *req, void *ud)
{
    size_t len;
    const char *body = web_request_body(req, &len);
    (void)ud;
    if (len >= 3 && strncmp(body, "bad", 3) == 0)
        web_respond_text(req, 400, "body: want a JSON object");
    else if (len >= 3 && strncmp(body, "oom", 3) == 0)
        web_respond_text(req, 500, "out of memory");
    else
        web_respond(req, 200, "application/json", "{}", 2);
}

static void setup(void)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, sink);
    loop = ev_loop_new(EVFLAG_AUTO);
    web_server_opts_t o = {.listen = "127.0.0.1:0", .ready = is_ready, .max_body = 64};
    srv = web_server_new(loop, &o);
    cr_assert_not_null(srv);
    cr_assert_eq(
        web_server_route(srv, "POST", "/validate-eviction", WEB_ROUTE_JSON, on_review, NULL), 0);
    buf_init(&out, 1 << 20);
}

static void teardown(void)
{
    web_server_free(srv);
    ev_loop_destroy(loop);
    buf_free(&out);
    metrics_free_all();
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
}

TestSuite(webhook_errors, .init = setup, .fini = teardown, .timeout = 10);

static void feed(const char *text)
{
    buf_reset(&out);
    web__parse_feed(srv, text, strlen(text), 0, &out);
}

static double errors(const char *reason)
{
    double v = -1;
    cr_assert_eq(metrics_get("webhook_errors_total", (const char *const[]){reason}, &v), 0,
                 "no series for %s", reason);
    return v;
}

static void post(const char *ctype, const char *body)
{
    char req[512];
    snprintf(
        req, sizeof(req),
        "POST /validate-eviction HTTP/1.1\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
        ctype, strlen(body), body);
    feed(req);
}

Test(webhook_errors, every_reason_starts_at_zero)
{
    static const char *const reasons[] = {"bad_request",      "too_large",  "not_found",
                                          "bad_content_type", "bad_review", "timeout",
                                          "internal",         "overloaded"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        cr_expect_eq(errors(reasons[i]), 0, "%s", reasons[i]);
}

Test(webhook_errors, each_refusal_is_counted_by_its_reason)
{
    post("application/json", "{}");
    cr_expect(strncmp(out.data, "HTTP/1.1 200 ", 13) == 0, "%s", out.data);
    feed("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    cr_expect_eq(errors("bad_request"), 1);
    char big[128];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    post("application/json", big);
    cr_expect(strncmp(out.data, "HTTP/1.1 413 ", 13) == 0, "%s", out.data);
    cr_expect_eq(errors("too_large"), 1);
    feed("POST /mutate HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    feed("GET /validate-eviction HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(out.data, "HTTP/1.1 405 ", 13) == 0, "%s", out.data);
    cr_expect_eq(errors("not_found"), 2);
    post("text/plain", "{}");
    cr_expect_eq(errors("bad_content_type"), 1);
    post("application/json", "bad");
    cr_expect(strncmp(out.data, "HTTP/1.1 400 ", 13) == 0, "%s", out.data);
    cr_expect_eq(errors("bad_review"), 1);
    post("application/json", "oom");
    cr_expect_eq(errors("internal"), 1);
    cr_expect_eq(errors("bad_request"), 1, "nothing counted twice");
}

Test(webhook_errors, the_probes_and_metrics_are_not_webhook_errors)
{
    feed("GET /readyz HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(out.data, "HTTP/1.1 503 ", 13) == 0, "%s", out.data);
    feed("GET /metrics HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(out.data, "HTTP/1.1 200 ", 13) == 0, "%s", out.data);
    cr_expect_eq(errors("internal") + errors("bad_review") + errors("not_found"), 0);
    web__count_error(srv, true, "bad_request");
    cr_expect_eq(errors("bad_request"), 0, "the plain listener's are not the webhook's");
}

Test(webhook_errors, ready_follows_readyz_at_each_render)
{
    buf_t m;
    double v = -1;
    buf_init(&m, 1 << 20);
    cr_assert_eq(metrics_render(&m), 0);
    cr_expect(strstr(m.data, "\nvmdrain_ready 0\n") != NULL, "%s", m.data);
    ready_now = true;
    buf_reset(&m);
    cr_assert_eq(metrics_render(&m), 0);
    cr_assert_eq(metrics_get("ready", NULL, &v), 0);
    cr_expect_eq(v, 1);
    web_server_free(srv);
    srv = NULL;
    ready_now = false;
    buf_reset(&m);
    cr_assert_eq(metrics_render(&m), 0, "a freed server's collector is gone");
    cr_assert_eq(metrics_get("ready", NULL, &v), 0);
    cr_expect_eq(v, 1, "left as it was");
    buf_free(&m);
}
