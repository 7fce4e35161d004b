/*
 * objects — see objects.h: the one-allocation projections, their builder
 * and accessors.
 *
 * Owns the projections it builds (then the caller does). Calls util/buf;
 * called by kube/decode, the informers and the drain engine.
 */
#include "kube/objects.h"

#include "util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every absent string points at. */
static const char kube_empty[] = "";

/* --- kinds and kept keys --------------------------------------------------- */

static const char *const kind_names[KUBE_KIND_COUNT] = {
    [KUBE_KIND_NODE] = "Node",
    [KUBE_KIND_POD] = "Pod",
    [KUBE_KIND_VMI] = "VirtualMachineInstance",
    [KUBE_KIND_MIGRATION] = "VirtualMachineInstanceMigration",
    [KUBE_KIND_CONFIGMAP] = "ConfigMap",
    [KUBE_KIND_MIGRATION_POLICY] = "MigrationPolicy",
    [KUBE_KIND_KUBEVIRT] = "KubeVirt",
    [KUBE_KIND_LEASE] = "Lease",
    [KUBE_KIND_NODEDRAIN] = "NodeDrain",
};

static const char *const list_names[KUBE_KIND_COUNT] = {
    [KUBE_KIND_NODE] = "NodeList",
    [KUBE_KIND_POD] = "PodList",
    [KUBE_KIND_VMI] = "VirtualMachineInstanceList",
    [KUBE_KIND_MIGRATION] = "VirtualMachineInstanceMigrationList",
    [KUBE_KIND_CONFIGMAP] = "ConfigMapList",
    [KUBE_KIND_MIGRATION_POLICY] = "MigrationPolicyList",
    [KUBE_KIND_KUBEVIRT] = "KubeVirtList",
    [KUBE_KIND_LEASE] = "LeaseList",
    [KUBE_KIND_NODEDRAIN] = "NodeDrainList",
};

const char *kube_kind_name(kube_kind_t kind)
{
    return (unsigned)kind < KUBE_KIND_COUNT ? kind_names[kind] : "Unknown";
}

const char *kube_kind_list_name(kube_kind_t kind)
{
    return (unsigned)kind < KUBE_KIND_COUNT ? list_names[kind] : "UnknownList";
}

/* The label and annotation keys projections keep: an exact key, or every
 * key that starts with a prefix. Everything else is dropped while decoding. */
static const struct kept_key {
    const char *text;
    bool prefix;
} kept_keys[] = {
    {"kubevirt.io", false},               /* kubevirt.io=virt-launcher */
    {"kubevirt.io/", true},               /* kubevirt.io/domain, kubevirt.io/migrationJobUID, ... */
    {"vmdrain.io/", true},                /* vmdrain's own state */
    {"sim.vmdrain.io/", true},            /* the test bed's simulator */
    {"k8s.io/initial-events-end", false}, /* the bookmark ending a streamed state */
};

bool kube_obj_keeps_key(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof(kept_keys) / sizeof(kept_keys[0]); i++) {
        size_t n = strlen(kept_keys[i].text);
        if (kept_keys[i].prefix ? len > n : len == n)
            if (memcmp(key, kept_keys[i].text, n) == 0)
                return true;
    }
    return false;
}

/* --- enums --------------------------------------------------------------- */

/* Index of the string s[0..len) in names[1..count), 0 (unset) for NULL or
 * "", or other for a string not in the table. names[0] is the unset entry. */
