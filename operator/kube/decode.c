#include "kube/decode.h"

#include "util/buf.h"
#include "util/quantity.h"
#include "util/timefmt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* Levels past KUBE_DECODE_MAX_DEPTH are only counted (the object is
 * skipped); this many more and the body is rejected, which bounds yajl's
 * own state stack. */
#define OVERFLOW_MAX 4096
/* max_object_bytes is clamped to this (pool offsets are 32-bit). */
#define MAX_OBJECT_LIMIT ((size_t)1 << 30)
/* A list's resourceVersion and continue token. */
#define LIST_TOKEN_MAX 16384

/* --- the shape of what is decoded ------------------------------------------
 *
 * Every open JSON container is a frame on a small stack, tagged with a
 * context: which part of which document it is. A context is a struct (its
 * keys are looked up in a table of rows), an array (all elements share one
 * context), a string map (labels, annotations, ConfigMap data, selectors)
 * or SKIP (anything vmdrain does not keep: every event inside is ignored).
 */

enum ctx {
    C_SKIP,
    C_LIST_ROOT,
    C_LIST_META,
    C_LIST_ITEMS,
    C_EVENT,
    C_OBJ, /* an item or a watch event's object; rows depend on the kind */
    C_META,
    C_LABELS,
    C_ANNOTATIONS,
    C_NODE_SPEC,
    C_TAINTS,
    C_TAINT,
    C_NODE_STATUS,
    C_CONDS,
    C_COND,
    C_POD_SPEC,
    C_POD_STATUS,
    C_VMI_SPEC,
    C_VMI_DOMAIN,
    C_VMI_MEMORY,
    C_VMI_RESOURCES,
    C_VMI_REQUESTS,
    C_VMI_STATUS,
    C_VMI_CONDS,
    C_VMI_COND,
    C_MSTATE,
    C_MIG_SPEC,
    C_MIG_STATUS,
    C_PTTS,
    C_PTT,
    C_CM_DATA,
    C_POL_SPEC,
    C_POL_SELECTORS,
    C_POL_VMI_SEL,
    C_COUNT
};

enum cls { CLS_SKIP, CLS_STRUCT, CLS_ARRAY, CLS_MAP };

/* What a field's JSON value must be. */
enum jtype { J_STRING, J_BOOL, J_INT, J_QUANTITY, J_TIME, J_MAP, J_ARRAY };

enum field {
    F_NONE,
    F_EV_TYPE,
    F_LIST_KIND,
    F_LIST_RV,
    F_LIST_CONTINUE,
    F_ST_CODE,
    F_ST_REASON,
    F_ST_MESSAGE,
    F_OBJ_KIND,
    F_NAME,
    F_NAMESPACE,
    F_UID,
    F_RV,
    F_GENERATION,
    F_CREATED,
    F_DELETED,
    F_NODE_UNSCHEDULABLE,
    F_TAINT_KEY,
    F_TAINT_VALUE,
    F_TAINT_EFFECT,
    F_COND_TYPE,
    F_COND_STATUS,
    F_COND_REASON,
    F_COND_MESSAGE,
    F_POD_NODE,
    F_POD_PHASE,
    F_VMI_EVICTION,
    F_VMI_GUEST,
    F_VMI_REQ_MEMORY,
    F_VMI_NODE,
    F_VMI_PHASE,
    F_VMI_METHOD,
    F_MS_UID,
    F_MS_SOURCE,
    F_MS_TARGET,
    F_MS_POD,
    F_MS_START,
    F_MS_END,
    F_MS_COMPLETED,
    F_MS_FAILED,
    F_MS_ABORT_REQUESTED,
    F_MS_ABORT_STATUS,
    F_MIG_VMI,
    F_MIG_PHASE,
    F_PTT_TIME,
    F_POL_BANDWIDTH,
    F_POL_TIMEOUT,
};

/* A lenient row is read when it fits and ignored when it does not: the
 * Status fields looked for in every watch object. */
#define R_LENIENT 1

struct row {
    const char *key;
    uint8_t len;
    uint8_t field;
    uint8_t type;
    uint8_t child; /* context of a J_MAP or J_ARRAY value */
    uint8_t flags;
};

#define ROW(k, f, t, c, fl)                                                                        \
    {                                                                                              \
        k, sizeof(k) - 1, f, t, c, fl                                                              \
    }
#define STR(k, f) ROW(k, f, J_STRING, 0, 0)
#define MAP(k, c) ROW(k, F_NONE, J_MAP, c, 0)
#define ARR(k, c) ROW(k, F_NONE, J_ARRAY, c, 0)
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, 0, 0, 0, 0                                                                        \
    }

