/* check_api.c - end-to-end tests of the KV API (API.md): a real redis-server on a unix socket
 * and the real edgekv binary, driven over HTTP. Covers stores, items (headers, generations,
 * preconditions, append/prepend, TTL, metadata), key listing, batch, the edge path, resource
 * links, tokens, the documented Redis layout, concurrent conditional writers, a 25 MiB value,
 * and origin outages (503 + Retry-After, recovery).
 *
 * Each TCase but "origin" starts one redis-server and one edgekv in an unchecked fixture (once,
 * in the runner) and empties Redis before every test; the "origin" tests start and break their
 * own. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "apic.h"
#include "testutil.h"

#define TCASE_TIMEOUT 30
#define MIB (1024 * 1024)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct ekv_test_redis *redis;
static struct ekv_test_proc *ek;
static unsigned short port;

/* ---------------------------------------------------------------- fixtures */

/* Polls /readyz until the origin is connected (at most 5 s). */
static void wait_ready(unsigned short p)
{
    uint64_t end = ekv_test_now_ms() + 5000;

    while (ekv_test_get_status(p, "/readyz") != 200) {
        ck_assert_msg(ekv_test_now_ms() < end, "edgekv never became ready");
        ekv_test_sleep_ms(20);
    }
}

/* redis-server, then edgekv on it with @extra arguments (NULL-terminated). */
static void start_with(const char *const *extra)
{
    const char *args[32];
    size_t n = 0;

    redis = ekv_test_redis_start();
    args[n++] = "--origin";
    args[n++] = redis->origin;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    ek = ekv_test_edgekv_startv(args);
    port = ek->port;
    wait_ready(port);
}

static void start_default(void)
{
    /* a 25 MiB value goes through hiredis 0.14, whose output buffer costs a memmove per
     * write: under the sanitizers that alone can take more than the default 1 s */
    static const char *const extra[] = {"--origin-timeout", "10s", NULL};
    start_with(extra);
}

static void start_small(void)
{
    static const char *const extra[] = {"--value-max-bytes", "64kb", "--max-stores",     "2",
                                        "--batch-max-bytes", "256kb", NULL};
    start_with(extra);
}

static void start_auth(void)
{
    static const char *const extra[] = {"--api-token",        "tok-admin",   "--read-token",
                                        "tok-read",           "--api-token", "tok-admin-2",
                                        "--edge-read-public", "yes",         NULL};
    start_with(extra);
}

static void start_links(void)
{
    static const char *const extra[] = {"--service-id", "svc1", NULL};
    start_with(extra);
}

static void stop_all(void)
{
    int status;

    /* a clean exit on SIGTERM: in the sanitizer build, LeakSanitizer checks the API's paths */
    if (ek != NULL && ekv_test_proc_signal(ek, SIGTERM) == 0) {
        status = ekv_test_proc_wait(ek, 10000);
        if (status != 0) {
            char *log = ekv_test_proc_log(ek);
            ekv_test_note_failure("edgekv exited with status %d on SIGTERM; its output:\n%s",
                                  status, log);
            free(log);
        }
    }
    ekv_test_proc_free(ek);
    ek = NULL;
    ekv_test_redis_stop(redis);
    redis = NULL;
}

static void flush(void)
{
    free(ekv_test_redis_cmd(redis, "FLUSHALL"));
}

static void check_alive(void)
{
    /* every test leaves the shared edgekv serving */
    ck_assert_int_eq(ekv_test_get_status(port, "/healthz"), 200);
}

/* ---------------------------------------------------------------- helpers */

static char sid[32];
static char tagbuf[64];

/* The hash tag of item @key's bucket in the current store (the stores here have store-shards'
 * default buckets): one use per expression. */
#define TAG(key) ekv_test_tag(tagbuf, sizeof(tagbuf), sid, (key), EKV_TEST_SHARDS)

/* Lines of a reply as ekv_test_redis_cmd() renders it ("" : none). */
static size_t count_lines(const char *v)
{
    size_t n = *v != '\0';

    for (; *v != '\0'; v++)
        n += *v == '\n';
    return n;
}

static void new_store(const char *name)
{
    apic_create_store(port, NULL, name, sid);
}

/* /resources/stores/kv/<sid>/keys/<raw> */
static const char *kp(const char *raw)
{
    static char buf[8][4096];
    static int i;
    char *b = buf[i++ % 8];

    snprintf(b, 4096, "/resources/stores/kv/%s/keys/%s", sid, raw);
    return b;
}

static int put(const char *raw, const char *val, const char *hdrs)
{
    return apic_status(port, "PUT", kp(raw), hdrs, val != NULL ? val : "");
}

/* GET; expects @status; when 200 expects the body @val. */
static void expect_get(const char *raw, int status, const char *val)
{
    struct ekv_test_resp r = {0};

    apic_req(port, "GET", kp(raw), NULL, NULL, 0, &r);
    ck_assert_msg(r.status == status, "GET %s: %d, expected %d: %.*s", raw, r.status, status,
                  (int)r.body_len, r.body);
    if (status == 200 && val != NULL) {
        ck_assert_uint_eq(r.body_len, strlen(val));
        ck_assert(memcmp(r.body, val, r.body_len) == 0);
    }
    ekv_test_resp_free(&r);
}

static uint64_t generation_of(const char *raw)
{
    struct ekv_test_resp r = {0};
    const char *g;
    uint64_t v;

    ck_assert_int_eq(apic_req(port, "GET", kp(raw), NULL, NULL, 0, &r), 200);
    g = ekv_test_resp_header(&r, "Generation");
    ck_assert_ptr_nonnull(g);
    v = strtoull(g, NULL, 10);
    ekv_test_resp_free(&r);
    return v;
}

static void expect_problem(const struct ekv_test_resp *r, int status)
{
    json_t *j;

    ck_assert_msg(r->status == status, "status %d, expected %d: %.*s", r->status, status,
                  (int)r->body_len, r->body);
    ck_assert_str_eq(ekv_test_resp_header(r, "Content-Type"), "application/problem+json");
    j = apic_json(r);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), status);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "title")));
    json_decref(j);
}

/* The list of keys (GET .../keys?@query) as one string "k1,k2,..."; *@next gets next_cursor. */
static char *list_keys(const char *query, char **next)
{
    char path[4096];
    json_t *j, *data, *cur;
    size_t i, len = 0;
    char *out = calloc(1, 65536);

    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys%s%s", sid, query ? "?" : "",
             query ? query : "");
    j = apic_get_json(port, path, NULL, 200);
    data = json_object_get(j, "data");
    ck_assert(json_is_array(data));
    json_array_foreach(data, i, cur)
    {
        len += (size_t)snprintf(out + len, 65536 - len, "%s%s", i > 0 ? "," : "",
                                json_string_value(cur));
    }
    cur = json_object_get(json_object_get(j, "meta"), "next_cursor");
    if (next != NULL)
        *next = cur != NULL ? strdup(json_string_value(cur)) : NULL;
    else
        ck_assert_ptr_null(cur);
    json_decref(j);
    return out;
}

/* ---------------------------------------------------------------- stores */

START_TEST(test_store_create)
{
    struct ekv_test_resp r = {0};
    json_t *j;
    const char *id, *created;
    const char *body = "{\"name\":\"my-store_1.x\"}";

    apic_req(port, "POST", "/resources/stores/kv", NULL, body, strlen(body), &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Cache-Control"), "no-store");
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Type"), "application/json");
    j = apic_json(&r);
    id = json_string_value(json_object_get(j, "id"));
    ck_assert_uint_eq(strlen(id), 22);
    ck_assert_uint_eq(strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789"), 22);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "my-store_1.x");
    created = json_string_value(json_object_get(j, "created_at"));
    ck_assert_uint_eq(strlen(created), 19); /* "2025-06-23 19:41:15" */
    ck_assert(created[4] == '-' && created[10] == ' ' && created[13] == ':');
    ck_assert_str_eq(created, json_string_value(json_object_get(j, "updated_at")));
    json_decref(j);
    ekv_test_resp_free(&r);

    /* a location is accepted */
    ck_assert_int_eq(
        apic_status(port, "POST", "/resources/stores/kv?location=EU", NULL, "{\"name\":\"eu\"}"),
        201);
}
END_TEST

START_TEST(test_store_create_errors)
{
    struct ekv_test_resp r = {0};
    char body[400];

    new_store("taken");
    apic_req(port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"taken\"}", 16, &r);
    expect_problem(&r, 409);
    ekv_test_resp_free(&r);
    apic_req(port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"bad name\"}", 19, &r);
    expect_problem(&r, 400);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"\"}"),
                     400);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, "{\"name\":5}"), 400);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, "{\"nam"), 400);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, ""), 400);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, "[]"), 400);
    ck_assert_int_eq(
        apic_status(port, "POST", "/resources/stores/kv?location=MARS", NULL, "{\"name\":\"m\"}"),
        400);
    snprintf(body, sizeof(body), "{\"name\":\"%0256d\"}", 0);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, body), 400);
    snprintf(body, sizeof(body), "{\"name\":\"%0255d\"}", 0);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, body), 201);
    /* nothing was created by the refused requests */
    json_t *j = apic_get_json(port, "/resources/stores/kv", NULL, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "meta"), "total")), 2);
    json_decref(j);
}
END_TEST

START_TEST(test_store_list)
{
    static const char *const names[] = {"s-c", "s-a", "s-e", "s-b", "s-d"};
    char path[512], *cursor = NULL, got[512] = "";
    json_t *j, *meta, *data;
    int pages = 0;

    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        new_store(names[i]);
    j = apic_get_json(port, "/resources/stores/kv", NULL, 200);
    meta = json_object_get(j, "meta");
    ck_assert_int_eq(json_integer_value(json_object_get(meta, "total")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(meta, "limit")), 1000);
    ck_assert_ptr_null(json_object_get(meta, "next_cursor"));
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 5);
    json_decref(j);

    /* pages of 2 until next_cursor is absent: every store once, sorted by name */
    do {
        size_t i;
        json_t *s;

        if (cursor != NULL)
            snprintf(path, sizeof(path), "/resources/stores/kv?limit=2&cursor=%s", cursor);
        else
            snprintf(path, sizeof(path), "/resources/stores/kv?limit=2");
        free(cursor);
        cursor = NULL;
        j = apic_get_json(port, path, NULL, 200);
        meta = json_object_get(j, "meta");
        ck_assert_int_eq(json_integer_value(json_object_get(meta, "total")), 5);
        ck_assert_int_eq(json_integer_value(json_object_get(meta, "limit")), 2);
        data = json_object_get(j, "data");
        ck_assert_uint_le(json_array_size(data), 2);
        json_array_foreach(data, i, s)
        {
            strcat(got, json_string_value(json_object_get(s, "name")));
            strcat(got, " ");
            ck_assert_uint_eq(strlen(json_string_value(json_object_get(s, "id"))), 22);
            ck_assert_ptr_nonnull(json_string_value(json_object_get(s, "created_at")));
        }
        if (json_object_get(meta, "next_cursor") != NULL)
            cursor = strdup(json_string_value(json_object_get(meta, "next_cursor")));
        json_decref(j);
        pages++;
    } while (cursor != NULL);
    ck_assert_str_eq(got, "s-a s-b s-c s-d s-e ");
    ck_assert_int_eq(pages, 3);

    /* ?name= */
    j = apic_get_json(port, "/resources/stores/kv?name=s-d", NULL, 200);
    data = json_object_get(j, "data");
    ck_assert_uint_eq(json_array_size(data), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(data, 0), "name")), "s-d");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "meta"), "total")), 5);
    json_decref(j);
    j = apic_get_json(port, "/resources/stores/kv?name=nope", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);

    /* bad cursor and limits */
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv?cursor=%25%25", NULL, NULL),
                     400);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv?cursor=***", NULL, NULL), 400);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv?limit=0", NULL, NULL), 400);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv?limit=1001", NULL, NULL), 400);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv?limit=x", NULL, NULL), 400);
}
END_TEST

