/* check_export.c - GET /resources/stores/kv/{id}/export (issue 14; API.md "Export") against a
 * real Redis and a real edgekv: a round trip (binary values, UTF-8 and encoded keys, metadata,
 * TTLs) through PUT .../batch into another store and into another edgekv over another Redis;
 * prefix; an empty store; auth scopes; a large store exported to a slow reader, with edgekv's
 * reads held back while the client does not read and its memory bounded (the figures go to
 * stderr); writes and deletes during an export; the store deleted mid-export; clients vanishing
 * mid-export. EKV_EXPORT_ITEMS sets the large store's size (default 20000; the 200,000
 * runs by hand). */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "edgekv/base64.h"
#include "edgekv/common.h"

#include "apic.h"
#include "testutil.h"

#define TCASE_TIMEOUT 120
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif
#define LARGE_ITEMS 20000 /* default; EKV_EXPORT_ITEMS */

static struct ekv_test_redis *redis;
static struct ekv_test_proc *ek;
static unsigned short port;

static unsigned env_unsigned(const char *name, unsigned dflt)
{
    const char *v = getenv(name);

    return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static struct ekv_test_proc *start_pop(const char *origin, const char *const *extra)
{
    const char *args[16] = {"--origin", origin, "--origin-timeout", "5s"};
    size_t n = 4;
    struct ekv_test_proc *p;
    uint64_t end = ekv_test_now_ms() + 10000;

    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    p = ekv_test_edgekv_startv(args);
    while (ekv_test_get_status(p->port, "/readyz") != 200) {
        ck_assert_msg(ekv_test_now_ms() < end, "edgekv never became ready");
        ekv_test_sleep_ms(20);
    }
    return p;
}

static void setup(void)
{
    redis = ekv_test_redis_start();
    ek = start_pop(redis->origin, NULL);
    port = ek->port;
}

static void teardown(void)
{
    if (ek != NULL) {
        ck_assert(ekv_test_proc_alive(ek));
        ck_assert_int_eq(ekv_test_proc_signal(ek, SIGTERM), 0);
        ck_assert_int_eq(ekv_test_proc_wait(ek, 10000), 0); /* LeakSanitizer: every path freed */
        ekv_test_proc_free(ek);
        ek = NULL;
    }
    ekv_test_redis_stop(redis);
    redis = NULL;
}

static void path_of(char *out, size_t len, const char *sid, const char *what)
{
    snprintf(out, len, "/resources/stores/kv/%s%s", sid, what);
}

/* The export's body (NDJSON) through apic_req(): its status, the body in *@body (malloc'd). */
static int export(unsigned short p, const char *sid, const char *query, const char *hdrs,
                  char **body, size_t *len)
{
    struct ekv_test_resp r = {0};
    char path[256];
    int status;

    snprintf(path, sizeof(path), "/resources/stores/kv/%s/export%s", sid, query);
    status = apic_req(p, "GET", path, hdrs, NULL, 0, &r);
    if (status == 200) {
        ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Type"), "application/x-ndjson");
        ck_assert_str_eq(ekv_test_resp_header(&r, "Transfer-Encoding"), "chunked");
    }
    *body = malloc(r.body_len + 1);
    memcpy(*body, r.body != NULL ? r.body : "", r.body_len);
    (*body)[r.body_len] = '\0';
    *len = r.body_len;
    ekv_test_resp_free(&r);
    return status;
}

/* The lines of an export as JSON objects; the closing line checked and dropped: @n items. */
static json_t *lines(const char *body, size_t want_items)
{
    json_t *arr = json_array();
    const char *p = body;
    size_t n = 0;
    bool ended = false;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        json_error_t err;
        json_t *o;

        ck_assert_msg(nl != NULL, "an export line without its newline: %.80s", p);
        ck_assert_msg(!ended, "a line after the closing line: %.80s", p);
        o = json_loadb(p, (size_t)(nl - p), 0, &err);
        ck_assert_msg(o != NULL, "not JSON: %.*s", (int)(nl - p), p);
        if (json_object_get(o, "end") != NULL) {
            ck_assert(json_is_true(json_object_get(o, "end")));
            ck_assert_uint_eq(json_integer_value(json_object_get(o, "items")), n);
            json_decref(o);
            ended = true;
        } else {
            ck_assert_msg(json_object_get(o, "error") == NULL, "an error line: %.*s",
                          (int)(nl - p), p);
            json_array_append_new(arr, o);
            n++;
        }
        p = nl + 1;
    }
    ck_assert_msg(ended, "no closing line");
    ck_assert_uint_eq(n, want_items);
    return arr;
}

