/* check_origin.c - the origin module (src/origin) against a real redis-server: commands and
 * scripts, the async contract (never synchronous, exactly once, cancel), NOSCRIPT recovery,
 * deadlines on a stalled Redis, failing fast while Redis is down, reconnecting by itself,
 * AUTH with an ACL user and SELECT. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/origin.h"

#include "evloop.h"
#include "testutil.h"

static struct ekv_test_redis *redis;
static struct event_base *base;
static struct ekv_conf_origin addr;
static struct ekv_origin_script scripts[] = {
    {"echo", "return ARGV[1]", ""},
    {"get", "return redis.call('GET', KEYS[1])", ""},
};

struct result {
    int calls;
    int status;
    int type;
    char str[256];
    uint64_t at_ms;
};

static void on_result(int status, const struct redisReply *r, void *arg)
{
    struct result *res = arg;
    const redisReply *reply = (const redisReply *)r;

    res->calls++;
    res->status = status;
    res->at_ms = ekv_test_now_ms();
    if (reply != NULL) {
        res->type = reply->type;
        if (reply->str != NULL) {
            size_t n = EKV_MIN(reply->len, sizeof(res->str) - 1);
            memcpy(res->str, reply->str, n); /* binary: may hold NULs */
            res->str[n] = '\0';
        }
        else if (reply->type == REDIS_REPLY_INTEGER)
            snprintf(res->str, sizeof(res->str), "%lld", reply->integer);
    }
}

/* Runs the loop until @done becomes true or @ms pass; returns whether @done became true. */
static bool run_until(const int *done, unsigned ms)
{
    return ekv_test_loop_until(base, done, ms);
}

struct state_log {
    int ups, downs;
};

static void on_state(bool up, void *arg)
{
    struct state_log *s = arg;

    if (up)
        s->ups++;
    else
        s->downs++;
}

static struct ekv_origin *origin_new(uint64_t timeout_ms)
{
    struct ekv_origin_opts o = {
        .addr = &addr,
        .timeout_ms = timeout_ms,
        .scripts = scripts,
        .nscripts = EKV_ARRAY_LEN(scripts),
        .label = "test",
    };

    return ekv_origin_new(base, &o);
}

static bool wait_connected(struct ekv_origin *o, unsigned ms)
{
    uint64_t end = ekv_test_now_ms() + ms;
    int never = 0;

    while (!ekv_origin_connected(o) && ekv_test_now_ms() < end)
        run_until(&never, 20);
    return ekv_origin_connected(o);
}

static void start_redis(void)
{
    redis = ekv_test_redis_start();
}

static void stop_redis(void)
{
    ekv_test_redis_stop(redis);
}

static void setup(void)
{
    char *r;

    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    memset(&addr, 0, sizeof(addr));
    addr.unix_path = redis->sock;
    r = ekv_test_redis_cmd(redis, "FLUSHALL");
    free(r);
}

static void teardown(void)
{
    event_base_free(base);
    ekv_test_kill_strays();
}

START_TEST(test_cmd_round_trip)
{
    struct ekv_origin *o = origin_new(1000);
    struct result set = {0}, get = {0}, miss = {0};
    const char *sv[] = {"SET", "k1", "v\0x"};
    const size_t svl[] = {3, 2, 3};
    const char *gv[] = {"GET", "k1"}, *mv[] = {"GET", "nope"};

    ck_assert(wait_connected(o, 3000));
    ekv_origin_cmd(o, on_result, &set, 3, sv, svl);
    ekv_origin_cmd(o, on_result, &get, 2, gv, NULL);
    ekv_origin_cmd(o, on_result, &miss, 2, mv, NULL);
    ck_assert_int_eq(set.calls + get.calls + miss.calls, 0); /* never synchronous */
    ck_assert(run_until(&miss.calls, 3000));
    ck_assert_int_eq(set.calls, 1);
    ck_assert_int_eq(set.status, EKV_OK);
    ck_assert_str_eq(set.str, "OK");
    ck_assert_int_eq(get.type, REDIS_REPLY_STRING);
    ck_assert_int_eq(memcmp(get.str, "v\0x", 3), 0); /* binary safe */
    ck_assert_int_eq(miss.type, REDIS_REPLY_NIL);
    ck_assert_uint_eq(ekv_origin_pending(o), 0);
    ekv_origin_free(o);
}
END_TEST

