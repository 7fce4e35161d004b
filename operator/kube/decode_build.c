/*
 * decode_build — puts the scalars the parser reports into the projection
 * being built: type checks, strings into the object's pool, enums and
 * states, integers, quantities and times, string maps (labels,
 * annotations, ConfigMap data, selectors), and the reasons an object is
 * skipped or a field dropped.
 *
 * Owns nothing beyond the decoder it is handed. Calls kube/objects' builder,
 * util/quantity, util/timefmt and util/buf; called by decode.c.
 */
#include "kube/decode_int.h"
#include "util/quantity.h"
#include "util/timefmt.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies s[0..n) into dst (size cap) as a C string, cut to fit. */
void kube__dec_copy_cut(char *dst, size_t cap, const char *s, size_t n)
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
        kube__dec_copy_cut(dst, cap, "(invalid)", 9);
    else
        kube__dec_copy_cut(dst, cap, s, n);
}

uint64_t kube__dec_parse_pos(const kube_decoder_t *d)
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

__attribute__((format(printf, 2, 3))) void kube__dec_fail(kube_decoder_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, true, fmt, ap);
    va_end(ap);
}

/* A hard error about the body as a whole (no offset). */
__attribute__((format(printf, 2, 3))) void kube__dec_fail_body(kube_decoder_t *d, const char *fmt,
                                                               ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(d, false, fmt, ap);
    va_end(ap);
}

/* Records why the current object cannot be projected; only the first
 * reason is kept and later stores are skipped. */
__attribute__((format(printf, 2, 3))) void kube__dec_problem(kube_decoder_t *d, const char *fmt,
                                                             ...)
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
    const char *path = kube__dec_ctxs[ctx].path;
    if (!key)
        snprintf(out, n, "%s[]", path);
    else
        snprintf(out, n, "%s%s%s", path, path[0] ? "." : "", key);
}

const char *kube__dec_jtype_name(int t)
{
    static const char *const names[] = {"a string", "a boolean", "an integer", "a quantity",
                                        "a time",   "an object", "an array"};
    return names[t];
}

const char *kube__dec_vtype_name(enum vtype t)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string"};
    return names[t];
}

/* A value of the wrong JSON type. At list level that is a hard error, in a
 * watch event's own fields it skips the event, elsewhere the object. */
void kube__dec_mismatch(kube_decoder_t *d, int ctx, const char *key, const char *want,
                        const char *got)
{
    char name[160];
    field_name(name, sizeof(name), ctx, key);
    if (ctx == C_LIST_ROOT || ctx == C_LIST_META)
        kube__dec_fail(d, "%s body: %s: expected %s, got %s", kube_kind_list_name(d->kind), name,
                       want, got);
    else if (ctx == C_EVENT && !d->ev.problem[0])
        snprintf(d->ev.problem, sizeof(d->ev.problem), "%s: expected %s, got %s", name, want, got);
    else if (ctx != C_EVENT)
        kube__dec_problem(d, "%s: expected %s, got %s", name, want, got);
}

/* --- building the projection ---------------------------------------------- */

kube_obj_t *kube__dec_scratch(kube_decoder_t *d)
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
        kube__dec_problem(d, "%s: contains a NUL character", name);
        return KUBE__NO_STR;
    }
    uint32_t off = kube__build_intern(d->b, s, n);
    if (off == KUBE__NO_STR) {
        if (errno == ENOMEM)
            kube__dec_fail(d, "out of memory");
        else
            kube__dec_problem(d, "object larger than %zu bytes", d->max_obj);
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
    kube_obj_t *o = kube__dec_scratch(d);
    switch (field) {
    case F_EV_TYPE:
        copy_name(d->ev.type, sizeof(d->ev.type), s, n);
        d->ev.typed = true;
        return true;
    case F_OBJ_KIND:
        copy_name(d->obj_kind, sizeof(d->obj_kind), s, n);
        return true;
    case F_ST_REASON:
        kube__dec_copy_cut(d->st.reason, sizeof(d->st.reason), s, n);
        return true;
    case F_ST_MESSAGE:
        kube__dec_copy_cut(d->st.message, sizeof(d->st.message), s, n);
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
    case F_KV_EVICTION:
        ((kube_kubevirt_t *)o)->eviction_strategy = kube_eviction_strategy_parse(s, n);
        return true;
    }
    return false;
}

/* The list's kind is checked as soon as it is known, so that a body of
 * the wrong kind fails before any item is delivered. */
static void set_list_kind(kube_decoder_t *d, const char *s, size_t n)
{
    kube__dec_copy_cut(d->list_kind, sizeof(d->list_kind), s, n);
    const char *want = kube_kind_list_name(d->kind);
    bool ok =
        (n == strlen(want) && memcmp(s, want, n) == 0) || (n == 6 && memcmp(s, "Status", 6) == 0);
    if (!ok)
        kube__dec_fail_body(d, "%s body: kind is \"%s\"", want, d->list_kind);
}

