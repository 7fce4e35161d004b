/*
 * http — the API transport's lifecycle and scheduling: the multi handle on
 * the libev loop, the start list, the rate limit's wait list, the release
 * queue that calls on_done, token reloads (and exec credential plugin runs:
 * before the credential expires, after a 401) and shutdown (kube/http.h
 * has the contract).
 *
 * Owns kube_http_t and every kube_req_t. Calls libcurl's multi API, libev,
 * http_easy.c (building a request), status.c (error bodies),
 * kube/kubeconfig and kube/execcred (token reloads), util/ratelimit,
 * util/metrics, util/timefmt and util/log; called by every module that
 * talks to the apiserver.
 */
#include "kube/execcred.h"
#include "kube/http_int.h"
#include "util/httpstatus.h"
#include "util/log.h"
#include "util/strutil.h"
#include "util/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_401_RELOAD_GAP 1.0 /* seconds between reloads triggered by 401s */
#define HTTP_SNIPPET_MAX    200 /* bytes of a non-Status error body quoted */

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

/* ---- the release queue and the start list ------------------------------ */

/* Appends r to f. */
static void fifo_push(kube__fifo_t *f, kube_req_t *r)
{
    r->qnext = NULL;
    if (f->tail)
        f->tail->qnext = r;
    else
        f->head = r;
    f->tail = r;
}

/* Empties f and returns what it held, still linked through qnext. */
static kube_req_t *fifo_take(kube__fifo_t *f)
{
    kube_req_t *r = f->head;
    f->head = f->tail = NULL;
    return r;
}

/* Removes and returns the first request of f, or NULL. */
static kube_req_t *fifo_pop(kube__fifo_t *f)
{
    kube_req_t *r = f->head;
    if (r) {
        f->head = r->qnext;
        if (!f->head)
            f->tail = NULL;
        r->qnext = NULL;
    }
    return r;
}

/* Takes r out of f, wherever it is. */
static void fifo_remove(kube__fifo_t *f, kube_req_t *r)
{
    kube_req_t *prev = NULL;
    for (kube_req_t *q = f->head; q; prev = q, q = q->qnext) {
        if (q != r)
            continue;
        if (prev)
            prev->qnext = r->qnext;
        else
            f->head = r->qnext;
        if (f->tail == r)
            f->tail = prev;
        break;
    }
    r->qnext = NULL;
}

/* Keeps the check watcher (and the idle watcher that stops the loop from
 * blocking before it runs) active exactly while there is queued work. */
