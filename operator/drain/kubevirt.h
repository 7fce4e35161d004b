/*
 * drain/kubevirt — KubeVirt's own configuration as a source, and what
 * KubeVirt's controllers do by themselves (docs/kubevirt.md).
 *
 * The KubeVirt CR (--kubevirt NAMESPACE/NAME) gives the limits, the
 * bandwidth, the timeouts and the cluster's eviction strategy; a key the
 * ConfigMap sets wins over the CR's. The CR's nodeDrainTaintKey is
 * KubeVirt's taint, not vmdrain's: it tells whether KubeVirt's evacuation
 * controller acts on the same taint as vmdrain.
 *
 * Pure: no I/O. Called by drain/controller.c (sources), drain/reconcile.c
 * (who moves a VMI) and the fuzz driver.
 */
#ifndef VMDRAIN_DRAIN_KUBEVIRT_H
#define VMDRAIN_DRAIN_KUBEVIRT_H

#include "drain/config.h"
#include "kube/objects.h"

#include <stdbool.h>
#include <stddef.h>

/* KubeVirt's default nodeDrainTaintKey (pkg/virt-config). */
#define DRAIN_KUBEVIRT_DEFAULT_TAINT "kubevirt.io/drain"

/* KubeVirt's own backoff before another evacuation migration of a VMI
 * whose last one failed: 20 s, doubling with each further failure
 * (handleMigrationBackoff in virt-controller). It applies to vmdrain's
 * migrations too, which carry kubevirt.io/evacuationMigration. */
#define DRAIN_KUBEVIRT_BACKOFF_SECONDS 20

/* Seconds to wait after failure number `failures` (>= 1) before the next
 * attempt: retryBackoffSeconds doubling; and beside a KubeVirt whose CR was
 * read, when `failed_objects` (> 0) Failed migrations KubeVirt counts are
 * there, never less than KubeVirt's own backoff for them, so that a retry
 * is not created only to wait in Pending (where progressTimeout would
 * count). An abort deletes its migration: KubeVirt does not count it. */
double drain_kubevirt_retry_wait(const drain_config_t *c, int failures, int failed_objects);

/* Reads the KubeVirt CR into out, starting from the defaults: the keys
 * it sets get their DRAIN_CFG_* bits, LiveMigration counts as on (it is
 * GA in KubeVirt), kubevirt_seen is true and kubevirt_taint_key is the
 * CR's key or KubeVirt's default. Every value follows the ConfigMap's
 * rules; returns 0, or -1 with a message naming the field and the value
 * (out untouched). */
int drain_kubevirt_config(const kube_kubevirt_t *kv, drain_config_t *out, char *err, size_t errlen);

/* The configuration in force: cm (the ConfigMap's, or the defaults when
 * there is none) with every key cm did not set taken from kv when kv set
 * it, and kv's KubeVirt fields. kv NULL: cm alone. */
void drain_kubevirt_merge(const drain_config_t *kv, const drain_config_t *cm, drain_config_t *out);

/* True when KubeVirt's evacuation controller acts on vmdrain's own taint
 * key: a taint starts both controllers. */
bool drain_kubevirt_shares_taint(const drain_config_t *c);

/* True when KubeVirt's own controllers will migrate the VMI out of node
 * for this drain, so vmdrain must not create a migration of its own: the
 * VMI's own strategy (before evacuateExternal) is LiveMigrate or
 * LiveMigrateIfPossible and it is live-migratable, and either KubeVirt's
 * taint is on the node, or an eviction marked the VMI (KubeVirt's own mark,
 * status.evacuationNodeName, or — with KubeVirt's CR seen — an eviction
 * vmdrain answered, which virt-api's interceptor answers too). */
bool drain_kubevirt_moves(const drain_config_t *c, const kube_node_t *node, const kube_vmi_t *vmi,
                          bool evicted);

#endif
