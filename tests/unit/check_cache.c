/* check_cache.c - the edge cache as a pure data structure: hits and misses, TTLs with injected
 * time, coalesced fills, poisoning, epochs, references outliving eviction, byte accounting,
 * table growth (non-power-of-two sizes, sized to the budget), GCLOCK eviction against exact LRU
 * on a Zipf workload, stale-if-error lookups, and a threaded stress run (for the sanitizers). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/cache.h"

#include "testutil.h"

static struct ekv_cache *cache;

static struct ekv_cache *new_cache(uint64_t max_bytes, unsigned nshards)
{
    struct ekv_cache_limits lim = {.max_bytes = max_bytes, .nshards = nshards, .seed = 42};

    return ekv_cache_new(&lim);
}

static struct ekv_cache_entry *make(const char *key, const char *val, uint64_t gen,
                                    uint64_t expires, uint64_t item_expires)
{
    struct ekv_cache_item it = {
        .value = val,
        .value_len = strlen(val),
        .meta = "m",
        .meta_len = 1,
        .generation = gen,
        .last_modified_ms = 1700000000123,
        .expires_ms = expires,
        .item_expires_ms = item_expires,
    };

    return ekv_cache_entry_new(key, strlen(key), &it);
}

/* Leads a fill for @key and finishes it with a new entry; returns whether it was stored. */
static bool put(struct ekv_cache *c, const char *key, const char *val, uint64_t gen,
                uint64_t now, uint64_t expires)
{
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter *w;
    bool stored;

    if (ekv_cache_lookup(c, key, strlen(key), now, EKV_CACHE_NO_JOIN, &hit, &f, NULL) !=
        EKV_CACHE_LEAD)
        return false;
    e = make(key, val, gen, expires, 0);
    stored = ekv_cache_fill_finish(c, f, e, now, &w, NULL);
    ekv_cache_entry_release(e);
    return stored;
}

static enum ekv_cache_lookup_result get(struct ekv_cache *c, const char *key, uint64_t now,
                                        struct ekv_cache_entry **e)
{
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter w;
    enum ekv_cache_lookup_result r = ekv_cache_lookup(c, key, strlen(key), now, EKV_CACHE_NO_FILL,
                                                      e, &f, &w);
    return r;
}

static void setup(void)
{
    cache = new_cache(1 << 20, 4);
    ck_assert_ptr_nonnull(cache);
}

static void teardown(void)
{
    ekv_cache_free(cache);
}

START_TEST(test_entry_accessors)
{
    struct ekv_cache_entry *e = make("{s}:k", "value", 7, 1000, 5000);
    size_t len;

    ck_assert_int_eq(memcmp(ekv_cache_entry_key(e, &len), "{s}:k", 5), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(ekv_cache_entry_value(e, &len), "value", 5), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(ekv_cache_entry_meta(e, &len), "m", 1), 0);
    ck_assert_uint_eq(ekv_cache_entry_generation(e), 7);
    ck_assert_int_eq(ekv_cache_entry_last_modified_ms(e), 1700000000000);
    ck_assert_uint_eq(ekv_cache_entry_expires_ms(e), 1000);
    ck_assert_uint_eq(ekv_cache_entry_item_expires_ms(e), 5000);
    ck_assert(!ekv_cache_entry_negative(e));
    ck_assert_uint_eq(ekv_cache_entry_age_s(e, 1500), 1); /* fetched at 0, TTL 1 s */
    ck_assert_uint_eq(ekv_cache_entry_age_s(e, 900), 0);
    /* 44-byte header (the slot-epoch tag included) + 11 bytes of data: one 80-byte chunk */
    ck_assert_uint_le(ekv_cache_entry_cost(e), 80);
    ekv_cache_entry_release(e);
    e = make("k", "", 1, 1000, 0);
    ck_assert_uint_eq(ekv_cache_entry_item_expires_ms(e), 0); /* no item TTL */
    ekv_cache_entry_release(e);
}
END_TEST

START_TEST(test_miss_fill_hit)
{
    struct ekv_cache_entry *e = NULL;
    size_t len;

    ck_assert_int_eq(get(cache, "a", 0, &e), EKV_CACHE_MISS);
    ck_assert(put(cache, "a", "alpha", 3, 0, 1000));
    ck_assert_int_eq(get(cache, "a", 10, &e), EKV_CACHE_HIT);
    ck_assert_int_eq(memcmp(ekv_cache_entry_value(e, &len), "alpha", 5), 0);
    ck_assert_uint_eq(ekv_cache_entry_generation(e), 3);
    ekv_cache_entry_release(e);
}
END_TEST

