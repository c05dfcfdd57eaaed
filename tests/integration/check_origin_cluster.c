/* check_origin_cluster.c - the origin client (src/origin) and the coherence of the cache
 * (src/inval/coherence.c) over a real Redis Cluster (3 masters, 3 replicas, one for the suite).
 * The origin: the slot map from a seed, commands, scripts and pipelines routed to the master of
 * their key's slot; MOVED followed after a slot moved (and the map patched), ASK followed behind
 * ASKING while a slot migrates, TRYAGAIN retried until the migration ends, and a CLUSTER
 * FAILOVER followed: writes land on the new master. The coherence: one invalidation link per
 * master, invalidations from each; FLUSHALL on one master ends its slots' entries only; its link
 * killed: its slots are not fresh until it is back (and their entries are dead), the others stay
 * fresh; a slot taken over without MIGRATE (no invalidation in 7.0) and a failover end the
 * entries of the slots concerned; a MOVED seen by an origin pokes the coherence into reading the
 * map at once. The tests share the cluster and run in order (the failovers
 * last). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/coherence.h"
#include "edgekv/conf.h"
#include "edgekv/origin.h"

#include "evloop.h"
#include "testutil.h"
#include "topology.h"

static struct ekv_test_cluster *cluster;
static struct event_base *base;
static struct ekv_conf_origin seeds[3];
static char host[] = "127.0.0.1";
static struct ekv_origin_script scripts[] = {
    {"get", "return redis.call('GET', KEYS[1])", ""},
    {"mset2", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SET', KEYS[2], ARGV[1])", ""},
};

struct result {
    int calls;
    int status;
    int type;
    char str[256];
};

static void on_result(int status, const struct redisReply *r, void *arg)
{
    struct result *res = arg;

    res->calls++;
    res->status = status;
    res->str[0] = '\0';
    if (r == NULL)
        return;
    res->type = r->type;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str != NULL)
        snprintf(res->str, sizeof(res->str), "%s", r->element[0]->str);
    else if (r->str != NULL)
        snprintf(res->str, sizeof(res->str), "%.*s", (int)r->len, r->str);
}

static void start_cluster(void)
{
    cluster = ekv_test_cluster_start();
}

static void stop_cluster(void)
{
    ekv_test_cluster_free(cluster);
}

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    memset(seeds, 0, sizeof(seeds));
    for (int i = 0; i < 3; i++) {
        seeds[i].host = host;
        seeds[i].port = cluster->port[i];
    }
}

static void teardown(void)
{
    event_base_free(base);
    ekv_test_kill_strays();
}

static struct ekv_origin *origin_new(void)
{
    struct ekv_origin_opts o = {
        .seeds = seeds,
        .nseeds = 1, /* one seed is enough: the map names the others */
        .timeout_ms = 2000,
        .scripts = scripts,
        .nscripts = EKV_ARRAY_LEN(scripts),
        .label = "test",
    };
    struct ekv_origin *org = ekv_origin_new(base, &o);
    uint64_t end = ekv_test_now_ms() + 5000;
    int never = 0;

    while (!ekv_origin_connected(org) && ekv_test_now_ms() < end)
        ekv_test_loop_until(base, &never, 20);
    ck_assert_msg(ekv_origin_connected(org), "never connected to every master");
    return org;
}

static void cmd(struct ekv_origin *o, struct result *res, int argc, const char **argv)
{
    memset(res, 0, sizeof(*res));
    ekv_origin_cmd(o, on_result, res, argc, argv, NULL);
    ck_assert(ekv_test_loop_until(base, &res->calls, 5000));
}

static void set(struct ekv_origin *o, const char *k, const char *v)
{
    const char *argv[] = {"SET", k, v};
    struct result r;

    cmd(o, &r, 3, argv);
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_msg(r.type == REDIS_REPLY_STATUS && strcmp(r.str, "OK") == 0, "SET %s: %s", k,
                  r.str);
}

/* @key's value on the master that serves its slot, asked directly. */
static char *on_owner(const char *key)
{
    unsigned short p = ekv_test_cluster_master_of_slot(cluster,
                                                       ekv_test_cluster_keyslot(cluster, key));

    return ekv_test_cmd_port_or_fail(p, NULL, "GET %s", key);
}

