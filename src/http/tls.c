/* tls.c - the HTTPS server context: certificate, key and client CA loaded from PEM files with
 * errors that name the directive, TLS 1.2+ (or 1.3 only), ALPN http/1.1, and session tickets
 * whose keys rotate (a key ring shared by the contexts of one process, so that a reload does not
 * invalidate every client's session). The connections themselves are driven by conn.c. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "edgekv/alloc.h"
#include "edgekv/log.h"

#include "http_int.h"

#define NKEYS 3 /* the current ticket key and the two before it */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t created; /* 0: unused slot */
};

struct ekv_http_tickets {
    pthread_mutex_t lock;  /* every worker's handshakes use the ring */
    unsigned rotate_s;
    struct ticket_key keys[NKEYS]; /* keys[0] is the current one */
};

struct ekv_http_tls {
    SSL_CTX *ctx;
};

/* ---------------------------------------------------------------- ticket keys */

static void key_make(struct ticket_key *k, time_t now)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        EKV_FATAL("no random bytes for a TLS session ticket key");
    k->created = now;
}

struct ekv_http_tickets *ekv_http_tickets_new(unsigned rotate_s)
{
    struct ekv_http_tickets *tk = ekv_calloc(1, sizeof(*tk));

    pthread_mutex_init(&tk->lock, NULL);
    tk->rotate_s = rotate_s > 0 ? rotate_s : 3600;
    key_make(&tk->keys[0], time(NULL));
    return tk;
}

void ekv_http_tickets_free(struct ekv_http_tickets *tk)
{
    if (tk == NULL)
        return;
    OPENSSL_cleanse(tk->keys, sizeof(tk->keys));
    pthread_mutex_destroy(&tk->lock);
    ekv_free(tk);
}

/* OpenSSL's ticket callback: encrypt with the current key (rotating it when it is old), decrypt
 * with whichever key of the ring made the ticket (asking for a new ticket if it is not the
 * current one). 1 = go on, 2 = go on and renew, 0 = unknown key (a full handshake), -1 = error. */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct ekv_http_tickets *tk = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct ticket_key k;
    OSSL_PARAM params[3];
    int rc = 1;

    pthread_mutex_lock(&tk->lock);
    if (enc) {
        time_t now = time(NULL);
        if (now - tk->keys[0].created >= (time_t)tk->rotate_s) {
            memmove(&tk->keys[1], &tk->keys[0], (NKEYS - 1) * sizeof(tk->keys[0]));
            key_make(&tk->keys[0], now);
        }
        k = tk->keys[0];
    } else {
        int i = 0;
        while (i < NKEYS && (tk->keys[i].created == 0 || memcmp(tk->keys[i].name, name, 16) != 0))
            i++;
        if (i == NKEYS) {
            pthread_mutex_unlock(&tk->lock);
            return 0;
        }
        k = tk->keys[i];
        /* TLS 1.3 sends a new ticket on resumption only when asked to (2): tickets are for one
         * use there (RFC 8446 C.4); under 1.2 one with the current key is kept (1) */
        rc = i == 0 && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
    }
    pthread_mutex_unlock(&tk->lock);
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (enc) {
        memcpy(name, k.name, 16);
        if (RAND_bytes(iv, 16) != 1 ||
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            rc = -1;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        rc = -1;
    }
    if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---------------------------------------------------------------- the context */

/* ALPN: http/1.1 when the client offers it; a client that offers only others (h2) goes on
 * without ALPN rather than failing. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* A key protected by a passphrase would make OpenSSL prompt on the terminal: refuse it. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    return 0;
}

/* "LABEL: WHAT FILE: reason" from OpenSSL's first queued error; the queue is emptied. */
static void ssl_err(char *err, size_t errlen, const char *label, const char *what,
                    const char *file)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errlen, "%s: %s %s: %s", label, what, file,
             reason != NULL ? reason : "unknown error");
    ERR_clear_error();
}

/* "readable": opened now, so that a permission problem says so plainly (OpenSSL's own message
 * is "system lib"). */
static bool readable(const char *file, const char *label, char *err, size_t errlen)
{
    FILE *fp = fopen(file, "r");

    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot read %s: %s", label, file, strerror(errno));
        return false;
    }
    fclose(fp);
    return true;
}