START_TEST(test_store_describe_rename)
{
    char path[256], other[32];
    struct ekv_test_resp r = {0};
    json_t *j;

    new_store("orig");
    apic_create_store(port, NULL, "other", other);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
    j = apic_get_json(port, path, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), sid);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "orig");
    json_decref(j);

    /* rename: 200 with an empty body */
    apic_req(port, "PUT", path, NULL, "{\"name\":\"renamed\"}", 18, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ekv_test_resp_free(&r);
    j = apic_get_json(port, path, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "renamed");
    json_decref(j);
    j = apic_get_json(port, "/resources/stores/kv?name=renamed", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    j = apic_get_json(port, "/resources/stores/kv?name=orig", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    /* the old name is free again, the new one taken */
    ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "{\"name\":\"other\"}"), 409);
    ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "{\"name\":\"a b\"}"), 400);
    ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "{}"), 400);
    ck_assert_int_eq(apic_status(port, "PUT", "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa", NULL,
                                 "{\"name\":\"x\"}"),
                     404);
    ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "{\"name\":\"renamed\"}"), 200);

    /* describe: unknown and malformed ids */
    apic_req(port, "GET", "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa", NULL, NULL, 0, &r);
    expect_problem(&r, 404);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv/a%7Db", NULL, NULL), 404);
}
END_TEST

START_TEST(test_store_delete)
{
    char path[256];
    struct ekv_test_resp r = {0};

    new_store("del");
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
    ck_assert_int_eq(put("k", "v", NULL), 200);
    apic_req(port, "DELETE", path, NULL, NULL, 0, &r);
    expect_problem(&r, 409);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), NULL, NULL), 204);
    apic_req(port, "DELETE", path, NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.body_len, 0);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 404);
    /* its keys are unreachable and the name is free */
    ck_assert_int_eq(put("k", "v", NULL), 404);
    new_store("del");
}
END_TEST

START_TEST(test_store_limit)
{
    struct ekv_test_resp r = {0};

    new_store("one");
    new_store("two");
    apic_req(port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"three\"}", 16, &r);
    expect_problem(&r, 400);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", "/resources/stores/kv/", NULL, NULL), 404);
    {
        char path[256];
        snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
        ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 204);
    }
    new_store("three");
}
END_TEST

/* ---------------------------------------------------------------- items */

START_TEST(test_item_put_get_head)
{
    struct ekv_test_resp r = {0};
    char etag[64];
    const char *g;

    new_store("items");
    apic_req(port, "PUT", kp("k1"), "metadata: {\"a\":1}\r\n", "hello", 5, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ekv_test_resp_free(&r);

    apic_req(port, "GET", kp("k1"), NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert(memcmp(r.body, "hello", 5) == 0);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Type"), "application/octet-stream");
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Length"), "5");
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "{\"a\":1}");
    ck_assert_str_eq(ekv_test_resp_header(&r, "Age"), "0");
    g = ekv_test_resp_header(&r, "Generation");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_gt(atoll(g), 0);
    snprintf(etag, sizeof(etag), "\"%s\"", g);
    ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), etag);
    ck_assert_ptr_nonnull(strstr(ekv_test_resp_header(&r, "Last-Modified"), " GMT"));
    ck_assert_uint_eq(strlen(ekv_test_resp_header(&r, "Last-Modified")), 29);
    ekv_test_resp_free(&r);

    /* HEAD: the same headers, no body */
    apic_req(port, "HEAD", kp("k1"), NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Length"), "5");
    ck_assert_str_eq(ekv_test_resp_header(&r, "ETag"), etag);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "{\"a\":1}");
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_req(port, "HEAD", kp("nope"), NULL, NULL, 0, &r), 404);
    ekv_test_resp_free(&r);

    /* an empty value */
    ck_assert_int_eq(put("empty", "", NULL), 200);
    expect_get("empty", 200, "");
    /* binary value with NULs */
    apic_req(port, "PUT", kp("bin"), NULL, "a\0b\xff", 4, &r);
    ck_assert_int_eq(r.status, 200);
    ekv_test_resp_free(&r);
    apic_req(port, "GET", kp("bin"), NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.body_len, 4);
    ck_assert(memcmp(r.body, "a\0b\xff", 4) == 0);
    ekv_test_resp_free(&r);

    /* missing key, missing store: each 404 says which (twice: the second answer is cached) */
    for (int i = 0; i < 2; i++) {
        apic_req(port, "GET", kp("missing"), NULL, NULL, 0, &r);
        expect_problem(&r, 404);
        ck_assert_ptr_nonnull(memmem(r.body, r.body_len, "key not found", 13));
        ekv_test_resp_free(&r);
        apic_req(port, "GET", "/resources/stores/kv/zzzzzzzzzzzzzzzzzzzzzz/keys/k", NULL, NULL, 0,
                 &r);
        expect_problem(&r, 404);
        ck_assert_ptr_nonnull(memmem(r.body, r.body_len, "store not found", 15));
        ekv_test_resp_free(&r);
    }
    ck_assert_int_eq(
        apic_status(port, "PUT", "/resources/stores/kv/zzzzzzzzzzzzzzzzzzzzzz/keys/k", NULL, "v"),
        404);
    ck_assert_int_eq(apic_status(port, "DELETE",
                                 "/resources/stores/kv/zzzzzzzzzzzzzzzzzzzzzz/keys/k", NULL, NULL),
                     404);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv/zz%7D/keys/k", NULL, NULL),
                     404);
}
END_TEST

START_TEST(test_item_metadata)
{
    struct ekv_test_resp r = {0};
    char hdr[2100];
    int n;

    new_store("meta");
    ck_assert_int_eq(put("k", "v1", "Metadata: m1\r\n"), 200);
    apic_req(port, "GET", kp("k"), NULL, NULL, 0, &r);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "m1");
    ekv_test_resp_free(&r);
    /* a write without metadata clears it (the header is still sent, empty) */
    ck_assert_int_eq(put("k", "v2", NULL), 200);
    apic_req(port, "GET", kp("k"), NULL, NULL, 0, &r);
    ck_assert_uint_eq(ekv_test_resp_header_count(&r, "Metadata"), 1);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "");
    ekv_test_resp_free(&r);
    /* 2000 bytes: fine; 2001: 400 and nothing written */
    n = snprintf(hdr, sizeof(hdr), "metadata: ");
    memset(hdr + n, 'm', 2000);
    strcpy(hdr + n + 2000, "\r\n");
    ck_assert_int_eq(put("k", "v3", hdr), 200);
    apic_req(port, "GET", kp("k"), NULL, NULL, 0, &r);
    ck_assert_uint_eq(strlen(ekv_test_resp_header(&r, "Metadata")), 2000);
    ekv_test_resp_free(&r);
    memset(hdr + n, 'm', 2001);
    strcpy(hdr + n + 2001, "\r\n");
    apic_req(port, "PUT", kp("k"), hdr, "v4", 2, &r);
    expect_problem(&r, 400);
    ekv_test_resp_free(&r);
    expect_get("k", 200, "v3");
}
END_TEST

START_TEST(test_item_ttl)
{
    char *keys;

    new_store("ttl");
    ck_assert_int_eq(put("short", "s", "time_to_live_sec: 1\r\n"), 200);
    ck_assert_int_eq(put("long", "l", "Time_To_Live_Sec: 3600\r\n"), 200);
    ck_assert_int_eq(put("forever", "f", NULL), 200);
    expect_get("short", 200, "s");
    keys = list_keys(NULL, NULL);
    ck_assert_str_eq(keys, "forever,long,short");
    free(keys);
    /* the TTL is the item's Redis TTL */
    {
        char k[128], *t;
        snprintf(k, sizeof(k), "edgekv:i:{%s}:long", TAG("long"));
        t = ekv_test_redis_cmd(redis, "TTL %s", k);
        ck_assert_int_gt(atoi(t), 3500);
        free(t);
        snprintf(k, sizeof(k), "edgekv:i:{%s}:forever", TAG("forever"));
        t = ekv_test_redis_cmd(redis, "TTL %s", k);
        ck_assert_str_eq(t, "-1");
        free(t);
    }
    /* a rewrite without a TTL removes it */
    ck_assert_int_eq(put("long", "l2", NULL), 200);
    {
        char k[128], *t;
        snprintf(k, sizeof(k), "edgekv:i:{%s}:long", TAG("long"));
        t = ekv_test_redis_cmd(redis, "TTL %s", k);
        ck_assert_str_eq(t, "-1");
        free(t);
    }
    /* bad values: 400, nothing written */
    ck_assert_int_eq(put("bad", "x", "time_to_live_sec: 0\r\n"), 400);
    ck_assert_int_eq(put("bad", "x", "time_to_live_sec: -1\r\n"), 400);
    ck_assert_int_eq(put("bad", "x", "time_to_live_sec: 1.5\r\n"), 400);
    ck_assert_int_eq(put("bad", "x", "time_to_live_sec: soon\r\n"), 400);
    expect_get("bad", 404, NULL);

    ekv_test_sleep_ms(1500);
    expect_get("short", 404, NULL);
    keys = list_keys(NULL, NULL);
    ck_assert_str_eq(keys, "forever,long");
    free(keys);
    keys = list_keys("prefix=s", NULL);
    ck_assert_str_eq(keys, "");
    free(keys);
}
END_TEST

START_TEST(test_item_if_none_match)
{
    struct ekv_test_resp r = {0};
    char hdr[128];
    uint64_t g;

    new_store("inm");
    ck_assert_int_eq(put("k", "v", NULL), 200);
    g = generation_of("k");
    snprintf(hdr, sizeof(hdr), "If-None-Match: \"%llu\"\r\n", (unsigned long long)g);
    apic_req(port, "GET", kp("k"), hdr, NULL, 0, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "ETag"));
    ekv_test_resp_free(&r);
    apic_req(port, "GET", kp("k"), "If-None-Match: \"999999\"\r\n", NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ekv_test_resp_free(&r);
    /* after a write the old ETag no longer matches */
    ck_assert_int_eq(put("k", "v2", NULL), 200);
    apic_req(port, "GET", kp("k"), hdr, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 2);
    ekv_test_resp_free(&r);
}
END_TEST

