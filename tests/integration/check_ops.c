/* check_ops.c - operations of a real edgekv on a real redis-server, driven through its
 * configuration file and signals: SIGHUP reloads (new tokens work and old ones are refused at
 * once; a bad file, an unreadable one or an access log that cannot be opened is rejected and
 * the running configuration kept; directives that need a restart keep their value; log-level
 * changes), the access log (format, escaping, reopening for logrotate, turning it off) and the
 * rate-limited client error lines.
 *
 * One redis-server per TCase (unchecked fixture); each test starts its own edgekv with
 * `-c FILE` only, so that reloading FILE changes everything (no command-line directive wins). */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apic.h"
#include "testutil.h"

#define TCASE_TIMEOUT 60
#define WAIT_MS 5000

static struct ekv_test_redis *redis;

/* One edgekv under test. */
struct ek {
    struct ekv_test_proc *proc;
    char conf[256]; /* its configuration file */
    char dir[200];  /* its directory (removed with it) */
    unsigned short port;
};

/* ---------------------------------------------------------------- helpers */

/* Writes the configuration file of @e atomically: 4 common lines (a comment, and listen,
 * origin and threads unless @extra sets them), then @extra. */
static void write_conf(struct ek *e, const char *extra)
{
    char tmp[300];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.new", e->conf);
    f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# written by check_ops\n%s\norigin %s\n%s\n%s",
            strstr(extra, "listen ") == NULL ? "listen 127.0.0.1:0" : "#", redis->origin,
            strstr(extra, "threads ") == NULL ? "threads 2" : "#", extra);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, e->conf), 0);
}

/* The port of the first "listening on HOST:PORT" line of @log, or 0. */
static unsigned short port_of(const char *log)
{
    const char *s = strstr(log, "level=info listening on 127.0.0.1:");

    return s != NULL ? (unsigned short)atoi(s + strlen("level=info listening on 127.0.0.1:")) : 0;
}

/* Starts edgekv with `-c FILE` and nothing else; FILE holds the common lines and @extra. */
static void start(struct ek *e, const char *extra)
{
    const char *argv[4];
    uint64_t end = ekv_test_now_ms() + WAIT_MS;

    memset(e, 0, sizeof(*e));
    ekv_test_mkdtemp("ops", e->dir, sizeof(e->dir));
    snprintf(e->conf, sizeof(e->conf), "%s/edgekv.conf", e->dir);
    write_conf(e, extra);
    argv[0] = ekv_test_edgekv_bin();
    argv[1] = "-c";
    argv[2] = e->conf;
    argv[3] = NULL;
    e->proc = ekv_test_spawn(argv[0], argv, e->dir);
    for (;;) {
        char *log = ekv_test_proc_log(e->proc);
        e->port = port_of(log);
        if (e->port != 0 && ekv_test_get_status(e->port, "/healthz") == 200) {
            free(log);
            break;
        }
        ck_assert_msg(ekv_test_proc_alive(e->proc) && ekv_test_now_ms() < end,
                      "edgekv did not start; its output:\n%s", log);
        free(log);
        ekv_test_sleep_ms(5);
    }
}

/* SIGTERM: edgekv must exit 0 (in the sanitizer build, LeakSanitizer checks the reloads). */
static void stop(struct ek *e)
{
    int status;

    ck_assert_int_eq(ekv_test_proc_signal(e->proc, SIGTERM), 0);
    status = ekv_test_proc_wait(e->proc, 10000);
    if (status != 0) {
        char *log = ekv_test_proc_log(e->proc);
        ck_abort_msg("edgekv exited with %d on SIGTERM; its output:\n%s", status, log);
    }
    ekv_test_proc_free(e->proc);
    e->proc = NULL;
}

