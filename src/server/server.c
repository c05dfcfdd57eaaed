/* server.c - the process: listening sockets shared by N worker threads (worker.c), the
 * connection limit, signals, the origin's address and TLS context, the edge cache and its
 * invalidation link, and graceful shutdown. Configuration reloads are reload.c.
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
#include "edgekv/coherence.h"
#include "edgekv/inval.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"
#include "edgekv/mailbox.h"
#include "edgekv/metrics.h"
#include "edgekv/origin.h"
#include "edgekv/rng.h"
#include "edgekv/server.h"

#include "server_int.h"
/* ---------------------------------------------------------------- main thread */

void ekv_worker_post(struct worker *w, event_callback_fn fn)
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
            ekv_worker_post(&srv->workers[i], ekv_worker_drain);
    } else {
        ekv_log(EKV_LOG_WARN, "second stop signal: closing every connection now");
        for (unsigned i = 0; i < srv->nworkers; i++)
            ekv_worker_post(&srv->workers[i], ekv_worker_stop_now);
    }
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

/* @host as a numeric address (malloc'd), resolved now. */
static int resolve_host(const char *host, char **ip_out, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ip[64];
    int rc;

    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc == 0) {
        rc = getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST);
        freeaddrinfo(res);
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the origin host %s: %s", host, gai_strerror(rc));
        return EKV_ERROR;
    }
    *ip_out = ekv_strdup(ip);
    return EKV_OK;
}

/* Resolves the origin's hosts once, at start-up: a blocking getaddrinfo() on a loop at every
 * reconnect would stall it. Fills srv->origin_addr (for Sentinel: the data nodes' credentials
 * and db) and srv->sentinel_addrs with copies. */
