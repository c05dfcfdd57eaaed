/* check_server.c - the server module's pure parts: access log lines (format, escaping, limits,
 * the non-blocking flush) and the per-client rate limiter of client error lines. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "edgekv/common.h"

#include "server_int.h"
#include "testutil.h"

#define T0 1794960000LL /* 2026-11-18T00:00:00Z */

static struct ekv_alog alog;

static void setup(void)
{
    ekv_alog_init(&alog);
}

static void teardown(void)
{
    ekv_alog_deinit(&alog);
}

/* Everything buffered, as a NUL-terminated string (caller frees); the buffer is drained. */
static char *take(void)
{
    size_t n = evbuffer_get_length(alog.buf);
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evbuffer_remove(alog.buf, s, n), (int)n);
    s[n] = '\0';
    alog.lines = 0;
    return s;
}

static struct ekv_alog_entry entry(const char *path, const char *query)
{
    struct ekv_alog_entry e = {
        .peer = "192.0.2.7",
        .method = "GET",
        .path = path,
        .path_len = strlen(path),
        .query = query,
        .query_len = query != NULL ? strlen(query) : 0,
        .minor = 1,
        .status = 200,
        .bytes = 5,
        .duration_us = 1234567,
        .cache_status = "edgekv; hit; ttl=299",
        .cache_status_len = 20,
    };
    return e;
}

START_TEST(test_alog_line)
{
    struct ekv_alog_entry e = entry("/kv/demo/greeting", "consistency=strong");
    char *s;

    ck_assert(ekv_alog_append(&alog, &e, T0 + 3661));
    e.minor = 0;
    e.method = "HEAD";
    e.status = 404;
    e.bytes = 0;
    e.duration_us = 42;
    e.cache_status = NULL;
    e.query = NULL;
    e.peer = "2001:db8::1";
    ck_assert(ekv_alog_append(&alog, &e, T0 + 3661));
    ck_assert_uint_eq(alog.lines, 2);
    s = take();
    ck_assert_str_eq(s, "192.0.2.7 - - [18/Nov/2026:01:01:01 +0000] \"GET "
                        "/kv/demo/greeting?consistency=strong HTTP/1.1\" 200 5 1.234567 "
                        "\"edgekv; hit; ttl=299\"\n"
                        "2001:db8::1 - - [18/Nov/2026:01:01:01 +0000] \"HEAD /kv/demo/greeting "
                        "HTTP/1.0\" 404 0 0.000042 \"-\"\n");
    free(s);
}
END_TEST

/* What a client sends cannot break a line or forge another one. */
START_TEST(test_alog_escapes)
{
    static const char path[] = "/kv/a\"b\\c\x01\xff\n";
    struct ekv_alog_entry e = entry("", NULL);
    char *s;

    e.path = path;
    e.path_len = sizeof(path) - 1;
    e.method = "G\"T";
    ck_assert(ekv_alog_append(&alog, &e, T0));
    s = take();
    ck_assert_ptr_nonnull(strstr(s, "\"G\\x22T /kv/a\\x22b\\x5cc\\x01\\xff\\x0a HTTP/1.1\""));
    ck_assert_ptr_eq(strchr(s, '\n'), s + strlen(s) - 1); /* one line */
    free(s);
}
END_TEST

START_TEST(test_alog_long_url_cut)
{
    char *path = malloc(EKV_ALOG_URL_MAX + 100), *s, *url;
    struct ekv_alog_entry e;

    ck_assert_ptr_nonnull(path);
    path[0] = '/';
    memset(path + 1, 'a', EKV_ALOG_URL_MAX + 98);
    path[EKV_ALOG_URL_MAX + 99] = '\0';
    e = entry(path, "q=1");
    ck_assert(ekv_alog_append(&alog, &e, T0));
    s = take();
    url = strstr(s, "\"GET ") + 5;
    ck_assert_int_eq((int)(strstr(url, "... HTTP/1.1\"") - url), EKV_ALOG_URL_MAX);
    ck_assert_ptr_null(strstr(s, "q=1"));
    free(s);
    /* a query that does not fit is cut too */
    path[EKV_ALOG_URL_MAX - 10] = '\0';
    e = entry(path, "q=0123456789");
    ck_assert(ekv_alog_append(&alog, &e, T0));
    s = take();
    ck_assert_ptr_nonnull(strstr(s, "?q=0123456... HTTP/1.1\""));
    free(s);
    free(path);
}
END_TEST

