/*
 * server — the webhook's HTTPS server (and an optional plain HTTP one) on
 * the libev loop.
 *
 * TLS is OpenSSL (TLS 1.2 and newer only), HTTP/1.1 parsing is
 * http-parser; accepting, the handshake, reading and writing are
 * non-blocking and driven by ev_io watchers, so nothing here ever blocks
 * the loop. Connections are kept alive between requests. Each connection
 * has one timer: the TLS handshake and then the first byte of the first
 * request must come within first_timeout of the accept (the kube-apiserver
 * sends its request at once; a client that connects and says nothing
 * holds a slot only that long); every request must be complete within
 * read_timeout of its first byte (slow clients are cut off); a kept-alive
 * connection idle between requests is closed after idle_timeout, which is
 * shorter than the kube-apiserver's webhook client's own 90 s, so the
 * server, not the client, ends an idle connection and the apiserver never
 * sends a request on a connection being closed; a handler must answer
 * within handler_timeout (else 503) and a response must be taken by the
 * client within write_timeout.
 *
 * Limits: a body over max_body bytes gets 413, a request head (request
 * line and headers) over max_header bytes gets 431, a malformed request
 * 400; all three close the connection. Each listener has its own budget
 * of max_conns connections, so a flood of the webhook port cannot keep
 * the plain listener's probes and metrics from being answered, and at
 * most max_conns_per_addr of them from one client address. When a new
 * connection would go beyond either cap, the listener's (or that
 * address's) oldest idle connection is closed to make room: one between
 * requests, or one that has not sent a byte (TLS: not begun its
 * handshake; plain: no request byte). Only when none is idle is the new
 * connection closed at once. No input can make the process abort.
 *
 * The certificate and key are read from PEM files and checked every
 * reload_interval seconds (device, inode, size, mtime and ctime, following
 * symlinks, so Kubernetes' "..data" symlink swaps of Secret volumes are
 * seen). A changed pair is loaded into a new SSL_CTX that serves NEW
 * connections; connections already open keep theirs. A new pair that does
 * not load (a half-written file, a key that does not match) is logged and
 * the old one stays in force; the same pair is retried once either file
 * changes again. The client CA file, when set, is checked and reloaded
 * with them.
 *
 * Routes: the caller adds its handlers with web_server_route(); the server
 * itself answers /healthz (200 "ok"), /readyz (200 when opts.ready returns
 * true, else 503) and /metrics (metrics_render(), after opts.metrics_guard
 * when one is set). An unknown path gets
 * 404, a known path with another method 405, and a route flagged
 * WEB_ROUTE_JSON refuses a body whose Content-Type is not
 * application/json with 415. On the plain listener only routes flagged
 * WEB_ROUTE_PLAIN are served (the three built-in ones are).
 *
 * Metrics: webhook_request_duration_seconds (histogram), observed for
 * every request to a caller's route, from its first byte to its answer.
 *
 * web_server_start() sets SIGPIPE to be ignored when it was at its
 * default, since a peer closing mid-write must not kill the process.
 */
#ifndef VMDRAIN_WEB_SERVER_H
#define VMDRAIN_WEB_SERVER_H

#include "util/buf.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct web_server web_server_t;
typedef struct web_request web_request_t;

/* A handler. It must answer req with web_respond() exactly once, now or
 * later from another callback of the loop (after an API call, say). */
typedef void (*web_handler_fn)(web_request_t *req, void *ud);

/* Whether the process is ready to serve (/readyz). It may write one line
 * (no newline) into note, which /readyz shows after its verdict: a
 * warning an admin should see, ready or not. note is "" on entry. */
typedef bool (*web_ready_fn)(void *ud, char *note, size_t n);

typedef struct web_server_opts {
    /* "host:port", "[v6]:port" or ":port" (all addresses); port 0 picks a
     * free one (web_server_port()). Required. */
    const char *listen;
    const char *cert_file; /* PEM: the certificate, then its chain. Required. */
    const char *key_file;  /* PEM private key. Required. */
    /* PEM CA certificates. Set, every TLS client must present a certificate
     * one of them signed, or its handshake fails (the apiserver presents
     * one through its admission configuration); reloaded with the pair.
     * NULL or "": no client certificate is asked for. */
    const char *client_ca_file;
    /* A second listener for /healthz, /readyz and /metrics (and routes
     * flagged WEB_ROUTE_PLAIN); NULL or "" for none. Plain HTTP, unless
     * plain_tls: then TLS with the same certificate pair, asking no client
     * certificate (for a /metrics that takes bearer tokens). */
    const char *plain_listen;
    bool plain_tls;
    /* Set, every /metrics request (on either listener) goes to the guard,
     * which answers it, now or later, with web_respond_metrics() or a
     * refusal. NULL: /metrics is answered at once. */
    web_handler_fn metrics_guard;
    void *metrics_guard_ud;
    web_ready_fn ready; /* NULL: always ready */
    void *ready_ud;
    /* Limits; 0 takes the default in brackets. */
    size_t max_body;        /* bytes [1 MiB] */
    size_t max_header;      /* bytes of request line and headers [16 KiB] */
    int max_conns;          /* open connections, per listener [256] */
    int max_conns_per_addr; /* open connections from one address, per listener [128] */
    double first_timeout;   /* s, from accept to the handshake and the first request byte [5] */
    double read_timeout;    /* s, each request from its first byte [10] */
    double idle_timeout;    /* s, between requests [60] */
    double handler_timeout; /* s, for a handler to answer [15] */
    double write_timeout;   /* s, for a response to be taken [10] */
    double reload_interval; /* s, between checks of the certificate files [2] */
} web_server_opts_t;

