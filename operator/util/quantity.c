/*
 * quantity — see quantity.h. Owns nothing; calls only the C library.
 */
#include "util/quantity.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Digits kept exactly; more significant digits than this is treated as
 * overflow rather than silently rounded. */
#define MANTISSA_MAX_DIGITS 19

__extension__ typedef unsigned __int128 u128;

struct parsed {
    bool negative;
    uint64_t mantissa; /* all digits, the decimal point removed */
    int frac_digits;   /* digits that stood after the point */
    int pow10;         /* decimal exponent from the suffix */
    int pow2;          /* binary exponent from the suffix */
};

static void set_err(char *err, size_t errlen, const char *s, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "invalid quantity \"%.*s\": %s", QUANTITY_MAX_LEN, s, why);
}

/* Reads a decimal exponent after 'e'/'E': optional sign, 1-4 digits. */
static bool parse_exponent(const char *p, int *out)
{
    int sign = 1, v = 0, n = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (; *p >= '0' && *p <= '9'; p++, n++) {
        if (n >= 4)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (n == 0 || *p)
        return false;
    *out = sign * v;
    return true;
}

/* Maps the suffix to powers of ten and two. An empty suffix is 10^0. */
static bool parse_suffix(const char *p, struct parsed *q)
{
    static const struct {
        const char *name;
        int pow10, pow2;
    } table[] = {
        {"", 0, 0},    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},  {"k", 3, 0},   {"M", 6, 0},
        {"G", 9, 0},   {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},  {"Ki", 0, 10}, {"Mi", 0, 20},
        {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(p, table[i].name) == 0) {
            q->pow10 = table[i].pow10;
            q->pow2 = table[i].pow2;
            return true;
        }
    }
    if ((p[0] == 'e' || p[0] == 'E') && p[1]) {
        q->pow2 = 0;
        return parse_exponent(p + 1, &q->pow10);
    }
    return false;
}

/* Splits s into sign, mantissa and suffix. */
static int parse_parts(const char *s, struct parsed *q, char *err, size_t errlen)
{
    const char *p = s;
    int digits = 0, significant = 0, extra10 = 0;
    bool seen_point = false;

    memset(q, 0, sizeof(*q));
    if (*p == '+' || *p == '-')
        q->negative = *p++ == '-';
    for (;; p++) {
        if (*p == '.' && !seen_point) {
            seen_point = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            break;
        digits++;
        if (significant == 0 && *p == '0') {
            if (seen_point)
                q->frac_digits++;
            continue;
        }
        if (significant == MANTISSA_MAX_DIGITS) {
            /* beyond exact precision only zeros are accepted: they scale an
             * integer and mean nothing after the point */
            if (*p != '0') {
                set_err(err, errlen, s, "too many significant digits");
                return -1;
            }
            if (!seen_point)
                extra10++;
            continue;
        }
        significant++;
        q->mantissa = q->mantissa * 10 + (uint64_t)(*p - '0');
        if (seen_point)
            q->frac_digits++;
    }
    if (digits == 0) {
        set_err(err, errlen, s, "no number");
        return -1;
    }
    if (!parse_suffix(p, q)) {
        set_err(err, errlen, s, "unknown suffix");
        return -1;
    }
    q->pow10 += extra10;
    return 0;
}

/* Computes ceil(mantissa * 10^(pow10 - frac + scale10) * 2^pow2) exactly
 * in 128 bits; fails when the result does not fit an int64. The mantissa
 * is below 2^64 and pow2 at most 60, so the shift cannot overflow; values
 * only grow while multiplying, so passing the limit there is final. */
static int scale(const struct parsed *q, int scale10, int64_t *out)
{
    const u128 limit = (u128)INT64_MAX + (q->negative ? 1 : 0);
    u128 v = (u128)q->mantissa << q->pow2;
    int e10 = q->pow10 - q->frac_digits + scale10;

    for (; e10 > 0 && v != 0; e10--) {
        if (v > limit)
            return -1;
        v *= 10;
    }
    if (e10 < 0) {
        if (e10 < -38) {
            v = (v != 0 && !q->negative) ? 1 : 0;
        } else {
            u128 d = 1;
            for (; e10 < 0; e10++)
                d *= 10;
            /* Kubernetes rounds up: away from zero for positives, towards
             * it for negatives */
            v = q->negative ? v / d : v / d + (v % d != 0);
        }
    }
    if (v > limit)
        return -1;
    if (q->negative)
        *out = v == 0 ? 0 : -(int64_t)(v - 1) - 1;
    else
        *out = (int64_t)v;
    return 0;
}

static int parse_scaled(const char *s, unsigned flags, int scale10, int64_t *out, char *err,
                        size_t errlen)
{
    struct parsed q;

    if (!s || !*s) {
        set_err(err, errlen, s ? s : "", "empty");
        return -1;
    }
    if (strnlen(s, QUANTITY_MAX_LEN + 1) > QUANTITY_MAX_LEN) {
        set_err(err, errlen, s, "too long");
        return -1;
    }
    if (parse_parts(s, &q, err, errlen) < 0)
        return -1;
    if (q.negative && q.mantissa != 0 && !(flags & QUANTITY_ALLOW_NEGATIVE)) {
        set_err(err, errlen, s, "must not be negative");
        return -1;
    }
    if (scale(&q, scale10, out) < 0) {
        set_err(err, errlen, s, "out of range");
        return -1;
    }
    return 0;
}

int quantity_parse(const char *s, unsigned flags, int64_t *out, char *err, size_t errlen)
{
    return parse_scaled(s, flags, 0, out, err, errlen);
}

int quantity_parse_milli(const char *s, unsigned flags, int64_t *out, char *err, size_t errlen)
{
    return parse_scaled(s, flags, 3, out, err, errlen);
}
