/* topology.c - a Sentinel set and a Redis Cluster of real redis-server processes on 127.0.0.1
 * TCP ports (see topology.h), driven by synchronous hiredis. Every wait polls the servers
 * themselves (ROLE, INFO, CLUSTER SLOTS, SENTINEL ...) with a deadline, and nothing relies on
 * what the struct remembers about roles, since forked tests change roles behind the parent's
 * back. The timings quoted here were measured with redis-server 7.0.15 on this machine. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include "topology.h"

#define PORT_LO 20000 /* P and its bus port P + 10000 stay below 32768 (ephemeral) */
#define PORT_HI 22767
#define BUS_OFFSET 10000
#define CMD_TIMEOUT_S 2
#define POLL_MS 20
#define START_TRIES 5          /* a server that lost the race for its port is started again */
#define UP_TIMEOUT_MS 5000     /* until a fresh redis-server answers PING */
#define READY_TIMEOUT_MS 20000 /* until a set or cluster is ready */
#define SWITCH_TIMEOUT_MS 15000
#define LOG_TAIL 1500 /* of each process's output, in failure messages */
#define MAX_ARGS 48

/* ---------------------------------------------------------------- failure messages */

/* The message of the next ck_abort_msg(): built by fail_add(), since a failure quotes the
 * servers' view and output. Static: ck_abort_msg() does not return. */
static char failbuf[16384];
static size_t faillen;

static void fail_reset(void)
{
    failbuf[0] = '\0';
    faillen = 0;
}

