/* cachemem.c - the edge cache's memory cost, measured on the real data structure.
 *
 *   cachemem load [N]            N entries (default 1M) of 16-byte keys and 16-byte values
 *                                with a TTL: metadata bytes and RSS bytes per entry
 *   cachemem churn SECONDS MB    churn with mixed value sizes under an MB budget: RSS at the
 *                                end against 1.15 x budget + the baseline
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

static int load(unsigned long n)
{
    struct ekv_cache_limits lim = {.max_bytes = (uint64_t)4 << 30, .seed = 7};
    uint64_t rss0 = rss_bytes(), now = now_ms(), rss1;
    struct ekv_cache *c = ekv_cache_new(&lim);
    struct ekv_cache_stats st;
    char key[32], val[32]; /* 16 bytes used */

    for (unsigned long i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%012lu", i % 1000000000000ul);
        snprintf(val, sizeof(val), "val-%012lu", i % 1000000000000ul);
        put(c, key, 16, val, 16, now, 300000);
    }
    rss1 = rss_bytes();
    ekv_cache_stats(c, &st);
    printf("entries                 %llu\n", (unsigned long long)st.entries);
    printf("cache bytes (charged)   %llu\n", (unsigned long long)st.bytes);
    printf("data bytes per entry    32 (16-byte key + 16-byte value)\n");
    printf("metadata bytes/entry    %.1f (header, allocator rounding, table; target <= 64)\n",
           (double)(st.bytes - 32 * st.entries) / (double)st.entries);
    printf("RSS bytes per entry     %.1f (target <= 100; memcached ~110, Redis ~161)\n",
           (double)(rss1 - rss0) / (double)st.entries);
    ekv_cache_free(c);
    return 0;
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
    if (argc >= 4 && strcmp(argv[1], "churn") == 0)
        return churn((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
    fprintf(stderr, "usage: cachemem load [N] | cachemem churn SECONDS MB\n");
    return 2;
}
