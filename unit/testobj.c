/*
 * testobj — see testobj.h. Calls kube/decode; called by the unit tests.
 */
#include "testobj.h"

#include "kube/decode.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void take(void *ud, kube_obj_t *obj)
{
    *(kube_obj_t **)ud = obj;
}

kube_obj_t *test_obj_from_json(kube_kind_t kind, const char *item)
{
    kube_obj_t *obj = NULL;
    kube_decoder_cb_t cb = {.on_item = take};
    char body[12288 + 128];
    int n = snprintf(body, sizeof(body),
                     "{\"kind\":\"%s\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[%s]}",
                     kube_kind_list_name(kind), item);
    cr_assert(n > 0 && (size_t)n < sizeof(body), "fixture too long: %s", item);
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, &obj, 0);
    cr_assert_not_null(d);
    cr_assert_eq(kube_decoder_feed(d, body, (size_t)n), 0, "%s", kube_decoder_error(d));
    cr_assert_eq(kube_decoder_finish(d), 0, "%s", kube_decoder_error(d));
    kube_decoder_free(d);
    cr_assert_not_null(obj, "fixture skipped: %s", item);
    return obj;
}

#define KEPT_MAX 64
static kube_obj_t *kept[KEPT_MAX];
static int n_kept;

const kube_obj_t *test_obj_kept(kube_kind_t kind, const char *item)
{
    cr_assert_lt(n_kept, KEPT_MAX, "more than %d objects kept", KEPT_MAX);
    kept[n_kept] = test_obj_from_json(kind, item);
    return kept[n_kept++];
}

void test_obj_release(void)
{
    while (n_kept > 0)
        kube_obj_free(kept[--n_kept]);
}
