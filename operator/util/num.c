/*
 * util/num — see num.h. Calls only libc; called wherever a number is read
 * from the cluster (drain/history, drain/bodies).
 */
#include "util/num.h"

#include <stdlib.h>
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

int num_parse_duration(const char *s, double *out)
{
    static const struct {
        const char *unit;
        double scale;
    } units[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"", 1}};
    size_t digits = 0, dots = 0, n;

    if (!s)
        return -1;
    for (n = 0; (s[n] >= '0' && s[n] <= '9') || s[n] == '.'; n++) {
        if (s[n] == '.')
            dots++;
        else
            digits++;
    }
    if (!digits || dots > 1 || n > 15)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s + n, units[i].unit) != 0)
            continue;
        char tmp[16];
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        *out = strtod(tmp, NULL) * units[i].scale;
        return 0;
    }
    return -1;
}
