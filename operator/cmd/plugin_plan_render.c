/*
 * cmd/plugin_plan_render — the plan of `kubectl vmdrain plan` as text, as
 * JSON and as YAML (the JSON document, re-emitted by libyaml). Pure: no
 * I/O; the numbers are drain/dryrun's.
 *
 * Calls util/buf, util/jsongen, util/jsontree, libyaml, and the table and
 * duration helpers of plugin_render.c.
 */
#include "cmd/plugin.h"
#include "drain/dryrun.h"
#include "util/jsongen.h"
#include "util/jsontree.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define GIB(b) ((double)(b) / (double)(1LL << 30))

static bool moving(const drain_dryrun_vmi_t *v)
{
    return v->kind == DRAIN_DRYRUN_MOVE || v->kind == DRAIN_DRYRUN_KUBEVIRT;
}

static void duration(double s, char *out, size_t n)
{
    if (s < 0)
        snprintf(out, n, "never");
    else
        pl_human_duration(s + 0.5, out, n);
}

/* Appends "; " and one problem to out. */
static void add_problem(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_problem(char *out, size_t n, const char *fmt, ...)
{
    size_t len = strlen(out);
    va_list ap;
    if (len)
        len += (size_t)snprintf(out + len, n - len, "; ");
    va_start(ap, fmt);
    if (len < n)
        vsnprintf(out + len, n - len, fmt, ap);
    va_end(ap);
}

/* "1 VMI(s) would block; capacity: ...": why the drain would not
 * complete; "" when it would. */
static void problems(const drain_dryrun_t *d, const drain_config_t *cfg, char *out, size_t n)
{
    int blocked = 0, failed = 0, moves = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n_nodes; i++) {
        blocked += d->nodes[i].blocked;
        failed += d->nodes[i].failed;
        moves += d->nodes[i].moves;
    }
    if (blocked)
        add_problem(out, n, "%d VMI(s) would block", blocked);
    if (failed)
        add_problem(out, n, "%d VMI(s) failed every attempt already", failed);
    if (moves && !cfg->live_migration_enabled)
        add_problem(out, n, "the LiveMigration feature gate is off: nothing would migrate");
    if (d->seconds < 0)
        add_problem(out, n, "a migration limit is 0: no migration would start");
    if (!drain_capacity_fits(&d->capacity))
        add_problem(out, n, "capacity: %s", d->capacity_text);
}

static void rate_text(const drain_dryrun_t *d, char *out, size_t n)
{
    snprintf(out, n, "%.0f MiB/s per migration%s", (double)d->rate / (double)(1 << 20),
             d->rate_assumed ? " (assumed: bandwidthPerMigration is unlimited)" : "");
}

static int text_nodes(const drain_dryrun_t *d, buf_t *out)
{
    pl_table_t t = {.ncols = 8};
    const char *head[] = {"NODE",    "DRAIN NOW", "MOVE", "MIGRATING",
                          "BLOCKED", "FAILED",    "LEFT", "TIME"};
    for (size_t i = 0; i < 8; i++)
        pl_tbl_add(&t, "%s", head[i]);
    for (size_t i = 0; i < d->n_nodes; i++) {
        const drain_dryrun_node_t *nd = &d->nodes[i];
        char time[32];
        duration(d->seconds < 0 && nd->moves ? -1 : nd->seconds, time, sizeof(time));
        pl_tbl_add(&t, "%s", nd->name);
        pl_tbl_add(&t, "%s", nd->state == DRAIN_STATE_NONE ? "-" : drain_state_name(nd->state));
        pl_tbl_add(&t, "%d", nd->moves);
        pl_tbl_add(&t, "%d", nd->migrating);
        pl_tbl_add(&t, "%d", nd->blocked);
        pl_tbl_add(&t, "%d", nd->failed);
        pl_tbl_add(&t, "%d", nd->left);
        pl_tbl_add(&t, "%s", time);
    }
    return pl_tbl_write(&t, out);
}

/* The VMIs of one group: the moves (with their times) or the rest. */
static int text_vmis(const drain_dryrun_t *d, bool moves, const char *title, buf_t *out)
{
    pl_table_t t = {.ncols = moves ? 6 : 4};
    size_t rows = 0;
    if (moves)
        for (const char *h = "ORDER\0VMI\0NODE\0MEMORY\0START\0BY\0"; *h; h += strlen(h) + 1)
            pl_tbl_add(&t, "%s", h);
    else
        for (const char *h = "VMI\0NODE\0STATE\0WHY\0"; *h; h += strlen(h) + 1)
            pl_tbl_add(&t, "%s", h);
    for (size_t i = 0; i < d->n_vmis; i++) {
        const drain_dryrun_vmi_t *v = &d->vmis[i];
        if (moving(v) != moves)
            continue;
        rows++;
        if (moves)
            pl_tbl_add(&t, "%d", v->order);
        pl_tbl_add(&t, "%s/%s", v->vmi->obj.ns, v->vmi->obj.name);
        pl_tbl_add(&t, "%s", v->node);
        if (moves) {
            char start[32];
            duration(v->order ? v->start : -1, start, sizeof(start));
            pl_tbl_add(&t, "%.1f GiB", GIB(v->memory));
            pl_tbl_add(&t, "+%s", start);
            pl_tbl_add(&t, "%s", v->kind == DRAIN_DRYRUN_KUBEVIRT ? "KubeVirt" : "vmdrain");
        } else {
            pl_tbl_add(&t, "%s", drain_dryrun_kind_name(v->kind));
            pl_tbl_add(&t, "%s", v->reason[0] ? v->reason : "-");
        }
    }
    if (rows == 0) {
        pl_tbl_free(&t);
        return 0;
    }
    return buf_printf(out, "\n%s\n", title) < 0 ? -1 : pl_tbl_write(&t, out);
}