static const struct row list_root_rows[] = {
    STR("kind", F_LIST_KIND),
    MAP("metadata", C_LIST_META),
    ARR("items", C_LIST_ITEMS),
    ROW("code", F_ST_CODE, J_INT, 0, 0),
    STR("reason", F_ST_REASON),
    STR("message", F_ST_MESSAGE),
    END,
};
static const struct row list_meta_rows[] = {
    STR("resourceVersion", F_LIST_RV),
    STR("continue", F_LIST_CONTINUE),
    END,
};
static const struct row event_rows[] = {
    STR("type", F_EV_TYPE),
    MAP("object", C_OBJ),
    END,
};
/* Looked for in every object after its kind's own rows. */
static const struct row obj_common_rows[] = {
    MAP("metadata", C_META),
    ROW("kind", F_OBJ_KIND, J_STRING, 0, R_LENIENT),
    ROW("code", F_ST_CODE, J_INT, 0, R_LENIENT),
    ROW("reason", F_ST_REASON, J_STRING, 0, R_LENIENT),
    ROW("message", F_ST_MESSAGE, J_STRING, 0, R_LENIENT),
    END,
};
static const struct row meta_rows[] = {
    STR("name", F_NAME),
    STR("namespace", F_NAMESPACE),
    STR("uid", F_UID),
    STR("resourceVersion", F_RV),
    ROW("generation", F_GENERATION, J_INT, 0, 0),
    ROW("creationTimestamp", F_CREATED, J_TIME, 0, 0),
    ROW("deletionTimestamp", F_DELETED, J_TIME, 0, 0),
    MAP("labels", C_LABELS),
    MAP("annotations", C_ANNOTATIONS),
    END,
};
static const struct row node_rows[] = {MAP("spec", C_NODE_SPEC), MAP("status", C_NODE_STATUS), END};
static const struct row node_spec_rows[] = {
    ROW("unschedulable", F_NODE_UNSCHEDULABLE, J_BOOL, 0, 0),
    ARR("taints", C_TAINTS),
    END,
};
static const struct row taint_rows[] = {
    STR("key", F_TAINT_KEY),
    STR("value", F_TAINT_VALUE),
    STR("effect", F_TAINT_EFFECT),
    END,
};
static const struct row node_status_rows[] = {ARR("conditions", C_CONDS), END};
static const struct row cond_rows[] = {
    STR("type", F_COND_TYPE),
    STR("status", F_COND_STATUS),
    END,
};
/* A VMI's conditions keep reason and message too (LiveMigratable). */
static const struct row vmi_cond_rows[] = {
    STR("type", F_COND_TYPE),
    STR("status", F_COND_STATUS),
    STR("reason", F_COND_REASON),
    STR("message", F_COND_MESSAGE),
    END,
};
static const struct row pod_rows[] = {MAP("spec", C_POD_SPEC), MAP("status", C_POD_STATUS), END};
static const struct row pod_spec_rows[] = {STR("nodeName", F_POD_NODE), END};
static const struct row pod_status_rows[] = {STR("phase", F_POD_PHASE), END};
static const struct row vmi_rows[] = {MAP("spec", C_VMI_SPEC), MAP("status", C_VMI_STATUS), END};
static const struct row vmi_spec_rows[] = {
    STR("evictionStrategy", F_VMI_EVICTION),
    MAP("domain", C_VMI_DOMAIN),
    END,
};
static const struct row vmi_domain_rows[] = {
    MAP("memory", C_VMI_MEMORY),
    MAP("resources", C_VMI_RESOURCES),
    END,
};
static const struct row vmi_memory_rows[] = {ROW("guest", F_VMI_GUEST, J_QUANTITY, 0, 0), END};
static const struct row vmi_resources_rows[] = {MAP("requests", C_VMI_REQUESTS), END};
static const struct row vmi_requests_rows[] = {
    ROW("memory", F_VMI_REQ_MEMORY, J_QUANTITY, 0, 0),
    END,
};
static const struct row vmi_status_rows[] = {
    STR("nodeName", F_VMI_NODE),     STR("phase", F_VMI_PHASE),
    ARR("conditions", C_VMI_CONDS),  STR("migrationMethod", F_VMI_METHOD),
    MAP("migrationState", C_MSTATE), END,
};
static const struct row mstate_rows[] = {
    STR("migrationUid", F_MS_UID),
    STR("sourceNode", F_MS_SOURCE),
    STR("targetNode", F_MS_TARGET),
    STR("targetPod", F_MS_POD),
    ROW("startTimestamp", F_MS_START, J_TIME, 0, 0),
    ROW("endTimestamp", F_MS_END, J_TIME, 0, 0),
    ROW("completed", F_MS_COMPLETED, J_BOOL, 0, 0),
    ROW("failed", F_MS_FAILED, J_BOOL, 0, 0),
    ROW("abortRequested", F_MS_ABORT_REQUESTED, J_BOOL, 0, 0),
    STR("abortStatus", F_MS_ABORT_STATUS),
    END,
};
static const struct row mig_rows[] = {MAP("spec", C_MIG_SPEC), MAP("status", C_MIG_STATUS), END};
static const struct row mig_spec_rows[] = {STR("vmiName", F_MIG_VMI), END};
static const struct row mig_status_rows[] = {
    STR("phase", F_MIG_PHASE),
    ARR("phaseTransitionTimestamps", C_PTTS),
    END,
};
static const struct row ptt_rows[] = {
    ROW("phaseTransitionTimestamp", F_PTT_TIME, J_TIME, 0, 0),
    END,
};
static const struct row cm_rows[] = {MAP("data", C_CM_DATA), END};
static const struct row pol_rows[] = {MAP("spec", C_POL_SPEC), END};
static const struct row pol_spec_rows[] = {
    ROW("bandwidthPerMigration", F_POL_BANDWIDTH, J_QUANTITY, 0, 0),
    ROW("completionTimeoutPerGiB", F_POL_TIMEOUT, J_INT, 0, 0),
    MAP("selectors", C_POL_SELECTORS),
    END,
};
static const struct row pol_selectors_rows[] = {
    MAP("virtualMachineInstanceSelector", C_POL_VMI_SEL),
    END,
};

static const struct ctx_info {
    const char *path; /* for messages */
    uint8_t cls;
    uint8_t elem; /* arrays: the context of each element (an object) */
    const struct row *rows;
} ctxs[C_COUNT] = {
    [C_SKIP] = {"", CLS_SKIP, 0, NULL},
    [C_LIST_ROOT] = {"", CLS_STRUCT, 0, list_root_rows},
    [C_LIST_META] = {"metadata", CLS_STRUCT, 0, list_meta_rows},
    [C_LIST_ITEMS] = {"items", CLS_ARRAY, C_OBJ, NULL},
    [C_EVENT] = {"", CLS_STRUCT, 0, event_rows},
    [C_OBJ] = {"", CLS_STRUCT, 0, NULL},
    [C_META] = {"metadata", CLS_STRUCT, 0, meta_rows},
    [C_LABELS] = {"metadata.labels", CLS_MAP, 0, NULL},
    [C_ANNOTATIONS] = {"metadata.annotations", CLS_MAP, 0, NULL},
    [C_NODE_SPEC] = {"spec", CLS_STRUCT, 0, node_spec_rows},
    [C_TAINTS] = {"spec.taints", CLS_ARRAY, C_TAINT, NULL},
    [C_TAINT] = {"spec.taints[]", CLS_STRUCT, 0, taint_rows},
    [C_NODE_STATUS] = {"status", CLS_STRUCT, 0, node_status_rows},
    [C_CONDS] = {"status.conditions", CLS_ARRAY, C_COND, NULL},
    [C_COND] = {"status.conditions[]", CLS_STRUCT, 0, cond_rows},
    [C_POD_SPEC] = {"spec", CLS_STRUCT, 0, pod_spec_rows},
    [C_POD_STATUS] = {"status", CLS_STRUCT, 0, pod_status_rows},
    [C_VMI_SPEC] = {"spec", CLS_STRUCT, 0, vmi_spec_rows},
    [C_VMI_DOMAIN] = {"spec.domain", CLS_STRUCT, 0, vmi_domain_rows},
    [C_VMI_MEMORY] = {"spec.domain.memory", CLS_STRUCT, 0, vmi_memory_rows},
    [C_VMI_RESOURCES] = {"spec.domain.resources", CLS_STRUCT, 0, vmi_resources_rows},
    [C_VMI_REQUESTS] = {"spec.domain.resources.requests", CLS_STRUCT, 0, vmi_requests_rows},
    [C_VMI_STATUS] = {"status", CLS_STRUCT, 0, vmi_status_rows},
    [C_VMI_CONDS] = {"status.conditions", CLS_ARRAY, C_VMI_COND, NULL},
    [C_VMI_COND] = {"status.conditions[]", CLS_STRUCT, 0, vmi_cond_rows},
    [C_MSTATE] = {"status.migrationState", CLS_STRUCT, 0, mstate_rows},
    [C_MIG_SPEC] = {"spec", CLS_STRUCT, 0, mig_spec_rows},
    [C_MIG_STATUS] = {"status", CLS_STRUCT, 0, mig_status_rows},
    [C_PTTS] = {"status.phaseTransitionTimestamps", CLS_ARRAY, C_PTT, NULL},
    [C_PTT] = {"status.phaseTransitionTimestamps[]", CLS_STRUCT, 0, ptt_rows},
    [C_CM_DATA] = {"data", CLS_MAP, 0, NULL},
    [C_POL_SPEC] = {"spec", CLS_STRUCT, 0, pol_spec_rows},
    [C_POL_SELECTORS] = {"spec.selectors", CLS_STRUCT, 0, pol_selectors_rows},
    [C_POL_VMI_SEL] = {"spec.selectors.virtualMachineInstanceSelector", CLS_MAP, 0, NULL},
};

