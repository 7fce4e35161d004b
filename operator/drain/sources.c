/*
 * drain/sources — the configuration's two sources and the one in force:
 * the ConfigMap (kubevirt-config format, drain/config) and, with
 * --kubevirt, the KubeVirt CR (drain/kubevirt), merged with the
 * ConfigMap's keys on top. Each source is applied all or nothing: an
 * invalid one keeps its last good value and says why (log line, Warning
 * Event on the object). When KubeVirt's evacuation controller acts on
 * vmdrain's own taint key, a log line, a Warning Event on the KubeVirt CR,
 * /readyz and vmdrain_kubevirt_taint_key_shared say so.
 *
 * Calls drain/config, drain/kubevirt, drain/planner and the writer through
 * drain/engine.h; its handlers are registered by drain/controller.c.
 */
#include "drain/engine.h"
#include "drain/kubevirt.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdio.h>
#include <string.h>

static metrics_gauge_t *g_shared;

void drain__sources_metrics(void)
{
    if (!g_shared)
        g_shared = metrics_gauge_new("kubevirt_taint_key_shared",
                                     "1 when KubeVirt's evacuation controller acts on vmdrain's "
                                     "drain taint key (read from the KubeVirt CR).",
                                     0, NULL);
}

static int enqueue_node(void *ud, const kube_obj_t *obj)
{
    drain__enqueue(ud, obj->name);
    return 0;
}

/* The KubeVirt CR in the cache, or NULL. */
static const kube_obj_t *kubevirt_obj(const drain_controller_t *c)
{
    char key[DRAIN_VMI_KEY_MAX];
    if (!c->kvs)
        return NULL;
    snprintf(key, sizeof(key), "%s/%s", c->kv_ns, c->kv_name);
    return informer_get(c->kvs, key);
}

/* The Warning Event on the KubeVirt CR: KubeVirt acts on vmdrain's taint. */
static void shared_taint_event(drain_controller_t *c)
{
    char msg[768];
    const kube_obj_t *kv = kubevirt_obj(c);
    if (!kv)
        return;
    snprintf(msg, sizeof(msg),
             "KubeVirt's nodeDrainTaintKey is %s, vmdrain's drain taint key: on that taint "
             "KubeVirt's evacuation controller migrates the node's LiveMigrate and "
             "LiveMigrateIfPossible VMIs itself, at its own pace; vmdrain leaves those to it and "
             "only tracks them. Set spec.configuration.migrations.nodeDrainTaintKey in the "
             "KubeVirt CR to another key (docs/kubevirt.md)",
             c->cfg.kubevirt_taint_key);
    drain__write_event(c, kv, "Warning", "DrainTaintShared", msg);
}

void drain__sources_lead(drain_controller_t *c)
{
    char key[DRAIN_VMI_KEY_MAX], err[512];
    drain_config_t next;
    const kube_obj_t *kv = kubevirt_obj(c);

    snprintf(key, sizeof(key), "%s/%s", c->cfg_ns, c->cfg_name);
    const kube_configmap_t *cm = kube_obj_as_configmap(c->cms ? informer_get(c->cms, key) : NULL);
    if (cm && drain_config_parse(kube_configmap_get(cm, "feature-gates"),
                                 kube_configmap_get(cm, "migrations"), &next, err, sizeof(err)) < 0)
        drain__write_event(c, &cm->obj, "Warning", "InvalidConfiguration", err);
    if (kv && drain_kubevirt_config(kube_obj_as_kubevirt(kv), &next, err, sizeof(err)) < 0)
        drain__write_event(c, kv, "Warning", "InvalidConfiguration", err);
    if (c->taint_shared)
        shared_taint_event(c);
}

/* Says once per change whether KubeVirt acts on vmdrain's taint too. */
static void check_shared_taint(drain_controller_t *c)
{
    bool shared = drain_kubevirt_shares_taint(&c->cfg);
    if (shared == c->taint_shared)
        return;
    c->taint_shared = shared;
    metrics_gauge_set(g_shared, shared ? 1 : 0, NULL);
    if (!shared) {
        if (c->cfg.kubevirt_seen)
            log_info("KubeVirt's evacuation controller acts on another taint key than vmdrain",
                     "kubevirt_taint_key", c->cfg.kubevirt_taint_key, "taint_key",
                     c->cfg.node_drain_taint_key);
        return;
    }
    log_warn("KubeVirt acts on vmdrain's drain taint too", "kubevirt", c->kv_name, "namespace",
             c->kv_ns, "taint_key", c->cfg.node_drain_taint_key);
    shared_taint_event(c); /* sent by the leader; a new leader sends it again */
}

