/* check_cluster_e2e.c - edgekv over a real Redis Cluster (3 masters, 3 replicas, one for the
 * suite), end to end over HTTP: the whole API with stores on every master; two POPs coherent,
 * a write from outside edgekv included; FLUSHALL on one master ends the hits of its slots only;
 * a slot taken over without MIGRATE (Redis 7.0 sends no invalidation for the keys it drops) is
 * not served from the cache; a cached store's slot resharded with MIGRATE under reads and writes
 * (ASK, TRYAGAIN, a key created during the move, MOVED); one master's invalidation link killed by
 * its pubsub output-buffer limit; writes go on through a CLUSTER FAILOVER and the cache serves
 * what the new master holds; kill -9 of a master under load. The cluster series of /metrics move
 * with each. The tests share the cluster and run in order, each leaving it as it found it but
 * the last (the kill: that node stays down). */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apic.h"
#include "testutil.h"
#include "topology.h"

static struct ekv_test_cluster *cluster;

static void start_cluster(void)
{
    cluster = ekv_test_cluster_start();
}

static void stop_cluster(void)
{
    ekv_test_cluster_free(cluster);
}

static void teardown(void)
{
    ekv_test_kill_strays();
}

static struct ekv_test_proc *start_pop(void)
{
    const char *args[] = {"--origin", cluster->origin, "--max-staleness", "1s", "--service-id",
                          "svc", NULL};
    struct ekv_test_proc *p = ekv_test_edgekv_startv(args);
    uint64_t end = ekv_test_now_ms() + 8000;

    while (ekv_test_get_status(p->port, "/readyz") != 200) {
        ck_assert_msg(ekv_test_now_ms() < end, "edgekv never became ready over the cluster");
        ekv_test_sleep_ms(20);
    }
    return p;
}

static void stop_pop(struct ekv_test_proc *p)
{
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(ekv_test_proc_wait(p, 10000), 0);
    ekv_test_proc_free(p);
}

/* The master serving item @key of store @sid (its bucket's hash tag; the stores here have
 * store-shards' default buckets). */
static unsigned short master_of_item(const char *sid, const char *key)
{
    char tag[64], braced[72];

    snprintf(braced, sizeof(braced), "{%s}",
             ekv_test_tag(tag, sizeof(tag), sid, key, EKV_TEST_SHARDS));
    return ekv_test_cluster_master_of_slot(cluster, ekv_test_cluster_keyslot(cluster, braced));
}

/* The master serving item "k" of store @sid, the key most tests here use. */
static unsigned short master_of_store(const char *sid)
{
    return master_of_item(sid, "k");
}

/* A key of store @sid, @prefix-N, whose bucket lives on a master other than those in @avoid
 * (0s ignored): written to @key; returns its master. */
static unsigned short key_elsewhere(const char *sid, const char *prefix,
                                    const unsigned short *avoid, size_t navoid, char *key,
                                    size_t len)
{
    for (int i = 0; i < 200; i++) {
        unsigned short m;
        bool taken = false;

        snprintf(key, len, "%s-%d", prefix, i);
        m = master_of_item(sid, key);
        for (size_t j = 0; j < navoid; j++)
            taken = taken || avoid[j] == m;
        if (!taken)
            return m;
    }
    ck_abort_msg("no key of store %s landed on another master", sid);
    return 0;
}

struct got {
    int status;
    bool hit;
    char body[128];
    char cache_status[96];
};

static void get(unsigned short port, const char *path, struct got *g)
{
    struct ekv_test_resp r = {0};
    const char *cs;

    g->status = apic_req(port, "GET", path, NULL, NULL, 0, &r);
    snprintf(g->body, sizeof(g->body), "%s", r.body != NULL ? r.body : "");
    cs = ekv_test_resp_header(&r, "Cache-Status");
    g->hit = cs != NULL && strstr(cs, "; hit") != NULL;
    snprintf(g->cache_status, sizeof(g->cache_status), "%s", cs != NULL ? cs : "");
    ekv_test_resp_free(&r);
}

/* GETs until one is a hit answering @want (at most @tries, 20 ms apart). */
static void warm_tries(unsigned short port, const char *path, const char *want, int tries)
{
    struct got g;

    for (int i = 0; i < tries; i++) {
        get(port, path, &g);
        ck_assert_msg(g.status == 200 && strcmp(g.body, want) == 0, "GET %s: %d \"%s\"", path,
                      g.status, g.body);
        if (g.hit)
            return;
        ekv_test_sleep_ms(20);
    }
    ck_abort_msg("GET %s: never a hit (last: %s)", path, g.cache_status);
}

/* The same, at most 20 tries. */
static void warm(unsigned short port, const char *path, const char *want)
{
    warm_tries(port, path, want, 20);
}

/* Polls GET @path until it stops answering @old (at most @ms); returns the last answer. */
static void until_not(unsigned short port, const char *path, const char *old, unsigned ms,
                      struct got *g)
{
    uint64_t end = ekv_test_now_ms() + ms;

    do {
        get(port, path, g);
        if (g->status != 200 || strcmp(g->body, old) != 0)
            return;
        ekv_test_sleep_ms(20);
    } while (ekv_test_now_ms() < end);
    ck_abort_msg("GET %s still answers \"%s\" after %u ms", path, old, ms);
}