START_TEST(test_item_generation_match)
{
    struct ekv_test_resp r = {0};
    char hdr[128];
    uint64_t g1, g2;

    new_store("igm");
    ck_assert_int_eq(put("k", "v1", NULL), 200);
    g1 = generation_of("k");
    snprintf(hdr, sizeof(hdr), "if-generation-match: %llu\r\n", (unsigned long long)g1);
    ck_assert_int_eq(put("k", "v2", hdr), 200);
    g2 = generation_of("k");
    ck_assert_uint_gt(g2, g1);
    /* the old generation no longer matches: 412 with an empty body */
    apic_req(port, "PUT", kp("k"), hdr, "v3", 2, &r);
    ck_assert_int_eq(r.status, 412);
    ck_assert_uint_eq(r.body_len, 0);
    ekv_test_resp_free(&r);
    expect_get("k", 200, "v2");
    /* a missing key: 0 matches, anything else does not */
    ck_assert_int_eq(put("new", "n", "if-generation-match: 5\r\n"), 412);
    expect_get("new", 404, NULL);
    ck_assert_int_eq(put("new", "n", "if-generation-match: 0\r\n"), 200);
    expect_get("new", 200, "n");
    ck_assert_int_eq(put("new", "n", "if-generation-match: 0\r\n"), 412);
    /* at or above 2^53 nothing can match */
    ck_assert_int_eq(put("k", "x", "if-generation-match: 9007199254740992\r\n"), 412);
    ck_assert_int_eq(put("k", "x", "if-generation-match: 18446744073709551615\r\n"), 412);
    /* not a u64: 400 */
    ck_assert_int_eq(put("k", "x", "if-generation-match: abc\r\n"), 400);
    ck_assert_int_eq(put("k", "x", "if-generation-match: -1\r\n"), 400);
    ck_assert_int_eq(put("k", "x", "if-generation-match: 18446744073709551616\r\n"), 400);
    expect_get("k", 200, "v2");
}
END_TEST

START_TEST(test_item_generations_grow)
{
    uint64_t g1, g2, g3;

    new_store("gens");
    ck_assert_int_eq(put("k", "a", NULL), 200);
    g1 = generation_of("k");
    ck_assert_int_eq(put("other", "o", NULL), 200);
    ck_assert_int_eq(put("k", "b", NULL), 200);
    g2 = generation_of("k");
    ck_assert_uint_gt(g2, g1);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), NULL, NULL), 204);
    ck_assert_int_eq(put("k", "c", NULL), 200);
    g3 = generation_of("k");
    ck_assert_uint_gt(g3, g2); /* also across delete and re-create */
}
END_TEST

START_TEST(test_item_add)
{
    new_store("add");
    ck_assert_int_eq(put("k?add=true", "first", NULL), 200);
    ck_assert_int_eq(put("k?add=true", "second", NULL), 412);
    expect_get("k", 200, "first");
    ck_assert_int_eq(put("k?add=false", "third", NULL), 200);
    expect_get("k", 200, "third");
    ck_assert_int_eq(put("k?add=true&append=true", "x", NULL), 400);
    /* background_fetch is accepted */
    ck_assert_int_eq(put("k?background_fetch=true", "bf", NULL), 200);
    expect_get("k", 200, "bf");
}
END_TEST

START_TEST(test_item_append_prepend)
{
    struct ekv_test_resp r = {0};

    new_store("app");
    ck_assert_int_eq(put("a?append=true", "mid", "metadata: m\r\n"), 200); /* creates */
    expect_get("a", 200, "mid");
    ck_assert_int_eq(put("a?append=true", "-end", NULL), 200);
    expect_get("a", 200, "mid-end");
    ck_assert_int_eq(put("a?prepend=true", "start-", NULL), 200);
    expect_get("a", 200, "start-mid-end");
    /* the write sets the whole item: metadata omitted = cleared */
    apic_req(port, "GET", kp("a"), NULL, NULL, 0, &r);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "");
    ekv_test_resp_free(&r);
    ck_assert_int_eq(put("p?prepend=true", "only", NULL), 200);
    expect_get("p", 200, "only");
    ck_assert_int_eq(put("p?append=true&prepend=true", "x", NULL), 400);
    ck_assert_int_eq(put("p?append=true", "x", "if-generation-match: 1\r\n"), 412);
}
END_TEST

START_TEST(test_item_append_too_large)
{
    struct ekv_test_resp r = {0};
    char *big = malloc(40 * 1024 + 1);

    /* value-max-bytes 64kb in this TCase */
    memset(big, 'x', 40 * 1024);
    big[40 * 1024] = '\0';
    new_store("big");
    ck_assert_int_eq(put("k", big, NULL), 200);
    apic_req(port, "PUT", kp("k?append=true"), NULL, big, 40 * 1024, &r);
    expect_problem(&r, 413);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(put("k?prepend=true", big, NULL), 413);
    ck_assert_int_eq(put("k?append=true", "small", NULL), 200);
    {
        struct ekv_test_resp g = {0};
        apic_req(port, "GET", kp("k"), NULL, NULL, 0, &g);
        ck_assert_uint_eq(g.body_len, 40 * 1024 + 5);
        ekv_test_resp_free(&g);
    }
    /* a body over the limit: 413 before the origin */
    {
        char *huge = malloc(64 * 1024 + 1);
        memset(huge, 'y', 64 * 1024 + 1);
        ck_assert_int_eq(apic_req(port, "PUT", kp("h"), NULL, huge, 64 * 1024 + 1, &r), 413);
        ekv_test_resp_free(&r);
        ck_assert_int_eq(apic_req(port, "PUT", kp("h"), NULL, huge, 64 * 1024, &r), 200);
        ekv_test_resp_free(&r);
        free(huge);
    }
    free(big);
}
END_TEST

START_TEST(test_item_delete)
{
    struct ekv_test_resp r = {0};
    char hdr[128];
    uint64_t g;

    new_store("del");
    ck_assert_int_eq(put("k", "v", NULL), 200);
    apic_req(port, "DELETE", kp("k"), NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_ptr_null(ekv_test_resp_header(&r, "Content-Length"));
    ekv_test_resp_free(&r);
    expect_get("k", 404, NULL);
    apic_req(port, "DELETE", kp("k"), NULL, NULL, 0, &r);
    expect_problem(&r, 404);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k?force=true"), NULL, NULL), 204);

    /* if-generation-match on delete */
    ck_assert_int_eq(put("k", "v", NULL), 200);
    g = generation_of("k");
    snprintf(hdr, sizeof(hdr), "if-generation-match: %llu\r\n", (unsigned long long)g + 1);
    apic_req(port, "DELETE", kp("k"), hdr, NULL, 0, &r);
    ck_assert_int_eq(r.status, 412);
    ck_assert_uint_eq(r.body_len, 0);
    ekv_test_resp_free(&r);
    expect_get("k", 200, "v");
    snprintf(hdr, sizeof(hdr), "if-generation-match: %llu\r\n", (unsigned long long)g);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), hdr, NULL), 204);
    expect_get("k", 404, NULL);
    ck_assert_int_eq(
        apic_status(port, "DELETE", kp("k?force=true"), "if-generation-match: 3\r\n", NULL), 412);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), "if-generation-match: x\r\n", NULL), 400);
    /* deleted keys are never listed */
    {
        char *keys = list_keys(NULL, NULL);
        ck_assert_str_eq(keys, "");
        free(keys);
    }
}
END_TEST

START_TEST(test_item_encoded_keys)
{
    char *keys;

    new_store("enc");
    ck_assert_int_eq(put("dir%2Fk%202", "v1", NULL), 200);
    expect_get("dir%2Fk%202", 200, "v1");
    expect_get("dir/k%202", 200, "v1");                   /* a raw '/' is part of the key too */
    ck_assert_int_eq(put("a%252Fb", "v2", NULL), 200);    /* decoded once: key "a%2Fb" */
    ck_assert_int_eq(put(".%2Fa", "v3", NULL), 200);      /* "./a" is an ordinary key */
    ck_assert_int_eq(put("a%2F..%2Fb", "v4", NULL), 200); /* "a/../b" too */
    ck_assert_int_eq(put("caf%C3%A9", "v5", NULL), 200);
    ck_assert_int_eq(put("...", "v6", NULL), 200);
    keys = list_keys(NULL, NULL);
    ck_assert_str_eq(keys, "...,./a,a%2Fb,a/../b,caf\xc3\xa9,dir/k 2");
    free(keys);
    expect_get("a%252Fb", 200, "v2");
    expect_get("a%2Fb", 404, NULL);
}
END_TEST

START_TEST(test_item_invalid_keys)
{
    static const char *const bad[] = {
        ".",
        "..",
        "%2E",
        "%2E%2E",
        "a%0Db",
        "a%0Ab",
        "%FF",
        "a%C3",
        "%C0%AF",
        "%zz",
        "a%2",
        ".well-known%2Facme-challenge%2Ftoken",
        ".well-known/acme-challenge/x",
    };
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE"};
    char *long_key = malloc(1100);
    char path[2048];

    new_store("inv");
    memset(long_key, 'k', 1025);
    long_key[1025] = '\0';
    for (size_t m = 0; m < ARRAY_LEN(methods); m++) {
        for (size_t i = 0; i <= ARRAY_LEN(bad); i++) {
            const char *k = i < ARRAY_LEN(bad) ? bad[i] : long_key;
            struct ekv_test_resp r = {0};

            apic_req(port, methods[m], kp(k), NULL, strcmp(methods[m], "PUT") == 0 ? "v" : NULL, 1,
                     &r);
            ck_assert_msg(r.status == 400, "%s %s: %d", methods[m], k, r.status);
            ekv_test_resp_free(&r);
            /* the edge path applies the same rules */
            snprintf(path, sizeof(path), "/kv/inv/%s", k);
            apic_req(port, methods[m], path, NULL, strcmp(methods[m], "PUT") == 0 ? "v" : NULL, 1,
                     &r);
            ck_assert_msg(r.status == 400, "%s %s: %d", methods[m], path, r.status);
            ekv_test_resp_free(&r);
        }
    }
    /* an invalid key is 400 even when the store does not exist (checked first) */
    ck_assert_int_eq(
        apic_status(port, "GET", "/resources/stores/kv/zzzzzzzzzzzzzzzzzzzzzz/keys/..", NULL, NULL),
        400);
    /* 1024 bytes is fine */
    long_key[1024] = '\0';
    ck_assert_int_eq(put(long_key, "v", NULL), 200);
    expect_get(long_key, 200, "v");
    /* nothing else was written */
    {
        char *keys = list_keys(NULL, NULL);
        ck_assert_str_eq(keys, long_key);
        free(keys);
    }
    free(long_key);
}
END_TEST

