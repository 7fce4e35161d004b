/*
 * check — `vmdrain check`: what the chart's `helm test` hook runs. It asks
 * a running vmdrain's /readyz, and sends a dry-run Eviction of a
 * virt-launcher pod through the API server to see that vmdrain's webhook
 * answered it (the answer to a dry run travels back as a warning, see
 * cmd/webhook.h). Each check prints one line; the exit code says whether
 * all passed.
 *
 * Owns its command-line state. Calls kube/http and cmd/cluster; called by
 * the composition root.
 */
#include "cmd/check.h"
#include "cmd/webhook.h"
#include "kube/http.h"
#include "util/strutil.h"

#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK_CA_MAX      (1u << 20) /* bytes of the --ca file */
#define CHECK_RETRY_EVERY 2.0        /* seconds between /readyz attempts */

typedef struct check_args {
    const char *readyz; /* URL, or NULL */
    const char *ca;     /* file, or NULL */
    char ns[CMD_REF_MAX], pod[CMD_REF_MAX];
    bool eviction;
    double timeout;
} check_args_t;

/* One request run to its end on a loop of its own. */
typedef struct check_call {
    struct ev_loop *loop;
    bool done;
    long status;
    char error[512];
    char warnings[KUBE_HTTP_WARNINGS_MAX];
} check_call_t;

static void usage(FILE *out)
{
    fprintf(out, "Usage: vmdrain [OPTIONS] check [--readyz URL [--ca FILE]] [--eviction NS/POD]\n"
                 "                               [--timeout DURATION]\n"
                 "\n"
                 "Checks a running vmdrain, as the chart's `helm test` hook does:\n"
                 "  --readyz URL      GET URL (http:// or https://) until it answers 200\n"
                 "  --ca FILE         the PEM CA that signed an https URL's certificate\n"
                 "  --eviction NS/POD a dry-run Eviction of NS/POD (a virt-launcher-... name)\n"
                 "                    through the API server; passes when vmdrain's webhook\n"
                 "                    answered it. The pod need not exist; nothing is evicted.\n"
                 "  --timeout D       how long each check may take (default 30s)\n"
                 "\n"
                 "Exit codes: 0 every check passed, 1 one failed, 2 usage error.\n");
}

