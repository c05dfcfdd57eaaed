/* check_core.c - the small shared pieces of core (and the method table of http): the RNG is
 * xoshiro256** and reproducible from a seed, its bounded draws and backoff stay in bounds; the
 * clock takes a test source; the log throttle lets one line through per interval and counts
 * the rest; ekv_log() does not evaluate its arguments below the level; EKV_FATAL logs
 * file:line and reaches the handler, or aborts. */
#include "config.h"

#include <check.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgekv/clock.h"
#include "edgekv/http.h"
#include "edgekv/log.h"
#include "edgekv/rng.h"

#include "testutil.h"

/* ---------------------------------------------------------------- stderr capture */

static int saved_stderr = -1;
static FILE *captured;

static void capture_begin(void)
{
    captured = tmpfile();
    ck_assert_ptr_nonnull(captured);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(fileno(captured), STDERR_FILENO), 0);
}

/* What was written to stderr since capture_begin(); caller frees. */
static char *capture_end(void)
{
    long n;
    char *text;

    ck_assert_int_ge(dup2(saved_stderr, STDERR_FILENO), 0);
    close(saved_stderr);
    saved_stderr = -1;
    n = ftell(captured);
    ck_assert_int_ge(n, 0);
    text = malloc((size_t)n + 1);
    rewind(captured);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, captured), (size_t)n);
    text[n] = '\0';
    fclose(captured);
    captured = NULL;
    return text;
}

static unsigned count(const char *text, const char *needle)
{
    unsigned n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---------------------------------------------------------------- rng */

START_TEST(test_rng_reference_vector)
{
    /* xoshiro256** from state {1, 2, 3, 4}: the reference implementation's first outputs */
    struct ekv_rng r = {.s = {1, 2, 3, 4}};

    ck_assert_uint_eq(ekv_rng_u64(&r), UINT64_C(11520));
    ck_assert_uint_eq(ekv_rng_u64(&r), UINT64_C(0));
    ck_assert_uint_eq(ekv_rng_u64(&r), UINT64_C(1509978240));
    ck_assert_uint_eq(ekv_rng_u64(&r), UINT64_C(1215971899390074240));
}
END_TEST

START_TEST(test_rng_fixed_seed)
{
    struct ekv_rng a, b, c;

    ekv_rng_init_seed(&a, 42);
    ekv_rng_init_seed(&b, 42);
    ekv_rng_init_seed(&c, 43);
    /* SplitMix64(42) expands the seed; the values pin the sequence down across releases */
    ck_assert_uint_eq(ekv_rng_u64(&a), UINT64_C(0x15780b2e0c2ec716));
    ck_assert_uint_eq(ekv_rng_u64(&a), UINT64_C(0x6104d9866d113a7e));
    ck_assert_uint_eq(ekv_rng_u64(&a), UINT64_C(0xae17533239e499a1));
    for (int i = 0; i < 3; i++)
        (void)ekv_rng_u64(&b);
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ekv_rng_u64(&a);
        ck_assert_uint_eq(x, ekv_rng_u64(&b));
        ck_assert_uint_ne(x, ekv_rng_u64(&c)); /* another seed, another sequence */
    }
}
END_TEST

START_TEST(test_rng_entropy_seeds_differ)
{
    struct ekv_rng a, b;

    ekv_rng_init(&a);
    ekv_rng_init(&b);
    ck_assert((a.s[0] | a.s[1] | a.s[2] | a.s[3]) != 0);
    ck_assert(memcmp(a.s, b.s, sizeof(a.s)) != 0);
    ck_assert_uint_ne(ekv_rng_entropy64(), ekv_rng_entropy64());
}
END_TEST

