/*
 * The kubectl plugin's pure parts: the command line (usage errors exit 2),
 * node names, the progress bar, human durations, the blocked list, rows
 * from a node and its NodeDrain, the text and JSON rendering, and the
 * NodeDrain reader on good and bad input.
 */
#include <criterion/criterion.h>

#include "../testobj.h"
#include "cmd/plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* --- fixtures ------------------------------------------------------------ */

static kube_obj_t *node_obj;
static pl_nodedrain_t nd;
static buf_t out;

static void setup(void)
{
    buf_init(&out, 1 << 20);
    memset(&nd, 0, sizeof(nd));
}

static void teardown(void)
{
    kube_obj_free(node_obj);
    node_obj = NULL;
    pl_nodedrain_free(&nd);
    buf_free(&out);
}

TestSuite(plugin, .init = setup, .fini = teardown, .timeout = 10);

/* --- the command line ------------------------------------------------------ */

typedef struct parsed {
    int rc;
    pl_args_t a;
    char err[1024];
    char out[4096];
} parsed_t;

/* Parses the words of line (space-separated, at most 15) after the
 * program's name. */
static parsed_t *parse(const char *line)
{
    static parsed_t p;
    static char words[2048];
    static char *argv[16];
    int argc = 1;
    memset(argv, 0, sizeof(argv));
    argv[0] = "kubectl-vmdrain";
    snprintf(words, sizeof(words), "%s", line);
    for (char *w = strtok(words, " "); w && argc < 15; w = strtok(NULL, " "))
        argv[argc++] = w;
    memset(&p, 0, sizeof(p));
    FILE *o = fmemopen(p.out, sizeof(p.out) - 1, "w");
    FILE *e = fmemopen(p.err, sizeof(p.err) - 1, "w");
    p.rc = pl_parse_args(argc, argv, &p.a, o, e);
    fclose(o);
    fclose(e);
    return &p;
}

static void usage_error(const char *line, const char *want)
{
    parsed_t *p = parse(line);
    cr_expect_eq(p->rc, 2, "'%s': rc %d, want 2", line, p->rc);
    cr_expect(strstr(p->err, want) != NULL, "'%s': '%s' lacks '%s'", line, p->err, want);
}

Test(plugin, usage_errors_exit_2_naming_the_flag)
{
    usage_error("status --bogus", "unknown flag --bogus");
    usage_error("status -x", "unknown flag -x");
    usage_error("--bogus status", "unknown flag --bogus");
    usage_error("status -o yaml", "status does not take --output yaml");
    usage_error("plan n1 -o wide", "--output wants json or yaml, not 'wide'");
    usage_error("plan", "plan wants a NODE");
    usage_error("plan n1 --config cm", "--config wants NAMESPACE/NAME, not 'cm'");
    usage_error("plan n1 --kubevirt /kv", "--kubevirt wants NAMESPACE/NAME, not '/kv'");
    usage_error("drain n1 --config a/b", "drain does not take --config or --kubevirt");
    usage_error("status --output", "flag --output needs a value");
    usage_error("status --kubeconfig", "flag --kubeconfig needs a value");
    usage_error("", "no command given");
    usage_error("frobnicate", "unknown command 'frobnicate'");
    usage_error("drain", "drain wants a NODE");
    usage_error("drain n1 n2", "drain takes one NODE, not 2");
    usage_error("cancel", "cancel wants a NODE");
    usage_error("cancel n1 --reason x", "cancel does not take --reason");
    usage_error("drain n1 -w", "drain does not take --watch");
    usage_error("status --reason x", "status does not take --reason");
    usage_error("status Node_1", "'Node_1' is not a node name");
    usage_error("--log-level loud status", "--log-level wants debug, info, warn or error");
}

Test(plugin, plan_takes_nodes_an_output_and_the_configuration)
{
    parsed_t *p = parse("plan n1 n2 -o yaml --config ns/cm --kubevirt kv/kubevirt");
    cr_assert_eq(p->rc, -1, "%s", p->err);
    cr_expect_str_eq(p->a.cmd->name, "plan");
    cr_expect_eq(p->a.n_names, 2);
    cr_expect(p->a.yaml && !p->a.json);
    cr_expect_str_eq(p->a.config, "ns/cm");
    cr_expect_str_eq(p->a.kubevirt, "kv/kubevirt");
}

