/*
 * kubeconfig — loads a kube_config_t from a kubeconfig file (read with
 * libyaml's document API) or from the in-cluster service-account
 * environment, and re-reads rotating token files.
 *
 * Everything a kubeconfig references (CA, client certificate and key, token
 * file) is read into memory here, so that the HTTP layer only handles blobs.
 * Messages name the file, the key path and the problem, and never carry a
 * token or key material.
 */
#include "kube/config.h"
#include "util/log.h"
#include "util/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define KC_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KC_MAX_TOKEN      (64u << 10) /* bytes of a token file */
#define KC_AT_MAX         128         /* a key path such as "users[12].user" */
#define KC_WHY_MAX        160         /* the reason part of a message */
#define KC_NAME_SHOWN     "%.100s"    /* names are cut in messages */

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

/* Wipes and frees a NUL-terminated secret. */
static void wipe_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Wipes and frees a blob of len bytes (plus its terminator). */
static void wipe_free_len(char *s, size_t len)
{
    if (!s)
        return;
    explicit_bzero(s, len + 1);
    free(s);
}

/* Reads the rest of fd into buf (size bytes allocated, one more for the
 * terminator) and checks that the file ends there. Returns the byte count, or
 * -1 with errno set (EFBIG when the file grew while being read). */
static ssize_t read_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    char extra;

    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    for (;;) {
        ssize_t n = read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n > 0) {
            errno = EFBIG;
            return -1;
        }
        return (ssize_t)got;
    }
}

/* Reads the size bytes of the open file fd into a fresh NUL-terminated
 * allocation owned by the caller. Returns 0 or an errno value, with the
 * reason in why; a partial read is wiped. */
static int read_open_file(int fd, size_t size, char **data, size_t *len, char *why, size_t whylen)
{
    char *buf = malloc(size + 1);
    ssize_t n;

    if (!buf) {
        snprintf(why, whylen, "%s", strerror(ENOMEM));
        return ENOMEM;
    }
    n = read_all(fd, buf, size);
    if (n < 0) {
        int e = errno;
        snprintf(why, whylen, "%s", e == EFBIG ? "changed while being read" : strerror(e));
        wipe_free_len(buf, size);
        return e;
    }
    buf[n] = '\0';
    *data = buf;
    *len = (size_t)n;
    return 0;
}

/* Reads the regular file at path into a fresh NUL-terminated allocation
 * (*data, *len), owned by the caller, who wipes it if it may hold a secret.
 * Only regular files are read (a FIFO would block the loop), and none larger
 * than max bytes; the size is known before reading, so no reallocation
 * leaves copies behind. Returns 0, or -1 with errno set (ENOENT for a
 * missing file) and the reason in why. */
static int read_file(const char *path, size_t max, char **data, size_t *len, char *why,
                     size_t whylen)
{
    struct stat st;
    int fd, e;

    *data = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        errno = e;
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        e = errno;
        snprintf(why, whylen, "%s", strerror(e));
    } else if (!S_ISREG(st.st_mode)) {
        e = EINVAL;
        snprintf(why, whylen, "not a regular file");
    } else if (st.st_size < 0 || (uintmax_t)st.st_size > max) {
        e = EFBIG;
        snprintf(why, whylen, "larger than %zu bytes", max);
    } else {
        e = read_open_file(fd, (size_t)st.st_size, data, len, why, whylen);
    }
    close(fd);
    errno = e;
    return e ? -1 : 0;
}

/* True when the token may go into an Authorization header: printable ASCII
 * without spaces. */
static bool token_chars_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x21 || (unsigned char)*t > 0x7e)
            return false;
    return true;
}

/* Reads the token in the file at path, trimmed of surrounding whitespace,
 * into a fresh string owned by the caller (wipe_free() it). Returns 0, or -1
 * with the reason in why (the token itself never appears there). */
