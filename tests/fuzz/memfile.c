/* memfile.c - see memfile.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memfile.h"

const char *fuzz_memfile(const void *data, size_t len)
{
    static int fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("edgekv-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (len > 0 && pwrite(fd, data, len, 0) != (ssize_t)len)) {
        perror("memfd write");
        abort();
    }
    return path;
}
