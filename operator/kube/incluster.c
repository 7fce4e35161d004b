/*
 * incluster — the configuration of a pod: the apiserver from
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, the service
 * account's rotating token and CA bundle from their directory.
 *
 * Owns nothing beyond the kube_config_t it fills. Calls kubeconfig_io.c,
 * util/log and util/strutil; called by the composition root.
 */
#include "kube/kubeconfig_int.h"
#include "util/log.h"
#include "util/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True for a host name or an IP address (IPv6 with an optional zone). */
static bool host_ok(const char *h)
{
    if (!*h)
        return false;
    for (; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr(".-:%", *h))
            return false;
    return true;
}

static bool port_ok(const char *s)
{
    char *end;
    long v;

    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    return errno == 0 && *end == '\0' && v >= 1 && v <= 65535;
}

/* Sets c->server from the service environment Kubernetes gives every pod.
 * Returns 0 or -1 with a message. */
static int in_cluster_server(kube_config_t *c, char *err, size_t errlen)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    int n;

    if (!host || !*host || !port || !*port) {
        util_set_err(err, errlen, "in-cluster: %s is not set",
                     (!host || !*host) ? "KUBERNETES_SERVICE_HOST" : "KUBERNETES_SERVICE_PORT");
        return -1;
    }
    if (!host_ok(host)) {
        util_set_err(err, errlen,
                     "in-cluster: KUBERNETES_SERVICE_HOST: not a host name or address: \"%.64s\"",
                     host);
        return -1;
    }
    if (!port_ok(port)) {
        util_set_err(err, errlen,
                     "in-cluster: KUBERNETES_SERVICE_PORT: not a port number: \"%.16s\"", port);
        return -1;
    }
    if (strchr(host, ':'))
        n = asprintf(&c->server, "https://[%s]:%s", host, port);
    else
        n = asprintf(&c->server, "https://%s:%s", host, port);
    if (n < 0) {
        c->server = NULL;
        util_set_err(err, errlen, "in-cluster: out of memory");
        return -1;
    }
    return 0;
}

/* Reads dir/ca.crt into c. A missing file is allowed (the system store is
 * used then, with a warning, as client-go does); an unreadable or non-PEM
 * one is an error. Returns 0 or -1. */
static int in_cluster_ca(const char *dir, kube_config_t *c, char *err, size_t errlen)
{
    char why[KC_WHY_MAX], *path = kube__kc_resolve_path(dir, "ca.crt");
    int rc = 0;

    if (!path) {
        util_set_err(err, errlen, "in-cluster: out of memory");
        return -1;
    }
    if (kube__kc_read_file(path, KUBE_CONFIG_MAX_REF, &c->ca_pem, &c->ca_pem_len, why,
                           sizeof(why)) < 0) {
        if (errno == ENOENT) {
            log_warn("in-cluster CA bundle missing, using the system store", "path", path);
        } else {
            util_set_err(err, errlen, "in-cluster: %s: %s", path, why);
            rc = -1;
        }
    } else if (!kube__kc_looks_like_pem(c->ca_pem, c->ca_pem_len)) {
        util_set_err(err, errlen, "in-cluster: %s: not PEM data (no -----BEGIN line)", path);
        rc = -1;
    }
    free(path);
    return rc;
}

int kube_config_in_cluster(const char *dir, kube_config_t *out, char *err, size_t errlen)
{
    kube_config_t c = {0};
    char why[KC_WHY_MAX];

    memset(out, 0, sizeof(*out));
    util_set_err(err, errlen, "%s", "");
    if (!dir || !*dir)
        dir = KC_DEFAULT_SA_DIR;
    if (in_cluster_server(&c, err, errlen) < 0)
        goto out_fail;
    c.source = strdup("in-cluster");
    c.token_file = kube__kc_resolve_path(dir, "token");
    if (!c.source || !c.token_file) {
        util_set_err(err, errlen, "in-cluster: out of memory");
        goto out_fail;
    }
    if (kube__kc_read_token(c.token_file, &c.token, why, sizeof(why)) < 0) {
        util_set_err(err, errlen, "in-cluster: %s: %s", c.token_file, why);
        goto out_fail;
    }
    log_add_secret(c.token);
    if (in_cluster_ca(dir, &c, err, errlen) < 0)
        goto out_fail;
    *out = c;
    return 0;
out_fail:
    kube_config_free(&c);
    return -1;
}
