/*
 * server_conn — the webhook server's connections: accepting, the TLS
 * handshake, reading and parsing requests (http-parser), writing
 * responses, lingering before close, and the one timer of each
 * connection. Nothing here blocks.
 *
 * Owns every web_conn_t. Calls OpenSSL, http-parser, libev, util/buf,
 * util/log, util/metrics (refused client certificates), server_route.c (dispatching, error
 * answers, counting the webhook's errors)
 * and server_tls.c (error text); called by server.c (accept, teardown, socketless parsing) and
 * server_route.c (timers, I/O after an answer).
 */
#include "util/log.h"
#include "util/metrics.h"
#include "web/server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void conn_run(web_conn_t *c);

double web__mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
    if (c->authorization.data)
        OPENSSL_cleanse(c->authorization.data, c->authorization.len);
    buf_reset(&c->authorization);
    c->keep_alive = false;
    c->observe = true;
    c->err_status = 0;
    c->err_msg = NULL;
}

/* A connection on fd (-1: socketless), linked into s. NULL when out of
 * memory. */
web_conn_t *web__conn_alloc(web_server_t *s, int fd, bool plain)
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
    buf_init(&c->authorization, s->opts.max_header);
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
void web__conn_timer(web_conn_t *c, double t)
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
void web__conn_destroy(web_conn_t *c)
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
    if (c->lst)
        c->lst->nconns--;
    buf_free(&c->url);
    buf_free(&c->body);
    buf_free(&c->stash);
    buf_free(&c->out);
    buf_free(&c->authorization);
    free(c);
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* "ip:port" of a peer address into out, and the address alone into addr
 * (an). */
static void format_peer(const struct sockaddr_storage *ss, socklen_t sl, char *out, size_t n,
                        char *addr, size_t an)
{
    char host[INET6_ADDRSTRLEN] = "?", serv[8] = "?";

    getnameinfo((const struct sockaddr *)ss, sl, host, sizeof(host), serv, sizeof(serv),
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(addr, an, "%s", host);
    if (ss->ss_family == AF_INET6)
        snprintf(out, n, "[%s]:%s", host, serv);
    else
        snprintf(out, n, "%s:%s", host, serv);
}

/* Sets up a socket accepted on l from the address addr: TLS or plain,
 * watchers, the first-byte timeout. Closes fd when that fails. */
static void conn_accepted(listener_t *l, int fd, const char *addr, const char *peer)
{
    web_server_t *s = l->srv;
    bool plain = l->plain;
    int one = 1;
    web_conn_t *c = web__conn_alloc(s, fd, plain);

    if (!c) {
        close(fd);
        return;
    }
    c->lst = l;
    l->nconns++;
    c->idle_since = web__mono_now();
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ev_io_init(&c->io, on_conn_io, fd, 0);
    c->io.data = c;
    ev_init(&c->timer, on_conn_timer);
    c->timer.data = c;
    if (!plain || s->opts.plain_tls) {
        c->ssl = SSL_new(plain ? s->ctx_open : s->ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
            ERR_clear_error();
            web__conn_destroy(c);
            return;
        }
        SSL_set_accept_state(c->ssl);
        c->state = CONN_HANDSHAKE;
    }
    web__conn_timer(c, s->opts.first_timeout);
    conn_run(c);
    if (c->closing)
        web__conn_destroy(c);
    else
        web__conn_update_io(c);
}

/* Whether c is idle: between requests, or not a byte of its first one
 * (for TLS: not a byte of its handshake). Such a connection can be closed to
 * make room without losing anything. */
static bool conn_idle(const web_conn_t *c)
{
    if (c->state == CONN_HANDSHAKE)
        return BIO_number_read(SSL_get_rbio(c->ssl)) == 0;
    return c->state == CONN_READING && c->started == 0 && c->out.len == 0 && c->stash.len == 0 &&
           !c->closing;
}

/* Makes room on l for a connection from addr: when the listener or the
 * address is at its cap, closes the oldest idle connection (of the
 * address when that cap is the one reached). Returns whether there is
 * room. */
static bool conn_make_room(listener_t *l, const char *addr)
{
    web_server_t *s = l->srv;
    web_conn_t *oldest = NULL, *oldest_here = NULL;
    int here = 0;

    for (web_conn_t *c = s->conns; c; c = c->next) {
        if (c->lst != l)
            continue;
        bool same = strcmp(c->addr, addr) == 0;
        here += same;
        if (!conn_idle(c))
            continue;
        if (!oldest || c->idle_since <= oldest->idle_since)
            oldest = c;
        if (same && (!oldest_here || c->idle_since <= oldest_here->idle_since))
            oldest_here = c;
    }
    web_conn_t *victim = here >= s->opts.max_conns_per_addr ? oldest_here
                         : l->nconns >= s->opts.max_conns   ? oldest
                                                            : NULL;
    if (victim) {
        log_debug("webhook: connection limit reached; closing the oldest idle connection", "peer",
                  victim->peer);
        web__conn_destroy(victim);
        return true;
    }
    return here < s->opts.max_conns_per_addr && l->nconns < s->opts.max_conns;
}

void web__on_accept(struct ev_loop *loop, ev_io *w, int revents)
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
        char peer[64], addr[64];
        format_peer(&ss, sl, peer, sizeof(peer), addr, sizeof(addr));
        if (!conn_make_room(l, addr)) {
            if (!l->full_logged)
                log_warn("webhook: connection limit reached; closing new connections", "listener",
                         l->plain ? "plain" : "tls", "peer", peer);
            l->full_logged = true;
            web__count_error(s, l->plain, "overloaded");
            close(fd);
            continue;
        }
        l->full_logged = false;
        conn_accepted(l, fd, addr, peer);
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
    c->started = web__mono_now();
    web__conn_timer(c, c->srv->opts.read_timeout);
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
    if (c->hname_len == 13 && strncasecmp(c->hname, "authorization", 13) == 0)
        return HDR_AUTHORIZATION;
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
        else if (c->hkind == HDR_AUTHORIZATION)
            buf_reset(&c->authorization);
    }
    if (c->hkind == HDR_CONTENT_TYPE)
        keep_value(c->content_type, sizeof(c->content_type), &c->ct_len, at, len);
    else if (c->hkind == HDR_EXPECT)
        keep_value(c->expect, sizeof(c->expect), &c->expect_len, at, len);
    else if (c->hkind == HDR_AUTHORIZATION && buf_append(&c->authorization, at, len) < 0)
        return refuse(c, 431, "request header fields too large");
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

