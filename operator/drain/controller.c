/*
 * drain/controller — the engine's lifecycle: informers and their indexes,
 * the watch handlers, start and stop (the configuration's handlers are in
 * drain/sources.c).
 *
 * Watch handlers write nothing: they queue the nodes a change concerns,
 * and remember the end of a migration of ours for its node's reconcile to
 * report. Everything else happens from the work queue (drain/sync.c,
 * drain/dispatch.c), and every write goes through drain/writer.c.
 *
 * Calls kube/informer, kube/workqueue, drain/config, drain/planner and
 * the controller's other rooms through drain/engine.h; called by cmd/run.c.
 */
#include "drain/engine.h"
#include "drain/record.h"
#include "util/log.h"
#include "util/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- shared helpers ------------------------------------------------------------------- */

node_rt_t *drain__rt_get(drain_controller_t *c, const char *node)
{
    node_rt_t *r = hmap_get(&c->rt, node);
    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    hmap_init(&r->cands);
    hmap_init(&r->ended);
    r->last_patch = -1e9;
    if (hmap_put(&c->rt, node, r, NULL) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

void drain__rt_free(node_rt_t *r)
{
    hmap_free(&r->cands);
    hmap_free(&r->ended);
    free(r->nd_status);
    free(r);
}

void drain__enqueue(drain_controller_t *c, const char *node)
{
    if (node && *node && !c->stopped)
        workqueue_add(c->queue, node);
}

const char *drain__key(const kube_obj_t *o, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", o->ns, o->name);
    return buf;
}

bool drain__is_ours(const kube_obj_t *o)
{
    const char *v = kube_obj_label(o, DRAIN_LABEL_MANAGED_BY);
    return v && strcmp(v, "vmdrain") == 0;
}

/* --- indexes -------------------------------------------------------------------------------- */

static const char *vmi_node_index(const kube_obj_t *o)
{
    const kube_vmi_t *v = kube_obj_as_vmi(o);
    return v && v->node_name[0] ? v->node_name : NULL;
}

static const char *pod_node_index(const kube_obj_t *o)
{
    const kube_pod_t *p = kube_obj_as_pod(o);
    return p && p->node_name[0] ? p->node_name : NULL;
}

static const char *mig_vmi_index(const kube_obj_t *o)
{
    const kube_migration_t *m = kube_obj_as_migration(o);
    return m && m->vmi_name[0] ? m->vmi_name : NULL;
}

/* Only the migrations still in flight, so that the recount after each batch
 * walks them and not the finished ones KubeVirt keeps (several per VMI). */
static const char *mig_in_flight_index(const kube_obj_t *o)
{
    const kube_migration_t *m = kube_obj_as_migration(o);
    return m && drain_migration_in_flight(m) ? DRAIN_INDEX_IN_FLIGHT : NULL;
}

/* --- watch handlers: record and enqueue, never write ------------------------------------- */

static void node_changed(void *ud, const kube_obj_t *obj)
{
    drain__enqueue(ud, obj->name);
}

static void node_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    drain__enqueue(ud, obj->name);
}

static void vmi_changed(void *ud, const kube_obj_t *obj)
{
    drain__enqueue(ud, kube_obj_as_vmi(obj)->node_name);
}

static void vmi_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    drain__enqueue(ud, kube_obj_as_vmi(old)->node_name);
    drain__enqueue(ud, kube_obj_as_vmi(obj)->node_name);
}

/* Queues the nodes a migration concerns: its source (ours or an
 * evacuation's) and where its VMI is now. */
static void mig_touch(drain_controller_t *c, const kube_migration_t *m)
{
    char key[DRAIN_VMI_KEY_MAX];
    snprintf(key, sizeof(key), "%s/%s", m->obj.ns, m->vmi_name);
    const kube_vmi_t *v = kube_obj_as_vmi(informer_get(c->vmis, key));
    drain__enqueue(c, drain_mig_source(&m->obj));
    if (v)
        drain__enqueue(c, v->node_name);
}

