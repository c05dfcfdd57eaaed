/* mailbox.c - a queue of closures run on one loop, fed from any thread (see mailbox.h). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "edgekv/alloc.h"
#include "edgekv/log.h"
#include "edgekv/mailbox.h"

struct ekv_mailbox {
    pthread_mutex_t lock;
    struct ekv_mailbox_msg *head, **tail;
    struct event *ev;
};

static void run(struct ekv_mailbox *mb)
{
    struct ekv_mailbox_msg *m;

    pthread_mutex_lock(&mb->lock);
    m = mb->head;
    mb->head = NULL;
    mb->tail = &mb->head;
    pthread_mutex_unlock(&mb->lock);
    while (m != NULL) {
        struct ekv_mailbox_msg *next = m->next; /* @fn may free the message */
        m->fn(m->arg);
        m = next;
    }
}

static void on_mail(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run(arg);
}

struct ekv_mailbox *ekv_mailbox_new(struct event_base *base)
{
    struct ekv_mailbox *mb = ekv_calloc(1, sizeof(*mb));

    pthread_mutex_init(&mb->lock, NULL);
    mb->tail = &mb->head;
    mb->ev = event_new(base, -1, 0, on_mail, mb);
    if (mb->ev == NULL)
        EKV_FATAL("cannot create a mailbox event");
    return mb;
}

void ekv_mailbox_free(struct ekv_mailbox *mb)
{
    if (mb == NULL)
        return;
    while (mb->head != NULL)
        run(mb);
    event_free(mb->ev);
    pthread_mutex_destroy(&mb->lock);
    ekv_free(mb);
}

void ekv_mailbox_post(struct ekv_mailbox *mb, struct ekv_mailbox_msg *msg, ekv_mailbox_fn *fn,
                      void *arg)
{
    bool was_empty;

    msg->next = NULL;
    msg->fn = fn;
    msg->arg = arg;
    pthread_mutex_lock(&mb->lock);
    was_empty = mb->head == NULL;
    *mb->tail = msg;
    mb->tail = &msg->next;
    pthread_mutex_unlock(&mb->lock);
    if (was_empty) /* thread-safe with evthread_use_pthreads(): wakes the loop */
        event_active(mb->ev, EV_TIMEOUT, 1);
}
