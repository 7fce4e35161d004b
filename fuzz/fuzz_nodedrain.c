/*
 * Fuzz driver for the kubectl plugin's NodeDrain reader (cmd/plugin.h): the
 * input is read as one NodeDrain, as a NodeDrainList and as a watch event.
 * A refusal must say why and leave nothing behind; what is accepted has
 * no NULL string, no negative count but -1, at most PL_ND_MAX_VMIS VMIs,
 * and renders as text and as JSON that parses again.
 */
#include "cmd/plugin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const pl_nodedrain_t *nd)
{
    const char *strs[] = {nd->name,    nd->uid,       nd->resource_version, nd->node_name,
                          nd->reason,  nd->phase,     nd->trigger,          nd->progress,
                          nd->message, nd->managed_by};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (!strs[i])
            abort();
    const int64_t counts[] = {nd->total,  nd->migrated, nd->migrating,   nd->pending,
                              nd->failed, nd->blocked,  nd->vmis_omitted};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (counts[i] < -1)
            abort();
    if (!nd->name[0] || nd->n_vmis > PL_ND_MAX_VMIS || nd->n_blocked_vmis > PL_ND_MAX_VMIS)
        abort();
    for (size_t i = 0; i < nd->n_vmis; i++)
        if (!nd->vmis[i].ns || !nd->vmis[i].state || !nd->vmis[i].migration ||
            !nd->vmis[i].reason || !nd->vmis[i].name[0])
            abort();
}

/* What is accepted renders; the JSON parses again. */
static void render(const pl_nodedrain_t *nd)
{
    pl_row_t row;
    buf_t out;
    buf_init(&out, 64u << 20);
    pl_row_build(&row, nd->name, NULL, nd);
    row.found = true;
    if (pl_render_text(&row, 1, true, 1893456000, &out) < 0)
        abort();
    buf_reset(&out);
    if (pl_render_json(&row, 1, 1893456000, &out) == 0) {
        char err[128];
        yajl_val v = yajl_tree_parse(out.data, err, sizeof(err));
        if (!v)
            abort();
        yajl_tree_free(v);
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    pl_nodedrain_t nd, *items;
    pl_event_t type;
    size_t n;
    long code;
    char err[512], rv[64];

    if (pl_nodedrain_parse(json, size, &nd, err, sizeof(err)) == 0) {
        check(&nd);
        render(&nd);
    } else if (!err[0] || nd.name || nd.vmis) {
        abort();
    }
    pl_nodedrain_free(&nd);
    if (pl_nodedrain_parse_list(json, size, &items, &n, rv, sizeof(rv), err, sizeof(err)) == 0) {
        for (size_t i = 0; i < n; i++)
            check(&items[i]);
    } else if (!err[0] || items || n) {
        abort();
    }
    pl_nodedrains_free(items, n);
    if (pl_nodedrain_parse_event(json, size, &type, &nd, &code, err, sizeof(err)) == 0 &&
        type <= PL_EV_DELETED)
        check(&nd);
    pl_nodedrain_free(&nd);
    return 0;
}
