/*
 * authreview — TokenReview and SubjectAccessReview: their bodies, their
 * answers, and the cached asynchronous check built on them (see
 * authreview.h).
 *
 * Owns the verdict cache and the checks in flight. Calls kube/http,
 * util/jsontree, util/jsongen, util/metrics, util/log, util/strutil and
 * OpenSSL (SHA-256, OPENSSL_cleanse).
 */
#include "kube/authreview.h"
#include "util/jsongen.h"
#include "util/jsontree.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/strutil.h"

#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REVIEW_DEPTH_MAX 16
#define TOKENREVIEWS     "/apis/authentication.k8s.io/v1/tokenreviews"
#define SARS             "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#define REVIEW_TIMEOUT   10.0
#define LOG_WINDOW       10.0 /* seconds */
#define LOG_BURST        5    /* refusals logged in a window */

/* --- the bearer token ----------------------------------------------------- */

long kube_bearer_token(const char *header, const char **tok, char *err, size_t errlen)
{
    const char *p = header;
    size_t n;

    *tok = NULL;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return 0;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0) {
        util_set_err(err, errlen, "Authorization: Bearer without a token");
        return -1;
    }
    if (n > KUBE_AUTHZ_TOKEN_MAX) {
        util_set_err(err, errlen, "Authorization: bearer token longer than %d bytes",
                     KUBE_AUTHZ_TOKEN_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f) {
            util_set_err(err, errlen,
                         "Authorization: bearer token holds a space or a byte that is not "
                         "printable ASCII (at %zu)",
                         i);
            return -1;
        }
    }
    *tok = p;
    return (long)n;
}

/* --- the user ------------------------------------------------------------- */

void kube_authz_user_free(kube_authz_user_t *u)
{
    for (size_t i = 0; i < u->ngroups; i++)
        free(u->groups[i]);
    for (size_t i = 0; i < u->nextra; i++) {
        free(u->extra[i].key);
        for (size_t k = 0; k < u->extra[i].nvalues; k++)
            free(u->extra[i].values[k]);
    }
    memset(u, 0, sizeof(*u));
}

/* Copies a string member into a fixed field. Returns 0; -1 with err set
 * when it is there but no string or too long. */
static int take_string(yajl_val obj, const char *key, char *out, size_t cap, bool required,
                       const char *where, char *err, size_t errlen)
{
    yajl_val v = util_json_member(obj, key);

    out[0] = '\0';
    if (!v) {
        if (required)
            util_set_err(err, errlen, "%s.%s: missing", where, key);
        return required ? -1 : 0;
    }
    if (!YAJL_IS_STRING(v)) {
        util_set_err(err, errlen, "%s.%s: %s, want a string", where, key, util_json_type_name(v));
        return -1;
    }
    if (strlen(v->u.string) >= cap) {
        util_set_err(err, errlen, "%s.%s: longer than %zu bytes", where, key, cap - 1);
        return -1;
    }
    if (required && !v->u.string[0]) {
        util_set_err(err, errlen, "%s.%s: empty", where, key);
        return -1;
    }
    memcpy(out, v->u.string, strlen(v->u.string) + 1);
    return 0;
}

/* Copies an array of strings (absent: none) into out[max]. Returns the
 * count, or -1 with err set. */
