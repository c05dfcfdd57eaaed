/* worker.c - one worker thread: its event loop, HTTP server, API, origin connection, keyspace
 * and mailbox; accepting (with a pause on descriptor shortage), the access log and rate-limited
 * client error lines, applying a new configuration snapshot, draining on shutdown. */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "edgekv/alloc.h"
#include "edgekv/api.h"
#include "edgekv/cache.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/coherence.h"
#include "edgekv/inval.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"
#include "edgekv/mailbox.h"
#include "edgekv/metrics.h"
#include "edgekv/origin.h"
#include "edgekv/server.h"

#include "server_int.h"
/* ---------------------------------------------------------------- worker side */

/* Counts @n access log lines lost, and says so (at most every WARN_EVERY_MS per worker). */
static void alog_lost(struct worker *w, size_t n, const char *why)
{
    uint64_t now = ekv_clock_now_ms();

    ekv_metrics_access_log_dropped(w->mw, n);
    w->alog_dropped += n;
    if (w->alog_warn_ms == 0 || now - w->alog_warn_ms >= WARN_EVERY_MS) {
        ekv_log(EKV_LOG_ERROR, "access-log %s: %s: %zu line(s) lost", w->snap->conf->access_log,
                why, w->alog_dropped);
        w->alog_warn_ms = now;
        w->alog_dropped = 0;
    }
}

/* Writes the access log lines buffered so far (never waits). */
static void alog_flush(struct worker *w)
{
    size_t dropped = 0;
    int fd = w->snap->alog_fd;

    if (evbuffer_get_length(w->alog.buf) == 0)
        return;
    if (fd < 0) { /* the access log was turned off */
        ekv_alog_deinit(&w->alog);
        ekv_alog_init(&w->alog);
        return;
    }
    if (ekv_alog_flush(&w->alog, fd, &dropped) == EKV_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "write failed: %s", strerror(errno));
        alog_lost(w, dropped, why);
    }
}

static void on_alog_timer(evutil_socket_t fd, short what, void *arg)
{
    alog_flush(arg);
}

/* The method as sent; "-" when the request failed before its headers were parsed (llhttp's
 * method 0, DELETE, is then only a default: a real DELETE maps to EKV_HTTP_DELETE). */
static const char *method_name(const struct ekv_http_req *req)
{
    const char *m = ekv_http_req_method_name(req);

    return ekv_http_req_method(req) == EKV_HTTP_OTHER && strcmp(m, "DELETE") == 0 ? "-" : m;
}

/* One line per answered request, when access-log is set. */
static void access_log(struct worker *w, struct ekv_http_req *req, int status)
{
    struct ekv_alog_entry e = {.status = status};
    char peer[48];
    struct timeval tv;

    ekv_http_req_peer(req, peer, sizeof(peer));
    e.peer = peer;
    e.method = method_name(req);
    e.path = ekv_http_req_path(req, &e.path_len);
    e.query = ekv_http_req_query(req, &e.query_len);
    e.minor = ekv_http_req_minor(req);
    e.bytes = ekv_http_req_resp_bytes(req);
    e.duration_us = ekv_http_req_elapsed_us(req);
    e.cache_status = ekv_http_req_resp_header(req, "cache-status", &e.cache_status_len);
    event_base_gettimeofday_cached(w->base, &tv);
    if (!ekv_alog_append(&w->alog, &e, (long long)tv.tv_sec))
        alog_lost(w, 1, "the file does not keep up (8 MiB unwritten)");
    if (evbuffer_get_length(w->alog.buf) >= EKV_ALOG_FLUSH_BYTES)
        alog_flush(w);
}

/* Answers that say the client is at fault in a way an operator may want to know about:
 * broken framing, limits, authentication. Logged at info, rate-limited per client. */
static bool client_error(int status)
{
    switch (status) {
    case 400: case 401: case 403: case 408: case 413: case 414: case 431:
        return true;
    default:
        return false;
    }
}

/* "client ADDR: STATUS REASON (METHOD)", at most one line per client every 10 s. Never the path
 * or a header: key names and tokens stay out of the log (no request is logged at info). */
