/* inval.c - the invalidation link (see inval.h). The setup is a chain of replies on one
 * connection: CLIENT ID -> CLIENT TRACKING OFF -> CLIENT TRACKING ON BCAST PREFIX ...
 * REDIRECT <own id> -> SUBSCRIBE __redis__:invalidate; the subscription's confirmation flushes
 * the cache and makes the link live. The heartbeat is a re-SUBSCRIBE of a channel of our own
 * (a PING while subscribed is misrouted by hiredis 0.14, and leaks a callback each time): its
 * confirmation comes back in order behind every invalidation sent before it, so its send time
 * is a fence. Every message's shape is checked before it is acted on. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/inval.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#define INVALIDATE_CHANNEL "__redis__:invalidate"
#define MAX_HEARTBEATS 64 /* unanswered heartbeats kept; more means the link is dead anyway */

struct ekv_inval {
    struct ekv_inval_opts opts;
    struct ekv_inval_hooks hooks;
    struct ekv_origin_link *link;
    struct event *hb_ev;
    uint64_t hb_sent[MAX_HEARTBEATS]; /* send times of unanswered heartbeats, a FIFO ring */
    unsigned hb_head, hb_count;
    atomic_bool live;
    atomic_ullong fence_ms;
    atomic_ullong keys, flushes, losses;
    pthread_mutex_t err_lock;
    char error[160];
};

uint64_t ekv_inval_now_ms(void)
{
    return ekv_mono_ms();
}

static void set_error(struct ekv_inval *iv, const char *msg)
{
    pthread_mutex_lock(&iv->err_lock);
    snprintf(iv->error, sizeof(iv->error), "%s", msg);
    pthread_mutex_unlock(&iv->err_lock);
}

static bool is_str(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* A reply that must not be an error; on error, refuse tracking loudly and retry later. */
static bool check(struct ekv_inval *iv, redisAsyncContext *ac, const redisReply *r,
                  const char *what)
{
    char msg[160];

    if (r == NULL || ekv_origin_link_ctx(iv->link) != ac)
        return false; /* the connection is going away */
    if (r->type != REDIS_REPLY_ERROR)
        return true;
    snprintf(msg, sizeof(msg), "%s refused: %s", what, r->str);
    set_error(iv, msg);
    ekv_log(EKV_LOG_ERROR,
            "invalidation link: %s; the cache stays disabled until Redis allows it (check the "
            "Redis version (>= 6.2) and the ACL: the channel %s and the tracking commands)",
            msg, INVALIDATE_CHANNEL);
    ekv_origin_link_reset(iv->link, msg, true);
    return false;
}

/* ---------------------------------------------------------------- messages */

static void on_invalidate(redisAsyncContext *ac, void *reply, void *arg)
{
    struct ekv_inval *iv = arg;
    const redisReply *r = reply;
    const redisReply *kind, *payload;

    if (!check(iv, ac, r, "SUBSCRIBE " INVALIDATE_CHANNEL))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        ekv_log(EKV_LOG_WARN, "invalidation link: unexpected message shape (type %d)", r->type);
        return;
    }
    kind = r->element[0];
    payload = r->element[2];
    if (is_str(kind, "subscribe")) {
        /* subscribed: everything before this moment is unknown, so flush, then trust */
        atomic_fetch_add(&iv->flushes, 1);
        iv->hooks.on_flush(iv->hooks.arg);
        atomic_store(&iv->fence_ms, ekv_inval_now_ms());
        atomic_store(&iv->live, true);
        set_error(iv, "");
        ekv_origin_link_ready(iv->link);
    } else if (is_str(kind, "message")) {
        if (payload->type == REDIS_REPLY_NIL) { /* FLUSHALL / FLUSHDB */
            atomic_fetch_add(&iv->flushes, 1);
            iv->hooks.on_flush(iv->hooks.arg);
        } else if (payload->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < payload->elements; i++) {
                const redisReply *k = payload->element[i];
                if (k->type == REDIS_REPLY_STRING) {
                    atomic_fetch_add_explicit(&iv->keys, 1, memory_order_relaxed);
                    iv->hooks.on_key(k->str, k->len, iv->hooks.arg);
                }
            }
        } else if (payload->type == REDIS_REPLY_STRING) { /* some versions send one key */
            atomic_fetch_add_explicit(&iv->keys, 1, memory_order_relaxed);
            iv->hooks.on_key(payload->str, payload->len, iv->hooks.arg);
        } else {
            /* cannot tell what changed: forget everything rather than guess */
            ekv_log(EKV_LOG_WARN, "invalidation link: unknown payload type %d: flushing",
                    payload->type);
            atomic_fetch_add(&iv->flushes, 1);
            iv->hooks.on_flush(iv->hooks.arg);
        }
    } else if (is_str(kind, "unsubscribe")) {
        ekv_origin_link_reset(iv->link, "unsubscribed", true);
    }
}

