/* read.c - item reads (GET/HEAD) through the edge cache, and the cached /kv/{name} resolutions.
 *
 * The cache is trusted only while the invalidation link is fresh (DESIGN.md, coherence rules
 * 1-2); otherwise reads go to the origin and store nothing, except that while the origin itself
 * is unreachable an entry may be served stale for up to stale-if-error, never past its item's
 * TTL. A miss leads a fill (fill.h) installed before the origin read; concurrent misses, on any
 * worker, join it and are answered on their own worker. What is stored and what a failed read
 * may answer (stale-if-error) is decided here; the fill module runs the protocol. Hits send the
 * cached, immutable value by reference (no copy): the response holds a reference until it has
 * been written. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "edgekv/alloc.h"
#include "edgekv/cache.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/fill.h"
#include "edgekv/http.h"
#include "edgekv/coherence.h"
#include "edgekv/keyspace.h"
#include "edgekv/metrics.h"
#include "edgekv/text.h"

#include "api_int.h"

#define CKEY_MAX (EKV_ID_MAX + EKV_KS_CACHE_KEY_OVERHEAD + EKV_KEY_MAX)

enum how {
    DIRECT, /* no cache involved: answer from the origin's reply */
    LEAD,   /* leading a fill: store the result, answer the joined readers */
};

struct reader {
    struct ekv_fill_waiter w;  /* how a joined reader is answered (fill.h) */
    struct ekv_api *api;       /* the reader's own worker */
    struct ekv_http_req *req;
    const char *inm;           /* If-None-Match (a view into req) */
    size_t inm_len;
    enum how how;
    bool bypass;               /* no-cache / consistency=strong */
    struct ekv_cache_fill *fill;
    uint64_t sent_ms;          /* when the origin read was sent: TTLs count from here */
    unsigned slot;             /* the item's Redis Cluster slot */
    uint32_t epoch;            /* its coherence epoch before the read was sent */
    size_t ckey_len;
    char ckey[CKEY_MAX]; /* allocated to its length: keep it last */
};

static void reader_free(struct reader *rd)
{
    ekv_free(rd);
}

/* ---------------------------------------------------------------- answering from an entry */

static void release_ref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    ekv_cache_entry_release(arg);
}

static void add_u64(struct ekv_http_req *req, const char *name, size_t nlen, uint64_t v)
{
    char buf[24];

    ekv_http_add_header_n(req, name, nlen, buf, ekv_fmt_u64(buf, v));
}

/* Answers @req from @e (a negative entry is a 404) with Cache-Status @cs. Every hit runs this:
 * no printf. */
static void respond_entry(struct ekv_http_req *req, const char *inm, size_t inm_len,
                          struct ekv_cache_entry *e, const char *cs, uint64_t now)
{
    char buf[32], date[32];
    size_t len, mlen, n;
    const char *meta = ekv_cache_entry_meta(e, &mlen);
    uint64_t gen = ekv_cache_entry_generation(e);
    const void *val;
    struct evbuffer *body;

    add_u64(req, "Age", 3, ekv_cache_entry_age_s(e, now));
    ekv_http_add_header_n(req, "Cache-Status", 12, cs, strlen(cs));
    if (ekv_cache_entry_negative(e)) {
        ekv_http_respond_problem(req, 404,
                                 ekv_api_outcome_detail(mlen == 5 && memcmp(meta, "store", 5) == 0
                                                            ? EKV_KS_NO_STORE
                                                            : EKV_KS_NO_KEY));
        return;
    }
    add_u64(req, "Generation", 10, gen);
    buf[0] = '"';
    n = 1 + ekv_fmt_u64(buf + 1, gen);
    buf[n++] = '"';
    ekv_http_add_header_n(req, "ETag", 4, buf, n);
    ekv_http_add_header_n(req, "Metadata", 8, meta, mlen);
    ekv_fmt_http_date(ekv_cache_entry_last_modified_ms(e) / 1000, date);
    ekv_http_add_header_n(req, "Last-Modified", 13, date, 29);
    if (inm != NULL && ekv_etag_match(inm, inm_len, gen)) {
        ekv_http_respond(req, 304, NULL);
        return;
    }
    ekv_http_add_header_n(req, "Content-Type", 12, "application/octet-stream", 24);
    val = ekv_cache_entry_value(e, &len);
    body = evbuffer_new();
    if (body == NULL)
        EKV_FATAL("out of memory answering a hit");
    if (len > 0) {
        /* zero copy: the response keeps the entry alive until its bytes are written */
        ekv_cache_entry_ref(e);
        if (evbuffer_add_reference(body, val, len, release_ref, e) != 0)
            EKV_FATAL("out of memory answering a hit");
    }
    ekv_http_respond(req, 200, body);
    evbuffer_free(body);
}