START_TEST(test_ttl_with_injected_time)
{
    struct ekv_cache_entry *e;

    ck_assert(put(cache, "t", "v", 1, 100, 600));
    ck_assert_int_eq(get(cache, "t", 599, &e), EKV_CACHE_HIT);
    ekv_cache_entry_release(e);
    ck_assert_int_eq(get(cache, "t", 600, &e), EKV_CACHE_MISS); /* never at or past expiry */
    ck_assert_ptr_null(e);
    /* an entry already expired when its fill finishes is not stored */
    ck_assert(!put(cache, "late", "v", 1, 700, 700));
}
END_TEST

START_TEST(test_coalescing_waiters_in_order)
{
    struct ekv_cache_entry *e, *v;
    struct ekv_cache_fill *f, *f2;
    struct ekv_cache_waiter w1, w2, w3, *list;

    ck_assert_int_eq(ekv_cache_lookup(cache, "c", 1, 0, 0, &e, &f, &w1), EKV_CACHE_LEAD);
    ck_assert_int_eq(ekv_cache_lookup(cache, "c", 1, 0, 0, &e, &f2, &w1), EKV_CACHE_JOINED);
    ck_assert_int_eq(ekv_cache_lookup(cache, "c", 1, 0, 0, &e, &f2, &w2), EKV_CACHE_JOINED);
    ck_assert_int_eq(ekv_cache_lookup(cache, "c", 1, 0, 0, &e, &f2, &w3), EKV_CACHE_JOINED);
    v = make("c", "v", 1, 1000, 0);
    ck_assert(ekv_cache_fill_finish(cache, f, v, 0, &list, NULL));
    ck_assert_ptr_eq(list, &w1);
    ck_assert_ptr_eq(w1.next, &w2);
    ck_assert_ptr_eq(w2.next, &w3);
    ck_assert_ptr_null(w3.next);
    ekv_cache_entry_release(v);
    ck_assert_int_eq(ekv_cache_lookup(cache, "c", 1, 1, 0, &e, &f, &w1), EKV_CACHE_HIT);
    ekv_cache_entry_release(e);
}
END_TEST

START_TEST(test_poisoned_fill_not_stored_and_not_joined)
{
    struct ekv_cache_entry *e, *v;
    struct ekv_cache_fill *f, *f2;
    struct ekv_cache_waiter w1, w2, *list;
    struct ekv_cache_stats st;

    ck_assert_int_eq(ekv_cache_lookup(cache, "p", 1, 0, 0, &e, &f, NULL), EKV_CACHE_LEAD);
    ck_assert_int_eq(ekv_cache_lookup(cache, "p", 1, 0, 0, &e, &f2, &w1), EKV_CACHE_JOINED);
    ck_assert(ekv_cache_invalidate(cache, "p", 1)); /* a write: poisons the fill */
    /* a late request does not join the poisoned fill: it leads a new one */
    ck_assert_int_eq(ekv_cache_lookup(cache, "p", 1, 0, 0, &e, &f2, &w2), EKV_CACHE_LEAD);
    v = make("p", "old", 1, 1000, 0);
    ck_assert(!ekv_cache_fill_finish(cache, f, v, 0, &list, NULL)); /* not stored */
    ck_assert_ptr_eq(list, &w1); /* but its waiter is still answered */
    ekv_cache_entry_release(v);
    ck_assert_int_eq(get(cache, "p", 0, &e), EKV_CACHE_MISS);
    v = make("p", "new", 2, 1000, 0);
    ck_assert(ekv_cache_fill_finish(cache, f2, v, 0, &list, NULL));
    ck_assert_ptr_null(list);
    ekv_cache_entry_release(v);
    ck_assert_int_eq(get(cache, "p", 0, &e), EKV_CACHE_HIT);
    ck_assert_uint_eq(ekv_cache_entry_generation(e), 2);
    ekv_cache_entry_release(e);
    ekv_cache_stats(cache, &st);
    ck_assert_uint_eq(st.fills, 0);
    ck_assert_uint_eq(st.entries, 1);
}
END_TEST

