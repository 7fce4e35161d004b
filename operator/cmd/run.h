/*
 * cmd/run — `vmdrain run`: the operator's main loop (see run.c).
 */
#ifndef VMDRAIN_CMD_RUN_H
#define VMDRAIN_CMD_RUN_H

#include "cmd/cluster.h"

/* Parses the run flags in argv (argv[0] is "run"), runs until SIGTERM or
 * SIGINT and returns the process exit code. The cluster configuration is loaded
 * once the flags are good. */
int cmd_run_main(cmd_cluster_t *cluster, int argc, char **argv);

#endif
