/*
 * procstat — see procstat.h. Owns the process_* families and the
 * collector that fills them; calls util/metrics, util/num and util/log.
 */
#include "util/procstat.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/num.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FIELD_UTIME     14
#define FIELD_STIME     15
#define FIELD_STARTTIME 22
#define FIELD_VSIZE     23
#define FIELD_RSS       24

/* Reads the next space-separated field at *p (before end) as a number. */
static int next_field(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\n')
        e++;
    *p = e;
    if (e == s)
        return -1;
    return num_parse_i64(s, (size_t)(e - s), INT64_MIN + 1, INT64_MAX, out);
}

int procstat_parse_stat(const char *line, size_t len, procstat_t *out)
{
    const char *end = line + len, *close = NULL;
    procstat_t st = {0};
    uint64_t *want[FIELD_RSS + 1] = {0};

    want[FIELD_UTIME] = &st.utime;
    want[FIELD_STIME] = &st.stime;
    want[FIELD_STARTTIME] = &st.starttime;
    want[FIELD_VSIZE] = &st.vsize;
    want[FIELD_RSS] = &st.rss;
    for (const char *p = line; p < end; p++)
        if (*p == ')')
            close = p;
    if (!close)
        return -1;
    /* field 3, the state, is one letter after the name; numbers follow */
    const char *p = close + 1;
    while (p < end && *p == ' ')
        p++;
    if (p >= end || *p == '\n')
        return -1;
    p++;
    for (int field = 4; field <= FIELD_RSS; field++) {
        int64_t v;
        if (next_field(&p, end, &v) < 0 || (want[field] && v < 0))
            return -1;
        if (want[field])
            *want[field] = (uint64_t)v;
    }
    *out = st;
    return 0;
}

int procstat_parse_btime(const char *text, size_t len, int64_t *btime)
{
    static const char key[] = "btime ";
    const char *end = text + len;

    for (const char *l = text; l < end;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        const char *le = nl ? nl : end;
        if ((size_t)(le - l) > sizeof(key) - 1 && memcmp(l, key, sizeof(key) - 1) == 0)
            return num_parse_i64(l + sizeof(key) - 1, (size_t)(le - l) - (sizeof(key) - 1), 0,
                                 INT64_MAX, btime);
        l = le + 1;
    }
    return -1;
}

/* --- the collector --------------------------------------------------------------- */

static struct {
    metrics_counter_t *cpu;
    metrics_gauge_t *rss, *vsize, *open_fds, *max_fds, *start;
    double start_time; /* once known: it does not change */
    bool stat_logged, fd_logged;
} proc;

/* Reads a small file whole into buf (NUL-terminated). Returns its length,
 * or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t r = 1;

    if (fd < 0)
        return -1;
    while (len < n - 1 && (r = read(fd, buf + len, n - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    if (r < 0)
        return -1;
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The open descriptors, not counting the one reading the directory. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0, self = dirfd(d);
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t fd;
        if (num_parse_i64(e->d_name, strlen(e->d_name), 0, INT32_MAX, &fd) == 0 && fd != self)
            n++;
    }
    closedir(d);
    return n;
}

/* The start time, Unix seconds, from the boot time and the start tick. */
static double start_time(const procstat_t *st, double ticks)
{
    char text[8192];
    int64_t btime;
    ssize_t len = read_small("/proc/stat", text, sizeof(text));
    if (len < 0 || procstat_parse_btime(text, (size_t)len, &btime) < 0)
        return 0;
    return (double)btime + (double)st->starttime / ticks;
}

static void collect_stat(void)
{
    char line[1024];
    procstat_t st;
    double ticks = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    ssize_t len = read_small("/proc/self/stat", line, sizeof(line));

    if (len < 0 || ticks <= 0 || procstat_parse_stat(line, (size_t)len, &st) < 0) {
        if (!proc.stat_logged)
            log_warn("cannot read /proc/self/stat: the process_* metrics stay as they are");
        proc.stat_logged = true;
        return;
    }
    double cpu = (double)(st.utime + st.stime) / ticks, seen = 0;
    if (metrics_get("process_cpu_seconds_total", NULL, &seen) == 0 && cpu > seen)
        metrics_counter_add(proc.cpu, cpu - seen, NULL);
    metrics_gauge_set(proc.rss, (double)st.rss * page, NULL);
    metrics_gauge_set(proc.vsize, (double)st.vsize, NULL);
    if (proc.start_time <= 0)
        proc.start_time = start_time(&st, ticks);
    metrics_gauge_set(proc.start, proc.start_time, NULL);
}

static void collect(void *ud)
{
    struct rlimit rl;
    (void)ud;

    collect_stat();
    int fds = count_fds();
    if (fds >= 0)
        metrics_gauge_set(proc.open_fds, fds, NULL);
    else if (!proc.fd_logged)
        log_warn("cannot list /proc/self/fd: process_open_fds stays as it is");
    proc.fd_logged = proc.fd_logged || fds < 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_gauge_set(proc.max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur,
                          NULL);
}

int procstat_register(const char *version, const char *revision)
{
    static const char *const labels[] = {"version", "revision"};
    metrics_gauge_t *info = metrics_gauge_new(
        "build_info", "1, labelled with the version and the git revision of this vmdrain.", 2,
        labels);
    metrics_gauge_set(info, 1, (const char *const[]){version, revision});

    proc.cpu = metrics_counter_new_bare(
        "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", 0, NULL);
    proc.rss = metrics_gauge_new_bare("process_resident_memory_bytes",
                                      "Resident memory size in bytes.", 0, NULL);
    proc.vsize = metrics_gauge_new_bare("process_virtual_memory_bytes",
                                        "Virtual memory size in bytes.", 0, NULL);
    proc.open_fds =
        metrics_gauge_new_bare("process_open_fds", "Number of open file descriptors.", 0, NULL);
    proc.max_fds = metrics_gauge_new_bare("process_max_fds",
                                          "Maximum number of open file descriptors.", 0, NULL);
    proc.start =
        metrics_gauge_new_bare("process_start_time_seconds",
                               "Start time of the process since unix epoch in seconds.", 0, NULL);
    proc.start_time = 0;
    if (!info || !proc.cpu || !proc.rss || !proc.vsize || !proc.open_fds || !proc.max_fds ||
        !proc.start)
        return -1;
    return metrics_add_collector(collect, NULL);
}
