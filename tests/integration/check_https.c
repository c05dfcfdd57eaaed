/* check_https.c - HTTPS for clients (tls-listen), end to end: the edgekv binary against a real
 * redis-server, certificates made by the test (tests/helpers/mkcerts.sh), and real clients:
 * curl --cacert, and OpenSSL in C (tests/helpers/tlsc.c) for framing and protocol edge cases.
 * Every request kind over HTTPS (stores, PUT, GET from the origin and from the cache, list,
 * DELETE), keep-alive, pipelining and 100-continue; ALPN; TLS 1.0/1.1 refused and
 * tls-min-version 1.3; an expired certificate and one from another CA as clients see them;
 * mutual TLS (good, rogue and missing client certificates); SIGHUP with a new certificate, and
 * with one that does not load (the old one stays); edgekv -t on bad files (FILE:LINE); garbage
 * and plain HTTP on the TLS port; 200 half-open handshakes while requests stay fast, and
 * header-timeout closing them; a client that vanishes in the middle of a large response;
 * session resumption (TLS 1.3 and 1.2, and across a reload); the handshake failures metric. */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "apic.h"
#include "testutil.h"

static struct ekv_test_redis *redis;
static char certs[200];

static const char *cert(const char *name)
{
    static char paths[16][320];
    static int n;
    char *p = paths[n++ % 16];

    snprintf(p, 320, "%s/%s", certs, name);
    return p;
}

static void start_redis(void)
{
    ekv_test_mkdtemp("certs", certs, sizeof(certs));
    ekv_test_make_certs(certs);
    redis = ekv_test_redis_start();
    redis->proc->persistent = true;
}

static void stop_redis(void)
{
    ekv_test_redis_stop(redis);
    ekv_test_rm_rf(certs);
}

static void teardown(void)
{
    ekv_test_kill_strays();
}

/* edgekv with tls-listen on a port of its own, serving server.pem, plus @extra (NULL-ended). */
static struct ekv_test_proc *start_pop(const char *const *extra)
{
    const char *args[40];
    size_t n = 0;

    args[n++] = "--origin";
    args[n++] = redis->origin;
    args[n++] = "--tls-listen";
    args[n++] = "127.0.0.1:0";
    if (extra == NULL || !(extra[0] != NULL && strcmp(extra[0], "-c") == 0)) {
        args[n++] = "--tls-cert-file";
        args[n++] = cert("server.pem");
        args[n++] = "--tls-key-file";
        args[n++] = cert("server.key");
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return ekv_test_edgekv_startv(args);
}

static void stop_pop(struct ekv_test_proc *p)
{
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(ekv_test_proc_wait(p, 15000), 0); /* clean exit: no sanitizer report */
    ekv_test_proc_free(p);
}

static bool ready(unsigned short port)
{
    uint64_t end = ekv_test_now_ms() + 8000;

    while (ekv_test_get_status(port, "/readyz") != 200) {
        if (ekv_test_now_ms() >= end)
            return false;
        ekv_test_sleep_ms(20);
    }
    return true;
}

/* One request on the open connection @c (keep-alive), its final response in @r. */
static int treq(struct ekv_test_conn *c, const char *method, const char *path, const char *hdrs,
                const char *body, struct ekv_test_resp *r)
{
    int rc;

    if (body != NULL)
        ck_assert_int_eq(ekv_test_sendf(c,
                                        "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n"
                                        "\r\n%s",
                                        method, path, hdrs != NULL ? hdrs : "", strlen(body), body),
                         0);
    else
        ck_assert_int_eq(ekv_test_sendf(c, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, path,
                                        hdrs != NULL ? hdrs : ""),
                         0);
    rc = ekv_test_read_final(c, r, strcmp(method, "HEAD") == 0 ? EKV_TEST_HEAD : 0);
    ck_assert_msg(rc == EKV_TEST_OK, "%s %s over TLS: no response (%d): %s", method, path, rc,
                  c->err);
    return r->status;
}

/* The number the sample @series has on the plain port's /metrics (0 if absent). */
static double metric(unsigned short port, const char *series)
{
    double v = apic_metric(port, series);

    ck_assert(v != APIC_METRIC_UNREACHABLE);
    return v < 0 ? 0 : v;
}

/* edgekv_http_connections once it has settled at 1 (the scrape's own connection; the one of
 * the scrape before may take a moment to close, on another worker), or after 5 s. */
static double open_connections(unsigned short port)
{
    uint64_t end = ekv_test_now_ms() + 5000;
    double v;

    while ((v = metric(port, "edgekv_http_connections")) != 1 && ekv_test_now_ms() < end)
        ekv_test_sleep_ms(50);
    return v;
}

/* Runs a shell command line and returns its exit status; its stdout in @out (malloc'd). */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
    char cmd[4096], buf[4096];
    size_t len = 0;
    va_list ap;
    FILE *fp;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    fp = popen(cmd, "r");
    ck_assert_ptr_nonnull(fp);
    *out = calloc(1, 1);
    while (fgets(buf, sizeof(buf), fp) != NULL) {
        size_t n = strlen(buf);
        *out = realloc(*out, len + n + 1);
        memcpy(*out + len, buf, n + 1);
        len += n;
    }
    st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* curl GET https://@host:@port@path, verifying with ca.pem: "BODY\nSTATUS" in @out; returns
 * curl's exit status. */
static int curl(char **out, unsigned short port, const char *host, const char *path)
{
    return run(out, "curl -sS --max-time 10 --cacert '%s' -w '\\n%%{http_code}' "
                    "'https://%s:%u%s' 2>&1",
               cert("ca.pem"), host, port, path);
}

/* ---------------------------------------------------------------- every request kind */

START_TEST(test_requests_with_curl)
{
    struct ekv_test_proc *p = start_pop(NULL);
    char *out, args[512], sid[64];
    json_t *j;

    ck_assert(ready(p->port));
    /* by name (the certificate's DNS SAN) and by address (its IP SAN) */
    ck_assert_int_eq(curl(&out, p->tls_port, "localhost", "/healthz"), 0);
    ck_assert_str_eq(out, "{\"status\":\"ok\"}\n200");
    free(out);
    snprintf(args, sizeof(args), "-X POST -H 'Content-Type: application/json' "
                                 "-d '{\"name\":\"viacurl\"}'");
    ck_assert_int_eq(run(&out,
                         "curl -sS --max-time 10 --cacert '%s' %s -w '\\n%%{http_code}' "
                         "https://127.0.0.1:%u/resources/stores/kv",
                         cert("ca.pem"), args, p->tls_port),
                     0);
    ck_assert_msg(strstr(out, "\n201") != NULL, "%s", out);
    *strrchr(out, '\n') = '\0';
    {
        json_error_t e;
        j = json_loads(out, 0, &e);
        ck_assert_msg(j != NULL, "%s", out);
        snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(j, "id")));
        json_decref(j);
    }
    free(out);
