#include <criterion/criterion.h>

#include "kube/config.h"
#include "kube/execcred.h"
#include "util/log.h"

#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fake PEM blobs whose lengths leave 0, 1 and 2 bytes over a multiple of
 * three, so that every base64 padding case is decoded. */
#define CA_PEM   "-----BEGIN CERTIFICATE-----\nQ0EgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nY2xpZW50IGNlcnQ=\n-----END CERTIFICATE-----\n"
#define KEY_PEM  "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlh\n-----END PRIVATE KEY-----\n"
#define TOKEN    "eyJhbGciOiJSUzI1NiJ9.tok-en_value.sig"

static char dir[64];
static char *captured;
static size_t captured_len;
static FILE *sink;
static kube_config_t cfg;
static char err[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    strcpy(dir, "/tmp/vmdrain-kubeconfig-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    unsetenv("KUBECONFIG");
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
}

static void teardown(void)
{
    kube_config_free(&cfg);
    if (sink)
        fclose(sink);
    sink = NULL;
    free(captured);
    captured = NULL;
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT, NULL);
    log_clear_secrets();
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(kubeconfig, .init = setup, .fini = teardown);

/* Returns dir/rel in a static buffer (one of four, so that a few can be
 * used in one call). */
static const char *at(const char *rel)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, rel);
    return p;
}

/* Writes content to dir/rel, creating one level of subdirectory. */
static void put(const char *rel, const char *content)
{
    const char *slash = strchr(rel, '/');
    if (slash) {
        char sub[256];
        snprintf(sub, sizeof(sub), "%.*s", (int)(slash - rel), rel);
        mkdir(at(sub), 0700);
    }
    FILE *f = fopen(at(rel), "w");
    cr_assert_not_null(f, "cannot write %s", at(rel));
    fputs(content, f);
    fclose(f);
}

static void putf(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(const char *rel, const char *fmt, ...)
{
    char *s;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&s, fmt, ap), 0);
    va_end(ap);
    put(rel, s);
    free(s);
}

/* Base64 of s, in a static buffer (one of four). */
static const char *b64(const char *s)
{
    static char out[4][1024];
    static int next;
    char *o = out[next++ % 4];
    EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)s, (int)strlen(s));
    return o;
}

static void capture_log(void)
{
    sink = open_memstream(&captured, &captured_len);
    cr_assert_not_null(sink);
    log_setup(LOG_LEVEL_DEBUG, LOG_FORMAT_TEXT, sink);
}

static const char *log_output(void)
{
    fflush(sink);
    return captured ? captured : "";
}

/* Loads dir/config and expects failure with a message that contains every
 * given piece. */
static void expect_error(const char *context, ...)
{
    va_list ap;
    cr_assert_eq(kube_config_load(at("config"), context, &cfg, err, sizeof(err)), -1,
                 "loaded, expected an error");
    cr_expect_null(cfg.server, "out must stay empty on failure");
    va_start(ap, context);
    for (const char *piece = va_arg(ap, const char *); piece; piece = va_arg(ap, const char *))
        cr_expect(strstr(err, piece) != NULL, "error \"%s\" lacks \"%s\"", err, piece);
    va_end(ap);
}

#define EXPECT_ERROR(ctx, ...) expect_error(ctx, __VA_ARGS__, (const char *)NULL)

/* A kubeconfig with one context "main" → cluster "c1" → user "u1"; the
 * cluster and user bodies are supplied by the test (indented 4 spaces). */
static void put_config(const char *cluster_body, const char *user_body)
{
    putf("config",
         "apiVersion: v1\n"
         "kind: Config\n"
         "current-context: main\n"
         "clusters:\n"
         "- name: c1\n"
         "  cluster:\n"
         "%s"
         "contexts:\n"
         "- name: main\n"
         "  context:\n"
         "    cluster: c1\n"
         "    user: u1\n"
         "users:\n"
         "- name: u1\n"
         "  user:\n"
         "%s",
         cluster_body, user_body);
}

#define SERVER "    server: https://10.0.0.1:6443\n"

/* --- valid input ------------------------------------------------------------ */

