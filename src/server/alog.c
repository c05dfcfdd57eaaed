/* alog.c - the access log's lines and buffer (one per worker: no locks), and the rate limiter
 * that keeps a misbehaving client from flooding the error log. The only I/O is
 * ekv_alog_flush(), a non-blocking write(2) to a file opened with O_APPEND, so the lines of
 * different workers never interleave within a write. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "edgekv/common.h"
#include "edgekv/log.h"

#include "server_int.h"

void ekv_alog_init(struct ekv_alog *a)
{
    memset(a, 0, sizeof(*a));
    a->buf = evbuffer_new();
    if (a->buf == NULL)
        EKV_FATAL("out of memory creating the access log buffer");
    a->date_sec = -1;
}

void ekv_alog_deinit(struct ekv_alog *a)
{
    if (a->buf != NULL)
        evbuffer_free(a->buf);
    a->buf = NULL;
    a->lines = 0;
}

size_t ekv_log_escape(char *dst, size_t cap, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;

    if (cap == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (o + 1 >= cap)
                break;
            dst[o++] = (char)c;
        } else {
            if (o + 4 >= cap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return i;
}

/* "27/Nov/2026:11:40:02 +0000", formatted once per second. */
static const char *date_of(struct ekv_alog *a, long long sec)
{
    if (sec != a->date_sec) {
        time_t t = (time_t)sec;
        struct tm tm;

        gmtime_r(&t, &tm);
        /* %b is locale-dependent; edgekv never calls setlocale(), so it is the C locale's */
        strftime(a->date, sizeof(a->date), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        a->date_sec = sec;
    }
    return a->date;
}

bool ekv_alog_append(struct ekv_alog *a, const struct ekv_alog_entry *e, long long now_sec)
{
    char url[EKV_ALOG_URL_MAX * 4 + 8], method[64], cs[512];
    size_t budget = EKV_ALOG_URL_MAX, take, n;
    bool cut;

    if (evbuffer_get_length(a->buf) >= EKV_ALOG_MAX_BYTES)
        return false;
    /* path?query, at most EKV_ALOG_URL_MAX bytes of it (escaping may quadruple them) */
    take = EKV_MIN(e->path_len, budget);
    cut = ekv_log_escape(url, sizeof(url), e->path, take) < e->path_len;
    budget -= take;
    n = strlen(url);
    if (!cut && e->query != NULL) {
        if (budget == 0) {
            cut = true;
        } else {
            url[n++] = '?';
            take = EKV_MIN(e->query_len, budget - 1);
            cut = ekv_log_escape(url + n, sizeof(url) - n, e->query, take) < e->query_len;
            n += strlen(url + n);
        }
    }
    if (cut)
        memcpy(url + n, "...", 4);
    ekv_log_escape(method, sizeof(method), e->method, strlen(e->method));
    if (e->cache_status != NULL)
        ekv_log_escape(cs, sizeof(cs), e->cache_status, e->cache_status_len);
    else
        memcpy(cs, "-", 2);
    evbuffer_add_printf(a->buf, "%s - - [%s] \"%s %s HTTP/1.%d\" %d %llu %llu.%06llu \"%s\"\n",
                        e->peer, date_of(a, now_sec), method, url, e->minor, e->status,
                        (unsigned long long)e->bytes,
                        (unsigned long long)(e->duration_us / 1000000),
                        (unsigned long long)(e->duration_us % 1000000), cs);
    a->lines++;
    return true;
}

/* Newlines in @buf: the lines it holds. */
static size_t count_lines(struct evbuffer *buf)
{
    struct evbuffer_ptr p;
    size_t n = 0;

    evbuffer_ptr_set(buf, &p, 0, EVBUFFER_PTR_SET);
    while ((p = evbuffer_search(buf, "\n", 1, &p)).pos >= 0) {
        n++;
        if (evbuffer_ptr_set(buf, &p, 1, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    return n;
}

int ekv_alog_flush(struct ekv_alog *a, int fd, size_t *dropped)
{
    *dropped = 0;
    while (evbuffer_get_length(a->buf) > 0) {
        int n = evbuffer_write(a->buf, fd);

        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            a->lines = count_lines(a->buf); /* a line may have been cut: still counted */
            return EKV_EAGAIN;
        }
        if (n == 0)
            errno = ENOSPC;
        *dropped = a->lines;
        evbuffer_drain(a->buf, evbuffer_get_length(a->buf));
        a->lines = 0;
        return EKV_ERROR;
    }
    a->lines = 0;
    return EKV_OK;
}

/* ---------------------------------------------------------------- rate limiting */

static unsigned slot_of(const char *peer)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)peer; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % EKV_RL_SLOTS;
}

bool ekv_ratelimit_allow(struct ekv_ratelimit *rl, const char *peer, uint64_t now_ms,
                         unsigned *suppressed, unsigned *capped)
{
    struct ekv_ratelimit_slot *s = &rl->slots[slot_of(peer)];

    *suppressed = 0;
    *capped = 0;
    if (rl->window_ms == 0 || now_ms - rl->window_ms >= EKV_RL_WINDOW_MS) {
        rl->window_ms = now_ms != 0 ? now_ms : 1;
        rl->lines = 0;
        rl->capped_prev += rl->capped;
        rl->capped = 0;
    }
    if (strcmp(s->peer, peer) != 0) { /* a new client, or another one in its slot */
        snprintf(s->peer, sizeof(s->peer), "%s", peer);
        s->last_ms = 0;
        s->suppressed = 0;
    } else if (s->last_ms != 0 && now_ms - s->last_ms < EKV_RL_WINDOW_MS) {
        s->suppressed++;
        return false;
    }
    if (rl->lines >= EKV_RL_MAX_LINES) {
        rl->capped++;
        return false;
    }
    rl->lines++;
    *suppressed = s->suppressed;
    *capped = rl->capped_prev;
    rl->capped_prev = 0;
    s->suppressed = 0;
    s->last_ms = now_ms != 0 ? now_ms : 1;
    return true;
}
