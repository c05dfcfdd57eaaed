/* keyspace_int.h - the keyspace module's private interface: the domain codes its scripts answer
 * with, the script table, the keyspace and op structures shared by keyspace.c and ops.c, Redis
 * key building, and the reply decoders of decode.c (unit tested with malformed replies by
 * tests/unit/check_keyspace.c). */
#ifndef EDGEKV_KEYSPACE_INT_H
#define EDGEKV_KEYSPACE_INT_H

#include <pthread.h>

#include "edgekv/keyspace.h"

struct redisReply;
struct json_t;
struct ekv_origin_op;

/*
 * The domain codes of the scripts' replies: the first element of every reply of the scripts that
 * answer {code, ...}. This is the one list: each script names the codes it uses on its first
 * code line (`local OK, NO_STORE = 0, 1`), and check_keyspace checks those numbers against this
 * enum. Never HTTP statuses: what a code means over HTTP is the API's business.
 */
enum ekv_ks_code {
    EKV_KS_CODE_OK = 0,
    EKV_KS_CODE_NO_STORE = 1,
    EKV_KS_CODE_NO_KEY = 2,
    EKV_KS_CODE_PRECONDITION_FAILED = 3,
    EKV_KS_CODE_TOO_LARGE = 4,
    EKV_KS_CODE_NAME_TAKEN = 5,
    EKV_KS_CODE_LIMIT = 6,
    EKV_KS_CODE_NOT_EMPTY = 7,
    EKV_KS_CODE_ID_TAKEN = 8,
    EKV_KS_CODE_NO_LINK = 9,
    EKV_KS_CODE_COUNT
};

/** The names the scripts give the codes ("OK", "NO_STORE"...), in the order of the enum. */
extern const char *const ekv_ks_code_names[EKV_KS_CODE_COUNT];

/** The scripts, by job: src/keyspace/lua/<name>.lua. Item reads are no script (a pipeline of
 * plain commands). */
enum ekv_ks_script {
    EKV_KS_SCRIPT_ITEM_PUT = 0,
    EKV_KS_SCRIPT_ITEM_DELETE,
    EKV_KS_SCRIPT_KEY_LIST,
    EKV_KS_SCRIPT_STORE_CREATE,
    EKV_KS_SCRIPT_STORE_LIST,
    EKV_KS_SCRIPT_STORE_RENAME,
    EKV_KS_SCRIPT_STORE_DELETE,
    EKV_KS_SCRIPT_RESOLVE,
    EKV_KS_SCRIPT_LINK_CREATE,
    EKV_KS_SCRIPT_LINK_UPDATE,
    EKV_KS_SCRIPT_LINK_DELETE,
    EKV_KS_SCRIPT_STORE_BUCKET,
    EKV_KS_SCRIPT_LAYOUT_UPGRADE,
    EKV_KS_SCRIPT_COUNT
};

/** The file names (without ".lua") of enum ekv_ks_script, in its order. */
extern const char *const ekv_ks_script_names[EKV_KS_SCRIPT_COUNT];

#define EKV_KS_NPREFIXES 3 /* tracked prefixes: items, the store registry, links */

/* A store id and its buckets, in the keyspace's table of what it learned (keyspace.c). */
struct ekv_ks_shards_ent {
    uint16_t shards; /* 0: a free entry */
    uint8_t len;
    char sid[EKV_KS_SID_MAX];
};

struct ekv_keyspace {
    struct ekv_origin *origin; /* NULL: layout only */
    char *ns;
    size_t ns_len;
    struct ekv_keyspace_hooks hooks;
    size_t script[EKV_KS_SCRIPT_COUNT]; /* each job's index in ekv_keyspace_scripts() */
    unsigned char *op_of_script;        /* enum ekv_ks_op of each index of that table */
    char *prefixes[EKV_KS_NPREFIXES];   /* "<ns>i:", "<ns>stores", "<ns>links:" */
    char *heartbeat;                    /* "<ns>heartbeat" */
    struct ekv_ks_shards_ent *shards;   /* open addressing, linear probing; NULL until used */
    size_t shards_cap, shards_n;        /* capacity (a power of 2), entries in use */
    struct ekv_keyspace *shared;        /* whose table this one shares (opts.shared), or NULL */
    pthread_mutex_t lock;               /* the table's, when it is shared */
};