START_TEST(test_error_reply_is_ok_status)
{
    struct ekv_origin *o = origin_new(1000);
    struct result r = {0};
    const char *v[] = {"INCR", "s"};
    char *x = ekv_test_redis_cmd(redis, "SET s notanumber");

    free(x);
    ck_assert(wait_connected(o, 3000));
    ekv_origin_cmd(o, on_result, &r, 2, v, NULL);
    ck_assert(run_until(&r.calls, 3000));
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_int_eq(r.type, REDIS_REPLY_ERROR);
    ekv_origin_free(o);
}
END_TEST

START_TEST(test_scripts_and_noscript_recovery)
{
    struct ekv_origin *o = origin_new(1000);
    struct result a = {0}, b = {0}, c = {0};
    const char *args[] = {"hello"}, *keys[] = {"sk"};
    char *x = ekv_test_redis_cmd(redis, "SET sk stored");
    char sha[41];

    free(x);
    ekv_sha1_hex("abc", 3, sha);
    ck_assert_str_eq(sha, "a9993e364706816aba3e25717850c26c9cd0d89d"); /* FIPS 180 vector */
    ck_assert(wait_connected(o, 3000));
    ekv_origin_eval(o, 0, on_result, &a, 0, 1, args, NULL);
    ekv_origin_eval(o, 1, on_result, &b, 1, 1, keys, NULL);
    ck_assert(run_until(&b.calls, 3000));
    ck_assert_str_eq(a.str, "hello");
    ck_assert_str_eq(b.str, "stored");
    /* the SHA-1 the origin computed is the one Redis uses */
    x = ekv_test_redis_cmd(redis, "SCRIPT EXISTS %s", scripts[0].sha);
    ck_assert_str_eq(x, "1");
    free(x);
    /* after SCRIPT FLUSH, EVALSHA fails with NOSCRIPT: the origin reloads and retries */
    x = ekv_test_redis_cmd(redis, "SCRIPT FLUSH");
    free(x);
    ekv_origin_eval(o, 0, on_result, &c, 0, 1, args, NULL);
    ck_assert(run_until(&c.calls, 3000));
    ck_assert_int_eq(c.status, EKV_OK);
    ck_assert_int_eq(c.type, REDIS_REPLY_STRING);
    ck_assert_str_eq(c.str, "hello");
    ekv_origin_free(o);
}
END_TEST

START_TEST(test_cancel)
{
    struct ekv_origin *o = origin_new(1000);
    struct result canceled = {0}, after = {0};
    const char *v[] = {"PING"};

    ck_assert(wait_connected(o, 3000));
    ekv_origin_cancel(ekv_origin_cmd(o, on_result, &canceled, 1, v, NULL));
    ekv_origin_cmd(o, on_result, &after, 1, v, NULL);
    ck_assert(run_until(&after.calls, 3000));
    ck_assert_int_eq(canceled.calls, 0);
    ck_assert_str_eq(after.str, "PONG");
    ck_assert_uint_eq(ekv_origin_pending(o), 0);
    ekv_origin_free(o);
}
END_TEST

/* A stalled Redis (CLIENT PAUSE): the command times out at its deadline, the connection is
 * reset, and once Redis answers again the origin reconnects by itself. */
START_TEST(test_timeout_and_recovery)
{
    struct ekv_origin *o = origin_new(300);
    struct state_log st = {0};
    struct result r = {0}, later = {0};
    const char *v[] = {"GET", "k"};
    uint64_t t0;
    char *x;

    ekv_origin_set_state_cb(o, on_state, &st);
    ck_assert(wait_connected(o, 3000));
    x = ekv_test_redis_cmd(redis, "CLIENT PAUSE 1200 ALL");
    free(x);
    t0 = ekv_test_now_ms();
    ekv_origin_cmd(o, on_result, &r, 2, v, NULL);
    ck_assert(run_until(&r.calls, 3000));
    ck_assert_int_eq(r.status, EKV_ETIMEDOUT);
    ck_assert_uint_ge(r.at_ms - t0, 250);
    ck_assert_uint_lt(r.at_ms - t0, 900);
    ck_assert_int_eq(st.downs, 1);
    ck_assert(!ekv_origin_connected(o));
    ck_assert(wait_connected(o, 5000)); /* after the pause */
    ck_assert_int_ge(st.ups, 1);
    ekv_origin_cmd(o, on_result, &later, 2, v, NULL);
    ck_assert(run_until(&later.calls, 3000));
    ck_assert_int_eq(later.status, EKV_OK);
    ekv_origin_free(o);
}
END_TEST

/* Redis gone: commands fail fast (next loop turn, not after a timeout); when a Redis is there
 * again the origin reconnects on its own. */
