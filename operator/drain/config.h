/*
 * drain/config — the migration settings, in the ConfigMap format of
 * KubeVirt's kubevirt-config (docs/architecture.md, "Configuration").
 *
 *   data:
 *     feature-gates: "DataVolumes,LiveMigration"
 *     migrations: |-
 *       parallelMigrationsPerCluster: 5
 *       parallelOutboundMigrationsPerNode: 2
 *       ...
 *
 * Parsing is all-or-nothing: a configuration with one bad key or value is
 * rejected whole, with a message naming the key and the value, so that the
 * caller can keep the last good one in force.
 */
#ifndef VMDRAIN_DRAIN_CONFIG_H
#define VMDRAIN_DRAIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/objects.h"

/* Largest migrations block accepted. */
#define DRAIN_CONFIG_MAX_YAML (64 * 1024)
/* Longest taint key (a qualified name: 253 prefix + '/' + 63 name). */
#define DRAIN_TAINT_KEY_MAX 317

typedef enum uncordon_policy {
    UNCORDON_ON_TAINT_REMOVAL,
    UNCORDON_ON_COMPLETION,
} uncordon_policy_t;

/* The keys a source may leave to another (drain_config_merge): one bit
 * each in drain_config_t.set. */
enum {
    DRAIN_CFG_GATES = 1u << 0,
    DRAIN_CFG_PARALLEL = 1u << 1,
    DRAIN_CFG_OUTBOUND = 1u << 2,
    DRAIN_CFG_BANDWIDTH = 1u << 3,
    DRAIN_CFG_COMPLETION = 1u << 4,
    DRAIN_CFG_PROGRESS = 1u << 5,
    DRAIN_CFG_EVICTION = 1u << 6,
};

typedef struct drain_config {
    bool live_migration_enabled; /* "LiveMigration" in feature-gates */
    int parallel_migrations_per_cluster;
    int parallel_outbound_per_node;
    int64_t bandwidth_per_migration; /* bytes per second; 0 means unlimited */
    int completion_timeout_per_gib;  /* seconds */
    int progress_timeout;            /* seconds */
    char node_drain_taint_key[DRAIN_TAINT_KEY_MAX + 1];
    /* the cluster default: NONE, LIVE_MIGRATE, LIVE_MIGRATE_IF_POSSIBLE or
     * EXTERNAL, never UNSET or OTHER */
    kube_eviction_strategy_t eviction_strategy;
    int max_migration_attempts;
    int retry_backoff_seconds;
    uncordon_policy_t uncordon_policy;
    /* evacuateExternal: vmdrain live-migrates VMIs whose strategy is
     * External (the hand-off KubeVirt offers: its own controllers leave
     * them alone) instead of leaving them to another component */
    bool evacuate_external;
    /* DRAIN_CFG_* bits of the keys its source set (the rest are defaults) */
    unsigned set;
    /* KubeVirt's own configuration (drain/kubevirt.h): whether the KubeVirt
     * CR was read, and the taint its evacuation controller acts on */
    bool kubevirt_seen;
    char kubevirt_taint_key[DRAIN_TAINT_KEY_MAX + 1];
} drain_config_t;

/* The defaults (docs/architecture.md, "Configuration"). */
void drain_config_defaults(drain_config_t *c);

/* Parses the two ConfigMap values (either may be NULL: absent) into out,
 * starting from the defaults. Returns 0, or -1 with a message naming the
 * key and the value in err; out is then left untouched. */
int drain_config_parse(const char *feature_gates, const char *migrations, drain_config_t *out,
                       char *err, size_t errlen);

/* Applies one key of the migrations block (the same rules for every
 * source): 0, or -1 with a message naming the key and the value. */
int drain_config_apply_key(drain_config_t *c, const char *key, const char *value, char *err,
                           size_t errlen);

/* Whether s is a valid taint key (a qualified name of at most
 * DRAIN_TAINT_KEY_MAX bytes). */
bool drain_config_valid_taint_key(const char *s);

/* One line describing c, for the log. */
int drain_config_describe(const drain_config_t *c, char *out, size_t outlen);

#endif
