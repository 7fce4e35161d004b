#include "testserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS_MAX_BODY (1u << 20)

typedef struct ts_chunk {
    char *data;
    size_t len;
    int delay_ms;
} ts_chunk_t;

struct testserver_route {
    struct testserver_route *next;
    char *method; /* NULL: any */
    char *prefix;
    int status;
    testserver_header_t *headers;
    int nheaders;
    char *body;
    size_t body_len;
    ts_chunk_t *chunks;
    int nchunks;
    int delay_ms;
    bool close_after_set;
    size_t close_after;
    bool hold;
    char *raw;
    size_t raw_len;
    bool is_raw;
    int uses_left; /* -1: unlimited */
};

typedef struct ts_conn {
    struct ts_conn *next;
    testserver_t *s;
    pthread_t thread;
    int fd;
    SSL *ssl; /* NULL for plain HTTP */
    int id;
    char client_cn[64];
    /* the request being parsed */
    testserver_request_t *cur;
    bool in_value;
    bool too_big;
} ts_conn_t;

struct testserver {
    SSL_CTX *tls; /* NULL for plain HTTP */
    int lfd;
    int port;
    char url[64];
    int stop_r; /* readable (EOF) once the server stops */
    int stop_w;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    testserver_route_t *routes; /* newest first */
    testserver_request_t **reqs;
    int nreqs;
    int capreqs;
    ts_conn_t *conns;
    int nconns;
};

/* ---- small helpers -------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (!q)
        abort();
    return q;
}

static char *xmemdup(const char *s, size_t n)
{
    char *p = xcalloc(1, n + 1);
    memcpy(p, s, n);
    return p;
}

/* Appends n bytes to a NUL-terminated heap string *dst of length *len. */
static void append(char **dst, size_t *len, const char *s, size_t n)
{
    *dst = xrealloc(*dst, *len + n + 1);
    memcpy(*dst + *len, s, n);
    *len += n;
    (*dst)[*len] = '\0';
}

static void append_str(char **dst, const char *s, size_t n)
{
    size_t len = *dst ? strlen(*dst) : 0;
    append(dst, &len, s, n);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int send_all(ts_conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl) {
            int k = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
            w = k > 0 ? k : -1;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t conn_recv(ts_conn_t *c, char *buf, size_t n)
{
    if (!c->ssl)
        return recv(c->fd, buf, n, 0);
    int k = SSL_read(c->ssl, buf, (int)n);
    return k > 0 ? k : -1;
}

/* Waits ms milliseconds (-1: for ever). Returns true early when the server
 * stops or the client closed the connection. */
static bool conn_pause(ts_conn_t *c, int ms)
{
    long deadline = ms < 0 ? -1 : now_ms() + ms;
    bool watch_client = true;
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            long d = deadline - now_ms();
            if (d <= 0)
                return false;
            left = (int)d;
        }
        struct pollfd p[2] = {{c->s->stop_r, POLLIN, 0}, {c->fd, POLLIN, 0}};
        int n = poll(p, watch_client ? 2 : 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[0].revents)
            return true;
        if (watch_client && p[1].revents) {
            char b;
            ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (r <= 0)
                return true;
            watch_client = false; /* more data from the client: not our concern now */
        }
    }
}

/* ---- request parsing -------------------------------------------------------- */

static testserver_header_t *cur_header(ts_conn_t *c)
{
    testserver_request_t *q = c->cur;
    return &q->headers[q->nheaders - 1];
}

