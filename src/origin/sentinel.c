/* sentinel.c - the master that Redis Sentinels name (redis-sentinel://), followed for every
 * connection of the process (see origin.h). Runs on one loop (the main one) with three kinds of
 * link of its own:
 *
 *  - the query link: one Sentinel at a time (the next one when it fails or does not know the
 *    master), asked SENTINEL get-master-addr-by-name on connect and every check period;
 *  - one subscription per Sentinel to +switch-master: a hint that arrives at once (Sentinel
 *    publishes it when a failover ends), but whose delivery is not guaranteed;
 *  - the role link: to the node the Sentinels name, asking ROLE on connect and every check
 *    period. Only a node that says "master" is published.
 *
 * The published master and its epoch are read by any thread (ekv_sentinel_master()). Every
 * change (a new master, or none) bumps the epoch and kicks the links that follow it
 * (ekv_origin_link_kick()), on their own loops: a link connected under an older epoch drops its
 * connection and reconnects to the new master, and the invalidation link's new subscription
 * starts with a flush, so no hit outlives a switch. Sentinel's old master may accept writes for
 * seconds after a failover; the moment the Sentinels or ROLE say so, no new command goes to it. */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"
#include "edgekv/text.h"

#include "origin_int.h"

#define SWITCH_CHANNEL "+switch-master"
#define HOST_MAX 64

struct sub {
    struct ekv_sentinel *s;
    struct ekv_origin_link *link;
};

struct ekv_sentinel {
    struct event_base *base;
    struct ekv_sentinel_opts opts;
    uint64_t check_ms;

    struct ekv_origin_link *query; /* to opts.sentinels[qi] */
    size_t qi;
    unsigned qpending;             /* queries sent and not answered */
    struct sub *subs;              /* one per Sentinel */

    struct ekv_origin_link *role;  /* to cand */
    struct ekv_conf_origin cand;   /* the node the Sentinels name: host = cand_host */
    char cand_host[HOST_MAX];
    bool have_cand;
    bool retargeting;              /* the role link is being moved: its close says nothing */
    unsigned rpending;             /* ROLE sent and not answered */

    struct event *tick_ev, *recheck_ev;

    /* what any thread reads */
    pthread_mutex_t lock;
    bool known;                    /* a master is published */
    char host[HOST_MAX];
    uint16_t port;
    char last_host[HOST_MAX];      /* the last master published (for counting failovers) */
    uint16_t last_port;
    char why[200];                 /* why no master is known */
    atomic_ullong epoch;
    atomic_ullong failovers;
    atomic_uint subs_up;
    struct ekv_origin_link **followers;
    size_t nfollowers, capfollowers;
};

/* ---------------------------------------------------------------- what is published */

static void kick_followers(struct ekv_sentinel *s)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nfollowers; i++)
        ekv_origin_link_kick(s->followers[i]);
    pthread_mutex_unlock(&s->lock);
}

/* ROLE at @host:@port says master, and the Sentinels name it. */
static void publish(struct ekv_sentinel *s, const char *host, uint16_t port)
{
    bool changed, failover = false;

    pthread_mutex_lock(&s->lock);
    changed = !s->known || strcmp(s->host, host) != 0 || s->port != port;
    if (changed) {
        failover = s->last_host[0] != '\0' &&
                   (strcmp(s->last_host, host) != 0 || s->last_port != port);
        s->known = true;
        snprintf(s->host, sizeof(s->host), "%s", host);
        s->port = port;
        snprintf(s->last_host, sizeof(s->last_host), "%s", host);
        s->last_port = port;
        s->why[0] = '\0';
        atomic_fetch_add(&s->epoch, 1);
    }
    pthread_mutex_unlock(&s->lock);
    if (!changed)
        return;
    if (failover)
        atomic_fetch_add(&s->failovers, 1);
    ekv_log(EKV_LOG_INFO, "sentinel: master %s is %s:%u%s", s->opts.master_name, host,
            (unsigned)port, failover ? " (failover)" : "");
    kick_followers(s);
}

/* No node may be used as the master now (the Sentinels name another one, or ROLE says it is a
 * replica). */
