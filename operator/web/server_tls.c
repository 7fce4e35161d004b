/*
 * server_tls — the webhook server's certificate pair and client CA:
 * reading the PEM files, building the SSL_CTX (TLS 1.2 and newer; with a
 * client CA, a client certificate it signed is required), and reloading
 * it when the files change (web/server.h describes the rules).
 *
 * Owns the server's SSL_CTX and the files' identities. Calls OpenSSL,
 * util/buf, util/log and util/strutil; called by server.c (start, the
 * reload timer) and server_conn.c (error text).
 */
#include "util/log.h"
#include "util/strutil.h"
#include "web/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The oldest OpenSSL error of this thread as text ("" when none); the
 * queue is cleared. */
const char *web__ssl_error_text(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();

    buf[0] = '\0';
    if (e)
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

/* --- certificates ------------------------------------------------------ */

static int file_id_get(const char *path, file_id_t *id)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -1;
    memset(id, 0, sizeof(*id));
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
    id->ctime = st.st_ctim;
    return 0;
}

static bool file_id_eq(const file_id_t *a, const file_id_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Reads a whole (small) file into out, which is reset first. Returns 0 or
 * -1 with err naming the file. */
static int read_pem(const char *what, const char *path, buf_t *out, char *err, size_t errlen)
{
    char tmp[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    buf_reset(out);
    if (fd < 0) {
        util_set_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                util_set_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
            close(fd);
            return n < 0 ? -1 : 0;
        }
        if (buf_append(out, tmp, (size_t)n) < 0) {
            util_set_err(err, errlen, "%s %s: larger than %d bytes", what, path, PEM_MAX);
            close(fd);
            return -1;
        }
    }
}

/* Never prompts for a passphrase: encrypted keys are refused. */
static int no_password(char *buf, int size, int rwflag, void *ud)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)ud;
    return -1;
}

/* Puts the certificate chain of PEM text pem into ctx. */
static int ctx_use_chain(SSL_CTX *ctx, const char *path, const buf_t *pem, char *err, size_t errlen)
{
    char e[256];
    BIO *b = BIO_new_mem_buf(pem->data ? pem->data : "", (int)pem->len);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, no_password, NULL) : NULL;
    int rc = -1;

    if (!x) {
        util_set_err(err, errlen, "cert_file %s: no PEM certificate (%s)", path,
                     web__ssl_error_text(e, sizeof(e)));
        goto out_bio;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        util_set_err(err, errlen, "cert_file %s: %s", path, web__ssl_error_text(e, sizeof(e)));
        goto out_x;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(b, NULL, no_password, NULL);
        if (!ca)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            util_set_err(err, errlen, "cert_file %s: chain: %s", path,
                         web__ssl_error_text(e, sizeof(e)));
            goto out_x;
        }
    }
    ERR_clear_error(); /* the end of the chain is reported as an error */
    rc = 0;
out_x:
    X509_free(x);
out_bio:
    BIO_free(b);
    return rc;
}

/* Puts the private key of PEM text pem into ctx and checks it matches. */
static int ctx_use_key(SSL_CTX *ctx, const char *path, const buf_t *pem, char *err, size_t errlen)
{
    char e[256];
    BIO *b = BIO_new_mem_buf(pem->data ? pem->data : "", (int)pem->len);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
    int rc = -1;

    if (!k) {
        util_set_err(err, errlen, "key_file %s: no unencrypted PEM private key (%s)", path,
                     web__ssl_error_text(e, sizeof(e)));
        goto out_bio;
    }
    if (SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        util_set_err(err, errlen, "key_file %s does not match cert_file: %s", path,
                     web__ssl_error_text(e, sizeof(e)));
        goto out_key;
    }
    rc = 0;
out_key:
    EVP_PKEY_free(k);
out_bio:
    BIO_free(b);
    return rc;
}

/* Makes ctx require a client certificate signed by one of the CA
 * certificates of PEM text pem. */
static int ctx_use_client_ca(SSL_CTX *ctx, const char *path, const buf_t *pem, char *err,
                             size_t errlen)
{
    char e[256];
    BIO *b = BIO_new_mem_buf(pem->data ? pem->data : "", (int)pem->len);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    int n = 0, rc = -1;

    if (!b || !store || !names) {
        util_set_err(err, errlen, "client_ca_file %s: out of memory", path);
        goto out;
    }
    for (X509 *x; (x = PEM_read_bio_X509(b, NULL, no_password, NULL)); n++) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(x));
        int ok = X509_STORE_add_cert(store, x) == 1 && name && sk_X509_NAME_push(names, name) > 0;
        X509_free(x);
        if (!ok) {
            X509_NAME_free(name);
            util_set_err(err, errlen, "client_ca_file %s: %s", path,
                         web__ssl_error_text(e, sizeof(e)));
            goto out;
        }
    }
    ERR_clear_error(); /* the end of the PEM text is reported as an error */
    if (n == 0) {
        util_set_err(err, errlen, "client_ca_file %s: no PEM certificate", path);
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
    names = NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    rc = 0;
out:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    BIO_free(b);
    return rc;
}

/* A server SSL_CTX for the PEM texts (ca: the client CA's, or NULL),
 * owned by the caller, or NULL with err set. */
