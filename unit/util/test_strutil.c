#include <criterion/criterion.h>

#include "util/httpstatus.h"
#include "util/strutil.h"

#include <stdlib.h>
#include <string.h>

Test(strutil, set_err_formats_cuts_and_tolerates_no_buffer)
{
    char err[8] = "#######"; /* stale text the call must overwrite */
    util_set_err(err, sizeof(err), "%s %d", "abc", 12345);
    cr_expect_str_eq(err, "abc 123");
    util_set_err(NULL, 10, "%s", "ignored");
    util_set_err(err, 0, "%s", "ignored");
    cr_expect_str_eq(err, "abc 123");
}

Test(strutil, strdup_or_null_copies_and_passes_null)
{
    char *c = util_strdup_or_null("text");
    cr_assert_not_null(c);
    cr_expect_str_eq(c, "text");
    free(c);
    cr_expect_null(util_strdup_or_null(NULL));
}

Test(strutil, strprintf_returns_a_fresh_string)
{
    char *s = util_strprintf("%s:%d", "port", 443);
    cr_assert_not_null(s);
    cr_expect_str_eq(s, "port:443");
    free(s);
}

Test(httpstatus, phrases_are_known_and_unknown_is_null)
{
    cr_expect_str_eq(util_http_phrase(200), "OK");
    cr_expect_str_eq(util_http_phrase(404), "Not Found");
    cr_expect_str_eq(util_http_phrase(410), "Gone");
    cr_expect_str_eq(util_http_phrase(413), "Content Too Large");
    cr_expect_str_eq(util_http_phrase(431), "Request Header Fields Too Large");
    cr_expect_str_eq(util_http_phrase(503), "Service Unavailable");
    cr_expect_null(util_http_phrase(299));
    cr_expect_null(util_http_phrase(-1));
}
