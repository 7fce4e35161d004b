/*
 * drain/planner — pacing: which evacuation migration starts next.
 *
 * One global queue of candidates (VMIs to move off a node, whether the node
 * is drained by its taint or the VMI by an eviction request), the limits on
 * what may be in flight (in the whole cluster, and leaving any one node),
 * and the order in which free slots are handed out: first to a node, then
 * to one of that node's candidates. Pure logic: no I/O, no clock (the
 * caller passes `now`, in seconds), no Kubernetes types, so the node
 * reconciler and bench/pacing_bench.c drive the same code.
 *
 * What is in flight out of a node is the sum of two numbers:
 *   observed  migrations the caller sees in flight in its cache, whoever
 *             created them (planner_set_in_flight; the caller recounts from
 *             its cache whenever it likes, level-triggered);
 *   started   candidates this planner selected and the caller has not yet
 *             reported as visible or ended: planner_select() marks them,
 *             planner_remove() or planner_finished() ends them.
 * The caller's side of the contract, so that nothing is counted twice or
 * not at all:
 *   - once the migration of a started candidate shows in the cache, count
 *     it in the node's observed number and planner_remove() the candidate,
 *     in the same pass;
 *   - when the migration of a started candidate ended before the cache
 *     showed it in flight (or its creation failed), planner_finished() it,
 *     then planner_add() it again with a not-before time to retry;
 *   - planner_add() of a started candidate (a cache that lags behind the
 *     creation) updates it and keeps it started: it is never selected twice.
 * A finished migration frees its slot at once: planner_finished() or a
 * lower planner_set_in_flight(), then planner_select() in the same call
 * chain, with no timer in between.
 *
 * Selection, one free slot at a time (see docs/pacing.md for the figures
 * behind each default):
 *   1. A node is eligible when it has a candidate whose not-before time has
 *      come and fewer than the per-node limit in flight; nothing is selected
 *      while the cluster limit is reached.
 *   2. Aging: a node passed over `aging` times since it was last served
 *      (counting only slots it could have taken) joins a queue of aged
 *      nodes, which are served first, in the order they joined. So a node
 *      is passed over at most aging + (nodes - 1) times before it is served.
 *   3. Otherwise the node order picks: PLANNER_NODES_ROUND_ROBIN (the node
 *      served least recently, then the earliest drain start) or
 *      PLANNER_NODES_MOST_WORK (the node with the most guest memory still
 *      queued; ties as round robin).
 *   4. The node's candidates are taken in the planner's order: arrival
 *      (FIFO), largest memory first, or smallest first; ties by arrival.
 * Lowering a limit never cancels anything: it stops new selections until
 * what is in flight drops below it. Each selected slot costs a walk over the
 * nodes and their queues up to a ready candidate, and over the chosen
 * node's queue: linear, and small for the VMIs of a drain.
 *
 * Ownership: the planner is the caller's (planner_new/planner_free). It
 * copies every string it is given and owns the copies; candidates passed
 * to planner_add stay the caller's. planner_choice_t arrays are the
 * caller's, filled with copies.
 */
#ifndef VMDRAIN_DRAIN_PLANNER_H
#define VMDRAIN_DRAIN_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest VMI key: namespace (63) + '/' + name (253). */
#define PLANNER_KEY_MAX 317
/* Longest VMI uid accepted (Kubernetes writes 36 characters). */
#define PLANNER_UID_MAX 64
/* Longest node name (a DNS subdomain). */
#define PLANNER_NODE_MAX 253
/* Default aging bound, in slots; see docs/pacing.md. */
#define PLANNER_DEFAULT_AGING 8

/* Order of one node's candidates. */
typedef enum planner_order {
    PLANNER_ORDER_FIFO,           /* arrival order (KubeVirt: creation order) */
    PLANNER_ORDER_LARGEST_FIRST,  /* most guest memory first */
    PLANNER_ORDER_SMALLEST_FIRST, /* least guest memory first */
} planner_order_t;

/* Order between nodes that compete for a cluster slot. */
typedef enum planner_node_order {
    PLANNER_NODES_ROUND_ROBIN, /* least recently served, then earliest drain */
    PLANNER_NODES_MOST_WORK,   /* most queued guest memory, then as above */
} planner_node_order_t;

/* The defaults, chosen by bench/pacing_bench (docs/pacing.md). */
#define PLANNER_DEFAULT_ORDER      PLANNER_ORDER_LARGEST_FIRST
#define PLANNER_DEFAULT_NODE_ORDER PLANNER_NODES_MOST_WORK

