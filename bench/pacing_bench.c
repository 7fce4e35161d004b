/*
 * pacing_bench — the pacing planner on a virtual clock.
 *
 * A discrete-event simulation that drives the real planner
 * (operator/drain/planner.c): every VM of a scenario is queued at time 0, a
 * migration takes guest memory / bandwidth seconds, and at every completion
 * the simulation tells the planner and asks it for more at that same
 * instant. Attempts that fail (chosen by a hash of the random seed, the VM and the
 * attempt, so every policy sees the same failures) are retried after
 * retryBackoffSeconds × 2^(failures-1), up to maxMigrationAttempts.
 *
 * For each scenario and each policy (node order × order within a node) it
 * prints the makespan, the lower bound, the efficiency (bound / makespan;
 * also against the exact bound of small scenarios, see below), the highest
 * concurrency seen per node and in the cluster, and the makespan ratio
 * against the FIFO baseline (round robin between nodes by drain start,
 * arrival order within a node: the plain reading of the issue). It exits
 * non-zero when a limit was ever exceeded or a simulation did not finish:
 * those are correctness checks. No figure is timed on the host.
 *
 *   pacing_bench                 the scenarios, fixed seeds
 *   pacing_bench --seed S        the scenarios with seed S instead
 *   pacing_bench --seeds N       each failure-free scenario over N seeds:
 *                                worst and mean efficiency per policy
 *   pacing_bench --aging K       planner aging bound (default: the planner's)
 *   pacing_bench --limits C N    cluster and per-node limits (default 5 2)
 */
#include "drain/planner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1LL << 20)
#define GIB (1LL << 30)

#define MAX_NODES 16
#define MAX_VMS   1024

/* The configuration defaults. */
#define BANDWIDTH     (64 * MIB) /* bytes per second per migration */
#define RETRY_BACKOFF 20.0       /* seconds, doubled per failure */
#define MAX_ATTEMPTS  3
#define DEFAULT_SEED  1

typedef enum sizes { SIZES_MIXED, SIZES_SKEWED } sizes_t;

typedef struct scenario {
    const char *name;
    int nodes, vms_per_node;
    int first_node_vms; /* node-0's VMs when not vms_per_node (0) */
    sizes_t sizes;
    double fail_prob; /* per attempt */
    uint64_t seed;
} scenario_t;

typedef struct vm {
    char key[32], uid[16], node[16];
    int node_idx;
    int64_t memory;
    int attempts; /* started so far */
} vm_t;

typedef struct policy {
    planner_node_order_t nodes;
    planner_order_t order;
} policy_t;

typedef struct result {
    double makespan, bound, exact; /* exact: -1 when not computed */
    const char *bound_kind;
    int max_cluster, max_node;
    int retries, failed;
    uint64_t aged, max_wait; /* the planner's aging counters */
    bool violated;
} result_t;

/* A migration on the virtual clock. */
typedef struct run {
    int vm;
    double end;
    bool fails;
} run_t;

static int cluster_limit = 5, node_limit = 2;
static uint64_t seed_override; /* --seed: 0 keeps each scenario's own */
static unsigned aging;         /* 0: the planner's default */

static const scenario_t scenarios[] = {
    {"1 node x 20 VMs, mixed sizes", 1, 20, 0, SIZES_MIXED, 0, DEFAULT_SEED},
    {"3 nodes x 10 VMs, mixed sizes", 3, 10, 0, SIZES_MIXED, 0, DEFAULT_SEED},
    {"3 nodes, 20 + 5 + 5 VMs, mixed sizes", 3, 5, 20, SIZES_MIXED, 0, DEFAULT_SEED},
    {"10 nodes x 40 VMs, mixed sizes", 10, 40, 0, SIZES_MIXED, 0, DEFAULT_SEED},
    {"3 nodes x 20 VMs, skewed: 1x64Gi created last, others 1Gi", 3, 20, 0, SIZES_SKEWED, 0,
     DEFAULT_SEED},
    {"3 nodes x 10 VMs, mixed, 25% of attempts fail", 3, 10, 0, SIZES_MIXED, 0.25, DEFAULT_SEED},
    {"10 nodes x 40 VMs, mixed, 10% of attempts fail", 10, 40, 0, SIZES_MIXED, 0.10, DEFAULT_SEED},
};

