/*
 * writer — the few writes vmdrain makes: create, patch and delete objects,
 * and record Events. Each is asynchronous on the loop; a completion
 * callback (optional) gets the result.
 */
#ifndef VMDRAIN_KUBE_WRITER_H
#define VMDRAIN_KUBE_WRITER_H

#include "kube/http.h"
#include "kube/objects.h"
#include "kube/resources.h"

typedef void (*kube_write_cb)(void *ud, const kube_result_t *res);

/* Patch types for kube_patch(). */
#define KUBE_MERGE_PATCH     "application/merge-patch+json"
#define KUBE_JSON_PATCH      "application/json-patch+json"
#define KUBE_STRATEGIC_PATCH "application/strategic-merge-patch+json"

/* POSTs body (JSON) to the collection of r in ns. */
kube_req_t *kube_create(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *body,
                        kube_write_cb cb, void *ud);

/* PATCHes an object (subresource may be NULL or "status"). */
kube_req_t *kube_patch(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *name,
                       const char *subresource, const char *patch_type, const char *body,
                       kube_write_cb cb, void *ud);

/* kube_patch() through the fence (kube_http_fence()): the one kind of
 * write a replica that does not lead makes, an idempotent mark. */
kube_req_t *kube_patch_unfenced(kube_http_t *h, const kube_resource_t *r, const char *ns,
                                const char *name, const char *patch_type, const char *body,
                                kube_write_cb cb, void *ud);

/* DELETEs an object with propagationPolicy Background and, when uid is not
 * NULL, a precondition on it (so a re-created object of the same name is
 * never deleted by mistake). */
kube_req_t *kube_delete(kube_http_t *h, const kube_resource_t *r, const char *ns, const char *name,
                        const char *uid, kube_write_cb cb, void *ud);

/* Records a core/v1 Event about obj (source component "vmdrain"). Events
 * of cluster-scoped objects go to the "default" namespace, as kubectl
 * expects. The same object, type, reason and message again within 10
 * minutes patches the first Event's count and lastTimestamp instead of
 * making another (a new one when that Event has expired), as Kubernetes'
 * event recorder does. Best effort: failures are logged, never retried. */
void kube_event(kube_http_t *h, const kube_obj_t *obj, const char *type, const char *reason,
                const char *message);

/* kube_event() once per (obj, key, reason): the Event's name is derived
 * from them, so sending it again (after a restart, by another replica) is
 * answered 409 by the apiserver, which counts as sent. cb (may be NULL)
 * gets the result, with error NULL for a new Event and for one sent
 * before. Returns false when nothing was sent (no memory, or the Event
 * cannot be encoded); cb is not called then. */
bool kube_event_once(kube_http_t *h, const kube_obj_t *obj, const char *key, const char *type,
                     const char *reason, const char *message, kube_write_cb cb, void *ud);

#endif
