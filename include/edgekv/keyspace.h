/* keyspace.h - edgekv's data in Redis, as typed operations. The one module that knows the key
 * layout (namespace, hash tags, tracking prefixes, cache key <-> Redis key), the Lua scripts and
 * their arguments, and how to decode every reply: its callbacks get C structs and a domain
 * outcome, never a Redis reply, and the scripts answer with domain codes, never HTTP statuses.
 * It sits on one worker's origin (origin.h); the API handlers call it instead of speaking RESP.
 *
 * The asynchronous contract of every operation: arguments are borrowed for the call (the origin
 * copies what it sends); the callback runs exactly once, on the origin's loop thread, never
 * before the call has returned, unless ekv_keyspace_cancel() came first; every view it is given
 * (strings, arrays, structs) is borrowed and valid only until the callback returns, so copy what
 * you keep. Loop affinity: a keyspace with an origin is used on that origin's loop thread only;
 * the layout functions (cache keys, tracking prefixes) only read immutable state, from any
 * thread. */
#ifndef EDGEKV_KEYSPACE_H
#define EDGEKV_KEYSPACE_H

#include "edgekv/common.h"

struct ekv_origin;
struct ekv_origin_script;
struct ekv_keyspace;
struct ekv_keyspace_op;

/** What an operation came to. The API maps each to one HTTP answer. */
enum ekv_ks_outcome {
    EKV_KS_OK = 0,
    EKV_KS_NO_STORE,            /* no such store */
    EKV_KS_NO_KEY,              /* no such item (the store exists) */
    EKV_KS_NO_NAME,             /* resolve: no link of the service and no store of that name */
    EKV_KS_NO_LINK,             /* no such resource link */
    EKV_KS_NO_TARGET,           /* link create: the store to link to does not exist */
    EKV_KS_PRECONDITION_FAILED, /* if-generation-match did not match, or add found an item */
    EKV_KS_TOO_LARGE,           /* append/prepend: the result would exceed the largest value */
    EKV_KS_NAME_TAKEN,          /* another store has that name */
    EKV_KS_LINK_NAME_TAKEN,     /* another link of the service has that name */
    EKV_KS_LIMIT,               /* store create: max-stores reached */
    EKV_KS_NOT_EMPTY,           /* store delete: the store still holds items */
    EKV_KS_ID_TAKEN,            /* store create: the new id is in use (retry with another) */
    EKV_KS_ORIGIN_DOWN,         /* not connected, or the connection was lost */
    EKV_KS_ORIGIN_TIMEOUT,      /* no answer within the origin's deadline */
    EKV_KS_ORIGIN_ERROR,        /* Redis answered with an error reply (see the result) */
    EKV_KS_ORIGIN_PROTOCOL,     /* a reply of the wrong type or shape, or data no edgekv wrote */
    EKV_KS_OUTCOME_COUNT
};

/** An operation's outcome, and for the two origin faults what is known about them. */
struct ekv_ks_result {
    enum ekv_ks_outcome outcome;
    const char *error; /* EKV_KS_ORIGIN_ERROR: Redis's error text (borrowed, @error_len
                          bytes, not NUL-terminated); otherwise NULL */
    size_t error_len;
    const char *malformed; /* EKV_KS_ORIGIN_PROTOCOL: what is malformed, "item", "link" or
                              "store" (static), or NULL when it is the reply itself */
    unsigned shards;       /* item operations: the buckets of the store, once known; 0: not
                              known, and nothing was sent to the store's own slots */
};

/** A byte string borrowed from a reply (not NUL-terminated). */
struct ekv_ks_str {
    const char *p;
    size_t len;
};

/* ---------------------------------------------------------------- the module */

/** The origin's operations, for the observer (the `op` label of the origin metrics). */
enum ekv_ks_op {
    EKV_KS_OP_GET = 0, /* item reads (both of their round trips) */
    EKV_KS_OP_PUT,     /* item writes, batch lines included */
    EKV_KS_OP_DELETE,  /* item deletes */
    EKV_KS_OP_LIST,    /* key listings */
    EKV_KS_OP_STORE,   /* the store registry, and every single plain command (store describe,
                          link reads, a batch's store check) */
    EKV_KS_OP_LINK,    /* resource link changes */
    EKV_KS_OP_RESOLVE, /* /kv/{name} resolutions */
    EKV_KS_OP_COUNT
};

