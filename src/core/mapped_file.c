/*
 * mapped_file.c — maps a whole regular file read-only (MAP_PRIVATE), the one
 * way every file reader in orion gets at its bytes: weights are pointed
 * into, never copied, and pages are shared between processes that map the
 * same file. Errors: NOT_FOUND for a missing file, IO for anything that is
 * not a readable regular file or cannot be mapped, FORMAT for an empty one.
 */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

orion_status orion__file_map(const char *path, const uint8_t **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return orion__fail(errno == ENOENT ? ORION_ERR_NOT_FOUND : ORION_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return orion__fail(ORION_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return orion__fail(ORION_ERR_FORMAT, "%s: empty file", path);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return orion__fail(ORION_ERR_IO, "%s: cannot map: %s", path, strerror(map_errno));
    *data = map;
    *size = (size_t)sb.st_size;
    return ORION_OK;
}

void orion__file_unmap(const uint8_t *data, size_t size) {
    if (data) munmap((void *)data, size);
}
