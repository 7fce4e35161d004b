/*
 * server — the webhook server's lifecycle: options and defaults, routes,
 * the listeners, the built-in /healthz, /readyz and /metrics, start and
 * free (web/server.h has the contract).
 *
 * Owns web_server_t and its listeners. Calls the BSD socket API, libev,
 * util/metrics, util/log, util/strutil, server_tls.c (the certificate
 * pair) and server_conn.c (connections); called by the composition root.
 */
#include "util/log.h"
#include "util/metrics.h"
#include "util/strutil.h"
#include "web/server_int.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    ev_io_init(&l->io, web__on_accept, l->fd, EV_READ);
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

/* --- built-in routes ------------------------------------------------------- */

static void on_healthz(web_request_t *req, void *ud)
{
    (void)ud;
    web_respond(req, 200, NULL, "ok\n", 3);
}

/* /readyz's verdict; note gets its line (see web_ready_fn). */
static bool is_ready(const web_server_t *s, char *note, size_t n)
{
    return !s->opts.ready || s->opts.ready(s->opts.ready_ud, note, n);
}

/* The collector of vmdrain_ready: the verdict at each render. */
static void collect_ready(void *ud)
{
    web_server_t *s = ud;
    char note[512] = "";

    metrics_gauge_set(s->ready, is_ready(s, note, sizeof(note)) ? 1 : 0, NULL);
}

static void on_readyz(web_request_t *req, void *ud)
{
    web_server_t *s = ud;
    char note[512] = "", body[600];

    bool ok = is_ready(s, note, sizeof(note));
    int n = snprintf(body, sizeof(body), "%s\n%s%s", ok ? "ok" : "not ready", note,
                     note[0] ? "\n" : "");
    web_respond(req, ok ? 200 : 503, NULL, body, (size_t)n);
}

void web_respond_metrics(web_request_t *req)
{
    buf_t m;

    buf_init(&m, OUT_MAX / 2);
    if (metrics_render(&m) < 0)
        web_respond(req, 500, NULL, "metrics too large\n", 18);
    else
        web_respond(req, 200, METRICS_CT, m.data ? m.data : "", m.len);
    buf_free(&m);
}

/* /metrics: rendered at once, or once the caller's guard let it through. */
static void on_metrics(web_request_t *req, void *ud)
{
    web_server_t *s = ud;

    if (s->opts.metrics_guard)
        s->opts.metrics_guard(req, s->opts.metrics_guard_ud);
    else
        web_respond_metrics(req);
}

/* --- the server ------------------------------------------------------------ */

/* Sets *dst to a copy of src, or to NULL when src is NULL or "" (an unset
 * option). Returns 0, or -1 when the copy failed. */
static int dup_option(const char **dst, const char *src)
{
    *dst = util_strdup_or_null(src && *src ? src : NULL);
    return src && *src && !*dst ? -1 : 0;
}

/* A limit of 0 (or less) takes its default. */
static void default_limit(double *v, double def)
{
    if (*v <= 0)
        *v = def;
}

