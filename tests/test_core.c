/*
 * test_core.c — the core layer: status strings and last-error messages,
 * logging callback, counting allocator (with failure injection), arena,
 * thread pool and CPU feature detection.
 */
#include "core/core.h"
#include "test_util.h"

#include <stdatomic.h>
#include <string.h>

/* ---- status and errors ---------------------------------------------------- */

static void test_status_strings(void **state) {
    (void)state;
    for (int s = ORION_OK; s >= ORION_ERR_INTERNAL; s--) {
        const char *name = orion_status_str((orion_status)s);
        assert_non_null(name);
        assert_true(strlen(name) > 0);
        assert_string_not_equal(name, "unknown status");
    }
    assert_string_equal(orion_status_str((orion_status)-999), "unknown status");
    assert_string_equal(orion_status_str(ORION_ERR_NOMEM), "out of memory");
}

static void test_last_error(void **state) {
    (void)state;
    orion__clear_error();
    assert_string_equal(orion_last_error(), "");
    orion_status st = orion__fail(ORION_ERR_FORMAT, "%s: offset %d", "model.gguf", 42);
    assert_int_equal(st, ORION_ERR_FORMAT);
    assert_string_equal(orion_last_error(), "model.gguf: offset 42");
    /* a public call with a bad argument leaves its own message */
    orion_type t;
    assert_int_equal(orion_type_from_name("q3_k_xl", &t), ORION_ERR_NOT_FOUND);
    assert_non_null(strstr(orion_last_error(), "q3_k_xl"));
}

/* ---- logging -------------------------------------------------------------- */

typedef struct log_capture {
    int  count;
    int  last_level;
    char last_msg[256];
} log_capture;

static void capture_log(orion_log_level level, const char *msg, void *user) {
    log_capture *c = user;
    c->count++;
    c->last_level = (int)level;
    snprintf(c->last_msg, sizeof c->last_msg, "%s", msg);
}

static void test_logging(void **state) {
    (void)state;
    log_capture cap = {0};
    /* quiet by default */
    orion__log(ORION_LOG_ERROR, "nobody hears this");
    orion_log_set(capture_log, ORION_LOG_WARN, &cap);
    orion__log(ORION_LOG_INFO, "below the level");
    assert_int_equal(cap.count, 0);
    ORION_LOG_W("disk %d%% full", 93);
    assert_int_equal(cap.count, 1);
    assert_int_equal(cap.last_level, ORION_LOG_WARN);
    assert_string_equal(cap.last_msg, "disk 93% full");
    orion_log_set(NULL, ORION_LOG_DEBUG, NULL);
    ORION_LOG_E("silenced again");
    assert_int_equal(cap.count, 1);
}

/* ---- counting allocator ------------------------------------------------------ */

static void test_alloc_counts(void **state) {
    (void)state;
    orion_mem_stats a, b, c;
    orion_mem_get_stats(&a);
    void *p = orion__malloc(1000);
    void *q = orion__calloc(10, 100);
    assert_non_null(p);
    assert_non_null(q);
    for (int i = 0; i < 1000; i++) assert_int_equal(((unsigned char *)q)[i], 0);
    orion_mem_get_stats(&b);
    assert_int_equal(b.bytes_in_use - a.bytes_in_use, 2000);
    assert_true(b.bytes_peak >= b.bytes_in_use);
    assert_int_equal(b.n_allocs - a.n_allocs, 2);
    p = orion__realloc(p, 5000);
    assert_non_null(p);
    orion_mem_get_stats(&c);
    assert_int_equal(c.bytes_in_use - a.bytes_in_use, 6000);
    orion__free(p);
    orion__free(q);
    orion__free(NULL);
    orion_mem_get_stats(&c);
    assert_int_equal(c.bytes_in_use, a.bytes_in_use);

    /* aligned blocks are counted and freed through the same accounting */
    for (size_t align = 8; align <= 4096; align *= 2) {
        void *x = orion__malloc_aligned(777, align);
        assert_non_null(x);
        assert_int_equal((uintptr_t)x % align, 0);
        memset(x, 0xab, 777);
        orion__free_aligned(x);
    }
    assert_null(orion__malloc_aligned(64, 3)); /* not a power of two */
    orion_mem_get_stats(&c);
    assert_int_equal(c.bytes_in_use, a.bytes_in_use);

    /* overflowing requests fail cleanly */
    assert_null(orion__calloc(SIZE_MAX / 2, 4));
    assert_null(orion__malloc(SIZE_MAX - 3));
}

