/* fuzz_http.c - libFuzzer target: the HTTP front end as a whole (src/http/conn.c and
 * response.c on llhttp): request lines, headers, limits, bodies (Content-Length and chunked),
 * pipelining, early and late answers, Expect: 100-continue, backpressure, lingering close.
 *
 * conn.c does its I/O on the socket itself (read, evbuffer_write, shutdown, getpeername), so
 * there is no pure seam below it: the target adopts one end of a socketpair into a server on
 * an event_base of its own and plays the client on the other end, feeding the input in splits
 * a seed chooses, turning the loop without waiting between them. Everything the server does
 * runs as in production; only the handlers are the target's (below).
 *
 * Input: byte 0 the limits, byte 1 the splits, the rest what the client sends.
 *   byte 0: bits 0-2 max-pipeline - 1; bits 3-4 max-header-bytes (64, 512, 4 KiB, 32 KiB);
 *           bits 5-6 the body limit the head callback returns (0, 16, 4 KiB, 1 MiB);
 *           bit 7: header and idle timeouts of 0 (every deadline passes on the next turn).
 *   byte 1: bits 0-6 the seed of the splits (and of the order late answers are given in);
 *           bit 7: drain the server (graceful stop) after the first split.
 * The handlers go by the first path segment: /early is answered 404 by the head callback,
 * /late from the driver a turn or more later (in a random order), /big with 300 KB (past the
 * output high-water mark), /204 with no body, /meta with a long header; anything else 200
 * with the request's body echoed.
 *
 * Invariants checked after every input (abort() on a violation, which libFuzzer reports):
 * what the server sent parses as HTTP/1.1 responses (llhttp, response mode), one per request
 * that reached the head callback (plus at most one error answer to the request that broke the
 * framing), in request order, each with the status its handler gave, nothing after a
 * "Connection: close"; and once the client has closed its side and every handler answered,
 * the server closes the connection by itself within a bounded number of loop turns. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <llhttp.h>

#include "edgekv/http.h"
#include "edgekv/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_HEADS 4096   /* requests per input that reach the head callback */
#define MAX_LATE 64      /* late answers outstanding */
#define MAX_SPLITS 64    /* writes of the client; the rest goes in the last one */
#define MAX_TURNS 256    /* loop turns after the client's last byte: more is a stuck connection */
#define BIG_BODY (300 * 1024)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* What the client expects of the i-th response: HEAD has no body; the handler's status. */
struct head {
    bool is_head;
    int status; /* 0: not answered by a handler (a framing error or a limit may answer it) */
};

static struct {
    struct event_base *base;
    struct ekv_http_server *srv;
    uint64_t body_limit;
    uint32_t rng;
    struct head heads[MAX_HEADS];
    unsigned nheads;
    struct ekv_http_req *late[MAX_LATE];
    unsigned nlate;
    unsigned closed;
    /* the client's view of the responses */
    llhttp_t resp;
    unsigned nresp;
    int cur_status;
    bool resp_failed;
    const char *resp_error;
} F;

static char big_body[BIG_BODY];

static uint32_t next_rand(void)
{
    /* xorshift32: deterministic for a given input, so every crash reproduces */
    F.rng ^= F.rng << 13;
    F.rng ^= F.rng >> 17;
    F.rng ^= F.rng << 5;
    return F.rng;
}

static bool path_is(struct ekv_http_req *req, const char *seg)
{
    size_t len, n = strlen(seg);
    const char *p = ekv_http_req_path(req, &len);

    return len >= n && memcmp(p, seg, n) == 0 && (len == n || p[n] == '/' || p[n] == '?');
}

static struct head *head_of(struct ekv_http_req *req)
{
    uintptr_t i = (uintptr_t)ekv_http_req_data(req);

    return i != 0 ? &F.heads[i - 1] : NULL;
}

/* Every accessor the router and the access log use, on a request of any shape. */
static void touch(struct ekv_http_req *req)
{
    size_t len;
    char peer[64];
    const char *s;

    (void)ekv_http_req_method(req);
    CHECK(ekv_http_req_method_name(req) != NULL, "no method name");
    s = ekv_http_req_path(req, &len);
    CHECK(len == 0 || s != NULL, "path");
    s = ekv_http_req_query(req, &len);
    CHECK(s != NULL || len == 0, "query");
    (void)ekv_http_req_header(req, "host", &len);
    (void)ekv_http_req_header(req, "content-type", &len);
    (void)ekv_http_req_header(req, "fastly-key", &len);
    (void)ekv_http_req_tag(req);
    (void)ekv_http_req_minor(req);
    (void)ekv_http_req_elapsed_us(req);
    ekv_http_req_peer(req, peer, sizeof(peer));
}

