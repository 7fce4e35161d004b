/*
 * web/admission — see admission.h. Calls util/jsongen, util/jsontree,
 * util/strutil, util/text, web/server and yajl; called by cmd/webhook.c.
 */
#include "web/admission.h"
#include "util/jsongen.h"
#include "util/jsontree.h"
#include "util/strutil.h"
#include "util/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#define REVIEW_API_VERSION "admission.k8s.io/v1"
#define REVIEW_KIND        "AdmissionReview"

/* --- decoding --------------------------------------------------------- */

/* The string member key of obj (field names it in errors): NULL with
 * *bad false when absent, NULL with *bad true (and err set) when not a
 * string. */
static const char *get_str(yajl_val obj, const char *key, const char *field, bool *bad, char *err,
                           size_t errlen)
{
    yajl_val v = util_json_member(obj, key);

    *bad = false;
    if (!v)
        return NULL;
    if (!YAJL_IS_STRING(v)) {
        util_set_err(err, errlen, "%s: want a string, got %s", field, util_json_type_name(v));
        *bad = true;
        return NULL;
    }
    return v->u.string;
}

/* Requires the string member key of obj to equal want (one of two values
 * when want2 is not NULL). Returns 0 or -1 with err set. */
static int expect_str(yajl_val obj, const char *key, const char *field, const char *want,
                      const char *want2, char *err, size_t errlen)
{
    bool bad;
    const char *s = get_str(obj, key, field, &bad, err, errlen);

    if (bad)
        return -1;
    if (!s) {
        util_set_err(err, errlen, "%s: missing (want \"%s\")", field, want);
        return -1;
    }
    if (strcmp(s, want) == 0 || (want2 && strcmp(s, want2) == 0))
        return 0;
    util_set_err(err, errlen, "%s: want \"%s\", got \"%.64s\"", field, want, s);
    return -1;
}

/* Copies the required, non-empty string member key of obj into dst (at
 * most n - 1 bytes). Returns 0 or -1 with err set. */
