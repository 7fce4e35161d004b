/*
 * cmd/plugin — the kubectl plugin's command line and its writing commands:
 * the global and per-command flags (checked before any kubeconfig is read),
 * the command table, one request at a time to the apiserver, and `drain`
 * and `cancel` (a NodeDrain created or deleted, as kubectl would).
 *
 * Owns the plugin's context (pl_ctx_t). Calls cmd/cluster (the kubeconfig,
 * resolved as vmdrain resolves it), kube/http, kube/resources, kube/decode,
 * util/jsongen and util/log; called by plugin_main.c. The status command
 * lives in plugin_status.c.
 */
#include "cmd/plugin.h"
#include "kube/decode.h"
#include "kube/resources.h"
#include "util/jsongen.h"
#include "util/log.h"

#include <ctype.h>
#include <ev.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef VMDRAIN_VERSION
#define VMDRAIN_VERSION "unknown"
#endif

#define ND_API_VERSION "vmdrain.io/v1alpha1"
#define ND_RESOURCE    "nodedrain.vmdrain.io"

static int cmd_drain(pl_ctx_t *c);
static int cmd_cancel(pl_ctx_t *c);

/* The commands. A new one is a new row (and its function). */
static const pl_command_t commands[] = {
    {"status", "[NODE...] [-w|--watch] [-o json]",
     "show the drains of nodes: state, progress, counts, ETA and age", PL_F_WATCH | PL_F_OUTPUT, 0,
     -1, pl_cmd_status},
    {"drain", "NODE [--reason TEXT]", "drain a node: create its NodeDrain", PL_F_REASON, 1, 1,
     cmd_drain},
    {"cancel", "NODE", "end a node's drain: delete its NodeDrain", 0, 1, 1, cmd_cancel},
    {"plan", "NODE... [-o json|yaml] [--config NS/NAME] [--kubevirt NS/NAME]",
     "what a drain of the nodes would do, and how long it would take; writes nothing",
     PL_F_OUTPUT | PL_F_YAML | PL_F_CONFIG, 1, -1, pl_cmd_plan},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* --- the command line -------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out, "Usage: kubectl vmdrain [OPTIONS] COMMAND [ARGS]\n"
                 "\n"
                 "Drains of nodes that vmdrain turns into paced live migrations of KubeVirt VMs.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].summary)
            fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Options:\n"
                 "  -h, --help             show this help (COMMAND --help: that command's)\n"
                 "      --version          print the version and exit\n"
                 "      --kubeconfig PATH  kubeconfig file (default: $KUBECONFIG, then\n"
                 "                         ~/.kube/config; in a pod: the service account)\n"
                 "      --context NAME     kubeconfig context (default: current-context)\n"
                 "      --log-level LEVEL  debug, info, warn or error (default)\n"
                 "\n"
                 "Exit codes: 0 success, 1 runtime failure, 2 usage error.\n");
}

static void command_usage(const pl_command_t *cmd, FILE *out)
{
    fprintf(out, "Usage: kubectl vmdrain %s %s\n\n%s.\n", cmd->name, cmd->synopsis,
            cmd->summary ? cmd->summary : cmd->name);
    if (cmd->flags & PL_F_WATCH)
        fprintf(out, "\n  -w, --watch        redraw on every change until interrupted\n");
    if ((cmd->flags & PL_F_OUTPUT) && (cmd->flags & PL_F_YAML))
        fprintf(out, "\n  -o, --output json|yaml  the plan as one JSON or YAML document\n");
    else if (cmd->flags & PL_F_OUTPUT)
        fprintf(out, "  -o, --output json  one JSON document (with -w: one per change)\n");
    if (cmd->flags & PL_F_CONFIG)
        fprintf(out,
                "      --config NS/NAME        vmdrain's ConfigMap (default " PL_DEFAULT_CONFIG
                ")\n"
                "      --kubevirt NS/NAME      the KubeVirt CR (default " PL_DEFAULT_KUBEVIRT ")\n"
                "\nExit codes: 0 the drain would complete, 3 it would not (a VMI would\n"
                "block or fail, or the VMIs would not fit), 1 and 2 as for every command.\n");
    if (cmd->flags & PL_F_REASON)
        fprintf(out, "\n      --reason TEXT  why the node is drained (spec.reason)\n");
    fprintf(out, "\nGlobal options: kubectl vmdrain --help\n");
}

