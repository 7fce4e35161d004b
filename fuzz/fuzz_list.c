/*
 * Fuzz driver for LIST bodies: the input is fed to a LIST decoder of every
 * kind, whole and in input-derived chunks; both must agree, nothing may
 * leak or crash (fuzz_decode.h).
 */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decode_all_kinds(KUBE_DECODE_LIST, data, size);
    return 0;
}
