/* check_cluster.c - what Redis Cluster tells a client, decoded (src/origin/slot.c, cluster.c),
 * against what Redis itself answers:
 * - key slots: every vector is the reply of CLUSTER KEYSLOT on redis-server 7.0.15
 *   (cluster-enabled): hash tags (the first '{' and the first '}' after it, only when not
 *   empty), empty and unbalanced braces, binary keys, and edgekv's own item and generation
 *   keys, which must share a slot;
 * - the slot map from CLUSTER SHARDS and CLUSTER SLOTS, the replies recorded byte for byte from
 *   a 3 + 3 cluster of 7.0.15 after `redis-cli --cluster reshard` moved slots 0-2 (so one master
 *   owns two ranges), and malformed variants of them;
 * - redirections: MOVED and ASK with an address, a host name, an IPv6 address and an empty
 *   endpoint, TRYAGAIN, CLUSTERDOWN, and errors that are none of them. */
#include "config.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "edgekv/origin.h"

#include "origin_int.h"
#include "testutil.h"

struct vector {
    const char *key;
    size_t len;
    unsigned slot;
};

#define V(k, s) {k, sizeof(k) - 1, s}

static const struct vector vectors[] = {
    V("", 0),
    V("a", 15495),
    V("foo", 12182),
    V("bar", 5061),
    V("123456789", 12739), /* CRC16/XMODEM's check value 0x31c3 */
    V("{user1000}.following", 3443),
    V("{user1000}.followers", 3443),
    V("foo{}{bar}", 8363),    /* an empty tag: the whole key */
    V("foo{{bar}}zap", 4015), /* the tag is "{bar" */
    V("foo{bar}{zap}", 5061), /* the first tag only: "bar" */
    V("{}", 15257),
    V("{", 4092),
    V("}", 12090),
    V("{a", 10276),
    V("a}", 5921),
    V("{abc:7}x", 10726),
    V("bin\0ary", 16297),
    V("edgekv:i:{k3v0c8tq5y2m1x7w9b4n6a}:greeting", 14618),
    V("edgekv:g:{k3v0c8tq5y2m1x7w9b4n6a}", 14618),
};

START_TEST(test_keyslot_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        ck_assert_msg(ekv_origin_keyslot(v->key, v->len) == v->slot,
                      "key %zu (\"%s\"): slot %u, Redis says %u", i, v->key,
                      ekv_origin_keyslot(v->key, v->len), v->slot);
    }
}
END_TEST

/* Every slot is reachable and none is out of range: 200,000 distinct keys. */
START_TEST(test_keyslot_range)
{
    static unsigned char seen[EKV_ORIGIN_SLOTS];
    unsigned distinct = 0;
    char key[32];

    memset(seen, 0, sizeof(seen));
    for (unsigned i = 0; i < 200000; i++) {
        int n = snprintf(key, sizeof(key), "k%u", i);
        unsigned s = ekv_origin_keyslot(key, (size_t)n);
        ck_assert_uint_lt(s, EKV_ORIGIN_SLOTS);
        distinct += !seen[s];
        seen[s] = 1;
    }
    ck_assert_uint_eq(distinct, EKV_ORIGIN_SLOTS);
}
END_TEST

/* ---------------------------------------------------------------- slot maps */

/* CLUSTER SHARDS and CLUSTER SLOTS of 127.0.0.1:21001 in a 3 + 3 cluster (7.0.15) after slots
 * 0-2 moved to 127.0.0.1:21002 */
