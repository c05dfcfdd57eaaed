/* coherence.h - which cached entries may still be served: the invalidation links of the
 * origin's nodes and the epochs of its slots.
 *
 * A standalone origin (or the master Sentinels name) has one invalidation link (inval.h), and
 * every entry depends on it: while it is fresh, hits are served; its flushes forget everything.
 * A Redis Cluster has one link per master, since tracking is per node, and an entry depends on
 * the link of the master that serves its slot and on that slot's epoch, which is bumped whenever
 * the slot may have changed behind our back: its master's link flushed (a new subscription after
 * a loss, FLUSHALL, a replica's full resync) or the slot served by another master (a failover,
 * resharding, a forced move: Redis 7.0 sends no invalidation for the last). An entry records the
 * epoch of its slot when its read was sent (ekv_coherence_epoch()) and is served only while that
 * is still the epoch: every entry of a slot ends in O(1), never with a walk of the cache.
 * Invalidations from any node evict their key.
 *
 * The links and the slot map live on one loop (the main one); the getters are for any thread. */
#ifndef EDGEKV_COHERENCE_H
#define EDGEKV_COHERENCE_H

#include "edgekv/common.h"
#include "edgekv/inval.h"

struct event_base;
struct ekv_coherence;

struct ekv_coherence_hooks {
    /** A key under one of the prefixes was written or expired (from any node). */
    void (*on_key)(const char *key, size_t len, void *arg);
    /** Everything may have changed (standalone: a new subscription, FLUSHALL). */
    void (*on_flush)(void *arg);
    /** A cluster: the epochs of some slots were bumped (their entries are dead already); what
     * is cached without a slot (store names) must be forgotten. */
    void (*on_slots)(void *arg);
    void *arg;
};

struct ekv_coherence_opts {
    /** Every link's options: prefixes, heartbeat, stall, timeout, tls; for a standalone origin
     * also addr or sentinel. Borrowed (the prefixes and the channel too). */
    struct ekv_inval_opts inval;
    /** A Redis Cluster: its seed nodes (numeric hosts, the URL's credentials); borrowed. */
    const struct ekv_conf_origin *seeds;
    size_t nseeds;
    /** A cluster: how often the slot map is read (0: every second). */
    uint64_t refresh_ms;
};

/** Starts connecting on @base at once. Never NULL. */
struct ekv_coherence *ekv_coherence_new(struct event_base *base,
                                        const struct ekv_coherence_opts *opts,
                                        const struct ekv_coherence_hooks *hooks);
/** On @base's thread. NULL is a no-op. */
void ekv_coherence_free(struct ekv_coherence *c);

/** Whether hits of @slot (any value for a standalone origin) may be served at @now_ms: the link
 * of the master that serves it is subscribed and its fence younger than @max_staleness_ms.
 * Any thread. */
bool ekv_coherence_fresh(const struct ekv_coherence *c, unsigned slot, uint64_t now_ms,
                         uint64_t max_staleness_ms);
/** The epoch of @slot (always 0 for a standalone origin). Any thread. */
uint32_t ekv_coherence_epoch(const struct ekv_coherence *c, unsigned slot);
/** Whether every slot is served by a master whose link is fresh (/readyz). Any thread. */
bool ekv_coherence_all_fresh(const struct ekv_coherence *c, uint64_t now_ms,
                             uint64_t max_staleness_ms);

struct ekv_coherence_stats {
    unsigned links, links_live;  /* invalidation links (one per master), subscribed */
    unsigned slots_served;       /* slots with a master (16384 when all is well) */
    uint64_t slot_moves;         /* slots seen served by another master */
    uint64_t failovers;          /* masters seen losing every slot to another */
    uint64_t keys, flushes, losses; /* summed over the links (inval.h) */
    uint64_t oldest_fence_ms;    /* the oldest fence of a live link */
    char error[160];             /* why a link is down, if one is */
};

/** A snapshot. Any thread. */
void ekv_coherence_stats(const struct ekv_coherence *c, struct ekv_coherence_stats *st);

/** One master of a cluster and its invalidation link. */
struct ekv_coherence_node {
    char addr[72];                  /* "host:port" ("[v6]:port") */
    unsigned slots;                 /* slots it serves in the map */
    bool live;                      /* its link is subscribed */
    uint64_t fence_ms;              /* monotonic send time of its last acknowledged heartbeat */
    uint64_t keys, flushes, losses; /* its link's counters (inval.h) */
};

/** A cluster's masters (every one that ever had a link), at most @max into @out; returns how
 * many there are (0 for a standalone origin). Any thread. */
size_t ekv_coherence_nodes(const struct ekv_coherence *c, struct ekv_coherence_node *out,
                           size_t max);

/** Someone saw the slot map change (a worker's map read again or patched by MOVED): read it now
 * rather than at the next periodic refresh (at most every 100 ms). Any thread; a no-op for a
 * standalone origin. */
void ekv_coherence_poke(struct ekv_coherence *c);

#endif /* EDGEKV_COHERENCE_H */
