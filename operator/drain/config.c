/*
 * drain/config — see config.h: the ConfigMap's feature-gates and migrations
 * block, parsed all or nothing, and the rules of every key. Calls libyaml, util/quantity and
 * kube/objects (the strategy names); called by drain/controller.c and the
 * fuzz driver.
 */
#include "drain/config.h"
#include "util/quantity.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Keys of KubeVirt's migrations configuration that vmdrain does not use but
 * must accept, so that pointing --config at kubevirt/kubevirt-config works. */
static const char *const kubevirt_only_keys[] = {
    "allowAutoConverge", "allowPostCopy", "allowWorkloadDisruption",      "unsafeMigrationOverride",
    "disableTLS",        "network",       "matchSELinuxLevelOnMigration", "bandwidthPerNode",
};

void drain_config_defaults(drain_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->live_migration_enabled = false;
    c->parallel_migrations_per_cluster = 5;
    c->parallel_outbound_per_node = 2;
    c->bandwidth_per_migration = 64LL << 20;
    c->completion_timeout_per_gib = 800;
    c->progress_timeout = 150;
    snprintf(c->node_drain_taint_key, sizeof(c->node_drain_taint_key), "kubevirt.io/drain");
    c->eviction_strategy = KUBE_EVICTION_NONE;
    c->max_migration_attempts = 3;
    c->retry_backoff_seconds = 20;
    c->uncordon_policy = UNCORDON_ON_TAINT_REMOVAL;
}