static void item_path(char *out, size_t len, const char *sid, const char *key)
{
    snprintf(out, len, "/resources/stores/kv/%s/keys/%s", sid, key);
}

/* The value of the /metrics sample named by @fmt on @port (APIC_METRIC_ABSENT if none). */
static double metric(unsigned short port, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double metric(unsigned short port, const char *fmt, ...)
{
    char series[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(series, sizeof(series), fmt, ap);
    va_end(ap);
    return apic_metric(port, series);
}

/* Polls the sample until it is above @floor (at most @ms); returns its last value. */
static double metric_above(unsigned short port, double floor, unsigned ms, const char *series)
{
    uint64_t end = ekv_test_now_ms() + ms;
    double v;

    while ((v = apic_metric(port, series)) <= floor && ekv_test_now_ms() < end)
        ekv_test_sleep_ms(50);
    return v;
}

/* The ports of the masters now (ROLE of each node); returns how many. */
static int masters_now(unsigned short out[EKV_TEST_CLUSTER_NODES])
{
    int n = 0;

    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char *role = ekv_test_cmd_port(cluster->port[i], NULL, "ROLE");
        if (role != NULL && strncmp(role, "master", 6) == 0)
            out[n++] = cluster->port[i];
        free(role);
    }
    return n;
}

/* The node id of the node on @port. */
static const char *id_of(unsigned short port)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        if (cluster->port[i] == port)
            return cluster->id[i];
    ck_abort_msg("no node on %u", port);
    return NULL;
}

/* Where item @key of store @sid lives in Redis, whatever the store's hash tag ({sid} or a
 * bucket of it): its Redis key in @rkey, found with KEYS on the masters; returns its slot. */
static int item_slot(const char *sid, const char *key, char *rkey, size_t len)
{
    unsigned short m[EKV_TEST_CLUSTER_NODES];
    int n = masters_now(m);

    for (int i = 0; i < n; i++) {
        char *k = ekv_test_cmd_port_or_fail(m[i], NULL, "KEYS edgekv:i:{%s*}:%s", sid, key);
        char *nl = strchr(k, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (k[0] != '\0' && strncmp(k, "(error)", 7) != 0) {
            snprintf(rkey, len, "%s", k);
            free(k);
            return ekv_test_cluster_keyslot(cluster, rkey);
        }
        free(k);
    }
    ck_abort_msg("item %s of store %s is on no master", key, sid);
    return -1;
}

/* ---------------------------------------------------------------- the API */

START_TEST(test_api_over_cluster)
{
    struct ekv_test_proc *p = start_pop();
    unsigned short masters[3] = {0};
    char sid[32], other[32], keys[3][32], path[160], tag[64];
    json_t *j;

    j = apic_get_json(p->port, "/readyz", NULL, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "slots_served")), 16384);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "nodes"), "up")), 3);
    json_decref(j);
    /* /metrics: the cluster series, each master by node */
    {
        unsigned short m[EKV_TEST_CLUSTER_NODES];
        int n = masters_now(m);
        double threads = apic_metric(p->port, "edgekv_worker_threads"), slots = 0;

        ck_assert_int_eq(n, 3);
        ck_assert(apic_metric(p->port, "edgekv_origin_slots_served") == 16384);
        ck_assert(apic_metric(p->port, "edgekv_origin_slot_map_refreshes_total") >= threads);
        ck_assert(apic_metric(p->port, "edgekv_origin_redirects_total{kind=\"moved\"}") >= 0);
        ck_assert(apic_metric(p->port, "edgekv_origin_failovers_total") >= 0);
        for (int i = 0; i < n; i++) {
            double v = metric(p->port, "edgekv_origin_node_slots{node=\"127.0.0.1:%u\"}", m[i]);
            ck_assert_msg(v > 0, "master %u: node_slots %g", m[i], v);
            slots += v;
            ck_assert(metric(p->port, "edgekv_origin_node_up{node=\"127.0.0.1:%u\"}", m[i]) ==
                      threads);
            ck_assert(metric(p->port, "edgekv_invalidation_node_link_up{node=\"127.0.0.1:%u\"}",
                             m[i]) == 1);
            ck_assert(
                metric(p->port,
                       "edgekv_invalidation_node_heartbeat_age_seconds{node=\"127.0.0.1:%u\"}",
                       m[i]) >= 0);
        }
        ck_assert(slots == 16384);
    }
    /* one store, spread over every master: a key on each */
    apic_create_store(p->port, NULL, "spread", sid);
    for (int m = 0; m < 3; m++)
        masters[m] = key_elsewhere(sid, m == 0 ? "a" : m == 1 ? "b" : "c", masters, (size_t)m,
                                   keys[m], sizeof(keys[m]));
    for (int m = 0; m < 3; m++) {
        char want[32], rkey[160], *v;
        snprintf(want, sizeof(want), "v%d", m);
        item_path(path, sizeof(path), sid, keys[m]);
        ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, want), 200);
        warm(p->port, path, want);
        /* where its bucket's slot says, under the documented key */
        snprintf(rkey, sizeof(rkey), "edgekv:i:{%s}:%s",
                 ekv_test_tag(tag, sizeof(tag), sid, keys[m], EKV_TEST_SHARDS), keys[m]);
        v = ekv_test_cmd_port_or_fail(masters[m], NULL, "HGET %s v", rkey);
        ck_assert_str_eq(v, want);
        free(v);
    }
    /* the listing merges the buckets of every master, in key order, page by page */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys", sid);
    j = apic_get_json(p->port, path, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 3);
    for (int m = 0; m < 3; m++)
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "data"), (size_t)m)),
                         keys[m]); /* a-N < b-N < c-N */
    json_decref(j);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?limit=2", sid);
    j = apic_get_json(p->port, path, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 2);
    {
        const char *cursor = json_string_value(
            json_object_get(json_object_get(j, "meta"), "next_cursor"));
        json_t *j2;

        ck_assert_ptr_nonnull(cursor);
        snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys?limit=2&cursor=%s", sid,
                 cursor);
        j2 = apic_get_json(p->port, path, NULL, 200);
        ck_assert_uint_eq(json_array_size(json_object_get(j2, "data")), 1);
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j2, "data"), 0)),
                         keys[2]);
        json_decref(j2);
    }
    json_decref(j);
    /* the registry: names, links, the edge path */
    {
        char form[128];
        struct got g;
        snprintf(form, sizeof(form), "name=alias&resource_id=%s", sid);
        ck_assert_int_eq(apic_status(p->port, "POST", "/service/svc/version/1/resource",
                                     "Content-Type: application/x-www-form-urlencoded\r\n",
                                     form),
                         200);
        snprintf(path, sizeof(path), "/kv/alias/%s", keys[1]);
        get(p->port, path, &g);
        ck_assert_int_eq(g.status, 200);
        ck_assert_str_eq(g.body, "v1");
    }
    /* deletes: items, a store that is not empty (whatever master its last item is on), then
     * empty; and a store that never held anything */
    apic_create_store(p->port, NULL, "spread-2", other);
    for (int m = 0; m < 3; m++) {
        snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
        ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 409);
        item_path(path, sizeof(path), sid, keys[m]);
        ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 204);
        ck_assert_int_eq(apic_status(p->port, "GET", path, NULL, NULL), 404);
    }
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", sid);
    ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 204);
    ck_assert_int_eq(apic_status(p->port, "GET", path, NULL, NULL), 404);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/%s", sid, keys[0]);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "late"), 404);
    /* nothing of it is left on any master */
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char pattern[64], *v;
        snprintf(pattern, sizeof(pattern), "edgekv:*%s*", sid);
        v = ekv_test_cmd_port_or_fail(cluster->port[i], NULL, "KEYS %s", pattern);
        ck_assert_msg(strcmp(v, "") == 0, "node %d still holds %s", i, v);
        free(v);
    }
    snprintf(path, sizeof(path), "/resources/stores/kv/%s", other);
    ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 204);
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- coherence */