Test(kubeconfig, inline_data)
{
    putf("config",
         "apiVersion: v1\n"
         "current-context: main\n"
         "clusters:\n"
         "- name: c1\n"
         "  cluster:\n"
         "    server: https://10.0.0.1:6443//\n"
         "    certificate-authority-data: %s\n"
         "    tls-server-name: api.example\n"
         "    extensions: [ignored]\n"
         "contexts:\n"
         "- name: main\n"
         "  context: {cluster: c1, user: u1, namespace: ignored}\n"
         "users:\n"
         "- name: u1\n"
         "  user:\n"
         "    client-certificate-data: \"%s\"\n"
         "    client-key-data: '%s'\n"
         "    token: %s\n",
         b64(CA_PEM), b64(CERT_PEM), b64(KEY_PEM), TOKEN);
    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.server, "https://10.0.0.1:6443");
    cr_expect_str_eq(cfg.source, at("config"));
    cr_expect_str_eq(cfg.context, "main");
    cr_expect_str_eq(cfg.tls_server_name, "api.example");
    cr_expect_str_eq(cfg.ca_pem, CA_PEM);
    cr_expect_eq(cfg.ca_pem_len, strlen(CA_PEM));
    cr_expect_str_eq(cfg.cert_pem, CERT_PEM);
    cr_expect_eq(cfg.cert_pem_len, strlen(CERT_PEM));
    cr_expect_str_eq(cfg.key_pem, KEY_PEM);
    cr_expect_eq(cfg.key_pem_len, strlen(KEY_PEM));
    cr_expect_str_eq(cfg.token, TOKEN);
    cr_expect_null(cfg.token_file);
    cr_expect_not(cfg.insecure_skip_tls_verify);
}

Test(kubeconfig, base64_padding_and_line_breaks)
{
    /* every padding case, and data folded over lines as a YAML block */
    const char *blobs[] = {CA_PEM, CERT_PEM, KEY_PEM};
    cr_assert(strlen(CA_PEM) % 3 == 0 && strlen(CERT_PEM) % 3 == 2 && strlen(KEY_PEM) % 3 == 1,
              "fixtures must cover every padding case");
    for (int i = 0; i < 3; i++) {
        char folded[1024];
        const char *e = b64(blobs[i]);
        snprintf(folded, sizeof(folded), "%.20s\n      %s", e, e + 20);
        putf("config",
             "current-context: main\n"
             "clusters: [{name: c1, cluster: {server: 'https://h'}}]\n"
             "contexts: [{name: main, context: {cluster: c1, user: u1}}]\n"
             "users:\n"
             "- name: u1\n"
             "  user:\n"
             "    client-certificate-data: %s\n"
             "    client-key-data: |\n"
             "      %s\n",
             b64(CERT_PEM), folded);
        cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
        cr_expect_str_eq(cfg.key_pem, blobs[i]);
        cr_expect_eq(cfg.key_pem_len, strlen(blobs[i]));
        kube_config_free(&cfg);
    }
}