/* How many times @needle occurs in the output of @e. */
static unsigned count_log(const struct ek *e, const char *needle)
{
    char *log = ekv_test_proc_log(e->proc);
    unsigned n = 0;

    for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* Waits until @needle occurs @n times in the output of @e. */
static void wait_log(const struct ek *e, const char *needle, unsigned n)
{
    uint64_t end = ekv_test_now_ms() + WAIT_MS;

    while (count_log(e, needle) < n) {
        if (ekv_test_now_ms() >= end) {
            char *log = ekv_test_proc_log(e->proc);
            ck_abort_msg("\"%s\" did not appear %u time(s); the output:\n%s", needle, n, log);
        }
        ekv_test_sleep_ms(5);
    }
}

/* Rewrites the configuration and sends SIGHUP. */
static void reload(struct ek *e, const char *extra)
{
    if (extra != NULL)
        write_conf(e, extra);
    ck_assert_int_eq(ekv_test_proc_signal(e->proc, SIGHUP), 0);
}

/* GET @path with the token @tok (NULL: none); the status. */
static int get_with(const struct ek *e, const char *path, const char *tok)
{
    char hdr[128];

    snprintf(hdr, sizeof(hdr), "Fastly-Key: %s\r\n", tok != NULL ? tok : "");
    return apic_status(e->port, "GET", path, tok != NULL ? hdr : NULL, NULL);
}

/* The value of @series in a /metrics scrape, or -1. */
static double metric(const struct ek *e, const char *series)
{
    double v = apic_metric(e->port, series);

    ck_assert_msg(v != APIC_METRIC_UNREACHABLE, "/metrics did not answer 200");
    return v;
}

/* Waits until @series is @v. */
static void wait_metric(const struct ek *e, const char *series, double v)
{
    uint64_t end = ekv_test_now_ms() + WAIT_MS;

    while (metric(e, series) != v) {
        ck_assert_msg(ekv_test_now_ms() < end, "%s never became %g (it is %g)", series, v,
                      metric(e, series));
        ekv_test_sleep_ms(5);
    }
}

/* Sends @data on a connection from the local address @src (127.0.0.x: each one is another
 * client for the rate limiter) and returns the response's status, or -1. */
static int raw_from(const char *src, unsigned short port, const char *data)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
    struct timeval tv = {5, 0};

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(inet_pton(AF_INET, src, &a.sin_addr), 1);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %s: %s", src,
                  strerror(errno));
    a.sin_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
                  strerror(errno));
    ck_assert_int_eq(send(fd, data, strlen(data), MSG_NOSIGNAL), (ssize_t)strlen(data));
    while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi(buf + 9);
    close(fd);
    return status;
}

