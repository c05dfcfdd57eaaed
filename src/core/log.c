/* log.c - leveled logging to stderr: one write(2) per line, so lines from different threads
 * never interleave. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "edgekv/log.h"

volatile int ekv_log_threshold = EKV_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ekv_log_set_level(enum ekv_log_level level)
{
    ekv_log_threshold = (int)level;
}

const char *ekv_log_level_name(enum ekv_log_level level)
{
    return (unsigned)level < EKV_ARRAY_LEN(level_names) ? level_names[level] : "?";
}

int ekv_log_level_parse(const char *name)
{
    for (size_t i = 0; i < EKV_ARRAY_LEN(level_names); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void ekv_log_write(enum ekv_log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t n;
    int r;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ pid=%ld level=%s ", (int)(tv.tv_usec / 1000),
                 (long)getpid(), ekv_log_level_name(level));
    n += r > 0 ? (size_t)r : 0;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n = EKV_MIN(n + (size_t)r, sizeof(line) - 2); /* a long line is cut, not dropped */
    line[n++] = '\n';
    /* stderr is unbuffered; a failed write has nowhere to be reported */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
