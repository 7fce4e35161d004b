/*
 * Fuzz driver for KubeVirt's configuration as a source: the input is a
 * KubeVirtList body; every KubeVirt the decoder delivers goes through
 * drain_kubevirt_config() and the merge under a default ConfigMap. What is
 * accepted must be within the documented ranges, what is refused must say
 * why, and a refusal must leave the output alone.
 */
#include "drain/kubevirt.h"
#include "kube/decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(void *ud, kube_obj_t *obj)
{
    const kube_kubevirt_t *kv = kube_obj_as_kubevirt(obj);
    drain_config_t c, cm, out;
    char err[512] = "";
    (void)ud;
    if (!kv)
        abort();
    memset(&c, 0x5a, sizeof(c));
    if (drain_kubevirt_config(kv, &c, err, sizeof(err)) == 0) {
        if (c.parallel_migrations_per_cluster < 1 || c.parallel_outbound_per_node < 1 ||
            c.bandwidth_per_migration < 0 || c.progress_timeout < 1 ||
            c.completion_timeout_per_gib < 1 || !c.kubevirt_seen ||
            !drain_config_valid_taint_key(c.kubevirt_taint_key) ||
            c.eviction_strategy == KUBE_EVICTION_UNSET ||
            c.eviction_strategy == KUBE_EVICTION_OTHER)
            abort();
        drain_config_defaults(&cm);
        drain_kubevirt_merge(&c, &cm, &out);
        if (out.parallel_migrations_per_cluster != c.parallel_migrations_per_cluster ||
            strcmp(out.node_drain_taint_key, cm.node_drain_taint_key) != 0)
            abort();
    } else if (!err[0] || c.parallel_outbound_per_node != 0x5a5a5a5a) {
        abort();
    }
    kube_obj_free(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kube_decoder_cb_t cb = {.on_item = check};
    kube_decoder_t *d = kube_decoder_new(KUBE_KIND_KUBEVIRT, KUBE_DECODE_LIST, &cb, NULL, 0);
    if (!d)
        return 0;
    if (kube_decoder_feed(d, (const char *)data, size) == 0)
        kube_decoder_finish(d);
    kube_decoder_free(d);
    return 0;
}
