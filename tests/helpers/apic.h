/* apic.h - helpers for the API suites (tests/integration/check_api.c), on top of testutil.h:
 * one request per connection with a body and extra headers, JSON bodies, store creation, and
 * restarting a redis-server fixture on the same socket path (origin outage tests). */
#ifndef EDGEKV_TESTS_APIC_H
#define EDGEKV_TESTS_APIC_H

#include <jansson.h>

#include "testutil.h"

/**
 * Sends one request on a fresh connection and reads its final response into @r (free it with
 * ekv_test_resp_free()). @hdrs are extra header lines, each ending in "\r\n" (NULL: none);
 * Content-Length is added when @body is not NULL. Returns the status; fails the test if there
 * is no valid response.
 */
int apic_req(unsigned short port, const char *method, const char *path, const char *hdrs,
             const void *body, size_t len, struct ekv_test_resp *r);

/** apic_req() with a NUL-terminated body (or NULL), the response dropped: returns the status. */
int apic_status(unsigned short port, const char *method, const char *path, const char *hdrs,
                const char *body);

/** Sends @len raw bytes (a whole request) on a fresh connection and reads the response. */
int apic_raw(unsigned short port, const void *req, size_t len, unsigned flags,
             struct ekv_test_resp *r);

/** The body of @r as JSON (a new reference: json_decref() it). Fails the test if it is not. */
json_t *apic_json(const struct ekv_test_resp *r);

/** GET @path, expects @status and a JSON body, which it returns (json_decref() it). */
json_t *apic_get_json(unsigned short port, const char *path, const char *hdrs, int status);

/** Creates the store @name (expects 201) and copies its id to @id (23 bytes). */
void apic_create_store(unsigned short port, const char *hdrs, const char *name, char *id);

/** Scrape results of apic_metric() that are not values. */
#define APIC_METRIC_ABSENT (-1.0)
#define APIC_METRIC_UNREACHABLE (-2.0)

/** The value of the sample @series (its whole name, labels included) on @port's /metrics;
 * APIC_METRIC_ABSENT if there is none, APIC_METRIC_UNREACHABLE if /metrics did not answer 200. */
double apic_metric(unsigned short port, const char *series);

/**
 * Kills the redis-server of @r (SIGKILL) and leaves its socket path dead; the fixture keeps
 * its socket path for apic_redis_start_again().
 */
void apic_redis_kill(struct ekv_test_redis *r);

/** Starts a new redis-server on the same unix socket path as before (data is lost) and waits
 * until it answers PING. */
void apic_redis_start_again(struct ekv_test_redis *r);

#endif /* EDGEKV_TESTS_APIC_H */
