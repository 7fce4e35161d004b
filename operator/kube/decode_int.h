/*
 * decode_int — what the files of the decoder share (decode.c: the yajl
 * callbacks, the frame stack, objects and events, the public API;
 * decode_build.c: values into the projection; decode_schema.c: the tables
 * of what is kept): contexts, fields, rows and the decoder struct. Not for
 * other modules: they use kube/decode.h.
 */
#ifndef VMDRAIN_KUBE_DECODE_INT_H
#define VMDRAIN_KUBE_DECODE_INT_H

#include "kube/decode.h"
#include "util/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
    C_KV_SPEC,
    C_KV_CONFIG,
    C_KV_MIGRATIONS,
    C_KV_STATUS,
    C_LEASE_SPEC,
    C_FINALIZERS, /* metadata.finalizers: strings, counted */
    C_ND_SPEC,
    C_ND_STATUS,
    C_ND_CONDS,
    C_ND_COND,
    C_NODE_ALLOCATABLE,
    C_POD_CONTAINERS,
    C_POD_CONTAINER,
    C_POD_RESOURCES,
    C_POD_REQUESTS,
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
    F_VMI_EVACUATION,
    F_KV_PARALLEL,
    F_KV_OUTBOUND,
    F_KV_BANDWIDTH,
    F_KV_TIMEOUT,
    F_KV_PROGRESS,
    F_KV_TAINT_KEY,
    F_KV_EVICTION,
    F_KV_PHASE,
    F_LEASE_HOLDER,
    F_LEASE_DURATION,
    F_LEASE_TRANSITIONS,
    F_LEASE_ACQUIRE,
    F_LEASE_RENEW,
    F_ND_NODE,
    F_ND_REASON,
    F_ND_UNCORDON,
    F_ND_PHASE,
    F_ND_TRIGGER,
    F_ND_COMPLETION,
    F_COND_SINCE,
    F_NODE_ALLOC_MEMORY,
    F_POD_REQ_MEMORY,
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
        vd_time_t since; /* lastTransitionTime, kept for NodeDrains */
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

/* What each context is and holds (decode_schema.c). */
struct kube__dec_ctx_info {
    const char *path; /* for messages */
    uint8_t cls;
    uint8_t elem; /* arrays: the context of each element (an object) */
    const struct row *rows;
};
extern const struct kube__dec_ctx_info kube__dec_ctxs[C_COUNT];

/* The rows of each kind's object (decode_schema.c). */
extern const struct row *const kube__dec_kind_rows[KUBE_KIND_COUNT];

/* Looked for in every object after its kind's own rows (decode_schema.c). */
extern const struct row kube__dec_obj_common_rows[];

/* decode_build.c */

/* Records a hard error (the first one wins) with the body offset. */
__attribute__((format(printf, 2, 3))) void kube__dec_fail(kube_decoder_t *d, const char *fmt, ...);

/* A hard error about the body as a whole (no offset). */
__attribute__((format(printf, 2, 3))) void kube__dec_fail_body(kube_decoder_t *d, const char *fmt,
                                                               ...);

/* Records why the current object cannot be projected (the first reason
 * is kept). */
__attribute__((format(printf, 2, 3))) void kube__dec_problem(kube_decoder_t *d, const char *fmt,
                                                             ...);

/* A scalar for a struct field: type check, then store. */
void kube__dec_apply(kube_decoder_t *d, int ctx, const struct row *r, const struct jval *v);

/* Copies s[0..n) into dst (size cap) as a C string, cut to fit. */
void kube__dec_copy_cut(char *dst, size_t cap, const char *s, size_t n);

/* "string", "boolean", ... for messages. */
const char *kube__dec_jtype_name(int t);

/* A key of a string map: remembered for messages, and copied into the
 * pool when the map keeps it (labels and annotations keep few keys). */
void kube__dec_map_key(kube_decoder_t *d, int ctx, const char *k, size_t n);

/* A value of a string map: must be a string (or null, which is "");
 * stored with its key when the key is kept. */
void kube__dec_map_value(kube_decoder_t *d, int ctx, const struct jval *v);

/* An element of metadata.finalizers (decode_build.c). */
void kube__dec_finalizer(kube_decoder_t *d, const struct jval *v);

/* A value of the wrong JSON type. At list level that is a hard error, in a
 * watch event's own fields it skips the event, elsewhere the object. */
void kube__dec_mismatch(kube_decoder_t *d, int ctx, const char *key, const char *want,
                        const char *got);

/* The body offset yajl has reached. */
uint64_t kube__dec_parse_pos(const kube_decoder_t *d);

/* Whether a row's value is to be read at all: list items ignore the Status
 * fields that a watch object is searched for. */
bool kube__dec_row_wanted(const kube_decoder_t *d, int ctx, const struct row *r);

/* The object being built, as the builder holds it. */
kube_obj_t *kube__dec_scratch(kube_decoder_t *d);

/* What a scalar was, for messages. */
const char *kube__dec_vtype_name(enum vtype t);

#endif