/* "edgekv; hit; ttl=N[; detail=stale-if-error]" */
static void cache_status_hit(struct ekv_cache_entry *e, uint64_t now, bool stale, char *out,
                             size_t outlen)
{
    uint64_t exp = ekv_cache_entry_expires_ms(e);
    size_t n = 17;

    (void)outlen; /* 96 bytes: always enough */
    memcpy(out, "edgekv; hit; ttl=", 17);
    if (now > exp) { /* past its TTL: at least -1, never "-0" (which would read as fresh) */
        out[n++] = '-';
        n += ekv_fmt_u64(out + n, (now - exp + 999) / 1000);
    } else {
        n += ekv_fmt_u64(out + n, (exp - now) / 1000);
    }
    if (stale)
        memcpy(out + n, "; detail=stale-if-error", 24);
    else
        out[n] = '\0';
}

/* ---------------------------------------------------------------- trust and staleness */

/* Whether hits of @slot may be served: the invalidation link of the master that serves it is
 * fresh (one link for a single Redis). */
static bool cache_trusted(struct ekv_api *api, unsigned slot, uint64_t now)
{
    return api->d.cache != NULL &&
           ekv_coherence_fresh(api->d.coh, slot, now, api->conf->max_staleness_ms);
}

/* Whether @e was read in the current epoch of its slot (always, for a single Redis): a slot
 * whose master flushed, failed over or changed ends its entries without a walk of the cache. */
static bool entry_current(struct ekv_api *api, const struct ekv_cache_entry *e, unsigned slot)
{
    return ekv_cache_entry_tag(e) == ekv_coherence_epoch(api->d.coh, slot);
}

/* While the origin is unreachable (since trouble_since), stale answers are allowed for
 * stale-if-error. @failing_now: an origin read has just failed. */
static bool stale_allowed(struct ekv_api *api, uint64_t now, bool failing_now)
{
    uint64_t since = api->trouble_since_ms;

    if (api->d.cache == NULL || api->conf->stale_if_error_ms == 0)
        return false;
    if (since == 0)
        return failing_now;
    return now - since < api->conf->stale_if_error_ms;
}

/* ---------------------------------------------------------------- origin reads */

/* A 404 entry: of the store (@no_store) or of the key. */
static struct ekv_cache_entry *negative_entry(const struct reader *rd, bool no_store)
{
    const struct ekv_conf *conf = rd->api->conf;
    struct ekv_cache_item it = {.fetched_ms = rd->sent_ms, .negative = true, .tag = rd->epoch};

    it.meta = no_store ? "store" : "key";
    it.meta_len = strlen(it.meta);
    /* cache-max-ttl bounds every entry, cached 404s included */
    it.expires_ms = rd->sent_ms + EKV_MIN(conf->negative_ttl_ms, conf->cache_max_ttl_ms);
    return ekv_cache_entry_new(rd->ckey, rd->ckey_len, &it);
}

/* The entry of the item @item as read, or NULL if the entry format cannot hold it. */
static struct ekv_cache_entry *entry_from_item(struct reader *rd, const struct ekv_ks_item *item)
{
    const struct ekv_conf *conf = rd->api->conf;
    struct ekv_cache_item it = {.fetched_ms = rd->sent_ms, .tag = rd->epoch};
    uint64_t ttl = conf->cache_max_ttl_ms;

