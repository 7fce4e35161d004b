/*
 * cmd/run — `vmdrain run`: the composition root of the operator.
 *
 * Parses the run flags (before any I/O), builds the API client, the drain
 * engine and the HTTP server, wires the webhook route to the engine
 * (cmd/webhook.c), serves /metrics and the probes whether or not the
 * webhook is enabled, and runs the loop until SIGTERM or SIGINT.
 *
 * With leader election (cmd/leader.c) the engine writes only while this
 * replica leads; at shutdown it stops, lets sent writes finish, then
 * releases the Lease so the next replica takes over at once.
 *
 * May call: drain/controller, web/server, cmd/webhook, cmd/leader,
 * kube/http, util/.
 */
#include "cmd/leader.h"
#include "cmd/metrics_auth.h"
#include "cmd/run.h"
#include "cmd/webhook.h"
#include "drain/controller.h"
#include "kube/authreview.h"
#include "kube/http.h"
#include "util/log.h"
#include "util/num.h"
#include "util/procstat.h"
#include "web/server.h"

#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* Seconds a shutdown waits for writes already sent. */
#define SHUTDOWN_GRACE 10.0

/* The Makefile's; vmdrain_build_info carries them. */
#ifndef VMDRAIN_VERSION
#define VMDRAIN_VERSION "unknown"
#endif
#ifndef VMDRAIN_REVISION
#define VMDRAIN_REVISION "unknown"
#endif

typedef struct run_flags {
    char ns[CMD_REF_MAX], name[CMD_REF_MAX];
    char kv_ns[CMD_REF_MAX], kv_name[CMD_REF_MAX]; /* --kubevirt; "" when not given */
    const char *cert, *key, *client_ca, *listen, *metrics_listen;
    bool metrics_auth, metrics_tls;
    kube_http_opts_t http;      /* the request rate limit */
    double records_ttl;         /* --nodedrain-retention */
    informer_initial_t initial; /* --initial-list */
    cmd_leader_flags_t leader;
} run_flags_t;

typedef struct run_ctx {
    struct ev_loop *loop;
    drain_controller_t *ctl;
    cmd_leader_t *leader; /* NULL with --leader-elect=false */
    ev_signal sigterm, sigint;
    ev_timer grace, poll;
    bool stopping, releasing;
} run_ctx_t;

static void on_released(void *ud)
{
    run_ctx_t *r = ud;
    ev_break(r->loop, EVBREAK_ALL);
}

/* Once the writes sent have finished: the Lease is released, then the
 * loop ends. */
static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_ctx_t *r = w->data;
    (void)revents;
    if (drain_controller_pending_writes(r->ctl) != 0 || r->releasing)
        return;
    if (!r->leader) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    r->releasing = true;
    cmd_leader_release(r->leader, on_released, r);
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_ctx_t *r = w->data;
    char n[16];
    (void)revents;
    snprintf(n, sizeof(n), "%d", drain_controller_pending_writes(r->ctl));
    log_warn("shutdown grace period over, writes abandoned", "pending", n);
    ev_break(loop, EVBREAK_ALL);
}

/* SIGTERM: stop watching and reconciling, let writes in flight finish. */
static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    run_ctx_t *r = w->data;
    (void)revents;
    if (r->stopping) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    r->stopping = true;
    log_info("shutting down", "signal", w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
    drain_controller_stop(r->ctl);
    ev_timer_start(loop, &r->grace);
    ev_timer_start(loop, &r->poll);
}

