/*
 * web/admission — the AdmissionReview v1 codec of the eviction webhook.
 *
 * Owns the wire format only: admission_decode() turns the apiserver's
 * request body into an admission_request_t (checked, capped, every bad
 * field named), admission_encode()/admission_respond() turn an answer into
 * the response. The decision itself is drain/eviction.c's, and
 * cmd/webhook.c joins the two; nothing here decides or does I/O beyond
 * answering the web request it is given.
 *
 * May call: web/server (to answer), util/buf, util/text, yajl.
 */
#ifndef VMDRAIN_WEB_ADMISSION_H
#define VMDRAIN_WEB_ADMISSION_H

#include "util/buf.h"
#include "web/server.h"

#include <stdbool.h>
#include <stddef.h>

/* Largest AdmissionReview body accepted, and deepest JSON nesting. */
#define ADMISSION_BODY_MAX  (1024 * 1024)
#define ADMISSION_DEPTH_MAX 32

/* What a decoded AdmissionReview request says. Strings are NUL-terminated
 * copies; the struct owns no memory. */
typedef struct admission_request {
    char uid[129];      /* request.uid, echoed in the response */
    char name[254];     /* request.name: the pod to evict */
    char ns[64];        /* request.namespace */
    char username[256]; /* request.userInfo.username, for logs; cut when longer; "" when absent */
    /* request.dryRun, or "All" in request.object.deleteOptions.dryRun:
     * the answer is the same, but nothing may be changed */
    bool dry_run;
} admission_request_t;

/* The answer to send: allowed, or denied with status {code, message,
 * reason}, and a warning. Borrowed strings. */
typedef struct admission_response {
    bool allowed;
    int code;            /* Status.code when denied (429, ...) */
    const char *reason;  /* Status.reason when denied ("TooManyRequests") */
    const char *message; /* Status.message when denied */
    const char *warning; /* one entry of response.warnings (the API server
                            passes it to the client as a Warning header), or NULL */
} admission_response_t;

/* Decodes an AdmissionReview (admission.k8s.io/v1) for a pods/eviction
 * CREATE from len bytes of JSON (no terminator needed). Returns 0, or -1
 * with a message naming the offending field in err: the body is not JSON,
 * too big or too deep, not an AdmissionReview v1, or not an eviction. */
int admission_decode(const char *body, size_t len, admission_request_t *out, char *err,
                     size_t errlen);

/* Appends the AdmissionReview response for uid to out: allowed, or denied
 * with status {code, message, reason}. Returns 0, or -1 when out's cap is
 * reached or a string is not valid UTF-8. */
int admission_encode(const char *uid, const admission_response_t *res, buf_t *out);

/* Answers req with the AdmissionReview response for uid (HTTP 200), or
 * with 500 when it cannot be encoded. */
void admission_respond(web_request_t *req, const char *uid, const admission_response_t *res);

#endif
