/*
 * cmd/plugin_plan — `kubectl vmdrain plan NODE...`: reads what a drain
 * depends on (the nodes, the VMIs, the migrations, the launcher pods,
 * vmdrain's ConfigMap and the KubeVirt CR), asks drain/dryrun what a drain
 * of the nodes would do, and prints it. It only reads: GETs, LISTs, and
 * one WATCH per informer that ends with the command.
 *
 * Calls kube/informer, kube/decode, drain/config, drain/kubevirt,
 * drain/dryrun; the rendering is plugin_plan_render.c's.
 */
#include "cmd/plugin.h"
#include "drain/dryrun.h"
#include "drain/kubevirt.h"
#include "kube/decode.h"
#include "kube/informer.h"
#include "kube/resources.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

enum { INF_NODES, INF_VMIS, INF_MIGS, INF_PODS, N_INF };

typedef struct plan {
    pl_ctx_t *c;
    informer_t *inf[N_INF];
    int synced;
    int exit_code;
} plan_t;

static void on_synced(void *ud)
{
    plan_t *p = ud;
    if (++p->synced == N_INF)
        ev_break(p->c->loop, EVBREAK_ALL);
}

static void on_error(void *ud, const char *msg, long status)
{
    plan_t *p = ud;
    if (status == 404)
        p->exit_code = pl_fail("%s (are KubeVirt's CRDs installed?)", msg);
    else
        p->exit_code = pl_fail("%s", msg);
    ev_break(p->c->loop, EVBREAK_ALL);
}

/* Lists the four kinds into informers and waits until all are read. */
static int read_caches(plan_t *p)
{
    static const informer_handlers_t h = {.on_synced = on_synced, .on_error = on_error};
    const kube_kind_t kinds[N_INF] = {KUBE_KIND_NODE, KUBE_KIND_VMI, KUBE_KIND_MIGRATION,
                                      KUBE_KIND_POD};
    for (int i = 0; i < N_INF; i++) {
        informer_opts_t o = {.resource = kube_resource_of_kind(kinds[i]),
                             .label_selector =
                                 kinds[i] == KUBE_KIND_POD ? "kubevirt.io=virt-launcher" : NULL};
        if (!(p->inf[i] = informer_new(p->c->http, p->c->loop, &o, &h, p)))
            return pl_fail("out of memory");
    }
    for (int i = 0; i < N_INF; i++)
        informer_start(p->inf[i]);
    ev_run(p->c->loop, 0);
    return p->synced == N_INF ? 0 : p->exit_code ? p->exit_code : pl_fail("interrupted");
}

/* GETs NAMESPACE/NAME of kind into *out; *out stays NULL when it does not
 * exist. Returns 0 or the exit code. */
static int get_ref(pl_ctx_t *c, kube_kind_t kind, const char *ref, kube_obj_t **out)
{
    char ns[256], err[512];
    const char *slash = strchr(ref, '/');
    buf_t path;
    pl_resp_t r;
    int rc;

    *out = NULL;
    snprintf(ns, sizeof(ns), "%.*s", (int)(slash - ref), ref);
    buf_init(&path, 4096);
    rc = kube_resource_path(kube_resource_of_kind(kind), ns, slash + 1, NULL, &path) < 0
             ? pl_fail("%s: the path is too long", ref)
         : pl_call(c, "GET", path.data, NULL, &r) < 0 ? pl_fail("%s", r.error)
                                                      : 0;
    buf_free(&path);
    if (rc)
        return rc;
    if (r.status == 200 &&
        !(*out = kube_decode_one(kind, r.body ? r.body : "", r.body_len, err, sizeof(err))))
        rc = pl_fail("%s: %s", ref, err);
    else if (r.status != 200 && r.status != 404)
        rc = pl_fail("%s: %s", ref, r.message[0] ? r.message : r.error);
    pl_resp_free(&r);
    return rc;
}

/* The configuration in force, as vmdrain merges it: the ConfigMap's keys
 * over the KubeVirt CR's over the defaults. */
static int read_config(pl_ctx_t *c, pl_plan_src_t *src, drain_config_t *cfg)
{
    kube_obj_t *cm = NULL, *kv = NULL;
    drain_config_t from_cm, from_kv;
    char err[512];
    int rc = get_ref(c, KUBE_KIND_CONFIGMAP, src->config, &cm);

    if (rc == 0)
        rc = get_ref(c, KUBE_KIND_KUBEVIRT, src->kubevirt, &kv);
    /* the defaults may be absent; what the user named must be there */
    if (rc == 0 && !cm && c->args.config)
        rc = pl_fail("ConfigMap %s not found", src->config);
    if (rc == 0 && !kv && c->args.kubevirt)
        rc = pl_fail("KubeVirt %s not found", src->kubevirt);
    drain_config_defaults(&from_cm);
    if (rc == 0 && cm) {
        const kube_configmap_t *m = kube_obj_as_configmap(cm);
        if (drain_config_parse(kube_configmap_get(m, "feature-gates"),
                               kube_configmap_get(m, "migrations"), &from_cm, err, sizeof(err)) < 0)
            rc = pl_fail("ConfigMap %s: %s", src->config, err);
    }
    if (rc == 0 && kv &&
        drain_kubevirt_config(kube_obj_as_kubevirt(kv), &from_kv, err, sizeof(err)) < 0)
        rc = pl_fail("KubeVirt %s: %s", src->kubevirt, err);
    src->config_found = cm != NULL;
    src->kubevirt_found = kv != NULL;
    if (rc == 0)
        drain_kubevirt_merge(kv ? &from_kv : NULL, &from_cm, cfg);
    kube_obj_free(cm);
    kube_obj_free(kv);
    return rc;
}

