/*
 * metrics — a Prometheus registry: counters, gauges and histograms with
 * label sets, rendered in the text exposition format 0.0.4.
 *
 * One global registry (the process is single-threaded). Every name gets the
 * prefix "vmdrain_" on output; callers pass names without it (the *_bare
 * registrations excepted: their names are rendered as given, for families
 * named by convention, like process_*). A metric holds
 * at most METRICS_MAX_SERIES label sets: values for further label sets are
 * folded into one series whose label values are all "other", and the first
 * fold is logged once per metric.
 *
 * Collectors are functions metrics_render() calls first, to set values read
 * at scrape time (the process's memory, say).
 *
 * The registry owns every metric. Handles stay valid until
 * metrics_free_all().
 */
#ifndef VMDRAIN_UTIL_METRICS_H
#define VMDRAIN_UTIL_METRICS_H

#include "util/buf.h"

#include <stdint.h>

#define METRICS_PREFIX         "vmdrain_"
#define METRICS_MAX_SERIES     1000 /* label sets per metric; more fold into "other" */
#define METRICS_MAX_LABELS     8
#define METRICS_MAX_BUCKETS    64
#define METRICS_MAX_COLLECTORS 8

typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_gauge metrics_gauge_t;
typedef struct metrics_histogram metrics_histogram_t;

/* Registers a counter (or returns the one already registered under name with
 * the same label names). name excludes the prefix; labelnames has nlabels
 * entries. Returns NULL, and logs why, for an invalid name or label name, or
 * when name is taken by a metric of another type or other labels. */
metrics_counter_t *metrics_counter_new(const char *name, const char *help, int nlabels,
                                       const char *const *labelnames);

/* Adds v (>= 0; negative or NaN values are ignored) to the series named by
 * labelvalues (nlabels strings, NULL when the counter has no labels; a NULL
 * value stands for ""). */
void metrics_counter_add(metrics_counter_t *c, double v, const char *const *labelvalues);

/* Registers a gauge; same rules as metrics_counter_new(). */
metrics_gauge_t *metrics_gauge_new(const char *name, const char *help, int nlabels,
                                   const char *const *labelnames);
void metrics_gauge_set(metrics_gauge_t *g, double v, const char *const *labelvalues);
void metrics_gauge_add(metrics_gauge_t *g, double v, const char *const *labelvalues);

/* Forgets every label set of a labelled gauge (an unlabelled one is set to
 * 0): for series that must leave, e.g. of an object that is gone. The
 * caller sets again the ones that stay. */
void metrics_gauge_clear(metrics_gauge_t *g);

/* As metrics_counter_new() and metrics_gauge_new(), for a name rendered
 * as given, without the prefix. */
metrics_counter_t *metrics_counter_new_bare(const char *name, const char *help, int nlabels,
                                            const char *const *labelnames);
metrics_gauge_t *metrics_gauge_new_bare(const char *name, const char *help, int nlabels,
                                        const char *const *labelnames);

/* Registers a histogram with nbuckets upper bounds (finite, strictly
 * increasing, at most METRICS_MAX_BUCKETS; "+Inf" is implicit). "le" is not
 * a valid label name here. Same other rules as metrics_counter_new(). */
metrics_histogram_t *metrics_histogram_new(const char *name, const char *help, int nbuckets,
                                           const double *buckets, int nlabels,
                                           const char *const *labelnames);
void metrics_histogram_observe(metrics_histogram_t *h, double v, const char *const *labelvalues);

/* A collector: sets the values it owns, called by metrics_render(). */
typedef void (*metrics_collect_fn)(void *ud);

/* Adds a collector (fn and ud once: adding the same pair again does
 * nothing). Returns 0, or -1 when METRICS_MAX_COLLECTORS are registered. */
int metrics_add_collector(metrics_collect_fn fn, void *ud);

/* Removes the collector fn with ud, if registered. */
void metrics_remove_collector(metrics_collect_fn fn, const void *ud);

/* Runs the collectors, then appends the whole registry to out in the text exposition format,
 * metrics in registration order, series in first-seen order. Returns 0, or -1 when out's cap is
 * reached (out then holds a truncated rendering). */
int metrics_render(buf_t *out);

/* Reads one sample, for tests: sample is a counter or gauge name, or a
 * histogram name followed by "_count" or "_sum" (all without the prefix).
 * Returns 0 and sets *value, or -1 when no such sample exists. */
int metrics_get(const char *sample, const char *const *labelvalues, double *value);

/* Sets every value to zero and forgets every label set (tests). */
void metrics_reset_all(void);

/* Frees every metric and forgets the collectors; all handles become
 * invalid (tests, shutdown). */
void metrics_free_all(void);

#endif
