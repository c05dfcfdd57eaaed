/* ops.c - the keyspace's typed operations: each builds its Redis keys and arguments, sends a
 * script run, command or pipeline through the origin (one per bucket where it needs a store's
 * every bucket), and hands the decoded reply (decode.c) to its caller. An operation on a store's
 * items first learns how many buckets the store has, once per store (its record says; it never
 * changes). Keys are built on the stack. */
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

#define NUM_MAX 24                      /* a decimal uint64 and its NUL */
#define TAG_MAX (EKV_KS_SID_MAX + 8)    /* a bucket's tag: "<sid>:1023" */

/* Which of the callbacks an op has (how it is answered without a reply of its own). */
enum kind { KIND_DONE = 0, KIND_ITEM, KIND_PUT, KIND_LIST, KIND_OTHER };

/* One bucket's command of an operation that sends one to each. */
struct ekv_ks_part {
    struct ekv_keyspace_op *op;
    struct ekv_origin_op *inner; /* in flight, or NULL */
    unsigned b;
    bool ok; /* its command did what it asked (a counter set, a bucket sealed) */
};

/* The page one bucket answered a listing with: names copied out of its reply. */
struct ekv_ks_bucket_page {
    char *blob;
    struct ekv_ks_str *names;
    size_t count;
    bool more;
};

/* An item operation's arguments, copied while the store's buckets are learned. */
struct ekv_ks_args {
    const char *key;
    size_t key_len;
    struct ekv_ks_put put; /* item_put (its igm: see has_igm) */
    uint64_t igm;          /* item_put, item_delete: if-generation-match, when has_igm */
    bool has_igm;
    bool force;                       /* item_delete */
    const char *prefix, *after;       /* key_list */
    size_t prefix_len, after_len;
    unsigned limit;
};

/* A new op of @ks for @script (EKV_KS_SCRIPT_COUNT: plain commands), keeping @sid. */
static struct ekv_keyspace_op *op_new(struct ekv_keyspace *ks, enum ekv_ks_script script, void *arg,
                                      const char *sid, size_t sid_len)
{
    struct ekv_keyspace_op *op = ekv_calloc(1, sizeof(*op) + sid_len);

    assert(ks->origin != NULL); /* a layout-only keyspace runs no operation */
    op->ks = ks;
    op->script = script;
    op->arg = arg;
    op->kind = KIND_OTHER;
    op->sid_len = sid_len;
    if (sid_len > 0)
        memcpy(op->sid, sid, sid_len);
    return op;
}

static void op_free(struct ekv_keyspace_op *op)
{
    if (op->pages != NULL) {
        for (unsigned b = 0; b < op->shards; b++) {
            ekv_free(op->pages[b].blob);
            ekv_free(op->pages[b].names);
        }
        ekv_free(op->pages);
    }
    ekv_free(op->parts);
    ekv_free(op->defer);
    ekv_free(op);
}

void ekv_keyspace_cancel(struct ekv_keyspace_op *op)
{
    if (op->inner != NULL)
        ekv_origin_cancel(op->inner);
    for (unsigned b = 0; op->parts != NULL && b < op->shards; b++)
        if (op->parts[b].inner != NULL)
            ekv_origin_cancel(op->parts[b].inner);
    op_free(op);
}

/* Answers @op with the outcome @res alone (no item, no page, no record), and frees it. */
static void op_answer(struct ekv_keyspace_op *op, struct ekv_ks_result *res)
{
    res->shards = op->shards;
    switch ((enum kind)op->kind) {
    case KIND_ITEM:
        op->cb.item(res, NULL, op->arg);
        break;
    case KIND_PUT:
        op->cb.put(res, NULL, op->arg);
        break;
    case KIND_LIST:
        op->cb.list(res, NULL, op->arg);
        break;
    case KIND_DONE:
    case KIND_OTHER:
        op->cb.done(res, op->arg);
        break;
    }
    op_free(op);
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

    op->inner = NULL;
    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, op->script, &res);
    op_answer(op, &res);
}

/* ---------------------------------------------------------------- a command per bucket */

/* Builds and sends bucket @pt's command (tagged @tag): false when that bucket has none. */
typedef bool part_send_fn(struct ekv_keyspace_op *op, struct ekv_ks_part *pt, const char *tag,
                          size_t tag_len, const void *ctx);

static void on_part(int status, const struct redisReply *r, void *arg)
{
    struct ekv_ks_part *pt = arg;
    struct ekv_keyspace_op *op = pt->op;

    pt->inner = NULL;
    op->part_reply(op, pt->b, status, r);
    if (--op->pending == 0)
        op->parts_done(op);
}

/* Keeps @res as the fan-out's outcome if it is its first other than EKV_KS_OK (an error's text
 * copied: the reply it points into is gone when the fan-out ends). */