#define CURL(expect_body, expect_code, fmt, ...)                                                   \
    do {                                                                                           \
        ck_assert_int_eq(run(&out, "curl -sS --max-time 10 --cacert '%s' -w '\\n%%{http_code}' " fmt, \
                             cert("ca.pem"), __VA_ARGS__),                                         \
                         0);                                                                       \
        ck_assert_msg(strstr(out, "\n" expect_code) != NULL && strstr(out, expect_body) != NULL,   \
                      "%s", out);                                                                  \
        free(out);                                                                                 \
    } while (0)
    CURL("", "200", "-X PUT --data-binary 'over tls' https://127.0.0.1:%u/resources/stores/kv/%s/keys/k1",
         p->tls_port, sid);
    CURL("", "200", "-X PUT --data-binary 'second' https://127.0.0.1:%u/resources/stores/kv/%s/keys/k2",
         p->tls_port, sid);
    CURL("over tls", "200", "https://127.0.0.1:%u/resources/stores/kv/%s/keys/k1", p->tls_port,
         sid);
    /* the second read is a hit, from the cache, over TLS */
    CURL("hit", "200", "-D - -o /dev/null https://127.0.0.1:%u/resources/stores/kv/%s/keys/k1",
         p->tls_port, sid);
    CURL("\"k2\"", "200", "https://127.0.0.1:%u/resources/stores/kv/%s/keys", p->tls_port, sid);
    /* a streamed response (chunked) over TLS: the export */
    CURL("\"end\":true", "200", "https://127.0.0.1:%u/resources/stores/kv/%s/export", p->tls_port,
         sid);
    CURL("", "204", "-X DELETE https://127.0.0.1:%u/resources/stores/kv/%s/keys/k1", p->tls_port,
         sid);
    CURL("", "404", "https://127.0.0.1:%u/resources/stores/kv/%s/keys/k1", p->tls_port, sid);
    /* the edge path and the operations endpoints (no admin-listen: served on tls-listen too) */
    CURL("second", "200", "https://127.0.0.1:%u/kv/viacurl/%s", p->tls_port, "k2");
    CURL("edgekv_http_requests_total", "200", "https://127.0.0.1:%u/%s", p->tls_port, "metrics");
    /* ALPN: curl negotiates http/1.1 (and HTTP/2 is never chosen) */
    CURL("ALPN: server accepted http/1.1", "200", "-v https://127.0.0.1:%u/%s 2>&1", p->tls_port,
         "healthz");
    CURL("HTTP/1.1 200", "200", "--http2 -i https://127.0.0.1:%u/%s", p->tls_port, "healthz");
#undef CURL
    /* the plain listener still answers */
    ck_assert_int_eq(ekv_test_get_status(p->port, "/healthz"), 200);
    stop_pop(p);
}
END_TEST

