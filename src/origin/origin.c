/* origin.c - one worker's command connection to the Redis origin, on a self-healing link
 * (link.c): Lua scripts loaded on every connect, pipelines answered as one, one deadline timer
 * for the commands in flight, failing fast while the origin is down, and lean reply objects.
 *
 * Replies arrive in order, so only the oldest command in flight can be late; when it is, the
 * connection is stuck and is reset (every command in flight is then answered, the late one with
 * EKV_ETIMEDOUT). While the origin is down, commands are answered with EKV_ECLOSED on the next
 * loop turn: never synchronously, never after a wait. Every op is freed in exactly one place:
 * on_reply() for ops handed to hiredis (which calls each callback exactly once, with NULL when
 * the connection goes), fail_deferred() otherwise. A pipeline is one op, answered and freed by
 * its last command's callback (on_reply()); the earlier commands' callbacks (on_early()) only copy
 * their replies into it, and hiredis calls them first, also when the connection breaks. */
#include "config.h"

#include <assert.h>
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

/* hiredis writes what was queued on the loop's next turn, so the commands of a whole batch of
 * client requests leave together, after the last one was parsed, and Redis sits idle until then.
 * Once this many ops are waiting they are written at once instead: Redis starts on them while
 * the rest of the batch is parsed (measured: more misses per second with 50 clients). */
#define EAGER_WRITE 8

struct ekv_origin_op {
    TAILQ_ENTRY(ekv_origin_op) link; /* in o->inflight or o->failing */
    struct ekv_origin *o;
    ekv_origin_cb *cb; /* NULL once answered or canceled */
    void *arg;
    uint64_t deadline_ms;
    uint64_t sent_us;  /* for the observer's latency */
    char *cmd; /* the formatted command, kept by scripts for a NOSCRIPT retry */
    size_t cmdlen;
    enum ekv_origin_kind kind;
    size_t id; /* the script number, or a pipeline's tag (for the observer) */
    bool retried;
    unsigned nearly; /* a pipeline's earlier replies, copied (on_early()) */
    redisReply early[EKV_ORIGIN_PIPELINE_MAX - 1];
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
                      op->sent_us != 0 ? ekv_mono_us() - op->sent_us : 0, o->observe_arg);
    op->cb = NULL; /* at most once */
    if (cb != NULL)
        cb(status, (const struct redisReply *)reply, op->arg);
}

/* A copy of @r into @to that owns its string or elements (so, for integers and nils, no
 * allocation at all). */
static void reply_copy(redisReply *to, const redisReply *r)
{
    *to = (redisReply){.type = r->type, .integer = r->integer};
    if (r->type == REDIS_REPLY_ARRAY) {
        to->elements = r->elements;
        to->element = ekv_calloc(r->elements + 1, sizeof(*to->element));
        for (size_t i = 0; i < r->elements; i++) {
            to->element[i] = ekv_malloc(sizeof(redisReply));
            reply_copy(to->element[i], r->element[i]);
        }
    } else if (r->str != NULL) {
        to->len = r->len;
        to->str = ekv_malloc(r->len + 1);
        memcpy(to->str, r->str, r->len);
        to->str[r->len] = '\0';
    }
}

/* Frees what reply_copy() allocated for @r. */
static void reply_clear(redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY) {
        ekv_free(r->str);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        reply_clear(r->element[i]);
        ekv_free(r->element[i]);
    }
    ekv_free(r->element);
}

static void op_free(struct ekv_origin_op *op)
{
    for (unsigned i = 0; i < op->nearly; i++)
        reply_clear(&op->early[i]);
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

/* ---------------------------------------------------------------- reply objects
 *
 * hiredis builds each reply with two allocations (the struct, then its string or element
 * vector). On this connection replies are built here instead: the struct and its string or
 * element vector in one allocation, and the replies that carry nothing ("+OK", nil) are shared
 * static objects that cost none. They stay standard redisReply structs (callers read them as
 * such) and are read-only for everybody; free_reply() skips the static ones. Only the command
 * connection uses them: the invalidation link keeps hiredis's own objects, which its subscribe
 * handling reads. A failed allocation returns NULL, which hiredis turns into an out-of-memory
 * error on the connection (a peer announcing a huge array must not abort the process). The
 * object functions' signatures are 0.14's; hiredis 1.x keeps its defaults. */
#if HIREDIS_MAJOR == 0
#define LEAN_REPLIES 1

static char ok_str[] = "OK";
static redisReply reply_ok = {.type = REDIS_REPLY_STATUS, .len = 2, .str = ok_str};
static redisReply reply_nil = {.type = REDIS_REPLY_NIL};

/* Links @r into its parent array (as hiredis's own functions do) and returns it. */
static void *attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *new_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r;

    if (task->type == REDIS_REPLY_STATUS && len == 2 && memcmp(str, "OK", 2) == 0)
        return attach(task, &reply_ok);
    if (len > SIZE_MAX - sizeof(*r) - 1 || (r = malloc(sizeof(*r) + len + 1)) == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->type = task->type; /* a string, a status or an error */
    r->str = (char *)(r + 1);
    r->len = len;
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    return attach(task, r);
}

static void *new_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r;

    if (n > (SIZE_MAX - sizeof(*r)) / sizeof(redisReply *) ||
        (r = calloc(1, sizeof(*r) + n * sizeof(redisReply *))) == NULL)
        return NULL;
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    /* zeroed: an array cut short by an error is freed with its missing elements NULL */
    r->element = n > 0 ? (redisReply **)(void *)(r + 1) : NULL;
    return attach(task, r);
}

