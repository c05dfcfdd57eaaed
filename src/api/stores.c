/* stores.c - store management: create (201), list (cursor, limit, name, total), describe,
 * rename and delete (204; 409 while it holds keys). The registry is <ns>stores (name -> id)
 * plus one <ns>s:<id> record per store; every change is one script run. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/origin.h"

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

static void on_create(int status, const struct redisReply *r, void *arg)
{
    struct store_op *op = arg;
    struct ekv_http_req *req = op->req;

    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    if (!ekv_api_origin_ok(op->api, req, status, r))
        goto out;
    switch (ekv_reply_int(r, 0, 0)) {
    case 201:
        ekv_api_respond_json(req, 201,
                             store_json(op->sid, op->sid_len, op->name, strlen(op->name), op->now,
                                        strlen(op->now), op->now, strlen(op->now)));
        break;
    case 409:
        ekv_http_respond_problem(req, 409, "a store with this name already exists");
        break;
    case 400:
        ekv_http_respond_problem(req, 400, "the store limit (max-stores) has been reached");
        break;
    case 500:
        if (++op->tries < CREATE_TRIES) {
            send_create(op);
            return;
        }
        ekv_http_respond_problem(req, 500, "could not allocate a store id");
        break;
    default:
        ekv_http_respond_problem(req, 502, "unexpected answer from the origin");
    }
out:
    ekv_free(op);
}

static void send_create(struct store_op *op)
{
    struct ekv_api *api = op->api;
    char id[EKV_ID_LEN + 1], max[16], *keys[3];
    const char *argv[7];
    size_t argvlen[7];

    ekv_api_new_id(api, id);
    memcpy(op->sid, id, sizeof(id));
    op->sid_len = EKV_ID_LEN;
    snprintf(max, sizeof(max), "%u", api->conf->max_stores);
    keys[0] = ekv_api_rkey(api, "stores", NULL, 0, NULL, NULL, 0, &argvlen[0]);
    keys[1] = ekv_api_rkey(api, "s:", id, EKV_ID_LEN, NULL, NULL, 0, &argvlen[1]);
    keys[2] = ekv_api_rkey(api, "g:{", id, EKV_ID_LEN, "}", NULL, 0, &argvlen[2]);
    for (int i = 0; i < 3; i++)
        argv[i] = keys[i];
    argv[3] = op->name, argvlen[3] = strlen(op->name);
    argv[4] = id, argvlen[4] = EKV_ID_LEN;
    argv[5] = op->now, argvlen[5] = strlen(op->now);
    argv[6] = max, argvlen[6] = strlen(max);
    ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_STORE_CREATE], on_create, op, 3, 7, argv,
                    argvlen);
    for (int i = 0; i < 3; i++)
        ekv_free(keys[i]);
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

struct store_row {
    const char *name, *id, *created, *updated;
    size_t name_len, id_len, created_len, updated_len;
};

static int row_cmp(const void *a, const void *b)
{
    const struct store_row *x = a, *y = b;
    int c = memcmp(x->name, y->name, EKV_MIN(x->name_len, y->name_len));

    if (c != 0)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static void on_list(int status, const struct redisReply *r, void *arg)
{
    struct store_op *op = arg;
    size_t nrows, start = 0, total = 0, taken = 0;
    struct store_row *rows;
    json_t *data, *meta;
    bool more = false;

    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 4 != 0) {
        ekv_http_respond_problem(op->req, 502, "unexpected answer from the origin");
        goto out;
    }
    nrows = r->elements / 4;
    rows = ekv_calloc(nrows + 1, sizeof(*rows));
    for (size_t i = 0; i < nrows; i++) {
        struct store_row *w = &rows[total];
        w->name = ekv_reply_str(r, 4 * i, &w->name_len);
        w->id = ekv_reply_str(r, 4 * i + 1, &w->id_len);
        w->created = ekv_reply_str(r, 4 * i + 2, &w->created_len);
        w->updated = ekv_reply_str(r, 4 * i + 3, &w->updated_len);
        if (w->name != NULL && w->id != NULL && w->created != NULL && w->updated != NULL)
            total++;
    }
    qsort(rows, total, sizeof(*rows), row_cmp);
    if (op->has_cursor) {
        struct store_row key = {.name = op->cursor, .name_len = strlen(op->cursor)};
        while (start < total && row_cmp(&rows[start], &key) <= 0)
            start++;
    }
    data = json_array();
    for (size_t i = start; i < total; i++) {
        struct store_row *w = &rows[i];
        json_t *o;

        if (op->has_filter &&
            (w->name_len != strlen(op->filter) || memcmp(w->name, op->filter, w->name_len) != 0))
            continue;
        if (taken == op->limit) {
            more = true;
            break;
        }
        o = store_json(w->id, w->id_len, w->name, w->name_len, w->created, w->created_len,
                       w->updated, w->updated_len);
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
    ekv_free(rows);
    ekv_api_respond_json(op->req, 200, json_pack("{s:o, s:o}", "data", data, "meta", meta));
out:
    ekv_free(op);
}

static void list(struct ekv_api *api, struct ekv_http_req *req)
{
    size_t qlen, n;
    const char *q = ekv_http_req_query(req, &qlen);
    char *keys[1], *pfx;
    const char *argv[2], *why;
    size_t argvlen[2], clen;
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
    keys[0] = ekv_api_rkey(api, "stores", NULL, 0, NULL, NULL, 0, &argvlen[0]);
    pfx = ekv_api_rkey(api, "s:", NULL, 0, NULL, NULL, 0, &argvlen[1]);
    argv[0] = keys[0];
    argv[1] = pfx;
    ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_STORE_LIST], on_list, op, 1, 2, argv,
                    argvlen);
    ekv_free(keys[0]);
    ekv_free(pfx);
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

static void on_describe(int status, const struct redisReply *r, void *arg)
{
    struct store_op *op = arg;
    size_t nl, cl, ul;
    const char *name, *created, *updated;
    json_t *o;

    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    name = ekv_reply_str(r, 0, &nl);
    created = ekv_reply_str(r, 1, &cl);
    updated = ekv_reply_str(r, 2, &ul);
    if (name == NULL) {
        ekv_http_respond_problem(op->req, 404, "store not found");
        goto out;
    }
    o = store_json(op->sid, op->sid_len, name, nl, created != NULL ? created : "", cl,
                   updated != NULL ? updated : "", ul);
    if (o == NULL)
        ekv_http_respond_problem(op->req, 502, "the origin holds a malformed store record");
    else
        ekv_api_respond_json(op->req, 200, o);
out:
    ekv_free(op);
}

static void on_rename(int status, const struct redisReply *r, void *arg)
{
    struct store_op *op = arg;

    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    switch (ekv_reply_int(r, 0, 0)) {
    case 200:
        ekv_api_respond_empty(op->req, 200);
        break;
    case 404:
        ekv_http_respond_problem(op->req, 404, "store not found");
        break;
    case 409:
        ekv_http_respond_problem(op->req, 409, "a store with this name already exists");
        break;
    default:
        ekv_http_respond_problem(op->req, 502, "unexpected answer from the origin");
    }
out:
    ekv_free(op);
}

static void on_delete(int status, const struct redisReply *r, void *arg)
{
    struct store_op *op = arg;

    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    switch (ekv_reply_int(r, 0, 0)) {
    case 204:
        ekv_api_respond_empty(op->req, 204);
        break;
    case 404:
        ekv_http_respond_problem(op->req, 404, "store not found");
        break;
    case 409:
        ekv_http_respond_problem(op->req, 409, "the store still holds keys");
        break;
    default:
        ekv_http_respond_problem(op->req, 502, "unexpected answer from the origin");
    }
out:
    ekv_free(op);
}

void ekv_stores_one(struct ekv_api *api, struct ekv_http_req *req,
                    const struct ekv_route_capture *cap)
{
    enum ekv_http_method m = ekv_http_req_method(req);
    struct store_op *op;
    char *keys[4];
    size_t klen[4];
    const char *argv[6];
    size_t argvlen[6];

    if (!ekv_id_valid(cap[0].p, cap[0].len)) {
        ekv_http_respond_problem(req, 404, "store not found");
        return;
    }
    op = op_new(api, req);
    memcpy(op->sid, cap[0].p, cap[0].len);
    op->sid_len = cap[0].len;
    keys[0] = ekv_api_rkey(api, "stores", NULL, 0, NULL, NULL, 0, &klen[0]);
    keys[1] = ekv_api_rkey(api, "s:", op->sid, op->sid_len, NULL, NULL, 0, &klen[1]);
    keys[2] = ekv_api_rkey(api, "g:{", op->sid, op->sid_len, "}", NULL, 0, &klen[2]);
    keys[3] = ekv_api_rkey(api, "x:{", op->sid, op->sid_len, "}", NULL, 0, &klen[3]);
    for (int i = 0; i < 4; i++)
        argv[i] = keys[i], argvlen[i] = klen[i];
    if (m == EKV_HTTP_GET) {
        const char *cmd[5] = {"HMGET", keys[1], "name", "created_at", "updated_at"};
        size_t cmdlen[5] = {5, klen[1], 4, 10, 10};
        ekv_origin_cmd(api->origin, on_describe, op, 5, cmd, cmdlen);
    } else if (m == EKV_HTTP_PUT) {
        if (!body_name(req, op->name)) {
            ekv_free(op);
        } else {
            argv[2] = op->sid, argvlen[2] = op->sid_len;
            argv[3] = op->name, argvlen[3] = strlen(op->name);
            argv[4] = op->now, argvlen[4] = strlen(op->now);
            ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_STORE_RENAME], on_rename, op, 2, 5,
                            argv, argvlen);
        }
    } else {
        char *items = ekv_api_rkey(api, "i:{", op->sid, op->sid_len, "}:", NULL, 0, &argvlen[4]);
        argv[4] = items;
        argv[5] = op->sid, argvlen[5] = op->sid_len;
        ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_STORE_DELETE], on_delete, op, 4, 6,
                        argv, argvlen);
        ekv_free(items);
    }
    for (int i = 0; i < 4; i++)
        ekv_free(keys[i]);
}