/** Records that store @sid has @shards buckets (a store's never change). */
void ekv_ks_shards_learn(struct ekv_keyspace *ks, const char *sid, size_t sid_len,
                         unsigned shards);

/** The hash tag (without braces) of bucket @b of store @sid of @shards buckets, into @out (which
 * holds @sid_len + 5 bytes): "<sid>" for one bucket, else "<sid>:<b>". Returns its length. */
size_t ekv_ks_tag(char *out, const char *sid, size_t sid_len, unsigned shards, unsigned b);

/* The store registry and the resource links live under one hash tag of their own, so that every
 * registry script touches one slot of a Redis Cluster. */
#define EKV_KS_REG_STORES "stores:{registry}"  /* name -> sid */
#define EKV_KS_REG_RECORD "s:{registry}:"      /* + sid: the store record */
#define EKV_KS_REG_LINKS "links:{registry}:"   /* + service: its resource links */
#define EKV_KS_REG_LAYOUT "layout:{registry}"  /* "2" once the registry is there */

struct ekv_ks_part;
struct ekv_ks_args;
struct ekv_ks_bucket_page;

/* One operation in flight: what to decode, whom to call. Freed after its callback has run, or
 * by ekv_keyspace_cancel(). An operation on a store's buckets may first learn how many there
 * are (keeping its arguments in @defer meanwhile), and may send one command per bucket at once
 * (@parts, answered when all @pending are). */
struct ekv_keyspace_op {
    struct ekv_keyspace *ks;
    struct ekv_origin_op *inner; /* the origin command in flight (a single one) */
    unsigned shards;             /* the store's buckets, once known */
    int kind;                    /* which callback (ops.c, enum kind) */
    struct ekv_ks_args *defer;   /* an item op's arguments, kept while the buckets are learned */
    struct ekv_ks_part *parts;   /* one per bucket, NULL until a command per bucket is sent */
    unsigned pending;            /* parts still unanswered */
    void (*part_reply)(struct ekv_keyspace_op *op, unsigned b, int status,
                       const struct redisReply *r);
    void (*parts_done)(struct ekv_keyspace_op *op);
    void (*resume)(struct ekv_keyspace_op *op, const struct ekv_ks_args *a); /* after learning */
    struct ekv_ks_result first; /* a fan-out's first outcome other than EKV_KS_OK */
    struct ekv_ks_result undo;  /* the outcome answered once an undo is done */
    char error[128];            /* their error text (Redis's, cut), when EKV_KS_ORIGIN_ERROR */
    struct ekv_ks_bucket_page *pages; /* a listing's pages, one per bucket */
    unsigned limit;                   /* a listing's page size */
    unsigned per_bucket;              /* the names it asks each bucket for */
    unsigned bucket;                  /* an item op's bucket */
    enum ekv_ks_script script;   /* the script whose reply is awaited (EKV_KS_SCRIPT_COUNT: a
                                    plain command) */
    union {
        ekv_keyspace_item_cb *item;
        ekv_keyspace_put_cb *put;
        ekv_keyspace_done_cb *done;
        ekv_keyspace_list_cb *list;
        ekv_keyspace_store_cb *store;
        ekv_keyspace_stores_cb *stores;
        ekv_keyspace_resolve_cb *resolve;
        ekv_keyspace_link_cb *link;
        ekv_keyspace_links_cb *links;
    } cb;
    void *arg;
    size_t sid_len;
    char sid[]; /* the store id, for the ops that need it after the first reply */
};

/* ---------------------------------------------------------------- Redis keys (keyspace.c) */

#define EKV_KS_KEY_INLINE 1200 /* an item key of the longest id and key fits with a short ns */

/** A Redis key "<ns><kind><mid><sep><tail>", e.g. ("i:{", sid, "}:", key) for an item: in @k's
 * own buffer (no allocation) unless it is longer. NUL-terminated; release with
 * ekv_ks_key_clear(). */
struct ekv_ks_key {
    char *p;
    size_t len;
    char buf[EKV_KS_KEY_INLINE];
};

void ekv_ks_key_init(struct ekv_ks_key *k, const struct ekv_keyspace *ks, const char *kind,
                     const char *mid, size_t mid_len, const char *sep, const char *tail,
                     size_t tail_len);
void ekv_ks_key_clear(struct ekv_ks_key *k);

/* ---------------------------------------------------------------- decoders (decode.c)
 * Each takes a reply that is no origin fault (ekv_ks_fault() said so) and fills @res: the
 * outcome, or EKV_KS_ORIGIN_PROTOCOL for anything of the wrong type or shape. Views they fill
 * in point into the reply. */

