/*
 * cmd/metrics_auth — /metrics behind a bearer token (see metrics_auth.h):
 * takes the token from the request, asks kube/authreview, and answers.
 *
 * Calls web/server and kube/authreview.
 */
#include "cmd/metrics_auth.h"
#include "kube/authreview.h"

#include <stdio.h>
#include <string.h>

#define CHALLENGE "WWW-Authenticate: Bearer realm=\"vmdrain\"\r\n"

/* Answers req with status and one line: prefix, then why. */
static void refuse(web_request_t *req, int status, const char *headers, const char *prefix,
                   const char *why)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s%s\n", prefix, why);

    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(body)) {
        n = (int)sizeof(body) - 1;
        body[n - 1] = '\n';
    }
    web_respond_headers(req, status, NULL, headers, body, (size_t)n);
}

static void on_verdict(void *ud, kube_authz_verdict_t v, const char *why)
{
    web_request_t *req = ud;

    switch (v) {
    case KUBE_AUTHZ_ALLOWED:
        web_respond_metrics(req);
        break;
    case KUBE_AUTHZ_UNAUTHENTICATED:
        refuse(req, 401, CHALLENGE, "unauthorized: ", why);
        break;
    case KUBE_AUTHZ_FORBIDDEN:
        refuse(req, 403, NULL, "forbidden: ", why);
        break;
    case KUBE_AUTHZ_BUSY:
        refuse(req, 429, "Retry-After: 1\r\n", "", why);
        break;
    default:
        refuse(req, 503, NULL, "cannot check the token: ", why);
        break;
    }
}

void cmd_metrics_guard(web_request_t *req, void *ud)
{
    char err[160];
    const char *tok = NULL;
    long n = kube_bearer_token(web_request_authorization(req), &tok, err, sizeof(err));

    if (n == 0)
        snprintf(err, sizeof(err), "%s needs a bearer token (Authorization: Bearer TOKEN)",
                 web_request_path(req));
    if (n <= 0) {
        kube_authz_refused(ud, err);
        refuse(req, 401, CHALLENGE, "unauthorized: ", err);
        return;
    }
    kube_authz_check(ud, tok, (size_t)n, "get", web_request_path(req), on_verdict, req);
}
