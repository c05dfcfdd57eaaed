/* common.h - types and status codes shared by every edgekv module. */
#ifndef EDGEKV_COMMON_H
#define EDGEKV_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
