/* check_sentinel.c - edgekv over a real Sentinel set (a master, a replica, three Sentinels; the
 * data nodes and the Sentinels both ask for a password), one set for the suite: the API and the
 * cache through the master the Sentinels name; ROLE checked before a node is used (a scripted
 * Sentinel that names the replica); Sentinel AUTH; the Sentinels down and back while the master
 * keeps serving; SENTINEL FAILOVER under write load: the POP follows the switch, and once it has,
 * not one more command reaches the old master, which still accepts writes (the split-brain
 * window); a master killed after a write its replica never got: the new master does not hold it,
 * and no POP serves it.
 *
 * The tests share the set and run in order without forking (each leaves a master with a linked
 * replica, or is the last), since Sentinels restarted inside a forked test would die with it. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>

#include "apic.h"
#include "testutil.h"
#include "topology.h"

#define DATA_PW "data-secret"
#define SENTINEL_PW "sentinel-secret"

static struct ekv_test_sentinels *set;

static void start_set(void)
{
    const struct ekv_test_sentinel_opts o = {.data_password = DATA_PW,
                                             .sentinel_password = SENTINEL_PW};

    set = ekv_test_sentinels_start(&o);
}

static void stop_set(void)
{
    ekv_test_sentinels_free(set);
    set = NULL;
}

static void teardown(void)
{
    ekv_test_kill_strays();
}

/* A POP over the set (or over @origin when not NULL), with the Sentinels' password unless
 * @no_sentinel_pw. */
static struct ekv_test_proc *start_pop(const char *origin, bool no_sentinel_pw)
{
    const char *args[] = {"--origin", origin != NULL ? origin : set->origin,
                          "--origin-timeout", "500ms",
                          no_sentinel_pw ? NULL : "--sentinel-password", SENTINEL_PW, NULL};

    return ekv_test_edgekv_startv(args);
}

/* SIGTERM: a clean exit (under the sanitizers: no leak, no error on the way out). */
static void stop_pop(struct ekv_test_proc *p)
{
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(ekv_test_proc_wait(p, 10000), 0);
    ekv_test_proc_free(p);
}

/* /readyz's JSON (a new reference) and status. */
static json_t *readyz(unsigned short port, int *status)
{
    struct ekv_test_resp r = {0};
    json_t *j;

    *status = apic_req(port, "GET", "/readyz", NULL, NULL, 0, &r);
    j = apic_json(&r);
    ekv_test_resp_free(&r);
    return j;
}

/* Waits until /readyz is 200 and names 127.0.0.1:@master (0: any) as the master in use. */
static bool ready_on(unsigned short port, unsigned short master, unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;
    char want[32];

    snprintf(want, sizeof(want), "127.0.0.1:%u", master);
    do {
        int st;
        json_t *j = readyz(port, &st);
        const char *m = json_string_value(json_object_get(json_object_get(j, "sentinel"), "master"));
        bool ok = st == 200 && m != NULL && (master == 0 || strcmp(m, want) == 0);
        json_decref(j);
        if (ok)
            return true;
        ekv_test_sleep_ms(50);
    } while (ekv_test_now_ms() < end);
    return false;
}

/* The calls of command @cmd ("evalsha", "script", "client|tracking") a data node has run. */
static long calls(unsigned short node, const char *cmd)
{
    char *info = ekv_test_cmd_port_or_fail(node, DATA_PW, "INFO commandstats");
    char needle[64];
    const char *p;
    long n;

    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    p = strstr(info, needle);
    n = p != NULL ? strtol(p + strlen(needle), NULL, 10) : 0;
    free(info);
    return n;
}

/* Every edgekv write is a script. */
static long evalsha_calls(unsigned short node)
{
    return calls(node, "evalsha");
}

/* The value field of item @key of store @sid, read on the data node @node ("(nil)": none). */
static char *node_value(unsigned short node, const char *sid, const char *key)
{
    char tag[64];

    return ekv_test_cmd_port_or_fail(node, DATA_PW, "HGET edgekv:i:{%s}:%s v",
                                     ekv_test_tag(tag, sizeof(tag), sid, key, EKV_TEST_SHARDS),
                                     key);
}

/* GET @path answers @want; with @hit, one of the next few GETs is a hit (the write's own
 * invalidation may still evict the first fill: a miss, never a wrong value). */
