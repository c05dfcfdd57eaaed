/* log.h - leveled logging to stderr, one line per event; a rate-limited form for errors that
 * repeat; and the one fatal-error path (log with file:line, then abort).
 * ekv_log() checks the level before evaluating its arguments, so debug lines cost a compare. */
#ifndef EDGEKV_LOG_H
#define EDGEKV_LOG_H

#include <stdatomic.h>

#include "edgekv/common.h"

enum ekv_log_level {
    EKV_LOG_DEBUG = 0,
    EKV_LOG_INFO = 1,
    EKV_LOG_WARN = 2,
    EKV_LOG_ERROR = 3,
};

/* The one mutable global: the threshold below which lines are dropped. Written at start-up
 * and on reload, read by every thread; a relaxed load is enough (a line logged or dropped
 * around a reload is either way correct). Set it with ekv_log_set_level(). */
extern _Atomic int ekv_log_threshold;

/** Whether a line at @level would be written now. Any thread. */
static inline bool ekv_log_enabled(enum ekv_log_level level)
{
    return (int)level >= atomic_load_explicit(&ekv_log_threshold, memory_order_relaxed);
}

/* The arguments are evaluated only when the line is written. */
#define ekv_log(level, ...)                                                                        \
    do {                                                                                           \
        if (ekv_log_enabled(level))                                                                \
            ekv_log_write((level), __VA_ARGS__);                                                   \
    } while (0)

/** Writes one line "TIMESTAMP pid=N level=L message" with a single write(2). Thread-safe. */
void ekv_log_write(enum ekv_log_level level, const char *fmt, ...) EKV_PRINTF(2, 3);
/** Sets the threshold. Any thread. */
void ekv_log_set_level(enum ekv_log_level level);
/**
 * "debug", "info", "warn" (or "warning"), "error", in any case. Returns EKV_OK with *@level
 * set, or EKV_EINVAL.
 */
EKV_NODISCARD int ekv_log_level_parse(const char *name, enum ekv_log_level *level);
/** The name of @level ("?" if it is none). */
const char *ekv_log_level_name(enum ekv_log_level level);

/* ---------------------------------------------------------------- rate limiting */

/*
 * One throttle for a line that can repeat (an origin error on every request, a connect that
 * keeps failing): at most one line per interval, and the next line says how many were
 * dropped. Zero-initialise it. Not locked: one per thread or per object of one thread.
 */
struct ekv_log_limit {
    uint64_t last_ms;    /* when a line was last let through; 0: never */
    unsigned suppressed; /* lines refused since */
};

/**
 * Whether a line may be logged at @now_ms (monotonic ms, e.g. ekv_clock_now_ms()): true at
 * most once per @interval_ms. On true, *@suppressed (if not NULL) is how many lines were
 * refused since the last one let through, and the count restarts; on false it is counted.
 */
bool ekv_log_limit_allow(struct ekv_log_limit *lim, uint64_t now_ms, uint64_t interval_ms,
                         unsigned *suppressed);
/** ekv_log_limit_allow() at clock.h's ekv_clock_now_ms(). */
bool ekv_log_limit_allow_now(struct ekv_log_limit *lim, uint64_t interval_ms, unsigned *suppressed);

/**
 * Logs like ekv_log(), at most once per @interval_ms of @lim (clock.h's clock), adding
 * " (N similar lines suppressed)" when some were. Lines below the log level neither print nor
 * count. @fmt must be a string literal.
 */
#define ekv_log_limited(lim, interval_ms, level, fmt, ...)                                         \
    do {                                                                                           \
        unsigned ekv_log_sup_;                                                                     \
        if (ekv_log_enabled(level) &&                                                              \
            ekv_log_limit_allow_now((lim), (interval_ms), &ekv_log_sup_)) {                        \
            if (ekv_log_sup_ > 0)                                                                  \
                ekv_log_write((level), fmt " (%u similar lines suppressed)", ##__VA_ARGS__,        \
                              ekv_log_sup_);                                                       \
            else                                                                                   \
                ekv_log_write((level), fmt, ##__VA_ARGS__);                                        \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- fatal errors */

/**
 * The one way out for what cannot happen or cannot be handled (libevent or jansson out of
 * memory, a broken invariant): logs "fatal: FILE:LINE: message" at error level, whatever the
 * threshold, then calls the fatal handler (tests) and abort(). Never returns.
 */
void ekv_fatal_at(const char *file, int line, const char *fmt, ...) EKV_PRINTF(3, 4) EKV_NORETURN;

#define EKV_FATAL(...) ekv_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
/** EKV_FATAL(fmt, ...) unless @cond holds: for return values that only fail on OOM. */
#define EKV_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            EKV_FATAL(__VA_ARGS__);                                                                \
    } while (0)

/*
 * Called by ekv_fatal_at() after the line is logged, with the formatted message. A test
 * handler may longjmp() out to check that a path is fatal without dying; if it returns,
 * abort() follows.
 */
typedef void ekv_fatal_cb(const char *file, int line, const char *msg);

/** Sets the fatal handler (NULL: none, the default). For tests; call before any thread. */
void ekv_fatal_set_handler(ekv_fatal_cb *cb);

#endif /* EDGEKV_LOG_H */
