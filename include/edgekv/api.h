/* api.h - the HTTP API of one worker: the router for the paths of API.md and their handlers,
 * plus the operations endpoints (/healthz, /readyz, /metrics). */
#ifndef EDGEKV_API_H
#define EDGEKV_API_H

#include "edgekv/common.h"

struct ekv_conf;
struct ekv_api;
struct ekv_cache;
struct ekv_coherence;
struct ekv_keyspace;
struct ekv_mailbox;
struct ekv_metrics;
struct ekv_metrics_gauges;
struct ekv_http_hooks;

/** What one worker's API works with. Everything is borrowed and must outlive the API. */
struct ekv_api_deps {
    const struct ekv_conf *conf; /* the configuration at start-up (see ekv_api_set_conf) */
    struct ekv_keyspace *keyspace; /* this worker's data at the origin (its Redis connection) */
    struct ekv_cache *cache;     /* the shared edge cache of items; NULL: no caching */
    struct ekv_cache *names;     /* the shared cache of /kv/{name} resolutions (with @cache) */
    struct ekv_coherence *coh;   /* which entries may be served: the invalidation links (with
                                  * @cache) */
    struct ekv_mailbox *mailbox; /* this worker's: where coalesced readers are answered */
    struct ekv_metrics *metrics;
    unsigned worker;             /* this worker's index (its metrics) */
    /** True when every worker's origin connection is up (for /readyz: a client may land on
     * any worker). When one is not, @why (@whylen bytes) may receive its failure
     * ("tls: ..."), or "". Any thread. NULL: this worker's alone. */
    bool (*origins_up)(void *arg, char *why, size_t whylen);
    /** Fills the gauges other modules own, for /metrics (any worker thread). */
    void (*gauges)(void *arg, struct ekv_metrics_gauges *g);
    void *gauges_arg;
};

/** Connection tags (ekv_http_server_adopt): which listener accepted the connection. */
enum ekv_api_tag {
    EKV_API_TAG_MAIN = 0,  /* `listen` */
    EKV_API_TAG_ADMIN = 1, /* `admin-listen`: operations endpoints only */
};

/** The API of one worker (@deps is copied). It takes over the keyspace's hooks (origin state and
 * observer). Never NULL. */
struct ekv_api *ekv_api_new(const struct ekv_api_deps *deps);
/** NULL is a no-op. */
void ekv_api_free(struct ekv_api *api);
/** Fills the on_head/on_request/on_done callbacks (and their argument) of @hooks. */
void ekv_api_hooks(struct ekv_api *api, struct ekv_http_hooks *hooks);
/**
 * Switches the API to the configuration snapshot @conf (a reload), on the worker's loop thread.
 * From its return on, the API never reads the previous snapshot again: handlers read the
 * configuration through the API at the moment they use a value and keep no pointer into it
 * across a wait for the origin, so the caller may free the previous snapshot once every
 * worker's API has switched. @conf is borrowed and must stay valid until the next switch.
 * Directives that need a restart (admin-listen...) must be unchanged.
 */
void ekv_api_set_conf(struct ekv_api *api, const struct ekv_conf *conf);
/** From now on /readyz answers 503: the process is shutting down. */
void ekv_api_set_draining(struct ekv_api *api);

/** Largest body of a JSON or form request (store and link management). */
#define EKV_API_SMALL_BODY (64 * 1024)

#endif /* EDGEKV_API_H */
