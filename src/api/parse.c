/* parse.c - validation and parsing of what clients send: keys, names, ids, metadata, the
 * if-generation-match / time_to_live_sec headers, query parameters, cursors and ETags.
 * Everything here runs before any origin access, and all but ekv_item_req_parse() is pure. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "edgekv/base64.h"
#include "edgekv/text.h"

#include "api_int.h"

#define ACME_PREFIX ".well-known/acme-challenge/"

bool ekv_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead (c0, c1) or above f4 */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

const char *ekv_key_check(const char *key, size_t len)
{
    if (len == 0)
        return "key is empty";
    if (len > EKV_KEY_MAX)
        return "key is longer than 1024 bytes";
    if ((len == 1 && key[0] == '.') || (len == 2 && key[0] == '.' && key[1] == '.'))
        return "key must not be \".\" or \"..\"";
    if (memchr(key, '\r', len) != NULL || memchr(key, '\n', len) != NULL)
        return "key must not contain CR or LF";
    if (len >= sizeof(ACME_PREFIX) - 1 && memcmp(key, ACME_PREFIX, sizeof(ACME_PREFIX) - 1) == 0)
        return "key must not start with .well-known/acme-challenge/";
    if (!ekv_utf8_valid(key, len))
        return "key is not valid UTF-8";
    return NULL;
}

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

const char *ekv_name_check(const char *name, size_t len)
{
    if (len == 0)
        return "name is empty";
    if (len > EKV_NAME_MAX)
        return "name is longer than 255 characters";
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)name[i]))
            return "name may only contain letters, digits, '-', '_' and '.'";
    return NULL;
}

bool ekv_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > EKV_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)id[i]) || id[i] == '.')
            return false;
    return true;
}

const char *ekv_meta_check(const char *meta, size_t len)
{
    if (len > EKV_META_MAX)
        return "metadata is longer than 2000 bytes";
    if (memchr(meta, '\r', len) != NULL || memchr(meta, '\n', len) != NULL)
        return "metadata must not contain CR or LF";
    return NULL;
}

int ekv_parse_generation(const char *s, size_t len, uint64_t *gen)
{
    return ekv_parse_u64(s, len, gen);
}

int ekv_parse_ttl(const char *s, size_t len, uint64_t *sec)
{
    uint64_t v;

    if (ekv_parse_u64(s, len, &v) != EKV_OK || v == 0 || v > EKV_TTL_MAX_SEC)
        return EKV_EINVAL;
    *sec = v;
    return EKV_OK;
}

int ekv_parse_limit(const char *s, size_t len, unsigned *limit)
{
    uint64_t v;

    if (ekv_parse_u64(s, len, &v) != EKV_OK || v == 0 || v > EKV_LIST_MAX)
        return EKV_EINVAL;
    *limit = (unsigned)v;
    return EKV_OK;
}

/* Percent-decodes @len bytes at @src into @dst (capacity @cap). */
static int decode_value(const char *src, size_t len, unsigned flags, char *dst, size_t cap,
                        size_t *outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return EKV_EINVAL;
            hi = ekv_hex_digit((unsigned char)src[i + 1]);
            lo = ekv_hex_digit((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return EKV_EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && (flags & EKV_QUERY_FORM)) {
            c = ' ';
        }
        if (o == cap)
            return EKV_ETOOBIG;
        dst[o++] = c;
    }
    *outlen = o;
    return EKV_OK;
}

const char *ekv_list_params(const char *q, size_t qlen, unsigned *limit, char *cursor, size_t cap,
                            size_t *cursor_len)
{
    char buf[3 * EKV_KEY_MAX];
    size_t n;
    int rc;

    *limit = EKV_LIST_MAX;
    *cursor_len = 0;
    rc = ekv_query_param(q, qlen, "limit", EKV_QUERY_URL, buf, sizeof(buf), &n);
    if (rc != EKV_ENOTFOUND && (rc != EKV_OK || ekv_parse_limit(buf, n, limit) != EKV_OK))
        return "limit must be an integer from 1 to 1000";
    rc = ekv_query_param(q, qlen, "cursor", EKV_QUERY_URL, buf, sizeof(buf), &n);
    if (rc != EKV_ENOTFOUND && n > 0 &&
        (rc != EKV_OK || ekv_cursor_decode(buf, n, cursor, cap, cursor_len) != EKV_OK ||
         *cursor_len == 0))
        return "invalid cursor";
    return NULL;
}

int ekv_query_param(const char *q, size_t qlen, const char *name, unsigned flags, char *dst,
                    size_t cap, size_t *outlen)
{
    size_t nlen = strlen(name);
    const char *p, *end;

    if (q == NULL) /* no query string at all */
        return EKV_ENOTFOUND;
    p = q;
    end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *nend = eq != NULL ? eq : stop;

        if ((size_t)(nend - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (eq == NULL) {
                *outlen = 0;
                return EKV_OK;
            }
            return decode_value(eq + 1, (size_t)(stop - eq - 1), flags, dst, cap, outlen);
        }
        p = stop + 1;
    }
    return EKV_ENOTFOUND;
}

bool ekv_query_flag(const char *q, size_t qlen, const char *name)
{
    char v[8];
    size_t n;

    return ekv_query_param(q, qlen, name, EKV_QUERY_URL, v, sizeof(v), &n) == EKV_OK &&
           ekv_strn_caseeq(v, n, "true");
}