static long take_strings(yajl_val arr, char **out, size_t max, const char *where, char *err,
                         size_t errlen)
{
    size_t n;

    if (!arr)
        return 0;
    if (!YAJL_IS_ARRAY(arr)) {
        util_set_err(err, errlen, "%s: %s, want an array", where, util_json_type_name(arr));
        return -1;
    }
    n = arr->u.array.len;
    if (n > max) {
        util_set_err(err, errlen, "%s: %zu entries, at most %zu", where, n, max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val v = arr->u.array.values[i];
        if (!YAJL_IS_STRING(v) || strlen(v->u.string) >= KUBE_AUTHZ_NAME_MAX) {
            util_set_err(err, errlen, "%s[%zu]: %s", where, i,
                         YAJL_IS_STRING(v) ? "too long" : "not a string");
            return -(long)i - 1;
        }
        if (!(out[i] = strdup(v->u.string))) {
            util_set_err(err, errlen, "%s: out of memory", where);
            return -(long)i - 1;
        }
    }
    return (long)n;
}

/* Fills u->extra from the object extra (absent: none). Returns 0 or -1. */
static int take_extra(yajl_val extra, kube_authz_user_t *u, char *err, size_t errlen)
{
    if (!extra)
        return 0;
    if (!YAJL_IS_OBJECT(extra)) {
        util_set_err(err, errlen, "status.user.extra: %s, want an object",
                     util_json_type_name(extra));
        return -1;
    }
    if (extra->u.object.len > KUBE_AUTHZ_MAX_EXTRA) {
        util_set_err(err, errlen, "status.user.extra: %zu keys, at most %d", extra->u.object.len,
                     KUBE_AUTHZ_MAX_EXTRA);
        return -1;
    }
    for (size_t i = 0; i < extra->u.object.len; i++) {
        long n;
        if (strlen(extra->u.object.keys[i]) >= KUBE_AUTHZ_NAME_MAX ||
            !(u->extra[i].key = strdup(extra->u.object.keys[i]))) {
            util_set_err(err, errlen, "status.user.extra: a key too long");
            return -1;
        }
        u->nextra = i + 1;
        n = take_strings(extra->u.object.values[i], u->extra[i].values, KUBE_AUTHZ_MAX_EXTRA,
                         "status.user.extra values", err, errlen);
        u->extra[i].nvalues = n < 0 ? (size_t)(-n - 1) : (size_t)n;
        if (n < 0)
            return -1;
    }
    return 0;
}

/* The top object of a review answer of kind, and its status. */
static yajl_val review_status(yajl_val top, const char *kind, char *err, size_t errlen)
{
    yajl_val k = util_json_member(top, "kind"), st;

    if (!YAJL_IS_OBJECT(top)) {
        util_set_err(err, errlen, "%s: %s, want an object", kind, util_json_type_name(top));
        return NULL;
    }
    if (k && (!YAJL_IS_STRING(k) || strcmp(k->u.string, kind) != 0)) {
        util_set_err(err, errlen, "%s: kind is %s", kind,
                     YAJL_IS_STRING(k) ? k->u.string : util_json_type_name(k));
        return NULL;
    }
    st = util_json_member(top, "status");
    if (!st || !YAJL_IS_OBJECT(st)) {
        util_set_err(err, errlen, "%s: status %s", kind, st ? "is not an object" : "is missing");
        return NULL;
    }
    return st;
}

/* A boolean member: 1, 0 (false or absent), -1 when another type. */
static int take_bool(yajl_val obj, const char *key, const char *where, char *err, size_t errlen)
{
    yajl_val v = util_json_member(obj, key);

    if (!v)
        return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        util_set_err(err, errlen, "%s.%s: %s, want a boolean", where, key, util_json_type_name(v));
        return -1;
    }
    return YAJL_IS_TRUE(v) ? 1 : 0;
}

static int tokenreview_tree(yajl_val top, kube_authz_user_t *u, char *why, size_t whylen, char *err,
                            size_t errlen)
{
    yajl_val st = review_status(top, "TokenReview", err, errlen), user;
    int ok;
    long n;

    if (!st || (ok = take_bool(st, "authenticated", "status", err, errlen)) < 0 ||
        take_string(st, "error", why, whylen, false, "status", err, errlen) < 0)
        return -1;
    if (!ok) {
        if (!why[0])
            util_set_err(why, whylen, "not authenticated");
        return 0;
    }
    user = util_json_member(st, "user");
    if (!user || !YAJL_IS_OBJECT(user)) {
        util_set_err(err, errlen, "status.user: %s", user ? "not an object" : "missing");
        return -1;
    }
    if (take_string(user, "username", u->name, sizeof(u->name), true, "status.user", err, errlen) <
            0 ||
        take_string(user, "uid", u->uid, sizeof(u->uid), false, "status.user", err, errlen) < 0)
        return -1;
    n = take_strings(util_json_member(user, "groups"), u->groups, KUBE_AUTHZ_MAX_GROUPS,
                     "status.user.groups", err, errlen);
    u->ngroups = n < 0 ? (size_t)(-n - 1) : (size_t)n;
    if (n < 0 || take_extra(util_json_member(user, "extra"), u, err, errlen) < 0)
        return -1;
    return 1;
}

