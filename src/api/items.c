/* items.c - one item: GET/HEAD, PUT, DELETE, by store id (/resources/stores/kv/{id}/keys/{key})
 * or by name (/kv/{name}/{key}: a resource link of the configured service, else a store name).
 * Each operation is one keyspace operation; the edge path resolves the name first. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "edgekv/alloc.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/keyspace.h"

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

/* ---------------------------------------------------------------- PUT */

static void on_put(const struct ekv_ks_result *res, const struct ekv_ks_written *w, void *arg)
{
    struct item_op *op = arg;
    struct ekv_http_req *req = op->req;
    char buf[64];

    /* whatever the outcome (a timeout may still have written): read-your-writes here */
    ekv_api_invalidate_item(op->api, res, op->sid, op->sid_len, op->ir.key, op->ir.key_len);
    if (res->outcome != EKV_KS_OK) {
        ekv_api_respond_outcome(op->api, req, res);
    } else {
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)w->generation);
        ekv_http_add_header(req, "Generation", buf);
        snprintf(buf, sizeof(buf), "\"%llu\"", (unsigned long long)w->generation);
        ekv_http_add_header(req, "ETag", buf);
        ekv_http_respond(req, 200, NULL);
    }
    op_done(op);
}

static void do_put(struct item_op *op)
{
    const struct ekv_item_req *ir = &op->ir;
    struct evbuffer *body = ekv_http_req_body(op->req);
    size_t vlen = body != NULL ? evbuffer_get_length(body) : 0;
    const char *val = vlen > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    struct ekv_ks_put put = {
        .value = val != NULL ? val : "",
        .value_len = vlen,
        .meta = ir->meta,
        .meta_len = ir->meta_len,
        .ttl_ms = ir->ttl_sec * 1000,
        .mode = ir->mode,
        .igm = ir->has_igm ? &ir->igm : NULL,
        .value_max = op->api->conf->value_max_bytes,
    };

    ekv_keyspace_item_put(op->api->ks, op->sid, op->sid_len, ir->key, ir->key_len, &put, on_put,
                          op);
}

/* ---------------------------------------------------------------- DELETE */

static void on_delete(const struct ekv_ks_result *res, void *arg)
{
    struct item_op *op = arg;

    ekv_api_invalidate_item(op->api, res, op->sid, op->sid_len, op->ir.key, op->ir.key_len);
    if (res->outcome != EKV_KS_OK)
        ekv_api_respond_outcome(op->api, op->req, res);
    else
        ekv_http_respond(op->req, 204, NULL);
    op_done(op);
}

static void do_delete(struct item_op *op)
{
    const struct ekv_item_req *ir = &op->ir;

    ekv_keyspace_item_delete(op->api->ks, op->sid, op->sid_len, ir->key, ir->key_len,
                             ir->has_igm ? &ir->igm : NULL, ir->force, on_delete, op);
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

static void on_resolved(const struct ekv_ks_result *res, const char *sid, size_t sid_len,
                        void *arg)
{
    struct item_op *op = arg;
    bool answered = res->outcome == EKV_KS_OK || res->outcome == EKV_KS_NO_NAME;
    bool found = res->outcome == EKV_KS_OK && ekv_id_valid(sid, sid_len);

    /* an id that is no id edgekv makes (a foreign writer's) names no store either */
    ekv_names_finish(op->api, op->names_fill, op->ir.store, op->ir.store_len, found ? sid : NULL,
                     found ? sid_len : 0, !answered);
    if (!answered) {
        ekv_api_respond_outcome(op->api, op->req, res);
        op_done(op);
        return;
    }
    if (!found) {
        ekv_api_respond_oc(op->api, op->req, EKV_KS_NO_NAME);
        op_done(op);
        return;
    }
    memcpy(op->sid, sid, sid_len);
    op->sid_len = sid_len;
    start(op);
}

void ekv_edge_handle(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap)
{
    struct ekv_cache_fill *fill;
    struct ekv_item_req ir;
    struct item_op *op;
    char sid[EKV_ID_MAX + 1];

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
        ekv_api_respond_oc(api, req, EKV_KS_NO_NAME);
        return;
    default:
        break;
    }
    op = op_new(api, req, &ir, "", 0);
    op->names_fill = fill;
    ekv_keyspace_resolve(api->ks, op->ir.store, op->ir.store_len, api->conf->service_id,
                         on_resolved, op);
}
