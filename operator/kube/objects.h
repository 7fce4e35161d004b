/*
 * objects — compact, read-only projections of the Kubernetes objects vmdrain
 * reads: Nodes, Pods, VirtualMachineInstances, VirtualMachineInstanceMigrations,
 * ConfigMaps, MigrationPolicies, the KubeVirt CR, Leases and vmdrain's own
 * NodeDrains.
 *
 * A projection keeps only the fields vmdrain uses (docs/decoding.md lists
 * them) and lives in ONE allocation: the struct, its arrays and every string
 * it points to. Freeing is one free(). Informer caches hold many of these, so
 * size matters more than convenience.
 *
 * Conventions for every kind:
 * - string fields are never NULL: an absent string is "";
 * - times are {0, 0} when absent (vd_time_t from util/timefmt.h);
 * - quantities are in whole units (bytes), 0 when absent unless noted;
 * - enums have an _UNSET value (field absent) and an _OTHER value (a string
 *   this version does not know), so new Kubernetes values never fail a decode.
 *
 * Objects are built by the streaming decoder (kube/decode.h). Each kind's
 * struct begins with kube_obj_t, so a kube_obj_t * can be downcast with the
 * kube_obj_as_*() helpers, which check the kind.
 */
#ifndef VMDRAIN_KUBE_OBJECTS_H
#define VMDRAIN_KUBE_OBJECTS_H

#include "util/timefmt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum kube_kind {
    KUBE_KIND_NODE,
    KUBE_KIND_POD,
    KUBE_KIND_VMI,              /* kubevirt.io/v1 VirtualMachineInstance */
    KUBE_KIND_MIGRATION,        /* kubevirt.io/v1 VirtualMachineInstanceMigration */
    KUBE_KIND_CONFIGMAP,        /* v1 ConfigMap */
    KUBE_KIND_MIGRATION_POLICY, /* migrations.kubevirt.io/v1alpha1 MigrationPolicy */
    KUBE_KIND_KUBEVIRT,         /* kubevirt.io/v1 KubeVirt (KubeVirt's configuration) */
    KUBE_KIND_LEASE,            /* coordination.k8s.io/v1 Lease (leader election) */
    KUBE_KIND_NODEDRAIN,        /* vmdrain.io/v1alpha1 NodeDrain (crds/) */
} kube_kind_t;

#define KUBE_KIND_COUNT 9

/* Total bytes of keys and values kept from a ConfigMap's data; a ConfigMap
 * with more is skipped by the decoder (the API server caps it at 1 MiB too). */
#define KUBE_CONFIGMAP_DATA_MAX (1024 * 1024)

typedef struct kube_kv {
    const char *key;
    const char *value;
} kube_kv_t;

/* The common header of every projection. */
typedef struct kube_obj {
    /* public, read-only */
    kube_kind_t kind;
    const char *name;
    const char *ns; /* metadata.namespace; "" for cluster-scoped kinds */
    const char *uid;
    const char *resource_version;
    int64_t generation;
    vd_time_t created; /* metadata.creationTimestamp */
    vd_time_t deleted; /* metadata.deletionTimestamp; {0, 0} when not being deleted */
    /* Only keys with a kept prefix (kube_obj_keeps_key()), in input order. */
    const kube_kv_t *labels;
    size_t n_labels;
    const kube_kv_t *annotations;
    size_t n_annotations;
    /* private */
    size_t alloc_size; /* bytes of the single allocation */
} kube_obj_t;

/* A condition's status: absent and "Unknown" (or anything else) are both
 * KUBE_COND_UNKNOWN. */
typedef enum kube_cond {
    KUBE_COND_UNKNOWN,
    KUBE_COND_TRUE,
    KUBE_COND_FALSE,
} kube_cond_t;

typedef struct kube_taint {
    const char *key;
    const char *value;
    const char *effect; /* "NoSchedule", "PreferNoSchedule", "NoExecute" */
} kube_taint_t;

typedef struct kube_node {
    kube_obj_t obj;
    bool unschedulable;         /* spec.unschedulable (cordoned) */
    kube_cond_t ready;          /* status.conditions[type=Ready].status */
    const kube_taint_t *taints; /* spec.taints, in input order */
    size_t n_taints;
    int64_t allocatable_memory; /* status.allocatable.memory, bytes; 0 when absent */
} kube_node_t;

typedef enum kube_pod_phase {
    KUBE_POD_PHASE_UNSET,
    KUBE_POD_PENDING,
    KUBE_POD_RUNNING,
    KUBE_POD_SUCCEEDED,
    KUBE_POD_FAILED,
    KUBE_POD_UNKNOWN, /* the phase "Unknown" */
    KUBE_POD_PHASE_OTHER,
} kube_pod_phase_t;