Test(kubeconfig, file_references_are_relative_to_the_kubeconfig)
{
    put("conf/ca.pem", CA_PEM);
    put("conf/cert.pem", CERT_PEM);
    put("keys/key.pem", KEY_PEM);
    putf("conf/config",
         "current-context: main\n"
         "clusters:\n"
         "- name: c1\n"
         "  cluster: {server: 'https://h:1', certificate-authority: ca.pem}\n"
         "contexts:\n"
         "- name: main\n"
         "  context: {cluster: c1, user: u1}\n"
         "users:\n"
         "- name: u1\n"
         "  user: {client-certificate: ./cert.pem, client-key: %s}\n",
         at("keys/key.pem"));
    cr_assert_eq(chdir("/"), 0); /* not relative to the working directory */
    cr_assert_eq(kube_config_load(at("conf/config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.ca_pem, CA_PEM);
    cr_expect_str_eq(cfg.cert_pem, CERT_PEM);
    cr_expect_str_eq(cfg.key_pem, KEY_PEM);
    cr_expect_null(cfg.token);
}

Test(kubeconfig, kubeconfig_env_takes_first_existing_file)
{
    put_config("    server: https://a:1\n", "    token: " TOKEN "\n");
    rename(at("config"), at("a"));
    put_config("    server: https://b:1\n", "    token: " TOKEN "\n");
    rename(at("config"), at("b"));
    char list[1600];
    snprintf(list, sizeof(list), "%s::%s:%s", at("missing"), at("a"), at("b"));
    setenv("KUBECONFIG", list, 1);
    cr_assert_eq(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.source, at("a"));
    cr_expect_str_eq(cfg.server, "https://a:1");
    kube_config_free(&cfg);

    /* an explicit path wins over $KUBECONFIG */
    cr_assert_eq(kube_config_load(at("b"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.server, "https://b:1");
    kube_config_free(&cfg);

    /* no listed file exists: the error names the first */
    snprintf(list, sizeof(list), "%s:%s", at("none1"), at("none2"));
    setenv("KUBECONFIG", list, 1);
    cr_expect_eq(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), -1);
    char want[700];
    snprintf(want, sizeof(want), "kubeconfig %s: No such file or directory", at("none1"));
    cr_expect_str_eq(err, want);
}

Test(kubeconfig, home_fallback)
{
    put_config(SERVER, "    token: " TOKEN "\n");
    mkdir(at(".kube"), 0700);
    rename(at("config"), at(".kube/config"));
    setenv("HOME", dir, 1);
    cr_assert_eq(kube_config_load(NULL, NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.source, at(".kube/config"));
    cr_expect_str_eq(cfg.server, "https://10.0.0.1:6443");
}

Test(kubeconfig, context_selection)
{
    put("config", "current-context: main\n"
                  "clusters:\n"
                  "- name: c1\n"
                  "  cluster: {server: 'https://one:1'}\n"
                  "- name: c2\n"
                  "  cluster: {server: 'https://two:2', insecure-skip-tls-verify: false}\n"
                  "contexts:\n"
                  "- {name: main, context: {cluster: c1, user: u1}}\n"
                  "- {name: other, context: {cluster: c2, user: u2}}\n"
                  "- {name: anonymous, context: {cluster: c2}}\n"
                  "users:\n"
                  "- {name: u1, user: {token: token-of-user-one}}\n"
                  "- {name: u2, user: {token: token-of-user-two}}\n");
    cr_assert_eq(kube_config_load(at("config"), "other", &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.context, "other");
    cr_expect_str_eq(cfg.server, "https://two:2");
    cr_expect_str_eq(cfg.token, "token-of-user-two");
    kube_config_free(&cfg);

    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.context, "main");
    cr_expect_str_eq(cfg.token, "token-of-user-one");
    kube_config_free(&cfg);

    cr_assert_eq(kube_config_load(at("config"), "anonymous", &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_null(cfg.token);
    cr_expect_null(cfg.cert_pem);
}

Test(kubeconfig, token_file_is_read_trimmed_and_kept)
{
    put("tokens/t", "  " TOKEN "\n\n");
    put_config(SERVER, "    token: inline-token-loses\n"
                       "    tokenFile: tokens/t\n");
    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.token, TOKEN);
    cr_expect_str_eq(cfg.token_file, at("tokens/t"));

    /* the token is registered as a secret */
    capture_log();
    log_info("probe", "value", "Authorization header carried " TOKEN " today");
    cr_expect_null(strstr(log_output(), TOKEN), "token logged: %s", log_output());
    cr_expect_not_null(strstr(log_output(), "[REDACTED]"), "got: %s", log_output());
}

Test(kubeconfig, null_values_are_absent)
{
    put_config(SERVER "    certificate-authority-data: ~\n",
               "    token: null\n    exec:\n    client-key-data: ''\n");
    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_null(cfg.token);
    cr_expect_null(cfg.ca_pem);
    cr_expect_null(cfg.key_pem);
}

Test(kubeconfig, insecure_skip_tls_verify_warns)
{
    capture_log();
    put_config(SERVER "    insecure-skip-tls-verify: true\n", "    token: " TOKEN "\n");
    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect(cfg.insecure_skip_tls_verify);
    const char *out = log_output();
    cr_expect_not_null(strstr(out, "level=warn"), "got: %s", out);
    cr_expect_not_null(strstr(out, "insecure-skip-tls-verify"), "got: %s", out);
    cr_expect_not_null(strstr(out, "cluster=c1"), "got: %s", out);
    kube_config_free(&cfg);

    /* and stays quiet when verification is on */
    fclose(sink);
    sink = NULL;
    free(captured);
    captured = NULL;
    capture_log();
    put_config(SERVER "    insecure-skip-tls-verify: false\n", "    token: " TOKEN "\n");
    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_not(cfg.insecure_skip_tls_verify);
    cr_expect_null(strstr(log_output(), "insecure"), "got: %s", log_output());
}

Test(kubeconfig, parse_buffer_without_source)
{
    const char *y = "current-context: x\n"
                    "contexts: [{name: x, context: {cluster: c}}]\n"
                    "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8080/'}}]\n";
    cr_assert_eq(kube_config_parse_buffer(y, strlen(y), NULL, NULL, &cfg, err, sizeof(err)), 0,
                 "%s", err);
    cr_expect_str_eq(cfg.server, "http://127.0.0.1:8080");
    cr_expect_str_eq(cfg.source, "<memory>");
    kube_config_free(&cfg);
    cr_assert_eq(kube_config_parse_buffer(y, strlen(y), NULL, "y", &cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "kubeconfig <memory>: context \"y\" not found");
}

/* --- in-cluster ------------------------------------------------------------- */

static void put_service_account(const char *token)
{
    put("sa/token", token);
    put("sa/ca.crt", CA_PEM);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
}

Test(kubeconfig, in_cluster)
{
    put_service_account(TOKEN "\n");
    cr_assert_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.server, "https://10.96.0.1:443");
    cr_expect_str_eq(cfg.token, TOKEN);
    cr_expect_str_eq(cfg.token_file, at("sa/token"));
    cr_expect_str_eq(cfg.ca_pem, CA_PEM);
    cr_expect_str_eq(cfg.source, "in-cluster");
    cr_expect_null(cfg.context);
    kube_config_free(&cfg);

    setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
    cr_assert_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.server, "https://[fd00:10:96::1]:443");
}

Test(kubeconfig, in_cluster_without_ca_uses_system_store)
{
    put_service_account(TOKEN);
    remove(at("sa/ca.crt"));
    capture_log();
    cr_assert_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_null(cfg.ca_pem);
    cr_expect_not_null(strstr(log_output(), "level=warn"), "got: %s", log_output());
}

Test(kubeconfig, in_cluster_errors)
{
    char want[700];

    put_service_account(TOKEN);
    unsetenv("KUBERNETES_SERVICE_HOST");
    cr_expect_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "in-cluster: KUBERNETES_SERVICE_HOST is not set");

    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443x", 1);
    cr_expect_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "in-cluster: KUBERNETES_SERVICE_PORT: not a port number: \"443x\"");

    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    setenv("KUBERNETES_SERVICE_HOST", "evil/host", 1);
    cr_expect_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), -1);
    cr_expect_not_null(strstr(err, "KUBERNETES_SERVICE_HOST: not a host name"), "%s", err);

    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    put("sa/token", " \n\t\n");
    cr_expect_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "in-cluster: %s: empty token", at("sa/token"));
    cr_expect_str_eq(err, want);

    remove(at("sa/token"));
    cr_expect_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "in-cluster: %s: No such file or directory", at("sa/token"));
    cr_expect_str_eq(err, want);
    cr_expect_null(cfg.server);
}

