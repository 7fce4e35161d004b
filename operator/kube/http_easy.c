/*
 * http_easy — one request's libcurl easy handle: building it from the
 * options (method, body, headers with the current token, TLS blobs,
 * timeouts) and the per-request libcurl callbacks that receive the status,
 * the headers and the body.
 *
 * Owns nothing beyond the request it is handed. Calls libcurl, util/buf and
 * http.c's kube__req_fail and kube__http_count; called by http.c only.
 */
#include "kube/http_int.h"
#include "util/strutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef VMDRAIN_VERSION
#define VMDRAIN_VERSION "dev"
#endif

#define HTTP_WATCH_CONNECT_TIMEOUT 30.0 /* seconds to connect a watch */
#define HTTP_KEEPIDLE              30L  /* seconds before TCP keepalive probes */
#define HTTP_KEEPINTVL             10L  /* seconds between probes */

/* ---- per-request libcurl callbacks ------------------------------------- */

/* Keeps the text of a "Warning:" header line (a new status line drops
 * those of an interim response), at most KUBE_HTTP_WARNINGS_MAX bytes. */
static void note_warning(kube_req_t *r, const char *data, size_t len)
{
    static const char name[] = "warning:";
    if (len > 5 && memcmp(data, "HTTP/", 5) == 0) {
        free(r->warnings);
        r->warnings = NULL;
        return;
    }
    if (len <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
        return;
    const char *v = data + sizeof(name) - 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    /* 299 - "text": the text (the quotes of RFC 7234's warn-text off) */
    const char *q = memchr(v, '"', (size_t)(end - v));
    if (q && end - q >= 2 && end[-1] == '"') {
        v = q + 1;
        end--;
    }
    size_t old = r->warnings ? strlen(r->warnings) : 0;
    size_t add = (size_t)(end - v);
    if (add == 0 || old + add + 2 > KUBE_HTTP_WARNINGS_MAX)
        return;
    char *w = realloc(r->warnings, old + add + 2);
    if (!w)
        return;
    if (old)
        w[old++] = '\n';
    memcpy(w + old, v, add);
    w[old + add] = '\0';
    r->warnings = w;
}

/* CURLOPT_HEADERFUNCTION: notes activity and warnings, and at the end of
 * the final header block records the status and counts the request. */
static size_t on_curl_header(const char *data, size_t size, size_t n, void *ud)
{
    kube_req_t *r = ud;
    size_t len = size * n;
    if (r->state != REQ_RUNNING)
        return 0;
    r->activity = ev_now(r->h->loop);
    note_warning(r, data, len);
    bool blank = (len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n');
    if (!blank || r->status)
        return len;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) {
        char code[24];
        r->status = status;
        snprintf(code, sizeof(code), "%ld", status);
        kube__http_count(r->h, r, code);
    }
    return len;
}

/* Keeps body bytes: a 2xx body up to max_body (beyond it the request
 * fails), a non-2xx body up to KUBE_HTTP_ERROR_BODY_MAX (beyond it bytes are
 * dropped: the status says enough). */
static size_t req_buffer(kube_req_t *r, const char *data, size_t len)
{
    bool ok = r->status == 0 || kube__is_2xx(r->status);
    size_t cap = r->max_body;
    if (!ok && cap > KUBE_HTTP_ERROR_BODY_MAX)
        cap = KUBE_HTTP_ERROR_BODY_MAX;
    size_t room = cap - r->body_buf.len;
    if (len <= room) {
        if (buf_append(&r->body_buf, data, len) == 0)
            return len;
        kube__req_fail(r, util_strprintf("out of memory buffering the response"));
        return 0;
    }
    if (!ok) {
        buf_append(&r->body_buf, data, room);
        return len;
    }
    kube__req_fail(r, util_strprintf("response body exceeds %zu bytes", cap));
    return 0;
}

/* Hands bytes to on_data. Returns len, or 0 to make libcurl abort when the
 * handler refused them or cancelled the request. */
static size_t req_deliver(kube_req_t *r, const char *data, size_t len)
{
    int rc = r->on_data(r->ud, data, len);
    if (r->state != REQ_RUNNING)
        return 0;
    if (rc < 0) {
        kube__req_fail(r, util_strprintf("aborted by the response handler"));
        return 0;
    }
    return len;
}

/* CURLOPT_WRITEFUNCTION. */
static size_t on_curl_write(char *data, size_t size, size_t n, void *ud)
{
    kube_req_t *r = ud;
    size_t len = size * n;
    if (r->state != REQ_RUNNING)
        return 0;
    r->activity = ev_now(r->h->loop);
    if (r->on_data && kube__is_2xx(r->status))
        return req_deliver(r, data, len);
    return req_buffer(r, data, len);
}

/* ---- building a request -------------------------------------------------- */

static const char *default_verb(const char *method, bool watch)
{
    static const struct {
        const char *method;
        const char *verb;
    } verbs[] = {
        {"GET", "get"},     {"POST", "create"},   {"PUT", "update"},
        {"PATCH", "patch"}, {"DELETE", "delete"}, {"HEAD", "get"},
    };
    if (watch)
        return "watch";
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].method, method) == 0)
            return verbs[i].verb;
    return "other";
}

