/* check_durability.c - an acknowledged write survives a crash of the origin (issue 3,
 * "Durability"). redis-server runs from the shipped conf/redis-origin.conf (AOF on) with
 * `appendfsync always`, RDB snapshots off (so only the AOF can bring data back), in its own data
 * directory; edgekv runs on it. Items are written through edgekv (plain, binary with an encoded
 * key, with metadata, with a far TTL, overwritten, deleted; a store is deleted) and each write
 * is answered 200/204; then redis-server is killed with SIGKILL right after the last answer,
 * started again on the same data directory and socket, and edgekv - which reconnects by itself -
 * must show every acknowledged write with the same value, metadata and generation, and nothing
 * that was deleted. Reads send `Cache-Control: no-cache`, so they come from the restarted Redis
 * and not from edgekv's cache.
 *
 * What this shows and what it cannot: Redis appends a write to the AOF before it answers it, so
 * a killed process loses nothing the page cache holds; `appendfsync always` is what also covers a
 * crash of the machine (power loss), which a test cannot stage. The test fails if the AOF is off
 * (conf/redis-origin.conf changed) or if edgekv acknowledged a write Redis never applied. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "apic.h"
#include "testutil.h"

#define TCASE_TIMEOUT 30
#define START_TIMEOUT_MS 10000 /* a redis-server (loading its AOF), edgekv's reconnection */
#define NBULK 40               /* small items written in a row just before the crash */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NO_CACHE "Cache-Control: no-cache\r\n"

/* One item written before the crash, and what edgekv answered for it. */
struct item {
    char path[160];   /* /resources/stores/kv/<sid>/keys/<encoded key> */
    const char *hdrs; /* extra request headers of the PUT (NULL: none) */
    const void *val;  /* NULL: the item was deleted */
    size_t len;
    const char *meta; /* the Metadata header expected on reads ("" = none) */
    char gen[32];     /* its Generation before the crash */
    char etag[40];
    char last_mod[64];
};

/* ---------------------------------------------------------------- HTTP */

/* Polls GET @path until it answers @status (at most START_TIMEOUT_MS). */
static void wait_status(unsigned short port, const char *path, int status)
{
    uint64_t end = ekv_test_now_ms() + START_TIMEOUT_MS;
    int got;

    while ((got = ekv_test_get_status(port, path)) != status) {
        ck_assert_msg(ekv_test_now_ms() < end, "GET %s never answered %d (last: %d)", path, status,
                      got);
        ekv_test_sleep_ms(20);
    }
}

/* GET @path with @hdrs into @r. Until every worker has reconnected to the restarted origin, a
 * request may get 503 (/readyz only tells about the worker that answered it): retried then,
 * for at most START_TIMEOUT_MS. Any other status is returned. */
static int get_settled(unsigned short port, const char *path, const char *hdrs,
                       struct ekv_test_resp *r)
{
    uint64_t end = ekv_test_now_ms() + START_TIMEOUT_MS;
    int status;

    while ((status = apic_req(port, "GET", path, hdrs, NULL, 0, r)) == 503 &&
           ekv_test_now_ms() < end) {
        ekv_test_resp_free(r);
        ekv_test_sleep_ms(20);
    }
    return status;
}

/* get_settled(), expecting 200 and a JSON body (json_decref() it). */
static json_t *get_settled_json(unsigned short port, const char *path)
{
    struct ekv_test_resp r = {0};
    json_t *j;

    ck_assert_int_eq(get_settled(port, path, NULL, &r), 200);
    j = apic_json(&r);
    ekv_test_resp_free(&r);
    return j;
}

static void copy_header(const struct ekv_test_resp *r, const char *name, char *out, size_t len)
{
    const char *v = ekv_test_resp_header(r, name);

    ck_assert_msg(v != NULL, "no %s header", name);
    snprintf(out, len, "%s", v);
}

/* PUTs @it (expects 200), then reads it back from the origin and records its generation. */
static void put_item(unsigned short port, struct item *it)
{
    struct ekv_test_resp r = {0};
    const char *v;

    ck_assert_int_eq(apic_req(port, "PUT", it->path, it->hdrs, it->val, it->len, &r), 200);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_req(port, "GET", it->path, NO_CACHE, NULL, 0, &r), 200);
    ck_assert_uint_eq(r.body_len, it->len);
    ck_assert(memcmp(r.body, it->val, it->len) == 0);
    v = ekv_test_resp_header(&r, "Metadata");
    ck_assert_str_eq(v != NULL ? v : "(none)", it->meta);
    copy_header(&r, "Generation", it->gen, sizeof(it->gen));
    copy_header(&r, "ETag", it->etag, sizeof(it->etag));
    copy_header(&r, "Last-Modified", it->last_mod, sizeof(it->last_mod));
    ekv_test_resp_free(&r);
}