/* --- token reload ------------------------------------------------------------ */

Test(kubeconfig, token_reload)
{
    bool changed = true;
    char want[700];

    put_service_account("first-token-value\n");
    cr_assert_eq(kube_config_in_cluster(at("sa"), &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.token, "first-token-value");

    /* unchanged */
    cr_expect_eq(kube_config_reload_token(&cfg, &changed, err, sizeof(err)), 0, "%s", err);
    cr_expect_not(changed);
    cr_expect_str_eq(cfg.token, "first-token-value");

    /* rotated */
    put("sa/token", "second-token-value\n");
    cr_expect_eq(kube_config_reload_token(&cfg, &changed, err, sizeof(err)), 0, "%s", err);
    cr_expect(changed);
    cr_expect_str_eq(cfg.token, "second-token-value");
    capture_log();
    log_info("probe", "v", "x second-token-value y");
    cr_expect_null(strstr(log_output(), "second-token-value"), "got: %s", log_output());

    /* empty: the old token stays */
    put("sa/token", "\n");
    changed = true;
    cr_expect_eq(kube_config_reload_token(&cfg, &changed, err, sizeof(err)), -1);
    cr_expect_not(changed);
    snprintf(want, sizeof(want), "token file %s: empty token", at("sa/token"));
    cr_expect_str_eq(err, want);
    cr_expect_str_eq(cfg.token, "second-token-value");

    /* missing: the old token stays */
    remove(at("sa/token"));
    cr_expect_eq(kube_config_reload_token(&cfg, &changed, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "token file %s: No such file or directory", at("sa/token"));
    cr_expect_str_eq(err, want);
    cr_expect_str_eq(cfg.token, "second-token-value");
}

Test(kubeconfig, token_reload_without_file_is_a_no_op)
{
    bool changed = true;
    put_config(SERVER, "    token: " TOKEN "\n");
    cr_assert_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(kube_config_reload_token(&cfg, &changed, err, sizeof(err)), 0);
    cr_expect_not(changed);
    cr_expect_str_eq(cfg.token, TOKEN);
}

/* --- bad input ----------------------------------------------------------------- */

Test(kubeconfig, missing_file)
{
    char want[700];
    cr_expect_eq(kube_config_load(at("nope"), NULL, &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "kubeconfig %s: No such file or directory", at("nope"));
    cr_expect_str_eq(err, want);
}

Test(kubeconfig, not_a_regular_file)
{
    cr_assert_eq(mkfifo(at("config"), 0600), 0);
    EXPECT_ERROR(NULL, at("config"), ": not a regular file");
}

Test(kubeconfig, malformed_yaml_names_line_and_column)
{
    char want[700];
    put("config", "apiVersion: v1\n"
                  "kind: Config\n"
                  "current-context: a: b\n");
    snprintf(want, sizeof(want),
             "kubeconfig %s: line 3 column 19: mapping values are not allowed in this context",
             at("config"));
    EXPECT_ERROR(NULL, want);
    cr_expect_str_eq(err, want);

    put("config", "clusters:\n  - [unclosed\n");
    EXPECT_ERROR(NULL, at("config"), ": line 3 column 1: ", "did not find expected");
}

Test(kubeconfig, empty_and_multi_document_and_non_mapping)
{
    put("config", "");
    EXPECT_ERROR(NULL, ": empty document");
    put("config", "current-context: a\n---\ncurrent-context: b\n");
    EXPECT_ERROR(NULL, ": more than one YAML document");
    put("config", "- a\n- b\n");
    EXPECT_ERROR(NULL, ": expected a mapping at the top level, got a sequence");
}

Test(kubeconfig, missing_current_context)
{
    put("config", "apiVersion: v1\nclusters: []\n");
    EXPECT_ERROR(NULL, at("config"), ": current-context: not set, and no context was requested");
}

Test(kubeconfig, unknown_context_cluster_user)
{
    put_config(SERVER, "    token: " TOKEN "\n");
    EXPECT_ERROR("foo", "kubeconfig ", at("config"), ": context \"foo\" not found");

    put("config", "current-context: gone\ncontexts: []\n");
    EXPECT_ERROR(NULL, ": current-context: context \"gone\" not found");

    put("config", "current-context: m\n"
                  "contexts: [{name: m, context: {cluster: c9, user: u1}}]\n"
                  "clusters: [{name: c1, cluster: {server: 'https://h'}}]\n");
    EXPECT_ERROR(NULL, ": contexts[0].context.cluster: cluster \"c9\" not found");

    put("config", "current-context: m\n"
                  "contexts: [{name: x}, {name: m, context: {cluster: c1, user: u9}}]\n"
                  "clusters: [{name: c1, cluster: {server: 'https://h'}}]\n"
                  "users: [{name: u1, user: {}}]\n");
    EXPECT_ERROR(NULL, ": contexts[1].context.user: user \"u9\" not found");

    put("config", "current-context: m\ncontexts: [{name: m, context: {user: u1}}]\n");
    EXPECT_ERROR(NULL, ": contexts[0].context.cluster: missing");
}

Test(kubeconfig, invalid_base64_is_refused_without_echoing_it)
{
    const char *bad[] = {"c2VjcmV0a2V5", /* valid, but not PEM */
                         "c2VjcmV0a2V5X", "c2Vj=mV0", "c2Vj cmV0",       "c2VjcmV0a2V5===",
                         "c2VjcmV0a2V=5", "@@@@",     "c2VjcmV0a2V5=A=="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "    client-certificate-data: %s\n    client-key-data: \"%s\"\n", b64(CERT_PEM),
                 bad[i]);
        put_config(SERVER, body);
        EXPECT_ERROR(NULL, at("config"),
                     i == 0 ? ": users[0].user.client-key-data: not PEM data"
                            : ": users[0].user.client-key-data: invalid base64");
        cr_expect_null(strstr(err, bad[i]), "error echoes the key data: %s", err);
    }
}

Test(kubeconfig, wrongly_typed_nodes)
{
    put("config", "current-context: m\nclusters: nope\n"
                  "contexts: [{name: m, context: {cluster: c1}}]\n");
    EXPECT_ERROR(NULL, ": clusters: expected a sequence, got a scalar");

    put_config("    server: [https://h]\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.server: expected a scalar, got a sequence");

    put("config", "current-context: m\ncontexts: [plain]\n");
    EXPECT_ERROR(NULL, ": contexts[0]: expected a mapping, got a scalar");

    put("config", "current-context: [m]\n");
    EXPECT_ERROR(NULL, ": current-context: expected a scalar, got a sequence");

    put_config(SERVER "    insecure-skip-tls-verify: yes\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.insecure-skip-tls-verify: expected true or false");

    put_config(SERVER "    insecure-skip-tls-verify: \"true\"\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.insecure-skip-tls-verify: expected true or false");

    put_config(SERVER, "    - token\n");
    EXPECT_ERROR(NULL, ": users[0].user: expected a mapping, got a sequence");

    put_config(SERVER, "    token: {a: b}\n");
    EXPECT_ERROR(NULL, ": users[0].user.token: expected a scalar, got a mapping");
}

Test(kubeconfig, duplicates_are_refused)
{
    put_config(SERVER "    server: https://other\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.server: duplicate key");

    put("config",
        "current-context: m\n"
        "contexts: [{name: m, context: {cluster: c}}, {name: m, context: {cluster: d}}]\n");
    EXPECT_ERROR(NULL, ": contexts[1].name: duplicate context name \"m\"");
}

Test(kubeconfig, oversize_file)
{
    int fd = open(at("config"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)KUBE_CONFIG_MAX_FILE + 1), 0);
    close(fd);
    EXPECT_ERROR(NULL, at("config"), ": larger than 4194304 bytes");

    /* a file exactly at the cap is read (and then fails as YAML) */
    fd = open(at("config"), O_WRONLY | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)KUBE_CONFIG_MAX_FILE), 0);
    close(fd);
    cr_expect_eq(kube_config_load(at("config"), NULL, &cfg, err, sizeof(err)), -1);
    cr_expect_null(strstr(err, "larger than"), "%s", err);
}

