/*
 * drain/planner — see planner.h: the pacing queue. Pure (no I/O, no
 * clock, no Kubernetes types); calls util/hmap; called by drain/sync.c,
 * drain/dispatch.c and the pacing benchmark.
 */
#include "drain/planner.h"
#include "util/hmap.h"

#include <stdlib.h>
#include <string.h>

/* Sums of guest memory: wide enough that no number of int64 sizes
 * overflows them (two 7Ei VMIs already overflow an int64). */
__extension__ typedef __int128 pl_sum_t;

typedef struct pl_node pl_node_t;

/* A candidate: queued in its node's list, or started (in no list). */
typedef struct pl_entry {
    char *key; /* owned; also the key of p->entries */
    char *uid; /* owned */
    pl_node_t *node;
    int64_t memory;
    uint64_t seq;
    double not_before;
    bool started;
    struct pl_entry *prev, *next; /* node's queue, while queued */
} pl_entry_t;

/* A source node: its queue and what is in flight out of it. */
struct pl_node {
    char *name; /* owned; also the key of p->nodes */
    double drain_start;
    int observed;           /* planner_set_in_flight */
    int started;            /* entries started here */
    size_t queued;          /* entries in the queue */
    pl_sum_t queued_memory; /* their guest memory: a sum that cannot overflow */
    uint64_t last_served;   /* p->selected when last served; 0: never */
    uint64_t passed;        /* slots given elsewhere while eligible, since served */
    uint64_t aged_at;       /* place in the aging queue (p->age_clock); 0: not aged */
    pl_entry_t *head, *tail;
    struct pl_node *prev, *next; /* p's node list */
};

struct planner {
    planner_order_t order;
    planner_node_order_t node_order;
    uint64_t aging;
    int cluster_limit, per_node_limit;
    hmap_t entries; /* key -> pl_entry_t */
    hmap_t nodes;   /* name -> pl_node_t */
    pl_node_t *first, *last;
    int observed_total, started_total;
    size_t queued_total;
    uint64_t age_clock;
    uint64_t selected, aged, max_wait;
};

planner_t *planner_new(planner_order_t order)
{
    planner_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->order = order;
    p->node_order = PLANNER_DEFAULT_NODE_ORDER;
    p->aging = PLANNER_DEFAULT_AGING;
    p->cluster_limit = 5;
    p->per_node_limit = 2;
    hmap_init(&p->entries);
    hmap_init(&p->nodes);
    return p;
}

void planner_free(planner_t *p)
{
    if (!p)
        return;
    for (hmap_entry_t *it = hmap_first(&p->entries); it; it = hmap_next(&p->entries, it)) {
        pl_entry_t *e = it->value;
        free(e->key);
        free(e->uid);
        free(e);
    }
    for (pl_node_t *n = p->first, *next; n; n = next) {
        next = n->next;
        free(n->name);
        free(n);
    }
    hmap_free(&p->entries);
    hmap_free(&p->nodes);
    free(p);
}

int planner_set_limits(planner_t *p, int cluster, int per_node)
{
    if (cluster < 0 || per_node < 0)
        return -1;
    p->cluster_limit = cluster;
    p->per_node_limit = per_node;
    return 0;
}

void planner_set_order(planner_t *p, planner_order_t order)
{
    p->order = order;
}

void planner_set_node_order(planner_t *p, planner_node_order_t order)
{
    p->node_order = order;
}

void planner_set_aging(planner_t *p, unsigned slots)
{
    p->aging = slots > 0 ? slots : 1;
}

/* --- nodes ----------------------------------------------------------------- */

static bool name_ok(const char *s, size_t max)
{
    return s && *s && strnlen(s, max + 1) <= max;
}

/* The node called name, created (empty, with drain start 0) when absent
 * and create is set. Returns NULL when absent or memory runs out. */
static pl_node_t *node_get(planner_t *p, const char *name, bool create)
{
    pl_node_t *n = hmap_get(&p->nodes, name);
    if (n || !create)
        return n;
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->name = strdup(name);
    if (!n->name || hmap_put(&p->nodes, name, n, NULL) < 0) {
        free(n->name);
        free(n);
        return NULL;
    }
    n->prev = p->last;
    if (p->last)
        p->last->next = n;
    else
        p->first = n;
    p->last = n;
    return n;
}

/* Frees a node that holds nothing any more: no candidate, nothing in
 * flight. Its round-robin history goes with it. */
static void node_maybe_free(planner_t *p, pl_node_t *n)
{
    if (n->queued || n->started || n->observed)
        return;
    hmap_del(&p->nodes, n->name);
    if (n->prev)
        n->prev->next = n->next;
    else
        p->first = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        p->last = n->prev;
    free(n->name);
    free(n);
}

static int node_in_flight(const pl_node_t *n)
{
    return n->observed + n->started;
}

/* --- entries ----------------------------------------------------------------- */

/* Links e into node n, queued or started as e says. */
static void entry_attach(planner_t *p, pl_entry_t *e, pl_node_t *n)
{
    e->node = n;
    if (e->started) {
        n->started++;
        p->started_total++;
        return;
    }
    e->next = NULL;
    e->prev = n->tail;
    if (n->tail)
        n->tail->next = e;
    else
        n->head = e;
    n->tail = e;
    n->queued++;
    n->queued_memory += e->memory;
    p->queued_total++;
}