int kube_tokenreview_parse(const char *body, size_t len, kube_authz_user_t *u, char *why,
                           size_t whylen, char *err, size_t errlen)
{
    yajl_val top;
    int rc;

    memset(u, 0, sizeof(*u));
    why[0] = '\0';
    if (len > KUBE_AUTHZ_REVIEW_MAX) {
        util_set_err(err, errlen, "TokenReview: answer of %zu bytes, at most %u", len,
                     KUBE_AUTHZ_REVIEW_MAX);
        return -1;
    }
    top = util_json_tree_parse(body, len, REVIEW_DEPTH_MAX, "TokenReview", err, errlen);
    if (!top)
        return -1;
    rc = tokenreview_tree(top, u, why, whylen, err, errlen);
    yajl_tree_free(top);
    if (rc < 0) {
        kube_authz_user_free(u);
        why[0] = '\0';
    }
    return rc;
}

int kube_sar_parse(const char *body, size_t len, char *why, size_t whylen, char *err, size_t errlen)
{
    yajl_val top, st;
    char reason[KUBE_AUTHZ_WHY_MAX], eval[KUBE_AUTHZ_WHY_MAX];
    int allowed = -1, denied = -1;

    why[0] = '\0';
    if (len > KUBE_AUTHZ_REVIEW_MAX) {
        util_set_err(err, errlen, "SubjectAccessReview: answer of %zu bytes, at most %u", len,
                     KUBE_AUTHZ_REVIEW_MAX);
        return -1;
    }
    top = util_json_tree_parse(body, len, REVIEW_DEPTH_MAX, "SubjectAccessReview", err, errlen);
    if (!top)
        return -1;
    st = review_status(top, "SubjectAccessReview", err, errlen);
    if (st && (allowed = take_bool(st, "allowed", "status", err, errlen)) >= 0 &&
        (denied = take_bool(st, "denied", "status", err, errlen)) >= 0 &&
        take_string(st, "reason", reason, sizeof(reason), false, "status", err, errlen) == 0 &&
        take_string(st, "evaluationError", eval, sizeof(eval), false, "status", err, errlen) == 0) {
        yajl_tree_free(top);
        if (allowed && !denied)
            return 1;
        util_set_err(why, whylen, "%s",
                     reason[0] ? reason
                     : eval[0] ? eval
                               : "no RBAC rule allows it");
        return 0;
    }
    yajl_tree_free(top);
    return -1;
}

/* --- request bodies ------------------------------------------------------- */

/* Opens a review's document: apiVersion, kind, and "spec": { open. */
static void review_open(util_jgen_t *j, const char *api_version, const char *kind)
{
    util_jgen_init(j);
    util_jgen_map_open(j);
    util_jgen_kv(j, "apiVersion", api_version);
    util_jgen_kv(j, "kind", kind);
    util_jgen_str(j, "spec");
    util_jgen_map_open(j);
}

/* Closes spec and the document; its text (free it), or NULL. */
static char *review_close(util_jgen_t *j, size_t *out_len)
{
    char *out = NULL;
    long n;

    util_jgen_map_close(j);
    util_jgen_map_close(j);
    n = util_jgen_take(j, &out);
    util_jgen_free(j);
    if (n < 0)
        return NULL;
    *out_len = (size_t)n;
    return out;
}

char *kube_tokenreview_body(const char *token, size_t len, size_t *out_len)
{
    util_jgen_t j;

    review_open(&j, "authentication.k8s.io/v1", "TokenReview");
    util_jgen_str(&j, "token");
    util_jgen_strn(&j, token, len);
    return review_close(&j, out_len);
}

static void gen_strings(util_jgen_t *j, char *const *v, size_t n)
{
    util_jgen_array_open(j);
    for (size_t i = 0; i < n; i++)
        util_jgen_str(j, v[i]);
    util_jgen_array_close(j);
}

