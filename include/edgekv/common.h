/* common.h - types and status codes shared by every edgekv module. */
#ifndef EDGEKV_COMMON_H
#define EDGEKV_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The error convention of every module (STYLE.md 2.4):
 *
 *  - A function that can fail returns int: EKV_OK (0) or a negative enum ekv_status, never a
 *    raw errno, -1 from a syscall or an HTTP status. Mark it EKV_NODISCARD. A function that
 *    returns a count, a length or a descriptor returns it (>= 0) or a negative status.
 *  - Where a person needs to know why (an operator reading a config error, a client reading a
 *    problem document), the function also takes `char *err, size_t errlen` (or `why`, `whylen`
 *    for a bare reason a caller prefixes) and writes one line there: no newline, no final
 *    period, prefixed with where it happened when the function knows ("FILE:LINE: ",
 *    "--threads: "). Reasons never echo secrets. On EKV_OK the buffer is left alone.
 *  - Constructors return the object or NULL; predicates (is_, has_, _equal) return bool and
 *    do not fail. Small allocations do not fail (alloc.h); what cannot happen or cannot be
 *    handled goes through EKV_FATAL() (log.h), which logs file:line before it aborts.
 *  - Log a failure once, where it is decided what to do about it; callers pass the status up.
 */

/** Status codes: EKV_OK or a negative value. Never a raw errno. */
enum ekv_status {
    EKV_OK = 0,
    EKV_ERROR = -1,      /* generic failure, already logged */
    EKV_EAGAIN = -2,     /* try again later (would block, busy) */
    EKV_ENOMEM = -3,     /* a configured memory limit was reached */
    EKV_EINVAL = -4,     /* invalid input from a peer or the operator */
    EKV_EPROTO = -5,     /* the peer broke its protocol */
    EKV_ETIMEDOUT = -6,  /* a deadline passed */
    EKV_ECLOSED = -7,    /* the connection went away */
    EKV_ECANCELED = -8,  /* the caller canceled the operation */
    EKV_ENOTFOUND = -9,  /* no such thing */
    EKV_ETOOBIG = -10,   /* a size limit was exceeded */
};

/** A short, static description of @status. */
const char *ekv_status_str(int status);

#if defined(__GNUC__)
#define EKV_NODISCARD __attribute__((warn_unused_result))
#define EKV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define EKV_NORETURN __attribute__((noreturn))
#else
#define EKV_NODISCARD
#define EKV_PRINTF(f, a)
#define EKV_NORETURN
#endif

#define EKV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define EKV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EKV_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* EDGEKV_COMMON_H */
