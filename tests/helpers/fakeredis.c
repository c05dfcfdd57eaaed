/* fakeredis.c - a scripted fake Redis for deterministic race tests (see fakeredis.h).
 *
 * One thread polls the listening socket, a wake-up pipe and the connections; every change of
 * state (by the test thread or by a command) happens under one mutex, and every socket write
 * happens on the server thread. Each connection has two output queues: "urgent" (early
 * messages) and the ordinary in-order queue, whose head may be held. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "edgekv/origin.h" /* ekv_sha1_hex */

#include "fakeredis.h"
#include "testutil.h"

#define MAX_CONNS 32
#define MAX_KEYS 32
#define MAX_ARGS 64
#define MAX_LOGS 16
#define POLL_MS 50

enum kind { R_PLAIN, R_GET, R_SUB };

struct reply {
    struct reply *next;
    enum kind kind;
    bool held;
    size_t len;
    char data[];
};

struct queue {
    struct reply *head, **tail;
};

struct conn {
    int fd; /* -1: unused */
    unsigned id;
    bool inval;      /* sent CLIENT ID: the invalidation link's connection */
    int log;         /* its index in f->logs, or -1 */
    bool kill;       /* to be closed, sending nothing more */
    bool wants_inv;  /* sent SUBSCRIBE __redis__:invalidate */
    bool confirmed;  /* and its confirmation went out */
    bool hb;         /* subscribed to another channel (the heartbeat) */
    char *in;
    size_t in_len, in_cap;
    struct queue urgent, out;
};

struct item {
    bool used;
    char key[256];
    char *value; /* NULL: absent */
    unsigned long long gen;
    unsigned gets;
    bool pttl_set; /* fakeredis_pttl() */
    long long pttl;
};

struct fakeredis {
    pthread_mutex_t lock;
    pthread_t thread;
    bool running, stop;
    int lfd, wake[2];
    char dir[200], sock[240], origin[260];
    struct conn conns[MAX_CONNS];
    struct item items[MAX_KEYS];
    unsigned hold_gets;
    bool hold_sub;
    char refused[32]; /* fakeredis_refuse(): a command answered with NOPERM, or "" */
    char raw_cmd[32];  /* fakeredis_answer_raw(): the next such command gets raw_resp, or "" */
    char *raw_resp;
    size_t raw_len;
    unsigned next_id;
    struct fakeredis_stats st;
    char *logs[MAX_LOGS];
    size_t log_len[MAX_LOGS];
};

/* ---------------------------------------------------------------- queues */

static void q_init(struct queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
}

static struct reply *q_push(struct queue *q, enum kind kind, bool held, const char *data,
                            size_t len)
{
    struct reply *r = malloc(sizeof(*r) + len);

    if (r == NULL)
        abort();
    r->next = NULL;
    r->kind = kind;
    r->held = held;
    r->len = len;
    memcpy(r->data, data, len);
    *q->tail = r;
    q->tail = &r->next;
    return r;
}

static void q_free(struct queue *q)
{
    while (q->head != NULL) {
        struct reply *r = q->head;
        q->head = r->next;
        free(r);
    }
    q->tail = &q->head;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the peer went away: its close will be seen by poll */
        p += n;
        len -= (size_t)n;
    }
}

/* Sends what is not held, in order. Called with the lock held, on the server thread. */
static void flush(struct fakeredis *f, struct conn *c)
{
    while (c->urgent.head != NULL) {
        struct reply *r = c->urgent.head;
        send_all(c->fd, r->data, r->len);
        c->urgent.head = r->next;
        free(r);
    }
    c->urgent.tail = &c->urgent.head;
    while (c->out.head != NULL && !c->out.head->held) {
        struct reply *r = c->out.head;
        send_all(c->fd, r->data, r->len);
        if (r->kind == R_SUB)
            c->confirmed = true;
        c->out.head = r->next;
        free(r);
    }
    if (c->out.head == NULL)
        c->out.tail = &c->out.head;
    (void)f;
}

/* ---------------------------------------------------------------- RESP */

struct buf {
    char *p;
    size_t len, cap;
};

