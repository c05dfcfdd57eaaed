/* check_cache_e2e.c - the edge cache end to end (issue 4, DESIGN.md "Request paths" and
 * "Coherence" rules 3-5, API.md "Caching semantics" and its Cache-Status table): a real
 * redis-server on a unix socket and the real edgekv binary, driven over HTTP.
 *
 * Covers: a hit after a miss (Cache-Status, Age, ETag, Generation, Metadata, HEAD, 304),
 * coalesced misses (200 clients while Redis is paused: one origin read per worker at most),
 * the no-cache / consistency=strong bypass, read-your-writes through both paths, DELETE and
 * batch, a write racing an in-flight fill, concurrent readers never going back past an
 * acknowledged write, negative caching, item TTLs and cache-max-ttl, cache-max-item-bytes,
 * foreign writes straight into Redis (script, HSET, DEL, PEXPIRE, FLUSHALL), a lost
 * invalidation link, stale-if-error (its bound, stale-if-error 0, the edge path), a failed
 * fill answering all its waiters, a slow reader keeping its zero-copy value, cached /kv names,
 * max-staleness with a silent Redis, /metrics counters, and cache-max-bytes 0.
 * Tests marked "Regression test" guard bugs this suite found (see their comments).
 *
 * Every test starts its own redis-server and edgekv (their options differ, and several tests
 * stop or kill Redis); the checked teardown stops edgekv with SIGTERM and expects a clean exit,
 * so that in a sanitizer build LeakSanitizer checks the cache paths too. Timing assertions are
 * correctness deadlines with generous margins, never performance targets. */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "apic.h"
#include "testutil.h"

#define TCASE_TIMEOUT 40
#define STORE "cachestore"
#define NCLIENTS 200

static struct ekv_test_redis *redis;
static struct ekv_test_proc *ek;
static unsigned short port;
static char sid[32];
static char tagbuf[64];

/* The hash tag of item @key's bucket in the current store (store-shards' default buckets): one
 * use per expression. */
#define TAG(key) ekv_test_tag(tagbuf, sizeof(tagbuf), sid, (key), EKV_TEST_SHARDS)

/* ---------------------------------------------------------------- fixtures */

/* Polls GET @path until it answers @status (at most @ms). */
static void wait_status(const char *path, int status, unsigned ms)
{
    uint64_t end = ekv_test_now_ms() + ms;

    while (ekv_test_get_status(port, path) != status) {
        ck_assert_msg(ekv_test_now_ms() < end, "GET %s never answered %d", path, status);
        ekv_test_sleep_ms(20);
    }
}

/* redis-server, then edgekv on it with the extra arguments (NULL-terminated), then a store. */
static void start(const char *arg, ...)
{
    const char *args[40];
    size_t n = 0;
    va_list ap;

    redis = ekv_test_redis_start();
    args[n++] = "--origin";
    args[n++] = redis->origin;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, 38);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    ek = ekv_test_edgekv_startv(args);
    port = ek->port;
    wait_status("/readyz", 200, 5000);
    apic_create_store(port, NULL, STORE, sid);
}

static void setup(void)
{
    redis = NULL;
    ek = NULL;
    port = 0;
}

/* A clean exit on SIGTERM (LeakSanitizer runs then in the sanitizer build), then nothing left. */
static void teardown(void)
{
    int status = 0;
    char *log = NULL;

    if (redis != NULL && redis->proc != NULL)
        ekv_test_proc_signal(redis->proc, SIGCONT); /* a test that failed while it was stopped */
    if (ek != NULL && ekv_test_proc_signal(ek, SIGTERM) == 0) {
        status = ekv_test_proc_wait(ek, 15000);
        if (status != 0)
            log = ekv_test_proc_log(ek);
    }
    ekv_test_proc_free(ek);
    ek = NULL;
    ekv_test_redis_stop(redis);
    redis = NULL;
    ekv_test_kill_strays();
    ck_assert_msg(status == 0, "edgekv exited with status %d on SIGTERM; its output:\n%s", status,
                  log != NULL ? log : "");
    free(log);
}

/* ---------------------------------------------------------------- helpers */

/* /resources/stores/kv/<sid>/keys/<key> */
static const char *kp(const char *key)
{
    static char buf[8][512];
    static int i;
    char *b = buf[i++ % 8];

    snprintf(b, 512, "/resources/stores/kv/%s/keys/%s", sid, key);
    return b;
}

/* /kv/<store name>/<key>: the edge path */
static const char *ep(const char *key)
{
    static char buf[8][512];
    static int i;
    char *b = buf[i++ % 8];

    snprintf(b, 512, "/kv/%s/%s", STORE, key);
    return b;
}

static int get(const char *path, const char *hdrs, struct ekv_test_resp *r)
{
    return apic_req(port, "GET", path, hdrs, NULL, 0, r);
}

static const char *cstatus(const struct ekv_test_resp *r)
{
    const char *cs = ekv_test_resp_header(r, "Cache-Status");

    return cs != NULL ? cs : "(none)";
}

/* Parses "edgekv; hit; ttl=<int>" followed by exactly @tail ("" or "; detail=..."). */
static bool parse_hit(const char *cs, const char *tail, long *ttl)
{
    static const char pre[] = "edgekv; hit; ttl=";
    char *end;

    if (cs == NULL || strncmp(cs, pre, sizeof(pre) - 1) != 0)
        return false;
    cs += sizeof(pre) - 1;
    if (*cs != '-' && (*cs < '0' || *cs > '9'))
        return false;
    *ttl = strtol(cs, &end, 10);
    return end != cs && strcmp(end, tail) == 0;
}

/* A fresh hit: exactly "edgekv; hit; ttl=N" */
static bool is_fresh_hit(const struct ekv_test_resp *r, long *ttl)
{
    long dummy;

    return parse_hit(ekv_test_resp_header(r, "Cache-Status"), "", ttl != NULL ? ttl : &dummy);
}

static bool is_stale_hit(const struct ekv_test_resp *r, long *ttl)
{
    long dummy;

    return parse_hit(ekv_test_resp_header(r, "Cache-Status"), "; detail=stale-if-error",
                     ttl != NULL ? ttl : &dummy);
}

static void expect_cs(const struct ekv_test_resp *r, const char *cs)
{
    ck_assert_msg(strcmp(cstatus(r), cs) == 0, "Cache-Status \"%s\", expected \"%s\" (status %d)",
                  cstatus(r), cs, r->status);
}

static void expect_body(const struct ekv_test_resp *r, const void *val, size_t len)
{
    ck_assert_msg(r->status == 200, "status %d, expected 200: %.*s", r->status,
                  (int)r->body_len, r->body);
    ck_assert_msg(r->body_len == len && memcmp(r->body, val, len) == 0,
                  "body \"%.*s\" (%zu bytes), expected \"%.*s\" (%zu bytes)",
                  (int)(r->body_len > 80 ? 80 : r->body_len), r->body, r->body_len,
                  (int)(len > 80 ? 80 : len), (const char *)val, len);
}

static void expect_status(const struct ekv_test_resp *r, int status)
{
    ck_assert_msg(r->status == status, "status %d, expected %d (Cache-Status \"%s\"): %.*s",
                  r->status, status, cstatus(r), (int)r->body_len, r->body);
}

/* A metric series' value (the whole series name, labels included, e.g.
 * `edgekv_cache_lookups_total{result="hit"}`); fails if /metrics does not have it. */
static uint64_t metric(const char *series)
{
    double v = apic_metric(port, series);

    ck_assert_msg(v != APIC_METRIC_UNREACHABLE, "/metrics did not answer 200");
    ck_assert_msg(v != APIC_METRIC_ABSENT, "no series %s in /metrics", series);
    return (uint64_t)v;
}

static uint64_t lookups(const char *result)
{
    char series[128];

    snprintf(series, sizeof(series), "edgekv_cache_lookups_total{result=\"%s\"}", result);
    return metric(series);
}

/* Every lookup, whatever its result. */
static uint64_t all_lookups(void)
{
    static const char *const results[] = {"hit",       "negative_hit", "miss",
                                          "collapsed", "stale",        "bypass"};
    uint64_t sum = 0;

    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
        sum += lookups(results[i]);
    return sum;
}

/* Item reads Redis has run, from INFO commandstats: each is one pipeline ending in an HMGET
 * (src/api/read.c), and nothing else this suite makes edgekv send runs HMGET (only the store
 * listing's script does), so this counts the reads alone. */
static uint64_t origin_reads(void)
{
    static const char name[] = "cmdstat_hmget:calls=";
    char *info = ekv_test_redis_cmd(redis, "INFO commandstats");
    const char *p = strstr(info, name);
    uint64_t n = p != NULL ? strtoull(p + strlen(name), NULL, 10) : 0;

    free(info);
    return n;
}

/* Writes and waits until the invalidation the write causes has reached edgekv (its counter
 * moved), so that a later "stored" is not undone by our own write's late invalidation. */
static uint64_t inval_count(void)
{
    return metric("edgekv_invalidations_total");
}

static void wait_invals(uint64_t before, uint64_t n)
{
    uint64_t end = ekv_test_now_ms() + 3000, seen, quiet_since;

    while ((seen = inval_count()) < before + n) {
        ck_assert_msg(ekv_test_now_ms() < end, "the write's invalidation never arrived");
        ekv_test_sleep_ms(5);
    }
    /* an earlier write's late invalidation may have been the one counted: wait until none has
     * arrived for a while, so that ours is in too (under sanitizers they can lag) */
    quiet_since = ekv_test_now_ms();
    while (ekv_test_now_ms() - quiet_since < 150) {
        uint64_t now_seen;
        ck_assert_msg(ekv_test_now_ms() < end + 3000, "invalidations never settled");
        ekv_test_sleep_ms(10);
        now_seen = inval_count();
        if (now_seen != seen) {
            seen = now_seen;
            quiet_since = ekv_test_now_ms();
        }
    }
}

/* PUT @val (with @hdrs) and wait for its invalidation; returns the new generation. */
static uint64_t put_settled(const char *key, const void *val, size_t len, const char *hdrs)
{
    struct ekv_test_resp r = {0};
    uint64_t before = inval_count(), gen;
    const char *g;

    apic_req(port, "PUT", kp(key), hdrs, val, len, &r);
    expect_status(&r, 200);
    g = ekv_test_resp_header(&r, "Generation");
    ck_assert_ptr_nonnull(g);
    gen = strtoull(g, NULL, 10);
    ekv_test_resp_free(&r);
    wait_invals(before, 1);
    return gen;
}

