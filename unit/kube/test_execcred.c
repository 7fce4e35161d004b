#include <criterion/criterion.h>

#include "kube/config.h"
#include "kube/execcred.h"
#include "kube/http.h"
#include "testserver.h"
#include "util/log.h"
#include "util/metrics.h"

#include <ev.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define V1      "client.authentication.k8s.io/v1"
#define V1BETA1 "client.authentication.k8s.io/v1beta1"
#define TOKEN   "exec-token-aaaa-1111"
#define TOKEN2  "exec-token-bbbb-2222"
#define PEM_C   "-----BEGIN CERTIFICATE-----\\nY2VydA==\\n-----END CERTIFICATE-----\\n"
#define PEM_K   "-----BEGIN PRIVATE KEY-----\\na2V5\\n-----END PRIVATE KEY-----\\n"

/* An ExecCredential of V1 whose status is the given JSON members. */
#define CRED(status)                                                                               \
    "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":{" status "}}"

static char err[1024];

/* --- the parser --------------------------------------------------------------- */

static int parse(const char *json, kube_exec_cred_t *c)
{
    err[0] = '\0';
    return kube_exec_cred_parse(json, strlen(json), V1, c, err, sizeof(err));
}

/* Expects json to be refused with a message holding want. */
static void refused(const char *json, const char *want)
{
    kube_exec_cred_t c;
    cr_expect_eq(parse(json, &c), -1, "accepted: %s", json);
    cr_expect(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    cr_expect_null(c.token, "out stays empty");
    cr_expect_null(strstr(err, TOKEN), "the token is never quoted: %s", err);
}

Test(execcred_parse, token_and_expiry)
{
    kube_exec_cred_t c;
    cr_assert_eq(parse(CRED("\"token\":\"" TOKEN "\",\"expirationTimestamp\":"
                            "\"2030-01-02T03:04:05Z\""),
                       &c),
                 0, "%s", err);
    cr_expect_str_eq(c.token, TOKEN);
    cr_expect(c.has_expiry);
    cr_expect_eq(c.expiry.sec, 1893553445);
    cr_expect_null(c.cert_pem);
    kube_exec_cred_free(&c);
    cr_expect_null(c.token);
}

Test(execcred_parse, client_certificate_without_expiry)
{
    kube_exec_cred_t c;
    cr_assert_eq(parse(CRED("\"clientCertificateData\":\"" PEM_C "\",\"clientKeyData\":\"" PEM_K
                            "\",\"unknown\":[1,{\"a\":null}]"),
                       &c),
                 0, "%s", err);
    cr_expect_null(c.token);
    cr_expect_not(c.has_expiry);
    cr_expect(strncmp(c.cert_pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0, "%s", c.cert_pem);
    cr_expect_eq(c.cert_pem_len, strlen(c.cert_pem));
    cr_expect(strstr(c.key_pem, "PRIVATE KEY") != NULL);
    kube_exec_cred_free(&c);
}

Test(execcred_parse, the_asked_api_version_must_come_back)
{
    kube_exec_cred_t c;
    const char *beta = "{\"apiVersion\":\"" V1BETA1 "\",\"kind\":\"ExecCredential\","
                       "\"spec\":{},\"status\":{\"token\":\"" TOKEN "\"}}";
    cr_assert_eq(kube_exec_cred_parse(beta, strlen(beta), V1BETA1, &c, err, sizeof(err)), 0, "%s",
                 err);
    kube_exec_cred_free(&c);
    refused(beta, "ExecCredential: apiVersion: \"" V1BETA1 "\", expected " V1);
    refused("{\"kind\":\"ExecCredential\",\"status\":{\"token\":\"" TOKEN "\"}}",
            "apiVersion: \"\", expected " V1);
    refused("{\"apiVersion\":\"" V1 "\",\"kind\":\"Secret\",\"status\":{\"token\":\"t\"}}",
            "ExecCredential: kind: \"Secret\", expected ExecCredential");
    refused("{\"apiVersion\":7,\"kind\":\"ExecCredential\"}",
            "ExecCredential: apiVersion: expected a string, got a number");
}

Test(execcred_parse, bad_status_fields_are_named)
{
    refused("{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\"}",
            "ExecCredential: status: missing");
    refused("{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"status\":[]}",
            "ExecCredential: status: expected an object, got an array");
    refused(CRED(""), "status: neither a token nor a client certificate and key");
    refused(CRED("\"token\":\"\""), "status: neither a token");
    refused(CRED("\"token\":true"),
            "ExecCredential: status.token: expected a string, got a boolean");
    refused(CRED("\"token\":\"" TOKEN " x\""),
            "status.token: contains characters not allowed in a bearer token");
    refused(CRED("\"clientCertificateData\":\"" PEM_C "\""),
            "status.clientCertificateData is set without status.clientKeyData");
    refused(CRED("\"clientKeyData\":\"" PEM_K "\""),
            "status.clientKeyData is set without status.clientCertificateData");
    refused(CRED("\"clientCertificateData\":\"cert\",\"clientKeyData\":\"" PEM_K "\""),
            "status.clientCertificateData: not PEM data");
    refused(CRED("\"token\":\"" TOKEN "\",\"expirationTimestamp\":\"tomorrow\""),
            "ExecCredential: status.expirationTimestamp: ");
    refused(CRED("\"token\":\"" TOKEN "\",\"expirationTimestamp\":12"),
            "status.expirationTimestamp: expected a string, got a number");
}

Test(execcred_parse, bad_documents)
{
    kube_exec_cred_t c;
    refused("", "ExecCredential: empty");
    refused("{\"apiVersion\":", "ExecCredential: invalid JSON");
    refused("[1,2]", "ExecCredential: expected an object, got an array");
    refused("{/* c */}", "comments are not allowed");
    char deep[200];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    refused(deep, "nested deeper than");
    cr_expect_eq(kube_exec_cred_parse("{\"a\":1}\0x", 9, V1, &c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "contains a NUL byte") != NULL, "%s", err);

    size_t n = KUBE_EXEC_MAX_OUTPUT + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    cr_expect_eq(kube_exec_cred_parse(big, n, V1, &c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "larger than 1048576 bytes") != NULL, "%s", err);
    free(big);

    char *longtok = malloc(KUBE_EXEC_MAX_TOKEN + 200);
    int k = snprintf(longtok, 100,
                     "{\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\",\"status\":"
                     "{\"token\":\"",
                     V1);
    memset(longtok + k, 'a', KUBE_EXEC_MAX_TOKEN + 1);
    strcpy(longtok + k + KUBE_EXEC_MAX_TOKEN + 1, "\"}}");
    refused(longtok, "status.token: longer than 65536 bytes");
    free(longtok);
}

Test(execcred_parse, exec_info_document)
{
    kube_exec_t e = {.api_version = V1};
    kube_exec_cluster_t cl = {.server = "https://10.0.0.1:6443",
                              .tls_server_name = "api.test",
                              .ca_pem = "PEM!",
                              .ca_pem_len = 4};
    char *s = kube_exec_info_json(&e, &cl);
    cr_expect_str_eq(s, "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
                        "\"spec\":{\"interactive\":false}}");
    free(s);
    e.provide_cluster_info = true;
    s = kube_exec_info_json(&e, &cl);
    cr_expect_str_eq(s, "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"spec\":{"
                        "\"interactive\":false,\"cluster\":{\"server\":\"https://10.0.0.1:6443\","
                        "\"tls-server-name\":\"api.test\",\"certificate-authority-data\":"
                        "\"UEVNIQ==\"}}}");
    free(s);
    cl = (kube_exec_cluster_t){.server = "https://h", .insecure_skip_tls_verify = true};
    e.api_version = V1BETA1;
    s = kube_exec_info_json(&e, &cl);
    cr_expect_str_eq(s, "{\"apiVersion\":\"" V1BETA1 "\",\"kind\":\"ExecCredential\",\"spec\":{"
                        "\"interactive\":false,\"cluster\":{\"server\":\"https://h\","
                        "\"insecure-skip-tls-verify\":true}}}");
    free(s);
}

/* --- running plugins ------------------------------------------------------------ */

static char dir[64];
static kube_config_t cfg;
static FILE *sink;
static char *captured;
static size_t captured_len;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "%s", "/tmp/vmdrain-execcred-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    sink = open_memstream(&captured, &captured_len);
    log_setup(LOG_LEVEL_DEBUG, LOG_FORMAT_TEXT, sink);
}

static void teardown(void)
{
    kube_config_free(&cfg);
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    fclose(sink);
    free(captured);
    captured = NULL;
    log_clear_secrets();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(execcred, .init = setup, .fini = teardown, .timeout = 60);

static const char *logs(void)
{
    fflush(sink);
    return captured ? captured : "";
}

/* Returns dir/rel in a static buffer (one of four). */
static const char *at(const char *rel)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, rel);
    return p;
}