/* ---------------------------------------------------------------- round trip */

struct item {
    const char *enc;  /* the key as it goes in a path */
    const char *key;  /* decoded */
    const char *val;
    size_t len;
    const char *meta; /* NULL: none */
    unsigned ttl;     /* 0: none */
};

static void put_item(unsigned short p, const char *sid, const struct item *it)
{
    char path[256], hdrs[256] = "";
    size_t n = 0;
    struct ekv_test_resp r = {0};

    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", sid, it->enc);
    if (it->meta != NULL)
        n += (size_t)snprintf(hdrs + n, sizeof(hdrs) - n, "metadata: %s\r\n", it->meta);
    if (it->ttl != 0)
        n += (size_t)snprintf(hdrs + n, sizeof(hdrs) - n, "time_to_live_sec: %u\r\n", it->ttl);
    ck_assert_int_eq(apic_req(p, "PUT", path, hdrs, it->val, it->len, &r), 200);
    ekv_test_resp_free(&r);
}

/* Every item of @items reads back through @p from store @sid as it was written; the TTL of those
 * that expire is the Redis TTL of the copy (@r: its origin), what was left of it. */
static void expect_items(unsigned short p, struct ekv_test_redis *r, const char *sid,
                         const struct item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[256];
        struct ekv_test_resp resp = {0};
        const char *m;

        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", sid, items[i].enc);
        ck_assert_int_eq(
            apic_req(p, "GET", path, "Cache-Control: no-cache\r\n", NULL, 0, &resp), 200);
        ck_assert_uint_eq(resp.body_len, items[i].len);
        ck_assert(memcmp(resp.body, items[i].val, items[i].len) == 0);
        m = ekv_test_resp_header(&resp, "Metadata");
        if (items[i].meta != NULL)
            ck_assert_str_eq(m, items[i].meta);
        else
            ck_assert_msg(m == NULL || m[0] == '\0', "%s: metadata %s", items[i].key, m);
        ekv_test_resp_free(&resp);
        {
            char k[300], tag[64], *v;
            long long ms;

            snprintf(k, sizeof(k), "edgekv:i:{%s}:%s",
                     ekv_test_tag(tag, sizeof(tag), sid, items[i].key, EKV_TEST_SHARDS),
                     items[i].key);
            v = ekv_test_redis_cmd(r, "PTTL %s", k);
            ms = atoll(v);
            free(v);
            if (items[i].ttl != 0)
                ck_assert_msg(ms > 0 && ms <= (long long)items[i].ttl * 1000, "%s: PTTL %lld",
                              items[i].key, ms);
            else
                ck_assert_msg(ms == -1, "%s: PTTL %lld", items[i].key, ms);
        }
    }
}

