/* server.c - the process: listening sockets shared by N worker threads (each with its own event
 * loop, HTTP server and API), the connection limit, signals, configuration reloads (SIGHUP),
 * the access log, rate-limited client error lines and graceful shutdown.
 *
 * Configuration snapshots: each reload builds a new immutable struct ekv_conf, wrapped in a
 * refcounted snapshot with the access log's descriptor. The main thread hands a reference to
 * every worker through its loop; the worker switches its API to it and drops its reference to
 * the previous one, so a snapshot (and its access log descriptor) is freed once the last
 * worker has moved past it. The API reads the configuration only on its own loop and only
 * through its current snapshot (ekv_api_set_conf), never keeping a pointer into it across an
 * origin wait, so a request in flight during a reload never touches a freed snapshot. */
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
#include "edgekv/inval.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"
#include "edgekv/mailbox.h"
#include "edgekv/metrics.h"
#include "edgekv/origin.h"
#include "edgekv/server.h"

#include "server_int.h"

#define NLISTENERS 2         /* EKV_API_TAG_MAIN, EKV_API_TAG_ADMIN */
#define FD_RESERVE 64        /* descriptors kept for listeners, loops, Redis, logs */
#define ACCEPT_PAUSE_MS 100  /* after EMFILE/ENFILE: stop accepting this long */
#define PIPELINE_DEPTH 32    /* requests read ahead per connection */
#define ALOG_FLUSH_MS 1000   /* the access log is written at least this often */
#define WARN_EVERY_MS 10000  /* a repeated operational warning, at most this often */

struct worker;

/* One configuration as the workers run it: immutable once built. */
struct snapshot {
    struct ekv_conf *conf; /* owned */
    int alog_fd;           /* the access log (O_APPEND), or -1 */
    uint64_t gen;          /* 1 at start-up, then one more per reload */
    atomic_uint refs;      /* the main thread's, each worker's, each posted one */
};

struct listener {
    struct worker *w;
    int tag;
    struct evconnlistener *lis;
    struct event *pause; /* re-enables accepting after a descriptor shortage */
    uint64_t last_warn;
};

struct worker {
    struct ekv_server *srv;
    unsigned id;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct ekv_http_server *http;
    struct ekv_api *api;
    struct ekv_origin *origin;
    struct ekv_origin_script *scripts; /* this worker's copy (its origin writes the SHA-1s) */
    struct ekv_keyspace *keyspace;     /* the API's data, over this worker's origin */
    struct ekv_mailbox *mailbox;       /* readers joined to other workers' fills land here */
    struct listener lis[NLISTENERS];
    struct event *deadline; /* shutdown-timeout */
    bool draining;
    struct ekv_metrics_worker *mw;
    struct ekv_http_hooks api_hooks; /* the API's callbacks, which ours wrap */
    struct snapshot *snap;           /* the configuration this worker runs (a reference) */
    _Atomic(struct snapshot *) next; /* posted by the main thread, not applied yet (a reference) */
    atomic_ullong applied_gen;       /* snap->gen, for the main thread */
    struct ekv_alog alog;            /* access log lines not written yet */
    struct event *alog_timer;
    uint64_t alog_warn_ms;           /* when an access log problem was last logged */
    size_t alog_dropped;             /* lines dropped since */
};

struct ekv_server {
    struct snapshot *snap; /* the current configuration (main thread) */
    uint64_t shutdown_ms;  /* shutdown-timeout (needs a restart: any thread may read it) */
    uint64_t heartbeat_ms; /* the invalidation link's, fixed at start-up */
    uint64_t shard_bytes;  /* an item cache shard's share: no larger entry is ever stored */
    ekv_server_reload_cb *reload_cb;
    void *reload_arg;
    struct event *reload_ack;  /* activated by each worker as it applies a snapshot */
    uint64_t gen_logged;       /* the last reload reported as applied everywhere */
    char reload_changed[512];  /* what that reload changed, for its log line */
    /* client error lines, rate-limited for the whole process (only taken when such a line
     * would be logged: never on a request that went well) */
    pthread_mutex_t errlog_lock;
    struct ekv_ratelimit errlog;
    /* conf->origin with the host resolved to a number: the server's own copy, which the origin
     * connections and the invalidation link borrow (configuration snapshots come and go) */
    struct ekv_conf_origin origin_addr;
    int fds[NLISTENERS]; /* -1 when unused */
    unsigned nworkers;
    struct worker *workers;
    struct event_base *base; /* the main thread's loop: signals, worker exits */
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *worker_done; /* activated by each worker thread as it ends */
    atomic_uint nconns;
    atomic_uint nfinished;
    unsigned max_conns;
    unsigned stop_signals;
    struct ekv_cache *cache;   /* items; NULL with cache-max-bytes 0 */
    struct ekv_cache *names;   /* /kv/{name} resolutions */
    struct ekv_inval *inval;   /* on the main thread's loop; NULL without a cache */
    struct ekv_origin_tls *origin_tls; /* rediss://: shared by every origin connection */
    struct ekv_keyspace *layout; /* the key layout, for the invalidation link (which borrows its
                                    prefixes and heartbeat channel); NULL without a cache */
    struct ekv_metrics *metrics;
};

