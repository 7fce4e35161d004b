/*
 * testobj — objects for the unit tests, made the way the operator makes
 * them: one list item of Kubernetes JSON through the streaming decoder.
 */
#ifndef VMDRAIN_UNIT_TESTOBJ_H
#define VMDRAIN_UNIT_TESTOBJ_H

#include "kube/objects.h"

/* Decodes item (one object's JSON, up to 12 KiB) as a list item of kind;
 * the test fails when the decoder refuses or skips it. The caller frees
 * the object with kube_obj_free(). */
kube_obj_t *test_obj_from_json(kube_kind_t kind, const char *item);

/* The same, kept until test_obj_release() (a suite's .fini) frees it. */
const kube_obj_t *test_obj_kept(kube_kind_t kind, const char *item);
void test_obj_release(void);

#endif