static void fail_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_add(const char *fmt, ...)
{
    va_list ap;
    int n;

    if (faillen >= sizeof(failbuf) - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(failbuf + faillen, sizeof(failbuf) - faillen, fmt, ap);
    va_end(ap);
    if (n > 0)
        faillen +=
            (size_t)n < sizeof(failbuf) - faillen ? (size_t)n : sizeof(failbuf) - faillen - 1;
}

/* Appends the end of @p's output. */
static void fail_add_log(const char *what, unsigned short port, const struct ekv_test_proc *p)
{
    char *log;
    size_t len;

    if (p == NULL)
        return;
    log = ekv_test_proc_log(p);
    len = strlen(log);
    fail_add("\n--- %s on port %u (pid %d), end of its output:\n%s", what, port, (int)p->pid,
             log + (len > LOG_TAIL ? len - LOG_TAIL : 0));
    free(log);
}

/* ---------------------------------------------------------------- ports */

static unsigned short port_cursor; /* where the next search starts; 0 = not seeded yet */

/* Whether 127.0.0.1:@port can be bound (without SO_REUSEADDR: a port with connections in
 * TIME_WAIT counts as busy, which only makes the choice more careful). */
static bool can_bind(unsigned port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    sin.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

unsigned short ekv_test_free_port_pair(void)
{
    const unsigned span = PORT_HI - PORT_LO + 1;

    if (port_cursor == 0) {
        /* test binaries start together under make -j: spread them by pid and time */
        struct timespec ts;
        uint32_t seed;

        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec;
        port_cursor = (unsigned short)(PORT_LO + seed % span);
    }
    for (unsigned i = 0; i < span; i++) {
        unsigned p = PORT_LO + (port_cursor - PORT_LO + i) % span;

        if (can_bind(p) && can_bind(p + BUS_OFFSET)) {
            port_cursor = (unsigned short)(PORT_LO + (p - PORT_LO + 1) % span);
            return (unsigned short)p;
        }
    }
    ck_abort_msg("no free port pair P, P+%d with P in [%d, %d]", BUS_OFFSET, PORT_LO, PORT_HI);
}

/* ---------------------------------------------------------------- commands */

/* Connects to 127.0.0.1:@port and authenticates. NULL if the server cannot be reached or
 * refuses AUTH (then *@auth_err is its error reply, which the caller frees). */
static redisContext *open_port(unsigned short port, const char *password, redisReply **auth_err)
{
    struct timeval tv = {CMD_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;

    *auth_err = NULL;
    if (c != NULL && (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK)) {
        redisFree(c);
        return NULL;
    }
    if (c == NULL || password == NULL)
        return c;
    r = redisCommand(c, "AUTH %s", password);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        *auth_err = r;
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

/* One command: the reply (caller frees with freeReplyObject()), the AUTH error, or NULL. */
static redisReply *vcommand(unsigned short port, const char *password, const char *fmt, va_list ap)
{
    redisReply *err, *r;
    redisContext *c = open_port(port, password, &err);

    if (c == NULL)
        return err;
    r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

static redisReply *command(unsigned short port, const char *password, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = vcommand(port, password, fmt, ap);
    va_end(ap);
    return r;
}

char *ekv_test_cmd_port(unsigned short port, const char *password, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    char *s;

    va_start(ap, fmt);
    r = vcommand(port, password, fmt, ap);
    va_end(ap);
    if (r == NULL)
        return NULL;
    s = ekv_test_reply_render(r);
    freeReplyObject(r);
    return s;
}

char *ekv_test_cmd_port_or_fail(unsigned short port, const char *password, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    char *s;

    va_start(ap, fmt);
    r = vcommand(port, password, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "cannot send \"%s\" to 127.0.0.1:%u", fmt, port);
    s = ekv_test_reply_render(r);
    freeReplyObject(r);
    return s;
}

static bool reply_is(const redisReply *r, const char *s)
{
    return r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
           strcmp(r->str, s) == 0;
}

/* Sends a command that must answer +OK; fails the test (with the reply) otherwise. */
static void expect_ok(unsigned short port, const char *password, const char *what, const char *fmt,
                      ...)
{
    va_list ap;
    redisReply *r;
    char *s;

    va_start(ap, fmt);
    r = vcommand(port, password, fmt, ap);
    va_end(ap);
    if (reply_is(r, "OK")) {
        freeReplyObject(r);
        return;
    }
    s = r != NULL ? ekv_test_reply_render(r) : NULL;
    if (r != NULL)
        freeReplyObject(r);
    ck_abort_msg("%s on 127.0.0.1:%u: %s", what, port, s != NULL ? s : "(unreachable)");
}

/* Whether something accepts connections on @port. */
static bool port_open(unsigned short port)
{
    redisReply *err;
    redisContext *c = open_port(port, NULL, &err);

    if (c != NULL)
        redisFree(c);
    return c != NULL;
}

/* Waits (at most @timeout_ms) until nothing listens on @port any more. */
static bool wait_port_closed(unsigned short port, unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;

    while (port_open(port)) {
        if (ekv_test_now_ms() >= end)
            return false;
        ekv_test_sleep_ms(POLL_MS);
    }
    return true;
}

/* In a flat field/value array (SENTINEL master, SENTINEL replicas entries): @name's value. */
static const char *field(const redisReply *r, const char *name)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (reply_is(r->element[i], name) && r->element[i + 1]->type == REDIS_REPLY_STRING)
            return r->element[i + 1]->str;
    return NULL;
}

static bool field_is(const redisReply *r, const char *name, const char *want)
{
    const char *v = field(r, name);

    return v != NULL && strcmp(v, want) == 0;
}

static long field_num(const redisReply *r, const char *name)
{
    const char *v = field(r, name);

    return v != NULL ? strtol(v, NULL, 10) : -1;
}

/* The value of "@name:VALUE" in an INFO reply, copied to @out ("" if absent). */
static void info_field(const redisReply *r, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    const char *s;

    out[0] = '\0';
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        return;
    for (s = r->str; s != NULL && *s != '\0'; s = strchr(s, '\n'), s = s != NULL ? s + 1 : NULL) {
        if (strncmp(s, name, n) == 0 && s[n] == ':') {
            size_t len = strcspn(s + n + 1, "\r\n");
            snprintf(out, outlen, "%.*s", (int)len, s + n + 1);
            return;
        }
    }
}

/* ROLE of the server on @port: "master", "slave", "sentinel", or "" if it does not answer; for
 * a replica, the port of its master in *@master and its link state ("connected", ...). */
static void role_of(unsigned short port, const char *password, char *role, size_t rolelen,
                    unsigned short *master, char *state, size_t statelen)
{
    redisReply *r = command(port, password, "ROLE");

    role[0] = '\0';
    if (master != NULL)
        *master = 0;
    if (state != NULL)
        state[0] = '\0';
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(role, rolelen, "%s", r->element[0]->str);
        if (strcmp(role, "slave") == 0 && r->elements >= 4) {
            if (master != NULL && r->element[2]->type == REDIS_REPLY_INTEGER)
                *master = (unsigned short)r->element[2]->integer;
            if (state != NULL && r->element[3]->type == REDIS_REPLY_STRING)
                snprintf(state, statelen, "%s", r->element[3]->str);
        }
    }
    if (r != NULL)
        freeReplyObject(r);
}

static bool is_master(unsigned short port, const char *password)
{
    char role[16];

    role_of(port, password, role, sizeof(role), NULL, NULL, 0);
    return strcmp(role, "master") == 0;
}

/* Whether the server on @port is a replica of @master with its link up (INFO replication). */
static bool replica_linked(unsigned short port, const char *password, unsigned short master)
{
    redisReply *r = command(port, password, "INFO replication");
    char role[16], mport[8], link[16], want[8];

    info_field(r, "role", role, sizeof(role));
    info_field(r, "master_port", mport, sizeof(mport));
    info_field(r, "master_link_status", link, sizeof(link));
    if (r != NULL)
        freeReplyObject(r);
    snprintf(want, sizeof(want), "%u", master);
    return strcmp(role, "slave") == 0 && strcmp(mport, want) == 0 && strcmp(link, "up") == 0;
}

/* ---------------------------------------------------------------- processes */

/* Spawns @argv (argv[0] the binary) in the fresh directory @dir, as a persistent process. */
static struct ekv_test_proc *spawn(const char *const *argv, const char *dir)
{
    struct ekv_test_proc *p = ekv_test_spawn(argv[0], argv, dir);

    p->persistent = true; /* owned by the set or cluster, which frees it */
    return p;
}

enum up { UP_OK, UP_CLASH, UP_FAILED };

/*
 * Waits until the server @p on @port answers PING (after AUTH @password). UP_CLASH: it exited
 * after losing the race for its port (or its bus port); UP_FAILED: it exited otherwise or did not
 * answer within UP_TIMEOUT_MS, and fail_add() has its output. In both cases @p is freed.
 */
static enum up wait_up(struct ekv_test_proc *p, unsigned short port, const char *password,
                       const char *what)
{
    uint64_t end = ekv_test_now_ms() + UP_TIMEOUT_MS;

    for (;;) {
        redisReply *r = command(port, password, "PING");
        bool pong = reply_is(r, "PONG");
        bool alive;

        if (r != NULL)
            freeReplyObject(r);
        if (pong)
            return UP_OK;
        alive = ekv_test_proc_alive(p);
        if (!alive || ekv_test_now_ms() >= end) {
            char *log = ekv_test_proc_log(p);
            bool clash = !alive && strstr(log, "already in use") != NULL;

            free(log);
            if (!clash) {
                fail_add("%s did not start (%s)", what, alive ? "no PONG within 5 s" : "exited");
                fail_add_log(what, port, p);
            }
            ekv_test_proc_free(p);
            return clash ? UP_CLASH : UP_FAILED;
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}

static const char *redis_bin(void)
{
    const char *bin = ekv_test_redis_binary();

    if (bin == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    return bin;
}

const char *ekv_test_redis_cli_binary(void)
{
    static char path[512];
    const char *srv = ekv_test_redis_binary();
    const char *env = getenv("PATH");

    if (srv != NULL) {
        const char *slash = strrchr(srv, '/');
        int n = (int)(slash != NULL ? slash - srv : 0);

        snprintf(path, sizeof(path), "%.*s%sredis-cli", n, srv, slash != NULL ? "/" : "");
        if (slash != NULL && access(path, X_OK) == 0)
            return path;
    }
    for (const char *s = env != NULL ? env : ""; *s != '\0';) {
        size_t len = strcspn(s, ":");

        snprintf(path, sizeof(path), "%.*s/redis-cli", (int)len, s);
        if (len > 0 && access(path, X_OK) == 0)
            return path;
        s += len;
        if (*s == ':')
            s++;
    }
    return NULL;
}

/* ---------------------------------------------------------------- Sentinel */

static const char *opt_pass(const char *p)
{
    return p[0] != '\0' ? p : NULL;
}

const char *ekv_test_sentinels_data_pass(const struct ekv_test_sentinels *s)
{
    return opt_pass(s->data_password);
}

const char *ekv_test_sentinels_sentinel_pass(const struct ekv_test_sentinels *s)
{
    return opt_pass(s->sentinel_password);
}

static void copy_password(char *dst, size_t dstlen, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    dst[0] = '\0';
    if (src == NULL)
        return;
    ck_assert_msg(n > 0 && n < dstlen &&
                      strspn(src, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
                                  "QRSTUVWXYZ0123456789._-") == n,
                  "test password \"%s\": 1-%zu characters of [A-Za-z0-9._-]", src, dstlen - 1);
    memcpy(dst, src, n + 1);
}

static int node_index(const struct ekv_test_sentinels *s, unsigned short port)
{
    for (int i = 0; i < 2; i++)
        if (s->node_port[i] == port)
            return i;
    ck_abort_msg("port %u is not a data node of the Sentinel set (%u, %u)", port, s->node_port[0],
                 s->node_port[1]);
}

unsigned short ekv_test_sentinels_other_node(const struct ekv_test_sentinels *s,
                                             unsigned short port)
{
    return s->node_port[1 - node_index(s, port)];
}

/* Starts data node @i on its port, as a replica of @master unless 0. */
static struct ekv_test_proc *data_node_spawn(struct ekv_test_sentinels *s, int i,
                                             unsigned short master)
{
    const char *argv[MAX_ARGS];
    char dir[200], port[8], mport[8];
    size_t n = 0;

    ekv_test_mkdtemp("sentinel-node", dir, sizeof(dir));
    snprintf(port, sizeof(port), "%u", s->node_port[i]);
    snprintf(mport, sizeof(mport), "%u", master);
    argv[n++] = redis_bin();
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--repl-diskless-sync-delay";
    argv[n++] = "0";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = dir;
    if (s->data_password[0] != '\0') { /* masterauth too: either node may become a replica */
        argv[n++] = "--requirepass";
        argv[n++] = s->data_password;
        argv[n++] = "--masterauth";
        argv[n++] = s->data_password;
    }
    if (master != 0) {
        argv[n++] = "--replicaof";
        argv[n++] = "127.0.0.1";
        argv[n++] = mport;
    }
    argv[n] = NULL;
    return spawn(argv, dir);
}

/* Writes Sentinel @i's config file for its port and the master on @master. */
static void sentinel_write_conf(struct ekv_test_sentinels *s, int i, unsigned short master)
{
    FILE *f = fopen(s->conf[i], "w");

    ck_assert_msg(f != NULL, "cannot write %s: %s", s->conf[i], strerror(errno));
    fprintf(f,
            "port %u\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            "dir %s\n"
            "sentinel monitor %s 127.0.0.1 %u 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 3000\n"
            "sentinel parallel-syncs %s 1\n",
            s->sentinel_port[i], s->dir, EKV_TEST_SENTINEL_MASTER, master, EKV_TEST_SENTINEL_MASTER,
            EKV_TEST_SENTINEL_MASTER, EKV_TEST_SENTINEL_MASTER);
    if (s->data_password[0] != '\0')
        fprintf(f, "sentinel auth-pass %s %s\n", EKV_TEST_SENTINEL_MASTER, s->data_password);
    if (s->sentinel_password[0] != '\0') /* also what they send to each other */
        fprintf(f, "requirepass %s\n", s->sentinel_password);
    ck_assert_msg(fclose(f) == 0, "cannot write %s", s->conf[i]);
}

static struct ekv_test_proc *sentinel_spawn(struct ekv_test_sentinels *s, int i)
{
    const char *argv[4];
    char dir[200];

    ekv_test_mkdtemp("sentinel", dir, sizeof(dir));
    argv[0] = redis_bin();
    argv[1] = s->conf[i];
    argv[2] = "--sentinel";
    argv[3] = NULL;
    return spawn(argv, dir);
}

/* What the Sentinels and the data nodes say, for a failure message. */
static void sentinels_describe(struct ekv_test_sentinels *s)
{
    const char *dp = ekv_test_sentinels_data_pass(s), *sp = ekv_test_sentinels_sentinel_pass(s);

    for (int i = 0; i < 2; i++) {
        char *role = ekv_test_cmd_port(s->node_port[i], dp, "ROLE");
        fail_add("\ndata node %u: ROLE %s", s->node_port[i], role != NULL ? role : "(down)");
        free(role);
    }
    for (int i = 0; i < 3; i++) {
        char *m = ekv_test_cmd_port(s->sentinel_port[i], sp, "SENTINEL master %s",
                                    EKV_TEST_SENTINEL_MASTER);
        char *r = ekv_test_cmd_port(s->sentinel_port[i], sp, "SENTINEL replicas %s",
                                    EKV_TEST_SENTINEL_MASTER);
        /* one line: the reply's fields joined by spaces */
        for (char *q = m; q != NULL && *q != '\0'; q++)
            *q = *q == '\n' ? ' ' : *q;
        for (char *q = r; q != NULL && *q != '\0'; q++)
            *q = *q == '\n' ? ' ' : *q;
        fail_add("\nsentinel %u: master: %s\n  replicas: %s", s->sentinel_port[i],
                 m != NULL ? m : "(down)", r != NULL ? r : "(down)");
        free(m);
        free(r);
    }
}

static void sentinels_abort(struct ekv_test_sentinels *s, bool logs) __attribute__((noreturn));
/* Fails the test with failbuf, the set's state and (@logs) the Sentinels' output. */
static void sentinels_abort(struct ekv_test_sentinels *s, bool logs)
{
    sentinels_describe(s);
    for (int i = 0; logs && i < 3; i++)
        fail_add_log("sentinel", s->sentinel_port[i], s->sentinel[i]);
    ck_abort_msg("%s", failbuf);
}

/* In a SENTINEL replicas reply, the entry of the replica on @port, or NULL. */
static const redisReply *replica_entry(const redisReply *r, unsigned short port)
{
    char want[8];

    snprintf(want, sizeof(want), "%u", port);
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (field_is(r->element[i], "port", want))
            return r->element[i];
    return NULL;
}

/*
 * Whether Sentinel @i names @master as the master (flags exactly "master": not down, not in a
 * failover) and lists the replica on @replica with flags exactly "slave" (reachable, not down).
 * With @fresh, also that its last INFO from the replica shows the link to @master up, and that it
 * knows the two other Sentinels: true right after the start, but after a conversion the INFO
 * that shows it may be 10 s away (SENTINEL_INFO_PERIOD), and a failover does not need it.
 */
static bool sentinel_sees(struct ekv_test_sentinels *s, int i, unsigned short master,
                          unsigned short replica, bool fresh)
{
    const char *sp = ekv_test_sentinels_sentinel_pass(s);
    redisReply *m =
        command(s->sentinel_port[i], sp, "SENTINEL master %s", EKV_TEST_SENTINEL_MASTER);
    redisReply *r =
        command(s->sentinel_port[i], sp, "SENTINEL replicas %s", EKV_TEST_SENTINEL_MASTER);
    const redisReply *e = replica_entry(r, replica);
    bool ok = field_num(m, "port") == master && field_is(m, "flags", "master") && e != NULL &&
              field_is(e, "flags", "slave");

    if (ok && fresh)
        ok = field_num(m, "num-other-sentinels") == 2 && field_is(e, "master-link-status", "ok") &&
             field_num(e, "master-port") == master;
    if (m != NULL)
        freeReplyObject(m);
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

/* Starts data node @i (port chosen unless @keep_port), retrying lost port races. */
static bool data_node_start(struct ekv_test_sentinels *s, int i, unsigned short master,
                            bool keep_port)
{
    for (int attempt = 0; attempt < START_TRIES; attempt++) {
        enum up up;

        if (!keep_port)
            s->node_port[i] = ekv_test_free_port_pair();
        else if (attempt > 0)
            ekv_test_sleep_ms(200); /* the same port: wait for whoever took it */
        s->node[i] = data_node_spawn(s, i, master);
        up = wait_up(s->node[i], s->node_port[i], ekv_test_sentinels_data_pass(s), "redis-server");
        if (up == UP_OK)
            return true;
        s->node[i] = NULL;
        if (up == UP_FAILED)
            return false;
    }
    fail_add("redis-server lost the race for a free port %d times", START_TRIES);
    return false;
}

/* Starts Sentinel @i (a new port unless @keep_port, then a new config file for @master). */
static bool sentinel_start(struct ekv_test_sentinels *s, int i, unsigned short master,
                           bool keep_port)
{
    for (int attempt = 0; attempt < START_TRIES; attempt++) {
        enum up up;

        if (!keep_port) {
            s->sentinel_port[i] = ekv_test_free_port_pair();
            sentinel_write_conf(s, i, master);
        } else if (attempt > 0) {
            ekv_test_sleep_ms(200);
        }
        s->sentinel[i] = sentinel_spawn(s, i);
        up = wait_up(s->sentinel[i], s->sentinel_port[i], ekv_test_sentinels_sentinel_pass(s),
                     "redis-server --sentinel");
        if (up == UP_OK)
            return true;
        s->sentinel[i] = NULL;
        if (up == UP_FAILED)
            return false;
    }
    fail_add("Sentinel lost the race for a free port %d times", START_TRIES);
    return false;
}

struct ekv_test_sentinels *ekv_test_sentinels_start(const struct ekv_test_sentinel_opts *opts)
{
    struct ekv_test_sentinels *s;
    uint64_t end;
    size_t len;
    int n;

    redis_bin(); /* skip or fail before anything is started */
    s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    s->owner = getpid();
    copy_password(s->data_password, sizeof(s->data_password),
                  opts != NULL ? opts->data_password : NULL);
    copy_password(s->sentinel_password, sizeof(s->sentinel_password),
                  opts != NULL ? opts->sentinel_password : NULL);
    ekv_test_mkdtemp("sentinels", s->dir, sizeof(s->dir));
    for (int i = 0; i < 3; i++) {
        n = snprintf(s->conf[i], sizeof(s->conf[i]), "%s/sentinel-%d.conf", s->dir, i);
        ck_assert_msg(n > 0 && (size_t)n < sizeof(s->conf[i]), "path too long: %s", s->dir);
    }
    fail_reset();
    end = ekv_test_now_ms() + READY_TIMEOUT_MS;
    /* the replica must be connected before the Sentinels start: a Sentinel learns the replicas
     * from the master's INFO, which it asks for on connecting and then only every 10 s */
    if (!data_node_start(s, 0, 0, false) || !data_node_start(s, 1, s->node_port[0], false))
        goto fail;
    while (!replica_linked(s->node_port[1], ekv_test_sentinels_data_pass(s), s->node_port[0])) {
        if (ekv_test_now_ms() >= end) {
            fail_add("the replica's link to the master never came up");
            fail_add_log("master", s->node_port[0], s->node[0]);
            fail_add_log("replica", s->node_port[1], s->node[1]);
            goto fail;
        }
        ekv_test_sleep_ms(POLL_MS);
    }
    for (int i = 0; i < 3; i++)
        if (!sentinel_start(s, i, s->node_port[0], false))
            goto fail;
    /* what every Sentinel must know before a failover can start at once: the replica, with its
     * link up, and the other two Sentinels (from their hello messages, every 2 s) */
    for (int i = 0; i < 3; i++) {
        while (!sentinel_sees(s, i, s->node_port[0], s->node_port[1], true)) {
            if (ekv_test_now_ms() >= end) {
                fail_add("Sentinel %u did not see the whole set within %d s", s->sentinel_port[i],
                         READY_TIMEOUT_MS / 1000);
                sentinels_describe(s);
                for (int j = 0; j < 3; j++)
                    fail_add_log("sentinel", s->sentinel_port[j], s->sentinel[j]);
                goto fail;
            }
            ekv_test_sleep_ms(50);
        }
    }
    len = (size_t)snprintf(s->origin, sizeof(s->origin), "redis-sentinel://%s%s%s",
                           s->data_password[0] != '\0' ? ":" : "", s->data_password,
                           s->data_password[0] != '\0' ? "@" : "");
    for (int i = 0; i < 3 && len < sizeof(s->origin); i++)
        len += (size_t)snprintf(s->origin + len, sizeof(s->origin) - len, "%s127.0.0.1:%u",
                                i > 0 ? "," : "", s->sentinel_port[i]);
    if (len < sizeof(s->origin))
        snprintf(s->origin + len, sizeof(s->origin) - len, "/%s", EKV_TEST_SENTINEL_MASTER);
    return s;
fail:
    ekv_test_sentinels_free(s);
    ck_abort_msg("starting a Sentinel set: %s", failbuf);
}

void ekv_test_sentinels_free(struct ekv_test_sentinels *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < 3; i++)
        ekv_test_proc_free(s->sentinel[i]);
    for (int i = 0; i < 2; i++)
        ekv_test_proc_free(s->node[i]);
    if (s->owner == getpid() && s->dir[0] != '\0')
        ekv_test_rm_rf(s->dir);
    free(s);
}

/* Asks every Sentinel for the master: returns how many answered, with their answer in *@port
 * (0 if they disagree). */
static int sentinels_poll_master(struct ekv_test_sentinels *s, unsigned short *port)
{
    int answered = 0;

    *port = 0;
    for (int i = 0; i < 3; i++) {
        redisReply *r = command(s->sentinel_port[i], ekv_test_sentinels_sentinel_pass(s),
                                "SENTINEL get-master-addr-by-name %s", EKV_TEST_SENTINEL_MASTER);
        unsigned short p = 0;

        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            p = (unsigned short)strtoul(r->element[1]->str, NULL, 10);
        if (r != NULL)
            freeReplyObject(r);
        if (p == 0)
            continue; /* down, or not answering with an address */
        if (answered++ == 0)
            *port = p;
        else if (*port != p)
            *port = 0xffff; /* marks a disagreement until the loop ends */
    }
    if (*port == 0xffff)
        *port = 0;
    return answered;
}

unsigned short ekv_test_sentinels_master_port(struct ekv_test_sentinels *s)
{
    uint64_t end = ekv_test_now_ms() + 5000;

    for (;;) {
        unsigned short port;
        int answered = sentinels_poll_master(s, &port);

        if (answered > 0 && port != 0)
            return port;
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add(answered == 0 ? "no Sentinel names a master"
                                   : "the Sentinels keep naming different masters");
            sentinels_abort(s, false);
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}

/* Waits until every reachable Sentinel names @want and @want answers ROLE master. */
static void sentinels_wait_master(struct ekv_test_sentinels *s, unsigned short want, uint64_t end,
                                  const char *after)
{
    for (;;) {
        unsigned short port;

        if (sentinels_poll_master(s, &port) > 0 && port == want &&
            is_master(want, ekv_test_sentinels_data_pass(s)))
            return;
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add("%s, the Sentinels did not switch to %u within %d s", after, want,
                     SWITCH_TIMEOUT_MS / 1000);
            sentinels_abort(s, true);
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}

unsigned short ekv_test_sentinels_failover(struct ekv_test_sentinels *s)
{
    uint64_t end = ekv_test_now_ms() + SWITCH_TIMEOUT_MS, sent = 0;
    unsigned short old = ekv_test_sentinels_master_port(s);
    unsigned short want = ekv_test_sentinels_other_node(s, old);
    char last[256] = "no Sentinel answers";

    for (;;) {
        unsigned short port;

        if (sent != 0 && sentinels_poll_master(s, &port) > 0 && port == want &&
            is_master(want, ekv_test_sentinels_data_pass(s)))
            return want;
        /* (again) when no Sentinel took it or the failover it started went nowhere in 6 s:
         * -INPROG and -NOGOODSLAVE are transient right after another switch */
        if (sent == 0 || ekv_test_now_ms() - sent > 6000) {
            for (int i = 0; i < 3; i++) {
                redisReply *r = command(s->sentinel_port[i], ekv_test_sentinels_sentinel_pass(s),
                                        "SENTINEL FAILOVER %s", EKV_TEST_SENTINEL_MASTER);
                bool ok = reply_is(r, "OK");

                if (r != NULL && !ok && r->str != NULL)
                    snprintf(last, sizeof(last), "sentinel %u: %s", s->sentinel_port[i], r->str);
                if (r != NULL)
                    freeReplyObject(r);
                if (ok) {
                    sent = ekv_test_now_ms();
                    break;
                }
            }
        }
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add("SENTINEL FAILOVER from %u to %u: no switch within %d s (%s)", old, want,
                     SWITCH_TIMEOUT_MS / 1000, sent != 0 ? "accepted" : last);
            sentinels_abort(s, true);
        }
        ekv_test_sleep_ms(sent != 0 ? POLL_MS : 100);
    }
}

unsigned short ekv_test_sentinels_kill_master(struct ekv_test_sentinels *s)
{
    unsigned short old = ekv_test_sentinels_master_port(s);
    int i = node_index(s, old);
    unsigned short want = s->node_port[1 - i];

    if (s->node[i] != NULL)
        (void)ekv_test_proc_signal(s->node[i], SIGKILL); /* -1: it had exited already */
    ck_assert_msg(wait_port_closed(old, 2000), "the master on %u still accepts connections", old);
    sentinels_wait_master(s, want, ekv_test_now_ms() + SWITCH_TIMEOUT_MS,
                          "after kill -9 of the master");
    return want;
}

void ekv_test_sentinels_restart_node(struct ekv_test_sentinels *s, unsigned short port)
{
    int i = node_index(s, port);
    unsigned short master;
    uint64_t end;

    ck_assert_msg(!port_open(port), "data node %u is still running", port);
    master = ekv_test_sentinels_master_port(s);
    ck_assert_msg(master != port, "the Sentinels still name %u, which is down, as the master",
                  port);
    ekv_test_proc_free(s->node[i]); /* reaps it (in a forked test: forgets it) */
    s->node[i] = NULL;
    fail_reset();
    if (!data_node_start(s, i, master, true))
        ck_abort_msg("restarting data node %u: %s", port, failbuf);
    end = ekv_test_now_ms() + 10000;
    while (!replica_linked(port, ekv_test_sentinels_data_pass(s), master)) {
        if (ekv_test_now_ms() >= end) {
            fail_add("restarted data node %u never linked to the master %u", port, master);
            fail_add_log("replica", port, s->node[i]);
            sentinels_abort(s, false);
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}

void ekv_test_sentinels_wait_replica(struct ekv_test_sentinels *s, unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;
    unsigned short master = ekv_test_sentinels_master_port(s);
    unsigned short replica = ekv_test_sentinels_other_node(s, master);

    for (;;) {
        bool ok = replica_linked(replica, ekv_test_sentinels_data_pass(s), master);

        for (int i = 0; ok && i < 3; i++)
            if (port_open(s->sentinel_port[i]))
                ok = sentinel_sees(s, i, master, replica, false);
        if (ok)
            return;
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add("%u did not become a replica of %u known to every Sentinel within %u ms",
                     replica, master, timeout_ms);
            sentinels_abort(s, false);
        }
        ekv_test_sleep_ms(50);
    }
}

void ekv_test_sentinels_convert_old_master(struct ekv_test_sentinels *s)
{
    unsigned short master = ekv_test_sentinels_master_port(s);
    unsigned short other = ekv_test_sentinels_other_node(s, master);
    char mport[8];

    snprintf(mport, sizeof(mport), "%u", master);
    expect_ok(other, ekv_test_sentinels_data_pass(s), "REPLICAOF the master", "REPLICAOF %s %s",
              "127.0.0.1", mport);
    ekv_test_sentinels_wait_replica(s, 10000);
}

void ekv_test_sentinels_stop_sentinels(struct ekv_test_sentinels *s)
{
    for (int i = 0; i < 3; i++)
        if (s->sentinel[i] != NULL)
            (void)ekv_test_proc_signal(s->sentinel[i], SIGKILL);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(wait_port_closed(s->sentinel_port[i], 2000),
                      "Sentinel %u still accepts connections", s->sentinel_port[i]);
}

void ekv_test_sentinels_start_sentinels(struct ekv_test_sentinels *s)
{
    const char *sp = ekv_test_sentinels_sentinel_pass(s);
    uint64_t end;

    fail_reset();
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(!port_open(s->sentinel_port[i]), "Sentinel %u is still running",
                      s->sentinel_port[i]);
        ekv_test_proc_free(s->sentinel[i]);
        s->sentinel[i] = NULL;
        if (!sentinel_start(s, i, 0, true))
            ck_abort_msg("restarting Sentinel %u: %s", s->sentinel_port[i], failbuf);
    }
    end = ekv_test_now_ms() + 10000;
    for (int i = 0; i < 3; i++) {
        for (;;) {
            redisReply *m =
                command(s->sentinel_port[i], sp, "SENTINEL master %s", EKV_TEST_SENTINEL_MASTER);
            bool ok =
                field_is(m, "flags", "master") &&
                is_master((unsigned short)field_num(m, "port"), ekv_test_sentinels_data_pass(s));

            if (m != NULL)
                freeReplyObject(m);
            if (ok)
                break;
            if (ekv_test_now_ms() >= end) {
                fail_add("restarted Sentinel %u reports no reachable master", s->sentinel_port[i]);
                sentinels_abort(s, true);
            }
            ekv_test_sleep_ms(50);
        }
    }
}

/* ---------------------------------------------------------------- Redis Cluster */

struct slot_range {
    int start, end;
    unsigned short master;
    unsigned short replicas[EKV_TEST_CLUSTER_NODES];
    size_t nreplicas;
};

static int range_cmp(const void *a, const void *b)
{
    const struct slot_range *x = a, *y = b;

    return x->start - y->start;
}

static int port_cmp(const void *a, const void *b)
{
    return (int)*(const unsigned short *)a - (int)*(const unsigned short *)b;
}

static unsigned short node_port_of(const redisReply *n)
{
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
        n->element[1]->type != REDIS_REPLY_INTEGER)
        return 0;
    return (unsigned short)n->element[1]->integer;
}

/*
 * Reads CLUSTER SLOTS of the node on @port into @ranges (at most @max, sorted by start, replicas
 * sorted). Returns how many, or -1 if the node does not answer with an array.
 */
static int read_slots(unsigned short port, struct slot_range *ranges, int max)
{
    redisReply *r = command(port, NULL, "CLUSTER SLOTS");
    int n = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements && n < max; i++) {
        const redisReply *e = r->element[i];
        struct slot_range *g = &ranges[n];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        g->start = (int)e->element[0]->integer;
        g->end = (int)e->element[1]->integer;
        g->master = node_port_of(e->element[2]);
        g->nreplicas = 0;
        for (size_t j = 3; j < e->elements && g->nreplicas < EKV_TEST_CLUSTER_NODES; j++)
            g->replicas[g->nreplicas++] = node_port_of(e->element[j]);
        qsort(g->replicas, g->nreplicas, sizeof(g->replicas[0]), port_cmp);
        n++;
    }
    freeReplyObject(r);
    qsort(ranges, (size_t)n, sizeof(ranges[0]), range_cmp);
    return n;
}

#define MAX_RANGES 512

/* A node's CLUSTER SLOTS as a canonical string ("START-END MASTER/REPLICA...; ..."), for
 * comparing views. With @complete, also whether the ranges cover every slot, have 3 distinct
 * masters and a replica each. False if the node does not answer. */
static bool cluster_view(unsigned short port, char *out, size_t outlen, bool *complete)
{
    static struct slot_range ranges[MAX_RANGES];
    unsigned short masters[3];
    int n = read_slots(port, ranges, MAX_RANGES), nmasters = 0, next = 0;
    size_t len = 0;
    bool ok = true;

    out[0] = '\0';
    if (n < 0)
        return false;
    for (int i = 0; i < n; i++) {
        const struct slot_range *g = &ranges[i];
        bool known = false;

        if (len < outlen)
            len += (size_t)snprintf(out + len, outlen - len, "%s%d-%d %u", i > 0 ? "; " : "",
                                    g->start, g->end, g->master);
        for (size_t j = 0; j < g->nreplicas && len < outlen; j++)
            len += (size_t)snprintf(out + len, outlen - len, "/%u", g->replicas[j]);
        ok = ok && g->start == next && g->nreplicas >= 1;
        next = g->end + 1;
        for (int k = 0; k < nmasters; k++)
            known = known || masters[k] == g->master;
        if (!known && nmasters < 3)
            masters[nmasters++] = g->master;
        else if (!known)
            ok = false;
    }
    if (complete != NULL)
        *complete = ok && next == EKV_TEST_CLUSTER_SLOTS && nmasters == 3;
    return true;
}

static bool cluster_state_ok(unsigned short port)
{
    redisReply *r = command(port, NULL, "CLUSTER INFO");
    char state[16];

    info_field(r, "cluster_state", state, sizeof(state));
    if (r != NULL)
        freeReplyObject(r);
    return strcmp(state, "ok") == 0;
}

/*
 * Whether every reachable node (at least one) says cluster_state:ok and has the same CLUSTER
 * SLOTS; the common view in @view. With @all, every node must be reachable, the view complete
 * and every replica's link up.
 */
static bool cluster_agrees(struct ekv_test_cluster *c, bool all, char *view, size_t viewlen)
{
    static char v[8192];
    int reached = 0;

    view[0] = '\0';
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char role[16];
        unsigned short master;
        bool complete;

        role_of(c->port[i], NULL, role, sizeof(role), &master, NULL, 0);
        if (role[0] == '\0') {
            if (all)
                return false;
            continue;
        }
        if (!cluster_state_ok(c->port[i]) || !cluster_view(c->port[i], v, sizeof(v), &complete))
            return false;
        if (all && (!complete ||
                    (strcmp(role, "slave") == 0 && !replica_linked(c->port[i], NULL, master))))
            return false;
        if (reached++ == 0)
            snprintf(view, viewlen, "%s", v);
        else if (strcmp(view, v) != 0)
            return false;
    }
    return reached > 0;
}

/* Each node's state and view, for a failure message. */
static void cluster_describe(struct ekv_test_cluster *c)
{
    static char v[8192];

    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char role[16];

        role_of(c->port[i], NULL, role, sizeof(role), NULL, NULL, 0);
        if (role[0] == '\0') {
            fail_add("\nnode %u: down", c->port[i]);
            continue;
        }
        cluster_view(c->port[i], v, sizeof(v), NULL);
        fail_add("\nnode %u: %s, cluster_state %s, CLUSTER SLOTS: %s", c->port[i], role,
                 cluster_state_ok(c->port[i]) ? "ok" : "NOT ok", v);
    }
}

static void cluster_abort(struct ekv_test_cluster *c) __attribute__((noreturn));
static void cluster_abort(struct ekv_test_cluster *c)
{
    cluster_describe(c);
    ck_abort_msg("%s", failbuf);
}

static struct ekv_test_proc *cluster_node_spawn(struct ekv_test_cluster *c, int i)
{
    const char *argv[MAX_ARGS];
    char dir[200], port[8], conf[240];
    size_t n = 0;

    ekv_test_mkdtemp("cluster-node", dir, sizeof(dir));
    snprintf(port, sizeof(port), "%u", c->port[i]);
    snprintf(conf, sizeof(conf), "%s/nodes.conf", dir);
    argv[n++] = redis_bin();
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--cluster-enabled";
    argv[n++] = "yes";
    argv[n++] = "--cluster-config-file";
    argv[n++] = conf;
    argv[n++] = "--cluster-node-timeout";
    argv[n++] = "2000";
    argv[n++] = "--repl-diskless-sync-delay";
    argv[n++] = "0";
    /* CLUSTER SLOTS lists a replica only once its replication offset is not 0, and the offset
     * moves with the master's pings to its replicas: every 10 s by default */
    argv[n++] = "--repl-ping-replica-period";
    argv[n++] = "1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = dir;
    argv[n] = NULL;
    return spawn(argv, dir);
}

static int cluster_index(const struct ekv_test_cluster *c, unsigned short port)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        if (c->port[i] == port)
            return i;
    ck_abort_msg("port %u is not a node of the cluster", port);
}

/* Runs redis-cli --cluster create over the six nodes; false (failbuf says why) if it fails. */
static bool cluster_create(struct ekv_test_cluster *c, const char *cli)
{
    const char *argv[4 + EKV_TEST_CLUSTER_NODES + 4];
    char addrs[EKV_TEST_CLUSTER_NODES][24], dir[200];
    struct ekv_test_proc *p;
    size_t n = 0;
    int status;

    argv[n++] = cli;
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", c->port[i]);
        argv[n++] = addrs[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "1";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    ekv_test_mkdtemp("cluster-create", dir, sizeof(dir));
    p = ekv_test_spawn(cli, argv, dir);
    status = ekv_test_proc_wait(p, 30000);
    if (status != 0) {
        fail_add("redis-cli --cluster create %s (status %d)", status < 0 ? "timed out" : "failed",
                 status);
        fail_add_log("redis-cli", 0, p);
    }
    ekv_test_proc_free(p);
    return status == 0;
}

struct ekv_test_cluster *ekv_test_cluster_start(void)
{
    const char *cli = ekv_test_redis_cli_binary();
    struct ekv_test_cluster *c;
    static char view[8192];
    uint64_t end;
    size_t len;

    redis_bin();
    if (cli == NULL)
        ekv_test_skip_or_fail("redis-cli not found (next to $REDIS_SERVER or on $PATH)");
    c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    fail_reset();
    /* all six start at once (0.2-1 s); a node that lost its port or bus port moves */
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        c->port[i] = ekv_test_free_port_pair();
        c->node[i] = cluster_node_spawn(c, i);
    }
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        int attempt = 0;
        enum up up;

        while ((up = wait_up(c->node[i], c->port[i], NULL, "cluster node")) == UP_CLASH &&
               ++attempt < START_TRIES) {
            c->port[i] = ekv_test_free_port_pair();
            c->node[i] = cluster_node_spawn(c, i);
        }
        if (up != UP_OK) {
            c->node[i] = NULL;
            if (up == UP_CLASH)
                fail_add("a cluster node lost the race for a free port %d times", START_TRIES);
            goto fail;
        }
    }
    if (!cluster_create(c, cli))
        goto fail;
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        redisReply *r = command(c->port[i], NULL, "CLUSTER MYID");

        if (r == NULL || r->type != REDIS_REPLY_STRING) {
            fail_add("CLUSTER MYID on %u failed", c->port[i]);
            if (r != NULL)
                freeReplyObject(r);
            goto fail;
        }
        snprintf(c->id[i], sizeof(c->id[i]), "%s", r->str);
        freeReplyObject(r);
    }
    /* cluster_state:ok comes about 2 s after the create started, the replicas' links 0.1 s
     * later (with repl-diskless-sync-delay 0); then the gossip must settle */
    end = ekv_test_now_ms() + READY_TIMEOUT_MS;
    while (!cluster_agrees(c, true, view, sizeof(view))) {
        if (ekv_test_now_ms() >= end) {
            fail_add("the cluster did not settle within %d s", READY_TIMEOUT_MS / 1000);
            cluster_describe(c);
            goto fail;
        }
        ekv_test_sleep_ms(50);
    }
    len = (size_t)snprintf(c->origin, sizeof(c->origin), "redis-cluster://");
    for (int i = 0; i < 3; i++)
        len += (size_t)snprintf(c->origin + len, sizeof(c->origin) - len, "%s127.0.0.1:%u",
                                i > 0 ? "," : "", c->port[i]);
    return c;
fail:
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        if (c->node[i] != NULL)
            fail_add_log("cluster node", c->port[i], c->node[i]);
    ekv_test_cluster_free(c);
    ck_abort_msg("starting a Redis Cluster: %s", failbuf);
}

