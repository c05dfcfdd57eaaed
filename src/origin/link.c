/* link.c - a self-healing hiredis async connection, shared by the origin (commands) and the
 * invalidation link (tracking). hiredis 0.14 has no timeouts and frees its context by itself
 * after a failed connect and inside the disconnect callback; this file owns what is missing:
 * the connect/setup deadline, AUTH and SELECT on every new connection, reconnection with capped
 * exponential backoff and full jitter, and rate-limited logging. */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 2000
#define LOG_EVERY_MS 10000

enum state {
    DOWN = 0,   /* no connection; a reconnect is scheduled */
    CONNECTING, /* connecting and setting up */
    UP,
};

struct ekv_origin_link {
    struct event_base *base;
    const struct ekv_conf_origin *addr;
    uint64_t timeout_ms;
    char label[48];
    struct ekv_origin_link_hooks hooks;
    redisAsyncContext *ac;
    /* written on the loop's thread alone; atomic because /readyz and /metrics, answered by any
     * worker, read every link's (ekv_origin_link_up()) */
    _Atomic(enum state) state;
    unsigned attempts; /* failed connects in a row (backoff) */
    struct event *retry_ev, *setup_ev, *reset_ev;
    char reset_why[192];
    uint64_t last_log_ms;
    uint32_t rng;
    bool setup_failed; /* AUTH/SELECT refused on this connection: never up */
    bool freeing;
};

static void connect_now(struct ekv_origin_link *l);

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = ekv_ms_tv(ms);

    evtimer_add(ev, &tv);
}

bool ekv_origin_link_log_now(struct ekv_origin_link *l)
{
    uint64_t now = ekv_mono_ms();

    if (l->last_log_ms != 0 && now - l->last_log_ms < LOG_EVERY_MS)
        return false;
    l->last_log_ms = now;
    return true;
}

static void schedule_retry(struct ekv_origin_link *l)
{
    uint64_t cap = BACKOFF_BASE_MS, delay;

    for (unsigned i = 0; i < l->attempts && cap < BACKOFF_CAP_MS; i++)
        cap *= 2;
    cap = EKV_MIN(cap, BACKOFF_CAP_MS);
    /* jitter over the upper half: POPs that lost Redis together do not come back together */
    l->rng = l->rng * 1103515245u + 12345u;
    delay = cap / 2 + (l->rng >> 8) % (cap / 2 + 1);
    l->attempts++;
    arm(l->retry_ev, delay);
}

/* The connection is gone or being dropped (l->ac already cleared). */
static void went_down(struct ekv_origin_link *l, const char *why)
{
    bool was_up = l->state == UP;

    if (l->freeing)
        ; /* shutting down: nothing to report */
    else if (was_up)
        ekv_log(EKV_LOG_WARN, "%s: connection lost: %s", l->label, why);
    else if (ekv_origin_link_log_now(l))
        ekv_log(EKV_LOG_WARN, "%s: cannot connect: %s (retrying with backoff)", l->label, why);
    evtimer_del(l->setup_ev);
    l->state = DOWN;
    if (!l->freeing)
        schedule_retry(l);
    if (l->hooks.on_close != NULL)
        l->hooks.on_close(was_up, why, l->hooks.arg);
}

static void reset_now(struct ekv_origin_link *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    if (ac == NULL)
        return;
    l->ac = NULL; /* on_disconnect() will see a context that is no longer ours */
    redisAsyncFree(ac); /* answers every pending callback with a NULL reply */
    went_down(l, why);
}

static void on_reset(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin_link *l = arg;

    reset_now(l, l->reset_why);
}

void ekv_origin_link_reset(struct ekv_origin_link *l, const char *why, bool deferred)
{
    if (!deferred) {
        reset_now(l, why);
        return;
    }
    snprintf(l->reset_why, sizeof(l->reset_why), "%s", why);
    event_active(l->reset_ev, EV_TIMEOUT, 1);
}