typedef struct kube_pod {
    kube_obj_t obj;
    const char *node_name; /* spec.nodeName */
    kube_pod_phase_t phase;
    /* spec.containers[].resources.requests.memory, summed, bytes */
    int64_t memory_request;
} kube_pod_t;

typedef enum kube_eviction_strategy {
    KUBE_EVICTION_UNSET,
    KUBE_EVICTION_NONE,
    KUBE_EVICTION_LIVE_MIGRATE,
    KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE,
    KUBE_EVICTION_EXTERNAL,
    KUBE_EVICTION_OTHER,
} kube_eviction_strategy_t;

typedef enum kube_vmi_phase {
    KUBE_VMI_PHASE_UNSET,
    KUBE_VMI_PENDING,
    KUBE_VMI_SCHEDULING,
    KUBE_VMI_SCHEDULED,
    KUBE_VMI_RUNNING,
    KUBE_VMI_SUCCEEDED,
    KUBE_VMI_FAILED,
    KUBE_VMI_UNKNOWN, /* the phase "Unknown" */
    KUBE_VMI_PHASE_OTHER,
} kube_vmi_phase_t;

typedef enum kube_abort_status {
    KUBE_ABORT_UNSET,
    KUBE_ABORT_SUCCEEDED,
    KUBE_ABORT_FAILED,
    KUBE_ABORT_ABORTING,
    KUBE_ABORT_OTHER,
} kube_abort_status_t;

/* status.migrationState of a VMI: the last (or current) migration. */
typedef struct kube_migration_state {
    const char *migration_uid;
    const char *source_node;
    const char *target_node;
    const char *target_pod;
    vd_time_t start; /* {0, 0} when absent or unparsable (see docs/decoding.md) */
    vd_time_t end;
    bool completed;
    bool failed;
    bool abort_requested;
    kube_abort_status_t abort_status;
} kube_migration_state_t;

typedef struct kube_vmi {
    kube_obj_t obj;
    kube_eviction_strategy_t eviction_strategy; /* spec.evictionStrategy */
    int64_t guest_memory;                       /* spec.domain.memory.guest, bytes; 0 when absent */
    int64_t memory_request; /* spec.domain.resources.requests.memory, bytes; 0 when absent */
    const char *node_name;  /* status.nodeName */
    kube_vmi_phase_t phase;
    kube_cond_t migratable; /* status.conditions[type=LiveMigratable] */
    const char *migratable_reason;
    const char *migratable_message;
    const char *migration_method; /* status.migrationMethod */
    /* status.evacuationNodeName: the node KubeVirt's eviction interceptor
     * marked the VMI to leave; "" when unmarked */
    const char *evacuation_node;
    bool has_migration_state; /* status.migrationState present */
    kube_migration_state_t migration;
} kube_vmi_t;

typedef enum kube_migration_phase {
    KUBE_MIGRATION_PHASE_UNSET,
    KUBE_MIGRATION_PENDING,
    KUBE_MIGRATION_SCHEDULING,
    KUBE_MIGRATION_SCHEDULED,
    KUBE_MIGRATION_PREPARING_TARGET,
    KUBE_MIGRATION_TARGET_READY,
    KUBE_MIGRATION_RUNNING,
    KUBE_MIGRATION_SUCCEEDED,
    KUBE_MIGRATION_FAILED,
    KUBE_MIGRATION_PHASE_OTHER,
} kube_migration_phase_t;

typedef struct kube_migration {
    kube_obj_t obj;
    const char *vmi_name; /* spec.vmiName */
    kube_migration_phase_t phase;
    /* Latest status.phaseTransitionTimestamps[].phaseTransitionTimestamp;
     * {0, 0} when there is none. */
    vd_time_t phase_changed;
} kube_migration_t;

typedef struct kube_configmap {
    kube_obj_t obj;
    const kube_kv_t *data; /* every key of data, in input order */
    size_t n_data;
} kube_configmap_t;

typedef struct kube_migration_policy {
    kube_obj_t obj;
    int64_t bandwidth;                  /* spec.bandwidthPerMigration, bytes/s; -1 when absent */
    int64_t completion_timeout_per_gib; /* spec.completionTimeoutPerGiB, s; -1 when absent */
    /* spec.selectors.virtualMachineInstanceSelector, every key */
    const kube_kv_t *vmi_selector;
    size_t n_vmi_selector;
} kube_migration_policy_t;

/* The KubeVirt CR: what vmdrain reads of KubeVirt's own configuration
 * (spec.configuration). Numbers are -1 when absent. */