START_TEST(test_item_layout)
{
    char k[256], *v;

    new_store("layout");
    ck_assert_int_eq(put("lay/out", "value-1", "metadata: m1\r\ntime_to_live_sec: 100\r\n"), 200);
    snprintf(k, sizeof(k), "edgekv:i:{%s}:lay/out", TAG("lay/out"));
    v = ekv_test_redis_cmd(redis, "HMGET %s v m g", k);
    ck_assert_str_eq(v, "value-1\nm1\n1");
    free(v);
    v = ekv_test_redis_cmd(redis, "HGET %s t", k);
    ck_assert_uint_ge(strtoull(v, NULL, 10), 1600000000000ull); /* ms since the epoch */
    free(v);
    v = ekv_test_redis_cmd(redis, "HLEN %s", k);
    ck_assert_str_eq(v, "4");
    free(v);
    v = ekv_test_redis_cmd(redis, "PTTL %s", k);
    ck_assert_int_gt(atoi(v), 90000);
    free(v);
    snprintf(k, sizeof(k), "edgekv:x:{%s}", TAG("lay/out"));
    v = ekv_test_redis_cmd(redis, "ZRANGE %s 0 -1 WITHSCORES", k);
    ck_assert_str_eq(v, "lay/out\n0");
    free(v);
    snprintf(k, sizeof(k), "edgekv:g:{%s}", TAG("lay/out"));
    v = ekv_test_redis_cmd(redis, "GET %s", k);
    ck_assert_str_eq(v, "1");
    free(v);
    /* the store's buckets: recorded with it, each with its counter; nothing under {<sid>} */
    snprintf(k, sizeof(k), "edgekv:s:{registry}:%s", sid);
    v = ekv_test_redis_cmd(redis, "HGET %s shards", k);
    ck_assert_str_eq(v, "16");
    free(v);
    snprintf(k, sizeof(k), "edgekv:g:{%s:*}", sid);
    v = ekv_test_redis_cmd(redis, "KEYS %s", k);
    ck_assert_uint_eq(count_lines(v), EKV_TEST_SHARDS);
    free(v);
    snprintf(k, sizeof(k), "edgekv:*{%s}*", sid);
    v = ekv_test_redis_cmd(redis, "KEYS %s", k);
    ck_assert_str_eq(v, "");
    free(v);
    v = ekv_test_redis_cmd(redis, "HGET edgekv:stores:{registry} layout");
    ck_assert_str_eq(v, sid);
    free(v);
    snprintf(k, sizeof(k), "edgekv:s:{registry}:%s", sid);
    v = ekv_test_redis_cmd(redis, "HGET %s name", k);
    ck_assert_str_eq(v, "layout");
    free(v);
    /* a write without metadata leaves no m field */
    ck_assert_int_eq(put("lay/out", "value-2", NULL), 200);
    snprintf(k, sizeof(k), "edgekv:i:{%s}:lay/out", TAG("lay/out"));
    v = ekv_test_redis_cmd(redis, "HMGET %s v m g", k);
    ck_assert_str_eq(v, "value-2\n(nil)\n2");
    free(v);
    /* a foreign writer that follows the documented layout is read back */
    v = ekv_test_redis_cmd(redis, "HSET %s v foreign g 77 t 0", k);
    free(v);
    ck_assert_uint_eq(generation_of("lay/out"), 77);
}
END_TEST

START_TEST(test_item_origin_error)
{
    struct ekv_test_resp r = {0};
    char k[128];

    /* a foreign writer broke the layout (a string where a hash belongs): Redis answers the
     * script with an error, edgekv with 502, and keeps serving */
    new_store("broken");
    snprintf(k, sizeof(k), "edgekv:i:{%s}:k", TAG("k"));
    free(ekv_test_redis_cmd(redis, "SET %s not-a-hash", k));
    apic_req(port, "GET", kp("k"), NULL, NULL, 0, &r);
    expect_problem(&r, 502);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(put("k", "v", NULL), 502);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), NULL, NULL), 502);
    free(ekv_test_redis_cmd(redis, "DEL %s", k));
    ck_assert_int_eq(put("k", "v", NULL), 200);
    expect_get("k", 200, "v");
    ck_assert(ekv_test_proc_wait_log(ek, "origin error reply", 2000));
}
END_TEST

/* Data no edgekv wrote, read back in a reply of the right shape: 502 with a clear detail, never
 * an answer made up around it (a last-modified that is no number used to be served as 1970). */
START_TEST(test_item_malformed)
{
    struct ekv_test_resp r = {0};
    char k[128];
    json_t *j;

    new_store("malformed");
    snprintf(k, sizeof(k), "edgekv:i:{%s}:bad-t", TAG("bad-t"));
    free(ekv_test_redis_cmd(redis, "HSET %s v x g 3 t yesterday", k));
    apic_req(port, "GET", kp("bad-t"), NULL, NULL, 0, &r);
    expect_problem(&r, 502);
    j = apic_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                     "the origin holds a malformed item");
    json_decref(j);
    ekv_test_resp_free(&r);
    snprintf(k, sizeof(k), "edgekv:i:{%s}:bad-g", TAG("bad-g"));
    free(ekv_test_redis_cmd(redis, "HSET %s v x g three", k));
    apic_req(port, "GET", kp("bad-g"), NULL, NULL, 0, &r);
    expect_problem(&r, 502);
    ekv_test_resp_free(&r);
    /* nothing of it was cached: once the item is whole, it is served */
    snprintf(k, sizeof(k), "edgekv:i:{%s}:bad-t", TAG("bad-t"));
    free(ekv_test_redis_cmd(redis, "HSET %s t 1700000000000", k));
    expect_get("bad-t", 200, "x");
}
END_TEST

/* Clients that go away before their answer: every request is still answered (to nobody) and
 * freed; the sanitizer build's leak check at shutdown covers it. */
START_TEST(test_item_client_gone)
{
    char req[512];

    new_store("gone");
    ck_assert_int_eq(put("k", "v", NULL), 200);
    for (int i = 0; i < 20; i++) {
        struct ekv_test_conn *c = ekv_test_connect(port);
        int n = snprintf(req, sizeof(req),
                         i % 2 == 0 ? "GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                                    : "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
                         kp("k"));
        ck_assert_int_eq(ekv_test_send(c, req, (size_t)n), 0);
        ekv_test_close(c);
    }
    expect_get("k", 200, NULL);
}
END_TEST

/* Ten clients on their own connections send the same conditional write at once: exactly one
 * wins. */
START_TEST(test_item_concurrent_writers)
{
    enum { N = 10 };
    struct ekv_test_conn *c[N];
    char req[512];
    uint64_t g;
    int ok = 0, failed = 0;

    new_store("race");
    ck_assert_int_eq(put("k", "v0", NULL), 200);
    g = generation_of("k");
    for (int i = 0; i < N; i++)
        c[i] = ekv_test_connect(port);
    for (int round = 0; round < 3; round++) {
        ok = failed = 0;
        for (int i = 0; i < N; i++) {
            int n = snprintf(req, sizeof(req),
                             "PUT %s HTTP/1.1\r\nHost: t\r\nif-generation-match: %llu\r\n"
                             "Content-Length: 2\r\n\r\nw%d",
                             kp("k"), (unsigned long long)g, i);
            ck_assert_int_eq(ekv_test_send(c[i], req, (size_t)n), 0);
        }
        for (int i = 0; i < N; i++) {
            struct ekv_test_resp r = {0};
            ck_assert_int_eq(ekv_test_read_final(c[i], &r, 0), EKV_TEST_OK);
            if (r.status == 200)
                ok++;
            else if (r.status == 412)
                failed++;
            ekv_test_resp_free(&r);
        }
        ck_assert_int_eq(ok, 1);
        ck_assert_int_eq(failed, N - 1);
        g = generation_of("k");
    }
    for (int i = 0; i < N; i++)
        ekv_test_close(c[i]);
}
END_TEST

START_TEST(test_item_25mib)
{
    size_t len = 25 * MIB;
    char *v = malloc(len + 1);
    struct ekv_test_resp r = {0};
    char head[256];
    int n;

    for (size_t i = 0; i < len; i++)
        v[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    new_store("huge");
    ck_assert_int_eq(apic_req(port, "PUT", kp("big"), NULL, v, len, &r), 200);
    ekv_test_resp_free(&r);
    apic_req(port, "GET", kp("big"), NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, len);
    ck_assert(memcmp(r.body, v, len) == 0);
    ekv_test_resp_free(&r);
    /* one byte more: 413, answered from the headers */
    n = snprintf(head, sizeof(head), "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                 kp("big2"), len + 1);
    ck_assert_int_eq(apic_raw(port, head, (size_t)n, 0, &r), 413);
    ekv_test_resp_free(&r);
    expect_get("big2", 404, NULL);
    free(v);
}
END_TEST

/* ---------------------------------------------------------------- key listing */

START_TEST(test_list_keys)
{
    static const char *const raw[] = {"b", "a", "B", "caf%C3%A9", "a%2Fb", "ab", "a%20z", "z"};
    char *keys, *next;
    json_t *j, *meta;
    char path[512];

    new_store("list");
    for (size_t i = 0; i < ARRAY_LEN(raw); i++)
        ck_assert_int_eq(put(raw[i], "v", NULL), 200);
    /* bytewise order */
    keys = list_keys(NULL, NULL);
    ck_assert_str_eq(keys, "B,a,a z,a/b,ab,b,caf\xc3\xa9,z");
    free(keys);
    keys = list_keys("prefix=a", NULL);
    ck_assert_str_eq(keys, "a,a z,a/b,ab");
    free(keys);
    keys = list_keys("prefix=a%2F", NULL);
    ck_assert_str_eq(keys, "a/b");
    free(keys);
    keys = list_keys("prefix=nothing", NULL);
    ck_assert_str_eq(keys, "");
    free(keys);

    /* meta: limit, prefix and consistency echoed */
    snprintf(path, sizeof(path),
             "/resources/stores/kv/%s/keys?prefix=a&limit=10&consistency=strong", sid);
    j = apic_get_json(port, path, NULL, 200);
    meta = json_object_get(j, "meta");
    ck_assert_int_eq(json_integer_value(json_object_get(meta, "limit")), 10);
    ck_assert_str_eq(json_string_value(json_object_get(meta, "prefix")), "a");
    ck_assert_str_eq(json_string_value(json_object_get(meta, "consistency")), "strong");
    ck_assert_ptr_null(json_object_get(meta, "next_cursor"));
    json_decref(j);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys", sid);
    j = apic_get_json(port, path, NULL, 200);
    meta = json_object_get(j, "meta");
    ck_assert_int_eq(json_integer_value(json_object_get(meta, "limit")), 1000);
    ck_assert_ptr_null(json_object_get(meta, "consistency"));
    ck_assert_ptr_null(json_object_get(meta, "prefix"));
    json_decref(j);

    /* paging: limit 3 until next_cursor is absent */
    {
        char all[512] = "", q[256];
        int pages = 0;
        next = NULL;
        do {
            if (next != NULL)
                snprintf(q, sizeof(q), "limit=3&cursor=%s", next);
            else
                snprintf(q, sizeof(q), "limit=3");
            free(next);
            keys = list_keys(q, &next);
            if (all[0] != '\0' && keys[0] != '\0')
                strcat(all, ",");
            strcat(all, keys);
            free(keys);
            pages++;
        } while (next != NULL);
        ck_assert_str_eq(all, "B,a,a z,a/b,ab,b,caf\xc3\xa9,z");
        ck_assert_int_eq(pages, 3);
        /* with a prefix */
        all[0] = '\0';
        next = NULL;
        do {
            if (next != NULL)
                snprintf(q, sizeof(q), "prefix=a&limit=1&cursor=%s", next);
            else
                snprintf(q, sizeof(q), "prefix=a&limit=1");
            free(next);
            keys = list_keys(q, &next);
            strcat(all, keys);
            strcat(all, ";");
            free(keys);
        } while (next != NULL);
        ck_assert_str_eq(all, "a;a z;a/b;ab;");
    }

    /* errors */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?limit=1001", sid);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 400);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?limit=0", sid);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 400);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?cursor=!!!", sid);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 400);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?cursor=Zg%%3D", sid);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 400);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?consistency=maybe", sid);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 400);
    ck_assert_int_eq(
        apic_status(port, "GET", "/resources/stores/kv/zzzzzzzzzzzzzzzzzzzzzz/keys", NULL, NULL),
        404);
}
END_TEST

