/* origin.h - the Redis origin as seen by one worker thread: connections of its own on the
 * worker's loop (bufferevents, hiredis's reply reader) - one to a standalone Redis or to the
 * master Sentinels name, or one per master of a Redis Cluster, each command routed by its key's
 * slot and its redirections followed - with connect and per-command deadlines, reconnection
 * with jittered exponential backoff, AUTH/SELECT on every connect, Lua scripts run with EVALSHA
 * (loaded on every connect, EVAL-free NOSCRIPT recovery) and pipelines of commands answered as
 * one. It knows nothing of HTTP. Loop affinity: every function runs on the loop's thread. */
#ifndef EDGEKV_ORIGIN_H
#define EDGEKV_ORIGIN_H

#include "edgekv/common.h"

struct event_base;
struct redisReply;
struct ekv_conf_origin;
struct ekv_origin;
struct ekv_origin_op;

/** A Lua script the origin runs; @sha is filled by ekv_origin_new(). */
struct ekv_origin_script {
    const char *name; /* for logs */
    const char *body;
    char sha[41];
};

/* ---- TLS to the origin (rediss://; src/origin/tls.c) */

struct ekv_origin_tls;

struct ekv_origin_tls_opts {
    const char *ca_file;     /* PEM CA bundle; NULL: the system's trust store */
    const char *cert_file;   /* client certificate chain (PEM), or NULL */
    const char *key_file;    /* its key (PEM); set exactly when cert_file is */
    const char *server_name; /* the name to verify and send as SNI; NULL: the origin's host */
    bool verify;             /* false: accept any certificate (tests only) */
};

/** A client TLS context for every connection to the origin, shared by all threads (read-only
 * once made). Loads the files now; NULL with "directive: reason" in @err when one does not
 * load or the key does not match the certificate. */
struct ekv_origin_tls *ekv_origin_tls_new(const struct ekv_origin_tls_opts *opts, char *err,
                                          size_t errlen);
/** After every connection using it is gone. NULL is a no-op. */
void ekv_origin_tls_free(struct ekv_origin_tls *tls);
/** Whether certificates are verified (origin-tls-verify). */
bool ekv_origin_tls_verifies(const struct ekv_origin_tls *tls);

/** The Redis Cluster slot of the @len bytes at @key (CRC16 of the key or of its hash tag),
 * 0..16383: where a command on that key is routed. */
unsigned ekv_origin_keyslot(const char *key, size_t len);
/** CRC16-XMODEM (Redis Cluster's: polynomial 0x1021, initial 0) of the @len bytes at @s. */
uint16_t ekv_origin_crc16(const char *s, size_t len);

/* ---- the master that Sentinels name (redis-sentinel://; src/origin/sentinel.c) */

struct ekv_sentinel;

struct ekv_sentinel_opts {
    const struct ekv_conf_origin *sentinels; /* @nsentinels addresses (numeric hosts) with the
                                              * Sentinels' credentials; borrowed */
    size_t nsentinels;
    const char *master_name;             /* borrowed */
    const struct ekv_conf_origin *data;  /* the data nodes' user, password and db; borrowed */
    const struct ekv_origin_tls *tls;    /* borrowed; NULL: plain connections */
    uint64_t timeout_ms;                 /* connect and per-reply deadline */
    uint64_t check_ms;                   /* how often ROLE and the Sentinels are asked (1 s) */
};

/**
 * Follows the master that the Sentinels name, on @base: asks them in turn, listens to
 * +switch-master on each, and publishes a node only once ROLE there says master (and withdraws
 * it the moment the Sentinels name another or ROLE says otherwise). Links made with it
 * (ekv_origin_new()'s and ekv_inval_new()'s opts.sentinel) connect to the published master,
 * check ROLE on every connect, and drop a connection made under an older epoch. Never NULL.
 */
struct ekv_sentinel *ekv_sentinel_new(struct event_base *base, const struct ekv_sentinel_opts *opts);
/** On @base's thread, after every link that follows it is freed. NULL is a no-op. */
void ekv_sentinel_free(struct ekv_sentinel *s);
/** The published master (host copied to @host; credentials and db borrowed) and the epoch,
 * or false with "sentinel: no master known ..." in @why. Any thread. */
bool ekv_sentinel_master(const struct ekv_sentinel *s, struct ekv_conf_origin *out, char *host,
                         size_t hostlen, uint64_t *epoch, char *why, size_t whylen);
