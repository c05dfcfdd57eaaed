/* check_metrics_e2e.c - /metrics of a real edgekv on a real redis-server: a known sequence of
 * requests moves the counters by exactly the expected amounts (requests by route, method and
 * code; duration histogram counts; cache lookups by result; origin requests by operation and
 * outcome; connections), and `promtool check metrics` (Debian package prometheus) accepts the
 * exposition. Without promtool on PATH the suite is skipped (77), or fails when
 * EKV_TESTS_REQUIRED=1 (CI). */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "apic.h"
#include "testutil.h"

#define TCASE_TIMEOUT 60

static struct ekv_test_redis *redis;
static struct ekv_test_proc *ek;
static unsigned short port;
static char promtool[4096];
static unsigned nscrapes; /* GET /metrics requests sent by this test */

/* ---------------------------------------------------------------- the exposition */

struct sample {
    char *series; /* name{labels} as written */
    double value;
};

struct scrape {
    char *text;
    struct sample *s;
    size_t n;
};

static void scrape_free(struct scrape *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        free(sc->s[i].series);
    free(sc->s);
    free(sc->text);
    free(sc);
}

/* GET /metrics (on a connection of its own) and parse every sample line. */
static struct scrape *scrape(void)
{
    struct ekv_test_resp r = {0};
    struct scrape *sc = calloc(1, sizeof(*sc));
    size_t cap = 0;

    ck_assert_ptr_nonnull(sc);
    ck_assert_int_eq(apic_req(port, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    nscrapes++;
    ck_assert_str_eq(ekv_test_resp_header(&r, "Content-Type"),
                     "text/plain; version=0.0.4; charset=utf-8");
    sc->text = strndup(r.body, r.body_len);
    ck_assert_ptr_nonnull(sc->text);
    ekv_test_resp_free(&r);
    for (char *line = sc->text, *eol; *line != '\0'; line = eol + 1) {
        char *sp;

        eol = strchr(line, '\n');
        ck_assert_msg(eol != NULL, "the exposition does not end with a newline");
        if (*line == '#' || line == eol)
            continue;
        sp = memrchr(line, ' ', (size_t)(eol - line));
        ck_assert_msg(sp != NULL, "bad line: %.*s", (int)(eol - line), line);
        if (sc->n == cap) {
            cap = cap != 0 ? cap * 2 : 256;
            sc->s = realloc(sc->s, cap * sizeof(*sc->s));
            ck_assert_ptr_nonnull(sc->s);
        }
        sc->s[sc->n].series = strndup(line, (size_t)(sp - line));
        sc->s[sc->n].value = strtod(sp + 1, NULL);
        sc->n++;
    }
    return sc;
}

/* The value of @series, or -1 if it is absent. */
static double value(const struct scrape *sc, const char *series)
{
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->s[i].series, series) == 0)
            return sc->s[i].value;
    return -1;
}

/* Whether @series belongs to metric @name ("name" or "name{...}"). */
static bool of_family(const char *series, const char *name)
{
    size_t n = strlen(name);

    return strncmp(series, name, n) == 0 && (series[n] == '\0' || series[n] == '{');
}

struct delta {
    const char *series;
    double by;
};

/*
 * Every series of metric @name moved from @a to @b by exactly what @want says (by 0 when it is
 * not listed; a series absent from a scrape counts as 0, as the exposition leaves out request
 * counters that are still 0).
 */
static void assert_deltas(const struct scrape *a, const struct scrape *b, const char *name,
                          const struct delta *want, size_t nwant)
{
    for (size_t i = 0; i < nwant; i++)
        ck_assert_msg(value(b, want[i].series) >= 0, "%s is missing from /metrics:\n%s",
                      want[i].series, b->text);
    for (size_t i = 0; i < b->n; i++) {
        const char *series = b->s[i].series;
        double before = value(a, series), expect = 0;

        if (!of_family(series, name))
            continue;
        for (size_t j = 0; j < nwant; j++)
            if (strcmp(want[j].series, series) == 0)
                expect = want[j].by;
        ck_assert_msg(b->s[i].value - (before < 0 ? 0 : before) == expect,
                      "%s moved by %g, expected %g (before %g, after %g)", series,
                      b->s[i].value - (before < 0 ? 0 : before), expect, before, b->s[i].value);
    }
    for (size_t i = 0; i < a->n; i++) /* nothing disappears */
        if (of_family(a->s[i].series, name))
            ck_assert_msg(value(b, a->s[i].series) >= 0, "%s disappeared", a->s[i].series);
}

