/* metrics.c - per-worker counters and histograms, summed into the Prometheus text exposition
 * at scrape time, plus the standard process_* metrics read from /proc. */
#include "config.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "edgekv/alloc.h"
#include "edgekv/http.h"
#include "edgekv/log.h"
#include "edgekv/metrics.h"

#define NMETHODS EKV_HTTP_NMETHODS
#define NBUCKETS 13

/* Status codes edgekv answers, each a counter slot; anything else counts as "other". */
static const int statuses[] = {100, 200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409,
                               411, 412, 413, 414, 417, 431, 500, 501, 502, 503, 504};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]) + 1)

/* Latency buckets in microseconds (le labels in seconds). */
static const uint64_t bucket_us[NBUCKETS - 1] = {100,   250,    500,    1000,   2500,  5000,
                                                 10000, 25000, 100000, 250000, 1000000, 5000000};

static const char *const route_names[EKV_MR_COUNT] = {"item",   "edge",  "keys", "batch",
                                                      "stores", "links", "ops",  "other"};
static const char *const lookup_names[EKV_ML_COUNT] = {"hit",       "negative_hit", "miss",
                                                       "collapsed", "stale",        "bypass"};
static const char *const op_names[EKV_MO_COUNT] = {"get",   "put",  "delete", "list",
                                                   "store", "link", "resolve"};
static const char *const outcome_names[EKV_MX_COUNT] = {"ok", "error", "timeout", "unavailable"};

typedef atomic_ullong counter;

struct histogram {
    counter buckets[NBUCKETS]; /* the last one is +Inf */
    counter sum_us;
    counter count;
};

struct ekv_metrics_worker {
    counter http[EKV_MR_COUNT][NMETHODS][NSTATUS];
    struct histogram http_duration[EKV_MR_COUNT];
    counter lookups[EKV_ML_COUNT];
    counter origin[EKV_MO_COUNT][EKV_MX_COUNT];
    struct histogram origin_latency[EKV_MO_COUNT];
    counter conns_accepted;
    counter conns_refused;
    counter tls_failures;
    counter alog_dropped;
} __attribute__((aligned(64)));

struct ekv_metrics {
    unsigned nworkers;
    struct ekv_metrics_worker *workers;
    double start_time;
    /* configuration reloads: written by the main thread, read by any scrape */
    atomic_ullong reloads_ok, reloads_failed;
    atomic_bool last_reload_ok;
    atomic_ullong last_reload_ok_ms; /* wall clock of the last good (re)load */
};

