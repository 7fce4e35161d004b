/*
 * Fuzz driver for the Kubernetes Status decoder (the body of every non-2xx
 * apiserver response): whatever the input, the decoded strings stay
 * terminated inside their fields, hold no control characters, and a
 * rejected body leaves nothing decoded.
 */
#include "kube/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless s is terminated within cap bytes and free of control
 * characters. */
static void check_field(const char *s, size_t cap)
{
    const char *end = memchr(s, '\0', cap);
    if (!end)
        abort();
    for (const char *p = s; p < end; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kube_api_status_t st;
    char err[256];
    int rc = kube_api_status_decode((const char *)data, size, &st, err, sizeof(err));
    check_field(st.reason, sizeof(st.reason));
    check_field(st.message, sizeof(st.message));
    if (rc < 0 &&
        (st.code != 0 || st.reason[0] || st.message[0] || !memchr(err, '\0', sizeof(err))))
        abort();
    if (rc != 0 && rc != -1)
        abort();
    return 0;
}