void ekv_test_cluster_free(struct ekv_test_cluster *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        ekv_test_proc_free(c->node[i]);
    free(c);
}

/* The port of the first node that answers; fails the test if none does. */
static unsigned short cluster_any(struct ekv_test_cluster *c)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        if (port_open(c->port[i]))
            return c->port[i];
    ck_abort_msg("no cluster node answers");
}

void ekv_test_cluster_slot_map(struct ekv_test_cluster *c, unsigned short port,
                               unsigned short map[EKV_TEST_CLUSTER_SLOTS])
{
    static struct slot_range ranges[MAX_RANGES];
    int n;

    if (port == 0)
        port = cluster_any(c);
    n = read_slots(port, ranges, MAX_RANGES);
    ck_assert_msg(n >= 0, "CLUSTER SLOTS on %u failed", port);
    memset(map, 0, EKV_TEST_CLUSTER_SLOTS * sizeof(map[0]));
    for (int i = 0; i < n; i++)
        for (int slot = ranges[i].start;
             slot <= ranges[i].end && slot >= 0 && slot < EKV_TEST_CLUSTER_SLOTS; slot++)
            map[slot] = ranges[i].master;
}

unsigned short ekv_test_cluster_master_of_slot(struct ekv_test_cluster *c, int slot)
{
    static unsigned short map[EKV_TEST_CLUSTER_SLOTS];

    ck_assert_msg(slot >= 0 && slot < EKV_TEST_CLUSTER_SLOTS, "no slot %d", slot);
    ekv_test_cluster_slot_map(c, 0, map);
    return map[slot];
}