static void part_outcome(struct ekv_keyspace_op *op, const struct ekv_ks_result *res)
{
    if (op->first.outcome != EKV_KS_OK || res->outcome == EKV_KS_OK)
        return;
    op->first = *res;
    if (res->error != NULL) {
        op->first.error_len = EKV_MIN(res->error_len, sizeof(op->error));
        memcpy(op->error, res->error, op->first.error_len);
        op->first.error = op->error;
    }
}

/* Sends @send's command for every bucket of op's store at once (@ctx is @send's), hands each
 * reply to @reply and calls @done once all are answered (at once if none was sent). */
static void fanout(struct ekv_keyspace_op *op, part_send_fn *send,
                   void (*reply)(struct ekv_keyspace_op *, unsigned, int, const struct redisReply *),
                   void (*done)(struct ekv_keyspace_op *), const void *ctx)
{
    char tag[TAG_MAX];

    if (op->parts == NULL)
        op->parts = ekv_calloc(op->shards, sizeof(*op->parts));
    op->inner = NULL;
    op->part_reply = reply;
    op->parts_done = done;
    op->first = (struct ekv_ks_result){.outcome = EKV_KS_OK};
    op->pending = 1; /* until every command is sent: no reply comes before that anyway */
    for (unsigned b = 0; b < op->shards; b++) {
        struct ekv_ks_part *pt = &op->parts[b];

        pt->op = op;
        pt->b = b;
        if (send(op, pt, tag, ekv_ks_tag(tag, op->sid, op->sid_len, op->shards, b), ctx))
            op->pending++;
    }
    if (--op->pending == 0)
        done(op);
}

static void eval_part(struct ekv_ks_part *pt, int nkeys, int argc, const char **argv,
                      const size_t *argvlen)
{
    struct ekv_keyspace *ks = pt->op->ks;

    pt->inner = ekv_origin_eval(ks->origin, ks->script[pt->op->script], on_part, pt, nkeys, argc,
                                argv, argvlen);
}

static void cmd_part(struct ekv_ks_part *pt, int argc, const char **argv, const size_t *argvlen)
{
    pt->inner = ekv_origin_cmd(pt->op->ks->origin, on_part, pt, argc, argv, argvlen);
}

/* ---------------------------------------------------------------- learning a store's buckets */

/* HMGET <ns>s:{registry}:<sid> name shards, answered to @cb. */
static void send_learn(struct ekv_keyspace_op *op, ekv_origin_cb *cb)
{
    struct ekv_ks_key rec;

    ekv_ks_key_init(&rec, op->ks, EKV_KS_REG_RECORD, op->sid, op->sid_len, NULL, NULL, 0);
    {
        const char *argv[4] = {"HMGET", rec.p, "name", "shards"};
        const size_t argvlen[4] = {5, rec.len, 4, 6};

        cmd(op, cb, 4, argv, argvlen);
    }
    ekv_ks_key_clear(&rec);
}

/* The record read's reply: true with op->shards learned, else false with @res its outcome. */
static bool learned(struct ekv_keyspace_op *op, int status, const struct redisReply *r,
                    struct ekv_ks_result *res)
{
    unsigned n = 0;

    op->inner = NULL;
    if (!ekv_ks_fault(status, r, false, res))
        ekv_ks_decode_shards(r, res, &n);
    if (res->outcome != EKV_KS_OK)
        return false;
    ekv_ks_shards_learn(op->ks, op->sid, op->sid_len, n);
    op->shards = n;
    return true;
}

/* A copy of @a, in one block: its pointers point into it. */
static struct ekv_ks_args *args_copy(const struct ekv_ks_args *a)
{
    size_t vlen = a->put.value != NULL ? a->put.value_len : 0;
    size_t mlen = a->put.meta != NULL ? a->put.meta_len : 0;
    struct ekv_ks_args *c =
        ekv_malloc(sizeof(*c) + a->key_len + vlen + mlen + a->prefix_len + a->after_len + 1);
    char *p = (char *)(c + 1);

    *c = *a;
#define COPY(field, len)                                                                           \
    do {                                                                                           \
        if (a->field != NULL) {                                                                    \
            if ((len) > 0)                                                                         \
                memcpy(p, a->field, (len));                                                        \
            c->field = p;                                                                          \
            p += (len);                                                                            \
        }                                                                                          \
    } while (0)
    COPY(key, a->key_len);
    COPY(put.value, vlen);
    COPY(put.meta, mlen);
    COPY(prefix, a->prefix_len);
    COPY(after, a->after_len);
#undef COPY
    return c;
}

static void on_learned_args(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    if (!learned(op, status, r, &res)) {
        op_answer(op, &res);
        return;
    }
    op->resume(op, op->defer); /* a listing keeps its arguments (a second round) */
    if (op->kind != KIND_LIST) {
        ekv_free(op->defer);
        op->defer = NULL;
    }
}

/* Runs @send for @op with @a once the store's buckets are known: now, or after learning them
 * (with a copy of @a). */