static const policy_t policies[] = {
    {PLANNER_NODES_ROUND_ROBIN, PLANNER_ORDER_FIFO}, /* the baseline: first */
    {PLANNER_NODES_ROUND_ROBIN, PLANNER_ORDER_LARGEST_FIRST},
    {PLANNER_NODES_ROUND_ROBIN, PLANNER_ORDER_SMALLEST_FIRST},
    {PLANNER_NODES_MOST_WORK, PLANNER_ORDER_FIFO},
    {PLANNER_NODES_MOST_WORK, PLANNER_ORDER_LARGEST_FIRST},
    {PLANNER_NODES_MOST_WORK, PLANNER_ORDER_SMALLEST_FIRST},
};
#define NPOLICIES (sizeof(policies) / sizeof(policies[0]))

/* splitmix64: a deterministic stream from a seed. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A uniform number in [0, 1) from the given inputs. */
static double unit3(uint64_t a, uint64_t b, uint64_t c)
{
    return (double)(mix(mix(mix(a) ^ b) ^ c) >> 11) / 9007199254740992.0;
}

/* Typical guest sizes: 512Mi to 16Gi, the middle ones most common. */
static int64_t mixed_size(uint64_t seed, int i)
{
    static const int64_t size[] = {GIB / 2, GIB, 2 * GIB, 4 * GIB, 8 * GIB, 16 * GIB};
    static const int weight[] = {10, 25, 25, 20, 15, 5};
    int r = (int)(unit3(seed, (uint64_t)i, 0x5123) * 100);
    for (int k = 0; k < 6; k++) {
        if (r < weight[k])
            return size[k];
        r -= weight[k];
    }
    return size[5];
}

/* Fills vms for s; VMs are created (numbered) node by node. Returns the
 * number of VMs. */
static int make_vms(const scenario_t *s, vm_t *vms)
{
    int n = 0;
    for (int node = 0; node < s->nodes; node++) {
        int count = node == 0 && s->first_node_vms ? s->first_node_vms : s->vms_per_node;
        for (int j = 0; j < count; j++, n++) {
            vm_t *v = &vms[n];
            memset(v, 0, sizeof(*v));
            snprintf(v->key, sizeof(v->key), "default/vm-%d", n);
            snprintf(v->uid, sizeof(v->uid), "%d", n);
            snprintf(v->node, sizeof(v->node), "node-%d", node);
            v->node_idx = node;
            if (s->sizes == SIZES_MIXED)
                v->memory = mixed_size(s->seed, n);
            else
                v->memory = (node == 0 && j == count - 1) ? 64 * GIB : GIB;
        }
    }
    return n;
}

static double seconds(int64_t bytes)
{
    return (double)bytes / (double)BANDWIDTH;
}

/* Whether attempt a (1-based) of VM i fails, and if so after which share
 * of its transfer: a function of the random seed, the VM and the attempt only, so
 * every policy meets the same failures. Returns the share of the transfer
 * time the attempt takes: 1 when it succeeds. */
static double attempt_share(const scenario_t *s, int i, int a)
{
    if (unit3(s->seed, (uint64_t)i, (uint64_t)a) >= s->fail_prob)
        return 1;
    return 0.05 + 0.9 * unit3(s->seed ^ 0xfa11, (uint64_t)i, (uint64_t)a);
}

static double backoff(int failures)
{
    return RETRY_BACKOFF * ldexp(1.0, failures - 1);
}

/* The work of VM i over all its attempts (seconds of transfer), and the
 * length of its chain: attempts and backoffs one after the other. */