static void assert_get(unsigned short port, const char *path, const char *want, bool hit)
{
    for (int i = 0; i < (hit ? 5 : 1); i++) {
        struct ekv_test_resp r = {0};
        const char *cs;
        bool was_hit;

        ck_assert_int_eq(apic_req(port, "GET", path, NULL, NULL, 0, &r), 200);
        ck_assert_msg(strcmp(r.body, want) == 0, "GET %s: \"%s\", want \"%s\"", path, r.body,
                      want);
        cs = ekv_test_resp_header(&r, "Cache-Status");
        was_hit = cs != NULL && strstr(cs, "; hit") != NULL;
        ekv_test_resp_free(&r);
        if (!hit || was_hit)
            return;
        ekv_test_sleep_ms(20);
    }
    ck_abort_msg("GET %s: never a hit", path);
}

/* ---------------------------------------------------------------- the API over Sentinel */

START_TEST(test_api_over_sentinel)
{
    struct ekv_test_proc *p = start_pop(NULL, false);
    unsigned short master = ekv_test_sentinels_master_port(set);
    unsigned short replica = ekv_test_sentinels_other_node(set, master);
    char sid[64], path[256];
    json_t *j;
    int st;

    ck_assert_msg(ready_on(p->port, master, 8000), "/readyz never named the master");
    j = readyz(p->port, &st);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "sentinel"),
                                                        "sentinels")), 3);
    json_decref(j);
    apic_create_store(p->port, NULL, "over-sentinel", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "v1"), 200);
    assert_get(p->port, path, "v1", false);
    assert_get(p->port, path, "v1", true);
    /* written on the master, which its replica follows */
    char *v = node_value(master, sid, "k");
    ck_assert_str_eq(v, "v1");
    free(v);
    for (int i = 0; i < 100; i++) {
        v = node_value(replica, sid, "k");
        bool there = strcmp(v, "v1") == 0;
        free(v);
        if (there)
            break;
        ck_assert_msg(i < 99, "the replica never got the write");
        ekv_test_sleep_ms(20);
    }
    /* a foreign write on the master reaches the cache through the invalidation link */
    {
        char tag[64];
        v = ekv_test_cmd_port_or_fail(master, DATA_PW, "HSET edgekv:i:{%s}:k v v2",
                                      ekv_test_tag(tag, sizeof(tag), sid, "k", EKV_TEST_SHARDS));
    }
    free(v);
    for (int i = 0;; i++) {
        struct ekv_test_resp r = {0};
        ck_assert_int_eq(apic_req(p->port, "GET", path, NULL, NULL, 0, &r), 200);
        bool fresh = strcmp(r.body, "v2") == 0;
        ekv_test_resp_free(&r);
        if (fresh)
            break;
        ck_assert_msg(i < 100, "the foreign write never reached the cache");
        ekv_test_sleep_ms(10);
    }
    ck_assert_int_eq(apic_status(p->port, "DELETE", path, NULL, NULL), 204);
    ck_assert_int_eq(apic_status(p->port, "GET", path, NULL, NULL), 404);
    ck_assert(apic_metric(p->port, "edgekv_sentinel_master_known") == 1.0);
    ck_assert(apic_metric(p->port, "edgekv_sentinels_up") == 3.0);
    ck_assert(apic_metric(p->port, "edgekv_origin_failovers_total") == 0.0);
    stop_pop(p);
}
END_TEST

