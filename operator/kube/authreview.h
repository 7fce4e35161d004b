/*
 * authreview — who holds a bearer token and whether they may do something,
 * asked of the apiserver as its own delegated authentication and
 * authorization do: a TokenReview names the user, a SubjectAccessReview
 * for a non-resource path and verb ("get" "/metrics") answers whether that
 * user may. This is what guards vmdrain's /metrics when --metrics-auth is
 * on.
 *
 * A check is asynchronous: kube_authz_check() answers from its cache at
 * once or sends the reviews and answers from the loop. Verdicts are cached
 * by the SHA-256 of token, verb and path (the token itself is never kept
 * nor logged): allowed for KUBE_AUTHZ_ALLOW_TTL, refused for
 * KUBE_AUTHZ_DENY_TTL, errors not at all. At most KUBE_AUTHZ_MAX_INFLIGHT
 * checks wait for the apiserver at once; beyond that a check is answered
 * KUBE_AUTHZ_BUSY, so a flood of made-up tokens cannot become a flood of
 * reviews. Every verdict is counted in
 * vmdrain_metrics_auth_total{result}; refusals are logged (a few lines every
 * ten seconds at most, so a flood cannot fill the log).
 *
 * The parsers below take what the apiserver (or a client's header) sent:
 * sizes are capped and bad input is refused with an error naming it.
 *
 * Owns the cache and the checks in flight. Calls kube/http, util/jsontree,
 * util/jsongen, util/metrics, util/log and OpenSSL's SHA-256.
 */
#ifndef VMDRAIN_KUBE_AUTHREVIEW_H
#define VMDRAIN_KUBE_AUTHREVIEW_H

#include "kube/http.h"

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;

#define KUBE_AUTHZ_ALLOW_TTL    60.0        /* seconds an allowed token is trusted */
#define KUBE_AUTHZ_DENY_TTL     10.0        /* seconds a refused token stays refused */
#define KUBE_AUTHZ_CACHE        64          /* cached verdicts */
#define KUBE_AUTHZ_MAX_INFLIGHT 16          /* checks waiting for the apiserver */
#define KUBE_AUTHZ_TOKEN_MAX    8192        /* bytes of a bearer token */
#define KUBE_AUTHZ_REVIEW_MAX   (64u << 10) /* bytes of a review's answer */
#define KUBE_AUTHZ_MAX_GROUPS   64
#define KUBE_AUTHZ_MAX_EXTRA    16 /* keys of user.extra, and values per key */
#define KUBE_AUTHZ_NAME_MAX     256
#define KUBE_AUTHZ_WHY_MAX      256

/* --- parsers (pure) ------------------------------------------------------ */

/* The token of an Authorization header's value: "Bearer TOKEN" (the scheme
 * in any case, spaces around the token ignored). Returns its length with
 * *tok pointing into header, or 0 when there is none or it is not a
 * bearer token, or -1 when it is one but malformed (empty, longer than
 * KUBE_AUTHZ_TOKEN_MAX, or holding a space or a control character), with
 * err saying which. */
long kube_bearer_token(const char *header, const char **tok, char *err, size_t errlen);

/* The user a TokenReview names. */
typedef struct kube_authz_user {
    char name[KUBE_AUTHZ_NAME_MAX];
    char uid[KUBE_AUTHZ_NAME_MAX];
    char *groups[KUBE_AUTHZ_MAX_GROUPS];
    size_t ngroups;
    struct {
        char *key;
        char *values[KUBE_AUTHZ_MAX_EXTRA];
        size_t nvalues;
    } extra[KUBE_AUTHZ_MAX_EXTRA];
    size_t nextra;
} kube_authz_user_t;

void kube_authz_user_free(kube_authz_user_t *u);

/* The request body of a TokenReview of token. NULL when out of memory or
 * the token is not UTF-8. Free it. */
char *kube_tokenreview_body(const char *token, size_t len, size_t *out_len);

/* Decodes a TokenReview's answer. Returns 1 when status.authenticated is
 * true (u holds the user: a username is required), 0 when it is not (why
 * holds status.error, or "not authenticated"), -1 when the body is not a
 * TokenReview (err says what; u and why are empty). u is freed with
 * kube_authz_user_free() whatever the result. */
int kube_tokenreview_parse(const char *body, size_t len, kube_authz_user_t *u, char *why,
                           size_t whylen, char *err, size_t errlen);

/* The request body of a SubjectAccessReview: may user u do verb on the
 * non-resource path? NULL when out of memory. Free it. */
char *kube_sar_body(const kube_authz_user_t *u, const char *verb, const char *path,
                    size_t *out_len);

/* Decodes a SubjectAccessReview's answer. Returns 1 when status.allowed is
 * true (and status.denied not), 0 when not (why holds status.reason or
 * status.evaluationError, or "no RBAC rule allows it"), -1 when the body
 * is not a SubjectAccessReview (err says what). */
int kube_sar_parse(const char *body, size_t len, char *why, size_t whylen, char *err,
                   size_t errlen);

/* --- checks (asynchronous) ---------------------------------------------- */

typedef enum kube_authz_verdict {
    KUBE_AUTHZ_ALLOWED,
    KUBE_AUTHZ_UNAUTHENTICATED, /* the token names no one (answer 401) */
    KUBE_AUTHZ_FORBIDDEN,       /* its user may not (answer 403) */
    KUBE_AUTHZ_BUSY,            /* too many checks in flight (answer 429) */
    KUBE_AUTHZ_ERROR,           /* the apiserver could not say (answer 503) */
} kube_authz_verdict_t;

/* "allowed", "unauthenticated", "forbidden", "busy", "error". */
const char *kube_authz_verdict_name(kube_authz_verdict_t v);

/* A check's answer; why is one line for the client and the log (the user's
 * name and the reason; never the token). */
typedef void (*kube_authz_fn)(void *ud, kube_authz_verdict_t v, const char *why);

typedef struct kube_authz kube_authz_t;

/* A checker sending its reviews through h (borrowed; it must outlive the
 * checker, or be freed first: then the checks in flight are answered
 * KUBE_AUTHZ_ERROR). NULL when out of memory. */
kube_authz_t *kube_authz_new(struct ev_loop *loop, kube_http_t *h);

/* Answers every check in flight with KUBE_AUTHZ_ERROR ("shutting down")
 * and frees the checker. NULL is fine. */
void kube_authz_free(kube_authz_t *a);

/* Checks whether token (len bytes) may do verb on path; fn is called
 * exactly once, from inside this call when the cache or a limit answers,
 * else later from the loop. */
void kube_authz_check(kube_authz_t *a, const char *token, size_t len, const char *verb,
                      const char *path, kube_authz_fn fn, void *ud);

/* Counts and logs a request refused before any check (no bearer token, a
 * malformed one) as "unauthenticated". */
void kube_authz_refused(kube_authz_t *a, const char *why);

/* Checks in flight (tests). */
size_t kube_authz_inflight(const kube_authz_t *a);

#endif
