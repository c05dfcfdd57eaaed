/* check_http_tls.c - the HTTPS server context of src/http/tls.c, in process: handshakes over a
 * socketpair between a server SSL of ekv_http_tls_new() and an OpenSSL client, for what the
 * end-to-end suite (tests/integration/check_https) cannot wait for: session ticket keys that
 * rotate (a ticket of the previous key still resumes and is renewed, one three keys old does
 * not), and a reload's new context that shares the ring. Certificates from mkcerts.sh. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "edgekv/http.h"

#include "http_int.h"
#include "testutil.h"

static char certs[200];
static char paths[4][300];

static void make_certs(void)
{
    ekv_test_mkdtemp("certs", certs, sizeof(certs));
    ekv_test_make_certs(certs);
    snprintf(paths[0], sizeof(paths[0]), "%s/server.pem", certs);
    snprintf(paths[1], sizeof(paths[1]), "%s/server.key", certs);
    snprintf(paths[2], sizeof(paths[2]), "%s/ca.pem", certs);
}

static void remove_certs(void)
{
    ekv_test_rm_rf(certs);
}

static struct ekv_http_tls *context(struct ekv_http_tickets *tk)
{
    struct ekv_http_tls_opts o = {
        .cert_file = paths[0], .cert_label = "tls-cert-file",
        .key_file = paths[1], .key_label = "tls-key-file",
        .tickets = tk,
    };
    char err[512];
    struct ekv_http_tls *t = ekv_http_tls_new(&o, NULL, 0, err, sizeof(err));

    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

/* Steps @ssl's handshake or read once (non-blocking). Returns 1 when done, 0 to go on. */
static int step(SSL *ssl, bool reading)
{
    char buf[16];
    int r = reading ? SSL_read(ssl, buf, sizeof(buf)) : SSL_do_handshake(ssl);
    int e;

    if (r > 0)
        return 1;
    e = SSL_get_error(ssl, r);
    ck_assert_msg(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE, "TLS error %d: %s", e,
                  ERR_reason_error_string(ERR_get_error()));
    return 0;
}

/* One connection between a server SSL of @t and a client of @cctx resuming @sess (or none):
 * the handshake, then one byte from the server (so that the client has read its ticket).
 * Returns whether the session was resumed; *@out (if not NULL) gets the client's session. */
static bool connect_once(struct ekv_http_tls *t, SSL_CTX *cctx, SSL_SESSION *sess,
                         SSL_SESSION **out)
{
    int sv[2];
    SSL *s, *c;
    bool sdone = false, cdone = false, reused;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    s = ekv_http_tls_ssl_new(t, sv[0]);
    ck_assert_ptr_nonnull(s);
    c = SSL_new(cctx);
    ck_assert_ptr_nonnull(c);
    SSL_set_fd(c, sv[1]);
    SSL_set_connect_state(c);
    if (sess != NULL)
        ck_assert_int_eq(SSL_set_session(c, sess), 1);
    for (int i = 0; i < 1000 && !(sdone && cdone); i++) {
        if (!cdone)
            cdone = step(c, false);
        if (!sdone)
            sdone = step(s, false);
    }
    ck_assert(sdone && cdone);
    reused = SSL_session_reused(s) == 1;
    ck_assert_int_eq(reused, SSL_session_reused(c) == 1);
    ck_assert_int_eq(SSL_write(s, "x", 1), 1); /* after the tickets, for TLS 1.3 */
    cdone = false;
    for (int i = 0; i < 1000 && !cdone; i++)
        cdone = step(c, true);
    ck_assert(cdone);
    if (out != NULL)
        *out = SSL_get1_session(c);
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); /* keep its session */
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c);
    SSL_free(s);
    close(sv[0]);
    close(sv[1]);
    return reused;
}

static SSL_CTX *client(int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, paths[2], NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    return ctx;
}

/* TLS 1.2 (a ticket may be used again there): one of the current key resumes as is, one of the
 * previous key resumes and is renewed, one three rotations old is refused (a full handshake). */
START_TEST(test_ticket_keys_rotate)
{
    struct ekv_http_tickets *tk = ekv_http_tickets_new(1);
    struct ekv_http_tls *t = context(tk);
    SSL_CTX *cctx = client(TLS1_2_VERSION);
    SSL_SESSION *s0, *renewed;

    ck_assert(!connect_once(t, cctx, NULL, &s0)); /* a ticket of key 0 */
    ck_assert(connect_once(t, cctx, s0, NULL));
    ekv_test_sleep_ms(1100);
    ck_assert(!connect_once(t, cctx, NULL, NULL)); /* a new ticket: key 1 made, key 0 kept */
    ck_assert(connect_once(t, cctx, s0, &renewed));
    ck_assert(connect_once(t, cctx, renewed, NULL)); /* the renewed ticket is of key 1 */
    for (int i = 0; i < 2; i++) {
        ekv_test_sleep_ms(1100);
        ck_assert(!connect_once(t, cctx, NULL, NULL)); /* keys 2, then 3: key 0 is gone */
    }
    ck_assert_msg(!connect_once(t, cctx, s0, NULL), "a ticket of a key 3 rotations old resumed");
    SSL_SESSION_free(s0);
    SSL_SESSION_free(renewed);
    SSL_CTX_free(cctx);
    ekv_http_tls_free(t);
    ekv_http_tickets_free(tk);
}
END_TEST

/* TLS 1.3: resumption, also across a new context sharing the ring (a reload); a context with
 * other keys (a restart) does a full handshake. */
START_TEST(test_tickets_across_contexts)
{
    struct ekv_http_tickets *tk = ekv_http_tickets_new(3600), *other = ekv_http_tickets_new(3600);
    struct ekv_http_tls *a = context(tk), *b, *c = context(other);
    SSL_CTX *cctx = client(TLS1_3_VERSION);
    SSL_SESSION *s, *s2;

    ck_assert(!connect_once(a, cctx, NULL, &s));
    ck_assert(connect_once(a, cctx, s, &s2));
    SSL_SESSION_free(s);
    b = context(tk);
    ekv_http_tls_free(a); /* the old context goes with its snapshot */
    ck_assert(connect_once(b, cctx, s2, &s));
    ck_assert(!connect_once(c, cctx, s, NULL));
    SSL_SESSION_free(s);
    SSL_SESSION_free(s2);
    SSL_CTX_free(cctx);
    ekv_http_tls_free(b);
    ekv_http_tls_free(c);
    ekv_http_tickets_free(tk);
    ekv_http_tickets_free(other);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_tls");
    TCase *tc = tcase_create("tickets");

    tcase_add_unchecked_fixture(tc, make_certs, remove_certs);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ticket_keys_rotate);
    tcase_add_test(tc, test_tickets_across_contexts);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
