/* clock.h - the monotonic clock every deadline and TTL of edgekv is measured on. */
#ifndef EDGEKV_CLOCK_H
#define EDGEKV_CLOCK_H

#include <sys/time.h>

#include "edgekv/common.h"

/** CLOCK_MONOTONIC in milliseconds. */
uint64_t ekv_mono_ms(void);
/** CLOCK_MONOTONIC in microseconds. */
uint64_t ekv_mono_us(void);
/** @ms milliseconds as a struct timeval (for libevent's timers). */
struct timeval ekv_ms_tv(uint64_t ms);

#endif /* EDGEKV_CLOCK_H */
