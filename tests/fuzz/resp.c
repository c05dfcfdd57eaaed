/* resp.c - the fuzz targets' RESP reader (see resp.h): the origin's own (link.c), so replies
 * have production's shapes and its bound on array lengths, without which a peer announcing
 * "*2147483647" would make the reader allocate 16 GiB: an out-of-memory crash that production
 * cannot have. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "edgekv/origin.h"

#include "origin_int.h"
#include "resp.h"

size_t fuzz_resp_read(const char *data, size_t len, struct redisReply **out, size_t max)
{
    redisReader *rd = ekv_origin_reader_new();
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
    ekv_origin_reply_free(r);
}
