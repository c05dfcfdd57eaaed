/* link.c - a self-healing connection to Redis that edgekv owns, shared by the origin (commands)
 * and the invalidation link (tracking): a libevent bufferevent (TCP or a unix socket; where TLS
 * slots in) carries the bytes, hiredis's reply reader turns them into replies. This file owns
 * the connect and setup deadline, AUTH and SELECT on every new connection (their replies are the
 * link's own; every later reply goes to the owner, in order), reconnection with capped
 * exponential backoff and full jitter, rate-limited logging, and the reply objects.
 *
 * Commands leave through the bufferevent's output buffer: small ones are formatted straight
 * into it, large ones are handed over by reference (evbuffer_add_reference), so a 25 MiB value
 * is formatted once and written with writev() from where it lies: no copy into a second buffer
 * and no memmove of what is left after each write (hiredis's own output buffer does both).
 *
 * A dropped connection is gone at once: its bufferevent and reader are freed, so no late reply
 * of it can ever reach the owner. A reply loop that may have dropped the connection from inside
 * a callback checks the connection's generation before it reads on. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"
#include "edgekv/rng.h"
#include "edgekv/text.h"

#include "origin_int.h"

#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 2000
#define LOG_EVERY_MS 10000
/* Commands at least this long are handed to the output buffer by reference, not copied. */
#define BY_REFERENCE 16384
/* The most bytes one read takes from the socket (libevent's default is 16 KiB). */
#define READ_MAX (256 * 1024)

enum state {
    DOWN = 0,   /* no connection; a reconnect is scheduled */
    CONNECTING, /* connecting and setting up */
    UP,
};

struct ekv_origin_link {
    struct event_base *base;
    const struct ekv_conf_origin *addr;
    struct ekv_sentinel *follow; /* the master it names is the address, or NULL */
    struct ekv_conf_origin dyn;  /* following: the address of this connection */
    char dyn_host[64];
    uint64_t epoch;              /* following: the Sentinel epoch of this connection */
    struct event *kick_ev;       /* following: the epoch changed (ekv_origin_link_kick()) */
    bool role_check;             /* following: ROLE is the last of the link's own replies */
    bool role_pending;           /* ROLE not confirmed yet: nothing else may be sent */
    bool ever_up;
    const struct ekv_origin_tls *tls; /* NULL: plain */
    uint64_t timeout_ms;
    char label[48];
    struct ekv_origin_link_hooks hooks;
    struct bufferevent *bev; /* NULL while down */
    redisReader *reader;
    unsigned gen;            /* bumped whenever a connection is dropped */
    /* written on the loop's thread alone; atomic because /readyz and /metrics, answered by any
     * worker, read every link's (ekv_origin_link_up()) */
    _Atomic(enum state) state;
    bool connected;          /* the socket is connected (direct writes are possible) */
    bool plain;              /* no TLS: the socket may be written directly */
    unsigned own_replies;    /* AUTH/SELECT replies still to come: the link's, not the owner's */
    unsigned attempts;       /* failed connects in a row (backoff) */
    struct event *retry_ev, *setup_ev, *reset_ev;
    char reset_why[192];
    struct ekv_log_limit log_limit; /* ekv_origin_link_log_now() */
    struct ekv_rng rng;             /* reconnect jitter */
    bool setup_failed; /* AUTH/SELECT refused on this connection: never up */
    bool freeing;
    pthread_mutex_t error_lock; /* error is read by any thread (/readyz) */
    char error[160];            /* why the last connection failed; "" once up */
};

static void connect_now(struct ekv_origin_link *l);

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = ekv_ms_tv(ms);

    evtimer_add(ev, &tv);
}

bool ekv_origin_link_log_now(struct ekv_origin_link *l)
{
    unsigned suppressed;

    return ekv_log_limit_allow_now(&l->log_limit, LOG_EVERY_MS, &suppressed);
}

/* ---------------------------------------------------------------- reply objects
 *
 * hiredis builds each reply with two allocations (the struct, then its string or element
 * vector). Here the struct and its string or element vector take one allocation, and the
 * replies that carry nothing ("+OK", nil) are shared static objects that cost none. They stay
 * standard redisReply structs (the origin's callers read them as such) and are read-only for
 * everybody; ekv_origin_reply_free() skips the static ones. A failed allocation, or an array
 * longer than any reply edgekv asks for, returns NULL, which the reader turns into an error on
 * the connection: a peer announcing a huge array must neither abort the process nor make it
 * reserve gigabytes. The object functions' signatures are 0.14's; with hiredis 1.x the
 * reader's defaults (and its own maxelements) are used. */
