/* check_metrics.c - counters from several worker threads sum at scrape time, histograms are
 * cumulative, and the exposition is well-formed (the integration suite also runs promtool). */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "edgekv/http.h"
#include "edgekv/metrics.h"

#include "testutil.h"

static char *render(struct ekv_metrics *m, const struct ekv_metrics_gauges *g)
{
    struct evbuffer *out = evbuffer_new();
    size_t n;
    char *text;

    ekv_metrics_render(m, g, out);
    n = evbuffer_get_length(out);
    text = malloc(n + 1);
    evbuffer_remove(out, text, n);
    text[n] = '\0';
    evbuffer_free(out);
    return text;
}

/* The value of the line that starts with @series (name and labels exactly). */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

START_TEST(test_sums_across_workers)
{
    struct ekv_metrics *m = ekv_metrics_new(3);
    struct ekv_metrics_gauges g = {.connections = 7, .cache_entries = 5, .workers = 3};
    char *text;

    ekv_metrics_http(ekv_metrics_worker(m, 0), EKV_MR_ITEM, EKV_HTTP_GET, 200, 300);
    ekv_metrics_http(ekv_metrics_worker(m, 1), EKV_MR_ITEM, EKV_HTTP_GET, 200, 3000);
    ekv_metrics_http(ekv_metrics_worker(m, 2), EKV_MR_ITEM, EKV_HTTP_PUT, 412, 50);
    ekv_metrics_http(ekv_metrics_worker(m, 2), EKV_MR_OTHER, EKV_HTTP_GET, 299, 50);
    ekv_metrics_lookup(ekv_metrics_worker(m, 0), EKV_ML_HIT);
    ekv_metrics_lookup(ekv_metrics_worker(m, 1), EKV_ML_HIT);
    ekv_metrics_lookup(ekv_metrics_worker(m, 1), EKV_ML_COLLAPSED);
    ekv_metrics_origin(ekv_metrics_worker(m, 2), EKV_MO_GET, EKV_MX_TIMEOUT, 1000000);
    text = render(m, &g);
    ck_assert_double_eq(
        value_of(text, "edgekv_http_requests_total{route=\"item\",method=\"GET\",code=\"200\"}"),
        2);
    ck_assert_double_eq(
        value_of(text, "edgekv_http_requests_total{route=\"item\",method=\"PUT\",code=\"412\"}"),
        1);
    ck_assert_double_eq(
        value_of(text,
                 "edgekv_http_requests_total{route=\"other\",method=\"GET\",code=\"other\"}"),
        1);
    /* cumulative buckets: 300 us is under 0.0005, 3000 us under 0.005 */
    ck_assert_double_eq(
        value_of(text,
                 "edgekv_http_request_duration_seconds_bucket{route=\"item\",le=\"0.0005\"}"),
        2); /* 300 us and the 50 us PUT */
    ck_assert_double_eq(
        value_of(text,
                 "edgekv_http_request_duration_seconds_bucket{route=\"item\",le=\"0.005\"}"),
        3);
    ck_assert_double_eq(
        value_of(text, "edgekv_http_request_duration_seconds_bucket{route=\"item\",le=\"+Inf\"}"),
        3);
    ck_assert_double_eq(value_of(text, "edgekv_http_request_duration_seconds_count{route=\"item\"}"),
                        3);
    ck_assert_double_eq(value_of(text, "edgekv_cache_lookups_total{result=\"hit\"}"), 2);
    ck_assert_double_eq(value_of(text, "edgekv_cache_lookups_total{result=\"collapsed\"}"), 1);
    ck_assert_double_eq(value_of(text, "edgekv_cache_lookups_total{result=\"miss\"}"), 0);
    ck_assert_double_eq(
        value_of(text, "edgekv_origin_requests_total{op=\"get\",outcome=\"timeout\"}"), 1);
    ck_assert_double_eq(value_of(text, "edgekv_http_connections"), 7);
    ck_assert_double_eq(value_of(text, "edgekv_cache_entries"), 5);
    ck_assert_double_eq(value_of(text, "edgekv_build_info{version=\"" PACKAGE_VERSION "\"}"), 1);
    ck_assert(value_of(text, "process_resident_memory_bytes") > 0);
    ck_assert(value_of(text, "process_open_fds") > 0);
    /* no invalidation metrics without an invalidation link */
    ck_assert_ptr_null(strstr(text, "edgekv_invalidation_link_up"));
    free(text);
    g.inval_enabled = true;
    g.inval_live = true;
    text = render(m, &g);
    ck_assert_double_eq(value_of(text, "edgekv_invalidation_link_up"), 1);
    free(text);
    ekv_metrics_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");

    tcase_add_test(tc, test_sums_across_workers);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
