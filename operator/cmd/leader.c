/*
 * cmd/leader — see leader.h: the leader-election flags, the identity
 * (POD_NAME or the hostname, and a random suffix), and the elector on its
 * own transport, whose start and stop turn the engine's writes on and off.
 *
 * May call: kube/leader, kube/http, drain/controller, cmd/cluster, util/.
 */
#include "cmd/leader.h"
#include "cmd/cluster.h"
#include "kube/http.h"
#include "kube/leader.h"
#include "util/log.h"
#include "util/num.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SA_NAMESPACE_FILE "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

enum { OPT_ELECT = 0x100, OPT_LEASE, OPT_DURATION, OPT_DEADLINE, OPT_RETRY };

const struct option cmd_leader_options[] = {
    {"leader-elect", optional_argument, NULL, OPT_ELECT},
    {"leader-elect-lease", required_argument, NULL, OPT_LEASE},
    {"leader-elect-lease-duration", required_argument, NULL, OPT_DURATION},
    {"leader-elect-renew-deadline", required_argument, NULL, OPT_DEADLINE},
    {"leader-elect-retry-period", required_argument, NULL, OPT_RETRY},
    {NULL, 0, NULL, 0},
};

struct cmd_leader {
    kube_http_t *http;
    kube_leader_t *elector;
    drain_controller_t *ctl;
};

void cmd_leader_flags_init(cmd_leader_flags_t *f)
{
    *f = (cmd_leader_flags_t){.enabled = true,
                              .lease_duration = KUBE_LEADER_LEASE_DURATION,
                              .renew_deadline = KUBE_LEADER_RENEW_DEADLINE,
                              .retry_period = KUBE_LEADER_RETRY_PERIOD};
    snprintf(f->name, sizeof(f->name), "vmdrain");
}

static int take_duration(const char *flag, const char *arg, double *out)
{
    double v;
    if (num_parse_duration(arg, &v) < 0 || v < 0.1 || v > 3600) {
        fprintf(stderr,
                "vmdrain: %s wants a duration from 100ms to 1h (15s, 1.5s, 500ms), "
                "not '%s'\n",
                flag, arg);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_leader_take_flag(cmd_leader_flags_t *f, int opt, const char *arg)
{
    switch (opt) {
    case OPT_ELECT:
        return cmd_parse_bool_flag("--leader-elect", arg, &f->enabled);
    case OPT_LEASE:
        return cmd_parse_object_ref("--leader-elect-lease", arg, f->ns, f->name);
    case OPT_DURATION:
        return take_duration("--leader-elect-lease-duration", arg, &f->lease_duration);
    case OPT_DEADLINE:
        return take_duration("--leader-elect-renew-deadline", arg, &f->renew_deadline);
    case OPT_RETRY:
        return take_duration("--leader-elect-retry-period", arg, &f->retry_period);
    default:
        return 1;
    }
}

/* The first line of the service account's namespace file into out, or "". */
static void sa_namespace(char *out, size_t n)
{
    FILE *fp = fopen(SA_NAMESPACE_FILE, "r");
    out[0] = '\0';
    if (!fp)
        return;
    if (!fgets(out, (int)n, fp))
        out[0] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    fclose(fp);
}

int cmd_leader_flags_finish(cmd_leader_flags_t *f, const char *config_ns)
{
    char err[256];
    if (!f->ns[0]) {
        const char *env = getenv("POD_NAMESPACE");
        if (env && *env && strlen(env) < sizeof(f->ns))
            snprintf(f->ns, sizeof(f->ns), "%s", env);
        else
            sa_namespace(f->ns, sizeof(f->ns));
        if (!f->ns[0])
            snprintf(f->ns, sizeof(f->ns), "%s", config_ns);
    }
    if (kube_leader_check_times(f->lease_duration, f->renew_deadline, f->retry_period, err,
                                sizeof(err)) < 0) {
        fprintf(stderr, "vmdrain: leader election: %s\n", err);
        return -1;
    }
    return 0;
}

/* POD_NAME (else the hostname), "_", 8 random hex digits. */
static void make_identity(char *out, size_t n)
{
    char host[64] = "";
    unsigned char rnd[4] = {0};
    const char *name = getenv("POD_NAME");
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
        unsigned v = (unsigned)rand();
        memcpy(rnd, &v, sizeof(rnd));
    }
    if (fd >= 0)
        close(fd);
    if (!name || !*name) {
        if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
            snprintf(host, sizeof(host), "vmdrain");
        name = host;
    }
    snprintf(out, n, "%.100s_%02x%02x%02x%02x", name, rnd[0], rnd[1], rnd[2], rnd[3]);
}

static void on_start(void *ud)
{
    cmd_leader_t *l = ud;
    drain_controller_set_leading(l->ctl, true);
}

static void on_stop(void *ud)
{
    cmd_leader_t *l = ud;
    drain_controller_set_leading(l->ctl, false);
}

cmd_leader_t *cmd_leader_start(struct ev_loop *loop, kube_config_t *cfg,
                               const cmd_leader_flags_t *f, drain_controller_t *ctl)
{
    char err[512], identity[KUBE_LEADER_IDENTITY_MAX];
    cmd_leader_t *l = calloc(1, sizeof(*l));

    if (!l) {
        log_error("cannot start the leader election: out of memory");
        return NULL;
    }
    l->ctl = ctl;
    make_identity(identity, sizeof(identity));
    /* its own transport, without a rate limit: renews never queue behind
     * the engine's requests */
    l->http = kube_http_new_opts(loop, cfg, NULL, err, sizeof(err));
    kube_leader_opts_t o = {.ns = f->ns,
                            .name = f->name,
                            .identity = identity,
                            .lease_duration = f->lease_duration,
                            .renew_deadline = f->renew_deadline,
                            .retry_period = f->retry_period,
                            .on_start = on_start,
                            .on_stop = on_stop,
                            .ud = l};
    if (l->http)
        l->elector = kube_leader_new(loop, l->http, &o, err, sizeof(err));
    if (!l->elector) {
        log_error("cannot start the leader election", "error", err);
        cmd_leader_free(l);
        return NULL;
    }
    kube_leader_start(l->elector);
    return l;
}

void cmd_leader_release(cmd_leader_t *l, void (*done)(void *ud), void *ud)
{
    kube_leader_release(l->elector, done, ud);
}

void cmd_leader_free(cmd_leader_t *l)
{
    if (!l)
        return;
    kube_http_free(l->http); /* ends the elector's request first */
    kube_leader_free(l->elector);
    free(l);
}
