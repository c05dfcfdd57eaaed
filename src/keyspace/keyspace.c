/* keyspace.c - the keyspace module itself: its lifecycle, the script table handed to the
 * origin, the origin's state and observer callbacks translated into the keyspace's own, and the
 * key layout of DESIGN.md "Origin data model" (Redis keys, cache keys, tracking prefixes). The
 * operations are in ops.c, the reply decoders in decode.c. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#include "keyspace/lua_sources.h"
#include "keyspace_int.h"

/* The Redis key layout: "<ns>" then one of these. An item is "i:{<tag>}:<key>", its bucket's
 * tag <sid> or <sid>:<b> (keyspace.h); its cache key is the rest after ITEM_KIND,
 * "{<tag>}:<key>", so an invalidated Redis key maps to its cache key without a copy. */
#define ITEM_KIND "i:"

const char *const ekv_ks_script_names[EKV_KS_SCRIPT_COUNT] = {
    [EKV_KS_SCRIPT_ITEM_PUT] = "item_put",         [EKV_KS_SCRIPT_ITEM_DELETE] = "item_delete",
    [EKV_KS_SCRIPT_KEY_LIST] = "key_list",         [EKV_KS_SCRIPT_STORE_CREATE] = "store_create",
    [EKV_KS_SCRIPT_STORE_LIST] = "store_list",     [EKV_KS_SCRIPT_STORE_RENAME] = "store_rename",
    [EKV_KS_SCRIPT_STORE_DELETE] = "store_delete", [EKV_KS_SCRIPT_RESOLVE] = "resolve",
    [EKV_KS_SCRIPT_LINK_CREATE] = "link_create",   [EKV_KS_SCRIPT_LINK_UPDATE] = "link_update",
    [EKV_KS_SCRIPT_LINK_DELETE] = "link_delete",   [EKV_KS_SCRIPT_STORE_BUCKET] = "store_bucket",
    [EKV_KS_SCRIPT_LAYOUT_UPGRADE] = "layout_upgrade",
};

/* The observer's op of each script (the `op` label of the origin metrics). */
static const enum ekv_ks_op script_op[EKV_KS_SCRIPT_COUNT] = {
    [EKV_KS_SCRIPT_ITEM_PUT] = EKV_KS_OP_PUT,       [EKV_KS_SCRIPT_ITEM_DELETE] = EKV_KS_OP_DELETE,
    [EKV_KS_SCRIPT_KEY_LIST] = EKV_KS_OP_LIST,      [EKV_KS_SCRIPT_STORE_CREATE] = EKV_KS_OP_STORE,
    [EKV_KS_SCRIPT_STORE_LIST] = EKV_KS_OP_STORE,   [EKV_KS_SCRIPT_STORE_RENAME] = EKV_KS_OP_STORE,
    [EKV_KS_SCRIPT_STORE_DELETE] = EKV_KS_OP_STORE, [EKV_KS_SCRIPT_RESOLVE] = EKV_KS_OP_RESOLVE,
    [EKV_KS_SCRIPT_LINK_CREATE] = EKV_KS_OP_LINK,   [EKV_KS_SCRIPT_LINK_UPDATE] = EKV_KS_OP_LINK,
    [EKV_KS_SCRIPT_LINK_DELETE] = EKV_KS_OP_LINK,   [EKV_KS_SCRIPT_STORE_BUCKET] = EKV_KS_OP_STORE,
    [EKV_KS_SCRIPT_LAYOUT_UPGRADE] = EKV_KS_OP_STORE,
};

/* ---------------------------------------------------------------- keys */

void ekv_ks_key_init(struct ekv_ks_key *k, const struct ekv_keyspace *ks, const char *kind,
                     const char *mid, size_t mid_len, const char *sep, const char *tail,
                     size_t tail_len)
{
    size_t kl = strlen(kind), sl = sep != NULL ? strlen(sep) : 0;
    size_t n = ks->ns_len + kl + mid_len + sl + tail_len;
    char *p;

    k->p = n < sizeof(k->buf) ? k->buf : ekv_malloc(n + 1);
    k->len = n;
    p = k->p;
    memcpy(p, ks->ns, ks->ns_len);
    p += ks->ns_len;
    memcpy(p, kind, kl);
    p += kl;
    if (mid_len > 0)
        memcpy(p, mid, mid_len);
    p += mid_len;
    if (sl > 0)
        memcpy(p, sep, sl);
    p += sl;
    if (tail_len > 0)
        memcpy(p, tail, tail_len);
    p[tail_len] = '\0';
}

