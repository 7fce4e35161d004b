#include <criterion/criterion.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/procstat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void teardown(void)
{
    metrics_free_all();
}

TestSuite(procstat, .fini = teardown, .timeout = 10);

static int parse(const char *line, procstat_t *st)
{
    return procstat_parse_stat(line, strlen(line), st);
}

/* A line of /proc/self/stat as Linux 6.1 writes it (52 fields). */
#define STAT_TAIL                                                                                  \
    " S 1 12345 12345 0 -1 4194560 2116 0 0 0 27 13 0 0 20 0 3 0 424242 21471232 2711 "            \
    "18446744073709551615 1 1 0 0 0 0 0 4096 17410 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

Test(procstat, parses_the_fields_it_needs)
{
    procstat_t st;
    cr_assert_eq(parse("4242 (vmdrain)" STAT_TAIL, &st), 0);
    cr_expect_eq(st.utime, 27);
    cr_expect_eq(st.stime, 13);
    cr_expect_eq(st.starttime, 424242);
    cr_expect_eq(st.vsize, 21471232);
    cr_expect_eq(st.rss, 2711);
}

Test(procstat, a_name_with_spaces_and_parentheses_is_skipped_whole)
{
    procstat_t st;
    cr_assert_eq(parse("7 (a) b (c))" STAT_TAIL, &st), 0);
    cr_expect_eq(st.utime, 27);
    cr_expect_eq(st.rss, 2711);
}

Test(procstat, short_or_bad_lines_are_refused)
{
    procstat_t st = {.utime = 99};
    cr_expect_eq(parse("", &st), -1);
    cr_expect_eq(parse("4242 vmdrain S 1 2 3", &st), -1, "no name in parentheses");
    cr_expect_eq(parse("4242 (vmdrain)", &st), -1, "nothing after the name");
    cr_expect_eq(parse("4242 (vmdrain) S 1 12345 12345 0 -1 4194560 2116 0 0 0 27\n", &st), -1,
                 "cut before the fields it needs");
    cr_expect_eq(parse("4242 (vmdrain) S 1 12345 12345 0 -1 4194560 2116 0 0 0 x7 13 0 0 20 0 3 "
                       "0 424242 21471232 2711\n",
                       &st),
                 -1, "a field that is not a number");
    cr_expect_eq(parse("4242 (vmdrain) S 1 12345 12345 0 -1 4194560 2116 0 0 0 -27 13 0 0 20 0 3 "
                       "0 424242 21471232 2711\n",
                       &st),
                 -1, "negative CPU time");
    cr_expect_eq(st.utime, 99, "left alone on failure");
    /* the line need not be terminated: only len bytes are read */
    char line[] = "4242 (vmdrain)" STAT_TAIL;
    cr_expect_eq(procstat_parse_stat(line, strlen("4242 (vmdrain) S 1 2"), &st), -1);
}

Test(procstat, boot_time_is_read_from_proc_stat)
{
    static const char text[] = "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 1 2\nbtime 1796300000\n"
                               "processes 1234\n";
    int64_t b = 0;
    cr_assert_eq(procstat_parse_btime(text, strlen(text), &b), 0);
    cr_expect_eq(b, 1796300000);
    cr_expect_eq(procstat_parse_btime("cpu 1\nbtime\n", 12, &b), -1);
    cr_expect_eq(procstat_parse_btime("cpu 1\nbtime x\n", 14, &b), -1);
    cr_expect_eq(procstat_parse_btime("", 0, &b), -1);
}

static double sample(const char *name)
{
    double v = -1;
    cr_assert_eq(metrics_get(name, NULL, &v), 0, "no %s", name);
    return v;
}

Test(procstat, the_registered_metrics_are_read_at_each_render)
{
    buf_t out;
    buf_init(&out, 1 << 20);
    cr_assert_eq(procstat_register("1.2.3", "abc1234"), 0);
    cr_expect_eq(sample("process_open_fds"), 0, "nothing is read before a render");
    cr_assert_eq(metrics_render(&out), 0);
    cr_expect(strstr(out.data, "vmdrain_build_info{version=\"1.2.3\",revision=\"abc1234\"} 1\n"),
              "%s", out.data);
    cr_expect(strstr(out.data, "# TYPE process_cpu_seconds_total counter\n"), "%s", out.data);
    cr_expect(strstr(out.data, "\nprocess_resident_memory_bytes "), "%s", out.data);
    cr_expect_gt(sample("process_resident_memory_bytes"), 1 << 20);
    cr_expect_geq(sample("process_virtual_memory_bytes"), sample("process_resident_memory_bytes"));
    cr_expect_geq(sample("process_open_fds"), 3, "stdin, stdout, stderr at least");
    cr_expect_geq(sample("process_max_fds"), sample("process_open_fds"));
    double now = (double)time(NULL), start = sample("process_start_time_seconds");
    cr_expect(start > now - 3600 && start <= now + 1, "start %f, now %f", start, now);
    /* CPU time only grows */
    double cpu = sample("process_cpu_seconds_total");
    for (volatile long i = 0; i < 20000000; i++)
        ;
    buf_reset(&out);
    cr_assert_eq(metrics_render(&out), 0);
    cr_expect_geq(sample("process_cpu_seconds_total"), cpu);
    FILE *f = fopen("/proc/self/stat", "r");
    cr_assert_not_null(f);
    buf_reset(&out);
    cr_assert_eq(metrics_render(&out), 0);
    cr_expect_geq(sample("process_open_fds"), 4, "the file just opened counts");
    fclose(f);
    buf_free(&out);
}
