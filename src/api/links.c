/* links.c - resource links (service <-> store) and the service version endpoints the Fastly CLI
 * reads before it manages links. Link names are unique per service; each change is one keyspace
 * operation. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/http.h"
#include "edgekv/keyspace.h"
#include "edgekv/text.h"

#include "api_int.h"

struct link_op {
    struct ekv_api *api;
    struct ekv_http_req *req;
    char service[EKV_ID_MAX + 1];
    uint64_t version;
};

/* Captures service id and version; answers 404/400 and returns false when unusable. */
static bool service_version(struct ekv_http_req *req, const struct ekv_route_capture *cap,
                            char service[EKV_ID_MAX + 1], uint64_t *version)
{
    if (!ekv_id_valid(cap[0].p, cap[0].len)) {
        ekv_http_respond_problem(req, 404, "service not found");
        return false;
    }
    memcpy(service, cap[0].p, cap[0].len);
    service[cap[0].len] = '\0';
    if (version != NULL && (ekv_parse_u64(cap[1].p, cap[1].len, version) != EKV_OK ||
                            *version == 0 || *version > INT32_MAX)) {
        ekv_http_respond_problem(req, 400, "the version must be a positive integer");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- service versions */

/* A service version. edgekv keeps one set of links per service, whatever the version, and has
 * nothing to activate: every version it describes is an editable draft (neither active nor
 * locked), so the Fastly CLI changes links on --version N with or without --autoclone (API.md
 * "Resource links"). */
static json_t *version_json(const char *service, uint64_t version)
{
    char now[21];

    ekv_fmt_rfc3339((long long)time(NULL), now);
    return json_pack("{s:s, s:I, s:b, s:b, s:b, s:b, s:b, s:s, s:s, s:s, s:n}", "service_id",
                     service, "number", (json_int_t)version, "active", 0, "locked", 0,
                     "deployed", 0, "staging", 0, "testing", 0, "comment", "", "created_at",
                     now, "updated_at", now, "deleted_at");
}

void ekv_service_version(struct ekv_api *api, struct ekv_http_req *req,
                         const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];
    uint64_t version;

    if (service_version(req, cap, service, &version))
        ekv_api_respond_json(req, 200, version_json(service, version));
}

void ekv_service_versions(struct ekv_api *api, struct ekv_http_req *req,
                          const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];

    /* edgekv keeps one set of links per service: it shows a single version 1 */
    if (service_version(req, cap, service, NULL))
        ekv_api_respond_json(req, 200, json_pack("[o]", version_json(service, 1)));
}

/* PUT /service/{id}/version/{v}/clone: with --autoclone the Fastly CLI clones a version that
 * is not editable; every version is, but a clone is still answered: the same version (links
 * do not depend on it). */
void ekv_service_version_clone(struct ekv_api *api, struct ekv_http_req *req,
                               const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];
    uint64_t version;

    if (service_version(req, cap, service, &version))
        ekv_api_respond_json(req, 200, version_json(service, version));
}

/* GET /service/{id}/details: what the Fastly CLI reads for --version active (go-fastly's
 * ServiceDetail: active_version and version are version objects). */
void ekv_service_details(struct ekv_api *api, struct ekv_http_req *req,
                         const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];
    json_t *v;

    if (!service_version(req, cap, service, NULL))
        return;
    v = version_json(service, 1);
    ekv_api_respond_json(req, 200,
                         json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:[o]}", "id", service, "name",
                                   service, "type", "vcl", "comment", "", "active_version", v,
                                   "version", v, "versions", v));
}

/* ---------------------------------------------------------------- links */

/* The API's view of the link @l: NULL if it cannot be shown (not UTF-8). */
static json_t *link_json(const struct link_op *op, const struct ekv_ks_link *l)
{
    return json_pack("{s:s%, s:s%, s:s, s:I, s:s%, s:s, s:s%, s:s%, s:n, s:n}", "id", l->id.p,
                     l->id.len, "name", l->name.p, l->name.len, "service_id", op->service,
                     "version", (json_int_t)op->version, "resource_id", l->resource_id.p,
                     l->resource_id.len, "resource_type", "kv-store", "created_at",
                     l->created_at.p, l->created_at.len, "updated_at", l->updated_at.p,
                     l->updated_at.len, "deleted_at", "href");
}

static struct link_op *op_new(struct ekv_api *api, struct ekv_http_req *req,
                              const struct ekv_route_capture *cap)
{
    struct link_op *op = ekv_calloc(1, sizeof(*op));

    op->api = api;
    op->req = req;
    if (!service_version(req, cap, op->service, &op->version)) {
        ekv_free(op);
        return NULL;
    }
    return op;
}

/* A form (name=..&resource_id=..) or JSON body field; EKV_OK, EKV_ENOTFOUND or EKV_EINVAL. */
static int body_field(struct ekv_http_req *req, const char *field, char *dst, size_t cap,
                      size_t *outlen)
{
    struct evbuffer *body = ekv_http_req_body(req);
    size_t len = evbuffer_get_length(body);
    const char *text = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";

    if (len > 0 && text[0] == '{') {
        json_t *root = json_loadb(text, len, 0, NULL), *v = json_object_get(root, field);
        int rc = EKV_ENOTFOUND;

        if (root == NULL) {
            rc = EKV_EINVAL;
        } else if (v != NULL) {
            rc = EKV_EINVAL;
            if (json_is_string(v) && json_string_length(v) <= cap) {
                *outlen = json_string_length(v);
                memcpy(dst, json_string_value(v), *outlen);
                rc = EKV_OK;
            }
        }
        json_decref(root);
        return rc;
    }
    switch (ekv_query_param(text, len, field, EKV_QUERY_FORM, dst, cap, outlen)) {
    case EKV_OK:
        return EKV_OK;
    case EKV_ENOTFOUND:
        return EKV_ENOTFOUND;
    default:
        return EKV_EINVAL;
    }
}

