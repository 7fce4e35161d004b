/*
 * cmd/cluster — where the subcommands find the cluster: the global
 * --kubeconfig and --context, loaded only once a subcommand has checked its
 * own flags, so that a bad flag is reported before a missing kubeconfig.
 */
#ifndef VMDRAIN_CMD_CLUSTER_H
#define VMDRAIN_CMD_CLUSTER_H

#include "kube/config.h"
#include "kube/informer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cmd_cluster {
    const char *kubeconfig; /* --kubeconfig, or NULL */
    const char *context;    /* --context, or NULL */
    kube_config_t cfg;      /* valid after cmd_cluster_load() returned 0 */
    bool loaded;
} cmd_cluster_t;

/* Loads the configuration: --kubeconfig, else $KUBECONFIG or
 * ~/.kube/config, else (in a pod, with neither) the service account.
 * Returns 0, or -1 with the reason logged. */
int cmd_cluster_load(cmd_cluster_t *c);

/* The same, the reason in err (errlen bytes) instead of the log. */
int cmd_cluster_load_err(cmd_cluster_t *c, char *err, size_t errlen);

/* The size of each half of a NAMESPACE/NAME flag's value. */
#define CMD_REF_MAX 254

/* Parses flag's NAMESPACE/NAME into ns and name (CMD_REF_MAX bytes each).
 * Returns 0 or -1 (message printed). */
int cmd_parse_object_ref(const char *flag, const char *arg, char *ns, char *name);

/* Parses a boolean flag's optional value: none or "true" is true,
 * "false" false. Returns 0, or -1 with a message printed that names
 * flag. */
int cmd_parse_bool_flag(const char *flag, const char *arg, bool *out);

/* Parses a duration flag's value ("30s", "1.5m": util/num) into *out
 * seconds, more than 0 unless zero_ok. Returns 0, or -1 with a message
 * printed that names flag. */
int cmd_parse_duration_flag(const char *flag, const char *arg, bool zero_ok, double *out);

/* --initial-list: how the informers load the whole state ("auto",
 * "cache", "paged"). Returns 0, or -1 with a message printed. */
int cmd_parse_initial_list(const char *arg, informer_initial_t *out);

#define CMD_INITIAL_LIST_USAGE                                                                     \
    "  --initial-list MODE      how each resource's whole state is loaded: auto (default:\n"       \
    "                           streamed by a WATCH, else a LIST from the apiserver's\n"           \
    "                           watch cache), cache (that LIST only) or paged (LISTs\n"            \
    "                           read from etcd in pages)\n"

/* Frees what cmd_cluster_load() loaded. */
void cmd_cluster_free(cmd_cluster_t *c);

#endif
