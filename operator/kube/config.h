/*
 * config — how to reach and authenticate to a kube-apiserver.
 *
 * Loaded from a kubeconfig file (kubeconfig.c) or from the in-cluster
 * service-account environment (incluster.c); files and tokens are read by
 * kubeconfig_io.c; an exec credential plugin is run by execcred.c. Every
 * key and certificate is held in memory
 * as PEM and handed to libcurl as a blob: nothing is ever written to a
 * temporary file.
 */
#ifndef VMDRAIN_KUBE_CONFIG_H
#define VMDRAIN_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct kube_exec;

typedef struct kube_config {
    char *source;          /* where it came from, for messages: a path or "in-cluster" */
    char *context;         /* the context used (NULL in-cluster) */
    char *server;          /* "https://host:port", no trailing slash */
    char *tls_server_name; /* overrides the name checked in the certificate, or NULL */
    char *ca_pem;          /* CA bundle, PEM, or NULL for the system store */
    size_t ca_pem_len;
    char *cert_pem; /* client certificate, PEM, or NULL */
    size_t cert_pem_len;
    char *key_pem; /* client key, PEM, or NULL */
    size_t key_pem_len;
    char *token;      /* bearer token, or NULL */
    char *token_file; /* re-read periodically when set (bound tokens rotate) */
    bool insecure_skip_tls_verify;
    struct kube_exec *exec; /* the user's exec credential plugin (kube/execcred.h), or NULL:
                             * it provides token, cert_pem and key_pem */
} kube_config_t;

/* Loads a kubeconfig: path if not NULL, else the first existing file of
 * $KUBECONFIG (files are not merged), else ~/.kube/config. context selects a context other than
 * current-context (NULL for current-context). Relative file references are
 * resolved against the kubeconfig's directory and read into memory. A user
 * with an exec credential plugin has it run once now (blocking, bounded by
 * its timeout). Returns 0, or -1 with a message naming the file, the key
 * and the problem. The caller frees out with kube_config_free(). */
int kube_config_load(const char *path, const char *context, kube_config_t *out, char *err,
                     size_t errlen);

/* Loads the in-cluster configuration: KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT, the token and CA under dir (NULL means
 * /var/run/secrets/kubernetes.io/serviceaccount). Returns 0 or -1 with a
 * message. The caller frees out with kube_config_free(). */
int kube_config_in_cluster(const char *dir, kube_config_t *out, char *err, size_t errlen);

/* Re-reads c->token_file, if set, so that a rotated token is picked up.
 * When the file holds a different token it replaces c->token (the old one is
 * wiped), is registered with log_add_secret() and *changed is set; an
 * unchanged token leaves *changed false. Returns 0, or -1 with a message
 * naming the file when it is unreadable, too large or empty: the old token
 * stays in force then. Without a token_file it returns 0 and changes
 * nothing. */
int kube_config_reload_token(kube_config_t *c, bool *changed, char *err, size_t errlen);

/* True when c's credential comes from an exec plugin that should be run
 * now: with force (a 401), or when there is no credential yet, or when it
 * expires within KUBE_EXEC_MARGIN seconds (half its lifetime when that is
 * shorter); a credential without expiry is kept until a 401. Never within
 * KUBE_EXEC_RETRY_GAP seconds of a failed run, nor (without force)
 * KUBE_EXEC_MIN_GAP of the last run. False without an exec plugin. */
bool kube_config_exec_due(const kube_config_t *c, bool force);

/* Runs c's exec plugin now (blocking, at most its timeout) and puts the
 * credential it returns in force: token, client certificate and key (the
 * old ones are wiped), registered with log_add_secret(), and its expiry
 * remembered. *changed tells whether the credential differs. Returns 0, or
 * -1 with a message naming the command: the old credential stays in force
 * then. Without an exec plugin it returns 0 and changes nothing. */
int kube_config_exec_refresh(kube_config_t *c, bool *changed, char *err, size_t errlen);

/* Releases everything c holds, wiping the token and the client key first;
 * the struct is zeroed. */
void kube_config_free(kube_config_t *c);

/* Largest kubeconfig file accepted, and largest file it may reference
 * (certificate, key, token). */
#define KUBE_CONFIG_MAX_FILE (4u << 20)
#define KUBE_CONFIG_MAX_REF  (1u << 20)

/* private: the parser behind kube_config_load(), exposed for tests and the
 * fuzz driver. Parses len bytes of kubeconfig YAML (data need not be
 * NUL-terminated). source names the file in messages and its directory
 * anchors relative file references (NULL: "<memory>", references relative
 * to the working directory). context as for kube_config_load(). An exec
 * plugin is read into c->exec but not run. Same return and ownership as
 * kube_config_load(). */
int kube_config_parse_buffer(const char *data, size_t len, const char *source, const char *context,
                             kube_config_t *out, char *err, size_t errlen);

#endif
