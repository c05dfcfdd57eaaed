/* router.c - maps requests to handlers: the routes of API.md, the body limit of each (decided
 * before the body is read), 404/405, and the operations endpoints. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/cache.h"
#include "edgekv/conf.h"
#include "edgekv/clock.h"
#include "edgekv/http.h"
#include "edgekv/coherence.h"
#include "edgekv/keyspace.h"
#include "edgekv/log.h"
#include "edgekv/metrics.h"

#include "api_int.h"

#define M(x) (1u << EKV_HTTP_##x)
#define READ_METHODS (M(GET) | M(HEAD))

bool ekv_route_match(const char *pattern, const char *path, size_t len,
                     struct ekv_route_capture *cap)
{
    const char *p = path, *end = path + len;
    unsigned ncap = 0;

    while (*pattern != '\0') {
        if (pattern[0] == '*' && pattern[1] == '*') { /* the rest of the path */
            if (p == end || ncap == EKV_ROUTE_MAX_CAPTURES)
                return false;
            cap[ncap++] = (struct ekv_route_capture){p, (size_t)(end - p)};
            return pattern[2] == '\0';
        }
        if (*pattern == '*') { /* one non-empty segment */
            const char *s = p;
            while (p < end && *p != '/')
                p++;
            if (p == s || ncap == EKV_ROUTE_MAX_CAPTURES)
                return false;
            cap[ncap++] = (struct ekv_route_capture){s, (size_t)(p - s)};
            pattern++;
            continue;
        }
        if (p == end || *p != *pattern)
            return false;
        p++;
        pattern++;
    }
    return p == end;
}

/* ---------------------------------------------------------------- handlers */

