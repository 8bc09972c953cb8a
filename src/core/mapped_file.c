/*
 * mapped_file.c — maps a whole regular file read-only (MAP_PRIVATE), the one
 * way every file reader in orion gets at its bytes: weights are pointed
 * into, never copied, and pages are shared between processes that map the
 * same file. Errors: NOT_FOUND for a missing file, IO for anything that is
 * not a readable regular file or cannot be mapped, FORMAT for an empty one.
 *
 * Within one process a file is mapped once: a second orion__file_map of the
 * same file (same device, inode, size and modification time) returns the
 * same mapping with a reference count, and orion__file_unmap unmaps when the
 * last user lets go. So the model manager's prefault mapping and the
 * model's own, or two handles of one model, touch the same page-table
 * entries and the process's RSS counts the weights once. A file replaced
 * or rewritten since gets a mapping of its own.
 */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct shared_map {
    struct shared_map *next;
    dev_t              dev;
    ino_t              ino;
    off_t              size;
    struct timespec    mtime;
    const uint8_t     *data;
    int64_t            refs;
} shared_map;

static pthread_mutex_t maps_mu = PTHREAD_MUTEX_INITIALIZER;
static shared_map     *maps;

static bool same_file(const shared_map *m, const struct stat *sb) {
    return m->dev == sb->st_dev && m->ino == sb->st_ino && m->size == sb->st_size &&
           m->mtime.tv_sec == sb->st_mtim.tv_sec && m->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

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
    pthread_mutex_lock(&maps_mu);
    for (shared_map *m = maps; m; m = m->next) {
        if (same_file(m, &sb)) {
            m->refs++;
            pthread_mutex_unlock(&maps_mu);
            close(fd);
            *data = m->data;
            *size = (size_t)sb.st_size;
            return ORION_OK;
        }
    }
    /* plain malloc: the registry is process-wide bookkeeping, not a model's
     * memory, and must not fail a load under injected allocation failures */
    shared_map *m = malloc(sizeof *m);
    void *map = m ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    int map_errno = m ? errno : ENOMEM;
    close(fd);
    if (map == MAP_FAILED) {
        pthread_mutex_unlock(&maps_mu);
        free(m);
        return orion__fail(ORION_ERR_IO, "%s: cannot map: %s", path, strerror(map_errno));
    }
    *m = (shared_map){maps, sb.st_dev, sb.st_ino, sb.st_size, sb.st_mtim, map, 1};
    maps = m;
    pthread_mutex_unlock(&maps_mu);
    *data = map;
    *size = (size_t)sb.st_size;
    return ORION_OK;
}

void orion__file_unmap(const uint8_t *data, size_t size) {
    if (!data) return;
    pthread_mutex_lock(&maps_mu);
    for (shared_map **pp = &maps; *pp; pp = &(*pp)->next) {
        shared_map *m = *pp;
        if (m->data != data) continue;
        if (--m->refs == 0) {
            *pp = m->next;
            munmap((void *)m->data, (size_t)m->size);
            free(m);
        }
        pthread_mutex_unlock(&maps_mu);
        return;
    }
    pthread_mutex_unlock(&maps_mu);
    munmap((void *)data, size); /* not from orion__file_map */
}