START_TEST(test_bypass_replaces_fill)
{
    struct ekv_cache_entry *e, *v;
    struct ekv_cache_fill *f, *fb;
    struct ekv_cache_waiter *list;

    ck_assert(put(cache, "b", "v1", 1, 0, 1000));
    /* no-cache: leads its own read even over a fresh entry */
    ck_assert_int_eq(ekv_cache_lookup(cache, "b", 1, 0, EKV_CACHE_NO_JOIN, &e, &f, NULL),
                     EKV_CACHE_LEAD);
    ck_assert_int_eq(ekv_cache_lookup(cache, "b", 1, 0, EKV_CACHE_NO_JOIN, &e, &fb, NULL),
                     EKV_CACHE_LEAD);
    v = make("b", "v2", 2, 1000, 0);
    ck_assert(!ekv_cache_fill_finish(cache, f, v, 0, &list, NULL)); /* replaced: not stored */
    ekv_cache_entry_release(v);
    v = make("b", "v3", 3, 1000, 0);
    ck_assert(ekv_cache_fill_finish(cache, fb, v, 0, &list, NULL));
    ekv_cache_entry_release(v);
    ck_assert_int_eq(get(cache, "b", 0, &e), EKV_CACHE_HIT);
    ck_assert_uint_eq(ekv_cache_entry_generation(e), 3);
    ekv_cache_entry_release(e);
}
END_TEST

START_TEST(test_epoch_flush)
{
    struct ekv_cache_entry *e, *v;
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter *list;
    struct ekv_cache_stats st;

    ck_assert(put(cache, "x", "v", 1, 0, 1000));
    ck_assert_int_eq(ekv_cache_lookup(cache, "y", 1, 0, 0, &e, &f, NULL), EKV_CACHE_LEAD);
    ekv_cache_flush(cache);
    ck_assert_int_eq(get(cache, "x", 0, &e), EKV_CACHE_MISS); /* O(1): gone at once */
    v = make("y", "v", 1, 1000, 0);
    ck_assert(!ekv_cache_fill_finish(cache, f, v, 0, &list, NULL)); /* sent before the flush */
    ekv_cache_entry_release(v);
    ck_assert(put(cache, "x", "v2", 2, 0, 1000)); /* the new epoch works as usual */
    ck_assert_int_eq(get(cache, "x", 0, &e), EKV_CACHE_HIT);
    ekv_cache_entry_release(e);
    ekv_cache_stats(cache, &st);
    ck_assert_uint_eq(st.flushes, 1);
}
END_TEST

START_TEST(test_reference_outlives_eviction)
{
    struct ekv_cache_entry *e;
    size_t len;
    const char *val;

    ck_assert(put(cache, "r", "still-here", 1, 0, 1000));
    ck_assert_int_eq(get(cache, "r", 0, &e), EKV_CACHE_HIT);
    ck_assert(ekv_cache_invalidate(cache, "r", 1));
    ekv_cache_flush(cache);
    val = ekv_cache_entry_value(e, &len); /* a slow client is still being sent this */
    ck_assert_int_eq(memcmp(val, "still-here", len), 0);
    ekv_cache_entry_release(e); /* the last reference frees it (ASan/valgrind check) */
}
END_TEST

START_TEST(test_budget_and_accounting)
{
    struct ekv_cache *c = new_cache(64 * 1024, 4);
    struct ekv_cache_stats st;
    char key[32], val[200];
    uint64_t sum = 0;

    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        (void)put(c, key, val, 1, 0, 100000);
        ekv_cache_stats(c, &st);
        ck_assert_uint_le(st.bytes, 64 * 1024); /* never over budget, overhead included */
    }
    ekv_cache_stats(c, &st);
    ck_assert_uint_gt(st.evict_lru, 4000);
    ck_assert_uint_gt(st.entries, 100);
    /* bytes = entry costs + table slots: recount entry by entry */
    for (int i = 0; i < 5000; i++) {
        struct ekv_cache_entry *e;
        snprintf(key, sizeof(key), "key-%d", i);
        if (get(c, key, 0, &e) == EKV_CACHE_HIT) {
            sum += ekv_cache_entry_cost(e);
            ekv_cache_entry_release(e);
        }
    }
    ck_assert_uint_lt(sum, st.bytes);
    ck_assert_uint_ge(sum + 4 * 16 * sizeof(void *), st.bytes - 4 * 1024 * sizeof(void *));
    ekv_cache_free(c);
}
END_TEST

/* Many fills in flight at once, finished in reverse order under a budget that makes each finish
 * evict: evictions shift the slots around the fills still waiting, and each finished entry must
 * land in its own fill's slot, findable under its key, and never in another fill's. */