void ekv_ks_key_clear(struct ekv_ks_key *k)
{
    if (k->p != k->buf)
        ekv_free(k->p);
    k->p = NULL;
}

unsigned ekv_keyspace_bucket(const char *key, size_t key_len, unsigned shards)
{
    return shards > 1 ? ekv_origin_crc16(key, key_len) % shards : 0;
}

size_t ekv_ks_tag(char *out, const char *sid, size_t sid_len, unsigned shards, unsigned b)
{
    size_t n = sid_len;
    char digits[8];
    size_t nd = 0;

    memcpy(out, sid, sid_len);
    if (shards <= 1)
        return n;
    out[n++] = ':';
    do {
        digits[nd++] = (char)('0' + b % 10);
        b /= 10;
    } while (b > 0);
    while (nd > 0)
        out[n++] = digits[--nd];
    return n;
}

unsigned ekv_keyspace_item_slot(const char *sid, size_t sid_len, unsigned shards, const char *key,
                                size_t key_len)
{
    char tag[EKV_KS_SID_MAX + 8];

    if (sid_len > EKV_KS_SID_MAX)
        sid_len = EKV_KS_SID_MAX; /* never so: the API takes no longer ids */
    return ekv_origin_keyslot(
        tag, ekv_ks_tag(tag, sid, sid_len, shards, ekv_keyspace_bucket(key, key_len, shards)));
}

unsigned ekv_keyspace_registry_slot(void)
{
    return ekv_origin_keyslot("registry", 8);
}

size_t ekv_keyspace_cache_key(char *out, const char *sid, size_t sid_len, unsigned shards,
                              const char *key, size_t key_len)
{
    size_t n;

    out[0] = '{';
    n = 1 + ekv_ks_tag(out + 1, sid, sid_len, shards, ekv_keyspace_bucket(key, key_len, shards));
    out[n++] = '}';
    out[n++] = ':';
    memcpy(out + n, key, key_len);
    return n + key_len;
}

/* ---------------------------------------------------------------- the buckets of stores */

#define SHARDS_CAP_MIN 64
#define SHARDS_CAP_MAX 65536 /* full: forget everything, and learn again what is used */

static uint32_t sid_hash(const char *sid, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)sid[i]) * 16777619u;
    return h;
}

static struct ekv_ks_shards_ent *shards_slot(struct ekv_ks_shards_ent *t, size_t cap,
                                             const char *sid, size_t len)
{
    size_t i = sid_hash(sid, len) & (cap - 1);

    while (t[i].shards != 0 && (t[i].len != len || memcmp(t[i].sid, sid, len) != 0))
        i = (i + 1) & (cap - 1);
    return &t[i];
}

static unsigned shards_find(const struct ekv_keyspace *ks, const char *sid, size_t sid_len)
{
    if (ks->shards == NULL)
        return 0;
    return shards_slot(ks->shards, ks->shards_cap, sid, sid_len)->shards;
}

static void shards_put(struct ekv_keyspace *ks, const char *sid, size_t sid_len, unsigned shards)
{
    struct ekv_ks_shards_ent *e;

    if (ks->shards == NULL || (ks->shards_n + 1) * 2 > ks->shards_cap) {
        size_t cap = ks->shards == NULL ? SHARDS_CAP_MIN : ks->shards_cap * 2;
        struct ekv_ks_shards_ent *old = ks->shards, *t;
        size_t oldcap = ks->shards_cap;

        if (cap > SHARDS_CAP_MAX) { /* more stores seen than any deployment has: start over */
            cap = SHARDS_CAP_MAX;
            oldcap = 0;
            ks->shards_n = 0;
        }
        t = ekv_calloc(cap, sizeof(*t));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].shards != 0)
                *shards_slot(t, cap, old[i].sid, old[i].len) = old[i];
        ekv_free(old);
        ks->shards = t;
        ks->shards_cap = cap;
    }
    e = shards_slot(ks->shards, ks->shards_cap, sid, sid_len);
    if (e->shards == 0)
        ks->shards_n++;
    e->shards = (uint16_t)shards;
    e->len = (uint8_t)sid_len;
    memcpy(e->sid, sid, sid_len);
}

