/*
 * Fuzz driver for the migrations configuration: the input is split at the
 * first newline into feature-gates and the migrations YAML block. Anything
 * accepted must be within the documented ranges.
 */
#include "drain/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char err[256];
    drain_config_t c;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *nl = strchr(s, '\n');
    const char *yaml = "";
    if (nl) {
        *nl = '\0';
        yaml = nl + 1;
    }
    if (drain_config_parse(s, yaml, &c, err, sizeof(err)) == 0) {
        if (c.parallel_migrations_per_cluster < 1 || c.parallel_outbound_per_node < 1 ||
            c.bandwidth_per_migration < 0 || c.max_migration_attempts < 1 ||
            !c.node_drain_taint_key[0])
            abort();
    } else if (!err[0]) {
        abort();
    }
    free(s);
    return 0;
}