int ekv_test_cluster_keyslot(struct ekv_test_cluster *c, const char *key)
{
    unsigned short port = cluster_any(c);
    redisReply *r = command(port, NULL, "CLUSTER KEYSLOT %s", key);
    int slot = r != NULL && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;

    if (r != NULL)
        freeReplyObject(r);
    ck_assert_msg(slot >= 0, "CLUSTER KEYSLOT %s on %u failed", key, port);
    return slot;
}

unsigned short ekv_test_cluster_replica_of(struct ekv_test_cluster *c, unsigned short master_port)
{
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++) {
        char role[16], state[16];
        unsigned short master;

        role_of(c->port[i], NULL, role, sizeof(role), &master, state, sizeof(state));
        if (strcmp(role, "slave") == 0 && master == master_port && strcmp(state, "connected") == 0)
            return c->port[i];
    }
    return 0;
}

/* Whether a (complete or not) view string has a range whose master is @port. */
static bool view_has_master(const char *view, unsigned short port)
{
    char needle[16];
    size_t n = (size_t)snprintf(needle, sizeof(needle), " %u", port);

    for (const char *s = strstr(view, needle); s != NULL; s = strstr(s + 1, needle))
        if (s[n] == '/' || s[n] == ';' || s[n] == '\0')
            return true;
    return false;
}