static void b_add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL)
            abort();
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void b_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void b_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    b_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void b_bulk(struct buf *b, const char *s, size_t len)
{
    b_printf(b, "$%zu\r\n", len);
    b_add(b, s, len);
    b_add(b, "\r\n", 2);
}

/* Parses one multibulk command at the start of c->in. Returns the bytes it took (0: not all
 * there yet, -1: not RESP we understand). @argv points into c->in. */
static long parse_cmd(const struct conn *c, const char **argv, size_t *argl, int *argc)
{
    const char *p = c->in, *end = c->in + c->in_len, *nl;
    long n;

    if (c->in_len == 0)
        return 0;
    if (*p != '*')
        return -1;
    if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
        return 0;
    n = strtol(p + 1, NULL, 10);
    if (n <= 0 || n > MAX_ARGS)
        return -1;
    p = nl + 1;
    for (long i = 0; i < n; i++) {
        long len;
        if (p >= end)
            return 0;
        if (*p != '$')
            return -1;
        if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
            return 0;
        len = strtol(p + 1, NULL, 10);
        if (len < 0)
            return -1;
        p = nl + 1;
        if (end - p < len + 2)
            return 0;
        argv[i] = p;
        argl[i] = (size_t)len;
        p += len + 2;
    }
    *argc = (int)n;
    return p - c->in;
}

static bool arg_is(const char *a, size_t len, const char *s)
{
    return len == strlen(s) && strncasecmp(a, s, len) == 0;
}

static struct item *find_item(struct fakeredis *f, const char *key, size_t len, bool create)
{
    struct item *free_slot = NULL;

    for (int i = 0; i < MAX_KEYS; i++) {
        struct item *it = &f->items[i];
        if (it->used && strlen(it->key) == len && memcmp(it->key, key, len) == 0)
            return it;
        if (!it->used && free_slot == NULL)
            free_slot = it;
    }
    if (!create || free_slot == NULL || len >= sizeof(free_slot->key))
        return NULL;
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->used = true;
    memcpy(free_slot->key, key, len);
    return free_slot;
}

static void log_cmd(struct fakeredis *f, struct conn *c, const char **argv, const size_t *argl,
                    int argc)
{
    struct buf b;

    if (c->log < 0)
        return;
    b.p = f->logs[c->log];
    b.len = b.cap = f->log_len[c->log]; /* b_add() reallocates as needed */
    for (int i = 0; i < argc; i++) {
        if (i > 0)
            b_add(&b, " ", 1);
        b_add(&b, argv[i], argl[i] > 80 ? 80 : argl[i]);
    }
    b_add(&b, "\n", 1);
    f->logs[c->log] = b.p;
    f->log_len[c->log] = b.len;
}

static void unknown(struct fakeredis *f, struct conn *c, const char *name, size_t len)
{
    struct buf b = {0};

    f->st.unknown++;
    snprintf(f->st.last_unknown, sizeof(f->st.last_unknown), "%.*s", (int)(len > 60 ? 60 : len),
             name);
    b_printf(&b, "-ERR fake redis: unsupported '%.*s'\r\n", (int)(len > 60 ? 60 : len), name);
    q_push(&c->out, R_PLAIN, false, b.p, b.len);
    free(b.p);
}

static void reply_str(struct conn *c, const char *s)
{
    q_push(&c->out, R_PLAIN, false, s, strlen(s));
}

static void cmd_client(struct fakeredis *f, struct conn *c, const char **argv,
                       const size_t *argl, int argc)
{
    char tmp[64];

    if (argc >= 2 && arg_is(argv[1], argl[1], "ID")) {
        if (!c->inval && f->st.inval_conns < MAX_LOGS) {
            c->log = (int)f->st.inval_conns;
            f->logs[c->log] = NULL;
            f->log_len[c->log] = 0;
        }
        if (!c->inval)
            f->st.inval_conns++;
        c->inval = true;
        log_cmd(f, c, argv, argl, argc);
        snprintf(tmp, sizeof(tmp), ":%u\r\n", c->id);
        reply_str(c, tmp);
        return;
    }
    if (argc >= 3 && arg_is(argv[1], argl[1], "TRACKING")) {
        log_cmd(f, c, argv, argl, argc);
        if (arg_is(argv[2], argl[2], "ON")) {
            bool named_self = false;
            f->st.tracking_on++;
            for (int i = 3; i + 1 < argc; i++) {
                if (arg_is(argv[i], argl[i], "REDIRECT")) {
                    snprintf(tmp, sizeof(tmp), "%.*s", (int)(argl[i + 1] < 32 ? argl[i + 1] : 32),
                             argv[i + 1]);
                    named_self = strtoul(tmp, NULL, 10) == c->id;
                }
            }
            if (!named_self)
                f->st.redirect_ok = false;
        }
        reply_str(c, "+OK\r\n");
        return;
    }
    unknown(f, c, "CLIENT <subcommand>", 19);
}

