/*
 * drain/evict — eviction requests, as the engine takes them.
 *
 * drain_controller_evict() finds the pod, its VMI and the VMI's migrations
 * in the caches (a live GET when the pod is not cached yet), asks the pure
 * decision (drain/eviction.c) and answers at once. What the decision asks
 * for is only recorded here: the request (VMI, node, message) waits in
 * c->requests until the node's reconcile has planned the VMI's mark and
 * the cache shows it; the writer writes the mark and its Events. So the
 * webhook never writes, and a VMI is queued as soon as its node is
 * reconciled, not only once the mark is visible.
 *
 * May call: drain/eviction, drain/reconcile (names), kube/informer,
 * kube/http, kube/decode, util/log.
 */
#include "drain/engine.h"
#include "kube/decode.h"
#include "util/buf.h"
#include "util/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds a request waits for its node's reconcile to take it (the node's
 * cordon may reach the cache a little after kubectl's first eviction). */
#define REQUEST_TTL 60.0

typedef struct evict_req_rec {
    evict_request_t r;
    double at;
    char message[DRAIN_EVICT_MESSAGE_MAX];
    bool announced; /* its EvictionIntercepted Event was sent */
} evict_req_rec_t;

/* A pod GET in flight for an eviction request. */
typedef struct evict_lookup {
    drain_controller_t *c;
    kube_req_t *kr;
    char id[32]; /* its key in c->lookups */
    char ns[64], name[254], user[256];
    bool dry_run;
    drain_evict_cb cb;
    void *ud;
} evict_lookup_t;

typedef struct collect_migs {
    const kube_migration_t **items;
    size_t n, cap;
    const char *ns;
} collect_migs_t;

static int collect_mig(void *ud, const kube_obj_t *obj)
{
    collect_migs_t *col = ud;
    if (strcmp(obj->ns, col->ns) != 0)
        return 0;
    if (col->n == col->cap) {
        size_t cap = col->cap ? col->cap * 2 : 8;
        const kube_migration_t **p = realloc(col->items, cap * sizeof(*p));
        if (!p)
            return 1;
        col->items = p;
        col->cap = cap;
    }
    col->items[col->n++] = kube_obj_as_migration(obj);
    return 0;
}

/* Records what the decision asks for: the VMI's request, for its node's
 * reconcile to mark and queue it. */
static void record(drain_controller_t *c, const drain_evict_result_t *res, const kube_vmi_t *vmi)
{
    char key[DRAIN_VMI_KEY_MAX];
    const char *cur;

    if (!vmi || !(res->effects & (DRAIN_EVICT_EFFECT_MARK | DRAIN_EVICT_EFFECT_BLOCKED)))
        return;
    drain__enqueue(c, res->node);
    cur = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
    if (cur && strcmp(cur, res->node) == 0)
        return; /* marked already: kubectl retries every 5 s */
    drain__key(&vmi->obj, key, sizeof(key));
    evict_req_rec_t *rec = hmap_get(&c->requests, key);
    if (!rec) {
        rec = calloc(1, sizeof(*rec));
        if (!rec || hmap_put(&c->requests, key, rec, NULL) < 0) {
            /* the answer stands; kubectl asks again in 5 s */
            log_error("out of memory: the eviction request is not recorded", "vmi", key);
            free(rec);
            return;
        }
    }
    snprintf(rec->r.node, sizeof(rec->r.node), "%s", res->node);
    snprintf(rec->r.uid, sizeof(rec->r.uid), "%s", vmi->obj.uid);
    snprintf(rec->message, sizeof(rec->message), "%s", res->message);
    rec->at = ev_now(c->loop);
}