int pl_plan_render_text(const drain_dryrun_t *d, const drain_config_t *cfg,
                        const pl_plan_src_t *src, buf_t *out)
{
    char why[1024], time[32], rate[96];
    problems(d, cfg, why, sizeof(why));
    duration(d->seconds, time, sizeof(time));
    rate_text(d, rate, sizeof(rate));
    if (text_nodes(d, out) < 0 ||
        text_vmis(d, true, "Would move, in the order they would start:", out) < 0 ||
        text_vmis(d, false, "Would not move:", out) < 0)
        return -1;
    int rc = buf_printf(out,
                        "\nCapacity: %s\n"
                        "Predicted time to drain: %s (at most %d migrations at once in the "
                        "cluster, %d per node; %s; transfer time only, a lower bound)\n"
                        "Configuration: ConfigMap %s%s, KubeVirt %s%s\n",
                        d->capacity_text, time, cfg->parallel_migrations_per_cluster,
                        cfg->parallel_outbound_per_node, rate, src->config,
                        src->config_found ? "" : " (not found: defaults)", src->kubevirt,
                        src->kubevirt_found ? "" : " (not found)");
    if (rc == 0)
        rc = why[0] ? buf_printf(out, "Result: the drain would not complete: %s\n", why)
                    : buf_puts(out, "Result: the drain would complete\n");
    return rc < 0 ? -1 : 0;
}

/* --- JSON -------------------------------------------------------------------------------- */

/* Seconds, whole (rounded up: the figures are lower bounds anyway); -1
 * for never. */
static void j_num(util_jgen_t *j, const char *key, double v)
{
    util_jgen_kint(j, key, v < 0 ? -1 : (long long)ceil(v));
}

static void j_vmi(util_jgen_t *j, const drain_dryrun_vmi_t *v)
{
    util_jgen_map_open(j);
    util_jgen_kv(j, "namespace", v->vmi->obj.ns);
    util_jgen_kv(j, "name", v->vmi->obj.name);
    util_jgen_kv(j, "node", v->node);
    util_jgen_kv(j, "action", drain_dryrun_kind_name(v->kind));
    util_jgen_kint(j, "memoryBytes", v->memory);
    util_jgen_kint(j, "needBytes", v->need);
    if (moving(v)) {
        util_jgen_kint(j, "order", v->order);
        j_num(j, "startSeconds", v->start);
        j_num(j, "endSeconds", v->end);
    }
    if (v->reason[0])
        util_jgen_kv(j, "reason", v->reason);
    util_jgen_map_close(j);
}

static void j_nodes(util_jgen_t *j, const drain_dryrun_t *d)
{
    util_jgen_str(j, "nodes");
    util_jgen_array_open(j);
    for (size_t i = 0; i < d->n_nodes; i++) {
        const drain_dryrun_node_t *nd = &d->nodes[i];
        util_jgen_map_open(j);
        util_jgen_kv(j, "name", nd->name);
        util_jgen_kv(j, "drainNow", drain_state_name(nd->state));
        util_jgen_kint(j, "move", nd->moves);
        util_jgen_kint(j, "migrating", nd->migrating);
        util_jgen_kint(j, "blocked", nd->blocked);
        util_jgen_kint(j, "failed", nd->failed);
        util_jgen_kint(j, "left", nd->left);
        j_num(j, "seconds", nd->seconds);
        util_jgen_map_close(j);
    }
    util_jgen_array_close(j);
}

static void j_capacity(util_jgen_t *j, const drain_dryrun_t *d)
{
    const drain_capacity_t *c = &d->capacity;
    util_jgen_str(j, "capacity");
    util_jgen_map_open(j);
    util_jgen_str(j, "fits");
    util_jgen_bool(j, drain_capacity_fits(c));
    util_jgen_kint(j, "vmis", c->vmis);
    util_jgen_kint(j, "neededBytes", c->needed);
    util_jgen_kint(j, "targets", c->targets);
    util_jgen_kint(j, "freeBytes", c->free);
    util_jgen_kint(j, "unplaced", c->unplaced);
    util_jgen_kint(j, "shortfallBytes", c->shortfall);
    util_jgen_kv(j, "message", d->capacity_text);
    util_jgen_map_close(j);
}