void web__conn_input(web_conn_t *c, const char *data, size_t len)
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
        web__conn_fail(c, c->err_status, c->err_msg);
    } else if (e == HPE_PAUSED) {
        if (n < len && buf_append(&c->stash, data + n, len - n) < 0)
            c->closing = true;
        else
            web__conn_dispatch(c);
    } else if (e == HPE_HEADER_OVERFLOW) {
        web__conn_fail(c, 431, "request header fields too large");
    } else if (e != HPE_OK) {
        web__conn_fail(c, 400, http_errno_description(e));
    } else if (n != len) {
        web__conn_fail(c, 400, "unexpected bytes after the request");
    }
}

/* The response was written: close, or go back to reading and parse what
 * the client sent meanwhile. */
void web__conn_response_done(web_conn_t *c)
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
    c->idle_since = web__mono_now();
    web__conn_timer(c, c->srv->opts.idle_timeout);
    if (c->stash.len) {
        replay = c->stash;
        buf_init(&c->stash, STASH_MAX);
        web__conn_input(c, replay.data, replay.len);
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
                  web__ssl_error_text(e, sizeof(e)));
    }
    ERR_clear_error();
    c->closing = true;
    return IO_CLOSE;
}

/* Counts and logs a handshake that failed on the client certificate the
 * client CA requires (none sent, or one it did not sign). */
static void note_client_cert_refused(web_conn_t *c)
{
    static const char *const labels[] = {"reason"};
    int reason = ERR_GET_REASON(ERR_peek_error());
    long verify = SSL_get_verify_result(c->ssl);
    const char *why = reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE ? "no_certificate"
                      : verify != X509_V_OK                             ? "bad_certificate"
                                                                        : NULL;
    if (!why)
        return;
    metrics_counter_t *m = metrics_counter_new("webhook_client_cert_refused_total",
                                               "TLS handshakes refused on the webhook port for a "
                                               "missing or unverified client certificate.",
                                               1, labels);
    if (m) {
        const char *values[] = {why};
        metrics_counter_add(m, 1, values);
    }
    log_info("webhook: client certificate refused", "peer", c->peer, "reason", why, "verify",
             verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "");
}

static int conn_handshake(web_conn_t *c)
{
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        if (c->srv->opts.client_ca_file && !c->plain && SSL_get_error(c->ssl, r) == SSL_ERROR_SSL)
            note_client_cert_refused(c);
        return ssl_fail(c, r, "handshake");
    }
    c->state = CONN_READING;
    c->want = EV_READ;
    return IO_PROGRESS; /* the timer set at the accept runs on to the first request byte */
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
        web__conn_input(c, tmp, (size_t)n);
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
        c->ssl_fatal = true; /* no second shutdown in web__conn_destroy */
    }
    shutdown(c->fd, SHUT_WR);
    web__conn_timer(c, LINGER_SECONDS);
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
            web__conn_response_done(c);
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
void web__conn_update_io(web_conn_t *c)
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
        web__conn_destroy(c);
    else
        web__conn_update_io(c);
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
        web__count_error(c->srv, c->plain, "timeout");
        web__conn_queue_text(c, 503, "the handler did not answer in time", "");
        conn_run(c);
    } else {
        if (c->state != CONN_LINGER)
            log_debug("webhook: connection timed out", "peer", c->peer);
        if (c->state == CONN_READING && c->started > 0) /* a request begun, cut off */
            web__count_error(c->srv, c->plain, "timeout");
        c->closing = true;
    }
    if (c->closing)
        web__conn_destroy(c);
    else
        web__conn_update_io(c);
}
