/* check_cluster_e2e.c - edgekv over a real Redis Cluster (3 masters, 3 replicas, one for the
 * suite), end to end over HTTP: the whole API with stores on every master; two POPs coherent,
 * a write from outside edgekv included; FLUSHALL on one master ends the hits of its slots only;
 * a slot taken over without MIGRATE (Redis 7.0 sends no invalidation for the keys it drops) is
 * not served from the cache; writes go on through a CLUSTER FAILOVER and the cache serves what
 * the new master holds. The tests share the cluster and run in order (the failover last). */
#include "config.h"

#include <check.h>
#include <signal.h>
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
};

static void get(unsigned short port, const char *path, struct got *g)
{
    struct ekv_test_resp r = {0};
    const char *cs;

    g->status = apic_req(port, "GET", path, NULL, NULL, 0, &r);
    snprintf(g->body, sizeof(g->body), "%s", r.body != NULL ? r.body : "");
    cs = ekv_test_resp_header(&r, "Cache-Status");
    g->hit = cs != NULL && strstr(cs, "; hit") != NULL;
    ekv_test_resp_free(&r);
}

/* GETs until one is a hit answering @want (at most 20 tries). */
static void warm(unsigned short port, const char *path, const char *want)
{
    for (int i = 0; i < 20; i++) {
        struct got g;
        get(port, path, &g);
        ck_assert_msg(g.status == 200 && strcmp(g.body, want) == 0, "GET %s: %d \"%s\"", path,
                      g.status, g.body);
        if (g.hit)
            return;
        ekv_test_sleep_ms(20);
    }
    ck_abort_msg("GET %s: never a hit", path);
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

/* ---------------------------------------------------------------- failover */

START_TEST(test_failover_under_writes)
{
    struct ekv_test_proc *p = start_pop();
    char sid[32], path[160], want[32];
    unsigned short old;
    unsigned ok = 0, failed = 0, last = 0;
    uint64_t end;

    apic_create_store(p->port, NULL, "failover", sid);
    old = master_of_store(sid);
    item_path(path, sizeof(path), sid, "k");
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "w0"), 200);
    warm(p->port, path, "w0");
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
    stop_pop(p);
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
    tcase_add_test(tc, test_failover_under_writes);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