Test(plugin, reason_longer_than_the_crd_allows_is_a_usage_error)
{
    char line[1200] = "drain n1 --reason ";
    memset(line + strlen(line), 'x', PL_REASON_MAX + 1);
    usage_error(line, "--reason is longer than 1024 bytes");
}

Test(plugin, flags_before_or_after_the_command)
{
    parsed_t *p = parse("--kubeconfig /k status n1 n2 -w -ojson --context c");
    cr_assert_eq(p->rc, -1, "%s", p->err);
    cr_expect_str_eq(p->a.cmd->name, "status");
    cr_expect_str_eq(p->a.kubeconfig, "/k");
    cr_expect_str_eq(p->a.context, "c");
    cr_expect(p->a.watch);
    cr_expect(p->a.json);
    cr_assert_eq(p->a.n_names, 2);
    cr_expect_str_eq(p->a.names[0], "n1");
    cr_expect_str_eq(p->a.names[1], "n2");

    p = parse("drain --reason kernel-update worker-1.example");
    cr_assert_eq(p->rc, -1, "%s", p->err);
    cr_expect_str_eq(p->a.cmd->name, "drain");
    cr_expect_str_eq(p->a.reason, "kernel-update");
    cr_expect_str_eq(p->a.names[0], "worker-1.example");
}

Test(plugin, help_and_version_exit_0)
{
    parsed_t *p = parse("--help");
    cr_expect_eq(p->rc, 0);
    cr_expect(strstr(p->out, "  status ") && strstr(p->out, "  drain ") &&
              strstr(p->out, "  cancel ") && strstr(p->out, "  plan "));
    p = parse("plan -h");
    cr_expect_eq(p->rc, 0);
    cr_expect(strstr(p->out, "--config NS/NAME") && strstr(p->out, "Exit codes: 0 the drain"), "%s",
              p->out);
    p = parse("drain -h");
    cr_expect_eq(p->rc, 0);
    cr_expect(strstr(p->out, "--reason TEXT") != NULL, "%s", p->out);
    p = parse("--version");
    cr_expect_eq(p->rc, 0);
    cr_expect(strncmp(p->out, "kubectl-vmdrain ", 16) == 0, "%s", p->out);
}

Test(plugin, node_names)
{
    cr_expect(pl_valid_node_name("worker-1"));
    cr_expect(pl_valid_node_name("a.b-c.d"));
    cr_expect(!pl_valid_node_name(""));
    cr_expect(!pl_valid_node_name("-a"));
    cr_expect(!pl_valid_node_name("a."));
    cr_expect(!pl_valid_node_name("A"));
    cr_expect(!pl_valid_node_name("a/b"));
    cr_expect(!pl_valid_node_name("a..b"));
    char long_name[300];
    memset(long_name, 'a', 254);
    long_name[254] = '\0';
    cr_expect(!pl_valid_node_name(long_name));
}

/* --- small pieces ---------------------------------------------------------- */

static const char *bar(int64_t done, int64_t total)
{
    static char s[64];
    pl_progress_bar(done, total, PL_BAR_WIDTH, s, sizeof(s));
    return s;
}

Test(plugin, progress_bar)
{
    cr_expect_str_eq(bar(2, 4), "[#####.....] 2/4");
    cr_expect_str_eq(bar(0, 7), "[..........] 0/7");
    cr_expect_str_eq(bar(1, 3), "[###.......] 1/3");
    cr_expect_str_eq(bar(3, 3), "[##########] 3/3");
    cr_expect_str_eq(bar(5, 3), "[##########] 5/3");
    cr_expect_str_eq(bar(0, 0), "[##########] 0/0");
    cr_expect_str_eq(bar(-1, -1), "-");
}

Test(plugin, human_durations_are_kubectls)
{
    const struct {
        double seconds;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {45, "45s"},
        {119, "119s"},
        {120, "2m"},
        {190, "3m10s"},
        {600, "10m"},
        {179 * 60, "179m"},
        {3 * 3600, "3h"},
        {2 * 3600 + 300, "125m"},
        {3 * 3600 + 300, "3h5m"},
        {10 * 3600, "10h"},
        {3 * 86400 + 4 * 3600, "3d4h"},
        {30 * 86400, "30d"},
        {-5, "0s"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char t[32];
        pl_human_duration(cases[i].seconds, t, sizeof(t));
        cr_expect_str_eq(t, cases[i].want, "%.0f s", cases[i].seconds);
    }
}

static char seen[512];

static void collect(void *ud, const char *vmi, size_t vmi_len, const char *reason,
                    size_t reason_len)
{
    (void)ud;
    snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen), "[%.*s|%.*s]", (int)vmi_len, vmi,
             (int)reason_len, reason);
}

