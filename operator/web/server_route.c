/*
 * server_route — routing a complete request to its handler (or answering
 * 404, 405, 415), composing responses, and the request API handlers see
 * (web_request_*, web_respond).
 *
 * Owns every web_request_t and counts the webhook's errors
 * (webhook_errors_total). Calls http-parser (method names),
 * util/httpstatus, util/metrics, util/log and server_conn.c (timers, I/O);
 * called by server_conn.c and by the handlers.
 */
#include "util/httpstatus.h"
#include "util/log.h"
#include "web/server_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- connections: responses --------------------------------------------- */

/* The reason phrase of a status line; codes the table does not know read
 * "OK" below 400 and "Error" from 400. */
static const char *status_text(int status)
{
    const char *p = util_http_phrase(status);

    if (p)
        return p;
    return status < 400 ? "OK" : "Error";
}

/* Queues a response on c and moves it to WRITING; extra holds whole
 * header lines or is "". Observes the request's duration when it counts. */
static void conn_queue(web_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                       const char *extra)
{
    bool close = c->close_after || !c->keep_alive;

    if (c->observe && c->srv->hist && c->started > 0)
        metrics_histogram_observe(c->srv->hist, web__mono_now() - c->started, NULL);
    c->close_after = close;
    if (buf_printf(&c->out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                   "Connection: %s\r\n\r\n",
                   status, status_text(status), ctype ? ctype : "text/plain; charset=utf-8", len,
                   extra, close ? "close" : "keep-alive") < 0 ||
        buf_append(&c->out, body, len) < 0) {
        log_warn("webhook: response too large; closing", "peer", c->peer);
        c->closing = true;
        return;
    }
    c->state = CONN_WRITING;
    c->want = EV_WRITE;
    web__conn_timer(c, c->srv->opts.write_timeout);
}

/* Queues a text response ("msg\n"). */
void web__conn_queue_text(web_conn_t *c, int status, const char *msg, const char *extra)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", msg);

    conn_queue(c, status, NULL, body,
               n < 0                       ? 0
               : (size_t)n >= sizeof(body) ? sizeof(body) - 1
                                           : (size_t)n,
               extra);
}

void web__count_error(web_server_t *s, bool plain, const char *reason)
{
    if (!plain)
        metrics_counter_add(s->errors, 1, (const char *const[]){reason});
}

/* Answers a request that cannot be served and closes afterwards. */
void web__conn_fail(web_conn_t *c, int status, const char *msg)
{
    log_debug("webhook: bad request", "peer", c->peer, "status", status_text(status), "error", msg);
    web__count_error(c->srv, c->plain,
                     status == 413 || status == 431 ? "too_large"
                     : status >= 500                ? "internal"
                                                    : "bad_request");
    c->close_after = true;
    web__conn_queue_text(c, status, msg, "");
}

/* --- connections: routing ----------------------------------------------- */