static void cmd_subscribe(struct fakeredis *f, struct conn *c, const char **argv,
                          const size_t *argl, int argc)
{
    log_cmd(f, c, argv, argl, argc);
    for (int i = 1; i < argc; i++) {
        bool inv = arg_is(argv[i], argl[i], FAKEREDIS_INVALIDATE_CHANNEL);
        struct buf b = {0};
        bool held;

        if (inv)
            c->wants_inv = true;
        else {
            c->hb = true;
            f->st.heartbeats++;
        }
        b_add(&b, "*3\r\n", 4);
        b_bulk(&b, "subscribe", 9);
        b_bulk(&b, argv[i], argl[i]);
        b_printf(&b, ":%d\r\n", (c->wants_inv ? 1 : 0) + (c->hb ? 1 : 0));
        held = inv && f->hold_sub;
        if (held)
            f->st.sub_pending++;
        q_push(&c->out, inv ? R_SUB : R_PLAIN, held, b.p, b.len);
        free(b.p);
    }
}

static void cmd_script(struct fakeredis *f, struct conn *c, const char **argv,
                       const size_t *argl, int argc)
{
    char sha[41];
    struct buf b = {0};

    if (argc != 3 || !arg_is(argv[1], argl[1], "LOAD")) {
        unknown(f, c, "SCRIPT <subcommand>", 19);
        return;
    }
    ekv_sha1_hex(argv[2], argl[2], sha);
    b_bulk(&b, sha, 40);
    q_push(&c->out, R_PLAIN, false, b.p, b.len);
    free(b.p);
}

/* The commands of edgekv's item read (PTTL, HMGET, EXISTS: src/api/read.c), run over the table
 * of items (fields v, g and t; no metadata; no TTL unless scripted; every store exists). An
 * HMGET is an item read: counted, and held when the test asked for it. */
static void cmd_read(struct fakeredis *f, struct conn *c, const char **argv, const size_t *argl,
                     int argc)
{
    bool hmget = argc >= 3 && arg_is(argv[0], argl[0], "HMGET");
    struct item *it;
    struct buf b = {0};
    bool present, held = false;
    char gen[32];

    if (!hmget && argc != 2) {
        unknown(f, c, argv[0], argl[0]);
        return;
    }
    it = find_item(f, argv[1], argl[1], hmget);
    present = it != NULL && it->value != NULL;
    if (!hmget) {
        if (arg_is(argv[0], argl[0], "PTTL")) {
            b_printf(&b, ":%lld\r\n", it != NULL && it->pttl_set ? it->pttl : present ? -1 : -2);
            q_push(&c->out, R_PLAIN, false, b.p, b.len);
            free(b.p);
        } else { /* an item's hash, or else a store's generation counter: always there */
            reply_str(c, present || it == NULL ? ":1\r\n" : ":0\r\n");
        }
        return;
    }
    f->st.gets++;
    if (it != NULL)
        it->gets++;
    b_printf(&b, "*%d\r\n", argc - 2);
    snprintf(gen, sizeof(gen), "%llu", present ? it->gen : 0);
    for (int k = 2; k < argc; k++) {
        char field = argl[k] == 1 ? argv[k][0] : '?';
        if (present && field == 'v')
            b_bulk(&b, it->value, strlen(it->value));
        else if (present && field == 'g')
            b_bulk(&b, gen, strlen(gen));
        else if (present && field == 't')
            b_bulk(&b, "0", 1);
        else
            b_add(&b, "$-1\r\n", 5);
    }
    if (f->hold_gets > 0) {
        f->hold_gets--;
        f->st.held_gets++;
        held = true;
    }
    q_push(&c->out, R_GET, held, b.p, b.len);
    free(b.p);
}