#define WEB_DEFAULT_MAX_BODY           (1024 * 1024)
#define WEB_DEFAULT_MAX_HEADER         (16 * 1024)
#define WEB_DEFAULT_MAX_CONNS          256
#define WEB_DEFAULT_MAX_CONNS_PER_ADDR 128
#define WEB_DEFAULT_FIRST_TIMEOUT      5.0
#define WEB_DEFAULT_READ_TIMEOUT       10.0
#define WEB_DEFAULT_IDLE_TIMEOUT       60.0
#define WEB_DEFAULT_HANDLER_TIMEOUT    15.0
#define WEB_DEFAULT_WRITE_TIMEOUT      10.0
#define WEB_DEFAULT_RELOAD_INTERVAL    2.0

/* Route flags. */
#define WEB_ROUTE_JSON  0x1u /* the body must be application/json (else 415) */
#define WEB_ROUTE_PLAIN 0x2u /* also served on the plain listener */

/* A server for loop with a copy of opts (strings included); nothing is
 * opened yet. Returns NULL when out of memory. Freed with
 * web_server_free(). */
web_server_t *web_server_new(struct ev_loop *loop, const web_server_opts_t *opts);

/* Adds a route: method ("GET", "POST", ...) on an exact path (no query).
 * A path may have routes for several methods. Returns 0, or -1 when the
 * route exists already or memory runs out. */
int web_server_route(web_server_t *s, const char *method, const char *path, unsigned flags,
                     web_handler_fn fn, void *ud);

/* Loads the certificate pair, binds and listens, and starts serving. With
 * neither listen, cert_file nor key_file, only the plain listener is
 * opened (metrics and probes without the webhook).
 * Returns 0, or -1 with a message in err that names the file or the
 * address (and nothing is left open). */
int web_server_start(web_server_t *s, char *err, size_t errlen);

/* The bound TLS port (the one picked when 0 was asked), or -1 before
 * start; web_server_plain_port() likewise for the plain listener. */
int web_server_port(const web_server_t *s);
int web_server_plain_port(const web_server_t *s);

/* Reloads the certificate pair now, changed or not. Returns 0 when the
 * new pair is in force, or -1 with err set when it did not load (the old
 * one stays). */
int web_server_reload_now(web_server_t *s, char *err, size_t errlen);

/* Open connections, both listeners (tests). */
int web_server_conns(const web_server_t *s);

/* Closes the listeners and every connection and frees the server (NULL is
 * fine). Requests still waiting for their handler's answer are detached:
 * web_respond() on them then only frees them. */
void web_server_free(web_server_t *s);

/* --- requests, as handlers see them ------------------------------------ */

/* The request's parts; they live until web_respond(). The body is
 * NUL-terminated (it may hold other NUL bytes: use the length). */
const char *web_request_method(const web_request_t *req);
const char *web_request_path(const web_request_t *req);
const char *web_request_query(const web_request_t *req); /* "" when none */
const char *web_request_content_type(const web_request_t *req);
const char *web_request_body(const web_request_t *req, size_t *len);
const char *web_request_peer(const web_request_t *req); /* "ip:port" */
/* The Authorization header's value, "" when none. Wiped when req is freed. */
const char *web_request_authorization(const web_request_t *req);

/* Whether the client went away (or the handler timed out): an answer will
 * not reach anyone, but web_respond() must still be called to free req. */
bool web_request_gone(const web_request_t *req);

/* Answers req with status, a Content-Type (NULL: text/plain) and len bytes
 * of body, and frees req: the handler must not touch it afterwards. May be
 * called from inside the handler or later from any callback of the same
 * loop, even after web_server_free(). */
void web_respond(web_request_t *req, int status, const char *content_type, const char *body,
                 size_t len);

/* web_respond() with extra header lines (each ending in "\r\n"; NULL for
 * none), such as "WWW-Authenticate: Bearer\r\n". */
void web_respond_headers(web_request_t *req, int status, const char *content_type,
                         const char *headers, const char *body, size_t len);

/* Answers req with the rendered metrics (200, the Prometheus text format). */
void web_respond_metrics(web_request_t *req);

/* web_respond() with a text/plain body: text and a newline. */
void web_respond_text(web_request_t *req, int status, const char *text);

/* --- internal: for the fuzz driver and the tests ----------------------- */

/* Runs bytes through the request parsing and routing path of one socketless
 * connection on s (which need not be started), as if they arrived in reads
 * of at most chunk bytes (0: all at once). Responses are appended to out.
 * Handlers must answer synchronously. Returns the number of responses, or
 * -1 when the connection was closed (after an error response or a
 * Connection: close). */
int web__parse_feed(web_server_t *s, const char *data, size_t len, size_t chunk, buf_t *out);

#endif
