/* resp.c - the fuzz targets' RESP reader (see resp.h).
 *
 * link.c keeps its reply object functions static (the origin's private business), so they are
 * restated here: the same shapes (one allocation per reply, the shared "+OK" and nil objects
 * that cost none), and above all the same bound on array lengths (ARRAY_MAX, link.c), without
 * which a peer announcing "*2147483647" would make the reader allocate 16 GiB: the fuzzer would
 * report that as an out-of-memory crash that production cannot have. Keep the two in step. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "resp.h"

#define ARRAY_MAX (1u << 20) /* link.c's */

#if HIREDIS_MAJOR == 0
static char ok_str[] = "OK";
static redisReply reply_ok = {.type = REDIS_REPLY_STATUS, .len = 2, .str = ok_str};
static redisReply reply_nil = {.type = REDIS_REPLY_NIL};

static void *attach(const redisReadTask *task, redisReply *r)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *new_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r;

    if (task->type == REDIS_REPLY_STATUS && len == 2 && memcmp(str, "OK", 2) == 0)
        return attach(task, &reply_ok);
    if (len > SIZE_MAX - sizeof(*r) - 1 || (r = malloc(sizeof(*r) + len + 1)) == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->type = task->type;
    r->str = (char *)(r + 1);
    r->len = len;
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    return attach(task, r);
}

static void *new_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r;

    if (n > ARRAY_MAX || (r = calloc(1, sizeof(*r) + n * sizeof(redisReply *))) == NULL)
        return NULL;
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = n > 0 ? (redisReply **)(void *)(r + 1) : NULL;
    return attach(task, r);
}

static void *new_integer(const redisReadTask *task, long long value)
{
    redisReply *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->type = REDIS_REPLY_INTEGER;
    r->integer = value;
    return attach(task, r);
}

static void *new_nil(const redisReadTask *task)
{
    return attach(task, &reply_nil);
}

static void free_reply(void *obj)
{
    redisReply *r = obj;

    if (r == NULL || r == &reply_ok || r == &reply_nil)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            free_reply(r->element[i]);
    free(r);
}

static redisReplyObjectFunctions reply_fns = {new_string, new_array, new_integer, new_nil,
                                              free_reply};

static redisReader *reader_new(void)
{
    return redisReaderCreateWithFunctions(&reply_fns);
}
#else
static redisReader *reader_new(void)
{
    return redisReaderCreate();
}
#endif

size_t fuzz_resp_read(const char *data, size_t len, struct redisReply **out, size_t max)
{
    redisReader *rd = reader_new();
    size_t n = 0;

    if (rd == NULL)
        abort();
    if (redisReaderFeed(rd, data, len) == REDIS_OK) {
        while (n < max) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
                break;
            out[n++] = reply;
        }
    }
    redisReaderFree(rd);
    return n;
}

void fuzz_resp_free(struct redisReply *r)
{
#if HIREDIS_MAJOR == 0
    free_reply(r);
#else
    freeReplyObject(r);
#endif
}