START_TEST(test_list_keys_pages_1000)
{
    char *next = NULL, *keys, q[256], line[128];
    struct ekv_test_resp r = {0};
    char *batch = malloc(1100 * 64);
    size_t blen = 0;
    int total = 0;

    new_store("many");
    for (int i = 0; i < 1005; i++)
        blen += (size_t)snprintf(batch + blen, 64, "{\"key\":\"k%04d\",\"value\":\"dg==\"}\n", i);
    snprintf(line, sizeof(line), "/resources/stores/kv/%s/batch", sid);
    ck_assert_int_eq(apic_req(port, "PUT", line, NULL, batch, blen, &r), 200);
    ekv_test_resp_free(&r);
    keys = list_keys(NULL, &next); /* default limit 1000 */
    ck_assert_ptr_nonnull(next);
    for (char *p = keys; *p != '\0'; p++)
        total += *p == ',';
    ck_assert_int_eq(total + 1, 1000);
    free(keys);
    snprintf(q, sizeof(q), "cursor=%s", next);
    free(next);
    keys = list_keys(q, &next);
    ck_assert_ptr_null(next);
    ck_assert_str_eq(keys, "k1000,k1001,k1002,k1003,k1004");
    free(keys);
    free(batch);
}
END_TEST

/* ---------------------------------------------------------------- batch */

static const char *batch_path(void)
{
    static char b[256];

    snprintf(b, sizeof(b), "/resources/stores/kv/%s/batch", sid);
    return b;
}

/* A batch's bounds (this TCase: value-max-bytes 64kb, batch-max-bytes 256kb): a line whose
 * value is over value-max-bytes is refused with 413 and the others applied; a body over
 * batch-max-bytes is refused with 413 as a whole, before any line is applied, announced
 * (Content-Length) or chunked. */
START_TEST(test_batch_bounds)
{
    size_t vlen = 64 * 1024 + 1, b64 = 4 * ((vlen + 2) / 3), len = 0;
    char *body = malloc(512 * 1024), *v = malloc(vlen);
    struct ekv_test_resp r = {0};
    json_t *j, *errors;
    char head[256];
    int n;

    ck_assert(body != NULL && v != NULL);
    new_store("bounds");
    memset(v, 'x', vlen);
    len += (size_t)sprintf(body, "{\"key\":\"small\",\"value\":\"MQ==\"}\n{\"key\":\"big\",\"value\":\"");
    for (size_t i = 0; i < b64; i++) /* "eHh4" is "xxx" */
        body[len++] = "eHh4"[i % 4];
    len += (size_t)sprintf(body + len, "\"}\n{\"key\":\"after\",\"value\":\"Mg==\"}\n");
    apic_req(port, "PUT", batch_path(), NULL, body, len, &r);
    ck_assert_int_eq(r.status, 400);
    j = apic_json(&r);
    errors = json_object_get(j, "errors");
    ck_assert_uint_eq(json_array_size(errors), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "key")), "big");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "code")), "413");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(errors, 0), "index")), 1);
    json_decref(j);
    ekv_test_resp_free(&r);
    expect_get("small", 200, "1");
    expect_get("after", 200, "2");
    expect_get("big", 404, NULL);

    /* 300 KiB of valid lines: over batch-max-bytes, refused whole */
    len = 0;
    for (int i = 0; len < 300 * 1024; i++)
        len += (size_t)sprintf(body + len, "{\"key\":\"w%d\",\"value\":\"%s\"}\n", i,
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    apic_req(port, "PUT", batch_path(), NULL, body, len, &r);
    expect_problem(&r, 413);
    ekv_test_resp_free(&r);
    expect_get("w0", 404, NULL);
    /* the same chunked: refused once the limit is passed */
    n = snprintf(head, sizeof(head),
                 "PUT %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
                 batch_path(), len);
    {
        char *req = malloc((size_t)n + len + 16);
        memcpy(req, head, (size_t)n);
        memcpy(req + n, body, len);
        memcpy(req + (size_t)n + len, "\r\n0\r\n\r\n", 7);
        ck_assert_int_eq(apic_raw(port, req, (size_t)n + len + 7, 0, &r), 413);
        free(req);
    }
    ekv_test_resp_free(&r);
    expect_get("w0", 404, NULL);
    free(body);
    free(v);
}
END_TEST

START_TEST(test_batch_valid)
{
    static const char body[] =
        "{\"key\":\"b1\",\"value\":\"aGVsbG8=\"}\n"
        "{\"key\":\"dir/b2\",\"value\":\"d29ybGQ=\",\"metadata\":\"m2\",\"time_to_live_sec\":60}\n"
        "\n"
        "{\"key\":\"b3\",\"value\":\"\",\"background_fetch\":true}\n";
    struct ekv_test_resp r = {0};

    new_store("batch");
    apic_req(port, "PUT", batch_path(), "Content-Type: application/x-ndjson\r\n", body,
             sizeof(body) - 1, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, strlen("{\"type\":\"\",\"title\":\"success\",\"errors\":[]}"));
    ck_assert(memcmp(r.body, "{\"type\":\"\",\"title\":\"success\",\"errors\":[]}", r.body_len) ==
              0);
    ekv_test_resp_free(&r);
    expect_get("b1", 200, "hello");
    expect_get("dir%2Fb2", 200, "world");
    expect_get("b3", 200, "");
    apic_req(port, "GET", kp("dir%2Fb2"), NULL, NULL, 0, &r);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "m2");
    ekv_test_resp_free(&r);
    {
        char k[128], *t;
        snprintf(k, sizeof(k), "edgekv:i:{%s}:dir/b2", TAG("dir/b2"));
        t = ekv_test_redis_cmd(redis, "TTL %s", k);
        ck_assert_int_gt(atoi(t), 50);
        free(t);
    }
    /* an empty batch, and a missing store */
    ck_assert_int_eq(apic_status(port, "PUT", batch_path(), NULL, ""), 200);
    ck_assert_int_eq(apic_status(port, "PUT", "/resources/stores/kv/zzzzzzzzzzzzzzzzzzzzzz/batch",
                                 NULL, "{\"key\":\"a\",\"value\":\"\"}\n"),
                     404);
}
END_TEST

START_TEST(test_batch_mixed)
{
    static const char body[] =
        "{\"key\":\"ok1\",\"value\":\"MQ==\"}\n"                      /* 0 */
        "{\"key\":\".\",\"value\":\"MQ==\"}\n"                        /* 1 bad key */
        "{\"key\":\"b64\",\"value\":\"not base64!\"}\n"               /* 2 bad value */
        "{\"key\":\"ok2\",\"value\":\"Mg==\",\"metadata\":\"x\"}\r\n" /* 3 */
        "{\"key\":\"meta\",\"value\":\"\",\"metadata\":\"a\\nb\"}\n"  /* 4 bad metadata */
        "{\"key\":\"ttl\",\"value\":\"\",\"time_to_live_sec\":0}\n"   /* 5 bad ttl */
        "not json\n"                                                  /* 6 */
        "{\"key\":\"ok3\",\"value\":\"Mw==\"}";                       /* 7, no final newline */
    static const int bad[] = {1, 2, 4, 5, 6};
    struct ekv_test_resp r = {0};
    json_t *j, *errors;

    new_store("mixed");
    apic_req(port, "PUT", batch_path(), NULL, body, sizeof(body) - 1, &r);
    ck_assert_int_eq(r.status, 400);
    j = apic_json(&r);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "title")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "type")));
    errors = json_object_get(j, "errors");
    ck_assert_uint_eq(json_array_size(errors), ARRAY_LEN(bad));
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        json_t *e = json_array_get(errors, i);
        ck_assert_int_eq(json_integer_value(json_object_get(e, "index")), bad[i]);
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "400");
        ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "reason")));
        ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "key")));
    }
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "key")), ".");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errors, 1), "key")), "b64");
    json_decref(j);
    ekv_test_resp_free(&r);
    /* the valid lines were applied */
    expect_get("ok1", 200, "1");
    expect_get("ok2", 200, "2");
    expect_get("ok3", 200, "3");
    expect_get("b64", 404, NULL);
    expect_get("meta", 404, NULL);
    expect_get("ttl", 404, NULL);
}
END_TEST

START_TEST(test_batch_chunked)
{
    struct ekv_test_resp r = {0};
    char req[2048];
    const char *l1 = "{\"key\":\"c1\",\"value\":\"Y2h1bms=\"}\n";
    const char *l2 = "{\"key\":\"c2\",\"val";
    const char *l3 = "ue\":\"dHdv\"}\n";
    int n;

    new_store("chunked");
    n = snprintf(req, sizeof(req),
                 "PUT %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Type: application/x-ndjson\r\n\r\n"
                 "%zx\r\n%s\r\n%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n",
                 batch_path(), strlen(l1), l1, strlen(l2), l2, strlen(l3), l3);
    ck_assert_int_eq(apic_raw(port, req, (size_t)n, 0, &r), 200);
    ekv_test_resp_free(&r);
    expect_get("c1", 200, "chunk");
    expect_get("c2", 200, "two");
}
END_TEST

/* ---------------------------------------------------------------- edge path */