START_TEST(test_fills_finish_in_their_slots)
{
    enum { N = 300 };
    struct ekv_cache *c = new_cache(24 * 1024, 1);
    struct ekv_cache_fill *fills[N];
    struct ekv_cache_stats st;
    unsigned stored = 0, found = 0;
    char key[32];

    for (int i = 0; i < 120; i++) { /* fill the budget first */
        snprintf(key, sizeof(key), "old-%d", i);
        (void)put(c, key, "an older value of some length", 1, 0, 100000);
    }
    for (int i = 0; i < N; i++) {
        struct ekv_cache_entry *hit;
        snprintf(key, sizeof(key), "new-%d", i);
        ck_assert_int_eq(ekv_cache_lookup(c, key, strlen(key), 0, 0, &hit, &fills[i], NULL),
                         EKV_CACHE_LEAD);
    }
    for (int i = N - 1; i >= 0; i--) {
        struct ekv_cache_entry *e, *got;
        struct ekv_cache_waiter *w;
        const char *k;
        size_t klen;

        snprintf(key, sizeof(key), "new-%d", i);
        e = make(key, "a newer value of some length", 2, 100000, 0);
        if (ekv_cache_fill_finish(c, fills[i], e, 0, &w, NULL)) {
            stored++;
            ck_assert_int_eq(get(c, key, 0, &got), EKV_CACHE_HIT);
            k = ekv_cache_entry_key(got, &klen);
            ck_assert(klen == strlen(key) && memcmp(k, key, klen) == 0);
            ekv_cache_entry_release(got);
        }
        ekv_cache_entry_release(e);
        ekv_cache_stats(c, &st);
        ck_assert_uint_le(st.bytes, 24 * 1024);
        ck_assert_uint_eq(st.fills, (unsigned)i);
    }
    ekv_cache_stats(c, &st);
    ck_assert_uint_gt(stored, 100);
    ck_assert_uint_gt(st.evict_lru, 100);
    /* every entry the shard counts is found under its own key: none lost in a slot, none
     * left behind a fill */
    for (int i = 0; i < N + 120; i++) {
        struct ekv_cache_entry *got;
        if (i < N)
            snprintf(key, sizeof(key), "new-%d", i);
        else
            snprintf(key, sizeof(key), "old-%d", i - N);
        if (get(c, key, 0, &got) == EKV_CACHE_HIT) {
            found++;
            ekv_cache_entry_release(got);
        }
    }
    ck_assert_uint_eq(found, st.entries);
    ekv_cache_free(c);
}
END_TEST

START_TEST(test_gclock_keeps_hot_entries)
{
    struct ekv_cache *c = new_cache(32 * 1024, 1);
    struct ekv_cache_entry *e;
    char key[32];

    ck_assert(put(c, "hot", "v", 1, 0, 100000));
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "cold-%d", i);
        (void)put(c, key, "some value of a few bytes", 1, 0, 100000);
        if (get(c, "hot", 0, &e) == EKV_CACHE_HIT) /* hit between inserts */
            ekv_cache_entry_release(e);
    }
    ck_assert_int_eq(get(c, "hot", 0, &e), EKV_CACHE_HIT);
    ekv_cache_entry_release(e);
    ck_assert_int_eq(get(c, "cold-0", 0, &e), EKV_CACHE_MISS); /* cold ones went first */
    ekv_cache_free(c);
}
END_TEST

START_TEST(test_eviction_reasons)
{
    struct ekv_cache *c = new_cache(16 * 1024, 1);
    struct ekv_cache_stats st;
    char key[32];

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "short-%d", i);
        ck_assert(put(c, key, "v", 1, 0, 10));
    }
    for (int i = 0; i < 150; i++) {
        snprintf(key, sizeof(key), "long-%d", i);
        (void)put(c, key, "a longer value of some sort", 1, 20, 100000);
    }
    ekv_cache_stats(c, &st);
    /* expired entries go whenever the hand passes them (counted as ttl), fresh ones only when
     * unused (lru); every entry is either still there or counted under one reason */
    ck_assert_uint_gt(st.evict_ttl, 0);
    ck_assert_uint_eq(st.evict_ttl + st.evict_lru + st.entries, 250);
    ekv_cache_free(c);
}
END_TEST

START_TEST(test_stale_if_error_lookups)
{
    struct ekv_cache_entry *e, *v, *stale;
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter *list;
    struct ekv_cache_fill *f0;
    struct ekv_cache_entry *h;

    ck_assert_int_eq(ekv_cache_lookup(cache, "s", 1, 0, 0, &h, &f0, NULL), EKV_CACHE_LEAD);
    v = make("s", "old", 1, 100, 1000); /* cache TTL 100 ms, item TTL 1 s */
    ck_assert(ekv_cache_fill_finish(cache, f0, v, 0, &list, NULL));
    ekv_cache_entry_release(v);
    ck_assert_int_eq(get(cache, "s", 150, &e), EKV_CACHE_MISS);
    e = ekv_cache_lookup_stale(cache, "s", 1, 150); /* past cache TTL, item alive */
    ck_assert_ptr_nonnull(e);
    ekv_cache_entry_release(e);
    ck_assert_ptr_null(ekv_cache_lookup_stale(cache, "s", 1, 1000)); /* never past the item */
    /* a fill over the expired entry keeps it for stale-if-error when the origin fails */
    ck_assert_int_eq(ekv_cache_lookup(cache, "s", 1, 150, 0, &e, &f, NULL), EKV_CACHE_LEAD);
    ck_assert(!ekv_cache_fill_finish(cache, f, NULL, 150, &list, &stale));
    ck_assert_ptr_nonnull(stale);
    ck_assert_uint_eq(ekv_cache_entry_generation(stale), 1);
    ekv_cache_entry_release(stale);
}
END_TEST

