/*
 * informer — a read-only cache of one resource, loaded whole and kept
 * current by WATCH, with indexes and change handlers.
 *
 * The reflector loop is client-go's. The whole state is loaded the way the
 * apiserver serves it cheapest: streamed over a WATCH (sendInitialEvents,
 * resourceVersionMatch=NotOlderThan, up to the bookmark annotated
 * k8s.io/initial-events-end), else, when the server refuses that (the
 * WatchList feature off: 422), a LIST from its watch cache
 * (resourceVersion=0, or NotOlderThan the version last seen on a relist),
 * else a consistent LIST from etcd in pages (limit/continue), taken only
 * for a relist the watch cache is too far behind for (504, 410). Then the
 * WATCH goes on from that state's resourceVersion with bookmarks; a watch
 * that ends is resumed from the last resourceVersion seen; 410 Gone (the
 * version is too old) loads the whole state again the same way, and it
 * replaces the cache, with add/update/delete handlers fired for the
 * differences; failures back off exponentially with jitter. Objects are
 * compact projections (kube/objects.h) owned by the cache; handlers and
 * lookups borrow them.
 *
 * Everything runs on the loop of the kube_http_t given. Handlers must not
 * free the informer.
 */
#ifndef VMDRAIN_KUBE_INFORMER_H
#define VMDRAIN_KUBE_INFORMER_H

#include "kube/http.h"
#include "kube/objects.h"
#include "kube/resources.h"

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;
typedef struct informer informer_t;

typedef struct informer_handlers {
    /* A new object. */
    void (*on_add)(void *ud, const kube_obj_t *obj);
    /* An object changed; old is freed after the call. */
    void (*on_update)(void *ud, const kube_obj_t *old, const kube_obj_t *obj);
    /* An object is gone; obj is its last known state, freed after the call. */
    void (*on_delete)(void *ud, const kube_obj_t *obj);
    /* The first whole state has been applied (once per informer). */
    void (*on_synced)(void *ud);
    /* A LIST or WATCH failed; msg is one line. The informer retries by
     * itself; this is for callers that want to stop (debug commands). */
    void (*on_error)(void *ud, const char *msg, long http_status);
} informer_handlers_t;

/* How the whole state is loaded (see above); AUTO is the default. */
typedef enum informer_initial {
    INFORMER_INITIAL_AUTO = 0, /* stream; a LIST from the watch cache if refused */
    INFORMER_INITIAL_CACHE,    /* LIST from the watch cache, never streamed */
    INFORMER_INITIAL_PAGED,    /* consistent LISTs from etcd in pages, always */
} informer_initial_t;

/* "auto", "cache", "paged" <-> the enum: parse returns 0, or -1 for any
 * other text. */
int informer_initial_parse(const char *s, informer_initial_t *out);
const char *informer_initial_name(informer_initial_t v);

typedef struct informer_opts {
    const kube_resource_t *resource;
    const char *ns;             /* NULL: all namespaces */
    const char *label_selector; /* NULL: everything */
    const char *field_selector;
    int page_size;           /* LIST limit; <= 0 means 500 */
    size_t max_object_bytes; /* 0 means KUBE_DECODE_MAX_OBJECT_DEFAULT */
    double backoff_base;     /* seconds; <= 0 means 0.5 */
    double backoff_max;      /* seconds; <= 0 means 30 */
    int watch_timeout;       /* seconds asked of the server per WATCH;
                                <= 0 means a random 300..600 */
    informer_initial_t initial;
} informer_opts_t;

/* Creates an informer; nothing happens before informer_start(). The
 * strings of opts are copied. Returns NULL when out of memory. Free with
 * informer_free(), which also frees every cached object. */
informer_t *informer_new(kube_http_t *http, struct ev_loop *loop, const informer_opts_t *opts,
                         const informer_handlers_t *handlers, void *ud);
void informer_free(informer_t *inf);

/* Starts listing and watching. */
void informer_start(informer_t *inf);

/* Ends the current watch and resumes it from the last resourceVersion, as
 * after a disconnect (tests, and a hint after an apiserver restart). */
void informer_rewatch(informer_t *inf);

/* True once the first whole state has been applied. */
bool informer_synced(const informer_t *inf);

/* How the last whole state was loaded: "stream", "cache", "paged", or ""
 * before the first. */
const char *informer_loaded_by(const informer_t *inf);

/* The cached object with key "ns/name" (or "name"), or NULL. */
const kube_obj_t *informer_get(const informer_t *inf, const char *key);

size_t informer_len(const informer_t *inf);

/* The resourceVersion the next WATCH would resume from ("" before sync). */
const char *informer_resource_version(const informer_t *inf);

/* Calls fn for every cached object until fn returns non-zero; returns that
 * value or 0. The cache must not change during the walk. */
int informer_foreach(const informer_t *inf, int (*fn)(void *ud, const kube_obj_t *obj), void *ud);

/* Adds an index: fn returns the index value of an object (a string that
 * lives as long as the object), or NULL to leave it out. Must be called
 * before informer_start(). Returns 0 or -1. */
int informer_add_index(informer_t *inf, const char *name, const char *(*fn)(const kube_obj_t *obj));

/* Calls fn for every object whose index value is value, like
 * informer_foreach. Unknown index names visit nothing. */
int informer_index_foreach(const informer_t *inf, const char *index, const char *value,
                           int (*fn)(void *ud, const kube_obj_t *obj), void *ud);

/* Objects with that index value. */
size_t informer_index_count(const informer_t *inf, const char *index, const char *value);

/* Counters, for tests and `vmdrain debug`. */
typedef struct informer_stats {
    unsigned long lists;   /* LIST requests made (pages included) */
    unsigned long streams; /* WATCH requests that streamed the whole state */
    unsigned long relists; /* whole states loaded after the first */
    unsigned long watches; /* WATCH requests made (streams included) */
    unsigned long events;  /* watch events applied (bookmarks excluded) */
    unsigned long bookmarks;
    unsigned long skipped; /* objects the decoder skipped */
    unsigned long errors;  /* failed requests */
} informer_stats_t;

void informer_get_stats(const informer_t *inf, informer_stats_t *out);

#endif
