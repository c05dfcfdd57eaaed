/* common.c - what every handler shares: JSON answers, the one table that maps keyspace outcomes
 * to HTTP answers, random ids and timestamp formats. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/http.h"
#include "edgekv/log.h"
#include "edgekv/rng.h"
#include "edgekv/text.h"

#include "api_int.h"

#define ERR_LOG_EVERY_MS 10000

void ekv_api_respond_json(struct ekv_http_req *req, int status, void *body)
{
    char *text = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    if (text == NULL)
        EKV_FATAL("out of memory serialising a JSON answer");
    ekv_http_add_header(req, "Cache-Control", "no-store");
    ekv_http_respond_data(req, status, "application/json", text, strlen(text));
    free(text);
}

void ekv_api_respond_empty(struct ekv_http_req *req, int status)
{
    ekv_http_add_header(req, "Cache-Control", "no-store");
    ekv_http_respond(req, status, NULL);
}

/* ---------------------------------------------------------------- outcomes */

/* The HTTP answer of each keyspace outcome: the one place where a domain outcome becomes a status
 * and a problem detail (API.md). NULL detail: no body (412, as Fastly). */
static const struct answer {
    int status;
    const char *detail;
} answers[EKV_KS_OUTCOME_COUNT] = {
    [EKV_KS_OK] = {200, NULL},
    [EKV_KS_NO_STORE] = {404, "store not found"},
    [EKV_KS_NO_KEY] = {404, "key not found"},
    [EKV_KS_NO_NAME] = {404, "no store or resource link of that name"},
    [EKV_KS_NO_LINK] = {404, "resource link not found"},
    [EKV_KS_NO_TARGET] = {400, "resource_id does not name a KV store"},
    [EKV_KS_PRECONDITION_FAILED] = {412, NULL},
    [EKV_KS_TOO_LARGE] = {413, "the resulting value would exceed value-max-bytes"},
    [EKV_KS_NAME_TAKEN] = {409, "a store with this name already exists"},
    [EKV_KS_LINK_NAME_TAKEN] = {409, "a resource link with this name already exists"},
    [EKV_KS_LIMIT] = {400, "the store limit (max-stores) has been reached"},
    [EKV_KS_NOT_EMPTY] = {409, "the store still holds keys"},
    [EKV_KS_ID_TAKEN] = {500, "could not allocate a store id"},
    [EKV_KS_ORIGIN_DOWN] = {503, "the origin is unavailable"},
    [EKV_KS_ORIGIN_TIMEOUT] = {503, "the origin did not answer in time"},
    [EKV_KS_ORIGIN_ERROR] = {502, "the origin answered with an error"},
    [EKV_KS_ORIGIN_PROTOCOL] = {502, "unexpected answer from the origin"},
};

int ekv_api_outcome_status(enum ekv_ks_outcome outcome)
{
    return outcome < EKV_KS_OUTCOME_COUNT ? answers[outcome].status : 500;
}

const char *ekv_api_outcome_detail(enum ekv_ks_outcome outcome)
{
    return outcome < EKV_KS_OUTCOME_COUNT ? answers[outcome].detail : "internal error";
}

void ekv_api_log_origin_error(struct ekv_api *api, const char *text, size_t len)
{
    /* a script or ACL problem repeats on every request: say it once in a while */
    ekv_log_limited(&api->err_log, ERR_LOG_EVERY_MS, EKV_LOG_ERROR, "origin error reply: %.*s",
                    (int)EKV_MIN(len, (size_t)300), text != NULL ? text : "");
}

void ekv_api_respond_outcome(struct ekv_api *api, struct ekv_http_req *req,
                             const struct ekv_ks_result *res)
{
    enum ekv_ks_outcome oc = res->outcome;
    int status = ekv_api_outcome_status(oc);
    const char *detail = ekv_api_outcome_detail(oc);
    char buf[64];

    if (oc == EKV_KS_ORIGIN_ERROR && res->error != NULL)
        ekv_api_log_origin_error(api, res->error, res->error_len);
    if (oc == EKV_KS_ORIGIN_PROTOCOL && res->malformed != NULL) {
        snprintf(buf, sizeof(buf), "the origin holds a malformed %s", res->malformed);
        detail = buf;
    }
    if (status == 503)
        ekv_http_add_header(req, "Retry-After", "1");
    if (detail == NULL)
        ekv_http_respond(req, status, NULL);
    else
        ekv_http_respond_problem(req, status, detail);
}

void ekv_api_respond_oc(struct ekv_api *api, struct ekv_http_req *req,
                        enum ekv_ks_outcome outcome)
{
    const struct ekv_ks_result res = {.outcome = outcome};

    ekv_api_respond_outcome(api, req, &res);
}

/* ---------------------------------------------------------------- ids */

void ekv_api_new_id(struct ekv_api *api, char out[EKV_ID_LEN + 1])
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    /* 12 characters per draw; below 3 * 36^12 each of them is uniform (rejection sampling) */
    const uint64_t lim = UINT64_C(3) * UINT64_C(4738381338321616896);
    int n = 0;

    while (n < EKV_ID_LEN) {
        uint64_t v = ekv_rng_u64(&api->rng);
        if (v >= lim)
            continue;
        for (int i = 0; i < 12 && n < EKV_ID_LEN; i++) {
            out[n++] = chars[v % 36];
            v /= 36;
        }
    }
    out[EKV_ID_LEN] = '\0';
}

/* ---------------------------------------------------------------- time */

static void utc(long long t, struct tm *tm)
{
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, tm) == NULL)
        memset(tm, 0, sizeof(*tm));
}

void ekv_fmt_store_time(long long t, char out[20])
{
    struct tm tm;

    utc(t, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

void ekv_fmt_rfc3339(long long t, char out[21])
{
    struct tm tm;

    utc(t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void two(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void ekv_fmt_http_date(long long t, char out[32])
{
    static const char days[][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long long d = (t >= 0 ? t : t - 86399) / 86400, secs = t - d * 86400;
    /* civil date from days since 1970-01-01 (H. Hinnant's algorithm): no gmtime, no locale,
     * this runs for every response with a Last-Modified */
    long long z = d + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    long long year = (long long)yoe + era * 400 + (month <= 2);
    unsigned y = (unsigned)(year < 0 ? 0 : year > 9999 ? 9999 : year);

    memcpy(out, days[((d % 7) + 7) % 7], 3);
    memcpy(out + 3, ", ", 2);
    two(out + 5, day);
    out[7] = ' ';
    memcpy(out + 8, months[month - 1], 3);
    out[11] = ' ';
    two(out + 12, y / 100);
    two(out + 14, y % 100);
    out[16] = ' ';
    two(out + 17, (unsigned)(secs / 3600));
    out[19] = ':';
    two(out + 20, (unsigned)(secs / 60 % 60));
    out[22] = ':';
    two(out + 23, (unsigned)(secs % 60));
    memcpy(out + 25, " GMT", 5); /* with the NUL */
}
