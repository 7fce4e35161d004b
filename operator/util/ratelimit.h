/*
 * ratelimit — a token bucket: qps tokens a second, at most burst of them
 * saved up.
 *
 * Each event reserves one token; when none is left the reservation is
 * still taken (the bucket goes below zero) and the caller is told how long
 * to wait, so waiters leave in the order they came, exactly qps a second.
 * The clock is injected: the bucket never reads the time itself and never
 * sleeps.
 *
 * Owns nothing; calls nothing but the clock it is given.
 */
#ifndef VMDRAIN_UTIL_RATELIMIT_H
#define VMDRAIN_UTIL_RATELIMIT_H

#include <stdbool.h>

/* The clock: seconds, monotonic, any origin. */
typedef double (*util_clock_fn)(void *ud);

typedef struct util_ratelimit {
    double qps;    /* <= 0: unlimited */
    double burst;  /* tokens the bucket holds at most (>= 1 when limited) */
    double tokens; /* may be negative: reserved ahead */
    double last;   /* clock reading of the last refill */
    util_clock_fn clock;
    void *clock_ud;
} util_ratelimit_t;

/* A full bucket. qps <= 0 means unlimited (every reservation waits 0);
 * burst < 1 is taken as 1. */
void util_ratelimit_init(util_ratelimit_t *rl, double qps, int burst, util_clock_fn clock,
                         void *clock_ud);

/* Whether the bucket limits anything. */
bool util_ratelimit_limited(const util_ratelimit_t *rl);

/* Reserves one token. Returns the seconds to wait before the event may
 * happen: 0 when a token was there. */
double util_ratelimit_reserve(util_ratelimit_t *rl);

/* Gives back a reservation that will not be used (the bucket never holds
 * more than burst). */
void util_ratelimit_release(util_ratelimit_t *rl);

#endif