/* What planner_add takes; every pointer is borrowed for the call only. */
typedef struct planner_candidate {
    const char *key;    /* VMI "namespace/name": the identity in the queue */
    const char *uid;    /* VMI uid; a different uid under the same key is a new VMI */
    const char *node;   /* source node */
    int64_t memory;     /* guest memory, bytes (0 when unknown) */
    uint64_t seq;       /* arrival order: lower comes first under FIFO */
    double not_before;  /* not selected before this time (retry backoff) */
    double drain_start; /* when the evacuation of the source node began */
} planner_candidate_t;

/* One selected candidate, copied into the caller's memory. */
typedef struct planner_choice {
    char key[PLANNER_KEY_MAX + 1];
    char uid[PLANNER_UID_MAX + 1];
    char node[PLANNER_NODE_MAX + 1];
    int64_t memory;
    uint64_t seq;
} planner_choice_t;

/* Counters, for tests, logs and metrics. */
typedef struct planner_stats {
    size_t queued;      /* candidates waiting, ready or not */
    size_t started;     /* selected, not yet removed or finished */
    size_t nodes;       /* nodes the planner tracks */
    int in_flight;      /* cluster-wide: observed + started */
    uint64_t selected;  /* selections since planner_new */
    uint64_t aged;      /* of which aging chose the node */
    uint64_t max_wait;  /* longest wait (slots) a node had when served */
    int cluster_limit;  /* as set */
    int per_node_limit; /* as set */
} planner_stats_t;

/* Return values of planner_add. */
#define PLANNER_QUEUED  0 /* queued (new) or updated in the queue */
#define PLANNER_STARTED 1 /* already selected: updated, stays started */

typedef struct planner planner_t;

/* Creates a planner with the default limits (5 in the cluster, 2 per node),
 * the given order within a node, the most-work node order and the default
 * aging. Returns NULL when memory runs out; the caller frees it with
 * planner_free(). */
planner_t *planner_new(planner_order_t order);

/* Frees the planner and everything it copied. NULL is fine. */
void planner_free(planner_t *p);

/* Sets the limits, effective at the next selection. 0 pauses selection.
 * Returns 0, or -1 (and changes nothing) when one is negative. */
int planner_set_limits(planner_t *p, int cluster, int per_node);

void planner_set_order(planner_t *p, planner_order_t order);
void planner_set_node_order(planner_t *p, planner_node_order_t order);

/* Sets the aging bound (slots; at least 1, smaller values are raised). */
void planner_set_aging(planner_t *p, unsigned slots);

/* Queues c, or updates the candidate of the same key (node, memory, seq,
 * not-before; a new uid replaces it with a fresh queued candidate).
 * Returns PLANNER_QUEUED, PLANNER_STARTED, or -1 when a field is empty or
 * too long, memory is negative, or memory runs out (nothing changed). */
int planner_add(planner_t *p, const planner_candidate_t *c);

/* Forgets key, queued or started (a started one stops counting as in
 * flight: the caller now counts it as observed, or it is gone). Returns
 * whether key was known. */
bool planner_remove(planner_t *p, const char *key);

/* The migration started for key has ended: frees its slot and forgets the
 * candidate. Returns false (and does nothing) unless key was started. */
bool planner_finished(planner_t *p, const char *key);

/* Sets the observed number of migrations in flight out of node, all
 * creators, not counting candidates still started here. Returns 0, or -1
 * on a negative count, a bad name or no memory. */
int planner_set_in_flight(planner_t *p, const char *node, int count);

/* Sets every observed count to 0: the start of a full recount. */
void planner_reset_in_flight(planner_t *p);

/* In flight (observed + started) out of node, or in the cluster when node
 * is NULL. */
int planner_in_flight(const planner_t *p, const char *node);

/* Selects up to max candidates to start now, marks them started and copies
 * them to out, in the order chosen. Returns how many (0 when nothing can
 * start: no ready candidate, or the limits are reached). */
int planner_select(planner_t *p, double now, planner_choice_t *out, int max);

/* The earliest not-before time after now among queued candidates (for a
 * timer), or -1 when none waits for its time. */
double planner_next_ready(const planner_t *p, double now);

void planner_stats(const planner_t *p, planner_stats_t *out);

/* "fifo", "largest-first", "smallest-first" / "round-robin", "most-work". */
const char *planner_order_name(planner_order_t order);
const char *planner_node_order_name(planner_node_order_t order);

#endif
