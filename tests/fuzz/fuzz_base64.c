/* fuzz_base64.c - libFuzzer target: base64 (src/core/base64.c), which decodes batch values,
 * and the list cursors built on it (src/api/parse.c). The whole input is decoded both ways
 * (strict, URL-safe), as a cursor, and with limits around its decoded length; and encoded.
 *
 * Invariants: the decoded length is the one announced before decoding; decoding is strict, so
 * what decodes encodes back to the same text (URL-safe letters and missing padding aside);
 * encoding then decoding gives the bytes back; a limit is checked before anything is written. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"

#include "api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_base64: %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_INPUT 16384

static char dec[MAX_INPUT];
static char enc[MAX_INPUT / 3 * 4 + 8];
static char enc2[(MAX_INPUT + 2) / 3 * 4 + 8];

/* @s decoded to @n bytes at @d: encoding @d gives @s back, up to the alphabet and padding. */
static void check_canonical(const char *s, size_t len, const char *d, size_t n, unsigned flags)
{
    size_t elen = ekv_base64_encode(d, n, enc);

    CHECK(elen == ekv_base64_encoded_len(n));
    CHECK(enc[elen] == '\0');
    CHECK(elen >= len && elen - len <= 2);
    for (size_t i = 0; i < elen; i++) {
        char c = i < len ? s[i] : '=';
        if (flags & EKV_BASE64_URLSAFE)
            c = c == '-' ? '+' : c == '_' ? '/' : c;
        CHECK(enc[i] == c);
    }
}

static void decode(const char *s, size_t len, unsigned flags)
{
    long long want = ekv_base64_decoded_len(s, len);
    size_t n = 0;
    char *out = NULL;
    int rc = ekv_base64_decode(s, len, flags, dec, sizeof(dec), &n);

    CHECK(rc == EKV_OK || rc == EKV_EINVAL || rc == EKV_ETOOBIG);
    if (rc == EKV_OK) {
        CHECK(want >= 0 && (unsigned long long)want == n);
        check_canonical(s, len, dec, n, flags);
        /* a limit one byte short is refused before anything is decoded */
        if (n > 0) {
            size_t m = 12345;
            CHECK(ekv_base64_decode(s, len, flags, dec, n - 1, &m) == EKV_ETOOBIG);
            CHECK(m == 12345);
        }
    } else if (want < 0) {
        CHECK(rc == EKV_EINVAL);
    }
    rc = ekv_base64_decode_new(s, len, flags, sizeof(dec), &out, &n);
    CHECK((rc == EKV_OK) == (out != NULL));
    if (rc == EKV_OK) {
        CHECK(out[n] == '\0');
        CHECK(memcmp(out, dec, n) == 0);
        ekv_free(out);
    }
}

static void roundtrip(const char *d, size_t n)
{
    size_t elen = ekv_base64_encode(d, n, enc2), m = 0;
    char *out = NULL;

    CHECK(elen == ekv_base64_encoded_len(n) && elen % 4 == 0);
    CHECK(ekv_base64_decoded_len(enc2, elen) == (long long)n);
    CHECK(ekv_base64_decode_new(enc2, elen, EKV_BASE64_STRICT, n, &out, &m) == EKV_OK);
    CHECK(m == n && memcmp(out, d, n) == 0);
    ekv_free(out);
}

static void cursor(const char *s, size_t len)
{
    char last[EKV_KEY_MAX];
    size_t n = 0;

    if (ekv_cursor_decode(s, len, last, sizeof(last), &n) == EKV_OK) {
        CHECK(len > 0 && n <= sizeof(last));
        /* the cursor edgekv would hand out for that name decodes to it */
        ekv_cursor_encode(last, n, enc);
        CHECK(ekv_cursor_decode(enc, strlen(enc), dec, sizeof(dec), &n) == EKV_OK);
        CHECK(memcmp(dec, last, n) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    if (size > MAX_INPUT)
        return 0;
    decode(s, size, EKV_BASE64_STRICT);
    decode(s, size, EKV_BASE64_URLSAFE);
    cursor(s, size);
    roundtrip(s, size);
    return 0;
}
