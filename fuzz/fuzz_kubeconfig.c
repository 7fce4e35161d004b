/*
 * Fuzz driver for the kubeconfig parser: any byte string must either load
 * or be rejected with a message naming the source; a loaded config must have
 * an http(s) server without a trailing slash, and blobs whose lengths match.
 * The source points into a directory that does not exist, so relative file
 * references fail instead of reading whatever lies around.
 */
#include "kube/config.h"
#include "util/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_SOURCE "/nonexistent/vmdrain-fuzz/config"
#define FUZZ_PREFIX "kubeconfig " FUZZ_SOURCE ": "

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks what a successful load promises; aborts on a broken invariant. */
static void check_loaded(const kube_config_t *c)
{
    size_t n;

    if (!c->server || !c->source || !c->context || strcmp(c->source, FUZZ_SOURCE) != 0)
        abort();
    if (strncmp(c->server, "https://", 8) != 0 && strncmp(c->server, "http://", 7) != 0)
        abort();
    n = strlen(c->server);
    if (c->server[n - 1] == '/')
        abort();
    if ((c->ca_pem && strlen(c->ca_pem) > c->ca_pem_len) ||
        (c->cert_pem && strlen(c->cert_pem) > c->cert_pem_len) ||
        (c->key_pem && strlen(c->key_pem) > c->key_pem_len))
        abort();
    if (!c->cert_pem != !c->key_pem)
        abort();
    if (c->insecure_skip_tls_verify && c->ca_pem)
        abort();
}

/* Parses once with the file's current-context and once with context "a",
 * so that both ways of choosing a context are exercised. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const contexts[] = {NULL, "a"};
    char err[512];

    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, NULL); /* no insecure-TLS warnings */
    for (int i = 0; i < 2; i++) {
        kube_config_t c;
        int rc = kube_config_parse_buffer((const char *)data, size, FUZZ_SOURCE, contexts[i], &c,
                                          err, sizeof(err));
        if (rc == 0)
            check_loaded(&c);
        else if (rc != -1 || strncmp(err, FUZZ_PREFIX, sizeof(FUZZ_PREFIX) - 1) != 0 || c.server)
            abort(); /* every rejection explains itself and leaves out empty */
        kube_config_free(&c);
    }
    return 0;
}
