/*
 * util/text — bounded copies of text that never split a UTF-8 sequence.
 *
 * Shared ground: used wherever a message or a name from the cluster is cut
 * to fit a fixed buffer (the eviction decision, the AdmissionReview codec).
 * Calls nothing but libc.
 */
#ifndef VMDRAIN_UTIL_TEXT_H
#define VMDRAIN_UTIL_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies src into dst (n > 0 bytes with the terminator), cut so that no
 * UTF-8 sequence is split. Returns true when all of src fit. */
bool text_copy_cut(char *dst, size_t n, const char *src);

#endif
