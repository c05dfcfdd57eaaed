/* cluster.c - what Redis Cluster tells a client, decoded: the slot map (CLUSTER SHARDS, Redis
 * 7.0+, or CLUSTER SLOTS before it) and the redirections in error replies (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN). Pure functions over replies as hiredis's reader builds them; the
 * connections that use them live elsewhere. Every shape is checked: a reply that does not look
 * like the documented one is refused with a reason, never half applied.
 *
 * Addresses: a node's preferred endpoint is its "endpoint" (SHARDS) or first field (SLOTS);
 * an empty or "?" endpoint means "the host you asked" (cluster-preferred-endpoint-type unknown-
 * endpoint), so it is replaced by the host of the node that answered. MOVED and ASK write
 * "host:port" with the port after the last colon (IPv6 addresses are not bracketed), and an
 * empty host means the same. */
#include "config.h"

#include <string.h>

#include <hiredis/hiredis.h>

#include "edgekv/text.h"

#include "origin_int.h"

static bool is_text(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool text_is(const redisReply *r, const char *s)
{
    return is_text(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static bool is_int(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER;
}

static int fail(char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "%s", what);
    return EKV_EPROTO;
}

void ekv_slotmap_init(struct ekv_slotmap *m)
{
    memset(m, 0, sizeof(*m));
}

/* A host as a reply may name one: printable ASCII without spaces. A NUL in it would cut the
 * copy short and leave another host (or none) to connect to. */
static bool host_chars(const char *host, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)host[i] <= ' ' || (unsigned char)host[i] >= 0x7f)
            return false;
    return true;
}

/* The node at @host:@port (@hostlen bytes; empty or "?": @from), added if new: its index + 1,
 * or 0 when the map is full or the address does not fit. */
static unsigned node_index(struct ekv_slotmap *m, const char *host, size_t hostlen,
                           long long port, const char *id, size_t idlen, const char *from)
{
    struct ekv_cluster_node *n;

    if ((hostlen == 1 && host[0] == '?') || hostlen == 0) {
        host = from;
        hostlen = strlen(from);
    }
    if (hostlen >= sizeof(m->nodes[0].host) || !host_chars(host, hostlen) || port <= 0 ||
        port > 65535 || idlen >= sizeof(m->nodes[0].id) || memchr(id, '\0', idlen) != NULL)
        return 0;
    for (unsigned i = 0; i < m->nnodes; i++) {
        n = &m->nodes[i];
        if (n->port == port && strlen(n->host) == hostlen && memcmp(n->host, host, hostlen) == 0)
            return i + 1;
    }
    if (m->nnodes == EKV_CLUSTER_MAX_NODES)
        return 0;
    n = &m->nodes[m->nnodes++];
    memcpy(n->host, host, hostlen);
    n->host[hostlen] = '\0';
    n->port = (uint16_t)port;
    memcpy(n->id, id, idlen);
    n->id[idlen] = '\0';
    return m->nnodes;
}

/* Slots @lo..@hi to node @idx (1-based). */
static int assign(struct ekv_slotmap *m, long long lo, long long hi, unsigned idx, char *why,
                  size_t whylen)
{
    if (lo < 0 || hi < lo || hi >= (long long)EKV_ORIGIN_SLOTS)
        return fail(why, whylen, "a slot range out of 0..16383");
    for (long long s = lo; s <= hi; s++) {
        if (m->owner[s] == 0)
            m->served++;
        m->owner[s] = (uint16_t)idx;
    }
    return EKV_OK;
}

/* The value of field @name in the flat [name, value, ...] array @r, or NULL. */
static const redisReply *field(const redisReply *r, const char *name)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (text_is(r->element[i], name))
            return r->element[i + 1];
    return NULL;
}

int ekv_slotmap_from_shards(struct ekv_slotmap *m, const struct redisReply *r, const char *from,
                            char *why, size_t whylen)
{
    ekv_slotmap_init(m);
    if (r->type != REDIS_REPLY_ARRAY)
        return fail(why, whylen, "CLUSTER SHARDS: not an array");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *shard = r->element[i], *slots, *nodes;
        unsigned idx = 0;

        if (shard->type != REDIS_REPLY_ARRAY || shard->elements % 2 != 0)
            return fail(why, whylen, "CLUSTER SHARDS: a shard is not a map");
        slots = field(shard, "slots");
        nodes = field(shard, "nodes");
        if (slots == NULL || nodes == NULL || slots->type != REDIS_REPLY_ARRAY ||
            slots->elements % 2 != 0 || nodes->type != REDIS_REPLY_ARRAY)
            return fail(why, whylen, "CLUSTER SHARDS: a shard without slots or nodes");
        for (size_t j = 0; j < nodes->elements; j++) {
            const redisReply *n = nodes->element[j], *id, *port, *ip, *ep, *role, *health;
            if (n->type != REDIS_REPLY_ARRAY || n->elements % 2 != 0)
                return fail(why, whylen, "CLUSTER SHARDS: a node is not a map");
            id = field(n, "id");
            port = field(n, "port");
            ip = field(n, "ip");
            ep = field(n, "endpoint");
            role = field(n, "role");
            health = field(n, "health");
            if (!is_text(id) || !is_text(role) || (ep != NULL && !is_text(ep)) ||
                (ip != NULL && !is_text(ip)) || (health != NULL && !is_text(health)))
                return fail(why, whylen, "CLUSTER SHARDS: a node without id or role");
            if (!text_is(role, "master"))
                continue;
            if (health != NULL && !text_is(health, "online"))
                break; /* a failed master serves nothing: its slots stay unowned */
            if (!is_int(port)) /* a TLS-only node has no "port", only "tls-port" */
                port = field(n, "tls-port");
            if (!is_int(port))
                return fail(why, whylen, "CLUSTER SHARDS: a master without a port");
            {
                const redisReply *addr = ep != NULL && ep->len > 0 ? ep : ip;
                idx = node_index(m, addr != NULL ? addr->str : "", addr != NULL ? addr->len : 0,
                                 port->integer, id->str, id->len, from);
            }
            if (idx == 0)
                return fail(why, whylen, "CLUSTER SHARDS: a master's address does not fit");
            break;
        }
        if (idx == 0)
            continue;
        for (size_t j = 0; j + 1 < slots->elements; j += 2) {
            if (!is_int(slots->element[j]) || !is_int(slots->element[j + 1]))
                return fail(why, whylen, "CLUSTER SHARDS: a slot bound is not an integer");
            if (assign(m, slots->element[j]->integer, slots->element[j + 1]->integer, idx, why,
                       whylen) != EKV_OK)
                return EKV_EPROTO;
        }
    }
    return EKV_OK;
}