START_TEST(test_round_trip)
{
    static const unsigned char binary[] = {0, 1, 2, 0xff, 0xfe, '\r', '\n', 0, '"', '\\', 'x'};
    const struct item items[] = {
        {"a", "a", "plain", 5, NULL, 0},
        {"b%20c%2Fd", "b c/d", "encoded key", 11, "meta \"quoted\"", 0},
        {"bin", "bin", (const char *)binary, sizeof(binary), NULL, 0},
        {"empty", "empty", "", 0, "m", 0},
        {"ttl", "ttl", "expires", 7, NULL, 3600},
        {"%D0%BA%D0%BB%D1%8E%D1%87", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", "utf-8 key", 9, NULL, 0},
        {"caf%C3%A9", "caf\xc3\xa9", "caf", 3, "x=1", 120},
    };
    const size_t n = sizeof(items) / sizeof(items[0]);
    char a[32], b[32], c[32], path[256], *body, *body2;
    size_t len, len2;
    json_t *arr;
    struct ekv_test_redis *redis2;
    struct ekv_test_proc *ek2;

    apic_create_store(port, NULL, "source", a);
    for (size_t i = 0; i < n; i++)
        put_item(port, a, &items[i]);
    ck_assert_int_eq(export(port, a, "", NULL, &body, &len), 200);
    arr = lines(body, n);
    /* bytewise key order, the fields of a batch line, the generations */
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *key = json_string_value(json_object_get(o, "key"));

        if (i > 0)
            ck_assert_msg(strcmp(json_string_value(json_object_get(json_array_get(arr, i - 1),
                                                                   "key")),
                                 key) < 0,
                          "not in key order at %s", key);
        ck_assert_int_gt(json_integer_value(json_object_get(o, "generation")), 0);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "value")));
        for (size_t j = 0; j < n; j++) {
            if (strcmp(items[j].key, key) != 0)
                continue;
            if (items[j].meta != NULL)
                ck_assert_str_eq(json_string_value(json_object_get(o, "metadata")),
                                 items[j].meta);
            else
                ck_assert_ptr_null(json_object_get(o, "metadata"));
            if (items[j].ttl != 0) {
                json_int_t t = json_integer_value(json_object_get(o, "time_to_live_sec"));
                ck_assert_msg(t > 0 && t <= (json_int_t)items[j].ttl, "%s: ttl %lld", key,
                              (long long)t);
            } else {
                ck_assert_ptr_null(json_object_get(o, "time_to_live_sec"));
            }
        }
    }
    json_decref(arr);

    /* into another store of the same edgekv, by PUT .../batch */
    apic_create_store(port, NULL, "copy", b);
    path_of(path, sizeof(path), b, "/batch");
    {
        struct ekv_test_resp r = {0};
        ck_assert_int_eq(apic_req(port, "PUT", path, NULL, body, len, &r), 200);
        ekv_test_resp_free(&r);
    }
    expect_items(port, redis, b, items, n);
    /* the copy exports the same lines but for its own generations */
    ck_assert_int_eq(export(port, b, "", NULL, &body2, &len2), 200);
    json_decref(lines(body2, n));
    free(body2);

    /* into another edgekv over another Redis */
    redis2 = ekv_test_redis_start();
    ek2 = start_pop(redis2->origin, NULL);
    apic_create_store(ek2->port, NULL, "elsewhere", c);
    path_of(path, sizeof(path), c, "/batch");
    {
        struct ekv_test_resp r = {0};
        ck_assert_int_eq(apic_req(ek2->port, "PUT", path, NULL, body, len, &r), 200);
        ekv_test_resp_free(&r);
    }
    expect_items(ek2->port, redis2, c, items, n);
    ekv_test_proc_free(ek2);
    ekv_test_redis_stop(redis2);
    free(body);
}
END_TEST

