/* check_race.c - the fill/invalidation races of DESIGN.md "Coherence", made deterministic: the
 * real edgekv binary against a scripted fake Redis (tests/helpers/fakeredis.c) that holds an
 * origin read's reply while the test sends an invalidation on the other connection, holds the
 * confirmation of a new subscription, or drops the invalidation connection.
 *
 * Rules under test: an invalidation (or a NIL "flush everything" message) poisons the fill in
 * flight: its readers get the old value (they asked before the write) but it is not stored, new
 * readers do not join it, and the next read goes to the origin (rule 3). A fill sent before a
 * new subscription is confirmed never outlives the confirmation, and a message that arrives
 * before the confirmation does not make the link live early (rule 1). A message whose payload
 * cannot be understood flushes (never guesses). The invalidation connection's setup is the
 * documented chain, REDIRECT naming the connection itself.
 *
 * edgekv runs with one worker thread (one origin connection, so which connection a read uses is
 * known) and a long origin timeout (a held reply must not time out). */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apic.h"
#include "fakeredis.h"
#include "testutil.h"

#define TCASE_TIMEOUT 60
#define WAIT_MS 5000 /* generous: a slow (sanitizer, shared CPU) machine */
#define SID "aaaaaaaaaaaaaaaaaaaaaa"
#define RKEY "edgekv:i:{" SID "}:k"
#define PATH "/resources/stores/kv/" SID "/keys/k"

static struct fakeredis *fake;
static struct ekv_test_proc *pop;

/* Polls @cond (an expression) every 2 ms for at most @ms; fails the test with @what if it never
 * holds. */
