/* check_keyspace.c - the keyspace's reply decoders and key layout. Replies are built from RESP
 * bytes through hiredis's own reader (as the origin gets them), well formed and malformed: wrong
 * types, short and long arrays, nils where a value is expected, codes a script never answers.
 * Every malformed one must come out as EKV_KS_ORIGIN_PROTOCOL, never as a crash or an invented
 * value. Also: the domain codes spelled in the scripts agree with keyspace_int.h, and cache keys
 * and Redis keys map onto each other. */
#include "config.h"

#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/keyspace.h"
#include "edgekv/origin.h"

#include "keyspace/lua_sources.h"
#include "keyspace_int.h"
#include "testutil.h"

/* The reply that the RESP bytes @bytes hold (freeReplyObject() it). */
static redisReply *resp(const char *bytes)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    ck_assert_msg(r != NULL, "incomplete RESP: %s", bytes);
    redisReaderFree(rd);
    return r;
}

static bool str_eq(struct ekv_ks_str s, const char *want)
{
    return s.p != NULL && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#define ck_assert_ks_str(s, want) ck_assert_msg(str_eq((s), (want)), "expected \"%s\"", (want))

/* ---------------------------------------------------------------- faults */

START_TEST(test_faults)
{
    struct ekv_ks_result res;
    redisReply *r;

    ck_assert(ekv_ks_fault(EKV_ETIMEDOUT, NULL, false, &res));
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_TIMEOUT);
    ck_assert(ekv_ks_fault(EKV_ECLOSED, NULL, true, &res));
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_DOWN);
    ck_assert(ekv_ks_fault(EKV_OK, NULL, false, &res)); /* no reply at all */
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_DOWN);

    r = resp("-NOPERM this user has no permissions\r\n");
    ck_assert(ekv_ks_fault(EKV_OK, r, false, &res));
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_ERROR);
    ck_assert_uint_eq(res.error_len, strlen("NOPERM this user has no permissions"));
    ck_assert(memcmp(res.error, "NOPERM", 6) == 0);
    freeReplyObject(r);

    /* in a pipeline, an error in any command's reply; not so for a single command's array */
    r = resp("*2\r\n:5\r\n-WRONGTYPE Operation against a key\r\n");
    ck_assert(ekv_ks_fault(EKV_OK, r, true, &res));
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_ERROR);
    ck_assert(memcmp(res.error, "WRONGTYPE", 9) == 0);
    ck_assert(!ekv_ks_fault(EKV_OK, r, false, &res));
    freeReplyObject(r);

    r = resp("*1\r\n:0\r\n");
    ck_assert(!ekv_ks_fault(EKV_OK, r, true, &res));
    freeReplyObject(r);
}
END_TEST

/* ---------------------------------------------------------------- item reads */

START_TEST(test_item_ok)
{
    struct ekv_ks_result res;
    struct ekv_ks_item it;
    redisReply *r;

    r = resp(
        "*2\r\n:1500\r\n*4\r\n$5\r\nhello\r\n$4\r\nm=1x\r\n$2\r\n42\r\n$13\r\n1700000000123\r\n");
    ekv_ks_decode_item(r, &res, &it);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_ks_str(it.value, "hello");
    ck_assert_ks_str(it.meta, "m=1x");
    ck_assert_uint_eq(it.generation, 42);
    ck_assert_int_eq(it.last_modified_ms, 1700000000123LL);
    ck_assert_int_eq(it.ttl_ms, 1500);
    /* the value is a view into the reply: no copy */
    ck_assert_ptr_eq(it.value.p, r->element[1]->element[0]->str);
    freeReplyObject(r);

    /* a foreign writer's item: no value, metadata or last-modified field; no TTL */
    r = resp("*2\r\n:-1\r\n*4\r\n$-1\r\n$-1\r\n$1\r\n7\r\n$-1\r\n");
    ekv_ks_decode_item(r, &res, &it);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_ks_str(it.value, "");
    ck_assert_ks_str(it.meta, "");
    ck_assert_uint_eq(it.generation, 7);
    ck_assert_int_eq(it.last_modified_ms, 0);
    ck_assert_int_eq(it.ttl_ms, -1);
    freeReplyObject(r);

    /* PTTL found no key, HMGET an item: written in between */
    r = resp("*2\r\n:-2\r\n*4\r\n$1\r\nv\r\n$-1\r\n$1\r\n8\r\n$1\r\n9\r\n");
    ekv_ks_decode_item(r, &res, &it);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_int_eq(it.ttl_ms, -2);
    freeReplyObject(r);

    /* no generation: no item, whatever else the hash holds */
    r = resp("*2\r\n:-1\r\n*4\r\n$1\r\nv\r\n$-1\r\n$-1\r\n$-1\r\n");
    ekv_ks_decode_item(r, &res, &it);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_KEY);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_item_malformed)
{
    static const char *const bad[] = {
        ":1\r\n",                                                    /* not an array */
        "$2\r\nok\r\n",                                              /* not an array */
        "*-1\r\n",                                                   /* nil */
        "*0\r\n",                                                    /* empty */
        "*1\r\n:1\r\n",                                              /* short */
        "*3\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$-1\r\n:1\r\n",  /* long */
        "*2\r\n$2\r\n10\r\n*4\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$-1\r\n",  /* PTTL not an integer */
        "*2\r\n$-1\r\n*4\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$-1\r\n",       /* PTTL nil */
        "*2\r\n:1\r\n$-1\r\n",                                       /* fields nil */
        "*2\r\n:1\r\n:4\r\n",                                        /* fields not an array */
        "*2\r\n:1\r\n*3\r\n$-1\r\n$-1\r\n$1\r\n1\r\n",               /* three fields */
        "*2\r\n:1\r\n*5\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$-1\r\n$-1\r\n", /* five fields */
        "*2\r\n:1\r\n*4\r\n:5\r\n$-1\r\n$1\r\n1\r\n$-1\r\n",         /* value an integer */
        "*2\r\n:1\r\n*4\r\n$-1\r\n*0\r\n$1\r\n1\r\n$-1\r\n",         /* metadata an array */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n:1\r\n$-1\r\n",             /* generation an integer */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$3\r\nabc\r\n$-1\r\n",      /* generation not a number */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$2\r\n-1\r\n$-1\r\n",       /* generation negative */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$0\r\n\r\n$-1\r\n",         /* generation empty */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$20\r\n99999999999999999999\r\n$-1\r\n", /* too big */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$9\r\nyesterday\r\n", /* last-modified */
        "*2\r\n:1\r\n*4\r\n$-1\r\n$-1\r\n$1\r\n1\r\n:12\r\n",             /* last-modified an int */
        "*2\r\n:1\r\n*4\r\n+OK\r\n$-1\r\n$1\r\n1\r\n$-1\r\n",             /* a status, not a bulk */
    };

    for (size_t i = 0; i < EKV_ARRAY_LEN(bad); i++) {
        struct ekv_ks_result res;
        struct ekv_ks_item it;
        redisReply *r = resp(bad[i]);

        ekv_ks_decode_item(r, &res, &it);
        ck_assert_msg(res.outcome == EKV_KS_ORIGIN_PROTOCOL, "reply %zu: outcome %d", i,
                      (int)res.outcome);
        ck_assert_str_eq(res.malformed, "item");
        ck_assert_uint_eq(it.generation, 0); /* nothing made up */
        ck_assert_ptr_null(it.value.p);
        freeReplyObject(r);
    }
}
END_TEST