static void start(struct ekv_keyspace_op *op, const struct ekv_ks_args *a,
                  void (*send)(struct ekv_keyspace_op *, const struct ekv_ks_args *))
{
    op->shards = ekv_keyspace_store_shards(op->ks, op->sid, op->sid_len);
    if (op->shards != 0) {
        send(op, a);
        return;
    }
    op->defer = args_copy(a);
    op->resume = send;
    send_learn(op, on_learned_args);
}

/* The tag of op's item bucket, op->bucket, into @tag (TAG_MAX). */
static size_t item_tag(const struct ekv_keyspace_op *op, char *tag)
{
    return ekv_ks_tag(tag, op->sid, op->sid_len, op->shards, op->bucket);
}

/* ---------------------------------------------------------------- item reads */

static void item_done(struct ekv_keyspace_op *op, struct ekv_ks_result *res,
                      const struct ekv_ks_item *item)
{
    res->shards = op->shards;
    op->cb.item(res, res->outcome == EKV_KS_OK ? item : NULL, op->arg);
    op_free(op);
}

static void on_store_exists(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    op->inner = NULL;
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
    char tag[TAG_MAX];

    op->inner = NULL;
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
     * cached): EXISTS <ns>g:{<tag>}, the counter of the item's bucket (a deleted store's are
     * sealed or gone). The caller's fill stays in flight meanwhile (a write since the first
     * command poisons it as well). */
    ekv_ks_key_init(&gen, op->ks, "g:{", tag, item_tag(op, tag), "}", NULL, 0);
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
 *   PTTL <ns>i:{<tag>}:<key>; HMGET <ns>i:{<tag>}:<key> v m g t
 * Not atomic, and it need not be: a write that runs between them was sent after the caller's
 * fill was installed, and its invalidation poisons the fill (or removes what it stored), so
 * nothing read across a write stays in the cache. What the caller gets is the item as HMGET read
 * it (value, metadata and generation come from that one command). HMGET goes last: the origin
 * copies the earlier replies (integers cost nothing to copy) and hands the last one over as it
 * is, so the value reaches the caller without a copy. */
static void get_send(struct ekv_keyspace_op *op, const struct ekv_ks_args *a)
{
    struct ekv_ks_key item;
    char tag[TAG_MAX];

    op->bucket = ekv_keyspace_bucket(a->key, a->key_len, op->shards);
    ekv_ks_key_init(&item, op->ks, "i:{", tag, item_tag(op, tag), "}:", a->key, a->key_len);
    {
        const char *hmget[] = {"HMGET", item.p, "v", "m", "g", "t"}, *pttl[] = {"PTTL", item.p};
        const size_t hmget_len[] = {5, item.len, 1, 1, 1, 1}, pttl_len[] = {4, item.len};
        const struct ekv_origin_argv cmds[2] = {{2, pttl, pttl_len}, {6, hmget, hmget_len}};

        op->inner = ekv_origin_pipeline(op->ks->origin, EKV_KS_OP_GET, on_item, op, 2, cmds);
    }
    ekv_ks_key_clear(&item);
}

struct ekv_keyspace_op *ekv_keyspace_item_get(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *key, size_t key_len,
                                              ekv_keyspace_item_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, sid, sid_len);
    const struct ekv_ks_args a = {.key = key, .key_len = key_len};

    op->kind = KIND_ITEM;
    op->cb.item = cb;
    start(op, &a, get_send);
    return op;
}

/* ---------------------------------------------------------------- item writes */

/* The three keys of an item's bucket: item, index, generation counter. */
struct slot_keys {
    struct ekv_ks_key item, index, gen;
};

static void slot_keys(struct ekv_keyspace_op *op, const char *key, size_t key_len,
                      struct slot_keys *k)
{
    char tag[TAG_MAX];
    size_t tl;

    op->bucket = ekv_keyspace_bucket(key, key_len, op->shards);
    tl = item_tag(op, tag);
    ekv_ks_key_init(&k->item, op->ks, "i:{", tag, tl, "}:", key, key_len);
    ekv_ks_key_init(&k->index, op->ks, "x:{", tag, tl, "}", NULL, 0);
    ekv_ks_key_init(&k->gen, op->ks, "g:{", tag, tl, "}", NULL, 0);
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

    op->inner = NULL;
    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_put(r, &res, &w);
    res.shards = op->shards;
    op->cb.put(&res, res.outcome == EKV_KS_OK ? &w : NULL, op->arg);
    op_free(op);
}

