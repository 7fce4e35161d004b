/*
 * debug — `vmdrain debug list|watch RESOURCE`: what the informers see,
 * printed one line per event, to diagnose a cluster (and to let the
 * end-to-end tests compare vmdrain's cache with the server's state).
 */
#ifndef VMDRAIN_CMD_DEBUG_H
#define VMDRAIN_CMD_DEBUG_H

#include "cmd/cluster.h"

/* Runs the debug subcommand in argv[0] ("list" or "watch") once its
 * arguments are good. Returns the process exit code. */
int cmd_debug_main(cmd_cluster_t *cluster, int argc, char **argv);

#endif