static void test_alloc_failure_injection(void **state) {
    (void)state;
    orion__alloc_fail_after(2);
    void *a = orion__malloc(8);
    void *b = orion__malloc(8);
    void *c = orion__malloc(8); /* third allocation from now fails */
    void *d = orion__malloc(8); /* and only that one */
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_non_null(d);
    orion__free(a);
    orion__free(b);
    orion__free(d);
    orion__alloc_fail_after(-1);
}

/* Every constructor must fail cleanly whichever allocation fails: fail
 * allocation 0, 1, 2, ... until construction succeeds, checking nothing
 * leaks (the counter returns to where it was). */
static void test_constructors_under_oom(void **state) {
    (void)state;
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    int succeeded_at = -1;
    for (int n = 0; n < 64 && succeeded_at < 0; n++) {
        orion__alloc_fail_after(n);
        orion_threadpool_params p = orion_threadpool_default_params();
        p.n_threads = 3;
        orion_threadpool *pool = NULL;
        orion_arena *arena = NULL;
        orion_status s1 = orion_threadpool_init(&p, &pool);
        orion_status s2 = orion_arena_init(4096, &arena);
        orion__alloc_fail_after(-1);
        if (s1 == ORION_OK && s2 == ORION_OK) succeeded_at = n;
        if (s1 != ORION_OK) {
            assert_int_equal(s1, ORION_ERR_NOMEM);
            assert_null(pool);
        }
        if (s2 != ORION_OK) {
            assert_int_equal(s2, ORION_ERR_NOMEM);
            assert_null(arena);
            assert_true(strlen(orion_last_error()) > 0);
        }
        orion_threadpool_free(pool);
        orion_arena_free(arena);
        orion_mem_get_stats(&after);
        assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    }
    assert_true(succeeded_at > 0);
}

/* ---- arena ------------------------------------------------------------------ */

static void test_arena(void **state) {
    (void)state;
    orion_arena *a = NULL;
    assert_int_equal(orion_arena_init(1024, &a), ORION_OK);
    assert_int_equal(orion_arena_capacity(a), 1024);
    char *p = orion_arena_alloc(a, 10, 1);
    assert_non_null(p);
    float *f = orion_arena_alloc(a, 16 * sizeof(float), 64);
    assert_non_null(f);
    assert_int_equal((uintptr_t)f % 64, 0);
    assert_true((char *)f >= p + 10);
    size_t mark = orion_arena_mark(a);
    assert_non_null(orion_arena_alloc(a, 500, 16));
    size_t peak = orion_arena_peak(a);
    orion_arena_rewind(a, mark);
    assert_int_equal(orion_arena_used(a), mark);
    assert_int_equal(orion_arena_peak(a), peak);
    /* full: NULL with a message, and the arena is unchanged */
    assert_null(orion_arena_alloc(a, 2000, 8));
    assert_non_null(strstr(orion_last_error(), "2000 bytes asked"));
    assert_int_equal(orion_arena_used(a), mark);
    assert_null(orion_arena_alloc(a, SIZE_MAX, 8));
    assert_null(orion_arena_alloc(a, 8, 3)); /* bad alignment */
    /* exactly filling it works */
    orion_arena_reset(a);
    assert_non_null(orion_arena_alloc(a, 1024, 64));
    assert_null(orion_arena_alloc(a, 1, 1));
    orion_arena_free(a);
    orion_arena_free(NULL);
    assert_int_equal(orion_arena_init(16, NULL), ORION_ERR_INVALID_ARG);
}

/* ---- thread pool ----------------------------------------------------------- */

