/*
 * kubeconfig_int — what the files of the configuration loader share
 * (kubeconfig.c: the kubeconfig parser; kubeconfig_io.c: files, tokens,
 * base64 and wiping secrets; incluster.c: the service-account
 * environment). Not for other modules: they use kube/config.h.
 */
#ifndef VMDRAIN_KUBE_KUBECONFIG_INT_H
#define VMDRAIN_KUBE_KUBECONFIG_INT_H

#include "kube/config.h"

#include <stdbool.h>
#include <stddef.h>

#define KC_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KC_MAX_TOKEN      (64u << 10) /* bytes of a token file */
#define KC_AT_MAX         128         /* a key path such as "users[12].user" */
#define KC_WHY_MAX        160         /* the reason part of a message */
#define KC_NAME_SHOWN     "%.100s"    /* names are cut in messages */

/* Decodes standard base64 with padding, ignoring line breaks (as Go's
 * encoding/base64 does for kubeconfig data), into a fresh NUL-terminated
 * allocation owned by the caller (*out, *outlen). Returns 0, -1 for invalid
 * base64, or -2 when memory runs out. Scratch copies are wiped: the input
 * may be a private key. */
int kube__kc_b64_decode(const char *in, char **out, size_t *outlen);

/* Returns the directory part of path ("" when it has none) as a fresh
 * string owned by the caller, or NULL when memory runs out. */
char *kube__kc_dir_of(const char *path);

/* True when the blob looks like PEM: libcurl would refuse anything else
 * later, with a vaguer message. */
bool kube__kc_looks_like_pem(const char *data, size_t len);

/* Reads the regular file at path into a fresh NUL-terminated allocation
 * (*data, *len), owned by the caller, who wipes it if it may hold a secret.
 * Only regular files are read (a FIFO would block the loop), and none larger
 * than max bytes; the size is known before reading, so no reallocation
 * leaves copies behind. Returns 0, or -1 with errno set (ENOENT for a
 * missing file) and the reason in why. */
int kube__kc_read_file(const char *path, size_t max, char **data, size_t *len, char *why,
                       size_t whylen);

/* Reads the token in the file at path, trimmed of surrounding whitespace,
 * into a fresh string owned by the caller (kube__kc_wipe_free() it). Returns 0, or -1
 * with the reason in why (the token itself never appears there). */
int kube__kc_read_token(const char *path, char **out, char *why, size_t whylen);

/* Returns ref resolved against dir ("" meaning the working directory) as a
 * fresh string owned by the caller, or NULL when memory runs out. */
char *kube__kc_resolve_path(const char *dir, const char *ref);

/* True when the token may go into an Authorization header: printable ASCII
 * without spaces. */
bool kube__kc_token_chars_ok(const char *t);

/* Wipes and frees a NUL-terminated secret. */
void kube__kc_wipe_free(char *s);

/* Wipes and frees a blob of len bytes (plus its terminator). */
void kube__kc_wipe_free_len(char *s, size_t len);

#endif