static void vm_work(const scenario_t *s, const vm_t *v, int i, double *work, double *chain)
{
    *work = *chain = 0;
    for (int a = 1; a <= MAX_ATTEMPTS; a++) {
        double share = attempt_share(s, i, a);
        *work += share * seconds(v->memory);
        *chain += share * seconds(v->memory);
        if (share >= 1 || a == MAX_ATTEMPTS)
            return;
        *chain += backoff(a);
    }
}

/* The lower bound: the largest of the busiest node's work at its outbound
 * limit, the cluster's work at the cluster limit, and the longest single
 * VM (its migration; with failures, its attempts and backoffs in a row).
 * Without failures the work is memory / bandwidth. */
static void lower_bound(const scenario_t *s, const vm_t *vms, int n, result_t *r)
{
    double per_node[MAX_NODES] = {0}, total = 0, longest = 0, busiest = 0;
    for (int i = 0; i < n; i++) {
        double work, chain;
        vm_work(s, &vms[i], i, &work, &chain);
        per_node[vms[i].node_idx] += work;
        total += work;
        longest = chain > longest ? chain : longest;
    }
    for (int k = 0; k < s->nodes; k++)
        busiest = per_node[k] > busiest ? per_node[k] : busiest;
    r->bound = busiest / node_limit;
    r->bound_kind = "node";
    if (total / cluster_limit > r->bound) {
        r->bound = total / cluster_limit;
        r->bound_kind = "cluster";
    }
    if (longest > r->bound) {
        r->bound = longest;
        r->bound_kind = s->fail_prob > 0 ? "longest VM" : "largest VM";
    }
}

/* --- the exact bound of small scenarios -------------------------------------
 *
 * The simple bound treats memory as divisible. For a small scenario the
 * bench also solves two relaxations exactly: all VMs on cluster-limit
 * identical lanes with no node constraint, and each node's VMs alone on
 * per-node-limit lanes (P||Cmax). The larger optimum is a bound that no
 * schedule, online or not, can beat; the gap between the two bounds is what
 * indivisible VMs cost. Solved as bin packing over VM sizes: the sizes take
 * few distinct values, so the state is a vector of counts per size. */

#define EXACT_MAX_VMS    64
#define EXACT_MAX_TYPES  8
#define EXACT_MAX_STATES (1L << 22)
#define EXACT_MAX_CONFS  (1L << 16)

typedef struct packer {
    int ntypes;
    int64_t size[EXACT_MAX_TYPES]; /* descending */
    int count[EXACT_MAX_TYPES];
    long radix[EXACT_MAX_TYPES]; /* state index = sum count * radix */
    long nstates, nconfs;
    int (*conf)[EXACT_MAX_TYPES]; /* what fits in one lane */
    unsigned char *memo;          /* lanes needed + 1; 0: unknown */
} packer_t;

/* Lists every non-empty combination of sizes that fits in cap. Returns -1
 * when there are too many. */
static int list_confs(packer_t *k, int t, int64_t room, int *cur)
{
    if (t == k->ntypes) {
        int any = 0;
        for (int i = 0; i < k->ntypes; i++)
            any |= cur[i];
        if (!any)
            return 0;
        if (k->nconfs == EXACT_MAX_CONFS)
            return -1;
        memcpy(k->conf[k->nconfs++], cur, sizeof(int) * EXACT_MAX_TYPES);
        return 0;
    }
    for (cur[t] = 0; cur[t] <= k->count[t] && cur[t] * k->size[t] <= room; cur[t]++)
        if (list_confs(k, t + 1, room - cur[t] * k->size[t], cur) < 0)
            return -1;
    cur[t] = 0;
    return 0;
}

