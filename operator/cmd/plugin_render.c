/*
 * cmd/plugin_render — what `kubectl vmdrain status` shows, from a node and
 * its NodeDrain: the row (pl_row_build), the progress bar, kubectl's human
 * durations, the aligned text table with a node's VMIs, and the JSON
 * document. Pure: no I/O, no clock (now is given), unit-tested.
 *
 * Owns nothing. Calls kube/objects (annotations), util/num, util/buf,
 * util/jsongen and util/timefmt; called by plugin_status.c.
 */
#include "cmd/plugin.h"
#include "util/jsongen.h"
#include "util/num.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define ANN "vmdrain.io/"

/* --- the row ----------------------------------------------------------------- */

/* A count annotation, or fallback when it is absent or not a count. */
static int64_t ann_count(const kube_obj_t *o, const char *key, int64_t fallback)
{
    const char *s = o ? kube_obj_annotation(o, key) : NULL;
    int64_t v;
    if (s && num_parse_i64(s, strlen(s), 0, INT64_MAX, &v) == 0)
        return v;
    return fallback;
}

/* Parses "migrated/total". Returns 0 or -1. */
static int parse_progress(const char *s, int64_t *done, int64_t *total)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || num_parse_i64(s, (size_t)(slash - s), 0, INT64_MAX, done) < 0 ||
        num_parse_i64(slash + 1, strlen(slash + 1), 0, INT64_MAX, total) < 0)
        return -1;
    return 0;
}

static const char *first(const char *a, const char *b, const char *c)
{
    return a && *a ? a : b && *b ? b : c;
}

static void row_progress(pl_row_t *row, const kube_obj_t *o, const pl_nodedrain_t *nd)
{
    row->migrated = row->total = -1;
    if (o &&
        parse_progress(kube_obj_annotation(o, ANN "progress"), &row->migrated, &row->total) == 0)
        return;
    row->migrated = row->total = -1;
    if (nd && nd->migrated >= 0 && nd->total >= 0) {
        row->migrated = nd->migrated;
        row->total = nd->total;
    } else if (nd && parse_progress(nd->progress, &row->migrated, &row->total) < 0) {
        row->migrated = row->total = -1;
    }
}

static void row_times(pl_row_t *row, const kube_obj_t *o, const pl_nodedrain_t *nd)
{
    const char *s = o ? kube_obj_annotation(o, ANN "started-at") : NULL;
    row->started = (vd_time_t){0, 0};
    if (!s || time_parse_rfc3339(s, &row->started, NULL, 0) < 0)
        row->started = nd ? nd->start : (vd_time_t){0, 0};
    row->eta = nd ? nd->eta : (vd_time_t){0, 0};
}

void pl_row_build(pl_row_t *row, const char *name, const kube_node_t *node,
                  const pl_nodedrain_t *nd)
{
    const kube_obj_t *o = node ? &node->obj : NULL;
    const char *state = o ? kube_obj_annotation(o, ANN "state") : NULL;
    memset(row, 0, sizeof(*row));
    row->node = name;
    row->found = node != NULL;
    row->nd = nd;
    row->has_drain = (state && *state) || nd;
    row->state = first(state, nd ? nd->phase : NULL, "-");
    /* a NodeDrain vmdrain did not write was made by a person: its own trigger */
    row->trigger = first(o ? kube_obj_annotation(o, ANN "trigger") : NULL, nd ? nd->trigger : NULL,
                         nd && strcmp(nd->managed_by, "vmdrain") != 0 ? "nodedrain" : "-");
    row->message =
        first(o ? kube_obj_annotation(o, ANN "message") : NULL, nd ? nd->message : NULL, "");
    row->blocked_list = first(o ? kube_obj_annotation(o, ANN "blocked") : NULL, "", "");
    row_progress(row, o, nd);
    row->migrating = ann_count(o, ANN "migrating", nd ? nd->migrating : -1);
    row->pending = ann_count(o, ANN "pending", nd ? nd->pending : -1);
    row->failed = ann_count(o, ANN "failed", nd ? nd->failed : -1);
    /* the node's annotations first: they are written first (a NodeDrain's
     * status follows within a second) */
    if (state && *state && (row->blocked_list[0] || !nd || nd->blocked < 0))
        row->blocked = pl_blocked_each(row->blocked_list, NULL, NULL);
    else if (nd && nd->blocked >= 0)
        row->blocked = nd->blocked;
    else
        row->blocked = -1;
    row_times(row, o, nd);
}

