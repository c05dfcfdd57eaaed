/* testutil.h - helpers shared by the Check suites (tests/helpers/libekvtest.a): running a suite,
 * skipping when a prerequisite is missing, child processes (the edgekv binary, redis-server)
 * whose output goes to a file, and a raw blocking HTTP/1.1 client for end-to-end tests.
 *
 * Failures inside the helpers are reported with ck_abort_msg(), so they may be called from test
 * functions and from fixtures. The one exception is an unchecked teardown, where Check cannot
 * catch a failure: there, only use the functions documented as never failing. */
#ifndef EDGEKV_TESTS_TESTUTIL_H
#define EDGEKV_TESTS_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EKV_TEST_EXIT_SKIP 77 /* what automake reports as SKIP */

/* ---------------------------------------------------------------- suites (testutil.c) */

/**
 * Runs @s with CK_ENV (so CK_RUN_CASE, CK_FORK=no, CK_VERBOSITY work), frees it, then kills
 * whatever child process is left and removes the suite's scratch directory. Returns the exit
 * status for main(): 0 if every test passed and no failure was noted, 1 otherwise.
 */
int ekv_test_run_suite(Suite *s);

/**
 * A prerequisite (redis-server, the edgekv binary) is missing: prints @why, then exits 77
 * (SKIP) or, when EKV_TESTS_REQUIRED=1 is set (CI), 1. Call it from main() or an unchecked
 * setup, never from a test (Check would report the 77 as an error).
 */
void ekv_test_skip_or_fail(const char *why) __attribute__((noreturn));

/** Whether EKV_TESTS_REQUIRED=1 is set. */
bool ekv_test_required(void);

/**
 * Records a failure where Check cannot (an unchecked teardown): prints it to stderr and makes
 * ekv_test_run_suite() return 1. Never fails.
 */
void ekv_test_note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** CLOCK_MONOTONIC in milliseconds. */
uint64_t ekv_test_now_ms(void);

/** Sleeps @ms milliseconds (a poll interval, not a way to wait for an event). */
void ekv_test_sleep_ms(unsigned ms);

/**
 * Creates a fresh private directory (mkdtemp) under the suite's scratch directory, itself under
 * $TMPDIR or /tmp, and copies its path to @out. The scratch directory is removed by
 * ekv_test_run_suite(), so a test that fails half-way leaves nothing behind.
 */
void ekv_test_mkdtemp(const char *prefix, char *out, size_t outlen);

/** Removes @path and everything under it. Never fails (errors are ignored). */
void ekv_test_rm_rf(const char *path);

/** Reads the whole file @path: a malloc'd NUL-terminated string (caller frees), or NULL. */
char *ekv_test_read_file(const char *path, size_t *len);

/* ---------------------------------------------------------------- processes (proc.c) */

struct ekv_test_proc {
    pid_t pid;                 /* the child; stays set after it has been reaped */
    pid_t owner;               /* the process that started it (Check forks a process per test) */
    bool reaped;               /* waited for: status is valid */
    int status;                /* once reaped: exit status 0-255, or 128 + the killing signal */
    char dir[200];             /* its private directory (removed when freed) */
    char log_path[240];        /* its stdout and stderr (a file, never a pipe that could fill) */
    unsigned short port;       /* edgekv: the main listener, from its first "listening on" line */
    unsigned short admin_port; /* edgekv: the admin listener, or 0 */
    unsigned short tls_port;   /* edgekv: tls-listen, from "listening (tls) on", or 0 */
    bool persistent;           /* started by an unchecked setup: ekv_test_kill_strays() spares it */
    struct ekv_test_proc *next; /* every live process, for ekv_test_kill_strays() */
};

/** The edgekv binary ($EDGEKV_BIN); if unset or not executable, ekv_test_skip_or_fail(). */
const char *ekv_test_edgekv_bin(void);

/**
 * Starts the edgekv binary with @args (NULL-terminated, may be NULL), adding
 * `--listen 127.0.0.1:0`, `--threads 2`, `--log-level info` and an `--origin` socket that does
 * not exist (never a Redis on the default 127.0.0.1:6379) unless @args give them, with stdout
 * and stderr going to a file. Waits (at most 5 s) until the log reports the listener(s)
 * and reads the port(s) from it. Fails the test (with the log) if edgekv exits or never says
 * where it listens. Free with ekv_test_proc_free().
 */