static void unpublish(struct ekv_sentinel *s, const char *why)
{
    bool changed;

    pthread_mutex_lock(&s->lock);
    changed = s->known;
    s->known = false;
    snprintf(s->why, sizeof(s->why), "%s", why);
    if (changed)
        atomic_fetch_add(&s->epoch, 1);
    pthread_mutex_unlock(&s->lock);
    if (!changed)
        return;
    ekv_log(EKV_LOG_WARN, "sentinel: no master for %s until it is confirmed: %s",
            s->opts.master_name, why);
    kick_followers(s);
}

static void set_why(struct ekv_sentinel *s, const char *why)
{
    pthread_mutex_lock(&s->lock);
    if (!s->known)
        snprintf(s->why, sizeof(s->why), "%s", why);
    pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- the role link */

static void send_role(struct ekv_sentinel *s)
{
    const char *role[] = {"ROLE"};

    ekv_origin_link_sendv(s->role, 1, role, NULL);
    s->rpending++;
}

/* The Sentinels name @host:@port as the master. */
static void candidate(struct ekv_sentinel *s, const char *host, uint16_t port)
{
    unsigned char ip[16];
    char why[200];

    if (s->have_cand && strcmp(s->cand_host, host) == 0 && s->cand.port == port)
        return;
    if (strlen(host) >= HOST_MAX ||
        (inet_pton(AF_INET, host, ip) != 1 && inet_pton(AF_INET6, host, ip) != 1)) {
        snprintf(why, sizeof(why),
                 "the Sentinels name \"%.64s\", which is not an IP address (set "
                 "resolve-hostnames no and announce-hostnames no in sentinel.conf)",
                 host);
        unpublish(s, why);
        return;
    }
    pthread_mutex_lock(&s->lock);
    bool elsewhere = s->known && (strcmp(s->host, host) != 0 || s->port != port);
    pthread_mutex_unlock(&s->lock);
    if (elsewhere) {
        /* the old master may accept writes for seconds: not one more goes to it */
        snprintf(why, sizeof(why), "the Sentinels now name %s:%u", host, (unsigned)port);
        unpublish(s, why);
    }
    snprintf(s->cand_host, sizeof(s->cand_host), "%s", host);
    s->cand.port = port;
    s->have_cand = true;
    s->rpending = 0;
    if (s->role == NULL)
        return; /* being freed */
    s->retargeting = true;
    ekv_origin_link_retarget(s->role, &s->cand, "the Sentinels name another master");
    s->retargeting = false;
}

static void on_role_open(struct ekv_origin_link *link, void *arg)
{
    struct ekv_sentinel *s = arg;

    s->rpending = 0;
    send_role(s);
}

static bool is_str(const redisReply *r, const char *str)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(str) && memcmp(r->str, str, r->len) == 0;
}

static void on_role_reply(struct redisReply *r, void *arg)
{
    struct ekv_sentinel *s = arg;
    char why[200];

    if (s->rpending > 0)
        s->rpending--;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && is_str(r->element[0], "master")) {
        ekv_origin_reply_free(r);
        ekv_origin_link_ready(s->role);
        publish(s, s->cand_host, s->cand.port);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof(why), "ROLE at %s:%u refused: %.100s", s->cand_host,
                 (unsigned)s->cand.port, r->str);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(why, sizeof(why), "%s:%u is not the master (ROLE: %.20s)", s->cand_host,
                 (unsigned)s->cand.port, r->element[0]->str);
    else
        snprintf(why, sizeof(why), "%s:%u answered ROLE oddly", s->cand_host,
                 (unsigned)s->cand.port);
    ekv_origin_reply_free(r);
    unpublish(s, why);
    ekv_origin_link_reset(s->role, why, false);
}

static void on_role_close(bool was_ready, const char *why, void *arg)
{
    struct ekv_sentinel *s = arg;
    char msg[200];

    s->rpending = 0;
    if (s->retargeting)
        return;
    /* a master out of reach: the data links see it too; what to use next is the Sentinels'
     * call, so the published master stays until they name another or ROLE says otherwise */
    snprintf(msg, sizeof(msg), "the master %s:%u: %.100s", s->cand_host, (unsigned)s->cand.port,
             why);
    set_why(s, msg);
}

