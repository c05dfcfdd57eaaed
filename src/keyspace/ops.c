/* ops.c - the keyspace's typed operations: each builds its Redis keys and arguments, sends one
 * script run, command or pipeline through the origin, and hands the decoded reply (decode.c) to
 * its caller. Keys are built on the stack: an operation allocates only its op. */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/keyspace.h"
#include "edgekv/origin.h"

#include "keyspace_int.h"

#define NUM_MAX 24 /* a decimal uint64 and its NUL */

/* A new op of @ks for @script (EKV_KS_SCRIPT_COUNT: plain commands), keeping @sid. */
static struct ekv_keyspace_op *op_new(struct ekv_keyspace *ks, enum ekv_ks_script script, void *arg,
                                      const char *sid, size_t sid_len)
{
    struct ekv_keyspace_op *op = ekv_malloc(sizeof(*op) + sid_len);

    assert(ks->origin != NULL); /* a layout-only keyspace runs no operation */
    op->ks = ks;
    op->inner = NULL;
    op->script = script;
    op->arg = arg;
    op->sid_len = sid_len;
    if (sid_len > 0)
        memcpy(op->sid, sid, sid_len);
    return op;
}

static void eval(struct ekv_keyspace_op *op, ekv_origin_cb *cb, int nkeys, int argc,
                 const char **argv, const size_t *argvlen)
{
    struct ekv_keyspace *ks = op->ks;

    op->inner =
        ekv_origin_eval(ks->origin, ks->script[op->script], cb, op, nkeys, argc, argv, argvlen);
}

static void cmd(struct ekv_keyspace_op *op, ekv_origin_cb *cb, int argc, const char **argv,
                const size_t *argvlen)
{
    op->inner = ekv_origin_cmd(op->ks->origin, cb, op, argc, argv, argvlen);
}

/* The reply {code} of a script with nothing else to say (op->script tells which). */
static void on_code(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, op->script, &res);
    op->cb.done(&res, op->arg);
    ekv_free(op);
}

/* ---------------------------------------------------------------- item reads */

static void item_done(struct ekv_keyspace_op *op, const struct ekv_ks_result *res,
                      const struct ekv_ks_item *item)
{
    op->cb.item(res, res->outcome == EKV_KS_OK ? item : NULL, op->arg);
    ekv_free(op);
}

static void on_store_exists(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    if (!ekv_ks_fault(status, r, true, &res)) {
        ekv_ks_decode_exists(r, true, &res);
        if (res.outcome == EKV_KS_OK) /* the store exists: no such key */
            res.outcome = EKV_KS_NO_KEY;
    }
    item_done(op, &res, NULL);
}

static void on_item(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_item item;
    struct ekv_ks_key gen;

    if (ekv_ks_fault(status, r, true, &res)) {
        item_done(op, &res, NULL);
        return;
    }
    ekv_ks_decode_item(r, &res, &item);
    if (res.outcome != EKV_KS_NO_KEY) {
        item_done(op, &res, &item);
        return;
    }
    /* No such item: is there such a store? A second round trip, for 404s alone (and those are
     * cached): EXISTS <ns>g:{<sid>}. The caller's fill stays in flight meanwhile (a write since
     * the first command poisons it as well). */
    ekv_ks_key_init(&gen, op->ks, "g:{", op->sid, op->sid_len, "}", NULL, 0);
    {
        const char *exists[] = {"EXISTS", gen.p};
        const size_t exists_len[] = {6, gen.len};
        const struct ekv_origin_argv c = {2, exists, exists_len};

        op->inner = ekv_origin_pipeline(op->ks->origin, EKV_KS_OP_GET, on_store_exists, op, 1, &c);
    }
    ekv_ks_key_clear(&gen);
}

/* The item read, in one round trip: a pipeline of two plain commands (a script run costs Redis
 * ten times more, a MULTI/EXEC around them twice as much):
 *   PTTL <ns>i:{<sid>}:<key>; HMGET <ns>i:{<sid>}:<key> v m g t
 * Not atomic, and it need not be: a write that runs between them was sent after the caller's
 * fill was installed, and its invalidation poisons the fill (or removes what it stored), so
 * nothing read across a write stays in the cache. What the caller gets is the item as HMGET read
 * it (value, metadata and generation come from that one command). HMGET goes last: the origin
 * copies the earlier replies (integers cost nothing to copy) and hands the last one over as it
 * is, so the value reaches the caller without a copy. */
