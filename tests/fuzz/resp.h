/* resp.h - the fuzz targets' RESP reader: hiredis's reader with the reply objects of
 * src/origin/link.c, so the decoders under test get what the origin hands them. */
#ifndef EDGEKV_FUZZ_RESP_H
#define EDGEKV_FUZZ_RESP_H

#include <stddef.h>

struct redisReply;

/** Reads up to @max complete replies from the @len bytes at @data into @out, in order, until
 * the bytes end or the reader reports a protocol error (where the link drops its connection).
 * Returns how many; free each with fuzz_resp_free(). */
size_t fuzz_resp_read(const char *data, size_t len, struct redisReply **out, size_t max);
void fuzz_resp_free(struct redisReply *r);

#endif /* EDGEKV_FUZZ_RESP_H */