/* Without the Sentinels' password, none answers: not ready, and /readyz says why. */
START_TEST(test_sentinel_auth)
{
    struct ekv_test_proc *p = start_pop(NULL, true);
    uint64_t end = ekv_test_now_ms() + 3000;
    bool said = false;

    while (!said && ekv_test_now_ms() < end) {
        int st;
        json_t *j = readyz(p->port, &st);
        const char *why = json_string_value(json_object_get(j, "reason"));
        ck_assert_int_eq(st, 503);
        said = why != NULL && strstr(why, "sentinel: no master known") != NULL &&
               (strstr(why, "NOAUTH") != NULL || strstr(why, "uthentication") != NULL);
        json_decref(j);
        if (!said)
            ekv_test_sleep_ms(50);
    }
    ck_assert_msg(said, "/readyz never said the Sentinels want a password");
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- ROLE, before any use */

/* A scripted Sentinel on a TCP port of its own: it names @named_port as the master (whatever
 * the real Sentinels say) and confirms +switch-master subscriptions. */
struct fake_sentinel {
    int lfd;
    unsigned short port;
    atomic_int named_port;
    atomic_bool stop;
    pthread_t thread;
};

/* The arguments of the RESP commands in @buf[0..*len), each handed to @answer; what is left of
 * an incomplete command stays in @buf. */
static void fake_serve(struct fake_sentinel *f, int fd, char *buf, size_t *len)
{
    size_t off = 0;

    for (;;) {
        char *argv[8];
        size_t n, pos = off;
        char *nl;

        if (pos >= *len || buf[pos] != '*' || (nl = memchr(buf + pos, '\n', *len - pos)) == NULL)
            break;
        n = strtoul(buf + pos + 1, NULL, 10);
        pos = (size_t)(nl - buf) + 1;
        size_t i;
        for (i = 0; i < n && i < 8; i++) {
            char *l = pos < *len ? memchr(buf + pos, '\n', *len - pos) : NULL;
            size_t blen;
            if (l == NULL || buf[pos] != '$')
                break;
            blen = strtoul(buf + pos + 1, NULL, 10);
            pos = (size_t)(l - buf) + 1;
            if (pos + blen + 2 > *len)
                break;
            argv[i] = buf + pos;
            buf[pos + blen] = '\0';
            pos += blen + 2;
        }
        if (i < n)
            break; /* incomplete (the NULs written are re-read as the same bytes next time) */
        char out[160];
        int olen;
        if (n >= 1 && strcasecmp(argv[0], "SUBSCRIBE") == 0)
            olen = snprintf(out, sizeof(out), "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:1\r\n",
                            strlen(argv[1]), argv[1]);
        else if (n >= 2 && strcasecmp(argv[0], "SENTINEL") == 0) {
            char p[8];
            snprintf(p, sizeof(p), "%d", atomic_load(&f->named_port));
            olen = snprintf(out, sizeof(out), "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n",
                            strlen(p), p);
        } else
            olen = snprintf(out, sizeof(out), "+OK\r\n");
        if (write(fd, out, (size_t)olen) != olen)
            break;
        off = pos;
    }
    memmove(buf, buf + off, *len - off);
    *len -= off;
}

static void *fake_main(void *arg)
{
    struct fake_sentinel *f = arg;
    struct pollfd pf[9];
    char bufs[8][1024];
    size_t lens[8] = {0};
    int n = 1;

    pf[0] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
    while (!atomic_load(&f->stop)) {
        if (poll(pf, (nfds_t)n, 50) <= 0)
            continue;
        for (int i = 1; i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(pf[i].fd, bufs[i - 1] + lens[i - 1],
                             sizeof(bufs[0]) - lens[i - 1]);
            if (r <= 0) { /* gone: the last slot takes its place */
                close(pf[i].fd);
                pf[i] = pf[n - 1];
                memcpy(bufs[i - 1], bufs[n - 2], lens[n - 2]);
                lens[i - 1] = lens[n - 2];
                n--;
                i--;
                continue;
            }
            lens[i - 1] += (size_t)r;
            fake_serve(f, pf[i].fd, bufs[i - 1], &lens[i - 1]);
        }
        if ((pf[0].revents & POLLIN) && n < 9) {
            int c = accept(f->lfd, NULL, NULL);
            if (c >= 0) {
                pf[n] = (struct pollfd){.fd = c, .events = POLLIN};
                lens[n - 1] = 0;
                n++;
            }
        }
    }
    for (int i = 1; i < n; i++)
        close(pf[i].fd);
    return NULL;
}

static void fake_start(struct fake_sentinel *f, unsigned short named)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int one = 1;

    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(f->lfd, 0);
    (void)setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(f->lfd, 16), 0);
    ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    atomic_init(&f->named_port, named);
    atomic_init(&f->stop, false);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake_sentinel *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

/* A Sentinel that names the replica: ROLE there says slave, so the POP never uses it (not one
 * command beyond ROLE reaches it) and says why; once the master is named, it is ready. */
