#include <criterion/criterion.h>

#include "kube/decode.h"
#include "kube/objects.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether a string of obj lies inside its single allocation (an empty
 * string may also be the shared static one). */
static bool inside(const kube_obj_t *obj, const void *p)
{
    const char *c = p;
    const char *base = (const char *)obj;
    return (c >= base && c < base + obj->alloc_size) || (c && c[0] == '\0');
}

static void expect_kv_inside(const kube_obj_t *obj, const kube_kv_t *kv, size_t n)
{
    if (n)
        cr_expect(inside(obj, kv) && inside(obj, &kv[n - 1]), "array outside the allocation");
    for (size_t i = 0; i < n; i++) {
        cr_expect(inside(obj, kv[i].key), "key %zu outside the allocation", i);
        cr_expect(inside(obj, kv[i].value), "value %zu outside the allocation", i);
    }
}

static void expect_common_inside(const kube_obj_t *o)
{
    cr_expect(inside(o, o->name) && inside(o, o->ns) && inside(o, o->uid) &&
              inside(o, o->resource_version));
    expect_kv_inside(o, o->labels, o->n_labels);
    expect_kv_inside(o, o->annotations, o->n_annotations);
}

Test(objects, kept_key_table)
{
    static const struct {
        const char *key;
        bool kept;
    } cases[] = {
        {"kubevirt.io", true},
        {"kubevirt.io/domain", true},
        {"kubevirt.io/migrationJobUID", true},
        {"vmdrain.io/node", true},
        {"sim.vmdrain.io/dirty-rate", true},
        {"kubevirt.iox", false},
        {"kubevirt.io/", false},
        {"vm.kubevirt.io/name", false},
        {"kubevirt.i", false},
        {"xvmdrain.io/a", false},
        {"vmdrain.io", false},
        {"app", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(kube_obj_keeps_key(cases[i].key, strlen(cases[i].key)), cases[i].kept,
                     "\"%s\"", cases[i].key);
    /* the length counts, not the terminator */
    cr_expect(kube_obj_keeps_key("kubevirt.io/domain", 11));
    cr_expect_not(kube_obj_keeps_key("kubevirt.io/domain", 12));
}

Test(objects, enums_round_trip)
{
    static const char *const vmi[] = {"Pending",   "Scheduling", "Scheduled", "Running",
                                      "Succeeded", "Failed",     "Unknown"};
    for (int i = 0; i < 7; i++) {
        kube_vmi_phase_t p = kube_vmi_phase_parse(vmi[i], strlen(vmi[i]));
        cr_expect_eq(p, KUBE_VMI_PENDING + i, "%s", vmi[i]);
        cr_expect_str_eq(kube_vmi_phase_name(p), vmi[i]);
    }
    static const char *const mig[] = {"Pending",     "Scheduling", "Scheduled", "PreparingTarget",
                                      "TargetReady", "Running",    "Succeeded", "Failed"};
    for (int i = 0; i < 8; i++) {
        kube_migration_phase_t p = kube_migration_phase_parse(mig[i], strlen(mig[i]));
        cr_expect_eq(p, KUBE_MIGRATION_PENDING + i, "%s", mig[i]);
        cr_expect_str_eq(kube_migration_phase_name(p), mig[i]);
    }
    cr_expect_eq(kube_pod_phase_parse("Unknown", 7), KUBE_POD_UNKNOWN);
    cr_expect_eq(kube_pod_phase_parse("Running", 7), KUBE_POD_RUNNING);
    cr_expect_eq(kube_pod_phase_parse("Runnin", 6), KUBE_POD_PHASE_OTHER);
    cr_expect_eq(kube_pod_phase_parse("", 0), KUBE_POD_PHASE_UNSET);
    cr_expect_eq(kube_pod_phase_parse(NULL, 0), KUBE_POD_PHASE_UNSET);
    cr_expect_eq(kube_eviction_strategy_parse("LiveMigrateIfPossible", 21),
                 KUBE_EVICTION_LIVE_MIGRATE_IF_POSSIBLE);
    cr_expect_eq(kube_eviction_strategy_parse("LiveMigrate", 11), KUBE_EVICTION_LIVE_MIGRATE);
    cr_expect_eq(kube_eviction_strategy_parse("External", 8), KUBE_EVICTION_EXTERNAL);
    cr_expect_eq(kube_eviction_strategy_parse("None", 4), KUBE_EVICTION_NONE);
    cr_expect_eq(kube_eviction_strategy_parse("none", 4), KUBE_EVICTION_OTHER);
    cr_expect_eq(kube_abort_status_parse("Aborting", 8), KUBE_ABORT_ABORTING);
    cr_expect_eq(kube_cond_parse("True", 4), KUBE_COND_TRUE);
    cr_expect_eq(kube_cond_parse("False", 5), KUBE_COND_FALSE);
    cr_expect_eq(kube_cond_parse("true", 4), KUBE_COND_UNKNOWN);
    cr_expect_eq(kube_cond_parse(NULL, 0), KUBE_COND_UNKNOWN);
    cr_expect_str_eq(kube_eviction_strategy_name(KUBE_EVICTION_OTHER), "Other");
    cr_expect_str_eq(kube_kind_name(KUBE_KIND_VMI), "VirtualMachineInstance");
    cr_expect_str_eq(kube_kind_list_name(KUBE_KIND_MIGRATION_POLICY), "MigrationPolicyList");
}

/* Builds a VMI by hand through the builder. */
static kube_obj_t *build_vmi(kube__build_t *b)
{
    kube__build_reset(b, KUBE_KIND_VMI);
    kube_vmi_t *v = (kube_vmi_t *)kube__build_scratch(b);
    cr_assert_eq(kube__build_set_str(b, &v->obj.name, "web", 3), 0);
    cr_assert_eq(kube__build_set_str(b, &v->obj.ns, "prod", 4), 0);
    cr_assert_eq(kube__build_set_str(b, &v->node_name, "worker-1", 8), 0);
    cr_assert_eq(kube__build_set_str(b, &v->migration.target_node, "worker-2", 8), 0);
    v->guest_memory = 4LL << 30;
    v->has_migration_state = true;
    uint32_t k1 = kube__build_intern(b, "kubevirt.io/a", 13);
    uint32_t v1 = kube__build_intern(b, "1", 1);
    uint32_t v2 = kube__build_intern(b, "2", 1);
    uint32_t k2 = kube__build_intern(b, "vmdrain.io/node", 15);
    cr_assert_eq(kube__build_add(b, KUBE__LIST_LABELS, k1, v1, KUBE__NO_STR), 0);
    cr_assert_eq(kube__build_add(b, KUBE__LIST_ANNOTATIONS, k2, KUBE__NO_STR, KUBE__NO_STR), 0);
    cr_assert_eq(kube__build_add(b, KUBE__LIST_LABELS, k1, v2, KUBE__NO_STR), 0);
    /* a list the kind does not have is dropped */
    cr_assert_eq(kube__build_add(b, KUBE__LIST_TAINTS, k1, v1, v2), 0);
    return kube__build_finish(b);
}

Test(objects, builder_packs_one_allocation)
{
    kube__build_t *b = kube__build_new(1 << 20);
    kube_obj_t *o = build_vmi(b);
    cr_assert_not_null(o);
    const kube_vmi_t *v = kube_obj_as_vmi(o);
    cr_assert_not_null(v);
    cr_expect_str_eq(o->name, "web");
    cr_expect_str_eq(o->ns, "prod");
    cr_expect_str_eq(o->uid, "");
    cr_expect_str_eq(v->node_name, "worker-1");
    cr_expect_str_eq(v->migration.target_node, "worker-2");
    cr_expect_str_eq(v->migration.source_node, "");
    cr_expect_eq(v->guest_memory, 4LL << 30);
    cr_assert_eq(o->n_labels, 2);
    cr_expect_str_eq(o->labels[0].value, "1");
    cr_expect_str_eq(o->labels[1].value, "2");
    cr_expect_str_eq(kube_obj_label(o, "kubevirt.io/a"), "2"); /* the last one wins */
    cr_expect_str_eq(kube_obj_annotation(o, "vmdrain.io/node"), "");
    cr_expect_null(kube_obj_annotation(o, "kubevirt.io/a"));
    expect_common_inside(o);
    cr_expect(inside(o, v->node_name) && inside(o, v->migration.target_node));
    /* the packed object stands alone: the builder may be reused or freed */
    kube__build_reset(b, KUBE_KIND_POD);
    kube__build_free(b);
    cr_expect_str_eq(kube_obj_label(o, "kubevirt.io/a"), "2");
    size_t size = kube_obj_size(o);
    cr_expect_geq(size, o->alloc_size + 8);
    cr_expect_eq(size % 16, 0);
    cr_expect_lt(size, o->alloc_size + 32);
    kube_obj_free(o);
}

Test(objects, builder_reset_forgets_everything)
{
    kube__build_t *b = kube__build_new(1 << 20);
    kube_obj_free(build_vmi(b));
    kube__build_reset(b, KUBE_KIND_VMI);
    kube_obj_t *o = kube__build_finish(b);
    const kube_vmi_t *v = kube_obj_as_vmi(o);
    cr_expect_str_eq(o->name, "");
    cr_expect_str_eq(v->node_name, "");
    cr_expect_eq(o->n_labels, 0);
    cr_expect_null(o->labels);
    cr_expect_eq(v->guest_memory, 0);
    cr_expect_not(v->has_migration_state);
    kube_obj_free(o);
    kube__build_free(b);
}

Test(objects, builder_set_again_replaces)
{
    kube__build_t *b = kube__build_new(1 << 20);
    kube__build_reset(b, KUBE_KIND_POD);
    kube_pod_t *p = (kube_pod_t *)kube__build_scratch(b);
    cr_assert_eq(kube__build_set_str(b, &p->node_name, "a", 1), 0);
    cr_assert_eq(kube__build_set_str(b, &p->node_name, "bb", 2), 0);
    kube__build_set_off(b, &p->obj.uid, KUBE__NO_STR);
    kube_obj_t *o = kube__build_finish(b);
    cr_expect_str_eq(kube_obj_as_pod(o)->node_name, "bb");
    cr_expect_str_eq(o->uid, "");
    kube_obj_free(o);
    kube__build_free(b);
}

Test(objects, builder_rollback_drops_pool_bytes)
{
    kube__build_t *b = kube__build_new(1 << 20);
    kube__build_reset(b, KUBE_KIND_NODE);
    kube_node_t *n = (kube_node_t *)kube__build_scratch(b);
    cr_assert_eq(kube__build_set_str(b, &n->obj.name, "node-1", 6), 0);
    size_t mark = kube__build_mark(b);
    cr_expect_eq(mark, 7);
    cr_assert_neq(kube__build_intern(b, "a long condition message", 24), KUBE__NO_STR);
    kube__build_rollback(b, mark);
    cr_expect_eq(kube__build_mark(b), mark);
    kube_obj_t *o = kube__build_finish(b);
    cr_expect_str_eq(o->name, "node-1");
    cr_expect_eq(o->alloc_size, ((sizeof(kube_node_t) + 7) & ~(size_t)7) + 7);
    kube_obj_free(o);
    kube__build_free(b);
}

Test(objects, builder_cap)
{
    kube__build_t *b = kube__build_new(16);
    kube__build_reset(b, KUBE_KIND_POD);
    cr_expect_neq(kube__build_intern(b, "0123456789", 10), KUBE__NO_STR); /* 11 bytes */
    errno = 0;
    cr_expect_eq(kube__build_intern(b, "01234", 5), KUBE__NO_STR); /* 6 more do not fit */
    cr_expect_eq(errno, E2BIG);
    cr_expect_neq(kube__build_intern(b, "0123", 4), KUBE__NO_STR); /* exactly 16 */
    errno = 0;
    cr_expect_eq(kube__build_intern(b, "0123456789abcdefgh", 18), KUBE__NO_STR);
    cr_expect_eq(errno, E2BIG);
    kube__build_free(b);
}

Test(objects, policy_defaults_and_downcasts)
{
    kube__build_t *b = kube__build_new(1 << 10);
    kube__build_reset(b, KUBE_KIND_MIGRATION_POLICY);
    kube_obj_t *o = kube__build_finish(b);
    const kube_migration_policy_t *p = kube_obj_as_migration_policy(o);
    cr_assert_not_null(p);
    cr_expect_eq(p->bandwidth, -1);
    cr_expect_eq(p->completion_timeout_per_gib, -1);
    cr_expect_null(kube_obj_as_pod(o));
    cr_expect_null(kube_obj_as_node(o));
    cr_expect_null(kube_obj_as_vmi(o));
    cr_expect_null(kube_obj_as_migration(o));
    cr_expect_null(kube_obj_as_configmap(o));
    cr_expect_null(kube_obj_as_pod(NULL));
    cr_expect_null(kube_obj_label(NULL, "a"));
    cr_expect_null(kube_configmap_get(NULL, "a"));
    kube_obj_free(o);
    kube_obj_free(NULL);
    kube__build_free(b);
}

Test(objects, key_formats)
{
    kube__build_t *b = kube__build_new(1 << 10);
    kube__build_reset(b, KUBE_KIND_POD);
    kube_obj_t *scr = kube__build_scratch(b);
    kube__build_set_str(b, &scr->name, "web-0", 5);
    kube__build_set_str(b, &scr->ns, "prod", 4);
    kube_obj_t *pod = kube__build_finish(b);
    kube__build_reset(b, KUBE_KIND_NODE);
    scr = kube__build_scratch(b);
    kube__build_set_str(b, &scr->name, "worker-1", 8);
    kube_obj_t *node = kube__build_finish(b);

    char buf[32];
    cr_expect_str_eq(kube_obj_key(pod, buf, sizeof(buf)), "prod/web-0");
    cr_expect_str_eq(kube_obj_key(node, buf, sizeof(buf)), "worker-1");
    cr_expect_str_eq(kube_obj_key(pod, buf, 6), "prod/");
    cr_expect_str_eq(kube_obj_key(NULL, buf, sizeof(buf)), "");
    kube_obj_free(pod);
    kube_obj_free(node);
    kube__build_free(b);
}

/* --- decoded objects ---------------------------------------------------------- */

static kube_obj_t *got[8];
static size_t n_got;

static void take(void *ud, kube_obj_t *obj)
{
    (void)ud;
    cr_assert_lt(n_got, 8);
    got[n_got++] = obj;
}

static void decode_file(kube_kind_t kind, const char *file)
{
    char path[256], *body = malloc(1 << 16);
    snprintf(path, sizeof(path), "unit/testdata/%s", file);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(body, 1, 1 << 16, f);
    fclose(f);
    kube_decoder_cb_t cb = {.on_item = take};
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, NULL, 0);
    n_got = 0;
    cr_assert_eq(kube_decoder_feed(d, body, n), 0, "%s", kube_decoder_error(d));
    cr_assert_eq(kube_decoder_finish(d), 0, "%s", kube_decoder_error(d));
    kube_decoder_free(d);
    free(body);
}

Test(objects, decoded_objects_are_single_allocations)
{
    decode_file(KUBE_KIND_VMI, "vmilist.json");
    cr_assert_eq(n_got, 2);
    for (size_t i = 0; i < n_got; i++) {
        const kube_vmi_t *v = kube_obj_as_vmi(got[i]);
        expect_common_inside(got[i]);
        cr_expect(inside(got[i], v->migratable_reason) && inside(got[i], v->migratable_message) &&
                  inside(got[i], v->migration.target_pod) && inside(got[i], v->migration_method));
        /* far smaller than the JSON it came from (about 4 KB for the first) */
        cr_expect_lt(kube_obj_size(got[i]), 1200, "VMI %zu holds %zu bytes", i,
                     kube_obj_size(got[i]));
        kube_obj_free(got[i]);
    }
    decode_file(KUBE_KIND_NODE, "nodelist.json");
    cr_assert_eq(n_got, 3);
    const kube_node_t *n = kube_obj_as_node(got[0]);
    cr_assert_eq(n->n_taints, 2);
    cr_expect(inside(got[0], n->taints) && inside(got[0], &n->taints[1]));
    cr_expect(inside(got[0], n->taints[1].key) && inside(got[0], n->taints[0].effect));
    for (size_t i = 0; i < n_got; i++)
        kube_obj_free(got[i]);
    decode_file(KUBE_KIND_CONFIGMAP, "configmaplist.json");
    cr_assert_eq(n_got, 1);
    const kube_configmap_t *cm = kube_obj_as_configmap(got[0]);
    expect_kv_inside(got[0], cm->data, cm->n_data);
    cr_expect_str_eq(kube_configmap_get(cm, "feature-gates"), "LiveMigration,Snapshot");
    cr_expect_str_eq(kube_configmap_get(cm, "empty"), "");
    cr_expect_null(kube_configmap_get(cm, "blob")); /* binaryData is not data */
    kube_obj_free(got[0]);
}