/* Keep-alive, pipelining and 100-continue through the raw TLS client; ALPN as it sees it. */
START_TEST(test_framing_over_tls)
{
    struct ekv_test_proc *p = start_pop(NULL);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    struct ekv_test_conn *c;
    struct ekv_test_resp r = {0}, rs[3];
    char sid[64], path[200], big[40000];
    const unsigned char *alpn;
    unsigned alpn_len;

    ck_assert(ready(p->port));
    apic_create_store(p->port, NULL, "framing", sid);
    c = ekv_test_tls_connect(p->tls_port, ctx);
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    ck_assert_int_eq(alpn_len, 8);
    ck_assert_int_eq(memcmp(alpn, "http/1.1", 8), 0);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/a", sid);
    ck_assert_int_eq(treq(c, "PUT", path, NULL, "alpha", &r), 200);
    ekv_test_resp_free(&r);
    /* three pipelined reads in one TLS record, answered in order on the same connection */
    ck_assert_int_eq(ekv_test_sendf(c,
                                    "GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n"
                                    "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
                                    path, path),
                     0);
    ck_assert_uint_eq(ekv_test_read_n(c, rs, 3, (const unsigned[]){0, EKV_TEST_HEAD, 0}), 3);
    ck_assert_int_eq(rs[0].status, 200);
    ck_assert_str_eq(rs[0].body, "alpha");
    ck_assert_int_eq(rs[1].status, 200);
    ck_assert_str_eq(ekv_test_resp_header(&rs[1], "Content-Length"), "5");
    ck_assert_int_eq(rs[2].status, 200);
    for (int i = 0; i < 3; i++)
        ekv_test_resp_free(&rs[i]);
    /* 400 pipelined requests (about 120 KiB, many records) in one go: past the pipeline depth
     * reading pauses with records still in OpenSSL's buffer; every one is answered, in order */
    {
        static struct ekv_test_resp many[400];
        char pad[200], *burst = malloc(400 * 320);
        size_t blen = 0;
        memset(pad, 'p', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        for (int i = 0; i < 400; i++)
            blen += (size_t)sprintf(burst + blen,
                                    "GET %s?n=%d HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n",
                                    i % 2 ? path : "/healthz", i, pad);
        ck_assert_int_eq(ekv_test_send(c, burst, blen), 0);
        free(burst);
        ck_assert_uint_eq(ekv_test_read_n(c, many, 400, NULL), 400);
        for (int i = 0; i < 400; i++) {
            ck_assert_int_eq(many[i].status, 200);
            if (i % 2)
                ck_assert_str_eq(many[i].body, "alpha");
            ekv_test_resp_free(&many[i]);
        }
    }
    /* requests of two full TLS records and a small third one, sent at once (corked): a body
     * that spans records and reads, whatever OpenSSL has read ahead */
    for (int round = 0; round < 5; round++) {
        char head[200], *req;
        int hlen = snprintf(head, sizeof(head),
                            "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 00000\r\n\r\n", path);
        size_t total = 2 * 16384 + 300 + (size_t)round * 40, blen = total - (size_t)hlen;
        req = malloc(total);
        hlen = snprintf(req, total, "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %05zu\r\n\r\n",
                        path, blen);
        ck_assert_uint_eq((size_t)hlen + blen, total);
        memset(req + hlen, 'b', blen);
        /* corked: the three records reach the server in one go */
        ck_assert_int_eq(setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &(int){1}, sizeof(int)), 0);
        ck_assert_int_eq(ekv_test_send(c, req, total), 0);
        ck_assert_int_eq(setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &(int){0}, sizeof(int)), 0);
        free(req);
        ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
        ck_assert_int_eq(r.status, 200);
        ekv_test_resp_free(&r);
    }
    /* 100-continue: the interim answer comes over TLS before the body is sent */
    ck_assert_int_eq(ekv_test_sendf(c,
                                    "PUT %s HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                                    "Content-Length: 4\r\n\r\n",
                                    path),
                     0);
    ck_assert_int_eq(ekv_test_read(c, &r, 0), EKV_TEST_OK);
    ck_assert_int_eq(r.status, 100);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(ekv_test_send_str(c, "beta"), 0);
    ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
    ck_assert_int_eq(r.status, 200);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(treq(c, "GET", path, NULL, NULL, &r), 200);
    ck_assert_str_eq(r.body, "beta");
    ekv_test_resp_free(&r);
    /* limits as on listen: a header block past max-header-bytes (32 KiB) gets 431 */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(ekv_test_sendf(c, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big),
                     0);
    ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
    ck_assert_int_eq(r.status, 431);
    ekv_test_resp_free(&r);
    ck_assert(ekv_test_wait_eof(c, 5000));
    ekv_test_close(c);
    SSL_CTX_free(ctx);
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- versions and certificates */

static bool handshake_ok(unsigned short port, SSL_CTX *ctx, char *err, size_t errlen)
{
    struct ekv_test_conn *c;
    struct ekv_test_resp r = {0};
    bool ok;

    if (ekv_test_tls_try_connect(port, ctx, NULL, NULL, &c, err, errlen) != 0)
        return false;
    /* under TLS 1.3 a refused client certificate shows on the first read */
    ok = ekv_test_send_str(c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
         ekv_test_read_final(c, &r, 0) == EKV_TEST_OK && r.status == 200;
    if (!ok)
        snprintf(err, errlen, "no answer: %s", c->err);
    ekv_test_resp_free(&r);
    ekv_test_close(c);
    return ok;
}

START_TEST(test_versions)
{
    struct ekv_test_proc *p = start_pop(NULL);
    SSL_CTX *v10 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, TLS1_VERSION, TLS1_VERSION);
    SSL_CTX *v11 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, TLS1_1_VERSION, TLS1_1_VERSION);
    SSL_CTX *v12 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX *v13 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, TLS1_3_VERSION, TLS1_3_VERSION);
    const char *only13[] = {"--tls-min-version", "1.3", NULL};
    char err[256];
    double before;

    ck_assert(ready(p->port));
    before = metric(p->port, "edgekv_tls_handshake_failures_total");
    ck_assert_msg(!handshake_ok(p->tls_port, v10, err, sizeof(err)), "TLS 1.0 accepted");
    ck_assert_msg(!handshake_ok(p->tls_port, v11, err, sizeof(err)), "TLS 1.1 accepted");
    ck_assert_msg(handshake_ok(p->tls_port, v12, err, sizeof(err)), "TLS 1.2: %s", err);
    ck_assert_msg(handshake_ok(p->tls_port, v13, err, sizeof(err)), "TLS 1.3: %s", err);
    ck_assert_double_eq(metric(p->port, "edgekv_tls_handshake_failures_total"), before + 2);
    ck_assert(ekv_test_proc_wait_log(p, "TLS handshake failed (tls: unsupported protocol", 3000));
    stop_pop(p);

    p = start_pop(only13);
    ck_assert_msg(!handshake_ok(p->tls_port, v12, err, sizeof(err)),
                  "TLS 1.2 accepted with tls-min-version 1.3");
    ck_assert_msg(handshake_ok(p->tls_port, v13, err, sizeof(err)), "TLS 1.3: %s", err);
    ck_assert_double_eq(metric(p->port, "edgekv_tls_handshake_failures_total"), 1);
    stop_pop(p);
    SSL_CTX_free(v10);
    SSL_CTX_free(v11);
    SSL_CTX_free(v12);
    SSL_CTX_free(v13);
}
END_TEST

/* What clients make of a certificate from another CA and an expired one (which edgekv warns
 * about at start-up). */
