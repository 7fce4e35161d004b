/*
 * cmd/run — `vmdrain run`: the operator's main loop (see run.c).
 */
#ifndef VMDRAIN_CMD_RUN_H
#define VMDRAIN_CMD_RUN_H

#include "kube/config.h"

/* Parses the run flags in argv (argv[0] is "run"), runs until SIGTERM or
 * SIGINT and returns the process exit code. */
int cmd_run_main(kube_config_t *cfg, int argc, char **argv);

#endif
