/* links.c - resource links (service <-> store) and the service version endpoints the Fastly CLI
 * reads before it manages links. Links of a service live in <ns>links:<service>:
 * 'l:<link id>' -> the link as JSON, 'n:<name>' -> link id (names are unique per service). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/http.h"
#include "edgekv/origin.h"
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

/* A service version. edgekv keeps one set of links per service, whatever the version: it shows
 * version 1 as the active one, and any version as an editable draft once "cloned". */
static json_t *version_json(const char *service, uint64_t version, bool active)
{
    char now[21];

    ekv_fmt_rfc3339((long long)time(NULL), now);
    return json_pack("{s:s, s:I, s:b, s:b, s:b, s:b, s:b, s:s, s:s, s:s, s:n}", "service_id",
                     service, "number", (json_int_t)version, "active", active, "locked", 0,
                     "deployed", active, "staging", 0, "testing", 0, "comment", "", "created_at",
                     now, "updated_at", now, "deleted_at");
}

void ekv_service_version(struct ekv_api *api, struct ekv_http_req *req,
                         const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];
    uint64_t version;

    if (service_version(req, cap, service, &version))
        ekv_api_respond_json(req, 200, version_json(service, version, true));
}

void ekv_service_versions(struct ekv_api *api, struct ekv_http_req *req,
                          const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];

    /* edgekv keeps one set of links per service: it shows a single, active version 1 */
    if (service_version(req, cap, service, NULL))
        ekv_api_respond_json(req, 200, json_pack("[o]", version_json(service, 1, true)));
}

/* PUT /service/{id}/version/{v}/clone: the Fastly CLI changes links only on a version that is
 * neither active nor locked, and with --autoclone clones the active one first. The "clone" is
 * the same version (links do not depend on it), shown as an editable draft. */
void ekv_service_version_clone(struct ekv_api *api, struct ekv_http_req *req,
                               const struct ekv_route_capture *cap)
{
    char service[EKV_ID_MAX + 1];
    uint64_t version;

    if (service_version(req, cap, service, &version))
        ekv_api_respond_json(req, 200, version_json(service, version, false));
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
    v = version_json(service, 1, true);
    ekv_api_respond_json(req, 200,
                         json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:[o]}", "id", service, "name",
                                   service, "type", "vcl", "comment", "", "active_version", v,
                                   "version", v, "versions", v));
}

/* ---------------------------------------------------------------- links */

/* The API's view of a stored link (JSON text @j of @len bytes): NULL if malformed. */
static json_t *link_json(const struct link_op *op, const char *j, size_t len)
{
    json_t *s = json_loadb(j, len, 0, NULL), *out = NULL;
    const char *id, *name, *rid, *created, *updated;

    if (s != NULL &&
        json_unpack(s, "{s:s, s:s, s:s, s:s, s:s}", "id", &id, "name", &name, "resource_id", &rid,
                    "created_at", &created, "updated_at", &updated) == 0)
        out = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:n, s:n}", "id", id, "name",
                        name, "service_id", op->service, "version", (json_int_t)op->version,
                        "resource_id", rid, "resource_type", "kv-store", "created_at", created,
                        "updated_at", updated, "deleted_at", "href");
    json_decref(s);
    return out;
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

static char *links_key(const struct link_op *op, size_t *len)
{
    return ekv_api_rkey(op->api, "links:", op->service, strlen(op->service), NULL, NULL, 0, len);
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

static void on_list(int status, const struct redisReply *r, void *arg)
{
    struct link_op *op = arg;
    json_t *arr;

    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    arr = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        size_t flen, vlen;
        const char *f = ekv_reply_str(r, i, &flen), *v = ekv_reply_str(r, i + 1, &vlen);
        json_t *o;

        if (f == NULL || v == NULL || flen < 2 || memcmp(f, "l:", 2) != 0)
            continue;
        if ((o = link_json(op, v, vlen)) != NULL)
            json_array_append_new(arr, o);
    }
    ekv_api_respond_json(op->req, 200, arr);
out:
    ekv_free(op);
}

/* Answers a script reply {200, json} | {404} | {409}. */
static void on_change(int status, const struct redisReply *r, void *arg)
{
    struct link_op *op = arg;
    size_t len;
    const char *j;
    json_t *o;

    ekv_api_forget_names(op->api); /* /kv/{name} resolutions may have changed */
    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    switch (ekv_reply_int(r, 0, 0)) {
    case 200:
        j = ekv_reply_str(r, 1, &len);
        if (j == NULL) {
            ekv_api_respond_json(op->req, 200, json_pack("{s:s}", "status", "ok"));
        } else if ((o = link_json(op, j, len)) != NULL) {
            ekv_api_respond_json(op->req, 200, o);
        } else {
            ekv_http_respond_problem(op->req, 502, "the origin holds a malformed link");
        }
        break;
    case 404:
        ekv_http_respond_problem(op->req, 404, "resource link not found");
        break;
    case 409:
        ekv_http_respond_problem(op->req, 409, "a resource link with this name already exists");
        break;
    default:
        ekv_http_respond_problem(op->req, 502, "unexpected answer from the origin");
    }
out:
    ekv_free(op);
}

