/*
 * cmd/cluster — see cluster.h. Calls kube/kubeconfig and util/log; called
 * by main.c, the subcommands and the kubectl plugin.
 */
#include "cmd/cluster.h"
#include "util/num.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_cluster_load_err(cmd_cluster_t *c, char *err, size_t errlen)
{
    int rc;

    if (c->loaded)
        return 0;
    if (!c->kubeconfig && !getenv("KUBECONFIG") && getenv("KUBERNETES_SERVICE_HOST"))
        rc = kube_config_in_cluster(NULL, &c->cfg, err, errlen);
    else
        rc = kube_config_load(c->kubeconfig, c->context, &c->cfg, err, errlen);
    if (rc < 0)
        return -1;
    c->loaded = true;
    log_debug("cluster configuration loaded", "source", c->cfg.source, "server", c->cfg.server);
    return 0;
}

int cmd_cluster_load(cmd_cluster_t *c)
{
    char err[512];

    if (cmd_cluster_load_err(c, err, sizeof(err)) < 0) {
        log_error("cannot load the cluster configuration", "error", err);
        return -1;
    }
    return 0;
}

void cmd_cluster_free(cmd_cluster_t *c)
{
    if (c->loaded)
        kube_config_free(&c->cfg);
    c->loaded = false;
}

int cmd_parse_bool_flag(const char *flag, const char *arg, bool *out)
{
    if (!arg || strcmp(arg, "true") == 0) {
        *out = true;
    } else if (strcmp(arg, "false") == 0) {
        *out = false;
    } else {
        fprintf(stderr, "vmdrain: %s wants true or false, not '%s'\n", flag, arg);
        return -1;
    }
    return 0;
}

int cmd_parse_initial_list(const char *arg, informer_initial_t *out)
{
    if (informer_initial_parse(arg, out) < 0) {
        fprintf(stderr, "vmdrain: --initial-list wants auto, cache or paged, not '%s'\n", arg);
        return -1;
    }
    return 0;
}

int cmd_parse_duration_flag(const char *flag, const char *arg, bool zero_ok, double *out)
{
    double v;
    if (num_parse_duration(arg, &v) < 0 || v < 0 || (v == 0 && !zero_ok)) {
        fprintf(stderr, "vmdrain: %s wants a duration such as 30s, not '%s'\n", flag, arg);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_parse_object_ref(const char *flag, const char *arg, char *ns, char *name)
{
    const size_t max = CMD_REF_MAX;
    const char *slash = strchr(arg, '/');
    if (!slash || slash == arg || !slash[1] || strchr(slash + 1, '/') ||
        (size_t)(slash - arg) >= max || strlen(slash + 1) >= max) {
        fprintf(stderr, "vmdrain: %s wants NAMESPACE/NAME, not '%s'\n", flag, arg);
        return -1;
    }
    memcpy(ns, arg, (size_t)(slash - arg));
    ns[slash - arg] = '\0';
    snprintf(name, max, "%s", slash + 1);
    return 0;
}