static void *new_integer(const redisReadTask *task, long long value)
{
    redisReply *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->type = REDIS_REPLY_INTEGER;
    r->integer = value;
    return attach(task, r);
}

static void *new_nil(const redisReadTask *task)
{
    return attach(task, &reply_nil);
}

static void free_reply(void *obj)
{
    redisReply *r = obj;

    if (r == NULL || r == &reply_ok || r == &reply_nil)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            free_reply(r->element[i]);
    free(r); /* its string or element vector with it */
}

static redisReplyObjectFunctions reply_fns = {new_string, new_array, new_integer, new_nil,
                                              free_reply};
#endif

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

#ifdef LEAN_REPLIES
    ac->c.reader->fn = &reply_fns; /* nothing has been read yet */
#endif
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
    if (reply != NULL && op->kind == EKV_ORIGIN_SCRIPT && !op->retried &&
        reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
        ekv_origin_link_ctx(o->link) == ac) {
        /* the script cache was flushed: load it and send the same EVALSHA again, in order */
        const char *load[] = {"SCRIPT", "LOAD", o->scripts[op->id].body};
        op->retried = true;
        if (redisAsyncCommandArgv(ac, NULL, NULL, 3, load, NULL) == REDIS_OK &&
            redisAsyncFormattedCommand(ac, on_reply, op, op->cmd, op->cmdlen) == REDIS_OK) {
            op->deadline_ms = ekv_mono_ms() + o->timeout_ms;
            TAILQ_INSERT_TAIL(&o->inflight, op, link);
            o->npending++;
            return;
        }
    }
    if (reply != NULL && op->kind == EKV_ORIGIN_PIPELINE) {
        /* the pipeline's answer: its earlier replies, then this one */
        redisReply *all[EKV_ORIGIN_PIPELINE_MAX];
        redisReply answer = {.type = REDIS_REPLY_ARRAY, .elements = op->nearly + 1, .element = all};

        for (unsigned i = 0; i < op->nearly; i++)
            all[i] = &op->early[i];
        all[op->nearly] = reply;
        reply = &answer;
        finish(op, EKV_OK, reply);
    } else {
        finish(op, reply != NULL ? EKV_OK : EKV_ECLOSED, reply);
    }
    op_free(op);
}

/* The reply to a command of a pipeline other than its last: copied into the op, which outlives
 * this callback (its last command's, on_reply(), comes after). NULL: the connection went, and
 * on_reply() answers. */
static void on_early(redisAsyncContext *ac, void *r, void *privdata)
{
    struct ekv_origin_op *op = privdata;

    (void)ac;
    if (r != NULL && op->nearly < EKV_ARRAY_LEN(op->early))
        reply_copy(&op->early[op->nearly++], r);
}

/* Answers @op with EKV_ECLOSED on the next loop turn. */
static struct ekv_origin_op *fail_soon(struct ekv_origin *o, struct ekv_origin_op *op)
{
    TAILQ_INSERT_TAIL(&o->failing, op, link);
    event_active(o->fail_ev, EV_TIMEOUT, 1);
    return op;
}

/* @op was handed to hiredis: it is in flight from now on. */
static struct ekv_origin_op *sent(struct ekv_origin *o, struct ekv_origin_op *op)
{
    op->sent_us = ekv_mono_us();
    op->deadline_ms = op->sent_us / 1000 + o->timeout_ms;
    if (TAILQ_EMPTY(&o->inflight))
        arm(o->deadline_ev, o->timeout_ms);
    TAILQ_INSERT_TAIL(&o->inflight, op, link);
    o->npending++;
    if (++o->unwritten >= EAGER_WRITE && ekv_origin_link_up(o->link)) {
        redisAsyncContext *ac = ekv_origin_link_ctx(o->link);
        int done;

        /* the synchronous writer calls no callback: a failure sets the context's error, which
         * hiredis acts on (answering every op) at its write event, still registered */
        o->unwritten = 0;
        (void)redisBufferWrite(&ac->c, &done);
    }
    return op;
}

