/* origin.c - one worker's command connection to the Redis origin, on a self-healing link
 * (link.c): Lua scripts loaded on every connect, pipelines answered as one, one deadline timer
 * for the commands in flight, failing fast while the origin is down.
 *
 * Replies arrive in order, and the link hands each one over (on_link_reply()): it belongs to the
 * oldest op in flight. So only that op can be late; when it is, the connection is stuck and is
 * reset (every op in flight is then answered, the late one with EKV_ETIMEDOUT). While the origin
 * is down, ops are answered with EKV_ECLOSED on the next loop turn: never synchronously, never
 * after a wait. Every op is freed in exactly one place: answer() once its replies are in, or
 * answer_all() when the connection goes (both on the in-flight list), fail_deferred() otherwise.
 * A pipeline is one op that keeps its commands' replies, as the reader built them, until its
 * last one is in. */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"
#include "edgekv/text.h"

#include "origin_int.h"

/* The link writes what was queued on the loop's next turn, so the commands of a whole batch of
 * client requests leave together, after the last one was parsed, and Redis sits idle until then.
 * Once this many ops are waiting they are written at once instead: Redis starts on them while
 * the rest of the batch is parsed (measured: more misses per second with 50 clients). */
#define EAGER_WRITE 8
/* A pipeline up to this long is formatted in one stretch of the link's output buffer. */
#define INLINE_MAX 4096

struct ekv_origin_op {
    TAILQ_ENTRY(ekv_origin_op) link; /* in o->inflight or o->failing */
    struct ekv_origin *o;
    ekv_origin_cb *cb; /* NULL once answered or canceled */
    void *arg;
    uint64_t deadline_ms;
    uint64_t sent_us;  /* for the observer's latency */
    struct ekv_origin_buf *cmd; /* a script's formatted command, kept for a NOSCRIPT retry */
    enum ekv_origin_kind kind;
    size_t id;         /* the script number, or a pipeline's tag (for the observer) */
    bool retried;
    unsigned skip;     /* replies to drop before this op's own (a retry's SCRIPT LOAD) */
    unsigned nwant;    /* replies this op is answered with: 1, or a pipeline's commands */
    unsigned ngot;
    redisReply *got[EKV_ORIGIN_PIPELINE_MAX];
};

TAILQ_HEAD(op_list, ekv_origin_op);

struct ekv_origin {
    struct ekv_origin_link *link;
    uint64_t timeout_ms;
    struct ekv_origin_script *scripts;
    size_t nscripts;
    unsigned setup_pending;  /* SCRIPT LOAD (or PING) replies still expected */
    struct op_list inflight; /* sent, in send order */
    size_t npending;
    struct op_list failing;  /* answered with EKV_ECLOSED on the next loop turn */
    struct event *deadline_ev, *fail_ev;
    ekv_origin_state_cb *state_cb;
    void *state_arg;
    ekv_origin_observe_cb *observe_cb;
    void *observe_arg;
    unsigned unwritten;      /* ops queued since the last eager write (see sent()) */
};

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = ekv_ms_tv(ms);

    evtimer_add(ev, &tv);
}

/* ---------------------------------------------------------------- answering ops */

const struct redisReply *ekv_origin_pipeline_error(const struct redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        return reply;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_ERROR)
            return reply->element[i];
    return NULL;
}

/* Whether Redis answered @op with an error: the reply, or (a pipeline) one of its commands'. */
static bool error_reply(const struct ekv_origin_op *op, const redisReply *reply)
{
    if (reply == NULL)
        return false;
    if (op->kind == EKV_ORIGIN_PIPELINE)
        return ekv_origin_pipeline_error(reply) != NULL;
    return reply->type == REDIS_REPLY_ERROR;
}

