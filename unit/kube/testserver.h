/*
 * testserver — a scripted HTTP/1.1 server for the unit tests.
 *
 * Listens on 127.0.0.1 on an ephemeral port and serves each connection from
 * its own thread, so the libev loop under test runs independently. Tests
 * register routes (method and path prefix) with a response script: status,
 * headers, a body sent with Content-Length or as chunks with delays, and
 * misbehaviour on demand (never answer, go silent mid-stream, drop the
 * connection after N body bytes, send raw garbage). Every request received
 * is recorded (method, path and query, headers, body) for assertions.
 *
 * testserver_start_tls() serves HTTPS (HTTP/1.1, no ALPN) with a throwaway
 * PKI made by testserver_pki_make(), and records the CN of the client
 * certificate when the client presents one.
 *
 * Configure a route completely before sending a request it could match.
 * Everything is freed by testserver_stop().
 */
#ifndef VMDRAIN_UNIT_TESTSERVER_H
#define VMDRAIN_UNIT_TESTSERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct testserver testserver_t;
typedef struct testserver_route testserver_route_t;

typedef struct testserver_header {
    char *name;
    char *value;
} testserver_header_t;

/* A request as received; immutable once recorded. */
typedef struct testserver_request {
    int conn; /* connection number, from 1, in accept order */
    char method[16];
    char *target; /* path and query */
    testserver_header_t *headers;
    int nheaders;
    char *body; /* NUL-terminated */
    size_t body_len;
    char client_cn[64]; /* CN of the verified client certificate, or "" */
} testserver_request_t;

/* A throwaway PKI, every member PEM text (EC P-256 keys). */
typedef struct testserver_pki {
    char *ca_pem;          /* signed the certificates below */
    char *server_cert_pem; /* SANs: DNS:apiserver.test, IP:127.0.0.1 */
    char *server_key_pem;
    char *client_cert_pem; /* CN vmdrain-test-client */
    char *client_key_pem;
    char *other_ca_pem; /* an unrelated CA */
} testserver_pki_t;

/* Makes a PKI valid from an hour ago for a day. Returns 0 or -1. Free with
 * testserver_pki_free(). */
int testserver_pki_make(testserver_pki_t *p);
void testserver_pki_free(testserver_pki_t *p);

/* Starts a server. Returns NULL when it cannot listen. */
testserver_t *testserver_start(void);

/* Starts an HTTPS server presenting p's server certificate; it asks for a
 * client certificate (optional) and verifies it against p's CA. URL
 * "https://127.0.0.1:PORT". p may be freed afterwards. */
testserver_t *testserver_start_tls(const testserver_pki_t *p);

/* Stops the server: open connections are dropped, threads joined, and
 * everything (routes, recorded requests) freed. */
void testserver_stop(testserver_t *s);

int testserver_port(const testserver_t *s);

/* "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" */
const char *testserver_url(const testserver_t *s);

/* Adds a route answering method (NULL for any) on targets starting with
 * prefix. The newest matching route with uses left wins; a request no
 * route matches gets a 404. Returns the route's script, owned by the
 * server: by default an empty body with Content-Length. */
testserver_route_t *testserver_route(testserver_t *s, const char *method, const char *prefix,
                                     int status);

/* Adds a response header. */
void testserver_header(testserver_route_t *r, const char *name, const char *value);

/* Sets a body sent with Content-Length. */
void testserver_body(testserver_route_t *r, const char *data, size_t len);

/* Sets a JSON body (NUL-terminated) and its Content-Type. */
void testserver_json(testserver_route_t *r, const char *json);

/* Appends a chunk (len > 0) sent delay_ms after the previous one; the
 * response then uses chunked transfer-encoding. */
void testserver_chunk(testserver_route_t *r, const char *data, size_t len, int delay_ms);

/* Waits ms before the status line; -1 never answers (the connection stays
 * open until the client gives up or the server stops). */
void testserver_delay(testserver_route_t *r, int ms);

/* Drops the connection once n body bytes were sent (mid-chunk if need be),
 * without finishing the response. */
void testserver_close_after(testserver_route_t *r, size_t n);

/* After the chunks, keeps the stream open and silent instead of ending it. */
void testserver_hold(testserver_route_t *r);

/* Sends exactly these bytes instead of a response, then closes. */
void testserver_raw(testserver_route_t *r, const char *data, size_t len);

/* Lets the route serve n requests; afterwards it is skipped. */
void testserver_limit(testserver_route_t *r, int n);

/* Number of requests recorded so far. */
int testserver_nrequests(testserver_t *s);

/* The i-th request recorded (from 0), or NULL. Valid until
 * testserver_stop(). */
const testserver_request_t *testserver_request(testserver_t *s, int i);

/* A header's value (name compared without case), or NULL. */
const char *testserver_request_header(const testserver_request_t *q, const char *name);

/* Waits until at least n requests were recorded. Returns true, or false
 * after timeout_ms. */
bool testserver_wait_requests(testserver_t *s, int n, int timeout_ms);

#endif