#define WAIT_FOR(cond, ms, what)                                                                   \
    do {                                                                                           \
        uint64_t end_ = ekv_test_now_ms() + (ms);                                                  \
        while (!(cond)) {                                                                          \
            ck_assert_msg(ekv_test_now_ms() < end_, "timed out waiting for %s", what);             \
            ekv_test_sleep_ms(2);                                                                  \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- fixtures and helpers */

static struct fakeredis_stats stats(void)
{
    struct fakeredis_stats st;

    fakeredis_stats(fake, &st);
    return st;
}

static void wait_ready(void)
{
    WAIT_FOR(ekv_test_get_status(pop->port, "/readyz") == 200, WAIT_MS, "/readyz 200");
}

static void setup(void)
{
    const char *args[] = {"--origin",         NULL, "--threads",       "1",
                          "--origin-timeout", "30s", "--max-staleness", "4s",
                          NULL};

    fake = fakeredis_start();
    args[1] = fakeredis_origin(fake);
    pop = ekv_test_edgekv_startv(args);
    wait_ready();
    fakeredis_set(fake, RKEY, "v1", 1);
}

static void teardown(void)
{
    int status = 0;
    char *log = NULL;

    /* a clean exit on SIGTERM: in the sanitizer build, LeakSanitizer checks the race paths */
    if (fake != NULL) {
        fakeredis_hold_gets(fake, 0);
        fakeredis_release_gets(fake);
        fakeredis_hold_subscribe(fake, false);
        fakeredis_release_subscribe(fake);
    }
    if (pop != NULL && ekv_test_proc_signal(pop, SIGTERM) == 0) {
        status = ekv_test_proc_wait(pop, 10000);
        if (status != 0)
            log = ekv_test_proc_log(pop);
    }
    ekv_test_proc_free(pop);
    pop = NULL;
    fakeredis_stop(fake);
    fake = NULL;
    ekv_test_kill_strays();
    ck_assert_msg(status == 0, "edgekv exited with status %d on SIGTERM; its output:\n%s", status,
                  log);
    free(log);
}

/* The value of the sample @name (with its labels, if any) on /metrics, or -1. */
static long long metric(const char *name)
{
    double v = apic_metric(pop->port, name);

    ck_assert_msg(v != APIC_METRIC_UNREACHABLE, "/metrics did not answer 200");
    return (long long)v;
}

/* Sends GET PATH on a new connection and returns it without reading the answer. */
static struct ekv_test_conn *send_get(void)
{
    struct ekv_test_conn *c = ekv_test_connect(pop->port);

    ck_assert_int_eq(ekv_test_sendf(c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", PATH), 0);
    return c;
}

/* Reads the answer to send_get(): expects 200 and @body; returns its Cache-Status (static). */
static const char *finish_get(struct ekv_test_conn *c, const char *body)
{
    static char cs[8][128];
    static int n;
    char *out = cs[n++ % 8];
    struct ekv_test_resp r = {0};
    const char *h;

    ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
    ck_assert_msg(r.status == 200, "GET: status %d: %.*s", r.status, (int)r.body_len, r.body);
    ck_assert_msg(r.body_len == strlen(body) && memcmp(r.body, body, r.body_len) == 0,
                  "GET: body '%.*s', expected '%s'", (int)r.body_len, r.body, body);
    h = ekv_test_resp_header(&r, "Cache-Status");
    ck_assert_ptr_nonnull(h);
    snprintf(out, 128, "%s", h);
    ekv_test_resp_free(&r);
    ekv_test_close(c);
    return out;
}

static const char *get(const char *body)
{
    return finish_get(send_get(), body);
}

static bool is_hit(const char *cs)
{
    return strstr(cs, "; hit") != NULL;
}

static bool is_stored(const char *cs)
{
    return strstr(cs, "; stored") != NULL;
}

/* ---------------------------------------------------------------- tests */

/*
 * The setup chain and the heartbeat, as DESIGN.md documents them.
 *
 * Regression test: the heartbeat once SUBSCRIBEd a channel named by stack garbage (server.c
 * handed ekv_inval_new() a pointer to a local buffer); see check_coherence.c
 * test_acl_least_privilege for what that broke.
 */
START_TEST(test_setup_sequence)
{
    static const char *const want[] = {
        "CLIENT ID\n",
        "CLIENT TRACKING OFF\n",
        ("CLIENT TRACKING ON BCAST PREFIX edgekv:i: PREFIX edgekv:stores PREFIX edgekv:links: "
         "REDIRECT "), /* one element: clang's -Wstring-concatenation wants the parentheses */
    };
    struct fakeredis_stats st;
    char *log, *p;

    WAIT_FOR(stats().heartbeats >= 2, WAIT_MS, "two heartbeats");
    st = stats();
    ck_assert_uint_eq(st.inval_conns, 1);
    ck_assert_uint_eq(st.tracking_on, 1);
    ck_assert_msg(st.redirect_ok, "CLIENT TRACKING ON ... REDIRECT does not name the connection");
    ck_assert_msg(st.unknown == 0, "edgekv sent a command the fake does not know: %s",
                  st.last_unknown);
    log = fakeredis_inval_log(fake, 0);
    ck_assert_ptr_nonnull(log);
    p = log;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_msg(strncmp(p, want[i], strlen(want[i])) == 0, "setup step %zu: got:\n%s", i,
                      log);
        p = strchr(p, '\n') + 1;
    }
    {
        static const char sub[] = "SUBSCRIBE __redis__:invalidate\nSUBSCRIBE edgekv:heartbeat\n";
        ck_assert_msg(strncmp(p, sub, sizeof(sub) - 1) == 0, "subscription and heartbeat:\n%s",
                      log);
    }
    free(log);
}
END_TEST

/* Hold an origin read (old value), invalidate the key on the other connection (or flush
 * everything with a NIL message), release the read: the old value answers the waiting request
 * but is not stored, and the next read goes to the origin. */
static void poisoned_fill(bool nil_flush)
{
    const char *name =
        nil_flush ? "edgekv_invalidation_flushes_total" : "edgekv_invalidations_total";
    struct ekv_test_conn *c1;
    const char *cs;
    long long before;

    fakeredis_hold_gets(fake, 1);
    c1 = send_get();
    WAIT_FOR(stats().held_gets == 1, WAIT_MS, "the origin read");
    /* the write lands in Redis after the read was served: its invalidation follows */
    fakeredis_set(fake, RKEY, "v2", 2);
    before = metric(name);
    fakeredis_invalidate(fake, nil_flush ? NULL : RKEY, false);
    WAIT_FOR(metric(name) > before, WAIT_MS, "edgekv to take the invalidation");
    fakeredis_release_gets(fake);
    cs = finish_get(c1, "v1");
    ck_assert_msg(!is_stored(cs), "a poisoned fill was stored (Cache-Status: %s)", cs);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), 1);
    /* the next read goes to the origin and stores the new value, the one after is a hit */
    cs = get("v2");
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), 2);
    ck_assert_msg(is_stored(cs), "Cache-Status: %s", cs);
    cs = get("v2");
    ck_assert_msg(is_hit(cs), "Cache-Status: %s", cs);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), 2);
}