/* Builds the header list: Accept, Content-Type, Authorization with the
 * current token, and no "Expect: 100-continue" delay. */
static int req_headers(kube_req_t *r)
{
    const char *token = r->h->cfg->token;
    char *line = NULL;
    struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
    if (l && r->content_type) {
        line = util_strprintf("Content-Type: %s", r->content_type);
        l = line ? curl_slist_append(l, line) : NULL;
        free(line);
    }
    if (l && token && *token) {
        line = util_strprintf("Authorization: Bearer %s", token);
        l = line ? curl_slist_append(l, line) : NULL;
        free(line);
    }
    if (l)
        l = curl_slist_append(l, "Expect:");
    if (!l)
        return -1;
    r->headers = l;
    return 0;
}

/* Sets the method and body options. */
static void req_set_method(kube_req_t *r)
{
    CURL *e = r->easy;
    if (strcmp(r->method, "GET") == 0 && !r->body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    if (r->body || strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    if (strcmp(r->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/* Sets the TLS options from the configuration: PEM blobs copied by
 * libcurl, never files. */
static void req_set_tls(kube_req_t *r)
{
    const kube_config_t *c = r->h->cfg;
    CURL *e = r->easy;
    if (c->ca_pem) {
        struct curl_blob b = {c->ca_pem, c->ca_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    if (c->cert_pem) {
        struct curl_blob b = {c->cert_pem, c->cert_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->key_pem) {
        struct curl_blob b = {c->key_pem, c->key_pem_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (c->insecure_skip_tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* Creates and configures the easy handle (see http_int.h). */
int kube__req_setup(kube_req_t *r)
{
    kube_http_t *h = r->h;
    char *url = util_strprintf("%s%s", h->base_url, r->path);
    CURL *e = curl_easy_init();
    if (!url || !e || req_headers(r) < 0) {
        free(url);
        if (e)
            curl_easy_cleanup(e);
        return -1;
    }
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    free(url); /* libcurl keeps its own copy */
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, h->tls ? 1L : 0L);
    /* Compressed bodies for LIST and GET; a WATCH asks for none: the
     * kube-apiserver gzips a large watch stream (the streamed initial
     * state), and libcurl 7.88 fails to inflate it part way ("Failed
     * writing received data", "Failed reading the chunked-encoded
     * stream" over HTTP/1.1), the curl tool as well. */
    if (!r->watch)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vmdrain/" VMDRAIN_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, HTTP_KEEPIDLE);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, HTTP_KEEPINTVL);
    if (r->watch)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(HTTP_WATCH_CONNECT_TIMEOUT * 1000));
    else
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->timeout * 1000));
    if (h->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
    req_set_method(r);
    req_set_tls(r);
    return 0;
}

/* Copies the options into r (see http_int.h). */
int kube__req_copy_opts(kube_req_t *r, const kube_req_opts_t *o)
{
    const char *method = o->method ? o->method : "GET";
    r->method = strdup(method);
    r->path = strdup(o->path);
    r->verb = strdup(o->verb ? o->verb : default_verb(method, o->watch));
    r->content_type = util_strdup_or_null(o->content_type);
    if (!r->method || !r->path || !r->verb || (o->content_type && !r->content_type))
        return -1;
    if (o->body) {
        r->body = malloc(o->body_len + 1);
        if (!r->body)
            return -1;
        memcpy(r->body, o->body, o->body_len);
        r->body[o->body_len] = '\0';
        r->body_len = o->body_len;
    }
    r->watch = o->watch;
    r->unfenced = o->unfenced;
    r->timeout = o->timeout > 0 ? o->timeout : KUBE_HTTP_TIMEOUT;
    r->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : KUBE_HTTP_IDLE_TIMEOUT;
    r->max_body = o->max_body ? o->max_body : KUBE_HTTP_MAX_BODY;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->ud = o->ud;
    return 0;
}