static int enum_parse(const char *s, size_t len, const char *const *names, int count, int other)
{
    if (!s || len == 0)
        return 0;
    for (int i = 1; i < count; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return i;
    return other;
}

static const char *enum_name(int v, const char *const *names, int count)
{
    return v >= 0 && v < count ? names[v] : "Other";
}

static const char *const pod_phases[] = {"",       "Pending", "Running", "Succeeded",
                                         "Failed", "Unknown", "Other"};
static const char *const vmi_phases[] = {
    "", "Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown", "Other"};
static const char *const migration_phases[] = {
    "",        "Pending",   "Scheduling", "Scheduled", "PreparingTarget", "TargetReady",
    "Running", "Succeeded", "Failed",     "Other"};
static const char *const eviction_strategies[] = {
    "", "None", "LiveMigrate", "LiveMigrateIfPossible", "External", "Other"};
static const char *const abort_statuses[] = {"", "Succeeded", "Failed", "Aborting", "Other"};
static const char *const cond_names[] = {"Unknown", "True", "False"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(COUNT(pod_phases) == KUBE_POD_PHASE_OTHER + 1, "pod phase names");
_Static_assert(COUNT(vmi_phases) == KUBE_VMI_PHASE_OTHER + 1, "vmi phase names");
_Static_assert(COUNT(migration_phases) == KUBE_MIGRATION_PHASE_OTHER + 1, "migration phases");
_Static_assert(COUNT(eviction_strategies) == KUBE_EVICTION_OTHER + 1, "eviction strategies");
_Static_assert(COUNT(abort_statuses) == KUBE_ABORT_OTHER + 1, "abort statuses");
_Static_assert(COUNT(cond_names) == KUBE_COND_FALSE + 1, "condition names");

/* The _OTHER entry is last in each table and never matched by a string. */
kube_pod_phase_t kube_pod_phase_parse(const char *s, size_t len)
{
    return enum_parse(s, len, pod_phases, COUNT(pod_phases) - 1, KUBE_POD_PHASE_OTHER);
}

kube_vmi_phase_t kube_vmi_phase_parse(const char *s, size_t len)
{
    return enum_parse(s, len, vmi_phases, COUNT(vmi_phases) - 1, KUBE_VMI_PHASE_OTHER);
}

kube_migration_phase_t kube_migration_phase_parse(const char *s, size_t len)
{
    return enum_parse(s, len, migration_phases, COUNT(migration_phases) - 1,
                      KUBE_MIGRATION_PHASE_OTHER);
}

kube_eviction_strategy_t kube_eviction_strategy_parse(const char *s, size_t len)
{
    return enum_parse(s, len, eviction_strategies, COUNT(eviction_strategies) - 1,
                      KUBE_EVICTION_OTHER);
}

kube_abort_status_t kube_abort_status_parse(const char *s, size_t len)
{
    return enum_parse(s, len, abort_statuses, COUNT(abort_statuses) - 1, KUBE_ABORT_OTHER);
}

/* "True" and "False"; everything else, absence included, is unknown. */
kube_cond_t kube_cond_parse(const char *s, size_t len)
{
    if (s && len == 4 && memcmp(s, "True", 4) == 0)
        return KUBE_COND_TRUE;
    if (s && len == 5 && memcmp(s, "False", 5) == 0)
        return KUBE_COND_FALSE;
    return KUBE_COND_UNKNOWN;
}

const char *kube_pod_phase_name(kube_pod_phase_t p)
{
    return enum_name(p, pod_phases, COUNT(pod_phases));
}

const char *kube_vmi_phase_name(kube_vmi_phase_t p)
{
    return enum_name(p, vmi_phases, COUNT(vmi_phases));
}

const char *kube_migration_phase_name(kube_migration_phase_t p)
{
    return enum_name(p, migration_phases, COUNT(migration_phases));
}

const char *kube_eviction_strategy_name(kube_eviction_strategy_t e)
{
    return enum_name(e, eviction_strategies, COUNT(eviction_strategies));
}

const char *kube_abort_status_name(kube_abort_status_t a)
{
    return enum_name(a, abort_statuses, COUNT(abort_statuses));
}

const char *kube_cond_name(kube_cond_t c)
{
    return enum_name(c, cond_names, COUNT(cond_names));
}

/* --- object accessors ---------------------------------------------------- */

void kube_obj_free(kube_obj_t *obj)
{
    free(obj);
}

/* glibc rounds each request plus an 8-byte header up to 16 bytes, 32 at
 * least; that is the estimate reported. */
size_t kube_obj_size(const kube_obj_t *obj)
{
    if (!obj)
        return 0;
    size_t n = (obj->alloc_size + 8 + 15) & ~(size_t)15;
    return n < 32 ? 32 : n;
}

/* The last value of key in kv[0..n), or NULL. */
static const char *kv_find(const kube_kv_t *kv, size_t n, const char *key)
{
    for (size_t i = n; i > 0; i--)
        if (strcmp(kv[i - 1].key, key) == 0)
            return kv[i - 1].value;
    return NULL;
}

const char *kube_obj_label(const kube_obj_t *obj, const char *key)
{
    return obj ? kv_find(obj->labels, obj->n_labels, key) : NULL;
}

const char *kube_obj_annotation(const kube_obj_t *obj, const char *key)
{
    return obj ? kv_find(obj->annotations, obj->n_annotations, key) : NULL;
}

bool kube_node_has_taint(const kube_node_t *n, const char *key, const char *effect)
{
    for (size_t i = 0; i < n->n_taints; i++)
        if (strcmp(n->taints[i].key, key) == 0 && strcmp(n->taints[i].effect, effect) == 0)
            return true;
    return false;
}

const char *kube_configmap_get(const kube_configmap_t *cm, const char *key)
{
    return cm ? kv_find(cm->data, cm->n_data, key) : NULL;
}

const char *kube_obj_key(const kube_obj_t *obj, char *buf, size_t n)
{
    if (!n)
        return buf;
    if (!obj)
        buf[0] = '\0';
    else if (obj->ns[0])
        snprintf(buf, n, "%s/%s", obj->ns, obj->name);
    else
        snprintf(buf, n, "%s", obj->name);
    return buf;
}

#define DOWNCAST(fn, type, k)                                                                      \
    const type *fn(const kube_obj_t *obj)                                                          \
    {                                                                                              \
        return obj && obj->kind == (k) ? (const type *)obj : NULL;                                 \
    }

DOWNCAST(kube_obj_as_node, kube_node_t, KUBE_KIND_NODE)
DOWNCAST(kube_obj_as_pod, kube_pod_t, KUBE_KIND_POD)
DOWNCAST(kube_obj_as_vmi, kube_vmi_t, KUBE_KIND_VMI)
DOWNCAST(kube_obj_as_migration, kube_migration_t, KUBE_KIND_MIGRATION)
DOWNCAST(kube_obj_as_configmap, kube_configmap_t, KUBE_KIND_CONFIGMAP)
DOWNCAST(kube_obj_as_migration_policy, kube_migration_policy_t, KUBE_KIND_MIGRATION_POLICY)
DOWNCAST(kube_obj_as_kubevirt, kube_kubevirt_t, KUBE_KIND_KUBEVIRT)
DOWNCAST(kube_obj_as_lease, kube_lease_t, KUBE_KIND_LEASE)
DOWNCAST(kube_obj_as_nodedrain, kube_nodedrain_t, KUBE_KIND_NODEDRAIN)

/* --- the builder --------------------------------------------------------- */

typedef union kube_any {
    kube_obj_t obj;
    kube_node_t node;
    kube_pod_t pod;
    kube_vmi_t vmi;
    kube_migration_t migration;
    kube_configmap_t configmap;
    kube_migration_policy_t policy;
    kube_kubevirt_t kubevirt;
    kube_lease_t lease;
    kube_nodedrain_t nodedrain;
} kube_any_t;

/* One string field of the scratch object: where it is, where its bytes are. */
struct str_fix {
    uint32_t field; /* byte offset of the const char * inside kube_any_t */
    uint32_t off;   /* pool offset */
};

struct list_entry {
    uint32_t list;
    uint32_t s[3];
};

#define LIST_COUNT (KUBE__LIST_VMI_SELECTOR + 1)
/* Every pointer-sized slot of the union can be a string field at most once. */
#define MAX_FIX (sizeof(kube_any_t) / sizeof(char *))

struct kube__build {
    kube_kind_t kind;
    kube_any_t u;
    buf_t pool; /* NUL-terminated strings */
    struct str_fix fix[MAX_FIX];
    size_t n_fix;
    struct list_entry *entries;
    size_t n_entries, cap_entries;
    size_t max_bytes;
};

static size_t kind_struct_size(const kube__build_t *b)
{
    switch (b->kind) {
    case KUBE_KIND_NODE:
        return sizeof(b->u.node);
    case KUBE_KIND_POD:
        return sizeof(b->u.pod);
    case KUBE_KIND_VMI:
        return sizeof(b->u.vmi);
    case KUBE_KIND_MIGRATION:
        return sizeof(b->u.migration);
    case KUBE_KIND_CONFIGMAP:
        return sizeof(b->u.configmap);
    case KUBE_KIND_MIGRATION_POLICY:
        return sizeof(b->u.policy);
    case KUBE_KIND_KUBEVIRT:
        return sizeof(b->u.kubevirt);
    case KUBE_KIND_LEASE:
        return sizeof(b->u.lease);
    case KUBE_KIND_NODEDRAIN:
        return sizeof(b->u.nodedrain);
    }
    return sizeof(b->u.obj);
}

kube__build_t *kube__build_new(size_t max_bytes)
{
    kube__build_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->max_bytes = max_bytes;
    buf_init(&b->pool, max_bytes);
    kube__build_reset(b, KUBE_KIND_POD);
    return b;
}

void kube__build_free(kube__build_t *b)
{
    if (!b)
        return;
    buf_free(&b->pool);
    free(b->entries);
    free(b);
}

/* Gives the scratch object its defaults: every string field "" (they are
 * listed here, per kind, so that a field added to a struct is not
 * forgotten) and the policy numbers -1. */
static void reset_defaults(kube__build_t *b)
{
    kube_obj_t *o = &b->u.obj;
    o->name = o->ns = o->uid = o->resource_version = kube_empty;
    switch (b->kind) {
    case KUBE_KIND_POD:
        b->u.pod.node_name = kube_empty;
        break;
    case KUBE_KIND_VMI: {
        kube_vmi_t *v = &b->u.vmi;
        v->node_name = v->migratable_reason = v->migratable_message = kube_empty;
        v->migration_method = v->evacuation_node = kube_empty;
        v->migration.migration_uid = v->migration.source_node = kube_empty;
        v->migration.target_node = v->migration.target_pod = kube_empty;
        break;
    }
    case KUBE_KIND_MIGRATION:
        b->u.migration.vmi_name = kube_empty;
        break;
    case KUBE_KIND_MIGRATION_POLICY:
        b->u.policy.bandwidth = -1;
        b->u.policy.completion_timeout_per_gib = -1;
        break;
    case KUBE_KIND_KUBEVIRT: {
        kube_kubevirt_t *k = &b->u.kubevirt;
        k->parallel_migrations_per_cluster = k->parallel_outbound_per_node = -1;
        k->bandwidth_per_migration = k->completion_timeout_per_gib = k->progress_timeout = -1;
        k->node_drain_taint_key = k->phase = kube_empty;
        break;
    }
    case KUBE_KIND_LEASE: {
        kube_lease_t *l = &b->u.lease;
        l->holder_identity = l->acquire_time = l->renew_time = kube_empty;
        l->lease_duration_seconds = -1;
        break;
    }
    case KUBE_KIND_NODEDRAIN: {
        kube_nodedrain_t *nd = &b->u.nodedrain;
        nd->node_name = nd->reason = nd->uncordon_policy = kube_empty;
        nd->phase = nd->trigger = kube_empty;
        nd->finalizer_index = -1;
        break;
    }
    case KUBE_KIND_NODE:
    case KUBE_KIND_CONFIGMAP:
        break;
    }
}

void kube__build_reset(kube__build_t *b, kube_kind_t kind)
{
    memset(&b->u, 0, sizeof(b->u));
    b->kind = kind;
    b->u.obj.kind = kind;
    reset_defaults(b);
    buf_reset(&b->pool);
    b->n_fix = 0;
    b->n_entries = 0;
}

kube_obj_t *kube__build_scratch(kube__build_t *b)
{
    return &b->u.obj;
}

uint32_t kube__build_intern(kube__build_t *b, const char *s, size_t n)
{
    size_t off = b->pool.len;
    /* The terminator counts against the cap as well. */
    if (n >= b->max_bytes || off >= UINT32_MAX - n) {
        errno = E2BIG;
        return KUBE__NO_STR;
    }
    if (buf_append(&b->pool, s, n) < 0 || buf_append(&b->pool, "", 1) < 0) {
        kube__build_rollback(b, off); /* errno from buf: E2BIG or ENOMEM */
        return KUBE__NO_STR;
    }
    return (uint32_t)off;
}

void kube__build_set_off(kube__build_t *b, const char **field, uint32_t off)
{
    size_t at = (size_t)((const char *)field - (const char *)&b->u);
    if (at >= sizeof(b->u))
        return; /* not a field of the scratch object: a decoder bug, ignored */
    for (size_t i = 0; i < b->n_fix; i++) {
        if (b->fix[i].field == at) {
            b->fix[i].off = off;
            return;
        }
    }
    if (b->n_fix < MAX_FIX)
        b->fix[b->n_fix++] = (struct str_fix){(uint32_t)at, off};
}

int kube__build_set_str(kube__build_t *b, const char **field, const char *s, size_t n)
{
    uint32_t off = kube__build_intern(b, s, n);
    if (off == KUBE__NO_STR)
        return -1;
    kube__build_set_off(b, field, off);
    return 0;
}

int kube__build_add(kube__build_t *b, kube__list_t list, uint32_t a, uint32_t v, uint32_t c)
{
    if (b->n_entries == b->cap_entries) {
        size_t cap = b->cap_entries ? b->cap_entries * 2 : 16;
        if (cap * sizeof(struct list_entry) > b->max_bytes + 16 * sizeof(struct list_entry)) {
            errno = E2BIG;
            return -1;
        }
        struct list_entry *e = realloc(b->entries, cap * sizeof(*e));
        if (!e) {
            errno = ENOMEM;
            return -1;
        }
        b->entries = e;
        b->cap_entries = cap;
    }
    b->entries[b->n_entries++] = (struct list_entry){(uint32_t)list, {a, v, c}};
    return 0;
}

size_t kube__build_mark(const kube__build_t *b)
{
    return b->pool.len;
}

void kube__build_rollback(kube__build_t *b, size_t mark)
{
    if (mark < b->pool.len) {
        b->pool.len = mark;
        b->pool.data[mark] = '\0';
    }
}

/* Whether a list belongs to the builder's kind (entries of other lists are
 * dropped when packing). */
static bool list_fits_kind(kube_kind_t kind, uint32_t list)
{
    switch (list) {
    case KUBE__LIST_LABELS:
    case KUBE__LIST_ANNOTATIONS:
        return true;
    case KUBE__LIST_TAINTS:
        return kind == KUBE_KIND_NODE;
    case KUBE__LIST_DATA:
        return kind == KUBE_KIND_CONFIGMAP;
    case KUBE__LIST_VMI_SELECTOR:
        return kind == KUBE_KIND_MIGRATION_POLICY;
    }
    return false;
}

/* Where the packed object's list pointers and counts are. */
struct packed_lists {
    kube_kv_t *kv[LIST_COUNT];
    kube_taint_t *taints;
    size_t n[LIST_COUNT];
};

/* Points each list of obj at its array inside the allocation and stores the
 * counts. */
static void attach_lists(kube__build_t *b, char *mem, const struct packed_lists *pl)
{
    kube_obj_t *o = (kube_obj_t *)mem;
    o->labels = pl->kv[KUBE__LIST_LABELS];
    o->n_labels = pl->n[KUBE__LIST_LABELS];
    o->annotations = pl->kv[KUBE__LIST_ANNOTATIONS];
    o->n_annotations = pl->n[KUBE__LIST_ANNOTATIONS];
    if (b->kind == KUBE_KIND_NODE) {
        ((kube_node_t *)mem)->taints = pl->taints;
        ((kube_node_t *)mem)->n_taints = pl->n[KUBE__LIST_TAINTS];
    } else if (b->kind == KUBE_KIND_CONFIGMAP) {
        ((kube_configmap_t *)mem)->data = pl->kv[KUBE__LIST_DATA];
        ((kube_configmap_t *)mem)->n_data = pl->n[KUBE__LIST_DATA];
    } else if (b->kind == KUBE_KIND_MIGRATION_POLICY) {
        ((kube_migration_policy_t *)mem)->vmi_selector = pl->kv[KUBE__LIST_VMI_SELECTOR];
        ((kube_migration_policy_t *)mem)->n_vmi_selector = pl->n[KUBE__LIST_VMI_SELECTOR];
    }
}

static const char *pool_str(const char *pool, uint32_t off)
{
    return off == KUBE__NO_STR ? kube_empty : pool + off;
}

/* Copies the list entries into their arrays (laid out after the struct). */
static void fill_lists(kube__build_t *b, const char *pool, struct packed_lists *pl)
{
    size_t at[LIST_COUNT] = {0};
    for (size_t i = 0; i < b->n_entries; i++) {
        const struct list_entry *e = &b->entries[i];
        if (!list_fits_kind(b->kind, e->list))
            continue;
        if (e->list == KUBE__LIST_TAINTS) {
            kube_taint_t *t = &pl->taints[at[e->list]++];
            t->key = pool_str(pool, e->s[0]);
            t->value = pool_str(pool, e->s[1]);
            t->effect = pool_str(pool, e->s[2]);
        } else {
            kube_kv_t *kv = &pl->kv[e->list][at[e->list]++];
            kv->key = pool_str(pool, e->s[0]);
            kv->value = pool_str(pool, e->s[1]);
        }
    }
}

/* Layout of the allocation: the kind's struct, the kv arrays, the taints,
 * then the string pool (which needs no alignment). */
kube_obj_t *kube__build_finish(kube__build_t *b)
{
    struct packed_lists pl = {0};
    size_t head = (kind_struct_size(b) + 7) & ~(size_t)7;
    size_t n_kv = 0;

    for (size_t i = 0; i < b->n_entries; i++)
        if (list_fits_kind(b->kind, b->entries[i].list))
            pl.n[b->entries[i].list]++;
    for (int l = 0; l < LIST_COUNT; l++)
        if (l != KUBE__LIST_TAINTS)
            n_kv += pl.n[l];
    size_t total = head + n_kv * sizeof(kube_kv_t) +
                   pl.n[KUBE__LIST_TAINTS] * sizeof(kube_taint_t) + b->pool.len;
    char *mem = malloc(total);
    if (!mem)
        return NULL;
    memcpy(mem, &b->u, kind_struct_size(b));
    kube_kv_t *kv = (kube_kv_t *)(void *)(mem + head);
    for (int l = 0; l < LIST_COUNT; l++) {
        if (l == KUBE__LIST_TAINTS || !pl.n[l])
            continue;
        pl.kv[l] = kv;
        kv += pl.n[l];
    }
    pl.taints = pl.n[KUBE__LIST_TAINTS] ? (kube_taint_t *)(void *)kv : NULL;
    char *pool = (char *)kv + pl.n[KUBE__LIST_TAINTS] * sizeof(kube_taint_t);
    if (b->pool.len)
        memcpy(pool, b->pool.data, b->pool.len);
    for (size_t i = 0; i < b->n_fix; i++) {
        const char *s = pool_str(pool, b->fix[i].off);
        memcpy(mem + b->fix[i].field, &s, sizeof(s));
    }
    fill_lists(b, pool, &pl);
    attach_lists(b, mem, &pl);
    ((kube_obj_t *)mem)->alloc_size = total;
    return (kube_obj_t *)mem;
}