static void finish(struct ekv_origin_op *op, int status, const redisReply *reply)
{
    ekv_origin_cb *cb = op->cb;
    struct ekv_origin *o = op->o;

    if (cb != NULL && o->observe_cb != NULL)
        o->observe_cb(op->kind, op->id, status, error_reply(op, reply),
                      op->sent_us != 0 ? ekv_clock_now_us() - op->sent_us : 0, o->observe_arg);
    op->cb = NULL; /* at most once */
    if (cb != NULL)
        cb(status, (const struct redisReply *)reply, op->arg);
}

static void op_free(struct ekv_origin_op *op)
{
    for (unsigned i = 0; i < op->ngot; i++)
        ekv_origin_reply_free(op->got[i]);
    ekv_origin_buf_unref(op->cmd);
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

/* Every op in flight, answered with EKV_ECLOSED (the connection is gone), in order. A callback
 * may queue new ops: the link is down by now, so they go to o->failing. */
static void answer_all(struct ekv_origin *o)
{
    struct ekv_origin_op *op;

    while ((op = TAILQ_FIRST(&o->inflight)) != NULL) {
        TAILQ_REMOVE(&o->inflight, op, link);
        o->npending--;
        finish(op, EKV_ECLOSED, NULL);
        op_free(op);
    }
}

/* ---------------------------------------------------------------- connection */

/* A reply to the connection's setup: SCRIPT LOAD, or the PING sent when there is no script. */
static void setup_reply(struct ekv_origin *o, redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR) {
        ekv_log(EKV_LOG_ERROR, "%s: SCRIPT LOAD refused: %s", ekv_origin_link_label(o->link),
                reply->str);
        ekv_origin_reply_free(reply);
        ekv_origin_link_reset(o->link, "SCRIPT LOAD refused", false);
        return;
    }
    ekv_origin_reply_free(reply);
    if (--o->setup_pending == 0) {
        ekv_origin_link_ready(o->link);
        if (ekv_origin_link_up(o->link) && o->state_cb != NULL)
            o->state_cb(true, o->state_arg);
    }
}

static void on_open(struct ekv_origin_link *link, void *arg)
{
    struct ekv_origin *o = arg;

    /* queued behind AUTH/SELECT and ahead of any command */
    o->setup_pending = 0;
    for (size_t i = 0; i < o->nscripts; i++) {
        const char *load[] = {"SCRIPT", "LOAD", o->scripts[i].body};
        ekv_origin_link_sendv(link, 3, load, NULL);
        o->setup_pending++;
    }
    if (o->setup_pending == 0) {
        const char *ping[] = {"PING"};
        ekv_origin_link_sendv(link, 1, ping, NULL);
        o->setup_pending++;
    }
}

static void on_close(bool was_ready, const char *why, void *arg)
{
    struct ekv_origin *o = arg;

    evtimer_del(o->deadline_ev);
    o->setup_pending = 0;
    o->unwritten = 0;
    answer_all(o);
    if (was_ready && o->state_cb != NULL)
        o->state_cb(false, o->state_arg);
}

/* ---------------------------------------------------------------- commands */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin *o = arg;
    struct ekv_origin_op *op = TAILQ_FIRST(&o->inflight);
    uint64_t now = ekv_clock_now_ms();

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
    /* frees op and the others in flight, through on_close() */
    ekv_origin_link_reset(o->link, "command timed out", false);
}

/* @op was queued on the link: it is in flight from now on. */
static struct ekv_origin_op *sent(struct ekv_origin *o, struct ekv_origin_op *op)
{
    op->sent_us = ekv_clock_now_us();
    op->deadline_ms = op->sent_us / 1000 + o->timeout_ms;
    if (TAILQ_EMPTY(&o->inflight))
        arm(o->deadline_ev, o->timeout_ms);
    TAILQ_INSERT_TAIL(&o->inflight, op, link);
    o->npending++;
    if (++o->unwritten >= EAGER_WRITE && ekv_origin_link_up(o->link)) {
        o->unwritten = 0;
        ekv_origin_link_flush(o->link); /* a failure resets the link later, not here */
    }
    return op;
}

/* The script cache was flushed (or this is a new node): load the script and send the same
 * EVALSHA again, behind everything in flight. */