/* Only the owning thread writes: a plain increment is enough, made atomic for the reader. */
static void inc(counter *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

static uint64_t get(const counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void observe(struct histogram *h, uint64_t us)
{
    unsigned i = 0;

    while (i < NBUCKETS - 1 && us > bucket_us[i])
        i++;
    inc(&h->buckets[i], 1);
    inc(&h->sum_us, us);
    inc(&h->count, 1);
}

static unsigned status_slot(int status)
{
    for (unsigned i = 0; i < NSTATUS - 1; i++)
        if (statuses[i] == status)
            return i;
    return NSTATUS - 1;
}

struct ekv_metrics *ekv_metrics_new(unsigned nworkers)
{
    struct ekv_metrics *m = ekv_calloc(1, sizeof(*m));
    struct timeval tv;

    m->nworkers = nworkers;
    if (posix_memalign((void **)&m->workers, 64, nworkers * sizeof(*m->workers)) != 0)
        EKV_FATAL("out of memory allocating the counters of %u workers", nworkers);
    memset(m->workers, 0, nworkers * sizeof(*m->workers));
    gettimeofday(&tv, NULL);
    m->start_time = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    atomic_init(&m->reloads_ok, 0);
    atomic_init(&m->reloads_failed, 0);
    atomic_init(&m->last_reload_ok, true); /* the configuration edgekv started with */
    atomic_init(&m->last_reload_ok_ms, (unsigned long long)tv.tv_sec * 1000 +
                                           (unsigned long long)tv.tv_usec / 1000);
    return m;
}

void ekv_metrics_free(struct ekv_metrics *m)
{
    if (m == NULL)
        return;
    free(m->workers);
    ekv_free(m);
}

struct ekv_metrics_worker *ekv_metrics_worker(struct ekv_metrics *m, unsigned id)
{
    return &m->workers[id];
}

void ekv_metrics_http(struct ekv_metrics_worker *w, enum ekv_metrics_route route, int method,
                      int status, uint64_t duration_us)
{
    if (method < 0 || method >= NMETHODS)
        method = 0;
    inc(&w->http[route][method][status_slot(status)], 1);
    observe(&w->http_duration[route], duration_us);
}

void ekv_metrics_lookup(struct ekv_metrics_worker *w, enum ekv_metrics_lookup result)
{
    inc(&w->lookups[result], 1);
}

void ekv_metrics_origin(struct ekv_metrics_worker *w, enum ekv_metrics_op op,
                        enum ekv_metrics_outcome outcome, uint64_t latency_us)
{
    inc(&w->origin[op][outcome], 1);
    observe(&w->origin_latency[op], latency_us);
}

void ekv_metrics_connection(struct ekv_metrics_worker *w, bool refused)
{
    inc(refused ? &w->conns_refused : &w->conns_accepted, 1);
}

void ekv_metrics_access_log_dropped(struct ekv_metrics_worker *w, uint64_t lines)
{
    inc(&w->alog_dropped, lines);
}

void ekv_metrics_tls_handshake_failure(struct ekv_metrics_worker *w)
{
    inc(&w->tls_failures, 1);
}

void ekv_metrics_reload(struct ekv_metrics *m, bool ok)
{
    struct timeval tv;

    if (ok) {
        gettimeofday(&tv, NULL);
        atomic_store(&m->last_reload_ok_ms, (unsigned long long)tv.tv_sec * 1000 +
                                                (unsigned long long)tv.tv_usec / 1000);
        atomic_fetch_add(&m->reloads_ok, 1);
    } else {
        atomic_fetch_add(&m->reloads_failed, 1);
    }
    atomic_store(&m->last_reload_ok, ok);
}

/* ---------------------------------------------------------------- exposition */

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram_lines(struct evbuffer *out, const char *name, const char *labels,
                            const struct histogram *hs, unsigned n, size_t stride)
{
    uint64_t cum = 0, b[NBUCKETS] = {0}, sum = 0, count = 0;

    for (unsigned w = 0; w < n; w++) {
        const struct histogram *h =
            (const struct histogram *)(const void *)((const char *)hs + w * stride);
        for (unsigned i = 0; i < NBUCKETS; i++)
            b[i] += get(&h->buckets[i]);
        sum += get(&h->sum_us);
        count += get(&h->count);
    }
    for (unsigned i = 0; i < NBUCKETS; i++) {
        cum += b[i];
        if (i < NBUCKETS - 1)
            evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
                                labels[0] ? "," : "", (double)bucket_us[i] / 1e6,
                                (unsigned long long)cum);
        else
            evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
                                labels[0] ? "," : "", (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels,
                        (double)sum / 1e6, name, labels, (unsigned long long)count);
}

static void process_metrics(struct ekv_metrics *m, struct evbuffer *out)
{
    struct rusage ru;
    struct rlimit rl;
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vsz = 0, rss = 0;
    unsigned fds = 0;
    FILE *f;
    DIR *d;

    getrusage(RUSAGE_SELF, &ru);
    head(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    evbuffer_add_printf(out, "process_cpu_seconds_total %.6f\n",
                        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    /* /proc is memory, not disk: cheap enough for a scrape */
    f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    head(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    evbuffer_add_printf(out, "process_resident_memory_bytes %lu\n", rss * (unsigned long)page);
    head(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    evbuffer_add_printf(out, "process_virtual_memory_bytes %lu\n", vsz * (unsigned long)page);
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        while (readdir(d) != NULL)
            fds++;
        closedir(d);
        fds = fds >= 3 ? fds - 3 : 0; /* ".", ".." and the directory's own descriptor */
    }
    head(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    evbuffer_add_printf(out, "process_open_fds %u\n", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        head(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        evbuffer_add_printf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    head(out, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
    evbuffer_add_printf(out, "process_start_time_seconds %.3f\n", m->start_time);
}

/* A Redis Cluster origin: redirections, slot maps, and series labelled by node. */
static void cluster_metrics(const struct ekv_metrics_gauges *g, struct evbuffer *out)
{
    unsigned n = EKV_MIN(g->nnodes, EKV_METRICS_MAX_NODES);

    head(out, "edgekv_origin_redirects_total", "counter",
         "Cluster redirections the workers followed, by kind (tryagain: TRYAGAIN and "
         "CLUSTERDOWN).");
    evbuffer_add_printf(out,
                        "edgekv_origin_redirects_total{kind=\"moved\"} %llu\n"
                        "edgekv_origin_redirects_total{kind=\"ask\"} %llu\n"
                        "edgekv_origin_redirects_total{kind=\"tryagain\"} %llu\n",
                        (unsigned long long)g->redirects_moved,
                        (unsigned long long)g->redirects_ask,
                        (unsigned long long)g->redirects_tryagain);
    head(out, "edgekv_origin_slot_map_refreshes_total", "counter",
         "Cluster slot maps the workers read (at start, on MOVED, on a lost node, periodically).");
    evbuffer_add_printf(out, "edgekv_origin_slot_map_refreshes_total %llu\n",
                        (unsigned long long)g->map_refreshes);
    head(out, "edgekv_origin_slot_moves_total", "counter",
         "Cluster slots seen served by another master (failover, resharding, forced move): each "
         "ends the hits of its slot.");
    evbuffer_add_printf(out, "edgekv_origin_slot_moves_total %llu\n",
                        (unsigned long long)g->slot_moves);
    head(out, "edgekv_origin_slots_served", "gauge",
         "Cluster slots served by a master (16384 when the whole keyspace is).");
    evbuffer_add_printf(out, "edgekv_origin_slots_served %u\n", g->slots_served);
    head(out, "edgekv_origin_node_up", "gauge",
         "Worker threads whose connection to this cluster node is up (of edgekv_worker_threads).");
    for (unsigned i = 0; i < n; i++)
        evbuffer_add_printf(out, "edgekv_origin_node_up{node=\"%s\"} %u\n", g->nodes[i].addr,
                            g->nodes[i].data_up);
    head(out, "edgekv_origin_node_commands_total", "counter",
         "Commands the workers sent to this cluster node (redirected resends included).");
    for (unsigned i = 0; i < n; i++)
        evbuffer_add_printf(out, "edgekv_origin_node_commands_total{node=\"%s\"} %llu\n",
                            g->nodes[i].addr, (unsigned long long)g->nodes[i].commands);
    head(out, "edgekv_origin_node_slots", "gauge",
         "Slots this cluster node serves as a master (0: a replica, or gone).");
    for (unsigned i = 0; i < n; i++)
        evbuffer_add_printf(out, "edgekv_origin_node_slots{node=\"%s\"} %u\n", g->nodes[i].addr,
                            g->nodes[i].slots);
    if (!g->inval_enabled)
        return;
    head(out, "edgekv_invalidation_node_link_up", "gauge",
         "1 while the invalidation subscription to this cluster master is live, else 0 (its "
         "slots serve no hit).");
    for (unsigned i = 0; i < n; i++)
        if (g->nodes[i].inval)
            evbuffer_add_printf(out, "edgekv_invalidation_node_link_up{node=\"%s\"} %d\n",
                                g->nodes[i].addr, g->nodes[i].inval_live ? 1 : 0);
    head(out, "edgekv_invalidation_node_heartbeat_age_seconds", "gauge",
         "Age of the last acknowledged heartbeat on this cluster master's invalidation link.");
    for (unsigned i = 0; i < n; i++)
        if (g->nodes[i].inval)
            evbuffer_add_printf(out,
                                "edgekv_invalidation_node_heartbeat_age_seconds{node=\"%s\"} "
                                "%.3f\n",
                                g->nodes[i].addr, g->nodes[i].inval_fence_age_seconds);
    head(out, "edgekv_invalidation_node_keys_total", "counter",
         "Invalidated keys received from this cluster master.");
    for (unsigned i = 0; i < n; i++)
        if (g->nodes[i].inval)
            evbuffer_add_printf(out, "edgekv_invalidation_node_keys_total{node=\"%s\"} %llu\n",
                                g->nodes[i].addr, (unsigned long long)g->nodes[i].inval_keys);
}

#define SUM(expr)                                                                                  \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (unsigned w_ = 0; w_ < m->nworkers; w_++) {                                            \
            const struct ekv_metrics_worker *wk = &m->workers[w_];                                 \
            s_ += get(&(expr));                                                                    \
        }                                                                                          \
        s_;                                                                                        \
    })

void ekv_metrics_render(struct ekv_metrics *m, const struct ekv_metrics_gauges *g,
                        struct evbuffer *out)
{
    size_t stride = sizeof(struct ekv_metrics_worker);
    char labels[96];

    head(out, "edgekv_build_info", "gauge", "edgekv's version; the value is always 1.");
    evbuffer_add_printf(out, "edgekv_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);

    head(out, "edgekv_http_requests_total", "counter",
         "HTTP requests answered, by route class, method and status code.");
    for (unsigned r = 0; r < EKV_MR_COUNT; r++)
        for (unsigned me = 0; me < NMETHODS; me++)
            for (unsigned s = 0; s < NSTATUS; s++) {
                uint64_t v = SUM(wk->http[r][me][s]);
                const char *mname = ekv_http_method_name((enum ekv_http_method)me);
                if (v == 0)
                    continue;
                if (s < NSTATUS - 1)
                    evbuffer_add_printf(out,
                                        "edgekv_http_requests_total{route=\"%s\",method=\"%s\","
                                        "code=\"%d\"} %llu\n",
                                        route_names[r], mname, statuses[s], (unsigned long long)v);
                else
                    evbuffer_add_printf(out,
                                        "edgekv_http_requests_total{route=\"%s\",method=\"%s\","
                                        "code=\"other\"} %llu\n",
                                        route_names[r], mname, (unsigned long long)v);
            }
    head(out, "edgekv_http_request_duration_seconds", "histogram",
         "Time from a complete request to its queued response, by route class.");
    for (unsigned r = 0; r < EKV_MR_COUNT; r++) {
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
        histogram_lines(out, "edgekv_http_request_duration_seconds", labels,
                        &m->workers[0].http_duration[r], m->nworkers, stride);
    }
    head(out, "edgekv_http_connections", "gauge", "Open client connections.");
    evbuffer_add_printf(out, "edgekv_http_connections %llu\n",
                        (unsigned long long)g->connections);
    head(out, "edgekv_http_connections_accepted_total", "counter",
         "Client connections accepted (admin-listen included).");
    evbuffer_add_printf(out, "edgekv_http_connections_accepted_total %llu\n",
                        (unsigned long long)SUM(wk->conns_accepted));
    head(out, "edgekv_http_connections_refused_total", "counter",
         "Client connections refused with 503 because max-connections was reached.");
    evbuffer_add_printf(out, "edgekv_http_connections_refused_total %llu\n",
                        (unsigned long long)SUM(wk->conns_refused));
    head(out, "edgekv_tls_handshake_failures_total", "counter",
         "TLS handshakes of clients (tls-listen) that failed or timed out (header-timeout).");
    evbuffer_add_printf(out, "edgekv_tls_handshake_failures_total %llu\n",
                        (unsigned long long)SUM(wk->tls_failures));

    head(out, "edgekv_cache_lookups_total", "counter", "Reads by how the edge cache answered them.");
    for (unsigned i = 0; i < EKV_ML_COUNT; i++)
        evbuffer_add_printf(out, "edgekv_cache_lookups_total{result=\"%s\"} %llu\n",
                            lookup_names[i], (unsigned long long)SUM(wk->lookups[i]));
    head(out, "edgekv_cache_entries", "gauge", "Entries in the edge cache.");
    evbuffer_add_printf(out, "edgekv_cache_entries %llu\n", (unsigned long long)g->cache_entries);
    head(out, "edgekv_cache_bytes", "gauge",
         "Bytes the edge cache holds, allocator overhead and tables included.");
    evbuffer_add_printf(out, "edgekv_cache_bytes %llu\n", (unsigned long long)g->cache_bytes);
    head(out, "edgekv_cache_max_bytes", "gauge", "The edge cache's budget (cache-max-bytes).");
    evbuffer_add_printf(out, "edgekv_cache_max_bytes %llu\n",
                        (unsigned long long)g->cache_max_bytes);
    head(out, "edgekv_cache_fills", "gauge", "Origin reads in flight that others may join.");
    evbuffer_add_printf(out, "edgekv_cache_fills %llu\n", (unsigned long long)g->cache_fills);
    head(out, "edgekv_cache_evictions_total", "counter", "Entries removed from the edge cache, by reason.");
    evbuffer_add_printf(out,
                        "edgekv_cache_evictions_total{reason=\"lru\"} %llu\n"
                        "edgekv_cache_evictions_total{reason=\"ttl\"} %llu\n"
                        "edgekv_cache_evictions_total{reason=\"invalidation\"} %llu\n"
                        "edgekv_cache_evictions_total{reason=\"flush\"} %llu\n",
                        (unsigned long long)g->evict_lru, (unsigned long long)g->evict_ttl,
                        (unsigned long long)g->evict_inval, (unsigned long long)g->evict_flush);
    head(out, "edgekv_cache_flushes_total", "counter",
         "Whole-cache flushes (new invalidation subscriptions, FLUSHALL).");
    evbuffer_add_printf(out, "edgekv_cache_flushes_total %llu\n",
                        (unsigned long long)g->cache_flushes);

    head(out, "edgekv_origin_requests_total", "counter", "Requests to the Redis origin, by operation and outcome.");
    for (unsigned o = 0; o < EKV_MO_COUNT; o++)
        for (unsigned x = 0; x < EKV_MX_COUNT; x++)
            evbuffer_add_printf(out,
                                "edgekv_origin_requests_total{op=\"%s\",outcome=\"%s\"} %llu\n",
                                op_names[o], outcome_names[x],
                                (unsigned long long)SUM(wk->origin[o][x]));
    head(out, "edgekv_origin_request_duration_seconds", "histogram",
         "Latency of requests to the Redis origin, by operation.");
    for (unsigned o = 0; o < EKV_MO_COUNT; o++) {
        snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[o]);
        histogram_lines(out, "edgekv_origin_request_duration_seconds", labels,
                        &m->workers[0].origin_latency[o], m->nworkers, stride);
    }
    head(out, "edgekv_origin_connected", "gauge",
         "Worker threads whose Redis connection is up (of edgekv_worker_threads).");
    evbuffer_add_printf(out, "edgekv_origin_connected %u\n", g->origin_connected);
    if (g->sentinel || g->cluster) {
        head(out, "edgekv_origin_failovers_total", "counter",
             "Failovers seen: times the master in use moved to another node (a cluster: a "
             "master whose every slot went to another).");
        evbuffer_add_printf(out, "edgekv_origin_failovers_total %llu\n",
                            (unsigned long long)g->failovers);
    }
    if (g->cluster)
        cluster_metrics(g, out);
    if (g->sentinel) {
        head(out, "edgekv_sentinel_master_known", "gauge",
             "1 while a master named by the Sentinels and confirmed by ROLE is in use, else 0.");
        evbuffer_add_printf(out, "edgekv_sentinel_master_known %d\n",
                            g->sentinel_master_known ? 1 : 0);
        head(out, "edgekv_sentinels_up", "gauge",
             "Sentinels whose +switch-master subscription is up (of edgekv_sentinels).");
        evbuffer_add_printf(out, "edgekv_sentinels_up %u\n", g->sentinels_up);
        head(out, "edgekv_sentinels", "gauge", "Sentinels in the origin URL.");
        evbuffer_add_printf(out, "edgekv_sentinels %u\n", g->sentinels_total);
    }
    head(out, "edgekv_worker_threads", "gauge", "Worker threads.");
    evbuffer_add_printf(out, "edgekv_worker_threads %u\n", g->workers);

    if (g->inval_enabled) {
        head(out, "edgekv_invalidation_link_up", "gauge",
             "1 while the invalidation subscription is live, else 0 (no hits are served).");
        evbuffer_add_printf(out, "edgekv_invalidation_link_up %d\n", g->inval_live ? 1 : 0);
        head(out, "edgekv_invalidation_heartbeat_age_seconds", "gauge",
             "Age of the last acknowledged heartbeat (fence); hits stop past max-staleness.");
        evbuffer_add_printf(out, "edgekv_invalidation_heartbeat_age_seconds %.3f\n",
                            g->inval_fence_age_seconds);
        head(out, "edgekv_invalidations_total", "counter", "Invalidated keys received from Redis.");
        evbuffer_add_printf(out, "edgekv_invalidations_total %llu\n",
                            (unsigned long long)g->inval_keys);
        head(out, "edgekv_invalidation_flushes_total", "counter",
             "Flush messages and new subscriptions on the invalidation link.");
        evbuffer_add_printf(out, "edgekv_invalidation_flushes_total %llu\n",
                            (unsigned long long)g->inval_flushes);
        head(out, "edgekv_invalidation_link_losses_total", "counter",
             "Times the invalidation link was lost.");
        evbuffer_add_printf(out, "edgekv_invalidation_link_losses_total %llu\n",
                            (unsigned long long)g->inval_losses);
    }
    head(out, "edgekv_config_reloads_total", "counter",
         "Configuration reloads (SIGHUP), by result: failure = rejected, old one kept.");
    evbuffer_add_printf(out,
                        "edgekv_config_reloads_total{result=\"success\"} %llu\n"
                        "edgekv_config_reloads_total{result=\"failure\"} %llu\n",
                        (unsigned long long)atomic_load(&m->reloads_ok),
                        (unsigned long long)atomic_load(&m->reloads_failed));
    head(out, "edgekv_config_last_reload_successful", "gauge",
         "1 if the last configuration reload succeeded (or none was tried), else 0.");
    evbuffer_add_printf(out, "edgekv_config_last_reload_successful %d\n",
                        atomic_load(&m->last_reload_ok) ? 1 : 0);
    head(out, "edgekv_config_last_reload_success_timestamp_seconds", "gauge",
         "When the running configuration was loaded, since the epoch in seconds.");
    evbuffer_add_printf(out, "edgekv_config_last_reload_success_timestamp_seconds %.3f\n",
                        (double)atomic_load(&m->last_reload_ok_ms) / 1000.0);
    head(out, "edgekv_access_log_dropped_lines_total", "counter",
         "Access log lines lost because the file could not be written in time.");
    evbuffer_add_printf(out, "edgekv_access_log_dropped_lines_total %llu\n",
                        (unsigned long long)SUM(wk->alog_dropped));
    process_metrics(m, out);
}

void ekv_metrics_families(void (*cb)(const char *name, const char *type, const char *help,
                                     void *arg),
                          void *arg)
{
    struct ekv_metrics *m = ekv_metrics_new(1);
    struct ekv_metrics_gauges *g = ekv_calloc(1, sizeof(*g));
    struct evbuffer *out = evbuffer_new();
    char *line;
    size_t len;

    if (out == NULL)
        EKV_FATAL("out of memory");
    g->inval_enabled = g->sentinel = g->cluster = true;
    ekv_metrics_render(m, g, out);
    ekv_free(g);
    /* "# HELP name text" then "# TYPE name type" */
    while ((line = evbuffer_readln(out, &len, EVBUFFER_EOL_LF)) != NULL) {
        char *sp, *type;
        if (strncmp(line, "# HELP ", 7) != 0 || (sp = strchr(line + 7, ' ')) == NULL) {
            free(line);
            continue;
        }
        *sp = '\0';
        type = evbuffer_readln(out, &len, EVBUFFER_EOL_LF);
        if (type != NULL && strncmp(type, "# TYPE ", 7) == 0 && strrchr(type, ' ') != NULL)
            cb(line + 7, strrchr(type, ' ') + 1, sp + 1, arg);
        free(type);
        free(line);
    }
    evbuffer_free(out);
    ekv_metrics_free(m);
}
