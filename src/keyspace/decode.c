/* decode.c - the keyspace's reply decoders: Redis replies into C structs and domain outcomes.
 * Pure: no I/O, no state. Every reply is checked for type and shape before it is read; anything
 * unexpected is EKV_KS_ORIGIN_PROTOCOL, never a crash, and never a value made up to fill a gap
 * (what may be absent, such as an item's metadata, is documented as such in keyspace.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/log.h"
#include "edgekv/keyspace.h"
#include "edgekv/origin.h"
#include "edgekv/text.h"

#include "keyspace_int.h"

const char *const ekv_ks_code_names[EKV_KS_CODE_COUNT] = {
    [EKV_KS_CODE_OK] = "OK",
    [EKV_KS_CODE_NO_STORE] = "NO_STORE",
    [EKV_KS_CODE_NO_KEY] = "NO_KEY",
    [EKV_KS_CODE_PRECONDITION_FAILED] = "PRECONDITION_FAILED",
    [EKV_KS_CODE_TOO_LARGE] = "TOO_LARGE",
    [EKV_KS_CODE_NAME_TAKEN] = "NAME_TAKEN",
    [EKV_KS_CODE_LIMIT] = "LIMIT",
    [EKV_KS_CODE_NOT_EMPTY] = "NOT_EMPTY",
    [EKV_KS_CODE_ID_TAKEN] = "ID_TAKEN",
    [EKV_KS_CODE_NO_LINK] = "NO_LINK",
};

/* What each script's codes mean; a code a script does not answer is a protocol error. */
struct code_map {
    enum ekv_ks_code code;
    enum ekv_ks_outcome outcome;
};

static const struct code_map item_put_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_STORE, EKV_KS_NO_STORE},
    {EKV_KS_CODE_PRECONDITION_FAILED, EKV_KS_PRECONDITION_FAILED},
    {EKV_KS_CODE_TOO_LARGE, EKV_KS_TOO_LARGE},
};
static const struct code_map item_delete_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_STORE, EKV_KS_NO_STORE},
    {EKV_KS_CODE_NO_KEY, EKV_KS_NO_KEY},
    {EKV_KS_CODE_PRECONDITION_FAILED, EKV_KS_PRECONDITION_FAILED},
};
static const struct code_map key_list_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_STORE, EKV_KS_NO_STORE},
};
static const struct code_map store_create_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NAME_TAKEN, EKV_KS_NAME_TAKEN},
    {EKV_KS_CODE_LIMIT, EKV_KS_LIMIT},
    {EKV_KS_CODE_ID_TAKEN, EKV_KS_ID_TAKEN},
};
static const struct code_map store_rename_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_STORE, EKV_KS_NO_STORE},
    {EKV_KS_CODE_NAME_TAKEN, EKV_KS_NAME_TAKEN},
};
static const struct code_map store_delete_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_STORE, EKV_KS_NO_STORE},
};
static const struct code_map store_bucket_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NOT_EMPTY, EKV_KS_NOT_EMPTY},
};
static const struct code_map link_create_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_STORE, EKV_KS_NO_TARGET}, /* the store to link to */
    {EKV_KS_CODE_NAME_TAKEN, EKV_KS_LINK_NAME_TAKEN},
};
static const struct code_map link_update_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_LINK, EKV_KS_NO_LINK},
    {EKV_KS_CODE_NAME_TAKEN, EKV_KS_LINK_NAME_TAKEN},
};
static const struct code_map link_delete_codes[] = {
    {EKV_KS_CODE_OK, EKV_KS_OK},
    {EKV_KS_CODE_NO_LINK, EKV_KS_NO_LINK},
};

static const struct {
    const struct code_map *map;
    size_t n;
} script_codes[EKV_KS_SCRIPT_COUNT] = {
#define CODES(s, m) [s] = {m, EKV_ARRAY_LEN(m)}
    CODES(EKV_KS_SCRIPT_ITEM_PUT, item_put_codes),
    CODES(EKV_KS_SCRIPT_ITEM_DELETE, item_delete_codes),
    CODES(EKV_KS_SCRIPT_KEY_LIST, key_list_codes),
    CODES(EKV_KS_SCRIPT_STORE_CREATE, store_create_codes),
    CODES(EKV_KS_SCRIPT_STORE_RENAME, store_rename_codes),
    CODES(EKV_KS_SCRIPT_STORE_DELETE, store_delete_codes),
    CODES(EKV_KS_SCRIPT_STORE_BUCKET, store_bucket_codes),
    CODES(EKV_KS_SCRIPT_LINK_CREATE, link_create_codes),
    CODES(EKV_KS_SCRIPT_LINK_UPDATE, link_update_codes),
    CODES(EKV_KS_SCRIPT_LINK_DELETE, link_delete_codes),
#undef CODES
};

