/* origin.c - one worker's command connection to the Redis origin, on a self-healing link
 * (link.c): Lua scripts loaded on every connect, one deadline timer for the commands in
 * flight, and failing fast while the origin is down.
 *
 * Replies arrive in order, so only the oldest command in flight can be late; when it is, the
 * connection is stuck and is reset (every command in flight is then answered, the late one with
 * EKV_ETIMEDOUT). While the origin is down, commands are answered with EKV_ECLOSED on the next
 * loop turn: never synchronously, never after a wait. Every op is freed in exactly one place:
 * on_reply() for ops handed to hiredis (which calls each callback exactly once, with NULL when
 * the connection goes), fail_deferred() otherwise. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"
#include "edgekv/text.h"

struct ekv_origin_op {
    TAILQ_ENTRY(ekv_origin_op) link; /* in o->inflight or o->failing */
    struct ekv_origin *o;
    ekv_origin_cb *cb; /* NULL once answered or canceled */
    void *arg;
    uint64_t deadline_ms;
    uint64_t sent_us;  /* for the observer's latency */
    char *cmd; /* the formatted command, kept by scripts for a NOSCRIPT retry */
    size_t cmdlen;
    size_t script;
    bool is_script, retried;
};

TAILQ_HEAD(op_list, ekv_origin_op);

struct ekv_origin {
    struct ekv_origin_link *link;
    uint64_t timeout_ms;
    struct ekv_origin_script *scripts;
    size_t nscripts;
    unsigned setup_pending;  /* SCRIPT LOAD replies still expected */
    struct op_list inflight; /* sent, in send order */
    size_t npending;
    struct op_list failing;  /* answered with EKV_ECLOSED on the next loop turn */
    struct event *deadline_ev, *fail_ev;
    ekv_origin_state_cb *state_cb;
    void *state_arg;
    ekv_origin_observe_cb *observe_cb;
    void *observe_arg;
};

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    evtimer_add(ev, &tv);
}

/* ---------------------------------------------------------------- answering ops */

static void finish(struct ekv_origin_op *op, int status, const redisReply *reply)
{
    ekv_origin_cb *cb = op->cb;
    struct ekv_origin *o = op->o;

    if (cb != NULL && o->observe_cb != NULL)
        o->observe_cb(op->is_script ? op->script : SIZE_MAX, status,
                      reply != NULL && reply->type == REDIS_REPLY_ERROR,
                      op->sent_us != 0 ? ekv_mono_us() - op->sent_us : 0, o->observe_arg);
    op->cb = NULL; /* at most once */
    if (cb != NULL)
        cb(status, (const struct redisReply *)reply, op->arg);
}

static void op_free(struct ekv_origin_op *op)
{
    ekv_free(op->cmd);
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

/* ---------------------------------------------------------------- connection */

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ekv_origin *o = privdata;
    redisReply *reply = r;

    if (reply == NULL || ekv_origin_link_ctx(o->link) != ac)
        return; /* the connection is going away */
    if (reply->type == REDIS_REPLY_ERROR) {
        ekv_log(EKV_LOG_ERROR, "%s: SCRIPT LOAD refused: %s", ekv_origin_link_label(o->link),
                reply->str);
        ekv_origin_link_reset(o->link, "SCRIPT LOAD refused", true);
        return;
    }
    if (--o->setup_pending == 0) {
        ekv_origin_link_ready(o->link);
        if (ekv_origin_link_up(o->link) && o->state_cb != NULL)
            o->state_cb(true, o->state_arg);
    }
}

static void on_open(struct ekv_origin_link *link, struct redisAsyncContext *ac, void *arg)
{
    struct ekv_origin *o = arg;

    /* pipelined behind AUTH/SELECT and ahead of any command */
    o->setup_pending = 0;
    for (size_t i = 0; i < o->nscripts; i++) {
        const char *load[] = {"SCRIPT", "LOAD", o->scripts[i].body};
        if (redisAsyncCommandArgv(ac, on_script_loaded, o, 3, load, NULL) == REDIS_OK)
            o->setup_pending++;
    }
    if (o->setup_pending == 0) {
        const char *ping[] = {"PING"};
        if (redisAsyncCommandArgv(ac, on_script_loaded, o, 1, ping, NULL) == REDIS_OK)
            o->setup_pending++;
    }
}