static int usage_error(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(FILE *err, const char *fmt, ...)
{
    va_list ap;
    fprintf(err, PLUGIN_NAME ": ");
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fprintf(err, "\nSee 'kubectl vmdrain --help'.\n");
    return PLUGIN_EXIT_USAGE;
}

static const pl_command_t *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool pl_valid_node_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PL_NAME_MAX || !isalnum((unsigned char)s[0]) ||
        !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(islower(ch) || isdigit(ch) || ch == '-' || ch == '.'))
            return false;
        if (ch == '.' && (s[i + 1] == '.' || s[i + 1] == '-' || s[i - 1] == '-'))
            return false;
    }
    return true;
}

enum {
    OPT_KUBECONFIG = 256,
    OPT_CONTEXT,
    OPT_VERSION,
    OPT_REASON,
    OPT_LOG_LEVEL,
    OPT_CONFIG,
    OPT_KUBEVIRT
};

/* Whether s is NAMESPACE/NAME: one slash, neither half empty. */
static bool valid_ref(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash && slash != s && slash[1] && !strchr(slash + 1, '/') && strlen(s) <= 2 * 253;
}

/* Applies one option getopt returned. Returns -1 to go on, else the exit
 * code of a usage error. */
static int apply_option(int opt, char **argv, pl_args_t *a, FILE *err)
{
    switch (opt) {
    case 'h':
        a->help = true;
        return -1;
    case OPT_VERSION:
        a->version = true;
        return -1;
    case OPT_KUBECONFIG:
        a->kubeconfig = optarg;
        return -1;
    case OPT_CONTEXT:
        a->context = optarg;
        return -1;
    case OPT_LOG_LEVEL:
        a->log_level = optarg;
        return -1;
    case 'w':
        a->watch = true;
        a->given |= PL_F_WATCH;
        return -1;
    case 'o':
        a->given |= PL_F_OUTPUT;
        a->json = strcmp(optarg, "json") == 0;
        a->yaml = strcmp(optarg, "yaml") == 0;
        if (a->yaml)
            a->given |= PL_F_YAML;
        else if (!a->json)
            return usage_error(err, "--output wants json or yaml, not '%s'", optarg);
        return -1;
    case OPT_CONFIG:
    case OPT_KUBEVIRT:
        a->given |= PL_F_CONFIG;
        if (!valid_ref(optarg))
            return usage_error(err, "--%s wants NAMESPACE/NAME, not '%s'",
                               opt == OPT_CONFIG ? "config" : "kubevirt", optarg);
        *(opt == OPT_CONFIG ? &a->config : &a->kubevirt) = optarg;
        return -1;
    case OPT_REASON:
        a->given |= PL_F_REASON;
        if (strlen(optarg) > PL_REASON_MAX)
            return usage_error(err, "--reason is longer than %d bytes", PL_REASON_MAX);
        a->reason = optarg;
        return -1;
    case ':':
        return usage_error(err, "flag %s needs a value", argv[optind - 1]);
    default:
        if (optopt)
            return usage_error(err, "unknown flag -%c", optopt);
        return usage_error(err, "unknown flag %s", argv[optind - 1]);
    }
}

/* The name of a PL_F_* flag, for messages. */
static const char *flag_name(unsigned f)
{
    switch (f) {
    case PL_F_WATCH:
        return "--watch";
    case PL_F_OUTPUT:
        return "--output";
    case PL_F_REASON:
        return "--reason";
    case PL_F_CONFIG:
        return "--config or --kubevirt";
    default:
        return "--output yaml";
    }
}

/* Checks the command, its flags and its NODE arguments. */
static int check_command(int argc, char **argv, pl_args_t *a, FILE *out, FILE *err)
{
    if (optind >= argc) {
        if (a->help) {
            usage(out);
            return PLUGIN_EXIT_OK;
        }
        return usage_error(err, "no command given (status, plan, drain or cancel)");
    }
    a->cmd = find_command(argv[optind]);
    if (!a->cmd)
        return usage_error(err, "unknown command '%s'", argv[optind]);
    if (a->help) {
        command_usage(a->cmd, out);
        return PLUGIN_EXIT_OK;
    }
    for (unsigned f = 1; f <= PL_F_YAML; f <<= 1)
        if ((a->given & f) && !(a->cmd->flags & f))
            return usage_error(err, "%s does not take %s", a->cmd->name, flag_name(f));
    a->names = argv + optind + 1;
    a->n_names = argc - optind - 1;
    if (a->n_names < a->cmd->min_names)
        return usage_error(err, "%s wants a NODE", a->cmd->name);
    if (a->cmd->max_names >= 0 && a->n_names > a->cmd->max_names)
        return usage_error(err, "%s takes one NODE, not %d", a->cmd->name, a->n_names);
    for (int i = 0; i < a->n_names; i++)
        if (!pl_valid_node_name(a->names[i]))
            return usage_error(err, "'%s' is not a node name", a->names[i]);
    return -1;
}

