/*
 * drain/kubevirt — see kubevirt.h: the KubeVirt CR as a configuration
 * source, the merge under the ConfigMap, and the rule of which VMIs
 * KubeVirt migrates by itself. Calls drain/config (one rule per key);
 * called by drain/controller.c and drain/reconcile.c.
 */
#include "drain/kubevirt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One numeric field of the CR through the ConfigMap's rule for its key. */
static int apply_number(drain_config_t *c, const char *key, int64_t v, char *err, size_t errlen)
{
    char num[32];
    if (v < 0)
        return 0; /* absent */
    snprintf(num, sizeof(num), "%lld", (long long)v);
    return drain_config_apply_key(c, key, num, err, errlen);
}

int drain_kubevirt_config(const kube_kubevirt_t *kv, drain_config_t *out, char *err, size_t errlen)
{
    drain_config_t c;
    char e[384];

    drain_config_defaults(&c);
    c.live_migration_enabled = true;
    c.set = DRAIN_CFG_GATES;
    if (apply_number(&c, "parallelMigrationsPerCluster", kv->parallel_migrations_per_cluster, e,
                     sizeof(e)) < 0 ||
        apply_number(&c, "parallelOutboundMigrationsPerNode", kv->parallel_outbound_per_node, e,
                     sizeof(e)) < 0 ||
        apply_number(&c, "completionTimeoutPerGiB", kv->completion_timeout_per_gib, e, sizeof(e)) <
            0 ||
        apply_number(&c, "progressTimeout", kv->progress_timeout, e, sizeof(e)) < 0)
        goto bad;
    if (kv->bandwidth_per_migration >= 0) {
        c.bandwidth_per_migration = kv->bandwidth_per_migration;
        c.set |= DRAIN_CFG_BANDWIDTH;
    }
    if (kv->eviction_strategy != KUBE_EVICTION_UNSET) {
        const char *name = kube_eviction_strategy_name(kv->eviction_strategy);
        if (kv->eviction_strategy == KUBE_EVICTION_OTHER) {
            snprintf(e, sizeof(e),
                     "evictionStrategy: not one of None, LiveMigrate, "
                     "LiveMigrateIfPossible, External");
            goto bad;
        }
        if (drain_config_apply_key(&c, "evictionStrategy", name, e, sizeof(e)) < 0)
            goto bad;
    }
    const char *key =
        kv->node_drain_taint_key[0] ? kv->node_drain_taint_key : DRAIN_KUBEVIRT_DEFAULT_TAINT;
    if (!drain_config_valid_taint_key(key)) {
        snprintf(e, sizeof(e), "migrations: nodeDrainTaintKey: \"%.64s\" is not a valid taint key",
                 key);
        goto bad;
    }
    snprintf(c.kubevirt_taint_key, sizeof(c.kubevirt_taint_key), "%s", key);
    c.kubevirt_seen = true;
    *out = c;
    return 0;
bad:
    snprintf(err, errlen, "KubeVirt %s/%s: spec.configuration.%s", kv->obj.ns, kv->obj.name, e);
    return -1;
}

void drain_kubevirt_merge(const drain_config_t *kv, const drain_config_t *cm, drain_config_t *out)
{
    drain_config_t c = *cm;

    if (kv) {
        unsigned take = kv->set & ~cm->set;
        if (take & DRAIN_CFG_GATES)
            c.live_migration_enabled = kv->live_migration_enabled;
        if (take & DRAIN_CFG_PARALLEL)
            c.parallel_migrations_per_cluster = kv->parallel_migrations_per_cluster;
        if (take & DRAIN_CFG_OUTBOUND)
            c.parallel_outbound_per_node = kv->parallel_outbound_per_node;
        if (take & DRAIN_CFG_BANDWIDTH)
            c.bandwidth_per_migration = kv->bandwidth_per_migration;
        if (take & DRAIN_CFG_COMPLETION)
            c.completion_timeout_per_gib = kv->completion_timeout_per_gib;
        if (take & DRAIN_CFG_PROGRESS)
            c.progress_timeout = kv->progress_timeout;
        if (take & DRAIN_CFG_EVICTION)
            c.eviction_strategy = kv->eviction_strategy;
        c.set |= take;
        c.kubevirt_seen = kv->kubevirt_seen;
        memcpy(c.kubevirt_taint_key, kv->kubevirt_taint_key, sizeof(c.kubevirt_taint_key));
    }
    *out = c;
}

bool drain_kubevirt_shares_taint(const drain_config_t *c)
{
    return c->kubevirt_seen && strcmp(c->kubevirt_taint_key, c->node_drain_taint_key) == 0;
}

bool drain_kubevirt_moves(const drain_config_t *c, const kube_node_t *node, const kube_vmi_t *vmi,
                          bool evicted)
{
    kube_eviction_strategy_t s = vmi->eviction_strategy != KUBE_EVICTION_UNSET
                                     ? vmi->eviction_strategy
                                     : c->eviction_strategy;
    if (vmi->migratable != KUBE_COND_TRUE ||
        (s != KUBE_EVICTION_LIVE_MIGRATE && s != KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE))
        return false;
    if (strcmp(vmi->evacuation_node, node->obj.name) == 0)
        return true;
    if (!c->kubevirt_seen)
        return false;
    return evicted || kube_node_has_taint(node, c->kubevirt_taint_key, "NoSchedule");
}

double drain_kubevirt_retry_wait(const drain_config_t *c, int failures, int failed_objects)
{
    double wait = c->retry_backoff_seconds * ldexp(1.0, failures - 1);
    if (c->kubevirt_seen && failed_objects > 0)
        wait = fmax(wait, DRAIN_KUBEVIRT_BACKOFF_SECONDS * ldexp(1.0, failed_objects - 1));
    return wait;
}