static int take_str(yajl_val obj, const char *key, const char *field, char *dst, size_t n,
                    char *err, size_t errlen)
{
    bool bad;
    const char *s = get_str(obj, key, field, &bad, err, errlen);

    if (bad)
        return -1;
    if (!s || !*s) {
        util_set_err(err, errlen, "%s: missing", field);
        return -1;
    }
    if (strlen(s) >= n) {
        util_set_err(err, errlen, "%s: longer than %zu bytes", field, n - 1);
        return -1;
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

/* Requires member key of obj, when present, to be an object. Returns it
 * (NULL when absent) and sets *bad (and err) when it is something else. */
static yajl_val get_obj(yajl_val obj, const char *key, const char *field, bool *bad, char *err,
                        size_t errlen)
{
    yajl_val v = util_json_member(obj, key);

    *bad = false;
    if (v && !YAJL_IS_OBJECT(v)) {
        util_set_err(err, errlen, "%s: want an object, got %s", field, util_json_type_name(v));
        *bad = true;
        return NULL;
    }
    return v;
}

/* request.kind, request.resource, request.subResource, request.operation:
 * the request must be a CREATE of pods/eviction. */
static int check_target(yajl_val rq, char *err, size_t errlen)
{
    bool bad;
    yajl_val kind = get_obj(rq, "kind", "request.kind", &bad, err, errlen);
    yajl_val res;

    if (bad)
        return -1;
    if (expect_str(kind, "group", "request.kind.group", "policy", NULL, err, errlen) < 0 ||
        expect_str(kind, "kind", "request.kind.kind", "Eviction", NULL, err, errlen) < 0)
        return -1;
    res = get_obj(rq, "resource", "request.resource", &bad, err, errlen);
    if (bad)
        return -1;
    if (res && util_json_member(res, "group") &&
        expect_str(res, "group", "request.resource.group", "", NULL, err, errlen) < 0)
        return -1;
    if (expect_str(res, "resource", "request.resource.resource", "pods", NULL, err, errlen) < 0 ||
        expect_str(rq, "subResource", "request.subResource", "eviction", NULL, err, errlen) < 0 ||
        expect_str(rq, "operation", "request.operation", "CREATE", NULL, err, errlen) < 0)
        return -1;
    return 0;
}

/* request.object: the Eviction. Sets *dry_run when its
 * deleteOptions.dryRun holds "All". Absent is fine. */
static int decode_eviction(yajl_val rq, bool *dry_run, char *err, size_t errlen)
{
    bool bad;
    yajl_val ev = get_obj(rq, "object", "request.object", &bad, err, errlen);
    yajl_val opts, dr;

    if (bad || !ev)
        return bad ? -1 : 0;
    if (util_json_member(ev, "apiVersion") &&
        expect_str(ev, "apiVersion", "request.object.apiVersion", "policy/v1", "policy/v1beta1",
                   err, errlen) < 0)
        return -1;
    if (util_json_member(ev, "kind") &&
        expect_str(ev, "kind", "request.object.kind", "Eviction", NULL, err, errlen) < 0)
        return -1;
    opts = get_obj(ev, "deleteOptions", "request.object.deleteOptions", &bad, err, errlen);
    if (bad)
        return -1;
    dr = util_json_member(opts, "dryRun");
    if (!dr)
        return 0;
    if (!YAJL_IS_ARRAY(dr)) {
        util_set_err(err, errlen, "request.object.deleteOptions.dryRun: want an array, got %s",
                     util_json_type_name(dr));
        return -1;
    }
    for (size_t i = 0; i < dr->u.array.len; i++) {
        yajl_val v = dr->u.array.values[i];
        if (!YAJL_IS_STRING(v)) {
            util_set_err(err, errlen,
                         "request.object.deleteOptions.dryRun[%zu]: want a string, got %s", i,
                         util_json_type_name(v));
            return -1;
        }
        if (strcmp(v->u.string, "All") == 0)
            *dry_run = true;
    }
    return 0;
}

/* request.dryRun and request.userInfo.username. */
static int decode_extras(yajl_val rq, admission_request_t *out, char *err, size_t errlen)
{
    yajl_val dr = util_json_member(rq, "dryRun");
    yajl_val ui;
    const char *user;
    bool bad;

    if (dr && !YAJL_IS_TRUE(dr) && !YAJL_IS_FALSE(dr)) {
        util_set_err(err, errlen, "request.dryRun: want a boolean, got %s",
                     util_json_type_name(dr));
        return -1;
    }
    out->dry_run = dr && YAJL_IS_TRUE(dr);
    ui = get_obj(rq, "userInfo", "request.userInfo", &bad, err, errlen);
    if (bad)
        return -1;
    user = get_str(ui, "username", "request.userInfo.username", &bad, err, errlen);
    if (bad)
        return -1;
    text_copy_cut(out->username, sizeof(out->username), user ? user : "");
    return 0;
}

/* Decodes the parsed review into out. Returns 0 or -1 with err set. */
static int decode_tree(yajl_val top, admission_request_t *out, char *err, size_t errlen)
{
    bool bad;
    yajl_val rq;

    if (!YAJL_IS_OBJECT(top)) {
        util_set_err(err, errlen, "body: want a JSON object, got %s", util_json_type_name(top));
        return -1;
    }
    if (expect_str(top, "apiVersion", "apiVersion", REVIEW_API_VERSION, NULL, err, errlen) < 0 ||
        expect_str(top, "kind", "kind", REVIEW_KIND, NULL, err, errlen) < 0)
        return -1;
    rq = get_obj(top, "request", "request", &bad, err, errlen);
    if (bad)
        return -1;
    if (!rq) {
        util_set_err(err, errlen, "request: missing");
        return -1;
    }
    if (take_str(rq, "uid", "request.uid", out->uid, sizeof(out->uid), err, errlen) < 0 ||
        check_target(rq, err, errlen) < 0 ||
        take_str(rq, "name", "request.name", out->name, sizeof(out->name), err, errlen) < 0 ||
        take_str(rq, "namespace", "request.namespace", out->ns, sizeof(out->ns), err, errlen) < 0 ||
        decode_extras(rq, out, err, errlen) < 0 ||
        decode_eviction(rq, &out->dry_run, err, errlen) < 0)
        return -1;
    return 0;
}

int admission_decode(const char *body, size_t len, admission_request_t *out, char *err,
                     size_t errlen)
{
    yajl_val top;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > ADMISSION_BODY_MAX) {
        util_set_err(err, errlen, "body: larger than %d bytes", ADMISSION_BODY_MAX);
        return -1;
    }
    top = util_json_tree_parse(body, len, ADMISSION_DEPTH_MAX, "body", err, errlen);
    if (!top)
        return -1;
    rc = decode_tree(top, out, err, errlen);
    yajl_tree_free(top);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* --- the response ----------------------------------------------------- */

/* Writes the "response" object's members. */
static void gen_response(util_jgen_t *j, const char *uid, const admission_response_t *res)
{
    util_jgen_kv(j, "uid", uid);
    util_jgen_str(j, "allowed");
    util_jgen_bool(j, res->allowed);
    if (res->warning) {
        util_jgen_str(j, "warnings");
        util_jgen_array_open(j);
        util_jgen_str(j, res->warning);
        util_jgen_array_close(j);
    }
    if (res->allowed)
        return;
    util_jgen_str(j, "status");
    util_jgen_map_open(j);
    util_jgen_kint(j, "code", res->code);
    util_jgen_kv(j, "message", res->message ? res->message : "");
    util_jgen_kv(j, "reason", res->reason ? res->reason : "");
    util_jgen_map_close(j);
}

int admission_encode(const char *uid, const admission_response_t *res, buf_t *out)
{
    util_jgen_t j;
    const char *text;
    size_t len;
    int rc = -1;

    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "apiVersion", REVIEW_API_VERSION);
    util_jgen_kv(&j, "kind", REVIEW_KIND);
    util_jgen_str(&j, "response");
    util_jgen_map_open(&j);
    gen_response(&j, uid, res);
    util_jgen_map_close(&j);
    util_jgen_map_close(&j);
    if (util_jgen_get(&j, &text, &len) == 0)
        rc = buf_append(out, text, len);
    util_jgen_free(&j);
    return rc;
}

void admission_respond(web_request_t *req, const char *uid, const admission_response_t *res)
{
    buf_t out;

    buf_init(&out, 64 * 1024);
    if (admission_encode(uid, res, &out) == 0)
        web_respond(req, 200, "application/json", out.data, out.len);
    else
        web_respond_text(req, 500, "cannot encode the AdmissionReview response");
    buf_free(&out);
}
