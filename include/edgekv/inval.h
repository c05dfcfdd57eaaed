/* inval.h - the invalidation link: one Redis connection per process, on its own loop, that
 * turns Redis client-side-caching invalidations (CLIENT TRACKING ON BCAST ... REDIRECT to
 * itself, SUBSCRIBE __redis__:invalidate) into callbacks, with a heartbeat that acts as a fence.
 *
 * The cache may be trusted only while the link is fresh (ekv_inval_fresh): subscribed, and a
 * heartbeat sent at most max-staleness ago has come back (it travelled behind every invalidation
 * Redis sent before it). A new subscription always starts with on_flush, so nothing cached
 * before a loss survives it. Hooks run on the link's loop thread; the state getters are
 * thread-safe (atomics), for the workers' hit path. */
#ifndef EDGEKV_INVAL_H
#define EDGEKV_INVAL_H

#include "edgekv/common.h"

struct event_base;
struct ekv_conf_origin;
struct ekv_origin_tls;
struct ekv_sentinel;
struct ekv_inval;

struct ekv_inval_hooks {
    /** A key under one of the prefixes was written or expired (a Redis key name). */
    void (*on_key)(const char *key, size_t len, void *arg);
    /** Everything may have changed (a new subscription, FLUSHALL/FLUSHDB): forget it all. */
    void (*on_flush)(void *arg);
    void *arg;
};

struct ekv_inval_opts {
    const struct ekv_conf_origin *addr; /* borrowed; host numeric */
    struct ekv_sentinel *sentinel;       /* borrowed; set: follow its master (addr unused) */
    const struct ekv_origin_tls *tls;    /* borrowed; NULL: a plain connection */
    const char *const *prefixes;         /* tracked key prefixes (must not overlap); borrowed */
    size_t nprefixes;
    const char *heartbeat_channel;       /* a channel of our own, e.g. "<ns>heartbeat" */
    uint64_t heartbeat_ms;               /* how often the fence is renewed */
    uint64_t stall_ms;                   /* an unanswered heartbeat this old: the link is dead */
    uint64_t timeout_ms;                 /* connect and setup deadline */
};

/** Starts connecting on @base at once. Never NULL. */
struct ekv_inval *ekv_inval_new(struct event_base *base, const struct ekv_inval_opts *opts,
                                const struct ekv_inval_hooks *hooks);
/** On the link's loop thread (or after it has stopped). NULL is a no-op. */
void ekv_inval_free(struct ekv_inval *iv);

/** True while subscribed and the last acknowledged heartbeat was sent less than
 * @max_staleness_ms before @now_ms (ekv_clock_now_ms()). Any thread. */
bool ekv_inval_fresh(const struct ekv_inval *iv, uint64_t now_ms, uint64_t max_staleness_ms);

struct ekv_inval_stats {
    bool live;              /* subscribed */
    uint64_t fence_ms;      /* monotonic send time of the last acknowledged heartbeat */
    uint64_t keys;          /* invalidated keys received */
    uint64_t flushes;       /* flushes (new subscriptions, FLUSHALL) */
    uint64_t losses;        /* times the link was lost */
    char error[160];        /* why tracking is refused, if it is ("" otherwise) */
};

/** A snapshot of the link's state and counters. Any thread. */
void ekv_inval_stats(struct ekv_inval *iv, struct ekv_inval_stats *st);

#endif /* EDGEKV_INVAL_H */
