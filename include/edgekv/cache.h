/* cache.h - the edge cache: a pure data structure (no I/O, no clock reads, no logging) shared by
 * the worker threads. Callers pass `now_ms` (a monotonic clock), so tests drive time.
 *
 * - Sharded, one mutex per shard; a lookup never waits on I/O.
 * - Entries are immutable and reference counted: a response still being written keeps its
 *   value alive after eviction or invalidation.
 * - Eviction under a byte budget that counts everything (entries with their allocator rounding,
 *   the hash tables): GCLOCK (a CLOCK hand with a small per-entry use counter), which keeps a
 *   Zipf workload's hot keys at least as well as exact LRU, with no list pointers per entry.
 * - Misses are coalesced: the first miss installs a fill placeholder and leads the origin read;
 *   later misses join it as waiters. Invalidation removes the entry or poisons the fill (a
 *   poisoned fill answers its waiters but is not stored, and nobody joins it any more).
 * - ekv_cache_flush() is O(1): it moves to a new epoch, and entries or fills of an older epoch
 *   are never served or stored (they are reclaimed lazily by the hand).
 */
#ifndef EDGEKV_CACHE_H
#define EDGEKV_CACHE_H

#include "edgekv/common.h"

struct ekv_cache;
struct ekv_cache_entry; /* immutable, reference counted */
struct ekv_cache_fill;  /* an in-flight origin read (placeholder) */

struct ekv_cache_limits {
    uint64_t max_bytes; /* budget, everything included; 0 = nothing is ever stored */
    unsigned nshards;   /* 0 = a default: up to 64, fewer if a shard could not hold
                           4 items of max_item_bytes; rounded up to a power of two */
    uint64_t max_item_bytes; /* the largest entry callers will store (for the default) */
    uint64_t seed;      /* hash seed (hash flooding): pass random bits */
};

/** What an entry holds; an input of ekv_cache_entry_new(). */
struct ekv_cache_item {
    const void *value;
    size_t value_len;
    const char *meta; /* metadata (may be NULL) */
    size_t meta_len;
    uint64_t generation;
    int64_t last_modified_ms;  /* wall clock, for Last-Modified */
    bool negative;             /* a cached 404 */
    uint64_t fetched_ms;       /* when it was read from the origin (for Age) */
    uint64_t expires_ms;       /* when the cache stops serving it: min(item TTL, cache-max-ttl) */
    uint64_t item_expires_ms;  /* the item's own expiry (0 = none): never served past it */
    uint32_t tag;              /* the caller's, kept as is (the coherence epoch of its slot) */
};

/** A waiter joined to a fill; embedded in the caller's own structure. */
struct ekv_cache_waiter {
    struct ekv_cache_waiter *next;
};

enum ekv_cache_lookup_result {
    EKV_CACHE_HIT = 0, /* *entry holds a new reference */
    EKV_CACHE_LEAD,    /* a miss: *fill was installed; the caller reads the origin and finishes it */
    EKV_CACHE_JOINED,  /* a miss with a fill in flight: the waiter was queued on it */
    EKV_CACHE_MISS,    /* a miss, and no fill could be installed (no budget, or @flags) */
};

#define EKV_CACHE_NO_JOIN 1u  /* bypass (no-cache): lead a new fill, replacing any in flight */
#define EKV_CACHE_NO_FILL 2u  /* look up only: never install or join a fill */

/** Returns NULL if @limits are invalid. Aborts on OOM. */
struct ekv_cache *ekv_cache_new(const struct ekv_cache_limits *limits);
/** Frees the cache; entries still referenced stay valid until released. Fills still in flight
 * must have been finished. NULL is a no-op. */
void ekv_cache_free(struct ekv_cache *cache);

/**
 * Makes an entry (reference count 1, the caller's) holding copies of @key and @item's data.
 * Returns NULL if @key, the value or the metadata are too large for the entry format
 * (key > 4095 bytes, metadata > 4095, value > 4 GiB; the API's own limits are lower).
 */
struct ekv_cache_entry *ekv_cache_entry_new(const char *key, size_t keylen,
                                            const struct ekv_cache_item *item);
