/*
 * execcred — exec credential plugins (see execcred.h): the parser of the
 * ExecCredential a plugin prints, the KUBERNETES_EXEC_INFO document it is
 * given, the run (posix_spawn, no shell; stdin /dev/null; stdout captured
 * up to KUBE_EXEC_MAX_OUTPUT; stderr captured and logged; the plugin's
 * process group killed after the timeout), and the cache of the credential
 * in the kube_config_t (when to run again, putting a new one in force).
 *
 * Owns the kube_exec_t and kube_exec_cred_t it frees and the child
 * process while it runs. Calls POSIX spawn and poll, yajl (util/jsontree,
 * util/jsongen), OpenSSL's base64 encoder, util/timefmt, util/log and
 * kubeconfig_io.c (token checks, wiping); called by kubeconfig.c (loading),
 * kubeconfig_io.c (freeing) and kube/http (refreshing).
 */
#include "kube/execcred.h"
#include "kube/config.h"
#include "kube/kubeconfig_int.h"
#include "util/jsongen.h"
#include "util/jsontree.h"
#include "util/log.h"
#include "util/strutil.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define EC_DEPTH     32 /* JSON nesting accepted in an ExecCredential */
#define EC_SHOWN     "%.100s"
#define EC_LINE_MAX  200 /* bytes of the plugin's stderr quoted in an error */
#define EC_POLL_WAIT 10  /* ms between checks for the end of a child */

/* --- the ExecCredential parser ------------------------------------------ */

/* Wipes every string and key of a parsed tree (tokens and keys are among
 * them) before it is freed. */
static void wipe_tree(yajl_val v)
{
    if (!v)
        return;
    if (YAJL_IS_STRING(v)) {
        explicit_bzero(v->u.string, strlen(v->u.string));
    } else if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            explicit_bzero((char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            wipe_tree(v->u.object.values[i]);
        }
    } else if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            wipe_tree(v->u.array.values[i]);
    }
}

/* Reads the string member key of obj (at names obj in messages) into *out,
 * NULL when absent or null. Returns -1 when it is not a string or longer
 * than max bytes. */
static int member_str(yajl_val obj, const char *at, const char *key, size_t max, const char **out,
                      char *err, size_t errlen)
{
    yajl_val v = util_json_member(obj, key);

    *out = NULL;
    if (!v)
        return 0;
    if (!YAJL_IS_STRING(v)) {
        util_set_err(err, errlen, "ExecCredential: %s%s: expected a string, got %s", at, key,
                     util_json_type_name(v));
        return -1;
    }
    if (strlen(v->u.string) > max) {
        util_set_err(err, errlen, "ExecCredential: %s%s: longer than %zu bytes", at, key, max);
        return -1;
    }
    *out = v->u.string[0] ? v->u.string : NULL;
    return 0;
}

/* Checks apiVersion and kind against what was asked. */
static int check_type(yajl_val top, const char *api_version, char *err, size_t errlen)
{
    const char *api, *kind;

    if (!YAJL_IS_OBJECT(top)) {
        util_set_err(err, errlen, "ExecCredential: expected an object, got %s",
                     util_json_type_name(top));
        return -1;
    }
    if (member_str(top, "", "apiVersion", KUBE_EXEC_MAX_STR, &api, err, errlen) < 0 ||
        member_str(top, "", "kind", KUBE_EXEC_MAX_STR, &kind, err, errlen) < 0)
        return -1;
    if (!api || strcmp(api, api_version) != 0) {
        util_set_err(err, errlen, "ExecCredential: apiVersion: \"" EC_SHOWN "\", expected %s",
                     api ? api : "", api_version);
        return -1;
    }
    if (!kind || strcmp(kind, "ExecCredential") != 0) {
        util_set_err(err, errlen, "ExecCredential: kind: \"" EC_SHOWN "\", expected ExecCredential",
                     kind ? kind : "");
        return -1;
    }
    return 0;
}

/* Copies a PEM string of status (key) into *out. */
static int take_pem(const char *s, const char *key, char **out, size_t *outlen, char *err,
                    size_t errlen)
{
    if (!s)
        return 0;
    if (!kube__kc_looks_like_pem(s, strlen(s))) {
        util_set_err(err, errlen, "ExecCredential: status.%s: not PEM data (no -----BEGIN line)",
                     key);
        return -1;
    }
    *out = strdup(s);
    if (!*out) {
        util_set_err(err, errlen, "ExecCredential: out of memory");
        return -1;
    }
    *outlen = strlen(s);
    return 0;
}

