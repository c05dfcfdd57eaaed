/* read.c - item reads (GET/HEAD) through the edge cache, and the cached /kv/{name} resolutions.
 *
 * The cache is trusted only while the invalidation link is fresh (DESIGN.md, coherence rules
 * 1-2); otherwise reads go to the origin and store nothing, except that while the origin itself
 * is unreachable an entry may be served stale for up to stale-if-error, never past its item's
 * TTL. A miss installs a fill before the origin read; concurrent misses, on any worker, join it
 * and are answered on their own worker through its mailbox. Hits send the cached, immutable
 * value by reference (no copy): the response holds a reference until it has been written. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/cache.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/fill.h"
#include "edgekv/http.h"
#include "edgekv/inval.h"
#include "edgekv/metrics.h"
#include "edgekv/origin.h"
#include "edgekv/text.h"

#include "api_int.h"

#define CKEY_MAX (EKV_ID_MAX + 3 + EKV_KEY_MAX)

enum how {
    DIRECT, /* no cache involved: answer from the origin's reply */
    LEAD,   /* leading a fill: store the result, answer the joined readers */
};

struct reader {
    struct ekv_cache_waiter w; /* the cache hands this back to the fill's leader */
    struct ekv_mailbox_msg msg;
    struct ekv_api *api;       /* the reader's own worker */
    struct ekv_http_req *req;
    const char *inm;           /* If-None-Match (a view into req) */
    size_t inm_len;
    enum how how;
    bool bypass;               /* no-cache / consistency=strong */
    struct ekv_cache_fill *fill;
    uint64_t sent_ms;          /* when the origin read was sent: TTLs count from here */
    struct ekv_cache_entry *result; /* a joined reader's answer (a reference), or NULL */
    int fail;                  /* a joined reader's failure status (503, 502) */
    bool stale;
    size_t ckey_len;
    char ckey[CKEY_MAX]; /* allocated to its length: keep it last */
};

uint64_t ekv_api_now_ms(void)
{
    return ekv_mono_ms();
}

