/*
 * cmd/webhook — the eviction webhook's handler: the AdmissionReview codec
 * (web/admission) joined to the engine's decision (drain_controller_evict).
 *
 * Part of the composition root: it may call web/ and drain/, and nothing
 * below calls it.
 */
#ifndef VMDRAIN_CMD_WEBHOOK_H
#define VMDRAIN_CMD_WEBHOOK_H

#include "web/server.h"

/* The /validate-eviction handler (a web_handler_fn); ud is the
 * drain_controller_t. Answers 400 naming the bad field of a malformed
 * review, else the AdmissionReview response to the engine's decision. */
void cmd_webhook_eviction(web_request_t *req, void *ud);

/* How the answer to a dry-run review begins, in the warning it carries:
 * "vmdrain (dry run) allowed: MESSAGE" or "... denied: MESSAGE". */
#define WEBHOOK_DRY_RUN_WARNING "vmdrain (dry run)"

#endif