/**
 * The origin faults: @status not EKV_OK (EKV_KS_ORIGIN_TIMEOUT or _DOWN), or a Redis error
 * reply (EKV_KS_ORIGIN_ERROR, its text a view into @r): for a pipeline (@pipeline) also one of
 * its commands' replies. Returns true with @res filled if there is one.
 */
bool ekv_ks_fault(int status, const struct redisReply *r, bool pipeline, struct ekv_ks_result *res);

/** The item read pipeline's reply {PTTL, HMGET v m g t}: EKV_KS_OK with @item, EKV_KS_NO_KEY
 * (no such item: whether the store exists is another question) or a malformed "item". */
void ekv_ks_decode_item(const struct redisReply *r, struct ekv_ks_result *res,
                        struct ekv_ks_item *item);
/** HMGET <ns>s:{registry}:<sid> name shards: EKV_KS_OK with the store's buckets in *@shards
 * (1 when the record has none: a store made before buckets), EKV_KS_NO_STORE, or a malformed
 * "store". */
void ekv_ks_decode_shards(const struct redisReply *r, struct ekv_ks_result *res,
                          unsigned *shards);
/** The reply of EXISTS <ns>g:{<tag>}: EKV_KS_OK, EKV_KS_NO_STORE. @pipeline: @r is the reply of a
 * pipeline of that one command. */
void ekv_ks_decode_exists(const struct redisReply *r, bool pipeline, struct ekv_ks_result *res);
/** item_put's reply: EKV_KS_OK with @w, or its other outcomes. */
void ekv_ks_decode_put(const struct redisReply *r, struct ekv_ks_result *res,
                       struct ekv_ks_written *w);
/** The reply {code} of @script (item_delete, store_create, store_rename, store_delete). */
void ekv_ks_decode_code(const struct redisReply *r, enum ekv_ks_script script,
                        struct ekv_ks_result *res);
/** key_list's reply: EKV_KS_OK with @page, whose names are a new array (ekv_free() it: *@names,
 * NULL when there are none), or EKV_KS_NO_STORE. */
void ekv_ks_decode_key_list(const struct redisReply *r, struct ekv_ks_result *res,
                            struct ekv_ks_page *page, struct ekv_ks_str **names);
/** store_list's reply: EKV_KS_OK with *@count records in a new array *@stores (ekv_free()). */
void ekv_ks_decode_store_list(const struct redisReply *r, struct ekv_ks_result *res,
                              struct ekv_ks_store **stores, size_t *count);
/** HMGET <ns>s:<sid> name created_at updated_at: EKV_KS_OK with @st (its id @sid) or
 * EKV_KS_NO_STORE. */
void ekv_ks_decode_store(const struct redisReply *r, const char *sid, size_t sid_len,
                         struct ekv_ks_result *res, struct ekv_ks_store *st);
/** resolve's reply: EKV_KS_OK with the store id in @sid, or EKV_KS_NO_NAME. */
void ekv_ks_decode_resolve(const struct redisReply *r, struct ekv_ks_result *res,
                           struct ekv_ks_str *sid);
/** A stored link (JSON text @j of @len bytes) into @l, whose views point into *@root (a new
 * reference the caller drops with json_decref()). False, with *@root NULL, if malformed. */
bool ekv_ks_decode_link_json(const char *j, size_t len, struct json_t **root,
                             struct ekv_ks_link *l);
/** A link reply of @script (link_create, link_update, link_delete; EKV_KS_SCRIPT_COUNT: HGET of
 * one link): EKV_KS_OK with @l (unless a delete: *@has_link false) kept alive by *@root (NULL or
 * a reference to drop), EKV_KS_NO_LINK, ... */
void ekv_ks_decode_link(const struct redisReply *r, enum ekv_ks_script script,
                        struct ekv_ks_result *res, struct ekv_ks_link *l, bool *has_link,
                        struct json_t **root);
/** HGETALL <ns>links:<service>: EKV_KS_OK with *@count links in a new array *@links (ekv_free()),
 * their views kept alive by *@root (NULL or a reference to drop). */
void ekv_ks_decode_links(const struct redisReply *r, struct ekv_ks_result *res,
                         struct ekv_ks_link **links, size_t *count, struct json_t **root);

#endif /* EDGEKV_KEYSPACE_INT_H */