struct ekv_test_proc *ekv_test_edgekv_startv(const char *const *args);
/** The same with the arguments as a NULL-terminated list. */
struct ekv_test_proc *ekv_test_edgekv_start(const char *arg, ...) __attribute__((sentinel));

/**
 * Runs the edgekv binary with exactly @args (NULL-terminated; nothing is added) to completion,
 * at most @timeout_ms (then it is killed and the test fails). Returns its exit status (0-255,
 * or 128 + signal). If @output is not NULL it receives what it wrote to stdout and stderr
 * (malloc'd, NUL-terminated; caller frees).
 */
int ekv_test_edgekv_run(const char *const *args, unsigned timeout_ms, char **output);

/**
 * Starts @bin with @argv (argv[0] included, NULL-terminated) in the directory @dir (which the
 * process then owns and removes when freed), stdout and stderr to DIR/output.log, stdin from
 * /dev/null, no descriptor of ours inherited. Fails the test if it cannot be started.
 */
struct ekv_test_proc *ekv_test_spawn(const char *bin, const char *const *argv, const char *dir);

/** Sends @sig. Returns 0, or -1 if the process has already been reaped or kill(2) fails. */
int ekv_test_proc_signal(struct ekv_test_proc *p, int sig);

/**
 * Waits at most @timeout_ms for the process to exit. Returns its exit status (0-255, or
 * 128 + signal), or -1 if it is still running. Only the process that started it may wait.
 */
int ekv_test_proc_wait(struct ekv_test_proc *p, unsigned timeout_ms);

/** Whether the process is still running (not exited). */
bool ekv_test_proc_alive(struct ekv_test_proc *p);

/** The output so far: malloc'd, NUL-terminated (caller frees); "" if there is none. */
char *ekv_test_proc_log(const struct ekv_test_proc *p);

/** Polls the output (at most @timeout_ms) until it contains @needle. */
bool ekv_test_proc_wait_log(const struct ekv_test_proc *p, const char *needle, unsigned timeout_ms);

/**
 * Kills the process (SIGKILL) if it still runs, reaps it, removes its directory and frees @p.
 * NULL is a no-op. Never fails: safe in an unchecked teardown.
 */
void ekv_test_proc_free(struct ekv_test_proc *p);

/**
 * Frees (kill -9, reap, remove) every process that the calling process started and has not
 * freed, except the persistent ones: a checked teardown that makes sure no child outlives its
 * test, also with CK_FORK=no (with CK_FORK, Check also kills each test's process group).
 * Never fails.
 */
void ekv_test_kill_strays(void);

/** Frees every process the caller started, persistent ones included (ekv_test_run_suite() calls
 * it at the end). Never fails. */
void ekv_test_kill_all(void);

/* ---------------------------------------------------------------- redis-server (proc.c) */

struct ekv_test_redis {
    struct ekv_test_proc *proc;
    char sock[240];      /* DIR/redis.sock */
    char origin[260];    /* "unix://DIR/redis.sock": edgekv's --origin */
    unsigned short port; /* the TCP port (ekv_test_redis_start_tcp), else 0 */
    char data[200];      /* ekv_test_redis_start_durable(): the data directory, else "" */
};

/**
 * Starts $REDIS_SERVER as the README deploys it: conf/redis-origin.conf of the source tree
 * ($EKV_SRCDIR; AOF on) with `appendfsync always` and no RDB snapshots, on a unix socket, its
 * AOF in r->data, which outlives the process (ekv_test_redis_crash()) and goes with
 * ekv_test_redis_stop().
 */
struct ekv_test_redis *ekv_test_redis_start_durable(void);

/** Starts a durable redis-server again on its socket and data (after its process was killed
 * and freed: r->proc NULL), and waits until it has loaded its AOF and answers PING (at most
 * 10 s; false if it did not: never fails the test, so any thread may call it). */
bool ekv_test_redis_revive(struct ekv_test_redis *r);

/** Kills a durable redis-server (SIGKILL: no shutdown, no last fsync), then
 * ekv_test_redis_revive(). */
bool ekv_test_redis_crash(struct ekv_test_redis *r);

/** As ekv_test_redis_start_tcp(), but the TCP port (r->port) speaks TLS only, with the
 * NULL-terminated redis-server options @tls ("--tls-cert-file", FILE, ...). The unix socket
 * stays plain, for the test's own commands. */
struct ekv_test_redis *ekv_test_redis_start_tls(const char *const *tls);

/** Makes the test certificates of tests/helpers/mkcerts.sh in @dir (see there). */
void ekv_test_make_certs(const char *dir);