static int on_message_begin(http_parser *p)
{
    ts_conn_t *c = p->data;
    c->cur = xcalloc(1, sizeof(*c->cur));
    c->cur->conn = c->id;
    memcpy(c->cur->client_cn, c->client_cn, sizeof(c->client_cn));
    c->in_value = false;
    c->too_big = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    ts_conn_t *c = p->data;
    append_str(&c->cur->target, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    ts_conn_t *c = p->data;
    testserver_request_t *q = c->cur;
    if (q->nheaders == 0 || c->in_value) {
        q->headers = xrealloc(q->headers, sizeof(testserver_header_t) * (size_t)(q->nheaders + 1));
        q->headers[q->nheaders].name = NULL;
        q->headers[q->nheaders].value = xcalloc(1, 1);
        q->nheaders++;
        c->in_value = false;
    }
    append_str(&cur_header(c)->name, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    ts_conn_t *c = p->data;
    c->in_value = true;
    append_str(&cur_header(c)->value, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    ts_conn_t *c = p->data;
    snprintf(c->cur->method, sizeof(c->cur->method), "%s",
             http_method_str((enum http_method)p->method));
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    ts_conn_t *c = p->data;
    if (c->cur->body_len + n > TS_MAX_BODY) {
        c->too_big = true;
        return 0;
    }
    append(&c->cur->body, &c->cur->body_len, at, n);
    return 0;
}

/* Records the request and pauses the parser so that it is answered before
 * the next one is read. */
static int on_message_complete(http_parser *p)
{
    ts_conn_t *c = p->data;
    testserver_t *s = c->s;
    testserver_request_t *q = c->cur;
    if (!q->body)
        q->body = xcalloc(1, 1);
    if (!q->target)
        q->target = xcalloc(1, 1);
    pthread_mutex_lock(&s->mu);
    if (s->nreqs == s->capreqs) {
        s->capreqs = s->capreqs ? s->capreqs * 2 : 16;
        s->reqs = xrealloc(s->reqs, sizeof(*s->reqs) * (size_t)s->capreqs);
    }
    s->reqs[s->nreqs++] = q;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    http_parser_pause(p, 1);
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

/* ---- responses ------------------------------------------------------------- */

static const char *phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 410:
        return "Gone";
    case 500:
        return "Internal Server Error";
    default:
        return "Status";
    }
}

/* Finds the route for q and uses it up by one. */
static testserver_route_t *route_match(testserver_t *s, const testserver_request_t *q)
{
    testserver_route_t *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (testserver_route_t *r = s->routes; r && !found; r = r->next) {
        if (r->uses_left == 0 || (r->method && strcmp(r->method, q->method) != 0) ||
            strncmp(q->target, r->prefix, strlen(r->prefix)) != 0)
            continue;
        if (r->uses_left > 0)
            r->uses_left--;
        found = r;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static int send_head(ts_conn_t *c, const testserver_route_t *r, bool chunked, bool close)
{
    char *head = NULL;
    char line[256];
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", r->status, phrase(r->status));
    append_str(&head, line, strlen(line));
    for (int i = 0; i < r->nheaders; i++) {
        snprintf(line, sizeof(line), "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
        append_str(&head, line, strlen(line));
    }
    if (chunked)
        snprintf(line, sizeof(line), "Transfer-Encoding: chunked\r\n");
    else
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", r->body_len);
    append_str(&head, line, strlen(line));
    if (close)
        append_str(&head, "Connection: close\r\n", 19);
    append_str(&head, "\r\n", 2);
    int rc = send_all(c, head, strlen(head));
    free(head);
    return rc;
}

/* Sends the chunks; returns 0 when the response may be ended normally, -1
 * when the connection must be dropped. */
static int send_chunks(ts_conn_t *c, const testserver_route_t *r)
{
    size_t sent = 0;
    char size[32];
    for (int i = 0; i < r->nchunks; i++) {
        const ts_chunk_t *k = &r->chunks[i];
        if (k->delay_ms > 0 && conn_pause(c, k->delay_ms))
            return -1;
        snprintf(size, sizeof(size), "%zx\r\n", k->len);
        if (r->close_after_set && sent + k->len > r->close_after) {
            send_all(c, size, strlen(size));
            send_all(c, k->data, r->close_after - sent);
            return -1;
        }
        if (send_all(c, size, strlen(size)) < 0 || send_all(c, k->data, k->len) < 0 ||
            send_all(c, "\r\n", 2) < 0)
            return -1;
        sent += k->len;
    }
    if (r->close_after_set)
        return -1;
    if (r->hold) {
        conn_pause(c, -1);
        return -1;
    }
    return send_all(c, "0\r\n\r\n", 5);
}

/* Answers one request. Returns 0 to keep the connection, -1 to close it. */
static int respond(ts_conn_t *c, const testserver_request_t *q)
{
    const testserver_route_t *r = route_match(c->s, q);
    if (!r) {
        static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n";
        return send_all(c, nf, sizeof(nf) - 1);
    }
    if (r->is_raw) {
        send_all(c, r->raw, r->raw_len);
        return -1;
    }
    if (r->delay_ms < 0) {
        conn_pause(c, -1);
        return -1;
    }
    if (r->delay_ms > 0 && conn_pause(c, r->delay_ms))
        return -1;
    bool chunked = r->nchunks > 0;
    bool drop = r->close_after_set || r->hold;
    if (send_head(c, r, chunked, drop) < 0)
        return -1;
    if (chunked)
        return send_chunks(c, r);
    if (r->close_after_set && r->close_after < r->body_len) {
        send_all(c, r->body, r->close_after);
        return -1;
    }
    if (send_all(c, r->body ? r->body : "", r->body_len) < 0)
        return -1;
    return drop ? -1 : 0;
}

/* ---- connections ---------------------------------------------------------- */

/* Feeds received bytes to the parser, answering each complete request.
 * Returns -1 when the connection must close. */
static int conn_feed(ts_conn_t *c, http_parser *p, const char *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        off += http_parser_execute(p, &parser_settings, data + off, n - off);
        enum http_errno e = HTTP_PARSER_ERRNO(p);
        if (e == HPE_PAUSED) {
            http_parser_pause(p, 0);
            testserver_request_t *q = c->cur;
            c->cur = NULL;
            if (c->too_big || respond(c, q) < 0)
                return -1;
            continue;
        }
        if (e != HPE_OK)
            return -1;
    }
    return 0;
}

/* Runs the TLS handshake and notes the CN of a verified client
 * certificate. Returns 0 or -1. */
static int conn_handshake(ts_conn_t *c)
{
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE); /* OpenSSL writes with write(2) */
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    c->ssl = SSL_new(c->s->tls);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
        ERR_clear_error();
        return -1;
    }
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    if (peer && SSL_get_verify_result(c->ssl) == X509_V_OK)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, c->client_cn,
                                  sizeof(c->client_cn));
    X509_free(peer);
    return 0;
}

static void *conn_main(void *arg)
{
    ts_conn_t *c = arg;
    http_parser p;
    char buf[16384];
    http_parser_init(&p, HTTP_REQUEST);
    p.data = c;
    if (c->s->tls && conn_handshake(c) < 0)
        goto out;
    for (;;) {
        struct pollfd pf[2] = {{c->s->stop_r, POLLIN, 0}, {c->fd, POLLIN, 0}};
        bool buffered = c->ssl && SSL_pending(c->ssl) > 0;
        if (!buffered && poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            break;
        if (!buffered && !pf[1].revents)
            continue;
        ssize_t n = conn_recv(c, buf, sizeof(buf));
        if (n <= 0 || conn_feed(c, &p, buf, (size_t)n) < 0)
            break;
    }
out:
    if (c->cur) { /* a request cut short: never recorded */
        for (int i = 0; i < c->cur->nheaders; i++) {
            free(c->cur->headers[i].name);
            free(c->cur->headers[i].value);
        }
        free(c->cur->headers);
        free(c->cur->target);
        free(c->cur->body);
        free(c->cur);
        c->cur = NULL;
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();
    pthread_mutex_lock(&c->s->mu);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_unlock(&c->s->mu);
    return NULL;
}

static void *accept_main(void *arg)
{
    testserver_t *s = arg;
    for (;;) {
        struct pollfd pf[2] = {{s->stop_r, POLLIN, 0}, {s->lfd, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[0].revents)
            break;
        if (!pf[1].revents)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        ts_conn_t *c = xcalloc(1, sizeof(*c));
        c->s = s;
        c->fd = fd;
        pthread_mutex_lock(&s->mu);
        c->id = ++s->nconns;
        c->next = s->conns;
        s->conns = c;
        pthread_mutex_unlock(&s->mu);
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
            abort();
    }
    return NULL;
}

/* ---- public API ------------------------------------------------------------ */

/* Listens and starts the accept thread; tls (adopted) may be NULL. */
static testserver_t *server_start(SSL_CTX *tls)
{
    testserver_t *s = xcalloc(1, sizeof(*s));
    s->tls = tls;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int pipefd[2];
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(s->lfd, 64) < 0 || getsockname(s->lfd, (struct sockaddr *)&a, &alen) < 0 ||
        pipe(pipefd) < 0) {
        if (s->lfd >= 0)
            close(s->lfd);
        SSL_CTX_free(tls);
        free(s);
        return NULL;
    }
    s->stop_r = pipefd[0];
    s->stop_w = pipefd[1];
    s->port = ntohs(a.sin_port);
    snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0)
        abort();
    return s;
}

testserver_t *testserver_start(void)
{
    return server_start(NULL);
}

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static EVP_PKEY *pem_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

testserver_t *testserver_start_tls(const testserver_pki_t *p)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    X509 *cert = pem_cert(p->server_cert_pem);
    X509 *ca = pem_cert(p->ca_pem);
    EVP_PKEY *key = pem_key(p->server_key_pem);
    bool ok = ctx && cert && ca && key && SSL_CTX_use_certificate(ctx, cert) == 1 &&
              SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
              X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) == 1;
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); /* asks; a missing certificate is fine */
    return server_start(ctx);
}