typedef struct pool_job {
    _Atomic(int) calls;
    _Atomic(int) seen_mask;
    int64_t      n;
    int64_t     *out;
} pool_job;

static void pool_task(void *arg, int ith, int nth) {
    pool_job *job = arg;
    atomic_fetch_add(&job->calls, 1);
    atomic_fetch_or(&job->seen_mask, 1 << ith);
    /* split by (ith, nth): each thread writes its own range */
    int64_t per = (job->n + nth - 1) / nth;
    int64_t lo = ith * per, hi = ORION_MIN(job->n, lo + per);
    for (int64_t i = lo; i < hi; i++) job->out[i] += i * i;
}

static void test_threadpool(void **state) {
    (void)state;
    for (int nt = 1; nt <= 4; nt++) {
        orion_threadpool_params p = orion_threadpool_default_params();
        p.n_threads = nt;
        p.spin_us = (nt % 2) ? 0 : 200; /* exercise sleeping and spinning workers */
        orion_threadpool *pool = NULL;
        assert_int_equal(orion_threadpool_init(&p, &pool), ORION_OK);
        assert_int_equal(orion_threadpool_n_threads(pool), nt);
        int64_t out[1001] = {0};
        pool_job job = {.n = 1001, .out = out};
        const int runs = 500;
        for (int r = 0; r < runs; r++) orion_threadpool_run(pool, pool_task, &job);
        assert_int_equal(atomic_load(&job.calls), runs * nt);
        assert_int_equal(atomic_load(&job.seen_mask), (1 << nt) - 1);
        for (int64_t i = 0; i < 1001; i++) assert_true(out[i] == runs * i * i);
        orion_threadpool_free(pool);
    }
    /* NULL pool runs on the caller */
    int64_t out[10] = {0};
    pool_job job = {.n = 10, .out = out};
    orion_threadpool_run(NULL, pool_task, &job);
    assert_int_equal(atomic_load(&job.calls), 1);
    assert_int_equal(out[3], 9);
    orion_threadpool_free(NULL);

    orion_threadpool_params bad = orion_threadpool_default_params();
    bad.n_threads = -1;
    orion_threadpool *pool = NULL;
    assert_int_equal(orion_threadpool_init(&bad, &pool), ORION_ERR_INVALID_ARG);
    assert_null(pool);
}

/* ---- CPU features ------------------------------------------------------------ */

static void test_cpu_features(void **state) {
    (void)state;
    uint32_t f = orion_cpu_features();
    assert_int_equal(f, orion_cpu_features()); /* detected once, stable */
    char buf[256];
    orion_cpu_features_str(f, buf, sizeof buf);
#if defined(__x86_64__)
    /* every x86-64 CPU has SSE2; our detection must agree with the
     * compiler's own cpuid-based view of the CPU */
    __builtin_cpu_init();
    assert_int_equal(!!(f & ORION_CPU_AVX2), !!__builtin_cpu_supports("avx2"));
    assert_int_equal(!!(f & ORION_CPU_FMA), !!__builtin_cpu_supports("fma"));
    assert_int_equal(!!(f & ORION_CPU_AVX512F), !!__builtin_cpu_supports("avx512f"));
    assert_int_equal(!!(f & ORION_CPU_SSSE3), !!__builtin_cpu_supports("ssse3"));
    if (f & ORION_CPU_AVX2) assert_non_null(strstr(buf, "avx2"));
    const char *want = ((f & ORION_CPU_AVX2) && (f & ORION_CPU_FMA) && (f & ORION_CPU_F16C) &&
                        !orion__env_flag("ORION_FORCE_REF"))
                           ? "avx2"
                           : "ref";
    assert_string_equal(orion_kernels_name(), want);
#endif
    /* a tiny buffer is truncated, not overrun */
    char small[5];
    orion_cpu_features_str(0xffffffffu, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
    assert_true(orion_cpu_count() >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_last_error),
        cmocka_unit_test(test_logging),
        cmocka_unit_test(test_alloc_counts),
        cmocka_unit_test(test_alloc_failure_injection),
        cmocka_unit_test(test_constructors_under_oom),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_cpu_features),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
