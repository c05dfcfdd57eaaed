/* check_topology.c - the harness for real Redis topologies (tests/helpers/topology.c) checked
 * against the servers themselves: a Sentinel set with a data password and a Sentinel password
 * (the Sentinels name the master and refuse clients without the password, writes reach the
 * replica, a SENTINEL FAILOVER moves the master and the old master is converted into a
 * replica), then a Redis Cluster (every slot served by one of three masters, keys readable on
 * their master and MOVED elsewhere, a single slot moved with its key, a CLUSTER FAILOVER that
 * swaps roles). No edgekv here: the suites that test edgekv on these topologies build on it. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "topology.h"

#define DATA_PASS "data-secret.1"
#define SENTINEL_PASS "sentinel-secret.2"

static struct ekv_test_sentinels *sentinels;
static struct ekv_test_cluster *cluster;

static void start_sentinels(void)
{
    const struct ekv_test_sentinel_opts opts = {.data_password = DATA_PASS,
                                                .sentinel_password = SENTINEL_PASS};

    uint64_t t0 = ekv_test_now_ms();

    sentinels = ekv_test_sentinels_start(&opts);
    fprintf(stderr, "sentinel set up in %llu ms\n", (unsigned long long)(ekv_test_now_ms() - t0));
}

static void stop_sentinels(void)
{
    ekv_test_sentinels_free(sentinels);
    sentinels = NULL;
}

static void start_cluster(void)
{
    uint64_t t0 = ekv_test_now_ms();

    cluster = ekv_test_cluster_start();
    fprintf(stderr, "cluster up in %llu ms\n", (unsigned long long)(ekv_test_now_ms() - t0));
}

static void stop_cluster(void)
{
    ekv_test_cluster_free(cluster);
    cluster = NULL;
}

static void kill_strays(void)
{
    ekv_test_kill_strays();
}

/* One command that must be answered (the reply as ekv_test_cmd_port() renders it; freed by the
 * next call). */
static const char *cmd(unsigned short port, const char *password, const char *fmt, const char *a,
                       const char *b)
{
    static char *last;

    free(last);
    last = ekv_test_cmd_port_or_fail(port, password, fmt, a, b);
    return last;
}

/* Polls GET @key on @port (at most @timeout_ms) until it answers @want. */
static bool wait_get(unsigned short port, const char *password, const char *key, const char *want,
                     unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;

    for (;;) {
        char *v = ekv_test_cmd_port(port, password, "GET %s", key);
        bool ok = v != NULL && strcmp(v, want) == 0;

        free(v);
        if (ok)
            return true;
        if (ekv_test_now_ms() >= end)
            return false;
        ekv_test_sleep_ms(20);
    }
}

/* ---------------------------------------------------------------- Sentinel */

