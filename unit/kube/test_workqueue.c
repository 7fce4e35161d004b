#include <criterion/criterion.h>

#include "kube/workqueue.h"

#include <string.h>

/* Records the keys processed, in order, and lets a test add keys from
 * inside the callback. */
struct rec {
    struct ev_loop *loop;
    workqueue_t *q;
    char seen[64][32];
    double at[64];
    int n;
    int stop_after;
    const char *readd; /* added again from inside fn, once */
    int fail_times;    /* rate-limited re-adds of "retry" */
};

static void record(void *ud, const char *key)
{
    struct rec *r = ud;
    if (r->n < 64) {
        strncpy(r->seen[r->n], key, sizeof(r->seen[0]) - 1);
        r->at[r->n] = ev_now(r->loop);
    }
    r->n++;
    if (r->readd && strcmp(key, r->readd) == 0) {
        r->readd = NULL;
        workqueue_add(r->q, key);
        workqueue_add(r->q, key); /* dedup while dirty */
    }
    if (strcmp(key, "retry") == 0 && r->fail_times > 0) {
        r->fail_times--;
        workqueue_add_rate_limited(r->q, key);
    }
    if (r->n >= r->stop_after)
        ev_break(r->loop, EVBREAK_ALL);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until stop_after keys were processed or 3 s passed. */
static void run(struct rec *r)
{
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, 3.0, 0);
    ev_timer_start(r->loop, &deadline);
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &deadline);
}

static struct rec *setup(int stop_after)
{
    static struct rec r;
    memset(&r, 0, sizeof(r));
    r.loop = ev_loop_new(EVFLAG_AUTO);
    r.q = workqueue_new(r.loop, record, &r, 0.02, 0.1);
    r.stop_after = stop_after;
    return &r;
}

static void teardown(struct rec *r)
{
    workqueue_free(r->q);
    ev_loop_destroy(r->loop);
}

Test(workqueue, dedups_and_keeps_fifo_order)
{
    struct rec *r = setup(3);
    workqueue_add(r->q, "a");
    workqueue_add(r->q, "b");
    workqueue_add(r->q, "a");
    workqueue_add(r->q, "c");
    cr_expect_eq(workqueue_len(r->q), 3);
    run(r);
    cr_assert_eq(r->n, 3);
    cr_expect_str_eq(r->seen[0], "a");
    cr_expect_str_eq(r->seen[1], "b");
    cr_expect_str_eq(r->seen[2], "c");
    cr_expect_eq(workqueue_len(r->q), 0);
    teardown(r);
}

Test(workqueue, key_added_while_processing_runs_again_once)
{
    struct rec *r = setup(3);
    r->readd = "a";
    workqueue_add(r->q, "a");
    workqueue_add(r->q, "b");
    run(r);
    cr_assert_eq(r->n, 3, "processed %d keys", r->n);
    cr_expect_str_eq(r->seen[0], "a");
    cr_expect_str_eq(r->seen[1], "b");
    cr_expect_str_eq(r->seen[2], "a");
    teardown(r);
}

Test(workqueue, delayed_adds_fire_in_deadline_order)
{
    struct rec *r = setup(3);
    double start = ev_now(r->loop);
    workqueue_add_after(r->q, "late", 0.15);
    workqueue_add_after(r->q, "early", 0.05);
    workqueue_add_after(r->q, "late", 0.5); /* later deadline: ignored */
    workqueue_add(r->q, "now");
    cr_expect_eq(workqueue_delayed(r->q), 2);
    run(r);
    cr_assert_eq(r->n, 3);
    cr_expect_str_eq(r->seen[0], "now");
    cr_expect_str_eq(r->seen[1], "early");
    cr_expect_str_eq(r->seen[2], "late");
    cr_expect_geq(r->at[1] - start, 0.05 - 0.005, "early ran after %.3fs", r->at[1] - start);
    cr_expect_geq(r->at[2] - start, 0.15 - 0.005, "late ran after %.3fs", r->at[2] - start);
    teardown(r);
}

Test(workqueue, rate_limit_backs_off_exponentially_with_cap)
{
    /* each call evaluated once: criterion's float macros expand twice */
    struct rec *r = setup(1);
    const double want[] = {0.02, 0.04, 0.08, 0.1, 0.1};
    for (int i = 0; i < 5; i++) {
        double d = workqueue_add_rate_limited(r->q, "k");
        cr_expect_float_eq(d, want[i], 1e-9, "failure %d: delay %.3f, want %.3f", i + 1, d,
                           want[i]);
    }
    cr_expect_eq(workqueue_failures(r->q, "k"), 5);
    workqueue_forget(r->q, "k");
    cr_expect_eq(workqueue_failures(r->q, "k"), 0);
    double d = workqueue_add_rate_limited(r->q, "k");
    cr_expect_float_eq(d, 0.02, 1e-9, "forget resets the backoff, got %.3f", d);
    teardown(r);
}

Test(workqueue, retries_from_inside_fn_are_spaced)
{
    struct rec *r = setup(3);
    r->fail_times = 2;
    workqueue_add(r->q, "retry");
    run(r);
    cr_assert_eq(r->n, 3);
    cr_expect_geq(r->at[1] - r->at[0], 0.02 - 0.005, "first gap %.3f", r->at[1] - r->at[0]);
    cr_expect_geq(r->at[2] - r->at[1], 0.04 - 0.005, "second gap %.3f", r->at[2] - r->at[1]);
    cr_expect_eq(workqueue_failures(r->q, "retry"), 2);
    teardown(r);
}