START_TEST(test_disabled_cache)
{
    struct ekv_cache *c = new_cache(0, 1);
    struct ekv_cache_entry *e;
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter w;

    ck_assert_int_eq(ekv_cache_lookup(c, "k", 1, 0, 0, &e, &f, &w), EKV_CACHE_MISS);
    ck_assert_ptr_null(f);
    ekv_cache_free(c);
}
END_TEST

START_TEST(test_seeded_hash)
{
    struct ekv_cache_limits a = {.max_bytes = 1024, .seed = 1}, b = {.max_bytes = 1024, .seed = 2};
    struct ekv_cache *ca = ekv_cache_new(&a), *cb = ekv_cache_new(&b);

    ck_assert_uint_ne(ekv_cache_hash(ca, "key", 3), ekv_cache_hash(cb, "key", 3));
    ck_assert_uint_eq(ekv_cache_hash(ca, "key", 3), ekv_cache_hash(ca, "key", 3));
    ck_assert_uint_ne(ekv_cache_hash(ca, "key", 3), ekv_cache_hash(ca, "kez", 3));
    ekv_cache_free(ca);
    ekv_cache_free(cb);
}
END_TEST

/* ---------------------------------------------------------------- table growth */

/* Stores @key (value: the key itself) through a fill; returns the entry's cost, 0 if not stored. */
static uint64_t put_cost(struct ekv_cache *c, const char *key)
{
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter *w;
    uint64_t cost = 0;

    if (ekv_cache_lookup(c, key, strlen(key), 0, EKV_CACHE_NO_JOIN, &hit, &f, NULL) !=
        EKV_CACHE_LEAD)
        return 0;
    e = make(key, key, 1, 1000000, 0);
    if (ekv_cache_fill_finish(c, f, e, 0, &w, NULL))
        cost = ekv_cache_entry_cost(e);
    ekv_cache_entry_release(e);
    return cost;
}

static void growth_key(char *buf, size_t size, int i)
{
    /* lengths 3 to 14, so that entries and their keys differ in size and in hash */
    snprintf(buf, size, "g%0*d", 2 + i % 12, i);
}

#define GROWTH_KEYS 30000
#define GROWTH_FILLS 8

/* Every key stored is a HIT with its own value, every key removed a MISS. */
static void check_all(struct ekv_cache *c, const bool *present, int n)
{
    char key[32];

    for (int i = 0; i < n; i++) {
        struct ekv_cache_entry *e = NULL;
        size_t len;
        growth_key(key, sizeof(key), i);
        if (present[i]) {
            ck_assert_msg(get(c, key, 0, &e) == EKV_CACHE_HIT, "key %s lost after %d keys", key, n);
            ck_assert_int_eq(memcmp(ekv_cache_entry_value(e, &len), key, strlen(key)), 0);
            ck_assert_uint_eq(len, strlen(key));
            ekv_cache_entry_release(e);
        } else {
            ck_assert_msg(get(c, key, 0, &e) == EKV_CACHE_MISS, "key %s back after %d keys", key,
                          n);
        }
    }
}

/* Tables grow by half, to sizes that are not powers of two, with homes by multiply-shift,
 * probes that wrap at the end, deletion by backward shift and hash bits in the slots: through
 * many inserts, invalidations and growths (with fills in flight across them), every entry stays
 * findable, and the table stays between 1/2 and 3/4 full. */