/** Bumped on every change of the published master (another node, or none). Any thread. */
uint64_t ekv_sentinel_epoch(const struct ekv_sentinel *s);
/** A follower saw ROLE say the master is not one: ask again now. Any thread. */
void ekv_sentinel_recheck(struct ekv_sentinel *s);

struct ekv_sentinel_stats {
    bool known;               /* a master is published */
    char master[80];          /* "host:port" ("" when none) */
    char why[200];            /* why none is ("" when one is) */
    uint64_t epoch;
    uint64_t failovers;       /* times the published master moved to another node */
    unsigned sentinels_up;    /* Sentinels whose +switch-master subscription is up */
    unsigned sentinels_total;
};

/** A snapshot. Any thread. */
void ekv_sentinel_stats(const struct ekv_sentinel *s, struct ekv_sentinel_stats *st);

struct ekv_origin_opts {
    const struct ekv_conf_origin *addr; /* borrowed; host must be a numeric address */
    struct ekv_sentinel *sentinel;      /* borrowed; set: follow its master (addr unused) */
    const struct ekv_conf_origin *seeds; /* Redis Cluster: @nseeds seed nodes (numeric hosts;
                                          * the first one's user and password serve for every
                                          * node); borrowed. 0 seeds: not a cluster */
    size_t nseeds;
    uint64_t refresh_ms;                /* Redis Cluster: the slot map is read this often
                                         * anyway (0: every 10 s) */
    const struct ekv_origin_tls *tls;   /* borrowed; NULL: plain connections */
    uint64_t timeout_ms;                /* connect and per-command deadline */
    struct ekv_origin_script *scripts;  /* borrowed; SHA-1s are written into it */
    const char *const *setup;           /* a command (copied) run on every connection after the
                                         * scripts are loaded and before any other: an error
                                         * reply drops the connection; NULL: none */
    int setup_argc;
    size_t nscripts;
    const char *label;                  /* for logs, e.g. "worker 0" */
};

/**
 * The answer to a command. @status is EKV_OK with @reply (which may be a Redis error reply:
 * type REDIS_REPLY_ERROR), EKV_ECLOSED (not connected, or the connection was lost) or
 * EKV_ETIMEDOUT (no answer within the deadline: the connection is then reset). @reply is
 * borrowed: it is freed when the callback returns, so copy what you keep (and never modify
 * it: nil and "+OK" replies are shared, static objects). Called exactly once per
 * command, never before ekv_origin_cmd()/ekv_origin_eval()/ekv_origin_pipeline() has returned, and
 * not at all after ekv_origin_cancel().
 */
typedef void ekv_origin_cb(int status, const struct redisReply *reply, void *arg);

/** What an answered op was, for the observer. */
enum ekv_origin_kind {
    EKV_ORIGIN_CMD = 0,  /* ekv_origin_cmd(): the id is 0 */
    EKV_ORIGIN_SCRIPT,   /* ekv_origin_eval(): the id is the script number */
    EKV_ORIGIN_PIPELINE, /* ekv_origin_pipeline(): the id is the caller's tag */
};

/** Sees every answered op (for metrics): its kind and id, the status, whether Redis answered with
 * an error (for a pipeline: to one of its commands), and the latency in microseconds. */
typedef void ekv_origin_observe_cb(enum ekv_origin_kind kind, size_t id, int status,
                                   bool error_reply, uint64_t latency_us, void *arg);

/** Called on the loop thread whenever the connection comes up (true) or goes down (false). */
typedef void ekv_origin_state_cb(bool connected, void *arg);

/** Starts connecting at once. Never NULL (aborts on OOM). */
struct ekv_origin *ekv_origin_new(struct event_base *base, const struct ekv_origin_opts *opts);
/** Closes the connection; pending commands are answered with EKV_ECLOSED before it returns.
 * Must not be called from inside an ekv_origin_cb. NULL is a no-op. */
void ekv_origin_free(struct ekv_origin *o);
/** Registers a connection state callback (NULL to remove). */
void ekv_origin_set_state_cb(struct ekv_origin *o, ekv_origin_state_cb *cb, void *arg);
/** Registers an observer (NULL to remove). */
void ekv_origin_set_observer(struct ekv_origin *o, ekv_origin_observe_cb *cb, void *arg);
/** True while the connection is up (AUTH and SELECT accepted). The one function any thread may
 * call (/readyz and /metrics look at every worker's origin). */
