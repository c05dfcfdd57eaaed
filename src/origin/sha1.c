/* sha1.c - SHA-1 (FIPS 180-4), only to name Lua scripts for EVALSHA the way Redis does. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "edgekv/origin.h"

struct sha1 {
    uint32_t h[5];
    uint64_t len; /* bytes */
    uint8_t buf[64];
    size_t used;
};

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void block(struct sha1 *s, const uint8_t *p)
{
    uint32_t w[80], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
}

static void update(struct sha1 *s, const uint8_t *p, size_t n)
{
    s->len += n;
    while (n > 0) {
        size_t take = EKV_MIN(n, sizeof(s->buf) - s->used);
        memcpy(s->buf + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == sizeof(s->buf)) {
            block(s, s->buf);
            s->used = 0;
        }
    }
}

void ekv_sha1_hex(const void *data, size_t len, char hex[41])
{
    struct sha1 s = {.h = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}};
    uint64_t bits;
    uint8_t pad = 0x80, zero = 0, lenbuf[8];

    update(&s, data, len);
    bits = s.len * 8;
    update(&s, &pad, 1);
    while (s.used != 56)
        update(&s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
    update(&s, lenbuf, 8);
    for (int i = 0; i < 5; i++)
        snprintf(hex + 8 * i, 9, "%08x", s.h[i]);
}