/* Decides with pod (cached, looked up, or NULL), records, answers. */
static void decide(drain_controller_t *c, const drain_evict_req_t *rq, const char *user,
                   const kube_pod_t *pod, bool looked_up, bool failed, drain_evict_cb cb, void *ud)
{
    drain_evict_input_t in = {.pod = pod, .pod_looked_up = looked_up, .lookup_failed = failed};
    drain_evict_result_t res;
    collect_migs_t migs = {0};
    const kube_vmi_t *vmi = NULL;
    const char *name = drain_pod_vmi_name(pod);

    if (name && c->vmis) {
        char key[DRAIN_VMI_KEY_MAX];
        snprintf(key, sizeof(key), "%s/%s", pod->obj.ns, name);
        vmi = kube_obj_as_vmi(informer_get(c->vmis, key));
    }
    if (vmi) {
        migs.ns = vmi->obj.ns;
        informer_index_foreach(c->migs, "vmi", vmi->obj.name, collect_mig, &migs);
    }
    in.vmi = vmi;
    in.migs = migs.items;
    in.n_migs = migs.n;
    in.default_strategy = c->cfg.eviction_strategy;
    in.live_migration_gate = c->cfg.live_migration_enabled;
    in.evacuate_external = c->cfg.evacuate_external;
    if (vmi && c->nodes) {
        const kube_node_t *node = kube_obj_as_node(informer_get(c->nodes, vmi->node_name));
        in.node_uncordoned = node && !node->unschedulable;
    }
    drain_eviction_decide(rq, &in, &res);
    if (res.decision == DRAIN_EVICT_NEED_LOOKUP) /* cannot happen after a lookup */
        drain_eviction_not_ready(rq, "could not look the pod up", &res);
    record(c, &res, vmi);
    log_info("eviction", "pod", rq->name, "namespace", rq->ns, "user", user, "decision", res.label,
             "dry_run", rq->dry_run ? "true" : "false", "message", res.message);
    drain_eviction_count(&res);
    cb(ud, &res);
    free(migs.items);
}

/* Answers a request vmdrain cannot decide now. */
static void not_ready(const drain_evict_req_t *rq, const char *user, const char *why,
                      drain_evict_cb cb, void *ud)
{
    drain_evict_result_t res;
    drain_eviction_not_ready(rq, why, &res);
    log_info("eviction", "pod", rq->name, "namespace", rq->ns, "user", user, "decision", res.label,
             "message", res.message);
    drain_eviction_count(&res);
    cb(ud, &res);
}

static void on_pod_fetched(void *ud, const kube_result_t *res)
{
    evict_lookup_t *l = ud;
    drain_controller_t *c = l->c;
    drain_evict_req_t rq = {.ns = l->ns, .name = l->name, .dry_run = l->dry_run};
    kube_obj_t *obj = NULL;
    bool failed = false;

    hmap_del(&c->lookups, l->id);
    if (!res->error) {
        char err[256];
        obj = kube_decode_one(KUBE_KIND_POD, res->body, res->body_len, err, sizeof(err));
        failed = !obj;
    } else if (res->status != 404) {
        failed = true;
    }
    if (c->stopped || res->cancelled)
        not_ready(&rq, l->user, "is shutting down", l->cb, l->ud);
    else
        decide(c, &rq, l->user, kube_obj_as_pod(obj), true, failed, l->cb, l->ud);
    kube_obj_free(obj);
    free(l);
}

/* Sends the pod GET for a request whose pod is not cached. Returns 0, or
 * -1 when it could not be sent. */
static int lookup(drain_controller_t *c, const drain_evict_req_t *rq, const char *user,
                  drain_evict_cb cb, void *ud)
{
    evict_lookup_t *l = calloc(1, sizeof(*l));
    buf_t path;

    if (!l)
        return -1;
    *l = (evict_lookup_t){.c = c, .dry_run = rq->dry_run, .cb = cb, .ud = ud};
    snprintf(l->ns, sizeof(l->ns), "%s", rq->ns);
    snprintf(l->name, sizeof(l->name), "%s", rq->name);
    snprintf(l->user, sizeof(l->user), "%s", user ? user : "");
    snprintf(l->id, sizeof(l->id), "%p", (void *)l);
    buf_init(&path, 1024);
    kube_resource_path(kube_resource_of_kind(KUBE_KIND_POD), rq->ns, rq->name, NULL, &path);
    kube_req_opts_t o = {.method = "GET",
                         .path = path.data,
                         .on_done = on_pod_fetched,
                         .ud = l,
                         .verb = "get",
                         .timeout = 5};
    if (!path.data || hmap_put(&c->lookups, l->id, l, NULL) < 0 ||
        !(l->kr = kube_http_request(c->http, &o))) {
        hmap_del(&c->lookups, l->id);
        buf_free(&path);
        free(l);
        return -1;
    }
    buf_free(&path);
    return 0;
}