START_TEST(test_two_pops_coherent)
{
    struct ekv_test_proc *a = start_pop(), *b = start_pop();
    char sid[32], path[160];
    unsigned short owner;
    struct got g;

    apic_create_store(a->port, NULL, "two-pops", sid);
    owner = master_of_store(sid);
    item_path(path, sizeof(path), sid, "k");
    ck_assert_int_eq(apic_status(a->port, "PUT", path, NULL, "v1"), 200);
    warm(a->port, path, "v1");
    warm(b->port, path, "v1");
    ck_assert_int_eq(apic_status(a->port, "PUT", path, NULL, "v2"), 200);
    until_not(b->port, path, "v1", 2000, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.body, "v2");
    warm(b->port, path, "v2");
    /* a write from outside edgekv, on the master */
    {
        char tag[64], rkey[128];
        snprintf(rkey, sizeof(rkey), "edgekv:i:{%s}:k",
                 ekv_test_tag(tag, sizeof(tag), sid, "k", EKV_TEST_SHARDS));
        free(ekv_test_cmd_port_or_fail(owner, NULL, "HSET %s v foreign", rkey));
    }
    until_not(a->port, path, "v2", 2000, &g);
    ck_assert_str_eq(g.body, "foreign");
    until_not(b->port, path, "v2", 2000, &g);
    ck_assert_str_eq(g.body, "foreign");
    stop_pop(a);
    stop_pop(b);
}
END_TEST

/* FLUSHALL on one master: its slots stop hitting (their data is gone), another master's still
 * hit. */
START_TEST(test_flushall_one_master)
{
    struct ekv_test_proc *p = start_pop();
    char sid[32], k2[32], p1[160], p2[160];
    unsigned short m1;
    struct got g;

    apic_create_store(p->port, NULL, "flush", sid);
    m1 = master_of_item(sid, "k");
    (void)key_elsewhere(sid, "k", &m1, 1, k2, sizeof(k2));
    item_path(p1, sizeof(p1), sid, "k");
    item_path(p2, sizeof(p2), sid, k2);
    ck_assert_int_eq(apic_status(p->port, "PUT", p1, NULL, "one"), 200);
    ck_assert_int_eq(apic_status(p->port, "PUT", p2, NULL, "two"), 200);
    warm(p->port, p1, "one");
    warm(p->port, p2, "two");
    free(ekv_test_cmd_port_or_fail(m1, NULL, "FLUSHALL"));
    until_not(p->port, p1, "one", 2000, &g);
    ck_assert_int_eq(g.status, 404);
    get(p->port, p2, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.body, "two");
    ck_assert_msg(g.hit, "the other master's slots stopped hitting");
    stop_pop(p);
}
END_TEST

