/*
 * procstat — the process's own metrics: vmdrain_build_info and the
 * process_* families under the names the Prometheus client libraries
 * give them, read from /proc/self at render time.
 *
 * Owns the parsers of /proc/self/stat and /proc/stat (pure, so tests feed
 * them lines) and the collector that sets the families before each render.
 *
 * May call: util/metrics, util/log.
 */
#ifndef VMDRAIN_UTIL_PROCSTAT_H
#define VMDRAIN_UTIL_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

/* What one line of /proc/<pid>/stat says (proc(5) field numbers). */
typedef struct procstat {
    uint64_t utime;     /* 14: user time, clock ticks */
    uint64_t stime;     /* 15: system time, clock ticks */
    uint64_t starttime; /* 22: start, clock ticks after boot */
    uint64_t vsize;     /* 23: virtual memory, bytes */
    uint64_t rss;       /* 24: resident set, pages */
} procstat_t;

/* Parses a /proc/<pid>/stat line of len bytes (no terminator needed). The
 * command name (field 2) is found by its last ')', so names holding spaces
 * or parentheses are fine. Returns 0, or -1 when a field is missing or not
 * a number. */
int procstat_parse_stat(const char *line, size_t len, procstat_t *out);

/* Finds "btime N" (boot time, Unix seconds) in the text of /proc/stat.
 * Returns 0, or -1 when there is none. */
int procstat_parse_btime(const char *text, size_t len, int64_t *btime);

/* Registers vmdrain_build_info{version,revision} (1) and the process_*
 * families (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds) with the collector that reads them at each
 * render. A file that cannot be read leaves its values as they were and
 * is logged once. Returns 0, or -1 when a registration failed. */
int procstat_register(const char *version, const char *revision);

#endif
