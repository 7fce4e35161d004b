/*
 * timefmt — RFC 3339 timestamps, as Kubernetes writes them.
 *
 * metav1.Time is "2019-03-29T04:02:49Z"; MicroTime and other writers add a
 * fraction and may use an offset. Times are kept as UTC seconds and
 * nanoseconds since the epoch; no libc time zone state is touched.
 */
#ifndef VMDRAIN_UTIL_TIMEFMT_H
#define VMDRAIN_UTIL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

typedef struct vd_time {
    int64_t sec;  /* seconds since 1970-01-01T00:00:00Z */
    int32_t nsec; /* 0 .. 999999999 */
} vd_time_t;

/* Room for the longest formatted time ("...T..:..:...123456789Z") + NUL. */
#define TIME_RFC3339_MAX 40

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)". Lower-case 't' and
 * 'z' are accepted as RFC 3339 allows. Returns 0, or -1 with a message that
 * quotes the input in err (may be NULL). */
int time_parse_rfc3339(const char *s, vd_time_t *out, char *err, size_t errlen);

/* Formats t in UTC with 'Z'. digits is the number of fraction digits: 0
 * (metav1.Time), 3, 6 (MicroTime) or 9. Returns the length written, or -1
 * when out is too small or the year is outside 0000..9999. */
int time_format_rfc3339(vd_time_t t, int digits, char *out, size_t outlen);

/* Seconds from a to b as a double (negative when b is before a). */
double time_diff(vd_time_t a, vd_time_t b);

#endif
