/*
 * debug — `vmdrain debug list|watch RESOURCE`: one informer on one
 * resource, every object and event printed as a line, for looking at what
 * the operator would see.
 *
 * Owns its command-line state. Calls kube/informer, kube/http,
 * kube/resources and util/log; called by the composition root.
 */
#include "cmd/debug.h"
#include "kube/informer.h"
#include "util/log.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct debug_ctx {
    struct ev_loop *loop;
    informer_t *inf;
    const kube_resource_t *res;
    bool list_only;
    int exit_code;
} debug_ctx_t;

/* Appends the fields worth seeing of each kind to a line. */
static void describe(const kube_obj_t *obj, char *out, size_t n)
{
    const kube_node_t *node = kube_obj_as_node(obj);
    const kube_pod_t *pod = kube_obj_as_pod(obj);
    const kube_vmi_t *vmi = kube_obj_as_vmi(obj);
    const kube_migration_t *mig = kube_obj_as_migration(obj);
    const kube_configmap_t *cm = kube_obj_as_configmap(obj);

    out[0] = '\0';
    if (node)
        snprintf(out, n, " unschedulable=%s taints=%zu ready=%s",
                 node->unschedulable ? "true" : "false", node->n_taints,
                 kube_cond_name(node->ready));
    else if (pod)
        snprintf(out, n, " node=%s phase=%s", pod->node_name, kube_pod_phase_name(pod->phase));
    else if (vmi)
        snprintf(out, n, " node=%s phase=%s strategy=%s migratable=%s memory=%" PRId64,
                 vmi->node_name, kube_vmi_phase_name(vmi->phase),
                 kube_eviction_strategy_name(vmi->eviction_strategy),
                 kube_cond_name(vmi->migratable),
                 vmi->guest_memory ? vmi->guest_memory : vmi->memory_request);
    else if (mig)
        snprintf(out, n, " vmi=%s phase=%s", mig->vmi_name, kube_migration_phase_name(mig->phase));
    else if (cm)
        snprintf(out, n, " keys=%zu", cm->n_data);
}

static void print_obj(const char *what, const kube_obj_t *obj)
{
    char key[512], extra[512];
    describe(obj, extra, sizeof(extra));
    printf("%s %s rv=%s%s\n", what, kube_obj_key(obj, key, sizeof(key)), obj->resource_version,
           extra);
}

static void on_add(void *ud, const kube_obj_t *obj)
{
    debug_ctx_t *c = ud;
    if (!c->list_only)
        print_obj("ADDED", obj);
}

static void on_update(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)ud;
    (void)old;
    print_obj("MODIFIED", obj);
}

static void on_delete(void *ud, const kube_obj_t *obj)
{
    (void)ud;
    print_obj("DELETED", obj);
}

static int print_cached(void *ud, const kube_obj_t *obj)
{
    (void)ud;
    print_obj("CACHE", obj);
    return 0;
}

/* Prints the whole cache, then a summary line. */
static void dump(debug_ctx_t *c, const char *end)
{
    informer_stats_t st;
    informer_foreach(c->inf, print_cached, c);
    informer_get_stats(c->inf, &st);
    printf("%s %s objects=%zu rv=%s lists=%lu relists=%lu watches=%lu events=%lu skipped=%lu\n",
           end, c->res->name, informer_len(c->inf), informer_resource_version(c->inf), st.lists,
           st.relists, st.watches, st.events, st.skipped);
    fflush(stdout);
}

static void on_synced(void *ud)
{
    debug_ctx_t *c = ud;
    if (c->list_only) {
        dump(c, "LISTED");
        ev_break(c->loop, EVBREAK_ALL);
        return;
    }
    printf("SYNCED %s objects=%zu rv=%s\n", c->res->name, informer_len(c->inf),
           informer_resource_version(c->inf));
    fflush(stdout);
}

