/*
 * cmd/plugin_status — `kubectl vmdrain status [NODE...] [-w] [-o json]`:
 * Nodes through an informer (their vmdrain.io/ annotations), NodeDrains
 * through a LIST and, with -w, a WATCH read by plugin_nodedrain.c; each
 * change is drawn with plugin_render.c: on a terminal in place, through a
 * pipe as a new block only when what is shown changed.
 *
 * Owns the status command's state. Calls kube/informer, kube/http,
 * util/buf, libev and the plugin's other files; called by plugin.c's
 * command table.
 */
#include "cmd/plugin.h"
#include "kube/informer.h"
#include "kube/resources.h"
#include "util/log.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_DELAY   0.2 /* seconds: changes that come together are drawn once */
#define RETRY_DELAY    2.0 /* seconds before the NodeDrains are listed again */
#define ONCE_TRIES     5   /* retries of a failed LIST without -w */
#define LINE_MAX_BYTES PL_ND_MAX_BYTES

typedef struct st {
    pl_ctx_t *c;
    informer_t *nodes;
    bool nodes_synced;
    pl_nodedrain_t *nds; /* the NodeDrains as last listed and watched */
    size_t n_nds;
    char rv[128];
    bool nd_synced;
    bool nd_absent;  /* the API is not there (or not readable): annotations only */
    kube_req_t *req; /* the LIST or WATCH of NodeDrains in flight */
    buf_t line;      /* a watch event not yet complete */
    ev_timer redraw, retry, tick;
    ev_signal sigs[2];
    char *shown; /* what was drawn last, with times left out */
    bool tty;
    unsigned long blocks; /* drawn through a pipe */
    int tries;            /* failed LISTs retried without -w */
    int exit_code;
} st_t;

static void nd_list(st_t *s);

/* --- drawing ------------------------------------------------------------------ */

static const pl_nodedrain_t *find_nd(const st_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_nds; i++)
        if (strcmp(s->nds[i].name, name) == 0)
            return &s->nds[i];
    return NULL;
}

typedef struct rows {
    const st_t *s;
    pl_row_t *v;
    size_t n, cap;
} rows_t;

static int add_row(rows_t *r, const char *name, const kube_node_t *node)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        pl_row_t *v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    pl_row_build(&r->v[r->n++], name, node, find_nd(r->s, name));
    return 0;
}

static int add_node_row(void *ud, const kube_obj_t *obj)
{
    rows_t *r = ud;
    const char *state = kube_obj_annotation(obj, "vmdrain.io/state");
    if ((!state || !*state) && !find_nd(r->s, obj->name))
        return 0;
    return add_row(r, obj->name, kube_obj_as_node(obj));
}

static int by_node(const void *a, const void *b)
{
    return strcmp(((const pl_row_t *)a)->node, ((const pl_row_t *)b)->node);
}

/* The rows to show: the named nodes, else every node with a drain (and
 * the NodeDrains whose node is gone), by name. */
static int collect(const st_t *s, rows_t *r)
{
    const pl_args_t *a = &s->c->args;
    int rc = 0;
    for (int i = 0; rc == 0 && i < a->n_names; i++)
        rc = add_row(r, a->names[i], kube_obj_as_node(informer_get(s->nodes, a->names[i])));
    if (a->n_names)
        return rc;
    rc = informer_foreach(s->nodes, add_node_row, r);
    for (size_t i = 0; rc == 0 && i < s->n_nds; i++)
        if (!informer_get(s->nodes, s->nds[i].name))
            rc = add_row(r, s->nds[i].name, NULL);
    if (r->n > 1)
        qsort(r->v, r->n, sizeof(*r->v), by_node);
    return rc;
}

/* Writes out what is to be shown now; *changed tells whether it differs
 * from what was shown last (times aside). Returns 0 or -1. */
