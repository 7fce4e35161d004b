/*
 * Fuzz driver for RFC 3339 parsing: anything accepted must format and parse
 * back to the same instant.
 */
#include "util/timefmt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char out[TIME_RFC3339_MAX], err[160];
    vd_time_t t, back;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (time_parse_rfc3339(s, &t, err, sizeof(err)) == 0 &&
        time_format_rfc3339(t, 9, out, sizeof(out)) > 0) {
        if (time_parse_rfc3339(out, &back, err, sizeof(err)) != 0 || back.sec != t.sec ||
            back.nsec != t.nsec)
            abort();
    }
    free(s);
    return 0;
}
