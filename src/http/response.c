/* response.c - request accessors and response serialization. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/clock.h"
#include "edgekv/log.h"
#include "edgekv/text.h"

#include "http_int.h"

void ekv_http_req_free(struct ekv_http_req *req)
{
    if (req->body != NULL)
        evbuffer_free(req->body);
    if (req->resp_hdrs != req->resp_hdrs_inline)
        ekv_free(req->resp_hdrs);
    if (req->out != NULL)
        evbuffer_free(req->out);
    if (req->hdrs != req->inline_hdrs)
        ekv_free(req->hdrs);
    ekv_free(req->head);
    ekv_free(req);
}

/* ---------------------------------------------------------------- accessors */

const char *ekv_http_method_name(enum ekv_http_method m)
{
    static const char *const names[EKV_HTTP_NMETHODS] = {
        [EKV_HTTP_OTHER] = "other", [EKV_HTTP_GET] = "GET",         [EKV_HTTP_HEAD] = "HEAD",
        [EKV_HTTP_PUT] = "PUT",     [EKV_HTTP_POST] = "POST",       [EKV_HTTP_DELETE] = "DELETE",
        [EKV_HTTP_PATCH] = "PATCH", [EKV_HTTP_OPTIONS] = "OPTIONS",
    };

    return (unsigned)m < EKV_HTTP_NMETHODS ? names[m] : names[EKV_HTTP_OTHER];
}

enum ekv_http_method ekv_http_req_method(const struct ekv_http_req *req)
{
    return req->method;
}

const char *ekv_http_req_method_name(const struct ekv_http_req *req)
{
    return llhttp_method_name((llhttp_method_t)req->llhttp_method);
}

const char *ekv_http_req_path(const struct ekv_http_req *req, size_t *len)
{
    const char *q = memchr(req->head, '?', req->url_len);

    *len = q != NULL ? (size_t)(q - req->head) : req->url_len;
    return req->head;
}

const char *ekv_http_req_query(const struct ekv_http_req *req, size_t *len)
{
    const char *q = memchr(req->head, '?', req->url_len);

    if (q == NULL) {
        *len = 0;
        return NULL;
    }
    *len = req->url_len - (size_t)(q + 1 - req->head);
    return q + 1;
}

const char *ekv_http_req_header(const struct ekv_http_req *req, const char *lname, size_t *len)
{
    for (unsigned i = 0; i < req->nhdrs; i++) {
        const struct ekv_http_hdr *h = &req->hdrs[i];
        if (ekv_header_name_eq(req->head + h->name_off, h->name_len, lname)) {
            const char *v = req->head + h->val_off;
            size_t n = h->val_len;
            while (n > 0 && (*v == ' ' || *v == '\t'))
                v++, n--;
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            *len = n;
            return v;
        }
    }
    *len = 0;
    return NULL;
}

struct evbuffer *ekv_http_req_body(struct ekv_http_req *req)
{
    if (req->body == NULL && (req->body = evbuffer_new()) == NULL) /* none was sent */
        EKV_FATAL("out of memory creating a request body");
    return req->body;
}

int ekv_http_req_tag(const struct ekv_http_req *req)
{
    return req->conn != NULL ? req->conn->tag : -1;
}

void ekv_http_req_set_data(struct ekv_http_req *req, void *data)
{
    req->data = data;
}

void *ekv_http_req_data(const struct ekv_http_req *req)
{
    return req->data;
}

uint64_t ekv_http_req_elapsed_us(const struct ekv_http_req *req)
{
    return req->t0_us != 0 ? ekv_clock_now_us() - req->t0_us : 0;
}

bool ekv_http_req_orphaned(const struct ekv_http_req *req)
{
    return req->conn == NULL;
}

int ekv_http_req_minor(const struct ekv_http_req *req)
{
    return req->http10 ? 0 : 1;
}