static void answer(struct ekv_http_req *req, int status)
{
    struct head *h = head_of(req);

    if (h != NULL)
        h->status = status;
    ekv_http_add_header(req, "X-Fuzz", "1");
    if (status == 204) {
        ekv_http_respond(req, 204, NULL);
    } else if (status == 404) {
        ekv_http_respond_problem(req, 404, "no such thing");
    } else {
        struct evbuffer *body = evbuffer_new();
        CHECK(body != NULL, "evbuffer_new");
        evbuffer_add_buffer(body, ekv_http_req_body(req)); /* the echo */
        ekv_http_respond(req, status, body);
        evbuffer_free(body);
    }
}

static uint64_t on_head(struct ekv_http_req *req, void *arg)
{
    struct head *h;

    (void)arg;
    CHECK(F.nheads < MAX_HEADS, "too many requests");
    h = &F.heads[F.nheads++];
    *h = (struct head){.is_head = ekv_http_req_method(req) == EKV_HTTP_HEAD};
    ekv_http_req_set_data(req, (void *)(uintptr_t)F.nheads);
    touch(req);
    (void)ekv_http_req_has_body(req);
    if (path_is(req, "/early")) {
        answer(req, 404);
        return 0;
    }
    return F.body_limit;
}

static void on_request(struct ekv_http_req *req, void *arg)
{
    (void)arg;
    touch(req);
    CHECK(!ekv_http_req_orphaned(req), "an orphan handed to the request callback");
    if (path_is(req, "/late") && F.nlate < MAX_LATE) {
        F.late[F.nlate++] = req;
    } else if (path_is(req, "/big")) {
        struct evbuffer *body = evbuffer_new();
        struct head *h = head_of(req);
        CHECK(body != NULL, "evbuffer_new");
        evbuffer_add_reference(body, big_body, sizeof(big_body), NULL, NULL);
        if (h != NULL)
            h->status = 200;
        ekv_http_respond(req, 200, body);
        evbuffer_free(body);
    } else if (path_is(req, "/204")) {
        answer(req, 204);
    } else if (path_is(req, "/meta")) {
        char v[700];
        memset(v, 'm', sizeof(v));
        ekv_http_add_header_n(req, "Fastly-Metadata", 15, v, sizeof(v));
        answer(req, 200);
    } else {
        answer(req, 200);
    }
}

static void on_done(struct ekv_http_req *req, int status, void *arg)
{
    size_t len;

    (void)arg;
    (void)status;
    (void)ekv_http_req_resp_bytes(req);
    (void)ekv_http_req_resp_header(req, "x-fuzz", &len);
}

static void on_closed(void *arg)
{
    (void)arg;
    F.closed++;
}

/* Answers the late requests, in an order of the seed's choosing. */
static void answer_late(void)
{
    while (F.nlate > 0) {
        unsigned i = next_rand() % F.nlate;
        struct ekv_http_req *req = F.late[i];

        F.late[i] = F.late[--F.nlate];
        answer(req, 200);
    }
}

/* ---------------------------------------------------------------- the client's side */

static int resp_headers_complete(llhttp_t *p)
{
    int status = llhttp_get_status_code(p);
    unsigned i;

    if (status >= 100 && status < 200) {
        CHECK(status == 100, "interim status %d", status);
        return 0;
    }
    i = F.nresp++;
    CHECK(i <= F.nheads, "response %u, but only %u requests reached the head callback", i + 1,
          F.nheads);
    if (i < F.nheads) {
        if (F.heads[i].status != 0)
            CHECK(F.heads[i].status == status, "response %u: status %d, its handler gave %d",
                  i + 1, status, F.heads[i].status);
        if (F.heads[i].is_head)
            return 1; /* no body follows (its Content-Length counts the body a GET would get) */
    } else {
        CHECK(status >= 400, "an extra response %u that is no error (%d)", i + 1, status);
    }
    CHECK((p->flags & F_CONTENT_LENGTH) || status == 204 || status == 304,
          "response %u (%d) without Content-Length", i + 1, status);
    return 0;
}

