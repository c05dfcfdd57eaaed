/* conn.c - HTTP/1.1 connections: llhttp parsing straight from what was read, requests queued in
 * arrival order and answered in that order (pipelining) however late their handlers answer,
 * limits (header bytes, body size, pipeline depth, output backlog) and deadlines (headers, idle,
 * write progress, lingering close).
 *
 * The socket is driven by two plain events rather than a bufferevent, so that a request costs
 * two system calls, one read and one write: the read event stays registered while the
 * connection may read (no epoll_ctl per request), input is read into the server's buffer and
 * parsed there (only an unparsed remainder is kept, in conn->in), and responses are written as
 * soon as they are ready: after a batch of requests read together, or at once when a handler
 * answers later. The write event is registered only while the socket is full.
 *
 * HTTPS connections (ekv_http_server_adopt_tls) run the same code over an SSL on the socket:
 * the handshake first (bounded by header-timeout like a first request), then SSL_read into the
 * same buffer and SSL_write out of the same output evbuffer, one record per call, with OpenSSL's
 * WANT_READ/WANT_WRITE followed in both directions. A plain connection only tests conn->ssl. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/log.h"
#include "edgekv/text.h"

#include "http_int.h"

/* Stop reading a client while this much response data is waiting to be sent to it; resume
 * once it has all been sent (a client that does not read cannot make us buffer more). */
#define OUT_HIGH_WATER (256 * 1024)
/* A streamed response's producer is told to go on once its unsent bytes are down to this: it
 * makes more while the rest is being sent. */
#define STREAM_LOW_WATER (64 * 1024)
/* Unparsed input kept per connection while parsing is paused (pipeline full, output backlog). */
#define IN_HIGH_WATER (64 * 1024)
/* Requests parsed per read event before yielding to other connections (memcached's
 * reqs_per_event): a client pipelining thousands of requests cannot starve the others. */
#define REQS_PER_EVENT 16
/* After a response that closes the connection while the client may still be sending (413,
 * 400), keep reading and discarding for this long, so the kernel does not answer the unread
 * data with a RST that destroys the response before the client reads it (nginx's
 * lingering_close). */
#define LINGER_MS 2000
/* TLS: what one SSL_write takes at most (one full record), and below which the first chunks of
 * the output are gathered into one record (headers and a small body in one record, one
 * system call) */
#define TLS_RECORD 16384

static void process_input(struct ekv_http_conn *conn, const char *fresh, size_t fresh_len);
static void conn_free(struct ekv_http_conn *conn);
static int tls_write(struct ekv_http_conn *conn);

