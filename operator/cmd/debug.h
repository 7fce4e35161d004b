/*
 * debug — `vmdrain debug list|watch RESOURCE`: what the informers see,
 * printed one line per event, to diagnose a cluster (and to let the
 * end-to-end tests compare vmdrain's cache with the server's state).
 */
#ifndef VMDRAIN_CMD_DEBUG_H
#define VMDRAIN_CMD_DEBUG_H

#include "kube/config.h"

/* Runs the debug subcommand in argv[0] ("list" or "watch") with cfg.
 * Returns the process exit code. */
int cmd_debug_main(kube_config_t *cfg, int argc, char **argv);

#endif
