/*
 * admission — the eviction webhook's logic: AdmissionReview v1 decoding,
 * the eviction decision, and the AdmissionReview response.
 *
 * Nothing here does I/O. admission_decide() is a pure function of the
 * decoded request and of what the caller found in its caches (the pod, the
 * VMI the pod runs, that VMI's migrations, the cluster configuration), so
 * the same request over the same cache always gets the same answer, and
 * answering twice is harmless. The caller applies the side effects the
 * result asks for (mark the VMI, queue its migration, record it as
 * blocked) and sends the response; docs/webhook.md has the decision table.
 *
 * How a handler uses it:
 *
 *   admission_request_t rq;
 *   if (admission_decode(body, len, &rq, err, sizeof(err)) < 0)
 *       -> answer HTTP 400 with err;
 *   in.pod = pod cache lookup (rq.ns, rq.name);
 *   in.vmi = VMI cache lookup (rq.ns, admission_pod_vmi_name(in.pod));
 *   in.migs = that VMI's migrations; defaults from the configuration;
 *   admission_decide(&rq, &in, &res);
 *   if (res.decision == ADMISSION_NEED_LOOKUP)
 *       -> GET the pod, set in.pod_looked_up (and in.lookup_failed), decide again;
 *   apply res.effects; admission_respond(req, rq.uid, &res)
 *   (admission_count, then admission_encode answered with HTTP 200).
 */
#ifndef VMDRAIN_WEB_ADMISSION_H
#define VMDRAIN_WEB_ADMISSION_H

#include "kube/objects.h"
#include "util/buf.h"
#include "web/server.h"

#include <stdbool.h>
#include <stddef.h>

/* Largest AdmissionReview body accepted, and deepest JSON nesting. */
#define ADMISSION_BODY_MAX  (1024 * 1024)
#define ADMISSION_DEPTH_MAX 32

/* Names KubeVirt puts on a virt-launcher pod (DESIGN §3). */
#define ADMISSION_LABEL_APP           "kubevirt.io"
#define ADMISSION_LAUNCHER            "virt-launcher"
#define ADMISSION_ANN_DOMAIN          "kubevirt.io/domain"
#define ADMISSION_LABEL_MIGRATION_JOB "kubevirt.io/migrationJobUID"

/* Longest decision message; longer ones are cut on a UTF-8 boundary. */
#define ADMISSION_MESSAGE_MAX 1024

/* What a decoded AdmissionReview request says. Strings are NUL-terminated
 * copies; the struct owns no memory. */
typedef struct admission_request {
    char uid[129];      /* request.uid, echoed in the response */
    char name[254];     /* request.name: the pod to evict */
    char ns[64];        /* request.namespace */
    char username[256]; /* request.userInfo.username, for logs; cut when longer; "" when absent */
    /* request.dryRun, or "All" in request.object.deleteOptions.dryRun:
     * the answer is the same, but nothing may be changed */
    bool dry_run;
} admission_request_t;

/* The decision. Every value has a label for evictions_total{decision}. */
typedef enum admission_decision {
    ADMISSION_NEED_LOOKUP,           /* pod not in the cache: GET it, decide again */
    ADMISSION_DENY_LOOKUP_FAILED,    /* that GET failed: deny, kubectl retries */
    ADMISSION_ALLOW_NO_POD,          /* the pod does not exist */
    ADMISSION_ALLOW_NOT_LAUNCHER,    /* not a virt-launcher pod */
    ADMISSION_ALLOW_FINISHED_POD,    /* pod phase Succeeded or Failed */
    ADMISSION_DENY_TARGET_POD,       /* target pod of a migration in flight */
    ADMISSION_ALLOW_NO_VMI,          /* a launcher pod of no (cached) VMI */
    ADMISSION_ALLOW_FINISHED_VMI,    /* VMI phase Succeeded or Failed */
    ADMISSION_ALLOW_VMI_ELSEWHERE,   /* the VMI runs on another node (a left source pod) */
    ADMISSION_ALLOW_NOT_OURS,        /* strategy None */
    ADMISSION_DENY_MIGRATE,          /* live-migrate it: mark the VMI and queue */
    ADMISSION_DENY_BLOCKED,          /* LiveMigrate but not live-migratable */
    ADMISSION_ALLOW_IF_POSSIBLE,     /* LiveMigrateIfPossible, not migratable */
    ADMISSION_DENY_EXTERNAL,         /* strategy External: mark the VMI */
    ADMISSION_DENY_GATE_OFF,         /* LiveMigrate while the LiveMigration gate is off */
    ADMISSION_DENY_UNKNOWN_STRATEGY, /* a strategy this version does not know */
} admission_decision_t;

#define ADMISSION_DECISION_COUNT 16

/* Side effects a decision asks for (bits of admission_result_t.effects). */
#define ADMISSION_EFFECT_MARK    0x1u /* annotate the VMI vmdrain.io/evacuate-from=<node> */
#define ADMISSION_EFFECT_QUEUE   0x2u /* queue the VMI's migration in the planner */
#define ADMISSION_EFFECT_BLOCKED 0x4u /* record the VMI as blocked on <node> */

/* What the caller looked up for the request. Everything is borrowed. */
typedef struct admission_input {
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
} admission_input_t;

/* The answer. */
typedef struct admission_result {
    admission_decision_t decision;
    bool allowed;
    int code;           /* 200 when allowed, else 429 */
    const char *label;  /* static: "migrate", "blocked", ... */
    const char *reason; /* static: "TooManyRequests" when denied, "" when allowed */
    /* ADMISSION_EFFECT_* the decision asks for ... */
    unsigned wanted_effects;
    /* ... and those to apply: wanted_effects, or 0 under dry-run. */
    unsigned effects;
    char node[254]; /* the node the VMI is evacuated from (MARK, BLOCKED); "" otherwise */
    char message[ADMISSION_MESSAGE_MAX];
} admission_result_t;

/* Decodes an AdmissionReview (admission.k8s.io/v1) for a pods/eviction
 * CREATE from len bytes of JSON (no terminator needed). Returns 0, or -1
 * with a message naming the offending field in err: the body is not JSON,
 * too big or too deep, not an AdmissionReview v1, or not an eviction. */
int admission_decode(const char *body, size_t len, admission_request_t *out, char *err,
                     size_t errlen);

/* The decision for req given what the caches hold (see admission_input_t).
 * Pure: no I/O, no clock, no allocation. */
void admission_decide(const admission_request_t *req, const admission_input_t *in,
                      admission_result_t *out);

/* Appends the AdmissionReview response for uid to out: allowed, or denied
 * with status {code, message, reason}. Returns 0, or -1 when out's cap is
 * reached or a string is not valid UTF-8. */
int admission_encode(const char *uid, const admission_result_t *res, buf_t *out);

/* Counts the decision in evictions_total{decision="<label>"}. */
void admission_count(const admission_result_t *res);

/* Counts the decision and answers req with the AdmissionReview response
 * for uid (HTTP 200), or with 500 when it cannot be encoded. */
void admission_respond(web_request_t *req, const char *uid, const admission_result_t *res);

/* The name of the VMI a launcher pod runs (its kubevirt.io/domain
 * annotation), or NULL (pod NULL, or no annotation). Lives as long as pod. */
const char *admission_pod_vmi_name(const kube_pod_t *pod);

/* "ALLOW_NOT_LAUNCHER", ... (for logs and tests) and the metric label. */
const char *admission_decision_name(admission_decision_t d);
const char *admission_decision_label(admission_decision_t d);

#endif