static void log_client_error(struct worker *w, struct ekv_http_req *req, int status)
{
    char peer[48], method[32], more[96] = "";
    unsigned suppressed, capped;
    const char *m = method_name(req);
    bool allow;

    ekv_http_req_peer(req, peer, sizeof(peer));
    pthread_mutex_lock(&w->srv->errlog_lock);
    allow = ekv_ratelimit_allow(&w->srv->errlog, peer, ekv_clock_now_ms(), &suppressed, &capped);
    pthread_mutex_unlock(&w->srv->errlog_lock);
    if (!allow)
        return;
    ekv_log_escape(method, sizeof(method), m, strlen(m));
    if (suppressed > 0 || capped > 0)
        snprintf(more, sizeof(more), "; %u more from this client and %u from others not logged",
                 suppressed, capped);
    ekv_log(EKV_LOG_INFO, "client %s: %d %s (%s%s)", peer, status, ekv_http_reason(status),
            method, more);
}

/* The HTTP server's hooks: the API's, plus the access log and client error lines. */
static uint64_t hook_head(struct ekv_http_req *req, void *arg)
{
    struct worker *w = arg;

    return w->api_hooks.on_head(req, w->api_hooks.arg);
}

static void hook_request(struct ekv_http_req *req, void *arg)
{
    struct worker *w = arg;

    w->api_hooks.on_request(req, w->api_hooks.arg);
}

static void hook_done(struct ekv_http_req *req, int status, void *arg)
{
    struct worker *w = arg;

    if (w->api_hooks.on_done != NULL)
        w->api_hooks.on_done(req, status, w->api_hooks.arg);
    if (w->snap->alog_fd >= 0)
        access_log(w, req, status);
    if (client_error(status) && ekv_log_enabled(EKV_LOG_INFO))
        log_client_error(w, req, status);
}

/* A TLS handshake that failed: counted, and logged at info like other client errors (at most
 * one line per client every 10 s). */
static void hook_tls_error(const char *peer, const char *why, void *arg)
{
    struct worker *w = arg;
    unsigned suppressed, capped;
    char more[96] = "";
    bool allow;

    ekv_metrics_tls_handshake_failure(w->mw);
    if (!ekv_log_enabled(EKV_LOG_INFO))
        return;
    pthread_mutex_lock(&w->srv->errlog_lock);
    allow = ekv_ratelimit_allow(&w->srv->errlog, peer, ekv_clock_now_ms(), &suppressed, &capped);
    pthread_mutex_unlock(&w->srv->errlog_lock);
    if (!allow)
        return;
    if (suppressed > 0 || capped > 0)
        snprintf(more, sizeof(more), "; %u more from this client and %u from others not logged",
                 suppressed, capped);
    ekv_log(EKV_LOG_INFO, "client %s: TLS handshake failed (%s%s)", peer, why, more);
}

/* Runs on the worker's loop: switch to the snapshot the main thread posted. */
void ekv_worker_apply_conf(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct snapshot *s = atomic_exchange(&w->next, NULL), *old;

    if (s == NULL)
        return; /* an earlier callback applied it already */
    alog_flush(w); /* what is buffered belongs to the previous file (logrotate) */
    old = w->snap;
    w->snap = s; /* the reference posted with it */
    ekv_api_set_conf(w->api, s->conf);
    ekv_snap_unref(old); /* the API no longer reads it (ekv_api_set_conf) */
    atomic_store(&w->applied_gen, s->gen);
    event_active(w->srv->reload_ack, EV_TIMEOUT, 1);
}

static void check_drained(struct worker *w)
{
    if (w->draining && ekv_http_server_conn_count(w->http) == 0)
        event_base_loopexit(w->base, NULL);
}

static void on_conn_closed(void *arg)
{
    struct worker *w = arg;

    atomic_fetch_sub(&w->srv->nconns, 1);
    check_drained(w);
}