START_TEST(test_server_certificates)
{
    const char *rogue[] = {"--tls-cert-file", cert("rogue.pem"), "--tls-key-file",
                           cert("rogue.key"), NULL};
    const char *expired[] = {"--tls-cert-file", cert("expired.pem"), "--tls-key-file",
                             cert("expired.key"), NULL};
    struct ekv_test_proc *p = start_pop(rogue);
    SSL_CTX *ca = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    SSL_CTX *rca = ekv_test_tls_ctx(cert("rogue-ca.pem"), NULL, NULL, 0, 0);
    char err[256], *out;

    ck_assert(!handshake_ok(p->tls_port, ca, err, sizeof(err)));
    ck_assert_msg(strstr(err, "certificate verify failed") != NULL, "%s", err);
    ck_assert_msg(handshake_ok(p->tls_port, rca, err, sizeof(err)), "%s", err);
    ck_assert_int_eq(curl(&out, p->tls_port, "127.0.0.1", "/healthz"), 60); /* not verified */
    free(out);
    stop_pop(p);

    p = start_pop(expired);
    ck_assert(ekv_test_proc_wait_log(p, "has expired: clients will refuse it", 3000));
    ck_assert(!handshake_ok(p->tls_port, ca, err, sizeof(err)));
    ck_assert_msg(strstr(err, "certificate has expired") != NULL, "%s", err);
    ck_assert_int_eq(curl(&out, p->tls_port, "127.0.0.1", "/healthz"), 60);
    free(out);
    stop_pop(p);
    SSL_CTX_free(ca);
    SSL_CTX_free(rca);
}
END_TEST

START_TEST(test_mtls)
{
    const char *mtls[] = {"--tls-client-ca-file", cert("ca.pem"), NULL};
    struct ekv_test_proc *p = start_pop(mtls);
    SSL_CTX *good = ekv_test_tls_ctx(cert("ca.pem"), cert("client.pem"), cert("client.key"), 0, 0);
    SSL_CTX *rogue =
        ekv_test_tls_ctx(cert("ca.pem"), cert("rogue-client.pem"), cert("rogue-client.key"), 0, 0);
    SSL_CTX *none = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    SSL_CTX *none12 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, TLS1_2_VERSION);
    char err[256], *out;

    ck_assert(ready(p->port));
    ck_assert_msg(handshake_ok(p->tls_port, good, err, sizeof(err)), "%s", err);
    ck_assert_msg(!handshake_ok(p->tls_port, rogue, err, sizeof(err)), "a rogue client got in");
    ck_assert_msg(!handshake_ok(p->tls_port, none, err, sizeof(err)), "no certificate, got in");
    /* TLS 1.2: the handshake itself fails */
    ck_assert_int_ne(ekv_test_tls_try_connect(p->tls_port, none12, NULL, NULL,
                                              &(struct ekv_test_conn *){NULL}, err, sizeof(err)),
                     0);
    ck_assert_double_eq(metric(p->port, "edgekv_tls_handshake_failures_total"), 3);
    /* logged once per client every 10 s: the first of the three */
    ck_assert(ekv_test_proc_wait_log(
        p, "client 127.0.0.1: TLS handshake failed (tls: client certificate verify failed)", 3000));
    /* curl with and without a client certificate */
    ck_assert_int_ne(curl(&out, p->tls_port, "127.0.0.1", "/healthz"), 0);
    free(out);
    ck_assert_int_eq(run(&out, "curl -sS --max-time 10 --cacert '%s' --cert '%s' --key '%s' "
                               "https://127.0.0.1:%u/healthz",
                         cert("ca.pem"), cert("client.pem"), cert("client.key"), p->tls_port),
                     0);
    ck_assert_str_eq(out, "{\"status\":\"ok\"}");
    free(out);
    /* the plain listener asks for nothing */
    ck_assert_int_eq(ekv_test_get_status(p->port, "/healthz"), 200);
    stop_pop(p);
    SSL_CTX_free(good);
    SSL_CTX_free(rogue);
    SSL_CTX_free(none);
    SSL_CTX_free(none12);
}
END_TEST

/* ---------------------------------------------------------------- reload */

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = ekv_test_read_file(from, &len);
    FILE *fp = fopen(to, "w");

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
    free(data);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    ck_assert_int_eq(fclose(fp), 0);
}

/* Sends SIGHUP and waits for the @nth reload line (success or failure) in the log. */
static char *reload(struct ekv_test_proc *p, const char *expect)
{
    char *log;

    ck_assert_int_eq(ekv_test_proc_signal(p, SIGHUP), 0);
    ck_assert_msg(ekv_test_proc_wait_log(p, expect, 5000), "no \"%s\" in the log", expect);
    log = ekv_test_proc_log(p);
    return log;
}