static const char shards_resp[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:2\r\n:5461\r\n:10922\r\n$5\r\nnodes\r\n"
    "*2\r\n*14\r\n$2\r\nid\r\n$40\r\nc1d07095416ef3b54febde27084b0631ec21da3d\r\n"
    "$4\r\nport\r\n:21002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n04aed0c752adace52b8cc03f597b859491b0d662\r\n"
    "$4\r\nport\r\n:21006\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
    ":14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:3\r\n"
    ":5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n50ca643e80f83fd4c40892be5024f43af2ac9a36\r\n"
    "$4\r\nport\r\n:21001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\n9019aeec4608f7e23f0fb8073965a36943c6ae4f\r\n"
    "$4\r\nport\r\n:21005\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
    ":14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:10923\r\n"
    ":16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$40\r\n0b19f129654afec185fa9c8a3e44c680dbba770c\r\n"
    "$4\r\nport\r\n:21003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$40\r\nbb322dc648078c3424d476b1b9e36988f2ff9256\r\n"
    "$4\r\nport\r\n:21004\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
    ":14\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";
static const char slots_resp[] =
    "*4\r\n*4\r\n:0\r\n:2\r\n*4\r\n$9\r\n127.0.0.1\r\n:21002\r\n$40\r\nc1d07095416ef3b54febde27084b0631ec21da3d\r\n"
    "*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:21006\r\n$40\r\n04aed0c752adace52b8cc03f597b859491b0d662\r\n"
    "*0\r\n*4\r\n:3\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:21001\r\n$40\r\n50ca643e80f83fd4c40892be5024f43af2ac9a36\r\n"
    "*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:21005\r\n$40\r\n9019aeec4608f7e23f0fb8073965a36943c6ae4f\r\n"
    "*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:21002\r\n$40\r\n"
    "c1d07095416ef3b54febde27084b0631ec21da3d\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":21006\r\n$40\r\n04aed0c752adace52b8cc03f597b859491b0d662\r\n*0\r\n*4\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:21003\r\n$40\r\n0b19f129654afec185fa9c8a3e44c680dbba770c\r\n"
    "*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:21004\r\n$40\r\nbb322dc648078c3424d476b1b9e36988f2ff9256\r\n"
    "*0\r\n";

/* A reply built by hiredis's reader from RESP bytes, as the connection builds them. */
static redisReply *reply_of(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, resp, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    ck_assert_ptr_nonnull(r);
    redisReaderFree(rd);
    return r;
}

static void check_recorded_map(const struct ekv_slotmap *m)
{
    static const struct {
        unsigned slot;
        unsigned short port;
        const char *id;
    } want[] = {
        {0, 21002, "c1d07095416ef3b54febde27084b0631ec21da3d"},
        {2, 21002, "c1d07095416ef3b54febde27084b0631ec21da3d"},
        {3, 21001, "50ca643e80f83fd4c40892be5024f43af2ac9a36"},
        {5460, 21001, "50ca643e80f83fd4c40892be5024f43af2ac9a36"},
        {5461, 21002, "c1d07095416ef3b54febde27084b0631ec21da3d"},
        {10922, 21002, "c1d07095416ef3b54febde27084b0631ec21da3d"},
        {10923, 21003, "0b19f129654afec185fa9c8a3e44c680dbba770c"},
        {16383, 21003, "0b19f129654afec185fa9c8a3e44c680dbba770c"},
    };

    ck_assert_uint_eq(m->nnodes, 3); /* masters only: the replicas are not routed to */
    ck_assert_uint_eq(m->served, EKV_ORIGIN_SLOTS);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct ekv_cluster_node *n = ekv_slotmap_owner(m, want[i].slot);
        ck_assert_msg(n != NULL, "slot %u has no owner", want[i].slot);
        ck_assert_str_eq(n->host, "127.0.0.1");
        ck_assert_msg(n->port == want[i].port, "slot %u: port %u, want %u", want[i].slot,
                      n->port, want[i].port);
        ck_assert_str_eq(n->id, want[i].id);
    }
    ck_assert_ptr_null(ekv_slotmap_owner(m, EKV_ORIGIN_SLOTS));
}

START_TEST(test_slotmap_from_shards)
{
    static struct ekv_slotmap m;
    redisReply *r = reply_of(shards_resp, sizeof(shards_resp) - 1);
    char why[128];

    ck_assert_int_eq(ekv_slotmap_from_shards(&m, r, "seed", why, sizeof(why)), EKV_OK);
    check_recorded_map(&m);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_slotmap_from_slots)
{
    static struct ekv_slotmap m;
    redisReply *r = reply_of(slots_resp, sizeof(slots_resp) - 1);
    char why[128];

    ck_assert_int_eq(ekv_slotmap_from_slots(&m, r, "seed", why, sizeof(why)), EKV_OK);
    check_recorded_map(&m);
    freeReplyObject(r);
}
END_TEST

/* Endpoints: "" and "?" mean the node asked; a host name is kept as it is; a failed master's
 * slots stay unowned; a replica is never an owner. */
