/* reload.c - configuration snapshots (refcounted, immutable) and SIGHUP: read the
 * configuration again, refuse what needs a restart, hand the new snapshot to every worker and
 * say when all of them run it. */
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
/* ---------------------------------------------------------------- configuration snapshots */

/* A snapshot of @conf (taken over) with the access log @fd (taken over, or -1): one reference. */
struct snapshot *ekv_snap_new(struct ekv_conf *conf, int fd, uint64_t gen)
{
    struct snapshot *s = ekv_calloc(1, sizeof(*s));

    s->conf = conf;
    s->alog_fd = fd;
    s->gen = gen;
    atomic_init(&s->refs, 1);
    return s;
}

void ekv_snap_ref(struct snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one (on whichever thread) frees the snapshot. */
void ekv_snap_unref(struct snapshot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->alog_fd >= 0)
        close(s->alog_fd);
    ekv_http_tls_free(s->tls); /* open connections hold their own reference */
    ekv_conf_free(s->conf);
    ekv_free(s);
}

/*
 * Opens the access log of @conf (none: *@fd = -1): appending, created 0640, non-blocking so
 * that a FIFO or a stalled file system never blocks a worker. Start-up and reload only.
 */
int ekv_open_access_log(const struct ekv_conf *conf, int *fd, char *err, size_t errlen)
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

/* Hands snapshot @s to worker @w: it switches on its own loop (ekv_worker_apply_conf). */
static void post_snapshot(struct worker *w, struct snapshot *s)
{
    struct timeval now = {0, 0};

    ekv_snap_ref(s);
    /* a snapshot posted before and not applied yet is superseded: the worker skips it */
    ekv_snap_unref(atomic_exchange(&w->next, s));
    if (event_base_once(w->base, -1, EV_TIMEOUT, ekv_worker_apply_conf, w, &now) != 0)
        ekv_log(EKV_LOG_ERROR, "cannot signal worker %u", w->id);
}

/* Main thread: a worker applied a snapshot. Once all run the newest one, say so. */
void ekv_reload_on_ack(evutil_socket_t fd, short what, void *arg)
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
    if (srv->coh != NULL && next->max_staleness_ms < 2 * srv->heartbeat_ms)
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
    struct ekv_http_tls *tls = NULL;
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
    /* the certificate, key and CA files are read again, changed or not (a renewal) */
    if (ekv_conf_validate(next, err, sizeof(err)) != EKV_OK ||
        ekv_server_tls_make(next, srv->tickets, &tls, err, sizeof(err)) != EKV_OK ||
        ekv_open_access_log(next, &fd, err, sizeof(err)) != EKV_OK) {
        ekv_http_tls_free(tls);
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
    s = ekv_snap_new(next, fd, srv->snap->gen + 1);
    s->tls = tls;
    prev = srv->snap;
    srv->snap = s;
    for (unsigned i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].started)
            post_snapshot(&srv->workers[i], s);
    ekv_snap_unref(prev);
    ekv_metrics_reload(srv->metrics, true);
    return;
fail:
    ekv_metrics_reload(srv->metrics, false);
    ekv_log(EKV_LOG_ERROR, "configuration reload failed: %s; keeping the running configuration",
            err);
}

void ekv_reload_on_hup(evutil_socket_t sig, short what, void *arg)
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

