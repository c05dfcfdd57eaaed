/* alloc.c - allocation wrappers that abort on out-of-memory. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "edgekv/alloc.h"
#include "edgekv/log.h"

static void EKV_NORETURN oom(size_t size)
{
    EKV_FATAL("out of memory allocating %zu bytes", size);
}

void *ekv_malloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);

    if (p == NULL)
        oom(size);
    return p;
}

void *ekv_calloc(size_t nmemb, size_t size)
{
    void *p;

    if (size != 0 && nmemb > SIZE_MAX / size)
        oom(SIZE_MAX);
    p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *ekv_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size == 0 ? 1 : size);

    if (p == NULL)
        oom(size);
    return p;
}

char *ekv_strndup(const char *s, size_t len)
{
    char *p = ekv_malloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ekv_strdup(const char *s)
{
    return s == NULL ? NULL : ekv_strndup(s, strlen(s));
}

void ekv_free(void *ptr)
{
    free(ptr);
}
