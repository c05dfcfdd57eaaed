/* batch.c - PUT /resources/stores/kv/{id}/batch: NDJSON lines, each validated like a single
 * put (key rules, base64 value, metadata, time_to_live_sec); valid lines are applied as keyspace
 * item writes, pipelined (a bounded window in flight), even when other lines fail. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/keyspace.h"

#include "api_int.h"

#define WINDOW 32 /* writes in flight per batch: bounds the decoded values held at once */

void ekv_batch_item_clear(struct ekv_batch_item *item)
{
    ekv_free(item->key);
    ekv_free(item->value);
    ekv_free(item->meta);
    memset(item, 0, sizeof(*item));
}

int ekv_batch_parse_line(const char *line, size_t len, uint64_t value_max,
                         struct ekv_batch_item *item, char **key, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root, *k, *v, *m, *ttl, *bg;
    const char *reason;
    int rc = EKV_EINVAL;

    memset(item, 0, sizeof(*item));
    *key = NULL;
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(why, whylen, "invalid JSON: %s", jerr.text);
        return EKV_EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "a line must be a JSON object");
        goto out;
    }
    k = json_object_get(root, "key");
    if (k == NULL && json_is_true(json_object_get(root, "end"))) {
        rc = EKV_ENOTFOUND; /* an export's closing line: nothing to apply */
        goto out;
    }
    if (k == NULL && json_is_string(json_object_get(root, "error"))) {
        snprintf(why, whylen, "the export this came from did not finish: %s",
                 json_string_value(json_object_get(root, "error")));
        goto out;
    }
    v = json_object_get(root, "value");
    m = json_object_get(root, "metadata");
    ttl = json_object_get(root, "time_to_live_sec");
    bg = json_object_get(root, "background_fetch");
    if (json_is_string(k))
        *key = ekv_strndup(json_string_value(k), json_string_length(k));
    if (!json_is_string(k)) {
        snprintf(why, whylen, "key is required and must be a string");
        goto out;
    }
    if ((reason = ekv_key_check(json_string_value(k), json_string_length(k))) != NULL) {
        snprintf(why, whylen, "%s", reason);
        goto out;
    }
    if (!json_is_string(v)) {
        snprintf(why, whylen, "value is required and must be a base64 string");
        goto out;
    }
    if (m != NULL && !json_is_null(m)) {
        if (!json_is_string(m)) {
            snprintf(why, whylen, "metadata must be a string");
            goto out;
        }
        if ((reason = ekv_meta_check(json_string_value(m), json_string_length(m))) != NULL) {
            snprintf(why, whylen, "%s", reason);
            goto out;
        }
    }
    if (ttl != NULL && !json_is_null(ttl) &&
        (!json_is_integer(ttl) || json_integer_value(ttl) <= 0 ||
         (uint64_t)json_integer_value(ttl) > EKV_TTL_MAX_SEC)) {
        snprintf(why, whylen, "time_to_live_sec must be a positive integer");
        goto out;
    }
    if (bg != NULL && !json_is_null(bg) && !json_is_boolean(bg)) {
        snprintf(why, whylen, "background_fetch must be a boolean");
        goto out;
    }
    switch (ekv_base64_decode_new(json_string_value(v), json_string_length(v), EKV_BASE64_STRICT,
                                  value_max, &item->value, &item->value_len)) {
    case EKV_OK:
        break;
    case EKV_ETOOBIG:
        snprintf(why, whylen, "value exceeds %llu bytes", (unsigned long long)value_max);
        rc = EKV_ETOOBIG; /* the line's error is a 413, as a single PUT's would be */
        goto out;
    default:
        snprintf(why, whylen, "value is not valid base64");
        goto out;
    }
    item->key = ekv_strndup(json_string_value(k), json_string_length(k));
    item->key_len = json_string_length(k);
    if (m != NULL && json_is_string(m) && json_string_length(m) > 0) {
        item->meta = ekv_strndup(json_string_value(m), json_string_length(m));
        item->meta_len = json_string_length(m);
    }
    item->ttl_sec = json_is_integer(ttl) ? (uint64_t)json_integer_value(ttl) : 0;
    rc = EKV_OK;
out:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- applying a batch */

struct batch {
    struct ekv_api *api;
    struct ekv_http_req *req;
    char sid[EKV_ID_MAX + 1];
    size_t sid_len;
    const char *p, *end; /* the lines not read yet (the body, pulled up) */
    size_t line;         /* index of the next line */
    unsigned inflight;
    json_t *errors;
    bool store_missing;
    enum ekv_ks_outcome unreachable; /* the first EKV_KS_ORIGIN_DOWN/_TIMEOUT, else EKV_KS_OK */
    bool origin_error;               /* a Redis error reply (502) */
    bool protocol;                   /* a malformed answer (502) */
    bool done;
};

bool ekv_batch_next_line(const char **p, const char *end, const char **line, size_t *len)
{
    const char *nl, *stop, *s = *p;

    if (s >= end)
        return false;
    nl = memchr(s, '\n', (size_t)(end - s));
    stop = nl != NULL ? nl : end;
    *p = nl != NULL ? nl + 1 : end;
    while (stop > s && (stop[-1] == '\r' || stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    while (s < stop && (*s == ' ' || *s == '\t'))
        s++;
    *line = s;
    *len = (size_t)(stop - s);
    return true;
}

struct json_t *ekv_batch_error(const char *key, size_t index, const char *code, const char *reason)
{
    json_t *e = json_pack("{s:s, s:I, s:s, s:s}", "key", key != NULL ? key : "", "index",
                          (json_int_t)index, "code", code, "reason", reason);

    if (e == NULL) /* a key or a reason quoting bytes that are not UTF-8 */
        e = json_pack("{s:s, s:I, s:s, s:s}", "key", "", "index", (json_int_t)index, "code", code,
                      "reason", "invalid line");
    if (e == NULL)
        EKV_FATAL("out of memory building a batch error");
    return e;
}

static void add_error(struct batch *b, const char *key, size_t index, const char *code,
                      const char *reason)
{
    json_array_append_new(b->errors, ekv_batch_error(key, index, code, reason));
}

static void finish(struct batch *b)
{
    struct ekv_http_req *req = b->req;

    b->done = true;
    if (b->unreachable != EKV_KS_OK) {
        ekv_api_respond_oc(b->api, req, b->unreachable);
    } else if (b->origin_error) { /* each was logged as it came */
        ekv_api_respond_oc(b->api, req, EKV_KS_ORIGIN_ERROR);
    } else if (b->protocol) {
        ekv_api_respond_oc(b->api, req, EKV_KS_ORIGIN_PROTOCOL);
    } else if (b->store_missing) {
        ekv_api_respond_oc(b->api, req, EKV_KS_NO_STORE);
    } else if (json_array_size(b->errors) == 0) {
        ekv_api_respond_json(
            req, 200, json_pack("{s:s, s:s, s:[]}", "type", "", "title", "success", "errors"));
    } else {
        json_t *body = json_pack("{s:s, s:s, s:O}", "title", "Bad Request", "type", "about:blank",
                                 "errors", b->errors);
        char *text = json_dumps(body, JSON_COMPACT);

        json_decref(body);
        ekv_http_add_header(req, "Cache-Control", "no-store");
        ekv_http_respond_data(req, 400, "application/problem+json", text, strlen(text));
        free(text);
    }
    json_decref(b->errors);
    ekv_free(b);
}

/* Records an origin fault of @res (true if it was one). */
static bool note(struct batch *b, const struct ekv_ks_result *res)
{
    switch (res->outcome) {
    case EKV_KS_ORIGIN_DOWN:
    case EKV_KS_ORIGIN_TIMEOUT:
        if (b->unreachable == EKV_KS_OK)
            b->unreachable = res->outcome;
        return true;
    case EKV_KS_ORIGIN_ERROR:
        ekv_api_log_origin_error(b->api, res->error, res->error_len);
        b->origin_error = true;
        return true;
    case EKV_KS_ORIGIN_PROTOCOL:
        b->protocol = true;
        return true;
    default:
        return false;
    }
}

static void pump(struct batch *b);

struct line_op {
    struct batch *b;
    size_t index;
    char *key;
    size_t key_len;
};

static void on_put(const struct ekv_ks_result *res, const struct ekv_ks_written *w, void *arg)
{
    struct line_op *lo = arg;
    struct batch *b = lo->b;

    /* whatever the outcome: read-your-writes at this POP */
    ekv_api_invalidate_item(b->api, res, b->sid, b->sid_len, lo->key, lo->key_len);
    if (!note(b, res)) {
        if (res->outcome == EKV_KS_NO_STORE)
            b->store_missing = true;
        else if (res->outcome != EKV_KS_OK)
            add_error(b, lo->key, lo->index, res->outcome == EKV_KS_TOO_LARGE ? "413" : "400",
                      "rejected by the origin");
    }
    ekv_free(lo->key);
    ekv_free(lo);
    b->inflight--;
    pump(b);
}

static void on_exists(const struct ekv_ks_result *res, void *arg)
{
    struct batch *b = arg;

    if (!note(b, res) && res->outcome == EKV_KS_NO_STORE)
        b->store_missing = true;
    b->inflight--;
    pump(b);
}

static void send_put(struct batch *b, struct ekv_batch_item *it, size_t index)
{
    struct ekv_api *api = b->api;
    struct line_op *lo = ekv_calloc(1, sizeof(*lo));
    struct ekv_ks_put put = {
        .value = it->value,
        .value_len = it->value_len,
        .meta = it->meta,
        .meta_len = it->meta_len,
        .ttl_ms = it->ttl_sec * 1000,
        .mode = EKV_KS_PUT_SET,
        .value_max = api->conf->value_max_bytes,
    };

    lo->b = b;
    lo->index = index;
    lo->key = ekv_strndup(it->key, it->key_len);
    lo->key_len = it->key_len;
    b->inflight++;
    ekv_keyspace_item_put(api->ks, b->sid, b->sid_len, it->key, it->key_len, &put, on_put, lo);
}

/* Reads lines and sends their writes while the window has room; answers once all is done.
 * Called again from every completion (never re-entered: origin callbacks are never
 * synchronous). */
static void pump(struct batch *b)
{
    const char *s;
    size_t len;

    while (b->inflight < WINDOW && b->unreachable == EKV_KS_OK &&
           ekv_batch_next_line(&b->p, b->end, &s, &len)) {
        size_t index = b->line++;
        struct ekv_batch_item it;
        char why[256], *key;
        int rc;

        if (len == 0) /* blank line (e.g. after the last newline): nothing to apply */
            continue;
        rc = ekv_batch_parse_line(s, len, b->api->conf->value_max_bytes, &it, &key, why,
                                  sizeof(why));
        if (rc == EKV_ENOTFOUND) /* an export's closing line */
            continue;
        if (rc != EKV_OK) {
            add_error(b, key, index, rc == EKV_ETOOBIG ? "413" : "400", why);
            ekv_free(key);
            continue;
        }
        ekv_free(key);
        send_put(b, &it, index);
        ekv_batch_item_clear(&it);
    }
    if (!b->done && b->inflight == 0 && (b->p >= b->end || b->unreachable != EKV_KS_OK))
        finish(b);
}

bool ekv_batch_check(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap)
{
    if (ekv_id_valid(cap[0].p, cap[0].len))
        return true;
    ekv_api_respond_oc(api, req, EKV_KS_NO_STORE);
    return false;
}

void ekv_batch_handle(struct ekv_api *api, struct ekv_http_req *req,
                      const struct ekv_route_capture *cap)
{
    struct evbuffer *body = ekv_http_req_body(req);
    size_t len = evbuffer_get_length(body);
    struct batch *b;

    if (!ekv_batch_check(api, req, cap))
        return;
    b = ekv_calloc(1, sizeof(*b));
    b->api = api;
    b->req = req;
    memcpy(b->sid, cap[0].p, cap[0].len);
    b->sid_len = cap[0].len;
    b->p = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    b->end = b->p + len;
    b->errors = json_array();
    /* the store must exist even when no line is valid (pipelined ahead of the writes) */
    b->inflight++;
    ekv_keyspace_store_check(api->ks, b->sid, b->sid_len, on_exists, b);
    pump(b);
}
