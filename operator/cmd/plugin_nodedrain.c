/*
 * cmd/plugin_nodedrain — reads NodeDrain objects (crds/nodedrains.vmdrain.io.yaml)
 * as the apiserver sends them: one object, a NodeDrainList, or a watch
 * event, into pl_nodedrain_t (cmd/plugin.h).
 *
 * Input from the cluster is checked before it is trusted: a size cap, the
 * checks of util/jsontree (nesting, NUL bytes, comments), valid UTF-8
 * (yajl), the kind, and the type of every field read; a bad value is an
 * error that names the object and the field.
 *
 * Owns the objects it returns. Calls util/jsontree, yajl's tree API,
 * util/timefmt and the C library; called by the plugin's commands and its fuzz driver.
 */
#include "cmd/plugin.h"
#include "util/jsontree.h"
#include "util/strutil.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* Parses len bytes (at most max) of JSON into a tree, NULL with the
 * reason in err. */
static yajl_val parse_tree(const char *json, size_t len, size_t max, const char *what, char *err,
                           size_t errlen)
{
    if (len > max) {
        util_set_err(err, errlen, "%s: %zu bytes, more than the %zu accepted", what, len, max);
        return NULL;
    }
    return util_json_tree_parse(json, len, PL_ND_MAX_DEPTH, what, err, errlen);
}

/* The text of a string value, else NULL. */
static const char *str_of(yajl_val v)
{
    return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

/* What a reader reports a bad field with. */
typedef struct rd {
    const char *name; /* the object's name, once known */
    char *err;
    size_t errlen;
} rd_t;

static int bad(rd_t *r, const char *path, const char *key, const char *want)
{
    util_set_err(r->err, r->errlen, "NodeDrain %s%s%s: %s%s%s is not %s", r->name ? "\"" : "",
                 r->name ? r->name : "", r->name ? "\"" : "", path, *path ? "." : "", key, want);
    return -1;
}

/* The member key of obj, NULL when absent or null; -1 (reported) when it
 * is there but ok() says it is not what is wanted. */
static int member(rd_t *r, yajl_val obj, const char *path, const char *key, bool (*ok)(yajl_val),
                  const char *want, yajl_val *out)
{
    *out = util_json_member(obj, key);
    return *out && !ok(*out) ? bad(r, path, key, want) : 0;
}

static bool is_str(yajl_val v)
{
    return YAJL_IS_STRING(v);
}

static bool is_count(yajl_val v)
{
    return YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) >= 0;
}

static bool is_time(yajl_val v)
{
    vd_time_t t;
    return YAJL_IS_STRING(v) && time_parse_rfc3339(v->u.string, &t, NULL, 0) == 0;
}

static bool is_obj(yajl_val v)
{
    return YAJL_IS_OBJECT(v);
}

