/*
 * cmd/check — `vmdrain check`: the chart's `helm test` hook. Asks a running
 * vmdrain's /readyz and sends a dry-run Eviction through the API server to
 * see that vmdrain's webhook answers.
 *
 * Part of the composition root.
 */
#ifndef VMDRAIN_CMD_CHECK_H
#define VMDRAIN_CMD_CHECK_H

#include "cmd/cluster.h"

/* Runs `vmdrain check ARGS` (argv[0] is "check"). Returns the exit code:
 * 0 every check passed, 1 one failed, 2 a usage error. */
int cmd_check_main(cmd_cluster_t *cluster, int argc, char **argv);

#endif
