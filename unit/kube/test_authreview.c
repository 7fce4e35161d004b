#include <criterion/criterion.h>

#include "kube/authreview.h"
#include "testserver.h"
#include "util/log.h"
#include "util/metrics.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TR  "/apis/authentication.k8s.io/v1/tokenreviews"
#define SAR "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#define USER_OK                                                                                    \
    "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\",\"spec\":{\"token\":"   \
    "\"t\"},\"status\":{\"authenticated\":true,\"user\":{\"username\":"                            \
    "\"system:serviceaccount:mon:prometheus\",\"uid\":\"u-1\",\"groups\":[\"system:"               \
    "serviceaccounts\",\"system:authenticated\"],\"extra\":{\"authentication.kubernetes.io/"       \
    "pod-name\":[\"prometheus-0\"]}}}}"
#define ALLOWED "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":true}}"
#define DENIED                                                                                     \
    "{\"kind\":\"SubjectAccessReview\",\"status\":{\"allowed\":false,\"reason\":\"no rule\"}}"

/* --- the parsers ------------------------------------------------------------ */

Test(authreview, bearer_tokens_are_taken_from_the_header)
{
    const char *tok;
    char err[160] = "";

    cr_expect_eq(kube_bearer_token("Bearer abc.def", &tok, err, sizeof(err)), 7);
    cr_expect_eq(strncmp(tok, "abc.def", 7), 0);
    cr_expect_eq(kube_bearer_token("  bearer   xyz  ", &tok, err, sizeof(err)), 3);
    cr_expect_eq(strncmp(tok, "xyz", 3), 0);
    cr_expect_eq(kube_bearer_token("", &tok, err, sizeof(err)), 0, "no header");
    cr_expect_eq(kube_bearer_token("Basic dXNlcjpwdw==", &tok, err, sizeof(err)), 0);
    cr_expect_eq(kube_bearer_token("Bearerabc", &tok, err, sizeof(err)), 0);
    cr_expect_eq(kube_bearer_token("Bearer  ", &tok, err, sizeof(err)), -1);
    cr_expect(strstr(err, "without a token") != NULL, "%s", err);
    cr_expect_eq(kube_bearer_token("Bearer a b", &tok, err, sizeof(err)), -1);
    cr_expect(strstr(err, "space") != NULL, "%s", err);
    char *big = malloc(KUBE_AUTHZ_TOKEN_MAX + 16);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'x', KUBE_AUTHZ_TOKEN_MAX + 1);
    big[7 + KUBE_AUTHZ_TOKEN_MAX + 1] = '\0';
    cr_expect_eq(kube_bearer_token(big, &tok, err, sizeof(err)), -1);
    cr_expect(strstr(err, "longer than") != NULL, "%s", err);
    free(big);
}

Test(authreview, a_tokenreview_names_its_user)
{
    kube_authz_user_t u;
    char why[256], err[256];

    cr_assert_eq(
        kube_tokenreview_parse(USER_OK, strlen(USER_OK), &u, why, sizeof(why), err, sizeof(err)), 1,
        "%s", err);
    cr_expect_str_eq(u.name, "system:serviceaccount:mon:prometheus");
    cr_expect_str_eq(u.uid, "u-1");
    cr_assert_eq(u.ngroups, 2);
    cr_expect_str_eq(u.groups[1], "system:authenticated");
    cr_assert_eq(u.nextra, 1);
    cr_expect_str_eq(u.extra[0].values[0], "prometheus-0");

    size_t len = 0;
    char *body = kube_sar_body(&u, "get", "/metrics", &len);
    cr_assert_not_null(body);
    cr_expect(strstr(body, "\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}"),
              "%s", body);
    cr_expect(strstr(body, "\"user\":\"system:serviceaccount:mon:prometheus\""), "%s", body);
    cr_expect(strstr(body, "\"extra\":{\"authentication.kubernetes.io/pod-name\":"
                           "[\"prometheus-0\"]}"),
              "%s", body);
    free(body);
    kube_authz_user_free(&u);
}