static bool ready(void *ud, char *note, size_t n)
{
    drain_controller_warning(ud, note, n);
    return drain_controller_ready(ud);
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: vmdrain [OPTIONS] run --config NAMESPACE/NAME [--tls-cert FILE --tls-key FILE]\n"
        "\n"
        "Runs the operator: watches nodes for the drain taint and evacuates their VMIs\n"
        "by live migration; with a certificate, also serves the eviction webhook.\n"
        "\n"
        "  --config NAMESPACE/NAME  ConfigMap with feature-gates and migrations\n"
        "                           (KubeVirt's kubevirt-config format, see README)\n"
        "  --kubevirt NAMESPACE/NAME  the KubeVirt CR: its limits, timeouts and eviction\n"
        "                           strategy apply where the ConfigMap sets none, and its\n"
        "                           nodeDrainTaintKey tells what KubeVirt acts on\n"
        "  --tls-cert FILE          webhook certificate (PEM, reloaded when it changes)\n"
        "  --tls-key FILE           webhook private key (PEM)\n"
        "  --client-ca FILE         CA certificates (PEM, reloaded when it changes): every\n"
        "                           webhook client must present a certificate they signed,\n"
        "                           as the apiserver does through its admission config\n"
        "  --listen ADDR            webhook HTTPS address (default :8443)\n"
        "  --metrics-listen ADDR    HTTP for /metrics, /healthz, /readyz (HTTPS with\n"
        "                           --metrics-tls), served\n"
        "                           with or without the webhook (default :8080; \"\" for none)\n"
        "  --metrics-tls[=BOOL]     serve that listener over TLS with the webhook's\n"
        "                           certificate (no client certificate asked)\n"
        "  --metrics-auth[=BOOL]    /metrics only for a bearer token that a TokenReview\n"
        "                           accepts and whose user a SubjectAccessReview allows to\n"
        "                           get the path /metrics; the probes stay open\n"
        "  --kube-api-qps N         requests a second to the apiserver, watches excepted\n"
        "                           (default 50, as client-go; 0 for no limit)\n"
        "  --kube-api-burst N       requests sent at once before the rate applies\n"
        "                           (default 100)\n"
        "  --nodedrain-retention DURATION  how long the NodeDrain record of a drain by\n"
        "                           the taint or by evictions is kept once the drain\n"
        "                           ended (default 24h; 30s, 15m, 2h)\n" CMD_INITIAL_LIST_USAGE
            CMD_LEADER_USAGE);
}

/* Parses a number flag into out, within [min, max]. Returns 0 or -1
 * (message printed). */
static int parse_number(const char *flag, const char *arg, double min, double max, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "vmdrain: %s wants a number from %g to %g, not '%s'\n", flag, min, max,
                arg);
        return -1;
    }
    *out = v;
    return 0;
}

/* One flag's value into f. Returns 0, or -1 for a bad value (printed). */
static int take_flag(int opt, const char *arg, run_flags_t *f)
{
    double v;

    switch (opt) {
    case 'c':
        return cmd_parse_object_ref("--config", arg, f->ns, f->name);
    case 'k':
        return cmd_parse_object_ref("--kubevirt", arg, f->kv_ns, f->kv_name);
    case 'C':
        f->cert = arg;
        return 0;
    case 'K':
        f->key = arg;
        return 0;
    case 'A':
        if (!*arg) {
            fprintf(stderr, "vmdrain: --client-ca wants a file\n");
            return -1;
        }
        f->client_ca = arg;
        return 0;
    case 'L':
        f->listen = arg;
        return 0;
    case 'M':
        f->metrics_listen = arg;
        return 0;
    case 'S':
        return cmd_parse_bool_flag("--metrics-tls", arg, &f->metrics_tls);
    case 'Z':
        return cmd_parse_bool_flag("--metrics-auth", arg, &f->metrics_auth);
    case 'Q':
        return parse_number("--kube-api-qps", arg, 0, 1e6, &f->http.qps);
    case 'B':
        if (parse_number("--kube-api-burst", arg, 1, 1e6, &v) < 0)
            return -1;
        if (v != (double)(int)v) {
            fprintf(stderr, "vmdrain: --kube-api-burst wants a whole number, not '%s'\n", arg);
            return -1;
        }
        f->http.burst = (int)v;
        return 0;
    case 'R':
        if (num_parse_duration(arg, &f->records_ttl) < 0 || f->records_ttl < 1 ||
            f->records_ttl > 366 * 86400) {
            fprintf(stderr,
                    "vmdrain: --nodedrain-retention wants a duration from 1s to 366 days "
                    "(30s, 15m, 2h), not '%s'\n",
                    arg);
            return -1;
        }
        return 0;
    case 'I':
        return cmd_parse_initial_list(arg, &f->initial);
    default:
        return cmd_leader_take_flag(&f->leader, opt, arg) == 0 ? 0 : -1;
    }
}

