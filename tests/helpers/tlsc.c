/* tlsc.c - the HTTPS side of the test HTTP client: client TLS contexts (a CA to verify with, a
 * client certificate, TLS versions) and connections whose handshake is done here, after which
 * httpc.c's sends and reads go through the SSL. Blocking sockets, as the plain client. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "testutil.h"

struct ssl_ctx_st *ekv_test_tls_ctx(const char *ca, const char *cert, const char *key,
                                    int min_version, int max_version)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    ck_assert_ptr_nonnull(ctx);
    if (max_version != 0 && max_version < TLS1_2_VERSION) {
        /* OpenSSL 3 offers TLS 1.0 and 1.1 (and their SHA-1 signatures) only at level 0 */
        SSL_CTX_set_security_level(ctx, 0);
        ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
    }
    ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, min_version), 1);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
    if (ca != NULL) {
        ck_assert_msg(SSL_CTX_load_verify_locations(ctx, ca, NULL) == 1, "cannot load %s", ca);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (cert != NULL) {
        ck_assert_msg(SSL_CTX_use_certificate_chain_file(ctx, cert) == 1, "cannot load %s", cert);
        ck_assert_msg(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1,
                      "cannot load %s", key);
    }
    ck_assert_int_eq(SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1), 0);
    /* keep the sessions the server sends (tickets), for resumption tests */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return ctx;
}

int ekv_test_tls_try_connect(unsigned short port, struct ssl_ctx_st *ctx, const char *sni,
                             struct ssl_session_st *sess, struct ekv_test_conn **out, char *err,
                             size_t errlen)
{
    struct ekv_test_conn *c = ekv_test_connect(port);
    SSL *ssl = SSL_new(ctx);
    int r;

    *out = NULL;
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_set_fd(ssl, c->fd), 1);
    if (sni != NULL)
        ck_assert_int_eq(SSL_set_tlsext_host_name(ssl, sni), 1);
    if (sess != NULL)
        ck_assert_int_eq(SSL_set_session(ssl, sess), 1);
    c->ssl = ssl;
    ERR_clear_error();
    errno = 0;
    r = SSL_connect(ssl);
    if (r != 1) {
        unsigned long e = ERR_peek_last_error();
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            snprintf(err, errlen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        else if (e != 0)
            snprintf(err, errlen, "%s", ERR_reason_error_string(e));
        else
            snprintf(err, errlen, "handshake failed (%s)", errno != 0 ? strerror(errno) : "EOF");
        ERR_clear_error();
        ekv_test_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

struct ekv_test_conn *ekv_test_tls_connect(unsigned short port, struct ssl_ctx_st *ctx)
{
    struct ekv_test_conn *c;
    char err[256];

    ck_assert_msg(ekv_test_tls_try_connect(port, ctx, NULL, NULL, &c, err, sizeof(err)) == 0,
                  "TLS handshake with 127.0.0.1:%u: %s", port, err);
    return c;
}
