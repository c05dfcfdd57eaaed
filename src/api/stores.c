/* stores.c - store management: create (201), list (cursor, limit, name, total), describe,
 * rename and delete (204; 409 while it holds keys). Every change is one keyspace operation. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/keyspace.h"

#include "api_int.h"

#define CREATE_TRIES 3 /* fresh ids after an id collision (never seen in practice) */

struct store_op {
    struct ekv_api *api;
    struct ekv_http_req *req;
    char sid[EKV_ID_MAX + 1];
    size_t sid_len;
    char name[EKV_NAME_MAX + 1];
    char now[20];
    unsigned tries;
    /* list */
    unsigned limit;
    char cursor[EKV_NAME_MAX + 1];
    bool has_cursor;
    char filter[EKV_NAME_MAX + 1];
    bool has_filter;
};

static struct store_op *op_new(struct ekv_api *api, struct ekv_http_req *req)
{
    struct store_op *op = ekv_calloc(1, sizeof(*op));

    op->api = api;
    op->req = req;
    ekv_fmt_store_time((long long)time(NULL), op->now);
    return op;
}

static json_t *store_json(const char *id, size_t idlen, const char *name, size_t namelen,
                          const char *created, size_t clen, const char *updated, size_t ulen)
{
    return json_pack("{s:s%, s:s%, s:s%, s:s%}", "id", id, idlen, "name", name, namelen,
                     "created_at", created, clen, "updated_at", updated, ulen);
}

/* The store name of a JSON body {"name": "..."}; answers 400 and returns false if unusable. */
static bool body_name(struct ekv_http_req *req, char name[EKV_NAME_MAX + 1])
{
    struct evbuffer *body = ekv_http_req_body(req);
    size_t len = evbuffer_get_length(body);
    const char *text = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *n;
    const char *why;

    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        ekv_http_respond_problem(req, 400, "the body must be a JSON object {\"name\": \"...\"}");
        return false;
    }
    n = json_object_get(root, "name");
    if (!json_is_string(n)) {
        json_decref(root);
        ekv_http_respond_problem(req, 400, "name is required");
        return false;
    }
    if ((why = ekv_name_check(json_string_value(n), json_string_length(n))) != NULL) {
        json_decref(root);
        ekv_http_respond_problem(req, 400, why);
        return false;
    }
    memcpy(name, json_string_value(n), json_string_length(n) + 1);
    json_decref(root);
    return true;
}

/* ---------------------------------------------------------------- create */

static void send_create(struct store_op *op);

static void on_create(const struct ekv_ks_result *res, void *arg)
{
    struct store_op *op = arg;
    struct ekv_http_req *req = op->req;

    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    if (res->outcome == EKV_KS_ID_TAKEN && ++op->tries < CREATE_TRIES) {
        send_create(op);
        return;
    }
    if (res->outcome != EKV_KS_OK)
        ekv_api_respond_outcome(op->api, req, res);
    else
        ekv_api_respond_json(req, 201,
                             store_json(op->sid, op->sid_len, op->name, strlen(op->name), op->now,
                                        strlen(op->now), op->now, strlen(op->now)));
    ekv_free(op);
}

static void send_create(struct store_op *op)
{
    struct ekv_api *api = op->api;
    char id[EKV_ID_LEN + 1];

    ekv_api_new_id(api, id);
    memcpy(op->sid, id, sizeof(id));
    op->sid_len = EKV_ID_LEN;
    ekv_keyspace_store_create(api->ks, op->sid, op->sid_len, op->name, strlen(op->name), op->now,
                              api->conf->store_shards, api->conf->max_stores, on_create, op);
}

static void create(struct ekv_api *api, struct ekv_http_req *req)
{
    static const char *const locations[] = {"US", "EU", "ASIA", "AUS"};
    size_t qlen, n;
    const char *q = ekv_http_req_query(req, &qlen);
    char loc[8];
    struct store_op *op;
    int rc = ekv_query_param(q, qlen, "location", EKV_QUERY_URL, loc, sizeof(loc), &n);

    if (rc != EKV_ENOTFOUND) {
        bool ok = false;
        for (size_t i = 0; rc == EKV_OK && i < EKV_ARRAY_LEN(locations); i++)
            ok |= n == strlen(locations[i]) && memcmp(loc, locations[i], n) == 0;
        if (!ok) {
            ekv_http_respond_problem(req, 400, "location must be US, EU, ASIA or AUS");
            return;
        }
    }
    op = op_new(api, req);
    if (!body_name(req, op->name)) {
        ekv_free(op);
        return;
    }
    send_create(op);
}

/* ---------------------------------------------------------------- list */

static int row_cmp(const void *a, const void *b)
{
    const struct ekv_ks_store *x = a, *y = b;
    int c = memcmp(x->name.p, y->name.p, EKV_MIN(x->name.len, y->name.len));

    if (c != 0)
        return c;
    return x->name.len < y->name.len ? -1 : x->name.len > y->name.len;
}