static void putf(const char *rel, mode_t mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes dir/rel (one level of subdirectory is made) with mode. */
static void putf(const char *rel, mode_t mode, const char *fmt, ...)
{
    const char *slash = strchr(rel, '/');
    if (slash) {
        char sub[256];
        snprintf(sub, sizeof(sub), "%.*s", (int)(slash - rel), rel);
        mkdir(at(sub), 0700);
    }
    FILE *f = fopen(at(rel), "w");
    cr_assert_not_null(f, "cannot write %s", at(rel));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    chmod(at(rel), mode);
}

/* A plugin script: body runs after the run is counted in dir/runs ($n is
 * the run's number). */
static void plugin(const char *rel, const char *body)
{
    putf(rel, 0700,
         "#!/bin/sh\n"
         "n=$(($(cat '%s/runs' 2>/dev/null || echo 0) + 1))\n"
         "echo $n > '%s/runs'\n"
         "%s",
         dir, dir, body);
}

/* A shell command printing an ExecCredential with token tok (shell words
 * allowed) and, when exp is not empty, that expirationTimestamp. */
static char *print_cred(const char *tok, const char *exp)
{
    char *s;
    cr_assert_geq(asprintf(&s,
                           "printf '{\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                           "\"status\":{\"token\":\"%%s\"%s%s%s}}\\n' \"%s\"\n",
                           V1, exp[0] ? ",\"expirationTimestamp\":\"" : "", exp, exp[0] ? "\"" : "",
                           tok),
                  0);
    return s;
}

/* A plugin dir/plug.sh printing a credential with token one (expiry exp1,
 * "" for none) on its first run and then one with token two (exp2), or
 * running the shell command two_cmd instead when it is not NULL. */
static void two_runs(const char *exp1, const char *exp2, const char *two_cmd)
{
    char *one = print_cred(TOKEN, exp1),
         *two = two_cmd ? strdup(two_cmd) : print_cred(TOKEN2, exp2);
    char body[1024];
    snprintf(body, sizeof(body), "if [ $n = 1 ]; then %s else %s\nfi\n", one, two);
    free(one);
    free(two);
    plugin("plug.sh", body);
}

/* A kubeconfig (dir/config) whose user u1 runs the exec mapping body
 * (indented six spaces). */
static void put_config(const char *exec_body)
{
    putf("config", 0600,
         "apiVersion: v1\n"
         "kind: Config\n"
         "current-context: main\n"
         "clusters:\n"
         "- name: c1\n"
         "  cluster:\n"
         "    server: https://10.0.0.1:6443\n"
         "    tls-server-name: api.test\n"
         "contexts:\n"
         "- name: main\n"
         "  context: {cluster: c1, user: u1}\n"
         "users:\n"
         "- name: u1\n"
         "  user:\n"
         "    exec:\n"
         "%s",
         exec_body);
}

static int runs(void)
{
    FILE *f = fopen(at("runs"), "r");
    int n = 0;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = 0;
        fclose(f);
    }
    return n;
}