unsigned short ekv_test_cluster_failover(struct ekv_test_cluster *c, unsigned short master_port)
{
    static char view[8192];
    unsigned short replica = ekv_test_cluster_replica_of(c, master_port);
    uint64_t start = ekv_test_now_ms(), end = start + 10000;
    bool resent = false;

    ck_assert_msg(replica != 0, "the master on %u has no connected replica", master_port);
    expect_ok(replica, NULL, "CLUSTER FAILOVER", "CLUSTER FAILOVER");
    for (;;) {
        char role[16];
        unsigned short of;

        role_of(master_port, NULL, role, sizeof(role), &of, NULL, 0);
        if (is_master(replica, NULL) && strcmp(role, "slave") == 0 && of == replica &&
            cluster_agrees(c, false, view, sizeof(view)) && !view_has_master(view, master_port) &&
            view_has_master(view, replica))
            return replica;
        /* a manual failover gives up after 5 s (CLUSTER_MF_TIMEOUT): ask once more */
        if (!resent && ekv_test_now_ms() - start > 5500 && !is_master(replica, NULL)) {
            expect_ok(replica, NULL, "CLUSTER FAILOVER", "CLUSTER FAILOVER");
            resent = true;
        }
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add("CLUSTER FAILOVER of %u to its replica %u did not settle within 10 s",
                     master_port, replica);
            cluster_abort(c);
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}

void ekv_test_cluster_kill(struct ekv_test_cluster *c, unsigned short port)
{
    int i = cluster_index(c, port);

    if (c->node[i] != NULL)
        (void)ekv_test_proc_signal(c->node[i], SIGKILL);
    ck_assert_msg(wait_port_closed(port, 2000), "cluster node %u still accepts connections", port);
}

unsigned short ekv_test_cluster_wait_promotion(struct ekv_test_cluster *c, unsigned short dead_port)
{
    static unsigned short map[EKV_TEST_CLUSTER_SLOTS];
    static char view[8192];
    uint64_t end = ekv_test_now_ms() + SWITCH_TIMEOUT_MS;
    int slot = -1;

    /* one of its slots, from a node that has not noticed yet (or has, then the loop returns) */
    ekv_test_cluster_slot_map(c, 0, map);
    for (int i = 0; i < EKV_TEST_CLUSTER_SLOTS && slot < 0; i++)
        if (map[i] == dead_port)
            slot = i;
    ck_assert_msg(slot >= 0, "%u serves no slot: it was not a master", dead_port);
    for (;;) {
        if (cluster_agrees(c, false, view, sizeof(view)) && !view_has_master(view, dead_port)) {
            unsigned short now = ekv_test_cluster_master_of_slot(c, slot);
            if (now != 0)
                return now;
        }
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add("no replica took over the slots of %u within %d s", dead_port,
                     SWITCH_TIMEOUT_MS / 1000);
            cluster_abort(c);
        }
        ekv_test_sleep_ms(50);
    }
}

