#include "web/server.h"
#include "util/log.h"
#include "util/httpstatus.h"
#include "util/metrics.h"
#include "util/strutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* TLS 1.2 suites (Mozilla "intermediate"); TLS 1.3 keeps OpenSSL's defaults. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define READ_CHUNK       16384
#define STASH_MAX        (64 * 1024)
#define OUT_MAX          ((size_t)64 << 20)
#define PEM_MAX          (1024 * 1024)
#define LINGER_SECONDS   1.0
#define ACCEPT_PAUSE     0.5
#define ACCEPT_BURST     64
#define CONTENT_TYPE_MAX 128
#define METRICS_CT       "text/plain; version=0.0.4; charset=utf-8"

typedef enum conn_state {
    CONN_HANDSHAKE,
    CONN_READING,  /* parsing a request (or waiting for one) */
    CONN_HANDLING, /* a handler has the request */
    CONN_WRITING,  /* the response is being sent */
    CONN_LINGER,   /* after a closing response: discarding input until EOF */
} conn_state_t;

/* Results of one I/O step. */
enum { IO_PROGRESS, IO_AGAIN, IO_CLOSE };

/* Which header value is being collected. */
enum { HDR_NONE, HDR_CONTENT_TYPE, HDR_EXPECT };

typedef struct route {
    char *method;
    char *path;
    unsigned flags;
    bool observe; /* counted in webhook_request_duration_seconds */
    web_handler_fn fn;
    void *ud;
} route_t;

typedef struct listener {
    web_server_t *srv;
    int fd;
    int port;
    bool plain;
    ev_io io;
} listener_t;

/* What identifies a certificate file's content without reading it. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
} file_id_t;

typedef struct web_conn web_conn_t;

struct web_conn {
    web_server_t *srv;
    web_conn_t *prev, *next;
    int fd; /* -1 for a socketless connection (web__parse_feed) */
    SSL *ssl;
    bool plain;
    bool ssl_fatal; /* no SSL_shutdown after a fatal TLS error */
    ev_io io;
    ev_timer timer;
    int io_events; /* events the watcher is started with; 0 when stopped */
    int want;      /* events the last I/O step waits for */
    conn_state_t state;
    bool closing;     /* destroy at the next safe point */
    bool close_after; /* close once the response is written */
    bool dispatching; /* a handler runs synchronously */
    char peer[64];
    /* the request being parsed */
    http_parser parser;
    buf_t url;
    buf_t body;
    size_t head_bytes;
    char hname[16];
    size_t hname_len;
    int hkind;
    bool hvalue; /* the parser is inside a header value */
    char content_type[CONTENT_TYPE_MAX];
    size_t ct_len;
    char expect[16];
    size_t expect_len;
    bool keep_alive;
    bool observe;
    int err_status; /* set by a parser callback that refused the request */
    const char *err_msg;
    double started; /* monotonic seconds at the request's first byte */
    /* bytes received after a complete request, parsed once it is answered */
    buf_t stash;
    /* the response */
    buf_t out;
    size_t out_off;
    web_request_t *pending;
};

struct web_request {
    web_conn_t *conn; /* NULL once detached */
    metrics_histogram_t *hist;
    double started;
    char method[16];
    char *path;
    char *query;
    char content_type[CONTENT_TYPE_MAX];
    char *body;
    size_t body_len;
    char peer[64];
};

struct web_server {
    struct ev_loop *loop;
    web_server_opts_t opts; /* strings owned */
    listener_t tls;
    listener_t plain;
    ev_timer accept_pause;
    ev_timer reload_timer;
    SSL_CTX *ctx;
    file_id_t cert_id, key_id;
    bool files_missing_logged;
    route_t *routes;
    int nroutes;
    web_conn_t *conns;
    int nconns;
    bool full_logged;
    metrics_histogram_t *hist;
};

static void conn_input(web_conn_t *c, const char *data, size_t len);
static void conn_run(web_conn_t *c);
static void conn_update_io(web_conn_t *c);
static void conn_destroy(web_conn_t *c);

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The oldest OpenSSL error of this thread as text ("" when none); the
 * queue is cleared. */
static const char *ssl_error_text(char *buf, size_t n)
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
                     ssl_error_text(e, sizeof(e)));
        goto out_bio;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        util_set_err(err, errlen, "cert_file %s: %s", path, ssl_error_text(e, sizeof(e)));
        goto out_x;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(b, NULL, no_password, NULL);
        if (!ca)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            util_set_err(err, errlen, "cert_file %s: chain: %s", path,
                         ssl_error_text(e, sizeof(e)));
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
                     ssl_error_text(e, sizeof(e)));
        goto out_bio;
    }
    if (SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        util_set_err(err, errlen, "key_file %s does not match cert_file: %s", path,
                     ssl_error_text(e, sizeof(e)));
        goto out_key;
    }
    rc = 0;
out_key:
    EVP_PKEY_free(k);
out_bio:
    BIO_free(b);
    return rc;
}

/* A server SSL_CTX for the PEM texts, owned by the caller, or NULL with
 * err set. */
