/*
 * Fuzz driver for the eviction webhook's logic: the input is an
 * AdmissionReview body; when it decodes, it is decided over a small fixed
 * cache (a launcher pod, a migration target pod, a plain pod; VMIs of every
 * strategy, picked by the request's uid) and the answer is encoded. A
 * refusal must say why; an answer must be well formed.
 */
#include "kube/decode.h"
#include "util/buf.h"
#include "util/log.h"
#include "drain/eviction.h"
#include "web/admission.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPODS 3
#define NVMIS 6

static const char *const pod_json[NPODS] = {
    "{\"metadata\":{\"name\":\"virt-launcher-vm-a-7xk2p\",\"namespace\":\"default\","
    "\"labels\":{\"kubevirt.io\":\"virt-launcher\"},\"annotations\":{\"kubevirt.io/domain\":"
    "\"vm-a\"}},\"spec\":{\"nodeName\":\"node-1\"},\"status\":{\"phase\":\"Running\"}}",
    "{\"metadata\":{\"name\":\"virt-launcher-vm-a-target\",\"namespace\":\"default\","
    "\"labels\":{\"kubevirt.io\":\"virt-launcher\",\"kubevirt.io/migrationJobUID\":\"m-1\"},"
    "\"annotations\":{\"kubevirt.io/domain\":\"vm-a\"}},\"spec\":{\"nodeName\":\"node-2\"},"
    "\"status\":{\"phase\":\"Running\"}}",
    "{\"metadata\":{\"name\":\"web-0\",\"namespace\":\"default\"},\"spec\":{\"nodeName\":"
    "\"node-1\"},\"status\":{\"phase\":\"Running\"}}",
};

static const char *const vmi_json[NVMIS] = {
    "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-a\"},\"spec\":"
    "{\"evictionStrategy\":\"LiveMigrate\"},\"status\":{\"nodeName\":\"node-1\",\"phase\":"
    "\"Running\",\"conditions\":[{\"type\":\"LiveMigratable\",\"status\":\"True\"}]}}",
    "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-a\"},\"spec\":"
    "{\"evictionStrategy\":\"LiveMigrate\"},\"status\":{\"nodeName\":\"node-1\",\"phase\":"
    "\"Running\",\"conditions\":[{\"type\":\"LiveMigratable\",\"status\":\"False\",\"reason\":"
    "\"DisksNotLiveMigratable\",\"message\":\"PVC is not shared\"}]}}",
    "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-a\"},\"spec\":"
    "{\"evictionStrategy\":\"LiveMigrateIfPossible\"},\"status\":{\"nodeName\":\"node-1\","
    "\"phase\":\"Running\"}}",
    "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-a\"},\"spec\":"
    "{\"evictionStrategy\":\"External\"},\"status\":{\"nodeName\":\"node-1\",\"phase\":"
    "\"Running\"}}",
    "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-a\"},\"spec\":{},"
    "\"status\":{\"nodeName\":\"node-1\",\"phase\":\"Running\",\"migrationState\":{"
    "\"migrationUid\":\"m-1\",\"targetPod\":\"virt-launcher-vm-a-target\"}}}",
    "{\"metadata\":{\"name\":\"vm-a\",\"namespace\":\"default\",\"uid\":\"u-a\"},\"spec\":"
    "{\"evictionStrategy\":\"None\"},\"status\":{\"nodeName\":\"node-2\",\"phase\":"
    "\"Succeeded\"}}",
};

static const char mig_json[] =
    "{\"metadata\":{\"name\":\"vmdrain-u-a-1\",\"namespace\":\"default\",\"uid\":\"m-1\"},"
    "\"spec\":{\"vmiName\":\"vm-a\"},\"status\":{\"phase\":\"Running\"}}";

static kube_obj_t *pods[NPODS], *vmis[NVMIS], *mig;

static void take(void *ud, kube_obj_t *obj)
{
    *(kube_obj_t **)ud = obj;
}

/* One cached object from its JSON; the cache lives for the process. */
static kube_obj_t *load(kube_kind_t kind, const char *item)
{
    kube_obj_t *obj = NULL;
    kube_decoder_cb_t cb = {.on_item = take};
    kube_decoder_t *d = kube_decoder_new(kind, KUBE_DECODE_LIST, &cb, &obj, 0);
    char body[2048];

    snprintf(body, sizeof(body), "{\"kind\":\"%s\",\"metadata\":{},\"items\":[%s]}",
             kube_kind_list_name(kind), item);
    if (!d || kube_decoder_feed(d, body, strlen(body)) < 0 || kube_decoder_finish(d) < 0 || !obj)
        abort(); /* the fixed cache must load */
    kube_decoder_free(d);
    return obj;
}

static void load_cache(void)
{
    if (mig)
        return;
    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, NULL);
    for (int i = 0; i < NPODS; i++)
        pods[i] = load(KUBE_KIND_POD, pod_json[i]);
    for (int i = 0; i < NVMIS; i++)
        vmis[i] = load(KUBE_KIND_VMI, vmi_json[i]);
    mig = load(KUBE_KIND_MIGRATION, mig_json);
}

/* Decides rq over the cache and checks the answer's invariants. */
static void decide_and_encode(const admission_request_t *rq)
{
    const kube_migration_t *const migs[] = {kube_obj_as_migration(mig)};
    drain_evict_input_t in = {.migs = migs, .n_migs = 1, .default_strategy = KUBE_EVICTION_NONE};
    drain_evict_req_t er = {.ns = rq->ns, .name = rq->name, .dry_run = rq->dry_run};
    drain_evict_result_t res;
    buf_t out;

    for (int i = 0; i < NPODS; i++)
        if (strcmp(pods[i]->name, rq->name) == 0)
            in.pod = kube_obj_as_pod(pods[i]);
    in.pod_looked_up = rq->uid[0] & 1;
    in.lookup_failed = rq->uid[0] & 2;
    in.live_migration_gate = !(rq->uid[0] & 4);
    in.vmi = kube_obj_as_vmi(vmis[(unsigned char)rq->uid[1] % NVMIS]);
    drain_eviction_decide(&er, &in, &res);
    if (res.allowed != (res.code == 200) || !res.label || !res.message[0] ||
        (rq->dry_run && res.effects) || (res.effects & ~res.wanted_effects))
        abort();
    buf_init(&out, 1 << 16);
    admission_response_t r = {
        .allowed = res.allowed, .code = res.code, .reason = res.reason, .message = res.message};
    if (admission_encode(rq->uid, &r, &out) < 0)
        abort(); /* the uid and message came from valid UTF-8 */
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    admission_request_t rq;
    char err[256] = "";

    load_cache();
    if (admission_decode((const char *)data, size, &rq, err, sizeof(err)) == 0)
        decide_and_encode(&rq);
    else if (!err[0])
        abort();
    return 0;
}