/* The fewest lanes that hold the counts in c (at most 254). */
static int lanes_needed(packer_t *k, int *c, long idx)
{
    if (idx == 0)
        return 0;
    if (k->memo[idx])
        return k->memo[idx] - 1;
    int first = 0, best = 254;
    while (c[first] == 0)
        first++;
    for (long j = 0; j < k->nconfs && best > 1; j++) {
        const int *cf = k->conf[j];
        long sub = 0;
        bool fits = cf[first] > 0;
        for (int i = 0; i < k->ntypes && fits; i++) {
            fits = cf[i] <= c[i];
            sub += cf[i] * k->radix[i];
        }
        if (!fits)
            continue;
        for (int i = 0; i < k->ntypes; i++)
            c[i] -= cf[i];
        int r = 1 + lanes_needed(k, c, idx - sub);
        for (int i = 0; i < k->ntypes; i++)
            c[i] += cf[i];
        best = r < best ? r : best;
    }
    k->memo[idx] = (unsigned char)(best + 1);
    return best;
}

/* Whether the jobs fit in lanes lanes of capacity cap; -1 when too big to
 * decide here. */
static int fits_in(packer_t *k, int lanes, int64_t cap)
{
    int cur[EXACT_MAX_TYPES] = {0}, c[EXACT_MAX_TYPES];
    k->nconfs = 0;
    if (list_confs(k, 0, cap, cur) < 0)
        return -1;
    memset(k->memo, 0, (size_t)k->nstates);
    memcpy(c, k->count, sizeof(c));
    return lanes_needed(k, c, k->nstates - 1) <= lanes;
}

/* Groups the jobs by size. Returns -1 when they have too many sizes or
 * states. */
static int packer_init(packer_t *k, const int64_t *job, int n)
{
    memset(k, 0, sizeof(*k));
    for (int i = 0; i < n; i++) {
        int t = 0;
        while (t < k->ntypes && k->size[t] != job[i])
            t++;
        if (t == EXACT_MAX_TYPES)
            return -1;
        if (t == k->ntypes)
            k->size[k->ntypes++] = job[i];
        k->count[t]++;
    }
    for (int a = 0; a < k->ntypes; a++) {
        for (int b = a + 1; b < k->ntypes; b++) {
            if (k->size[b] <= k->size[a])
                continue;
            int64_t ts = k->size[a];
            int tc = k->count[a];
            k->size[a] = k->size[b];
            k->count[a] = k->count[b];
            k->size[b] = ts;
            k->count[b] = tc;
        }
    }
    k->nstates = 1;
    for (int t = 0; t < k->ntypes; t++) {
        k->radix[t] = k->nstates;
        k->nstates *= k->count[t] + 1;
        if (k->nstates > EXACT_MAX_STATES)
            return -1;
    }
    k->memo = malloc((size_t)k->nstates);
    k->conf = malloc(sizeof(*k->conf) * EXACT_MAX_CONFS);
    return k->memo && k->conf ? 0 : -1;
}