/* A master other than the one on @port. */
static unsigned short other_master(unsigned short port)
{
    unsigned short map[EKV_TEST_CLUSTER_SLOTS];

    ekv_test_cluster_slot_map(cluster, 0, map);
    for (int s = 0; s < EKV_TEST_CLUSTER_SLOTS; s++)
        if (map[s] != 0 && map[s] != port)
            return map[s];
    ck_abort_msg("no other master");
    return 0;
}

/* Keys on every master, written and read through the origin: each lives where its slot is
 * served; a script and a pipeline go where their first key is. */
START_TEST(test_routes_by_slot)
{
    struct ekv_origin *o = origin_new();
    static const char *const keys[] = {"r:{a0}", "r:{b0}", "r:{e0}", "r:{d2}", "r:{c2}", "r:{foo}"};
    unsigned short seen[6] = {0};
    unsigned nseen = 0;
    struct ekv_origin_cluster_stats st;

    for (size_t i = 0; i < EKV_ARRAY_LEN(keys); i++) {
        char v[32], *got;
        unsigned short owner = ekv_test_cluster_master_of_slot(
            cluster, ekv_test_cluster_keyslot(cluster, keys[i]));
        bool known = false;

        snprintf(v, sizeof(v), "v%zu", i);
        set(o, keys[i], v);
        got = on_owner(keys[i]);
        ck_assert_str_eq(got, v);
        free(got);
        for (unsigned j = 0; j < nseen; j++)
            known = known || seen[j] == owner;
        if (!known)
            seen[nseen++] = owner;
    }
    ck_assert_uint_eq(nseen, 3); /* the keys above cover the three masters */
    {
        const char *ev[] = {"r:{b0}"};
        struct result r = {0};
        ekv_origin_eval(o, 0, on_result, &r, 1, 1, ev, NULL);
        ck_assert(ekv_test_loop_until(base, &r.calls, 5000));
        ck_assert_str_eq(r.str, "v1");
    }
    {
        const char *g[] = {"GET", "r:{e0}"}, *t[] = {"PTTL", "r:{e0}"};
        struct ekv_origin_argv cmds[] = {{2, g, NULL}, {2, t, NULL}};
        struct result r = {0};
        ekv_origin_pipeline(o, 0, on_result, &r, 2, cmds);
        ck_assert(ekv_test_loop_until(base, &r.calls, 5000));
        ck_assert_int_eq(r.type, REDIS_REPLY_ARRAY);
        ck_assert_str_eq(r.str, "v2");
    }
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_ge(st.refreshes, 1);
    ck_assert_uint_eq(st.moved, 0); /* the map was right */
    ekv_origin_free(o);
}
END_TEST

/* A slot moves to another master after the map was read: MOVED is followed (the write lands on
 * the new owner) and the next command goes there at once. */
START_TEST(test_moved_followed)
{
    struct ekv_origin *o = origin_new();
    const char *key = "m:{a0}";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short from = ekv_test_cluster_master_of_slot(cluster, slot);
    unsigned short to = other_master(from);
    struct ekv_origin_cluster_stats st;
    char *got;

    set(o, key, "before");
    ekv_test_cluster_move_slot(cluster, slot, to);
    set(o, key, "after");
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_eq(st.moved, 1);
    got = ekv_test_cmd_port_or_fail(to, NULL, "GET %s", key);
    ck_assert_str_eq(got, "after");
    free(got);
    set(o, key, "again");
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_eq(st.moved, 1); /* the map was patched */
    ekv_test_cluster_move_slot(cluster, slot, from);
    ekv_origin_free(o);
}
END_TEST

static const char *id_of(unsigned short port)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        if (cluster->port[i] == port)
            return cluster->id[i];
    ck_abort_msg("no node on %u", port);
    return NULL;
}

/* @slot starts moving from @from to @to (keys move with MIGRATE, one by one). */
static void start_migration(int slot, unsigned short from, unsigned short to)
{
    free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d IMPORTING %s", slot, id_of(from)));
    free(ekv_test_cmd_port_or_fail(from, NULL, "CLUSTER SETSLOT %d MIGRATING %s", slot, id_of(to)));
}