/* ---------------------------------------------------------------- the query link */

static void send_query(struct ekv_sentinel *s)
{
    const char *q[] = {"SENTINEL", "get-master-addr-by-name", s->opts.master_name};

    ekv_origin_link_sendv(s->query, 3, q, NULL);
    s->qpending++;
}

static void on_query_open(struct ekv_origin_link *link, void *arg)
{
    struct ekv_sentinel *s = arg;

    s->query = link; /* the first connect runs inside ekv_origin_link_new() */
    s->qpending = 0;
    send_query(s);
}

/* A port number (1..65535) of @len bytes at @p, into *@port. */
static bool parse_port(const char *p, size_t len, uint16_t *port)
{
    uint64_t n;

    if (ekv_parse_u64(p, len, &n) != EKV_OK || n == 0 || n > 65535)
        return false;
    *port = (uint16_t)n;
    return true;
}

static void on_query_reply(struct redisReply *r, void *arg)
{
    struct ekv_sentinel *s = arg;
    const struct ekv_conf_origin *at = &s->opts.sentinels[s->qi];
    char why[200];
    uint16_t port;

    if (s->qpending > 0)
        s->qpending--;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        parse_port(r->element[1]->str, r->element[1]->len, &port)) {
        ekv_origin_link_ready(s->query);
        candidate(s, r->element[0]->str, port);
        ekv_origin_reply_free(r);
        return;
    }
    if (r->type == REDIS_REPLY_NIL)
        snprintf(why, sizeof(why), "the Sentinel at %s:%u does not know the master %s",
                 at->host, (unsigned)at->port, s->opts.master_name);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof(why), "the Sentinel at %s:%u refused: %.100s", at->host,
                 (unsigned)at->port, r->str);
    else
        snprintf(why, sizeof(why), "the Sentinel at %s:%u answered oddly", at->host,
                 (unsigned)at->port);
    ekv_origin_reply_free(r);
    set_why(s, why);
    ekv_origin_link_reset(s->query, why, false); /* on to the next Sentinel */
}

static void on_query_close(bool was_ready, const char *why, void *arg)
{
    struct ekv_sentinel *s = arg;
    char msg[200];

    s->qpending = 0;
    if (s->query == NULL)
        return; /* being freed */
    snprintf(msg, sizeof(msg), "Sentinel %s:%u: %.100s", s->opts.sentinels[s->qi].host,
             (unsigned)s->opts.sentinels[s->qi].port, why);
    set_why(s, msg);
    /* ask the next one (each in turn) */
    s->qi = (s->qi + 1) % s->opts.nsentinels;
    ekv_origin_link_retarget(s->query, &s->opts.sentinels[s->qi], NULL);
}

/* ---------------------------------------------------------------- +switch-master */

static void on_sub_open(struct ekv_origin_link *link, void *arg)
{
    const char *sub[] = {"SUBSCRIBE", SWITCH_CHANNEL};
    struct sub *sb = arg;

    sb->link = link; /* the first connect runs inside ekv_origin_link_new() */
    ekv_origin_link_sendv(link, 2, sub, NULL);
}

/* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
static void on_switch_message(struct ekv_sentinel *s, const redisReply *payload)
{
    const char *f[5];
    size_t flen[5], n = 0;
    const char *p = payload->str, *end = payload->str + payload->len;
    char host[HOST_MAX];
    uint16_t port;

    while (p < end && n < 5) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        f[n] = p;
        flen[n] = sp != NULL ? (size_t)(sp - p) : (size_t)(end - p);
        n++;
        p = sp != NULL ? sp + 1 : end;
    }
    if (n != 5 || flen[0] != strlen(s->opts.master_name) ||
        memcmp(f[0], s->opts.master_name, flen[0]) != 0)
        return; /* another master's */
    if (flen[3] >= sizeof(host) || !parse_port(f[4], flen[4], &port))
        return;
    memcpy(host, f[3], flen[3]);
    host[flen[3]] = '\0';
    ekv_log(EKV_LOG_INFO, "sentinel: +switch-master %s -> %s:%u", s->opts.master_name, host,
            (unsigned)port);
    candidate(s, host, port);
}