static int read_token(const char *path, char **out, char *why, size_t whylen)
{
    char *data;
    size_t len, start = 0;

    *out = NULL;
    if (read_file(path, KC_MAX_TOKEN, &data, &len, why, whylen) < 0)
        return -1;
    while (len > 0 && isspace((unsigned char)data[len - 1]))
        data[--len] = '\0';
    while (start < len && isspace((unsigned char)data[start]))
        start++;
    if (start == len) {
        snprintf(why, whylen, "empty token");
        goto out_wipe;
    }
    if (strlen(data + start) != len - start || !token_chars_ok(data + start)) {
        snprintf(why, whylen, "token contains characters not allowed in a bearer token");
        goto out_wipe;
    }
    memmove(data, data + start, len - start + 1);
    *out = data;
    return 0;

out_wipe:
    wipe_free_len(data, len);
    return -1;
}

/* True when the blob looks like PEM: libcurl would refuse anything else
 * later, with a vaguer message. */
static bool looks_like_pem(const char *data, size_t len)
{
    return memmem(data, len, "-----BEGIN ", 11) != NULL;
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Checks padded standard base64 of n characters: the alphabet, a length
 * that is a multiple of four, and at most two '=' at the very end. Returns
 * the padding count, or -1. */
static int b64_check(const char *s, size_t n)
{
    int pad = 0;

    if (n == 0 || n % 4 != 0)
        return -1;
    if (s[n - 1] == '=')
        pad = s[n - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < n - (size_t)pad; i++)
        if (!b64_char(s[i]))
            return -1;
    return pad;
}

/* Decodes standard base64 with padding, ignoring line breaks (as Go's
 * encoding/base64 does for kubeconfig data), into a fresh NUL-terminated
 * allocation owned by the caller (*out, *outlen). Returns 0, -1 for invalid
 * base64, or -2 when memory runs out. Scratch copies are wiped: the input
 * may be a private key. */
static int b64_decode(const char *in, char **out, size_t *outlen)
{
    size_t inlen = strlen(in), n = 0;
    char *clean = malloc(inlen + 1), *dec = NULL;
    int pad, rc = -2;

    *out = NULL;
    *outlen = 0;
    if (!clean)
        return -2;
    for (size_t i = 0; i < inlen; i++)
        if (in[i] != '\n' && in[i] != '\r')
            clean[n++] = in[i];
    pad = b64_check(clean, n);
    if (pad < 0) {
        rc = -1;
        goto out_clean;
    }
    dec = malloc(n / 4 * 3 + 1);
    if (!dec)
        goto out_clean;
    int got = EVP_DecodeBlock((unsigned char *)dec, (const unsigned char *)clean, (int)n);
    if (got < 0 || (size_t)got != n / 4 * 3) {
        wipe_free_len(dec, n / 4 * 3);
        rc = -1;
        goto out_clean;
    }
    *outlen = (size_t)got - (size_t)pad;
    dec[*outlen] = '\0';
    *out = dec;
    rc = 0;
out_clean:
    wipe_free_len(clean, n);
    return rc;
}

/* Returns ref resolved against dir ("" meaning the working directory) as a
 * fresh string owned by the caller, or NULL when memory runs out. */
static char *resolve_path(const char *dir, const char *ref)
{
    char *s = NULL;
    size_t dl = strlen(dir);

    if (ref[0] == '/' || dl == 0)
        return strdup(ref);
    if (asprintf(&s, "%s%s%s", dir, dir[dl - 1] == '/' ? "" : "/", ref) < 0)
        return NULL;
    return s;
}

/* Returns the directory part of path ("" when it has none) as a fresh
 * string owned by the caller, or NULL when memory runs out. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return strdup("");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
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
        int rc = b64_decode(data, out, outlen);
        if (rc < 0) {
            kc_fail(p, at, data_key, rc == -1 ? "invalid base64" : "out of memory");
            return -1;
        }
        if (!looks_like_pem(*out, *outlen)) {
            kc_fail(p, at, data_key, "not PEM data (no -----BEGIN line)");
            return -1;
        }
        return 0;
    }
    if (!file)
        return 0;
    char *path = resolve_path(p->dir, file);
    if (!path) {
        kc_fail(p, at, file_key, "out of memory");
        return -1;
    }
    int rc = read_file(path, KUBE_CONFIG_MAX_REF, out, outlen, why, sizeof(why));
    if (rc < 0) {
        kc_fail(p, at, file_key, "%s: %s", path, why);
    } else if (!looks_like_pem(*out, *outlen)) {
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
        {"exec", "exec credential plugins are"},
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

    c->token_file = resolve_path(p->dir, file);
    if (!c->token_file) {
        kc_fail(p, at, "tokenFile", "out of memory");
        return -1;
    }
    if (read_token(c->token_file, &c->token, why, sizeof(why)) < 0) {
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
        if (!token_chars_ok(token)) {
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

/* Fills the credentials of c from the user mapping at `at` (NULL: no
 * credentials). Returns 0 or -1. */
static int load_user(kc_parse_t *p, yaml_node_t *user, const char *at, const char *name,
                     kube_config_t *c)
{
    if (refuse_unsupported(p, user, at, name) < 0 || load_token(p, user, at, c) < 0)
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
    p.dir = source ? dir_of(source) : strdup("");
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
    if (read_file(file, KUBE_CONFIG_MAX_FILE, &data, &len, why, sizeof(why)) < 0) {
        util_set_err(err, errlen, "kubeconfig %s: %s", file, why);
        free(file);
        return -1;
    }
    rc = kube_config_parse_buffer(data, len, file, context, out, err, errlen);
    wipe_free_len(data, len);
    free(file);
    return rc;
}

/* --- in-cluster ------------------------------------------------------------ */

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
    char why[KC_WHY_MAX], *path = resolve_path(dir, "ca.crt");
    int rc = 0;

    if (!path) {
        util_set_err(err, errlen, "in-cluster: out of memory");
        return -1;
    }
    if (read_file(path, KUBE_CONFIG_MAX_REF, &c->ca_pem, &c->ca_pem_len, why, sizeof(why)) < 0) {
        if (errno == ENOENT) {
            log_warn("in-cluster CA bundle missing, using the system store", "path", path);
        } else {
            util_set_err(err, errlen, "in-cluster: %s: %s", path, why);
            rc = -1;
        }
    } else if (!looks_like_pem(c->ca_pem, c->ca_pem_len)) {
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
    c.token_file = resolve_path(dir, "token");
    if (!c.source || !c.token_file) {
        util_set_err(err, errlen, "in-cluster: out of memory");
        goto out_fail;
    }
    if (read_token(c.token_file, &c.token, why, sizeof(why)) < 0) {
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

int kube_config_reload_token(kube_config_t *c, bool *changed, char *err, size_t errlen)
{
    char why[KC_WHY_MAX], *token;

    *changed = false;
    if (!c->token_file)
        return 0;
    if (read_token(c->token_file, &token, why, sizeof(why)) < 0) {
        util_set_err(err, errlen, "token file %s: %s", c->token_file, why);
        return -1;
    }
    if (c->token && strcmp(c->token, token) == 0) {
        wipe_free(token);
        return 0;
    }
    log_add_secret(token);
    wipe_free(c->token);
    c->token = token;
    *changed = true;
    return 0;
}

void kube_config_free(kube_config_t *c)
{
    if (!c)
        return;
    wipe_free(c->token);
    wipe_free_len(c->key_pem, c->key_pem_len);
    free(c->source);
    free(c->context);
    free(c->server);
    free(c->tls_server_name);
    free(c->ca_pem);
    free(c->cert_pem);
    free(c->token_file);
    memset(c, 0, sizeof(*c));
}
