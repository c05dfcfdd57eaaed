/* metrics.h - Prometheus metrics. Counters live per worker thread, written only by their own
 * thread (a relaxed load and store: no locked instruction, no shared cache line on the hit
 * path) and summed when /metrics is scraped. Gauges that belong to other modules (cache, links,
 * connections) are passed in at scrape time. */
#ifndef EDGEKV_METRICS_H
#define EDGEKV_METRICS_H

#include "edgekv/common.h"

struct evbuffer;
struct ekv_metrics;
struct ekv_metrics_worker;

/** Route classes (the `route` label). */
enum ekv_metrics_route {
    EKV_MR_ITEM = 0, /* /resources/stores/kv/{id}/keys/{key} */
    EKV_MR_EDGE,     /* /kv/{name}/{key} */
    EKV_MR_KEYS,     /* key listing */
    EKV_MR_BATCH,
    EKV_MR_STORES,   /* store management */
    EKV_MR_LINKS,    /* resource links, service versions */
    EKV_MR_OPS,      /* /metrics /healthz /readyz */
    EKV_MR_OTHER,    /* unknown paths, refused requests */
    EKV_MR_COUNT
};

/** Cache lookup results (the `result` label). */
enum ekv_metrics_lookup {
    EKV_ML_HIT = 0,
    EKV_ML_NEGATIVE_HIT,
    EKV_ML_MISS,
    EKV_ML_COLLAPSED, /* joined another request's fill */
    EKV_ML_STALE,     /* served stale (stale-if-error) */
    EKV_ML_BYPASS,    /* no-cache, strong consistency, or the cache not trusted */
    EKV_ML_COUNT
};

/** Origin operations (the `op` label) and outcomes (`outcome`). */
enum ekv_metrics_op {
    EKV_MO_GET = 0,
    EKV_MO_PUT,
    EKV_MO_DELETE,
    EKV_MO_LIST,
    EKV_MO_STORE,
    EKV_MO_LINK,
    EKV_MO_RESOLVE,
    EKV_MO_COUNT
};
enum ekv_metrics_outcome {
    EKV_MX_OK = 0,
    EKV_MX_ERROR,       /* Redis answered with an error */
    EKV_MX_TIMEOUT,
    EKV_MX_UNAVAILABLE, /* not connected */
    EKV_MX_COUNT
};

/** The most cluster nodes /metrics shows one by one. */
#define EKV_METRICS_MAX_NODES 256

/** One node of a Redis Cluster origin (the `node` label). */
struct ekv_metrics_node {
    char addr[72];     /* "host:port" */
    unsigned data_up;  /* workers whose connection to it is up */
    uint64_t commands; /* commands the workers sent it */
    unsigned slots;    /* slots it serves (the invalidation links' map) */
    bool inval;        /* it has an invalidation link: */
    bool inval_live;
    double inval_fence_age_seconds;
    uint64_t inval_keys;
};

/** Values owned by other modules, read at scrape time. */
struct ekv_metrics_gauges {
    uint64_t connections;          /* open client connections */
    uint64_t cache_entries, cache_bytes, cache_max_bytes, cache_fills;
    uint64_t evict_lru, evict_ttl, evict_inval, evict_flush, cache_flushes;
    unsigned origin_connected;     /* workers whose origin connection is up */
    unsigned workers;
    bool inval_enabled;            /* a cache, so an invalidation link */
    bool inval_live;
    double inval_fence_age_seconds;
    uint64_t inval_keys, inval_flushes, inval_losses;
    bool sentinel;                 /* a redis-sentinel:// origin */
    bool sentinel_master_known;    /* a master confirmed by ROLE is in use */
    char sentinel_master[80];      /* its "host:port" */
    uint64_t failovers;            /* times the master moved to another node */
    unsigned sentinels_up, sentinels_total; /* Sentinels whose +switch-master feed is up */
    bool cluster;                           /* a redis-cluster:// origin: */
    uint64_t redirects_moved, redirects_ask, redirects_tryagain; /* summed over workers */
    uint64_t map_refreshes;                                      /* slot maps the workers read */
    uint64_t slot_moves;   /* slots seen served by another master */
    unsigned slots_served; /* slots with a master */
    unsigned nnodes;       /* nodes[] in use */
    struct ekv_metrics_node nodes[EKV_METRICS_MAX_NODES];
};

/** Metrics for @nworkers worker threads. Never NULL. */
struct ekv_metrics *ekv_metrics_new(unsigned nworkers);
void ekv_metrics_free(struct ekv_metrics *m);
/** The counters of worker @id (< nworkers), to be written by that worker's thread only. */
struct ekv_metrics_worker *ekv_metrics_worker(struct ekv_metrics *m, unsigned id);

/** One answered HTTP request: its route class, method (enum ekv_http_method), status and
 * duration in microseconds. */
void ekv_metrics_http(struct ekv_metrics_worker *w, enum ekv_metrics_route route, int method,
                      int status, uint64_t duration_us);
/** One cache lookup result. */
void ekv_metrics_lookup(struct ekv_metrics_worker *w, enum ekv_metrics_lookup result);
/** One origin request and its latency in microseconds. */
void ekv_metrics_origin(struct ekv_metrics_worker *w, enum ekv_metrics_op op,
                        enum ekv_metrics_outcome outcome, uint64_t latency_us);

/** One client connection accepted, or refused (max-connections reached). */
void ekv_metrics_connection(struct ekv_metrics_worker *w, bool refused);
/** One TLS handshake of a client that failed (or timed out). */
void ekv_metrics_tls_handshake_failure(struct ekv_metrics_worker *w);
/** Access log lines dropped (the file could not keep up, or a write failed). */
void ekv_metrics_access_log_dropped(struct ekv_metrics_worker *w, uint64_t lines);
/** One configuration reload (SIGHUP) that was applied (@ok) or rejected. Any thread. */
void ekv_metrics_reload(struct ekv_metrics *m, bool ok);

/** Appends the Prometheus text exposition (format 0.0.4) of everything to @out. Any thread. */
void ekv_metrics_render(struct ekv_metrics *m, const struct ekv_metrics_gauges *g,
                        struct evbuffer *out);

/** Calls @cb with the name, type and help of every metric family edgekv can export (all the
 * optional ones included), in /metrics order: the catalogue the manual lists. */
void ekv_metrics_families(void (*cb)(const char *name, const char *type, const char *help,
                                     void *arg),
                          void *arg);

#endif /* EDGEKV_METRICS_H */