START_TEST(test_rng_bounds)
{
    struct ekv_rng r;
    unsigned seen[7] = {0};

    ekv_rng_init_seed(&r, 7);
    ck_assert_uint_eq(ekv_rng_below(&r, 0), 0);
    ck_assert_uint_eq(ekv_rng_below(&r, 1), 0);
    ck_assert_uint_eq(ekv_rng_range(&r, 5, 5), 5);
    ck_assert_uint_eq(ekv_rng_range(&r, 9, 3), 9); /* empty range: lo */
    for (int i = 0; i < 7000; i++) {
        uint64_t v = ekv_rng_below(&r, 7);
        ck_assert_uint_lt(v, 7);
        seen[v]++;
        v = ekv_rng_range(&r, 100, 110);
        ck_assert_uint_ge(v, 100);
        ck_assert_uint_le(v, 110);
        v = ekv_rng_below(&r, UINT64_MAX);
        ck_assert_uint_lt(v, UINT64_MAX);
    }
    for (int i = 0; i < 7; i++) /* about 1000 each; a modulo bug or a stuck bit shows */
        ck_assert_uint_gt(seen[i], 800);
    (void)ekv_rng_range(&r, 0, UINT64_MAX); /* the whole range does not overflow */
}
END_TEST

START_TEST(test_rng_backoff)
{
    struct ekv_rng r;

    ekv_rng_init_seed(&r, 1);
    for (unsigned attempt = 0; attempt < 80; attempt++) {
        uint64_t step = attempt < 20 ? EKV_MIN(UINT64_C(100) << attempt, 30000) : 30000;
        uint64_t lo = UINT64_MAX, hi = 0;

        for (int i = 0; i < 500; i++) {
            uint64_t d = ekv_rng_backoff_ms(&r, 100, 30000, attempt);
            ck_assert_uint_ge(d, step / 2);
            ck_assert_uint_le(d, step);
            lo = EKV_MIN(lo, d);
            hi = EKV_MAX(hi, d);
        }
        /* jittered over the whole upper half, not a fixed delay */
        ck_assert_uint_le(lo, step / 2 + step / 10);
        ck_assert_uint_ge(hi, step - step / 10);
    }
    ck_assert_uint_eq(ekv_rng_backoff_ms(&r, 0, 1000, 3), 0);
    ck_assert_uint_ge(ekv_rng_backoff_ms(&r, UINT64_MAX / 2, UINT64_MAX, 5), UINT64_MAX / 2);
}
END_TEST

/* ---------------------------------------------------------------- clock */

START_TEST(test_clock_source)
{
    struct ekv_clock_manual m;
    uint64_t real = ekv_clock_now_us(), after;

    ck_assert_uint_gt(real, 0);
    ekv_clock_manual_set_ms(&m, 5000);
    ekv_clock_set_source(ekv_clock_manual_read, &m);
    ck_assert_uint_eq(ekv_clock_now_ms(), 5000);
    ck_assert_uint_eq(ekv_clock_now_us(), 5000000);
    ekv_clock_manual_advance_ms(&m, 250);
    ck_assert_uint_eq(ekv_clock_now_ms(), 5250);
    ck_assert_uint_eq(ekv_clock_now_us(), 5250000);
    ekv_clock_set_source(NULL, NULL);
    after = ekv_clock_now_us();
    ck_assert_uint_ge(after, real); /* CLOCK_MONOTONIC again */
    ck_assert_uint_eq(ekv_ms_tv(1250).tv_sec, 1);
    ck_assert_uint_eq(ekv_ms_tv(1250).tv_usec, 250000);
}
END_TEST

/* ---------------------------------------------------------------- log level, throttle */

static int evaluated;

static int side_effect(void)
{
    return ++evaluated;
}