START_TEST(test_sentinels_name_the_master)
{
    const struct ekv_test_sentinels *s = sentinels;
    char want[32], prefix[64];
    const char *r;

    /* the origin edgekv is given: the data password, the three Sentinels, the master's name */
    snprintf(prefix, sizeof(prefix), "redis-sentinel://:%s@127.0.0.1:", DATA_PASS);
    ck_assert_msg(strncmp(s->origin, prefix, strlen(prefix)) == 0, "origin %s", s->origin);
    ck_assert_msg(strlen(s->origin) > 9 &&
                      strcmp(s->origin + strlen(s->origin) - 9, "/mymaster") == 0,
                  "origin %s", s->origin);
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof(want), "127.0.0.1:%u", s->sentinel_port[i]);
        ck_assert_msg(strstr(s->origin, want) != NULL, "origin %s lacks %s", s->origin, want);
    }

    snprintf(want, sizeof(want), "127.0.0.1\n%u", s->node_port[0]);
    for (int i = 0; i < 3; i++) {
        r = cmd(s->sentinel_port[i], SENTINEL_PASS, "SENTINEL get-master-addr-by-name %s",
                EKV_TEST_SENTINEL_MASTER, NULL);
        ck_assert_str_eq(r, want);
        /* every Sentinel knows the replica and the two others: a failover can start at once */
        r = cmd(s->sentinel_port[i], SENTINEL_PASS, "SENTINEL master %s", EKV_TEST_SENTINEL_MASTER,
                NULL);
        ck_assert_msg(strstr(r, "\nnum-other-sentinels\n2\n") != NULL, "%s", r);
        ck_assert_msg(strstr(r, "\nnum-slaves\n1\n") != NULL, "%s", r);
    }
    ck_assert_uint_eq(ekv_test_sentinels_master_port(sentinels), s->node_port[0]);
    ck_assert_uint_eq(ekv_test_sentinels_other_node(s, s->node_port[0]), s->node_port[1]);
    r = cmd(s->node_port[0], DATA_PASS, "ROLE", NULL, NULL);
    ck_assert_msg(strncmp(r, "master\n", 7) == 0, "ROLE: %s", r);

    /* both passwords are enforced: the harness's AUTH is what lets its commands through */
    r = cmd(s->sentinel_port[0], NULL, "SENTINEL get-master-addr-by-name %s",
            EKV_TEST_SENTINEL_MASTER, NULL);
    ck_assert_msg(strncmp(r, "(error) NOAUTH", 14) == 0, "no Sentinel password: %s", r);
    r = cmd(s->sentinel_port[0], "wrong", "PING", NULL, NULL);
    ck_assert_msg(strncmp(r, "(error) WRONGPASS", 17) == 0, "wrong Sentinel password: %s", r);
    r = cmd(s->node_port[0], NULL, "GET %s", "topo:k", NULL);
    ck_assert_msg(strncmp(r, "(error) NOAUTH", 14) == 0, "no data password: %s", r);
    r = cmd(s->node_port[0], SENTINEL_PASS, "PING", NULL, NULL);
    ck_assert_msg(strncmp(r, "(error) WRONGPASS", 17) == 0, "the Sentinel password: %s", r);
}
END_TEST

START_TEST(test_sentinels_replication)
{
    unsigned short master = ekv_test_sentinels_master_port(sentinels);
    unsigned short replica = ekv_test_sentinels_other_node(sentinels, master);

    ck_assert_str_eq(cmd(master, DATA_PASS, "SET %s %s", "topo:repl", "v1"), "OK");
    ck_assert_msg(wait_get(replica, DATA_PASS, "topo:repl", "v1", 3000),
                  "the write on %u did not reach the replica %u", master, replica);
    ck_assert_msg(strncmp(cmd(replica, DATA_PASS, "SET %s %s", "topo:repl", "v2"),
                          "(error) READONLY", 16) == 0,
                  "the replica accepted a write");
}
END_TEST

START_TEST(test_sentinels_failover)
{
    unsigned short old = ekv_test_sentinels_master_port(sentinels);
    unsigned short now;
    char want[32];
    uint64_t t0 = ekv_test_now_ms(), t1;

    now = ekv_test_sentinels_failover(sentinels);
    t1 = ekv_test_now_ms();
    ck_assert_uint_ne(now, old);
    ck_assert_uint_eq(now, ekv_test_sentinels_other_node(sentinels, old));
    ck_assert_uint_eq(ekv_test_sentinels_master_port(sentinels), now);
    snprintf(want, sizeof(want), "127.0.0.1\n%u", now);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(cmd(sentinels->sentinel_port[i], SENTINEL_PASS,
                             "SENTINEL get-master-addr-by-name %s", EKV_TEST_SENTINEL_MASTER, NULL),
                         want);
    ck_assert_msg(strncmp(cmd(now, DATA_PASS, "ROLE", NULL, NULL), "master\n", 7) == 0,
                  "the new master %u: ROLE %s", now, cmd(now, DATA_PASS, "ROLE", NULL, NULL));
    ck_assert_str_eq(cmd(now, DATA_PASS, "SET %s %s", "topo:after", "v3"), "OK");

    /* the Sentinels convert the old master some seconds after the switch (not at once: until
     * then both nodes say master) */
    ekv_test_sentinels_wait_replica(sentinels, 20000);
    snprintf(want, sizeof(want), "slave\n127.0.0.1\n%u\n", now);
    ck_assert_msg(strncmp(cmd(old, DATA_PASS, "ROLE", NULL, NULL), want, strlen(want)) == 0,
                  "the old master %u: ROLE %s", old, cmd(old, DATA_PASS, "ROLE", NULL, NULL));
    ck_assert_msg(wait_get(old, DATA_PASS, "topo:after", "v3", 3000),
                  "the new master's write did not reach the old master");
    fprintf(stderr, "sentinel failover: switched in %llu ms, old master a replica after %llu ms\n",
            (unsigned long long)(t1 - t0), (unsigned long long)(ekv_test_now_ms() - t0));
}
END_TEST