START_TEST(test_prefix_empty_missing)
{
    char sid[32], path[256], *body;
    size_t len;
    json_t *arr;

    apic_create_store(port, NULL, "prefix", sid);
    ck_assert_int_eq(export(port, sid, "", NULL, &body, &len), 200);
    ck_assert_str_eq(body, "{\"end\":true,\"items\":0}\n"); /* an empty store */
    free(body);
    for (int i = 0; i < 30; i++) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s%02d", sid,
                 i % 3 == 0 ? "user/" : i % 3 == 1 ? "user-" : "other", i);
        ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "v"), 200);
    }
    ck_assert_int_eq(export(port, sid, "?prefix=user%2F", NULL, &body, &len), 200);
    arr = lines(body, 10);
    for (size_t i = 0; i < 10; i++)
        ck_assert(strncmp(json_string_value(json_object_get(json_array_get(arr, i), "key")),
                          "user/", 5) == 0);
    json_decref(arr);
    free(body);
    ck_assert_int_eq(export(port, sid, "?prefix=nothing", NULL, &body, &len), 200);
    ck_assert_str_eq(body, "{\"end\":true,\"items\":0}\n");
    free(body);
    ck_assert_int_eq(export(port, "zzzzzzzzzzzzzzzzzzzzzz", "", NULL, &body, &len), 404);
    free(body);
    /* deleted items are not exported */
    for (int i = 0; i < 30; i += 2) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s%02d", sid,
                 i % 3 == 0 ? "user/" : i % 3 == 1 ? "user-" : "other", i);
        ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    }
    ck_assert_int_eq(export(port, sid, "", NULL, &body, &len), 200);
    json_decref(lines(body, 15));
    free(body);
    /* only GET */
    path_of(path, sizeof(path), sid, "/export");
    ck_assert_int_eq(apic_status(port, "POST", path, NULL, "x"), 405);
}
END_TEST

START_TEST(test_auth_scopes)
{
    static const char *const extra[] = {"--api-token", "tok-admin", "--read-token", "tok-read",
                                        NULL};
    struct ekv_test_proc *p = start_pop(redis->origin, extra);
    char sid[32], path[256], *body;
    size_t len;

    apic_create_store(p->port, "Fastly-Key: tok-admin\r\n", "auth", sid);
    path_of(path, sizeof(path), sid, "/keys/k");
    ck_assert_int_eq(apic_status(p->port, "PUT", path, "Fastly-Key: tok-admin\r\n", "v"), 200);
    ck_assert_int_eq(export(p->port, sid, "", "Fastly-Key: tok-read\r\n", &body, &len), 200);
    json_decref(lines(body, 1));
    free(body);
    ck_assert_int_eq(export(p->port, sid, "", NULL, &body, &len), 401);
    free(body);
    ck_assert_int_eq(export(p->port, sid, "", "Fastly-Key: wrong\r\n", &body, &len), 401);
    free(body);
    ekv_test_proc_free(p);
}
END_TEST

/* ---------------------------------------------------------------- streaming */

/* A raw export request on its own connection, whose answer the test reads when it likes (a
 * slow reader: once the kernel's buffers are full, edgekv's own fill up to its bound). */
static struct ekv_test_conn *open_export(const char *sid, const char *query)
{
    struct ekv_test_conn *c = ekv_test_connect(port);

    ck_assert_int_eq(ekv_test_sendf(c, "GET /resources/stores/kv/%s/export%s HTTP/1.1\r\nHost: "
                                       "t\r\n\r\n",
                                    sid, query),
                     0);
    return c;
}

/* Reads up to @max bytes (all until the end of the chunked body when @max is 0) into @buf, for
 * at most @ms. Returns how many it read. */
static size_t read_some(struct ekv_test_conn *c, char **buf, size_t *len, size_t max, unsigned ms)
{
    uint64_t end = ekv_test_now_ms() + ms;
    size_t got = 0;

    while (max == 0 || got < max) {
        uint64_t now = ekv_test_now_ms();
        struct pollfd pfd = {c->fd, POLLIN, 0};
        char tmp[65536];
        size_t want = max != 0 && max - got < sizeof(tmp) ? max - got : sizeof(tmp);
        ssize_t n;

        if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
            break;
        n = recv(c->fd, tmp, want, 0);
        if (n <= 0)
            break;
        *buf = realloc(*buf, *len + (size_t)n + 1);
        memcpy(*buf + *len, tmp, (size_t)n);
        *len += (size_t)n;
        (*buf)[*len] = '\0';
        got += (size_t)n;
        if (max == 0 && *len >= 7 && memcmp(*buf + *len - 7, "\r\n0\r\n\r\n", 7) == 0)
            break;
    }
    return got;
}