START_TEST(test_exists)
{
    struct ekv_ks_result res;
    redisReply *r;

    r = resp("*1\r\n:1\r\n");
    ekv_ks_decode_exists(r, true, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    freeReplyObject(r);
    r = resp("*1\r\n:0\r\n");
    ekv_ks_decode_exists(r, true, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_STORE);
    freeReplyObject(r);
    r = resp(":0\r\n");
    ekv_ks_decode_exists(r, false, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_STORE);
    freeReplyObject(r);
    r = resp(":1\r\n");
    ekv_ks_decode_exists(r, false, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    freeReplyObject(r);

    /* nil, a string, 2, a short or long pipeline: no answer to "does the store exist?" */
    r = resp("$-1\r\n");
    ekv_ks_decode_exists(r, false, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_ptr_null(res.malformed);
    freeReplyObject(r);
    r = resp("$1\r\n1\r\n");
    ekv_ks_decode_exists(r, false, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
    r = resp(":2\r\n");
    ekv_ks_decode_exists(r, false, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
    r = resp("*0\r\n");
    ekv_ks_decode_exists(r, true, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_str_eq(res.malformed, "item"); /* the second step of an item read */
    freeReplyObject(r);
    r = resp("*2\r\n:1\r\n:1\r\n");
    ekv_ks_decode_exists(r, true, &res);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
    r = resp(":1\r\n");
    ekv_ks_decode_exists(r, true, &res); /* a pipeline's reply is an array */
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
}
END_TEST

/* ---------------------------------------------------------------- item writes */

START_TEST(test_put)
{
    static const struct {
        const char *resp;
        enum ekv_ks_outcome outcome;
    } cases[] = {
        {"*3\r\n:0\r\n:17\r\n:1700000000000\r\n", EKV_KS_OK},
        {"*1\r\n:1\r\n", EKV_KS_NO_STORE},
        {"*1\r\n:3\r\n", EKV_KS_PRECONDITION_FAILED},
        {"*1\r\n:4\r\n", EKV_KS_TOO_LARGE},
        /* malformed */
        {"*1\r\n:0\r\n", EKV_KS_ORIGIN_PROTOCOL},                    /* OK without its values */
        {"*2\r\n:0\r\n:17\r\n", EKV_KS_ORIGIN_PROTOCOL},             /* short */
        {"*3\r\n:0\r\n$2\r\n17\r\n:1\r\n", EKV_KS_ORIGIN_PROTOCOL},  /* generation a string */
        {"*3\r\n:0\r\n$-1\r\n:1\r\n", EKV_KS_ORIGIN_PROTOCOL},       /* generation nil */
        {"*3\r\n:0\r\n:-5\r\n:1\r\n", EKV_KS_ORIGIN_PROTOCOL},       /* generation negative */
        {"*3\r\n:0\r\n:17\r\n$-1\r\n", EKV_KS_ORIGIN_PROTOCOL},      /* time nil */
        {"*4\r\n:0\r\n:17\r\n:1\r\n:1\r\n", EKV_KS_ORIGIN_PROTOCOL}, /* long */
        {"*2\r\n:1\r\n$5\r\nstore\r\n", EKV_KS_ORIGIN_PROTOCOL},     /* NO_STORE with extras */
        {"*1\r\n:2\r\n", EKV_KS_ORIGIN_PROTOCOL},                    /* NO_KEY: not a put code */
        {"*1\r\n:200\r\n", EKV_KS_ORIGIN_PROTOCOL},                  /* an HTTP status */
        {"*1\r\n:-1\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {"*1\r\n$1\r\n0\r\n", EKV_KS_ORIGIN_PROTOCOL}, /* code a string */
        {"*1\r\n$-1\r\n", EKV_KS_ORIGIN_PROTOCOL},     /* code nil */
        {"*0\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {":0\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {"$-1\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {"+OK\r\n", EKV_KS_ORIGIN_PROTOCOL},
    };

    for (size_t i = 0; i < EKV_ARRAY_LEN(cases); i++) {
        struct ekv_ks_result res;
        struct ekv_ks_written w;
        redisReply *r = resp(cases[i].resp);

        ekv_ks_decode_put(r, &res, &w);
        ck_assert_msg(res.outcome == cases[i].outcome, "reply %zu: outcome %d, expected %d", i,
                      (int)res.outcome, (int)cases[i].outcome);
        if (res.outcome == EKV_KS_OK) {
            ck_assert_uint_eq(w.generation, 17);
            ck_assert_int_eq(w.last_modified_ms, 1700000000000LL);
        } else {
            ck_assert_uint_eq(w.generation, 0);
        }
        if (res.outcome == EKV_KS_ORIGIN_PROTOCOL)
            ck_assert_ptr_null(res.malformed);
        freeReplyObject(r);
    }
}
END_TEST

START_TEST(test_codes)
{
    static const struct {
        enum ekv_ks_script script;
        const char *resp;
        enum ekv_ks_outcome outcome;
    } cases[] = {
        {EKV_KS_SCRIPT_ITEM_DELETE, "*1\r\n:0\r\n", EKV_KS_OK},
        {EKV_KS_SCRIPT_ITEM_DELETE, "*1\r\n:1\r\n", EKV_KS_NO_STORE},
        {EKV_KS_SCRIPT_ITEM_DELETE, "*1\r\n:2\r\n", EKV_KS_NO_KEY},
        {EKV_KS_SCRIPT_ITEM_DELETE, "*1\r\n:3\r\n", EKV_KS_PRECONDITION_FAILED},
        {EKV_KS_SCRIPT_ITEM_DELETE, "*1\r\n:4\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_ITEM_DELETE, "*1\r\n:204\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_ITEM_DELETE, "*2\r\n:0\r\n:0\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_CREATE, "*1\r\n:0\r\n", EKV_KS_OK},
        {EKV_KS_SCRIPT_STORE_CREATE, "*1\r\n:5\r\n", EKV_KS_NAME_TAKEN},
        {EKV_KS_SCRIPT_STORE_CREATE, "*1\r\n:6\r\n", EKV_KS_LIMIT},
        {EKV_KS_SCRIPT_STORE_CREATE, "*1\r\n:8\r\n", EKV_KS_ID_TAKEN},
        {EKV_KS_SCRIPT_STORE_CREATE, "*1\r\n:1\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_RENAME, "*1\r\n:0\r\n", EKV_KS_OK},
        {EKV_KS_SCRIPT_STORE_RENAME, "*1\r\n:1\r\n", EKV_KS_NO_STORE},
        {EKV_KS_SCRIPT_STORE_RENAME, "*1\r\n:5\r\n", EKV_KS_NAME_TAKEN},
        {EKV_KS_SCRIPT_STORE_RENAME, "*1\r\n:7\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_DELETE, "*1\r\n:0\r\n", EKV_KS_OK},
        {EKV_KS_SCRIPT_STORE_DELETE, "*1\r\n:1\r\n", EKV_KS_NO_STORE},
        {EKV_KS_SCRIPT_STORE_DELETE, "*1\r\n:7\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_DELETE, "*1\r\n:5\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_BUCKET, "*1\r\n:0\r\n", EKV_KS_OK},
        {EKV_KS_SCRIPT_STORE_BUCKET, "*1\r\n:7\r\n", EKV_KS_NOT_EMPTY},
        {EKV_KS_SCRIPT_STORE_BUCKET, "*1\r\n:1\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_DELETE, ":0\r\n", EKV_KS_ORIGIN_PROTOCOL},
        {EKV_KS_SCRIPT_STORE_DELETE, "*-1\r\n", EKV_KS_ORIGIN_PROTOCOL},
    };

    for (size_t i = 0; i < EKV_ARRAY_LEN(cases); i++) {
        struct ekv_ks_result res;
        redisReply *r = resp(cases[i].resp);

        ekv_ks_decode_code(r, cases[i].script, &res);
        ck_assert_msg(res.outcome == cases[i].outcome, "case %zu: outcome %d, expected %d", i,
                      (int)res.outcome, (int)cases[i].outcome);
        freeReplyObject(r);
    }
}
END_TEST

START_TEST(test_key_list)
{
    struct ekv_ks_result res;
    struct ekv_ks_page page;
    struct ekv_ks_str *names;
    redisReply *r;
    static const char *const bad[] = {
        "*1\r\n:0\r\n",                        /* no "more" */
        "*2\r\n:0\r\n$1\r\n1\r\n",             /* "more" a string */
        "*2\r\n:0\r\n:2\r\n",                  /* "more" neither 0 nor 1 */
        "*3\r\n:0\r\n:0\r\n:5\r\n",            /* a name that is an integer */
        "*3\r\n:0\r\n:0\r\n$-1\r\n",           /* a nil name */
        "*4\r\n:0\r\n:0\r\n$1\r\na\r\n*0\r\n", /* an array name */
        "*1\r\n:2\r\n",                        /* NO_KEY: not a listing code */
        "*2\r\n:1\r\n:0\r\n",                  /* NO_STORE with extras */
        "$-1\r\n",
    };

    r = resp("*4\r\n:0\r\n:1\r\n$1\r\na\r\n$3\r\nb/c\r\n");
    ekv_ks_decode_key_list(r, &res, &page, &names);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_uint_eq(page.count, 2);
    ck_assert(page.more);
    ck_assert_ks_str(page.names[0], "a");
    ck_assert_ks_str(page.names[1], "b/c");
    ekv_free(names);
    freeReplyObject(r);

    r = resp("*2\r\n:0\r\n:0\r\n");
    ekv_ks_decode_key_list(r, &res, &page, &names);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_uint_eq(page.count, 0);
    ck_assert(!page.more);
    ck_assert_ptr_null(names);
    freeReplyObject(r);

    r = resp("*1\r\n:1\r\n");
    ekv_ks_decode_key_list(r, &res, &page, &names);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_STORE);
    ck_assert_ptr_null(names);
    freeReplyObject(r);

    for (size_t i = 0; i < EKV_ARRAY_LEN(bad); i++) {
        r = resp(bad[i]);
        ekv_ks_decode_key_list(r, &res, &page, &names);
        ck_assert_msg(res.outcome == EKV_KS_ORIGIN_PROTOCOL, "reply %zu: outcome %d", i,
                      (int)res.outcome);
        ck_assert_ptr_null(names);
        ck_assert_uint_eq(page.count, 0);
        freeReplyObject(r);
    }
}
END_TEST

/* ---------------------------------------------------------------- stores and names */

START_TEST(test_stores)
{
    struct ekv_ks_result res;
    struct ekv_ks_store *rows, st;
    size_t n;
    redisReply *r;
    static const char *const bad_lists[] = {
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",        /* not rows of four */
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n$1\r\nd\r\n", /* a nil */
        "*4\r\n$1\r\na\r\n:1\r\n$1\r\nc\r\n$1\r\nd\r\n",  /* an integer */
        ":0\r\n",
        "$-1\r\n",
    };
    static const char *const bad_records[] = {
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n",                       /* short */
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n", /* long */
        "*3\r\n:1\r\n$1\r\nb\r\n$1\r\nc\r\n",                 /* name an integer */
        "*3\r\n$1\r\na\r\n*0\r\n$1\r\nc\r\n",                 /* created_at an array */
        "$-1\r\n",
    };

    r = resp("*8\r\n$2\r\ns1\r\n$3\r\nid1\r\n$1\r\nc\r\n$1\r\nu\r\n"
             "$2\r\ns0\r\n$3\r\nid0\r\n$0\r\n\r\n$0\r\n\r\n");
    ekv_ks_decode_store_list(r, &res, &rows, &n);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_ks_str(rows[0].name, "s1");
    ck_assert_ks_str(rows[0].id, "id1");
    ck_assert_ks_str(rows[0].created_at, "c");
    ck_assert_ks_str(rows[0].updated_at, "u");
    ck_assert_ks_str(rows[1].created_at, "");
    ekv_free(rows);
    freeReplyObject(r);
    r = resp("*0\r\n");
    ekv_ks_decode_store_list(r, &res, &rows, &n);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_uint_eq(n, 0);
    freeReplyObject(r);
    for (size_t i = 0; i < EKV_ARRAY_LEN(bad_lists); i++) {
        r = resp(bad_lists[i]);
        ekv_ks_decode_store_list(r, &res, &rows, &n);
        ck_assert_msg(res.outcome == EKV_KS_ORIGIN_PROTOCOL, "list %zu", i);
        ck_assert_ptr_null(rows);
        ck_assert_uint_eq(n, 0);
        freeReplyObject(r);
    }

    r = resp("*3\r\n$4\r\nname\r\n$1\r\nc\r\n$-1\r\n");
    ekv_ks_decode_store(r, "sid", 3, &res, &st);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_ks_str(st.id, "sid");
    ck_assert_ks_str(st.name, "name");
    ck_assert_ks_str(st.created_at, "c");
    ck_assert_ks_str(st.updated_at, ""); /* documented: a missing time reads as "" */
    freeReplyObject(r);
    r = resp("*3\r\n$-1\r\n$-1\r\n$-1\r\n");
    ekv_ks_decode_store(r, "sid", 3, &res, &st);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_STORE);
    freeReplyObject(r);
    for (size_t i = 0; i < EKV_ARRAY_LEN(bad_records); i++) {
        r = resp(bad_records[i]);
        ekv_ks_decode_store(r, "sid", 3, &res, &st);
        ck_assert_msg(res.outcome == EKV_KS_ORIGIN_PROTOCOL, "record %zu", i);
        ck_assert_ptr_null(st.name.p);
        freeReplyObject(r);
    }
}
END_TEST

START_TEST(test_resolve)
{
    struct ekv_ks_result res;
    struct ekv_ks_str sid;
    redisReply *r;

    r = resp("$5\r\nabcde\r\n");
    ekv_ks_decode_resolve(r, &res, &sid);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_ks_str(sid, "abcde");
    freeReplyObject(r);
    r = resp("$-1\r\n");
    ekv_ks_decode_resolve(r, &res, &sid);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_NAME);
    ck_assert_ptr_null(sid.p);
    freeReplyObject(r);
    /* wrong types: not "no such name" (which would be cached), a malformed answer */
    r = resp(":1\r\n");
    ekv_ks_decode_resolve(r, &res, &sid);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_ptr_null(sid.p);
    freeReplyObject(r);
    r = resp("*1\r\n$1\r\na\r\n");
    ekv_ks_decode_resolve(r, &res, &sid);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
}
END_TEST

/* ---------------------------------------------------------------- links */

#define LINK_JSON                                                                                  \
    "{\"id\":\"l1\",\"name\":\"n\",\"resource_id\":\"s1\",\"version\":\"1\","                      \
    "\"created_at\":\"c\",\"updated_at\":\"u\"}"

/* "$<len>\r\n<json>\r\n" */
static void bulk(char *out, size_t cap, const char *s)
{
    snprintf(out, cap, "$%zu\r\n%s\r\n", strlen(s), s);
}

START_TEST(test_link)
{
    struct ekv_ks_result res;
    struct ekv_ks_link l;
    json_t *root;
    bool has;
    char buf[1024], b[512];
    redisReply *r;

    bulk(b, sizeof(b), LINK_JSON);
    r = resp(b);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_COUNT, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert(has);
    ck_assert_ks_str(l.id, "l1");
    ck_assert_ks_str(l.name, "n");
    ck_assert_ks_str(l.resource_id, "s1");
    ck_assert_ks_str(l.created_at, "c");
    ck_assert_ks_str(l.updated_at, "u");
    json_decref(root);
    freeReplyObject(r);

    snprintf(buf, sizeof(buf), "*2\r\n:0\r\n%s", b);
    r = resp(buf);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_CREATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_ks_str(l.id, "l1");
    json_decref(root);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_UPDATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    json_decref(root);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_DELETE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL); /* a delete answers {OK} alone */
    ck_assert(!has);
    freeReplyObject(r);

    r = resp("*1\r\n:0\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_DELETE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert(!has);
    ck_assert_ptr_null(root);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_CREATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL); /* OK without the link */
    freeReplyObject(r);

    r = resp("*1\r\n:1\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_CREATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_TARGET);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_UPDATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
    r = resp("*1\r\n:5\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_UPDATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_LINK_NAME_TAKEN);
    freeReplyObject(r);
    r = resp("*1\r\n:9\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_DELETE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_LINK);
    freeReplyObject(r);
    r = resp("$-1\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_COUNT, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_NO_LINK);
    freeReplyObject(r);

    /* malformed: the reply (NULL), or the stored link ("link") */
    r = resp(":3\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_COUNT, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_ptr_null(res.malformed);
    freeReplyObject(r);
    r = resp("*2\r\n:0\r\n:3\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_LINK_CREATE, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_ptr_null(res.malformed);
    freeReplyObject(r);
    r = resp("$8\r\nnot json\r\n");
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_COUNT, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_str_eq(res.malformed, "link");
    ck_assert(!has);
    ck_assert_ptr_null(root);
    freeReplyObject(r);
    bulk(b, sizeof(b), "{\"id\":\"l1\",\"name\":7}");
    r = resp(b);
    ekv_ks_decode_link(r, EKV_KS_SCRIPT_COUNT, &res, &l, &has, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_str_eq(res.malformed, "link");
    ck_assert_ptr_null(l.id.p);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_links)
{
    struct ekv_ks_result res;
    struct ekv_ks_link *links;
    json_t *root;
    size_t n;
    char buf[2048], b[512];
    redisReply *r;

    bulk(b, sizeof(b), LINK_JSON);
    /* a link, its name entry, a link that is not JSON (left out) */
    snprintf(buf, sizeof(buf),
             "*6\r\n$4\r\nl:l1\r\n%s$3\r\nn:n\r\n$2\r\nl1\r\n$4\r\nl:l2\r\n$1\r\n{\r\n", b);
    r = resp(buf);
    ekv_ks_decode_links(r, &res, &links, &n, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_ks_str(links[0].id, "l1");
    ck_assert_ks_str(links[0].resource_id, "s1");
    ekv_free(links);
    json_decref(root);
    freeReplyObject(r);

    r = resp("*0\r\n");
    ekv_ks_decode_links(r, &res, &links, &n, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(links);
    ck_assert_ptr_null(root);
    freeReplyObject(r);

    r = resp("*1\r\n$4\r\nl:l1\r\n"); /* a field without its value */
    ekv_ks_decode_links(r, &res, &links, &n, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    ck_assert_ptr_null(links);
    freeReplyObject(r);
    r = resp("*2\r\n$4\r\nl:l1\r\n:1\r\n");
    ekv_ks_decode_links(r, &res, &links, &n, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
    r = resp("$-1\r\n");
    ekv_ks_decode_links(r, &res, &links, &n, &root);
    ck_assert_int_eq(res.outcome, EKV_KS_ORIGIN_PROTOCOL);
    freeReplyObject(r);
}
END_TEST

/* ---------------------------------------------------------------- the scripts' codes */

/* Checks the first `local NAME, ... = N, ...` line of @body: every name is a domain code of that
 * value. Returns how many names it checked. */
static unsigned check_code_line(const char *script, const char *body)
{
    const char *p = strstr(body, "\nlocal OK");
    char names[16][32], *eq;
    long values[16];
    unsigned nn = 0, nv = 0;
    char line[256];
    const char *end;

    if (p == NULL)
        return 0;
    p += 7; /* past "\nlocal " */
    end = strchr(p, '\n');
    ck_assert_ptr_nonnull(end);
    ck_assert_uint_lt((size_t)(end - p), sizeof(line));
    memcpy(line, p, (size_t)(end - p));
    line[end - p] = '\0';
    eq = strchr(line, '=');
    ck_assert_msg(eq != NULL, "%s: no '=' in its code line", script);
    *eq = '\0';
    for (char *t = strtok(line, ", "); t != NULL; t = strtok(NULL, ", ")) {
        ck_assert_uint_lt(nn, 16);
        snprintf(names[nn++], sizeof(names[0]), "%s", t);
    }
    for (char *t = strtok(eq + 1, ", "); t != NULL; t = strtok(NULL, ", ")) {
        ck_assert_msg(isdigit((unsigned char)t[0]), "%s: code %s", script, t);
        ck_assert_uint_lt(nv, 16);
        values[nv++] = strtol(t, NULL, 10);
    }
    ck_assert_msg(nn == nv, "%s: %u names, %u values", script, nn, nv);
    for (unsigned i = 0; i < nn; i++) {
        unsigned c;

        for (c = 0; c < EKV_KS_CODE_COUNT; c++)
            if (strcmp(ekv_ks_code_names[c], names[i]) == 0)
                break;
        ck_assert_msg(c < EKV_KS_CODE_COUNT, "%s: %s is no domain code", script, names[i]);
        ck_assert_msg(values[i] == (long)c, "%s: %s = %ld, keyspace_int.h says %u", script,
                      names[i], values[i], c);
    }
    return nn;
}

START_TEST(test_script_codes)
{
    unsigned scripts = 0;

    for (unsigned i = 0; i < ekv_lua_nsources; i++) {
        const char *body = ekv_lua_sources[i].body;
        unsigned n = check_code_line(ekv_lua_sources[i].name, body);

        /* the scripts answer domain codes, never HTTP statuses */
        ck_assert_msg(strstr(body, "{200") == NULL && strstr(body, "{404") == NULL &&
                          strstr(body, "{412") == NULL && strstr(body, "{409") == NULL,
                      "%s answers with an HTTP status", ekv_lua_sources[i].name);
        if (n > 0)
            scripts++;
    }
    /* every script but resolve and store_list (which answer data) names its codes */
    ck_assert_uint_eq(scripts, EKV_KS_SCRIPT_COUNT - 2);
}
END_TEST

/* ---------------------------------------------------------------- layout */

START_TEST(test_layout)
{
    struct ekv_keyspace *ks = ekv_keyspace_new(&(struct ekv_keyspace_opts){.ns = "edgekv:"});
    const char *const *prefixes;
    const char *ckey;
    size_t n, ckey_len, len;
    struct ekv_ks_key k;
    char out[64];

    prefixes = ekv_keyspace_tracking_prefixes(ks, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(prefixes[0], "edgekv:i:");
    ck_assert_str_eq(prefixes[1], "edgekv:stores");
    ck_assert_str_eq(prefixes[2], "edgekv:links:");
    ck_assert_str_eq(ekv_keyspace_heartbeat_channel(ks), "edgekv:heartbeat");
    ck_assert(!ekv_keyspace_connected(ks));

    /* cache key <-> Redis key */
    len = ekv_keyspace_cache_key(out, "sid1", 4, 1, "a:{b}:c", 7); /* one bucket: {<sid>} */
    ck_assert_uint_eq(len, 4 + 7 + 3);
    ck_assert(memcmp(out, "{sid1}:a:{b}:c", len) == 0);
    ekv_ks_key_init(&k, ks, "i:{", "sid1", 4, "}:", "a:{b}:c", 7);
    ck_assert_str_eq(k.p, "edgekv:i:{sid1}:a:{b}:c");
    ck_assert_ptr_eq(k.p, k.buf); /* short: no allocation */
    ck_assert_int_eq(ekv_keyspace_cache_key_of_redis_key(ks, k.p, k.len, &ckey, &ckey_len),
                     EKV_KS_TRACKED_ITEM);
    ck_assert_uint_eq(ckey_len, len);
    ck_assert(memcmp(ckey, out, len) == 0);
    ck_assert_ptr_eq(ckey, k.p + strlen("edgekv:i:")); /* a view, no copy */
    ekv_ks_key_clear(&k);

    ck_assert_int_eq(ekv_keyspace_cache_key_of_redis_key(ks, "edgekv:stores", 13, &ckey, &ckey_len),
                     EKV_KS_TRACKED_NAMES);
    ck_assert_ptr_null(ckey);
    ck_assert_int_eq(
        ekv_keyspace_cache_key_of_redis_key(ks, "edgekv:links:svc", 16, &ckey, &ckey_len),
        EKV_KS_TRACKED_NAMES);
    ck_assert_int_eq(ekv_keyspace_cache_key_of_redis_key(ks, "edgekv:i", 8, &ckey, &ckey_len),
                     EKV_KS_TRACKED_NAMES);
    ekv_keyspace_free(ks);
    ekv_keyspace_free(NULL);
}
END_TEST

/* A store's buckets: b = CRC16(key) mod shards, the tag {<sid>:<b>} (one bucket: {<sid>}).
 * CRC16("123456789") = 0x31c3 (12739): the check value of CRC16-XMODEM, and what CLUSTER KEYSLOT
 * answers for that key. */
START_TEST(test_buckets)
{
    char out[64], tag[64];
    size_t len;

    ck_assert_uint_eq(ekv_origin_crc16("123456789", 9), 0x31c3);
    ck_assert_uint_eq(ekv_keyspace_bucket("123456789", 9, 1), 0);
    ck_assert_uint_eq(ekv_keyspace_bucket("123456789", 9, 16), 12739 % 16);
    ck_assert_uint_eq(ekv_keyspace_bucket("123456789", 9, 1000), 739);
    ck_assert_uint_eq(ekv_keyspace_bucket("123456789", 9, 1024), 12739 % 1024);
    ck_assert_uint_eq(ekv_keyspace_bucket("", 0, 16), 0); /* CRC16 of nothing is 0 */

    len = ekv_keyspace_cache_key(out, "sid1", 4, 16, "123456789", 9);
    ck_assert_uint_eq(len, strlen("{sid1:3}:123456789"));
    ck_assert(memcmp(out, "{sid1:3}:123456789", len) == 0);
    len = ekv_keyspace_cache_key(out, "sid1", 4, 1000, "123456789", 9);
    ck_assert(memcmp(out, "{sid1:739}:123456789", len) == 0);
    /* the longest: 4 digits */
    len = ekv_keyspace_cache_key(out, "s", 1, 1024, "123456789", 9);
    ck_assert_uint_le(len, 1 + 9 + EKV_KS_CACHE_KEY_OVERHEAD);
    ck_assert(memcmp(out, "{s:451}:", 8) == 0);

    /* the item's slot is its bucket's tag's */
    ck_assert_uint_eq(ekv_keyspace_item_slot("sid1", 4, 16, "123456789", 9),
                      ekv_origin_keyslot("sid1:3", 6));
    ck_assert_uint_eq(ekv_keyspace_item_slot("sid1", 4, 1, "123456789", 9),
                      ekv_origin_keyslot("sid1", 4));
    len = ekv_ks_tag(tag, "sid1", 4, 16, 15);
    ck_assert(len == 7 && memcmp(tag, "sid1:15", 7) == 0);
    len = ekv_ks_tag(tag, "sid1", 4, 16, 0);
    ck_assert(len == 6 && memcmp(tag, "sid1:0", 6) == 0);

    /* 16 buckets are all used by a few hundred keys */
    {
        bool seen[16] = {false};
        unsigned n = 0;
        char key[16];

        for (unsigned i = 0; i < 200; i++) {
            snprintf(key, sizeof(key), "user:%u", i);
            seen[ekv_keyspace_bucket(key, strlen(key), 16)] = true;
        }
        for (unsigned b = 0; b < 16; b++)
            n += seen[b];
        ck_assert_uint_eq(n, 16);
    }
}
END_TEST

/* What a store's record says of its buckets. */
START_TEST(test_shards)
{
    static const struct {
        const char *resp;
        enum ekv_ks_outcome outcome;
        unsigned shards;
    } cases[] = {
        {"*2\r\n$1\r\na\r\n$2\r\n16\r\n", EKV_KS_OK, 16},
        {"*2\r\n$1\r\na\r\n$-1\r\n", EKV_KS_OK, 1},  /* made before buckets */
        {"*2\r\n$1\r\na\r\n$4\r\n1024\r\n", EKV_KS_OK, 1024},
        {"*2\r\n$-1\r\n$-1\r\n", EKV_KS_NO_STORE, 0},
        {"*2\r\n$-1\r\n$2\r\n16\r\n", EKV_KS_NO_STORE, 0},
        {"*2\r\n$1\r\na\r\n$1\r\n0\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"*2\r\n$1\r\na\r\n$4\r\n1025\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"*2\r\n$1\r\na\r\n$2\r\n-1\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"*2\r\n$1\r\na\r\n$3\r\nsix\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"*2\r\n$1\r\na\r\n:16\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"*1\r\n$1\r\na\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"$-1\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
        {"*3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\n1\r\n", EKV_KS_ORIGIN_PROTOCOL, 0},
    };

    for (size_t i = 0; i < EKV_ARRAY_LEN(cases); i++) {
        struct ekv_ks_result res;
        unsigned n = 99;
        redisReply *r = resp(cases[i].resp);

        ekv_ks_decode_shards(r, &res, &n);
        ck_assert_msg(res.outcome == cases[i].outcome, "case %zu: outcome %d", i,
                      (int)res.outcome);
        ck_assert_uint_eq(n, cases[i].shards);
        freeReplyObject(r);
    }
}
END_TEST

/* The table of what a keyspace learned: found again, grown, and never wrong. */
START_TEST(test_shards_table)
{
    struct ekv_keyspace *ks = ekv_keyspace_new(&(struct ekv_keyspace_opts){.ns = "edgekv:"});
    char sid[32];

    ck_assert_uint_eq(ekv_keyspace_store_shards(ks, "a", 1), 0);
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(sid, sizeof(sid), "store%u", i);
        ekv_ks_shards_learn(ks, sid, strlen(sid), 1 + i % EKV_KS_SHARDS_MAX);
    }
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(sid, sizeof(sid), "store%u", i);
        ck_assert_uint_eq(ekv_keyspace_store_shards(ks, sid, strlen(sid)),
                          1 + i % EKV_KS_SHARDS_MAX);
    }
    ck_assert_uint_eq(ekv_keyspace_store_shards(ks, "store", 5), 0);
    ck_assert_uint_eq(ekv_keyspace_store_shards(ks, "store50000", 10), 0);
    ekv_ks_shards_learn(ks, "store7", 6, 3); /* learned again: replaced, not doubled */
    ck_assert_uint_eq(ekv_keyspace_store_shards(ks, "store7", 6), 3);
    ekv_ks_shards_learn(ks, "x", 1, 0); /* not a count of buckets: ignored */
    ck_assert_uint_eq(ekv_keyspace_store_shards(ks, "x", 1), 0);
    ekv_keyspace_free(ks);
}
END_TEST

START_TEST(test_long_keys)
{
    char ns[600], key[1024];
    struct ekv_keyspace *ks;
    struct ekv_ks_key k;

    memset(ns, 'n', sizeof(ns) - 1);
    ns[sizeof(ns) - 1] = '\0';
    memset(key, 'k', sizeof(key));
    ks = ekv_keyspace_new(&(struct ekv_keyspace_opts){.ns = ns});
    ekv_ks_key_init(&k, ks, "i:{", "0123456789012345678901", 22, "}:", key, sizeof(key));
    ck_assert_ptr_ne(k.p, k.buf); /* longer than the inline buffer: allocated */
    ck_assert_uint_eq(k.len, strlen(ns) + 3 + 22 + 2 + sizeof(key));
    ck_assert_uint_eq(strlen(k.p), k.len);
    ck_assert(memcmp(k.p, ns, strlen(ns)) == 0);
    ekv_ks_key_clear(&k);
    ekv_keyspace_free(ks);
}
END_TEST

START_TEST(test_scripts_table)
{
    size_t n;
    struct ekv_origin_script *s = ekv_keyspace_scripts(&n);

    ck_assert_uint_eq(n, EKV_KS_SCRIPT_COUNT);
    for (size_t i = 0; i < EKV_KS_SCRIPT_COUNT; i++) {
        bool found = false;
        for (size_t j = 0; j < n; j++)
            found |= strcmp(s[j].name, ekv_ks_script_names[i]) == 0 && s[j].body != NULL;
        ck_assert_msg(found, "no script %s", ekv_ks_script_names[i]);
    }
    ekv_free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keyspace");
    TCase *dec = tcase_create("decode"), *lay = tcase_create("layout");

    tcase_add_test(dec, test_faults);
    tcase_add_test(dec, test_item_ok);
    tcase_add_test(dec, test_item_malformed);
    tcase_add_test(dec, test_exists);
    tcase_add_test(dec, test_shards);
    tcase_add_test(dec, test_put);
    tcase_add_test(dec, test_codes);
    tcase_add_test(dec, test_key_list);
    tcase_add_test(dec, test_stores);
    tcase_add_test(dec, test_resolve);
    tcase_add_test(dec, test_link);
    tcase_add_test(dec, test_links);
    suite_add_tcase(s, dec);
    tcase_add_test(lay, test_script_codes);
    tcase_add_test(lay, test_layout);
    tcase_add_test(lay, test_long_keys);
    tcase_add_test(lay, test_buckets);
    tcase_add_test(lay, test_shards_table);
    tcase_add_test(lay, test_scripts_table);
    suite_add_tcase(s, lay);
    return ekv_test_run_suite(s);
}
