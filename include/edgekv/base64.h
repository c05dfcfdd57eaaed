/* base64.h - RFC 4648 base64 (standard alphabet, '=' padding) for batch values and the opaque
 * list cursors. Pure: no I/O, no logging. */
#ifndef EDGEKV_BASE64_H
#define EDGEKV_BASE64_H

#include "edgekv/common.h"

/** Decoding flags. */
enum ekv_base64_flags {
    EKV_BASE64_STRICT = 0,       /* standard alphabet; padding optional but, if present, exact */
    EKV_BASE64_URLSAFE = 1 << 0, /* also accept '-' and '_' (RFC 4648 section 5) */
};

/** Length of the encoding of @n bytes, padding included (without the NUL). */
size_t ekv_base64_encoded_len(size_t n);

/**
 * Encodes @n bytes at @src into @dst, which must hold ekv_base64_encoded_len(@n) + 1 bytes.
 * Writes a NUL terminator; returns the encoded length.
 */
size_t ekv_base64_encode(const void *src, size_t n, char *dst);

/**
 * The exact decoded length of the @len characters at @src (no character checks; padding
 * counted), or -1 if no valid encoding has that shape. Lets callers check a size limit before
 * they allocate.
 */
long long ekv_base64_decoded_len(const char *src, size_t len);

/**
 * Decodes @len characters at @src into @dst (capacity @cap) and stores the length in *@outlen.
 * Returns EKV_OK, EKV_EINVAL (bad character, bad padding, non-zero trailing bits) or
 * EKV_ETOOBIG (the result would not fit in @cap; nothing is written then).
 */
EKV_NODISCARD int ekv_base64_decode(const char *src, size_t len, unsigned flags, void *dst,
                                    size_t cap, size_t *outlen);

/**
 * Like ekv_base64_decode() into a new buffer of at most @max bytes, checked before anything is
 * allocated. On EKV_OK *@out is owned by the caller (ekv_free()) and NUL-terminated (not
 * counted in *@outlen); otherwise *@out is NULL.
 */
EKV_NODISCARD int ekv_base64_decode_new(const char *src, size_t len, unsigned flags, size_t max,
                                        char **out, size_t *outlen);

#endif /* EDGEKV_BASE64_H */
