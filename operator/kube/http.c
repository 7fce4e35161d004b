#include "kube/http.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/httpstatus.h"
#include "util/metrics.h"
#include "util/strutil.h"

#include <curl/curl.h>
#include <ev.h>
#include <yajl/yajl_parse.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VMDRAIN_VERSION
#define VMDRAIN_VERSION "dev"
#endif

#define HTTP_WATCH_CONNECT_TIMEOUT 30.0 /* seconds to connect a watch */
#define HTTP_KEEPIDLE              30L  /* seconds before TCP keepalive probes */
#define HTTP_KEEPINTVL             10L  /* seconds between probes */
#define HTTP_401_RELOAD_GAP        1.0  /* seconds between reloads triggered by 401s */
#define HTTP_SNIPPET_MAX           200  /* bytes of a non-Status error body quoted */
#define STATUS_MAX_DEPTH           32

typedef enum req_state {
    REQ_NEW,         /* waiting in the start list */
    REQ_RUNNING,     /* in the multi handle */
    REQ_DONE,        /* ended; queued for on_done */
    REQ_CANCELLED,   /* cancelled; queued (or about to be) for release */
    REQ_DISPATCHING, /* inside its on_done */
} req_state_t;

/* A socket libcurl asked us to watch. */
typedef struct http_sock {
    ev_io io;
    kube_http_t *h;
    curl_socket_t fd;
    struct http_sock *prev;
    struct http_sock *next;
} http_sock_t;

struct kube_req {
    kube_http_t *h;
    CURL *easy;
    req_state_t state;
    bool in_multi;
    bool queued; /* in the release queue */
    bool counted;
    bool notify;      /* owed an on_done saying it was cancelled (kube_http_free) */
    kube_req_t *prev; /* all live requests */
    kube_req_t *next;
    kube_req_t *qnext; /* start list or release queue */
    char *method;
    char *path;
    char *verb;
    char *body;
    size_t body_len;
    char *content_type;
    struct curl_slist *headers;
    bool watch;
    double timeout;
    double idle_timeout;
    size_t max_body;
    int (*on_data)(void *ud, const char *data, size_t len);
    void (*on_done)(void *ud, const kube_result_t *res);
    void *ud;
    long status;        /* final HTTP status once the headers arrived */
    CURLcode cc;        /* libcurl's result */
    buf_t body_buf;     /* buffered 2xx body, or the non-2xx body */
    char *fail;         /* our own reason for failing, preferred over libcurl's */
    char *errtext;      /* composed for on_done */
    ev_timer idle;      /* watch idle timeout */
    ev_tstamp activity; /* last byte seen */
    char errbuf[CURL_ERROR_SIZE];
};

struct kube_http {
    struct ev_loop *loop;
    kube_config_t *cfg;
    CURLM *multi;
    char *base_url;                /* what paths are appended to */
    bool tls;                      /* https: wait for ALPN to learn about h2 */
    struct curl_slist *connect_to; /* tls_server_name mapping, or NULL */
    ev_timer curl_timer;           /* CURLMOPT_TIMERFUNCTION */
    ev_timer token_timer;
    bool token_timer_on;
    ev_check reap;    /* starts new requests, releases ended ones */
    ev_idle nowait;   /* keeps the loop from blocking while work is queued */
    kube_req_t *reqs; /* every live request */
    size_t nreqs;
    kube_req_t *start_head; /* REQ_NEW, in order */
    kube_req_t *start_tail;
    kube_req_t *q_head; /* ended or cancelled, in order */
    kube_req_t *q_tail;
    http_sock_t *socks;
    int depth;    /* > 0 while our callbacks run */
    bool closing; /* kube_http_free() was called */
    ev_tstamp last_401_reload;
    metrics_counter_t *requests_total;
};

static bool curl_ready;

int kube_http_global_init(void)
{
    if (curl_ready)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    curl_ready = true;
    return 0;
}

void kube_http_global_cleanup(void)
{
    if (!curl_ready)
        return;
    curl_global_cleanup();
    curl_ready = false;
}

static bool is_2xx(long status)
{
    return status >= 200 && status < 300;
}

/* ---- small helpers ---------------------------------------------------- */

/* Copies at most cap-1 bytes of s[0..len) into out, replacing control
 * characters by spaces and never cutting a UTF-8 sequence in two. */
