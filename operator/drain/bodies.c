/*
 * drain/bodies — see bodies.h.
 */
#include "drain/bodies.h"
#include "util/num.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

/* A generator that remembers its first failure, so a body is either whole
 * or refused (gen_take fails). */
typedef struct gen {
    yajl_gen y;
    bool bad;
} gen_t;

static void gen_init(gen_t *g)
{
    g->y = yajl_gen_alloc(NULL);
    g->bad = !g->y;
}

static void gcheck(gen_t *g, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok)
        g->bad = true;
}

static void gstr(gen_t *g, const char *s)
{
    if (!g->bad)
        gcheck(g, yajl_gen_string(g->y, (const unsigned char *)s, strlen(s)));
}

static void gopen(gen_t *g)
{
    if (!g->bad)
        gcheck(g, yajl_gen_map_open(g->y));
}

static void gclose(gen_t *g)
{
    if (!g->bad)
        gcheck(g, yajl_gen_map_close(g->y));
}

static void gnull(gen_t *g)
{
    if (!g->bad)
        gcheck(g, yajl_gen_null(g->y));
}

/* A string, or null when s is NULL. */
static void gstr_or_null(gen_t *g, const char *s)
{
    if (s)
        gstr(g, s);
    else
        gnull(g);
}

/* Hands the generated text to the caller as a fresh string and frees the
 * generator. Returns its length, or -1 when any step failed. */
static int gen_take(gen_t *g, char **out)
{
    const unsigned char *buf;
    size_t len;
    int rc = -1;

    *out = NULL;
    if (!g->bad && yajl_gen_get_buf(g->y, &buf, &len) == yajl_gen_status_ok &&
        (*out = malloc(len + 1))) {
        memcpy(*out, buf, len);
        (*out)[len] = '\0';
        rc = (int)len;
    }
    if (g->y)
        yajl_gen_free(g->y);
    return rc;
}

/* --- the node patch --------------------------------------------------------------- */

typedef struct ann_change {
    const char *key;
    const char *value; /* NULL: remove */
} ann_change_t;

#define ANN_CHANGES_MAX 16

/* Adds key to the change list when value differs from what the node has.
 * An empty value means absent. */
static void diff_ann(const kube_node_t *n, ann_change_t *ch, size_t *nch, const char *key,
                     const char *value)
{
    const char *cur = kube_obj_annotation(&n->obj, key);
    if (value && !*value)
        value = NULL;
    if ((!cur && !value) || (cur && value && strcmp(cur, value) == 0) || *nch >= ANN_CHANGES_MAX)
        return;
    ch[*nch].key = key;
    ch[*nch].value = value;
    (*nch)++;
}

/* A count the node's annotation holds (0 when absent or not a count). */
static int ann_int(const kube_node_t *n, const char *key)
{
    int v = 0;
    if (num_parse_int(kube_obj_annotation(&n->obj, key), 0, 1 << 30, &v) < 0)
        return 0;
    return v;
}

/* The annotations the plan changes on the node. Returns how many. */
static size_t node_changes(const drain_plan_t *p, const kube_node_t *n, ann_change_t *ch,
                           char counts[3][16])
{
    size_t nch = 0;
    bool ended = p->state == DRAIN_STATE_COMPLETED || p->state == DRAIN_STATE_CANCELLED;

    snprintf(counts[0], 16, "%d", ended ? 0 : p->migrating);
    snprintf(counts[1], 16, "%d", ended ? 0 : p->pending);
    snprintf(counts[2], 16, "%d", ended ? ann_int(n, DRAIN_ANN_FAILED) : p->failed);
    diff_ann(n, ch, &nch, DRAIN_ANN_STATE, drain_state_name(p->state));
    diff_ann(n, ch, &nch, DRAIN_ANN_PROGRESS, p->progress);
    diff_ann(n, ch, &nch, DRAIN_ANN_MIGRATING, counts[0]);
    diff_ann(n, ch, &nch, DRAIN_ANN_PENDING, counts[1]);
    diff_ann(n, ch, &nch, DRAIN_ANN_FAILED, counts[2]);
    if (!ended)
        diff_ann(n, ch, &nch, DRAIN_ANN_BLOCKED, p->blocked_list);
    diff_ann(n, ch, &nch, DRAIN_ANN_STARTED_AT, p->started_at);
    diff_ann(n, ch, &nch, DRAIN_ANN_COMPLETED_AT, p->completed_at);
    diff_ann(n, ch, &nch, DRAIN_ANN_MESSAGE, p->message);
    diff_ann(n, ch, &nch, DRAIN_ANN_CORDONED_BY, p->cordoned_by);
    if (p->trigger)
        diff_ann(n, ch, &nch, DRAIN_ANN_TRIGGER, p->trigger);
    return nch;
}

/* "spec": unschedulable and, for OnCompletion, the taints without the
 * drain taint. */
static void gen_node_spec(gen_t *g, const drain_view_t *v, const drain_plan_t *p)
{
    const kube_node_t *n = v->node;

    gstr(g, "spec");
    gopen(g);
    if (p->cordon) {
        gstr(g, "unschedulable");
        if (p->cordon > 0 && !g->bad)
            gcheck(g, yajl_gen_bool(g->y, 1));
        else if (p->cordon < 0)
            gnull(g);
    }
    if (p->remove_taint) {
        gstr(g, "taints");
        if (!g->bad)
            gcheck(g, yajl_gen_array_open(g->y));
        for (size_t i = 0; i < n->n_taints; i++) {
            const kube_taint_t *t = &n->taints[i];
            if (strcmp(t->key, v->cfg->node_drain_taint_key) == 0 &&
                strcmp(t->effect, "NoSchedule") == 0)
                continue;
            gopen(g);
            gstr(g, "key");
            gstr(g, t->key);
            if (t->value[0]) {
                gstr(g, "value");
                gstr(g, t->value);
            }
            gstr(g, "effect");
            gstr(g, t->effect);
            gclose(g);
        }
        if (!g->bad)
            gcheck(g, yajl_gen_array_close(g->y));
    }
    gclose(g);
}