/* Fills out from the status object. */
static int read_status(yajl_val st, kube_exec_cred_t *out, char *err, size_t errlen)
{
    const char *tok, *cert, *key, *exp;

    if (member_str(st, "status.", "token", KUBE_EXEC_MAX_TOKEN, &tok, err, errlen) < 0 ||
        member_str(st, "status.", "clientCertificateData", KUBE_EXEC_MAX_OUTPUT, &cert, err,
                   errlen) < 0 ||
        member_str(st, "status.", "clientKeyData", KUBE_EXEC_MAX_OUTPUT, &key, err, errlen) < 0 ||
        member_str(st, "status.", "expirationTimestamp", 64, &exp, err, errlen) < 0)
        return -1;
    if (!tok && !cert && !key) {
        util_set_err(err, errlen,
                     "ExecCredential: status: neither a token nor a client "
                     "certificate and key");
        return -1;
    }
    if (!cert != !key) {
        util_set_err(err, errlen, "ExecCredential: status.%s is set without status.%s",
                     cert ? "clientCertificateData" : "clientKeyData",
                     cert ? "clientKeyData" : "clientCertificateData");
        return -1;
    }
    if (tok && !kube__kc_token_chars_ok(tok)) {
        util_set_err(err, errlen,
                     "ExecCredential: status.token: contains characters not allowed "
                     "in a bearer token");
        return -1;
    }
    if (exp) {
        char why[160];
        if (time_parse_rfc3339(exp, &out->expiry, why, sizeof(why)) < 0) {
            util_set_err(err, errlen, "ExecCredential: status.expirationTimestamp: %s", why);
            return -1;
        }
        out->has_expiry = true;
    }
    if (tok && !(out->token = strdup(tok))) {
        util_set_err(err, errlen, "ExecCredential: out of memory");
        return -1;
    }
    if (take_pem(cert, "clientCertificateData", &out->cert_pem, &out->cert_pem_len, err, errlen) <
            0 ||
        take_pem(key, "clientKeyData", &out->key_pem, &out->key_pem_len, err, errlen) < 0)
        return -1;
    return 0;
}

int kube_exec_cred_parse(const char *data, size_t len, const char *api_version,
                         kube_exec_cred_t *out, char *err, size_t errlen)
{
    yajl_val top, st;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len > KUBE_EXEC_MAX_OUTPUT) {
        util_set_err(err, errlen, "ExecCredential: larger than %u bytes", KUBE_EXEC_MAX_OUTPUT);
        return -1;
    }
    top = util_json_tree_parse(data, len, EC_DEPTH, "ExecCredential", err, errlen);
    if (!top)
        return -1;
    if (check_type(top, api_version, err, errlen) < 0)
        goto out;
    st = util_json_member(top, "status");
    if (!st) {
        util_set_err(err, errlen, "ExecCredential: status: missing");
        goto out;
    }
    if (!YAJL_IS_OBJECT(st)) {
        util_set_err(err, errlen, "ExecCredential: status: expected an object, got %s",
                     util_json_type_name(st));
        goto out;
    }
    rc = read_status(st, out, err, errlen);
out:
    wipe_tree(top);
    yajl_tree_free(top);
    if (rc < 0)
        kube_exec_cred_free(out);
    return rc;
}

void kube_exec_cred_free(kube_exec_cred_t *c)
{
    if (!c)
        return;
    kube__kc_wipe_free(c->token);
    kube__kc_wipe_free_len(c->cert_pem, c->cert_pem_len);
    kube__kc_wipe_free_len(c->key_pem, c->key_pem_len);
    memset(c, 0, sizeof(*c));
}

/* --- KUBERNETES_EXEC_INFO ------------------------------------------------- */

/* Writes spec.cluster: server, tls-server-name, certificate-authority-data
 * (ca_b64, or NULL) and insecure-skip-tls-verify, the empty ones left out. */