START_TEST(test_reload)
{
    char dir[200], conf[300], crt[300], key[300], text[1200], *log;
    const char *args[] = {"-c", conf, NULL};
    SSL_CTX *ca = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    SSL_CTX *rca = ekv_test_tls_ctx(cert("rogue-ca.pem"), NULL, NULL, 0, 0);
    struct ekv_test_conn *old;
    struct ekv_test_resp r = {0};
    struct ekv_test_proc *p;
    char err[256];

    ekv_test_mkdtemp("reload", dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/edgekv.conf", dir);
    snprintf(crt, sizeof(crt), "%s/fullchain.pem", dir);
    snprintf(key, sizeof(key), "%s/privkey.pem", dir);
    copy_file(cert("server.pem"), crt);
    copy_file(cert("server.key"), key);
    snprintf(text, sizeof(text),
             "# a certbot-style layout: the files change, the paths do not\n"
             "tls-cert-file %s\n"
             "tls-key-file %s\n",
             crt, key);
    write_file(conf, text);
    p = start_pop(args);
    ck_assert_msg(handshake_ok(p->tls_port, ca, err, sizeof(err)), "%s", err);
    old = ekv_test_tls_connect(p->tls_port, ca); /* stays open across the reloads */
    /* a renewal: new files at the same paths, then SIGHUP */
    copy_file(cert("rogue.pem"), crt);
    copy_file(cert("rogue.key"), key);
    free(reload(p, "configuration reloaded"));
    ck_assert_msg(handshake_ok(p->tls_port, rca, err, sizeof(err)), "new certificate: %s", err);
    ck_assert(!handshake_ok(p->tls_port, ca, err, sizeof(err)));
    /* the connection opened before keeps working */
    ck_assert_int_eq(treq(old, "GET", "/healthz", NULL, NULL, &r), 200);
    ekv_test_resp_free(&r);
    /* a certificate that does not load fails the reload; the running one stays */
    write_file(crt, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    log = reload(p, "configuration reload failed");
    snprintf(text, sizeof(text), "%s:2: tls-cert-file: no PEM certificate in %s", conf, crt);
    ck_assert_msg(strstr(log, text) != NULL, "no \"%s\" in\n%s", text, log);
    free(log);
    ck_assert_msg(handshake_ok(p->tls_port, rca, err, sizeof(err)), "old certificate: %s", err);
    /* a key of another certificate too */
    copy_file(cert("rogue.pem"), crt);
    copy_file(cert("client.key"), key);
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGHUP), 0);
    snprintf(text, sizeof(text), "%s:3: tls-key-file: the key in %s does not match", conf, key);
    ck_assert_msg(ekv_test_proc_wait_log(p, text, 5000), "no \"%s\"", text);
    ck_assert_msg(handshake_ok(p->tls_port, rca, err, sizeof(err)), "old certificate: %s", err);
    ck_assert_double_eq(metric(p->port, "edgekv_config_reloads_total{result=\"failure\"}"), 2);
    /* back to the first certificate, and mTLS switched on by the reload */
    copy_file(cert("server.pem"), crt);
    copy_file(cert("server.key"), key);
    snprintf(text, sizeof(text), "tls-cert-file %s\ntls-key-file %s\ntls-client-ca-file %s\n", crt,
             key, cert("ca.pem"));
    write_file(conf, text);
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGHUP), 0);
    ck_assert(ekv_test_proc_wait_log(p, "configuration reloaded: tls-client-ca-file", 5000));
    ck_assert(!handshake_ok(p->tls_port, ca, err, sizeof(err)));
    {
        SSL_CTX *client =
            ekv_test_tls_ctx(cert("ca.pem"), cert("client.pem"), cert("client.key"), 0, 0);
        ck_assert_msg(handshake_ok(p->tls_port, client, err, sizeof(err)), "%s", err);
        SSL_CTX_free(client);
    }
    ck_assert_int_eq(treq(old, "GET", "/healthz", NULL, NULL, &r), 200);
    ekv_test_resp_free(&r);
    ekv_test_close(old);
    stop_pop(p);
    SSL_CTX_free(ca);
    SSL_CTX_free(rca);
}
END_TEST

/* ---------------------------------------------------------------- edgekv -t and start-up */

static void check_t(int want, const char *needle, const char *const *args)
{
    const char *argv[40];
    size_t n = 0;
    char *out = NULL;
    int st;

    argv[n++] = "-t";
    argv[n++] = "--origin";
    argv[n++] = "redis://127.0.0.1:1";
    for (size_t i = 0; args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    st = ekv_test_edgekv_run(argv, 10000, &out);
    ck_assert_msg(st == want && strstr(out, needle) != NULL, "exit %d, want %d and \"%s\":\n%s",
                  st, want, needle, out);
    free(out);
}

START_TEST(test_check_files)
{
    char dir[200], conf[300], junk[300], enc[300], text[1024], *out;
    const char *cmd[8];

    ekv_test_mkdtemp("files", dir, sizeof(dir));
    snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
    write_file(junk, "hello\n");
    snprintf(enc, sizeof(enc), "%s/enc.key", dir);
    ck_assert_int_eq(run(&out, "openssl pkey -in '%s' -aes256 -passout pass:secret -out '%s' 2>&1",
                         cert("server.key"), enc),
                     0);
    free(out);
    check_t(0, "the configuration is valid",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"),
                             "--tls-client-ca-file", cert("ca.pem"), NULL});
    check_t(1, "--tls-cert-file: cannot read /nonexistent.pem: No such file",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             "/nonexistent.pem", "--tls-key-file", cert("server.key"), NULL});
    check_t(1, "--tls-cert-file: no PEM certificate in",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file", junk,
                             "--tls-key-file", cert("server.key"), NULL});
    check_t(1, "--tls-key-file: no PEM private key in",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", junk, NULL});
    check_t(1, "--tls-key-file: no PEM private key in", /* a passphrase: never a prompt */
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", enc, NULL});
    check_t(1, "--tls-client-ca-file: no PEM CA certificate in",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"),
                             "--tls-client-ca-file", junk, NULL});
    check_t(1, "--tls-ciphers: no cipher matches \"NOPE\"",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"),
                             "--tls-ciphers", "NOPE", NULL});
    check_t(1, "--tls-ciphersuites: \"TLS_NOPE\" is not a list",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"),
                             "--tls-ciphersuites", "TLS_NOPE", NULL});
    check_t(1, "--tls-min-version: \"1.1\" is not 1.2 or 1.3",
            (const char *[]){"--tls-min-version", "1.1", NULL});
    check_t(1, "tls-listen needs tls-cert-file and tls-key-file",
            (const char *[]){"--tls-listen", "127.0.0.1:8443", NULL});
    check_t(1, "tls-cert-file is set but tls-listen is empty",
            (const char *[]){"--tls-cert-file", cert("server.pem"), NULL});
    check_t(1, "tls-listen 0.0.0.0:8443 is not a loopback address and no api-token is set",
            (const char *[]){"--tls-listen", "0.0.0.0:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"), NULL});
    check_t(0, "the configuration is valid",
            (const char *[]){"--tls-listen", "0.0.0.0:8443", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"),
                             "--api-token", "t0k3n", NULL});
    check_t(1, "tls-listen 127.0.0.1:8080 overlaps listen 127.0.0.1:8080",
            (const char *[]){"--tls-listen", "127.0.0.1:8080", "--tls-cert-file",
                             cert("server.pem"), "--tls-key-file", cert("server.key"), NULL});
    /* in a file: FILE:LINE names the directive */
    snprintf(conf, sizeof(conf), "%s/edgekv.conf", dir);
    snprintf(text, sizeof(text),
             "origin redis://127.0.0.1:1\ntls-listen 127.0.0.1:8443\n\ntls-cert-file %s\n"
             "tls-key-file %s\n",
             cert("server.pem"), cert("client.key"));
    write_file(conf, text);
    cmd[0] = "-t";
    cmd[1] = "-c";
    cmd[2] = conf;
    cmd[3] = NULL;
    ck_assert_int_eq(ekv_test_edgekv_run(cmd, 10000, &out), 1);
    snprintf(text, sizeof(text), "%s:5: tls-key-file: the key in %s does not match the certificate",
             conf, cert("client.key"));
    ck_assert_msg(strstr(out, text) != NULL, "no \"%s\" in\n%s", text, out);
    free(out);
    /* and the server refuses to start with it */
    cmd[0] = "-c";
    cmd[1] = conf;
    cmd[2] = NULL;
    ck_assert_int_eq(ekv_test_edgekv_run(cmd, 10000, &out), 1);
    ck_assert_msg(strstr(out, "tls-key-file: the key in") != NULL, "%s", out);
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- hostile clients */

