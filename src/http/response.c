/* response.c - request accessors and response serialization. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "edgekv/alloc.h"
#include "edgekv/text.h"

#include "http_int.h"

void ekv_http_req_free(struct ekv_http_req *req)
{
    if (req->body != NULL)
        evbuffer_free(req->body);
    if (req->resp_hdrs != NULL)
        evbuffer_free(req->resp_hdrs);
    if (req->out != NULL)
        evbuffer_free(req->out);
    ekv_free(req->head);
    ekv_free(req);
}

/* ---------------------------------------------------------------- accessors */

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
    return req->t0_us != 0 ? ekv_http_now_us() - req->t0_us : 0;
}

bool ekv_http_req_orphaned(const struct ekv_http_req *req)
{
    return req->conn == NULL;
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

void ekv_http_add_header(struct ekv_http_req *req, const char *name, const char *value)
{
    evbuffer_add_printf(req->resp_hdrs, "%s: %s\r\n", name, value);
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

    req->out = evbuffer_new();
    if (req->out == NULL)
        abort();
    evbuffer_add_printf(req->out, "HTTP/1.1 %d %s\r\n%sServer: edgekv\r\n", status,
                        ekv_http_reason(status), date_header(conn->srv));
    evbuffer_add_buffer(req->out, req->resp_hdrs);
    if (!no_body)
        evbuffer_add_printf(req->out, "Content-Length: %zu\r\n", blen);
    if (close)
        evbuffer_add(req->out, "Connection: close\r\n", 19);
    else if (req->http10)
        evbuffer_add(req->out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(req->out, "\r\n", 2);
    if (body != NULL) {
        if (!no_body && req->method != EKV_HTTP_HEAD)
            evbuffer_add_buffer(req->out, body); /* moves the chains: no copy */
        else
            evbuffer_drain(body, blen);
    }
    req->close_after = close;
}

void ekv_http_respond(struct ekv_http_req *req, int status, struct evbuffer *body)
{
    struct ekv_http_conn *conn = req->conn;
    bool close;

    if (req->srv != NULL && req->srv->hooks.on_done != NULL) /* not for orphans */
        req->srv->hooks.on_done(req, status, req->srv->hooks.arg);
    if (conn == NULL) { /* the client went away: nothing to send */
        if (body != NULL)
            evbuffer_drain(body, evbuffer_get_length(body));
        ekv_http_req_free(req);
        return;
    }
    /* close after this response if the client asked, if the body of a request answered
     * before it was read is still coming, or if this is the last request while draining */
    close = !req->keep_alive || conn->closing || ekv_http_conn_expects_body(req) ||
            (conn->srv->draining && !conn->in_message &&
             req == TAILQ_LAST(&conn->reqs, ekv_http_req_list));
    ekv_http_serialize(req, status, body, close);
    req->state = REQ_ANSWERED;
    ekv_http_conn_answered(conn);
}

void ekv_http_respond_data(struct ekv_http_req *req, int status, const char *content_type,
                           const void *data, size_t len)
{
    struct evbuffer *body = evbuffer_new();

    if (body == NULL || evbuffer_add(body, data, len) != 0)
        abort();
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
        abort();
    if (detail != NULL && json_object_set_new(o, "detail", json_string(detail)) != 0)
        json_object_set_new(o, "detail", json_string("(detail not representable)"));
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        abort();
    ekv_http_add_header(req, "Cache-Control", "no-store");
    ekv_http_respond_data(req, status, "application/problem+json", text, strlen(text));
    free(text);
}
