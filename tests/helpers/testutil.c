/* testutil.c - running a Check suite, skipping on missing prerequisites, the suite's scratch
 * directory and small time and file helpers shared by the other test helpers. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* The scratch directory under which every helper creates its private directories; created by
 * the first caller that needs it and removed by ekv_test_run_suite(). */
static char scratch[160];
static pid_t scratch_owner;
static int noted_failures;

bool ekv_test_required(void)
{
    const char *v = getenv("EKV_TESTS_REQUIRED");

    return v != NULL && strcmp(v, "1") == 0;
}

void ekv_test_skip_or_fail(const char *why)
{
    /* leave nothing behind: this exits the runner */
    ekv_test_kill_all();
    if (scratch[0] != '\0' && scratch_owner == getpid())
        ekv_test_rm_rf(scratch);
    if (ekv_test_required()) {
        fprintf(stderr, "FAIL: %s (EKV_TESTS_REQUIRED=1: the tests may not be skipped)\n", why);
        exit(1);
    }
    fprintf(stderr, "SKIP: %s\n", why);
    exit(EKV_TEST_EXIT_SKIP);
}

void ekv_test_note_failure(const char *fmt, ...)
{
    va_list ap;

    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    noted_failures++;
}

uint64_t ekv_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ekv_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

static const char *tmp_root(void)
{
    const char *t = getenv("TMPDIR");

    return t != NULL && t[0] == '/' ? t : "/tmp";
}

/* Creates the scratch directory if needed. No Check assertion: also called from main(). */
static bool make_scratch(void)
{
    int n;

    if (scratch[0] != '\0')
        return true;
    n = snprintf(scratch, sizeof(scratch), "%s/edgekv-test.XXXXXX", tmp_root());
    if (n <= 0 || (size_t)n >= sizeof(scratch) || mkdtemp(scratch) == NULL) {
        scratch[0] = '\0';
        return false;
    }
    scratch_owner = getpid();
    return true;
}

/* The scratch directory; a forked test child reuses its parent's. */
static const char *scratch_dir(void)
{
    ck_assert_msg(make_scratch(), "cannot create a directory under %s: %s", tmp_root(),
                  strerror(errno));
    return scratch;
}

void ekv_test_mkdtemp(const char *prefix, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s.XXXXXX", scratch_dir(), prefix);

    ck_assert_msg(n > 0 && (size_t)n < outlen, "temporary path too long under %s", scratch);
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp %s: %s", out, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

void ekv_test_rm_rf(const char *path)
{
    if (path != NULL && path[0] != '\0')
        (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *ekv_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t got;
        if (cap - n < 4096) {
            cap = cap != 0 ? cap * 2 : 8192;
            buf = realloc(buf, cap + 1);
            if (buf == NULL)
                abort(); /* no Check assertion: used in unchecked teardowns too */
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

int ekv_test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    /* a peer that closes first is an error return of send(), not a signal (children get the
     * default back before exec) */
    signal(SIGPIPE, SIG_IGN);
    if (!make_scratch()) { /* created here, in the runner, so forked tests share it */
        fprintf(stderr, "cannot create a directory under %s: %s\n", tmp_root(), strerror(errno));
        srunner_free(sr);
        return 1;
    }
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    ekv_test_kill_all();
    if (scratch[0] != '\0' && scratch_owner == getpid())
        ekv_test_rm_rf(scratch);
    return failed == 0 && noted_failures == 0 ? 0 : 1;
}

const char *ekv_test_tag(char *buf, size_t size, const char *sid, const char *key,
                         unsigned shards)
{
    unsigned crc = 0;

    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        crc ^= (unsigned)*p << 8;
        for (int i = 0; i < 8; i++)
            crc = (crc & 0x8000) != 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    if (shards <= 1)
        snprintf(buf, size, "%s", sid);
    else
        snprintf(buf, size, "%s:%u", sid, crc % shards);
    return buf;
}
