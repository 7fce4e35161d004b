/*
 * decode_schema — the tables of what the decoder keeps: for each context
 * (a part of a LIST, a watch event or an object of a kind) the keys read,
 * the JSON type each must have and the field or child context it goes to.
 * docs/decoding.md describes the fields.
 *
 * Owns constant tables only; calls nothing. Read by decode.c and
 * decode_build.c.
 */
#include "kube/decode_int.h"

#include <stddef.h>

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
const struct row kube__dec_obj_common_rows[] = {
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
    ARR("finalizers", C_FINALIZERS),
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
static const struct row node_status_rows[] = {
    ARR("conditions", C_CONDS),
    MAP("allocatable", C_NODE_ALLOCATABLE),
    END,
};
static const struct row node_alloc_rows[] = {
    ROW("memory", F_NODE_ALLOC_MEMORY, J_QUANTITY, 0, 0),
    END,
};
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
static const struct row pod_spec_rows[] = {
    STR("nodeName", F_POD_NODE),
    ARR("containers", C_POD_CONTAINERS),
    END,
};
static const struct row pod_container_rows[] = {MAP("resources", C_POD_RESOURCES), END};
static const struct row pod_resources_rows[] = {MAP("requests", C_POD_REQUESTS), END};
static const struct row pod_requests_rows[] = {
    ROW("memory", F_POD_REQ_MEMORY, J_QUANTITY, 0, 0),
    END,
};
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
    STR("nodeName", F_VMI_NODE),
    STR("phase", F_VMI_PHASE),
    ARR("conditions", C_VMI_CONDS),
    STR("migrationMethod", F_VMI_METHOD),
    MAP("migrationState", C_MSTATE),
    STR("evacuationNodeName", F_VMI_EVACUATION),
    END,
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
static const struct row kv_rows[] = {MAP("spec", C_KV_SPEC), MAP("status", C_KV_STATUS), END};
static const struct row kv_spec_rows[] = {MAP("configuration", C_KV_CONFIG), END};
static const struct row kv_config_rows[] = {
    MAP("migrations", C_KV_MIGRATIONS),
    STR("evictionStrategy", F_KV_EVICTION),
    END,
};
static const struct row kv_migrations_rows[] = {
    ROW("parallelMigrationsPerCluster", F_KV_PARALLEL, J_INT, 0, 0),
    ROW("parallelOutboundMigrationsPerNode", F_KV_OUTBOUND, J_INT, 0, 0),
    ROW("bandwidthPerMigration", F_KV_BANDWIDTH, J_QUANTITY, 0, 0),
    ROW("completionTimeoutPerGiB", F_KV_TIMEOUT, J_INT, 0, 0),
    ROW("progressTimeout", F_KV_PROGRESS, J_INT, 0, 0),
    STR("nodeDrainTaintKey", F_KV_TAINT_KEY),
    END,
};
static const struct row kv_status_rows[] = {STR("phase", F_KV_PHASE), END};
static const struct row lease_rows[] = {MAP("spec", C_LEASE_SPEC), END};
static const struct row lease_spec_rows[] = {
    STR("holderIdentity", F_LEASE_HOLDER),
    ROW("leaseDurationSeconds", F_LEASE_DURATION, J_INT, 0, 0),
    ROW("leaseTransitions", F_LEASE_TRANSITIONS, J_INT, 0, 0),
    STR("acquireTime", F_LEASE_ACQUIRE),
    STR("renewTime", F_LEASE_RENEW),
    END,
};
static const struct row nd_rows[] = {MAP("spec", C_ND_SPEC), MAP("status", C_ND_STATUS), END};
static const struct row nd_spec_rows[] = {
    STR("nodeName", F_ND_NODE),
    STR("reason", F_ND_REASON),
    STR("uncordonPolicy", F_ND_UNCORDON),
    END,
};
static const struct row nd_status_rows[] = {
    STR("phase", F_ND_PHASE),
    STR("trigger", F_ND_TRIGGER),
    ROW("completionTime", F_ND_COMPLETION, J_TIME, 0, 0),
    ARR("conditions", C_ND_CONDS),
    END,
};
static const struct row nd_cond_rows[] = {
    STR("type", F_COND_TYPE),
    STR("status", F_COND_STATUS),
    ROW("lastTransitionTime", F_COND_SINCE, J_TIME, 0, 0),
    END,
};

const struct kube__dec_ctx_info kube__dec_ctxs[C_COUNT] = {
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
    [C_KV_SPEC] = {"spec", CLS_STRUCT, 0, kv_spec_rows},
    [C_KV_CONFIG] = {"spec.configuration", CLS_STRUCT, 0, kv_config_rows},
    [C_KV_MIGRATIONS] = {"spec.configuration.migrations", CLS_STRUCT, 0, kv_migrations_rows},
    [C_KV_STATUS] = {"status", CLS_STRUCT, 0, kv_status_rows},
    [C_LEASE_SPEC] = {"spec", CLS_STRUCT, 0, lease_spec_rows},
    [C_FINALIZERS] = {"metadata.finalizers", CLS_ARRAY, 0, NULL},
    [C_ND_SPEC] = {"spec", CLS_STRUCT, 0, nd_spec_rows},
    [C_ND_STATUS] = {"status", CLS_STRUCT, 0, nd_status_rows},
    [C_ND_CONDS] = {"status.conditions", CLS_ARRAY, C_ND_COND, NULL},
    [C_ND_COND] = {"status.conditions[]", CLS_STRUCT, 0, nd_cond_rows},
    [C_NODE_ALLOCATABLE] = {"status.allocatable", CLS_STRUCT, 0, node_alloc_rows},
    [C_POD_CONTAINERS] = {"spec.containers", CLS_ARRAY, C_POD_CONTAINER, NULL},
    [C_POD_CONTAINER] = {"spec.containers[]", CLS_STRUCT, 0, pod_container_rows},
    [C_POD_RESOURCES] = {"spec.containers[].resources", CLS_STRUCT, 0, pod_resources_rows},
    [C_POD_REQUESTS] = {"spec.containers[].resources.requests", CLS_STRUCT, 0, pod_requests_rows},
};

const struct row *const kube__dec_kind_rows[KUBE_KIND_COUNT] = {
    [KUBE_KIND_NODE] = node_rows,    [KUBE_KIND_POD] = pod_rows,
    [KUBE_KIND_VMI] = vmi_rows,      [KUBE_KIND_MIGRATION] = mig_rows,
    [KUBE_KIND_CONFIGMAP] = cm_rows, [KUBE_KIND_MIGRATION_POLICY] = pol_rows,
    [KUBE_KIND_KUBEVIRT] = kv_rows,  [KUBE_KIND_LEASE] = lease_rows,
    [KUBE_KIND_NODEDRAIN] = nd_rows,
};
