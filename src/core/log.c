/* log.c - leveled logging to stderr: one write(2) per line, so lines from different threads
 * never interleave; the log throttle; the fatal-error path. */
#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "edgekv/log.h"

#include "edgekv/clock.h"
#include "edgekv/text.h"

_Atomic int ekv_log_threshold = EKV_LOG_INFO;

/* Tests only (ekv_fatal_set_handler()); set before any thread starts. */
static ekv_fatal_cb *fatal_handler;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ekv_log_set_level(enum ekv_log_level level)
{
    atomic_store_explicit(&ekv_log_threshold, (int)level, memory_order_relaxed);
}

const char *ekv_log_level_name(enum ekv_log_level level)
{
    return (unsigned)level < EKV_ARRAY_LEN(level_names) ? level_names[level] : "?";
}

int ekv_log_level_parse(const char *name, enum ekv_log_level *level)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < EKV_ARRAY_LEN(level_names); i++) {
        if (ekv_strn_caseeq(name, len, level_names[i])) {
            *level = (enum ekv_log_level)i;
            return EKV_OK;
        }
    }
    if (ekv_strn_caseeq(name, len, "warning")) {
        *level = EKV_LOG_WARN;
        return EKV_OK;
    }
    return EKV_EINVAL;
}

static void EKV_PRINTF(2, 0) vwrite_line(enum ekv_log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ pid=%ld level=%s ", (int)(tv.tv_usec / 1000),
                 (long)getpid(), ekv_log_level_name(level));
    n += r > 0 ? (size_t)r : 0;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n = EKV_MIN(n + (size_t)r, sizeof(line) - 2); /* a long line is cut, not dropped */
    line[n++] = '\n';
    /* stderr is unbuffered; a failed write has nowhere to be reported */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

void ekv_log_write(enum ekv_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwrite_line(level, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- rate limiting */

bool ekv_log_limit_allow(struct ekv_log_limit *lim, uint64_t now_ms, uint64_t interval_ms,
                         unsigned *suppressed)
{
    /* a clock that went back (or the 1 stored for time 0) counts as within the interval */
    if (lim->last_ms != 0 && (now_ms < lim->last_ms || now_ms - lim->last_ms < interval_ms)) {
        lim->suppressed++;
        return false;
    }
    if (suppressed != NULL)
        *suppressed = lim->suppressed;
    lim->suppressed = 0;
    lim->last_ms = now_ms != 0 ? now_ms : 1; /* 0 means "never" */
    return true;
}

bool ekv_log_limit_allow_now(struct ekv_log_limit *lim, uint64_t interval_ms, unsigned *suppressed)
{
    return ekv_log_limit_allow(lim, ekv_clock_now_ms(), interval_ms, suppressed);
}

/* ---------------------------------------------------------------- fatal errors */

void ekv_fatal_set_handler(ekv_fatal_cb *cb)
{
    fatal_handler = cb;
}

void ekv_fatal_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* whatever the threshold: this is the last line the process writes */
    ekv_log_write(EKV_LOG_ERROR, "fatal: %s:%d: %s", file, line, msg);
    if (fatal_handler != NULL)
        fatal_handler(file, line, msg);
    abort();
}