START_TEST(test_log_level)
{
    enum ekv_log_level level = EKV_LOG_DEBUG;
    char *text;

    ck_assert_int_eq(ekv_log_level_parse("warning", &level), EKV_OK);
    ck_assert_int_eq(level, EKV_LOG_WARN);
    ck_assert_int_eq(ekv_log_level_parse("ERROR", &level), EKV_OK);
    ck_assert_int_eq(level, EKV_LOG_ERROR);
    ck_assert_int_eq(ekv_log_level_parse("Debug", &level), EKV_OK);
    ck_assert_int_eq(level, EKV_LOG_DEBUG);
    ck_assert_int_eq(ekv_log_level_parse("verbose", &level), EKV_EINVAL);
    ck_assert_int_eq(level, EKV_LOG_DEBUG); /* untouched on failure */
    ck_assert_str_eq(ekv_log_level_name(EKV_LOG_INFO), "info");
    ck_assert_str_eq(ekv_log_level_name((enum ekv_log_level)9), "?");

    ekv_log_set_level(EKV_LOG_WARN);
    ck_assert(!ekv_log_enabled(EKV_LOG_INFO));
    ck_assert(ekv_log_enabled(EKV_LOG_WARN));
    evaluated = 0;
    capture_begin();
    ekv_log(EKV_LOG_INFO, "dropped %d", side_effect());
    ekv_log(EKV_LOG_ERROR, "kept %d", side_effect());
    text = capture_end();
    ck_assert_int_eq(evaluated, 1); /* the level is checked before the arguments */
    ck_assert_ptr_null(strstr(text, "dropped"));
    ck_assert_ptr_nonnull(strstr(text, "level=error kept 1\n"));
    free(text);
    ekv_log_set_level(EKV_LOG_INFO);
}
END_TEST

START_TEST(test_log_limit_allow)
{
    struct ekv_log_limit lim = {0};
    unsigned sup = 99;

    ck_assert(ekv_log_limit_allow(&lim, 1000, 10000, &sup)); /* the first line passes */
    ck_assert_uint_eq(sup, 0);
    sup = 99;
    ck_assert(!ekv_log_limit_allow(&lim, 1001, 10000, &sup));
    ck_assert(!ekv_log_limit_allow(&lim, 10999, 10000, &sup));
    ck_assert_uint_eq(sup, 99); /* only written when a line passes */
    ck_assert(ekv_log_limit_allow(&lim, 11000, 10000, &sup));
    ck_assert_uint_eq(sup, 2);
    ck_assert(!ekv_log_limit_allow(&lim, 11000, 10000, NULL));
    ck_assert(ekv_log_limit_allow(&lim, 25000, 10000, &sup));
    ck_assert_uint_eq(sup, 1);

    /* time 0 is a time like any other (an injected clock starts there) */
    memset(&lim, 0, sizeof(lim));
    ck_assert(ekv_log_limit_allow(&lim, 0, 100, &sup));
    ck_assert(!ekv_log_limit_allow(&lim, 0, 100, &sup));
    ck_assert(!ekv_log_limit_allow(&lim, 99, 100, &sup));
    ck_assert(ekv_log_limit_allow(&lim, 101, 100, &sup));
    ck_assert_uint_eq(sup, 2);
}
END_TEST

