#include <criterion/criterion.h>

#include "drain/config.h"

#include <stdio.h>
#include <string.h>

static drain_config_t parse_ok(const char *gates, const char *yaml)
{
    drain_config_t c;
    char err[256] = "";
    cr_assert_eq(drain_config_parse(gates, yaml, &c, err, sizeof(err)), 0, "rejected: %s", err);
    return c;
}

/* Asserts rejection with a message containing every given piece, and that
 * the output was left alone. */
static void expect_error(const char *yaml, const char *piece1, const char *piece2)
{
    drain_config_t c;
    memset(&c, 0x5a, sizeof(c));
    char err[256] = "";
    cr_assert_eq(drain_config_parse("LiveMigration", yaml, &c, err, sizeof(err)), -1,
                 "accepted: %s", yaml);
    cr_expect_not_null(strstr(err, piece1), "error \"%s\" lacks \"%s\"", err, piece1);
    if (piece2)
        cr_expect_not_null(strstr(err, piece2), "error \"%s\" lacks \"%s\"", err, piece2);
    cr_expect_eq(c.parallel_migrations_per_cluster, 0x5a5a5a5a, "output changed on error");
}

Test(drain_config, defaults_are_the_seeds)
{
    drain_config_t c = parse_ok(NULL, NULL);
    cr_expect_not(c.live_migration_enabled, "no gate, no migrations");
    cr_expect_eq(c.parallel_migrations_per_cluster, 5);
    cr_expect_eq(c.parallel_outbound_per_node, 2);
    cr_expect_eq(c.bandwidth_per_migration, 64LL << 20);
    cr_expect_eq(c.completion_timeout_per_gib, 800);
    cr_expect_eq(c.progress_timeout, 150);
    cr_expect_str_eq(c.node_drain_taint_key, "kubevirt.io/drain");
    cr_expect_eq(c.eviction_strategy, KUBE_EVICTION_NONE);
    cr_expect_eq(c.max_migration_attempts, 3);
    cr_expect_eq(c.retry_backoff_seconds, 20);
    cr_expect_eq(c.uncordon_policy, UNCORDON_ON_TAINT_REMOVAL);
}

Test(drain_config, feature_gate_list)
{
    cr_expect(parse_ok("LiveMigration", "").live_migration_enabled);
    cr_expect(parse_ok("DataVolumes, LiveMigration", NULL).live_migration_enabled);
    cr_expect(parse_ok("LiveMigration,DataVolumes", NULL).live_migration_enabled);
    cr_expect_not(parse_ok("DataVolumes", NULL).live_migration_enabled);
    cr_expect_not(parse_ok("LiveMigrationX,XLiveMigration", NULL).live_migration_enabled);
    cr_expect_not(parse_ok("", NULL).live_migration_enabled);
}

Test(drain_config, a_full_block_and_every_key)
{
    drain_config_t c = parse_ok("LiveMigration", "parallelMigrationsPerCluster: 7\n"
                                                 "parallelOutboundMigrationsPerNode: 3\n"
                                                 "bandwidthPerMigration: 128Mi\n"
                                                 "completionTimeoutPerGiB: 600\n"
                                                 "progressTimeout: \"90\"\n"
                                                 "nodeDrainTaintKey: example.com/maintenance\n"
                                                 "evictionStrategy: LiveMigrate\n"
                                                 "maxMigrationAttempts: 5\n"
                                                 "retryBackoffSeconds: 0\n"
                                                 "uncordonPolicy: OnCompletion\n"
                                                 "allowPostCopy: false\n");
    cr_expect_eq(c.parallel_migrations_per_cluster, 7);
    cr_expect_eq(c.parallel_outbound_per_node, 3);
    cr_expect_eq(c.bandwidth_per_migration, 128LL << 20);
    cr_expect_eq(c.completion_timeout_per_gib, 600);
    cr_expect_eq(c.progress_timeout, 90);
    cr_expect_str_eq(c.node_drain_taint_key, "example.com/maintenance");
    cr_expect_eq(c.eviction_strategy, KUBE_EVICTION_LIVE_MIGRATE);
    cr_expect_eq(c.max_migration_attempts, 5);
    cr_expect_eq(c.retry_backoff_seconds, 0);
    cr_expect_eq(c.uncordon_policy, UNCORDON_ON_COMPLETION);
}