static void set_list_token(kube_decoder_t *d, buf_t *b, const char *what, const char *s, size_t n)
{
    buf_reset(b);
    if (buf_append(b, s, n) < 0)
        kube__dec_fail(d, "%s body: metadata.%s longer than %d bytes", kube_kind_list_name(d->kind),
                       what, LIST_TOKEN_MAX);
}

/* Where a string field goes in the kube__dec_scratch object, or NULL. */
static const char **string_slot(kube_decoder_t *d, int field)
{
    kube_obj_t *o = kube__dec_scratch(d);
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
    case F_VMI_EVACUATION:
        return &vmi->evacuation_node;
    case F_KV_TAINT_KEY:
        return &((kube_kubevirt_t *)o)->node_drain_taint_key;
    case F_KV_PHASE:
        return &((kube_kubevirt_t *)o)->phase;
    case F_LEASE_HOLDER:
        return &((kube_lease_t *)o)->holder_identity;
    case F_LEASE_ACQUIRE:
        return &((kube_lease_t *)o)->acquire_time;
    case F_LEASE_RENEW:
        return &((kube_lease_t *)o)->renew_time;
    case F_ND_NODE:
        return &((kube_nodedrain_t *)o)->node_name;
    case F_ND_REASON:
        return &((kube_nodedrain_t *)o)->reason;
    case F_ND_UNCORDON:
        return &((kube_nodedrain_t *)o)->uncordon_policy;
    case F_ND_PHASE:
        return &((kube_nodedrain_t *)o)->phase;
    case F_ND_TRIGGER:
        return &((kube_nodedrain_t *)o)->trigger;
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
        kube__dec_copy_cut(d->name, sizeof(d->name), s, n);
        d->named = n > 0;
        break;
    case F_NAMESPACE:
        kube__dec_copy_cut(d->ns, sizeof(d->ns), s, n);
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
    kube_obj_t *o = kube__dec_scratch(d);
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
    kube_obj_t *o = kube__dec_scratch(d);
    switch (field) {
    case F_GENERATION:
        o->generation = v;
        break;
    case F_POL_TIMEOUT:
        ((kube_migration_policy_t *)o)->completion_timeout_per_gib = v;
        break;
    case F_KV_PARALLEL:
        ((kube_kubevirt_t *)o)->parallel_migrations_per_cluster = v;
        break;
    case F_KV_OUTBOUND:
        ((kube_kubevirt_t *)o)->parallel_outbound_per_node = v;
        break;
    case F_KV_TIMEOUT:
        ((kube_kubevirt_t *)o)->completion_timeout_per_gib = v;
        break;
    case F_KV_PROGRESS:
        ((kube_kubevirt_t *)o)->progress_timeout = v;
        break;
    case F_LEASE_DURATION:
        ((kube_lease_t *)o)->lease_duration_seconds = v;
        break;
    case F_LEASE_TRANSITIONS:
        ((kube_lease_t *)o)->lease_transitions = v;
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

    kube__dec_copy_cut(tmp, sizeof(tmp), s, n);
    if (n > QUANTITY_MAX_LEN || quantity_parse(tmp, 0, &v, err, sizeof(err)) < 0) {
        char name[160];
        if (n > QUANTITY_MAX_LEN)
            snprintf(err, sizeof(err), "invalid quantity \"%.24s...\": too long", tmp);
        field_name(name, sizeof(name), ctx, r->key);
        kube__dec_problem(d, "%s: %s", name, err);
        return;
    }
    kube_obj_t *o = kube__dec_scratch(d);
    if (r->field == F_VMI_GUEST)
        ((kube_vmi_t *)o)->guest_memory = v;
    else if (r->field == F_NODE_ALLOC_MEMORY)
        ((kube_node_t *)o)->allocatable_memory = v;
    else if (r->field == F_POD_REQ_MEMORY) {
        int64_t *sum = &((kube_pod_t *)o)->memory_request;
        if (v > 0)
            *sum = v > INT64_MAX - *sum ? INT64_MAX : *sum + v;
    } else if (r->field == F_VMI_REQ_MEMORY)
        ((kube_vmi_t *)o)->memory_request = v;
    else if (r->field == F_POL_BANDWIDTH)
        ((kube_migration_policy_t *)o)->bandwidth = v;
    else if (r->field == F_KV_BANDWIDTH)
        ((kube_kubevirt_t *)o)->bandwidth_per_migration = v;
}

static bool time_after(vd_time_t a, vd_time_t b)
{
    return a.sec > b.sec || (a.sec == b.sec && a.nsec > b.nsec);
}

/* Informational status times: unparsable ones are dropped with a warning
 * rather than losing the whole object (docs/decoding.md). */
static bool time_is_informational(int field)
{
    return field == F_MS_START || field == F_MS_END || field == F_PTT_TIME ||
           field == F_ND_COMPLETION || field == F_COND_SINCE;
}

/* A time field; one that does not parse skips the object, or is only
 * warned about for the informational status times. */
static void set_time(kube_decoder_t *d, int ctx, const struct row *r, const char *s, size_t n)
{
    char tmp[72], err[192];
    vd_time_t t;

    kube__dec_copy_cut(tmp, sizeof(tmp), s, n);
    if (n >= sizeof(tmp) - 1 || time_parse_rfc3339(tmp, &t, err, sizeof(err)) < 0) {
        char name[160];
        if (n >= sizeof(tmp) - 1)
            snprintf(err, sizeof(err), "invalid RFC 3339 time \"%.24s...\": too long", tmp);
        field_name(name, sizeof(name), ctx, r->key);
        if (time_is_informational(r->field))
            warning(d, "%s: ignored: %s", name, err);
        else
            kube__dec_problem(d, "%s: %s", name, err);
        return;
    }
    kube_obj_t *o = kube__dec_scratch(d);
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
    case F_ND_COMPLETION:
        ((kube_nodedrain_t *)o)->completion_time = t;
        break;
    case F_COND_SINCE:
        d->cond.since = t;
        break;
    }
}

