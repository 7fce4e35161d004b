#include <criterion/criterion.h>

#include "util/log.h"
#include "util/timefmt.h"

#include <stdlib.h>
#include <string.h>

static char *captured;
static size_t captured_len;
static FILE *sink;

static void capture(log_level_t level, log_format_t format)
{
    sink = open_memstream(&captured, &captured_len);
    cr_assert_not_null(sink);
    log_setup(level, format, sink);
}

/* Stops capturing and returns what was written (owned by the test file). */
static const char *output(void)
{
    fclose(sink);
    sink = NULL;
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    return captured;
}

static void teardown(void)
{
    if (sink)
        fclose(sink);
    free(captured);
    captured = NULL;
    log_clear_secrets();
}

TestSuite(log, .fini = teardown);

Test(log, parses_levels_and_formats)
{
    log_level_t l;
    log_format_t f;
    cr_expect_eq(log_parse_level("debug", &l), 0);
    cr_expect_eq(l, LOG_LEVEL_DEBUG);
    cr_expect_eq(log_parse_level("WARN", &l), 0);
    cr_expect_eq(l, LOG_LEVEL_WARN);
    cr_expect_eq(log_parse_level("verbose", &l), -1);
    cr_expect_eq(log_parse_level(NULL, &l), -1);
    cr_expect_eq(log_parse_format("json", &f), 0);
    cr_expect_eq(f, LOG_FORMAT_JSON);
    cr_expect_eq(log_parse_format("xml", &f), -1);
}

Test(log, text_line_has_timestamp_level_and_pairs)
{
    capture(LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
    log_info("drain started", "node", "worker-1", "reason", "taint kubevirt.io/drain");
    const char *out = output();
    cr_assert(strncmp(out, "ts=", 3) == 0, "got: %s", out);
    char ts[32] = "";
    sscanf(out + 3, "%31s", ts);
    vd_time_t t;
    cr_expect_eq(time_parse_rfc3339(ts, &t, NULL, 0), 0, "timestamp \"%s\" is not RFC 3339", ts);
    cr_expect(strstr(out, " level=info msg=\"drain started\" node=worker-1 "
                          "reason=\"taint kubevirt.io/drain\"\n") != NULL,
              "got: %s", out);
}

Test(log, level_threshold_filters)
{
    capture(LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
    log_debug("hidden-debug");
    log_info("hidden-info");
    log_warn("shown-warn");
    log_error("shown-error");
    const char *out = output();
    cr_expect_null(strstr(out, "hidden"), "got: %s", out);
    cr_expect_not_null(strstr(out, "level=warn msg=shown-warn"));
    cr_expect_not_null(strstr(out, "level=error msg=shown-error"));
    cr_expect(log_enabled(LOG_LEVEL_ERROR));
}

Test(log, json_line_is_escaped)
{
    capture(LOG_LEVEL_DEBUG, LOG_FORMAT_JSON);
    log_info("quote \" and \\ and\nnewline", "k", "tab\there", "ctl", "\x01");
    const char *out = output();
    cr_expect(strncmp(out, "{\"ts\":\"", 7) == 0, "got: %s", out);
    cr_expect_not_null(strstr(out, "\"level\":\"info\","));
    cr_expect_not_null(strstr(out, "\"msg\":\"quote \\\" and \\\\ and\\nnewline\""), "got: %s",
                       out);
    cr_expect_not_null(strstr(out, "\"k\":\"tab\\there\",\"ctl\":\"\\u0001\"}\n"), "got: %s", out);
}

Test(log, secrets_by_key_are_redacted)
{
    capture(LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
    log_info("loaded", "token", "eyJhbGciOiJSUzI1NiJ9.payload", "client-key-data", "LS0tLS1CRUdJTg",
             "Authorization", "Bearer abcdefgh12345");
    const char *out = output();
    cr_expect_null(strstr(out, "eyJhbGci"), "token leaked: %s", out);
    cr_expect_null(strstr(out, "LS0tLS1"), "key leaked: %s", out);
    cr_expect_null(strstr(out, "abcdefgh12345"), "bearer leaked: %s", out);
    cr_expect_not_null(strstr(out, "token=[REDACTED]"), "got: %s", out);
}

Test(log, bearer_values_and_registered_secrets_are_masked)
{
    capture(LOG_LEVEL_INFO, LOG_FORMAT_JSON);
    log_add_secret("s3cr3t-t0ken-value");
    log_add_secret("short"); /* too short to mask safely: ignored */
    log_info("request failed: header s3cr3t-t0ken-value rejected", "hdr", "Bearer xyz123456",
             "detail", "prefix-s3cr3t-t0ken-value-suffix", "word", "short");
    const char *out = output();
    cr_expect_null(strstr(out, "s3cr3t"), "secret leaked: %s", out);
    cr_expect_null(strstr(out, "xyz123456"), "bearer leaked: %s", out);
    cr_expect_not_null(strstr(out, "\"detail\":\"prefix-[REDACTED]-suffix\""), "got: %s", out);
    cr_expect_not_null(strstr(out, "\"word\":\"short\""), "short strings stay: %s", out);
}

Test(log, long_values_are_cut)
{
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    capture(LOG_LEVEL_INFO, LOG_FORMAT_JSON);
    log_info("big", "v", big);
    const char *out = output();
    size_t n = strlen(out);
    cr_expect_lt(n, (size_t)LOG_LINE_MAX, "line is %zu bytes", n);
    cr_expect_not_null(strstr(out, "xxx...\"}\n"), "cut value must end the line cleanly");
}
