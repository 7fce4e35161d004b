/*
 * vmdrain — turns node drains into paced live migrations of KubeVirt VMs.
 *
 * main() parses the global flags, sets up logging and dispatches to a
 * subcommand. The exit codes are part of the interface and listed in the
 * help text.
 */
#include "cmd/cluster.h"
#include "cmd/run.h"
#include "cmd/debug.h"
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
                 "\n"
                 "Options:\n"
                 "  -h, --help               show this help and exit\n"
                 "  -V, --version            print the version and exit\n"
                 "      --kubeconfig PATH    kubeconfig file (default: $KUBECONFIG, then\n"
                 "                           ~/.kube/config; in a pod: the service account)\n"
                 "      --context NAME       kubeconfig context (default: current-context)\n"
                 "      --log-level LEVEL    debug, info (default), warn or error\n"
                 "      --log-format FORMAT  text (logfmt, default) or json\n"
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

int main(int argc, char **argv)
{
    enum { OPT_LOG_LEVEL = 256, OPT_LOG_FORMAT, OPT_KUBECONFIG, OPT_CONTEXT };
    cmd_cluster_t cluster = {0};
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {NULL, 0, NULL, 0},
    };
    log_level_t level = LOG_LEVEL_INFO;
    log_format_t format = LOG_FORMAT_TEXT;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("vmdrain %s\n", VMDRAIN_VERSION);
            return EXIT_OK;
        case OPT_LOG_LEVEL:
            if (log_parse_level(optarg, &level) < 0)
                return usage_error("--log-level wants debug, info, warn or error, not", optarg);
            break;
        case OPT_LOG_FORMAT:
            if (log_parse_format(optarg, &format) < 0)
                return usage_error("--log-format wants text or json, not", optarg);
            break;
        case OPT_KUBECONFIG:
            cluster.kubeconfig = optarg;
            break;
        case OPT_CONTEXT:
            cluster.context = optarg;
            break;
        case ':':
            return usage_error("missing argument for option", argv[optind - 1]);
        default:
            return usage_error("unknown option", argv[optind - 1]);
        }
    }
    log_setup(level, format, stderr);
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[optind];
    if (strcmp(command, "debug") != 0 && strcmp(command, "run") != 0)
        return usage_error("unknown command", command);
    /* the subcommand checks its flags, then loads the cluster configuration */
    int rc = strcmp(command, "run") == 0 ? cmd_run_main(&cluster, argc - optind, argv + optind)
                                         : cmd_debug_main(&cluster, argc - optind, argv + optind);
    cmd_cluster_free(&cluster);
    return rc;
}