static void h_healthz(struct ekv_api *api, struct ekv_http_req *req,
                      const struct ekv_route_capture *cap)
{
    ekv_api_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* 200 only while the origin and (with a cache) the invalidation link are healthy; the reason
 * otherwise. The POP keeps answering correctly meanwhile, without its cache. */
static void h_readyz(struct ekv_api *api, struct ekv_http_req *req,
                     const struct ekv_route_capture *cap)
{
    char why[160] = "";
    bool origin = api->d.origins_up != NULL
                      ? api->d.origins_up(api->d.gauges_arg, why, sizeof(why))
                      : ekv_keyspace_connected(api->ks);
    bool inval = api->d.coh == NULL || ekv_coherence_all_fresh(api->d.coh, ekv_clock_now_ms(),
                                                               api->conf->max_staleness_ms);
    const char *reason = api->draining                 ? "shutting down"
                         : !origin && why[0] != '\0' ? why /* "tls: ...", "connect failed: ..." */
                         : !origin                     ? "origin not connected"
                         : !inval ? "invalidation link down: serving without the cache"
                                  : NULL;
    json_t *o = json_pack("{s:s, s:s, s:s}", "status", reason == NULL ? "ready" : "not ready",
                          "origin", origin ? "up" : "down", "invalidation",
                          api->d.coh == NULL ? "disabled" : inval ? "up" : "down");

    if (reason != NULL)
        json_object_set_new(o, "reason", json_string(reason));
    if (api->conf->origin.kind == EKV_ORIGIN_SENTINEL && api->d.gauges != NULL) {
        struct ekv_metrics_gauges g = {0};
        api->d.gauges(api->d.gauges_arg, &g);
        json_object_set_new(o, "sentinel",
                            json_pack("{s:s?, s:i, s:i, s:I}", "master",
                                      g.sentinel_master_known ? g.sentinel_master : NULL,
                                      "sentinels_up", (int)g.sentinels_up, "sentinels",
                                      (int)g.sentinels_total, "failovers",
                                      (json_int_t)g.failovers));
    }
    if (api->conf->origin.tls && !api->conf->origin_tls_verify)
        json_object_set_new(o, "origin_tls_verify", json_false());
    if (api->conf->origin.kind == EKV_ORIGIN_CLUSTER && api->d.coh != NULL) {
        struct ekv_coherence_stats cs;
        ekv_coherence_stats(api->d.coh, &cs);
        json_object_set_new(o, "nodes", json_pack("{s:i, s:i}", "up", (int)cs.links_live,
                                                  "total", (int)cs.links));
        json_object_set_new(o, "slots_served", json_integer(cs.slots_served));
    }
    if (api->d.coh != NULL && !inval) {
        struct ekv_coherence_stats st;
        ekv_coherence_stats(api->d.coh, &st);
        if (st.error[0] != '\0')
            json_object_set_new(o, "invalidation_error", json_string(st.error));
    }
    ekv_api_respond_json(req, reason == NULL ? 200 : 503, o);
}

static void h_metrics(struct ekv_api *api, struct ekv_http_req *req,
                      const struct ekv_route_capture *cap)
{
    struct ekv_metrics_gauges g = {0};
    struct evbuffer *body = evbuffer_new();

    if (body == NULL)
        EKV_FATAL("out of memory answering /metrics");
    if (api->d.gauges != NULL)
        api->d.gauges(api->d.gauges_arg, &g);
    ekv_metrics_render(api->d.metrics, &g, body);
    ekv_http_add_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    ekv_http_add_header(req, "Cache-Control", "no-store");
    ekv_http_respond(req, 200, body);
    evbuffer_free(body);
}

/* pattern, methods, ops, edge, body, check (before the body), handler, metrics route class.
 * No path matches two patterns, so the order only decides how soon a request finds its route:
 * the item routes, which nearly every request takes (hits included), come first. */
static const struct ekv_route routes[] = {
    {"/kv/*/**", READ_METHODS | M(PUT) | M(DELETE), false, true, EKV_BODY_VALUE, ekv_edge_check,
     ekv_edge_handle, EKV_MR_EDGE},
    {"/resources/stores/kv/*/keys/**", READ_METHODS | M(PUT) | M(DELETE), false, false,
     EKV_BODY_VALUE, ekv_items_check, ekv_items_handle, EKV_MR_ITEM},
    {"/healthz", READ_METHODS, true, false, EKV_BODY_SMALL, NULL, h_healthz, EKV_MR_OPS},
    {"/readyz", READ_METHODS, true, false, EKV_BODY_SMALL, NULL, h_readyz, EKV_MR_OPS},
    {"/metrics", READ_METHODS, true, false, EKV_BODY_SMALL, NULL, h_metrics, EKV_MR_OPS},
    {"/resources/stores/kv", M(GET) | M(POST), false, false, EKV_BODY_SMALL, NULL,
     ekv_stores_collection, EKV_MR_STORES},
    {"/resources/stores/kv/*", M(GET) | M(PUT) | M(DELETE), false, false, EKV_BODY_SMALL, NULL,
     ekv_stores_one, EKV_MR_STORES},
    {"/resources/stores/kv/*/keys", READ_METHODS, false, false, EKV_BODY_SMALL, NULL,
     ekv_keys_list, EKV_MR_KEYS},
    {"/resources/stores/kv/*/batch", M(PUT), false, false, EKV_BODY_BATCH, ekv_batch_check,
     ekv_batch_handle, EKV_MR_BATCH},
    /* the export is a listing with the items: the keys route class */
    {"/resources/stores/kv/*/export", M(GET), false, false, EKV_BODY_SMALL, NULL, ekv_export,
     EKV_MR_KEYS},
    {"/service/*/details", M(GET), false, false, EKV_BODY_SMALL, NULL, ekv_service_details,
     EKV_MR_LINKS},
    {"/service/*/version", M(GET), false, false, EKV_BODY_SMALL, NULL, ekv_service_versions,
     EKV_MR_LINKS},
    {"/service/*/version/*/clone", M(PUT), false, false, EKV_BODY_SMALL, NULL,
     ekv_service_version_clone, EKV_MR_LINKS},
    {"/service/*/version/*", M(GET), false, false, EKV_BODY_SMALL, NULL, ekv_service_version,
     EKV_MR_LINKS},
    {"/service/*/version/*/resource", M(GET) | M(POST), false, false, EKV_BODY_SMALL, NULL,
     ekv_links_collection, EKV_MR_LINKS},
    {"/service/*/version/*/resource/*", M(GET) | M(PUT) | M(PATCH) | M(DELETE), false, false,
     EKV_BODY_SMALL, NULL, ekv_links_one, EKV_MR_LINKS},
};


/* Finds the route of @req; NULL (and a 404/405 answer) when there is none. */
static const struct ekv_route *route(struct ekv_api *api, struct ekv_http_req *req,
                                     struct ekv_route_capture *cap)
{
    size_t len;
    const char *path = ekv_http_req_path(req, &len);
    bool admin_conn = ekv_http_req_tag(req) == EKV_API_TAG_ADMIN;

    for (size_t i = 0; i < EKV_ARRAY_LEN(routes); i++) {
        const struct ekv_route *r = &routes[i];
        char allow[64] = "";
        size_t alen = 0;

        if (!ekv_route_match(r->pattern, path, len, cap))
            continue;
        /* with admin-listen set, each listener serves only its own half of the routes */
        if (api->separate_admin && r->ops != admin_conn)
            break;
        if (r->methods & (1u << ekv_http_req_method(req)))
            return r;
        for (unsigned m = 1; m < EKV_HTTP_NMETHODS; m++) {
            if (r->methods & (1u << m)) {
                int n = snprintf(allow + alen, sizeof(allow) - alen, "%s%s",
                                 alen > 0 ? ", " : "", ekv_http_method_name((enum ekv_http_method)m));
                if (n > 0)
                    alen = EKV_MIN(alen + (size_t)n, sizeof(allow) - 1);
            }
        }
        ekv_http_add_header(req, "Allow", allow);
        ekv_http_respond_problem(req, 405, "method not allowed on this resource");
        return NULL;
    }
    ekv_http_respond_problem(req, 404, "no such resource");
    return NULL;
}

static uint64_t on_head(struct ekv_http_req *req, void *arg)
{
    struct ekv_api *api = arg;
    struct ekv_route_capture cap[EKV_ROUTE_MAX_CAPTURES];
    const struct ekv_route *r = route(api, req, cap);

    if (r == NULL)
        return 0;
    ekv_http_req_set_data(req, (void *)r); /* its route class counts also refused requests */
    if (!ekv_auth_check(api, req, r))
        return 0;
    /* the checks exist to refuse a request before its body is read; without a body, the
     * handler validates the same way (and a hit does not parse the request twice) */
    if (r->check != NULL && ekv_http_req_has_body(req) && !r->check(api, req, cap))
        return 0;
    switch (r->body) {
    case EKV_BODY_VALUE: return api->conf->value_max_bytes;
    case EKV_BODY_BATCH: return api->conf->batch_max_bytes;
    default: return (uint64_t)EKV_API_SMALL_BODY;
    }
}

static void on_request(struct ekv_http_req *req, void *arg)
{
    struct ekv_api *api = arg;
    const struct ekv_route *r = ekv_http_req_data(req);
    struct ekv_route_capture cap[EKV_ROUTE_MAX_CAPTURES];
    size_t len;
    const char *path = ekv_http_req_path(req, &len);

    if (!ekv_route_match(r->pattern, path, len, cap)) /* cannot happen: matched in on_head */
        EKV_FATAL("route %s no longer matches its request", r->pattern);
    r->handler(api, req, cap);
}

/* Every answer, for the request counters and the duration histogram. */
static void on_done(struct ekv_http_req *req, int status, void *arg)
{
    struct ekv_api *api = arg;
    const struct ekv_route *r = ekv_http_req_data(req);

    ekv_metrics_http(api->mw, r != NULL ? (enum ekv_metrics_route)r->metrics_route : EKV_MR_OTHER,
                     (int)ekv_http_req_method(req), status, ekv_http_req_elapsed_us(req));
}

/* The origin connection's ups and downs: stale-if-error counts from the first trouble. */
static void on_origin_state(bool up, void *arg)
{
    struct ekv_api *api = arg;

    if (up)
        api->trouble_since_ms = 0;
    else if (api->trouble_since_ms == 0)
        api->trouble_since_ms = ekv_clock_now_ms();
}

/* Every origin answer, for the origin counters and latency histogram, by the keyspace's op. */
static void on_origin_observe(enum ekv_ks_op op, enum ekv_ks_outcome outcome, uint64_t latency_us,
                              void *arg)
{
    static const enum ekv_metrics_op ops[EKV_KS_OP_COUNT] = {
        [EKV_KS_OP_GET] = EKV_MO_GET,       [EKV_KS_OP_PUT] = EKV_MO_PUT,
        [EKV_KS_OP_DELETE] = EKV_MO_DELETE, [EKV_KS_OP_LIST] = EKV_MO_LIST,
        [EKV_KS_OP_STORE] = EKV_MO_STORE,   [EKV_KS_OP_LINK] = EKV_MO_LINK,
        [EKV_KS_OP_RESOLVE] = EKV_MO_RESOLVE,
    };
    struct ekv_api *api = arg;
    enum ekv_metrics_outcome mx = outcome == EKV_KS_ORIGIN_TIMEOUT ? EKV_MX_TIMEOUT
                                  : outcome == EKV_KS_ORIGIN_DOWN  ? EKV_MX_UNAVAILABLE
                                  : outcome == EKV_KS_ORIGIN_ERROR ? EKV_MX_ERROR
                                                                   : EKV_MX_OK;

    ekv_metrics_origin(api->mw, op < EKV_KS_OP_COUNT ? ops[op] : EKV_MO_STORE, mx, latency_us);
}

struct ekv_api *ekv_api_new(const struct ekv_api_deps *deps)
{
    struct ekv_api *api = ekv_calloc(1, sizeof(*api));
    const struct ekv_conf *conf = deps->conf;
    const struct ekv_keyspace_hooks hooks = {
        .on_state = on_origin_state, .on_observe = on_origin_observe, .arg = api};

    api->d = *deps;
    api->conf = conf;
    api->ks = deps->keyspace;
    api->mw = ekv_metrics_worker(deps->metrics, deps->worker);
    api->trouble_since_ms = ekv_clock_now_ms(); /* not connected yet */
    ekv_keyspace_set_hooks(api->ks, &hooks);
    api->separate_admin = conf->admin_listen.host != NULL;
    api->open = conf->api_tokens.count == 0 && conf->read_tokens.count == 0;
    ekv_rng_init(&api->rng);
    return api;
}

void ekv_api_free(struct ekv_api *api)
{
    if (api == NULL)
        return;
    ekv_keyspace_set_hooks(api->ks, NULL);
    ekv_free(api);
}

void ekv_api_hooks(struct ekv_api *api, struct ekv_http_hooks *hooks)
{
    hooks->on_head = on_head;
    hooks->on_request = on_request;
    hooks->on_done = on_done;
    hooks->arg = api;
}

void ekv_api_set_conf(struct ekv_api *api, const struct ekv_conf *conf)
{
    api->conf = conf;
    api->d.conf = conf;
    api->open = conf->api_tokens.count == 0 && conf->read_tokens.count == 0;
}

void ekv_api_set_draining(struct ekv_api *api)
{
    api->draining = true;
}