static void request_free(testserver_request_t *q)
{
    for (int i = 0; i < q->nheaders; i++) {
        free(q->headers[i].name);
        free(q->headers[i].value);
    }
    free(q->headers);
    free(q->target);
    free(q->body);
    free(q);
}

static void route_free(testserver_route_t *r)
{
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    for (int i = 0; i < r->nchunks; i++)
        free(r->chunks[i].data);
    free(r->headers);
    free(r->chunks);
    free(r->method);
    free(r->prefix);
    free(r->body);
    free(r->raw);
    free(r);
}

void testserver_stop(testserver_t *s)
{
    if (!s)
        return;
    close(s->stop_w);
    pthread_join(s->accept_thread, NULL);
    pthread_mutex_lock(&s->mu);
    for (ts_conn_t *c = s->conns; c; c = c->next)
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR); /* unblocks a send() to a client that stopped reading */
    pthread_mutex_unlock(&s->mu);
    while (s->conns) {
        ts_conn_t *c = s->conns;
        s->conns = c->next;
        pthread_join(c->thread, NULL);
        free(c);
    }
    close(s->lfd);
    close(s->stop_r);
    while (s->routes) {
        testserver_route_t *r = s->routes;
        s->routes = r->next;
        route_free(r);
    }
    for (int i = 0; i < s->nreqs; i++)
        request_free(s->reqs[i]);
    free(s->reqs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    SSL_CTX_free(s->tls);
    free(s);
}

