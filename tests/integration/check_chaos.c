/* check_chaos.c - the chaos soak (issue 15; README "Chaos soak"). A durable Redis (the README's
 * conf/redis-origin.conf with appendfsync always), two POPs - A strict (stale-if-error 0), B
 * serving stale answers for up to STALE_IF_ERROR_MS - writer and reader threads through both, a
 * foreign writer straight into Redis through item_put.lua (README "Writing items from another
 * program"), and faults all along:
 *  - Redis killed (SIGKILL) and started again on its data every REDIS_KILL_EVERY_MS;
 *  - the invalidation connections killed (CLIENT KILL TYPE pubsub) every PUBSUB_KILL_EVERY_MS;
 *  - Redis frozen (SIGSTOP) for FREEZE_MS every FREEZE_EVERY_MS;
 *  - POP B killed (SIGKILL) mid-write every POP_KILL_EVERY_MS and started again.
 * Checked as it runs, every read against the writes acknowledged before it began:
 *  - no torn value: a body is exactly what one write sent (it names its key and sequence number,
 *    and a filler follows from them), and the generation of an acknowledged write comes with
 *    that write's value;
 *  - no read older than a write acknowledged more than max-staleness (and a grace for a loaded
 *    machine) before it began, on either POP; B's answers marked stale-if-error may be older,
 *    by at most stale-if-error more; A never marks one;
 *  - read-your-writes: a read through the POP that acknowledged a write, right after it, answers
 *    that write or a later one (or fails);
 *  - recovery: after each fault both POPs answer /readyz 200 within RECOVERY_MAX_MS;
 *  - no crash: POP A runs throughout (B dies only when killed).
 * At the end: no acknowledged write lost (Redis and both POPs hold each key's last acknowledged
 * write or a later one), and both POPs exit 0 on SIGTERM. EKV_CHAOS_SECONDS sets the length
 * (default CHAOS_SECONDS; contrib/soak/chaos.sh runs it long); the last line on stderr gives
 * the figures. */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "apic.h"
#include "hc.h"
#include "testutil.h"

#define CHAOS_SECONDS 30         /* default; EKV_CHAOS_SECONDS */
#define NWRITERS 6               /* keys written through the POPs, one thread each */
#define NFOREIGN 2               /* keys the foreign writer writes */
#define NKEYS (NWRITERS + NFOREIGN)
#define NREADERS 4               /* half on each POP */
#define MAX_STALENESS_MS 1000    /* both POPs */
#define STALE_IF_ERROR_MS 3000   /* POP B (A: 0) */
#define GRACE_MS 1000            /* timers and threads of a loaded, shared machine */
#define REDIS_KILL_EVERY_MS 2000
#define PUBSUB_KILL_EVERY_MS 300
#define FREEZE_EVERY_MS 10000
#define FREEZE_MS 3000
#define POP_KILL_EVERY_MS 15000
#define RECOVERY_MAX_MS 15000
#define FILLER_MAX 2048
#define MAX_NOTES 8

struct ack {
    uint64_t at_ms; /* when the write's answer arrived */
    uint64_t gen;
    uint32_t seq;
};

struct key {
    char name[16];
    char path[160];  /* /resources/stores/kv/<sid>/keys/<name> */
    char rkey[3][160]; /* item, index, counter (README "Data layout") */
    pthread_mutex_t lock;
    struct ack *acks; /* in the order of their generations */
    size_t n, cap;
};

struct chaos {
    struct ekv_test_redis *redis;
    struct ekv_test_proc *pop[2];
    _Atomic unsigned short port[2];
    atomic_bool stop;
    char sid[32];
    char *script; /* item_put.lua */
    struct key keys[NKEYS];
    atomic_uint acked, write_failures, reads, read_failures, stale, ryw;
    atomic_uint redis_kills, freezes, pubsub_kills, pop_kills;
    atomic_ullong recovery_max_ms;
    pthread_mutex_t vlock;
    unsigned violations;
    char notes[MAX_NOTES][320];
};

