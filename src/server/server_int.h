/* server_int.h - the server module's private helpers. */
#ifndef EDGEKV_SERVER_INT_H
#define EDGEKV_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>

#include "edgekv/common.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/log.h"
#include "edgekv/server.h"

struct ekv_conf_addr;
struct evbuffer;

/**
 * Resolves @addr (blocking: start-up only), binds and listens with SO_REUSEADDR (never
 * SO_REUSEPORT: a second edgekv on the same port must fail, not split the traffic).
 * Writes the bound "HOST:PORT" (the real port when @addr asked for 0) to @bound.
 * Returns the non-blocking, close-on-exec socket, or -1 with @err set.
 */
int ekv_listen_bind(const struct ekv_conf_addr *addr, char *bound, size_t boundlen, char *err,
                    size_t errlen);

/* ---------------------------------------------------------------- alog.c: access log lines and
 * rate-limited client error lines (pure: no I/O but ekv_alog_flush(), time passed in) */

/** One answered request, for an access log line. Strings are not NUL-terminated. */
struct ekv_alog_entry {
    const char *peer;         /* NUL-terminated: "192.0.2.7", "unix", "-" */
    const char *method;       /* NUL-terminated */
    const char *path;         /* the raw URL path (percent-encoded) */
    size_t path_len;
    const char *query;        /* after '?', or NULL */
    size_t query_len;
    int minor;                /* HTTP/1.<minor> */
    int status;
    uint64_t bytes;           /* response body bytes */
    uint64_t duration_us;
    const char *cache_status; /* the Cache-Status header, or NULL */
    size_t cache_status_len;
};

#define EKV_ALOG_URL_MAX 4096          /* longer URLs are cut (and end in "...") */
#define EKV_ALOG_FLUSH_BYTES (64 * 1024) /* buffered past this: written at once */
#define EKV_ALOG_MAX_BYTES (8u << 20)  /* unwritten past this: new lines are dropped */

/** One worker's access log buffer. Owned by the worker's thread. */
struct ekv_alog {
    struct evbuffer *buf;     /* lines not written yet */
    size_t lines;             /* how many */
    long long date_sec;       /* the second date[] shows */
    char date[40];            /* "27/Nov/2026:11:40:02 +0000" */
};

/** Sets up @a (its buffer is allocated; aborts on OOM). */
void ekv_alog_init(struct ekv_alog *a);
/** Frees what @a holds (unwritten lines are lost: flush first). */
void ekv_alog_deinit(struct ekv_alog *a);

/**
 * Appends the line of @e at wall-clock second @now_sec:
 *   PEER - - [DD/Mon/YYYY:HH:MM:SS +0000] "METHOD URL HTTP/1.x" STATUS BYTES SECONDS "CACHE-STATUS"
 * Bytes from the client (URL, method) are escaped (\xHH for anything but printable ASCII, '"'
 * and '\\'). Returns false, appending nothing, when EKV_ALOG_MAX_BYTES are already buffered.
 */
bool ekv_alog_append(struct ekv_alog *a, const struct ekv_alog_entry *e, long long now_sec);

/**
 * Writes what is buffered to @fd (O_APPEND, non-blocking) without ever waiting: what the file
 * does not take now (EAGAIN) stays buffered. Returns EKV_OK, EKV_EAGAIN (some left), or
 * EKV_ERROR with errno set: then the buffer is dropped and *@dropped holds its line count.
 */
int ekv_alog_flush(struct ekv_alog *a, int fd, size_t *dropped);

/**
 * Copies @len bytes of @src to @dst (capacity @cap, NUL-terminated), escaping what is not
 * printable ASCII, '"' and '\\' as \xHH; stops early (whole escapes only) when @dst is full.
 * Returns the bytes of @src consumed.
 */
size_t ekv_log_escape(char *dst, size_t cap, const char *src, size_t len);

#define EKV_RL_SLOTS 256       /* clients remembered (direct-mapped) */
#define EKV_RL_WINDOW_MS 10000 /* at most one line per client per window */
#define EKV_RL_MAX_LINES 20    /* and this many per window for all clients together */

struct ekv_ratelimit_slot {
    char peer[48];
    uint64_t last_ms;    /* when this client's last line was logged */
    unsigned suppressed; /* its lines suppressed since */
};

/** Per-client rate limiting of log lines. Zero it to initialize. Not thread-safe. */
struct ekv_ratelimit {
    struct ekv_ratelimit_slot slots[EKV_RL_SLOTS];
    uint64_t window_ms; /* start of the current window of the overall cap */
    unsigned lines;     /* lines allowed in it */
    unsigned capped;    /* lines refused by the overall cap in it */
    unsigned capped_prev; /* refused in the windows since the last report */
};