Test(kubeconfig, unsupported_authentication_is_refused)
{
    put_config(SERVER, "    auth-provider: {name: oidc}\n");
    EXPECT_ERROR(NULL, ": users[0].user.auth-provider: user \"u1\": auth-provider plugins are not "
                       "supported");

    put_config(SERVER, "    username: admin\n    password: hunter2hunter2\n");
    EXPECT_ERROR(NULL, ": users[0].user.username: user \"u1\": basic authentication is not "
                       "supported");
    cr_expect_null(strstr(err, "hunter2"), "%s", err);
}

Test(kubeconfig, inconsistent_credentials)
{
    put_config(SERVER "    certificate-authority: ca.pem\n"
                      "    certificate-authority-data: Zm9v\n",
               "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster: certificate-authority and "
                       "certificate-authority-data are both set");

    char body[256];
    snprintf(body, sizeof(body), "    client-certificate-data: %s\n", b64(CERT_PEM));
    put_config(SERVER, body);
    EXPECT_ERROR(NULL, ": users[0].user: client-certificate is set without client-key");

    put("ca.pem", CA_PEM);
    put_config(SERVER "    certificate-authority: ca.pem\n    insecure-skip-tls-verify: true\n",
               "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster: insecure-skip-tls-verify and a certificate "
                       "authority are both set");
}