/* --- pieces of text ---------------------------------------------------------- */

void pl_progress_bar(int64_t done, int64_t total, int width, char *out, size_t n)
{
    char bar[64];
    if (total < 0 || done < 0 || width < 1 || width >= (int)sizeof(bar)) {
        snprintf(out, n, "-");
        return;
    }
    int64_t full = total == 0 ? width : (done >= total ? width : done * width / total);
    for (int i = 0; i < width; i++)
        bar[i] = i < full ? '#' : '.';
    bar[width] = '\0';
    snprintf(out, n, "[%s] %lld/%lld", bar, (long long)done, (long long)total);
}

void pl_human_duration(double seconds, char *out, size_t n)
{
    if (seconds < 0 || seconds != seconds) {
        snprintf(out, n, "0s");
        return;
    }
    long long s = seconds > 9e15 ? 9000000000000000LL : (long long)seconds;
    long long m = s / 60, h = s / 3600, d = h / 24;
    if (s < 120)
        snprintf(out, n, "%llds", s);
    else if (m < 10)
        snprintf(out, n, s % 60 ? "%lldm%llds" : "%lldm", m, s % 60);
    else if (m < 180)
        snprintf(out, n, "%lldm", m);
    else if (h < 8)
        snprintf(out, n, m % 60 ? "%lldh%lldm" : "%lldh", h, m % 60);
    else if (h < 48)
        snprintf(out, n, "%lldh", h);
    else if (h < 24 * 8)
        snprintf(out, n, h % 24 ? "%lldd%lldh" : "%lldd", d, h % 24);
    else if (h < 24 * 365 * 2)
        snprintf(out, n, "%lldd", d);
    else if (h < 24 * 365 * 8)
        snprintf(out, n, d % 365 ? "%lldy%lldd" : "%lldy", d / 365, d % 365);
    else
        snprintf(out, n, "%lldy", d / 365);
}

int64_t pl_blocked_each(const char *list,
                        void (*fn)(void *ud, const char *vmi, size_t vmi_len, const char *reason,
                                   size_t reason_len),
                        void *ud)
{
    int64_t count = 0, more;
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        if (p[0] == '+' && len > 6 && strncmp(p + len - 5, " more", 5) == 0 &&
            num_parse_i64(p + 1, len - 6, 0, INT32_MAX, &more) == 0) {
            count += more;
        } else if (len > 0) {
            count++;
            if (fn)
                fn(ud, p, colon ? (size_t)(colon - p) : len, colon ? colon + 1 : p + len,
                   colon ? len - (size_t)(colon - p) - 1 : 0);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return count;
}

/* "~3m10s" until t, "-" when t is unset. */
static void eta_text(vd_time_t t, int64_t now, char *out, size_t n)
{
    char d[32];
    if (t.sec == 0) {
        snprintf(out, n, "-");
        return;
    }
    pl_human_duration((double)(t.sec - now), d, sizeof(d));
    snprintf(out, n, "~%s", d);
}

static void age_text(vd_time_t t, int64_t now, char *out, size_t n)
{
    if (t.sec == 0)
        snprintf(out, n, "-");
    else
        pl_human_duration((double)(now - t.sec), out, n);
}

static void count_text(int64_t v, char *out, size_t n)
{
    if (v < 0)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%lld", (long long)v);
}

/* --- an aligned table, like kubectl's ----------------------------------------- */

void pl_tbl_add(pl_table_t *t, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **c = realloc(t->cells, cap * sizeof(*c));
        if (!c) {
            t->failed = 1;
            return;
        }
        t->cells = c;
        t->cap = cap;
    }
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s)
        t->failed = 1;
    t->cells[t->n++] = s;
}

