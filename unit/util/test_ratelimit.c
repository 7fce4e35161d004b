#include <criterion/criterion.h>

#include "util/ratelimit.h"

static double fake_now;

/* Criterion's float assertions evaluate their arguments more than once. */
static double wait_of(util_ratelimit_t *rl)
{
    return util_ratelimit_reserve(rl);
}

#define expect_wait(rl, want, ...)                                                                 \
    do {                                                                                           \
        double got_ = wait_of(rl);                                                                 \
        cr_expect_float_eq(got_, (want), 1e-9, __VA_ARGS__);                                       \
    } while (0)

static double fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

Test(ratelimit, a_full_bucket_lets_burst_through_then_paces_at_qps)
{
    util_ratelimit_t rl;
    fake_now = 100;
    util_ratelimit_init(&rl, 10, 3, fake_clock, NULL);
    cr_expect(util_ratelimit_limited(&rl));
    for (int i = 0; i < 3; i++)
        expect_wait(&rl, 0, "event %d", i);
    /* the 4th to 6th wait 0.1, 0.2, 0.3 s: in order, qps apart */
    expect_wait(&rl, 0.1, "wait");
    expect_wait(&rl, 0.2, "wait");
    expect_wait(&rl, 0.3, "wait");
}

Test(ratelimit, tokens_come_back_with_time_up_to_burst)
{
    util_ratelimit_t rl;
    fake_now = 0;
    util_ratelimit_init(&rl, 2, 2, fake_clock, NULL);
    expect_wait(&rl, 0, "wait");
    expect_wait(&rl, 0, "wait");
    expect_wait(&rl, 0.5, "wait");
    fake_now = 0.5; /* the reserved token arrived and was used */
    expect_wait(&rl, 0.5, "wait");
    fake_now = 100; /* a long pause fills the bucket, but only to burst */
    expect_wait(&rl, 0, "wait");
    expect_wait(&rl, 0, "wait");
    double last = wait_of(&rl);
    cr_expect_gt(last, 0);
}

Test(ratelimit, zero_or_negative_qps_is_unlimited)
{
    util_ratelimit_t rl;
    fake_now = 0;
    util_ratelimit_init(&rl, 0, 1, fake_clock, NULL);
    cr_expect_not(util_ratelimit_limited(&rl));
    for (int i = 0; i < 1000; i++)
        expect_wait(&rl, 0, "wait");
    util_ratelimit_init(&rl, -5, 1, fake_clock, NULL);
    cr_expect_not(util_ratelimit_limited(&rl));
    expect_wait(&rl, 0, "wait");
}

Test(ratelimit, a_burst_below_one_is_one)
{
    util_ratelimit_t rl;
    fake_now = 0;
    util_ratelimit_init(&rl, 4, 0, fake_clock, NULL);
    expect_wait(&rl, 0, "wait");
    expect_wait(&rl, 0.25, "wait");
}

Test(ratelimit, a_released_reservation_shortens_the_next_wait)
{
    util_ratelimit_t rl;
    fake_now = 0;
    util_ratelimit_init(&rl, 1, 1, fake_clock, NULL);
    expect_wait(&rl, 0, "wait");
    expect_wait(&rl, 1, "wait");
    util_ratelimit_release(&rl);
    expect_wait(&rl, 1, "wait");
    util_ratelimit_release(&rl);
    util_ratelimit_release(&rl); /* never above burst */
    expect_wait(&rl, 0, "wait");
    expect_wait(&rl, 1, "wait");
}

Test(ratelimit, a_clock_going_back_earns_nothing)
{
    util_ratelimit_t rl;
    fake_now = 50;
    util_ratelimit_init(&rl, 1, 1, fake_clock, NULL);
    expect_wait(&rl, 0, "wait");
    fake_now = 10;
    expect_wait(&rl, 1, "wait");
    fake_now = 51;
    expect_wait(&rl, 1, "wait");
}