static const struct row *const kind_rows[KUBE_KIND_COUNT] = {
    [KUBE_KIND_NODE] = node_rows,    [KUBE_KIND_POD] = pod_rows,
    [KUBE_KIND_VMI] = vmi_rows,      [KUBE_KIND_MIGRATION] = mig_rows,
    [KUBE_KIND_CONFIGMAP] = cm_rows, [KUBE_KIND_MIGRATION_POLICY] = pol_rows,
};

/* --- the decoder ---------------------------------------------------------- */

struct frame {
    uint8_t ctx;
    const struct row *row; /* structs: the field whose value comes next */
};

enum vtype { V_NULL, V_BOOL, V_NUMBER, V_STRING };

/* A scalar as yajl reported it. */
struct jval {
    enum vtype t;
    const char *s; /* numbers and strings; not NUL-terminated */
    size_t n;
    int b;
};

struct kube_decoder {
    /* configuration */
    kube_kind_t kind;
    kube_decode_mode_t mode;
    kube_decoder_cb_t cb;
    void *ud;
    size_t max_obj;
    yajl_handle h;

    /* where the parse is */
    uint64_t chunk_base; /* body bytes before the chunk yajl is parsing */
    uint64_t last_event; /* body offset just past the last parse event */
    struct frame stack[KUBE_DECODE_MAX_DEPTH];
    int depth;
    unsigned overflow; /* levels beyond the stack, only counted */
    bool trailing;     /* WATCH: yajl holds part of a top-level token */
    bool failed;
    bool finished;
    char err[512];
    size_t skipped;

    /* the object being decoded */
    kube__build_t *b;
    bool in_obj;
    uint64_t obj_start;
    bool oversized;
    char problem[384]; /* the first reason to skip it; "" when none */
    char warning[384]; /* the first informational field dropped */
    unsigned n_warnings;
    char name[128]; /* metadata.name and namespace for messages (cut) */
    char ns[80];
    bool named;
    char obj_kind[80];
    char key[96];     /* the current key of a string map, cut, for messages */
    uint32_t key_off; /* the same key in the pool when it is kept */
    size_t data_bytes;
    struct {
        char type[40];
        kube_cond_t status;
        uint32_t reason, message;
        size_t mark;
    } cond;
    uint32_t taint[3];

    /* a Status: a LIST body's top level or a watch event's object */
    struct {
        int code;
        char reason[128];
        char message[1024];
    } st;

    /* the watch event being decoded */
    struct {
        char type[40];
        bool typed;
        bool has_object;
        char problem[256];
    } ev;

    /* the list */
    char list_kind[80];
    buf_t list_rv;
    buf_t list_continue;
    bool root_done;
    size_t item_index;
};

static const char *const event_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *kube_event_type_name(kube_event_type_t type)
{
    return (unsigned)type < 5 ? event_names[type] : "UNKNOWN";
}

/* Copies s[0..n) into dst (size cap) as a C string, cut to fit. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Copies a name that is compared later (an event or condition type); one
 * that cannot be held exactly becomes "(invalid)", which matches nothing. */
static void copy_name(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap || memchr(s, '\0', n))
        copy_cut(dst, cap, "(invalid)", 9);
    else
        copy_cut(dst, cap, s, n);
}

static uint64_t parse_pos(const kube_decoder_t *d)
{
    return d->chunk_base + yajl_get_bytes_consumed(d->h);
}

/* Records a hard error (the first one wins), with the body offset when
 * at is set; yajl is stopped by the callback that returns !d->failed. */
__attribute__((format(printf, 3, 0))) static void vfail(kube_decoder_t *d, bool at, const char *fmt,
                                                        va_list ap)
{
    if (d->failed)
        return;
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    size_t n = strlen(d->err);
    if (at)
        snprintf(d->err + n, sizeof(d->err) - n, " (at byte %llu)",
                 (unsigned long long)d->last_event);
    d->failed = true;
}

__attribute__((format(printf, 2, 3))) static void fail(kube_decoder_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, true, fmt, ap);
    va_end(ap);
}

/* A hard error about the body as a whole (no offset). */
__attribute__((format(printf, 2, 3))) static void fail_body(kube_decoder_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, false, fmt, ap);
    va_end(ap);
}

/* Records why the current object cannot be projected; only the first
 * reason is kept and later stores are skipped. */
__attribute__((format(printf, 2, 3))) static void problem(kube_decoder_t *d, const char *fmt, ...)
{
    if (d->problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->problem, sizeof(d->problem), fmt, ap);
    va_end(ap);
    if (!d->problem[0])
        snprintf(d->problem, sizeof(d->problem), "invalid");
}

/* Records an informational field left unset; reported with the object. */
__attribute__((format(printf, 2, 3))) static void warning(kube_decoder_t *d, const char *fmt, ...)
{
    if (d->n_warnings++)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->warning, sizeof(d->warning), fmt, ap);
    va_end(ap);
}

/* "spec.taints[].key" for a key of ctx, or "spec.taints[]" for an element. */
static void field_name(char *out, size_t n, int ctx, const char *key)
{
    const char *path = ctxs[ctx].path;
    if (!key)
        snprintf(out, n, "%s[]", path);
    else
        snprintf(out, n, "%s%s%s", path, path[0] ? "." : "", key);
}

static const char *jtype_name(int t)
{
    static const char *const names[] = {"a string", "a boolean", "an integer", "a quantity",
                                        "a time",   "an object", "an array"};
    return names[t];
}

static const char *vtype_name(enum vtype t)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string"};
    return names[t];
}

/* A value of the wrong JSON type. At list level that is a hard error, in a
 * watch event's own fields it skips the event, elsewhere the object. */
static void mismatch(kube_decoder_t *d, int ctx, const char *key, const char *want, const char *got)
{
    char name[160];
    field_name(name, sizeof(name), ctx, key);
    if (ctx == C_LIST_ROOT || ctx == C_LIST_META)
        fail(d, "%s body: %s: expected %s, got %s", kube_kind_list_name(d->kind), name, want, got);
    else if (ctx == C_EVENT && !d->ev.problem[0])
        snprintf(d->ev.problem, sizeof(d->ev.problem), "%s: expected %s, got %s", name, want, got);
    else if (ctx != C_EVENT)
        problem(d, "%s: expected %s, got %s", name, want, got);
}

/* --- building the projection ---------------------------------------------- */

static kube_obj_t *scratch(kube_decoder_t *d)
{
    return kube__build_scratch(d->b);
}

/* Copies a kept string into the object's pool. Returns its offset, or
 * KUBE__NO_STR when the object is already being skipped or cannot hold it
 * (which makes it skipped). */
static uint32_t keep_string(kube_decoder_t *d, int ctx, const char *key, const char *s, size_t n)
{
    if (d->problem[0])
        return KUBE__NO_STR;
    if (memchr(s, '\0', n)) {
        char name[160];
        field_name(name, sizeof(name), ctx, key);
        problem(d, "%s: contains a NUL character", name);
        return KUBE__NO_STR;
    }
    uint32_t off = kube__build_intern(d->b, s, n);
    if (off == KUBE__NO_STR) {
        if (errno == ENOMEM)
            fail(d, "out of memory");
        else
            problem(d, "object larger than %zu bytes", d->max_obj);
    }
    return off;
}

static void set_field(kube_decoder_t *d, int ctx, const struct row *r, const char **field,
                      const char *s, size_t n)
{
    uint32_t off = keep_string(d, ctx, r->key, s, n);
    if (off != KUBE__NO_STR)
        kube__build_set_off(d->b, field, off);
}