START_TEST(test_slotmap_endpoints)
{
    static struct ekv_slotmap m;
    static const char slots[] = "*3\r\n"
                                "*3\r\n:0\r\n:99\r\n*2\r\n$0\r\n\r\n:7001\r\n"
                                "*3\r\n:100\r\n:199\r\n*2\r\n$1\r\n?\r\n:7002\r\n"
                                "*4\r\n:200\r\n:299\r\n*2\r\n$15\r\nredis-3.example\r\n:7003\r\n"
                                "*2\r\n$9\r\n127.0.0.9\r\n:7009\r\n";
    static const char shards[] =
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:9\r\n$5\r\nnodes\r\n*2\r\n"
        "*8\r\n$2\r\nid\r\n$1\r\na\r\n$4\r\nport\r\n:7001\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
        "$6\r\nhealth\r\n$6\r\nfailed\r\n"
        "*8\r\n$2\r\nid\r\n$1\r\nb\r\n$4\r\nport\r\n:7002\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
        "$6\r\nhealth\r\n$6\r\nonline\r\n";
    redisReply *r = reply_of(slots, sizeof(slots) - 1);
    char why[128];

    ck_assert_int_eq(ekv_slotmap_from_slots(&m, r, "10.1.1.1", why, sizeof(why)), EKV_OK);
    ck_assert_uint_eq(m.served, 300);
    ck_assert_str_eq(ekv_slotmap_owner(&m, 5)->host, "10.1.1.1");
    ck_assert_uint_eq(ekv_slotmap_owner(&m, 5)->port, 7001);
    ck_assert_str_eq(ekv_slotmap_owner(&m, 150)->host, "10.1.1.1");
    ck_assert_str_eq(ekv_slotmap_owner(&m, 250)->host, "redis-3.example");
    ck_assert_ptr_null(ekv_slotmap_owner(&m, 300));
    freeReplyObject(r);
    r = reply_of(shards, sizeof(shards) - 1);
    ck_assert_int_eq(ekv_slotmap_from_shards(&m, r, "10.1.1.1", why, sizeof(why)), EKV_OK);
    ck_assert_uint_eq(m.served, 0);
    ck_assert_ptr_null(ekv_slotmap_owner(&m, 0));
    freeReplyObject(r);
}
END_TEST

/* Replies of other shapes are refused with a reason, whatever is wrong where. */
START_TEST(test_slotmap_malformed)
{
    static struct ekv_slotmap m;
    static const char *const bad_slots[] = {
        ":1\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",
        "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:5\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:70000\r\n",
        "*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
    };
    static const char *const bad_shards[] = {
        "$1\r\nx\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*3\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n",
        "*1\r\n*2\r\n$5\r\nslots\r\n*0\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n:1\r\n$5\r\nnodes\r\n*0\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*1\r\n:1\r\n$5\r\nnodes\r\n*0\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n:1\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*2\r\n$2\r\nid\r\n$1\r\na\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*4\r\n$2\r\nid\r\n$1\r\na\r\n"
        "$4\r\nrole\r\n$6\r\nmaster\r\n",
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n$1\r\n0\r\n:1\r\n$5\r\nnodes\r\n*1\r\n*6\r\n"
        "$2\r\nid\r\n$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$4\r\nport\r\n:1\r\n",
    };
    char why[128];

    for (size_t i = 0; i < sizeof(bad_slots) / sizeof(bad_slots[0]); i++) {
        redisReply *r = reply_of(bad_slots[i], strlen(bad_slots[i]));
        why[0] = '\0';
        ck_assert_msg(ekv_slotmap_from_slots(&m, r, "h", why, sizeof(why)) == EKV_EPROTO,
                      "CLUSTER SLOTS case %zu accepted", i);
        ck_assert_msg(strstr(why, "CLUSTER SLOTS") == why || strstr(why, "a slot") == why,
                      "case %zu: %s", i, why);
        freeReplyObject(r);
    }
    for (size_t i = 0; i < sizeof(bad_shards) / sizeof(bad_shards[0]); i++) {
        redisReply *r = reply_of(bad_shards[i], strlen(bad_shards[i]));
        why[0] = '\0';
        ck_assert_msg(ekv_slotmap_from_shards(&m, r, "h", why, sizeof(why)) == EKV_EPROTO,
                      "CLUSTER SHARDS case %zu accepted", i);
        ck_assert_msg(why[0] != '\0', "case %zu: no reason", i);
        freeReplyObject(r);
    }
}
END_TEST

/* ---------------------------------------------------------------- redirections */