/* A slot taken over by another master without MIGRATE: Redis 7.0 drops its keys on the old
 * master and sends no invalidation; the new owner in the slot map ends the cached entries. */
START_TEST(test_forced_move_not_served)
{
    struct ekv_test_proc *p = start_pop();
    char sid[32], path[160], tag[64], *id_from = NULL, *id_to = NULL;
    unsigned short from, to = 0;
    int slot;
    struct got g;

    apic_create_store(p->port, NULL, "forced", sid);
    {
        char t[64];
        snprintf(tag, sizeof(tag), "{%s}", ekv_test_tag(t, sizeof(t), sid, "k", EKV_TEST_SHARDS));
    }
    slot = ekv_test_cluster_keyslot(cluster, tag);
    from = ekv_test_cluster_master_of_slot(cluster, slot);
    item_path(path, sizeof(path), sid, "k");
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "cached"), 200);
    warm(p->port, path, "cached");
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char *role = ekv_test_cmd_port_or_fail(cluster->port[i], NULL, "ROLE");
        if (cluster->port[i] == from)
            id_from = cluster->id[i];
        else if (to == 0 && strncmp(role, "master", 6) == 0) {
            to = cluster->port[i];
            id_to = cluster->id[i];
        }
        free(role);
    }
    ck_assert(id_from != NULL && id_to != NULL);
    free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d IMPORTING %s", slot, id_from));
    free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d NODE %s", slot, id_to));
    /* the new owner holds nothing of the store: a 404, never the cached value */
    until_not(p->port, path, "cached", 5000, &g);
    ck_assert_int_eq(g.status, 404);
    ekv_test_cluster_move_slot(cluster, slot, from);
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- resharding */

#define RESHARD_KEYS 8

/* Writes @val to @key through POP @a (it must be acknowledged), then reads it back through @a at
 * once (read-your-writes) and through @b until it answers it (an invalidation, from whichever
 * node holds the key now, ends @b's copy). */
static void write_seen(unsigned short a, unsigned short b, const char *sid, const char *key,
                       const char *val)
{
    char path[160];
    struct got g;
    uint64_t end = ekv_test_now_ms() + 3000;

    struct ekv_test_resp r = {0};
    int st;

    item_path(path, sizeof(path), sid, key);
    st = apic_req(a, "PUT", path, NULL, val, strlen(val), &r);
    ck_assert_msg(st == 200, "PUT %s %s: %d %s", path, val, st, r.body != NULL ? r.body : "");
    ekv_test_resp_free(&r);
    get(a, path, &g);
    ck_assert_msg(g.status == 200 && strcmp(g.body, val) == 0, "GET %s after PUT %s: %d \"%s\"",
                  path, val, g.status, g.body);
    for (;;) {
        get(b, path, &g);
        if (g.status == 200 && strcmp(g.body, val) == 0)
            return;
        ck_assert_msg(ekv_test_now_ms() < end, "the other POP answers \"%s\" for %s, not \"%s\"",
                      g.body, path, val);
        ekv_test_sleep_ms(20);
    }
}

/* H4/H5: a cached store's slot moves to another master with MIGRATE (SETSLOT IMPORTING and
 * MIGRATING, the keys MIGRATEd one by one, SETSLOT NODE) while two POPs read and write it: every
 * write is acknowledged and seen by both POPs at every step (through ASK while the slot migrates,
 * MOVED after), a key created on the target during the migration ends the other POP's cached
 * 404, and no POP serves a value from before the move. The slot moves back at the end. */