/* String fields that become enums or decoder state. Returns false when the
 * field is not one of them. */
static bool set_enum_or_state(kube_decoder_t *d, int field, const char *s, size_t n)
{
    kube_obj_t *o = scratch(d);
    switch (field) {
    case F_EV_TYPE:
        copy_name(d->ev.type, sizeof(d->ev.type), s, n);
        d->ev.typed = true;
        return true;
    case F_OBJ_KIND:
        copy_name(d->obj_kind, sizeof(d->obj_kind), s, n);
        return true;
    case F_ST_REASON:
        copy_cut(d->st.reason, sizeof(d->st.reason), s, n);
        return true;
    case F_ST_MESSAGE:
        copy_cut(d->st.message, sizeof(d->st.message), s, n);
        return true;
    case F_COND_TYPE:
        copy_name(d->cond.type, sizeof(d->cond.type), s, n);
        return true;
    case F_COND_STATUS:
        d->cond.status = kube_cond_parse(s, n);
        return true;
    case F_POD_PHASE:
        ((kube_pod_t *)o)->phase = kube_pod_phase_parse(s, n);
        return true;
    case F_VMI_PHASE:
        ((kube_vmi_t *)o)->phase = kube_vmi_phase_parse(s, n);
        return true;
    case F_VMI_EVICTION:
        ((kube_vmi_t *)o)->eviction_strategy = kube_eviction_strategy_parse(s, n);
        return true;
    case F_MS_ABORT_STATUS:
        ((kube_vmi_t *)o)->migration.abort_status = kube_abort_status_parse(s, n);
        return true;
    case F_MIG_PHASE:
        ((kube_migration_t *)o)->phase = kube_migration_phase_parse(s, n);
        return true;
    }
    return false;
}

/* The list's kind is checked as soon as it is known, so that a body of
 * the wrong kind fails before any item is delivered. */
static void set_list_kind(kube_decoder_t *d, const char *s, size_t n)
{
    copy_cut(d->list_kind, sizeof(d->list_kind), s, n);
    const char *want = kube_kind_list_name(d->kind);
    bool ok =
        (n == strlen(want) && memcmp(s, want, n) == 0) || (n == 6 && memcmp(s, "Status", 6) == 0);
    if (!ok)
        fail_body(d, "%s body: kind is \"%s\"", want, d->list_kind);
}

static void set_list_token(kube_decoder_t *d, buf_t *b, const char *what, const char *s, size_t n)
{
    buf_reset(b);
    if (buf_append(b, s, n) < 0)
        fail(d, "%s body: metadata.%s longer than %d bytes", kube_kind_list_name(d->kind), what,
             LIST_TOKEN_MAX);
}

/* Where a string field goes in the scratch object, or NULL. */
static const char **string_slot(kube_decoder_t *d, int field)
{
    kube_obj_t *o = scratch(d);
    kube_vmi_t *vmi = (kube_vmi_t *)o;
    switch (field) {
    case F_NAME:
        return &o->name;
    case F_NAMESPACE:
        return &o->ns;
    case F_UID:
        return &o->uid;
    case F_RV:
        return &o->resource_version;
    case F_POD_NODE:
        return &((kube_pod_t *)o)->node_name;
    case F_VMI_NODE:
        return &vmi->node_name;
    case F_VMI_METHOD:
        return &vmi->migration_method;
    case F_MS_UID:
        return &vmi->migration.migration_uid;
    case F_MS_SOURCE:
        return &vmi->migration.source_node;
    case F_MS_TARGET:
        return &vmi->migration.target_node;
    case F_MS_POD:
        return &vmi->migration.target_pod;
    case F_MIG_VMI:
        return &((kube_migration_t *)o)->vmi_name;
    }
    return NULL;
}

/* A string value for a struct field: decoder state, an enum, or a string
 * of the projection. */
static void set_string(kube_decoder_t *d, int ctx, const struct row *r, const char *s, size_t n)
{
    if (set_enum_or_state(d, r->field, s, n))
        return;
    switch (r->field) {
    case F_LIST_KIND:
        set_list_kind(d, s, n);
        return;
    case F_LIST_RV:
        set_list_token(d, &d->list_rv, "resourceVersion", s, n);
        return;
    case F_LIST_CONTINUE:
        set_list_token(d, &d->list_continue, "continue", s, n);
        return;
    case F_NAME:
        copy_cut(d->name, sizeof(d->name), s, n);
        d->named = n > 0;
        break;
    case F_NAMESPACE:
        copy_cut(d->ns, sizeof(d->ns), s, n);
        break;
    case F_TAINT_KEY:
    case F_TAINT_VALUE:
    case F_TAINT_EFFECT:
        d->taint[r->field - F_TAINT_KEY] = keep_string(d, ctx, r->key, s, n);
        return;
    case F_COND_REASON:
        d->cond.reason = keep_string(d, ctx, r->key, s, n);
        return;
    case F_COND_MESSAGE:
        d->cond.message = keep_string(d, ctx, r->key, s, n);
        return;
    }
    const char **slot = string_slot(d, r->field);
    if (slot)
        set_field(d, ctx, r, slot, s, n);
}

static void set_bool(kube_decoder_t *d, int field, bool v)
{
    kube_obj_t *o = scratch(d);
    kube_vmi_t *vmi = (kube_vmi_t *)o;
    switch (field) {
    case F_NODE_UNSCHEDULABLE:
        ((kube_node_t *)o)->unschedulable = v;
        break;
    case F_MS_COMPLETED:
        vmi->migration.completed = v;
        break;
    case F_MS_FAILED:
        vmi->migration.failed = v;
        break;
    case F_MS_ABORT_REQUESTED:
        vmi->migration.abort_requested = v;
        break;
    }
}

/* Parses a JSON number that must be an integer in int64 range. */
static bool parse_int(const char *s, size_t n, int64_t *out)
{
    char tmp[32];
    size_t i = (n && s[0] == '-') ? 1 : 0;
    if (n == 0 || n >= sizeof(tmp) || i == n)
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = v;
    return true;
}

static void set_int(kube_decoder_t *d, int field, int64_t v)
{
    kube_obj_t *o = scratch(d);
    switch (field) {
    case F_GENERATION:
        o->generation = v;
        break;
    case F_POL_TIMEOUT:
        ((kube_migration_policy_t *)o)->completion_timeout_per_gib = v;
        break;
    case F_ST_CODE:
        d->st.code = v < 0 || v > 999 ? 0 : (int)v;
        break;
    }
}

/* A quantity field (string or number); one that does not parse makes the
 * object skipped. */
static void set_quantity(kube_decoder_t *d, int ctx, const struct row *r, const char *s, size_t n)
{
    char tmp[QUANTITY_MAX_LEN + 8], err[192];
    int64_t v;

    copy_cut(tmp, sizeof(tmp), s, n);
    if (n > QUANTITY_MAX_LEN || quantity_parse(tmp, 0, &v, err, sizeof(err)) < 0) {
        char name[160];
        if (n > QUANTITY_MAX_LEN)
            snprintf(err, sizeof(err), "invalid quantity \"%.24s...\": too long", tmp);
        field_name(name, sizeof(name), ctx, r->key);
        problem(d, "%s: %s", name, err);
        return;
    }
    kube_obj_t *o = scratch(d);
    if (r->field == F_VMI_GUEST)
        ((kube_vmi_t *)o)->guest_memory = v;
    else if (r->field == F_VMI_REQ_MEMORY)
        ((kube_vmi_t *)o)->memory_request = v;
    else if (r->field == F_POL_BANDWIDTH)
        ((kube_migration_policy_t *)o)->bandwidth = v;
}

