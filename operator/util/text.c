/*
 * util/text — see text.h. Calls only libc; called by drain/eviction and
 * web/admission.
 */
#include "util/text.h"

#include <string.h>

bool text_copy_cut(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    bool fit = len < n;

    if (!fit) {
        len = n - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return fit;
}