/* The last test of the TCase: processes restarted by a forked test end with it. */
START_TEST(test_sentinels_restarts)
{
    unsigned short master = ekv_test_sentinels_master_port(sentinels), now;
    char want[32];

    /* restarted with the config files they rewrote, the Sentinels still name the master they
     * switched to (their files began with node[0]), and know the replica and each other */
    ck_assert_uint_eq(master, sentinels->node_port[1]);
    ekv_test_sentinels_stop_sentinels(sentinels);
    for (int i = 0; i < 3; i++) {
        char *r = ekv_test_cmd_port(sentinels->sentinel_port[i], SENTINEL_PASS, "PING");
        ck_assert_msg(r == NULL, "Sentinel %u still answers: %s", sentinels->sentinel_port[i], r);
    }
    ekv_test_sentinels_start_sentinels(sentinels);
    snprintf(want, sizeof(want), "127.0.0.1\n%u", master);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(cmd(sentinels->sentinel_port[i], SENTINEL_PASS,
                             "SENTINEL get-master-addr-by-name %s", EKV_TEST_SENTINEL_MASTER, NULL),
                         want);

    /* kill -9 of the master: the restarted Sentinels promote the replica */
    now = ekv_test_sentinels_kill_master(sentinels);
    ck_assert_uint_eq(now, ekv_test_sentinels_other_node(sentinels, master));
    ck_assert_ptr_null(ekv_test_cmd_port(master, DATA_PASS, "PING"));
    ck_assert_msg(strncmp(cmd(now, DATA_PASS, "ROLE", NULL, NULL), "master\n", 7) == 0,
                  "the promoted node %u: ROLE %s", now, cmd(now, DATA_PASS, "ROLE", NULL, NULL));
    ck_assert_str_eq(cmd(now, DATA_PASS, "SET %s %s", "topo:after-kill", "v4"), "OK");

    /* the killed node comes back as a replica of the new master, with its data */
    ekv_test_sentinels_restart_node(sentinels, master);
    snprintf(want, sizeof(want), "slave\n127.0.0.1\n%u\n", now);
    ck_assert_msg(strncmp(cmd(master, DATA_PASS, "ROLE", NULL, NULL), want, strlen(want)) == 0,
                  "the restarted node %u: ROLE %s", master,
                  cmd(master, DATA_PASS, "ROLE", NULL, NULL));
    ck_assert_msg(wait_get(master, DATA_PASS, "topo:after-kill", "v4", 3000),
                  "the restarted node did not sync from the new master");
    ekv_test_sentinels_wait_replica(sentinels, 10000);
}
END_TEST

/* ---------------------------------------------------------------- Redis Cluster */

static unsigned short slot_map[EKV_TEST_CLUSTER_SLOTS];

/* The three masters (from the CLUSTER SLOTS of the first reachable node). */
static void masters(unsigned short out[3])
{
    int n = 0;

    ekv_test_cluster_slot_map(cluster, 0, slot_map);
    for (int slot = 0; slot < EKV_TEST_CLUSTER_SLOTS; slot++) {
        bool seen = false;

        for (int i = 0; i < n; i++)
            seen = seen || out[i] == slot_map[slot];
        if (!seen) {
            ck_assert_msg(n < 3, "more than 3 masters");
            out[n++] = slot_map[slot];
        }
    }
    ck_assert_int_eq(n, 3);
}

/* A key "topo:PREFIX:N" whose slot the master on @port serves. */
static void key_on(unsigned short port, const char *prefix, char *key, size_t keylen)
{
    for (int n = 0; n < 200; n++) {
        snprintf(key, keylen, "topo:%s:%d", prefix, n);
        if (ekv_test_cluster_master_of_slot(cluster, ekv_test_cluster_keyslot(cluster, key)) ==
            port)
            return;
    }
    ck_abort_msg("no key of 200 lands on %u", port);
}

