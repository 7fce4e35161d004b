#include "web/admission.h"
#include "util/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define REVIEW_API_VERSION "admission.k8s.io/v1"
#define REVIEW_KIND        "AdmissionReview"

/* Per decision: its name, its metric label and whether it allows. */
static const struct {
    const char *name;
    const char *label;
    bool allowed;
} decisions[ADMISSION_DECISION_COUNT] = {
    [ADMISSION_NEED_LOOKUP] = {"NEED_LOOKUP", "lookup", false},
    [ADMISSION_DENY_LOOKUP_FAILED] = {"DENY_LOOKUP_FAILED", "lookup_failed", false},
    [ADMISSION_ALLOW_NO_POD] = {"ALLOW_NO_POD", "no_pod", true},
    [ADMISSION_ALLOW_NOT_LAUNCHER] = {"ALLOW_NOT_LAUNCHER", "not_launcher", true},
    [ADMISSION_ALLOW_FINISHED_POD] = {"ALLOW_FINISHED_POD", "finished", true},
    [ADMISSION_DENY_TARGET_POD] = {"DENY_TARGET_POD", "target", false},
    [ADMISSION_ALLOW_NO_VMI] = {"ALLOW_NO_VMI", "no_vmi", true},
    [ADMISSION_ALLOW_FINISHED_VMI] = {"ALLOW_FINISHED_VMI", "finished", true},
    [ADMISSION_ALLOW_VMI_ELSEWHERE] = {"ALLOW_VMI_ELSEWHERE", "elsewhere", true},
    [ADMISSION_ALLOW_NOT_OURS] = {"ALLOW_NOT_OURS", "none", true},
    [ADMISSION_DENY_MIGRATE] = {"DENY_MIGRATE", "migrate", false},
    [ADMISSION_DENY_BLOCKED] = {"DENY_BLOCKED", "blocked", false},
    [ADMISSION_ALLOW_IF_POSSIBLE] = {"ALLOW_IF_POSSIBLE", "if_possible", true},
    [ADMISSION_DENY_EXTERNAL] = {"DENY_EXTERNAL", "external", false},
    [ADMISSION_DENY_GATE_OFF] = {"DENY_GATE_OFF", "gate_off", false},
    [ADMISSION_DENY_UNKNOWN_STRATEGY] = {"DENY_UNKNOWN_STRATEGY", "unknown_strategy", false},
};

const char *admission_decision_name(admission_decision_t d)
{
    if ((unsigned)d >= ADMISSION_DECISION_COUNT)
        return "?";
    return decisions[d].name;
}

const char *admission_decision_label(admission_decision_t d)
{
    if ((unsigned)d >= ADMISSION_DECISION_COUNT)
        return "other";
    return decisions[d].label;
}

/* Copies src into dst (n bytes with the terminator), cut so that no UTF-8
 * sequence is split. Returns true when all of src fit. */
static bool copy_cut(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    bool fit = len < n;

    if (!fit) {
        len = n - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return fit;
}

/* --- decoding --------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Checks the nesting of a JSON text before yajl builds a tree of it (the
 * tree is freed recursively, so its depth must be bounded). Strings are
 * skipped; '/' outside a string (a comment, which yajl's tree parser would
 * accept) is refused, so the scan and yajl always agree on the structure.
 * Returns 0 or -1 with err set. */
static int scan_depth(const char *s, size_t len, char *err, size_t errlen)
{
    int depth = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > ADMISSION_DEPTH_MAX) {
                set_err(err, errlen, "body: JSON nested deeper than %d levels",
                        ADMISSION_DEPTH_MAX);
                return -1;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '/') {
            set_err(err, errlen, "body: invalid JSON: comments are not allowed");
            return -1;
        }
    }
    return 0;
}

/* The member key of object obj, or NULL when absent or JSON null. */
static yajl_val member(yajl_val obj, const char *key)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            yajl_val v = obj->u.object.values[i];
            return YAJL_IS_NULL(v) ? NULL : v;
        }
    }
    return NULL;
}

/* A JSON type's name for error messages. */
static const char *type_name(yajl_val v)
{
    if (YAJL_IS_STRING(v))
        return "a string";
    if (YAJL_IS_NUMBER(v))
        return "a number";
    if (YAJL_IS_OBJECT(v))
        return "an object";
    if (YAJL_IS_ARRAY(v))
        return "an array";
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        return "a boolean";
    return "null";
}

/* The string member key of obj (field names it in errors): NULL with
 * *bad false when absent, NULL with *bad true (and err set) when not a
 * string. */