void ekv_test_cluster_move_slot(struct ekv_test_cluster *c, int slot, unsigned short to_port)
{
    static unsigned short map[EKV_TEST_CLUSTER_SLOTS];
    static char view[8192];
    unsigned short from;
    const char *from_id, *to_id;
    uint64_t end;

    ck_assert_msg(slot >= 0 && slot < EKV_TEST_CLUSTER_SLOTS, "no slot %d", slot);
    ck_assert_msg(is_master(to_port, NULL), "move_slot: %u is not a master", to_port);
    from = ekv_test_cluster_master_of_slot(c, slot);
    ck_assert_msg(from != 0, "slot %d has no master", slot);
    if (from == to_port)
        return;
    from_id = c->id[cluster_index(c, from)];
    to_id = c->id[cluster_index(c, to_port)];
    expect_ok(to_port, NULL, "SETSLOT IMPORTING", "CLUSTER SETSLOT %d IMPORTING %s", slot, from_id);
    expect_ok(from, NULL, "SETSLOT MIGRATING", "CLUSTER SETSLOT %d MIGRATING %s", slot, to_id);
    for (int round = 0;; round++) {
        redisReply *keys = command(from, NULL, "CLUSTER GETKEYSINSLOT %d 100", slot);
        const char *argv[8 + 100];
        size_t lens[8 + 100], n = 0;
        char port[8];
        redisContext *ctx;
        redisReply *r, *err;
        char *s;

        ck_assert_msg(keys != NULL && keys->type == REDIS_REPLY_ARRAY,
                      "CLUSTER GETKEYSINSLOT %d on %u failed", slot, from);
        if (keys->elements == 0) {
            freeReplyObject(keys);
            break;
        }
        ck_assert_msg(round < 1000, "slot %d does not empty", slot);
        snprintf(port, sizeof(port), "%u", to_port);
        argv[n++] = "MIGRATE";
        argv[n++] = "127.0.0.1";
        argv[n++] = port;
        argv[n++] = "";
        argv[n++] = "0";
        argv[n++] = "5000";
        argv[n++] = "KEYS";
        for (size_t i = 0; i < keys->elements && i < 100; i++)
            argv[n++] = keys->element[i]->str;
        for (size_t i = 0; i < n; i++)
            lens[i] = i >= 7 ? keys->element[i - 7]->len : strlen(argv[i]);
        ctx = open_port(from, NULL, &err);
        ck_assert_msg(ctx != NULL, "cannot reach %u for MIGRATE", from);
        r = redisCommandArgv(ctx, (int)n, argv, lens);
        redisFree(ctx);
        freeReplyObject(keys);
        if (reply_is(r, "OK") || reply_is(r, "NOKEY")) {
            freeReplyObject(r);
            continue;
        }
        s = r != NULL ? ekv_test_reply_render(r) : NULL;
        if (r != NULL)
            freeReplyObject(r);
        ck_abort_msg("MIGRATE of slot %d from %u to %u: %s", slot, from, to_port,
                     s != NULL ? s : "(no reply)");
    }
    /* the target first (it bumps its config epoch), then the source, then the other masters */
    expect_ok(to_port, NULL, "SETSLOT NODE", "CLUSTER SETSLOT %d NODE %s", slot, to_id);
    expect_ok(from, NULL, "SETSLOT NODE", "CLUSTER SETSLOT %d NODE %s", slot, to_id);
    for (int i = 0; i < EKV_TEST_CLUSTER_NODES; i++)
        if (c->port[i] != from && c->port[i] != to_port && is_master(c->port[i], NULL))
            expect_ok(c->port[i], NULL, "SETSLOT NODE", "CLUSTER SETSLOT %d NODE %s", slot, to_id);
    end = ekv_test_now_ms() + 10000;
    for (;;) {
        if (cluster_agrees(c, false, view, sizeof(view))) {
            ekv_test_cluster_slot_map(c, 0, map);
            if (map[slot] == to_port)
                return;
        }
        if (ekv_test_now_ms() >= end) {
            fail_reset();
            fail_add("after moving slot %d from %u to %u, the nodes did not agree within 10 s",
                     slot, from, to_port);
            cluster_abort(c);
        }
        ekv_test_sleep_ms(POLL_MS);
    }
}
