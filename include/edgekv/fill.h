/* fill.h - answering coalesced misses across worker threads. A miss joined to another worker's
 * fill (cache.h) must be answered on its own worker's loop; each worker has a mailbox, and the
 * fill's leader posts one message per waiter to the waiter's mailbox. Messages are intrusive
 * (embedded in the waiter), so posting never allocates. */
#ifndef EDGEKV_FILL_H
#define EDGEKV_FILL_H

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

#endif /* EDGEKV_FILL_H */