/* Asserts that @port answers GET @key with a redirection to @to. */
static void assert_moved(unsigned short port, const char *key, unsigned short to)
{
    char want[64];
    const char *r = cmd(port, NULL, "GET %s", key, NULL);

    snprintf(want, sizeof(want), "(error) MOVED %d 127.0.0.1:%u",
             ekv_test_cluster_keyslot(cluster, key), to);
    ck_assert_msg(strcmp(r, want) == 0, "GET %s on %u: %s (expected %s)", key, port, r, want);
}

/* Asserts that every node's CLUSTER SLOTS gives @slot to @port. */
static void assert_owner_everywhere(int slot, unsigned short port)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        ekv_test_cluster_slot_map(cluster, cluster->port[i], slot_map);
        ck_assert_msg(slot_map[slot] == port, "node %u gives slot %d to %u, not %u",
                      cluster->port[i], slot, slot_map[slot], port);
    }
}

START_TEST(test_cluster_every_slot_has_a_master)
{
    unsigned short first[3];
    char want[32];

    ck_assert_msg(strncmp(cluster->origin, "redis-cluster://127.0.0.1:", 26) == 0, "origin %s",
                  cluster->origin);
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof(want), "127.0.0.1:%u", cluster->port[i]);
        ck_assert_msg(strstr(cluster->origin, want) != NULL, "origin %s lacks %s", cluster->origin,
                      want);
    }
    masters(first);
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        int served[3] = {0, 0, 0};

        /* every node's view: each slot served by one of the three masters, each master serving
         * some of them */
        ekv_test_cluster_slot_map(cluster, cluster->port[i], slot_map);
        for (int slot = 0; slot < EKV_TEST_CLUSTER_SLOTS; slot++) {
            int j = 0;

            ck_assert_msg(slot_map[slot] != 0, "node %u: slot %d has no master", cluster->port[i],
                          slot);
            while (j < 3 && first[j] != slot_map[slot])
                j++;
            ck_assert_msg(j < 3, "node %u: slot %d served by %u, not one of the masters",
                          cluster->port[i], slot, slot_map[slot]);
            served[j]++;
        }
        for (int j = 0; j < 3; j++)
            ck_assert_msg(served[j] > 0, "node %u: master %u serves no slot", cluster->port[i],
                          first[j]);
    }
    for (int j = 0; j < 3; j++)
        ck_assert_msg(ekv_test_cluster_replica_of(cluster, first[j]) != 0,
                      "master %u has no connected replica", first[j]);
}
END_TEST

START_TEST(test_cluster_set_get_on_each_master)
{
    unsigned short m[3];
    char key[64], val[32];

    masters(m);
    for (int i = 0; i < 3; i++) {
        key_on(m[i], "each", key, sizeof(key));
        snprintf(val, sizeof(val), "value-%d", i);
        ck_assert_str_eq(cmd(m[i], NULL, "SET %s %s", key, val), "OK");
        ck_assert_str_eq(cmd(m[i], NULL, "GET %s", key, NULL), val);
        assert_moved(m[(i + 1) % 3], key, m[i]);
    }
}
END_TEST

START_TEST(test_cluster_move_slot)
{
    const char *key = "topo:moving";
    int slot = ekv_test_cluster_keyslot(cluster, key);
    unsigned short m[3], from = ekv_test_cluster_master_of_slot(cluster, slot), to = 0;

    masters(m);
    for (int i = 0; i < 3 && to == 0; i++)
        if (m[i] != from)
            to = m[i];
    ck_assert_str_eq(cmd(from, NULL, "SET %s %s", key, "moved-value"), "OK");
    ekv_test_cluster_move_slot(cluster, slot, to);
    assert_owner_everywhere(slot, to);
    ck_assert_str_eq(cmd(to, NULL, "GET %s", key, NULL), "moved-value");
    assert_moved(from, key, to);
    /* only that slot moved: a neighbour stays where it was */
    ekv_test_cluster_slot_map(cluster, 0, slot_map);
    ck_assert_uint_eq(slot_map[slot > 0 ? slot - 1 : slot + 1], from);
}
END_TEST