static bool time_after(vd_time_t a, vd_time_t b)
{
    return a.sec > b.sec || (a.sec == b.sec && a.nsec > b.nsec);
}

/* Informational status times: unparsable ones are dropped with a warning
 * rather than losing the whole object (docs/decoding.md). */
static bool time_is_informational(int field)
{
    return field == F_MS_START || field == F_MS_END || field == F_PTT_TIME;
}

/* A time field; one that does not parse skips the object, or is only
 * warned about for the informational status times. */
static void set_time(kube_decoder_t *d, int ctx, const struct row *r, const char *s, size_t n)
{
    char tmp[72], err[192];
    vd_time_t t;

    copy_cut(tmp, sizeof(tmp), s, n);
    if (n >= sizeof(tmp) - 1 || time_parse_rfc3339(tmp, &t, err, sizeof(err)) < 0) {
        char name[160];
        if (n >= sizeof(tmp) - 1)
            snprintf(err, sizeof(err), "invalid RFC 3339 time \"%.24s...\": too long", tmp);
        field_name(name, sizeof(name), ctx, r->key);
        if (time_is_informational(r->field))
            warning(d, "%s: ignored: %s", name, err);
        else
            problem(d, "%s: %s", name, err);
        return;
    }
    kube_obj_t *o = scratch(d);
    kube_vmi_t *vmi = (kube_vmi_t *)o;
    kube_migration_t *mig = (kube_migration_t *)o;
    switch (r->field) {
    case F_CREATED:
        o->created = t;
        break;
    case F_DELETED:
        o->deleted = t;
        break;
    case F_MS_START:
        vmi->migration.start = t;
        break;
    case F_MS_END:
        vmi->migration.end = t;
        break;
    case F_PTT_TIME:
        if (time_after(t, mig->phase_changed))
            mig->phase_changed = t;
        break;
    }
}

/* Whether a row's value is to be read at all: list items ignore the Status
 * fields that a watch object is searched for. */
static bool row_wanted(const kube_decoder_t *d, int ctx, const struct row *r)
{
    if (ctx == C_OBJ && d->mode == KUBE_DECODE_LIST)
        return r->field != F_ST_CODE && r->field != F_ST_REASON && r->field != F_ST_MESSAGE;
    return true;
}

/* A scalar for a struct field: type check, then store. */
static void apply(kube_decoder_t *d, int ctx, const struct row *r, const struct jval *v)
{
    int64_t i;
    bool ok;

    if (!row_wanted(d, ctx, r))
        return;
    switch (r->type) {
    case J_STRING:
        ok = v->t == V_STRING;
        if (ok)
            set_string(d, ctx, r, v->s, v->n);
        break;
    case J_BOOL:
        ok = v->t == V_BOOL;
        if (ok)
            set_bool(d, r->field, v->b);
        break;
    case J_INT:
        ok = v->t == V_NUMBER && parse_int(v->s, v->n, &i);
        if (ok)
            set_int(d, r->field, i);
        break;
    case J_QUANTITY: /* Kubernetes accepts "4Gi" and 4294967296 alike */
        ok = v->t == V_STRING || v->t == V_NUMBER;
        if (ok)
            set_quantity(d, ctx, r, v->s, v->n);
        break;
    case J_TIME:
        ok = v->t == V_STRING;
        if (ok)
            set_time(d, ctx, r, v->s, v->n);
        break;
    default:
        ok = false;
    }
    if (!ok && !(r->flags & R_LENIENT)) {
        const char *got = vtype_name(v->t);
        char tmp[48];
        if (v->t == V_NUMBER && r->type == J_INT) {
            char num[32];
            copy_cut(num, sizeof(num), v->s, v->n);
            snprintf(tmp, sizeof(tmp), "%s", num);
            got = tmp;
        }
        mismatch(d, ctx, r->key, jtype_name(r->type), got);
    }
}

/* --- string maps: labels, annotations, ConfigMap data, selectors --------- */

static bool map_keeps_all(int ctx)
{
    return ctx == C_CM_DATA || ctx == C_POL_VMI_SEL;
}

static kube__list_t map_list(int ctx)
{
    switch (ctx) {
    case C_LABELS:
        return KUBE__LIST_LABELS;
    case C_ANNOTATIONS:
        return KUBE__LIST_ANNOTATIONS;
    case C_CM_DATA:
        return KUBE__LIST_DATA;
    default:
        return KUBE__LIST_VMI_SELECTOR;
    }
}

/* Counts ConfigMap data against its cap. */
static void count_data(kube_decoder_t *d, int ctx, size_t n)
{
    if (ctx != C_CM_DATA)
        return;
    d->data_bytes += n;
    if (d->data_bytes > KUBE_CONFIGMAP_DATA_MAX)
        problem(d, "data larger than %d bytes", KUBE_CONFIGMAP_DATA_MAX);
}

/* A key of a string map: remembered for messages, and copied into the
 * pool when the map keeps it (labels and annotations keep few keys). */
static void map_key(kube_decoder_t *d, int ctx, const char *k, size_t n)
{
    copy_cut(d->key, sizeof(d->key), k, n);
    d->key_off = KUBE__NO_STR;
    if (!map_keeps_all(ctx) && !kube_obj_keeps_key(k, n))
        return;
    count_data(d, ctx, n);
    d->key_off = keep_string(d, ctx, d->key, k, n);
}

/* A value of a string map: must be a string (or null, which is "");
 * stored with its key when the key is kept. */
static void map_value(kube_decoder_t *d, int ctx, const struct jval *v)
{
    uint32_t key = d->key_off;
    d->key_off = KUBE__NO_STR;
    if (v->t != V_STRING && v->t != V_NULL) {
        mismatch(d, ctx, d->key, "a string", vtype_name(v->t));
        return;
    }
    if (key == KUBE__NO_STR || d->problem[0])
        return;
    uint32_t val = KUBE__NO_STR; /* null is "", as in Kubernetes */
    if (v->t == V_STRING) {
        count_data(d, ctx, v->n);
        val = keep_string(d, ctx, d->key, v->s, v->n);
        if (val == KUBE__NO_STR)
            return;
    }
    if (kube__build_add(d->b, map_list(ctx), key, val, KUBE__NO_STR) < 0) {
        if (errno == ENOMEM)
            fail(d, "out of memory");
        else
            problem(d, "object larger than %zu bytes", d->max_obj);
    }
}

/* --- objects, items and events ------------------------------------------- */

/* An item or event object opens: a fresh builder and fresh bookkeeping.
 * Its size is counted from here. */
static void begin_object(kube_decoder_t *d)
{
    d->in_obj = true;
    d->obj_start = d->last_event;
    d->oversized = false;
    d->problem[0] = d->warning[0] = '\0';
    d->n_warnings = 0;
    d->name[0] = d->ns[0] = d->obj_kind[0] = '\0';
    d->named = false;
    d->data_bytes = 0;
    d->key_off = KUBE__NO_STR;
    if (d->mode == KUBE_DECODE_WATCH)
        memset(&d->st, 0, sizeof(d->st));
    kube__build_reset(d->b, d->kind);
}

