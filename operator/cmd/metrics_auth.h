/*
 * cmd/metrics_auth — the guard of /metrics under --metrics-auth: the
 * bearer token of the request (web/) checked by a TokenReview and a
 * SubjectAccessReview (kube/authreview) before the metrics are rendered.
 *
 * Part of the composition root: it may call web/ and kube/, and nothing
 * below calls it.
 */
#ifndef VMDRAIN_CMD_METRICS_AUTH_H
#define VMDRAIN_CMD_METRICS_AUTH_H

#include "web/server.h"

/* The metrics guard (web_server_opts_t.metrics_guard); ud is the
 * kube_authz_t. Answers 401 without a usable bearer token or when the
 * apiserver does not accept it, 403 when its user may not GET the path,
 * 429 when too many checks are in flight, 503 when the apiserver could not
 * say, else the metrics. */
void cmd_metrics_guard(web_request_t *req, void *ud);

#endif
