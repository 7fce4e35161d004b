#include <criterion/criterion.h>

#include "util/quantity.h"

#include <stdio.h>
#include <string.h>

/* Parses s into whole units and asserts the result. */
static void expect_units(const char *s, int64_t want)
{
    char err[128] = "";
    int64_t v = -12345;
    cr_assert_eq(quantity_parse(s, 0, &v, err, sizeof(err)), 0, "\"%s\" rejected: %s", s, err);
    cr_expect_eq(v, want, "\"%s\" = %lld, want %lld", s, (long long)v, (long long)want);
}

static void expect_milli(const char *s, int64_t want)
{
    char err[128] = "";
    int64_t v = -12345;
    cr_assert_eq(quantity_parse_milli(s, 0, &v, err, sizeof(err)), 0, "\"%s\": %s", s, err);
    cr_expect_eq(v, want, "\"%s\" = %lldm, want %lldm", s, (long long)v, (long long)want);
}

/* Asserts that s is rejected and that the message quotes s and says why. */
static void expect_error(const char *s, unsigned flags, const char *why)
{
    char err[160] = "";
    int64_t v = 777;
    cr_assert_eq(quantity_parse(s, flags, &v, err, sizeof(err)), -1, "\"%s\" accepted as %lld", s,
                 (long long)v);
    cr_expect_eq(v, 777, "output written on error");
    char quoted[96];
    snprintf(quoted, sizeof(quoted), "\"%s\"", s);
    cr_expect(strstr(err, quoted) != NULL, "error \"%s\" does not name %s", err, quoted);
    cr_expect(strstr(err, why) != NULL, "error \"%s\" does not say \"%s\"", err, why);
}

Test(quantity, binary_suffixes)
{
    expect_units("4Gi", 4LL << 30);
    expect_units("4096Mi", 4LL << 30);
    expect_units("64Mi", 64LL << 20);
    expect_units("1Ki", 1024);
    expect_units("2Ti", 2LL << 40);
    expect_units("1Pi", 1LL << 50);
    expect_units("7Ei", 7LL << 60);
    expect_units("1.5Ki", 1536);
    expect_units("0.5Gi", 512LL << 20);
}

Test(quantity, decimal_suffixes)
{
    expect_units("1.5G", 1500000000LL);
    expect_units("1k", 1000);
    expect_units("3M", 3000000);
    expect_units("2T", 2000000000000LL);
    expect_units("1P", 1000000000000000LL);
    expect_units("9E", 9000000000000000000LL);
    expect_units("0", 0);
    expect_units("123", 123);
    expect_units("+5", 5);
    expect_units("5.", 5);
    expect_units(".5k", 500);
}

Test(quantity, exponents)
{
    expect_units("1e3", 1000);
    expect_units("1E3", 1000);
    expect_units("12e-1", 2); /* 1.2 rounds up */
    expect_units("1e+2", 100);
    expect_units("0e9", 0);
}

Test(quantity, milli_and_rounding_up)
{
    expect_units("500m", 1);
    expect_units("1500m", 2);
    expect_units("1n", 1);
    expect_milli("500m", 500);
    expect_milli("2", 2000);
    expect_milli("1.5", 1500);
    expect_milli("1u", 1);
    expect_milli("0.0001", 1);
}

Test(quantity, trailing_zeros_beyond_precision)
{
    expect_units("1000000000000000000", 1000000000000000000LL);
    expect_units("100000000000000000000m", 100000000000000000LL);
    expect_units("1.50000000000000000000000Ki", 1536);
}

Test(quantity, negative)
{
    int64_t v = 0;
    char err[128];
    cr_assert_eq(quantity_parse("-2Gi", QUANTITY_ALLOW_NEGATIVE, &v, err, sizeof(err)), 0);
    cr_expect_eq(v, -(2LL << 30));
    cr_assert_eq(quantity_parse("-1500m", QUANTITY_ALLOW_NEGATIVE, &v, err, sizeof(err)), 0);
    cr_expect_eq(v, -1, "ceil(-1.5) is -1, got %lld", (long long)v);
    cr_assert_eq(quantity_parse("-0", 0, &v, err, sizeof(err)), 0, "-0 is zero, not negative");
    cr_expect_eq(v, 0);
    expect_error("-1Gi", 0, "must not be negative");
}

Test(quantity, rejects_junk)
{
    expect_error("", 0, "empty");
    expect_error("Gi", 0, "no number");
    expect_error("4Gx", 0, "unknown suffix");
    expect_error("4gi", 0, "unknown suffix");
    expect_error("4 Gi", 0, "unknown suffix");
    expect_error(" 4Gi", 0, "no number");
    expect_error("1.2.3", 0, "unknown suffix");
    expect_error("0x10", 0, "unknown suffix");
    expect_error("1e", 0, "unknown suffix");
    expect_error("1e99999", 0, "unknown suffix");
    expect_error("--1", 0, "no number");
    expect_error(".", 0, "no number");
    expect_error("1Ki2", 0, "unknown suffix");
}

Test(quantity, rejects_overflow)
{
    expect_error("8Ei", 0, "out of range");
    expect_error("10E", 0, "out of range");
    expect_error("1e19", 0, "out of range");
    expect_error("1e400", 0, "out of range");
    expect_error("12345678901234567891", 0, "too many significant digits");
    char err[128];
    int64_t v;
    cr_expect_eq(quantity_parse_milli("9223372036854775807", 0, &v, err, sizeof(err)), -1,
                 "milli of INT64_MAX must overflow");
}

Test(quantity, extremes_fit)
{
    expect_units("9223372036854775807", INT64_MAX);
    int64_t v;
    cr_assert_eq(quantity_parse("-9223372036854775808", QUANTITY_ALLOW_NEGATIVE, &v, NULL, 0), 0);
    cr_expect_eq(v, INT64_MIN);
    expect_error("9223372036854775808", 0, "out of range");
}

Test(quantity, rejects_overlong_input)
{
    char s[200];
    memset(s, '1', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    char err[160];
    int64_t v;
    cr_expect_eq(quantity_parse(s, 0, &v, err, sizeof(err)), -1);
    cr_expect(strstr(err, "too long") != NULL, "got: %s", err);
    cr_expect_eq(quantity_parse(NULL, 0, &v, NULL, 0), -1, "NULL input must be rejected");
}
