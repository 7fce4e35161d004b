#include <criterion/criterion.h>

#include "util/timefmt.h"

#include <string.h>

static vd_time_t parse_ok(const char *s)
{
    vd_time_t t = {-1, -1};
    char err[160] = "";
    cr_assert_eq(time_parse_rfc3339(s, &t, err, sizeof(err)), 0, "\"%s\" rejected: %s", s, err);
    return t;
}

static void expect_error(const char *s, const char *why)
{
    vd_time_t t = {42, 42};
    char err[160] = "";
    cr_assert_eq(time_parse_rfc3339(s, &t, err, sizeof(err)), -1, "\"%s\" accepted", s);
    cr_expect(strstr(err, s) != NULL, "error \"%s\" does not quote the input", err);
    cr_expect(strstr(err, why) != NULL, "error \"%s\" does not say \"%s\"", err, why);
    cr_expect(t.sec == 42 && t.nsec == 42, "output written on error");
}

Test(timefmt, parses_utc)
{
    vd_time_t t = parse_ok("2019-03-29T04:02:49Z");
    cr_expect_eq(t.sec, 1553832169);
    cr_expect_eq(t.nsec, 0);
    t = parse_ok("1970-01-01T00:00:00Z");
    cr_expect_eq(t.sec, 0);
    t = parse_ok("2000-02-29T23:59:59z");
    cr_expect_eq(t.sec, 951868799);
}

Test(timefmt, parses_fraction)
{
    vd_time_t t = parse_ok("2019-03-29T04:02:49.5Z");
    cr_expect_eq(t.nsec, 500000000);
    t = parse_ok("2019-03-29T04:02:49.123456Z");
    cr_expect_eq(t.nsec, 123456000);
    t = parse_ok("2019-03-29T04:02:49.123456789123Z");
    cr_expect_eq(t.nsec, 123456789, "digits past nanoseconds are dropped");
}

Test(timefmt, parses_offsets)
{
    vd_time_t utc = parse_ok("2019-03-29T04:02:49Z");
    vd_time_t plus = parse_ok("2019-03-29T09:32:49+05:30");
    vd_time_t minus = parse_ok("2019-03-28T23:02:49-05:00");
    cr_expect_eq(plus.sec, utc.sec);
    cr_expect_eq(minus.sec, utc.sec);
    vd_time_t before = parse_ok("1969-12-31T23:59:59Z");
    cr_expect_eq(before.sec, -1);
}

Test(timefmt, rejects_bad_input)
{
    expect_error("", "bad date");
    expect_error("2019-03-29", "missing 'T'");
    expect_error("2019-03-29 04:02:49Z", "missing 'T'");
    expect_error("2019-03-29T04:02:49", "missing zone");
    expect_error("2019-13-01T00:00:00Z", "out of range");
    expect_error("2019-02-29T00:00:00Z", "out of range");
    expect_error("2019-04-31T00:00:00Z", "out of range");
    expect_error("2019-03-29T24:00:00Z", "out of range");
    expect_error("2019-03-29T04:60:00Z", "out of range");
    expect_error("2019-03-29T04:02:49.Z", "empty fraction");
    expect_error("2019-03-29T04:02:49+0530", "bad offset");
    expect_error("2019-03-29T04:02:49ZZ", "trailing");
    expect_error("19-03-29T04:02:49Z", "bad date");
    expect_error("2019-03-29T4:02:49Z", "bad time");
    cr_expect_eq(time_parse_rfc3339(NULL, &(vd_time_t){0, 0}, NULL, 0), -1);
}

Test(timefmt, formats)
{
    char out[TIME_RFC3339_MAX];
    cr_assert_eq(time_format_rfc3339((vd_time_t){1553832169, 0}, 0, out, sizeof(out)), 20);
    cr_expect_str_eq(out, "2019-03-29T04:02:49Z");
    time_format_rfc3339((vd_time_t){1553832169, 123456789}, 6, out, sizeof(out));
    cr_expect_str_eq(out, "2019-03-29T04:02:49.123456Z");
    time_format_rfc3339((vd_time_t){-1, 0}, 3, out, sizeof(out));
    cr_expect_str_eq(out, "1969-12-31T23:59:59.000Z");
    cr_expect_eq(time_format_rfc3339((vd_time_t){0, 0}, 0, out, 20), -1, "no room for NUL");
    cr_expect_eq(time_format_rfc3339((vd_time_t){253402300800LL, 0}, 0, out, sizeof(out)), -1,
                 "year 10000 cannot be written");
}

Test(timefmt, round_trip)
{
    const char *samples[] = {"2026-11-26T15:03:31.250Z", "1999-12-31T23:59:59.999Z",
                             "2024-02-29T12:00:00.000Z", "0001-01-01T00:00:00.000Z"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char out[TIME_RFC3339_MAX];
        vd_time_t t = parse_ok(samples[i]);
        cr_assert_gt(time_format_rfc3339(t, 3, out, sizeof(out)), 0);
        cr_expect_str_eq(out, samples[i]);
    }
}

Test(timefmt, diff)
{
    vd_time_t a = parse_ok("2019-03-29T04:02:47Z");
    vd_time_t b = parse_ok("2019-03-29T04:02:49.5Z");
    cr_expect_float_eq(time_diff(a, b), 2.5, 1e-9);
    cr_expect_float_eq(time_diff(b, a), -2.5, 1e-9);
}