START_TEST(test_table_growth_keeps_entries_findable)
{
    struct ekv_cache *c = new_cache(256u << 20, 1);
    bool *present = calloc(GROWTH_KEYS, sizeof(bool));
    struct ekv_cache_fill *fills[GROWTH_FILLS];
    struct ekv_cache_stats st;
    uint64_t sum = 0, fixed, prev_table = 0;
    char key[32];
    unsigned seed = 99, growths = 0;
    int live = 0;

    ekv_cache_stats(c, &st);
    fixed = st.bytes; /* the shard and its first table, 16 slots */
    /* fills in flight hold slots of their own (tagged), and must move with every growth */
    for (int f = 0; f < GROWTH_FILLS; f++) {
        struct ekv_cache_entry *e;
        snprintf(key, sizeof(key), "fill-%d", f);
        ck_assert_int_eq(ekv_cache_lookup(c, key, strlen(key), 0, 0, &e, &fills[f], NULL),
                         EKV_CACHE_LEAD);
    }
    for (int i = 0; i < GROWTH_KEYS; i++) {
        uint64_t table;
        growth_key(key, sizeof(key), i);
        sum += put_cost(c, key);
        present[i] = true;
        live++;
        if (rand_r(&seed) % 3 == 0) { /* invalidate an earlier key: backward shifts */
            int k = (int)((unsigned)rand_r(&seed) % (unsigned)(i + 1));
            struct ekv_cache_entry *e;
            growth_key(key, sizeof(key), k);
            if (present[k]) {
                ck_assert_int_eq(get(c, key, 0, &e), EKV_CACHE_HIT);
                sum -= ekv_cache_entry_cost(e);
                ekv_cache_entry_release(e);
                live--;
            }
            ck_assert(ekv_cache_invalidate(c, key, strlen(key)) == present[k]);
            present[k] = false;
        }
        ekv_cache_stats(c, &st);
        ck_assert_uint_eq(st.entries, (uint64_t)live);
        ck_assert_uint_eq(st.evict_lru + st.evict_ttl, 0);    /* nothing is ever evicted here */
        table = st.bytes - sum - fixed + 16 * sizeof(void *); /* slots, and malloc's rounding */
        if (table != prev_table) {
            growths++;
            prev_table = table;
            check_all(c, present, i + 1);
        }
        /* at most 3/4 full; at least 1/2 once past the first table (a doubling table can be
         * 3/8 full); slack for malloc's rounding (a page, for large tables) */
        ck_assert_uint_ge((table / sizeof(void *) + 2) * 3, (uint64_t)(live + GROWTH_FILLS) * 4);
        if (live > 64)
            ck_assert_uint_le(table / sizeof(void *), (uint64_t)(live + GROWTH_FILLS) * 2 + 520);
        if (i % 1000 == 999)
            check_all(c, present, i + 1);
    }
    ck_assert_uint_ge(growths, 15); /* 16 slots to ~40000 by halves */
    check_all(c, present, GROWTH_KEYS);
    for (int f = 0; f < GROWTH_FILLS; f++) {
        struct ekv_cache_entry *e, *v;
        struct ekv_cache_waiter *list;
        snprintf(key, sizeof(key), "fill-%d", f);
        v = make(key, key, 1, 1000000, 0);
        ck_assert(ekv_cache_fill_finish(c, fills[f], v, 0, &list, NULL));
        ekv_cache_entry_release(v);
        ck_assert_int_eq(get(c, key, 0, &e), EKV_CACHE_HIT);
        ekv_cache_entry_release(e);
    }
    /* everything out again: each removal shifts runs back, across the wrap too */
    for (int i = 0; i < GROWTH_KEYS; i++) {
        growth_key(key, sizeof(key), i);
        ck_assert(ekv_cache_invalidate(c, key, strlen(key)) == present[i]);
        present[i] = false;
        if (i % 5000 == 4999)
            check_all(c, present, GROWTH_KEYS);
    }
    ekv_cache_stats(c, &st);
    ck_assert_uint_eq(st.entries, GROWTH_FILLS);
    ekv_cache_free(c);
    free(present);
}
END_TEST

/* A shard whose budget is the limit sizes its table to what the budget holds: no empty slots
 * paid for by evicting entries, and never over the budget, growths included. */
START_TEST(test_table_sized_to_budget)
{
    const uint64_t budget = 200 * 1024;
    struct ekv_cache *c = new_cache(budget, 1);
    struct ekv_cache_stats st, st0;
    uint64_t sum = 0, table;
    char key[32];

    ekv_cache_stats(c, &st0);
    for (int i = 0; i < 20000; i++) {
        growth_key(key, sizeof(key), i);
        (void)put_cost(c, key);
        ekv_cache_stats(c, &st);
        ck_assert_uint_le(st.bytes, budget);
    }
    ck_assert_uint_gt(st.evict_lru, 10000);
    for (int i = 0; i < 20000; i++) {
        struct ekv_cache_entry *e;
        growth_key(key, sizeof(key), i);
        if (get(c, key, 0, &e) == EKV_CACHE_HIT) {
            sum += ekv_cache_entry_cost(e);
            ekv_cache_entry_release(e);
        }
    }
    table = st.bytes - sum - st0.bytes + 16 * sizeof(void *);
    /* between 2/3 and 3/4 full: grown only as far as the budget could fill it */
    ck_assert_uint_ge((table / sizeof(void *) + 2) * 3, st.entries * 4);
    ck_assert_uint_le(table / sizeof(void *) * 2, st.entries * 3 + 32);
    /* and the budget is used: less than two entries' worth left */
    ck_assert_uint_gt(st.bytes + 2 * sum / st.entries, budget);
    ekv_cache_free(c);
}
END_TEST

