/*
 * arena.c — a fixed-capacity bump allocator for per-request scratch.
 *
 * One block is taken from the counting allocator at init and never grows, so
 * a model's scratch is known at load time and reported. Allocation is a
 * pointer bump; marks and rewinds free everything allocated after a point.
 */
#include "core/core.h"

#include <string.h>

#define ARENA_BASE_ALIGN 64

struct orion_arena {
    unsigned char *base;     /* capacity bytes, 64-byte aligned */
    size_t         capacity;
    size_t         used;
    size_t         peak;
};

orion_status orion_arena_init(size_t capacity, orion_arena **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_arena_init: out is NULL");
    *out = NULL;
    orion_arena *a = orion__calloc(1, sizeof *a);
    if (!a) return orion__fail(ORION_ERR_NOMEM, "arena: cannot allocate the handle");
    if (capacity > 0) {
        a->base = orion__malloc_aligned(capacity, ARENA_BASE_ALIGN);
        if (!a->base) {
            orion__free(a);
            return orion__fail(ORION_ERR_NOMEM, "arena: cannot allocate %zu bytes", capacity);
        }
    }
    a->capacity = capacity;
    *out = a;
    return ORION_OK;
}

void orion_arena_free(orion_arena *a) {
    if (!a) return;
    orion__free_aligned(a->base);
    orion__free(a);
}

void *orion_arena_alloc(orion_arena *a, size_t size, size_t align) {
    if (!a || align == 0 || align > 4096 || (align & (align - 1)) != 0) {
        orion__fail(ORION_ERR_INVALID_ARG, "arena: bad alignment %zu", align);
        return NULL;
    }
    /* base is 64-aligned; larger alignments are honoured from the address */
    uintptr_t cur = (uintptr_t)a->base + a->used;
    uintptr_t aligned = (cur + align - 1) & ~(uintptr_t)(align - 1);
    size_t start = (size_t)(aligned - (uintptr_t)a->base);
    if (start > a->capacity || size > a->capacity - start) {
        orion__fail(ORION_ERR_NOMEM, "arena: %zu bytes asked, %zu of %zu left", size,
                    a->capacity - ORION_MIN(a->used, a->capacity), a->capacity);
        return NULL;
    }
    a->used = start + size;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + start;
}

size_t orion_arena_mark(const orion_arena *a) {
    return a ? a->used : 0;
}

void orion_arena_rewind(orion_arena *a, size_t mark) {
    if (a && mark <= a->used) a->used = mark;
}

void orion_arena_reset(orion_arena *a) {
    if (a) a->used = 0;
}

size_t orion_arena_used(const orion_arena *a) {
    return a ? a->used : 0;
}

size_t orion_arena_peak(const orion_arena *a) {
    return a ? a->peak : 0;
}

size_t orion_arena_capacity(const orion_arena *a) {
    return a ? a->capacity : 0;
}