static uint64_t now_ms(const struct ekv_http_server *srv)
{
    struct timeval tv;

    event_base_gettimeofday_cached(srv->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Arms the connection's one timer to fire @ms from now. A deadline that only moves later
 * (keep-alive traffic pushing the idle deadline) is not re-armed: on_timer() finds it early
 * and waits for the rest, so a busy connection costs no timer operation per request. */
static void set_timer(struct ekv_http_conn *conn, uint64_t ms)
{
    uint64_t deadline = now_ms(conn->srv) + ms;

    if (!conn->timer_on || deadline < conn->deadline_ms) {
        struct timeval tv = ekv_ms_tv(ms);
        evtimer_add(conn->timer, &tv);
        conn->timer_on = true;
    }
    conn->deadline_ms = deadline;
}

static void stop_timer(struct ekv_http_conn *conn)
{
    if (conn->timer_on)
        evtimer_del(conn->timer);
    conn->timer_on = false;
}

static struct ekv_http_req *parsing_req(struct ekv_http_conn *conn)
{
    return conn->in_message ? TAILQ_LAST(&conn->reqs, ekv_http_req_list) : NULL;
}

static size_t out_len(const struct ekv_http_conn *conn)
{
    return evbuffer_get_length(conn->out);
}

/* Sends what the socket takes of the output now, and waits for writability (with the
 * write-progress deadline) only while some is left. Never frees the connection (it may run
 * inside a handler's call chain): a failed write marks it broken, for maybe_close(). */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_http_conn *conn = arg;
    struct ekv_http_req *req = TAILQ_FIRST(&conn->reqs);

    if (req != NULL && req->state == REQ_STREAMING && req->drain_cb != NULL && !conn->broken)
        req->drain_cb(req, req->drain_arg);
}

/* Output of a streamed response at the head ran low: its producer may go on, from the loop
 * (flush() runs inside handlers' call chains). The event is made for the first stream. */
static void drained(struct ekv_http_conn *conn)
{
    struct ekv_http_req *req = TAILQ_FIRST(&conn->reqs);

    if (req == NULL || req->state != REQ_STREAMING)
        return;
    if (conn->drain == NULL && (conn->drain = event_new(conn->srv->base, -1, 0, on_drain, conn)) == NULL)
        EKV_FATAL("out of memory making a connection's drain event");
    event_active(conn->drain, EV_TIMEOUT, 1);
}

static void flush(struct ekv_http_conn *conn)
{
    bool want;

    if (out_len(conn) > 0 && !conn->broken) {
        if (conn->ssl != NULL ? tls_write(conn) < 0
                              : evbuffer_write(conn->out, conn->fd) < 0 && errno != EAGAIN &&
                                    errno != EWOULDBLOCK && errno != EINTR) {
            conn->broken = true; /* EPIPE, ECONNRESET: the client is gone */
            evbuffer_drain(conn->out, (size_t)-1);
        } else if (out_len(conn) <= STREAM_LOW_WATER) {
            drained(conn);
        }
    }
    want = out_len(conn) > 0;
    if (conn->ssl != NULL) /* waiting for the client's bytes is no reason to poll for writes */
        want = (want && !conn->write_wants_read) || conn->read_wants_write ||
               (conn->handshaking && conn->hs_wants_write);
    if (want != conn->writing) {
        if (want) {
            struct timeval tv = ekv_ms_tv(conn->srv->limits.idle_timeout_ms);
            event_add(conn->wev, &tv); /* a client that stops reading */
        } else {
            event_del(conn->wev);
        }
        conn->writing = want;
    }
}

/* Starts or stops the read event, calling libevent only on a change. */
static void set_reading(struct ekv_http_conn *conn, bool on)
{
    if (on != conn->reading) {
        if (on)
            event_add(conn->rev, NULL);
        else
            event_del(conn->rev);
        conn->reading = on;
        /* what OpenSSL has read from the socket already makes it readable no more */
        if (on && conn->ssl != NULL && !conn->handshaking && SSL_has_pending(conn->ssl))
            event_active(conn->rev, EV_READ, 1);
    }
}

/* ---------------------------------------------------------------- llhttp callbacks */

static struct ekv_http_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int on_message_begin(llhttp_t *p)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = ekv_calloc(1, sizeof(*req));

    req->conn = conn;
    req->srv = conn->srv;
    req->hdrs = req->inline_hdrs;
    req->state = REQ_HEAD;
    req->head_cap = 512;
    req->head = ekv_malloc(req->head_cap);
    req->resp_hdrs = req->resp_hdrs_inline;
    req->resp_hdrs_cap = sizeof(req->resp_hdrs_inline);
    TAILQ_INSERT_TAIL(&conn->reqs, req, link);
    conn->nreqs++;
    conn->in_message = true;
    conn->msg_start_ms = now_ms(conn->srv);
    return 0;
}

/* Appends a span of the request line or headers, enforcing max-header-bytes. */
static int head_append(struct ekv_http_conn *conn, const char *at, size_t len, int status)
{
    struct ekv_http_req *req = parsing_req(conn);
    uint64_t max = conn->srv->limits.max_header_bytes;
    size_t need = (size_t)req->head_len + len;

    if (need > max) {
        conn->err_status = status;
        conn->err_detail = status == 414 ? "the request URL is longer than max-header-bytes"
                                         : "the request headers are larger than max-header-bytes";
        return HPE_USER;
    }
    if (need > req->head_cap) {
        size_t cap = req->head_cap;
        while (cap < need)
            cap *= 2;
        req->head_cap = (uint32_t)EKV_MIN(cap, max);
        req->head = ekv_realloc(req->head, req->head_cap);
    }
    memcpy(req->head + req->head_len, at, len);
    req->head_len += (uint32_t)len;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct ekv_http_conn *conn = conn_of(p);
    int rc = head_append(conn, at, len, 414);

    if (rc == 0)
        parsing_req(conn)->url_len += (uint32_t)len;
    return rc;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = parsing_req(conn);
    int rc;

    if (!req->in_field) {
        if (req->nhdrs == EKV_HTTP_MAX_HEADERS) {
            conn->err_status = 431;
            conn->err_detail = "more than 100 header fields";
            return HPE_USER;
        }
        if (req->nhdrs == EKV_HTTP_INLINE_HEADERS) {
            req->hdrs = ekv_malloc(EKV_HTTP_MAX_HEADERS * sizeof(*req->hdrs));
            memcpy(req->hdrs, req->inline_hdrs, sizeof(req->inline_hdrs));
        }
        req->hdrs[req->nhdrs++] = (struct ekv_http_hdr){.name_off = req->head_len};
        req->in_field = true;
    }
    rc = head_append(conn, at, len, 431);
    if (rc == 0)
        req->hdrs[req->nhdrs - 1].name_len += (uint32_t)len;
    return rc;
}

