/* base64.c - RFC 4648 base64 encoding and strict decoding with a size check before allocation. */
#include "config.h"

#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char pad = '=';

size_t ekv_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t ekv_base64_encode(const void *src, size_t n, char *dst)
{
    const unsigned char *s = src;
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = alphabet[v >> 18];
        dst[o++] = alphabet[(v >> 12) & 63];
        dst[o++] = alphabet[(v >> 6) & 63];
        dst[o++] = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        dst[o++] = alphabet[v >> 18];
        dst[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            dst[o++] = alphabet[(v >> 6) & 63];
        else
            dst[o++] = pad;
        dst[o++] = pad;
    }
    dst[o] = '\0';
    return o;
}

/* The 6-bit value of @c, or -1. */
static int sextet(unsigned char c, unsigned flags)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if ((flags & EKV_BASE64_URLSAFE) && c == '-')
        return 62;
    if ((flags & EKV_BASE64_URLSAFE) && c == '_')
        return 63;
    return -1;
}

/* Characters without padding, or -1 if the padding is malformed. */
static long long unpadded(const char *src, size_t len)
{
    size_t n = len;

    while (n > 0 && src[n - 1] == '=' && len - n < 2)
        n--;
    if (n != len) { /* padded: the whole must be a multiple of 4, no '=' left before it */
        if (len % 4 != 0 || (n > 0 && src[n - 1] == '='))
            return -1;
    }
    if (n % 4 == 1)
        return -1;
    return (long long)n;
}

long long ekv_base64_decoded_len(const char *src, size_t len)
{
    long long n = unpadded(src, len);

    if (n < 0)
        return -1;
    return n / 4 * 3 + (n % 4 != 0 ? n % 4 - 1 : 0);
}

int ekv_base64_decode(const char *src, size_t len, unsigned flags, void *dst, size_t cap,
                      size_t *outlen)
{
    long long n = unpadded(src, len), total = ekv_base64_decoded_len(src, len);
    unsigned char *d = dst;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    if (n < 0 || total < 0)
        return EKV_EINVAL;
    if ((unsigned long long)total > cap)
        return EKV_ETOOBIG;
    for (long long i = 0; i < n; i++) {
        int v = sextet((unsigned char)src[i], flags);
        if (v < 0)
            return EKV_EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical: the unused low bits of the last character must be zero */
        return EKV_EINVAL;
    *outlen = o;
    return EKV_OK;
}

int ekv_base64_decode_new(const char *src, size_t len, unsigned flags, size_t max, char **out,
                          size_t *outlen)
{
    long long total = ekv_base64_decoded_len(src, len);
    char *buf;
    int rc;

    *out = NULL;
    if (total < 0)
        return EKV_EINVAL;
    if ((unsigned long long)total > max)
        return EKV_ETOOBIG;
    buf = ekv_malloc((size_t)total + 1);
    rc = ekv_base64_decode(src, len, flags, buf, (size_t)total, outlen);
    if (rc != EKV_OK) {
        ekv_free(buf);
        return rc;
    }
    buf[*outlen] = '\0';
    *out = buf;
    return EKV_OK;
}