/*
 * Waits until edgekv has received @n more invalidated keys than @base says: a write's
 * invalidation travels on another connection, and must have arrived before the next read for
 * that read's lookup result to be deterministic.
 */
static void wait_invalidations(const struct scrape *base, double n)
{
    double want = value(base, "edgekv_invalidations_total") + n;
    uint64_t end = ekv_test_now_ms() + 5000;

    for (;;) {
        struct scrape *sc = scrape();
        double got = value(sc, "edgekv_invalidations_total");
        scrape_free(sc);
        if (got == want)
            return;
        ck_assert_msg(got < want, "more invalidations than expected (%g > %g)", got, want);
        ck_assert_msg(ekv_test_now_ms() < end, "invalidation %g never arrived", want);
        ekv_test_sleep_ms(5);
    }
}

/* ---------------------------------------------------------------- fixtures */

static void find_promtool(void)
{
    const char *path = getenv("PATH");

    promtool[0] = '\0';
    for (const char *p = path != NULL ? path : ""; *p != '\0';) {
        size_t n = strcspn(p, ":");
        snprintf(promtool, sizeof(promtool), "%.*s/promtool", (int)n, p);
        if (n > 0 && access(promtool, X_OK) == 0)
            return;
        p += n + (p[n] == ':');
    }
    promtool[0] = '\0';
}

static void start(void)
{
    uint64_t end = ekv_test_now_ms() + 5000;

    redis = ekv_test_redis_start();
    redis->proc->persistent = true;
    ek = ekv_test_edgekv_start("--origin", redis->origin, NULL);
    ek->persistent = true;
    port = ek->port;
    while (ekv_test_get_status(port, "/readyz") != 200) {
        ck_assert_msg(ekv_test_now_ms() < end, "edgekv never became ready");
        ekv_test_sleep_ms(20);
    }
}

static void stop(void)
{
    if (ek != NULL && ekv_test_proc_signal(ek, SIGTERM) == 0 &&
        ekv_test_proc_wait(ek, 10000) != 0) {
        char *log = ekv_test_proc_log(ek);
        ekv_test_note_failure("edgekv did not exit cleanly on SIGTERM; its output:\n%s", log);
        free(log);
    }
    ekv_test_proc_free(ek);
    ek = NULL;
    ekv_test_redis_stop(redis);
    redis = NULL;
}

/* ---------------------------------------------------------------- tests */