static const llhttp_settings_t resp_settings = {
    .on_headers_complete = resp_headers_complete,
};

static void client_read(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        llhttp_errno_t err;
        if (F.resp_failed)
            continue;
        err = llhttp_execute(&F.resp, buf, (size_t)n);
        if (err != HPE_OK) {
            F.resp_failed = true;
            F.resp_error = llhttp_get_error_reason(&F.resp);
        }
    }
}

static void turn(int fd)
{
    event_base_loop(F.base, EVLOOP_NONBLOCK);
    client_read(fd);
}

/* ---------------------------------------------------------------- the target */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* as edgekv does: a write to a closed peer is an error return */
    ekv_log_set_level((enum ekv_log_level)(EKV_LOG_ERROR + 1)); /* quiet */
    F.base = event_base_new();
    if (F.base == NULL)
        abort();
    memset(big_body, 'b', sizeof(big_body));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t header_max[] = {64, 512, 4096, 32768};
    static const uint64_t body_max[] = {0, 16, 4096, 1 << 20};
    struct ekv_http_limits lim;
    struct ekv_http_hooks hooks = {
        .on_head = on_head,
        .on_request = on_request,
        .on_done = on_done,
        .on_closed = on_closed,
    };
    const char *p;
    size_t left, splits = 0;
    int sv[2];
    bool drain;

    if (size < 2)
        return 0;
    lim = (struct ekv_http_limits){
        .max_pipeline = (unsigned)(data[0] & 7) + 1,
        .max_header_bytes = header_max[(data[0] >> 3) & 3],
        .header_timeout_ms = (data[0] & 0x80) ? 0 : 60000,
        .idle_timeout_ms = (data[0] & 0x80) ? 0 : 60000,
    };
    F.body_limit = body_max[(data[0] >> 5) & 3];
    F.rng = (uint32_t)(data[1] & 0x7f) * 2654435761u + 1;
    drain = (data[1] & 0x80) != 0;
    F.nheads = F.nlate = F.nresp = F.closed = 0;
    F.resp_failed = false;
    F.resp_error = NULL;
    llhttp_init(&F.resp, HTTP_RESPONSE, &resp_settings);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    F.srv = ekv_http_server_new(F.base, &lim, &hooks);
    if (ekv_http_server_adopt(F.srv, sv[0], 7) != EKV_OK)
        abort();

    p = (const char *)data + 2;
    left = size - 2;
    while (left > 0) {
        size_t n = left;
        uint32_t r = next_rand();
        ssize_t w;

        if (splits++ < MAX_SPLITS)
            n = (r & 3) == 0 ? 1 + (r >> 2) % 4 : 1 + (r >> 2) % left;
        n = n < left ? n : left;
        w = write(sv[1], p, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* the server is not reading: answering may unblock it; else it is closing */
                answer_late();
                turn(sv[1]);
                if (splits > MAX_SPLITS + MAX_TURNS)
                    break;
                continue;
            }
            break; /* EPIPE: the server closed the connection */
        }
        p += w;
        left -= (size_t)w;
        turn(sv[1]);
        if (r & 0x100000)
            answer_late(); /* sometimes a turn later, sometimes more */
        if (drain && splits == 1)
            ekv_http_server_drain(F.srv);
        turn(sv[1]);
    }

    /* the client is done sending: every request gets its answer, then the server must close */
    shutdown(sv[1], SHUT_WR);
    for (unsigned t = 0; t < MAX_TURNS && ekv_http_server_conn_count(F.srv) > 0; t++) {
        answer_late();
        turn(sv[1]);
    }
    CHECK(ekv_http_server_conn_count(F.srv) == 0,
          "the connection is still open %d turns after the client closed its side", MAX_TURNS);
    CHECK(F.closed == 1, "on_closed called %u times", F.closed);
    client_read(sv[1]);
    CHECK(!F.resp_failed, "the responses do not parse: %s", F.resp_error);
    CHECK(F.nresp <= F.nheads + 1, "%u responses to %u requests", F.nresp, F.nheads);

    answer_late(); /* none are left; but if some were, they would be answered into the void */
    ekv_http_server_free(F.srv);
    F.srv = NULL;
    close(sv[1]);
    return 0;
}
