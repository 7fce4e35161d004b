/*
 * decode — the streaming decoder of LIST and WATCH bodies (kube/decode.h
 * has the contract): the yajl callbacks and the stack of open containers,
 * objects, items and events as they open and close, and the public API.
 *
 * Owns kube_decoder_t. Calls yajl's parser, kube/objects' builder,
 * decode_build.c (values) and decode_schema.c (tables); called by the
 * informers, cmd/debug and the fuzz drivers.
 */
#include "kube/decode_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *kube_event_type_name(kube_event_type_t type)
{
    return (unsigned)type < 5 ? event_names[type] : "UNKNOWN";
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
        kube__dec_fail(d, "out of memory");
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
    d->cond.since = (vd_time_t){0, 0};
    d->cond.mark = kube__build_mark(d->b);
}

/* A condition is complete: keep what its type calls for, forget the rest
 * (its strings were the last ones added to the pool). */
static void end_cond(kube_decoder_t *d)
{
    kube_obj_t *o = kube__dec_scratch(d);
    static const char *const nd_types[] = KUBE_NODEDRAIN_CONDS;
    if (d->kind == KUBE_KIND_NODE && strcmp(d->cond.type, "Ready") == 0)
        ((kube_node_t *)o)->ready = d->cond.status;
    for (size_t i = 0; d->kind == KUBE_KIND_NODEDRAIN && i < 3; i++)
        if (strcmp(d->cond.type, nd_types[i]) == 0) {
            ((kube_nodedrain_t *)o)->conds[i].status = d->cond.status;
            ((kube_nodedrain_t *)o)->conds[i].since = d->cond.since;
        }
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
            kube__dec_fail(d, "out of memory");
        else
            kube__dec_problem(d, "object larger than %zu bytes", d->max_obj);
    }
}

/* --- yajl callbacks ------------------------------------------------------- */

/* Every callback starts here: the position, and the caps. yajl buffers a
 * token that spans chunks until it ends, so a token (with the whitespace
 * before it) longer than any object may be is a hard error, whatever the
 * chunking; an object that grows past the cap is skipped. Returns false
 * when the token was too long: the callback stops yajl before it acts on
 * the token, so a whole body and the same bytes in pieces end alike. */
static bool step(kube_decoder_t *d)
{
    uint64_t now = kube__dec_parse_pos(d);
    bool long_token = now - d->last_event > d->max_obj;
    d->last_event = now;
    if (long_token) {
        kube__dec_fail(d, "a JSON token longer than %zu bytes", d->max_obj);
        return false;
    }
    if (d->in_obj && !d->oversized && d->last_event - d->obj_start >= d->max_obj) {
        d->oversized = true;
        d->problem[0] = '\0'; /* the size is the reason that matters */
        kube__dec_problem(d, "object larger than %zu bytes", d->max_obj);
    }
    return true;
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
         d->item_index, kube__dec_vtype_name(v->t));
    d->item_index++;
}

/* Every scalar: an array element, a string map value, or the value of the
 * struct field whose key came last. Returns 0 to stop yajl on a hard
 * error. */
