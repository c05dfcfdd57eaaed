/* apic.c - helpers for the API suites: requests with bodies and headers on fresh connections,
 * JSON bodies, store creation, and a redis-server that can be killed and started again on the
 * same unix socket path. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "apic.h"

#define START_TIMEOUT_MS 5000

int apic_raw(unsigned short port, const void *req, size_t len, unsigned flags,
             struct ekv_test_resp *r)
{
    struct ekv_test_conn *c = ekv_test_connect(port);
    int rc, e = ekv_test_send(c, req, len);

    /* the server may answer (and close) before it has read everything (413, 401...) */
    rc = ekv_test_read_final(c, r, flags);
    ck_assert_msg(rc == EKV_TEST_OK, "no valid response (%d, send: %s): %s", rc, strerror(e),
                  c->err);
    ekv_test_close(c);
    return r->status;
}

int apic_req(unsigned short port, const char *method, const char *path, const char *hdrs,
             const void *body, size_t len, struct ekv_test_resp *r)
{
    size_t hlen = strlen(method) + strlen(path) + (hdrs != NULL ? strlen(hdrs) : 0) + 128;
    char *req = malloc(hlen + (body != NULL ? len : 0));
    int n;

    ck_assert_ptr_nonnull(req);
    n = snprintf(req, hlen, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s", method, path,
                 hdrs != NULL ? hdrs : "");
    if (body != NULL)
        n += snprintf(req + n, hlen - (size_t)n, "Content-Length: %zu\r\n", len);
    n += snprintf(req + n, hlen - (size_t)n, "\r\n");
    ck_assert_int_lt(n, (int)hlen);
    if (body != NULL && len > 0)
        memcpy(req + n, body, len);
    apic_raw(port, req, (size_t)n + (body != NULL ? len : 0),
             strcmp(method, "HEAD") == 0 ? EKV_TEST_HEAD : 0, r);
    free(req);
    return r->status;
}

int apic_status(unsigned short port, const char *method, const char *path, const char *hdrs,
                const char *body)
{
    struct ekv_test_resp r = {0};
    int status = apic_req(port, method, path, hdrs, body, body != NULL ? strlen(body) : 0, &r);

    ekv_test_resp_free(&r);
    return status;
}

json_t *apic_json(const struct ekv_test_resp *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, 0, &err);

    ck_assert_msg(j != NULL, "status %d: body is not JSON (%s): %.*s", r->status, err.text,
                  (int)r->body_len, r->body);
    return j;
}

json_t *apic_get_json(unsigned short port, const char *path, const char *hdrs, int status)
{
    struct ekv_test_resp r = {0};
    json_t *j;

    apic_req(port, "GET", path, hdrs, NULL, 0, &r);
    ck_assert_msg(r.status == status, "GET %s: status %d, expected %d: %.*s", path, r.status,
                  status, (int)r.body_len, r.body);
    j = apic_json(&r);
    ekv_test_resp_free(&r);
    return j;
}

void apic_create_store(unsigned short port, const char *hdrs, const char *name, char *id)
{
    struct ekv_test_resp r = {0};
    char body[512];
    json_t *j;
    const char *s;

    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    apic_req(port, "POST", "/resources/stores/kv", hdrs, body, strlen(body), &r);
    ck_assert_msg(r.status == 201, "create store %s: status %d: %.*s", name, r.status,
                  (int)r.body_len, r.body);
    j = apic_json(&r);
    s = json_string_value(json_object_get(j, "id"));
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), 22);
    strcpy(id, s);
    json_decref(j);
    ekv_test_resp_free(&r);
}

double apic_metric(unsigned short port, const char *series)
{
    struct ekv_test_resp r = {0};
    size_t n = strlen(series);
    double v = APIC_METRIC_ABSENT;

    if (apic_req(port, "GET", "/metrics", NULL, NULL, 0, &r) != 200) {
        ekv_test_resp_free(&r);
        return APIC_METRIC_UNREACHABLE;
    }
    for (const char *p = r.body; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    ekv_test_resp_free(&r);
    return v;
}

/* ---------------------------------------------------------------- redis outages */

void apic_redis_kill(struct ekv_test_redis *r)
{
    ekv_test_proc_signal(r->proc, SIGKILL);
    ck_assert_int_ge(ekv_test_proc_wait(r->proc, START_TIMEOUT_MS), 0);
}

void apic_redis_start_again(struct ekv_test_redis *r)
{
    ekv_test_redis_restart(r);
}