/* The body of a whole chunked response in @raw (head included), de-chunked (malloc'd). */
static char *dechunk(const char *raw, size_t len)
{
    const char *p = strstr(raw, "\r\n\r\n"), *end = raw + len;
    char *out = malloc(len + 1);
    size_t n = 0;

    ck_assert_ptr_nonnull(p);
    p += 4;
    for (;;) {
        char *e;
        unsigned long sz = strtoul(p, &e, 16);

        ck_assert_msg(e != p && e + 2 <= end && e[0] == '\r' && e[1] == '\n', "bad chunk size");
        p = e + 2;
        if (sz == 0)
            break;
        ck_assert(p + sz + 2 <= end);
        memcpy(out + n, p, sz);
        n += sz;
        p += sz + 2;
    }
    out[n] = '\0';
    return out;
}

static unsigned long long item_reads(void)
{
    char *info = ekv_test_redis_cmd(redis, "INFO commandstats");
    const char *p = strstr(info, "cmdstat_pttl:calls=");
    unsigned long long n = p != NULL ? strtoull(p + 19, NULL, 10) : 0;

    free(info);
    return n;
}

static long rss_kib(const struct ekv_test_proc *p, const char *field)
{
    char path[64], line[128];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, strlen(field)) == 0)
            v = atol(line + strlen(field) + 1);
    fclose(f);
    return v;
}

/* @n items "k<6 digits>" with @vlen-byte values into store @sid, in batches of at most
 * LOAD_BATCH lines (each answered well within the client's timeout, sanitizers or not). */
#define LOAD_BATCH 2000

static void load(const char *sid, unsigned n, size_t vlen)
{
    size_t b64 = 4 * ((vlen + 2) / 3), cap = (size_t)LOAD_BATCH * (b64 + 40) + 1;
    char *body = malloc(cap), path[256];

    ck_assert_ptr_nonnull(body);
    path_of(path, sizeof(path), sid, "/batch");
    for (unsigned first = 0; first < n; first += LOAD_BATCH) {
        struct ekv_test_resp r = {0};
        size_t len = 0;

        for (unsigned i = first; i < n && i < first + LOAD_BATCH; i++) {
            len += (size_t)sprintf(body + len, "{\"key\":\"k%06u\",\"value\":\"", i);
            for (size_t j = 0; j < b64; j++)
                body[len++] = "eHh4"[j % 4]; /* "xxx..." */
            len += (size_t)sprintf(body + len, "\"}\n");
        }
        ck_assert_int_eq(apic_req(port, "PUT", path, NULL, body, len, &r), 200);
        ekv_test_resp_free(&r);
    }
    free(body);
}