static void put_send(struct ekv_keyspace_op *op, const struct ekv_ks_args *a)
{
    static const char *const modes[] = {
        [EKV_KS_PUT_SET] = "set",
        [EKV_KS_PUT_ADD] = "add",
        [EKV_KS_PUT_APPEND] = "append",
        [EKV_KS_PUT_PREPEND] = "prepend",
    };
    const struct ekv_ks_put *put = &a->put;
    struct slot_keys k;
    size_t meta_len = put->meta != NULL ? put->meta_len : 0;
    char ttl[NUM_MAX], igm[NUM_MAX], max[NUM_MAX];
    const char *argv[10];
    size_t argvlen[10];

    slot_keys(op, a->key, a->key_len, &k);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)put->ttl_ms);
    if (a->has_igm)
        snprintf(igm, sizeof(igm), "%llu", (unsigned long long)a->igm);
    else
        igm[0] = '\0';
    snprintf(max, sizeof(max), "%llu", (unsigned long long)put->value_max);
    argv[0] = k.item.p, argvlen[0] = k.item.len;
    argv[1] = k.index.p, argvlen[1] = k.index.len;
    argv[2] = k.gen.p, argvlen[2] = k.gen.len;
    argv[3] = a->key, argvlen[3] = a->key_len;
    argv[4] = put->value != NULL ? put->value : "", argvlen[4] = put->value_len;
    argv[5] = put->meta != NULL ? put->meta : "", argvlen[5] = meta_len;
    argv[6] = ttl, argvlen[6] = strlen(ttl);
    argv[7] = modes[put->mode], argvlen[7] = strlen(modes[put->mode]);
    argv[8] = igm, argvlen[8] = strlen(igm);
    argv[9] = max, argvlen[9] = strlen(max);
    eval(op, on_put, 3, 10, argv, argvlen);
    slot_keys_clear(&k);
}

struct ekv_keyspace_op *ekv_keyspace_item_put(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *key, size_t key_len,
                                              const struct ekv_ks_put *put, ekv_keyspace_put_cb *cb,
                                              void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_ITEM_PUT, arg, sid, sid_len);
    struct ekv_ks_args a = {.key = key, .key_len = key_len, .put = *put};

    if (put->igm != NULL) {
        a.igm = *put->igm;
        a.has_igm = true;
    }
    a.put.igm = NULL;
    op->kind = KIND_PUT;
    op->cb.put = cb;
    start(op, &a, put_send);
    return op;
}

static void delete_send(struct ekv_keyspace_op *op, const struct ekv_ks_args *a)
{
    struct slot_keys k;
    char g[NUM_MAX];
    const char *argv[6];
    size_t argvlen[6];

    slot_keys(op, a->key, a->key_len, &k);
    if (a->has_igm)
        snprintf(g, sizeof(g), "%llu", (unsigned long long)a->igm);
    else
        g[0] = '\0';
    argv[0] = k.item.p, argvlen[0] = k.item.len;
    argv[1] = k.index.p, argvlen[1] = k.index.len;
    argv[2] = k.gen.p, argvlen[2] = k.gen.len;
    argv[3] = a->key, argvlen[3] = a->key_len;
    argv[4] = g, argvlen[4] = strlen(g);
    argv[5] = a->force ? "1" : "0", argvlen[5] = 1;
    eval(op, on_code, 3, 6, argv, argvlen);
    slot_keys_clear(&k);
}

struct ekv_keyspace_op *ekv_keyspace_item_delete(struct ekv_keyspace *ks, const char *sid,
                                                 size_t sid_len, const char *key, size_t key_len,
                                                 const uint64_t *igm, bool force,
                                                 ekv_keyspace_done_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_ITEM_DELETE, arg, sid, sid_len);
    const struct ekv_ks_args a = {.key = key,
                                  .key_len = key_len,
                                  .igm = igm != NULL ? *igm : 0,
                                  .has_igm = igm != NULL,
                                  .force = force};

    op->kind = KIND_DONE;
    op->cb.done = cb;
    start(op, &a, delete_send);
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

/* What every bucket's key_list.lua is asked. */
struct list_bounds {
    char *lo, *hi;
    size_t lo_len, hi_len;
    char num[NUM_MAX];
};

static bool list_part_send(struct ekv_keyspace_op *op, struct ekv_ks_part *pt, const char *tag,
                           size_t tag_len, const void *ctx)
{
    const struct list_bounds *lb = ctx;
    struct ekv_ks_key index, gen, items;
    const char *argv[6];
    size_t argvlen[6];

    ekv_ks_key_init(&index, op->ks, "x:{", tag, tag_len, "}", NULL, 0);
    ekv_ks_key_init(&gen, op->ks, "g:{", tag, tag_len, "}", NULL, 0);
    ekv_ks_key_init(&items, op->ks, "i:{", tag, tag_len, "}:", NULL, 0);
    argv[0] = index.p, argvlen[0] = index.len;
    argv[1] = gen.p, argvlen[1] = gen.len;
    argv[2] = items.p, argvlen[2] = items.len;
    argv[3] = lb->lo, argvlen[3] = lb->lo_len;
    argv[4] = lb->hi, argvlen[4] = lb->hi_len;
    argv[5] = lb->num, argvlen[5] = strlen(lb->num);
    eval_part(pt, 2, 6, argv, argvlen);
    ekv_ks_key_clear(&index);
    ekv_ks_key_clear(&gen);
    ekv_ks_key_clear(&items);
    return true;
}