void pl_tbl_free(pl_table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

int pl_tbl_write(pl_table_t *t, buf_t *out)
{
    size_t width[16] = {0};
    int rc = t->failed || t->ncols > 16 ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        size_t w = t->cells[i] ? strlen(t->cells[i]) : 0;
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        size_t col = i % t->ncols;
        bool last = col == t->ncols - 1;
        rc |=
            buf_printf(out, "%-*s%s", last ? 0 : (int)width[col], t->cells[i], last ? "\n" : "   ");
    }
    pl_tbl_free(t);
    return rc ? -1 : 0;
}

/* --- text -------------------------------------------------------------------- */

static void row_cells(pl_table_t *t, const pl_row_t *r, int64_t now)
{
    char bar[96], mig[24], pen[24], fail[24], blk[24], eta[40], age[32];
    pl_progress_bar(r->migrated, r->total, PL_BAR_WIDTH, bar, sizeof(bar));
    count_text(r->migrating, mig, sizeof(mig));
    count_text(r->pending, pen, sizeof(pen));
    count_text(r->failed, fail, sizeof(fail));
    count_text(r->blocked, blk, sizeof(blk));
    eta_text(r->eta, now, eta, sizeof(eta));
    age_text(r->started, now, age, sizeof(age));
    pl_tbl_add(t, "%s", r->node);
    pl_tbl_add(t, "%s", r->state);
    pl_tbl_add(t, "%s", r->trigger);
    pl_tbl_add(t, "%s", bar);
    pl_tbl_add(t, "%s", mig);
    pl_tbl_add(t, "%s", pen);
    pl_tbl_add(t, "%s", fail);
    pl_tbl_add(t, "%s", blk);
    pl_tbl_add(t, "%s", eta);
    pl_tbl_add(t, "%s", age);
}

static void blocked_cells(void *ud, const char *vmi, size_t vmi_len, const char *reason,
                          size_t reason_len)
{
    pl_table_t *t = ud;
    pl_tbl_add(t, "%.*s", (int)vmi_len, vmi);
    pl_tbl_add(t, "%.*s", (int)reason_len, reason);
}

/* The node's VMIs, its blocked VMIs and its message. */
static int render_detail(const pl_row_t *r, buf_t *out)
{
    const pl_nodedrain_t *nd = r->nd;
    pl_table_t t = {.ncols = 5};
    int rc = 0;
    if (nd && nd->n_vmis) {
        const char *head[] = {"VMI", "STATE", "ATTEMPTS", "MIGRATION", "REASON"};
        for (size_t i = 0; i < 5; i++)
            pl_tbl_add(&t, "%s", head[i]);
        for (size_t i = 0; i < nd->n_vmis; i++) {
            const pl_vmi_t *v = &nd->vmis[i];
            pl_tbl_add(&t, "%s/%s", v->ns, v->name);
            pl_tbl_add(&t, "%s", v->state);
            if (v->attempts < 0)
                pl_tbl_add(&t, "-");
            else
                pl_tbl_add(&t, "%lld", (long long)v->attempts);
            pl_tbl_add(&t, "%s", *v->migration ? v->migration : "-");
            pl_tbl_add(&t, "%s", *v->reason ? v->reason : "-");
        }
        rc |= buf_puts(out, "\n") | pl_tbl_write(&t, out);
        if (nd->vmis_omitted > 0)
            rc |= buf_printf(out, "(+%lld more VMIs not listed)\n", (long long)nd->vmis_omitted);
    }
    t = (pl_table_t){.ncols = 2};
    pl_tbl_add(&t, "BLOCKED VMI");
    pl_tbl_add(&t, "REASON");
    int64_t more = 0;
    if (nd && nd->has_blocked_vmis)
        for (size_t i = 0; i < nd->n_blocked_vmis; i++) {
            pl_tbl_add(&t, "%s/%s", nd->blocked_vmis[i].ns, nd->blocked_vmis[i].name);
            pl_tbl_add(&t, "%s", *nd->blocked_vmis[i].reason ? nd->blocked_vmis[i].reason : "-");
        }
    else
        more = pl_blocked_each(r->blocked_list, blocked_cells, &t);
    more -= (int64_t)(t.n / 2 - 1);
    if (t.n > 2)
        rc |= buf_puts(out, "\n") | pl_tbl_write(&t, out);
    else
        pl_tbl_free(&t); /* the header alone */
    if (more > 0)
        rc |= buf_printf(out, "(+%lld more blocked VMIs not listed)\n", (long long)more);
    if (*r->message)
        rc |= buf_printf(out, "\nMessage: %s\n", r->message);
    return rc ? -1 : 0;
}

