/*
 * hmap — a string-keyed hash map of pointers.
 *
 * The caches, indexes and the work queue all look things up by
 * "namespace/name" or by node name. Keys are copied and owned by the map;
 * values are borrowed: the map never frees them.
 */
#ifndef VMDRAIN_UTIL_HMAP_H
#define VMDRAIN_UTIL_HMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hmap_entry {
    struct hmap_entry *next; /* private */
    size_t hash;             /* private */
    char *key;               /* read-only */
    void *value;
} hmap_entry_t;

typedef struct hmap {
    hmap_entry_t **buckets; /* private */
    size_t nbuckets;        /* private */
    size_t len;             /* read-only: entries stored */
} hmap_t;

void hmap_init(hmap_t *m);

/* Frees the entries and keys, not the values. */
void hmap_free(hmap_t *m);

/* The value stored under key, or NULL. */
void *hmap_get(const hmap_t *m, const char *key);

/* The entry of key, or NULL; its value may be changed in place. */
hmap_entry_t *hmap_find(const hmap_t *m, const char *key);

/* Stores value under key, replacing (and returning through old, if not
 * NULL) a previous value. Returns 0, or -1 when memory runs out. */
int hmap_put(hmap_t *m, const char *key, void *value, void **old);

/* Tests only: while set, hmap_put of a new entry with exactly this key
 * fails as when memory runs out, so the paths that must survive a failed
 * insert can be exercised. NULL (the default) in the program. */
extern const char *hmap__fail_key;

/* Removes key and returns its value, or NULL when it was absent. */
void *hmap_del(hmap_t *m, const char *key);

/* Iteration: for (it = hmap_first(m); it; it = hmap_next(m, it)). The map
 * must not change during the walk, except hmap_del of the current entry
 * after hmap_next has been taken. */
hmap_entry_t *hmap_first(const hmap_t *m);
hmap_entry_t *hmap_next(const hmap_t *m, const hmap_entry_t *e);

#endif