START_TEST(test_garbage_and_plaintext)
{
    struct ekv_test_proc *p = start_pop(NULL);
    struct ekv_test_conn *c;
    struct ekv_test_resp r = {0};
    char junk[600];

    ck_assert(ready(p->port));
    /* plain HTTP on the TLS port: a plain 400 that says so, then the connection closes */
    c = ekv_test_connect(p->tls_port);
    ck_assert_int_eq(ekv_test_send_str(c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    ck_assert_int_eq(ekv_test_read(c, &r, 0), EKV_TEST_OK);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "HTTPS"));
    ekv_test_resp_free(&r);
    ck_assert(ekv_test_wait_eof(c, 3000));
    ekv_test_close(c);
    /* bytes that are no TLS at all: closed, nothing answered */
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 + 3);
    c = ekv_test_connect(p->tls_port);
    ck_assert_int_eq(ekv_test_send(c, junk, sizeof(junk)), 0);
    ck_assert(ekv_test_wait_eof(c, 3000));
    ck_assert_uint_eq(c->len, 0);
    ekv_test_close(c);
    /* a TLS record header claiming a huge handshake message */
    c = ekv_test_connect(p->tls_port);
    ck_assert_int_eq(ekv_test_send(c, "\x16\x03\x01\xff\xff\x01\xff\xff\xff", 9), 0);
    ck_assert(ekv_test_wait_eof(c, 3000));
    ekv_test_close(c);
    ck_assert_double_eq(metric(p->port, "edgekv_tls_handshake_failures_total"), 3);
    ck_assert(ekv_test_proc_wait_log(p, "TLS handshake failed (tls: plain HTTP request", 3000));
    /* still serving */
    {
        SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
        char err[256];
        ck_assert_msg(handshake_ok(p->tls_port, ctx, err, sizeof(err)), "%s", err);
        SSL_CTX_free(ctx);
    }
    stop_pop(p);
}
END_TEST

/* 200 connections that start a handshake and stall (nothing, or a few bytes of a ClientHello):
 * the worker keeps serving everyone else at once, and header-timeout closes them all. */
START_TEST(test_half_open_handshakes)
{
    const char *args[] = {"--header-timeout", "2s", NULL};
    struct ekv_test_proc *p = start_pop(args);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    struct ekv_test_conn *stalled[200];
    uint64_t t0, worst = 0;
    char err[256];

    ck_assert(ready(p->port));
    for (int i = 0; i < 200; i++) {
        stalled[i] = ekv_test_connect(p->tls_port);
        if (i % 2 == 1) /* the start of a ClientHello's record, then silence */
            ck_assert_int_eq(ekv_test_send(stalled[i], "\x16\x03\x01\x02\x00\x01\x00\x01", 8), 0);
    }
    for (int i = 0; i < 20; i++) {
        uint64_t t = ekv_test_now_ms();
        ck_assert_msg(handshake_ok(p->tls_port, ctx, err, sizeof(err)), "%s", err);
        t = ekv_test_now_ms() - t;
        worst = t > worst ? t : worst;
    }
    ck_assert_msg(worst < 1000, "a handshake and request took %llu ms beside 200 stalled ones",
                  (unsigned long long)worst);
    ck_assert_int_eq(ekv_test_get_status(p->port, "/healthz"), 200);
    /* header-timeout (2 s from accept) closes every stalled one, counted as failures */
    t0 = ekv_test_now_ms();
    for (int i = 0; i < 200; i++) {
        uint64_t left = t0 + 6000 > ekv_test_now_ms() ? t0 + 6000 - ekv_test_now_ms() : 0;
        ck_assert_msg(ekv_test_wait_eof(stalled[i], (unsigned)left), "connection %d still open",
                      i);
        ekv_test_close(stalled[i]);
    }
    ck_assert_double_eq(metric(p->port, "edgekv_tls_handshake_failures_total"), 200);
    ck_assert(ekv_test_proc_wait_log(p, "TLS handshake failed (tls: handshake timed out", 3000));
    ck_assert_double_eq(open_connections(p->port), 1);
    SSL_CTX_free(ctx);
    stop_pop(p);
}
END_TEST

/* A client that reads a little of a 4 MiB value and resets the connection: the worker lets it
 * go (no leak, no crash) and goes on serving the same value. */