static uint64_t put_str(const char *key, const char *val)
{
    return put_settled(key, val, strlen(val), NULL);
}

/* GET @path, expect 200 with @val, and Cache-Status @cs (NULL: a fresh hit). */
static void get_expect(const char *path, const char *val, const char *cs)
{
    struct ekv_test_resp r = {0};

    get(path, NULL, &r);
    expect_body(&r, val, strlen(val));
    if (cs != NULL)
        expect_cs(&r, cs);
    else
        ck_assert_msg(is_fresh_hit(&r, NULL), "Cache-Status \"%s\", expected a hit", cstatus(&r));
    ekv_test_resp_free(&r);
}

/* Runs item_put.lua with EVAL, as another program would (README "Writing items from another
 * program"); returns the new generation. */
static uint64_t foreign_put(const char *key, const char *val, const char *ttl_ms)
{
    char path[1024], item[256], index[128], counter[128], tag[64];
    const char *srcdir = getenv("EKV_SRCDIR");
    static char *script; /* read once per process (one test): freed at its exit */
    char *reply;
    uint64_t gen;

    snprintf(path, sizeof(path), "%s/src/keyspace/lua/item_put.lua",
             srcdir != NULL ? srcdir : ".");
    if (script == NULL)
        script = ekv_test_read_file(path, NULL);
    ck_assert_msg(script != NULL, "cannot read %s (set EKV_SRCDIR)", path);
    ekv_test_tag(tag, sizeof(tag), sid, key, EKV_TEST_SHARDS);
    snprintf(item, sizeof(item), "edgekv:i:{%s}:%s", tag, key);
    snprintf(index, sizeof(index), "edgekv:x:{%s}", tag);
    snprintf(counter, sizeof(counter), "edgekv:g:{%s}", tag);
    reply = ekv_test_redis_cmd(redis, "EVAL %s 3 %s %s %s %s %s %b %s set %b 26214400", script,
                               item, index, counter, key, val, "", (size_t)0, ttl_ms, "",
                               (size_t)0);
    /* {OK, generation, last-modified}: OK is domain code 0 (keyspace_int.h) */
    ck_assert_msg(strncmp(reply, "0\n", 2) == 0, "item_put.lua: %s", reply);
    gen = strtoull(reply + 2, NULL, 10);
    free(reply);
    return gen;
}

/* Polls GET @path (at most @ms) until it answers @status (and, for 200, the body @val); returns
 * the time it took. */
static uint64_t poll_until(const char *path, int status, const char *val, unsigned ms)
{
    uint64_t t0 = ekv_test_now_ms();

    for (;;) {
        struct ekv_test_resp r = {0};
        bool ok;

        get(path, NULL, &r);
        ok = r.status == status &&
             (val == NULL || (r.body_len == strlen(val) && memcmp(r.body, val, r.body_len) == 0));
        ekv_test_resp_free(&r);
        if (ok)
            return ekv_test_now_ms() - t0;
        ck_assert_msg(ekv_test_now_ms() - t0 < ms, "GET %s: no %d%s%s within %u ms", path,
                      status, val != NULL ? " " : "", val != NULL ? val : "", ms);
        ekv_test_sleep_ms(10);
    }
}

/* Sends GET @path (with @hdrs, NULL: none, and Connection: close) on @c without reading. */
static void send_get(struct ekv_test_conn *c, const char *path, const char *hdrs)
{
    ck_assert_int_eq(ekv_test_sendf(c, "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n",
                                    path, hdrs != NULL ? hdrs : ""),
                     0);
}

/* ---------------------------------------------------------------- hit after miss */

START_TEST(test_hit_after_miss)
{
    struct ekv_test_resp r1 = {0}, r2 = {0}, r = {0};
    char inm[64];
    long ttl;
    uint64_t gen, calls;

    start("--cache-max-ttl", "60s", NULL);
    gen = put_settled("k", "hello", 5, "metadata: m=1\r\n");

    get(kp("k"), NULL, &r1);
    expect_body(&r1, "hello", 5);
    expect_cs(&r1, "edgekv; fwd=uri-miss; stored");
    calls = origin_reads();
    get(kp("k"), NULL, &r2);
    expect_body(&r2, "hello", 5);
    ck_assert_msg(is_fresh_hit(&r2, &ttl), "second GET: Cache-Status \"%s\"", cstatus(&r2));
    ck_assert_int_ge(ttl, 0);
    ck_assert_int_le(ttl, 60);
    ck_assert_uint_eq(origin_reads(), calls); /* a hit never touches Redis */
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r2, "Age"));
    ck_assert_uint_le(strtoul(ekv_test_resp_header(&r2, "Age"), NULL, 10), 1);
    /* the same item, header for header */
    ck_assert_uint_eq(strtoull(ekv_test_resp_header(&r1, "Generation"), NULL, 10), gen);
    snprintf(inm, sizeof(inm), "\"%llu\"", (unsigned long long)gen);
    static const char *const same[] = {"Generation", "Metadata",     "ETag",
                                       "Last-Modified", "Content-Type", "Content-Length"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        const char *a = ekv_test_resp_header(&r1, same[i]), *b = ekv_test_resp_header(&r2, same[i]);
        ck_assert_msg(a != NULL && b != NULL && strcmp(a, b) == 0, "%s: miss \"%s\", hit \"%s\"",
                      same[i], a != NULL ? a : "(none)", b != NULL ? b : "(none)");
    }
    ck_assert_str_eq(ekv_test_resp_header(&r2, "ETag"), inm);
    ck_assert_str_eq(ekv_test_resp_header(&r2, "Metadata"), "m=1");
    ck_assert_str_eq(ekv_test_resp_header(&r2, "Content-Type"), "application/octet-stream");
    ck_assert_uint_eq(ekv_test_resp_header_count(&r2, "Cache-Status"), 1);
    ck_assert_uint_eq(ekv_test_resp_header_count(&r2, "Age"), 1);

    /* HEAD is a hit too, with the headers and no body */
    apic_req(port, "HEAD", kp("k"), NULL, NULL, 0, &r);
    expect_status(&r, 200);
    ck_assert_msg(is_fresh_hit(&r, NULL), "HEAD: Cache-Status \"%s\"", cstatus(&r));
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Length"), "5");
    ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), inm);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "m=1");
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Age"));
    ck_assert_uint_eq(r.body_len, 0);
    ekv_test_resp_free(&r);

    /* If-None-Match on a hit: 304 with the ETag, still a hit; a stale ETag: 200 */
    {
        char hdr[96];
        snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", inm);
        get(kp("k"), hdr, &r);
        expect_status(&r, 304);
        ck_assert_msg(is_fresh_hit(&r, NULL), "304: Cache-Status \"%s\"", cstatus(&r));
        ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), inm);
        ck_assert_uint_eq(r.body_len, 0);
        ekv_test_resp_free(&r);
        get(kp("k"), "If-None-Match: \"999999\"\r\n", &r);
        expect_body(&r, "hello", 5);
        ck_assert(is_fresh_hit(&r, NULL));
        ekv_test_resp_free(&r);
    }
    ck_assert_uint_eq(origin_reads(), calls);

    /* Age counts from the origin read; the TTL counts down with it */
    ekv_test_sleep_ms(1100);
    get(kp("k"), NULL, &r);
    expect_body(&r, "hello", 5);
    ck_assert(is_fresh_hit(&r, &ttl));
    ck_assert_uint_ge(strtoul(ekv_test_resp_header(&r, "Age"), NULL, 10), 1);
    ck_assert_int_le(ttl, 59);
    ekv_test_resp_free(&r);

    /* the edge path reads the same cached item */
    get(ep("k"), NULL, &r);
    expect_body(&r, "hello", 5);
    ck_assert_msg(is_fresh_hit(&r, NULL), "/kv path: Cache-Status \"%s\"", cstatus(&r));
    ekv_test_resp_free(&r);
    ekv_test_resp_free(&r1);
    ekv_test_resp_free(&r2);
}
END_TEST

/* ---------------------------------------------------------------- coalescing */

