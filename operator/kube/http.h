/*
 * http — the transport to the kube-apiserver: libcurl's multi_socket API
 * driven by a libev loop.
 *
 * One kube_http_t per apiserver holds one curl multi handle, so connections
 * are pooled and reused, and HTTP/2 streams are multiplexed when the server
 * offers h2 over TLS. Keys and certificates reach libcurl as in-memory PEM
 * blobs. The bearer token is re-read from its file on a timer and after a
 * 401, and every request uses the newest one.
 *
 * Callbacks: on_data runs from inside libcurl as bytes arrive; on_done runs
 * exactly once per request that kube_req_cancel() did not stop, from the
 * loop, never from inside kube_http_request() nor from inside a libcurl
 * callback. No easy handle is removed or freed inside a libcurl callback:
 * finished and cancelled requests are queued and released from an ev_check
 * watcher.
 *
 * kube_http_free() ends every request still pending (waiting to start,
 * running, or ended with its on_done not yet called): each gets its on_done
 * once, with res->cancelled set, status 0 and an error ending in
 * KUBE_HTTP_CANCELLED_TEXT, so that whoever waits for a result can release
 * what it holds. Those calls come from kube_http_free() itself, or, when it
 * is called from inside on_data or on_done, once that callback returned.
 *
 * Rate limit: a token bucket (kube_http_opts_t: qps a second, burst at
 * once, like client-go's defaults of 50 and 100) holds back requests beyond
 * the rate; they wait in order on an ev_timer (the loop never blocks) and
 * are counted in vmdrain_api_throttled_requests_total. Watches are
 * long-running and never wait.
 *
 * Every request is counted in vmdrain_api_requests_total{verb,code} once:
 * with its HTTP status when the response headers arrive, or with code
 * "error" when it ends without any response. A request cancelled before a
 * response is not counted.
 */
#ifndef VMDRAIN_KUBE_HTTP_H
#define VMDRAIN_KUBE_HTTP_H

#include "kube/config.h"

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;

#define KUBE_HTTP_TIMEOUT        30.0        /* seconds, total, non-watch requests */
#define KUBE_HTTP_IDLE_TIMEOUT   300.0       /* seconds without a byte, watch requests */
#define KUBE_HTTP_MAX_BODY       (16u << 20) /* bytes, buffered bodies */
#define KUBE_HTTP_ERROR_BODY_MAX (64u << 10) /* bytes of a non-2xx body kept */
#define KUBE_HTTP_TOKEN_INTERVAL 60.0        /* seconds between token file reads */
#define KUBE_HTTP_DEFAULT_QPS    50.0        /* requests a second, like client-go */
#define KUBE_HTTP_DEFAULT_BURST  100         /* requests at once, like client-go */

typedef struct kube_http kube_http_t;
typedef struct kube_req kube_req_t;

/* What on_done receives. Everything it points to lives until on_done
 * returns. A request succeeded exactly when error is NULL. */
typedef struct kube_result {
    long status;         /* HTTP status of a complete response; 0 when the
                            request failed before or while receiving it */
    const char *error;   /* one line, "GET /path: ..."; NULL on 2xx */
    const char *reason;  /* Status.reason of a non-2xx body ("NotFound",
                            "Forbidden", "Expired", "Gone", ...) or NULL */
    const char *message; /* Status.message of a non-2xx body, or NULL */
    long code;           /* Status.code of a non-2xx body, or 0 */
    const char *body;    /* the buffered body: the whole 2xx body when there
                            is no on_data, the (capped) body of a non-2xx
                            response; NUL-terminated; NULL otherwise */
    size_t body_len;
    bool cancelled;       /* ended by kube_http_free(): status 0, error ends
                             with KUBE_HTTP_CANCELLED_TEXT */
    const char *warnings; /* the texts of the response's Warning headers
                             (what admission webhooks warned), one per line,
                             at most KUBE_HTTP_WARNINGS_MAX bytes; NULL when none */
} kube_result_t;

#define KUBE_HTTP_WARNINGS_MAX 4096

/* The end of kube_result_t.error for a request ended by kube_http_free(). */
#define KUBE_HTTP_CANCELLED_TEXT "cancelled: the API client is shutting down"

typedef struct kube_req_opts {
    const char *method;       /* "GET" when NULL */
    const char *path;         /* path and query, starting with '/'; appended to
                                 the configured server URL */
    const char *content_type; /* of the request body, or NULL */
    const char *body;         /* copied; NULL for none */
    size_t body_len;
    bool watch;          /* long-lived: no total timeout, TCP keepalive,
                            idle timeout instead */
    double timeout;      /* non-watch: total seconds; <= 0 means KUBE_HTTP_TIMEOUT */
    double idle_timeout; /* watch: seconds without a byte before failing;
                            <= 0 means KUBE_HTTP_IDLE_TIMEOUT */
    size_t max_body;     /* cap for a buffered 2xx body; 0 means
                            KUBE_HTTP_MAX_BODY; exceeding it fails the request */
    /* Streams a 2xx body as it arrives (body then stays NULL). Returns 0, or
     * -1 to abort the request (set the reason first with
     * kube_req_set_error()). May call any function of this module. */
    int (*on_data)(void *ud, const char *data, size_t len);
    /* Called once when the request ends (also when kube_http_free() ends
     * it: res->cancelled), unless kube_req_cancel() stopped it. The request
     * is freed when it returns. */
    void (*on_done)(void *ud, const kube_result_t *res);
    void *ud;
    const char *verb; /* metrics label (get, list, watch, create, patch,
                         update, delete); derived from method and watch when NULL */
    bool unfenced;    /* a write kube_http_fence() lets through */
} kube_req_opts_t;