/* ---------------------------------------------------------------- configuration snapshots */

/* A snapshot of @conf (taken over) with the access log @fd (taken over, or -1): one reference. */
static struct snapshot *snap_new(struct ekv_conf *conf, int fd, uint64_t gen)
{
    struct snapshot *s = ekv_calloc(1, sizeof(*s));

    s->conf = conf;
    s->alog_fd = fd;
    s->gen = gen;
    atomic_init(&s->refs, 1);
    return s;
}

static void snap_ref(struct snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one (on whichever thread) frees the snapshot. */
static void snap_unref(struct snapshot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->alog_fd >= 0)
        close(s->alog_fd);
    ekv_conf_free(s->conf);
    ekv_free(s);
}

/*
 * Opens the access log of @conf (none: *@fd = -1): appending, created 0640, non-blocking so
 * that a FIFO or a stalled file system never blocks a worker. Start-up and reload only.
 */
static int open_access_log(const struct ekv_conf *conf, int *fd, char *err, size_t errlen)
{
    *fd = -1;
    if (conf->access_log == NULL)
        return EKV_OK;
    *fd = open(conf->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0640);
    if (*fd < 0) {
        snprintf(err, errlen, "access-log %s: %s", conf->access_log, strerror(errno));
        return EKV_ERROR;
    }
    return EKV_OK;
}

/* ---------------------------------------------------------------- worker side */

/* Counts @n access log lines lost, and says so (at most every WARN_EVERY_MS per worker). */
static void alog_lost(struct worker *w, size_t n, const char *why)
{
    uint64_t now = ekv_mono_ms();

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
    allow = ekv_ratelimit_allow(&w->srv->errlog, peer, ekv_mono_ms(), &suppressed, &capped);
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
    if (client_error(status) && ekv_log_threshold <= EKV_LOG_INFO)
        log_client_error(w, req, status);
}

/* Runs on the worker's loop: switch to the snapshot the main thread posted. */
static void worker_apply_conf(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct snapshot *s = atomic_exchange(&w->next, NULL), *old;

    if (s == NULL)
        return; /* an earlier callback applied it already */
    alog_flush(w); /* what is buffered belongs to the previous file (logrotate) */
    old = w->snap;
    w->snap = s; /* the reference posted with it */
    ekv_api_set_conf(w->api, s->conf);
    snap_unref(old); /* the API no longer reads it (ekv_api_set_conf) */
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
        uint64_t now = ekv_mono_ms();
        if (now - l->last_warn > 10000) {
            l->last_warn = now;
            ekv_log(EKV_LOG_WARN, "max-connections (%u) reached: refusing new connections",
                    srv->max_conns);
        }
        refuse(fd);
        ekv_metrics_connection(l->w->mw, true);
        return;
    }
    if (ekv_http_server_adopt(l->w->http, fd, l->tag) != EKV_OK)
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
    uint64_t now = ekv_mono_ms();

    if (e == EINVAL) { /* the socket was shut down: we are stopping */
        evconnlistener_disable(evl);
        return;
    }
    if (now - l->last_warn > 10000) {
        l->last_warn = now;
        ekv_log(EKV_LOG_WARN, "accept: %s (pausing accepts for %d ms)", strerror(e),
                ACCEPT_PAUSE_MS);
    }
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
static void worker_drain(evutil_socket_t fd, short what, void *arg)
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

static void worker_stop_now(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    event_base_loopexit(w->base, NULL);
}