START_TEST(test_client_vanishes_mid_response)
{
    struct ekv_test_proc *p = start_pop(NULL);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    size_t vlen = 4 << 20;
    char *value = malloc(vlen), sid[64], path[200], buf[4096];
    struct ekv_test_conn *c;
    struct ekv_test_resp r = {0};

    ck_assert(ready(p->port));
    for (size_t i = 0; i < vlen; i++)
        value[i] = (char)('a' + i % 26);
    apic_create_store(p->port, NULL, "vanish", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/big", sid);
    c = ekv_test_tls_connect(p->tls_port, ctx);
    ck_assert_int_eq(ekv_test_sendf(c, "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                                    path, vlen),
                     0);
    ck_assert_int_eq(ekv_test_send(c, value, vlen), 0);
    ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
    ck_assert_int_eq(r.status, 200);
    ekv_test_resp_free(&r);
    for (int round = 0; round < 3; round++) { /* from the origin, then from the cache */
        struct ekv_test_conn *v = ekv_test_tls_connect(p->tls_port, ctx);
        struct linger lg = {1, 0};
        ck_assert_int_eq(ekv_test_sendf(v, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path), 0);
        ck_assert_int_gt(SSL_read(v->ssl, buf, sizeof(buf)), 0);
        setsockopt(v->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* close = RST */
        ekv_test_close(v);
    }
    /* the keep-alive connection still gets the whole value */
    ck_assert_int_eq(treq(c, "GET", path, NULL, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, vlen);
    ck_assert_int_eq(memcmp(r.body, value, vlen), 0);
    ekv_test_resp_free(&r);
    ekv_test_close(c);
    ck_assert_double_eq(open_connections(p->port), 1);
    free(value);
    SSL_CTX_free(ctx);
    stop_pop(p);
}
END_TEST

/* ---------------------------------------------------------------- session resumption */

/* A full handshake and a request; returns the session to resume (SSL_SESSION_free it). */
static SSL_SESSION *first_session(unsigned short port, SSL_CTX *ctx)
{
    struct ekv_test_conn *c = ekv_test_tls_connect(port, ctx);
    struct ekv_test_resp r = {0};
    SSL_SESSION *s;

    ck_assert_int_eq(SSL_session_reused(c->ssl), 0);
    ck_assert_int_eq(treq(c, "GET", "/healthz", NULL, NULL, &r), 200); /* tickets come by now */
    ekv_test_resp_free(&r);
    s = SSL_get1_session(c->ssl);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(SSL_SESSION_is_resumable(s), 1);
    ekv_test_close(c);
    return s;
}

/* Resumes *@s (a TLS 1.3 ticket is for one use, as RFC 8446 advises: *@s is replaced by the
 * session of the new connection). Returns whether the server resumed it. */
static bool resumes(unsigned short port, SSL_CTX *ctx, SSL_SESSION **s)
{
    struct ekv_test_conn *c;
    struct ekv_test_resp r = {0};
    char err[256];
    bool reused;

    ck_assert_msg(ekv_test_tls_try_connect(port, ctx, NULL, *s, &c, err, sizeof(err)) == 0, "%s",
                  err);
    reused = SSL_session_reused(c->ssl) == 1;
    ck_assert_int_eq(treq(c, "GET", "/healthz", NULL, NULL, &r), 200);
    ekv_test_resp_free(&r);
    SSL_SESSION_free(*s);
    *s = SSL_get1_session(c->ssl);
    ekv_test_close(c);
    return reused;
}

START_TEST(test_session_resumption)
{
    const char *mtls[] = {"--tls-client-ca-file", cert("ca.pem"), NULL};
    struct ekv_test_proc *p = start_pop(NULL);
    SSL_CTX *v13 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, TLS1_3_VERSION, 0);
    SSL_CTX *v12 = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, TLS1_2_VERSION);
    SSL_CTX *client = ekv_test_tls_ctx(cert("ca.pem"), cert("client.pem"), cert("client.key"), 0, 0);
    SSL_SESSION *s13 = first_session(p->tls_port, v13), *s12 = first_session(p->tls_port, v12);
    char *out;

    ck_assert(resumes(p->tls_port, v13, &s13));
    ck_assert(resumes(p->tls_port, v12, &s12));
    ck_assert(resumes(p->tls_port, v12, &s12));
    /* a reload keeps the ticket keys: sessions survive it */
    free(reload(p, "configuration reloaded"));
    ck_assert(resumes(p->tls_port, v13, &s13));
    ck_assert(resumes(p->tls_port, v12, &s12));
    SSL_SESSION_free(s13);
    SSL_SESSION_free(s12);
    /* the openssl command line client says so too */
    /* (a request, then -ign_eof: it reads until edgekv closes, tickets included) */
#define S_CLIENT                                                                                   \
    "printf 'GET /healthz HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n' | "          \
    "openssl s_client -ign_eof -connect 127.0.0.1:%u -CAfile ca.pem "
    ck_assert_int_eq(run(&out,
                         "cd '%s' && " S_CLIENT "-sess_out sess 2>&1 | grep -E '^(New|Reused),' && "
                         S_CLIENT "-sess_in sess 2>&1 | grep -E '^(New|Reused),'",
                         certs, p->tls_port, p->tls_port),
                     0);
#undef S_CLIENT
    ck_assert_msg(strstr(out, "New,") != NULL && strstr(out, "Reused,") != NULL, "%s", out);
    free(out);
    stop_pop(p);
    /* with mTLS (the session id context is set) */
    p = start_pop(mtls);
    s13 = first_session(p->tls_port, client);
    ck_assert(resumes(p->tls_port, client, &s13));
    SSL_SESSION_free(s13);
    stop_pop(p);
    SSL_CTX_free(v13);
    SSL_CTX_free(v12);
    SSL_CTX_free(client);
}
END_TEST

/* A ClientHello sent one byte every 100 ms: progress does not move the deadline, the
 * handshake must be over within header-timeout of the accept. */
START_TEST(test_dribbled_client_hello)
{
    const char *args[] = {"--header-timeout", "1500ms", NULL};
    struct ekv_test_proc *p = start_pop(args);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    struct ekv_test_conn *c;
    char *hello;
    long len, sent = 0;
    uint64_t t0;

    /* a real ClientHello, from a client whose output goes to memory */
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    ck_assert_int_ne(SSL_do_handshake(ssl), 1);
    len = BIO_get_mem_data(wb, &hello);
    ck_assert_int_gt(len, 100);
    c = ekv_test_connect(p->tls_port);
    t0 = ekv_test_now_ms();
    while (sent < len && !ekv_test_wait_eof(c, 100)) {
        if (ekv_test_send(c, hello + sent, 1) != 0)
            break;
        sent++;
    }
    ck_assert(ekv_test_wait_eof(c, 3000));
    ck_assert_msg(sent < len, "the whole ClientHello went through (%ld bytes)", len);
    ck_assert_msg(ekv_test_now_ms() - t0 < 2500, "closed after %llu ms, header-timeout 1500ms",
                  (unsigned long long)(ekv_test_now_ms() - t0));
    ck_assert_msg(sent > 5, "closed after %ld bytes only", sent);
    ck_assert_double_eq(metric(p->port, "edgekv_tls_handshake_failures_total"), 1);
    ekv_test_close(c);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    stop_pop(p);
}
END_TEST

/* SIGTERM with a request in flight on a TLS connection (Redis paused): it is answered, with
 * Connection: close, then edgekv exits 0. */
START_TEST(test_graceful_stop_in_flight)
{
    const char *args[] = {"--origin-timeout", "5s", NULL};
    struct ekv_test_proc *p = start_pop(args);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    struct ekv_test_conn *c;
    struct ekv_test_resp r = {0};
    char sid[64], path[200], *reply;

    ck_assert(ready(p->port));
    apic_create_store(p->port, NULL, "drain", sid);
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys/k", sid);
    c = ekv_test_tls_connect(p->tls_port, ctx);
    reply = ekv_test_redis_cmd(redis, "CLIENT PAUSE %s ALL", "1500");
    ck_assert_str_eq(reply, "OK");
    free(reply);
    ck_assert_int_eq(ekv_test_sendf(c, "PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                                       "drain",
                                    path),
                     0);
    ekv_test_sleep_ms(200); /* the request is with Redis */
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGTERM), 0);
    ck_assert_int_eq(ekv_test_read_final(c, &r, 0), EKV_TEST_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(ekv_test_resp_header(&r, "Connection"), "close");
    ekv_test_resp_free(&r);
    ck_assert(ekv_test_wait_eof(c, 5000));
    ck_assert_int_eq(ekv_test_proc_wait(p, 10000), 0);
    ekv_test_proc_free(p);
    ekv_test_close(c);
    SSL_CTX_free(ctx);
}
END_TEST

/* Past max-connections a TLS client is closed at once (no plain 503 on a TLS port), and
 * counted as refused; the connections before it go on. */
START_TEST(test_max_connections)
{
    const char *args[] = {"--max-connections", "1", "--admin-listen", "127.0.0.1:0", NULL};
    struct ekv_test_proc *p = start_pop(args);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    struct ekv_test_conn *c = ekv_test_tls_connect(p->tls_port, ctx), *c2;
    struct ekv_test_resp r = {0};
    char err[256];

    ck_assert_int_eq(treq(c, "GET", "/kv/none/k", NULL, NULL, &r), 404);
    ekv_test_resp_free(&r);
    ck_assert_int_ne(ekv_test_tls_try_connect(p->tls_port, ctx, NULL, NULL, &c2, err, sizeof(err)),
                     0);
    ck_assert_double_eq(apic_metric(p->admin_port, "edgekv_http_connections_refused_total"), 1);
    ck_assert_int_eq(treq(c, "GET", "/kv/none/k", NULL, NULL, &r), 404);
    ekv_test_resp_free(&r);
    ekv_test_close(c);
    SSL_CTX_free(ctx);
    stop_pop(p);
}
END_TEST

/* SIGTERM: an idle TLS connection is closed and edgekv stops at once. */
START_TEST(test_graceful_stop)
{
    struct ekv_test_proc *p = start_pop(NULL);
    SSL_CTX *ctx = ekv_test_tls_ctx(cert("ca.pem"), NULL, NULL, 0, 0);
    struct ekv_test_conn *c = ekv_test_tls_connect(p->tls_port, ctx);
    struct ekv_test_resp r = {0};
    uint64_t t0;

    ck_assert_int_eq(treq(c, "GET", "/healthz", NULL, NULL, &r), 200);
    ekv_test_resp_free(&r);
    t0 = ekv_test_now_ms();
    ck_assert_int_eq(ekv_test_proc_signal(p, SIGTERM), 0);
    ck_assert(ekv_test_wait_eof(c, 5000));
    ck_assert_int_eq(ekv_test_proc_wait(p, 5000), 0);
    ck_assert_uint_lt(ekv_test_now_ms() - t0, 3000);
    ekv_test_proc_free(p);
    ekv_test_close(c);
    SSL_CTX_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("https");
    TCase *tc = tcase_create("clients");

    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("redis-server not found (set REDIS_SERVER)");
    tcase_add_unchecked_fixture(tc, start_redis, stop_redis);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_requests_with_curl);
    tcase_add_test(tc, test_framing_over_tls);
    tcase_add_test(tc, test_versions);
    tcase_add_test(tc, test_server_certificates);
    tcase_add_test(tc, test_mtls);
    tcase_add_test(tc, test_reload);
    tcase_add_test(tc, test_check_files);
    tcase_add_test(tc, test_garbage_and_plaintext);
    tcase_add_test(tc, test_half_open_handshakes);
    tcase_add_test(tc, test_client_vanishes_mid_response);
    tcase_add_test(tc, test_session_resumption);
    tcase_add_test(tc, test_dribbled_client_hello);
    tcase_add_test(tc, test_graceful_stop_in_flight);
    tcase_add_test(tc, test_max_connections);
    tcase_add_test(tc, test_graceful_stop);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