/* Remembers that a migration of ours reached its end unreported, for its
 * node's reconcile to report once (how: DRAIN_ENDED_WATCHED or _FOUND). A
 * failed insert is logged: the end is found again at the next start. */
static void note_ended(drain_controller_t *c, const kube_obj_t *obj, void *how)
{
    const char *node = kube_obj_label(obj, DRAIN_LABEL_NODE);
    char key[DRAIN_VMI_KEY_MAX];
    node_rt_t *r;

    if (!node || !drain_mig_unreported(kube_obj_as_migration(obj)))
        return;
    drain__key(obj, key, sizeof(key));
    r = drain__rt_get(c, node);
    if (!r || hmap_put(&r->ended, key, how, NULL) < 0)
        log_error("out of memory: the end of a migration goes unreported", "migration", key);
}

/* A migration listed (at the start, after a relist) that ended unreported
 * ended while vmdrain was not there to see it. */
static void mig_added(void *ud, const kube_obj_t *obj)
{
    note_ended(ud, obj, DRAIN_ENDED_FOUND);
    mig_touch(ud, kube_obj_as_migration(obj));
}

static void mig_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    const kube_migration_t *m = kube_obj_as_migration(obj);

    if (m->phase != kube_obj_as_migration(old)->phase) {
        note_ended(ud, obj, DRAIN_ENDED_WATCHED);
        /* when the watch delivered an end (the reaction time starts here) */
        if (!drain_migration_in_flight(m)) {
            char key[DRAIN_VMI_KEY_MAX];
            log_debug("migration ended", "migration", drain__key(obj, key, sizeof(key)), "phase",
                      m->phase == KUBE_MIGRATION_SUCCEEDED ? "Succeeded" : "Failed");
        }
    }
    mig_touch(ud, m);
}

static void mig_deleted(void *ud, const kube_obj_t *obj)
{
    drain_controller_t *c = ud;
    hmap_del(&c->deleting, obj->uid);
    mig_touch(c, kube_obj_as_migration(obj));
}

/* A NodeDrain concerns the node it names (and the one it is named after,
 * should they differ). */
static void nd_changed(void *ud, const kube_obj_t *obj)
{
    drain__enqueue(ud, kube_obj_as_nodedrain(obj)->node_name);
    drain__enqueue(ud, obj->name);
}

static void nd_updated(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    nd_changed(ud, obj);
}

/* Without the CRD nothing syncs (vmdrain is not ready): say how to fix it. */
static void nd_error(void *ud, const char *msg, long http_status)
{
    drain_controller_t *c = ud;
    static bool said;
    if (http_status == 404 && !said && !c->stopped) {
        said = true;
        log_error("the NodeDrain CustomResourceDefinition is not installed: vmdrain stays not "
                  "ready until it is (kubectl apply -f crds/nodedrains.vmdrain.io.yaml; the chart "
                  "installs it)",
                  "error", msg);
    }
}

static int enqueue_node(void *ud, const kube_obj_t *obj)
{
    drain__enqueue(ud, obj->name);
    return 0;
}
void drain__on_synced(void *ud)
{
    drain_controller_t *c = ud;
    if (++c->synced < c->n_informers)
        return;
    c->ready = true;
    drain__sources_synced(c);
    log_info("caches synced, reconciling", "nodes", "all");
    drain__write_policy(c);
    informer_foreach(c->nodes, enqueue_node, c);
}

#define FENCE_TEXT "this replica does not lead"

void drain_controller_set_leading(drain_controller_t *c, bool leading)
{
    if (c->leading == leading || (leading && c->stopped))
        return;
    c->leading = leading;
    kube_http_fence(c->http, leading ? NULL : FENCE_TEXT);
    if (!leading) {
        log_info("writes stopped: this replica does not lead; caches and the webhook stay on");
        return; /* the gauges' collector leaves out the leader's own series now */
    }
    log_info("leading: reconciling every node", "ready", c->ready ? "yes" : "not yet");
    drain__sources_lead(c);
    if (c->ready) {
        drain__write_policy(c);
        informer_foreach(c->nodes, enqueue_node, c);
    }
}