typedef struct kube_kubevirt {
    kube_obj_t obj;
    /* spec.configuration.migrations */
    int64_t parallel_migrations_per_cluster;
    int64_t parallel_outbound_per_node;
    int64_t bandwidth_per_migration; /* bytes/s */
    int64_t completion_timeout_per_gib;
    int64_t progress_timeout;
    const char *node_drain_taint_key; /* "" when absent */
    /* spec.configuration.evictionStrategy, the cluster default */
    kube_eviction_strategy_t eviction_strategy;
    const char *phase; /* status.phase ("Deployed", ...); "" when absent */
} kube_kubevirt_t;

/* A Lease, as the leader election reads it (spec). Times stay the strings
 * the apiserver sent (MicroTime, RFC 3339 with microseconds): the election
 * measures time on its own clock and only writes them back. */
typedef struct kube_lease {
    kube_obj_t obj;
    const char *holder_identity;    /* spec.holderIdentity; "" when absent */
    int64_t lease_duration_seconds; /* spec.leaseDurationSeconds; -1 when absent */
    int64_t lease_transitions;      /* spec.leaseTransitions; 0 when absent */
    const char *acquire_time;       /* spec.acquireTime; "" when absent */
    const char *renew_time;         /* spec.renewTime; "" when absent */
} kube_lease_t;

/* The finalizer vmdrain keeps on a NodeDrain until its drain has ended. */
#define KUBE_NODEDRAIN_FINALIZER "vmdrain.io/drain"

/* A NodeDrain (crds/nodedrains.vmdrain.io.yaml): the spec, and of the status
 * what the engine needs to tell a finished drain from a running one. */
typedef struct kube_nodedrain {
    kube_obj_t obj;
    const char *node_name;       /* spec.nodeName */
    const char *reason;          /* spec.reason; "" when absent */
    const char *uncordon_policy; /* spec.uncordonPolicy; "" when absent */
    const char *phase;           /* status.phase; "" when absent */
    const char *trigger;         /* status.trigger; "" when absent */
    vd_time_t completion_time;   /* status.completionTime */
    /* metadata.finalizers: how many, and the index of
     * KUBE_NODEDRAIN_FINALIZER among them (-1 when absent) */
    int n_finalizers;
    int finalizer_index;
    /* status.conditions of the types in KUBE_NODEDRAIN_CONDS, in that
     * order: the status and its lastTransitionTime */
    struct {
        kube_cond_t status;
        vd_time_t since;
    } conds[3];
} kube_nodedrain_t;

/* The condition types a NodeDrain carries, in the order of conds[]. */
#define KUBE_NODEDRAIN_CONDS                                                                       \
    {                                                                                              \
        "Progressing", "Drained", "Blocked"                                                        \
    }

/* "Node", "Pod", "VirtualMachineInstance", ... (the Kubernetes kind). */
const char *kube_kind_name(kube_kind_t kind);

/* The kind's list kind: "NodeList", "PodList", ... */
const char *kube_kind_list_name(kube_kind_t kind);

/* Whether a label or annotation key is kept in projections: "kubevirt.io",
 * or a key under "kubevirt.io/", "vmdrain.io/" or "sim.vmdrain.io/". The
 * prefixes are one table in objects.c. */
bool kube_obj_keeps_key(const char *key, size_t len);

/* Releases an object (NULL is fine). */
void kube_obj_free(kube_obj_t *obj);

/* Bytes the object holds, including an estimate of malloc's own overhead. */
size_t kube_obj_size(const kube_obj_t *obj);

/* The value of a kept label or annotation, or NULL when absent. A key that
 * appears twice yields its last value, as in Kubernetes' own decoding. The
 * returned string lives as long as obj. */
const char *kube_obj_label(const kube_obj_t *obj, const char *key);
const char *kube_obj_annotation(const kube_obj_t *obj, const char *key);

/* Writes "namespace/name" (or "name" for a cluster-scoped object) into buf,
 * cut at n - 1 bytes, and returns buf. */
const char *kube_obj_key(const kube_obj_t *obj, char *buf, size_t n);

/* Downcasts; NULL when obj is NULL or of another kind. */
const kube_node_t *kube_obj_as_node(const kube_obj_t *obj);
const kube_pod_t *kube_obj_as_pod(const kube_obj_t *obj);
const kube_vmi_t *kube_obj_as_vmi(const kube_obj_t *obj);
const kube_migration_t *kube_obj_as_migration(const kube_obj_t *obj);
const kube_configmap_t *kube_obj_as_configmap(const kube_obj_t *obj);
const kube_migration_policy_t *kube_obj_as_migration_policy(const kube_obj_t *obj);
const kube_kubevirt_t *kube_obj_as_kubevirt(const kube_obj_t *obj);
const kube_lease_t *kube_obj_as_lease(const kube_obj_t *obj);
const kube_nodedrain_t *kube_obj_as_nodedrain(const kube_obj_t *obj);

