/* coherence.c - the invalidation links of the origin's nodes and the epochs of its slots (see
 * coherence.h). For a cluster, an origin client of its own (no script, no command but the slot
 * map) follows the map; every master it names gets an invalidation link, kept for the life of
 * the process (a node that stops serving slots costs one idle connection). The owner of each
 * slot and its epoch are arrays of atomics: the workers read them on every hit. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/coherence.h"
#include "edgekv/conf.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#define SLOTS 16384u
#define MAX_LINKS 256
#define NONE UINT16_MAX
/* A poke (a worker's map changed) reads the map at once, but at most this often. */
#define POKE_THROTTLE_MS 100

struct cnode {
    struct ekv_coherence *c;
    uint16_t index;   /* in c->links */
    int origin_node;  /* the map source's index of the node */
    struct ekv_inval *iv;
    char addr[72]; /* "host:port", for the metrics */
    bool retired;  /* lost all its slots to others: counted as a failover (map loop only) */
};

struct ekv_coherence {
    struct event_base *base;
    struct ekv_coherence_opts opts;
    struct ekv_coherence_hooks hooks;
    struct ekv_inval *single;    /* standalone */

    struct ekv_origin *map;      /* cluster: the slot map's source */
    struct cnode *links[MAX_LINKS];
    atomic_uint nlinks;
    _Atomic uint16_t owner[SLOTS];  /* index into links, NONE: no master */
    _Atomic uint32_t epoch[SLOTS];
    uint16_t last_owner[SLOTS]; /* the last master seen serving each slot (map loop only) */
    atomic_ullong slot_moves;
    atomic_ullong failovers;
    struct event *poke_ev; /* any thread: read the map now (ekv_coherence_poke()) */
    uint64_t poked_ms;     /* map loop: when the last poke read it */
};

/* ---------------------------------------------------------------- a cluster's links */

static void on_key(const char *key, size_t len, void *arg)
{
    struct cnode *n = arg;

    n->c->hooks.on_key(key, len, n->c->hooks.arg);
}

/* Node @n's link flushed (a new subscription, FLUSHALL, a full resync): its slots' entries end. */
static void on_node_flush(void *arg)
{
    struct cnode *n = arg;
    struct ekv_coherence *c = n->c;

    for (unsigned s = 0; s < SLOTS; s++)
        if (atomic_load_explicit(&c->owner[s], memory_order_relaxed) == n->index)
            atomic_fetch_add_explicit(&c->epoch[s], 1, memory_order_release);
    c->hooks.on_slots(c->hooks.arg);
}

/* The link for the map source's node @oi, made if new. */
static struct cnode *link_of(struct ekv_coherence *c, int oi)
{
    unsigned n = atomic_load(&c->nlinks);
    struct ekv_inval_opts io = c->opts.inval;
    struct ekv_inval_hooks h = {.on_key = on_key, .on_flush = on_node_flush};
    struct cnode *cn;