bool ekv_origin_connected(const struct ekv_origin *o);
/** Why the origin is not connected ("" when it is, or nothing failed yet): the last
 * connection's failure, e.g. "tls: certificate verify failed: ...". Any thread. */
void ekv_origin_error(const struct ekv_origin *o, char *buf, size_t len);
/** A Redis Cluster origin's redirections followed and slot maps fetched (all 0 otherwise). */
struct ekv_origin_cluster_stats {
    uint64_t moved, ask, tryagain; /* TRYAGAIN and CLUSTERDOWN */
    uint64_t refreshes;
};

/** Any thread. */
void ekv_origin_cluster_stats(const struct ekv_origin *o, struct ekv_origin_cluster_stats *st);

/** A Redis Cluster origin's slot map changed (read again, or patched by a MOVED). */
typedef void ekv_origin_map_cb(void *arg);
/** Registers the map callback (NULL to remove); it runs on the origin's loop. */
void ekv_origin_set_map_cb(struct ekv_origin *o, ekv_origin_map_cb *cb, void *arg);
/** A Redis Cluster origin reads the slot map again now (unless a read is under way). A no-op
 * otherwise. Loop thread. */
void ekv_origin_refresh(struct ekv_origin *o);

/** One node of a Redis Cluster origin, as ekv_origin_nodes() sees it. */
struct ekv_origin_node_stats {
    char addr[72];     /* "host:port" ("[v6]:port") */
    bool up;           /* the connection is up */
    bool serving;      /* it serves slots in the map */
    uint64_t commands; /* commands sent to it (resends included) */
};

/** A Redis Cluster origin's nodes (every node it ever knew: masters, and former ones that now
 * serve no slot), at most @max of them into @out. Returns how many there are (0 when not a
 * cluster). Any thread. */
size_t ekv_origin_nodes(const struct ekv_origin *o, struct ekv_origin_node_stats *out, size_t max);
/** The node that serves @slot now (an index for ekv_origin_node_addr()), or -1 (no master, or
 * not a cluster). Node indexes stay valid as long as the origin. Loop thread. */
int ekv_origin_slot_node(const struct ekv_origin *o, unsigned slot);
/** The address (host numeric, credentials of the URL) of node @i, or NULL. Loop thread. */
const struct ekv_conf_origin *ekv_origin_node_addr(const struct ekv_origin *o, size_t i);

/** Number of commands sent and not yet answered. */
size_t ekv_origin_pending(const struct ekv_origin *o);

/**
 * Sends one command (@argv/@argvlen are copied). While the origin is down the callback gets
 * EKV_ECLOSED on the next loop turn. Returns a handle for ekv_origin_cancel(); never NULL.
 */
struct ekv_origin_op *ekv_origin_cmd(struct ekv_origin *o, ekv_origin_cb *cb, void *arg, int argc,
                                     const char **argv, const size_t *argvlen);

/**
 * Runs script number @script of the opts' table: EVALSHA sha @nkeys @argv... (the @nkeys first
 * arguments are keys). On NOSCRIPT (e.g. after SCRIPT FLUSH) it loads the script and retries
 * once, transparently.
 */
struct ekv_origin_op *ekv_origin_eval(struct ekv_origin *o, size_t script, ekv_origin_cb *cb,
                                      void *arg, int nkeys, int argc, const char **argv,
                                      const size_t *argvlen);

/** One command of a pipeline: @argc arguments, lengths in @argvlen (NULL: strlen of each). */
struct ekv_origin_argv {
    int argc;
    const char **argv;
    const size_t *argvlen;
};

/** The most commands one pipeline holds. */
#define EKV_ORIGIN_PIPELINE_MAX 4

/**
 * Sends the @ncmds commands of @cmds (copied; 1 to EKV_ORIGIN_PIPELINE_MAX) back to back, in one
 * write, as one op: timed, failed fast and canceled like one command. The callback gets an array
 * with each command's reply in order (each may be an error reply: WRONGTYPE, NOPERM, ...). Not a
 * transaction: Redis runs each command as it comes, and another client's command may run between
 * two of them (the caller must be able to tell, or not care). No reply is copied. @tag reaches the observer as the id of an
 * EKV_ORIGIN_PIPELINE op. Never NULL.
 */