static void on_sub_reply(struct redisReply *r, void *arg)
{
    struct sub *sb = arg;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && is_str(r->element[1], SWITCH_CHANNEL)) {
        if (is_str(r->element[0], "subscribe")) {
            ekv_origin_link_ready(sb->link);
            if (ekv_origin_link_up(sb->link))
                atomic_fetch_add(&sb->s->subs_up, 1);
        } else if (is_str(r->element[0], "message") &&
                   r->element[2]->type == REDIS_REPLY_STRING) {
            on_switch_message(sb->s, r->element[2]);
        }
        ekv_origin_reply_free(r);
        return;
    }
    char why[160];
    snprintf(why, sizeof(why), "%s%.100s",
             r->type == REDIS_REPLY_ERROR ? "SUBSCRIBE refused: " : "an unexpected reply",
             r->type == REDIS_REPLY_ERROR ? r->str : "");
    ekv_origin_reply_free(r);
    ekv_origin_link_reset(sb->link, why, false);
}

static void on_sub_close(bool was_ready, const char *why, void *arg)
{
    struct sub *sb = arg;

    if (was_ready)
        atomic_fetch_sub(&sb->s->subs_up, 1);
}

/* ---------------------------------------------------------------- the check period */

static void on_recheck(evutil_socket_t fd, short what, void *arg);

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_sentinel *s = arg;
    struct timeval tv = ekv_ms_tv(s->check_ms);

    evtimer_add(s->tick_ev, &tv);
    on_recheck(fd, what, arg);
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_sentinel *s = arg;

    if (ekv_origin_link_up(s->query) && s->qpending == 0)
        send_query(s);
    if (ekv_origin_link_up(s->role) && s->rpending == 0)
        send_role(s);
}

void ekv_sentinel_recheck(struct ekv_sentinel *s)
{
    event_active(s->recheck_ev, EV_TIMEOUT, 1);
}

/* ---------------------------------------------------------------- life */

struct ekv_sentinel *ekv_sentinel_new(struct event_base *base, const struct ekv_sentinel_opts *opts)
{
    struct ekv_sentinel *s = ekv_calloc(1, sizeof(*s));
    struct ekv_origin_link_hooks qh = {.on_open = on_query_open, .on_reply = on_query_reply,
                                       .on_close = on_query_close, .arg = s};
    struct ekv_origin_link_hooks rh = {.on_open = on_role_open, .on_reply = on_role_reply,
                                       .on_close = on_role_close, .arg = s};
    struct timeval tv;
    char label[48];

    if (opts->nsentinels == 0)
        EKV_FATAL("sentinel: no Sentinel to ask");
    s->base = base;
    s->opts = *opts;
    s->check_ms = opts->check_ms != 0 ? opts->check_ms : 1000;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->epoch, 1);
    atomic_init(&s->failovers, 0);
    atomic_init(&s->subs_up, 0);
    snprintf(s->why, sizeof(s->why), "asking the Sentinels");
    /* the data nodes' credentials and database; the address is the Sentinels' answer */
    s->cand = *opts->data;
    s->cand.kind = EKV_ORIGIN_STANDALONE;
    s->cand.host = s->cand_host;
    s->cand.unix_path = NULL;
    s->cand.nnodes = 0;
    s->cand.master = NULL;
    s->cand.tls_name = NULL;
    s->tick_ev = evtimer_new(base, on_tick, s);
    s->recheck_ev = event_new(base, -1, 0, on_recheck, s);
    if (s->tick_ev == NULL || s->recheck_ev == NULL)
        EKV_FATAL("sentinel: out of memory");
    s->subs = ekv_calloc(opts->nsentinels, sizeof(*s->subs));
    for (size_t i = 0; i < opts->nsentinels; i++) {
        struct ekv_origin_link_hooks sh = {.on_open = on_sub_open, .on_reply = on_sub_reply,
                                           .on_close = on_sub_close, .arg = &s->subs[i]};
        s->subs[i].s = s;
        snprintf(label, sizeof(label), "sentinel %s:%u", opts->sentinels[i].host,
                 (unsigned)opts->sentinels[i].port);
        s->subs[i].link = ekv_origin_link_new(base, &opts->sentinels[i], NULL, opts->tls,
                                              opts->timeout_ms, label, &sh);
    }
    /* the role link waits for a candidate: it starts on the first answer */
    s->role = ekv_origin_link_new_idle(base, &s->cand, opts->tls, opts->timeout_ms,
                                       "sentinel: the master", &rh);
    s->query = ekv_origin_link_new(base, &opts->sentinels[0], NULL, opts->tls, opts->timeout_ms,
                                   "sentinel: query", &qh);
    tv = ekv_ms_tv(s->check_ms);
    evtimer_add(s->tick_ev, &tv);
    return s;
}

