/* memfile.h - a file in memory for the fuzz targets whose parser wants a path: a memfd,
 * rewritten for each input and named by /proc/self/fd/N (no disk I/O, no temporary files). */
#ifndef EDGEKV_FUZZ_MEMFILE_H
#define EDGEKV_FUZZ_MEMFILE_H

#include <stddef.h>

/** Replaces the file's contents with the @len bytes at @data; returns its path (static). Aborts
 * if the memfd cannot be made or written. */
const char *fuzz_memfile(const void *data, size_t len);

#endif /* EDGEKV_FUZZ_MEMFILE_H */
