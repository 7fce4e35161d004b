/*
 * drain/capacity — see capacity.h. Pure; calls libc only.
 */
#include "drain/capacity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_size_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int drain_capacity_check(const drain_target_t *targets, size_t n_targets, const int64_t *need,
                         size_t n, drain_capacity_t *out)
{
    int64_t *room = calloc(n_targets ? n_targets : 1, sizeof(*room));
    int64_t *sizes = malloc((n ? n : 1) * sizeof(*sizes));

    memset(out, 0, sizeof(*out));
    if (!room || !sizes) {
        free(room);
        free(sizes);
        return -1;
    }
    for (size_t i = 0; i < n_targets; i++) {
        int64_t left = targets[i].allocatable - targets[i].requested;
        room[i] = left > 0 ? left : 0;
        out->free += room[i];
    }
    out->targets = (int)n_targets;
    if (n)
        memcpy(sizes, need, n * sizeof(*sizes));
    qsort(sizes, n, sizeof(*sizes), by_size_desc);
    for (size_t v = 0; v < n; v++) {
        size_t best = n_targets;
        out->vmis++;
        out->needed += sizes[v];
        for (size_t i = 0; i < n_targets; i++)
            if (room[i] >= sizes[v] && (best == n_targets || room[i] > room[best]))
                best = i;
        if (best < n_targets) {
            room[best] -= sizes[v];
            continue;
        }
        out->unplaced++;
        out->shortfall += sizes[v];
        if (sizes[v] > out->largest_unplaced)
            out->largest_unplaced = sizes[v];
    }
    free(room);
    free(sizes);
    return 0;
}

bool drain_capacity_fits(const drain_capacity_t *c)
{
    return c->unplaced == 0;
}

static double gib(int64_t bytes)
{
    return (double)bytes / (double)(1LL << 30);
}

const char *drain_capacity_text(const drain_capacity_t *c, char *out, size_t n)
{
    if (drain_capacity_fits(c))
        snprintf(out, n,
                 "%d VMI(s) needing %.1f GiB fit in %.1f GiB free on %d schedulable node(s)",
                 c->vmis, gib(c->needed), gib(c->free), c->targets);
    else
        snprintf(out, n,
                 "%d of %d VMI(s) (%.1f GiB) do not fit: %.1f GiB free on %d schedulable "
                 "node(s), the largest of them needs %.1f GiB",
                 c->unplaced, c->vmis, gib(c->shortfall), gib(c->free), c->targets,
                 gib(c->largest_unplaced));
    return out;
}