static char *read_file_or_empty(const char *path)
{
    char *s = ekv_test_read_file(path, NULL);

    if (s == NULL)
        s = strdup("");
    ck_assert_ptr_nonnull(s);
    return s;
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* Waits until the file @path holds @n lines (the access log is written at least once a
 * second); returns its contents (caller frees). */
static char *wait_lines(const char *path, unsigned n)
{
    uint64_t end = ekv_test_now_ms() + WAIT_MS;

    for (;;) {
        char *s = read_file_or_empty(path);
        if (count_lines(s) >= n) {
            ck_assert_msg(count_lines(s) == n, "%s has %u lines, expected %u:\n%s", path,
                          count_lines(s), n, s);
            return s;
        }
        if (ekv_test_now_ms() >= end)
            ck_abort_msg("%s has %u lines, expected %u:\n%s", path, count_lines(s), n, s);
        free(s);
        ekv_test_sleep_ms(20);
    }
}

/* The line of @text that contains @needle (a copy, caller frees), or fails. */
static char *line_with(const char *text, const char *needle)
{
    const char *p = strstr(text, needle), *b, *eol;

    ck_assert_msg(p != NULL, "no line with \"%s\" in:\n%s", needle, text);
    for (b = p; b > text && b[-1] != '\n'; b--)
        continue;
    eol = strchr(p, '\n');
    return strndup(b, eol != NULL ? (size_t)(eol - b) : strlen(b));
}

/* Checks that @line is `127.0.0.1 - - [DD/Mon/YYYY:HH:MM:SS +0000] "@req" @status @bytes
 * SECONDS "CACHE-STATUS"`, the Cache-Status starting with @cache_status. */
static void assert_line(const char *line, const char *req, int status, unsigned long bytes,
                        const char *cache_status)
{
    char date[64], got_req[300], cs[200];
    unsigned long got_bytes;
    double secs;
    int got_status, n = 0;

    ck_assert_msg(sscanf(line, "127.0.0.1 - - [%63[^]]] \"%299[^\"]\" %d %lu %lf \"%199[^\"]\"%n",
                         date, got_req, &got_status, &got_bytes, &secs, cs, &n) == 6 &&
                      (size_t)n == strlen(line),
                  "not an access log line: %s", line);
    ck_assert_msg(strlen(date) == 26 && strcmp(date + 20, " +0000") == 0, "bad date: %s", line);
    ck_assert_str_eq(got_req, req);
    ck_assert_int_eq(got_status, status);
    ck_assert_uint_eq(got_bytes, bytes);
    ck_assert(secs >= 0 && secs < 5);
    ck_assert_msg(strncmp(cs, cache_status, strlen(cache_status)) == 0,
                  "Cache-Status is not %s...: %s", cache_status, line);
}

/* ---------------------------------------------------------------- fixtures */

static void redis_start(void)
{
    redis = ekv_test_redis_start();
    redis->proc->persistent = true;
}

static void redis_stop(void)
{
    ekv_test_redis_stop(redis);
    redis = NULL;
}

/* ---------------------------------------------------------------- reload */

/* A new token works as soon as the reload is reported, and the old one is refused. */
START_TEST(test_reload_tokens)
{
    struct ek e;

    start(&e, "api-token tok-a\n");
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-a"), 200);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-b"), 401);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", NULL), 401);

    reload(&e, "api-token tok-b\nread-token tok-r\n");
    wait_log(&e, "level=info configuration reloaded: api-token, read-token", 1);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-b"), 200);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-a"), 401);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-r"), 200);
    ck_assert_int_eq(apic_status(e.port, "POST", "/resources/stores/kv", "Fastly-Key: tok-r\r\n",
                                 "{\"name\":\"x\"}"),
                     403);

    /* no token at all: open (development mode), and said so */
    reload(&e, "");
    wait_log(&e, "level=info configuration reloaded: api-token, read-token", 2);
    ck_assert_int_eq(count_log(&e, "level=warn no api-token is set any more"), 1);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", NULL), 200);

    /* the same file again: nothing changed, still reported */
    reload(&e, NULL);
    wait_log(&e, "level=info configuration reloaded: nothing changed", 1);
    ck_assert_double_eq(metric(&e, "edgekv_config_reloads_total{result=\"success\"}"), 3);
    ck_assert_double_eq(metric(&e, "edgekv_config_reloads_total{result=\"failure\"}"), 0);
    stop(&e);
}
END_TEST

/* A bad file, a missing one, one that would not start, an access log that cannot be opened:
 * each is rejected with FILE:LINE: reason, and the running configuration stays in force. */
START_TEST(test_reload_rejected)
{
    struct ek e;
    char want[512], moved[300];

    start(&e, "api-token tok-a\ncache-max-ttl 60s\n");
    reload(&e, "api-token tok-b\ncache-max-ttl forever\n");
    snprintf(want, sizeof(want),
             "level=error configuration reload failed: %s:6: cache-max-ttl: \"forever\" is not a "
             "duration (a number with ms, s, m or h); keeping the running configuration",
             e.conf);
    wait_log(&e, want, 1);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-a"), 200);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-b"), 401);
    ck_assert_double_eq(metric(&e, "edgekv_config_reloads_total{result=\"failure\"}"), 1);
    ck_assert_double_eq(metric(&e, "edgekv_config_last_reload_successful"), 0);

    reload(&e, "api-token tok-b\nno-such-directive 1\n");
    snprintf(want, sizeof(want), "%s:6: unknown directive \"no-such-directive\"", e.conf);
    wait_log(&e, want, 1);

    /* a file edgekv would refuse to start with (protected mode) is refused as well */
    reload(&e, "listen 0.0.0.0:0\n");
    wait_log(&e,
             "level=error configuration reload failed: listen 0.0.0.0:0 is not a loopback "
             "address and no api-token is set",
             1);

    /* an access log that cannot be opened */
    reload(&e, "api-token tok-b\naccess-log /nonexistent-dir/access.log\n");
    wait_log(&e,
             "configuration reload failed: access-log /nonexistent-dir/access.log: No such "
             "file or directory; keeping the running configuration",
             1);

    /* no file at all */
    snprintf(moved, sizeof(moved), "%s.moved", e.conf);
    ck_assert_int_eq(rename(e.conf, moved), 0);
    reload(&e, NULL);
    snprintf(want, sizeof(want), "configuration reload failed: %s: No such file or directory",
             e.conf);
    wait_log(&e, want, 1);
    ck_assert_int_eq(rename(moved, e.conf), 0);
    ck_assert_int_eq(count_log(&e, "configuration reloaded"), 0);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-a"), 200);
    ck_assert_double_eq(metric(&e, "edgekv_config_reloads_total{result=\"failure\"}"), 5);

    /* and a good one afterwards is applied */
    reload(&e, "api-token tok-b\n");
    wait_log(&e, "configuration reloaded: cache-max-ttl, api-token", 1);
    ck_assert_int_eq(get_with(&e, "/resources/stores/kv", "tok-b"), 200);
    ck_assert_double_eq(metric(&e, "edgekv_config_last_reload_successful"), 1);
    ck_assert_double_eq(metric(&e, "edgekv_config_reloads_total{result=\"success\"}"), 1);
    stop(&e);
}
END_TEST

