/* check_tls.c - TLS to the origin (rediss://) against a real redis-server with --tls-port and
 * certificates made by the test (tests/helpers/mkcerts.sh): commands, scripts and a 25 MiB value
 * over TLS; verification (a certificate from another CA, an expired one, one for another name,
 * accepted only with origin-tls-server-name, or with origin-tls-verify no); client certificates
 * for tls-auth-clients yes; no plaintext fallback against a plain Redis; the invalidation link
 * over TLS, saying why it failed; and the edgekv binary end to end: the API and the cache over
 * TLS, /readyz naming the TLS failure, a certificate file that does not load refused at start. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/conf.h"
#include "edgekv/inval.h"
#include "edgekv/origin.h"

#include "apic.h"
#include "evloop.h"
#include "testutil.h"

static struct ekv_test_redis *redis; /* TLS on redis->port; its unix socket stays plain */
static char certs[200];
static struct event_base *base;
static struct ekv_conf_origin addr;
static struct ekv_origin_script scripts[] = {{"echo", "return ARGV[1]", ""}};
static char host[] = "127.0.0.1";

static const char *cert(const char *name)
{
    static char paths[8][320];
    static int n;
    char *p = paths[n++ % 8];

    snprintf(p, 320, "%s/%s", certs, name);
    return p;
}

static void redis_cmd_ok(const char *fmt, const char *a, const char *b)
{
    char *r = ekv_test_redis_cmd(redis, fmt, a, b);

    ck_assert_msg(r != NULL && strcmp(r, "OK") == 0, "%s: %s", fmt, r != NULL ? r : "(null)");
    free(r);
}

/* Redis presents @name.pem (and asks for client certificates when @auth_clients). */
static void serve_cert(const char *name, bool auth_clients)
{
    char c[32], k[32];

    snprintf(c, sizeof(c), "%s.pem", name);
    snprintf(k, sizeof(k), "%s.key", name);
    redis_cmd_ok("CONFIG SET tls-cert-file %s tls-key-file %s", cert(c), cert(k));
    redis_cmd_ok("CONFIG SET tls-auth-clients %s%s", auth_clients ? "yes" : "no", "");
}

static void start_redis(void)
{
    ekv_test_mkdtemp("certs", certs, sizeof(certs));
    ekv_test_make_certs(certs);
    {
        const char *tls[] = {"--tls-cert-file", cert("server.pem"), "--tls-key-file",
                             cert("server.key"), "--tls-ca-cert-file", cert("ca.pem"),
                             "--tls-auth-clients", "no", NULL};
        redis = ekv_test_redis_start_tls(tls);
    }
}

static void stop_redis(void)
{
    ekv_test_redis_stop(redis);
    ekv_test_rm_rf(certs);
}

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    memset(&addr, 0, sizeof(addr));
    addr.host = host;
    addr.port = redis->port;
    addr.tls = true;
    serve_cert("server", false);
}

static void teardown(void)
{
    event_base_free(base);
    ekv_test_kill_strays();
}

/* ---------------------------------------------------------------- helpers */

struct result {
    int calls;
    int status;
    int type;
    char *str; /* malloc'd copy of a string reply */
    size_t len;
};

static void on_result(int status, const struct redisReply *r, void *arg)
{
    struct result *res = arg;

    res->calls++;
    res->status = status;
    if (r != NULL) {
        res->type = r->type;
        if (r->str != NULL) {
            res->str = malloc(r->len + 1);
            ck_assert_ptr_nonnull(res->str);
            memcpy(res->str, r->str, r->len);
            res->str[r->len] = '\0';
            res->len = r->len;
        }
    }
}