int pl_parse_args(int argc, char **argv, pl_args_t *a, FILE *out, FILE *err)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"watch", no_argument, NULL, 'w'},
        {"output", required_argument, NULL, 'o'},
        {"reason", required_argument, NULL, OPT_REASON},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"kubevirt", required_argument, NULL, OPT_KUBEVIRT},
        {NULL, 0, NULL, 0},
    };
    log_level_t level;
    int opt;

    memset(a, 0, sizeof(*a));
    optind = 0; /* GNU getopt: start over, permuting */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hwo:", options, NULL)) != -1) {
        int rc = apply_option(opt, argv, a, err);
        if (rc >= 0)
            return rc;
    }
    if (a->version) {
        fprintf(out, PLUGIN_NAME " %s\n", VMDRAIN_VERSION);
        return PLUGIN_EXIT_OK;
    }
    if (a->log_level && log_parse_level(a->log_level, &level) < 0)
        return usage_error(err, "--log-level wants debug, info, warn or error, not '%s'",
                           a->log_level);
    return check_command(argc, argv, a, out, err);
}

/* --- one request at a time ----------------------------------------------------- */

int pl_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, PLUGIN_NAME ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return PLUGIN_EXIT_RUNTIME;
}

typedef struct call {
    pl_resp_t *r;
    struct ev_loop *loop;
    bool done;
} call_t;

static void on_call_done(void *ud, const kube_result_t *res)
{
    call_t *k = ud;
    pl_resp_t *r = k->r;
    r->status = res->status;
    snprintf(r->error, sizeof(r->error), "%s", res->error ? res->error : "");
    snprintf(r->reason, sizeof(r->reason), "%s", res->reason ? res->reason : "");
    snprintf(r->message, sizeof(r->message), "%s", res->message ? res->message : "");
    if (res->body && (r->body = malloc(res->body_len + 1))) {
        memcpy(r->body, res->body, res->body_len);
        r->body[res->body_len] = '\0';
        r->body_len = res->body_len;
    }
    k->done = true;
    ev_break(k->loop, EVBREAK_ONE);
}

int pl_call(pl_ctx_t *c, const char *method, const char *path, const char *body, pl_resp_t *r)
{
    call_t k = {.r = r, .loop = c->loop};
    memset(r, 0, sizeof(*r));
    kube_req_opts_t o = {.method = method,
                         .path = path,
                         .content_type = body ? "application/json" : NULL,
                         .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .on_done = on_call_done,
                         .ud = &k};
    if (!kube_http_request(c->http, &o)) {
        snprintf(r->error, sizeof(r->error), "%s %s: cannot start the request", method, path);
        return -1;
    }
    while (!k.done)
        ev_run(c->loop, 0);
    return r->status ? 0 : -1;
}