/* What needs a restart keeps its running value, with a warning; the rest is applied. */
START_TEST(test_reload_restart_only)
{
    struct ek e;

    start(&e, "value-max-bytes 1kb\n");
    ck_assert_int_eq(apic_status(e.port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"s\"}"),
                     201);
    ck_assert_int_eq(apic_status(e.port, "PUT", "/kv/s/k", NULL, "0123456789"), 200);
    reload(&e, "value-max-bytes 8b\nnamespace other:\nmax-connections 5\n");
    wait_log(&e,
             "level=warn configuration reload: namespace, max-connections changed but need a "
             "restart; the running values are kept until then",
             1);
    wait_log(&e, "level=info configuration reloaded: value-max-bytes", 1);
    ck_assert_int_eq(apic_status(e.port, "PUT", "/kv/s/k", NULL, "0123456789"), 413);
    ck_assert_int_eq(apic_status(e.port, "PUT", "/kv/s/k", NULL, "01234567"), 200);
    /* the namespace did not change: the store is still found */
    ck_assert_int_eq(apic_status(e.port, "GET", "/kv/s/k", NULL, NULL), 200);
    reload(&e, "threads 3\n");
    wait_log(&e, "level=warn configuration reload: namespace, max-connections changed", 1);
    wait_log(&e,
             "level=warn configuration reload: threads changed but needs a restart; the "
             "running value is kept until then",
             1);
    wait_log(&e, "level=info configuration reloaded: value-max-bytes", 2);
    ck_assert_double_eq(metric(&e, "edgekv_worker_threads"), 2);
    stop(&e);
}
END_TEST

/* log-level applies at once, both ways; client error lines are rate-limited per client. */
START_TEST(test_reload_log_level)
{
    static const char garbage[] = "BLAH / HTTP/1.1\r\n\r\n";
    struct ek e;

    start(&e, "log-level info\n");
    ck_assert_int_eq(raw_from("127.0.0.2", e.port, garbage), 400);
    ck_assert_int_eq(count_log(&e, "level=info client 127.0.0.2: 400 Bad Request ("), 1);
    for (int i = 0; i < 20; i++) /* the same client again and again: not one more line */
        ck_assert_int_eq(raw_from("127.0.0.2", e.port, garbage), 400);
    ck_assert_int_eq(count_log(&e, "client 127.0.0.2:"), 1);
    /* the line names the client, never the path (key names stay out of the log) */
    ck_assert_int_eq(raw_from("127.0.0.5", e.port,
                              "PUT /kv/s/.well-known/acme-challenge/secret-key-9q HTTP/1.1\r\n"
                              "Content-Length: 1\r\n\r\nx"),
                     400);
    ck_assert_int_eq(count_log(&e, "level=info client 127.0.0.5: 400 Bad Request (PUT)"), 1);
    ck_assert_int_eq(count_log(&e, "secret-key-9q"), 0);
    ck_assert_int_eq(count_log(&e, "level=info client 127.0.0.2: 400 Bad Request (-)"), 1);
    /* an unknown path is not a client error worth a line */
    ck_assert_int_eq(apic_status(e.port, "GET", "/no/such", NULL, NULL), 404);
    ck_assert_int_eq(count_log(&e, "client 127.0.0.1:"), 0);

    reload(&e, "log-level warn\n");
    wait_metric(&e, "edgekv_config_reloads_total{result=\"success\"}", 1);
    ck_assert_int_eq(raw_from("127.0.0.3", e.port, garbage), 400);
    ck_assert_int_eq(count_log(&e, "client 127.0.0.3:"), 0);

    reload(&e, "log-level info\n");
    /* the warn-level reload said nothing at info; this one does */
    wait_log(&e, "level=info configuration reloaded: log-level", 1);
    ck_assert_int_eq(count_log(&e, "configuration reloaded"), 1);
    ck_assert_int_eq(raw_from("127.0.0.4", e.port, garbage), 400);
    ck_assert_int_eq(count_log(&e, "level=info client 127.0.0.4: 400 Bad Request ("), 1);

    reload(&e, "log-level debug\n");
    wait_log(&e, "level=info configuration reloaded: log-level", 2);
    stop(&e);
}
END_TEST

