/*
 * kubeconfig — loads a kube_config_t from a kubeconfig file, read with
 * libyaml's document API: the current (or named) context, its cluster and
 * user, and everything they reference (CA, client certificate and key,
 * token file), read into memory so that the HTTP layer only handles blobs.
 * Messages name the file, the key path and the problem, and never carry a
 * token or key material.
 *
 * Owns nothing beyond the kube_config_t it fills. Calls libyaml,
 * kubeconfig_io.c (files, tokens, base64), util/log and util/strutil;
 * called by the composition root. The in-cluster environment is
 * incluster.c's.
 */
#include "kube/config.h"
#include "kube/execcred.h"
#include "kube/kubeconfig_int.h"
#include "util/log.h"
#include "util/strutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

/* One parse: the document, and what messages and references refer to. */
typedef struct kc_parse {
    const char *source; /* file name for messages */
    char *dir;          /* directory of relative references; "" is the cwd */
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} kc_parse_t;

/* Writes "at.key" (or the one that is set) into out. */
static void key_path(char *out, size_t outlen, const char *at, const char *key)
{
    const char *a = at ? at : "";
    const char *k = key ? key : "";
    snprintf(out, outlen, "%s%s%s", a, (*a && *k) ? "." : "", k);
}

static void kc_fail(kc_parse_t *p, const char *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "kubeconfig SOURCE: AT.KEY: problem" as the parse's error. */
static void kc_fail(kc_parse_t *p, const char *at, const char *key, const char *fmt, ...)
{
    char what[2 * KC_WHY_MAX], where[KC_AT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    key_path(where, sizeof(where), at, key);
    if (where[0])
        util_set_err(p->err, p->errlen, "kubeconfig %s: %s: %s", p->source, where, what);
    else
        util_set_err(p->err, p->errlen, "kubeconfig %s: %s", p->source, what);
}

/* --- YAML nodes --------------------------------------------------------- */

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* True for a plain null scalar ("", "~", "null"): such a value is absent. */
static bool node_is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    const char *v = (const char *)n->data.scalar.value;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (n->data.scalar.length == strlen(nulls[i]) && strcmp(v, nulls[i]) == 0)
            return true;
    return false;
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
           memcmp(n->data.scalar.value, s, n->data.scalar.length) == 0;
}

/* Finds key in the mapping map (NULL: an empty mapping) whose key path is at.
 * *out is the value, or NULL when the key is absent or its value is null.
 * Returns -1 when the key appears twice: which one counts would be a
 * guess. */
static int map_get(kc_parse_t *p, yaml_node_t *map, const char *at, const char *key,
                   yaml_node_t **out)
{
    bool seen = false;

    *out = NULL;
    if (!map)
        return 0;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        if (!scalar_is(yaml_document_get_node(p->doc, pair->key), key))
            continue;
        if (seen) {
            kc_fail(p, at, key, "duplicate key");
            return -1;
        }
        seen = true;
        yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        *out = (v && !node_is_null(v)) ? v : NULL;
    }
    return 0;
}

/* Looks up a value of the given node type; absent or null gives NULL.
 * Returns -1 when the key is duplicated or its value has another type. */
static int get_typed(kc_parse_t *p, yaml_node_t *map, const char *at, const char *key,
                     yaml_node_type_t type, yaml_node_t **out)
{
    static const char *const names[] = {"nothing", "a scalar", "a sequence", "a mapping"};

    if (map_get(p, map, at, key, out) < 0)
        return -1;
    if (*out && (*out)->type != type) {
        kc_fail(p, at, key, "expected %s, got %s", names[type], node_kind(*out));
        *out = NULL;
        return -1;
    }
    return 0;
}

/* Reads the string at at.key into *out: a NUL-terminated pointer into the
 * document (valid while it lives), or NULL when absent, null or empty.
 * Returns -1 when the value is not a scalar or holds a NUL byte. */
static int get_str(kc_parse_t *p, yaml_node_t *map, const char *at, const char *key,
                   const char **out)
{
    yaml_node_t *v;

    *out = NULL;
    if (get_typed(p, map, at, key, YAML_SCALAR_NODE, &v) < 0)
        return -1;
    if (!v || v->data.scalar.length == 0)
        return 0;
    if (strlen((const char *)v->data.scalar.value) != v->data.scalar.length) {
        kc_fail(p, at, key, "contains a NUL byte");
        return -1;
    }
    *out = (const char *)v->data.scalar.value;
    return 0;
}

