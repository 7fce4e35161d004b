/*
 * jsongen — a yajl generator that remembers its first failure.
 *
 * Every call checks yajl's status; after the first status that is not
 * yajl_gen_status_ok the generator refuses everything else, and
 * util_jgen_get() / util_jgen_take() fail. Callers write a whole document
 * with plain calls and check once at the end. Strings are checked as UTF-8
 * (yajl_gen_validate_utf8), so text taken from the cluster cannot produce
 * invalid JSON.
 *
 * Owns its yajl_gen; calls only yajl and the C library.
 */
#ifndef VMDRAIN_UTIL_JSONGEN_H
#define VMDRAIN_UTIL_JSONGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>

typedef struct util_jgen {
    yajl_gen g;             /* NULL when the allocation failed */
    yajl_gen_status status; /* the first status that was not ok, else ok */
} util_jgen_t;

/* Allocates the generator. Returns 0, or -1 when out of memory (the
 * generator is then failed, and util_jgen_free() is still fine). */
int util_jgen_init(util_jgen_t *j);

void util_jgen_free(util_jgen_t *j);

/* Each appends one token and returns 0, or -1 when this call or an earlier
 * one failed. A NULL string is written as null. */
int util_jgen_str(util_jgen_t *j, const char *s);
int util_jgen_strn(util_jgen_t *j, const char *s, size_t len);
int util_jgen_int(util_jgen_t *j, long long v);
int util_jgen_bool(util_jgen_t *j, bool v);
int util_jgen_null(util_jgen_t *j);
int util_jgen_map_open(util_jgen_t *j);
int util_jgen_map_close(util_jgen_t *j);
int util_jgen_array_open(util_jgen_t *j);
int util_jgen_array_close(util_jgen_t *j);

/* A key and its string value (NULL: null). */
int util_jgen_kv(util_jgen_t *j, const char *key, const char *value);

/* A key and its integer value. */
int util_jgen_kint(util_jgen_t *j, const char *key, long long value);

/* Whether every call so far succeeded. */
bool util_jgen_ok(const util_jgen_t *j);

/* The text so far (not NUL-terminated; valid until the next call or
 * util_jgen_free()). Returns 0, or -1 when any call failed. */
int util_jgen_get(util_jgen_t *j, const char **text, size_t *len);

/* A NUL-terminated copy of the text, owned by the caller. Returns its
 * length, or -1 when any call failed or memory ran out (*out is NULL). */
long util_jgen_take(util_jgen_t *j, char **out);

/* util_jgen_take(), then util_jgen_free(): the document's length (at most
 * INT32_MAX), or -1 with *out NULL. */
int util_jgen_finish(util_jgen_t *j, char **out);

/* yajl's name for the first failure ("ok" when none). */
const char *util_jgen_error(const util_jgen_t *j);

#endif