/* The origin's address outlives the snapshot it came from: after reloads, a lost origin is
 * reconnected to (in the sanitizer build, a freed address would be caught here). */
START_TEST(test_reload_then_origin_reconnect)
{
    struct ek e;
    uint64_t end;

    redis = ekv_test_redis_start(); /* this test's own: it kills it */
    start(&e, "");
    reload(&e, "negative-ttl 1s\n");
    wait_log(&e, "configuration reloaded: negative-ttl", 1);
    reload(&e, "negative-ttl 2s\n");
    wait_log(&e, "configuration reloaded: negative-ttl", 2);
    apic_redis_kill(redis);
    end = ekv_test_now_ms() + WAIT_MS;
    while (ekv_test_get_status(e.port, "/readyz") != 503) {
        ck_assert_msg(ekv_test_now_ms() < end, "/readyz never said the origin was down");
        ekv_test_sleep_ms(10);
    }
    apic_redis_start_again(redis);
    end = ekv_test_now_ms() + 3 * WAIT_MS;
    while (ekv_test_get_status(e.port, "/readyz") != 200) {
        ck_assert_msg(ekv_test_now_ms() < end, "edgekv did not reconnect to the origin");
        ekv_test_sleep_ms(20);
    }
    stop(&e);
    ekv_test_redis_stop(redis);
    redis = NULL;
}
END_TEST

/* ---------------------------------------------------------------- access log */

