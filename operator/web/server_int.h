/*
 * server_int — what the files of the webhook server share: the server,
 * connection, request and route structs, and the functions called across
 * files. server.c owns the listeners and the lifecycle, server_tls.c the
 * certificate pair and its SSL_CTX, server_conn.c the connections (accept,
 * parse, TLS and socket I/O, timers), server_route.c routing, responses
 * and the request API. Not for other modules: they use web/server.h.
 */
#ifndef VMDRAIN_WEB_SERVER_INT_H
#define VMDRAIN_WEB_SERVER_INT_H

#include "util/buf.h"
#include "util/metrics.h"
#include "web/server.h"

#include <ev.h>
#include <http_parser.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

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
enum { HDR_NONE, HDR_CONTENT_TYPE, HDR_EXPECT, HDR_AUTHORIZATION };

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
    int nconns;       /* open connections accepted here */
    bool full_logged; /* "connection limit reached" was logged */
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
    listener_t *lst; /* NULL for a socketless connection */
    int fd;          /* -1 for a socketless connection (web__parse_feed) */
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
    char addr[64];     /* the peer's address without the port */
    double idle_since; /* monotonic seconds: accepted, or the last response written */
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
    buf_t authorization; /* the Authorization header's value; capped by max_header */
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
    char *authorization; /* "" when none */
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
    SSL_CTX *ctx_open;                /* the same pair, no client certificate asked (plain_tls) */
    file_id_t cert_id, key_id, ca_id; /* ca_id: of the client CA file, when set */
    bool files_missing_logged;
    route_t *routes;
    int nroutes;
    web_conn_t *conns;
    int nconns;
    metrics_histogram_t *hist;
    metrics_counter_t *errors; /* webhook_errors_total{reason} */
    metrics_gauge_t *ready;    /* ready: /readyz's verdict, at each render */
};

/* server_conn.c */

/* Monotonic seconds. */
double web__mono_now(void);

/* A connection on fd (-1: socketless), linked into s. NULL when out of
 * memory. */
web_conn_t *web__conn_alloc(web_server_t *s, int fd, bool plain);

/* Closes and frees a connection. Only called where nothing of c is on the
 * stack any more. */
void web__conn_destroy(web_conn_t *c);

/* Runs received bytes through the parser. A complete request is
 * dispatched and the bytes after it are stashed until it is answered. */
void web__conn_input(web_conn_t *c, const char *data, size_t len);

/* The response was written: close, or go back to reading and parse what
 * the client sent meanwhile. */
void web__conn_response_done(web_conn_t *c);

/* Starts the io watcher for the events the connection waits for. */
void web__conn_update_io(web_conn_t *c);

/* Arms the connection's one timer for t seconds from now. */
void web__conn_timer(web_conn_t *c, double t);

/* The listeners' ev_io callback: accepts what is waiting. */
void web__on_accept(struct ev_loop *loop, ev_io *w, int revents);

/* server_route.c */

/* Queues a text response ("msg\n"); extra holds whole header lines or
 * is "". */
void web__conn_queue_text(web_conn_t *c, int status, const char *msg, const char *extra);

/* Answers a request that cannot be served and closes afterwards. */
void web__conn_fail(web_conn_t *c, int status, const char *msg);

/* Hands a complete request to its route, or answers 404/405/415. */
void web__conn_dispatch(web_conn_t *c);

/* The reasons of webhook_errors_total: requests on the webhook (TLS)
 * listener that got no AdmissionReview answer. */
#define WEB_ERROR_REASONS                                                                          \
    {                                                                                              \
        "bad_request", "too_large", "not_found", "bad_content_type", "bad_review", "timeout",      \
            "internal", "overloaded"                                                               \
    }

/* Counts a request on s's webhook listener that got no answer of its
 * handler, by reason (one of WEB_ERROR_REASONS); nothing for the plain
 * listener's. */
void web__count_error(web_server_t *s, bool plain, const char *reason);

/* server_tls.c */

/* The oldest OpenSSL error of this thread as text ("" when none); the
 * queue is cleared. */
const char *web__ssl_error_text(char *buf, size_t n);

/* Loads the certificate pair into a new SSL_CTX for new connections.
 * Returns 0; -1 with err set when the pair does not load (the old context
 * stays); -2 when a file changed while it was read. */
int web__cert_load(web_server_t *s, char *err, size_t errlen);

/* Logs the serial and expiry of the certificate being served. */
void web__log_cert(const char *msg, const web_server_t *s);

/* The reload timer's callback: reloads the pair when a file changed. */
void web__on_reload_timer(struct ev_loop *loop, ev_timer *w, int revents);

#endif