static int64_t gcd(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The optimum makespan (bytes) of jobs on lanes identical lanes, or -1 when
 * the instance is too large for this solver. A lane's load is a sum of
 * sizes, so only multiples of their greatest common divisor are tried. */
static int64_t exact_lanes(const int64_t *job, int n, int lanes)
{
    packer_t k;
    int64_t total = 0, step = 0, r = -1;
    if (n == 0)
        return 0;
    if (packer_init(&k, job, n) < 0)
        goto out;
    for (int i = 0; i < n; i++) {
        total += job[i];
        step = gcd(job[i], step);
    }
    int64_t t = (total + lanes - 1) / lanes;
    t = (t + step - 1) / step * step;
    t = t < k.size[0] ? k.size[0] : t;
    for (; t <= total; t += step) {
        int f = fits_in(&k, lanes, t);
        if (f != 0) {
            r = f > 0 ? t : -1;
            break;
        }
    }
out:
    free(k.memo);
    free(k.conf);
    return r;
}

/* The larger of the two exact relaxations, in seconds, or -1 when the
 * scenario is too large or the search gave up. */
static double exact_bound(const vm_t *vms, int n, int nodes)
{
    int64_t job[EXACT_MAX_VMS];
    if (n > EXACT_MAX_VMS || cluster_limit > MAX_NODES * 8 || node_limit > MAX_NODES * 8)
        return -1;
    for (int i = 0; i < n; i++)
        job[i] = vms[i].memory;
    int64_t best = exact_lanes(job, n, cluster_limit);
    for (int node = 0; node < nodes && best >= 0; node++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (vms[i].node_idx == node)
                job[m++] = vms[i].memory;
        int64_t t = exact_lanes(job, m, node_limit);
        best = t < 0 ? -1 : (t > best ? t : best);
    }
    return best < 0 ? -1 : seconds(best);
}

static int queue_vm(planner_t *p, const vm_t *v, double not_before)
{
    planner_candidate_t c = {
        .key = v->key,
        .uid = v->uid,
        .node = v->node,
        .memory = v->memory,
        .seq = (uint64_t)atoi(v->uid),
        .not_before = not_before,
        .drain_start = 0,
    };
    return planner_add(p, &c);
}

/* Starts what the planner selects now; counts concurrency and flags any
 * limit exceeded. */
static void start_selected(planner_t *p, const scenario_t *s, vm_t *vms, double now, run_t *runs,
                           int *nruns, int *node_count, result_t *r)
{
    planner_choice_t ch[64];
    int k = planner_select(p, now, ch, 64);
    for (int i = 0; i < k; i++) {
        int idx = atoi(ch[i].uid);
        vm_t *v = &vms[idx];
        double share = attempt_share(s, idx, ++v->attempts);
        runs[(*nruns)++] = (run_t){idx, now + share * seconds(v->memory), share < 1};
        if (++node_count[v->node_idx] > r->max_node)
            r->max_node = node_count[v->node_idx];
        if (*nruns > r->max_cluster)
            r->max_cluster = *nruns;
        if (node_count[v->node_idx] > node_limit || *nruns > cluster_limit)
            r->violated = true;
    }
}

/* Ends every run due at now, in VM order; failed attempts are queued again
 * with backoff or given up. */
static void finish_due(planner_t *p, vm_t *vms, double now, run_t *runs, int *nruns,
                       int *node_count, result_t *r)
{
    for (;;) {
        int due = -1;
        for (int i = 0; i < *nruns; i++)
            if (runs[i].end <= now && (due < 0 || runs[i].vm < runs[due].vm))
                due = i;
        if (due < 0)
            return;
        run_t run = runs[due];
        runs[due] = runs[--*nruns];
        vm_t *v = &vms[run.vm];
        node_count[v->node_idx]--;
        if (!planner_finished(p, v->key))
            r->violated = true;
        r->makespan = now;
        if (!run.fails)
            continue;
        if (v->attempts < MAX_ATTEMPTS) {
            queue_vm(p, v, now + backoff(v->attempts));
            r->retries++;
        } else {
            r->failed++;
        }
    }
}

/* Runs scenario s (its VMs in vms, n of them) under policy pol. Returns
 * -1 when the simulation could not finish. */
static int simulate(const scenario_t *s, const policy_t *pol, const vm_t *proto, int n, result_t *r)
{
    static vm_t vms[MAX_VMS];
    static run_t runs[MAX_VMS];
    int node_count[MAX_NODES] = {0}, nruns = 0;
    double now = 0;

    memset(r, 0, sizeof(*r));
    memcpy(vms, proto, (size_t)n * sizeof(*vms));
    lower_bound(s, vms, n, r);
    planner_t *p = planner_new(pol->order);
    if (!p)
        return -1;
    planner_set_node_order(p, pol->nodes);
    planner_set_limits(p, cluster_limit, node_limit);
    if (aging)
        planner_set_aging(p, aging);
    for (int i = 0; i < n; i++)
        queue_vm(p, &vms[i], 0);
    for (;;) {
        start_selected(p, s, vms, now, runs, &nruns, node_count, r);
        double next = planner_next_ready(p, now);
        for (int i = 0; i < nruns; i++)
            if (next < 0 || runs[i].end < next)
                next = runs[i].end;
        if (next < 0)
            break;
        now = next;
        finish_due(p, vms, now, runs, &nruns, node_count, r);
    }
    planner_stats_t st;
    planner_stats(p, &st);
    planner_free(p);
    r->aged = st.aged;
    r->max_wait = st.max_wait;
    return st.queued || st.started ? -1 : 0;
}

static const char *policy_name(const policy_t *pol, char *buf, size_t len)
{
    snprintf(buf, len, "%s / %s", planner_node_order_name(pol->nodes),
             planner_order_name(pol->order));
    return buf;
}

static bool is_default(const policy_t *pol)
{
    return pol->nodes == PLANNER_DEFAULT_NODE_ORDER && pol->order == PLANNER_DEFAULT_ORDER;
}

/* Runs every policy on scenario s (VMs in vms). Returns -1 on a
 * correctness failure: a limit exceeded or a run that did not finish. */
static int run_policies(const scenario_t *s, const vm_t *vms, int n, result_t *res)
{
    int rc = 0;
    double exact = s->fail_prob > 0 ? -1 : exact_bound(vms, n, s->nodes);
    for (size_t k = 0; k < NPOLICIES; k++) {
        if (simulate(s, &policies[k], vms, n, &res[k]) < 0 || res[k].violated)
            rc = -1;
        res[k].exact = exact;
    }
    return rc;
}

static void print_header(const scenario_t *s, const vm_t *vms, int n, const result_t *r)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += vms[i].memory;
    printf("\n%s  (seed %llu, %d VMs, %.1f GiB, limits %d/%d, %lld MiB/s)\n", s->name,
           (unsigned long long)s->seed, n, (double)total / GIB, cluster_limit, node_limit,
           (long long)(BANDWIDTH / MIB));
    printf("  lower bound %.1f s (%s)", r->bound, r->bound_kind);
    if (r->exact > 0)
        printf("; exact bound %.1f s (indivisible VMs)", r->exact);
    printf("\n  %-32s %10s %10s %8s %8s %8s %8s %5s %5s", "policy (nodes / within node)",
           "makespan", "efficiency", "(exact)", "max clu", "max node", "vs fifo", "aged", "wait");
    if (s->fail_prob > 0)
        printf(" %7s %6s", "retries", "failed");
    printf("\n");
}