/* After the crash: @it reads back exactly as before, from the origin. */
static void expect_item(unsigned short port, const struct item *it)
{
    struct ekv_test_resp r = {0};
    const char *v;
    int status = get_settled(port, it->path, NO_CACHE, &r);

    if (it->val == NULL) {
        ck_assert_msg(status == 404, "GET %s: %d, but it was deleted before the crash", it->path,
                      status);
        ekv_test_resp_free(&r);
        return;
    }
    ck_assert_msg(status == 200, "GET %s: %d after the crash: an acknowledged write was lost",
                  it->path, status);
    ck_assert_msg(r.body_len == it->len && memcmp(r.body, it->val, it->len) == 0,
                  "GET %s: another value after the crash (%zu bytes, %zu before)", it->path,
                  r.body_len, it->len);
    v = ekv_test_resp_header(&r, "Metadata");
    ck_assert_str_eq(v != NULL ? v : "(none)", it->meta);
    v = ekv_test_resp_header(&r, "Generation");
    ck_assert_msg(v != NULL && strcmp(v, it->gen) == 0, "GET %s: generation %s, %s before",
                  it->path, v != NULL ? v : "(none)", it->gen);
    ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), it->etag);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Last-Modified"), it->last_mod);
    /* read from the restarted Redis, not from edgekv's cache */
    v = ekv_test_resp_header(&r, "Cache-Status");
    ck_assert_msg(v != NULL && strstr(v, "fwd=") != NULL && strstr(v, "hit") == NULL,
                  "GET %s: Cache-Status: %s", it->path, v != NULL ? v : "(none)");
    ekv_test_resp_free(&r);
}

/* ---------------------------------------------------------------- the test */