static void reader_free(struct reader *rd)
{
    ekv_cache_entry_release(rd->result);
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
                                 mlen == 5 && memcmp(meta, "store", 5) == 0 ? "store not found"
                                                                             : "key not found");
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
        abort();
    if (len > 0) {
        /* zero copy: the response keeps the entry alive until its bytes are written */
        ekv_cache_entry_ref(e);
        if (evbuffer_add_reference(body, val, len, release_ref, e) != 0)
            abort();
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

static bool cache_trusted(struct ekv_api *api, uint64_t now)
{
    return api->d.cache != NULL &&
           ekv_inval_fresh(api->d.inval, now, api->conf->max_staleness_ms);
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

/* The read pipeline's replies (read_origin()): PTTL, HMGET's fields. */
enum { R_PTTL, R_FIELDS, R_COUNT };
/* HMGET's fields, in the order asked */
enum { F_VALUE, F_META, F_GEN, F_MODIFIED, F_COUNT };

/* A 404 entry: of the store (@no_store) or of the key. */
static struct ekv_cache_entry *negative_entry(const struct reader *rd, bool no_store)
{
    const struct ekv_conf *conf = rd->api->conf;
    struct ekv_cache_item it = {.fetched_ms = rd->sent_ms, .negative = true};

    it.meta = no_store ? "store" : "key";
    it.meta_len = strlen(it.meta);
    /* cache-max-ttl bounds every entry, cached 404s included */
    it.expires_ms = rd->sent_ms + EKV_MIN(conf->negative_ttl_ms, conf->cache_max_ttl_ms);
    return ekv_cache_entry_new(rd->ckey, rd->ckey_len, &it);
}

/* Whether the read pipeline's reply @r (no error in it) is well formed; *@found: it holds an
 * item (a generation). */
static bool reply_ok(const struct redisReply *r, bool *found)
{
    const struct redisReply *f;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != R_COUNT ||
        r->element[R_PTTL]->type != REDIS_REPLY_INTEGER)
        return false;
    f = r->element[R_FIELDS];
    if (f->type != REDIS_REPLY_ARRAY || f->elements != F_COUNT)
        return false;
    *found = f->element[F_GEN]->type != REDIS_REPLY_NIL;
    return true;
}

/* The entry of the item in the read pipeline's reply @r (reply_ok(), found), or NULL if it is
 * malformed. */
static struct ekv_cache_entry *entry_from_reply(struct reader *rd, const struct redisReply *r)
{
    const struct ekv_conf *conf = rd->api->conf;
    struct ekv_cache_item it = {.fetched_ms = rd->sent_ms};
    const struct redisReply *f = r->element[R_FIELDS], *pttl = r->element[R_PTTL];
    long long gen = ekv_reply_int(f, F_GEN, -1);
    uint64_t ttl = conf->cache_max_ttl_ms;

    if (gen < 0)
        return NULL;
    /* a missing value or metadata field reads as empty (a foreign writer's item) */
    it.value = ekv_reply_str(f, F_VALUE, &it.value_len);
    if (it.value == NULL)
        it.value = "";
    it.meta = ekv_reply_str(f, F_META, &it.meta_len);
    if (it.meta == NULL)
        it.meta = "";
    if (ekv_meta_check(it.meta, it.meta_len) != NULL)
        it.meta_len = 0; /* not a valid header value (a foreign writer): served empty */
    it.generation = (uint64_t)gen;
    it.last_modified_ms = ekv_reply_int(f, F_MODIFIED, 0);
    if (pttl->integer >= 0) {
        /* the remaining TTL was read after the request was sent: count from the send */
        it.item_expires_ms = rd->sent_ms + (uint64_t)pttl->integer;
        ttl = EKV_MIN(ttl, (uint64_t)pttl->integer);
    } else if (pttl->integer != -1) {
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

static void answer_joined(void *arg)
{
    struct reader *rd = arg;
    uint64_t now = ekv_api_now_ms();
    char cs[96];

    if (rd->result != NULL) {
        if (rd->stale)
            cache_status_hit(rd->result, now, true, cs, sizeof(cs));
        else
            snprintf(cs, sizeof(cs), "edgekv; fwd=uri-miss; collapsed");
        respond_entry(rd->req, rd->inm, rd->inm_len, rd->result, cs, now);
    } else if (rd->fail == 502) {
        ekv_http_respond_problem(rd->req, 502, "the origin answered with an error");
    } else {
        ekv_http_add_header(rd->req, "Retry-After", "1");
        ekv_http_respond_problem(rd->req, 503, "the origin is unavailable");
    }
    reader_free(rd);
}

/* Hands the fill's outcome to every reader that joined it, on its own worker. */
static void answer_waiters(struct ekv_cache_waiter *w, struct ekv_cache_entry *e, bool stale,
                           int fail)
{
    while (w != NULL) {
        struct reader *rd = (struct reader *)(void *)w;
        struct ekv_cache_waiter *next = w->next;

        if (e != NULL)
            ekv_cache_entry_ref(e);
        rd->result = e;
        rd->stale = stale;
        rd->fail = fail;
        ekv_mailbox_post(rd->api->d.mailbox, &rd->msg, answer_joined, rd);
        w = next;
    }
}

/* The end of an origin read: @e is what the origin holds (NULL: the read failed, with @fail 503
 * or 502, and @status and Redis's error @err for the log). Finishes the fill, answers its
 * waiters and the client, frees @rd. */
static void read_done(struct reader *rd, struct ekv_cache_entry *e, int fail, int status,
                      const struct redisReply *err)
{
    struct ekv_api *api = rd->api;
    struct ekv_http_req *req = rd->req;
    uint64_t now = ekv_api_now_ms();
    struct ekv_cache_entry *stale = NULL;
    struct ekv_cache_waiter *waiters = NULL;
    bool stored = false;
    char cs[96];

    if (rd->how == LEAD) {
        /* rule 1: nothing is stored while the cache is not trusted (the link dropped since
         * the fill began); the next subscription would flush it anyway */
        stored = ekv_cache_fill_finish(api->d.cache, rd->fill,
                                       e != NULL && storable(api, e) && cache_trusted(api, now)
                                           ? e
                                           : NULL,
                                       now, &waiters, e == NULL ? &stale : NULL);
        if (stale != NULL && !stale_allowed(api, now, fail == 503)) {
            ekv_cache_entry_release(stale);
            stale = NULL;
        }
        answer_waiters(waiters, e != NULL ? e : stale, e == NULL, fail);
    }
    if (e != NULL) {
        snprintf(cs, sizeof(cs), "edgekv; fwd=%s%s", rd->bypass ? "request" : "uri-miss",
                 stored ? "; stored" : "");
        respond_entry(req, rd->inm, rd->inm_len, e, cs, now);
    } else if (stale != NULL) {
        ekv_metrics_lookup(api->mw, EKV_ML_STALE);
        cache_status_hit(stale, now, true, cs, sizeof(cs));
        respond_entry(req, rd->inm, rd->inm_len, stale, cs, now);
    } else if (fail == 503 || err != NULL) {
        (void)ekv_api_origin_ok(api, req, status, err); /* 503 + Retry-After, or 502 (logged) */
    } else {
        ekv_http_respond_problem(req, 502, "the origin holds a malformed item");
    }
    ekv_cache_entry_release(e);
    ekv_cache_entry_release(stale);
    reader_free(rd);
}

/* Ends the read if the origin is unavailable (503) or answered with an error (502): true if it
 * did. */
static bool origin_failed(struct reader *rd, int status, const struct redisReply *r)
{
    const struct redisReply *err;

    if (status != EKV_OK)
        read_done(rd, NULL, 503, status, NULL);
    else if ((err = ekv_origin_pipeline_error(r)) != NULL)
        read_done(rd, NULL, 502, status, err);
    else
        return false;
    return true;
}

/* The answer to check_store(). */
static void on_store(int status, const struct redisReply *r, void *arg)
{
    struct reader *rd = arg;
    const struct redisReply *exists;

    if (origin_failed(rd, status, r))
        return;
    exists = r->elements == 1 ? r->element[0] : NULL;
    read_done(rd,
              exists != NULL && exists->type == REDIS_REPLY_INTEGER
                  ? negative_entry(rd, exists->integer == 0)
                  : NULL,
              502, status, NULL);
}

/* No such item: is there such a store? A second round trip, for 404s alone (and those are
 * cached): EXISTS <ns>g:{<sid>}. The fill stays in flight meanwhile (a write since the first
 * command poisons it as well). */
static void check_store(struct reader *rd)
{
    const char *sid = rd->ckey + 1, *end = memchr(rd->ckey, '}', rd->ckey_len);
    size_t glen;
    char *gen = ekv_api_rkey(rd->api, "g:{", sid, (size_t)(end - sid), "}", NULL, 0, &glen);
    const char *exists[] = {"EXISTS", gen};
    const size_t exists_len[] = {6, glen};
    const struct ekv_origin_argv cmd = {2, exists, exists_len};

    ekv_origin_pipeline(rd->api->origin, EKV_MO_GET, on_store, rd, 1, &cmd);
    ekv_free(gen);
}

static void on_item(int status, const struct redisReply *r, void *arg)
{
    struct reader *rd = arg;
    bool found = false;

    if (origin_failed(rd, status, r))
        return;
    if (!reply_ok(r, &found))
        read_done(rd, NULL, 502, status, NULL);
    else if (!found)
        check_store(rd);
    else
        read_done(rd, entry_from_reply(rd, r), 502, status, NULL);
}

/* The item read, in one round trip: a pipeline of two plain commands (a script run costs Redis
 * ten times more, a MULTI/EXEC around them twice as much):
 *   PTTL <ns>i:{<sid>}:<key>; HMGET <ns>i:{<sid>}:<key> v m g t
 * Not atomic, and it need not be: a write that runs between them was sent after the fill was
 * installed, and its invalidation poisons the fill (or removes what it stored), so nothing read
 * across a write stays in the cache. What the client gets is the item as HMGET read it (value,
 * metadata and generation come from that one command). HMGET goes last: the origin copies the
 * earlier replies, and integers cost nothing to copy. No item: check_store(). Tagged EKV_MO_GET
 * for the metrics. */
static void read_origin(struct reader *rd, const char *sid, size_t sid_len, const char *key,
                        size_t key_len)
{
    struct ekv_api *api = rd->api;
    size_t ilen;
    char *item = ekv_api_rkey(api, "i:{", sid, sid_len, "}:", key, key_len, &ilen);
    const char *hmget[] = {"HMGET", item, "v", "m", "g", "t"}, *pttl[] = {"PTTL", item};
    const size_t hmget_len[] = {5, ilen, 1, 1, 1, 1}, pttl_len[] = {4, ilen};
    const struct ekv_origin_argv cmds[R_COUNT] = {
        [R_PTTL] = {2, pttl, pttl_len},
        [R_FIELDS] = {6, hmget, hmget_len},
    };

    rd->sent_ms = ekv_api_now_ms();
    ekv_origin_pipeline(api->origin, EKV_MO_GET, on_item, rd, R_COUNT, cmds);
    ekv_free(item);
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

/* "{<sid>}:<key>" into @out (CKEY_MAX bytes); returns the length. */
static size_t cache_key(char *out, const char *sid, size_t sid_len, const char *key,
                        size_t key_len)
{
    out[0] = '{';
    memcpy(out + 1, sid, sid_len);
    out[sid_len + 1] = '}';
    out[sid_len + 2] = ':';
    memcpy(out + sid_len + 3, key, key_len);
    return sid_len + 3 + key_len;
}

/* A hit answered straight from the cache: true if @req was answered. The common case, so it
 * allocates nothing. */
static bool try_hit(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_item_req *ir,
                    const char *ckey, size_t ckey_len, uint64_t now)
{
    struct ekv_cache_entry *e;
    struct ekv_cache_fill *fill;
    char cs[96];

    if (ekv_cache_lookup(api->d.cache, ckey, ckey_len, now, EKV_CACHE_NO_FILL, &e, &fill, NULL) !=
        EKV_CACHE_HIT)
        return false;
    ekv_metrics_lookup(api->mw, ekv_cache_entry_negative(e) ? EKV_ML_NEGATIVE_HIT : EKV_ML_HIT);
    cache_status_hit(e, now, false, cs, sizeof(cs));
    respond_entry(req, ir->inm, ir->inm_len, e, cs, now);
    ekv_cache_entry_release(e);
    return true;
}

void ekv_read_item(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_item_req *ir,
                   const char *sid, size_t sid_len)
{
    uint64_t now = ekv_api_now_ms();
    bool bypass = wants_origin(req), trusted = cache_trusted(api, now);
    struct reader *rd;
    struct ekv_cache_entry *e;
    char ckey[CKEY_MAX], cs[96];
    size_t ckey_len = cache_key(ckey, sid, sid_len, ir->key, ir->key_len);

    if (trusted && !bypass && try_hit(api, req, ir, ckey, ckey_len, now))
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
    rd->how = DIRECT;
    if (api->d.cache == NULL) {
        ekv_metrics_lookup(api->mw, EKV_ML_MISS);
    } else if (!trusted) {
        /* the cache may be stale: the origin decides, unless it is the one in trouble */
        if (!ekv_origin_connected(api->origin) && stale_allowed(api, now, false) &&
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
        switch (ekv_cache_lookup(api->d.cache, ckey, ckey_len, now,
                                 bypass ? EKV_CACHE_NO_JOIN : 0, &e, &rd->fill, &rd->w)) {
        case EKV_CACHE_HIT: /* stored between the two lookups */
            ekv_metrics_lookup(api->mw,
                               ekv_cache_entry_negative(e) ? EKV_ML_NEGATIVE_HIT : EKV_ML_HIT);
            cache_status_hit(e, now, false, cs, sizeof(cs));
            respond_entry(req, rd->inm, rd->inm_len, e, cs, now);
            ekv_cache_entry_release(e);
            reader_free(rd);
            return;
        case EKV_CACHE_JOINED:
            ekv_metrics_lookup(api->mw, EKV_ML_COLLAPSED);
            return; /* answered by the fill's leader, through our mailbox */
        case EKV_CACHE_LEAD:
            ekv_metrics_lookup(api->mw, bypass ? EKV_ML_BYPASS : EKV_ML_MISS);
            rd->how = LEAD;
            break;
        case EKV_CACHE_MISS:
            ekv_metrics_lookup(api->mw, EKV_ML_MISS);
            break;
        }
    }
    read_origin(rd, sid, sid_len, ir->key, ir->key_len);
}

/* ---------------------------------------------------------------- writes and names */

void ekv_api_invalidate_item(struct ekv_api *api, const char *sid, size_t sid_len,
                             const char *key, size_t key_len)
{
    char ckey[CKEY_MAX];

    if (api->d.cache != NULL)
        ekv_cache_invalidate(api->d.cache, ckey, cache_key(ckey, sid, sid_len, key, key_len));
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
    uint64_t now = ekv_api_now_ms();
    struct ekv_cache_entry *e;

    *fill = NULL;
    if (!cache_trusted(api, now)) {
        /* with Redis unreachable, a known name keeps resolving for stale-if-error (so the
         * item read behind it can be answered stale too) */
        if (api->d.names == NULL || ekv_origin_connected(api->origin) ||
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
    if (ekv_cache_lookup(api->d.names, name, len, now, EKV_CACHE_NO_JOIN, &e, fill, NULL) !=
        EKV_CACHE_LEAD)
        *fill = NULL;
    return EKV_EAGAIN;
}

void ekv_names_finish(struct ekv_api *api, struct ekv_cache_fill *fill, const char *name,
                      size_t len, const char *sid, size_t sid_len, bool failed)
{
    uint64_t now = ekv_api_now_ms();
    struct ekv_cache_item it = {.fetched_ms = now};
    struct ekv_cache_entry *e = NULL;
    struct ekv_cache_waiter *waiters;

    if (fill == NULL)
        return;
    if (!failed) {
        it.negative = sid == NULL;
        it.value = sid;
        it.value_len = sid != NULL ? sid_len : 0;
        it.expires_ms = now + (sid != NULL ? api->conf->cache_max_ttl_ms : api->conf->negative_ttl_ms);
        e = ekv_cache_entry_new(name, len, &it);
    }
    (void)ekv_cache_fill_finish(api->d.names, fill, e, now, &waiters, NULL);
    ekv_cache_entry_release(e);
}