static void info_cluster(util_jgen_t *j, const kube_exec_cluster_t *cl, const char *ca_b64)
{
    util_jgen_str(j, "cluster");
    util_jgen_map_open(j);
    util_jgen_kv(j, "server", cl->server ? cl->server : "");
    if (cl->tls_server_name && *cl->tls_server_name)
        util_jgen_kv(j, "tls-server-name", cl->tls_server_name);
    if (ca_b64)
        util_jgen_kv(j, "certificate-authority-data", ca_b64);
    if (cl->insecure_skip_tls_verify) {
        util_jgen_str(j, "insecure-skip-tls-verify");
        util_jgen_bool(j, true);
    }
    util_jgen_map_close(j);
}

char *kube_exec_info_json(const kube_exec_t *e, const kube_exec_cluster_t *cl)
{
    bool with_cluster = e->provide_cluster_info && cl;
    char *out = NULL, *ca = NULL;
    util_jgen_t j;

    if (with_cluster && cl->ca_pem && cl->ca_pem_len) {
        ca = malloc(4 * ((cl->ca_pem_len + 2) / 3) + 1);
        if (!ca)
            return NULL;
        EVP_EncodeBlock((unsigned char *)ca, (const unsigned char *)cl->ca_pem,
                        (int)cl->ca_pem_len);
    }
    util_jgen_init(&j);
    util_jgen_map_open(&j);
    util_jgen_kv(&j, "apiVersion", e->api_version);
    util_jgen_kv(&j, "kind", "ExecCredential");
    util_jgen_str(&j, "spec");
    util_jgen_map_open(&j);
    util_jgen_str(&j, "interactive");
    util_jgen_bool(&j, false);
    if (with_cluster)
        info_cluster(&j, cl, ca);
    util_jgen_map_close(&j);
    util_jgen_map_close(&j);
    free(ca);
    if (util_jgen_finish(&j, &out) < 0)
        return NULL;
    return out;
}

/* --- the run ------------------------------------------------------------- */

/* What a run collected. */
typedef struct ec_run {
    const kube_exec_t *e;
    pid_t pid;
    int out_fd, err_fd;
    char *out; /* KUBE_EXEC_MAX_OUTPUT + 1 bytes */
    size_t out_len;
    char errtxt[KUBE_EXEC_MAX_STDERR + 1];
    size_t err_len;
    bool too_big, timed_out, reaped;
    int status;     /* waitpid's, once reaped */
    int wait_errno; /* why it could not be reaped */
} ec_run_t;

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* True when the environment entry kv sets a variable the plugin gets from
 * the kubeconfig (or KUBERNETES_EXEC_INFO): that one wins. */
static bool env_overridden(const kube_exec_t *e, const char *kv)
{
    size_t n = strcspn(kv, "=");

    if (n == strlen("KUBERNETES_EXEC_INFO") && strncmp(kv, "KUBERNETES_EXEC_INFO", n) == 0)
        return true;
    for (size_t i = 0; i < e->nenv; i++)
        if (strlen(e->env[i].name) == n && strncmp(kv, e->env[i].name, n) == 0)
            return true;
    return false;
}

/* Frees an environment made by make_env(): entries from own on are its. */
static void free_env(char **envp, size_t own)
{
    if (!envp)
        return;
    for (size_t i = own; envp[i]; i++)
        kube__kc_wipe_free(envp[i]); /* exec.env values may be secrets */
    free(envp);
}

/* The plugin's environment: vmdrain's, then exec.env, then
 * KUBERNETES_EXEC_INFO (info). NULL when memory runs out. */
static char **make_env(const kube_exec_t *e, const char *info, size_t *own)
{
    size_t n = 0, k = 0;
    char **envp;

    for (char **p = environ; p && *p; p++)
        n++;
    envp = calloc(n + e->nenv + 2, sizeof(*envp));
    if (!envp)
        return NULL;
    for (char **p = environ; p && *p; p++)
        if (!env_overridden(e, *p))
            envp[k++] = *p;
    *own = k;
    for (size_t i = 0; i < e->nenv; i++) {
        envp[k] = util_strprintf("%s=%s", e->env[i].name, e->env[i].value);
        if (!envp[k++])
            goto fail;
    }
    envp[k] = util_strprintf("KUBERNETES_EXEC_INFO=%s", info);
    if (!envp[k])
        goto fail;
    return envp;
fail:
    free_env(envp, *own);
    return NULL;
}

