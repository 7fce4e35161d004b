/*
 * jsongen — see jsongen.h. Calls only yajl and the C library.
 */
#include "util/jsongen.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Records st when it is the first failure; returns 0 or -1. */
static int note(util_jgen_t *j, yajl_gen_status st)
{
    if (j->status == yajl_gen_status_ok && st != yajl_gen_status_ok)
        j->status = st;
    return j->status == yajl_gen_status_ok ? 0 : -1;
}

int util_jgen_init(util_jgen_t *j)
{
    j->status = yajl_gen_status_ok;
    j->g = yajl_gen_alloc(NULL);
    if (j->g && !yajl_gen_config(j->g, yajl_gen_validate_utf8, 1)) {
        yajl_gen_free(j->g);
        j->g = NULL;
    }
    return j->g ? 0 : -1;
}

void util_jgen_free(util_jgen_t *j)
{
    if (j->g)
        yajl_gen_free(j->g);
    j->g = NULL;
}

bool util_jgen_ok(const util_jgen_t *j)
{
    return j->g && j->status == yajl_gen_status_ok;
}

int util_jgen_strn(util_jgen_t *j, const char *s, size_t len)
{
    if (!util_jgen_ok(j))
        return -1;
    if (!s)
        return note(j, yajl_gen_null(j->g));
    return note(j, yajl_gen_string(j->g, (const unsigned char *)s, len));
}

int util_jgen_str(util_jgen_t *j, const char *s)
{
    return util_jgen_strn(j, s, s ? strlen(s) : 0);
}

int util_jgen_int(util_jgen_t *j, long long v)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_integer(j->g, v)) : -1;
}

int util_jgen_bool(util_jgen_t *j, bool v)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_bool(j->g, v)) : -1;
}

int util_jgen_null(util_jgen_t *j)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_null(j->g)) : -1;
}

int util_jgen_map_open(util_jgen_t *j)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_map_open(j->g)) : -1;
}

int util_jgen_map_close(util_jgen_t *j)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_map_close(j->g)) : -1;
}

int util_jgen_array_open(util_jgen_t *j)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_array_open(j->g)) : -1;
}

int util_jgen_array_close(util_jgen_t *j)
{
    return util_jgen_ok(j) ? note(j, yajl_gen_array_close(j->g)) : -1;
}

int util_jgen_kv(util_jgen_t *j, const char *key, const char *value)
{
    util_jgen_str(j, key);
    return util_jgen_str(j, value);
}

int util_jgen_kint(util_jgen_t *j, const char *key, long long value)
{
    util_jgen_str(j, key);
    return util_jgen_int(j, value);
}

int util_jgen_get(util_jgen_t *j, const char **text, size_t *len)
{
    const unsigned char *buf = NULL;

    *text = NULL;
    *len = 0;
    if (!util_jgen_ok(j) || note(j, yajl_gen_get_buf(j->g, &buf, len)) < 0)
        return -1;
    *text = (const char *)buf;
    return 0;
}

long util_jgen_take(util_jgen_t *j, char **out)
{
    const char *text;
    size_t len;

    *out = NULL;
    if (util_jgen_get(j, &text, &len) < 0)
        return -1;
    *out = malloc(len + 1);
    if (!*out)
        return -1;
    memcpy(*out, text, len);
    (*out)[len] = '\0';
    return (long)len;
}

int util_jgen_finish(util_jgen_t *j, char **out)
{
    long n = util_jgen_take(j, out);
    util_jgen_free(j);
    if (n < 0 || n > INT32_MAX) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return (int)n;
}

/* yajl has no text for its statuses. */
const char *util_jgen_error(const util_jgen_t *j)
{
    switch (j->status) {
    case yajl_gen_status_ok:
        return j->g ? "ok" : "out of memory";
    case yajl_gen_keys_must_be_strings:
        return "a key must be a string";
    case yajl_max_depth_exceeded:
        return "nested too deep";
    case yajl_gen_in_error_state:
        return "generator in error state";
    case yajl_gen_generation_complete:
        return "document already complete";
    case yajl_gen_invalid_number:
        return "invalid number";
    case yajl_gen_no_buf:
        return "no buffer";
    case yajl_gen_invalid_string:
        return "invalid UTF-8 in a string";
    }
    return "unknown status";
}