/** The origin connection came up (true) or went down (false). */
typedef void ekv_keyspace_state_cb(bool connected, void *arg);
/** Every answered operation: which, how the origin did (EKV_KS_OK: Redis answered, without an
 * error reply; EKV_KS_ORIGIN_DOWN, _TIMEOUT or _ERROR) and how long it took. Runs before the
 * operation's own callback, not at all for a canceled one. */
typedef void ekv_keyspace_observe_cb(enum ekv_ks_op op, enum ekv_ks_outcome outcome,
                                     uint64_t latency_us, void *arg);

struct ekv_keyspace_hooks {
    ekv_keyspace_state_cb *on_state;     /* NULL: not called */
    ekv_keyspace_observe_cb *on_observe; /* NULL: not called */
    void *arg;
};

struct ekv_keyspace_opts {
    const char *ns;            /* the namespace, e.g. "edgekv:" (copied) */
    struct ekv_origin *origin; /* borrowed, must outlive the keyspace; NULL: a keyspace for the
                                  layout functions only (the invalidation link's wiring) */
    struct ekv_keyspace *shared; /* NULL, or a keyspace (the workers': the server's layout one)
                                    whose table of learned store buckets this one shares, so
                                    that what one worker learned no other asks Redis again;
                                    borrowed, must outlive this one */
};

/**
 * A keyspace over @opts->origin, whose state and observer callbacks it takes over (see
 * ekv_keyspace_set_hooks). The origin must have been created with the table of
 * ekv_keyspace_scripts(). Never NULL (aborts on OOM, or if edgekv was built without one of its
 * scripts).
 */
struct ekv_keyspace *ekv_keyspace_new(const struct ekv_keyspace_opts *opts);
/** Frees the keyspace. Operations still pending must have been answered (free the origin first)
 * or canceled. NULL is a no-op. */
void ekv_keyspace_free(struct ekv_keyspace *ks);
/** Registers @hooks (copied; NULL removes them). On the loop thread. */
void ekv_keyspace_set_hooks(struct ekv_keyspace *ks, const struct ekv_keyspace_hooks *hooks);
/** True while the origin connection is up. Any thread (/readyz, /metrics). */
bool ekv_keyspace_connected(const struct ekv_keyspace *ks);

/** The command every connection to a single Redis runs first (the origin's opts.setup): it
 * moves the store registry of the first layout under its own hash tag, once, atomically
 * (layout_upgrade.lua), so that no registry command ever sees the old layout. @argc set;
 * free with ekv_keyspace_setup_free() once the origin has copied it. */
const char **ekv_keyspace_setup(const char *ns, int *argc);
void ekv_keyspace_setup_free(const char **argv);

/**
 * The Lua scripts of the keyspace, as the table for ekv_origin_opts (each worker's origin writes
 * the SHA-1s into its own copy). A new array of *@n entries whose strings are static; free it
 * with ekv_free() after the origin.
 */
struct ekv_origin_script *ekv_keyspace_scripts(size_t *n);

/** Detaches the caller from @op: its callback will not run. The origin still completes the
 * command it has sent (or fails it) and frees it. Not from inside @op's own callback, and not
 * after it has run (the handle is then gone). */
void ekv_keyspace_cancel(struct ekv_keyspace_op *op);

/* ---------------------------------------------------------------- layout */

/* A store spreads over its "shards": 1..EKV_KS_SHARDS_MAX buckets, fixed when it is created
 * (store-shards) and recorded with it. An item, its index entry and its generation counter share
 * the hash tag of the item's bucket: {<sid>:<b>}, b = CRC16(key) mod shards; a store of one bucket
 * (every store made before buckets) keeps the tag {<sid>}. */
#define EKV_KS_SHARDS_MAX 1024
/* The longest store id the keyspace takes (the API takes no longer ids). */
#define EKV_KS_SID_MAX 64

/** The bytes a cache key adds to a store id and an item key, at most: "{", ":1023", "}:". */
#define EKV_KS_CACHE_KEY_OVERHEAD 8

/** The bucket of item @key in a store of @shards buckets (0 for one). */
unsigned ekv_keyspace_bucket(const char *key, size_t key_len, unsigned shards);