char *kube_sar_body(const kube_authz_user_t *u, const char *verb, const char *path, size_t *out_len)
{
    util_jgen_t j;

    review_open(&j, "authorization.k8s.io/v1", "SubjectAccessReview");
    util_jgen_str(&j, "nonResourceAttributes");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "path", path);
    util_jgen_kv(&j, "verb", verb);
    util_jgen_map_close(&j);
    util_jgen_kv(&j, "user", u->name);
    if (u->uid[0])
        util_jgen_kv(&j, "uid", u->uid);
    util_jgen_str(&j, "groups");
    gen_strings(&j, u->groups, u->ngroups);
    util_jgen_str(&j, "extra");
    util_jgen_map_open(&j);
    for (size_t i = 0; i < u->nextra; i++) {
        util_jgen_str(&j, u->extra[i].key);
        gen_strings(&j, u->extra[i].values, u->extra[i].nvalues);
    }
    util_jgen_map_close(&j);
    return review_close(&j, out_len);
}

/* --- the checker ---------------------------------------------------------- */

typedef struct cache_entry {
    unsigned char key[SHA256_DIGEST_LENGTH];
    kube_authz_verdict_t verdict;
    char why[KUBE_AUTHZ_WHY_MAX];
    double expires; /* ev_now; 0: empty */
} cache_entry_t;

typedef struct check check_t;

struct kube_authz {
    kube_http_t *http;
    struct ev_loop *loop;
    cache_entry_t cache[KUBE_AUTHZ_CACHE];
    check_t *inflight;
    size_t ninflight;
    metrics_counter_t *verdicts;
    double window;       /* ev_now when the current log window began */
    unsigned logged;     /* refusals logged in it */
    unsigned suppressed; /* refusals not logged since the last line */
};

struct check {
    kube_authz_t *a;
    check_t *prev, *next;
    unsigned char key[SHA256_DIGEST_LENGTH];
    char verb[16];
    char path[256];
    kube_authz_user_t user; /* after the TokenReview */
    kube_req_t *req;
    kube_authz_fn fn;
    void *ud;
};

const char *kube_authz_verdict_name(kube_authz_verdict_t v)
{
    static const char *const names[] = {"allowed", "unauthenticated", "forbidden", "busy", "error"};
    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "error";
}

kube_authz_t *kube_authz_new(struct ev_loop *loop, kube_http_t *h)
{
    static const char *const labels[] = {"result"};
    kube_authz_t *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->http = h;
    a->loop = loop;
    a->verdicts = metrics_counter_new("metrics_auth_total",
                                      "Requests for /metrics checked with a TokenReview and a "
                                      "SubjectAccessReview, by result.",
                                      1, labels);
    return a;
}

size_t kube_authz_inflight(const kube_authz_t *a)
{
    return a->ninflight;
}

/* Counts a verdict and logs a fresh refusal (one from the cache was logged
 * when it was made): at most LOG_BURST lines every LOG_WINDOW seconds, the
 * next line telling how many were left out. */
static void note(kube_authz_t *a, kube_authz_verdict_t v, const char *why, bool fresh)
{
    const char *name = kube_authz_verdict_name(v);
    double now = ev_now(a->loop);

    if (a->verdicts) {
        const char *values[] = {name};
        metrics_counter_add(a->verdicts, 1, values);
    }
    if (v == KUBE_AUTHZ_ALLOWED || !fresh)
        return;
    if (now - a->window >= LOG_WINDOW) {
        a->window = now;
        a->logged = 0;
    }
    if (a->logged >= LOG_BURST) {
        a->suppressed++;
        return;
    }
    char more[32];
    snprintf(more, sizeof(more), "%u", a->suppressed);
    log_info("metrics request refused", "result", name, "why", why, "refusals_not_logged", more);
    a->logged++;
    a->suppressed = 0;
}

void kube_authz_refused(kube_authz_t *a, const char *why)
{
    note(a, KUBE_AUTHZ_UNAUTHENTICATED, why, true);
}

/* Answers a check: counts, logs, calls back. */
static void answer(kube_authz_t *a, kube_authz_verdict_t v, const char *why, bool fresh,
                   kube_authz_fn fn, void *ud)
{
    note(a, v, why, fresh);
    fn(ud, v, why);
}

