/* proc.c - child processes for end-to-end tests: the edgekv binary (ports read from its
 * "listening on" log lines) and a throw-away redis-server on a unix socket (or TCP). Output goes
 * to a file, never a pipe (a full pipe would block the daemon); every process is registered so
 * that a teardown can kill and reap whatever a failed test left running. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include "testutil.h"

#define START_TIMEOUT_MS 5000 /* until edgekv logs its ports / redis answers PING */
#define POLL_MS 5             /* interval of the bounded polls below */
#define MAX_ARGS 64
#define REDIS_TCP_TRIES 5

static struct ekv_test_proc *procs; /* started and not freed, by any process */

/* ---------------------------------------------------------------- generic processes */

static void unlink_proc(struct ekv_test_proc *p)
{
    for (struct ekv_test_proc **pp = &procs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

/* Runs in the forked child: never returns. Reports an exec failure's errno through @errfd. */
static void exec_child(const char *bin, const char *const *argv, const char *dir,
                       const char *log_path, int errfd)
{
    sigset_t none;
    int in, out, e;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* Check's runner may have blocked some */
    signal(SIGPIPE, SIG_DFL);
    in = open("/dev/null", O_RDONLY);
    out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
        dup2(out, STDERR_FILENO) < 0 || chdir(dir) != 0)
        goto fail;
    /* the child must not hold our client sockets (a close() in the test would not end the
     * connection) nor Check's descriptors: mark everything past stderr close-on-exec */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
            if (fd != errfd)
                (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    execv(bin, (char *const *)argv); /* execv() does not modify them */
fail:
    e = errno;
    if (write(errfd, &e, sizeof(e)) < 0)
        (void)0;
    _exit(127);
}

struct ekv_test_proc *ekv_test_spawn(const char *bin, const char *const *argv, const char *dir)
{
    struct ekv_test_proc *p = calloc(1, sizeof(*p));
    int pfd[2], e = 0, n;
    ssize_t got;

    ck_assert_ptr_nonnull(p);
    n = snprintf(p->dir, sizeof(p->dir), "%s", dir);
    ck_assert_msg(n > 0 && (size_t)n < sizeof(p->dir), "directory path too long: %s", dir);
    snprintf(p->log_path, sizeof(p->log_path), "%s/output.log", dir);
    ck_assert_msg(pipe2(pfd, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    p->pid = fork();
    if (p->pid == 0) {
        /* nothing of Check in the child: an assertion takes Check's lock, which another thread
         * of the test (check_chaos) may have held at the fork, forever in the child */
        close(pfd[0]);
        exec_child(bin, argv, p->dir, p->log_path, pfd[1]);
    }
    ck_assert_msg(p->pid >= 0, "fork: %s", strerror(errno));
    close(pfd[1]);
    do
        got = read(pfd[0], &e, sizeof(e)); /* EOF: exec succeeded (the pipe was close-on-exec) */
    while (got < 0 && errno == EINTR);
    close(pfd[0]);
    p->owner = getpid();
    p->next = procs;
    procs = p;
    if (got == (ssize_t)sizeof(e)) {
        ekv_test_proc_free(p);
        ck_abort_msg("cannot run %s: %s", bin, strerror(e));
    }
    return p;
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

/* Reaps @p if it has exited; returns whether it has. */
static bool try_reap(struct ekv_test_proc *p)
{
    int st;
    pid_t r;

    if (p->reaped)
        return true;
    if (p->owner != getpid()) /* a forked test looking at its runner's process */
        return kill(p->pid, 0) != 0;
    do
        r = waitpid(p->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == p->pid) {
        p->reaped = true;
        p->status = decode_status(st);
        return true;
    }
    if (r < 0) { /* not our child any more: treat as gone */
        p->reaped = true;
        p->status = 255;
        return true;
    }
    return false;
}

int ekv_test_proc_signal(struct ekv_test_proc *p, int sig)
{
    if (p->reaped)
        return -1;
    return kill(p->pid, sig) == 0 ? 0 : -1;
}

int ekv_test_proc_wait(struct ekv_test_proc *p, unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;

    ck_assert_msg(p->owner == getpid(), "only the process that started pid %d may wait for it",
                  (int)p->pid);
    while (!try_reap(p)) {
        if (ekv_test_now_ms() >= end)
            return -1;
        ekv_test_sleep_ms(POLL_MS);
    }
    return p->status;
}

bool ekv_test_proc_alive(struct ekv_test_proc *p)
{
    return !try_reap(p);
}

char *ekv_test_proc_log(const struct ekv_test_proc *p)
{
    char *s = ekv_test_read_file(p->log_path, NULL);

    if (s == NULL && (s = strdup("")) == NULL)
        abort(); /* no Check assertion: used in unchecked teardowns too */
    return s;
}

bool ekv_test_proc_wait_log(const struct ekv_test_proc *p, const char *needle, unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;

    for (;;) {
        char *log = ekv_test_proc_log(p);
        bool found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        if (ekv_test_now_ms() >= end)
            return false;
        ekv_test_sleep_ms(POLL_MS);
    }
}

void ekv_test_proc_free(struct ekv_test_proc *p)
{
    if (p == NULL)
        return;
    unlink_proc(p);
    if (p->owner == getpid()) { /* a forked test only forgets its runner's processes */
        if (!try_reap(p)) {
            int st;
            (void)kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
                continue;
        }
        ekv_test_rm_rf(p->dir);
    }
    free(p);
}

/* Frees the processes the caller started; the persistent ones only if @all. */
static void free_owned(bool all)
{
    struct ekv_test_proc *p = procs, *next;

    for (; p != NULL; p = next) {
        next = p->next;
        if (p->owner == getpid() && (all || !p->persistent))
            ekv_test_proc_free(p);
    }
}

void ekv_test_kill_strays(void)
{
    free_owned(false);
}

void ekv_test_kill_all(void)
{
    free_owned(true);
}

/* ---------------------------------------------------------------- edgekv */

const char *ekv_test_edgekv_bin(void)
{
    const char *bin = getenv("EDGEKV_BIN");

    if (bin == NULL || bin[0] == '\0')
        ekv_test_skip_or_fail("EDGEKV_BIN is not set (the path of the edgekv binary)");
    if (access(bin, X_OK) != 0) {
        char why[512];
        snprintf(why, sizeof(why), "EDGEKV_BIN=%s is not executable: %s", bin, strerror(errno));
        ekv_test_skip_or_fail(why);
    }
    return bin;
}

/* Whether @args set the directive @name ("--name value" or "--name=value"). */
static bool has_flag(const char *const *args, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; args != NULL && args[i] != NULL; i++)
        if (strncmp(args[i], name, n) == 0 && (args[i][n] == '\0' || args[i][n] == '='))
            return true;
    return false;
}

/* The port at the end of "HOST:PORT" starting at @s (the token ends at a blank or newline). */
static unsigned short port_of(const char *s)
{
    const char *end = s + strcspn(s, " \t\r\n"), *colon = NULL;
    unsigned long v = 0;

    for (const char *q = s; q < end; q++)
        if (*q == ':')
            colon = q;
    if (colon == NULL || colon + 1 == end)
        return 0;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9')
            return 0;
        v = v * 10 + (unsigned long)(*q - '0');
        if (v > 65535)
            return 0;
    }
    return (unsigned short)v;
}

/* Reads the ports of the "level=info listening on HOST:PORT" lines: the first one is the main
 * listener, a later one ending in "(admin: ...)" the admin listener. */
static void parse_listeners(const char *log, unsigned short *port, unsigned short *admin,
                            unsigned short *tls)
{
    static const char key[] = "level=info listening on ";
    static const char tkey[] = "level=info listening (tls) on ";
    const char *s = log;

    *tls = 0;
    if ((s = strstr(log, tkey)) != NULL)
        *tls = port_of(s + sizeof(tkey) - 1);
    s = log;

    *port = *admin = 0;
    while ((s = strstr(s, key)) != NULL) {
        const char *addr = s + sizeof(key) - 1;
        const char *eol = addr + strcspn(addr, "\n");
        const char *tag = strstr(addr, " (admin:");
        bool is_admin = tag != NULL && tag < eol;

        if (*port == 0 && !is_admin)
            *port = port_of(addr);
        else if (*admin == 0 && is_admin)
            *admin = port_of(addr);
        s = eol;
    }
}

struct ekv_test_proc *ekv_test_edgekv_startv(const char *const *args)
{
    const char *bin = ekv_test_edgekv_bin();
    const char *argv[MAX_ARGS];
    size_t n = 0;
    bool want_admin = has_flag(args, "--admin-listen");
    bool want_tls = has_flag(args, "--tls-listen");
    char dir[200], origin[240];
    struct ekv_test_proc *p;
    uint64_t end;

    argv[n++] = bin;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        ck_assert_msg(n < MAX_ARGS - 10, "too many arguments");
        argv[n++] = args[i];
    }
    if (!has_flag(args, "--listen")) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    if (!has_flag(args, "--threads")) {
        argv[n++] = "--threads";
        argv[n++] = "2";
    }
    if (!has_flag(args, "--log-level")) {
        argv[n++] = "--log-level";
        argv[n++] = "info";
    }
    ekv_test_mkdtemp("edgekv", dir, sizeof(dir));
    if (!has_flag(args, "--origin")) {
        /* never the default redis://127.0.0.1:6379: a developer's own Redis is not ours to
         * write to. A socket that does not exist: the origin stays down, deterministically. */
        snprintf(origin, sizeof(origin), "unix://%s/no-redis.sock", dir);
        argv[n++] = "--origin";
        argv[n++] = origin;
    }
    argv[n] = NULL;
    p = ekv_test_spawn(bin, argv, dir);
    end = ekv_test_now_ms() + START_TIMEOUT_MS;
    for (;;) {
        char *log = ekv_test_proc_log(p);
        bool exited;

        parse_listeners(log, &p->port, &p->admin_port, &p->tls_port);
        if (p->port != 0 && (!want_admin || p->admin_port != 0) && (!want_tls || p->tls_port != 0)) {
            free(log);
            return p;
        }
        exited = !ekv_test_proc_alive(p);
        if (exited || ekv_test_now_ms() >= end) {
            int status = p->status;
            ekv_test_proc_free(p);
            ck_abort_msg("edgekv %s (exit status %d) before logging its listening port(s); "
                         "its output:\n%s",
                         exited ? "exited" : "timed out", exited ? status : -1, log);
        }
        free(log);
        ekv_test_sleep_ms(POLL_MS);
    }
}

struct ekv_test_proc *ekv_test_edgekv_start(const char *arg, ...)
{
    const char *args[MAX_ARGS];
    size_t n = 0;
    va_list ap;

    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_msg(n < MAX_ARGS - 1, "too many arguments");
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    return ekv_test_edgekv_startv(args);
}

int ekv_test_edgekv_run(const char *const *args, unsigned timeout_ms, char **output)
{
    const char *bin = ekv_test_edgekv_bin();
    const char *argv[MAX_ARGS];
    size_t n = 0;
    char dir[200];
    struct ekv_test_proc *p;
    int status;

    argv[n++] = bin;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        ck_assert_msg(n < MAX_ARGS - 1, "too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    ekv_test_mkdtemp("edgekv-run", dir, sizeof(dir));
    p = ekv_test_spawn(bin, argv, dir);
    status = ekv_test_proc_wait(p, timeout_ms);
    if (status < 0) {
        char *log = ekv_test_proc_log(p);
        ekv_test_proc_free(p);
        ck_abort_msg("edgekv did not exit within %u ms; its output:\n%s", timeout_ms, log);
    }
    if (output != NULL)
        *output = ekv_test_proc_log(p);
    ekv_test_proc_free(p);
    return status;
}

/* ---------------------------------------------------------------- redis-server */

/* A growing NUL-terminated string. */
struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap != 0 ? b->cap * 2 : 64;
        b->s = realloc(b->s, b->cap);
        if (b->s == NULL)
            abort(); /* no Check assertion: ekv_test_reply_render() never fails the test */
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void render_reply(struct sbuf *b, const redisReply *r)
{
    char num[32];

    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        sb_add(b, r->str, r->len);
        break;
    case REDIS_REPLY_ERROR:
        sb_add(b, "(error) ", 8);
        sb_add(b, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(num, sizeof(num), "%lld", r->integer);
        sb_add(b, num, strlen(num));
        break;
    case REDIS_REPLY_NIL:
        sb_add(b, "(nil)", 5);
        break;
    case REDIS_REPLY_ARRAY:
        for (size_t i = 0; i < r->elements; i++) {
            if (i > 0)
                sb_add(b, "\n", 1);
            render_reply(b, r->element[i]);
        }
        break;
    default:
        sb_add(b, "(unknown reply)", 15);
        break;
    }
}

char *ekv_test_reply_render(const struct redisReply *reply)
{
    struct sbuf b = {0};

    sb_add(&b, "", 0);
    render_reply(&b, reply);
    return b.s;
}

/* Connects to @r over its unix socket (port 0) or TCP; NULL if it does not answer. */
static redisContext *redis_connect(const struct ekv_test_redis *r, unsigned short port)
{
    struct timeval tv = {2, 0};
    redisContext *c = port != 0 ? redisConnectWithTimeout("127.0.0.1", port, tv)
                                : redisConnectUnixWithTimeout(r->sock, tv);

    if (c != NULL && (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK)) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

/* Whether the server answers PING with PONG, over the unix socket or TCP @port. */
static bool redis_pings(const struct ekv_test_redis *r, unsigned short port)
{
    redisContext *c = redis_connect(r, port);
    redisReply *reply;
    bool ok;

    if (c == NULL)
        return false;
    reply = redisCommand(c, "PING");
    ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    if (reply != NULL)
        freeReplyObject(reply);
    redisFree(c);
    return ok;
}

const char *ekv_test_redis_binary(void)
{
    const char *bin = getenv("REDIS_SERVER");

    return bin != NULL && bin[0] != '\0' && access(bin, X_OK) == 0 ? bin : NULL;
}

/* A port that was free a moment ago (bound to port 0, read back, closed). */
static unsigned short free_tcp_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    ck_assert_msg(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
                      getsockname(fd, (struct sockaddr *)&sin, &len) == 0,
                  "bind 127.0.0.1:0: %s", strerror(errno));
    close(fd);
    return ntohs(sin.sin_port);
}

/* Starts redis-server for @r in @dir (which the process then owns): its unix socket r->sock,
 * and TCP @port unless 0 (with @tls, NULL-terminated TLS options: the TLS port). */
static void redis_spawn(struct ekv_test_redis *r, const char *bin, const char *dir,
                        unsigned short port, const char *const *tls)
{
    char portstr[8], tlsport[8];
    const char *argv[48];
    size_t n = 0;

    snprintf(portstr, sizeof(portstr), "%u", tls != NULL ? 0 : port);
    snprintf(tlsport, sizeof(tlsport), "%u", port);
    argv[n++] = bin;
    argv[n++] = "--port";
    argv[n++] = portstr;
    if (port != 0) {
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
    }
    if (tls != NULL) { /* @port is the TLS port, the TLS options follow */
        argv[n++] = "--tls-port";
        argv[n++] = tlsport;
        for (size_t i = 0; tls[i] != NULL && n < 40; i++)
            argv[n++] = tls[i];
    }
    argv[n++] = "--unixsocket";
    argv[n++] = r->sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = dir;
    argv[n] = NULL;
    r->proc = ekv_test_spawn(bin, argv, dir);
    r->port = port;
}

/* One attempt: 1 = up, 0 = lost the race for the TCP port (retry), fails the test otherwise. */
static int redis_try_start(struct ekv_test_redis *r, const char *bin, unsigned short port,
                           const char *const *tls)
{
    char dir[200];
    uint64_t end;
    int len;

    ekv_test_mkdtemp("redis", dir, sizeof(dir));
    len = snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", dir);
    /* sun_path holds 108 bytes */
    ck_assert_msg(len > 0 && (size_t)len < 100, "socket path too long (set a shorter TMPDIR): %s",
                  r->sock);
    snprintf(r->origin, sizeof(r->origin), "unix://%s", r->sock);
    redis_spawn(r, bin, dir, port, tls);
    end = ekv_test_now_ms() + START_TIMEOUT_MS;
    for (;;) {
        /* every listener is bound before the first command is served */
        if (redis_pings(r, 0) && (port == 0 || tls != NULL || redis_pings(r, port)))
            return 1;
        if (!ekv_test_proc_alive(r->proc) || ekv_test_now_ms() >= end) {
            char *log = ekv_test_proc_log(r->proc);
            bool clash =
                port != 0 && !ekv_test_proc_alive(r->proc) && strstr(log, "already in use") != NULL;
            ekv_test_proc_free(r->proc);
            r->proc = NULL;
            if (clash) {
                free(log);
                return 0;
            }
            ck_abort_msg("redis-server did not start; its output:\n%s", log);
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}

bool ekv_test_redis_ping(const char *sock)
{
    struct ekv_test_redis r;

    snprintf(r.sock, sizeof(r.sock), "%s", sock);
    return redis_pings(&r, 0);
}

void ekv_test_redis_restart(struct ekv_test_redis *r)
{
    const char *bin = ekv_test_redis_binary();
    char dir[sizeof(r->sock)], *slash;
    uint64_t end;

    ck_assert_ptr_nonnull(bin);
    snprintf(dir, sizeof(dir), "%s", r->sock);
    slash = strrchr(dir, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    /* the old process owned the directory (and removes it when freed): hand it to the new one */
    ekv_test_proc_free(r->proc);
    r->proc = NULL;
    ck_assert_msg(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
    redis_spawn(r, bin, dir, 0, NULL);
    end = ekv_test_now_ms() + START_TIMEOUT_MS;
    while (!redis_pings(r, 0)) {
        ck_assert_msg(ekv_test_proc_alive(r->proc) && ekv_test_now_ms() < end,
                      "redis-server did not start again");
        ekv_test_sleep_ms(POLL_MS);
    }
}

static struct ekv_test_redis *redis_start(bool tcp, const char *const *tls)
{
    const char *bin = ekv_test_redis_binary();
    struct ekv_test_redis *r;

    if (bin == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    for (int attempt = 1;; attempt++) {
        if (redis_try_start(r, bin, tcp ? free_tcp_port() : 0, tls))
            return r;
        if (attempt == REDIS_TCP_TRIES) {
            free(r);
            ck_abort_msg("redis-server lost the race for a free TCP port %d times", attempt);
        }
    }
}

struct ekv_test_redis *ekv_test_redis_start(void)
{
    return redis_start(false, NULL);
}

struct ekv_test_redis *ekv_test_redis_start_tls(const char *const *tls)
{
    return redis_start(true, tls);
}

struct ekv_test_redis *ekv_test_redis_start_tcp(void)
{
    return redis_start(true, NULL);
}

char *ekv_test_redis_cmd(struct ekv_test_redis *r, const char *fmt, ...)
{
    redisContext *c = redis_connect(r, 0);
    redisReply *reply;
    char *out;
    va_list ap;

    ck_assert_msg(c != NULL, "cannot connect to redis-server at %s", r->sock);
    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (reply == NULL) {
        char err[160];
        snprintf(err, sizeof(err), "%s", c->errstr);
        redisFree(c);
        ck_abort_msg("redis command \"%s\" failed: %s", fmt, err);
    }
    out = ekv_test_reply_render(reply);
    freeReplyObject(reply);
    redisFree(c);
    return out;
}

/* A durable redis-server for @r (its socket and data directory set), its log directory of its
 * own: NULL if it could not be spawned. */
static struct ekv_test_proc *durable_spawn(struct ekv_test_redis *r)
{
    const char *bin = ekv_test_redis_binary(), *src = getenv("EKV_SRCDIR");
    char conf[512], logdir[200];
    const char *argv[] = {bin, conf,
                          /* the test's own socket and data directory, no TCP port */
                          "--port", "0", "--unixsocket", r->sock, "--unixsocketperm", "700",
                          "--dir", r->data, "--daemonize", "no", "--logfile", "",
                          /* the durable setting the README recommends; only the AOF counts */
                          "--appendfsync", "always", "--save", "", NULL};

    snprintf(conf, sizeof(conf), "%s/conf/redis-origin.conf", src != NULL ? src : ".");
    ekv_test_mkdtemp("redis-log", logdir, sizeof(logdir));
    return ekv_test_spawn(bin, argv, logdir);
}

static bool durable_wait(struct ekv_test_redis *r)
{
    uint64_t end = ekv_test_now_ms() + 2 * START_TIMEOUT_MS; /* loading its AOF */

    while (!redis_pings(r, 0)) {
        if (!ekv_test_proc_alive(r->proc) || ekv_test_now_ms() >= end)
            return false;
        ekv_test_sleep_ms(POLL_MS);
    }
    return true;
}

struct ekv_test_redis *ekv_test_redis_start_durable(void)
{
    struct ekv_test_redis *r;

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    ekv_test_mkdtemp("redis-data", r->data, sizeof(r->data));
    ck_assert_msg(snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->data) < 100,
                  "socket path too long (set a shorter TMPDIR): %s", r->sock);
    snprintf(r->origin, sizeof(r->origin), "unix://%s", r->sock);
    r->proc = durable_spawn(r);
    if (!durable_wait(r)) {
        char *log = ekv_test_proc_log(r->proc);
        ck_abort_msg("redis-server did not start:\n%s", log);
    }
    return r;
}

bool ekv_test_redis_revive(struct ekv_test_redis *r)
{
    r->proc = durable_spawn(r);
    return r->proc != NULL && durable_wait(r);
}

bool ekv_test_redis_crash(struct ekv_test_redis *r)
{
    if (r->proc != NULL) {
        (void)ekv_test_proc_signal(r->proc, SIGKILL);
        (void)ekv_test_proc_wait(r->proc, START_TIMEOUT_MS);
        ekv_test_proc_free(r->proc); /* its log directory; the data stays */
        r->proc = NULL;
    }
    return ekv_test_redis_revive(r);
}

void ekv_test_redis_stop(struct ekv_test_redis *r)
{
    if (r == NULL)
        return;
    ekv_test_proc_free(r->proc);
    if (r->data[0] != '\0')
        ekv_test_rm_rf(r->data);
    free(r);
}

void ekv_test_make_certs(const char *dir)
{
    const char *src = getenv("EKV_SRCDIR");
    char cmd[1024];
    int rc;

    snprintf(cmd, sizeof(cmd), "sh '%s/tests/helpers/mkcerts.sh' '%s' >'%s.log' 2>&1",
             src != NULL ? src : ".", dir, dir);
    rc = system(cmd);
    ck_assert_msg(rc == 0, "mkcerts.sh failed (%d): see %s.log (is openssl installed?)", rc, dir);
}