/**
 * The edge cache's key of item @key of store @sid of @shards buckets, written to @out (which
 * holds @sid_len + @key_len + EKV_KS_CACHE_KEY_OVERHEAD bytes; not NUL-terminated): its
 * bucket's tag, ":" and the key. Returns its length. The hit path calls it: no allocation.
 */
size_t ekv_keyspace_cache_key(char *out, const char *sid, size_t sid_len, unsigned shards,
                              const char *key, size_t key_len);

/** The Redis Cluster slot of item @key of store @sid of @shards buckets. */
unsigned ekv_keyspace_item_slot(const char *sid, size_t sid_len, unsigned shards, const char *key,
                                size_t key_len);

/** The slot of the store registry and the resource links (their hash tag, {registry}). */
unsigned ekv_keyspace_registry_slot(void);

/** How many buckets store @sid has, as far as this keyspace knows: learned from its record by
 * any operation on it (ekv_keyspace_store_check() learns it and nothing else), kept since it
 * never changes (found in the shared table too, see opts.shared); 0 while unknown. On the loop
 * thread. */
unsigned ekv_keyspace_store_shards(struct ekv_keyspace *ks, const char *sid, size_t sid_len);

/** The Redis key prefixes the invalidation link tracks (they do not overlap): @*n strings
 * borrowed from @ks, valid until it is freed. */
const char *const *ekv_keyspace_tracking_prefixes(const struct ekv_keyspace *ks, size_t *n);

/** The invalidation link's heartbeat channel, "<ns>heartbeat" (borrowed from @ks). */
const char *ekv_keyspace_heartbeat_channel(const struct ekv_keyspace *ks);

/** What a tracked Redis key holds, for the invalidation link. */
enum ekv_ks_tracked {
    EKV_KS_TRACKED_ITEM = 0, /* an item: drop its cache key */
    EKV_KS_TRACKED_NAMES,    /* the store registry or links: /kv/{name} resolutions may have
                                changed */
};

/**
 * Classifies the tracked Redis key @rkey (@len bytes): an item, whose cache key is then a view
 * into @rkey in *@ckey and *@ckey_len, or anything else under the tracking prefixes.
 */
enum ekv_ks_tracked ekv_keyspace_cache_key_of_redis_key(const struct ekv_keyspace *ks,
                                                        const char *rkey, size_t len,
                                                        const char **ckey, size_t *ckey_len);

/* ---------------------------------------------------------------- items */

/** An item as read. */
struct ekv_ks_item {
    struct ekv_ks_str value; /* "" when the item has no value field (a foreign writer's) */
    struct ekv_ks_str meta;  /* "" when it has no metadata */
    uint64_t generation;
    int64_t last_modified_ms; /* wall clock; 0 when the item has no such field */
    int64_t ttl_ms;           /* the remaining TTL when it was read (counted from the read's
                                 send): >= 0; -1: none; -2: the item did not exist yet when its
                                 TTL was read (written in between: answer it, never cache it) */
};

/** An item read: EKV_KS_OK with @item, EKV_KS_NO_KEY, EKV_KS_NO_STORE or an origin fault. */
typedef void ekv_keyspace_item_cb(const struct ekv_ks_result *res, const struct ekv_ks_item *item,
                                  void *arg);

/**
 * Reads item @key of store @sid in one round trip (and a second one only when there is no such
 * item: does the store exist?). Never NULL.
 */
struct ekv_keyspace_op *ekv_keyspace_item_get(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *key, size_t key_len,
                                              ekv_keyspace_item_cb *cb, void *arg);

enum ekv_ks_put_mode {
    EKV_KS_PUT_SET = 0,
    EKV_KS_PUT_ADD,     /* only if there is no such item */
    EKV_KS_PUT_APPEND,  /* after the current value (the value alone if there is none) */
    EKV_KS_PUT_PREPEND, /* before it */
};

/** A whole-item write. */
struct ekv_ks_put {
    const char *value;
    size_t value_len;
    const char *meta; /* NULL or empty: no metadata */
    size_t meta_len;
    uint64_t ttl_ms; /* 0: no expiry */
    enum ekv_ks_put_mode mode;
    const uint64_t *igm; /* if-generation-match (0: only if there is no such item); NULL: none */
    uint64_t value_max;  /* append/prepend: the largest resulting value */
};

