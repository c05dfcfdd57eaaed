/* fuzz_args.c - libFuzzer target: the command line (src/config/conf_args.c): -c FILE, -t,
 * -h/--help, -v/--version, --print-sample-config, --print-man-page, --DIRECTIVE VALUE and
 * --DIRECTIVE=VALUE, over a file. The input is the arguments, separated by NUL bytes, then
 * (after an empty argument, "\0\0") the contents of the file that every -c names (a memfd), so
 * both the file's directives and the command line's overriding them are reached.
 *
 * Invariants: the result is an action or EKV_EINVAL; a configuration is returned exactly for
 * the actions that run or test it; an error has a reason. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/conf.h"

#include "memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_args: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_ARGS 64
#define MAX_INPUT 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[MAX_INPUT + 1];
    char *argv[MAX_ARGS + 2], *p, *end, err[1024];
    const char *path;
    static char argv0[] = "edgekv";
    static int sentinel;
    struct ekv_conf *conf = (struct ekv_conf *)(void *)&sentinel; /* must be reset to NULL */
    int argc = 0, rc;

    if (size > MAX_INPUT)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    end = buf + size;
    argv[argc++] = argv0;
    p = buf;
    /* the arguments, up to an empty one; the file is what follows it */
    while (p < end && argc < MAX_ARGS + 1) {
        size_t n = strlen(p);
        if (n == 0) {
            p++;
            break;
        }
        argv[argc++] = p;
        p += n + 1;
    }
    path = fuzz_memfile(p < end ? p : "", p < end ? (size_t)(end - p) : 0);
    /* every "-c X" reads the memfd */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-c") == 0)
            argv[++i] = (char *)path;
    argv[argc] = NULL;

    err[0] = '\0';
    rc = ekv_conf_from_args(argc, argv, &conf, err, sizeof(err));
    switch (rc) {
    case EKV_CONF_RUN:
    case EKV_CONF_TEST:
        CHECK(conf != NULL);
        CHECK(ekv_conf_validate(conf, err, sizeof(err)) == EKV_OK);
        break;
    case EKV_CONF_HELP:
    case EKV_CONF_VERSION:
    case EKV_CONF_SAMPLE:
    case EKV_CONF_MAN:
        CHECK(conf == NULL);
        break;
    default:
        CHECK(rc == EKV_EINVAL);
        CHECK(conf == NULL);
        CHECK(err[0] != '\0');
        break;
    }
    ekv_conf_free(conf);
    return 0;
}