Test(plugin, blocked_list_entries_and_more)
{
    seen[0] = '\0';
    cr_expect_eq(
        pl_blocked_each("ns/a:NotMigratable,ns/b:DisksNotLiveMigratable,+3 more", collect, NULL),
        5);
    cr_expect_str_eq(seen, "[ns/a|NotMigratable][ns/b|DisksNotLiveMigratable]");
    seen[0] = '\0';
    cr_expect_eq(pl_blocked_each("ns/c", collect, NULL), 1);
    cr_expect_str_eq(seen, "[ns/c|]");
    cr_expect_eq(pl_blocked_each("", NULL, NULL), 0);
    cr_expect_eq(pl_blocked_each(NULL, NULL, NULL), 0);
}

/* --- the NodeDrain reader ---------------------------------------------------- */

#define ND_GOOD                                                                                    \
    "{\"apiVersion\":\"vmdrain.io/v1alpha1\",\"kind\":\"NodeDrain\","                              \
    "\"metadata\":{\"name\":\"n1\",\"uid\":\"u-1\",\"resourceVersion\":\"7\","                     \
    "\"labels\":{\"vmdrain.io/managed-by\":\"vmdrain\"}},"                                         \
    "\"spec\":{\"nodeName\":\"n1\",\"reason\":\"kernel\"},"                                        \
    "\"status\":{\"phase\":\"Draining\",\"trigger\":\"taint\",\"progress\":\"1/4\","               \
    "\"total\":4,\"migrated\":1,\"migrating\":1,\"pending\":1,\"failed\":0,\"blocked\":1,"         \
    "\"message\":\"migrating ns/vm-b\",\"startTime\":\"2030-01-01T00:00:00Z\","                    \
    "\"estimatedCompletionTime\":\"2030-01-01T00:05:10Z\","                                        \
    "\"vmis\":[{\"namespace\":\"ns\",\"name\":\"vm-b\",\"state\":\"Migrating\",\"attempts\":1,"    \
    "\"migration\":\"vmdrain-0d3f2c1a-1\"},{\"namespace\":\"ns\",\"name\":\"vm-c\","               \
    "\"state\":\"Pending\"}],"                                                                     \
    "\"blockedVMIs\":[{\"namespace\":\"ns\",\"name\":\"vm-d\",\"reason\":"                         \
    "\"DisksNotLiveMigratable\"}]}}"

static int parse_nd(const char *json, char *err, size_t n)
{
    pl_nodedrain_free(&nd);
    return pl_nodedrain_parse(json, strlen(json), &nd, err, n);
}