START_TEST(test_reshard_under_load)
{
    struct ekv_test_proc *a = start_pop(), *b = start_pop();
    char sid[32], rkey[256], key[32], val[48], path[160], newkey[32];
    unsigned short from, to = 0, m[EKV_TEST_CLUSTER_NODES];
    int slot, n, round = 0, moved_keys = 0;
    double ask0, moved0, moves0;
    struct got g;

    apic_create_store(a->port, NULL, "reshard", sid);
    for (int i = 0; i < RESHARD_KEYS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d-0", i);
        item_path(path, sizeof(path), sid, key);
        ck_assert_int_eq(apic_status(a->port, "PUT", path, NULL, val), 200);
        warm(a->port, path, val);
        warm(b->port, path, val);
    }
    slot = item_slot(sid, "k0", rkey, sizeof(rkey));
    from = ekv_test_cluster_master_of_slot(cluster, slot);
    n = masters_now(m);
    for (int i = 0; i < n && to == 0; i++)
        if (m[i] != from)
            to = m[i];
    ck_assert(from != 0 && to != 0);
    /* b caches a 404 for a key of the same bucket (so the same slot) that will be created during
     * the migration */
    for (int i = 0;; i++) {
        char t0[64], t1[64];
        ck_assert_int_lt(i, 1000);
        snprintf(newkey, sizeof(newkey), "new%d", i);
        if (strcmp(ekv_test_tag(t0, sizeof(t0), sid, "k0", EKV_TEST_SHARDS),
                   ekv_test_tag(t1, sizeof(t1), sid, newkey, EKV_TEST_SHARDS)) == 0)
            break;
    }
    item_path(path, sizeof(path), sid, newkey);
    ck_assert_int_eq(apic_status(b->port, "GET", path, NULL, NULL), 404);
    ask0 = apic_metric(a->port, "edgekv_origin_redirects_total{kind=\"ask\"}");
    moved0 = apic_metric(a->port, "edgekv_origin_redirects_total{kind=\"moved\"}");
    moves0 = apic_metric(a->port, "edgekv_origin_slot_moves_total");

    free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d IMPORTING %s", slot, id_of(from)));
    free(ekv_test_cmd_port_or_fail(from, NULL, "CLUSTER SETSLOT %d MIGRATING %s", slot, id_of(to)));
    /* MIGRATING, every key still on the source: the writes run there */
    for (int i = 0; i < RESHARD_KEYS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d-1", i);
        write_seen(a->port, b->port, sid, key, val);
    }
    /* one key moved: reads follow ASK for it; a write whose keys are now on both nodes gets
     * TRYAGAIN, and is retried until the rest has moved */
    {
        char *first = ekv_test_cmd_port_or_fail(from, NULL, "CLUSTER GETKEYSINSLOT %d 1", slot);
        char pending_key[32] = "k0", *r;
        struct ekv_test_conn *c;
        struct ekv_test_resp resp = {0};
        double try0 = apic_metric(a->port, "edgekv_origin_redirects_total{kind=\"tryagain\"}");

        ck_assert_msg(first[0] != '\0', "slot %d holds no key", slot);
        r = ekv_test_cmd_port_or_fail(from, NULL, "MIGRATE 127.0.0.1 %u %s 0 5000 KEYS %s",
                                      (unsigned)to, "", first);
        ck_assert_msg(strcmp(r, "OK") == 0, "MIGRATE %s: %s", first, r);
        free(r);
        moved_keys++;
        if (strncmp(first, "edgekv:i:", 9) == 0) /* an item: write that one */
            snprintf(pending_key, sizeof(pending_key), "%s", strrchr(first, ':') + 1);
        free(first);
        for (int i = 0; i < RESHARD_KEYS; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            snprintf(val, sizeof(val), "v%d-1", i);
            item_path(path, sizeof(path), sid, key);
            get(a->port, path, &g);
            ck_assert_msg(g.status == 200 && strcmp(g.body, val) == 0, "a: %s: %d \"%s\"", key,
                          g.status, g.body);
            get(b->port, path, &g);
            ck_assert_msg(g.status == 200 && strcmp(g.body, val) == 0, "b: %s: %d \"%s\"", key,
                          g.status, g.body);
        }
        c = ekv_test_connect(a->port);
        ck_assert_int_eq(ekv_test_sendf(c,
                                        "PUT /resources/stores/kv/%s/keys/%s HTTP/1.1\r\n"
                                        "Host: t\r\nContent-Length: 7\r\n\r\npending",
                                        sid, pending_key),
                         0);
        ck_assert_msg(metric_above(a->port, try0, 900,
                                   "edgekv_origin_redirects_total{kind=\"tryagain\"}") > try0,
                      "the write of %s during the migration met no TRYAGAIN", pending_key);
        for (;;) {
            char *k = ekv_test_cmd_port_or_fail(from, NULL, "CLUSTER GETKEYSINSLOT %d 1", slot);
            if (k[0] == '\0') {
                free(k);
                break;
            }
            r = ekv_test_cmd_port_or_fail(from, NULL, "MIGRATE 127.0.0.1 %u %s 0 5000 KEYS %s",
                                          (unsigned)to, "", k);
            ck_assert_msg(strcmp(r, "OK") == 0, "MIGRATE %s: %s", k, r);
            ck_assert_int_lt(++moved_keys, 1000);
            free(r);
            free(k);
        }
        ck_assert_int_eq(ekv_test_read_final(c, &resp, 0), EKV_TEST_OK);
        ck_assert_msg(resp.status == 200, "the write during the migration: %d %s", resp.status,
                      resp.body);
        ekv_test_resp_free(&resp);
        ekv_test_close(c);
        item_path(path, sizeof(path), sid, pending_key);
        warm(a->port, path, "pending");
        snprintf(val, sizeof(val), "v%s-1", pending_key + 1); /* its value before */
        until_not(b->port, path, val, 3000, &g);
        ck_assert_str_eq(g.body, "pending");
    }
    /* every key on the target, the slot still MIGRATING: the source answers ASK */
    for (int i = 0; i < RESHARD_KEYS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d-2", i);
        write_seen(a->port, b->port, sid, key, val);
    }
    round = 2;
    /* a new key: the source answers ASK (it has none of the script's keys), the importing target
     * TRYAGAIN (it has some) until the slot is its own; the write waits for that, within
     * origin-timeout, and ends the 404 the other POP cached (only the target invalidates it) */
    {
        struct ekv_test_conn *c = ekv_test_connect(a->port);
        struct ekv_test_resp resp = {0};
        double try0 = apic_metric(a->port, "edgekv_origin_redirects_total{kind=\"tryagain\"}");
        uint64_t end;

        ck_assert_int_eq(ekv_test_sendf(c,
                                        "PUT /resources/stores/kv/%s/keys/%s HTTP/1.1\r\n"
                                        "Host: t\r\nContent-Length: 7\r\n\r\ncreated",
                                        sid, newkey),
                         0);
        ck_assert(metric_above(a->port, try0, 900,
                               "edgekv_origin_redirects_total{kind=\"tryagain\"}") > try0);
        /* longer than five rounds of ASK then TRYAGAIN take: the wait is bounded by
         * origin-timeout (1 s), not by a count of redirections */
        ekv_test_sleep_ms(400);
        free(ekv_test_cmd_port_or_fail(to, NULL, "CLUSTER SETSLOT %d NODE %s", slot, id_of(to)));
        free(ekv_test_cmd_port_or_fail(from, NULL, "CLUSTER SETSLOT %d NODE %s", slot, id_of(to)));
        for (int i = 0; i < n; i++)
            if (m[i] != from && m[i] != to)
                free(ekv_test_cmd_port_or_fail(m[i], NULL, "CLUSTER SETSLOT %d NODE %s", slot,
                                               id_of(to)));
        ck_assert_int_eq(ekv_test_read_final(c, &resp, 0), EKV_TEST_OK);
        ck_assert_msg(resp.status == 200, "the new key during the migration: %d %s", resp.status,
                      resp.body);
        ekv_test_resp_free(&resp);
        ekv_test_close(c);
        item_path(path, sizeof(path), sid, newkey);
        end = ekv_test_now_ms() + 3000;
        for (get(b->port, path, &g); g.status != 200; get(b->port, path, &g)) {
            ck_assert_msg(ekv_test_now_ms() < end, "b still answers %d for the new key", g.status);
            ekv_test_sleep_ms(20);
        }
        ck_assert_str_eq(g.body, "created");
    }
    /* after the move: MOVED for whoever still has the old map, and the values are the target's */
    for (int i = 0; i < RESHARD_KEYS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d-after", i);
        write_seen(a->port, b->port, sid, key, val);
    }
    ck_assert_int_eq(item_slot(sid, "k0", rkey, sizeof(rkey)), slot);
    {
        char *v = ekv_test_cmd_port_or_fail(to, NULL, "HGET %s v", rkey);
        ck_assert_str_eq(v, "v0-after");
        free(v);
    }
    fprintf(stderr, "reshard: slot %d moved from %u to %u with %d MIGRATEs, %d write rounds\n",
            slot, from, to, moved_keys, round);
    ck_assert_int_gt(moved_keys, 0);
    /* the redirections a followed, and the move the invalidation links' map saw */
    ck_assert(apic_metric(a->port, "edgekv_origin_redirects_total{kind=\"ask\"}") > ask0);
    ck_assert(metric_above(a->port, moved0, 3000, "edgekv_origin_redirects_total{kind=\"moved\"}") >
              moved0);
    ck_assert(metric_above(a->port, moves0, 3000, "edgekv_origin_slot_moves_total") > moves0);
    /* the move leaves nothing stale in b: a hit answers the target's value */
    item_path(path, sizeof(path), sid, "k0");
    warm(b->port, path, "v0-after");
    ekv_test_cluster_move_slot(cluster, slot, from);
    get(b->port, path, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.body, "v0-after");
    stop_pop(a);
    stop_pop(b);
}
END_TEST