/* Reads the boolean at at.key (absent: false). Only plain true and false
 * are accepted, in YAML 1.2 spellings. Returns 0 or -1. */
static int get_bool(kc_parse_t *p, yaml_node_t *map, const char *at, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    yaml_node_t *v;

    *out = false;
    if (get_typed(p, map, at, key, YAML_SCALAR_NODE, &v) < 0)
        return -1;
    if (!v)
        return 0;
    for (int i = 0; i < 3 && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE; i++) {
        if (scalar_is(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (scalar_is(v, no[i]))
            return 0;
    }
    kc_fail(p, at, key, "expected true or false");
    return -1;
}

/* A named entry of clusters, contexts or users. */
typedef struct kc_entry {
    const char *list;             /* "clusters" */
    const char *inner;            /* "cluster" */
    const char *kind;             /* "cluster", for "cluster \"x\" not found" */
    const char *name;             /* the name looked for */
    const char *ref_at, *ref_key; /* where the name came from, for messages */
    char at[KC_AT_MAX];           /* out: "clusters[2].cluster" */
    yaml_node_t *body;            /* out: the inner mapping, or NULL when empty */
} kc_entry_t;

/* Checks item i of e->list and, when it is the one named e->name, records it
 * in e (a second one with that name is an error). Returns 0 or -1. */
static int visit_entry(kc_parse_t *p, kc_entry_t *e, yaml_node_t *item, size_t i, bool *found)
{
    char at[KC_AT_MAX / 2]; /* "clusters[N]", which e->at extends */
    const char *name;
    yaml_node_t *body;

    snprintf(at, sizeof(at), "%s[%zu]", e->list, i);
    if (item->type != YAML_MAPPING_NODE) {
        kc_fail(p, at, NULL, "expected a mapping, got %s", node_kind(item));
        return -1;
    }
    if (get_str(p, item, at, "name", &name) < 0)
        return -1;
    if (!name || strcmp(name, e->name) != 0)
        return 0;
    if (*found) {
        kc_fail(p, at, "name", "duplicate %s name \"" KC_NAME_SHOWN "\"", e->kind, name);
        return -1;
    }
    *found = true;
    if (get_typed(p, item, at, e->inner, YAML_MAPPING_NODE, &body) < 0)
        return -1;
    snprintf(e->at, sizeof(e->at), "%s.%s", at, e->inner);
    e->body = body;
    return 0;
}

/* Finds the entry named e->name in the top-level list e->list. Returns 0, or
 * -1 when the list or an entry is malformed, the name is used twice, or no
 * entry has it. */
static int find_entry(kc_parse_t *p, yaml_node_t *root, kc_entry_t *e)
{
    yaml_node_t *list;
    bool found = false;

    e->body = NULL;
    e->at[0] = '\0';
    if (get_typed(p, root, "", e->list, YAML_SEQUENCE_NODE, &list) < 0)
        return -1;
    if (list) {
        yaml_node_item_t *it = list->data.sequence.items.start;
        for (size_t i = 0; it + i < list->data.sequence.items.top; i++) {
            yaml_node_t *item = yaml_document_get_node(p->doc, it[i]);
            if (item && visit_entry(p, e, item, i, &found) < 0)
                return -1;
        }
    }
    if (!found) {
        kc_fail(p, e->ref_at, e->ref_key, "%s \"" KC_NAME_SHOWN "\" not found", e->kind, e->name);
        return -1;
    }
    return 0;
}

/* Loads one certificate or key that is given either as a file reference
 * (file_key, a path relative to the kubeconfig's directory) or inline
 * (data_key, base64). *out (owned by the config) stays NULL when neither is
 * set. Returns 0 or -1. */
static int load_blob(kc_parse_t *p, yaml_node_t *map, const char *at, const char *file_key,
                     const char *data_key, char **out, size_t *outlen)
{
    const char *file, *data;
    char why[KC_WHY_MAX];

    if (get_str(p, map, at, file_key, &file) < 0 || get_str(p, map, at, data_key, &data) < 0)
        return -1;
    if (file && data) {
        kc_fail(p, at, NULL, "%s and %s are both set", file_key, data_key);
        return -1;
    }
    if (data) {
        int rc = kube__kc_b64_decode(data, out, outlen);
        if (rc < 0) {
            kc_fail(p, at, data_key, rc == -1 ? "invalid base64" : "out of memory");
            return -1;
        }
        if (!kube__kc_looks_like_pem(*out, *outlen)) {
            kc_fail(p, at, data_key, "not PEM data (no -----BEGIN line)");
            return -1;
        }
        return 0;
    }
    if (!file)
        return 0;
    char *path = kube__kc_resolve_path(p->dir, file);
    if (!path) {
        kc_fail(p, at, file_key, "out of memory");
        return -1;
    }
    int rc = kube__kc_read_file(path, KUBE_CONFIG_MAX_REF, out, outlen, why, sizeof(why));
    if (rc < 0) {
        kc_fail(p, at, file_key, "%s: %s", path, why);
    } else if (!kube__kc_looks_like_pem(*out, *outlen)) {
        kc_fail(p, at, file_key, "%s: not PEM data (no -----BEGIN line)", path);
        rc = -1;
    }
    free(path);
    return rc;
}

/* Checks the server URL and stores it without trailing slashes. */
static int load_server(kc_parse_t *p, yaml_node_t *cluster, const char *at, kube_config_t *c)
{
    const char *server;
    size_t len, scheme;

    if (get_str(p, cluster, at, "server", &server) < 0)
        return -1;
    if (!server) {
        kc_fail(p, at, "server", "missing");
        return -1;
    }
    scheme = strncmp(server, "https://", 8) == 0 ? 8 : strncmp(server, "http://", 7) == 0 ? 7 : 0;
    len = strlen(server);
    while (len > scheme && server[len - 1] == '/')
        len--;
    for (size_t i = 0; scheme && i < len; i++)
        if ((unsigned char)server[i] <= 0x20 || (unsigned char)server[i] >= 0x7f)
            scheme = 0;
    /* the value is not echoed: a URL may carry user:password@ */
    if (scheme == 0 || len == scheme) {
        kc_fail(p, at, "server", "expected an https:// or http:// URL");
        return -1;
    }
    if (memchr(server + scheme, '@', strcspn(server + scheme, "/?#"))) {
        kc_fail(p, at, "server", "credentials in the URL are not supported");
        return -1;
    }
    c->server = strndup(server, len);
    if (!c->server) {
        kc_fail(p, at, "server", "out of memory");
        return -1;
    }
    return 0;
}

/* Fills the cluster part of c from the mapping at `at` (cluster named
 * name). Returns 0 or -1. */
static int load_cluster(kc_parse_t *p, yaml_node_t *cluster, const char *at, const char *name,
                        kube_config_t *c)
{
    const char *sni;

    if (load_server(p, cluster, at, c) < 0)
        return -1;
    if (get_str(p, cluster, at, "tls-server-name", &sni) < 0)
        return -1;
    if (sni) {
        c->tls_server_name = strdup(sni);
        if (!c->tls_server_name) {
            kc_fail(p, at, "tls-server-name", "out of memory");
            return -1;
        }
    }
    if (get_bool(p, cluster, at, "insecure-skip-tls-verify", &c->insecure_skip_tls_verify) < 0)
        return -1;
    if (load_blob(p, cluster, at, "certificate-authority", "certificate-authority-data", &c->ca_pem,
                  &c->ca_pem_len) < 0)
        return -1;
    if (c->insecure_skip_tls_verify && c->ca_pem) {
        kc_fail(p, at, NULL, "insecure-skip-tls-verify and a certificate authority are both set");
        return -1;
    }
    if (c->insecure_skip_tls_verify)
        log_warn("TLS certificate verification is disabled by insecure-skip-tls-verify",
                 "kubeconfig", p->source, "cluster", name);
    return 0;
}

/* Refuses the ways of authenticating that vmdrain does not implement, so
 * that such a user fails loudly instead of talking to the API server
 * anonymously. Returns 0 or -1. */
static int refuse_unsupported(kc_parse_t *p, yaml_node_t *user, const char *at, const char *name)
{
    static const struct {
        const char *key, *what;
    } refused[] = {
        {"auth-provider", "auth-provider plugins are"},
        {"username", "basic authentication is"},
        {"password", "basic authentication is"},
        {"as", "impersonation is"},
    };
    yaml_node_t *v;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (map_get(p, user, at, refused[i].key, &v) < 0)
            return -1;
        if (v) {
            kc_fail(p, at, refused[i].key, "user \"" KC_NAME_SHOWN "\": %s not supported", name,
                    refused[i].what);
            return -1;
        }
    }
    return 0;
}

/* Reads the token of tokenFile (relative to the kubeconfig's directory) and
 * keeps its resolved path in c->token_file for reloads. Returns 0 or -1. */
static int load_token_file(kc_parse_t *p, const char *at, const char *file, kube_config_t *c)
{
    char why[KC_WHY_MAX];

    c->token_file = kube__kc_resolve_path(p->dir, file);
    if (!c->token_file) {
        kc_fail(p, at, "tokenFile", "out of memory");
        return -1;
    }
    if (kube__kc_read_token(c->token_file, &c->token, why, sizeof(why)) < 0) {
        kc_fail(p, at, "tokenFile", "%s: %s", c->token_file, why);
        return -1;
    }
    return 0;
}

/* Sets c->token from tokenFile (which wins over an inline token, as it
 * does with client-go once the file is re-read) or from token, and
 * registers it with the log's redaction. Returns 0 or -1. */
static int load_token(kc_parse_t *p, yaml_node_t *user, const char *at, kube_config_t *c)
{
    const char *token, *file;

    if (get_str(p, user, at, "token", &token) < 0 || get_str(p, user, at, "tokenFile", &file) < 0)
        return -1;
    if (file) {
        if (load_token_file(p, at, file, c) < 0)
            return -1;
    } else if (token) {
        if (!kube__kc_token_chars_ok(token)) {
            kc_fail(p, at, "token", "contains characters not allowed in a bearer token");
            return -1;
        }
        c->token = strdup(token);
        if (!c->token) {
            kc_fail(p, at, "token", "out of memory");
            return -1;
        }
    }
    log_add_secret(c->token);
    return 0;
}

/* --- exec credential plugins --------------------------------------------- */

/* Reads the string at at.key like get_str(), refusing one longer than
 * KUBE_EXEC_MAX_STR bytes. */
static int get_capped(kc_parse_t *p, yaml_node_t *map, const char *at, const char *key,
                      const char **out)
{
    if (get_str(p, map, at, key, out) < 0)
        return -1;
    if (*out && strlen(*out) > KUBE_EXEC_MAX_STR) {
        kc_fail(p, at, key, "longer than %d bytes", KUBE_EXEC_MAX_STR);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* Copies the scalar item n (at names it; a null or empty one is "") into a
 * fresh string owned by the caller. Returns 0 or -1. */
static int item_str(kc_parse_t *p, yaml_node_t *n, const char *at, char **out)
{
    const char *v = "";
    size_t len = 0;

    *out = NULL;
    if (n->type != YAML_SCALAR_NODE) {
        kc_fail(p, at, NULL, "expected a scalar, got %s", node_kind(n));
        return -1;
    }
    if (!node_is_null(n)) {
        v = (const char *)n->data.scalar.value;
        len = n->data.scalar.length;
    }
    if (strlen(v) != len || len > KUBE_EXEC_MAX_STR) {
        kc_fail(p, at, NULL,
                len > KUBE_EXEC_MAX_STR ? "longer than %d bytes" : "contains a NUL byte",
                KUBE_EXEC_MAX_STR);
        return -1;
    }
    *out = strdup(v);
    if (!*out) {
        kc_fail(p, at, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* Reads one item of a list: at names it, slot is where it goes. */
typedef int (*kc_item_fn)(kc_parse_t *p, yaml_node_t *item, const char *at, void *slot);

/* Reads the sequence at.key of at most max items into a fresh array of
 * items of size bytes each, read by fn (*arr; *count counts the items
 * begun, so that a half-read one is freed with the rest). Returns 0 or
 * -1. */
static int load_list(kc_parse_t *p, yaml_node_t *map, const char *at, const char *key, size_t max,
                     size_t size, void **arr, size_t *count, kc_item_fn fn)
{
    char iat[KC_AT_MAX];
    yaml_node_t *list;
    size_t n;

    *arr = NULL;
    if (get_typed(p, map, at, key, YAML_SEQUENCE_NODE, &list) < 0)
        return -1;
    n = list ? (size_t)(list->data.sequence.items.top - list->data.sequence.items.start) : 0;
    if (n > max) {
        kc_fail(p, at, key, "more than %zu entries", max);
        return -1;
    }
    if (n == 0)
        return 0;
    *arr = calloc(n, size);
    if (!*arr) {
        kc_fail(p, at, key, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        util_set_err(iat, sizeof(iat), "%s.%s[%zu]", at, key, i);
        (*count)++;
        yaml_node_t *item = yaml_document_get_node(p->doc, list->data.sequence.items.start[i]);
        if (fn(p, item, iat, (char *)*arr + i * size) < 0)
            return -1;
    }
    return 0;
}

/* One entry of exec.args. */
static int load_arg(kc_parse_t *p, yaml_node_t *item, const char *at, void *slot)
{
    return item_str(p, item, at, slot);
}

/* Reads one entry of exec.env ({name, value}) into slot. Returns 0 or -1. */
static int load_env(kc_parse_t *p, yaml_node_t *item, const char *at, void *slot)
{
    kube_exec_env_t *env = slot;
    const char *name, *value;

    if (item->type != YAML_MAPPING_NODE) {
        kc_fail(p, at, NULL, "expected a mapping, got %s", node_kind(item));
        return -1;
    }
    if (get_capped(p, item, at, "name", &name) < 0 || get_capped(p, item, at, "value", &value) < 0)
        return -1;
    if (!name || strchr(name, '=')) {
        kc_fail(p, at, "name", name ? "contains '='" : "missing");
        return -1;
    }
    env->name = strdup(name);
    env->value = strdup(value ? value : "");
    if (!env->name || !env->value) {
        kc_fail(p, at, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* Reads exec.args and exec.env into e. Returns 0 or -1. */
static int load_exec_lists(kc_parse_t *p, yaml_node_t *exec, const char *at, kube_exec_t *e)
{
    void *arr;
    int rc = load_list(p, exec, at, "args", KUBE_EXEC_MAX_ARGS, sizeof(*e->args), &arr, &e->nargs,
                       load_arg);

    e->args = arr;
    if (rc < 0)
        return -1;
    rc =
        load_list(p, exec, at, "env", KUBE_EXEC_MAX_ENV, sizeof(*e->env), &arr, &e->nenv, load_env);
    e->env = arr;
    return rc;
}

/* Checks exec.apiVersion and exec.interactiveMode. Returns 0 or -1. */
static int check_exec_modes(kc_parse_t *p, const char *at, const char *api, const char *mode)
{
    if (!api) {
        kc_fail(p, at, "apiVersion", "missing");
        return -1;
    }
    if (strcmp(api, KUBE_EXEC_API_V1) != 0 && strcmp(api, KUBE_EXEC_API_V1BETA1) != 0) {
        kc_fail(p, at, "apiVersion", "\"" KC_NAME_SHOWN "\" is not supported (%s or %s)", api,
                KUBE_EXEC_API_V1, KUBE_EXEC_API_V1BETA1);
        return -1;
    }
    if (!mode || strcmp(mode, "Never") == 0 || strcmp(mode, "IfAvailable") == 0)
        return 0;
    if (strcmp(mode, "Always") == 0)
        kc_fail(p, at, "interactiveMode",
                "Always is not supported: vmdrain never runs a plugin interactively");
    else
        kc_fail(p, at, "interactiveMode",
                "\"" KC_NAME_SHOWN "\": expected Never, IfAvailable or "
                "Always",
                mode);
    return -1;
}

/* Reads the exec mapping at `at` of user name into c->exec: the plugin is
 * not run here (kube_config_load() runs it). A relative command with a
 * slash is resolved against the kubeconfig's directory, a bare name is
 * searched in PATH when run. Returns 0 or -1. */
static int load_exec(kc_parse_t *p, yaml_node_t *exec, const char *at, const char *name,
                     kube_config_t *c)
{
    const char *api, *cmd, *hint, *mode;
    kube_exec_t *e = calloc(1, sizeof(*e));

    c->exec = e;
    if (!e) {
        kc_fail(p, at, NULL, "out of memory");
        return -1;
    }
    e->timeout = KUBE_EXEC_TIMEOUT;
    if (get_capped(p, exec, at, "apiVersion", &api) < 0 ||
        get_capped(p, exec, at, "command", &cmd) < 0 ||
        get_capped(p, exec, at, "installHint", &hint) < 0 ||
        get_capped(p, exec, at, "interactiveMode", &mode) < 0 ||
        get_bool(p, exec, at, "provideClusterInfo", &e->provide_cluster_info) < 0 ||
        check_exec_modes(p, at, api, mode) < 0)
        return -1;
    if (!cmd) {
        kc_fail(p, at, "command", "missing");
        return -1;
    }
    e->user = strdup(name);
    e->api_version = strdup(api);
    e->command = strdup(cmd);
    e->path = strchr(cmd, '/') ? kube__kc_resolve_path(p->dir, cmd) : strdup(cmd);
    e->install_hint = util_strdup_or_null(hint);
    if (!e->user || !e->api_version || !e->command || !e->path || (hint && !e->install_hint)) {
        kc_fail(p, at, NULL, "out of memory");
        return -1;
    }
    return load_exec_lists(p, exec, at, e);
}

/* Loads an exec user: the plugin provides every credential, so the user
 * may not set another one. Returns 0 or -1. */
static int load_exec_user(kc_parse_t *p, yaml_node_t *user, yaml_node_t *exec, const char *at,
                          const char *name, kube_config_t *c)
{
    static const char *const others[] = {
        "token",      "tokenFile",       "client-certificate",
        "client-key", "client-key-data", "client-certificate-data"};
    char eat[KC_AT_MAX];
    yaml_node_t *v;

    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if (map_get(p, user, at, others[i], &v) < 0)
            return -1;
        if (v) {
            kc_fail(p, at, NULL, "exec and %s are both set", others[i]);
            return -1;
        }
    }
    util_set_err(eat, sizeof(eat), "%s.exec", at);
    return load_exec(p, exec, eat, name, c);
}

/* Fills the credentials of c from the user mapping at `at` (NULL: no
 * credentials). Returns 0 or -1. */
static int load_user(kc_parse_t *p, yaml_node_t *user, const char *at, const char *name,
                     kube_config_t *c)
{
    yaml_node_t *exec;

    if (refuse_unsupported(p, user, at, name) < 0 ||
        get_typed(p, user, at, "exec", YAML_MAPPING_NODE, &exec) < 0)
        return -1;
    if (exec)
        return load_exec_user(p, user, exec, at, name, c);
    if (load_token(p, user, at, c) < 0)
        return -1;
    if (load_blob(p, user, at, "client-certificate", "client-certificate-data", &c->cert_pem,
                  &c->cert_pem_len) < 0)
        return -1;
    if (load_blob(p, user, at, "client-key", "client-key-data", &c->key_pem, &c->key_pem_len) < 0)
        return -1;
    if (!c->cert_pem != !c->key_pem) {
        kc_fail(p, at, NULL, "%s is set without %s",
                c->cert_pem ? "client-certificate" : "client-key",
                c->cert_pem ? "client-key" : "client-certificate");
        return -1;
    }
    return 0;
}

/* Resolves the context (the requested one, else current-context) into its
 * cluster and user entries and fills c from them. Returns 0 or -1. */
static int load_root(kc_parse_t *p, yaml_node_t *root, const char *context, kube_config_t *c)
{
    kc_entry_t ctx = {.list = "contexts", .inner = "context", .kind = "context", .name = context};
    kc_entry_t cl = {
        .list = "clusters", .inner = "cluster", .kind = "cluster", .ref_key = "cluster"};
    kc_entry_t us = {.list = "users", .inner = "user", .kind = "user", .ref_key = "user"};

    if (root->type != YAML_MAPPING_NODE) {
        kc_fail(p, NULL, NULL, "expected a mapping at the top level, got %s", node_kind(root));
        return -1;
    }
    if (!ctx.name) {
        if (get_str(p, root, "", "current-context", &ctx.name) < 0)
            return -1;
        if (!ctx.name) {
            kc_fail(p, NULL, "current-context", "not set, and no context was requested");
            return -1;
        }
        ctx.ref_key = "current-context";
    }
    if (find_entry(p, root, &ctx) < 0)
        return -1;
    if (get_str(p, ctx.body, ctx.at, "cluster", &cl.name) < 0 ||
        get_str(p, ctx.body, ctx.at, "user", &us.name) < 0)
        return -1;
    if (!cl.name) {
        kc_fail(p, ctx.at, "cluster", "missing");
        return -1;
    }
    cl.ref_at = us.ref_at = ctx.at;
    if (find_entry(p, root, &cl) < 0 || (us.name && find_entry(p, root, &us) < 0))
        return -1;
    c->source = strdup(p->source);
    c->context = strdup(ctx.name);
    if (!c->source || !c->context) {
        kc_fail(p, NULL, NULL, "out of memory");
        return -1;
    }
    if (load_cluster(p, cl.body, cl.at, cl.name, c) < 0)
        return -1;
    return us.name ? load_user(p, us.body, us.at, us.name, c) : 0;
}

/* Wipes every scalar of a document before it is freed: they include tokens
 * and keys. */
static void wipe_document(yaml_document_t *doc)
{
    for (yaml_node_t *n = doc->nodes.start; n && n < doc->nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
            explicit_bzero(n->data.scalar.value, n->data.scalar.length);
}

/* Wipes the parser's input buffers (best effort: libyaml frees the tokens
 * it has consumed without wiping them). */
static void wipe_parser(yaml_parser_t *y)
{
    if (y->raw_buffer.start)
        explicit_bzero(y->raw_buffer.start, (size_t)(y->raw_buffer.end - y->raw_buffer.start));
    if (y->buffer.start)
        explicit_bzero(y->buffer.start, (size_t)(y->buffer.end - y->buffer.start));
}

/* Records libyaml's error with its position. */
static void yaml_fail(kc_parse_t *p, const yaml_parser_t *y)
{
    const char *problem = y->problem ? y->problem : "invalid YAML";

    if (y->error == YAML_MEMORY_ERROR) {
        kc_fail(p, NULL, NULL, "out of memory while parsing YAML");
    } else if (y->error == YAML_READER_ERROR) {
        kc_fail(p, NULL, NULL, "byte %zu: %s", y->problem_offset, problem);
    } else if (y->context) {
        kc_fail(p, NULL, NULL, "line %zu column %zu: %s (%s at line %zu column %zu)",
                y->problem_mark.line + 1, y->problem_mark.column + 1, problem, y->context,
                y->context_mark.line + 1, y->context_mark.column + 1);
    } else {
        kc_fail(p, NULL, NULL, "line %zu column %zu: %s", y->problem_mark.line + 1,
                y->problem_mark.column + 1, problem);
    }
}

/* Parses the single YAML document in data into doc (the caller deletes it
 * on success). Returns 0, or -1 for a syntax error, an empty stream or more
 * than one document. */
static int load_document(kc_parse_t *p, const char *data, size_t len, yaml_document_t *doc)
{
    yaml_parser_t y;
    yaml_document_t extra;
    int rc = -1;

    if (!yaml_parser_initialize(&y)) {
        kc_fail(p, NULL, NULL, "out of memory while parsing YAML");
        return -1;
    }
    yaml_parser_set_input_string(&y, (const unsigned char *)data, len);
    if (!yaml_parser_load(&y, doc)) {
        yaml_fail(p, &y);
        goto out_parser;
    }
    if (!yaml_document_get_root_node(doc)) {
        kc_fail(p, NULL, NULL, "empty document");
        goto out_doc;
    }
    if (!yaml_parser_load(&y, &extra)) {
        yaml_fail(p, &y);
        goto out_doc;
    }
    bool more = yaml_document_get_root_node(&extra) != NULL;
    wipe_document(&extra);
    yaml_document_delete(&extra);
    if (more) {
        kc_fail(p, NULL, NULL, "more than one YAML document");
        goto out_doc;
    }
    rc = 0;
    goto out_parser;
out_doc:
    wipe_document(doc);
    yaml_document_delete(doc);
out_parser:
    wipe_parser(&y);
    yaml_parser_delete(&y);
    return rc;
}

int kube_config_parse_buffer(const char *data, size_t len, const char *source, const char *context,
                             kube_config_t *out, char *err, size_t errlen)
{
    kc_parse_t p = {source ? source : "<memory>", NULL, NULL, err, errlen};
    kube_config_t c = {0};
    yaml_document_t doc;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    util_set_err(err, errlen, "%s", "");
    if (len > KUBE_CONFIG_MAX_FILE) {
        kc_fail(&p, NULL, NULL, "larger than %u bytes", KUBE_CONFIG_MAX_FILE);
        return -1;
    }
    p.dir = source ? kube__kc_dir_of(source) : strdup("");
    if (!p.dir) {
        kc_fail(&p, NULL, NULL, "out of memory");
        return -1;
    }
    if (load_document(&p, data, len, &doc) < 0)
        goto out_dir;
    p.doc = &doc;
    rc = load_root(&p, yaml_document_get_root_node(&doc), (context && *context) ? context : NULL,
                   &c);
    wipe_document(&doc);
    yaml_document_delete(&doc);
    if (rc < 0)
        kube_config_free(&c);
    else
        *out = c;
out_dir:
    free(p.dir);
    return rc;
}

/* Returns the first existing file of the colon-separated list, else its
 * first entry (so that the error names it), as a fresh string owned by the
 * caller; NULL when the list names no file or memory runs out. */
static char *first_existing(const char *list)
{
    char *copy = strdup(list), *save = NULL, *first = NULL, *s;

    if (!copy)
        return NULL;
    for (char *e = strtok_r(copy, ":", &save); e; e = strtok_r(NULL, ":", &save)) {
        if (!first)
            first = e;
        if (access(e, F_OK) == 0) {
            first = e;
            break;
        }
    }
    s = first ? strdup(first) : NULL;
    free(copy);
    return s;
}

/* Picks the kubeconfig file: path, else the first existing file of
 * $KUBECONFIG, else $HOME/.kube/config. Returns a fresh string owned by the
 * caller, or NULL with a message. */
static char *pick_path(const char *path, char *err, size_t errlen)
{
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    char *s = NULL;

    if (path && *path) {
        s = strdup(path);
    } else if (env && *env) {
        s = first_existing(env);
    } else if (home && *home) {
        if (asprintf(&s, "%s/.kube/config", home) < 0)
            s = NULL;
    } else {
        util_set_err(err, errlen,
                     "kubeconfig: no path given and neither $KUBECONFIG nor $HOME is set");
        return NULL;
    }
    if (!s)
        util_set_err(err, errlen, "kubeconfig: %s",
                     (env && *env && !(path && *path))
                         ? "$KUBECONFIG names no file (or out of memory)"
                         : "out of memory");
    return s;
}

/* Runs the exec plugin of a freshly loaded configuration for its first
 * credential; on failure c is freed. Returns 0 or -1. */
static int first_exec_run(const char *file, kube_config_t *c, char *err, size_t errlen)
{
    char why[512];
    bool changed;

    if (kube_config_exec_refresh(c, &changed, why, sizeof(why)) == 0)
        return 0;
    util_set_err(err, errlen, "kubeconfig %s: user \"" KC_NAME_SHOWN "\": %s", file, c->exec->user,
                 why);
    kube_config_free(c);
    return -1;
}

int kube_config_load(const char *path, const char *context, kube_config_t *out, char *err,
                     size_t errlen)
{
    char why[KC_WHY_MAX], *file, *data;
    size_t len;
    int rc;

    memset(out, 0, sizeof(*out));
    file = pick_path(path, err, errlen);
    if (!file)
        return -1;
    if (kube__kc_read_file(file, KUBE_CONFIG_MAX_FILE, &data, &len, why, sizeof(why)) < 0) {
        util_set_err(err, errlen, "kubeconfig %s: %s", file, why);
        free(file);
        return -1;
    }
    rc = kube_config_parse_buffer(data, len, file, context, out, err, errlen);
    kube__kc_wipe_free_len(data, len);
    if (rc == 0 && out->exec)
        rc = first_exec_run(file, out, err, errlen);
    free(file);
    return rc;
}
