/*
 * informer — see informer.h: the whole state (streamed, or LISTed from the
 * watch cache or from etcd), WATCH, the cache and its indexes, the change
 * handlers, back-off.
 *
 * Owns informer_t and the objects in its cache. Calls kube/http (requests),
 * kube/decode (bodies), kube/resources (paths), util/hmap, util/log and
 * util/metrics; called by the controller and cmd/debug.
 */
#include "kube/informer.h"
#include "kube/decode.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/metrics.h"

#include <ev.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFORMER_PAGE_SIZE    500
#define INFORMER_BACKOFF_BASE 0.5
#define INFORMER_BACKOFF_MAX  30.0

typedef struct entry {
    kube_obj_t *obj;
    uint32_t gen; /* the LIST that last saw it */
} entry_t;

typedef struct index {
    char *name;
    const char *(*fn)(const kube_obj_t *obj);
    hmap_t values; /* value -> hmap_t * of key -> kube_obj_t * */
    struct index *next;
} index_t;

typedef enum phase {
    PHASE_IDLE,
    PHASE_LISTING,
    PHASE_STREAMING, /* a WATCH whose initial events are not all in */
    PHASE_WATCHING,
    PHASE_BACKOFF,
} phase_t;

/* How the next whole state is loaded: the informer steps down from STREAM
 * to CACHE when the server refuses to stream. */
typedef enum method {
    METHOD_STREAM,
    METHOD_CACHE,
    METHOD_PAGED,
} method_t;

static const char *const method_names[] = {"stream", "cache", "paged"};

#define INITIAL_EVENTS_END "k8s.io/initial-events-end"

struct informer {
    kube_http_t *http;
    struct ev_loop *loop;
    const kube_resource_t *resource;
    char *ns, *label_selector, *field_selector;
    int page_size, watch_timeout;
    size_t max_object_bytes;
    double backoff_base, backoff_max, backoff;
    informer_handlers_t h;
    void *ud;

    hmap_t store; /* key -> entry_t * */
    index_t *indexes;
    uint32_t gen;
    bool synced;
    char *rv;           /* resume point */
    char *continue_tok; /* next LIST page, or NULL */
    bool relist;        /* the watch saw 410: load the whole state again */
    bool expired;       /* this watch's stream said 410 */
    bool listed_once;
    method_t method;     /* how the next whole state is loaded */
    bool from_etcd;      /* this one: the watch cache was behind (504, 410) */
    bool stream_ignored; /* a plain bookmark came before the initial events' end */
    const char *loaded_by;

    phase_t phase;
    kube_req_t *req;
    kube_decoder_t *dec;
    ev_timer retry;
    informer_stats_t stats;
};

static metrics_counter_t *watch_restarts;

static void start_list(informer_t *inf);
static void start_watch(informer_t *inf);
static void start_stream(informer_t *inf);

int informer_initial_parse(const char *s, informer_initial_t *out)
{
    static const char *const names[] = {"auto", "cache", "paged"};
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (informer_initial_t)i;
            return 0;
        }
    return -1;
}

const char *informer_initial_name(informer_initial_t v)
{
    static const char *const names[] = {"auto", "cache", "paged"};
    return (unsigned)v < 3 ? names[v] : "auto";
}

/* --- store and indexes --------------------------------------------------------- */

static char *key_of(const kube_obj_t *obj, char *buf, size_t n)
{
    return (char *)kube_obj_key(obj, buf, n);
}

static void index_put(index_t *ix, const char *key, const kube_obj_t *obj)
{
    const char *v = ix->fn(obj);
    if (!v)
        return;
    hmap_t *set = hmap_get(&ix->values, v);
    if (!set) {
        set = malloc(sizeof(*set));
        if (!set)
            return;
        hmap_init(set);
        if (hmap_put(&ix->values, v, set, NULL) < 0) {
            free(set);
            return;
        }
    }
    hmap_put(set, key, (void *)obj, NULL);
}

static void index_del(index_t *ix, const char *key, const kube_obj_t *obj)
{
    const char *v = ix->fn(obj);
    if (!v)
        return;
    hmap_t *set = hmap_get(&ix->values, v);
    if (!set)
        return;
    hmap_del(set, key);
    if (set->len == 0) {
        hmap_del(&ix->values, v);
        hmap_free(set);
        free(set);
    }
}