Test(authreview, refusals_and_bad_answers_are_told_apart)
{
    static const struct {
        const char *body;
        int rc;
        const char *text; /* in why (rc 0) or err (rc -1) */
    } cases[] = {
        {"{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":false,\"error\":\"token "
         "expired\"}}",
         0, "token expired"},
        {"{\"status\":{}}", 0, "not authenticated"},
        {"{\"kind\":\"Status\",\"status\":{}}", -1, "kind is Status"},
        {"{\"kind\":\"TokenReview\"}", -1, "status is missing"},
        {"{\"status\":{\"authenticated\":\"yes\"}}", -1, "want a boolean"},
        {"{\"status\":{\"authenticated\":true}}", -1, "status.user: missing"},
        {"{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"\"}}}", -1, "empty"},
        {"{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"a\",\"groups\":[1]}}}", -1,
         "not a string"},
        {"[1,2]", -1, "want an object"},
        {"{\"status\":", -1, "invalid JSON"},
    };
    kube_authz_user_t u;
    char why[256], err[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = why[0] = '\0';
        int rc = kube_tokenreview_parse(cases[i].body, strlen(cases[i].body), &u, why, sizeof(why),
                                        err, sizeof(err));
        cr_expect_eq(rc, cases[i].rc, "case %zu: %d (%s%s)", i, rc, why, err);
        cr_expect(strstr(rc == 0 ? why : err, cases[i].text) != NULL, "case %zu: '%s' '%s'", i, why,
                  err);
        kube_authz_user_free(&u);
    }
    cr_expect_eq(kube_sar_parse(ALLOWED, strlen(ALLOWED), why, sizeof(why), err, sizeof(err)), 1);
    cr_expect_eq(kube_sar_parse(DENIED, strlen(DENIED), why, sizeof(why), err, sizeof(err)), 0);
    cr_expect_str_eq(why, "no rule");
    const char *both = "{\"status\":{\"allowed\":true,\"denied\":true}}";
    cr_expect_eq(kube_sar_parse(both, strlen(both), why, sizeof(why), err, sizeof(err)), 0,
                 "denied wins");
    const char *bad = "{\"status\":{\"allowed\":1}}";
    cr_expect_eq(kube_sar_parse(bad, strlen(bad), why, sizeof(why), err, sizeof(err)), -1);
    cr_expect(strstr(err, "status.allowed") != NULL, "%s", err);
}

/* --- checks against a scripted server ----------------------------------------- */

static struct ev_loop *loop;
static testserver_t *srv;
static kube_config_t cfg;
static kube_http_t *h;
static kube_authz_t *az;
static int answers;
static kube_authz_verdict_t last;
static char last_why[512];

static void setup(void)
{
    char err[256];
    unsetenv("http_proxy");
    unsetenv("all_proxy");
    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, NULL);
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = testserver_start();
    cr_assert_not_null(srv);
    cfg.source = strdup("test");
    cfg.server = strdup(testserver_url(srv));
    h = kube_http_new_opts(loop, &cfg, NULL, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    az = kube_authz_new(loop, h);
    cr_assert_not_null(az);
    answers = 0;
}

static void teardown(void)
{
    kube_authz_free(az);
    kube_http_free(h);
    testserver_stop(srv);
    ev_loop_destroy(loop);
    free(cfg.server);
    free(cfg.source);
    memset(&cfg, 0, sizeof(cfg));
    metrics_free_all();
    kube_http_global_cleanup();
}

TestSuite(authz, .init = setup, .fini = teardown, .timeout = 30);

static void on_answer(void *ud, kube_authz_verdict_t v, const char *why)
{
    (void)ud;
    answers++;
    last = v;
    snprintf(last_why, sizeof(last_why), "%s", why);
}

/* Checks token and turns the loop until the answer. */
static kube_authz_verdict_t check(const char *token)
{
    int before = answers;
    kube_authz_check(az, token, strlen(token), "get", "/metrics", on_answer, NULL);
    for (double t0 = ev_time(); answers == before && ev_time() - t0 < 10;)
        ev_run(loop, EVRUN_ONCE);
    cr_assert_eq(answers, before + 1, "one answer");
    return last;
}

