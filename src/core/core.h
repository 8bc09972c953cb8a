/*
 * core.h — internal interface of the core layer: the counting allocator,
 * error messages, logging, and small helpers shared by every layer above.
 *
 * Layering: core depends on libc only. Everything else may include this.
 */
#ifndef ORION_CORE_H
#define ORION_CORE_H

#include "orion.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ORION_UNUSED(x) ((void)(x))
#define ORION_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ORION_MAX(a, b) ((a) > (b) ? (a) : (b))
#define ORION_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define ORION_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ORION_LIKELY(x)   __builtin_expect(!!(x), 1)
#define ORION_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ORION_PRINTF(fmt, args)
#define ORION_LIKELY(x)   (x)
#define ORION_UNLIKELY(x) (x)
#endif

/* ---- counting allocator (alloc.c) ----------------------------------------
 * Every heap byte the library takes goes through these. They behave like the
 * libc functions (NULL on failure, free(NULL) is a no-op) and keep the counts
 * that orion_mem_get_stats() reports. Thread-safe. */
void *orion__malloc(size_t size);
void *orion__calloc(size_t n, size_t size);
void *orion__realloc(void *p, size_t size);
void  orion__free(void *p);
/* Aligned allocation (align: power of two >= sizeof(void*)); free with
 * orion__free_aligned. */
void *orion__malloc_aligned(size_t size, size_t align);
void  orion__free_aligned(void *p);
char *orion__strdup(const char *s);

/* Test hook: make the allocation that is `n` allocations from now fail
 * (0 = this one); -1 turns failure injection off. Used by out-of-memory tests
 * that fail allocation N, then N+1, ... Thread-safe. */
void orion__alloc_fail_after(int64_t n);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool orion__mul_ok(size_t a, size_t b, size_t *out) {
    if (b != 0 && a > SIZE_MAX / b) return false;
    *out = a * b;
    return true;
}
static inline bool orion__add_ok(size_t a, size_t b, size_t *out) {
    if (a > SIZE_MAX - b) return false;
    *out = a + b;
    return true;
}

/* ---- mapped files (mapped_file.c) ---------------------------------------
 * Maps a whole regular file read-only; *data and *size describe it until
 * orion__file_unmap. Errors name the path. */
orion_status orion__file_map(const char *path, const uint8_t **data, size_t *size);
void         orion__file_unmap(const uint8_t *data, size_t size);

/* ---- errors (status.c) ----------------------------------------------------
 * Sets this thread's last-error message and returns `status`, so a failing
 * path reads: return orion__fail(ORION_ERR_FORMAT, "%s: bad magic", path); */
orion_status orion__fail(orion_status status, const char *fmt, ...) ORION_PRINTF(2, 3);
orion_status orion__failv(orion_status status, const char *fmt, va_list ap);
void orion__clear_error(void);

/* ---- logging (log.c) ------------------------------------------------------ */
void orion__log(orion_log_level level, const char *fmt, ...) ORION_PRINTF(2, 3);
bool orion__log_enabled(orion_log_level level);
#define ORION_LOG_D(...) orion__log(ORION_LOG_DEBUG, __VA_ARGS__)
#define ORION_LOG_I(...) orion__log(ORION_LOG_INFO, __VA_ARGS__)
#define ORION_LOG_W(...) orion__log(ORION_LOG_WARN, __VA_ARGS__)
#define ORION_LOG_E(...) orion__log(ORION_LOG_ERROR, __VA_ARGS__)

/* ---- time (timer.c) ------------------------------------------------------- */
/* Monotonic clock in seconds / nanoseconds. */
double   orion__now(void);
uint64_t orion__now_ns(void);

/* ---- environment ---------------------------------------------------------- */
/* True when the variable is set to something other than "", "0" or "false". */
bool orion__env_flag(const char *name);

#endif /* ORION_CORE_H */
