/*
 * cmd/cluster — see cluster.h. Calls kube/kubeconfig and util/log; called
 * by main.c and the subcommands.
 */
#include "cmd/cluster.h"
#include "util/log.h"

#include <stdlib.h>

int cmd_cluster_load(cmd_cluster_t *c)
{
    char err[512];
    int rc;

    if (c->loaded)
        return 0;
    if (!c->kubeconfig && !getenv("KUBECONFIG") && getenv("KUBERNETES_SERVICE_HOST"))
        rc = kube_config_in_cluster(NULL, &c->cfg, err, sizeof(err));
    else
        rc = kube_config_load(c->kubeconfig, c->context, &c->cfg, err, sizeof(err));
    if (rc < 0) {
        log_error("cannot load the cluster configuration", "error", err);
        return -1;
    }
    c->loaded = true;
    log_debug("cluster configuration loaded", "source", c->cfg.source, "server", c->cfg.server);
    return 0;
}

void cmd_cluster_free(cmd_cluster_t *c)
{
    if (c->loaded)
        kube_config_free(&c->cfg);
    c->loaded = false;
}