/* A bucket's page, its names copied (the reply goes when this returns). */
static void list_part_reply(struct ekv_keyspace_op *op, unsigned b, int status,
                            const struct redisReply *r)
{
    struct ekv_ks_bucket_page *pg = &op->pages[b];
    struct ekv_ks_result res;
    struct ekv_ks_page page = {0};
    struct ekv_ks_str *names = NULL;
    size_t bytes = 0;
    char *p;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_key_list(r, &res, &page, &names);
    if (res.outcome != EKV_KS_OK) {
        part_outcome(op, &res);
        ekv_free(names);
        return;
    }
    for (size_t i = 0; i < page.count; i++)
        bytes += page.names[i].len;
    pg->blob = p = ekv_malloc(bytes + 1);
    pg->names = names; /* repointed into the blob */
    for (size_t i = 0; i < page.count; i++) {
        if (names[i].len > 0)
            memcpy(p, names[i].p, names[i].len);
        names[i].p = p;
        p += names[i].len;
    }
    pg->count = page.count;
    pg->more = page.more;
}

/* Every bucket answered: their pages merged in key order. A bucket that has more names than it
 * sent may hold names below what the others sent: the merge is only sure up to the lowest last
 * name of such a bucket (the frontier). Each bucket is first asked for a share of the page
 * (names hash evenly over the buckets, so that is nearly always enough); when the names up to
 * the frontier do not fill the page, every bucket is asked again for a whole page, after which
 * the first @limit names of the merge are the store's. */
static void list_send_bounds(struct ekv_keyspace_op *op, const struct ekv_ks_args *a);

static void list_done(struct ekv_keyspace_op *op)
{
    struct ekv_ks_result res = {.outcome = EKV_KS_OK, .shards = op->shards};
    struct ekv_ks_page page = {0};
    const struct ekv_ks_str *frontier = NULL;
    struct ekv_ks_str *out;
    size_t *next, total = 0, n = 0;

    if (op->first.outcome != EKV_KS_OK) {
        op_answer(op, &op->first);
        return;
    }
    for (unsigned b = 0; b < op->shards; b++) {
        const struct ekv_ks_bucket_page *pg = &op->pages[b];

        total += pg->count;
        if (pg->more && pg->count > 0 &&
            (frontier == NULL || bytes_cmp(pg->names[pg->count - 1].p, pg->names[pg->count - 1].len,
                                           frontier->p, frontier->len) < 0))
            frontier = &pg->names[pg->count - 1];
    }
    out = ekv_malloc(sizeof(*out) * (EKV_MIN(total, (size_t)op->limit) + 1));
    next = ekv_calloc(op->shards, sizeof(*next));
    while (n < op->limit) {
        int best = -1;

        for (unsigned b = 0; b < op->shards; b++) {
            const struct ekv_ks_bucket_page *pg = &op->pages[b];

            if (next[b] < pg->count &&
                (best < 0 || bytes_cmp(pg->names[next[b]].p, pg->names[next[b]].len,
                                       op->pages[best].names[next[best]].p,
                                       op->pages[best].names[next[best]].len) < 0))
                best = (int)b;
        }
        if (best < 0)
            break;
        if (frontier != NULL && op->per_bucket < op->limit &&
            bytes_cmp(op->pages[best].names[next[best]].p, op->pages[best].names[next[best]].len,
                      frontier->p, frontier->len) > 0)
            break; /* past what the buckets' shares make sure of */
        out[n++] = op->pages[best].names[next[best]++];
    }
    if (n < op->limit && frontier != NULL && op->per_bucket < op->limit) {
        /* the shares did not fill the page: every bucket again, for a whole one */
        ekv_free(next);
        ekv_free(out);
        for (unsigned b = 0; b < op->shards; b++) {
            ekv_free(op->pages[b].blob);
            ekv_free(op->pages[b].names);
        }
        memset(op->pages, 0, sizeof(*op->pages) * op->shards);
        op->per_bucket = op->limit;
        list_send_bounds(op, op->defer);
        return;
    }
    for (unsigned b = 0; b < op->shards; b++)
        if (next[b] < op->pages[b].count || op->pages[b].more)
            page.more = true;
    page.names = out;
    page.count = n;
    op->cb.list(&res, &page, op->arg);
    ekv_free(next);
    ekv_free(out);
    op_free(op);
}