    it.value = item->value.p;
    it.value_len = item->value.len;
    it.meta = item->meta.p;
    it.meta_len = item->meta.len;
    if (ekv_meta_check(it.meta, it.meta_len) != NULL)
        it.meta_len = 0; /* not a valid header value (a foreign writer): served empty */
    it.generation = item->generation;
    it.last_modified_ms = item->last_modified_ms;
    if (item->ttl_ms >= 0) {
        /* the remaining TTL was read after the request was sent: count from the send */
        it.item_expires_ms = rd->sent_ms + (uint64_t)item->ttl_ms;
        ttl = EKV_MIN(ttl, (uint64_t)item->ttl_ms);
    } else if (item->ttl_ms != -1) {
        /* no key at PTTL, an item at HMGET: written in between (its invalidation follows).
         * Answered as read, and expired from the start: never stored, never served stale */
        it.item_expires_ms = rd->sent_ms;
        ttl = 0;
    }
    it.expires_ms = rd->sent_ms + ttl;
    return ekv_cache_entry_new(rd->ckey, rd->ckey_len, &it);
}

static bool storable(const struct ekv_api *api, const struct ekv_cache_entry *e)
{
    size_t len;

    if (ekv_cache_entry_negative(e))
        return api->conf->negative_ttl_ms > 0;
    ekv_cache_entry_value(e, &len);
    return len <= api->conf->cache_max_item_bytes;
}

/* A joined reader's answer (fill.h), on its own worker: the leader's entry (@e, ours to release),
 * or its failure. */
static void on_joined(struct ekv_fill_waiter *w, struct ekv_cache_entry *e, bool stale, int fail)
{
    struct reader *rd = (struct reader *)(void *)((char *)w - offsetof(struct reader, w));
    uint64_t now = ekv_clock_now_ms();
    char cs[96];

    if (e != NULL) {
        if (stale)
            cache_status_hit(e, now, true, cs, sizeof(cs));
        else
            snprintf(cs, sizeof(cs), "edgekv; fwd=uri-miss; collapsed");
        respond_entry(rd->req, rd->inm, rd->inm_len, e, cs, now);
        ekv_cache_entry_release(e);
    } else {
        /* the leader's answer, but for the Redis error text: the leader logged it */
        const struct ekv_ks_result res = {
            .outcome = (enum ekv_ks_outcome)fail,
            .malformed = fail == EKV_KS_ORIGIN_PROTOCOL ? "item" : NULL,
        };
        ekv_api_respond_outcome(rd->api, rd->req, &res);
    }
    reader_free(rd);
}

/* Whether @oc says the origin is unreachable (rather than answering wrongly). */
static bool unreachable(enum ekv_ks_outcome oc)
{
    return oc == EKV_KS_ORIGIN_DOWN || oc == EKV_KS_ORIGIN_TIMEOUT;
}

/* The end of an origin read: @e is what the origin holds (NULL: the read failed, as @res says).
 * Finishes the fill, answers its waiters and the client, frees @rd. */
static void read_done(struct reader *rd, struct ekv_cache_entry *e, const struct ekv_ks_result *res)
{
    struct ekv_api *api = rd->api;
    struct ekv_http_req *req = rd->req;
    uint64_t now = ekv_clock_now_ms();
    struct ekv_cache_entry *stale = NULL;
    struct ekv_fill_joined joined;
    bool stored = false;
    char cs[96];

    if (rd->how == LEAD) {
        /* rule 1: nothing is stored while the cache is not trusted (the link dropped since
         * the fill began); the next subscription would flush it anyway */
        /* and not when the slot's epoch moved since the read was sent (rules 1, per node) */
        bool keep = e != NULL && storable(api, e) && cache_trusted(api, rd->slot, now) &&
                    entry_current(api, e, rd->slot);
        stored = ekv_fill_finish(api->d.cache, rd->fill, keep ? e : NULL, now, &joined,
                                 e == NULL ? &stale : NULL);
        if (stale != NULL && !stale_allowed(api, now, unreachable(res->outcome))) {
            ekv_cache_entry_release(stale);
            stale = NULL;
        }
        ekv_fill_answer(&joined, e != NULL ? e : stale, e == NULL, (int)res->outcome);
    }
    if (e != NULL) {
        snprintf(cs, sizeof(cs), "edgekv; fwd=%s%s", rd->bypass ? "request" : "uri-miss",
                 stored ? "; stored" : "");
        respond_entry(req, rd->inm, rd->inm_len, e, cs, now);
    } else if (stale != NULL) {
        ekv_metrics_lookup(api->mw, EKV_ML_STALE);
        cache_status_hit(stale, now, true, cs, sizeof(cs));
        respond_entry(req, rd->inm, rd->inm_len, stale, cs, now);
    } else {
        ekv_api_respond_outcome(api, req, res); /* 503 + Retry-After, or 502 (logged) */
    }
    ekv_cache_entry_release(e);
    ekv_cache_entry_release(stale);
    reader_free(rd);
}