static void set(struct ekv_ks_result *res, enum ekv_ks_outcome outcome)
{
    *res = (struct ekv_ks_result){.outcome = outcome};
}

static void malformed(struct ekv_ks_result *res, const char *what)
{
    *res = (struct ekv_ks_result){.outcome = EKV_KS_ORIGIN_PROTOCOL, .malformed = what};
}

bool ekv_ks_fault(int status, const struct redisReply *r, bool pipeline, struct ekv_ks_result *res)
{
    const redisReply *err;

    if (status == EKV_ETIMEDOUT) {
        set(res, EKV_KS_ORIGIN_TIMEOUT);
        return true;
    }
    if (status != EKV_OK || r == NULL) {
        set(res, EKV_KS_ORIGIN_DOWN);
        return true;
    }
    err = pipeline ? ekv_origin_pipeline_error(r) : r->type == REDIS_REPLY_ERROR ? r : NULL;
    if (err == NULL)
        return false;
    *res = (struct ekv_ks_result){.outcome = EKV_KS_ORIGIN_ERROR,
                                  .error = err->str != NULL ? err->str : "",
                                  .error_len = err->str != NULL ? err->len : 0};
    return true;
}

/* A string or nil (a field that may be absent): false for any other type. */
static bool string_or_nil(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL;
}

static struct ekv_ks_str view(const redisReply *r)
{
    return (struct ekv_ks_str){r->str, r->len};
}

/* A decimal int64 (optional '-'). */
static bool parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t v;

    if (len > 0 && s[0] == '-') {
        if (ekv_parse_u64(s + 1, len - 1, &v) != EKV_OK || v > (uint64_t)INT64_MAX)
            return false;
        *out = -(int64_t)v;
        return true;
    }
    if (ekv_parse_u64(s, len, &v) != EKV_OK || v > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

/* The script reply's code (its first element) as an outcome of @script, with *@n the reply's
 * element count. False with @res set for a malformed reply or a code @script never answers. An
 * answer other than EKV_KS_OK carries nothing else: one element. */
static bool code(const redisReply *r, enum ekv_ks_script script, struct ekv_ks_result *res)
{
    const redisReply *c;

    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
        (c = r->element[0])->type != REDIS_REPLY_INTEGER) {
        malformed(res, NULL);
        return false;
    }
    for (size_t i = 0; i < script_codes[script].n; i++) {
        const struct code_map *m = &script_codes[script].map[i];
        if ((long long)m->code != c->integer)
            continue;
        if (m->outcome != EKV_KS_OK && r->elements != 1) {
            malformed(res, NULL);
            return false;
        }
        set(res, m->outcome);
        return true;
    }
    malformed(res, NULL);
    return false;
}

/* ---------------------------------------------------------------- items */

void ekv_ks_decode_item(const struct redisReply *r, struct ekv_ks_result *res,
                        struct ekv_ks_item *item)
{
    const redisReply *pttl, *f, *v, *m, *g, *t;
    uint64_t gen;

    memset(item, 0, sizeof(*item));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        goto bad;
    pttl = r->element[0];
    f = r->element[1];
    if (pttl->type != REDIS_REPLY_INTEGER || f->type != REDIS_REPLY_ARRAY || f->elements != 4)
        goto bad;
    v = f->element[0];
    m = f->element[1];
    g = f->element[2];
    t = f->element[3];
    if (!string_or_nil(v) || !string_or_nil(m) || !string_or_nil(g) || !string_or_nil(t))
        goto bad;
    if (g->type == REDIS_REPLY_NIL) { /* no generation, no item (whatever else is there) */
        set(res, EKV_KS_NO_KEY);
        return;
    }
    if (ekv_parse_u64(g->str, g->len, &gen) != EKV_OK || gen > (uint64_t)INT64_MAX)
        goto bad;
    if (t->type == REDIS_REPLY_STRING && !parse_i64(t->str, t->len, &item->last_modified_ms))
        goto bad;
    item->value = v->type == REDIS_REPLY_STRING ? view(v) : (struct ekv_ks_str){"", 0};
    item->meta = m->type == REDIS_REPLY_STRING ? view(m) : (struct ekv_ks_str){"", 0};
    item->generation = gen;
    item->ttl_ms = pttl->integer >= -1 ? pttl->integer : -2;
    set(res, EKV_KS_OK);
    return;
bad:
    memset(item, 0, sizeof(*item));
    malformed(res, "item");
}

