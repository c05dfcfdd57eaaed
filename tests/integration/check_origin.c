/* check_origin.c - the origin module (src/origin) against a real redis-server: commands,
 * scripts and pipelines, the async contract (never synchronous, exactly once, cancel), NOSCRIPT
 * recovery, errors inside a pipeline, deadlines on a stalled Redis, failing fast while Redis is
 * down, the connection lost mid-pipeline, reconnecting by itself, AUTH with an ACL user and
 * SELECT, and what the observer is told. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/origin.h"

#include "evloop.h"
#include "fakeredis.h"
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

/* A reply, rendered: "str", "+STATUS", "-FIRSTWORD" (errors), ":42", "nil", "[a,b]". */
static void dump(const redisReply *r, char *out, size_t cap)
{
    size_t n = strlen(out);

    if (n + 1 >= cap)
        return;
    switch (r->type) {
    case REDIS_REPLY_STRING:
        snprintf(out + n, cap - n, "%.*s", (int)r->len, r->str);
        break;
    case REDIS_REPLY_STATUS:
        snprintf(out + n, cap - n, "+%s", r->str);
        break;
    case REDIS_REPLY_ERROR:
        snprintf(out + n, cap - n, "-%.*s", (int)strcspn(r->str, " "), r->str);
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(out + n, cap - n, ":%lld", r->integer);
        break;
    case REDIS_REPLY_NIL:
        snprintf(out + n, cap - n, "nil");
        break;
    case REDIS_REPLY_ARRAY:
        snprintf(out + n, cap - n, "[");
        for (size_t i = 0; i < r->elements; i++) {
            if (i > 0)
                snprintf(out + strlen(out), cap - strlen(out), ",");
            dump(r->element[i], out, cap);
        }
        snprintf(out + strlen(out), cap - strlen(out), "]");
        break;
    default:
        snprintf(out + n, cap - n, "?%d", r->type);
    }
}

/* on_result() plus the whole reply, rendered by dump(). */
struct tx_result {
    int calls;
    int status;
    char dump[512];
    long len1; /* the length of element 1, if a string */
};

static void on_tx(int status, const struct redisReply *r, void *arg)
{
    struct tx_result *res = arg;

    res->calls++;
    res->status = status;
    res->dump[0] = '\0';
    if (r != NULL)
        dump((const redisReply *)r, res->dump, sizeof(res->dump));
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 1 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        res->len1 = (long)r->element[1]->len;
}

/* What the observer was told, last. */
struct observed {
    int calls;
    enum ekv_origin_kind kind;
    size_t id;
    int status;
    bool error_reply;
    int errors; /* calls with error_reply */
};

static void on_observe(enum ekv_origin_kind kind, size_t id, int status, bool error_reply,
                       uint64_t latency_us, void *arg)
{
    struct observed *ob = arg;

    (void)latency_us;
    ob->calls++;
    ob->kind = kind;
    ob->id = id;
    ob->status = status;
    ob->error_reply = error_reply;
    ob->errors += error_reply;
}

#define TX(...) {(int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
                 (const char *[]){__VA_ARGS__}, NULL}

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

/* A pipeline: one op, one callback with an array of the commands' replies in order, of every
 * shape (statuses, strings binary or not, nils, integers, arrays empty or not), wherever in the
 * pipeline they come (all but the last are copied), never synchronous; a canceled one is never
 * answered; the observer sees the caller's tag. */
