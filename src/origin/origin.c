/* origin.c - one worker's connection to the Redis origin (hiredis async on libevent).
 *
 * hiredis 0.14 has no timeouts and frees its context by itself after a failed connect and
 * inside the disconnect callback, so this file owns what is missing:
 * - a connect deadline and one deadline timer for the commands in flight: replies arrive in
 *   order, so only the oldest command can be late; when it is, the connection is stuck and is
 *   reset (every command in flight is then answered, the late one with EKV_ETIMEDOUT);
 * - reconnection with capped exponential backoff and full jitter, with AUTH, SELECT and
 *   SCRIPT LOAD pipelined first on every new connection;
 * - failing fast while the origin is down: commands are answered with EKV_ECLOSED on the next
 *   loop turn, never synchronously and never after a wait.
 * Every op is freed in exactly one place: on_reply() for ops handed to hiredis (hiredis calls
 * each callback exactly once, with NULL when the connection goes), fail_deferred() otherwise.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 2000
#define LOG_EVERY_MS 10000 /* repeated connection errors are logged this often at most */

enum state {
    DOWN = 0,   /* no connection; a reconnect is scheduled */
    CONNECTING, /* connect, AUTH, SELECT and SCRIPT LOAD sent, not all answered */
    UP,
};

struct ekv_origin_op {
    TAILQ_ENTRY(ekv_origin_op) link; /* in o->inflight or o->failing */
    struct ekv_origin *o;
    ekv_origin_cb *cb; /* NULL once answered or canceled */
    void *arg;
    uint64_t deadline_ms;
    char *cmd; /* the formatted command, kept by scripts for a NOSCRIPT retry */
    size_t cmdlen;
    size_t script;
    bool is_script, retried;
};

TAILQ_HEAD(op_list, ekv_origin_op);

struct ekv_origin {
    struct event_base *base;
    const struct ekv_conf_origin *addr;
    uint64_t timeout_ms;
    struct ekv_origin_script *scripts;
    size_t nscripts;
    char label[48];
    redisAsyncContext *ac;
    enum state state;
    unsigned attempts;       /* failed connects in a row (backoff) */
    unsigned setup_pending;  /* AUTH/SELECT/SCRIPT LOAD replies still expected */
    struct op_list inflight; /* sent, in send order */
    size_t npending;
    struct op_list failing;  /* answered with EKV_ECLOSED on the next loop turn */
    struct event *retry_ev, *deadline_ev, *fail_ev, *reset_ev;
    ekv_origin_state_cb *state_cb;
    void *state_arg;
    uint64_t last_log_ms;
    uint32_t rng;
    bool freeing;
};

static void connect_now(struct ekv_origin *o);

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(ev, &tv);
}

/* Connection errors repeat on every retry: log the first and then every LOG_EVERY_MS. */
static bool log_now(struct ekv_origin *o)
{
    uint64_t now = mono_ms();

    if (o->last_log_ms != 0 && now - o->last_log_ms < LOG_EVERY_MS)
        return false;
    o->last_log_ms = now;
    return true;
}

/* ---------------------------------------------------------------- answering ops */

static void finish(struct ekv_origin_op *op, int status, const redisReply *reply)
{
    ekv_origin_cb *cb = op->cb;

    op->cb = NULL; /* at most once */
    if (cb != NULL)
        cb(status, (const struct redisReply *)reply, op->arg);
}

static void op_free(struct ekv_origin_op *op)
{
    if (op->cmd != NULL)
        redisFreeCommand(op->cmd);
    ekv_free(op);
}

static void fail_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin *o = arg;
    struct ekv_origin_op *op;

    while ((op = TAILQ_FIRST(&o->failing)) != NULL) {
        TAILQ_REMOVE(&o->failing, op, link);
        finish(op, EKV_ECLOSED, NULL);
        op_free(op);
    }
}

static void fail_later(struct ekv_origin *o, struct ekv_origin_op *op)
{
    TAILQ_INSERT_TAIL(&o->failing, op, link);
    event_active(o->fail_ev, EV_TIMEOUT, 1);
}

