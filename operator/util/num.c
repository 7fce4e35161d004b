/*
 * util/num — see num.h. Calls only libc; called wherever a number is read
 * from the cluster (drain/history, drain/bodies).
 */
#include "util/num.h"

#include <string.h>

int num_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    int neg = 0;
    uint64_t v = 0;
    size_t i = 0;

    if (!s || len == 0)
        return -1;
    if (s[0] == '-') {
        if (min >= 0)
            return -1;
        neg = 1;
        i = 1;
    }
    if (i == len || len - i > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits never overflow a uint64_t */
    }
    if (!neg && v > (uint64_t)INT64_MAX)
        return -1;
    if (neg && v > (uint64_t)INT64_MAX + 1)
        return -1;
    int64_t r = neg ? (int64_t)(0 - v) : (int64_t)v;
    if (r < min || r > max)
        return -1;
    *out = r;
    return 0;
}

int num_parse_int(const char *s, int min, int max, int *out)
{
    int64_t v;

    if (!s || num_parse_i64(s, strlen(s), min, max, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}