Test(kubeconfig, bad_references_and_values)
{
    char want[700];

    put_config(SERVER "    certificate-authority: missing-ca.pem\n", "");
    snprintf(want, sizeof(want),
             "kubeconfig %s: clusters[0].cluster.certificate-authority: %s: No such file or "
             "directory",
             at("config"), at("missing-ca.pem"));
    EXPECT_ERROR(NULL, want);
    cr_expect_str_eq(err, want);

    put("ca.pem", "not a certificate\n");
    put_config(SERVER "    certificate-authority: ca.pem\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.certificate-authority: ", at("ca.pem"),
                 ": not PEM data");

    put_config("    server: ftp://h\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.server: expected an https:// or http:// URL");

    put_config("    server: https://admin:pa55word@h:6443/\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.server: credentials in the URL are not supported");
    cr_expect_null(strstr(err, "pa55word"), "%s", err);

    put_config("    insecure-skip-tls-verify: false\n", "");
    EXPECT_ERROR(NULL, ": clusters[0].cluster.server: missing");

    put_config(SERVER, "    token: \"abc\\ndef-secret-part\"\n");
    EXPECT_ERROR(NULL, ": users[0].user.token: contains characters not allowed in a bearer token");
    cr_expect_null(strstr(err, "secret-part"), "%s", err);

    put_config(SERVER, "    token: \"abc\\0def\"\n");
    EXPECT_ERROR(NULL, ": users[0].user.token: contains a NUL byte");

    put_config(SERVER, "    tokenFile: no-token\n");
    EXPECT_ERROR(NULL, ": users[0].user.tokenFile: ", at("no-token"), ": No such file");
}