static void on_item(const struct ekv_ks_result *res, const struct ekv_ks_item *item, void *arg)
{
    struct reader *rd = arg;
    const struct ekv_ks_result bad = {.outcome = EKV_KS_ORIGIN_PROTOCOL, .malformed = "item"};
    struct ekv_cache_entry *e;

    switch (res->outcome) {
    case EKV_KS_OK:
        e = entry_from_item(rd, item);
        read_done(rd, e, e != NULL ? res : &bad);
        break;
    case EKV_KS_NO_KEY:
    case EKV_KS_NO_STORE: /* both cached as 404s */
        e = negative_entry(rd, res->outcome == EKV_KS_NO_STORE);
        read_done(rd, e, e != NULL ? res : &bad);
        break;
    default:
        read_done(rd, NULL, res);
    }
}

/* The item read: one keyspace read (one round trip; a second one only for a 404, to tell a
 * missing key from a missing store). The fill was installed before it is sent. */
static void read_origin(struct reader *rd, const char *sid, size_t sid_len, const char *key,
                        size_t key_len)
{
    rd->sent_ms = ekv_clock_now_ms();
    ekv_keyspace_item_get(rd->api->ks, sid, sid_len, key, key_len, on_item, rd);
}

/* no-cache or consistency=strong: the client wants the origin's answer */
static bool wants_origin(struct ekv_http_req *req)
{
    size_t len, qlen;
    const char *cc = ekv_http_req_header(req, "cache-control", &len);
    const char *q = ekv_http_req_query(req, &qlen);
    char val[16];
    size_t vlen;

    if (cc != NULL && len >= 8) {
        for (size_t i = 0; i + 8 <= len; i++)
            if (ekv_strn_caseeq(cc + i, 8, "no-cache"))
                return true;
    }
    return q != NULL && ekv_query_param(q, qlen, "consistency", EKV_QUERY_URL, val, sizeof(val),
                                        &vlen) == EKV_OK &&
           vlen == 6 && memcmp(val, "strong", 6) == 0;
}

/* A hit answered straight from the cache: true if @req was answered. The common case, so it
 * allocates nothing. */
static bool try_hit(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_item_req *ir,
                    const char *ckey, size_t ckey_len, unsigned slot, uint64_t now)
{
    struct ekv_cache_entry *e;
    struct ekv_cache_fill *fill;
    char cs[96];

    if (ekv_cache_lookup(api->d.cache, ckey, ckey_len, now, EKV_CACHE_NO_FILL, &e, &fill, NULL) !=
        EKV_CACHE_HIT)
        return false;
    if (!entry_current(api, e, slot)) {
        /* read before its slot's epoch moved: gone, so that the miss below refills it */
        ekv_cache_entry_release(e);
        ekv_cache_invalidate(api->d.cache, ckey, ckey_len);
        return false;
    }
    ekv_metrics_lookup(api->mw, ekv_cache_entry_negative(e) ? EKV_ML_NEGATIVE_HIT : EKV_ML_HIT);
    cache_status_hit(e, now, false, cs, sizeof(cs));
    respond_entry(req, ir->inm, ir->inm_len, e, cs, now);
    ekv_cache_entry_release(e);
    return true;
}