struct ekv_keyspace_op *ekv_keyspace_item_get(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *key, size_t key_len,
                                              ekv_keyspace_item_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, sid, sid_len);
    struct ekv_ks_key item;

    op->cb.item = cb;
    ekv_ks_key_init(&item, ks, "i:{", sid, sid_len, "}:", key, key_len);
    {
        const char *hmget[] = {"HMGET", item.p, "v", "m", "g", "t"}, *pttl[] = {"PTTL", item.p};
        const size_t hmget_len[] = {5, item.len, 1, 1, 1, 1}, pttl_len[] = {4, item.len};
        const struct ekv_origin_argv cmds[2] = {{2, pttl, pttl_len}, {6, hmget, hmget_len}};

        op->inner = ekv_origin_pipeline(ks->origin, EKV_KS_OP_GET, on_item, op, 2, cmds);
    }
    ekv_ks_key_clear(&item);
    return op;
}

/* ---------------------------------------------------------------- item writes */

/* The three keys of an item's slot: item, index, generation counter. */
struct slot_keys {
    struct ekv_ks_key item, index, gen;
};

static void slot_keys(struct ekv_keyspace *ks, const char *sid, size_t sid_len, const char *key,
                      size_t key_len, struct slot_keys *k)
{
    ekv_ks_key_init(&k->item, ks, "i:{", sid, sid_len, "}:", key, key_len);
    ekv_ks_key_init(&k->index, ks, "x:{", sid, sid_len, "}", NULL, 0);
    ekv_ks_key_init(&k->gen, ks, "g:{", sid, sid_len, "}", NULL, 0);
}

static void slot_keys_clear(struct slot_keys *k)
{
    ekv_ks_key_clear(&k->item);
    ekv_ks_key_clear(&k->index);
    ekv_ks_key_clear(&k->gen);
}

static void on_put(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_written w = {0};

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_put(r, &res, &w);
    op->cb.put(&res, res.outcome == EKV_KS_OK ? &w : NULL, op->arg);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_item_put(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *key, size_t key_len,
                                              const struct ekv_ks_put *put, ekv_keyspace_put_cb *cb,
                                              void *arg)
{
    static const char *const modes[] = {
        [EKV_KS_PUT_SET] = "set",
        [EKV_KS_PUT_ADD] = "add",
        [EKV_KS_PUT_APPEND] = "append",
        [EKV_KS_PUT_PREPEND] = "prepend",
    };
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_ITEM_PUT, arg, NULL, 0);
    struct slot_keys k;
    size_t meta_len = put->meta != NULL ? put->meta_len : 0;
    char ttl[NUM_MAX], igm[NUM_MAX], max[NUM_MAX];
    const char *argv[10];
    size_t argvlen[10];

    op->cb.put = cb;
    slot_keys(ks, sid, sid_len, key, key_len, &k);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)put->ttl_ms);
    if (put->igm != NULL)
        snprintf(igm, sizeof(igm), "%llu", (unsigned long long)*put->igm);
    else
        igm[0] = '\0';
    snprintf(max, sizeof(max), "%llu", (unsigned long long)put->value_max);
    argv[0] = k.item.p, argvlen[0] = k.item.len;
    argv[1] = k.index.p, argvlen[1] = k.index.len;
    argv[2] = k.gen.p, argvlen[2] = k.gen.len;
    argv[3] = key, argvlen[3] = key_len;
    argv[4] = put->value != NULL ? put->value : "", argvlen[4] = put->value_len;
    argv[5] = put->meta != NULL ? put->meta : "", argvlen[5] = meta_len;
    argv[6] = ttl, argvlen[6] = strlen(ttl);
    argv[7] = modes[put->mode], argvlen[7] = strlen(modes[put->mode]);
    argv[8] = igm, argvlen[8] = strlen(igm);
    argv[9] = max, argvlen[9] = strlen(max);
    eval(op, on_put, 3, 10, argv, argvlen);
    slot_keys_clear(&k);
    return op;
}