/* ---------------------------------------------------------------- GCLOCK vs exact LRU */

#define ZIPF_KEYS 20000
#define ZIPF_REQS 400000

struct lru {
    int *prev, *next;
    bool *in;
    int head, tail, size, cap;
};

static void lru_unlink(struct lru *l, int k)
{
    if (l->prev[k] >= 0)
        l->next[l->prev[k]] = l->next[k];
    else
        l->head = l->next[k];
    if (l->next[k] >= 0)
        l->prev[l->next[k]] = l->prev[k];
    else
        l->tail = l->prev[k];
}

static void lru_push(struct lru *l, int k)
{
    l->prev[k] = -1;
    l->next[k] = l->head;
    if (l->head >= 0)
        l->prev[l->head] = k;
    l->head = k;
    if (l->tail < 0)
        l->tail = k;
}

/* Returns whether @k was a hit; exact LRU with room for l->cap entries. */
static bool lru_access(struct lru *l, int k)
{
    if (l->in[k]) {
        lru_unlink(l, k);
        lru_push(l, k);
        return true;
    }
    if (l->size == l->cap) {
        int victim = l->tail;
        lru_unlink(l, victim);
        l->in[victim] = false;
        l->size--;
    }
    lru_push(l, k);
    l->in[k] = true;
    l->size++;
    return false;
}

static double hit_ratio_edgekv(uint64_t budget, unsigned nshards, const int *reqs)
{
    struct ekv_cache *c = new_cache(budget, nshards);
    char key[32];
    long hits = 0;

    for (int i = 0; i < ZIPF_REQS; i++) {
        struct ekv_cache_entry *e;
        snprintf(key, sizeof(key), "zipf-key-%08d", reqs[i]);
        if (get(c, key, 0, &e) == EKV_CACHE_HIT) {
            hits++;
            ekv_cache_entry_release(e);
        } else {
            (void)put(c, key, "0123456789abcdef", 1, 0, UINT64_MAX / 2);
        }
    }
    ekv_cache_free(c);
    return (double)hits / ZIPF_REQS;
}

START_TEST(test_zipf_hit_ratio_vs_exact_lru)
{
    int *reqs = malloc(sizeof(int) * ZIPF_REQS);
    double *cdf = malloc(sizeof(double) * ZIPF_KEYS), sum = 0;
    struct lru l = {.head = -1, .tail = -1};
    struct ekv_cache_entry *probe = make("zipf-key-00000000", "0123456789abcdef", 1, 1, 0);
    uint64_t cost = ekv_cache_entry_cost(probe);
    uint64_t budget = 2000 * (cost + 16) + 64 * 1024;
    unsigned seed = 12345;
    long lru_hits = 0;

    ekv_cache_entry_release(probe);
    for (int k = 0; k < ZIPF_KEYS; k++)
        sum += 1.0 / pow(k + 1, 0.99);
    for (int k = 0, acc = 0; k < ZIPF_KEYS; k++, acc++)
        cdf[k] = (k ? cdf[k - 1] : 0) + 1.0 / pow(k + 1, 0.99) / sum;
    for (int i = 0; i < ZIPF_REQS; i++) {
        double u = (double)rand_r(&seed) / RAND_MAX;
        int lo = 0, hi = ZIPF_KEYS - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        /* scatter ranks over key names so hot keys are not neighbours */
        reqs[i] = (int)(((unsigned)lo * 2654435761u) % ZIPF_KEYS);
    }
    /* exact LRU gets every byte of the same budget as whole entries: a generous baseline */
    l.cap = (int)(budget / cost);
    l.prev = malloc(sizeof(int) * ZIPF_KEYS);
    l.next = malloc(sizeof(int) * ZIPF_KEYS);
    l.in = calloc(ZIPF_KEYS, sizeof(bool));
    for (int i = 0; i < ZIPF_REQS; i++)
        lru_hits += lru_access(&l, reqs[i]);
    double lru = (double)lru_hits / ZIPF_REQS;
    double one = hit_ratio_edgekv(budget, 1, reqs);
    double sharded = hit_ratio_edgekv(budget, 64, reqs);
    printf("zipf 0.99, %d keys, %d requests: exact LRU (%d entries) %.4f, GCLOCK 1 shard %.4f, "
           "64 shards %.4f\n",
           ZIPF_KEYS, ZIPF_REQS, l.cap, lru, one, sharded);
    ck_assert(one >= lru);
    ck_assert(sharded >= lru);
    free(l.prev);
    free(l.next);
    free(l.in);
    free(cdf);
    free(reqs);
}
END_TEST