static bool load_cert(SSL_CTX *ctx, const struct ekv_http_tls_opts *o, char *warn,
                      size_t warnlen, char *err, size_t errlen)
{
    X509 *x;

    if (!readable(o->cert_file, o->cert_label, err, errlen))
        return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        ssl_err(err, errlen, o->cert_label, "no PEM certificate in", o->cert_file);
        return false;
    }
    x = SSL_CTX_get0_certificate(ctx);
    if (warn != NULL && x != NULL && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        snprintf(warn, warnlen, "%s: the certificate in %s has expired: clients will refuse it",
                 o->cert_label, o->cert_file);
    if (!readable(o->key_file, o->key_label, err, errlen))
        return false;
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, errlen, "%s: the key in %s does not match the certificate in %s",
                     o->key_label, o->key_file, o->cert_file);
            ERR_clear_error();
        } else {
            ssl_err(err, errlen, o->key_label, "no PEM private key in", o->key_file);
        }
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s: the key in %s does not match the certificate in %s",
                 o->key_label, o->key_file, o->cert_file);
        ERR_clear_error();
        return false;
    }
    return true;
}

static bool load_client_ca(SSL_CTX *ctx, const struct ekv_http_tls_opts *o, char *err,
                           size_t errlen)
{
    STACK_OF(X509_NAME) *names;

    if (!readable(o->client_ca_file, o->client_ca_label, err, errlen))
        return false;
    if (SSL_CTX_load_verify_locations(ctx, o->client_ca_file, NULL) != 1) {
        ssl_err(err, errlen, o->client_ca_label, "no PEM CA certificate in", o->client_ca_file);
        return false;
    }
    names = SSL_load_client_CA_file(o->client_ca_file);
    if (names == NULL) {
        ssl_err(err, errlen, o->client_ca_label, "no PEM CA certificate in", o->client_ca_file);
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* the CAs named in the CertificateRequest */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return true;
}

struct ekv_http_tls *ekv_http_tls_new(const struct ekv_http_tls_opts *o, char *warn,
                                      size_t warnlen, char *err, size_t errlen)
{
    static const unsigned char sid_ctx[] = "edgekv";
    struct ekv_http_tls *t = ekv_calloc(1, sizeof(*t));
    SSL_CTX *ctx;

    if (warn != NULL && warnlen > 0)
        warn[0] = '\0';
    ERR_clear_error();
    ctx = t->ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot make a TLS context: %s",
                 ERR_reason_error_string(ERR_get_error()));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, o->tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* no renegotiation (a client could make the server do handshakes at will), the server's
     * cipher order, a client that closes without close_notify is an EOF, not an error */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    /* writes of part of a buffer (one record at a time, out of an evbuffer whose first chunk
     * may move), and no 34 KiB of buffers kept per idle keep-alive connection */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* read(2) as much as the socket holds (several pipelined records at once), not a record
     * header then its body: one system call per request, as on a plain connection */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (!load_cert(ctx, o, warn, warnlen, err, errlen))
        goto fail;
    if (o->client_ca_file != NULL && !load_client_ca(ctx, o, err, errlen))
        goto fail;
    if (o->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
        snprintf(err, errlen, "%s: no cipher matches \"%s\"", o->ciphers_label, o->ciphers);
        ERR_clear_error();
        goto fail;
    }
    if (o->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1) {
        snprintf(err, errlen, "%s: \"%s\" is not a list of TLS 1.3 cipher suites",
                 o->ciphersuites_label, o->ciphersuites);
        ERR_clear_error();
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    /* resumption by tickets only: no session cache shared (and locked) by every worker */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_num_tickets(ctx, 1);
    if (o->tickets != NULL) {
        SSL_CTX_set_app_data(ctx, o->tickets);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    }
    return t;
fail:
    ekv_http_tls_free(t);
    return NULL;
}

void ekv_http_tls_free(struct ekv_http_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx); /* connections hold their own reference (SSL_new) */
    ekv_free(t);
}

SSL *ekv_http_tls_ssl_new(const struct ekv_http_tls *t, int fd)
{
    SSL *ssl = SSL_new(t->ctx);

    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}
