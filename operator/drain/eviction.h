/*
 * drain/eviction — the eviction decision, as a pure function.
 *
 * Owns the rules that turn an eviction request for a pod into an answer:
 * allow it, deny it with a code and a message, or deny it and queue the
 * VMI's migration. drain_eviction_decide() looks only at what the caller
 * found in its caches (the pod, the VMI the pod runs, that VMI's
 * migrations, the cluster configuration): no I/O, no clock, no allocation,
 * so the same request over the same cache always gets the same answer and
 * answering twice is harmless. The side effects a decision asks for (mark
 * the VMI, queue it, record it as blocked) are applied by the controller
 * (drain/evict.c) through its writer; the AdmissionReview codec and HTTP
 * live in web/admission.c, and cmd/webhook.c joins the two.
 * docs/webhook.md has the decision table.
 *
 * May call: kube/objects (the cached object types), drain/reconcile.h (the
 * one "migration in flight" rule), util/metrics (the decision counter).
 */
#ifndef VMDRAIN_DRAIN_EVICTION_H
#define VMDRAIN_DRAIN_EVICTION_H

#include "kube/objects.h"

#include <stdbool.h>
#include <stddef.h>

/* Names KubeVirt puts on a virt-launcher pod (docs/architecture.md). */
#define DRAIN_LABEL_APP           "kubevirt.io"
#define DRAIN_LAUNCHER            "virt-launcher"
#define DRAIN_ANN_DOMAIN          "kubevirt.io/domain"
#define DRAIN_LABEL_MIGRATION_JOB "kubevirt.io/migrationJobUID"

/* Longest decision message; longer ones are cut on a UTF-8 boundary. */
#define DRAIN_EVICT_MESSAGE_MAX 1024

/* The request being decided: which pod, and whether it is a dry run (the
 * answer is the same, but nothing may be changed). Borrowed strings. */
typedef struct drain_evict_req {
    const char *ns;
    const char *name;
    bool dry_run;
} drain_evict_req_t;

/* The decision. Every value has a label for evictions_total{decision}. */
typedef enum drain_evict_decision {
    DRAIN_EVICT_NEED_LOOKUP,           /* pod not in the cache: GET it, decide again */
    DRAIN_EVICT_DENY_LOOKUP_FAILED,    /* that GET failed: deny, kubectl retries */
    DRAIN_EVICT_ALLOW_NO_POD,          /* the pod does not exist */
    DRAIN_EVICT_ALLOW_NOT_LAUNCHER,    /* not a virt-launcher pod */
    DRAIN_EVICT_ALLOW_FINISHED_POD,    /* pod phase Succeeded or Failed */
    DRAIN_EVICT_DENY_TARGET_POD,       /* target pod of a migration in flight */
    DRAIN_EVICT_ALLOW_NO_VMI,          /* a launcher pod of no (cached) VMI */
    DRAIN_EVICT_ALLOW_FINISHED_VMI,    /* VMI phase Succeeded or Failed */
    DRAIN_EVICT_ALLOW_VMI_ELSEWHERE,   /* the VMI runs on another node (a left source pod) */
    DRAIN_EVICT_ALLOW_NOT_OURS,        /* strategy None */
    DRAIN_EVICT_DENY_MIGRATE,          /* live-migrate it: mark the VMI and queue */
    DRAIN_EVICT_DENY_BLOCKED,          /* LiveMigrate but not live-migratable */
    DRAIN_EVICT_ALLOW_IF_POSSIBLE,     /* LiveMigrateIfPossible, not migratable */
    DRAIN_EVICT_DENY_EXTERNAL,         /* strategy External: mark the VMI */
    DRAIN_EVICT_DENY_GATE_OFF,         /* LiveMigrate while the LiveMigration gate is off */
    DRAIN_EVICT_DENY_UNKNOWN_STRATEGY, /* a strategy this version does not know */
    DRAIN_EVICT_DENY_NOT_READY,        /* the caches are not synced, or shutting down */
} drain_evict_decision_t;

#define DRAIN_EVICT_DECISION_COUNT 17

/* Side effects a decision asks for (bits of drain_evict_result_t.effects). */
#define DRAIN_EVICT_EFFECT_MARK    0x1u /* annotate the VMI vmdrain.io/evacuate-from=<node> */
#define DRAIN_EVICT_EFFECT_QUEUE   0x2u /* queue the VMI's migration in the planner */
#define DRAIN_EVICT_EFFECT_BLOCKED 0x4u /* record the VMI as blocked on <node> */

/* What the caller looked up for the request. Everything is borrowed. */
typedef struct drain_evict_input {
    /* The pod named by the request: the cached one, or the result of a
     * live GET when pod_looked_up. NULL: not cached (NEED_LOOKUP), or,
     * after a GET, not found. */
    const kube_pod_t *pod;
    bool pod_looked_up;
    bool lookup_failed; /* the live GET failed (not a 404) */
    /* The VMI named by the pod's kubevirt.io/domain annotation, in the
     * pod's namespace; NULL when there is none. */
    const kube_vmi_t *vmi;
    /* The migrations of that VMI (spec.vmiName == its name, same namespace). */
    const kube_migration_t *const *migs;
    size_t n_migs;
    kube_eviction_strategy_t default_strategy; /* the cluster default; UNSET means None */
    bool live_migration_gate;                  /* "LiveMigration" in the feature gates */
    bool evacuate_external;                    /* External VMIs are vmdrain's to migrate */
    /* The VMI's node is cached and not cordoned: nothing is queued until it
     * is (the cordon may reach the cache just after kubectl's first
     * eviction), which the message tells. */
    bool node_uncordoned;
} drain_evict_input_t;

/* The answer. */
typedef struct drain_evict_result {
    drain_evict_decision_t decision;
    bool allowed;
    int code;           /* 200 when allowed, else 429 (kubectl drain retries) */
    const char *label;  /* static: "migrate", "blocked", ... */
    const char *reason; /* static: "TooManyRequests" when denied, "" when allowed */
    /* DRAIN_EVICT_EFFECT_* the decision asks for ... */
    unsigned wanted_effects;
    /* ... and those to apply: wanted_effects, or 0 under dry-run. */
    unsigned effects;
    char node[254]; /* the node the VMI is evacuated from (MARK, BLOCKED); "" otherwise */
    char message[DRAIN_EVICT_MESSAGE_MAX];
} drain_evict_result_t;

/* The decision for req given what the caches hold (see drain_evict_input_t).
 * Pure: no I/O, no clock, no allocation. */
void drain_eviction_decide(const drain_evict_req_t *req, const drain_evict_input_t *in,
                           drain_evict_result_t *out);

/* The answer while the controller cannot decide (caches not synced, or
 * stopping): denied with 429, so no VM is lost and kubectl drain retries. */
void drain_eviction_not_ready(const drain_evict_req_t *req, const char *why,
                              drain_evict_result_t *out);

/* Counts the decision in evictions_total{decision="<label>"}. */
void drain_eviction_count(const drain_evict_result_t *res);

/* The name of the VMI a launcher pod runs (its kubevirt.io/domain
 * annotation), or NULL (pod NULL, or no annotation). Lives as long as pod. */
const char *drain_pod_vmi_name(const kube_pod_t *pod);

/* "ALLOW_NOT_LAUNCHER", ... (for logs and tests) and the metric label. */
const char *drain_eviction_decision_name(drain_evict_decision_t d);
const char *drain_eviction_decision_label(drain_evict_decision_t d);

#endif
