/* check_slot.c - Redis Cluster key slots (src/origin/slot.c) against what Redis itself answers:
 * every vector below is the reply of CLUSTER KEYSLOT on redis-server 7.0.15 (cluster-enabled),
 * covering hash tags (the first '{' and the first '}' after it, only when not empty), empty and
 * unbalanced braces, binary keys and edgekv's own item and generation keys, which must share
 * a slot. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "origin_int.h"
#include "testutil.h"

struct vector {
    const char *key;
    size_t len;
    unsigned slot;
};

#define V(k, s) {k, sizeof(k) - 1, s}

static const struct vector vectors[] = {
    V("", 0),
    V("a", 15495),
    V("foo", 12182),
    V("bar", 5061),
    V("123456789", 12739), /* CRC16/XMODEM's check value 0x31c3 */
    V("{user1000}.following", 3443),
    V("{user1000}.followers", 3443),
    V("foo{}{bar}", 8363),    /* an empty tag: the whole key */
    V("foo{{bar}}zap", 4015), /* the tag is "{bar" */
    V("foo{bar}{zap}", 5061), /* the first tag only: "bar" */
    V("{}", 15257),
    V("{", 4092),
    V("}", 12090),
    V("{a", 10276),
    V("a}", 5921),
    V("{abc:7}x", 10726),
    V("bin\0ary", 16297),
    V("edgekv:i:{k3v0c8tq5y2m1x7w9b4n6a}:greeting", 14618),
    V("edgekv:g:{k3v0c8tq5y2m1x7w9b4n6a}", 14618),
};

START_TEST(test_keyslot_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        ck_assert_msg(ekv_origin_keyslot(v->key, v->len) == v->slot,
                      "key %zu (\"%s\"): slot %u, Redis says %u", i, v->key,
                      ekv_origin_keyslot(v->key, v->len), v->slot);
    }
}
END_TEST

/* Every slot is reachable and none is out of range: 200,000 distinct keys. */
START_TEST(test_keyslot_range)
{
    static unsigned char seen[EKV_ORIGIN_SLOTS];
    unsigned distinct = 0;
    char key[32];

    memset(seen, 0, sizeof(seen));
    for (unsigned i = 0; i < 200000; i++) {
        int n = snprintf(key, sizeof(key), "k%u", i);
        unsigned s = ekv_origin_keyslot(key, (size_t)n);
        ck_assert_uint_lt(s, EKV_ORIGIN_SLOTS);
        distinct += !seen[s];
        seen[s] = 1;
    }
    ck_assert_uint_eq(distinct, EKV_ORIGIN_SLOTS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slot");
    TCase *tc = tcase_create("keyslot");

    tcase_add_test(tc, test_keyslot_vectors);
    tcase_add_test(tc, test_keyslot_range);
    suite_add_tcase(s, tc);
    return ekv_test_run_suite(s);
}