START_TEST(test_fill_poisoned_by_invalidation)
{
    poisoned_fill(false);
}
END_TEST

START_TEST(test_fill_poisoned_by_flush_message)
{
    poisoned_fill(true);
}
END_TEST

/* A reader that joined the fill before the invalidation gets the old value with it; a reader
 * that comes after the invalidation does not join the poisoned fill: it reads the origin. */
START_TEST(test_poisoned_fill_not_joined)
{
    struct ekv_test_conn *c1, *c2, *c3;
    const char *cs1, *cs2, *cs3;
    long long collapsed = metric("edgekv_cache_lookups_total{result=\"collapsed\"}");
    long long before;

    ck_assert_int_ge(collapsed, 0);
    fakeredis_hold_gets(fake, 1);
    c1 = send_get();
    WAIT_FOR(stats().held_gets == 1, WAIT_MS, "the origin read");
    c2 = send_get();
    WAIT_FOR(metric("edgekv_cache_lookups_total{result=\"collapsed\"}") == collapsed + 1, WAIT_MS,
             "the second reader to join the fill");
    fakeredis_set(fake, RKEY, "v2", 2);
    before = metric("edgekv_invalidations_total");
    fakeredis_invalidate(fake, RKEY, false);
    WAIT_FOR(metric("edgekv_invalidations_total") > before, WAIT_MS, "the invalidation");
    c3 = send_get();
    /* its own origin read (queued behind the held reply on the one origin connection) */
    WAIT_FOR(fakeredis_gets(fake, RKEY) == 2, WAIT_MS, "a new origin read for the third reader");
    fakeredis_release_gets(fake);
    cs1 = finish_get(c1, "v1");
    cs2 = finish_get(c2, "v1");
    cs3 = finish_get(c3, "v2");
    ck_assert_msg(!is_stored(cs1), "poisoned fill stored: %s", cs1);
    ck_assert_msg(strstr(cs2, "collapsed") != NULL, "joined reader: %s", cs2);
    ck_assert_msg(strstr(cs3, "collapsed") == NULL && is_stored(cs3), "third reader: %s", cs3);
    cs1 = get("v2");
    ck_assert_msg(is_hit(cs1), "Cache-Status: %s", cs1);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), 2);
}
END_TEST

/*
 * The item read is three commands (src/api/read.c), and Redis may run another client's write, or
 * expire the item, between its PTTL and its HMGET: PTTL then says "no such key" while HMGET finds
 * an item. The client gets the item as HMGET read it, and it is not cached (its TTL is unknown):
 * the next read goes to the origin again. A TTL that PTTL does report bounds the cached entry.
 */
START_TEST(test_read_crossing_a_write)
{
    unsigned gets = fakeredis_gets(fake, RKEY);
    const char *cs, *ttl;

    fakeredis_pttl(fake, RKEY, -2);
    cs = get("v1");
    ck_assert_msg(!is_hit(cs) && !is_stored(cs), "stored with no TTL known: %s", cs);
    cs = get("v1");
    ck_assert_msg(!is_hit(cs) && !is_stored(cs), "served from the cache: %s", cs);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), gets + 2);
    fakeredis_pttl(fake, RKEY, 5000);
    cs = get("v1");
    ck_assert_msg(is_stored(cs), "an item with a TTL: %s", cs);
    cs = get("v1");
    ttl = strstr(cs, "ttl=");
    ck_assert_msg(is_hit(cs) && ttl != NULL && atoi(ttl + 4) >= 0 && atoi(ttl + 4) <= 5,
                  "a hit within the item's 5 s: %s", cs);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), gets + 3);
}
END_TEST