static void *worker_main(void *arg)
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
    if (srv->inval != NULL) {
        struct ekv_inval_stats is;
        uint64_t now = ekv_clock_now_ms();
        ekv_inval_stats(srv->inval, &is);
        g->inval_enabled = true;
        g->inval_live = is.live;
        g->inval_fence_age_seconds = is.fence_ms != 0 && now > is.fence_ms
                                         ? (double)(now - is.fence_ms) / 1000.0
                                         : 0;
        g->inval_keys = is.keys;
        g->inval_flushes = is.flushes;
        g->inval_losses = is.losses;
    }
}

static int worker_init(struct ekv_server *srv, struct worker *w, unsigned id, char *err,
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
                                   .on_closed = on_conn_closed, .closed_arg = w};
    struct timeval flush_every = ekv_ms_tv(ALOG_FLUSH_MS);
    struct ekv_origin_opts oopts = {
        .addr = &srv->origin_addr,
        .tls = srv->origin_tls,
        .timeout_ms = conf->origin_timeout_ms,
    };
    char label[32];

    w->srv = srv;
    w->id = id;
    w->mw = ekv_metrics_worker(srv->metrics, id);
    snap_ref(srv->snap);
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
    w->origin = ekv_origin_new(w->base, &oopts);
    w->keyspace =
        ekv_keyspace_new(&(struct ekv_keyspace_opts){.ns = conf->ns, .origin = w->origin});
    w->mailbox = ekv_mailbox_new(w->base);
    {
        struct ekv_api_deps deps = {
            .conf = conf,
            .keyspace = w->keyspace,
            .cache = srv->cache,
            .names = srv->names,
            .inval = srv->inval,
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
        l->tag = i;
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

static void worker_deinit(struct worker *w)
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
    snap_unref(atomic_exchange(&w->next, NULL));
    snap_unref(w->snap);
    w->snap = NULL;
    if (w->base != NULL)
        event_base_free(w->base);
}

/* ---------------------------------------------------------------- main thread */

static void post(struct worker *w, event_callback_fn fn)
{
    struct timeval now = {0, 0};

    if (w->started && event_base_once(w->base, -1, EV_TIMEOUT, fn, w, &now) != 0)
        ekv_log(EKV_LOG_ERROR, "cannot signal worker %u", w->id);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ekv_server *srv = arg;

    if (srv->stop_signals++ == 0) {
        /* refuse new connections at once: on Linux, shutting a listening socket down resets
         * what waits in its backlog and makes new connects fail (every worker's copy is the
         * same socket) */
        for (int i = 0; i < NLISTENERS; i++)
            if (srv->fds[i] >= 0)
                shutdown(srv->fds[i], SHUT_RD);
        ekv_log(EKV_LOG_INFO,
                "%s: shutting down: no new connections, draining %u for up to %llu ms",
                sig == SIGINT ? "SIGINT" : "SIGTERM", atomic_load(&srv->nconns),
                (unsigned long long)srv->shutdown_ms);
        for (unsigned i = 0; i < srv->nworkers; i++)
            post(&srv->workers[i], worker_drain);
    } else {
        ekv_log(EKV_LOG_WARN, "second stop signal: closing every connection now");
        for (unsigned i = 0; i < srv->nworkers; i++)
            post(&srv->workers[i], worker_stop_now);
    }
}

/* Hands snapshot @s to worker @w: it switches on its own loop (worker_apply_conf). */
static void post_snapshot(struct worker *w, struct snapshot *s)
{
    struct timeval now = {0, 0};

    snap_ref(s);
    /* a snapshot posted before and not applied yet is superseded: the worker skips it */
    snap_unref(atomic_exchange(&w->next, s));
    if (event_base_once(w->base, -1, EV_TIMEOUT, worker_apply_conf, w, &now) != 0)
        ekv_log(EKV_LOG_ERROR, "cannot signal worker %u", w->id);
}

/* Main thread: a worker applied a snapshot. Once all run the newest one, say so. */
static void on_reload_ack(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_server *srv = arg;

    if (srv->gen_logged >= srv->snap->gen)
        return;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].started && atomic_load(&srv->workers[i].applied_gen) < srv->snap->gen)
            return;
    srv->gen_logged = srv->snap->gen;
    ekv_log(EKV_LOG_INFO, "configuration reloaded: %s",
            srv->reload_changed[0] != '\0' ? srv->reload_changed : "nothing changed");
}

