/* mailbox.h - closures run on one event loop, posted from any thread: how one worker hands work
 * to another (fill.h answers coalesced readers on their own worker's loop with it). Each worker
 * has a mailbox; messages are intrusive (embedded in the object delivered), so posting never
 * allocates. */
#ifndef EDGEKV_MAILBOX_H
#define EDGEKV_MAILBOX_H

#include "edgekv/common.h"

struct event_base;
struct ekv_mailbox;

typedef void ekv_mailbox_fn(void *arg);

/** A message: embed it in the object to deliver; it must stay valid until @fn runs. */
struct ekv_mailbox_msg {
    struct ekv_mailbox_msg *next;
    ekv_mailbox_fn *fn;
    void *arg;
};

/** A mailbox whose messages run on @base's loop (libevent must use pthreads). Never NULL. */
struct ekv_mailbox *ekv_mailbox_new(struct event_base *base);
/** Runs the messages still queued (so every waiter is answered), then frees. On the loop's
 * thread, after the other threads have stopped posting. NULL is a no-op. */
void ekv_mailbox_free(struct ekv_mailbox *mb);
/** Queues @msg to run @fn(@arg) on the mailbox's loop thread, in posting order. Any thread;
 * never runs @fn synchronously. */
void ekv_mailbox_post(struct ekv_mailbox *mb, struct ekv_mailbox_msg *msg, ekv_mailbox_fn *fn,
                      void *arg);

#endif /* EDGEKV_MAILBOX_H */
