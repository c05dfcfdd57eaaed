/* topology.h - real Redis topologies for end-to-end tests (tests/helpers/libekvtest.a): a
 * Sentinel set (a master, a replica and three Sentinels) and a Redis Cluster (three masters, three
 * replicas), all redis-server processes on 127.0.0.1 TCP ports started through ekv_test_spawn(),
 * plus the failovers, kills, restarts and slot moves that the origin code must survive.
 *
 * Ports. Cluster nodes also listen on a bus port (port + 10000), and the kernel hands out
 * 32768-60999 to outgoing connections here, so every port comes from
 * ekv_test_free_port_pair(): P in [20000, 22767] with P and P + 10000 both free, starting at a
 * random point per process (test binaries run in parallel). A server that loses the race for its
 * port anyway (it exits with "Address already in use") is started again on another one.
 *
 * Processes. A set or cluster is meant to be started once per TCase in an unchecked setup (its
 * processes are marked persistent, so ekv_test_kill_strays() in a checked teardown spares them)
 * and freed in the unchecked teardown. The functions never trust what the struct remembers about
 * roles: they ask the servers, so a failover done by one forked test is seen by the next. But a
 * process started inside a forked test (ekv_test_sentinels_restart_node(),
 * ekv_test_sentinels_start_sentinels()) belongs to that test's process group, which Check kills
 * when the test ends, so the TCase's later tests find it gone: make such a test the last of its
 * TCase (as check_topology does), or run with CK_FORK=no.
 *
 * Failures are reported with ck_abort_msg() (with the servers' view or output), after the start
 * functions have stopped what they had started. ekv_test_cmd_port() and the _free() functions
 * never fail. */
#ifndef EDGEKV_TESTS_TOPOLOGY_H
#define EDGEKV_TESTS_TOPOLOGY_H

#include <stdbool.h>
#include <sys/types.h>

#include "testutil.h"

#define EKV_TEST_SENTINEL_MASTER "mymaster" /* the name the Sentinels monitor */
#define EKV_TEST_CLUSTER_NODES 6            /* 3 masters + 3 replicas */
#define EKV_TEST_CLUSTER_SLOTS 16384

/* ---------------------------------------------------------------- ports and commands */

/**
 * A TCP port P in [20000, 22767] such that P and P + 10000 could both be bound on 127.0.0.1 a
 * moment ago (both bound, then closed). Successive calls in one process return different ports
 * (the search goes on from the last one found). Fails the test if none is free.
 */
unsigned short ekv_test_free_port_pair(void);

/**
 * Runs one command (hiredis format: %s, %b with a length, ...) against 127.0.0.1:@port, after
 * AUTH @password unless @password is NULL, with 2 s timeouts. Returns the reply as a malloc'd
 * string (caller frees), rendered as ekv_test_redis_cmd() does: a status or bulk string as is,
 * an integer in decimal, nil as "(nil)", an error as "(error) MESSAGE", an array as its
 * elements joined by '\n'. A refused AUTH returns the AUTH error. Returns NULL if the server
 * cannot be reached or the connection fails: never fails the test, so it can probe dead nodes.
 */
char *ekv_test_cmd_port(unsigned short port, const char *password, const char *fmt, ...);

/** The same, but fails the test (naming the command) if the server cannot be reached. */
char *ekv_test_cmd_port_or_fail(unsigned short port, const char *password, const char *fmt, ...);

/**
 * The redis-cli binary: next to $REDIS_SERVER if there is one, else the first on $PATH; NULL if
 * there is none. The returned string is static.
 */
const char *ekv_test_redis_cli_binary(void);

/* ---------------------------------------------------------------- Sentinel */

struct ekv_test_sentinel_opts {
    const char *data_password;     /* requirepass + masterauth of the data nodes, or NULL */
    const char *sentinel_password; /* requirepass of the Sentinels, or NULL */
};

struct ekv_test_sentinels {
    struct ekv_test_proc *node[2];     /* the data nodes; node[0] starts as the master */
    unsigned short node_port[2];       /* fixed for the set's life (restarts keep the port) */
    struct ekv_test_proc *sentinel[3]; /* the Sentinels */
    unsigned short sentinel_port[3];   /* fixed too: the origin names them */
    char conf[3][240];                 /* each Sentinel's config file, which Sentinel rewrites */
    char dir[200];                     /* holds the config files */
    char data_password[64];            /* "" when the data nodes have none */
    char sentinel_password[64];        /* "" when the Sentinels have none */
    /* "redis-sentinel://[:PASSWORD@]127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster", with the
     * data nodes' password: edgekv's --origin */
    char origin[512];
    pid_t owner; /* the process that started the set: only it removes dir */
};