/** $REDIS_SERVER if it is set and executable, else NULL. */
const char *ekv_test_redis_binary(void);

/**
 * Starts $REDIS_SERVER (ekv_test_skip_or_fail() if unset) on a unix socket in a fresh
 * directory, no TCP port, no persistence, and waits (at most 5 s) until it answers PING.
 * Meant for an unchecked setup (once per TCase; then set r->proc->persistent). Free with
 * ekv_test_redis_stop().
 */
struct ekv_test_redis *ekv_test_redis_start(void);

/**
 * The same, also listening on 127.0.0.1 on a free port (bound to port 0 to pick it, closed,
 * then given to redis-server; retried up to 5 times if redis-server loses that race).
 */
struct ekv_test_redis *ekv_test_redis_start_tcp(void);

/**
 * Runs one command (hiredis format: %s, %b with a length, ...) over the unix socket and returns
 * the reply as a malloc'd string (caller frees): a status or bulk string as is, an integer in
 * decimal, nil as "(nil)", an error as "(error) MESSAGE", an array as its elements joined by
 * '\n'. Fails the test if Redis cannot be reached.
 */
char *ekv_test_redis_cmd(struct ekv_test_redis *r, const char *fmt, ...);

/* store-shards' default: the buckets of the stores the tests create. */
#define EKV_TEST_SHARDS 16

/**
 * The hash tag of item @key's bucket in store @sid of @shards buckets, as the README documents
 * it for other programs and computed here on its own (CRC16-XMODEM of the key, bit by bit, mod
 * @shards): "<sid>:<bucket>", or "<sid>" for one bucket. Written to @buf (@size bytes); returns
 * @buf. The Redis keys are then "edgekv:i:{TAG}:KEY", "edgekv:x:{TAG}", "edgekv:g:{TAG}".
 */
const char *ekv_test_tag(char *buf, size_t size, const char *sid, const char *key,
                         unsigned shards);

struct redisReply;
/** @reply rendered as ekv_test_redis_cmd() renders replies (malloc'd; caller frees). Never
 * fails the test. */
char *ekv_test_reply_render(const struct redisReply *reply);

/** Whether a Redis answers PING on the unix socket @sock (a -LOADING answer is a no). */
bool ekv_test_redis_ping(const char *sock);

/** Starts a new, empty redis-server on @r's unix socket path (after the old one was killed or
 * stopped) and waits until it answers. */
void ekv_test_redis_restart(struct ekv_test_redis *r);

/** Stops redis-server (SIGKILL: nothing is persisted), removes its directory, frees @r. NULL is
 * a no-op. Never fails: safe in an unchecked teardown. */
void ekv_test_redis_stop(struct ekv_test_redis *r);

/* ---------------------------------------------------------------- HTTP client (httpc.c) */

#define EKV_TEST_MAX_HDRS 64
#define EKV_TEST_TIMEOUT_MS 5000 /* default send and receive timeout of a connection */

/** A client connection: a blocking socket with send and receive timeouts. */
struct ekv_test_conn {
    int fd;
    struct ssl_st *ssl; /* HTTPS (ekv_test_tls_connect): sends and reads go through it */
    char *buf; /* received; buf[off..len) is not consumed by a read yet */
    size_t off, len, cap;
    bool eof;      /* the server closed (or reset) the connection */
    char err[160]; /* why the last read failed */
};

struct ekv_test_hdr {
    const char *name;
    const char *value; /* surrounding whitespace removed */
};

/** One parsed response. Strings point into @raw and live until ekv_test_resp_free(). */
struct ekv_test_resp {
    int status;
    int minor; /* HTTP/1.<minor> */
    const char *reason;
    size_t nhdrs;
    struct ekv_test_hdr hdrs[EKV_TEST_MAX_HDRS];
    const char *body; /* NUL-terminated (the body may also contain NULs) */
    size_t body_len;
    unsigned ninterim; /* 1xx responses skipped before it (ekv_test_read_final) */
    char *raw;
};

/** ekv_test_read*() results. */
enum {
    EKV_TEST_OK = 0,
    EKV_TEST_CLOSED,  /* the connection ended (EOF or reset) before a response began */
    EKV_TEST_TIMEOUT, /* no complete response within the receive timeout */
    EKV_TEST_BAD,     /* malformed, or the connection ended in the middle of a response */
};

/** ekv_test_read*() flags. */
#define EKV_TEST_HEAD 1u /* the response to a HEAD request: it has no body */

