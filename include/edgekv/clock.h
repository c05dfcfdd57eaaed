/* clock.h - the monotonic clock every deadline and TTL of edgekv is measured on. */
#ifndef EDGEKV_CLOCK_H
#define EDGEKV_CLOCK_H

#include "edgekv/common.h"

/** CLOCK_MONOTONIC in milliseconds. */
uint64_t ekv_mono_ms(void);
/** CLOCK_MONOTONIC in microseconds. */
uint64_t ekv_mono_us(void);

#endif /* EDGEKV_CLOCK_H */
