/*
 * status — decodes the Kubernetes Status object (metav1.Status) of an
 * apiserver's error answer: code, reason and message, nothing else.
 *
 * Owns no state. Calls yajl's parser and the C library; called by http.c
 * and by whoever holds a Status body (kube/http.h).
 */
#include "kube/http_int.h"
#include "util/strutil.h"

#include <string.h>
#include <yajl/yajl_parse.h>

#define STATUS_MAX_DEPTH 32

void kube__copy_line(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len;
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* ---- Status decoding ---------------------------------------------------- */

enum status_key { KEY_NONE, KEY_CODE, KEY_REASON, KEY_MESSAGE };

typedef struct status_ctx {
    kube_api_status_t *out;
    int depth;
    enum status_key key; /* key whose value comes next, at depth 1 */
    bool object;
} status_ctx_t;

static int st_scalar(void *ctx)
{
    ((status_ctx_t *)ctx)->key = KEY_NONE;
    return 1;
}

static int st_boolean(void *ctx, int v)
{
    (void)v;
    return st_scalar(ctx);
}

static int st_double(void *ctx, double v)
{
    (void)v;
    return st_scalar(ctx);
}

static int st_integer(void *ctx, long long v)
{
    status_ctx_t *c = ctx;
    if (c->depth == 1 && c->key == KEY_CODE)
        c->out->code = (long)v;
    return st_scalar(ctx);
}

static int st_string(void *ctx, const unsigned char *s, size_t len)
{
    status_ctx_t *c = ctx;
    if (c->depth == 1 && c->key == KEY_REASON)
        kube__copy_line(c->out->reason, sizeof(c->out->reason), (const char *)s, len);
    else if (c->depth == 1 && c->key == KEY_MESSAGE)
        kube__copy_line(c->out->message, sizeof(c->out->message), (const char *)s, len);
    return st_scalar(ctx);
}

static int st_key(void *ctx, const unsigned char *s, size_t len)
{
    status_ctx_t *c = ctx;
    c->key = KEY_NONE;
    if (c->depth != 1)
        return 1;
    if (len == 4 && memcmp(s, "code", 4) == 0)
        c->key = KEY_CODE;
    else if (len == 6 && memcmp(s, "reason", 6) == 0)
        c->key = KEY_REASON;
    else if (len == 7 && memcmp(s, "message", 7) == 0)
        c->key = KEY_MESSAGE;
    return 1;
}

static int st_open(status_ctx_t *c, bool map)
{
    if (c->depth == 0 && !map)
        return 0;
    if (c->depth == 0)
        c->object = true;
    c->key = KEY_NONE;
    return ++c->depth <= STATUS_MAX_DEPTH;
}

static int st_start_map(void *ctx)
{
    return st_open(ctx, true);
}

static int st_start_array(void *ctx)
{
    return st_open(ctx, false);
}

static int st_close(void *ctx)
{
    status_ctx_t *c = ctx;
    c->depth--;
    c->key = KEY_NONE;
    return 1;
}

static const yajl_callbacks status_callbacks = {
    .yajl_null = st_scalar,
    .yajl_boolean = st_boolean,
    .yajl_integer = st_integer,
    .yajl_double = st_double,
    .yajl_string = st_string,
    .yajl_start_map = st_start_map,
    .yajl_map_key = st_key,
    .yajl_end_map = st_close,
    .yajl_start_array = st_start_array,
    .yajl_end_array = st_close,
};

int kube_api_status_decode(const char *body, size_t len, kube_api_status_t *out, char *err,
                           size_t errlen)
{
    status_ctx_t ctx = {.out = out};
    memset(out, 0, sizeof(*out));
    yajl_handle y = yajl_alloc(&status_callbacks, NULL, &ctx);
    if (!y) {
        util_set_err(err, errlen, "Status body: out of memory");
        return -1;
    }
    yajl_status ys = yajl_parse(y, (const unsigned char *)body, len);
    if (ys == yajl_status_ok)
        ys = yajl_complete_parse(y);
    int rc = 0;
    if (ys != yajl_status_ok) {
        if (ctx.depth > STATUS_MAX_DEPTH)
            util_set_err(err, errlen, "Status body nests deeper than %d levels", STATUS_MAX_DEPTH);
        else if (!ctx.object && ctx.depth == 0 && len > 0 && ys == yajl_status_client_canceled)
            util_set_err(err, errlen, "Status body is not a JSON object");
        else {
            unsigned char *msg = yajl_get_error(y, 0, (const unsigned char *)body, len);
            char line[160];
            kube__copy_line(line, sizeof(line), msg ? (const char *)msg : "invalid JSON",
                            msg ? strlen((const char *)msg) : 12);
            util_set_err(err, errlen, "Status body is not valid JSON: %s", line);
            yajl_free_error(y, msg);
        }
        rc = -1;
    } else if (!ctx.object) {
        util_set_err(err, errlen, "Status body is not a JSON object");
        rc = -1;
    }
    yajl_free(y);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}