/* Asks every bucket for op->per_bucket names of the range of @a. */
static void list_send_bounds(struct ekv_keyspace_op *op, const struct ekv_ks_args *a)
{
    struct list_bounds lb;

    /* the prefix range, starting after the cursor when it is inside it */
    if (a->after_len > 0 &&
        (a->prefix_len == 0 || bytes_cmp(a->after, a->after_len, a->prefix, a->prefix_len) >= 0))
        lb.lo = bound('(', a->after, a->after_len, false, &lb.lo_len);
    else if (a->prefix_len > 0)
        lb.lo = bound('[', a->prefix, a->prefix_len, false, &lb.lo_len);
    else
        lb.lo = ekv_strdup("-"), lb.lo_len = 1;
    if (a->prefix_len > 0)
        lb.hi = bound('[', a->prefix, a->prefix_len, true, &lb.hi_len);
    else
        lb.hi = ekv_strdup("+"), lb.hi_len = 1;
    snprintf(lb.num, sizeof(lb.num), "%u", op->per_bucket);
    fanout(op, list_part_send, list_part_reply, list_done, &lb);
    ekv_free(lb.lo);
    ekv_free(lb.hi);
}

static void list_send(struct ekv_keyspace_op *op, const struct ekv_ks_args *a)
{
    op->limit = a->limit;
    /* a share of the page per bucket (twice the even share, and some), or the whole page */
    op->per_bucket = op->shards > 1 ? EKV_MIN(a->limit, 2 * a->limit / op->shards + 8) : a->limit;
    op->pages = ekv_calloc(op->shards, sizeof(*op->pages));
    if (op->per_bucket < op->limit && op->defer == NULL)
        op->defer = args_copy(a); /* kept for a second round */
    list_send_bounds(op, a);
}

struct ekv_keyspace_op *ekv_keyspace_key_list(struct ekv_keyspace *ks, const char *sid,
                                              size_t sid_len, const char *prefix, size_t prefix_len,
                                              const char *after, size_t after_len, unsigned limit,
                                              ekv_keyspace_list_cb *cb, void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_KEY_LIST, arg, sid, sid_len);
    const struct ekv_ks_args a = {.prefix = prefix_len > 0 ? prefix : NULL,
                                  .prefix_len = prefix_len,
                                  .after = after_len > 0 ? after : NULL,
                                  .after_len = after_len,
                                  .limit = limit};

    op->kind = KIND_LIST;
    op->cb.list = cb;
    start(op, &a, list_send);
    return op;
}

/* ---------------------------------------------------------------- stores */

/* Creating a store takes three steps, since its buckets' generation counters live in their own
 * slots and the registry in another: SET <ns>g:{<tag>} 0 NX in every bucket (a fresh id: one
 * taken means ID_TAKEN), then store_create.lua in the registry (which records the buckets), and,
 * when either refuses, DEL of the counters it set. A crash between the steps leaves at most
 * counters that no store names: their id was never given to anyone. The op keeps what the
 * second step needs in its tail, after the id (op->sid). */
struct create_args {
    unsigned max_stores;
    size_t name_len;
    char now[32];
    /* the name follows */
};

static bool del_part_send(struct ekv_keyspace_op *op, struct ekv_ks_part *pt, const char *tag,
                          size_t tag_len, const void *ctx)
{
    struct ekv_ks_key gen;

    (void)ctx;
    if (!pt->ok) /* only the counters this op set */
        return false;
    ekv_ks_key_init(&gen, op->ks, "g:{", tag, tag_len, "}", NULL, 0);
    {
        const char *argv[2] = {"DEL", gen.p};
        const size_t argvlen[2] = {3, gen.len};

        cmd_part(pt, 2, argv, argvlen);
    }
    ekv_ks_key_clear(&gen);
    return true;
}

static void ignore_part_reply(struct ekv_keyspace_op *op, unsigned b, int status,
                              const struct redisReply *r)
{
    (void)op, (void)b, (void)status, (void)r;
}

/* The undo is done: the outcome that made it (op->undo) is answered. */
static void answer_undone(struct ekv_keyspace_op *op)
{
    struct ekv_ks_result res = op->undo;

    op_answer(op, &res);
}

/* Undoes what op's buckets did (@send for each that did), then answers @res. */
static void undo(struct ekv_keyspace_op *op, const struct ekv_ks_result *res, part_send_fn *send,
                 const void *ctx)
{
    op->undo = *res;
    if (res->error != NULL) { /* op->error already holds it when it came from a fan-out */
        if (res->error != op->error) {
            op->undo.error_len = EKV_MIN(res->error_len, sizeof(op->error));
            memcpy(op->error, res->error, op->undo.error_len);
        }
        op->undo.error = op->error;
    }
    fanout(op, send, ignore_part_reply, answer_undone, ctx);
}

static void on_created(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    op->inner = NULL;
    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, op->script, &res);
    if (res.outcome == EKV_KS_OK)
        ekv_ks_shards_learn(op->ks, op->sid, op->sid_len, op->shards);
    if (res.outcome == EKV_KS_OK || res.outcome == EKV_KS_ORIGIN_TIMEOUT ||
        res.outcome == EKV_KS_ORIGIN_DOWN) {
        /* done, or unknown: the counters stay (a store named in the registry needs them) */
        op_answer(op, &res);
        return;
    }
    undo(op, &res, del_part_send, NULL);
}

