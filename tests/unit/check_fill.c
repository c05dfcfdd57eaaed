/* check_fill.c - the coalescing protocol (fill.h): one leader per key, joiners answered on their
 * own worker's loop (never synchronously, each exactly once, with their own reference), the
 * result stored only if no invalidation poisoned the fill and no flush moved the epoch, failures
 * and stale answers handed through. Two "workers" are two event loops with a mailbox each, run
 * by the test's thread (the mailbox's cross-thread delivery is check_mailbox's business). */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "edgekv/cache.h"
#include "edgekv/fill.h"
#include "edgekv/mailbox.h"

#include "testutil.h"

#define NOW 1000

struct reader {
    struct ekv_fill_waiter w;
    int answers;
    struct ekv_cache_entry *e;
    bool stale;
    int fail;
};

static struct event_base *base[2];
static struct ekv_mailbox *mb[2];
static struct ekv_cache *cache;
static struct reader lead; /* a leader's waiter: never queued */

static void setup(void)
{
    struct ekv_cache_limits lim = {.max_bytes = 1 << 20, .nshards = 1, .seed = 7};

    ck_assert_int_eq(evthread_use_pthreads(), 0);
    for (int i = 0; i < 2; i++) {
        base[i] = event_base_new();
        ck_assert_ptr_nonnull(base[i]);
        mb[i] = ekv_mailbox_new(base[i]);
    }
    cache = ekv_cache_new(&lim);
    ck_assert_ptr_nonnull(cache);
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++) {
        ekv_mailbox_free(mb[i]);
        event_base_free(base[i]);
    }
    ekv_cache_free(cache);
}

static void on_answer(struct ekv_fill_waiter *w, struct ekv_cache_entry *e, bool stale, int fail)
{
    struct reader *rd = (struct reader *)(void *)((char *)w - offsetof(struct reader, w));

    rd->answers++;
    rd->e = e;
    rd->stale = stale;
    rd->fail = fail;
}

static void run_loops(void)
{
    for (int i = 0; i < 2; i++)
        event_base_loop(base[i], EVLOOP_NONBLOCK);
}

static struct ekv_cache_entry *entry(const char *key, const char *val, uint64_t expires,
                                     uint64_t item_expires)
{
    struct ekv_cache_item it = {
        .value = val,
        .value_len = strlen(val),
        .generation = 3,
        .fetched_ms = NOW,
        .expires_ms = expires,
        .item_expires_ms = item_expires,
    };

    return ekv_cache_entry_new(key, strlen(key), &it);
}

static enum ekv_fill_role begin(const char *key, bool join, struct reader *rd, int worker,
                                struct ekv_cache_entry **hit, struct ekv_cache_fill **fill,
                                uint64_t now)
{
    return ekv_fill_begin(cache, key, strlen(key), now, join, rd != NULL ? &rd->w : NULL,
                          mb[worker], on_answer, hit, fill);
}

START_TEST(test_lead_join_answer)
{
    struct reader a = {0}, b = {0};
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *fill, *f2;
    struct ekv_fill_joined joined;
    size_t len;

    ck_assert_int_eq(begin("k", true, &lead, 0, &hit, &fill, NOW), EKV_FILL_LEAD);
    ck_assert_ptr_nonnull(fill);
    /* two readers on two workers join the fill in flight */
    ck_assert_int_eq(begin("k", true, &a, 0, &hit, &f2, NOW), EKV_FILL_JOINED);
    ck_assert_int_eq(begin("k", true, &b, 1, &hit, &f2, NOW), EKV_FILL_JOINED);
    e = entry("k", "value", NOW + 10000, 0);
    ck_assert(ekv_fill_finish(cache, fill, e, NOW, &joined, NULL));
    ck_assert_ptr_nonnull(joined.list);
    ekv_fill_answer(&joined, e, false, 0);
    ck_assert_ptr_null(joined.list);
    ck_assert_int_eq(a.answers + b.answers, 0); /* never synchronous */
    run_loops();
    ck_assert_int_eq(a.answers, 1);
    ck_assert_int_eq(b.answers, 1);
    ck_assert_ptr_eq(a.e, e);
    ck_assert_ptr_eq(b.e, e);
    ck_assert(!a.stale);
    ck_assert(memcmp(ekv_cache_entry_value(b.e, &len), "value", 5) == 0);
    ekv_cache_entry_release(a.e); /* each its own reference */
    ekv_cache_entry_release(b.e);
    ekv_cache_entry_release(e);
    run_loops();
    ck_assert_int_eq(a.answers, 1); /* exactly once */
    /* stored: the next reader hits */
    ck_assert_int_eq(begin("k", true, &a, 0, &hit, &f2, NOW + 1), EKV_FILL_HIT);
    ck_assert_ptr_nonnull(hit);
    ekv_cache_entry_release(hit);
}
END_TEST