/* Refuses a connection past max-connections with a fixed 503 (best effort, never blocks). */
static void refuse(int fd)
{
#define REFUSED_BODY                                                                               \
    "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,"             \
    "\"detail\":\"too many connections\"}"
    static const char head[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: ";
    char resp[512];
    int n = snprintf(resp, sizeof(resp), "%s%zu\r\n\r\n%s", head, sizeof(REFUSED_BODY) - 1,
                     REFUSED_BODY);

    if (send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        (void)0; /* the client will see the connection close */
    close(fd);
#undef REFUSED_BODY
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct listener *l = arg;
    struct ekv_server *srv = l->w->srv;
    unsigned n = atomic_fetch_add(&srv->nconns, 1);

    /* the admin listener is exempt, so operators can still scrape a saturated POP */
    if (n >= srv->max_conns && l->tag == EKV_API_TAG_MAIN) {
        atomic_fetch_sub(&srv->nconns, 1);
        ekv_log_limited(&l->warn, WARN_EVERY_MS, EKV_LOG_WARN,
                        "max-connections (%u) reached: refusing new connections", srv->max_conns);
        if (l->tls)
            close(fd); /* a plain 503 means nothing to a TLS client */
        else
            refuse(fd);
        ekv_metrics_connection(l->w->mw, true);
        return;
    }
    if (l->tls ? ekv_http_server_adopt_tls(l->w->http, fd, l->tag, l->w->snap->tls) != EKV_OK
               : ekv_http_server_adopt(l->w->http, fd, l->tag) != EKV_OK)
        atomic_fetch_sub(&srv->nconns, 1);
    else
        ekv_metrics_connection(l->w->mw, false);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    if (l->lis != NULL)
        evconnlistener_enable(l->lis);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

    if (e == EINVAL) { /* the socket was shut down: we are stopping */
        evconnlistener_disable(evl);
        return;
    }
    ekv_log_limited(&l->warn, WARN_EVERY_MS, EKV_LOG_WARN, "accept: %s (pausing accepts for %d ms)",
                    strerror(e), ACCEPT_PAUSE_MS);
    /* out of descriptors: without a pause the loop would spin on the ready listener */
    evconnlistener_disable(evl);
    evtimer_add(l->pause, &tv);
}

static void close_listeners(struct worker *w)
{
    for (int i = 0; i < NLISTENERS; i++) {
        if (w->lis[i].lis != NULL)
            evconnlistener_free(w->lis[i].lis); /* closes this worker's dup of the socket */
        w->lis[i].lis = NULL;
        if (w->lis[i].pause != NULL)
            event_free(w->lis[i].pause);
        w->lis[i].pause = NULL;
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    ekv_log(EKV_LOG_WARN, "worker %u: shutdown-timeout passed, closing %zu connection(s)", w->id,
            ekv_http_server_conn_count(w->http));
    event_base_loopexit(w->base, NULL);
}

/* Runs on the worker's loop: stop accepting, let busy connections finish. */
void ekv_worker_drain(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timeval tv = ekv_ms_tv(w->srv->shutdown_ms);

    w->draining = true;
    close_listeners(w);
    ekv_api_set_draining(w->api);
    ekv_http_server_drain(w->http);
    evtimer_add(w->deadline, &tv);
    check_drained(w);
}

void ekv_worker_stop_now(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    event_base_loopexit(w->base, NULL);
}

void *ekv_worker_main(void *arg)
{
    struct worker *w = arg;

    event_base_dispatch(w->base);
    /* whatever is still open when the loop ends is closed here, on the worker's thread */
    close_listeners(w);
    /* answers what still waits for Redis (and the readers joined to this worker's fills) */
    ekv_origin_free(w->origin);
    w->origin = NULL;
    ekv_http_server_free(w->http); /* requests still held by handlers become orphans */
    w->http = NULL;
    alog_flush(w);
    atomic_fetch_add(&w->srv->nfinished, 1);
    event_active(w->srv->worker_done, EV_TIMEOUT, 1);
    return NULL;
}

/* /readyz: every worker can reach Redis (each has its own connection); if one cannot, why. */
static bool origins_up(void *arg, char *why, size_t whylen)
{
    struct ekv_server *srv = arg;

    why[0] = '\0';
    for (unsigned i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].origin == NULL)
            return false;
        if (!ekv_origin_connected(srv->workers[i].origin)) {
            ekv_origin_error(srv->workers[i].origin, why, whylen);
            return false;
        }
    }
    return true;
}

/* The entry of node @addr in @g, added if new; NULL when the table is full. */
static struct ekv_metrics_node *gauge_node(struct ekv_metrics_gauges *g, const char *addr)
{
    for (unsigned i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].addr, addr) == 0)
            return &g->nodes[i];
    if (g->nnodes == EKV_METRICS_MAX_NODES)
        return NULL;
    snprintf(g->nodes[g->nnodes].addr, sizeof(g->nodes[0].addr), "%s", addr);
    return &g->nodes[g->nnodes++];
}

/* A Redis Cluster origin: the workers' redirections and maps, and each node as the workers and
 * the invalidation links see it. */