#define N(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_counters_move_exactly)
{
    struct ekv_test_resp r = {0};
    struct scrape *s0, *s1;
    char id[64], path[256], k1[300], k2[300];
    static const char garbage[] = "BLAH / HTTP/1.1\r\n\r\n";
    unsigned requests = 0; /* the non-scrape requests, one connection each */
    json_t *j;

    s0 = scrape();
    nscrapes = 1; /* counted from the baseline on */

    /* a store (one invalidation: <ns>stores) */
    ck_assert_int_eq(
        apic_req(port, "POST", "/resources/stores/kv", NULL, "{\"name\":\"m\"}", 12, &r), 201);
    requests++;
    j = apic_json(&r);
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ekv_test_resp_free(&r);
    wait_invalidations(s0, 1);
    snprintf(k1, sizeof(k1), "/resources/stores/kv/%s/keys/k1", id);
    snprintf(k2, sizeof(k2), "/resources/stores/kv/%s/keys/k2", id);

    /* a write, then reads: miss, hit, HEAD hit, a missing key (miss, then negative hit) */
    ck_assert_int_eq(apic_status(port, "PUT", k1, NULL, "v1"), 200);
    requests++;
    wait_invalidations(s0, 2);
    ck_assert_int_eq(apic_status(port, "GET", k1, NULL, NULL), 200);
    requests++;
    ck_assert_int_eq(apic_req(port, "GET", k1, NULL, NULL, 0, &r), 200);
    requests++;
    ck_assert_int_eq(strncmp(ekv_test_resp_header(&r, "Cache-Status"), "edgekv; hit;", 12), 0);
    ekv_test_resp_free(&r);
    ck_assert_int_eq(apic_status(port, "HEAD", k1, NULL, NULL), 200);
    requests++;
    ck_assert_int_eq(apic_status(port, "GET", k2, NULL, NULL), 404);
    requests++;
    ck_assert_int_eq(apic_status(port, "GET", k2, NULL, NULL), 404);
    requests++;
    /* no-cache: a bypass that reads the origin */
    ck_assert_int_eq(apic_status(port, "GET", k1, "Cache-Control: no-cache\r\n", NULL), 200);
    requests++;

    /* the edge path: the name is resolved at the origin once, then the write and a miss */
    ck_assert_int_eq(apic_status(port, "PUT", "/kv/m/k1", NULL, "v2"), 200);
    requests++;
    wait_invalidations(s0, 3);
    ck_assert_int_eq(apic_req(port, "GET", "/kv/m/k1", NULL, NULL, 0, &r), 200);
    requests++;
    ck_assert_int_eq((int)r.body_len, 2);
    ck_assert_int_eq(memcmp(r.body, "v2", 2), 0);
    ekv_test_resp_free(&r);

    /* a listing, a delete, and what no route takes */
    snprintf(path, sizeof(path), "/resources/stores/kv/%s/keys", id);
    ck_assert_int_eq(apic_status(port, "GET", path, NULL, NULL), 200);
    requests++;
    ck_assert_int_eq(apic_status(port, "DELETE", k1, NULL, NULL), 204);
    requests++;
    wait_invalidations(s0, 4);
    ck_assert_int_eq(apic_status(port, "GET", "/no/such/thing", NULL, NULL), 404);
    requests++;
    ck_assert_int_eq(apic_status(port, "POST", "/kv/m/k1", NULL, "x"), 405);
    requests++;
    ck_assert_int_eq(apic_raw(port, garbage, sizeof(garbage) - 1, 0, &r), 400);
    requests++;
    ekv_test_resp_free(&r);

    s1 = scrape();
    {
        /* the scrapes before the last one are requests too (each is counted once answered,
         * after its own exposition was rendered) */
        double ops = nscrapes - 1;
        struct delta http[] = {
            {"edgekv_http_requests_total{route=\"stores\",method=\"POST\",code=\"201\"}", 1},
            {"edgekv_http_requests_total{route=\"item\",method=\"PUT\",code=\"200\"}", 1},
            {"edgekv_http_requests_total{route=\"item\",method=\"GET\",code=\"200\"}", 3},
            {"edgekv_http_requests_total{route=\"item\",method=\"HEAD\",code=\"200\"}", 1},
            {"edgekv_http_requests_total{route=\"item\",method=\"GET\",code=\"404\"}", 2},
            {"edgekv_http_requests_total{route=\"item\",method=\"DELETE\",code=\"204\"}", 1},
            {"edgekv_http_requests_total{route=\"edge\",method=\"PUT\",code=\"200\"}", 1},
            {"edgekv_http_requests_total{route=\"edge\",method=\"GET\",code=\"200\"}", 1},
            {"edgekv_http_requests_total{route=\"keys\",method=\"GET\",code=\"200\"}", 1},
            {"edgekv_http_requests_total{route=\"ops\",method=\"GET\",code=\"200\"}", ops},
            {"edgekv_http_requests_total{route=\"other\",method=\"GET\",code=\"404\"}", 1},
            {"edgekv_http_requests_total{route=\"other\",method=\"POST\",code=\"405\"}", 1},
            {"edgekv_http_requests_total{route=\"other\",method=\"other\",code=\"400\"}", 1},
        };
        struct delta durations[] = {
            {"edgekv_http_request_duration_seconds_count{route=\"stores\"}", 1},
            {"edgekv_http_request_duration_seconds_count{route=\"item\"}", 8},
            {"edgekv_http_request_duration_seconds_count{route=\"edge\"}", 2},
            {"edgekv_http_request_duration_seconds_count{route=\"keys\"}", 1},
            {"edgekv_http_request_duration_seconds_count{route=\"ops\"}", ops},
            {"edgekv_http_request_duration_seconds_count{route=\"other\"}", 3},
        };
        struct delta lookups[] = {
            {"edgekv_cache_lookups_total{result=\"miss\"}", 3}, /* k1, k2, k1 after the edge PUT */
            {"edgekv_cache_lookups_total{result=\"hit\"}", 2},
            {"edgekv_cache_lookups_total{result=\"negative_hit\"}", 1},
            {"edgekv_cache_lookups_total{result=\"bypass\"}", 1},
        };
        struct delta origin[] = {
            /* the store's creation: the counter of each bucket, then the registry */
            {"edgekv_origin_requests_total{op=\"store\",outcome=\"ok\"}", EKV_TEST_SHARDS + 1},
            {"edgekv_origin_requests_total{op=\"put\",outcome=\"ok\"}", 2},
            /* 4 reads, and the store check of the one that found no item */
            {"edgekv_origin_requests_total{op=\"get\",outcome=\"ok\"}", 5},
            {"edgekv_origin_requests_total{op=\"resolve\",outcome=\"ok\"}", 1},
            /* a listing asks every bucket */
            {"edgekv_origin_requests_total{op=\"list\",outcome=\"ok\"}", EKV_TEST_SHARDS},
            {"edgekv_origin_requests_total{op=\"delete\",outcome=\"ok\"}", 1},
        };
        struct delta origin_latency[] = {
            {"edgekv_origin_request_duration_seconds_count{op=\"store\"}", EKV_TEST_SHARDS + 1},
            {"edgekv_origin_request_duration_seconds_count{op=\"put\"}", 2},
            {"edgekv_origin_request_duration_seconds_count{op=\"get\"}", 5},
            {"edgekv_origin_request_duration_seconds_count{op=\"resolve\"}", 1},
            {"edgekv_origin_request_duration_seconds_count{op=\"list\"}", EKV_TEST_SHARDS},
            {"edgekv_origin_request_duration_seconds_count{op=\"delete\"}", 1},
        };
        struct delta conns[] = {
            {"edgekv_http_connections_accepted_total", requests + nscrapes - 1},
        };
        struct delta refused[] = {{"edgekv_http_connections_refused_total", 0}};

        assert_deltas(s0, s1, "edgekv_http_requests_total", http, N(http));
        assert_deltas(s0, s1, "edgekv_http_request_duration_seconds_count", durations,
                      N(durations));
        assert_deltas(s0, s1, "edgekv_cache_lookups_total", lookups, N(lookups));
        assert_deltas(s0, s1, "edgekv_origin_requests_total", origin, N(origin));
        assert_deltas(s0, s1, "edgekv_origin_request_duration_seconds_count", origin_latency,
                      N(origin_latency));
        assert_deltas(s0, s1, "edgekv_http_connections_accepted_total", conns, N(conns));
        assert_deltas(s0, s1, "edgekv_http_connections_refused_total", refused, N(refused));
    }
    /* gauges: at least the scrape's own connection is open; both workers are connected */
    ck_assert(value(s1, "edgekv_http_connections") >= 1);
    ck_assert_double_eq(value(s1, "edgekv_origin_connected"), 2);
    ck_assert_double_eq(value(s1, "edgekv_worker_threads"), 2);
    ck_assert_double_eq(value(s1, "edgekv_invalidation_link_up"), 1);
    ck_assert_double_eq(value(s1, "edgekv_build_info{version=\"" PACKAGE_VERSION "\"}"), 1);
    ck_assert_double_eq(value(s1, "edgekv_config_last_reload_successful"), 1);
    scrape_free(s0);
    scrape_free(s1);
}
END_TEST

