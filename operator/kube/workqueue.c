/*
 * workqueue — see workqueue.h: deduplicated keys, delays, per-key back-off.
 *
 * Owns workqueue_t and its keys. Calls libev and util/hmap; called by the
 * controller. Keys are handled from an ev_check watcher, a bounded batch
 * per loop iteration.
 */
#include "kube/workqueue.h"
#include "util/hmap.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Keys handled per loop iteration before the loop polls again. */
#define WORKQUEUE_BATCH 64

typedef struct wq_item {
    char *key;
    bool queued;     /* in the ready list */
    bool processing; /* fn is running for it */
    bool dirty;      /* added while processing: queue again after */
    int failures;
    double due;      /* deadline while in the heap */
    size_t heap_idx; /* SIZE_MAX when not delayed */
    struct wq_item *next;
} wq_item_t;

struct workqueue {
    struct ev_loop *loop;
    workqueue_fn fn;
    void *ud;
    double base_delay, max_delay;
    hmap_t items; /* key -> wq_item_t */
    wq_item_t *head, *tail;
    size_t ready;
    wq_item_t **heap; /* min-heap on due */
    size_t nheap, heap_cap;
    void (*on_batch)(void *ud); /* after each batch that handled a key */
    ev_check check;             /* handles a batch after every poll */
    ev_prepare prepare;         /* keeps the poll from blocking while keys are ready */
    ev_idle spin;               /* active while keys are ready: the poll does not block */
    ev_timer timer;
};