/* "Pod ns/name", "Node name" or "Pod (no name)". */
static void describe(const kube_decoder_t *d, char *out, size_t n)
{
    const char *kind = kube_kind_name(d->kind);
    if (!d->name[0])
        snprintf(out, n, "%s (no name)", kind);
    else if (d->ns[0])
        snprintf(out, n, "%s %s/%s", kind, d->ns, d->name);
    else
        snprintf(out, n, "%s %s", kind, d->name);
}

__attribute__((format(printf, 2, 3))) static void skip(kube_decoder_t *d, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    d->skipped++;
    if (d->cb.on_skip)
        d->cb.on_skip(d->ud, why);
}

/* Why the finished object cannot be delivered, or NULL. need_name is false
 * for bookmarks. */
static const char *object_fault(kube_decoder_t *d, bool need_name, char *buf, size_t n)
{
    if (d->problem[0])
        return d->problem;
    const char *want = kube_kind_name(d->kind);
    if (d->obj_kind[0] && strcmp(d->obj_kind, want) != 0) {
        snprintf(buf, n, "kind is \"%s\", expected %s", d->obj_kind, want);
        return buf;
    }
    if (need_name && !d->named)
        return "metadata.name missing";
    return NULL;
}

/* Packs the object; NULL (and a hard error) when out of memory. Reports a
 * dropped informational field first. */
static kube_obj_t *pack_object(kube_decoder_t *d, const char *what)
{
    kube_obj_t *obj = kube__build_finish(d->b);
    if (!obj) {
        fail(d, "out of memory");
        return NULL;
    }
    if (d->n_warnings && d->cb.on_warning) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s: %s%s", what, d->warning,
                 d->n_warnings > 1 ? " (and more)" : "");
        d->cb.on_warning(d->ud, msg);
    }
    return obj;
}

/* A LIST item is complete: deliver it to on_item (which owns it then), or
 * skip it with the reason. */
static void end_item(kube_decoder_t *d)
{
    char who[256], buf[160];
    size_t index = d->item_index++;

    d->in_obj = false;
    describe(d, who, sizeof(who));
    const char *fault = object_fault(d, true, buf, sizeof(buf));
    if (fault) {
        skip(d, "%s (items[%zu]): %s", who, index, fault);
        return;
    }
    kube_obj_t *obj = pack_object(d, who);
    if (!obj)
        return;
    if (d->cb.on_item)
        d->cb.on_item(d->ud, obj);
    else
        kube_obj_free(obj);
}

static void begin_event(kube_decoder_t *d)
{
    memset(&d->ev, 0, sizeof(d->ev));
    memset(&d->st, 0, sizeof(d->st));
    d->in_obj = false;
}

static bool event_type_parse(const char *s, kube_event_type_t *out)
{
    for (unsigned i = 0; i < sizeof(event_names) / sizeof(event_names[0]); i++) {
        if (strcmp(s, event_names[i]) == 0) {
            *out = (kube_event_type_t)i;
            return true;
        }
    }
    return false;
}

static void deliver_error_event(kube_decoder_t *d)
{
    kube_status_t st = {d->st.code, d->st.reason, d->st.message};
    if (d->cb.on_event)
        d->cb.on_event(d->ud, KUBE_EVENT_ERROR, NULL, &st);
}

/* An event is complete: deliver it, or say why it is skipped. ERROR events
 * are always delivered: the watch must learn that it has to restart. */
static void end_event(kube_decoder_t *d)
{
    kube_event_type_t type = KUBE_EVENT_ADDED;
    char who[256], buf[160];

    bool known = d->ev.typed && event_type_parse(d->ev.type, &type);
    if (known && type == KUBE_EVENT_ERROR) {
        deliver_error_event(d);
        return;
    }
    if (d->ev.problem[0]) {
        skip(d, "watch event: %s", d->ev.problem);
        return;
    }
    if (!known) {
        if (d->ev.typed)
            skip(d, "watch event of unknown type \"%s\"", d->ev.type);
        else
            skip(d, "watch event without a type");
        return;
    }
    if (!d->ev.has_object) {
        skip(d, "watch %s event without an object", d->ev.type);
        return;
    }
    describe(d, who, sizeof(who));
    const char *fault = object_fault(d, type != KUBE_EVENT_BOOKMARK, buf, sizeof(buf));
    if (fault) {
        skip(d, "watch %s %s: %s", d->ev.type, who, fault);
        return;
    }
    kube_obj_t *obj = pack_object(d, who);
    if (!obj)
        return;
    if (d->cb.on_event)
        d->cb.on_event(d->ud, type, obj, NULL);
    else
        kube_obj_free(obj);
}

static void begin_cond(kube_decoder_t *d)
{
    d->cond.type[0] = '\0';
    d->cond.status = KUBE_COND_UNKNOWN;
    d->cond.reason = d->cond.message = KUBE__NO_STR;
    d->cond.mark = kube__build_mark(d->b);
}

/* A condition is complete: keep what its type calls for, forget the rest
 * (its strings were the last ones added to the pool). */
static void end_cond(kube_decoder_t *d)
{
    kube_obj_t *o = scratch(d);
    if (d->kind == KUBE_KIND_NODE && strcmp(d->cond.type, "Ready") == 0)
        ((kube_node_t *)o)->ready = d->cond.status;
    if (d->kind == KUBE_KIND_VMI && strcmp(d->cond.type, "LiveMigratable") == 0 && !d->problem[0]) {
        kube_vmi_t *vmi = (kube_vmi_t *)o;
        vmi->migratable = d->cond.status;
        kube__build_set_off(d->b, &vmi->migratable_reason, d->cond.reason);
        kube__build_set_off(d->b, &vmi->migratable_message, d->cond.message);
        return;
    }
    kube__build_rollback(d->b, d->cond.mark);
}

static void begin_taint(kube_decoder_t *d)
{
    d->taint[0] = d->taint[1] = d->taint[2] = KUBE__NO_STR;
}

static void end_taint(kube_decoder_t *d)
{
    if (d->problem[0])
        return;
    if (kube__build_add(d->b, KUBE__LIST_TAINTS, d->taint[0], d->taint[1], d->taint[2]) < 0) {
        if (errno == ENOMEM)
            fail(d, "out of memory");
        else
            problem(d, "object larger than %zu bytes", d->max_obj);
    }
}

/* --- yajl callbacks ------------------------------------------------------- */

/* Every callback starts here: the position, and the caps. yajl buffers a
 * token that spans chunks until it ends, so a token (with the whitespace
 * before it) longer than any object may be is a hard error, whatever the
 * chunking; an object that grows past the cap is skipped. */
static void step(kube_decoder_t *d)
{
    uint64_t now = parse_pos(d);
    bool long_token = now - d->last_event > d->max_obj;
    d->last_event = now;
    if (long_token) {
        fail(d, "a JSON token longer than %zu bytes", d->max_obj);
        return;
    }
    if (d->in_obj && !d->oversized && d->last_event - d->obj_start >= d->max_obj) {
        d->oversized = true;
        d->problem[0] = '\0'; /* the size is the reason that matters */
        problem(d, "object larger than %zu bytes", d->max_obj);
    }
}

static struct frame *top(kube_decoder_t *d)
{
    return &d->stack[d->depth - 1];
}