static void on_setup_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin_link *l = arg;

    if (l->state == CONNECTING)
        reset_now(l, "timed out connecting");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct ekv_origin_link *l = ac->data;

    if (l->ac != ac || status == REDIS_OK)
        return; /* connected: up once the owner's setup has been answered */
    l->ac = NULL; /* hiredis frees the context when this returns */
    went_down(l, ac->errstr[0] != '\0' ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct ekv_origin_link *l = ac->data;

    if (l->ac != ac)
        return; /* dropped by us */
    l->ac = NULL; /* hiredis frees the context when this returns */
    went_down(l, status == REDIS_OK ? "closed" : (ac->errstr[0] != '\0' ? ac->errstr : "error"));
}

/* AUTH/SELECT answers: an error reply (wrong password, no such db) drops the connection. */
static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ekv_origin_link *l = privdata;
    redisReply *reply = r;

    if (reply != NULL && l->ac == ac && reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        l->setup_failed = true;
        snprintf(why, sizeof(why), "Redis refused the setup: %s", reply->str);
        ekv_origin_link_reset(l, why, true); /* logged, rate-limited, by went_down() */
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    connect_now(arg);
}

static void connect_now(struct ekv_origin_link *l)
{
    const struct ekv_conf_origin *a = l->addr;
    redisAsyncContext *ac;

    ac = a->unix_path != NULL ? redisAsyncConnectUnix(a->unix_path)
                              : redisAsyncConnect(a->host, a->port);
    if (ac == NULL || ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        went_down(l, why);
        return;
    }
    ac->data = l;
    if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
        redisAsyncFree(ac);
        went_down(l, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->state = CONNECTING;
    l->setup_failed = false;
    /* pipelined ahead of everything: authenticate, pick the db */
    if (a->password != NULL) {
        const char *auth_user[] = {"AUTH", a->user, a->password};
        const char *auth[] = {"AUTH", a->password};
        redisAsyncCommandArgv(ac, on_auth, l, a->user != NULL ? 3 : 2,
                              a->user != NULL ? auth_user : auth, NULL);
    }
    if (a->db != 0) {
        char db[16];
        const char *sel[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%u", a->db);
        redisAsyncCommandArgv(ac, on_auth, l, 2, sel, NULL);
    }
    arm(l->setup_ev, l->timeout_ms);
    l->hooks.on_open(l, ac, l->hooks.arg);
}

void ekv_origin_link_ready(struct ekv_origin_link *l)
{
    if (l->state != CONNECTING || l->setup_failed)
        return;
    evtimer_del(l->setup_ev);
    l->state = UP;
    l->attempts = 0;
    l->last_log_ms = 0;
    ekv_log(EKV_LOG_INFO, "%s: connected", l->label);
}

struct ekv_origin_link *ekv_origin_link_new(struct event_base *base,
                                            const struct ekv_conf_origin *addr,
                                            uint64_t timeout_ms, const char *label,
                                            const struct ekv_origin_link_hooks *hooks)
{
    struct ekv_origin_link *l = ekv_calloc(1, sizeof(*l));

    l->base = base;
    l->addr = addr;
    l->timeout_ms = timeout_ms != 0 ? timeout_ms : 1000;
    snprintf(l->label, sizeof(l->label), "%s", label);
    l->hooks = *hooks;
    l->rng = (uint32_t)(uintptr_t)l ^ (uint32_t)ekv_mono_ms();
    l->retry_ev = evtimer_new(base, on_retry, l);
    l->setup_ev = evtimer_new(base, on_setup_deadline, l);
    l->reset_ev = event_new(base, -1, 0, on_reset, l);
    if (l->retry_ev == NULL || l->setup_ev == NULL || l->reset_ev == NULL)
        abort();
    connect_now(l);
    return l;
}

void ekv_origin_link_free(struct ekv_origin_link *l)
{
    if (l == NULL)
        return;
    l->freeing = true;
    reset_now(l, "shutting down");
    event_free(l->retry_ev);
    event_free(l->setup_ev);
    event_free(l->reset_ev);
    ekv_free(l);
}

struct redisAsyncContext *ekv_origin_link_ctx(const struct ekv_origin_link *l)
{
    return l->ac;
}

bool ekv_origin_link_up(const struct ekv_origin_link *l)
{
    return l->state == UP;
}

bool ekv_origin_link_failing(const struct ekv_origin_link *l)
{
    return l->ac == NULL || l->state == DOWN || (l->state == CONNECTING && l->attempts > 0);
}

const char *ekv_origin_link_label(const struct ekv_origin_link *l)
{
    return l->label;
}