static void cluster_gauges(struct ekv_server *srv, struct ekv_metrics_gauges *g)
{
    struct ekv_origin_node_stats ns[EKV_METRICS_MAX_NODES];
    struct ekv_coherence_node cn[EKV_METRICS_MAX_NODES];
    uint64_t now = ekv_clock_now_ms();

    g->cluster = true;
    for (unsigned w = 0; w < srv->nworkers; w++) {
        const struct ekv_origin *o = srv->workers[w].origin;
        struct ekv_origin_cluster_stats cs;
        size_t n;

        if (o == NULL)
            continue;
        ekv_origin_cluster_stats(o, &cs);
        g->redirects_moved += cs.moved;
        g->redirects_ask += cs.ask;
        g->redirects_tryagain += cs.tryagain;
        g->map_refreshes += cs.refreshes;
        n = EKV_MIN(ekv_origin_nodes(o, ns, EKV_METRICS_MAX_NODES), EKV_METRICS_MAX_NODES);
        for (size_t i = 0; i < n; i++) {
            struct ekv_metrics_node *mn = gauge_node(g, ns[i].addr);
            if (mn == NULL)
                continue;
            mn->data_up += ns[i].up;
            mn->commands += ns[i].commands;
        }
    }
    if (srv->coh != NULL) {
        struct ekv_coherence_stats st;
        size_t n = EKV_MIN(ekv_coherence_nodes(srv->coh, cn, EKV_METRICS_MAX_NODES),
                           EKV_METRICS_MAX_NODES);

        ekv_coherence_stats(srv->coh, &st);
        g->failovers = st.failovers;
        g->slot_moves = st.slot_moves;
        g->slots_served = st.slots_served;
        for (size_t i = 0; i < n; i++) {
            struct ekv_metrics_node *mn = gauge_node(g, cn[i].addr);
            if (mn == NULL)
                continue;
            mn->slots = cn[i].slots;
            mn->inval = true;
            mn->inval_live = cn[i].live;
            mn->inval_fence_age_seconds = cn[i].live && cn[i].fence_ms != 0 && now > cn[i].fence_ms
                                              ? (double)(now - cn[i].fence_ms) / 1000.0
                                              : 0;
            mn->inval_keys = cn[i].keys;
        }
    }
}

/* /metrics: the values other modules own (any worker thread). */
static void gauges(void *arg, struct ekv_metrics_gauges *g)
{
    struct ekv_server *srv = arg;

    g->connections = atomic_load(&srv->nconns);
    g->workers = srv->nworkers;
    for (unsigned i = 0; i < srv->nworkers; i++)
        g->origin_connected += srv->workers[i].origin != NULL &&
                               ekv_origin_connected(srv->workers[i].origin);
    if (srv->cache != NULL) {
        struct ekv_cache_stats cs;
        ekv_cache_stats(srv->cache, &cs);
        g->cache_entries = cs.entries;
        g->cache_bytes = cs.bytes;
        g->cache_max_bytes = cs.max_bytes;
        g->cache_fills = cs.fills;
        g->evict_lru = cs.evict_lru;
        g->evict_ttl = cs.evict_ttl;
        g->evict_inval = cs.evict_inval;
        g->evict_flush = cs.evict_flush;
        g->cache_flushes = cs.flushes;
    }
    if (srv->sentinel != NULL) {
        struct ekv_sentinel_stats ss;
        ekv_sentinel_stats(srv->sentinel, &ss);
        g->sentinel = true;
        g->sentinel_master_known = ss.known;
        snprintf(g->sentinel_master, sizeof(g->sentinel_master), "%s", ss.master);
        g->failovers = ss.failovers;
        g->sentinels_up = ss.sentinels_up;
        g->sentinels_total = ss.sentinels_total;
    }
    if (srv->coh != NULL) {
        struct ekv_coherence_stats cs;
        uint64_t now = ekv_clock_now_ms();
        ekv_coherence_stats(srv->coh, &cs);
        g->inval_enabled = true;
        g->inval_live = cs.links_live == cs.links && cs.links > 0;
        g->inval_fence_age_seconds = cs.oldest_fence_ms != 0 && now > cs.oldest_fence_ms
                                         ? (double)(now - cs.oldest_fence_ms) / 1000.0
                                         : 0;
        g->inval_keys = cs.keys;
        g->inval_flushes = cs.flushes;
        g->inval_losses = cs.losses;
    }
    if (srv->nseeds > 0)
        cluster_gauges(srv, g);
}

/* This worker's slot map changed (read again, or patched by a MOVED): the invalidation links'
 * map may be out of date too (after a master died, their own refresh may come a second later,
 * and the slots of the new master serve no hit until it does). */
static void on_map(void *arg)
{
    struct ekv_server *srv = arg;

    if (srv->coh != NULL)
        ekv_coherence_poke(srv->coh);
}