static void copy_line(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len;
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* ---- Status decoding ---------------------------------------------------- */

enum status_key { KEY_NONE, KEY_CODE, KEY_REASON, KEY_MESSAGE };

typedef struct status_ctx {
    kube_api_status_t *out;
    int depth;
    enum status_key key; /* key whose value comes next, at depth 1 */
    bool object;
} status_ctx_t;

static int st_scalar(void *ctx)
{
    ((status_ctx_t *)ctx)->key = KEY_NONE;
    return 1;
}

static int st_boolean(void *ctx, int v)
{
    (void)v;
    return st_scalar(ctx);
}

static int st_double(void *ctx, double v)
{
    (void)v;
    return st_scalar(ctx);
}

static int st_integer(void *ctx, long long v)
{
    status_ctx_t *c = ctx;
    if (c->depth == 1 && c->key == KEY_CODE)
        c->out->code = (long)v;
    return st_scalar(ctx);
}

static int st_string(void *ctx, const unsigned char *s, size_t len)
{
    status_ctx_t *c = ctx;
    if (c->depth == 1 && c->key == KEY_REASON)
        copy_line(c->out->reason, sizeof(c->out->reason), (const char *)s, len);
    else if (c->depth == 1 && c->key == KEY_MESSAGE)
        copy_line(c->out->message, sizeof(c->out->message), (const char *)s, len);
    return st_scalar(ctx);
}

static int st_key(void *ctx, const unsigned char *s, size_t len)
{
    status_ctx_t *c = ctx;
    c->key = KEY_NONE;
    if (c->depth != 1)
        return 1;
    if (len == 4 && memcmp(s, "code", 4) == 0)
        c->key = KEY_CODE;
    else if (len == 6 && memcmp(s, "reason", 6) == 0)
        c->key = KEY_REASON;
    else if (len == 7 && memcmp(s, "message", 7) == 0)
        c->key = KEY_MESSAGE;
    return 1;
}

static int st_open(status_ctx_t *c, bool map)
{
    if (c->depth == 0 && !map)
        return 0;
    if (c->depth == 0)
        c->object = true;
    c->key = KEY_NONE;
    return ++c->depth <= STATUS_MAX_DEPTH;
}

static int st_start_map(void *ctx)
{
    return st_open(ctx, true);
}

static int st_start_array(void *ctx)
{
    return st_open(ctx, false);
}

static int st_close(void *ctx)
{
    status_ctx_t *c = ctx;
    c->depth--;
    c->key = KEY_NONE;
    return 1;
}

static const yajl_callbacks status_callbacks = {
    .yajl_null = st_scalar,
    .yajl_boolean = st_boolean,
    .yajl_integer = st_integer,
    .yajl_double = st_double,
    .yajl_string = st_string,
    .yajl_start_map = st_start_map,
    .yajl_map_key = st_key,
    .yajl_end_map = st_close,
    .yajl_start_array = st_start_array,
    .yajl_end_array = st_close,
};

int kube_api_status_decode(const char *body, size_t len, kube_api_status_t *out, char *err,
                           size_t errlen)
{
    status_ctx_t ctx = {.out = out};
    memset(out, 0, sizeof(*out));
    yajl_handle y = yajl_alloc(&status_callbacks, NULL, &ctx);
    if (!y) {
        util_set_err(err, errlen, "Status body: out of memory");
        return -1;
    }
    yajl_status ys = yajl_parse(y, (const unsigned char *)body, len);
    if (ys == yajl_status_ok)
        ys = yajl_complete_parse(y);
    int rc = 0;
    if (ys != yajl_status_ok) {
        if (ctx.depth > STATUS_MAX_DEPTH)
            util_set_err(err, errlen, "Status body nests deeper than %d levels", STATUS_MAX_DEPTH);
        else if (!ctx.object && ctx.depth == 0 && len > 0 && ys == yajl_status_client_canceled)
            util_set_err(err, errlen, "Status body is not a JSON object");
        else {
            unsigned char *msg = yajl_get_error(y, 0, (const unsigned char *)body, len);
            char line[160];
            copy_line(line, sizeof(line), msg ? (const char *)msg : "invalid JSON",
                      msg ? strlen((const char *)msg) : 12);
            util_set_err(err, errlen, "Status body is not valid JSON: %s", line);
            yajl_free_error(y, msg);
        }
        rc = -1;
    } else if (!ctx.object) {
        util_set_err(err, errlen, "Status body is not a JSON object");
        rc = -1;
    }
    yajl_free(y);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- the release queue and the start list ------------------------------ */

/* Keeps the check watcher (and the idle watcher that stops the loop from
 * blocking before it runs) active exactly while there is queued work. */
static void http_arm(kube_http_t *h)
{
    bool work = h->start_head || h->q_head;
    if (work && !ev_is_active(&h->reap)) {
        ev_check_start(h->loop, &h->reap);
        ev_idle_start(h->loop, &h->nowait);
    } else if (!work && ev_is_active(&h->reap)) {
        ev_check_stop(h->loop, &h->reap);
        ev_idle_stop(h->loop, &h->nowait);
    }
}

static void queue_release(kube_req_t *r)
{
    kube_http_t *h = r->h;
    if (r->queued)
        return;
    r->queued = true;
    r->qnext = NULL;
    if (h->q_tail)
        h->q_tail->qnext = r;
    else
        h->q_head = r;
    h->q_tail = r;
    http_arm(h);
}

/* Ends a running request with the result recorded in it; on_done follows
 * from the loop. */
static void req_finish(kube_req_t *r)
{
    if (r->state != REQ_RUNNING)
        return;
    r->state = REQ_DONE;
    ev_timer_stop(r->h->loop, &r->idle);
    queue_release(r);
}

/* Records our own failure reason (first one wins). */
static void req_fail(kube_req_t *r, char *msg)
{
    if (!r->fail)
        r->fail = msg;
    else
        free(msg);
}

static void http_count(kube_http_t *h, kube_req_t *r, const char *code)
{
    if (r->counted)
        return;
    r->counted = true;
    metrics_counter_add(h->requests_total, 1, (const char *const[]){r->verb, code});
}

/* Frees a request that is out of the multi handle and of every list but
 * the live list, which it leaves. */
static void req_free(kube_req_t *r)
{
    kube_http_t *h = r->h;
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    h->nreqs--;
    ev_timer_stop(h->loop, &r->idle);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    buf_free(&r->body_buf);
    free(r->method);
    free(r->path);
    free(r->verb);
    free(r->body);
    free(r->content_type);
    free(r->fail);
    free(r->errtext);
    free(r);
}

/* ---- results ------------------------------------------------------------ */

/* Fills res for a request that received a complete response. */
static void result_response(kube_req_t *r, kube_result_t *res, kube_api_status_t *st)
{
    res->status = r->status;
    res->body = r->body_buf.data ? r->body_buf.data : (r->on_data ? NULL : "");
    res->body_len = r->body_buf.len;
    if (is_2xx(r->status))
        return;
    char derr[128], snippet[HTTP_SNIPPET_MAX + 1] = "";
    if (kube_api_status_decode(r->body_buf.data ? r->body_buf.data : "", r->body_buf.len, st, derr,
                               sizeof(derr)) == 0) {
        res->reason = st->reason[0] ? st->reason : NULL;
        res->message = st->message[0] ? st->message : NULL;
        res->code = st->code;
    } else if (r->body_buf.len) {
        copy_line(snippet, sizeof(snippet), r->body_buf.data, r->body_buf.len);
    }
    const char *reason = res->reason ? res->reason : util_http_phrase(r->status);
    const char *detail = res->message ? res->message : snippet;
    r->errtext =
        util_strprintf("%s %s: %ld%s%s%s%s", r->method, r->path, r->status, reason ? " " : "",
                       reason ? reason : "", detail[0] ? ": " : "", detail);
    res->error = r->errtext ? r->errtext : "request failed";
}

/* Fills res for a request that failed without a complete response. */
static void result_failure(kube_req_t *r, kube_result_t *res)
{
    size_t n = strlen(r->errbuf);
    while (n > 0 && (r->errbuf[n - 1] == '\n' || r->errbuf[n - 1] == '\r'))
        r->errbuf[--n] = '\0';
    const char *detail = r->fail;
    if (!detail)
        detail = n ? r->errbuf : curl_easy_strerror(r->cc);
    r->errtext = util_strprintf("%s %s: %s", r->method, r->path, detail);
    res->status = 0;
    res->error = r->errtext ? r->errtext : "request failed";
}

/* Logs the outcome of a token reload; returns kube_http_reload_token()'s
 * value. */
static int http_reload(kube_http_t *h, const char *trigger)
{
    kube_config_t *c = h->cfg;
    char err[256] = "";
    bool changed = false;
    if (!c->token_file)
        return 0;
    if (kube_config_reload_token(c, &changed, err, sizeof(err)) < 0) {
        log_warn("cannot reload the bearer token; keeping the old one", "file", c->token_file,
                 "trigger", trigger, "error", err);
        return -1;
    }
    if (!changed)
        return 0;
    log_add_secret(c->token);
    log_info("API token reloaded", "file", c->token_file, "trigger", trigger);
    return 1;
}

/* Calls on_done for an ended request. A 401 first triggers a token reload
 * (at most one per HTTP_401_RELOAD_GAP), so that the next request carries a
 * rotated token without waiting for the timer. */
static void req_dispatch(kube_req_t *r)
{
    kube_http_t *h = r->h;
    kube_result_t res = {0};
    kube_api_status_t st;
    if (r->cc == CURLE_OK && r->status)
        result_response(r, &res, &st);
    else
        result_failure(r, &res);
    if (!r->status)
        http_count(h, r, "error");
    if (res.status == 401 && h->cfg->token_file &&
        ev_now(h->loop) - h->last_401_reload >= HTTP_401_RELOAD_GAP) {
        h->last_401_reload = ev_now(h->loop);
        http_reload(h, "401");
    }
    log_debug("api request done", "method", r->method, "path", r->path, "error", res.error);
    r->state = REQ_DISPATCHING;
    r->on_done(r->ud, &res);
}

/* Releases what the queue holds: out of the multi handle, on_done for the
 * ended ones, then freed. Only the batch present on entry is handled;
 * what its callbacks queue waits for the next loop iteration. */
static void http_release(kube_http_t *h)
{
    kube_req_t *r = h->q_head;
    h->q_head = NULL;
    h->q_tail = NULL;
    while (r) {
        kube_req_t *next = r->qnext;
        r->queued = false;
        if (r->in_multi) {
            curl_multi_remove_handle(h->multi, r->easy);
            r->in_multi = false;
        }
        if (r->state == REQ_DONE && !h->closing)
            req_dispatch(r);
        if (!r->notify) /* else kept for its on_done at shutdown */
            req_free(r);
        r = next;
    }
}

static void req_start(kube_req_t *r)
{
    kube_http_t *h = r->h;
    CURLMcode mc = curl_multi_add_handle(h->multi, r->easy);
    if (mc != CURLM_OK) {
        r->state = REQ_RUNNING;
        req_fail(r, util_strprintf("cannot start: %s", curl_multi_strerror(mc)));
        r->cc = CURLE_FAILED_INIT;
        req_finish(r);
        return;
    }
    r->in_multi = true;
    r->state = REQ_RUNNING;
    if (r->watch) {
        r->activity = ev_now(h->loop);
        r->idle.repeat = r->idle_timeout;
        ev_timer_again(h->loop, &r->idle);
    }
}

/* Hands new requests to libcurl (outside of any libcurl callback); the
 * cancelled ones go to the release queue instead. */
static void http_start(kube_http_t *h)
{
    kube_req_t *r = h->start_head;
    h->start_head = NULL;
    h->start_tail = NULL;
    while (r) {
        kube_req_t *next = r->qnext;
        if (r->state == REQ_NEW)
            req_start(r);
        else
            queue_release(r);
        r = next;
    }
}

/* ---- re-entrancy ---------------------------------------------------------- */

static void http_destroy(kube_http_t *h);

/* Calls on_done, once, for every request kube_http_free() ended, oldest
 * first, with a result that says so. Runs with depth > 0 and closing set,
 * so its callbacks cannot start, release or free anything: they may only
 * cancel requests (which are then skipped). */
static void http_notify_cancelled(kube_http_t *h)
{
    kube_req_t *last = h->reqs;
    while (last && last->next)
        last = last->next;
    for (kube_req_t *r = last; r; r = r->prev) {
        if (!r->notify)
            continue;
        r->notify = false;
        kube_result_t res = {.cancelled = true};
        free(r->errtext);
        r->errtext = util_strprintf("%s %s: %s", r->method, r->path, KUBE_HTTP_CANCELLED_TEXT);
        res.error = r->errtext ? r->errtext : KUBE_HTTP_CANCELLED_TEXT;
        log_debug("api request cancelled", "method", r->method, "path", r->path);
        r->state = REQ_DISPATCHING;
        r->on_done(r->ud, &res);
        r->state = REQ_CANCELLED;
    }
}

static void http_enter(kube_http_t *h)
{
    h->depth++;
}

/* Returns true when the transport was destroyed (kube_http_free() was
 * called from a callback): the caller must not touch h again. */
static bool http_leave(kube_http_t *h)
{
    if (--h->depth > 0 || !h->closing)
        return false;
    h->depth++;
    http_notify_cancelled(h);
    http_destroy(h);
    return true;
}

/* ---- libcurl <-> libev ------------------------------------------------- */

/* Reads libcurl's completion messages and ends the matching requests. */
static void http_collect(kube_http_t *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        kube_req_t *r = (kube_req_t *)priv;
        if (!r || r->state != REQ_RUNNING)
            continue;
        r->cc = m->data.result;
        req_finish(r);
    }
}

/* Lets libcurl act on a socket (or on its timeout), then collects what
 * ended. */
static void http_drive(kube_http_t *h, curl_socket_t fd, int action)
{
    int running;
    http_enter(h);
    curl_multi_socket_action(h->multi, fd, action, &running);
    if (!h->closing)
        http_collect(h);
    http_leave(h);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    http_sock_t *s = w->data;
    int action =
        ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    (void)loop;
    http_drive(s->h, s->fd, action);
}

static void on_curl_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_drive(w->data, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(kube_http_t *h, http_sock_t *s)
{
    ev_io_stop(h->loop, &s->io);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: one ev_io per socket, following what libcurl
 * wants to wait for. Frees only our own watcher, never a curl handle. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    kube_http_t *h = userp;
    http_sock_t *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_free(h, s);
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->h = h;
        s->fd = fd;
        s->io.data = s;
        ev_init(&s->io, on_io);
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    ev_io_stop(h->loop, &s->io);
    ev_io_set(&s->io, fd, events);
    ev_io_start(h->loop, &s->io);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one ev_timer; libcurl is driven from it, never
 * from here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    kube_http_t *h = userp;
    (void)multi;
    ev_timer_stop(h->loop, &h->curl_timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&h->curl_timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->curl_timer);
    }
    return 0;
}

static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    kube_http_t *h = w->data;
    (void)loop;
    (void)revents;
    http_enter(h);
    http_release(h);
    if (!h->closing) {
        http_start(h);
        http_arm(h);
    }
    http_leave(h);
}