static void handle(struct fakeredis *f, struct conn *c, const char **argv, const size_t *argl,
                   int argc)
{
    if (argc == 4 && arg_is(argv[0], argl[0], "HMGET") &&
        memmem(argv[1], argl[1], "s:{registry}:", 13) != NULL) {
        /* a store's record, read once per worker for its buckets: every store exists, of one
         * bucket (the layout the tests' Redis keys use) */
        reply_str(c, "*2\r\n$4\r\nfake\r\n$-1\r\n");
    } else if (f->raw_cmd[0] != '\0' && arg_is(argv[0], argl[0], f->raw_cmd)) {
        q_push(&c->out, R_PLAIN, false, f->raw_resp, f->raw_len);
        f->raw_cmd[0] = '\0';
        free(f->raw_resp);
        f->raw_resp = NULL;
    } else if (f->refused[0] != '\0' && arg_is(argv[0], argl[0], f->refused))
        reply_str(c, "-NOPERM this user has no permissions to run this command\r\n");
    else if (arg_is(argv[0], argl[0], "HMGET") || arg_is(argv[0], argl[0], "PTTL") ||
             arg_is(argv[0], argl[0], "EXISTS"))
        cmd_read(f, c, argv, argl, argc);
    else if (arg_is(argv[0], argl[0], "CLIENT"))
        cmd_client(f, c, argv, argl, argc);
    else if (arg_is(argv[0], argl[0], "SUBSCRIBE"))
        cmd_subscribe(f, c, argv, argl, argc);
    else if (arg_is(argv[0], argl[0], "SCRIPT"))
        cmd_script(f, c, argv, argl, argc);
    else if (arg_is(argv[0], argl[0], "PING"))
        reply_str(c, "+PONG\r\n");
    else if (arg_is(argv[0], argl[0], "EVAL")) /* the connection's layout check: nothing to move */
        reply_str(c, "*2\r\n:0\r\n:0\r\n");
    else {
        log_cmd(f, c, argv, argl, argc);
        unknown(f, c, argv[0], argl[0]);
    }
}

/* ---------------------------------------------------------------- connections */

static void conn_close(struct fakeredis *f, struct conn *c)
{
    (void)f;
    close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    q_free(&c->urgent);
    q_free(&c->out);
}

static void on_readable(struct fakeredis *f, struct conn *c)
{
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    int argc;
    long used;
    ssize_t n;

    if (c->in_cap - c->in_len < 4096) {
        c->in_cap = c->in_cap * 2 + 8192;
        c->in = realloc(c->in, c->in_cap);
        if (c->in == NULL)
            abort();
    }
    n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(f, c);
        return;
    }
    c->in_len += (size_t)n;
    while ((used = parse_cmd(c, argv, argl, &argc)) > 0) {
        handle(f, c, argv, argl, argc);
        memmove(c->in, c->in + used, c->in_len - (size_t)used);
        c->in_len -= (size_t)used;
    }
    if (used < 0) {
        reply_str(c, "-ERR fake redis: protocol error\r\n");
        f->st.unknown++;
        snprintf(f->st.last_unknown, sizeof(f->st.last_unknown), "(protocol error)");
        c->in_len = 0;
    }
}

static void on_accept(struct fakeredis *f)
{
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &f->conns[i];
        if (c->fd >= 0)
            continue;
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->id = ++f->next_id;
        c->log = -1;
        q_init(&c->urgent);
        q_init(&c->out);
        f->st.conns++;
        return;
    }
    close(fd); /* too many */
}

