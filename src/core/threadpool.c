/*
 * threadpool.c — a persistent pool of worker threads (compare ggml's
 * compute threads).
 *
 * orion_threadpool_run(pool, fn, arg) publishes (fn, arg) and bumps a
 * generation counter; every worker runs fn(arg, ith, nth) and decrements a
 * pending count; the caller runs ith == 0 itself and then waits for pending
 * to reach zero. Between runs workers spin on the generation counter for
 * spin_us (a decode step issues hundreds of runs a second, and waking a
 * sleeping thread costs tens of microseconds), then sleep on a condition
 * variable. Work splitting is the task's business: it gets (ith, nth).
 */
#include "core/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

typedef struct worker {
    struct orion_threadpool *pool;
    int                      ith;
    pthread_t                thread;
} worker;

struct orion_threadpool {
    int              n_threads;     /* including the caller */
    int              spin_us;
    worker          *workers;       /* n_threads - 1 of them */
    orion_task_fn    fn;
    void            *arg;
    _Atomic(uint64_t) generation;   /* bumped once per run */
    _Atomic(int)     pending;       /* workers still running this generation */
    _Atomic(bool)    stop;
    pthread_mutex_t  mu;
    pthread_cond_t   cv_work;       /* generation changed or stop */
    pthread_cond_t   cv_done;       /* pending reached zero */
};

int orion_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

orion_threadpool_params orion_threadpool_default_params(void) {
    orion_threadpool_params p = {0, 200};
    return p;
}

/* Spins until *counter differs from `seen` (returns true) or spin_us passes. */
static bool spin_until_changed(_Atomic(uint64_t) *counter, uint64_t seen, int spin_us) {
    uint64_t deadline = orion__now_ns() + (uint64_t)spin_us * 1000u;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(counter, memory_order_acquire) != seen) return true;
        cpu_relax();
        if ((i & 63) == 0 && orion__now_ns() > deadline) return false;
    }
}

static void *worker_main(void *p) {
    worker *w = p;
    orion_threadpool *pool = w->pool;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until_changed(&pool->generation, seen, pool->spin_us)) {
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv_work, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) break;
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        pool->fn(pool->arg, w->ith, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->cv_done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}

orion_status orion_threadpool_init(const orion_threadpool_params *params,
                                   orion_threadpool **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_threadpool_init: out is NULL");
    *out = NULL;
    orion_threadpool_params p = params ? *params : orion_threadpool_default_params();
    if (p.n_threads < 0 || p.n_threads > 1024)
        return orion__fail(ORION_ERR_INVALID_ARG, "threadpool: n_threads %d out of [0, 1024]", p.n_threads);
    if (p.n_threads == 0) p.n_threads = orion_cpu_count();
    if (p.spin_us < 0) p.spin_us = 0;

    orion_threadpool *pool = orion__calloc(1, sizeof *pool);
    if (!pool) return orion__fail(ORION_ERR_NOMEM, "threadpool: cannot allocate the handle");
    pool->n_threads = p.n_threads;
    pool->spin_us = p.spin_us;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv_work, NULL);
    pthread_cond_init(&pool->cv_done, NULL);
    if (p.n_threads > 1) {
        pool->workers = orion__calloc((size_t)p.n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) goto fail_nomem;
    }
    for (int i = 1; i < p.n_threads; i++) {
        worker *w = &pool->workers[i - 1];
        w->pool = pool;
        w->ith = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pool->n_threads = i; /* join the ones that started */
            orion_threadpool_free(pool);
            return orion__fail(ORION_ERR_NOMEM, "threadpool: cannot start thread %d of %d", i, p.n_threads);
        }
    }
    *out = pool;
    return ORION_OK;

fail_nomem:
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv_work);
    pthread_cond_destroy(&pool->cv_done);
    orion__free(pool);
    return orion__fail(ORION_ERR_NOMEM, "threadpool: cannot allocate %d workers", p.n_threads);
}

void orion_threadpool_free(orion_threadpool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i - 1].thread, NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv_work);
    pthread_cond_destroy(&pool->cv_done);
    orion__free(pool->workers);
    orion__free(pool);
}

int orion_threadpool_n_threads(const orion_threadpool *pool) {
    return pool ? pool->n_threads : 1;
}

void orion_threadpool_run(orion_threadpool *pool, orion_task_fn fn, void *arg) {
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);

    fn(arg, 0, pool->n_threads);

    uint64_t deadline = orion__now_ns() + (uint64_t)pool->spin_us * 1000u;
    for (unsigned i = 1; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 0 && orion__now_ns() > deadline) {
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->pending) > 0) pthread_cond_wait(&pool->cv_done, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
            break;
        }
    }
}