START_TEST(test_pipeline_round_trip)
{
    struct ekv_origin *o = origin_new(1000);
    struct tx_result r = {0}, r2 = {0}, canceled = {0}, after = {0};
    struct observed ob = {0};
    static const char bin[] = "b\0n";
    const char *sv[] = {"SET", "tx:bin", bin};
    const size_t svl[] = {3, 6, 3};
    struct ekv_origin_argv cmds[] = {
        TX("SET", "tx:k", "val"),
        TX("HMGET", "tx:h", "v", "m", "g"),
        TX("PTTL", "tx:h"),
        TX("EXISTS", "tx:nothing"),
    };
    struct ekv_origin_argv cmds2[] = {
        {3, sv, svl},
        TX("GET", "tx:bin"),
        TX("LRANGE", "tx:nolist", "0", "-1"),
        TX("GET", "tx:nokey"),
    };
    struct ekv_origin_argv one[] = {TX("PING")};
    char *x = ekv_test_redis_cmd(redis, "HSET tx:h v hello g 7");

    free(x);
    ekv_origin_set_observer(o, on_observe, &ob);
    ck_assert(wait_connected(o, 3000));
    ekv_origin_pipeline(o, 42, on_tx, &r, EKV_ARRAY_LEN(cmds), cmds);
    ck_assert_int_eq(r.calls, 0); /* never synchronous */
    ck_assert_uint_eq(ekv_origin_pending(o), 1); /* one op for the whole pipeline */
    ekv_origin_pipeline(o, 41, on_tx, &r2, EKV_ARRAY_LEN(cmds2), cmds2);
    ekv_origin_cancel(ekv_origin_pipeline(o, 43, on_tx, &canceled, 1, one));
    ekv_origin_pipeline(o, 44, on_tx, &after, 1, one);
    ck_assert(run_until(&after.calls, 3000));
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_str_eq(r.dump, "[+OK,[hello,nil,7],:-1,:0]");
    ck_assert_int_eq(r2.calls, 1);
    ck_assert_int_eq(r2.status, EKV_OK);
    ck_assert_int_eq(r2.len1, 3); /* "b\0n", copied whole */
    ck_assert_str_eq(r2.dump, "[+OK,b,[],nil]");
    ck_assert_int_eq(canceled.calls, 0);
    ck_assert_int_eq(after.status, EKV_OK);
    ck_assert_str_eq(after.dump, "[+PONG]");
    ck_assert_uint_eq(ekv_origin_pending(o), 0);
    /* the canceled one is not observed either */
    ck_assert_int_eq(ob.calls, 3);
    ck_assert_int_eq(ob.kind, EKV_ORIGIN_PIPELINE);
    ck_assert_uint_eq(ob.id, 44);
    ck_assert(!ob.error_reply);
    /* the binary value went through whole (one allocation per string, NULs included) */
    x = ekv_test_redis_cmd(redis, "STRLEN tx:bin");
    ck_assert_str_eq(x, "3");
    free(x);
    ekv_origin_free(o);
}
END_TEST

/* Errors inside a pipeline: a command Redis runs and fails (WRONGTYPE), one it refuses (wrong
 * arity, or an ACL user without HMGET) are error elements of the answer, first, in the middle or
 * last, and the observer hears of them. Either way the connection stays in step: the next
 * command and the next pipeline get their own answers. */
START_TEST(test_pipeline_errors)
{
    static char user[] = "nohmget", pw[] = "pw";
    struct ekv_origin *o = origin_new(1000);
    struct tx_result wrongtype = {0}, arity = {0}, acl = {0}, next = {0}, tx = {0};
    struct observed ob = {0};
    struct result get = {0};
    struct ekv_origin_argv wt[] = {TX("HMGET", "tx:s", "v"), TX("PTTL", "tx:s")};
    struct ekv_origin_argv bad[] = {TX("PTTL", "tx:s"), TX("HMGET", "tx:h"), TX("EXISTS", "tx:s")};
    struct ekv_origin_argv read[] = {TX("PTTL", "tx:h"), TX("EXISTS", "tx:s"),
                                     TX("HMGET", "tx:h", "v", "g")};
    const char *gv[] = {"GET", "tx:s"};
    char *x = ekv_test_redis_cmd(redis, "SET tx:s str");

    free(x);
    x = ekv_test_redis_cmd(redis, "HSET tx:h v hello g 7");
    free(x);
    ekv_origin_set_observer(o, on_observe, &ob);
    ck_assert(wait_connected(o, 3000));
    ekv_origin_pipeline(o, 1, on_tx, &wrongtype, EKV_ARRAY_LEN(wt), wt);
    ekv_origin_pipeline(o, 2, on_tx, &arity, EKV_ARRAY_LEN(bad), bad);
    ekv_origin_cmd(o, on_result, &get, 2, gv, NULL);
    ck_assert(run_until(&get.calls, 3000));
    ck_assert_int_eq(wrongtype.status, EKV_OK);
    ck_assert_str_eq(wrongtype.dump, "[-WRONGTYPE,:-1]");
    ck_assert_int_eq(ob.errors, 2); /* the observer heard of both error elements */
    ck_assert_int_eq(arity.calls, 1);
    ck_assert_int_eq(arity.status, EKV_OK);
    ck_assert_str_eq(arity.dump, "[:-1,-ERR,:1]");
    ck_assert_str_eq(get.str, "str");
    ekv_origin_pipeline(o, 3, on_tx, &next, EKV_ARRAY_LEN(read), read);
    ck_assert(run_until(&next.calls, 3000));
    ck_assert_int_eq(next.calls, 1);
    ck_assert_str_eq(next.dump, "[:-1,:1,[hello,7]]");
    ck_assert_int_eq(ob.calls, 4);
    ck_assert_int_eq(ob.errors, 2);
    ck_assert(ekv_origin_connected(o));
    ekv_origin_free(o);

    /* an ACL user without HMGET: Redis refuses that command alone */
    x = ekv_test_redis_cmd(redis, "ACL SETUSER nohmget on >pw ~* &* +@all -hmget");
    ck_assert_str_eq(x, "OK");
    free(x);
    addr.user = user;
    addr.password = pw;
    memset(&ob, 0, sizeof(ob));
    o = origin_new(1000);
    ekv_origin_set_observer(o, on_observe, &ob);
    ck_assert(wait_connected(o, 3000));
    ekv_origin_pipeline(o, 5, on_tx, &acl, EKV_ARRAY_LEN(read), read);
    ck_assert(run_until(&acl.calls, 3000));
    ck_assert_int_eq(acl.status, EKV_OK);
    ck_assert_str_eq(acl.dump, "[:-1,:1,-NOPERM]");
    ck_assert_int_eq(ob.kind, EKV_ORIGIN_PIPELINE);
    ck_assert_uint_eq(ob.id, 5);
    ck_assert(ob.error_reply);
    memset(&get, 0, sizeof(get));
    ekv_origin_cmd(o, on_result, &get, 2, gv, NULL);
    ekv_origin_pipeline(o, 6, on_tx, &tx, 1, read);
    ck_assert(run_until(&tx.calls, 3000));
    ck_assert_str_eq(get.str, "str");
    ck_assert_str_eq(tx.dump, "[:-1]");
    ck_assert_int_eq(acl.calls, 1);
    ekv_origin_free(o);
    x = ekv_test_redis_cmd(redis, "ACL DELUSER nohmget");
    free(x);
}
END_TEST