int pl_render_text(const pl_row_t *rows, size_t n, bool detail, int64_t now, buf_t *out)
{
    static const char *const head[] = {"NODE",    "STATE",  "TRIGGER", "PROGRESS", "MIGRATING",
                                       "PENDING", "FAILED", "BLOCKED", "ETA",      "AGE"};
    pl_table_t t = {.ncols = 10};
    size_t shown = 0;
    int rc = 0;
    for (size_t i = 0; i < 10; i++)
        pl_tbl_add(&t, "%s", head[i]);
    for (size_t i = 0; i < n; i++)
        if (rows[i].found && rows[i].has_drain) {
            row_cells(&t, &rows[i], now);
            shown++;
        }
    if (shown)
        rc |= pl_tbl_write(&t, out);
    else
        pl_tbl_free(&t);
    for (size_t i = 0; i < n; i++)
        if (!rows[i].found)
            rc |= buf_printf(out, "node \"%s\" not found\n", rows[i].node);
        else if (!rows[i].has_drain)
            rc |= buf_printf(out, "node \"%s\" has no drain\n", rows[i].node);
    if (n == 0)
        rc |= buf_puts(out, "No node is draining.\n");
    if (detail && n == 1 && rows[0].found && rows[0].has_drain)
        rc |= render_detail(&rows[0], out);
    return rc ? -1 : 0;
}

/* --- JSON -------------------------------------------------------------------- */

static void j_count(util_jgen_t *j, const char *key, int64_t v)
{
    util_jgen_str(j, key);
    if (v < 0)
        util_jgen_null(j);
    else
        util_jgen_int(j, v);
}

static void j_time(util_jgen_t *j, const char *key, vd_time_t t)
{
    char s[TIME_RFC3339_MAX];
    util_jgen_str(j, key);
    if (t.sec == 0 || time_format_rfc3339(t, 0, s, sizeof(s)) < 0)
        util_jgen_null(j);
    else
        util_jgen_str(j, s);
}

static void j_vmi(util_jgen_t *j, const char *ns, size_t ns_len, const char *name, size_t name_len,
                  const char *reason, size_t reason_len)
{
    util_jgen_map_open(j);
    util_jgen_str(j, "namespace");
    util_jgen_strn(j, ns, ns_len);
    util_jgen_str(j, "name");
    util_jgen_strn(j, name, name_len);
    util_jgen_str(j, "reason");
    util_jgen_strn(j, reason, reason_len);
    util_jgen_map_close(j);
}