/** What a write produced. */
struct ekv_ks_written {
    uint64_t generation;
    int64_t last_modified_ms;
};

/** An item write: EKV_KS_OK with @w, EKV_KS_NO_STORE, _PRECONDITION_FAILED, _TOO_LARGE or an
 * origin fault. */
typedef void ekv_keyspace_put_cb(const struct ekv_ks_result *res, const struct ekv_ks_written *w,
                                 void *arg);

/** Writes item @key of store @sid atomically, with a new generation. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_item_put(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *key, size_t key_len,
                                              const struct ekv_ks_put *put, ekv_keyspace_put_cb *cb,
                                              void *arg);

/** An operation with nothing to report but its outcome. */
typedef void ekv_keyspace_done_cb(const struct ekv_ks_result *res, void *arg);

/**
 * Deletes item @key of store @sid (with @igm, NULL: none). EKV_KS_OK, EKV_KS_NO_STORE,
 * EKV_KS_NO_KEY (unless @force), EKV_KS_PRECONDITION_FAILED or an origin fault. Never NULL.
 */
struct ekv_keyspace_op *ekv_keyspace_item_delete(struct ekv_keyspace *ks, const char *sid,
                                                 size_t sid_len, const char *key, size_t key_len,
                                                 const uint64_t *igm, bool force,
                                                 ekv_keyspace_done_cb *cb, void *arg);

/** One page of key names, in bytewise order. */
struct ekv_ks_page {
    const struct ekv_ks_str *names;
    size_t count;
    bool more; /* names follow the last one */
};

/** A key listing: EKV_KS_OK with @page, EKV_KS_NO_STORE or an origin fault. */
typedef void ekv_keyspace_list_cb(const struct ekv_ks_result *res, const struct ekv_ks_page *page,
                                  void *arg);

/**
 * Lists at most @limit (1..1000) names of store @sid that start with @prefix (@prefix_len 0:
 * all) and come after @after (@after_len 0: from the first). Names whose item has expired or
 * gone are skipped (and pruned). Never NULL.
 */
struct ekv_keyspace_op *ekv_keyspace_key_list(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *prefix, size_t prefix_len,
                                              const char *after, size_t after_len, unsigned limit,
                                              ekv_keyspace_list_cb *cb, void *arg);

/* ---------------------------------------------------------------- stores */

/** A store record; the times are the strings given when it was created or renamed. */
struct ekv_ks_store {
    struct ekv_ks_str id, name, created_at, updated_at;
};

/** A store description: EKV_KS_OK with @store, EKV_KS_NO_STORE or an origin fault. */
typedef void ekv_keyspace_store_cb(const struct ekv_ks_result *res,
                                   const struct ekv_ks_store *store, void *arg);
/** Every store, unsorted: EKV_KS_OK with @count records at @stores (which the callback may
 * reorder), or an origin fault. */
typedef void ekv_keyspace_stores_cb(const struct ekv_ks_result *res, struct ekv_ks_store *stores,
                                    size_t count, void *arg);

/**
 * Registers store @sid named @name (both checked by the caller) of @shards buckets
 * (1..EKV_KS_SHARDS_MAX), created and updated at @now, unless @max_stores exist. EKV_KS_OK,
 * EKV_KS_NAME_TAKEN, EKV_KS_LIMIT, EKV_KS_ID_TAKEN or an origin fault. Never NULL.
 */
struct ekv_keyspace_op *ekv_keyspace_store_create(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, const char *name, size_t name_len,
                                                  const char *now, unsigned shards,
                                                  unsigned max_stores, ekv_keyspace_done_cb *cb,
                                                  void *arg);
