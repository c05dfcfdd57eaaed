/* fuzz_keyspace.c - libFuzzer target: the keyspace's reply decoders (src/keyspace/decode.c) on
 * whatever a Redis, or something posing as one, may answer. The input is RESP; each complete
 * reply is handed to every decoder, as the reply of a plain command and, with the reply before
 * it, as the answer of a pipeline (origin.c's: an array of its commands' replies), after the
 * fault check that precedes every decoder in ops.c.
 *
 * Invariants: the outcome is one the decoder may give; every view a decoder fills points into
 * the reply (all its bytes are read, for ASan to check); what is documented as bounded is. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/keyspace.h"

#include "keyspace_int.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_keyspace: %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile unsigned sink;

/* Reads every byte of a view (ASan checks each one is inside the reply). */
static void touch(struct ekv_ks_str s)
{
    unsigned acc = 0;

    CHECK(s.len == 0 || s.p != NULL);
    for (size_t i = 0; i < s.len; i++)
        acc += (unsigned char)s.p[i];
    sink += acc;
}

static void check_result(const struct ekv_ks_result *res)
{
    CHECK(res->outcome >= 0 && res->outcome < EKV_KS_OUTCOME_COUNT);
    CHECK(res->outcome != EKV_KS_ORIGIN_DOWN && res->outcome != EKV_KS_ORIGIN_TIMEOUT);
    if (res->outcome == EKV_KS_ORIGIN_ERROR)
        touch((struct ekv_ks_str){res->error, res->error_len});
    else
        CHECK(res->error == NULL);
}

static void touch_link(const struct ekv_ks_link *l)
{
    touch(l->id);
    touch(l->name);
    touch(l->resource_id);
    touch(l->created_at);
    touch(l->updated_at);
}

/* Every decoder on @r, as ops.c calls them. */
static void decode_all(const redisReply *r)
{
    static const enum ekv_ks_script code_scripts[] = {
        EKV_KS_SCRIPT_ITEM_DELETE, EKV_KS_SCRIPT_STORE_CREATE, EKV_KS_SCRIPT_STORE_RENAME,
        EKV_KS_SCRIPT_STORE_DELETE, EKV_KS_SCRIPT_STORE_BUCKET};
    static const enum ekv_ks_script link_scripts[] = {
        EKV_KS_SCRIPT_LINK_CREATE, EKV_KS_SCRIPT_LINK_UPDATE, EKV_KS_SCRIPT_LINK_DELETE,
        EKV_KS_SCRIPT_COUNT};
    struct ekv_ks_result res;

    /* pipelines: the item read {PTTL, HMGET}, the store check {EXISTS} */
    if (!ekv_ks_fault(EKV_OK, r, true, &res)) {
        struct ekv_ks_item item;

        ekv_ks_decode_item(r, &res, &item);
        check_result(&res);
        if (res.outcome == EKV_KS_OK) {
            touch(item.value);
            touch(item.meta);
            CHECK(item.ttl_ms >= -2);
            CHECK(item.generation <= (uint64_t)INT64_MAX);
        }
        ekv_ks_decode_exists(r, true, &res);
        check_result(&res);
    } else {
        check_result(&res);
    }
    if (ekv_ks_fault(EKV_OK, r, false, &res)) {
        check_result(&res);
        CHECK(res.outcome == EKV_KS_ORIGIN_ERROR);
        return;
    }
    {
        struct ekv_ks_written w;
        ekv_ks_decode_put(r, &res, &w);
        check_result(&res);
    }
    for (size_t i = 0; i < EKV_ARRAY_LEN(code_scripts); i++) {
        ekv_ks_decode_code(r, code_scripts[i], &res);
        check_result(&res);
    }
    {
        struct ekv_ks_page page;
        struct ekv_ks_str *names;
        ekv_ks_decode_key_list(r, &res, &page, &names);
        check_result(&res);
        if (res.outcome == EKV_KS_OK) {
            CHECK(page.names == names);
            CHECK((page.count == 0) == (names == NULL));
            for (size_t i = 0; i < page.count; i++)
                touch(page.names[i]);
        }
        ekv_free(names);
    }
    {
        struct ekv_ks_store *stores;
        size_t n;
        ekv_ks_decode_store_list(r, &res, &stores, &n);
        check_result(&res);
        for (size_t i = 0; i < n; i++) {
            touch(stores[i].id);
            touch(stores[i].name);
            touch(stores[i].created_at);
            touch(stores[i].updated_at);
        }
        ekv_free(stores);
    }
    {
        struct ekv_ks_store st;
        ekv_ks_decode_store(r, "sid", 3, &res, &st);
        check_result(&res);
        if (res.outcome == EKV_KS_OK) {
            touch(st.name);
            touch(st.created_at);
            touch(st.updated_at);
        }
    }
    ekv_ks_decode_exists(r, false, &res);
    {
        unsigned shards;

        ekv_ks_decode_shards(r, &res, &shards);
        if (res.outcome == EKV_KS_OK && (shards < 1 || shards > EKV_KS_SHARDS_MAX))
            __builtin_trap(); /* never a count of buckets edgekv does not write */
    }
    check_result(&res);
    {
        struct ekv_ks_str sid;
        ekv_ks_decode_resolve(r, &res, &sid);
        check_result(&res);
        if (res.outcome == EKV_KS_OK)
            touch(sid);
    }
    for (size_t i = 0; i < EKV_ARRAY_LEN(link_scripts); i++) {
        struct ekv_ks_link l;
        bool has_link;
        json_t *root;
        ekv_ks_decode_link(r, link_scripts[i], &res, &l, &has_link, &root);
        check_result(&res);
        CHECK(!has_link || res.outcome == EKV_KS_OK);
        if (has_link)
            touch_link(&l);
        json_decref(root);
    }
    {
        struct ekv_ks_link *links;
        size_t n;
        json_t *root;
        ekv_ks_decode_links(r, &res, &links, &n, &root);
        check_result(&res);
        for (size_t i = 0; i < n; i++)
            touch_link(&links[i]);
        ekv_free(links);
        json_decref(root);
    }
    if (r->type == REDIS_REPLY_STRING) {
        struct ekv_ks_link l;
        json_t *root;
        if (ekv_ks_decode_link_json(r->str, r->len, &root, &l))
            touch_link(&l);
        json_decref(root);
    }
}

#define MAX_REPLIES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReply *got[MAX_REPLIES];
    size_t n = fuzz_resp_read((const char *)data, size, got, MAX_REPLIES);

    for (size_t i = 0; i < n; i++) {
        /* the reply alone, and as the answer of a pipeline of one command and of two (with
         * the reply after it), which origin.c hands over as an array of the replies */
        redisReply answer = {.type = REDIS_REPLY_ARRAY, .elements = i + 1 < n ? 2 : 1,
                             .element = &got[i]};

        decode_all(got[i]);
        decode_all(&answer);
        if (answer.elements == 2) {
            answer.elements = 1;
            decode_all(&answer);
        }
    }
    for (size_t i = 0; i < n; i++)
        fuzz_resp_free(got[i]);
    return 0;
}