int ekv_slotmap_from_slots(struct ekv_slotmap *m, const struct redisReply *r, const char *from,
                           char *why, size_t whylen)
{
    ekv_slotmap_init(m);
    if (r->type != REDIS_REPLY_ARRAY)
        return fail(why, whylen, "CLUSTER SLOTS: not an array");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *master;
        const char *id = "";
        size_t idlen = 0;
        unsigned idx;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !is_int(e->element[0]) ||
            !is_int(e->element[1]))
            return fail(why, whylen, "CLUSTER SLOTS: an entry is not [start, end, master...]");
        master = e->element[2];
        if (master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
            !is_text(master->element[0]) || !is_int(master->element[1]))
            return fail(why, whylen, "CLUSTER SLOTS: a master is not [host, port, ...]");
        if (master->elements >= 3 && is_text(master->element[2])) {
            id = master->element[2]->str;
            idlen = master->element[2]->len;
        }
        idx = node_index(m, master->element[0]->str, master->element[0]->len,
                         master->element[1]->integer, id, idlen, from);
        if (idx == 0)
            return fail(why, whylen, "CLUSTER SLOTS: a master's address does not fit");
        if (assign(m, e->element[0]->integer, e->element[1]->integer, idx, why, whylen) != EKV_OK)
            return EKV_EPROTO;
    }
    return EKV_OK;
}

const struct ekv_cluster_node *ekv_slotmap_owner(const struct ekv_slotmap *m, unsigned slot)
{
    unsigned idx = slot < EKV_ORIGIN_SLOTS ? m->owner[slot] : 0;

    return idx != 0 ? &m->nodes[idx - 1] : NULL;
}

/* "KIND SLOT HOST:PORT" after the kind's word. */
static int parse_target(const char *p, const char *end, const char *from, struct ekv_redirect *rd)
{
    const char *sp, *colon;
    uint64_t slot, port;
    size_t hostlen;

    while (p < end && *p == ' ')
        p++;
    sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL || ekv_parse_u64(p, (size_t)(sp - p), &slot) != EKV_OK ||
        slot >= EKV_ORIGIN_SLOTS)
        return EKV_EPROTO;
    p = sp + 1;
    for (colon = end; colon > p && colon[-1] != ':'; colon--)
        ;
    if (colon == p || ekv_parse_u64(colon, (size_t)(end - colon), &port) != EKV_OK || port == 0 ||
        port > 65535)
        return EKV_EPROTO;
    hostlen = (size_t)(colon - 1 - p);
    if (hostlen == 0) { /* "-MOVED 3999 :6380": the host that answered */
        p = from;
        hostlen = strlen(from);
    }
    if (hostlen >= sizeof(rd->host) || !host_chars(p, hostlen))
        return EKV_EPROTO;
    memcpy(rd->host, p, hostlen);
    rd->host[hostlen] = '\0';
    rd->slot = (unsigned)slot;
    rd->port = (uint16_t)port;
    return EKV_OK;
}

int ekv_redirect_parse(const char *err, size_t len, const char *from, struct ekv_redirect *rd)
{
    const char *end = err + len;
    static const struct {
        const char *word;
        enum ekv_redirect_kind kind;
    } kinds[] = {{"MOVED", EKV_REDIRECT_MOVED},
                 {"ASK", EKV_REDIRECT_ASK},
                 {"TRYAGAIN", EKV_REDIRECT_TRYAGAIN},
                 {"CLUSTERDOWN", EKV_REDIRECT_CLUSTERDOWN}};

    memset(rd, 0, sizeof(*rd));
    while (end > err && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    for (size_t i = 0; i < EKV_ARRAY_LEN(kinds); i++) {
        size_t n = strlen(kinds[i].word);
        if ((size_t)(end - err) < n || memcmp(err, kinds[i].word, n) != 0 ||
            ((size_t)(end - err) > n && err[n] != ' '))
            continue; /* another word, or a longer one */
        if (kinds[i].kind == EKV_REDIRECT_MOVED || kinds[i].kind == EKV_REDIRECT_ASK) {
            if ((size_t)(end - err) == n || parse_target(err + n + 1, end, from, rd) != EKV_OK)
                return EKV_EPROTO;
        }
        rd->kind = kinds[i].kind;
        return EKV_OK;
    }
    return EKV_OK; /* not a redirection: rd->kind is EKV_REDIRECT_NONE */
}