/**
 * Starts the data nodes (node[0] the master, node[1] its replica: no persistence,
 * repl-diskless-sync-delay 0), waits for the replica's master_link_status:up, then starts three
 * Sentinels (quorum 2, down-after-milliseconds 1000, failover-timeout 3000, parallel-syncs 1;
 * `sentinel auth-pass` when the data nodes have a password) and waits until every Sentinel
 * reports the master, knows the replica with its link up and knows the two other Sentinels, so
 * that a failover can start at once. Passwords may only hold [A-Za-z0-9._-]. @opts may be NULL
 * (no passwords). Takes about 2-4 s; fails the test after 20 s. Free with
 * ekv_test_sentinels_free().
 */
struct ekv_test_sentinels *ekv_test_sentinels_start(const struct ekv_test_sentinel_opts *opts);

/**
 * Kills every process of the set (SIGKILL), reaps them, removes its files and frees @s. NULL is
 * a no-op. Never fails: safe in an unchecked teardown.
 */
void ekv_test_sentinels_free(struct ekv_test_sentinels *s);

/** The data password for ekv_test_cmd_port(): NULL when there is none. */
const char *ekv_test_sentinels_data_pass(const struct ekv_test_sentinels *s);
/** The Sentinel password for ekv_test_cmd_port(): NULL when there is none. */
const char *ekv_test_sentinels_sentinel_pass(const struct ekv_test_sentinels *s);

/**
 * The master's port as the reachable Sentinels report it (SENTINEL get-master-addr-by-name),
 * once they agree (at most 5 s). Fails the test if no Sentinel answers or they keep disagreeing.
 */
unsigned short ekv_test_sentinels_master_port(struct ekv_test_sentinels *s);

/** The data node that is not on @port (the other one of the pair). */
unsigned short ekv_test_sentinels_other_node(const struct ekv_test_sentinels *s,
                                             unsigned short port);

/**
 * SENTINEL FAILOVER mymaster (retried while a Sentinel answers -INPROG or -NOGOODSLAVE), then
 * waits until every reachable Sentinel names the other data node and that node answers ROLE
 * master (about 1-2 s). Returns the new master's port. The old master stays a master until the
 * Sentinels convert it, 8-10 s later (ekv_test_sentinels_wait_replica(), or do it at once with
 * ekv_test_sentinels_convert_old_master()): a second failover needs that first. Fails the test
 * after 15 s.
 */
unsigned short ekv_test_sentinels_failover(struct ekv_test_sentinels *s);

/**
 * Kills (SIGKILL) whichever data node the Sentinels name as master and waits until every
 * reachable Sentinel names the other one and it answers ROLE master (about 2-4 s). Returns the
 * new master's port. Fails the test after 15 s (e.g. when the other node was not a replica).
 */
unsigned short ekv_test_sentinels_kill_master(struct ekv_test_sentinels *s);

/**
 * Starts the data node on @port again (after it was killed), as a replica of the master the
 * Sentinels name, and waits until its master_link_status is up (at most 10 s).
 */
void ekv_test_sentinels_restart_node(struct ekv_test_sentinels *s, unsigned short port);

/**
 * Waits until the data node that is not the master is a replica of it with its link up, and
 * every reachable Sentinel names the master and lists that node as a replica that is up: after
 * ekv_test_sentinels_failover() (Sentinel converts the old master 8-10 s after the switch) or
 * ekv_test_sentinels_restart_node(), so that the next failover can happen. Fails the test after
 * @timeout_ms.
 */
void ekv_test_sentinels_wait_replica(struct ekv_test_sentinels *s, unsigned timeout_ms);

/**
 * Does at once what the Sentinels do 8-10 s after a switch: REPLICAOF the master they name, sent
 * to the other data node (the old master, which meanwhile still says it is a master: the
 * split-brain window a test may want to see instead), then ekv_test_sentinels_wait_replica().
 */
void ekv_test_sentinels_convert_old_master(struct ekv_test_sentinels *s);

/** Kills (SIGKILL) the three Sentinels and waits until their ports refuse connections. */
void ekv_test_sentinels_stop_sentinels(struct ekv_test_sentinels *s);

