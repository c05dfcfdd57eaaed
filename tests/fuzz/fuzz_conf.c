/* fuzz_conf.c - libFuzzer target: the configuration file (src/config/conf_file.c and every
 * value parser of the directive table behind it: addresses, origin URLs, sizes, durations,
 * numbers, booleans, log levels, strings and lists). The input is the file, read through a
 * memfd; a file that loads is then validated and merged into the defaults as a reload would.
 *
 * Invariants: an error names the file and line ("FILE:LINE: ..."); loading is deterministic (the
 * same file gives equal configurations); a reload merge puts every restart-only directive back
 * to its running value, so merging again changes nothing. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgekv/conf.h"
#include "edgekv/log.h"

#include "memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_conf: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_memfile(data, size);
    struct ekv_conf *a = ekv_conf_new(), *b, *running;
    char err[1024], changed[1024], restart[1024];
    int rc;

    err[0] = '\0';
    rc = ekv_conf_load_file(a, path, err, sizeof(err));
    CHECK(rc == EKV_OK || rc == EKV_EINVAL);
    if (rc != EKV_OK) {
        CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
        ekv_conf_free(a);
        return 0;
    }
    CHECK(ekv_conf_equal(a, a));
    (void)ekv_conf_validate(a, err, sizeof(err));

    b = ekv_conf_new();
    CHECK(ekv_conf_load_file(b, path, err, sizeof(err)) == EKV_OK);
    CHECK(ekv_conf_equal(a, b));

    running = ekv_conf_new();
    (void)ekv_conf_reload_merge(b, running, changed, sizeof(changed), restart, sizeof(restart));
    CHECK(ekv_conf_reload_merge(b, running, changed, sizeof(changed), restart, sizeof(restart)) ==
          0);
    CHECK(restart[0] == '\0');
    (void)ekv_conf_validate(b, err, sizeof(err));
    /* and the other way: the loaded file running, the defaults coming in */
    (void)ekv_conf_reload_merge(running, a, changed, sizeof(changed), restart, sizeof(restart));
    CHECK(ekv_conf_reload_merge(running, a, changed, sizeof(changed), restart, sizeof(restart)) ==
          0);

    ekv_conf_free(running);
    ekv_conf_free(b);
    ekv_conf_free(a);
    return 0;
}