static void on_error(void *ud, const char *msg, long status)
{
    debug_ctx_t *c = ud;
    fprintf(stderr, "vmdrain: %s\n", msg);
    /* a LIST that is refused will not be allowed on retry either */
    if (c->list_only && (status == 401 || status == 403 || status == 404)) {
        c->exit_code = 1;
        ev_break(c->loop, EVBREAK_ALL);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    debug_ctx_t *c = w->data;
    (void)revents;
    if (w->signum == SIGUSR1) {
        dump(c, "CACHE-END");
        return;
    }
    ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: vmdrain [OPTIONS] debug list|watch RESOURCE [-n NAMESPACE] [-l SELECTOR]\n"
            "                                        [--page-size N]\n"
            "\n"
            "list   LISTs RESOURCE (paginated) and prints every object, then exits.\n"
            "watch  LISTs, then WATCHes RESOURCE, printing ADDED/MODIFIED/DELETED lines;\n"
            "       SIGUSR1 prints the cache, SIGINT or SIGTERM ends it.\n"
            "\n"
            "RESOURCE: %s\n",
            kube_resource_names());
}

/* Parses the command line into o and c. Returns -1 to go on, else the
 * exit code (after --help or a usage error). */
static int parse_args(int argc, char **argv, informer_opts_t *o, debug_ctx_t *c)
{
    static const struct option options[] = {
        {"namespace", required_argument, NULL, 'n'},
        {"selector", required_argument, NULL, 'l'},
        {"page-size", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    char *end;
    long n;

    optind = 0; /* GNU getopt: start over */
    while ((opt = getopt_long(argc, argv, ":n:l:h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            o->ns = optarg;
            break;
        case 'l':
            o->label_selector = optarg;
            break;
        case 'p':
            errno = 0;
            n = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || n <= 0 || n > INT_MAX) {
                fprintf(stderr, "vmdrain: --page-size wants a positive number, not '%s'\n", optarg);
                return 2;
            }
            o->page_size = (int)n;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "vmdrain debug: bad option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2 ||
        (strcmp(argv[optind], "list") != 0 && strcmp(argv[optind], "watch") != 0)) {
        usage(stderr);
        return 2;
    }
    c->list_only = strcmp(argv[optind], "list") == 0;
    c->res = kube_resource_find(argv[optind + 1]);
    if (!c->res) {
        fprintf(stderr, "vmdrain: unknown resource '%s' (known: %s)\n", argv[optind + 1],
                kube_resource_names());
        return 2;
    }
    o->resource = c->res;
    return -1;
}

int cmd_debug_main(cmd_cluster_t *cluster, int argc, char **argv)
{
    informer_opts_t o = {0};
    debug_ctx_t c = {0};
    char err[512];
    int rc = parse_args(argc, argv, &o, &c);

    if (rc >= 0)
        return rc;
    if (cmd_cluster_load(cluster) < 0)
        return 1;
    kube_config_t *cfg = &cluster->cfg;
    /* one line per event, readable as it happens even through a pipe */
    setvbuf(stdout, NULL, _IOLBF, 0);
    c.loop = ev_default_loop(0);
    kube_http_t *http = kube_http_new(c.loop, cfg, err, sizeof(err));
    if (!http) {
        fprintf(stderr, "vmdrain: %s\n", err);
        return 1;
    }
    informer_handlers_t h = {.on_add = on_add,
                             .on_update = on_update,
                             .on_delete = on_delete,
                             .on_synced = on_synced,
                             .on_error = on_error};
    c.inf = informer_new(http, c.loop, &o, &h, &c);
    ev_signal sigs[3];
    const int signums[] = {SIGINT, SIGTERM, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        ev_signal_init(&sigs[i], on_signal, signums[i]);
        sigs[i].data = &c;
        ev_signal_start(c.loop, &sigs[i]);
    }
    informer_start(c.inf);
    ev_run(c.loop, 0);
    for (int i = 0; i < 3; i++)
        ev_signal_stop(c.loop, &sigs[i]);
    informer_free(c.inf);
    kube_http_free(http);
    /* let the transport release its handles */
    ev_run(c.loop, EVRUN_NOWAIT);
    return c.exit_code;
}