static struct ekv_origin_tls *tls_new(const char *ca, const char *crt, const char *key,
                                      const char *name, bool verify)
{
    struct ekv_origin_tls_opts o = {
        .ca_file = ca != NULL ? cert(ca) : NULL,
        .cert_file = crt != NULL ? cert(crt) : NULL,
        .key_file = key != NULL ? cert(key) : NULL,
        .server_name = name,
        .verify = verify,
    };
    char err[256];
    struct ekv_origin_tls *t = ekv_origin_tls_new(&o, err, sizeof(err));

    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

static struct ekv_origin *origin_new(const struct ekv_origin_tls *tls, uint64_t timeout_ms)
{
    struct ekv_origin_opts o = {
        .addr = &addr,
        .tls = tls,
        .timeout_ms = timeout_ms,
        .scripts = scripts,
        .nscripts = EKV_ARRAY_LEN(scripts),
        .label = "tls test",
    };

    return ekv_origin_new(base, &o);
}

static bool wait_connected(struct ekv_origin *o, unsigned ms)
{
    uint64_t end = ekv_test_now_ms() + ms;
    int never = 0;

    while (!ekv_origin_connected(o) && ekv_test_now_ms() < end)
        ekv_test_loop_until(base, &never, 20);
    return ekv_origin_connected(o);
}

static void cmd(struct ekv_origin *o, struct result *r, int argc, const char **argv,
                const size_t *lens)
{
    memset(r, 0, sizeof(*r));
    ekv_origin_cmd(o, on_result, r, argc, argv, lens);
    ck_assert(ekv_test_loop_until(base, &r->calls, 10000));
}

static void nop_key(const char *key, size_t len, void *arg)
{
}

static void nop_flush(void *arg)
{
}

/* The invalidation link's error after @ms with @tls: why it never went live. */
static void inval_error(const struct ekv_origin_tls *tls, unsigned ms, char *out, size_t cap)
{
    static const char *const prefixes[] = {"tls:"};
    struct ekv_inval_opts io = {
        .addr = &addr,
        .tls = tls,
        .prefixes = prefixes,
        .nprefixes = 1,
        .heartbeat_channel = "tls:heartbeat",
        .heartbeat_ms = 100,
        .timeout_ms = 1000,
    };
    struct ekv_inval_hooks hooks = {.on_key = nop_key, .on_flush = nop_flush};
    struct ekv_inval *iv;
    struct ekv_inval_stats st;
    int never = 0;

    iv = ekv_inval_new(base, &io, &hooks);
    ekv_test_loop_until(base, &never, ms);
    ekv_inval_stats(iv, &st);
    ck_assert(!st.live);
    snprintf(out, cap, "%s", st.error);
    ekv_inval_free(iv);
}

/* ---------------------------------------------------------------- the origin client */

START_TEST(test_commands_and_scripts_over_tls)
{
    struct ekv_origin_tls *tls = tls_new("ca.pem", NULL, NULL, NULL, true);
    struct ekv_origin *o = origin_new(tls, 3000);
    struct result r;
    const char *set[] = {"SET", "tls:k", "over tls"};
    const char *get[] = {"GET", "tls:k"};
    const char *echo[] = {"x"};

    ck_assert(ekv_origin_tls_verifies(tls));
    ck_assert(wait_connected(o, 5000));
    cmd(o, &r, 3, set, NULL);
    ck_assert_int_eq(r.status, EKV_OK);
    free(r.str);
    cmd(o, &r, 2, get, NULL);
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_str_eq(r.str, "over tls");
    free(r.str);
    memset(&r, 0, sizeof(r));
    ekv_origin_eval(o, 0, on_result, &r, 0, 1, echo, NULL);
    ck_assert(ekv_test_loop_until(base, &r.calls, 5000));
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_str_eq(r.str, "x");
    free(r.str);
    ekv_origin_free(o);
    ekv_origin_tls_free(tls);
}
END_TEST

/* 25 MiB each way over TLS, byte for byte (the TLS path moves large values as the plain one). */
START_TEST(test_large_value_over_tls)
{
    enum { SIZE = 25 << 20 };
    struct ekv_origin_tls *tls = tls_new("ca.pem", NULL, NULL, NULL, true);
    struct ekv_origin *o = origin_new(tls, 20000);
    char *v = malloc(SIZE);
    const char *set[] = {"SET", "tls:big", v};
    size_t setlen[] = {3, 7, SIZE};
    const char *get[] = {"GET", "tls:big"};
    struct result r;
    uint64_t t0;

    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < SIZE; i++)
        v[i] = (char)(i * 2654435761u >> 13);
    ck_assert(wait_connected(o, 5000));
    t0 = ekv_test_now_ms();
    cmd(o, &r, 3, set, setlen);
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_int_eq(r.type, REDIS_REPLY_STATUS);
    free(r.str);
    cmd(o, &r, 2, get, NULL);
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_uint_eq(r.len, SIZE);
    ck_assert(memcmp(r.str, v, SIZE) == 0);
    fprintf(stderr, "tls: 25 MiB SET and GET over TLS in %llu ms\n",
            (unsigned long long)(ekv_test_now_ms() - t0));
    free(r.str);
    free(v);
    ekv_origin_free(o);
    ekv_origin_tls_free(tls);
}
END_TEST