static const char *body_name(const kube_decoder_t *d)
{
    return d->mode == KUBE_DECODE_LIST ? "LIST body" : "watch event";
}

static void on_item_scalar(kube_decoder_t *d, const struct jval *v)
{
    skip(d, "%s items[%zu]: expected an object, got %s", kube_kind_list_name(d->kind),
         d->item_index, vtype_name(v->t));
    d->item_index++;
}

/* Every scalar: an array element, a string map value, or the value of the
 * struct field whose key came last. Returns 0 to stop yajl on a hard
 * error. */
static int on_scalar(kube_decoder_t *d, const struct jval *v)
{
    step(d);
    if (d->overflow)
        return 1;
    if (d->depth == 0) {
        fail(d, "%s is not a JSON object (got %s)", body_name(d), vtype_name(v->t));
        return 0;
    }
    struct frame *f = top(d);
    switch (ctxs[f->ctx].cls) {
    case CLS_ARRAY:
        if (f->ctx == C_LIST_ITEMS)
            on_item_scalar(d, v);
        else if (v->t != V_NULL)
            mismatch(d, f->ctx, NULL, "an object", vtype_name(v->t));
        break;
    case CLS_MAP:
        map_value(d, f->ctx, v);
        break;
    case CLS_STRUCT: {
        const struct row *r = f->row;
        f->row = NULL;
        if (r && v->t != V_NULL)
            apply(d, f->ctx, r, v);
        break;
    }
    }
    return !d->failed;
}

static int cb_null(void *ctx)
{
    struct jval v = {V_NULL, NULL, 0, 0};
    return on_scalar(ctx, &v);
}

static int cb_boolean(void *ctx, int b)
{
    struct jval v = {V_BOOL, NULL, 0, b};
    return on_scalar(ctx, &v);
}

static int cb_number(void *ctx, const char *s, size_t n)
{
    struct jval v = {V_NUMBER, s, n, 0};
    return on_scalar(ctx, &v);
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    struct jval v = {V_STRING, (const char *)s, n, 0};
    return on_scalar(ctx, &v);
}

static const struct row *find_row(const struct row *rows, const char *k, size_t n)
{
    for (; rows && rows->key; rows++)
        if (rows->len == n && memcmp(rows->key, k, n) == 0)
            return rows;
    return NULL;
}

/* The row of a struct context for key k, or NULL for a key not kept (its
 * value is then skipped). An object's own rows depend on the kind. */
static const struct row *lookup(const kube_decoder_t *d, int ctx, const char *k, size_t n)
{
    if (ctx != C_OBJ)
        return find_row(ctxs[ctx].rows, k, n);
    const struct row *r = find_row(kind_rows[d->kind], k, n);
    return r ? r : find_row(obj_common_rows, k, n);
}

/* A key: in a struct it selects the row for the value that follows; in a
 * string map it is the entry's key. */
static int cb_map_key(void *ctx, const unsigned char *key, size_t n)
{
    kube_decoder_t *d = ctx;
    step(d);
    if (d->overflow || d->depth == 0)
        return !d->failed;
    struct frame *f = top(d);
    if (ctxs[f->ctx].cls == CLS_STRUCT)
        f->row = lookup(d, f->ctx, (const char *)key, n);
    else if (ctxs[f->ctx].cls == CLS_MAP)
        map_key(d, f->ctx, (const char *)key, n);
    return !d->failed;
}

/* The context of a container opened at the top level. */
static int top_context(kube_decoder_t *d, bool is_array)
{
    if (is_array) {
        fail(d, "%s is not a JSON object (got an array)", body_name(d));
        return C_SKIP;
    }
    if (d->mode == KUBE_DECODE_LIST)
        return C_LIST_ROOT;
    begin_event(d);
    return C_EVENT;
}

/* The context of a container opened inside frame f; reports a container
 * where a kept field wants something else. */
static int child_context(kube_decoder_t *d, struct frame *f, bool is_array)
{
    const char *got = is_array ? "an array" : "an object";
    switch (ctxs[f->ctx].cls) {
    case CLS_ARRAY:
        if (!is_array)
            return ctxs[f->ctx].elem;
        if (f->ctx == C_LIST_ITEMS) {
            skip(d, "%s items[%zu]: expected an object, got an array", kube_kind_list_name(d->kind),
                 d->item_index++);
            return C_SKIP;
        }
        mismatch(d, f->ctx, NULL, "an object", got);
        return C_SKIP;
    case CLS_MAP:
        mismatch(d, f->ctx, d->key, "a string", got);
        d->key_off = KUBE__NO_STR;
        return C_SKIP;
    case CLS_STRUCT: {
        const struct row *r = f->row;
        f->row = NULL;
        if (!r || !row_wanted(d, f->ctx, r))
            return C_SKIP;
        if (r->type == (is_array ? J_ARRAY : J_MAP))
            return r->child;
        if (!(r->flags & R_LENIENT))
            mismatch(d, f->ctx, r->key, jtype_name(r->type), got);
        return C_SKIP;
    }
    }
    return C_SKIP;
}

/* What opening a context starts. */
static void enter(kube_decoder_t *d, int ctx)
{
    switch (ctx) {
    case C_OBJ:
        if (d->mode == KUBE_DECODE_WATCH)
            d->ev.has_object = true;
        begin_object(d);
        break;
    case C_COND:
    case C_VMI_COND:
        begin_cond(d);
        break;
    case C_TAINT:
        begin_taint(d);
        break;
    case C_MSTATE:
        ((kube_vmi_t *)scratch(d))->has_migration_state = true;
        break;
    }
}

/* A container opens: push a frame with its context (SKIP for anything not
 * kept), or only count levels past the stack. */
static int on_open(kube_decoder_t *d, bool is_array)
{
    step(d);
    if (d->overflow || d->depth == KUBE_DECODE_MAX_DEPTH) {
        d->overflow++;
        if (!d->in_obj || d->overflow > OVERFLOW_MAX)
            fail(d, "JSON nested deeper than %d levels",
                 d->in_obj ? KUBE_DECODE_MAX_DEPTH + OVERFLOW_MAX : KUBE_DECODE_MAX_DEPTH);
        else
            problem(d, "JSON nested deeper than %d levels", KUBE_DECODE_MAX_DEPTH);
        return !d->failed;
    }
    int ctx = d->depth == 0 ? top_context(d, is_array) : child_context(d, top(d), is_array);
    if (d->failed)
        return 0;
    d->stack[d->depth++] = (struct frame){(uint8_t)ctx, NULL};
    enter(d, ctx);
    return !d->failed;
}

static int cb_start_map(void *ctx)
{
    return on_open(ctx, false);
}

static int cb_start_array(void *ctx)
{
    return on_open(ctx, true);
}

/* What closing a context finishes. */
static void leave(kube_decoder_t *d, int ctx)
{
    switch (ctx) {
    case C_OBJ:
        if (d->mode == KUBE_DECODE_LIST)
            end_item(d);
        else
            d->in_obj = false; /* delivered with its event */
        break;
    case C_EVENT:
        end_event(d);
        break;
    case C_LIST_ROOT:
        d->root_done = true;
        break;
    case C_COND:
    case C_VMI_COND:
        end_cond(d);
        break;
    case C_TAINT:
        end_taint(d);
        break;
    }
}

/* A container closes (map or array alike): pop its frame and finish what
 * it held. */
