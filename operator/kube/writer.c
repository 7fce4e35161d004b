/*
 * writer — see writer.h: create, patch and delete requests, and Events.
 *
 * Owns the small box that carries a caller's callback. Calls kube/http,
 * kube/resources, util/jsongen, util/buf, util/timefmt and util/log; called
 * by the drain engine.
 */
#include "kube/writer.h"
#include "util/buf.h"
#include "util/jsongen.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How send() sends: through the fence; a 409 (the object exists) as
 * success. */
#define SEND_UNFENCED  1u
#define SEND_EXISTS_OK 2u

/* Requests started here carry the caller's callback in a small box. */
typedef struct write_box {
    kube_write_cb cb;
    void *ud;
    unsigned flags;
    char what[96];
} write_box_t;

static void on_write_done(void *ud, const kube_result_t *res)
{
    write_box_t *b = ud;
    kube_result_t r = *res;

    if (res->status == 409 && (b->flags & SEND_EXISTS_OK)) {
        log_debug("sent before: the object exists", "request", b->what);
        r.error = NULL;
    } else if (res->error && !res->cancelled && (!b->cb || (b->flags & SEND_EXISTS_OK))) {
        log_warn("write failed", "request", b->what, "error", res->error);
    }
    if (b->cb)
        b->cb(b->ud, &r);
    free(b);
}

static kube_req_t *send(kube_http_t *h, const char *method, const char *verb, buf_t *path,
                        const char *content_type, const char *body, unsigned flags,
                        kube_write_cb cb, void *ud)
{
    write_box_t *b = calloc(1, sizeof(*b));
    kube_req_t *r = NULL;

    if (!b)
        return NULL;
    b->cb = cb;
    b->ud = ud;
    b->flags = flags;
    snprintf(b->what, sizeof(b->what), "%s %s", method, path->data ? path->data : "");
    kube_req_opts_t o = {.method = method,
                         .path = path->data,
                         .content_type = content_type,
                         .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .on_done = on_write_done,
                         .ud = b,
                         .verb = verb,
                         .unfenced = (flags & SEND_UNFENCED) != 0};
    if (path->data)
        r = kube_http_request(h, &o);
    if (!r)
        free(b);
    return r;
}

kube_req_t *kube_create(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *body,
                        kube_write_cb cb, void *ud)
{
    buf_t path;
    buf_init(&path, 4096);
    kube_resource_path(r, ns, NULL, NULL, &path);
    kube_req_t *req = send(h, "POST", "create", &path, "application/json", body, 0, cb, ud);
    buf_free(&path);
    return req;
}

static kube_req_t *patch(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *name,
                         const char *subresource, const char *patch_type, const char *body,
                         bool unfenced, kube_write_cb cb, void *ud)
{
    buf_t path;
    buf_init(&path, 4096);
    kube_resource_path(r, ns, name, subresource, &path);
    kube_req_t *req =
        send(h, "PATCH", "patch", &path, patch_type, body, unfenced ? SEND_UNFENCED : 0, cb, ud);
    buf_free(&path);
    return req;
}

kube_req_t *kube_patch(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *name,
                       const char *subresource, const char *patch_type, const char *body,
                       kube_write_cb cb, void *ud)
{
    return patch(h, r, ns, name, subresource, patch_type, body, false, cb, ud);
}

kube_req_t *kube_patch_unfenced(kube_http_t *h, const kube_resource_t *r, const char *ns,
                                const char *name, const char *patch_type, const char *body,
                                kube_write_cb cb, void *ud)
{
    return patch(h, r, ns, name, NULL, patch_type, body, true, cb, ud);
}

kube_req_t *kube_delete(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *name,
                        const char *uid, kube_write_cb cb, void *ud)
{
    char body[256];
    buf_t path;
    if (uid)
        snprintf(body, sizeof(body),
                 "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":"
                 "\"Background\",\"preconditions\":{\"uid\":\"%.64s\"}}",
                 uid);
    else
        snprintf(body, sizeof(body),
                 "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
                 "\"propagationPolicy\":\"Background\"}");
    buf_init(&path, 4096);
    kube_resource_path(r, ns, name, NULL, &path);
    kube_req_t *req = send(h, "DELETE", "delete", &path, "application/json", body, 0, cb, ud);
    buf_free(&path);
    return req;
}

