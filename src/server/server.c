/* server.c - the process: listening sockets shared by N worker threads (each with its own event
 * loop, HTTP server and API), the connection limit, signals and graceful shutdown. */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "edgekv/alloc.h"
#include "edgekv/api.h"
#include "edgekv/cache.h"
#include "edgekv/conf.h"
#include "edgekv/fill.h"
#include "edgekv/http.h"
#include "edgekv/inval.h"
#include "edgekv/log.h"
#include "edgekv/metrics.h"
#include "edgekv/origin.h"
#include "edgekv/server.h"

#include "server_int.h"

#define NLISTENERS 2         /* EKV_API_TAG_MAIN, EKV_API_TAG_ADMIN */
#define FD_RESERVE 64        /* descriptors kept for listeners, loops, Redis, logs */
#define ACCEPT_PAUSE_MS 100  /* after EMFILE/ENFILE: stop accepting this long */
#define PIPELINE_DEPTH 32    /* requests read ahead per connection */

struct worker;

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
    struct ekv_mailbox *mailbox;       /* readers joined to other workers' fills land here */
    struct listener lis[NLISTENERS];
    struct event *deadline; /* shutdown-timeout */
    bool draining;
};

struct ekv_server {
    const struct ekv_conf *conf;
    struct ekv_conf_origin origin_addr; /* conf->origin with the host resolved to a number */
    char origin_ip[64];
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
    char *prefixes[3];         /* the tracked Redis key prefixes */
    size_t item_prefix_len;    /* strlen("<ns>i:") */
    struct ekv_metrics *metrics;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- worker side */

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
        uint64_t now = mono_ms();
        if (now - l->last_warn > 10000) {
            l->last_warn = now;
            ekv_log(EKV_LOG_WARN, "max-connections (%u) reached: refusing new connections",
                    srv->max_conns);
        }
        refuse(fd);
        return;
    }
    if (ekv_http_server_adopt(l->w->http, fd, l->tag) != EKV_OK)
        atomic_fetch_sub(&srv->nconns, 1);
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
    uint64_t now = mono_ms();

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
    uint64_t ms = w->srv->conf->shutdown_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

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
    atomic_fetch_add(&w->srv->nfinished, 1);
    event_active(w->srv->worker_done, EV_TIMEOUT, 1);
    return NULL;
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
        uint64_t now = ekv_inval_now_ms();
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
    const struct ekv_conf *conf = srv->conf;
    struct ekv_http_limits limits = {
        .max_header_bytes = conf->max_header_bytes,
        .header_timeout_ms = conf->header_timeout_ms,
        .idle_timeout_ms = conf->idle_timeout_ms,
        .max_pipeline = PIPELINE_DEPTH,
    };
    struct ekv_http_hooks hooks = {.on_closed = on_conn_closed, .closed_arg = w};
    struct ekv_origin_opts oopts = {
        .addr = &srv->origin_addr,
        .timeout_ms = conf->origin_timeout_ms,
    };
    char label[32];

    w->srv = srv;
    w->id = id;
    w->base = event_base_new();
    if (w->base == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        return EKV_ERROR;
    }
    snprintf(label, sizeof(label), "worker %u", id);
    w->scripts = ekv_api_scripts(&oopts.nscripts);
    oopts.scripts = w->scripts;
    oopts.label = label;
    w->origin = ekv_origin_new(w->base, &oopts);
    w->mailbox = ekv_mailbox_new(w->base);
    {
        struct ekv_api_deps deps = {
            .conf = conf,
            .origin = w->origin,
            .cache = srv->cache,
            .names = srv->names,
            .inval = srv->inval,
            .mailbox = w->mailbox,
            .metrics = srv->metrics,
            .worker = id,
            .gauges = gauges,
            .gauges_arg = srv,
        };
        w->api = ekv_api_new(&deps);
    }
    ekv_api_hooks(w->api, &hooks);
    w->http = ekv_http_server_new(w->base, &limits, &hooks);
    w->deadline = evtimer_new(w->base, on_deadline, w);
    if (w->deadline == NULL) {
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
    ekv_free(w->scripts);
    if (w->deadline != NULL)
        event_free(w->deadline);
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
                (unsigned long long)srv->conf->shutdown_timeout_ms);
        for (unsigned i = 0; i < srv->nworkers; i++)
            post(&srv->workers[i], worker_drain);
    } else {
        ekv_log(EKV_LOG_WARN, "second stop signal: closing every connection now");
        for (unsigned i = 0; i < srv->nworkers; i++)
            post(&srv->workers[i], worker_stop_now);
    }
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    ekv_log(EKV_LOG_WARN, "SIGHUP: configuration reload is not supported yet; restart edgekv "
                          "to apply a new configuration");
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
    rlim_t need = (rlim_t)srv->conf->max_connections + FD_RESERVE + 4 * srv->nworkers;

    srv->max_conns = srv->conf->max_connections;
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
                srv->conf->max_connections, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, srv->max_conns);
    }
}