START_TEST(test_edge_path_by_store_name)
{
    struct ekv_test_resp r = {0};

    new_store("edge");
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/edge/a/b", "metadata: em\r\n", "v1"), 200);
    /* key "a/b" either way, the same item as the management path */
    apic_req(port, "GET", "/kv/edge/a%2Fb", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 2);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Metadata"), "em");
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Type"), "application/octet-stream");
    ck_assert_ptr_nonnull(ekv_test_resp_header(&r, "Generation"));
    ekv_test_resp_free(&r);
    expect_get("a%2Fb", 200, "v1");
    ck_assert_int_eq(apic_req(port, "HEAD", "/kv/edge/a/b", NULL, NULL, 0, &r), 200);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Length"), "2");
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/edge/a/b?append=true", NULL, "+"), 200);
    expect_get("a%2Fb", 200, "v1+");
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/edge/a/b", "if-generation-match: 1\r\n", "x"),
                     412);
    ck_assert_int_eq(apic_status(port, "DELETE", "/kv/edge/a/b", NULL, NULL), 204);
    ck_assert_int_eq(apic_status(port, "GET", "/kv/edge/a/b", NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "DELETE", "/kv/edge/a/b", NULL, NULL), 404);
    /* unknown names */
    apic_req(port, "GET", "/kv/nostore/k", NULL, NULL, 0, &r);
    expect_problem(&r, 404);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/nostore/k", NULL, "v"), 404);
    ck_assert_int_eq(apic_status(port, "GET", "/kv/bad%20name/k", NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "POST", "/kv/edge/k", NULL, "v"), 405);
}
END_TEST

/* ---------------------------------------------------------------- links (service svc1) */

static json_t *link_create(const char *service, const char *form, int status)
{
    char path[256];
    struct ekv_test_resp r = {0};
    json_t *j = NULL;

    snprintf(path, sizeof(path), "/service/%s/version/1/resource", service);
    apic_req(port, "POST", path, "Content-Type: application/x-www-form-urlencoded\r\n", form,
             strlen(form), &r);
    ck_assert_msg(r.status == status, "POST %s %s: %d: %.*s", path, form, r.status, (int)r.body_len,
                  r.body);
    if (status == 200)
        j = apic_json(&r);
    ekv_test_resp_free(&r);
    return j;
}

START_TEST(test_service_version)
{
    json_t *j = apic_get_json(port, "/service/svc1/version/3", NULL, 200);

    ck_assert_str_eq(json_string_value(json_object_get(j, "service_id")), "svc1");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "number")), 3);
    /* every version is an editable draft (API.md "Resource links") */
    ck_assert(json_is_false(json_object_get(j, "active")));
    ck_assert(json_is_false(json_object_get(j, "locked")));
    json_decref(j);
    j = apic_get_json(port, "/service/svc1/version", NULL, 200);
    ck_assert(json_is_array(j));
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "number")), 1);
    json_decref(j);
    ck_assert_int_eq(apic_status(port, "GET", "/service/svc1/version/x", NULL, NULL), 400);
}
END_TEST

START_TEST(test_links_crud)
{
    char form[256], path[256], lid[64];
    json_t *j;
    const char *created;

    new_store("linked");
    snprintf(form, sizeof(form), "name=my+link&resource_id=%s", sid);
    link_create("svc1", form, 400); /* "my link": not a valid name */
    snprintf(form, sizeof(form), "name=my-link&resource_id=%s", sid);
    j = link_create("svc1", form, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "my-link");
    ck_assert_str_eq(json_string_value(json_object_get(j, "resource_id")), sid);
    ck_assert_str_eq(json_string_value(json_object_get(j, "service_id")), "svc1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "resource_type")), "kv-store");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
    ck_assert(json_is_null(json_object_get(j, "deleted_at")));
    ck_assert(json_is_null(json_object_get(j, "href")));
    created = json_string_value(json_object_get(j, "created_at"));
    ck_assert_uint_eq(strlen(created), 20); /* 2023-01-19T11:28:14Z */
    ck_assert(created[10] == 'T' && created[19] == 'Z');
    snprintf(lid, sizeof(lid), "%s", json_string_value(json_object_get(j, "id")));
    ck_assert_uint_eq(strlen(lid), 22);
    json_decref(j);

    /* duplicate name, unknown store, missing resource_id */
    link_create("svc1", form, 409);
    link_create("svc1", "name=x&resource_id=zzzzzzzzzzzzzzzzzzzzzz", 400);
    link_create("svc1", "name=x", 400);
    /* no name: the store's */
    snprintf(form, sizeof(form), "resource_id=%s", sid);
    j = link_create("svc1", form, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "linked");
    json_decref(j);

    /* list and get */
    j = apic_get_json(port, "/service/svc1/version/1/resource", NULL, 200);
    ck_assert(json_is_array(j));
    ck_assert_uint_eq(json_array_size(j), 2);
    json_decref(j);
    j = apic_get_json(port, "/service/other/version/1/resource", NULL, 200);
    ck_assert_uint_eq(json_array_size(j), 0);
    json_decref(j);
    snprintf(path, sizeof(path), "/service/svc1/version/1/resource/%s", lid);
    j = apic_get_json(port, path, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "my-link");
    json_decref(j);

    /* update (rename), then delete */
    {
        struct ekv_test_resp r = {0};
        apic_req(port, "PUT", path, "Content-Type: application/x-www-form-urlencoded\r\n",
                 "name=renamed-link", 17, &r);
        ck_assert_int_eq(r.status, 200);
        j = apic_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "renamed-link");
        json_decref(j);
        ekv_test_resp_free(&r);
        ck_assert_int_eq(apic_status(port, "PATCH", path, NULL, "name=linked"), 409);
        apic_req(port, "DELETE", path, NULL, NULL, 0, &r);
        ck_assert_int_eq(r.status, 200);
        j = apic_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
        json_decref(j);
        ekv_test_resp_free(&r);
    }
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "PUT", path, NULL, "name=z"), 404);
}
END_TEST

START_TEST(test_edge_path_by_link)
{
    char form[256], other[32], target[32];
    json_t *j;

    /* stores "dup" and "target"; link "dup" -> target: the link wins */
    new_store("dup");
    ck_assert_int_eq(put("k", "from-dup-store", NULL), 200);
    apic_create_store(port, NULL, "target", target);
    snprintf(form, sizeof(form), "name=dup&resource_id=%s", target);
    json_decref(link_create("svc1", form, 200));
    snprintf(form, sizeof(form), "name=alias&resource_id=%s", target);
    json_decref(link_create("svc1", form, 200));
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/alias/k", NULL, "from-target"), 200);
    {
        struct ekv_test_resp r = {0};
        apic_req(port, "GET", "/kv/dup/k", NULL, NULL, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body_len, 11);
        ck_assert(memcmp(r.body, "from-target", 11) == 0);
        ekv_test_resp_free(&r);
    }
    /* a link of another service is not used */
    apic_create_store(port, NULL, "elsewhere", other);
    snprintf(form, sizeof(form), "name=foreign&resource_id=%s", other);
    json_decref(link_create("svc2", form, 200));
    ck_assert_int_eq(apic_status(port, "GET", "/kv/foreign/k", NULL, NULL), 404);
    /* a store name still works */
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/elsewhere/k", NULL, "e"), 200);
    ck_assert_int_eq(apic_status(port, "GET", "/kv/elsewhere/k", NULL, NULL), 200);
    /* deleting the link falls back to the store of that name */
    j = apic_get_json(port, "/service/svc1/version/1/resource", NULL, 200);
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        if (strcmp(json_string_value(json_object_get(l, "name")), "dup") == 0) {
            char path[256];
            snprintf(path, sizeof(path), "/service/svc1/version/1/resource/%s",
                     json_string_value(json_object_get(l, "id")));
            ck_assert_int_eq(apic_status(port, "DELETE", path, NULL, NULL), 200);
        }
    }
    json_decref(j);
    {
        struct ekv_test_resp r = {0};
        apic_req(port, "GET", "/kv/dup/k", NULL, NULL, 0, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body_len, 14);
        ekv_test_resp_free(&r);
    }
}
END_TEST

/* ---------------------------------------------------------------- auth */

#define ADMIN "Fastly-Key: tok-admin\r\n"
#define READER "Fastly-Key: tok-read\r\n"

START_TEST(test_auth_tokens)
{
    struct ekv_test_resp r = {0};
    char path[256];

    /* missing and unknown tokens: 401 */
    apic_req(port, "GET", "/resources/stores/kv", NULL, NULL, 0, &r);
    expect_problem(&r, 401);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv", "Fastly-Key: nope\r\n", NULL),
                     401);
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv",
                                 "Authorization: Bearer tok-admin\r\n", NULL),
                     401);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"x\"}"),
                     401);
    /* global: everything (both configured tokens) */
    apic_create_store(port, ADMIN, "authed", sid);
    ck_assert_int_eq(apic_status(port, "PUT", kp("k"), "fastly-key: tok-admin-2\r\n", "v"), 200);
    /* global:read: GET/HEAD and listing only */
    ck_assert_int_eq(apic_status(port, "GET", "/resources/stores/kv", READER, NULL), 200);
    ck_assert_int_eq(apic_status(port, "GET", kp("k"), READER, NULL), 200);
    ck_assert_int_eq(apic_status(port, "HEAD", kp("k"), READER, NULL), 200);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys", sid);
    ck_assert_int_eq(apic_status(port, "GET", path, READER, NULL), 200);
    apic_req(port, "PUT", kp("k"), READER, "w", 1, &r);
    expect_problem(&r, 403);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "DELETE", kp("k"), READER, NULL), 403);
    ck_assert_int_eq(apic_status(port, "POST", "/resources/stores/kv", READER, "{\"name\":\"y\"}"),
                     403);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/authed/k", READER, "w"), 403);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/batch", sid);
    ck_assert_int_eq(apic_status(port, "PUT", path, READER, ""), 403);
    expect_get("k", 401, NULL);
    /* operations endpoints never need a token */
    ck_assert_int_eq(apic_status(port, "GET", "/healthz", NULL, NULL), 200);
    ck_assert_int_eq(apic_status(port, "GET", "/readyz", NULL, NULL), 200);
    /* auth comes before the body: a refused upload is answered without reading it */
    {
        char head[256];
        int n =
            snprintf(head, sizeof(head),
                     "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n", kp("big"));
        ck_assert_int_eq(apic_raw(port, head, (size_t)n, 0, &r), 401);
        ekv_test_resp_free(&r);
    }
}
END_TEST

