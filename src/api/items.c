/* items.c - one item: GET/HEAD, PUT, DELETE, by store id (/resources/stores/kv/{id}/keys/{key})
 * or by name (/kv/{name}/{key}: a resource link of the configured service, else a store name).
 * Each operation is one origin script run; the edge path resolves the name first. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/origin.h"

#include "api_int.h"

struct item_op {
    struct ekv_api *api;
    struct ekv_http_req *req;
    struct ekv_cache_fill *names_fill; /* the edge path's resolution being cached */
    struct ekv_item_req ir;
    char sid[EKV_ID_MAX + 1];
    size_t sid_len;
};

/* Answers the head-time failures of ekv_item_req_parse(). */
static void refuse(struct ekv_http_req *req, int status, const char *why)
{
    if (status == 412)
        ekv_http_respond(req, 412, NULL); /* as Fastly: no body */
    else
        ekv_http_respond_problem(req, status, why);
}

static bool check(struct ekv_api *api, struct ekv_http_req *req,
                  const struct ekv_route_capture *cap, bool edge)
{
    struct ekv_item_req ir;
    const char *why = NULL;
    int status = ekv_item_req_parse(&ir, req, cap, edge, &why);

    if (status == 0)
        return true;
    refuse(req, status, why);
    return false;
}

bool ekv_items_check(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap)
{
    return check(api, req, cap, false);
}

bool ekv_edge_check(struct ekv_api *api, struct ekv_http_req *req,
                    const struct ekv_route_capture *cap)
{
    return check(api, req, cap, true);
}

static void op_done(struct item_op *op)
{
    ekv_free(op);
}

/* The three keys of an item's slot: item, index, generation counter. */
struct slot_keys {
    char *item, *index, *gen;
    size_t item_len, index_len, gen_len;
};

static void slot_keys(const struct item_op *op, struct slot_keys *k)
{
    const struct ekv_api *api = op->api;

    k->item = ekv_api_rkey(api, "i:{", op->sid, op->sid_len, "}:", op->ir.key, op->ir.key_len,
                           &k->item_len);
    k->index = ekv_api_rkey(api, "x:{", op->sid, op->sid_len, "}", NULL, 0, &k->index_len);
    k->gen = ekv_api_rkey(api, "g:{", op->sid, op->sid_len, "}", NULL, 0, &k->gen_len);
}

static void slot_keys_free(struct slot_keys *k)
{
    ekv_free(k->item);
    ekv_free(k->index);
    ekv_free(k->gen);
}

static void not_found(struct ekv_http_req *req, const struct redisReply *r)
{
    size_t len;
    const char *what = ekv_reply_str(r, 1, &len);

    ekv_http_respond_problem(req, 404,
                             what != NULL && len == 5 && memcmp(what, "store", 5) == 0
                                 ? "store not found"
                                 : "key not found");
}

/* ---------------------------------------------------------------- PUT */

static void on_put(int status, const struct redisReply *r, void *arg)
{
    struct item_op *op = arg;
    struct ekv_http_req *req = op->req;
    char buf[64];

    /* whatever the outcome (a timeout may still have written): read-your-writes here */
    ekv_api_invalidate_item(op->api, op->sid, op->sid_len, op->ir.key, op->ir.key_len);
    if (!ekv_api_origin_ok(op->api, req, status, r))
        goto out;
    switch (ekv_reply_int(r, 0, 0)) {
    case 200:
        snprintf(buf, sizeof(buf), "%lld", ekv_reply_int(r, 1, 0));
        ekv_http_add_header(req, "Generation", buf);
        snprintf(buf, sizeof(buf), "\"%lld\"", ekv_reply_int(r, 1, 0));
        ekv_http_add_header(req, "ETag", buf);
        ekv_http_respond(req, 200, NULL);
        break;
    case 404:
        ekv_http_respond_problem(req, 404, "store not found");
        break;
    case 412:
        ekv_http_respond(req, 412, NULL);
        break;
    case 413:
        ekv_http_respond_problem(req, 413, "the resulting value would exceed value-max-bytes");
        break;
    default:
        ekv_http_respond_problem(req, 502, "unexpected answer from the origin");
    }
out:
    op_done(op);
}

