/*
 * drain/controller — vmdrain's engine: informers, the work queue, the
 * planner and the one writer, on one loop.
 *
 * Every change the watches deliver queues the node it concerns. A queued
 * node is reconciled (drain/reconcile.c) from the caches, its plan applied
 * by the writer (node patch, migration deletes, VMI marks and labels,
 * Events) and its candidates handed to the planner; after each batch of
 * reconciles the planner picks what may start now and the writer creates
 * those migrations. A migration that finishes frees its slot in the same
 * loop iteration that delivers the watch event. drain/engine.h has the
 * rooms and the data flow.
 *
 * May call: the rest of drain/, kube/informer, kube/workqueue, kube/writer,
 * kube/http, util/. Never web/: cmd/ wires the webhook to
 * drain_controller_evict().
 */
#ifndef VMDRAIN_DRAIN_CONTROLLER_H
#define VMDRAIN_DRAIN_CONTROLLER_H

#include "drain/eviction.h"
#include "kube/http.h"
#include "kube/informer.h"

#include <stdbool.h>

struct ev_loop;
typedef struct drain_controller drain_controller_t;

typedef struct drain_controller_opts {
    const char *config_ns; /* the ConfigMap with feature-gates and migrations */
    const char *config_name;
    double patch_interval; /* seconds between two patches of one node; <= 0: 1 */
    /* --kubevirt: the KubeVirt CR read as a second source (NULL name: none;
     * NULL namespace: "kubevirt") */
    const char *kubevirt_ns;
    const char *kubevirt_name;
    /* leader election: start as a replica that does not lead (until
     * drain_controller_set_leading()); false: lead from the start */
    bool follower;
    /* seconds a NodeDrain record of a finished drain is kept; <= 0: a day */
    double records_ttl;
    /* how the informers load the whole state (--initial-list) */
    informer_initial_t initial;
} drain_controller_opts_t;

/* Creates the controller; nothing happens before drain_controller_start().
 * Returns NULL when memory runs out. */
drain_controller_t *drain_controller_new(struct ev_loop *loop, kube_http_t *http,
                                         const drain_controller_opts_t *opts);

/* Starts the informers; reconciling begins once all have synced. */
void drain_controller_start(drain_controller_t *c);

/* True once every informer has synced (for /readyz). */
bool drain_controller_ready(const drain_controller_t *c);

/* Writes into out (n bytes) a warning for /readyz about the cluster's
 * configuration (KubeVirt acting on vmdrain's taint key) and returns its
 * length; 0 when there is none. */
int drain_controller_warning(const drain_controller_t *c, char *out, size_t n);

/* Leads (true) or not. A replica that does not lead keeps its caches and
 * answers evictions, writes only the marks of the evictions it answered,
 * and its transport refuses every other write (kube_http_fence()), those
 * in flight included. Taking the lead lifts the fence and reconciles every
 * node. */
void drain_controller_set_leading(drain_controller_t *c, bool leading);

bool drain_controller_leading(const drain_controller_t *c);

/* Stops reconciling and the watches; writes already sent may finish.
 * Returns the number of writes still outstanding. */
int drain_controller_stop(drain_controller_t *c);

/* Writes still outstanding. */
int drain_controller_pending_writes(const drain_controller_t *c);

void drain_controller_free(drain_controller_t *c);

/* Called once with the answer to an eviction request. */
typedef void (*drain_evict_cb)(void *ud, const drain_evict_result_t *res);

/* Decides an eviction request from the caches (a live GET when the pod is
 * not cached yet) and, unless it is a dry run, records what the decision
 * asks for (the VMI is marked and queued by its node's reconcile). Calls
 * cb exactly once: before returning, when the GET ends, or at
 * drain_controller_stop() with a not-ready answer. Logs the decision and
 * counts it in evictions_total. */
void drain_controller_evict(drain_controller_t *c, const drain_evict_req_t *rq,
                            const char *username, drain_evict_cb cb, void *ud);

#endif
