/*
 * cmd/webhook — see webhook.h. Calls web/admission (the codec) and
 * drain_controller_evict(); called by the HTTP server for
 * /validate-eviction.
 */
#include "cmd/webhook.h"
#include "drain/controller.h"
#include "web/admission.h"
#include "util/strutil.h"

#include <stdio.h>
#include <stdlib.h>

#define WEBHOOK_WARNING_MAX 1024

/* An AdmissionReview waiting for the engine's answer. */
typedef struct webhook_call {
    web_request_t *req;
    char uid[129];
    bool dry_run;
} webhook_call_t;

/* A dry run's answer also travels as a warning, which the API server hands
 * to the client (kubectl drain --dry-run=server prints it; `vmdrain check`
 * looks for it): what vmdrain would have answered, allowed or not. */
static void on_answer(void *ud, const drain_evict_result_t *res)
{
    webhook_call_t *call = ud;
    char warning[WEBHOOK_WARNING_MAX];
    admission_response_t r = {
        .allowed = res->allowed, .code = res->code, .reason = res->reason, .message = res->message};

    if (call->dry_run) {
        util_set_err(warning, sizeof(warning), "%s %s: %s", WEBHOOK_DRY_RUN_WARNING,
                     res->allowed ? "allowed" : "denied", res->message);
        r.warning = warning;
    }
    admission_respond(call->req, call->uid, &r);
    free(call);
}

void cmd_webhook_eviction(web_request_t *req, void *ud)
{
    drain_controller_t *c = ud;
    admission_request_t rq;
    size_t len;
    const char *body = web_request_body(req, &len);
    char err[256];
    webhook_call_t *call;

    if (admission_decode(body, len, &rq, err, sizeof(err)) < 0) {
        web_respond_text(req, 400, err);
        return;
    }
    call = calloc(1, sizeof(*call));
    if (!call) {
        web_respond_text(req, 500, "out of memory");
        return;
    }
    call->req = req;
    snprintf(call->uid, sizeof(call->uid), "%s", rq.uid);
    call->dry_run = rq.dry_run;
    drain_evict_req_t er = {.ns = rq.ns, .name = rq.name, .dry_run = rq.dry_run};
    drain_controller_evict(c, &er, rq.username, on_answer, call);
}