static void on_check(struct ev_loop *loop, ev_check *w, int revents);
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents);
static void on_spin(struct ev_loop *loop, ev_idle *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

workqueue_t *workqueue_new(struct ev_loop *loop, workqueue_fn fn, void *ud, double base_delay,
                           double max_delay)
{
    workqueue_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->loop = loop;
    q->fn = fn;
    q->ud = ud;
    q->base_delay = base_delay;
    q->max_delay = max_delay;
    hmap_init(&q->items);
    ev_check_init(&q->check, on_check);
    ev_prepare_init(&q->prepare, on_prepare);
    ev_idle_init(&q->spin, on_spin);
    q->check.data = q->prepare.data = q->spin.data = q;
    ev_check_start(loop, &q->check);
    ev_prepare_start(loop, &q->prepare);
    /* they do not keep ev_run() going by themselves */
    ev_unref(loop);
    ev_unref(loop);
    ev_init(&q->timer, on_timer);
    q->timer.data = q;
    return q;
}

void workqueue_free(workqueue_t *q)
{
    if (!q)
        return;
    ev_ref(q->loop);
    ev_ref(q->loop);
    ev_check_stop(q->loop, &q->check);
    ev_prepare_stop(q->loop, &q->prepare);
    ev_idle_stop(q->loop, &q->spin);
    ev_timer_stop(q->loop, &q->timer);
    for (hmap_entry_t *e = hmap_first(&q->items); e; e = hmap_next(&q->items, e)) {
        wq_item_t *it = e->value;
        free(it->key);
        free(it);
    }
    hmap_free(&q->items);
    free(q->heap);
    free(q);
}

/* The item of key, created idle when absent. */
static wq_item_t *item_get(workqueue_t *q, const char *key)
{
    wq_item_t *it = hmap_get(&q->items, key);
    if (it)
        return it;
    it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->key = strdup(key);
    it->heap_idx = SIZE_MAX;
    if (!it->key || hmap_put(&q->items, key, it, NULL) < 0) {
        free(it->key);
        free(it);
        return NULL;
    }
    return it;
}

/* Drops an item that nothing refers to any more. */
static void item_maybe_drop(workqueue_t *q, wq_item_t *it)
{
    if (it->queued || it->processing || it->heap_idx != SIZE_MAX || it->failures > 0)
        return;
    hmap_del(&q->items, it->key);
    free(it->key);
    free(it);
}

static void enqueue(workqueue_t *q, wq_item_t *it)
{
    if (it->queued)
        return;
    if (it->processing) {
        it->dirty = true;
        return;
    }
    it->queued = true;
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->ready++;
    ev_idle_start(q->loop, &q->spin);
}

int workqueue_add(workqueue_t *q, const char *key)
{
    wq_item_t *it = item_get(q, key);
    if (!it)
        return -1;
    enqueue(q, it);
    return 0;
}

/* --- the delay heap --------------------------------------------------------- */

static void heap_swap(workqueue_t *q, size_t a, size_t b)
{
    wq_item_t *t = q->heap[a];
    q->heap[a] = q->heap[b];
    q->heap[b] = t;
    q->heap[a]->heap_idx = a;
    q->heap[b]->heap_idx = b;
}

static void heap_up(workqueue_t *q, size_t i)
{
    while (i > 0 && q->heap[(i - 1) / 2]->due > q->heap[i]->due) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(workqueue_t *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->nheap && q->heap[l]->due < q->heap[m]->due)
            m = l;
        if (r < q->nheap && q->heap[r]->due < q->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(q, i, m);
        i = m;
    }
}

static wq_item_t *heap_pop(workqueue_t *q)
{
    wq_item_t *top = q->heap[0];
    heap_swap(q, 0, q->nheap - 1);
    q->nheap--;
    top->heap_idx = SIZE_MAX;
    if (q->nheap)
        heap_down(q, 0);
    return top;
}

/* Points the timer at the earliest deadline, or stops it. */
static void arm_timer(workqueue_t *q)
{
    ev_timer_stop(q->loop, &q->timer);
    if (q->nheap == 0)
        return;
    double after = q->heap[0]->due - ev_now(q->loop);
    ev_timer_set(&q->timer, after > 0 ? after : 0, 0);
    ev_timer_start(q->loop, &q->timer);
}

int workqueue_add_after(workqueue_t *q, const char *key, double delay)
{
    if (delay <= 0)
        return workqueue_add(q, key);
    wq_item_t *it = item_get(q, key);
    if (!it)
        return -1;
    double due = ev_now(q->loop) + delay;
    if (it->heap_idx != SIZE_MAX) {
        if (it->due <= due)
            return 0;
        it->due = due;
        heap_up(q, it->heap_idx);
    } else {
        if (q->nheap == q->heap_cap) {
            size_t cap = q->heap_cap ? q->heap_cap * 2 : 16;
            wq_item_t **h = realloc(q->heap, cap * sizeof(*h));
            if (!h) {
                item_maybe_drop(q, it);
                return -1;
            }
            q->heap = h;
            q->heap_cap = cap;
        }
        it->due = due;
        it->heap_idx = q->nheap;
        q->heap[q->nheap++] = it;
        heap_up(q, it->heap_idx);
    }
    arm_timer(q);
    return 0;
}

double workqueue_add_rate_limited(workqueue_t *q, const char *key)
{
    wq_item_t *it = item_get(q, key);
    if (!it)
        return -1;
    double delay = q->base_delay * ldexp(1.0, it->failures < 60 ? it->failures : 60);
    if (delay > q->max_delay)
        delay = q->max_delay;
    it->failures++;
    if (workqueue_add_after(q, key, delay) < 0)
        return -1;
    return delay;
}

void workqueue_forget(workqueue_t *q, const char *key)
{
    wq_item_t *it = hmap_get(&q->items, key);
    if (!it)
        return;
    it->failures = 0;
    item_maybe_drop(q, it);
}

int workqueue_failures(const workqueue_t *q, const char *key)
{
    wq_item_t *it = hmap_get(&q->items, key);
    return it ? it->failures : 0;
}

size_t workqueue_len(const workqueue_t *q)
{
    return q->ready;
}

size_t workqueue_delayed(const workqueue_t *q)
{
    return q->nheap;
}

/* --- watchers ----------------------------------------------------------------- */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    workqueue_t *q = w->data;
    (void)revents;
    while (q->nheap && q->heap[0]->due <= ev_now(loop))
        enqueue(q, heap_pop(q));
    arm_timer(q);
}

/* After every poll, whatever else the iteration delivered: a bounded batch
 * of ready keys, so sustained watch traffic can never starve reconciles
 * (an ev_idle watcher runs only when nothing else is pending). */
static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    workqueue_t *q = w->data;
    int n = 0;
    (void)loop;
    (void)revents;
    for (; n < WORKQUEUE_BATCH && q->head; n++) {
        wq_item_t *it = q->head;
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        q->ready--;
        it->queued = false;
        it->processing = true;
        q->fn(q->ud, it->key);
        it->processing = false;
        if (it->dirty) {
            it->dirty = false;
            enqueue(q, it);
        } else {
            item_maybe_drop(q, it);
        }
    }
    if (n > 0 && q->on_batch)
        q->on_batch(q->ud);
}

/* Before the poll: while keys are ready the spin watcher stays active, so
 * the poll returns at once and the next check handles them. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    workqueue_t *q = w->data;
    (void)revents;
    if (!q->head)
        ev_idle_stop(loop, &q->spin);
}

static void on_spin(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

void workqueue_on_batch(workqueue_t *q, void (*fn)(void *ud))
{
    q->on_batch = fn;
}