void pl_resp_free(pl_resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

int pl_node_path(const char *name, buf_t *out)
{
    return kube_resource_path(kube_resource_find("nodes"), NULL, name, NULL, out);
}

int pl_nodedrain_path(const char *name, buf_t *out)
{
    return kube_resource_path(kube_resource_of_kind(KUBE_KIND_NODEDRAIN), NULL, name, NULL, out);
}

/* One request on an object: method on the node's or NodeDrain's path. */
static int call_on(pl_ctx_t *c, const char *method, bool nodedrain, const char *name,
                   const char *body, pl_resp_t *r)
{
    buf_t path;
    memset(r, 0, sizeof(*r));
    buf_init(&path, 4096);
    int rc = (nodedrain ? pl_nodedrain_path(name, &path) : pl_node_path(name, &path)) < 0
                 ? -1
                 : pl_call(c, method, path.data, body, r);
    if (!path.data)
        snprintf(r->error, sizeof(r->error), "%s: the path is too long", name);
    buf_free(&path);
    return rc;
}

/* The one line for an answer that is not what was hoped for. */
static int fail_resp(const pl_resp_t *r)
{
    if (r->status == 404 && strcmp(r->reason, "NotFound") != 0)
        return pl_fail("the NodeDrain API (nodedrains.vmdrain.io) is not installed in this "
                       "cluster: apply crds/nodedrains.vmdrain.io.yaml (the chart installs it)");
    if (r->message[0])
        return pl_fail("%s", r->message);
    return pl_fail("%s", r->error[0] ? r->error : "the apiserver gave no answer");
}

/* What get_nodedrain() and create_nodedrain() return besides 0 and an exit
 * code. */
enum { ND_NONE = -1, ND_EXISTS = -2 };

/* GETs the NodeDrain called name into nd. Returns 0, ND_NONE, or the exit
 * code of a failure (reported). */
static int get_nodedrain(pl_ctx_t *c, const char *name, pl_nodedrain_t *nd)
{
    pl_resp_t r;
    char err[512];
    int rc = call_on(c, "GET", true, name, NULL, &r);
    if (rc == 0 && r.status == 404 && strcmp(r.reason, "NotFound") == 0)
        rc = ND_NONE;
    else if (rc < 0 || r.status != 200)
        rc = fail_resp(&r);
    else if (pl_nodedrain_parse(r.body ? r.body : "", r.body_len, nd, err, sizeof(err)) < 0)
        rc = pl_fail("%s", err);
    pl_resp_free(&r);
    return rc;
}

/* GETs node name; *out (NULL: not wanted) gets its projection. Returns 0, or
 * the exit code of a failure (reported: a 404 is `node "N" not found`). */
static int get_node(pl_ctx_t *c, const char *name, kube_obj_t **out)
{
    pl_resp_t r;
    char err[512];
    int rc = call_on(c, "GET", false, name, NULL, &r);
    if (rc == 0 && r.status == 404)
        rc = pl_fail("node \"%s\" not found", name);
    else if (rc < 0 || r.status != 200)
        rc = fail_resp(&r);
    else if (out && !(*out = kube_decode_one(KUBE_KIND_NODE, r.body ? r.body : "", r.body_len, err,
                                             sizeof(err))))
        rc = pl_fail("node \"%s\": %s", name, err);
    pl_resp_free(&r);
    return rc;
}

/* --- drain --------------------------------------------------------------------- */

static char *nodedrain_body(const char *node, const char *reason)
{
    util_jgen_t j;
    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "apiVersion", ND_API_VERSION);
    util_jgen_kv(&j, "kind", "NodeDrain");
    util_jgen_str(&j, "metadata");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "name", node);
    util_jgen_map_close(&j);
    util_jgen_str(&j, "spec");
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "nodeName", node);
    if (reason)
        util_jgen_kv(&j, "reason", reason);
    util_jgen_map_close(&j);
    util_jgen_map_close(&j);
    char *out;
    util_jgen_finish(&j, &out);
    return out;
}

/* POSTs the NodeDrain. Returns 0 when created, ND_EXISTS, or the exit code
 * of a failure (reported). */
static int create_nodedrain(pl_ctx_t *c, const char *body)
{
    pl_resp_t r;
    int rc = call_on(c, "POST", true, NULL, body, &r);
    if (rc == 0 && (r.status == 200 || r.status == 201))
        rc = 0;
    else if (rc == 0 && r.status == 409)
        rc = ND_EXISTS;
    else
        rc = fail_resp(&r);
    pl_resp_free(&r);
    return rc;
}

/* Deletes the NodeDrain nd, on the condition that it is still that one.
 * Returns 0 (also when it is gone already) or the exit code. */
static int delete_record(pl_ctx_t *c, const pl_nodedrain_t *nd)
{
    char body[256];
    pl_resp_t r;
    snprintf(body, sizeof(body),
             "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"preconditions\":"
             "{\"uid\":\"%.64s\"}}",
             nd->uid);
    int rc = call_on(c, "DELETE", true, nd->name, body, &r);
    rc = rc == 0 && (r.status < 300 || r.status == 404 || r.status == 409) ? 0 : fail_resp(&r);
    pl_resp_free(&r);
    return rc;
}

/* A NodeDrain is in the way: a finished record of vmdrain's is replaced
 * (deleted, then created again once its finalizer let it go); any other
 * is a drain in progress. Returns the exit code. */
static int replace_record(pl_ctx_t *c, const char *node, const char *body)
{
    for (int tries = 0; tries < 60; tries++) {
        pl_nodedrain_t nd;
        int rc = get_nodedrain(c, node, &nd);
        if (rc > 0)
            return rc;
        if (rc == 0 && !pl_nodedrain_finished_record(&nd)) {
            rc = pl_fail("node \"%s\" is already draining: NodeDrain %s (trigger %s, phase %s)",
                         node, nd.name, *nd.trigger ? nd.trigger : "nodedrain",
                         *nd.phase ? nd.phase : "not reported yet");
            pl_nodedrain_free(&nd);
            return rc;
        }
        if (rc == 0) {
            rc = nd.deleting ? 0 : delete_record(c, &nd);
            pl_nodedrain_free(&nd);
            if (rc)
                return rc;
        }
        if ((rc = create_nodedrain(c, body)) != ND_EXISTS)
            return rc;
        ev_sleep(0.5); /* the old record waits for its finalizer */
    }
    return pl_fail("node \"%s\": the finished NodeDrain %s was not removed within 30s", node, node);
}