/* Stores obj (taking it), firing on_add or on_update. */
static void store_upsert(informer_t *inf, kube_obj_t *obj)
{
    char key[512];
    key_of(obj, key, sizeof(key));
    entry_t *e = hmap_get(&inf->store, key);
    if (!e) {
        e = malloc(sizeof(*e));
        if (!e || hmap_put(&inf->store, key, e, NULL) < 0) {
            free(e);
            log_error("informer: out of memory", "resource", inf->resource->name, "key", key);
            kube_obj_free(obj);
            return;
        }
        e->obj = obj;
        e->gen = inf->gen;
        for (index_t *ix = inf->indexes; ix; ix = ix->next)
            index_put(ix, key, obj);
        if (inf->h.on_add)
            inf->h.on_add(inf->ud, obj);
        return;
    }
    kube_obj_t *old = e->obj;
    e->gen = inf->gen;
    if (strcmp(old->resource_version, obj->resource_version) == 0) {
        /* a relist that found nothing new: keep the object we have */
        kube_obj_free(obj);
        return;
    }
    for (index_t *ix = inf->indexes; ix; ix = ix->next)
        index_del(ix, key, old);
    e->obj = obj;
    for (index_t *ix = inf->indexes; ix; ix = ix->next)
        index_put(ix, key, obj);
    if (inf->h.on_update)
        inf->h.on_update(inf->ud, old, obj);
    kube_obj_free(old);
}

/* Removes key, firing on_delete with last (or the cached state when last
 * is NULL). Takes last. */
static void store_delete(informer_t *inf, const char *key, kube_obj_t *last)
{
    entry_t *e = hmap_del(&inf->store, key);
    if (!e) {
        kube_obj_free(last);
        return;
    }
    for (index_t *ix = inf->indexes; ix; ix = ix->next)
        index_del(ix, key, e->obj);
    if (inf->h.on_delete)
        inf->h.on_delete(inf->ud, last ? last : e->obj);
    kube_obj_free(last);
    kube_obj_free(e->obj);
    free(e);
}

/* After a complete LIST: whatever it did not see is gone. */
static void store_sweep(informer_t *inf)
{
    hmap_entry_t *it = hmap_first(&inf->store);
    while (it) {
        hmap_entry_t *next = hmap_next(&inf->store, it);
        entry_t *e = it->value;
        if (e->gen != inf->gen) {
            char key[512];
            snprintf(key, sizeof(key), "%s", it->key);
            store_delete(inf, key, NULL);
        }
        it = next;
    }
}

/* --- requests ---------------------------------------------------------------------- */

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s && *s ? strdup(s) : NULL;
}

static void end_request(informer_t *inf)
{
    inf->req = NULL;
    inf->expired = false;
    kube_decoder_free(inf->dec);
    inf->dec = NULL;
}

/* Loads the whole state: streamed, unless the server refused that or a
 * LIST's pages are under way. */
static void start_whole(informer_t *inf)
{
    if (inf->method == METHOD_STREAM && !inf->continue_tok)
        start_stream(inf);
    else
        start_list(inf);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    informer_t *inf = w->data;
    (void)loop;
    (void)revents;
    if (!inf->listed_once || inf->relist || inf->continue_tok || !inf->rv)
        start_whole(inf);
    else
        start_watch(inf);
}

/* Schedules the next attempt after an exponential, jittered delay. */
static void back_off(informer_t *inf, const char *what, const char *msg, long status)
{
    inf->stats.errors++;
    inf->phase = PHASE_BACKOFF;
    double delay = inf->backoff * (0.5 + 0.5 * ((double)rand() / RAND_MAX));
    char d[32];
    snprintf(d, sizeof(d), "%.2f", delay);
    log_warn("informer: request failed, retrying", "resource", inf->resource->name, "request", what,
             "error", msg, "retry_in", d);
    if (inf->h.on_error)
        inf->h.on_error(inf->ud, msg, status);
    inf->backoff = fmin(inf->backoff * 2, inf->backoff_max);
    ev_timer_set(&inf->retry, delay, 0);
    ev_timer_start(inf->loop, &inf->retry);
}