void ekv_sentinel_free(struct ekv_sentinel *s)
{
    struct ekv_origin_link *q, *r;

    if (s == NULL)
        return;
    q = s->query;
    r = s->role;
    s->query = NULL; /* the close hooks must not retarget them */
    s->role = NULL;
    ekv_origin_link_free(q);
    ekv_origin_link_free(r);
    for (size_t i = 0; i < s->opts.nsentinels; i++)
        ekv_origin_link_free(s->subs[i].link);
    ekv_free(s->subs);
    event_free(s->tick_ev);
    event_free(s->recheck_ev);
    ekv_free(s->followers);
    pthread_mutex_destroy(&s->lock);
    ekv_free(s);
}

bool ekv_sentinel_master(const struct ekv_sentinel *s, struct ekv_conf_origin *out, char *host,
                         size_t hostlen, uint64_t *epoch, char *why, size_t whylen)
{
    struct ekv_sentinel *m = (struct ekv_sentinel *)s; /* the lock */
    bool known;

    pthread_mutex_lock(&m->lock);
    known = m->known;
    *epoch = atomic_load(&m->epoch);
    if (known) {
        *out = m->cand; /* credentials and database */
        snprintf(host, hostlen, "%s", m->host);
        out->host = host;
        out->port = m->port;
    } else {
        snprintf(why, whylen, "sentinel: no master known for %s (%s)", m->opts.master_name,
                 m->why);
    }
    pthread_mutex_unlock(&m->lock);
    return known;
}

uint64_t ekv_sentinel_epoch(const struct ekv_sentinel *s)
{
    return atomic_load_explicit(&s->epoch, memory_order_acquire);
}

void ekv_sentinel_follow(struct ekv_sentinel *s, struct ekv_origin_link *l)
{
    pthread_mutex_lock(&s->lock);
    if (s->nfollowers == s->capfollowers) {
        s->capfollowers = s->capfollowers != 0 ? 2 * s->capfollowers : 8;
        s->followers = ekv_realloc(s->followers, s->capfollowers * sizeof(*s->followers));
    }
    s->followers[s->nfollowers++] = l;
    pthread_mutex_unlock(&s->lock);
}

void ekv_sentinel_unfollow(struct ekv_sentinel *s, struct ekv_origin_link *l)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nfollowers; i++)
        if (s->followers[i] == l) {
            s->followers[i] = s->followers[--s->nfollowers];
            break;
        }
    pthread_mutex_unlock(&s->lock);
}

void ekv_sentinel_stats(const struct ekv_sentinel *s, struct ekv_sentinel_stats *st)
{
    struct ekv_sentinel *m = (struct ekv_sentinel *)s;

    pthread_mutex_lock(&m->lock);
    st->known = m->known;
    if (m->known)
        snprintf(st->master, sizeof(st->master), "%s:%u", m->host, (unsigned)m->port);
    else
        st->master[0] = '\0';
    snprintf(st->why, sizeof(st->why), "%s", m->known ? "" : m->why);
    pthread_mutex_unlock(&m->lock);
    st->epoch = atomic_load(&m->epoch);
    st->failovers = atomic_load(&m->failovers);
    st->sentinels_up = atomic_load(&m->subs_up);
    st->sentinels_total = (unsigned)m->opts.nsentinels;
}