/* True when the comma-separated gate list names LiveMigration. */
static bool has_live_migration_gate(const char *gates)
{
    static const char gate[] = "LiveMigration";
    const size_t n = sizeof(gate) - 1;

    for (const char *p = gates; p && *p;) {
        p += strspn(p, " \t\n,");
        size_t len = strcspn(p, ","), trimmed = len;
        while (trimmed > 0 && strchr(" \t\n", p[trimmed - 1]))
            trimmed--;
        if (trimmed == n && strncmp(p, gate, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Parses a whole number in [min, max]. */
static int parse_int(const char *key, const char *v, int min, int max, int *out, char *err,
                     size_t errlen)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max) {
        snprintf(err, errlen, "migrations: %s: \"%.64s\" is not a whole number in %d..%d", key, v,
                 min, max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

bool drain_config_valid_taint_key(const char *v)
{
    size_t n = strlen(v);
    return n > 0 && n <= DRAIN_TAINT_KEY_MAX &&
           strspn(v, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-_./") == n;
}

/* The DRAIN_CFG_* bit of a key that another source may set instead. */
static unsigned key_bit(const char *key)
{
    static const struct {
        const char *key;
        unsigned bit;
    } bits[] = {
        {"parallelMigrationsPerCluster", DRAIN_CFG_PARALLEL},
        {"parallelOutboundMigrationsPerNode", DRAIN_CFG_OUTBOUND},
        {"bandwidthPerMigration", DRAIN_CFG_BANDWIDTH},
        {"completionTimeoutPerGiB", DRAIN_CFG_COMPLETION},
        {"progressTimeout", DRAIN_CFG_PROGRESS},
        {"evictionStrategy", DRAIN_CFG_EVICTION},
    };
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
        if (strcmp(key, bits[i].key) == 0)
            return bits[i].bit;
    return 0;
}

/* Applies one key of the migrations block to c. */
static int apply_key(drain_config_t *c, const char *key, const char *v, char *err, size_t errlen)
{
    if (strcmp(key, "parallelMigrationsPerCluster") == 0)
        return parse_int(key, v, 1, 10000, &c->parallel_migrations_per_cluster, err, errlen);
    if (strcmp(key, "parallelOutboundMigrationsPerNode") == 0)
        return parse_int(key, v, 1, 10000, &c->parallel_outbound_per_node, err, errlen);
    if (strcmp(key, "completionTimeoutPerGiB") == 0)
        return parse_int(key, v, 1, INT_MAX, &c->completion_timeout_per_gib, err, errlen);
    if (strcmp(key, "progressTimeout") == 0)
        return parse_int(key, v, 1, INT_MAX, &c->progress_timeout, err, errlen);
    if (strcmp(key, "maxMigrationAttempts") == 0)
        return parse_int(key, v, 1, 1000, &c->max_migration_attempts, err, errlen);
    if (strcmp(key, "retryBackoffSeconds") == 0)
        return parse_int(key, v, 0, 86400, &c->retry_backoff_seconds, err, errlen);
    if (strcmp(key, "bandwidthPerMigration") == 0) {
        char qerr[160];
        if (quantity_parse(v, 0, &c->bandwidth_per_migration, qerr, sizeof(qerr)) < 0) {
            snprintf(err, errlen, "migrations: %s: %s", key, qerr);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "nodeDrainTaintKey") == 0) {
        if (!drain_config_valid_taint_key(v)) {
            snprintf(err, errlen, "migrations: %s: \"%.64s\" is not a valid taint key", key, v);
            return -1;
        }
        snprintf(c->node_drain_taint_key, sizeof(c->node_drain_taint_key), "%s", v);
        return 0;
    }
    if (strcmp(key, "evictionStrategy") == 0) {
        kube_eviction_strategy_t s = kube_eviction_strategy_parse(v, strlen(v));
        if (s == KUBE_EVICTION_UNSET || s == KUBE_EVICTION_OTHER) {
            snprintf(err, errlen,
                     "migrations: %s: \"%.64s\" is not one of None, LiveMigrate, "
                     "LiveMigrateIfPossible, External",
                     key, v);
            return -1;
        }
        c->eviction_strategy = s;
        return 0;
    }
    if (strcmp(key, "evacuateExternal") == 0) {
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            snprintf(err, errlen, "migrations: %s: \"%.64s\" is not true or false", key, v);
            return -1;
        }
        c->evacuate_external = strcmp(v, "true") == 0;
        return 0;
    }
    if (strcmp(key, "uncordonPolicy") == 0) {
        if (strcmp(v, "OnTaintRemoval") == 0)
            c->uncordon_policy = UNCORDON_ON_TAINT_REMOVAL;
        else if (strcmp(v, "OnCompletion") == 0)
            c->uncordon_policy = UNCORDON_ON_COMPLETION;
        else {
            snprintf(err, errlen,
                     "migrations: %s: \"%.64s\" is not one of OnTaintRemoval, OnCompletion", key,
                     v);
            return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(kubevirt_only_keys) / sizeof(kubevirt_only_keys[0]); i++)
        if (strcmp(key, kubevirt_only_keys[i]) == 0)
            return 0;
    snprintf(err, errlen, "migrations: unknown key \"%.64s\"", key);
    return -1;
}

int drain_config_apply_key(drain_config_t *c, const char *key, const char *value, char *err,
                           size_t errlen)
{
    if (apply_key(c, key, value, err, errlen) < 0)
        return -1;
    c->set |= key_bit(key);
    return 0;
}

/* Walks the root mapping of the migrations document. */
static int apply_document(drain_config_t *c, yaml_document_t *doc, char *err, size_t errlen)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);

    if (!root)
        return 0; /* empty block: defaults */
    if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)
        return 0;
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "migrations: want a mapping of key: value, line %lu",
                 (unsigned long)root->start_mark.line + 1);
        return -1;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || k->type != YAML_SCALAR_NODE) {
            snprintf(err, errlen, "migrations: line %lu: key is not a string",
                     (unsigned long)(k ? k->start_mark.line + 1 : 0));
            return -1;
        }
        const char *key = (const char *)k->data.scalar.value;
        if (!v || v->type != YAML_SCALAR_NODE) {
            snprintf(err, errlen, "migrations: %.64s: line %lu: want a single value", key,
                     (unsigned long)(v ? v->start_mark.line + 1 : 0));
            return -1;
        }
        if (strlen((const char *)v->data.scalar.value) != v->data.scalar.length) {
            snprintf(err, errlen, "migrations: %.64s: value contains a NUL byte", key);
            return -1;
        }
        if (drain_config_apply_key(c, key, (const char *)v->data.scalar.value, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int drain_config_parse(const char *feature_gates, const char *migrations, drain_config_t *out,
                       char *err, size_t errlen)
{
    drain_config_t c;
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;

    drain_config_defaults(&c);
    c.live_migration_enabled = has_live_migration_gate(feature_gates);
    if (feature_gates)
        c.set |= DRAIN_CFG_GATES;
    if (!migrations || !*migrations)
        goto out_ok;
    size_t len = strlen(migrations);
    if (len > DRAIN_CONFIG_MAX_YAML) {
        snprintf(err, errlen, "migrations: %zu bytes, more than the %d allowed", len,
                 DRAIN_CONFIG_MAX_YAML);
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "migrations: out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)migrations, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "migrations: line %lu column %lu: %s",
                 (unsigned long)parser.problem_mark.line + 1,
                 (unsigned long)parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "invalid YAML");
        goto out_parser;
    }
    rc = apply_document(&c, &doc, err, errlen);
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&parser);
    if (rc < 0)
        return -1;
out_ok:
    *out = c;
    return 0;
}

int drain_config_describe(const drain_config_t *c, char *out, size_t outlen)
{
    return snprintf(
        out, outlen,
        "liveMigration=%s parallelMigrationsPerCluster=%d "
        "parallelOutboundMigrationsPerNode=%d bandwidthPerMigration=%lld "
        "completionTimeoutPerGiB=%d progressTimeout=%d nodeDrainTaintKey=%s "
        "evictionStrategy=%s maxMigrationAttempts=%d retryBackoffSeconds=%d "
        "uncordonPolicy=%s evacuateExternal=%s",
        c->live_migration_enabled ? "enabled" : "disabled", c->parallel_migrations_per_cluster,
        c->parallel_outbound_per_node, (long long)c->bandwidth_per_migration,
        c->completion_timeout_per_gib, c->progress_timeout, c->node_drain_taint_key,
        kube_eviction_strategy_name(c->eviction_strategy), c->max_migration_attempts,
        c->retry_backoff_seconds,
        c->uncordon_policy == UNCORDON_ON_COMPLETION ? "OnCompletion" : "OnTaintRemoval",
        c->evacuate_external ? "true" : "false");
}