/* Prepares the child's descriptors and attributes: stdin /dev/null, stdout
 * and stderr the pipes, nothing else inherited, default signal dispositions
 * and an empty mask, a process group of its own (killed whole on timeout). */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int out_w, int err_w)
{
    sigset_t none, all;

    sigemptyset(&none);
    sigfillset(&all);
    if (posix_spawn_file_actions_init(fa) != 0)
        return -1;
    if (posix_spawnattr_init(at) != 0) {
        posix_spawn_file_actions_destroy(fa);
        return -1;
    }
    int rc = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0) |
             posix_spawn_file_actions_adddup2(fa, out_w, 1) |
             posix_spawn_file_actions_adddup2(fa, err_w, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    rc |= posix_spawn_file_actions_addclosefrom_np(fa, 3);
#endif
    rc |= posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                           POSIX_SPAWN_SETPGROUP);
    rc |= posix_spawnattr_setsigmask(at, &none) | posix_spawnattr_setsigdefault(at, &all) |
          posix_spawnattr_setpgroup(at, 0);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(fa);
        posix_spawnattr_destroy(at);
        return -1;
    }
    return 0;
}

/* Starts the plugin with its stdout and stderr on fresh pipes. Returns 0,
 * or an errno value (ENOENT: not found). */
static int spawn_child(ec_run_t *r, char *const envp[])
{
    const kube_exec_t *e = r->e;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    char **argv = calloc(e->nargs + 2, sizeof(*argv));

    if (!argv)
        return ENOMEM;
    argv[0] = e->path;
    for (size_t i = 0; i < e->nargs; i++)
        argv[i + 1] = e->args[i];
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        rc = errno;
        goto out;
    }
    if (spawn_setup(&fa, &at, outp[1], errp[1]) < 0) {
        rc = ENOMEM;
        goto out;
    }
    if (strchr(e->path, '/'))
        rc = posix_spawn(&r->pid, e->path, &fa, &at, argv, envp);
    else
        rc = posix_spawnp(&r->pid, e->path, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc == 0) {
        r->out_fd = outp[0];
        r->err_fd = errp[0];
        outp[0] = errp[0] = -1;
    }
out:
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    free(argv);
    return rc;
}

/* Reads what is there on one of the pipes; closes it at its end. */
static void drain_fd(ec_run_t *r, int *fd)
{
    char scratch[4096], *dst = scratch;
    size_t room = sizeof(scratch);
    bool is_out = fd == &r->out_fd;

    if (is_out) {
        dst = r->out + r->out_len;
        room = KUBE_EXEC_MAX_OUTPUT + 1 - r->out_len;
    }
    ssize_t n = read(*fd, dst, room);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    if (is_out) {
        r->out_len += (size_t)n;
        r->too_big = r->out_len > KUBE_EXEC_MAX_OUTPUT;
        return;
    }
    size_t keep = KUBE_EXEC_MAX_STDERR - r->err_len;
    keep = (size_t)n < keep ? (size_t)n : keep;
    memcpy(r->errtxt + r->err_len, scratch, keep);
    r->err_len += keep;
}

/* Collects stdout and stderr until both end, the output is too big or the
 * deadline passes. */
