/* server_int.h - the server module's private helpers. */
#ifndef EDGEKV_SERVER_INT_H
#define EDGEKV_SERVER_INT_H

#include "edgekv/common.h"

struct ekv_conf_addr;
struct evbuffer;

/**
 * Resolves @addr (blocking: start-up only), binds and listens with SO_REUSEADDR (never
 * SO_REUSEPORT: a second edgekv on the same port must fail, not split the traffic).
 * Writes the bound "HOST:PORT" (the real port when @addr asked for 0) to @bound.
 * Returns the non-blocking, close-on-exec socket, or -1 with @err set.
 */
int ekv_listen_bind(const struct ekv_conf_addr *addr, char *bound, size_t boundlen, char *err,
                    size_t errlen);

/* ---------------------------------------------------------------- alog.c: access log lines and
 * rate-limited client error lines (pure: no I/O but ekv_alog_flush(), time passed in) */

/** One answered request, for an access log line. Strings are not NUL-terminated. */
struct ekv_alog_entry {
    const char *peer;         /* NUL-terminated: "192.0.2.7", "unix", "-" */
    const char *method;       /* NUL-terminated */
    const char *path;         /* the raw URL path (percent-encoded) */
    size_t path_len;
    const char *query;        /* after '?', or NULL */
    size_t query_len;
    int minor;                /* HTTP/1.<minor> */
    int status;
    uint64_t bytes;           /* response body bytes */
    uint64_t duration_us;
    const char *cache_status; /* the Cache-Status header, or NULL */
    size_t cache_status_len;
};

#define EKV_ALOG_URL_MAX 4096          /* longer URLs are cut (and end in "...") */
#define EKV_ALOG_FLUSH_BYTES (64 * 1024) /* buffered past this: written at once */
#define EKV_ALOG_MAX_BYTES (8u << 20)  /* unwritten past this: new lines are dropped */

/** One worker's access log buffer. Owned by the worker's thread. */
struct ekv_alog {
    struct evbuffer *buf;     /* lines not written yet */
    size_t lines;             /* how many */
    long long date_sec;       /* the second date[] shows */
    char date[40];            /* "27/Nov/2026:11:40:02 +0000" */
};

/** Sets up @a (its buffer is allocated; aborts on OOM). */
void ekv_alog_init(struct ekv_alog *a);
/** Frees what @a holds (unwritten lines are lost: flush first). */
void ekv_alog_deinit(struct ekv_alog *a);

/**
 * Appends the line of @e at wall-clock second @now_sec:
 *   PEER - - [DD/Mon/YYYY:HH:MM:SS +0000] "METHOD URL HTTP/1.x" STATUS BYTES SECONDS "CACHE-STATUS"
 * Bytes from the client (URL, method) are escaped (\xHH for anything but printable ASCII, '"'
 * and '\\'). Returns false, appending nothing, when EKV_ALOG_MAX_BYTES are already buffered.
 */
bool ekv_alog_append(struct ekv_alog *a, const struct ekv_alog_entry *e, long long now_sec);

/**
 * Writes what is buffered to @fd (O_APPEND, non-blocking) without ever waiting: what the file
 * does not take now (EAGAIN) stays buffered. Returns EKV_OK, EKV_EAGAIN (some left), or
 * EKV_ERROR with errno set: then the buffer is dropped and *@dropped holds its line count.
 */
int ekv_alog_flush(struct ekv_alog *a, int fd, size_t *dropped);

/**
 * Copies @len bytes of @src to @dst (capacity @cap, NUL-terminated), escaping what is not
 * printable ASCII, '"' and '\\' as \xHH; stops early (whole escapes only) when @dst is full.
 * Returns the bytes of @src consumed.
 */
size_t ekv_log_escape(char *dst, size_t cap, const char *src, size_t len);

#define EKV_RL_SLOTS 256       /* clients remembered (direct-mapped) */
#define EKV_RL_WINDOW_MS 10000 /* at most one line per client per window */
#define EKV_RL_MAX_LINES 20    /* and this many per window for all clients together */

struct ekv_ratelimit_slot {
    char peer[48];
    uint64_t last_ms;    /* when this client's last line was logged */
    unsigned suppressed; /* its lines suppressed since */
};

/** Per-client rate limiting of log lines. Zero it to initialize. Not thread-safe. */
struct ekv_ratelimit {
    struct ekv_ratelimit_slot slots[EKV_RL_SLOTS];
    uint64_t window_ms; /* start of the current window of the overall cap */
    unsigned lines;     /* lines allowed in it */
    unsigned capped;    /* lines refused by the overall cap in it */
    unsigned capped_prev; /* refused in the windows since the last report */
};

/**
 * Whether a line about client @peer may be logged at @now_ms (monotonic). When it may:
 * *@suppressed = this client's lines suppressed since its last one, *@capped = lines of any
 * client refused by the overall cap since the last report (both to be mentioned in the line).
 */
bool ekv_ratelimit_allow(struct ekv_ratelimit *rl, const char *peer, uint64_t now_ms,
                         unsigned *suppressed, unsigned *capped);

#endif /* EDGEKV_SERVER_INT_H */