START_TEST(test_alog_escape_bounds)
{
    char dst[8];

    ck_assert_uint_eq(ekv_log_escape(dst, sizeof(dst), "abcdefghij", 10), 7);
    ck_assert_str_eq(dst, "abcdefg");
    ck_assert_uint_eq(ekv_log_escape(dst, sizeof(dst), "abcd\n", 5), 4); /* \x0a does not fit */
    ck_assert_str_eq(dst, "abcd");
    ck_assert_uint_eq(ekv_log_escape(dst, 0, "a", 1), 0);
}
END_TEST

/* Past EKV_ALOG_MAX_BYTES unwritten, new lines are refused (the caller counts them). */
START_TEST(test_alog_bounded)
{
    struct ekv_alog_entry e = entry("/kv/demo/k", NULL);
    size_t n = 0;

    while (ekv_alog_append(&alog, &e, T0))
        ck_assert_uint_lt(++n, 1000000);
    ck_assert_uint_ge(evbuffer_get_length(alog.buf), EKV_ALOG_MAX_BYTES);
    ck_assert_uint_lt(evbuffer_get_length(alog.buf), EKV_ALOG_MAX_BYTES + 8192);
    ck_assert_uint_eq(alog.lines, n);
}
END_TEST

START_TEST(test_alog_flush)
{
    char dir[200], path[256], *got;
    struct ekv_alog_entry e = entry("/kv/demo/k", NULL);
    size_t dropped = 99, len;
    int fd;

    ekv_test_mkdtemp("alog", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ekv_alog_flush(&alog, fd, &dropped), EKV_OK); /* nothing to do */
    ck_assert_uint_eq(dropped, 0);
    ck_assert(ekv_alog_append(&alog, &e, T0));
    ck_assert(ekv_alog_append(&alog, &e, T0));
    ck_assert_int_eq(ekv_alog_flush(&alog, fd, &dropped), EKV_OK);
    ck_assert_uint_eq(evbuffer_get_length(alog.buf), 0);
    ck_assert_uint_eq(alog.lines, 0);
    got = ekv_test_read_file(path, &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq((int)(strchr(strchr(got, '\n') + 1, '\n') - got), (int)len - 1);
    free(got);
    close(fd);
    /* a write that fails drops the buffer and says how many lines were lost */
    ck_assert(ekv_alog_append(&alog, &e, T0));
    ck_assert(ekv_alog_append(&alog, &e, T0));
    ck_assert(ekv_alog_append(&alog, &e, T0));
    ck_assert_int_eq(ekv_alog_flush(&alog, fd, &dropped), EKV_ERROR);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_uint_eq(dropped, 3);
    ck_assert_uint_eq(evbuffer_get_length(alog.buf), 0);
}
END_TEST

/* A full pipe takes what it can; the rest stays buffered, nothing is lost or waited for. */
START_TEST(test_alog_flush_would_block)
{
    struct ekv_alog_entry e = entry("/kv/demo/k", NULL);
    size_t dropped = 0, total = 0, n, pipe_size;
    char buf[65536];
    int p[2];

    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    pipe_size = (size_t)fcntl(p[1], F_GETPIPE_SZ);
    while (evbuffer_get_length(alog.buf) < pipe_size + 4096)
        ck_assert(ekv_alog_append(&alog, &e, T0));
    total = evbuffer_get_length(alog.buf);
    ck_assert_int_eq(ekv_alog_flush(&alog, p[1], &dropped), EKV_EAGAIN);
    ck_assert_uint_eq(dropped, 0);
    n = evbuffer_get_length(alog.buf);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_lt(n, total);
    ck_assert_uint_ge(alog.lines, n / 200); /* recounted: what is left */
    ck_assert_uint_le(alog.lines, n / 50 + 1);
    while (read(p[0], buf, sizeof(buf)) > 0)
        continue;
    ck_assert_int_eq(ekv_alog_flush(&alog, p[1], &dropped), EKV_OK);
    ck_assert_uint_eq(evbuffer_get_length(alog.buf), 0);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* ---------------------------------------------------------------- rate limiter */

START_TEST(test_ratelimit_per_client)
{
    static struct ekv_ratelimit rl; /* zeroed */
    unsigned sup, cap;
    uint64_t t = 5000;

    ck_assert(ekv_ratelimit_allow(&rl, "192.0.2.7", t, &sup, &cap));
    ck_assert_uint_eq(sup, 0);
    ck_assert_uint_eq(cap, 0);
    for (int i = 0; i < 50; i++) /* the same client keeps sending garbage */
        ck_assert(!ekv_ratelimit_allow(&rl, "192.0.2.7", t + 100 + (uint64_t)i, &sup, &cap));
    ck_assert(ekv_ratelimit_allow(&rl, "192.0.2.8", t + 200, &sup, &cap)); /* others are not */
    ck_assert_uint_eq(sup, 0);
    ck_assert(!ekv_ratelimit_allow(&rl, "192.0.2.7", t + EKV_RL_WINDOW_MS - 1, &sup, &cap));
    ck_assert(ekv_ratelimit_allow(&rl, "192.0.2.7", t + EKV_RL_WINDOW_MS, &sup, &cap));
    ck_assert_uint_eq(sup, 51); /* reported with the next line */
    ck_assert(!ekv_ratelimit_allow(&rl, "192.0.2.7", t + EKV_RL_WINDOW_MS + 1, &sup, &cap));
    ck_assert(ekv_ratelimit_allow(&rl, "192.0.2.7", t + 3 * EKV_RL_WINDOW_MS, &sup, &cap));
    ck_assert_uint_eq(sup, 1);
}
END_TEST

/* Many clients at once (or one with many addresses): an overall cap per window. */
START_TEST(test_ratelimit_overall_cap)
{
    static struct ekv_ratelimit rl;
    unsigned sup, cap, allowed = 0;
    char peer[48];

    for (int i = 0; i < 1000; i++) {
        snprintf(peer, sizeof(peer), "10.0.%d.%d", i / 256, i % 256);
        allowed += ekv_ratelimit_allow(&rl, peer, 1000 + (uint64_t)i, &sup, &cap);
    }
    ck_assert_uint_eq(allowed, EKV_RL_MAX_LINES);
    /* the next window's first line reports what the cap refused */
    ck_assert(ekv_ratelimit_allow(&rl, "10.9.9.9", 1000 + EKV_RL_WINDOW_MS + 999, &sup, &cap));
    ck_assert_uint_eq(cap, 1000 - EKV_RL_MAX_LINES);
    ck_assert(ekv_ratelimit_allow(&rl, "10.9.9.8", 1000 + EKV_RL_WINDOW_MS + 999, &sup, &cap));
    ck_assert_uint_eq(cap, 0); /* reported once */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("alog");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_alog_line);
    tcase_add_test(tc, test_alog_escapes);
    tcase_add_test(tc, test_alog_long_url_cut);
    tcase_add_test(tc, test_alog_escape_bounds);
    tcase_add_test(tc, test_alog_bounded);
    tcase_add_test(tc, test_alog_flush);
    tcase_add_test(tc, test_alog_flush_would_block);
    suite_add_tcase(s, tc);
    tc = tcase_create("ratelimit");
    tcase_add_test(tc, test_ratelimit_per_client);
    tcase_add_test(tc, test_ratelimit_overall_cap);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