/* Appends the selectors and namespace-independent query parameters. */
static void add_selectors(informer_t *inf, buf_t *p)
{
    if (inf->label_selector) {
        buf_puts(p, "&labelSelector=");
        kube_url_escape(p, inf->label_selector);
    }
    if (inf->field_selector) {
        buf_puts(p, "&fieldSelector=");
        kube_url_escape(p, inf->field_selector);
    }
}

static int on_body(void *ud, const char *data, size_t len)
{
    informer_t *inf = ud;
    if (kube_decoder_feed(inf->dec, data, len) < 0) {
        kube_req_set_error(inf->req, kube_decoder_error(inf->dec));
        return -1;
    }
    /* a watch ERROR event asked for a relist: stop reading this stream */
    if (inf->expired) {
        kube_req_set_error(inf->req, "watch expired (410): relisting");
        return -1;
    }
    if (inf->stream_ignored) {
        kube_req_set_error(inf->req, "the server sent a bookmark before the initial events' "
                                     "end: it does not stream the initial state");
        return -1;
    }
    return 0;
}

static void on_skip(void *ud, const char *why)
{
    informer_t *inf = ud;
    inf->stats.skipped++;
    log_error("informer: object skipped", "resource", inf->resource->name, "reason", why);
}

/* --- LIST ------------------------------------------------------------------------- */

static void on_item(void *ud, kube_obj_t *obj)
{
    store_upsert(ud, obj);
}

static void on_list_meta(void *ud, const char *rv, const char *cont)
{
    informer_t *inf = ud;
    set_str(&inf->rv, rv);
    set_str(&inf->continue_tok, cont);
}

/* The whole state is in (the last LIST page, or the initial events' end):
 * what it did not hold is gone. */
static void whole_loaded(informer_t *inf, method_t how)
{
    store_sweep(inf);
    if (inf->listed_once)
        inf->stats.relists++;
    if (!inf->listed_once || inf->loaded_by != method_names[how]) {
        char n[32];
        snprintf(n, sizeof(n), "%zu", inf->store.len);
        log_info("informer: whole state loaded", "resource", inf->resource->name, "method",
                 method_names[how], "objects", n, "resource_version", inf->rv);
    }
    inf->loaded_by = method_names[how];
    inf->listed_once = true;
    inf->relist = false;
    inf->backoff = inf->backoff_base;
    if (!inf->synced) {
        inf->synced = true;
        if (inf->h.on_synced)
            inf->h.on_synced(inf->ud);
    }
}

static void on_list_done(void *ud, const kube_result_t *res)
{
    informer_t *inf = ud;
    if (res->cancelled) { /* the transport is going away: nothing to retry */
        end_request(inf);
        return;
    }
    int finished = res->error ? -1 : kube_decoder_finish(inf->dec);
    char msg[512];

    if (res->error || finished < 0)
        snprintf(msg, sizeof(msg), "%s", res->error ? res->error : kube_decoder_error(inf->dec));
    end_request(inf);
    if (res->error || finished < 0) {
        bool paging = inf->continue_tok != NULL;
        if (res->status == 410) {
            /* the continue token expired: start the LIST over */
            set_str(&inf->continue_tok, NULL);
        }
        if (!paging && inf->method == METHOD_CACHE && (res->status == 504 || res->status == 410)) {
            /* the watch cache is behind the version asked for: etcd answers */
            inf->from_etcd = true;
            log_info("informer: the watch cache is behind; the next LIST reads etcd", "resource",
                     inf->resource->name, "error", msg);
        }
        back_off(inf, "list", msg, res->status);
        return;
    }
    if (inf->continue_tok) {
        start_list(inf);
        return;
    }
    whole_loaded(inf, inf->from_etcd || inf->method == METHOD_PAGED ? METHOD_PAGED : METHOD_CACHE);
    inf->from_etcd = false;
    start_watch(inf);
}