/* promtool accepts what edgekv exposes, once every kind of series has values. */
START_TEST(test_promtool_accepts)
{
    char dir[200], in[256], out[256], *report;
    struct scrape *sc;
    pid_t pid;
    int st, fd;

    /* some traffic of every kind first, so that label sets and histograms are filled */
    ck_assert_int_eq(apic_status(port, "GET", "/no/such/thing", NULL, NULL), 404);
    ck_assert_int_eq(apic_status(port, "GET", "/healthz", NULL, NULL), 200);
    sc = scrape();
    ekv_test_mkdtemp("promtool", dir, sizeof(dir));
    snprintf(in, sizeof(in), "%s/metrics.txt", dir);
    snprintf(out, sizeof(out), "%s/promtool.out", dir);
    fd = open(in, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, sc->text, strlen(sc->text)), (int)strlen(sc->text));
    close(fd);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int i = open(in, O_RDONLY), o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (i < 0 || o < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0)
            _exit(126);
        execl(promtool, "promtool", "check", "metrics", (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        continue;
    report = ekv_test_read_file(out, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && report != NULL && report[0] == '\0',
                  "promtool check metrics failed (status %d):\n%s\n--- the exposition:\n%s",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1, report != NULL ? report : "", sc->text);
    free(report);
    scrape_free(sc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics_e2e");
    TCase *tc = tcase_create("metrics");

    find_promtool();
    if (promtool[0] == '\0')
        ekv_test_skip_or_fail("promtool not found on PATH (Debian package prometheus)");
    if (ekv_test_redis_binary() == NULL)
        ekv_test_skip_or_fail("REDIS_SERVER is not set to an executable redis-server");
    (void)ekv_test_edgekv_bin();
    tcase_add_unchecked_fixture(tc, start, stop);
    tcase_add_checked_fixture(tc, NULL, ekv_test_kill_strays);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_test(tc, test_counters_move_exactly);
    tcase_add_test(tc, test_promtool_accepts);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
