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
#include "util/jsongen.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct debug_ctx {
    struct ev_loop *loop;
    informer_t *inf;
    const kube_resource_t *res;
    bool list_only;
    bool json; /* -o json: one JSON object per line */
    bool synced;
    int exit_code;
    double request_timeout; /* seconds until the first complete LIST; 0: none */
    ev_timer deadline;
    char last_error[512]; /* the last request error, for the timeout's message */
} debug_ctx_t;

/* The fields worth seeing of each kind. */
typedef struct field {
    const char *key;
    char value[256];
} field_t;

#define DEBUG_FIELDS 5

static size_t field(field_t *f, size_t i, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t field(field_t *f, size_t i, const char *key, const char *fmt, ...)
{
    va_list ap;
    f[i].key = key;
    va_start(ap, fmt);
    vsnprintf(f[i].value, sizeof(f[i].value), fmt, ap);
    va_end(ap);
    return i + 1;
}

/* Fills f (DEBUG_FIELDS entries) with obj's fields; returns how many. */
static size_t describe(const kube_obj_t *obj, field_t *f)
{
    const kube_node_t *node = kube_obj_as_node(obj);
    const kube_pod_t *pod = kube_obj_as_pod(obj);
    const kube_vmi_t *vmi = kube_obj_as_vmi(obj);
    const kube_migration_t *mig = kube_obj_as_migration(obj);
    const kube_configmap_t *cm = kube_obj_as_configmap(obj);
    size_t n = 0;

    if (node) {
        n = field(f, n, "unschedulable", "%s", node->unschedulable ? "true" : "false");
        n = field(f, n, "taints", "%zu", node->n_taints);
        n = field(f, n, "ready", "%s", kube_cond_name(node->ready));
    } else if (pod) {
        n = field(f, n, "node", "%s", pod->node_name);
        n = field(f, n, "phase", "%s", kube_pod_phase_name(pod->phase));
    } else if (vmi) {
        n = field(f, n, "node", "%s", vmi->node_name);
        n = field(f, n, "phase", "%s", kube_vmi_phase_name(vmi->phase));
        n = field(f, n, "strategy", "%s", kube_eviction_strategy_name(vmi->eviction_strategy));
        n = field(f, n, "migratable", "%s", kube_cond_name(vmi->migratable));
        n = field(f, n, "memory", "%" PRId64,
                  vmi->guest_memory ? vmi->guest_memory : vmi->memory_request);
    } else if (mig) {
        n = field(f, n, "vmi", "%s", mig->vmi_name);
        n = field(f, n, "phase", "%s", kube_migration_phase_name(mig->phase));
    } else if (cm) {
        n = field(f, n, "keys", "%zu", cm->n_data);
    }
    return n;
}

/* One line: "WHAT KEY k=v ...", or with -o json one JSON object with
 * "event" and the same fields. */
static void print_line(const debug_ctx_t *c, const char *what, const char *key, const field_t *f,
                       size_t n)
{
    if (!c->json) {
        printf("%s %s", what, key[0] ? key : c->res->name);
        for (size_t i = 0; i < n; i++)
            printf(" %s=%s", f[i].key, f[i].value);
        printf("\n");
        return;
    }
    util_jgen_t j;
    const char *text;
    size_t len;
    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "event", what);
    util_jgen_kv(&j, key[0] ? "object" : "resource", key[0] ? key : c->res->name);
    for (size_t i = 0; i < n; i++)
        util_jgen_kv(&j, f[i].key, f[i].value);
    util_jgen_map_close(&j);
    if (util_jgen_get(&j, &text, &len) == 0)
        printf("%.*s\n", (int)len, text);
    else
        fprintf(stderr, "vmdrain: %s %s: not valid UTF-8, not printed\n", what, key);
    util_jgen_free(&j);
}

static void print_obj(const debug_ctx_t *c, const char *what, const kube_obj_t *obj)
{
    char key[512];
    field_t f[DEBUG_FIELDS + 1];
    field(f, 0, "rv", "%s", obj->resource_version);
    size_t n = describe(obj, f + 1) + 1;
    print_line(c, what, kube_obj_key(obj, key, sizeof(key)), f, n);
}

static void on_add(void *ud, const kube_obj_t *obj)
{
    debug_ctx_t *c = ud;
    if (!c->list_only)
        print_obj(c, "ADDED", obj);
}

static void on_update(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    print_obj(ud, "MODIFIED", obj);
}

static void on_delete(void *ud, const kube_obj_t *obj)
{
    print_obj(ud, "DELETED", obj);
}

static int print_cached(void *ud, const kube_obj_t *obj)
{
    print_obj(ud, "CACHE", obj);
    return 0;
}