Test(drain_config, rejects_bad_values_naming_key_and_value)
{
    expect_error("parallelMigrationsPerCluster: five", "parallelMigrationsPerCluster", "\"five\"");
    expect_error("parallelMigrationsPerCluster: 0", "parallelMigrationsPerCluster", "\"0\"");
    expect_error("parallelOutboundMigrationsPerNode: -1", "parallelOutboundMigrationsPerNode",
                 "\"-1\"");
    expect_error("progressTimeout: 1.5", "progressTimeout", "\"1.5\"");
    expect_error("completionTimeoutPerGiB: 99999999999", "completionTimeoutPerGiB", NULL);
    expect_error("bandwidthPerMigration: 64Mb", "bandwidthPerMigration", "\"64Mb\"");
    expect_error("bandwidthPerMigration: -1Mi", "bandwidthPerMigration", "negative");
    expect_error("evictionStrategy: Migrate", "evictionStrategy", "\"Migrate\"");
    expect_error("uncordonPolicy: Never", "uncordonPolicy", "\"Never\"");
    expect_error("nodeDrainTaintKey: \"bad key\"", "nodeDrainTaintKey", "\"bad key\"");
    expect_error("paralelMigrationsPerCluster: 5", "unknown key", "paralelMigrationsPerCluster");
}

Test(drain_config, rejects_bad_shapes)
{
    expect_error("- a\n- b\n", "want a mapping", NULL);
    expect_error("progressTimeout: [1, 2]", "progressTimeout", "single value");
    expect_error("progressTimeout: {a: 1}", "progressTimeout", "single value");
    expect_error("progressTimeout: 150\n  bad: indent", "line 2", NULL);
    expect_error("a: b: c", "line 1", NULL);
    expect_error("? [x]\n: 1\n", "key is not a string", NULL);
}

Test(drain_config, one_bad_key_rejects_the_whole_block)
{
    drain_config_t c;
    drain_config_defaults(&c);
    c.parallel_migrations_per_cluster = 9;
    char err[256];
    cr_expect_eq(drain_config_parse("LiveMigration",
                                    "parallelMigrationsPerCluster: 3\nprogressTimeout: x\n", &c,
                                    err, sizeof(err)),
                 -1);
    cr_expect_eq(c.parallel_migrations_per_cluster, 9, "last good configuration stays");
}

Test(drain_config, oversized_block_is_refused)
{
    static char big[DRAIN_CONFIG_MAX_YAML + 16];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_error(big, "bytes, more than", NULL);
}

Test(drain_config, strategy_names_round_trip)
{
    static const char *const names[] = {"None", "LiveMigrate", "LiveMigrateIfPossible", "External"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char yaml[64], want[64], got[512];
        snprintf(yaml, sizeof(yaml), "evictionStrategy: %s\n", names[i]);
        snprintf(want, sizeof(want), "evictionStrategy=%s ", names[i]);
        drain_config_t c = parse_ok("LiveMigration", yaml);
        cr_expect_gt(drain_config_describe(&c, got, sizeof(got)), 0);
        cr_expect_not_null(strstr(got, want), "%s: got %s", names[i], got);
    }
    expect_error("evictionStrategy: livemigrate", "evictionStrategy", "\"livemigrate\"");
    expect_error("evictionStrategy: Other", "evictionStrategy", "\"Other\"");
    expect_error("evictionStrategy: \"\"", "evictionStrategy", NULL);
    char line[512];
    drain_config_t c = parse_ok("LiveMigration", NULL);
    cr_expect_gt(drain_config_describe(&c, line, sizeof(line)), 0);
    cr_expect_not_null(strstr(line, "parallelMigrationsPerCluster=5"), "got: %s", line);
}

Test(drain_config, evacuate_external_is_off_by_default_and_a_checked_switch)
{
    cr_expect_not(parse_ok("LiveMigration", NULL).evacuate_external);
    cr_expect(parse_ok("LiveMigration", "evacuateExternal: true").evacuate_external);
    cr_expect_not(parse_ok("LiveMigration", "evacuateExternal: false").evacuate_external);
    expect_error("evacuateExternal: yes", "evacuateExternal", "\"yes\" is not true or false");
}
