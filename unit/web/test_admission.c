#include <criterion/criterion.h>

#include "web/admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURES "unit/testdata/admission/"

/* --- fixtures ------------------------------------------------------------ */

/* Reads a recorded AdmissionReview; the caller frees it. */
static char *fixture(const char *name, size_t *len)
{
    char path[256];
    FILE *f;
    char *data;
    long n;

    snprintf(path, sizeof(path), FIXTURES "%s", name);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

/* Decodes a fixture that must be valid. */
static admission_request_t decode_ok(const char *name)
{
    admission_request_t rq;
    char err[256] = "";
    size_t len;
    char *body = fixture(name, &len);

    cr_assert_eq(admission_decode(body, len, &rq, err, sizeof(err)), 0, "%s: %s", name, err);
    free(body);
    return rq;
}

/* Decodes text that must be refused; returns the error. */
static const char *decode_bad(const char *text, size_t len)
{
    static char err[256];
    admission_request_t rq;

    err[0] = '\0';
    cr_assert_eq(admission_decode(text, len, &rq, err, sizeof(err)), -1, "accepted: %.200s", text);
    cr_assert_str_empty(rq.uid);
    return err;
}

static const char *decode_bad_fixture(const char *name)
{
    size_t len;
    char *body = fixture(name, &len);
    const char *err = decode_bad(body, len);
    free(body);
    return err;
}

TestSuite(admission, .timeout = 10);

/* --- decoding -------------------------------------------------------------- */

Test(admission, decodes_a_kubectl_drain_review)
{
    admission_request_t rq = decode_ok("drain.json");
    cr_expect_str_eq(rq.uid, "6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13");
    cr_expect_str_eq(rq.name, "virt-launcher-vm-a-7xk2p");
    cr_expect_str_eq(rq.ns, "default");
    cr_expect_str_eq(rq.username, "kubernetes-admin");
    cr_expect_not(rq.dry_run);
}

Test(admission, decodes_service_account_and_grace_period)
{
    admission_request_t rq = decode_ok("drain-grace-period.json");
    cr_expect_str_eq(rq.username, "system:serviceaccount:kube-system:node-drainer");
    cr_expect_str_eq(rq.ns, "prod");
    cr_expect_str_eq(rq.name, "virt-launcher-db-0-x9q2m");
    cr_expect_not(rq.dry_run);
}

Test(admission, dry_run_from_delete_options_or_from_the_review)
{
    cr_expect(decode_ok("drain-dry-run-server.json").dry_run);
    cr_expect(decode_ok("review-dry-run.json").dry_run);
}

Test(admission, accepts_a_request_converted_from_policy_v1beta1)
{
    admission_request_t rq = decode_ok("drain-v1beta1-client.json");
    cr_expect_str_eq(rq.uid, "e9d8c7b6-a5f4-4e3d-8c2b-1a0f9e8d7c6b");
    cr_expect_str_eq(rq.username, "system:admin");
}

Test(admission, refuses_bad_reviews_naming_the_field)
{
    cr_expect_str_eq(decode_bad_fixture("bad-review-v1beta1.json"),
                     "apiVersion: want \"admission.k8s.io/v1\", got \"admission.k8s.io/v1beta1\"");
    cr_expect_str_eq(decode_bad_fixture("bad-pod-create.json"),
                     "request.kind.group: want \"policy\", got \"\"");
    cr_expect_str_eq(decode_bad_fixture("bad-no-uid.json"), "request.uid: missing");
    cr_expect_str_eq(decode_bad_fixture("bad-dry-run-type.json"),
                     "request.object.deleteOptions.dryRun: want an array, got a string");
    cr_expect(strstr(decode_bad_fixture("bad-truncated.json"), "body: invalid JSON") != NULL);
}

/* Replaces the first occurrence of from in drain.json by to and decodes. */
static const char *decode_edited(const char *from, const char *to)
{
    static char text[4096];
    size_t len;
    char *body = fixture("drain.json", &len);
    char *at = strstr(body, from);
    cr_assert_not_null(at, "%s not in drain.json", from);
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
    free(body);
    return decode_bad(text, strlen(text));
}

Test(admission, refuses_other_operations_and_resources)
{
    cr_expect_str_eq(decode_edited("\"operation\":\"CREATE\"", "\"operation\":\"DELETE\""),
                     "request.operation: want \"CREATE\", got \"DELETE\"");
    cr_expect_str_eq(decode_edited("\"subResource\":\"eviction\"", "\"subResource\":\"status\""),
                     "request.subResource: want \"eviction\", got \"status\"");
    cr_expect_str_eq(decode_edited("\"resource\":\"pods\"", "\"resource\":\"nodes\""),
                     "request.resource.resource: want \"pods\", got \"nodes\"");
    cr_expect_str_eq(decode_edited("\"name\":\"virt-launcher-vm-a-7xk2p\",\"namespace\"",
                                   "\"name\":\"\",\"namespace\""),
                     "request.name: missing");
    cr_expect_str_eq(decode_edited("\"dryRun\":false", "\"dryRun\":\"false\""),
                     "request.dryRun: want a boolean, got a string");
    cr_expect_str_eq(decode_edited("\"userInfo\":{", "\"userInfo\":[],\"x\":{"),
                     "request.userInfo: want an object, got an array");
    cr_expect_str_eq(decode_edited("\"apiVersion\":\"policy/v1\"", "\"apiVersion\":\"v1\""),
                     "request.object.apiVersion: want \"policy/v1\", got \"v1\"");
    cr_expect_str_eq(decode_edited("\"deleteOptions\":{}", "\"deleteOptions\":{\"dryRun\":[1]}"),
                     "request.object.deleteOptions.dryRun[0]: want a string, got a number");
}

Test(admission, refuses_garbage_deep_nesting_nul_and_oversize)
{
    cr_expect_str_eq(decode_bad("", 0), "body: empty");
    cr_expect_str_eq(decode_bad("[1,2]", 5), "body: want a JSON object, got an array");
    cr_expect(strstr(decode_bad("{\"a\":", 5), "invalid JSON") != NULL);
    cr_expect_str_eq(decode_bad("{\"a\":1}\0x", 9), "body: contains a NUL byte");
    cr_expect_str_eq(decode_bad("/* c */ {}", 10), "body: invalid JSON: comments are not allowed");

    char deep[200];
    memset(deep, '[', sizeof(deep));
    cr_expect_str_eq(decode_bad(deep, sizeof(deep)), "body: JSON nested deeper than 32 levels");

    /* brackets inside strings do not count */
    char text[512];
    snprintf(text, sizeof(text), "{\"kind\":\"%s\"}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    cr_expect_str_eq(decode_bad(text, strlen(text)),
                     "apiVersion: missing (want \"admission.k8s.io/v1\")");

    size_t big = ADMISSION_BODY_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    cr_expect_str_eq(decode_bad(huge, big), "body: larger than 1048576 bytes");
    free(huge);
}

Test(admission, long_username_is_cut_on_a_utf8_boundary)
{
    char text[4096], user[700];
    size_t len;
    char *body = fixture("drain.json", &len);
    char *at = strstr(body, "kubernetes-admin");
    admission_request_t rq;
    char err[256];

    /* 300 two-byte characters: the cut must not split one */
    user[0] = '\0';
    for (int i = 0; i < 300; i++)
        strcat(user, "\xc3\xa9");
    snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - body), body, user,
             at + strlen("kubernetes-admin"));
    free(body);
    cr_assert_eq(admission_decode(text, strlen(text), &rq, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(strlen(rq.username), 254);
    cr_expect_eq(strncmp(rq.username, user, 254), 0);
}

/* --- the decision ------------------------------------------------------------ */

Test(admission, encodes_a_denial_with_status)
{
    admission_response_t r = {
        .allowed = false,
        .code = 429,
        .reason = "TooManyRequests",
        .message = "Eviction triggered evacuation of VMI default/vm-a: migration queued"};
    buf_t out;
    buf_init(&out, 1 << 16);
    cr_assert_eq(admission_encode("6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13", &r, &out), 0);
    cr_expect_str_eq(out.data,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                     "\"response\":{\"uid\":\"6f3c2a1e-9b7d-4c52-8e1f-2d4a6b8c0e13\","
                     "\"allowed\":false,\"status\":{\"code\":429,\"message\":\"Eviction triggered "
                     "evacuation of VMI default/vm-a: migration queued\","
                     "\"reason\":\"TooManyRequests\"}}}");
    buf_free(&out);
}

Test(admission, encodes_a_warning_allowed_or_denied)
{
    admission_response_t r = {.allowed = true,
                              .warning = "vmdrain (dry run) allowed: pod a/b not found"};
    buf_t out;
    buf_init(&out, 1 << 16);
    cr_assert_eq(admission_encode("u", &r, &out), 0);
    cr_expect_str_eq(out.data,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                     "\"response\":{\"uid\":\"u\",\"allowed\":true,\"warnings\":["
                     "\"vmdrain (dry run) allowed: pod a/b not found\"]}}");
    buf_reset(&out);
    r = (admission_response_t){
        .allowed = false, .code = 429, .reason = "TooManyRequests", .message = "m", .warning = "w"};
    cr_assert_eq(admission_encode("u", &r, &out), 0);
    cr_expect_str_eq(
        out.data, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                  "\"response\":{\"uid\":\"u\",\"allowed\":false,\"warnings\":[\"w\"],"
                  "\"status\":{\"code\":429,\"message\":\"m\",\"reason\":\"TooManyRequests\"}}}");
    buf_free(&out);
}

Test(admission, encodes_an_allowance_and_escapes_strings)
{
    admission_response_t r = {0};
    buf_t out;
    r.allowed = true;
    r.code = 200;
    buf_init(&out, 1 << 16);
    cr_assert_eq(admission_encode("a\"b\\c", &r, &out), 0);
    cr_expect_str_eq(out.data,
                     "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
                     "\"response\":{\"uid\":\"a\\\"b\\\\c\",\"allowed\":true}}");

    /* invalid UTF-8 never reaches the wire */
    buf_reset(&out);
    r.allowed = false;
    r.reason = "TooManyRequests";
    r.message = "bad \xff byte";
    cr_expect_eq(admission_encode("u", &r, &out), -1);

    /* the buffer cap is honoured */
    buf_t tiny;
    buf_init(&tiny, 16);
    r.allowed = true;
    cr_expect_eq(admission_encode("u", &r, &tiny), -1);
    buf_free(&tiny);
    buf_free(&out);
}
