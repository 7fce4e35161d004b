/*
 * leader — see leader.h: the Lease elector (one request at a time, two
 * timers: the next attempt and the leader's deadline).
 *
 * Owns the elector and its copy of the last record read. Calls kube/http,
 * kube/decode, kube/resources, util/ (jsongen, log, metrics, timefmt).
 */
#include "kube/leader.h"
#include "kube/decode.h"
#include "kube/resources.h"
#include "util/buf.h"
#include "util/jsongen.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/strutil.h"
#include "util/timefmt.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PATH_MAX_BYTES 1024

typedef enum write_kind { W_CREATE, W_TAKE, W_KEEP, W_RELEASE } write_kind_t;

struct kube_leader {
    struct ev_loop *loop;
    kube_http_t *http;
    kube_leader_opts_t o;
    char *ns, *name, *identity, *coll_path, *obj_path;
    double req_timeout;
    bool started, leading, released, need_read;
    kube_req_t *req;
    write_kind_t writing;
    double req_sent; /* monotonic: when the request in flight was sent */
    ev_timer tick, deadline;
    double valid_until; /* monotonic: the leader's fence time */
    /* the record last read */
    char *rv, *holder, *acquire;
    long long transitions;
    double observed_at; /* monotonic: when that record was first seen */
    void (*done)(void *ud);
    void *done_ud;
};

static metrics_gauge_t *g_leader;
static metrics_counter_t *c_transitions;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The wall clock as MicroTime text. */
static void micro_now(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (time_format_rfc3339((vd_time_t){ts.tv_sec, (int32_t)ts.tv_nsec}, 6, out, n) < 0)
        snprintf(out, n, "1970-01-01T00:00:00.000000Z");
}

int kube_leader_check_times(double lease_duration, double renew_deadline, double retry_period,
                            char *err, size_t errlen)
{
    if (!(lease_duration > 0) || !(renew_deadline > 0) || !(retry_period > 0)) {
        util_set_err(err, errlen,
                     "the lease duration, renew deadline and retry period must be "
                     "positive");
        return -1;
    }
    if (!(lease_duration > renew_deadline)) {
        util_set_err(err, errlen,
                     "the lease duration (%gs) must be longer than the renew deadline "
                     "(%gs)",
                     lease_duration, renew_deadline);
        return -1;
    }
    if (!(renew_deadline > 1.2 * retry_period)) {
        util_set_err(err, errlen,
                     "the renew deadline (%gs) must be longer than 1.2 x the retry "
                     "period (%gs)",
                     renew_deadline, retry_period);
        return -1;
    }
    return 0;
}

kube_leader_step_t kube_leader_decide(const kube_lease_t *lease, const char *me, double observed_at,
                                      double now, double default_duration)
{
    double d = lease->lease_duration_seconds > 0 ? (double)lease->lease_duration_seconds
                                                 : default_duration;
    if (strcmp(lease->holder_identity, me) == 0)
        return KUBE_LEADER_KEEP;
    if (lease->holder_identity[0] && observed_at + d > now)
        return KUBE_LEADER_WAIT;
    return KUBE_LEADER_TAKE;
}

char *kube_leader_body(const char *ns, const char *name, const char *resource_version,
                       const kube_leader_record_t *rec)
{
    util_jgen_t j;
    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "apiVersion", "coordination.k8s.io/v1");
    util_jgen_kv(&j, "kind", "Lease");
    util_jgen_str(&j, "metadata");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "name", name);
    util_jgen_kv(&j, "namespace", ns);
    if (resource_version)
        util_jgen_kv(&j, "resourceVersion", resource_version);
    util_jgen_map_close(&j);
    util_jgen_str(&j, "spec");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "holderIdentity", rec->holder ? rec->holder : "");
    util_jgen_kint(&j, "leaseDurationSeconds", rec->duration < 1 ? 1 : rec->duration);
    util_jgen_kv(&j, "acquireTime", rec->acquire_time);
    util_jgen_kv(&j, "renewTime", rec->renew_time);
    util_jgen_kint(&j, "leaseTransitions", rec->transitions < 0 ? 0 : rec->transitions);
    util_jgen_map_close(&j);
    util_jgen_map_close(&j);
    char *out;
    util_jgen_finish(&j, &out);
    return out;
}

