/* check_inval.c - the invalidation link (src/inval) against a real redis-server: tracked keys
 * written by any client reach it, keys outside the prefixes do not, FLUSHALL and every new
 * subscription flush, a killed pubsub connection comes back (with a flush), a silent Redis
 * (SIGSTOP) stops the link from being fresh within the staleness bound and it recovers after
 * SIGCONT, and an ACL user without the channel never makes the link live. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/inval.h"

#include "evloop.h"
#include "testutil.h"

static struct ekv_test_redis *redis;
static struct event_base *base;
static struct ekv_conf_origin addr;

struct seen {
    int keys, flushes;
    char last[256];
};

static void on_key(const char *key, size_t len, void *arg)
{
    struct seen *s = arg;

    s->keys++;
    snprintf(s->last, sizeof(s->last), "%.*s", (int)len, key);
}

static void on_flush(void *arg)
{
    ((struct seen *)arg)->flushes++;
}

static struct ekv_inval *inval_new(struct seen *s, uint64_t hb_ms, uint64_t stall_ms)
{
    static const char *const prefixes[] = {"edgekv:i:", "edgekv:s"};
    struct ekv_inval_opts o = {
        .addr = &addr,
        .prefixes = prefixes,
        .nprefixes = 2,
        .heartbeat_channel = "edgekv:heartbeat",
        .heartbeat_ms = hb_ms,
        .stall_ms = stall_ms,
        .timeout_ms = 500,
    };
    struct ekv_inval_hooks h = {.on_key = on_key, .on_flush = on_flush, .arg = s};

    return ekv_inval_new(base, &o, &h);
}

struct fresh_arg {
    struct ekv_inval *iv;
    uint64_t max_staleness;
    bool want;
};

static bool fresh_is(void *p)
{
    struct fresh_arg *a = p;

    return ekv_inval_fresh(a->iv, ekv_clock_now_ms(), a->max_staleness) == a->want;
}

static bool wait_fresh(struct ekv_inval *iv, bool want, unsigned ms)
{
    struct fresh_arg a = {iv, 3000, want};

    return ekv_test_loop_until_pred(base, fresh_is, &a, ms);
}

static void cmd(const char *fmt, const char *arg)
{
    char *r = ekv_test_redis_cmd(redis, fmt, arg);

    free(r);
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
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    memset(&addr, 0, sizeof(addr));
    addr.unix_path = redis->sock;
}

static void teardown(void)
{
    event_base_free(base);
    ekv_test_kill_strays();
}

START_TEST(test_keys_from_any_writer)
{
    struct seen s = {0};
    struct ekv_inval *iv = inval_new(&s, 200, 1000);
    int before;

    ck_assert(wait_fresh(iv, true, 3000));
    ck_assert_int_eq(s.flushes, 1); /* every new subscription starts with a flush */
    /* a write by another client, straight into Redis, under the item prefix */
    cmd("HSET edgekv:i:{store1}:user:1 v %s", "alice");
    before = s.keys;
    ck_assert(ekv_test_loop_until(base, &s.keys, 2000));
    ck_assert_int_eq(s.keys, before + 1);
    ck_assert_str_eq(s.last, "edgekv:i:{store1}:user:1");
    /* outside the prefixes: nothing; the store registry prefix: yes */
    cmd("SET other:%s x", "key");
    cmd("HSET edgekv:stores name %s", "sid");
    s.keys = 0;
    ck_assert(ekv_test_loop_until(base, &s.keys, 2000));
    ck_assert_str_eq(s.last, "edgekv:stores");
    /* FLUSHALL: a NIL message, everything goes */
    s.flushes = 0;
    cmd("FLUSHALL %s", "SYNC");
    ck_assert(ekv_test_loop_until(base, &s.flushes, 2000));
    ekv_inval_free(iv);
}
END_TEST

START_TEST(test_killed_link_comes_back_with_a_flush)
{
    struct seen s = {0};
    struct ekv_inval *iv = inval_new(&s, 200, 1000);
    struct ekv_inval_stats st;

    ck_assert(wait_fresh(iv, true, 3000));
    s.flushes = 0;
    cmd("CLIENT KILL TYPE %s", "pubsub");
    ck_assert(wait_fresh(iv, false, 2000)); /* noticed at once */
    ck_assert(wait_fresh(iv, true, 5000));  /* and back by itself */
    ck_assert_int_eq(s.flushes, 1);         /* with a flush before it was trusted again */
    ekv_inval_stats(iv, &st);
    ck_assert_uint_eq(st.losses, 1);
    /* still tracking after the reconnect */
    s.keys = 0;
    cmd("HSET edgekv:i:{s}:k v %s", "1");
    ck_assert(ekv_test_loop_until(base, &s.keys, 2000));
    ekv_inval_free(iv);
}
END_TEST

START_TEST(test_silent_redis_is_not_fresh)
{
    struct seen s = {0};
    struct ekv_inval *iv = inval_new(&s, 100, 600);
    uint64_t t0;
    int never = 0;

    ck_assert(wait_fresh(iv, true, 3000));
    ekv_test_loop_until(base, &never, 300);
    /* the fence keeps moving while Redis answers */
    ck_assert(ekv_inval_fresh(iv, ekv_clock_now_ms(), 300));
    ck_assert_int_eq(kill(redis->proc->pid, SIGSTOP), 0);
    t0 = ekv_test_now_ms();
    {
        struct fresh_arg a = {iv, 1000, false};
        ck_assert(ekv_test_loop_until_pred(base, fresh_is, &a, 3000));
    }
    /* within max-staleness (1 s here) plus a heartbeat period and some slack */
    ck_assert_uint_lt(ekv_test_now_ms() - t0, 1500);
    ck_assert_int_eq(kill(redis->proc->pid, SIGCONT), 0);
    ck_assert(wait_fresh(iv, true, 8000));
    ekv_inval_free(iv);
}
END_TEST

START_TEST(test_acl_without_channel_never_live)
{
    struct seen s = {0};
    struct ekv_inval *iv;
    struct ekv_inval_stats st;
    int never = 0;
    static char user[] = "nochan", pass[] = "pw";

    cmd("ACL SETUSER nochan on >pw ~* resetchannels +@all %s", "-debug");
    addr.user = user;
    addr.password = pass;
    iv = inval_new(&s, 200, 1000);
    ekv_test_loop_until(base, &never, 800);
    ck_assert(!ekv_inval_fresh(iv, ekv_clock_now_ms(), 3000));
    ekv_inval_stats(iv, &st);
    ck_assert(!st.live);
    ck_assert_ptr_nonnull(strstr(st.error, "NOPERM")); /* and says why */
    ekv_inval_free(iv);
    cmd("ACL DELUSER %s", "nochan");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("inval");
    TCase *tc = tcase_create("redis");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    tcase_add_unchecked_fixture(tc, start_redis, stop_redis);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_keys_from_any_writer);
    tcase_add_test(tc, test_killed_link_comes_back_with_a_flush);
    tcase_add_test(tc, test_silent_redis_is_not_fresh);
    tcase_add_test(tc, test_acl_without_channel_never_live);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