/* Prints one scenario's table. Returns -1 on a correctness failure. */
static int report(const scenario_t *s)
{
    static vm_t vms[MAX_VMS];
    result_t res[NPOLICIES];
    int n = make_vms(s, vms);
    int rc = run_policies(s, vms, n, res);

    print_header(s, vms, n, &res[0]);
    for (size_t k = 0; k < NPOLICIES; k++) {
        char name[64], exact[16] = "-";
        const result_t *r = &res[k];
        if (r->exact > 0)
            snprintf(exact, sizeof(exact), "%.3f", r->exact / r->makespan);
        printf("  %-32s %9.1fs %10.3f %8s %8d %8d %8.3f %5llu %5llu",
               policy_name(&policies[k], name, 64), r->makespan, r->bound / r->makespan, exact,
               r->max_cluster, r->max_node, res[0].makespan / r->makespan,
               (unsigned long long)r->aged, (unsigned long long)r->max_wait);
        if (s->fail_prob > 0)
            printf(" %7d %6d", r->retries, r->failed);
        printf("%s%s\n", is_default(&policies[k]) ? "  <- default" : "",
               r->violated ? "  LIMIT EXCEEDED" : "");
    }
    return rc;
}

/* One policy's figures over a sweep of seeds. */
typedef struct tally {
    double worst, sum, worst_exact, worst_ratio;
    int below, below_exact, slower, runs;
} tally_t;

