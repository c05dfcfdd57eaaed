/* fuzz_text.c - libFuzzer target: what clients write in URLs and headers, before any origin
 * access: percent-decoding (src/core/text.c), the key, name, id and metadata rules, the
 * if-generation-match / time_to_live_sec / limit numbers, query parameters and list paging,
 * If-None-Match (src/api/parse.c); and the number, size and duration parsers of the config.
 * Every function gets the whole input.
 *
 * Invariants: decoding never grows; what a validator accepts obeys the rules of API.md
 * "Limits" (checked here independently); numbers that parse print back the same; a query
 * parameter that is malformed makes ekv_list_params() refuse the request. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/text.h"

#include "api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_text: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_INPUT 8192

static bool has_crlf(const char *s, size_t len)
{
    return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL;
}

/* A decimal without leading zeros ("0" itself aside) prints back as itself. */
static void check_u64_roundtrip(const char *s, size_t len, uint64_t v)
{
    char out[24];
    size_t n = ekv_fmt_u64(out, v);

    if (len > 1 && s[0] == '0')
        return;
    CHECK(n == len && memcmp(out, s, len) == 0);
}

static void numbers(const char *s, size_t len)
{
    uint64_t v;
    unsigned lim;

    if (ekv_parse_u64(s, len, &v) == EKV_OK) {
        for (size_t i = 0; i < len; i++)
            CHECK(s[i] >= '0' && s[i] <= '9');
        check_u64_roundtrip(s, len, v);
        CHECK(ekv_parse_generation(s, len, &v) == EKV_OK);
    } else {
        CHECK(ekv_parse_generation(s, len, &v) != EKV_OK);
    }
    if (ekv_parse_ttl(s, len, &v) == EKV_OK)
        CHECK(v >= 1 && v <= EKV_TTL_MAX_SEC);
    if (ekv_parse_limit(s, len, &lim) == EKV_OK)
        CHECK(lim >= 1 && lim <= EKV_LIST_MAX);
}

static void config_values(const char *s, size_t len)
{
    char z[MAX_INPUT + 1];
    uint64_t v;

    memcpy(z, s, len);
    z[len] = '\0';
    (void)ekv_parse_size(z, &v);
    (void)ekv_parse_duration(z, &v);
}

static void validators(const char *s, size_t len)
{
    const char *why;
    struct ekv_item_req ir;

    if (ekv_key_check(s, len) == NULL) {
        CHECK(len >= 1 && len <= EKV_KEY_MAX);
        CHECK(!has_crlf(s, len));
        CHECK(ekv_utf8_valid(s, len));
        CHECK(!(len == 1 && s[0] == '.') && !(len == 2 && memcmp(s, "..", 2) == 0));
    }
    if (ekv_name_check(s, len) == NULL) {
        CHECK(len >= 1 && len <= EKV_NAME_MAX);
        for (size_t i = 0; i < len; i++)
            CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                         s[i]) != NULL &&
                  s[i] != '\0');
    }
    if (ekv_id_valid(s, len)) {
        CHECK(len >= 1 && len <= EKV_ID_MAX);
        CHECK(ekv_name_check(s, len) == NULL);
        CHECK(memchr(s, '.', len) == NULL);
    }
    if (ekv_meta_check(s, len) == NULL)
        CHECK(len <= EKV_META_MAX && !has_crlf(s, len));
    /* a key as it comes in the path: percent-encoded */
    memset(&ir, 0, sizeof(ir));
    if (ekv_item_key_parse(&ir, s, len, &why) == 0) {
        CHECK(ir.key_len <= len && ir.key_len <= EKV_KEY_MAX);
        CHECK(ekv_key_check(ir.key, ir.key_len) == NULL);
    } else {
        CHECK(why != NULL);
    }
}

static void percent(const char *s, size_t len)
{
    static char dst[MAX_INPUT];
    long n = ekv_pct_decode(dst, s, len);

    if (n >= 0) {
        CHECK((size_t)n <= len);
        CHECK(((size_t)n == len) == (memchr(s, '%', len) == NULL));
    } else {
        CHECK(memchr(s, '%', len) != NULL);
    }
}

static void query(const char *q, size_t len)
{
    static const char *const names[] = {"limit", "cursor", "prefix", "force", "add", "append",
                                        "prepend", "name", ""};
    char dst[64], cursor[EKV_KEY_MAX];
    size_t n, clen;
    unsigned lim;
    const char *why;
    int crc;

    for (size_t i = 0; i < EKV_ARRAY_LEN(names); i++) {
        for (unsigned flags = 0; flags <= EKV_QUERY_FORM; flags++) {
            int rc = ekv_query_param(q, len, names[i], flags, dst, sizeof(dst), &n);
            CHECK(rc == EKV_OK || rc == EKV_ENOTFOUND || rc == EKV_EINVAL || rc == EKV_ETOOBIG);
            if (rc == EKV_OK)
                CHECK(n <= sizeof(dst));
        }
        (void)ekv_query_flag(q, len, names[i]);
    }
    CHECK(ekv_query_param(NULL, 0, "limit", EKV_QUERY_URL, dst, sizeof(dst), &n) ==
          EKV_ENOTFOUND);
    why = ekv_list_params(q, len, &lim, cursor, sizeof(cursor), &clen);
    if (why == NULL) {
        char buf[3 * EKV_KEY_MAX];
        CHECK(lim >= 1 && lim <= EKV_LIST_MAX);
        CHECK(clen <= sizeof(cursor));
        /* a cursor parameter that does not decode is a 400, never "no cursor" */
        crc = ekv_query_param(q, len, "cursor", EKV_QUERY_URL, buf, sizeof(buf), &n);
        CHECK(crc == EKV_OK || crc == EKV_ENOTFOUND);
        crc = ekv_query_param(q, len, "limit", EKV_QUERY_URL, buf, sizeof(buf), &n);
        CHECK(crc == EKV_OK || crc == EKV_ENOTFOUND);
    }
}

static void etag(const char *s, size_t len)
{
    static const uint64_t gens[] = {0, 1, 7, 1234567890123ull, UINT64_MAX};

    for (size_t i = 0; i < EKV_ARRAY_LEN(gens); i++)
        (void)ekv_etag_match(s, len, gens[i]);
    if (len == 1 && s[0] == '*')
        CHECK(ekv_etag_match(s, len, 42));
}

static void names(const char *s, size_t len)
{
    /* header-name matching: a name equals a literal only with the literal's length */
    if (ekv_header_name_eq(s, len, "content-length"))
        CHECK(len == 14);
    if (ekv_strn_caseeq(s, len, "true"))
        CHECK(len == 4);
    for (size_t i = 0; i < len && i < 4; i++) {
        int d = ekv_hex_digit((unsigned char)s[i]);
        CHECK(d >= -1 && d <= 15);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    if (size > MAX_INPUT)
        return 0;
    numbers(s, size);
    config_values(s, size);
    validators(s, size);
    percent(s, size);
    query(s, size);
    etag(s, size);
    names(s, size);
    return 0;
}