    for (unsigned i = 0; i < n; i++)
        if (c->links[i]->origin_node == oi)
            return c->links[i];
    if (n == MAX_LINKS)
        return NULL;
    cn = ekv_calloc(1, sizeof(*cn));
    cn->c = c;
    cn->index = (uint16_t)n;
    cn->origin_node = oi;
    io.addr = ekv_origin_node_addr(c->map, (size_t)oi);
    io.sentinel = NULL;
    snprintf(cn->addr, sizeof(cn->addr), strchr(io.addr->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
             io.addr->host, (unsigned)io.addr->port);
    h.arg = cn;
    c->links[n] = cn; /* published (nlinks) once complete */
    cn->iv = ekv_inval_new(c->base, &io, &h);
    atomic_store(&c->nlinks, n + 1);
    return cn;
}

/* The slot map changed: a slot served by another master (or by none) gets a new epoch. A master
 * that served slots and now serves none, while another serves what it did (at once: CLUSTER
 * FAILOVER; after a while without a master: a replica promoted after a crash), counts as a
 * failover. */
static void on_map(void *arg)
{
    struct ekv_coherence *c = arg;
    bool moved = false;
    bool taken[MAX_LINKS] = {false}; /* a slot it served last is served by another now */
    unsigned serves[MAX_LINKS] = {0};

    for (unsigned s = 0; s < SLOTS; s++) {
        int oi = ekv_origin_slot_node(c->map, s);
        struct cnode *cn = oi >= 0 ? link_of(c, oi) : NULL;
        uint16_t now = cn != NULL ? cn->index : NONE;
        uint16_t was = atomic_load_explicit(&c->owner[s], memory_order_relaxed);

        if (now != NONE) {
            serves[now]++;
            if (c->last_owner[s] != NONE && c->last_owner[s] != now)
                taken[c->last_owner[s]] = true;
            c->last_owner[s] = now;
        }
        if (now == was)
            continue;
        /* the epoch first: a hit that reads the new owner also reads the new epoch */
        atomic_fetch_add_explicit(&c->epoch[s], 1, memory_order_release);
        atomic_store_explicit(&c->owner[s], now, memory_order_release);
        if (was != NONE) {
            atomic_fetch_add_explicit(&c->slot_moves, 1, memory_order_relaxed);
            moved = true;
        }
    }
    for (unsigned i = 0; i < atomic_load(&c->nlinks); i++) {
        struct cnode *cn = c->links[i];
        if (serves[i] > 0) {
            cn->retired = false;
        } else if (taken[i] && !cn->retired) {
            cn->retired = true;
            atomic_fetch_add_explicit(&c->failovers, 1, memory_order_relaxed);
            ekv_log(EKV_LOG_INFO, "cluster: every slot of %s is served by another master now",
                    cn->addr);
        }
    }
    if (moved)
        c->hooks.on_slots(c->hooks.arg);
}

/* A worker's map changed (read again, or patched by MOVED): ours may be out of date too. */
static void on_poke(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_coherence *c = arg;
    uint64_t now = ekv_clock_now_ms();

    if (now < c->poked_ms + POKE_THROTTLE_MS)
        return;
    c->poked_ms = now;
    ekv_origin_refresh(c->map);
}

void ekv_coherence_poke(struct ekv_coherence *c)
{
    if (c->poke_ev != NULL)
        event_active(c->poke_ev, EV_TIMEOUT, 1);
}

/* ---------------------------------------------------------------- life */

struct ekv_coherence *ekv_coherence_new(struct event_base *base,
                                        const struct ekv_coherence_opts *opts,
                                        const struct ekv_coherence_hooks *hooks)
{
    struct ekv_coherence *c = ekv_calloc(1, sizeof(*c));

    c->base = base;
    c->opts = *opts;
    c->hooks = *hooks;
    atomic_init(&c->nlinks, 0);
    atomic_init(&c->slot_moves, 0);
    atomic_init(&c->failovers, 0);
    for (unsigned s = 0; s < SLOTS; s++) {
        atomic_init(&c->owner[s], NONE);
        atomic_init(&c->epoch[s], 0);
        c->last_owner[s] = NONE;
    }
    if (opts->nseeds == 0) {
        struct ekv_inval_hooks h = {.on_key = hooks->on_key, .on_flush = hooks->on_flush,
                                    .arg = hooks->arg};
        c->single = ekv_inval_new(base, &opts->inval, &h);
        return c;
    }
    {
        struct ekv_origin_opts mo = {
            .seeds = opts->seeds,
            .nseeds = opts->nseeds,
            .tls = opts->inval.tls,
            .timeout_ms = opts->inval.timeout_ms,
            .refresh_ms = opts->refresh_ms != 0 ? opts->refresh_ms : 1000,
            .label = "slot map",
        };
        c->map = ekv_origin_new(base, &mo);
        ekv_origin_set_map_cb(c->map, on_map, c);
        c->poke_ev = event_new(base, -1, 0, on_poke, c);
        if (c->poke_ev == NULL)
            EKV_FATAL("coherence: out of memory");
    }
    return c;
}

void ekv_coherence_free(struct ekv_coherence *c)
{
    if (c == NULL)
        return;
    ekv_inval_free(c->single);
    for (unsigned i = 0; i < atomic_load(&c->nlinks); i++) {
        ekv_inval_free(c->links[i]->iv);
        ekv_free(c->links[i]);
    }
    ekv_origin_free(c->map); /* after the links, which borrowed its node addresses */
    if (c->poke_ev != NULL)
        event_free(c->poke_ev);
    ekv_free(c);
}

/* ---------------------------------------------------------------- any thread */

bool ekv_coherence_fresh(const struct ekv_coherence *c, unsigned slot, uint64_t now_ms,
                         uint64_t max_staleness_ms)
{
    uint16_t i;

    if (c->single != NULL)
        return ekv_inval_fresh(c->single, now_ms, max_staleness_ms);
    i = atomic_load_explicit(&c->owner[slot % SLOTS], memory_order_acquire);
    return i != NONE && ekv_inval_fresh(c->links[i]->iv, now_ms, max_staleness_ms);
}

uint32_t ekv_coherence_epoch(const struct ekv_coherence *c, unsigned slot)
{
    if (c->single != NULL)
        return 0;
    return atomic_load_explicit(&c->epoch[slot % SLOTS], memory_order_acquire);
}

bool ekv_coherence_all_fresh(const struct ekv_coherence *c, uint64_t now_ms,
                             uint64_t max_staleness_ms)
{
    unsigned n;
    bool serving[MAX_LINKS] = {false};

    if (c->single != NULL)
        return ekv_inval_fresh(c->single, now_ms, max_staleness_ms);
    n = atomic_load(&c->nlinks);
    for (unsigned s = 0; s < SLOTS; s++) {
        uint16_t i = atomic_load_explicit(&c->owner[s], memory_order_acquire);
        if (i == NONE || i >= n)
            return false;
        serving[i] = true;
    }
    for (unsigned i = 0; i < n; i++)
        if (serving[i] && !ekv_inval_fresh(c->links[i]->iv, now_ms, max_staleness_ms))
            return false;
    return true;
}

void ekv_coherence_stats(const struct ekv_coherence *c, struct ekv_coherence_stats *st)
{
    unsigned n;

    memset(st, 0, sizeof(*st));
    if (c->single != NULL) {
        struct ekv_inval_stats is;
        ekv_inval_stats(c->single, &is);
        st->links = 1;
        st->links_live = is.live;
        st->slots_served = SLOTS;
        st->keys = is.keys;
        st->flushes = is.flushes;
        st->losses = is.losses;
        st->oldest_fence_ms = is.fence_ms;
        snprintf(st->error, sizeof(st->error), "%s", is.error);
        return;
    }
    n = atomic_load(&c->nlinks);
    st->links = n;
    for (unsigned i = 0; i < n; i++) {
        struct ekv_inval_stats is;
        ekv_inval_stats(c->links[i]->iv, &is);
        st->links_live += is.live;
        st->keys += is.keys;
        st->flushes += is.flushes;
        st->losses += is.losses;
        if (is.live && (st->oldest_fence_ms == 0 || is.fence_ms < st->oldest_fence_ms))
            st->oldest_fence_ms = is.fence_ms;
        if (!is.live && is.error[0] != '\0' && st->error[0] == '\0')
            snprintf(st->error, sizeof(st->error), "%s", is.error);
    }
    for (unsigned s = 0; s < SLOTS; s++)
        st->slots_served += atomic_load_explicit(&c->owner[s], memory_order_relaxed) != NONE;
    st->slot_moves = atomic_load(&c->slot_moves);
    st->failovers = atomic_load(&c->failovers);
}

size_t ekv_coherence_nodes(const struct ekv_coherence *c, struct ekv_coherence_node *out,
                           size_t max)
{
    unsigned n;

    if (c->single != NULL)
        return 0;
    n = atomic_load(&c->nlinks);
    for (unsigned i = 0; i < n && i < max; i++) {
        struct ekv_inval_stats is;
        ekv_inval_stats(c->links[i]->iv, &is);
        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].addr, sizeof(out[i].addr), "%s", c->links[i]->addr);
        out[i].live = is.live;
        out[i].fence_ms = is.fence_ms;
        out[i].keys = is.keys;
        out[i].flushes = is.flushes;
        out[i].losses = is.losses;
    }
    for (unsigned s = 0; s < SLOTS; s++) {
        uint16_t i = atomic_load_explicit(&c->owner[s], memory_order_relaxed);
        if (i != NONE && i < n && i < max)
            out[i].slots++;
    }
    return n;
}