/* The Event's JSON: one generator, checked once at the end. Returns the
 * text (owned by the caller) or NULL with the failure logged. */
static char *event_json(const kube_obj_t *obj, const char *ns, const char *name, const char *ts,
                        const char *type, const char *reason, const char *message)
{
    util_jgen_t j;
    char *json = NULL;

    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "apiVersion", "v1");
    util_jgen_kv(&j, "kind", "Event");
    util_jgen_str(&j, "metadata");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "name", name);
    util_jgen_kv(&j, "namespace", ns);
    util_jgen_map_close(&j);
    util_jgen_str(&j, "involvedObject");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "kind", kube_kind_name(obj->kind));
    util_jgen_kv(&j, "apiVersion", kube_resource_of_kind(obj->kind)->api_version);
    util_jgen_kv(&j, "name", obj->name);
    if (obj->ns[0])
        util_jgen_kv(&j, "namespace", obj->ns);
    util_jgen_kv(&j, "uid", obj->uid);
    util_jgen_map_close(&j);
    util_jgen_kv(&j, "reason", reason);
    util_jgen_kv(&j, "message", message);
    util_jgen_kv(&j, "type", type);
    util_jgen_str(&j, "source");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "component", "vmdrain");
    util_jgen_map_close(&j);
    util_jgen_kv(&j, "reportingComponent", "vmdrain.io/vmdrain");
    util_jgen_kv(&j, "firstTimestamp", ts);
    util_jgen_kv(&j, "lastTimestamp", ts);
    util_jgen_kint(&j, "count", 1);
    util_jgen_map_close(&j);
    if (util_jgen_take(&j, &json) < 0)
        log_warn("cannot encode an event", "reason", reason, "object", obj->name, "error",
                 util_jgen_error(&j));
    util_jgen_free(&j);
    return json;
}

/* POSTs the Event named name (send() flags); cb (may be NULL) gets the
 * result. Returns false when nothing was sent (no memory, or the Event
 * could not be encoded). */
static bool post_event(kube_http_t *h, const kube_obj_t *obj, const char *name, const char *type,
                       const char *reason, const char *message, unsigned flags, kube_write_cb cb,
                       void *ud)
{
    const char *ns = obj->ns[0] ? obj->ns : "default";
    char ts[TIME_RFC3339_MAX];
    struct timespec now;
    bool sent = false;

    clock_gettime(CLOCK_REALTIME, &now);
    time_format_rfc3339((vd_time_t){now.tv_sec, 0}, 0, ts, sizeof(ts));
    char *json = event_json(obj, ns, name, ts, type, reason, message);
    if (json) {
        buf_t path;
        buf_init(&path, 1024);
        buf_printf(&path, "/api/v1/namespaces/%s/events", ns);
        sent = send(h, "POST", "create", &path, "application/json", json, flags, cb, ud) != NULL;
        buf_free(&path);
        free(json);
    }
    log_info("event", "reason", reason, "object", obj->name, "type", type, "message", message);
    return sent;
}

/* Aggregation, as Kubernetes' event recorder does it: an Event of the same
 * object, type, reason and message as one posted less than
 * EVENT_AGG_WINDOW ago is not posted again; the first one's count and
 * lastTimestamp are patched instead. A table of EVENT_AGG_SLOTS entries,
 * indexed by the hash: a collision only makes a new Event. */
#define EVENT_AGG_SLOTS  256
#define EVENT_AGG_WINDOW 600.0 /* seconds */

typedef struct event_agg {
    uint64_t key; /* 0: empty */
    char ns[64];
    char name[320];
    long count;
    double last; /* CLOCK_MONOTONIC seconds of the last occurrence */
} event_agg_t;

static event_agg_t event_aggs[EVENT_AGG_SLOTS];

/* A patch of an aggregated Event in flight, and the Event to post instead
 * when the first one is gone (Events expire after an hour). */
typedef struct agg_patch {
    kube_http_t *h;
    size_t slot;
    uint64_t key;
    char ns[64];
    char name[320];
    char *json;
} agg_patch_t;

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t event_key(const kube_obj_t *obj, const char *type, const char *reason,
                          const char *message)
{
    uint64_t hash = 14695981039346656037ULL; /* FNV-1a */
    const char *parts[] = {obj->uid, "\n", obj->name, "\n", type, "\n", reason, "\n", message};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            hash = (hash ^ *p) * 1099511628211ULL;
    return hash ? hash : 1;
}