START_TEST(test_cluster_failover)
{
    unsigned short m[3], now, replica;
    char key[64], want[32];
    int slot;

    masters(m);
    key_on(m[0], "failover", key, sizeof(key));
    slot = ekv_test_cluster_keyslot(cluster, key);
    replica = ekv_test_cluster_replica_of(cluster, m[0]);
    ck_assert_uint_ne(replica, 0);
    ck_assert_str_eq(cmd(m[0], NULL, "SET %s %s", key, "before-failover"), "OK");
    ck_assert_str_eq(cmd(m[0], NULL, "WAIT %s %s", "1", "2000"), "1");

    now = ekv_test_cluster_failover(cluster, m[0]);
    ck_assert_uint_eq(now, replica);
    ck_assert_msg(strncmp(cmd(now, NULL, "ROLE", NULL, NULL), "master\n", 7) == 0, "ROLE of %u",
                  now);
    snprintf(want, sizeof(want), "slave\n127.0.0.1\n%u\n", now);
    ck_assert_msg(strncmp(cmd(m[0], NULL, "ROLE", NULL, NULL), want, strlen(want)) == 0,
                  "the old master %u: ROLE %s", m[0], cmd(m[0], NULL, "ROLE", NULL, NULL));
    assert_owner_everywhere(slot, now);
    ck_assert_str_eq(cmd(now, NULL, "GET %s", key, NULL), "before-failover");
    assert_moved(m[0], key, now);
}
END_TEST

/* The last test of the TCase: the killed node stays down. */
START_TEST(test_cluster_kill_master)
{
    unsigned short m[3], replica, now;
    char key[64];
    int slot;

    masters(m);
    replica = ekv_test_cluster_replica_of(cluster, m[1]);
    ck_assert_uint_ne(replica, 0);
    key_on(m[1], "kill", key, sizeof(key));
    slot = ekv_test_cluster_keyslot(cluster, key);
    ck_assert_str_eq(cmd(m[1], NULL, "SET %s %s", key, "before-kill"), "OK");
    ck_assert_str_eq(cmd(m[1], NULL, "WAIT %s %s", "1", "2000"), "1");

    ekv_test_cluster_kill(cluster, m[1]);
    ck_assert_ptr_null(ekv_test_cmd_port(m[1], NULL, "PING"));
    now = ekv_test_cluster_wait_promotion(cluster, m[1]);
    ck_assert_uint_eq(now, replica);
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        if (cluster->port[i] == m[1])
            continue;
        ekv_test_cluster_slot_map(cluster, cluster->port[i], slot_map);
        ck_assert_msg(slot_map[slot] == now, "node %u gives slot %d to %u, not %u",
                      cluster->port[i], slot, slot_map[slot], now);
    }
    ck_assert_str_eq(cmd(now, NULL, "GET %s", key, NULL), "before-kill");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topology");
    TCase *tc;

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    if (ekv_test_redis_cli_binary() == NULL)
        ekv_test_skip_or_fail("redis-cli not found (next to $REDIS_SERVER or on $PATH)");

    tc = tcase_create("sentinel");
    tcase_add_unchecked_fixture(tc, start_sentinels, stop_sentinels);
    tcase_add_checked_fixture(tc, NULL, kill_strays);
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, test_sentinels_name_the_master);
    tcase_add_test(tc, test_sentinels_replication);
    tcase_add_test(tc, test_sentinels_failover);
    tcase_add_test(tc, test_sentinels_restarts);
    suite_add_tcase(s, tc);

    tc = tcase_create("cluster");
    tcase_add_unchecked_fixture(tc, start_cluster, stop_cluster);
    tcase_add_checked_fixture(tc, NULL, kill_strays);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cluster_every_slot_has_a_master);
    tcase_add_test(tc, test_cluster_set_get_on_each_master);
    tcase_add_test(tc, test_cluster_move_slot);
    tcase_add_test(tc, test_cluster_failover);
    tcase_add_test(tc, test_cluster_kill_master);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