static int render(st_t *s, buf_t *out, bool *changed)
{
    rows_t r = {.s = s};
    buf_t sig;
    int64_t now = (int64_t)time(NULL);
    int rc = collect(s, &r);
    /* once, a node that is not there is an error (reported by draw()) */
    size_t kept = 0;
    for (size_t i = 0; i < r.n; i++)
        if (r.v[i].found || s->c->args.watch)
            r.v[kept++] = r.v[i];
    r.n = kept;
    buf_init(&sig, 64u << 20);
    /* the JSON from the epoch holds every value shown, and no clock */
    rc |= pl_render_json(r.v, r.n, 0, &sig);
    if (s->c->args.n_names && r.n == 0)
        ; /* only nodes that are not there: the errors say it all */
    else if (s->c->args.json)
        rc |= pl_render_json(r.v, r.n, now, out);
    else
        rc |= pl_render_text(r.v, r.n, s->c->args.n_names == 1, now, out);
    *changed = rc == 0 && (!s->shown || strcmp(s->shown, sig.data) != 0);
    if (*changed) {
        free(s->shown);
        s->shown = buf_steal(&sig);
    }
    free(r.v);
    buf_free(&sig);
    return rc;
}

/* Draws when both caches are there: once (without -w), or on a change. */
static void draw(st_t *s, bool force)
{
    buf_t out;
    bool changed;
    if (!s->nodes_synced || !s->nd_synced)
        return;
    buf_init(&out, 64u << 20);
    int rc = render(s, &out, &changed);
    const char *text = out.data ? out.data : "";
    if (rc < 0) {
        s->exit_code = pl_fail("out of memory");
        ev_break(s->c->loop, EVBREAK_ALL);
    } else if (!s->c->args.watch) {
        fputs(text, s->c->out);
        for (int i = 0; i < s->c->args.n_names; i++)
            if (!informer_get(s->nodes, s->c->args.names[i]))
                s->exit_code = pl_fail("node \"%s\" not found", s->c->args.names[i]);
        ev_break(s->c->loop, EVBREAK_ALL);
    } else if (s->tty && !s->c->args.json && (changed || force)) {
        fprintf(s->c->out, "\033[H\033[2J%s\n(watching; Ctrl-C ends)\n", text);
    } else if (changed) {
        /* a pipe: a new block, a blank line apart; JSON: one line a change */
        fprintf(s->c->out, "%s%s", s->blocks++ == 0 || s->c->args.json ? "" : "\n", text);
    }
    fflush(s->c->out);
    buf_free(&out);
}

static void on_redraw(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    draw(w->data, false);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    draw(w->data, true); /* ages and ETAs move on a terminal */
}

/* A change: drawn soon, together with those that follow it. */
static void schedule_draw(st_t *s)
{
    if (!s->c->args.watch) {
        draw(s, false);
        return;
    }
    if (!ev_is_active(&s->redraw)) {
        ev_timer_set(&s->redraw, REDRAW_DELAY, 0);
        ev_timer_start(s->c->loop, &s->redraw);
    }
}

/* --- Nodes ------------------------------------------------------------------- */

static void on_node_add(void *ud, const kube_obj_t *obj)
{
    (void)obj;
    schedule_draw(ud);
}

static void on_node_update(void *ud, const kube_obj_t *old, const kube_obj_t *obj)
{
    (void)old;
    (void)obj;
    schedule_draw(ud);
}

static void on_node_synced(void *ud)
{
    st_t *s = ud;
    s->nodes_synced = true;
    schedule_draw(s);
}

static void on_node_error(void *ud, const char *msg, long status)
{
    st_t *s = ud;
    /* without -w nothing is shown until both are read: a failure ends it */
    if (!s->c->args.watch || status == 401 || status == 403) {
        s->exit_code = pl_fail("%s", msg);
        ev_break(s->c->loop, EVBREAK_ALL);
    } else {
        log_warn("listing or watching nodes failed; retrying", "error", msg);
    }
}

/* --- NodeDrains ---------------------------------------------------------------- */