void ekv_http_req_peer(const struct ekv_http_req *req, char *buf, size_t len)
{
    snprintf(buf, len, "%s", req->conn != NULL ? ekv_http_conn_peer(req->conn) : "-");
}

const char *ekv_http_conn_peer(struct ekv_http_conn *conn)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (conn->peer[0] == '\0') {
        int fd = conn->fd;
        const void *a = NULL;

        if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET)
                a = &((struct sockaddr_in *)&ss)->sin_addr;
            else if (ss.ss_family == AF_INET6)
                a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
            else if (ss.ss_family == AF_UNIX)
                snprintf(conn->peer, sizeof(conn->peer), "unix");
        }
        if (a != NULL && inet_ntop(ss.ss_family, a, conn->peer, sizeof(conn->peer)) == NULL)
            conn->peer[0] = '\0';
        if (conn->peer[0] == '\0')
            snprintf(conn->peer, sizeof(conn->peer), "-");
    }
    return conn->peer;
}

uint64_t ekv_http_req_resp_bytes(const struct ekv_http_req *req)
{
    return req->resp_bytes;
}

const char *ekv_http_req_resp_header(struct ekv_http_req *req, const char *lname, size_t *len)
{
    size_t nlen = strlen(lname);
    const char *p = req->resp_hdrs, *end = p + req->resp_hdrs_len;

    /* "Name: value\r\n" lines, as ekv_http_add_header_n() writes them */
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) >= nlen + 2 && p[nlen] == ':' && ekv_header_name_eq(p, nlen, lname)) {
            *len = (size_t)(eol - p) - nlen - 2;
            return p + nlen + 2;
        }
        p = eol + 2;
    }
    *len = 0;
    return NULL;
}

/* ---------------------------------------------------------------- responses */

const char *ekv_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

void ekv_http_add_header_n(struct ekv_http_req *req, const char *name, size_t nlen,
                           const char *value, size_t vlen)
{
    size_t need = (size_t)req->resp_hdrs_len + nlen + vlen + 4;
    char *p;

    if (need > req->resp_hdrs_cap) { /* long values (metadata): onto the heap */
        size_t cap = EKV_MAX(need, (size_t)req->resp_hdrs_cap * 2);
        if (cap > UINT32_MAX) /* handlers add a few headers of bounded size */
            EKV_FATAL("response headers of %zu bytes", cap);
        if (req->resp_hdrs == req->resp_hdrs_inline) {
            req->resp_hdrs = ekv_malloc(cap);
            memcpy(req->resp_hdrs, req->resp_hdrs_inline, req->resp_hdrs_len);
        } else {
            req->resp_hdrs = ekv_realloc(req->resp_hdrs, cap);
        }
        req->resp_hdrs_cap = (uint32_t)cap;
    }
    p = req->resp_hdrs + req->resp_hdrs_len;
    memcpy(p, name, nlen);
    p[nlen] = ':';
    p[nlen + 1] = ' ';
    memcpy(p + nlen + 2, value, vlen);
    p[nlen + 2 + vlen] = '\r';
    p[nlen + 3 + vlen] = '\n';
    req->resp_hdrs_len = (uint32_t)need;
}

void ekv_http_add_header(struct ekv_http_req *req, const char *name, const char *value)
{
    ekv_http_add_header_n(req, name, strlen(name), value, strlen(value));
}