static void cache_put(kube_authz_t *a, const unsigned char *key, kube_authz_verdict_t v,
                      const char *why)
{
    cache_entry_t *slot = &a->cache[0];
    double now = ev_now(a->loop);

    for (size_t i = 0; i < KUBE_AUTHZ_CACHE; i++) {
        cache_entry_t *e = &a->cache[i];
        if (e->expires <= now || memcmp(e->key, key, sizeof(e->key)) == 0) {
            slot = e;
            break;
        }
        if (e->expires < slot->expires)
            slot = e;
    }
    memcpy(slot->key, key, sizeof(slot->key));
    slot->verdict = v;
    util_set_err(slot->why, sizeof(slot->why), "%s", why);
    slot->expires = now + (v == KUBE_AUTHZ_ALLOWED ? KUBE_AUTHZ_ALLOW_TTL : KUBE_AUTHZ_DENY_TTL);
}

static const cache_entry_t *cache_get(const kube_authz_t *a, const unsigned char *key)
{
    double now = ev_now(a->loop);

    for (size_t i = 0; i < KUBE_AUTHZ_CACHE; i++)
        if (a->cache[i].expires > now && memcmp(a->cache[i].key, key, SHA256_DIGEST_LENGTH) == 0)
            return &a->cache[i];
    return NULL;
}

/* Unlinks and frees c after answering it; the verdict is cached unless an
 * error. */
static void check_end(check_t *c, kube_authz_verdict_t v, const char *why)
{
    kube_authz_t *a = c->a;

    if (c->prev)
        c->prev->next = c->next;
    else
        a->inflight = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->ninflight--;
    if (v == KUBE_AUTHZ_ALLOWED || v == KUBE_AUTHZ_UNAUTHENTICATED || v == KUBE_AUTHZ_FORBIDDEN)
        cache_put(a, c->key, v, why);
    answer(a, v, why, true, c->fn, c->ud);
    kube_authz_user_free(&c->user);
    free(c);
}

/* A review that got no usable answer: the error, one line. */
static void check_failed(check_t *c, const char *what, const kube_result_t *res, const char *err)
{
    char why[KUBE_AUTHZ_WHY_MAX];

    util_set_err(why, sizeof(why), "%s failed: %s", what, err ? err : res->error);
    check_end(c, KUBE_AUTHZ_ERROR, why);
}

static void on_sar(void *ud, const kube_result_t *res)
{
    check_t *c = ud;
    char why[KUBE_AUTHZ_WHY_MAX], err[256], line[KUBE_AUTHZ_WHY_MAX + KUBE_AUTHZ_NAME_MAX];
    int rc;

    c->req = NULL;
    if (res->error) {
        check_failed(c, "SubjectAccessReview", res, NULL);
        return;
    }
    rc = kube_sar_parse(res->body, res->body_len, why, sizeof(why), err, sizeof(err));
    if (rc < 0) {
        check_failed(c, "SubjectAccessReview", res, err);
        return;
    }
    util_set_err(line, sizeof(line), "user %s may %s %s%s%s", c->user.name, c->verb, c->path,
                 rc ? "" : " not: ", rc ? "" : why);
    check_end(c, rc ? KUBE_AUTHZ_ALLOWED : KUBE_AUTHZ_FORBIDDEN, line);
}

/* Sends a review body to path; on_done gets c. Returns 0 or -1. */
static int send_review(check_t *c, const char *path, char *body, size_t len,
                       void (*on_done)(void *, const kube_result_t *))
{
    kube_req_opts_t o = {.method = "POST",
                         .path = path,
                         .content_type = "application/json",
                         .body = body,
                         .body_len = len,
                         .timeout = REVIEW_TIMEOUT,
                         .max_body = KUBE_AUTHZ_REVIEW_MAX,
                         .on_done = on_done,
                         .ud = c,
                         .verb = "create",
                         .unfenced = true};

    c->req = body ? kube_http_request(c->a->http, &o) : NULL;
    if (body) {
        OPENSSL_cleanse(body, len);
        free(body);
    }
    return c->req ? 0 : -1;
}