static void on_nowait(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* A watch's idle timer: fails the request once idle_timeout passed without
 * a byte, else sleeps until that moment. */
static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    kube_req_t *r = w->data;
    (void)revents;
    ev_tstamp left = r->activity + r->idle_timeout - ev_now(loop);
    if (left > 0) {
        w->repeat = left;
        ev_timer_again(loop, w);
        return;
    }
    req_fail(r, util_strprintf("no data for %g s (watch idle timeout)", r->idle_timeout));
    r->cc = CURLE_OPERATION_TIMEDOUT;
    req_finish(r);
}

static void on_token_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_reload(w->data, "timer");
}

/* ---- per-request libcurl callbacks ------------------------------------- */

/* CURLOPT_HEADERFUNCTION: notes activity, and at the end of the final
 * header block records the status and counts the request. */
static size_t on_curl_header(const char *data, size_t size, size_t n, void *ud)
{
    kube_req_t *r = ud;
    size_t len = size * n;
    if (r->state != REQ_RUNNING)
        return 0;
    r->activity = ev_now(r->h->loop);
    bool blank = (len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n');
    if (!blank || r->status)
        return len;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) {
        char code[24];
        r->status = status;
        snprintf(code, sizeof(code), "%ld", status);
        http_count(r->h, r, code);
    }
    return len;
}