struct ekv_keyspace_op *ekv_keyspace_item_delete(struct ekv_keyspace *ks, const char *sid,
                                                 size_t sid_len, const char *key, size_t key_len,
                                                 const uint64_t *igm, bool force,
                                                 ekv_keyspace_done_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_ITEM_DELETE, arg, NULL, 0);
    struct slot_keys k;
    char g[NUM_MAX];
    const char *argv[6];
    size_t argvlen[6];

    op->cb.done = cb;
    slot_keys(ks, sid, sid_len, key, key_len, &k);
    if (igm != NULL)
        snprintf(g, sizeof(g), "%llu", (unsigned long long)*igm);
    else
        g[0] = '\0';
    argv[0] = k.item.p, argvlen[0] = k.item.len;
    argv[1] = k.index.p, argvlen[1] = k.index.len;
    argv[2] = k.gen.p, argvlen[2] = k.gen.len;
    argv[3] = key, argvlen[3] = key_len;
    argv[4] = g, argvlen[4] = strlen(g);
    argv[5] = force ? "1" : "0", argvlen[5] = 1;
    eval(op, on_code, 3, 6, argv, argvlen);
    slot_keys_clear(&k);
    return op;
}

/* ---------------------------------------------------------------- key listings */

/* Bytewise order of two byte strings (the order of ZRANGEBYLEX). */
static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, EKV_MIN(alen, blen));

    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* A ZRANGEBYLEX bound: "(" or "[" followed by @len bytes at @s, and an optional 0xff. */
static char *bound(char open, const char *s, size_t len, bool ff, size_t *outlen)
{
    char *b = ekv_malloc(len + 3);

    b[0] = open;
    memcpy(b + 1, s, len);
    *outlen = len + 1;
    if (ff)
        b[(*outlen)++] = (char)0xff; /* above every UTF-8 byte: the end of the prefix range */
    b[*outlen] = '\0';
    return b;
}

static void on_list(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_page page = {0};
    struct ekv_ks_str *names = NULL;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_key_list(r, &res, &page, &names);
    op->cb.list(&res, res.outcome == EKV_KS_OK ? &page : NULL, op->arg);
    ekv_free(names);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_key_list(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *prefix, size_t prefix_len,
                                              const char *after, size_t after_len, unsigned limit,
                                              ekv_keyspace_list_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_KEY_LIST, arg, NULL, 0);
    struct ekv_ks_key index, gen, items;
    char num[NUM_MAX], *lo, *hi;
    size_t lo_len, hi_len;
    const char *argv[6];
    size_t argvlen[6];

    op->cb.list = cb;
    /* the prefix range, starting after the cursor when it is inside it */
    if (after_len > 0 && (prefix_len == 0 || bytes_cmp(after, after_len, prefix, prefix_len) >= 0))
        lo = bound('(', after, after_len, false, &lo_len);
    else if (prefix_len > 0)
        lo = bound('[', prefix, prefix_len, false, &lo_len);
    else
        lo = ekv_strdup("-"), lo_len = 1;
    if (prefix_len > 0)
        hi = bound('[', prefix, prefix_len, true, &hi_len);
    else
        hi = ekv_strdup("+"), hi_len = 1;
    ekv_ks_key_init(&index, ks, "x:{", sid, sid_len, "}", NULL, 0);
    ekv_ks_key_init(&gen, ks, "g:{", sid, sid_len, "}", NULL, 0);
    ekv_ks_key_init(&items, ks, "i:{", sid, sid_len, "}:", NULL, 0);
    snprintf(num, sizeof(num), "%u", limit);
    argv[0] = index.p, argvlen[0] = index.len;
    argv[1] = gen.p, argvlen[1] = gen.len;
    argv[2] = items.p, argvlen[2] = items.len;
    argv[3] = lo, argvlen[3] = lo_len;
    argv[4] = hi, argvlen[4] = hi_len;
    argv[5] = num, argvlen[5] = strlen(num);
    eval(op, on_list, 2, 6, argv, argvlen);
    ekv_ks_key_clear(&index);
    ekv_ks_key_clear(&gen);
    ekv_ks_key_clear(&items);
    ekv_free(lo);
    ekv_free(hi);
    return op;
}