Test(plugin, nodedrain_good)
{
    char err[256];
    cr_assert_eq(parse_nd(ND_GOOD, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(nd.name, "n1");
    cr_expect_str_eq(nd.uid, "u-1");
    cr_expect_str_eq(nd.node_name, "n1");
    cr_expect_str_eq(nd.reason, "kernel");
    cr_expect_str_eq(nd.managed_by, "vmdrain");
    cr_expect_str_eq(nd.phase, "Draining");
    cr_expect_str_eq(nd.trigger, "taint");
    cr_expect_eq(nd.total, 4);
    cr_expect_eq(nd.failed, 0);
    cr_expect_eq(nd.blocked, 1);
    cr_expect_eq(nd.eta.sec, 1893456310);
    cr_assert_eq(nd.n_vmis, 2);
    cr_expect_str_eq(nd.vmis[0].migration, "vmdrain-0d3f2c1a-1");
    cr_expect_eq(nd.vmis[0].attempts, 1);
    cr_expect_eq(nd.vmis[1].attempts, -1);
    cr_expect_str_eq(nd.vmis[1].migration, "");
    cr_assert_eq(nd.n_blocked_vmis, 1);
    cr_expect_str_eq(nd.blocked_vmis[0].state, "Blocked");
    cr_expect_str_eq(nd.blocked_vmis[0].reason, "DisksNotLiveMigratable");
    cr_expect(!pl_nodedrain_finished_record(&nd));
}

Test(plugin, nodedrain_without_status)
{
    char err[256];
    cr_assert_eq(parse_nd("{\"metadata\":{\"name\":\"n2\",\"deletionTimestamp\":\"x\"},"
                          "\"spec\":{\"nodeName\":\"n2\"}}",
                          err, sizeof(err)),
                 0, "%s", err);
    cr_expect_str_eq(nd.phase, "");
    cr_expect_str_eq(nd.managed_by, "");
    cr_expect_eq(nd.total, -1);
    cr_expect_eq(nd.eta.sec, 0);
    cr_expect(nd.deleting);
    cr_expect_eq(nd.n_vmis, 0);
}

Test(plugin, nodedrain_finished_record)
{
    char err[256];
    cr_assert_eq(parse_nd("{\"metadata\":{\"name\":\"n1\",\"labels\":{\"vmdrain.io/managed-by\":"
                          "\"vmdrain\"}},\"status\":{\"phase\":\"Completed\"}}",
                          err, sizeof(err)),
                 0, "%s", err);
    cr_expect(pl_nodedrain_finished_record(&nd));
    cr_assert_eq(parse_nd("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"phase\":\"Completed\"}}",
                          err, sizeof(err)),
                 0);
    cr_expect(!pl_nodedrain_finished_record(&nd), "not vmdrain's");
}

static void refused(const char *json, const char *want)
{
    char err[256] = "";
    cr_expect_eq(parse_nd(json, err, sizeof(err)), -1, "accepted: %s", json);
    cr_expect(strstr(err, want) != NULL, "'%s' lacks '%s'", err, want);
    cr_expect_eq(nd.n_vmis, 0);
    cr_expect(nd.name == NULL, "a refused object is left empty");
}

Test(plugin, nodedrain_bad_input)
{
    refused("", "empty");
    refused("{", "invalid JSON");
    refused("[1]", "a NodeDrain is a JSON object");
    refused("/**/{}", "comments are not allowed");
    refused("{\"kind\":\"Node\",\"metadata\":{\"name\":\"n\"}}", "not a NodeDrain: kind \"Node\"");
    refused("{\"spec\":{}}", "metadata is not an object");
    refused("{\"metadata\":{}}", "metadata.name is not set");
    refused("{\"metadata\":{\"name\":3}}", "metadata.name is not a string");
    refused("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"total\":\"4\"}}",
            "NodeDrain \"n1\": status.total is not a whole number >= 0");
    refused("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"failed\":-1}}",
            "status.failed is not a whole number >= 0");
    refused("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"estimatedCompletionTime\":\"soon\"}}",
            "status.estimatedCompletionTime is not an RFC 3339 time");
    refused("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"vmis\":{}}}",
            "status.vmis is not an array");
    refused("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"vmis\":[{\"name\":\"a\"},7]}}",
            "status.vmis.[] is not an object");
    refused("{\"metadata\":{\"name\":\"n1\"},\"spec\":[]}", "spec is not an object");
    refused("{\"metadata\":{\"name\":\"n1\",\"labels\":{\"vmdrain.io/managed-by\":true}}}",
            "metadata.labels.vmdrain.io/managed-by is not a string");
    refused("{\"metadata\":{\"name\":\"\xff\"}}", "invalid JSON");
}

Test(plugin, nodedrain_nesting_and_size_caps)
{
    char err[256];
    char deep[200];
    memset(deep, '[', sizeof(deep));
    cr_expect_eq(pl_nodedrain_parse(deep, sizeof(deep), &nd, err, sizeof(err)), -1);
    cr_expect(strstr(err, "nested deeper than 32 levels") != NULL, "%s", err);
    cr_expect_eq(pl_nodedrain_parse("{}\0{}", 5, &nd, err, sizeof(err)), -1);
    cr_expect(strstr(err, "NUL byte") != NULL, "%s", err);
    cr_expect_eq(pl_nodedrain_parse(deep, PL_ND_MAX_BYTES + 1, &nd, err, sizeof(err)), -1);
    cr_expect(strstr(err, "more than the 1048576 accepted") != NULL, "%s", err);
}

Test(plugin, nodedrain_vmis_beyond_the_cap_are_counted)
{
    buf_t j;
    char err[256];
    buf_init(&j, 1 << 20);
    buf_puts(&j, "{\"metadata\":{\"name\":\"n1\"},\"status\":{\"vmisOmitted\":2,\"vmis\":[");
    for (int i = 0; i < PL_ND_MAX_VMIS + 5; i++)
        buf_printf(&j, "%s{\"namespace\":\"ns\",\"name\":\"vm-%d\",\"state\":\"Pending\"}",
                   i ? "," : "", i);
    buf_puts(&j, "]}}");
    cr_assert_eq(pl_nodedrain_parse(j.data, j.len, &nd, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(nd.n_vmis, PL_ND_MAX_VMIS);
    cr_expect_eq(nd.vmis_omitted, 7);
    buf_free(&j);
}

Test(plugin, nodedrain_list_and_events)
{
    pl_nodedrain_t *items;
    size_t n;
    char rv[32], err[256];
    const char *list = "{\"kind\":\"NodeDrainList\",\"metadata\":{\"resourceVersion\":\"42\"},"
                       "\"items\":[" ND_GOOD ",{\"metadata\":{\"name\":\"n2\"}}]}";
    cr_assert_eq(
        pl_nodedrain_parse_list(list, strlen(list), &items, &n, rv, sizeof(rv), err, sizeof(err)),
        0, "%s", err);
    cr_expect_eq(n, 2);
    cr_expect_str_eq(rv, "42");
    cr_expect_str_eq(items[1].name, "n2");
    pl_nodedrains_free(items, n);
    const char *bad = "{\"items\":[{\"metadata\":{\"name\":\"n1\"}},{\"metadata\":{}}]}";
    cr_expect_eq(
        pl_nodedrain_parse_list(bad, strlen(bad), &items, &n, rv, sizeof(rv), err, sizeof(err)),
        -1);
    cr_expect(items == NULL && n == 0);
    cr_expect(strstr(err, "metadata.name is not set") != NULL, "%s", err);

    pl_event_t type;
    long code;
    const char *ev = "{\"type\":\"MODIFIED\",\"object\":" ND_GOOD "}";
    cr_assert_eq(pl_nodedrain_parse_event(ev, strlen(ev), &type, &nd, &code, err, sizeof(err)), 0,
                 "%s", err);
    cr_expect_eq(type, PL_EV_MODIFIED);
    cr_expect_str_eq(nd.name, "n1");
    pl_nodedrain_free(&nd);
    ev = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"99\"}}}";
    cr_assert_eq(pl_nodedrain_parse_event(ev, strlen(ev), &type, &nd, &code, err, sizeof(err)), 0);
    cr_expect_eq(type, PL_EV_BOOKMARK);
    cr_expect_str_eq(nd.resource_version, "99");
    pl_nodedrain_free(&nd);
    ev = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"gone\"}}";
    cr_assert_eq(pl_nodedrain_parse_event(ev, strlen(ev), &type, &nd, &code, err, sizeof(err)), 0);
    cr_expect_eq(type, PL_EV_ERROR);
    cr_expect_eq(code, 410);
    cr_expect_str_eq(err, "gone");
    ev = "{\"type\":\"EXPLODED\",\"object\":{}}";
    cr_expect_eq(pl_nodedrain_parse_event(ev, strlen(ev), &type, &nd, &code, err, sizeof(err)), -1);
}

/* --- rows and rendering -------------------------------------------------------- */

/* 2030-01-01T00:00:00Z, and the time the tests look from: 45 s later */
#define T0  1893456000
#define NOW (T0 + 45)

static const kube_node_t *node_with(const char *annotations)
{
    char j[4096];
    snprintf(j, sizeof(j),
             "{\"metadata\":{\"name\":\"n1\",\"uid\":\"u\",\"annotations\":{%s}},"
             "\"spec\":{\"taints\":[{\"key\":\"kubevirt.io/drain\",\"effect\":\"NoSchedule\"}]}}",
             annotations);
    kube_obj_free(node_obj);
    node_obj = test_obj_from_json(KUBE_KIND_NODE, j);
    return kube_obj_as_node(node_obj);
}

#define DRAINING_ANNOTATIONS                                                                       \
    "\"vmdrain.io/state\":\"Draining\",\"vmdrain.io/trigger\":\"taint\","                          \
    "\"vmdrain.io/progress\":\"2/5\",\"vmdrain.io/migrating\":\"1\","                              \
    "\"vmdrain.io/pending\":\"1\",\"vmdrain.io/failed\":\"0\","                                    \
    "\"vmdrain.io/blocked\":\"ns/vm-d:DisksNotLiveMigratable\","                                   \
    "\"vmdrain.io/started-at\":\"2030-01-01T00:00:00Z\","                                          \
    "\"vmdrain.io/message\":\"migration vmdrain-0d3f2c1a-1 of ns/vm-b started\""

Test(plugin, row_from_annotations_alone)
{
    pl_row_t r;
    pl_row_build(&r, "n1", node_with(DRAINING_ANNOTATIONS), NULL);
    cr_expect(r.found && r.has_drain);
    cr_expect_str_eq(r.state, "Draining");
    cr_expect_str_eq(r.trigger, "taint");
    cr_expect_eq(r.migrated, 2);
    cr_expect_eq(r.total, 5);
    cr_expect_eq(r.migrating, 1);
    cr_expect_eq(r.pending, 1);
    cr_expect_eq(r.failed, 0);
    cr_expect_eq(r.blocked, 1, "counted from the annotation");
    cr_expect_eq(r.started.sec, T0);
    cr_expect_eq(r.eta.sec, 0);
}

Test(plugin, row_takes_what_the_node_lacks_from_the_nodedrain)
{
    char err[256];
    pl_row_t r;
    cr_assert_eq(parse_nd(ND_GOOD, err, sizeof(err)), 0, "%s", err);
    pl_row_build(&r, "n1", node_with("\"vmdrain.io/state\":\"Draining\""), &nd);
    cr_expect_str_eq(r.trigger, "taint");
    cr_expect_eq(r.migrated, 1);
    cr_expect_eq(r.total, 4);
    cr_expect_eq(r.blocked, 1, "from status.blocked");
    cr_expect_eq(r.eta.sec, T0 + 310);
    cr_expect_str_eq(r.message, "migrating ns/vm-b");

    /* the node's list wins over a status that has not caught up yet */
    pl_row_build(&r, "n1",
                 node_with("\"vmdrain.io/state\":\"Draining\","
                           "\"vmdrain.io/blocked\":\"ns/a:X,ns/b:Y,+3 more\""),
                 &nd);
    cr_expect_eq(r.blocked, 5, "from the vmdrain.io/blocked annotation");

    pl_row_build(&r, "n1", node_with(""), NULL);
    cr_expect(r.found && !r.has_drain);
    cr_expect_eq(r.blocked, -1);
    pl_row_build(&r, "n9", NULL, NULL);
    cr_expect(!r.found);
}

Test(plugin, text_of_one_node_with_its_vmis)
{
    char err[256];
    pl_row_t r;
    cr_assert_eq(parse_nd(ND_GOOD, err, sizeof(err)), 0, "%s", err);
    pl_row_build(&r, "n1", node_with(DRAINING_ANNOTATIONS), &nd);
    cr_assert_eq(pl_render_text(&r, 1, true, NOW, &out), 0);
    cr_expect_str_eq(
        out.data,
        "NODE   STATE      TRIGGER   PROGRESS           MIGRATING   PENDING   FAILED   BLOCKED   "
        "ETA      AGE\n"
        "n1     Draining   taint     [####......] 2/5   1           1         0        1         "
        "~4m25s   45s\n"
        "\n"
        "VMI       STATE       ATTEMPTS   MIGRATION            REASON\n"
        "ns/vm-b   Migrating   1          vmdrain-0d3f2c1a-1   -\n"
        "ns/vm-c   Pending     -          -                    -\n"
        "\n"
        "BLOCKED VMI   REASON\n"
        "ns/vm-d       DisksNotLiveMigratable\n"
        "\n"
        "Message: migration vmdrain-0d3f2c1a-1 of ns/vm-b started\n");
}

Test(plugin, text_blocked_from_the_annotation_and_nodes_without_a_drain)
{
    pl_row_t rows[3];
    pl_row_build(&rows[0], "n1", node_with(DRAINING_ANNOTATIONS), NULL);
    cr_assert_eq(pl_render_text(rows, 1, true, NOW, &out), 0);
    cr_expect(strstr(out.data, "\nBLOCKED VMI   REASON\nns/vm-d       DisksNotLiveMigratable\n"),
              "%s", out.data);
    cr_expect(strstr(out.data, "\nVMI ") == NULL, "no status.vmis, no VMI table");
    cr_expect(strstr(out.data, "   -     45s\n") != NULL, "no ETA: -\n%s", out.data);

    buf_reset(&out);
    pl_row_build(&rows[1], "n2", node_with(""), NULL);
    pl_row_build(&rows[2], "n9", NULL, NULL);
    cr_assert_eq(pl_render_text(&rows[1], 2, false, NOW, &out), 0);
    cr_expect_str_eq(out.data, "node \"n2\" has no drain\nnode \"n9\" not found\n");
    buf_reset(&out);
    cr_assert_eq(pl_render_text(rows, 0, false, NOW, &out), 0);
    cr_expect_str_eq(out.data, "No node is draining.\n");
}

static yajl_val json_at(yajl_val top, const char *a, const char *b)
{
    const char *path[] = {a, b, NULL};
    return yajl_tree_get(top, path, yajl_t_any);
}

Test(plugin, json_has_numbers_as_numbers)
{
    char err[256];
    pl_row_t r;
    cr_assert_eq(parse_nd(ND_GOOD, err, sizeof(err)), 0, "%s", err);
    pl_row_build(&r, "n1", node_with(DRAINING_ANNOTATIONS), &nd);
    cr_assert_eq(pl_render_json(&r, 1, NOW, &out), 0);
    cr_expect_eq(out.data[out.len - 1], '\n');
    cr_expect(strchr(out.data, '\n') == out.data + out.len - 1, "one line");
    yajl_val top = yajl_tree_parse(out.data, err, sizeof(err));
    cr_assert(top, "%s", err);
    yajl_val nodes = json_at(top, "nodes", NULL);
    cr_assert(YAJL_IS_ARRAY(nodes) && nodes->u.array.len == 1);
    yajl_val n = nodes->u.array.values[0];
    cr_expect_str_eq(YAJL_GET_STRING(json_at(n, "node", NULL)), "n1");
    cr_expect_str_eq(YAJL_GET_STRING(json_at(n, "state", NULL)), "Draining");
    cr_expect_eq(YAJL_GET_INTEGER(json_at(n, "migrated", NULL)), 2);
    cr_expect_eq(YAJL_GET_INTEGER(json_at(n, "total", NULL)), 5);
    cr_expect_eq(YAJL_GET_INTEGER(json_at(n, "blocked", NULL)), 1);
    cr_expect_eq(YAJL_GET_INTEGER(json_at(n, "etaSeconds", NULL)), 265);
    cr_expect_str_eq(YAJL_GET_STRING(json_at(n, "eta", NULL)), "~4m25s");
    cr_expect_eq(YAJL_GET_INTEGER(json_at(n, "ageSeconds", NULL)), 45);
    cr_expect_str_eq(YAJL_GET_STRING(json_at(n, "startedAt", NULL)), "2030-01-01T00:00:00Z");
    yajl_val vmis = json_at(n, "vmis", NULL);
    cr_assert(YAJL_IS_ARRAY(vmis) && vmis->u.array.len == 2);
    cr_expect_eq(YAJL_GET_INTEGER(json_at(vmis->u.array.values[0], "attempts", NULL)), 1);
    cr_expect(YAJL_IS_NULL(json_at(vmis->u.array.values[1], "attempts", NULL)));
    yajl_val blocked = json_at(n, "blockedVMIs", NULL);
    cr_assert(YAJL_IS_ARRAY(blocked) && blocked->u.array.len == 1);
    cr_expect_str_eq(YAJL_GET_STRING(json_at(blocked->u.array.values[0], "namespace", NULL)), "ns");
    yajl_tree_free(top);
}

Test(plugin, json_unknowns_are_null)
{
    pl_row_t r;
    pl_row_build(&r, "n2", node_with(""), NULL);
    cr_assert_eq(pl_render_json(&r, 1, NOW, &out), 0);
    cr_expect(strstr(out.data, "\"draining\":false") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "\"total\":null") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "\"eta\":null") != NULL, "%s", out.data);
    buf_reset(&out);
    cr_assert_eq(pl_render_json(&r, 0, NOW, &out), 0);
    cr_expect_str_eq(out.data, "{\"nodes\":[]}\n");
}