static void start_list(informer_t *inf)
{
    static const kube_decoder_cb_t cb = {
        .on_item = on_item, .on_list_meta = on_list_meta, .on_skip = on_skip};
    buf_t path;

    if (!inf->continue_tok)
        inf->gen++; /* a new complete LIST begins */
    buf_init(&path, 8192);
    kube_resource_path(inf->resource, inf->ns, NULL, NULL, &path);
    buf_printf(&path, "?limit=%d", inf->page_size);
    if (inf->continue_tok) {
        buf_puts(&path, "&continue=");
        kube_url_escape(&path, inf->continue_tok);
    } else if (inf->method != METHOD_PAGED && !inf->from_etcd) {
        /* from the watch cache: anything at first, then nothing older than
         * what the cache already holds */
        if (inf->listed_once && inf->rv) {
            buf_puts(&path, "&resourceVersion=");
            kube_url_escape(&path, inf->rv);
            buf_puts(&path, "&resourceVersionMatch=NotOlderThan");
        } else {
            buf_puts(&path, "&resourceVersion=0");
        }
    }
    add_selectors(inf, &path);
    inf->dec =
        kube_decoder_new(inf->resource->kind, KUBE_DECODE_LIST, &cb, inf, inf->max_object_bytes);
    kube_req_opts_t o = {.method = "GET",
                         .path = path.data,
                         .on_data = on_body,
                         .on_done = on_list_done,
                         .ud = inf,
                         .verb = "list"};
    inf->phase = PHASE_LISTING;
    inf->stats.lists++;
    inf->req = inf->dec ? kube_http_request(inf->http, &o) : NULL;
    if (!inf->req) {
        end_request(inf);
        back_off(inf, "list", "cannot start request", 0);
    }
    buf_free(&path);
}

/* --- WATCH ------------------------------------------------------------------------- */

static void on_event(void *ud, kube_event_type_t type, kube_obj_t *obj, const kube_status_t *status)
{
    informer_t *inf = ud;
    char key[512];

    switch (type) {
    case KUBE_EVENT_ADDED:
    case KUBE_EVENT_MODIFIED:
        set_str(&inf->rv, obj->resource_version);
        inf->stats.events++;
        store_upsert(inf, obj);
        break;
    case KUBE_EVENT_DELETED:
        set_str(&inf->rv, obj->resource_version);
        inf->stats.events++;
        store_delete(inf, key_of(obj, key, sizeof(key)), obj);
        break;
    case KUBE_EVENT_BOOKMARK:
        set_str(&inf->rv, obj->resource_version);
        inf->stats.bookmarks++;
        if (inf->phase == PHASE_STREAMING) {
            const char *end = kube_obj_annotation(obj, INITIAL_EVENTS_END);
            if (end && strcmp(end, "true") == 0) {
                inf->phase = PHASE_WATCHING;
                whole_loaded(inf, METHOD_STREAM);
            } else {
                inf->stream_ignored = true;
            }
        }
        kube_obj_free(obj);
        break;
    case KUBE_EVENT_ERROR:
        if (status->code == 410) {
            inf->expired = true;
        } else {
            log_warn("informer: watch error event", "resource", inf->resource->name, "reason",
                     status->reason, "message", status->message);
        }
        kube_obj_free(obj);
        break;
    }
    inf->backoff = inf->backoff_base;
}

/* A stream the server refused (the WatchList feature is off: 422 Invalid;
 * or it sent a plain bookmark first: it ignored sendInitialEvents). */
static bool stream_refused(informer_t *inf, const kube_result_t *res)
{
    return inf->stream_ignored || res->status == 422 || res->status == 400;
}

