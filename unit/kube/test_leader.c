#include <criterion/criterion.h>

#include "kube/decode.h"
#include "kube/leader.h"
#include "testserver.h"
#include "util/log.h"
#include "util/metrics.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLL "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
#define OBJ  COLL "/vmdrain"

static struct ev_loop *loop;
static testserver_t *srv;
static kube_config_t cfg;
static kube_http_t *h;
static kube_leader_t *el;
static int starts, stops;
static double started_at, stopped_at;

static void setup(void)
{
    char err[256];
    unsetenv("http_proxy");
    unsetenv("all_proxy");
    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, NULL);
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = testserver_start();
    cr_assert_not_null(srv);
    cfg.source = strdup("test");
    cfg.server = strdup(testserver_url(srv));
    h = kube_http_new_opts(loop, &cfg, NULL, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    starts = stops = 0;
    started_at = stopped_at = 0;
}

static void teardown(void)
{
    kube_http_free(h);
    kube_leader_free(el);
    el = NULL;
    testserver_stop(srv);
    ev_loop_destroy(loop);
    free(cfg.server);
    free(cfg.source);
    memset(&cfg, 0, sizeof(cfg));
    metrics_free_all();
    kube_http_global_cleanup();
}

TestSuite(leader, .init = setup, .fini = teardown, .timeout = 30);

static void on_start(void *ud)
{
    (void)ud;
    starts++;
    started_at = ev_time();
}

