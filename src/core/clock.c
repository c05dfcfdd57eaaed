/* clock.c - the monotonic clock (see clock.h). */
#include "config.h"

#include <time.h>

#include "edgekv/clock.h"

uint64_t ekv_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

struct timeval ekv_ms_tv(uint64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

uint64_t ekv_mono_ms(void)
{
    return ekv_mono_us() / 1000;
}