static void replace(char **slot, const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        return; /* the old text stays: the next read differs, and is taken again */
    free(*slot);
    *slot = copy;
}

/* Takes in a Lease read or written: a new record restarts the clock; a
 * new holder is logged and counted. */
static void observe(kube_leader_t *l, const kube_lease_t *lease)
{
    if (l->rv && strcmp(l->rv, lease->obj.resource_version) == 0)
        return;
    l->observed_at = mono_now();
    replace(&l->rv, lease->obj.resource_version);
    if (!l->holder || strcmp(l->holder, lease->holder_identity) != 0) {
        log_info("lease holder", "lease", l->obj_path, "holder",
                 lease->holder_identity[0] ? lease->holder_identity : "(none)", "previous",
                 l->holder && l->holder[0] ? l->holder : "(none)", "self", l->identity);
        if (l->holder)
            metrics_counter_add(c_transitions, 1, NULL);
        replace(&l->holder, lease->holder_identity);
    }
    replace(&l->acquire, lease->acquire_time);
    l->transitions = lease->lease_transitions;
}

/* Decodes a Lease body and observes it. Returns the lease (caller frees)
 * or NULL (logged). */
static kube_lease_t *take_body(kube_leader_t *l, const kube_result_t *res)
{
    char err[256];
    kube_obj_t *o = kube_decode_one(KUBE_KIND_LEASE, res->body ? res->body : "",
                                    res->body ? res->body_len : 0, err, sizeof(err));
    kube_lease_t *lease = (kube_lease_t *)kube_obj_as_lease(o);
    if (!lease) {
        log_warn("the Lease could not be read", "lease", l->obj_path, "error", o ? "kind" : err);
        kube_obj_free(o);
        return NULL;
    }
    observe(l, lease);
    return lease;
}

static void schedule(kube_leader_t *l, double after)
{
    if (l->released)
        return;
    ev_timer_stop(l->loop, &l->tick);
    ev_timer_set(&l->tick, after, 0);
    ev_timer_start(l->loop, &l->tick);
}

static void schedule_retry(kube_leader_t *l)
{
    double jitter = l->leading ? 0 : 0.2 * ((double)rand() / RAND_MAX);
    schedule(l, l->o.retry_period * (1 + jitter));
}

/* Leadership ends at once: the owner's on_stop fences its writes. */
static void lose(kube_leader_t *l, const char *why)
{
    if (!l->leading)
        return;
    l->leading = false;
    l->need_read = true;
    ev_timer_stop(l->loop, &l->deadline);
    metrics_gauge_set(g_leader, 0, NULL);
    log_warn("stopped leading", "lease", l->obj_path, "reason", why, "self", l->identity);
    if (l->o.on_stop)
        l->o.on_stop(l->o.ud);
}

static void won(kube_leader_t *l)
{
    l->valid_until = l->req_sent + l->o.renew_deadline;
    ev_timer_stop(l->loop, &l->deadline);
    ev_timer_set(&l->deadline, l->valid_until - mono_now(), 0);
    ev_timer_start(l->loop, &l->deadline);
    if (l->leading)
        return;
    l->leading = true;
    metrics_gauge_set(g_leader, 1, NULL);
    log_info("started leading", "lease", l->obj_path, "self", l->identity);
    if (l->o.on_start)
        l->o.on_start(l->o.ud);
}

static void send(kube_leader_t *l, const char *method, const char *path, char *body,
                 void (*on_done)(void *, const kube_result_t *))
{
    /* counted apart from the engine's requests in api_requests_total */
    const char *verb = strcmp(method, "GET") == 0    ? "lease_get"
                       : strcmp(method, "POST") == 0 ? "lease_create"
                                                     : "lease_update";
    kube_req_opts_t ro = {.method = method,
                          .verb = verb,
                          .path = path,
                          .content_type = body ? "application/json" : NULL,
                          .body = body,
                          .body_len = body ? strlen(body) : 0,
                          .timeout = l->req_timeout,
                          .on_done = on_done,
                          .ud = l};
    l->req_sent = mono_now();
    l->req = kube_http_request(l->http, &ro);
    free(body);
    if (!l->req) {
        log_error("cannot send a Lease request: out of memory", "lease", l->obj_path);
        schedule_retry(l);
    }
}