/* An element of metadata.finalizers: counted on a NodeDrain, and vmdrain's
 * own located (the other kinds keep none). */
void kube__dec_finalizer(kube_decoder_t *d, const struct jval *v)
{
    kube_obj_t *o = kube__dec_scratch(d);
    if (v->t != V_STRING) {
        if (v->t != V_NULL)
            kube__dec_mismatch(d, C_FINALIZERS, NULL, "a string", kube__dec_vtype_name(v->t));
        return;
    }
    if (o->kind != KUBE_KIND_NODEDRAIN)
        return;
    kube_nodedrain_t *nd = (kube_nodedrain_t *)o;
    static const char own[] = KUBE_NODEDRAIN_FINALIZER;
    if (v->n == sizeof(own) - 1 && memcmp(v->s, own, v->n) == 0 && nd->finalizer_index < 0)
        nd->finalizer_index = nd->n_finalizers;
    if (nd->n_finalizers < INT_MAX)
        nd->n_finalizers++;
}

/* Whether a row's value is to be read at all: list items ignore the Status
 * fields that a watch object is searched for. */
bool kube__dec_row_wanted(const kube_decoder_t *d, int ctx, const struct row *r)
{
    if (ctx == C_OBJ && d->mode == KUBE_DECODE_LIST)
        return r->field != F_ST_CODE && r->field != F_ST_REASON && r->field != F_ST_MESSAGE;
    return true;
}

/* A scalar for a struct field: type check, then store. */
void kube__dec_apply(kube_decoder_t *d, int ctx, const struct row *r, const struct jval *v)
{
    int64_t i;
    bool ok;

    if (!kube__dec_row_wanted(d, ctx, r))
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
        const char *got = kube__dec_vtype_name(v->t);
        char tmp[48];
        if (v->t == V_NUMBER && r->type == J_INT) {
            char num[32];
            kube__dec_copy_cut(num, sizeof(num), v->s, v->n);
            snprintf(tmp, sizeof(tmp), "%s", num);
            got = tmp;
        }
        kube__dec_mismatch(d, ctx, r->key, kube__dec_jtype_name(r->type), got);
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
        kube__dec_problem(d, "data larger than %d bytes", KUBE_CONFIGMAP_DATA_MAX);
}

/* A key of a string map: remembered for messages, and copied into the
 * pool when the map keeps it (labels and annotations keep few keys). */
void kube__dec_map_key(kube_decoder_t *d, int ctx, const char *k, size_t n)
{
    kube__dec_copy_cut(d->key, sizeof(d->key), k, n);
    d->key_off = KUBE__NO_STR;
    if (!map_keeps_all(ctx) && !kube_obj_keeps_key(k, n))
        return;
    count_data(d, ctx, n);
    d->key_off = keep_string(d, ctx, d->key, k, n);
}

/* A value of a string map: must be a string (or null, which is "");
 * stored with its key when the key is kept. */
void kube__dec_map_value(kube_decoder_t *d, int ctx, const struct jval *v)
{
    uint32_t key = d->key_off;
    d->key_off = KUBE__NO_STR;
    if (v->t != V_STRING && v->t != V_NULL) {
        kube__dec_mismatch(d, ctx, d->key, "a string", kube__dec_vtype_name(v->t));
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
            kube__dec_fail(d, "out of memory");
        else
            kube__dec_problem(d, "object larger than %zu bytes", d->max_obj);
    }
}