static void *serve(void *arg)
{
    struct fakeredis *f = arg;

    for (;;) {
        struct pollfd pfd[MAX_CONNS + 2];
        int idx[MAX_CONNS + 2];
        nfds_t n = 0;

        pthread_mutex_lock(&f->lock);
        if (f->stop) {
            pthread_mutex_unlock(&f->lock);
            return NULL;
        }
        pfd[n++] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++) {
            if (f->conns[i].fd >= 0) {
                idx[n] = i;
                pfd[n++] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
            }
        }
        pthread_mutex_unlock(&f->lock);
        if (poll(pfd, n, POLL_MS) < 0 && errno != EINTR)
            return NULL;
        pthread_mutex_lock(&f->lock);
        if (pfd[0].revents & POLLIN) {
            char drain[64];
            while (read(f->wake[0], drain, sizeof(drain)) > 0)
                ;
        }
        if (pfd[1].revents & POLLIN)
            on_accept(f);
        for (nfds_t i = 2; i < n; i++) {
            struct conn *c = &f->conns[idx[i]];
            if (c->fd == pfd[i].fd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                on_readable(f, c);
        }
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &f->conns[i];
            if (c->fd < 0)
                continue;
            if (c->kill)
                conn_close(f, c);
            else
                flush(f, c);
        }
        pthread_mutex_unlock(&f->lock);
    }
}

static void wake(struct fakeredis *f)
{
    if (write(f->wake[1], "x", 1) < 0)
        (void)0; /* the pipe is full: the thread is awake anyway */
}

/* ---------------------------------------------------------------- API */

struct fakeredis *fakeredis_start(void)
{
    struct fakeredis *f = calloc(1, sizeof(*f));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    ck_assert_ptr_nonnull(f);
    pthread_mutex_init(&f->lock, NULL);
    f->st.redirect_ok = true;
    for (int i = 0; i < MAX_CONNS; i++)
        f->conns[i].fd = -1;
    ekv_test_mkdtemp("fakeredis", f->dir, sizeof(f->dir));
    snprintf(f->sock, sizeof(f->sock), "%s/fake.sock", f->dir);
    snprintf(f->origin, sizeof(f->origin), "unix://%s", f->sock);
    ck_assert_uint_lt(strlen(f->sock), sizeof(sa.sun_path));
    strcpy(sa.sun_path, f->sock);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(f->lfd, 0);
    ck_assert_msg(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", f->sock,
                  strerror(errno));
    ck_assert_int_eq(listen(f->lfd, 64), 0);
    ck_assert_int_eq(pipe2(f->wake, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, serve, f), 0);
    f->running = true;
    return f;
}

void fakeredis_stop(struct fakeredis *f)
{
    if (f == NULL)
        return;
    if (f->running) {
        pthread_mutex_lock(&f->lock);
        f->stop = true;
        pthread_mutex_unlock(&f->lock);
        wake(f);
        pthread_join(f->thread, NULL);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (f->conns[i].fd >= 0)
            conn_close(f, &f->conns[i]);
    for (int i = 0; i < MAX_KEYS; i++)
        free(f->items[i].value);
    for (int i = 0; i < MAX_LOGS; i++)
        free(f->logs[i]);
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    ekv_test_rm_rf(f->dir);
    pthread_mutex_destroy(&f->lock);
    free(f->raw_resp);
    free(f);
}

const char *fakeredis_origin(const struct fakeredis *f)
{
    return f->origin;
}

void fakeredis_pttl(struct fakeredis *f, const char *rkey, long long ms)
{
    struct item *it;

    pthread_mutex_lock(&f->lock);
    it = find_item(f, rkey, strlen(rkey), true);
    if (it != NULL) {
        it->pttl_set = true;
        it->pttl = ms;
    }
    pthread_mutex_unlock(&f->lock);
}

void fakeredis_set(struct fakeredis *f, const char *rkey, const char *value,
                   unsigned long long gen)
{
    struct item *it;

    pthread_mutex_lock(&f->lock);
    it = find_item(f, rkey, strlen(rkey), true);
    if (it != NULL) {
        free(it->value);
        it->value = value != NULL ? strdup(value) : NULL;
        it->gen = gen;
    }
    pthread_mutex_unlock(&f->lock);
    ck_assert_msg(it != NULL, "fake redis: too many keys");
}

void fakeredis_hold_gets(struct fakeredis *f, unsigned n)
{
    pthread_mutex_lock(&f->lock);
    f->hold_gets = n;
    pthread_mutex_unlock(&f->lock);
}

static void release(struct fakeredis *f, enum kind kind)
{
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < MAX_CONNS; i++)
        for (struct reply *r = f->conns[i].fd >= 0 ? f->conns[i].out.head : NULL; r != NULL;
             r = r->next)
            if (r->kind == kind)
                r->held = false;
    if (kind == R_GET)
        f->st.held_gets = 0;
    else
        f->st.sub_pending = 0;
    pthread_mutex_unlock(&f->lock);
    wake(f);
}