/* ---------------------------------------------------------------- stores */

/* Creating a store takes three steps, since its generation counter lives in the store's own
 * slot and the registry in another: SET <ns>g:{<sid>} 0 NX (a fresh id: taken means ID_TAKEN),
 * then store_create.lua in the registry, and, when that refuses (name taken, limit), DEL of the
 * counter again. A crash between the steps leaves at most a counter that no store names: its id
 * was never given to anyone. The op keeps what the second step needs in its tail (op->sid). */
struct create_args {
    unsigned max_stores;
    size_t name_len;
    char now[32];
    /* the name follows */
};

static void on_create_undone(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res = {.outcome = (enum ekv_ks_outcome)op->pending_outcome};

    op->cb.done(&res, op->arg);
    ekv_free(op);
}

static void on_created(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_key gen;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, op->script, &res);
    if (res.outcome == EKV_KS_OK || res.outcome == EKV_KS_ORIGIN_TIMEOUT ||
        res.outcome == EKV_KS_ORIGIN_DOWN) {
        /* done, or unknown: the counter stays (a store named in the registry needs it) */
        op->cb.done(&res, op->arg);
        ekv_free(op);
        return;
    }
    op->pending_outcome = res.outcome;
    ekv_ks_key_init(&gen, op->ks, "g:{", op->sid, op->sid_len, "}", NULL, 0);
    {
        const char *argv[2] = {"DEL", gen.p};
        const size_t argvlen[2] = {3, gen.len};
        cmd(op, on_create_undone, 2, argv, argvlen);
    }
    ekv_ks_key_clear(&gen);
}

static void on_counter(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct create_args ca_copy; /* copied out: the op's tail holds it unaligned */
    const struct create_args *ca = &ca_copy;
    const char *name = op->sid + op->sid_len + sizeof(ca_copy);
    struct ekv_ks_key stores, rec;
    char max[NUM_MAX];
    const char *argv[6];
    size_t argvlen[6];

    memcpy(&ca_copy, op->sid + op->sid_len, sizeof(ca_copy));
    if (ekv_ks_fault(status, r, false, &res) || r->type != REDIS_REPLY_STATUS) {
        if (!ekv_ks_fault(status, r, false, &res))
            res.outcome = r->type == REDIS_REPLY_NIL ? EKV_KS_ID_TAKEN : EKV_KS_ORIGIN_PROTOCOL;
        op->cb.done(&res, op->arg);
        ekv_free(op);
        return;
    }
    snprintf(max, sizeof(max), "%u", ca->max_stores);
    ekv_ks_key_init(&stores, op->ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&rec, op->ks, EKV_KS_REG_RECORD, op->sid, op->sid_len, NULL, NULL, 0);
    argv[0] = stores.p, argvlen[0] = stores.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    argv[2] = name, argvlen[2] = ca->name_len;
    argv[3] = op->sid, argvlen[3] = op->sid_len;
    argv[4] = ca->now, argvlen[4] = strlen(ca->now);
    argv[5] = max, argvlen[5] = strlen(max);
    op->script = EKV_KS_SCRIPT_STORE_CREATE;
    eval(op, on_created, 2, 6, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&rec);
}

struct ekv_keyspace_op *ekv_keyspace_store_create(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, const char *name, size_t name_len,
                                                  const char *now, unsigned max_stores,
                                                  ekv_keyspace_done_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op;
    struct create_args ca = {.max_stores = max_stores, .name_len = name_len};
    struct ekv_ks_key gen;
    char *tail;

    /* the id, then what the second step needs, in the op's tail */
    tail = ekv_malloc(sid_len + sizeof(ca) + name_len);
    memcpy(tail, sid, sid_len);
    snprintf(ca.now, sizeof(ca.now), "%s", now);
    memcpy(tail + sid_len, &ca, sizeof(ca));
    memcpy(tail + sid_len + sizeof(ca), name, name_len);
    op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, tail, sid_len + sizeof(ca) + name_len);
    ekv_free(tail);
    op->sid_len = sid_len;
    op->cb.done = cb;
    ekv_ks_key_init(&gen, ks, "g:{", sid, sid_len, "}", NULL, 0);
    {
        const char *argv[5] = {"SET", gen.p, "0", "NX"};
        const size_t argvlen[4] = {3, gen.len, 1, 2};
        cmd(op, on_counter, 4, argv, argvlen);
    }
    ekv_ks_key_clear(&gen);
    return op;
}

