#include <criterion/criterion.h>

#include "drain/kubevirt.h"
#include "../testobj.h"

#include <stdio.h>
#include <string.h>

/* The CR as the operator gets it: decoded from Kubernetes JSON. */
static kube_kubevirt_t *kubevirt(const char *configuration)
{
    char item[4096];
    snprintf(item, sizeof(item),
             "{\"metadata\":{\"name\":\"kubevirt\",\"namespace\":\"kubevirt\"},\"spec\":{"
             "\"configuration\":{%s}},\"status\":{\"phase\":\"Deployed\"}}",
             configuration);
    return (kube_kubevirt_t *)test_obj_from_json(KUBE_KIND_KUBEVIRT, item);
}

static drain_config_t from_cr(const char *configuration)
{
    kube_kubevirt_t *kv = kubevirt(configuration);
    drain_config_t c;
    char err[512] = "";
    cr_assert_eq(drain_kubevirt_config(kv, &c, err, sizeof(err)), 0, "rejected: %s", err);
    kube_obj_free(&kv->obj);
    return c;
}

static void expect_rejected(const char *configuration, const char *piece)
{
    kube_kubevirt_t *kv = kubevirt(configuration);
    drain_config_t c;
    char err[512] = "";
    memset(&c, 0x5a, sizeof(c));
    cr_expect_eq(drain_kubevirt_config(kv, &c, err, sizeof(err)), -1, "accepted: %s",
                 configuration);
    cr_expect_not_null(strstr(err, piece), "error \"%s\" lacks \"%s\"", err, piece);
    cr_expect_not_null(strstr(err, "KubeVirt kubevirt/kubevirt"), "error \"%s\" names no CR", err);
    cr_expect_eq(c.parallel_outbound_per_node, 0x5a5a5a5a, "output changed on error");
    kube_obj_free(&kv->obj);
}

Test(drain_kubevirt, an_empty_cr_is_kubevirts_defaults)
{
    drain_config_t c = from_cr("");
    cr_expect(c.kubevirt_seen);
    cr_expect_str_eq(c.kubevirt_taint_key, "kubevirt.io/drain", "KubeVirt's default key");
    cr_expect(c.live_migration_enabled, "LiveMigration is GA in KubeVirt");
    cr_expect_eq(c.set, DRAIN_CFG_GATES, "nothing else was set");
    cr_expect_eq(c.parallel_migrations_per_cluster, 5);
}

Test(drain_kubevirt, every_field_read)
{
    drain_config_t c = from_cr(
        "\"evictionStrategy\":\"LiveMigrate\",\"migrations\":{\"parallelMigrationsPerCluster\":9,"
        "\"parallelOutboundMigrationsPerNode\":4,\"bandwidthPerMigration\":\"32Mi\","
        "\"completionTimeoutPerGiB\":120,\"progressTimeout\":60,\"nodeDrainTaintKey\":\"x.io/d\"}");
    cr_expect_eq(c.parallel_migrations_per_cluster, 9);
    cr_expect_eq(c.parallel_outbound_per_node, 4);
    cr_expect_eq(c.bandwidth_per_migration, 32LL << 20);
    cr_expect_eq(c.completion_timeout_per_gib, 120);
    cr_expect_eq(c.progress_timeout, 60);
    cr_expect_eq(c.eviction_strategy, KUBE_EVICTION_LIVE_MIGRATE);
    cr_expect_str_eq(c.kubevirt_taint_key, "x.io/d");
    cr_expect_str_eq(c.node_drain_taint_key, "kubevirt.io/drain", "KubeVirt's key is not ours");
    cr_expect_eq(c.set, DRAIN_CFG_GATES | DRAIN_CFG_PARALLEL | DRAIN_CFG_OUTBOUND |
                            DRAIN_CFG_BANDWIDTH | DRAIN_CFG_COMPLETION | DRAIN_CFG_PROGRESS |
                            DRAIN_CFG_EVICTION);
}

Test(drain_kubevirt, bad_values_are_named)
{
    expect_rejected("\"migrations\":{\"parallelOutboundMigrationsPerNode\":0}",
                    "parallelOutboundMigrationsPerNode: \"0\"");
    expect_rejected("\"migrations\":{\"progressTimeout\":0}", "progressTimeout");
    expect_rejected("\"migrations\":{\"nodeDrainTaintKey\":\"a b\"}", "nodeDrainTaintKey");
    expect_rejected("\"evictionStrategy\":\"Sometimes\"", "evictionStrategy");
}

Test(drain_kubevirt, the_configmap_wins_key_by_key)
{
    drain_config_t kv = from_cr("\"evictionStrategy\":\"LiveMigrate\",\"migrations\":{"
                                "\"parallelMigrationsPerCluster\":9,\"progressTimeout\":60}");
    drain_config_t cm, out;
    char err[256];
    cr_assert_eq(drain_config_parse(NULL, "parallelMigrationsPerCluster: 3\nretryBackoffSeconds: 7",
                                    &cm, err, sizeof(err)),
                 0, "%s", err);
    drain_kubevirt_merge(&kv, &cm, &out);
    cr_expect_eq(out.parallel_migrations_per_cluster, 3, "the ConfigMap's key");
    cr_expect_eq(out.progress_timeout, 60, "the CR's key where the ConfigMap has none");
    cr_expect_eq(out.eviction_strategy, KUBE_EVICTION_LIVE_MIGRATE);
    cr_expect_eq(out.retry_backoff_seconds, 7, "vmdrain's own keys come from the ConfigMap");
    cr_expect(out.live_migration_enabled, "no feature-gates in the ConfigMap: the CR's");
    cr_expect(out.kubevirt_seen);

    cr_assert_eq(drain_config_parse("Snapshot", NULL, &cm, err, sizeof(err)), 0, "%s", err);
    drain_kubevirt_merge(&kv, &cm, &out);
    cr_expect_not(out.live_migration_enabled, "feature-gates in the ConfigMap win");

    drain_kubevirt_merge(NULL, &cm, &out);
    cr_expect_not(out.kubevirt_seen);
    cr_expect_eq(out.progress_timeout, 150, "no CR: the defaults");
}

Test(drain_kubevirt, shared_taint_key)
{
    drain_config_t c = from_cr("");
    cr_expect(drain_kubevirt_shares_taint(&c), "both default to kubevirt.io/drain");
    snprintf(c.node_drain_taint_key, sizeof(c.node_drain_taint_key), "vmdrain.io/drain");
    cr_expect_not(drain_kubevirt_shares_taint(&c));
    drain_config_defaults(&c);
    cr_expect_not(drain_kubevirt_shares_taint(&c), "no CR read: nothing known");
}

Test(drain_kubevirt, retries_wait_at_least_kubevirts_backoff)
{
    drain_config_t c;
    drain_config_defaults(&c);
    c.retry_backoff_seconds = 2;
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 1, 1), 2.0, 1e-9, "no CR read");
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 3, 3), 8.0, 1e-9);
    c = from_cr("");
    c.retry_backoff_seconds = 2;
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 1, 1), 20.0, 1e-9, "KubeVirt holds it 20 s");
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 2, 2), 40.0, 1e-9);
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 1, 0), 2.0, 1e-9,
                       "after an abort KubeVirt has no Failed migration to count");
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 3, 1), 20.0, 1e-9, "two aborts, one failure");
    c.retry_backoff_seconds = 100;
    cr_expect_float_eq(drain_kubevirt_retry_wait(&c, 2, 2), 200.0, 1e-9, "the longer one wins");
}