/* Parses argv into f. Returns -1 to go on, else the exit code. */
static int parse_flags(int argc, char **argv, run_flags_t *f)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"kubevirt", required_argument, NULL, 'k'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"client-ca", required_argument, NULL, 'A'},
        {"listen", required_argument, NULL, 'L'},
        {"metrics-listen", required_argument, NULL, 'M'},
        {"metrics-tls", optional_argument, NULL, 'S'},
        {"metrics-auth", optional_argument, NULL, 'Z'},
        {"kube-api-qps", required_argument, NULL, 'Q'},
        {"kube-api-burst", required_argument, NULL, 'B'},
        {"nodedrain-retention", required_argument, NULL, 'R'},
        {"initial-list", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
    };
    enum { N_OWN = sizeof(options) / sizeof(options[0]) };
    struct option all[N_OWN + CMD_LEADER_OPTIONS + 1];
    int opt;

    memcpy(all, options, sizeof(options));
    memcpy(all + N_OWN, cmd_leader_options, sizeof(all[0]) * (CMD_LEADER_OPTIONS + 1));
    *f = (run_flags_t){.listen = ":8443",
                       .metrics_listen = ":8080",
                       .http = KUBE_HTTP_OPTS_DEFAULT,
                       .records_ttl = 86400};
    cmd_leader_flags_init(&f->leader);
    optind = 0;
    while ((opt = getopt_long(argc, argv, "+:c:k:C:K:A:L:M:Q:B:R:h", all, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == '?' || opt == ':') {
            fprintf(stderr, "vmdrain run: bad option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        if (take_flag(opt, optarg, f) < 0)
            return 2;
    }
    if (!f->ns[0] || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!f->cert != !f->key) {
        fprintf(stderr, "vmdrain: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (f->client_ca && !f->cert) {
        fprintf(stderr, "vmdrain: --client-ca needs the webhook (--tls-cert and --tls-key)\n");
        return 2;
    }
    if (f->metrics_tls && (!f->cert || !f->metrics_listen || !*f->metrics_listen)) {
        fprintf(stderr, "vmdrain: --metrics-tls needs --tls-cert and --tls-key (its "
                        "certificate) and a --metrics-listen address\n");
        return 2;
    }
    if (f->leader.enabled && cmd_leader_flags_finish(&f->leader, f->ns) < 0)
        return 2;
    return -1;
}

/* The HTTP server: the webhook (with a certificate) and the plain listener
 * for /metrics and the probes. Returns NULL when there is nothing to serve
 * (*failed false) or it cannot start (*failed true, logged). */
static web_server_t *start_web(struct ev_loop *loop, const run_flags_t *f, drain_controller_t *ctl,
                               kube_authz_t *authz, bool *failed)
{
    const char *plain = f->metrics_listen && *f->metrics_listen ? f->metrics_listen : NULL;
    web_server_opts_t wo = {.listen = f->cert ? f->listen : NULL,
                            .cert_file = f->cert,
                            .key_file = f->key,
                            .client_ca_file = f->client_ca,
                            .plain_listen = plain,
                            .plain_tls = f->metrics_tls,
                            .metrics_guard = authz ? cmd_metrics_guard : NULL,
                            .metrics_guard_ud = authz,
                            .ready = ready,
                            .ready_ud = ctl};
    char err[512];
    web_server_t *web;

    *failed = false;
    if (!f->cert && !plain)
        return NULL;
    web = web_server_new(loop, &wo);
    if (!web ||
        (f->cert && web_server_route(web, "POST", "/validate-eviction", WEB_ROUTE_JSON,
                                     cmd_webhook_eviction, ctl) < 0) ||
        web_server_start(web, err, sizeof(err)) < 0) {
        log_error("cannot start the HTTP server", "error", web ? err : "out of memory");
        web_server_free(web);
        *failed = true;
        return NULL;
    }
    if (f->metrics_auth && !f->metrics_tls)
        log_warn("--metrics-auth without --metrics-tls: bearer tokens reach /metrics on the "
                 "metrics port in the clear",
                 "metrics", plain ? plain : "off");
    if (f->cert)
        log_info("webhook serving", "listen", f->listen, "metrics", plain ? plain : "off",
                 "metrics_scheme", f->metrics_tls ? "https" : "http", "metrics_auth",
                 f->metrics_auth ? "TokenReview and SubjectAccessReview" : "none", "client_ca",
                 f->client_ca ? f->client_ca : "none: any client may connect");
    else
        log_warn("no --tls-cert/--tls-key: the eviction webhook is off", "metrics",
                 plain ? plain : "off");
    return web;
}

/* Seeds the jitter of retries and watch timeouts, so that replicas and
 * restarts do not retry in step. */
static void seed_jitter(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    srand((unsigned)tv.tv_sec ^ (unsigned)tv.tv_usec ^ ((unsigned)getpid() << 16));
}

/* Runs the loop until a signal, then lets writes in flight finish. */
static void run_loop(struct ev_loop *loop, run_ctx_t *r)
{
    ev_signal_init(&r->sigterm, on_signal, SIGTERM);
    ev_signal_init(&r->sigint, on_signal, SIGINT);
    r->sigterm.data = r->sigint.data = r;
    ev_signal_start(loop, &r->sigterm);
    ev_signal_start(loop, &r->sigint);
    ev_timer_init(&r->grace, on_grace, SHUTDOWN_GRACE, 0);
    ev_timer_init(&r->poll, on_poll, 0.05, 0.05);
    r->grace.data = r->poll.data = r;
    drain_controller_start(r->ctl);
    ev_run(loop, 0);
    ev_timer_stop(loop, &r->grace);
    ev_timer_stop(loop, &r->poll);
    ev_signal_stop(loop, &r->sigterm);
    ev_signal_stop(loop, &r->sigint);
}

int cmd_run_main(cmd_cluster_t *cluster, int argc, char **argv)
{
    run_flags_t f;
    run_ctx_t r = {0};
    char err[512];
    bool failed;
    int rc = parse_flags(argc, argv, &f);

    if (rc >= 0)
        return rc;
    if (cmd_cluster_load(cluster) < 0)
        return 1;
    kube_config_t *cfg = &cluster->cfg;
    seed_jitter();
    if (procstat_register(VMDRAIN_VERSION, VMDRAIN_REVISION) < 0)
        log_warn("the build and process metrics are incomplete: out of memory");
    struct ev_loop *loop = ev_default_loop(0);
    kube_http_t *http = kube_http_new_opts(loop, cfg, &f.http, err, sizeof(err));
    if (!http) {
        log_error("cannot set up the API client", "error", err);
        return 1;
    }
    drain_controller_opts_t o = {.config_ns = f.ns,
                                 .config_name = f.name,
                                 .kubevirt_ns = f.kv_ns,
                                 .kubevirt_name = f.kv_name,
                                 .follower = f.leader.enabled,
                                 .records_ttl = f.records_ttl,
                                 .initial = f.initial};
    r.loop = loop;
    r.ctl = drain_controller_new(loop, http, &o);
    if (!r.ctl) {
        log_error("cannot create the controller: out of memory");
        kube_http_free(http);
        return 1;
    }
    kube_authz_t *authz = f.metrics_auth ? kube_authz_new(loop, http) : NULL;
    web_server_t *web = NULL;
    if (f.metrics_auth && !authz) {
        log_error("cannot set up the metrics guard: out of memory");
        failed = true;
    } else {
        web = start_web(loop, &f, r.ctl, authz, &failed);
    }
    if (!failed && f.leader.enabled)
        failed = !(r.leader = cmd_leader_start(loop, cfg, &f.leader, r.ctl));
    if (failed) {
        web_server_free(web);
        kube_authz_free(authz);
        kube_http_free(http);
        drain_controller_free(r.ctl);
        return 1;
    }
    log_info("vmdrain starting", "server", cfg->server, "configmap", f.name, "namespace", f.ns,
             "leader_election", f.leader.enabled ? "on" : "off");
    run_loop(loop, &r);
    cmd_leader_free(r.leader);
    /* the transport first: it ends every request still pending with one
     * on_done, whose context (the controller's) must still be alive */
    drain_controller_stop(r.ctl);
    kube_http_free(http); /* answers the metrics checks in flight */
    drain_controller_free(r.ctl);
    web_server_free(web);
    kube_authz_free(authz);
    ev_run(loop, EVRUN_NOWAIT);
    log_info("vmdrain stopped");
    return 0;
}