/* The hit path finds a store in the keyspace's own table, lock-free (a keyspace is used on one
 * thread); what another worker learned is found in the shared keyspace's, under its lock, once
 * per store and worker. */
unsigned ekv_keyspace_store_shards(struct ekv_keyspace *ks, const char *sid, size_t sid_len)
{
    unsigned n;

    if (sid_len > EKV_KS_SID_MAX)
        return 0;
    n = shards_find(ks, sid, sid_len);
    if (n != 0 || ks->shared == NULL)
        return n;
    pthread_mutex_lock(&ks->shared->lock);
    n = shards_find(ks->shared, sid, sid_len);
    pthread_mutex_unlock(&ks->shared->lock);
    if (n != 0)
        shards_put(ks, sid, sid_len, n);
    return n;
}

void ekv_ks_shards_learn(struct ekv_keyspace *ks, const char *sid, size_t sid_len,
                         unsigned shards)
{
    if (sid_len > EKV_KS_SID_MAX || shards < 1 || shards > EKV_KS_SHARDS_MAX)
        return;
    shards_put(ks, sid, sid_len, shards);
    if (ks->shared != NULL) {
        pthread_mutex_lock(&ks->shared->lock);
        shards_put(ks->shared, sid, sid_len, shards);
        pthread_mutex_unlock(&ks->shared->lock);
    }
}

const char *const *ekv_keyspace_tracking_prefixes(const struct ekv_keyspace *ks, size_t *n)
{
    *n = EKV_KS_NPREFIXES;
    return (const char *const *)ks->prefixes;
}

const char *ekv_keyspace_heartbeat_channel(const struct ekv_keyspace *ks)
{
    return ks->heartbeat;
}

enum ekv_ks_tracked ekv_keyspace_cache_key_of_redis_key(const struct ekv_keyspace *ks,
                                                        const char *rkey, size_t len,
                                                        const char **ckey, size_t *ckey_len)
{
    size_t plen = ks->ns_len + strlen(ITEM_KIND);

    if (len >= plen && memcmp(rkey, ks->prefixes[0], plen) == 0) {
        *ckey = rkey + plen;
        *ckey_len = len - plen;
        return EKV_KS_TRACKED_ITEM;
    }
    *ckey = NULL;
    *ckey_len = 0;
    return EKV_KS_TRACKED_NAMES;
}

/* ---------------------------------------------------------------- the origin's callbacks */

static void on_state(bool connected, void *arg)
{
    struct ekv_keyspace *ks = arg;

    if (ks->hooks.on_state != NULL)
        ks->hooks.on_state(connected, ks->hooks.arg);
}

/* A script by its job, a pipeline by its tag (ops.c tags them with their enum ekv_ks_op),
 * every plain command as a store op (as the metrics always counted them). */
static void on_observe(enum ekv_origin_kind kind, size_t id, int status, bool error_reply,
                       uint64_t latency_us, void *arg)
{
    struct ekv_keyspace *ks = arg;
    enum ekv_ks_op op = EKV_KS_OP_STORE;
    enum ekv_ks_outcome outcome = status == EKV_ETIMEDOUT ? EKV_KS_ORIGIN_TIMEOUT
                                  : status != EKV_OK      ? EKV_KS_ORIGIN_DOWN
                                  : error_reply           ? EKV_KS_ORIGIN_ERROR
                                                          : EKV_KS_OK;

    if (ks->hooks.on_observe == NULL)
        return;
    if (kind == EKV_ORIGIN_PIPELINE && id < EKV_KS_OP_COUNT)
        op = (enum ekv_ks_op)id;
    else if (kind == EKV_ORIGIN_SCRIPT && id < ekv_lua_nsources)
        op = (enum ekv_ks_op)ks->op_of_script[id];
    ks->hooks.on_observe(op, outcome, latency_us, ks->hooks.arg);
}

/* ---------------------------------------------------------------- the module */

static char *concat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = ekv_malloc(n);

    snprintf(s, n, "%s%s", a, b);
    return s;
}