START_TEST(test_large_slow_reader)
{
    /* some 25 MB of lines: more than the kernel's socket buffers hold (fewer, larger items
     * under the sanitizers, which are slow to load them) */
    unsigned n = env_unsigned("EKV_EXPORT_ITEMS", SANITIZED ? LARGE_ITEMS / 4 : LARGE_ITEMS);
    size_t vlen = SANITIZED ? 4000 : 1000;
    char sid[32], *raw = NULL, *body;
    size_t len = 0;
    unsigned long long r0, r1;
    long rss0, hwm;
    uint64_t t0, t1;
    struct ekv_test_conn *c;
    json_t *arr;

    apic_create_store(port, NULL, "large", sid);
    load(sid, n, vlen);
    {
        /* the peak from now on (the batch's body was a peak of its own) */
        char path[64];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)ek->pid);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("5", f);
        fclose(f);
    }
    rss0 = rss_kib(ek, "VmRSS:");
    /* a reader that stops reading: edgekv stops reading Redis */
    c = open_export(sid, "");
    read_some(c, &raw, &len, 32 * 1024, 2000);
    ekv_test_sleep_ms(500);
    r0 = item_reads();
    ekv_test_sleep_ms(1000);
    r1 = item_reads();
    ck_assert_msg(r1 - r0 <= 64, "edgekv read %llu items while its client read nothing",
                  r1 - r0);
    /* then it reads all, as fast as it can */
    t0 = ekv_test_now_ms();
    read_some(c, &raw, &len, 0, 120000);
    t1 = ekv_test_now_ms();
    hwm = rss_kib(ek, "VmHWM:");
    body = dechunk(raw, len);
    arr = lines(body, n);
    for (unsigned i = 0; i < n; i += n / 10) {
        char want[16];
        snprintf(want, sizeof(want), "k%06u", i);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, i), "key")), want);
    }
    fprintf(stderr,
            "export: %u items, %zu bytes in %llu ms (%.0f items/s, %.1f MB/s); edgekv RSS %ld KiB "
            "before, peak %ld KiB\n",
            n, strlen(body), (unsigned long long)(t1 - t0),
            (double)n * 1000.0 / (double)(t1 - t0 + 1),
            (double)strlen(body) / 1000.0 / (double)(t1 - t0 + 1), rss0, hwm);
    /* memory bounded: nowhere near the export's size (a sanitizer build keeps what is freed
     * in quarantine: its RSS says nothing of that) */
    if (!SANITIZED)
        ck_assert_msg(hwm - rss0 < 48 * 1024 && (size_t)(hwm - rss0) * 1024 < strlen(body),
                      "RSS grew by %ld KiB for a %zu-byte export", hwm - rss0, strlen(body));
    json_decref(arr);
    free(body);
    free(raw);
    ekv_test_close(c);
}
END_TEST

/* Writes and deletes during an export: every line is an item as one write made it (its value
 * names its key and matches itself), deleted-before items never show, and the export ends. */
struct churn {
    char sid[32];
    atomic_bool stop;
    atomic_uint writes;
};

static void *churner(void *arg)
{
    struct churn *ch = arg;
    unsigned seq = 0;

    while (!atomic_load(&ch->stop)) {
        char path[256], val[64];
        struct ekv_test_conn *c;
        struct ekv_test_resp r;
        int k = (int)(seq % 200);

        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/w%03d", ch->sid, k);
        snprintf(val, sizeof(val), "w%03d-%u-%s", k, seq, seq % 2 ? "odd" : "even-longer");
        if (ekv_test_try_connect(port, &c) != 0)
            continue;
        if (seq % 5 == 0)
            ekv_test_sendf(c, "DELETE %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
        else
            ekv_test_sendf(c,
                           "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\nConnection: "
                           "close\r\n\r\n%s",
                           path, strlen(val), val);
        if (ekv_test_read_final(c, &r, 0) == EKV_TEST_OK)
            ekv_test_resp_free(&r);
        ekv_test_close(c);
        seq++;
        atomic_fetch_add(&ch->writes, 1);
    }
    return NULL;
}

START_TEST(test_writes_during_export)
{
    struct churn ch = {0};
    unsigned before;
    pthread_t t;
    char path[256], *raw = NULL, *body;
    size_t len = 0, count;
    struct ekv_test_conn *c;
    json_t *arr;

    apic_create_store(port, NULL, "churn", ch.sid);
    for (int k = 0; k < 200; k++) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/w%03d", ch.sid, k);
        ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "w-initial"), 200);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/d%03d", ch.sid, k);
        ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "doomed"), 200);
    }
    for (int k = 0; k < 200; k++) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/d%03d", ch.sid, k);
        ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    }
    ck_assert_int_eq(pthread_create(&t, NULL, churner, &ch), 0);
    while (atomic_load(&ch.writes) < 20)
        ekv_test_sleep_ms(5);
    c = open_export(ch.sid, "");
    for (int i = 0; i < 40; i++) /* slowly: the writes run beside it */
        read_some(c, &raw, &len, 256, 50);
    before = atomic_load(&ch.writes);
    read_some(c, &raw, &len, 0, 30000);
    atomic_store(&ch.stop, true);
    pthread_join(t, NULL);
    body = dechunk(raw, len);
    {
        /* the item count varies with the deletes: count the lines first */
        const char *p = body;
        count = 0;
        while ((p = strchr(p, '\n')) != NULL) {
            count++;
            p++;
        }
        count--; /* the closing line */
    }
    arr = lines(body, count);
    for (size_t i = 0; i < count; i++) {
        json_t *o = json_array_get(arr, i);
        const char *key = json_string_value(json_object_get(o, "key"));
        const char *b64 = json_string_value(json_object_get(o, "value"));
        char val[128] = "";
        size_t vlen = 0;

        ck_assert_msg(key[0] == 'w', "a deleted item exported: %s", key);
        ck_assert_int_eq(ekv_base64_decode(b64, strlen(b64), 0, val, sizeof(val) - 1, &vlen),
                         EKV_OK);
        val[vlen] = '\0';
        ck_assert_msg(strcmp(val, "w-initial") == 0 ||
                          (strncmp(val, key, 4) == 0 && val[4] == '-' &&
                           (strstr(val, "-odd") != NULL || strstr(val, "-even-longer") != NULL)),
                      "%s: a torn or foreign value %s", key, val);
    }
    fprintf(stderr, "export beside %u writes: %zu items\n", before, count);
    ck_assert_uint_ge(before, 20);
    json_decref(arr);
    free(body);
    free(raw);
    ekv_test_close(c);
}
END_TEST