/* Certificates that must not be accepted: never connected, and the link says why. */
START_TEST(test_bad_certificates_refused)
{
    static const struct {
        const char *served, *why;
    } cases[] = {
        {"rogue", "unable to get local issuer certificate"},
        {"expired", "certificate has expired"},
        {"other", "IP address mismatch"},
    };
    struct ekv_origin_tls *tls = tls_new("ca.pem", NULL, NULL, NULL, true);

    for (size_t i = 0; i < EKV_ARRAY_LEN(cases); i++) {
        struct ekv_origin *o;
        char why[200];

        serve_cert(cases[i].served, false);
        o = origin_new(tls, 1000);
        ck_assert_msg(!wait_connected(o, 700), "connected to a server showing %s.pem",
                      cases[i].served);
        ekv_origin_free(o);
        inval_error(tls, 400, why, sizeof(why));
        ck_assert_msg(strstr(why, "tls: certificate verify failed") != NULL &&
                          strstr(why, cases[i].why) != NULL,
                      "%s.pem: the reason given was \"%s\"", cases[i].served, why);
    }
    ekv_origin_tls_free(tls);
}
END_TEST

/* The name to verify: other.pem is valid for other.example only (origin-tls-server-name);
 * with origin-tls-verify no anything goes, even a certificate of another CA. */
START_TEST(test_server_name_and_verify_no)
{
    struct ekv_origin_tls *named = tls_new("ca.pem", NULL, NULL, "other.example", true);
    struct ekv_origin_tls *wrong = tls_new("ca.pem", NULL, NULL, "localhost", true);
    struct ekv_origin_tls *any = tls_new(NULL, NULL, NULL, NULL, false);
    struct ekv_origin *o;

    serve_cert("other", false);
    o = origin_new(wrong, 1000);
    ck_assert(!wait_connected(o, 700));
    ekv_origin_free(o);
    o = origin_new(named, 1000);
    ck_assert(wait_connected(o, 5000));
    ekv_origin_free(o);
    serve_cert("rogue", false);
    o = origin_new(named, 1000);
    ck_assert(!wait_connected(o, 700));
    ekv_origin_free(o);
    ck_assert(!ekv_origin_tls_verifies(any));
    o = origin_new(any, 1000);
    ck_assert(wait_connected(o, 5000));
    ekv_origin_free(o);
    ekv_origin_tls_free(named);
    ekv_origin_tls_free(wrong);
    ekv_origin_tls_free(any);
}
END_TEST

/* tls-auth-clients yes: only a client certificate from the CA gets in. */
START_TEST(test_client_certificates)
{
    struct ekv_origin_tls *none = tls_new("ca.pem", NULL, NULL, NULL, true);
    struct ekv_origin_tls *mine = tls_new("ca.pem", "client.pem", "client.key", NULL, true);
    struct ekv_origin_tls *rogue = tls_new("ca.pem", "rogue.pem", "rogue.key", NULL, true);
    struct ekv_origin *o;
    struct result r;
    const char *ping[] = {"PING"};

    char why[200];

    serve_cert("server", true);
    o = origin_new(none, 1000);
    ck_assert(!wait_connected(o, 700));
    ekv_origin_free(o);
    inval_error(none, 400, why, sizeof(why));
    /* TLS 1.3: the client has finished its handshake when the server refuses it, so the
     * refusal is an alert ("certificate required") or, read after it, just the close */
    ck_assert_msg((strstr(why, "tls: ") == why && strstr(why, "certificate required") != NULL) ||
                      strstr(why, "closed by Redis") != NULL,
                  "the reason given was \"%s\"", why);
    o = origin_new(rogue, 1000);
    ck_assert(!wait_connected(o, 700));
    ekv_origin_free(o);
    o = origin_new(mine, 3000);
    ck_assert(wait_connected(o, 5000));
    cmd(o, &r, 1, ping, NULL);
    ck_assert_int_eq(r.status, EKV_OK);
    ck_assert_str_eq(r.str, "PONG");
    free(r.str);
    ekv_origin_free(o);
    ekv_origin_tls_free(none);
    ekv_origin_tls_free(mine);
    ekv_origin_tls_free(rogue);
}
END_TEST