static SSL_CTX *ctx_build(const web_server_opts_t *o, const buf_t *cert, const buf_t *key,
                          char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char e[256];

    if (!ctx) {
        util_set_err(err, errlen, "TLS: %s", ssl_error_text(e, sizeof(e)));
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
        ctx_use_key(ctx, o->key_file, key, err, errlen) < 0) {
        if (err && !err[0])
            util_set_err(err, errlen, "TLS: %s", ssl_error_text(e, sizeof(e)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Logs the serial and expiry of the certificate ctx serves. */
static void log_cert(const char *msg, const web_server_t *s)
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

/* Loads the certificate pair into a new SSL_CTX and makes it the one new
 * connections get. Returns 0; -1 with err set when the pair does not load
 * (the old context stays); -2 when a file changed while it was read (try
 * again later). The identities of the files are recorded unless -2. */
static int cert_load(web_server_t *s, char *err, size_t errlen)
{
    file_id_t c1, k1, c2, k2;
    buf_t cert, key;
    SSL_CTX *ctx = NULL;
    int rc = -1;

    buf_init(&cert, PEM_MAX);
    buf_init(&key, PEM_MAX);
    if (file_id_get(s->opts.cert_file, &c1) < 0 || file_id_get(s->opts.key_file, &k1) < 0) {
        util_set_err(err, errlen, "certificate pair %s, %s: %s", s->opts.cert_file,
                     s->opts.key_file, strerror(errno));
        goto out;
    }
    if (read_pem("cert_file", s->opts.cert_file, &cert, err, errlen) < 0 ||
        read_pem("key_file", s->opts.key_file, &key, err, errlen) < 0)
        goto out_record;
    if (file_id_get(s->opts.cert_file, &c2) < 0 || file_id_get(s->opts.key_file, &k2) < 0 ||
        !file_id_eq(&c1, &c2) || !file_id_eq(&k1, &k2)) {
        util_set_err(err, errlen, "certificate pair changed while being read");
        rc = -2;
        goto out;
    }
    ctx = ctx_build(&s->opts, &cert, &key, err, errlen);
    if (!ctx)
        goto out_record;
    SSL_CTX_free(s->ctx); /* open connections hold their own reference */
    s->ctx = ctx;
    rc = 0;
out_record:
    s->cert_id = c1;
    s->key_id = k1;
out:
    buf_free(&cert);
    buf_free(&key);
    return rc;
}

/* Timer: reloads the pair when either file changed. */
static void on_reload_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    web_server_t *s = w->data;
    file_id_t c, k;
    char err[512] = "";
    int rc;

    (void)loop;
    (void)revents;
    if (file_id_get(s->opts.cert_file, &c) < 0 || file_id_get(s->opts.key_file, &k) < 0) {
        if (!s->files_missing_logged)
            log_warn("certificate files unreadable; keeping the current pair", "cert",
                     s->opts.cert_file, "key", s->opts.key_file, "error", strerror(errno));
        s->files_missing_logged = true;
        return;
    }
    s->files_missing_logged = false;
    if (file_id_eq(&c, &s->cert_id) && file_id_eq(&k, &s->key_id))
        return;
    rc = cert_load(s, err, sizeof(err));
    if (rc == 0)
        log_cert("certificate reloaded", s);
    else if (rc == -1)
        log_error("certificate reload failed; keeping the current pair", "error", err);
}

int web_server_reload_now(web_server_t *s, char *err, size_t errlen)
{
    char e[512] = "";
    int rc = cert_load(s, e, sizeof(e));

    if (rc == 0) {
        log_cert("certificate reloaded", s);
        return 0;
    }
    util_set_err(err, errlen, "%s", e);
    log_error("certificate reload failed; keeping the current pair", "error", e);
    return -1;
}

/* --- listeners ---------------------------------------------------------- */

/* Splits "host:port", "[v6]:port" or ":port" into host (NULL for all
 * addresses) and port. Returns 0 or -1. */
static int split_addr(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon;
    size_t hlen;

    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -1;
        hlen = (size_t)(end - addr - 1);
        colon = end + 1;
        addr++;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - addr);
    }
    if (hlen >= hn || strlen(colon + 1) >= pn || !colon[1])
        return -1;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return atoi(port) <= 65535 ? 0 : -1;
}

/* A listening socket bound to ai, or -1 with errno set. */
static int bind_one(const struct addrinfo *ai, bool wildcard)
{
    int one = 1, zero = 0, saved;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6 && wildcard)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0)
        return fd;
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents);

/* Binds and starts listener l on addr. Returns 0 or -1 with err naming
 * addr. */
static int listener_open(web_server_t *s, listener_t *l, const char *addr, bool plain, char *err,
                         size_t errlen)
{
    char host[256], port[16];
    struct addrinfo hints = {0}, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc, saved = 0;

    if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
        util_set_err(err, errlen, "listen %s: want host:port with a port from 0 to 65535", addr);
        return -1;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        util_set_err(err, errlen, "listen %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai && l->fd < 0; ai = ai->ai_next) {
        l->fd = bind_one(ai, !host[0]);
        saved = errno;
    }
    freeaddrinfo(res);
    if (l->fd < 0) {
        util_set_err(err, errlen, "listen %s: %s", addr, strerror(saved));
        return -1;
    }
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
        l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    l->srv = s;
    l->plain = plain;
    ev_io_init(&l->io, on_accept, l->fd, EV_READ);
    l->io.data = l;
    ev_io_start(s->loop, &l->io);
    return 0;
}

static void listener_close(web_server_t *s, listener_t *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(s->loop, &l->io);
    close(l->fd);
    l->fd = -1;
    l->port = -1;
}