/* Warnings about a new configuration that is valid but may not do what the operator expects. */
static void reload_warnings(struct ekv_server *srv, const struct ekv_conf *old,
                            const struct ekv_conf *next)
{
    if (next->api_tokens.count == 0 && old->api_tokens.count > 0)
        ekv_log(EKV_LOG_WARN, "no api-token is set any more: edgekv runs open (development "
                              "mode); anyone who can connect may read and write");
    if (srv->cache != NULL && next->cache_max_item_bytes > srv->shard_bytes &&
        next->cache_max_item_bytes > old->cache_max_item_bytes)
        ekv_log(EKV_LOG_WARN,
                "cache-max-item-bytes %llu is more than the item cache holds in one piece (%llu "
                "bytes, sized at start-up): larger values are not cached until a restart",
                (unsigned long long)next->cache_max_item_bytes,
                (unsigned long long)srv->shard_bytes);
    if (srv->inval != NULL && next->max_staleness_ms < 2 * srv->heartbeat_ms)
        ekv_log(EKV_LOG_WARN,
                "max-staleness %llu ms is close to the invalidation heartbeat interval (%llu ms, "
                "set from max-staleness at start-up): many reads will bypass the cache until "
                "edgekv is restarted",
                (unsigned long long)next->max_staleness_ms,
                (unsigned long long)srv->heartbeat_ms);
}

/*
 * SIGHUP: reads the configuration again (the same file and command line), keeps the running
 * values of what needs a restart, validates, reopens the access log, then hands the new
 * snapshot to every worker. On any error the running configuration stays as it is.
 */
static void reload(struct ekv_server *srv)
{
    const struct ekv_conf *old = srv->snap->conf;
    struct ekv_conf *next;
    struct snapshot *s, *prev;
    char err[1024], changed[sizeof(srv->reload_changed)], restart[512];
    bool same_service;
    int fd = -1;

    next = srv->reload_cb(srv->reload_arg, err, sizeof(err));
    if (next == NULL)
        goto fail;
    if (ekv_conf_reload_merge(next, old, changed, sizeof(changed), restart, sizeof(restart)) > 0)
        ekv_log(EKV_LOG_WARN, "configuration reload: %s changed but need%s a restart; the running "
                              "value%s kept until then",
                restart, strchr(restart, ',') != NULL ? "" : "s",
                strchr(restart, ',') != NULL ? "s are" : " is");
    if (ekv_conf_validate(next, err, sizeof(err)) != EKV_OK ||
        open_access_log(next, &fd, err, sizeof(err)) != EKV_OK) {
        ekv_conf_free(next);
        goto fail;
    }
    reload_warnings(srv, old, next);
    same_service = old->service_id == NULL
                       ? next->service_id == NULL
                       : next->service_id != NULL && strcmp(old->service_id, next->service_id) == 0;
    if (srv->names != NULL && !same_service)
        ekv_cache_flush(srv->names); /* /kv/{name} now resolves through another service's links */
    memcpy(srv->reload_changed, changed, sizeof(changed));
    ekv_log_set_level(next->log_level);
    s = snap_new(next, fd, srv->snap->gen + 1);
    prev = srv->snap;
    srv->snap = s;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].started)
            post_snapshot(&srv->workers[i], s);
    snap_unref(prev);
    ekv_metrics_reload(srv->metrics, true);
    return;
fail:
    ekv_metrics_reload(srv->metrics, false);
    ekv_log(EKV_LOG_ERROR, "configuration reload failed: %s; keeping the running configuration",
            err);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct ekv_server *srv = arg;

    if (srv->stop_signals > 0) {
        ekv_log(EKV_LOG_INFO, "SIGHUP: ignored while shutting down");
        return;
    }
    if (srv->reload_cb == NULL) {
        ekv_log(EKV_LOG_WARN, "SIGHUP: this server has no configuration to reload");
        return;
    }
    ekv_log(EKV_LOG_INFO, "SIGHUP: reloading the configuration");
    reload(srv);
}

static void on_worker_done(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_server *srv = arg;

    if (atomic_load(&srv->nfinished) == srv->nworkers)
        event_base_loopexit(srv->base, NULL);
}

/* Raises RLIMIT_NOFILE to fit max-connections, or lowers the limit of connections to fit the
 * descriptors there are (as Redis does with maxclients), saying so. */