static void retry_script(struct ekv_origin *o, struct ekv_origin_op *op)
{
    const char *load[] = {"SCRIPT", "LOAD", o->scripts[op->id].body};

    TAILQ_REMOVE(&o->inflight, op, link);
    o->npending--;
    op->retried = true;
    op->skip = 1; /* SCRIPT LOAD's own reply */
    ekv_origin_link_sendv(o->link, 3, load, NULL);
    ekv_origin_link_send_buf(o->link, op->cmd);
    op->deadline_ms = ekv_clock_now_ms() + o->timeout_ms;
    if (TAILQ_EMPTY(&o->inflight))
        arm(o->deadline_ev, o->timeout_ms);
    TAILQ_INSERT_TAIL(&o->inflight, op, link);
    o->npending++;
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Every reply on the connection after AUTH/SELECT, in order: the setup's, then the ops'. */
static void on_link_reply(struct redisReply *reply, void *arg)
{
    struct ekv_origin *o = arg;
    struct ekv_origin_op *op = TAILQ_FIRST(&o->inflight);

    if (o->setup_pending > 0) {
        setup_reply(o, reply);
        return;
    }
    if (op == NULL) { /* a reply nobody asked for: the stream cannot be trusted any more */
        ekv_origin_reply_free(reply);
        ekv_origin_link_reset(o->link, "a reply to no command", false);
        return;
    }
    if (op->skip > 0) {
        op->skip--;
        ekv_origin_reply_free(reply);
        return;
    }
    if (op->kind == EKV_ORIGIN_SCRIPT && !op->retried && is_noscript(reply) &&
        ekv_origin_link_up(o->link)) {
        ekv_origin_reply_free(reply);
        retry_script(o, op);
        return;
    }
    op->got[op->ngot++] = reply;
    if (op->ngot < op->nwant)
        return;
    TAILQ_REMOVE(&o->inflight, op, link);
    o->npending--;
    if (op->kind == EKV_ORIGIN_PIPELINE) {
        /* the pipeline's answer: its commands' replies, in order */
        redisReply answer = {.type = REDIS_REPLY_ARRAY, .elements = op->ngot, .element = op->got};
        finish(op, EKV_OK, &answer);
    } else {
        finish(op, EKV_OK, reply);
    }
    op_free(op);
}

/* Answers @op with EKV_ECLOSED on the next loop turn. */
static struct ekv_origin_op *fail_soon(struct ekv_origin *o, struct ekv_origin_op *op)
{
    TAILQ_INSERT_TAIL(&o->failing, op, link);
    event_active(o->fail_ev, EV_TIMEOUT, 1);
    return op;
}

static struct ekv_origin_op *op_new(struct ekv_origin *o, ekv_origin_cb *cb, void *arg,
                                    enum ekv_origin_kind kind, size_t id)
{
    struct ekv_origin_op *op = ekv_calloc(1, sizeof(*op));

    op->o = o;
    op->cb = cb;
    op->arg = arg;
    op->kind = kind;
    op->id = id;
    op->nwant = 1;
    return op;
}

struct ekv_origin_op *ekv_origin_cmd(struct ekv_origin *o, ekv_origin_cb *cb, void *arg, int argc,
                                     const char **argv, const size_t *argvlen)
{
    struct ekv_origin_op *op = op_new(o, cb, arg, EKV_ORIGIN_CMD, 0);

    /* while down, or reconnecting after a failure, answer at once rather than queue */
    if (ekv_origin_link_failing(o->link))
        return fail_soon(o, op);
    ekv_origin_link_sendv(o->link, argc, argv, argvlen);
    return sent(o, op);
}

struct ekv_origin_op *ekv_origin_eval(struct ekv_origin *o, size_t script, ekv_origin_cb *cb,
                                      void *arg, int nkeys, int argc, const char **argv,
                                      const size_t *argvlen)
{
    struct ekv_origin_op *op = op_new(o, cb, arg, EKV_ORIGIN_SCRIPT, script);
    enum { NPRE = 3 };
    const char *stack_av[16];
    size_t stack_len[16];
    const char **av = stack_av;
    size_t *avlen = stack_len;
    char nk[24];
    char *p;

    if (ekv_origin_link_failing(o->link))
        return fail_soon(o, op);
    if (argc + NPRE > (int)EKV_ARRAY_LEN(stack_av)) {
        av = ekv_malloc((size_t)(argc + NPRE) * sizeof(*av));
        avlen = ekv_malloc((size_t)(argc + NPRE) * sizeof(*avlen));
    }
    av[0] = "EVALSHA";
    avlen[0] = 7;
    av[1] = o->scripts[script].sha;
    avlen[1] = 40;
    av[2] = nk;
    avlen[2] = ekv_fmt_u64(nk, (uint64_t)nkeys);
    for (int i = 0; i < argc; i++) {
        av[NPRE + i] = argv[i];
        avlen[NPRE + i] = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
    }
    /* kept (by reference) for a NOSCRIPT retry; the link writes from it too */
    op->cmd = ekv_origin_buf_new(ekv_resp_size(argc + NPRE, av, avlen));
    p = ekv_origin_buf_data(op->cmd);
    ekv_origin_buf_set_len(op->cmd, (size_t)(ekv_resp_write(p, argc + NPRE, av, avlen) - p));
    if (av != stack_av) {
        ekv_free(av);
        ekv_free(avlen);
    }
    ekv_origin_link_send_buf(o->link, op->cmd);
    return sent(o, op);
}

struct ekv_origin_op *ekv_origin_pipeline(struct ekv_origin *o, size_t tag, ekv_origin_cb *cb,
                                          void *arg, size_t ncmds,
                                          const struct ekv_origin_argv *cmds)
{
    struct ekv_origin_op *op = op_new(o, cb, arg, EKV_ORIGIN_PIPELINE, tag);

    assert(ncmds >= 1 && ncmds <= EKV_ORIGIN_PIPELINE_MAX);
    size_t max = 0;

    op->nwant = (unsigned)ncmds;
    if (ekv_origin_link_failing(o->link))
        return fail_soon(o, op);
    for (size_t i = 0; i < ncmds; i++)
        max += ekv_resp_size(cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
    if (max <= INLINE_MAX) { /* the usual: all of it formatted in one stretch of the output */
        char *start = ekv_origin_link_reserve(o->link, max), *p = start;
        for (size_t i = 0; i < ncmds; i++)
            p = ekv_resp_write(p, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        ekv_origin_link_commit(o->link, start, p);
    } else {
        for (size_t i = 0; i < ncmds; i++)
            ekv_origin_link_sendv(o->link, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
    }
    return sent(o, op);
}

void ekv_origin_cancel(struct ekv_origin_op *op)
{
    op->cb = NULL; /* freed as usual once answered */
}

/* ---------------------------------------------------------------- life */

struct ekv_origin *ekv_origin_new(struct event_base *base, const struct ekv_origin_opts *opts)
{
    struct ekv_origin *o = ekv_calloc(1, sizeof(*o));
    struct ekv_origin_link_hooks hooks = {
        .on_open = on_open, .on_reply = on_link_reply, .on_close = on_close, .arg = o};
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
        EKV_FATAL("origin: out of memory");
    snprintf(label, sizeof(label), "origin: %s", opts->label != NULL ? opts->label : "origin");
    o->link = ekv_origin_link_new(base, opts->addr, opts->sentinel, opts->tls, o->timeout_ms,
                                  label, &hooks);
    return o;
}

void ekv_origin_free(struct ekv_origin *o)
{
    if (o == NULL)
        return;
    o->state_cb = NULL;
    o->observe_cb = NULL;
    ekv_origin_link_free(o->link); /* answers the ops in flight, through on_close() */
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

void ekv_origin_error(const struct ekv_origin *o, char *buf, size_t len)
{
    ekv_origin_link_error(o->link, buf, len);
}

size_t ekv_origin_pending(const struct ekv_origin *o)
{
    return o->npending;
}