/* Timer: accepting resumes after running out of file descriptors. */
static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    web_server_t *s = w->data;

    (void)revents;
    if (s->tls.fd >= 0)
        ev_io_start(loop, &s->tls.io);
    if (s->plain.fd >= 0)
        ev_io_start(loop, &s->plain.io);
}

/* --- connections: setup and teardown ---------------------------------- */

static const http_parser_settings parser_settings;

/* Clears the per-request parse state. */
static void conn_reset_request(web_conn_t *c)
{
    buf_reset(&c->url);
    buf_reset(&c->body);
    c->head_bytes = 0;
    c->hname_len = 0;
    c->hkind = HDR_NONE;
    c->hvalue = false;
    c->content_type[0] = '\0';
    c->ct_len = 0;
    c->expect[0] = '\0';
    c->expect_len = 0;
    c->keep_alive = false;
    c->observe = true;
    c->err_status = 0;
    c->err_msg = NULL;
}

/* A connection on fd (-1: socketless), linked into s. NULL when out of
 * memory. */
static web_conn_t *conn_alloc(web_server_t *s, int fd, bool plain)
{
    web_conn_t *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->srv = s;
    c->fd = fd;
    c->plain = plain;
    c->state = CONN_READING;
    c->want = EV_READ;
    buf_init(&c->url, s->opts.max_header);
    buf_init(&c->body, s->opts.max_body);
    buf_init(&c->stash, STASH_MAX);
    buf_init(&c->out, OUT_MAX);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    conn_reset_request(c);
    strcpy(c->peer, "-");
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

/* Arms the connection's one timer for t seconds from now. */
static void conn_timer(web_conn_t *c, double t)
{
    if (c->fd < 0)
        return;
    c->timer.repeat = t;
    ev_timer_again(c->srv->loop, &c->timer);
}

/* Detaches the pending request, if any: its handler still answers it,
 * which then only frees it. */
static void conn_detach(web_conn_t *c)
{
    if (c->pending) {
        c->pending->conn = NULL;
        c->pending = NULL;
    }
}

/* Closes and frees a connection. Only called where nothing of c is on the
 * stack any more. */
static void conn_destroy(web_conn_t *c)
{
    web_server_t *s = c->srv;

    conn_detach(c);
    if (c->fd >= 0) {
        ev_io_stop(s->loop, &c->io);
        ev_timer_stop(s->loop, &c->timer);
    }
    if (c->ssl) {
        if (!c->ssl_fatal && c->state != CONN_HANDSHAKE && !SSL_in_init(c->ssl)) {
            SSL_set_quiet_shutdown(c->ssl, 0);
            SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->fd >= 0)
        close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    buf_free(&c->url);
    buf_free(&c->body);
    buf_free(&c->stash);
    buf_free(&c->out);
    free(c);
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* "ip:port" of a peer address. */
static void format_peer(const struct sockaddr_storage *ss, socklen_t sl, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?", serv[8] = "?";

    getnameinfo((const struct sockaddr *)ss, sl, host, sizeof(host), serv, sizeof(serv),
                NI_NUMERICHOST | NI_NUMERICSERV);
    if (ss->ss_family == AF_INET6)
        snprintf(out, n, "[%s]:%s", host, serv);
    else
        snprintf(out, n, "%s:%s", host, serv);
}

/* Sets up an accepted socket: TLS or plain, watchers, the handshake
 * timeout. Closes fd when that fails. */
static void conn_accepted(web_server_t *s, int fd, bool plain, const struct sockaddr_storage *ss,
                          socklen_t sl)
{
    int one = 1;
    web_conn_t *c = conn_alloc(s, fd, plain);

    if (!c) {
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    format_peer(ss, sl, c->peer, sizeof(c->peer));
    ev_io_init(&c->io, on_conn_io, fd, 0);
    c->io.data = c;
    ev_init(&c->timer, on_conn_timer);
    c->timer.data = c;
    if (!plain) {
        c->ssl = SSL_new(s->ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
            ERR_clear_error();
            conn_destroy(c);
            return;
        }
        SSL_set_accept_state(c->ssl);
        c->state = CONN_HANDSHAKE;
    }
    conn_timer(c, s->opts.read_timeout);
    conn_run(c);
    if (c->closing)
        conn_destroy(c);
    else
        conn_update_io(c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    listener_t *l = w->data;
    web_server_t *s = l->srv;

    (void)revents;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("webhook: cannot accept; pausing", "error", strerror(errno));
                ev_io_stop(loop, &s->tls.io);
                ev_io_stop(loop, &s->plain.io);
                ev_timer_set(&s->accept_pause, ACCEPT_PAUSE, 0);
                ev_timer_start(loop, &s->accept_pause);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_warn("webhook: accept failed", "error", strerror(errno));
            }
            return;
        }
        if (s->nconns >= s->opts.max_conns) {
            if (!s->full_logged)
                log_warn("webhook: connection limit reached; closing new connections");
            s->full_logged = true;
            close(fd);
            continue;
        }
        s->full_logged = false;
        conn_accepted(s, fd, l->plain, &ss, sl);
    }
}

/* --- connections: parsing ----------------------------------------------- */

/* Refuses the request from inside a parser callback: the status is sent
 * once the parser returned. Returns the callback's failure value. */
static int refuse(web_conn_t *c, int status, const char *msg)
{
    if (!c->err_status) {
        c->err_status = status;
        c->err_msg = msg;
    }
    return -1;
}

/* Counts request-head bytes against the cap. */
static int count_head(web_conn_t *c, size_t len)
{
    c->head_bytes += len;
    if (c->head_bytes > c->srv->opts.max_header)
        return refuse(c, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    web_conn_t *c = p->data;

    conn_reset_request(c);
    c->started = mono_now();
    conn_timer(c, c->srv->opts.read_timeout);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    web_conn_t *c = p->data;

    if (count_head(c, len) < 0 || buf_append(&c->url, at, len) < 0)
        return refuse(c, 431, "request header fields too large");
    return 0;
}

/* Ends the header value being collected. */
static void header_done(web_conn_t *c)
{
    c->hvalue = false;
    c->hname_len = 0;
    c->hkind = HDR_NONE;
}

/* Which header the name collected so far is (HDR_NONE when uninteresting
 * or longer than any we keep). */
static int header_kind(const web_conn_t *c)
{
    if (c->hname_len == 12 && strncasecmp(c->hname, "content-type", 12) == 0)
        return HDR_CONTENT_TYPE;
    if (c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0)
        return HDR_EXPECT;
    return HDR_NONE;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    web_conn_t *c = p->data;

    if (count_head(c, len) < 0)
        return -1;
    if (c->hvalue)
        header_done(c);
    if (c->hname_len + len < sizeof(c->hname))
        memcpy(c->hname + c->hname_len, at, len);
    c->hname_len += len;
    return 0;
}

/* Appends len bytes to a fixed header buffer, dropping what does not fit. */
static void keep_value(char *dst, size_t cap, size_t *dlen, const char *at, size_t len)
{
    size_t n = *dlen + len < cap ? len : cap - 1 - *dlen;

    memcpy(dst + *dlen, at, n);
    *dlen += n;
    dst[*dlen] = '\0';
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    web_conn_t *c = p->data;

    if (count_head(c, len) < 0)
        return -1;
    if (!c->hvalue) {
        c->hvalue = true;
        c->hkind = c->hname_len < sizeof(c->hname) ? header_kind(c) : HDR_NONE;
        if (c->hkind == HDR_CONTENT_TYPE)
            c->ct_len = 0;
        else if (c->hkind == HDR_EXPECT)
            c->expect_len = 0;
    }
    if (c->hkind == HDR_CONTENT_TYPE)
        keep_value(c->content_type, sizeof(c->content_type), &c->ct_len, at, len);
    else if (c->hkind == HDR_EXPECT)
        keep_value(c->expect, sizeof(c->expect), &c->expect_len, at, len);
    return 0;
}

/* Queues "100 Continue" when the client waits for it before the body. */
static void maybe_continue(web_conn_t *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (c->expect_len && strcasecmp(c->expect, "100-continue") == 0 &&
        (c->parser.content_length > 0 || (c->parser.flags & F_CHUNKED)))
        buf_append(&c->out, cont, sizeof(cont) - 1);
}

static int on_headers_complete(http_parser *p)
{
    web_conn_t *c = p->data;

    header_done(c);
    if (p->upgrade)
        return refuse(c, 400, "protocol upgrade not supported");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->opts.max_body)
        return refuse(c, 413, "request body too large");
    maybe_continue(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    web_conn_t *c = p->data;

    if (buf_append(&c->body, at, len) < 0)
        return refuse(c, 413, "request body too large");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    web_conn_t *c = p->data;

    c->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1); /* one request at a time: the rest waits in the stash */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- connections: responses --------------------------------------------- */

/* The reason phrase of a status line; codes the table does not know read
 * "OK" below 400 and "Error" from 400. */
static const char *status_text(int status)
{
    const char *p = util_http_phrase(status);

    if (p)
        return p;
    return status < 400 ? "OK" : "Error";
}

/* Queues a response on c and moves it to WRITING; extra holds whole
 * header lines or is "". Observes the request's duration when it counts. */
static void conn_queue(web_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                       const char *extra)
{
    bool close = c->close_after || !c->keep_alive;

    if (c->observe && c->srv->hist && c->started > 0)
        metrics_histogram_observe(c->srv->hist, mono_now() - c->started, NULL);
    c->close_after = close;
    if (buf_printf(&c->out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                   "Connection: %s\r\n\r\n",
                   status, status_text(status), ctype ? ctype : "text/plain; charset=utf-8", len,
                   extra, close ? "close" : "keep-alive") < 0 ||
        buf_append(&c->out, body, len) < 0) {
        log_warn("webhook: response too large; closing", "peer", c->peer);
        c->closing = true;
        return;
    }
    c->state = CONN_WRITING;
    c->want = EV_WRITE;
    conn_timer(c, c->srv->opts.write_timeout);
}

/* Queues a text response ("msg\n"). */
static void conn_queue_text(web_conn_t *c, int status, const char *msg, const char *extra)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", msg);

    conn_queue(c, status, NULL, body,
               n < 0                       ? 0
               : (size_t)n >= sizeof(body) ? sizeof(body) - 1
                                           : (size_t)n,
               extra);
}

/* Answers a request that cannot be served and closes afterwards. */
static void conn_fail(web_conn_t *c, int status, const char *msg)
{
    log_debug("webhook: bad request", "peer", c->peer, "status", status_text(status), "error", msg);
    c->close_after = true;
    conn_queue_text(c, status, msg, "");
}

/* --- connections: routing ----------------------------------------------- */

/* Whether a Content-Type is application/json (parameters allowed). */
static bool is_json(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

/* Splits the request target into path and query (pointers into a fresh
 * copy in *store, owned by the caller). Returns -1 for a target that is not
 * origin-form or absolute-form. */
static int split_target(const buf_t *url, char **store, const char **path, const char **query)
{
    struct http_parser_url u;
    const char *t = url->data ? url->data : "";
    char *copy;

    if (t[0] != '/') {
        http_parser_url_init(&u);
        if (http_parser_parse_url(t, url->len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
            return -1;
        t += u.field_data[UF_PATH].off;
    }
    copy = strdup(t);
    if (!copy)
        return -1;
    copy[strcspn(copy, "#")] = '\0';
    *store = copy;
    *path = copy;
    char *q = strchr(copy, '?');
    if (q)
        *q++ = '\0';
    *query = q ? q : "";
    return 0;
}

/* The route for method and path on c's listener, or NULL; *known says
 * whether the path has a route for another method, and allow lists those
 * methods. */
static const route_t *route_find(const web_conn_t *c, const char *method, const char *path,
                                 bool *known, char *allow, size_t n)
{
    const web_server_t *s = c->srv;
    const route_t *hit = NULL;
    size_t used = 0;

    *known = false;
    allow[0] = '\0';
    for (int i = 0; i < s->nroutes; i++) {
        const route_t *r = &s->routes[i];
        if (strcmp(r->path, path) != 0 || (c->plain && !(r->flags & WEB_ROUTE_PLAIN)))
            continue;
        *known = true;
        if (strcmp(r->method, method) == 0)
            hit = r;
        if (used + strlen(r->method) + 3 < n)
            used += (size_t)snprintf(allow + used, n - used, "%s%s", used ? ", " : "", r->method);
    }
    return hit;
}

/* A request for the handler, owning copies of everything, or NULL. */
static web_request_t *request_new(web_conn_t *c, const char *path, const char *query,
                                  const route_t *r)
{
    size_t body_len = c->body.len;
    web_request_t *req = calloc(1, sizeof(*req));

    if (!req)
        return NULL;
    req->path = strdup(path);
    req->query = strdup(query);
    req->body = buf_steal(&c->body);
    if (!req->path || !req->query || !req->body) {
        free(req->path);
        free(req->query);
        free(req->body);
        free(req);
        return NULL;
    }
    req->conn = c;
    req->hist = r->observe ? c->srv->hist : NULL;
    req->started = c->started;
    req->body_len = body_len;
    snprintf(req->method, sizeof(req->method), "%s", http_method_str(c->parser.method));
    snprintf(req->content_type, sizeof(req->content_type), "%s", c->content_type);
    snprintf(req->peer, sizeof(req->peer), "%s", c->peer);
    return req;
}

/* Hands a complete request to its route, or answers 404/405/415. */
static void conn_dispatch(web_conn_t *c)
{
    char allow[128], extra[160];
    const char *method = http_method_str(c->parser.method), *path, *query;
    char *store = NULL;
    bool known;
    const route_t *r;
    web_request_t *req;

    if (split_target(&c->url, &store, &path, &query) < 0) {
        conn_fail(c, 400, "invalid request target");
        return;
    }
    r = route_find(c, method, path, &known, allow, sizeof(allow));
    if (r)
        c->observe = r->observe;
    if (!known) {
        conn_queue_text(c, 404, "not found", "");
    } else if (!r) {
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
        conn_queue_text(c, 405, "method not allowed", extra);
    } else if ((r->flags & WEB_ROUTE_JSON) && !is_json(c->content_type)) {
        conn_queue_text(c, 415, "content type must be application/json", "");
    } else {
        req = request_new(c, path, query, r);
        if (!req) {
            conn_fail(c, 500, "out of memory");
        } else {
            c->pending = req;
            c->state = CONN_HANDLING;
            c->want = 0;
            conn_timer(c, c->srv->opts.handler_timeout);
            c->dispatching = true;
            r->fn(req, r->ud);
            c->dispatching = false;
        }
    }
    free(store);
}

/* Runs received bytes through the parser. A complete request is
 * dispatched and the bytes after it are stashed until it is answered. */
static void conn_input(web_conn_t *c, const char *data, size_t len)
{
    size_t n;
    enum http_errno e;

    if (c->state != CONN_READING) {
        if (buf_append(&c->stash, data, len) < 0)
            c->closing = true;
        return;
    }
    n = http_parser_execute(&c->parser, &parser_settings, data, len);
    e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->err_status) {
        conn_fail(c, c->err_status, c->err_msg);
    } else if (e == HPE_PAUSED) {
        if (n < len && buf_append(&c->stash, data + n, len - n) < 0)
            c->closing = true;
        else
            conn_dispatch(c);
    } else if (e == HPE_HEADER_OVERFLOW) {
        conn_fail(c, 431, "request header fields too large");
    } else if (e != HPE_OK) {
        conn_fail(c, 400, http_errno_description(e));
    } else if (n != len) {
        conn_fail(c, 400, "unexpected bytes after the request");
    }
}

/* The response was written: close, or go back to reading and parse what
 * the client sent meanwhile. */
static void conn_response_done(web_conn_t *c)
{
    buf_t replay;

    buf_reset(&c->out);
    c->out_off = 0;
    if (c->close_after) {
        c->state = CONN_LINGER;
        return;
    }
    conn_reset_request(c);
    c->started = 0;
    http_parser_pause(&c->parser, 0);
    c->state = CONN_READING;
    c->want = EV_READ;
    conn_timer(c, c->srv->opts.idle_timeout);
    if (c->stash.len) {
        replay = c->stash;
        buf_init(&c->stash, STASH_MAX);
        conn_input(c, replay.data, replay.len);
        buf_free(&replay);
    }
}

/* --- connections: I/O ------------------------------------------------------ */

/* Maps a failed SSL call to IO_AGAIN (with want set) or IO_CLOSE. */
static int ssl_fail(web_conn_t *c, int r, const char *what)
{
    int err = SSL_get_error(c->ssl, r);

    if (err == SSL_ERROR_WANT_READ) {
        c->want = EV_READ;
        return IO_AGAIN;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        c->want = EV_WRITE;
        return IO_AGAIN;
    }
    if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL)
        c->ssl_fatal = true;
    if (err != SSL_ERROR_ZERO_RETURN) {
        char e[256];
        log_debug("webhook: TLS connection ended", "peer", c->peer, "during", what, "error",
                  ssl_error_text(e, sizeof(e)));
    }
    ERR_clear_error();
    c->closing = true;
    return IO_CLOSE;
}

static int conn_handshake(web_conn_t *c)
{
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r != 1)
        return ssl_fail(c, r, "handshake");
    c->state = CONN_READING;
    c->want = EV_READ;
    conn_timer(c, c->srv->opts.idle_timeout);
    return IO_PROGRESS;
}

/* Reads into tmp: bytes read, 0 for IO_AGAIN, -1 for IO_CLOSE. */
static ssize_t conn_recv(web_conn_t *c, char *tmp, size_t n)
{
    ssize_t got;

    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, tmp, (int)n);
        if (r > 0)
            return r;
        return ssl_fail(c, r, "read") == IO_AGAIN ? 0 : -1;
    }
    do {
        got = recv(c->fd, tmp, n, 0);
    } while (got < 0 && errno == EINTR);
    if (got > 0)
        return got;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->want = EV_READ;
        return 0;
    }
    c->closing = true;
    return -1;
}