void ekv_ks_decode_shards(const struct redisReply *r, struct ekv_ks_result *res,
                          unsigned *shards)
{
    uint64_t n = 1;

    *shards = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !string_or_nil(r->element[0]) ||
        !string_or_nil(r->element[1])) {
        malformed(res, NULL);
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_NIL) {
        set(res, EKV_KS_NO_STORE);
        return;
    }
    if (r->element[1]->type == REDIS_REPLY_STRING &&
        (ekv_parse_u64(r->element[1]->str, r->element[1]->len, &n) != EKV_OK || n < 1 ||
         n > EKV_KS_SHARDS_MAX)) {
        malformed(res, "store"); /* no count of buckets edgekv writes */
        return;
    }
    *shards = (unsigned)n;
    set(res, EKV_KS_OK);
}

void ekv_ks_decode_exists(const struct redisReply *r, bool pipeline, struct ekv_ks_result *res)
{
    if (pipeline) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 1) {
            malformed(res, "item");
            return;
        }
        r = r->element[0];
    }
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
        malformed(res, pipeline ? "item" : NULL);
    else
        set(res, r->integer == 1 ? EKV_KS_OK : EKV_KS_NO_STORE);
}

void ekv_ks_decode_put(const struct redisReply *r, struct ekv_ks_result *res,
                       struct ekv_ks_written *w)
{
    memset(w, 0, sizeof(*w));
    if (!code(r, EKV_KS_SCRIPT_ITEM_PUT, res) || res->outcome != EKV_KS_OK)
        return;
    if (r->elements != 3 || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->integer < 0 || r->element[2]->type != REDIS_REPLY_INTEGER) {
        malformed(res, NULL);
        return;
    }
    w->generation = (uint64_t)r->element[1]->integer;
    w->last_modified_ms = r->element[2]->integer;
}

void ekv_ks_decode_code(const struct redisReply *r, enum ekv_ks_script script,
                        struct ekv_ks_result *res)
{
    if (code(r, script, res) && res->outcome == EKV_KS_OK && r->elements != 1)
        malformed(res, NULL);
}

void ekv_ks_decode_key_list(const struct redisReply *r, struct ekv_ks_result *res,
                            struct ekv_ks_page *page, struct ekv_ks_str **names)
{
    const redisReply *more;
    size_t n;

    memset(page, 0, sizeof(*page));
    *names = NULL;
    if (!code(r, EKV_KS_SCRIPT_KEY_LIST, res) || res->outcome != EKV_KS_OK)
        return;
    if (r->elements < 2 || (more = r->element[1])->type != REDIS_REPLY_INTEGER ||
        (more->integer != 0 && more->integer != 1))
        goto bad;
    n = r->elements - 2;
    for (size_t i = 0; i < n; i++)
        if (r->element[2 + i]->type != REDIS_REPLY_STRING)
            goto bad;
    if (n > 0) {
        *names = ekv_malloc(n * sizeof(**names));
        for (size_t i = 0; i < n; i++)
            (*names)[i] = view(r->element[2 + i]);
    }
    page->names = *names;
    page->count = n;
    page->more = more->integer == 1;
    return;
bad:
    malformed(res, NULL);
}

/* ---------------------------------------------------------------- stores */

void ekv_ks_decode_store_list(const struct redisReply *r, struct ekv_ks_result *res,
                              struct ekv_ks_store **stores, size_t *count)
{
    size_t n;

    *stores = NULL;
    *count = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 4 != 0) {
        malformed(res, NULL);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            malformed(res, NULL);
            return;
        }
    }
    n = r->elements / 4;
    if (n > 0)
        *stores = ekv_malloc(n * sizeof(**stores));
    for (size_t i = 0; i < n; i++) {
        struct ekv_ks_store *s = &(*stores)[i];
        s->name = view(r->element[4 * i]);
        s->id = view(r->element[4 * i + 1]);
        s->created_at = view(r->element[4 * i + 2]);
        s->updated_at = view(r->element[4 * i + 3]);
    }
    *count = n;
    set(res, EKV_KS_OK);
}

void ekv_ks_decode_store(const struct redisReply *r, const char *sid, size_t sid_len,
                         struct ekv_ks_result *res, struct ekv_ks_store *st)
{
    const struct ekv_ks_str none = {"", 0};

