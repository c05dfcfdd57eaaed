/* origin.c - one worker's command connections to the Redis origin, each on a self-healing link
 * (link.c): Lua scripts loaded on every connect, pipelines answered as one, one deadline timer
 * per connection for the commands in flight, failing fast while the origin is down. A
 * standalone origin (or the master Sentinels name) is one node; a Redis Cluster is one node per
 * master, with the slot map (cluster.c) saying which one serves each command's key.
 *
 * Replies arrive in order on each connection, and the link hands each one over
 * (on_link_reply()): it belongs to the oldest op in flight on that node. So only that op can be
 * late; when it is, the connection is stuck and is reset (every op in flight there is then
 * answered, the late one with EKV_ETIMEDOUT). While a node is down, ops for it are answered with
 * EKV_ECLOSED on the next loop turn: never synchronously, never after a wait. Every op is freed
 * in exactly one place: answer() once its replies are in, or answer_all() when its connection
 * goes (both on a node's in-flight list), fail_deferred() otherwise. A pipeline is one op that
 * keeps its commands' replies, as the reader built them, until its last one is in.
 *
 * Cluster redirections: a reply that proves the command did not run (MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN) sends the same bytes again, within the op's own deadline (and MOVED or ASK at most
 * MAX_REDIRECTS times): MOVED to the new owner (the map is patched and a refresh is asked for),
 * ASK to the target once behind ASKING, TRYAGAIN and CLUSTERDOWN to the owner after a backoff.
 * Anything else (an error that is not a redirection, a lost connection) is the caller's, so a
 * write is never resent on a guess. */
#include "config.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
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
/* Redirections one op may follow (hiredis-cluster's and libvalkey's default). */
#define MAX_REDIRECTS 5
/* The slot map is asked for at most this often on MOVED or a lost node, and this often anyway. */
#define REFRESH_THROTTLE_MS 1000
#define OUTAGE_THROTTLE_MS 100
#define REFRESH_EVERY_MS 10000
#define NO_NODE UINT16_MAX

struct node;

struct ekv_origin_op {
    TAILQ_ENTRY(ekv_origin_op) link; /* in a node's inflight, o->failing or o->later */
    struct ekv_origin *o;
    struct node *n;    /* where it is in flight */
    ekv_origin_cb *cb; /* NULL once answered or canceled */
    void *arg;
    uint64_t deadline_ms;
    uint64_t sent_us;  /* for the observer's latency */
    uint64_t retry_ms; /* in o->later: when to send it again */
    struct ekv_origin_buf *cmd; /* the formatted command(s), kept for a resend (a script's
                                 * NOSCRIPT, a cluster redirection) */
    struct ekv_origin_buf *part[EKV_ORIGIN_PIPELINE_MAX]; /* cluster pipelines: each command */
    enum ekv_origin_kind kind;
    size_t id;         /* the script number, or a pipeline's tag (for the observer) */
    bool retried;      /* NOSCRIPT retried */
    bool internal;     /* the origin's own (the slot map): no observer */
    bool keyed;        /* has a key, so a slot */
    unsigned slot;
    unsigned redirects; /* MOVED and ASK followed since the last TRYAGAIN */
    unsigned retries;   /* TRYAGAIN and CLUSTERDOWN waited out */
    unsigned seq;      /* replies seen on this op's connection since it was (re)sent */
    uint32_t skip;     /* bit i: reply i is not the op's (SCRIPT LOAD, ASKING) */
    unsigned nwant;    /* replies this op is answered with: 1, or a pipeline's commands */
    unsigned ngot;
    redisReply *got[EKV_ORIGIN_PIPELINE_MAX];
};

TAILQ_HEAD(op_list, ekv_origin_op);

/* One connection: the standalone origin, or one cluster node. */
struct node {
    struct ekv_origin *o;
    struct ekv_origin_link *link;
    struct ekv_conf_origin addr; /* cluster: host points at host[] */
    char host[64];
    char name[72];           /* "host:port" ("[host]:port" for IPv6), for the metrics */
    unsigned setup_pending;  /* SCRIPT LOAD (or PING) replies still expected */
    struct op_list inflight; /* sent, in send order */
    size_t npending;
    struct event *deadline_ev;
    unsigned unwritten;      /* ops queued since the last eager write (see sent()) */
    atomic_bool serving;     /* cluster: owns slots in the current map (any thread reads) */
    atomic_ullong commands;  /* sent here, resends included (any thread reads) */
};

struct ekv_origin {
    struct event_base *base;
    uint64_t timeout_ms;
    struct ekv_origin_buf *setup; /* opts.setup, formatted */
    struct ekv_origin_script *scripts;
    size_t nscripts;
    const struct ekv_origin_tls *tls;
    char label[64];
    struct node **nodes; /* room for EKV_CLUSTER_MAX_NODES (one when standalone): never
                          * moved, so other threads may read the first nnodes_pub */
    size_t nnodes;
    atomic_size_t nnodes_pub; /* complete nodes, for other threads */
    struct op_list failing;  /* answered with EKV_ECLOSED on the next loop turn */
    struct event *fail_ev;
    ekv_origin_state_cb *state_cb;
    void *state_arg;
    ekv_origin_observe_cb *observe_cb;
    void *observe_arg;