static void on_heartbeat(redisAsyncContext *ac, void *reply, void *arg)
{
    struct ekv_inval *iv = arg;
    const redisReply *r = reply;

    if (r == NULL || ekv_origin_link_ctx(iv->link) != ac)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[0], "subscribe") ||
        iv->hb_count == 0)
        return; /* not a confirmation of ours */
    atomic_store(&iv->fence_ms, iv->hb_sent[iv->hb_head]);
    iv->hb_head = (iv->hb_head + 1) % MAX_HEARTBEATS;
    iv->hb_count--;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_inval *iv = arg;
    redisAsyncContext *ac = ekv_origin_link_ctx(iv->link);
    uint64_t now = ekv_inval_now_ms();
    struct timeval tv = ekv_ms_tv(iv->opts.heartbeat_ms);

    evtimer_add(iv->hb_ev, &tv);
    if (!atomic_load(&iv->live) || ac == NULL)
        return;
    /* a silent link is a lost link: the oldest unanswered heartbeat decides */
    if (iv->hb_count > 0 && now - iv->hb_sent[iv->hb_head] >= iv->opts.stall_ms) {
        char why[96];
        snprintf(why, sizeof(why), "no heartbeat answer for %llu ms",
                 (unsigned long long)(now - iv->hb_sent[iv->hb_head]));
        ekv_origin_link_reset(iv->link, why, false);
        return;
    }
    if (iv->hb_count == MAX_HEARTBEATS)
        return;
    if (redisAsyncCommand(ac, on_heartbeat, iv, "SUBSCRIBE %s", iv->opts.heartbeat_channel) ==
        REDIS_OK) {
        iv->hb_sent[(iv->hb_head + iv->hb_count) % MAX_HEARTBEATS] = now;
        iv->hb_count++;
    }
}

/* ---------------------------------------------------------------- setup chain */

static void on_subscribe_sent(struct ekv_inval *iv, redisAsyncContext *ac)
{
    if (redisAsyncCommand(ac, on_invalidate, iv, "SUBSCRIBE " INVALIDATE_CHANNEL) != REDIS_OK)
        ekv_origin_link_reset(iv->link, "cannot subscribe", true);
}

static void on_tracking_on(redisAsyncContext *ac, void *reply, void *arg)
{
    struct ekv_inval *iv = arg;

    if (check(iv, ac, reply, "CLIENT TRACKING ON"))
        on_subscribe_sent(iv, ac);
}

static void on_tracking_off(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)check(arg, ac, reply, "CLIENT TRACKING OFF");
}