static bool counter_part_send(struct ekv_keyspace_op *op, struct ekv_ks_part *pt,
                              const char *tag, size_t tag_len, const void *ctx)
{
    struct ekv_ks_key gen;

    (void)ctx;
    ekv_ks_key_init(&gen, op->ks, "g:{", tag, tag_len, "}", NULL, 0);
    {
        const char *argv[4] = {"SET", gen.p, "0", "NX"};
        const size_t argvlen[4] = {3, gen.len, 1, 2};

        cmd_part(pt, 4, argv, argvlen);
    }
    ekv_ks_key_clear(&gen);
    return true;
}

static void counter_part_reply(struct ekv_keyspace_op *op, unsigned b, int status,
                               const struct redisReply *r)
{
    struct ekv_ks_result res;

    if (!ekv_ks_fault(status, r, false, &res)) {
        if (r->type == REDIS_REPLY_STATUS) {
            op->parts[b].ok = true;
            return;
        }
        res = (struct ekv_ks_result){.outcome = r->type == REDIS_REPLY_NIL ? EKV_KS_ID_TAKEN
                                                                           : EKV_KS_ORIGIN_PROTOCOL};
    }
    part_outcome(op, &res);
}

static void counters_done(struct ekv_keyspace_op *op)
{
    struct create_args ca; /* copied out: the op's tail holds it unaligned */
    const char *name = op->sid + op->sid_len + sizeof(ca);
    struct ekv_ks_key stores, rec;
    char max[NUM_MAX], shards[NUM_MAX];
    const char *argv[7];
    size_t argvlen[7];

    if (op->first.outcome != EKV_KS_OK) {
        struct ekv_ks_result res = op->first;

        undo(op, &res, del_part_send, NULL);
        return;
    }
    memcpy(&ca, op->sid + op->sid_len, sizeof(ca));
    snprintf(max, sizeof(max), "%u", ca.max_stores);
    snprintf(shards, sizeof(shards), "%u", op->shards);
    ekv_ks_key_init(&stores, op->ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&rec, op->ks, EKV_KS_REG_RECORD, op->sid, op->sid_len, NULL, NULL, 0);
    argv[0] = stores.p, argvlen[0] = stores.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    argv[2] = name, argvlen[2] = ca.name_len;
    argv[3] = op->sid, argvlen[3] = op->sid_len;
    argv[4] = ca.now, argvlen[4] = strlen(ca.now);
    argv[5] = max, argvlen[5] = strlen(max);
    argv[6] = shards, argvlen[6] = strlen(shards);
    op->script = EKV_KS_SCRIPT_STORE_CREATE;
    eval(op, on_created, 2, 7, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&rec);
}

struct ekv_keyspace_op *ekv_keyspace_store_create(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, const char *name, size_t name_len,
                                                  const char *now, unsigned shards,
                                                  unsigned max_stores, ekv_keyspace_done_cb *cb,
                                                  void *arg)
{
    struct ekv_keyspace_op *op;
    struct create_args ca = {.max_stores = max_stores, .name_len = name_len};
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
    op->kind = KIND_DONE;
    op->cb.done = cb;
    op->shards = shards < 1 ? 1 : shards > EKV_KS_SHARDS_MAX ? EKV_KS_SHARDS_MAX : shards;
    fanout(op, counter_part_send, counter_part_reply, counters_done, NULL);
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
    op_free(op);
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
    op_free(op);
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

/* Deleting a store: every bucket checked (store_bucket.lua "check": empty?), then sealed
 * ("seal": its counter moves aside, so no item script finds the store there), then the record
 * leaves the registry (store_delete.lua), then every bucket is dropped. A bucket found in use
 * ends it with NOT_EMPTY; found so while sealing (a write landed after its check), the buckets
 * sealed already are unsealed first. A store of one bucket skips the check (sealing checks).
 * A crash or timeout half way leaves a store that is listed but takes no writes in the buckets
 * sealed; deleting it again finishes the job. */
static bool bucket_part_send(struct ekv_keyspace_op *op, struct ekv_ks_part *pt, const char *tag,
                             size_t tag_len, const void *ctx)
{
    const char *mode = ctx;
    struct ekv_ks_key gen, index, sealed, items;
    const char *argv[5];
    size_t argvlen[5];

    if (strcmp(mode, "unseal") == 0 && !pt->ok)
        return false;
    ekv_ks_key_init(&gen, op->ks, "g:{", tag, tag_len, "}", NULL, 0);
    ekv_ks_key_init(&index, op->ks, "x:{", tag, tag_len, "}", NULL, 0);
    ekv_ks_key_init(&sealed, op->ks, "z:{", tag, tag_len, "}", NULL, 0);
    ekv_ks_key_init(&items, op->ks, "i:{", tag, tag_len, "}:", NULL, 0);
    argv[0] = gen.p, argvlen[0] = gen.len;
    argv[1] = index.p, argvlen[1] = index.len;
    argv[2] = sealed.p, argvlen[2] = sealed.len;
    argv[3] = mode, argvlen[3] = strlen(mode);
    argv[4] = items.p, argvlen[4] = items.len;
    op->script = EKV_KS_SCRIPT_STORE_BUCKET;
    eval_part(pt, 3, 5, argv, argvlen);
    ekv_ks_key_clear(&gen);
    ekv_ks_key_clear(&index);
    ekv_ks_key_clear(&sealed);
    ekv_ks_key_clear(&items);
    return true;
}

static void bucket_part_reply(struct ekv_keyspace_op *op, unsigned b, int status,
                              const struct redisReply *r)
{
    struct ekv_ks_result res;

    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, EKV_KS_SCRIPT_STORE_BUCKET, &res);
    if (res.outcome == EKV_KS_OK)
        op->parts[b].ok = true;
    else
        part_outcome(op, &res);
}