static void on_tokenreview(void *ud, const kube_result_t *res)
{
    check_t *c = ud;
    char why[KUBE_AUTHZ_WHY_MAX], err[256], *body;
    size_t len = 0;
    int rc;

    c->req = NULL;
    if (res->error) {
        check_failed(c, "TokenReview", res, NULL);
        return;
    }
    rc = kube_tokenreview_parse(res->body, res->body_len, &c->user, why, sizeof(why), err,
                                sizeof(err));
    if (rc < 0) {
        check_failed(c, "TokenReview", res, err);
        return;
    }
    if (rc == 0) {
        char line[KUBE_AUTHZ_WHY_MAX + 32];
        util_set_err(line, sizeof(line), "token not accepted: %s", why);
        check_end(c, KUBE_AUTHZ_UNAUTHENTICATED, line);
        return;
    }
    body = kube_sar_body(&c->user, c->verb, c->path, &len);
    if (send_review(c, SARS, body, len, on_sar) < 0)
        check_failed(c, "SubjectAccessReview", res, "cannot send it (out of memory?)");
}

/* The cache key of a check. Returns 0, or -1 when the digest failed. */
static int check_key(const char *token, size_t len, const char *verb, const char *path,
                     unsigned char *key)
{
    EVP_MD_CTX *s = EVP_MD_CTX_new();
    int ok = s && EVP_DigestInit_ex(s, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(s, token, len) == 1 && EVP_DigestUpdate(s, "\n", 1) == 1 &&
             EVP_DigestUpdate(s, verb, strlen(verb)) == 1 && EVP_DigestUpdate(s, "\n", 1) == 1 &&
             EVP_DigestUpdate(s, path, strlen(path)) == 1 && EVP_DigestFinal_ex(s, key, NULL) == 1;

    EVP_MD_CTX_free(s);
    return ok ? 0 : -1;
}

void kube_authz_check(kube_authz_t *a, const char *token, size_t len, const char *verb,
                      const char *path, kube_authz_fn fn, void *ud)
{
    unsigned char key[SHA256_DIGEST_LENGTH];
    const cache_entry_t *hit;
    check_t *c;
    size_t blen = 0;
    char *body;

    if (check_key(token, len, verb, path, key) < 0) {
        answer(a, KUBE_AUTHZ_ERROR, "cannot check: SHA-256 failed", true, fn, ud);
        return;
    }
    if ((hit = cache_get(a, key))) {
        answer(a, hit->verdict, hit->why, false, fn, ud);
        return;
    }
    if (a->ninflight >= KUBE_AUTHZ_MAX_INFLIGHT) {
        answer(a, KUBE_AUTHZ_BUSY, "too many token reviews in flight; retry", true, fn, ud);
        return;
    }
    if (strlen(verb) >= sizeof(c->verb) || strlen(path) >= sizeof(c->path) ||
        !(c = calloc(1, sizeof(*c)))) {
        answer(a, KUBE_AUTHZ_ERROR, "cannot check: out of memory or a path too long", true, fn, ud);
        return;
    }
    c->a = a;
    memcpy(c->key, key, sizeof(key));
    snprintf(c->verb, sizeof(c->verb), "%s", verb);
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->fn = fn;
    c->ud = ud;
    c->next = a->inflight;
    if (a->inflight)
        a->inflight->prev = c;
    a->inflight = c;
    a->ninflight++;
    body = kube_tokenreview_body(token, len, &blen);
    if (send_review(c, TOKENREVIEWS, body, blen, on_tokenreview) < 0)
        check_end(c, KUBE_AUTHZ_ERROR, "TokenReview failed: cannot send it");
}

void kube_authz_free(kube_authz_t *a)
{
    if (!a)
        return;
    while (a->inflight) {
        check_t *c = a->inflight;
        if (c->req)
            kube_req_cancel(c->req);
        c->req = NULL;
        check_end(c, KUBE_AUTHZ_ERROR, "shutting down");
    }
    OPENSSL_cleanse(a->cache, sizeof(a->cache));
    free(a);
}