void drain_controller_evict(drain_controller_t *c, const drain_evict_req_t *rq,
                            const char *username, drain_evict_cb cb, void *ud)
{
    char key[DRAIN_VMI_KEY_MAX];
    const char *user = username ? username : "";

    if (!c->ready || c->stopped) {
        /* denied: no VM is lost while vmdrain cannot decide */
        not_ready(rq, user, c->stopped ? "is shutting down" : "has not synced its caches yet", cb,
                  ud);
        return;
    }
    snprintf(key, sizeof(key), "%s/%s", rq->ns, rq->name);
    const kube_pod_t *pod = kube_obj_as_pod(informer_get(c->pods, key));
    if (pod) {
        decide(c, rq, user, pod, false, false, cb, ud);
        return;
    }
    if (lookup(c, rq, user, cb, ud) < 0)
        decide(c, rq, user, NULL, true, true, cb, ud);
}

void drain__evict_cancel_all(drain_controller_t *c)
{
    for (hmap_entry_t *e = hmap_first(&c->lookups), *next; e; e = next) {
        evict_lookup_t *l = e->value;
        drain_evict_req_t rq = {.ns = l->ns, .name = l->name, .dry_run = l->dry_run};
        next = hmap_next(&c->lookups, e);
        hmap_del(&c->lookups, l->id);
        kube_req_cancel(l->kr);
        not_ready(&rq, l->user, "is shutting down", l->cb, l->ud);
        free(l);
    }
}

/* True when the request still waits for its mark on the view's node. */
static bool request_pending(drain_controller_t *c, const evict_req_rec_t *rec,
                            const kube_vmi_t *vmi)
{
    const char *cur;

    if (!vmi || strcmp(vmi->obj.uid, rec->r.uid) != 0 || strcmp(vmi->node_name, rec->r.node) != 0)
        return false; /* gone, replaced, or left the node */
    cur = kube_obj_annotation(&vmi->obj, DRAIN_ANN_EVACUATE_FROM);
    if (cur && strcmp(cur, rec->r.node) == 0)
        return false; /* the cache shows the mark: done */
    return ev_now(c->loop) - rec->at < REQUEST_TTL;
}

const char **drain__evict_requested(drain_controller_t *c, const drain_view_t *v, size_t *n)
{
    const char **out = NULL;
    const char *node = v->node->obj.name;

    *n = 0;
    for (hmap_entry_t *e = hmap_first(&c->requests), *next; e; e = next) {
        evict_req_rec_t *rec = e->value;
        next = hmap_next(&c->requests, e);
        if (strcmp(rec->r.node, node) != 0)
            continue;
        if (!request_pending(c, rec, kube_obj_as_vmi(informer_get(c->vmis, e->key)))) {
            free(hmap_del(&c->requests, e->key));
            continue;
        }
        const char **p = realloc(out, (*n + 1) * sizeof(*p));
        if (!p) {
            free(out);
            return NULL; /* *n stays non-zero: the caller retries */
        }
        out = p;
        out[(*n)++] = rec->r.uid;
    }
    return out;
}

const char *drain__evict_announce(drain_controller_t *c, const char *vmi_key)
{
    evict_req_rec_t *rec = hmap_get(&c->requests, vmi_key);
    if (!rec || rec->announced)
        return NULL;
    rec->announced = true;
    return rec->message;
}