static const char *const pop_args[2][13] = {
    {"--threads", "2", "--max-staleness", "1s", "--stale-if-error", "0", "--origin-timeout",
     "1s", NULL},
    {"--threads", "2", "--max-staleness", "1s", "--stale-if-error", "3s", "--origin-timeout",
     "1s", NULL},
};

static uint64_t now_ms(void)
{
    return ekv_test_now_ms();
}

static unsigned env_unsigned(const char *name, unsigned dflt)
{
    const char *v = getenv(name);

    return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static void violation(struct chaos *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violation(struct chaos *c, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->vlock);
    if (c->violations < MAX_NOTES) {
        va_start(ap, fmt);
        vsnprintf(c->notes[c->violations], sizeof(c->notes[0]), fmt, ap);
        va_end(ap);
    }
    c->violations++;
    pthread_mutex_unlock(&c->vlock);
}

/* ---------------------------------------------------------------- values */

/* The value write @seq of key @k sends: "K<k>|<seq>|" and a filler that follows from both. */
static size_t make_value(char *out, unsigned k, uint32_t seq)
{
    size_t n = (size_t)sprintf(out, "K%u|%u|", k, seq);
    size_t fill = (seq * 131u + k * 17u) % FILLER_MAX;

    for (size_t i = 0; i < fill; i++)
        out[n + i] = (char)('a' + (seq + i + k) % 26);
    return n + fill;
}

/* Whether @body is exactly a value of key @k: its sequence number in *@seq. */
static bool value_ok(const char *body, size_t len, unsigned k, uint32_t *seq)
{
    char want[64 + FILLER_MAX];
    unsigned kk;
    size_t n;

    if (len == 0 || len >= sizeof(want) || sscanf(body, "K%u|%u|", &kk, seq) != 2 || kk != k)
        return false;
    n = make_value(want, k, *seq);
    return n == len && memcmp(want, body, len) == 0;
}

/* ---------------------------------------------------------------- acknowledged writes */

static void ack_add(struct key *key, uint64_t gen, uint32_t seq)
{
    pthread_mutex_lock(&key->lock);
    if (key->n == key->cap) {
        key->cap = key->cap != 0 ? key->cap * 2 : 1024;
        key->acks = realloc(key->acks, key->cap * sizeof(*key->acks));
        if (key->acks == NULL)
            abort();
    }
    key->acks[key->n++] = (struct ack){now_ms(), gen, seq};
    pthread_mutex_unlock(&key->lock);
}

/* The generation of the last write of @key acknowledged at or before @t (0: none); and, when
 * @gen is one an acknowledged write got, its sequence number in *@seq_of_gen (else -1). */
static uint64_t acked_before(struct key *key, uint64_t t, uint64_t gen, int64_t *seq_of_gen)
{
    uint64_t need = 0;
    long lo, hi;

    pthread_mutex_lock(&key->lock);
    lo = 0, hi = (long)key->n - 1;
    while (lo <= hi) { /* acks are in time order too: one writer per key */
        long mid = lo + (hi - lo) / 2;
        if (key->acks[mid].at_ms <= t) {
            need = key->acks[mid].gen;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    *seq_of_gen = -1;
    lo = 0, hi = (long)key->n - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (key->acks[mid].gen == gen) {
            *seq_of_gen = key->acks[mid].seq;
            break;
        }
        if (key->acks[mid].gen < gen)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    pthread_mutex_unlock(&key->lock);
    return need;
}

static uint64_t last_acked(struct key *key, uint32_t *seq)
{
    uint64_t gen = 0;

    pthread_mutex_lock(&key->lock);
    if (key->n > 0) {
        gen = key->acks[key->n - 1].gen;
        *seq = key->acks[key->n - 1].seq;
    }
    pthread_mutex_unlock(&key->lock);
    return gen;
}

/* ---------------------------------------------------------------- HTTP */

struct answer {
    int status; /* -1: no valid response */
    uint64_t gen;
    bool stale;
    char *body; /* malloc'd, NUL-terminated */
    size_t len;
    char cs[96];
};

static void request(struct ekv_hc *h, const char *method, const char *path, const char *hdrs,
                    const char *body, size_t len, struct answer *a)
{
    size_t cap = strlen(path) + 256 + len;
    char *req = malloc(cap);
    struct ekv_test_resp r = {0};
    size_t n;
    const char *v;

    memset(a, 0, sizeof(*a));
    a->status = -1;
    n = (size_t)snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n",
                         method, path, hdrs != NULL ? hdrs : "", len);
    memcpy(req + n, body, len);
    if (ekv_hc_do(h, req, n + len, 0, &r) == 0) {
        a->status = r.status;
        a->body = malloc(r.body_len + 1);
        memcpy(a->body, r.body != NULL ? r.body : "", r.body_len);
        a->body[r.body_len] = '\0';
        a->len = r.body_len;
        if ((v = ekv_test_resp_header(&r, "Generation")) != NULL)
            a->gen = strtoull(v, NULL, 10);
        if ((v = ekv_test_resp_header(&r, "Cache-Status")) != NULL) {
            snprintf(a->cs, sizeof(a->cs), "%s", v);
            a->stale = strstr(v, "stale-if-error") != NULL;
        }
        ekv_test_resp_free(&r);
    }
    free(req);
}

static void answer_free(struct answer *a)
{
    free(a->body);
    a->body = NULL;
}

/* A read of key @k through POP @pop that began at @t0: checked against what was acknowledged. */
static void check_read(struct chaos *c, unsigned k, int pop, uint64_t t0, const struct answer *a)
{
    struct key *key = &c->keys[k];
    uint64_t bound = MAX_STALENESS_MS + GRACE_MS, need;
    int64_t seq_of_gen;
    uint32_t seq;

    atomic_fetch_add(&c->reads, 1);
    switch (a->status) {
    case 200:
        if (!value_ok(a->body, a->len, k, &seq)) {
            violation(c, "POP %c, key %s: a torn or foreign value (%zu bytes: %.40s)", 'A' + pop,
                      key->name, a->len, a->body);
            return;
        }
        if (a->stale) {
            atomic_fetch_add(&c->stale, 1);
            if (pop == 0)
                violation(c, "POP A (stale-if-error 0) answered stale: %s", a->cs);
            bound += STALE_IF_ERROR_MS;
        }
        need = acked_before(key, t0 > bound ? t0 - bound : 0, a->gen, &seq_of_gen);
        if (a->gen < need)
            violation(c, "POP %c, key %s: generation %llu (%s) at +%llu ms, but %llu was "
                      "acknowledged more than %llu ms before", 'A' + pop, key->name,
                      (unsigned long long)a->gen, a->cs, (unsigned long long)t0,
                      (unsigned long long)need, (unsigned long long)bound);
        if (seq_of_gen >= 0 && (uint32_t)seq_of_gen != seq)
            violation(c, "POP %c, key %s: generation %llu with write %u's value, acknowledged "
                      "for write %lld", 'A' + pop, key->name, (unsigned long long)a->gen, seq,
                      (long long)seq_of_gen);
        break;
    case 404:
        need = acked_before(key, t0 > bound ? t0 - bound : 0, 0, &seq_of_gen);
        if (need > 0)
            violation(c, "POP %c, key %s: 404 (%s), but generation %llu was acknowledged",
                      'A' + pop, key->name, a->cs, (unsigned long long)need);
        break;
    case -1:  /* POP B down, or the connection cut */
    case 502: /* Redis answered an error (still loading its AOF) */
    case 503: /* Redis unreachable, frozen or timing out */
        atomic_fetch_add(&c->read_failures, 1);
        break;
    default:
        violation(c, "POP %c, key %s: status %d (%.80s)", 'A' + pop, key->name, a->status,
                  a->body);
    }
}

/* ---------------------------------------------------------------- the threads */

struct targ {
    struct chaos *c;
    unsigned i;
};

static void *writer(void *arg)
{
    struct targ *t = arg;
    struct chaos *c = t->c;
    struct key *key = &c->keys[t->i];
    struct ekv_hc h[2] = {{0, NULL, &c->port[0]}, {0, NULL, &c->port[1]}};
    char *val = malloc(64 + FILLER_MAX);
    unsigned rng = t->i * 7919u + 1;

    for (uint32_t seq = 1; !atomic_load(&c->stop); seq++) {
        int pop = (int)(seq & 1);
        size_t len = make_value(val, t->i, seq);
        struct answer a, r;
        uint64_t t0;

        request(&h[pop], "PUT", key->path, NULL, val, len, &a);
        if (a.status != 200 || a.gen == 0) {
            atomic_fetch_add(&c->write_failures, 1);
            if (a.status != -1 && a.status != 503 && a.status != 502 && a.status != 200)
                violation(c, "PUT %s through POP %c: status %d (%.80s)", key->name, 'A' + pop,
                          a.status, a.body);
            answer_free(&a);
            usleep(5000);
            continue;
        }
        ack_add(key, a.gen, seq);
        atomic_fetch_add(&c->acked, 1);
        answer_free(&a);
        /* read-your-writes, through the same POP */
        t0 = now_ms();
        request(&h[pop], "GET", key->path, NULL, "", 0, &r);
        if (r.status == 200) {
            atomic_fetch_add(&c->ryw, 1);
            if (r.gen < a.gen || r.stale)
                violation(c, "POP %c, key %s: wrote generation %llu, then read %llu (%s)",
                          'A' + pop, key->name, (unsigned long long)a.gen,
                          (unsigned long long)r.gen, r.cs);
        }
        check_read(c, t->i, pop, t0, &r);
        answer_free(&r);
        rng = rng * 1103515245u + 12345u;
        if ((rng >> 16) % 4 == 0)
            usleep((rng >> 8) % 3000);
    }
    ekv_hc_close(&h[0]);
    ekv_hc_close(&h[1]);
    free(val);
    return NULL;
}

static void *reader(void *arg)
{
    struct targ *t = arg;
    struct chaos *c = t->c;
    int pop = (int)(t->i % 2);
    struct ekv_hc h = {0, NULL, &c->port[pop]};
    unsigned rng = t->i * 104729u + 3;

    while (!atomic_load(&c->stop)) {
        struct answer a;
        unsigned k;
        uint64_t t0;

        rng = rng * 1103515245u + 12345u;
        k = (rng >> 16) % NKEYS;
        t0 = now_ms();
        request(&h, "GET", c->keys[k].path, NULL, "", 0, &a);
        check_read(c, k, pop, t0, &a);
        answer_free(&a);
        if (a.status == -1)
            usleep(20000); /* POP B is starting again */
    }
    ekv_hc_close(&h);
    return NULL;
}

static redisContext *redis_connect(struct chaos *c)
{
    struct timeval tv = {1, 0};
    redisContext *rc = redisConnectUnixWithTimeout(c->redis->sock, tv);

    if (rc == NULL || rc->err != 0) {
        if (rc != NULL)
            redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, (struct timeval){2, 0});
    return rc;
}

/* The foreign writer: item_put.lua straight into Redis, for the last NFOREIGN keys. */
static void *foreign(void *arg)
{
    struct targ *t = arg;
    struct chaos *c = t->c;
    char *val = malloc(64 + FILLER_MAX);
    redisContext *rc = NULL;

    for (uint32_t seq = 1; !atomic_load(&c->stop); seq++) {
        unsigned k = NWRITERS + seq % NFOREIGN;
        struct key *key = &c->keys[k];
        size_t len = make_value(val, k, seq);
        redisReply *r;

        if (rc == NULL && (rc = redis_connect(c)) == NULL) {
            usleep(20000);
            continue;
        }
        r = redisCommand(rc, "EVAL %s 3 %s %s %s %s %b %s %s set %s %s", c->script,
                         key->rkey[0], key->rkey[1], key->rkey[2], key->name, val, len, "", "0",
                         "", "26214400");
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 0) {
            ack_add(key, (uint64_t)r->element[1]->integer, seq);
            atomic_fetch_add(&c->acked, 1);
        } else {
            atomic_fetch_add(&c->write_failures, 1);
        }
        if (r != NULL)
            freeReplyObject(r);
        if (rc->err != 0) {
            redisFree(rc);
            rc = NULL;
        }
        usleep(2000);
    }
    if (rc != NULL)
        redisFree(rc);
    free(val);
    return NULL;
}

/* Polls both POPs until /readyz answers 200: how long it took, or RECOVERY_MAX_MS + 1. */
static uint64_t recover(struct chaos *c, const char *after)
{
    uint64_t t0 = now_ms(), took;

    for (int p = 0; p < 2; p++)
        while (ekv_test_get_status(atomic_load(&c->port[p]), "/readyz") != 200) {
            if (now_ms() - t0 > RECOVERY_MAX_MS) {
                violation(c, "POP %c not ready %d ms after %s", 'A' + p, RECOVERY_MAX_MS, after);
                return RECOVERY_MAX_MS + 1;
            }
            usleep(20000);
        }
    took = now_ms() - t0;
    if (took > atomic_load(&c->recovery_max_ms))
        atomic_store(&c->recovery_max_ms, took);
    return took;
}

static void kill_pubsub(struct chaos *c)
{
    redisContext *rc = redis_connect(c);
    redisReply *r = rc != NULL ? redisCommand(rc, "CLIENT KILL TYPE pubsub") : NULL;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        atomic_fetch_add(&c->pubsub_kills, 1);
    if (r != NULL)
        freeReplyObject(r);
    if (rc != NULL)
        redisFree(rc);
}

/* The faults, on their clocks, until the end. */
static void *chaos_thread(void *arg)
{
    struct chaos *c = arg;
    uint64_t t0 = now_ms(), next_kill = t0 + REDIS_KILL_EVERY_MS,
             next_freeze = t0 + FREEZE_EVERY_MS / 2, next_pop = t0 + POP_KILL_EVERY_MS / 2;

    while (!atomic_load(&c->stop)) {
        uint64_t now;

        usleep(PUBSUB_KILL_EVERY_MS * 1000);
        if (atomic_load(&c->stop))
            break;
        kill_pubsub(c);
        if (!ekv_test_proc_alive(c->pop[0]))
            violation(c, "POP A died (status %d)", c->pop[0]->status);
        now = now_ms();
        if (now >= next_freeze) {
            (void)ekv_test_proc_signal(c->redis->proc, SIGSTOP);
            usleep(FREEZE_MS * 1000);
            (void)ekv_test_proc_signal(c->redis->proc, SIGCONT);
            atomic_fetch_add(&c->freezes, 1);
            recover(c, "a freeze");
            next_freeze = now_ms() + FREEZE_EVERY_MS;
        } else if (now >= next_kill) {
            if (!ekv_test_redis_crash(c->redis))
                violation(c, "redis-server did not start again on its data");
            atomic_fetch_add(&c->redis_kills, 1);
            recover(c, "a Redis restart");
            next_kill = now_ms() + REDIS_KILL_EVERY_MS;
        } else if (now >= next_pop) {
            const char *args[16] = {"--origin", c->redis->origin};
            size_t n = 2;

            for (size_t i = 0; pop_args[1][i] != NULL; i++)
                args[n++] = pop_args[1][i];
            args[n] = NULL;
            (void)ekv_test_proc_signal(c->pop[1], SIGKILL);
            (void)ekv_test_proc_wait(c->pop[1], 5000);
            ekv_test_proc_free(c->pop[1]);
            c->pop[1] = ekv_test_edgekv_startv(args);
            atomic_store(&c->port[1], c->pop[1]->port);
            atomic_fetch_add(&c->pop_kills, 1);
            recover(c, "POP B's restart");
            next_pop = now_ms() + POP_KILL_EVERY_MS;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- the soak */

static struct ekv_test_proc *start_pop(struct chaos *c, int i)
{
    const char *args[16] = {"--origin", c->redis->origin};
    size_t n = 2;
    struct ekv_test_proc *p;
    uint64_t end = now_ms() + 10000;

    for (size_t j = 0; pop_args[i][j] != NULL; j++)
        args[n++] = pop_args[i][j];
    args[n] = NULL;
    p = ekv_test_edgekv_startv(args);
    while (ekv_test_get_status(p->port, "/readyz") != 200) {
        ck_assert_msg(now_ms() < end, "POP %c never became ready", 'A' + i);
        ekv_test_sleep_ms(20);
    }
    return p;
}

/* The final word on key @k: Redis and both POPs hold its last acknowledged write or a later
 * one (read with no-cache through the POPs, retried while they recover). */
static void check_final(struct chaos *c, unsigned k)
{
    struct key *key = &c->keys[k];
    uint32_t seq = 0;
    uint64_t gen = last_acked(key, &seq);
    char *v = ekv_test_redis_cmd(c->redis, "HGET %s g", key->rkey[0]);

    ck_assert_msg(strtoull(v, NULL, 10) >= gen,
                  "key %s: Redis holds generation %s, but %llu (write %u) was acknowledged",
                  key->name, v, (unsigned long long)gen, seq);
    free(v);
    for (int p = 0; p < 2; p++) {
        struct ekv_hc h = {atomic_load(&c->port[p]), NULL, NULL};
        uint64_t end = now_ms() + RECOVERY_MAX_MS;
        struct answer a;

        for (;;) {
            request(&h, "GET", key->path, "Cache-Control: no-cache\r\n", "", 0, &a);
            if (a.status == 200 || now_ms() > end)
                break;
            answer_free(&a);
            ekv_test_sleep_ms(50);
        }
        ck_assert_msg(a.status == 200 && a.gen >= gen && value_ok(a.body, a.len, k, &seq),
                      "key %s through POP %c: %d generation %llu, but %llu was acknowledged",
                      key->name, 'A' + p, a.status, (unsigned long long)a.gen,
                      (unsigned long long)gen);
        answer_free(&a);
        ekv_hc_close(&h);
    }
}

static void stop_pop(struct ekv_test_proc *p, char name)
{
    int status;

    ck_assert_int_eq(ekv_test_proc_signal(p, SIGTERM), 0);
    status = ekv_test_proc_wait(p, 15000);
    if (status != 0) {
        char *log = ekv_test_proc_log(p);
        ck_abort_msg("POP %c exited with status %d on SIGTERM:\n%s", name, status, log);
    }
    ekv_test_proc_free(p);
}

START_TEST(test_chaos)
{
    unsigned secs = env_unsigned("EKV_CHAOS_SECONDS", CHAOS_SECONDS);
    struct chaos *c = calloc(1, sizeof(*c));
    pthread_t wt[NWRITERS], rt[NREADERS], ft, ct;
    struct targ wa[NWRITERS], ra[NREADERS], fa = {c, 0};
    const char *src = getenv("EKV_SRCDIR");
    char file[512];
    uint64_t t_end;

    ck_assert_ptr_nonnull(c);
    pthread_mutex_init(&c->vlock, NULL);
    snprintf(file, sizeof(file), "%s/src/keyspace/lua/item_put.lua", src != NULL ? src : ".");
    c->script = ekv_test_read_file(file, NULL);
    ck_assert_msg(c->script != NULL, "cannot read %s (set EKV_SRCDIR)", file);
    c->redis = ekv_test_redis_start_durable();
    for (int p = 0; p < 2; p++) {
        c->pop[p] = start_pop(c, p);
        atomic_store(&c->port[p], c->pop[p]->port);
    }
    apic_create_store(c->pop[0]->port, NULL, "chaos", c->sid);
    for (unsigned k = 0; k < NKEYS; k++) {
        struct key *key = &c->keys[k];
        char tag[64];

        snprintf(key->name, sizeof(key->name), k < NWRITERS ? "key-%u" : "foreign-%u", k);
        snprintf(key->path, sizeof(key->path), "/resources/stores/kv/%s/keys/%s", c->sid,
                 key->name);
        ekv_test_tag(tag, sizeof(tag), c->sid, key->name, EKV_TEST_SHARDS);
        snprintf(key->rkey[0], sizeof(key->rkey[0]), "edgekv:i:{%s}:%s", tag, key->name);
        snprintf(key->rkey[1], sizeof(key->rkey[1]), "edgekv:x:{%s}", tag);
        snprintf(key->rkey[2], sizeof(key->rkey[2]), "edgekv:g:{%s}", tag);
        pthread_mutex_init(&key->lock, NULL);
    }

    for (unsigned i = 0; i < NWRITERS; i++) {
        wa[i] = (struct targ){c, i};
        ck_assert_int_eq(pthread_create(&wt[i], NULL, writer, &wa[i]), 0);
    }
    for (unsigned i = 0; i < NREADERS; i++) {
        ra[i] = (struct targ){c, i};
        ck_assert_int_eq(pthread_create(&rt[i], NULL, reader, &ra[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&ft, NULL, foreign, &fa), 0);
    ck_assert_int_eq(pthread_create(&ct, NULL, chaos_thread, c), 0);
    t_end = now_ms() + (uint64_t)secs * 1000;
    while (now_ms() < t_end)
        ekv_test_sleep_ms(100);
    atomic_store(&c->stop, true);
    pthread_join(ct, NULL);
    for (unsigned i = 0; i < NWRITERS; i++)
        pthread_join(wt[i], NULL);
    for (unsigned i = 0; i < NREADERS; i++)
        pthread_join(rt[i], NULL);
    pthread_join(ft, NULL);

    /* the calm after: every acknowledged write is there */
    (void)ekv_test_proc_signal(c->redis->proc, SIGCONT);
    ck_assert(ekv_test_proc_alive(c->pop[0]));
    ck_assert_uint_le(recover(c, "the end"), RECOVERY_MAX_MS);
    for (unsigned k = 0; k < NKEYS; k++)
        check_final(c, k);

    fprintf(stderr,
            "chaos: %u s; %u writes acknowledged (%u failed), %u reads (%u failed, %u stale, %u "
            "read-your-writes checked); faults: %u Redis kills, %u freezes, %u pubsub kills, %u "
            "POP kills; max recovery %llu ms; %u violations\n",
            secs, atomic_load(&c->acked), atomic_load(&c->write_failures), atomic_load(&c->reads),
            atomic_load(&c->read_failures), atomic_load(&c->stale), atomic_load(&c->ryw),
            atomic_load(&c->redis_kills), atomic_load(&c->freezes), atomic_load(&c->pubsub_kills),
            atomic_load(&c->pop_kills), (unsigned long long)atomic_load(&c->recovery_max_ms),
            c->violations);
    for (unsigned i = 0; i < c->violations && i < MAX_NOTES; i++)
        fprintf(stderr, "  %s\n", c->notes[i]);
    ck_assert_msg(c->violations == 0, "%u violations, the first: %s", c->violations,
                  c->notes[0]);
    /* the soak did what it says */
    ck_assert_uint_gt(atomic_load(&c->acked), 100);
    ck_assert_uint_gt(atomic_load(&c->ryw), 20);
    ck_assert_uint_gt(atomic_load(&c->reads) - atomic_load(&c->read_failures), 200);
    ck_assert_uint_ge(atomic_load(&c->redis_kills), 1);
    ck_assert_uint_ge(atomic_load(&c->pubsub_kills), 1);
    if (secs >= 10)
        ck_assert_uint_ge(atomic_load(&c->freezes), 1);
    if (secs >= 20)
        ck_assert_uint_ge(atomic_load(&c->pop_kills), 1);

    stop_pop(c->pop[0], 'A');
    stop_pop(c->pop[1], 'B');
    ekv_test_redis_stop(c->redis);
    for (unsigned k = 0; k < NKEYS; k++)
        free(c->keys[k].acks);
    free(c->script);
    free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("chaos");
    unsigned secs = env_unsigned("EKV_CHAOS_SECONDS", CHAOS_SECONDS);

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    ekv_test_edgekv_bin();
    tcase_set_timeout(tc, (double)secs + 120);
    tcase_add_test(tc, test_chaos);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