static void on_watch_done(void *ud, const kube_result_t *res)
{
    informer_t *inf = ud;
    const char *labels[] = {inf->resource->name};
    bool streaming = inf->phase == PHASE_STREAMING, expired = inf->expired;
    char msg[512];

    if (res->cancelled) {
        end_request(inf);
        return;
    }
    snprintf(msg, sizeof(msg), "%s", res->error ? res->error : "");
    if (!res->error && kube_decoder_finish(inf->dec) < 0)
        snprintf(msg, sizeof(msg), "%s", kube_decoder_error(inf->dec));
    end_request(inf);
    metrics_counter_add(watch_restarts, 1, labels);
    if (streaming && stream_refused(inf, res)) {
        inf->stream_ignored = false;
        inf->method = METHOD_CACHE;
        log_info("informer: the server does not stream the initial state; listing from its "
                 "watch cache",
                 "resource", inf->resource->name, "error", msg);
        start_list(inf);
        return;
    }
    if (expired || res->status == 410) {
        inf->relist = true;
        if (streaming) { /* the whole state itself expired: not at once again */
            back_off(inf, "watch", msg[0] ? msg : "the streamed state expired (410)", 410);
            return;
        }
        log_info("informer: resourceVersion expired, relisting", "resource", inf->resource->name,
                 "resource_version", inf->rv);
        start_whole(inf);
        return;
    }
    if (msg[0] || streaming) {
        back_off(inf, "watch", msg[0] ? msg : "the watch ended before its initial events did",
                 res->status);
        return;
    }
    /* the server ended the watch at its timeout: resume at once */
    start_watch(inf);
}

/* A WATCH: from the last resourceVersion seen, or (stream) the whole state
 * first, at least as new as etcd's (no resourceVersion: consistent). */
