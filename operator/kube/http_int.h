/*
 * http_int — what the files of the API transport share (http.c, http_easy.c,
 * status.c): the request and transport structs and the functions they call
 * across files. Not for other modules: they use kube/http.h.
 */
#ifndef VMDRAIN_KUBE_HTTP_INT_H
#define VMDRAIN_KUBE_HTTP_INT_H

#include "kube/http.h"
#include "util/buf.h"
#include "util/metrics.h"
#include "util/ratelimit.h"

#include <curl/curl.h>
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum req_state {
    REQ_WAITING,     /* held back by the rate limit (wait list) */
    REQ_NEW,         /* waiting in the start list */
    REQ_RUNNING,     /* in the multi handle */
    REQ_DONE,        /* ended; queued for on_done */
    REQ_CANCELLED,   /* cancelled; queued (or about to be) for release */
    REQ_DISPATCHING, /* inside its on_done */
} req_state_t;

/* A socket libcurl asked us to watch. */
typedef struct http_sock {
    ev_io io;
    kube_http_t *h;
    curl_socket_t fd;
    struct http_sock *prev;
    struct http_sock *next;
} http_sock_t;

struct kube_req {
    kube_http_t *h;
    CURL *easy;
    req_state_t state;
    bool in_multi;
    bool queued; /* in the release queue */
    bool counted;
    bool notify;            /* owed an on_done saying it was cancelled (kube_http_free) */
    bool unfenced;          /* kube_req_opts_t.unfenced */
    unsigned long exec_gen; /* the exec credential's generation it was sent with */
    kube_req_t *prev;       /* all live requests */
    kube_req_t *next;
    kube_req_t *qnext; /* wait list, start list or release queue */
    char *method;
    char *path;
    char *verb;
    char *body;
    size_t body_len;
    char *content_type;
    struct curl_slist *headers;
    bool watch;
    double timeout;
    double idle_timeout;
    size_t max_body;
    int (*on_data)(void *ud, const char *data, size_t len);
    void (*on_done)(void *ud, const kube_result_t *res);
    void *ud;
    long status;        /* final HTTP status once the headers arrived */
    CURLcode cc;        /* libcurl's result */
    buf_t body_buf;     /* buffered 2xx body, or the non-2xx body */
    char *fail;         /* our own reason for failing, preferred over libcurl's */
    char *errtext;      /* composed for on_done */
    char *warnings;     /* the response's Warning header values, one per line */
    ev_timer idle;      /* watch idle timeout */
    ev_tstamp activity; /* last byte seen */
    ev_tstamp start_at; /* REQ_WAITING: when the rate limit lets it go */
    char errbuf[CURL_ERROR_SIZE];
};

/* Requests in order, linked through qnext (a request is in one at most). */
typedef struct kube__fifo {
    kube_req_t *head;
    kube_req_t *tail;
} kube__fifo_t;

struct kube_http {
    struct ev_loop *loop;
    kube_config_t *cfg;
    CURLM *multi;
    char *base_url;                /* what paths are appended to */
    bool tls;                      /* https: wait for ALPN to learn about h2 */
    struct curl_slist *connect_to; /* tls_server_name mapping, or NULL */
    ev_timer curl_timer;           /* CURLMOPT_TIMERFUNCTION */
    ev_timer token_timer;
    bool token_timer_on;
    ev_check reap;    /* starts new requests, releases ended ones */
    ev_idle nowait;   /* keeps the loop from blocking while work is queued */
    kube_req_t *reqs; /* every live request */
    size_t nreqs;
    kube__fifo_t start;     /* REQ_NEW, in order */
    kube__fifo_t rel;       /* ended or cancelled, in order */
    kube__fifo_t wait;      /* REQ_WAITING, in order of start_at */
    ev_timer wait_timer;    /* fires when the head of the wait list may start */
    util_ratelimit_t limit; /* non-watch requests */
    http_sock_t *socks;
    int depth;    /* > 0 while our callbacks run */
    bool closing; /* kube_http_free() was called */
    char *fence;  /* kube_http_fence(): why writes are refused, or NULL */
    ev_tstamp last_401_reload;
    metrics_counter_t *requests_total;
    metrics_counter_t *throttled_total;
    metrics_counter_t *fenced_total;
};

static inline bool kube__is_2xx(long status)
{
    return status >= 200 && status < 300;
}

/* Copies at most cap-1 bytes of s[0..len) into out, replacing control
 * characters by spaces and never cutting a UTF-8 sequence in two
 * (status.c). */
void kube__copy_line(char *out, size_t cap, const char *s, size_t len);

/* Records our own failure reason, owned by r from now on (first one wins;
 * http.c). */
void kube__req_fail(kube_req_t *r, char *msg);

/* Counts r in api_requests_total once, with code (http.c). */
void kube__http_count(kube_http_t *h, kube_req_t *r, const char *code);

/* Copies the options into r. Returns 0 or -1 (no memory; http_easy.c). */
int kube__req_copy_opts(kube_req_t *r, const kube_req_opts_t *o);

/* Creates and configures r's easy handle. Returns 0 or -1 (no memory;
 * http_easy.c). */
int kube__req_setup(kube_req_t *r);

#endif