/** Adds a reference. */
void ekv_cache_entry_ref(struct ekv_cache_entry *e);
/** Drops a reference; the last one frees the entry. Any thread. NULL is a no-op. */
void ekv_cache_entry_release(struct ekv_cache_entry *e);
/** Accessors (valid while a reference is held). */
const char *ekv_cache_entry_key(const struct ekv_cache_entry *e, size_t *len);
const void *ekv_cache_entry_value(const struct ekv_cache_entry *e, size_t *len);
const char *ekv_cache_entry_meta(const struct ekv_cache_entry *e, size_t *len);
uint64_t ekv_cache_entry_generation(const struct ekv_cache_entry *e);
uint32_t ekv_cache_entry_tag(const struct ekv_cache_entry *e);
int64_t ekv_cache_entry_last_modified_ms(const struct ekv_cache_entry *e);
bool ekv_cache_entry_negative(const struct ekv_cache_entry *e);
uint64_t ekv_cache_entry_expires_ms(const struct ekv_cache_entry *e);
uint64_t ekv_cache_entry_item_expires_ms(const struct ekv_cache_entry *e);
/** Seconds since the entry was read from the origin (to the second; for the Age header). */
uint64_t ekv_cache_entry_age_s(const struct ekv_cache_entry *e, uint64_t now_ms);
/** Bytes the entry costs the budget (allocation included). */
size_t ekv_cache_entry_cost(const struct ekv_cache_entry *e);

/**
 * Looks @key up at @now_ms. A fresh entry of the current epoch is a HIT. Otherwise, unless
 * @flags say not to: with a fill in flight for @key (current epoch, not poisoned) @waiter is
 * queued on it (JOINED; finishing the fill returns it); else a new fill is installed (LEAD).
 */
enum ekv_cache_lookup_result ekv_cache_lookup(struct ekv_cache *cache, const char *key,
                                              size_t keylen, uint64_t now_ms, unsigned flags,
                                              struct ekv_cache_entry **entry,
                                              struct ekv_cache_fill **fill,
                                              struct ekv_cache_waiter *waiter);

/**
 * An entry of the current epoch whose item has not expired (@now_ms < item_expires_ms), even if
 * its cache TTL has passed: for stale-if-error. A new reference, or NULL.
 */
struct ekv_cache_entry *ekv_cache_lookup_stale(struct ekv_cache *cache, const char *key,
                                               size_t keylen, uint64_t now_ms);

/**
 * Finishes @fill (which is freed). If @e is not NULL and the fill is still the current one for
 * its key (not poisoned, not replaced, same epoch) and @e is not already expired, @e is stored
 * (the cache takes its own reference; @e stays the caller's). Returns the fill's waiters (in
 * join order, for the caller to answer) in *@waiters, and whether @e was stored.
 * If @e is NULL (the origin read failed) and @stale is not NULL, *@stale receives the expired
 * entry the fill replaced if its item is still alive at @now_ms and it is of the current epoch
 * (a reference for stale-if-error; the caller releases it), else NULL.
 */
bool ekv_cache_fill_finish(struct ekv_cache *cache, struct ekv_cache_fill *fill,
                           struct ekv_cache_entry *e, uint64_t now_ms,
                           struct ekv_cache_waiter **waiters, struct ekv_cache_entry **stale);

/** Removes @key's entry and poisons its fill, if any. Returns whether something was there. */
bool ekv_cache_invalidate(struct ekv_cache *cache, const char *key, size_t keylen);

/** Forgets everything at once (O(1)): a new epoch. Fills in flight will not be stored. */
void ekv_cache_flush(struct ekv_cache *cache);

struct ekv_cache_stats {
    uint64_t entries;      /* stored entries (older epochs included until reclaimed) */
    uint64_t bytes;        /* bytes charged to the budget */
    uint64_t max_bytes;
    uint64_t fills;        /* fills in flight */
    uint64_t evict_lru;    /* evicted to make room */
    uint64_t evict_ttl;    /* reclaimed after their TTL */
    uint64_t evict_inval;  /* removed by ekv_cache_invalidate() */
    uint64_t evict_flush;  /* reclaimed after ekv_cache_flush() */
    uint64_t flushes;
};

/** The budget of one shard: no entry larger than this is ever stored. */
uint64_t ekv_cache_shard_bytes(const struct ekv_cache *cache);

/** Sums the shards' counters (takes each shard's lock briefly). */
void ekv_cache_stats(struct ekv_cache *cache, struct ekv_cache_stats *st);

/** The seeded hash the cache uses (SipHash-1-3), exposed for tests. */
uint64_t ekv_cache_hash(const struct ekv_cache *cache, const char *key, size_t len);

#endif /* EDGEKV_CACHE_H */
