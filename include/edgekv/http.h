/* http.h - the HTTP/1.1 front end of one worker thread: connections on a libevent loop, requests
 * parsed by llhttp, responses written in request order (pipelining), limits and timeouts.
 * It knows nothing of caches, stores or Redis: it hands complete requests to two callbacks and
 * writes what they answer, whenever they answer (synchronously or later). */
#ifndef EDGEKV_HTTP_H
#define EDGEKV_HTTP_H

#include "edgekv/common.h"

struct event_base;
struct evbuffer;
struct sockaddr;

struct ekv_http_server; /* one per worker thread; owns its connections */
struct ekv_http_req;    /* one request; owned by the server, lent to the callbacks */

/** Methods the router cares about; anything else is EKV_HTTP_OTHER. */
enum ekv_http_method {
    EKV_HTTP_OTHER = 0,
    EKV_HTTP_GET,
    EKV_HTTP_HEAD,
    EKV_HTTP_PUT,
    EKV_HTTP_POST,
    EKV_HTTP_DELETE,
    EKV_HTTP_PATCH,
    EKV_HTTP_OPTIONS,
};

/** How many values enum ekv_http_method has (for tables indexed by method). */
#define EKV_HTTP_NMETHODS (EKV_HTTP_OPTIONS + 1)

/**
 * The name of @m: "GET", "HEAD", ... (the one method table: routers' Allow headers, metrics
 * labels); "other" for EKV_HTTP_OTHER and anything out of range. Static storage.
 */
const char *ekv_http_method_name(enum ekv_http_method m);

struct ekv_http_limits {
    uint64_t max_header_bytes;  /* request line + headers: past it 414 (URL) or 431 (headers) */
    uint64_t header_timeout_ms; /* from a request's first byte to the end of its headers */
    uint64_t idle_timeout_ms;   /* keep-alive idle time; also body and write progress */
    unsigned max_pipeline;      /* requests read ahead on one connection before pausing */
};

/**
 * Called on the loop thread once a request's headers are complete, before its body is read.
 * Returns the largest body the request may carry (past it: 413 and close, the rest of the
 * body unread). It may also answer the request at once (e.g. 404, 401); a request answered
 * here is not passed to the request callback, and if it has a body the connection is closed
 * after the answer.
 */
typedef uint64_t ekv_http_head_cb(struct ekv_http_req *req, void *arg);

/**
 * Called on the loop thread with a complete request (body included). The callee must answer
 * it exactly once with ekv_http_respond*(), now or later on the same thread, even if the client
 * has gone away meanwhile (the server frees the request after the answer).
 */
typedef void ekv_http_request_cb(struct ekv_http_req *req, void *arg);

/** Called when a connection closes (for the process-wide connection count). */
typedef void ekv_http_closed_cb(void *arg);

/** Called as a request is answered, with its status (for metrics). @req is still valid. */
typedef void ekv_http_done_cb(struct ekv_http_req *req, int status, void *arg);

/**
 * Called once for every TLS connection whose handshake did not complete (a protocol error, a
 * client certificate refused, the client gone or too slow: header-timeout), with the client's
 * address and why ("tls: no shared cipher", "tls: handshake timed out"); not while the server
 * drains. For metrics and the log.
 */
typedef void ekv_http_tls_error_cb(const char *peer, const char *why, void *arg);

struct ekv_http_hooks {
    ekv_http_head_cb *on_head;
    ekv_http_request_cb *on_request;
    ekv_http_done_cb *on_done; /* may be NULL */
    void *arg;               /* passed to on_head, on_request, on_done and on_tls_error */
    ekv_http_closed_cb *on_closed;
    void *closed_arg;        /* passed to on_closed */
    ekv_http_tls_error_cb *on_tls_error; /* may be NULL */
};

/** A server on @base. @limits and @hooks are copied. Never NULL (aborts on OOM). */
struct ekv_http_server *ekv_http_server_new(struct event_base *base,
                                            const struct ekv_http_limits *limits,
                                            const struct ekv_http_hooks *hooks);
/** Closes every connection at once and frees the server; NULL is a no-op. Requests still held
 * by the request callback stay valid until answered. */
void ekv_http_server_free(struct ekv_http_server *srv);