static void start_watch_req(informer_t *inf, bool stream)
{
    static const kube_decoder_cb_t cb = {.on_event = on_event, .on_skip = on_skip};
    buf_t path;
    int timeout = inf->watch_timeout > 0 ? inf->watch_timeout : 300 + rand() % 300;

    buf_init(&path, 8192);
    kube_resource_path(inf->resource, inf->ns, NULL, NULL, &path);
    buf_puts(&path, stream ? "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                           : "?watch=1");
    buf_printf(&path, "&allowWatchBookmarks=true&timeoutSeconds=%d", timeout);
    if (inf->rv && !stream) {
        buf_puts(&path, "&resourceVersion=");
        kube_url_escape(&path, inf->rv);
    }
    add_selectors(inf, &path);
    inf->dec =
        kube_decoder_new(inf->resource->kind, KUBE_DECODE_WATCH, &cb, inf, inf->max_object_bytes);
    kube_req_opts_t o = {.method = "GET",
                         .path = path.data,
                         .watch = true,
                         .on_data = on_body,
                         .on_done = on_watch_done,
                         .ud = inf,
                         .verb = "watch"};
    inf->phase = stream ? PHASE_STREAMING : PHASE_WATCHING;
    inf->stats.watches++;
    inf->req = inf->dec ? kube_http_request(inf->http, &o) : NULL;
    if (!inf->req) {
        end_request(inf);
        back_off(inf, "watch", "cannot start request", 0);
    }
    buf_free(&path);
}

static void start_watch(informer_t *inf)
{
    start_watch_req(inf, false);
}

static void start_stream(informer_t *inf)
{
    inf->gen++; /* a new whole state begins */
    inf->stream_ignored = false;
    inf->stats.streams++;
    start_watch_req(inf, true);
}

/* --- public ------------------------------------------------------------------------- */

informer_t *informer_new(kube_http_t *http, struct ev_loop *loop, const informer_opts_t *opts,
                         const informer_handlers_t *handlers, void *ud)
{
    static const char *const labelnames[] = {"resource"};
    informer_t *inf = calloc(1, sizeof(*inf));

    if (!inf)
        return NULL;
    if (!watch_restarts)
        watch_restarts = metrics_counter_new(
            "watch_restarts_total", "Watches ended and started again, by resource.", 1, labelnames);
    inf->http = http;
    inf->loop = loop;
    inf->resource = opts->resource;
    set_str(&inf->ns, opts->ns);
    set_str(&inf->label_selector, opts->label_selector);
    set_str(&inf->field_selector, opts->field_selector);
    inf->page_size = opts->page_size > 0 ? opts->page_size : INFORMER_PAGE_SIZE;
    inf->watch_timeout = opts->watch_timeout;
    inf->max_object_bytes = opts->max_object_bytes;
    inf->backoff_base = opts->backoff_base > 0 ? opts->backoff_base : INFORMER_BACKOFF_BASE;
    inf->backoff_max = opts->backoff_max > 0 ? opts->backoff_max : INFORMER_BACKOFF_MAX;
    inf->backoff = inf->backoff_base;
    inf->method = opts->initial == INFORMER_INITIAL_PAGED   ? METHOD_PAGED
                  : opts->initial == INFORMER_INITIAL_CACHE ? METHOD_CACHE
                                                            : METHOD_STREAM;
    inf->loaded_by = "";
    if (handlers)
        inf->h = *handlers;
    inf->ud = ud;
    hmap_init(&inf->store);
    ev_init(&inf->retry, on_retry);
    inf->retry.data = inf;
    return inf;
}

void informer_free(informer_t *inf)
{
    if (!inf)
        return;
    ev_timer_stop(inf->loop, &inf->retry);
    if (inf->req)
        kube_req_cancel(inf->req);
    end_request(inf);
    for (hmap_entry_t *it = hmap_first(&inf->store); it; it = hmap_next(&inf->store, it)) {
        entry_t *e = it->value;
        kube_obj_free(e->obj);
        free(e);
    }
    hmap_free(&inf->store);
    while (inf->indexes) {
        index_t *ix = inf->indexes;
        inf->indexes = ix->next;
        for (hmap_entry_t *it = hmap_first(&ix->values); it; it = hmap_next(&ix->values, it)) {
            hmap_free(it->value);
            free(it->value);
        }
        hmap_free(&ix->values);
        free(ix->name);
        free(ix);
    }
    free(inf->ns);
    free(inf->label_selector);
    free(inf->field_selector);
    free(inf->rv);
    free(inf->continue_tok);
    free(inf);
}

void informer_start(informer_t *inf)
{
    if (inf->phase == PHASE_IDLE)
        start_whole(inf);
}

void informer_rewatch(informer_t *inf)
{
    if (inf->phase != PHASE_WATCHING || !inf->req)
        return;
    kube_req_cancel(inf->req);
    end_request(inf);
    start_watch(inf);
}

bool informer_synced(const informer_t *inf)
{
    return inf->synced;
}

const char *informer_loaded_by(const informer_t *inf)
{
    return inf->loaded_by;
}

const kube_obj_t *informer_get(const informer_t *inf, const char *key)
{
    entry_t *e = hmap_get(&inf->store, key);
    return e ? e->obj : NULL;
}

size_t informer_len(const informer_t *inf)
{
    return inf->store.len;
}

const char *informer_resource_version(const informer_t *inf)
{
    return inf->rv ? inf->rv : "";
}

int informer_foreach(const informer_t *inf, int (*fn)(void *ud, const kube_obj_t *obj), void *ud)
{
    for (hmap_entry_t *it = hmap_first(&inf->store); it; it = hmap_next(&inf->store, it)) {
        entry_t *e = it->value;
        int rc = fn(ud, e->obj);
        if (rc)
            return rc;
    }
    return 0;
}

int informer_add_index(informer_t *inf, const char *name, const char *(*fn)(const kube_obj_t *))
{
    index_t *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return -1;
    ix->name = strdup(name);
    if (!ix->name) {
        free(ix);
        return -1;
    }
    ix->fn = fn;
    hmap_init(&ix->values);
    ix->next = inf->indexes;
    inf->indexes = ix;
    return 0;
}

static const hmap_t *index_set(const informer_t *inf, const char *index, const char *value)
{
    for (const index_t *ix = inf->indexes; ix; ix = ix->next)
        if (strcmp(ix->name, index) == 0)
            return hmap_get(&ix->values, value);
    return NULL;
}

int informer_index_foreach(const informer_t *inf, const char *index, const char *value,
                           int (*fn)(void *ud, const kube_obj_t *obj), void *ud)
{
    const hmap_t *set = index_set(inf, index, value);
    if (!set)
        return 0;
    for (hmap_entry_t *it = hmap_first(set); it; it = hmap_next(set, it)) {
        int rc = fn(ud, it->value);
        if (rc)
            return rc;
    }
    return 0;
}

size_t informer_index_count(const informer_t *inf, const char *index, const char *value)
{
    const hmap_t *set = index_set(inf, index, value);
    return set ? set->len : 0;
}

void informer_get_stats(const informer_t *inf, informer_stats_t *out)
{
    *out = inf->stats;
}