static void http_arm(kube_http_t *h)
{
    bool work = h->start.head || h->rel.head;
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
    fifo_push(&h->rel, r);
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
void kube__req_fail(kube_req_t *r, char *msg)
{
    if (!r->fail)
        r->fail = msg;
    else
        free(msg);
}

void kube__http_count(kube_http_t *h, kube_req_t *r, const char *code)
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
    free(r->warnings);
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
    if (kube__is_2xx(r->status))
        return;
    char derr[128], snippet[HTTP_SNIPPET_MAX + 1] = "";
    if (kube_api_status_decode(r->body_buf.data ? r->body_buf.data : "", r->body_buf.len, st, derr,
                               sizeof(derr)) == 0) {
        res->reason = st->reason[0] ? st->reason : NULL;
        res->message = st->message[0] ? st->message : NULL;
        res->code = st->code;
    } else if (r->body_buf.len) {
        kube__copy_line(snippet, sizeof(snippet), r->body_buf.data, r->body_buf.len);
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

/* Runs the exec credential plugin again when kube_config_exec_due() says
 * so (a 401 or a call forces it) and logs the outcome; returns as
 * http_reload(). */
static int http_exec_refresh(kube_http_t *h, const char *trigger)
{
    kube_config_t *c = h->cfg;
    char err[512] = "", expires[TIME_RFC3339_MAX] = "never";
    bool changed = false;
    if (!kube_config_exec_due(c, strcmp(trigger, "401") == 0 || strcmp(trigger, "call") == 0))
        return 0;
    if (kube_config_exec_refresh(c, &changed, err, sizeof(err)) < 0) {
        log_warn("exec credential plugin failed; keeping the old credential", "command",
                 c->exec->command, "trigger", trigger, "error", err);
        return -1;
    }
    if (c->exec->has_expiry)
        time_format_rfc3339(c->exec->expiry, 0, expires, sizeof(expires));
    log_info("exec credential plugin refreshed the credential", "command", c->exec->command,
             "expires", expires, "trigger", trigger, "changed", changed ? "true" : "false");
    return changed ? 1 : 0;
}

/* Logs the outcome of a token reload (or of an exec plugin's run); returns
 * kube_http_reload_token()'s value. */
static int http_reload(kube_http_t *h, const char *trigger)
{
    kube_config_t *c = h->cfg;
    char err[256] = "";
    bool changed = false;
    if (c->exec)
        return http_exec_refresh(h, trigger);
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

/* Whether a 401 to r calls for a token reload: with a token file, or with
 * an exec plugin unless its credential changed since r was sent (another
 * request's 401, perhaps on another transport, ran it again already). */
static bool reload_on_401(const kube_http_t *h, const kube_req_t *r)
{
    const kube_config_t *c = h->cfg;
    if (c->exec)
        return r->exec_gen == c->exec->generation;
    return c->token_file != NULL;
}

/* Calls on_done for an ended request. A 401 first triggers a token reload
 * or a run of the exec plugin (at most one per HTTP_401_RELOAD_GAP), so
 * that the next request carries a rotated token without waiting for the
 * timer or the expiry. */
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
        kube__http_count(h, r, "error");
    if (res.status == 401 && reload_on_401(h, r) &&
        ev_now(h->loop) - h->last_401_reload >= HTTP_401_RELOAD_GAP) {
        h->last_401_reload = ev_now(h->loop);
        http_reload(h, "401");
    }
    log_debug("api request done", "method", r->method, "path", r->path, "error", res.error);
    res.warnings = r->warnings;
    r->state = REQ_DISPATCHING;
    r->on_done(r->ud, &res);
}

/* Releases what the queue holds: out of the multi handle, on_done for the
 * ended ones, then freed. Only the batch present on entry is handled;
 * what its callbacks queue waits for the next loop iteration. */
static void http_release(kube_http_t *h)
{
    kube_req_t *r = fifo_take(&h->rel);
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
        kube__req_fail(r, util_strprintf("cannot start: %s", curl_multi_strerror(mc)));
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
    kube_req_t *r = fifo_take(&h->start);
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
    kube__req_fail(r, util_strprintf("no data for %g s (watch idle timeout)", r->idle_timeout));
    r->cc = CURLE_OPERATION_TIMEDOUT;
    req_finish(r);
}

static void on_token_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    http_reload(w->data, "timer");
}

/* ---- the rate limit -------------------------------------------------------- */

/* The bucket's clock: the current time, not the loop's cached one, which
 * lags behind after a long callback or a long sleep. A wait timer that
 * libev fires early for that lag is set again for the rest. */
static double now_clock(void *ud)
{
    (void)ud;
    return ev_time();
}

/* Sets the wait timer for the head of the wait list (or stops it). */
static void wait_arm(kube_http_t *h)
{
    ev_timer_stop(h->loop, &h->wait_timer);
    if (!h->wait.head)
        return;
    double left = h->wait.head->start_at - ev_time();
    ev_timer_set(&h->wait_timer, left > 0 ? left : 0, 0);
    ev_timer_start(h->loop, &h->wait_timer);
}

/* Moves the waiting requests whose time has come to the start list. The
 * wait list is in start_at order: reservations only ever grow. */
static void on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    kube_http_t *h = w->data;
    (void)revents;
    double now = ev_time();
    (void)loop;
    while (h->wait.head && h->wait.head->start_at <= now + 1e-6) {
        kube_req_t *r = fifo_pop(&h->wait);
        r->state = REQ_NEW;
        fifo_push(&h->start, r);
    }
    http_arm(h);
    wait_arm(h);
}

/* Takes a waiting request out of the wait list (it was cancelled) and
 * gives its token back. */
static void wait_remove(kube_http_t *h, kube_req_t *r)
{
    fifo_remove(&h->wait, r);
    util_ratelimit_release(&h->limit);
    wait_arm(h);
}

/* Puts a new request in the start list, or, when the rate limit holds it
 * back, in the wait list until its turn (counted as throttled). Watches are
 * long-running and never wait. */
static void http_admit(kube_http_t *h, kube_req_t *r)
{
    double wait = r->watch ? 0 : util_ratelimit_reserve(&h->limit);
    if (wait <= 0) {
        fifo_push(&h->start, r);
        http_arm(h);
        return;
    }
    r->state = REQ_WAITING;
    r->start_at = ev_time() + wait;
    fifo_push(&h->wait, r);
    metrics_counter_add(h->throttled_total, 1, NULL);
    log_debug("api request throttled", "method", r->method, "path", r->path);
    if (!ev_is_active(&h->wait_timer))
        wait_arm(h);
}

/* ---- the fence ------------------------------------------------------------- */

