/*
 * Fuzz driver for what an exec credential plugin prints: the first byte
 * picks the apiVersion asked for (v1 or v1beta1), the rest is the plugin's
 * stdout. A credential that is accepted has a bearer-safe token or a PEM
 * certificate and key (or both); a refusal is a terminated
 * "ExecCredential: ..." line and leaves nothing behind. The same bytes, as
 * the server of KUBERNETES_EXEC_INFO, give valid JSON or (not UTF-8) none.
 */
#include "kube/execcred.h"
#include "util/jsontree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cred(const char *s, size_t len, const char *api)
{
    kube_exec_cred_t c;
    char err[256];
    int rc = kube_exec_cred_parse(s, len, api, &c, err, sizeof(err));

    if (rc == 0) {
        if (!c.token && !c.cert_pem)
            abort();
        if (!c.cert_pem != !c.key_pem)
            abort();
        for (const char *t = c.token; t && *t; t++)
            if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
                abort();
        if (c.cert_pem &&
            (strlen(c.cert_pem) != c.cert_pem_len || !strstr(c.cert_pem, "-----BEGIN ")))
            abort();
        if (c.key_pem && (strlen(c.key_pem) != c.key_pem_len || !strstr(c.key_pem, "-----BEGIN ")))
            abort();
    } else if (rc != -1 || !memchr(err, '\0', sizeof(err)) ||
               strncmp(err, "ExecCredential: ", 16) != 0 || c.token || c.cert_pem || c.key_pem) {
        abort();
    }
    kube_exec_cred_free(&c);
}

static void check_info(const char *s, size_t len, const char *api)
{
    kube_exec_t e = {.api_version = (char *)api, .provide_cluster_info = true};
    kube_exec_cluster_t cl = {.server = s, .tls_server_name = s, .ca_pem = s, .ca_pem_len = len};
    char err[256];
    char *info = kube_exec_info_json(&e, &cl);

    if (!info)
        return; /* a string that is not UTF-8 */
    yajl_val t = util_json_tree_parse(info, strlen(info), 8, "info", err, sizeof(err));
    if (!t)
        abort();
    yajl_tree_free(t);
    free(info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *api;
    char *s;

    if (size < 1 || size > (1u << 17))
        return 0;
    api = data[0] & 1 ? KUBE_EXEC_API_V1BETA1 : KUBE_EXEC_API_V1;
    s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    check_cred(s, size - 1, api);
    check_info(s, strlen(s), api);
    free(s);
    return 0;
}
