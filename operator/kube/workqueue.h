/*
 * workqueue — keys to reconcile, processed on the event loop.
 *
 * The controller pattern's queue: a key added while it is already queued
 * is queued once; a key added while it is being processed is processed
 * again right after; keys can be added after a delay; and a per-key
 * exponential backoff (base × 2^failures, capped) paces retries of a key
 * whose reconcile failed. Keys are processed in the order they became
 * ready, from an ev_check watcher: a bounded batch after every poll of
 * the loop, so neither watch events nor reconciles can starve the other.
 *
 * May call: util/hmap, libev.
 */
#ifndef VMDRAIN_KUBE_WORKQUEUE_H
#define VMDRAIN_KUBE_WORKQUEUE_H

#include <ev.h>
#include <stddef.h>

typedef struct workqueue workqueue_t;

/* Called once per ready key; key is valid during the call only. */
typedef void (*workqueue_fn)(void *ud, const char *key);

/* Creates a queue that calls fn on loop. base_delay and max_delay (seconds)
 * shape workqueue_add_rate_limited(). Returns NULL when memory runs out.
 * The caller frees it with workqueue_free(). */
workqueue_t *workqueue_new(struct ev_loop *loop, workqueue_fn fn, void *ud, double base_delay,
                           double max_delay);

/* Stops the watchers and frees every key. Not from inside fn. */
void workqueue_free(workqueue_t *q);

/* Calls fn(ud) after each batch that handled at least one key (the
 * controller starts migrations there, once the batch's reconciles are in). */
void workqueue_on_batch(workqueue_t *q, void (*fn)(void *ud));

/* Makes key ready now. Returns 0 or -1 (memory). */
int workqueue_add(workqueue_t *q, const char *key);

/* Makes key ready after delay seconds; an earlier pending deadline of the
 * same key wins. Returns 0 or -1 (memory). */
int workqueue_add_after(workqueue_t *q, const char *key, double delay);

/* Records a failure of key and adds it after its backoff. Returns the delay
 * used, or -1 (memory). */
double workqueue_add_rate_limited(workqueue_t *q, const char *key);

/* Forgets the failures of key (its reconcile succeeded). */
void workqueue_forget(workqueue_t *q, const char *key);

/* Failures recorded for key since the last forget. */
int workqueue_failures(const workqueue_t *q, const char *key);

/* Keys ready now, not counting delayed ones. */
size_t workqueue_len(const workqueue_t *q);

/* Keys waiting for a delay. */
size_t workqueue_delayed(const workqueue_t *q);

#endif