/* Puts the merge of the two sources in force. */
static void apply(drain_controller_t *c, const char *why)
{
    char desc[768];

    drain_kubevirt_merge(c->kv_seen ? &c->kv_cfg : NULL, &c->cm_cfg, &c->cfg);
    drain_config_describe(&c->cfg, desc, sizeof(desc));
    log_info("configuration applied", "source", why, "config", desc);
    if (!c->cfg.live_migration_enabled)
        log_warn("the LiveMigration feature gate is not in feature-gates: nothing will be "
                 "migrated",
                 "configmap", c->cfg_name);
    planner_set_limits(c->planner, c->cfg.parallel_migrations_per_cluster,
                       c->cfg.parallel_outbound_per_node);
    check_shared_taint(c);
    /* new limits or rules: every node is looked at again, and a raised
     * limit starts more migrations at the end of that batch */
    if (c->ready) {
        drain__write_policy(c);
        informer_foreach(c->nodes, enqueue_node, c);
    }
}

/* --- the ConfigMap ---------------------------------------------------------------------- */

static void config_changed(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    const kube_configmap_t *cm = kube_obj_as_configmap(obj);
    drain_config_t next;
    char err[512];

    if (drain_config_parse(kube_configmap_get(cm, "feature-gates"),
                           kube_configmap_get(cm, "migrations"), &next, err, sizeof(err)) < 0) {
        log_error("invalid configuration, keeping the last good one", "configmap", c->cfg_name,
                  "namespace", c->cfg_ns, "error", err);
        drain__write_event(c, obj, "Warning", "InvalidConfiguration", err);
        return;
    }
    c->cm_cfg = next;
    c->cfg_seen = true;
    apply(c, "configmap");
}

static void config_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    config_changed(ud, obj);
}

static void config_deleted(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    (void)obj;
    log_warn("configuration ConfigMap deleted; the last good configuration stays", "configmap",
             c->cfg_name, "namespace", c->cfg_ns);
}

/* --- the KubeVirt CR -------------------------------------------------------------------- */

static void kubevirt_changed(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    const kube_kubevirt_t *kv = kube_obj_as_kubevirt(obj);
    drain_config_t next;
    char err[512];

    if (drain_kubevirt_config(kv, &next, err, sizeof(err)) < 0) {
        log_error("invalid KubeVirt configuration, keeping the last good one", "kubevirt",
                  c->kv_name, "namespace", c->kv_ns, "error", err);
        drain__write_event(c, obj, "Warning", "InvalidConfiguration", err);
        return;
    }
    if (!kv->phase[0])
        log_warn("the KubeVirt CR has no status.phase: KubeVirt's own components ignore its "
                 "configuration until virt-operator deploys it",
                 "kubevirt", c->kv_name, "namespace", c->kv_ns);
    c->kv_cfg = next;
    c->kv_seen = true;
    apply(c, "kubevirt");
}

static void kubevirt_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    kubevirt_changed(ud, obj);
}

static void kubevirt_deleted(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    (void)obj;
    log_warn("the KubeVirt CR was deleted; its last configuration stays", "kubevirt", c->kv_name,
             "namespace", c->kv_ns);
}

const informer_handlers_t drain__config_handlers = {.on_add = config_changed,
                                                    .on_update = config_updated,
                                                    .on_delete = config_deleted,
                                                    .on_synced = drain__on_synced};
const informer_handlers_t drain__kubevirt_handlers = {.on_add = kubevirt_changed,
                                                      .on_update = kubevirt_updated,
                                                      .on_delete = kubevirt_deleted,
                                                      .on_synced = drain__on_synced};

void drain__sources_synced(drain_controller_t *c)
{
    if (!c->cfg_seen && !c->kv_seen)
        log_warn("configuration ConfigMap not found: the LiveMigration feature gate counts as "
                 "off, nothing will be migrated",
                 "configmap", c->cfg_name, "namespace", c->cfg_ns);
    else if (!c->cfg_seen)
        log_info("configuration ConfigMap not found: the KubeVirt CR's configuration and "
                 "vmdrain's defaults apply",
                 "configmap", c->cfg_name, "namespace", c->cfg_ns);
    if (c->kvs && !c->kv_seen)
        log_warn("the KubeVirt CR was not found: vmdrain cannot tell which taint KubeVirt's "
                 "evacuation controller acts on",
                 "kubevirt", c->kv_name, "namespace", c->kv_ns);
}

int drain_controller_warning(const drain_controller_t *c, char *out, size_t n)
{
    if (!c->taint_shared)
        return 0;
    return snprintf(out, n,
                    "warning: KubeVirt %s/%s acts on vmdrain's drain taint %s too (its "
                    "nodeDrainTaintKey); see docs/kubevirt.md",
                    c->kv_ns, c->kv_name, c->cfg.node_drain_taint_key);
}