static void nd_put(st_t *s, pl_event_t type, pl_nodedrain_t *nd)
{
    size_t i = 0;
    while (i < s->n_nds && strcmp(s->nds[i].name, nd->name) != 0)
        i++;
    if (i < s->n_nds) {
        pl_nodedrain_free(&s->nds[i]);
        if (type == PL_EV_DELETED) {
            s->nds[i] = s->nds[--s->n_nds];
            pl_nodedrain_free(nd);
        } else {
            s->nds[i] = *nd;
        }
        return;
    }
    pl_nodedrain_t *v = type == PL_EV_DELETED ? NULL : realloc(s->nds, (s->n_nds + 1) * sizeof(*v));
    if (v) {
        s->nds = v;
        s->nds[s->n_nds++] = *nd;
    } else {
        pl_nodedrain_free(nd);
    }
}

/* One watch event line. Returns 0, or -1 to end the watch (and list
 * again). */
static int nd_event(st_t *s, const char *line, size_t len)
{
    pl_nodedrain_t nd;
    pl_event_t type;
    long code;
    char err[512];
    if (pl_nodedrain_parse_event(line, len, &type, &nd, &code, err, sizeof(err)) < 0) {
        log_warn("a NodeDrain watch event was refused", "error", err);
        return -1;
    }
    if (type == PL_EV_ERROR)
        return -1; /* 410 Gone and the like: list again */
    if (*nd.resource_version)
        snprintf(s->rv, sizeof(s->rv), "%s", nd.resource_version);
    if (type == PL_EV_BOOKMARK) {
        pl_nodedrain_free(&nd);
        return 0;
    }
    nd_put(s, type, &nd);
    schedule_draw(s);
    return 0;
}

static int on_watch_data(void *ud, const char *data, size_t len)
{
    st_t *s = ud;
    if (buf_append(&s->line, data, len) < 0) {
        kube_req_set_error(s->req, "a NodeDrain watch event is too large");
        return -1;
    }
    char *nl;
    while (s->line.data && (nl = memchr(s->line.data, '\n', s->line.len))) {
        size_t n = (size_t)(nl - s->line.data);
        int rc = n ? nd_event(s, s->line.data, n) : 0;
        buf_consume(&s->line, n + 1);
        if (rc < 0) {
            kube_req_set_error(s->req, "the NodeDrain watch ends: listing again");
            return -1;
        }
    }
    return 0;
}

static void retry_later(st_t *s)
{
    ev_timer_set(&s->retry, RETRY_DELAY, 0);
    ev_timer_start(s->c->loop, &s->retry);
}

static void on_watch_done(void *ud, const kube_result_t *res)
{
    st_t *s = ud;
    s->req = NULL;
    if (!res->cancelled)
        retry_later(s); /* a watch ends now and then: list again */
}

static void nd_watch(st_t *s)
{
    buf_t path;
    buf_init(&path, 4096);
    buf_reset(&s->line);
    pl_nodedrain_path(NULL, &path);
    buf_puts(&path, "?watch=1&allowWatchBookmarks=true&resourceVersion=");
    kube_url_escape(&path, s->rv);
    kube_req_opts_t o = {.path = path.data,
                         .watch = true,
                         .on_data = on_watch_data,
                         .on_done = on_watch_done,
                         .ud = s};
    s->req = path.data ? kube_http_request(s->c->http, &o) : NULL;
    buf_free(&path);
    if (!s->req)
        retry_later(s);
}

/* The LIST could not be had: 404 (no CRD) and 403 leave the annotations;
 * anything else is retried by a watching status; a one-shot one retries
 * what may pass (ONCE_TRIES times), and ends on the rest. */
static void nd_list_failed(st_t *s, const kube_result_t *res, const char *why)
{
    /* no answer, 429 or 5xx (a CRD just made answers 503 for a moment) */
    bool transient = res->status == 0 || res->status == 429 || res->status >= 500;
    bool absent = (res->status == 404 && (!res->reason || strcmp(res->reason, "NotFound") != 0)) ||
                  res->status == 403;
    if (absent) {
        if (res->status == 403)
            fprintf(stderr,
                    PLUGIN_NAME ": warning: cannot list NodeDrains (%s): showing the "
                                "node annotations only\n",
                    res->message ? res->message : "forbidden");
        s->nd_absent = s->nd_synced = true;
        schedule_draw(s);
    } else if (!s->c->args.watch && (!transient || ++s->tries > ONCE_TRIES)) {
        s->exit_code = pl_fail("%s", why);
        ev_break(s->c->loop, EVBREAK_ALL);
        return;
    }
    if (s->c->args.watch || !absent)
        retry_later(s);
}

