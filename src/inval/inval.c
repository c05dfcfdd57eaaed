/* inval.c - the invalidation link (see inval.h). The setup is a chain of replies on one
 * connection: CLIENT ID -> CLIENT TRACKING OFF -> CLIENT TRACKING ON BCAST PREFIX ...
 * REDIRECT <own id> -> SUBSCRIBE __redis__:invalidate; the subscription's confirmation flushes
 * the cache and makes the link live. The heartbeat is a re-SUBSCRIBE of a channel of our own:
 * its confirmation comes back in order behind every invalidation sent before it, so its send
 * time is a fence. The link (origin/link.c) hands over every reply in order; each one's shape
 * is checked here before it is acted on, and one that makes no sense drops the connection (the
 * next subscription starts with a flush): a peer's odd bytes never crash the process and never
 * leave a possibly missed invalidation behind. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/inval.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#define INVALIDATE_CHANNEL "__redis__:invalidate"
#define MAX_HEARTBEATS 64 /* unanswered heartbeats kept; more means the link is dead anyway */

/* Where the setup chain is: which reply comes next. */
enum step {
    STEP_ID = 0,      /* CLIENT ID */
    STEP_OFF,         /* CLIENT TRACKING OFF */
    STEP_ON,          /* CLIENT TRACKING ON ... */
    STEP_SUBSCRIBED,  /* SUBSCRIBE sent: only push messages from here on */
};