/* Prints the whole cache, then a summary line. */
static void dump(debug_ctx_t *c, const char *end)
{
    informer_stats_t st;
    field_t f[9];
    informer_foreach(c->inf, print_cached, c);
    informer_get_stats(c->inf, &st);
    size_t n = field(f, 0, "objects", "%zu", informer_len(c->inf));
    n = field(f, n, "rv", "%s", informer_resource_version(c->inf));
    n = field(f, n, "method", "%s", informer_loaded_by(c->inf));
    n = field(f, n, "lists", "%lu", st.lists);
    n = field(f, n, "streams", "%lu", st.streams);
    n = field(f, n, "relists", "%lu", st.relists);
    n = field(f, n, "watches", "%lu", st.watches);
    n = field(f, n, "events", "%lu", st.events);
    n = field(f, n, "skipped", "%lu", st.skipped);
    print_line(c, end, "", f, n);
    fflush(stdout);
}

static void on_synced(void *ud)
{
    debug_ctx_t *c = ud;
    c->synced = true;
    c->last_error[0] = '\0';
    ev_timer_stop(c->loop, &c->deadline);
    if (c->list_only) {
        dump(c, "LISTED");
        ev_break(c->loop, EVBREAK_ALL);
        return;
    }
    field_t f[2];
    field(f, 0, "objects", "%zu", informer_len(c->inf));
    field(f, 1, "rv", "%s", informer_resource_version(c->inf));
    print_line(c, "SYNCED", "", f, 2);
    fflush(stdout);
}

static void on_error(void *ud, const char *msg, long status)
{
    debug_ctx_t *c = ud;
    /* the informer's log line has said it (with the retry); kept for
     * the --request-timeout message */
    snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
    /* a LIST that is refused will not be allowed on retry either */
    if (c->list_only && (status == 401 || status == 403 || status == 404)) {
        fprintf(stderr, "vmdrain: %s\n", msg);
        c->exit_code = 1;
        ev_break(c->loop, EVBREAK_ALL);
    }
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    debug_ctx_t *c = w->data;
    (void)revents;
    fprintf(
        stderr, "vmdrain: the whole state of %s did not arrive within --request-timeout %gs%s%s\n",
        c->res->name, c->request_timeout, c->last_error[0] ? "; last error: " : "", c->last_error);
    c->exit_code = 1;
    ev_break(loop, EVBREAK_ALL);
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
    fprintf(
        out,
        "Usage: vmdrain [OPTIONS] debug list|watch RESOURCE [-n NAMESPACE] [-l SELECTOR]\n"
        "                                        [--page-size N] [--request-timeout D] [-o json]\n"
        "                                        [--initial-list auto|cache|paged]\n"
        "\n"
        "-o, --output FORMAT  text (default: one line per object or event) or json\n"
        "                     (one JSON object per line, the same fields)\n"
        "--request-timeout D  fail (exit 1) when the whole state did not arrive within D\n"
        "                     (default 0: wait, retrying with backoff)\n"
        "--initial-list MODE  how the whole state is loaded: auto (default: streamed by\n"
        "                     a WATCH, else a LIST from the apiserver's watch cache),\n"
        "                     cache (that LIST only) or paged (LISTs from etcd in pages)\n"
        "\n"
        "list   loads RESOURCE whole and prints every object, then exits.\n"
        "watch  loads, then WATCHes RESOURCE, printing ADDED/MODIFIED/DELETED lines;\n"
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
        {"request-timeout", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"initial-list", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    char *end;
    long n;

    optind = 0; /* GNU getopt: start over */
    while ((opt = getopt_long(argc, argv, ":n:l:o:h", options, NULL)) != -1) {
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
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "vmdrain: -o wants text or json, not '%s'\n", optarg);
                return 2;
            }
            c->json = strcmp(optarg, "json") == 0;
            break;
        case 't':
            if (cmd_parse_duration_flag("--request-timeout", optarg, true, &c->request_timeout) < 0)
                return 2;
            break;
        case 'I':
            if (cmd_parse_initial_list(optarg, &o->initial) < 0)
                return 2;
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
    ev_timer_init(&c.deadline, on_deadline, c.request_timeout, 0);
    c.deadline.data = &c;
    if (c.request_timeout > 0)
        ev_timer_start(c.loop, &c.deadline);
    informer_start(c.inf);
    ev_run(c.loop, 0);
    ev_timer_stop(c.loop, &c.deadline);
    for (int i = 0; i < 3; i++)
        ev_signal_stop(c.loop, &sigs[i]);
    informer_free(c.inf);
    kube_http_free(http);
    /* let the transport release its handles */
    ev_run(c.loop, EVRUN_NOWAIT);
    return c.exit_code;
}
