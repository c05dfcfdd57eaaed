/* keys.c - listing a store's keys: GET /resources/stores/kv/{id}/keys with prefix, limit,
 * opaque cursor and consistency. One script run returns a sorted page (ZRANGEBYLEX over the
 * store's index, skipping and pruning names whose item has expired or gone). */
#include "config.h"

#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/http.h"
#include "edgekv/origin.h"

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

/* Bytewise order of two byte strings (the order of ZRANGEBYLEX). */
static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, EKV_MIN(alen, blen));

    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* "(" or "[" followed by @len bytes at @s, and an optional 0xff. */
static char *bound(char open, const char *s, size_t len, bool ff, size_t *outlen)
{
    char *b = ekv_malloc(len + 3);

    b[0] = open;
    memcpy(b + 1, s, len);
    *outlen = len + 1;
    if (ff)
        b[(*outlen)++] = (char)0xff; /* above every UTF-8 byte: the end of the prefix range */
    b[*outlen] = '\0';
    return b;
}

static void on_list(int status, const struct redisReply *r, void *arg)
{
    struct list_op *op = arg;
    json_t *data, *meta;
    const char *last = NULL;
    size_t last_len = 0;

    if (!ekv_api_origin_ok(op->api, op->req, status, r))
        goto out;
    if (ekv_reply_int(r, 0, 0) == 404) {
        ekv_http_respond_problem(op->req, 404, "store not found");
        goto out;
    }
    if (ekv_reply_int(r, 0, 0) != 200) {
        ekv_http_respond_problem(op->req, 502, "unexpected answer from the origin");
        goto out;
    }
    data = json_array();
    for (size_t i = 2; i < r->elements; i++) {
        size_t len;
        const char *k = ekv_reply_str(r, i, &len);
        json_t *s = k != NULL ? json_stringn(k, len) : NULL;

        if (s == NULL) /* not UTF-8: not a name edgekv wrote */
            continue;
        json_array_append_new(data, s);
        last = k;
        last_len = len;
    }
    meta = json_pack("{s:I}", "limit", (json_int_t)op->limit);
    if (ekv_reply_int(r, 1, 0) == 1 && last != NULL) {
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
    size_t qlen, n, klen[3];
    const char *q = ekv_http_req_query(req, &qlen);
    char buf[3 * EKV_KEY_MAX], cursor[EKV_KEY_MAX], limit[16], *keys[3], *lo, *hi;
    size_t cursor_len = 0, lo_len, hi_len;
    bool has_cursor = false;
    struct list_op *op;
    const char *argv[6], *why;
    size_t argvlen[6];
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

    /* ZRANGEBYLEX bounds: the prefix range, starting after the cursor when it is inside it */
    if (has_cursor &&
        (!op->has_prefix || bytes_cmp(cursor, cursor_len, op->prefix, op->prefix_len) >= 0))
        lo = bound('(', cursor, cursor_len, false, &lo_len);
    else if (op->has_prefix)
        lo = bound('[', op->prefix, op->prefix_len, false, &lo_len);
    else
        lo = ekv_strdup("-"), lo_len = 1;
    if (op->has_prefix)
        hi = bound('[', op->prefix, op->prefix_len, true, &hi_len);
    else
        hi = ekv_strdup("+"), hi_len = 1;
    keys[0] = ekv_api_rkey(api, "x:{", cap[0].p, cap[0].len, "}", NULL, 0, &klen[0]);
    keys[1] = ekv_api_rkey(api, "g:{", cap[0].p, cap[0].len, "}", NULL, 0, &klen[1]);
    keys[2] = ekv_api_rkey(api, "i:{", cap[0].p, cap[0].len, "}:", NULL, 0, &klen[2]);
    snprintf(limit, sizeof(limit), "%u", op->limit);
    argv[0] = keys[0], argvlen[0] = klen[0];
    argv[1] = keys[1], argvlen[1] = klen[1];
    argv[2] = keys[2], argvlen[2] = klen[2];
    argv[3] = lo, argvlen[3] = lo_len;
    argv[4] = hi, argvlen[4] = hi_len;
    argv[5] = limit, argvlen[5] = strlen(limit);
    ekv_origin_eval(api->origin, api->script[EKV_SCRIPT_KEY_LIST], on_list, op, 2, 6, argv,
                    argvlen);
    for (int i = 0; i < 3; i++)
        ekv_free(keys[i]);
    ekv_free(lo);
    ekv_free(hi);
    return;
fail:
    ekv_free(op);
}