START_TEST(test_coalesced_misses)
{
    static struct ekv_test_conn *c[NCLIENTS];
    static const char val[] = "the-one-value-everybody-wants";
    char inm[64], inm_hdr[96], *reply;
    uint64_t gen, calls0, calls1, look0, t_pause, misses0, misses, collapsed0;
    unsigned stored = 0, collapsed = 0, heads = 0, n304 = 0;

    /* the pause stalls the invalidation heartbeats and the origin read: keep both bounds far */
    start("--threads", "2", "--max-connections", "4096", "--origin-timeout", "20s",
          "--max-staleness", "20s", NULL);
    gen = put_settled("hot", val, strlen(val), NULL);
    snprintf(inm, sizeof(inm), "\"%llu\"", (unsigned long long)gen);
    snprintf(inm_hdr, sizeof(inm_hdr), "If-None-Match: %s\r\n", inm);
    look0 = all_lookups();
    misses0 = lookups("miss");
    collapsed0 = lookups("collapsed");
    calls0 = origin_reads();

    /* CLIENT PAUSE ... ALL from a separate connection: reads are held too (WRITE would not) */
    reply = ekv_test_redis_cmd(redis, "CLIENT PAUSE %s ALL", "3000");
    ck_assert_str_eq(reply, "OK");
    free(reply);
    t_pause = ekv_test_now_ms();
    for (unsigned i = 0; i < NCLIENTS; i++) {
        c[i] = ekv_test_connect(port);
        ekv_test_set_timeout(c[i], 20000);
        if (i % 20 == 1) /* a HEAD, kept alive: a body sent by mistake would break the next */
            ck_assert_int_eq(ekv_test_sendf(c[i], "HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n",
                                            kp("hot")),
                             0);
        else if (i % 20 == 2) /* a conditional GET: 304 */
            send_get(c[i], kp("hot"), inm_hdr);
        else
            send_get(c[i], kp("hot"), NULL);
    }
    /* every request reached the cache while Redis was still paused */
    while (all_lookups() < look0 + NCLIENTS) {
        ck_assert_msg(ekv_test_now_ms() - t_pause < 2800,
                      "the %d requests did not all reach edgekv during the pause (%llu did)",
                      NCLIENTS, (unsigned long long)(all_lookups() - look0));
        ekv_test_sleep_ms(20);
    }
    for (unsigned i = 0; i < NCLIENTS; i++) {
        struct ekv_test_resp r = {0};
        bool head = i % 20 == 1;
        int rc = ekv_test_read_final(c[i], &r, head ? EKV_TEST_HEAD : 0);
        const char *cs;

        ck_assert_msg(rc == EKV_TEST_OK, "client %u: no response (%d): %s", i, rc, c[i]->err);
        cs = cstatus(&r);
        if (strcmp(cs, "edgekv; fwd=uri-miss; stored") == 0)
            stored++;
        else if (strcmp(cs, "edgekv; fwd=uri-miss; collapsed") == 0)
            collapsed++;
        else
            ck_abort_msg("client %u: Cache-Status \"%s\" (status %d)", i, cs, r.status);
        if (i % 20 == 2) {
            expect_status(&r, 304);
            ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), inm);
            n304++;
        } else if (head) {
            expect_status(&r, 200);
            ck_assert_uint_eq(strtoul(ekv_test_resp_header(&r, "Content-Length"), NULL, 10),
                              strlen(val));
            ck_assert_uint_eq(r.body_len, 0);
            heads++;
        } else {
            expect_body(&r, val, strlen(val));
            ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), inm);
        }
        ekv_test_resp_free(&r);
        if (head) { /* the connection is still in step: no stray body bytes */
            ck_assert_int_eq(ekv_test_send_str(c[i], "GET /healthz HTTP/1.1\r\nHost: t\r\n"
                                                     "Connection: close\r\n\r\n"),
                             0);
            ck_assert_int_eq(ekv_test_read_final(c[i], &r, 0), EKV_TEST_OK);
            expect_status(&r, 200);
            ekv_test_resp_free(&r);
        }
        ekv_test_close(c[i]);
        c[i] = NULL;
    }
    ck_assert_uint_eq(heads, NCLIENTS / 20);
    ck_assert_uint_eq(n304, NCLIENTS / 20);
    calls1 = origin_reads();
    misses = lookups("miss") - misses0;
    fprintf(stderr, "coalescing: %u clients, %u stored, %u collapsed, %llu item read(s) in Redis, "
                    "%llu miss(es) led, %llu collapsed\n",
            NCLIENTS, stored, collapsed, (unsigned long long)(calls1 - calls0),
            (unsigned long long)misses, (unsigned long long)(lookups("collapsed") - collapsed0));
    ck_assert_uint_eq(stored + collapsed, NCLIENTS);
    ck_assert_uint_ge(stored, 1);
    ck_assert_uint_le(stored, 2);                  /* one per fill: at most one per thread */
    ck_assert_uint_ge(calls1 - calls0, 1);
    ck_assert_uint_le(calls1 - calls0, 2);         /* --threads 2: one per process is the goal */
    ck_assert_uint_eq(misses, calls1 - calls0);    /* each origin read led a fill */

    /* and now it is cached */
    calls0 = origin_reads();
    get_expect(kp("hot"), val, NULL);
    ck_assert_uint_eq(origin_reads(), calls0);
}
END_TEST

/* ---------------------------------------------------------------- bypass */

/* The Cache-Status of a bypass read sent right after another program wrote the key: stored, or
 * not stored when that write's invalidation reached edgekv during the read (it poisons the read's
 * fill, rule 3: correct, and a matter of timing). */
static void expect_bypass_after_write(const struct ekv_test_resp *r)
{
    const char *cs = cstatus(r);

    ck_assert_msg(strcmp(cs, "edgekv; fwd=request; stored") == 0 ||
                      strcmp(cs, "edgekv; fwd=request") == 0,
                  "Cache-Status \"%s\", expected \"edgekv; fwd=request[; stored]\" (status %d)", cs,
                  r->status);
}

static void check_bypass(const char *key, const char *hdrs, const char *query)
{
    struct ekv_test_resp r = {0};
    char path[600], newval[64], hdr[64];
    uint64_t calls, gen, gen2, invals;

    put_str(key, "cached");
    get_expect(kp(key), "cached", "edgekv; fwd=uri-miss; stored");
    get_expect(kp(key), "cached", NULL);

    /* another program changes the item in Redis; the bypass sees it at once, whatever the
     * invalidation's progress */
    snprintf(newval, sizeof(newval), "fresh-%s", key);
    invals = inval_count();
    gen = foreign_put(key, newval, "0");
    snprintf(path, sizeof(path), "%s%s", kp(key), query != NULL ? query : "");
    calls = origin_reads();
    get(path, hdrs, &r);
    expect_body(&r, newval, strlen(newval));
    expect_bypass_after_write(&r);
    ck_assert_uint_eq(strtoull(ekv_test_resp_header(&r, "Generation"), NULL, 10), gen);
    ekv_test_resp_free(&r);
    ck_assert_uint_eq(origin_reads(), calls + 1);
    wait_invals(invals, 1); /* from here on, no invalidation is in flight */
    /* a plain read never goes back to the old value after the bypass refreshed the cache */
    get(kp(key), NULL, &r);
    expect_body(&r, newval, strlen(newval));
    ekv_test_resp_free(&r);

    /* a bypass always reads the origin, also over a fresh entry */
    get_expect(kp(key), newval, NULL); /* cached again (stored by whichever read came last) */
    calls = origin_reads();
    for (int i = 0; i < 3; i++) {
        get(path, hdrs, &r);
        expect_body(&r, newval, strlen(newval));
        expect_cs(&r, "edgekv; fwd=request; stored");
        ekv_test_resp_free(&r);
    }
    ck_assert_uint_eq(origin_reads(), calls + 3);
    calls = origin_reads();
    get_expect(kp(key), newval, NULL); /* and what it stored is a hit */
    ck_assert_uint_eq(origin_reads(), calls);

    /* HSET straight into the hash (a new generation, as the README demands); the bypass again */
    gen2 = gen + 1000;
    snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)gen2);
    {
        char item[256], tag[64], *reply;
        snprintf(item, sizeof(item), "edgekv:i:{%s}:%s",
                 ekv_test_tag(tag, sizeof(tag), sid, key, EKV_TEST_SHARDS), key);
        invals = inval_count();
        reply = ekv_test_redis_cmd(redis, "HSET %s v %s g %s", item, "hset-value", hdr);
        free(reply);
    }
    get(path, hdrs, &r);
    expect_body(&r, "hset-value", 10);
    expect_bypass_after_write(&r);
    ck_assert_uint_eq(strtoull(ekv_test_resp_header(&r, "Generation"), NULL, 10), gen2);
    ekv_test_resp_free(&r);
    wait_invals(invals, 1);
    get(kp(key), NULL, &r);
    expect_body(&r, "hset-value", 10);
    ekv_test_resp_free(&r);
}

START_TEST(test_bypass_no_cache)
{
    start(NULL);
    check_bypass("nc", "Cache-Control: no-cache\r\n", NULL);
    check_bypass("nc2", "Cache-Control: max-age=0, no-cache\r\n", NULL);
}
END_TEST

START_TEST(test_bypass_consistency_strong)
{
    char path[600];

    start(NULL);
    check_bypass("strong", NULL, "?consistency=strong");
    /* consistency=eventual may be served from the edge: a hit */
    snprintf(path, sizeof(path), "%s?consistency=eventual", kp("strong"));
    get_expect(path, "hset-value", NULL);
}
END_TEST

/* ---------------------------------------------------------------- read-your-writes */