struct ekv_keyspace *ekv_keyspace_new(const struct ekv_keyspace_opts *opts)
{
    struct ekv_keyspace *ks = ekv_calloc(1, sizeof(*ks));
    const char *ns = opts->ns != NULL ? opts->ns : "";
    static const char *const suffix[EKV_KS_NPREFIXES] = {ITEM_KIND, "stores", "links:"};

    ks->origin = opts->origin;
    ks->shared = opts->shared;
    pthread_mutex_init(&ks->lock, NULL);
    ks->ns = ekv_strdup(ns);
    ks->ns_len = strlen(ns);
    for (int i = 0; i < EKV_KS_NPREFIXES; i++)
        ks->prefixes[i] = concat(ns, suffix[i]);
    ks->heartbeat = concat(ns, "heartbeat");
    /* the table ekv_keyspace_scripts() hands to the origin is ekv_lua_sources[], in its order */
    ks->op_of_script = ekv_calloc(ekv_lua_nsources, 1);
    for (size_t i = 0; i < EKV_KS_SCRIPT_COUNT; i++) {
        unsigned k;

        for (k = 0; k < ekv_lua_nsources; k++)
            if (strcmp(ekv_lua_sources[k].name, ekv_ks_script_names[i]) == 0)
                break;
        if (k == ekv_lua_nsources) {
            EKV_FATAL("built without the Lua script %s.lua (see LUA_FILES)",
                      ekv_ks_script_names[i]);
        }
        ks->script[i] = k;
        ks->op_of_script[k] = (unsigned char)script_op[i];
    }
    if (ks->origin != NULL) {
        ekv_origin_set_state_cb(ks->origin, on_state, ks);
        ekv_origin_set_observer(ks->origin, on_observe, ks);
    }
    return ks;
}

void ekv_keyspace_free(struct ekv_keyspace *ks)
{
    if (ks == NULL)
        return;
    for (int i = 0; i < EKV_KS_NPREFIXES; i++)
        ekv_free(ks->prefixes[i]);
    ekv_free(ks->heartbeat);
    ekv_free(ks->op_of_script);
    ekv_free(ks->shards);
    pthread_mutex_destroy(&ks->lock);
    ekv_free(ks->ns);
    ekv_free(ks);
}

void ekv_keyspace_set_hooks(struct ekv_keyspace *ks, const struct ekv_keyspace_hooks *hooks)
{
    if (hooks != NULL)
        ks->hooks = *hooks;
    else
        memset(&ks->hooks, 0, sizeof(ks->hooks));
}

bool ekv_keyspace_connected(const struct ekv_keyspace *ks)
{
    return ks->origin != NULL && ekv_origin_connected(ks->origin);
}


const char **ekv_keyspace_setup(const char *ns, int *argc)
{
    const char **argv = ekv_calloc(7, sizeof(*argv));
    const char *body = NULL;

    for (unsigned i = 0; i < ekv_lua_nsources; i++)
        if (strcmp(ekv_lua_sources[i].name, ekv_ks_script_names[EKV_KS_SCRIPT_LAYOUT_UPGRADE]) == 0)
            body = ekv_lua_sources[i].body;
    if (body == NULL)
        EKV_FATAL("built without layout_upgrade.lua");
    argv[0] = "EVAL";
    argv[1] = body;
    argv[2] = "3";
    argv[3] = concat(ns, EKV_KS_REG_LAYOUT);
    argv[4] = concat(ns, "stores");
    argv[5] = concat(ns, EKV_KS_REG_STORES);
    argv[6] = ekv_strdup(ns);
    *argc = 7;
    return argv;
}

void ekv_keyspace_setup_free(const char **argv)
{
    for (int i = 3; i < 7; i++)
        ekv_free((char *)argv[i]);
    ekv_free(argv);
}

struct ekv_origin_script *ekv_keyspace_scripts(size_t *n)
{
    struct ekv_origin_script *s = ekv_calloc(ekv_lua_nsources, sizeof(*s));

    for (unsigned i = 0; i < ekv_lua_nsources; i++) {
        s[i].name = ekv_lua_sources[i].name;
        s[i].body = ekv_lua_sources[i].body;
    }
    *n = ekv_lua_nsources;
    return s;
}
