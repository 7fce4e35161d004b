#include <criterion/criterion.h>

#include "util/log.h"
#include "util/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static buf_t out;
static FILE *logsink;
static char *logged;
static size_t logged_len;

static void setup(void)
{
    buf_init(&out, 1 << 20);
    logsink = open_memstream(&logged, &logged_len);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, logsink);
}

static void teardown(void)
{
    metrics_free_all();
    buf_free(&out);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(logsink);
    free(logged);
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 10);

/* Renders the registry into out (reset first) and returns the text. */
static const char *render(void)
{
    buf_reset(&out);
    cr_assert_eq(metrics_render(&out), 0);
    return out.data ? out.data : "";
}

/* Flushes the log capture and returns what was written so far. */
static const char *log_text(void)
{
    fflush(logsink);
    return logged ? logged : "";
}

Test(metrics, counter_with_labels_renders_help_type_and_series)
{
    static const char *const labels[] = {"verb", "code"};
    metrics_counter_t *c = metrics_counter_new("api_requests_total", "Requests sent.", 2, labels);
    cr_assert_not_null(c);
    metrics_counter_add(c, 1, (const char *const[]){"get", "200"});
    metrics_counter_add(c, 2, (const char *const[]){"get", "200"});
    metrics_counter_add(c, 1, (const char *const[]){"list", "403"});
    cr_expect_str_eq(render(), "# HELP vmdrain_api_requests_total Requests sent.\n"
                               "# TYPE vmdrain_api_requests_total counter\n"
                               "vmdrain_api_requests_total{verb=\"get\",code=\"200\"} 3\n"
                               "vmdrain_api_requests_total{verb=\"list\",code=\"403\"} 1\n");
    double v = -1;
    cr_expect_eq(metrics_get("api_requests_total", (const char *const[]){"get", "200"}, &v), 0);
    cr_expect_eq(v, 3);
    cr_expect_eq(metrics_get("api_requests_total", (const char *const[]){"get", "500"}, &v), -1);
    cr_expect_eq(metrics_get("nope", NULL, &v), -1);
}

Test(metrics, counter_ignores_negative_and_nan)
{
    metrics_counter_t *c = metrics_counter_new("c_total", "h", 0, NULL);
    metrics_counter_add(c, 2.5, NULL);
    metrics_counter_add(c, -1, NULL);
    metrics_counter_add(c, NAN, NULL);
    double v = 0;
    cr_assert_eq(metrics_get("c_total", NULL, &v), 0);
    cr_expect_eq(v, 2.5);
}

Test(metrics, unlabelled_metric_renders_zero_before_any_update)
{
    metrics_gauge_new("migrations_in_flight", "In flight.", 0, NULL);
    cr_expect_str_eq(render(), "# HELP vmdrain_migrations_in_flight In flight.\n"
                               "# TYPE vmdrain_migrations_in_flight gauge\n"
                               "vmdrain_migrations_in_flight 0\n");
}

Test(metrics, labelled_metric_without_series_is_left_out)
{
    static const char *const labels[] = {"result"};
    metrics_counter_new("migrations_total", "Done.", 1, labels);
    cr_expect_str_eq(render(), "");
}

Test(metrics, gauge_set_and_add)
{
    static const char *const labels[] = {"node"};
    metrics_gauge_t *g = metrics_gauge_new("vmis_blocked", "Blocked.", 1, labels);
    metrics_gauge_set(g, 5, (const char *const[]){"n1"});
    metrics_gauge_add(g, -2, (const char *const[]){"n1"});
    metrics_gauge_add(g, 0.25, (const char *const[]){"n2"});
    double v = 0;
    cr_assert_eq(metrics_get("vmis_blocked", (const char *const[]){"n1"}, &v), 0);
    cr_expect_eq(v, 3);
    cr_expect(strstr(render(), "vmdrain_vmis_blocked{node=\"n2\"} 0.25\n") != NULL, "got %s",
              out.data);
}

