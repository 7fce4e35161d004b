/*
 * decode — streaming decoding of Kubernetes LIST and WATCH response bodies
 * into compact projections (kube/objects.h).
 *
 * The body arrives in chunks of any size, down to one byte. The decoder
 * parses it with yajl's incremental parser and builds each object's
 * projection straight from the parse events: no document tree is ever
 * built, so a LIST of 100,000 items is decoded in constant memory apart
 * from the objects the caller keeps.
 *
 * Three kinds of trouble, three outcomes (docs/decoding.md has the rules):
 * - an object that cannot be projected (a kept field of the wrong type, a
 *   bad quantity or time, more than max_object_bytes of JSON, ...) is
 *   SKIPPED: on_skip says which object and why, the skip counter grows and
 *   decoding goes on with the next item or event;
 * - a body that is not JSON, or not the expected shape (a LIST that is not
 *   an object, nesting far too deep, a token longer than max_object_bytes)
 *   is a hard error: feed() or finish() return -1 and kube_decoder_error()
 *   says why; the decoder accepts nothing more;
 * - a body that ends inside a value is a hard error at finish().
 *
 * Callbacks run from inside feed() and finish(). They must not feed, finish
 * or free the decoder.
 */
#ifndef VMDRAIN_KUBE_DECODE_H
#define VMDRAIN_KUBE_DECODE_H

#include "kube/objects.h"

#include <stddef.h>

/* Default for max_object_bytes (when 0 is passed). */
#define KUBE_DECODE_MAX_OBJECT_DEFAULT ((size_t)16 << 20)
/* Nesting deeper than this inside an object skips the object; at the top
 * of a body (outside any object) it is a hard error. */
#define KUBE_DECODE_MAX_DEPTH 64

typedef enum kube_decode_mode {
    KUBE_DECODE_LIST,  /* one {"kind":"XList","metadata":{...},"items":[...]} */
    KUBE_DECODE_WATCH, /* a stream of {"type":...,"object":{...}} events */
} kube_decode_mode_t;

typedef enum kube_event_type {
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK, /* the object carries only metadata.resourceVersion */
    KUBE_EVENT_ERROR,    /* no object; a Status instead */
} kube_event_type_t;

/* A Kubernetes Status (a watch ERROR event, or a LIST body that is one).
 * The strings live only during the callback; the message is cut at 1 KiB. */
typedef struct kube_status {
    int code;           /* HTTP code: 410 for an expired resourceVersion */
    const char *reason; /* "Expired", "Gone", ...; "" when absent */
    const char *message;
} kube_status_t;

typedef struct kube_decoder_cb {
    /* LIST: one item, as soon as it is complete. The callee owns obj. */
    void (*on_item)(void *ud, kube_obj_t *obj);
    /* LIST: once, from kube_decoder_finish() when the whole body was a
     * valid list. The strings live only during the callback. */
    void (*on_list_meta)(void *ud, const char *resource_version, const char *continue_token);
    /* LIST: the body was a Status (kind "Status") rather than a list; called
     * from kube_decoder_finish(), which then fails. */
    void (*on_status)(void *ud, const kube_status_t *status);
    /* WATCH: one event. obj is owned by the callee (NULL for ERROR); status
     * is set for ERROR only. */
    void (*on_event)(void *ud, kube_event_type_t type, kube_obj_t *obj,
                     const kube_status_t *status);
    /* An item or event was skipped; why names the object (namespace/name
     * when known) and the problem. */
    void (*on_skip)(void *ud, const char *why);
    /* A delivered object had an unparsable informational field that was
     * left unset (docs/decoding.md lists which); what names both. */
    void (*on_warning)(void *ud, const char *what);
} kube_decoder_cb_t;

typedef struct kube_decoder kube_decoder_t;

/* A decoder for one response body of objects of the given kind. Any
 * callback may be NULL (objects nobody takes are freed). max_object_bytes
 * caps the JSON of one item or event object (0: the default, 16 MiB; at
 * most 1 GiB). The decoder copies cb. Returns NULL when out of memory. The
 * caller frees it with kube_decoder_free(). */
kube_decoder_t *kube_decoder_new(kube_kind_t kind, kube_decode_mode_t mode,
                                 const kube_decoder_cb_t *cb, void *ud, size_t max_object_bytes);

/* Parses the next len bytes of the body. Returns 0, or -1 on a hard error
 * (this call's or an earlier one's). */
int kube_decoder_feed(kube_decoder_t *d, const char *data, size_t len);

/* Ends the body. Returns 0 when it was complete: a whole list (then
 * on_list_meta has run) or whole watch events (an empty watch body is
 * fine). Returns -1 for a truncated body, a LIST body that was a Status, or
 * an earlier hard error. */
int kube_decoder_finish(kube_decoder_t *d);

/* The hard error, or "" when there was none. Lives as long as d. */
const char *kube_decoder_error(const kube_decoder_t *d);

/* Items and events skipped so far. */
size_t kube_decoder_skipped(const kube_decoder_t *d);

void kube_decoder_free(kube_decoder_t *d);

/* "ADDED", "MODIFIED", ... */
const char *kube_event_type_name(kube_event_type_t type);

/* Decodes one object (a GET's body) of the given kind. Returns it, owned by
 * the caller, or NULL with a message in err. */
kube_obj_t *kube_decode_one(kube_kind_t kind, const char *json, size_t len, char *err,
                            size_t errlen);

#endif