int drain_node_patch(const drain_view_t *v, const drain_plan_t *p, char **out)
{
    const kube_node_t *n = v->node;
    ann_change_t ch[ANN_CHANGES_MAX];
    char counts[3][16];
    const char *label = drain_state_label(p->state);
    gen_t g;

    *out = NULL;
    if (p->state == DRAIN_STATE_NONE && p->cordon == 0)
        return 0;
    size_t nch = node_changes(p, n, ch, counts);
    const char *cur_label = kube_obj_label(&n->obj, DRAIN_LABEL_STATE);
    bool label_changed = !cur_label ? label[0] != '\0' : strcmp(cur_label, label) != 0;
    if (nch == 0 && !label_changed && p->cordon == 0 && !p->remove_taint)
        return 0;

    gen_init(&g);
    gopen(&g);
    gstr(&g, "metadata");
    gopen(&g);
    gstr(&g, "resourceVersion");
    gstr(&g, n->obj.resource_version);
    if (nch) {
        gstr(&g, "annotations");
        gopen(&g);
        for (size_t i = 0; i < nch; i++) {
            gstr(&g, ch[i].key);
            gstr_or_null(&g, ch[i].value);
        }
        gclose(&g);
    }
    if (label_changed) {
        gstr(&g, "labels");
        gopen(&g);
        gstr(&g, DRAIN_LABEL_STATE);
        gstr_or_null(&g, label[0] ? label : NULL);
        gclose(&g);
    }
    gclose(&g);
    if (p->cordon || p->remove_taint)
        gen_node_spec(&g, v, p);
    gclose(&g);
    return gen_take(&g, out);
}

/* --- objects and small patches ------------------------------------------------------- */

int drain_migration_body(const drain_candidate_t *c, const char *node, char **out)
{
    gen_t g;

    gen_init(&g);
    gopen(&g);
    gstr(&g, "apiVersion");
    gstr(&g, "kubevirt.io/v1");
    gstr(&g, "kind");
    gstr(&g, "VirtualMachineInstanceMigration");
    gstr(&g, "metadata");
    gopen(&g);
    gstr(&g, "name");
    gstr(&g, c->name);
    gstr(&g, "namespace");
    gstr(&g, c->vmi->obj.ns);
    gstr(&g, "labels");
    gopen(&g);
    gstr(&g, DRAIN_LABEL_MANAGED_BY);
    gstr(&g, "vmdrain");
    gstr(&g, DRAIN_LABEL_NODE);
    gstr(&g, node);
    gstr(&g, DRAIN_LABEL_VMI_UID);
    gstr(&g, c->vmi->obj.uid);
    gclose(&g);
    gstr(&g, "annotations");
    gopen(&g);
    gstr(&g, DRAIN_ANN_EVACUATION);
    gstr(&g, node);
    gclose(&g);
    gclose(&g);
    gstr(&g, "spec");
    gopen(&g);
    gstr(&g, "vmiName");
    gstr(&g, c->vmi->obj.name);
    gclose(&g);
    gclose(&g);
    return gen_take(&g, out);
}

/* {"metadata":{"<field>":{"<key>":value|null}}} */
static int meta_patch(const char *field, const char *key, const char *value, char **out)
{
    gen_t g;

    gen_init(&g);
    gopen(&g);
    gstr(&g, "metadata");
    gopen(&g);
    gstr(&g, field);
    gopen(&g);
    gstr(&g, key);
    gstr_or_null(&g, value);
    gclose(&g);
    gclose(&g);
    gclose(&g);
    return gen_take(&g, out);
}

int drain_annotation_patch(const char *key, const char *value, char **out)
{
    return meta_patch("annotations", key, value, out);
}

int drain_label_patch(const char *key, const char *value, char **out)
{
    return meta_patch("labels", key, value, out);
}

int drain_policy_body(const char *name, const char *bandwidth, int completion_timeout_per_gib,
                      char **out)
{
    gen_t g;

    gen_init(&g);
    gopen(&g);
    gstr(&g, "apiVersion");
    gstr(&g, "migrations.kubevirt.io/v1alpha1");
    gstr(&g, "kind");
    gstr(&g, "MigrationPolicy");
    gstr(&g, "metadata");
    gopen(&g);
    gstr(&g, "name");
    gstr(&g, name);
    gstr(&g, "labels");
    gopen(&g);
    gstr(&g, DRAIN_LABEL_MANAGED_BY);
    gstr(&g, "vmdrain");
    gclose(&g);
    gclose(&g);
    gstr(&g, "spec");
    gopen(&g);
    gstr(&g, "selectors");
    gopen(&g);
    gstr(&g, "virtualMachineInstanceSelector");
    gopen(&g);
    gstr(&g, DRAIN_LABEL_EVACUATING);
    gstr(&g, "true");
    gclose(&g);
    gclose(&g);
    gstr(&g, "bandwidthPerMigration");
    gstr_or_null(&g, bandwidth);
    gstr(&g, "completionTimeoutPerGiB");
    if (!g.bad)
        gcheck(&g, yajl_gen_integer(g.y, completion_timeout_per_gib));
    gclose(&g);
    gclose(&g);
    return gen_take(&g, out);
}
