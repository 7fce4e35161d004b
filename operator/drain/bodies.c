/*
 * drain/bodies — see bodies.h. Pure text generation; calls util/jsongen and
 * util/num; called by drain/writer.c.
 */
#include "drain/bodies.h"
#include "util/jsongen.h"
#include "util/num.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hands the generated text to the caller and frees the generator.
 * Returns its length, or -1 when any step failed. */
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
static void gen_node_spec(util_jgen_t *g, const drain_view_t *v, const drain_plan_t *p)
{
    const kube_node_t *n = v->node;

    util_jgen_str(g, "spec");
    util_jgen_map_open(g);
    if (p->cordon) {
        util_jgen_str(g, "unschedulable");
        if (p->cordon > 0)
            util_jgen_bool(g, true);
        else
            util_jgen_null(g);
    }
    if (p->remove_taint) {
        util_jgen_str(g, "taints");
        util_jgen_array_open(g);
        for (size_t i = 0; i < n->n_taints; i++) {
            const kube_taint_t *t = &n->taints[i];
            if (strcmp(t->key, v->cfg->node_drain_taint_key) == 0 &&
                strcmp(t->effect, "NoSchedule") == 0)
                continue;
            util_jgen_map_open(g);
            util_jgen_str(g, "key");
            util_jgen_str(g, t->key);
            if (t->value[0]) {
                util_jgen_str(g, "value");
                util_jgen_str(g, t->value);
            }
            util_jgen_str(g, "effect");
            util_jgen_str(g, t->effect);
            util_jgen_map_close(g);
        }
        util_jgen_array_close(g);
    }
    util_jgen_map_close(g);
}

int drain_node_patch(const drain_view_t *v, const drain_plan_t *p, char **out)
{
    const kube_node_t *n = v->node;
    ann_change_t ch[ANN_CHANGES_MAX];
    char counts[3][16];
    const char *label = drain_state_label(p->state);
    util_jgen_t g;

    *out = NULL;
    if (p->state == DRAIN_STATE_NONE && p->cordon == 0)
        return 0;
    size_t nch = node_changes(p, n, ch, counts);
    const char *cur_label = kube_obj_label(&n->obj, DRAIN_LABEL_STATE);
    bool label_changed = !cur_label ? label[0] != '\0' : strcmp(cur_label, label) != 0;
    if (nch == 0 && !label_changed && p->cordon == 0 && !p->remove_taint)
        return 0;

    util_jgen_init(&g);
    util_jgen_map_open(&g);
    util_jgen_str(&g, "metadata");
    util_jgen_map_open(&g);
    util_jgen_str(&g, "resourceVersion");
    util_jgen_str(&g, n->obj.resource_version);
    if (nch) {
        util_jgen_str(&g, "annotations");
        util_jgen_map_open(&g);
        for (size_t i = 0; i < nch; i++) {
            util_jgen_str(&g, ch[i].key);
            util_jgen_str(&g, ch[i].value);
        }
        util_jgen_map_close(&g);
    }
    if (label_changed) {
        util_jgen_str(&g, "labels");
        util_jgen_map_open(&g);
        util_jgen_str(&g, DRAIN_LABEL_STATE);
        util_jgen_str(&g, label[0] ? label : NULL);
        util_jgen_map_close(&g);
    }
    util_jgen_map_close(&g);
    if (p->cordon || p->remove_taint)
        gen_node_spec(&g, v, p);
    util_jgen_map_close(&g);
    return util_jgen_finish(&g, out);
}

/* --- objects and small patches ------------------------------------------------------- */

int drain_migration_body(const drain_candidate_t *c, const char *node, char **out)
{
    util_jgen_t g;

    util_jgen_init(&g);
    util_jgen_map_open(&g);
    util_jgen_str(&g, "apiVersion");
    util_jgen_str(&g, "kubevirt.io/v1");
    util_jgen_str(&g, "kind");
    util_jgen_str(&g, "VirtualMachineInstanceMigration");
    util_jgen_str(&g, "metadata");
    util_jgen_map_open(&g);
    util_jgen_str(&g, "name");
    util_jgen_str(&g, c->name);
    util_jgen_str(&g, "namespace");
    util_jgen_str(&g, c->vmi->obj.ns);
    util_jgen_str(&g, "labels");
    util_jgen_map_open(&g);
    util_jgen_str(&g, DRAIN_LABEL_MANAGED_BY);
    util_jgen_str(&g, "vmdrain");
    util_jgen_str(&g, DRAIN_LABEL_NODE);
    util_jgen_str(&g, node);
    util_jgen_str(&g, DRAIN_LABEL_VMI_UID);
    util_jgen_str(&g, c->vmi->obj.uid);
    util_jgen_map_close(&g);
    util_jgen_str(&g, "annotations");
    util_jgen_map_open(&g);
    util_jgen_str(&g, DRAIN_ANN_EVACUATION);
    util_jgen_str(&g, node);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    util_jgen_str(&g, "spec");
    util_jgen_map_open(&g);
    util_jgen_str(&g, "vmiName");
    util_jgen_str(&g, c->vmi->obj.name);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    return util_jgen_finish(&g, out);
}

/* {"metadata":{"<field>":{"<key>":value|null}}} */
static int meta_patch(const char *field, const char *key, const char *value, char **out)
{
    util_jgen_t g;

    util_jgen_init(&g);
    util_jgen_map_open(&g);
    util_jgen_str(&g, "metadata");
    util_jgen_map_open(&g);
    util_jgen_str(&g, field);
    util_jgen_map_open(&g);
    util_jgen_str(&g, key);
    util_jgen_str(&g, value);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    return util_jgen_finish(&g, out);
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
    util_jgen_t g;

    util_jgen_init(&g);
    util_jgen_map_open(&g);
    util_jgen_str(&g, "apiVersion");
    util_jgen_str(&g, "migrations.kubevirt.io/v1alpha1");
    util_jgen_str(&g, "kind");
    util_jgen_str(&g, "MigrationPolicy");
    util_jgen_str(&g, "metadata");
    util_jgen_map_open(&g);
    util_jgen_str(&g, "name");
    util_jgen_str(&g, name);
    util_jgen_str(&g, "labels");
    util_jgen_map_open(&g);
    util_jgen_str(&g, DRAIN_LABEL_MANAGED_BY);
    util_jgen_str(&g, "vmdrain");
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    util_jgen_str(&g, "spec");
    util_jgen_map_open(&g);
    util_jgen_str(&g, "selectors");
    util_jgen_map_open(&g);
    util_jgen_str(&g, "virtualMachineInstanceSelector");
    util_jgen_map_open(&g);
    util_jgen_str(&g, DRAIN_LABEL_EVACUATING);
    util_jgen_str(&g, "true");
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    util_jgen_str(&g, "bandwidthPerMigration");
    util_jgen_str(&g, bandwidth);
    util_jgen_str(&g, "completionTimeoutPerGiB");
    util_jgen_int(&g, completion_timeout_per_gib);
    util_jgen_map_close(&g);
    util_jgen_map_close(&g);
    return util_jgen_finish(&g, out);
}