/* Unlinks e from its node; the node stays even when it became empty. */
static void entry_detach(planner_t *p, pl_entry_t *e)
{
    pl_node_t *n = e->node;
    if (e->started) {
        n->started--;
        p->started_total--;
        return;
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        n->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        n->tail = e->prev;
    e->prev = e->next = NULL;
    n->queued--;
    n->queued_memory -= e->memory;
    p->queued_total--;
}

/* Detaches and frees e, and its node when that became empty. */
static void entry_drop(planner_t *p, pl_entry_t *e)
{
    pl_node_t *n = e->node;
    entry_detach(p, e);
    hmap_del(&p->entries, e->key);
    free(e->key);
    free(e->uid);
    free(e);
    node_maybe_free(p, n);
}

/* A new queued entry for c, stored under its key. Returns NULL when memory
 * runs out (nothing stored). */
static pl_entry_t *entry_new(planner_t *p, const planner_candidate_t *c)
{
    pl_entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->key = strdup(c->key);
    e->uid = strdup(c->uid);
    if (!e->key || !e->uid || hmap_put(&p->entries, c->key, e, NULL) < 0) {
        free(e->key);
        free(e->uid);
        free(e);
        return NULL;
    }
    return e;
}

static bool candidate_ok(const planner_candidate_t *c)
{
    return c && name_ok(c->key, PLANNER_KEY_MAX) && c->uid &&
           strnlen(c->uid, PLANNER_UID_MAX + 1) <= PLANNER_UID_MAX &&
           name_ok(c->node, PLANNER_NODE_MAX) && c->memory >= 0;
}

/* The node's drain start: the candidate's when the node held nothing yet,
 * else the earliest seen (eviction requests may trickle in after the first
 * one started the evacuation). */
static void node_note_start(pl_node_t *n, double drain_start)
{
    if ((n->queued == 0 && n->started == 0) || drain_start < n->drain_start)
        n->drain_start = drain_start;
}

int planner_add(planner_t *p, const planner_candidate_t *c)
{
    if (!candidate_ok(c))
        return -1;
    pl_entry_t *e = hmap_get(&p->entries, c->key);
    if (e && strcmp(e->uid, c->uid) != 0) {
        entry_drop(p, e);
        e = NULL;
    }
    pl_node_t *n = node_get(p, c->node, true);
    if (!n)
        return -1;
    if (!e) {
        e = entry_new(p, c);
        if (!e) {
            node_maybe_free(p, n);
            return -1;
        }
    } else {
        pl_node_t *old = e->node;
        entry_detach(p, e);
        if (old != n)
            node_maybe_free(p, old);
    }
    node_note_start(n, c->drain_start);
    e->memory = c->memory;
    e->seq = c->seq;
    e->not_before = c->not_before;
    entry_attach(p, e, n);
    return e->started ? PLANNER_STARTED : PLANNER_QUEUED;
}

bool planner_remove(planner_t *p, const char *key)
{
    pl_entry_t *e = key ? hmap_get(&p->entries, key) : NULL;
    if (!e)
        return false;
    entry_drop(p, e);
    return true;
}

bool planner_finished(planner_t *p, const char *key)
{
    pl_entry_t *e = key ? hmap_get(&p->entries, key) : NULL;
    if (!e || !e->started)
        return false;
    entry_drop(p, e);
    return true;
}

/* --- in flight ---------------------------------------------------------------- */

int planner_set_in_flight(planner_t *p, const char *node, int count)
{
    if (count < 0 || !name_ok(node, PLANNER_NODE_MAX))
        return -1;
    pl_node_t *n = node_get(p, node, count > 0);
    if (!n)
        return count > 0 ? -1 : 0;
    p->observed_total += count - n->observed;
    n->observed = count;
    node_maybe_free(p, n);
    return 0;
}

void planner_reset_in_flight(planner_t *p)
{
    for (pl_node_t *n = p->first, *next; n; n = next) {
        next = n->next;
        n->observed = 0;
        node_maybe_free(p, n);
    }
    p->observed_total = 0;
}

int planner_in_flight(const planner_t *p, const char *node)
{
    if (!node)
        return p->observed_total + p->started_total;
    const pl_node_t *n = hmap_get(&p->nodes, node);
    return n ? node_in_flight(n) : 0;
}

/* --- selection ------------------------------------------------------------------ */

static bool ready(const pl_entry_t *e, double now)
{
    return e->not_before <= now;
}

/* Whether n can take a slot now: a ready candidate and room under the
 * per-node limit. */
static bool node_eligible(const planner_t *p, const pl_node_t *n, double now)
{
    if (node_in_flight(n) >= p->per_node_limit)
        return false;
    for (const pl_entry_t *e = n->head; e; e = e->next)
        if (ready(e, now))
            return true;
    return false;
}

/* Round robin: whether a comes before b — served less recently, then
 * drained earlier, then by name, so that the order is total. */
static bool rr_before(const pl_node_t *a, const pl_node_t *b)
{
    if (a->last_served != b->last_served)
        return a->last_served < b->last_served;
    if (a->drain_start != b->drain_start)
        return a->drain_start < b->drain_start;
    return strcmp(a->name, b->name) < 0;
}

/* Whether a should get the slot before b under the node order. */
static bool node_before(const planner_t *p, const pl_node_t *a, const pl_node_t *b)
{
    if (p->node_order == PLANNER_NODES_MOST_WORK && a->queued_memory != b->queued_memory)
        return a->queued_memory > b->queued_memory;
    return rr_before(a, b);
}

/* Picks the node for the next slot, or NULL when none is eligible. An aged
 * node wins over the node order, the first aged first: aged nodes form a
 * queue that a node joins behind the others when it has been passed over
 * `aging` times, which bounds its wait by aging + (nodes - 1). */
static pl_node_t *pick_node(planner_t *p, double now)
{
    pl_node_t *best = NULL, *oldest = NULL;
    for (pl_node_t *n = p->first; n; n = n->next) {
        if (!node_eligible(p, n, now))
            continue;
        if (n->aged_at && (!oldest || n->aged_at < oldest->aged_at))
            oldest = n;
        if (!best || node_before(p, n, best))
            best = n;
    }
    if (oldest) {
        if (oldest != best)
            p->aged++;
        best = oldest;
    }
    return best;
}

/* Aging bookkeeping after chosen got a slot: every other node that could
 * have taken it was passed over once more. */
static void note_passed(planner_t *p, pl_node_t *chosen, double now)
{
    for (pl_node_t *n = p->first; n; n = n->next) {
        if (n == chosen || !node_eligible(p, n, now))
            continue;
        if (++n->passed >= p->aging && !n->aged_at)
            n->aged_at = ++p->age_clock;
    }
    if (chosen->passed > p->max_wait)
        p->max_wait = chosen->passed;
    chosen->passed = 0;
    chosen->aged_at = 0;
    chosen->last_served = p->selected;
}

/* Whether candidate a comes before b within a node. */
static bool entry_before(planner_order_t order, const pl_entry_t *a, const pl_entry_t *b)
{
    if (order == PLANNER_ORDER_LARGEST_FIRST && a->memory != b->memory)
        return a->memory > b->memory;
    if (order == PLANNER_ORDER_SMALLEST_FIRST && a->memory != b->memory)
        return a->memory < b->memory;
    if (a->seq != b->seq)
        return a->seq < b->seq;
    return strcmp(a->key, b->key) < 0;
}

/* The first ready candidate of n in the planner's order, or NULL. */
static pl_entry_t *pick_entry(const planner_t *p, const pl_node_t *n, double now)
{
    pl_entry_t *best = NULL;
    for (pl_entry_t *e = n->head; e; e = e->next)
        if (ready(e, now) && (!best || entry_before(p->order, e, best)))
            best = e;
    return best;
}

static void copy_choice(planner_choice_t *out, const pl_entry_t *e)
{
    /* Lengths were checked by planner_add. */
    strcpy(out->key, e->key);
    strcpy(out->uid, e->uid);
    strcpy(out->node, e->node->name);
    out->memory = e->memory;
    out->seq = e->seq;
}

int planner_select(planner_t *p, double now, planner_choice_t *out, int max)
{
    int n = 0;
    while (n < max && planner_in_flight(p, NULL) < p->cluster_limit) {
        pl_node_t *node = pick_node(p, now);
        if (!node)
            break;
        pl_entry_t *e = pick_entry(p, node, now);
        p->selected++;
        note_passed(p, node, now);
        entry_detach(p, e);
        e->started = true;
        entry_attach(p, e, node);
        copy_choice(&out[n++], e);
    }
    return n;
}

double planner_next_ready(const planner_t *p, double now)
{
    double next = -1;
    for (const pl_node_t *n = p->first; n; n = n->next)
        for (const pl_entry_t *e = n->head; e; e = e->next)
            if (e->not_before > now && (next < 0 || e->not_before < next))
                next = e->not_before;
    return next;
}

void planner_stats(const planner_t *p, planner_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->queued = p->queued_total;
    out->started = (size_t)p->started_total;
    out->nodes = p->nodes.len;
    out->in_flight = planner_in_flight(p, NULL);
    out->selected = p->selected;
    out->aged = p->aged;
    out->max_wait = p->max_wait;
    out->cluster_limit = p->cluster_limit;
    out->per_node_limit = p->per_node_limit;
}

const char *planner_order_name(planner_order_t order)
{
    switch (order) {
    case PLANNER_ORDER_FIFO:
        return "fifo";
    case PLANNER_ORDER_LARGEST_FIRST:
        return "largest-first";
    case PLANNER_ORDER_SMALLEST_FIRST:
        return "smallest-first";
    }
    return "unknown";
}

const char *planner_node_order_name(planner_node_order_t order)
{
    switch (order) {
    case PLANNER_NODES_ROUND_ROBIN:
        return "round-robin";
    case PLANNER_NODES_MOST_WORK:
        return "most-work";
    }
    return "unknown";
}
