/*
 * drain/writer_record — the one writer's NodeDrain part: what a node's plan
 * asks of its NodeDrain (drain/record.h), sent.
 *
 * At most one NodeDrain write per node is in flight; when it ends the node
 * is reconciled again, so a create is followed by the status, a finalizer
 * by the status, and so on, each decided afresh from the caches. Status
 * writes go through the status subresource and are coalesced like the
 * node patch: at most one per node per patch interval, and none when the
 * status is the one last written to that object.
 *
 * May call: drain/record, kube/writer, kube/resources, util/log (and the
 * engine's records through engine.h).
 */
#include "drain/engine.h"
#include "drain/record.h"
#include "kube/writer.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum nd_op { ND_CREATE, ND_DELETE, ND_FINALIZER, ND_STATUS } nd_op_t;

static const char *const op_names[] = {"create", "delete", "finalizer", "status"};

typedef struct nd_write {
    drain_controller_t *c;
    char node[DRAIN_NODE_KEY_MAX];
    nd_op_t op;
    char *status; /* the status sent, kept once written */
    char uid[64];
} nd_write_t;

static const kube_resource_t *nd_resource(void)
{
    return kube_resource_of_kind(KUBE_KIND_NODEDRAIN);
}

static nd_write_t *nd_write_new(drain_controller_t *c, const char *node, nd_op_t op)
{
    nd_write_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->c = c;
    w->op = op;
    snprintf(w->node, sizeof(w->node), "%s", node);
    c->writes++;
    return w;
}

static void nd_write_free(nd_write_t *w)
{
    w->c->writes--;
    free(w->status);
    free(w);
}

static void on_nd_written(void *ud, const kube_result_t *res)
{
    nd_write_t *w = ud;
    drain_controller_t *c = w->c;
    node_rt_t *r = hmap_get(&c->rt, w->node);

    if (res->cancelled) {
        nd_write_free(w);
        return;
    }
    if (r)
        r->nd_writing = false;
    /* AlreadyExists (a create raced), NotFound (gone already) and a failed
     * resourceVersion test of a finalizer patch (422: it changed) are what
     * the next reconcile sees anyway */
    bool changed =
        res->status == 409 || res->status == 404 || (res->status == 422 && w->op == ND_FINALIZER);
    if (res->error && !changed) {
        log_warn("NodeDrain write failed; reconciling again", "nodedrain", w->node, "write",
                 op_names[w->op], "error", res->error);
        if (!c->stopped)
            workqueue_add_rate_limited(c->queue, w->node);
    } else {
        if (res->error)
            log_debug("NodeDrain changed under the write", "nodedrain", w->node, "write",
                      op_names[w->op]);
        if (r && w->status && !res->error) {
            free(r->nd_status);
            r->nd_status = w->status;
            w->status = NULL;
            snprintf(r->nd_uid, sizeof(r->nd_uid), "%s", w->uid);
        }
        drain__enqueue(c, w->node);
    }
    nd_write_free(w);
}

/* Sends one write; the body is the caller's. Returns 0, or -1 when nothing
 * was sent (the node is reconciled again later). */
static int send(drain_controller_t *c, node_rt_t *r, const kube_nodedrain_t *nd, const char *node,
                nd_op_t op, const char *body, char *status)
{
    nd_write_t *w = nd_write_new(c, node, op);
    kube_req_t *req = NULL;

    if (w && body) {
        w->status = status;
        status = NULL;
        if (nd)
            snprintf(w->uid, sizeof(w->uid), "%s", nd->obj.uid);
        if (op == ND_CREATE)
            req = kube_create(c->http, nd_resource(), NULL, body, on_nd_written, w);
        else if (op == ND_DELETE)
            req = kube_delete(c->http, nd_resource(), NULL, nd->obj.name, nd->obj.uid,
                              on_nd_written, w);
        else
            req = kube_patch(
                c->http, nd_resource(), NULL, nd->obj.name, op == ND_STATUS ? "status" : NULL,
                op == ND_STATUS ? KUBE_MERGE_PATCH : KUBE_JSON_PATCH, body, on_nd_written, w);
    }
    free(status);
    if (!req) {
        if (w)
            nd_write_free(w);
        workqueue_add_rate_limited(c->queue, node);
        return -1;
    }
    if (r)
        r->nd_writing = true;
    return 0;
}