static void dropped(struct ekv_keyspace_op *op)
{
    struct ekv_ks_result res = {.outcome = EKV_KS_OK};

    /* a bucket not dropped (the origin failed meanwhile) only leaves keys no store names */
    op_answer(op, &res);
}

static void on_unregistered(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    op->inner = NULL;
    if (!ekv_ks_fault(status, r, false, &res))
        ekv_ks_decode_code(r, EKV_KS_SCRIPT_STORE_DELETE, &res);
    if (res.outcome != EKV_KS_OK) { /* a fault, or another delete got there first */
        op_answer(op, &res);
        return;
    }
    fanout(op, bucket_part_send, ignore_part_reply, dropped, "drop");
}

static void sealed(struct ekv_keyspace_op *op)
{
    struct ekv_ks_key stores, rec;
    const char *argv[3];
    size_t argvlen[3];

    if (op->first.outcome != EKV_KS_OK) {
        struct ekv_ks_result res = op->first;

        undo(op, &res, bucket_part_send, "unseal");
        return;
    }
    ekv_ks_key_init(&stores, op->ks, EKV_KS_REG_STORES, NULL, 0, NULL, NULL, 0);
    ekv_ks_key_init(&rec, op->ks, EKV_KS_REG_RECORD, op->sid, op->sid_len, NULL, NULL, 0);
    argv[0] = stores.p, argvlen[0] = stores.len;
    argv[1] = rec.p, argvlen[1] = rec.len;
    argv[2] = op->sid, argvlen[2] = op->sid_len;
    op->script = EKV_KS_SCRIPT_STORE_DELETE;
    eval(op, on_unregistered, 2, 3, argv, argvlen);
    ekv_ks_key_clear(&stores);
    ekv_ks_key_clear(&rec);
}

static void checked(struct ekv_keyspace_op *op)
{
    if (op->first.outcome != EKV_KS_OK) {
        op_answer(op, &op->first);
        return;
    }
    for (unsigned b = 0; b < op->shards; b++)
        op->parts[b].ok = false; /* from now on: sealed */
    fanout(op, bucket_part_send, bucket_part_reply, sealed, "seal");
}

static void delete_buckets(struct ekv_keyspace_op *op)
{
    if (op->shards == 1)
        fanout(op, bucket_part_send, bucket_part_reply, sealed, "seal");
    else
        fanout(op, bucket_part_send, bucket_part_reply, checked, "check");
}

static void on_delete_learned(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    if (!learned(op, status, r, &res))
        op_answer(op, &res);
    else
        delete_buckets(op);
}

struct ekv_keyspace_op *ekv_keyspace_store_delete(struct ekv_keyspace *ks, const char *sid,
                                                  size_t sid_len, ekv_keyspace_done_cb *cb,
                                                  void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_STORE_BUCKET, arg, sid, sid_len);

    op->kind = KIND_DONE;
    op->cb.done = cb;
    send_learn(op, on_delete_learned); /* also: is there such a store? */
    return op;
}

static void on_checked(int status, const struct redisReply *r, void *arg)
{
    struct ekv_keyspace_op *op = arg;
    struct ekv_ks_result res;

    (void)learned(op, status, r, &res);
    op_answer(op, &res);
}

struct ekv_keyspace_op *ekv_keyspace_store_check(struct ekv_keyspace *ks, const char *sid,
                                                 size_t sid_len, ekv_keyspace_done_cb *cb,
                                                 void *arg)
{
    struct ekv_keyspace_op *op = op_new(ks, EKV_KS_SCRIPT_COUNT, arg, sid, sid_len);

    op->kind = KIND_DONE;
    op->cb.done = cb;
    send_learn(op, on_checked);
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
    op_free(op);
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
    op_free(op);
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
    op_free(op);
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