/* ---------------------------------------------------------------- threads */

struct stress_arg {
    struct ekv_cache *c;
    unsigned seed;
};

static void *stress(void *p)
{
    struct stress_arg *a = p;
    char key[32];

    /* under valgrind (check-valgrind sets EKV_VALGRIND), which runs one thread at a time, a
     * fifth of the rounds keeps the suite's time reasonable and still interleaves them */
    int rounds = getenv("EKV_VALGRIND") != NULL ? 20000 : 100000;

    for (int i = 0; i < rounds; i++) {
        unsigned r = rand_r(&a->seed);
        struct ekv_cache_entry *e, *v;
        struct ekv_cache_fill *f;
        /* a joined waiter stays linked to its fill until the leader answers it: it cannot live
         * in this loop's frame; the leader frees the waiters it answers */
        struct ekv_cache_waiter *w = malloc(sizeof(*w)), *list;
        ck_assert_ptr_nonnull(w);
        snprintf(key, sizeof(key), "k%u", r % 500);
        switch (r % 16) {
        case 0:
            ekv_cache_invalidate(a->c, key, strlen(key));
            break;
        case 1:
            if (r % 1024 == 1)
                ekv_cache_flush(a->c);
            break;
        default:
            switch (ekv_cache_lookup(a->c, key, strlen(key), 0, 0, &e, &f, w)) {
            case EKV_CACHE_HIT: {
                size_t len;
                const char *val = ekv_cache_entry_value(e, &len);
                ck_assert_uint_eq(len, strlen(key));
                ck_assert_int_eq(memcmp(val, key, len), 0);
                ekv_cache_entry_release(e);
                break;
            }
            case EKV_CACHE_LEAD:
                v = make(key, key, 1, 1000, 0);
                (void)ekv_cache_fill_finish(a->c, f, v, 0, &list, NULL);
                ekv_cache_entry_release(v);
                while (list != NULL) { /* answered: other threads' waiters, ours to free */
                    struct ekv_cache_waiter *next = list->next;
                    free(list);
                    list = next;
                }
                break;
            case EKV_CACHE_JOINED: /* another thread's fill answers (we do not wait here) */
                w = NULL;
                break;
            default:
                break;
            }
        }
        free(w);
    }
    return NULL;
}

START_TEST(test_threads)
{
    struct ekv_cache *c = new_cache(32 * 1024, 8);
    pthread_t t[4];
    struct stress_arg a[4];
    struct ekv_cache_stats st;

    for (int i = 0; i < 4; i++) {
        a[i] = (struct stress_arg){c, (unsigned)i + 1};
        pthread_create(&t[i], NULL, stress, &a[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ekv_cache_stats(c, &st);
    ck_assert_uint_le(st.bytes, 32 * 1024);
    ck_assert_uint_eq(st.fills, 0);
    ekv_cache_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_entry_accessors);
    tcase_add_test(tc, test_miss_fill_hit);
    tcase_add_test(tc, test_ttl_with_injected_time);
    tcase_add_test(tc, test_coalescing_waiters_in_order);
    tcase_add_test(tc, test_poisoned_fill_not_stored_and_not_joined);
    tcase_add_test(tc, test_bypass_replaces_fill);
    tcase_add_test(tc, test_epoch_flush);
    tcase_add_test(tc, test_reference_outlives_eviction);
    tcase_add_test(tc, test_budget_and_accounting);
    tcase_add_test(tc, test_fills_finish_in_their_slots);
    tcase_add_test(tc, test_gclock_keeps_hot_entries);
    tcase_add_test(tc, test_eviction_reasons);
    tcase_add_test(tc, test_stale_if_error_lookups);
    tcase_add_test(tc, test_disabled_cache);
    tcase_add_test(tc, test_seeded_hash);
    tcase_add_test(tc, test_table_growth_keeps_entries_findable);
    tcase_add_test(tc, test_table_sized_to_budget);
    tcase_add_test(tc, test_zipf_hit_ratio_vs_exact_lru);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