START_TEST(test_access_log)
{
    struct ek e;
    char extra[512], dir[200], path[300], rotated[300], *log, *line;

    ekv_test_mkdtemp("alog", dir, sizeof(dir));
    snprintf(rotated, sizeof(rotated), "%s/access.log.1", dir);
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(extra, sizeof(extra), "access-log %s\n", path);
    start(&e, extra); /* its /healthz probe is the first line */
    ck_assert_int_eq(apic_status(e.port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"s\"}"),
                     201);
    ck_assert_int_eq(apic_status(e.port, "PUT", "/kv/s/k", NULL, "hello"), 200);
    ck_assert_int_eq(apic_status(e.port, "GET", "/kv/s/k", NULL, NULL), 200);
    ck_assert_int_eq(apic_status(e.port, "HEAD", "/kv/s/k", NULL, NULL), 200);
    ck_assert_int_eq(apic_status(e.port, "GET", "/kv/s/k?consistency=strong&x=%22\"", NULL, NULL),
                     200);
    ck_assert_int_eq(apic_status(e.port, "GET", "/no/such", NULL, NULL), 404);

    log = wait_lines(path, 7);
    line = line_with(log, "\"GET /healthz HTTP/1.1\"");
    assert_line(line, "GET /healthz HTTP/1.1", 200, 15, "-");
    free(line);
    line = line_with(log, "\"POST /resources/stores/kv HTTP/1.1\"");
    ck_assert_ptr_nonnull(strstr(line, "\" 201 "));
    free(line);
    line = line_with(log, "\"PUT /kv/s/k HTTP/1.1\"");
    assert_line(line, "PUT /kv/s/k HTTP/1.1", 200, 0, "-");
    free(line);
    line = line_with(log, "\"HEAD /kv/s/k HTTP/1.1\"");
    assert_line(line, "HEAD /kv/s/k HTTP/1.1", 200, 0, "edgekv; ");
    free(line);
    line = line_with(log, "\"GET /kv/s/k HTTP/1.1\"");
    assert_line(line, "GET /kv/s/k HTTP/1.1", 200, 5, "edgekv; ");
    free(line);
    /* the client's quote cannot end the field */
    line = line_with(log, "consistency=strong");
    assert_line(line, "GET /kv/s/k?consistency=strong&x=%22\\x22 HTTP/1.1", 200, 5,
                "edgekv; fwd=request");
    free(line);
    line = line_with(log, "\"GET /no/such HTTP/1.1\"");
    ck_assert_ptr_nonnull(strstr(line, "\" 404 "));
    free(line);
    free(log);

    /* logrotate: move the file, SIGHUP, and new lines go to a new file */
    ck_assert_int_eq(rename(path, rotated), 0);
    reload(&e, NULL);
    wait_log(&e, "configuration reloaded: nothing changed", 1);
    ck_assert_int_eq(apic_status(e.port, "GET", "/healthz", NULL, NULL), 200);
    log = wait_lines(path, 1);
    line = line_with(log, "\"GET /healthz HTTP/1.1\"");
    free(line);
    free(log);
    log = read_file_or_empty(rotated);
    ck_assert_uint_eq(count_lines(log), 7);
    free(log);

    /* turned off: nothing more is written */
    reload(&e, "");
    wait_log(&e, "configuration reloaded: access-log", 1);
    ck_assert_int_eq(apic_status(e.port, "GET", "/healthz", NULL, NULL), 200);
    ekv_test_sleep_ms(1300); /* more than the flush interval */
    log = read_file_or_empty(path);
    ck_assert_uint_eq(count_lines(log), 1);
    free(log);
    stop(&e);
}
END_TEST

/* Lines are written when edgekv stops, and an access log it cannot open stops it at start. */
START_TEST(test_access_log_start_and_stop)
{
    struct ek e;
    char extra[512], dir[200], path[300], *log, *out;
    const char *args[6];
    int status;

    ekv_test_mkdtemp("alog", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(extra, sizeof(extra), "access-log %s\n", path);
    start(&e, extra);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(apic_status(e.port, "GET", "/healthz", NULL, NULL), 200);
    stop(&e); /* at once: before the periodic flush */
    log = read_file_or_empty(path);
    ck_assert_uint_eq(count_lines(log), 11);
    free(log);

    args[0] = "--listen";
    args[1] = "127.0.0.1:0";
    args[2] = "--access-log";
    args[3] = "/nonexistent-dir/access.log";
    args[4] = NULL;
    status = ekv_test_edgekv_run(args, 5000, &out);
    ck_assert_int_eq(status, 1);
    ck_assert_msg(strstr(out, "level=error access-log /nonexistent-dir/access.log: No such file "
                              "or directory") != NULL,
                  "%s", out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc;

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    (void)ekv_test_edgekv_bin();

    tc = tcase_create("reload");
    tcase_add_unchecked_fixture(tc, redis_start, redis_stop);
    tcase_add_checked_fixture(tc, NULL, ekv_test_kill_strays);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_reload_tokens);
    tcase_add_test(tc, test_reload_rejected);
    tcase_add_test(tc, test_reload_restart_only);
    tcase_add_test(tc, test_reload_log_level);
    suite_add_tcase(s, tc);

    tc = tcase_create("origin");
    tcase_add_checked_fixture(tc, NULL, ekv_test_kill_strays);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_reload_then_origin_reconnect);
    suite_add_tcase(s, tc);

    tc = tcase_create("access_log");
    tcase_add_unchecked_fixture(tc, redis_start, redis_stop);
    tcase_add_checked_fixture(tc, NULL, ekv_test_kill_strays);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_access_log);
    tcase_add_test(tc, test_access_log_start_and_stop);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