/* ---------------------------------------------------------------- output buffer kill */

/* H16: a master kills the invalidation connection whose output buffer passes its pubsub limit
 * (here: a flood of invalidations, each key name 200 bytes, against a 64 kB hard limit). The POP
 * stops trusting that master's slots at once (no hit until its link is subscribed again, and
 * what was cached before is gone), reconnects, and serves hits and invalidations as before; the
 * other masters' slots keep hitting. */
START_TEST(test_pubsub_buffer_kill)
{
    struct ekv_test_proc *p = start_pop();
    char sid[32], other[32], rkey[256], path[160], opath[160], prefix[256], node[64];
    char *limit, *r;
    unsigned short master, omaster;
    double losses0, keys0;
    int slot;
    struct got g;

    apic_create_store(p->port, NULL, "obuf", sid);
    item_path(path, sizeof(path), sid, "k");
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "before"), 200);
    warm(p->port, path, "before");
    slot = item_slot(sid, "k", rkey, sizeof(rkey));
    master = ekv_test_cluster_master_of_slot(cluster, slot);
    /* a store whose item is on another master */
    for (int i = 0;; i++) {
        char name[32], orkey[256];
        ck_assert_int_lt(i, 40);
        snprintf(name, sizeof(name), "obuf-other-%d", i);
        apic_create_store(p->port, NULL, name, other);
        item_path(opath, sizeof(opath), other, "k");
        ck_assert_int_eq(apic_status(p->port, "PUT", opath, NULL, "elsewhere"), 200);
        omaster =
            ekv_test_cluster_master_of_slot(cluster, item_slot(other, "k", orkey, sizeof(orkey)));
        if (omaster != master)
            break;
    }
    warm(p->port, opath, "elsewhere");
    snprintf(node, sizeof(node), "127.0.0.1:%u", master);
    losses0 = metric(p->port, "edgekv_invalidation_link_losses_total");
    keys0 = metric(p->port, "edgekv_invalidation_node_keys_total{node=\"%s\"}", node);
    ck_assert(losses0 >= 0 && keys0 >= 0);

    limit = ekv_test_cmd_port_or_fail(master, NULL, "CONFIG GET client-output-buffer-limit");
    ck_assert_ptr_nonnull(strchr(limit, '\n'));
    r = ekv_test_cmd_port_or_fail(master, NULL, "CONFIG SET client-output-buffer-limit %s",
                                  "pubsub 64kb 32kb 1");
    ck_assert_str_eq(r, "OK");
    free(r);
    /* 5000 keys of the store's slot, written by one script: some 1.2 MB of invalidations at once */
    {
        char fill[181];
        memset(fill, 'f', 180);
        fill[180] = '\0';
        snprintf(prefix, sizeof(prefix), "%.*s%s-", (int)(strrchr(rkey, ':') - rkey + 1), rkey,
                 fill);
    }
    r = ekv_test_cmd_port_or_fail(master, NULL, "EVAL %s 0 %s 5000",
                                  "for i = 1, tonumber(ARGV[2]) do redis.call('SET', ARGV[1] .. i, "
                                  "'x') end return 1",
                                  prefix);
    ck_assert_msg(strcmp(r, "1") == 0, "flood: %s", r);
    free(r);
    /* the master dropped the link: the POP saw it, and its slots did not hit meanwhile */
    ck_assert_msg(metric_above(p->port, losses0, 3000, "edgekv_invalidation_link_losses_total") >
                      losses0,
                  "the invalidation link of %s was not lost", node);
    get(p->port, path, &g);
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.body, "before");
    ck_assert_msg(!g.hit, "a hit from %s's slots after its invalidation link was killed", node);
    /* the limit back as it was; the flood's keys removed (their invalidations fit now) */
    {
        char *v = strchr(limit, '\n') + 1;
        r = ekv_test_cmd_port_or_fail(master, NULL, "CONFIG SET client-output-buffer-limit %s", v);
        ck_assert_str_eq(r, "OK");
        free(r);
    }
    r = ekv_test_cmd_port_or_fail(master, NULL, "EVAL %s 0 %s 5000",
                                  "for i = 1, tonumber(ARGV[2]) do redis.call('DEL', ARGV[1] .. i) "
                                  "end return 1",
                                  prefix);
    ck_assert_str_eq(r, "1");
    free(r);
    free(limit);
    /* recovered: its link is up, hits again, and a foreign write still reaches the POP */
    {
        char series[128];
        snprintf(series, sizeof(series), "edgekv_invalidation_node_link_up{node=\"%s\"}", node);
        ck_assert(metric_above(p->port, 0, 5000, series) == 1);
    }
    warm(p->port, path, "before");
    free(ekv_test_cmd_port_or_fail(master, NULL, "HSET %s v foreign", rkey));
    until_not(p->port, path, "before", 2000, &g);
    ck_assert_str_eq(g.body, "foreign");
    get(p->port, opath, &g);
    ck_assert_str_eq(g.body, "elsewhere");
    (void)omaster;
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- failover */