/**
 * Takes over an accepted, connected socket @fd (closed on failure). @tag is an opaque number
 * the callbacks read back with ekv_http_req_tag() (e.g. which listener accepted it).
 * Returns EKV_OK or EKV_ERROR.
 */
int ekv_http_server_adopt(struct ekv_http_server *srv, int fd, int tag);

/* ---- HTTPS: a TLS server context, shared by every worker (OpenSSL contexts are thread-safe
 * once set up), and connections adopted with it */

struct ekv_http_tls;     /* a server context: certificate, key, client CA, versions, ciphers */
struct ekv_http_tickets; /* session ticket keys, rotated; shared by the contexts of a process */

/** What a server context is made of. The labels name each setting in error messages
 * ("edgekv.conf:7: tls-cert-file"). */
struct ekv_http_tls_opts {
    const char *cert_file, *cert_label;           /* PEM certificate chain (required) */
    const char *key_file, *key_label;             /* PEM private key, not encrypted (required) */
    const char *client_ca_file, *client_ca_label; /* mTLS: the CAs a client must chain to, or
                                                   * NULL for no client certificates */
    bool tls13_only;                              /* TLS 1.3 only, else 1.2 and 1.3 */
    const char *ciphers, *ciphers_label;          /* TLS 1.2 cipher list, or NULL */
    const char *ciphersuites, *ciphersuites_label; /* TLS 1.3 suites, or NULL */
    struct ekv_http_tickets *tickets;             /* NULL: OpenSSL's own ticket keys */
};

/**
 * Loads a server context from @o (blocking file reads: start-up, -t and reload only). ALPN
 * selects http/1.1; session tickets resume sessions. Returns NULL with "LABEL: reason" in
 * @err (unreadable file, not PEM, key that does not match the certificate, no cipher).
 * @warn, when not NULL, receives a warning about a context that loads but may not serve
 * well (an expired certificate), else "".
 */
struct ekv_http_tls *ekv_http_tls_new(const struct ekv_http_tls_opts *o, char *warn,
                                      size_t warnlen, char *err, size_t errlen);
/** Frees @t; connections adopted with it keep what they use. NULL is a no-op. */
void ekv_http_tls_free(struct ekv_http_tls *t);

/**
 * Session ticket keys for every context made with them: a new key every @rotate_s seconds
 * encrypts new tickets, and the two before it still decrypt (and renew) older ones. Must
 * outlive every context and connection that uses it. Never NULL.
 */
struct ekv_http_tickets *ekv_http_tickets_new(unsigned rotate_s);
void ekv_http_tickets_free(struct ekv_http_tickets *tk);

/** As ekv_http_server_adopt(), but the connection speaks TLS with @tls (handshake first,
 * bounded by header_timeout_ms). */
int ekv_http_server_adopt_tls(struct ekv_http_server *srv, int fd, int tag,
                              const struct ekv_http_tls *tls);

/** Graceful stop: idle connections close now, busy ones after their current responses
 * (answered with Connection: close). */
void ekv_http_server_drain(struct ekv_http_server *srv);
/** Number of open connections. */
size_t ekv_http_server_conn_count(const struct ekv_http_server *srv);

/* ---- the request (valid until answered; strings are not NUL-terminated) */

enum ekv_http_method ekv_http_req_method(const struct ekv_http_req *req);
/** The method as sent, e.g. "GET". */
const char *ekv_http_req_method_name(const struct ekv_http_req *req);
/** The raw (still percent-encoded) path, without the query. */
const char *ekv_http_req_path(const struct ekv_http_req *req, size_t *len);
/** The raw query string after '?', or NULL if there is none. */
const char *ekv_http_req_query(const struct ekv_http_req *req, size_t *len);
/** The first header named @lname (lower case, compared case-insensitively), or NULL. The value
 * has surrounding whitespace removed. */
const char *ekv_http_req_header(const struct ekv_http_req *req, const char *lname, size_t *len);
/** The request body (complete once the request callback runs). Owned by the request: the
 * callee may drain it. */
