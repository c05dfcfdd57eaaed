/* fuzz_batch.c - libFuzzer target: the body of a batch request (src/api/batch.c), NDJSON lines
 * of {key, value (base64), metadata, time_to_live_sec, background_fetch}: split into lines as
 * the handler splits them, each parsed and validated as a single put, each refused line made
 * into its errors[] entry, and the 400 body that lists them serialized. Only the writes to the
 * origin are left out. Byte 0 chooses value-max-bytes (0, 1, 16 or 25 MiB), the rest is the
 * body.
 *
 * Invariants: an accepted line obeys the rules of a single put (a valid key, metadata within
 * bounds, a value no longer than value-max-bytes, a TTL in range); a refused one has a reason;
 * every errors[] entry and the response body can be built. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edgekv/alloc.h"

#include "api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_batch: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t value_max[] = {0, 1, 16, 25 << 20};
    const char *p, *end, *line;
    size_t len, index = 0;
    json_t *errors;
    uint64_t vmax;

    if (size < 1)
        return 0;
    vmax = value_max[data[0] & 3];
    p = (const char *)data + 1;
    end = (const char *)data + size;
    errors = json_array();
    CHECK(errors != NULL);
    while (ekv_batch_next_line(&p, end, &line, &len)) {
        struct ekv_batch_item it;
        char why[256], *key;

        CHECK(line >= (const char *)data + 1 && line + len <= end);
        CHECK(memchr(line, '\n', len) == NULL);
        index++;
        if (len == 0)
            continue;
        why[0] = '\0';
        if (ekv_batch_parse_line(line, len, vmax, &it, &key, why, sizeof(why)) != EKV_OK) {
            CHECK(why[0] != '\0');
            CHECK(it.key == NULL && it.value == NULL && it.meta == NULL);
            CHECK(json_array_append_new(errors, ekv_batch_error(key, index - 1, "400", why)) ==
                  0);
            ekv_free(key);
            continue;
        }
        CHECK(key != NULL);
        CHECK(it.key != NULL && memcmp(it.key, key, it.key_len) == 0);
        CHECK(ekv_key_check(it.key, it.key_len) == NULL);
        CHECK(it.value != NULL && it.value_len <= vmax);
        CHECK(it.meta == NULL || (it.meta_len > 0 && ekv_meta_check(it.meta, it.meta_len) == NULL));
        CHECK(it.ttl_sec <= EKV_TTL_MAX_SEC);
        ekv_free(key);
        ekv_batch_item_clear(&it);
        CHECK(it.key == NULL && it.value == NULL);
    }
    CHECK(p == end);
    {
        json_t *body = json_pack("{s:s, s:s, s:O}", "title", "Bad Request", "type", "about:blank",
                                 "errors", errors);
        char *text;

        CHECK(body != NULL);
        text = json_dumps(body, JSON_COMPACT);
        CHECK(text != NULL);
        free(text);
        json_decref(body);
    }
    json_decref(errors);
    return 0;
}