static int cmd_drain(pl_ctx_t *c)
{
    const char *node = c->args.names[0];
    int rc = get_node(c, node, NULL);
    if (rc)
        return rc;
    char *body = nodedrain_body(node, c->args.reason);
    if (!body)
        return pl_fail("--reason is not valid UTF-8");
    rc = create_nodedrain(c, body);
    if (rc == ND_EXISTS)
        rc = replace_record(c, node, body);
    free(body);
    if (rc == 0)
        fprintf(c->out, ND_RESOURCE "/%s created\n", node);
    return rc;
}

/* --- cancel -------------------------------------------------------------------- */

/* The key of the taint that ends a taint drain: a NoSchedule taint whose
 * key holds "drain" other than KubeVirt's default, else the default. */
static const char *drain_taint_key(const kube_node_t *n)
{
    for (size_t i = 0; n && i < n->n_taints; i++)
        if (strcmp(n->taints[i].effect, "NoSchedule") == 0 && strstr(n->taints[i].key, "drain") &&
            strcmp(n->taints[i].key, "kubevirt.io/drain") != 0)
            return n->taints[i].key;
    return "kubevirt.io/drain";
}

/* A drain vmdrain records for the taint or for evictions ends the way it
 * began. Returns the exit code, or -1 when the NodeDrain is to be deleted. */
static int refuse_recorded(pl_ctx_t *c, const char *node, const pl_nodedrain_t *nd)
{
    if (strcmp(nd->managed_by, "vmdrain") != 0 || pl_nodedrain_finished_record(nd))
        return -1;
    if (strcmp(nd->trigger, "eviction") == 0)
        return pl_fail("the drain of node \"%s\" was started by evictions (kubectl drain); it "
                       "ends with: kubectl uncordon %s",
                       node, node);
    if (strcmp(nd->trigger, "taint") != 0)
        return -1;
    kube_obj_t *o = NULL;
    int rc = get_node(c, node, &o);
    if (rc == 0)
        rc = pl_fail("the drain of node \"%s\" was started by the taint; it ends with: kubectl "
                     "taint nodes %s %s-",
                     node, node, drain_taint_key(kube_obj_as_node(o)));
    kube_obj_free(o);
    return rc;
}

static int cmd_cancel(pl_ctx_t *c)
{
    const char *node = c->args.names[0];
    pl_nodedrain_t nd;
    pl_resp_t r;
    int rc = get_nodedrain(c, node, &nd);
    if (rc == ND_NONE)
        return pl_fail("node \"%s\" has no NodeDrain", node);
    if (rc)
        return rc;
    rc = refuse_recorded(c, node, &nd);
    pl_nodedrain_free(&nd);
    if (rc >= 0)
        return rc;
    if (call_on(c, "DELETE", true, node, NULL, &r) == 0 && r.status < 300)
        rc = 0;
    else if (r.status == 404)
        rc = pl_fail("node \"%s\" has no NodeDrain", node);
    else
        rc = fail_resp(&r);
    pl_resp_free(&r);
    if (rc == 0)
        fprintf(c->out, ND_RESOURCE "/%s deleted\n", node);
    return rc;
}

/* --- the entry point ------------------------------------------------------------- */

int cmd_plugin_main(int argc, char **argv)
{
    pl_ctx_t c = {.out = stdout};
    char err[512];
    log_level_t level = LOG_LEVEL_ERROR;

    int rc = pl_parse_args(argc, argv, &c.args, stdout, stderr);
    if (rc >= 0)
        return rc;
    if (c.args.log_level)
        log_parse_level(c.args.log_level, &level);
    log_setup(level, LOG_FORMAT_TEXT, stderr);
    c.cluster.kubeconfig = c.args.kubeconfig;
    c.cluster.context = c.args.context;
    if (cmd_cluster_load_err(&c.cluster, err, sizeof(err)) < 0)
        return pl_fail("%s", err);
    c.loop = ev_default_loop(0);
    c.http = kube_http_new(c.loop, &c.cluster.cfg, err, sizeof(err));
    if (!c.http)
        rc = pl_fail("%s", err);
    else
        rc = c.args.cmd->run(&c);
    kube_http_free(c.http);
    if (c.loop)
        ev_run(c.loop, EVRUN_NOWAIT); /* let the transport release its handles */
    cmd_cluster_free(&c.cluster);
    return rc;
}