START_TEST(test_role_checked_before_use)
{
    unsigned short master = ekv_test_sentinels_master_port(set);
    unsigned short replica = ekv_test_sentinels_other_node(set, master);
    struct fake_sentinel f;
    struct ekv_test_proc *p;
    char origin[128];
    long evalsha = evalsha_calls(replica), script = calls(replica, "script"),
         tracking = calls(replica, "client|tracking"), subscribe = calls(replica, "subscribe");
    bool said = false;

    fake_start(&f, replica);
    snprintf(origin, sizeof(origin), "redis-sentinel://:%s@127.0.0.1:%u/%s", DATA_PW, f.port,
             EKV_TEST_SENTINEL_MASTER);
    p = start_pop(origin, true);
    for (int i = 0; i < 60 && !said; i++) {
        int st;
        json_t *j = readyz(p->port, &st);
        const char *why = json_string_value(json_object_get(j, "reason"));
        ck_assert_int_eq(st, 503);
        said = why != NULL && strstr(why, "is not the master (ROLE: slave)") != NULL;
        json_decref(j);
        ekv_test_sleep_ms(50);
    }
    ck_assert_msg(said, "/readyz never said the named node is not the master");
    ck_assert_int_eq(apic_status(p->port, "POST", "/resources/stores/kv", NULL,
                                 "{\"name\":\"never\"}"),
                     503);
    /* nothing but AUTH and ROLE reached it: no write, no script loaded, no tracking set up */
    ck_assert_int_eq(evalsha_calls(replica), evalsha);
    ck_assert_int_eq(calls(replica, "script"), script);
    ck_assert_int_eq(calls(replica, "client|tracking"), tracking);
    ck_assert_int_eq(calls(replica, "subscribe"), subscribe);
    ck_assert_int_gt(calls(replica, "role"), 0);
    /* the Sentinel names the master now: the next check finds it */
    atomic_store(&f.named_port, master);
    ck_assert_msg(ready_on(p->port, master, 5000), "never followed the Sentinel to the master");
    stop_pop(p);
    fake_stop(&f);
}
END_TEST

/* ---------------------------------------------------------------- the Sentinels down */

/* The Sentinels all gone: the master they named is still checked with ROLE and used; they
 * come back, and their feeds with them. */
START_TEST(test_sentinels_down_then_back)
{
    struct ekv_test_proc *p = start_pop(NULL, false);
    char sid[64], path[256];

    ck_assert(ready_on(p->port, 0, 8000));
    apic_create_store(p->port, NULL, "sentinels-down", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ekv_test_sentinels_stop_sentinels(set);
    for (int i = 0; apic_metric(p->port, "edgekv_sentinels_up") != 0.0; i++) {
        ck_assert_msg(i < 100, "the Sentinels' feeds are still counted as up");
        ekv_test_sleep_ms(20);
    }
    ekv_test_sleep_ms(1500); /* a ROLE check or more */
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "during"), 200);
    assert_get(p->port, path, "during", false);
    assert_get(p->port, path, "during", true);
    ck_assert(ready_on(p->port, 0, 100));
    ekv_test_sentinels_start_sentinels(set);
    for (int i = 0; apic_metric(p->port, "edgekv_sentinels_up") != 3.0; i++) {
        ck_assert_msg(i < 400, "the Sentinels' feeds never came back");
        ekv_test_sleep_ms(25);
    }
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "after"), 200);
    assert_get(p->port, path, "after", false);
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- failover under load */

struct load {
    unsigned short port;
    char path[256];
    atomic_bool stop;
    atomic_uint acked;     /* the last value acknowledged: "w<acked>" (0: none yet) */
    unsigned oks, fails;
    uint64_t max_gap_ms;   /* longest time without an acknowledged write */
    atomic_ullong last_ok_ms;
};

static void *writer(void *arg)
{
    struct load *l = arg;
    uint64_t last = ekv_test_now_ms();

    for (unsigned i = 1; !atomic_load(&l->stop); i++) {
        char body[32];
        snprintf(body, sizeof(body), "w%u", i);
        if (apic_status(l->port, "PUT", l->path, NULL, body) == 200) {
            uint64_t now = ekv_test_now_ms();
            if (now - last > l->max_gap_ms)
                l->max_gap_ms = now - last;
            last = now;
            atomic_store(&l->last_ok_ms, now);
            atomic_store(&l->acked, i);
            l->oks++;
        } else {
            l->fails++;
            ekv_test_sleep_ms(5);
        }
    }
    return NULL;
}

/* SENTINEL FAILOVER while a client writes: the POP follows the switch, and from the moment it
 * has, the old master (still a master, still writable, for seconds) gets not one more command;
 * every acknowledged write is on the new master, and the cache serves the last one. */
