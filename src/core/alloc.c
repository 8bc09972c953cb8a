/*
 * alloc.c — the counting allocator every heap allocation in orion goes
 * through (compare redis' zmalloc). Each block carries a 16-byte header with
 * its size, so frees can be counted without asking libc. Counters are atomic;
 * the manager reads them to know what the process holds.
 *
 * Aligned blocks store, just below the aligned pointer, the offset back to the
 * counted base block, so they can be freed through the same accounting.
 *
 * Failure injection (orion__alloc_fail_after) lets out-of-memory tests make
 * allocation N fail, then N+1, and so on, and check nothing leaks or crashes.
 */
#include "core/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 16 /* keeps the user pointer 16-byte aligned */

static _Atomic(size_t)   in_use;
static _Atomic(size_t)   peak;
static _Atomic(uint64_t) n_allocs;
static _Atomic(uint64_t) n_frees;
static _Atomic(uint64_t) n_failed;
static _Atomic(int64_t)  fail_countdown = -1;

static bool should_fail(void) {
    int64_t c = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (ORION_LIKELY(c < 0)) return false;
    /* decrement; the allocation that takes it from 0 to -1 fails */
    c = atomic_fetch_sub(&fail_countdown, 1);
    if (c == 0) return true;
    if (c < 0) atomic_store(&fail_countdown, -1);
    return false;
}

void orion__alloc_fail_after(int64_t n) {
    atomic_store(&fail_countdown, n < 0 ? -1 : n);
}

static void count_alloc(size_t size) {
    size_t now = atomic_fetch_add(&in_use, size) + size;
    size_t p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {
    }
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
}

void *orion__malloc(size_t size) {
    if (should_fail() || size > SIZE_MAX - HEADER) {
        atomic_fetch_add(&n_failed, 1);
        return NULL;
    }
    unsigned char *base = malloc(size + HEADER);
    if (!base) {
        atomic_fetch_add(&n_failed, 1);
        return NULL;
    }
    memcpy(base, &size, sizeof size);
    count_alloc(size);
    return base + HEADER;
}

void *orion__calloc(size_t n, size_t size) {
    size_t total;
    if (!orion__mul_ok(n, size, &total)) {
        atomic_fetch_add(&n_failed, 1);
        return NULL;
    }
    void *p = orion__malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void orion__free(void *p) {
    if (!p) return;
    unsigned char *base = (unsigned char *)p - HEADER;
    size_t size;
    memcpy(&size, base, sizeof size);
    atomic_fetch_sub(&in_use, size);
    atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
    free(base);
}

void *orion__realloc(void *p, size_t size) {
    if (!p) return orion__malloc(size);
    if (size == 0) {
        orion__free(p);
        return NULL;
    }
    if (should_fail() || size > SIZE_MAX - HEADER) {
        atomic_fetch_add(&n_failed, 1);
        return NULL;
    }
    unsigned char *base = (unsigned char *)p - HEADER;
    size_t old;
    memcpy(&old, base, sizeof old);
    unsigned char *nb = realloc(base, size + HEADER);
    if (!nb) {
        atomic_fetch_add(&n_failed, 1);
        return NULL;
    }
    memcpy(nb, &size, sizeof size);
    atomic_fetch_sub(&in_use, old);
    count_alloc(size);
    atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
    return nb + HEADER;
}

void *orion__malloc_aligned(size_t size, size_t align) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return NULL;
    size_t total;
    if (!orion__add_ok(size, align + sizeof(size_t), &total)) {
        atomic_fetch_add(&n_failed, 1);
        return NULL;
    }
    unsigned char *raw = orion__malloc(total);
    if (!raw) return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(size_t));
    uintptr_t aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
    size_t offset = (size_t)(aligned - (uintptr_t)raw);
    memcpy((unsigned char *)aligned - sizeof(size_t), &offset, sizeof offset);
    return (void *)aligned;
}

void orion__free_aligned(void *p) {
    if (!p) return;
    size_t offset;
    memcpy(&offset, (unsigned char *)p - sizeof(size_t), sizeof offset);
    orion__free((unsigned char *)p - offset);
}

char *orion__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = orion__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void orion_mem_get_stats(orion_mem_stats *out) {
    if (!out) return;
    out->bytes_in_use = atomic_load(&in_use);
    out->bytes_peak = atomic_load(&peak);
    out->n_allocs = atomic_load(&n_allocs);
    out->n_frees = atomic_load(&n_frees);
    out->n_failed = atomic_load(&n_failed);
}

void orion_mem_reset_peak(void) {
    atomic_store(&peak, atomic_load(&in_use));
}