struct ekv_inval {
    struct ekv_inval_opts opts;
    enum step step;
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

/* A setup reply that must not be an error; on error, refuse tracking loudly and retry later.
 * Frees nothing. */
static bool check(struct ekv_inval *iv, const redisReply *r, const char *what)
{
    char msg[160];

    if (r->type != REDIS_REPLY_ERROR)
        return true;
    snprintf(msg, sizeof(msg), "%s refused: %.100s", what, r->str);
    set_error(iv, msg);
    ekv_log(EKV_LOG_ERROR,
            "invalidation link: %s; the cache stays disabled until Redis allows it (check the "
            "Redis version (>= 6.2) and the ACL: the channel %s and the tracking commands)",
            msg, INVALIDATE_CHANNEL);
    ekv_origin_link_reset(iv->link, msg, false);
    return false;
}

/* ---------------------------------------------------------------- messages */

static void flush_all(struct ekv_inval *iv)
{
    atomic_fetch_add(&iv->flushes, 1);
    iv->hooks.on_flush(iv->hooks.arg);
}

/* A message that makes no sense on this connection: what it meant cannot be known, so the
 * connection goes (not live at once; the next subscription starts with a flush). */
static void odd(struct ekv_inval *iv, const char *what, int type)
{
    char why[96];

    snprintf(why, sizeof(why), "unexpected %s (reply type %d)", what, type);
    ekv_origin_link_reset(iv->link, why, false);
}

static bool is_bulk(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static void on_payload(struct ekv_inval *iv, const redisReply *payload)
{
    if (payload->type == REDIS_REPLY_NIL) { /* FLUSHALL / FLUSHDB */
        flush_all(iv);
    } else if (payload->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < payload->elements; i++) {
            const redisReply *k = payload->element[i];
            if (k->type == REDIS_REPLY_STRING) {
                atomic_fetch_add_explicit(&iv->keys, 1, memory_order_relaxed);
                iv->hooks.on_key(k->str, k->len, iv->hooks.arg);
            } else { /* a key we cannot read: forget everything rather than guess */
                flush_all(iv);
                return;
            }
        }
    } else if (payload->type == REDIS_REPLY_STRING) { /* some versions send one key */
        atomic_fetch_add_explicit(&iv->keys, 1, memory_order_relaxed);
        iv->hooks.on_key(payload->str, payload->len, iv->hooks.arg);
    } else {
        /* cannot tell what changed: forget everything rather than guess */
        ekv_log(EKV_LOG_WARN, "invalidation link: unknown payload type %d: flushing",
                payload->type);
        flush_all(iv);
    }
}

/* The confirmation of a heartbeat: the oldest unanswered one's send time is the new fence. */
static void on_heartbeat(struct ekv_inval *iv)
{
    if (iv->hb_count == 0) {
        odd(iv, "heartbeat confirmation", REDIS_REPLY_ARRAY);
        return;
    }
    atomic_store(&iv->fence_ms, iv->hb_sent[iv->hb_head]);
    iv->hb_head = (iv->hb_head + 1) % MAX_HEARTBEATS;
    iv->hb_count--;
}

/* A push on the subscribed connection: ["subscribe", channel, n], ["message", channel, payload],
 * or an error (a heartbeat SUBSCRIBE refused: its fence then ages until the link is dropped as
 * silent; before the link is live, the refusal of the invalidation channel itself). */
static void on_push(struct ekv_inval *iv, const redisReply *r)
{
    const redisReply *kind, *chan;

    if (r->type == REDIS_REPLY_ERROR) {
        if (!atomic_load(&iv->live))
            (void)check(iv, r, "SUBSCRIBE " INVALIDATE_CHANNEL);
        else if (ekv_origin_link_log_now(iv->link))
            ekv_log(EKV_LOG_WARN, "invalidation link: heartbeat refused: %s", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_bulk(r->element[0]) ||
        !is_bulk(r->element[1])) {
        odd(iv, "message shape", r->type);
        return;
    }
    kind = r->element[0];
    chan = r->element[1];
    bool inval_chan = chan->len == strlen(INVALIDATE_CHANNEL) &&
                      memcmp(chan->str, INVALIDATE_CHANNEL, chan->len) == 0;
    bool hb_chan = chan->len == strlen(iv->opts.heartbeat_channel) &&
                   memcmp(chan->str, iv->opts.heartbeat_channel, chan->len) == 0;
    if (is_str(kind, "message") && inval_chan) {
        on_payload(iv, r->element[2]);
    } else if (is_str(kind, "subscribe") && inval_chan && !atomic_load(&iv->live)) {
        /* subscribed: everything before this moment is unknown, so flush, then trust */
        flush_all(iv);
        atomic_store(&iv->fence_ms, ekv_clock_now_ms());
        atomic_store(&iv->live, true);
        set_error(iv, "");
        ekv_origin_link_ready(iv->link);
    } else if (is_str(kind, "subscribe") && hb_chan && atomic_load(&iv->live)) {
        on_heartbeat(iv);
    } else if (is_str(kind, "message") && hb_chan) {
        ; /* somebody published on our heartbeat channel: nothing to us */
    } else if (is_str(kind, "unsubscribe")) {
        ekv_origin_link_reset(iv->link, "unsubscribed", false);
    } else {
        odd(iv, "message", r->type);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_inval *iv = arg;
    uint64_t now = ekv_clock_now_ms();
    struct timeval tv = ekv_ms_tv(iv->opts.heartbeat_ms);
    const char *sub[] = {"SUBSCRIBE", iv->opts.heartbeat_channel};

    evtimer_add(iv->hb_ev, &tv);
    if (!atomic_load(&iv->live) || !ekv_origin_link_connected(iv->link))
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
    ekv_origin_link_sendv(iv->link, 2, sub, NULL);
    iv->hb_sent[(iv->hb_head + iv->hb_count) % MAX_HEARTBEATS] = now;
    iv->hb_count++;
}

/* ---------------------------------------------------------------- setup chain */

static void send_tracking(struct ekv_inval *iv, long long client_id)
{
    const char **argv;
    size_t n = 0;
    char id[32];
    const char *off[] = {"CLIENT", "TRACKING", "OFF"};

    snprintf(id, sizeof(id), "%lld", client_id);
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
    ekv_origin_link_sendv(iv->link, 3, off, NULL);
    ekv_origin_link_sendv(iv->link, (int)n, argv, NULL);
    ekv_free(argv);
}

static void on_reply(struct redisReply *reply, void *arg)
{
    struct ekv_inval *iv = arg;
    const char *sub[] = {"SUBSCRIBE", INVALIDATE_CHANNEL};

    switch (iv->step) {
    case STEP_ID:
        if (!check(iv, reply, "CLIENT ID"))
            break;
        if (reply->type != REDIS_REPLY_INTEGER) {
            odd(iv, "CLIENT ID reply", reply->type);
            break;
        }
        send_tracking(iv, reply->integer);
        iv->step = STEP_OFF;
        break;
    case STEP_OFF:
        if (check(iv, reply, "CLIENT TRACKING OFF"))
            iv->step = STEP_ON;
        break;
    case STEP_ON:
        if (!check(iv, reply, "CLIENT TRACKING ON"))
            break;
        ekv_origin_link_sendv(iv->link, 2, sub, NULL);
        iv->step = STEP_SUBSCRIBED;
        break;
    case STEP_SUBSCRIBED:
        on_push(iv, reply);
        break;
    }
    ekv_origin_reply_free(reply);
}

static void on_open(struct ekv_origin_link *link, void *arg)
{
    struct ekv_inval *iv = arg;
    const char *id[] = {"CLIENT", "ID"};

    iv->hb_head = iv->hb_count = 0;
    iv->step = STEP_ID;
    ekv_origin_link_sendv(link, 2, id, NULL);
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
    struct ekv_origin_link_hooks lh = {
        .on_open = on_open, .on_reply = on_reply, .on_close = on_close, .arg = iv};
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
        EKV_FATAL("invalidation link: cannot create a timer");
    tv = ekv_ms_tv(iv->opts.heartbeat_ms);
    evtimer_add(iv->hb_ev, &tv);
    iv->link = ekv_origin_link_new(base, opts->addr, opts->sentinel, opts->tls, opts->timeout_ms,
                                   "invalidation link", &lh);
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
