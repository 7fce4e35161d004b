/*
 * metrics — see metrics.h. Owns the one registry and every metric in it;
 * calls util/buf and util/log.
 */
#include "util/metrics.h"
#include "util/log.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
} metric_type_t;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* One label set of a metric and its value(s). */
typedef struct series {
    char **values;    /* nlabels strings, owned */
    double value;     /* counter, gauge */
    uint64_t *counts; /* histogram: per bucket, not cumulative; [nbuckets] is +Inf */
    double sum;       /* histogram */
    uint64_t count;   /* histogram */
} series_t;

/* A metric family: the handles handed out are casts of this struct. */
typedef struct family {
    metric_type_t type;
    char *name; /* without the prefix */
    char *help;
    int nlabels;
    char **labelnames;
    int nbuckets;
    double *buckets;
    series_t *series;
    int nseries;
    int cap;
    bool fold_logged;
    bool bare; /* rendered without the prefix */
    struct family *next;
} family_t;

typedef struct collector {
    metrics_collect_fn fn;
    void *ud;
} collector_t;

static struct {
    family_t *head;
    family_t *tail;
    collector_t collectors[METRICS_MAX_COLLECTORS];
    int ncollectors;
} registry;

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        bool digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != s) && !(colon_ok && *p == ':'))
            return false;
    }
    return true;
}

/* Checks the label names of a new metric; logs and returns false on the
 * first bad one. */
static bool valid_labels(const char *name, metric_type_t type, int nlabels,
                         const char *const *labelnames)
{
    if (nlabels < 0 || nlabels > METRICS_MAX_LABELS || (nlabels > 0 && !labelnames)) {
        log_error("metric has an invalid label count", "metric", name);
        return false;
    }
    for (int i = 0; i < nlabels; i++) {
        const char *l = labelnames[i];
        if (!valid_name(l, false) || strncmp(l, "__", 2) == 0 ||
            (type == METRIC_HISTOGRAM && strcmp(l, "le") == 0)) {
            log_error("metric has an invalid label name", "metric", name, "label", l);
            return false;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(labelnames[j], l) == 0) {
                log_error("metric repeats a label name", "metric", name, "label", l);
                return false;
            }
        }
    }
    return true;
}

static bool valid_buckets(const char *name, int nbuckets, const double *buckets)
{
    if (nbuckets < 1 || nbuckets > METRICS_MAX_BUCKETS || !buckets) {
        log_error("histogram has an invalid bucket count", "metric", name);
        return false;
    }
    for (int i = 0; i < nbuckets; i++) {
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
            log_error("histogram buckets must be finite and increasing", "metric", name);
            return false;
        }
    }
    return true;
}

