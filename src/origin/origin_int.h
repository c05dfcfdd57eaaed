/* origin_int.h - the origin module's private interface: RESP formatting and the refcounted
 * command buffers that origin.c hands to the link (link.c) without copying. */
#ifndef EDGEKV_ORIGIN_INT_H
#define EDGEKV_ORIGIN_INT_H

#include "edgekv/common.h"

struct ekv_origin_link;
struct ekv_origin_link_hooks;
struct ekv_origin_tls;
struct ekv_sentinel;
struct ekv_conf_origin;
struct event_base;
struct ssl_st;

/** Redis Cluster's slots. */
#define EKV_ORIGIN_SLOTS 16384u


/* ---- Redis Cluster (cluster.c): the slot map and redirections, decoded */

struct redisReply;

/** The most masters a slot map holds. */
#define EKV_CLUSTER_MAX_NODES 256

struct ekv_cluster_node {
    char host[256]; /* the preferred endpoint (an address or a name) */
    uint16_t port;
    char id[41];    /* the node id ("" when CLUSTER SLOTS did not say) */
};

/** Which master serves each slot. */
struct ekv_slotmap {
    unsigned nnodes;
    struct ekv_cluster_node nodes[EKV_CLUSTER_MAX_NODES];
    uint16_t owner[EKV_ORIGIN_SLOTS]; /* index into nodes + 1; 0: no master serves it */
    unsigned served;                  /* slots with an owner */
};

/** An empty map (no slot served). */
void ekv_slotmap_init(struct ekv_slotmap *m);
/** Fills @m from a CLUSTER SHARDS reply @r (masters that are online), asked of the node at
 * @from (a node announced without an endpoint is there). EKV_OK, or EKV_EPROTO with a reason
 * in @why for a reply of another shape (@m is then not to be used). */
EKV_NODISCARD int ekv_slotmap_from_shards(struct ekv_slotmap *m, const struct redisReply *r,
                                          const char *from, char *why, size_t whylen);
/** The same from a CLUSTER SLOTS reply (Redis before 7.0). */
EKV_NODISCARD int ekv_slotmap_from_slots(struct ekv_slotmap *m, const struct redisReply *r,
                                         const char *from, char *why, size_t whylen);
/** The master serving @slot, or NULL. */
const struct ekv_cluster_node *ekv_slotmap_owner(const struct ekv_slotmap *m, unsigned slot);

enum ekv_redirect_kind {
    EKV_REDIRECT_NONE = 0,   /* an error that is no redirection */
    EKV_REDIRECT_MOVED,      /* the slot has a new owner: update the map, resend there */
    EKV_REDIRECT_ASK,        /* this once: ASKING then the command on the target */
    EKV_REDIRECT_TRYAGAIN,   /* a multi-key command during a migration: retry later */
    EKV_REDIRECT_CLUSTERDOWN /* the cluster cannot serve the slot now: retry later */
};

struct ekv_redirect {
    enum ekv_redirect_kind kind;
    unsigned slot;  /* MOVED, ASK */
    char host[256]; /* MOVED, ASK: the target ("" in the reply: the node that answered) */
    uint16_t port;
};

/** Reads the error reply text @err (@len bytes, without the '-') of a node at @from. EKV_OK
 * with rd->kind (NONE for any other error), or EKV_EPROTO for a MOVED or ASK that does not
 * parse. */
EKV_NODISCARD int ekv_redirect_parse(const char *err, size_t len, const char *from,
                                     struct ekv_redirect *rd);

/** The most bytes ekv_resp_write() writes for these arguments (lengths in @argvlen, or strlen
 * of each when NULL). */
size_t ekv_resp_size(int argc, const char *const *argv, const size_t *argvlen);
/** One RESP array of @argc bulk strings at @p (room for ekv_resp_size() bytes). Returns the end.
 * No printf: every origin request is formatted here. */
char *ekv_resp_write(char *p, int argc, const char *const *argv, const size_t *argvlen);

/** A formatted command, reference counted: the op that may resend it (a script, for NOSCRIPT)
 * holds one reference, the output buffer another while the bytes wait to be written. */
struct ekv_origin_buf;
/** A buffer of @cap bytes, length 0, one reference. Never NULL. */
struct ekv_origin_buf *ekv_origin_buf_new(size_t cap);
char *ekv_origin_buf_data(struct ekv_origin_buf *b);
void ekv_origin_buf_set_len(struct ekv_origin_buf *b, size_t len);
size_t ekv_origin_buf_len(const struct ekv_origin_buf *b);
/** Drops one reference; the last one frees. NULL is a no-op. */
void ekv_origin_buf_unref(struct ekv_origin_buf *b);

/** Queues @b's bytes on the link (connected or connecting): copied when small, else by
 * reference (the link takes a reference of its own). */
void ekv_origin_link_send_buf(struct ekv_origin_link *l, struct ekv_origin_buf *b);
/** Contiguous room for @max bytes at the end of the link's output; pass what was written to
 * ekv_origin_link_commit() before anything else is sent. */
char *ekv_origin_link_reserve(struct ekv_origin_link *l, size_t max);
void ekv_origin_link_commit(struct ekv_origin_link *l, char *start, char *end);
/** Writes what is queued to the socket now (a plain connection that is connected), rather than
 * on the loop's next turn. A write error resets the link from the next loop turn. */
void ekv_origin_link_flush(struct ekv_origin_link *l);

struct redisReader;
/** A hiredis reply reader that builds the link's own reply objects (one allocation each, the
 * shared "+OK" and nil, arrays of at most 2^20 elements); free its replies with
 * ekv_origin_reply_free(). NULL when out of memory. (The fuzz targets read RESP with it.) */
struct redisReader *ekv_origin_reader_new(void);

/** A link like ekv_origin_link_new()'s that does not connect until it is retargeted. */
struct ekv_origin_link *ekv_origin_link_new_idle(struct event_base *base,
                                                 const struct ekv_conf_origin *addr,
                                                 const struct ekv_origin_tls *tls,
                                                 uint64_t timeout_ms, const char *label,
                                                 const struct ekv_origin_link_hooks *hooks);
/** Points the link at @addr (borrowed): a connection to the old target is dropped (@why), and
 * the new one is tried soon, without the backoff earned against the old one. */
void ekv_origin_link_retarget(struct ekv_origin_link *l, const struct ekv_conf_origin *addr,
                              const char *why);
/** A followed master changed: the link's loop re-checks it soon. Any thread. */
void ekv_origin_link_kick(struct ekv_origin_link *l);
/** The links that follow @s (kicked on every change of its epoch). */
void ekv_sentinel_follow(struct ekv_sentinel *s, struct ekv_origin_link *l);
void ekv_sentinel_unfollow(struct ekv_sentinel *s, struct ekv_origin_link *l);

/** A new SSL for one connection to @host (the origin's address) under @t: SNI and the name
 * to verify set. NULL on failure. */
struct ssl_st *ekv_origin_tls_ssl_new(const struct ekv_origin_tls *t, const char *host);
/** Why the TLS connection @ssl failed ("tls: ..."), from its verification result or the
 * OpenSSL error @err (0: none). */
void ekv_origin_tls_why(struct ssl_st *ssl, unsigned long err, char *why, size_t whylen);

#endif /* EDGEKV_ORIGIN_INT_H */