/* RFC 9110 5.6.2 tchar: llhttp 8 lets a space or other separators through in field names
 * (it only checks the names it acts on), so names are checked here. */
static bool is_token(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c != '\0' && strchr(extra, c) != NULL)))
            return false;
    }
    return true;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = parsing_req(conn);
    const struct ekv_http_hdr *h = &req->hdrs[req->nhdrs - 1];

    if (!is_token(req->head + h->name_off, h->name_len)) {
        conn->err_status = 400;
        conn->err_detail = "invalid header field name";
        return HPE_USER;
    }
    req->in_field = false;
    req->hdrs[req->nhdrs - 1].val_off = req->head_len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = parsing_req(conn);
    int rc = head_append(conn, at, len, 431);

    if (rc == 0)
        req->hdrs[req->nhdrs - 1].val_len += (uint32_t)len;
    return rc;
}

static enum ekv_http_method map_method(uint8_t m)
{
    switch (m) {
    case HTTP_GET: return EKV_HTTP_GET;
    case HTTP_HEAD: return EKV_HTTP_HEAD;
    case HTTP_PUT: return EKV_HTTP_PUT;
    case HTTP_POST: return EKV_HTTP_POST;
    case HTTP_DELETE: return EKV_HTTP_DELETE;
    case HTTP_PATCH: return EKV_HTTP_PATCH;
    case HTTP_OPTIONS: return EKV_HTTP_OPTIONS;
    default: return EKV_HTTP_OTHER;
    }
}

static bool has_body(const llhttp_t *p)
{
    return (p->flags & F_CHUNKED) != 0 || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
}

bool ekv_http_req_has_body(const struct ekv_http_req *req)
{
    return ekv_http_conn_expects_body(req);
}

bool ekv_http_conn_expects_body(const struct ekv_http_req *req)
{
    return req->conn != NULL && req == parsing_req(req->conn) && has_body(&req->conn->parser);
}