/* ---------------------------------------------------------------- connection state */

static void set_state(struct ekv_origin *o, enum state st)
{
    bool was_up = o->state == UP;

    o->state = st;
    if (was_up != (st == UP) && o->state_cb != NULL && !o->freeing)
        o->state_cb(st == UP, o->state_arg);
}

static void schedule_retry(struct ekv_origin *o)
{
    uint64_t cap = BACKOFF_BASE_MS, delay;

    for (unsigned i = 0; i < o->attempts && cap < BACKOFF_CAP_MS; i++)
        cap *= 2;
    cap = EKV_MIN(cap, BACKOFF_CAP_MS);
    /* "full jitter" on the upper half: POPs that lost Redis together do not return together */
    o->rng = o->rng * 1103515245u + 12345u;
    delay = cap / 2 + (o->rng >> 8) % (cap / 2 + 1);
    o->attempts++;
    arm(o->retry_ev, delay);
}

/* The connection is gone (or being dropped): back to DOWN and retry later. */
static void went_down(struct ekv_origin *o, const char *why)
{
    if (o->freeing)
        ; /* shutting down: nothing to report */
    else if (o->state == UP)
        ekv_log(EKV_LOG_WARN, "origin: %s: connection lost: %s", o->label, why);
    else if (log_now(o))
        ekv_log(EKV_LOG_WARN, "origin: %s: cannot connect: %s (retrying with backoff)", o->label,
                why);
    evtimer_del(o->deadline_ev);
    set_state(o, DOWN);
    if (!o->freeing)
        schedule_retry(o);
}

/* Drops the connection now. Must not run inside a hiredis callback (use reset_ev there). */
static void reset(struct ekv_origin *o, const char *why)
{
    redisAsyncContext *ac = o->ac;

    if (ac == NULL)
        return;
    o->ac = NULL; /* on_disconnect() below sees a context that is no longer ours */
    redisAsyncFree(ac); /* answers every callback with a NULL reply */
    went_down(o, why);
}

static void on_reset(evutil_socket_t fd, short what, void *arg)
{
    reset(arg, "origin setup failed");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct ekv_origin *o = ac->data;

    if (o->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns */
        o->ac = NULL;
        went_down(o, ac->errstr[0] != '\0' ? ac->errstr : "connect failed");
    }
    /* connected: UP once the setup commands have been answered (on_setup) */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct ekv_origin *o = ac->data;

    if (o->ac != ac)
        return; /* we dropped it ourselves */
    o->ac = NULL; /* hiredis frees the context when this returns */
    went_down(o, status == REDIS_OK ? "closed" : (ac->errstr[0] != '\0' ? ac->errstr : "error"));
}

static void on_setup(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ekv_origin *o = privdata;
    redisReply *reply = r;

    if (reply == NULL || o->ac != ac)
        return; /* the connection is going away; on_disconnect/reset handle it */
    if (reply->type == REDIS_REPLY_ERROR) {
        ekv_log(EKV_LOG_ERROR, "origin: %s: setup refused: %s", o->label, reply->str);
        event_active(o->reset_ev, EV_TIMEOUT, 1);
        return;
    }
    if (--o->setup_pending == 0) {
        o->attempts = 0;
        o->last_log_ms = 0;
        ekv_log(EKV_LOG_INFO, "origin: %s: connected", o->label);
        set_state(o, UP);
    }
}

static void setup_cmd(struct ekv_origin *o, int argc, const char **argv)
{
    if (redisAsyncCommandArgv(o->ac, on_setup, o, argc, argv, NULL) == REDIS_OK)
        o->setup_pending++;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    connect_now(arg);
}