/* Reads and parses until a request is complete or the socket is drained. */
static int conn_read(web_conn_t *c)
{
    char tmp[READ_CHUNK];

    while (c->state == CONN_READING && !c->closing) {
        ssize_t n = conn_recv(c, tmp, sizeof(tmp));
        if (n == 0)
            return IO_AGAIN;
        if (n < 0)
            return IO_CLOSE;
        conn_input(c, tmp, (size_t)n);
    }
    return c->closing ? IO_CLOSE : IO_PROGRESS;
}

/* Discards input after a closing response until EOF (or the timer). */
static int conn_linger(web_conn_t *c)
{
    char tmp[READ_CHUNK];
    ssize_t n;

    if (c->fd < 0) {
        c->closing = true;
        return IO_CLOSE;
    }
    int reads = 0;

    do {
        n = recv(c->fd, tmp, sizeof(tmp), 0);
    } while ((n > 0 || (n < 0 && errno == EINTR)) && ++reads < 64);
    if (n > 0) {
        c->want = EV_READ;
        return IO_AGAIN;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->want = EV_READ;
        return IO_AGAIN;
    }
    c->closing = true;
    return IO_CLOSE;
}

/* Sends the TLS close_notify and the TCP FIN, then lingers. */
static void conn_start_linger(web_conn_t *c)
{
    if (c->fd < 0) {
        c->closing = true;
        return;
    }
    if (c->ssl && !c->ssl_fatal) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        ERR_clear_error();
        c->ssl_fatal = true; /* no second shutdown in conn_destroy */
    }
    shutdown(c->fd, SHUT_WR);
    conn_timer(c, LINGER_SECONDS);
}

