/*
 * execcred — kubeconfig exec credential plugins
 * (client.authentication.k8s.io/v1 and v1beta1 ExecCredential), run as
 * kubectl runs them: the plugin's configuration, the KUBERNETES_EXEC_INFO
 * document handed to it, the run itself (no shell, stdin /dev/null, stdout
 * captured, stderr logged, a hard timeout) and the parser of what it
 * prints.
 *
 * The configuration is read from the kubeconfig by kubeconfig.c; the
 * credential is cached in the kube_config_t and refreshed by
 * kubeconfig_io.c (kube_config_exec_refresh()), which the HTTP layer calls
 * before a credential expires and after a 401.
 */
#ifndef VMDRAIN_KUBE_EXECCRED_H
#define VMDRAIN_KUBE_EXECCRED_H

#include "util/timefmt.h"

#include <stdbool.h>
#include <stddef.h>

#define KUBE_EXEC_API_V1      "client.authentication.k8s.io/v1"
#define KUBE_EXEC_API_V1BETA1 "client.authentication.k8s.io/v1beta1"

#define KUBE_EXEC_MAX_ARGS   64         /* entries of exec.args */
#define KUBE_EXEC_MAX_ENV    64         /* entries of exec.env */
#define KUBE_EXEC_MAX_STR    4096       /* bytes of any string of exec */
#define KUBE_EXEC_MAX_OUTPUT (1u << 20) /* bytes the plugin may print on stdout */
#define KUBE_EXEC_MAX_STDERR 4096       /* bytes of its stderr that are logged */
#define KUBE_EXEC_TIMEOUT    30.0       /* seconds before the plugin is killed */
#define KUBE_EXEC_MARGIN     10.0       /* refresh when fewer seconds remain */
#define KUBE_EXEC_RETRY_GAP  5.0        /* seconds between runs after a failure */
#define KUBE_EXEC_MIN_GAP    1.0        /* seconds between two runs, at least */
#define KUBE_EXEC_MAX_TOKEN  (64u << 10)

/* One entry of exec.env. */
typedef struct kube_exec_env {
    char *name;
    char *value;
} kube_exec_env_t;

/* The plugin of a kubeconfig user, and the state of its cached credential. */
typedef struct kube_exec {
    char *user;        /* the kubeconfig user, for messages */
    char *api_version; /* KUBE_EXEC_API_V1 or KUBE_EXEC_API_V1BETA1 */
    char *command;     /* as written in the kubeconfig, for messages */
    char *path;        /* what is run: a bare name (searched in PATH) or a path */
    char **args;       /* nargs strings */
    size_t nargs;
    kube_exec_env_t *env; /* nenv entries */
    size_t nenv;
    char *install_hint; /* or NULL */
    bool provide_cluster_info;
    double timeout; /* seconds (KUBE_EXEC_TIMEOUT; tests shorten it) */
    /* the cached credential (the token, certificate and key are the
     * kube_config_t's) */
    bool has_cred;
    bool has_expiry;
    vd_time_t expiry;   /* status.expirationTimestamp */
    vd_time_t obtained; /* wall clock of the run that returned it */
    double last_run;    /* monotonic seconds of the last run, 0: none */
    bool last_failed;
    unsigned long generation; /* counts the credentials put in force */
} kube_exec_t;

/* What a plugin returned. token, cert_pem and key_pem are fresh allocations
 * owned by the caller (kube_exec_cred_free() wipes them), NULL when
 * absent. */
typedef struct kube_exec_cred {
    char *token;
    char *cert_pem;
    size_t cert_pem_len;
    char *key_pem;
    size_t key_pem_len;
    bool has_expiry;
    vd_time_t expiry;
} kube_exec_cred_t;

/* The cluster, as KUBERNETES_EXEC_INFO describes it with
 * provideClusterInfo. Pointers are borrowed. */
typedef struct kube_exec_cluster {
    const char *server;
    const char *tls_server_name; /* or NULL */
    const char *ca_pem;          /* or NULL */
    size_t ca_pem_len;
    bool insecure_skip_tls_verify;
} kube_exec_cluster_t;

/* Parses len bytes of a plugin's stdout (data need not be NUL-terminated):
 * an ExecCredential of api_version with status.token and/or
 * status.clientCertificateData + status.clientKeyData (PEM) and an optional
 * status.expirationTimestamp (RFC 3339). Returns 0 and fills out, or -1
 * with a message naming the field in err (never the token or key) and out
 * zeroed. Pure: no I/O, no global state. */
int kube_exec_cred_parse(const char *data, size_t len, const char *api_version,
                         kube_exec_cred_t *out, char *err, size_t errlen);

/* Wipes and frees what c holds; c is zeroed. */
void kube_exec_cred_free(kube_exec_cred_t *c);

/* The KUBERNETES_EXEC_INFO document for e: an ExecCredential of e's
 * apiVersion with spec.interactive false and, with provideClusterInfo and
 * a cluster, spec.cluster. A fresh string owned by the caller, or NULL when
 * memory runs out. */
char *kube_exec_info_json(const kube_exec_t *e, const kube_exec_cluster_t *cl);

/* Runs e's plugin once (blocking, at most e->timeout seconds) and parses
 * its output into out. Returns 0, or -1 with a message that names the
 * command: not found (with the install hint), killed after the timeout,
 * its exit code or signal, or what is wrong with its output. */
int kube_exec_run(const kube_exec_t *e, const kube_exec_cluster_t *cl, kube_exec_cred_t *out,
                  char *err, size_t errlen);

/* Frees e and everything it holds (NULL is fine). */
void kube_exec_free(kube_exec_t *e);

#endif
