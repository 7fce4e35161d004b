/*
 * cmd/plugin — `kubectl vmdrain`, the kubectl plugin: status, drain and
 * cancel of node drains, for people at a terminal.
 *
 * This header is the plugin's inside, shared by its files and the unit
 * tests: the command line (plugin.c), the NodeDrain reader
 * (plugin_nodedrain.c), the rendering of a status (plugin_render.c, pure)
 * and the status command's reading and watching (plugin_status.c).
 * The plan command (plugin_plan.c, its rendering in plugin_plan_render.c)
 * asks drain/dryrun what a drain would do. Everything here may call
 * kube/, util/, cmd/cluster and drain/'s pure decisions; nothing in
 * drain/, web/ or the operator's commands calls it.
 */
#ifndef VMDRAIN_CMD_PLUGIN_H
#define VMDRAIN_CMD_PLUGIN_H

#include "cmd/cluster.h"
#include "kube/http.h"
#include "kube/objects.h"
#include "util/buf.h"
#include "util/timefmt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PLUGIN_NAME "kubectl-vmdrain"

enum {
    PLUGIN_EXIT_OK = 0,
    PLUGIN_EXIT_RUNTIME = 1,    /* a failure while running: one line on stderr */
    PLUGIN_EXIT_USAGE = 2,      /* bad flags or arguments, found before the cluster is read */
    PLUGIN_EXIT_INCOMPLETE = 3, /* plan: the drain would not complete */
};

/* The entry point: returns the exit code. */
int cmd_plugin_main(int argc, char **argv);

/* --- the command line (plugin.c) ------------------------------------------ */

/* The flags a command may take (pl_command_t.flags). */
enum {
    PL_F_WATCH = 1 << 0,  /* -w, --watch */
    PL_F_OUTPUT = 1 << 1, /* -o, --output */
    PL_F_REASON = 1 << 2, /* --reason */
    PL_F_CONFIG = 1 << 3, /* --config, --kubevirt */
    PL_F_YAML = 1 << 4,   /* -o yaml (with PL_F_OUTPUT) */
};

/* Where plan reads the configuration by default: the chart's ConfigMap in
 * the namespace vmdrain is installed in, and KubeVirt's CR. */
#define PL_DEFAULT_CONFIG   "vmdrain/vmdrain-config"
#define PL_DEFAULT_KUBEVIRT "kubevirt/kubevirt"

#define PL_REASON_MAX 1024 /* the CRD's spec.reason maxLength */
#define PL_NAME_MAX   253  /* a node name (DNS subdomain) */

typedef struct pl_args pl_args_t;
typedef struct pl_ctx pl_ctx_t;

/* One command of the plugin. Adding one is adding a row to the table in
 * plugin.c. */
typedef struct pl_command {
    const char *name;
    const char *synopsis; /* after the command's name in the usage line */
    const char *summary;  /* one line for --help; NULL keeps it out of --help */
    unsigned flags;       /* PL_F_*: the command's own flags */
    int min_names;        /* NODE arguments */
    int max_names;        /* -1: any number */
    int (*run)(pl_ctx_t *c);
} pl_command_t;

struct pl_args {
    const pl_command_t *cmd;
    const char *kubeconfig;
    const char *context;
    const char *log_level;
    bool watch;
    bool json;
    bool yaml;
    const char *reason;
    const char *config, *kubevirt; /* NAMESPACE/NAME, checked */
    unsigned given;                /* PL_F_* of the flags given */
    char **names;                  /* NODE arguments (point into argv) */
    int n_names;
    bool help, version; /* answered by pl_parse_args() */
};

/* Parses the command line (getopt_long, so flags may come before or after
 * the command; argv is permuted). Returns -1 when the command is to run,
 * else the exit code: 0 after --help or --version (printed on out), 2
 * after a usage error (one line naming the flag or value on err, then a
 * hint). Reads no file. */
int pl_parse_args(int argc, char **argv, pl_args_t *a, FILE *out, FILE *err);

/* Whether s is a valid node name (a DNS-1123 subdomain). */
bool pl_valid_node_name(const char *s);

/* --- talking to the apiserver (plugin.c) ---------------------------------- */

struct ev_loop;

struct pl_ctx {
    pl_args_t args;
    cmd_cluster_t cluster;
    struct ev_loop *loop;
    kube_http_t *http;
    FILE *out; /* stdout */
};