static int on_scalar(kube_decoder_t *d, const struct jval *v)
{
    if (!step(d))
        return 0; /* the token was too long: stop at once, whatever the chunking */
    if (d->overflow)
        return 1;
    if (d->depth == 0) {
        kube__dec_fail(d, "%s is not a JSON object (got %s)", body_name(d),
                       kube__dec_vtype_name(v->t));
        return 0;
    }
    struct frame *f = top(d);
    switch (kube__dec_ctxs[f->ctx].cls) {
    case CLS_ARRAY:
        if (f->ctx == C_LIST_ITEMS)
            on_item_scalar(d, v);
        else if (f->ctx == C_FINALIZERS)
            kube__dec_finalizer(d, v);
        else if (v->t != V_NULL)
            kube__dec_mismatch(d, f->ctx, NULL, "an object", kube__dec_vtype_name(v->t));
        break;
    case CLS_MAP:
        kube__dec_map_value(d, f->ctx, v);
        break;
    case CLS_STRUCT: {
        const struct row *r = f->row;
        f->row = NULL;
        if (r && v->t != V_NULL)
            kube__dec_apply(d, f->ctx, r, v);
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
        return find_row(kube__dec_ctxs[ctx].rows, k, n);
    const struct row *r = find_row(kube__dec_kind_rows[d->kind], k, n);
    return r ? r : find_row(kube__dec_obj_common_rows, k, n);
}

/* A key: in a struct it selects the row for the value that follows; in a
 * string map it is the entry's key. */
static int cb_map_key(void *ctx, const unsigned char *key, size_t n)
{
    kube_decoder_t *d = ctx;
    if (!step(d))
        return 0; /* the token was too long: stop at once, whatever the chunking */
    if (d->overflow || d->depth == 0)
        return !d->failed;
    struct frame *f = top(d);
    if (kube__dec_ctxs[f->ctx].cls == CLS_STRUCT)
        f->row = lookup(d, f->ctx, (const char *)key, n);
    else if (kube__dec_ctxs[f->ctx].cls == CLS_MAP)
        kube__dec_map_key(d, f->ctx, (const char *)key, n);
    return !d->failed;
}

/* The context of a container opened at the top level. */
static int top_context(kube_decoder_t *d, bool is_array)
{
    if (is_array) {
        kube__dec_fail(d, "%s is not a JSON object (got an array)", body_name(d));
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
    switch (kube__dec_ctxs[f->ctx].cls) {
    case CLS_ARRAY:
        if (f->ctx == C_FINALIZERS) {
            kube__dec_mismatch(d, f->ctx, NULL, "a string", got);
            return C_SKIP;
        }
        if (!is_array)
            return kube__dec_ctxs[f->ctx].elem;
        if (f->ctx == C_LIST_ITEMS) {
            skip(d, "%s items[%zu]: expected an object, got an array", kube_kind_list_name(d->kind),
                 d->item_index++);
            return C_SKIP;
        }
        kube__dec_mismatch(d, f->ctx, NULL, "an object", got);
        return C_SKIP;
    case CLS_MAP:
        kube__dec_mismatch(d, f->ctx, d->key, "a string", got);
        d->key_off = KUBE__NO_STR;
        return C_SKIP;
    case CLS_STRUCT: {
        const struct row *r = f->row;
        f->row = NULL;
        if (!r || !kube__dec_row_wanted(d, f->ctx, r))
            return C_SKIP;
        if (r->type == (is_array ? J_ARRAY : J_MAP))
            return r->child;
        if (!(r->flags & R_LENIENT))
            kube__dec_mismatch(d, f->ctx, r->key, kube__dec_jtype_name(r->type), got);
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
    case C_ND_COND:
        begin_cond(d);
        break;
    case C_TAINT:
        begin_taint(d);
        break;
    case C_MSTATE:
        ((kube_vmi_t *)kube__dec_scratch(d))->has_migration_state = true;
        break;
    }
}

/* A container opens: push a frame with its context (SKIP for anything not
 * kept), or only count levels past the stack. */
static int on_open(kube_decoder_t *d, bool is_array)
{
    if (!step(d))
        return 0; /* the token was too long: stop at once, whatever the chunking */
    if (d->overflow || d->depth == KUBE_DECODE_MAX_DEPTH) {
        d->overflow++;
        if (!d->in_obj || d->overflow > OVERFLOW_MAX)
            kube__dec_fail(d, "JSON nested deeper than %d levels",
                           d->in_obj ? KUBE_DECODE_MAX_DEPTH + OVERFLOW_MAX
                                     : KUBE_DECODE_MAX_DEPTH);
        else
            kube__dec_problem(d, "JSON nested deeper than %d levels", KUBE_DECODE_MAX_DEPTH);
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
    case C_ND_COND:
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
    if (!step(d))
        return 0; /* the token was too long: stop at once, whatever the chunking */
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
    kube__dec_copy_cut(msg, sizeof(msg), e ? (const char *)e : "unknown error",
                       e ? strlen((char *)e) : 13);
    if (e)
        yajl_free_error(d->h, e);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    d->last_event = kube__dec_parse_pos(d);
    kube__dec_fail(d, "malformed JSON in %s: %s",
                   d->mode == KUBE_DECODE_LIST ? "LIST body" : "watch stream", msg);
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
        kube__dec_fail_body(d, "data fed after the end of the body");
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
        kube__dec_fail(d, "a JSON token longer than %zu bytes", d->max_obj);
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
        kube__dec_fail_body(d, "%s body is a Status: %d %s: %s", kube_kind_list_name(d->kind),
                            st.code, st.reason, st.message);
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
        kube__dec_fail_body(d, "body finished twice");
        return -1;
    }
    d->finished = true;
    if (d->mode == KUBE_DECODE_WATCH && !d->depth && !d->overflow && !d->trailing)
        return 0; /* between events: a clean end, even of an empty stream */
    if (yajl_complete_parse(d->h) != yajl_status_ok)
        return parse_failed(d, NULL, 0);
    if (d->mode == KUBE_DECODE_WATCH) {
        /* yajl accepts a top-level token cut short once a value was seen */
        kube__dec_fail(d, "malformed JSON in watch stream: premature EOF");
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