static void fit_fd_limit(struct ekv_server *srv)
{
    struct rlimit rl;
    const struct ekv_conf *conf = srv->snap->conf;
    rlim_t need = (rlim_t)conf->max_connections + FD_RESERVE + 4 * srv->nworkers;

    srv->max_conns = conf->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : EKV_MIN(need, rl.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = old;
    if (rl.rlim_cur < need) {
        rlim_t spare = rl.rlim_cur - EKV_MIN(rl.rlim_cur, FD_RESERVE + 4 * srv->nworkers);
        srv->max_conns = spare > 0 ? (unsigned)spare : 1;
        ekv_log(EKV_LOG_WARN,
                "max-connections %u needs %llu open files but the limit is %llu: serving at "
                "most %u connections (raise the limit with ulimit -n or LimitNOFILE=)",
                conf->max_connections, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, srv->max_conns);
    }
}

/* Resolves the origin's host once, at start-up: the Redis client library would resolve it on
 * every reconnect with a blocking getaddrinfo() on the worker's loop. Fills srv->origin_addr with
 * copies. */
static int resolve_origin(struct ekv_server *srv, char *err, size_t errlen)
{
    const struct ekv_conf_origin *o = &srv->snap->conf->origin;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ip[64];
    int rc;

    srv->origin_addr.port = o->port;
    srv->origin_addr.db = o->db;
    srv->origin_addr.user = o->user != NULL ? ekv_strdup(o->user) : NULL;
    srv->origin_addr.password = o->password != NULL ? ekv_strdup(o->password) : NULL;
    if (o->unix_path != NULL) {
        srv->origin_addr.unix_path = ekv_strdup(o->unix_path);
        return EKV_OK;
    }
    rc = getaddrinfo(o->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the origin host %s: %s", o->host, gai_strerror(rc));
        return EKV_ERROR;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the origin host %s: %s", o->host, gai_strerror(rc));
        return EKV_ERROR;
    }
    srv->origin_addr.host = ekv_strdup(ip);
    return EKV_OK;
}

/* A rediss:// origin: the TLS context every connection to it uses, its files loaded now (NULL
 * in *@out for a plain origin). The name verified is origin-tls-server-name, else the host as
 * written in the URL (not the address it resolved to). */
static int origin_tls_make(const struct ekv_conf *conf, struct ekv_origin_tls **out, char *err,
                           size_t errlen)
{
    struct ekv_origin_tls_opts o = {
        .ca_file = conf->origin_tls_ca_file,
        .cert_file = conf->origin_tls_cert_file,
        .key_file = conf->origin_tls_key_file,
        .server_name = conf->origin_tls_server_name != NULL ? conf->origin_tls_server_name
                                                            : conf->origin.host,
        .verify = conf->origin_tls_verify,
    };

    *out = NULL;
    if (!conf->origin.tls)
        return EKV_OK;
    *out = ekv_origin_tls_new(&o, err, errlen);
    return *out != NULL ? EKV_OK : EKV_ERROR;
}

static int origin_tls_init(struct ekv_server *srv, char *err, size_t errlen)
{
    const struct ekv_conf *conf = srv->snap->conf;

    if (origin_tls_make(conf, &srv->origin_tls, err, errlen) != EKV_OK)
        return EKV_ERROR;
    if (srv->origin_tls != NULL && !conf->origin_tls_verify)
        ekv_log(EKV_LOG_WARN, "origin-tls-verify no: the origin's certificate is not checked; "
                              "anyone on the path can read and change the data");
    return EKV_OK;
}

int ekv_server_check(const struct ekv_conf *conf, char *err, size_t errlen)
{
    struct ekv_origin_tls *tls;

    if (origin_tls_make(conf, &tls, err, errlen) != EKV_OK)
        return EKV_ERROR;
    ekv_origin_tls_free(tls);
    return EKV_OK;
}

/* ---------------------------------------------------------------- edge cache and coherence */

/* Invalidation link hooks (main thread): a Redis key changed, or everything may have. */
static void on_inval_key(const char *key, size_t len, void *arg)
{
    struct ekv_server *srv = arg;
    const char *ckey;
    size_t ckey_len;

    if (ekv_keyspace_cache_key_of_redis_key(srv->layout, key, len, &ckey, &ckey_len) ==
        EKV_KS_TRACKED_ITEM)
        ekv_cache_invalidate(srv->cache, ckey, ckey_len);
    else /* the store registry or resource links: name resolutions may have changed */
        ekv_cache_flush(srv->names);
}

static void on_inval_flush(void *arg)
{
    struct ekv_server *srv = arg;

    ekv_cache_flush(srv->cache);
    ekv_cache_flush(srv->names);
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    FILE *f = fopen("/dev/urandom", "rb");

    if (f == NULL || fread(&seed, sizeof(seed), 1, f) != 1)
        seed = (uint64_t)ekv_mono_ms() ^ ((uint64_t)getpid() << 32);
    if (f != NULL)
        fclose(f);
    return seed;
}

/* The shared caches and the invalidation link, unless cache-max-bytes is 0. */
static void cache_init(struct ekv_server *srv)
{
    const struct ekv_conf *conf = srv->snap->conf;
    uint64_t names_bytes = EKV_MIN(conf->cache_max_bytes / 16, (uint64_t)8 << 20);
    struct ekv_cache_limits items = {.max_bytes = conf->cache_max_bytes - names_bytes,
                                     .max_item_bytes = conf->cache_max_item_bytes,
                                     .seed = random_seed()};
    struct ekv_cache_limits names = {.max_bytes = names_bytes, .nshards = 4,
                                     .seed = random_seed()};
    struct ekv_inval_opts io = {
        .addr = &srv->origin_addr,
        .tls = srv->origin_tls,
        .heartbeat_ms = EKV_MAX(conf->max_staleness_ms / 4, 50),
        .stall_ms = conf->max_staleness_ms,
        .timeout_ms = conf->origin_timeout_ms,
    };
    struct ekv_inval_hooks hooks = {.on_key = on_inval_key, .on_flush = on_inval_flush, .arg = srv};

    srv->heartbeat_ms = io.heartbeat_ms;
    if (conf->cache_max_bytes == 0) {
        ekv_log(EKV_LOG_INFO, "cache-max-bytes is 0: no edge cache, every read goes to Redis");
        return;
    }
    /* the cache sizes its shards so that each holds a few of the largest entries */
    srv->cache = ekv_cache_new(&items);
    srv->shard_bytes = ekv_cache_shard_bytes(srv->cache);
    if (conf->cache_max_item_bytes > srv->shard_bytes)
        ekv_log(EKV_LOG_WARN,
                "cache-max-item-bytes %llu is more than the item cache holds in one piece "
                "(%llu bytes with cache-max-bytes %llu): larger values are never cached",
                (unsigned long long)conf->cache_max_item_bytes,
                (unsigned long long)srv->shard_bytes, (unsigned long long)conf->cache_max_bytes);
    srv->names = ekv_cache_new(&names);
    srv->layout = ekv_keyspace_new(&(struct ekv_keyspace_opts){.ns = conf->ns});
    io.prefixes = ekv_keyspace_tracking_prefixes(srv->layout, &io.nprefixes);
    io.heartbeat_channel = ekv_keyspace_heartbeat_channel(srv->layout);
    srv->inval = ekv_inval_new(srv->base, &io, &hooks);
}

struct ekv_server *ekv_server_new(struct ekv_conf *conf, char *err, size_t errlen)
{
    struct ekv_server *srv = ekv_calloc(1, sizeof(*srv));
    const struct ekv_conf_addr *addrs[NLISTENERS] = {&conf->listen, &conf->admin_listen};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int alog_fd;

    for (int i = 0; i < NLISTENERS; i++)
        srv->fds[i] = -1;
    pthread_mutex_init(&srv->errlog_lock, NULL);
    if (open_access_log(conf, &alog_fd, err, errlen) != EKV_OK) {
        ekv_conf_free(conf);
        pthread_mutex_destroy(&srv->errlog_lock);
        ekv_free(srv);
        return NULL;
    }
    srv->snap = snap_new(conf, alog_fd, 1);
    srv->shutdown_ms = conf->shutdown_timeout_ms;
    srv->nworkers = conf->threads != 0 ? conf->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent has no pthreads support");
        goto fail;
    }
    if (resolve_origin(srv, err, errlen) != EKV_OK || origin_tls_init(srv, err, errlen) != EKV_OK)
        goto fail;
    for (int i = 0; i < NLISTENERS; i++) {
        char bound[300];
        if (addrs[i]->host == NULL)
            continue;
        srv->fds[i] = ekv_listen_bind(addrs[i], bound, sizeof(bound), err, errlen);
        if (srv->fds[i] < 0)
            goto fail;
        ekv_log(EKV_LOG_INFO, "listening on %s%s", bound,
                i == EKV_API_TAG_ADMIN ? " (admin: /metrics /healthz /readyz)" : "");
    }
    fit_fd_limit(srv);
    srv->base = event_base_new();
    if (srv->base == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        goto fail;
    }
    srv->sig_term = evsignal_new(srv->base, SIGTERM, on_stop_signal, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, on_stop_signal, srv);
    srv->sig_hup = evsignal_new(srv->base, SIGHUP, on_hup, srv);
    srv->worker_done = event_new(srv->base, -1, 0, on_worker_done, srv);
    srv->reload_ack = event_new(srv->base, -1, 0, on_reload_ack, srv);
    if (srv->sig_term == NULL || srv->sig_int == NULL || srv->sig_hup == NULL ||
        srv->worker_done == NULL || srv->reload_ack == NULL ||
        evsignal_add(srv->sig_term, NULL) != 0 ||
        evsignal_add(srv->sig_int, NULL) != 0 || evsignal_add(srv->sig_hup, NULL) != 0) {
        snprintf(err, errlen, "cannot set up signal handling");
        goto fail;
    }
    srv->metrics = ekv_metrics_new(srv->nworkers);
    cache_init(srv);
    srv->workers = ekv_calloc(srv->nworkers, sizeof(*srv->workers));
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (worker_init(srv, &srv->workers[i], i, err, errlen) != EKV_OK)
            goto fail;
    return srv;
fail:
    ekv_server_free(srv);
    return NULL;
}