static int on_headers_complete(llhttp_t *p)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = parsing_req(conn);
    struct ekv_http_server *srv = conn->srv;
    const char *expect;
    size_t elen;

    /* edgekv takes no protocol upgrade (h2c, websocket) and tunnels nothing (CONNECT): the
     * request is answered as a plain HTTP/1.1 request and the connection stays HTTP/1.1 */
    p->upgrade = 0;
    req->llhttp_method = llhttp_get_method(p);
    req->method = map_method(req->llhttp_method);
    req->http10 = llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) == 0;
    req->state = REQ_BODY;
    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    /* A request whose last transfer coding is not chunked has no length it could be read by
     * (RFC 9112 6.3). llhttp refuses it only after this callback returns: refuse it here,
     * before a handler answers it, so that it gets one answer (400, then close). */
    if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED)) {
        conn->err_status = 400;
        conn->err_detail = "Request has invalid `Transfer-Encoding`";
        return HPE_USER;
    }
    req->body_max = srv->hooks.on_head(req, srv->hooks.arg);
    if (req->state == REQ_ANSWERED) {
        req->answered_early = true;
        if (has_body(p)) { /* answered without reading the body: close after the answer */
            conn->err_status = -1;
            return HPE_USER;
        }
        return 0;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > req->body_max) {
        conn->err_status = 413;
        conn->err_detail = "the request body is larger than its limit";
        return HPE_USER;
    }
    expect = ekv_http_req_header(req, "expect", &elen);
    if (expect != NULL && has_body(p) && ekv_strn_caseeq(expect, elen, "100-continue") &&
        TAILQ_FIRST(&conn->reqs) == req && out_len(conn) == 0)
        evbuffer_add(conn->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = parsing_req(conn);

    if (req->answered_early)
        return 0;
    if (evbuffer_get_length(ekv_http_req_body(req)) + len > req->body_max) {
        conn->err_status = 413;
        conn->err_detail = "the request body is larger than its limit";
        return HPE_USER;
    }
    if (evbuffer_add(req->body, at, len) != 0)
        EKV_FATAL("out of memory buffering %zu bytes of a request body", len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct ekv_http_conn *conn = conn_of(p);
    struct ekv_http_req *req = parsing_req(conn);

    req->keep_alive = llhttp_should_keep_alive(p) != 0;
    if (!req->answered_early)
        req->state = REQ_WAITING;
    conn->in_message = false;
    conn->served_any = true;
    return HPE_PAUSED; /* dispatched by process_input(), outside the parser */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------- connection life */

/* Whether the connection should read now; and its deadline. */
static void update(struct ekv_http_conn *conn)
{
    const struct ekv_http_limits *lim = &conn->srv->limits;
    bool want_read;

    if (conn->lingering)
        return;
    want_read = !conn->closing && !conn->read_eof && !conn->broken &&
                out_len(conn) <= OUT_HIGH_WATER && evbuffer_get_length(conn->in) < IN_HIGH_WATER &&
                (conn->in_message ||
                 (!conn->srv->draining && conn->nreqs < lim->max_pipeline));
    /* an SSL_write that waits for the client's bytes needs them, whatever the backlog */
    want_read = want_read || (conn->write_wants_read && !conn->broken && !conn->read_eof);
    set_reading(conn, want_read);

    if (conn->in_message && !conn->closing) {
        struct ekv_http_req *req = parsing_req(conn);
        if (req->state == REQ_HEAD) {
            uint64_t now = now_ms(conn->srv), end = conn->msg_start_ms + lim->header_timeout_ms;
            set_timer(conn, end > now ? end - now : 0);
        } else {
            set_timer(conn, lim->idle_timeout_ms);
        }
    } else if (conn->nreqs == 0 && !conn->closing && out_len(conn) == 0) {
        /* the first request must arrive within header-timeout, later ones within idle-timeout */
        set_timer(conn, conn->served_any ? lim->idle_timeout_ms : lim->header_timeout_ms);
    } else {
        stop_timer(conn); /* waiting for handlers; writes have their own timeout */
    }
}

/* Starts the lingering close: no more output, read and discard until EOF or LINGER_MS. */
static void linger(struct ekv_http_conn *conn)
{
    conn->lingering = true;
    if (conn->ssl != NULL && !conn->tls_shut) {
        conn->tls_shut = true;
        (void)SSL_shutdown(conn->ssl); /* close_notify, best effort */
        ERR_clear_error();
    }
    if (conn->read_eof || shutdown(conn->fd, SHUT_WR) != 0) {
        conn_free(conn);
        return;
    }
    evbuffer_drain(conn->in, (size_t)-1);
    set_reading(conn, true);
    set_timer(conn, LINGER_MS);
}

/* Closes the connection once nothing more can be sent on it. Only called from this file's
 * event callbacks, never from inside a request handler's call chain. */
static void maybe_close(struct ekv_http_conn *conn)
{
    if (conn->broken) {
        conn_free(conn);
        return;
    }
    if (conn->lingering || conn->nreqs != 0 || out_len(conn) != 0)
        return;
    if (conn->closing)
        linger(conn);
    else if ((conn->read_eof || conn->srv->draining) && !conn->in_message)
        conn_free(conn);
}

static void on_orphan_drain(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_http_req *req = arg;

    req->notify_pending = false;
    if (req->ended) /* its producer ended it before hearing: nothing to tell */
        ekv_http_req_free(req);
    else
        req->drain_cb(req, req->drain_arg);
}

/* The client is gone but a handler holds @req: it answers into the void, which frees it. The
 * producer of a streamed response hears of it (its drain callback) from the loop. */
static void orphan(struct ekv_http_req *req)
{
    struct timeval now = {0, 0};

    if (req->state == REQ_STREAMING && req->drain_cb != NULL) {
        if (event_base_once(req->conn->srv->base, -1, EV_TIMEOUT, on_orphan_drain, req, &now) != 0)
            EKV_FATAL("event_base_once failed telling a streamed response its client is gone");
        req->notify_pending = true;
    }
    req->conn = NULL;
    req->srv = NULL; /* the server may be freed before the handler answers */
}

size_t ekv_http_conn_pending(const struct ekv_http_conn *conn)
{
    return out_len(conn);
}

static void conn_free(struct ekv_http_conn *conn)
{
    struct ekv_http_server *srv = conn->srv;
    struct ekv_http_req *req;

    while ((req = TAILQ_FIRST(&conn->reqs)) != NULL) {
        TAILQ_REMOVE(&conn->reqs, req, link);
        if (req->state == REQ_WAITING || req->state == REQ_STREAMING)
            orphan(req); /* its handler still answers it; then it is freed */
        else
            ekv_http_req_free(req);
    }
    TAILQ_REMOVE(&srv->conns, conn, link);
    srv->nconns--;
    if (conn->ssl != NULL) {
        if (conn->handshaking && !srv->draining && srv->hooks.on_tls_error != NULL)
            srv->hooks.on_tls_error(ekv_http_conn_peer(conn),
                                    conn->tls_why != NULL ? conn->tls_why
                                    : conn->read_eof      ? "tls: closed during the handshake"
                                                          : "tls: handshake timed out",
                                    srv->hooks.arg);
        else if (!conn->handshaking && !conn->broken && !conn->tls_shut)
            (void)SSL_shutdown(conn->ssl); /* close_notify, best effort */
        SSL_free(conn->ssl);
        ERR_clear_error();
    }
    event_free(conn->timer);
    event_free(conn->resume);
    if (conn->drain != NULL)
        event_free(conn->drain);
    event_free(conn->rev);
    event_free(conn->wev);
    evbuffer_free(conn->in);
    evbuffer_free(conn->out);
    close(conn->fd);
    ekv_free(conn);
    if (srv->hooks.on_closed != NULL)
        srv->hooks.on_closed(srv->hooks.closed_arg);
}

/* Stops parsing after a framing error or a limit: answers the request being parsed (400, 408,
 * 413, 414, 431) after the responses before it, then closes. */
static void fail(struct ekv_http_conn *conn, int status, const char *detail)
{
    struct ekv_http_req *req = parsing_req(conn);

    conn->closing = true;
    evbuffer_drain(conn->in, (size_t)-1);
    if (status < 0 || (req != NULL && req->answered_early)) {
        /* answered by the head callback: send that answer (never a second one), then close */
        conn->in_message = false;
        ekv_http_conn_answered(conn);
        return;
    }
    if (req == NULL) {
        on_message_begin(&conn->parser);
        req = parsing_req(conn);
    }
    conn->in_message = false;
    req->state = REQ_WAITING;
    req->keep_alive = false;
    ekv_http_respond_problem(req, status, detail);
}

static void dispatch(struct ekv_http_conn *conn, struct ekv_http_req *req)
{
    struct ekv_http_server *srv = conn->srv;

    if (req->answered_early) {
        ekv_http_conn_answered(conn);
        return;
    }
    req->t0_us = ekv_clock_now_us();
    srv->hooks.on_request(req, srv->hooks.arg); /* may answer, now or later */
}

/* A write (any method but GET and HEAD) of @conn whose handler has not answered yet. The
 * requests after it wait, unparsed, as if the client had waited for its answer before sending
 * them: API.md "Fine points", pipelined requests behave as if sent one after the other. So a
 * read behind a write never joins a fill that began before the write was acknowledged. Reads
 * pipelined behind reads go on at once (hits stay pipelined). */
static bool write_in_flight(const struct ekv_http_conn *conn)
{
    const struct ekv_http_req *req;

    TAILQ_FOREACH(req, &conn->reqs, link) {
        enum ekv_http_method m = ekv_http_req_method(req);
        if (req->state == REQ_WAITING && m != EKV_HTTP_GET && m != EKV_HTTP_HEAD)
            return true;
    }
    return false;
}

/* Parses what it may of @len bytes at @p and returns how many it consumed. Stops before a
 * request that cannot be taken yet (pipeline full, draining, @budget spent, output backlog, a
 * write before it not answered yet), or at an error (then the connection is closing and the
 * rest is of no use). */
static size_t parse(struct ekv_http_conn *conn, const char *p, size_t len, unsigned *budget)
{
    const struct ekv_http_limits *lim = &conn->srv->limits;
    size_t off = 0;

    while (!conn->closing && off < len) {
        llhttp_errno_t err;

        if (!conn->in_message && (conn->nreqs >= lim->max_pipeline || conn->srv->draining ||
                                  *budget == 0 || write_in_flight(conn)))
            break;
        if (out_len(conn) > OUT_HIGH_WATER)
            break;
        err = llhttp_execute(&conn->parser, p + off, len - off);
        if (err == HPE_PAUSED) {
            off = (size_t)(llhttp_get_error_pos(&conn->parser) - p);
            llhttp_resume(&conn->parser);
            (*budget)--;
            dispatch(conn, TAILQ_LAST(&conn->reqs, ekv_http_req_list));
        } else if (err == HPE_OK) {
            off = len;
        } else {
            int status = conn->err_status != 0 ? conn->err_status : 400;
            fail(conn, status,
                 err == HPE_USER ? conn->err_detail : llhttp_get_error_reason(&conn->parser));
            off = len;
        }
    }
    return off;
}

/* Parses the input kept from earlier reads, then @fresh_len bytes just read into the server's
 * buffer at @fresh (parsed in place; what cannot be parsed yet is kept), dispatches complete
 * requests, and sends what they answered at once. */
static void process_input(struct ekv_http_conn *conn, const char *fresh, size_t fresh_len)
{
    struct evbuffer *in = conn->in;
    unsigned budget = REQS_PER_EVENT;
    size_t used = 0;

    if (conn->in_process || conn->lingering)
        return;
    conn->in_process = true;
    while (!conn->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        used = parse(conn, v.iov_base, v.iov_len, &budget);
        evbuffer_drain(in, used);
        if (used < v.iov_len)
            break;
    }
    if (fresh_len > 0 && !conn->closing) {
        used = evbuffer_get_length(in) == 0 ? parse(conn, fresh, fresh_len, &budget) : 0;
        if (!conn->closing && used < fresh_len && evbuffer_add(in, fresh + used, fresh_len - used))
            EKV_FATAL("out of memory keeping %zu unparsed bytes", fresh_len - used);
    }
    if (budget == 0 && !conn->closing && evbuffer_get_length(in) > 0)
        event_active(conn->resume, EV_TIMEOUT, 1); /* yield, continue on the next loop turn */
    if (conn->read_eof && conn->in_message && evbuffer_get_length(in) == 0) {
        /* the client closed in the middle of a request: it can never complete */
        struct ekv_http_req *req = parsing_req(conn);
        TAILQ_REMOVE(&conn->reqs, req, link);
        conn->nreqs--;
        ekv_http_req_free(req);
        conn->in_message = false;
    }
    conn->in_process = false;
    flush(conn); /* every answer of this batch in one write */
    update(conn);
}

void ekv_http_conn_answered(struct ekv_http_conn *conn)
{
    struct ekv_http_req *req;

    while ((req = TAILQ_FIRST(&conn->reqs)) != NULL &&
           (req->state == REQ_ANSWERED || req->state == REQ_STREAMING)) {
        bool close;

        if (req == parsing_req(conn))
            break; /* answered by the head callback: sent once it has been read */
        if (req->state == REQ_STREAMING) { /* its body so far; it stays first until it ends */
            if (evbuffer_add_buffer(conn->out, req->out) != 0)
                EKV_FATAL("evbuffer_add_buffer failed queueing a streamed response");
            break;
        }
        close = req->close_after;

        if (evbuffer_add_buffer(conn->out, req->out) != 0)
            EKV_FATAL("evbuffer_add_buffer failed queueing a response");
        TAILQ_REMOVE(&conn->reqs, req, link);
        conn->nreqs--;
        ekv_http_req_free(req);
        if (close) {
            /* nothing after a "Connection: close" response: later requests are orphaned */
            conn->closing = true;
            conn->in_message = false;
            while ((req = TAILQ_FIRST(&conn->reqs)) != NULL) {
                TAILQ_REMOVE(&conn->reqs, req, link);
                conn->nreqs--;
                if (req->state == REQ_WAITING || req->state == REQ_STREAMING)
                    orphan(req);
                else
                    ekv_http_req_free(req);
            }
            evbuffer_drain(conn->in, (size_t)-1);
        }
    }
    if (conn->in_process)
        return; /* process_input() sends it with the rest of its batch */
    /* a later answer (the origin's): send it now; go on parsing, or close, from the loop
     * rather than inside the handler's call chain */
    flush(conn);
    if (evbuffer_get_length(conn->in) > 0 || conn->closing || conn->broken || conn->read_eof ||
        conn->srv->draining)
        event_active(conn->resume, EV_TIMEOUT, 1);
    else
        update(conn); /* reading may resume (pipeline no longer full) */
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_http_conn *conn = arg;

    process_input(conn, NULL, 0);
    maybe_close(conn);
}

/* ---------------------------------------------------------------- TLS transport */

/* Sends what it can of the output through SSL_write: one record per call (partial writes),
 * the first small chunks gathered into one record. A write that wanted I/O is repeated with the
 * same length (the front of the output does not change meanwhile). Returns 0, or -1 when the
 * connection is broken. */
static int tls_write(struct ekv_http_conn *conn)
{
    conn->write_wants_read = false;
    if (conn->handshaking)
        return 0; /* 100 Continue cannot be written before the request was read; nothing else */
    while (out_len(conn) > 0) {
        struct evbuffer_iovec v;
        size_t len = conn->write_retry;
        int r, e;

        if (len == 0) {
            size_t total = out_len(conn);
            if (evbuffer_peek(conn->out, -1, NULL, &v, 1) < 1)
                break;
            if (v.iov_len < TLS_RECORD && total > v.iov_len)
                evbuffer_pullup(conn->out, (ssize_t)EKV_MIN(total, TLS_RECORD));
        }
        if (evbuffer_peek(conn->out, -1, NULL, &v, 1) < 1)
            break;
        if (len == 0)
            len = EKV_MIN(v.iov_len, (size_t)TLS_RECORD * 4);
        r = SSL_write(conn->ssl, v.iov_base, (int)len);
        if (r > 0) {
            evbuffer_drain(conn->out, (size_t)r);
            conn->write_retry = 0;
            continue;
        }
        e = SSL_get_error(conn->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            conn->write_retry = len;
            conn->write_wants_read = e == SSL_ERROR_WANT_READ;
            return 0;
        }
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* A handshake that failed: why, for the log line conn_free() has on_tls_error write. A plain
 * HTTP request on the TLS port gets a plain 400 that says so (as nginx does). */
static void tls_failed(struct ekv_http_conn *conn, int e)
{
    unsigned long err = e == SSL_ERROR_SSL ? ERR_peek_last_error() : 0;
    static const char plain[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        "Content-Length: 45\r\n\r\nThis port speaks HTTPS: use https:// instead.\n";

    if (err != 0 && ERR_GET_REASON(err) == SSL_R_HTTP_REQUEST) {
        conn->tls_why = "tls: plain HTTP request on the TLS port";
        if (send(conn->fd, plain, sizeof(plain) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            (void)0; /* the client sees the connection close */
    } else if (err != 0) {
        switch (ERR_GET_REASON(err)) {
        case SSL_R_UNSUPPORTED_PROTOCOL:
            conn->tls_why = "tls: unsupported protocol version";
            break;
        case SSL_R_NO_SHARED_CIPHER:
            conn->tls_why = "tls: no shared cipher";
            break;
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
            conn->tls_why = "tls: no client certificate";
            break;
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            conn->tls_why = "tls: client certificate verify failed";
            break;
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_HTTPS_PROXY_REQUEST:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
            conn->tls_why = "tls: not a TLS client";
            break;
        default:
            conn->tls_why = "tls: handshake failed";
        }
    } else {
        conn->tls_why = "tls: closed during the handshake";
    }
    ERR_clear_error();
    conn_free(conn);
}

/* Goes on with the handshake. Returns true once it is complete; false while it waits for I/O,
 * or when it failed (then @conn is freed). */
static bool tls_handshake(struct ekv_http_conn *conn)
{
    int r = SSL_do_handshake(conn->ssl), e;

    if (r == 1) {
        conn->handshaking = false;
        conn->hs_wants_write = false;
        flush(conn); /* the write event is no longer needed */
        return true;
    }
    e = SSL_get_error(conn->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        conn->hs_wants_write = e == SSL_ERROR_WANT_WRITE;
        flush(conn);
        return false;
    }
    tls_failed(conn, e);
    return false;
}

/* The socket is readable (or writable after an SSL_read that wanted it): handshake, then
 * decrypt what came, up to the server's buffer, and process it as plain input. */
static void tls_readable(struct ekv_http_conn *conn)
{
    struct ekv_http_server *srv = conn->srv;
    size_t n = 0;

    if (conn->handshaking && !tls_handshake(conn))
        return;
    if (conn->write_wants_read) /* an SSL_write waited for this */
        flush(conn);
    conn->read_wants_write = false;
    while (n < sizeof(srv->rbuf) && !conn->read_eof) {
        int r = SSL_read(conn->ssl, srv->rbuf + n, (int)(sizeof(srv->rbuf) - n)), e;

        if (r > 0) {
            n += (size_t)r;
            /* one read(2) per event, as on a plain connection (OpenSSL reads ahead): more of
             * what it holds now, but no read that would only say EAGAIN */
            if (!SSL_has_pending(conn->ssl))
                break;
            continue;
        }
        e = SSL_get_error(conn->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_WANT_WRITE) {
            conn->read_wants_write = true;
            flush(conn);
            break;
        }
        /* close_notify, an EOF, a reset or a bad record: nothing more comes; what was received
         * is still answered if it can be */
        ERR_clear_error();
        conn->read_eof = true;
        if (e != SSL_ERROR_ZERO_RETURN)
            conn->tls_shut = true; /* no close_notify after a fatal error */
    }
    if (n == 0 && !conn->read_eof)
        return; /* a record with no data for us (a ticket, a key update) */
    process_input(conn, srv->rbuf, n);
    /* a record read only in part stays in OpenSSL, not in the socket: come back for it */
    if (conn->reading && !conn->read_eof && SSL_has_pending(conn->ssl))
        event_active(conn->rev, EV_READ, 1);
    maybe_close(conn);
}

/* ---------------------------------------------------------------- socket events */

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_http_conn *conn = arg;
    struct ekv_http_server *srv = conn->srv;
    ssize_t n;

    if (conn->ssl != NULL && !conn->lingering) {
        tls_readable(conn);
        return;
    }
    n = read(fd, srv->rbuf, sizeof(srv->rbuf));

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_free(conn); /* ECONNRESET and the like */
        return;
    }
    if (n == 0)
        conn->read_eof = true;
    if (conn->lingering) { /* discard until EOF */
        if (conn->read_eof)
            conn_free(conn);
        return;
    }
    /* at EOF, requests already received are still answered */
    process_input(conn, srv->rbuf, (size_t)n);
    maybe_close(conn);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_http_conn *conn = arg;

    if (what & EV_TIMEOUT) { /* no write progress within idle-timeout */
        conn_free(conn);
        return;
    }
    if (conn->ssl != NULL && (conn->handshaking || conn->read_wants_write)) {
        tls_readable(conn); /* the handshake or an SSL_read waited for this */
        return;
    }
    flush(conn);
    /* all output sent: reading may resume (backpressure), or the connection may close */
    process_input(conn, NULL, 0);
    maybe_close(conn);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct ekv_http_conn *conn = arg;
    uint64_t now = now_ms(conn->srv);

    conn->timer_on = false;
    if (now < conn->deadline_ms) { /* the deadline moved later meanwhile */
        set_timer(conn, conn->deadline_ms - now);
        return;
    }
    if (conn->lingering || !conn->in_message) {
        conn_free(conn); /* idle, or done lingering */
        return;
    }
    fail(conn, 408, "the request was not received in time");
    flush(conn);
    update(conn);
    maybe_close(conn);
}

static int adopt(struct ekv_http_server *srv, int fd, int tag, const struct ekv_http_tls *tls)
{
    struct ekv_http_conn *conn;
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on AF_UNIX */
    conn = ekv_calloc(1, sizeof(*conn));
    conn->srv = srv;
    conn->tag = tag;
    conn->fd = fd;
    TAILQ_INIT(&conn->reqs);
    conn->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_readable, conn);
    conn->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_writable, conn);
    conn->timer = evtimer_new(srv->base, on_timer, conn);
    conn->resume = event_new(srv->base, -1, 0, on_resume, conn);
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    if (tls != NULL) {
        conn->ssl = ekv_http_tls_ssl_new(tls, fd);
        conn->handshaking = true;
    }
    if (conn->rev == NULL || conn->wev == NULL || conn->timer == NULL || conn->resume == NULL ||
        conn->in == NULL || conn->out == NULL || (tls != NULL && conn->ssl == NULL)) {
        ekv_log(EKV_LOG_ERROR, "cannot set up a connection: out of memory");
        if (conn->rev != NULL)
            event_free(conn->rev);
        if (conn->wev != NULL)
            event_free(conn->wev);
        if (conn->timer != NULL)
            event_free(conn->timer);
        if (conn->resume != NULL)
            event_free(conn->resume);
        if (conn->in != NULL)
            evbuffer_free(conn->in);
        if (conn->out != NULL)
            evbuffer_free(conn->out);
        if (conn->ssl != NULL)
            SSL_free(conn->ssl);
        ERR_clear_error();
        close(fd);
        ekv_free(conn);
        return EKV_ERROR;
    }
    llhttp_init(&conn->parser, HTTP_REQUEST, &parser_settings);
    conn->parser.data = conn;
    TAILQ_INSERT_TAIL(&srv->conns, conn, link);
    srv->nconns++;
    update(conn);
    return EKV_OK;
}

int ekv_http_server_adopt(struct ekv_http_server *srv, int fd, int tag)
{
    return adopt(srv, fd, tag, NULL);
}

int ekv_http_server_adopt_tls(struct ekv_http_server *srv, int fd, int tag,
                              const struct ekv_http_tls *tls)
{
    return adopt(srv, fd, tag, tls);
}
/* ---------------------------------------------------------------- server */

struct ekv_http_server *ekv_http_server_new(struct event_base *base,
                                            const struct ekv_http_limits *limits,
                                            const struct ekv_http_hooks *hooks)
{
    struct ekv_http_server *srv = ekv_calloc(1, sizeof(*srv));

    srv->base = base;
    srv->limits = *limits;
    if (srv->limits.max_pipeline == 0)
        srv->limits.max_pipeline = 1;
    srv->hooks = *hooks;
    TAILQ_INIT(&srv->conns);
    return srv;
}

void ekv_http_server_drain(struct ekv_http_server *srv)
{
    struct ekv_http_conn *conn, *next;

    srv->draining = true;
    for (conn = TAILQ_FIRST(&srv->conns); conn != NULL; conn = next) {
        next = TAILQ_NEXT(conn, link);
        if (!conn->in_message && conn->nreqs == 0 && out_len(conn) == 0) {
            conn_free(conn);
        } else {
            update(conn);
        }
    }
}

size_t ekv_http_server_conn_count(const struct ekv_http_server *srv)
{
    return srv->nconns;
}

void ekv_http_server_free(struct ekv_http_server *srv)
{
    struct ekv_http_conn *conn;

    if (srv == NULL)
        return;
    srv->draining = true; /* handshakes cut short here are no client's failure */
    while ((conn = TAILQ_FIRST(&srv->conns)) != NULL)
        conn_free(conn);
    ekv_free(srv);
}