    memset(st, 0, sizeof(*st));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !string_or_nil(r->element[0]) ||
        !string_or_nil(r->element[1]) || !string_or_nil(r->element[2])) {
        malformed(res, NULL);
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_NIL) {
        set(res, EKV_KS_NO_STORE);
        return;
    }
    st->id = (struct ekv_ks_str){sid, sid_len};
    st->name = view(r->element[0]);
    st->created_at = r->element[1]->type == REDIS_REPLY_STRING ? view(r->element[1]) : none;
    st->updated_at = r->element[2]->type == REDIS_REPLY_STRING ? view(r->element[2]) : none;
    set(res, EKV_KS_OK);
}

void ekv_ks_decode_resolve(const struct redisReply *r, struct ekv_ks_result *res,
                           struct ekv_ks_str *sid)
{
    *sid = (struct ekv_ks_str){NULL, 0};
    if (r->type == REDIS_REPLY_NIL) {
        set(res, EKV_KS_NO_NAME);
    } else if (r->type == REDIS_REPLY_STRING) {
        *sid = view(r);
        set(res, EKV_KS_OK);
    } else {
        malformed(res, NULL);
    }
}

/* ---------------------------------------------------------------- links */

bool ekv_ks_decode_link_json(const char *j, size_t len, struct json_t **root, struct ekv_ks_link *l)
{
    json_t *s = json_loadb(j, len, 0, NULL);

    memset(l, 0, sizeof(*l));
    *root = NULL;
    if (s == NULL)
        return false;
    if (json_unpack(s, "{s:s%, s:s%, s:s%, s:s%, s:s%}", "id", &l->id.p, &l->id.len, "name",
                    &l->name.p, &l->name.len, "resource_id", &l->resource_id.p, &l->resource_id.len,
                    "created_at", &l->created_at.p, &l->created_at.len, "updated_at",
                    &l->updated_at.p, &l->updated_at.len) != 0) {
        json_decref(s);
        memset(l, 0, sizeof(*l));
        return false;
    }
    *root = s;
    return true;
}

void ekv_ks_decode_link(const struct redisReply *r, enum ekv_ks_script script,
                        struct ekv_ks_result *res, struct ekv_ks_link *l, bool *has_link,
                        struct json_t **root)
{
    const redisReply *j;

    memset(l, 0, sizeof(*l));
    *has_link = false;
    *root = NULL;
    if (script == EKV_KS_SCRIPT_COUNT) { /* HGET of one link */
        if (r->type == REDIS_REPLY_NIL) {
            set(res, EKV_KS_NO_LINK);
            return;
        }
        if (r->type != REDIS_REPLY_STRING) {
            malformed(res, NULL);
            return;
        }
        j = r;
    } else {
        if (!code(r, script, res) || res->outcome != EKV_KS_OK)
            return;
        if (script == EKV_KS_SCRIPT_LINK_DELETE) {
            if (r->elements != 1)
                malformed(res, NULL);
            return;
        }
        if (r->elements != 2 || r->element[1]->type != REDIS_REPLY_STRING) {
            malformed(res, NULL);
            return;
        }
        j = r->element[1];
    }
    if (!ekv_ks_decode_link_json(j->str, j->len, root, l)) {
        malformed(res, "link");
        return;
    }
    *has_link = true;
    set(res, EKV_KS_OK);
}

void ekv_ks_decode_links(const struct redisReply *r, struct ekv_ks_result *res,
                         struct ekv_ks_link **links, size_t *count, struct json_t **root)
{
    json_t *keep = NULL;
    size_t n = 0;

    *links = NULL;
    *count = 0;
    *root = NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        malformed(res, NULL);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) {
            malformed(res, NULL);
            return;
        }
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        struct ekv_ks_link l;
        json_t *one;

        /* 'l:<id>' holds a link ('n:<name>' its name's entry); one that is not well formed is
         * no link edgekv wrote: left out */
        if (f->len < 2 || memcmp(f->str, "l:", 2) != 0 ||
            !ekv_ks_decode_link_json(v->str, v->len, &one, &l))
            continue;
        if (keep == NULL) {
            keep = json_array();
            *links = ekv_malloc((r->elements / 2) * sizeof(**links));
        }
        if (keep == NULL || json_array_append_new(keep, one) != 0) /* keeps @l's views alive */
            EKV_FATAL("out of memory decoding resource links");
        (*links)[n++] = l;
    }
    *count = n;
    *root = keep;
    set(res, EKV_KS_OK);
}
