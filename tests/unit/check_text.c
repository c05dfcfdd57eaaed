/* check_text.c - unit tests of text.h: percent-decoding, header-name matching and the strict
 * number, size and duration parsers the HTTP layer and the config share. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/text.h"

#define KB (UINT64_C(1) << 10)
#define MB (UINT64_C(1) << 20)

/* Decodes the NUL-terminated @src; returns the length (or -1) and leaves the result in @out. */
static long decode(const char *src, char *out)
{
    size_t len = strlen(src);
    long n;

    memset(out, 0x55, len + 1);
    n = ekv_pct_decode(out, src, len);
    if (n >= 0)
        out[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------ percent-decoding */

START_TEST(test_pct_plain)
{
    char out[64];

    ck_assert_int_eq(decode("", out), 0);
    ck_assert_int_eq(decode("abc/def", out), 7);
    ck_assert_str_eq(out, "abc/def");
}
END_TEST

START_TEST(test_pct_valid)
{
    char out[64];

    ck_assert_int_eq(decode("dir%2Fk%202", out), 7);
    ck_assert_str_eq(out, "dir/k 2");
    ck_assert_int_eq(decode("%2f", out), 1);
    ck_assert_str_eq(out, "/");
    ck_assert_int_eq(decode("%2F", out), 1);
    ck_assert_str_eq(out, "/");
    ck_assert_int_eq(decode("%41%62%7a%7A", out), 4);
    ck_assert_str_eq(out, "Abzz");
    ck_assert_int_eq(decode("%25", out), 1);
    ck_assert_str_eq(out, "%");
    ck_assert_int_eq(decode("%2525", out), 3); /* decoded once only */
    ck_assert_str_eq(out, "%25");
}
END_TEST

START_TEST(test_pct_binary)
{
    char out[8];
    long n = ekv_pct_decode(out, "a%00b%FF", 8);

    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(out[0], 'a');
    ck_assert_int_eq(out[1], '\0');
    ck_assert_int_eq(out[2], 'b');
    ck_assert_int_eq((unsigned char)out[3], 0xff);
}
END_TEST

START_TEST(test_pct_plus_kept)
{
    char out[64];

    ck_assert_int_eq(decode("a+b", out), 3);
    ck_assert_str_eq(out, "a+b");
    ck_assert_int_eq(decode("%2B", out), 1);
    ck_assert_str_eq(out, "+");
}
END_TEST

START_TEST(test_pct_bad)
{
    char out[64];

    ck_assert_int_eq(decode("%", out), -1);
    ck_assert_int_eq(decode("abc%", out), -1);
    ck_assert_int_eq(decode("%4", out), -1);
    ck_assert_int_eq(decode("abc%4", out), -1);
    ck_assert_int_eq(decode("%zz", out), -1);
    ck_assert_int_eq(decode("%g0", out), -1);
    ck_assert_int_eq(decode("%0g", out), -1);
    ck_assert_int_eq(decode("% 1", out), -1);
    ck_assert_int_eq(decode("%-1", out), -1);
    ck_assert_int_eq(decode("ok%2Fthen%x1", out), -1);
}
END_TEST

/* The length bounds the input: a '%' whose digits lie past @len is truncated. */
START_TEST(test_pct_len_bounds)
{
    char out[8];

    ck_assert_int_eq(ekv_pct_decode(out, "a%41", 3), -1);
    ck_assert_int_eq(ekv_pct_decode(out, "a%41", 2), -1);
    ck_assert_int_eq(ekv_pct_decode(out, "a%41", 1), 1);
    ck_assert_int_eq(ekv_pct_decode(out, "a%41", 4), 2);
}
END_TEST

/* Decoding never grows, so decoding in place is safe. */
START_TEST(test_pct_in_place)
{
    char buf[] = "a%2Fb%20c";
    long n = ekv_pct_decode(buf, buf, strlen(buf));

    ck_assert_int_eq(n, 5);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "a/b c");
}
END_TEST

/* ------------------------------------------------------------------ header names */

static bool hdr(const char *name, const char *lname)
{
    return ekv_header_name_eq(name, strlen(name), lname);
}

START_TEST(test_header_case)
{
    ck_assert(hdr("metadata", "metadata"));
    ck_assert(hdr("Metadata", "metadata"));
    ck_assert(hdr("METADATA", "metadata"));
    ck_assert(hdr("If-Generation-Match", "if-generation-match"));
    ck_assert(hdr("IF-GENERATION-MATCH", "if-generation-match"));
}
END_TEST

START_TEST(test_header_underscores)
{
    ck_assert(hdr("time_to_live_sec", "time_to_live_sec"));
    ck_assert(hdr("Time_to_live_sec", "time_to_live_sec"));
    ck_assert(hdr("TIME_TO_LIVE_SEC", "time_to_live_sec"));
    /* no folding between '-' and '_' */
    ck_assert(!hdr("time-to-live-sec", "time_to_live_sec"));
    ck_assert(!hdr("if_generation_match", "if-generation-match"));
}
END_TEST

START_TEST(test_header_length)
{
    ck_assert(!hdr("metadat", "metadata"));
    ck_assert(!hdr("metadatas", "metadata"));
    ck_assert(!hdr("", "metadata"));
    ck_assert(hdr("", ""));
    ck_assert(!hdr("x", ""));
    /* only @len bytes of the name count */
    ck_assert(ekv_header_name_eq("metadata: x", 8, "metadata"));
    ck_assert(!ekv_header_name_eq("metadata", 4, "metadata"));
}
END_TEST

START_TEST(test_header_not_letters)
{
    /* case folding is for letters only: '@' (0x40) is not '`' (0x60), '[' is not '{' */
    ck_assert(!hdr("@", "`"));
    ck_assert(!hdr("[", "{"));
    ck_assert(!hdr("x-a", "x-b"));
}
END_TEST

START_TEST(test_strn_caseeq)
{
    ck_assert(ekv_strn_caseeq("YES", 3, "yes"));
    ck_assert(ekv_strn_caseeq("yes", 3, "YES"));
    ck_assert(!ekv_strn_caseeq("ye", 2, "yes"));
    ck_assert(!ekv_strn_caseeq("yess", 4, "yes"));
    /* an embedded NUL in @s is a byte like any other, not the end */
    ck_assert(!ekv_strn_caseeq("ab\0", 3, "ab"));
}
END_TEST

/* ------------------------------------------------------------------ ekv_parse_u64 */

static int u64(const char *s, uint64_t *out)
{
    return ekv_parse_u64(s, strlen(s), out);
}

START_TEST(test_u64_valid)
{
    uint64_t v = 7;

    ck_assert_int_eq(u64("0", &v), EKV_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(u64("42", &v), EKV_OK);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(u64("007", &v), EKV_OK);
    ck_assert_uint_eq(v, 7);
    ck_assert_int_eq(u64("18446744073709551615", &v), EKV_OK);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(u64("18446744073709551610", &v), EKV_OK);
    ck_assert_uint_eq(v, UINT64_MAX - 5);
    /* only @len bytes are read */
    ck_assert_int_eq(ekv_parse_u64("123abc", 3, &v), EKV_OK);
    ck_assert_uint_eq(v, 123);
}
END_TEST

START_TEST(test_u64_overflow)
{
    uint64_t v = 7;

    ck_assert_int_eq(u64("18446744073709551616", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("18446744073709551620", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("99999999999999999999", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("184467440737095516150", &v), EKV_EINVAL);
    ck_assert_uint_eq(v, 7); /* untouched on error */
}
END_TEST

START_TEST(test_u64_bad)
{
    uint64_t v = 7;

    ck_assert_int_eq(u64("", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_u64("5", 0, &v), EKV_EINVAL);
    ck_assert_int_eq(u64("-1", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("+1", &v), EKV_EINVAL);
    ck_assert_int_eq(u64(" 1", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("1 ", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("1 2", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("0x10", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("1.5", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("1e3", &v), EKV_EINVAL);
    ck_assert_int_eq(u64("abc", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_u64("1\0"
                                   "2",
                                   3, &v),
                     EKV_EINVAL);
    ck_assert_uint_eq(v, 7);
}
END_TEST

/* ------------------------------------------------------------------ sizes */

static uint64_t size_ok(const char *s)
{
    uint64_t v = 12345;

    ck_assert_msg(ekv_parse_size(s, &v) == EKV_OK, "\"%s\" should parse", s);
    return v;
}

START_TEST(test_size_units)
{
    ck_assert_uint_eq(size_ok("0"), 0);
    ck_assert_uint_eq(size_ok("512"), 512);
    ck_assert_uint_eq(size_ok("512b"), 512);
    ck_assert_uint_eq(size_ok("1k"), 1024);
    ck_assert_uint_eq(size_ok("32kb"), 32 * KB);
    ck_assert_uint_eq(size_ok("1m"), MB);
    ck_assert_uint_eq(size_ok("25mb"), 25 * MB);
    ck_assert_uint_eq(size_ok("1g"), UINT64_C(1) << 30);
    ck_assert_uint_eq(size_ok("2gb"), UINT64_C(2) << 30);
    ck_assert_uint_eq(size_ok("0kb"), 0);
}
END_TEST

START_TEST(test_size_case)
{
    ck_assert_uint_eq(size_ok("32KB"), 32 * KB);
    ck_assert_uint_eq(size_ok("32Kb"), 32 * KB);
    ck_assert_uint_eq(size_ok("32kB"), 32 * KB);
    ck_assert_uint_eq(size_ok("1M"), MB);
    ck_assert_uint_eq(size_ok("1MB"), MB);
    ck_assert_uint_eq(size_ok("1G"), UINT64_C(1) << 30);
    ck_assert_uint_eq(size_ok("7B"), 7);
}
END_TEST

START_TEST(test_size_overflow)
{
    uint64_t v = 3;

    ck_assert_uint_eq(size_ok("18446744073709551615"), UINT64_MAX);
    ck_assert_uint_eq(size_ok("17179869183gb"), UINT64_C(17179869183) << 30);
    ck_assert_int_eq(ekv_parse_size("17179869184gb", &v), EKV_EINVAL); /* 2^64 */
    ck_assert_int_eq(ekv_parse_size("18014398509481984k", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_size("18446744073709551616", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_size("99999999999999999999999mb", &v), EKV_EINVAL);
    ck_assert_uint_eq(v, 3);
}
END_TEST

START_TEST(test_size_bad)
{
    static const char *const bad[] = {"",    "kb",  "10 k", "10 kb", " 10k", "10k ", "-1",
                                      "-1k", "+1k", "1.5m", "1kk",   "1kbb", "1t",   "1tb",
                                      "1bk", "1 b", "k1",   "1e3",   "0x10", "1ki",  "1kib"};
    uint64_t v = 3;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ekv_parse_size(bad[i], &v) == EKV_EINVAL, "\"%s\" should be refused", bad[i]);
    ck_assert_uint_eq(v, 3);
}
END_TEST

/* ------------------------------------------------------------------ durations */

static uint64_t dur_ok(const char *s)
{
    uint64_t v = 12345;

    ck_assert_msg(ekv_parse_duration(s, &v) == EKV_OK, "\"%s\" should parse", s);
    return v;
}

START_TEST(test_duration_units)
{
    ck_assert_uint_eq(dur_ok("0"), 0);
    ck_assert_uint_eq(dur_ok("0s"), 0);
    ck_assert_uint_eq(dur_ok("0ms"), 0);
    ck_assert_uint_eq(dur_ok("250ms"), 250);
    ck_assert_uint_eq(dur_ok("1s"), 1000);
    ck_assert_uint_eq(dur_ok("300s"), 300000);
    ck_assert_uint_eq(dur_ok("2m"), 120000);
    ck_assert_uint_eq(dur_ok("3h"), UINT64_C(3) * 3600000);
    ck_assert_uint_eq(dur_ok("10MS"), 10);
    ck_assert_uint_eq(dur_ok("10Ms"), 10);
    ck_assert_uint_eq(dur_ok("5S"), 5000);
    ck_assert_uint_eq(dur_ok("5M"), 300000);
    ck_assert_uint_eq(dur_ok("1H"), 3600000);
}
END_TEST

START_TEST(test_duration_zero)
{
    ck_assert_uint_eq(dur_ok("0"), 0);
    ck_assert_uint_eq(dur_ok("00"), 0);
    ck_assert_uint_eq(dur_ok("0h"), 0);
}
END_TEST

START_TEST(test_duration_bad)
{
    static const char *const bad[] = {"5",   "1",   "60",    "",     "s",    "ms",  "5 s", " 5s",
                                      "5s ", "-5s", "+5s",   "1.5s", "5sec", "5d",  "5us", "5msx",
                                      "5ss", "5hm", "1e3ms", "0x5s", "5min", "5mss"};
    uint64_t v = 3;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ekv_parse_duration(bad[i], &v) == EKV_EINVAL, "\"%s\" should be refused",
                      bad[i]);
    ck_assert_uint_eq(v, 3);
}
END_TEST

START_TEST(test_duration_overflow)
{
    uint64_t v = 3;

    ck_assert_uint_eq(dur_ok("18446744073709551615ms"), UINT64_MAX);
    ck_assert_int_eq(ekv_parse_duration("18446744073709551616ms", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_duration("18446744073709552s", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_duration("5124095576031h", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_duration("307445734561826m", &v), EKV_EINVAL);
    ck_assert_int_eq(ekv_parse_duration("99999999999999999999999", &v), EKV_EINVAL);
    ck_assert_uint_eq(v, 3);
    ck_assert_uint_eq(dur_ok("5124095576030h"), UINT64_C(5124095576030) * 3600000);
    ck_assert_uint_eq(dur_ok("307445734561825m"), UINT64_C(307445734561825) * 60000);
    ck_assert_uint_eq(dur_ok("18446744073709551s"), UINT64_C(18446744073709551) * 1000);
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc;

    tc = tcase_create("pct_decode");
    tcase_add_test(tc, test_pct_plain);
    tcase_add_test(tc, test_pct_valid);
    tcase_add_test(tc, test_pct_binary);
    tcase_add_test(tc, test_pct_plus_kept);
    tcase_add_test(tc, test_pct_bad);
    tcase_add_test(tc, test_pct_len_bounds);
    tcase_add_test(tc, test_pct_in_place);
    suite_add_tcase(s, tc);

    tc = tcase_create("header_name");
    tcase_add_test(tc, test_header_case);
    tcase_add_test(tc, test_header_underscores);
    tcase_add_test(tc, test_header_length);
    tcase_add_test(tc, test_header_not_letters);
    tcase_add_test(tc, test_strn_caseeq);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_u64");
    tcase_add_test(tc, test_u64_valid);
    tcase_add_test(tc, test_u64_overflow);
    tcase_add_test(tc, test_u64_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_size");
    tcase_add_test(tc, test_size_units);
    tcase_add_test(tc, test_size_case);
    tcase_add_test(tc, test_size_overflow);
    tcase_add_test(tc, test_size_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_duration");
    tcase_add_test(tc, test_duration_units);
    tcase_add_test(tc, test_duration_zero);
    tcase_add_test(tc, test_duration_bad);
    tcase_add_test(tc, test_duration_overflow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(text_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
