/* log.h - leveled logging to stderr, one line per event.
 * ekv_log() checks the level before evaluating its arguments, so debug lines cost a compare. */
#ifndef EDGEKV_LOG_H
#define EDGEKV_LOG_H

#include "edgekv/common.h"

enum ekv_log_level {
    EKV_LOG_DEBUG = 0,
    EKV_LOG_INFO = 1,
    EKV_LOG_WARN = 2,
    EKV_LOG_ERROR = 3,
};

/* The one mutable global: the threshold below which lines are dropped. Written at start-up
 * and on reload; a relaxed read on every log call is enough. */
extern volatile int ekv_log_threshold;

#define ekv_log(level, ...)                                                                        \
    do {                                                                                           \
        if ((int)(level) >= ekv_log_threshold)                                                     \
            ekv_log_write((level), __VA_ARGS__);                                                   \
    } while (0)

/** Writes one line "TIMESTAMP pid=N level=L message" with a single write(2). Thread-safe. */
void ekv_log_write(enum ekv_log_level level, const char *fmt, ...) EKV_PRINTF(2, 3);
/** Sets the threshold. */
void ekv_log_set_level(enum ekv_log_level level);
/** "debug", "info", "warn", "error" -> level; returns -1 for anything else. */
int ekv_log_level_parse(const char *name);
/** The name of @level. */
const char *ekv_log_level_name(enum ekv_log_level level);

#endif /* EDGEKV_LOG_H */