/* --- exec credential plugins (running them: test_execcred.c) ------------------ */

#define EXEC_V1 "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"

Test(kubeconfig, exec_is_read_but_not_run_by_the_parser)
{
    put_config(SERVER, EXEC_V1 "      command: bin/get-token\n"
                               "      args: [token, --cluster, ~, \"\"]\n"
                               "      env:\n"
                               "      - name: AWS_PROFILE\n"
                               "        value: prod\n"
                               "      - {name: EMPTY}\n"
                               "      installHint: \"apt-get install get-token\"\n"
                               "      provideClusterInfo: true\n"
                               "      interactiveMode: Never\n");
    FILE *f = fopen(at("config"), "r");
    char text[4096];
    size_t n = fread(text, 1, sizeof(text), f);
    fclose(f);
    cr_assert_eq(kube_config_parse_buffer(text, n, at("config"), NULL, &cfg, err, sizeof(err)), 0,
                 "%s", err);
    const kube_exec_t *e = cfg.exec;
    cr_assert_not_null(e);
    cr_expect_null(cfg.token, "the plugin is not run by the parser");
    cr_expect_str_eq(e->user, "u1");
    cr_expect_str_eq(e->api_version, KUBE_EXEC_API_V1);
    cr_expect_str_eq(e->command, "bin/get-token");
    cr_expect_str_eq(e->path, at("bin/get-token"), "relative to the kubeconfig's directory");
    cr_assert_eq(e->nargs, 4);
    cr_expect_str_eq(e->args[0], "token");
    cr_expect_str_eq(e->args[1], "--cluster");
    cr_expect_str_eq(e->args[2], "");
    cr_expect_str_eq(e->args[3], "");
    cr_assert_eq(e->nenv, 2);
    cr_expect_str_eq(e->env[0].name, "AWS_PROFILE");
    cr_expect_str_eq(e->env[0].value, "prod");
    cr_expect_str_eq(e->env[1].value, "");
    cr_expect_str_eq(e->install_hint, "apt-get install get-token");
    cr_expect(e->provide_cluster_info);
    cr_expect_eq(e->timeout, KUBE_EXEC_TIMEOUT);
    kube_config_free(&cfg);

    put_config(SERVER, "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
                       "      command: /usr/bin/aws\n");
    cr_assert_eq(kube_config_parse_buffer("x: 1", 4, NULL, NULL, &cfg, err, sizeof(err)), -1);
    f = fopen(at("config"), "r");
    n = fread(text, 1, sizeof(text), f);
    fclose(f);
    cr_assert_eq(kube_config_parse_buffer(text, n, NULL, NULL, &cfg, err, sizeof(err)), 0, "%s",
                 err);
    cr_expect_str_eq(cfg.exec->path, "/usr/bin/aws");
    cr_expect_str_eq(cfg.exec->api_version, KUBE_EXEC_API_V1BETA1);
    cr_expect_eq(cfg.exec->nargs, 0);
}