/* A string field: absent or null is "". */
static int get_str(rd_t *r, yajl_val obj, const char *path, const char *key, char **out)
{
    yajl_val v;
    if (member(r, obj, path, key, is_str, "a string", &v) < 0)
        return -1;
    free(*out);
    *out = strdup(v ? v->u.string : "");
    if (!*out) {
        util_set_err(r->err, r->errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* A count: absent or null is -1; else a whole number >= 0. */
static int get_count(rd_t *r, yajl_val obj, const char *path, const char *key, int64_t *out)
{
    yajl_val v;
    int rc = member(r, obj, path, key, is_count, "a whole number >= 0", &v);
    *out = rc == 0 && v ? YAJL_GET_INTEGER(v) : -1;
    return rc;
}

/* An RFC 3339 time: absent or null is {0, 0}. */
static int get_time(rd_t *r, yajl_val obj, const char *path, const char *key, vd_time_t *out)
{
    yajl_val v;
    int rc = member(r, obj, path, key, is_time, "an RFC 3339 time", &v);
    *out = (vd_time_t){0, 0};
    if (rc == 0 && v)
        time_parse_rfc3339(v->u.string, out, NULL, 0);
    return rc;
}

/* An object field: absent or null is NULL (and fine). */
static int get_obj(rd_t *r, yajl_val obj, const char *path, const char *key, yajl_val *out)
{
    return member(r, obj, path, key, is_obj, "an object", out);
}

static void vmi_free(pl_vmi_t *v)
{
    free(v->ns);
    free(v->name);
    free(v->state);
    free(v->migration);
    free(v->reason);
}

static int read_vmi(rd_t *r, yajl_val item, const char *path, bool blocked, pl_vmi_t *v)
{
    v->attempts = -1;
    if (!YAJL_IS_OBJECT(item))
        return bad(r, path, "[]", "an object");
    if (get_str(r, item, path, "namespace", &v->ns) < 0 ||
        get_str(r, item, path, "name", &v->name) < 0 ||
        get_str(r, item, path, "reason", &v->reason) < 0)
        return -1;
    if (!v->name[0])
        return bad(r, path, "name", "set");
    if (blocked)
        return (v->state = strdup("Blocked")) && (v->migration = strdup("")) ? 0 : -1;
    return get_str(r, item, path, "state", &v->state) < 0 ||
                   get_str(r, item, path, "migration", &v->migration) < 0 ||
                   get_count(r, item, path, "attempts", &v->attempts) < 0
               ? -1
               : 0;
}

/* status.vmis or status.blockedVMIs: at most PL_ND_MAX_VMIS kept, the rest
 * counted in *omitted. */
static int read_vmis(rd_t *r, yajl_val status, const char *key, bool blocked, pl_vmi_t **out,
                     size_t *n, int64_t *omitted, bool *present)
{
    yajl_val a = util_json_member(status, key);
    char path[64];
    snprintf(path, sizeof(path), "status.%s", key);
    if (!a)
        return 0;
    if (!YAJL_IS_ARRAY(a))
        return bad(r, "status", key, "an array");
    if (present)
        *present = true;
    size_t len = a->u.array.len;
    if (len == 0)
        return 0;
    size_t keep = len;
    if (keep > PL_ND_MAX_VMIS)
        keep = PL_ND_MAX_VMIS;
    if (omitted && keep < len)
        *omitted = (*omitted < 0 ? 0 : *omitted) + (int64_t)(len - keep);
    *out = calloc(keep, sizeof(**out));
    if (!*out)
        return -1;
    for (size_t i = 0; i < keep; i++) {
        *n = i + 1; /* a VMI read in part is freed with the rest */
        if (read_vmi(r, a->u.array.values[i], path, blocked, &(*out)[i]) < 0)
            return -1;
    }
    return 0;
}

static int read_status(rd_t *r, yajl_val st, pl_nodedrain_t *nd)
{
    const char *p = "status";
    const struct {
        const char *key;
        int64_t *out;
    } counts[] = {{"total", &nd->total},
                  {"migrated", &nd->migrated},
                  {"migrating", &nd->migrating},
                  {"pending", &nd->pending},
                  {"failed", &nd->failed},
                  {"blocked", &nd->blocked},
                  {"vmisOmitted", &nd->vmis_omitted}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (get_count(r, st, p, counts[i].key, counts[i].out) < 0)
            return -1;
    if (get_str(r, st, p, "phase", &nd->phase) < 0 ||
        get_str(r, st, p, "trigger", &nd->trigger) < 0 ||
        get_str(r, st, p, "progress", &nd->progress) < 0 ||
        get_str(r, st, p, "message", &nd->message) < 0 ||
        get_time(r, st, p, "startTime", &nd->start) < 0 ||
        get_time(r, st, p, "completionTime", &nd->completion) < 0 ||
        get_time(r, st, p, "estimatedCompletionTime", &nd->eta) < 0)
        return -1;
    if (read_vmis(r, st, "vmis", false, &nd->vmis, &nd->n_vmis, &nd->vmis_omitted, NULL) < 0)
        return -1;
    return read_vmis(r, st, "blockedVMIs", true, &nd->blocked_vmis, &nd->n_blocked_vmis, NULL,
                     &nd->has_blocked_vmis);
}

static int read_metadata(rd_t *r, yajl_val md, pl_nodedrain_t *nd)
{
    yajl_val labels;
    if (!md)
        return bad(r, "", "metadata", "an object");
    if (get_str(r, md, "metadata", "name", &nd->name) < 0)
        return -1;
    if (!nd->name[0])
        return bad(r, "metadata", "name", "set");
    r->name = nd->name;
    if (get_str(r, md, "metadata", "uid", &nd->uid) < 0 ||
        get_str(r, md, "metadata", "resourceVersion", &nd->resource_version) < 0 ||
        get_obj(r, md, "metadata", "labels", &labels) < 0 ||
        get_str(r, labels, "metadata.labels", "vmdrain.io/managed-by", &nd->managed_by) < 0)
        return -1;
    yajl_val del = util_json_member(md, "deletionTimestamp");
    nd->deleting = del != NULL;
    return 0;
}

/* The i-th string field of nd (NULL after the last), so that none stays
 * NULL and each is freed. */
static char **str_fields(pl_nodedrain_t *nd, size_t i)
{
    char **f[] = {&nd->name,  &nd->uid,     &nd->resource_version, &nd->node_name,  &nd->reason,
                  &nd->phase, &nd->trigger, &nd->progress,         &nd->managed_by, &nd->message,
                  NULL};
    return f[i];
}

static int read_nodedrain(rd_t *r, yajl_val v, pl_nodedrain_t *nd)
{
    yajl_val md, spec, status;
    char *kind = NULL;
    if (!YAJL_IS_OBJECT(v)) {
        util_set_err(r->err, r->errlen, "a NodeDrain is a JSON object");
        return -1;
    }
    int rc = get_str(r, v, "", "kind", &kind);
    if (rc == 0 && kind[0] && strcmp(kind, "NodeDrain") != 0) {
        util_set_err(r->err, r->errlen, "not a NodeDrain: kind \"%.64s\"", kind);
        rc = -1;
    }
    free(kind);
    if (rc < 0 || get_obj(r, v, "", "metadata", &md) < 0 || read_metadata(r, md, nd) < 0 ||
        get_obj(r, v, "", "spec", &spec) < 0 || get_obj(r, v, "", "status", &status) < 0 ||
        get_str(r, spec, "spec", "nodeName", &nd->node_name) < 0 ||
        get_str(r, spec, "spec", "reason", &nd->reason) < 0 || read_status(r, status, nd) < 0)
        return -1;
    for (size_t i = 0; str_fields(nd, i); i++)
        if (!*str_fields(nd, i) && !(*str_fields(nd, i) = strdup("")))
            return -1;
    return 0;
}

static void nd_init(pl_nodedrain_t *nd)
{
    memset(nd, 0, sizeof(*nd));
    nd->total = nd->migrated = nd->migrating = nd->pending = nd->failed = nd->blocked = -1;
    nd->vmis_omitted = -1;
}

void pl_nodedrain_free(pl_nodedrain_t *nd)
{
    if (!nd)
        return;
    for (size_t i = 0; str_fields(nd, i); i++)
        free(*str_fields(nd, i));
    for (size_t i = 0; i < nd->n_vmis; i++)
        vmi_free(&nd->vmis[i]);
    for (size_t i = 0; i < nd->n_blocked_vmis; i++)
        vmi_free(&nd->blocked_vmis[i]);
    free(nd->vmis);
    free(nd->blocked_vmis);
    nd_init(nd);
}

void pl_nodedrains_free(pl_nodedrain_t *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        pl_nodedrain_free(&items[i]);
    free(items);
}

/* Reads v into out; on failure out is freed (and initialised). */
static int read_one(yajl_val v, pl_nodedrain_t *out, char *err, size_t errlen)
{
    rd_t r = {.err = err, .errlen = errlen};
    nd_init(out);
    if (read_nodedrain(&r, v, out) == 0)
        return 0;
    if (err && !err[0])
        util_set_err(err, errlen, "out of memory");
    pl_nodedrain_free(out);
    return -1;
}

int pl_nodedrain_parse(const char *json, size_t len, pl_nodedrain_t *out, char *err, size_t errlen)
{
    util_set_err(err, errlen, "%s", "");
    nd_init(out);
    yajl_val v = parse_tree(json, len, PL_ND_MAX_BYTES, "NodeDrain", err, errlen);
    if (!v)
        return -1;
    int rc = read_one(v, out, err, errlen);
    yajl_tree_free(v);
    return rc;
}

static int read_list(yajl_val v, pl_nodedrain_t **items, size_t *n, char *rv, size_t rvlen,
                     char *err, size_t errlen)
{
    yajl_val md = util_json_member(v, "metadata"), a = util_json_member(v, "items"),
             ver = util_json_member(md, "resourceVersion");
    if (!YAJL_IS_OBJECT(v) || (a && !YAJL_IS_ARRAY(a))) {
        util_set_err(err, errlen, "a NodeDrainList is an object with an array items");
        return -1;
    }
    if (str_of(ver))
        snprintf(rv, rvlen, "%s", str_of(ver));
    size_t len = YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    if (len == 0)
        return 0;
    *items = calloc(len, sizeof(**items));
    if (!*items) {
        util_set_err(err, errlen, "out of memory");
        return -1;
    }
    for (; *n < len; (*n)++)
        if (read_one(a->u.array.values[*n], &(*items)[*n], err, errlen) < 0)
            return -1;
    return 0;
}

int pl_nodedrain_parse_list(const char *json, size_t len, pl_nodedrain_t **items, size_t *n,
                            char *rv, size_t rvlen, char *err, size_t errlen)
{
    *items = NULL;
    *n = 0;
    if (rvlen)
        rv[0] = '\0';
    util_set_err(err, errlen, "%s", "");
    yajl_val v = parse_tree(json, len, PL_ND_LIST_MAX, "NodeDrainList", err, errlen);
    if (!v)
        return -1;
    int rc = read_list(v, items, n, rv, rvlen, err, errlen);
    yajl_tree_free(v);
    if (rc < 0) {
        pl_nodedrains_free(*items, *n);
        *items = NULL;
        *n = 0;
    }
    return rc;
}

static int read_event(yajl_val v, pl_event_t *type, pl_nodedrain_t *out, long *code, char *err,
                      size_t errlen)
{
    static const char *const names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
    yajl_val t = util_json_member(v, "type"), obj = util_json_member(v, "object");
    size_t i = 0;
    while (i < 5 && !(str_of(t) && strcmp(str_of(t), names[i]) == 0))
        i++;
    if (i == 5 || !YAJL_IS_OBJECT(obj)) {
        util_set_err(err, errlen, "a watch event has a known type and an object");
        return -1;
    }
    *type = (pl_event_t)i;
    if (*type == PL_EV_ERROR) {
        yajl_val c = util_json_member(obj, "code"), m = util_json_member(obj, "message");
        *code = YAJL_IS_INTEGER(c) ? (long)YAJL_GET_INTEGER(c) : 0;
        util_set_err(err, errlen, "%s", str_of(m) ? str_of(m) : "watch error");
        return 0;
    }
    if (*type == PL_EV_BOOKMARK) {
        yajl_val ver = util_json_member(util_json_member(obj, "metadata"), "resourceVersion");
        out->resource_version = strdup(str_of(ver) ? str_of(ver) : "");
        return out->resource_version ? 0 : -1;
    }
    return read_one(obj, out, err, errlen);
}

int pl_nodedrain_parse_event(const char *json, size_t len, pl_event_t *type, pl_nodedrain_t *out,
                             long *code, char *err, size_t errlen)
{
    util_set_err(err, errlen, "%s", "");
    nd_init(out);
    *code = 0;
    yajl_val v = parse_tree(json, len, PL_ND_MAX_BYTES, "watch event", err, errlen);
    if (!v)
        return -1;
    int rc = read_event(v, type, out, code, err, errlen);
    yajl_tree_free(v);
    if (rc < 0)
        pl_nodedrain_free(out);
    return rc;
}

bool pl_nodedrain_finished_record(const pl_nodedrain_t *nd)
{
    return strcmp(nd->managed_by, "vmdrain") == 0 &&
           (strcmp(nd->phase, "Completed") == 0 || strcmp(nd->phase, "Cancelled") == 0);
}