/* How the transport behaves towards the apiserver. */
typedef struct kube_http_opts {
    double qps; /* non-watch requests a second; <= 0: unlimited */
    int burst;  /* requests sent at once before the rate applies; < 1 is 1 */
} kube_http_opts_t;

#define KUBE_HTTP_OPTS_DEFAULT                                                                     \
    ((kube_http_opts_t){.qps = KUBE_HTTP_DEFAULT_QPS, .burst = KUBE_HTTP_DEFAULT_BURST})

/* kube_http_new() with options (NULL: unlimited). */
kube_http_t *kube_http_new_opts(struct ev_loop *loop, kube_config_t *cfg, const kube_http_opts_t *o,
                                char *err, size_t errlen);

/* Creates the transport for cfg (with KUBE_HTTP_OPTS_DEFAULT), which it borrows: cfg must outlive
 * it (the token in it is replaced on reload). Returns NULL with a message in err when the server
 * URL is unusable or libcurl cannot be set up. Free with kube_http_free(). */
kube_http_t *kube_http_new(struct ev_loop *loop, kube_config_t *cfg, char *err, size_t errlen);

/* Ends every pending request (its on_done gets res->cancelled, see above)
 * and frees the transport. Safe while requests are in flight and from
 * inside on_data or on_done (the on_done calls and the release then follow
 * when that callback has returned). The on_done calls may cancel other
 * requests (which then get none); kube_http_request() returns NULL and
 * kube_http_free() does nothing from then on. Owners of objects that a
 * request's ud points to free the transport before those objects. */
void kube_http_free(kube_http_t *h);

/* Changes how often the token file is re-read (tests; the default is
 * KUBE_HTTP_TOKEN_INTERVAL). No effect without a token file. */
void kube_http_set_token_interval(kube_http_t *h, double seconds);

/* Re-reads the token file now. Returns 1 when the token changed, 0 when it
 * did not or there is no token file, -1 on error (logged; the old token
 * stays in use). */
int kube_http_reload_token(kube_http_t *h);

/* Requests not yet released (waiting for the rate limit, running, or
 * queued for on_done). */
size_t kube_http_pending(const kube_http_t *h);

/* Starts a request; it is sent from the loop. Returns a handle owned by
 * the transport, valid until on_done returns or kube_req_cancel() is called.
 * Returns NULL (and never calls on_done) for a missing path or on_done, a
 * path not starting with '/', a transport being freed, or when memory runs
 * out. */
kube_req_t *kube_http_request(kube_http_t *h, const kube_req_opts_t *o);

/* Stops a request: on_done is not called and the handle is invalid
 * afterwards. Safe from inside on_data or on_done of any request; a no-op
 * from inside the request's own on_done. */
void kube_req_cancel(kube_req_t *r);

/* Sets the error text reported when on_data returns -1 (copied). */
void kube_req_set_error(kube_req_t *r, const char *msg);

/* The fence: while on, every write (a method other than GET) that is not
 * unfenced ends with an error naming why (status 0, error
 * "METHOD /path: fenced: WHY") instead of being sent, and counts in
 * vmdrain_api_fenced_requests_total{verb}, not in api_requests_total.
 * Turning it on also ends the writes waiting for the rate limit or in
 * flight the same way: their transfers are stopped (an HTTP/2 stream is
 * reset, an HTTP/1.1 connection closed), so none is sent from then on. A
 * NULL why turns the fence off. Their on_done calls come from the loop. */
void kube_http_fence(kube_http_t *h, const char *why);

/* A decoded Kubernetes Status object (metav1.Status). */
typedef struct kube_api_status {
    long code;
    char reason[64];    /* truncated, control characters replaced by spaces */
    char message[1024]; /* same */
} kube_api_status_t;

/* Decodes code, reason and message from a Status JSON body of len bytes;
 * other keys are skipped. Returns 0, or -1 with a message in err when body
 * is not a JSON object (or nests deeper than 32 levels). out is always
 * initialised. */
int kube_api_status_decode(const char *body, size_t len, kube_api_status_t *out, char *err,
                           size_t errlen);

/* Initialises libcurl once for the process (kube_http_new() calls it).
 * Returns 0 or -1. */
int kube_http_global_init(void);

/* Releases libcurl's global state (shutdown, tests); no transport may be
 * alive. */
void kube_http_global_cleanup(void);

#endif