/* Writes queued output. IO_PROGRESS when all of it went out. */
static int conn_write(web_conn_t *c)
{
    while (c->out_off < c->out.len) {
        size_t left = c->out.len - c->out_off;
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r =
                SSL_write(c->ssl, c->out.data + c->out_off, left > INT_MAX ? INT_MAX : (int)left);
            if (r <= 0)
                return ssl_fail(c, r, "write");
            n = r;
        } else {
            n = send(c->fd, c->out.data + c->out_off, left, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->want = EV_WRITE;
                return IO_AGAIN;
            }
            if (n < 0) {
                c->closing = true;
                return IO_CLOSE;
            }
        }
        c->out_off += (size_t)n;
    }
    return IO_PROGRESS;
}

/* Advances the connection as far as it can go without waiting. */
static void conn_run(web_conn_t *c)
{
    while (!c->closing) {
        int r = IO_AGAIN;
        if (c->out_off < c->out.len) {
            r = conn_write(c);
            if (r != IO_PROGRESS)
                break;
            if (c->state != CONN_WRITING) { /* an interim 100 Continue */
                buf_reset(&c->out);
                c->out_off = 0;
            }
        }
        switch (c->state) {
        case CONN_HANDSHAKE:
            r = conn_handshake(c);
            break;
        case CONN_READING:
            r = conn_read(c);
            if (r == IO_AGAIN && c->out_off < c->out.len)
                r = IO_PROGRESS; /* a 100 Continue to send before the body comes */
            break;
        case CONN_HANDLING:
            c->want = 0;
            r = IO_AGAIN;
            break;
        case CONN_WRITING:
            conn_response_done(c);
            if (c->state == CONN_LINGER)
                conn_start_linger(c);
            r = IO_PROGRESS;
            break;
        case CONN_LINGER:
            r = conn_linger(c);
            break;
        }
        if (r != IO_PROGRESS)
            break;
    }
}