START_TEST(test_down_fails_fast_then_reconnects)
{
    struct ekv_test_redis *r2 = ekv_test_redis_start();
    struct ekv_origin *o;
    struct state_log st = {0};
    struct result lost = {0}, fast = {0}, back = {0};
    const char *v[] = {"PING"};
    uint64_t t0;

    addr.unix_path = r2->sock;
    o = origin_new(2000);
    ekv_origin_set_state_cb(o, on_state, &st);
    ck_assert(wait_connected(o, 3000));
    ekv_test_redis_stop(r2);
    /* the loss is noticed */
    {
        int never = 0;
        uint64_t end = ekv_test_now_ms() + 3000;
        while (ekv_origin_connected(o) && ekv_test_now_ms() < end)
            run_until(&never, 20);
    }
    ck_assert(!ekv_origin_connected(o));
    ck_assert_int_eq(st.downs, 1);
    t0 = ekv_test_now_ms();
    ekv_origin_cmd(o, on_result, &fast, 1, v, NULL);
    ck_assert_int_eq(fast.calls, 0); /* not synchronous even when failing */
    ck_assert(run_until(&fast.calls, 3000));
    ck_assert_int_eq(fast.status, EKV_ECLOSED);
    ck_assert_uint_lt(fast.at_ms - t0, 200);
    (void)lost;
    /* a Redis appears at the (borrowed, re-read on every connect) address */
    addr.unix_path = redis->sock;
    ck_assert(wait_connected(o, 5000));
    ck_assert_int_eq(st.ups, 2);
    ekv_origin_cmd(o, on_result, &back, 1, v, NULL);
    ck_assert(run_until(&back.calls, 3000));
    ck_assert_str_eq(back.str, "PONG");
    ekv_origin_free(o);
}
END_TEST

/* Freeing the origin answers what is in flight, synchronously, with EKV_ECLOSED. */
START_TEST(test_free_answers_pending)
{
    struct ekv_origin *o = origin_new(5000);
    struct result r = {0};
    const char *v[] = {"GET", "k"};
    char *x;
    int never = 0;

    ck_assert(wait_connected(o, 3000));
    x = ekv_test_redis_cmd(redis, "CLIENT PAUSE 500 ALL");
    free(x);
    ekv_origin_cmd(o, on_result, &r, 2, v, NULL);
    run_until(&never, 50); /* sent, not answered */
    ck_assert_int_eq(r.calls, 0);
    ck_assert_uint_eq(ekv_origin_pending(o), 1);
    ekv_origin_free(o);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.status, EKV_ECLOSED);
    ekv_test_sleep_ms(500);
}
END_TEST

START_TEST(test_acl_user_and_select)
{
    struct ekv_origin *o;
    struct result set = {0};
    const char *v[] = {"SET", "dbkey", "in-db-3"};
    char *x = ekv_test_redis_cmd(redis, "ACL SETUSER edge on >s3cret ~* &* +@all");

    static char user[] = "edge", wrong[] = "wrong", right[] = "s3cret";

    free(x);
    addr.user = user;
    addr.password = wrong;
    o = origin_new(1000);
    {
        int never = 0;
        run_until(&never, 300);
    }
    ck_assert(!ekv_origin_connected(o)); /* AUTH refused: never up */
    ekv_origin_free(o);

    addr.password = right;
    addr.db = 3;
    o = origin_new(1000);
    ck_assert(wait_connected(o, 3000));
    ekv_origin_cmd(o, on_result, &set, 3, v, NULL);
    ck_assert(run_until(&set.calls, 3000));
    ck_assert_str_eq(set.str, "OK");
    x = ekv_test_redis_cmd(redis, "GET dbkey"); /* db 0: not there */
    ck_assert_str_eq(x, "(nil)");
    free(x);
    x = ekv_test_redis_cmd(redis, "SWAPDB 0 3");
    free(x);
    x = ekv_test_redis_cmd(redis, "GET dbkey");
    ck_assert_str_eq(x, "in-db-3");
    free(x);
    ekv_origin_free(o);
    x = ekv_test_redis_cmd(redis, "ACL DELUSER edge");
    free(x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("origin");
    TCase *tc = tcase_create("redis");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    tcase_add_unchecked_fixture(tc, start_redis, stop_redis);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cmd_round_trip);
    tcase_add_test(tc, test_error_reply_is_ok_status);
    tcase_add_test(tc, test_scripts_and_noscript_recovery);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_timeout_and_recovery);
    tcase_add_test(tc, test_down_fails_fast_then_reconnects);
    tcase_add_test(tc, test_free_answers_pending);
    tcase_add_test(tc, test_acl_user_and_select);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
