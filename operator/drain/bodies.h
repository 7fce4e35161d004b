/*
 * drain/bodies — the JSON of every write vmdrain makes: the node patch
 * that takes a node from what the cache shows to a plan, the migration
 * objects, the VMI label and annotation patches, the MigrationPolicy.
 *
 * Pure text generation (yajl, every generator status checked): no I/O.
 * The writer (drain/writer.c) sends what these functions produce.
 *
 * May call: drain/reconcile.h (the plan and the names), kube/objects,
 * util/jsongen, util/num.
 */
#ifndef VMDRAIN_DRAIN_BODIES_H
#define VMDRAIN_DRAIN_BODIES_H

#include "drain/reconcile.h"

/* Writes the JSON merge patch that takes the node from what the view saw to
 * the plan (spec.unschedulable, spec.taints, the annotations and the state
 * label, guarded by the node's resourceVersion), into out. Returns its
 * length, 0 when nothing needs writing, or -1 (memory). The caller frees
 * *out. */
int drain_node_patch(const drain_view_t *v, const drain_plan_t *p, char **out);

/* The migration object for a candidate, as JSON. The caller frees *out.
 * Returns its length or -1. */
int drain_migration_body(const drain_candidate_t *c, const char *node, char **out);

/* Writes the merge patch that sets a VMI annotation (value NULL removes
 * it) into *out. Returns its length or -1. The caller frees *out. */
int drain_annotation_patch(const char *key, const char *value, char **out);

/* The merge patch that sets (value "true") or removes (NULL) a label. */
int drain_label_patch(const char *key, const char *value, char **out);

/* The vmdrain-evacuation MigrationPolicy as JSON (bandwidth NULL: no
 * limit). The caller frees *out. Returns its length or -1. */
int drain_policy_body(const char *name, const char *bandwidth, int completion_timeout_per_gib,
                      char **out);

#endif