struct ekv_origin_op *ekv_origin_pipeline(struct ekv_origin *o, size_t tag, ekv_origin_cb *cb,
                                          void *arg, size_t ncmds,
                                          const struct ekv_origin_argv *cmds);

/** The first Redis error in a pipeline's reply @reply (an element of its array), or NULL. */
const struct redisReply *ekv_origin_pipeline_error(const struct redisReply *reply);

/** Detaches the caller: its callback will not be called. The command itself still completes
 * (or fails) inside the origin, which then frees it. */
void ekv_origin_cancel(struct ekv_origin_op *op);

/* ---- the connection under both the origin and the invalidation link (src/origin/link.c) */

struct ekv_origin_link;

struct ekv_origin_link_hooks {
    /** A new connection was started (AUTH and SELECT are queued): queue your own setup commands
     * now (ekv_origin_link_sendv()) and call ekv_origin_link_ready() once they are answered. */
    void (*on_open)(struct ekv_origin_link *link, void *arg);
    /** The next reply on the connection, in order (the link's own AUTH/SELECT replies excepted).
     * Owned by the callee: free it with ekv_origin_reply_free(). The hook may reset the link. */
    void (*on_reply)(struct redisReply *reply, void *arg);
    /** The connection is gone (it had become ready or not); a reconnect is scheduled. No reply
     * of that connection will follow. */
    void (*on_close)(bool was_ready, const char *why, void *arg);
    void *arg;
};

/**
 * A self-healing connection of our own on @base to @addr (borrowed; host numeric), or, with
 * @follow, to the master that it names (ROLE checked first on every connection): a
 * bufferevent for the bytes (TLS when @tls is not NULL: borrowed, it must outlive the link),
 * hiredis's reader for the replies; connect (and handshake) and setup deadline
 * @timeout_ms, AUTH/SELECT first, reconnect with capped exponential backoff and full jitter,
 * rate-limited logging under @label (copied). Starts connecting at once.
 */
struct ekv_origin_link *ekv_origin_link_new(struct event_base *base,
                                            const struct ekv_conf_origin *addr,
                                            struct ekv_sentinel *follow,
                                            const struct ekv_origin_tls *tls,
                                            uint64_t timeout_ms, const char *label,
                                            const struct ekv_origin_link_hooks *hooks);
/** Drops the connection (on_close runs) and frees. NULL is a no-op. */
void ekv_origin_link_free(struct ekv_origin_link *link);
/** The owner's setup is complete: the link is up. */
void ekv_origin_link_ready(struct ekv_origin_link *link);
/** Drops the connection and reconnects later: at once (safe inside the link's hooks: no later
 * reply of the connection is delivered), or from the next loop turn if @deferred. */
void ekv_origin_link_reset(struct ekv_origin_link *link, const char *why, bool deferred);
/** Queues one command (@argv copied; lengths in @argvlen, or strlen of each when NULL). Only
 * while a connection exists (ekv_origin_link_connected()). */
void ekv_origin_link_sendv(struct ekv_origin_link *link, int argc, const char *const *argv,
                           const size_t *argvlen);
/** A connection exists: connecting, setting up or up. */
bool ekv_origin_link_connected(const struct ekv_origin_link *link);
/** Up: connected and set up. Any thread may ask. */
bool ekv_origin_link_up(const struct ekv_origin_link *link);
/** Down, or reconnecting after a failure: callers should fail fast rather than queue. */
bool ekv_origin_link_failing(const struct ekv_origin_link *link);
/** The label given at creation. */
const char *ekv_origin_link_label(const struct ekv_origin_link *link);
/** Why the last connection attempt failed or the connection was lost ("" while up or before
 * the first attempt ends), into @buf (@len bytes). Any thread. */
void ekv_origin_link_error(struct ekv_origin_link *link, char *buf, size_t len);
/** Rate limit for repeated log lines: true at most once per 10 s per link (and the first time). */
bool ekv_origin_link_log_now(struct ekv_origin_link *link);
/** Frees a reply handed over by on_reply. NULL is a no-op. */
void ekv_origin_reply_free(struct redisReply *reply);

/** SHA-1 of @len bytes at @data as 40 lower-case hex digits plus NUL in @hex. */
void ekv_sha1_hex(const void *data, size_t len, char hex[41]);

#endif /* EDGEKV_ORIGIN_H */
