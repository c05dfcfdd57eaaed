/* fuzz_cluster.c - libFuzzer target: what Redis Cluster tells a client (src/origin/cluster.c):
 * CLUSTER SHARDS and CLUSTER SLOTS replies into a slot map, and redirections (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN) in error replies. The input is RESP; every complete reply goes to both
 * slot map decoders, and the text of every error, status or string reply to the redirection
 * parser (origin.c parses the error replies, but the parser must hold for any bytes).
 *
 * Invariants: a map the decoder accepts is consistent (served counts the owned slots, owners
 * index existing nodes, nodes have a host that fits and a port); a redirection it accepts has
 * a slot in range and a target. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "origin_int.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cluster: %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_REPLIES 16
#define FROM "10.0.0.9" /* the node that answered */

static struct ekv_slotmap map; /* 110 KB: not on the stack */

static void check_map(const struct ekv_slotmap *m)
{
    unsigned served = 0;

    CHECK(m->nnodes <= EKV_CLUSTER_MAX_NODES);
    for (unsigned s = 0; s < EKV_ORIGIN_SLOTS; s++) {
        const struct ekv_cluster_node *n = ekv_slotmap_owner(m, s);
        CHECK(m->owner[s] <= m->nnodes);
        if (m->owner[s] != 0) {
            served++;
            CHECK(n == &m->nodes[m->owner[s] - 1]);
        } else {
            CHECK(n == NULL);
        }
    }
    CHECK(served == m->served);
    for (unsigned i = 0; i < m->nnodes; i++) {
        const struct ekv_cluster_node *n = &m->nodes[i];
        CHECK(memchr(n->host, '\0', sizeof(n->host)) != NULL);
        CHECK(memchr(n->id, '\0', sizeof(n->id)) != NULL);
        CHECK(n->host[0] != '\0');
        CHECK(n->port != 0);
    }
    CHECK(ekv_slotmap_owner(m, EKV_ORIGIN_SLOTS) == NULL);
}

static void redirect(const char *s, size_t len)
{
    struct ekv_redirect rd;

    if (ekv_redirect_parse(s, len, FROM, &rd) != EKV_OK)
        return;
    CHECK(rd.kind >= EKV_REDIRECT_NONE && rd.kind <= EKV_REDIRECT_CLUSTERDOWN);
    if (rd.kind == EKV_REDIRECT_MOVED || rd.kind == EKV_REDIRECT_ASK) {
        CHECK(rd.slot < EKV_ORIGIN_SLOTS);
        CHECK(rd.port != 0);
        CHECK(rd.host[0] != '\0');
        CHECK(memchr(rd.host, '\0', sizeof(rd.host)) != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReply *got[MAX_REPLIES];
    size_t n = fuzz_resp_read((const char *)data, size, got, MAX_REPLIES);
    char why[160];

    for (size_t i = 0; i < n; i++) {
        redisReply *r = got[i];

        if (ekv_slotmap_from_shards(&map, r, FROM, why, sizeof(why)) == EKV_OK)
            check_map(&map);
        else
            CHECK(why[0] != '\0');
        if (ekv_slotmap_from_slots(&map, r, FROM, why, sizeof(why)) == EKV_OK)
            check_map(&map);
        else
            CHECK(why[0] != '\0');
        if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
            r->type == REDIS_REPLY_STRING)
            redirect(r->str, r->len);
    }
    for (size_t i = 0; i < n; i++)
        fuzz_resp_free(got[i]);
    /* and the input itself as an error text (a reply's is the same bytes without "-") */
    redirect((const char *)data, size);
    return 0;
}