START_TEST(test_log_limited_injected_clock)
{
    struct ekv_clock_manual m;
    struct ekv_log_limit lim = {0};
    char *text;

    ekv_clock_manual_set_ms(&m, 1000000);
    ekv_clock_set_source(ekv_clock_manual_read, &m);
    ekv_log_set_level(EKV_LOG_INFO);
    capture_begin();
    for (int i = 0; i < 5; i++) {
        ekv_log_limited(&lim, 10000, EKV_LOG_WARN, "origin said no: %d", i);
        ekv_clock_manual_advance_ms(&m, 1000);
    }
    ekv_clock_manual_advance_ms(&m, 10000);
    ekv_log_limited(&lim, 10000, EKV_LOG_WARN, "origin said no: %d", 5);
    ekv_log_limited(&lim, 10000, EKV_LOG_DEBUG, "below the level"); /* neither printed... */
    ekv_clock_manual_advance_ms(&m, 10000);
    ekv_log_limited(&lim, 10000, EKV_LOG_WARN, "no arguments");
    text = capture_end();
    ekv_clock_set_source(NULL, NULL);
    ck_assert_uint_eq(count(text, "origin said no"), 2);
    ck_assert_ptr_nonnull(strstr(text, "level=warn origin said no: 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "origin said no: 5 (4 similar lines suppressed)\n"));
    ck_assert_ptr_null(strstr(text, "below the level"));
    ck_assert_ptr_nonnull(strstr(text, "level=warn no arguments\n")); /* ...nor counted */
    free(text);
}
END_TEST

/* ---------------------------------------------------------------- fatal */

static jmp_buf fatal_jmp;
static char fatal_msg[256], fatal_file[256];
static int fatal_line;

static void on_fatal(const char *file, int line, const char *msg)
{
    snprintf(fatal_file, sizeof(fatal_file), "%s", file);
    snprintf(fatal_msg, sizeof(fatal_msg), "%s", msg);
    fatal_line = line;
    longjmp(fatal_jmp, 1); /* skip the abort() */
}

START_TEST(test_fatal_handler)
{
    volatile int expected_line = 0;
    char *text;

    ekv_fatal_set_handler(on_fatal);
    ekv_log_set_level(EKV_LOG_ERROR);
    capture_begin();
    if (setjmp(fatal_jmp) == 0) {
        expected_line = __LINE__ + 1;
        EKV_FATAL("cannot happen: %d", 42);
        ck_abort_msg("EKV_FATAL returned");
    }
    text = capture_end();
    ekv_fatal_set_handler(NULL);
    ekv_log_set_level(EKV_LOG_INFO);
    ck_assert_str_eq(fatal_msg, "cannot happen: 42");
    ck_assert_int_eq(fatal_line, expected_line);
    ck_assert_ptr_nonnull(strstr(fatal_file, "check_core.c"));
    /* logged with file:line first, at error level whatever the threshold */
    ck_assert_ptr_nonnull(strstr(text, "level=error fatal: "));
    ck_assert_ptr_nonnull(strstr(text, "check_core.c:"));
    ck_assert_ptr_nonnull(strstr(text, ": cannot happen: 42\n"));
    free(text);
}
END_TEST

START_TEST(test_fatal_aborts)
{
    ekv_log_set_level(EKV_LOG_ERROR);
    EKV_CHECK(1 + 1 == 2, "not reached");
    EKV_CHECK(1 + 1 == 3, "arithmetic is broken"); /* SIGABRT, which the test expects */
}
END_TEST

/* ---------------------------------------------------------------- http method table */

START_TEST(test_http_method_names)
{
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_OTHER), "other");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_GET), "GET");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_HEAD), "HEAD");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_PUT), "PUT");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_POST), "POST");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_DELETE), "DELETE");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_PATCH), "PATCH");
    ck_assert_str_eq(ekv_http_method_name(EKV_HTTP_OPTIONS), "OPTIONS");
    ck_assert_int_eq(EKV_HTTP_NMETHODS, 8);
    ck_assert_str_eq(ekv_http_method_name((enum ekv_http_method)EKV_HTTP_NMETHODS), "other");
    ck_assert_str_eq(ekv_http_method_name((enum ekv_http_method) - 1), "other");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("rng");
    const char *fork_env = getenv("CK_FORK");

    tcase_add_test(tc, test_rng_reference_vector);
    tcase_add_test(tc, test_rng_fixed_seed);
    tcase_add_test(tc, test_rng_entropy_seeds_differ);
    tcase_add_test(tc, test_rng_bounds);
    tcase_add_test(tc, test_rng_backoff);
    suite_add_tcase(s, tc);

    tc = tcase_create("clock");
    tcase_add_test(tc, test_clock_source);
    suite_add_tcase(s, tc);

    tc = tcase_create("log");
    tcase_add_test(tc, test_log_level);
    tcase_add_test(tc, test_log_limit_allow);
    tcase_add_test(tc, test_log_limited_injected_clock);
    suite_add_tcase(s, tc);

    tc = tcase_create("fatal");
    tcase_add_test(tc, test_fatal_handler);
    /* The real abort() needs a forked test; skipped with CK_FORK=no and under valgrind (which
     * would report the dying child's heap as lost). */
    if ((fork_env == NULL || strcmp(fork_env, "no") != 0) && getenv("EKV_VALGRIND") == NULL)
        tcase_add_test_raise_signal(tc, test_fatal_aborts, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("http_method");
    tcase_add_test(tc, test_http_method_names);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