static void collect(ec_run_t *r, double deadline)
{
    while ((r->out_fd >= 0 || r->err_fd >= 0) && !r->too_big) {
        struct pollfd pf[2] = {{r->out_fd, POLLIN, 0}, {r->err_fd, POLLIN, 0}};
        double left = deadline - mono_now();
        if (left <= 0) {
            r->timed_out = true;
            return;
        }
        int n = poll(pf, 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            return;
        if (n <= 0)
            continue;
        if (r->out_fd >= 0 && pf[0].revents)
            drain_fd(r, &r->out_fd);
        if (r->err_fd >= 0 && pf[1].revents)
            drain_fd(r, &r->err_fd);
    }
}

/* Waits for the child to end by the deadline; kills its process group when
 * it is late or must stop (the output was too big). */
static void reap(ec_run_t *r, double deadline)
{
    for (;;) {
        bool stop = r->timed_out || r->too_big;
        if (stop) {
            kill(-r->pid, SIGKILL);
            kill(r->pid, SIGKILL);
        }
        pid_t w = waitpid(r->pid, &r->status, stop ? 0 : WNOHANG);
        if (w == r->pid) {
            r->reaped = true;
            return;
        }
        if (w < 0 && errno != EINTR) {
            r->wait_errno = errno;
            return;
        }
        if (w == 0 && mono_now() >= deadline)
            r->timed_out = true;
        else if (w == 0)
            poll(NULL, 0, EC_POLL_WAIT);
    }
}

/* The last non-empty line of the plugin's stderr, cut, in out. */
static void last_line(const ec_run_t *r, char *out, size_t outlen)
{
    size_t end = r->err_len, start;

    while (end > 0 && (r->errtxt[end - 1] == '\n' || r->errtxt[end - 1] == '\r'))
        end--;
    start = end;
    while (start > 0 && r->errtxt[start - 1] != '\n')
        start--;
    size_t n = end - start < outlen - 1 ? end - start : outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r->errtxt[start + i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* The message of a run that did not end with exit code 0. */
static void run_error(const ec_run_t *r, char *err, size_t errlen)
{
    const char *cmd = r->e->command;
    char line[EC_LINE_MAX + 1];

    last_line(r, line, sizeof(line));
    if (r->timed_out)
        util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": killed after %g s", cmd,
                     r->e->timeout);
    else if (r->too_big)
        util_set_err(err, errlen,
                     "exec credential plugin \"" EC_SHOWN "\": printed more than %u bytes", cmd,
                     KUBE_EXEC_MAX_OUTPUT);
    else if (!r->reaped)
        util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": cannot wait for it: %s",
                     cmd, strerror(r->wait_errno));
    else if (WIFSIGNALED(r->status))
        util_set_err(err, errlen,
                     "exec credential plugin \"" EC_SHOWN "\": killed by signal %d%s%s", cmd,
                     WTERMSIG(r->status), line[0] ? ": " : "", line);
    else
        util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": exit code %d%s%s", cmd,
                     WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1, line[0] ? ": " : "", line);
}

/* The message of a plugin that could not be started. */
static void spawn_error(const kube_exec_t *e, int rc, char *err, size_t errlen)
{
    if (rc != ENOENT) {
        util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": cannot run %s: %s",
                     e->command, e->path, strerror(rc));
        return;
    }
    util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": %s not found%s%s%s",
                 e->command, e->path, strchr(e->path, '/') ? "" : " in PATH",
                 e->install_hint ? "; " : "", e->install_hint ? e->install_hint : "");
}

/* Logs the plugin's stderr, when it wrote any. */
static void log_stderr(const ec_run_t *r, bool ok)
{
    char text[KUBE_EXEC_MAX_STDERR + 1];

    size_t n = r->err_len;

    while (n > 0 && (r->errtxt[n - 1] == '\n' || r->errtxt[n - 1] == '\r'))
        n--;
    if (n == 0)
        return;
    memcpy(text, r->errtxt, n);
    text[n] = '\0';
    log_kv(ok ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, "exec credential plugin wrote to stderr",
           "command", r->e->command, "stderr", text, (const char *)NULL);
}

/* Runs the child to its end. Returns 0 when it exited with code 0, else
 * -1 with err set. */
static int run_child(ec_run_t *r, char *const envp[], char *err, size_t errlen)
{
    double deadline = mono_now() + (r->e->timeout > 0 ? r->e->timeout : KUBE_EXEC_TIMEOUT);
    int rc = spawn_child(r, envp);

    if (rc != 0) {
        spawn_error(r->e, rc, err, errlen);
        return -1;
    }
    collect(r, deadline);
    reap(r, deadline);
    if (r->out_fd >= 0)
        close(r->out_fd);
    if (r->err_fd >= 0)
        close(r->err_fd);
    r->out_fd = r->err_fd = -1;
    if (r->timed_out || r->too_big || !r->reaped || !WIFEXITED(r->status) ||
        WEXITSTATUS(r->status) != 0) {
        run_error(r, err, errlen);
        return -1;
    }
    return 0;
}

