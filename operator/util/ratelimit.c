/*
 * ratelimit — see ratelimit.h. Calls only the injected clock.
 */
#include "util/ratelimit.h"

void util_ratelimit_init(util_ratelimit_t *rl, double qps, int burst, util_clock_fn clock,
                         void *clock_ud)
{
    rl->qps = qps > 0 ? qps : 0;
    rl->burst = burst >= 1 ? (double)burst : 1;
    rl->tokens = rl->burst;
    rl->clock = clock;
    rl->clock_ud = clock_ud;
    rl->last = clock ? clock(clock_ud) : 0;
}

bool util_ratelimit_limited(const util_ratelimit_t *rl)
{
    return rl->qps > 0 && rl->clock;
}

/* Adds the tokens earned since the last refill, up to burst. A clock that
 * went backwards earns nothing. */
static void refill(util_ratelimit_t *rl)
{
    double now = rl->clock(rl->clock_ud);

    if (now > rl->last) {
        rl->tokens += (now - rl->last) * rl->qps;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
    }
    if (now > rl->last)
        rl->last = now;
}

double util_ratelimit_reserve(util_ratelimit_t *rl)
{
    if (!util_ratelimit_limited(rl))
        return 0;
    refill(rl);
    rl->tokens -= 1;
    return rl->tokens >= 0 ? 0 : -rl->tokens / rl->qps;
}

void util_ratelimit_release(util_ratelimit_t *rl)
{
    if (!util_ratelimit_limited(rl))
        return;
    refill(rl);
    rl->tokens += 1;
    if (rl->tokens > rl->burst)
        rl->tokens = rl->burst;
}
