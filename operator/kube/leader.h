/*
 * leader — leader election on a coordination.k8s.io/v1 Lease, with
 * client-go's leaderelection semantics.
 *
 * A candidate reads the Lease every retry period (with up to 20% jitter).
 * It takes the Lease when there is none (create), when its holder is empty
 * (released), or when the record has not changed for the holder's
 * leaseDurationSeconds as measured on this replica's own monotonic clock
 * from the moment it first saw that record (never from the times written
 * in it, so clocks need not agree). Every write carries the resourceVersion
 * it read: of two candidates one wins, the other gets a conflict.
 *
 * The leader renews every retry period. Its leadership holds until
 * renew_deadline after it SENT the last renew that succeeded; when that
 * passes without a newer success (the apiserver is unreachable, a renew
 * hangs, the Lease was taken), on_stop runs at once: the owner stops every
 * write before it returns (the fence). No other replica can take the Lease
 * earlier than lease_duration after that renew was written, which is after
 * it was sent; lease_duration > renew_deadline leaves the margin. The
 * elector then goes back to being a candidate.
 *
 * kube_leader_release() (shutdown) writes the Lease with an empty holder
 * and a duration of 1 s, so the next candidate takes it at its next read.
 *
 * Metrics: vmdrain_leader (1 while leading), vmdrain_leader_transitions_total
 * (changes of the Lease's holder this replica saw, its own included); the
 * Lease requests count in vmdrain_api_requests_total under the verbs
 * lease_get, lease_create and lease_update, apart from the engine's. Every
 * change of the holder is logged.
 *
 * Calls kube/http (its own transport: renews never wait behind the
 * engine's rate limit), kube/decode, util/.
 */
#ifndef VMDRAIN_KUBE_LEADER_H
#define VMDRAIN_KUBE_LEADER_H

#include "kube/http.h"
#include "kube/objects.h"

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;

#define KUBE_LEADER_LEASE_DURATION 15.0 /* seconds, as client-go's users default */
#define KUBE_LEADER_RENEW_DEADLINE 10.0
#define KUBE_LEADER_RETRY_PERIOD   2.0
#define KUBE_LEADER_IDENTITY_MAX   128

typedef struct kube_leader kube_leader_t;

typedef struct kube_leader_opts {
    const char *ns, *name;                               /* the Lease */
    const char *identity;                                /* this replica's holderIdentity */
    double lease_duration, renew_deadline, retry_period; /* seconds */
    void (*on_start)(void *ud);                          /* became the leader */
    void (*on_stop)(void *ud); /* stopped leading: stop writing before returning */
    void *ud;
} kube_leader_opts_t;

/* Checks the three durations as client-go does: each positive,
 * lease_duration > renew_deadline > 1.2 x retry_period. Returns 0, or -1
 * with the rule broken in err. */
int kube_leader_check_times(double lease_duration, double renew_deadline, double retry_period,
                            char *err, size_t errlen);

/* An elector on http (which it borrows). Nothing happens before
 * kube_leader_start(). Returns NULL (message in err) for bad options or
 * when memory runs out. */
kube_leader_t *kube_leader_new(struct ev_loop *loop, kube_http_t *http, const kube_leader_opts_t *o,
                               char *err, size_t errlen);

void kube_leader_start(kube_leader_t *l);

bool kube_leader_leading(const kube_leader_t *l);

/* The holder this replica last saw ("" when none or not read yet). */
const char *kube_leader_holder(const kube_leader_t *l);

/* Stops electing. A leader calls on_stop, then writes the Lease released;
 * done(ud) runs once when that write ended (at once when not leading).
 * The elector stays allocated until kube_leader_free(). */
void kube_leader_release(kube_leader_t *l, void (*done)(void *ud), void *ud);

void kube_leader_free(kube_leader_t *l);

/* --- the pure parts, for the tests ------------------------------------------------ */

typedef enum kube_leader_step {
    KUBE_LEADER_WAIT, /* another replica holds a valid Lease */
    KUBE_LEADER_TAKE, /* write it with this replica as the new holder */
    KUBE_LEADER_KEEP, /* this replica holds it: renew */
} kube_leader_step_t;

/* What a replica (identity me) does with the Lease it read, whose record
 * it first saw at observed_at (seconds, its own clock); now on the same
 * clock. A record without a positive leaseDurationSeconds lasts
 * default_duration. */
kube_leader_step_t kube_leader_decide(const kube_lease_t *lease, const char *me, double observed_at,
                                      double now, double default_duration);

/* The record to write: holder (NULL or "" releases), duration in whole
 * seconds (at least 1), the times (MicroTime text), transitions. */
typedef struct kube_leader_record {
    const char *holder;
    long long duration;
    const char *acquire_time, *renew_time;
    long long transitions;
} kube_leader_record_t;

/* The Lease ns/name as JSON with record rec; with a resourceVersion (not
 * NULL) for an update. Returns a string owned by the caller, or NULL when
 * memory runs out. */
char *kube_leader_body(const char *ns, const char *name, const char *resource_version,
                       const kube_leader_record_t *rec);

#endif