START_TEST(test_failover_under_load)
{
    struct ekv_test_proc *p = start_pop(NULL, false);
    struct load l = {0};
    pthread_t t;
    unsigned short old, now;
    long switched_count, final_count;
    char sid[64], want[32], *v, *role;

    ck_assert(ready_on(p->port, 0, 8000));
    old = ekv_test_sentinels_master_port(set);
    apic_create_store(p->port, NULL, "failover", sid);
    l.port = p->port;
    snprintf(l.path, sizeof(l.path), "/resources/stores/kv/%s/keys/k", sid);
    atomic_init(&l.stop, false);
    atomic_init(&l.acked, 0);
    atomic_init(&l.last_ok_ms, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, writer, &l), 0);
    ekv_test_sleep_ms(300);
    now = ekv_test_sentinels_failover(set);
    ck_assert_uint_ne(now, old);
    ck_assert_msg(ready_on(p->port, now, 5000), "the POP never followed the failover");
    ekv_test_sleep_ms(200); /* what was in flight to the old master when it switched */
    switched_count = evalsha_calls(old);
    unsigned acked_at_switch = atomic_load(&l.acked);
    ekv_test_sleep_ms(1000);
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    final_count = evalsha_calls(old);
    role = ekv_test_cmd_port_or_fail(old, DATA_PW, "ROLE");
    ck_assert_msg(atomic_load(&l.acked) > acked_at_switch, "no write acknowledged after the switch");
    ck_assert_msg(final_count == switched_count,
                  "%ld writes reached the old master after the POP switched (it says %s)",
                  final_count - switched_count, strtok(role, "\n"));
    free(role);
    snprintf(want, sizeof(want), "w%u", atomic_load(&l.acked));
    v = node_value(now, sid, "k");
    ck_assert_str_eq(v, want);
    free(v);
    assert_get(p->port, l.path, want, false);
    assert_get(p->port, l.path, want, true);
    ck_assert(apic_metric(p->port, "edgekv_origin_failovers_total") == 1.0);
    fprintf(stderr, "sentinel failover: %u writes acknowledged, %u refused, longest gap %llu ms\n",
            l.oks, l.fails, (unsigned long long)l.max_gap_ms);
    ck_assert_msg(l.max_gap_ms < 5000, "writes stopped for %llu ms",
                  (unsigned long long)l.max_gap_ms);
    stop_pop(p);
    /* the next test fails over again: the old master must be a replica by then (Sentinel
     * would convert it about 10 s after the switch; the window was what this test needed) */
    ekv_test_sentinels_convert_old_master(set);
    ekv_test_sentinels_wait_replica(set, 30000);
}
END_TEST

/* ---------------------------------------------------------------- a write lost in failover */

/* The replica stops following, a write is acknowledged by the master alone and cached, the
 * master dies: the promoted replica never had the write, and the POP does not serve it. */
START_TEST(test_lost_write_not_served)
{
    struct ekv_test_proc *p = start_pop(NULL, false);
    unsigned short master, replica, now;
    char sid[64], path[256], *v;

    ck_assert(ready_on(p->port, 0, 8000));
    master = ekv_test_sentinels_master_port(set);
    replica = ekv_test_sentinels_other_node(set, master);
    apic_create_store(p->port, NULL, "lost-write", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "kept"), 200);
    for (int i = 0;; i++) {
        v = node_value(replica, sid, "k");
        bool there = strcmp(v, "kept") == 0;
        free(v);
        if (there)
            break;
        ck_assert_msg(i < 200, "the replica never got the first write");
        ekv_test_sleep_ms(10);
    }
    /* cut the replica off: it cannot authenticate to resync */
    free(ekv_test_cmd_port_or_fail(replica, DATA_PW, "CONFIG SET masterauth bogus"));
    free(ekv_test_cmd_port_or_fail(replica, DATA_PW, "CLIENT KILL TYPE master"));
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "lost"), 200);
    assert_get(p->port, path, "lost", false);
    assert_get(p->port, path, "lost", true);
    v = node_value(replica, sid, "k");
    ck_assert_str_eq(v, "kept");
    free(v);
    now = ekv_test_sentinels_kill_master(set);
    ck_assert_uint_eq(now, replica);
    free(ekv_test_cmd_port_or_fail(now, DATA_PW, "CONFIG SET masterauth %s", DATA_PW));
    ck_assert_msg(ready_on(p->port, now, 8000), "the POP never followed the new master");
    assert_get(p->port, path, "kept", false);
    assert_get(p->port, path, "kept", true);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "again"), 200);
    assert_get(p->port, path, "again", false);
    stop_pop(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sentinel");
    TCase *tc = tcase_create("sentinel");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    /* one set for the suite, changed by the tests in turn (see the top of the file) */
    setenv("CK_FORK", "no", 1);
    tcase_add_unchecked_fixture(tc, start_set, stop_set);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_api_over_sentinel);
    tcase_add_test(tc, test_sentinel_auth);
    tcase_add_test(tc, test_role_checked_before_use);
    tcase_add_test(tc, test_sentinels_down_then_back);
    tcase_add_test(tc, test_failover_under_load);
    tcase_add_test(tc, test_lost_write_not_served);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
