/*
 * kubeconfig_io — reading what a configuration references: whole files
 * with a size cap, bearer tokens (checked, re-read when they rotate),
 * base64 data, relative paths; and wiping secrets when they are freed.
 *
 * Owns nothing beyond what it returns. Calls the C library, POSIX I/O,
 * OpenSSL's base64 decoder, util/log (secrets), util/strutil and
 * execcred.c (freeing an exec plugin); called by kubeconfig.c, incluster.c
 * and execcred.c.
 */
#include "kube/execcred.h"
#include "kube/kubeconfig_int.h"
#include "util/log.h"
#include "util/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Wipes and frees a NUL-terminated secret. */
void kube__kc_wipe_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* Wipes and frees a blob of len bytes (plus its terminator). */
void kube__kc_wipe_free_len(char *s, size_t len)
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
        kube__kc_wipe_free_len(buf, size);
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
int kube__kc_read_file(const char *path, size_t max, char **data, size_t *len, char *why,
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
bool kube__kc_token_chars_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x21 || (unsigned char)*t > 0x7e)
            return false;
    return true;
}

/* Reads the token in the file at path, trimmed of surrounding whitespace,
 * into a fresh string owned by the caller (kube__kc_wipe_free() it). Returns 0, or -1
 * with the reason in why (the token itself never appears there). */
int kube__kc_read_token(const char *path, char **out, char *why, size_t whylen)
{
    char *data;
    size_t len, start = 0;

    *out = NULL;
    if (kube__kc_read_file(path, KC_MAX_TOKEN, &data, &len, why, whylen) < 0)
        return -1;
    while (len > 0 && isspace((unsigned char)data[len - 1]))
        data[--len] = '\0';
    while (start < len && isspace((unsigned char)data[start]))
        start++;
    if (start == len) {
        snprintf(why, whylen, "empty token");
        goto out_wipe;
    }
    if (strlen(data + start) != len - start || !kube__kc_token_chars_ok(data + start)) {
        snprintf(why, whylen, "token contains characters not allowed in a bearer token");
        goto out_wipe;
    }
    memmove(data, data + start, len - start + 1);
    *out = data;
    return 0;

out_wipe:
    kube__kc_wipe_free_len(data, len);
    return -1;
}

/* True when the blob looks like PEM: libcurl would refuse anything else
 * later, with a vaguer message. */
bool kube__kc_looks_like_pem(const char *data, size_t len)
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
int kube__kc_b64_decode(const char *in, char **out, size_t *outlen)
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
        kube__kc_wipe_free_len(dec, n / 4 * 3);
        rc = -1;
        goto out_clean;
    }
    *outlen = (size_t)got - (size_t)pad;
    dec[*outlen] = '\0';
    *out = dec;
    rc = 0;
out_clean:
    kube__kc_wipe_free_len(clean, n);
    return rc;
}

/* Returns ref resolved against dir ("" meaning the working directory) as a
 * fresh string owned by the caller, or NULL when memory runs out. */
char *kube__kc_resolve_path(const char *dir, const char *ref)
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
char *kube__kc_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return strdup("");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int kube_config_reload_token(kube_config_t *c, bool *changed, char *err, size_t errlen)
{
    char why[KC_WHY_MAX], *token;

    *changed = false;
    if (!c->token_file)
        return 0;
    if (kube__kc_read_token(c->token_file, &token, why, sizeof(why)) < 0) {
        util_set_err(err, errlen, "token file %s: %s", c->token_file, why);
        return -1;
    }
    if (c->token && strcmp(c->token, token) == 0) {
        kube__kc_wipe_free(token);
        return 0;
    }
    log_add_secret(token);
    kube__kc_wipe_free(c->token);
    c->token = token;
    *changed = true;
    return 0;
}

void kube_config_free(kube_config_t *c)
{
    if (!c)
        return;
    kube__kc_wipe_free(c->token);
    kube__kc_wipe_free_len(c->key_pem, c->key_pem_len);
    free(c->source);
    free(c->context);
    free(c->server);
    free(c->tls_server_name);
    free(c->ca_pem);
    free(c->cert_pem);
    free(c->token_file);
    kube_exec_free(c->exec);
    memset(c, 0, sizeof(*c));
}