/*
 * A read that finds no item asks, in a second round trip, whether the store exists: when that
 * fails (here Redis refuses EXISTS, as for an ACL user without it) the client gets a 502, and
 * nothing is cached (the next read asks the origin again); then the 404 says "key".
 */
START_TEST(test_store_check_refused)
{
    struct ekv_test_resp r = {0};
    unsigned gets;

    fakeredis_set(fake, RKEY, NULL, 0);
    fakeredis_refuse(fake, "EXISTS");
    gets = fakeredis_gets(fake, RKEY);
    for (int i = 0; i < 2; i++) {
        apic_req(pop->port, "GET", PATH, NULL, NULL, 0, &r);
        ck_assert_msg(r.status == 502, "status %d: %.*s", r.status, (int)r.body_len, r.body);
        ekv_test_resp_free(&r);
    }
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), gets + 2);
    fakeredis_refuse(fake, NULL);
    ck_assert_int_eq(apic_req(pop->port, "GET", PATH, NULL, NULL, 0, &r), 404);
    ck_assert_ptr_nonnull(memmem(r.body, r.body_len, "key not found", 13));
    ekv_test_resp_free(&r);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), gets + 3);
}
END_TEST

/*
 * A fill sent while the link was live; the link drops (the write's invalidation is lost with
 * it); the fill's reply arrives while the new subscription is not confirmed yet; then the
 * confirmation. Nothing from that fill may be served as a hit after the confirmation: the next
 * read goes to the origin. With @early, an invalidation message also arrives ahead of the
 * confirmation: it must not make the link live early (reads meanwhile go to the origin and store
 * nothing).
 */
static void fill_across_resubscribe(bool early)
{
    struct ekv_test_conn *c1;
    const char *cs;
    unsigned gets;

    fakeredis_hold_gets(fake, 1);
    c1 = send_get();
    WAIT_FOR(stats().held_gets == 1, WAIT_MS, "the origin read");
    fakeredis_hold_subscribe(fake, true);
    fakeredis_set(fake, RKEY, "v2", 2);
    ck_assert_uint_eq(fakeredis_kill_inval(fake), 1);
    WAIT_FOR(stats().inval_conns == 2 && stats().sub_pending == 1, WAIT_MS,
             "a new subscription (held)");
    ck_assert_int_eq(ekv_test_get_status(pop->port, "/readyz"), 503);
    fakeredis_release_gets(fake);
    cs = finish_get(c1, "v1"); /* asked before the write: the old value is a correct answer */
    fprintf(stderr, "race: a fill answered while the link was down: Cache-Status: %s\n", cs);
    if (early) {
        long long before = metric("edgekv_invalidations_total");
        fakeredis_invalidate(fake, RKEY, true);
        WAIT_FOR(metric("edgekv_invalidations_total") > before, WAIT_MS, "the early message");
        /* not live yet: the read goes to the origin, and nothing is stored */
        ck_assert_int_eq(ekv_test_get_status(pop->port, "/readyz"), 503);
        gets = fakeredis_gets(fake, RKEY);
        cs = get("v2");
        ck_assert_uint_eq(fakeredis_gets(fake, RKEY), gets + 1);
        ck_assert_msg(!is_hit(cs) && !is_stored(cs), "link not live yet: Cache-Status %s", cs);
    }
    fakeredis_hold_subscribe(fake, false);
    fakeredis_release_subscribe(fake);
    wait_ready();
    gets = fakeredis_gets(fake, RKEY);
    cs = get("v2");
    ck_assert_msg(!is_hit(cs), "a fill from before the new subscription was served: %s", cs);
    ck_assert_uint_eq(fakeredis_gets(fake, RKEY), gets + 1);
    cs = get("v2");
    ck_assert_msg(is_hit(cs), "caching again after the confirmation: %s", cs);
}

START_TEST(test_fill_across_resubscribe)
{
    fill_across_resubscribe(false);
}
END_TEST

START_TEST(test_invalidation_before_confirmation)
{
    fill_across_resubscribe(true);
}
END_TEST

/* A message on the invalidation channel whose payload is neither a key array, a key nor NIL:
 * edgekv cannot tell what changed, so it must forget everything. */