/* "Date: <IMF-fixdate>\r\n", formatted once per second per worker. */
static const char *date_header(struct ekv_http_server *srv)
{
    struct timeval tv;
    struct tm tm;

    event_base_gettimeofday_cached(srv->base, &tv);
    if (tv.tv_sec != srv->date_sec) {
        time_t t = tv.tv_sec;
        gmtime_r(&t, &tm);
        strftime(srv->date, sizeof(srv->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_sec = tv.tv_sec;
    }
    return srv->date;
}

void ekv_http_serialize(struct ekv_http_req *req, int status, struct evbuffer *body, bool close)
{
    struct ekv_http_conn *conn = req->conn;
    size_t blen = body != NULL ? evbuffer_get_length(body) : 0;
    bool no_body = status == 204 || status == 304 || status < 200;
    const char *reason = ekv_http_reason(status), *date;
    size_t rlen = strlen(reason), dlen, n;
    struct evbuffer_iovec v;
    char *p;

    req->out = evbuffer_new();
    if (req->out == NULL)
        EKV_FATAL("out of memory creating a response");
    date = date_header(conn->srv); /* before its length is taken: it may be refreshed */
    dlen = strlen(date);
    /* the whole head written by hand into one extent of the output: this runs for every
     * response (status line, Date, Server, the handler's headers, length, connection) */
    n = 15 + rlen + dlen + 16 + req->resp_hdrs_len + 16 + 20 + 2 + 24 + 2;
    if (evbuffer_reserve_space(req->out, (ev_ssize_t)n, &v, 1) != 1)
        EKV_FATAL("out of memory reserving a response head of %zu bytes", n);
    p = v.iov_base;
    memcpy(p, "HTTP/1.1 ", 9);
    p[9] = (char)('0' + status / 100 % 10);
    p[10] = (char)('0' + status / 10 % 10);
    p[11] = (char)('0' + status % 10);
    p[12] = ' ';
    memcpy(p + 13, reason, rlen);
    memcpy(p + 13 + rlen, "\r\n", 2);
    p += 15 + rlen;
    memcpy(p, date, dlen);
    p += dlen;
    memcpy(p, "Server: edgekv\r\n", 16);
    p += 16;
    memcpy(p, req->resp_hdrs, req->resp_hdrs_len);
    p += req->resp_hdrs_len;
    if (req->chunked) {
        memcpy(p, "Transfer-Encoding: chunked\r\n", 28);
        p += 28;
    } else if (!no_body && req->state != REQ_STREAMING) {
        memcpy(p, "Content-Length: ", 16);
        p += 16;
        p += ekv_fmt_u64(p, blen);
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    if (close) {
        memcpy(p, "Connection: close\r\n", 19);
        p += 19;
    } else if (req->http10) {
        memcpy(p, "Connection: keep-alive\r\n", 24);
        p += 24;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    if (evbuffer_commit_space(req->out, &v, 1) != 0)
        EKV_FATAL("evbuffer_commit_space failed on a response head");
    if (body != NULL) {
        if (!no_body && req->method != EKV_HTTP_HEAD)
            evbuffer_add_buffer(req->out, body); /* moves the chains: no copy */
        else
            evbuffer_drain(body, blen);
    }
    req->close_after = close;
}

/* Whether the connection closes after answering @req: the client asked, the body of a request
 * answered before it was read is still coming, or this is the last request while draining. */
static bool close_after(const struct ekv_http_req *req)
{
    const struct ekv_http_conn *conn = req->conn;

    return !req->keep_alive || conn->closing || ekv_http_conn_expects_body(req) ||
           (conn->srv->draining && !conn->in_message &&
            req == TAILQ_LAST(&conn->reqs, ekv_http_req_list));
}

void ekv_http_respond(struct ekv_http_req *req, int status, struct evbuffer *body)
{
    struct ekv_http_conn *conn = req->conn;
    bool close;

    req->resp_bytes = body == NULL || status == 204 || status == 304 || status < 200 ||
                              req->method == EKV_HTTP_HEAD
                          ? 0
                          : evbuffer_get_length(body);
    if (req->srv != NULL && req->srv->hooks.on_done != NULL) /* not for orphans */
        req->srv->hooks.on_done(req, status, req->srv->hooks.arg);
    if (conn == NULL) { /* the client went away: nothing to send */
        if (body != NULL)
            evbuffer_drain(body, evbuffer_get_length(body));
        ekv_http_req_free(req);
        return;
    }
    close = close_after(req);
    ekv_http_serialize(req, status, body, close);
    req->state = REQ_ANSWERED;
    ekv_http_conn_answered(conn);
}

void ekv_http_respond_data(struct ekv_http_req *req, int status, const char *content_type,
                           const void *data, size_t len)
{
    struct evbuffer *body = evbuffer_new();

    if (body == NULL || evbuffer_add(body, data, len) != 0)
        EKV_FATAL("out of memory copying a response body of %zu bytes", len);
    if (content_type != NULL)
        ekv_http_add_header(req, "Content-Type", content_type);
    ekv_http_respond(req, status, body);
    evbuffer_free(body);
}

void ekv_http_respond_problem(struct ekv_http_req *req, int status, const char *detail)
{
    json_t *o = json_pack("{s:s, s:s, s:i}", "type", "about:blank", "title",
                          ekv_http_reason(status), "status", status);
    char *text;

    if (o == NULL)
        EKV_FATAL("out of memory building a problem document");
    if (detail != NULL && json_object_set_new(o, "detail", json_string(detail)) != 0)
        json_object_set_new(o, "detail", json_string("(detail not representable)"));
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        EKV_FATAL("out of memory serialising a problem document");
    ekv_http_add_header(req, "Cache-Control", "no-store");
    ekv_http_respond_data(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

/* ---------------------------------------------------------------- streamed responses */

void ekv_http_stream_begin(struct ekv_http_req *req, int status, const char *content_type,
                           ekv_http_drain_cb *cb, void *arg)
{
    struct ekv_http_conn *conn = req->conn;

    req->stream_status = status;
    req->drain_cb = cb;
    req->drain_arg = arg;
    req->state = REQ_STREAMING;
    if (conn == NULL) /* the client went away already: the producer finds it orphaned */
        return;
    if (content_type != NULL)
        ekv_http_add_header(req, "Content-Type", content_type);
    req->chunked = !req->http10;
    /* an HTTP/1.0 client learns where the body ends when the connection closes */
    ekv_http_serialize(req, status, NULL, close_after(req) || req->http10);
    ekv_http_conn_answered(conn);
}

size_t ekv_http_stream_write(struct ekv_http_req *req, const void *data, size_t len)
{
    struct ekv_http_conn *conn = req->conn;
    char size[24];
    int n;

    if (conn == NULL || len == 0)
        return conn != NULL ? ekv_http_conn_pending(conn) + evbuffer_get_length(req->out) : 0;
    req->resp_bytes += len;
    if (req->chunked) {
        n = snprintf(size, sizeof(size), "%zx\r\n", len);
        if (evbuffer_add(req->out, size, (size_t)n) != 0 ||
            evbuffer_add(req->out, data, len) != 0 || evbuffer_add(req->out, "\r\n", 2) != 0)
            EKV_FATAL("out of memory queueing %zu bytes of a streamed response", len);
    } else if (evbuffer_add(req->out, data, len) != 0) {
        EKV_FATAL("out of memory queueing %zu bytes of a streamed response", len);
    }
    ekv_http_conn_answered(conn);
    /* the connection may have gone while sending: req->conn says */
    return req->conn != NULL ? ekv_http_conn_pending(req->conn) + evbuffer_get_length(req->out)
                             : 0;
}

void ekv_http_stream_end(struct ekv_http_req *req)
{
    struct ekv_http_conn *conn = req->conn;

    if (req->srv != NULL && req->srv->hooks.on_done != NULL) /* not for orphans */
        req->srv->hooks.on_done(req, req->stream_status, req->srv->hooks.arg);
    if (conn == NULL) {
        if (req->notify_pending)
            req->ended = true; /* freed by the notification on its way (conn.c) */
        else
            ekv_http_req_free(req);
        return;
    }
    if (req->chunked && evbuffer_add(req->out, "0\r\n\r\n", 5) != 0)
        EKV_FATAL("out of memory ending a streamed response");
    req->state = REQ_ANSWERED;
    ekv_http_conn_answered(conn);
}