Test(metrics, histogram_buckets_are_cumulative_with_inf_sum_and_count)
{
    static const double buckets[] = {0.1, 1, 10};
    metrics_histogram_t *h =
        metrics_histogram_new("migration_duration_seconds", "Duration.", 3, buckets, 0, NULL);
    cr_assert_not_null(h);
    metrics_histogram_observe(h, 0.05, NULL);
    metrics_histogram_observe(h, 0.1, NULL); /* upper bounds are inclusive */
    metrics_histogram_observe(h, 5, NULL);
    metrics_histogram_observe(h, 100, NULL);
    cr_expect_str_eq(render(), "# HELP vmdrain_migration_duration_seconds Duration.\n"
                               "# TYPE vmdrain_migration_duration_seconds histogram\n"
                               "vmdrain_migration_duration_seconds_bucket{le=\"0.1\"} 2\n"
                               "vmdrain_migration_duration_seconds_bucket{le=\"1\"} 2\n"
                               "vmdrain_migration_duration_seconds_bucket{le=\"10\"} 3\n"
                               "vmdrain_migration_duration_seconds_bucket{le=\"+Inf\"} 4\n"
                               "vmdrain_migration_duration_seconds_sum 105.15\n"
                               "vmdrain_migration_duration_seconds_count 4\n");
    double v = 0;
    cr_assert_eq(metrics_get("migration_duration_seconds_count", NULL, &v), 0);
    cr_expect_eq(v, 4);
    cr_assert_eq(metrics_get("migration_duration_seconds_sum", NULL, &v), 0);
    cr_expect_float_eq(v, 105.15, 1e-9);
    cr_expect_eq(metrics_get("migration_duration_seconds", NULL, &v), -1,
                 "a histogram has no plain sample");
}

Test(metrics, labelled_histogram_puts_le_last)
{
    static const char *const labels[] = {"path"};
    static const double buckets[] = {0.5};
    metrics_histogram_t *h =
        metrics_histogram_new("webhook_request_duration_seconds", "W.", 1, buckets, 1, labels);
    metrics_histogram_observe(h, 0.2, (const char *const[]){"/validate-eviction"});
    const char *t = render();
    cr_expect(strstr(t, "_bucket{path=\"/validate-eviction\",le=\"0.5\"} 1\n") != NULL, "got %s",
              t);
    cr_expect(strstr(t, "_sum{path=\"/validate-eviction\"} 0.2\n") != NULL, "got %s", t);
}