/* Whether the node has a taint with this key and effect. */
bool kube_node_has_taint(const kube_node_t *n, const char *key, const char *effect);

/* The value of a ConfigMap data key, or NULL. */
const char *kube_configmap_get(const kube_configmap_t *cm, const char *key);

/* Enum parsers from the Kubernetes strings ("Running" ...): NULL gives
 * _UNSET, an unknown string _OTHER. Names go the other way ("" for _UNSET,
 * "Other" for _OTHER). */
kube_pod_phase_t kube_pod_phase_parse(const char *s, size_t len);
kube_vmi_phase_t kube_vmi_phase_parse(const char *s, size_t len);
kube_migration_phase_t kube_migration_phase_parse(const char *s, size_t len);
kube_eviction_strategy_t kube_eviction_strategy_parse(const char *s, size_t len);
kube_abort_status_t kube_abort_status_parse(const char *s, size_t len);
kube_cond_t kube_cond_parse(const char *s, size_t len);
const char *kube_pod_phase_name(kube_pod_phase_t p);
const char *kube_vmi_phase_name(kube_vmi_phase_t p);
const char *kube_migration_phase_name(kube_migration_phase_t p);
const char *kube_eviction_strategy_name(kube_eviction_strategy_t e);
const char *kube_abort_status_name(kube_abort_status_t a);
const char *kube_cond_name(kube_cond_t c);

/* --- internal: the builder through which kube/decode.c makes objects ------
 *
 * A builder is reused for every object of a stream. The decoder writes
 * scalar fields (enums, numbers, times, bools) straight into the scratch
 * object returned by kube__build_scratch() and strings through
 * kube__build_set_str(); kube__build_finish() packs everything into one
 * allocation. Not for use outside the decoder. */

typedef struct kube__build kube__build_t;

/* The lists an object may carry. */
typedef enum kube__list {
    KUBE__LIST_LABELS,
    KUBE__LIST_ANNOTATIONS,
    KUBE__LIST_TAINTS,       /* three strings: key, value, effect */
    KUBE__LIST_DATA,         /* ConfigMap data */
    KUBE__LIST_VMI_SELECTOR, /* MigrationPolicy selector */
} kube__list_t;

/* Offset meaning "no string" ("" in the finished object). */
#define KUBE__NO_STR UINT32_MAX

/* A builder whose string pool holds at most max_bytes. NULL when out of
 * memory. Freed with kube__build_free(). */
kube__build_t *kube__build_new(size_t max_bytes);
void kube__build_free(kube__build_t *b);

/* Starts a new object of the given kind; the scratch object is zeroed, its
 * strings "" and its policy numbers -1. */
void kube__build_reset(kube__build_t *b, kube_kind_t kind);

/* The object under construction (of the kind given to reset). */
kube_obj_t *kube__build_scratch(kube__build_t *b);

/* Copies n bytes into the pool and returns their offset, or KUBE__NO_STR
 * when the pool cap is reached (errno E2BIG) or memory runs out (ENOMEM). */
uint32_t kube__build_intern(kube__build_t *b, const char *s, size_t n);

/* Points the string field *field (which must lie inside the scratch object)
 * at pool offset off. Setting a field again replaces the earlier value. */
void kube__build_set_off(kube__build_t *b, const char **field, uint32_t off);

/* intern + set_off. Returns 0, or -1 as intern fails. */
int kube__build_set_str(kube__build_t *b, const char **field, const char *s, size_t n);

/* Appends an entry of up to three pool offsets to a list. Returns 0 or -1
 * (ENOMEM, or E2BIG when the entries outgrow the pool cap). */
int kube__build_add(kube__build_t *b, kube__list_t list, uint32_t a, uint32_t v, uint32_t c);

/* Bytes used by the pool: a mark for kube__build_rollback(). */
size_t kube__build_mark(const kube__build_t *b);

/* Forgets pool bytes added after mark. Only valid when no field or list
 * entry refers to them. */
void kube__build_rollback(kube__build_t *b, size_t mark);

/* Packs the scratch object into one fresh allocation, owned by the caller
 * (kube_obj_free()). NULL when out of memory. The builder must be reset
 * before the next object. */
kube_obj_t *kube__build_finish(kube__build_t *b);

#endif
