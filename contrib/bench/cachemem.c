/* cachemem.c - the edge cache's memory cost, measured on the real data structure.
 *
 *   cachemem load [N]            N entries (default 1M) of 16-byte keys and 16-byte values
 *                                with a TTL: metadata bytes and RSS bytes per entry
 *   cachemem churn SECONDS MB    churn with mixed value sizes under an MB budget: RSS at the
 *                                end against 1.15 x budget + the baseline
 *   cachemem lookup [N]          load N entries as above, then N hits (in a scattered order)
 *                                and N misses: nanoseconds per lookup. Instructions and cache
 *                                misses per lookup: valgrind --tool=callgrind --cache-sim=yes
 *                                --toggle-collect=hits --toggle-collect=misses
 *
 * Build: make contrib/bench/cachemem (not part of `make check`). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgekv/cache.h"

static uint64_t rss_bytes(void)
{
    unsigned long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL || fscanf(f, "%lu %lu", &vsz, &rss) != 2)
        rss = 0;
    if (f != NULL)
        fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Stores one entry through a fill, as the read path does. */
static void put(struct ekv_cache *c, const char *key, size_t klen, const void *val, size_t vlen,
                uint64_t now, uint64_t ttl_ms)
{
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *f;
    struct ekv_cache_waiter *w;
    struct ekv_cache_item it = {.value = val,
                                .value_len = vlen,
                                .generation = 1,
                                .fetched_ms = now,
                                .expires_ms = now + ttl_ms,
                                .item_expires_ms = now + ttl_ms};

    if (ekv_cache_lookup(c, key, klen, now, EKV_CACHE_NO_JOIN, &hit, &f, NULL) != EKV_CACHE_LEAD)
        return;
    e = ekv_cache_entry_new(key, klen, &it);
    (void)ekv_cache_fill_finish(c, f, e, now, &w, NULL);
    ekv_cache_entry_release(e);
}

static void load_keys(struct ekv_cache *c, unsigned long n, uint64_t now)
{
    char key[32], val[32]; /* 16 bytes used */

    for (unsigned long i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%012lu", i % 1000000000000ul);
        snprintf(val, sizeof(val), "val-%012lu", i % 1000000000000ul);
        put(c, key, 16, val, 16, now, 300000);
    }
}