static int load(void)
{
    err[0] = '\0';
    return kube_config_load(at("config"), NULL, &cfg, err, sizeof(err));
}

/* Expects the load to fail with a message holding every piece. */
static void load_fails(const char *first, ...)
{
    va_list ap;
    cr_assert_eq(load(), -1, "loaded, expected an error");
    cr_expect_null(cfg.server, "out stays empty");
    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *))
        cr_expect(strstr(err, p) != NULL, "error \"%s\" lacks \"%s\"", err, p);
    va_end(ap);
}
#define LOAD_FAILS(...) load_fails(__VA_ARGS__, (const char *)NULL)

Test(execcred, a_plugin_token_is_used_and_the_plugin_sees_args_env_and_exec_info)
{
    char *pr = print_cred(TOKEN, "");
    char body[2048];
    snprintf(body, sizeof(body),
             "printf '%%s|' \"$0\" \"$@\" > '%s/argv'\n"
             "printf '%%s' \"$KUBERNETES_EXEC_INFO\" > '%s/info'\n"
             "printf '%%s|%%s' \"$PLUGIN_MODE\" \"$HOME\" > '%s/env'\n"
             "cat > '%s/stdin'\n"
             "echo 'a note on stderr' >&2\n%s",
             dir, dir, dir, dir, pr);
    free(pr);
    plugin("bin/plug.sh", body);
    setenv("PLUGIN_MODE", "from vmdrain", 1);
    setenv("HOME", "/home/test", 1);
    put_config("      apiVersion: " V1 "\n"
               "      command: bin/plug.sh\n"
               "      args: [--region, \"\", two words]\n"
               "      env:\n"
               "      - {name: PLUGIN_MODE, value: from the kubeconfig}\n"
               "      interactiveMode: IfAvailable\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_expect_str_eq(cfg.token, TOKEN);
    cr_expect_eq(runs(), 1);
    char buf[1024];
    FILE *f = fopen(at("argv"), "r");
    cr_assert_not_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    char want[600];
    snprintf(want, sizeof(want), "%s/bin/plug.sh|--region||two words|", dir);
    cr_expect_str_eq(buf, want, "relative to the kubeconfig's directory, no shell splitting");
    f = fopen(at("info"), "r");
    cr_assert_not_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    cr_expect_str_eq(buf, "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
                          "\"spec\":{\"interactive\":false}}");
    f = fopen(at("env"), "r");
    cr_assert_not_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    cr_expect_str_eq(buf, "from the kubeconfig|/home/test", "the kubeconfig's env wins");
    struct stat st;
    cr_expect(stat(at("stdin"), &st) == 0 && st.st_size == 0, "stdin is /dev/null");
    cr_expect(strstr(logs(), "msg=\"exec credential plugin wrote to stderr\" "
                             "command=bin/plug.sh stderr=\"a note on stderr\"") != NULL,
              "%s", logs());
    cr_expect_not(kube_config_exec_due(&cfg, false), "no expiry: kept until a 401");
    cr_expect(kube_config_exec_due(&cfg, true));
}

Test(execcred, provide_cluster_info_and_a_bare_name_found_in_path)
{
    char *pr = print_cred(TOKEN, "");
    char body[1024];
    snprintf(body, sizeof(body), "printf '%%s' \"$KUBERNETES_EXEC_INFO\" > '%s/info'\n%s", dir, pr);
    free(pr);
    plugin("path/vmdrain-test-plugin", body);
    char path[700];
    snprintf(path, sizeof(path), "%s:%s", at("path"), getenv("PATH") ? getenv("PATH") : "/bin");
    setenv("PATH", path, 1);
    put_config("      apiVersion: " V1 "\n"
               "      command: vmdrain-test-plugin\n"
               "      provideClusterInfo: true\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_expect_str_eq(cfg.token, TOKEN);
    char buf[1024];
    FILE *f = fopen(at("info"), "r");
    cr_assert_not_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    cr_expect_str_eq(buf, "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\",\"spec\":{"
                          "\"interactive\":false,\"cluster\":{\"server\":"
                          "\"https://10.0.0.1:6443\",\"tls-server-name\":\"api.test\"}}}");
}

Test(execcred, an_expiring_token_is_fetched_again)
{
    two_runs("2020-01-01T00:00:00Z", "", NULL);
    put_config("      apiVersion: " V1 "\n      command: ./plug.sh\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_expect_str_eq(cfg.token, TOKEN);
    cr_expect_not(kube_config_exec_due(&cfg, false), "not twice within a second");
    usleep(1100 * 1000);
    cr_assert(kube_config_exec_due(&cfg, false), "expired");
    bool changed = false;
    cr_assert_eq(kube_config_exec_refresh(&cfg, &changed, err, sizeof(err)), 0, "%s", err);
    cr_expect(changed);
    cr_expect_str_eq(cfg.token, TOKEN2);
    cr_expect_eq(runs(), 2);
    cr_expect_not(kube_config_exec_due(&cfg, false));
}

/* The policy of kube_config_exec_due(), on a credential made up. */
Test(execcred, when_a_credential_is_due)
{
    kube_exec_t e = {.has_cred = true, .has_expiry = true};
    kube_config_t c = {.exec = &e};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    e.obtained.sec = now.tv_sec - 3600;
    e.expiry.sec = now.tv_sec + 60;
    cr_expect_not(kube_config_exec_due(&c, false), "a minute left");
    e.expiry.sec = now.tv_sec + 9;
    cr_expect(kube_config_exec_due(&c, false), "fewer than 10 s left");
    e.obtained.sec = now.tv_sec;
    e.expiry.sec = now.tv_sec + 9;
    cr_expect_not(kube_config_exec_due(&c, false), "9 s left of 9: half its life is the margin");
    e.expiry.sec = now.tv_sec - 1;
    cr_expect(kube_config_exec_due(&c, false), "expired");
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    e.last_run = (double)mono.tv_sec;
    cr_expect_not(kube_config_exec_due(&c, false), "just ran");
    cr_expect(kube_config_exec_due(&c, true), "a 401 forces a run");
    e.last_failed = true;
    cr_expect_not(kube_config_exec_due(&c, true), "not again right after a failure");
    e.last_run -= KUBE_EXEC_RETRY_GAP + 1;
    cr_expect(kube_config_exec_due(&c, true));
    kube_config_t none = {0};
    cr_expect_not(kube_config_exec_due(&none, true));
}

Test(execcred, a_failing_plugin_is_named_with_its_exit_code_and_stderr)
{
    plugin("fail.sh", "echo 'first line' >&2\necho 'error: no credentials' >&2\nexit 3\n");
    put_config("      apiVersion: " V1 "\n      command: ./fail.sh\n");
    LOAD_FAILS(at("config"), ": user \"u1\": exec credential plugin \"./fail.sh\": exit code 3: "
                             "error: no credentials");
    cr_expect(strstr(logs(), "level=warn msg=\"exec credential plugin wrote to stderr\"") != NULL,
              "%s", logs());

    plugin("kill.sh", "kill -TERM $$\n");
    put_config("      apiVersion: " V1 "\n      command: ./kill.sh\n");
    LOAD_FAILS("exec credential plugin \"./kill.sh\": killed by signal 15");
}

/* True when pid runs (a zombie waiting for whoever inherited it does
 * not). */
static bool alive(int pid)
{
    char path[64], stat[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

Test(execcred, a_plugin_past_its_timeout_is_killed_with_its_children)
{
    char body[512];
    snprintf(body, sizeof(body), "sleep 30 &\necho $! > '%s/slow.pid'\nwait\n", dir);
    plugin("slow.sh", body);
    put_config("      apiVersion: " V1 "\n      command: ./slow.sh\n");
    FILE *f = fopen(at("config"), "r");
    char text[2048];
    size_t n = fread(text, 1, sizeof(text), f);
    fclose(f);
    cr_assert_eq(kube_config_parse_buffer(text, n, at("config"), NULL, &cfg, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_null(cfg.token, "parsing does not run the plugin");
    cr_expect_eq(runs(), 0);
    cfg.exec->timeout = 0.5;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool changed;
    cr_assert_eq(kube_config_exec_refresh(&cfg, &changed, err, sizeof(err)), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_expect_str_eq(err, "exec credential plugin \"./slow.sh\": killed after 0.5 s");
    cr_expect(took >= 0.5 && took < 5, "took %.2f s", took);
    int pid = 0;
    f = fopen(at("slow.pid"), "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    usleep(100 * 1000);
    cr_expect(!alive(pid), "the plugin's child %d is gone too", pid);
    cr_expect_not(kube_config_exec_due(&cfg, true), "no second run right after a failure");
}

Test(execcred, a_missing_plugin_gets_its_install_hint)
{
    put_config("      apiVersion: " V1 "\n"
               "      command: vmdrain-no-such-plugin\n"
               "      installHint: |\n"
               "        install it with: apt-get install vmdrain-no-such-plugin\n");
    LOAD_FAILS("exec credential plugin \"vmdrain-no-such-plugin\": vmdrain-no-such-plugin not "
               "found in PATH; install it with: apt-get install vmdrain-no-such-plugin");
    put_config("      apiVersion: " V1 "\n      command: ./missing.sh\n");
    LOAD_FAILS("exec credential plugin \"./missing.sh\": ", at("./missing.sh"), " not found");
    putf("noexec.sh", 0600, "#!/bin/sh\n");
    put_config("      apiVersion: " V1 "\n      command: ./noexec.sh\n");
    LOAD_FAILS("exec credential plugin \"./noexec.sh\": cannot run ", at("./noexec.sh"),
               ": Permission denied");
}

Test(execcred, bad_output_is_refused)
{
    plugin("json.sh", "echo '{\"apiVersion\":'\n");
    put_config("      apiVersion: " V1 "\n      command: ./json.sh\n");
    LOAD_FAILS("exec credential plugin \"./json.sh\": ExecCredential: invalid JSON");

    plugin("beta.sh", "echo '{\"apiVersion\":\"" V1BETA1 "\",\"kind\":\"ExecCredential\","
                      "\"status\":{\"token\":\"" TOKEN "\"}}'\n");
    put_config("      apiVersion: " V1 "\n      command: ./beta.sh\n");
    LOAD_FAILS("exec credential plugin \"./beta.sh\": ExecCredential: apiVersion: \"" V1BETA1
               "\", expected " V1);
    put_config("      apiVersion: " V1BETA1 "\n      command: ./beta.sh\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_expect_str_eq(cfg.token, TOKEN);
    kube_config_free(&cfg);

    plugin("big.sh", "head -c 2000000 /dev/zero | tr '\\0' ' '\n");
    put_config("      apiVersion: " V1 "\n      command: ./big.sh\n");
    LOAD_FAILS("exec credential plugin \"./big.sh\": printed more than 1048576 bytes");

    plugin("empty.sh", "\n");
    put_config("      apiVersion: " V1 "\n      command: ./empty.sh\n");
    LOAD_FAILS("exec credential plugin \"./empty.sh\": ExecCredential: empty");
}

Test(execcred, a_client_certificate_from_the_plugin)
{
    plugin("cert.sh", "cat <<'EOF'\n"
                      "{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\","
                      "\"status\":{\"clientCertificateData\":\"" PEM_C "\","
                      "\"clientKeyData\":\"" PEM_K "\"}}\n"
                      "EOF\n");
    put_config("      apiVersion: " V1 "\n      command: ./cert.sh\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_expect_null(cfg.token);
    cr_expect(strstr(cfg.cert_pem, "BEGIN CERTIFICATE") != NULL);
    cr_expect(strstr(cfg.key_pem, "BEGIN PRIVATE KEY") != NULL);
    cr_expect_eq(cfg.key_pem_len, strlen(cfg.key_pem));
}

/* --- the HTTP layer: a 401 and an expiry run the plugin again ------------------- */

static struct ev_loop *loop;
static testserver_t *srv;
static kube_http_t *http;

static void http_setup(void)
{
    setup();
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = testserver_start();
    cr_assert_not_null(srv);
}

static void http_teardown(void)
{
    kube_http_free(http);
    http = NULL;
    testserver_stop(srv);
    ev_loop_destroy(loop);
    metrics_free_all();
    kube_http_global_cleanup();
    teardown();
}

TestSuite(execcred_http, .init = http_setup, .fini = http_teardown, .timeout = 60);

/* A kubeconfig pointing at the test server whose user runs dir/plug.sh. */
static void http_config(void)
{
    putf("config", 0600,
         "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
         "clusters:\n- name: c1\n  cluster: {server: \"%s\"}\n"
         "contexts:\n- name: main\n  context: {cluster: c1, user: u1}\n"
         "users:\n- name: u1\n  user:\n    exec:\n"
         "      apiVersion: " V1 "\n      command: ./plug.sh\n",
         testserver_url(srv));
    cr_assert_eq(load(), 0, "%s", err);
    http = kube_http_new(loop, &cfg, err, sizeof(err));
    cr_assert_not_null(http, "%s", err);
}

static void on_done(void *ud, const kube_result_t *res)
{
    long *status = ud;
    *status = res->status ? res->status : -1;
}

static void tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* GETs path and runs the loop until the answer; returns its status. */
/* Sends GETs of path on each transport of hs at once and runs the loop
 * until every answer came; their statuses in status. */
static void get_all(kube_http_t **hs, int n, const char *path, long *status)
{
    ev_timer t;
    for (int i = 0; i < n; i++) {
        status[i] = 0;
        cr_assert_not_null(kube_http_request(
            hs[i], &(kube_req_opts_t){.path = path, .on_done = on_done, .ud = &status[i]}));
    }
    ev_timer_init(&t, tick, 0.02, 0.02);
    ev_timer_start(loop, &t);
    for (int i = 0, left = n; i < 1000 && left; i++) {
        ev_run(loop, EVRUN_ONCE);
        left = 0;
        for (int k = 0; k < n; k++)
            left += !status[k];
    }
    ev_timer_stop(loop, &t);
}

/* GETs path and runs the loop until the answer; returns its status. */
static long get(const char *path)
{
    long status;
    get_all(&http, 1, path, &status);
    return status;
}

static const char *auth_of(int i)
{
    return testserver_request_header(testserver_request(srv, i), "Authorization");
}

Test(execcred_http, a_401_runs_the_plugin_again)
{
    two_runs("", "", NULL);
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    testserver_limit(testserver_route(srv, "GET", "/r", 401), 1);
    http_config();
    cr_expect_eq(get("/r"), 401);
    cr_expect_eq(get("/r"), 200);
    cr_expect_eq(runs(), 2);
    cr_expect_str_eq(auth_of(0), "Bearer " TOKEN);
    cr_expect_str_eq(auth_of(1), "Bearer " TOKEN2);
    cr_expect(strstr(logs(), "msg=\"exec credential plugin refreshed the credential\" "
                             "command=./plug.sh expires=never trigger=401 changed=true") != NULL,
              "%s", logs());
    cr_expect_null(strstr(logs(), TOKEN2), "the token is never logged");
}

Test(execcred_http, an_expired_credential_is_fetched_before_the_request)
{
    two_runs("2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", NULL);
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    http_config();
    cr_expect_eq(get("/r"), 200);
    usleep(1100 * 1000);
    cr_expect_eq(get("/r"), 200);
    cr_expect_eq(get("/r"), 200);
    cr_expect_eq(runs(), 2);
    cr_expect_str_eq(auth_of(0), "Bearer " TOKEN, "run once at load; not again within a second");
    cr_expect_str_eq(auth_of(1), "Bearer " TOKEN2);
    cr_expect_str_eq(auth_of(2), "Bearer " TOKEN2);
    cr_expect(strstr(logs(), "expires=2999-01-01T00:00:00Z trigger=expiry changed=true") != NULL,
              "%s", logs());
}

Test(execcred_http, a_failed_refresh_keeps_the_old_token)
{
    two_runs("", "", "exit 4");
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    testserver_limit(testserver_route(srv, "GET", "/r", 401), 1);
    http_config();
    cr_expect_eq(get("/r"), 401);
    cr_expect_eq(get("/r"), 200);
    cr_expect_str_eq(auth_of(1), "Bearer " TOKEN);
    cr_expect(strstr(logs(), "msg=\"exec credential plugin failed; keeping the old credential\" "
                             "command=./plug.sh trigger=401 error=\"exec credential plugin "
                             "\\\"./plug.sh\\\": exit code 4\"") != NULL,
              "%s", logs());
}

Test(execcred_http, a_401_to_a_credential_already_replaced_runs_no_plugin)
{
    char err2[256];
    two_runs("", "", NULL);
    testserver_json(testserver_route(srv, "GET", "/r", 200), "{}");
    testserver_limit(testserver_route(srv, "GET", "/r", 401), 2);
    http_config();
    kube_http_t *hs[2] = {http, kube_http_new(loop, &cfg, err2, sizeof(err2))};
    cr_assert_not_null(hs[1], "%s", err2);
    long status[2];
    get_all(hs, 2, "/r", status);
    cr_expect(status[0] == 401 && status[1] == 401, "%ld %ld", status[0], status[1]);
    cr_expect_eq(runs(), 2, "both were sent with the first token: one run for both 401s");
    cr_expect_eq(get("/r"), 200);
    cr_expect_str_eq(auth_of(2), "Bearer " TOKEN2);
    kube_http_free(hs[1]);
}
