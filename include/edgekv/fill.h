/* fill.h - coalesced misses. Of the readers that miss the same key at once, on any worker, one
 * leads: it reads the origin while the others join its fill. When the leader finishes, the
 * result is stored only if the fill is still current (no invalidation poisoned it, no flush
 * moved the epoch: cache.h keeps the placeholders and decides), and every joined reader is
 * answered on its own worker's loop, through its mailbox (mailbox.h), whatever the outcome.
 * What to store and what a failed read may answer (stale-if-error) stay the caller's policy.
 *
 * The waiter is embedded in the caller's reader (no allocation on a miss), so this header needs
 * the complete types of the cache's waiter and the mailbox's message. */
#ifndef EDGEKV_FILL_H
#define EDGEKV_FILL_H

#include "edgekv/common.h"

#include "edgekv/cache.h"
#include "edgekv/mailbox.h"

struct ekv_fill_waiter;

/**
 * A joined reader's answer, run on the loop of the mailbox it joined with, never before the
 * leader's ekv_fill_answer() has returned: @e is a new reference the callee owns (release it),
 * or NULL when the fill failed, with the leader's @fail code; @stale: @e is a copy past its
 * cache TTL, answered for stale-if-error.
 */
typedef void ekv_fill_answer_cb(struct ekv_fill_waiter *w, struct ekv_cache_entry *e, bool stale,
                                int fail);

/** A reader that may join a fill: embed it in the reader, which must stay valid until @cb has
 * run. The members are the fill module's. */
struct ekv_fill_waiter {
    struct ekv_cache_waiter cw; /* what the cache queues on the fill */
    struct ekv_mailbox_msg msg; /* how the answer reaches the reader's loop */
    struct ekv_mailbox *mailbox;
    ekv_fill_answer_cb *cb;
    struct ekv_cache_entry *e; /* the answer in transit */
    bool stale;
    int fail;
};

/** How a reader takes part (ekv_fill_begin). */
enum ekv_fill_role {
    EKV_FILL_HIT = 0, /* a fresh entry: *@hit holds a new reference */
    EKV_FILL_LEAD,    /* a new fill in *@fill: read the origin, then ekv_fill_finish() */
    EKV_FILL_JOINED,  /* the waiter joined the fill in flight: its callback will answer it */
    EKV_FILL_ALONE,   /* no fill could be installed: read the origin, store nothing */
};

/**
 * Looks @key up in @cache at @now_ms and, on a miss, joins the fill in flight (unless @join is
 * false: a reader that wants the origin's answer leads a new fill, replacing any in flight) or
 * leads a new one. On EKV_FILL_JOINED, @w is queued (answered by @cb through @mb); otherwise it
 * is not kept. @w may be NULL only when @join is false.
 */
enum ekv_fill_role ekv_fill_begin(struct ekv_cache *cache, const char *key, size_t len,
                                  uint64_t now_ms, bool join, struct ekv_fill_waiter *w,
                                  struct ekv_mailbox *mb, ekv_fill_answer_cb *cb,
                                  struct ekv_cache_entry **hit, struct ekv_cache_fill **fill);

/** The readers that joined a finished fill, still to be answered with ekv_fill_answer(). */
struct ekv_fill_joined {
    struct ekv_cache_waiter *list;
};

/**
 * Ends the fill @fill the caller led: @store (NULL: nothing; the caller's reference stays its
 * own) is stored if the fill is still current and @store has not expired. Its joined readers go
 * to *@joined, to be answered at once with ekv_fill_answer(). For a failed read (@store NULL)
 * with @stale not NULL, *@stale gets the expired entry the fill replaced, if its item is still
 * alive (a reference, or NULL). Returns whether @store was stored. Any thread.
 */
bool ekv_fill_finish(struct ekv_cache *cache, struct ekv_cache_fill *fill,
                     struct ekv_cache_entry *store, uint64_t now_ms, struct ekv_fill_joined *joined,
                     struct ekv_cache_entry **stale);

/**
 * Answers every reader of @joined (emptied) with @e (each gets its own reference; NULL: the
 * read failed with @fail), @stale as ekv_fill_answer_cb says, each on its own loop. Never runs
 * a callback itself. Any thread.
 */
void ekv_fill_answer(struct ekv_fill_joined *joined, struct ekv_cache_entry *e, bool stale,
                     int fail);

#endif /* EDGEKV_FILL_H */
