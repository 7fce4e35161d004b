#include <criterion/criterion.h>

#include "util/jsongen.h"

#include <stdlib.h>
#include <string.h>

Test(jsongen, writes_a_document)
{
    util_jgen_t j;
    char *out = NULL;
    cr_assert_eq(util_jgen_init(&j), 0);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "a", "x\"y");
    util_jgen_kint(&j, "n", -7);
    util_jgen_str(&j, "b");
    util_jgen_bool(&j, true);
    util_jgen_kv(&j, "z", NULL);
    util_jgen_str(&j, "l");
    util_jgen_array_open(&j);
    util_jgen_null(&j);
    util_jgen_strn(&j, "abc", 2);
    util_jgen_array_close(&j);
    cr_expect_eq(util_jgen_map_close(&j), 0);
    cr_expect(util_jgen_ok(&j));
    long n = util_jgen_take(&j, &out);
    cr_assert_geq(n, 0);
    cr_expect_str_eq(out, "{\"a\":\"x\\\"y\",\"n\":-7,\"b\":true,\"z\":null,\"l\":[null,\"ab\"]}");
    cr_expect_eq((size_t)n, strlen(out));
    cr_expect_str_eq(util_jgen_error(&j), "ok");
    free(out);
    util_jgen_free(&j);
}

Test(jsongen, a_failed_call_sticks_and_fails_the_result)
{
    util_jgen_t j;
    char *out = (char *)"unchanged";
    const char *text = "x";
    size_t len = 9;
    cr_assert_eq(util_jgen_init(&j), 0);
    util_jgen_map_open(&j);
    cr_expect_eq(util_jgen_int(&j, 1), -1); /* a key must be a string */
    cr_expect_not(util_jgen_ok(&j));
    cr_expect_eq(util_jgen_str(&j, "k"), -1); /* refused after the failure */
    cr_expect_eq(util_jgen_map_close(&j), -1);
    cr_expect_eq(util_jgen_get(&j, &text, &len), -1);
    cr_expect_null(text);
    cr_expect_eq(len, 0);
    cr_expect_eq(util_jgen_take(&j, &out), -1);
    cr_expect_null(out);
    cr_expect_str_eq(util_jgen_error(&j), "a key must be a string");
    util_jgen_free(&j);
}

Test(jsongen, invalid_utf8_is_refused)
{
    util_jgen_t j;
    cr_assert_eq(util_jgen_init(&j), 0);
    cr_expect_eq(util_jgen_str(&j, "caf\xc3"), -1);
    cr_expect_str_eq(util_jgen_error(&j), "invalid UTF-8 in a string");
    util_jgen_free(&j);
}

Test(jsongen, a_complete_document_refuses_more)
{
    util_jgen_t j;
    cr_assert_eq(util_jgen_init(&j), 0);
    cr_expect_eq(util_jgen_int(&j, 1), 0);
    cr_expect_eq(util_jgen_int(&j, 2), -1);
    cr_expect_str_eq(util_jgen_error(&j), "document already complete");
    util_jgen_free(&j);
}