Test(kubeconfig, exec_settings_are_checked)
{
    static const struct {
        const char *user, *want;
    } cases[] = {
        {"    exec: {command: aws}\n", ": users[0].user.exec.apiVersion: missing"},
        {"    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: aws\n",
         ": users[0].user.exec.apiVersion: \"client.authentication.k8s.io/v1alpha1\" is not "
         "supported"},
        {EXEC_V1, ": users[0].user.exec.command: missing"},
        {EXEC_V1 "      command: aws\n      interactiveMode: Always\n",
         ": users[0].user.exec.interactiveMode: Always is not supported: vmdrain never runs a "
         "plugin interactively"},
        {EXEC_V1 "      command: aws\n      interactiveMode: Sometimes\n",
         ".interactiveMode: \"Sometimes\": expected Never, IfAvailable or Always"},
        {EXEC_V1 "      command: aws\n      provideClusterInfo: yes\n",
         ".exec.provideClusterInfo: expected true or false"},
        {EXEC_V1 "      command: aws\n      args: [a, {b: c}]\n",
         ": users[0].user.exec.args[1]: expected a scalar, got a mapping"},
        {EXEC_V1 "      command: aws\n      args: a\n",
         ": users[0].user.exec.args: expected a sequence, got a scalar"},
        {EXEC_V1 "      command: aws\n      env: [{value: x}]\n",
         ": users[0].user.exec.env[0].name: missing"},
        {EXEC_V1 "      command: aws\n      env: [{name: A=B, value: x}]\n",
         ": users[0].user.exec.env[0].name: contains '='"},
        {EXEC_V1 "      command: aws\n      env: [x]\n",
         ": users[0].user.exec.env[0]: expected a mapping, got a scalar"},
        {"    exec: aws\n", ": users[0].user.exec: expected a mapping, got a scalar"},
        {EXEC_V1 "      command: aws\n    token: abcdefgh\n",
         ": users[0].user: exec and token are both set"},
        {EXEC_V1 "      command: aws\n    client-key: key.pem\n",
         ": users[0].user: exec and client-key are both set"},
    };

    put("key.pem", KEY_PEM);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        put_config(SERVER, cases[i].user);
        EXPECT_ERROR(NULL, cases[i].want);
    }
}

Test(kubeconfig, exec_lists_and_strings_are_capped)
{
    char *body = malloc(64 << 10), *p = body;
    p += sprintf(p, "%s      command: aws\n      args:\n", EXEC_V1);
    for (int i = 0; i <= KUBE_EXEC_MAX_ARGS; i++)
        p += sprintf(p, "      - a%d\n", i);
    put_config(SERVER, body);
    EXPECT_ERROR(NULL, ": users[0].user.exec.args: more than 64 entries");

    p = body + sprintf(body, "%s      command: aws\n      env:\n", EXEC_V1);
    for (int i = 0; i <= KUBE_EXEC_MAX_ENV; i++)
        p += sprintf(p, "      - {name: N%d, value: v}\n", i);
    put_config(SERVER, body);
    EXPECT_ERROR(NULL, ": users[0].user.exec.env: more than 64 entries");

    p = body + sprintf(body, "%s      command: ", EXEC_V1);
    memset(p, 'a', KUBE_EXEC_MAX_STR + 1);
    strcpy(p + KUBE_EXEC_MAX_STR + 1, "\n");
    put_config(SERVER, body);
    EXPECT_ERROR(NULL, ": users[0].user.exec.command: longer than 4096 bytes");

    p = body + sprintf(body, "%s      command: aws\n      args: [", EXEC_V1);
    memset(p, 'b', KUBE_EXEC_MAX_STR + 1);
    strcpy(p + KUBE_EXEC_MAX_STR + 1, "]\n");
    put_config(SERVER, body);
    EXPECT_ERROR(NULL, ": users[0].user.exec.args[0]: longer than 4096 bytes");
    free(body);
}