/* The read of an item of a store of @shards buckets. */
static void read_item(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_item_req *ir,
                      const char *sid, size_t sid_len, unsigned shards)
{
    uint64_t now = ekv_clock_now_ms();
    unsigned slot = ekv_keyspace_item_slot(sid, sid_len, shards, ir->key, ir->key_len);
    bool bypass = wants_origin(req), trusted = cache_trusted(api, slot, now);
    struct reader *rd;
    struct ekv_cache_entry *e;
    char ckey[CKEY_MAX], cs[96];
    size_t ckey_len = ekv_keyspace_cache_key(ckey, sid, sid_len, shards, ir->key, ir->key_len);

    if (trusted && !bypass && try_hit(api, req, ir, ckey, ckey_len, slot, now))
        return;
    rd = ekv_malloc(sizeof(*rd) - sizeof(rd->ckey) + ckey_len);
    memset(rd, 0, offsetof(struct reader, ckey));
    rd->api = api;
    rd->req = req;
    rd->inm = ir->inm;
    rd->inm_len = ir->inm_len;
    rd->bypass = bypass;
    memcpy(rd->ckey, ckey, ckey_len);
    rd->ckey_len = ckey_len;
    rd->slot = slot;
    /* before the fill is installed and the read sent: a move of the epoch after this ends
     * what the read brings back */
    rd->epoch = api->d.cache != NULL ? ekv_coherence_epoch(api->d.coh, slot) : 0;
    rd->how = DIRECT;
    if (api->d.cache == NULL) {
        ekv_metrics_lookup(api->mw, EKV_ML_MISS);
    } else if (!trusted) {
        /* the cache may be stale: the origin decides, unless it is the one in trouble */
        if (!ekv_keyspace_connected(api->ks) && stale_allowed(api, now, false) &&
            (e = ekv_cache_lookup_stale(api->d.cache, ckey, ckey_len, now)) != NULL) {
            ekv_metrics_lookup(api->mw, EKV_ML_STALE);
            cache_status_hit(e, now, true, cs, sizeof(cs));
            respond_entry(req, rd->inm, rd->inm_len, e, cs, now);
            ekv_cache_entry_release(e);
            reader_free(rd);
            return;
        }
        ekv_metrics_lookup(api->mw, EKV_ML_BYPASS);
    } else {
        switch (ekv_fill_begin(api->d.cache, ckey, ckey_len, now, !bypass, &rd->w, api->d.mailbox,
                               on_joined, &e, &rd->fill)) {
        case EKV_FILL_HIT: /* stored between the two lookups */
            if (!entry_current(api, e, slot)) { /* of an older epoch: ask the origin */
                ekv_cache_entry_release(e);
                ekv_cache_invalidate(api->d.cache, ckey, ckey_len);
                ekv_metrics_lookup(api->mw, EKV_ML_MISS);
                break;
            }
            ekv_metrics_lookup(api->mw,
                               ekv_cache_entry_negative(e) ? EKV_ML_NEGATIVE_HIT : EKV_ML_HIT);
            cache_status_hit(e, now, false, cs, sizeof(cs));
            respond_entry(req, rd->inm, rd->inm_len, e, cs, now);
            ekv_cache_entry_release(e);
            reader_free(rd);
            return;
        case EKV_FILL_JOINED:
            ekv_metrics_lookup(api->mw, EKV_ML_COLLAPSED);
            return; /* answered by the fill's leader, through our mailbox (on_joined) */
        case EKV_FILL_LEAD:
            ekv_metrics_lookup(api->mw, bypass ? EKV_ML_BYPASS : EKV_ML_MISS);
            rd->how = LEAD;
            break;
        case EKV_FILL_ALONE:
            ekv_metrics_lookup(api->mw, EKV_ML_MISS);
            break;
        }
    }
    read_origin(rd, sid, sid_len, ir->key, ir->key_len);
}

/* A read waiting for this worker to learn its store's buckets (once per store: they never
 * change). Until then nothing of the store can be looked up in the cache. */
struct learner {
    struct ekv_api *api;
    struct ekv_http_req *req;
    struct ekv_item_req ir;
    size_t sid_len;
    char sid[EKV_ID_MAX];
};

static void on_learned(const struct ekv_ks_result *res, void *arg)
{
    struct learner *l = arg;

    if (res->outcome == EKV_KS_OK)
        read_item(l->api, l->req, &l->ir, l->sid, l->sid_len, res->shards);
    else
        ekv_api_respond_outcome(l->api, l->req, res); /* 404 "store not found", 503, 502 */
    ekv_free(l);
}