START_TEST(test_poisoned)
{
    struct reader a = {0}, c = {0};
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *fill, *f2, *f3;
    struct ekv_fill_joined joined;

    ck_assert_int_eq(begin("p", true, &lead, 0, &hit, &fill, NOW), EKV_FILL_LEAD);
    ck_assert_int_eq(begin("p", true, &a, 1, &hit, &f2, NOW), EKV_FILL_JOINED);
    /* a write lands while the origin read is in flight: the fill is poisoned... */
    ck_assert(ekv_cache_invalidate(cache, "p", 1));
    /* ...and a new reader does not join it: it leads a fill of its own */
    ck_assert_int_eq(begin("p", true, &c, 0, &hit, &f3, NOW), EKV_FILL_LEAD);
    e = entry("p", "old", NOW + 10000, 0);
    ck_assert(!ekv_fill_finish(cache, fill, e, NOW, &joined, NULL)); /* not stored */
    ekv_fill_answer(&joined, e, false, 0); /* but its joiner is answered */
    run_loops();
    ck_assert_int_eq(a.answers, 1);
    ck_assert_ptr_eq(a.e, e);
    ekv_cache_entry_release(a.e);
    ck_assert_int_eq(c.answers, 0);
    ekv_cache_entry_release(e);
    /* the second fill is current: its result is stored */
    e = entry("p", "new", NOW + 10000, 0);
    ck_assert(ekv_fill_finish(cache, f3, e, NOW, &joined, NULL));
    ck_assert_ptr_null(joined.list);
    ekv_fill_answer(&joined, e, false, 0);
    ekv_cache_entry_release(e);
}
END_TEST

START_TEST(test_flushed)
{
    struct reader a = {0};
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *fill, *f2;
    struct ekv_fill_joined joined;

    ck_assert_int_eq(begin("f", true, &lead, 0, &hit, &fill, NOW), EKV_FILL_LEAD);
    ck_assert_int_eq(begin("f", true, &a, 0, &hit, &f2, NOW), EKV_FILL_JOINED);
    ekv_cache_flush(cache); /* a new epoch: nothing from before is stored */
    e = entry("f", "v", NOW + 10000, 0);
    ck_assert(!ekv_fill_finish(cache, fill, e, NOW, &joined, NULL));
    ekv_fill_answer(&joined, e, false, 0);
    run_loops();
    ck_assert_int_eq(a.answers, 1);
    ekv_cache_entry_release(a.e);
    ekv_cache_entry_release(e);
}
END_TEST

START_TEST(test_failed_and_stale)
{
    struct reader a = {0}, b = {0};
    struct ekv_cache_entry *hit, *e, *stale = NULL;
    struct ekv_cache_fill *fill, *f2;
    struct ekv_fill_joined joined;

    /* a failed read: the joiners get the leader's failure code */
    ck_assert_int_eq(begin("x", true, &lead, 0, &hit, &fill, NOW), EKV_FILL_LEAD);
    ck_assert_int_eq(begin("x", true, &a, 1, &hit, &f2, NOW), EKV_FILL_JOINED);
    ck_assert(!ekv_fill_finish(cache, fill, NULL, NOW, &joined, &stale));
    ck_assert_ptr_null(stale); /* nothing was there before */
    ekv_fill_answer(&joined, NULL, true, 42);
    run_loops();
    ck_assert_int_eq(a.answers, 1);
    ck_assert_ptr_null(a.e);
    ck_assert_int_eq(a.fail, 42);

    /* an entry past its cache TTL whose item lives on: a failed refill may answer it stale */
    ck_assert_int_eq(begin("s", true, &lead, 0, &hit, &fill, NOW), EKV_FILL_LEAD);
    e = entry("s", "kept", NOW + 100, NOW + 100000);
    ck_assert(ekv_fill_finish(cache, fill, e, NOW, &joined, NULL));
    ekv_cache_entry_release(e);
    ck_assert_int_eq(begin("s", true, &lead, 0, &hit, &fill, NOW + 200), EKV_FILL_LEAD);
    ck_assert_int_eq(begin("s", true, &b, 0, &hit, &f2, NOW + 200), EKV_FILL_JOINED);
    ck_assert(!ekv_fill_finish(cache, fill, NULL, NOW + 200, &joined, &stale));
    ck_assert_ptr_nonnull(stale);
    ekv_fill_answer(&joined, stale, true, 0);
    run_loops();
    ck_assert_int_eq(b.answers, 1);
    ck_assert_ptr_eq(b.e, stale);
    ck_assert(b.stale);
    ekv_cache_entry_release(b.e);
    ekv_cache_entry_release(stale);
}
END_TEST

START_TEST(test_bypass_leads)
{
    struct reader a = {0};
    struct ekv_cache_entry *hit, *e;
    struct ekv_cache_fill *fill, *f2;
    struct ekv_fill_joined joined;

    ck_assert_int_eq(begin("b", true, &lead, 0, &hit, &fill, NOW), EKV_FILL_LEAD);
    /* a reader that wants the origin's answer does not join: it leads, replacing the fill */
    ck_assert_int_eq(begin("b", false, &a, 0, &hit, &f2, NOW), EKV_FILL_LEAD);
    ck_assert_ptr_ne(f2, fill);
    e = entry("b", "v", NOW + 10000, 0);
    ck_assert(!ekv_fill_finish(cache, fill, e, NOW, &joined, NULL)); /* replaced */
    ekv_fill_answer(&joined, e, false, 0);
    ck_assert(ekv_fill_finish(cache, f2, e, NOW, &joined, NULL));
    ekv_fill_answer(&joined, e, false, 0);
    run_loops();
    ck_assert_int_eq(a.answers, 0); /* it led: nobody answers it but itself */
    ekv_cache_entry_release(e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fill");
    TCase *tc = tcase_create("coalescing");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_lead_join_answer);
    tcase_add_test(tc, test_poisoned);
    tcase_add_test(tc, test_flushed);
    tcase_add_test(tc, test_failed_and_stale);
    tcase_add_test(tc, test_bypass_leads);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