static const char *get_str(yajl_val obj, const char *key, const char *field, bool *bad, char *err,
                           size_t errlen)
{
    yajl_val v = member(obj, key);

    *bad = false;
    if (!v)
        return NULL;
    if (!YAJL_IS_STRING(v)) {
        set_err(err, errlen, "%s: want a string, got %s", field, type_name(v));
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
        set_err(err, errlen, "%s: missing (want \"%s\")", field, want);
        return -1;
    }
    if (strcmp(s, want) == 0 || (want2 && strcmp(s, want2) == 0))
        return 0;
    set_err(err, errlen, "%s: want \"%s\", got \"%.64s\"", field, want, s);
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
        set_err(err, errlen, "%s: missing", field);
        return -1;
    }
    if (strlen(s) >= n) {
        set_err(err, errlen, "%s: longer than %zu bytes", field, n - 1);
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
    yajl_val v = member(obj, key);

    *bad = false;
    if (v && !YAJL_IS_OBJECT(v)) {
        set_err(err, errlen, "%s: want an object, got %s", field, type_name(v));
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
    if (res && member(res, "group") &&
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
    if (member(ev, "apiVersion") && expect_str(ev, "apiVersion", "request.object.apiVersion",
                                               "policy/v1", "policy/v1beta1", err, errlen) < 0)
        return -1;
    if (member(ev, "kind") &&
        expect_str(ev, "kind", "request.object.kind", "Eviction", NULL, err, errlen) < 0)
        return -1;
    opts = get_obj(ev, "deleteOptions", "request.object.deleteOptions", &bad, err, errlen);
    if (bad)
        return -1;
    dr = member(opts, "dryRun");
    if (!dr)
        return 0;
    if (!YAJL_IS_ARRAY(dr)) {
        set_err(err, errlen, "request.object.deleteOptions.dryRun: want an array, got %s",
                type_name(dr));
        return -1;
    }
    for (size_t i = 0; i < dr->u.array.len; i++) {
        yajl_val v = dr->u.array.values[i];
        if (!YAJL_IS_STRING(v)) {
            set_err(err, errlen, "request.object.deleteOptions.dryRun[%zu]: want a string, got %s",
                    i, type_name(v));
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
    yajl_val dr = member(rq, "dryRun");
    yajl_val ui;
    const char *user;
    bool bad;

    if (dr && !YAJL_IS_TRUE(dr) && !YAJL_IS_FALSE(dr)) {
        set_err(err, errlen, "request.dryRun: want a boolean, got %s", type_name(dr));
        return -1;
    }
    out->dry_run = dr && YAJL_IS_TRUE(dr);
    ui = get_obj(rq, "userInfo", "request.userInfo", &bad, err, errlen);
    if (bad)
        return -1;
    user = get_str(ui, "username", "request.userInfo.username", &bad, err, errlen);
    if (bad)
        return -1;
    copy_cut(out->username, sizeof(out->username), user ? user : "");
    return 0;
}

/* Decodes the parsed review into out. Returns 0 or -1 with err set. */
static int decode_tree(yajl_val top, admission_request_t *out, char *err, size_t errlen)
{
    bool bad;
    yajl_val rq;

    if (!YAJL_IS_OBJECT(top)) {
        set_err(err, errlen, "body: want a JSON object, got %s", type_name(top));
        return -1;
    }
    if (expect_str(top, "apiVersion", "apiVersion", REVIEW_API_VERSION, NULL, err, errlen) < 0 ||
        expect_str(top, "kind", "kind", REVIEW_KIND, NULL, err, errlen) < 0)
        return -1;
    rq = get_obj(top, "request", "request", &bad, err, errlen);
    if (bad)
        return -1;
    if (!rq) {
        set_err(err, errlen, "request: missing");
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

/* Keeps the first line of yajl's (multi-line) error text. */
static void first_line(char *s)
{
    char *nl = strchr(s, '\n');

    if (nl)
        *nl = '\0';
}

int admission_decode(const char *body, size_t len, admission_request_t *out, char *err,
                     size_t errlen)
{
    char yerr[256] = "";
    char *text;
    yajl_val top;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > ADMISSION_BODY_MAX) {
        set_err(err, errlen, "body: larger than %d bytes", ADMISSION_BODY_MAX);
        return -1;
    }
    if (len == 0 || memchr(body, '\0', len)) {
        set_err(err, errlen, len ? "body: contains a NUL byte" : "body: empty");
        return -1;
    }
    if (scan_depth(body, len, err, errlen) < 0)
        return -1;
    text = malloc(len + 1);
    if (!text) {
        set_err(err, errlen, "body: out of memory");
        return -1;
    }
    memcpy(text, body, len);
    text[len] = '\0';
    top = yajl_tree_parse(text, yerr, sizeof(yerr));
    free(text);
    if (!top) {
        first_line(yerr);
        set_err(err, errlen, "body: invalid JSON: %s", yerr[0] ? yerr : "parse error");
        return -1;
    }
    rc = decode_tree(top, out, err, errlen);
    yajl_tree_free(top);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* --- the decision ----------------------------------------------------- */

/* Sets the decision, its fixed attributes and the formatted message. */
static void decide_as(admission_result_t *out, admission_decision_t d, unsigned effects,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void decide_as(admission_result_t *out, admission_decision_t d, unsigned effects,
                      const char *fmt, ...)
{
    char msg[ADMISSION_MESSAGE_MAX * 2];
    va_list ap;

    out->decision = d;
    out->allowed = decisions[d].allowed;
    out->code = out->allowed ? 200 : 429;
    out->label = decisions[d].label;
    out->reason = out->allowed ? "" : "TooManyRequests";
    out->wanted_effects = effects;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    copy_cut(out->message, sizeof(out->message), msg);
}

static bool migration_in_flight(const kube_migration_t *m)
{
    return m->phase != KUBE_MIGRATION_SUCCEEDED && m->phase != KUBE_MIGRATION_FAILED;
}

/* The first migration of the VMI still in flight, or NULL. */
static const kube_migration_t *first_in_flight(const admission_input_t *in)
{
    for (size_t i = 0; i < in->n_migs; i++)
        if (in->migs[i] && migration_in_flight(in->migs[i]))
            return in->migs[i];
    return NULL;
}

/* Whether the VMI's migrationState describes a migration not yet ended. */
static bool vmi_migrating(const kube_vmi_t *vmi)
{
    const kube_migration_state_t *m = &vmi->migration;

    return vmi->has_migration_state && !m->completed && !m->failed && m->migration_uid[0];
}

/* When pod is the target pod of a migration in flight, returns that
 * migration's name (or its uid when only the VMI's migrationState knows
 * it); otherwise NULL. */
static const char *target_of(const admission_input_t *in)
{
    const kube_pod_t *pod = in->pod;
    const char *job = kube_obj_label(&pod->obj, ADMISSION_LABEL_MIGRATION_JOB);

    if (job && *job)
        for (size_t i = 0; i < in->n_migs; i++) {
            const kube_migration_t *m = in->migs[i];
            if (m && strcmp(m->obj.uid, job) == 0 && migration_in_flight(m))
                return m->obj.name;
        }
    if (in->vmi && vmi_migrating(in->vmi) &&
        strcmp(in->vmi->migration.target_pod, pod->obj.name) == 0) {
        for (size_t i = 0; i < in->n_migs; i++)
            if (in->migs[i] && strcmp(in->migs[i]->obj.uid, in->vmi->migration.migration_uid) == 0)
                return in->migs[i]->obj.name;
        return in->vmi->migration.migration_uid;
    }
    return NULL;
}

/* "reason: message" of the VMI's LiveMigratable condition, with fallbacks
 * when either is empty. */
static void why_not_migratable(const kube_vmi_t *vmi, char *buf, size_t n)
{
    const char *r = vmi->migratable_reason, *m = vmi->migratable_message;

    if (*r && *m)
        snprintf(buf, n, "%s: %s", r, m);
    else if (*r || *m)
        snprintf(buf, n, "%s", *r ? r : m);
    else
        snprintf(buf, n, "condition LiveMigratable is %s",
                 vmi->migratable == KUBE_COND_FALSE ? "False" : "not True");
}

/* The pod is absent from the cache (or the cluster). */
static void decide_no_pod(const admission_request_t *req, const admission_input_t *in,
                          admission_result_t *out)
{
    if (in->lookup_failed)
        decide_as(out, ADMISSION_DENY_LOOKUP_FAILED, 0,
                  "Eviction of pod %s/%s deferred: the pod could not be read; retry", req->ns,
                  req->name);
    else if (!in->pod_looked_up)
        decide_as(out, ADMISSION_NEED_LOOKUP, 0, "pod %s/%s is not in the cache", req->ns,
                  req->name);
    else
        decide_as(out, ADMISSION_ALLOW_NO_POD, 0, "pod %s/%s not found", req->ns, req->name);
}

/* The migrate branch shared by LiveMigrate and LiveMigrateIfPossible. */
static void decide_migrate(const char *vkey, bool in_progress, admission_result_t *out)
{
    decide_as(out, ADMISSION_DENY_MIGRATE, ADMISSION_EFFECT_MARK | ADMISSION_EFFECT_QUEUE,
              "Eviction triggered evacuation of VMI %s: migration %s", vkey,
              in_progress ? "in progress" : "queued");
}

/* The strategy decides, for a launcher pod of a VMI on the pod's node. */
static void decide_strategy(const admission_input_t *in, kube_eviction_strategy_t strategy,
                            admission_result_t *out)
{
    const kube_vmi_t *vmi = in->vmi;
    bool migrating = first_in_flight(in) || vmi_migrating(vmi);
    bool migratable = vmi->migratable == KUBE_COND_TRUE;
    char vkey[330], why[ADMISSION_MESSAGE_MAX];

    kube_obj_key(&vmi->obj, vkey, sizeof(vkey));
    why_not_migratable(vmi, why, sizeof(why));
    switch (strategy) {
    case KUBE_EVICTION_UNSET:
    case KUBE_EVICTION_NONE:
        decide_as(out, ADMISSION_ALLOW_NOT_OURS, 0, "VMI %s has eviction strategy None", vkey);
        break;
    case KUBE_EVICTION_LIVE_MIGRATE:
        if (migrating || (migratable && in->live_migration_gate))
            decide_migrate(vkey, migrating, out);
        else if (!in->live_migration_gate)
            decide_as(out, ADMISSION_DENY_GATE_OFF, ADMISSION_EFFECT_BLOCKED,
                      "VMI %s cannot be evacuated: the LiveMigration feature gate is off", vkey);
        else
            decide_as(out, ADMISSION_DENY_BLOCKED, ADMISSION_EFFECT_BLOCKED,
                      "VMI %s cannot be live-migrated: %s", vkey, why);
        break;
    case KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE:
        if (migrating || (migratable && in->live_migration_gate))
            decide_migrate(vkey, migrating, out);
        else
            decide_as(out, ADMISSION_ALLOW_IF_POSSIBLE, 0,
                      "VMI %s cannot be live-migrated (%s); eviction allowed by strategy "
                      "LiveMigrateIfPossible",
                      vkey, migratable ? "the LiveMigration feature gate is off" : why);
        break;
    case KUBE_EVICTION_EXTERNAL:
        decide_as(out, ADMISSION_DENY_EXTERNAL, ADMISSION_EFFECT_MARK,
                  "Eviction triggered evacuation of VMI %s: evacuation is handled by an "
                  "external controller",
                  vkey);
        break;
    default:
        decide_as(out, ADMISSION_DENY_UNKNOWN_STRATEGY, 0,
                  "VMI %s has an eviction strategy this version does not know; eviction denied",
                  vkey);
        break;
    }
}

/* A cached launcher pod of a known VMI: target pod, finished VMI, VMI
 * elsewhere, else the strategy. */
static void decide_launcher(const admission_request_t *req, const admission_input_t *in,
                            admission_result_t *out)
{
    const kube_vmi_t *vmi = in->vmi;
    const char *target = target_of(in);
    kube_eviction_strategy_t strategy;
    char vkey[330];

    if (target) {
        decide_as(out, ADMISSION_DENY_TARGET_POD, 0,
                  "Pod %s/%s is the target of migration %s; evict it once the migration ended",
                  req->ns, req->name, target);
        return;
    }
    if (!vmi) {
        decide_as(out, ADMISSION_ALLOW_NO_VMI, 0, "pod %s/%s belongs to no known VMI", req->ns,
                  req->name);
        return;
    }
    kube_obj_key(&vmi->obj, vkey, sizeof(vkey));
    if (vmi->phase == KUBE_VMI_SUCCEEDED || vmi->phase == KUBE_VMI_FAILED) {
        decide_as(out, ADMISSION_ALLOW_FINISHED_VMI, 0, "VMI %s has finished (%s)", vkey,
                  kube_vmi_phase_name(vmi->phase));
        return;
    }
    if (*vmi->node_name && *in->pod->node_name && strcmp(vmi->node_name, in->pod->node_name)) {
        decide_as(out, ADMISSION_ALLOW_VMI_ELSEWHERE, 0,
                  "VMI %s runs on node %s, not on the pod's node %s", vkey, vmi->node_name,
                  in->pod->node_name);
        return;
    }
    strategy = vmi->eviction_strategy;
    if (strategy == KUBE_EVICTION_UNSET)
        strategy = in->default_strategy;
    decide_strategy(in, strategy, out);
}

void admission_decide(const admission_request_t *req, const admission_input_t *in,
                      admission_result_t *out)
{
    const kube_pod_t *pod = in->pod;

    memset(out, 0, sizeof(*out));
    if (!pod) {
        decide_no_pod(req, in, out);
    } else {
        const char *app = kube_obj_label(&pod->obj, ADMISSION_LABEL_APP);
        if (!app || strcmp(app, ADMISSION_LAUNCHER) != 0)
            decide_as(out, ADMISSION_ALLOW_NOT_LAUNCHER, 0, "pod %s/%s is not a virt-launcher pod",
                      req->ns, req->name);
        else if (pod->phase == KUBE_POD_SUCCEEDED || pod->phase == KUBE_POD_FAILED)
            decide_as(out, ADMISSION_ALLOW_FINISHED_POD, 0, "pod %s/%s has finished (%s)", req->ns,
                      req->name, kube_pod_phase_name(pod->phase));
        else
            decide_launcher(req, in, out);
    }
    if (out->wanted_effects && in->vmi)
        copy_cut(out->node, sizeof(out->node),
                 *in->vmi->node_name ? in->vmi->node_name : (pod ? pod->node_name : ""));
    out->effects = req->dry_run ? 0 : out->wanted_effects;
}

/* --- the response ----------------------------------------------------- */

static int gen_str(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok ? 0 : -1;
}

/* Writes the "response" object's members. */
static int gen_response(yajl_gen g, const char *uid, const admission_result_t *res)
{
    int rc = 0;

    rc |= gen_str(g, "uid");
    rc |= gen_str(g, uid);
    rc |= gen_str(g, "allowed");
    rc |= yajl_gen_bool(g, res->allowed) != yajl_gen_status_ok;
    if (res->allowed)
        return rc ? -1 : 0;
    rc |= gen_str(g, "status");
    rc |= yajl_gen_map_open(g) != yajl_gen_status_ok;
    rc |= gen_str(g, "code");
    rc |= yajl_gen_integer(g, res->code) != yajl_gen_status_ok;
    rc |= gen_str(g, "message");
    rc |= gen_str(g, res->message);
    rc |= gen_str(g, "reason");
    rc |= gen_str(g, res->reason);
    rc |= yajl_gen_map_close(g) != yajl_gen_status_ok;
    return rc ? -1 : 0;
}

int admission_encode(const char *uid, const admission_result_t *res, buf_t *out)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *text;
    size_t len;
    int rc = -1;

    if (!g)
        return -1;
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    if (yajl_gen_map_open(g) != yajl_gen_status_ok || gen_str(g, "apiVersion") < 0 ||
        gen_str(g, REVIEW_API_VERSION) < 0 || gen_str(g, "kind") < 0 ||
        gen_str(g, REVIEW_KIND) < 0 || gen_str(g, "response") < 0 ||
        yajl_gen_map_open(g) != yajl_gen_status_ok || gen_response(g, uid, res) < 0 ||
        yajl_gen_map_close(g) != yajl_gen_status_ok || yajl_gen_map_close(g) != yajl_gen_status_ok)
        goto out_free;
    if (yajl_gen_get_buf(g, &text, &len) != yajl_gen_status_ok)
        goto out_free;
    rc = buf_append(out, text, len);
out_free:
    yajl_gen_free(g);
    return rc;
}

void admission_count(const admission_result_t *res)
{
    static const char *const labels[] = {"decision"};
    metrics_counter_t *c = metrics_counter_new(
        "evictions_total", "Eviction requests answered by the webhook, by decision.", 1, labels);
    if (c) {
        const char *values[] = {res->label ? res->label : "other"};
        metrics_counter_add(c, 1, values);
    }
}

const char *admission_pod_vmi_name(const kube_pod_t *pod)
{
    const char *name;

    if (!pod)
        return NULL;
    name = kube_obj_annotation(&pod->obj, ADMISSION_ANN_DOMAIN);
    return name && *name ? name : NULL;
}

void admission_respond(web_request_t *req, const char *uid, const admission_result_t *res)
{
    buf_t out;

    admission_count(res);
    buf_init(&out, 64 * 1024);
    if (admission_encode(uid, res, &out) == 0)
        web_respond(req, 200, "application/json", out.data, out.len);
    else
        web_respond_text(req, 500, "cannot encode the AdmissionReview response");
    buf_free(&out);
}