/* Starts the io watcher for the events the connection waits for. */
static void conn_update_io(web_conn_t *c)
{
    int ev = c->closing ? 0 : c->want;

    if (c->fd < 0 || ev == c->io_events)
        return;
    ev_io_stop(c->srv->loop, &c->io);
    if (ev) {
        ev_io_set(&c->io, c->fd, ev);
        ev_io_start(c->srv->loop, &c->io);
    }
    c->io_events = ev;
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    web_conn_t *c = w->data;

    (void)loop;
    (void)revents;
    conn_run(c);
    if (c->closing)
        conn_destroy(c);
    else
        conn_update_io(c);
}

static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    web_conn_t *c = w->data;

    (void)loop;
    (void)revents;
    if (c->state == CONN_HANDLING && c->pending) {
        log_warn("webhook: handler did not answer in time", "peer", c->peer, "path",
                 c->pending->path);
        conn_detach(c);
        conn_queue_text(c, 503, "the handler did not answer in time", "");
        conn_run(c);
    } else {
        if (c->state != CONN_LINGER)
            log_debug("webhook: connection timed out", "peer", c->peer);
        c->closing = true;
    }
    if (c->closing)
        conn_destroy(c);
    else
        conn_update_io(c);
}

/* --- requests ------------------------------------------------------------- */