/* @slot is @to's, on every master (the masters are the first three nodes until a failover). */
static void end_migration(int slot, unsigned short to)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char *r = ekv_test_cmd_port(cluster->port[i], NULL, "CLUSTER SETSLOT %d NODE %s", slot,
                                    id_of(to));
        free(r);
    }
}

/* While a slot migrates, a key that is not on the source any more is asked for on the target:
 * ASK, then ASKING + the command there; the map is not changed. */
START_TEST(test_ask_followed)
{
    struct ekv_origin *o = origin_new();
    const char *key = "a:{c2}";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short from = ekv_test_cluster_master_of_slot(cluster, slot);
    unsigned short to = other_master(from);
    struct ekv_origin_cluster_stats st;

    start_migration(slot, from, to);
    set(o, key, "new"); /* not on the source: ASK */
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_eq(st.ask, 1);
    ck_assert_uint_eq(st.moved, 0);
    set(o, key, "newer");
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_eq(st.ask, 2); /* still the source's slot in the map: asked again */
    /* finish the move; the target holds the key */
    end_migration(slot, to);
    ekv_test_cluster_move_slot(cluster, slot, to); /* waits until every node agrees */
    {
        const char *gv[] = {"GET", key};
        struct result g;
        cmd(o, &g, 2, gv);
        ck_assert_str_eq(g.str, "newer");
    }
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_eq(st.moved, 1);
    ekv_test_cluster_move_slot(cluster, slot, from);
    ekv_origin_free(o);
}
END_TEST

/* A script over two keys of one migrating slot, one of them moved already: TRYAGAIN until the
 * slot has moved, then MOVED: the script runs once, on the new owner, within its deadline. */
START_TEST(test_tryagain_until_migrated)
{
    struct ekv_origin *o = origin_new();
    const char *k1 = "t:{d2}:1", *k2 = "t:{d2}:2";
    int slot = ekv_test_cluster_keyslot(cluster, k1);
    unsigned short from = ekv_test_cluster_master_of_slot(cluster, slot);
    unsigned short to = other_master(from);
    const char *ev[] = {k1, k2, "both"};
    struct result r = {0};
    struct ekv_origin_cluster_stats st;
    char *got;

    set(o, k1, "x");
    set(o, k2, "x");
    start_migration(slot, from, to);
    free(ekv_test_cmd_port_or_fail(from, NULL, "MIGRATE 127.0.0.1 %u %s 0 5000", to, k2));
    ekv_origin_eval(o, 1, on_result, &r, 2, 3, ev, NULL);
    ck_assert(!ekv_test_loop_until(base, &r.calls, 150)); /* retried, not answered */
    ekv_origin_cluster_stats(o, &st);
    ck_assert_uint_ge(st.tryagain, 1);
    free(ekv_test_cmd_port_or_fail(from, NULL, "MIGRATE 127.0.0.1 %u %s 0 5000", to, k1));
    end_migration(slot, to);
    ck_assert(ekv_test_loop_until(base, &r.calls, 3000));
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_msg(r.type == REDIS_REPLY_STATUS, "%s", r.str);
    got = ekv_test_cmd_port_or_fail(to, NULL, "GET %s", k1);
    ck_assert_str_eq(got, "both");
    free(got);
    ekv_test_cluster_move_slot(cluster, slot, from);
    ekv_origin_free(o);
}
END_TEST

/* CLUSTER FAILOVER disconnects nobody: the old master answers MOVED, the write lands on the new
 * master, and the map is read again. */
START_TEST(test_failover_followed)
{
    struct ekv_origin *o = origin_new();
    const char *key = "f:{e0}";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short old = ekv_test_cluster_master_of_slot(cluster, slot), now;
    struct ekv_origin_cluster_stats before, after;
    char *got;

    set(o, key, "before");
    ekv_origin_cluster_stats(o, &before);
    now = ekv_test_cluster_failover(cluster, old);
    set(o, key, "after");
    got = ekv_test_cmd_port_or_fail(now, NULL, "GET %s", key);
    ck_assert_str_eq(got, "after");
    free(got);
    ekv_origin_cluster_stats(o, &after);
    ck_assert_uint_ge(after.moved, before.moved + 1);
    ekv_origin_free(o);
}
END_TEST