static family_t *family_find(const char *name)
{
    for (family_t *f = registry.head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* True when an existing family matches a new registration exactly. */
static bool family_same(const family_t *f, metric_type_t type, bool bare, int nlabels,
                        const char *const *labelnames, int nbuckets, const double *buckets)
{
    if (f->type != type || f->bare != bare || f->nlabels != nlabels || f->nbuckets != nbuckets)
        return false;
    for (int i = 0; i < nlabels; i++)
        if (strcmp(f->labelnames[i], labelnames[i]) != 0)
            return false;
    for (int i = 0; i < nbuckets; i++)
        if (f->buckets[i] != buckets[i])
            return false;
    return true;
}

static void series_clear(series_t *s, int nlabels)
{
    for (int i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->counts);
}

static void family_free(family_t *f)
{
    for (int i = 0; i < f->nseries; i++)
        series_clear(&f->series[i], f->nlabels);
    free(f->series);
    for (int i = 0; f->labelnames && i < f->nlabels; i++)
        free(f->labelnames[i]);
    free(f->labelnames);
    free(f->buckets);
    free(f->name);
    free(f->help);
    free(f);
}

static series_t *series_add(family_t *f, const char *const *values);

/* Allocates a family and links it into the registry. Returns it, or NULL
 * when memory runs out. An unlabelled family gets its single series at once
 * so that it renders as 0 before the first update. */
static family_t *family_create(const char *name, const char *help, metric_type_t type, bool bare,
                               int nlabels, const char *const *labelnames, int nbuckets,
                               const double *buckets)
{
    family_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->type = type;
    f->bare = bare;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->nlabels = nlabels;
    f->labelnames = calloc((size_t)nlabels + 1, sizeof(char *));
    f->nbuckets = nbuckets;
    f->buckets = calloc((size_t)nbuckets + 1, sizeof(double));
    if (!f->name || !f->help || !f->labelnames || !f->buckets)
        goto out_free;
    for (int i = 0; i < nlabels; i++) {
        f->labelnames[i] = strdup(labelnames[i]);
        if (!f->labelnames[i])
            goto out_free;
    }
    if (nbuckets)
        memcpy(f->buckets, buckets, sizeof(double) * (size_t)nbuckets);
    if (nlabels == 0 && !series_add(f, NULL))
        goto out_free;
    if (registry.tail)
        registry.tail->next = f;
    else
        registry.head = f;
    registry.tail = f;
    return f;

out_free:
    family_free(f);
    return NULL;
}

/* The registration shared by the three types: validates, returns the
 * identical family already registered, or creates one. */
static family_t *family_register(const char *name, const char *help, metric_type_t type, bool bare,
                                 int nlabels, const char *const *labelnames, int nbuckets,
                                 const double *buckets)
{
    if (!valid_name(name, true)) {
        log_error("invalid metric name", "metric", name);
        return NULL;
    }
    if (!valid_labels(name, type, nlabels, labelnames))
        return NULL;
    if (type == METRIC_HISTOGRAM && !valid_buckets(name, nbuckets, buckets))
        return NULL;
    family_t *f = family_find(name);
    if (f) {
        if (family_same(f, type, bare, nlabels, labelnames, nbuckets, buckets))
            return f;
        log_error("metric registered twice with different types or labels", "metric", name);
        return NULL;
    }
    return family_create(name, help, type, bare, nlabels, labelnames, nbuckets, buckets);
}

metrics_counter_t *metrics_counter_new(const char *name, const char *help, int nlabels,
                                       const char *const *labelnames)
{
    return (metrics_counter_t *)family_register(name, help, METRIC_COUNTER, false, nlabels,
                                                labelnames, 0, NULL);
}

metrics_gauge_t *metrics_gauge_new(const char *name, const char *help, int nlabels,
                                   const char *const *labelnames)
{
    return (metrics_gauge_t *)family_register(name, help, METRIC_GAUGE, false, nlabels, labelnames,
                                              0, NULL);
}

metrics_counter_t *metrics_counter_new_bare(const char *name, const char *help, int nlabels,
                                            const char *const *labelnames)
{
    return (metrics_counter_t *)family_register(name, help, METRIC_COUNTER, true, nlabels,
                                                labelnames, 0, NULL);
}

metrics_gauge_t *metrics_gauge_new_bare(const char *name, const char *help, int nlabels,
                                        const char *const *labelnames)
{
    return (metrics_gauge_t *)family_register(name, help, METRIC_GAUGE, true, nlabels, labelnames,
                                              0, NULL);
}

metrics_histogram_t *metrics_histogram_new(const char *name, const char *help, int nbuckets,
                                           const double *buckets, int nlabels,
                                           const char *const *labelnames)
{
    return (metrics_histogram_t *)family_register(name, help, METRIC_HISTOGRAM, false, nlabels,
                                                  labelnames, nbuckets, buckets);
}

static const char *label_value(const char *const *values, int i)
{
    if (!values || !values[i])
        return "";
    return values[i];
}

static series_t *series_find(family_t *f, const char *const *values)
{
    for (int i = 0; i < f->nseries; i++) {
        series_t *s = &f->series[i];
        int j = 0;
        while (j < f->nlabels && strcmp(s->values[j], label_value(values, j)) == 0)
            j++;
        if (j == f->nlabels)
            return s;
    }
    return NULL;
}

/* Appends a zeroed series with copies of values. Returns it, or NULL when
 * memory runs out. */
static series_t *series_add(family_t *f, const char *const *values)
{
    if (f->nseries == f->cap) {
        int cap = f->cap ? f->cap * 2 : 4;
        series_t *p = realloc(f->series, sizeof(series_t) * (size_t)cap);
        if (!p)
            return NULL;
        f->series = p;
        f->cap = cap;
    }
    series_t *s = &f->series[f->nseries];
    memset(s, 0, sizeof(*s));
    s->values = calloc((size_t)f->nlabels + 1, sizeof(char *));
    if (f->type == METRIC_HISTOGRAM)
        s->counts = calloc((size_t)f->nbuckets + 1, sizeof(uint64_t));
    if (!s->values || (f->type == METRIC_HISTOGRAM && !s->counts))
        goto out_free;
    for (int i = 0; i < f->nlabels; i++) {
        s->values[i] = strdup(label_value(values, i));
        if (!s->values[i])
            goto out_free;
    }
    f->nseries++;
    return s;

out_free:
    series_clear(s, f->nlabels);
    return NULL;
}

/* Finds or creates the series for values. Past METRICS_MAX_SERIES label
 * sets, returns the "other" series instead (logged once per metric).
 * Returns NULL only when memory runs out. */
static series_t *series_get(family_t *f, const char *const *values)
{
    series_t *s = series_find(f, values);
    if (s)
        return s;
    if (f->nseries < METRICS_MAX_SERIES)
        return series_add(f, values);
    if (!f->fold_logged) {
        log_warn("metric has too many label sets; folding new ones into \"other\"", "metric",
                 f->name);
        f->fold_logged = true;
    }
    const char *other[METRICS_MAX_LABELS];
    for (int i = 0; i < f->nlabels; i++)
        other[i] = "other";
    s = series_find(f, other);
    return s ? s : series_add(f, other);
}

void metrics_counter_add(metrics_counter_t *c, double v, const char *const *labelvalues)
{
    family_t *f = (family_t *)c;
    if (!f || !(v >= 0))
        return;
    series_t *s = series_get(f, labelvalues);
    if (s)
        s->value += v;
}

void metrics_gauge_set(metrics_gauge_t *g, double v, const char *const *labelvalues)
{
    family_t *f = (family_t *)g;
    series_t *s = f ? series_get(f, labelvalues) : NULL;
    if (s)
        s->value = v;
}

void metrics_gauge_add(metrics_gauge_t *g, double v, const char *const *labelvalues)
{
    family_t *f = (family_t *)g;
    series_t *s = f ? series_get(f, labelvalues) : NULL;
    if (s)
        s->value += v;
}

void metrics_gauge_clear(metrics_gauge_t *g)
{
    family_t *f = (family_t *)g;
    if (!f)
        return;
    if (f->nlabels == 0) {
        f->series[0].value = 0;
        return;
    }
    for (int i = 0; i < f->nseries; i++)
        series_clear(&f->series[i], f->nlabels);
    f->nseries = 0;
}

void metrics_histogram_observe(metrics_histogram_t *h, double v, const char *const *labelvalues)
{
    family_t *f = (family_t *)h;
    if (!f || isnan(v))
        return;
    series_t *s = series_get(f, labelvalues);
    if (!s)
        return;
    int i = 0;
    while (i < f->nbuckets && v > f->buckets[i])
        i++;
    s->counts[i]++;
    s->sum += v;
    s->count++;
}

/* Formats v as Prometheus expects: integers without a fraction, other
 * values in the shortest form that reads back exactly, and +Inf, -Inf, NaN. */
static void format_value(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* Appends s with backslash, newline and (for label values) double quote
 * escaped. */
static int put_escaped(buf_t *out, const char *s, bool quote)
{
    int rc = 0;
    for (const char *p = s; *p && rc == 0; p++) {
        if (*p == '\\')
            rc = buf_puts(out, "\\\\");
        else if (*p == '\n')
            rc = buf_puts(out, "\\n");
        else if (quote && *p == '"')
            rc = buf_puts(out, "\\\"");
        else
            rc = buf_append(out, p, 1);
    }
    return rc;
}

/* Appends "{a="x",b="y"}" for a series, with le last when given; nothing
 * when there are no labels at all. */
static int put_labels(buf_t *out, const family_t *f, const series_t *s, const char *le)
{
    if (f->nlabels == 0 && !le)
        return 0;
    int rc = buf_puts(out, "{");
    for (int i = 0; i < f->nlabels && rc == 0; i++) {
        rc = buf_printf(out, "%s%s=\"", i ? "," : "", f->labelnames[i]);
        if (rc == 0)
            rc = put_escaped(out, s->values[i], true);
        if (rc == 0)
            rc = buf_puts(out, "\"");
    }
    if (rc == 0 && le)
        rc = buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    if (rc == 0)
        rc = buf_puts(out, "}");
    return rc;
}

/* Appends one sample line: prefix, name, suffix, labels, value. */
static int put_sample(buf_t *out, const family_t *f, const char *suffix, const series_t *s,
                      const char *le, double v)
{
    char num[64];
    format_value(num, sizeof(num), v);
    if (buf_printf(out, "%s%s%s", f->bare ? "" : METRICS_PREFIX, f->name, suffix) < 0 ||
        put_labels(out, f, s, le) < 0)
        return -1;
    return buf_printf(out, " %s\n", num);
}

static int put_histogram(buf_t *out, const family_t *f, const series_t *s)
{
    char le[64];
    uint64_t cum = 0;
    for (int i = 0; i < f->nbuckets; i++) {
        cum += s->counts[i];
        format_value(le, sizeof(le), f->buckets[i]);
        if (put_sample(out, f, "_bucket", s, le, (double)cum) < 0)
            return -1;
    }
    if (put_sample(out, f, "_bucket", s, "+Inf", (double)s->count) < 0 ||
        put_sample(out, f, "_sum", s, NULL, s->sum) < 0 ||
        put_sample(out, f, "_count", s, NULL, (double)s->count) < 0)
        return -1;
    return 0;
}

/* Appends one family: HELP, TYPE, then every series. A labelled family
 * without any series yet is left out, as the Go client does. */
static int put_family(buf_t *out, const family_t *f)
{
    if (f->nseries == 0)
        return 0;
    const char *prefix = f->bare ? "" : METRICS_PREFIX;
    if (buf_printf(out, "# HELP %s%s ", prefix, f->name) < 0 ||
        put_escaped(out, f->help, false) < 0 ||
        buf_printf(out, "\n# TYPE %s%s %s\n", prefix, f->name, type_names[f->type]) < 0)
        return -1;
    for (int i = 0; i < f->nseries; i++) {
        const series_t *s = &f->series[i];
        int rc = f->type == METRIC_HISTOGRAM ? put_histogram(out, f, s)
                                             : put_sample(out, f, "", s, NULL, s->value);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int metrics_add_collector(metrics_collect_fn fn, void *ud)
{
    for (int i = 0; i < registry.ncollectors; i++)
        if (registry.collectors[i].fn == fn && registry.collectors[i].ud == ud)
            return 0;
    if (!fn || registry.ncollectors == METRICS_MAX_COLLECTORS) {
        log_error("no room for another metrics collector");
        return -1;
    }
    registry.collectors[registry.ncollectors++] = (collector_t){fn, ud};
    return 0;
}

void metrics_remove_collector(metrics_collect_fn fn, const void *ud)
{
    for (int i = 0; i < registry.ncollectors; i++) {
        if (registry.collectors[i].fn != fn || registry.collectors[i].ud != ud)
            continue;
        memmove(&registry.collectors[i], &registry.collectors[i + 1],
                sizeof(collector_t) * (size_t)(registry.ncollectors - i - 1));
        registry.ncollectors--;
        return;
    }
}

int metrics_render(buf_t *out)
{
    for (int i = 0; i < registry.ncollectors; i++)
        registry.collectors[i].fn(registry.collectors[i].ud);
    for (const family_t *f = registry.head; f; f = f->next)
        if (put_family(out, f) < 0)
            return -1;
    return 0;
}

/* Resolves a sample name to its family; *part is 0 for the value, 1 for a
 * histogram's _count, 2 for its _sum. */
static family_t *sample_family(const char *sample, int *part)
{
    family_t *f = family_find(sample);
    *part = 0;
    if (f)
        return f->type == METRIC_HISTOGRAM ? NULL : f;
    static const char *const suffixes[] = {"_count", "_sum"};
    size_t n = strlen(sample);
    for (int i = 0; i < 2; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n <= sl || strcmp(sample + n - sl, suffixes[i]) != 0)
            continue;
        char base[256];
        if (n - sl >= sizeof(base))
            return NULL;
        memcpy(base, sample, n - sl);
        base[n - sl] = '\0';
        f = family_find(base);
        *part = i + 1;
        return f && f->type == METRIC_HISTOGRAM ? f : NULL;
    }
    return NULL;
}

int metrics_get(const char *sample, const char *const *labelvalues, double *value)
{
    int part;
    family_t *f = sample ? sample_family(sample, &part) : NULL;
    const series_t *s = f ? series_find(f, labelvalues) : NULL;
    if (!s)
        return -1;
    if (part == 0)
        *value = s->value;
    else if (part == 1)
        *value = (double)s->count;
    else
        *value = s->sum;
    return 0;
}

void metrics_reset_all(void)
{
    for (family_t *f = registry.head; f; f = f->next) {
        if (f->nlabels == 0) {
            series_t *s = &f->series[0];
            s->value = 0;
            s->sum = 0;
            s->count = 0;
            if (s->counts)
                memset(s->counts, 0, sizeof(uint64_t) * ((size_t)f->nbuckets + 1));
            continue;
        }
        for (int i = 0; i < f->nseries; i++)
            series_clear(&f->series[i], f->nlabels);
        f->nseries = 0;
        f->fold_logged = false;
    }
}

void metrics_free_all(void)
{
    family_t *f = registry.head;
    while (f) {
        family_t *next = f->next;
        family_free(f);
        f = next;
    }
    registry.head = NULL;
    registry.tail = NULL;
    registry.ncollectors = 0;
}