/* Whether a Content-Type is application/json (parameters allowed). */
static bool is_json(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* Splits the request target into path and query (pointers into a fresh
 * copy in *store, owned by the caller). Returns -1 for a target that is not
 * origin-form or absolute-form. */
static int split_target(const buf_t *url, char **store, const char **path, const char **query)
{
    struct http_parser_url u;
    const char *t = url->data ? url->data : "";
    char *copy;

    if (t[0] != '/') {
        http_parser_url_init(&u);
        if (http_parser_parse_url(t, url->len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
            return -1;
        t += u.field_data[UF_PATH].off;
    }
    copy = strdup(t);
    if (!copy)
        return -1;
    copy[strcspn(copy, "#")] = '\0';
    *store = copy;
    *path = copy;
    char *q = strchr(copy, '?');
    if (q)
        *q++ = '\0';
    *query = q ? q : "";
    return 0;
}

/* The route for method and path on c's listener, or NULL; *known says
 * whether the path has a route for another method, and allow lists those
 * methods. */
static const route_t *route_find(const web_conn_t *c, const char *method, const char *path,
                                 bool *known, char *allow, size_t n)
{
    const web_server_t *s = c->srv;
    const route_t *hit = NULL;
    size_t used = 0;

    *known = false;
    allow[0] = '\0';
    for (int i = 0; i < s->nroutes; i++) {
        const route_t *r = &s->routes[i];
        if (strcmp(r->path, path) != 0 || (c->plain && !(r->flags & WEB_ROUTE_PLAIN)))
            continue;
        *known = true;
        if (strcmp(r->method, method) == 0)
            hit = r;
        if (used + strlen(r->method) + 3 < n)
            used += (size_t)snprintf(allow + used, n - used, "%s%s", used ? ", " : "", r->method);
    }
    return hit;
}

/* A request for the handler, owning copies of everything, or NULL. */
static web_request_t *request_new(web_conn_t *c, const char *path, const char *query,
                                  const route_t *r)
{
    size_t body_len = c->body.len;
    web_request_t *req = calloc(1, sizeof(*req));

    if (!req)
        return NULL;
    req->path = strdup(path);
    req->query = strdup(query);
    req->body = buf_steal(&c->body);
    req->authorization =
        strndup(c->authorization.data ? c->authorization.data : "", c->authorization.len);
    if (!req->path || !req->query || !req->body || !req->authorization) {
        free(req->path);
        free(req->query);
        free(req->body);
        free(req->authorization);
        free(req);
        return NULL;
    }
    req->conn = c;
    req->hist = r->observe ? c->srv->hist : NULL;
    req->started = c->started;
    req->body_len = body_len;
    snprintf(req->method, sizeof(req->method), "%s", http_method_str(c->parser.method));
    snprintf(req->content_type, sizeof(req->content_type), "%s", c->content_type);
    snprintf(req->peer, sizeof(req->peer), "%s", c->peer);
    return req;
}

/* Hands a complete request to its route, or answers 404/405/415. */
void web__conn_dispatch(web_conn_t *c)
{
    char allow[128], extra[160];
    const char *method = http_method_str(c->parser.method), *path, *query;
    char *store = NULL;
    bool known;
    const route_t *r;
    web_request_t *req;

    if (split_target(&c->url, &store, &path, &query) < 0) {
        web__conn_fail(c, 400, "invalid request target");
        return;
    }
    r = route_find(c, method, path, &known, allow, sizeof(allow));
    if (r)
        c->observe = r->observe;
    if (!known) {
        web__count_error(c->srv, c->plain, "not_found");
        web__conn_queue_text(c, 404, "not found", "");
    } else if (!r) {
        web__count_error(c->srv, c->plain, "not_found");
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        web__conn_queue_text(c, 405, "method not allowed", extra);
    } else if ((r->flags & WEB_ROUTE_JSON) && !is_json(c->content_type)) {
        web__count_error(c->srv, c->plain, "bad_content_type");
        web__conn_queue_text(c, 415, "content type must be application/json", "");
    } else {
        req = request_new(c, path, query, r);
        if (!req) {
            web__conn_fail(c, 500, "out of memory");
        } else {
            c->pending = req;
            c->state = CONN_HANDLING;
            c->want = 0;
            web__conn_timer(c, c->srv->opts.handler_timeout);
            c->dispatching = true;
            r->fn(req, r->ud);
            c->dispatching = false;
        }
    }
    free(store);
}

/* Runs received bytes through the parser. A complete request is
 * dispatched and the bytes after it are stashed until it is answered. */
/* --- requests ------------------------------------------------------------- */

const char *web_request_method(const web_request_t *req)
{
    return req->method;
}

const char *web_request_path(const web_request_t *req)
{
    return req->path;
}

const char *web_request_query(const web_request_t *req)
{
    return req->query;
}

const char *web_request_content_type(const web_request_t *req)
{
    return req->content_type;
}

const char *web_request_body(const web_request_t *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body;
}

const char *web_request_peer(const web_request_t *req)
{
    return req->peer;
}

const char *web_request_authorization(const web_request_t *req)
{
    return req->authorization;
}

bool web_request_gone(const web_request_t *req)
{
    return req->conn == NULL;
}

static void request_free(web_request_t *req)
{
    free(req->path);
    free(req->query);
    free(req->body);
    if (req->authorization)
        OPENSSL_cleanse(req->authorization, strlen(req->authorization));
    free(req->authorization);
    free(req);
}

void web_respond_headers(web_request_t *req, int status, const char *content_type,
                         const char *headers, const char *body, size_t len)
{
    web_conn_t *c = req->conn;

    if (c) {
        c->pending = NULL;
        c->observe = req->hist != NULL;
        /* a caller's route (the webhook) that could not answer the review */
        if (req->hist && status >= 400)
            web__count_error(c->srv, c->plain, status >= 500 ? "internal" : "bad_review");
        conn_queue(c, status, content_type, body ? body : "", body ? len : 0,
                   headers ? headers : "");
        if (!c->dispatching)
            web__conn_update_io(c); /* the loop writes it: no I/O from the caller's stack */
    }
    request_free(req);
}

void web_respond(web_request_t *req, int status, const char *content_type, const char *body,
                 size_t len)
{
    web_respond_headers(req, status, content_type, NULL, body, len);
}

void web_respond_text(web_request_t *req, int status, const char *text)
{
    size_t n = strlen(text);
    char *body = malloc(n + 2);

    if (!body) {
        web_respond(req, 500, NULL, "out of memory\n", 14);
        return;
    }
    memcpy(body, text, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    web_respond(req, status, NULL, body, n + 1);
    free(body);
}