/* A namespace or pod name: what goes into the path and the body as is. */
static bool dns_name(const char *s)
{
    return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == strlen(s);
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, check_args_t *a)
{
    static const struct option options[] = {
        {"readyz", required_argument, NULL, 'r'},   {"ca", required_argument, NULL, 'c'},
        {"eviction", required_argument, NULL, 'e'}, {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int opt;
    a->timeout = 30;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'r':
            a->readyz = optarg;
            break;
        case 'c':
            a->ca = optarg;
            break;
        case 'e':
            if (cmd_parse_object_ref("--eviction", optarg, a->ns, a->pod) < 0)
                return 2;
            if (!dns_name(a->ns) || !dns_name(a->pod)) {
                fprintf(stderr,
                        "vmdrain: --eviction wants NAMESPACE/NAME of lower-case "
                        "letters, digits, '-' and '.', not '%s'\n",
                        optarg);
                return 2;
            }
            a->eviction = true;
            break;
        case 't':
            if (cmd_parse_duration_flag("--timeout", optarg, false, &a->timeout) < 0)
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "vmdrain check: bad option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (!a->readyz && !a->eviction)) {
        fprintf(stderr, "vmdrain check: nothing to check: give --readyz, --eviction or both\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

static void on_done(void *ud, const kube_result_t *res)
{
    check_call_t *c = ud;
    c->done = true;
    c->status = res->status;
    snprintf(c->error, sizeof(c->error), "%s", res->error ? res->error : "");
    snprintf(c->warnings, sizeof(c->warnings), "%s", res->warnings ? res->warnings : "");
    ev_break(c->loop, EVBREAK_ALL);
}

/* Sends one request and runs the loop until it ended. Returns 0, or -1
 * with err set when no client could be made. */
static int call(kube_config_t *cfg, const kube_req_opts_t *o, check_call_t *c, char *err,
                size_t errlen)
{
    kube_http_t *h = kube_http_new(c->loop, cfg, err, errlen);
    if (!h)
        return -1;
    kube_req_opts_t ro = *o;
    ro.on_done = on_done;
    ro.ud = c;
    c->done = false;
    kube_http_request(h, &ro);
    while (!c->done)
        ev_run(c->loop, 0);
    kube_http_free(h);
    ev_run(c->loop, EVRUN_NOWAIT);
    return 0;
}

/* Reads the --ca file (a regular file of at most CHECK_CA_MAX bytes). */
static int read_ca(const char *path, kube_config_t *cfg, char *err, size_t errlen)
{
    struct stat st;
    FILE *fp = fopen(path, "r");
    if (!fp || fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (size_t)st.st_size > CHECK_CA_MAX) {
        util_set_err(err, errlen, "--ca %s: not a readable file of 1 to %u bytes", path,
                     CHECK_CA_MAX);
        if (fp)
            fclose(fp);
        return -1;
    }
    cfg->ca_pem = calloc(1, (size_t)st.st_size + 1);
    cfg->ca_pem_len = cfg->ca_pem ? fread(cfg->ca_pem, 1, (size_t)st.st_size, fp) : 0;
    fclose(fp);
    if (!cfg->ca_pem_len || !strstr(cfg->ca_pem, "-----BEGIN ")) {
        util_set_err(err, errlen, "--ca %s: no PEM certificate in it", path);
        return -1;
    }
    return 0;
}

/* Splits URL into the server (scheme://authority) and the path. */
static int split_url(const char *url, char *server, size_t n, const char **path)
{
    const char *rest = strncmp(url, "https://", 8) == 0  ? url + 8
                       : strncmp(url, "http://", 7) == 0 ? url + 7
                                                         : NULL;
    const char *slash = rest ? strchr(rest, '/') : NULL;
    if (!slash || slash == rest || (size_t)(slash - url) >= n)
        return -1;
    memcpy(server, url, (size_t)(slash - url));
    server[slash - url] = '\0';
    *path = slash;
    return 0;
}

/* GETs the readyz URL until it answers 200 or the timeout passed. */
static int check_readyz(struct ev_loop *loop, const check_args_t *a)
{
    char server[512], err[512];
    const char *path;
    kube_config_t cfg = {0};
    check_call_t c = {.loop = loop};
    int rc = 1;

    if (split_url(a->readyz, server, sizeof(server), &path) < 0) {
        fprintf(stderr,
                "vmdrain check: --readyz wants http://HOST:PORT/PATH or https://..., "
                "not '%s'\n",
                a->readyz);
        return 2;
    }
    cfg.server = server;
    if (a->ca && read_ca(a->ca, &cfg, err, sizeof(err)) < 0) {
        printf("readyz FAIL: %s\n", err);
        free(cfg.ca_pem);
        return 1;
    }
    ev_tstamp deadline = ev_time() + a->timeout;
    kube_req_opts_t o = {.path = path, .verb = "get", .timeout = 5};
    for (;;) {
        if (call(&cfg, &o, &c, err, sizeof(err)) < 0) {
            printf("readyz FAIL: %s\n", err);
            break;
        }
        if (c.status == 200) {
            printf("readyz ok: %s answered 200\n", a->readyz);
            rc = 0;
            break;
        }
        if (ev_time() + CHECK_RETRY_EVERY > deadline) {
            printf("readyz FAIL: %s: %s (for %.0f s)\n", a->readyz, c.error, a->timeout);
            break;
        }
        ev_sleep(CHECK_RETRY_EVERY);
    }
    free(cfg.ca_pem);
    return rc;
}

/* A dry-run Eviction of ns/pod; passes when the response carries the
 * warning vmdrain's webhook gives a dry run. */
static int check_eviction(struct ev_loop *loop, cmd_cluster_t *cluster, const check_args_t *a)
{
    char path[2 * CMD_REF_MAX + 64], body[2 * CMD_REF_MAX + 128], err[512];
    check_call_t c = {.loop = loop};

    if (cmd_cluster_load_err(cluster, err, sizeof(err)) < 0) {
        printf("eviction FAIL: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/eviction?dryRun=All", a->ns,
             a->pod);
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"},\"deleteOptions\":{\"dryRun\":[\"All\"]}}",
             a->pod, a->ns);
    kube_req_opts_t o = {.method = "POST",
                         .path = path,
                         .content_type = "application/json",
                         .body = body,
                         .body_len = strlen(body),
                         .verb = "create",
                         .timeout = a->timeout};
    if (call(&cluster->cfg, &o, &c, err, sizeof(err)) < 0) {
        printf("eviction FAIL: %s\n", err);
        return 1;
    }
    const char *w = strstr(c.warnings, WEBHOOK_DRY_RUN_WARNING);
    if (w) {
        printf("eviction ok: vmdrain's webhook answered the dry run of %s/%s: %.*s\n", a->ns,
               a->pod, (int)strcspn(w, "\n"), w);
        return 0;
    }
    printf("eviction FAIL: the API server answered the dry run of %s/%s without vmdrain's "
           "webhook (status %ld%s%s): is the ValidatingWebhookConfiguration installed and "
           "vmdrain running?\n",
           a->ns, a->pod, c.status, c.error[0] ? ": " : "", c.error);
    return 1;
}

int cmd_check_main(cmd_cluster_t *cluster, int argc, char **argv)
{
    check_args_t a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct ev_loop *loop = ev_default_loop(0);
    int failed = 0;
    if (a.readyz) {
        rc = check_readyz(loop, &a);
        if (rc == 2)
            return 2;
        failed |= rc;
    }
    if (a.eviction)
        failed |= check_eviction(loop, cluster, &a);
    return failed ? 1 : 0;
}