/* ---------------------------------------------------------------- coherence */

struct seen {
    unsigned keys, slots_flushes;
    char last[128];
};

static void co_key(const char *key, size_t len, void *arg)
{
    struct seen *s = arg;

    s->keys++;
    snprintf(s->last, sizeof(s->last), "%.*s", (int)len, key);
}

static void co_flush(void *arg)
{
    ck_abort_msg("a cluster never flushes everything");
}

static void co_slots(void *arg)
{
    struct seen *s = arg;

    s->slots_flushes++;
}

static const char *const co_prefixes[] = {"co:"};

static struct ekv_coherence *coherence_new_every(struct seen *seen, uint64_t refresh_ms)
{
    struct ekv_coherence_opts co = {
        .inval = {.prefixes = co_prefixes,
                  .nprefixes = 1,
                  .heartbeat_channel = "co:heartbeat",
                  .heartbeat_ms = 100,
                  .stall_ms = 1000,
                  .timeout_ms = 1000},
        .seeds = seeds,
        .nseeds = 1,
        .refresh_ms = refresh_ms,
    };
    struct ekv_coherence_hooks h = {.on_key = co_key, .on_flush = co_flush,
                                    .on_slots = co_slots, .arg = seen};
    struct ekv_coherence *c = ekv_coherence_new(base, &co, &h);
    uint64_t end = ekv_test_now_ms() + 5000;
    int never = 0;

    while (!ekv_coherence_all_fresh(c, ekv_clock_now_ms(), 1000) && ekv_test_now_ms() < end)
        ekv_test_loop_until(base, &never, 20);
    ck_assert_msg(ekv_coherence_all_fresh(c, ekv_clock_now_ms(), 1000),
                  "never a fresh link on every master");
    return c;
}

static struct ekv_coherence *coherence_new(struct seen *seen)
{
    return coherence_new_every(seen, 200);
}

/* Runs the loop until @pred holds (at most @ms). */
struct co_wait {
    struct ekv_coherence *c;
    unsigned slot;
    uint32_t epoch; /* wait for another one */
    bool fresh;     /* ... or for this freshness */
};

static bool epoch_moved(void *arg)
{
    struct co_wait *w = arg;

    return ekv_coherence_epoch(w->c, w->slot) != w->epoch;
}

static bool freshness_is(void *arg)
{
    struct co_wait *w = arg;

    return ekv_coherence_fresh(w->c, w->slot, ekv_clock_now_ms(), 1000) == w->fresh;
}

/* A write on each master reaches the coherence through that master's own link. */
START_TEST(test_coherence_links_per_master)
{
    struct seen seen = {0};
    struct ekv_coherence *c = coherence_new(&seen);
    struct ekv_coherence_stats st;
    static const char *const keys[] = {"co:{a0}", "co:{b0}", "co:{foo}"};

    ekv_coherence_stats(c, &st);
    ck_assert_uint_eq(st.links, 3);
    ck_assert_uint_eq(st.links_live, 3);
    ck_assert_uint_eq(st.slots_served, 16384);
    for (size_t i = 0; i < EKV_ARRAY_LEN(keys); i++) {
        unsigned short p = ekv_test_cluster_master_of_slot(cluster,
                                                           ekv_test_cluster_keyslot(cluster, keys[i]));
        unsigned before = seen.keys;
        free(ekv_test_cmd_port_or_fail(p, NULL, "SET %s v", keys[i]));
        for (int j = 0; seen.keys == before; j++) {
            int never = 0;
            ck_assert_msg(j < 100, "no invalidation of %s from its master", keys[i]);
            ekv_test_loop_until(base, &never, 10);
        }
        ck_assert_str_eq(seen.last, keys[i]);
    }
    /* a key outside the prefixes: nothing */
    {
        unsigned before = seen.keys;
        int never = 0;
        free(ekv_test_cmd_port_or_fail(cluster->port[0], NULL, "SET other:{a0} v"));
        ekv_test_loop_until(base, &never, 200);
        ck_assert_uint_eq(seen.keys, before);
    }
    ekv_coherence_free(c);
}
END_TEST