/* Keeps body bytes: a 2xx body up to max_body (beyond it the request
 * fails), a non-2xx body up to KUBE_HTTP_ERROR_BODY_MAX (beyond it bytes are
 * dropped: the status says enough). */
static size_t req_buffer(kube_req_t *r, const char *data, size_t len)
{
    bool ok = r->status == 0 || is_2xx(r->status);
    size_t cap = r->max_body;
    if (!ok && cap > KUBE_HTTP_ERROR_BODY_MAX)
        cap = KUBE_HTTP_ERROR_BODY_MAX;
    size_t room = cap - r->body_buf.len;
    if (len <= room) {
        if (buf_append(&r->body_buf, data, len) == 0)
            return len;
        req_fail(r, util_strprintf("out of memory buffering the response"));
        return 0;
    }
    if (!ok) {
        buf_append(&r->body_buf, data, room);
        return len;
    }
    req_fail(r, util_strprintf("response body exceeds %zu bytes", cap));
    return 0;
}

/* Hands bytes to on_data. Returns len, or 0 to make libcurl abort when the
 * handler refused them or cancelled the request. */
static size_t req_deliver(kube_req_t *r, const char *data, size_t len)
{
    int rc = r->on_data(r->ud, data, len);
    if (r->state != REQ_RUNNING)
        return 0;
    if (rc < 0) {
        req_fail(r, util_strprintf("aborted by the response handler"));
        return 0;
    }
    return len;
}

