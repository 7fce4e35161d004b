#include <criterion/criterion.h>

#include "util/num.h"

#include <stdint.h>
#include <string.h>

static int p64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return num_parse_i64(s, strlen(s), min, max, out);
}

Test(num, parses_decimal_integers_in_range)
{
    int64_t v = 0;
    int n = 0;
    cr_expect_eq(p64("0", 0, 10, &v), 0);
    cr_expect_eq(v, 0);
    cr_expect_eq(p64("9223372036854775807", 0, INT64_MAX, &v), 0);
    cr_expect_eq(v, INT64_MAX);
    cr_expect_eq(p64("-9223372036854775808", INT64_MIN, 0, &v), 0);
    cr_expect_eq(v, INT64_MIN);
    cr_expect_eq(num_parse_int("42", 1, 100, &n), 0);
    cr_expect_eq(n, 42);
}

Test(num, refuses_what_is_not_a_number_it_may_hold)
{
    static const char *const bad[] = {"",
                                      "-",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1a",
                                      "0x10",
                                      "1.0",
                                      "9223372036854775808",
                                      "99999999999999999999",
                                      "-1",
                                      "2147483647"};
    int64_t v = 7;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(p64(bad[i], 0, 1000000, &v), -1, "accepted \"%s\"", bad[i]);
        cr_expect_eq(v, 7, "changed the output for \"%s\"", bad[i]);
    }
    int n = 7;
    cr_expect_eq(num_parse_int(NULL, 0, 10, &n), -1);
    cr_expect_eq(num_parse_int("11", 0, 10, &n), -1);
    cr_expect_eq(n, 7);
    /* length-bounded: bytes past len are not read */
    cr_expect_eq(num_parse_i64("12345", 2, 0, 100, &v), 0);
    cr_expect_eq(v, 12);
}

Test(num, parses_durations_with_one_unit)
{
    static const struct {
        const char *in;
        double want;
    } good[] = {{"15s", 15}, {"1.5", 1.5}, {"500ms", 0.5},
                {"2m", 120}, {"1h", 3600}, {"0.25s", 0.25}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        double v = -1;
        cr_expect_eq(num_parse_duration(good[i].in, &v), 0, "%s refused", good[i].in);
        cr_expect_float_eq(v, good[i].want, 1e-9, "%s gave %g", good[i].in, v);
    }
    static const char *const bad[] = {"",     "s",     "-1s", "1.2.3s", "1 s",
                                      "1sec", "1m30s", "1e3", ".",      "1234567890123456s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double v = 7;
        cr_expect_eq(num_parse_duration(bad[i], &v), -1, "'%s' accepted", bad[i]);
        cr_expect_float_eq(v, 7, 0, "'%s' changed the output", bad[i]);
    }
}
