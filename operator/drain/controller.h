/*
 * controller — vmdrain's engine: informers, the work queue, the planner and
 * the writers, wired on one loop.
 *
 * Every change the watches deliver queues the node it concerns. A queued
 * node is reconciled (drain/reconcile.c) from the caches, its plan applied
 * (node patch, migration deletes, Events) and its candidates handed to the
 * planner; then the planner picks what may start now and the controller
 * creates those migrations. A migration that finishes frees its slot in the
 * same loop iteration that delivers the watch event.
 */
#ifndef VMDRAIN_DRAIN_CONTROLLER_H
#define VMDRAIN_DRAIN_CONTROLLER_H

#include "kube/http.h"

#include <stdbool.h>

struct ev_loop;
typedef struct drain_controller drain_controller_t;

typedef struct drain_controller_opts {
    const char *config_ns; /* the ConfigMap with feature-gates and migrations */
    const char *config_name;
    double patch_interval; /* seconds between two patches of one node; <= 0: 1 */
} drain_controller_opts_t;

/* Creates the controller; nothing happens before drain_controller_start().
 * Returns NULL when memory runs out. */
drain_controller_t *drain_controller_new(struct ev_loop *loop, kube_http_t *http,
                                         const drain_controller_opts_t *opts);

/* Starts the informers; reconciling begins once all have synced. */
void drain_controller_start(drain_controller_t *c);

/* True once every informer has synced (for /readyz). */
bool drain_controller_ready(const drain_controller_t *c);

/* Stops reconciling and the watches; writes already sent may finish.
 * Returns the number of writes still outstanding. */
int drain_controller_stop(drain_controller_t *c);

/* Writes still outstanding. */
int drain_controller_pending_writes(const drain_controller_t *c);

void drain_controller_free(drain_controller_t *c);

struct web_request;
/* The admission webhook's /validate-eviction handler (a web_handler_fn):
 * decides from the caches (a live GET when the pod is not cached yet),
 * marks and queues VMIs to evacuate, answers the AdmissionReview. */
void drain_controller_eviction(struct web_request *req, void *ud);

#endif