/** Lists every store. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_store_list(struct ekv_keyspace *ks, ekv_keyspace_stores_cb *cb,
                                                void *arg);
/** Describes store @sid (missing times read as ""). Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_store_describe(struct ekv_keyspace *ks, const char *sid,
                                                    size_t sid_len, ekv_keyspace_store_cb *cb,
                                                    void *arg);
/** Renames store @sid to @name, updated at @now: EKV_KS_OK, EKV_KS_NO_STORE,
 * EKV_KS_NAME_TAKEN or an origin fault. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_store_rename(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, const char *name, size_t name_len,
                                                  const char *now, ekv_keyspace_done_cb *cb,
                                                  void *arg);
/** Deletes the empty store @sid: EKV_KS_OK, EKV_KS_NO_STORE, EKV_KS_NOT_EMPTY or an origin
 * fault. Never NULL. A store of several buckets is deleted in steps (every bucket checked,
 * sealed against writes, the record removed, the buckets dropped); a write that lands in a
 * bucket between the check and its seal makes the delete answer EKV_KS_NOT_EMPTY and unseal
 * the others, so while that race lasts a write to another bucket may be refused as
 * EKV_KS_NO_STORE. */
struct ekv_keyspace_op *ekv_keyspace_store_delete(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, ekv_keyspace_done_cb *cb,
                                                  void *arg);
/** Whether store @sid exists (its record does), learning its buckets
 * (ekv_keyspace_store_shards): EKV_KS_OK, EKV_KS_NO_STORE or an origin fault. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_store_check(struct ekv_keyspace *ks, const char *sid,
                                                 size_t sid_len, ekv_keyspace_done_cb *cb,
                                                 void *arg);

/** A resolution: EKV_KS_OK with the store id @sid (@sid_len bytes, not checked), EKV_KS_NO_NAME
 * or an origin fault. */
typedef void ekv_keyspace_resolve_cb(const struct ekv_ks_result *res, const char *sid,
                                     size_t sid_len, void *arg);

/** The store behind /kv/@name: the link of that name of @service (NULL or "": none), else the
 * store of that name. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_resolve(struct ekv_keyspace *ks, const char *name,
                                             size_t name_len, const char *service,
                                             ekv_keyspace_resolve_cb *cb, void *arg);

/* ---------------------------------------------------------------- resource links */

/** A resource link (service -> store) as stored. */
struct ekv_ks_link {
    struct ekv_ks_str id, name, resource_id, created_at, updated_at;
};

/** A link operation: EKV_KS_OK with @link (NULL after a delete), EKV_KS_NO_LINK,
 * EKV_KS_LINK_NAME_TAKEN, EKV_KS_NO_TARGET (create) or an origin fault. */
typedef void ekv_keyspace_link_cb(const struct ekv_ks_result *res, const struct ekv_ks_link *link,
                                  void *arg);
/** Every link of a service: EKV_KS_OK with @count links at @links (stored links that are not
 * well formed are left out), or an origin fault. */
typedef void ekv_keyspace_links_cb(const struct ekv_ks_result *res, const struct ekv_ks_link *links,
                                   size_t count, void *arg);

/** A new link. */
struct ekv_ks_link_new {
    const char *id;          /* the new link's id */
    const char *name;        /* "" : the store's name */
    const char *resource_id; /* the store */
    const char *version;     /* the service version, decimal */
    const char *now;         /* created_at and updated_at */
};

/** Lists the links of @service (NUL-terminated, like every string argument below without a
 * length). Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_link_list(struct ekv_keyspace *ks, const char *service,
                                               ekv_keyspace_links_cb *cb, void *arg);
/** Reads link @id (@id_len bytes) of @service. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_link_get(struct ekv_keyspace *ks, const char *service,
                                              const char *id, size_t id_len,
                                              ekv_keyspace_link_cb *cb, void *arg);
/** Creates the link @l of @service, its name unique within the service. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_link_create(struct ekv_keyspace *ks, const char *service,
                                                 const struct ekv_ks_link_new *l,
                                                 ekv_keyspace_link_cb *cb, void *arg);
/** Renames link @id of @service to @name ("": unchanged), updated at @now. Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_link_update(struct ekv_keyspace *ks, const char *service,
                                                 const char *id, size_t id_len, const char *name,
                                                 const char *now, ekv_keyspace_link_cb *cb,
                                                 void *arg);
/** Deletes link @id of @service (the callback's link is NULL). Never NULL. */
struct ekv_keyspace_op *ekv_keyspace_link_delete(struct ekv_keyspace *ks, const char *service,
                                                 const char *id, size_t id_len,
                                                 ekv_keyspace_link_cb *cb, void *arg);

#endif /* EDGEKV_KEYSPACE_H */
