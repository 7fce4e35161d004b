/*
 * quantity — Kubernetes resource quantities ("4Gi", "1.5G", "500m", "1e3").
 *
 * The grammar is Kubernetes' own: an optionally signed decimal number, then
 * a binary-SI suffix (Ki Mi Gi Ti Pi Ei), a decimal-SI suffix (n u m "" k M G
 * T P E) or a decimal exponent (e3, E-2). Quantities reach vmdrain from VMI
 * specs, MigrationPolicies and the configuration, so a bad one is reported
 * with the input quoted, never guessed at.
 */
#ifndef VMDRAIN_UTIL_QUANTITY_H
#define VMDRAIN_UTIL_QUANTITY_H

#include <stddef.h>
#include <stdint.h>

/* Longest quantity string accepted; Kubernetes' own are far shorter. */
#define QUANTITY_MAX_LEN 64

enum {
    QUANTITY_ALLOW_NEGATIVE = 1 << 0,
};

/* Parses s and stores its value in whole units, rounded up as Kubernetes'
 * Quantity.Value() does ("1.5Ki" is 1536, "500m" is 1). Returns 0, or -1
 * with a message naming the input in err (may be NULL). */
int quantity_parse(const char *s, unsigned flags, int64_t *out, char *err, size_t errlen);

/* Same, in thousandths of a unit ("500m" is 500, "2" is 2000), rounded up
 * like Quantity.MilliValue(). */
int quantity_parse_milli(const char *s, unsigned flags, int64_t *out, char *err, size_t errlen);

#endif