static void tally_add(tally_t *t, const result_t *r, const result_t *baseline)
{
    double eff = r->bound / r->makespan, ratio = baseline->makespan / r->makespan;
    if (t->runs++ == 0)
        t->worst = t->worst_exact = t->worst_ratio = 1e9;
    t->sum += eff;
    t->worst = eff < t->worst ? eff : t->worst;
    t->worst_ratio = ratio < t->worst_ratio ? ratio : t->worst_ratio;
    t->below += eff < 0.95;
    t->slower += ratio < 1 - 1e-9;
    if (r->exact > 0) {
        double ex = r->exact / r->makespan;
        t->worst_exact = ex < t->worst_exact ? ex : t->worst_exact;
        t->below_exact += ex < 0.95;
    }
}

static void tally_print(const tally_t *t, size_t k)
{
    char name[64], worst_exact[16] = "-", below_exact[16] = "-";
    if (t->worst_exact < 1e9) {
        snprintf(worst_exact, sizeof(worst_exact), "%.3f", t->worst_exact);
        snprintf(below_exact, sizeof(below_exact), "%d", t->below_exact);
    }
    printf("  %-32s %6.3f %6.3f %6d %8s %6s %8.3f %6d%s\n", policy_name(&policies[k], name, 64),
           t->worst, t->sum / t->runs, t->below, worst_exact, below_exact, t->worst_ratio,
           t->slower, is_default(&policies[k]) ? "  <- default" : "");
}

/* Runs each failure-free scenario over seeds 1..nseeds and prints, per
 * policy: the worst and mean efficiency and how many runs fell below 0.95;
 * the same against the exact bound (small scenarios); the worst makespan
 * ratio against the baseline and how many runs were slower than it.
 * Returns -1 on a correctness failure. */
static int sweep(int nseeds)
{
    static vm_t vms[MAX_VMS];
    int rc = 0;
    for (size_t si = 0; si < sizeof(scenarios) / sizeof(scenarios[0]); si++) {
        scenario_t s = scenarios[si];
        tally_t t[NPOLICIES];
        if (s.fail_prob > 0)
            continue;
        memset(t, 0, sizeof(t));
        for (int seed = 1; seed <= nseeds; seed++) {
            result_t res[NPOLICIES];
            s.seed = (uint64_t)seed;
            int n = make_vms(&s, vms);
            if (run_policies(&s, vms, n, res) < 0)
                rc = -1;
            for (size_t k = 0; k < NPOLICIES; k++)
                tally_add(&t[k], &res[k], &res[0]);
        }
        printf("\n%s, seeds 1..%d\n", s.name, nseeds);
        printf("  %-32s %6s %6s %6s %8s %6s %8s %6s\n", "policy (nodes / within node)", "worst",
               "mean", "<0.95", "worst ex", "<0.95", "vs fifo", "slower");
        for (size_t k = 0; k < NPOLICIES; k++)
            tally_print(&t[k], k);
    }
    return rc;
}

int main(int argc, char **argv)
{
    int nseeds = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            nseeds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed_override = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--aging") == 0 && i + 1 < argc) {
            aging = (unsigned)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--limits") == 0 && i + 2 < argc) {
            cluster_limit = atoi(argv[++i]);
            node_limit = atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: %s [--seed S | --seeds N] [--aging K] [--limits CLUSTER NODE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (cluster_limit < 1 || node_limit < 1 || nseeds < 0) {
        fprintf(stderr, "pacing_bench: limits must be at least 1, seeds not negative\n");
        return 2;
    }
    if (nseeds > 0) {
        rc = sweep(nseeds);
    } else {
        for (size_t si = 0; si < sizeof(scenarios) / sizeof(scenarios[0]); si++) {
            scenario_t s = scenarios[si];
            s.seed = seed_override ? seed_override : s.seed;
            if (report(&s) < 0)
                rc = -1;
        }
    }
    if (rc < 0)
        fprintf(stderr, "pacing_bench: a limit was exceeded or a run did not finish\n");
    return rc < 0 ? 1 : 0;
}