/**
 * Whether a line about client @peer may be logged at @now_ms (monotonic). When it may:
 * *@suppressed = this client's lines suppressed since its last one, *@capped = lines of any
 * client refused by the overall cap since the last report (both to be mentioned in the line).
 */
bool ekv_ratelimit_allow(struct ekv_ratelimit *rl, const char *peer, uint64_t now_ms,
                         unsigned *suppressed, unsigned *capped);

/* ---------------------------------------------------------------- the process and its workers
 * (server.c, worker.c, reload.c): what the three files share */

#define NLISTENERS 3         /* EKV_API_TAG_MAIN, EKV_API_TAG_ADMIN, then LIS_TLS */
#define LIS_TLS 2            /* tls-listen: routes and limits of EKV_API_TAG_MAIN, over TLS */
#define TICKET_ROTATE_S 3600 /* a new session ticket key every hour (the last 3 decrypt) */
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
    struct ekv_http_tls *tls; /* tls-listen's context, loaded with this configuration (owned),
                               * or NULL */
    atomic_uint refs;      /* the main thread's, each worker's, each posted one */
};

struct listener {
    struct worker *w;
    int tag;
    bool tls;            /* tls-listen: connections are adopted with the snapshot's context */
    struct evconnlistener *lis;
    struct event *pause; /* re-enables accepting after a descriptor shortage */
    struct ekv_log_limit warn; /* its operational warnings, once in a while */
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
    /* redis-sentinel://: the Sentinels (hosts resolved, their credentials), the names they
     * were given (verified over TLS), and the master they name, which every link follows */
    struct ekv_conf_origin sentinel_addrs[EKV_CONF_MAX_NODES];
    /* redis-cluster://: the seed nodes (hosts resolved, the URL's credentials) */
    struct ekv_conf_origin seed_addrs[EKV_CONF_MAX_NODES];
    size_t nseeds;
    char *sentinel_names[EKV_CONF_MAX_NODES];
    size_t nsentinels;
    struct ekv_sentinel *sentinel; /* on the main thread's loop */
    char *sentinel_master;         /* its name (the server's copy) */
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
    struct ekv_coherence *coh; /* the invalidation links, on the main thread's loop; NULL
                                  without a cache */
    struct ekv_origin_tls *origin_tls; /* rediss://: shared by every origin connection */
    struct ekv_http_tickets *tickets;  /* tls-listen's session ticket keys (every context's) */
    struct ekv_keyspace *layout; /* the key layout, for the invalidation link (which borrows its
                                    prefixes and heartbeat channel); NULL without a cache */
    struct ekv_metrics *metrics;
};


/* server.c */
/**
 * tls-listen's context from the files of @conf (NULL in *@out without tls-listen), with the
 * ticket keys @tk (may be NULL). Errors name the directive where it was set ("FILE:LINE:
 * tls-cert-file: ..."); a warning (an expired certificate) is logged.
 */
int ekv_server_tls_make(const struct ekv_conf *conf, struct ekv_http_tickets *tk,
                        struct ekv_http_tls **out, char *err, size_t errlen);

/* reload.c */
/** A snapshot of @conf (taken over) with the access log @fd, generation @gen, one reference. */
struct snapshot *ekv_snap_new(struct ekv_conf *conf, int fd, uint64_t gen);
void ekv_snap_ref(struct snapshot *s);
/** Drops a reference; the last one frees the configuration and closes the access log. */
void ekv_snap_unref(struct snapshot *s);
/** Opens @conf's access log (-1 in *@fd when there is none). */
int ekv_open_access_log(const struct ekv_conf *conf, int *fd, char *err, size_t errlen);
/** Main thread: a worker has applied a snapshot (reports when all have). */
void ekv_reload_on_ack(evutil_socket_t fd, short what, void *arg);
/** Main thread: SIGHUP. */
void ekv_reload_on_hup(evutil_socket_t sig, short what, void *arg);

/* worker.c */
/** Sets up worker @id of @srv (not started). EKV_OK, or EKV_ERROR with @err. */
int ekv_worker_init(struct ekv_server *srv, struct worker *w, unsigned id, char *err,
                    size_t errlen);
void ekv_worker_deinit(struct worker *w);
/** The worker thread. */
void *ekv_worker_main(void *arg);
/** Runs @fn on @w's loop (from the main thread). */
void ekv_worker_post(struct worker *w, event_callback_fn fn);
/** On the worker's loop: apply the posted snapshot; stop accepting and drain; close all now. */
void ekv_worker_apply_conf(evutil_socket_t fd, short what, void *arg);
void ekv_worker_drain(evutil_socket_t fd, short what, void *arg);
void ekv_worker_stop_now(evutil_socket_t fd, short what, void *arg);

#endif /* EDGEKV_SERVER_INT_H */
