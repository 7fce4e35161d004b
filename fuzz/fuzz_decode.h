/*
 * Shared by fuzz_watch.c and fuzz_list.c: decodes one input with a decoder
 * of every kind, twice — in one piece and in chunks whose sizes come from
 * the input bytes — and checks that both runs saw exactly the same thing.
 * A streaming decoder must not care where its input was cut.
 */
#ifndef VMDRAIN_FUZZ_DECODE_H
#define VMDRAIN_FUZZ_DECODE_H

#include "kube/decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What one run saw: a hash over every callback and its data, and counts. */
struct fuzz_trace {
    uint64_t hash;
    size_t calls;
};

static void fuzz_mix(struct fuzz_trace *t, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        t->hash = (t->hash ^ c[i]) * 1099511628211ULL; /* FNV-1a */
    t->hash = (t->hash ^ 0xff) * 1099511628211ULL;
    t->calls++;
}

static void fuzz_mix_str(struct fuzz_trace *t, const char *s)
{
    if (!s)
        abort(); /* strings handed out are never NULL */
    fuzz_mix(t, s, strlen(s));
}

static void fuzz_mix_kv(struct fuzz_trace *t, const kube_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fuzz_mix_str(t, kv[i].key);
        fuzz_mix_str(t, kv[i].value);
    }
}

/* Hashes every field an object exposes (which also makes ASan check that
 * every pointer is valid), then frees it. */
static void fuzz_mix_obj(struct fuzz_trace *t, kube_obj_t *o)
{
    char key[512];
    if (kube_obj_size(o) < sizeof(kube_obj_t))
        abort();
    fuzz_mix_str(t, kube_obj_key(o, key, sizeof(key)));
    fuzz_mix_str(t, o->uid);
    fuzz_mix_str(t, o->resource_version);
    fuzz_mix(t, &o->generation, sizeof(o->generation));
    fuzz_mix(t, &o->created.sec, sizeof(o->created.sec));
    fuzz_mix(t, &o->deleted.sec, sizeof(o->deleted.sec));
    fuzz_mix_kv(t, o->labels, o->n_labels);
    fuzz_mix_kv(t, o->annotations, o->n_annotations);
    const kube_node_t *node = kube_obj_as_node(o);
    const kube_vmi_t *vmi = kube_obj_as_vmi(o);
    if (node) {
        for (size_t i = 0; i < node->n_taints; i++) {
            fuzz_mix_str(t, node->taints[i].key);
            fuzz_mix_str(t, node->taints[i].value);
            fuzz_mix_str(t, node->taints[i].effect);
        }
        fuzz_mix(t, &node->ready, sizeof(node->ready));
    }
    if (kube_obj_as_pod(o))
        fuzz_mix_str(t, kube_obj_as_pod(o)->node_name);
    if (vmi) {
        fuzz_mix_str(t, vmi->migratable_message);
        fuzz_mix_str(t, vmi->migration.target_pod);
        fuzz_mix(t, &vmi->guest_memory, sizeof(vmi->guest_memory));
        fuzz_mix_str(t, vmi->evacuation_node);
    }
    if (kube_obj_as_kubevirt(o)) {
        const kube_kubevirt_t *kv = kube_obj_as_kubevirt(o);
        fuzz_mix_str(t, kv->node_drain_taint_key);
        fuzz_mix_str(t, kv->phase);
        fuzz_mix(t, &kv->bandwidth_per_migration, sizeof(kv->bandwidth_per_migration));
    }
    if (kube_obj_as_migration(o))
        fuzz_mix_str(t, kube_obj_as_migration(o)->vmi_name);
    if (kube_obj_as_configmap(o))
        fuzz_mix_kv(t, kube_obj_as_configmap(o)->data, kube_obj_as_configmap(o)->n_data);
    if (kube_obj_as_migration_policy(o)) {
        const kube_migration_policy_t *p = kube_obj_as_migration_policy(o);
        fuzz_mix_kv(t, p->vmi_selector, p->n_vmi_selector);
    }
    kube_obj_free(o);
}

static void fuzz_on_item(void *ud, kube_obj_t *obj)
{
    fuzz_mix_obj(ud, obj);
}

static void fuzz_on_meta(void *ud, const char *rv, const char *cont)
{
    fuzz_mix_str(ud, rv);
    fuzz_mix_str(ud, cont);
}

static void fuzz_on_status(void *ud, const kube_status_t *st)
{
    fuzz_mix(ud, &st->code, sizeof(st->code));
    fuzz_mix_str(ud, st->reason);
    fuzz_mix_str(ud, st->message);
}

static void fuzz_on_event(void *ud, kube_event_type_t type, kube_obj_t *obj,
                          const kube_status_t *st)
{
    fuzz_mix(ud, &type, sizeof(type));
    if ((type == KUBE_EVENT_ERROR) != (obj == NULL) || (type == KUBE_EVENT_ERROR) != (st != NULL))
        abort(); /* ERROR carries a status and nothing else */
    if (obj)
        fuzz_mix_obj(ud, obj);
    else
        fuzz_on_status(ud, st);
}

static void fuzz_on_text(void *ud, const char *text)
{
    if (!text[0])
        abort(); /* a skip or warning always says why */
    fuzz_mix_str(ud, text);
}

static const kube_decoder_cb_t fuzz_cb = {fuzz_on_item,  fuzz_on_meta, fuzz_on_status,
                                          fuzz_on_event, fuzz_on_text, fuzz_on_text};

/* Decodes data with chunks of the given sizes (step 0: one piece), with a
 * small object cap so that skipping is exercised too. Returns whether the
 * body was accepted. */
static int fuzz_run(kube_kind_t kind, kube_decode_mode_t mode, const uint8_t *data, size_t size,
                    uint64_t seed, struct fuzz_trace *t)
{
    kube_decoder_t *d = kube_decoder_new(kind, mode, &fuzz_cb, t, 512);
    int rc = 0;
    if (!d)
        return -1;
    for (size_t at = 0; at < size && rc == 0;) {
        size_t n = size - at;
        if (seed) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            size_t max = (size_t)1 << (seed % 9); /* 1 .. 256 bytes */
            n = 1 + (size_t)(seed >> 16) % max;
            if (n > size - at)
                n = size - at;
        }
        rc = kube_decoder_feed(d, (const char *)data + at, n);
        at += n;
    }
    if (rc == 0)
        rc = kube_decoder_finish(d);
    if (rc < 0 && !kube_decoder_error(d)[0])
        abort(); /* a failure always says why */
    fuzz_mix(t, &rc, sizeof(rc));
    size_t skipped = kube_decoder_skipped(d);
    fuzz_mix(t, &skipped, sizeof(skipped));
    kube_decoder_free(d);
    return rc;
}

/* The whole check for one input and one mode. */
static void fuzz_decode_all_kinds(kube_decode_mode_t mode, const uint8_t *data, size_t size)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ULL;
    if (!seed)
        seed = 1;
    for (int k = 0; k < KUBE_KIND_COUNT; k++) {
        struct fuzz_trace whole = {1469598103934665603ULL, 0};
        struct fuzz_trace cut = {1469598103934665603ULL, 0};
        fuzz_run((kube_kind_t)k, mode, data, size, 0, &whole);
        fuzz_run((kube_kind_t)k, mode, data, size, seed + (uint64_t)k, &cut);
        if (whole.hash != cut.hash || whole.calls != cut.calls)
            abort(); /* the cut changed what was decoded */
    }
}

#endif