int kube_exec_run(const kube_exec_t *e, const kube_exec_cluster_t *cl, kube_exec_cred_t *out,
                  char *err, size_t errlen)
{
    ec_run_t r = {.e = e, .pid = -1, .out_fd = -1, .err_fd = -1};
    char *info = kube_exec_info_json(e, cl), **envp = NULL, why[512];
    size_t own = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    r.out = malloc(KUBE_EXEC_MAX_OUTPUT + 1);
    if (info)
        envp = make_env(e, info, &own);
    if (!r.out || !envp) {
        util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": out of memory",
                     e->command);
        goto out;
    }
    if (run_child(&r, envp, err, errlen) == 0) {
        rc = kube_exec_cred_parse(r.out, r.out_len, e->api_version, out, why, sizeof(why));
        if (rc < 0)
            util_set_err(err, errlen, "exec credential plugin \"" EC_SHOWN "\": %s", e->command,
                         why);
        log_add_secret(out->token); /* before its stderr is logged */
    }
    log_stderr(&r, rc == 0);
out:
    if (r.out) /* out_len is at most one more than the cap */
        kube__kc_wipe_free_len(r.out,
                               r.out_len > KUBE_EXEC_MAX_OUTPUT ? KUBE_EXEC_MAX_OUTPUT : r.out_len);
    free_env(envp, own);
    free(info);
    return rc;
}

/* --- the cached credential ---------------------------------------------- */

static vd_time_t wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (vd_time_t){.sec = (int64_t)ts.tv_sec, .nsec = (int32_t)ts.tv_nsec};
}

bool kube_config_exec_due(const kube_config_t *c, bool force)
{
    const kube_exec_t *e = c->exec;

    if (!e)
        return false;
    double since = mono_now() - e->last_run;
    if (e->last_run > 0 && e->last_failed && since < KUBE_EXEC_RETRY_GAP)
        return false;
    if (force || !e->has_cred)
        return true;
    if (!e->has_expiry || since < KUBE_EXEC_MIN_GAP)
        return false;
    double margin = time_diff(e->obtained, e->expiry) / 2;
    margin = margin < 0 ? 0 : margin > KUBE_EXEC_MARGIN ? KUBE_EXEC_MARGIN : margin;
    return time_diff(wall_now(), e->expiry) <= margin;
}

/* True when the two blobs (either may be NULL) differ. */
static bool blob_differs(const char *a, size_t alen, const char *b, size_t blen)
{
    if (!a || !b)
        return a != b;
    return alen != blen || memcmp(a, b, alen) != 0;
}

int kube_config_exec_refresh(kube_config_t *c, bool *changed, char *err, size_t errlen)
{
    kube_exec_t *e = c->exec;
    kube_exec_cred_t cred;

    *changed = false;
    if (!e)
        return 0;
    kube_exec_cluster_t cl = {c->server, c->tls_server_name, c->ca_pem, c->ca_pem_len,
                              c->insecure_skip_tls_verify};
    int rc = kube_exec_run(e, &cl, &cred, err, errlen);
    e->last_run = mono_now();
    e->last_failed = rc < 0;
    if (rc < 0)
        return -1;
    *changed = blob_differs(c->token, c->token ? strlen(c->token) : 0, cred.token,
                            cred.token ? strlen(cred.token) : 0) ||
               blob_differs(c->cert_pem, c->cert_pem_len, cred.cert_pem, cred.cert_pem_len) ||
               blob_differs(c->key_pem, c->key_pem_len, cred.key_pem, cred.key_pem_len);
    kube__kc_wipe_free(c->token);
    kube__kc_wipe_free_len(c->cert_pem, c->cert_pem_len);
    kube__kc_wipe_free_len(c->key_pem, c->key_pem_len);
    c->token = cred.token;
    c->cert_pem = cred.cert_pem;
    c->cert_pem_len = cred.cert_pem_len;
    c->key_pem = cred.key_pem;
    c->key_pem_len = cred.key_pem_len;
    log_add_secret(c->token);
    e->has_cred = true;
    e->has_expiry = cred.has_expiry;
    e->expiry = cred.expiry;
    e->obtained = wall_now();
    e->generation++;
    return 0;
}

void kube_exec_free(kube_exec_t *e)
{
    if (!e)
        return;
    free(e->user);
    free(e->api_version);
    free(e->command);
    free(e->path);
    for (size_t i = 0; i < e->nargs; i++)
        free(e->args[i]);
    free(e->args);
    for (size_t i = 0; i < e->nenv; i++) {
        free(e->env[i].name);
        kube__kc_wipe_free(e->env[i].value); /* values may be secrets */
    }
    free(e->env);
    free(e->install_hint);
    free(e);
}
