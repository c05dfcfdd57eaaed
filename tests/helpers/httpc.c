/* httpc.c - a raw HTTP/1.1 client for end-to-end tests: blocking sockets with send and receive
 * timeouts, arbitrary request bytes (malformed ones included), and a strict response reader that
 * handles pipelined responses, HEAD, interim 1xx responses, Content-Length, chunked and
 * read-until-close bodies. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "testutil.h"

#define MAX_HEAD (256 * 1024) /* a response head longer than this is malformed */
#define READ_CHUNK 65536
#define EKV_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

enum { PARSE_MORE = 0, PARSE_DONE = 1, PARSE_BAD = -1 };

/* ---------------------------------------------------------------- connections */

void ekv_test_set_timeout(struct ekv_test_conn *c, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

int ekv_test_try_connect(unsigned short port, struct ekv_test_conn **out)
{
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct ekv_test_conn *c = calloc(1, sizeof(*c));
    int e;

    ck_assert_ptr_nonnull(c);
    /* close-on-exec: a child started later must not keep our end of the connection open */
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(c->fd >= 0, "socket: %s", strerror(errno));
    ekv_test_set_timeout(c, EKV_TEST_TIMEOUT_MS); /* connect() obeys SO_SNDTIMEO on Linux */
    if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        e = errno;
        ekv_test_close(c);
        *out = NULL;
        return e;
    }
    *out = c;
    return 0;
}

struct ekv_test_conn *ekv_test_connect(unsigned short port)
{
    struct ekv_test_conn *c;
    int e = ekv_test_try_connect(port, &c);

    ck_assert_msg(e == 0, "connect to 127.0.0.1:%u: %s", port, strerror(e));
    return c;
}

void ekv_test_close(struct ekv_test_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        /* no close_notify (the socket just closes), yet a session of it stays resumable:
         * OpenSSL drops the session of an SSL freed before a shutdown */
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

int ekv_test_send(struct ekv_test_conn *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0 && c->ssl != NULL) {
        int n = SSL_write(c->ssl, p, (int)EKV_TEST_MIN(len, 1 << 20));
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            ERR_clear_error();
            if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
                return EAGAIN;
            return e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPIPE;
        }
        p += n;
        len -= (size_t)n;
    }
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EWOULDBLOCK ? EAGAIN : errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ekv_test_send_str(struct ekv_test_conn *c, const char *s)
{
    return ekv_test_send(c, s, strlen(s));
}

int ekv_test_sendf(struct ekv_test_conn *c, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n, rc;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    rc = ekv_test_send(c, s, (size_t)n);
    free(s);
    return rc;
}

/* Receives more bytes into c->buf, waiting at most the receive timeout (or not at all with
 * MSG_DONTWAIT in @flags). Returns 1 if bytes arrived or the connection ended (c->eof), 0 on a
 * timeout / nothing available. */
static int fill(struct ekv_test_conn *c, int flags)
{
    ssize_t n;

    if (c->eof)
        return 1;
    if (c->off > 0) { /* drop what has been consumed */
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len < READ_CHUNK) {
        c->cap = c->cap != 0 ? c->cap * 2 : 2 * READ_CHUNK;
        while (c->cap - c->len < READ_CHUNK)
            c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        ck_assert_ptr_nonnull(c->buf);
    }
    if (c->ssl != NULL) {
        int r, e;
        if ((flags & MSG_DONTWAIT) && !SSL_has_pending(c->ssl)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) == 0)
                return 0;
        }
        errno = 0;
        r = SSL_read(c->ssl, c->buf + c->len, (int)EKV_TEST_MIN(c->cap - c->len, 1 << 20));
        if (r > 0) {
            c->len += (size_t)r;
            return 1;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ERR_clear_error();
            return 0;
        }
        if (e == SSL_ERROR_SSL) /* an alert (certificate required...): the server refused */
            snprintf(c->err, sizeof(c->err), "tls: %s",
                     ERR_reason_error_string(ERR_peek_last_error()));
        ERR_clear_error();
        c->eof = true;
        return 1;
    }
    do
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, flags);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->len += (size_t)n;
        return 1;
    }
    if (n == 0 || errno == ECONNRESET || errno == EPIPE) {
        c->eof = true;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    ck_abort_msg("recv: %s", strerror(errno));
    return 0;
}

bool ekv_test_wait_eof(struct ekv_test_conn *c, unsigned timeout_ms)
{
    uint64_t end = ekv_test_now_ms() + timeout_ms;

    while (!c->eof) {
        uint64_t now = ekv_test_now_ms();
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r;

        if (now >= end)
            return false;
        r = poll(&pfd, 1, (int)(end - now));
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(r, 0);
        if (r == 0)
            return false;
        (void)fill(c, MSG_DONTWAIT); /* keeps early data for later reads */
    }
    return true;
}

/* ---------------------------------------------------------------- response parsing */