/* The connection killed mid-pipeline (the first command answered, the write behind it held by
 * CLIENT PAUSE WRITE): the callback gets EKV_ECLOSED exactly once (the copied first reply is
 * freed: valgrind), a pipeline sent while the origin is down fails fast (never synchronously),
 * and the origin comes back. */
START_TEST(test_pipeline_connection_lost)
{
    struct ekv_origin *o = origin_new(5000);
    struct state_log st = {0};
    struct tx_result lost = {0}, fast = {0}, back = {0};
    struct ekv_origin_argv cmds[] = {TX("GET", "tx:w"), TX("SET", "tx:w", "1"), TX("GET", "tx:w")};
    int never = 0;
    uint64_t t0;
    char *x;

    x = ekv_test_redis_cmd(redis, "SET tx:w 0");
    free(x);
    ekv_origin_set_state_cb(o, on_state, &st);
    ck_assert(wait_connected(o, 3000));
    x = ekv_test_redis_cmd(redis, "CLIENT PAUSE 3000 WRITE");
    ck_assert_str_eq(x, "OK");
    free(x);
    ekv_origin_pipeline(o, 0, on_tx, &lost, EKV_ARRAY_LEN(cmds), cmds);
    run_until(&never, 100); /* sent; the first GET answered, the write held */
    ck_assert_int_eq(lost.calls, 0);
    ck_assert_uint_eq(ekv_origin_pending(o), 1);
    x = ekv_test_redis_cmd(redis, "CLIENT KILL TYPE normal SKIPME yes");
    ck_assert_int_ge(atoi(x), 1); /* ours (and a lingering one of an earlier test, maybe) */
    free(x);
    ck_assert(run_until(&lost.calls, 3000));
    ck_assert_int_eq(lost.status, EKV_ECLOSED);
    ck_assert_uint_eq(ekv_origin_pending(o), 0);
    ck_assert_int_eq(st.downs, 1);
    t0 = ekv_test_now_ms();
    ekv_origin_pipeline(o, 0, on_tx, &fast, EKV_ARRAY_LEN(cmds), cmds);
    ck_assert_int_eq(fast.calls, 0);
    ck_assert(run_until(&fast.calls, 3000));
    ck_assert_int_eq(fast.status, EKV_ECLOSED);
    ck_assert_uint_lt(ekv_test_now_ms() - t0, 200); /* at once, not after a deadline */
    x = ekv_test_redis_cmd(redis, "CLIENT UNPAUSE");
    free(x);
    x = ekv_test_redis_cmd(redis, "GET tx:w"); /* the held write never ran */
    ck_assert_str_eq(x, "0");
    free(x);
    ck_assert(wait_connected(o, 5000));
    ekv_origin_pipeline(o, 0, on_tx, &back, EKV_ARRAY_LEN(cmds), cmds);
    ck_assert(run_until(&back.calls, 3000));
    ck_assert_str_eq(back.dump, "[0,+OK,1]");
    run_until(&never, 100);
    ck_assert_int_eq(lost.calls, 1); /* exactly once, also after the reconnect */
    ck_assert_int_eq(fast.calls, 1);
    ekv_origin_free(o);
}
END_TEST

