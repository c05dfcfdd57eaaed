/* api_int.h - the API module's private interface: route matching, request parsing and
 * validation (unit tested), and the per-worker API context shared by the handlers
 * (router.c, auth.c, parse.c, common.c, items.c, keys.c, stores.c, links.c, batch.c). */
#ifndef EDGEKV_API_INT_H
#define EDGEKV_API_INT_H

#include "edgekv/api.h"
#include "edgekv/http.h"
#include "edgekv/log.h"
#include "edgekv/rng.h"
#include "edgekv/keyspace.h"

struct ekv_conf;

#define EKV_ROUTE_MAX_CAPTURES 3

/* ---------------------------------------------------------------- limits of API.md */

#define EKV_KEY_MAX 1024          /* key bytes */
#define EKV_META_MAX 2000         /* metadata bytes */
#define EKV_NAME_MAX 255          /* store and resource-link names */
#define EKV_ID_MAX 64             /* store, link and service ids accepted in paths */
#define EKV_ID_LEN 22             /* ids edgekv generates */
#define EKV_LIST_MAX 1000         /* list page size: default and maximum */
#define EKV_GEN_LIMIT (UINT64_C(1) << 53) /* generations stay below (Lua numbers are doubles) */
#define EKV_TTL_MAX_SEC UINT64_C(4294967295) /* time_to_live_sec above this: 400 */

struct ekv_api {
    struct ekv_api_deps d;            /* cache, invalidation link, mailbox, metrics... */
    /* the current configuration snapshot, replaced on reload (ekv_api_set_conf): read values
     * through it when they are used, never keep a pointer into it across an origin wait */
    const struct ekv_conf *conf;
    struct ekv_keyspace *ks;          /* d.keyspace: this worker's data at the origin */
    struct ekv_metrics_worker *mw;    /* this worker's counters */
    uint64_t trouble_since_ms;        /* when the origin became unreachable (0: it is fine) */
    bool separate_admin;              /* admin-listen is set: ops endpoints live only there */
    bool draining;
    bool open;                        /* no token configured: no authentication */
    struct ekv_rng rng;               /* for ids */
    struct ekv_log_limit err_log;     /* Redis error replies: logged once in a while */
};

/* ---------------------------------------------------------------- routes */

/** A path segment captured by a route pattern (raw: still percent-encoded). */
struct ekv_route_capture {
    const char *p;
    size_t len;
};

typedef void ekv_route_handler(struct ekv_api *api, struct ekv_http_req *req,
                               const struct ekv_route_capture *cap);

/**
 * Checks a request once its headers are complete (before its body is read), so a request that
 * can only fail is refused without reading its body. Returns true if it may proceed; otherwise
 * it has answered @req.
 */
typedef bool ekv_route_check(struct ekv_api *api, struct ekv_http_req *req,
                             const struct ekv_route_capture *cap);

enum ekv_route_body {
    EKV_BODY_SMALL = 0, /* JSON or form: EKV_API_SMALL_BODY */
    EKV_BODY_VALUE,     /* an item value: value-max-bytes */
    EKV_BODY_BATCH,     /* a batch: batch-max-bytes */
};

struct ekv_route {
    const char *pattern;   /* literal bytes; a star is one segment, two stars the rest */
    unsigned methods;      /* bit (1 << enum ekv_http_method) per allowed method */
    bool ops;              /* an operations endpoint (no token; admin-listen when set) */
    bool edge;             /* the edge path /kv/... (edge-read-public) */
    enum ekv_route_body body;
    ekv_route_check *check; /* NULL: nothing to check before the body */
    ekv_route_handler *handler;
    int metrics_route;      /* enum ekv_metrics_route: the `route` label */
};

/**
 * Matches @path (@len bytes) against @pattern; on success fills @cap (up to
 * EKV_ROUTE_MAX_CAPTURES) and returns true. Captures are never empty.
 */
bool ekv_route_match(const char *pattern, const char *path, size_t len,
                     struct ekv_route_capture *cap);

/* ---------------------------------------------------------------- auth.c */

/** Token scopes (API.md "Security"). */
enum ekv_scope {
    EKV_SCOPE_NONE = 0, /* no token, or an unknown one */
    EKV_SCOPE_READ,     /* global:read */
    EKV_SCOPE_GLOBAL,   /* global */
};

/** The scope of the token @tok (@len bytes, NULL = none) among the configured ones. Every
 * configured token is compared, each in time independent of where the bytes differ. */
enum ekv_scope ekv_auth_scope(const struct ekv_conf *conf, const char *tok, size_t len);