typedef struct objs {
    const void **items;
    size_t n;
} objs_t;

static int collect(void *ud, const kube_obj_t *obj)
{
    objs_t *o = ud;
    o->items[o->n++] = obj;
    return 0;
}

/* Every object of informer i, as an array (owned by the caller). */
static int all_of(const plan_t *p, int i, objs_t *out)
{
    out->n = 0;
    out->items = calloc(informer_len(p->inf[i]) + 1, sizeof(*out->items));
    if (!out->items)
        return -1;
    informer_foreach(p->inf[i], collect, out);
    return 0;
}

/* The named nodes (each once), or the exit code of one that is missing. */
static int planned_nodes(const plan_t *p, const kube_node_t **out, size_t *n)
{
    *n = 0;
    for (int i = 0; i < p->c->args.n_names; i++) {
        const char *name = p->c->args.names[i];
        const kube_node_t *node = kube_obj_as_node(informer_get(p->inf[INF_NODES], name));
        if (!node)
            return pl_fail("node \"%s\" not found", name);
        bool dup = false;
        for (size_t k = 0; k < *n; k++)
            dup = dup || out[k] == node;
        if (!dup)
            out[(*n)++] = node;
    }
    return 0;
}

static int print_plan(pl_ctx_t *c, const drain_dryrun_t *d, const drain_config_t *cfg,
                      const pl_plan_src_t *src)
{
    buf_t json, text;
    char err[512];
    int rc = 0;

    buf_init(&json, 64u << 20);
    buf_init(&text, 64u << 20);
    if (!c->args.json && !c->args.yaml)
        rc = pl_plan_render_text(d, cfg, src, &text);
    else if (pl_plan_render_json(d, cfg, src, &json) < 0)
        rc = -1;
    else if (c->args.yaml)
        rc = pl_json_to_yaml(json.data, json.len, &text, err, sizeof(err));
    if (rc < 0)
        rc = pl_fail("the plan does not fit in memory");
    else
        fwrite(c->args.json ? json.data : text.data, 1, c->args.json ? json.len : text.len, c->out);
    buf_free(&json);
    buf_free(&text);
    if (rc)
        return rc;
    return d->complete ? PLUGIN_EXIT_OK : PLUGIN_EXIT_INCOMPLETE;
}

/* Plans with the caches read. */
static int plan_with(plan_t *p, const drain_config_t *cfg, const pl_plan_src_t *src)
{
    objs_t nodes, vmis, migs, pods;
    const kube_node_t **plan = calloc((size_t)p->c->args.n_names + 1, sizeof(*plan));
    drain_dryrun_t d;
    size_t n_plan = 0;
    int rc = plan ? 0 : pl_fail("out of memory");

    nodes.items = vmis.items = migs.items = pods.items = NULL;
    if (rc == 0)
        rc = planned_nodes(p, plan, &n_plan);
    if (rc == 0 && (all_of(p, INF_NODES, &nodes) < 0 || all_of(p, INF_VMIS, &vmis) < 0 ||
                    all_of(p, INF_MIGS, &migs) < 0 || all_of(p, INF_PODS, &pods) < 0))
        rc = pl_fail("out of memory");
    drain_dryrun_in_t in = {
        .cfg = cfg,
        .now = {(int64_t)ev_time(), 0},
        .plan = plan,
        .n_plan = n_plan,
        .nodes = (const kube_node_t *const *)nodes.items,
        .n_nodes = nodes.n,
        .vmis = (const kube_vmi_t *const *)vmis.items,
        .n_vmis = vmis.n,
        .migs = (const kube_migration_t *const *)migs.items,
        .n_migs = migs.n,
        .pods = (const kube_pod_t *const *)pods.items,
        .n_pods = pods.n,
    };
    if (rc == 0 && drain_dryrun(&in, &d) < 0)
        rc = pl_fail("out of memory");
    else if (rc == 0) {
        rc = print_plan(p->c, &d, cfg, src);
        drain_dryrun_free(&d);
    }
    free(plan);
    free(nodes.items);
    free(vmis.items);
    free(migs.items);
    free(pods.items);
    return rc;
}

int pl_cmd_plan(pl_ctx_t *c)
{
    plan_t p = {.c = c};
    pl_plan_src_t src = {.config = c->args.config ? c->args.config : PL_DEFAULT_CONFIG,
                         .kubevirt = c->args.kubevirt ? c->args.kubevirt : PL_DEFAULT_KUBEVIRT};
    drain_config_t cfg;
    int rc = read_config(c, &src, &cfg);

    if (rc == 0)
        rc = read_caches(&p);
    if (rc == 0)
        rc = plan_with(&p, &cfg, &src);
    for (int i = 0; i < N_INF; i++)
        informer_free(p.inf[i]);
    return rc;
}
