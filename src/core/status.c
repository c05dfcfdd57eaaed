/* status.c - names of the status codes of common.h. */
#include "config.h"

#include "edgekv/common.h"

const char *ekv_status_str(int status)
{
    switch (status) {
    case EKV_OK: return "ok";
    case EKV_ERROR: return "error";
    case EKV_EAGAIN: return "try again";
    case EKV_ENOMEM: return "out of memory";
    case EKV_EINVAL: return "invalid argument";
    case EKV_EPROTO: return "protocol error";
    case EKV_ETIMEDOUT: return "timed out";
    case EKV_ECLOSED: return "connection closed";
    case EKV_ECANCELED: return "canceled";
    case EKV_ENOTFOUND: return "not found";
    case EKV_ETOOBIG: return "too big";
    default: return "unknown status";
    }
}