START_TEST(test_auth_edge_read_public)
{
    struct ekv_test_resp r = {0};

    apic_create_store(port, ADMIN, "public", sid);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/public/k", ADMIN, "pub"), 200);
    /* anonymous GET/HEAD on /kv/... only */
    apic_req(port, "GET", "/kv/public/k", NULL, NULL, 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 3);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "HEAD", "/kv/public/k", NULL, NULL), 200);
    ck_assert_int_eq(apic_status(port, "GET", "/kv/public/missing", NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/public/k", NULL, "x"), 401);
    ck_assert_int_eq(apic_status(port, "DELETE", "/kv/public/k", NULL, NULL), 401);
    ck_assert_int_eq(apic_status(port, "GET", kp("k"), NULL, NULL), 401);
    /* a wrong token is still refused */
    ck_assert_int_eq(apic_status(port, "GET", "/kv/public/k", "Fastly-Key: bad\r\n", NULL), 401);
    ck_assert_int_eq(apic_status(port, "GET", "/kv/public/k", READER, NULL), 200);
}
END_TEST

START_TEST(test_auth_edge_private)
{
    /* without edge-read-public, the edge path needs a token like everything else */
    const char *args[] = {"--origin", redis->origin, "--api-token", "tok-admin", NULL};
    struct ekv_test_proc *p = ekv_test_edgekv_startv(args);

    wait_ready(p->port);
    apic_create_store(p->port, ADMIN, "private", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", "/kv/private/k", ADMIN, "v"), 200);
    ck_assert_int_eq(apic_status(p->port, "GET", "/kv/private/k", NULL, NULL), 401);
    ck_assert_int_eq(apic_status(p->port, "GET", "/kv/private/k", ADMIN, NULL), 200);
    ck_assert_int_eq(apic_status(p->port, "GET", "/kv/private/k", READER, NULL), 401);
    ekv_test_proc_free(p);
}
END_TEST

/* ---------------------------------------------------------------- origin outages */

static void kill_strays(void)
{
    ekv_test_kill_strays();
}

/* Expects a fast 503 with Retry-After for @method @path. */
static void expect_503(unsigned short p, const char *method, const char *path, const char *body)
{
    struct ekv_test_resp r = {0};
    uint64_t t0 = ekv_test_now_ms(), dt;

    apic_req(p, method, path, NULL, body, body != NULL ? strlen(body) : 0, &r);
    dt = ekv_test_now_ms() - t0;
    ck_assert_msg(r.status == 503, "%s %s: %d: %.*s", method, path, r.status, (int)r.body_len,
                  r.body);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Retry-After"), "1");
    ck_assert_msg(dt < 1500, "%s %s took %llu ms", method, path, (unsigned long long)dt);
    ekv_test_resp_free(&r);
}

START_TEST(test_origin_unreachable)
{
    /* the helper's default origin is a socket nobody listens on */
    struct ekv_test_proc *p = ekv_test_edgekv_start("--origin-timeout", "500ms", NULL);

    expect_503(p->port, "GET", "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa/keys/k", NULL);
    expect_503(p->port, "PUT", "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa/keys/k", "v");
    expect_503(p->port, "DELETE", "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa/keys/k", NULL);
    expect_503(p->port, "GET", "/kv/name/k", NULL);
    expect_503(p->port, "POST", "/resources/stores/kv", "{\"name\":\"x\"}");
    expect_503(p->port, "GET", "/resources/stores/kv", NULL);
    expect_503(p->port, "PUT", "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa/batch",
               "{\"key\":\"k\",\"value\":\"\"}\n");
    ck_assert_int_eq(ekv_test_get_status(p->port, "/readyz"), 503);
    ck_assert_int_eq(ekv_test_get_status(p->port, "/healthz"), 200);
    /* validation still comes first */
    ck_assert_int_eq(apic_status(p->port, "GET",
                                 "/resources/stores/kv/aaaaaaaaaaaaaaaaaaaaaa/keys/..", NULL, NULL),
                     400);
    ekv_test_proc_free(p);
}
END_TEST

/* Polls until GET @path answers @status (at most 5 s). */
static void wait_status(unsigned short p, const char *path, int status)
{
    uint64_t end = ekv_test_now_ms() + 5000;

    while (apic_status(p, "GET", path, NULL, NULL) != status) {
        ck_assert_msg(ekv_test_now_ms() < end, "GET %s never answered %d", path, status);
        ekv_test_sleep_ms(50);
    }
}

START_TEST(test_origin_stalled)
{
    struct ekv_test_redis *r = ekv_test_redis_start();
    /* one worker: one origin connection, so "it has recovered" means every request does */
    const char *args[] = {"--origin", r->origin, "--origin-timeout", "500ms", "--threads",
                          "1",        NULL};
    struct ekv_test_proc *p = ekv_test_edgekv_startv(args);
    char path[256];

    wait_ready(p->port);
    apic_create_store(p->port, NULL, "stall", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "v"), 200);
    /* a Redis that stops answering: each request times out (500 ms) into a 503 */
    ck_assert_int_eq(ekv_test_proc_signal(r->proc, SIGSTOP), 0);
    expect_503(p->port, "GET", path, NULL);
    expect_503(p->port, "PUT", path, "v2");
    wait_status(p->port, "/readyz", 503);
    ck_assert_int_eq(ekv_test_proc_signal(r->proc, SIGCONT), 0);
    /* and it recovers by itself */
    wait_status(p->port, path, 200);
    wait_status(p->port, "/readyz", 200);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "v3"), 200);
    ekv_test_proc_free(p);
    ekv_test_redis_stop(r);
}
END_TEST

START_TEST(test_origin_restart)
{
    struct ekv_test_redis *r = ekv_test_redis_start();
    /* one worker: one origin connection, so "it has recovered" means every request does */
    const char *args[] = {"--origin", r->origin, "--origin-timeout", "500ms", "--threads",
                          "1",        NULL};
    struct ekv_test_proc *p = ekv_test_edgekv_startv(args);
    char path[256];

    wait_ready(p->port);
    apic_create_store(p->port, NULL, "restart", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "v"), 200);
    apic_redis_kill(r);
    expect_503(p->port, "GET", path, NULL);
    expect_503(p->port, "PUT", path, "v2");
    expect_503(p->port, "GET", "/resources/stores/kv", NULL);
    wait_status(p->port, "/readyz", 503);
    /* a new Redis on the same socket (empty: nothing was persisted) */
    apic_redis_start_again(r);
    wait_status(p->port, "/readyz", 200);
    wait_status(p->port, path, 404);
    apic_create_store(p->port, NULL, "again", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "back"), 200);
    ck_assert_int_eq(apic_status(p->port, "GET", path, NULL, NULL), 200);
    ekv_test_proc_free(p);
    ekv_test_redis_stop(r);
}
END_TEST


/* ---------------------------------------------------------------- the layout upgrade */

static void rcmd_expect(struct ekv_test_redis *r, const char *want, const char *fmt, const char *a,
                        const char *b)
{
    char *v = ekv_test_redis_cmd(r, fmt, a, b);

    ck_assert_msg(strcmp(v, want) == 0, "%s %s %s: \"%s\", want \"%s\"", fmt, a, b, v, want);
    free(v);
}

/* A Redis loaded with the first layout (the registry under <ns>stores, <ns>s:<sid>,
 * <ns>links:<service>), two POPs started on it at once: the registry moves once under its hash
 * tag, the stores, their items, generations and links are all there, and both POPs see them. */
START_TEST(test_layout_upgrade)
{
    static const char s1[] = "legacy0000000000000001", s2[] = "legacy0000000000000002";
    struct ekv_test_redis *r = ekv_test_redis_start();
    const char *args[] = {"--origin", r->origin, "--service-id", "svc1", NULL};
    struct ekv_test_proc *a, *b;
    struct ekv_test_resp resp = {0};
    char path[128], k[96];
    json_t *j;

    free(ekv_test_redis_cmd(r, "HSET edgekv:stores legacy %s other %s", s1, s2));
    free(ekv_test_redis_cmd(r, "HSET edgekv:s:%s name legacy created_at %s updated_at %s", s1,
                            "2025-01-02 03:04:05", "2025-01-02 03:04:05"));
    free(ekv_test_redis_cmd(r, "HSET edgekv:s:%s name other created_at %s updated_at %s", s2,
                            "2025-01-02 03:04:05", "2025-01-02 03:04:05"));
    free(ekv_test_redis_cmd(r, "SET edgekv:g:{%s} 3", s1));
    free(ekv_test_redis_cmd(r, "SET edgekv:g:{%s} 0", s2));
    free(ekv_test_redis_cmd(r, "HSET edgekv:i:{%s}:k v old g 3 t 1700000000000", s1));
    free(ekv_test_redis_cmd(r, "ZADD edgekv:x:{%s} 0 k", s1));
    free(ekv_test_redis_cmd(r, "HSET edgekv:links:svc1 n:alias LID1 l:LID1 %s",
                            "{\"id\":\"LID1\",\"name\":\"alias\",\"resource_id\":\"legacy0000000000000001\","
                            "\"version\":\"1\",\"created_at\":\"2025-01-02T03:04:05Z\","
                            "\"updated_at\":\"2025-01-02T03:04:05Z\"}"));
    a = ekv_test_edgekv_startv(args);
    b = ekv_test_edgekv_startv(args);
    wait_ready(a->port);
    wait_ready(b->port);
    /* moved, once */
    rcmd_expect(r, "2", "GET edgekv:layout:{registry}", "", "");
    rcmd_expect(r, "0", "EXISTS edgekv:stores", "", "");
    rcmd_expect(r, s1, "HGET edgekv:stores:{registry} legacy", "", "");
    rcmd_expect(r, "2", "HLEN edgekv:stores:{registry}", "", "");
    snprintf(k, sizeof(k), "edgekv:s:%s", s1);
    rcmd_expect(r, "0", "EXISTS %s", k, "");
    snprintf(k, sizeof(k), "edgekv:s:{registry}:%s", s1);
    rcmd_expect(r, "legacy", "HGET %s name", k, "");
    rcmd_expect(r, "0", "EXISTS edgekv:links:svc1", "", "");
    rcmd_expect(r, "LID1", "HGET edgekv:links:{registry}:svc1 n:alias", "", "");
    /* both POPs see the stores, the items and the links */
    for (int i = 0; i < 2; i++) {
        unsigned short p = i == 0 ? a->port : b->port;
        j = apic_get_json(p, "/resources/stores/kv", NULL, 200);
        ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 2);
        json_decref(j);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", s1);
        ck_assert_int_eq(apic_req(p, "GET", path, NULL, NULL, 0, &resp), 200);
        ck_assert_str_eq(resp.body, "old");
        ck_assert_str_eq(ekv_test_resp_header(&resp, "Generation"), "3");
        ekv_test_resp_free(&resp);
        ck_assert_int_eq(apic_req(p, "GET", "/kv/alias/k", NULL, NULL, 0, &resp), 200);
        ck_assert_str_eq(resp.body, "old");
        ekv_test_resp_free(&resp);
    }
    /* the registry goes on: names stay taken, generations keep growing, deletes work */
    ck_assert_int_eq(apic_status(a->port, "POST", "/resources/stores/kv", NULL,
                                 "{\"name\":\"legacy\"}"),
                     409);
    ck_assert_int_eq(apic_req(a->port, "PUT", path, NULL, "new", 3, &resp), 200);
    ck_assert_str_eq(ekv_test_resp_header(&resp, "Generation"), "4");
    ekv_test_resp_free(&resp);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", s1);
    ck_assert_int_eq(apic_status(b->port, "DELETE", path, NULL, NULL), 409); /* not empty */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", s2);
    ck_assert_int_eq(apic_status(b->port, "DELETE", path, NULL, NULL), 204);
    snprintf(k, sizeof(k), "edgekv:g:{%s}", s2);
    rcmd_expect(r, "0", "EXISTS %s", k, "");
    rcmd_expect(r, "(nil)", "HGET edgekv:stores:{registry} other", "", "");
    ck_assert_int_eq(apic_status(b->port, "DELETE", path, NULL, NULL), 404);
    ekv_test_proc_free(a);
    ekv_test_proc_free(b);
    ekv_test_redis_stop(r);
}
END_TEST