const char *web_request_method(const web_request_t *req)
{
    return req->method;
}

const char *web_request_path(const web_request_t *req)
{
    return req->path;
}

const char *web_request_query(const web_request_t *req)
{
    return req->query;
}

const char *web_request_content_type(const web_request_t *req)
{
    return req->content_type;
}

const char *web_request_body(const web_request_t *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body;
}

const char *web_request_peer(const web_request_t *req)
{
    return req->peer;
}

bool web_request_gone(const web_request_t *req)
{
    return req->conn == NULL;
}

static void request_free(web_request_t *req)
{
    free(req->path);
    free(req->query);
    free(req->body);
    free(req);
}

void web_respond(web_request_t *req, int status, const char *content_type, const char *body,
                 size_t len)
{
    web_conn_t *c = req->conn;

    if (c) {
        c->pending = NULL;
        c->observe = req->hist != NULL;
        conn_queue(c, status, content_type, body ? body : "", body ? len : 0, "");
        if (!c->dispatching)
            conn_update_io(c); /* the loop writes it: no I/O from the caller's stack */
    }
    request_free(req);
}

void web_respond_text(web_request_t *req, int status, const char *text)
{
    size_t n = strlen(text);
    char *body = malloc(n + 2);

    if (!body) {
        web_respond(req, 500, NULL, "out of memory\n", 14);
        return;
    }
    memcpy(body, text, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    web_respond(req, status, NULL, body, n + 1);
    free(body);
}

/* --- built-in routes ------------------------------------------------------- */

static void on_healthz(web_request_t *req, void *ud)
{
    (void)ud;
    web_respond(req, 200, NULL, "ok\n", 3);
}

static void on_readyz(web_request_t *req, void *ud)
{
    web_server_t *s = ud;

    if (!s->opts.ready || s->opts.ready(s->opts.ready_ud))
        web_respond(req, 200, NULL, "ok\n", 3);
    else
        web_respond(req, 503, NULL, "not ready\n", 10);
}

static void on_metrics(web_request_t *req, void *ud)
{
    buf_t m;

    (void)ud;
    buf_init(&m, OUT_MAX / 2);
    if (metrics_render(&m) < 0)
        web_respond(req, 500, NULL, "metrics too large\n", 18);
    else
        web_respond(req, 200, METRICS_CT, m.data ? m.data : "", m.len);
    buf_free(&m);
}

/* --- the server ------------------------------------------------------------ */

/* A copy of s, or NULL when s is NULL or "" (an unset option). */
static char *dup_option(const char *s)
{
    return util_strdup_or_null(s && *s ? s : NULL);
}

/* Copies opts into s with defaults for the zero limits. */
static int copy_opts(web_server_t *s, const web_server_opts_t *o)
{
    web_server_opts_t *d = &s->opts;

    *d = *o;
    d->listen = dup_option(o->listen);
    d->cert_file = dup_option(o->cert_file);
    d->key_file = dup_option(o->key_file);
    d->plain_listen = dup_option(o->plain_listen);
    if ((o->listen && *o->listen && !d->listen) ||
        (o->cert_file && *o->cert_file && !d->cert_file) ||
        (o->key_file && *o->key_file && !d->key_file) ||
        (o->plain_listen && *o->plain_listen && !d->plain_listen))
        return -1;
    if (!d->max_body)
        d->max_body = WEB_DEFAULT_MAX_BODY;
    if (!d->max_header)
        d->max_header = WEB_DEFAULT_MAX_HEADER;
    if (d->max_conns <= 0)
        d->max_conns = WEB_DEFAULT_MAX_CONNS;
    if (d->read_timeout <= 0)
        d->read_timeout = WEB_DEFAULT_READ_TIMEOUT;
    if (d->idle_timeout <= 0)
        d->idle_timeout = WEB_DEFAULT_IDLE_TIMEOUT;
    if (d->handler_timeout <= 0)
        d->handler_timeout = WEB_DEFAULT_HANDLER_TIMEOUT;
    if (d->write_timeout <= 0)
        d->write_timeout = WEB_DEFAULT_WRITE_TIMEOUT;
    if (d->reload_interval <= 0)
        d->reload_interval = WEB_DEFAULT_RELOAD_INTERVAL;
    return 0;
}

/* Registers a route with the observe flag given. */
static int route_add(web_server_t *s, const char *method, const char *path, unsigned flags,
                     bool observe, web_handler_fn fn, void *ud)
{
    route_t *grown, *r;

    for (int i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].method, method) == 0 && strcmp(s->routes[i].path, path) == 0)
            return -1;
    grown = realloc(s->routes, (size_t)(s->nroutes + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    s->routes = grown;
    r = &s->routes[s->nroutes];
    r->method = strdup(method);
    r->path = strdup(path);
    if (!r->method || !r->path) {
        free(r->method);
        free(r->path);
        return -1;
    }
    r->flags = flags;
    r->observe = observe;
    r->fn = fn;
    r->ud = ud;
    s->nroutes++;
    return 0;
}

int web_server_route(web_server_t *s, const char *method, const char *path, unsigned flags,
                     web_handler_fn fn, void *ud)
{
    return route_add(s, method, path, flags, true, fn, ud);
}

web_server_t *web_server_new(struct ev_loop *loop, const web_server_opts_t *opts)
{
    static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    web_server_t *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->loop = loop;
    s->tls.fd = s->plain.fd = -1;
    s->tls.port = s->plain.port = -1;
    ev_init(&s->accept_pause, on_accept_pause);
    s->accept_pause.data = s;
    ev_init(&s->reload_timer, on_reload_timer);
    s->reload_timer.data = s;
    if (copy_opts(s, opts) < 0 ||
        route_add(s, "GET", "/healthz", WEB_ROUTE_PLAIN, false, on_healthz, s) < 0 ||
        route_add(s, "GET", "/readyz", WEB_ROUTE_PLAIN, false, on_readyz, s) < 0 ||
        route_add(s, "GET", "/metrics", WEB_ROUTE_PLAIN, false, on_metrics, s) < 0) {
        web_server_free(s);
        return NULL;
    }
    s->hist = metrics_histogram_new("webhook_request_duration_seconds",
                                    "Time from a webhook request's first byte to its answer.",
                                    (int)(sizeof(buckets) / sizeof(buckets[0])), buckets, 0, NULL);
    return s;
}

/* Ignores SIGPIPE when it is at its default (see server.h). */
static void ignore_sigpipe(void)
{
    struct sigaction old;

    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

int web_server_start(web_server_t *s, char *err, size_t errlen)
{
    if (!s->opts.listen || !s->opts.cert_file || !s->opts.key_file) {
        util_set_err(err, errlen, "webhook: listen, cert_file and key_file are required");
        return -1;
    }
    if (s->tls.fd >= 0) {
        util_set_err(err, errlen, "webhook: already started");
        return -1;
    }
    ignore_sigpipe();
    if (cert_load(s, err, errlen) != 0)
        return -1;
    if (listener_open(s, &s->tls, s->opts.listen, false, err, errlen) < 0)
        return -1;
    if (s->opts.plain_listen &&
        listener_open(s, &s->plain, s->opts.plain_listen, true, err, errlen) < 0) {
        listener_close(s, &s->tls);
        return -1;
    }
    ev_timer_set(&s->reload_timer, s->opts.reload_interval, s->opts.reload_interval);
    ev_timer_start(s->loop, &s->reload_timer);
    log_cert("webhook serving", s);
    return 0;
}

int web_server_port(const web_server_t *s)
{
    return s->tls.port;
}

int web_server_plain_port(const web_server_t *s)
{
    return s->plain.port;
}

int web_server_conns(const web_server_t *s)
{
    return s->nconns;
}

void web_server_free(web_server_t *s)
{
    if (!s)
        return;
    while (s->conns)
        conn_destroy(s->conns);
    listener_close(s, &s->tls);
    listener_close(s, &s->plain);
    ev_timer_stop(s->loop, &s->accept_pause);
    ev_timer_stop(s->loop, &s->reload_timer);
    SSL_CTX_free(s->ctx);
    for (int i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    free((char *)s->opts.listen);
    free((char *)s->opts.cert_file);
    free((char *)s->opts.key_file);
    free((char *)s->opts.plain_listen);
    free(s);
}

/* --- internal: socketless parsing ----------------------------------------- */

int web__parse_feed(web_server_t *s, const char *data, size_t len, size_t chunk, buf_t *out)
{
    web_conn_t *c = conn_alloc(s, -1, false);
    size_t off = 0;
    int responses = 0, rc;

    if (!c)
        return -1;
    if (chunk == 0)
        chunk = len ? len : 1;
    for (;;) {
        if (c->out.len) {
            if (buf_append(out, c->out.data, c->out.len) < 0)
                c->closing = true;
            buf_reset(&c->out);
        }
        if (c->closing)
            break;
        if (c->state == CONN_WRITING) {
            responses++;
            conn_response_done(c);
            if (c->state == CONN_LINGER)
                c->closing = true;
            continue;
        }
        if (off >= len || c->state != CONN_READING)
            break;
        size_t n = len - off < chunk ? len - off : chunk;
        conn_input(c, data + off, n);
        off += n;
    }
    rc = c->closing ? -1 : responses;
    conn_destroy(c);
    return rc;
}
