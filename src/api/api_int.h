/* api_int.h - the API module's private interface: route matching (unit tested) and the
 * per-worker API context shared by the handlers. */
#ifndef EDGEKV_API_INT_H
#define EDGEKV_API_INT_H

#include "edgekv/api.h"
#include "edgekv/http.h"

struct ekv_conf;
struct ekv_origin;

#define EKV_ROUTE_MAX_CAPTURES 3

struct ekv_api {
    const struct ekv_conf *conf;
    struct ekv_origin *origin; /* this worker's Redis connection */
    bool separate_admin; /* admin-listen is set: operations endpoints live only there */
    bool draining;
};

/** A path segment captured by a route pattern (raw: still percent-encoded). */
struct ekv_route_capture {
    const char *p;
    size_t len;
};

typedef void ekv_route_handler(struct ekv_api *api, struct ekv_http_req *req,
                               const struct ekv_route_capture *cap);

enum ekv_route_body {
    EKV_BODY_SMALL = 0, /* JSON or form: EKV_API_SMALL_BODY */
    EKV_BODY_VALUE,     /* an item value: value-max-bytes */
    EKV_BODY_BATCH,     /* a batch: batch-max-bytes */
};

struct ekv_route {
    const char *pattern;   /* literal bytes; a star is one segment, two stars the rest */
    unsigned methods;      /* bit (1 << enum ekv_http_method) per allowed method */
    bool ops;              /* an operations endpoint (served on admin-listen when set) */
    enum ekv_route_body body;
    ekv_route_handler *handler;
};

/**
 * Matches @path (@len bytes) against @pattern; on success fills @cap (up to
 * EKV_ROUTE_MAX_CAPTURES) and returns true. Captures are never empty.
 */
bool ekv_route_match(const char *pattern, const char *path, size_t len,
                     struct ekv_route_capture *cap);

/** Answers with a compact JSON body and Cache-Control: no-store. Steals @body. */
void ekv_api_respond_json(struct ekv_http_req *req, int status, void *body /* json_t */);

#endif /* EDGEKV_API_INT_H */