void fakeredis_release_gets(struct fakeredis *f)
{
    release(f, R_GET);
}

void fakeredis_refuse(struct fakeredis *f, const char *cmd)
{
    pthread_mutex_lock(&f->lock);
    snprintf(f->refused, sizeof(f->refused), "%s", cmd != NULL ? cmd : "");
    pthread_mutex_unlock(&f->lock);
}

void fakeredis_answer_raw(struct fakeredis *f, const char *cmd, const char *resp, size_t len)
{
    pthread_mutex_lock(&f->lock);
    free(f->raw_resp);
    f->raw_resp = malloc(len + 1);
    ck_assert_ptr_nonnull(f->raw_resp);
    memcpy(f->raw_resp, resp, len);
    f->raw_len = len;
    snprintf(f->raw_cmd, sizeof(f->raw_cmd), "%s", cmd);
    pthread_mutex_unlock(&f->lock);
}

void fakeredis_hold_subscribe(struct fakeredis *f, bool on)
{
    pthread_mutex_lock(&f->lock);
    f->hold_sub = on;
    pthread_mutex_unlock(&f->lock);
}

void fakeredis_release_subscribe(struct fakeredis *f)
{
    release(f, R_SUB);
}

void fakeredis_push_raw(struct fakeredis *f, const char *resp, size_t len, bool early)
{
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &f->conns[i];
        if (c->fd >= 0 && !c->kill && c->wants_inv)
            q_push(early ? &c->urgent : &c->out, R_PLAIN, false, resp, len);
    }
    pthread_mutex_unlock(&f->lock);
    wake(f);
}

void fakeredis_invalidate(struct fakeredis *f, const char *rkey, bool early)
{
    struct buf b = {0};

    b_add(&b, "*3\r\n", 4);
    b_bulk(&b, "message", 7);
    b_bulk(&b, FAKEREDIS_INVALIDATE_CHANNEL, strlen(FAKEREDIS_INVALIDATE_CHANNEL));
    if (rkey != NULL) {
        b_add(&b, "*1\r\n", 4);
        b_bulk(&b, rkey, strlen(rkey));
    } else {
        b_add(&b, "$-1\r\n", 5); /* what Redis 7 sends a RESP2 client on FLUSHALL */
    }
    fakeredis_push_raw(f, b.p, b.len, early);
    free(b.p);
}

unsigned fakeredis_kill_inval(struct fakeredis *f)
{
    unsigned n = 0;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &f->conns[i];
        if (c->fd >= 0 && c->inval && !c->kill) {
            c->kill = true;
            n++;
        }
    }
    pthread_mutex_unlock(&f->lock);
    wake(f);
    return n;
}

void fakeredis_stats(struct fakeredis *f, struct fakeredis_stats *st)
{
    pthread_mutex_lock(&f->lock);
    *st = f->st;
    st->subscribed = 0;
    for (int i = 0; i < MAX_CONNS; i++)
        if (f->conns[i].fd >= 0 && !f->conns[i].kill && f->conns[i].confirmed)
            st->subscribed++;
    pthread_mutex_unlock(&f->lock);
}

unsigned fakeredis_gets(struct fakeredis *f, const char *rkey)
{
    struct item *it;
    unsigned n;

    pthread_mutex_lock(&f->lock);
    it = find_item(f, rkey, strlen(rkey), false);
    n = it != NULL ? it->gets : 0;
    pthread_mutex_unlock(&f->lock);
    return n;
}

char *fakeredis_inval_log(struct fakeredis *f, unsigned n)
{
    char *s = NULL;

    pthread_mutex_lock(&f->lock);
    if (n < MAX_LOGS && n < f->st.inval_conns)
        s = strdup(f->logs[n] != NULL ? f->logs[n] : "");
    pthread_mutex_unlock(&f->lock);
    return s;
}
