/*
 * Fuzz driver for the leader election's reading of a Lease: the input is a
 * Lease body as a GET returns it. What decodes goes through
 * kube_leader_decide() at three times (its answer must be one of the three
 * steps, and a Lease held by this replica is always kept) and is written
 * back with kube_leader_body(), which must decode again to the same holder,
 * version and transitions.
 */
#include "kube/decode.h"
#include "kube/leader.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decide(const kube_lease_t *l)
{
    for (int i = 0; i < 3; i++) {
        kube_leader_step_t s = kube_leader_decide(l, "me_1", 100, 100 + 10.0 * i, 15);
        if (s != KUBE_LEADER_WAIT && s != KUBE_LEADER_TAKE && s != KUBE_LEADER_KEEP)
            abort();
        if ((s == KUBE_LEADER_KEEP) != (strcmp(l->holder_identity, "me_1") == 0))
            abort();
    }
}

static void check_roundtrip(const kube_lease_t *l)
{
    char err[256];
    kube_leader_record_t rec = {.holder = l->holder_identity,
                                .duration = l->lease_duration_seconds,
                                .acquire_time = l->acquire_time,
                                .renew_time = l->renew_time,
                                .transitions = l->lease_transitions};
    char *body = kube_leader_body("ns", "vmdrain", l->obj.resource_version, &rec);
    if (!body)
        return; /* text that is not UTF-8 is refused by the generator */
    kube_obj_t *o = kube_decode_one(KUBE_KIND_LEASE, body, strlen(body), err, sizeof(err));
    const kube_lease_t *back = kube_obj_as_lease(o);
    if (!back || strcmp(back->holder_identity, l->holder_identity) != 0 ||
        strcmp(back->obj.resource_version, l->obj.resource_version) != 0 ||
        back->lease_transitions != (l->lease_transitions < 0 ? 0 : l->lease_transitions))
        abort();
    kube_obj_free(o);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    kube_obj_t *o = kube_decode_one(KUBE_KIND_LEASE, (const char *)data, size, err, sizeof(err));
    const kube_lease_t *l = kube_obj_as_lease(o);
    if (!o) {
        if (!err[0])
            abort(); /* a refusal says why */
        return 0;
    }
    if (!l)
        abort();
    check_decide(l);
    check_roundtrip(l);
    kube_obj_free(o);
    return 0;
}
