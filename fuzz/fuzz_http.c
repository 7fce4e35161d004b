/*
 * Fuzz driver for the webhook's HTTP request path: the bytes of one
 * connection go through the same parsing, limits and routing as bytes read
 * from a socket (web__parse_feed), with small caps so that they are
 * reached. The first byte picks the size of the reads the bytes arrive in.
 */
#include "util/buf.h"
#include "util/log.h"
#include "web/admission.h"
#include "web/server.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static web_server_t *srv;

/* /validate-eviction: decodes and answers a fixed allowance. */
static void on_eviction(web_request_t *req, void *ud)
{
    admission_request_t rq;
    admission_response_t res = {.allowed = true, .code = 200};
    char err[256];
    size_t len;
    const char *body = web_request_body(req, &len);
    buf_t out;

    (void)ud;
    if (admission_decode(body, len, &rq, err, sizeof(err)) < 0) {
        web_respond_text(req, 400, err);
        return;
    }
    buf_init(&out, 1 << 16);
    admission_encode(rq.uid, &res, &out);
    web_respond(req, 200, "application/json", out.data, out.len);
    buf_free(&out);
}

static void on_echo(web_request_t *req, void *ud)
{
    size_t len;
    const char *body = web_request_body(req, &len);

    (void)ud;
    if (!web_request_method(req) || !web_request_path(req) || !web_request_query(req) ||
        !web_request_content_type(req) || !web_request_peer(req) || body[len] != '\0')
        abort();
    web_respond(req, 200, NULL, body, len);
}

/* The server lives for the process; it is never started (no sockets). */
static void setup(void)
{
    web_server_opts_t o = {.listen = "127.0.0.1:0", .max_body = 4096, .max_header = 1024};

    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, NULL);
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = web_server_new(loop, &o);
    if (!srv ||
        web_server_route(srv, "POST", "/validate-eviction", WEB_ROUTE_JSON, on_eviction, NULL) <
            0 ||
        web_server_route(srv, "POST", "/echo", 0, on_echo, NULL) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t out;
    int n;

    if (!srv)
        setup();
    if (size == 0)
        return 0;
    buf_init(&out, 1 << 22);
    n = web__parse_feed(srv, (const char *)data + 1, size - 1, data[0] % 17, &out);
    /* every response starts with a status line */
    if (n > 0 && strncmp(out.data, "HTTP/1.1 ", 9) != 0)
        abort();
    buf_free(&out);
    return 0;
}
