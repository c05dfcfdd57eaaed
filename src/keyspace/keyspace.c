/* keyspace.c - the keyspace module itself: its lifecycle, the script table handed to the
 * origin, the origin's state and observer callbacks translated into the keyspace's own, and the
 * key layout of DESIGN.md "Origin data model" (Redis keys, cache keys, tracking prefixes). The
 * operations are in ops.c, the reply decoders in decode.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#include "keyspace/lua_sources.h"
#include "keyspace_int.h"

/* The Redis key layout: "<ns>" then one of these. An item is "i:{<sid>}:<key>"; its cache key
 * is the rest after ITEM_KIND, "{<sid>}:<key>", so an invalidated Redis key maps to its cache
 * key without a copy. */
#define ITEM_KIND "i:"

const char *const ekv_ks_script_names[EKV_KS_SCRIPT_COUNT] = {
    [EKV_KS_SCRIPT_ITEM_PUT] = "item_put",         [EKV_KS_SCRIPT_ITEM_DELETE] = "item_delete",
    [EKV_KS_SCRIPT_KEY_LIST] = "key_list",         [EKV_KS_SCRIPT_STORE_CREATE] = "store_create",
    [EKV_KS_SCRIPT_STORE_LIST] = "store_list",     [EKV_KS_SCRIPT_STORE_RENAME] = "store_rename",
    [EKV_KS_SCRIPT_STORE_DELETE] = "store_delete", [EKV_KS_SCRIPT_RESOLVE] = "resolve",
    [EKV_KS_SCRIPT_LINK_CREATE] = "link_create",   [EKV_KS_SCRIPT_LINK_UPDATE] = "link_update",
    [EKV_KS_SCRIPT_LINK_DELETE] = "link_delete",   [EKV_KS_SCRIPT_STORE_PURGE] = "store_purge",
    [EKV_KS_SCRIPT_LAYOUT_UPGRADE] = "layout_upgrade",
};

/* The observer's op of each script (the `op` label of the origin metrics). */
static const enum ekv_ks_op script_op[EKV_KS_SCRIPT_COUNT] = {
    [EKV_KS_SCRIPT_ITEM_PUT] = EKV_KS_OP_PUT,       [EKV_KS_SCRIPT_ITEM_DELETE] = EKV_KS_OP_DELETE,
    [EKV_KS_SCRIPT_KEY_LIST] = EKV_KS_OP_LIST,      [EKV_KS_SCRIPT_STORE_CREATE] = EKV_KS_OP_STORE,
    [EKV_KS_SCRIPT_STORE_LIST] = EKV_KS_OP_STORE,   [EKV_KS_SCRIPT_STORE_RENAME] = EKV_KS_OP_STORE,
    [EKV_KS_SCRIPT_STORE_DELETE] = EKV_KS_OP_STORE, [EKV_KS_SCRIPT_RESOLVE] = EKV_KS_OP_RESOLVE,
    [EKV_KS_SCRIPT_LINK_CREATE] = EKV_KS_OP_LINK,   [EKV_KS_SCRIPT_LINK_UPDATE] = EKV_KS_OP_LINK,
    [EKV_KS_SCRIPT_LINK_DELETE] = EKV_KS_OP_LINK,   [EKV_KS_SCRIPT_STORE_PURGE] = EKV_KS_OP_STORE,
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

unsigned ekv_keyspace_item_slot(const char *sid, size_t sid_len)
{
    return ekv_origin_keyslot(sid, sid_len);
}

unsigned ekv_keyspace_registry_slot(void)
{
    return ekv_origin_keyslot("registry", 8);
}

size_t ekv_keyspace_cache_key(char *out, const char *sid, size_t sid_len, const char *key,
                              size_t key_len)
{
    out[0] = '{';
    memcpy(out + 1, sid, sid_len);
    out[sid_len + 1] = '}';
    out[sid_len + 2] = ':';
    memcpy(out + sid_len + 3, key, key_len);
    return sid_len + EKV_KS_CACHE_KEY_OVERHEAD + key_len;
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

void ekv_keyspace_cancel(struct ekv_keyspace_op *op)
{
    ekv_origin_cancel(op->inner);
    ekv_free(op);
}
