/* conf_value.c - the value parsers and checkers of the directive table: unsigned numbers,
 * sizes and durations within a range, booleans, and the shape of strings (namespace, tokens,
 * words, paths). Pure: no I/O, no state. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "edgekv/conf.h"
#include "edgekv/text.h"

#include "conf_int.h"

/* True if @v holds a space or a control character. */
static bool has_space_or_ctl(const char *v)
{
    for (; *v != '\0'; v++)
        if ((unsigned char)*v <= ' ' || *v == 0x7f)
            return true;
    return false;
}

int ekv_conf_check_namespace(const char *v, char *why, size_t whylen)
{
    size_t len = strlen(v);

    if (len < 1 || len > 64 || has_space_or_ctl(v) || strpbrk(v, "{}") != NULL) {
        ekv_conf_errf(why, whylen,
                      "must be 1 to 64 bytes without spaces, control characters, '{' or '}'");
        return EKV_EINVAL;
    }
    return EKV_OK;
}

int ekv_conf_check_token(const char *v, char *why, size_t whylen)
{
    if (*v == '\0')
        ekv_conf_errf(why, whylen, "a token may not be empty");
    else if (strlen(v) > 4096)
        ekv_conf_errf(why, whylen, "a token may not be longer than 4096 bytes");
    else if (has_space_or_ctl(v))
        ekv_conf_errf(why, whylen, "a token may not contain spaces or control characters");
    else
        return EKV_OK;
    return EKV_EINVAL;
}

int ekv_conf_check_path(const char *v, char *why, size_t whylen)
{
    if (strlen(v) > 4096) {
        ekv_conf_errf(why, whylen, "must be at most 4096 bytes");
        return EKV_EINVAL;
    }
    for (; *v != '\0'; v++) {
        if ((unsigned char)*v < ' ' || *v == 0x7f) {
            ekv_conf_errf(why, whylen, "may not contain control characters");
            return EKV_EINVAL;
        }
    }
    return EKV_OK;
}

int ekv_conf_check_tls_version(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "1.2") == 0 || strcmp(v, "1.3") == 0)
        return EKV_OK;
    ekv_conf_errf(why, whylen, "is not 1.2 or 1.3");
    return EKV_EINVAL;
}

int ekv_conf_check_word(const char *v, char *why, size_t whylen)
{
    if (strlen(v) > 255 || has_space_or_ctl(v)) {
        ekv_conf_errf(why, whylen,
                      "must be at most 255 bytes without spaces or control characters");
        return EKV_EINVAL;
    }
    return EKV_OK;
}

struct unit {
    uint64_t mult;
    const char *name;
};

/* @v with the largest of @units (largest first; the last has mult 1) that divides it exactly:
 * "32kb", "1mb", "100b", "3s", "250ms"; 0 is written bare. */
static void fmt_units(char *buf, size_t len, uint64_t v, const struct unit *units)
{
    const struct unit *u = units;

    while (u->mult != 1 && (v == 0 || v % u->mult != 0))
        u++;
    snprintf(buf, len, "%" PRIu64 "%s", v / u->mult, v == 0 ? "" : u->name);
}

void ekv_conf_fmt_bound(const struct ekv_conf_directive *d, char *buf, size_t len, uint64_t v)
{
    static const struct unit sizes[] = {{GB, "gb"}, {MB, "mb"}, {KB, "kb"}, {1, "b"}};
    static const struct unit durations[] = {{HOUR, "h"}, {MIN, "m"}, {SEC, "s"}, {1, "ms"}};

    if (d->type == T_SIZE)
        fmt_units(buf, len, v, sizes);
    else if (d->type == T_DURATION)
        fmt_units(buf, len, v, durations);
    else
        snprintf(buf, len, "%" PRIu64, v);
}

/*
 * Why a size or duration did not parse: true when it has the right shape (digits, then a unit
 * @parse accepts) and so failed only because it does not fit in 64 bits.
 */
static bool too_large(const char *v, int (*parse)(const char *, uint64_t *))
{
    size_t n = strspn(v, "0123456789");
    char probe[16];
    uint64_t ignored;

    if (n == 0 || strlen(v + n) > sizeof(probe) - 2)
        return false;
    snprintf(probe, sizeof(probe), "1%s", v + n);
    return parse(probe, &ignored) == EKV_OK;
}

/* All digits (and at least one). */
static bool all_digits(const char *v)
{
    return *v != '\0' && v[strspn(v, "0123456789")] == '\0';
}

int ekv_conf_parse_number(const struct ekv_conf_directive *d, const char *v, uint64_t *out,
                          char *why, size_t whylen)
{
    char lo[32], hi[32];
    uint64_t n;

    switch (d->type) {
    case T_UINT:
        if (ekv_parse_u64(v, strlen(v), &n) != EKV_OK) {
            if (all_digits(v))
                ekv_conf_errf(why, whylen, "\"%s\" is too large", v);
            else
                ekv_conf_errf(why, whylen, "\"%s\" is not a number", v);
            return EKV_EINVAL;
        }
        break;
    case T_SIZE:
        if (ekv_parse_size(v, &n) != EKV_OK) {
            if (too_large(v, ekv_parse_size))
                ekv_conf_errf(why, whylen, "\"%s\" is too large", v);
            else
                ekv_conf_errf(why, whylen, "\"%s\" is not a size (a number with b, kb, mb or gb)",
                              v);
            return EKV_EINVAL;
        }
        break;
    case T_DURATION:
        if (ekv_parse_duration(v, &n) != EKV_OK) {
            if (too_large(v, ekv_parse_duration))
                ekv_conf_errf(why, whylen, "\"%s\" is too large", v);
            else if (all_digits(v))
                ekv_conf_errf(why, whylen,
                              "\"%s\" needs a unit: ms, s, m or h (only 0 may go without)", v);
            else
                ekv_conf_errf(why, whylen, "\"%s\" is not a duration (a number with ms, s, m or h)",
                              v);
            return EKV_EINVAL;
        }
        break;
    default:
        ekv_conf_errf(why, whylen, "not a number directive");
        return EKV_EINVAL;
    }
    if (n < d->min || n > d->max) {
        ekv_conf_fmt_bound(d, lo, sizeof(lo), d->min);
        ekv_conf_fmt_bound(d, hi, sizeof(hi), d->max);
        ekv_conf_errf(why, whylen, "\"%s\" is out of range (%s..%s)", v, lo, hi);
        return EKV_EINVAL;
    }
    *out = n;
    return EKV_OK;
}

int ekv_conf_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < EKV_ARRAY_LEN(yes); i++) {
        if (ekv_strn_caseeq(v, strlen(v), yes[i])) {
            *out = true;
            return EKV_OK;
        }
        if (ekv_strn_caseeq(v, strlen(v), no[i])) {
            *out = false;
            return EKV_OK;
        }
    }
    return EKV_EINVAL;
}
