/* tls.c - TLS to the origin (rediss://): one client SSL_CTX per process, made at start-up from
 * the origin-tls-* directives (CA bundle or the system's store, an optional client certificate,
 * TLS 1.2 at least), and one SSL per connection that sends SNI and verifies the expected name
 * (a DNS name, or an IP address against the certificate's IP SANs). Never a plaintext
 * fallback: a handshake or verification that fails is a failed connection like any other. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "edgekv/alloc.h"
#include "edgekv/log.h"
#include "edgekv/origin.h"

#include "origin_int.h"

struct ekv_origin_tls {
    SSL_CTX *ctx;
    char *name;  /* the name verified and sent as SNI (NULL: the address itself) */
    bool verify;
};

/* The first error OpenSSL queued, as "what: reason", and the queue emptied. */
static void ssl_err(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errlen, "%s%s%s: %s", what, file != NULL ? " " : "", file != NULL ? file : "",
             reason != NULL ? reason : "unknown error");
    ERR_clear_error();
}

struct ekv_origin_tls *ekv_origin_tls_new(const struct ekv_origin_tls_opts *o, char *err,
                                          size_t errlen)
{
    struct ekv_origin_tls *t = ekv_calloc(1, sizeof(*t));

    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL) {
        ssl_err(err, errlen, "cannot make a TLS context", NULL);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_RELEASE_BUFFERS);
    t->verify = o->verify;
    if (o->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1) {
            ssl_err(err, errlen, "origin-tls-ca-file: cannot load", o->ca_file);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        ssl_err(err, errlen, "cannot load the system's trust store", NULL);
        goto fail;
    }
    if (o->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1) {
            ssl_err(err, errlen, "origin-tls-cert-file: cannot load", o->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(t->ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
            ssl_err(err, errlen,
                    mismatch ? "origin-tls-key-file: does not match origin-tls-cert-file:"
                             : "origin-tls-key-file: cannot load",
                    o->key_file);
            goto fail;
        }
        if (SSL_CTX_check_private_key(t->ctx) != 1) {
            ssl_err(err, errlen, "origin-tls-key-file: does not match origin-tls-cert-file",
                    o->key_file);
            goto fail;
        }
    }
    SSL_CTX_set_verify(t->ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (o->server_name != NULL)
        t->name = ekv_strdup(o->server_name);
    return t;
fail:
    ekv_origin_tls_free(t);
    return NULL;
}

void ekv_origin_tls_free(struct ekv_origin_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    ekv_free(t->name);
    ekv_free(t);
}

bool ekv_origin_tls_verifies(const struct ekv_origin_tls *t)
{
    return t->verify;
}

SSL *ekv_origin_tls_ssl_new(const struct ekv_origin_tls *t, const char *host)
{
    const char *name = t->name != NULL ? t->name : host;
    unsigned char ip[16];
    bool is_ip = name != NULL &&
                 (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1);
    SSL *ssl = SSL_new(t->ctx);

    if (ssl == NULL)
        return NULL;
    if (name != NULL && !is_ip)
        (void)SSL_set_tlsext_host_name(ssl, name); /* SNI is for names, never addresses */
    if (t->verify && name != NULL) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                       : X509_VERIFY_PARAM_set1_host(param, name, 0);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    return ssl;
}

void ekv_origin_tls_why(SSL *ssl, unsigned long err, char *why, size_t whylen)
{
    long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (v != X509_V_OK)
        snprintf(why, whylen, "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
    else if (err != 0 && ERR_reason_error_string(err) != NULL)
        snprintf(why, whylen, "tls: %s", ERR_reason_error_string(err));
    else
        snprintf(why, whylen, "tls: handshake failed");
}