static void on_stores(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_store *stores = NULL;
    size_t n = 0;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_store_list(r, &res, &stores, &n);
    op->cb.stores(&res, stores, n, op->arg);
    ekv_free(stores);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_store_list(struct ekv_keyspace *ks, ekv_keyspace_stores_cb *cb,
                                                void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_STORE_LIST, arg, NULL, 0);
    struct ekv_ks_key stores, rec;
    const char *argv[2];
    size_t argvlen[2];

    op->cb.stores = cb;
    ekv_ks_key_init(&stores, ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&rec, ks, EKV_KS_REG_RECORD, NULL, 0, NULL, NULL, 0); /* the record prefix */
    argv[0] = stores.p, argvlen[0] = stores.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    eval(op, on_stores, 1, 2, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&rec);
    return op;
}

static void on_store(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_store st;

    memset(&st, 0, sizeof(st));
    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_store(r, op->sid, op->sid_len, &res, &st);
    op->cb.store(&res, res.outcome == EKV_KS_OK ? &st : NULL, op->arg);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_store_describe(struct ekv_keyspace *ks, const char *sid,
                                                    size_t sid_len, ekv_keyspace_store_cb *cb,
                                                    void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, sid, sid_len);
    struct ekv_ks_key rec;

    op->cb.store = cb;
    ekv_ks_key_init(&rec, ks, EKV_KS_REG_RECORD, sid, sid_len, NULL, NULL, 0);
    {
        const char *argv[5] = {"HMGET", rec.p, "name", "created_at", "updated_at"};
        const size_t argvlen[5] = {5, rec.len, 4, 10, 10};

        cmd(op, on_store, 5, argv, argvlen);
    }
    ekv_ks_key_clear(&rec);
    return op;
}

struct ekv_keyspace_op *ekv_keyspace_store_rename(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, const char *name, size_t name_len,
                                                  const char *now, ekv_keyspace_done_cb *cb,
                                                  void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_STORE_RENAME, arg, NULL, 0);
    struct ekv_ks_key stores, rec;
    const char *argv[5];
    size_t argvlen[5];

    op->cb.done = cb;
    ekv_ks_key_init(&stores, ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&rec, ks, EKV_KS_REG_RECORD, sid, sid_len, NULL, NULL, 0);
    argv[0] = stores.p, argvlen[0] = stores.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    argv[2] = sid, argvlen[2] = sid_len;
    argv[3] = name, argvlen[3] = name_len;
    argv[4] = now, argvlen[4] = strlen(now);
    eval(op, on_code, 2, 5, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&rec);
    return op;
}

/* Deleting a store takes two steps: store_purge.lua in the store's slot (an empty store loses
 * its counter and index: from then on no item script finds it), then store_delete.lua in the
 * registry. A crash between them leaves a store that is listed but holds nothing and takes no
 * writes; deleting it again finishes the job. */
static void on_purged(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_key stores, rec;
    const char *argv[3];
    size_t argvlen[3];

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, op->script, &res);
    if (res.outcome != EKV_KS_OK) {
        op->cb.done(&res, op->arg);
        ekv_free(op);
        return;
    }
    ekv_ks_key_init(&stores, op->ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&rec, op->ks, EKV_KS_REG_RECORD, op->sid, op->sid_len, NULL, NULL, 0);
    argv[0] = stores.p, argvlen[0] = stores.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    argv[2] = op->sid, argvlen[2] = op->sid_len;
    op->script = EKV_KS_SCRIPT_STORE_DELETE;
    eval(op, on_code, 2, 3, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&rec);
}

