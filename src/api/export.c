/* export.c - GET /resources/stores/kv/{id}/export[?prefix=P] (API.md "Export"): the store as
 * NDJSON, one batch line per live item in key order, streamed (http.h), then the closing line.
 *
 * It goes page by page: a page of names from the keyspace's listing (key order across the
 * store's buckets), then each item read (at most WINDOW reads in flight), its line written in
 * key order. Memory stays bounded whatever the store's size: one page of names, at most
 * WINDOW items read ahead and no new read while those hold HIGH_WATER bytes, and no read at all
 * while the client has more than HIGH_WATER bytes unread (the stream's drain callback resumes
 * it). An item gone between the listing and its read is left
 * out; one written in between is exported as it is then (each line is an item as one read saw
 * it, never a torn one). A store deleted meanwhile ends the stream with {"error":"store
 * deleted"}, an origin failure with {"error":"origin ..."}: never with the closing line, so a
 * partial export is never taken for a whole one. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/http.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"

#include "api_int.h"

#define PAGE 1000                /* names per listing (the most a listing gives) */
#define WINDOW 32                /* item reads in flight, at most */
#define HIGH_WATER (256 * 1024)  /* unread bytes past which reading waits for the client */

struct exporter;

/* One name of the page, and what its read came to. */
struct slot {
    struct exporter *ex;
    struct ekv_keyspace_op *op; /* its read in flight, or NULL */
    char *name;
    size_t name_len;
    bool done;
    char *line; /* its line (NULL: nothing to write: the item is gone) */
    size_t line_len;
};

struct exporter {
    struct ekv_api *api;
    struct ekv_http_req *req;
    struct ekv_keyspace_op *list_op; /* the listing in flight, or NULL */
    char sid[EKV_ID_MAX + 1];
    size_t sid_len;
    char prefix[EKV_KEY_MAX];
    size_t prefix_len;
    char after[EKV_KEY_MAX]; /* the last name listed: the next page starts after it */
    size_t after_len;
    struct slot slots[PAGE];
    size_t count, next_read, next_write; /* the page's names; the next to read, to write */
    unsigned inflight;
    bool more;        /* names follow this page */
    bool streaming;   /* the 200 and its head are out */
    bool waiting;     /* for the client to read (the drain callback) */
    bool ended;
    size_t pending;   /* unread bytes, as the last write said */
    size_t buffered;  /* bytes of lines read ahead, waiting for their turn */
    uint64_t items;
    const char *error; /* the line to end with, instead of the closing one */
};

static void pump(struct exporter *ex);

static void page_clear(struct exporter *ex)
{
    for (size_t i = 0; i < ex->count; i++) {
        ekv_free(ex->slots[i].name);
        ekv_free(ex->slots[i].line);
    }
    memset(ex->slots, 0, sizeof(ex->slots));
    ex->count = ex->next_read = ex->next_write = 0;
}

/* Ends the export: what is in flight is dropped, the stream ended, the exporter freed. */
static void finish(struct exporter *ex)
{
    for (size_t i = 0; i < ex->count; i++)
        if (ex->slots[i].op != NULL)
            ekv_keyspace_cancel(ex->slots[i].op);
    if (ex->list_op != NULL)
        ekv_keyspace_cancel(ex->list_op);
    if (ex->streaming)
        ekv_http_stream_end(ex->req);
    page_clear(ex);
    ekv_free(ex);
}

static void write_line(struct exporter *ex, const char *line, size_t len)
{
    ex->pending = ekv_http_stream_write(ex->req, line, len);
}

/* Ends with @error's line, or the closing line when there is none. */
static void conclude(struct exporter *ex)
{
    char line[96];
    int n;

    if (ex->error != NULL)
        n = snprintf(line, sizeof(line), "{\"error\":\"%s\"}\n", ex->error);
    else
        n = snprintf(line, sizeof(line), "{\"end\":true,\"items\":%llu}\n",
                     (unsigned long long)ex->items);
    write_line(ex, line, (size_t)n);
    finish(ex);
}