/**
 * Starts the three Sentinels again with their config files (where each wrote what it learned:
 * the current master, the replica, the other Sentinels) on the same ports, and waits until each
 * reports a reachable master (at most 10 s).
 */
void ekv_test_sentinels_start_sentinels(struct ekv_test_sentinels *s);

/* ---------------------------------------------------------------- Redis Cluster */

struct ekv_test_cluster {
    struct ekv_test_proc *node[EKV_TEST_CLUSTER_NODES]; /* node[i] listens on port[i] */
    unsigned short port[EKV_TEST_CLUSTER_NODES];
    char id[EKV_TEST_CLUSTER_NODES][48]; /* CLUSTER MYID of each node */
    /* "redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3": edgekv's --origin */
    char origin[512];
};

/**
 * Starts six cluster nodes (cluster-node-timeout 2000, no persistence, repl-diskless-sync-delay
 * 0, repl-ping-replica-period 1: CLUSTER SLOTS leaves out a replica until its offset moves, which
 * takes its master's first ping), creates the cluster with `redis-cli --cluster create ...
 * --cluster-replicas 1` (the first three nodes become the masters), and waits until every node
 * says cluster_state:ok, every replica's link is up, and all six agree on who serves which slots
 * and which replicas they have. Takes about 4 s; fails the test after 20 s.
 * ekv_test_skip_or_fail() if there is no redis-server or redis-cli: so call it from an unchecked
 * setup. Free with ekv_test_cluster_free().
 */
struct ekv_test_cluster *ekv_test_cluster_start(void);

/** Kills every node (SIGKILL), reaps them, removes their files and frees @c. NULL is a no-op.
 * Never fails: safe in an unchecked teardown. */
void ekv_test_cluster_free(struct ekv_test_cluster *c);

/**
 * Fills @map[slot] with the port of the master serving each slot, 0 for an unserved one, from
 * the CLUSTER SLOTS of node @port (or of the first reachable node when @port is 0). Fails the
 * test if that node does not answer.
 */
void ekv_test_cluster_slot_map(struct ekv_test_cluster *c, unsigned short port,
                               unsigned short map[EKV_TEST_CLUSTER_SLOTS]);

/** The port of the master serving @slot (CLUSTER SLOTS of the first reachable node); 0 if none. */
unsigned short ekv_test_cluster_master_of_slot(struct ekv_test_cluster *c, int slot);

/** The hash slot of @key (CLUSTER KEYSLOT on a reachable node). */
int ekv_test_cluster_keyslot(struct ekv_test_cluster *c, const char *key);

/** The port of a connected replica of the master on @master_port (ROLE of each node), or 0. */
unsigned short ekv_test_cluster_replica_of(struct ekv_test_cluster *c, unsigned short master_port);

/**
 * CLUSTER FAILOVER on a replica of the master on @master_port, then waits until the replica is
 * master, the old master its replica, and every reachable node's CLUSTER SLOTS agrees. Returns
 * the new master's port. Fails the test after 10 s.
 */
unsigned short ekv_test_cluster_failover(struct ekv_test_cluster *c, unsigned short master_port);

/** Kills (SIGKILL) the node on @port and waits until its port refuses connections. */
void ekv_test_cluster_kill(struct ekv_test_cluster *c, unsigned short port);

/**
 * After ekv_test_cluster_kill() of a master: waits until its replica has taken over (about 3 s
 * with cluster-node-timeout 2000), every reachable node says cluster_state:ok and their CLUSTER
 * SLOTS agree. Returns the new master of @dead_port's slots. Fails the test after 15 s.
 */
unsigned short ekv_test_cluster_wait_promotion(struct ekv_test_cluster *c,
                                               unsigned short dead_port);

/**
 * Moves @slot with its keys to the master on @to_port, deterministically (notes section 6):
 * CLUSTER SETSLOT IMPORTING on the target, MIGRATING on the source, GETKEYSINSLOT + MIGRATE
 * ... KEYS until the slot is empty, then SETSLOT NODE on the target, the source and the other
 * masters; waits until every reachable node's CLUSTER SLOTS agrees. A no-op if @to_port already
 * serves it. Fails the test if @to_port is not a master or a step fails.
 */
void ekv_test_cluster_move_slot(struct ekv_test_cluster *c, int slot, unsigned short to_port);

#endif /* EDGEKV_TESTS_TOPOLOGY_H */