START_TEST(test_unknown_payload_flushes)
{
    static const char msg[] = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n:42\r\n";
    long long before;
    const char *cs;

    get("v1");
    cs = get("v1");
    ck_assert_msg(is_hit(cs), "Cache-Status: %s", cs);
    fakeredis_set(fake, RKEY, "v2", 2);
    before = metric("edgekv_invalidation_flushes_total");
    fakeredis_push_raw(fake, msg, sizeof(msg) - 1, false);
    WAIT_FOR(metric("edgekv_invalidation_flushes_total") > before, WAIT_MS, "the flush");
    cs = get("v2");
    ck_assert_msg(!is_hit(cs), "Cache-Status: %s", cs);
    ck_assert_int_eq(ekv_test_get_status(pop->port, "/healthz"), 200);
}
END_TEST

/* Replies of shapes Redis never sends on the subscribed connection: an empty array, one element,
 * a kind that is an integer or an array, a bare integer, a message whose channel is no string.
 * hiredis 0.14's own subscribe handling asserted on several of them and aborted the process
 * (async.c: "reply->elements >= 2"). Each must only drop the invalidation connection (what it
 * meant cannot be known): the link comes back with a flush, so the next read is a miss, and the
 * process serves on. */
START_TEST(test_odd_messages_drop_the_link)
{
    static const char *const odd[] = {
        "*0\r\n",
        "*1\r\n$7\r\nmessage\r\n",
        "*1\r\n$9\r\nsubscribe\r\n",
        "*3\r\n:1\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
        "*3\r\n*1\r\n:1\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
        ":7\r\n",
        "*3\r\n$7\r\nmessage\r\n:5\r\n*0\r\n",
    };

    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        long long losses;
        const char *cs;

        get("v1");
        cs = get("v1");
        ck_assert_msg(is_hit(cs), "message %zu: Cache-Status: %s", i, cs);
        losses = metric("edgekv_invalidation_link_losses_total");
        fakeredis_push_raw(fake, odd[i], strlen(odd[i]), false);
        WAIT_FOR(metric("edgekv_invalidation_link_losses_total") > losses, WAIT_MS,
                 "the link to be dropped");
        wait_ready();
        cs = get("v1");
        ck_assert_msg(!is_hit(cs), "message %zu: served from before the loss: %s", i, cs);
        ck_assert_int_eq(ekv_test_get_status(pop->port, "/healthz"), 200);
    }
}
END_TEST

/* The next @cmd is answered with the raw reply @raw; @request (a whole HTTP request) must then
 * get a 502, and the process must serve on. */
static void expect_502(const char *cmd, const char *raw, const char *request, size_t i)
{
    struct ekv_test_resp r = {0};
    struct ekv_test_conn *c = ekv_test_connect(pop->port);

    fakeredis_answer_raw(fake, cmd, raw, strlen(raw));
    ck_assert_int_eq(ekv_test_send_str(c, request), 0);
    ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
    ck_assert_msg(r.status == 502, "%s reply %zu: status %d, body '%.*s'", cmd, i, r.status,
                  (int)r.body_len, r.body);
    ekv_test_resp_free(&r);
    ekv_test_close(c);
    ck_assert_int_eq(ekv_test_get_status(pop->port, "/healthz"), 200);
}

/* An item read whose HMGET reply is not what Redis sends (the value an array, the fields
 * integers, too few fields, not an array): 502, never an invented 200 (it used to answer 200
 * with an empty body). The process serves on, and the next read gets the item. */
START_TEST(test_odd_item_replies_are_502)
{
    static const char *const odd[] = {
        "*4\r\n*1\r\n$1\r\nx\r\n$-1\r\n$1\r\n1\r\n$1\r\n0\r\n",
        "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n",
        "*2\r\n$2\r\nv1\r\n$-1\r\n",
        ":5\r\n",
        "*4\r\n$2\r\nv1\r\n$-1\r\n$3\r\nabc\r\n$1\r\n0\r\n", /* generation not a number */
    };

    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        /* no-cache: the read goes to the origin */
        expect_502("HMGET", odd[i],
                   "GET " PATH " HTTP/1.1\r\nHost: t\r\nCache-Control: no-cache\r\n\r\n", i);
        get("v1"); /* the item itself, from the origin or (after the first) the cache */
    }
}
END_TEST