/* The index just past the first CRLF in buf[from..len), or 0 if there is none yet. */
static size_t line_end(const char *buf, size_t from, size_t len)
{
    for (size_t i = from; i + 1 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n')
            return i + 2;
    return 0;
}

static bool parse_u64(const char *s, size_t n, int base, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        int d;
        char ch = s[i];
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return true;
}

/* Decodes a chunked body starting at b[off] (@n bytes received). Returns PARSE_DONE with the
 * decoded body in @body (malloc'd) and the end of the message in @end, PARSE_MORE or
 * PARSE_BAD. */
static int parse_chunked(const char *b, size_t n, size_t off, char **body, size_t *blen,
                         size_t *end, char *why, size_t whylen)
{
    char *out = NULL;
    size_t olen = 0;

    for (;;) {
        size_t le = line_end(b, off, n), szlen;
        uint64_t sz;

        if (le == 0)
            goto more;
        szlen = strcspn(b + off, ";\r"); /* a chunk extension follows ';' */
        if (!parse_u64(b + off, szlen, 16, &sz) || sz > MAX_HEAD * 64) {
            snprintf(why, whylen, "bad chunk size line");
            goto bad;
        }
        off = le;
        if (sz == 0) { /* trailer fields, then an empty line */
            for (;;) {
                le = line_end(b, off, n);
                if (le == 0)
                    goto more;
                if (le == off + 2)
                    break;
                off = le;
            }
            *body = out;
            *blen = olen;
            *end = le;
            return PARSE_DONE;
        }
        if (n - off < sz + 2)
            goto more;
        if (b[off + sz] != '\r' || b[off + sz + 1] != '\n') {
            snprintf(why, whylen, "chunk data not followed by CRLF");
            goto bad;
        }
        out = realloc(out, olen + sz + 1);
        ck_assert_ptr_nonnull(out);
        memcpy(out + olen, b + off, sz);
        olen += sz;
        off += sz + 2;
    }
more:
    free(out);
    return PARSE_MORE;
bad:
    free(out);
    return PARSE_BAD;
}

/* Tries to parse one response at the start of the unconsumed input; on PARSE_DONE fills @r and
 * consumes it. */
static int try_parse(struct ekv_test_conn *c, struct ekv_test_resp *r, unsigned flags)
{
    const char *b = c->buf + c->off;
    const size_t n = c->len - c->off;
    char *why = c->err, *raw, *line, *chunked_body = NULL;
    const size_t whylen = sizeof(c->err);
    size_t head_len = 0, body_len = 0, msg_end, chunked_len = 0;
    bool no_body, chunked = false, have_cl = false;
    uint64_t cl = 0;
    int status, minor;

    for (size_t i = 0; i + 3 < n; i++) {
        if (memcmp(b + i, "\r\n\r\n", 4) == 0) {
            head_len = i + 4;
            break;
        }
    }
    if (head_len == 0) {
        if (n > MAX_HEAD) {
            snprintf(why, whylen, "no end of the response head in %zu bytes", n);
            return PARSE_BAD;
        }
        return PARSE_MORE;
    }
    if (head_len < 17 || memcmp(b, "HTTP/1.", 7) != 0 || b[7] < '0' || b[7] > '9' || b[8] != ' ' ||
        (b[12] != ' ' && b[12] != '\r')) {
        snprintf(why, whylen, "bad status line: %.40s", b);
        return PARSE_BAD;
    }
    minor = b[7] - '0';
    status = 0;
    for (int i = 9; i < 12; i++) {
        if (b[i] < '0' || b[i] > '9') {
            snprintf(why, whylen, "bad status code: %.40s", b);
            return PARSE_BAD;
        }
        status = status * 10 + (b[i] - '0');
    }

    /* the head, made into NUL-terminated strings in a copy; the body is appended later */
    raw = malloc(head_len + 1);
    ck_assert_ptr_nonnull(raw);
    memcpy(raw, b, head_len);
    raw[head_len] = '\0';
    memset(r, 0, sizeof(*r));
    r->raw = raw;
    r->status = status;
    r->minor = minor;
    line = raw + line_end(raw, 0, head_len);
    raw[line - raw - 2] = '\0';
    r->reason = raw[12] == ' ' ? raw + 13 : raw + 12; /* "" when there is no reason */
    while (line < raw + head_len - 2) {
        char *eol = raw + line_end(raw, (size_t)(line - raw), head_len) - 2, *colon, *v, *e;

        *eol = '\0';
        colon = strchr(line, ':');
        if (colon == NULL || colon == line || strcspn(line, " \t") < (size_t)(colon - line)) {
            snprintf(why, whylen, "bad header line: %.60s", line);
            goto bad;
        }
        if (r->nhdrs == EKV_TEST_MAX_HDRS) {
            snprintf(why, whylen, "more than %d headers", EKV_TEST_MAX_HDRS);
            goto bad;
        }
        *colon = '\0';
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            continue;
        for (e = eol; e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
            continue;
        *e = '\0';
        r->hdrs[r->nhdrs].name = line;
        r->hdrs[r->nhdrs].value = v;
        r->nhdrs++;
        if (strcasecmp(line, "Content-Length") == 0) {
            uint64_t v2;
            if (!parse_u64(v, strlen(v), 10, &v2) || (have_cl && v2 != cl)) {
                snprintf(why, whylen, "bad or conflicting Content-Length: %s", v);
                goto bad;
            }
            cl = v2;
            have_cl = true;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            chunked = strcasecmp(v, "chunked") == 0;
        }
        line = eol + 2;
    }

    no_body = (flags & EKV_TEST_HEAD) || status < 200 || status == 204 || status == 304;
    if (no_body) {
        msg_end = head_len;
    } else if (chunked) {
        int rc = parse_chunked(b, n, head_len, &chunked_body, &chunked_len, &msg_end, why, whylen);
        if (rc == PARSE_BAD)
            goto bad;
        if (rc == PARSE_MORE)
            goto more;
        body_len = chunked_len;
    } else if (have_cl) {
        if (cl > (uint64_t)1 << 40) {
            snprintf(why, whylen, "absurd Content-Length %llu", (unsigned long long)cl);
            goto bad;
        }
        if (n - head_len < cl)
            goto more;
        body_len = (size_t)cl;
        msg_end = head_len + body_len;
    } else { /* delimited by the end of the connection */
        if (!c->eof)
            goto more;
        body_len = n - head_len;
        msg_end = n;
    }

    /* the final copy: the parsed head, then the body; the pointers are rebased into it */
    {
        char *head = raw;

        raw = malloc(head_len + 1 + body_len + 1);
        ck_assert_ptr_nonnull(raw);
        memcpy(raw, head, head_len + 1);
        r->reason = raw + (r->reason - head);
        for (size_t i = 0; i < r->nhdrs; i++) {
            r->hdrs[i].name = raw + (r->hdrs[i].name - head);
            r->hdrs[i].value = raw + (r->hdrs[i].value - head);
        }
        free(head);
        r->raw = raw;
        if (body_len > 0)
            memcpy(raw + head_len + 1, chunked ? chunked_body : b + head_len, body_len);
        raw[head_len + 1 + body_len] = '\0';
        r->body = raw + head_len + 1;
        r->body_len = body_len;
    }
    free(chunked_body);
    c->off += msg_end;
    if (c->off == c->len)
        c->off = c->len = 0;
    return PARSE_DONE;
more:
    free(raw);
    memset(r, 0, sizeof(*r));
    return PARSE_MORE;
bad:
    free(chunked_body);
    free(raw);
    memset(r, 0, sizeof(*r));
    return PARSE_BAD;
}

int ekv_test_read(struct ekv_test_conn *c, struct ekv_test_resp *r, unsigned flags)
{
    memset(r, 0, sizeof(*r));
    c->err[0] = '\0';
    for (;;) {
        int rc = c->len > c->off || c->eof ? try_parse(c, r, flags) : PARSE_MORE;

        if (rc == PARSE_DONE)
            return EKV_TEST_OK;
        if (rc == PARSE_BAD)
            return EKV_TEST_BAD;
        if (c->eof) {
            if (c->len == c->off) {
                if (c->err[0] == '\0') /* else the TLS alert that closed it */
                    snprintf(c->err, sizeof(c->err), "connection closed");
                return EKV_TEST_CLOSED;
            }
            snprintf(c->err, sizeof(c->err), "connection closed after %zu bytes of a response",
                     c->len - c->off);
            return EKV_TEST_BAD;
        }
        if (!fill(c, 0)) {
            snprintf(c->err, sizeof(c->err), "timed out (%zu bytes pending)", c->len - c->off);
            return EKV_TEST_TIMEOUT;
        }
    }
}

int ekv_test_read_final(struct ekv_test_conn *c, struct ekv_test_resp *r, unsigned flags)
{
    unsigned interim = 0;

    for (;;) {
        int rc = ekv_test_read(c, r, flags);
        if (rc != EKV_TEST_OK || r->status >= 200) {
            r->ninterim = interim;
            return rc;
        }
        interim++;
        ekv_test_resp_free(r);
    }
}

size_t ekv_test_read_n(struct ekv_test_conn *c, struct ekv_test_resp *rs, size_t n,
                       const unsigned *flags)
{
    for (size_t i = 0; i < n; i++)
        if (ekv_test_read_final(c, &rs[i], flags != NULL ? flags[i] : 0) != EKV_TEST_OK)
            return i;
    return n;
}

const char *ekv_test_resp_header(const struct ekv_test_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

size_t ekv_test_resp_header_count(const struct ekv_test_resp *r, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nhdrs; i++)
        n += strcasecmp(r->hdrs[i].name, name) == 0;
    return n;
}

void ekv_test_resp_free(struct ekv_test_resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

int ekv_test_get_status(unsigned short port, const char *path)
{
    struct ekv_test_conn *c;
    struct ekv_test_resp r;
    int status = -1;

    if (ekv_test_try_connect(port, &c) != 0)
        return -1;
    if (ekv_test_sendf(c, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path) ==
            0 &&
        ekv_test_read_final(c, &r, 0) == EKV_TEST_OK) {
        status = r.status;
        ekv_test_resp_free(&r);
    }
    ekv_test_close(c);
    return status;
}