START_TEST(test_failover_under_writes)
{
    struct ekv_test_proc *p = start_pop();
    char sid[32], path[160], want[32];
    unsigned short old;
    unsigned ok = 0, failed = 0, last = 0;
    uint64_t end;
    double failovers;

    apic_create_store(p->port, NULL, "failover", sid);
    old = master_of_store(sid);
    item_path(path, sizeof(path), sid, "k");
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "w0"), 200);
    warm(p->port, path, "w0");
    failovers = apic_metric(p->port, "edgekv_origin_failovers_total");
    ck_assert(failovers >= 0);
    (void)ekv_test_cluster_failover(cluster, old);
    end = ekv_test_now_ms() + 1500;
    for (unsigned i = 1; ekv_test_now_ms() < end; i++) {
        snprintf(want, sizeof(want), "w%u", i);
        if (apic_status(p->port, "PUT", path, NULL, want) == 200) {
            ok++;
            last = i;
        } else {
            failed++;
        }
    }
    fprintf(stderr, "cluster failover: %u writes acknowledged, %u refused after the switch\n", ok,
            failed);
    ck_assert_uint_gt(ok, 0);
    snprintf(want, sizeof(want), "w%u", last);
    warm(p->port, path, want);
    /* the POP saw it: its old master serves no slot, the replica serves them all */
    ck_assert(metric_above(p->port, failovers, 3000, "edgekv_origin_failovers_total") ==
              failovers + 1);
    ck_assert(metric(p->port, "edgekv_origin_node_slots{node=\"127.0.0.1:%u\"}", old) == 0);
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- kill -9 of a master */

#define KILL_KEYS 4

/* H9: kill -9 of the master serving a store while POP a writes it and POPs a and b read it. After
 * its replica takes over, each POP answers what the new master holds (never a value it does not,
 * cached or not), every acknowledged write the new master holds is read back, and writes go on.
 * The unavailability window (from the kill to the first acknowledged write after it) is reported.
 * The keys share a bucket, so the killed master holds them all.
 * The killed node stays down: this test must be the suite's last. */