/* A finished request, copied out of kube_result_t. */
typedef struct pl_resp {
    long status; /* 0: no response */
    char *body;  /* NUL-terminated, or NULL */
    size_t body_len;
    char error[512];    /* the transport's one line, "" on 2xx */
    char reason[64];    /* Status.reason of an error answer */
    char message[1024]; /* Status.message of an error answer */
} pl_resp_t;

/* Sends one request and waits for its end on c->loop. body may be NULL.
 * Returns 0 when a response (any status) arrived, -1 when none did (the
 * reason in r->error). Free r with pl_resp_free(). */
int pl_call(pl_ctx_t *c, const char *method, const char *path, const char *body, pl_resp_t *r);
void pl_resp_free(pl_resp_t *r);

/* Prints "kubectl-vmdrain: ..." on stderr and returns PLUGIN_EXIT_RUNTIME. */
int pl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The API paths of nodes and NodeDrains (name NULL: the collection), into
 * out. Returns 0 or -1. */
int pl_node_path(const char *name, buf_t *out);
int pl_nodedrain_path(const char *name, buf_t *out);

/* --- NodeDrain objects (plugin_nodedrain.c) ------------------------------- */

#define PL_ND_MAX_BYTES (1u << 20)  /* one NodeDrain's JSON */
#define PL_ND_LIST_MAX  (16u << 20) /* a NodeDrainList's JSON */
#define PL_ND_MAX_DEPTH 32
#define PL_ND_MAX_VMIS  100 /* the CRD's cap on status.vmis and blockedVMIs */

/* A VMI of status.vmis (or of status.blockedVMIs: state "Blocked"). */
typedef struct pl_vmi {
    char *ns, *name, *state, *migration, *reason; /* never NULL: "" when absent */
    int64_t attempts;                             /* -1 when absent */
} pl_vmi_t;

/* What the plugin reads of a NodeDrain. Strings are never NULL ("" when
 * absent); counts are -1 when absent; times {0, 0} when absent. */
typedef struct pl_nodedrain {
    char *name, *uid, *resource_version, *node_name, *reason;
    char *managed_by; /* label vmdrain.io/managed-by */
    bool deleting;    /* metadata.deletionTimestamp set */
    char *phase, *trigger, *progress, *message;
    int64_t total, migrated, migrating, pending, failed, blocked;
    vd_time_t start, completion, eta;
    pl_vmi_t *vmis;
    size_t n_vmis;
    int64_t vmis_omitted; /* status.vmisOmitted plus the entries beyond PL_ND_MAX_VMIS */
    pl_vmi_t *blocked_vmis;
    size_t n_blocked_vmis;
    bool has_blocked_vmis; /* status.blockedVMIs present (even empty) */
} pl_nodedrain_t;

/* Parses one NodeDrain (a GET's body, at most PL_ND_MAX_BYTES). Returns 0,
 * or -1 with the reason in err (not JSON, nesting deeper than
 * PL_ND_MAX_DEPTH, not a NodeDrain, a field of the wrong type, a negative
 * count, a bad time). out is always initialised; free it with
 * pl_nodedrain_free(). */
int pl_nodedrain_parse(const char *json, size_t len, pl_nodedrain_t *out, char *err, size_t errlen);

/* Parses a NodeDrainList (at most PL_ND_LIST_MAX). Returns 0 with *items
 * (owned by the caller, free with pl_nodedrains_free()) and the list's
 * resourceVersion in rv (rvlen bytes), or -1 with the reason in err. */
int pl_nodedrain_parse_list(const char *json, size_t len, pl_nodedrain_t **items, size_t *n,
                            char *rv, size_t rvlen, char *err, size_t errlen);

typedef enum pl_event {
    PL_EV_ADDED,
    PL_EV_MODIFIED,
    PL_EV_DELETED,
    PL_EV_BOOKMARK, /* only out->resource_version is set */
    PL_EV_ERROR,    /* a Status: its code in *code, the message in err */
} pl_event_t;

/* Parses one watch event line. Returns 0 with its type, or -1 with the
 * reason in err. */
int pl_nodedrain_parse_event(const char *json, size_t len, pl_event_t *type, pl_nodedrain_t *out,
                             long *code, char *err, size_t errlen);

void pl_nodedrain_free(pl_nodedrain_t *nd);
void pl_nodedrains_free(pl_nodedrain_t *items, size_t n);

/* Whether the NodeDrain is a finished record written by vmdrain (label
 * vmdrain.io/managed-by=vmdrain, phase Completed or Cancelled). */