void ekv_cursor_encode(const char *last, size_t len, char *dst)
{
    ekv_base64_encode(last, len, dst);
}

int ekv_cursor_decode(const char *s, size_t len, char *dst, size_t cap, size_t *outlen)
{
    if (len == 0)
        return EKV_EINVAL;
    return ekv_base64_decode(s, len, EKV_BASE64_URLSAFE, dst, cap, outlen) == EKV_OK ? EKV_OK
                                                                                     : EKV_EINVAL;
}

bool ekv_etag_match(const char *inm, size_t len, uint64_t gen)
{
    char tag[32];
    int tlen = snprintf(tag, sizeof(tag), "\"%llu\"", (unsigned long long)gen);
    const char *p = inm, *end = inm + len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        const char *a = p, *b = stop;

        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b - a == 1 && *a == '*')
            return true;
        if (b - a >= 2 && a[0] == 'W' && a[1] == '/') /* weak comparison (RFC 9110 13.1.2) */
            a += 2;
        if (b - a == tlen && memcmp(a, tag, (size_t)tlen) == 0)
            return true;
        p = stop + 1;
    }
    return false;
}

/* ---------------------------------------------------------------- item requests */

int ekv_item_key_parse(struct ekv_item_req *ir, const char *raw, size_t len, const char **why)
{
    char buf[3 * EKV_KEY_MAX];
    long n;

    /* each decoded byte takes at most three raw ones: a longer raw key is too long anyway */
    if (len > sizeof(buf)) {
        *why = "key is longer than 1024 bytes";
        return 400;
    }
    n = ekv_pct_decode(buf, raw, len);
    if (n < 0) {
        *why = "key is not correctly percent-encoded";
        return 400;
    }
    if ((*why = ekv_key_check(buf, (size_t)n)) != NULL)
        return 400;
    memcpy(ir->key, buf, (size_t)n);
    ir->key_len = (size_t)n;
    return 0;
}

/* The store part of the path: a store id, or (edge path) a percent-encoded name. */
static int store_parse(struct ekv_item_req *ir, const char *raw, size_t len, bool edge,
                       const char **why)
{
    if (!edge) {
        if (!ekv_id_valid(raw, len)) {
            *why = "store not found";
            return 404;
        }
        memcpy(ir->store, raw, len);
        ir->store_len = len;
    } else {
        char buf[3 * EKV_NAME_MAX];
        long n = len <= sizeof(buf) ? ekv_pct_decode(buf, raw, len) : -1;

        if (n < 0 || ekv_name_check(buf, (size_t)n) != NULL) {
            *why = "no store or resource link of that name";
            return 404;
        }
        memcpy(ir->store, buf, (size_t)n);
        ir->store_len = (size_t)n;
    }
    ir->store[ir->store_len] = '\0';
    return 0;
}

int ekv_item_req_parse(struct ekv_item_req *ir, struct ekv_http_req *req,
                       const struct ekv_route_capture *cap, bool edge, const char **why)
{
    enum ekv_http_method m = ekv_http_req_method(req);
    size_t qlen, len;
    const char *q = ekv_http_req_query(req, &qlen), *v;
    int status;

    memset(ir, 0, sizeof(*ir));
    /* the key first: an invalid key is 400 on every method, even for a missing store */
    if ((status = ekv_item_key_parse(ir, cap[1].p, cap[1].len, why)) != 0)
        return status;
    if ((status = store_parse(ir, cap[0].p, cap[0].len, edge, why)) != 0)
        return status;
    if (m == EKV_HTTP_GET || m == EKV_HTTP_HEAD) {
        ir->inm = ekv_http_req_header(req, "if-none-match", &ir->inm_len);
        return 0;
    }
    v = ekv_http_req_header(req, "if-generation-match", &len);
    if (v != NULL) {
        if (ekv_parse_generation(v, len, &ir->igm) != EKV_OK) {
            *why = "if-generation-match must be an unsigned decimal integer";
            return 400;
        }
        ir->has_igm = true;
    }
    if (m == EKV_HTTP_DELETE) {
        ir->force = ekv_query_flag(q, qlen, "force");
    } else {
        bool add = ekv_query_flag(q, qlen, "add"), app = ekv_query_flag(q, qlen, "append"),
             pre = ekv_query_flag(q, qlen, "prepend");

        if (add + app + pre > 1) {
            *why = "add, append and prepend exclude each other";
            return 400;
        }
        ir->mode = add   ? EKV_KS_PUT_ADD
                   : app ? EKV_KS_PUT_APPEND
                   : pre ? EKV_KS_PUT_PREPEND
                         : EKV_KS_PUT_SET;
        v = ekv_http_req_header(req, "time_to_live_sec", &len);
        if (v != NULL && ekv_parse_ttl(v, len, &ir->ttl_sec) != EKV_OK) {
            *why = "time_to_live_sec must be a positive decimal integer";
            return 400;
        }
        ir->meta = ekv_http_req_header(req, "metadata", &ir->meta_len);
        if (ir->meta != NULL && (*why = ekv_meta_check(ir->meta, ir->meta_len)) != NULL)
            return 400;
    }
    /* no generation reaches 2^53 (see DESIGN.md), so such a precondition can never hold */
    if (ir->has_igm && ir->igm >= EKV_GEN_LIMIT) {
        *why = NULL;
        return 412;
    }
    return 0;
}