/* The status, unless it is what was last written to this object or the
 * last status write is too recent. */
static void write_status(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                         const drain_plan_t *p)
{
    const kube_nodedrain_t *nd = v->nodedrain;
    const char *node = v->node->obj.name;
    char *body = NULL;
    double wait = r->last_nd_status + c->patch_interval - ev_now(c->loop);

    if (drain_record_status(v, p, &body) < 0) {
        log_error("out of memory: the NodeDrain status is written later", "nodedrain", node);
        workqueue_add_rate_limited(c->queue, node);
        return;
    }
    if (r->nd_status && strcmp(r->nd_status, body) == 0 && strcmp(r->nd_uid, nd->obj.uid) == 0) {
        free(body);
        return;
    }
    if (wait > 0) {
        workqueue_add_after(c->queue, node, wait);
        free(body);
        return;
    }
    char *copy = strdup(body);
    if (copy && send(c, r, nd, node, ND_STATUS, body, copy) == 0)
        r->last_nd_status = ev_now(c->loop);
    else if (!copy)
        workqueue_add_rate_limited(c->queue, node);
    free(body);
}

void drain__write_record(drain_controller_t *c, node_rt_t *r, const drain_view_t *v,
                         const drain_plan_t *p)
{
    const kube_nodedrain_t *nd = v->nodedrain;
    const char *node = v->node->obj.name;
    drain_record_plan_t rp;
    char *body = NULL;

    if (c->stopped || !c->leading || r->nd_writing)
        return;
    drain_record_decide(v, p, &rp);
    if (rp.expire_in > 0)
        workqueue_add_after(c->queue, node, rp.expire_in + 0.05);
    if (rp.create) {
        log_info("recording the drain as a NodeDrain", "node", node, "trigger", p->trigger);
        if (drain_record_body(v, p, &body) >= 0)
            send(c, r, NULL, node, ND_CREATE, body, NULL);
    } else if (rp.expire) {
        char ttl[32];
        snprintf(ttl, sizeof(ttl), "%.0fs", v->records_ttl);
        log_info("deleting the NodeDrain record of a drain that ended", "nodedrain", nd->obj.name,
                 "retention", ttl);
        send(c, r, nd, node, ND_DELETE, "", NULL);
    } else if (rp.finalizer) {
        log_info(rp.finalizer > 0 ? "holding the NodeDrain until its drain has ended"
                                  : "the drain has ended: releasing the NodeDrain",
                 "nodedrain", nd->obj.name);
        if (drain_record_finalizer_patch(nd, rp.finalizer > 0, &body) >= 0)
            send(c, r, nd, node, ND_FINALIZER, body, NULL);
    } else if (rp.status) {
        write_status(c, r, v, p);
    }
    if ((rp.create || rp.finalizer) && !body) {
        log_error("out of memory: the NodeDrain is written later", "node", node);
        workqueue_add_rate_limited(c->queue, node);
    }
    free(body);
}

void drain__write_record_gone(drain_controller_t *c, const kube_nodedrain_t *nd)
{
    char *body = NULL;

    if (c->stopped || !c->leading)
        return;
    if (drain__is_ours(&nd->obj)) {
        if (nd->obj.deleted.sec)
            return;
        log_info("the node is gone: deleting its NodeDrain record", "nodedrain", nd->obj.name);
        send(c, NULL, nd, nd->obj.name, ND_DELETE, "", NULL);
    } else if (nd->finalizer_index >= 0 && drain_record_finalizer_patch(nd, false, &body) >= 0) {
        log_info("the node is gone: releasing its NodeDrain", "nodedrain", nd->obj.name);
        send(c, NULL, nd, nd->obj.name, ND_FINALIZER, body, NULL);
    }
    free(body);
}