struct evbuffer *ekv_http_req_body(struct ekv_http_req *req);
/** The tag of the connection that carried the request (see ekv_http_server_adopt()). */
int ekv_http_req_tag(const struct ekv_http_req *req);
/** Microseconds since the request was complete and handed to the request callback (0 before). */
uint64_t ekv_http_req_elapsed_us(const struct ekv_http_req *req);
/** In the head callback: true if a body follows the headers. */
bool ekv_http_req_has_body(const struct ekv_http_req *req);
/** True once the client has gone away; the request must still be answered. */
bool ekv_http_req_orphaned(const struct ekv_http_req *req);
/** The request's HTTP minor version: 0 (HTTP/1.0) or 1 (HTTP/1.1). */
int ekv_http_req_minor(const struct ekv_http_req *req);
/**
 * Writes the client's address ("192.0.2.7", "2001:db8::1", "unix") to @buf (@len bytes,
 * NUL-terminated); "-" once the client has gone away. For logs: looked up once per connection.
 */
void ekv_http_req_peer(const struct ekv_http_req *req, char *buf, size_t len);

/* ---- the answer, as seen by the done callback (ekv_http_done_cb) */

/** The response body's length in bytes as sent (0 for HEAD, 204, 304 and 1xx). */
uint64_t ekv_http_req_resp_bytes(const struct ekv_http_req *req);
/** The first response header named @lname (lower case, compared case-insensitively) added with
 * ekv_http_add_header(), or NULL; valid until the done callback returns. */
const char *ekv_http_req_resp_header(struct ekv_http_req *req, const char *lname, size_t *len);

/** One pointer of the callbacks' own per request (e.g. the route chosen by the head callback);
 * NULL until set. */
void ekv_http_req_set_data(struct ekv_http_req *req, void *data);
void *ekv_http_req_data(const struct ekv_http_req *req);

/* ---- the response */

/** Adds a response header (copied). Content-Length, Date, Server and Connection are added by
 * the server. */
void ekv_http_add_header(struct ekv_http_req *req, const char *name, const char *value);
/** The same with explicit lengths (no strlen; @value may hold any bytes but CR/LF). */
void ekv_http_add_header_n(struct ekv_http_req *req, const char *name, size_t nlen,
                           const char *value, size_t vlen);
/** Answers @req with @status and the contents of @body (moved out of it, not copied: chains
 * added with evbuffer_add_reference() stay zero-copy). @body may be NULL. For HEAD the body is
 * counted in Content-Length and dropped. */
void ekv_http_respond(struct ekv_http_req *req, int status, struct evbuffer *body);
/** Answers with a copy of @len bytes at @data and a Content-Type. */
void ekv_http_respond_data(struct ekv_http_req *req, int status, const char *content_type,
                           const void *data, size_t len);
/** Answers with an RFC 9457 application/problem+json body {"type","title","status","detail"}. */
void ekv_http_respond_problem(struct ekv_http_req *req, int status, const char *detail);
/* ---- a streamed response: a body of unknown length, sent as it is made */

/** A streamed response's unsent bytes went down to a low-water mark (the client reads them), or
 * its client went away (ekv_http_req_orphaned() says so: end the response then). Never runs
 * inside ekv_http_stream_write(). */
typedef void ekv_http_drain_cb(struct ekv_http_req *req, void *arg);

/**
 * Starts answering @req with @status and a body sent as it comes: the head now, with
 * Transfer-Encoding: chunked (to an HTTP/1.0 client: no framing, and the connection closes at
 * the end). Answers of requests pipelined after it wait until it ends. @cb (with @arg) tells
 * when to write more; the caller bounds what it buffers with ekv_http_stream_write()'s return.
 */
void ekv_http_stream_begin(struct ekv_http_req *req, int status, const char *content_type,
                           ekv_http_drain_cb *cb, void *arg);
/** Appends @len bytes to the body (one chunk; nothing for 0 bytes) and sends what the socket
 * takes. Returns the bytes of the answer not sent yet (0 once the client is gone). */
size_t ekv_http_stream_write(struct ekv_http_req *req, const void *data, size_t len);
/** Ends the body; @req is done (freed) as after ekv_http_respond(). */
void ekv_http_stream_end(struct ekv_http_req *req);

/** The standard reason phrase of @status ("Not Found"). */
const char *ekv_http_reason(int status);

#endif /* EDGEKV_HTTP_H */