    bool freeing;

    /* Redis Cluster */
    bool cluster;
    const struct ekv_conf_origin *cred; /* user, password (borrowed) */
    uint16_t *owner;          /* [EKV_ORIGIN_SLOTS]: index into nodes, NO_NODE: none */
    unsigned served;          /* slots with an owner */
    struct op_list later;     /* TRYAGAIN/CLUSTERDOWN: sent again at retry_ms */
    struct event *later_ev, *refresh_ev;
    bool refreshing;
    uint64_t refreshed_ms;    /* when the last refresh was asked for */
    uint64_t refresh_ms;      /* how often anyway */
    atomic_bool up;           /* any thread: every slot served by a node that is up */
    pthread_mutex_t err_lock;
    char error[200];
    atomic_ullong moved, ask, tryagain, refreshes;
    char map_from[64];        /* the node asked for the map (an empty endpoint is it) */
    ekv_origin_map_cb *map_cb; /* told of every change of a slot's owner */
    void *map_arg;
    struct ekv_log_limit name_log;
};

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = ekv_ms_tv(ms);

    evtimer_add(ev, &tv);
}

static void update_up(struct ekv_origin *o);
static void refresh_soon(struct ekv_origin *o, bool force);

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

    if (cb != NULL && o->observe_cb != NULL && !op->internal)
        o->observe_cb(op->kind, op->id, status, error_reply(op, reply),
                      op->sent_us != 0 ? ekv_clock_now_us() - op->sent_us : 0, o->observe_arg);
    op->cb = NULL; /* at most once */
    if (cb != NULL)
        cb(status, (const struct redisReply *)reply, op->arg);
}

static void drop_replies(struct ekv_origin_op *op)
{
    for (unsigned i = 0; i < op->ngot; i++)
        ekv_origin_reply_free(op->got[i]);
    op->ngot = 0;
}

static void op_free(struct ekv_origin_op *op)
{
    drop_replies(op);
    ekv_origin_buf_unref(op->cmd);
    for (unsigned i = 0; i < EKV_ORIGIN_PIPELINE_MAX; i++)
        ekv_origin_buf_unref(op->part[i]);
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

/* Answers @op with EKV_ECLOSED on the next loop turn. */
static struct ekv_origin_op *fail_soon(struct ekv_origin *o, struct ekv_origin_op *op)
{
    op->n = NULL;
    TAILQ_INSERT_TAIL(&o->failing, op, link);
    event_active(o->fail_ev, EV_TIMEOUT, 1);
    return op;
}

/* Every op in flight on @n, answered with EKV_ECLOSED (the connection is gone), in order. A
 * callback may queue new ops: the link is down by now, so they go to o->failing. */
static void answer_all(struct node *n)
{
    struct ekv_origin_op *op;

    while ((op = TAILQ_FIRST(&n->inflight)) != NULL) {
        TAILQ_REMOVE(&n->inflight, op, link);
        n->npending--;
        finish(op, EKV_ECLOSED, NULL);
        op_free(op);
    }
}

/* ---------------------------------------------------------------- connection */

/* A reply to the connection's setup: SCRIPT LOAD, or the PING sent when there is no script. */
static void setup_reply(struct node *n, redisReply *reply)
{
    struct ekv_origin *o = n->o;

    if (reply->type == REDIS_REPLY_ERROR) {
        ekv_log(EKV_LOG_ERROR, "%s: the connection's setup refused (SCRIPT LOAD or the layout "
                               "check): %s",
                ekv_origin_link_label(n->link), reply->str);
        ekv_origin_reply_free(reply);
        ekv_origin_link_reset(n->link, "setup refused", false);
        return;
    }
    ekv_origin_reply_free(reply);
    if (--n->setup_pending == 0) {
        ekv_origin_link_ready(n->link);
        if (!ekv_origin_link_up(n->link))
            return;
        if (o->cluster) {
            if (o->served == 0)
                refresh_soon(o, true); /* the first node up: ask it for the map */
            update_up(o);
        } else if (o->state_cb != NULL) {
            o->state_cb(true, o->state_arg);
        }
    }
}

static void on_open(struct ekv_origin_link *link, void *arg)
{
    struct node *n = arg;

    /* queued behind AUTH/SELECT and ahead of any command */
    n->setup_pending = 0;
    for (size_t i = 0; i < n->o->nscripts; i++) {
        const char *load[] = {"SCRIPT", "LOAD", n->o->scripts[i].body};
        ekv_origin_link_sendv(link, 3, load, NULL);
        n->setup_pending++;
    }
    if (n->o->setup != NULL) {
        ekv_origin_link_send_buf(link, n->o->setup);
        n->setup_pending++;
    }
    if (n->setup_pending == 0) {
        const char *ping[] = {"PING"};
        ekv_origin_link_sendv(link, 1, ping, NULL);
        n->setup_pending++;
    }
}

static void on_close(bool was_ready, const char *why, void *arg)
{
    struct node *n = arg;
    struct ekv_origin *o = n->o;

    evtimer_del(n->deadline_ev);
    n->setup_pending = 0;
    n->unwritten = 0;
    answer_all(n);
    if (o->cluster && !o->freeing) {
        if (n->serving) {
            pthread_mutex_lock(&o->err_lock);
            snprintf(o->error, sizeof(o->error), "%s:%u: %.120s", n->host,
                     (unsigned)n->addr.port, why);
            pthread_mutex_unlock(&o->err_lock);
        }
        update_up(o);
        refresh_soon(o, false); /* a failover may be under way */
    } else if (was_ready && o->state_cb != NULL) {
        o->state_cb(false, o->state_arg);
    }
}

/* ---------------------------------------------------------------- commands */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct node *n = arg;
    struct ekv_origin_op *op = TAILQ_FIRST(&n->inflight);
    uint64_t now = ekv_clock_now_ms();

    if (op == NULL)
        return;
    if (op->deadline_ms > now) { /* the oldest op changed since the timer was armed */
        arm(n->deadline_ev, op->deadline_ms - now);
        return;
    }
    if (ekv_origin_link_log_now(n->link))
        ekv_log(EKV_LOG_WARN, "%s: no reply within %llu ms: resetting the connection",
                ekv_origin_link_label(n->link), (unsigned long long)n->o->timeout_ms);
    finish(op, EKV_ETIMEDOUT, NULL);
    /* frees op and the others in flight, through on_close() */
    ekv_origin_link_reset(n->link, "command timed out", false);
}