/* The batch line of item @name as read: {"key","value","metadata"?,"time_to_live_sec"?,
 * "generation"}. NULL when the key is no JSON string (not UTF-8: no name edgekv wrote). */
static char *item_line(const char *name, size_t name_len, const struct ekv_ks_item *it,
                       size_t *len)
{
    json_t *k = json_stringn(name, name_len), *m = NULL;
    char *key = NULL, *meta = NULL, *line = NULL, *p;
    size_t b64 = ekv_base64_encoded_len(it->value.len), klen, mlen = 0;

    if (k == NULL)
        return NULL;
    key = json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(k);
    if (it->meta.len > 0 && (m = json_stringn(it->meta.p, it->meta.len)) != NULL) {
        meta = json_dumps(m, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(m);
    }
    if (key == NULL)
        EKV_FATAL("out of memory writing an export line");
    klen = strlen(key);
    mlen = meta != NULL ? strlen(meta) : 0;
    line = ekv_malloc(klen + b64 + mlen + 128);
    p = line;
    p += sprintf(p, "{\"key\":%s,\"value\":\"", key);
    p += ekv_base64_encode(it->value.p, it->value.len, p);
    *p++ = '"';
    if (meta != NULL)
        p += sprintf(p, ",\"metadata\":%s", meta);
    if (it->ttl_ms >= 0) { /* the seconds left, rounded up (a batch line needs at least 1) */
        unsigned long long secs = ((unsigned long long)it->ttl_ms + 999) / 1000;
        p += sprintf(p, ",\"time_to_live_sec\":%llu", secs > 0 ? secs : 1);
    }
    p += sprintf(p, ",\"generation\":%llu}\n", (unsigned long long)it->generation);
    *len = (size_t)(p - line);
    free(key);
    free(meta);
    return line;
}

/* Writes the page's lines that are ready, in order. */
static void write_ready(struct exporter *ex)
{
    while (ex->next_write < ex->count && ex->slots[ex->next_write].done) {
        struct slot *s = &ex->slots[ex->next_write++];

        if (s->line != NULL) {
            write_line(ex, s->line, s->line_len);
            ex->buffered -= s->line_len;
            ex->items++;
            ekv_free(s->line);
            s->line = NULL;
        }
    }
}

static const char *origin_error(enum ekv_ks_outcome o)
{
    switch (o) {
    case EKV_KS_ORIGIN_TIMEOUT: return "origin timeout";
    case EKV_KS_ORIGIN_ERROR: return "origin error";
    case EKV_KS_ORIGIN_PROTOCOL: return "origin sent malformed data";
    default: return "origin unavailable";
    }
}

static void read_slot(struct slot *s);

static void on_item(const struct ekv_ks_result *res, const struct ekv_ks_item *item, void *arg)
{
    struct slot *s = arg;
    struct exporter *ex = s->ex;

    s->op = NULL;
    ex->inflight--;
    switch (res->outcome) {
    case EKV_KS_OK:
        if (item->ttl_ms == -2) { /* written between its TTL's read and its fields': again */
            read_slot(s);
            return;
        }
        s->line = item_line(s->name, s->name_len, item, &s->line_len);
        ex->buffered += s->line != NULL ? s->line_len : 0;
        break;
    case EKV_KS_NO_KEY: /* gone since it was listed: not live */
        break;
    case EKV_KS_NO_STORE:
        ex->error = "store deleted";
        break;
    default:
        ex->error = origin_error(res->outcome);
    }
    s->done = true;
    if (ex->error != NULL) {
        write_ready(ex); /* what came before it, then the error */
        conclude(ex);
        return;
    }
    pump(ex);
}

static void read_slot(struct slot *s)
{
    struct exporter *ex = s->ex;

    ex->inflight++;
    s->op = ekv_keyspace_item_get(ex->api->ks, ex->sid, ex->sid_len, s->name, s->name_len,
                                  on_item, s);
}

static void on_page(const struct ekv_ks_result *res, const struct ekv_ks_page *page, void *arg)
{
    struct exporter *ex = arg;

    ex->list_op = NULL;
    if (res->outcome != EKV_KS_OK) {
        ex->error = res->outcome == EKV_KS_NO_STORE ? "store deleted" : origin_error(res->outcome);
        conclude(ex);
        return;
    }
    page_clear(ex);
    for (size_t i = 0; i < page->count && i < PAGE; i++) {
        struct slot *s = &ex->slots[i];

        s->ex = ex;
        s->name = ekv_malloc(page->names[i].len + 1);
        memcpy(s->name, page->names[i].p, page->names[i].len);
        s->name_len = page->names[i].len;
    }
    ex->count = EKV_MIN(page->count, (size_t)PAGE);
    ex->more = page->more;
    if (ex->count > 0) {
        const struct slot *last = &ex->slots[ex->count - 1];

        memcpy(ex->after, last->name, EKV_MIN(last->name_len, sizeof(ex->after)));
        ex->after_len = EKV_MIN(last->name_len, sizeof(ex->after));
    } else {
        ex->more = false;
    }
    pump(ex);
}

static void list_page(struct exporter *ex)
{
    ex->list_op = ekv_keyspace_key_list(ex->api->ks, ex->sid, ex->sid_len,
                                        ex->prefix_len > 0 ? ex->prefix : NULL, ex->prefix_len,
                                        ex->after_len > 0 ? ex->after : NULL, ex->after_len, PAGE,
                                        on_page, ex);
}

/* Moves the export on as far as the client and the window allow. */
static void pump(struct exporter *ex)
{
    write_ready(ex);
    if (ekv_http_req_orphaned(ex->req)) { /* the client went away */
        finish(ex);
        return;
    }
    if (ex->pending > HIGH_WATER) {
        ex->waiting = true; /* the drain callback goes on */
        return;
    }
    /* reads ahead while what they brought is small: large values go one or two at a time */
    while (ex->inflight < WINDOW && ex->next_read < ex->count && ex->buffered < HIGH_WATER)
        read_slot(&ex->slots[ex->next_read++]);
    if (ex->next_write < ex->count || ex->inflight > 0 || ex->list_op != NULL)
        return;
    if (ex->more)
        list_page(ex);
    else
        conclude(ex);
}

static void on_drain(struct ekv_http_req *req, void *arg)
{
    struct exporter *ex = arg;

    if (ekv_http_req_orphaned(req)) {
        finish(ex);
        return;
    }
    ex->pending = 0;
    if (ex->waiting) {
        ex->waiting = false;
        pump(ex);
    }
}

/* The store exists (its buckets learned): the stream starts. */
static void on_store(const struct ekv_ks_result *res, void *arg)
{
    struct exporter *ex = arg;

    ex->list_op = NULL;
    if (res->outcome != EKV_KS_OK) {
        ekv_api_respond_outcome(ex->api, ex->req, res); /* 404 "store not found", 503 */
        ekv_free(ex);
        return;
    }
    ekv_http_add_header(ex->req, "Cache-Control", "no-store");
    ekv_http_stream_begin(ex->req, 200, "application/x-ndjson", on_drain, ex);
    ex->streaming = true;
    list_page(ex);
}

void ekv_export(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_route_capture *cap)
{
    size_t qlen;
    const char *q = ekv_http_req_query(req, &qlen);
    struct exporter *ex;
    int rc;

    if (!ekv_id_valid(cap[0].p, cap[0].len)) {
        ekv_http_respond_problem(req, 404, "store not found");
        return;
    }
    ex = ekv_calloc(1, sizeof(*ex));
    ex->api = api;
    ex->req = req;
    memcpy(ex->sid, cap[0].p, cap[0].len);
    ex->sid_len = cap[0].len;
    rc = ekv_query_param(q, qlen, "prefix", EKV_QUERY_URL, ex->prefix, sizeof(ex->prefix),
                         &ex->prefix_len);
    if (rc == EKV_EINVAL || rc == EKV_ETOOBIG) {
        ekv_http_respond_problem(req, 400, "invalid prefix");
        ekv_free(ex);
        return;
    }
    if (rc != EKV_OK)
        ex->prefix_len = 0;
    ex->list_op = ekv_keyspace_store_check(api->ks, ex->sid, ex->sid_len, on_store, ex);
}