Test(metrics, label_values_and_help_are_escaped)
{
    static const char *const labels[] = {"v"};
    metrics_counter_t *c = metrics_counter_new("esc_total", "line1\nback\\slash \"q\"", 1, labels);
    metrics_counter_add(c, 1, (const char *const[]){"a\"b\\c\nd"});
    cr_expect_str_eq(render(), "# HELP vmdrain_esc_total line1\\nback\\\\slash \"q\"\n"
                               "# TYPE vmdrain_esc_total counter\n"
                               "vmdrain_esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

Test(metrics, values_format_special_and_fractional_numbers)
{
    static const char *const labels[] = {"k"};
    metrics_gauge_t *g = metrics_gauge_new("g", "h", 1, labels);
    metrics_gauge_set(g, INFINITY, (const char *const[]){"a"});
    metrics_gauge_set(g, -INFINITY, (const char *const[]){"b"});
    metrics_gauge_set(g, NAN, (const char *const[]){"c"});
    metrics_gauge_set(g, 0.1, (const char *const[]){"d"});
    metrics_gauge_set(g, 1e20, (const char *const[]){"e"});
    metrics_gauge_set(g, -3, (const char *const[]){"f"});
    const char *t = render();
    cr_expect(strstr(t, "{k=\"a\"} +Inf\n") && strstr(t, "{k=\"b\"} -Inf\n") &&
                  strstr(t, "{k=\"c\"} NaN\n") && strstr(t, "{k=\"d\"} 0.1\n") &&
                  strstr(t, "{k=\"e\"} 1e+20\n") && strstr(t, "{k=\"f\"} -3\n"),
              "got %s", t);
}

Test(metrics, null_label_value_is_empty_string)
{
    static const char *const labels[] = {"a", "b"};
    metrics_counter_t *c = metrics_counter_new("n_total", "h", 2, labels);
    metrics_counter_add(c, 1, (const char *const[]){"x", NULL});
    cr_expect(strstr(render(), "vmdrain_n_total{a=\"x\",b=\"\"} 1\n") != NULL, "got %s", out.data);
}

Test(metrics, registering_again_returns_the_same_metric)
{
    static const char *const labels[] = {"resource"};
    metrics_counter_t *a = metrics_counter_new("watch_restarts_total", "R.", 1, labels);
    metrics_counter_t *b = metrics_counter_new("watch_restarts_total", "R.", 1, labels);
    cr_expect_not_null(a);
    cr_expect_eq(a, b);
    static const char *const other[] = {"kind"};
    cr_expect_null(metrics_counter_new("watch_restarts_total", "R.", 1, other));
    cr_expect_null(metrics_gauge_new("watch_restarts_total", "R.", 1, labels));
    cr_expect(strstr(log_text(), "registered twice") != NULL);
}

Test(metrics, invalid_names_are_rejected)
{
    static const char *const dup[] = {"a", "a"};
    static const char *const reserved[] = {"__x"};
    static const char *const le[] = {"le"};
    static const char *const bad[] = {"1a"};
    static const double buckets[] = {1, 2};
    static const double unsorted[] = {2, 1};
    cr_expect_null(metrics_counter_new("", "h", 0, NULL));
    cr_expect_null(metrics_counter_new("has-dash", "h", 0, NULL));
    cr_expect_null(metrics_counter_new("9lives", "h", 0, NULL));
    cr_expect_null(metrics_counter_new("ok", "h", 2, dup));
    cr_expect_null(metrics_counter_new("ok", "h", 1, reserved));
    cr_expect_null(metrics_counter_new("ok", "h", 1, bad));
    cr_expect_null(metrics_histogram_new("hist", "h", 2, buckets, 1, le));
    cr_expect_null(metrics_histogram_new("hist", "h", 2, unsorted, 0, NULL));
    cr_expect_null(metrics_histogram_new("hist", "h", 0, buckets, 0, NULL));
    cr_expect_not_null(metrics_counter_new("ok", "h", 1, le), "le is fine outside histograms");
    cr_expect_not_null(metrics_counter_new("with:colon", "h", 0, NULL));
    cr_expect(strstr(log_text(), "invalid label name") != NULL);
}

Test(metrics, label_sets_beyond_the_cap_fold_into_other_and_log_once)
{
    static const char *const labels[] = {"id"};
    metrics_counter_t *c = metrics_counter_new("many_total", "h", 1, labels);
    char id[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 50; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        metrics_counter_add(c, 1, (const char *const[]){id});
    }
    double v = 0;
    cr_assert_eq(metrics_get("many_total", (const char *const[]){"other"}, &v), 0);
    cr_expect_eq(v, 50);
    cr_assert_eq(metrics_get("many_total", (const char *const[]){"id-999"}, &v), 0);
    cr_expect_eq(v, 1);
    cr_expect_eq(metrics_get("many_total", (const char *const[]){"id-1000"}, &v), -1);
    const char *l = log_text();
    const char *first = strstr(l, "too many label sets");
    cr_assert_not_null(first);
    cr_expect_null(strstr(first + 1, "too many label sets"), "logged once");
}

Test(metrics, render_reports_a_full_buffer)
{
    static const char *const labels[] = {"k"};
    metrics_counter_t *c = metrics_counter_new("big_total", "h", 1, labels);
    metrics_counter_add(c, 1, (const char *const[]){"some-long-label-value"});
    buf_t small;
    buf_init(&small, 40);
    cr_expect_eq(metrics_render(&small), -1);
    buf_free(&small);
}

Test(metrics, reset_all_zeroes_values_and_forgets_label_sets)
{
    static const char *const labels[] = {"k"};
    static const double buckets[] = {1};
    metrics_counter_t *c = metrics_counter_new("r_total", "h", 1, labels);
    metrics_gauge_t *g = metrics_gauge_new("r_gauge", "h", 0, NULL);
    metrics_histogram_t *h = metrics_histogram_new("r_hist", "h", 1, buckets, 0, NULL);
    metrics_counter_add(c, 1, (const char *const[]){"a"});
    metrics_gauge_set(g, 7, NULL);
    metrics_histogram_observe(h, 3, NULL);
    metrics_reset_all();
    double v = -1;
    cr_expect_eq(metrics_get("r_total", (const char *const[]){"a"}, &v), -1);
    cr_assert_eq(metrics_get("r_gauge", NULL, &v), 0);
    cr_expect_eq(v, 0);
    cr_assert_eq(metrics_get("r_hist_count", NULL, &v), 0);
    cr_expect_eq(v, 0);
    cr_expect(strstr(render(), "vmdrain_r_hist_bucket{le=\"+Inf\"} 0\n") != NULL, "got %s",
              out.data);
    metrics_counter_add(c, 2, (const char *const[]){"a"});
    cr_assert_eq(metrics_get("r_total", (const char *const[]){"a"}, &v), 0);
    cr_expect_eq(v, 2, "handles stay usable after a reset");
}

Test(metrics, bare_names_are_rendered_without_the_prefix)
{
    metrics_gauge_t *g = metrics_gauge_new_bare("process_open_fds", "Open.", 0, NULL);
    metrics_counter_t *c = metrics_counter_new_bare("process_cpu_seconds_total", "CPU.", 0, NULL);
    metrics_gauge_set(g, 7, NULL);
    metrics_counter_add(c, 0.5, NULL);
    cr_expect_str_eq(render(), "# HELP process_open_fds Open.\n"
                               "# TYPE process_open_fds gauge\n"
                               "process_open_fds 7\n"
                               "# HELP process_cpu_seconds_total CPU.\n"
                               "# TYPE process_cpu_seconds_total counter\n"
                               "process_cpu_seconds_total 0.5\n");
    double v = 0;
    cr_expect_eq(metrics_get("process_open_fds", NULL, &v), 0);
    cr_expect_eq(v, 7);
    cr_expect_null(metrics_gauge_new("process_open_fds", "Open.", 0, NULL),
                   "one name is one metric, with the prefix or without");
}

Test(metrics, gauge_clear_forgets_every_label_set)
{
    static const char *const labels[] = {"node", "state"};
    metrics_gauge_t *g = metrics_gauge_new("node_drain_state", "S.", 2, labels);
    metrics_gauge_set(g, 1, (const char *const[]){"n1", "draining"});
    metrics_gauge_set(g, 1, (const char *const[]){"n2", "blocked"});
    metrics_gauge_clear(g);
    cr_expect_str_eq(render(), "", "a family without series is left out");
    metrics_gauge_set(g, 1, (const char *const[]){"n2", "drained"});
    double v = 0;
    cr_expect_eq(metrics_get("node_drain_state", (const char *const[]){"n2", "blocked"}, &v), -1);
    cr_expect_eq(metrics_get("node_drain_state", (const char *const[]){"n2", "drained"}, &v), 0);
    metrics_gauge_t *u = metrics_gauge_new("ready", "R.", 0, NULL);
    metrics_gauge_set(u, 1, NULL);
    metrics_gauge_clear(u);
    cr_expect_eq(metrics_get("ready", NULL, &v), 0);
    cr_expect_eq(v, 0, "an unlabelled gauge goes back to 0");
}

static int collected;

static void collect(void *ud)
{
    collected++;
    metrics_gauge_set(ud, collected, NULL);
}

Test(metrics, collectors_run_before_each_render_until_removed)
{
    metrics_gauge_t *g = metrics_gauge_new("scrapes", "S.", 0, NULL);
    cr_assert_eq(metrics_add_collector(collect, g), 0);
    cr_assert_eq(metrics_add_collector(collect, g), 0, "the same pair is added once");
    cr_expect(strstr(render(), "vmdrain_scrapes 1\n") != NULL, "got %s", out.data);
    cr_expect(strstr(render(), "vmdrain_scrapes 2\n") != NULL, "got %s", out.data);
    metrics_remove_collector(collect, g);
    cr_expect(strstr(render(), "vmdrain_scrapes 2\n") != NULL, "got %s", out.data);
    for (int i = 0; i < METRICS_MAX_COLLECTORS; i++)
        cr_expect_eq(metrics_add_collector(collect, (char *)g + i), 0);
    cr_expect_eq(metrics_add_collector(collect, NULL), -1, "beyond the cap");
}