/* The store deleted during the export: the stream ends with {"error":"store deleted"}, in a
 * chunked body terminated as usual. */
START_TEST(test_store_deleted_mid_export)
{
    char sid[32], path[256], *raw = NULL, *body, *last;
    size_t len = 0;
    struct ekv_test_conn *c;

    apic_create_store(port, NULL, "doomed", sid);
    load(sid, 5000, 4000); /* 5000 x 5 KB lines: more than the kernel buffers hold */
    c = open_export(sid, "");
    read_some(c, &raw, &len, 16 * 1024, 2000);
    ekv_test_sleep_ms(300);
    /* everything goes, then the store */
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k%06u", sid, i);
        ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    }
    path_of(path, sizeof(path), sid, "");
    ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    read_some(c, &raw, &len, 0, 20000);
    ck_assert_msg(len >= 7 && memcmp(raw + len - 7, "\r\n0\r\n\r\n", 7) == 0,
                  "the chunked body was not ended");
    body = dechunk(raw, len);
    last = strrchr(body, '{');
    ck_assert_ptr_nonnull(last);
    ck_assert_str_eq(last, "{\"error\":\"store deleted\"}\n");
    ck_assert(strstr(body, "\"end\":true") == NULL);
    free(body);
    free(raw);
    ekv_test_close(c);
}
END_TEST

/* Clients that go away mid-export: edgekv stops, frees what it held (LeakSanitizer at the
 * teardown's SIGTERM), and the next export is whole. */
START_TEST(test_client_vanishes)
{
    char sid[32], *body;
    size_t len;

    apic_create_store(port, NULL, "vanish", sid);
    load(sid, 2000, 2000);
    for (int i = 0; i < 20; i++) {
        struct ekv_test_conn *c = open_export(sid, "");
        char *raw = NULL;
        size_t rl = 0;

        read_some(c, &raw, &rl, (size_t)(i + 1) * 1000, 1000);
        ekv_test_close(c); /* with unread data: a reset */
        free(raw);
    }
    ekv_test_sleep_ms(200);
    ck_assert(ekv_test_proc_alive(ek));
    ck_assert_int_eq(export(port, sid, "", NULL, &body, &len), 200);
    json_decref(lines(body, 2000));
    free(body);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("export");
    TCase *tc = tcase_create("export");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    ekv_test_edgekv_bin();
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_prefix_empty_missing);
    tcase_add_test(tc, test_auth_scopes);
    tcase_add_test(tc, test_large_slow_reader);
    tcase_add_test(tc, test_writes_during_export);
    tcase_add_test(tc, test_store_deleted_mid_export);
    tcase_add_test(tc, test_client_vanishes);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