int ekv_server_run(struct ekv_server *srv)
{
    sigset_t all, old;
    unsigned started = 0;
    int rc = 0;

    /* workers never take signals: the main loop handles them */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            ekv_log(EKV_LOG_ERROR, "cannot start worker thread %u: %s", i, strerror(e));
            rc = 1;
            break;
        }
        w->started = true;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        ekv_log(EKV_LOG_INFO, "edgekv %s ready: %u worker thread(s), max-connections %u",
                PACKAGE_VERSION, srv->nworkers, srv->max_conns);
        event_base_dispatch(srv->base);
    } else {
        for (unsigned i = 0; i < srv->nworkers; i++)
            post(&srv->workers[i], worker_stop_now);
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].started)
            pthread_join(srv->workers[i].thread, NULL);
        srv->workers[i].started = false;
    }
    if (rc == 0)
        ekv_log(EKV_LOG_INFO, "stopped");
    return rc;
}

void ekv_server_free(struct ekv_server *srv)
{
    if (srv == NULL)
        return;
    /* the invalidation link first (its hooks use the caches); then answer the readers still
     * queued in mailboxes (their workers have stopped), then take the workers apart */
    ekv_inval_free(srv->inval);
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        ekv_origin_free(srv->workers[i].origin); /* if the worker never ran */
        srv->workers[i].origin = NULL;
    }
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        ekv_mailbox_free(srv->workers[i].mailbox);
        srv->workers[i].mailbox = NULL;
    }
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++)
        worker_deinit(&srv->workers[i]);
    ekv_free(srv->workers);
    ekv_origin_tls_free(srv->origin_tls); /* every connection that used it is gone */
    ekv_cache_free(srv->cache);
    ekv_cache_free(srv->names);
    ekv_keyspace_free(srv->layout); /* after the invalidation link, which borrowed from it */
    ekv_metrics_free(srv->metrics);
    if (srv->sig_term != NULL)
        event_free(srv->sig_term);
    if (srv->sig_int != NULL)
        event_free(srv->sig_int);
    if (srv->sig_hup != NULL)
        event_free(srv->sig_hup);
    if (srv->worker_done != NULL)
        event_free(srv->worker_done);
    if (srv->reload_ack != NULL)
        event_free(srv->reload_ack);
    if (srv->base != NULL)
        event_base_free(srv->base);
    for (int i = 0; i < NLISTENERS; i++)
        if (srv->fds[i] >= 0)
            close(srv->fds[i]);
    snap_unref(srv->snap);
    ekv_conf_origin_clear(&srv->origin_addr); /* after everything that borrowed it */
    pthread_mutex_destroy(&srv->errlog_lock);
    ekv_free(srv);
}

void ekv_server_set_reload(struct ekv_server *srv, ekv_server_reload_cb *cb, void *arg)
{
    srv->reload_cb = cb;
    srv->reload_arg = arg;
}