/** Length-hiding comparison: true when the @alen bytes at @a equal the @blen bytes at @b. The
 * time taken depends only on @blen (the configured token), not on the contents. */
bool ekv_ct_equal(const char *a, size_t alen, const char *b, size_t blen);

/**
 * Decides whether @req (matched to @r) may proceed: ops endpoints and an open configuration
 * always may; otherwise 401 without a known token (except anonymous GET/HEAD on the edge path
 * with edge-read-public), 403 when a global:read token tries anything but GET/HEAD. Returns
 * true, or false after answering @req.
 */
bool ekv_auth_check(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_route *r);

/* ---------------------------------------------------------------- parse.c: pure validation */

/** Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
bool ekv_utf8_valid(const char *s, size_t len);

/** Key rules of API.md "Limits". Returns NULL if @key is valid, else a static reason. */
const char *ekv_key_check(const char *key, size_t len);

/** Store (and resource link) names: 1-255 of [A-Za-z0-9._-]. NULL if valid, else a reason. */
const char *ekv_name_check(const char *name, size_t len);

/** Ids in paths (store, link, service): 1-64 of [A-Za-z0-9_-]. */
bool ekv_id_valid(const char *id, size_t len);

/** Metadata: at most 2000 bytes, no CR or LF. NULL if valid, else a reason. */
const char *ekv_meta_check(const char *meta, size_t len);

/** `if-generation-match`: a decimal u64. Returns EKV_OK or EKV_EINVAL. */
EKV_NODISCARD int ekv_parse_generation(const char *s, size_t len, uint64_t *gen);

/** `time_to_live_sec`: a positive decimal up to EKV_TTL_MAX_SEC. EKV_OK or EKV_EINVAL. */
EKV_NODISCARD int ekv_parse_ttl(const char *s, size_t len, uint64_t *sec);

/** `limit` of the list endpoints: 1..1000. EKV_OK or EKV_EINVAL. */
EKV_NODISCARD int ekv_parse_limit(const char *s, size_t len, unsigned *limit);

/** Query string flags: how percent-decoding treats '+'. */
enum ekv_query_flags {
    EKV_QUERY_URL = 0,      /* '+' is '+' (URLs) */
    EKV_QUERY_FORM = 1 << 0 /* '+' is a space (application/x-www-form-urlencoded) */
};

/**
 * Finds the first parameter @name in the query (or form body) @q of @qlen bytes and writes its
 * percent-decoded value to @dst (capacity @cap, not NUL-terminated) and its length to *@outlen.
 * Returns EKV_OK, EKV_ENOTFOUND, EKV_EINVAL (bad percent-encoding) or EKV_ETOOBIG.
 */
EKV_NODISCARD int ekv_query_param(const char *q, size_t qlen, const char *name, unsigned flags,
                                  char *dst, size_t cap, size_t *outlen);

/** True when the query has @name=true. */
bool ekv_query_flag(const char *q, size_t qlen, const char *name);

/**
 * The paging parameters of a list request (`limit`, `cursor`) from the query @q: *@limit
 * (default EKV_LIST_MAX) and the decoded cursor in @cursor (capacity @cap; *@cursor_len 0 when
 * absent). Returns NULL, or the reason for a 400.
 */
const char *ekv_list_params(const char *q, size_t qlen, unsigned *limit, char *cursor, size_t cap,
                            size_t *cursor_len);

/** A list cursor: base64 of the last name of the page. @dst holds
 * ekv_base64_encoded_len(@len) + 1 bytes. */
void ekv_cursor_encode(const char *last, size_t len, char *dst);
/** Decodes a cursor (standard or URL-safe base64) into @dst (capacity @cap). EKV_OK or
 * EKV_EINVAL (including a cursor longer than @cap). */
EKV_NODISCARD int ekv_cursor_decode(const char *s, size_t len, char *dst, size_t cap,
                                    size_t *outlen);

/** True when the `If-None-Match` value @inm (@len bytes) matches the ETag of generation @gen
 * ("*" or a list holding "<gen>" or W/"<gen>"). */
bool ekv_etag_match(const char *inm, size_t len, uint64_t gen);

/** An item request, parsed and validated (views into the request stay valid until it is
 * answered). */