static void on_agg_patched(void *ud, const kube_result_t *res)
{
    agg_patch_t *a = ud;
    if (res->status == 404 && a->json) {
        buf_t path;
        buf_init(&path, 1024);
        buf_printf(&path, "/api/v1/namespaces/%s/events", a->ns);
        send(a->h, "POST", "create", &path, "application/json", a->json, 0, NULL, NULL);
        buf_free(&path);
        event_agg_t *e = &event_aggs[a->slot];
        if (e->key == a->key) {
            snprintf(e->name, sizeof(e->name), "%s", a->name);
            e->count = 1;
        }
        log_debug("the aggregated event is gone: posted a new one", "event", a->name);
    }
    free(a->json);
    free(a);
}

/* Patches the count and lastTimestamp of the Event e stands for; json is
 * the Event to post under name instead when that one is gone. */
static void patch_aggregated(kube_http_t *h, size_t slot, const char *ts, char *json,
                             const char *name)
{
    const event_agg_t *e = &event_aggs[slot];
    agg_patch_t *a = calloc(1, sizeof(*a));
    char body[160];
    buf_t path;
    if (!a) {
        free(json);
        return;
    }
    *a = (agg_patch_t){.h = h, .slot = slot, .key = e->key, .json = json};
    snprintf(a->ns, sizeof(a->ns), "%s", e->ns);
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(body, sizeof(body), "{\"count\":%ld,\"lastTimestamp\":\"%s\"}", e->count, ts);
    buf_init(&path, 1024);
    buf_printf(&path, "/api/v1/namespaces/%s/events/%s", e->ns, e->name);
    if (!send(h, "PATCH", "patch", &path, KUBE_MERGE_PATCH, body, 0, on_agg_patched, a)) {
        free(a->json);
        free(a);
    }
    buf_free(&path);
}

void kube_event(kube_http_t *h, const kube_obj_t *obj, const char *type, const char *reason,
                const char *message)
{
    static unsigned counter;
    struct timespec now;
    char name[320];
    const char *ns = obj->ns[0] ? obj->ns : "default";
    uint64_t key = event_key(obj, type, reason, message);
    size_t slot = key % EVENT_AGG_SLOTS;
    event_agg_t *e = &event_aggs[slot];
    double mono = mono_now();

    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(name, sizeof(name), "%.240s.%llx%04x", obj->name,
             (unsigned long long)now.tv_sec * 1000000000ULL + (unsigned long long)now.tv_nsec,
             counter++ & 0xffff);
    if (e->key == key && mono - e->last < EVENT_AGG_WINDOW) {
        char ts[TIME_RFC3339_MAX];
        e->count++;
        e->last = mono;
        time_format_rfc3339((vd_time_t){now.tv_sec, 0}, 0, ts, sizeof(ts));
        char count[24];
        snprintf(count, sizeof(count), "%ld", e->count);
        log_info("event", "reason", reason, "object", obj->name, "type", type, "message", message,
                 "count", count);
        patch_aggregated(h, slot, ts, event_json(obj, ns, name, ts, type, reason, message), name);
        return;
    }
    if (post_event(h, obj, name, type, reason, message, 0, NULL, NULL)) {
        *e = (event_agg_t){.key = key, .count = 1, .last = mono};
        snprintf(e->ns, sizeof(e->ns), "%s", ns);
        snprintf(e->name, sizeof(e->name), "%s", name);
    }
}

bool kube_event_once(kube_http_t *h, const kube_obj_t *obj, const char *key, const char *type,
                     const char *reason, const char *message, kube_write_cb cb, void *ud)
{
    uint64_t hash = 14695981039346656037ULL; /* FNV-1a over uid, key and reason */
    const char *parts[] = {obj->uid, "/", key, "/", reason};
    char name[320];

    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            hash = (hash ^ *p) * 1099511628211ULL;
    snprintf(name, sizeof(name), "%.230s.r%016llx", obj->name, (unsigned long long)hash);
    return post_event(h, obj, name, type, reason, message, SEND_EXISTS_OK, cb, ud);
}