#define ARRAY_MAX (1u << 20)

#if HIREDIS_MAJOR == 0
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

    if (n > ARRAY_MAX || (r = calloc(1, sizeof(*r) + n * sizeof(redisReply *))) == NULL)
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

struct redisReader *ekv_origin_reader_new(void)
{
    return redisReaderCreateWithFunctions(&reply_fns);
}

void ekv_origin_reply_free(struct redisReply *r)
{
    free_reply(r);
}
#else
struct redisReader *ekv_origin_reader_new(void)
{
    return redisReaderCreate();
}

void ekv_origin_reply_free(struct redisReply *r)
{
    if (r != NULL)
        freeReplyObject(r);
}
#endif

/* ---------------------------------------------------------------- connection life */

static void schedule_retry(struct ekv_origin_link *l)
{
    /* jitter over the upper half: POPs that lost Redis together do not come back together */
    arm(l->retry_ev, ekv_rng_backoff_ms(&l->rng, BACKOFF_BASE_MS, BACKOFF_CAP_MS, l->attempts++));
}

/* The connection is gone (l->bev already freed). */
static void went_down(struct ekv_origin_link *l, const char *why)
{
    bool was_up = l->state == UP;

    if (l->freeing)
        ; /* shutting down: nothing to report */
    else if (l->follow != NULL && !l->ever_up && l->attempts < 4)
        ; /* starting: the master is being asked for (the failure is kept for /readyz) */
    else if (was_up)
        ekv_log(EKV_LOG_WARN, "%s: connection lost: %s", l->label, why);
    else if (ekv_origin_link_log_now(l))
        ekv_log(EKV_LOG_WARN, "%s: cannot connect: %s (retrying with backoff)", l->label, why);
    evtimer_del(l->setup_ev);
    l->state = DOWN;
    pthread_mutex_lock(&l->error_lock);
    snprintf(l->error, sizeof(l->error), "%s", why);
    pthread_mutex_unlock(&l->error_lock);
    if (!l->freeing)
        schedule_retry(l);
    if (l->hooks.on_close != NULL)
        l->hooks.on_close(was_up, why, l->hooks.arg);
}

static void drop(struct ekv_origin_link *l)
{
    l->gen++;
    l->connected = false;
    if (l->bev != NULL)
        bufferevent_free(l->bev); /* closes the socket; safe inside its own callbacks */
    l->bev = NULL;
    if (l->reader != NULL)
        redisReaderFree(l->reader); /* with a reply it had half read */
    l->reader = NULL;
}

static void reset_now(struct ekv_origin_link *l, const char *why)
{
    char msg[192];

    if (l->bev == NULL)
        return;
    snprintf(msg, sizeof(msg), "%s", why); /* @why may point into what drop() frees */
    drop(l);
    went_down(l, msg);
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
    if (l->bev == NULL)
        return;
    snprintf(l->reset_why, sizeof(l->reset_why), "%s", why);
    event_active(l->reset_ev, EV_TIMEOUT, 1);
}

static void on_setup_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin_link *l = arg;

    if (l->state == CONNECTING)
        reset_now(l, "timed out connecting");
}

/* ---------------------------------------------------------------- replies */

