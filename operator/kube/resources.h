/*
 * resources — where each kind vmdrain reads lives in the API.
 *
 * One table maps a resource name as a user types it ("pods", "vmi") to the
 * kind of projection, the API path and whether it is namespaced, so the
 * informers, the writers and `vmdrain debug` agree on the URLs.
 */
#ifndef VMDRAIN_KUBE_RESOURCES_H
#define VMDRAIN_KUBE_RESOURCES_H

#include "kube/objects.h"
#include "util/buf.h"

#include <stdbool.h>

typedef struct kube_resource {
    const char *name;    /* plural: "pods" */
    const char *aliases; /* comma-separated short names: "pod,po" */
    kube_kind_t kind;
    const char *prefix;      /* "/api/v1", "/apis/kubevirt.io/v1" */
    const char *api_version; /* "v1", "kubevirt.io/v1" */
    bool namespaced;
} kube_resource_t;

/* The resource called name (plural, singular or short name), or NULL. */
const kube_resource_t *kube_resource_find(const char *name);

/* The resource of a kind (every kind has one). */
const kube_resource_t *kube_resource_of_kind(kube_kind_t kind);

/* Comma-separated plural names, for help texts. */
const char *kube_resource_names(void);

/* Appends the path of a collection (name NULL) or of one object, optionally
 * in namespace ns and with a subresource ("status", "eviction"), to out.
 * Returns 0 or -1 (the buffer's cap). */
int kube_resource_path(const kube_resource_t *r, const char *ns, const char *name,
                       const char *subresource, buf_t *out);

/* Appends s to out, percent-encoded for a URL query value. Returns 0 or -1. */
int kube_url_escape(buf_t *out, const char *s);

#endif