static int cb_end(void *ctx)
{
    kube_decoder_t *d = ctx;
    step(d);
    if (d->overflow) {
        d->overflow--;
        return 1;
    }
    if (d->depth == 0)
        return 1; /* yajl never closes more than it opened */
    int c = d->stack[--d->depth].ctx;
    leave(d, c);
    if (d->depth == 0)
        d->trailing = false;
    return !d->failed;
}

static const yajl_callbacks callbacks = {
    cb_null,           cb_boolean, NULL /* integer */,
    NULL /* double */, cb_number,  cb_string,
    cb_start_map,      cb_map_key, cb_end,
    cb_start_array,    cb_end,
};

/* --- public --------------------------------------------------------------- */

kube_decoder_t *kube_decoder_new(kube_kind_t kind, kube_decode_mode_t mode,
                                 const kube_decoder_cb_t *cb, void *ud, size_t max_object_bytes)
{
    if ((unsigned)kind >= KUBE_KIND_COUNT ||
        (mode != KUBE_DECODE_LIST && mode != KUBE_DECODE_WATCH))
        return NULL;
    kube_decoder_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->kind = kind;
    d->mode = mode;
    if (cb)
        d->cb = *cb;
    d->ud = ud;
    d->max_obj = max_object_bytes ? max_object_bytes : KUBE_DECODE_MAX_OBJECT_DEFAULT;
    if (d->max_obj > MAX_OBJECT_LIMIT)
        d->max_obj = MAX_OBJECT_LIMIT;
    buf_init(&d->list_rv, LIST_TOKEN_MAX);
    buf_init(&d->list_continue, LIST_TOKEN_MAX);
    d->b = kube__build_new(d->max_obj);
    d->h = yajl_alloc(&callbacks, NULL, d);
    if (!d->b || !d->h)
        goto out_free;
    if (mode == KUBE_DECODE_WATCH)
        yajl_config(d->h, yajl_allow_multiple_values, 1);
    return d;
out_free:
    kube_decoder_free(d);
    return NULL;
}

void kube_decoder_free(kube_decoder_t *d)
{
    if (!d)
        return;
    if (d->h)
        yajl_free(d->h);
    kube__build_free(d->b);
    buf_free(&d->list_rv);
    buf_free(&d->list_continue);
    free(d);
}

/* Turns a yajl failure into the decoder's error (unless a callback already
 * set one). */
static int parse_failed(kube_decoder_t *d, const char *data, size_t len)
{
    if (d->failed)
        return -1;
    unsigned char *e = yajl_get_error(d->h, 0, (const unsigned char *)data, len);
    char msg[256];
    copy_cut(msg, sizeof(msg), e ? (const char *)e : "unknown error", e ? strlen((char *)e) : 13);
    if (e)
        yajl_free_error(d->h, e);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    d->last_event = parse_pos(d);
    fail(d, "malformed JSON in %s: %s", d->mode == KUBE_DECODE_LIST ? "LIST body" : "watch stream",
         msg);
    return -1;
}

static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* WATCH: after a chunk, notes whether yajl holds the start of a top-level
 * token (anything but whitespace after the last complete event), which
 * would make the end of the body premature. */
static void note_trailing(kube_decoder_t *d, const char *data, size_t len, uint64_t base)
{
    if (d->mode != KUBE_DECODE_WATCH || d->depth || d->overflow || d->trailing)
        return;
    size_t from = d->last_event > base ? (size_t)(d->last_event - base) : 0;
    for (size_t i = from; i < len; i++) {
        if (!json_space(data[i])) {
            d->trailing = true;
            return;
        }
    }
}

int kube_decoder_feed(kube_decoder_t *d, const char *data, size_t len)
{
    if (d->failed)
        return -1;
    if (d->finished) {
        fail_body(d, "data fed after the end of the body");
        return -1;
    }
    if (!len)
        return 0;
    uint64_t base = d->chunk_base;
    yajl_status st = yajl_parse(d->h, (const unsigned char *)data, len);
    if (st != yajl_status_ok)
        return parse_failed(d, data, len);
    d->chunk_base = base + len;
    /* yajl buffers a token until it ends: a token longer than any object
     * may be is refused rather than buffered without bound. */
    if (d->chunk_base - d->last_event > d->max_obj) {
        d->last_event = d->chunk_base;
        fail(d, "a JSON token longer than %zu bytes", d->max_obj);
        return -1;
    }
    note_trailing(d, data, len, base);
    return 0;
}

/* The LIST body is complete: report the list's metadata, or fail when the
 * body was a Status. */
static int finish_list(kube_decoder_t *d)
{
    if (strcmp(d->list_kind, "Status") == 0) {
        kube_status_t st = {d->st.code, d->st.reason, d->st.message};
        if (d->cb.on_status)
            d->cb.on_status(d->ud, &st);
        fail_body(d, "%s body is a Status: %d %s: %s", kube_kind_list_name(d->kind), st.code,
                  st.reason, st.message);
        return -1;
    }
    if (d->cb.on_list_meta)
        d->cb.on_list_meta(d->ud, d->list_rv.data ? d->list_rv.data : "",
                           d->list_continue.data ? d->list_continue.data : "");
    return 0;
}

int kube_decoder_finish(kube_decoder_t *d)
{
    if (d->failed)
        return -1;
    if (d->finished) {
        fail_body(d, "body finished twice");
        return -1;
    }
    d->finished = true;
    if (d->mode == KUBE_DECODE_WATCH && !d->depth && !d->overflow && !d->trailing)
        return 0; /* between events: a clean end, even of an empty stream */
    if (yajl_complete_parse(d->h) != yajl_status_ok)
        return parse_failed(d, NULL, 0);
    if (d->mode == KUBE_DECODE_WATCH) {
        /* yajl accepts a top-level token cut short once a value was seen */
        fail(d, "malformed JSON in watch stream: premature EOF");
        return -1;
    }
    return finish_list(d);
}

const char *kube_decoder_error(const kube_decoder_t *d)
{
    return d->err;
}

size_t kube_decoder_skipped(const kube_decoder_t *d)
{
    return d->skipped;
}

/* --- one object ------------------------------------------------------------ */

static void one_item(void *ud, kube_obj_t *obj)
{
    kube_obj_t **out = ud;
    kube_obj_free(*out);
    *out = obj;
}

static void one_skip(void *ud, const char *why)
{
    (void)ud;
    (void)why;
}

kube_obj_t *kube_decode_one(kube_kind_t kind, const char *json, size_t len, char *err,
                            size_t errlen)
{
    kube_decoder_cb_t cb = {.on_item = one_item, .on_skip = one_skip};
    kube_obj_t *obj = NULL;
    char head[96];
    int n = snprintf(head, sizeof(head), "{\"kind\":\"%s\",\"metadata\":{},\"items\":[",
                     kube_kind_list_name(kind));
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, &obj, 0);

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (kube_decoder_feed(d, head, (size_t)n) < 0 || kube_decoder_feed(d, json, len) < 0 ||
        kube_decoder_feed(d, "]}", 2) < 0 || kube_decoder_finish(d) < 0) {
        snprintf(err, errlen, "%s", kube_decoder_error(d));
        kube_obj_free(obj);
        obj = NULL;
    } else if (!obj) {
        snprintf(err, errlen, "%s: the object was skipped (wrong shape)", kube_kind_name(kind));
    }
    kube_decoder_free(d);
    return obj;
}
