/*
 * Fuzz driver for quantity parsing: any byte string must either parse or be
 * rejected with a message; a parsed value must agree between units and
 * thousandths.
 */
#include "util/quantity.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char err[128];
    int64_t units, milli;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int a = quantity_parse(s, QUANTITY_ALLOW_NEGATIVE, &units, err, sizeof(err));
    if (a < 0 && err[0] == '\0')
        abort(); /* every rejection explains itself */
    int b = quantity_parse_milli(s, QUANTITY_ALLOW_NEGATIVE, &milli, err, sizeof(err));
    /* milli has the wider range problem, so only check when both parsed:
     * rounding up to whole units can never give less than milli / 1000 */
    if (a == 0 && b == 0 && milli > 0 && units < milli / 1000)
        abort();
    free(s);
    return 0;
}