struct ekv_keyspace_op *ekv_keyspace_store_delete(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, ekv_keyspace_done_cb *cb,
                                                  void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_STORE_PURGE, arg, sid, sid_len);
    struct ekv_ks_key gen, index, items;
    const char *argv[3];
    size_t argvlen[3];

    op->cb.done = cb;
    ekv_ks_key_init(&gen, ks, "g:{", sid, sid_len, "}", NULL, 0);
    ekv_ks_key_init(&index, ks, "x:{", sid, sid_len, "}", NULL, 0);
    ekv_ks_key_init(&items, ks, "i:{", sid, sid_len, "}:", NULL, 0);
    argv[0] = gen.p, argvlen[0] = gen.len;
    argv[1] = index.p, argvlen[1] = index.len;
    argv[2] = items.p, argvlen[2] = items.len;
    eval(op, on_purged, 2, 3, argv, argvlen);
    ekv_ks_key_clear(&gen);
    ekv_ks_key_clear(&index);
    ekv_ks_key_clear(&items);
    return op;
}

static void on_exists(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_exists(r, false, &res);
    op->cb.done(&res, op->arg);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_store_check(struct ekv_keyspace *ks, const char *sid,
                                                 size_t sid_len, ekv_keyspace_done_cb *cb,
                                                 void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, NULL, 0);
    struct ekv_ks_key gen;

    op->cb.done = cb;
    ekv_ks_key_init(&gen, ks, "g:{", sid, sid_len, "}", NULL, 0);
    {
        const char *argv[2] = {"EXISTS", gen.p};
        const size_t argvlen[2] = {6, gen.len};

        cmd(op, on_exists, 2, argv, argvlen);
    }
    ekv_ks_key_clear(&gen);
    return op;
}

static void on_resolve(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_str sid = {NULL, 0};

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_resolve(r, &res, &sid);
    op->cb.resolve(&res, sid.p, sid.len, op->arg);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_resolve(struct ekv_keyspace *ks, const char *name,
                                             size_t name_len, const char *service,
                                             ekv_keyspace_resolve_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_RESOLVE, arg, NULL, 0);
    struct ekv_ks_key stores, links;
    bool has_service = service != NULL && service[0] != '\0';
    const char *argv[3];
    size_t argvlen[3];
    int nkeys = 1;

    op->cb.resolve = cb;
    ekv_ks_key_init(&stores, ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&links, ks, EKV_KS_REG_LINKS, has_service ? service : NULL,
                    has_service ? strlen(service) : 0, NULL, NULL, 0);
    argv[0] = stores.p, argvlen[0] = stores.len;
    if (has_service) {
        argv[1] = links.p, argvlen[1] = links.len;
        nkeys = 2;
    }
    argv[nkeys] = name, argvlen[nkeys] = name_len;
    eval(op, on_resolve, nkeys, nkeys + 1, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&links);
    return op;
}

/* ---------------------------------------------------------------- resource links */

static void on_links(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_link *links = NULL;
    json_t *root = NULL;
    size_t n = 0;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_links(r, &res, &links, &n, &root);
    op->cb.links(&res, links, n, op->arg);
    json_decref(root);
    ekv_free(links);
    ekv_free(op);
}

struct ekv_keyspace_op *ekv_keyspace_link_list(struct ekv_keyspace *ks, const char *service,
                                               ekv_keyspace_links_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, NULL, 0);
    struct ekv_ks_key links;

    op->cb.links = cb;
    ekv_ks_key_init(&links, ks, EKV_KS_REG_LINKS, service, strlen(service), NULL, NULL, 0);
    {
        const char *argv[2] = {"HGETALL", links.p};
        const size_t argvlen[2] = {7, links.len};

        cmd(op, on_links, 2, argv, argvlen);
    }
    ekv_ks_key_clear(&links);
    return op;
}

/* The answer about one link: HGET (op->script EKV_KS_SCRIPT_COUNT) or a link script. */
static void on_link(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;
    struct ekv_ks_link l;
    bool has_link = false;
    json_t *root = NULL;

    memset(&l, 0, sizeof(l));
    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_link(r, op->script, &res, &l, &has_link, &root);
    op->cb.link(&res, has_link ? &l : NULL, op->arg);
    json_decref(root);
    ekv_free(op);
}

