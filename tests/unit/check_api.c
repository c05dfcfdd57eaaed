/* check_api.c - unit tests of the API module's pure parts (src/api/api_int.h, base64.h): key,
 * name, id and metadata rules, the if-generation-match / time_to_live_sec / limit parsers, query
 * parameters, base64 and cursors, ETag matching, batch line parsing, token comparison and
 * scopes, route matching, ids and timestamp formats. No sockets, no Redis. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"
#include "edgekv/conf.h"

#include "api_int.h"

/* ------------------------------------------------------------------ keys */

static const char *key_check(const char *k)
{
    return ekv_key_check(k, strlen(k));
}

START_TEST(test_key_valid)
{
    char k[EKV_KEY_MAX];

    ck_assert_ptr_null(key_check("a"));
    ck_assert_ptr_null(key_check("dir/k 2"));
    ck_assert_ptr_null(key_check("./a"));
    ck_assert_ptr_null(key_check("a/../b"));
    ck_assert_ptr_null(key_check("..."));
    ck_assert_ptr_null(key_check(".well-known/acme-challenge")); /* no trailing slash */
    ck_assert_ptr_null(key_check("x.well-known/acme-challenge/y"));
    ck_assert_ptr_null(key_check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")); /* é € 😀 */
    memset(k, 'k', sizeof(k));
    ck_assert_ptr_null(ekv_key_check(k, sizeof(k))); /* exactly 1024 bytes */
}
END_TEST

START_TEST(test_key_invalid)
{
    char k[EKV_KEY_MAX + 1];

    ck_assert_ptr_nonnull(ekv_key_check("", 0));
    ck_assert_ptr_nonnull(key_check("."));
    ck_assert_ptr_nonnull(key_check(".."));
    ck_assert_ptr_nonnull(key_check("a\rb"));
    ck_assert_ptr_nonnull(key_check("a\nb"));
    ck_assert_ptr_nonnull(key_check("\n"));
    ck_assert_ptr_nonnull(key_check(".well-known/acme-challenge/"));
    ck_assert_ptr_nonnull(key_check(".well-known/acme-challenge/token"));
    ck_assert_ptr_nonnull(key_check("\xff"));
    ck_assert_ptr_nonnull(key_check("a\xc3"));            /* truncated sequence */
    ck_assert_ptr_nonnull(key_check("\xc0\xaf"));         /* overlong '/' */
    ck_assert_ptr_nonnull(key_check("\xe0\x80\xaf"));     /* overlong, 3 bytes */
    ck_assert_ptr_nonnull(key_check("\xed\xa0\x80"));     /* UTF-16 surrogate */
    ck_assert_ptr_nonnull(key_check("\xf4\x90\x80\x80")); /* above U+10FFFF */
    ck_assert_ptr_nonnull(key_check("\x80"));             /* lone continuation byte */
    memset(k, 'k', sizeof(k));
    ck_assert_ptr_nonnull(ekv_key_check(k, sizeof(k))); /* 1025 bytes */
}
END_TEST

START_TEST(test_utf8)
{
    ck_assert(ekv_utf8_valid("", 0));
    ck_assert(ekv_utf8_valid("\x00", 1));
    ck_assert(ekv_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    ck_assert(ekv_utf8_valid("\xef\xbf\xbf", 3));     /* U+FFFF */
    ck_assert(!ekv_utf8_valid("\xc1\xbf", 2));
    ck_assert(!ekv_utf8_valid("\xf0\x8f\xbf\xbf", 4)); /* overlong, 4 bytes */
    ck_assert(!ekv_utf8_valid("\xe2\x82", 2));
    ck_assert(!ekv_utf8_valid("\xe2\x28\xa1", 3));
}
END_TEST

static int key_parse(const char *raw, struct ekv_item_req *ir)
{
    const char *why = NULL;
    int status;

    memset(ir, 0, sizeof(*ir));
    status = ekv_item_key_parse(ir, raw, strlen(raw), &why);
    ck_assert(status == 0 || why != NULL);
    return status;
}

START_TEST(test_key_decode_once)
{
    struct ekv_item_req ir;
    char raw[3 * EKV_KEY_MAX + 2];

    ck_assert_int_eq(key_parse("dir%2Fk%202", &ir), 0);
    ck_assert_uint_eq(ir.key_len, 7);
    ck_assert(memcmp(ir.key, "dir/k 2", 7) == 0);
    ck_assert_int_eq(key_parse("a%252Fb", &ir), 0); /* decoded once: "%2F" stays */
    ck_assert_uint_eq(ir.key_len, 5);
    ck_assert(memcmp(ir.key, "a%2Fb", 5) == 0);
    ck_assert_int_eq(key_parse("a+b", &ir), 0); /* '+' is not a space in a path */
    ck_assert(memcmp(ir.key, "a+b", 3) == 0);
    ck_assert_int_eq(key_parse("%2E", &ir), 400);
    ck_assert_int_eq(key_parse("%2E%2E", &ir), 400);
    ck_assert_int_eq(key_parse("a%0Db", &ir), 400);
    ck_assert_int_eq(key_parse("a%0ab", &ir), 400);
    ck_assert_int_eq(key_parse("%FF", &ir), 400);
    ck_assert_int_eq(key_parse("%zz", &ir), 400);
    ck_assert_int_eq(key_parse("a%2", &ir), 400);
    ck_assert_int_eq(key_parse(".well-known%2Facme-challenge%2Fx", &ir), 400);
    /* 1024 bytes written as 3072 escapes is fine; one more byte is not */
    for (int i = 0; i < EKV_KEY_MAX; i++)
        memcpy(raw + 3 * i, "%41", 3);
    raw[3 * EKV_KEY_MAX] = '\0';
    ck_assert_int_eq(key_parse(raw, &ir), 0);
    ck_assert_uint_eq(ir.key_len, EKV_KEY_MAX);
    strcpy(raw + 3 * EKV_KEY_MAX, "A");
    ck_assert_int_eq(key_parse(raw, &ir), 400);
}
END_TEST

/* ------------------------------------------------------------------ names, ids, metadata */

START_TEST(test_names)
{
    char n[EKV_NAME_MAX + 1];

    ck_assert_ptr_null(ekv_name_check("my-store_1.v2", 13));
    ck_assert_ptr_nonnull(ekv_name_check("", 0));
    ck_assert_ptr_nonnull(ekv_name_check("a b", 3));
    ck_assert_ptr_nonnull(ekv_name_check("a/b", 3));
    ck_assert_ptr_nonnull(ekv_name_check("caf\xc3\xa9", 5));
    memset(n, 'n', sizeof(n));
    ck_assert_ptr_null(ekv_name_check(n, EKV_NAME_MAX));
    ck_assert_ptr_nonnull(ekv_name_check(n, EKV_NAME_MAX + 1));
}
END_TEST

START_TEST(test_ids)
{
    ck_assert(ekv_id_valid("iaa48y0oxw13s12xpfdkk9", 22));
    ck_assert(ekv_id_valid("SU1Z0isxPaozGVKXdv0eY", 21));
    ck_assert(!ekv_id_valid("", 0));
    ck_assert(!ekv_id_valid("a}b", 3)); /* would break the {hash tag} */
    ck_assert(!ekv_id_valid("a.b", 3));
    ck_assert(!ekv_id_valid("a%2Fb", 5));
    ck_assert(
        !ekv_id_valid("0123456789012345678901234567890123456789012345678901234567890123x", 65));
}
END_TEST

START_TEST(test_metadata)
{
    char m[EKV_META_MAX + 1];

    memset(m, 'm', sizeof(m));
    ck_assert_ptr_null(ekv_meta_check("", 0));
    ck_assert_ptr_null(ekv_meta_check(m, EKV_META_MAX));
    ck_assert_ptr_nonnull(ekv_meta_check(m, EKV_META_MAX + 1));
    ck_assert_ptr_nonnull(ekv_meta_check("a\rb", 3));
    ck_assert_ptr_nonnull(ekv_meta_check("a\nb", 3));
}
END_TEST

/* ------------------------------------------------------------------ headers and limits */

START_TEST(test_generation_header)
{
    uint64_t g = 7;

    ck_assert_int_eq(ekv_parse_generation("0", 1, &g), EKV_OK);
    ck_assert_uint_eq(g, 0);
    ck_assert_int_eq(ekv_parse_generation("9007199254740993", 16, &g), EKV_OK);
    ck_assert_uint_eq(g, UINT64_C(9007199254740993));
    ck_assert_int_eq(ekv_parse_generation("18446744073709551615", 20, &g), EKV_OK);
    ck_assert_uint_eq(g, UINT64_MAX);
    ck_assert_int_eq(ekv_parse_generation("18446744073709551616", 20, &g), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_generation("", 0, &g), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_generation("-1", 2, &g), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_generation("+1", 2, &g), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_generation("1a", 2, &g), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_generation("\"1\"", 3, &g), EKV_EINVAL);
}
END_TEST

START_TEST(test_ttl_header)
{
    uint64_t t = 0;

    ck_assert_int_eq(ekv_parse_ttl("1", 1, &t), EKV_OK);
    ck_assert_uint_eq(t, 1);
    ck_assert_int_eq(ekv_parse_ttl("86400", 5, &t), EKV_OK);
    ck_assert_uint_eq(t, 86400);
    ck_assert_int_eq(ekv_parse_ttl("4294967295", 10, &t), EKV_OK);
    ck_assert_int_eq(ekv_parse_ttl("4294967296", 10, &t), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_ttl("0", 1, &t), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_ttl("-5", 2, &t), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_ttl("1.5", 3, &t), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_ttl("", 0, &t), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_ttl("1s", 2, &t), EKV_EINVAL);
}
END_TEST

START_TEST(test_limit)
{
    unsigned l = 0;

    ck_assert_int_eq(ekv_parse_limit("1", 1, &l), EKV_OK);
    ck_assert_uint_eq(l, 1);
    ck_assert_int_eq(ekv_parse_limit("1000", 4, &l), EKV_OK);
    ck_assert_uint_eq(l, 1000);
    ck_assert_int_eq(ekv_parse_limit("1001", 4, &l), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_limit("0", 1, &l), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_limit("", 0, &l), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_limit("ten", 3, &l), EKV_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ query strings */

static int qp(const char *q, const char *name, unsigned flags, char *out, size_t cap)
{
    size_t n = 0;
    int rc = ekv_query_param(q, q != NULL ? strlen(q) : 0, name, flags, out, cap, &n);

    if (rc == EKV_OK)
        out[n] = '\0';
    return rc;
}

START_TEST(test_query_param)
{
    char v[64];

    ck_assert_int_eq(qp("limit=10&cursor=abc", "cursor", 0, v, sizeof(v) - 1), EKV_OK);
    ck_assert_str_eq(v, "abc");
    ck_assert_int_eq(qp("limit=10&cursor=abc", "limit", 0, v, sizeof(v) - 1), EKV_OK);
    ck_assert_str_eq(v, "10");
    ck_assert_int_eq(qp("xlimit=1&limitx=2", "limit", 0, v, sizeof(v) - 1), EKV_ENOTFOUND);
    ck_assert_int_eq(qp(NULL, "limit", 0, v, sizeof(v) - 1), EKV_ENOTFOUND);
    ck_assert_int_eq(qp("", "limit", 0, v, sizeof(v) - 1), EKV_ENOTFOUND);
    ck_assert_int_eq(qp("a=1&a=2", "a", 0, v, sizeof(v) - 1), EKV_OK); /* the first one */
    ck_assert_str_eq(v, "1");
    ck_assert_int_eq(qp("flag&x=1", "flag", 0, v, sizeof(v) - 1), EKV_OK);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(qp("p=a%2Fb+c%3D", "p", EKV_QUERY_URL, v, sizeof(v) - 1), EKV_OK);
    ck_assert_str_eq(v, "a/b+c=");
    ck_assert_int_eq(qp("p=a%2Fb+c%3D", "p", EKV_QUERY_FORM, v, sizeof(v) - 1), EKV_OK);
    ck_assert_str_eq(v, "a/b c=");
    ck_assert_int_eq(qp("p=%zz", "p", 0, v, sizeof(v) - 1), EKV_EINVAL);
    ck_assert_int_eq(qp("p=%2", "p", 0, v, sizeof(v) - 1), EKV_EINVAL);
    ck_assert_int_eq(qp("p=abcdef", "p", 0, v, 5), EKV_ETOOBIG);
    ck_assert_int_eq(qp("p=%41%42%43", "p", 0, v, 3), EKV_OK);
    ck_assert_str_eq(v, "ABC");
}
END_TEST

START_TEST(test_query_flag)
{
    const char *q = "add=true&append=false&prepend&force=TRUE";

    ck_assert(ekv_query_flag(q, strlen(q), "add"));
    ck_assert(!ekv_query_flag(q, strlen(q), "append"));
    ck_assert(!ekv_query_flag(q, strlen(q), "prepend"));
    ck_assert(ekv_query_flag(q, strlen(q), "force"));
    ck_assert(!ekv_query_flag(q, strlen(q), "background_fetch"));
    ck_assert(!ekv_query_flag(NULL, 0, "add"));
}
END_TEST

/* ------------------------------------------------------------------ base64 and cursors */

static const struct {
    const char *plain, *b64;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

START_TEST(test_base64_vectors)
{
    for (size_t i = 0; i < EKV_ARRAY_LEN(rfc4648); i++) {
        const char *p = rfc4648[i].plain, *e = rfc4648[i].b64;
        char enc[32], dec[32];
        size_t n = 99;

        ck_assert_uint_eq(ekv_base64_encoded_len(strlen(p)), strlen(e));
        ck_assert_uint_eq(ekv_base64_encode(p, strlen(p), enc), strlen(e));
        ck_assert_str_eq(enc, e);
        ck_assert_int_eq(ekv_base64_decoded_len(e, strlen(e)), (long long)strlen(p));
        ck_assert_int_eq(ekv_base64_decode(e, strlen(e), 0, dec, sizeof(dec), &n), EKV_OK);
        ck_assert_uint_eq(n, strlen(p));
        ck_assert(memcmp(dec, p, n) == 0);
    }
}
END_TEST

START_TEST(test_base64_binary)
{
    unsigned char all[256], dec[256];
    char enc[400];
    size_t n;

    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 0; len <= sizeof(all); len += 37) {
        ekv_base64_encode(all, len, enc);
        ck_assert_int_eq(ekv_base64_decode(enc, strlen(enc), 0, dec, sizeof(dec), &n), EKV_OK);
        ck_assert_uint_eq(n, len);
        ck_assert(memcmp(dec, all, len) == 0);
    }
}
END_TEST

START_TEST(test_base64_invalid)
{
    char dec[16];
    size_t n;

    ck_assert_int_eq(ekv_base64_decode("Zg", 2, 0, dec, sizeof(dec), &n), EKV_OK); /* unpadded */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ekv_base64_decode("Zg=", 3, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Zg===", 5, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Z===", 4, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Z", 1, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Zh==", 4, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Zm9v!A==", 8, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Zm 9v", 5, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("Zg==Zg==", 8, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("-_8=", 4, 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_base64_decode("-_8=", 4, EKV_BASE64_URLSAFE, dec, sizeof(dec), &n),
                     EKV_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq((unsigned char)dec[0], 0xfb);
    ck_assert_int_eq((unsigned char)dec[1], 0xff);
}
END_TEST

START_TEST(test_base64_limit)
{
    char *out = (char *)1;
    size_t n;

    /* the size is checked before anything is allocated */
    ck_assert_int_eq(ekv_base64_decode_new("Zm9vYmFy", 8, 0, 5, &out, &n), EKV_ETOOBIG);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ekv_base64_decode("Zm9vYmFy", 8, 0, (char[5]){0}, 5, &n), EKV_ETOOBIG);
    ck_assert_int_eq(ekv_base64_decode_new("Zm9vYmFy", 8, 0, 6, &out, &n), EKV_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert_str_eq(out, "foobar");
    ekv_free(out);
    ck_assert_int_eq(ekv_base64_decode_new("Zm9v*mFy", 8, 0, 6, &out, &n), EKV_EINVAL);
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_cursor)
{
    const char key[] = "dir/k 2\xc3\xa9";
    char enc[64], dec[EKV_KEY_MAX];
    size_t n;

    ekv_cursor_encode(key, sizeof(key) - 1, enc);
    ck_assert_int_eq(ekv_cursor_decode(enc, strlen(enc), dec, sizeof(dec), &n), EKV_OK);
    ck_assert_uint_eq(n, sizeof(key) - 1);
    ck_assert(memcmp(dec, key, n) == 0);
    /* URL-safe and unpadded forms of the same cursor */
    ck_assert_int_eq(ekv_cursor_decode("-_8", 3, dec, sizeof(dec), &n), EKV_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ekv_cursor_decode("", 0, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_cursor_decode("%%%", 3, dec, sizeof(dec), &n), EKV_EINVAL);
    ck_assert_int_eq(ekv_cursor_decode("Zm9vYmFy", 8, dec, 3, &n), EKV_EINVAL); /* too long */
}
END_TEST

/* ------------------------------------------------------------------ ETags */

static bool inm(const char *v, uint64_t gen)
{
    return ekv_etag_match(v, strlen(v), gen);
}

START_TEST(test_etag_match)
{
    ck_assert(inm("\"5\"", 5));
    ck_assert(inm("W/\"5\"", 5));
    ck_assert(inm("*", 5));
    ck_assert(inm("\"4\", \"5\"", 5));
    ck_assert(inm(" \"4\" ,\"5\" ", 5));
    ck_assert(!inm("\"55\"", 5));
    ck_assert(!inm("5", 5));
    ck_assert(!inm("\"4\"", 5));
    ck_assert(!inm("", 5));
    ck_assert(inm("\"18446744073709551615\"", UINT64_MAX));
}
END_TEST

/* ------------------------------------------------------------------ batch lines */

static int batch_line(const char *line, uint64_t max, struct ekv_batch_item *it, char **key,
                      char *why)
{
    int rc = ekv_batch_parse_line(line, strlen(line), max, it, key, why, 256);

    ck_assert(rc == EKV_OK || why[0] != '\0');
    return rc;
}

START_TEST(test_batch_line_valid)
{
    struct ekv_batch_item it;
    char why[256] = "", *key = NULL;

    ck_assert_int_eq(batch_line("{\"key\":\"k1\",\"value\":\"Zm9v\"}", 100, &it, &key, why),
                     EKV_OK);
    ck_assert_str_eq(it.key, "k1");
    ck_assert_uint_eq(it.value_len, 3);
    ck_assert(memcmp(it.value, "foo", 3) == 0);
    ck_assert_ptr_null(it.meta);
    ck_assert_uint_eq(it.ttl_sec, 0);
    ekv_batch_item_clear(&it);
    ekv_free(key);

    ck_assert_int_eq(batch_line("{\"key\":\"dir/a b\",\"value\":\"\",\"metadata\":\"m1\","
                                "\"time_to_live_sec\":60,\"background_fetch\":true,"
                                "\"extra\":1}",
                                100, &it, &key, why),
                     EKV_OK);
    ck_assert_str_eq(it.key, "dir/a b");
    ck_assert_uint_eq(it.value_len, 0);
    ck_assert_str_eq(it.meta, "m1");
    ck_assert_uint_eq(it.meta_len, 2);
    ck_assert_uint_eq(it.ttl_sec, 60);
    ekv_batch_item_clear(&it);
    ekv_free(key);
}
END_TEST

START_TEST(test_batch_line_invalid)
{
    static const char *const bad[] = {
        "not json",
        "[1,2]",
        "{\"value\":\"Zm9v\"}",
        "{\"key\":1,\"value\":\"Zm9v\"}",
        "{\"key\":\".\",\"value\":\"Zm9v\"}",
        "{\"key\":\"..\",\"value\":\"Zm9v\"}",
        "{\"key\":\"a\\nb\",\"value\":\"Zm9v\"}",
        "{\"key\":\".well-known/acme-challenge/x\",\"value\":\"Zm9v\"}",
        "{\"key\":\"\",\"value\":\"Zm9v\"}",
        "{\"key\":\"k\"}",
        "{\"key\":\"k\",\"value\":\"@@@\"}",
        "{\"key\":\"k\",\"value\":\"Zm9vYmFyYmF6\"}", /* 9 bytes > 8: EKV_ETOOBIG */
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"metadata\":\"a\\r\\nb\"}",
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"metadata\":5}",
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"time_to_live_sec\":0}",
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"time_to_live_sec\":-1}",
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"time_to_live_sec\":1.5}",
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"time_to_live_sec\":\"60\"}",
        "{\"key\":\"k\",\"value\":\"Zm9v\",\"background_fetch\":\"yes\"}",
        "{\"key\":\"k\",\"key\":\"j\",\"value\":\"Zm9v\"}",
    };

    for (size_t i = 0; i < EKV_ARRAY_LEN(bad); i++) {
        struct ekv_batch_item it;
        char why[256] = "", *key = NULL;

        int want = strstr(bad[i], "Zm9vYmFyYmF6") != NULL ? EKV_ETOOBIG : EKV_EINVAL;

        ck_assert_msg(batch_line(bad[i], 8, &it, &key, why) == want, "%s: not %d", bad[i], want);
        ck_assert_ptr_null(it.key);
        ck_assert_ptr_null(it.value);
        ekv_free(key);
    }
}
END_TEST

START_TEST(test_batch_line_error_key)
{
    struct ekv_batch_item it;
    char why[256] = "", *key = NULL;
    char meta[EKV_META_MAX + 64];
    int n;

    ck_assert_int_eq(batch_line("{\"key\":\"k9\",\"value\":\"!\"}", 100, &it, &key, why),
                     EKV_EINVAL);
    ck_assert_str_eq(key, "k9"); /* for the errors[] entry */
    ekv_free(key);
    n = snprintf(meta, sizeof(meta), "{\"key\":\"k\",\"value\":\"\",\"metadata\":\"");
    memset(meta + n, 'm', EKV_META_MAX + 1);
    strcpy(meta + n + EKV_META_MAX + 1, "\"}");
    ck_assert_int_eq(batch_line(meta, 100, &it, &key, why), EKV_EINVAL);
    ekv_free(key);
    meta[n + EKV_META_MAX] = '"';
    meta[n + EKV_META_MAX + 1] = '}';
    meta[n + EKV_META_MAX + 2] = '\0';
    ck_assert_int_eq(batch_line(meta, 100, &it, &key, why), EKV_OK);
    ck_assert_uint_eq(it.meta_len, EKV_META_MAX);
    ekv_batch_item_clear(&it);
    ekv_free(key);
}
END_TEST

/* ------------------------------------------------------------------ auth */

START_TEST(test_ct_equal)
{
    ck_assert(ekv_ct_equal("secret", 6, "secret", 6));
    ck_assert(!ekv_ct_equal("secreT", 6, "secret", 6));
    ck_assert(!ekv_ct_equal("secret1", 7, "secret", 6));
    ck_assert(!ekv_ct_equal("secre", 5, "secret", 6));
    ck_assert(!ekv_ct_equal("", 0, "secret", 6));
    ck_assert(!ekv_ct_equal("secretsecret", 12, "secret", 6));
}
END_TEST

START_TEST(test_scopes)
{
    struct ekv_conf *conf = ekv_conf_new();
    char err[256];

    ck_assert_int_eq(ekv_conf_set(conf, "api-token", "admin-1", "t", err, sizeof(err)), EKV_OK);
    ck_assert_int_eq(ekv_conf_set(conf, "api-token", "admin-2", "t", err, sizeof(err)), EKV_OK);
    ck_assert_int_eq(ekv_conf_set(conf, "read-token", "reader", "t", err, sizeof(err)), EKV_OK);
    ck_assert_int_eq(ekv_auth_scope(conf, "admin-1", 7), EKV_SCOPE_GLOBAL);
    ck_assert_int_eq(ekv_auth_scope(conf, "admin-2", 7), EKV_SCOPE_GLOBAL);
    ck_assert_int_eq(ekv_auth_scope(conf, "reader", 6), EKV_SCOPE_READ);
    ck_assert_int_eq(ekv_auth_scope(conf, "admin-", 6), EKV_SCOPE_NONE);
    ck_assert_int_eq(ekv_auth_scope(conf, "reader2", 7), EKV_SCOPE_NONE);
    ck_assert_int_eq(ekv_auth_scope(conf, NULL, 0), EKV_SCOPE_NONE);
    ck_assert_int_eq(ekv_auth_scope(conf, "", 0), EKV_SCOPE_NONE);
    ekv_conf_free(conf);
}
END_TEST

/* ------------------------------------------------------------------ routes, ids, time */

START_TEST(test_route_match)
{
    struct ekv_route_capture cap[EKV_ROUTE_MAX_CAPTURES];
    const char *p = "/resources/stores/kv/abc/keys/dir%2Fk/x";

    ck_assert(ekv_route_match("/resources/stores/kv/*/keys/**", p, strlen(p), cap));
    ck_assert_uint_eq(cap[0].len, 3);
    ck_assert(memcmp(cap[0].p, "abc", 3) == 0);
    ck_assert_uint_eq(cap[1].len, 9);
    ck_assert(memcmp(cap[1].p, "dir%2Fk/x", 9) == 0);
    ck_assert(!ekv_route_match("/resources/stores/kv/*/keys", p, strlen(p), cap));
    p = "/kv/store/a/b";
    ck_assert(ekv_route_match("/kv/*/**", p, strlen(p), cap));
    ck_assert_uint_eq(cap[1].len, 3);
    p = "/kv/store/";
    ck_assert(!ekv_route_match("/kv/*/**", p, strlen(p), cap)); /* empty key */
}
END_TEST

START_TEST(test_new_ids)
{
    struct ekv_api api = {0};
    char a[EKV_ID_LEN + 1], b[EKV_ID_LEN + 1];

    ekv_rng_init(&api.rng);
    ekv_api_new_id(&api, a);
    ekv_api_new_id(&api, b);
    ck_assert_uint_eq(strlen(a), EKV_ID_LEN);
    ck_assert_uint_eq(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789"), EKV_ID_LEN);
    ck_assert_str_ne(a, b);
    ck_assert(ekv_id_valid(a, EKV_ID_LEN));
}
END_TEST

START_TEST(test_time_formats)
{
    char s[20], r[21], h[32];

    ekv_fmt_store_time(1750707675, s);
    ck_assert_str_eq(s, "2025-06-23 19:41:15");
    ekv_fmt_rfc3339(1750707675, r);
    ck_assert_str_eq(r, "2025-06-23T19:41:15Z");
    ekv_fmt_http_date(1750707675, h);
    ck_assert_str_eq(h, "Mon, 23 Jun 2025 19:41:15 GMT");
    ekv_fmt_http_date(0, h);
    ck_assert_str_eq(h, "Thu, 01 Jan 1970 00:00:00 GMT");
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc;

    tc = tcase_create("keys");
    tcase_add_test(tc, test_key_valid);
    tcase_add_test(tc, test_key_invalid);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_key_decode_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_metadata);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_test(tc, test_generation_header);
    tcase_add_test(tc, test_ttl_header);
    tcase_add_test(tc, test_limit);
    tcase_add_test(tc, test_etag_match);
    suite_add_tcase(s, tc);

    tc = tcase_create("query");
    tcase_add_test(tc, test_query_param);
    tcase_add_test(tc, test_query_flag);
    suite_add_tcase(s, tc);

    tc = tcase_create("base64");
    tcase_add_test(tc, test_base64_vectors);
    tcase_add_test(tc, test_base64_binary);
    tcase_add_test(tc, test_base64_invalid);
    tcase_add_test(tc, test_base64_limit);
    tcase_add_test(tc, test_cursor);
    suite_add_tcase(s, tc);

    tc = tcase_create("batch");
    tcase_add_test(tc, test_batch_line_valid);
    tcase_add_test(tc, test_batch_line_invalid);
    tcase_add_test(tc, test_batch_line_error_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth");
    tcase_add_test(tc, test_ct_equal);
    tcase_add_test(tc, test_scopes);
    suite_add_tcase(s, tc);

    tc = tcase_create("misc");
    tcase_add_test(tc, test_route_match);
    tcase_add_test(tc, test_new_ids);
    tcase_add_test(tc, test_time_formats);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
