/*
 * Fuzz driver for what /metrics' guard reads from outside: the first byte
 * picks the parser, the rest is its input. 0: an Authorization header
 * (the token lies inside it, bounded, printable); 1: a TokenReview answer
 * (a refusal leaves no user; an accepted one has a name, and the
 * SubjectAccessReview built for it is valid JSON); 2: a
 * SubjectAccessReview answer. Each result is one of the documented ones,
 * and an error is a terminated line.
 */
#include "kube/authreview.h"
#include "util/jsontree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void header(const char *s)
{
    const char *tok = NULL;
    char err[160];
    long n = kube_bearer_token(s, &tok, err, sizeof(err));

    if (n < -1 || n > KUBE_AUTHZ_TOKEN_MAX || (n > 0) != (tok != NULL))
        abort();
    if (n > 0 && (tok < s || tok + n > s + strlen(s)))
        abort();
    for (long i = 0; i < n; i++)
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f)
            abort();
    if (n < 0 && !memchr(err, '\0', sizeof(err)))
        abort();
}

static void tokenreview(const char *s, size_t len)
{
    kube_authz_user_t u;
    char why[KUBE_AUTHZ_WHY_MAX], err[256];
    int rc = kube_tokenreview_parse(s, len, &u, why, sizeof(why), err, sizeof(err));

    if (rc < -1 || rc > 1)
        abort();
    if (rc < 0 && (u.name[0] || u.ngroups || u.nextra || why[0]))
        abort();
    if (rc == 0 && !why[0])
        abort();
    if (rc == 1) {
        size_t blen = 0;
        char *body = kube_sar_body(&u, "get", "/metrics", &blen);
        if (!u.name[0])
            abort();
        if (body) { /* NULL only when a string is not UTF-8 */
            yajl_val t = util_json_tree_parse(body, blen, 16, "sar", err, sizeof(err));
            if (!t)
                abort();
            yajl_tree_free(t);
            free(body);
        }
    }
    kube_authz_user_free(&u);
}

static void sar(const char *s, size_t len)
{
    char why[KUBE_AUTHZ_WHY_MAX], err[256];
    int rc = kube_sar_parse(s, len, why, sizeof(why), err, sizeof(err));

    if (rc < -1 || rc > 1 || (rc == 0 && !why[0]) || (rc != 0 && why[0]))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1 || size > (1u << 17))
        return 0;
    s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        header(s);
        break;
    case 1:
        tokenreview(s, size - 1);
        break;
    default:
        sar(s, size - 1);
        break;
    }
    free(s);
    return 0;
}