/* FLUSHALL on one master: its slots get new epochs, the others' do not, and all stay fresh. */
START_TEST(test_coherence_flushall_one_master)
{
    struct seen seen = {0};
    struct ekv_coherence *c = coherence_new(&seen);
    unsigned sa = (unsigned)ekv_test_cluster_keyslot(cluster, "{a0}");
    unsigned sb = (unsigned)ekv_test_cluster_keyslot(cluster, "{b0}");
    unsigned short pa = ekv_test_cluster_master_of_slot(cluster, (int)sa);
    uint32_t eb = ekv_coherence_epoch(c, sb);
    struct co_wait w = {c, sa, ekv_coherence_epoch(c, sa), false};

    ck_assert_uint_ne(pa, ekv_test_cluster_master_of_slot(cluster, (int)sb));
    free(ekv_test_cmd_port_or_fail(pa, NULL, "FLUSHALL"));
    ck_assert_msg(ekv_test_loop_until_pred(base, epoch_moved, &w, 3000),
                  "FLUSHALL did not end the entries of its master's slots");
    ck_assert_uint_eq(ekv_coherence_epoch(c, sb), eb);
    ck_assert_uint_ge(seen.slots_flushes, 1);
    ck_assert(ekv_coherence_fresh(c, sa, ekv_clock_now_ms(), 1000));
    ck_assert(ekv_coherence_fresh(c, sb, ekv_clock_now_ms(), 1000));
    ekv_coherence_free(c);
}
END_TEST

/* One master's invalidation link killed: its slots are not fresh until it is back, and then
 * their entries are dead; the other masters' slots stay fresh throughout. */
START_TEST(test_coherence_one_link_killed)
{
    struct seen seen = {0};
    struct ekv_coherence *c = coherence_new(&seen);
    unsigned sa = (unsigned)ekv_test_cluster_keyslot(cluster, "{a0}");
    unsigned sb = (unsigned)ekv_test_cluster_keyslot(cluster, "{b0}");
    unsigned short pa = ekv_test_cluster_master_of_slot(cluster, (int)sa);
    uint32_t ea = ekv_coherence_epoch(c, sa), eb = ekv_coherence_epoch(c, sb);
    struct co_wait down = {c, sa, 0, false}, up = {c, sa, 0, true};

    free(ekv_test_cmd_port_or_fail(pa, NULL, "CLIENT KILL TYPE pubsub"));
    ck_assert_msg(ekv_test_loop_until_pred(base, freshness_is, &down, 2000),
                  "the killed link's slots stayed fresh");
    ck_assert(ekv_coherence_fresh(c, sb, ekv_clock_now_ms(), 1000));
    ck_assert_msg(ekv_test_loop_until_pred(base, freshness_is, &up, 5000),
                  "the link never came back");
    ck_assert_uint_ne(ekv_coherence_epoch(c, sa), ea);
    ck_assert_uint_eq(ekv_coherence_epoch(c, sb), eb);
    ekv_coherence_free(c);
}
END_TEST

/* A slot taken over without MIGRATE (Redis 7.0 sends no invalidation for the keys it drops):
 * the new owner in the map ends the slot's entries. */
START_TEST(test_coherence_forced_move)
{
    struct seen seen = {0};
    struct ekv_coherence *c = coherence_new(&seen);
    const char *key = "co:{d2}";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short from = ekv_test_cluster_master_of_slot(cluster, slot);
    unsigned short to = other_master(from);
    struct co_wait w = {c, (unsigned)slot, ekv_coherence_epoch(c, (unsigned)slot), false};
    struct ekv_coherence_stats st;

    free(ekv_test_cmd_port_or_fail(from, NULL, "SET %s cached", key));
    free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d IMPORTING %s", slot, id_of(from)));
    free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d NODE %s", slot, id_of(to)));
    ck_assert_msg(ekv_test_loop_until_pred(base, epoch_moved, &w, 5000),
                  "the forced move did not end the slot's entries");
    ekv_coherence_stats(c, &st);
    ck_assert_uint_ge(st.slot_moves, 1);
    ck_assert(ekv_coherence_fresh(c, (unsigned)slot, ekv_clock_now_ms(), 1000));
    ekv_test_cluster_move_slot(cluster, slot, from);
    ekv_coherence_free(c);
}
END_TEST