static void do_put(struct item_op *op)
{
    static const char *const modes[] = {
        [EKV_PUT_SET] = "set",
        [EKV_PUT_ADD] = "add",
        [EKV_PUT_APPEND] = "append",
        [EKV_PUT_PREPEND] = "prepend",
    };
    const struct ekv_item_req *ir = &op->ir;
    struct evbuffer *body = ekv_http_req_body(op->req);
    size_t vlen = body != NULL ? evbuffer_get_length(body) : 0;
    const char *val = vlen > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    struct slot_keys k;
    char ttl[32], igm[32], max[32];
    const char *argv[10];
    size_t argvlen[10];

    if (val == NULL)
        val = "";
    slot_keys(op, &k);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ir->ttl_sec * 1000);
    if (ir->has_igm)
        snprintf(igm, sizeof(igm), "%llu", (unsigned long long)ir->igm);
    else
        igm[0] = '\0';
    snprintf(max, sizeof(max), "%llu", (unsigned long long)op->api->conf->value_max_bytes);
    argv[0] = k.item, argvlen[0] = k.item_len;
    argv[1] = k.index, argvlen[1] = k.index_len;
    argv[2] = k.gen, argvlen[2] = k.gen_len;
    argv[3] = ir->key, argvlen[3] = ir->key_len;
    argv[4] = val, argvlen[4] = vlen;
    argv[5] = ir->meta != NULL ? ir->meta : "", argvlen[5] = ir->meta != NULL ? ir->meta_len : 0;
    argv[6] = ttl, argvlen[6] = strlen(ttl);
    argv[7] = modes[ir->mode], argvlen[7] = strlen(modes[ir->mode]);
    argv[8] = igm, argvlen[8] = strlen(igm);
    argv[9] = max, argvlen[9] = strlen(max);
    ekv_origin_eval(op->api->origin, op->api->script[EKV_SCRIPT_ITEM_PUT], on_put, op, 3, 10, argv,
                    argvlen);
    slot_keys_free(&k);
}

/* ---------------------------------------------------------------- DELETE */

static void on_delete(int status, const struct redisReply *r, void *arg)
{
    struct item_op *op = arg;
    struct ekv_http_req *req = op->req;

    ekv_api_invalidate_item(op->api, op->sid, op->sid_len, op->ir.key, op->ir.key_len);
    if (!ekv_api_origin_ok(op->api, req, status, r))
        goto out;
    switch (ekv_reply_int(r, 0, 0)) {
    case 204:
        ekv_http_respond(req, 204, NULL);
        break;
    case 404:
        not_found(req, r);
        break;
    case 412:
        ekv_http_respond(req, 412, NULL);
        break;
    default:
        ekv_http_respond_problem(req, 502, "unexpected answer from the origin");
    }
out:
    op_done(op);
}

static void do_delete(struct item_op *op)
{
    const struct ekv_item_req *ir = &op->ir;
    struct slot_keys k;
    char igm[32];
    const char *argv[6];
    size_t argvlen[6];

    slot_keys(op, &k);
    if (ir->has_igm)
        snprintf(igm, sizeof(igm), "%llu", (unsigned long long)ir->igm);
    else
        igm[0] = '\0';
    argv[0] = k.item, argvlen[0] = k.item_len;
    argv[1] = k.index, argvlen[1] = k.index_len;
    argv[2] = k.gen, argvlen[2] = k.gen_len;
    argv[3] = ir->key, argvlen[3] = ir->key_len;
    argv[4] = igm, argvlen[4] = strlen(igm);
    argv[5] = ir->force ? "1" : "0", argvlen[5] = 1;
    ekv_origin_eval(op->api->origin, op->api->script[EKV_SCRIPT_ITEM_DELETE], on_delete, op, 3, 6,
                    argv, argvlen);
    slot_keys_free(&k);
}

/* ---------------------------------------------------------------- dispatch */

static void start(struct item_op *op)
{
    switch (ekv_http_req_method(op->req)) {
    case EKV_HTTP_GET:
    case EKV_HTTP_HEAD:
        /* the reader takes the request over; this op is done */
        ekv_read_item(op->api, op->req, &op->ir, op->sid, op->sid_len);
        op_done(op);
        break;
    case EKV_HTTP_PUT:
        do_put(op);
        break;
    default: /* the route allows nothing else */
        do_delete(op);
        break;
    }
}

