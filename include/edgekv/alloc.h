/* alloc.h - allocation wrappers that abort on out-of-memory (like zmalloc and xmalloc).
 * Sizes derived from peer input must be checked against a configured limit first. */
#ifndef EDGEKV_ALLOC_H
#define EDGEKV_ALLOC_H

#include "edgekv/common.h"

/** malloc() that never returns NULL (aborts with a log line instead). */
void *ekv_malloc(size_t size);
/** calloc() that never returns NULL and checks nmemb * size for overflow. */
void *ekv_calloc(size_t nmemb, size_t size);
/** realloc() that never returns NULL. */
void *ekv_realloc(void *ptr, size_t size);
/** strdup(); ekv_strdup(NULL) returns NULL. */
char *ekv_strdup(const char *s);
/** A NUL-terminated copy of the first @len bytes of @s. */
char *ekv_strndup(const char *s, size_t len);
/** free(). */
void ekv_free(void *ptr);

#endif /* EDGEKV_ALLOC_H */