static int requests_to(const char *path)
{
    int n = 0;
    for (int i = 0; i < testserver_nrequests(srv); i++)
        n += strcmp(testserver_request(srv, i)->target, path) == 0;
    return n;
}

Test(authz, an_allowed_token_is_asked_once_and_then_cached)
{
    testserver_json(testserver_route(srv, "POST", TR, 201), USER_OK);
    testserver_json(testserver_route(srv, "POST", SAR, 201), ALLOWED);
    cr_expect_eq(check("tok-1"), KUBE_AUTHZ_ALLOWED, "%s", last_why);
    cr_expect(strstr(last_why, "system:serviceaccount:mon:prometheus") != NULL, "%s", last_why);
    cr_expect_eq(check("tok-1"), KUBE_AUTHZ_ALLOWED);
    cr_expect_eq(requests_to(TR), 1, "the second check came from the cache");
    cr_expect_eq(requests_to(SAR), 1);
    const testserver_request_t *q = testserver_request(srv, 0);
    cr_expect(strstr(q->body, "\"token\":\"tok-1\"") != NULL, "%s %s", q->target, q->body);
    q = testserver_request(srv, 1);
    cr_expect(strstr(q->body, "\"path\":\"/metrics\"") != NULL, "%s", q->body);
    cr_expect_eq(kube_authz_inflight(az), 0);
}

Test(authz, a_refused_token_and_a_forbidden_user)
{
    testserver_json(testserver_route(srv, "POST", TR, 201),
                    "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":false,"
                    "\"error\":\"invalid bearer token\"}}");
    cr_expect_eq(check("nobody"), KUBE_AUTHZ_UNAUTHENTICATED);
    cr_expect(strstr(last_why, "invalid bearer token") != NULL, "%s", last_why);
    testserver_json(testserver_route(srv, "POST", TR, 201), USER_OK);
    testserver_json(testserver_route(srv, "POST", SAR, 201), DENIED);
    cr_expect_eq(check("someone"), KUBE_AUTHZ_FORBIDDEN);
    cr_expect(strstr(last_why, "may get /metrics not: no rule") != NULL, "%s", last_why);
    cr_expect_eq(check("nobody"), KUBE_AUTHZ_UNAUTHENTICATED, "cached");
    cr_expect_eq(requests_to(TR), 2);
}

Test(authz, apiserver_errors_are_not_cached)
{
    testserver_route(srv, "POST", TR, 500);
    cr_expect_eq(check("tok"), KUBE_AUTHZ_ERROR);
    cr_expect(strstr(last_why, "TokenReview failed") != NULL, "%s", last_why);
    testserver_json(testserver_route(srv, "POST", TR, 201), "{\"kind\":\"TokenReview\"}");
    cr_expect_eq(check("tok"), KUBE_AUTHZ_ERROR);
    cr_expect(strstr(last_why, "status is missing") != NULL, "%s", last_why);
    cr_expect_eq(requests_to(TR), 2, "asked again after an error");
}

Test(authz, too_many_checks_in_flight_are_answered_busy)
{
    char tok[32];

    testserver_delay(testserver_route(srv, "POST", TR, 201), -1); /* never answers */
    for (int i = 0; i < KUBE_AUTHZ_MAX_INFLIGHT; i++) {
        snprintf(tok, sizeof(tok), "t%d", i);
        kube_authz_check(az, tok, strlen(tok), "get", "/metrics", on_answer, NULL);
    }
    cr_expect_eq(answers, 0);
    cr_expect_eq(kube_authz_inflight(az), KUBE_AUTHZ_MAX_INFLIGHT);
    kube_authz_check(az, "one-more", 8, "get", "/metrics", on_answer, NULL);
    cr_expect_eq(answers, 1, "answered at once");
    cr_expect_eq(last, KUBE_AUTHZ_BUSY);
    kube_authz_free(az); /* the waiting checks are answered */
    az = NULL;
    cr_expect_eq(answers, 1 + KUBE_AUTHZ_MAX_INFLIGHT);
    cr_expect_eq(last, KUBE_AUTHZ_ERROR);
    cr_expect_str_eq(last_why, "shutting down");
}