struct poke {
    struct ekv_coherence *c;
    int moved;
};

static void poke_coherence(void *arg)
{
    struct poke *p = arg;

    p->moved++;
    ekv_coherence_poke(p->c);
}

/* A MOVED seen by an origin's command (a worker's) changes its map, which pokes the coherence,
 * which reads the slot map at once rather than at its next periodic refresh (here: not for 10
 * minutes), and ends the moved slot's entries. */
START_TEST(test_coherence_poked_by_moved)
{
    struct seen seen = {0};
    struct ekv_coherence *c = coherence_new_every(&seen, 600000);
    struct ekv_origin *o = origin_new();
    const char *key = "co:{e0}";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short from = ekv_test_cluster_master_of_slot(cluster, slot);
    unsigned short to = other_master(from);
    struct co_wait w = {c, (unsigned)slot, ekv_coherence_epoch(c, (unsigned)slot), false};
    struct poke pk = {c, 0};
    int never = 0;

    ekv_origin_set_map_cb(o, poke_coherence, &pk);
    set(o, key, "before");
    ekv_test_cluster_move_slot(cluster, slot, to);
    ekv_test_loop_until(base, &never, 300);
    ck_assert_msg(ekv_coherence_epoch(c, (unsigned)slot) == w.epoch,
                  "the coherence read the map without being poked");
    set(o, key, "after"); /* MOVED: the map patched */
    ck_assert_int_ge(pk.moved, 1);
    ck_assert_msg(ekv_test_loop_until_pred(base, epoch_moved, &w, 2000),
                  "the poke did not make the coherence read the map");
    ck_assert(ekv_coherence_fresh(c, (unsigned)slot, ekv_clock_now_ms(), 1000));
    ekv_test_cluster_move_slot(cluster, slot, from);
    ekv_origin_free(o);
    ekv_coherence_free(c);
}
END_TEST

/* CLUSTER FAILOVER disconnects nobody: the map shows the new master, the slots' entries end,
 * and the new master gets a link of its own, whose invalidations arrive. */
START_TEST(test_coherence_failover)
{
    struct seen seen = {0};
    struct ekv_coherence *c = coherence_new(&seen);
    const char *key = "co:{b0}";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short old = ekv_test_cluster_master_of_slot(cluster, slot), now;
    struct co_wait w = {c, (unsigned)slot, ekv_coherence_epoch(c, (unsigned)slot), false};
    struct co_wait up = {c, (unsigned)slot, 0, true};
    struct ekv_coherence_stats st;
    unsigned before;

    now = ekv_test_cluster_failover(cluster, old);
    ck_assert_msg(ekv_test_loop_until_pred(base, epoch_moved, &w, 5000),
                  "the failover did not end the slot's entries");
    ck_assert(ekv_test_loop_until_pred(base, freshness_is, &up, 5000));
    ekv_coherence_stats(c, &st);
    ck_assert_uint_eq(st.links, 4);
    before = seen.keys;
    free(ekv_test_cmd_port_or_fail(now, NULL, "SET %s after", key));
    for (int j = 0; seen.keys == before; j++) {
        int never = 0;
        ck_assert_msg(j < 100, "no invalidation from the new master");
        ekv_test_loop_until(base, &never, 10);
    }
    ekv_coherence_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("origin_cluster");
    TCase *tc = tcase_create("cluster");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    tcase_add_unchecked_fixture(tc, start_cluster, stop_cluster);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_routes_by_slot);
    tcase_add_test(tc, test_moved_followed);
    tcase_add_test(tc, test_ask_followed);
    tcase_add_test(tc, test_tryagain_until_migrated);
    tcase_add_test(tc, test_coherence_links_per_master);
    tcase_add_test(tc, test_coherence_flushall_one_master);
    tcase_add_test(tc, test_coherence_one_link_killed);
    tcase_add_test(tc, test_coherence_forced_move);
    tcase_add_test(tc, test_coherence_poked_by_moved);
    tcase_add_test(tc, test_failover_followed);
    tcase_add_test(tc, test_coherence_failover);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
