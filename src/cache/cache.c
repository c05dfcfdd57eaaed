/* cache.c - the edge cache (see cache.h): sharded open-addressing tables of tagged pointers
 * (an entry, or a fill with the low bit set), GCLOCK eviction by a hand that walks the table,
 * epochs for O(1) flushes. Entries are 40 bytes of header followed by key, metadata and value,
 * so a small item costs about one malloc chunk plus a table slot.
 *
 * The tables are linear-probing, with deletion by backward shift (no tombstones). Their sizes
 * are not powers of two: a table grows by half once it would be over 3/4 full, so it is never
 * less than half full (a doubling table can be 3/8 full; at 1M small entries over 64 shards
 * it was under half full: 16.8 bytes of table per entry, now 12). A shard whose budget is the
 * limit grows its table only as far as the budget can fill it, and evicts instead of growing
 * past that. A hash maps to its home slot by a multiply-shift (h32 * cap >> 32, "fastrange")
 * and probes wrap with a compare, so no probe step divides. Fuller tables make longer runs, so
 * each slot also carries a few hash bits in its pointer's alignment bits: a probe reads the
 * key of an entry only if they match, which keeps a hit or a miss at about one entry read. */
#include "config.h"

#include <assert.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/cache.h"
#include "edgekv/log.h"

#define DEFAULT_SHARDS 64
#define MIN_SLOTS 16
#define MAX_USES 3               /* GCLOCK: a hit adds one use, up to this; the hand takes one */
/* A slot is a pointer to an entry or a fill, both malloc'd (and larger than max_align_t), so
 * aligned for max_align_t: the low bit tells a fill, the other alignment bits hold hash bits. */
#define SLOT_ALIGN ((uintptr_t)_Alignof(max_align_t))
#define TAG_MASK (SLOT_ALIGN - 1)
#define FILL_TAG ((uintptr_t)1)
#define HINT_MASK (TAG_MASK & ~FILL_TAG)
#define HINT_SHIFT 32            /* hash bits 33..35: homes use bits 0..31, shards 48 and up */
#define MAX_LOAD_NUM 3           /* a table grows by half when it would be over 3/4 full */
#define MAX_LOAD_DEN 4
#define KEY_BITS 12
#define KEY_MAX ((1u << KEY_BITS) - 1)
#define META_MAX ((1u << KEY_BITS) - 1)
#define NEGATIVE_BIT (1u << 24)
#define EPOCH_MASK 0x3fffffffu   /* entry->state: epoch in the high 30 bits, uses in the low 2 */
#define EXP_BITS 42              /* monotonic ms: 139 years */
#define EXP_MASK ((UINT64_C(1) << EXP_BITS) - 1)
#define TTL_S_MAX ((UINT64_C(1) << (64 - EXP_BITS)) - 1) /* 48 days */

_Static_assert(_Alignof(max_align_t) >= 2, "malloc'd pointers need a free low bit");

struct ekv_cache_entry {
    atomic_uint refs;
    uint32_t value_len;
    uint32_t state;      /* epoch << 2 | uses: only read or written under the shard lock */
    uint32_t lm_secs;    /* last modified, seconds since 1970 */
    uint64_t generation;
    uint64_t expiry;     /* expires_ms (low EXP_BITS) | cache TTL in seconds at the fill << EXP_BITS */
    uint32_t item_delta; /* item expiry - expires_ms in ms; UINT32_MAX: none, or too far to matter */
    uint32_t shape;      /* key length | metadata length << 12 | NEGATIVE_BIT */
    uint32_t tag;        /* the caller's (the coherence epoch of the entry's slot) */
    char data[];         /* key, metadata, value */
};

struct shard;

struct ekv_cache_fill {
    struct shard *shard;
    uint64_t hash;
    uint32_t epoch;
    bool poisoned; /* invalidated or replaced: answer the waiters, store nothing */
    struct ekv_cache_entry *prev; /* the expired entry it replaced (stale-if-error), or NULL */
    struct ekv_cache_waiter *head, **tail;
    size_t keylen;
    char key[];
};

struct shard {
    pthread_mutex_t lock;
    uintptr_t *slots;
    uint32_t cap, used, hand;
    uint64_t bytes, max_bytes;
    uint64_t entries, fills;
    uint64_t evict_lru, evict_ttl, evict_inval, evict_flush;
} __attribute__((aligned(64)));