START_TEST(test_kill_master_under_load)
{
    struct ekv_test_proc *a = start_pop(), *b = start_pop();
    char sid[32], rkey[KILL_KEYS][256], names[KILL_KEYS][32], key[32], val[48], path[160];
    unsigned acked[KILL_KEYS] = {0}, writes = 0, failed = 0, lost = 0;
    unsigned short dead, now;
    uint64_t t_kill = 0, t_back = 0, end;
    double failovers;
    int slot;

    apic_create_store(a->port, NULL, "kill9", sid);
    /* keys of one bucket, so of one slot and one master: the one killed */
    snprintf(names[0], sizeof(names[0]), "k0");
    for (int i = 1, n = 1; n < KILL_KEYS; i++) {
        char t0[64], t1[64];
        ck_assert_int_lt(i, 10000);
        snprintf(names[n], sizeof(names[n]), "k%d", i);
        if (strcmp(ekv_test_tag(t0, sizeof(t0), sid, names[0], EKV_TEST_SHARDS),
                   ekv_test_tag(t1, sizeof(t1), sid, names[n], EKV_TEST_SHARDS)) == 0)
            n++;
    }
    for (int i = 0; i < KILL_KEYS; i++) {
        snprintf(key, sizeof(key), "%.31s", names[i]);
        item_path(path, sizeof(path), sid, key);
        ck_assert_int_eq(apic_status(a->port, "PUT", path, NULL, "w0"), 200);
        warm(a->port, path, "w0");
        warm(b->port, path, "w0");
    }
    slot = item_slot(sid, "k0", rkey[0], sizeof(rkey[0]));
    dead = ekv_test_cluster_master_of_slot(cluster, slot);
    failovers = apic_metric(a->port, "edgekv_origin_failovers_total");
    end = ekv_test_now_ms() + 20000;
    /* writes round the keys (w<n>, n growing), each followed by reads through both POPs; the
     * kill after 300 ms; on until writes have worked again for 500 ms */
    for (unsigned n = 1;; n++) {
        int i = (int)(n % KILL_KEYS);
        uint64_t t = ekv_test_now_ms();
        struct got g;
        int st;

        if (t_kill == 0 && n > 1 && t >= end - 20000 + 300) {
            ekv_test_cluster_kill(cluster, dead);
            t_kill = ekv_test_now_ms();
        }
        snprintf(key, sizeof(key), "%.31s", names[i]);
        snprintf(val, sizeof(val), "w%u", n);
        item_path(path, sizeof(path), sid, key);
        st = apic_status(a->port, "PUT", path, NULL, val);
        writes++;
        if (st == 200) {
            acked[i] = n;
            if (t_kill != 0 && t_back == 0)
                t_back = ekv_test_now_ms();
        } else {
            ck_assert_msg(st == 502 || st == 503 || st == 504, "PUT during the failover: %d", st);
            failed++;
            ekv_test_sleep_ms(10);
        }
        get(a->port, path, &g);
        get(b->port, path, &g);
        if (t_back != 0 && ekv_test_now_ms() > t_back + 500)
            break;
        ck_assert_msg(ekv_test_now_ms() < end, "writes never worked again after the kill");
    }
    /* the writes worked again: the replica is master (in its own view at least) */
    for (end = ekv_test_now_ms() + 15000;; ekv_test_sleep_ms(50)) {
        now = ekv_test_cluster_master_of_slot(cluster, slot);
        if (now != 0 && now != dead)
            break;
        ck_assert_msg(ekv_test_now_ms() < end, "no node took over slot %d", slot);
    }
    /* what the new master holds is what both POPs answer, and stays so */
    for (int i = 0; i < KILL_KEYS; i++) {
        char *held;
        unsigned h;

        snprintf(key, sizeof(key), "%.31s", names[i]);
        ck_assert_int_eq(item_slot(sid, key, rkey[i], sizeof(rkey[i])), slot);
        held = ekv_test_cmd_port_or_fail(now, NULL, "HGET %s v", rkey[i]);
        ck_assert_msg(held[0] == 'w', "the new master holds \"%s\" for %s", held, key);
        h = (unsigned)strtoul(held + 1, NULL, 10);
        ck_assert_msg(h <= acked[i] + KILL_KEYS, "%s: the new master holds w%u, never written", key,
                      h);
        lost += h < acked[i];
        item_path(path, sizeof(path), sid, key);
        for (int pop = 0; pop < 2; pop++) {
            unsigned short port = pop == 0 ? a->port : b->port;
            uint64_t until = ekv_test_now_ms() + 3000;
            struct got g;

            for (get(port, path, &g); g.status != 200 || strcmp(g.body, held) != 0;
                 get(port, path, &g)) {
                ck_assert_msg(ekv_test_now_ms() < until,
                              "POP %c answers %d \"%s\" for %s; the new master holds \"%s\"",
                              'a' + pop, g.status, g.body, key, held);
                ekv_test_sleep_ms(20);
            }
            /* hits again once the POP's invalidation links follow the new master */
            warm_tries(port, path, held, 100);
        }
        free(held);
    }
    fprintf(stderr,
            "kill -9 of master %u: writes refused for %llu ms (%u of %u), %u acknowledged "
            "write(s) lost, %u took over\n",
            dead, (unsigned long long)(t_back - t_kill), failed, writes, lost, now);
    ck_assert(metric_above(a->port, failovers, 3000, "edgekv_origin_failovers_total") > failovers);
    stop_pop(a);
    stop_pop(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_e2e");
    TCase *tc = tcase_create("cluster");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    ekv_test_edgekv_bin();
    tcase_add_unchecked_fixture(tc, start_cluster, stop_cluster);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_api_over_cluster);
    tcase_add_test(tc, test_two_pops_coherent);
    tcase_add_test(tc, test_flushall_one_master);
    tcase_add_test(tc, test_forced_move_not_served);
    tcase_add_test(tc, test_reshard_under_load);
    tcase_add_test(tc, test_pubsub_buffer_kill);
    tcase_add_test(tc, test_failover_under_writes);
    tcase_add_test(tc, test_kill_master_under_load); /* the last: a node stays down */
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
