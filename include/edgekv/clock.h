/* clock.h - the one monotonic clock every deadline, TTL and log throttle of edgekv is measured
 * on. Tests may replace its source (a settable clock, see ekv_clock_set_source()); the real
 * path costs one predictable branch over clock_gettime(). */
#ifndef EDGEKV_CLOCK_H
#define EDGEKV_CLOCK_H

#include <sys/time.h>

#include "edgekv/common.h"

/** CLOCK_MONOTONIC (or the test source) in microseconds. Any thread. */
uint64_t ekv_clock_now_us(void);
/** CLOCK_MONOTONIC (or the test source) in milliseconds. Any thread. */
uint64_t ekv_clock_now_ms(void);


/** @ms milliseconds as a struct timeval (for libevent's timers). */
struct timeval ekv_ms_tv(uint64_t ms);

/* ---------------------------------------------------------------- tests */

/** A replacement time source: returns monotonic microseconds. */
typedef uint64_t ekv_clock_source_cb(void *arg);

/**
 * Makes @cb(@arg) the clock (NULL: CLOCK_MONOTONIC again). For tests: set it before the code
 * under test runs on other threads, and clear it before @arg goes away.
 */
void ekv_clock_set_source(ekv_clock_source_cb *cb, void *arg);

/** A clock that moves only when told to: the usual test source. */
struct ekv_clock_manual {
    _Atomic uint64_t now_us;
};

/** ekv_clock_source_cb of a struct ekv_clock_manual (@arg). */
uint64_t ekv_clock_manual_read(void *arg);
/** Sets the manual clock to @ms milliseconds. */
void ekv_clock_manual_set_ms(struct ekv_clock_manual *c, uint64_t ms);
/** Moves the manual clock @ms milliseconds forward. */
void ekv_clock_manual_advance_ms(struct ekv_clock_manual *c, uint64_t ms);

#endif /* EDGEKV_CLOCK_H */