START_TEST(test_read_your_writes)
{
    struct ekv_test_resp r = {0};
    char val[64], body[256];

    start("--threads", "2", NULL);
    put_str("ryw", "v-initial");
    for (int i = 0; i < 40; i++) {
        const char *wpath = i % 2 == 0 ? kp("ryw") : ep("ryw");
        const char *rpath = i % 3 == 0 ? kp("ryw") : ep("ryw");

        /* cached (a hit, or stored now) */
        get(rpath, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        ekv_test_resp_free(&r);
        get(rpath, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        ekv_test_resp_free(&r);
        snprintf(val, sizeof(val), "v-%d", i);
        ck_assert_int_eq(apic_status(port, "PUT", wpath, NULL, val), 200);
        /* immediately: the new value, never the old one */
        get(rpath, NULL, &r);
        ck_assert_msg(r.status == 200 && r.body_len == strlen(val) &&
                          memcmp(r.body, val, r.body_len) == 0,
                      "round %d: after PUT %s via %s, GET via %s: %d \"%.*s\" (Cache-Status %s)",
                      i, val, wpath, rpath, r.status, (int)r.body_len, r.body, cstatus(&r));
        ekv_test_resp_free(&r);
    }

    /* append goes through the same invalidation: once v-39 is a hit again (the tracking
     * message of the last PUT may still come and end the copy its GET stored) */
    for (int i = 0;; i++) {
        get(kp("ryw"), NULL, &r);
        expect_body(&r, "v-39", 4);
        if (is_fresh_hit(&r, NULL)) {
            ekv_test_resp_free(&r);
            break;
        }
        ck_assert_msg(i < 50, "v-39 never became a hit: Cache-Status \"%s\"", cstatus(&r));
        ekv_test_resp_free(&r);
        ekv_test_sleep_ms(20);
    }
    ck_assert_int_eq(apic_status(port, "PUT", ep("ryw") /* no query on the edge path */, NULL,
                                 "-x"),
                     200);
    get(kp("ryw"), NULL, &r);
    expect_body(&r, "-x", 2);
    ekv_test_resp_free(&r);
    get(kp("ryw"), NULL, &r);
    ekv_test_resp_free(&r);
    {
        char p[600];
        snprintf(p, sizeof(p), "%s?append=true", kp("ryw"));
        ck_assert_int_eq(apic_status(port, "PUT", p, NULL, "-y"), 200);
    }
    get(ep("ryw"), NULL, &r);
    expect_body(&r, "-x-y", 4);
    ekv_test_resp_free(&r);

    /* DELETE: 404 at once, through both paths */
    get(ep("ryw"), NULL, &r);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("ryw"), NULL, NULL), 204);
    get(ep("ryw"), NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    get(kp("ryw"), NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    /* ... and the cached 404 goes with the next write */
    ck_assert_int_eq(apic_status(port, "PUT", ep("ryw"), NULL, "again"), 200);
    get(kp("ryw"), NULL, &r);
    expect_body(&r, "again", 5);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", ep("ryw"), NULL, NULL), 204);
    get(kp("ryw"), NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);

    /* a batch write: both keys cached (one of them as a 404), then the batch, then GETs */
    put_str("b1", "old-b1");
    get(kp("b1"), NULL, &r);
    ekv_test_resp_free(&r);
    get(kp("b1"), NULL, &r);
    ekv_test_resp_free(&r);
    get(ep("b2"), NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    /* "new-b1" and "new-b2" in base64 */
    snprintf(body, sizeof(body), "{\"key\":\"b1\",\"value\":\"bmV3LWIx\"}\n"
                                 "{\"key\":\"b2\",\"value\":\"bmV3LWIy\"}\n");
    {
        char p[600];
        snprintf(p, sizeof(p), "/resources/stores/kv/%s/batch", sid);
        apic_req(port, "PUT", p, "Content-Type: application/x-ndjson\r\n", body, strlen(body),
                 &r);
        expect_status(&r, 200);
        ekv_test_resp_free(&r);
    }
    get(ep("b1"), NULL, &r);
    expect_body(&r, "new-b1", 6);
    ekv_test_resp_free(&r);
    get(kp("b2"), NULL, &r);
    expect_body(&r, "new-b2", 6);
    ekv_test_resp_free(&r);
}
END_TEST

/* A write while a fill for the same key is in flight: whatever order Redis runs them in, the
 * read after the write's answer shows the write (the fill is poisoned or its entry removed). */
START_TEST(test_write_during_fill)
{
    struct ekv_test_conn *a, *b;
    struct ekv_test_resp r = {0};
    uint64_t m0, t0;
    char *reply;

    start("--threads", "2", "--origin-timeout", "20s", "--max-staleness", "20s", NULL);
    for (int round = 0; round < 2; round++) {
        char v1[32], v2[32];

        snprintf(v1, sizeof(v1), "before-%d", round);
        snprintf(v2, sizeof(v2), "after-%d", round);
        put_str("race", v1);
        m0 = lookups("miss");
        reply = ekv_test_redis_cmd(redis, "CLIENT PAUSE %s ALL", "1000");
        free(reply);
        t0 = ekv_test_now_ms();
        a = ekv_test_connect(port);
        ekv_test_set_timeout(a, 20000);
        send_get(a, kp("race"), NULL);
        while (lookups("miss") == m0) { /* the fill is installed */
            ck_assert_uint_lt(ekv_test_now_ms() - t0, 800);
            ekv_test_sleep_ms(5);
        }
        b = ekv_test_connect(port);
        ekv_test_set_timeout(b, 20000);
        ck_assert_int_eq(ekv_test_sendf(b,
                                        "PUT %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                        "Content-Length: %zu\r\n\r\n%s",
                                        round == 0 ? kp("race") : ep("race"), strlen(v2), v2),
                         0);
        ck_assert_int_eq(ekv_test_read_final(b, &r, 0), EKV_TEST_OK);
        expect_status(&r, 200);
        ekv_test_resp_free(&r);
        /* the write is acknowledged: from now on, only v2 */
        for (int i = 0; i < 5; i++) {
            get(i % 2 ? ep("race") : kp("race"), NULL, &r);
            ck_assert_msg(r.status == 200 && r.body_len == strlen(v2) &&
                              memcmp(r.body, v2, r.body_len) == 0,
                          "round %d, read %d after the PUT: %d \"%.*s\" (Cache-Status %s)", round,
                          i, r.status, (int)r.body_len, r.body, cstatus(&r));
            ekv_test_resp_free(&r);
        }
        /* the reader that was waiting got one of the two values */
        ck_assert_int_eq(ekv_test_read_final(a, &r, 0), EKV_TEST_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg((r.body_len == strlen(v1) && memcmp(r.body, v1, r.body_len) == 0) ||
                          (r.body_len == strlen(v2) && memcmp(r.body, v2, r.body_len) == 0),
                      "the waiting reader got \"%.*s\"", (int)r.body_len, r.body);
        ekv_test_resp_free(&r);
        ekv_test_close(a);
        ekv_test_close(b);
        get(kp("race"), NULL, &r);
        expect_body(&r, v2, strlen(v2));
        ekv_test_resp_free(&r);
    }
}
END_TEST

/* Readers on other connections never see a value older than the last acknowledged write,
 * while fills are constantly in flight (read-your-writes at one POP, across clients). */
struct ryw_shared {
    unsigned short port;
    char path[2][512];
    atomic_int acked;    /* the last value whose PUT was answered */
    atomic_bool stop;
    atomic_uint reads, violations, errors;
    char why[256];       /* the first violation */
};

static void *ryw_reader(void *arg)
{
    struct ryw_shared *sh = arg;
    struct ekv_test_conn *c = NULL;
    unsigned n = 0;

    while (!atomic_load(&sh->stop)) {
        struct ekv_test_resp r = {0};
        int before, got;

        if (c == NULL && ekv_test_try_connect(sh->port, &c) != 0) {
            atomic_fetch_add(&sh->errors, 1);
            break;
        }
        before = atomic_load(&sh->acked);
        if (ekv_test_sendf(c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", sh->path[n++ % 2]) != 0 ||
            ekv_test_read_final(c, &r, 0) != EKV_TEST_OK || r.status != 200) {
            atomic_fetch_add(&sh->errors, 1);
            ekv_test_resp_free(&r);
            break;
        }
        got = atoi(r.body);
        if (got < before && atomic_fetch_add(&sh->violations, 1) == 0)
            snprintf(sh->why, sizeof(sh->why),
                     "a read sent after PUT %d was answered got %d (Cache-Status %s)", before, got,
                     cstatus(&r));
        atomic_fetch_add(&sh->reads, 1);
        ekv_test_resp_free(&r);
    }
    ekv_test_close(c);
    return NULL;
}

/*
 * Read-your-writes on one connection, pipelined: PUT v1, GET, PUT v2-longer, GET sent in one
 * write. The last GET must see the second PUT (API.md "Fine points": pipelined requests behave
 * as if sent one after the other). Regression test: the second GET used to join the fill of
 * the first one, which began before the second PUT was acknowledged, and answered v1 with
 * "fwd=uri-miss; collapsed" and Generation 1. Fresh keys each round, so every first GET is a
 * miss whose fill is in flight when the rest arrives.
 */
START_TEST(test_pipelined_read_your_writes)
{
    start("--threads", "1", NULL);
    for (int round = 0; round < 40; round++) {
        struct ekv_test_conn *c = ekv_test_connect(port);
        struct ekv_test_resp rs[4];
        char key[32], req[2048];
        const char *gen;
        int n;

        memset(rs, 0, sizeof(rs));
        snprintf(key, sizeof(key), "ryw%d", round);
        n = snprintf(req, sizeof(req),
                     "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nv1"
                     "GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                     "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nv2-longer"
                     "GET %s HTTP/1.1\r\nHost: t\r\n\r\n",
                     kp(key), kp(key), kp(key), kp(key));
        ck_assert_int_eq(ekv_test_send(c, req, (size_t)n), 0);
        ck_assert_uint_eq(ekv_test_read_n(c, rs, 4, NULL), 4);
        ck_assert_int_eq(rs[0].status, 200);
        ck_assert_int_eq(rs[1].status, 200);
        ck_assert_str_eq(rs[1].body, "v1");
        ck_assert_int_eq(rs[2].status, 200);
        ck_assert_int_eq(rs[3].status, 200);
        ck_assert_msg(strcmp(rs[3].body, "v2-longer") == 0,
                      "round %d: the GET after PUT v2-longer answered \"%s\" (Cache-Status %s)",
                      round, rs[3].body, cstatus(&rs[3]));
        gen = ekv_test_resp_header(&rs[3], "Generation");
        ck_assert_ptr_nonnull(gen);
        ck_assert_ptr_nonnull(ekv_test_resp_header(&rs[1], "Generation"));
        ck_assert_msg(atoll(gen) > atoll(ekv_test_resp_header(&rs[1], "Generation")),
                      "round %d: generation %s after the second PUT, %s before", round, gen,
                      ekv_test_resp_header(&rs[1], "Generation"));
        for (int i = 0; i < 4; i++)
            ekv_test_resp_free(&rs[i]);
        ekv_test_close(c);
    }
}
END_TEST

START_TEST(test_concurrent_readers_never_go_back)
{
    enum { READERS = 4 };
    static struct ryw_shared sh;
    pthread_t th[READERS];
    struct ekv_test_resp r = {0};
    uint64_t end;
    int i;

    start("--threads", "2", NULL);
    memset(&sh, 0, sizeof(sh));
    sh.port = port;
    snprintf(sh.path[0], sizeof(sh.path[0]), "%s", kp("hotw"));
    snprintf(sh.path[1], sizeof(sh.path[1]), "%s", ep("hotw"));
    put_str("hotw", "0");
    for (i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, ryw_reader, &sh), 0);
    end = ekv_test_now_ms() + 2000;
    for (i = 1; ekv_test_now_ms() < end; i++) {
        char val[16];

        snprintf(val, sizeof(val), "%d", i);
        ck_assert_int_eq(apic_status(port, "PUT", i % 2 ? kp("hotw") : ep("hotw"), NULL, val), 200);
        atomic_store(&sh.acked, i);
        get(i % 3 ? kp("hotw") : ep("hotw"), NULL, &r);
        ck_assert_msg(r.status == 200 && atoi(r.body) == i,
                      "the writer's own read after PUT %d: %d \"%.*s\" (Cache-Status %s)", i,
                      r.status, (int)r.body_len, r.body, cstatus(&r));
        ekv_test_resp_free(&r);
    }
    /* then writes straight into Redis while the readers keep fills in flight: once they stop,
     * the last one shows within the invalidation latency and stays (no fill that raced a write
     * keeps an old value) */
    {
        char val[16];
        uint64_t t_last, took;
        int j;

        end = ekv_test_now_ms() + 1000;
        for (j = 1; ekv_test_now_ms() < end; j++) {
            snprintf(val, sizeof(val), "%d", 1000000 + j);
            foreign_put("hotw", val, "0");
        }
        t_last = ekv_test_now_ms();
        took = poll_until(kp("hotw"), 200, val, 3000);
        ck_assert_msg(took < 1000, "the last foreign write took %llu ms to show",
                      (unsigned long long)took);
        ekv_test_sleep_ms(100);
        for (int k = 0; k < 20; k++) {
            get(k % 2 ? kp("hotw") : ep("hotw"), NULL, &r);
            expect_body(&r, val, strlen(val));
            ekv_test_resp_free(&r);
        }
        fprintf(stderr, "concurrent readers: %d foreign writes, the last one shown after %llu ms\n",
                j - 1, (unsigned long long)(ekv_test_now_ms() - t_last));
    }
    atomic_store(&sh.stop, true);
    for (int k = 0; k < READERS; k++)
        pthread_join(th[k], NULL);
    fprintf(stderr, "concurrent readers: %d writes, %u reads\n", i - 1, atomic_load(&sh.reads));
    ck_assert_msg(atomic_load(&sh.violations) == 0, "%u stale reads; first: %s",
                  atomic_load(&sh.violations), sh.why);
    ck_assert_uint_eq(atomic_load(&sh.errors), 0);
    ck_assert_uint_gt(atomic_load(&sh.reads), 0);
}
END_TEST

/* ---------------------------------------------------------------- negative caching */

START_TEST(test_negative_caching)
{
    struct ekv_test_resp r = {0};
    long ttl;
    uint64_t calls;

    start(NULL); /* negative-ttl 5s by default */
    get(kp("nothing"), NULL, &r);
    expect_status(&r, 404);
    expect_cs(&r, "edgekv; fwd=uri-miss; stored");
    ekv_test_resp_free(&r);
    calls = origin_reads();
    get(kp("nothing"), NULL, &r);
    expect_status(&r, 404);
    ck_assert_msg(is_fresh_hit(&r, &ttl), "Cache-Status \"%s\"", cstatus(&r));
    ck_assert_int_ge(ttl, 0);
    ck_assert_int_le(ttl, 5);
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Age"));
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Type"), "application/problem+json");
    ekv_test_resp_free(&r);
    apic_req(port, "HEAD", kp("nothing"), NULL, NULL, 0, &r);
    expect_status(&r, 404);
    ck_assert(is_fresh_hit(&r, NULL));
    ekv_test_resp_free(&r);
    ck_assert_uint_eq(origin_reads(), calls);

    /* a PUT undoes it at once */
    ck_assert_int_eq(apic_status(port, "PUT", kp("nothing"), NULL, "now"), 200);
    get(kp("nothing"), NULL, &r);
    expect_body(&r, "now", 3);
    ekv_test_resp_free(&r);

    /* a write straight into Redis undoes it within the invalidation latency */
    get(kp("later"), NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    get(kp("later"), NULL, &r);
    expect_status(&r, 404);
    ck_assert(is_fresh_hit(&r, NULL));
    ekv_test_resp_free(&r);
    foreign_put("later", "from-elsewhere", "0");
    ck_assert_uint_lt(poll_until(kp("later"), 200, "from-elsewhere", 2000), 1000);
}
END_TEST

START_TEST(test_negative_ttl_zero)
{
    struct ekv_test_resp r = {0};

    start("--negative-ttl", "0", NULL);
    for (int i = 0; i < 3; i++) {
        get(i == 1 ? ep("nothing") : kp("nothing"), NULL, &r);
        expect_status(&r, 404);
        expect_cs(&r, "edgekv; fwd=uri-miss");
        ekv_test_resp_free(&r);
    }
    ck_assert_int_eq(apic_status(port, "PUT", kp("nothing"), NULL, "now"), 200);
    get(kp("nothing"), NULL, &r);
    expect_body(&r, "now", 3);
    ekv_test_resp_free(&r);
    /* values are still cached */
    get_expect(kp("nothing"), "now", NULL);
}
END_TEST

/* ---------------------------------------------------------------- TTLs */

START_TEST(test_item_ttl_never_served_after)
{
    struct ekv_test_resp r = {0};
    uint64_t t_acked, deadline, end;
    unsigned hits = 0, n404 = 0;
    long ttl;

    start(NULL);
    put_str("other", "x"); /* warm up: store resolution and scripts */
    apic_req(port, "PUT", kp("short"), "time_to_live_sec: 1\r\n", "brief", 5, &r);
    expect_status(&r, 200);
    ekv_test_resp_free(&r);
    /* Redis set the expiry before it answered: the item is gone by then + 1 s */
    t_acked = ekv_test_now_ms();
    deadline = t_acked + 1000 + 50; /* 50 ms for clock granularity, no more */
    get(kp("short"), NULL, &r);
    expect_body(&r, "brief", 5);
    ck_assert_msg(strncmp(cstatus(&r), "edgekv; fwd=uri-miss", 20) == 0, "Cache-Status \"%s\"",
                  cstatus(&r));
    ekv_test_resp_free(&r);
    /* poll for 2 s: hits (ttl 0) before the deadline, never a 200 after it */
    end = t_acked + 2000;
    while (ekv_test_now_ms() < end) {
        uint64_t sent = ekv_test_now_ms();

        get(kp("short"), NULL, &r);
        if (r.status == 200) {
            expect_body(&r, "brief", 5);
            ck_assert_msg(sent <= deadline,
                          "the item was served %llu ms after its TTL ended (Cache-Status %s)",
                          (unsigned long long)(sent - t_acked - 1000), cstatus(&r));
            if (is_fresh_hit(&r, &ttl)) {
                ck_assert_int_le(ttl, 1);
                hits++;
            }
        } else {
            expect_status(&r, 404);
            n404++;
        }
        ekv_test_resp_free(&r);
        ekv_test_sleep_ms(5);
    }
    ck_assert_uint_gt(hits, 0); /* it was cached... */
    ck_assert_uint_gt(n404, 0); /* ...and it went */
}
END_TEST

START_TEST(test_cache_max_ttl)
{
    struct ekv_test_resp r = {0};
    uint64_t calls;
    long ttl;

    start("--cache-max-ttl", "1s", NULL);
    put_str("k", "v1");
    get_expect(kp("k"), "v1", "edgekv; fwd=uri-miss; stored");
    get(kp("k"), NULL, &r);
    expect_body(&r, "v1", 2);
    ck_assert(is_fresh_hit(&r, &ttl));
    ck_assert_int_le(ttl, 1);
    ekv_test_resp_free(&r);
    ekv_test_sleep_ms(1100);
    /* the entry is gone after 1 s: read again (and stored again) */
    calls = origin_reads();
    get_expect(kp("k"), "v1", "edgekv; fwd=uri-miss; stored");
    ck_assert_uint_eq(origin_reads(), calls + 1);
    get_expect(kp("k"), "v1", NULL);
    ck_assert_uint_eq(origin_reads(), calls + 1);
}
END_TEST

/* ---------------------------------------------------------------- cache-max-item-bytes */

START_TEST(test_max_item_bytes)
{
    static char big[2048], edge[1024];
    struct ekv_test_resp r = {0};
    uint64_t calls;

    start("--cache-max-item-bytes", "1kb", NULL);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    memcpy(edge, big, sizeof(edge));
    put_settled("big", big, sizeof(big), NULL);
    put_settled("edge", edge, sizeof(edge), NULL);
    get(ep("big"), NULL, &r); /* the edge path's name resolution is cached from now on */
    expect_body(&r, big, sizeof(big));
    expect_cs(&r, "edgekv; fwd=uri-miss");
    ekv_test_resp_free(&r);
    calls = origin_reads();
    for (int i = 0; i < 3; i++) {
        get(i == 1 ? ep("big") : kp("big"), NULL, &r);
        expect_body(&r, big, sizeof(big));
        expect_cs(&r, "edgekv; fwd=uri-miss");
        ekv_test_resp_free(&r);
    }
    ck_assert_uint_eq(origin_reads(), calls + 3);
    /* exactly the limit is stored */
    get(kp("edge"), NULL, &r);
    expect_body(&r, edge, sizeof(edge));
    expect_cs(&r, "edgekv; fwd=uri-miss; stored");
    ekv_test_resp_free(&r);
    get(kp("edge"), NULL, &r);
    expect_body(&r, edge, sizeof(edge));
    ck_assert(is_fresh_hit(&r, NULL));
    ekv_test_resp_free(&r);
    /* a HEAD of the big one has the right length */
    apic_req(port, "HEAD", kp("big"), NULL, NULL, 0, &r);
    expect_status(&r, 200);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Length"), "2048");
    expect_cs(&r, "edgekv; fwd=uri-miss");
    ekv_test_resp_free(&r);
}
END_TEST

/* ---------------------------------------------------------------- foreign writes */

START_TEST(test_foreign_writes_picked_up)
{
    struct ekv_test_resp r = {0};
    char item[256], gbuf[32], *reply;
    uint64_t gen, took;

    start(NULL);
    put_str("fw", "v1");
    get_expect(kp("fw"), "v1", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("fw"), "v1", NULL);

    /* through the documented script */
    gen = foreign_put("fw", "v2-script", "0");
    took = poll_until(kp("fw"), 200, "v2-script", 3000);
    ck_assert_msg(took < 1000, "a foreign write took %llu ms to show", (unsigned long long)took);
    for (int i = 0; i < 3; i++) { /* and never the old one again */
        get(i % 2 ? ep("fw") : kp("fw"), NULL, &r);
        expect_body(&r, "v2-script", 9);
        ck_assert_uint_eq(strtoull(ekv_test_resp_header(&r, "Generation"), NULL, 10), gen);
        ekv_test_resp_free(&r);
    }
    get_expect(kp("fw"), "v2-script", NULL); /* cached again */

    /* a plain HSET of the hash (with a new generation from the counter) */
    snprintf(item, sizeof(item), "edgekv:i:{%s}:fw", TAG("fw"));
    reply = ekv_test_redis_cmd(redis, "INCR edgekv:g:{%s}", TAG("fw"));
    snprintf(gbuf, sizeof(gbuf), "%s", reply);
    free(reply);
    free(ekv_test_redis_cmd(redis, "HSET %s v %s g %s", item, "v3-hset", gbuf));
    took = poll_until(ep("fw"), 200, "v3-hset", 3000);
    ck_assert_msg(took < 1000, "an HSET took %llu ms to show", (unsigned long long)took);
    get(kp("fw"), NULL, &r);
    expect_body(&r, "v3-hset", 7);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Generation"), gbuf);
    ekv_test_resp_free(&r);
    get_expect(kp("fw"), "v3-hset", NULL);

    /* a DEL of the hash */
    free(ekv_test_redis_cmd(redis, "DEL %s", item));
    took = poll_until(kp("fw"), 404, NULL, 3000);
    ck_assert_msg(took < 1000, "a DEL took %llu ms to show", (unsigned long long)took);

    /* an EXPIRE set from outside ends the cached copy too */
    put_str("fw2", "v1");
    get_expect(kp("fw2"), "v1", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("fw2"), "v1", NULL);
    snprintf(item, sizeof(item), "edgekv:i:{%s}:fw2", TAG("fw2"));
    free(ekv_test_redis_cmd(redis, "PEXPIRE %s 1", item));
    took = poll_until(kp("fw2"), 404, NULL, 3000);
    ck_assert_msg(took < 1000, "a PEXPIRE took %llu ms to show", (unsigned long long)took);

    /* a key with the characters of the Redis key layout in it ("{", "}", ":") */
    put_str("a:{b}:c", "v1");
    get_expect(kp("a:%7Bb%7D:c"), "v1", "edgekv; fwd=uri-miss; stored");
    get_expect(ep("a:%7Bb%7D:c"), "v1", NULL);
    foreign_put("a:{b}:c", "v2", "0");
    took = poll_until(ep("a:%7Bb%7D:c"), 200, "v2", 3000);
    ck_assert_msg(took < 1000, "a foreign write took %llu ms to show", (unsigned long long)took);

    /* FLUSHALL: everything goes (the store too) */
    get_expect(kp("a:%7Bb%7D:c"), "v2", NULL);
    free(ekv_test_redis_cmd(redis, "FLUSHALL"));
    took = poll_until(kp("a:%7Bb%7D:c"), 404, NULL, 3000);
    ck_assert_msg(took < 1000, "a FLUSHALL took %llu ms to show", (unsigned long long)took);
}
END_TEST

/* Coherence rule 1: a lost invalidation link may have lost invalidations with it, so nothing
 * cached before the loss is served after the new subscription. Here the link is killed and
 * the item changed in Redis before the link is back: that invalidation is never delivered. */
START_TEST(test_lost_link_flushes)
{
    struct ekv_test_resp r = {0};
    uint64_t losses, flushes, end;
    char *reply;

    start(NULL);
    put_str("k", "v1");
    get_expect(kp("k"), "v1", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("k"), "v1", NULL);
    losses = metric("edgekv_invalidation_link_losses_total");
    flushes = metric("edgekv_cache_flushes_total");
    reply = ekv_test_redis_cmd(redis, "CLIENT KILL TYPE %s", "pubsub");
    ck_assert_msg(strcmp(reply, "1") == 0, "CLIENT KILL TYPE pubsub: %s", reply);
    free(reply);
    foreign_put("k", "v2", "0"); /* its invalidation has nobody to go to */
    /* the loss is noticed (the socket closed) and the link comes back with a flush */
    end = ekv_test_now_ms() + 5000;
    while (metric("edgekv_invalidation_link_losses_total") == losses ||
           metric("edgekv_cache_flushes_total") == flushes ||
           metric("edgekv_invalidation_link_up") != 1) {
        ck_assert_msg(ekv_test_now_ms() < end, "the link never came back with a flush");
        ekv_test_sleep_ms(10);
    }
    for (int i = 0; i < 20; i++) {
        get(i % 2 ? ep("k") : kp("k"), NULL, &r);
        ck_assert_msg(r.status == 200 && r.body_len == 2 && memcmp(r.body, "v2", 2) == 0,
                      "read %d after the link came back: %d \"%.*s\" (Cache-Status %s)", i,
                      r.status, (int)r.body_len, r.body, cstatus(&r));
        ekv_test_resp_free(&r);
    }
    get_expect(kp("k"), "v2", NULL); /* and caching goes on */
}
END_TEST

/* ---------------------------------------------------------------- stale-if-error */

/* GET @path expecting 503 with Retry-After, answered within @ms. */
static void expect_fast_503(const char *path, unsigned ms)
{
    struct ekv_test_resp r = {0};
    uint64_t t0 = ekv_test_now_ms(), took;

    get(path, NULL, &r);
    took = ekv_test_now_ms() - t0;
    expect_status(&r, 503);
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Retry-After"));
    ck_assert_msg(took < ms, "the 503 took %llu ms", (unsigned long long)took);
    ekv_test_resp_free(&r);
}

START_TEST(test_stale_if_error)
{
    struct ekv_test_resp r = {0};
    uint64_t deadline;
    long ttl;
    uint64_t gen;

    /* one worker: "the origin is back" then means every request sees it */
    start("--threads", "1", "--cache-max-ttl", "1s", "--stale-if-error", "30s",
          "--origin-timeout", "500ms", NULL);
    gen = put_str("k", "old");
    put_settled("brief", "short-lived", 11, "time_to_live_sec: 1\r\n");
    deadline = ekv_test_now_ms() + 1000 + 50; /* "brief" is gone in Redis by then */
    get_expect(kp("brief"), "short-lived", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("brief"), "short-lived", NULL);
    get_expect(kp("k"), "old", "edgekv; fwd=uri-miss; stored");

    apic_redis_kill(redis);
    /* past cache-max-ttl by more than a second: the entry is only stale now (how a fraction of
     * a second past it is shown: test_stale_ttl_is_negative) */
    ekv_test_sleep_ms(2200);

    /* the old value, marked stale, with a negative ttl */
    get(kp("k"), NULL, &r);
    expect_body(&r, "old", 3);
    ck_assert_msg(is_stale_hit(&r, &ttl), "Cache-Status \"%s\"", cstatus(&r));
    ck_assert_msg(ttl <= -1, "a stale answer with ttl=%ld (Cache-Status \"%s\")", ttl,
                  cstatus(&r));
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Age"));
    {
        char etag[64];
        snprintf(etag, sizeof(etag), "\"%llu\"", (unsigned long long)gen);
        ck_assert_uint_eq(strtoull(ekv_test_resp_header(&r, "Generation"), NULL, 10), gen);
        ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), etag);
    }
    ekv_test_resp_free(&r);
    /* an item whose own TTL has passed is never served stale */
    ck_assert_uint_gt(ekv_test_now_ms(), deadline);
    expect_fast_503(kp("brief"), 1500);
    /* a key that was never cached: 503, fast */
    expect_fast_503(kp("never"), 1500);
    ck_assert_int_eq(ekv_test_get_status(port, "/readyz"), 503);

    /* Redis comes back (empty: nothing was persisted) on the same socket: service resumes by
     * itself, and the old value is never served again once edgekv is ready */
    apic_redis_start_again(redis);
    wait_status("/readyz", 200, 10000);
    for (int i = 0; i < 20; i++) {
        get(kp("k"), NULL, &r);
        ck_assert_msg(r.status == 404, "after Redis came back empty: %d \"%.*s\" (Cache-Status %s)",
                      r.status, (int)r.body_len, r.body, cstatus(&r));
        ekv_test_resp_free(&r);
    }
    apic_create_store(port, NULL, "again", sid);
    put_str("k", "new");
    get_expect(kp("k"), "new", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("k"), "new", NULL);
}
END_TEST

/* Regression test (a bug found and fixed): a stale answer less than a second past its expiry says "ttl=-0" (RFC 8941: the integer
 * 0, i.e. not stale), where API.md's table promises a negative ttl for stale-if-error answers.
 * src/api/read.c cache_status_hit() truncates (now - exp) / 1000 toward zero and prints a '-'
 * before it; a stale entry's ttl should round away from zero ((now - exp + 999) / 1000), so
 * 300 ms past the expiry reads ttl=-1. */
START_TEST(test_stale_ttl_is_negative)
{
    struct ekv_test_resp r = {0};
    uint64_t t_fetch;
    long ttl;

    start("--threads", "1", "--cache-max-ttl", "1s", "--stale-if-error", "30s",
          "--origin-timeout", "500ms", NULL);
    put_str("k", "old");
    t_fetch = ekv_test_now_ms();
    get_expect(kp("k"), "old", "edgekv; fwd=uri-miss; stored");
    apic_redis_kill(redis);
    /* 1 s of cache TTL from the fetch, then 300 ms more: stale by 0.3 s (< 1 s) */
    while (ekv_test_now_ms() < t_fetch + 1300)
        ekv_test_sleep_ms(10);
    get(kp("k"), NULL, &r);
    expect_body(&r, "old", 3);
    ck_assert_msg(is_stale_hit(&r, &ttl), "Cache-Status \"%s\"", cstatus(&r));
    ck_assert_msg(ttl < 0 && strstr(cstatus(&r), "ttl=-0") == NULL,
                  "a stale answer %llu ms after the fetch (cache-max-ttl 1s) is not marked with a "
                  "negative ttl: Cache-Status \"%s\"",
                  (unsigned long long)(ekv_test_now_ms() - t_fetch), cstatus(&r));
    ekv_test_resp_free(&r);
}
END_TEST

/* stale-if-error 0: strict, a 503 with Retry-After at once, never the cached value */
START_TEST(test_stale_if_error_zero)
{
    start("--threads", "1", "--stale-if-error", "0", "--origin-timeout", "500ms", NULL);
    put_str("k", "old");
    get_expect(kp("k"), "old", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("k"), "old", NULL);
    apic_redis_kill(redis);
    /* as soon as the POP knows the link is down (the entry is fresh: before that, a hit is
     * what the design allows), and later */
    for (int i = 0; metric("edgekv_invalidation_link_up") != 0; i++) {
        ck_assert_msg(i < 150, "the invalidation link was never seen down");
        ekv_test_sleep_ms(20);
    }
    expect_fast_503(kp("k"), 1500);
    ekv_test_sleep_ms(300);
    expect_fast_503(kp("k"), 1500);
    expect_fast_503(kp("k"), 1500);
    apic_redis_start_again(redis);
    wait_status("/readyz", 200, 10000);
    poll_until(kp("k"), 404, NULL, 3000);
}
END_TEST

/* stale-if-error bounds the staleness: past it, 503 even though the entry is there */
START_TEST(test_stale_if_error_window_ends)
{
    struct ekv_test_resp r = {0};
    uint64_t t_kill, end;
    unsigned stale = 0, n503 = 0;

    start("--threads", "1", "--cache-max-ttl", "1s", "--stale-if-error", "2s",
          "--origin-timeout", "500ms", NULL);
    put_str("k", "old");
    get_expect(kp("k"), "old", "edgekv; fwd=uri-miss; stored");
    apic_redis_kill(redis);
    t_kill = ekv_test_now_ms();
    /* edgekv learns of the loss from its sockets: a request that overtakes the news (the
     * invalidation thread not yet scheduled on a busy machine) may still be a plain hit */
    wait_status("/readyz", 503, 2000);
    end = t_kill + 3500;
    while (ekv_test_now_ms() < end) {
        uint64_t sent = ekv_test_now_ms();

        get(kp("k"), NULL, &r);
        if (r.status == 200) {
            expect_body(&r, "old", 3);
            ck_assert_msg(is_stale_hit(&r, NULL), "Cache-Status \"%s\"", cstatus(&r));
            /* the trouble began at the kill (the socket closed then); 300 ms of slack */
            ck_assert_msg(sent < t_kill + 2000 + 300, "stale answer %llu ms after the kill",
                          (unsigned long long)(sent - t_kill));
            stale++;
        } else {
            expect_status(&r, 503);
            ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Retry-After"));
            n503++;
        }
        ekv_test_resp_free(&r);
        ekv_test_sleep_ms(50);
    }
    ck_assert_uint_gt(stale, 0);
    ck_assert_uint_gt(n503, 0);
}
END_TEST

/* Regression test (a bug found and fixed): the edge path (/kv/{name}/{key}, what applications use) should behave like the item path
 * (API.md "Edge path": "behaves exactly like the item operations above"), so while the origin
 * is unreachable its cached entries should be served stale too; instead it answers 503 at
 * once. The name resolution comes first: src/api/items.c (the edge handler, around its
 * ekv_names_lookup() call) only uses the names cache through ekv_names_lookup()
 * (src/api/read.c), which returns EKV_EAGAIN whenever the cache is not trusted (the
 * invalidation link is down with the origin), so the name goes to the origin (resolve.lua),
 * which fails, and on_resolved() answers 503 before ekv_read_item() and its stale-if-error
 * path are reached. A fix: under the same condition as the item read (origin not connected,
 * stale_allowed()), resolve the name with ekv_cache_lookup_stale() on the names cache. */
START_TEST(test_stale_if_error_edge_path)
{
    struct ekv_test_resp r = {0};

    start("--threads", "1", "--stale-if-error", "30s", "--origin-timeout", "500ms", NULL);
    put_str("k", "old");
    get_expect(ep("k"), "old", "edgekv; fwd=uri-miss; stored");
    get_expect(ep("k"), "old", NULL);
    get_expect(kp("k"), "old", NULL);
    apic_redis_kill(redis);
    ekv_test_sleep_ms(100);
    /* the item path: stale */
    get(kp("k"), NULL, &r);
    expect_body(&r, "old", 3);
    ck_assert_msg(is_stale_hit(&r, NULL), "item path: Cache-Status \"%s\"", cstatus(&r));
    ekv_test_resp_free(&r);
    /* the edge path: the same cached item */
    get(ep("k"), NULL, &r);
    ck_assert_msg(r.status == 200 && is_stale_hit(&r, NULL),
                  "edge path with the origin down: %d, Cache-Status \"%s\": %.*s (the item path "
                  "answered 200 stale)",
                  r.status, cstatus(&r), (int)r.body_len, r.body);
    expect_body(&r, "old", 3);
    ekv_test_resp_free(&r);
}
END_TEST

/* A fill whose origin read fails (Redis paused past origin-timeout): the leader and every
 * joined reader get an answer at once: the stale entry it replaced (marked), or 503 with
 * Retry-After; nothing hangs, the late reply is ignored, and service resumes. */
START_TEST(test_failed_fill_answers_everyone)
{
    enum { N = 40 };
    struct ekv_test_conn *c[N];
    struct ekv_test_resp r = {0};
    uint64_t t0;
    unsigned stale = 0, n503 = 0;
    char *reply;

    start("--threads", "2", "--origin-timeout", "500ms", "--cache-max-ttl", "1s",
          "--max-staleness", "20s", "--stale-if-error", "30s", NULL);
    put_str("warm", "w");
    put_str("cold", "c");
    get_expect(kp("warm"), "w", "edgekv; fwd=uri-miss; stored");
    ekv_test_sleep_ms(1100); /* "warm" is expired in the cache, alive in Redis */

    reply = ekv_test_redis_cmd(redis, "CLIENT PAUSE %s ALL", "3000");
    free(reply);
    t0 = ekv_test_now_ms();
    for (unsigned i = 0; i < N; i++) {
        c[i] = ekv_test_connect(port);
        ekv_test_set_timeout(c[i], 10000);
        send_get(c[i], kp(i % 2 ? "cold" : "warm"), NULL);
    }
    for (unsigned i = 0; i < N; i++) {
        ck_assert_int_eq(ekv_test_read_final(c[i], &r, 0), EKV_TEST_OK);
        /* answered by the timeout, long before Redis wakes up */
        ck_assert_msg(ekv_test_now_ms() - t0 < 2500, "client %u answered after %llu ms", i,
                      (unsigned long long)(ekv_test_now_ms() - t0));
        if (r.status == 200) {
            ck_assert_msg(i % 2 == 0, "a never-cached key answered 200 (%s)", cstatus(&r));
            expect_body(&r, "w", 1);
            ck_assert_msg(is_stale_hit(&r, NULL), "client %u: Cache-Status \"%s\"", i,
                          cstatus(&r));
            stale++;
        } else {
            expect_status(&r, 503);
            ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Retry-After"));
            n503++;
        }
        ekv_test_resp_free(&r);
        ekv_test_close(c[i]);
    }
    ck_assert_uint_ge(n503, N / 2); /* every "cold" one */
    fprintf(stderr, "failed fill: %u stale answers, %u 503s\n", stale, n503);
    /* Redis wakes up; the late replies change nothing; service resumes by itself */
    while (ekv_test_now_ms() - t0 < 3100)
        ekv_test_sleep_ms(20);
    wait_status("/readyz", 200, 10000);
    t0 = ekv_test_now_ms();
    while (metric("edgekv_origin_connected") != 2) {
        ck_assert_msg(ekv_test_now_ms() - t0 < 10000, "the origin connections never came back");
        ekv_test_sleep_ms(20);
    }
    fprintf(stderr, "failed fill: both origin connections back %llu ms after /readyz\n",
            (unsigned long long)(ekv_test_now_ms() - t0));
    poll_until(kp("cold"), 200, "c", 5000);
    poll_until(kp("warm"), 200, "w", 5000);
    ck_assert_int_eq(apic_status(port, "PUT", kp("warm"), NULL, "w2"), 200);
    get(kp("warm"), NULL, &r);
    expect_body(&r, "w2", 2);
    ekv_test_resp_free(&r);
}
END_TEST

/* A slow client keeps the value it is being sent alive (zero-copy hits) while the entry is
 * invalidated under it: it receives every byte of the old value (in the sanitizer build,
 * AddressSanitizer would catch a use after free in edgekv). The value is larger than what the
 * kernel buffers on both sides of a loopback connection hold while the client does not read
 * (about 4 MiB + 512 KiB here), so most of it is still referenced from edgekv's output buffer
 * when the entry goes. */
START_TEST(test_slow_reader_keeps_value)
{
    enum { BIG = 12 << 20 };
    char *a = malloc(BIG), *b = malloc(BIG);
    struct ekv_test_conn *slow;
    struct ekv_test_resp r = {0};
    int rcvbuf = 256 << 10; /* well above the loopback MSS: no silly-window stall later */

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < BIG; i++) {
        a[i] = (char)('A' + (i * 7) % 26);
        b[i] = (char)('a' + (i * 11) % 26);
    }
    /* a budget large enough for a 12 MiB entry in one shard (see test_budget_holds_max_item) */
    start("--cache-max-bytes", "2gb", "--cache-max-item-bytes", "16mb", "--value-max-bytes",
          "16mb", "--origin-timeout", "20s", "--threads", "2", NULL);
    put_settled("big", a, BIG, NULL);
    get(kp("big"), NULL, &r);
    expect_body(&r, a, BIG);
    expect_cs(&r, "edgekv; fwd=uri-miss; stored");
    ekv_test_resp_free(&r);

    /* a hit to a client that does not read for now */
    slow = ekv_test_connect(port);
    ck_assert_int_eq(setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    ekv_test_set_timeout(slow, 30000);
    send_get(slow, kp("big"), NULL);
    ekv_test_sleep_ms(300);
    /* invalidated by a write (the cache drops its reference) and replaced by the new value */
    put_settled("big", b, BIG, NULL);
    get(kp("big"), NULL, &r);
    expect_body(&r, b, BIG);
    ekv_test_resp_free(&r);
    ck_assert_uint_ge(metric("edgekv_cache_evictions_total{reason=\"invalidation\"}"), 1);
    /* now the slow client reads: every byte of the old value */
    ck_assert_int_eq(ekv_test_read_final(slow, &r, 0), EKV_TEST_OK);
    expect_status(&r, 200);
    ck_assert_msg(is_fresh_hit(&r, NULL), "Cache-Status \"%s\"", cstatus(&r));
    ck_assert_uint_eq(r.body_len, BIG);
    ck_assert_msg(memcmp(r.body, a, BIG) == 0, "the slow reader's value was corrupted");
    ekv_test_resp_free(&r);
    ekv_test_close(slow);
    get(kp("big"), NULL, &r);
    expect_body(&r, b, BIG);
    ck_assert(is_fresh_hit(&r, NULL));
    ekv_test_resp_free(&r);
    free(a);
    free(b);
}
END_TEST

/* Regression test (a bug found and fixed): cache-max-item-bytes promises that smaller values are cached (API.md: "larger values are
 * served but not cached"), but the budget is split evenly over 64 shards
 * (src/cache/cache.c ekv_cache_new: sh->max_bytes = limits->max_bytes / p) and an entry must
 * fit in its shard's share (make_room), so with cache-max-bytes 32mb no value above ~470 KiB is
 * ever stored, whatever cache-max-item-bytes (default 1mb) says. Nothing warns at start-up.
 * Either size the shards (or their count) so that one cache-max-item-bytes entry fits, or
 * refuse / warn about a cache-max-item-bytes larger than a shard's share. */
START_TEST(test_budget_holds_max_item)
{
    enum { VAL = 900 << 10 }; /* 900 KiB < cache-max-item-bytes 1mb (default) */
    char *v = malloc(VAL);
    struct ekv_test_resp r = {0};

    ck_assert_ptr_nonnull(v);
    memset(v, 'q', VAL);
    start("--cache-max-bytes", "32mb", NULL);
    put_settled("k", v, VAL, NULL);
    get(kp("k"), NULL, &r);
    expect_body(&r, v, VAL);
    ck_assert_msg(strcmp(cstatus(&r), "edgekv; fwd=uri-miss; stored") == 0,
                  "a 900 KiB value (cache-max-item-bytes 1mb, cache-max-bytes 32mb) was not "
                  "stored: Cache-Status \"%s\"",
                  cstatus(&r));
    ekv_test_resp_free(&r);
    get(kp("k"), NULL, &r);
    expect_body(&r, v, VAL);
    ck_assert_msg(is_fresh_hit(&r, NULL), "Cache-Status \"%s\"", cstatus(&r));
    ekv_test_resp_free(&r);
    free(v);
}
END_TEST

/* /kv/{name} resolutions are cached too: creating, renaming and deleting a store through this
 * instance shows at once (read-your-writes for names). */
START_TEST(test_names_read_your_writes)
{
    struct ekv_test_resp r = {0};
    char fresh[32], path[256];

    start(NULL);
    for (int i = 0; i < 2; i++) {
        get("/kv/fresh/k", NULL, &r);
        expect_status(&r, 404);
        ekv_test_resp_free(&r);
    }
    apic_create_store(port, NULL, "fresh", fresh);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/fresh/k", NULL, "v"), 200);
    get("/kv/fresh/k", NULL, &r);
    expect_body(&r, "v", 1);
    ekv_test_resp_free(&r);
    get("/kv/fresh/k", NULL, &r);
    expect_body(&r, "v", 1);
    ekv_test_resp_free(&r);

    /* rename: the new name works at once, the old one is gone at once */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", fresh);
    ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "{\"name\":\"renamed\"}"), 200);
    get("/kv/renamed/k", NULL, &r);
    expect_body(&r, "v", 1);
    ekv_test_resp_free(&r);
    get("/kv/fresh/k", NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);

    /* delete: gone at once */
    ck_assert_int_eq(apic_status(port, "DELETE", "/kv/renamed/k", NULL, NULL), 204);
    ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    get("/kv/renamed/k", NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/renamed/k", NULL, "v"), 404);
}
END_TEST

/* ---------------------------------------------------------------- max-staleness */

START_TEST(test_max_staleness_silent_redis)
{
    struct ekv_test_resp r = {0};
    uint64_t t_stop, end;
    unsigned late = 0;

    start("--threads", "1", "--max-staleness", "1s", "--origin-timeout", "500ms", NULL);
    put_str("k", "val");
    get_expect(kp("k"), "val", "edgekv; fwd=uri-miss; stored");
    get_expect(kp("k"), "val", NULL);

    ck_assert_int_eq(ekv_test_proc_signal(redis->proc, SIGSTOP), 0);
    t_stop = ekv_test_now_ms();
    end = t_stop + 2500;
    while (ekv_test_now_ms() < end) {
        uint64_t sent = ekv_test_now_ms();

        get(kp("k"), NULL, &r);
        if (r.status == 200)
            expect_body(&r, "val", 3);
        else
            expect_status(&r, 503);
        if (sent > t_stop + 1000 + 500) {
            /* past max-staleness (+ margin): no fresh hit; stale answers are marked */
            ck_assert_msg(!is_fresh_hit(&r, NULL),
                          "a hit %llu ms after Redis went silent (max-staleness 1s): \"%s\"",
                          (unsigned long long)(sent - t_stop), cstatus(&r));
            late++;
        }
        ekv_test_resp_free(&r);
        ekv_test_sleep_ms(20);
    }
    ck_assert_uint_gt(late, 0);
    ck_assert_int_eq(ekv_test_proc_signal(redis->proc, SIGCONT), 0);

    /* hits come back by themselves */
    end = ekv_test_now_ms() + 10000;
    for (;;) {
        bool hit;

        get(kp("k"), NULL, &r);
        hit = r.status == 200 && is_fresh_hit(&r, NULL);
        if (r.status == 200)
            expect_body(&r, "val", 3);
        ekv_test_resp_free(&r);
        if (hit)
            break;
        ck_assert_msg(ekv_test_now_ms() < end, "no hit within 10 s of Redis answering again");
        ekv_test_sleep_ms(50);
    }
    wait_status("/readyz", 200, 5000);
}
END_TEST

/* ---------------------------------------------------------------- metrics */

START_TEST(test_metrics_counters)
{
    static const char *const results[] = {"hit",       "negative_hit", "miss",
                                          "collapsed", "stale",        "bypass"};
    static const uint64_t expect[] = {2, 1, 2, 0, 0, 1};
    uint64_t before[6], get_ok0, calls0;
    struct ekv_test_resp r = {0};
    const char *origin_get = "edgekv_origin_requests_total{op=\"get\",outcome=\"ok\"}";

    start(NULL);
    put_str("m", "v");
    for (size_t i = 0; i < 6; i++)
        before[i] = lookups(results[i]);
    get_ok0 = metric(origin_get);
    calls0 = origin_reads();
    get_expect(kp("m"), "v", "edgekv; fwd=uri-miss; stored"); /* miss */
    get_expect(kp("m"), "v", NULL);                           /* hit */
    get_expect(ep("m"), "v", NULL);                           /* hit */
    get(kp("m"), "Cache-Control: no-cache\r\n", &r);          /* bypass */
    expect_body(&r, "v", 1);
    ekv_test_resp_free(&r);
    get(kp("none"), NULL, &r); /* miss */
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    get(kp("none"), NULL, &r); /* negative hit */
    expect_status(&r, 404);
    ck_assert(is_fresh_hit(&r, NULL));
    ekv_test_resp_free(&r);
    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(lookups(results[i]) - before[i] == expect[i],
                      "edgekv_cache_lookups_total{result=\"%s\"} moved by %llu, expected %llu",
                      results[i], (unsigned long long)(lookups(results[i]) - before[i]),
                      (unsigned long long)expect[i]);
    /* the three reads, and the store check of the 404 */
    ck_assert_uint_eq(metric(origin_get) - get_ok0, 4);
    /* item reads: the miss, the bypass and the 404 (the edge path's name resolution is none) */
    ck_assert_uint_eq(origin_reads() - calls0, 3);
    ck_assert_uint_ge(metric("edgekv_cache_entries"), 2);
    ck_assert_uint_eq(metric("edgekv_invalidation_link_up"), 1);
}
END_TEST

/* ---------------------------------------------------------------- no cache at all */

START_TEST(test_cache_disabled)
{
    struct ekv_test_resp r = {0};
    json_t *j;
    uint64_t calls;

    start("--cache-max-bytes", "0", NULL);
    j = apic_get_json(port, "/readyz", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "invalidation")), "disabled");
    json_decref(j);

    ck_assert_int_eq(apic_status(port, "PUT", kp("k"), NULL, "v1"), 200);
    calls = origin_reads();
    for (int i = 0; i < 4; i++) {
        get(i % 2 ? ep("k") : kp("k"), NULL, &r);
        expect_body(&r, "v1", 2);
        expect_cs(&r, "edgekv; fwd=uri-miss");
        ekv_test_resp_free(&r);
    }
    ck_assert_uint_eq(origin_reads(), calls + 4); /* every read went to Redis */
    for (int i = 0; i < 2; i++) {
        get(kp("none"), NULL, &r);
        expect_status(&r, 404);
        expect_cs(&r, "edgekv; fwd=uri-miss");
        ekv_test_resp_free(&r);
    }
    get(kp("k"), "Cache-Control: no-cache\r\n", &r);
    expect_body(&r, "v1", 2);
    ck_assert_msg(strncmp(cstatus(&r), "edgekv; fwd=", 12) == 0 && !strstr(cstatus(&r), "stored"),
                  "Cache-Status \"%s\" with no cache", cstatus(&r));
    ekv_test_resp_free(&r);
    apic_req(port, "HEAD", kp("k"), NULL, NULL, 0, &r);
    expect_status(&r, 200);
    expect_cs(&r, "edgekv; fwd=uri-miss");
    ekv_test_resp_free(&r);
    /* writes, deletes and batches still work, and reads follow them */
    ck_assert_int_eq(apic_status(port, "PUT", ep("k"), NULL, "v2"), 200);
    get(kp("k"), NULL, &r);
    expect_body(&r, "v2", 2);
    ekv_test_resp_free(&r);
    foreign_put("k", "v3", "0");
    get(kp("k"), NULL, &r);
    expect_body(&r, "v3", 2);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), NULL, NULL), 204);
    get(kp("k"), NULL, &r);
    expect_status(&r, 404);
    ekv_test_resp_free(&r);
    {
        char p[600];
        const char *body = "{\"key\":\"k\",\"value\":\"djQ=\"}\n"; /* "v4" */
        snprintf(p, sizeof(p), "/resources/stores/kv/%s/batch", sid);
        apic_req(port, "PUT", p, NULL, body, strlen(body), &r);
        expect_status(&r, 200);
        ekv_test_resp_free(&r);
    }
    get(ep("k"), NULL, &r);
    expect_body(&r, "v4", 2);
    expect_cs(&r, "edgekv; fwd=uri-miss");
    ekv_test_resp_free(&r);
    ck_assert_uint_eq(metric("edgekv_cache_entries"), 0);
}
END_TEST

