/* http_int.h - the HTTP module's private structures, shared by conn.c and response.c. */
#ifndef EDGEKV_HTTP_INT_H
#define EDGEKV_HTTP_INT_H

#include <sys/queue.h>

#include <llhttp.h>

#include "edgekv/http.h"

struct event;
struct evbuffer;
struct ssl_st;

#define EKV_HTTP_MAX_HEADERS 100
#define EKV_HTTP_INLINE_HEADERS 16 /* most requests have fewer: no allocation for them */

struct ekv_http_hdr {
    uint32_t name_off, name_len; /* offsets into req->head */
    uint32_t val_off, val_len;
};

enum req_state {
    REQ_HEAD = 0,  /* reading the request line and headers */
    REQ_BODY,      /* reading the body */
    REQ_WAITING,   /* complete, handed to the request callback */
    REQ_ANSWERED,  /* response serialized in req->out, waiting for its turn */
    REQ_STREAMING, /* a streamed response: req->out holds what is not queued yet */
};

struct ekv_http_conn;

struct ekv_http_req {
    TAILQ_ENTRY(ekv_http_req) link;  /* in conn->reqs, in arrival order */
    struct ekv_http_conn *conn;      /* NULL once orphaned (the client went away) */
    enum req_state state;
    enum ekv_http_method method;
    uint8_t llhttp_method;
    bool keep_alive;                 /* the client allows another request after this one */
    bool http10;                     /* HTTP/1.0: keep-alive must be announced */
    bool close_after;                /* the response says Connection: close */
    bool answered_early;             /* answered by the head callback */
    bool in_field;                   /* last header span was a field name */
    char *head;                      /* URL then header names/values, up to max_header_bytes */
    uint32_t head_len, head_cap;
    uint32_t url_len;                /* the URL is head[0 .. url_len) */
    unsigned nhdrs;
    struct ekv_http_hdr *hdrs;       /* inline_hdrs, or a heap array of EKV_HTTP_MAX_HEADERS */
    struct ekv_http_hdr inline_hdrs[EKV_HTTP_INLINE_HEADERS];
    uint64_t body_max;
    void *data;                      /* the callbacks' own (ekv_http_req_set_data) */
    uint64_t t0_us;                  /* when it was dispatched (monotonic) */
    struct ekv_http_server *srv;     /* for on_done, also once orphaned */
    struct evbuffer *body;
    char *resp_hdrs;                 /* "Name: value\r\n" lines added by the handler: */
    uint32_t resp_hdrs_len;          /* resp_hdrs_inline, or on the heap once they outgrow it */
    uint32_t resp_hdrs_cap;
    char resp_hdrs_inline[256];
    struct evbuffer *out;            /* the serialized response */
    uint64_t resp_bytes;             /* body bytes of the answer (ekv_http_req_resp_bytes) */
    bool chunked;                    /* a streamed body, in chunks */
    int stream_status;               /* a streamed response's status, for on_done */
    ekv_http_drain_cb *drain_cb;     /* a streamed response's producer */
    void *drain_arg;
    bool notify_pending;             /* orphaned: its producer is yet to hear of it */
    bool ended;                      /* ... and ended it meanwhile: freed once it has */
};

TAILQ_HEAD(ekv_http_req_list, ekv_http_req);

struct ekv_http_conn {
    TAILQ_ENTRY(ekv_http_conn) link;
    struct ekv_http_server *srv;
    int fd;
    struct event *rev;               /* readable (registered while the connection may read) */
    struct event *wev;               /* writable (registered while output waits), with the
                                      * write-progress deadline */
    struct evbuffer *in;             /* input read but not parsed yet (pipelining, backpressure) */
    struct evbuffer *out;            /* answers in order, not sent yet */
    struct event *timer;             /* header / idle deadline */
    struct event *resume;            /* continue parsing on the next loop turn */
    struct event *drain;             /* a streamed response may go on (made for the first) */
    llhttp_t parser;
    struct ekv_http_req_list reqs;   /* parsing (last) and pending ones, in order */
    unsigned nreqs;
    int tag;
    int err_status;                  /* our own reason to stop parsing (413, 414, 431) */
    const char *err_detail;          /* and its explanation (static) */
    uint64_t msg_start_ms;           /* when the current request's first byte arrived */
    uint64_t deadline_ms;            /* when the timer's current deadline passes */
    bool timer_on;                   /* the timer is armed (maybe for an earlier time) */
    bool in_message;                 /* the parser is inside a request */
    bool closing;                    /* no more requests: close once output is flushed */
    bool read_eof;                   /* the client closed its side */
    bool in_process;                 /* guards process_input() against re-entry */
    bool served_any;                 /* a request was read (idle-timeout applies, not header) */
    bool lingering;                  /* response sent; discarding input until EOF */
    bool reading;                    /* rev is registered */
    bool writing;                    /* wev is registered */
    bool broken;                     /* a write failed: close from the loop (maybe_close) */
    char peer[48];                   /* the client's address for logs; "" until looked up */
    /* HTTPS (conn.c "TLS transport"); all zero for a plain connection */
    struct ssl_st *ssl;              /* NULL: plain TCP */
    bool handshaking;                /* the TLS handshake has not completed */
    bool hs_wants_write;             /* the handshake waits for writability */
    bool read_wants_write;           /* the last SSL_read waits for writability */
    bool write_wants_read;           /* the last SSL_write waits for readability */
    bool tls_shut;                   /* close_notify sent */
    size_t write_retry;              /* length of an SSL_write to repeat (it wanted I/O) */
    const char *tls_why;             /* why the handshake failed (static), NULL: not yet */
};

TAILQ_HEAD(ekv_http_conn_list, ekv_http_conn);

struct ekv_http_server {
    struct event_base *base;
    struct ekv_http_limits limits;
    struct ekv_http_hooks hooks;
    struct ekv_http_conn_list conns;
    size_t nconns;
    bool draining;
    long date_sec;                   /* second for which date[] was formatted */
    char date[40];                   /* "Date: ...\r\n" */
    char rbuf[32768];                /* every read lands here and is parsed in place */
};

/* response.c */
void ekv_http_req_free(struct ekv_http_req *req);
/** The client's address of @conn (looked up once): "192.0.2.7", "unix", "-". */
const char *ekv_http_conn_peer(struct ekv_http_conn *conn);
/** Serializes the response of @req into req->out (status line, headers, body). */
void ekv_http_serialize(struct ekv_http_req *req, int status, struct evbuffer *body, bool close);
/* conn.c */
/** True while @req is being parsed and the parser expects a body for it. */
bool ekv_http_conn_expects_body(const struct ekv_http_req *req);
/** Called by response.c when @req has been answered: flushes answered requests in order
 * (and what a streamed response at their head has so far). */
void ekv_http_conn_answered(struct ekv_http_conn *conn);
/** The bytes @conn has not sent yet. */
size_t ekv_http_conn_pending(const struct ekv_http_conn *conn);

/* tls.c */
/** A server-side SSL on socket @fd with the context of @t, or NULL (out of memory). */
struct ssl_st *ekv_http_tls_ssl_new(const struct ekv_http_tls *t, int fd);

#endif /* EDGEKV_HTTP_INT_H */
