/*
 * hmap — see hmap.h. Owns the table and its keys; calls only the C
 * library.
 */
#include "util/hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a: short keys, no adversary who could choose them cheaply. */
static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

void hmap_init(hmap_t *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->len = 0;
}

void hmap_free(hmap_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        hmap_entry_t *e = m->buckets[i];
        while (e) {
            hmap_entry_t *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    hmap_init(m);
}

hmap_entry_t *hmap_find(const hmap_t *m, const char *key)
{
    if (m->nbuckets == 0)
        return NULL;
    size_t h = hash_str(key);
    for (hmap_entry_t *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

void *hmap_get(const hmap_t *m, const char *key)
{
    hmap_entry_t *e = hmap_find(m, key);
    return e ? e->value : NULL;
}

/* Doubles the bucket array; entries keep their hashes. */
static int grow(hmap_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    hmap_entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        hmap_entry_t *e = m->buckets[i];
        while (e) {
            hmap_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

const char *hmap__fail_key;

int hmap_put(hmap_t *m, const char *key, void *value, void **old)
{
    hmap_entry_t *e = hmap_find(m, key);

    if (hmap__fail_key && !e && strcmp(key, hmap__fail_key) == 0)
        return -1; /* as when memory runs out (tests) */
    if (e) {
        if (old)
            *old = e->value;
        e->value = value;
        return 0;
    }
    if (old)
        *old = NULL;
    if (m->len >= m->nbuckets && grow(m) < 0)
        return -1;
    e = malloc(sizeof(*e));
    if (!e)
        return -1;
    e->key = strdup(key);
    if (!e->key) {
        free(e);
        return -1;
    }
    e->hash = hash_str(key);
    e->value = value;
    e->next = m->buckets[e->hash & (m->nbuckets - 1)];
    m->buckets[e->hash & (m->nbuckets - 1)] = e;
    m->len++;
    return 0;
}

void *hmap_del(hmap_t *m, const char *key)
{
    if (m->nbuckets == 0)
        return NULL;
    size_t h = hash_str(key);
    hmap_entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        hmap_entry_t *e = *pp;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *v = e->value;
            *pp = e->next;
            free(e->key);
            free(e);
            m->len--;
            return v;
        }
    }
    return NULL;
}

static hmap_entry_t *first_from(const hmap_t *m, size_t i)
{
    for (; i < m->nbuckets; i++)
        if (m->buckets[i])
            return m->buckets[i];
    return NULL;
}

hmap_entry_t *hmap_first(const hmap_t *m)
{
    return first_from(m, 0);
}

hmap_entry_t *hmap_next(const hmap_t *m, const hmap_entry_t *e)
{
    if (e->next)
        return e->next;
    return first_from(m, (e->hash & (m->nbuckets - 1)) + 1);
}