static void on_stop(void *ud)
{
    (void)ud;
    stops++;
    stopped_at = ev_time();
}

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static bool run_until(const int *counter, int want, double seconds)
{
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    double end = ev_time() + seconds;
    while (*counter < want && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return *counter >= want;
}

/* A Lease as the apiserver returns it. */
static const char *lease_json(const char *holder, const char *rv, int duration, int transitions)
{
    static char out[4][512];
    static int next;
    char *s = out[next++ % 4];
    snprintf(s, 512,
             "{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\",\"metadata\":{"
             "\"name\":\"vmdrain\",\"namespace\":\"ns\",\"resourceVersion\":\"%s\"},\"spec\":{"
             "\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":%d,\"acquireTime\":"
             "\"2026-12-02T03:00:00.000000Z\",\"renewTime\":\"2026-12-02T03:00:01.500000Z\","
             "\"leaseTransitions\":%d}}",
             rv, holder, duration, transitions);
    return s;
}

static void elect(double lease, double deadline, double retry)
{
    char err[256];
    kube_leader_opts_t o = {.ns = "ns",
                            .name = "vmdrain",
                            .identity = "me_1",
                            .lease_duration = lease,
                            .renew_deadline = deadline,
                            .retry_period = retry,
                            .on_start = on_start,
                            .on_stop = on_stop};
    el = kube_leader_new(loop, h, &o, err, sizeof(err));
    cr_assert_not_null(el, "%s", err);
    kube_leader_start(el);
}

/* The body of the first recorded request with this method, or NULL. */
static const char *body_of(const char *method, int nth)
{
    for (int i = 0; i < testserver_nrequests(srv); i++) {
        const testserver_request_t *q = testserver_request(srv, i);
        if (strcmp(q->method, method) == 0 && nth-- == 0)
            return q->body;
    }
    return NULL;
}

/* ---- the pure parts ---------------------------------------------------------------- */

static kube_lease_t *decode(const char *json)
{
    char err[256];
    kube_obj_t *o = kube_decode_one(KUBE_KIND_LEASE, json, strlen(json), err, sizeof(err));
    cr_assert_not_null(o, "%s", err);
    cr_assert_not_null(kube_obj_as_lease(o));
    return (kube_lease_t *)o;
}

Test(leader, a_lease_decodes_with_its_spec)
{
    kube_lease_t *l = decode(lease_json("a_1", "42", 15, 3));
    cr_expect_str_eq(l->holder_identity, "a_1");
    cr_expect_str_eq(l->obj.resource_version, "42");
    cr_expect_eq(l->lease_duration_seconds, 15);
    cr_expect_eq(l->lease_transitions, 3);
    cr_expect_str_eq(l->renew_time, "2026-12-02T03:00:01.500000Z");
    kube_obj_free(&l->obj);
    l = decode("{\"metadata\":{\"name\":\"x\"},\"spec\":{}}");
    cr_expect_str_eq(l->holder_identity, "");
    cr_expect_eq(l->lease_duration_seconds, -1);
    kube_obj_free(&l->obj);
    char err[256];
    cr_expect_null(kube_decode_one(KUBE_KIND_LEASE, "{\"spec\":{\"leaseDurationSeconds\":\"x\"}}",
                                   36, err, sizeof(err)));
}

Test(leader, decide_follows_the_observed_record_not_the_written_times)
{
    kube_lease_t *other = decode(lease_json("other_1", "7", 15, 0));
    kube_lease_t *mine = decode(lease_json("me_1", "8", 15, 0));
    kube_lease_t *none = decode(lease_json("", "9", 1, 0));
    kube_lease_t *nodur =
        decode("{\"metadata\":{\"name\":\"vmdrain\",\"resourceVersion\":\"3\"},\"spec\":{"
               "\"holderIdentity\":\"other_1\"}}");
    cr_expect_eq(kube_leader_decide(other, "me_1", 100, 100, 15), KUBE_LEADER_WAIT);
    cr_expect_eq(kube_leader_decide(other, "me_1", 100, 114.9, 15), KUBE_LEADER_WAIT);
    cr_expect_eq(kube_leader_decide(other, "me_1", 100, 115.1, 15), KUBE_LEADER_TAKE);
    cr_expect_eq(kube_leader_decide(mine, "me_1", 100, 1000, 15), KUBE_LEADER_KEEP);
    cr_expect_eq(kube_leader_decide(none, "me_1", 100, 100, 15), KUBE_LEADER_TAKE,
                 "a released Lease is free at once");
    cr_expect_eq(kube_leader_decide(nodur, "me_1", 100, 109, 10), KUBE_LEADER_WAIT);
    cr_expect_eq(kube_leader_decide(nodur, "me_1", 100, 110.5, 10), KUBE_LEADER_TAKE,
                 "without a duration the default one applies");
    kube_obj_free(&other->obj);
    kube_obj_free(&mine->obj);
    kube_obj_free(&none->obj);
    kube_obj_free(&nodur->obj);
}

Test(leader, times_are_checked_as_client_go_does)
{
    char err[256] = "";
    cr_expect_eq(kube_leader_check_times(15, 10, 2, err, sizeof(err)), 0);
    cr_expect_eq(kube_leader_check_times(10, 10, 2, err, sizeof(err)), -1);
    cr_expect(strstr(err, "lease duration (10s) must be longer than the renew deadline") != NULL,
              "%s", err);
    cr_expect_eq(kube_leader_check_times(15, 2.3, 2, err, sizeof(err)), -1);
    cr_expect(strstr(err, "1.2 x the retry period (2s)") != NULL, "%s", err);
    cr_expect_eq(kube_leader_check_times(0, -1, 2, err, sizeof(err)), -1);
    cr_expect(strstr(err, "positive") != NULL, "%s", err);
}

Test(leader, the_body_carries_the_record_and_the_version_it_read)
{
    kube_leader_record_t rec = {.holder = "me_1",
                                .duration = 15,
                                .acquire_time = "2026-12-02T03:00:00.000000Z",
                                .renew_time = "2026-12-02T03:00:02.000000Z",
                                .transitions = 4};
    char *b = kube_leader_body("ns", "vmdrain", "77", &rec);
    cr_assert_not_null(b);
    kube_lease_t *l = decode(b);
    cr_expect_str_eq(l->obj.resource_version, "77");
    cr_expect_str_eq(l->obj.ns, "ns");
    cr_expect_str_eq(l->holder_identity, "me_1");
    cr_expect_eq(l->lease_transitions, 4);
    cr_expect_str_eq(l->acquire_time, "2026-12-02T03:00:00.000000Z");
    kube_obj_free(&l->obj);
    free(b);
    rec.holder = NULL;
    rec.duration = 0;
    b = kube_leader_body("ns", "vmdrain", NULL, &rec);
    cr_expect(strstr(b, "\"holderIdentity\":\"\"") && strstr(b, "\"leaseDurationSeconds\":1") &&
                  !strstr(b, "resourceVersion"),
              "%s", b);
    free(b);
}

/* ---- the elector against a scripted apiserver ---------------------------------------- */

Test(leader, creates_an_absent_lease_leads_and_renews)
{
    testserver_route(srv, "GET", OBJ, 404);
    testserver_json(testserver_route(srv, "POST", COLL, 201), lease_json("me_1", "1", 2, 0));
    testserver_json(testserver_route(srv, "PUT", OBJ, 200), lease_json("me_1", "2", 2, 0));
    elect(2, 1, 0.2);
    cr_assert(run_until(&starts, 1, 5), "never led");
    cr_expect(kube_leader_leading(el));
    const char *post = body_of("POST", 0);
    cr_assert_not_null(post);
    cr_expect(strstr(post, "\"holderIdentity\":\"me_1\"") &&
                  strstr(post, "\"leaseDurationSeconds\":2"),
              "%s", post);
    double t0 = ev_time();
    while (!body_of("PUT", 1) && ev_time() - t0 < 3)
        ev_run(loop, EVRUN_ONCE);
    const char *put = body_of("PUT", 1);
    cr_assert_not_null(put, "no second renew");
    cr_expect(strstr(put, "\"resourceVersion\":\"2\"") != NULL, "renews the version it wrote: %s",
              put);
    run_until(&stops, 1, 1.5);
    cr_expect_eq(stops, 0, "renews kept it leading");
    double v = -1;
    cr_expect_eq(metrics_get("leader", NULL, &v), 0);
    cr_expect_eq(v, 1);
}

Test(leader, a_leader_that_cannot_renew_stops_at_the_renew_deadline)
{
    testserver_route(srv, "GET", OBJ, 404);
    testserver_json(testserver_route(srv, "POST", COLL, 201), lease_json("me_1", "1", 2, 0));
    testserver_delay(testserver_route(srv, "PUT", OBJ, 200), -1);
    elect(2, 1, 0.2);
    cr_assert(run_until(&starts, 1, 5));
    cr_assert(run_until(&stops, 1, 5), "never stopped");
    double held = stopped_at - started_at;
    cr_expect(held > 0.8 && held < 1.2, "stopped %.3f s after leading (deadline 1 s)", held);
    cr_expect_not(kube_leader_leading(el));
    double v = -1;
    metrics_get("leader", NULL, &v);
    cr_expect_eq(v, 0);
}

Test(leader, waits_out_a_held_lease_then_takes_it_with_a_transition)
{
    testserver_json(testserver_route(srv, "GET", OBJ, 200), lease_json("other_1", "5", 1, 3));
    testserver_json(testserver_route(srv, "PUT", OBJ, 200), lease_json("me_1", "6", 2, 4));
    double t0 = ev_time();
    elect(2, 1, 0.2);
    cr_assert(run_until(&starts, 1, 5), "never took it");
    cr_expect(started_at - t0 >= 1.0, "took it after %.3f s; the record lasts 1 s",
              started_at - t0);
    const char *put = body_of("PUT", 0);
    cr_assert_not_null(put);
    cr_expect(strstr(put, "\"resourceVersion\":\"5\"") && strstr(put, "\"leaseTransitions\":4") &&
                  strstr(put, "\"holderIdentity\":\"me_1\""),
              "%s", put);
    cr_expect_str_eq(kube_leader_holder(el), "me_1");
}

Test(leader, a_conflict_loses_the_race_and_reads_again)
{
    testserver_json(testserver_route(srv, "GET", OBJ, 200), lease_json("", "5", 1, 0));
    testserver_route(srv, "PUT", OBJ, 409);
    elect(2, 1, 0.2);
    for (double t0 = ev_time(); testserver_nrequests(srv) < 4 && ev_time() - t0 < 5;)
        run_until(&starts, 1, 0.05);
    cr_assert_geq(testserver_nrequests(srv), 4);
    cr_expect_eq(starts, 0);
    int gets = 0;
    while (body_of("GET", gets))
        gets++;
    cr_expect(gets >= 2, "read again after the conflict (%d reads)", gets);
}

static int released;
static void on_released(void *ud)
{
    (void)ud;
    released++;
}

Test(leader, release_writes_an_empty_holder_after_stopping)
{
    testserver_route(srv, "GET", OBJ, 404);
    testserver_json(testserver_route(srv, "POST", COLL, 201), lease_json("me_1", "1", 2, 0));
    testserver_json(testserver_route(srv, "PUT", OBJ, 200), lease_json("", "2", 1, 0));
    elect(2, 1, 0.5);
    cr_assert(run_until(&starts, 1, 5));
    released = 0;
    kube_leader_release(el, on_released, NULL);
    cr_expect_eq(stops, 1, "on_stop runs before the release is sent");
    cr_assert(run_until(&released, 1, 5));
    int last = 0;
    while (body_of("PUT", last + 1))
        last++;
    const char *put = body_of("PUT", last);
    cr_assert_not_null(put);
    cr_expect(strstr(put, "\"holderIdentity\":\"\"") && strstr(put, "\"leaseDurationSeconds\":1"),
              "%s", put);
}
