/* auth.c - Fastly-Key tokens and their scopes (API.md "Security"), decided from the headers
 * alone, before a request's body is read. */
#include "config.h"

#include <string.h>

#include "edgekv/conf.h"
#include "edgekv/http.h"

#include "api_int.h"

bool ekv_ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* volatile: keep the compiler from turning the loop into an early-exit memcmp */
    volatile unsigned char diff = (unsigned char)(alen != blen);

    for (size_t i = 0; i < blen; i++) {
        unsigned char ca = alen > 0 ? (unsigned char)a[i % alen] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

/* Compares @tok with every token of @list (no early exit: timing says nothing of which). */
static bool in_list(const struct ekv_conf_strlist *list, const char *tok, size_t len)
{
    bool found = false;

    for (size_t i = 0; i < list->count; i++)
        found |= ekv_ct_equal(tok, len, list->items[i], strlen(list->items[i]));
    return found;
}

enum ekv_scope ekv_auth_scope(const struct ekv_conf *conf, const char *tok, size_t len)
{
    bool global, read;

    if (tok == NULL || len == 0)
        return EKV_SCOPE_NONE;
    global = in_list(&conf->api_tokens, tok, len);
    read = in_list(&conf->read_tokens, tok, len);
    return global ? EKV_SCOPE_GLOBAL : read ? EKV_SCOPE_READ : EKV_SCOPE_NONE;
}

bool ekv_auth_check(struct ekv_api *api, struct ekv_http_req *req, const struct ekv_route *r)
{
    enum ekv_http_method m = ekv_http_req_method(req);
    bool reading = m == EKV_HTTP_GET || m == EKV_HTTP_HEAD;
    size_t len;
    const char *tok;
    enum ekv_scope scope;

    if (r->ops || api->open)
        return true;
    tok = ekv_http_req_header(req, "fastly-key", &len);
    if (tok == NULL && r->edge && reading && api->conf->edge_read_public)
        return true;
    scope = ekv_auth_scope(api->conf, tok, len);
    if (scope == EKV_SCOPE_NONE) {
        ekv_http_add_header(req, "WWW-Authenticate", "Fastly-Key");
        ekv_http_respond_problem(req, 401,
                                 tok == NULL ? "a Fastly-Key header is required"
                                             : "the Fastly-Key token is not valid");
        return false;
    }
    if (scope == EKV_SCOPE_READ && !reading) {
        ekv_http_respond_problem(req, 403, "the token's scope (global:read) does not allow this");
        return false;
    }
    return true;
}