bool drain_controller_leading(const drain_controller_t *c)
{
    return c->leading;
}

/* --- lifecycle ------------------------------------------------------------------------ */

static void on_ready_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    drain__dispatch(w->data);
}

static informer_t *make_informer(drain_controller_t *c, kube_kind_t kind, const char *ns,
                                 const char *field_selector, const char *label_selector,
                                 const informer_handlers_t *h)
{
    informer_opts_t o = {.resource = kube_resource_of_kind(kind),
                         .ns = ns,
                         .field_selector = field_selector,
                         .label_selector = label_selector,
                         .initial = c->initial};
    return informer_new(c->http, c->loop, &o, h, c);
}

/* The informers (six, seven with the KubeVirt CR) and their indexes.
 * Returns 0 or -1 (memory). */
static int make_informers(drain_controller_t *c, const drain_controller_opts_t *opts)
{
    static const informer_handlers_t hn = {.on_add = node_changed,
                                           .on_update = node_updated,
                                           .on_delete = node_changed,
                                           .on_synced = drain__on_synced};
    static const informer_handlers_t hv = {.on_add = vmi_changed,
                                           .on_update = vmi_updated,
                                           .on_delete = vmi_changed,
                                           .on_synced = drain__on_synced};
    static const informer_handlers_t hm = {.on_add = mig_added,
                                           .on_update = mig_updated,
                                           .on_delete = mig_deleted,
                                           .on_synced = drain__on_synced};
    static const informer_handlers_t hp = {.on_synced = drain__on_synced};
    static const informer_handlers_t hd = {.on_add = nd_changed,
                                           .on_update = nd_updated,
                                           .on_delete = nd_changed,
                                           .on_synced = drain__on_synced,
                                           .on_error = nd_error};
    char selector[320];

    snprintf(selector, sizeof(selector), "metadata.name=%s", opts->config_name);
    c->nodes = make_informer(c, KUBE_KIND_NODE, NULL, NULL, NULL, &hn);
    c->vmis = make_informer(c, KUBE_KIND_VMI, NULL, NULL, NULL, &hv);
    c->migs = make_informer(c, KUBE_KIND_MIGRATION, NULL, NULL, NULL, &hm);
    c->cms = make_informer(c, KUBE_KIND_CONFIGMAP, opts->config_ns, selector, NULL,
                           &drain__config_handlers);
    c->pods = make_informer(c, KUBE_KIND_POD, NULL, NULL, "kubevirt.io=virt-launcher", &hp);
    c->nds = make_informer(c, KUBE_KIND_NODEDRAIN, NULL, NULL, NULL, &hd);
    c->n_informers = 6;
    if (c->kv_name) {
        snprintf(selector, sizeof(selector), "metadata.name=%s", c->kv_name);
        c->kvs = make_informer(c, KUBE_KIND_KUBEVIRT, c->kv_ns, selector, NULL,
                               &drain__kubevirt_handlers);
        if (!c->kvs)
            return -1;
        c->n_informers = 7;
    }
    if (!c->nodes || !c->vmis || !c->migs || !c->cms || !c->pods || !c->nds ||
        informer_add_index(c->vmis, "node", vmi_node_index) < 0 ||
        informer_add_index(c->migs, "vmi", mig_vmi_index) < 0 ||
        informer_add_index(c->migs, "node", drain_mig_source) < 0 ||
        informer_add_index(c->migs, DRAIN_INDEX_IN_FLIGHT, mig_in_flight_index) < 0 ||
        informer_add_index(c->pods, "node", pod_node_index) < 0)
        return -1;
    return 0;
}