/* A file that does not load, or a key that is not the certificate's, is refused up front. */
START_TEST(test_bad_files)
{
    struct ekv_origin_tls_opts o = {.ca_file = "/nonexistent/ca.pem", .verify = true};
    char err[256];

    ck_assert_ptr_null(ekv_origin_tls_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "origin-tls-ca-file: cannot load /nonexistent/ca.pem") == err, "%s",
                  err);
    o = (struct ekv_origin_tls_opts){.cert_file = cert("client.pem"),
                                     .key_file = cert("server.key"), .verify = true};
    ck_assert_ptr_null(ekv_origin_tls_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "origin-tls-key-file") == err, "%s", err);
    o = (struct ekv_origin_tls_opts){.cert_file = cert("client.key"),
                                     .key_file = cert("client.key"), .verify = true};
    ck_assert_ptr_null(ekv_origin_tls_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "origin-tls-cert-file: cannot load") == err, "%s", err);
}
END_TEST

/* A TLS origin pointed at a plain Redis: the handshake fails, nothing is sent in the clear. */
START_TEST(test_no_plaintext_fallback)
{
    struct ekv_test_redis *plain = ekv_test_redis_start_tcp();
    struct ekv_origin_tls *tls = tls_new("ca.pem", NULL, NULL, NULL, true);
    struct ekv_origin *o;
    char *n;

    addr.port = plain->port;
    o = origin_new(tls, 1000);
    ck_assert(!wait_connected(o, 700));
    ekv_origin_free(o);
    n = ekv_test_redis_cmd(plain, "INFO %s", "commandstats");
    ck_assert_ptr_null(strstr(n, "cmdstat_script")); /* no SCRIPT LOAD reached it */
    free(n);
    ekv_origin_tls_free(tls);
    ekv_test_redis_stop(plain);
}
END_TEST

/* ---------------------------------------------------------------- edgekv end to end */

static struct ekv_test_proc *start_pop(const char *ca, const char *extra)
{
    char origin[128];
    const char *args[16];
    size_t n = 0;

    snprintf(origin, sizeof(origin), "rediss://127.0.0.1:%u", redis->port);
    args[n++] = "--origin";
    args[n++] = origin;
    args[n++] = "--threads";
    args[n++] = "1";
    if (ca != NULL) {
        args[n++] = "--origin-tls-ca-file";
        args[n++] = cert(ca);
    }
    if (extra != NULL) {
        args[n++] = extra;
        args[n++] = "no";
    }
    args[n] = NULL;
    return ekv_test_edgekv_startv(args);
}

static bool ready(unsigned short port, unsigned ms)
{
    uint64_t end = ekv_test_now_ms() + ms;

    while (ekv_test_get_status(port, "/readyz") != 200) {
        if (ekv_test_now_ms() >= end)
            return false;
        ekv_test_sleep_ms(20);
    }
    return true;
}

/* The whole path over TLS: a store, a write, a read from the origin, then from the cache (the
 * invalidation link is up over TLS too), and a write that the cache sees at once. */
START_TEST(test_edgekv_over_tls)
{
    struct ekv_test_proc *p = start_pop("ca.pem", NULL);
    struct ekv_test_resp r = {0};
    char sid[64], path[256];

    ck_assert_msg(ready(p->port, 8000), "/readyz never 200");
    apic_create_store(p->port, NULL, "tls", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "v1"), 200);
    ck_assert_int_eq(apic_req(p->port, "GET", path, NULL, NULL, 0, &r), 200);
    ck_assert_str_eq(r.body, "v1");
    ekv_test_resp_free(&r);
    /* a hit once the write's own invalidation has come by (it may end the first copy) */
    for (int i = 0;; i++) {
        bool hit;

        ck_assert_int_eq(apic_req(p->port, "GET", path, NULL, NULL, 0, &r), 200);
        ck_assert_str_eq(r.body, "v1");
        hit = strstr(ekv_test_resp_header(&r, "Cache-Status"), "hit") != NULL;
        ekv_test_resp_free(&r);
        if (hit)
            break;
        ck_assert_msg(i < 50, "never a hit over a TLS origin");
        ekv_test_sleep_ms(20);
    }
    ck_assert_int_eq(apic_status(p->port, "PUT", path, NULL, "v2"), 200);
    ck_assert_int_eq(apic_req(p->port, "GET", path, NULL, NULL, 0, &r), 200);
    ck_assert_str_eq(r.body, "v2");
    ekv_test_resp_free(&r);
    ekv_test_proc_signal(p, SIGTERM);
    ck_assert_int_eq(ekv_test_proc_wait(p, 10000), 0);
    ekv_test_proc_free(p);
}
END_TEST