void ekv_read_item(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_item_req *ir,
                   const char *sid, size_t sid_len)
{
    unsigned shards = ekv_keyspace_store_shards(api->ks, sid, sid_len);
    struct learner *l;

    if (shards != 0) {
        read_item(api, req, ir, sid, sid_len, shards);
        return;
    }
    l = ekv_malloc(sizeof(*l));
    l->api = api;
    l->req = req;
    l->ir = *ir;
    l->sid_len = EKV_MIN(sid_len, sizeof(l->sid));
    memcpy(l->sid, sid, l->sid_len);
    ekv_keyspace_store_check(api->ks, l->sid, l->sid_len, on_learned, l);
}

/* ---------------------------------------------------------------- writes and names */

void ekv_api_invalidate_item(struct ekv_api *api, const struct ekv_ks_result *res,
                             const char *sid, size_t sid_len, const char *key, size_t key_len)
{
    char ckey[CKEY_MAX];

    if (api->d.cache != NULL && res->shards != 0) /* 0: nothing reached the store's buckets */
        ekv_cache_invalidate(api->d.cache, ckey,
                             ekv_keyspace_cache_key(ckey, sid, sid_len, res->shards, key, key_len));
}

void ekv_api_forget_names(struct ekv_api *api)
{
    if (api->d.names != NULL)
        ekv_cache_flush(api->d.names);
}

/* The resolution held by @e (released here): a store id, or a cached "no such name". */
static int names_answer(struct ekv_cache_entry *e, char *sid)
{
    int rc = EKV_ENOTFOUND;

    if (!ekv_cache_entry_negative(e)) {
        size_t slen;
        const char *v = ekv_cache_entry_value(e, &slen);
        slen = EKV_MIN(slen, (size_t)EKV_ID_MAX);
        memcpy(sid, v, slen);
        sid[slen] = '\0';
        rc = EKV_OK;
    }
    ekv_cache_entry_release(e);
    return rc;
}

int ekv_names_lookup(struct ekv_api *api, const char *name, size_t len, char *sid,
                     struct ekv_cache_fill **fill)
{
    uint64_t now = ekv_clock_now_ms();
    struct ekv_cache_entry *e;

    *fill = NULL;
    if (!cache_trusted(api, ekv_keyspace_registry_slot(), now)) {
        /* with Redis unreachable, a known name keeps resolving for stale-if-error (so the
         * item read behind it can be answered stale too) */
        if (api->d.names == NULL || ekv_keyspace_connected(api->ks) ||
            !stale_allowed(api, now, false) ||
            (e = ekv_cache_lookup_stale(api->d.names, name, len, now)) == NULL)
            return EKV_EAGAIN;
        return names_answer(e, sid);
    }
    switch (ekv_cache_lookup(api->d.names, name, len, now, EKV_CACHE_NO_FILL, &e, fill, NULL)) {
    case EKV_CACHE_HIT:
        return names_answer(e, sid);
    default:
        break;
    }
    /* not cached: lead a fill of our own (no joining: resolutions are cheap), installed before
     * the origin is asked so that a store or link change meanwhile poisons it */
    if (ekv_fill_begin(api->d.names, name, len, now, false, NULL, NULL, NULL, &e, fill) !=
        EKV_FILL_LEAD)
        *fill = NULL;
    return EKV_EAGAIN;
}

void ekv_names_finish(struct ekv_api *api, struct ekv_cache_fill *fill, const char *name,
                      size_t len, const char *sid, size_t sid_len, bool failed)
{
    uint64_t now = ekv_clock_now_ms();
    struct ekv_cache_item it = {.fetched_ms = now};
    struct ekv_cache_entry *e = NULL;
    struct ekv_fill_joined joined;

    if (fill == NULL)
        return;
    if (!failed) {
        it.negative = sid == NULL;
        it.value = sid;
        it.value_len = sid != NULL ? sid_len : 0;
        it.expires_ms = now + (sid != NULL ? api->conf->cache_max_ttl_ms : api->conf->negative_ttl_ms);
        e = ekv_cache_entry_new(name, len, &it);
    }
    (void)ekv_fill_finish(api->d.names, fill, e, now, &joined, NULL);
    ekv_fill_answer(&joined, e, false, 0); /* nobody joins a resolution: a no-op */
    ekv_cache_entry_release(e);
}