/* Resolves the origin's host once, at start-up: hiredis would resolve it on every reconnect
 * with a blocking getaddrinfo() on the worker's loop. */
static int resolve_origin(struct ekv_server *srv, char *err, size_t errlen)
{
    const struct ekv_conf_origin *o = &srv->conf->origin;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc;

    srv->origin_addr = *o;
    if (o->unix_path != NULL)
        return EKV_OK;
    rc = getaddrinfo(o->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the origin host %s: %s", o->host, gai_strerror(rc));
        return EKV_ERROR;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, srv->origin_ip, sizeof(srv->origin_ip), NULL,
                     0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the origin host %s: %s", o->host, gai_strerror(rc));
        return EKV_ERROR;
    }
    srv->origin_addr.host = srv->origin_ip;
    return EKV_OK;
}

/* ---------------------------------------------------------------- edge cache and coherence */

/* Invalidation link hooks (main thread): a Redis key changed, or everything may have. */
static void on_inval_key(const char *key, size_t len, void *arg)
{
    struct ekv_server *srv = arg;

    if (len >= srv->item_prefix_len && memcmp(key, srv->prefixes[0], srv->item_prefix_len) == 0)
        ekv_cache_invalidate(srv->cache, key + srv->item_prefix_len, len - srv->item_prefix_len);
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
        seed = (uint64_t)mono_ms() ^ ((uint64_t)getpid() << 32);
    if (f != NULL)
        fclose(f);
    return seed;
}

/* The shared caches and the invalidation link, unless cache-max-bytes is 0. */
static void cache_init(struct ekv_server *srv)
{
    const struct ekv_conf *conf = srv->conf;
    uint64_t names_bytes = EKV_MIN(conf->cache_max_bytes / 16, (uint64_t)8 << 20);
    struct ekv_cache_limits items = {.max_bytes = conf->cache_max_bytes - names_bytes,
                                     .seed = random_seed()};
    struct ekv_cache_limits names = {.max_bytes = names_bytes, .nshards = 4,
                                     .seed = random_seed()};
    const char *suffix[3] = {EKV_API_ITEM_PREFIX, "stores", "links:"};
    char hb[128];
    struct ekv_inval_opts io = {
        .addr = &srv->origin_addr,
        .nprefixes = 3,
        .heartbeat_channel = hb,
        .heartbeat_ms = EKV_MAX(conf->max_staleness_ms / 4, 50),
        .stall_ms = conf->max_staleness_ms,
        .timeout_ms = conf->origin_timeout_ms,
    };
    struct ekv_inval_hooks hooks = {.on_key = on_inval_key, .on_flush = on_inval_flush, .arg = srv};

    if (conf->cache_max_bytes == 0) {
        ekv_log(EKV_LOG_INFO, "cache-max-bytes is 0: no edge cache, every read goes to Redis");
        return;
    }
    srv->cache = ekv_cache_new(&items);
    srv->names = ekv_cache_new(&names);
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(conf->ns) + strlen(suffix[i]) + 1;
        srv->prefixes[i] = ekv_malloc(n);
        snprintf(srv->prefixes[i], n, "%s%s", conf->ns, suffix[i]);
    }
    srv->item_prefix_len = strlen(srv->prefixes[0]);
    io.prefixes = (const char *const *)srv->prefixes;
    snprintf(hb, sizeof(hb), "%sheartbeat", conf->ns);
    srv->inval = ekv_inval_new(srv->base, &io, &hooks);
}

struct ekv_server *ekv_server_new(const struct ekv_conf *conf, char *err, size_t errlen)
{
    struct ekv_server *srv = ekv_calloc(1, sizeof(*srv));
    const struct ekv_conf_addr *addrs[NLISTENERS] = {&conf->listen, &conf->admin_listen};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    srv->conf = conf;
    for (int i = 0; i < NLISTENERS; i++)
        srv->fds[i] = -1;
    srv->nworkers = conf->threads != 0 ? conf->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent has no pthreads support");
        goto fail;
    }
    if (resolve_origin(srv, err, errlen) != EKV_OK)
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
    if (srv->sig_term == NULL || srv->sig_int == NULL || srv->sig_hup == NULL ||
        srv->worker_done == NULL || evsignal_add(srv->sig_term, NULL) != 0 ||
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
    ekv_cache_free(srv->cache);
    ekv_cache_free(srv->names);
    for (int i = 0; i < 3; i++)
        ekv_free(srv->prefixes[i]);
    ekv_metrics_free(srv->metrics);
    if (srv->sig_term != NULL)
        event_free(srv->sig_term);
    if (srv->sig_int != NULL)
        event_free(srv->sig_int);
    if (srv->sig_hup != NULL)
        event_free(srv->sig_hup);
    if (srv->worker_done != NULL)
        event_free(srv->worker_done);
    if (srv->base != NULL)
        event_base_free(srv->base);
    for (int i = 0; i < NLISTENERS; i++)
        if (srv->fds[i] >= 0)
            close(srv->fds[i]);
    ekv_free(srv);
}