/* A stalled Redis: the pipeline times out at its deadline, once; the connection is reset (its
 * late replies never reach anybody) and the next pipeline is answered. */
START_TEST(test_pipeline_timeout)
{
    struct ekv_origin *o = origin_new(300);
    struct tx_result r = {0}, later = {0};
    struct ekv_origin_argv cmds[] = {TX("PTTL", "tx:k"), TX("EXISTS", "tx:k")};
    int never = 0;
    uint64_t t0;
    char *x;

    ck_assert(wait_connected(o, 3000));
    x = ekv_test_redis_cmd(redis, "CLIENT PAUSE 800 ALL");
    free(x);
    t0 = ekv_test_now_ms();
    ekv_origin_pipeline(o, 0, on_tx, &r, EKV_ARRAY_LEN(cmds), cmds);
    ck_assert(run_until(&r.calls, 3000));
    ck_assert_int_eq(r.status, EKV_ETIMEDOUT);
    ck_assert_uint_ge(ekv_test_now_ms() - t0, 250);
    ck_assert_uint_eq(ekv_origin_pending(o), 0);
    ck_assert(wait_connected(o, 5000));
    ekv_origin_pipeline(o, 0, on_tx, &later, EKV_ARRAY_LEN(cmds), cmds);
    ck_assert(run_until(&later.calls, 3000));
    ck_assert_str_eq(later.dump, "[:-2,:0]");
    run_until(&never, 100);
    ck_assert_int_eq(r.calls, 1);
    ekv_origin_free(o);
}
END_TEST

/* Many ops queued in one loop turn (more than are written eagerly at once): each is answered
 * with its own reply, in the order sent, never synchronously. */
struct seq_result {
    struct result r;
    int idx;
    int *next;     /* the index the next answer must carry */
    bool in_order; /* it did */
};

static void on_seq(int status, const struct redisReply *r, void *arg)
{
    struct seq_result *sr = arg;

    sr->in_order = sr->idx == (*sr->next)++;
    on_result(status, r, &sr->r);
}

START_TEST(test_many_in_one_turn)
{
    enum { N = 100 };
    struct ekv_origin *o = origin_new(3000);
    static struct seq_result res[N];
    char args[N][16];
    int next = 0;

    memset(res, 0, sizeof(res));
    ck_assert(wait_connected(o, 3000));
    for (int i = 0; i < N; i++) {
        const char *argv[] = {"ECHO", args[i]};
        snprintf(args[i], sizeof(args[i]), "v%d", i);
        res[i].idx = i;
        res[i].next = &next;
        ekv_origin_cmd(o, on_seq, &res[i], 2, argv, NULL);
        ck_assert_int_eq(res[i].r.calls, 0);
    }
    ck_assert_uint_eq(ekv_origin_pending(o), N);
    ck_assert(run_until(&res[N - 1].r.calls, 3000));
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "v%d", i);
        ck_assert_int_eq(res[i].r.calls, 1);
        ck_assert_int_eq(res[i].r.status, EKV_OK);
        ck_assert_str_eq(res[i].r.str, want);
        ck_assert_msg(res[i].in_order, "op %d answered out of order", i);
    }
    ck_assert_uint_eq(ekv_origin_pending(o), 0);
    ekv_origin_free(o);
}
END_TEST

/* Redis dropped the connection and the origin has not noticed yet: ops queued in one turn are
 * written at once into a dead socket. Each is answered exactly once, with EKV_ECLOSED, never
 * synchronously; the connection comes back and serves the next command. */