/* CURLOPT_WRITEFUNCTION. */
static size_t on_curl_write(char *data, size_t size, size_t n, void *ud)
{
    kube_req_t *r = ud;
    size_t len = size * n;
    if (r->state != REQ_RUNNING)
        return 0;
    r->activity = ev_now(r->h->loop);
    if (r->on_data && is_2xx(r->status))
        return req_deliver(r, data, len);
    return req_buffer(r, data, len);
}

/* ---- building a request -------------------------------------------------- */

static const char *default_verb(const char *method, bool watch)
{
    static const struct {
        const char *method;
        const char *verb;
    } verbs[] = {
        {"GET", "get"},     {"POST", "create"},   {"PUT", "update"},
        {"PATCH", "patch"}, {"DELETE", "delete"}, {"HEAD", "get"},
    };
    if (watch)
        return "watch";
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].method, method) == 0)
            return verbs[i].verb;
    return "other";
}

/* Builds the header list: Accept, Content-Type, Authorization with the
 * current token, and no "Expect: 100-continue" delay. */
static int req_headers(kube_req_t *r)
{
    const char *token = r->h->cfg->token;
    char *line = NULL;
    struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
    if (l && r->content_type) {
        line = util_strprintf("Content-Type: %s", r->content_type);
        l = line ? curl_slist_append(l, line) : NULL;
        free(line);
    }
    if (l && token && *token) {
        line = util_strprintf("Authorization: Bearer %s", token);
        l = line ? curl_slist_append(l, line) : NULL;
        free(line);
    }
    if (l)
        l = curl_slist_append(l, "Expect:");
    if (!l)
        return -1;
    r->headers = l;
    return 0;
}