static void on_written(void *ud, const kube_result_t *res);

static void send_write(kube_leader_t *l, write_kind_t kind)
{
    char now[TIME_RFC3339_MAX];
    micro_now(now, sizeof(now));
    kube_leader_record_t rec = {
        .holder = kind == W_RELEASE ? "" : l->identity,
        .duration = kind == W_RELEASE ? 1 : (long long)(l->o.lease_duration + 0.5),
        .acquire_time = kind == W_KEEP && l->acquire && l->acquire[0] ? l->acquire : now,
        .renew_time = now,
        .transitions = l->transitions + (kind == W_TAKE ? 1 : 0),
    };
    char *body =
        kube_leader_body(l->ns, l->name, kind == W_CREATE ? NULL : (l->rv ? l->rv : ""), &rec);
    if (!body) {
        log_error("cannot build the Lease: out of memory", "lease", l->obj_path);
        schedule_retry(l);
        return;
    }
    l->writing = kind;
    send(l, kind == W_CREATE ? "POST" : "PUT", kind == W_CREATE ? l->coll_path : l->obj_path, body,
         on_written);
}

static void on_read(void *ud, const kube_result_t *res)
{
    kube_leader_t *l = ud;
    l->req = NULL;
    if (res->cancelled) /* the transport is going */
        return;
    if (res->status == 404) {
        send_write(l, W_CREATE);
        return;
    }
    if (res->error) {
        log_warn("cannot read the Lease", "lease", l->obj_path, "error", res->error);
        schedule_retry(l);
        return;
    }
    kube_lease_t *lease = take_body(l, res);
    if (!lease) {
        schedule_retry(l);
        return;
    }
    kube_leader_step_t step =
        kube_leader_decide(lease, l->identity, l->observed_at, mono_now(), l->o.lease_duration);
    kube_obj_free(&lease->obj);
    l->need_read = false;
    if (step == KUBE_LEADER_WAIT) {
        lose(l, "another replica holds the Lease");
        schedule_retry(l);
        return;
    }
    send_write(l, step == KUBE_LEADER_KEEP ? W_KEEP : W_TAKE);
}

static void on_written(void *ud, const kube_result_t *res)
{
    kube_leader_t *l = ud;
    l->req = NULL;
    if (res->cancelled && l->writing != W_RELEASE)
        return;
    if (l->writing == W_RELEASE) {
        if (res->error)
            log_warn("cannot release the Lease", "lease", l->obj_path, "error", res->error);
        else
            log_info("released the Lease", "lease", l->obj_path, "self", l->identity);
        if (l->done)
            l->done(l->done_ud);
        return;
    }
    if (res->error) {
        if (res->status == 409)
            l->need_read = true; /* changed since read: read it again */
        if (l->leading || res->status != 409)
            log_warn("cannot write the Lease", "lease", l->obj_path, "error", res->error);
        schedule_retry(l);
        return;
    }
    kube_lease_t *lease = take_body(l, res);
    if (!lease)
        l->need_read = true; /* the write worked; read the record before the next one */
    kube_obj_free(lease ? &lease->obj : NULL);
    won(l);
    schedule_retry(l);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    kube_leader_t *l = w->data;
    (void)loop;
    (void)revents;
    if (l->req || l->released)
        return;
    if (l->leading && l->rv && !l->need_read)
        send_write(l, W_KEEP);
    else
        send(l, "GET", l->obj_path, NULL, on_read);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    kube_leader_t *l = w->data;
    (void)loop;
    (void)revents;
    if (!l->leading)
        return;
    char why[96];
    snprintf(why, sizeof(why), "no renew succeeded within the renew deadline (%gs)",
             l->o.renew_deadline);
    if (l->req) { /* a renew still on its way is abandoned */
        kube_req_cancel(l->req);
        l->req = NULL;
    }
    lose(l, why);
    schedule_retry(l);
}