static void on_create(int status, const struct redisReply *r, void *arg)
{
    struct link_op *op = arg;

    if (status == EKV_OK && r != NULL && ekv_reply_int(r, 0, 0) == 404) {
        ekv_http_respond_problem(op->req, 400, "resource_id does not name a KV store");
        ekv_free(op);
        return;
    }
    on_change(status, r, arg);
}

static void create(struct link_op *op)
{
    struct ekv_api *api = op->api;
    char name[EKV_NAME_MAX + 1], rid[EKV_ID_MAX + 1], lid[EKV_ID_LEN + 1], now[21], ver[24];
    char *keys[2];
    size_t rlen = 0, klen[2];
    const char *argv[7];
    size_t argvlen[7];
    int rc;

    if (name_field(op->req, name) != EKV_OK)
        goto fail;
    rc = body_field(op->req, "resource_id", rid, EKV_ID_MAX, &rlen);
    if (rc != EKV_OK || !ekv_id_valid(rid, rlen)) {
        ekv_http_respond_problem(op->req, 400, "resource_id is required");
        goto fail;
    }
    ekv_api_new_id(api, lid);
    ekv_fmt_rfc3339((long long)time(NULL), now);
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)op->version);
    keys[0] = links_key(op, &klen[0]);
    keys[1] = ekv_api_rkey(api, "s:", rid, rlen, NULL, NULL, 0, &klen[1]);
    argv[0] = keys[0], argvlen[0] = klen[0];
    argv[1] = keys[1], argvlen[1] = klen[1];
    argv[2] = lid, argvlen[2] = EKV_ID_LEN;
    argv[3] = name, argvlen[3] = strlen(name);
    argv[4] = rid, argvlen[4] = rlen;
    argv[5] = ver, argvlen[5] = strlen(ver);
    argv[6] = now, argvlen[6] = strlen(now);
    ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_LINK_CREATE], on_create, op, 2, 7, argv,
                    argvlen);
    ekv_free(keys[0]);
    ekv_free(keys[1]);
    return;
fail:
    ekv_free(op);
}

void ekv_links_collection(struct ekv_api *api, struct ekv_http_req *req,
                          const struct ekv_route_capture *cap)
{
    struct link_op *op = op_new(api, req, cap);
    size_t klen;
    char *key;

    if (op == NULL)
        return;
    if (ekv_http_req_method(req) == EKV_HTTP_POST) {
        create(op);
        return;
    }
    key = links_key(op, &klen);
    {
        const char *argv[2] = {"HGETALL", key};
        size_t argvlen[2] = {7, klen};
        ekv_origin_cmd(api->origin, on_list, op, 2, argv, argvlen);
    }
    ekv_free(key);
}

static void on_get(int status, const struct redisReply *r, void *arg)
{
    struct link_op *op = arg;
    json_t *o;

    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    if (r->type != REDIS_REPLY_STRING) {
        ekv_http_respond_problem(op->req, 404, "resource link not found");
    } else if ((o = link_json(op, r->str, r->len)) != NULL) {
        ekv_api_respond_json(op->req, 200, o);
    } else {
        ekv_http_respond_problem(op->req, 502, "the origin holds a malformed link");
    }
out:
    ekv_free(op);
}

void ekv_links_one(struct ekv_api *api, struct ekv_http_req *req,
                   const struct ekv_route_capture *cap)
{
    enum ekv_http_method m = ekv_http_req_method(req);
    struct link_op *op;
    char *key, field[2 + EKV_ID_MAX], name[EKV_NAME_MAX + 1], now[21];
    size_t klen;

    if (!ekv_id_valid(cap[2].p, cap[2].len)) {
        ekv_http_respond_problem(req, 404, "resource link not found");
        return;
    }
    if ((op = op_new(api, req, cap)) == NULL)
        return;
    key = links_key(op, &klen);
    field[0] = 'l';
    field[1] = ':';
    memcpy(field + 2, cap[2].p, cap[2].len);
    if (m == EKV_HTTP_GET) {
        const char *argv[3] = {"HGET", key, field};
        size_t argvlen[3] = {4, klen, 2 + cap[2].len};
        ekv_origin_cmd(api->origin, on_get, op, 3, argv, argvlen);
    } else if (m == EKV_HTTP_DELETE) {
        const char *argv[2] = {key, cap[2].p};
        size_t argvlen[2] = {klen, cap[2].len};
        ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_LINK_DELETE], on_change, op, 1, 2, argv,
                        argvlen);
    } else if (name_field(req, name) != EKV_OK) {
        ekv_free(op);
    } else {
        const char *argv[4] = {key, cap[2].p, name, now};
        size_t argvlen[4] = {klen, cap[2].len, strlen(name), 0};
        ekv_fmt_rfc3339((long long)time(NULL), now);
        argvlen[3] = strlen(now);
        ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_LINK_UPDATE], on_change, op, 1, 4, argv,
                        argvlen);
    }
    ekv_free(key);
}