static void on_close(bool was_ready, const char *why, void *arg)
{
    struct ekv_origin *o = arg;

    evtimer_del(o->deadline_ev);
    if (was_ready && o->state_cb != NULL)
        o->state_cb(false, o->state_arg);
}

/* ---------------------------------------------------------------- commands */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin *o = arg;
    struct ekv_origin_op *op = TAILQ_FIRST(&o->inflight);
    uint64_t now = ekv_mono_ms();

    if (op == NULL)
        return;
    if (op->deadline_ms > now) { /* the oldest op changed since the timer was armed */
        arm(o->deadline_ev, op->deadline_ms - now);
        return;
    }
    if (ekv_origin_link_log_now(o->link))
        ekv_log(EKV_LOG_WARN, "%s: no reply within %llu ms: resetting the connection",
                ekv_origin_link_label(o->link), (unsigned long long)o->timeout_ms);
    finish(op, EKV_ETIMEDOUT, NULL);
    /* frees op and the others in flight, through on_reply() */
    ekv_origin_link_reset(o->link, "command timed out", false);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ekv_origin_op *op = privdata;
    struct ekv_origin *o = op->o;
    redisReply *reply = r;

    TAILQ_REMOVE(&o->inflight, op, link);
    o->npending--;
    if (reply != NULL && op->is_script && !op->retried && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && ekv_origin_link_ctx(o->link) == ac) {
        /* the script cache was flushed: load it and send the same EVALSHA again, in order */
        const char *load[] = {"SCRIPT", "LOAD", o->scripts[op->script].body};
        op->retried = true;
        if (redisAsyncCommandArgv(ac, NULL, NULL, 3, load, NULL) == REDIS_OK &&
            redisAsyncFormattedCommand(ac, on_reply, op, op->cmd, op->cmdlen) == REDIS_OK) {
            op->deadline_ms = ekv_mono_ms() + o->timeout_ms;
            TAILQ_INSERT_TAIL(&o->inflight, op, link);
            o->npending++;
            return;
        }
    }
    finish(op, reply != NULL ? EKV_OK : EKV_ECLOSED, reply);
    op_free(op);
}

static struct ekv_origin_op *submit(struct ekv_origin *o, struct ekv_origin_op *op)
{
    redisAsyncContext *ac = ekv_origin_link_ctx(o->link);

    /* while down, or reconnecting after a failure, answer at once rather than queue */
    if (ekv_origin_link_failing(o->link) ||
        redisAsyncFormattedCommand(ac, on_reply, op, op->cmd, op->cmdlen) != REDIS_OK) {
        TAILQ_INSERT_TAIL(&o->failing, op, link);
        event_active(o->fail_ev, EV_TIMEOUT, 1);
        return op;
    }
    if (!op->is_script) { /* hiredis copied it; only scripts may need it again */
        ekv_free(op->cmd);
        op->cmd = NULL;
    }
    op->deadline_ms = ekv_mono_ms() + o->timeout_ms;
    op->sent_us = ekv_mono_us();
    if (TAILQ_EMPTY(&o->inflight))
        arm(o->deadline_ev, o->timeout_ms);
    TAILQ_INSERT_TAIL(&o->inflight, op, link);
    o->npending++;
    return op;
}

/* One RESP array of bulk strings: the @npre parts of @pre, then @argc of @argv (lengths from
 * the length arrays, or strlen when NULL). One allocation, no printf: every origin request is
 * formatted here. */