START_TEST(test_eager_write_to_dead_connection)
{
    enum { N = 40 };
    struct ekv_origin *o = origin_new(3000);
    static struct result res[N];
    struct result back = {0};
    const char *argv[] = {"ECHO", "x"};
    int never = 0;
    char *x;

    memset(res, 0, sizeof(res));
    ck_assert(wait_connected(o, 3000));
    x = ekv_test_redis_cmd(redis, "CLIENT KILL TYPE normal SKIPME yes");
    ck_assert_int_ge(atoi(x), 1);
    free(x);
    ekv_test_sleep_ms(50); /* the close has reached our socket; our loop has not run */
    for (int i = 0; i < N; i++) {
        ekv_origin_cmd(o, on_result, &res[i], 2, argv, NULL);
        ck_assert_int_eq(res[i].calls, 0);
    }
    ck_assert(run_until(&res[N - 1].calls, 3000));
    run_until(&never, 100);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i].calls, 1);
        ck_assert_int_eq(res[i].status, EKV_ECLOSED);
    }
    ck_assert(wait_connected(o, 5000));
    ekv_origin_cmd(o, on_result, &back, 2, argv, NULL);
    ck_assert(run_until(&back.calls, 3000));
    ck_assert_int_eq(back.status, EKV_OK);
    ck_assert_str_eq(back.str, "x");
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

/* Replies Redis never sends, from a scripted fake Redis: an array announced with 2^31-1 elements
 * (hiredis's default reply objects would try to reserve 16 GiB for it; here the connection is
 * dropped at once) and a reply cut short (half read when the deadline passes: the connection
 * must be reset, not left waiting for the rest forever). Each command is answered once, the
 * link comes back by itself, and the next command gets its real reply. */
START_TEST(test_odd_replies_reset_the_connection)
{
    static const char huge[] = "*2147483647\r\n";
    static const char cut[] = "*2\r\n$1\r\nv\r\n"; /* one element of two */
    struct fakeredis *fake = fakeredis_start();
    struct tx_result r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    const char *argv[] = {"HMGET", "k", "v"};
    struct ekv_origin *o;
    int never = 0;
    uint64_t t0;

    addr.unix_path = (char *)fakeredis_origin(fake) + strlen("unix://");
    fakeredis_set(fake, "k", "v", 1);
    o = origin_new(300);
    ck_assert(wait_connected(o, 3000));

    fakeredis_answer_raw(fake, "HMGET", huge, sizeof(huge) - 1);
    t0 = ekv_test_now_ms();
    ekv_origin_cmd(o, on_tx, &r1, 3, argv, NULL);
    ck_assert(run_until(&r1.calls, 3000));
    ck_assert_int_eq(r1.status, EKV_ECLOSED);
    ck_assert_uint_lt(ekv_test_now_ms() - t0, 250); /* at once, not at the deadline */
    ck_assert(wait_connected(o, 5000));
    ekv_origin_cmd(o, on_tx, &r2, 3, argv, NULL);
    ck_assert(run_until(&r2.calls, 3000));
    ck_assert_int_eq(r2.status, EKV_OK);
    ck_assert_str_eq(r2.dump, "[v]");

    fakeredis_answer_raw(fake, "HMGET", cut, sizeof(cut) - 1);
    t0 = ekv_test_now_ms();
    ekv_origin_cmd(o, on_tx, &r3, 3, argv, NULL);
    ck_assert(run_until(&r3.calls, 3000));
    ck_assert_int_eq(r3.status, EKV_ETIMEDOUT);
    ck_assert_uint_ge(ekv_test_now_ms() - t0, 250);
    ck_assert(wait_connected(o, 5000));
    ekv_origin_cmd(o, on_tx, &r4, 3, argv, NULL);
    ck_assert(run_until(&r4.calls, 3000));
    ck_assert_int_eq(r4.status, EKV_OK);
    ck_assert_str_eq(r4.dump, "[v]");
    run_until(&never, 100);
    ck_assert_int_eq(r1.calls + r2.calls + r3.calls + r4.calls, 4); /* each exactly once */
    ekv_origin_free(o);
    fakeredis_stop(fake);
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
    tcase_add_test(tc, test_pipeline_round_trip);
    tcase_add_test(tc, test_pipeline_errors);
    tcase_add_test(tc, test_pipeline_connection_lost);
    tcase_add_test(tc, test_pipeline_timeout);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_many_in_one_turn);
    tcase_add_test(tc, test_eager_write_to_dead_connection);
    tcase_add_test(tc, test_timeout_and_recovery);
    tcase_add_test(tc, test_down_fails_fast_then_reconnects);
    tcase_add_test(tc, test_free_answers_pending);
    tcase_add_test(tc, test_acl_user_and_select);
    tcase_add_test(tc, test_odd_replies_reset_the_connection);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