static int load(unsigned long n)
{
    struct ekv_cache_limits lim = {.max_bytes = (uint64_t)4 << 30, .seed = 7};
    uint64_t rss0 = rss_bytes(), now = now_ms(), rss1;
    struct ekv_cache *c = ekv_cache_new(&lim);
    struct ekv_cache_item it = {.value = "val-000000000000", .value_len = 16, .expires_ms = 1};
    struct ekv_cache_entry *probe = ekv_cache_entry_new("key-000000000000", 16, &it);
    uint64_t cost = ekv_cache_entry_cost(probe);
    struct ekv_cache_stats st;

    ekv_cache_entry_release(probe);
    load_keys(c, n, now);
    rss1 = rss_bytes();
    ekv_cache_stats(c, &st);
    if (st.entries == 0)
        return 1;
    printf("entries                 %llu\n", (unsigned long long)st.entries);
    printf("cache bytes (charged)   %llu\n", (unsigned long long)st.bytes);
    printf("data bytes per entry    32 (16-byte key + 16-byte value)\n");
    printf("metadata bytes/entry    %.1f (header, allocator rounding, table; target <= 64)\n",
           (double)(st.bytes - 32 * st.entries) / (double)st.entries);
    /* every entry has the same size here, so the charged bytes split exactly */
    printf("  entry header+rounding %.1f\n", (double)(cost - 32));
    printf("  tables and shards     %.1f\n",
           (double)(st.bytes - cost * st.entries) / (double)st.entries);
    printf("RSS bytes per entry     %.1f (target <= 100; memcached ~110, Redis ~161)\n",
           (double)(rss1 - rss0) / (double)st.entries);
    ekv_cache_free(c);
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Looks up the @n 16-byte keys at @keys; returns how many lookups gave @want. A function of
 * its own so that callgrind can tell hits, misses and the loading apart. */
static __attribute__((noinline)) unsigned long lookups(struct ekv_cache *c, const char *keys,
                                                       unsigned long n, uint64_t now,
                                                       enum ekv_cache_lookup_result want)
{
    unsigned long got = 0;

    for (unsigned long i = 0; i < n; i++) {
        struct ekv_cache_entry *e;
        struct ekv_cache_fill *f;
        if (ekv_cache_lookup(c, keys + 16 * i, 16, now, EKV_CACHE_NO_FILL, &e, &f, NULL) == want)
            got++;
        ekv_cache_entry_release(e);
    }
    return got;
}

static __attribute__((noinline)) unsigned long hits(struct ekv_cache *c, const char *keys,
                                                    unsigned long n, uint64_t now)
{
    return lookups(c, keys, n, now, EKV_CACHE_HIT);
}

static __attribute__((noinline)) unsigned long misses(struct ekv_cache *c, const char *keys,
                                                      unsigned long n, uint64_t now)
{
    return lookups(c, keys, n, now, EKV_CACHE_MISS);
}

/* Hits in a scattered order (consecutive keys were stored consecutively), then misses. */
static int lookup(unsigned long n)
{
    struct ekv_cache_limits lim = {.max_bytes = (uint64_t)4 << 30, .seed = 7};
    uint64_t now = now_ms(), t0, t1, t2;
    struct ekv_cache *c = ekv_cache_new(&lim);
    char *hit_keys = malloc(16 * n + 1), *miss_keys = malloc(16 * n + 1);
    unsigned long nhit, nmiss;

    if (n == 0 || hit_keys == NULL || miss_keys == NULL)
        return 2;
    load_keys(c, n, now);
    for (unsigned long i = 0; i < n; i++) {
        unsigned long k = (unsigned long)(((uint64_t)i * 2654435761u) % n);
        snprintf(hit_keys + 16 * i, 17, "key-%012lu", k % 1000000000000ul);
        snprintf(miss_keys + 16 * i, 17, "mis-%012lu", i % 1000000000000ul);
    }
    t0 = now_ns();
    nhit = hits(c, hit_keys, n, now);
    t1 = now_ns();
    nmiss = misses(c, miss_keys, n, now);
    t2 = now_ns();
    printf("hits                    %lu of %lu, %.1f ns each\n", nhit, n,
           (double)(t1 - t0) / (double)n);
    printf("misses                  %lu of %lu, %.1f ns each\n", nmiss, n,
           (double)(t2 - t1) / (double)n);
    ekv_cache_free(c);
    free(hit_keys);
    free(miss_keys);
    return nhit == n && nmiss == n ? 0 : 1;
}

static int churn(unsigned seconds, unsigned mb)
{
    static const size_t sizes[] = {16, 100, 1000, 4096, 16384, 65536};
    struct ekv_cache_limits lim = {.max_bytes = (uint64_t)mb << 20, .seed = 9};
    uint64_t base = rss_bytes(), start = now_ms(), peak = 0;
    struct ekv_cache *c = ekv_cache_new(&lim);
    char *val = malloc(65536), key[32];
    unsigned seed = 1;
    unsigned long ops = 0;

    memset(val, 'v', 65536);
    while (now_ms() - start < (uint64_t)seconds * 1000) {
        for (int i = 0; i < 1000; i++, ops++) {
            unsigned r = (unsigned)rand_r(&seed);
            size_t vlen = sizes[r % 6];
            uint64_t now = now_ms();
            int klen = snprintf(key, sizeof(key), "key-%u", r % 200000);
            if (r % 10 == 0)
                ekv_cache_invalidate(c, key, (size_t)klen);
            else
                put(c, key, (size_t)klen, val, vlen, now, 1000 + r % 60000);
        }
        uint64_t rss = rss_bytes();
        peak = rss > peak ? rss : peak;
    }
    printf("budget                  %u MiB\n", mb);
    printf("operations              %lu in %u s\n", ops, seconds);
    printf("baseline RSS            %.1f MiB\n", (double)base / 1048576);
    printf("RSS at the end          %.1f MiB (peak %.1f)\n", (double)rss_bytes() / 1048576,
           (double)peak / 1048576);
    printf("limit 1.15 x budget + baseline = %.1f MiB: %s\n",
           (1.15 * mb) + (double)base / 1048576,
           (double)rss_bytes() <= 1.15 * ((double)mb * 1048576) + (double)base ? "ok" : "OVER");
    ekv_cache_free(c);
    free(val);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return load(argc >= 3 ? strtoul(argv[2], NULL, 10) : 1000000);
    if (argc >= 2 && strcmp(argv[1], "lookup") == 0)
        return lookup(argc >= 3 ? strtoul(argv[2], NULL, 10) : 1000000);
    if (argc >= 4 && strcmp(argv[1], "churn") == 0)
        return churn((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
    fprintf(stderr, "usage: cachemem load [N] | lookup [N] | churn SECONDS MB\n");
    return 2;
}