int testserver_port(const testserver_t *s)
{
    return s->port;
}

const char *testserver_url(const testserver_t *s)
{
    return s->url;
}

testserver_route_t *testserver_route(testserver_t *s, const char *method, const char *prefix,
                                     int status)
{
    testserver_route_t *r = xcalloc(1, sizeof(*r));
    r->method = method ? xmemdup(method, strlen(method)) : NULL;
    r->prefix = xmemdup(prefix, strlen(prefix));
    r->status = status;
    r->uses_left = -1;
    pthread_mutex_lock(&s->mu);
    r->next = s->routes;
    s->routes = r;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void testserver_header(testserver_route_t *r, const char *name, const char *value)
{
    r->headers = xrealloc(r->headers, sizeof(testserver_header_t) * (size_t)(r->nheaders + 1));
    r->headers[r->nheaders].name = xmemdup(name, strlen(name));
    r->headers[r->nheaders].value = xmemdup(value, strlen(value));
    r->nheaders++;
}

void testserver_body(testserver_route_t *r, const char *data, size_t len)
{
    free(r->body);
    r->body = xmemdup(data, len);
    r->body_len = len;
}

void testserver_json(testserver_route_t *r, const char *json)
{
    testserver_header(r, "Content-Type", "application/json");
    testserver_body(r, json, strlen(json));
}

void testserver_chunk(testserver_route_t *r, const char *data, size_t len, int delay_ms)
{
    if (len == 0)
        abort(); /* a zero-length chunk would end the body */
    r->chunks = xrealloc(r->chunks, sizeof(ts_chunk_t) * (size_t)(r->nchunks + 1));
    r->chunks[r->nchunks].data = xmemdup(data, len);
    r->chunks[r->nchunks].len = len;
    r->chunks[r->nchunks].delay_ms = delay_ms;
    r->nchunks++;
}

void testserver_delay(testserver_route_t *r, int ms)
{
    r->delay_ms = ms;
}

void testserver_close_after(testserver_route_t *r, size_t n)
{
    r->close_after_set = true;
    r->close_after = n;
}

void testserver_hold(testserver_route_t *r)
{
    r->hold = true;
}

void testserver_raw(testserver_route_t *r, const char *data, size_t len)
{
    free(r->raw);
    r->raw = xmemdup(data, len);
    r->raw_len = len;
    r->is_raw = true;
}

void testserver_limit(testserver_route_t *r, int n)
{
    r->uses_left = n;
}

int testserver_nrequests(testserver_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nreqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const testserver_request_t *testserver_request(testserver_t *s, int i)
{
    const testserver_request_t *q = NULL;
    pthread_mutex_lock(&s->mu);
    if (i >= 0 && i < s->nreqs)
        q = s->reqs[i];
    pthread_mutex_unlock(&s->mu);
    return q;
}

const char *testserver_request_header(const testserver_request_t *q, const char *name)
{
    for (int i = 0; q && i < q->nheaders; i++)
        if (q->headers[i].name && strcasecmp(q->headers[i].name, name) == 0)
            return q->headers[i].value;
    return NULL;
}

bool testserver_wait_requests(testserver_t *s, int n, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->nreqs < n && rc == 0)
        rc = pthread_cond_timedwait(&s->cond, &s->mu, &deadline);
    bool ok = s->nreqs >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* ---- a throwaway PKI ---------------------------------------------------------- */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int rc = e && X509_add_ext(x, e, -1) == 1 ? 0 : -1;
    X509_EXTENSION_free(e);
    return rc;
}

/* Issues a certificate for key, signed by issuer (self-signed when NULL). */
static X509 *issue(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                   const char *san, long serial)
{
    X509 *x = X509_new();
    X509V3_CTX ctx;
    if (!x)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    int rc = add_ext(x, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    rc |= add_ext(x, &ctx, NID_key_usage,
                  ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    rc |= add_ext(x, &ctx, NID_subject_key_identifier, "hash");
    if (!ca)
        rc |= add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
    if (san)
        rc |= add_ext(x, &ctx, NID_subject_alt_name, san);
    if (rc != 0 || X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) == 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static char *bio_text(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = n > 0 ? xmemdup(data, (size_t)n) : NULL;
    BIO_free(b);
    return s;
}

static char *cert_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !x || PEM_write_bio_X509(b, x) != 1) {
        BIO_free(b);
        return NULL;
    }
    return bio_text(b);
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !k || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(b);
        return NULL;
    }
    return bio_text(b);
}

int testserver_pki_make(testserver_pki_t *p)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
    EVP_PKEY *srv_key = EVP_EC_gen("P-256"), *cli_key = EVP_EC_gen("P-256");
    X509 *ca = NULL, *other = NULL, *srv = NULL, *cli = NULL;
    memset(p, 0, sizeof(*p));
    if (ca_key && other_key && srv_key && cli_key) {
        ca = issue(ca_key, "vmdrain-test-ca", NULL, NULL, true, NULL, 1);
        other = issue(other_key, "vmdrain-other-ca", NULL, NULL, true, NULL, 2);
        srv = issue(srv_key, "apiserver", ca, ca_key, false, "DNS:apiserver.test,IP:127.0.0.1", 3);
        cli = issue(cli_key, "vmdrain-test-client", ca, ca_key, false, NULL, 4);
    }
    p->ca_pem = cert_pem(ca);
    p->other_ca_pem = cert_pem(other);
    p->server_cert_pem = cert_pem(srv);
    p->server_key_pem = key_pem(srv_key);
    p->client_cert_pem = cert_pem(cli);
    p->client_key_pem = key_pem(cli_key);
    X509_free(ca);
    X509_free(other);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    if (p->ca_pem && p->other_ca_pem && p->server_cert_pem && p->server_key_pem &&
        p->client_cert_pem && p->client_key_pem)
        return 0;
    testserver_pki_free(p);
    return -1;
}

void testserver_pki_free(testserver_pki_t *p)
{
    free(p->ca_pem);
    free(p->other_ca_pem);
    free(p->server_cert_pem);
    free(p->server_key_pem);
    free(p->client_cert_pem);
    free(p->client_key_pem);
    memset(p, 0, sizeof(*p));
}