/* A reply to AUTH or SELECT: an error (wrong password, no such db) drops the connection. */
static void own_reply(struct ekv_origin_link *l, redisReply *r)
{
    if (l->role_check && l->own_replies == 0 && r->type != REDIS_REPLY_ERROR) {
        /* the node the Sentinels named must still be the master: never write to a replica,
         * nor to an old master that has not been told yet */
        bool master = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                      r->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(r->element[0]->str, "master") == 0;
        if (!master) {
            char why[160];
            snprintf(why, sizeof(why), "%s:%u is not the master (ROLE: %.20s)", l->addr->host,
                     (unsigned)l->addr->port,
                     r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                             r->element[0]->type == REDIS_REPLY_STRING
                         ? r->element[0]->str
                         : "?");
            ekv_origin_reply_free(r);
            ekv_sentinel_recheck(l->follow);
            reset_now(l, why);
            return;
        }
        /* the master: the owner may set the connection up now */
        ekv_origin_reply_free(r);
        l->role_pending = false;
        l->hooks.on_open(l, l->hooks.arg);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char why[160];
        l->setup_failed = true;
        snprintf(why, sizeof(why), "Redis refused the setup: %.120s", r->str);
        ekv_origin_reply_free(r);
        reset_now(l, why); /* logged, rate-limited, by went_down() */
        return;
    }
    ekv_origin_reply_free(r);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct ekv_origin_link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned gen = l->gen;
    struct evbuffer_iovec v[16];
    int n;

    /* hand every byte read to the reader, chunk by chunk (no pullup) */
    while ((n = evbuffer_peek(in, -1, NULL, v, (int)EKV_ARRAY_LEN(v))) > 0) {
        size_t fed = 0;
        for (int i = 0; i < n && i < (int)EKV_ARRAY_LEN(v); i++) {
            if (redisReaderFeed(l->reader, v[i].iov_base, v[i].iov_len) != REDIS_OK) {
                reset_now(l, "out of memory reading a reply");
                return;
            }
            fed += v[i].iov_len;
        }
        evbuffer_drain(in, fed);
    }
    for (;;) {
        void *reply = NULL;

        if (redisReaderGetReply(l->reader, &reply) != REDIS_OK) {
            char why[160];
            snprintf(why, sizeof(why), "protocol error: %.120s", l->reader->errstr);
            reset_now(l, why);
            return;
        }
        if (reply == NULL)
            return; /* needs more bytes */
        if (l->own_replies > 0) {
            l->own_replies--;
            own_reply(l, reply);
        } else {
            l->hooks.on_reply(reply, l->hooks.arg); /* the owner frees it */
        }
        if (l->gen != gen)
            return; /* dropped from inside: its reader is gone */
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct ekv_origin_link *l = arg;
    char why[160];

    if (what & BEV_EVENT_CONNECTED) {
        evutil_socket_t fd = bufferevent_getfd(bev);
        int one = 1;

        l->connected = true;
        if (l->addr->unix_path == NULL)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return;
    }
    unsigned long tls_err = !l->plain ? bufferevent_get_openssl_error(bev) : 0;
    int err = EVUTIL_SOCKET_ERROR();

    if (!l->plain && (what & BEV_EVENT_ERROR) && (tls_err != 0 || !l->connected)) {
        /* the handshake or the verification failed (or the TCP connect under it), or the
         * server refused us after it (TLS 1.3 sends "certificate required" then) */
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        if (tls_err == 0 && SSL_get_verify_result(ssl) == X509_V_OK && err != 0)
            snprintf(why, sizeof(why), "%s%s", l->connected ? "" : "connect failed: ",
                     evutil_socket_error_to_string(err));
        else
            ekv_origin_tls_why(ssl, tls_err, why, sizeof(why));
        while (bufferevent_get_openssl_error(bev) != 0)
            ; /* the rest of the queue */
    } else if (what & BEV_EVENT_EOF) {
        snprintf(why, sizeof(why), "%s", l->connected ? "closed by Redis" : "connect failed");
    } else {
        snprintf(why, sizeof(why), "%s%s", l->connected ? "" : "connect failed: ",
                 err != 0 ? evutil_socket_error_to_string(err) : "error");
    }
    reset_now(l, why);
}

/* ---------------------------------------------------------------- connecting */

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    connect_now(arg);
}

/* The origin's address as a sockaddr (the host is numeric: resolved once at start-up). */
static int sockaddr_of(const struct ekv_conf_origin *a, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (a->unix_path != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(a->unix_path) >= sizeof(un->sun_path))
            return EKV_EINVAL;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, a->unix_path, strlen(a->unix_path) + 1);
        *len = (socklen_t)sizeof(*un);
        return EKV_OK;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, a->host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(a->port);
        *len = (socklen_t)sizeof(*in4);
        return EKV_OK;
    }
    if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        *len = (socklen_t)sizeof(*in6);
        return EKV_OK;
    }
    return EKV_EINVAL;
}

/* The bufferevent a new connection runs on: a plain socket, or TLS (a bufferevent_openssl that
 * connects the same way and handshakes once connected; BEV_EVENT_CONNECTED comes after the
 * handshake). Only a plain socket may be written around the bufferevent (l->plain). NULL when
 * no SSL could be made for the connection. */
static struct bufferevent *transport_new(struct ekv_origin_link *l)
{
    struct bufferevent *bev;
    SSL *ssl;