struct ekv_item_req {
    char store[EKV_NAME_MAX + 1];  /* store id, or (edge path) the link/store name */
    size_t store_len;
    char key[EKV_KEY_MAX];         /* decoded, not NUL-terminated */
    size_t key_len;
    bool has_igm;                  /* if-generation-match given */
    uint64_t igm;
    uint64_t ttl_sec;              /* 0: no expiry */
    const char *meta;              /* metadata header, NULL when absent */
    size_t meta_len;
    const char *inm;               /* If-None-Match, NULL when absent */
    size_t inm_len;
    enum ekv_ks_put_mode mode;     /* how the put combines with what is there */
    bool force;                    /* DELETE ?force=true */
};

/**
 * Parses the item request @req whose route captured @cap (@edge: /kv/{name}/{key}, else
 * /resources/stores/kv/{id}/keys/{key}). On failure returns the HTTP status to answer (400,
 * 404 for a malformed store id/name, 412 for an impossible generation) with a static reason in
 * *@why; 0 on success.
 */
int ekv_item_req_parse(struct ekv_item_req *ir, struct ekv_http_req *req,
                       const struct ekv_route_capture *cap, bool edge, const char **why);

/** The parts of ekv_item_req_parse() that need no request (unit tested): the raw key capture,
 * decoded once into ir->key. 0 or 400 with *@why. */
int ekv_item_key_parse(struct ekv_item_req *ir, const char *raw, size_t len, const char **why);

/* ---------------------------------------------------------------- batch.c: line parsing */

/** One valid batch line (owned: free with ekv_batch_item_clear()). */
struct ekv_batch_item {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    char *meta; /* NULL: none */
    size_t meta_len;
    uint64_t ttl_sec; /* 0: none */
};

/**
 * Parses one NDJSON line of @len bytes. Returns EKV_OK with @item filled; EKV_ENOTFOUND for a
 * line with nothing to apply (an export's closing line, {"end":true,...}); or EKV_ETOOBIG (a
 * value over @value_max: a 413) or EKV_EINVAL (anything else, an export's error line too: a
 * 400) with a reason for the batch response's errors[] in @why. Either way *@key is a new string holding
 * the line's key (for the error entry) or NULL; the caller frees it.
 */
EKV_NODISCARD int ekv_batch_parse_line(const char *line, size_t len, uint64_t value_max,
                                       struct ekv_batch_item *item, char **key, char *why,
                                       size_t whylen);
void ekv_batch_item_clear(struct ekv_batch_item *item);
/**
 * The next line of a batch body: from *@p up to @end or its newline, without that newline nor
 * the spaces, tabs and CR around it, as *@line (a view) and *@len (0: a blank line); *@p moves
 * past the newline. False once *@p reaches @end.
 */
bool ekv_batch_next_line(const char **p, const char *end, const char **line, size_t *len);
/** The errors[] entry of line @index ({key, index, code, reason}); a @key or @reason that is not
 * UTF-8 (a line quoted by a JSON error) gives key "" and reason "invalid line". Never NULL. */
struct json_t *ekv_batch_error(const char *key, size_t index, const char *code,
                               const char *reason);

/* ---------------------------------------------------------------- common.c */

/** Answers with a compact JSON body and Cache-Control: no-store. Steals @body (json_t). */
void ekv_api_respond_json(struct ekv_http_req *req, int status, void *body);
/** Answers with an empty body and Cache-Control: no-store (200 rename, 412...). */
void ekv_api_respond_empty(struct ekv_http_req *req, int status);

/**
 * Answers @req with the HTTP answer of the keyspace outcome @res (anything but EKV_KS_OK): the
 * one table of outcomes and answers (common.c). 503s carry Retry-After; a Redis error reply is
 * logged (ekv_api_log_origin_error) when @res carries its text.
 */
void ekv_api_respond_outcome(struct ekv_api *api, struct ekv_http_req *req,
                             const struct ekv_ks_result *res);
/** ekv_api_respond_outcome() for an outcome alone. */
void ekv_api_respond_oc(struct ekv_api *api, struct ekv_http_req *req,
                        enum ekv_ks_outcome outcome);
/** The HTTP status of @outcome, and its problem detail (NULL: an answer without a body). */
int ekv_api_outcome_status(enum ekv_ks_outcome outcome);
const char *ekv_api_outcome_detail(enum ekv_ks_outcome outcome);

/** Logs a Redis error reply (@len bytes of text), at most once every 10 s per worker (with a
 * count of the rest). */
void ekv_api_log_origin_error(struct ekv_api *api, const char *text, size_t len);

/** A new id of EKV_ID_LEN characters of [a-z0-9] (NUL-terminated in @out). */
void ekv_api_new_id(struct ekv_api *api, char out[EKV_ID_LEN + 1]);

