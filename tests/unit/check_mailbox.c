/* check_mailbox.c - mailboxes: messages posted from other threads run on the owner's loop, in
 * order, never synchronously, and none is lost (also when the mailbox is freed). */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "edgekv/mailbox.h"

#include "evloop.h"
#include "testutil.h"

#define PER_THREAD 20000
#define THREADS 3

struct note {
    struct ekv_mailbox_msg msg;
    int thread, seq;
};

static pthread_t loop_thread;
static int last_seq[THREADS];
static int received, in_order = 1;

static void on_note(void *arg)
{
    struct note *n = arg;

    ck_assert(pthread_equal(pthread_self(), loop_thread));
    if (n->seq != last_seq[n->thread] + 1)
        in_order = 0;
    last_seq[n->thread] = n->seq;
    received++;
}

struct poster {
    struct ekv_mailbox *mb;
    struct note *notes;
    int thread;
};

static void *post_all(void *p)
{
    struct poster *a = p;

    for (int i = 0; i < PER_THREAD; i++) {
        a->notes[i] = (struct note){.thread = a->thread, .seq = i + 1};
        ekv_mailbox_post(a->mb, &a->notes[i].msg, on_note, &a->notes[i]);
    }
    return NULL;
}

START_TEST(test_cross_thread_in_order)
{
    struct event_base *base;
    struct ekv_mailbox *mb;
    struct poster p[THREADS];
    pthread_t t[THREADS];
    int want = THREADS * PER_THREAD;

    ck_assert_int_eq(evthread_use_pthreads(), 0);
    base = event_base_new();
    mb = ekv_mailbox_new(base);
    loop_thread = pthread_self();
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct poster){mb, calloc(PER_THREAD, sizeof(struct note)), i};
        pthread_create(&t[i], NULL, post_all, &p[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(received, 0); /* nothing ran outside the loop */
    {
        struct note self = {.thread = 0, .seq = PER_THREAD + 1};
        ekv_mailbox_post(mb, &self.msg, on_note, &self);
        ck_assert_int_eq(received, 0); /* never synchronous, even from the loop's thread */
        while (received < want + 1 && event_base_loop(base, EVLOOP_ONCE) == 0)
            ;
    }
    ck_assert_int_eq(received, want + 1);
    ck_assert(in_order);
    ekv_mailbox_free(mb);
    event_base_free(base);
    for (int i = 0; i < THREADS; i++)
        free(p[i].notes);
}
END_TEST

START_TEST(test_free_runs_pending)
{
    struct event_base *base = event_base_new();
    struct ekv_mailbox *mb = ekv_mailbox_new(base);
    struct note n[3] = {{.thread = 1, .seq = 1}, {.thread = 1, .seq = 2}, {.thread = 1, .seq = 3}};

    loop_thread = pthread_self();
    received = 0;
    last_seq[1] = 0;
    for (int i = 0; i < 3; i++)
        ekv_mailbox_post(mb, &n[i].msg, on_note, &n[i]);
    ekv_mailbox_free(mb); /* every waiter is still answered */
    ck_assert_int_eq(received, 3);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc = tcase_create("mailbox");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cross_thread_in_order);
    tcase_add_test(tc, test_free_runs_pending);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
