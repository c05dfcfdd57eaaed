/* fill.c - coalesced misses (fill.h): the leader/joiner protocol around the cache's fill
 * placeholders, and the cross-thread answers to joined readers through their mailboxes. */
#include "config.h"

#include <stddef.h>

#include "edgekv/fill.h"

enum ekv_fill_role ekv_fill_begin(struct ekv_cache *cache, const char *key, size_t len,
                                  uint64_t now_ms, bool join, struct ekv_fill_waiter *w,
                                  struct ekv_mailbox *mb, ekv_fill_answer_cb *cb,
                                  struct ekv_cache_entry **hit, struct ekv_cache_fill **fill)
{
    *hit = NULL;
    *fill = NULL;
    if (w != NULL) { /* set before the cache can hand the waiter to another thread's leader */
        w->mailbox = mb;
        w->cb = cb;
        w->e = NULL;
        w->stale = false;
        w->fail = 0;
    }
    switch (ekv_cache_lookup(cache, key, len, now_ms, join ? 0 : EKV_CACHE_NO_JOIN, hit, fill,
                             w != NULL ? &w->cw : NULL)) {
    case EKV_CACHE_HIT:
        return EKV_FILL_HIT;
    case EKV_CACHE_JOINED:
        return EKV_FILL_JOINED;
    case EKV_CACHE_LEAD:
        return EKV_FILL_LEAD;
    default:
        *fill = NULL;
        return EKV_FILL_ALONE;
    }
}

bool ekv_fill_finish(struct ekv_cache *cache, struct ekv_cache_fill *fill,
                     struct ekv_cache_entry *store, uint64_t now_ms, struct ekv_fill_joined *joined,
                     struct ekv_cache_entry **stale)
{
    joined->list = NULL;
    if (store != NULL && stale != NULL)
        *stale = NULL;
    return ekv_cache_fill_finish(cache, fill, store, now_ms, &joined->list,
                                 store == NULL ? stale : NULL);
}

/* On the joined reader's own loop. */
static void deliver(void *arg)
{
    struct ekv_fill_waiter *w = arg;
    struct ekv_cache_entry *e = w->e;

    w->e = NULL; /* the callee's reference from here on */
    w->cb(w, e, w->stale, w->fail);
}

void ekv_fill_answer(struct ekv_fill_joined *joined, struct ekv_cache_entry *e, bool stale,
                     int fail)
{
    struct ekv_cache_waiter *cw = joined->list;

    joined->list = NULL;
    while (cw != NULL) {
        struct ekv_fill_waiter *w =
            (struct ekv_fill_waiter *)(void *)((char *)cw - offsetof(struct ekv_fill_waiter, cw));
        struct ekv_cache_waiter *next = cw->next; /* @w may be freed once posted */

        if (e != NULL)
            ekv_cache_entry_ref(e);
        w->e = e;
        w->stale = stale;
        w->fail = fail;
        ekv_mailbox_post(w->mailbox, &w->msg, deliver, w);
        cw = next;
    }
}