/* The collection and object paths of the Lease. Returns 0 or -1. */
static int make_paths(kube_leader_t *l)
{
    const kube_resource_t *r = kube_resource_of_kind(KUBE_KIND_LEASE);
    buf_t b;
    buf_init(&b, PATH_MAX_BYTES);
    int rc = kube_resource_path(r, l->ns, NULL, NULL, &b);
    l->coll_path = rc == 0 ? util_strdup_or_null(b.data) : NULL;
    buf_reset(&b);
    rc = kube_resource_path(r, l->ns, l->name, NULL, &b);
    l->obj_path = rc == 0 ? util_strdup_or_null(b.data) : NULL;
    buf_free(&b);
    return l->coll_path && l->obj_path ? 0 : -1;
}

/* Registered by every elector (the registry returns the existing ones). */
static void leader_metrics(void)
{
    g_leader = metrics_gauge_new("leader", "1 while this replica holds the leader Lease.", 0, NULL);
    c_transitions =
        metrics_counter_new("leader_transitions_total",
                            "Changes of the leader Lease's holder this replica saw.", 0, NULL);
}

kube_leader_t *kube_leader_new(struct ev_loop *loop, kube_http_t *http, const kube_leader_opts_t *o,
                               char *err, size_t errlen)
{
    if (!o->ns || !o->ns[0] || !o->name || !o->name[0] || !o->identity || !o->identity[0] ||
        strlen(o->identity) > KUBE_LEADER_IDENTITY_MAX) {
        util_set_err(err, errlen,
                     "the Lease needs a namespace, a name and an identity of at most "
                     "%d bytes",
                     KUBE_LEADER_IDENTITY_MAX);
        return NULL;
    }
    if (kube_leader_check_times(o->lease_duration, o->renew_deadline, o->retry_period, err,
                                errlen) < 0)
        return NULL;
    kube_leader_t *l = calloc(1, sizeof(*l));
    if (!l || !(l->ns = strdup(o->ns)) || !(l->name = strdup(o->name)) ||
        !(l->identity = strdup(o->identity)) || make_paths(l) < 0) {
        util_set_err(err, errlen, "out of memory");
        kube_leader_free(l);
        return NULL;
    }
    l->loop = loop;
    l->http = http;
    l->o = *o;
    l->req_timeout = o->renew_deadline / 2 < 1 ? 1 : o->renew_deadline / 2;
    ev_init(&l->tick, on_tick);
    ev_init(&l->deadline, on_deadline);
    l->tick.data = l->deadline.data = l;
    leader_metrics();
    metrics_gauge_set(g_leader, 0, NULL);
    return l;
}

void kube_leader_start(kube_leader_t *l)
{
    if (l->started || l->released)
        return;
    l->started = true;
    log_info("electing", "lease", l->obj_path, "self", l->identity);
    schedule(l, 0);
}

bool kube_leader_leading(const kube_leader_t *l)
{
    return l && l->leading;
}

const char *kube_leader_holder(const kube_leader_t *l)
{
    return l && l->holder ? l->holder : "";
}

void kube_leader_release(kube_leader_t *l, void (*done)(void *ud), void *ud)
{
    bool was = l->leading;
    if (l->released) {
        if (done)
            done(ud);
        return;
    }
    ev_timer_stop(l->loop, &l->tick);
    if (l->req) {
        kube_req_cancel(l->req);
        l->req = NULL;
    }
    lose(l, "shutting down");
    l->released = true;
    l->done = done;
    l->done_ud = ud;
    if (!was || !l->rv) {
        if (done)
            done(ud);
        return;
    }
    send_write(l, W_RELEASE);
    if (!l->req && done)
        done(ud);
}

void kube_leader_free(kube_leader_t *l)
{
    if (!l)
        return;
    if (l->req)
        kube_req_cancel(l->req);
    if (l->loop) {
        ev_timer_stop(l->loop, &l->tick);
        ev_timer_stop(l->loop, &l->deadline);
    }
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l->coll_path);
    free(l->obj_path);
    free(l->rv);
    free(l->holder);
    free(l->acquire);
    free(l);
}