/** Connects to 127.0.0.1:@port. Fails the test if the connection is not established. */
struct ekv_test_conn *ekv_test_connect(unsigned short port);

/** Tries to connect: returns 0 and the connection in @out, or the errno (ECONNREFUSED...). */
int ekv_test_try_connect(unsigned short port, struct ekv_test_conn **out);

/** Changes the send and receive timeouts (SO_SNDTIMEO, SO_RCVTIMEO) of @c. */
void ekv_test_set_timeout(struct ekv_test_conn *c, unsigned ms);

/** Sends all of @data. Returns 0, or the errno (EPIPE, ECONNRESET, EAGAIN on a timeout). */
int ekv_test_send(struct ekv_test_conn *c, const void *data, size_t len);
/** Sends the NUL-terminated @s. */
int ekv_test_send_str(struct ekv_test_conn *c, const char *s);
/** Sends a printf-formatted string. */
int ekv_test_sendf(struct ekv_test_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Reads the next response, interim (1xx) ones included, into @r (which the caller frees with
 * ekv_test_resp_free()). The body is delimited by Content-Length or chunked encoding, or by EOF
 * when there is neither; there is none for HEAD (@flags EKV_TEST_HEAD), 1xx, 204 and 304.
 * Returns EKV_TEST_OK or another EKV_TEST_* code (c->err says why).
 */
int ekv_test_read(struct ekv_test_conn *c, struct ekv_test_resp *r, unsigned flags);

/** Like ekv_test_read(), but skips interim responses, counting them in r->ninterim. */
int ekv_test_read_final(struct ekv_test_conn *c, struct ekv_test_resp *r, unsigned flags);

/**
 * Reads @n final responses in order into @rs[0..n) (pipelining); @flags is NULL or one flag
 * word per response. Returns how many were read before the first failure (n if all).
 */
size_t ekv_test_read_n(struct ekv_test_conn *c, struct ekv_test_resp *rs, size_t n,
                       const unsigned *flags);

/**
 * Waits at most @timeout_ms for the server to close the connection (EOF or reset). Data that
 * arrives meanwhile is kept for later reads. Returns whether the connection ended.
 */
bool ekv_test_wait_eof(struct ekv_test_conn *c, unsigned timeout_ms);

/** Closes the connection and frees @c; NULL is a no-op. Never fails. */
void ekv_test_close(struct ekv_test_conn *c);

/** The first header named @name (case-insensitive), or NULL. */
const char *ekv_test_resp_header(const struct ekv_test_resp *r, const char *name);
/** How many headers are named @name (case-insensitive). */
size_t ekv_test_resp_header_count(const struct ekv_test_resp *r, const char *name);
/** Frees what @r holds and clears it; may be called on a cleared response. */
void ekv_test_resp_free(struct ekv_test_resp *r);

/**
 * One GET @path on a fresh connection (with Connection: close); returns the status, or -1 if
 * there was no valid response. Never fails the test by itself.
 */
int ekv_test_get_status(unsigned short port, const char *path);

/* ---------------------------------------------------------------- HTTPS client (tlsc.c) */

struct ssl_ctx_st;
struct ssl_session_st;

/**
 * A client TLS context (OpenSSL) that verifies the server against the PEM @ca (NULL: no
 * verification), presents @cert/@key when not NULL, offers ALPN http/1.1 and speaks TLS
 * versions @min_version..@max_version (TLS1_VERSION... ; 0: OpenSSL's bound; TLS 1.0 and 1.1
 * are offered only when asked for). Fails the test if a file does not load. Free with
 * SSL_CTX_free().
 */
struct ssl_ctx_st *ekv_test_tls_ctx(const char *ca, const char *cert, const char *key,
                                    int min_version, int max_version);

/**
 * Connects to 127.0.0.1:@port and completes a TLS handshake with @ctx (SNI @sni unless NULL;
 * resuming @sess unless NULL). Returns 0 and the connection in @out (reads and sends then go
 * through TLS; everything of the HTTP client works on it), or -1 with OpenSSL's reason in @err.
 */
int ekv_test_tls_try_connect(unsigned short port, struct ssl_ctx_st *ctx, const char *sni,
                             struct ssl_session_st *sess, struct ekv_test_conn **out, char *err,
                             size_t errlen);
/** The same, failing the test if the handshake fails. */
struct ekv_test_conn *ekv_test_tls_connect(unsigned short port, struct ssl_ctx_st *ctx);

#endif /* EDGEKV_TESTS_TESTUTIL_H */