static void on_list(const struct ekv_ks_result *res, struct ekv_ks_store *rows, size_t total,
                    void *arg)
{
    struct store_op *op = arg;
    size_t start = 0, taken = 0;
    json_t *data, *meta;
    bool more = false;

    if (res->outcome != EKV_KS_OK) {
        ekv_api_respond_outcome(op->api, op->req, res);
        goto out;
    }
    if (total > 0)
        qsort(rows, total, sizeof(*rows), row_cmp);
    if (op->has_cursor) {
        struct ekv_ks_store key = {.name = {op->cursor, strlen(op->cursor)}};
        while (start < total && row_cmp(&rows[start], &key) <= 0)
            start++;
    }
    data = json_array();
    for (size_t i = start; i < total; i++) {
        const struct ekv_ks_store *w = &rows[i];
        json_t *o;

        if (op->has_filter &&
            (w->name.len != strlen(op->filter) || memcmp(w->name.p, op->filter, w->name.len) != 0))
            continue;
        if (taken == op->limit) {
            more = true;
            break;
        }
        o = store_json(w->id.p, w->id.len, w->name.p, w->name.len, w->created_at.p,
                       w->created_at.len, w->updated_at.p, w->updated_at.len);
        if (o == NULL) /* not UTF-8: not a record edgekv wrote */
            continue;
        json_array_append_new(data, o);
        taken++;
    }
    meta = json_pack("{s:I, s:I}", "limit", (json_int_t)op->limit, "total", (json_int_t)total);
    if (more) {
        const json_t *last = json_array_get(data, json_array_size(data) - 1);
        const char *name = json_string_value(json_object_get(last, "name"));
        char cur[2 * EKV_NAME_MAX];
        ekv_cursor_encode(name, strlen(name), cur);
        json_object_set_new(meta, "next_cursor", json_string(cur));
    }
    ekv_api_respond_json(op->req, 200, json_pack("{s:o, s:o}", "data", data, "meta", meta));
out:
    ekv_free(op);
}

static void list(struct ekv_api *api, struct ekv_http_req *req)
{
    size_t qlen, n, clen;
    const char *q = ekv_http_req_query(req, &qlen);
    const char *why;
    struct store_op *op = op_new(api, req);
    int rc;

    why = ekv_list_params(q, qlen, &op->limit, op->cursor, sizeof(op->cursor) - 1, &clen);
    if (why == NULL && clen > 0 && ekv_name_check(op->cursor, clen) != NULL)
        why = "invalid cursor";
    if (why != NULL) {
        ekv_http_respond_problem(req, 400, why);
        goto fail;
    }
    op->cursor[clen] = '\0';
    op->has_cursor = clen > 0;
    rc = ekv_query_param(q, qlen, "name", EKV_QUERY_URL, op->filter, sizeof(op->filter) - 1, &n);
    if (rc == EKV_EINVAL) {
        ekv_http_respond_problem(req, 400, "invalid name");
        goto fail;
    }
    if (rc == EKV_OK && n > 0) {
        op->filter[n] = '\0';
        op->has_filter = true;
    } else if (rc == EKV_ETOOBIG) { /* longer than any store name: matches nothing */
        strcpy(op->filter, "\x01");
        op->has_filter = true;
    }
    ekv_keyspace_store_list(api->ks, on_list, op);
    return;
fail:
    ekv_free(op);
}

void ekv_stores_collection(struct ekv_api *api, struct ekv_http_req *req,
                           const struct ekv_route_capture *cap)
{
    if (ekv_http_req_method(req) == EKV_HTTP_POST)
        create(api, req);
    else
        list(api, req);
}

/* ---------------------------------------------------------------- one store */

static void on_describe(const struct ekv_ks_result *res, const struct ekv_ks_store *st,
                        void *arg)
{
    struct store_op *op = arg;
    json_t *o;

    if (res->outcome != EKV_KS_OK) {
        ekv_api_respond_outcome(op->api, op->req, res);
        goto out;
    }
    o = store_json(op->sid, op->sid_len, st->name.p, st->name.len, st->created_at.p,
                   st->created_at.len, st->updated_at.p, st->updated_at.len);
    if (o == NULL) { /* not UTF-8: not a record edgekv wrote */
        const struct ekv_ks_result bad = {.outcome = EKV_KS_ORIGIN_PROTOCOL,
                                          .malformed = "store record"};
        ekv_api_respond_outcome(op->api, op->req, &bad);
    } else {
        ekv_api_respond_json(op->req, 200, o);
    }
out:
    ekv_free(op);
}

/* The answer to a rename (200) or a delete (204), both with an empty body. */
static void on_change(struct store_op *op, const struct ekv_ks_result *res, int status)
{
    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    if (res->outcome != EKV_KS_OK)
        ekv_api_respond_outcome(op->api, op->req, res);
    else
        ekv_api_respond_empty(op->req, status);
    ekv_free(op);
}

static void on_rename(const struct ekv_ks_result *res, void *arg)
{
    on_change(arg, res, 200);
}

static void on_delete(const struct ekv_ks_result *res, void *arg)
{
    on_change(arg, res, 204);
}

void ekv_stores_one(struct ekv_api *api, struct ekv_http_req *req,
                    const struct ekv_route_capture *cap)
{
    enum ekv_http_method m = ekv_http_req_method(req);
    struct store_op *op;

    if (!ekv_id_valid(cap[0].p, cap[0].len)) {
        ekv_api_respond_oc(api, req, EKV_KS_NO_STORE);
        return;
    }
    op = op_new(api, req);
    memcpy(op->sid, cap[0].p, cap[0].len);
    op->sid_len = cap[0].len;
    if (m == EKV_HTTP_GET) {
        ekv_keyspace_store_describe(api->ks, op->sid, op->sid_len, on_describe, op);
    } else if (m == EKV_HTTP_PUT) {
        if (!body_name(req, op->name))
            ekv_free(op);
        else
            ekv_keyspace_store_rename(api->ks, op->sid, op->sid_len, op->name, strlen(op->name),
                                      op->now, on_rename, op);
    } else {
        ekv_keyspace_store_delete(api->ks, op->sid, op->sid_len, on_delete, op);
    }
}