/* A key listing whose script reply is not what the script returns (an integer, an array of
 * integers, a page without its cursor): 502, never an invented 200 {"data":[]}. */
START_TEST(test_odd_listing_replies_are_502)
{
    static const char *const odd[] = {
        ":5\r\n",
        "*2\r\n:1\r\n:2\r\n",
        "*1\r\n*1\r\n:7\r\n",
        "$3\r\nabc\r\n",
        "*3\r\n:0\r\n:0\r\n:7\r\n",             /* OK, a name that is an integer */
        "*3\r\n:0\r\n:5\r\n$1\r\na\r\n",          /* OK, "more" neither 0 nor 1 */
        "*1\r\n:0\r\n",                           /* OK without "more" */
        "*3\r\n:0\r\n:0\r\n*1\r\n$1\r\na\r\n",      /* OK, a name that is an array */
    };

    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        expect_502("EVALSHA", odd[i],
                   "GET /resources/stores/kv/" SID "/keys HTTP/1.1\r\nHost: t\r\n\r\n", i);
}
END_TEST

/* The requests one connection has in flight are bounded (PIPELINE_DEPTH in server_int.h, 32):
 * 200 GETs pipelined in one write while the origin holds its answers start 32 origin reads and
 * no more (the rest wait unparsed, however long the origin takes); once the origin answers,
 * every one is answered, in order. */
#define DEPTH 32
#define NPIPELINED 200

START_TEST(test_pipeline_depth_bounded)
{
    struct ekv_test_conn *c = ekv_test_connect(pop->port);
    char *block = malloc(NPIPELINED * 128);
    size_t len = 0;
    unsigned gets0 = stats().gets;

    ck_assert_ptr_nonnull(block);
    fakeredis_hold_gets(fake, NPIPELINED);
    for (int i = 0; i < NPIPELINED; i++) /* distinct keys: no read joins another */
        len += (size_t)sprintf(block + len,
                               "GET /resources/stores/kv/" SID "/keys/p%d HTTP/1.1\r\nHost: t\r\n\r\n",
                               i);
    ck_assert_int_eq(ekv_test_send(c, block, len), 0);
    WAIT_FOR(stats().gets - gets0 >= DEPTH, WAIT_MS, "the first reads");
    ekv_test_sleep_ms(300); /* a chance to read ahead further, which it must not take */
    ck_assert_uint_eq(stats().gets - gets0, DEPTH);
    fakeredis_hold_gets(fake, 0); /* the reads to come are answered at once */
    fakeredis_release_gets(fake);
    for (int i = 0; i < NPIPELINED; i++) {
        struct ekv_test_resp r = {0};

        ck_assert_msg(ekv_test_read_final(c, &r, 0) == EKV_TEST_OK, "response %d: %s", i, c->err);
        ck_assert_msg(r.status == 404, "response %d: %d", i, r.status);
        ekv_test_resp_free(&r);
    }
    ck_assert_uint_eq(stats().gets - gets0, NPIPELINED);
    ekv_test_close(c);
    free(block);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("race");
    TCase *tc = tcase_create("fake-redis");

    ekv_test_edgekv_bin();
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_setup_sequence);
    tcase_add_test(tc, test_fill_poisoned_by_invalidation);
    tcase_add_test(tc, test_fill_poisoned_by_flush_message);
    tcase_add_test(tc, test_poisoned_fill_not_joined);
    tcase_add_test(tc, test_read_crossing_a_write);
    tcase_add_test(tc, test_store_check_refused);
    tcase_add_test(tc, test_fill_across_resubscribe);
    tcase_add_test(tc, test_invalidation_before_confirmation);
    tcase_add_test(tc, test_unknown_payload_flushes);
    tcase_add_test(tc, test_odd_messages_drop_the_link);
    tcase_add_test(tc, test_odd_item_replies_are_502);
    tcase_add_test(tc, test_odd_listing_replies_are_502);
    tcase_add_test(tc, test_pipeline_depth_bounded);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