int pl_plan_render_json(const drain_dryrun_t *d, const drain_config_t *cfg,
                        const pl_plan_src_t *src, buf_t *out)
{
    util_jgen_t j;
    char why[1024];
    const char *text;
    size_t len;

    problems(d, cfg, why, sizeof(why));
    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_str(&j, "complete");
    util_jgen_bool(&j, d->complete);
    if (why[0])
        util_jgen_kv(&j, "problems", why);
    j_num(&j, "predictedSeconds", d->seconds);
    j_nodes(&j, d);
    util_jgen_str(&j, "vmis");
    util_jgen_array_open(&j);
    for (size_t i = 0; i < d->n_vmis; i++)
        j_vmi(&j, &d->vmis[i]);
    util_jgen_array_close(&j);
    j_capacity(&j, d);
    util_jgen_str(&j, "configuration");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "configMap", src->config);
    util_jgen_str(&j, "configMapFound");
    util_jgen_bool(&j, src->config_found);
    util_jgen_kv(&j, "kubevirt", src->kubevirt);
    util_jgen_str(&j, "kubevirtFound");
    util_jgen_bool(&j, src->kubevirt_found);
    util_jgen_kint(&j, "parallelMigrationsPerCluster", cfg->parallel_migrations_per_cluster);
    util_jgen_kint(&j, "parallelOutboundMigrationsPerNode", cfg->parallel_outbound_per_node);
    util_jgen_kint(&j, "bandwidthBytesPerSecond", d->rate);
    util_jgen_str(&j, "bandwidthAssumed");
    util_jgen_bool(&j, d->rate_assumed);
    util_jgen_map_close(&j);
    util_jgen_map_close(&j);
    int rc = util_jgen_get(&j, &text, &len);
    if (rc == 0)
        rc = buf_append(out, text, len) < 0 || buf_puts(out, "\n") < 0 ? -1 : 0;
    util_jgen_free(&j);
    return rc;
}

/* --- YAML -------------------------------------------------------------------------------- */

/* Whether a string would read back as something else when written plain. */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {"true", "false", "null", "~", "yes",
                                        "no",   "on",    "off",  "y", "n"};
    char *end;
    if (!*s)
        return true;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    (void)strtod(s, &end);
    return *end == '\0';
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev)
{
    return yaml_emitter_emit(e, ev) ? 0 : -1;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, bool string)
{
    yaml_event_t ev;
    yaml_scalar_style_t style =
        string && needs_quotes(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                      style))
        return -1;
    return emit(e, &ev);
}

static int emit_value(yaml_emitter_t *e, yajl_val v)
{
    yaml_event_t ev;
    if (YAJL_IS_OBJECT(v)) {
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            emit(e, &ev) < 0)
            return -1;
        for (size_t i = 0; i < v->u.object.len; i++)
            if (emit_scalar(e, v->u.object.keys[i], true) < 0 ||
                emit_value(e, v->u.object.values[i]) < 0)
                return -1;
        return yaml_mapping_end_event_initialize(&ev) ? emit(e, &ev) : -1;
    }
    if (YAJL_IS_ARRAY(v)) {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            emit(e, &ev) < 0)
            return -1;
        for (size_t i = 0; i < v->u.array.len; i++)
            if (emit_value(e, v->u.array.values[i]) < 0)
                return -1;
        return yaml_sequence_end_event_initialize(&ev) ? emit(e, &ev) : -1;
    }
    if (YAJL_IS_STRING(v))
        return emit_scalar(e, v->u.string, true);
    if (YAJL_IS_NUMBER(v))
        return emit_scalar(e, v->u.number.r, false);
    return emit_scalar(e, YAJL_IS_TRUE(v) ? "true" : YAJL_IS_FALSE(v) ? "false" : "null", false);
}

static int write_out(void *ud, unsigned char *data, size_t size)
{
    return buf_append(ud, data, size) == 0;
}

int pl_json_to_yaml(const char *json, size_t len, buf_t *out, char *err, size_t errlen)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    int rc = -1;

    if (len > (64u << 20)) {
        snprintf(err, errlen, "the document is larger than 64 MiB");
        return -1;
    }
    yajl_val tree = util_json_tree_parse(json, len, 64, "the plan", err, errlen);
    if (!tree)
        return -1;
    if (!yaml_emitter_initialize(&e)) {
        yajl_tree_free(tree);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    yaml_emitter_set_output(&e, write_out, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    if (yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && emit(&e, &ev) == 0 &&
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && emit(&e, &ev) == 0 &&
        emit_value(&e, tree) == 0 && yaml_document_end_event_initialize(&ev, 1) &&
        emit(&e, &ev) == 0 && yaml_stream_end_event_initialize(&ev) && emit(&e, &ev) == 0)
        rc = 0;
    if (rc < 0)
        snprintf(err, errlen, "YAML: %s", e.problem ? e.problem : "out of memory");
    yaml_emitter_delete(&e);
    yajl_tree_free(tree);
    return rc;
}