START_TEST(test_acknowledged_writes_survive_kill_9)
{
    static const unsigned char binary[] = {0, 1, 2, 0xff, 0xfe, '\r', '\n', 0, 'x'};
    struct ekv_test_redis *o;
    struct ekv_test_proc *ek;
    struct item items[5 + NBULK];
    struct item *plain = &items[0], *bin = &items[1], *meta = &items[2], *ttl = &items[3],
                *gone = &items[4];
    char sid[32], sid2[32], path[256], *s;
    char bulk_vals[NBULK][32];
    struct ekv_test_resp r = {0};
    json_t *before, *after;
    unsigned short port;
    long long pttl;

    o = ekv_test_redis_start_durable();
    /* the shipped configuration has the AOF on; the test adds appendfsync always */
    s = ekv_test_redis_cmd(o, "CONFIG GET appendonly");
    ck_assert_str_eq(s, "appendonly\nyes");
    free(s);
    s = ekv_test_redis_cmd(o, "CONFIG GET appendfsync");
    ck_assert_str_eq(s, "appendfsync\nalways");
    free(s);

    {
        const char *args[] = {"--origin", o->origin, "--origin-timeout", "5s", NULL};
        ek = ekv_test_edgekv_startv(args);
    }
    port = ek->port;
    wait_status(port, "/readyz", 200);

    /* ---- writes, each acknowledged */
    apic_create_store(port, NULL, "durable", sid);
    apic_create_store(port, NULL, "doomed", sid2);
    memset(items, 0, sizeof(items));
    snprintf(plain->path, sizeof(plain->path), "/resources/stores/kv/%s/keys/plain", sid);
    plain->val = "a plain value";
    plain->len = strlen(plain->val);
    plain->meta = "";
    snprintf(bin->path, sizeof(bin->path), "/resources/stores/kv/%s/keys/dir%%2Fk%%202", sid);
    bin->val = binary;
    bin->len = sizeof(binary);
    bin->meta = "";
    snprintf(meta->path, sizeof(meta->path), "/resources/stores/kv/%s/keys/with-meta", sid);
    meta->hdrs = "metadata: lang=en; v=2\r\n";
    meta->val = "value with metadata";
    meta->len = strlen(meta->val);
    meta->meta = "lang=en; v=2";
    snprintf(ttl->path, sizeof(ttl->path), "/resources/stores/kv/%s/keys/with-ttl", sid);
    ttl->hdrs = "time_to_live_sec: 864000\r\n"; /* ten days */
    ttl->val = "value with a TTL";
    ttl->len = strlen(ttl->val);
    ttl->meta = "";
    snprintf(gone->path, sizeof(gone->path), "/resources/stores/kv/%s/keys/gone", sid);
    gone->val = "deleted before the crash";
    gone->len = strlen(gone->val);
    gone->meta = "";

    /* "plain" is written twice: the second generation must be the one that survives */
    put_item(port, plain);
    plain->val = "a plain value, overwritten";
    plain->len = strlen(plain->val);
    put_item(port, plain);
    put_item(port, bin);
    put_item(port, meta);
    put_item(port, ttl);
    put_item(port, gone);
    ck_assert_int_eq(apic_status(port, "DELETE", gone->path, NULL, NULL), 204);
    gone->val = NULL;
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid2);
    ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
    before = apic_get_json(port, path, NULL, 200);
    for (int i = 0; i < NBULK; i++) {
        struct item *it = &items[5 + i];

        snprintf(it->path, sizeof(it->path), "/resources/stores/kv/%s/keys/bulk-%02d", sid, i);
        snprintf(bulk_vals[i], sizeof(bulk_vals[i]), "bulk value %d", i);
        it->val = bulk_vals[i];
        it->len = strlen(bulk_vals[i]);
        it->meta = "";
        put_item(port, it);
    }
    /* the last acknowledged write, immediately before the crash (no read after it) */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/last", sid);
    ck_assert_int_eq(apic_status(port, "PUT", path, "metadata: last\r\n", "the last write"), 200);

    /* ---- the crash */
    ck_assert_int_eq(ekv_test_proc_signal(o->proc, SIGKILL), 0);
    ck_assert_int_eq(ekv_test_proc_wait(o->proc, START_TIMEOUT_MS), 128 + SIGKILL);
    ekv_test_proc_free(o->proc); /* its log directory; the data directory stays */
    o->proc = NULL;
    wait_status(port, "/readyz", 503);

    /* ---- the restart, on the same data directory and socket */
    ck_assert_msg(ekv_test_redis_revive(o), "redis-server did not start again on its data");
    ck_assert_msg(ekv_test_proc_wait_log(o->proc, "DB loaded from append only file", 1000),
                  "redis-server did not load its AOF");
    /* edgekv reconnects by itself (each worker: reads wait out their 503s) */
    wait_status(port, "/readyz", 200);

    for (size_t i = 0; i < ARRAY_LEN(items); i++)
        expect_item(port, &items[i]);
    ck_assert_int_eq(get_settled(port, path, NO_CACHE, &r), 200);
    ck_assert_uint_eq(r.body_len, strlen("the last write"));
    ck_assert(memcmp(r.body, "the last write", r.body_len) == 0);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "last");
    ekv_test_resp_free(&r);

    /* the TTL is still about ten days away */
    {
        char tag[64];
        snprintf(path, sizeof(path), "edgekv:i:{%s}:with-ttl",
                 ekv_test_tag(tag, sizeof(tag), sid, "with-ttl", EKV_TEST_SHARDS));
    }
    s = ekv_test_redis_cmd(o, "PTTL %s", path);
    pttl = atoll(s);
    free(s);
    ck_assert_msg(pttl > 863000LL * 1000 && pttl <= 864000LL * 1000, "PTTL %lld", pttl);

    /* the store record and the listing, read from the origin */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
    after = get_settled_json(port, path);
    ck_assert_msg(json_equal(before, after), "the store record changed across the crash");
    json_decref(before);
    json_decref(after);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid2);
    ck_assert_int_eq(get_settled(port, path, NULL, &r), 404);
    ekv_test_resp_free(&r);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?consistency=strong", sid);
    after = get_settled_json(port, path);
    {
        json_t *data = json_object_get(after, "data");
        const char *want[5 + NBULK];
        size_t n = 0;

        /* bytewise order: "bulk-NN" < "dir/k 2" < "last" < "plain" < "with-meta" < "with-ttl" */
        for (int i = 0; i < NBULK; i++)
            want[n++] = strrchr(items[5 + i].path, '/') + 1;
        want[n++] = "dir/k 2";
        want[n++] = "last";
        want[n++] = "plain";
        want[n++] = "with-meta";
        want[n++] = "with-ttl";
        ck_assert_msg(json_is_array(data) && json_array_size(data) == n, "%zu keys listed",
                      json_array_size(data));
        for (size_t i = 0; i < n; i++)
            ck_assert_str_eq(json_string_value(json_array_get(data, i)), want[i]);
    }
    json_decref(after);

    /* the generation counter survived too: a new write gets a larger generation */
    {
        uint64_t end = ekv_test_now_ms() + START_TIMEOUT_MS;
        int st;

        /* an unconditional write: a retry after a 503 (not sent to the origin) is harmless */
        while ((st = apic_status(port, "PUT", plain->path, NULL, "after the crash")) == 503 &&
               ekv_test_now_ms() < end)
            ekv_test_sleep_ms(20);
        ck_assert_int_eq(st, 200);
    }
    ck_assert_int_eq(get_settled(port, plain->path, NO_CACHE, &r), 200);
    {
        unsigned long long g_new = strtoull(ekv_test_resp_header(&r, "Generation"), NULL, 10);

        for (size_t i = 0; i < ARRAY_LEN(items); i++) {
            if (items[i].val != NULL)
                ck_assert_msg(g_new > strtoull(items[i].gen, NULL, 10),
                              "generation %llu after the crash, %s before", g_new, items[i].gen);
        }
    }
    ekv_test_resp_free(&r);

    ck_assert(ekv_test_proc_alive(ek));
    ekv_test_proc_free(ek);
    ekv_test_redis_stop(o);
}
END_TEST

static void kill_strays(void)
{
    ekv_test_kill_strays();
}

int main(void)
{
    Suite *s = suite_create("durability");
    TCase *tc = tcase_create("aof");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    ekv_test_edgekv_bin();
    tcase_add_checked_fixture(tc, NULL, kill_strays);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_acknowledged_writes_survive_kill_9);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