/* A certificate edgekv cannot verify: not ready, and /readyz says it is TLS; with
 * origin-tls-verify no it is ready, and said so at start-up. */
START_TEST(test_edgekv_tls_failure_and_verify_no)
{
    struct ekv_test_proc *p;
    struct ekv_test_resp r = {0};
    char *log;

    serve_cert("rogue", false);
    p = start_pop("ca.pem", NULL);
    ck_assert(!ready(p->port, 1000));
    ck_assert_int_eq(apic_req(p->port, "GET", "/readyz", NULL, NULL, 0, &r), 503);
    ck_assert_msg(strstr(r.body, "\"origin\":\"down\"") != NULL &&
                      strstr(r.body, "\"reason\":\"tls: certificate verify failed") != NULL,
                  "%s", r.body);
    ck_assert_ptr_null(strstr(r.body, "origin_tls_verify"));
    ekv_test_resp_free(&r);
    ekv_test_proc_free(p);
    p = start_pop(NULL, "--origin-tls-verify");
    ck_assert_msg(ready(p->port, 8000), "/readyz never 200 with origin-tls-verify no");
    ck_assert_int_eq(apic_req(p->port, "GET", "/readyz", NULL, NULL, 0, &r), 200);
    ck_assert_msg(strstr(r.body, "\"origin_tls_verify\":false") != NULL, "%s", r.body);
    ekv_test_resp_free(&r);
    log = ekv_test_proc_log(p);
    ck_assert_ptr_nonnull(strstr(log, "origin-tls-verify no"));
    free(log);
    ekv_test_proc_free(p);
}
END_TEST

START_TEST(test_edgekv_refuses_a_bad_ca_file)
{
    char origin[128], *out = NULL;
    const char *args[] = {"--origin", origin, "--origin-tls-ca-file", "/nonexistent/ca.pem", NULL};
    int status;

    snprintf(origin, sizeof(origin), "rediss://127.0.0.1:%u", redis->port);
    status = ekv_test_edgekv_run(args, 10000, &out);
    ck_assert_int_eq(status, 1);
    ck_assert_msg(strstr(out, "origin-tls-ca-file: cannot load /nonexistent/ca.pem") != NULL,
                  "%s", out);
    free(out);
    /* edgekv -t checks the files too (without contacting Redis) */
    {
        const char *t[] = {"-t", "--origin", origin, "--origin-tls-cert-file", cert("client.pem"),
                           "--origin-tls-key-file", cert("server.key"), NULL};
        const char *good[] = {"-t", "--origin", origin, "--origin-tls-cert-file",
                              cert("client.pem"), "--origin-tls-key-file", cert("client.key"),
                              NULL};
        ck_assert_int_eq(ekv_test_edgekv_run(t, 10000, &out), 1);
        ck_assert_msg(strstr(out, "origin-tls-key-file: does not match origin-tls-cert-file") !=
                          NULL,
                      "%s", out);
        free(out);
        ck_assert_int_eq(ekv_test_edgekv_run(good, 10000, &out), 0);
        free(out);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("origin");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    tcase_add_unchecked_fixture(tc, start_redis, stop_redis);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_commands_and_scripts_over_tls);
    tcase_add_test(tc, test_large_value_over_tls);
    tcase_add_test(tc, test_bad_certificates_refused);
    tcase_add_test(tc, test_server_name_and_verify_no);
    tcase_add_test(tc, test_client_certificates);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_no_plaintext_fallback);
    tcase_add_test(tc, test_edgekv_over_tls);
    tcase_add_test(tc, test_edgekv_tls_failure_and_verify_no);
    tcase_add_test(tc, test_edgekv_refuses_a_bad_ca_file);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