/* Sets the method and body options. */
static void req_set_method(kube_req_t *r)
{
    CURL *e = r->easy;
    if (strcmp(r->method, "GET") == 0 && !r->body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    if (r->body || strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    if (strcmp(r->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/* Sets the TLS options from the configuration: PEM blobs copied by
 * libcurl, never files. */
static void req_set_tls(kube_req_t *r)
{
    const kube_config_t *c = r->h->cfg;
    CURL *e = r->easy;
    if (c->ca_pem) {
        struct curl_blob b = {c->ca_pem, c->ca_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    if (c->cert_pem) {
        struct curl_blob b = {c->cert_pem, c->cert_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->key_pem) {
        struct curl_blob b = {c->key_pem, c->key_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (c->insecure_skip_tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* Creates and configures the easy handle. Returns 0 or -1 (no memory). */
static int req_setup(kube_req_t *r)
{
    kube_http_t *h = r->h;
    char *url = util_strprintf("%s%s", h->base_url, r->path);
    CURL *e = curl_easy_init();
    if (!url || !e || req_headers(r) < 0) {
        free(url);
        if (e)
            curl_easy_cleanup(e);
        return -1;
    }
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    free(url); /* libcurl keeps its own copy */
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, h->tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vmdrain/" VMDRAIN_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, HTTP_KEEPIDLE);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, HTTP_KEEPINTVL);
    if (r->watch)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(HTTP_WATCH_CONNECT_TIMEOUT * 1000));
    else
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->timeout * 1000));
    if (h->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
    req_set_method(r);
    req_set_tls(r);
    return 0;
}

/* Copies the options into r. Returns 0 or -1 (no memory). */
static int req_copy_opts(kube_req_t *r, const kube_req_opts_t *o)
{
    const char *method = o->method ? o->method : "GET";
    r->method = strdup(method);
    r->path = strdup(o->path);
    r->verb = strdup(o->verb ? o->verb : default_verb(method, o->watch));
    r->content_type = util_strdup_or_null(o->content_type);
    if (!r->method || !r->path || !r->verb || (o->content_type && !r->content_type))
        return -1;
    if (o->body) {
        r->body = malloc(o->body_len + 1);
        if (!r->body)
            return -1;
        memcpy(r->body, o->body, o->body_len);
        r->body[o->body_len] = '\0';
        r->body_len = o->body_len;
    }
    r->watch = o->watch;
    r->timeout = o->timeout > 0 ? o->timeout : KUBE_HTTP_TIMEOUT;
    r->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : KUBE_HTTP_IDLE_TIMEOUT;
    r->max_body = o->max_body ? o->max_body : KUBE_HTTP_MAX_BODY;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->ud = o->ud;
    return 0;
}

kube_req_t *kube_http_request(kube_http_t *h, const kube_req_opts_t *o)
{
    if (!h || !o || !o->path || o->path[0] != '/' || !o->on_done || h->closing)
        return NULL;
    kube_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->h = h;
    r->state = REQ_NEW;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->nreqs++;
    ev_init(&r->idle, on_idle);
    r->idle.data = r;
    if (req_copy_opts(r, o) < 0)
        goto out_free;
    buf_init(&r->body_buf, r->max_body);
    if (req_setup(r) < 0)
        goto out_free;
    if (h->start_tail)
        h->start_tail->qnext = r;
    else
        h->start_head = r;
    h->start_tail = r;
    http_arm(h);
    return r;

out_free:
    req_free(r);
    return NULL;
}

void kube_req_cancel(kube_req_t *r)
{
    if (!r)
        return;
    switch (r->state) {
    case REQ_NEW:  /* still in the start list, which moves it on */
    case REQ_DONE: /* already queued */
        r->state = REQ_CANCELLED;
        break;
    case REQ_RUNNING:
        r->state = REQ_CANCELLED;
        ev_timer_stop(r->h->loop, &r->idle);
        queue_release(r);
        break;
    case REQ_CANCELLED: /* perhaps owed a shutdown on_done: not any more */
        r->notify = false;
        break;
    case REQ_DISPATCHING:
        break;
    }
}

void kube_req_set_error(kube_req_t *r, const char *msg)
{
    if (!r || !msg)
        return;
    char *copy = strdup(msg);
    if (!copy)
        return;
    free(r->fail);
    r->fail = copy;
}

size_t kube_http_pending(const kube_http_t *h)
{
    return h->nreqs;
}

/* ---- the transport ------------------------------------------------------- */

/* Works out the URL prefix and, with tls_server_name, the CONNECT_TO entry
 * that sends "https://NAME:PORT" to the configured host: libcurl then sends
 * NAME as SNI and checks the certificate against it. */
static int http_target(kube_http_t *h, char *err, size_t errlen)
{
    const kube_config_t *c = h->cfg;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *url = NULL, *map = NULL;
    int rc = -1;
    if (!u || !c->server || curl_url_set(u, CURLUPART_URL, c->server, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        util_set_err(err, errlen, "%s: server URL \"%s\" is not valid", c->source ? c->source : "",
                     c->server ? c->server : "");
        goto out;
    }
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        util_set_err(err, errlen, "%s: server URL \"%s\" is neither https nor http",
                     c->source ? c->source : "", c->server);
        goto out;
    }
    h->tls = strcmp(scheme, "https") == 0;
    if (c->tls_server_name && *c->tls_server_name) {
        if (curl_url_set(u, CURLUPART_HOST, c->tls_server_name, 0) != CURLUE_OK ||
            curl_url_set(u, CURLUPART_PORT, port, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
            util_set_err(err, errlen, "%s: tls-server-name \"%s\" is not a valid host name",
                         c->source ? c->source : "", c->tls_server_name);
            goto out;
        }
        map = util_strprintf("%s:%s:%s:%s", c->tls_server_name, port, host, port);
        h->connect_to = map ? curl_slist_append(NULL, map) : NULL;
        h->base_url = strdup(url);
    } else {
        h->base_url = strdup(c->server);
    }
    if (!h->base_url || (c->tls_server_name && *c->tls_server_name && !h->connect_to)) {
        util_set_err(err, errlen, "out of memory");
        goto out;
    }
    size_t n = strlen(h->base_url);
    while (n > 0 && h->base_url[n - 1] == '/')
        h->base_url[--n] = '\0';
    rc = 0;
out:
    free(map);
    curl_free(url);
    curl_free(port);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static void token_timer_stop(kube_http_t *h)
{
    if (!h->token_timer_on)
        return;
    ev_ref(h->loop);
    ev_timer_stop(h->loop, &h->token_timer);
    h->token_timer_on = false;
}

/* (Re)starts the token timer; it does not keep the loop alive by itself. */
static void token_timer_start(kube_http_t *h, double seconds)
{
    token_timer_stop(h);
    if (!h->cfg->token_file)
        return;
    ev_timer_set(&h->token_timer, seconds, seconds);
    ev_timer_start(h->loop, &h->token_timer);
    ev_unref(h->loop);
    h->token_timer_on = true;
}

static int http_init_multi(kube_http_t *h)
{
    h->multi = curl_multi_init();
    if (!h->multi)
        return -1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    return 0;
}

kube_http_t *kube_http_new(struct ev_loop *loop, kube_config_t *cfg, char *err, size_t errlen)
{
    static const char *const labels[] = {"verb", "code"};
    if (kube_http_global_init() < 0) {
        util_set_err(err, errlen, "cannot initialise libcurl");
        return NULL;
    }
    kube_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        util_set_err(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->cfg = cfg;
    h->last_401_reload = -1e9;
    ev_init(&h->curl_timer, on_curl_timeout);
    h->curl_timer.data = h;
    ev_init(&h->token_timer, on_token_timer);
    h->token_timer.data = h;
    ev_check_init(&h->reap, on_check);
    h->reap.data = h;
    ev_idle_init(&h->nowait, on_nowait);
    if (http_target(h, err, errlen) < 0)
        goto out_free;
    if (http_init_multi(h) < 0) {
        util_set_err(err, errlen, "cannot create a libcurl multi handle");
        goto out_free;
    }
    h->requests_total = metrics_counter_new(
        "api_requests_total", "Requests sent to the kube-apiserver, by verb and HTTP status.", 2,
        labels);
    log_add_secret(cfg->token);
    token_timer_start(h, KUBE_HTTP_TOKEN_INTERVAL);
    return h;

out_free:
    http_destroy(h);
    return NULL;
}

void kube_http_set_token_interval(kube_http_t *h, double seconds)
{
    if (h && seconds > 0)
        token_timer_start(h, seconds);
}

int kube_http_reload_token(kube_http_t *h)
{
    return http_reload(h, "call");
}

/* Frees everything; no callback of ours is on the stack. */
static void http_destroy(kube_http_t *h)
{
    while (h->reqs) {
        kube_req_t *r = h->reqs;
        if (r->in_multi)
            curl_multi_remove_handle(h->multi, r->easy);
        r->in_multi = false;
        req_free(r);
    }
    h->start_head = h->start_tail = NULL;
    h->q_head = h->q_tail = NULL;
    if (h->multi)
        curl_multi_cleanup(h->multi);
    while (h->socks)
        sock_free(h, h->socks);
    ev_timer_stop(h->loop, &h->curl_timer);
    token_timer_stop(h);
    ev_check_stop(h->loop, &h->reap);
    ev_idle_stop(h->loop, &h->nowait);
    curl_slist_free_all(h->connect_to);
    free(h->base_url);
    free(h);
}

void kube_http_free(kube_http_t *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    for (kube_req_t *r = h->reqs; r; r = r->next) {
        if (r->state == REQ_NEW || r->state == REQ_RUNNING || r->state == REQ_DONE) {
            r->state = REQ_CANCELLED;
            r->notify = true;
        }
        ev_timer_stop(h->loop, &r->idle);
    }
    token_timer_stop(h);
    if (h->depth > 0)
        return; /* http_leave() ends them once no callback of ours is on the stack */
    http_enter(h);
    http_leave(h);
}