/* The keys of store @id, page by page (limit @limit) through POP @pop: "k1,k2,...". */
static char *all_keys(unsigned short pop, const char *id, unsigned limit)
{
    char path[256], *cursor = NULL, *out = calloc(1, 1);
    size_t len = 0;

    for (int pages = 0;; pages++) {
        json_t *j, *data, *cur;

        ck_assert_int_lt(pages, 100);
        if (cursor != NULL)
            snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?limit=%u&cursor=%s", id,
                     limit, cursor);
        else
            snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?limit=%u", id, limit);
        free(cursor);
        cursor = NULL;
        j = apic_get_json(pop, path, NULL, 200);
        data = json_object_get(j, "data");
        ck_assert_uint_le(json_array_size(data), limit);
        for (size_t i = 0; i < json_array_size(data); i++) {
            const char *k = json_string_value(json_array_get(data, i));
            out = realloc(out, len + strlen(k) + 2);
            len += (size_t)sprintf(out + len, "%s%s", len > 0 ? "," : "", k);
        }
        cur = json_object_get(json_object_get(j, "meta"), "next_cursor");
        if (cur != NULL)
            cursor = strdup(json_string_value(cur));
        json_decref(j);
        if (cursor == NULL)
            return out;
    }
}

/* store-shards: each store keeps the buckets it was created with (1: the tag {<sid>}, as before
 * buckets), whatever the POP that serves it is configured with; POPs of different settings read,
 * write, list and delete each other's stores. */
START_TEST(test_store_shards)
{
    struct ekv_test_redis *r = ekv_test_redis_start();
    const char *a_args[] = {"--origin", r->origin, "--store-shards", "1", NULL};
    const char *b_args[] = {"--origin", r->origin, "--store-shards", "5", NULL};
    struct ekv_test_proc *a = ekv_test_edgekv_startv(a_args), *b = ekv_test_edgekv_startv(b_args);
    char one[32], five[32], path[160], k[160], tag[64], key[16], want[1024] = "", *v;

    wait_ready(a->port);
    wait_ready(b->port);
    apic_create_store(a->port, NULL, "one", one);
    apic_create_store(b->port, NULL, "five", five);
    snprintf(k, sizeof(k), "edgekv:s:{registry}:%s", one);
    rcmd_expect(r, "1", "HGET %s shards", k, "");
    snprintf(k, sizeof(k), "edgekv:s:{registry}:%s", five);
    rcmd_expect(r, "5", "HGET %s shards", k, "");
    /* 30 keys in each, written through the other POP */
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "key%02d", i);
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i > 0 ? "," : "", key);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", one, key);
        ck_assert_int_eq(apic_status(b->port, "PUT", path, NULL, "1"), 200);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", five, key);
        ck_assert_int_eq(apic_status(a->port, "PUT", path, NULL, "5"), 200);
    }
    /* where the documented layout puts them */
    snprintf(k, sizeof(k), "edgekv:i:{%s}:key07", one);
    rcmd_expect(r, "1", "HGET %s v", k, "");
    snprintf(k, sizeof(k), "edgekv:i:{%s}:key07", ekv_test_tag(tag, sizeof(tag), five, "key07", 5));
    rcmd_expect(r, "5", "HGET %s v", k, "");
    snprintf(k, sizeof(k), "edgekv:g:{%s:*}", five);
    v = ekv_test_redis_cmd(r, "KEYS %s", k);
    ck_assert_uint_eq(count_lines(v), 5);
    free(v);
    /* every page size, through both POPs: the same keys, in order, once each */
    for (unsigned limit = 1; limit <= 31; limit += 6) {
        for (int p = 0; p < 2; p++) {
            unsigned short pop = p == 0 ? a->port : b->port;
            char *got = all_keys(pop, five, limit);
            ck_assert_str_eq(got, want);
            free(got);
            got = all_keys(pop, one, limit);
            ck_assert_str_eq(got, want);
            free(got);
        }
    }
    /* read through the POP that did not write */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/key29", five);
    {
        struct ekv_test_resp resp = {0};
        ck_assert_int_eq(apic_req(b->port, "GET", path, NULL, NULL, 0, &resp), 200);
        ck_assert_str_eq(resp.body, "5");
        ekv_test_resp_free(&resp);
    }
    /* empty both through the other POP, then delete */
    for (int i = 0; i < 30; i++) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/key%02d", five, i);
        ck_assert_int_eq(apic_status(a->port, "DELETE", path, NULL, NULL), 204);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s", five);
        ck_assert_int_eq(apic_status(b->port, "DELETE", path, NULL, NULL), i < 29 ? 409 : 204);
    }
    snprintf(k, sizeof(k), "edgekv:*%s*", five);
    v = ekv_test_redis_cmd(r, "KEYS %s", k);
    ck_assert_str_eq(v, "");
    free(v);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", one);
    ck_assert_int_eq(apic_status(b->port, "DELETE", path, NULL, NULL), 409);
    ekv_test_proc_free(a);
    ekv_test_proc_free(b);
    ekv_test_redis_stop(r);
}
END_TEST

/* A store whose deletion stopped half way (one bucket sealed, its record still there): that
 * bucket takes no writes, the others do, and deleting it again finishes the job, leaving no key
 * of the store. Creation leaves no counter behind when the registry refuses it. */
START_TEST(test_store_two_phases)
{
    struct ekv_test_redis *r = ekv_test_redis_start();
    const char *args[] = {"--origin", r->origin, "--max-stores", "1", NULL};
    struct ekv_test_proc *p = ekv_test_edgekv_startv(args);
    char id[32], path[128], k[96], tag[64], *v;

    wait_ready(p->port);
    apic_create_store(p->port, NULL, "half", id);
    ekv_test_tag(tag, sizeof(tag), id, "k", EKV_TEST_SHARDS);
    {
        char g[96], z[96];

        snprintf(g, sizeof(g), "edgekv:g:{%s}", tag);
        snprintf(z, sizeof(z), "edgekv:z:{%s}", tag);
        v = ekv_test_redis_cmd(r, "RENAME %s %s", g, z); /* as a seal of store_bucket.lua */
        ck_assert_str_eq(v, "OK");
        free(v);
    }
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", id);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "x"), 404);
    for (unsigned i = 0;; i++) { /* a key of another bucket */
        char key[16], other[64];

        snprintf(key, sizeof(key), "o%u", i);
        if (strcmp(ekv_test_tag(other, sizeof(other), id, key, EKV_TEST_SHARDS), tag) == 0)
            continue;
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", id, key);
        ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "x"), 200);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s", id);
        ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 409); /* not empty */
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", id, key);
        ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 204);
        break;
    }
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", id);
    ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 204);
    v = ekv_test_redis_cmd(r, "HLEN edgekv:stores:{registry}");
    ck_assert_str_eq(v, "0");
    free(v);
    snprintf(k, sizeof(k), "edgekv:*%s*", id);
    v = ekv_test_redis_cmd(r, "KEYS %s", k);
    ck_assert_str_eq(v, ""); /* every bucket dropped, the sealed one too */
    free(v);
    /* refused by the registry (the limit): no counter is left */
    apic_create_store(p->port, NULL, "one", id);
    ck_assert_int_eq(apic_status(p->port, "POST", "/resources/stores/kv", NULL,
                                 "{\"name\":\"two\"}"),
                     400); /* the store limit */
    v = ekv_test_redis_cmd(r, "KEYS edgekv:g:*");
    ck_assert_uint_eq(count_lines(v), EKV_TEST_SHARDS); /* the first store's alone */
    snprintf(k, sizeof(k), "{%s:", id);
    for (char *line = v; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        ck_assert_msg(strstr(line, k) != NULL, "%s is no counter of %s", line, id);
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(v);
    ekv_test_proc_free(p);
    ekv_test_redis_stop(r);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static TCase *shared_tcase(const char *name, void (*start)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, start, stop_all);
    tcase_add_checked_fixture(tc, flush, check_alive);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    return tc;
}

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc;

    tc = shared_tcase("stores", start_default);
    tcase_add_test(tc, test_store_create);
    tcase_add_test(tc, test_store_create_errors);
    tcase_add_test(tc, test_store_list);
    tcase_add_test(tc, test_store_describe_rename);
    tcase_add_test(tc, test_store_delete);
    suite_add_tcase(s, tc);

    tc = shared_tcase("items", start_default);
    tcase_add_test(tc, test_item_put_get_head);
    tcase_add_test(tc, test_item_metadata);
    tcase_add_test(tc, test_item_ttl);
    tcase_add_test(tc, test_item_if_none_match);
    tcase_add_test(tc, test_item_generation_match);
    tcase_add_test(tc, test_item_generations_grow);
    tcase_add_test(tc, test_item_add);
    tcase_add_test(tc, test_item_append_prepend);
    tcase_add_test(tc, test_item_delete);
    tcase_add_test(tc, test_item_encoded_keys);
    tcase_add_test(tc, test_item_invalid_keys);
    tcase_add_test(tc, test_item_layout);
    tcase_add_test(tc, test_item_origin_error);
    tcase_add_test(tc, test_item_malformed);
    tcase_add_test(tc, test_item_client_gone);
    tcase_add_test(tc, test_item_concurrent_writers);
    tcase_add_test(tc, test_item_25mib);
    tcase_add_test(tc, test_list_keys);
    tcase_add_test(tc, test_list_keys_pages_1000);
    tcase_add_test(tc, test_batch_valid);
    tcase_add_test(tc, test_batch_mixed);
    tcase_add_test(tc, test_batch_chunked);
    tcase_add_test(tc, test_edge_path_by_store_name);
    suite_add_tcase(s, tc);

    tc = shared_tcase("limits", start_small);
    tcase_add_test(tc, test_batch_bounds);
    tcase_add_test(tc, test_store_limit);
    tcase_add_test(tc, test_item_append_too_large);
    suite_add_tcase(s, tc);

    tc = shared_tcase("links", start_links);
    tcase_add_test(tc, test_service_version);
    tcase_add_test(tc, test_links_crud);
    tcase_add_test(tc, test_edge_path_by_link);
    suite_add_tcase(s, tc);

    tc = shared_tcase("auth", start_auth);
    tcase_add_test(tc, test_auth_tokens);
    tcase_add_test(tc, test_auth_edge_read_public);
    tcase_add_test(tc, test_auth_edge_private);
    suite_add_tcase(s, tc);

    tc = tcase_create("origin");
    tcase_add_checked_fixture(tc, NULL, kill_strays);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_origin_unreachable);
    tcase_add_test(tc, test_origin_stalled);
    tcase_add_test(tc, test_origin_restart);
    tcase_add_test(tc, test_layout_upgrade);
    tcase_add_test(tc, test_store_two_phases);
    tcase_add_test(tc, test_store_shards);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    ekv_test_edgekv_bin();
    return ekv_test_run_suite(api_suite());
}