struct ekv_cache {
    uint64_t k0, k1;     /* hash key */
    atomic_uint epoch;
    atomic_ullong flushes;
    unsigned nshards;
    struct shard *shards;
    uint64_t max_bytes;
};

/* ---------------------------------------------------------------- SipHash-1-3 */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t ekv_cache_hash(const struct ekv_cache *c, const char *key, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ c->k0, v1 = 0x646f72616e646f6dull ^ c->k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ c->k0, v3 = 0x7465646279746573ull ^ c->k1;
    const unsigned char *p = (const unsigned char *)key;
    size_t i, blocks = len / 8;
    uint64_t m, b = (uint64_t)len << 56;

    for (i = 0; i < blocks; i++, p += 8) {
        memcpy(&m, p, 8); /* little-endian hosts; the hash only has to be stable in-process */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---------------------------------------------------------------- entries */

static size_t key_len(const struct ekv_cache_entry *e)
{
    return e->shape & KEY_MAX;
}

static size_t meta_len(const struct ekv_cache_entry *e)
{
    return (e->shape >> KEY_BITS) & META_MAX;
}

struct ekv_cache_entry *ekv_cache_entry_new(const char *key, size_t keylen,
                                            const struct ekv_cache_item *item)
{
    struct ekv_cache_entry *e;
    uint64_t delta;

    if (keylen > KEY_MAX || item->meta_len > META_MAX || item->value_len > UINT32_MAX)
        return NULL;
    e = ekv_malloc(sizeof(*e) + keylen + item->meta_len + item->value_len);
    assert(((uintptr_t)e & TAG_MASK) == 0);
    atomic_init(&e->refs, 1);
    e->value_len = (uint32_t)item->value_len;
    e->state = 0;
    e->lm_secs = item->last_modified_ms > 0 ? (uint32_t)(item->last_modified_ms / 1000) : 0;
    e->generation = item->generation;
    e->tag = item->tag;
    {
        uint64_t ttl_s = item->expires_ms > item->fetched_ms
                             ? (item->expires_ms - item->fetched_ms + 999) / 1000
                             : 0;
        e->expiry = (item->expires_ms & EXP_MASK) | EKV_MIN(ttl_s, TTL_S_MAX) << EXP_BITS;
    }
    delta = item->item_expires_ms == 0 || item->item_expires_ms < item->expires_ms
                ? UINT32_MAX
                : item->item_expires_ms - item->expires_ms;
    if (item->item_expires_ms != 0 && item->item_expires_ms < item->expires_ms)
        delta = 0; /* cannot happen when callers take the min, but never serve past the item */
    e->item_delta = delta >= UINT32_MAX ? UINT32_MAX : (uint32_t)delta;
    e->shape = (uint32_t)keylen | (uint32_t)item->meta_len << KEY_BITS |
               (item->negative ? NEGATIVE_BIT : 0);
    memcpy(e->data, key, keylen);
    if (item->meta_len > 0)
        memcpy(e->data + keylen, item->meta, item->meta_len);
    if (item->value_len > 0)
        memcpy(e->data + keylen + item->meta_len, item->value, item->value_len);
    return e;
}

void ekv_cache_entry_ref(struct ekv_cache_entry *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void ekv_cache_entry_release(struct ekv_cache_entry *e)
{
    if (e != NULL && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        ekv_free(e);
}

const char *ekv_cache_entry_key(const struct ekv_cache_entry *e, size_t *len)
{
    *len = key_len(e);
    return e->data;
}

const void *ekv_cache_entry_value(const struct ekv_cache_entry *e, size_t *len)
{
    *len = e->value_len;
    return e->data + key_len(e) + meta_len(e);
}

const char *ekv_cache_entry_meta(const struct ekv_cache_entry *e, size_t *len)
{
    *len = meta_len(e);
    return e->data + key_len(e);
}

uint64_t ekv_cache_entry_generation(const struct ekv_cache_entry *e)
{
    return e->generation;
}

uint32_t ekv_cache_entry_tag(const struct ekv_cache_entry *e)
{
    return e->tag;
}

int64_t ekv_cache_entry_last_modified_ms(const struct ekv_cache_entry *e)
{
    return (int64_t)e->lm_secs * 1000;
}

bool ekv_cache_entry_negative(const struct ekv_cache_entry *e)
{
    return (e->shape & NEGATIVE_BIT) != 0;
}

static uint64_t expires_ms(const struct ekv_cache_entry *e)
{
    return e->expiry & EXP_MASK;
}

uint64_t ekv_cache_entry_expires_ms(const struct ekv_cache_entry *e)
{
    return expires_ms(e);
}

uint64_t ekv_cache_entry_age_s(const struct ekv_cache_entry *e, uint64_t now_ms)
{
    uint64_t fetched = expires_ms(e) - (e->expiry >> EXP_BITS) * 1000;

    return now_ms > fetched ? (now_ms - fetched) / 1000 : 0;
}

uint64_t ekv_cache_entry_item_expires_ms(const struct ekv_cache_entry *e)
{
    return e->item_delta == UINT32_MAX ? 0 : expires_ms(e) + e->item_delta;
}

size_t ekv_cache_entry_cost(const struct ekv_cache_entry *e)
{
    /* the allocation as malloc rounds it, plus its chunk header */
    return malloc_usable_size((void *)e) + sizeof(size_t);
}

static bool item_alive(const struct ekv_cache_entry *e, uint64_t now_ms)
{
    return e->item_delta == UINT32_MAX || now_ms < expires_ms(e) + e->item_delta;
}

/* ---------------------------------------------------------------- slots */

static bool is_fill(uintptr_t s)
{
    return (s & FILL_TAG) != 0;
}

static struct ekv_cache_entry *as_entry(uintptr_t s)
{
    return (struct ekv_cache_entry *)(s & ~TAG_MASK);
}

static struct ekv_cache_fill *as_fill(uintptr_t s)
{
    return (struct ekv_cache_fill *)(s & ~TAG_MASK);
}

/* The hash bits a slot keeps in its pointer's alignment bits. */
static uintptr_t hint_of(uint64_t hash)
{
    return (uintptr_t)(hash >> HINT_SHIFT) & HINT_MASK;
}

static uintptr_t entry_slot(struct ekv_cache_entry *e, uint64_t hash)
{
    return (uintptr_t)e | hint_of(hash);
}

static uintptr_t fill_slot(const struct ekv_cache_fill *f)
{
    return (uintptr_t)f | hint_of(f->hash) | FILL_TAG;
}

static const char *slot_key(uintptr_t s, size_t *len)
{
    if (is_fill(s)) {
        *len = as_fill(s)->keylen;
        return as_fill(s)->key;
    }
    return ekv_cache_entry_key(as_entry(s), len);
}

static uint64_t slot_hash(const struct ekv_cache *c, uintptr_t s)
{
    size_t len;
    const char *k;

    if (is_fill(s))
        return as_fill(s)->hash;
    k = slot_key(s, &len);
    return ekv_cache_hash(c, k, len);
}

static struct shard *shard_of(const struct ekv_cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 48) & (c->nshards - 1)];
}

/* The home slot of @hash in a table of @cap slots: the low 32 bits scaled to [0, cap). */
static uint32_t home_of(uint64_t hash, uint32_t cap)
{
    return (uint32_t)(((uint64_t)(uint32_t)hash * cap) >> 32);
}

/* Bytes a table of slots costs: the allocation as malloc rounds it, plus its chunk header. */
static uint64_t table_cost(uintptr_t *slots)
{
    return malloc_usable_size(slots) + sizeof(size_t);
}

/* Index of @key's slot, or of the empty slot where it would go. */
static uint32_t probe(const struct shard *sh, const char *key, size_t len, uint64_t hash)
{
    uintptr_t hint = hint_of(hash);
    uint32_t cap = sh->cap, i = home_of(hash, cap);

    for (;;) {
        uintptr_t s = sh->slots[i];
        size_t klen;
        const char *k;

        if (s == 0)
            return i;
        if ((s & HINT_MASK) == hint) { /* else not @key: no need to read the entry */
            k = slot_key(s, &klen);
            if (klen == len && memcmp(k, key, len) == 0)
                return i;
        }
        if (++i == cap)
            i = 0;
    }
}

/* Empties slot @i, shifting later slots of the same run back (linear probing, no tombstones). */
static void slot_clear(const struct ekv_cache *c, struct shard *sh, uint32_t i)
{
    uint32_t cap = sh->cap, j = i;

    sh->slots[i] = 0;
    sh->used--;
    for (;;) {
        uint32_t home;
        if (++j == cap)
            j = 0;
        if (sh->slots[j] == 0)
            return;
        home = home_of(slot_hash(c, sh->slots[j]), cap);
        /* move slots[j] to i unless its home lies cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            sh->slots[i] = sh->slots[j];
            sh->slots[j] = 0;
            i = j;
        }
    }
}

/* Index of fill @f's slot: it is in the table (not poisoned). Compares slot words alone. */
static uint32_t fill_index(const struct shard *sh, const struct ekv_cache_fill *f)
{
    uintptr_t want = fill_slot(f);
    uint32_t i = home_of(f->hash, sh->cap);

    while (sh->slots[i] != want)
        i = i + 1 == sh->cap ? 0 : i + 1;
    return i;
}

/* Whether one more slot in use would take the table past its maximum load. */
static bool table_full(const struct shard *sh)
{
    return ((uint64_t)sh->used + 1) * MAX_LOAD_DEN > (uint64_t)sh->cap * MAX_LOAD_NUM;
}

/* Moves the table to @cap slots (more than now), charging the difference to the shard. */
static void grow(struct ekv_cache *c, struct shard *sh, uint32_t cap)
{
    uint32_t old_cap = sh->cap;
    uintptr_t *old = sh->slots;

    if (cap <= old_cap) /* 2^32 slots in one shard: not a size this cache can reach */
        EKV_FATAL("cache shard table overflow at %u slots", (unsigned)old_cap);
    sh->slots = ekv_calloc(cap, sizeof(*sh->slots));
    sh->cap = cap;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i] != 0) {
            uint32_t j = home_of(slot_hash(c, old[i]), cap);
            while (sh->slots[j] != 0)
                if (++j == cap)
                    j = 0;
            sh->slots[j] = old[i];
        }
    }
    sh->bytes += table_cost(sh->slots);
    sh->bytes -= table_cost(old);
    ekv_free(old);
    /* slots keep their relative place (a home is a fraction of the table), so the hand does */
    sh->hand = (uint32_t)((uint64_t)sh->hand * cap / old_cap);
}

/* Removes the entry in slot @i, charging @counter. */
static void drop_entry(const struct ekv_cache *c, struct shard *sh, uint32_t i, uint64_t *counter)
{
    struct ekv_cache_entry *e = as_entry(sh->slots[i]);

    sh->bytes -= ekv_cache_entry_cost(e);
    sh->entries--;
    (*counter)++;
    slot_clear(c, sh, i);
    ekv_cache_entry_release(e);
}

/* Whether the shard lacks @need more bytes, or a free slot if @slot. */
static bool short_of(const struct shard *sh, uint64_t need, bool slot)
{
    return sh->bytes + need > sh->max_bytes || (slot && table_full(sh));
}

/* Runs the GCLOCK hand until @need more bytes fit (and, if @slot, one more slot). Reclaims
 * entries of older epochs and expired ones first; a hit entry survives as many passes as it has
 * uses. Bounded work. */
static bool make_room(struct ekv_cache *c, struct shard *sh, uint64_t need, bool slot,
                      uint64_t now_ms)
{
    uint32_t epoch = atomic_load_explicit(&c->epoch, memory_order_relaxed) & EPOCH_MASK;
    uint64_t steps = (uint64_t)sh->cap * (MAX_USES + 2);

    while (short_of(sh, need, slot) && steps-- > 0) {
        uint32_t i = sh->hand;
        uintptr_t s = sh->slots[i];

        if (s == 0 || is_fill(s)) {
            sh->hand = i + 1 == sh->cap ? 0 : i + 1;
            continue;
        }
        struct ekv_cache_entry *e = as_entry(s);
        if ((e->state >> 2) != epoch) {
            drop_entry(c, sh, i, &sh->evict_flush); /* slot i now holds a successor: no step */
        } else if (now_ms >= expires_ms(e) && !item_alive(e, now_ms)) {
            drop_entry(c, sh, i, &sh->evict_ttl);
        } else if ((e->state & 3) > 0 && now_ms < expires_ms(e)) {
            e->state--;
            sh->hand = i + 1 == sh->cap ? 0 : i + 1;
        } else {
            drop_entry(c, sh, i, now_ms >= expires_ms(e) ? &sh->evict_ttl : &sh->evict_lru);
        }
    }
    return !short_of(sh, need, slot);
}

/* The size to grow a full table to: by half, or less in a shard whose budget is the limit, where
 * slots that could never be filled would only evict entries to pay for them. At the stored
 * entries' mean cost, n entries and their table at its maximum load fill the budget when the
 * table has budget * DEN / (mean * NUM + slot * DEN) slots. If that is no more than it has, the
 * budget is already full: returns sh->cap, and the caller evicts an entry instead of growing.
 * Grows by at least an eighth, so that a slowly falling mean does not rehash at every insert. */
static uint32_t grown_cap(const struct shard *sh)
{
    uint64_t half = (uint64_t)sh->cap + sh->cap / 2, fixed = sizeof(*sh), mean, budget, per, fit;

    if (sh->entries == 0)
        return (uint32_t)EKV_MIN(half, UINT32_MAX); /* a table of fills: they cannot be evicted */
    mean = (sh->bytes - table_cost(sh->slots) - fixed) / sh->entries;
    budget = sh->max_bytes > fixed ? sh->max_bytes - fixed : 0;
    per = mean * MAX_LOAD_NUM + sizeof(*sh->slots) * MAX_LOAD_DEN;
    fit = budget < UINT64_MAX / MAX_LOAD_DEN ? budget * MAX_LOAD_DEN / per
                                             : budget / per * MAX_LOAD_DEN;
    if (fit <= sh->cap)
        return sh->cap;
    fit = EKV_MAX(fit, (uint64_t)sh->cap + sh->cap / 8);
    return (uint32_t)EKV_MIN(EKV_MIN(fit, half), UINT32_MAX);
}

/* Before a slot goes into use: keeps the table within its maximum load, by growing it or, when
 * growth does not pay, by evicting an entry (if the hand finds one to evict). */
static void reserve_slot(struct ekv_cache *c, struct shard *sh, uint64_t now_ms)
{
    uint32_t cap;

    if (!table_full(sh))
        return;
    cap = grown_cap(sh);
    if (cap == sh->cap) {
        if (make_room(c, sh, 0, true, now_ms))
            return;
        cap = (uint32_t)EKV_MIN((uint64_t)sh->cap + sh->cap / 2, UINT32_MAX); /* all fills */
    }
    grow(c, sh, cap);
    (void)make_room(c, sh, 0, false, now_ms); /* the larger table comes out of the budget */
}

/* ---------------------------------------------------------------- cache */

struct ekv_cache *ekv_cache_new(const struct ekv_cache_limits *limits)
{
    struct ekv_cache *c;
    unsigned n = limits->nshards, p = 1;

    if (n == 0) {
        /* each shard gets an equal share of the budget: keep room for a few of the largest
         * entries in every shard, or they could never be stored */
        n = DEFAULT_SHARDS;
        while (n > 1 && limits->max_item_bytes != 0 &&
               limits->max_bytes / n < 4 * limits->max_item_bytes)
            n /= 2;
    }
    while (p < n)
        p *= 2;
    c = ekv_calloc(1, sizeof(*c));
    c->nshards = p;
    c->max_bytes = limits->max_bytes;
    c->k0 = limits->seed;
    c->k1 = limits->seed * 0x9e3779b97f4a7c15ull + 1;
    atomic_init(&c->epoch, 0);
    atomic_init(&c->flushes, 0);
    if (posix_memalign((void **)&c->shards, 64, p * sizeof(*c->shards)) != 0)
        EKV_FATAL("out of memory allocating %u cache shards", (unsigned)p);
    memset(c->shards, 0, p * sizeof(*c->shards));
    for (unsigned i = 0; i < p; i++) {
        struct shard *sh = &c->shards[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->cap = MIN_SLOTS;
        sh->slots = ekv_calloc(sh->cap, sizeof(*sh->slots));
        /* everything the cache allocates counts: the table, the shard, the cache itself */
        sh->bytes = table_cost(sh->slots) + sizeof(*sh) + (i == 0 ? sizeof(*c) : 0);
        sh->max_bytes = limits->max_bytes / p;
    }
    return c;
}

void ekv_cache_free(struct ekv_cache *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *sh = &c->shards[i];
        for (uint32_t j = 0; j < sh->cap; j++) {
            uintptr_t s = sh->slots[j];
            if (s != 0 && !is_fill(s)) /* fills: finished by their leaders before this */
                ekv_cache_entry_release(as_entry(s));
        }
        ekv_free(sh->slots);
        pthread_mutex_destroy(&sh->lock);
    }
    free(c->shards);
    ekv_free(c);
}

static struct ekv_cache_fill *fill_new(struct shard *sh, const char *key, size_t keylen,
                                       uint64_t hash, uint32_t epoch)
{
    struct ekv_cache_fill *f = ekv_malloc(sizeof(*f) + keylen);

    assert(((uintptr_t)f & TAG_MASK) == 0);
    f->shard = sh;
    f->hash = hash;
    f->epoch = epoch;
    f->poisoned = false;
    f->head = NULL;
    f->tail = &f->head;
    f->keylen = keylen;
    memcpy(f->key, key, keylen);
    return f;
}

enum ekv_cache_lookup_result ekv_cache_lookup(struct ekv_cache *c, const char *key, size_t keylen,
                                              uint64_t now_ms, unsigned flags,
                                              struct ekv_cache_entry **entry,
                                              struct ekv_cache_fill **fill,
                                              struct ekv_cache_waiter *waiter)
{
    uint64_t hash = ekv_cache_hash(c, key, keylen);
    struct shard *sh = shard_of(c, hash);
    uint32_t epoch = atomic_load_explicit(&c->epoch, memory_order_acquire) & EPOCH_MASK;
    struct ekv_cache_entry *prev = NULL;
    struct ekv_cache_fill *f;
    uint32_t i;
    uintptr_t s;

    *entry = NULL;
    *fill = NULL;
    if (c->max_bytes == 0)
        return EKV_CACHE_MISS; /* caching disabled: no entries, no placeholders */
    pthread_mutex_lock(&sh->lock);
    i = probe(sh, key, keylen, hash);
    s = sh->slots[i];
    if (s != 0 && !is_fill(s) && !(flags & EKV_CACHE_NO_JOIN)) {
        struct ekv_cache_entry *e = as_entry(s);
        if ((e->state >> 2) == epoch && now_ms < expires_ms(e)) {
            if ((e->state & 3) < MAX_USES)
                e->state++;
            ekv_cache_entry_ref(e);
            *entry = e;
            pthread_mutex_unlock(&sh->lock);
            return EKV_CACHE_HIT;
        }
    }
    if (flags & EKV_CACHE_NO_FILL) {
        pthread_mutex_unlock(&sh->lock);
        return EKV_CACHE_MISS;
    }
    if (s != 0 && is_fill(s)) {
        f = as_fill(s);
        if (f->epoch == epoch && !(flags & EKV_CACHE_NO_JOIN)) {
            waiter->next = NULL;
            *f->tail = waiter;
            f->tail = &waiter->next;
            pthread_mutex_unlock(&sh->lock);
            return EKV_CACHE_JOINED;
        }
        f->poisoned = true; /* an older epoch's, or bypassed: it answers its waiters only */
        sh->fills--;
    } else if (s != 0) {
        /* an expired (or bypassed) entry leaves the table; the fill keeps it for
         * stale-if-error until it finishes */
        prev = as_entry(s);
        sh->bytes -= ekv_cache_entry_cost(prev);
        sh->entries--;
    } else {
        if (table_full(sh)) {
            reserve_slot(c, sh, now_ms);
            i = probe(sh, key, keylen, hash); /* slots moved */
        }
        sh->used++;
    }
    f = fill_new(sh, key, keylen, hash, epoch);
    f->prev = prev;
    sh->slots[i] = fill_slot(f); /* in place of what was there: probe runs stay unbroken */
    sh->fills++;
    *fill = f;
    pthread_mutex_unlock(&sh->lock);
    return EKV_CACHE_LEAD;
}

struct ekv_cache_entry *ekv_cache_lookup_stale(struct ekv_cache *c, const char *key, size_t keylen,
                                               uint64_t now_ms)
{
    uint64_t hash = ekv_cache_hash(c, key, keylen);
    struct shard *sh = shard_of(c, hash);
    uint32_t epoch = atomic_load_explicit(&c->epoch, memory_order_acquire) & EPOCH_MASK;
    struct ekv_cache_entry *e = NULL;
    uintptr_t s;

    pthread_mutex_lock(&sh->lock);
    s = sh->slots[probe(sh, key, keylen, hash)];
    if (s != 0 && !is_fill(s) && (as_entry(s)->state >> 2) == epoch &&
        item_alive(as_entry(s), now_ms)) {
        e = as_entry(s);
        ekv_cache_entry_ref(e);
    }
    pthread_mutex_unlock(&sh->lock);
    return e;
}

bool ekv_cache_fill_finish(struct ekv_cache *c, struct ekv_cache_fill *f,
                           struct ekv_cache_entry *e, uint64_t now_ms,
                           struct ekv_cache_waiter **waiters, struct ekv_cache_entry **stale)
{
    struct shard *sh = f->shard;
    uint32_t epoch = atomic_load_explicit(&c->epoch, memory_order_acquire) & EPOCH_MASK;
    bool stored = false;

    pthread_mutex_lock(&sh->lock);
    *waiters = f->head;
    if (!f->poisoned) { /* still in its slot, the current fill of its key */
        uint64_t cost = e != NULL ? ekv_cache_entry_cost(e) : 0;

        sh->fills--;
        /* the entry takes over the fill's slot, already counted in the table's load */
        if (e != NULL && f->epoch == epoch && now_ms < expires_ms(e) &&
            make_room(c, sh, cost, false, now_ms)) {
            e->state = epoch << 2; /* no grace: one-hit wonders go first (Zipf) */
            ekv_cache_entry_ref(e);
            sh->slots[fill_index(sh, f)] = entry_slot(e, f->hash); /* evictions may move it */
            sh->bytes += cost;
            sh->entries++;
            stored = true;
        } else {
            slot_clear(c, sh, fill_index(sh, f));
        }
    }
    pthread_mutex_unlock(&sh->lock);
    if (stale != NULL)
        *stale = NULL;
    if (f->prev != NULL) {
        /* the entry this fill replaced: still good for stale-if-error if the origin failed,
         * it belongs to the current epoch and its item has not expired */
        if (stale != NULL && e == NULL && (f->prev->state >> 2) == epoch &&
            item_alive(f->prev, now_ms))
            *stale = f->prev;
        else
            ekv_cache_entry_release(f->prev);
    }
    ekv_free(f);
    return stored;
}

bool ekv_cache_invalidate(struct ekv_cache *c, const char *key, size_t keylen)
{
    uint64_t hash = ekv_cache_hash(c, key, keylen);
    struct shard *sh = shard_of(c, hash);
    bool found = false;
    uint32_t i;
    uintptr_t s;

    pthread_mutex_lock(&sh->lock);
    i = probe(sh, key, keylen, hash);
    s = sh->slots[i];
    if (s != 0 && is_fill(s)) {
        as_fill(s)->poisoned = true;
        sh->fills--;
        slot_clear(c, sh, i);
        found = true;
    } else if (s != 0) {
        drop_entry(c, sh, i, &sh->evict_inval);
        found = true;
    }
    pthread_mutex_unlock(&sh->lock);
    return found;
}

void ekv_cache_flush(struct ekv_cache *c)
{
    atomic_fetch_add_explicit(&c->epoch, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&c->flushes, 1, memory_order_relaxed);
}

uint64_t ekv_cache_shard_bytes(const struct ekv_cache *c)
{
    return c->max_bytes / c->nshards;
}

void ekv_cache_stats(struct ekv_cache *c, struct ekv_cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->max_bytes = c->max_bytes;
    st->flushes = atomic_load_explicit(&c->flushes, memory_order_relaxed);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        st->entries += sh->entries;
        st->bytes += sh->bytes;
        st->fills += sh->fills;
        st->evict_lru += sh->evict_lru;
        st->evict_ttl += sh->evict_ttl;
        st->evict_inval += sh->evict_inval;
        st->evict_flush += sh->evict_flush;
        pthread_mutex_unlock(&sh->lock);
    }
}