/* ---------------------------------------------------------------- suite */

int main(void)
{
    Suite *s = suite_create("cache_e2e");
    TCase *tc = tcase_create("cache");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    (void)ekv_test_edgekv_bin();
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_hit_after_miss);
    tcase_add_test(tc, test_coalesced_misses);
    tcase_add_test(tc, test_bypass_no_cache);
    tcase_add_test(tc, test_bypass_consistency_strong);
    tcase_add_test(tc, test_read_your_writes);
    tcase_add_test(tc, test_write_during_fill);
    tcase_add_test(tc, test_concurrent_readers_never_go_back);
    tcase_add_test(tc, test_pipelined_read_your_writes);
    tcase_add_test(tc, test_negative_caching);
    tcase_add_test(tc, test_negative_ttl_zero);
    tcase_add_test(tc, test_item_ttl_never_served_after);
    tcase_add_test(tc, test_cache_max_ttl);
    tcase_add_test(tc, test_max_item_bytes);
    tcase_add_test(tc, test_foreign_writes_picked_up);
    tcase_add_test(tc, test_lost_link_flushes);
    tcase_add_test(tc, test_stale_if_error);
    tcase_add_test(tc, test_stale_ttl_is_negative);
    tcase_add_test(tc, test_stale_if_error_zero);
    tcase_add_test(tc, test_stale_if_error_window_ends);
    tcase_add_test(tc, test_stale_if_error_edge_path);
    tcase_add_test(tc, test_failed_fill_answers_everyone);
    tcase_add_test(tc, test_slow_reader_keeps_value);
    tcase_add_test(tc, test_budget_holds_max_item);
    tcase_add_test(tc, test_names_read_your_writes);
    tcase_add_test(tc, test_max_staleness_silent_redis);
    tcase_add_test(tc, test_metrics_counters);
    tcase_add_test(tc, test_cache_disabled);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