int ekv_worker_init(struct ekv_server *srv, struct worker *w, unsigned id, char *err,
                       size_t errlen)
{
    const struct ekv_conf *conf = srv->snap->conf;
    struct ekv_http_limits limits = {
        .max_header_bytes = conf->max_header_bytes,
        .header_timeout_ms = conf->header_timeout_ms,
        .idle_timeout_ms = conf->idle_timeout_ms,
        .max_pipeline = PIPELINE_DEPTH,
    };
    struct ekv_http_hooks hooks = {.on_head = hook_head, .on_request = hook_request,
                                   .on_done = hook_done, .arg = w,
                                   .on_closed = on_conn_closed, .closed_arg = w,
                                   .on_tls_error = hook_tls_error};
    struct timeval flush_every = ekv_ms_tv(ALOG_FLUSH_MS);
    struct ekv_origin_opts oopts = {
        .addr = &srv->origin_addr,
        .sentinel = srv->sentinel,
        .seeds = srv->seed_addrs,
        .nseeds = srv->nseeds,
        .tls = srv->origin_tls,
        .timeout_ms = conf->origin_timeout_ms,
    };
    char label[32];

    w->srv = srv;
    w->id = id;
    w->mw = ekv_metrics_worker(srv->metrics, id);
    ekv_snap_ref(srv->snap);
    w->snap = srv->snap;
    atomic_init(&w->next, NULL);
    atomic_init(&w->applied_gen, srv->snap->gen);
    ekv_alog_init(&w->alog);
    w->base = event_base_new();
    if (w->base == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        return EKV_ERROR;
    }
    snprintf(label, sizeof(label), "worker %u", id);
    w->scripts = ekv_keyspace_scripts(&oopts.nscripts);
    oopts.scripts = w->scripts;
    oopts.label = label;
    oopts.setup = ekv_keyspace_setup(conf->ns, &oopts.setup_argc);
    w->origin = ekv_origin_new(w->base, &oopts);
    ekv_origin_set_map_cb(w->origin, on_map, srv);
    ekv_keyspace_setup_free((const char **)oopts.setup);
    w->keyspace =
        ekv_keyspace_new(&(struct ekv_keyspace_opts){
            .ns = conf->ns, .origin = w->origin, .shared = w->srv->layout});
    w->mailbox = ekv_mailbox_new(w->base);
    {
        struct ekv_api_deps deps = {
            .conf = conf,
            .keyspace = w->keyspace,
            .cache = srv->cache,
            .names = srv->names,
            .coh = srv->coh,
            .mailbox = w->mailbox,
            .metrics = srv->metrics,
            .worker = id,
            .gauges = gauges,
            .origins_up = origins_up,
            .gauges_arg = srv,
        };
        w->api = ekv_api_new(&deps);
    }
    ekv_api_hooks(w->api, &w->api_hooks);
    w->http = ekv_http_server_new(w->base, &limits, &hooks);
    w->deadline = evtimer_new(w->base, on_deadline, w);
    w->alog_timer = event_new(w->base, -1, EV_PERSIST, on_alog_timer, w);
    if (w->deadline == NULL || w->alog_timer == NULL ||
        evtimer_add(w->alog_timer, &flush_every) != 0) {
        snprintf(err, errlen, "cannot create a timer");
        return EKV_ERROR;
    }
    for (int i = 0; i < NLISTENERS; i++) {
        struct listener *l = &w->lis[i];
        int fd;

        l->w = w;
        l->tag = i == LIS_TLS ? EKV_API_TAG_MAIN : i;
        l->tls = i == LIS_TLS;
        if (srv->fds[i] < 0)
            continue;
        /* every worker accepts from the same socket, through its own descriptor */
        fd = fcntl(srv->fds[i], F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errlen, "dup: %s", strerror(errno));
            return EKV_ERROR;
        }
        l->lis = evconnlistener_new(w->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
        l->pause = evtimer_new(w->base, on_accept_resume, l);
        if (l->lis == NULL || l->pause == NULL) {
            if (l->lis == NULL)
                close(fd);
            snprintf(err, errlen, "cannot create a listener");
            return EKV_ERROR;
        }
        evconnlistener_set_error_cb(l->lis, on_accept_error);
    }
    return EKV_OK;
}

void ekv_worker_deinit(struct worker *w)
{
    close_listeners(w);
    ekv_origin_free(w->origin);
    ekv_http_server_free(w->http);
    ekv_api_free(w->api);
    ekv_keyspace_free(w->keyspace); /* after the origin (which answered its ops) and the API */
    ekv_free(w->scripts);
    if (w->deadline != NULL)
        event_free(w->deadline);
    if (w->alog_timer != NULL)
        event_free(w->alog_timer);
    ekv_alog_deinit(&w->alog);
    ekv_snap_unref(atomic_exchange(&w->next, NULL));
    ekv_snap_unref(w->snap);
    w->snap = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
}

