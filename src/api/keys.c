/* keys.c - listing a store's keys: GET /resources/stores/kv/{id}/keys with prefix, limit,
 * opaque cursor and consistency. One keyspace listing returns a sorted page (names whose item
 * has expired or gone are skipped). */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/http.h"
#include "edgekv/keyspace.h"

#include "api_int.h"

struct list_op {
    struct ekv_api *api;
    struct ekv_http_req *req;
    unsigned limit;
    char prefix[EKV_KEY_MAX];
    size_t prefix_len;
    bool has_prefix;
    char consistency[16];
};

static void on_list(const struct ekv_ks_result *res, const struct ekv_ks_page *page, void *arg)
{
    struct list_op *op = arg;
    json_t *data, *meta;
    const char *last = NULL;
    size_t last_len = 0;

    if (res->outcome != EKV_KS_OK) {
        ekv_api_respond_outcome(op->api, op->req, res);
        goto out;
    }
    data = json_array();
    for (size_t i = 0; i < page->count; i++) {
        const struct ekv_ks_str *k = &page->names[i];
        json_t *s = json_stringn(k->p, k->len);

        if (s == NULL) /* not UTF-8: not a name edgekv wrote */
            continue;
        json_array_append_new(data, s);
        last = k->p;
        last_len = k->len;
    }
    meta = json_pack("{s:I}", "limit", (json_int_t)op->limit);
    if (page->more && last != NULL) {
        char *cur = ekv_malloc(ekv_base64_encoded_len(last_len) + 1);
        ekv_cursor_encode(last, last_len, cur);
        json_object_set_new(meta, "next_cursor", json_string(cur));
        ekv_free(cur);
    }
    if (op->has_prefix)
        json_object_set_new(meta, "prefix", json_stringn(op->prefix, op->prefix_len));
    if (op->consistency[0] != '\0')
        json_object_set_new(meta, "consistency", json_string(op->consistency));
    ekv_api_respond_json(op->req, 200, json_pack("{s:o, s:o}", "data", data, "meta", meta));
out:
    ekv_free(op);
}

void ekv_keys_list(struct ekv_api *api, struct ekv_http_req *req,
                   const struct ekv_route_capture *cap)
{
    size_t qlen, n;
    const char *q = ekv_http_req_query(req, &qlen);
    char buf[3 * EKV_KEY_MAX], cursor[EKV_KEY_MAX];
    size_t cursor_len = 0;
    bool has_cursor = false;
    struct list_op *op;
    const char *why;
    int rc;

    if (!ekv_id_valid(cap[0].p, cap[0].len)) {
        ekv_http_respond_problem(req, 404, "store not found");
        return;
    }
    op = ekv_calloc(1, sizeof(*op));
    op->api = api;
    op->req = req;
    why = ekv_list_params(q, qlen, &op->limit, cursor, sizeof(cursor), &cursor_len);
    if (why != NULL) {
        ekv_http_respond_problem(req, 400, why);
        goto fail;
    }
    has_cursor = cursor_len > 0;
    rc = ekv_query_param(q, qlen, "prefix", EKV_QUERY_URL, op->prefix, sizeof(op->prefix),
                         &op->prefix_len);
    if (rc == EKV_EINVAL || rc == EKV_ETOOBIG) {
        ekv_http_respond_problem(req, 400, "invalid prefix");
        goto fail;
    }
    op->has_prefix = rc == EKV_OK && op->prefix_len > 0;
    rc = ekv_query_param(q, qlen, "consistency", EKV_QUERY_URL, buf, sizeof(buf), &n);
    if (rc != EKV_ENOTFOUND) {
        if (rc != EKV_OK || !((n == 6 && memcmp(buf, "strong", 6) == 0) ||
                              (n == 8 && memcmp(buf, "eventual", 8) == 0))) {
            ekv_http_respond_problem(req, 400, "consistency must be strong or eventual");
            goto fail;
        }
        memcpy(op->consistency, buf, n);
        op->consistency[n] = '\0';
    }

    ekv_keyspace_key_list(api->ks, cap[0].p, cap[0].len, op->has_prefix ? op->prefix : NULL,
                          op->has_prefix ? op->prefix_len : 0, has_cursor ? cursor : NULL,
                          has_cursor ? cursor_len : 0, op->limit, on_list, op);
    return;
fail:
    ekv_free(op);
}
