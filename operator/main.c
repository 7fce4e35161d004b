/*
 * vmdrain — turns node drains into paced live migrations of KubeVirt VMs.
 *
 * main() parses the global flags, sets up logging and dispatches to a
 * subcommand. The exit codes are part of the interface and listed in the
 * help text.
 */
#include "cmd/check.h"
#include "cmd/cluster.h"
#include "cmd/run.h"
#include "cmd/debug.h"
#include "cmd/version.h"
#include "util/log.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef VMDRAIN_VERSION
#define VMDRAIN_VERSION "unknown"
#endif

enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1, /* a failure while running */
    EXIT_USAGE = 2,   /* bad flags or arguments */
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: vmdrain [OPTIONS] COMMAND [ARGS]\n"
                 "\n"
                 "Turns node drains into paced live migrations of KubeVirt virtual machines.\n"
                 "\n"
                 "Commands:\n"
                 "  run --config NS/NAME       run the operator (run --help)\n"
                 "  debug list|watch RESOURCE  print what the informers see (debug --help)\n"
                 "  check --readyz URL ...     check a running vmdrain (check --help)\n"
                 "  version                    version, revision, build date, libraries\n"
                 "\n"
                 "Options:\n"
                 "  -h, --help               show this help and exit\n"
                 "  -V, --version            print the version and exit\n"
                 "      --kubeconfig PATH    kubeconfig file (default: $KUBECONFIG, then\n"
                 "                           ~/.kube/config; in a pod: the service account)\n"
                 "      --context NAME       kubeconfig context (default: current-context)\n"
                 "      --log-level LEVEL    debug, info (default), warn or error\n"
                 "      --log-format FORMAT  text (logfmt, default) or json\n"
                 "The options may also follow the command (vmdrain run --kubeconfig F ...).\n"
                 "\n"
                 "Exit codes:\n"
                 "  0  success\n"
                 "  1  runtime failure (details in the log)\n"
                 "  2  usage error: unknown flag, bad value or missing argument\n");
}

/* Reports a usage error the way getopt does and returns the usage code. */
static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "vmdrain: %s '%s'", what, arg);
    fprintf(stderr, "\nTry 'vmdrain --help' for more information.\n");
    return EXIT_USAGE;
}

/* The global options, wherever they stand. */
typedef struct globals {
    log_level_t level;
    log_format_t format;
    cmd_cluster_t *cluster;
} globals_t;

/* Applies global option name (without "--") with value v. Returns 0, or
 * the usage code after a message. */
static int apply_global(globals_t *g, const char *name, const char *v)
{
    if (strcmp(name, "log-level") == 0) {
        if (log_parse_level(v, &g->level) < 0)
            return usage_error("--log-level wants debug, info, warn or error, not", v);
    } else if (strcmp(name, "log-format") == 0) {
        if (log_parse_format(v, &g->format) < 0)
            return usage_error("--log-format wants text or json, not", v);
    } else if (strcmp(name, "kubeconfig") == 0) {
        g->cluster->kubeconfig = v;
    } else {
        g->cluster->context = v;
    }
    return 0;
}

/* The global option argv[i] names ("--kubeconfig" or "--kubeconfig=F"),
 * or NULL when it is none. */
static const char *global_name(const char *arg, size_t *len)
{
    static const char *const names[] = {"log-level", "log-format", "kubeconfig", "context"};
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        size_t n = strlen(names[k]);
        if (strncmp(arg + 2, names[k], n) == 0 && (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
            *len = n;
            return names[k];
        }
    }
    return NULL;
}

/* Takes the global options out of the command's arguments argv[0..*argc)
 * (argv[0] is the command), up to a "--". Returns 0 or the usage code. */
static int take_globals(globals_t *g, int *argc, char **argv)
{
    int out = 1, i = 1;
    for (; i < *argc && strcmp(argv[i], "--") != 0; i++) {
        size_t n;
        const char *name = global_name(argv[i], &n);
        if (!name) {
            argv[out++] = argv[i];
            continue;
        }
        const char *v = argv[i][2 + n] == '=' ? argv[i] + 3 + n : NULL;
        if (!v && i + 1 >= *argc)
            return usage_error("missing argument for option", argv[i]);
        if (!v)
            v = argv[++i];
        int rc = apply_global(g, name, v);
        if (rc)
            return rc;
    }
    while (i < *argc)
        argv[out++] = argv[i++];
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    cmd_cluster_t cluster = {0};
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"log-level", required_argument, NULL, 1},
        {"log-format", required_argument, NULL, 1},
        {"kubeconfig", required_argument, NULL, 1},
        {"context", required_argument, NULL, 1},
        {NULL, 0, NULL, 0},
    };
    globals_t g = {.level = LOG_LEVEL_INFO, .format = LOG_FORMAT_TEXT, .cluster = &cluster};
    int c, idx, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:hV", options, &idx)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("vmdrain %s\n", VMDRAIN_VERSION);
            return EXIT_OK;
        case 1:
            if ((rc = apply_global(&g, options[idx].name, optarg)) != 0)
                return rc;
            break;
        case ':':
            return usage_error("missing argument for option", argv[optind - 1]);
        default:
            return usage_error("unknown option", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    const char *command = sub_argv[0];
    static const char *const commands[] = {"run", "debug", "check", "version"};
    int which = -1;
    for (int k = 0; k < 4; k++)
        if (strcmp(command, commands[k]) == 0)
            which = k;
    if (which < 0)
        return usage_error("unknown command", command);
    if ((rc = take_globals(&g, &sub_argc, sub_argv)) != 0)
        return rc;
    log_setup(g.level, g.format, stderr);
    /* the subcommand checks its flags, then loads the cluster configuration */
    switch (which) {
    case 0:
        rc = cmd_run_main(&cluster, sub_argc, sub_argv);
        break;
    case 1:
        rc = cmd_debug_main(&cluster, sub_argc, sub_argv);
        break;
    case 2:
        rc = cmd_check_main(&cluster, sub_argc, sub_argv);
        break;
    default:
        rc = cmd_version_main(sub_argc, sub_argv);
    }
    cmd_cluster_free(&cluster);
    return rc;
}
