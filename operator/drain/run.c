#include "drain/run.h"
#include "drain/controller.h"
#include "kube/http.h"
#include "util/log.h"
#include "web/server.h"

#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds a shutdown waits for writes already sent. */
#define SHUTDOWN_GRACE 10.0

typedef struct run_ctx {
    drain_controller_t *ctl;
    ev_signal sigterm, sigint;
    ev_timer grace, poll;
    bool stopping;
} run_ctx_t;

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_ctx_t *r = w->data;
    (void)revents;
    if (drain_controller_pending_writes(r->ctl) == 0)
        ev_break(loop, EVBREAK_ALL);
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

static bool ready(void *ud)
{
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
        "                           (the seed's kubevirt-config format)\n"
        "  --tls-cert FILE          webhook certificate (PEM, reloaded when it changes)\n"
        "  --tls-key FILE           webhook private key (PEM)\n"
        "  --listen ADDR            webhook HTTPS address (default :8443)\n"
        "  --metrics-listen ADDR    plain HTTP for /metrics, /healthz, /readyz\n"
        "                           (default :8080; \"\" for none)\n");
}

int drain_run_main(kube_config_t *cfg, int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"listen", required_argument, NULL, 'L'},
        {"metrics-listen", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char ns[254] = "", name[254] = "", err[512];
    const char *cert = NULL, *key = NULL, *listen = ":8443", *metrics_listen = ":8080";
    web_server_t *web = NULL;
    run_ctx_t r = {0};
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "+:c:C:K:L:M:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c': {
            const char *slash = strchr(optarg, '/');
            if (!slash || slash == optarg || !slash[1] || strchr(slash + 1, '/') ||
                (size_t)(slash - optarg) >= sizeof(ns) || strlen(slash + 1) >= sizeof(name)) {
                fprintf(stderr, "vmdrain: --config wants NAMESPACE/NAME, not '%s'\n", optarg);
                return 2;
            }
            memcpy(ns, optarg, (size_t)(slash - optarg));
            snprintf(name, sizeof(name), "%s", slash + 1);
            break;
        }
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'L':
            listen = optarg;
            break;
        case 'M':
            metrics_listen = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "vmdrain run: bad option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (!ns[0] || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!cert != !key) {
        fprintf(stderr, "vmdrain: --tls-cert and --tls-key go together\n");
        return 2;
    }
    struct ev_loop *loop = ev_default_loop(0);
    kube_http_t *http = kube_http_new(loop, cfg, err, sizeof(err));
    if (!http) {
        log_error("cannot set up the API client", "error", err);
        return 1;
    }
    drain_controller_opts_t o = {.config_ns = ns, .config_name = name};
    r.ctl = drain_controller_new(loop, http, &o);
    if (!r.ctl) {
        log_error("cannot create the controller: out of memory");
        kube_http_free(http);
        return 1;
    }
    ev_signal_init(&r.sigterm, on_signal, SIGTERM);
    ev_signal_init(&r.sigint, on_signal, SIGINT);
    r.sigterm.data = r.sigint.data = &r;
    ev_signal_start(loop, &r.sigterm);
    ev_signal_start(loop, &r.sigint);
    ev_timer_init(&r.grace, on_grace, SHUTDOWN_GRACE, 0);
    ev_timer_init(&r.poll, on_poll, 0.05, 0.05);
    r.grace.data = r.poll.data = &r;
    if (cert) {
        web_server_opts_t wo = {.listen = listen,
                                .cert_file = cert,
                                .key_file = key,
                                .plain_listen = metrics_listen,
                                .ready = ready,
                                .ready_ud = r.ctl};
        web = web_server_new(loop, &wo);
        if (!web ||
            web_server_route(web, "POST", "/validate-eviction", WEB_ROUTE_JSON,
                             drain_controller_eviction, r.ctl) < 0 ||
            web_server_start(web, err, sizeof(err)) < 0) {
            log_error("cannot start the webhook server", "error", web ? err : "out of memory");
            web_server_free(web);
            drain_controller_free(r.ctl);
            kube_http_free(http);
            return 1;
        }
        log_info("webhook serving", "listen", listen, "metrics", metrics_listen);
    } else {
        log_warn("no --tls-cert/--tls-key: the eviction webhook, /metrics and the probes are off");
    }
    log_info("vmdrain starting", "server", cfg->server, "configmap", name, "namespace", ns);
    drain_controller_start(r.ctl);
    ev_run(loop, 0);
    ev_timer_stop(loop, &r.grace);
    ev_timer_stop(loop, &r.poll);
    ev_signal_stop(loop, &r.sigterm);
    ev_signal_stop(loop, &r.sigint);
    web_server_free(web);
    drain_controller_free(r.ctl);
    kube_http_free(http);
    ev_run(loop, EVRUN_NOWAIT);
    log_info("vmdrain stopped");
    return 0;
}
