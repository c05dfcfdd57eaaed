/* clock.c - the monotonic clock (see clock.h): clock_gettime(CLOCK_MONOTONIC), unless a test
 * has installed a source of its own. */
#include "config.h"

#include <stdatomic.h>
#include <time.h>

#include "edgekv/clock.h"

struct source {
    ekv_clock_source_cb *cb;
    void *arg;
};

/* NULL in production. A test's source is published whole (cb and arg together) through one
 * pointer, so a reader on another thread never pairs a callback with the wrong argument. */
static _Atomic(const struct source *) test_source;
static struct source installed;

uint64_t ekv_clock_now_us(void)
{
    const struct source *s = atomic_load_explicit(&test_source, memory_order_acquire);
    struct timespec ts;

    if (__builtin_expect(s != NULL, 0))
        return s->cb(s->arg);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t ekv_clock_now_ms(void)
{
    return ekv_clock_now_us() / 1000;
}

struct timeval ekv_ms_tv(uint64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

void ekv_clock_set_source(ekv_clock_source_cb *cb, void *arg)
{
    atomic_store_explicit(&test_source, NULL, memory_order_release);
    if (cb == NULL)
        return;
    installed.cb = cb;
    installed.arg = arg;
    atomic_store_explicit(&test_source, &installed, memory_order_release);
}

uint64_t ekv_clock_manual_read(void *arg)
{
    struct ekv_clock_manual *c = arg;

    return atomic_load_explicit(&c->now_us, memory_order_relaxed);
}

void ekv_clock_manual_set_ms(struct ekv_clock_manual *c, uint64_t ms)
{
    atomic_store_explicit(&c->now_us, ms * 1000, memory_order_relaxed);
}

void ekv_clock_manual_advance_ms(struct ekv_clock_manual *c, uint64_t ms)
{
    atomic_fetch_add_explicit(&c->now_us, ms * 1000, memory_order_relaxed);
}