START_TEST(test_redirects)
{
    static const struct {
        const char *err;
        enum ekv_redirect_kind kind;
        unsigned slot;
        const char *host;
        unsigned short port;
    } ok[] = {
        {"MOVED 12182 127.0.0.1:21003", EKV_REDIRECT_MOVED, 12182, "127.0.0.1", 21003},
        {"ASK 3999 127.0.0.1:6381\r\n", EKV_REDIRECT_ASK, 3999, "127.0.0.1", 6381},
        {"MOVED 3999 :6380", EKV_REDIRECT_MOVED, 3999, "10.0.0.7", 6380}, /* unknown endpoint */
        {"MOVED 0 redis-2.internal:6379", EKV_REDIRECT_MOVED, 0, "redis-2.internal", 6379},
        {"MOVED 16383 ::1:7000", EKV_REDIRECT_MOVED, 16383, "::1", 7000},
        {"TRYAGAIN Multiple keys request during rehashing of slot", EKV_REDIRECT_TRYAGAIN, 0,
         "", 0},
        {"CLUSTERDOWN The cluster is down", EKV_REDIRECT_CLUSTERDOWN, 0, "", 0},
        {"CLUSTERDOWN", EKV_REDIRECT_CLUSTERDOWN, 0, "", 0},
        {"NOSCRIPT No matching script", EKV_REDIRECT_NONE, 0, "", 0},
        {"CROSSSLOT Keys in request don't hash to the same slot", EKV_REDIRECT_NONE, 0, "", 0},
        {"MOVEDX 1 h:1", EKV_REDIRECT_NONE, 0, "", 0},
        {"TRYAGAINX", EKV_REDIRECT_NONE, 0, "", 0},
        {"", EKV_REDIRECT_NONE, 0, "", 0},
    };
    static const char *const bad[] = {
        "MOVED", "MOVED x h:1", "MOVED 16384 h:1", "MOVED 1 h", "MOVED 1 h:", "MOVED 1 h:0",
        "MOVED 1 h:65536", "ASK 1 h:x", "MOVED -1 h:1", "ASK 12",
    };
    struct ekv_redirect rd;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(ekv_redirect_parse(ok[i].err, strlen(ok[i].err), "10.0.0.7", &rd) == EKV_OK,
                      "\"%s\" refused", ok[i].err);
        ck_assert_msg(rd.kind == ok[i].kind, "\"%s\": kind %d", ok[i].err, rd.kind);
        ck_assert_uint_eq(rd.slot, ok[i].slot);
        ck_assert_str_eq(rd.host, ok[i].host);
        ck_assert_uint_eq(rd.port, ok[i].port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ekv_redirect_parse(bad[i], strlen(bad[i]), "h", &rd) == EKV_EPROTO,
                      "\"%s\" accepted", bad[i]);
}
END_TEST

/* A host that no reply from Redis can hold (a NUL, a space, a control byte): refused, never cut
 * short at the NUL into another host or none. Regression: fuzz_cluster's first finding,
 * "-ASK 12182 \0\0\0\x0e.0.1:31001" gave host "" (tests/fuzz/corpus/cluster/crash-ask-nul). */
START_TEST(test_bad_hosts)
{
    static struct ekv_slotmap m;
    static const char ask[] = "ASK 12182 \0\0\0\x0e.0.1:31001";
    static const char moved[] = "MOVED 1 10.0.0.1\0evil:6379";
    static const char *const spaced[] = {"MOVED 1 a b:1", "ASK 1 a\tb:1", "MOVED 1 h\x7f:1",
                                         "MOVED 1 \xc3\xa9:1"};
    static const char slots[] = "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$5\r\nh\0ost\r\n:7001\r\n";
    static const char shards[] =
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:9\r\n$5\r\nnodes\r\n*1\r\n"
        "*8\r\n$2\r\nid\r\n$1\r\na\r\n$4\r\nport\r\n:7001\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
        "$8\r\nendpoint\r\n$3\r\n\0\0\0\r\n";
    struct ekv_redirect rd;
    redisReply *r;
    char why[128];

    ck_assert_int_eq(ekv_redirect_parse(ask, sizeof(ask) - 1, "h", &rd), EKV_EPROTO);
    ck_assert_int_eq(ekv_redirect_parse(moved, sizeof(moved) - 1, "h", &rd), EKV_EPROTO);
    for (size_t i = 0; i < sizeof(spaced) / sizeof(spaced[0]); i++)
        ck_assert_msg(ekv_redirect_parse(spaced[i], strlen(spaced[i]), "h", &rd) == EKV_EPROTO,
                      "\"%s\" accepted", spaced[i]);
    r = reply_of(slots, sizeof(slots) - 1);
    ck_assert_int_eq(ekv_slotmap_from_slots(&m, r, "h", why, sizeof(why)), EKV_EPROTO);
    freeReplyObject(r);
    r = reply_of(shards, sizeof(shards) - 1);
    ck_assert_int_eq(ekv_slotmap_from_shards(&m, r, "h", why, sizeof(why)), EKV_EPROTO);
    freeReplyObject(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("keyslot");

    tcase_add_test(tc, test_keyslot_vectors);
    tcase_add_test(tc, test_keyslot_range);
    suite_add_tcase(s, tc);
    tc = tcase_create("slotmap");
    tcase_add_test(tc, test_slotmap_from_shards);
    tcase_add_test(tc, test_slotmap_from_slots);
    tcase_add_test(tc, test_slotmap_endpoints);
    tcase_add_test(tc, test_slotmap_malformed);
    tcase_add_test(tc, test_redirects);
    tcase_add_test(tc, test_bad_hosts);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