/* An op for a request parsed into @ir. */
static struct item_op *op_new(struct ekv_api *api, struct ekv_http_req *req,
                              const struct ekv_item_req *ir, const char *sid, size_t sid_len)
{
    struct item_op *op = ekv_malloc(sizeof(*op));

    op->api = api;
    op->req = req;
    op->names_fill = NULL;
    op->ir = *ir;
    memcpy(op->sid, sid, sid_len);
    op->sid_len = sid_len;
    return op;
}

static bool is_read(const struct ekv_http_req *req)
{
    enum ekv_http_method m = ekv_http_req_method(req);

    return m == EKV_HTTP_GET || m == EKV_HTTP_HEAD;
}

/* Parses into @ir; answers @req and returns false on failure (already checked before the body,
 * so this is only a safety net). */
static bool parse(struct ekv_http_req *req, const struct ekv_route_capture *cap, bool edge,
                  struct ekv_item_req *ir)
{
    const char *why = NULL;
    int status = ekv_item_req_parse(ir, req, cap, edge, &why);

    if (status != 0)
        refuse(req, status, why);
    return status == 0;
}

void ekv_items_handle(struct ekv_api *api, struct ekv_http_req *req,
                      const struct ekv_route_capture *cap)
{
    struct ekv_item_req ir;

    if (!parse(req, cap, false, &ir))
        return;
    if (is_read(req)) /* reads need no op: hits allocate nothing */
        ekv_read_item(api, req, &ir, ir.store, ir.store_len);
    else
        start(op_new(api, req, &ir, ir.store, ir.store_len));
}

static void on_resolved(int status, const struct redisReply *r, void *arg)
{
    struct item_op *op = arg;
    bool ok = status == EKV_OK && r->type != REDIS_REPLY_ERROR;
    bool found = ok && r->type == REDIS_REPLY_STRING && ekv_id_valid(r->str, r->len);

    ekv_names_finish(op->api, op->names_fill, op->ir.store, op->ir.store_len,
                     found ? r->str : NULL, found ? r->len : 0, !ok);
    if (!ekv_api_origin_ok(op->api, op->req, status, r)) {
        op_done(op);
        return;
    }
    if (!found) {
        ekv_http_respond_problem(op->req, 404, "no store or resource link of that name");
        op_done(op);
        return;
    }
    memcpy(op->sid, r->str, r->len);
    op->sid_len = r->len;
    start(op);
}

void ekv_edge_handle(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap)
{
    const char *service = api->conf->service_id;
    struct ekv_cache_fill *fill;
    struct ekv_item_req ir;
    struct item_op *op;
    char sid[EKV_ID_MAX + 1];
    const char *argv[3];
    size_t argvlen[3];
    char *stores, *links = NULL;
    int nkeys = 1;

    if (!parse(req, cap, true, &ir))
        return;
    switch (ekv_names_lookup(api, ir.store, ir.store_len, sid, &fill)) {
    case EKV_OK: /* resolved from the edge cache: no origin round trip */
        if (is_read(req))
            ekv_read_item(api, req, &ir, sid, strlen(sid));
        else
            start(op_new(api, req, &ir, sid, strlen(sid)));
        return;
    case EKV_ENOTFOUND:
        ekv_http_respond_problem(req, 404, "no store or resource link of that name");
        return;
    default:
        break;
    }
    op = op_new(api, req, &ir, "", 0);
    op->names_fill = fill;
    stores = ekv_api_rkey(api, "stores", NULL, 0, NULL, NULL, 0, &argvlen[0]);
    argv[0] = stores;
    if (service != NULL && service[0] != '\0') {
        links = ekv_api_rkey(api, "links:", service, strlen(service), NULL, NULL, 0, &argvlen[1]);
        argv[1] = links;
        nkeys = 2;
    }
    argv[nkeys] = op->ir.store;
    argvlen[nkeys] = op->ir.store_len;
    ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_RESOLVE], on_resolved, op, nkeys, nkeys + 1,
                    argv, argvlen);
    ekv_free(stores);
    ekv_free(links);
}