/* 'l:<id>', the field of a link in <ns>links:<service>: a new string. */
static char *link_field(const char *id, size_t id_len, size_t *len)
{
    char *f = ekv_malloc(id_len + 3);

    f[0] = 'l';
    f[1] = ':';
    memcpy(f + 2, id, id_len);
    f[id_len + 2] = '\0';
    *len = id_len + 2;
    return f;
}

struct ekv_keyspace_op *ekv_keyspace_link_get(struct ekv_keyspace *ks, const char *service,
                                              const char *id, size_t id_len,
                                              ekv_keyspace_link_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, NULL, 0);
    struct ekv_ks_key links;
    size_t flen;
    char *field = link_field(id, id_len, &flen);

    op->cb.link = cb;
    ekv_ks_key_init(&links, ks, EKV_KS_REG_LINKS, service, strlen(service), NULL, NULL, 0);
    {
        const char *argv[3] = {"HGET", links.p, field};
        const size_t argvlen[3] = {4, links.len, flen};

        cmd(op, on_link, 3, argv, argvlen);
    }
    ekv_ks_key_clear(&links);
    ekv_free(field);
    return op;
}

struct ekv_keyspace_op *ekv_keyspace_link_create(struct ekv_keyspace *ks, const char *service,
                                                 const struct ekv_ks_link_new *l,
                                                 ekv_keyspace_link_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_LINK_CREATE, arg, NULL, 0);
    struct ekv_ks_key links, rec;
    const char *argv[7];
    size_t argvlen[7];

    op->cb.link = cb;
    ekv_ks_key_init(&links, ks, EKV_KS_REG_LINKS, service, strlen(service), NULL, NULL, 0);
    ekv_ks_key_init(&rec, ks, EKV_KS_REG_RECORD, l->resource_id, strlen(l->resource_id), NULL, NULL, 0);
    argv[0] = links.p, argvlen[0] = links.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    argv[2] = l->id, argvlen[2] = strlen(l->id);
    argv[3] = l->name, argvlen[3] = strlen(l->name);
    argv[4] = l->resource_id, argvlen[4] = strlen(l->resource_id);
    argv[5] = l->version, argvlen[5] = strlen(l->version);
    argv[6] = l->now, argvlen[6] = strlen(l->now);
    eval(op, on_link, 2, 7, argv, argvlen);
    ekv_ks_key_clear(&links);
    ekv_ks_key_clear(&rec);
    return op;
}

struct ekv_keyspace_op *ekv_keyspace_link_update(struct ekv_keyspace *ks, const char *service,
                                                 const char *id, size_t id_len, const char *name,
                                                 const char *now, ekv_keyspace_link_cb *cb,
                                                 void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_LINK_UPDATE, arg, NULL, 0);
    struct ekv_ks_key links;

    op->cb.link = cb;
    ekv_ks_key_init(&links, ks, EKV_KS_REG_LINKS, service, strlen(service), NULL, NULL, 0);
    {
        const char *argv[4] = {links.p, id, name, now};
        const size_t argvlen[4] = {links.len, id_len, strlen(name), strlen(now)};

        eval(op, on_link, 1, 4, argv, argvlen);
    }
    ekv_ks_key_clear(&links);
    return op;
}

struct ekv_keyspace_op *ekv_keyspace_link_delete(struct ekv_keyspace *ks, const char *service,
                                                 const char *id, size_t id_len,
                                                 ekv_keyspace_link_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_LINK_DELETE, arg, NULL, 0);
    struct ekv_ks_key links;

    op->cb.link = cb;
    ekv_ks_key_init(&links, ks, EKV_KS_REG_LINKS, service, strlen(service), NULL, NULL, 0);
    {
        const char *argv[2] = {links.p, id};
        const size_t argvlen[2] = {links.len, id_len};

        eval(op, on_link, 1, 2, argv, argvlen);
    }
    ekv_ks_key_clear(&links);
    return op;
}