static SSL_CTX *ctx_build(const web_server_opts_t *o, const buf_t *cert, const buf_t *key,
                          const buf_t *ca, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char e[256];

    if (!ctx) {
        util_set_err(err, errlen, "TLS: %s", web__ssl_error_text(e, sizeof(e)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"vmdrain", 7);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        ctx_use_chain(ctx, o->cert_file, cert, err, errlen) < 0 ||
        ctx_use_key(ctx, o->key_file, key, err, errlen) < 0 ||
        (ca && ctx_use_client_ca(ctx, o->client_ca_file, ca, err, errlen) < 0)) {
        if (err && !err[0])
            util_set_err(err, errlen, "TLS: %s", web__ssl_error_text(e, sizeof(e)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Logs the serial and expiry of the certificate ctx serves. */
void web__log_cert(const char *msg, const web_server_t *s)
{
    X509 *x = SSL_CTX_get0_certificate(s->ctx);
    BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    char until[64] = "";
    BIO *b = BIO_new(BIO_s_mem());

    if (x && b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1)
        BIO_read(b, until, sizeof(until) - 1);
    log_info(msg, "cert", s->opts.cert_file, "serial", hex ? hex : "", "not_after", until);
    BIO_free(b);
    OPENSSL_free(hex);
    BN_free(bn);
    ERR_clear_error();
}

/* The identities of the pair's files and of the client CA file (zeroed
 * when there is none). Returns 0, or -1 with errno set. */
static int files_id_get(const web_server_t *s, file_id_t *c, file_id_t *k, file_id_t *ca)
{
    memset(ca, 0, sizeof(*ca));
    if (file_id_get(s->opts.cert_file, c) < 0 || file_id_get(s->opts.key_file, k) < 0)
        return -1;
    return s->opts.client_ca_file ? file_id_get(s->opts.client_ca_file, ca) : 0;
}

/* Loads the certificate pair (and the client CA) into a new SSL_CTX and
 * makes it the one new connections get. Returns 0; -1 with err set when
 * they do not load (the old context stays); -2 when a file changed while
 * it was read (try again later). The identities of the files are
 * recorded unless -2. */
int web__cert_load(web_server_t *s, char *err, size_t errlen)
{
    file_id_t c1, k1, a1, c2, k2, a2;
    buf_t cert, key, ca;
    SSL_CTX *ctx = NULL, *open = NULL;
    const char *ca_file = s->opts.client_ca_file;
    int rc = -1;

    buf_init(&cert, PEM_MAX);
    buf_init(&key, PEM_MAX);
    buf_init(&ca, PEM_MAX);
    if (files_id_get(s, &c1, &k1, &a1) < 0) {
        util_set_err(err, errlen, "certificate files %s, %s%s%s: %s", s->opts.cert_file,
                     s->opts.key_file, ca_file ? ", " : "", ca_file ? ca_file : "",
                     strerror(errno));
        goto out;
    }
    if (read_pem("cert_file", s->opts.cert_file, &cert, err, errlen) < 0 ||
        read_pem("key_file", s->opts.key_file, &key, err, errlen) < 0 ||
        (ca_file && read_pem("client_ca_file", ca_file, &ca, err, errlen) < 0))
        goto out_record;
    if (files_id_get(s, &c2, &k2, &a2) < 0 || !file_id_eq(&c1, &c2) || !file_id_eq(&k1, &k2) ||
        !file_id_eq(&a1, &a2)) {
        util_set_err(err, errlen, "certificate files changed while being read");
        rc = -2;
        goto out;
    }
    ctx = ctx_build(&s->opts, &cert, &key, ca_file ? &ca : NULL, err, errlen);
    if (!ctx)
        goto out_record;
    if (s->opts.plain_tls) { /* the second listener asks for no client certificate */
        open = ca_file ? ctx_build(&s->opts, &cert, &key, NULL, err, errlen) : ctx;
        if (!open) {
            SSL_CTX_free(ctx);
            goto out_record;
        }
        if (open == ctx)
            SSL_CTX_up_ref(ctx);
    }
    SSL_CTX_free(s->ctx); /* open connections hold their own reference */
    SSL_CTX_free(s->ctx_open);
    s->ctx = ctx;
    s->ctx_open = open;
    rc = 0;
out_record:
    s->cert_id = c1;
    s->key_id = k1;
    s->ca_id = a1;
out:
    buf_free(&cert);
    buf_free(&key);
    buf_free(&ca);
    return rc;
}

/* Timer: reloads the pair when either file changed. */
void web__on_reload_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    web_server_t *s = w->data;
    file_id_t c, k, a;
    char err[512] = "";
    int rc;

    (void)loop;
    (void)revents;
    if (files_id_get(s, &c, &k, &a) < 0) {
        if (!s->files_missing_logged)
            log_warn("certificate files unreadable; keeping the current pair", "cert",
                     s->opts.cert_file, "key", s->opts.key_file, "client_ca",
                     s->opts.client_ca_file ? s->opts.client_ca_file : "", "error",
                     strerror(errno));
        s->files_missing_logged = true;
        return;
    }
    s->files_missing_logged = false;
    if (file_id_eq(&c, &s->cert_id) && file_id_eq(&k, &s->key_id) && file_id_eq(&a, &s->ca_id))
        return;
    rc = web__cert_load(s, err, sizeof(err));
    if (rc == 0)
        web__log_cert("certificate reloaded", s);
    else if (rc == -1)
        log_error("certificate reload failed; keeping the current pair", "error", err);
}

int web_server_reload_now(web_server_t *s, char *err, size_t errlen)
{
    char e[512] = "";
    int rc = web__cert_load(s, e, sizeof(e));

    if (rc == 0) {
        web__log_cert("certificate reloaded", s);
        return 0;
    }
    util_set_err(err, errlen, "%s", e);
    log_error("certificate reload failed; keeping the current pair", "error", e);
    return -1;
}