drain_controller_t *drain_controller_new(struct ev_loop *loop, kube_http_t *http,
                                         const drain_controller_opts_t *opts)
{
    drain_controller_t *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    drain__writer_metrics();
    drain__sources_metrics();
    c->loop = loop;
    c->http = http;
    c->cfg_ns = strdup(opts->config_ns);
    c->cfg_name = strdup(opts->config_name);
    c->patch_interval = opts->patch_interval > 0 ? opts->patch_interval : 1.0;
    c->leading = !opts->follower;
    c->records_ttl = opts->records_ttl > 0 ? opts->records_ttl : 86400;
    c->initial = opts->initial;
    if (opts->follower)
        kube_http_fence(http, FENCE_TEXT);
    drain_config_defaults(&c->cfg);
    c->cm_cfg = c->cfg;
    if (opts->kubevirt_name && *opts->kubevirt_name) {
        c->kv_ns = strdup(opts->kubevirt_ns && *opts->kubevirt_ns ? opts->kubevirt_ns : "kubevirt");
        c->kv_name = strdup(opts->kubevirt_name);
        if (!c->kv_ns || !c->kv_name) {
            drain_controller_free(c);
            return NULL;
        }
    }
    hmap_init(&c->rt);
    hmap_init(&c->cands);
    hmap_init(&c->deleting);
    hmap_init(&c->gone);
    hmap_init(&c->vmi_meta);
    hmap_init(&c->requests);
    hmap_init(&c->lookups);
    ev_init(&c->ready_timer, on_ready_timer);
    c->ready_timer.data = c;
    c->queue = workqueue_new(loop, drain__sync, c, 0.5, 60);
    c->planner = planner_new(PLANNER_DEFAULT_ORDER);
    if (c->queue)
        workqueue_on_batch(c->queue, drain__on_batch);
    if (!c->cfg_ns || !c->cfg_name || !c->queue || !c->planner || make_informers(c, opts) < 0 ||
        metrics_add_collector(drain__collect_gauges, c) < 0) {
        drain_controller_free(c);
        return NULL;
    }
    return c;
}

void drain_controller_start(drain_controller_t *c)
{
    informer_start(c->cms);
    informer_start(c->nodes);
    informer_start(c->vmis);
    informer_start(c->migs);
    informer_start(c->pods);
    informer_start(c->nds);
    if (c->kvs)
        informer_start(c->kvs);
}

bool drain_controller_ready(const drain_controller_t *c)
{
    return c->ready && !c->stopped;
}

int drain_controller_pending_writes(const drain_controller_t *c)
{
    return c->writes;
}

int drain_controller_stop(drain_controller_t *c)
{
    if (!c->stopped) {
        c->stopped = true;
        ev_timer_stop(c->loop, &c->ready_timer);
        drain__evict_cancel_all(c);
        informer_free(c->nodes);
        informer_free(c->vmis);
        informer_free(c->migs);
        informer_free(c->cms);
        informer_free(c->pods);
        informer_free(c->kvs);
        informer_free(c->nds);
        c->nodes = c->vmis = c->migs = c->cms = c->pods = c->kvs = c->nds = NULL;
    }
    return c->writes;
}

/* Frees a map whose values are plain allocations. */
static void free_values(hmap_t *m)
{
    for (hmap_entry_t *e = hmap_first(m); e; e = hmap_next(m, e))
        free(e->value);
    hmap_free(m);
}

void drain_controller_free(drain_controller_t *c)
{
    if (!c)
        return;
    metrics_remove_collector(drain__collect_gauges, c);
    drain_controller_stop(c);
    workqueue_free(c->queue);
    planner_free(c->planner);
    for (hmap_entry_t *e = hmap_first(&c->rt); e; e = hmap_next(&c->rt, e))
        drain__rt_free(e->value);
    hmap_free(&c->rt);
    free_values(&c->cands);
    free_values(&c->requests);
    hmap_free(&c->deleting);
    hmap_free(&c->gone);
    hmap_free(&c->vmi_meta);
    hmap_free(&c->lookups);
    free(c->policy_body);
    free(c->cfg_ns);
    free(c->cfg_name);
    free(c->kv_ns);
    free(c->kv_name);
    free(c);
}