static void on_list_done(void *ud, const kube_result_t *res)
{
    st_t *s = ud;
    pl_nodedrain_t *items;
    size_t n;
    char err[512];
    s->req = NULL;
    if (res->cancelled)
        return;
    if (res->error || !res->body) {
        nd_list_failed(s, res, res->message ? res->message : res->error ? res->error : "no body");
        return;
    }
    if (pl_nodedrain_parse_list(res->body, res->body_len, &items, &n, s->rv, sizeof(s->rv), err,
                                sizeof(err)) < 0) {
        nd_list_failed(s, res, err);
        return;
    }
    pl_nodedrains_free(s->nds, s->n_nds);
    s->nds = items;
    s->n_nds = n;
    s->nd_synced = true;
    s->nd_absent = false;
    schedule_draw(s);
    if (s->c->args.watch)
        nd_watch(s);
}

static void nd_list(st_t *s)
{
    buf_t path;
    buf_init(&path, 4096);
    pl_nodedrain_path(NULL, &path);
    kube_req_opts_t o = {
        .path = path.data, .max_body = PL_ND_LIST_MAX, .on_done = on_list_done, .ud = s};
    s->req = path.data ? kube_http_request(s->c->http, &o) : NULL;
    buf_free(&path);
    if (!s->req && s->c->args.watch)
        retry_later(s);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    nd_list(w->data);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* --- the command ------------------------------------------------------------- */

static void st_start(st_t *s)
{
    struct ev_loop *loop = s->c->loop;
    const int signums[] = {SIGINT, SIGTERM};
    ev_timer_init(&s->redraw, on_redraw, REDRAW_DELAY, 0);
    ev_timer_init(&s->retry, on_retry, RETRY_DELAY, 0);
    ev_timer_init(&s->tick, on_tick, 1.0, 1.0);
    s->redraw.data = s->retry.data = s->tick.data = s;
    for (int i = 0; i < 2; i++) {
        ev_signal_init(&s->sigs[i], on_signal, signums[i]);
        s->sigs[i].data = s;
        ev_signal_start(loop, &s->sigs[i]);
    }
    if (s->tty && s->c->args.watch && !s->c->args.json)
        ev_timer_start(loop, &s->tick);
    informer_start(s->nodes);
    nd_list(s);
}

static void st_stop(st_t *s)
{
    struct ev_loop *loop = s->c->loop;
    ev_timer_stop(loop, &s->redraw);
    ev_timer_stop(loop, &s->retry);
    ev_timer_stop(loop, &s->tick);
    for (int i = 0; i < 2; i++)
        ev_signal_stop(loop, &s->sigs[i]);
    if (s->req)
        kube_req_cancel(s->req);
    informer_free(s->nodes);
    pl_nodedrains_free(s->nds, s->n_nds);
    buf_free(&s->line);
    free(s->shown);
}

int pl_cmd_status(pl_ctx_t *c)
{
    st_t s = {.c = c, .tty = isatty(fileno(c->out)) == 1};
    informer_opts_t o = {.resource = kube_resource_find("nodes")};
    informer_handlers_t h = {.on_add = on_node_add,
                             .on_update = on_node_update,
                             .on_delete = on_node_add,
                             .on_synced = on_node_synced,
                             .on_error = on_node_error};
    buf_init(&s.line, LINE_MAX_BYTES);
    s.nodes = informer_new(c->http, c->loop, &o, &h, &s);
    if (!s.nodes)
        return pl_fail("out of memory");
    st_start(&s);
    ev_run(c->loop, 0);
    st_stop(&s);
    return s.exit_code;
}