/* @op was queued on @n's link: it is in flight there from now on (with its own deadline). */
static struct ekv_origin_op *sent(struct node *n, struct ekv_origin_op *op)
{
    uint64_t wait_ms = n->o->timeout_ms;

    if (op->sent_us == 0) {
        op->sent_us = ekv_clock_now_us();
        op->deadline_ms = op->sent_us / 1000 + n->o->timeout_ms;
    } else { /* sent again: the first send's deadline holds */
        uint64_t now_ms = ekv_clock_now_ms();
        wait_ms = op->deadline_ms > now_ms ? op->deadline_ms - now_ms : 0;
    }
    op->n = n;
    op->seq = 0;
    atomic_store_explicit(&n->commands,
                          atomic_load_explicit(&n->commands, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (TAILQ_EMPTY(&n->inflight))
        arm(n->deadline_ev, wait_ms);
    TAILQ_INSERT_TAIL(&n->inflight, op, link);
    n->npending++;
    if (++n->unwritten >= EAGER_WRITE && ekv_origin_link_up(n->link)) {
        n->unwritten = 0;
        ekv_origin_link_flush(n->link); /* a failure resets the link later, not here */
    }
    return op;
}

/* The script cache was flushed (or this is a new node): load the script and send the same
 * EVALSHA again, behind everything in flight. */
static void retry_script(struct node *n, struct ekv_origin_op *op)
{
    const char *load[] = {"SCRIPT", "LOAD", n->o->scripts[op->id].body};

    TAILQ_REMOVE(&n->inflight, op, link);
    n->npending--;
    op->retried = true;
    op->skip = 1; /* SCRIPT LOAD's own reply */
    ekv_origin_link_sendv(n->link, 3, load, NULL);
    ekv_origin_link_send_buf(n->link, op->cmd);
    op->deadline_ms = ekv_clock_now_ms() + n->o->timeout_ms;
    sent(n, op);
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static bool redirected(struct node *n, struct ekv_origin_op *op);

/* Every reply on the connection after AUTH/SELECT, in order: the setup's, then the ops'. */
static void on_link_reply(struct redisReply *reply, void *arg)
{
    struct node *n = arg;
    struct ekv_origin_op *op = TAILQ_FIRST(&n->inflight);

    if (n->setup_pending > 0) {
        setup_reply(n, reply);
        return;
    }
    if (op == NULL) { /* a reply nobody asked for: the stream cannot be trusted any more */
        ekv_origin_reply_free(reply);
        ekv_origin_link_reset(n->link, "a reply to no command", false);
        return;
    }
    if (op->seq < 32 && (op->skip & (1u << op->seq))) {
        op->seq++;
        ekv_origin_reply_free(reply);
        return;
    }
    op->seq++;
    if (op->kind == EKV_ORIGIN_SCRIPT && !op->retried && is_noscript(reply) &&
        ekv_origin_link_up(n->link)) {
        ekv_origin_reply_free(reply);
        retry_script(n, op);
        return;
    }
    op->got[op->ngot++] = reply;
    if (op->ngot < op->nwant)
        return;
    TAILQ_REMOVE(&n->inflight, op, link);
    n->npending--;
    if (n->o->cluster && redirected(n, op))
        return;
    if (op->kind == EKV_ORIGIN_PIPELINE) {
        /* the pipeline's answer: its commands' replies, in order */
        redisReply answer = {.type = REDIS_REPLY_ARRAY, .elements = op->ngot, .element = op->got};
        finish(op, EKV_OK, &answer);
    } else {
        finish(op, EKV_OK, reply);
    }
    op_free(op);
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

static struct ekv_origin_buf *format(int argc, const char *const *argv, const size_t *argvlen)
{
    struct ekv_origin_buf *b = ekv_origin_buf_new(ekv_resp_size(argc, argv, argvlen));
    char *p = ekv_origin_buf_data(b);

    ekv_origin_buf_set_len(b, (size_t)(ekv_resp_write(p, argc, argv, argvlen) - p));
    return b;
}

/* ---------------------------------------------------------------- cluster routing */

/* Says how many slots have no master. */
static void set_unserved(struct ekv_origin *o)
{
    pthread_mutex_lock(&o->err_lock);
    snprintf(o->error, sizeof(o->error), "cluster: %u of 16384 slots have no master",
             EKV_ORIGIN_SLOTS - o->served);
    pthread_mutex_unlock(&o->err_lock);
}

/* Up: every slot has an owner whose connection is up. */
static void update_up(struct ekv_origin *o)
{
    bool up = o->served == EKV_ORIGIN_SLOTS;
    bool was;

    for (size_t i = 0; up && i < o->nnodes; i++)
        if (o->nodes[i]->serving && !ekv_origin_link_up(o->nodes[i]->link))
            up = false;
    if (up) {
        pthread_mutex_lock(&o->err_lock);
        o->error[0] = '\0';
        pthread_mutex_unlock(&o->err_lock);
    } else if (o->served < EKV_ORIGIN_SLOTS && o->served > 0) {
        set_unserved(o);
    }
    was = atomic_exchange(&o->up, up);
    if (was != up && o->state_cb != NULL)
        o->state_cb(up, o->state_arg);
}

static struct node *node_new(struct ekv_origin *o, const struct ekv_conf_origin *addr,
                             struct ekv_sentinel *follow, const char *host, uint16_t port);

/* The node at @host:@port (numeric), made (and connecting) if new; NULL for a name. */
static struct node *node_at(struct ekv_origin *o, const char *host, uint16_t port)
{
    unsigned char ip[16];

    for (size_t i = 0; i < o->nnodes; i++)
        if (o->nodes[i]->addr.port == port && strcmp(o->nodes[i]->host, host) == 0)
            return o->nodes[i];
    if (strlen(host) >= sizeof(o->nodes[0]->host) ||
        (inet_pton(AF_INET, host, ip) != 1 && inet_pton(AF_INET6, host, ip) != 1)) {
        unsigned suppressed;
        if (ekv_log_limit_allow_now(&o->name_log, 10000, &suppressed))
            ekv_log(EKV_LOG_WARN,
                    "%s: the cluster names the node \"%.64s\", which is not an IP address "
                    "(set cluster-preferred-endpoint-type ip)",
                    o->label, host);
        return NULL;
    }
    if (o->nnodes == EKV_CLUSTER_MAX_NODES) {
        unsigned suppressed;
        if (ekv_log_limit_allow_now(&o->name_log, 10000, &suppressed))
            ekv_log(EKV_LOG_WARN, "%s: more than %u cluster nodes: %.64s:%u ignored", o->label,
                    EKV_CLUSTER_MAX_NODES, host, (unsigned)port);
        return NULL;
    }
    return node_new(o, NULL, NULL, host, port);
}

static size_t node_index(const struct ekv_origin *o, const struct node *n)
{
    for (size_t i = 0; i < o->nnodes; i++)
        if (o->nodes[i] == n)
            return i;
    return NO_NODE;
}

/* Where an op for @slot goes now: its owner, or NULL. */
static struct node *owner_of(const struct ekv_origin *o, unsigned slot)
{
    uint16_t i = o->owner[slot];

    return i == NO_NODE ? NULL : o->nodes[i];
}

/* Any node that is up (a command without a key, the slot map itself). */
static struct node *any_up(const struct ekv_origin *o)
{
    for (size_t i = 0; i < o->nnodes; i++)
        if (ekv_origin_link_up(o->nodes[i]->link) && o->nodes[i]->serving)
            return o->nodes[i];
    for (size_t i = 0; i < o->nnodes; i++)
        if (ekv_origin_link_up(o->nodes[i]->link))
            return o->nodes[i];
    return NULL;
}

/* Sends @op's bytes on @n (behind ASKING when @asking). */
static struct ekv_origin_op *send_on(struct node *n, struct ekv_origin_op *op, bool asking)
{
    const char *askv[] = {"ASKING"};

    if (ekv_origin_link_failing(n->link)) {
        if (n->o->cluster && !op->internal)
            refresh_soon(n->o, false); /* a failover may have given its slots to another */
        return fail_soon(n->o, op);
    }
    op->skip = 0;
    if (!asking) {
        ekv_origin_link_send_buf(n->link, op->cmd);
        return sent(n, op);
    }
    /* ASKING holds for the next command only: one before each */
    for (unsigned i = 0; i < op->nwant; i++) {
        ekv_origin_link_sendv(n->link, 1, askv, NULL);
        ekv_origin_link_send_buf(n->link, op->nwant > 1 ? op->part[i] : op->cmd);
        op->skip |= 1u << (2 * i);
    }
    return sent(n, op);
}

/* Sends @op to the owner of its slot (or any node when it has no key). */
static struct ekv_origin_op *route(struct ekv_origin *o, struct ekv_origin_op *op)
{
    struct node *n = op->keyed ? owner_of(o, op->slot) : any_up(o);

    if (n == NULL) {
        refresh_soon(o, false); /* a replica may have taken over since */
        return fail_soon(o, op);
    }
    return send_on(n, op, false);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin *o = arg;
    uint64_t now = ekv_clock_now_ms();
    struct ekv_origin_op *op, *next;
    uint64_t soonest = UINT64_MAX;

    for (op = TAILQ_FIRST(&o->later); op != NULL; op = next) {
        next = TAILQ_NEXT(op, link);
        if (op->retry_ms > now) {
            soonest = EKV_MIN(soonest, op->retry_ms);
            continue;
        }
        TAILQ_REMOVE(&o->later, op, link);
        route(o, op);
    }
    if (soonest != UINT64_MAX)
        arm(o->later_ev, soonest - now);
}

/* A reply that may be a redirection: sends @op again where it says and returns true, or returns
 * false (the reply is the caller's answer). @op is out of its node's in-flight list. */
static bool redirected(struct node *n, struct ekv_origin_op *op)
{
    struct ekv_origin *o = n->o;
    const redisReply *err = NULL;
    struct ekv_redirect rd;
    struct node *to;
    uint64_t now = ekv_clock_now_ms();

    for (unsigned i = 0; i < op->ngot && err == NULL; i++)
        if (op->got[i]->type == REDIS_REPLY_ERROR)
            err = op->got[i];
    if (err == NULL || op->internal)
        return false;
    if (ekv_redirect_parse(err->str, err->len, n->host, &rd) != EKV_OK ||
        rd.kind == EKV_REDIRECT_NONE)
        return false;
    if (now >= op->deadline_ms)
        return false; /* the error is the answer */
    /* MOVED and ASK at most MAX_REDIRECTS times in a row (a loop between nodes); TRYAGAIN and
     * CLUSTERDOWN as long as the deadline allows (a migration or a failover that ends within it) */
    if ((rd.kind == EKV_REDIRECT_MOVED || rd.kind == EKV_REDIRECT_ASK) &&
        ++op->redirects > MAX_REDIRECTS)
        return false;
    switch (rd.kind) {
    case EKV_REDIRECT_MOVED:
        atomic_fetch_add_explicit(&o->moved, 1, memory_order_relaxed);
        to = node_at(o, rd.host, rd.port);
        if (to == NULL || rd.slot >= EKV_ORIGIN_SLOTS)
            return false;
        if (o->owner[rd.slot] == NO_NODE)
            o->served++;
        o->owner[rd.slot] = (uint16_t)node_index(o, to);
        to->serving = true;
        if (o->map_cb != NULL)
            o->map_cb(o->map_arg);
        refresh_soon(o, false);
        drop_replies(op);
        send_on(to, op, false);
        return true;
    case EKV_REDIRECT_ASK:
        atomic_fetch_add_explicit(&o->ask, 1, memory_order_relaxed);
        to = node_at(o, rd.host, rd.port);
        if (to == NULL)
            return false;
        drop_replies(op);
        send_on(to, op, true);
        return true;
    default: /* TRYAGAIN, CLUSTERDOWN: the same owner, after a while */
        atomic_fetch_add_explicit(&o->tryagain, 1, memory_order_relaxed);
        if (rd.kind == EKV_REDIRECT_CLUSTERDOWN)
            refresh_soon(o, false);
        op->retry_ms = now + EKV_MIN(10u << EKV_MIN(op->retries, 5u), 200u);
        op->retries++;
        op->redirects = 0; /* waiting, not a loop: an ASK before each TRYAGAIN (a new key in a
                            * migrating slot) may repeat until the deadline */
        if (op->retry_ms >= op->deadline_ms)
            return false;
        drop_replies(op);
        op->n = NULL;
        TAILQ_INSERT_TAIL(&o->later, op, link);
        arm(o->later_ev, op->retry_ms - now);
        return true;
    }
}

/* ---------------------------------------------------------------- the slot map */

/* A new map: the owner of every slot, nodes made for new masters. */
static void apply_map(struct ekv_origin *o, const struct ekv_slotmap *m)
{
    uint16_t idx[EKV_CLUSTER_MAX_NODES];

    for (size_t i = 0; i < o->nnodes; i++)
        o->nodes[i]->serving = false;
    for (unsigned i = 0; i < m->nnodes; i++) {
        struct node *n = node_at(o, m->nodes[i].host, m->nodes[i].port);
        idx[i] = n != NULL ? (uint16_t)node_index(o, n) : NO_NODE;
        if (n != NULL)
            n->serving = true;
    }
    o->served = 0;
    for (unsigned s = 0; s < EKV_ORIGIN_SLOTS; s++) {
        o->owner[s] = m->owner[s] != 0 ? idx[m->owner[s] - 1] : NO_NODE;
        o->served += o->owner[s] != NO_NODE;
    }
    if (o->served < EKV_ORIGIN_SLOTS)
        set_unserved(o);
    update_up(o);
    if (o->map_cb != NULL)
        o->map_cb(o->map_arg);
}

static void on_map(int status, const redisReply *r, void *arg);

/* Asks a node that is up for the slot map: CLUSTER SHARDS (Redis 7), else CLUSTER SLOTS. */
static void ask_map(struct ekv_origin *o, bool slots)
{
    struct node *n = any_up(o);
    struct ekv_origin_op *op;
    const char *shards[] = {"CLUSTER", slots ? "SLOTS" : "SHARDS"};

    if (n == NULL) {
        o->refreshing = false; /* the next node up asks */
        return;
    }
    snprintf(o->map_from, sizeof(o->map_from), "%s", n->host);
    op = op_new(o, on_map, o, EKV_ORIGIN_CMD, slots);
    op->internal = true;
    op->cmd = format(2, shards, NULL);
    send_on(n, op, false);
}

static void on_map(int status, const redisReply *r, void *arg)
{
    struct ekv_origin *o = arg;
    struct ekv_slotmap *m;
    char why[160];
    int rc;

    if (status != EKV_OK) {
        o->refreshing = false;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "SHARDS") != NULL) {
        ask_map(o, true); /* before Redis 7.0 */
        return;
    }
    o->refreshing = false;
    m = ekv_malloc(sizeof(*m));
    ekv_slotmap_init(m);
    rc = r->type == REDIS_REPLY_ERROR ? EKV_EPROTO
         : r->elements > 0 && r->element[0]->type == REDIS_REPLY_ARRAY &&
                 r->element[0]->elements > 0 &&
                 r->element[0]->element[0]->type == REDIS_REPLY_INTEGER
             ? ekv_slotmap_from_slots(m, r, o->map_from, why, sizeof(why))
             : ekv_slotmap_from_shards(m, r, o->map_from, why, sizeof(why));
    if (r->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof(why), "%.150s", r->str);
    if (rc == EKV_OK) {
        atomic_fetch_add_explicit(&o->refreshes, 1, memory_order_relaxed);
        apply_map(o, m);
    } else {
        ekv_log(EKV_LOG_WARN, "%s: the slot map: %s", o->label, why);
    }
    ekv_free(m);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin *o = arg;

    arm(o->refresh_ev, o->refresh_ms);
    if (o->refreshing)
        return;
    o->refreshing = true;
    o->refreshed_ms = ekv_clock_now_ms();
    ask_map(o, false);
}

/* A refresh now (@force), or at most once per REFRESH_THROTTLE_MS; while a slot has no master
 * that is up (a master died: its replica takes over within seconds), once per
 * OUTAGE_THROTTLE_MS, so that the promotion is seen soon after it happens. */
static void refresh_soon(struct ekv_origin *o, bool force)
{
    uint64_t now = ekv_clock_now_ms();
    uint64_t every = atomic_load(&o->up) ? REFRESH_THROTTLE_MS : OUTAGE_THROTTLE_MS;

    if (o->refreshing)
        return;
    if (!force && now < o->refreshed_ms + every) {
        arm(o->refresh_ev, o->refreshed_ms + every - now);
        return;
    }
    arm(o->refresh_ev, 0);
}

/* The slot of the key of a command: argv[@k] when there are more than @k arguments. */
static void set_slot(struct ekv_origin_op *op, int argc, const char *const *argv,
                     const size_t *argvlen, int k)
{
    if (argc <= k)
        return;
    op->keyed = true;
    op->slot = ekv_origin_keyslot(argv[k], argvlen != NULL ? argvlen[k] : strlen(argv[k]));
}

/* ---------------------------------------------------------------- the commands */

/* The node of a standalone origin. */
static struct node *single(const struct ekv_origin *o)
{
    return o->nodes[0];
}

struct ekv_origin_op *ekv_origin_cmd(struct ekv_origin *o, ekv_origin_cb *cb, void *arg, int argc,
                                     const char **argv, const size_t *argvlen)
{
    struct ekv_origin_op *op = op_new(o, cb, arg, EKV_ORIGIN_CMD, 0);

    if (o->cluster) {
        set_slot(op, argc, argv, argvlen, 1);
        op->cmd = format(argc, argv, argvlen);
        return route(o, op);
    }
    /* while down, or reconnecting after a failure, answer at once rather than queue */
    if (ekv_origin_link_failing(single(o)->link))
        return fail_soon(o, op);
    ekv_origin_link_sendv(single(o)->link, argc, argv, argvlen);
    return sent(single(o), op);
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

    if (!o->cluster && ekv_origin_link_failing(single(o)->link))
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
    op->cmd = format(argc + NPRE, av, avlen);
    if (nkeys > 0)
        set_slot(op, argc + NPRE, av, avlen, NPRE);
    if (av != stack_av) {
        ekv_free(av);
        ekv_free(avlen);
    }
    if (o->cluster)
        return route(o, op);
    ekv_origin_link_send_buf(single(o)->link, op->cmd);
    return sent(single(o), op);
}

struct ekv_origin_op *ekv_origin_pipeline(struct ekv_origin *o, size_t tag, ekv_origin_cb *cb,
                                          void *arg, size_t ncmds,
                                          const struct ekv_origin_argv *cmds)
{
    struct ekv_origin_op *op = op_new(o, cb, arg, EKV_ORIGIN_PIPELINE, tag);
    struct ekv_origin_link *link;

    assert(ncmds >= 1 && ncmds <= EKV_ORIGIN_PIPELINE_MAX);
    size_t max = 0;

    op->nwant = (unsigned)ncmds;
    if (o->cluster) {
        /* every command of a pipeline is on one slot: the first one's key decides */
        set_slot(op, cmds[0].argc, cmds[0].argv, cmds[0].argvlen, 1);
        for (size_t i = 0; i < ncmds; i++)
            max += ekv_resp_size(cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        op->cmd = ekv_origin_buf_new(max);
        char *start = ekv_origin_buf_data(op->cmd), *p = start;
        for (size_t i = 0; i < ncmds; i++) {
            op->part[i] = format(cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
            memcpy(p, ekv_origin_buf_data(op->part[i]), ekv_origin_buf_len(op->part[i]));
            p += ekv_origin_buf_len(op->part[i]);
        }
        ekv_origin_buf_set_len(op->cmd, (size_t)(p - start));
        return route(o, op);
    }
    link = single(o)->link;
    if (ekv_origin_link_failing(link))
        return fail_soon(o, op);
    for (size_t i = 0; i < ncmds; i++)
        max += ekv_resp_size(cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
    if (max <= INLINE_MAX) { /* the usual: all of it formatted in one stretch of the output */
        char *start = ekv_origin_link_reserve(link, max), *p = start;
        for (size_t i = 0; i < ncmds; i++)
            p = ekv_resp_write(p, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        ekv_origin_link_commit(link, start, p);
    } else {
        for (size_t i = 0; i < ncmds; i++)
            ekv_origin_link_sendv(link, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
    }
    return sent(single(o), op);
}

void ekv_origin_cancel(struct ekv_origin_op *op)
{
    op->cb = NULL; /* freed as usual once answered */
}

/* ---------------------------------------------------------------- life */

static struct node *node_new(struct ekv_origin *o, const struct ekv_conf_origin *addr,
                             struct ekv_sentinel *follow, const char *host, uint16_t port)
{
    struct node *n = ekv_calloc(1, sizeof(*n));
    struct ekv_origin_link_hooks hooks = {
        .on_open = on_open, .on_reply = on_link_reply, .on_close = on_close, .arg = n};
    char label[96];

    n->o = o;
    TAILQ_INIT(&n->inflight);
    n->deadline_ev = evtimer_new(o->base, on_deadline, n);
    if (n->deadline_ev == NULL)
        EKV_FATAL("origin: out of memory");
    if (host != NULL) { /* a cluster node: the credentials of the URL, the address given */
        n->addr = *o->cred;
        snprintf(n->host, sizeof(n->host), "%s", host);
        n->addr.host = n->host;
        n->addr.port = port;
        n->addr.kind = EKV_ORIGIN_STANDALONE;
        n->addr.nnodes = 0;
        n->addr.db = 0;
        n->addr.unix_path = NULL;
        n->addr.tls_name = NULL;
        addr = &n->addr;
        snprintf(label, sizeof(label), "%s %s:%u", o->label, host, (unsigned)port);
        snprintf(n->name, sizeof(n->name), strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
                 (unsigned)port);
    } else {
        snprintf(label, sizeof(label), "%s", o->label);
    }
    atomic_init(&n->serving, false);
    atomic_init(&n->commands, 0);
    o->nodes[o->nnodes++] = n;
    n->link = ekv_origin_link_new(o->base, addr, follow, o->tls, o->timeout_ms, label, &hooks);
    atomic_store(&o->nnodes_pub, o->nnodes); /* complete: other threads may look at it */
    return n;
}

struct ekv_origin *ekv_origin_new(struct event_base *base, const struct ekv_origin_opts *opts)
{
    struct ekv_origin *o = ekv_calloc(1, sizeof(*o));

    o->base = base;
    o->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : 1000;
    o->scripts = opts->scripts;
    o->nscripts = opts->nscripts;
    o->tls = opts->tls;
    if (opts->setup != NULL && opts->nseeds == 0)
        o->setup = format(opts->setup_argc, opts->setup, NULL);
    for (size_t i = 0; i < o->nscripts; i++)
        ekv_sha1_hex(o->scripts[i].body, strlen(o->scripts[i].body), o->scripts[i].sha);
    TAILQ_INIT(&o->failing);
    TAILQ_INIT(&o->later);
    pthread_mutex_init(&o->err_lock, NULL);
    atomic_init(&o->up, false);
    o->fail_ev = event_new(base, -1, 0, fail_deferred, o);
    if (o->fail_ev == NULL)
        EKV_FATAL("origin: out of memory");
    snprintf(o->label, sizeof(o->label), "origin: %s",
             opts->label != NULL ? opts->label : "origin");
    atomic_init(&o->nnodes_pub, 0);
    o->nodes = ekv_calloc(opts->nseeds == 0 ? 1 : EKV_CLUSTER_MAX_NODES, sizeof(*o->nodes));
    if (opts->nseeds == 0) {
        node_new(o, opts->addr, opts->sentinel, NULL, 0);
        return o;
    }
    o->cluster = true;
    o->cred = opts->seeds;
    o->owner = ekv_malloc(EKV_ORIGIN_SLOTS * sizeof(*o->owner));
    for (unsigned s = 0; s < EKV_ORIGIN_SLOTS; s++)
        o->owner[s] = NO_NODE;
    snprintf(o->error, sizeof(o->error), "cluster: asking the seed nodes for the slot map");
    o->later_ev = evtimer_new(base, on_later, o);
    o->refresh_ev = evtimer_new(base, on_refresh, o);
    if (o->later_ev == NULL || o->refresh_ev == NULL)
        EKV_FATAL("origin: out of memory");
    for (size_t i = 0; i < opts->nseeds; i++)
        (void)node_at(o, opts->seeds[i].host, opts->seeds[i].port);
    o->refresh_ms = opts->refresh_ms != 0 ? opts->refresh_ms : REFRESH_EVERY_MS;
    arm(o->refresh_ev, o->refresh_ms);
    return o;
}

void ekv_origin_free(struct ekv_origin *o)
{
    struct ekv_origin_op *op;

    if (o == NULL)
        return;
    o->state_cb = NULL;
    o->observe_cb = NULL;
    o->freeing = true; /* the other nodes' links may be gone already: on_close() looks at none */
    for (size_t i = 0; i < o->nnodes; i++)
        ekv_origin_link_free(o->nodes[i]->link); /* answers the ops in flight (on_close()) */
    while ((op = TAILQ_FIRST(&o->later)) != NULL) {
        TAILQ_REMOVE(&o->later, op, link);
        finish(op, EKV_ECLOSED, NULL);
        op_free(op);
    }
    fail_deferred(-1, 0, o);
    for (size_t i = 0; i < o->nnodes; i++) {
        event_free(o->nodes[i]->deadline_ev);
        ekv_free(o->nodes[i]);
    }
    ekv_free(o->nodes);
    ekv_free(o->owner);
    ekv_origin_buf_unref(o->setup);
    if (o->later_ev != NULL)
        event_free(o->later_ev);
    if (o->refresh_ev != NULL)
        event_free(o->refresh_ev);
    event_free(o->fail_ev);
    pthread_mutex_destroy(&o->err_lock);
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
    if (o->cluster)
        return atomic_load(&o->up);
    return ekv_origin_link_up(o->nodes[0]->link);
}

void ekv_origin_error(const struct ekv_origin *o, char *buf, size_t len)
{
    struct ekv_origin *m = (struct ekv_origin *)o; /* the lock */

    if (!o->cluster) {
        ekv_origin_link_error(o->nodes[0]->link, buf, len);
        return;
    }
    pthread_mutex_lock(&m->err_lock);
    snprintf(buf, len, "%s", m->error);
    pthread_mutex_unlock(&m->err_lock);
}

size_t ekv_origin_pending(const struct ekv_origin *o)
{
    size_t n = 0;

    for (size_t i = 0; i < o->nnodes; i++)
        n += o->nodes[i]->npending;
    return n;
}

void ekv_origin_set_map_cb(struct ekv_origin *o, ekv_origin_map_cb *cb, void *arg)
{
    o->map_cb = cb;
    o->map_arg = arg;
}

int ekv_origin_slot_node(const struct ekv_origin *o, unsigned slot)
{
    if (!o->cluster || slot >= EKV_ORIGIN_SLOTS)
        return -1;
    return o->owner[slot] == NO_NODE ? -1 : o->owner[slot];
}

const struct ekv_conf_origin *ekv_origin_node_addr(const struct ekv_origin *o, size_t i)
{
    return i < o->nnodes ? &o->nodes[i]->addr : NULL;
}

void ekv_origin_refresh(struct ekv_origin *o)
{
    if (o->cluster)
        refresh_soon(o, true);
}

size_t ekv_origin_nodes(const struct ekv_origin *o, struct ekv_origin_node_stats *out, size_t max)
{
    size_t n = o->cluster ? atomic_load(&o->nnodes_pub) : 0;

    for (size_t i = 0; i < n && i < max; i++) {
        const struct node *nd = o->nodes[i];
        snprintf(out[i].addr, sizeof(out[i].addr), "%s", nd->name);
        out[i].up = ekv_origin_link_up(nd->link);
        out[i].serving = atomic_load(&nd->serving);
        out[i].commands = atomic_load_explicit(&nd->commands, memory_order_relaxed);
    }
    return n;
}

void ekv_origin_cluster_stats(const struct ekv_origin *o, struct ekv_origin_cluster_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!o->cluster)
        return;
    st->moved = atomic_load(&o->moved);
    st->ask = atomic_load(&o->ask);
    st->tryagain = atomic_load(&o->tryagain);
    st->refreshes = atomic_load(&o->refreshes);
}
