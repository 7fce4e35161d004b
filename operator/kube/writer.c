#include "kube/writer.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

/* Requests started here carry the caller's callback in a small box. */
typedef struct write_box {
    kube_write_cb cb;
    void *ud;
    char what[96];
} write_box_t;

static void on_write_done(void *ud, const kube_result_t *res)
{
    write_box_t *b = ud;
    if (res->error && !b->cb)
        log_warn("write failed", "request", b->what, "error", res->error);
    if (b->cb)
        b->cb(b->ud, res);
    free(b);
}

static kube_req_t *send(kube_http_t *h, const char *method, const char *verb, buf_t *path,
                        const char *content_type, const char *body, kube_write_cb cb, void *ud)
{
    write_box_t *b = calloc(1, sizeof(*b));
    kube_req_t *r = NULL;

    if (!b)
        return NULL;
    b->cb = cb;
    b->ud = ud;
    snprintf(b->what, sizeof(b->what), "%s %s", method, path->data ? path->data : "");
    kube_req_opts_t o = {.method = method,
                         .path = path->data,
                         .content_type = content_type,
                         .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .on_done = on_write_done,
                         .ud = b,
                         .verb = verb};
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
    kube_req_t *req = send(h, "POST", "create", &path, "application/json", body, cb, ud);
    buf_free(&path);
    return req;
}

kube_req_t *kube_patch(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *name,
                       const char *subresource, const char *patch_type, const char *body,
                       kube_write_cb cb, void *ud)
{
    buf_t path;
    buf_init(&path, 4096);
    kube_resource_path(r, ns, name, subresource, &path);
    kube_req_t *req = send(h, "PATCH", "patch", &path, patch_type, body, cb, ud);
    buf_free(&path);
    return req;
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
    kube_req_t *req = send(h, "DELETE", "delete", &path, "application/json", body, cb, ud);
    buf_free(&path);
    return req;
}

static void gstr(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gkv(yajl_gen g, const char *k, const char *v)
{
    gstr(g, k);
    gstr(g, v);
}

void kube_event(kube_http_t *h, const kube_obj_t *obj, const char *type, const char *reason,
                const char *message)
{
    static unsigned counter;
    const char *ns = obj->ns[0] ? obj->ns : "default";
    struct timespec now;
    char ts[TIME_RFC3339_MAX], name[320];
    const unsigned char *json;
    size_t len;

    clock_gettime(CLOCK_REALTIME, &now);
    time_format_rfc3339((vd_time_t){now.tv_sec, 0}, 0, ts, sizeof(ts));
    snprintf(name, sizeof(name), "%.240s.%llx%04x", obj->name,
             (unsigned long long)now.tv_sec * 1000000000ULL + (unsigned long long)now.tv_nsec,
             counter++ & 0xffff);
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return;
    yajl_gen_map_open(g);
    gkv(g, "apiVersion", "v1");
    gkv(g, "kind", "Event");
    gstr(g, "metadata");
    yajl_gen_map_open(g);
    gkv(g, "name", name);
    gkv(g, "namespace", ns);
    yajl_gen_map_close(g);
    gstr(g, "involvedObject");
    yajl_gen_map_open(g);
    gkv(g, "kind", kube_kind_name(obj->kind));
    gkv(g, "apiVersion", kube_resource_of_kind(obj->kind)->api_version);
    gkv(g, "name", obj->name);
    if (obj->ns[0])
        gkv(g, "namespace", obj->ns);
    gkv(g, "uid", obj->uid);
    yajl_gen_map_close(g);
    gkv(g, "reason", reason);
    gkv(g, "message", message);
    gkv(g, "type", type);
    gstr(g, "source");
    yajl_gen_map_open(g);
    gkv(g, "component", "vmdrain");
    yajl_gen_map_close(g);
    gkv(g, "reportingComponent", "vmdrain.io/vmdrain");
    gkv(g, "firstTimestamp", ts);
    gkv(g, "lastTimestamp", ts);
    gstr(g, "count");
    yajl_gen_integer(g, 1);
    yajl_gen_map_close(g);
    if (yajl_gen_get_buf(g, &json, &len) == yajl_gen_status_ok) {
        buf_t path;
        buf_init(&path, 1024);
        buf_printf(&path, "/api/v1/namespaces/%s/events", ns);
        send(h, "POST", "create", &path, "application/json", (const char *)json, NULL, NULL);
        buf_free(&path);
    }
    yajl_gen_free(g);
    log_info("event", "reason", reason, "object", obj->name, "type", type, "message", message);
}
