/* text.c - pure string helpers: percent-decoding, header names, strict number parsing. */
#include "config.h"

#include <string.h>

#include "edgekv/text.h"

int ekv_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long ekv_pct_decode(char *dst, const char *src, size_t len)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[o++] = src[i];
            continue;
        }
        if (len - i < 3)
            return -1;
        int hi = ekv_hex_digit((unsigned char)src[i + 1]), lo = ekv_hex_digit((unsigned char)src[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        dst[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    return (long)o;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

bool ekv_strn_caseeq(const char *s, size_t len, const char *lit)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return false;
    return lit[len] == '\0';
}

bool ekv_header_name_eq(const char *name, size_t len, const char *lname)
{
    return ekv_strn_caseeq(name, len, lname);
}

int ekv_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return EKV_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return EKV_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return EKV_OK;
}

/* Splits "<digits><unit>" and returns the number; *unit points into @s. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9')
        n++;
    *unit = s + n;
    return ekv_parse_u64(s, n, num);
}

static int scale(uint64_t num, uint64_t mult, uint64_t *out)
{
    if (mult != 0 && num > UINT64_MAX / mult)
        return EKV_EINVAL;
    *out = num * mult;
    return EKV_OK;
}

static bool unit_is(const char *unit, const char *lit)
{
    return ekv_strn_caseeq(unit, strlen(unit), lit);
}

int ekv_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1},          {"b", 1},          {"k", 1ull << 10}, {"kb", 1ull << 10},
                 {"m", 1ull << 20}, {"mb", 1ull << 20}, {"g", 1ull << 30}, {"gb", 1ull << 30}};
    const char *unit;
    uint64_t num;

    if (split_number(s, &num, &unit) != EKV_OK)
        return EKV_EINVAL;
    for (size_t i = 0; i < EKV_ARRAY_LEN(units); i++)
        if (unit_is(unit, units[i].name))
            return scale(num, units[i].mult, bytes);
    return EKV_EINVAL;
}

int ekv_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *unit;
    uint64_t num;

    if (split_number(s, &num, &unit) != EKV_OK)
        return EKV_EINVAL;
    if (*unit == '\0')
        return num == 0 ? (*ms = 0, EKV_OK) : EKV_EINVAL;
    for (size_t i = 0; i < EKV_ARRAY_LEN(units); i++)
        if (unit_is(unit, units[i].name))
            return scale(num, units[i].mult, ms);
    return EKV_EINVAL;
}

size_t ekv_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}