static int resolve_origin(struct ekv_server *srv, char *err, size_t errlen)
{
    const struct ekv_conf *conf = srv->snap->conf;
    const struct ekv_conf_origin *o = &conf->origin;

    srv->origin_addr.port = o->port;
    srv->origin_addr.db = o->db;
    srv->origin_addr.user = o->user != NULL ? ekv_strdup(o->user) : NULL;
    srv->origin_addr.password = o->password != NULL ? ekv_strdup(o->password) : NULL;
    if (o->kind == EKV_ORIGIN_SENTINEL) {
        for (size_t i = 0; i < o->nnodes; i++) {
            struct ekv_conf_origin *a = &srv->sentinel_addrs[i];
            srv->nsentinels++;
            a->port = o->nodes[i].port;
            a->user = conf->sentinel_user != NULL ? ekv_strdup(conf->sentinel_user) : NULL;
            a->password =
                conf->sentinel_password != NULL ? ekv_strdup(conf->sentinel_password) : NULL;
            srv->sentinel_names[i] = ekv_strdup(o->nodes[i].host);
            a->tls_name = srv->sentinel_names[i];
            if (resolve_host(o->nodes[i].host, &a->host, err, errlen) != EKV_OK)
                return EKV_ERROR;
        }
        return EKV_OK;
    }
    if (o->kind == EKV_ORIGIN_CLUSTER) {
        for (size_t i = 0; i < o->nnodes; i++) {
            struct ekv_conf_origin *a = &srv->seed_addrs[i];
            srv->nseeds++;
            a->port = o->nodes[i].port;
            a->user = o->user != NULL ? ekv_strdup(o->user) : NULL;
            a->password = o->password != NULL ? ekv_strdup(o->password) : NULL;
            if (resolve_host(o->nodes[i].host, &a->host, err, errlen) != EKV_OK)
                return EKV_ERROR;
        }
        return EKV_OK;
    }
    if (o->unix_path != NULL) {
        srv->origin_addr.unix_path = ekv_strdup(o->unix_path);
        return EKV_OK;
    }
    return resolve_host(o->host, &srv->origin_addr.host, err, errlen);
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
        /* a standalone origin's name as written; Sentinels are verified against theirs, and
         * the nodes they name against the addresses they give */
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

int ekv_server_tls_make(const struct ekv_conf *conf, struct ekv_http_tickets *tk,
                        struct ekv_http_tls **out, char *err, size_t errlen)
{
    char cert[300], key[300], ca[300], ciphers[300], suites[300], warn[600];
    struct ekv_http_tls_opts o = {
        .cert_file = conf->tls_cert_file,
        .cert_label = cert,
        .key_file = conf->tls_key_file,
        .key_label = key,
        .client_ca_file = conf->tls_client_ca_file,
        .client_ca_label = ca,
        .tls13_only = conf->tls_min_version != NULL && strcmp(conf->tls_min_version, "1.3") == 0,
        .ciphers = conf->tls_ciphers,
        .ciphers_label = ciphers,
        .ciphersuites = conf->tls_ciphersuites,
        .ciphersuites_label = suites,
        .tickets = tk,
    };

    *out = NULL;
    if (conf->tls_listen.host == NULL)
        return EKV_OK;
    ekv_conf_fmt_where(conf, "tls-cert-file", cert, sizeof(cert));
    ekv_conf_fmt_where(conf, "tls-key-file", key, sizeof(key));
    ekv_conf_fmt_where(conf, "tls-client-ca-file", ca, sizeof(ca));
    ekv_conf_fmt_where(conf, "tls-ciphers", ciphers, sizeof(ciphers));
    ekv_conf_fmt_where(conf, "tls-ciphersuites", suites, sizeof(suites));
    *out = ekv_http_tls_new(&o, warn, sizeof(warn), err, errlen);
    if (*out == NULL)
        return EKV_ERROR;
    if (warn[0] != '\0')
        ekv_log(EKV_LOG_WARN, "%s", warn);
    return EKV_OK;
}

int ekv_server_check(const struct ekv_conf *conf, char *err, size_t errlen)
{
    struct ekv_origin_tls *tls;
    struct ekv_http_tls *htls;

    if (origin_tls_make(conf, &tls, err, errlen) != EKV_OK)
        return EKV_ERROR;
    ekv_origin_tls_free(tls);
    if (ekv_server_tls_make(conf, NULL, &htls, err, errlen) != EKV_OK)
        return EKV_ERROR;
    ekv_http_tls_free(htls);
    return EKV_OK;
}

/* ---------------------------------------------------------------- edge cache and coherence */

/* Coherence hooks (main thread): a Redis key changed, everything may have, or some slots' entries
 * ended (a cluster: their epochs moved; what is cached without a slot goes too). */
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

static void on_inval_slots(void *arg)
{
    struct ekv_server *srv = arg;

    ekv_cache_flush(srv->names);
}

/* The shared caches and the invalidation link, unless cache-max-bytes is 0. */
static void cache_init(struct ekv_server *srv)
{
    const struct ekv_conf *conf = srv->snap->conf;
    uint64_t names_bytes = EKV_MIN(conf->cache_max_bytes / 16, (uint64_t)8 << 20);
    struct ekv_cache_limits items = {.max_bytes = conf->cache_max_bytes - names_bytes,
                                     .max_item_bytes = conf->cache_max_item_bytes,
                                     .seed = ekv_rng_entropy64()};
    struct ekv_cache_limits names = {.max_bytes = names_bytes, .nshards = 4,
                                     .seed = ekv_rng_entropy64()};
    struct ekv_coherence_opts co = {
        .inval = {
            .addr = &srv->origin_addr,
            .sentinel = srv->sentinel,
            .tls = srv->origin_tls,
            .heartbeat_ms = EKV_MAX(conf->max_staleness_ms / 4, 50),
            .stall_ms = conf->max_staleness_ms,
            .timeout_ms = conf->origin_timeout_ms,
        },
        .seeds = srv->seed_addrs,
        .nseeds = srv->nseeds,
    };
    struct ekv_inval_opts *io = &co.inval;
    struct ekv_coherence_hooks hooks = {.on_key = on_inval_key, .on_flush = on_inval_flush,
                                        .on_slots = on_inval_slots, .arg = srv};

    srv->heartbeat_ms = io->heartbeat_ms;
    /* the layout, and the table of store buckets the workers share (with or without a cache) */
    srv->layout = ekv_keyspace_new(&(struct ekv_keyspace_opts){.ns = conf->ns});
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
    io->prefixes = ekv_keyspace_tracking_prefixes(srv->layout, &io->nprefixes);
    io->heartbeat_channel = ekv_keyspace_heartbeat_channel(srv->layout);
    srv->coh = ekv_coherence_new(srv->base, &co, &hooks);
}

struct ekv_server *ekv_server_new(struct ekv_conf *conf, char *err, size_t errlen)
{
    struct ekv_server *srv = ekv_calloc(1, sizeof(*srv));
    const struct ekv_conf_addr *addrs[NLISTENERS] = {&conf->listen, &conf->admin_listen,
                                                     &conf->tls_listen};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int alog_fd;

    for (int i = 0; i < NLISTENERS; i++)
        srv->fds[i] = -1;
    pthread_mutex_init(&srv->errlog_lock, NULL);
    if (ekv_open_access_log(conf, &alog_fd, err, errlen) != EKV_OK) {
        ekv_conf_free(conf);
        pthread_mutex_destroy(&srv->errlog_lock);
        ekv_free(srv);
        return NULL;
    }
    srv->snap = ekv_snap_new(conf, alog_fd, 1);
    srv->shutdown_ms = conf->shutdown_timeout_ms;
    srv->nworkers = conf->threads != 0 ? conf->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (evthread_use_pthreads() != 0) {
        snprintf(err, errlen, "libevent has no pthreads support");
        goto fail;
    }
    if (resolve_origin(srv, err, errlen) != EKV_OK || origin_tls_init(srv, err, errlen) != EKV_OK)
        goto fail;
    if (conf->tls_listen.host != NULL) {
        srv->tickets = ekv_http_tickets_new(TICKET_ROTATE_S);
        if (ekv_server_tls_make(conf, srv->tickets, &srv->snap->tls, err, errlen) != EKV_OK)
            goto fail;
    }
    for (int i = 0; i < NLISTENERS; i++) {
        char bound[300];
        if (addrs[i]->host == NULL)
            continue;
        srv->fds[i] = ekv_listen_bind(addrs[i], bound, sizeof(bound), err, errlen);
        if (srv->fds[i] < 0)
            goto fail;
        ekv_log(EKV_LOG_INFO, "listening %son %s%s", i == LIS_TLS ? "(tls) " : "", bound,
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
    srv->sig_hup = evsignal_new(srv->base, SIGHUP, ekv_reload_on_hup, srv);
    srv->worker_done = event_new(srv->base, -1, 0, on_worker_done, srv);
    srv->reload_ack = event_new(srv->base, -1, 0, ekv_reload_on_ack, srv);
    if (srv->sig_term == NULL || srv->sig_int == NULL || srv->sig_hup == NULL ||
        srv->worker_done == NULL || srv->reload_ack == NULL ||
        evsignal_add(srv->sig_term, NULL) != 0 ||
        evsignal_add(srv->sig_int, NULL) != 0 || evsignal_add(srv->sig_hup, NULL) != 0) {
        snprintf(err, errlen, "cannot set up signal handling");
        goto fail;
    }
    srv->metrics = ekv_metrics_new(srv->nworkers);
    if (conf->origin.kind == EKV_ORIGIN_SENTINEL) {
        struct ekv_sentinel_opts so = {
            .sentinels = srv->sentinel_addrs,
            .nsentinels = srv->nsentinels,
            .master_name = conf->origin.master,
            .data = &srv->origin_addr,
            .tls = srv->origin_tls,
            .timeout_ms = conf->origin_timeout_ms,
        };
        srv->sentinel_master = ekv_strdup(conf->origin.master);
        so.master_name = srv->sentinel_master;
        srv->sentinel = ekv_sentinel_new(srv->base, &so);
    }
    cache_init(srv);
    srv->workers = ekv_calloc(srv->nworkers, sizeof(*srv->workers));
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (ekv_worker_init(srv, &srv->workers[i], i, err, errlen) != EKV_OK)
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
        int e = pthread_create(&w->thread, NULL, ekv_worker_main, w);
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
            ekv_worker_post(&srv->workers[i], ekv_worker_stop_now);
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
    ekv_coherence_free(srv->coh);
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        ekv_origin_free(srv->workers[i].origin); /* if the worker never ran */
        srv->workers[i].origin = NULL;
    }
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        ekv_mailbox_free(srv->workers[i].mailbox);
        srv->workers[i].mailbox = NULL;
    }
    for (unsigned i = 0; srv->workers != NULL && i < srv->nworkers; i++)
        ekv_worker_deinit(&srv->workers[i]);
    ekv_free(srv->workers);
    ekv_sentinel_free(srv->sentinel); /* after every link that followed it */
    ekv_free(srv->sentinel_master);
    for (size_t i = 0; i < srv->nsentinels; i++) {
        ekv_conf_origin_clear(&srv->sentinel_addrs[i]);
        ekv_free(srv->sentinel_names[i]);
    }
    for (size_t i = 0; i < srv->nseeds; i++)
        ekv_conf_origin_clear(&srv->seed_addrs[i]);
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
    ekv_snap_unref(srv->snap);
    ekv_http_tickets_free(srv->tickets); /* after every TLS context and connection */
    ekv_conf_origin_clear(&srv->origin_addr); /* after everything that borrowed it */
    pthread_mutex_destroy(&srv->errlog_lock);
    ekv_free(srv);
}

void ekv_server_set_reload(struct ekv_server *srv, ekv_server_reload_cb *cb, void *arg)
{
    srv->reload_cb = cb;
    srv->reload_arg = arg;
}