static struct ekv_origin_op *submit(struct ekv_origin *o, struct ekv_origin_op *op)
{
    redisAsyncContext *ac = ekv_origin_link_ctx(o->link);

    /* while down, or reconnecting after a failure, answer at once rather than queue */
    if (ekv_origin_link_failing(o->link) ||
        redisAsyncFormattedCommand(ac, on_reply, op, op->cmd, op->cmdlen) != REDIS_OK)
        return fail_soon(o, op);
    if (op->kind != EKV_ORIGIN_SCRIPT) { /* hiredis copied it; only scripts may need it again */
        ekv_free(op->cmd);
        op->cmd = NULL;
    }
    return sent(o, op);
}

/* The most bytes resp_write() writes for these parts (see there), and one more at least.
 * NUL_AFTER: hiredis looks at the byte after a command's first argument to see whether more
 * follow (and so reads one byte past a one-word command such as PING); its own
 * formatted commands have a NUL there, and so do ours. */
static size_t resp_max(int npre, const size_t *prelen, int argc, const char **argv,
                       const size_t *argvlen)
{
    size_t total = 24;

    for (int i = 0; i < npre + argc; i++)
        total += 25 + (i < npre ? prelen[i]
                                : (argvlen != NULL ? argvlen[i - npre] : strlen(argv[i - npre])));
    return total;
}

/* One RESP array of bulk strings at @p: the @npre parts of @pre, then @argc of @argv (lengths
 * from the length arrays, or strlen when NULL). Returns the end. No printf: every origin request
 * is formatted here. */
static char *resp_write(char *p, int npre, const char *const *pre, const size_t *prelen, int argc,
                        const char **argv, const size_t *argvlen)
{
    *p++ = '*';
    p += ekv_fmt_u64(p, (uint64_t)(npre + argc));
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < npre + argc; i++) {
        const char *a = i < npre ? pre[i] : argv[i - npre];
        size_t len = i < npre ? prelen[i]
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
    return p;
}

/* resp_write() into a new buffer of its own (one allocation); its length in *@outlen. */
static char *format_resp(int npre, const char *const *pre, const size_t *prelen, int argc,
                         const char **argv, const size_t *argvlen, size_t *outlen)
{
    char *buf = ekv_malloc(resp_max(npre, prelen, argc, argv, argvlen));

    *outlen = (size_t)(resp_write(buf, npre, pre, prelen, argc, argv, argvlen) - buf);
    buf[*outlen] = '\0'; /* see NUL_AFTER */
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
    op->kind = EKV_ORIGIN_CMD;
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
    op->kind = EKV_ORIGIN_SCRIPT;
    op->id = script;
    return submit(o, op);
}

struct ekv_origin_op *ekv_origin_pipeline(struct ekv_origin *o, size_t tag, ekv_origin_cb *cb,
                                          void *arg, size_t ncmds,
                                          const struct ekv_origin_argv *cmds)
{
    struct ekv_origin_op *op = op_new(o, cb, arg);
    redisAsyncContext *ac = ekv_origin_link_ctx(o->link);
    char stack[1024], *buf = stack, *p, *end;
    size_t total = 0;

    assert(ncmds >= 1 && ncmds <= EKV_ORIGIN_PIPELINE_MAX);
    op->kind = EKV_ORIGIN_PIPELINE;
    op->id = tag;
    if (ekv_origin_link_failing(o->link))
        return fail_soon(o, op);
    for (size_t i = 0; i < ncmds; i++)
        total += resp_max(0, NULL, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
    if (total > sizeof(stack))
        buf = ekv_malloc(total);
    p = buf;
    for (size_t i = 0; i < ncmds; i++) {
        bool last = i + 1 == ncmds;
        int rc;

        end = resp_write(p, 0, NULL, NULL, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        *end = '\0'; /* see NUL_AFTER; the next command overwrites it */
        /* one hiredis command per Redis command, so that hiredis's queue of callbacks stays in
         * step with the replies */
        rc = redisAsyncFormattedCommand(ac, last ? on_reply : on_early, op, p, (size_t)(end - p));
        if (rc != REDIS_OK && i == 0) { /* nothing was queued: fail like any command */
            if (buf != stack)
                ekv_free(buf);
            return fail_soon(o, op);
        }
        if (rc != REDIS_OK) {
            /* hiredis checks its state before anything else, so once the first command was
             * accepted only out of memory can refuse one; the callbacks queued hold the op.
             * Like ekv_malloc(): give up. */
            ekv_log(EKV_LOG_ERROR, "%s: out of memory queueing a pipeline",
                    ekv_origin_link_label(o->link));
            abort();
        }
        p = end;
    }
    if (buf != stack)
        ekv_free(buf);
    return sent(o, op);
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