static void j_blocked_ann(void *ud, const char *vmi, size_t vmi_len, const char *reason,
                          size_t reason_len)
{
    const char *slash = memchr(vmi, '/', vmi_len);
    size_t ns_len = slash ? (size_t)(slash - vmi) : 0;
    const char *name = slash ? slash + 1 : vmi;
    j_vmi(ud, vmi, ns_len, name, vmi_len - (size_t)(name - vmi), reason, reason_len);
}

static void j_vmis(util_jgen_t *j, const pl_row_t *r)
{
    const pl_nodedrain_t *nd = r->nd;
    util_jgen_str(j, "vmis");
    util_jgen_array_open(j);
    for (size_t i = 0; nd && i < nd->n_vmis; i++) {
        const pl_vmi_t *v = &nd->vmis[i];
        util_jgen_map_open(j);
        util_jgen_kv(j, "namespace", v->ns);
        util_jgen_kv(j, "name", v->name);
        util_jgen_kv(j, "state", v->state);
        j_count(j, "attempts", v->attempts);
        util_jgen_kv(j, "migration", v->migration);
        util_jgen_kv(j, "reason", v->reason);
        util_jgen_map_close(j);
    }
    util_jgen_array_close(j);
    util_jgen_str(j, "blockedVMIs");
    util_jgen_array_open(j);
    if (nd && nd->has_blocked_vmis)
        for (size_t i = 0; i < nd->n_blocked_vmis; i++) {
            const pl_vmi_t *v = &nd->blocked_vmis[i];
            j_vmi(j, v->ns, strlen(v->ns), v->name, strlen(v->name), v->reason, strlen(v->reason));
        }
    else
        pl_blocked_each(r->blocked_list, j_blocked_ann, j);
    util_jgen_array_close(j);
}

static void j_row(util_jgen_t *j, const pl_row_t *r, int64_t now)
{
    char eta[40], age[32];
    util_jgen_map_open(j);
    util_jgen_kv(j, "node", r->node);
    util_jgen_str(j, "found");
    util_jgen_bool(j, r->found);
    util_jgen_str(j, "draining");
    util_jgen_bool(j, r->has_drain);
    util_jgen_kv(j, "state", r->has_drain ? r->state : NULL);
    util_jgen_kv(j, "trigger", r->has_drain ? r->trigger : NULL);
    const struct {
        const char *key;
        int64_t value;
    } counts[] = {{"migrated", r->migrated}, {"total", r->total},   {"migrating", r->migrating},
                  {"pending", r->pending},   {"failed", r->failed}, {"blocked", r->blocked}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        j_count(j, counts[i].key, counts[i].value);
    eta_text(r->eta, now, eta, sizeof(eta));
    age_text(r->started, now, age, sizeof(age));
    util_jgen_kv(j, "eta", r->eta.sec ? eta : NULL);
    j_count(j, "etaSeconds", r->eta.sec ? (r->eta.sec > now ? r->eta.sec - now : 0) : -1);
    j_time(j, "estimatedCompletionTime", r->eta);
    util_jgen_kv(j, "age", r->started.sec ? age : NULL);
    j_count(j, "ageSeconds",
            r->started.sec ? (now > r->started.sec ? now - r->started.sec : 0) : -1);
    j_time(j, "startedAt", r->started);
    util_jgen_kv(j, "message", r->message);
    j_vmis(j, r);
    util_jgen_map_close(j);
}

int pl_render_json(const pl_row_t *rows, size_t n, int64_t now, buf_t *out)
{
    util_jgen_t j;
    const char *text;
    size_t len;
    int rc = util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_str(&j, "nodes");
    util_jgen_array_open(&j);
    for (size_t i = 0; i < n; i++)
        j_row(&j, &rows[i], now);
    util_jgen_array_close(&j);
    util_jgen_map_close(&j);
    if (rc == 0 && util_jgen_get(&j, &text, &len) == 0)
        rc = buf_append(out, text, len) < 0 || buf_puts(out, "\n") < 0 ? -1 : 0;
    else
        rc = -1;
    util_jgen_free(&j);
    return rc;
}