/* Copies opts into s with defaults for the zero limits. */
static int copy_opts(web_server_t *s, const web_server_opts_t *o)
{
    web_server_opts_t *d = &s->opts;
    int rc = 0;

    *d = *o;
    rc |= dup_option(&d->listen, o->listen);
    rc |= dup_option(&d->cert_file, o->cert_file);
    rc |= dup_option(&d->key_file, o->key_file);
    rc |= dup_option(&d->client_ca_file, o->client_ca_file);
    rc |= dup_option(&d->plain_listen, o->plain_listen);
    if (rc)
        return -1;
    if (!d->max_body)
        d->max_body = WEB_DEFAULT_MAX_BODY;
    if (!d->max_header)
        d->max_header = WEB_DEFAULT_MAX_HEADER;
    if (d->max_conns <= 0)
        d->max_conns = WEB_DEFAULT_MAX_CONNS;
    if (d->max_conns_per_addr <= 0)
        d->max_conns_per_addr = WEB_DEFAULT_MAX_CONNS_PER_ADDR;
    default_limit(&d->first_timeout, WEB_DEFAULT_FIRST_TIMEOUT);
    default_limit(&d->read_timeout, WEB_DEFAULT_READ_TIMEOUT);
    default_limit(&d->idle_timeout, WEB_DEFAULT_IDLE_TIMEOUT);
    default_limit(&d->handler_timeout, WEB_DEFAULT_HANDLER_TIMEOUT);
    default_limit(&d->write_timeout, WEB_DEFAULT_WRITE_TIMEOUT);
    default_limit(&d->reload_interval, WEB_DEFAULT_RELOAD_INTERVAL);
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

/* Registers webhook_errors_total (every reason at 0, so that increase()
 * sees the first) and vmdrain_ready with its collector. */
static void server_metrics(web_server_t *s)
{
    static const char *const reason[] = {"reason"}, *const reasons[] = WEB_ERROR_REASONS;

    s->errors = metrics_counter_new("webhook_errors_total",
                                    "Requests to the webhook that got no AdmissionReview answer, "
                                    "by reason.",
                                    1, reason);
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        metrics_counter_add(s->errors, 0, &reasons[i]);
    s->ready = metrics_gauge_new("ready", "1 while /readyz answers ok.", 0, NULL);
    if (s->ready && metrics_add_collector(collect_ready, s) < 0)
        s->ready = NULL;
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
    ev_init(&s->reload_timer, web__on_reload_timer);
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
    server_metrics(s);
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

/* Without a certificate: only the plain listener (metrics and probes). */
static int start_plain_only(web_server_t *s, char *err, size_t errlen)
{
    if (!s->opts.plain_listen) {
        util_set_err(err, errlen, "webhook: listen, cert_file and key_file are required");
        return -1;
    }
    if (s->opts.plain_tls) {
        util_set_err(err, errlen,
                     "webhook: TLS on the plain listener needs cert_file and key_file");
        return -1;
    }
    if (s->plain.fd >= 0) {
        util_set_err(err, errlen, "webhook: already started");
        return -1;
    }
    ignore_sigpipe();
    return listener_open(s, &s->plain, s->opts.plain_listen, true, err, errlen);
}

int web_server_start(web_server_t *s, char *err, size_t errlen)
{
    if (!s->opts.listen && !s->opts.cert_file && !s->opts.key_file)
        return start_plain_only(s, err, errlen);
    if (!s->opts.listen || !s->opts.cert_file || !s->opts.key_file) {
        util_set_err(err, errlen, "webhook: listen, cert_file and key_file are required");
        return -1;
    }
    if (s->tls.fd >= 0) {
        util_set_err(err, errlen, "webhook: already started");
        return -1;
    }
    ignore_sigpipe();
    if (web__cert_load(s, err, errlen) != 0)
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
    web__log_cert("webhook serving", s);
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
    metrics_remove_collector(collect_ready, s);
    while (s->conns)
        web__conn_destroy(s->conns);
    listener_close(s, &s->tls);
    listener_close(s, &s->plain);
    ev_timer_stop(s->loop, &s->accept_pause);
    ev_timer_stop(s->loop, &s->reload_timer);
    SSL_CTX_free(s->ctx);
    SSL_CTX_free(s->ctx_open);
    for (int i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    free((char *)s->opts.listen);
    free((char *)s->opts.cert_file);
    free((char *)s->opts.key_file);
    free((char *)s->opts.client_ca_file);
    free((char *)s->opts.plain_listen);
    free(s);
}

/* --- internal: socketless parsing ----------------------------------------- */

int web__parse_feed(web_server_t *s, const char *data, size_t len, size_t chunk, buf_t *out)
{
    web_conn_t *c = web__conn_alloc(s, -1, false);
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
            web__conn_response_done(c);
            if (c->state == CONN_LINGER)
                c->closing = true;
            continue;
        }
        if (off >= len || c->state != CONN_READING)
            break;
        size_t n = len - off < chunk ? len - off : chunk;
        web__conn_input(c, data + off, n);
        off += n;
    }
    rc = c->closing ? -1 : responses;
    web__conn_destroy(c);
    return rc;
}
