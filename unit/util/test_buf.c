#include <criterion/criterion.h>

#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(buf, append_and_terminate)
{
    buf_t b;
    buf_init(&b, 100);
    cr_expect_null(b.data);
    cr_assert_eq(buf_append(&b, "abc", 3), 0);
    cr_assert_eq(buf_puts(&b, "def"), 0);
    cr_expect_eq(b.len, 6);
    cr_expect_str_eq(b.data, "abcdef");
    cr_assert_eq(buf_printf(&b, "-%d-%s", 42, "x"), 0);
    cr_expect_str_eq(b.data, "abcdef-42-x");
    buf_free(&b);
    cr_expect_null(b.data);
    cr_expect_eq(b.len, 0);
}

Test(buf, grows_across_many_appends)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(buf_append(&b, "0123456789", 10), 0);
    cr_expect_eq(b.len, 100000);
    cr_expect_eq(b.data[99999], '9');
    cr_expect_eq(b.data[100000], '\0');
    buf_free(&b);
}

Test(buf, hard_cap_refuses_and_keeps_content)
{
    buf_t b;
    buf_init(&b, 8);
    cr_assert_eq(buf_puts(&b, "12345678"), 0, "exactly the cap fits");
    errno = 0;
    cr_expect_eq(buf_append(&b, "9", 1), -1);
    cr_expect_eq(errno, E2BIG);
    cr_expect_str_eq(b.data, "12345678", "a refused append changes nothing");
    cr_expect_eq(buf_printf(&b, "%s", "more"), -1);
    cr_expect_eq(b.len, 8);
    buf_reset(&b);
    cr_expect_eq(b.len, 0);
    cr_expect_str_eq(b.data, "");
    cr_expect_eq(buf_puts(&b, "123456789"), -1, "one past the cap is refused");
    buf_free(&b);
}

Test(buf, zero_cap_accepts_nothing)
{
    buf_t b;
    buf_init(&b, 0);
    cr_expect_eq(buf_append(&b, "", 0), 0);
    cr_expect_eq(buf_append(&b, "x", 1), -1);
    buf_free(&b);
}

Test(buf, consume_prefix)
{
    buf_t b;
    buf_init(&b, 64);
    buf_puts(&b, "hello world");
    buf_consume(&b, 6);
    cr_expect_str_eq(b.data, "world");
    cr_expect_eq(b.len, 5);
    buf_consume(&b, 99);
    cr_expect_eq(b.len, 0);
    cr_expect_str_eq(b.data, "");
    buf_free(&b);
}

Test(buf, steal_hands_over_ownership)
{
    buf_t b;
    buf_init(&b, 64);
    char *empty = buf_steal(&b);
    cr_assert_not_null(empty);
    cr_expect_str_eq(empty, "");
    free(empty);
    buf_puts(&b, "mine");
    char *s = buf_steal(&b);
    cr_expect_str_eq(s, "mine");
    cr_expect_null(b.data);
    cr_expect_eq(b.len, 0);
    free(s);
    buf_free(&b);
}