    l->plain = l->tls == NULL;
    if (l->plain)
        return bufferevent_socket_new(l->base, -1, BEV_OPT_CLOSE_ON_FREE);
    ssl = ekv_origin_tls_ssl_new(l->tls,
                                 l->addr->tls_name != NULL ? l->addr->tls_name : l->addr->host);
    if (ssl == NULL)
        return NULL;
    bev = bufferevent_openssl_socket_new(l->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* Redis may close without a close_notify; a reply cut short is caught by the reader */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void connect_now(struct ekv_origin_link *l)
{
    const struct ekv_conf_origin *a;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    char why[200];

    if (l->follow != NULL) {
        /* re-resolved on every connect: the master the Sentinels name now, or none */
        if (!ekv_sentinel_master(l->follow, &l->dyn, l->dyn_host, sizeof(l->dyn_host), &l->epoch,
                                 why, sizeof(why))) {
            went_down(l, why);
            return;
        }
        l->addr = &l->dyn;
    }
    a = l->addr;
    if (sockaddr_of(a, &ss, &sslen) != EKV_OK) {
        went_down(l, "the origin address is not a numeric address or socket path");
        return;
    }
    l->bev = transport_new(l);
    if (l->bev == NULL) {
        char why2[160];
        ekv_origin_tls_why(NULL, ERR_get_error(), why2, sizeof(why2));
        ERR_clear_error();
        went_down(l, why2);
        return;
    }
    l->reader = ekv_origin_reader_new();
    if (l->reader == NULL)
        EKV_FATAL("%s: out of memory", l->label);
    bufferevent_setcb(l->bev, on_read, NULL, on_event, l);
    (void)bufferevent_set_max_single_read(l->bev, READ_MAX);
    if (bufferevent_enable(l->bev, EV_READ | EV_WRITE) != 0 ||
        bufferevent_socket_connect(l->bev, (struct sockaddr *)&ss, (int)sslen) != 0) {
        int err = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof(why), "connect failed: %s",
                 err != 0 ? evutil_socket_error_to_string(err) : "error");
        drop(l);
        went_down(l, why);
        return;
    }
    l->state = CONNECTING;
    l->setup_failed = false;
    l->own_replies = 0;
    /* queued ahead of everything: authenticate, pick the db */
    if (a->password != NULL) {
        const char *auth[] = {"AUTH", a->user != NULL ? a->user : a->password, a->password};
        ekv_origin_link_sendv(l, a->user != NULL ? 3 : 2, auth, NULL);
        l->own_replies++;
    }
    if (a->db != 0) {
        char db[16];
        const char *sel[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%u", a->db);
        ekv_origin_link_sendv(l, 2, sel, NULL);
        l->own_replies++;
    }
    arm(l->setup_ev, l->timeout_ms);
    l->role_check = l->role_pending = l->follow != NULL;
    if (l->role_check) {
        /* nothing of the owner's is sent before ROLE says master: not one command reaches
         * a replica, or an old master still writable after a failover */
        const char *role[] = {"ROLE"};
        ekv_origin_link_sendv(l, 1, role, NULL);
        l->own_replies++;
        return;
    }
    l->hooks.on_open(l, l->hooks.arg);
}

/* ---------------------------------------------------------------- sending */

size_t ekv_resp_size(int argc, const char *const *argv, const size_t *argvlen)
{
    size_t total = 24; /* "*N\r\n" */

    for (int i = 0; i < argc; i++)
        total += 24 + (argvlen != NULL ? argvlen[i] : strlen(argv[i]));
    return total;
}

char *ekv_resp_write(char *p, int argc, const char *const *argv, const size_t *argvlen)
{
    *p++ = '*';
    p += ekv_fmt_u64(p, (uint64_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
        *p++ = '$';
        p += ekv_fmt_u64(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return p;
}

struct ekv_origin_buf {
    unsigned refs;
    size_t len;
    char data[];
};

struct ekv_origin_buf *ekv_origin_buf_new(size_t cap)
{
    struct ekv_origin_buf *b = ekv_malloc(sizeof(*b) + cap);

    b->refs = 1;
    b->len = 0;
    return b;
}

char *ekv_origin_buf_data(struct ekv_origin_buf *b)
{
    return b->data;
}

void ekv_origin_buf_set_len(struct ekv_origin_buf *b, size_t len)
{
    b->len = len;
}

size_t ekv_origin_buf_len(const struct ekv_origin_buf *b)
{
    return b->len;
}

void ekv_origin_buf_unref(struct ekv_origin_buf *b)
{
    if (b != NULL && --b->refs == 0)
        ekv_free(b);
}

static void buf_cleanup(const void *data, size_t len, void *arg)
{
    ekv_origin_buf_unref(arg);
}

void ekv_origin_link_send_buf(struct ekv_origin_link *l, struct ekv_origin_buf *b)
{
    struct evbuffer *out = bufferevent_get_output(l->bev);

    if (b->len < BY_REFERENCE) {
        if (evbuffer_add(out, b->data, b->len) != 0)
            EKV_FATAL("%s: out of memory", l->label);
        return;
    }
    b->refs++;
    if (evbuffer_add_reference(out, b->data, b->len, buf_cleanup, b) != 0)
        EKV_FATAL("%s: out of memory", l->label);
}

char *ekv_origin_link_reserve(struct ekv_origin_link *l, size_t max)
{
    struct evbuffer_iovec v;

    if (evbuffer_reserve_space(bufferevent_get_output(l->bev), (ev_ssize_t)max, &v, 1) != 1 ||
        v.iov_len < max)
        EKV_FATAL("%s: out of memory", l->label);
    return v.iov_base;
}

void ekv_origin_link_commit(struct ekv_origin_link *l, char *start, char *end)
{
    struct evbuffer_iovec v = {.iov_base = start, .iov_len = (size_t)(end - start)};

    if (evbuffer_commit_space(bufferevent_get_output(l->bev), &v, 1) != 0)
        EKV_FATAL("%s: out of memory", l->label);
}

void ekv_origin_link_sendv(struct ekv_origin_link *l, int argc, const char *const *argv,
                           const size_t *argvlen)
{
    size_t max = ekv_resp_size(argc, argv, argvlen);

    if (max >= BY_REFERENCE) {
        struct ekv_origin_buf *b = ekv_origin_buf_new(max);
        b->len = (size_t)(ekv_resp_write(b->data, argc, argv, argvlen) - b->data);
        ekv_origin_link_send_buf(l, b);
        ekv_origin_buf_unref(b);
        return;
    }
    char *p = ekv_origin_link_reserve(l, max);
    ekv_origin_link_commit(l, p, ekv_resp_write(p, argc, argv, argvlen));
}

void ekv_origin_link_flush(struct ekv_origin_link *l)
{
    struct evbuffer *out;
    int rc, err;

    if (l->bev == NULL || !l->connected || !l->plain)
        return;
    out = bufferevent_get_output(l->bev);
    if (evbuffer_get_length(out) == 0)
        return;
    /* written now rather than at the loop's next turn; what the socket does not take stays
     * queued for the bufferevent. The bufferevent keeps the start of its output frozen (only it
     * drains it), so thaw it for the write, as its own write callback does. A failure is acted
     * on later, never inside the caller. */
    evbuffer_unfreeze(out, 1);
    errno = 0;
    rc = evbuffer_write(out, bufferevent_getfd(l->bev));
    err = EVUTIL_SOCKET_ERROR();
    evbuffer_freeze(out, 1);
    if (rc < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
        ekv_origin_link_reset(l, evutil_socket_error_to_string(err), true);
}

/* ---------------------------------------------------------------- life */

void ekv_origin_link_ready(struct ekv_origin_link *l)
{
    if (l->state != CONNECTING || l->setup_failed)
        return;
    evtimer_del(l->setup_ev);
    l->state = UP;
    l->ever_up = true;
    l->attempts = 0;
    l->log_limit = (struct ekv_log_limit){0};
    pthread_mutex_lock(&l->error_lock);
    l->error[0] = '\0';
    pthread_mutex_unlock(&l->error_lock);
    ekv_log(EKV_LOG_INFO, "%s: connected", l->label);
}

/* The epoch of the master it follows changed: a connection to an older master goes, and a link
 * waiting to reconnect (no master was known) tries now. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_origin_link *l = arg;

    if (l->bev != NULL) {
        if (l->epoch != ekv_sentinel_epoch(l->follow))
            reset_now(l, "the master changed");
        return;
    }
    l->attempts = 0;
    evtimer_del(l->retry_ev);
    connect_now(l);
}

static struct ekv_origin_link *link_create(struct event_base *base,
                                           const struct ekv_conf_origin *addr,
                                           struct ekv_sentinel *follow,
                                           const struct ekv_origin_tls *tls, uint64_t timeout_ms,
                                           const char *label,
                                           const struct ekv_origin_link_hooks *hooks)
{
    struct ekv_origin_link *l = ekv_calloc(1, sizeof(*l));

    l->base = base;
    l->addr = addr;
    l->follow = follow;
    l->tls = tls;
    pthread_mutex_init(&l->error_lock, NULL);
    l->timeout_ms = timeout_ms != 0 ? timeout_ms : 1000;
    snprintf(l->label, sizeof(l->label), "%s", label);
    l->hooks = *hooks;
    ekv_rng_init(&l->rng);
    l->retry_ev = evtimer_new(base, on_retry, l);
    l->setup_ev = evtimer_new(base, on_setup_deadline, l);
    l->reset_ev = event_new(base, -1, 0, on_reset, l);
    if (l->retry_ev == NULL || l->setup_ev == NULL || l->reset_ev == NULL)
        EKV_FATAL("%s: out of memory", l->label);
    if (follow != NULL) {
        l->kick_ev = event_new(base, -1, 0, on_kick, l);
        if (l->kick_ev == NULL)
            EKV_FATAL("%s: out of memory", l->label);
        ekv_sentinel_follow(follow, l);
    }
    return l;
}

struct ekv_origin_link *ekv_origin_link_new(struct event_base *base,
                                            const struct ekv_conf_origin *addr,
                                            struct ekv_sentinel *follow,
                                            const struct ekv_origin_tls *tls,
                                            uint64_t timeout_ms, const char *label,
                                            const struct ekv_origin_link_hooks *hooks)
{
    struct ekv_origin_link *l = link_create(base, addr, follow, tls, timeout_ms, label, hooks);

    connect_now(l);
    return l;
}

struct ekv_origin_link *ekv_origin_link_new_idle(struct event_base *base,
                                                 const struct ekv_conf_origin *addr,
                                                 const struct ekv_origin_tls *tls,
                                                 uint64_t timeout_ms, const char *label,
                                                 const struct ekv_origin_link_hooks *hooks)
{
    return link_create(base, addr, NULL, tls, timeout_ms, label, hooks);
}

void ekv_origin_link_retarget(struct ekv_origin_link *l, const struct ekv_conf_origin *addr,
                              const char *why)
{
    l->addr = addr;
    l->attempts = 0; /* a new target: no backoff earned there yet */
    if (l->bev != NULL) {
        reset_now(l, why);
        return;
    }
    evtimer_del(l->retry_ev);
    schedule_retry(l);
}

void ekv_origin_link_kick(struct ekv_origin_link *l)
{
    event_active(l->kick_ev, EV_TIMEOUT, 1); /* any thread: the loop runs on_kick() */
}

void ekv_origin_link_free(struct ekv_origin_link *l)
{
    if (l == NULL)
        return;
    l->freeing = true;
    if (l->follow != NULL) {
        ekv_sentinel_unfollow(l->follow, l);
        event_free(l->kick_ev);
    }
    reset_now(l, "shutting down");
    event_free(l->retry_ev);
    event_free(l->setup_ev);
    event_free(l->reset_ev);
    pthread_mutex_destroy(&l->error_lock);
    ekv_free(l);
}

void ekv_origin_link_error(struct ekv_origin_link *l, char *buf, size_t len)
{
    pthread_mutex_lock(&l->error_lock);
    snprintf(buf, len, "%s", l->error);
    pthread_mutex_unlock(&l->error_lock);
}

bool ekv_origin_link_connected(const struct ekv_origin_link *l)
{
    return l->bev != NULL;
}

bool ekv_origin_link_up(const struct ekv_origin_link *l)
{
    return l->state == UP;
}

bool ekv_origin_link_failing(const struct ekv_origin_link *l)
{
    /* connected to a master that the Sentinels or ROLE have since given up: not one more
     * command goes there (the kick that drops the connection is on its way) */
    if (l->follow != NULL && l->bev != NULL &&
        (l->role_pending || l->epoch != ekv_sentinel_epoch(l->follow)))
        return true;
    return l->bev == NULL || l->state == DOWN || (l->state == CONNECTING && l->attempts > 0);
}

const char *ekv_origin_link_label(const struct ekv_origin_link *l)
{
    return l->label;
}
