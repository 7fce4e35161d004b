/*
 * timefmt — see timefmt.h. Owns nothing; calls only the C library.
 */
#include "util/timefmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Longest input looked at; anything longer is not a timestamp. */
#define TIME_INPUT_MAX 64

static void set_err(char *err, size_t errlen, const char *s, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "invalid RFC 3339 time \"%.*s\": %s", TIME_INPUT_MAX, s, why);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no time zone or locale state is involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

int time_parse_rfc3339(const char *s, vd_time_t *out, char *err, size_t errlen)
{
    const char *p = s;
    int year, mon, day, hour, min, sec, nsec = 0, off = 0;

    if (!s) {
        set_err(err, errlen, "", "missing");
        return -1;
    }
    if (strnlen(s, TIME_INPUT_MAX + 1) > TIME_INPUT_MAX) {
        set_err(err, errlen, s, "too long");
        return -1;
    }
    if (!digits(&p, 4, &year) || !expect(&p, '-') || !digits(&p, 2, &mon) || !expect(&p, '-') ||
        !digits(&p, 2, &day)) {
        set_err(err, errlen, s, "bad date, want YYYY-MM-DD");
        return -1;
    }
    if (*p != 'T' && *p != 't') {
        set_err(err, errlen, s, "missing 'T' between date and time");
        return -1;
    }
    p++;
    if (!digits(&p, 2, &hour) || !expect(&p, ':') || !digits(&p, 2, &min) || !expect(&p, ':') ||
        !digits(&p, 2, &sec)) {
        set_err(err, errlen, s, "bad time of day, want HH:MM:SS");
        return -1;
    }
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon)) {
        set_err(err, errlen, s, "day or month out of range");
        return -1;
    }
    if (hour > 23 || min > 59 || sec > 59) {
        set_err(err, errlen, s, "hour, minute or second out of range");
        return -1;
    }
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 9)
                nsec = nsec * 10 + (*p - '0');
        if (n == 0) {
            set_err(err, errlen, s, "empty fraction");
            return -1;
        }
        for (; n < 9; n++)
            nsec *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om) || oh > 23 || om > 59) {
            set_err(err, errlen, s, "bad offset, want +HH:MM");
            return -1;
        }
        off = sign * (oh * 3600 + om * 60);
    } else {
        set_err(err, errlen, s, "missing zone, want Z or +HH:MM");
        return -1;
    }
    if (*p) {
        set_err(err, errlen, s, "trailing characters");
        return -1;
    }
    out->sec = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - off;
    out->nsec = nsec;
    return 0;
}

int time_format_rfc3339(vd_time_t t, int ndigits, char *out, size_t outlen)
{
    int64_t days = t.sec / 86400, rem = t.sec % 86400, y;
    int m, d, n;

    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999 || t.nsec < 0 || t.nsec > 999999999)
        return -1;
    n = snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d", (int)y, m, d, (int)(rem / 3600),
                 (int)(rem / 60 % 60), (int)(rem % 60));
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    if (ndigits > 0) {
        int div = 1;
        if (ndigits > 9)
            ndigits = 9;
        for (int i = ndigits; i < 9; i++)
            div *= 10;
        int k = snprintf(out + n, outlen - (size_t)n, ".%0*d", ndigits, t.nsec / div);
        if (k < 0 || (size_t)k >= outlen - (size_t)n)
            return -1;
        n += k;
    }
    if ((size_t)n + 1 >= outlen)
        return -1;
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}

double time_diff(vd_time_t a, vd_time_t b)
{
    return (double)(b.sec - a.sec) + (double)(b.nsec - a.nsec) / 1e9;
}
