/*
 * strutil — the small string helpers every module needs: an error message
 * into a caller's buffer, a copy that tolerates NULL, a formatted copy.
 *
 * Owns nothing; calls only the C library.
 */
#ifndef VMDRAIN_UTIL_STRUTIL_H
#define VMDRAIN_UTIL_STRUTIL_H

#include <stddef.h>

/* Formats a message into err (errlen bytes, always NUL-terminated, cut when
 * longer). Does nothing when err is NULL or errlen is 0. */
void util_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A fresh copy of s owned by the caller, or NULL when s is NULL (or memory
 * runs out: callers that care compare with s). */
char *util_strdup_or_null(const char *s);

/* A fresh formatted string owned by the caller, or NULL when memory runs
 * out. */
char *util_strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
