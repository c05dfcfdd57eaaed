/* text.h - small, pure string helpers used by the HTTP layer, the API and the config parser:
 * percent-decoding, header-name matching, strict number/size/duration parsing. */
#ifndef EDGEKV_TEXT_H
#define EDGEKV_TEXT_H

#include "edgekv/common.h"

/** The value of hex digit @c (either case), or -1. */
int ekv_hex_digit(unsigned char c);

/**
 * Percent-decodes @src (@len bytes) into @dst, which must hold at least @len bytes (decoding
 * never grows). '+' is NOT a space (paths are not forms). Returns the decoded length, or -1 if
 * a '%' is not followed by two hex digits.
 */
EKV_NODISCARD long ekv_pct_decode(char *dst, const char *src, size_t len);

/**
 * Case-insensitive comparison of an HTTP header name of @len bytes with the NUL-terminated,
 * lower-case @lname. Underscores are ordinary characters: "time_to_live_sec" matches only
 * names spelled with underscores, in any case.
 */
bool ekv_header_name_eq(const char *name, size_t len, const char *lname);

/** Case-insensitive equality of @len bytes of @s with the NUL-terminated @lit. */
bool ekv_strn_caseeq(const char *s, size_t len, const char *lit);

/**
 * Strict unsigned decimal: digits only (no sign, no spaces, no leading '+'), at least one,
 * no overflow past UINT64_MAX. Returns EKV_OK or EKV_EINVAL.
 */
EKV_NODISCARD int ekv_parse_u64(const char *s, size_t len, uint64_t *out);

/**
 * A size such as "512", "32kb", "25mb", "1gb", "10 k" is refused (no spaces). Units b, k/kb,
 * m/mb, g/gb in any case, powers of 1024. Returns EKV_OK or EKV_EINVAL (also on overflow).
 */
EKV_NODISCARD int ekv_parse_size(const char *s, uint64_t *bytes);

/**
 * A duration: a decimal number with a unit ms, s, m or h (any case), or exactly "0".
 * A bare number other than 0 is refused. Returns EKV_OK or EKV_EINVAL (also on overflow).
 */
EKV_NODISCARD int ekv_parse_duration(const char *s, uint64_t *ms);

/** Writes @v in decimal to @out (at least 21 bytes; NUL-terminated). Returns the length. */
size_t ekv_fmt_u64(char *out, uint64_t v);

#endif /* EDGEKV_TEXT_H */
