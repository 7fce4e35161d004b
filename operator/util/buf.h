/*
 * buf — a growable byte buffer with a hard cap.
 *
 * Every byte that reaches vmdrain from outside (HTTP bodies, watch streams,
 * files) passes through a buf, and the cap is what keeps a hostile or broken
 * peer from growing it without bound. The data is always NUL-terminated, so
 * text can be handed to C string functions without a copy.
 */
#ifndef VMDRAIN_UTIL_BUF_H
#define VMDRAIN_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    /* public, read-only */
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len; /* bytes stored, without the terminator */
    /* private */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
} buf_t;

/* Prepares an empty buffer that refuses to grow past max bytes. */
void buf_init(buf_t *b, size_t max);

/* Releases the memory; the buffer is empty and usable again afterwards. */
void buf_free(buf_t *b);

/* Empties the buffer but keeps its memory for reuse. */
void buf_reset(buf_t *b);

/* Appends n bytes. Returns 0, or -1 with errno E2BIG when the cap would be
 * exceeded (nothing is appended then) or ENOMEM. */
int buf_append(buf_t *b, const void *p, size_t n);

/* Appends a C string. Same return as buf_append. */
int buf_puts(buf_t *b, const char *s);

/* Appends formatted text. Same return as buf_append. */
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Drops the first n bytes (all of them when n >= len). */
void buf_consume(buf_t *b, size_t n);

/* Hands the data to the caller, who frees it with free(); the buffer is left
 * empty. Returns an empty string rather than NULL for an empty buffer, or
 * NULL when memory runs out. */
char *buf_steal(buf_t *b);

#endif