static bool req_fenced(const kube_http_t *h, const kube_req_t *r)
{
    return h->fence && !r->unfenced && strcmp(r->method, "GET") != 0;
}

/* Ends a write the fence stops, in whatever state before its on_done. */
static void req_fence(kube_req_t *r)
{
    kube_http_t *h = r->h;
    if (r->state == REQ_WAITING)
        wait_remove(h, r);
    else if (r->state != REQ_NEW && r->state != REQ_RUNNING)
        return;
    kube__req_fail(r, util_strprintf("fenced: %s", h->fence));
    r->cc = CURLE_ABORTED_BY_CALLBACK;
    if (!r->counted) {
        r->counted = true;
        metrics_counter_add(h->fenced_total, 1, (const char *const[]){r->verb});
    }
    if (r->state == REQ_NEW) { /* still in the start list, which releases it */
        r->state = REQ_DONE;
        return;
    }
    r->state = REQ_RUNNING;
    req_finish(r);
}

void kube_http_fence(kube_http_t *h, const char *why)
{
    if (!h || h->closing)
        return;
    free(h->fence);
    h->fence = why ? strdup(why) : NULL;
    if (why && !h->fence)
        h->fence = strdup("out of memory");
    if (!h->fence)
        return;
    for (kube_req_t *r = h->reqs; r; r = r->next)
        if (req_fenced(h, r))
            req_fence(r);
    http_arm(h);
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
    if (kube__req_copy_opts(r, o) < 0)
        goto out_free;
    buf_init(&r->body_buf, r->max_body);
    if (kube_config_exec_due(h->cfg, false))
        http_reload(h, "expiry"); /* blocks, as kubectl does, up to the plugin's timeout */
    if (h->cfg->exec)
        r->exec_gen = h->cfg->exec->generation;
    if (kube__req_setup(r) < 0)
        goto out_free;
    if (req_fenced(h, r)) {
        fifo_push(&h->start, r);
        req_fence(r);
        http_arm(h);
        return r;
    }
    http_admit(h, r);
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
    case REQ_WAITING:
        r->state = REQ_CANCELLED;
        wait_remove(r->h, r);
        queue_release(r);
        break;
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
    kube_http_opts_t o = KUBE_HTTP_OPTS_DEFAULT;
    return kube_http_new_opts(loop, cfg, &o, err, errlen);
}

/* Registers the transport's metrics (the registry returns the same ones
 * to every transport). */
static void http_metrics(kube_http_t *h)
{
    static const char *const labels[] = {"verb", "code"}, *const verb[] = {"verb"};
    h->requests_total = metrics_counter_new(
        "api_requests_total", "Requests sent to the kube-apiserver, by verb and HTTP status.", 2,
        labels);
    h->throttled_total =
        metrics_counter_new("api_throttled_requests_total",
                            "Requests to the kube-apiserver that waited for the client-side rate "
                            "limit (qps, burst).",
                            0, NULL);
    h->fenced_total = metrics_counter_new(
        "api_fenced_requests_total",
        "Writes not sent because this replica does not lead (the fence), by verb.", 1, verb);
}

kube_http_t *kube_http_new_opts(struct ev_loop *loop, kube_config_t *cfg, const kube_http_opts_t *o,
                                char *err, size_t errlen)
{
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
    ev_init(&h->wait_timer, on_wait_timer);
    h->wait_timer.data = h;
    util_ratelimit_init(&h->limit, o ? o->qps : 0, o ? o->burst : 0, now_clock, NULL);
    if (http_target(h, err, errlen) < 0)
        goto out_free;
    if (http_init_multi(h) < 0) {
        util_set_err(err, errlen, "cannot create a libcurl multi handle");
        goto out_free;
    }
    http_metrics(h);
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
    fifo_take(&h->start);
    fifo_take(&h->rel);
    fifo_take(&h->wait);
    ev_timer_stop(h->loop, &h->wait_timer);
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
    free(h->fence);
    free(h);
}

void kube_http_free(kube_http_t *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    for (kube_req_t *r = h->reqs; r; r = r->next) {
        if (r->state == REQ_WAITING || r->state == REQ_NEW || r->state == REQ_RUNNING ||
            r->state == REQ_DONE) {
            r->state = REQ_CANCELLED;
            r->notify = true;
        }
        ev_timer_stop(h->loop, &r->idle);
    }
    token_timer_stop(h);
    ev_timer_stop(h->loop, &h->wait_timer);
    if (h->depth > 0)
        return; /* http_leave() ends them once no callback of ours is on the stack */
    http_enter(h);
    http_leave(h);
}