/* The optional `name` field: EKV_OK (maybe empty), or answers 400 and returns EKV_EINVAL. */
static int name_field(struct ekv_http_req *req, char name[EKV_NAME_MAX + 1])
{
    size_t n = 0;
    const char *why;
    int rc = body_field(req, "name", name, EKV_NAME_MAX, &n);

    if (rc == EKV_ENOTFOUND) {
        name[0] = '\0';
        return EKV_OK;
    }
    if (rc != EKV_OK || (why = ekv_name_check(name, n)) != NULL) {
        ekv_http_respond_problem(req, 400, rc != EKV_OK ? "invalid name" : why);
        return EKV_EINVAL;
    }
    name[n] = '\0';
    return EKV_OK;
}

static void on_list(const struct ekv_ks_result *res, const struct ekv_ks_link *links,
                    size_t count, void *arg)
{
    struct link_op *op = arg;
    json_t *arr;

    if (res->outcome != EKV_KS_OK) {
        ekv_api_respond_outcome(op->api, op->req, res);
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < count; i++) {
        json_t *o = link_json(op, &links[i]);

        if (o != NULL)
            json_array_append_new(arr, o);
    }
    ekv_api_respond_json(op->req, 200, arr);
out:
    ekv_free(op);
}

/* Answers a link read or change: the link, or {"status": "ok"} after a delete. */
static void answer_link(struct link_op *op, const struct ekv_ks_result *res,
                        const struct ekv_ks_link *l)
{
    const struct ekv_ks_result bad = {.outcome = EKV_KS_ORIGIN_PROTOCOL, .malformed = "link"};
    json_t *o;

    if (res->outcome != EKV_KS_OK)
        ekv_api_respond_outcome(op->api, op->req, res);
    else if (l == NULL)
        ekv_api_respond_json(op->req, 200, json_pack("{s:s}", "status", "ok"));
    else if ((o = link_json(op, l)) != NULL)
        ekv_api_respond_json(op->req, 200, o);
    else
        ekv_api_respond_outcome(op->api, op->req, &bad);
    ekv_free(op);
}

static void on_change(const struct ekv_ks_result *res, const struct ekv_ks_link *l, void *arg)
{
    struct link_op *op = arg;

    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    answer_link(op, res, l);
}

static void create(struct link_op *op)
{
    struct ekv_api *api = op->api;
    char name[EKV_NAME_MAX + 1], rid[EKV_ID_MAX + 1], lid[EKV_ID_LEN + 1], now[21], ver[24];
    struct ekv_ks_link_new l = {.id = lid, .name = name, .resource_id = rid, .version = ver,
                                .now = now};
    size_t rlen = 0;
    int rc;

    if (name_field(op->req, name) != EKV_OK)
        goto fail;
    rc = body_field(op->req, "resource_id", rid, EKV_ID_MAX, &rlen);
    if (rc != EKV_OK || !ekv_id_valid(rid, rlen)) {
        ekv_http_respond_problem(op->req, 400, "resource_id is required");
        goto fail;
    }
    rid[rlen] = '\0';
    ekv_api_new_id(api, lid);
    ekv_fmt_rfc3339((long long)time(NULL), now);
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)op->version);
    ekv_keyspace_link_create(api->ks, op->service, &l, on_change, op);
    return;
fail:
    ekv_free(op);
}

void ekv_links_collection(struct ekv_api *api, struct ekv_http_req *req,
                          const struct ekv_route_capture *cap)
{
    struct link_op *op = op_new(api, req, cap);

    if (op == NULL)
        return;
    if (ekv_http_req_method(req) == EKV_HTTP_POST)
        create(op);
    else
        ekv_keyspace_link_list(api->ks, op->service, on_list, op);
}

static void on_get(const struct ekv_ks_result *res, const struct ekv_ks_link *l, void *arg)
{
    answer_link(arg, res, l);
}

void ekv_links_one(struct ekv_api *api, struct ekv_http_req *req,
                   const struct ekv_route_capture *cap)
{
    enum ekv_http_method m = ekv_http_req_method(req);
    struct link_op *op;
    char name[EKV_NAME_MAX + 1], now[21];

    if (!ekv_id_valid(cap[2].p, cap[2].len)) {
        ekv_api_respond_oc(api, req, EKV_KS_NO_LINK);
        return;
    }
    if ((op = op_new(api, req, cap)) == NULL)
        return;
    if (m == EKV_HTTP_GET) {
        ekv_keyspace_link_get(api->ks, op->service, cap[2].p, cap[2].len, on_get, op);
    } else if (m == EKV_HTTP_DELETE) {
        ekv_keyspace_link_delete(api->ks, op->service, cap[2].p, cap[2].len, on_change, op);
    } else if (name_field(req, name) != EKV_OK) {
        ekv_free(op);
    } else {
        ekv_fmt_rfc3339((long long)time(NULL), now);
        ekv_keyspace_link_update(api->ks, op->service, cap[2].p, cap[2].len, name, now, on_change,
                                 op);
    }
}