static char *format_resp(int npre, const char *const *pre, const size_t *prelen, int argc,
                         const char **argv, const size_t *argvlen, size_t *outlen)
{
    size_t total = 24, len;
    char *buf, *p;

    for (int i = 0; i < npre + argc; i++) {
        len = i < npre ? prelen[i]
                       : (argvlen != NULL ? argvlen[i - npre] : strlen(argv[i - npre]));
        total += 25 + len;
    }
    p = buf = ekv_malloc(total);
    *p++ = '*';
    p += ekv_fmt_u64(p, (uint64_t)(npre + argc));
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < npre + argc; i++) {
        const char *a = i < npre ? pre[i] : argv[i - npre];
        len = i < npre ? prelen[i]
                       : (argvlen != NULL ? argvlen[i - npre] : strlen(argv[i - npre]));
        *p++ = '$';
        p += ekv_fmt_u64(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, a, len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *outlen = (size_t)(p - buf);
    return buf;
}

static struct ekv_origin_op *op_new(struct ekv_origin *o, ekv_origin_cb *cb, void *arg)
{
    struct ekv_origin_op *op = ekv_calloc(1, sizeof(*op));

    op->o = o;
    op->cb = cb;
    op->arg = arg;
    return op;
}

struct ekv_origin_op *ekv_origin_cmd(struct ekv_origin *o, ekv_origin_cb *cb, void *arg, int argc,
                                     const char **argv, const size_t *argvlen)
{
    struct ekv_origin_op *op = op_new(o, cb, arg);

    op->cmd = format_resp(0, NULL, NULL, argc, argv, argvlen, &op->cmdlen);
    return submit(o, op);
}

struct ekv_origin_op *ekv_origin_eval(struct ekv_origin *o, size_t script, ekv_origin_cb *cb,
                                      void *arg, int nkeys, int argc, const char **argv,
                                      const size_t *argvlen)
{
    struct ekv_origin_op *op = op_new(o, cb, arg);
    char nk[24];
    const char *pre[3] = {"EVALSHA", o->scripts[script].sha, nk};
    size_t prelen[3] = {7, 40, ekv_fmt_u64(nk, (uint64_t)nkeys)};

    op->cmd = format_resp(3, pre, prelen, argc, argv, argvlen, &op->cmdlen);
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
    struct ekv_origin_link_hooks hooks = {.on_open = on_open, .on_close = on_close, .arg = o};
    char label[64];

    o->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : 1000;
    o->scripts = opts->scripts;
    o->nscripts = opts->nscripts;
    for (size_t i = 0; i < o->nscripts; i++)
        ekv_sha1_hex(o->scripts[i].body, strlen(o->scripts[i].body), o->scripts[i].sha);
    TAILQ_INIT(&o->inflight);
    TAILQ_INIT(&o->failing);
    o->deadline_ev = evtimer_new(base, on_deadline, o);
    o->fail_ev = event_new(base, -1, 0, fail_deferred, o);
    if (o->deadline_ev == NULL || o->fail_ev == NULL)
        abort();
    snprintf(label, sizeof(label), "origin: %s", opts->label != NULL ? opts->label : "origin");
    o->link = ekv_origin_link_new(base, opts->addr, o->timeout_ms, label, &hooks);
    return o;
}

void ekv_origin_free(struct ekv_origin *o)
{
    if (o == NULL)
        return;
    o->state_cb = NULL;
    o->observe_cb = NULL;
    ekv_origin_link_free(o->link); /* answers the ops in flight, through on_reply() */
    fail_deferred(-1, 0, o);
    event_free(o->deadline_ev);
    event_free(o->fail_ev);
    ekv_free(o);
}

void ekv_origin_set_state_cb(struct ekv_origin *o, ekv_origin_state_cb *cb, void *arg)
{
    o->state_cb = cb;
    o->state_arg = arg;
}

void ekv_origin_set_observer(struct ekv_origin *o, ekv_origin_observe_cb *cb, void *arg)
{
    o->observe_cb = cb;
    o->observe_arg = arg;
}

bool ekv_origin_connected(const struct ekv_origin *o)
{
    return ekv_origin_link_up(o->link);
}

size_t ekv_origin_pending(const struct ekv_origin *o)
{
    return o->npending;
}