static void on_client_id(redisAsyncContext *ac, void *reply, void *arg)
{
    struct ekv_inval *iv = arg;
    const redisReply *r = reply;
    const char **argv;
    size_t n = 0;
    char id[32];

    if (!check(iv, ac, r, "CLIENT ID"))
        return;
    if (r->type != REDIS_REPLY_INTEGER) {
        ekv_origin_link_reset(iv->link, "CLIENT ID: not an integer", true);
        return;
    }
    snprintf(id, sizeof(id), "%lld", r->integer);
    argv = ekv_calloc(6 + 2 * iv->opts.nprefixes, sizeof(*argv));
    argv[n++] = "CLIENT";
    argv[n++] = "TRACKING";
    argv[n++] = "ON";
    argv[n++] = "BCAST";
    for (size_t i = 0; i < iv->opts.nprefixes; i++) {
        argv[n++] = "PREFIX";
        argv[n++] = iv->opts.prefixes[i];
    }
    argv[n++] = "REDIRECT";
    argv[n++] = id;
    /* OFF first: a connection reused by a proxy could carry an older tracking state */
    redisAsyncCommand(ac, on_tracking_off, iv, "CLIENT TRACKING OFF");
    redisAsyncCommandArgv(ac, on_tracking_on, iv, (int)n, argv, NULL);
    ekv_free(argv);
}

static void on_open(struct ekv_origin_link *link, struct redisAsyncContext *ac, void *arg)
{
    struct ekv_inval *iv = arg;

    iv->hb_head = iv->hb_count = 0;
    redisAsyncCommand(ac, on_client_id, iv, "CLIENT ID");
}

static void on_close(bool was_ready, const char *why, void *arg)
{
    struct ekv_inval *iv = arg;

    /* stop serving hits at once; the next subscription starts with a flush */
    if (atomic_exchange(&iv->live, false))
        atomic_fetch_add(&iv->losses, 1);
    else
        set_error(iv, why); /* never got to subscribe: say why (readyz, metrics) */
    iv->hb_head = iv->hb_count = 0;
}

/* ---------------------------------------------------------------- life */

struct ekv_inval *ekv_inval_new(struct event_base *base, const struct ekv_inval_opts *opts,
                                const struct ekv_inval_hooks *hooks)
{
    struct ekv_inval *iv = ekv_calloc(1, sizeof(*iv));
    struct ekv_origin_link_hooks lh = {.on_open = on_open, .on_close = on_close, .arg = iv};
    struct timeval tv;

    iv->opts = *opts;
    if (iv->opts.heartbeat_ms == 0)
        iv->opts.heartbeat_ms = 1000;
    if (iv->opts.stall_ms == 0)
        iv->opts.stall_ms = 3 * iv->opts.heartbeat_ms;
    iv->hooks = *hooks;
    pthread_mutex_init(&iv->err_lock, NULL);
    atomic_init(&iv->live, false);
    atomic_init(&iv->fence_ms, 0);
    iv->hb_ev = evtimer_new(base, on_tick, iv);
    if (iv->hb_ev == NULL)
        abort();
    tv = ekv_ms_tv(iv->opts.heartbeat_ms);
    evtimer_add(iv->hb_ev, &tv);
    iv->link = ekv_origin_link_new(base, opts->addr, opts->timeout_ms, "invalidation link", &lh);
    return iv;
}

void ekv_inval_free(struct ekv_inval *iv)
{
    if (iv == NULL)
        return;
    ekv_origin_link_free(iv->link);
    event_free(iv->hb_ev);
    pthread_mutex_destroy(&iv->err_lock);
    ekv_free(iv);
}

bool ekv_inval_fresh(const struct ekv_inval *iv, uint64_t now_ms, uint64_t max_staleness_ms)
{
    uint64_t fence;

    if (!atomic_load_explicit(&iv->live, memory_order_acquire))
        return false;
    fence = atomic_load_explicit(&iv->fence_ms, memory_order_acquire);
    return now_ms < fence + max_staleness_ms;
}

void ekv_inval_stats(struct ekv_inval *iv, struct ekv_inval_stats *st)
{
    st->live = atomic_load(&iv->live);
    st->fence_ms = atomic_load(&iv->fence_ms);
    st->keys = atomic_load(&iv->keys);
    st->flushes = atomic_load(&iv->flushes);
    st->losses = atomic_load(&iv->losses);
    pthread_mutex_lock(&iv->err_lock);
    snprintf(st->error, sizeof(st->error), "%s", iv->error);
    pthread_mutex_unlock(&iv->err_lock);
}