bool pl_nodedrain_finished_record(const pl_nodedrain_t *nd);

/* --- a status, as shown (plugin_render.c, pure) --------------------------- */

#define PL_BAR_WIDTH 10

/* An aligned table, like kubectl's: cells added row by row, ncols a row. */
typedef struct pl_table {
    char **cells;
    size_t n, cap;
    size_t ncols;
    int failed;
} pl_table_t;

/* Adds one cell (a failure is remembered and reported by pl_tbl_write). */
void pl_tbl_add(pl_table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the cells (a table not written). */
void pl_tbl_free(pl_table_t *t);

/* Writes the table (columns 3 spaces apart, the last one unpadded) and
 * frees it. Returns 0 or -1. */
int pl_tbl_write(pl_table_t *t, buf_t *out);

/* One node's drain as shown: from the node's annotations first, the
 * NodeDrain's status second. Strings point into the node and the NodeDrain
 * given to pl_row_build(), and live as long as they do. */
typedef struct pl_row {
    const char *node;
    bool found;     /* the node exists */
    bool has_drain; /* a vmdrain.io/state annotation or a NodeDrain */
    const char *state, *trigger, *message, *blocked_list;
    int64_t migrated, total; /* -1 when unknown */
    int64_t migrating, pending, failed, blocked;
    vd_time_t started, eta;
    const pl_nodedrain_t *nd; /* NULL when there is none */
} pl_row_t;

/* Fills row from node (NULL: not found, name given) and nd (may be NULL). */
void pl_row_build(pl_row_t *row, const char *name, const kube_node_t *node,
                  const pl_nodedrain_t *nd);

/* "[####......] 4/10" into out (n bytes); "-" when total is unknown. */
void pl_progress_bar(int64_t done, int64_t total, int width, char *out, size_t n);

/* kubectl's human duration ("45s", "3m10s", "2h5m", "3d4h") of seconds;
 * a negative value is "0s". */
void pl_human_duration(double seconds, char *out, size_t n);

/* The entries of a vmdrain.io/blocked annotation ("ns/name:reason,...";
 * a last ",+N more" counts N). Returns the count; calls fn (may be NULL)
 * for each listed entry. */
int64_t pl_blocked_each(const char *list,
                        void (*fn)(void *ud, const char *vmi, size_t vmi_len, const char *reason,
                                   size_t reason_len),
                        void *ud);

/* The table of rows as text (a header, one line a row) into out; with
 * detail (exactly one node named), the row's VMIs, blocked VMIs and
 * message follow. now is the time ETAs and ages are measured from.
 * Returns 0 or -1 (the buffer's cap). */
int pl_render_text(const pl_row_t *rows, size_t n, bool detail, int64_t now, buf_t *out);

/* The rows as one JSON document on one line ({"nodes":[...]}) into out,
 * with a newline. Returns 0 or -1. */
int pl_render_json(const pl_row_t *rows, size_t n, int64_t now, buf_t *out);

/* --- the status command (plugin_status.c) ---------------------------------- */

int pl_cmd_status(pl_ctx_t *c);

/* --- the plan command (plugin_plan.c, plugin_plan_render.c) ---------------- */

struct drain_dryrun;
struct drain_config;

/* Where the plan's configuration came from. */
typedef struct pl_plan_src {
    const char *config; /* NAMESPACE/NAME of the ConfigMap */
    bool config_found;
    const char *kubevirt; /* NAMESPACE/NAME of the KubeVirt CR */
    bool kubevirt_found;
} pl_plan_src_t;

/* The plan as text: the nodes, the moves in start order, what would block,
 * what is left to its owner, the capacity check, the predicted time and
 * the verdict. Returns 0 or -1. */
int pl_plan_render_text(const struct drain_dryrun *d, const struct drain_config *cfg,
                        const pl_plan_src_t *src, buf_t *out);

/* The same as one JSON document, with a newline. Returns 0 or -1. */
int pl_plan_render_json(const struct drain_dryrun *d, const struct drain_config *cfg,
                        const pl_plan_src_t *src, buf_t *out);

/* A JSON document (at most 64 MiB, nesting at most 64) as block YAML.
 * Returns 0, or -1 with the reason in err. */
int pl_json_to_yaml(const char *json, size_t len, buf_t *out, char *err, size_t errlen);

int pl_cmd_plan(pl_ctx_t *c);

#endif