static void connect_now(struct ekv_origin *o)
{
    const struct ekv_conf_origin *a = o->addr;
    redisAsyncContext *ac;

    ac = a->unix_path != NULL ? redisAsyncConnectUnix(a->unix_path)
                              : redisAsyncConnect(a->host, a->port);
    if (ac == NULL || ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        went_down(o, why);
        return;
    }
    ac->data = o;
    if (redisLibeventAttach(ac, o->base) != REDIS_OK) {
        redisAsyncFree(ac);
        went_down(o, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    o->ac = ac;
    o->setup_pending = 0;
    set_state(o, CONNECTING);
    /* pipelined ahead of any command: authenticate, pick the db, load the scripts */
    if (a->password != NULL) {
        const char *auth_user[] = {"AUTH", a->user, a->password};
        const char *auth[] = {"AUTH", a->password};
        if (a->user != NULL)
            setup_cmd(o, 3, auth_user);
        else
            setup_cmd(o, 2, auth);
    }
    if (a->db != 0) {
        char db[16];
        const char *sel[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%u", a->db);
        setup_cmd(o, 2, sel);
    }
    for (size_t i = 0; i < o->nscripts; i++) {
        const char *load[] = {"SCRIPT", "LOAD", o->scripts[i].body};
        setup_cmd(o, 3, load);
    }
    if (o->setup_pending == 0) {
        const char *ping[] = {"PING"};
        setup_cmd(o, 1, ping);
    }
    /* the connect deadline: the setup replies must be back within the origin timeout */
    arm(o->deadline_ev, o->timeout_ms);
}

/* ---------------------------------------------------------------- commands */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin *o = arg;
    struct ekv_origin_op *op = TAILQ_FIRST(&o->inflight);
    uint64_t now = mono_ms();

    if (o->state == CONNECTING) {
        reset(o, "timed out connecting");
        return;
    }
    if (op == NULL)
        return;
    if (op->deadline_ms > now) { /* the oldest op changed since the timer was armed */
        arm(o->deadline_ev, op->deadline_ms - now);
        return;
    }
    if (log_now(o))
        ekv_log(EKV_LOG_WARN, "origin: %s: no reply within %llu ms: resetting the connection",
                o->label, (unsigned long long)o->timeout_ms);
    finish(op, EKV_ETIMEDOUT, NULL);
    reset(o, "command timed out"); /* frees op and the others in flight, via on_reply() */
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ekv_origin_op *op = privdata;
    struct ekv_origin *o = op->o;
    redisReply *reply = r;

    TAILQ_REMOVE(&o->inflight, op, link);
    o->npending--;
    if (reply != NULL && op->is_script && !op->retried && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && o->ac == ac) {
        /* the script cache was flushed: load it and send the same EVALSHA again, in order */
        const char *load[] = {"SCRIPT", "LOAD", o->scripts[op->script].body};
        op->retried = true;
        if (redisAsyncCommandArgv(ac, NULL, NULL, 3, load, NULL) == REDIS_OK &&
            redisAsyncFormattedCommand(ac, on_reply, op, op->cmd, op->cmdlen) == REDIS_OK) {
            op->deadline_ms = mono_ms() + o->timeout_ms;
            TAILQ_INSERT_TAIL(&o->inflight, op, link);
            o->npending++;
            return;
        }
    }
    if (reply == NULL)
        finish(op, EKV_ECLOSED, NULL);
    else
        finish(op, EKV_OK, reply);
    op_free(op);
}

static struct ekv_origin_op *submit(struct ekv_origin *o, struct ekv_origin_op *op)
{
    /* while down (or reconnecting after a failure) answer at once rather than queue */
    if (o->ac == NULL || o->state == DOWN || (o->state == CONNECTING && o->attempts > 0)) {
        fail_later(o, op);
        return op;
    }
    if (redisAsyncFormattedCommand(o->ac, on_reply, op, op->cmd, op->cmdlen) != REDIS_OK) {
        fail_later(o, op);
        return op;
    }
    if (!op->is_script) { /* hiredis copied it; only scripts may need it again */
        redisFreeCommand(op->cmd);
        op->cmd = NULL;
    }
    op->deadline_ms = mono_ms() + o->timeout_ms;
    if (TAILQ_EMPTY(&o->inflight) && o->state == UP)
        arm(o->deadline_ev, o->timeout_ms);
    TAILQ_INSERT_TAIL(&o->inflight, op, link);
    o->npending++;
    return op;
}

static struct ekv_origin_op *op_new(struct ekv_origin *o, ekv_origin_cb *cb, void *arg, int argc,
                                    const char **argv, const size_t *argvlen)
{
    struct ekv_origin_op *op = ekv_calloc(1, sizeof(*op));
    long long n;

    op->o = o;
    op->cb = cb;
    op->arg = arg;
    n = redisFormatCommandArgv(&op->cmd, argc, argv, argvlen);
    if (n < 0) {
        ekv_log(EKV_LOG_ERROR, "out of memory formatting a Redis command");
        abort();
    }
    op->cmdlen = (size_t)n;
    return op;
}

struct ekv_origin_op *ekv_origin_cmd(struct ekv_origin *o, ekv_origin_cb *cb, void *arg, int argc,
                                     const char **argv, const size_t *argvlen)
{
    return submit(o, op_new(o, cb, arg, argc, argv, argvlen));
}

struct ekv_origin_op *ekv_origin_eval(struct ekv_origin *o, size_t script, ekv_origin_cb *cb,
                                      void *arg, int nkeys, int argc, const char **argv,
                                      const size_t *argvlen)
{
    const char **v = ekv_calloc((size_t)argc + 3, sizeof(*v));
    size_t *vl = ekv_calloc((size_t)argc + 3, sizeof(*vl));
    char nk[16];
    struct ekv_origin_op *op;

    snprintf(nk, sizeof(nk), "%d", nkeys);
    v[0] = "EVALSHA";
    v[1] = o->scripts[script].sha;
    v[2] = nk;
    vl[0] = 7;
    vl[1] = 40;
    vl[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        v[i + 3] = argv[i];
        vl[i + 3] = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
    }
    op = op_new(o, cb, arg, argc + 3, v, vl);
    ekv_free(v);
    ekv_free(vl);
    op->is_script = true;
    op->script = script;
    return submit(o, op);
}

void ekv_origin_cancel(struct ekv_origin_op *op)
{
    op->cb = NULL; /* freed by on_reply() or fail_deferred() as usual */
}

/* ---------------------------------------------------------------- life */

struct ekv_origin *ekv_origin_new(struct event_base *base, const struct ekv_origin_opts *opts)
{
    struct ekv_origin *o = ekv_calloc(1, sizeof(*o));

    o->base = base;
    o->addr = opts->addr;
    o->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : 1000;
    o->scripts = opts->scripts;
    o->nscripts = opts->nscripts;
    snprintf(o->label, sizeof(o->label), "%s", opts->label != NULL ? opts->label : "origin");
    for (size_t i = 0; i < o->nscripts; i++)
        ekv_sha1_hex(o->scripts[i].body, strlen(o->scripts[i].body), o->scripts[i].sha);
    TAILQ_INIT(&o->inflight);
    TAILQ_INIT(&o->failing);
    o->rng = (uint32_t)(uintptr_t)o ^ (uint32_t)mono_ms();
    o->retry_ev = evtimer_new(base, on_retry, o);
    o->deadline_ev = evtimer_new(base, on_deadline, o);
    o->fail_ev = event_new(base, -1, 0, fail_deferred, o);
    o->reset_ev = event_new(base, -1, 0, on_reset, o);
    if (o->retry_ev == NULL || o->deadline_ev == NULL || o->fail_ev == NULL || o->reset_ev == NULL)
        abort();
    connect_now(o);
    return o;
}

void ekv_origin_free(struct ekv_origin *o)
{
    if (o == NULL)
        return;
    o->freeing = true;
    reset(o, "shutting down");
    fail_deferred(-1, 0, o);
    event_free(o->retry_ev);
    event_free(o->deadline_ev);
    event_free(o->fail_ev);
    event_free(o->reset_ev);
    ekv_free(o);
}

void ekv_origin_set_state_cb(struct ekv_origin *o, ekv_origin_state_cb *cb, void *arg)
{
    o->state_cb = cb;
    o->state_arg = arg;
}

bool ekv_origin_connected(const struct ekv_origin *o)
{
    return o->state == UP;
}

size_t ekv_origin_pending(const struct ekv_origin *o)
{
    return o->npending;
}
