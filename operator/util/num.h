/*
 * util/num — checked parsing of decimal integers read from outside.
 *
 * Every number vmdrain reads from the cluster (an attempt number in a
 * migration's name, a time in an abort record, a count in a node
 * annotation) goes through num_parse_i64(): no sign unless allowed, digits
 * only, no overflow, a range to fit. Calls nothing but libc.
 */
#ifndef VMDRAIN_UTIL_NUM_H
#define VMDRAIN_UTIL_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Parses the len bytes at s (no terminator needed) as a decimal integer in
 * [min, max]: an optional '-' (only when min < 0), then 1 to 19 digits,
 * nothing else. Returns 0 and sets *out, or -1 (bad text, overflow, out of
 * range) leaving *out alone. */
int num_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/* The same for a NUL-terminated string into an int. */
int num_parse_int(const char *s, int min, int max, int *out);

/* Parses a duration as a flag gives it: a decimal number (digits and at
 * most one '.', 15 characters at most) and one unit of "ms", "s", "m" or
 * "h", or none for seconds ("15s", "1.5", "500ms", "2m"). Returns 0 and
 * sets *out to seconds, or -1 leaving it alone. */
int num_parse_duration(const char *s, double *out);

#endif