/** "2025-06-23 19:41:15" (stores) for @t. @out holds 20 bytes. */
void ekv_fmt_store_time(long long t, char out[20]);
/** "2023-01-19T11:28:14Z" (resource links) for @t. @out holds 21 bytes. */
void ekv_fmt_rfc3339(long long t, char out[21]);
/** IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" for @t. @out holds 32 bytes. */
void ekv_fmt_http_date(long long t, char out[32]);

/* ---------------------------------------------------------------- read.c: cached reads */


/**
 * Answers the GET/HEAD @req of item @ir in store @sid: from the edge cache when it may be
 * trusted, joining a fill in flight, or from the origin (storing the result). Takes @ir's
 * views of @req as they are (valid until @req is answered).
 */
void ekv_read_item(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_item_req *ir,
                   const char *sid, size_t sid_len);

/** After a write of item @key of store @sid that came to @res (whatever its outcome): drop the
 * edge copy and poison a fill in flight, so this POP reads its own write. */
void ekv_api_invalidate_item(struct ekv_api *api, const struct ekv_ks_result *res,
                             const char *sid, size_t sid_len, const char *key, size_t key_len);
/** After a store or link change: forget every cached /kv/{name} resolution. */
void ekv_api_forget_names(struct ekv_api *api);

struct ekv_cache_fill;

/**
 * The cached resolution of /kv/@name: EKV_OK with the store id in @sid (capacity
 * EKV_ID_MAX + 1, NUL-terminated), EKV_ENOTFOUND for a cached "no such name", or EKV_EAGAIN
 * when the origin must be asked; then *@fill may hold a placeholder (installed before the
 * origin is asked, so a change meanwhile is not missed) to pass to ekv_names_finish().
 */
int ekv_names_lookup(struct ekv_api *api, const char *name, size_t len, char *sid,
                     struct ekv_cache_fill **fill);
/** Finishes @fill (NULL: nothing to do) with the origin's answer: @sid (NULL: no such name, or
 * @failed: the origin could not answer). */
void ekv_names_finish(struct ekv_api *api, struct ekv_cache_fill *fill, const char *name,
                      size_t len, const char *sid, size_t sid_len, bool failed);

/* ---------------------------------------------------------------- handlers
 * Route handlers (ekv_route_handler) answer their request exactly once, now or from an origin
 * callback; the *_check functions are ekv_route_check hooks run before the body is read. */

/* items.c: GET/HEAD/PUT/DELETE of one item, by store id or (edge) by link or store name */
bool ekv_items_check(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap);
bool ekv_edge_check(struct ekv_api *api, struct ekv_http_req *req,
                    const struct ekv_route_capture *cap);
void ekv_items_handle(struct ekv_api *api, struct ekv_http_req *req,
                      const struct ekv_route_capture *cap);
void ekv_edge_handle(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap);
/* keys.c: GET .../keys (list) */
/** GET /resources/stores/kv/{id}/export: the store as streamed NDJSON (export.c). */
void ekv_export(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_route_capture *cap);
void ekv_keys_list(struct ekv_api *api, struct ekv_http_req *req,
                   const struct ekv_route_capture *cap);
/* stores.c: the store collection (list, create) and one store (describe, rename, delete) */
void ekv_stores_collection(struct ekv_api *api, struct ekv_http_req *req,
                           const struct ekv_route_capture *cap);
void ekv_stores_one(struct ekv_api *api, struct ekv_http_req *req,
                    const struct ekv_route_capture *cap);
/* batch.c: PUT .../batch */
bool ekv_batch_check(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap);
void ekv_batch_handle(struct ekv_api *api, struct ekv_http_req *req,
                      const struct ekv_route_capture *cap);
/* links.c: service versions and resource links */
void ekv_service_version(struct ekv_api *api, struct ekv_http_req *req,
                         const struct ekv_route_capture *cap);
void ekv_service_versions(struct ekv_api *api, struct ekv_http_req *req,
                          const struct ekv_route_capture *cap);
void ekv_service_version_clone(struct ekv_api *api, struct ekv_http_req *req,
                               const struct ekv_route_capture *cap);
void ekv_service_details(struct ekv_api *api, struct ekv_http_req *req,
                         const struct ekv_route_capture *cap);
void ekv_links_collection(struct ekv_api *api, struct ekv_http_req *req,
                          const struct ekv_route_capture *cap);
void ekv_links_one(struct ekv_api *api, struct ekv_http_req *req,
                   const struct ekv_route_capture *cap);

#endif /* EDGEKV_API_INT_H */
