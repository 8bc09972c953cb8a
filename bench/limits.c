/*
 * limits.c — the machine's own limits, measured the way a kernel would see
 * them, so that orion's figures can be put beside them:
 *
 *   Read bandwidth: a buffer much larger than the caches is filled first (so
 *   every page is faulted in), then each thread of the pool sums its share of
 *   it with eight independent accumulators (AVX2 32-byte loads when the CPU
 *   has AVX2, else 64-bit loads). bytes / seconds of the best repetition.
 *
 *   FMA peak: each thread runs a loop of 12 independent _mm256_fmadd_ps chains
 *   on registers only. Zen 3 and recent Intel cores issue two FMAs a cycle
 *   with a latency of 4 to 5 cycles, so at least 8 to 10 chains in flight are
 *   needed to keep both pipes busy; 12 leaves margin and still fits the 16 YMM
 *   registers with the two constants. 16 flops per FMA (8 lanes x 2). The
 *   chains converge to a fixed point (a = a*b + c with b < 1), so no value
 *   overflows or becomes denormal. Without AVX2+FMA a scalar multiply-add loop
 *   stands in (2 flops each).
 *
 * The SIMD functions carry __attribute__((target(...))) because the bench
 * files are compiled without -mavx2; they are called only when
 * orion_cpu_features() reports the features.
 */
#include "bench.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

/* ---- helpers ------------------------------------------------------------------ */

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *bench_alloc(size_t bytes) {
    return orion__malloc_aligned(bytes ? bytes : 1, 4096);
}

void bench_free(void *p) {
    orion__free_aligned(p);
}

size_t bench_l3_bytes(void) {
    /* sysfs first: glibc's sysconf figure is unreliable on some AMD parts
     * and in VMs (it may report the whole package or a multiple of it). */
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (f) {
        char buf[64] = {0};
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *end = NULL;
        unsigned long long v = strtoull(buf, &end, 10);
        if (end != buf && v > 0) {
            if (*end == 'K' || *end == 'k') v *= 1024ull;
            else if (*end == 'M' || *end == 'm') v *= 1024ull * 1024ull;
            return (size_t)v;
        }
    }
#ifdef _SC_LEVEL3_CACHE_SIZE
    long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v > 0) return (size_t)v;
#endif
    return 0;
}

/* Per-thread results padded to a cache line each, so threads do not share
 * lines while they write their sums. */
typedef struct padded_sink {
    uint64_t u;
    double   d;
    char     pad[64 - sizeof(uint64_t) - sizeof(double)];
} padded_sink;

/* The [begin, end) byte range of thread ith: shares are multiples of 4096
 * bytes, the last thread takes the remainder. */
static void share(size_t bytes, int ith, int nth, size_t *begin, size_t *end) {
    size_t pages = bytes / 4096;
    size_t per = pages / (size_t)nth;
    size_t extra = pages % (size_t)nth;
    size_t i = (size_t)ith;
    size_t b = i * per + (i < extra ? i : extra);
    size_t e = b + per + (i < extra ? 1 : 0);
    *begin = b * 4096;
    *end = (ith == nth - 1) ? bytes : e * 4096;
}

/* ---- streaming read ------------------------------------------------------------- */

static uint64_t sum_scalar(const unsigned char *p, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint64_t w[8];
        memcpy(w, p + i, sizeof w);
        s0 += w[0];
        s1 += w[1];
        s2 += w[2];
        s3 += w[3];
        s4 += w[4];
        s5 += w[5];
        s6 += w[6];
        s7 += w[7];
    }
    for (; i < n; i++) s0 += p[i];
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

#if defined(BENCH_X86)
/* Unaligned loads: as fast as aligned ones on aligned data (the buffers here
 * are page-aligned), and safe on any other. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const unsigned char *p, size_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    __m256i s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    size_t i = 0;
    for (; i + 256 <= n; i += 256) {
        const __m256i *q = (const __m256i *)(const void *)(p + i);
        s0 = _mm256_add_epi64(s0, _mm256_loadu_si256(q + 0));
        s1 = _mm256_add_epi64(s1, _mm256_loadu_si256(q + 1));
        s2 = _mm256_add_epi64(s2, _mm256_loadu_si256(q + 2));
        s3 = _mm256_add_epi64(s3, _mm256_loadu_si256(q + 3));
        s4 = _mm256_add_epi64(s4, _mm256_loadu_si256(q + 4));
        s5 = _mm256_add_epi64(s5, _mm256_loadu_si256(q + 5));
        s6 = _mm256_add_epi64(s6, _mm256_loadu_si256(q + 6));
        s7 = _mm256_add_epi64(s7, _mm256_loadu_si256(q + 7));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    s4 = _mm256_add_epi64(_mm256_add_epi64(s4, s5), _mm256_add_epi64(s6, s7));
    s0 = _mm256_add_epi64(s0, s4);
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)(void *)lanes, s0);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_scalar(p + i, n - i);
}
#endif

static bool have_avx2(void) {
    return (orion_cpu_features() & ORION_CPU_AVX2) != 0;
}

typedef struct stream_task {
    const unsigned char *buf;
    unsigned char       *wbuf;  /* fill target (fill task only) */
    size_t               bytes;
    bool                 avx2;
    padded_sink          sink[BENCH_MAX_THREADS];
} stream_task;

static void stream_read_task(void *arg, int ith, int nth) {
    stream_task *t = arg;
    size_t b, e;
    share(t->bytes, ith, nth, &b, &e);
    uint64_t s;
#if defined(BENCH_X86)
    if (t->avx2)
        s = sum_avx2(t->buf + b, e - b);
    else
#endif
        s = sum_scalar(t->buf + b, e - b);
    if (ith < BENCH_MAX_THREADS) t->sink[ith].u = s;
}

static void stream_fill_task(void *arg, int ith, int nth) {
    stream_task *t = arg;
    size_t b, e;
    share(t->bytes, ith, nth, &b, &e);
    memset(t->wbuf + b, 0x5a + ith, e - b);
}

static volatile uint64_t stream_sink; /* keeps the sums observable */

double bench_stream_read(orion_threadpool *pool, const void *buf, size_t bytes) {
    static stream_task t; /* large (the sinks); one stream at a time */
    t.buf = buf;
    t.wbuf = NULL;
    t.bytes = bytes;
    t.avx2 = have_avx2();
    double t0 = bench_now();
    orion_threadpool_run(pool, stream_read_task, &t);
    double dt = bench_now() - t0;
    uint64_t s = 0;
    int nth = pool ? orion_threadpool_n_threads(pool) : 1;
    for (int i = 0; i < nth && i < BENCH_MAX_THREADS; i++) s += t.sink[i].u;
    stream_sink = s;
    return dt;
}

void bench_stream_fill(orion_threadpool *pool, void *buf, size_t bytes) {
    static stream_task t;
    t.buf = NULL;
    t.wbuf = buf;
    t.bytes = bytes;
    orion_threadpool_run(pool, stream_fill_task, &t);
}

orion_status bench_read_bandwidth(orion_threadpool *pool, size_t bytes, int reps,
                                  bench_bandwidth *out) {
    memset(out, 0, sizeof *out);
    unsigned char *buf = bench_alloc(bytes);
    if (!buf) return ORION_ERR_NOMEM;
    bench_stream_fill(pool, buf, bytes);
    bench_stream_read(pool, buf, bytes); /* warm-up: TLB, pool threads awake */
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        double dt = bench_stream_read(pool, buf, bytes);
        if (r == 0 || dt < best) best = dt;
    }
    bench_free(buf);
    out->best_s = best;
    out->bytes = bytes;
    out->reps = reps;
    out->avx2 = have_avx2();
    out->gbs = best > 0.0 ? (double)bytes / best / 1e9 : 0.0;
    return ORION_OK;
}

/* ---- FMA peak ------------------------------------------------------------------ */

#define FMA_CHAINS 12

#if defined(BENCH_X86)
__attribute__((target("avx2,fma"))) static double fma_loop_avx2(int64_t iters) {
    const __m256 b = _mm256_set1_ps(0.999f);
    const __m256 c = _mm256_set1_ps(0.001f);
    __m256 a0 = _mm256_set1_ps(0.10f), a1 = _mm256_set1_ps(0.11f), a2 = _mm256_set1_ps(0.12f);
    __m256 a3 = _mm256_set1_ps(0.13f), a4 = _mm256_set1_ps(0.14f), a5 = _mm256_set1_ps(0.15f);
    __m256 a6 = _mm256_set1_ps(0.16f), a7 = _mm256_set1_ps(0.17f), a8 = _mm256_set1_ps(0.18f);
    __m256 a9 = _mm256_set1_ps(0.19f), a10 = _mm256_set1_ps(0.20f), a11 = _mm256_set1_ps(0.21f);
    for (int64_t i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, b, c);
        a1 = _mm256_fmadd_ps(a1, b, c);
        a2 = _mm256_fmadd_ps(a2, b, c);
        a3 = _mm256_fmadd_ps(a3, b, c);
        a4 = _mm256_fmadd_ps(a4, b, c);
        a5 = _mm256_fmadd_ps(a5, b, c);
        a6 = _mm256_fmadd_ps(a6, b, c);
        a7 = _mm256_fmadd_ps(a7, b, c);
        a8 = _mm256_fmadd_ps(a8, b, c);
        a9 = _mm256_fmadd_ps(a9, b, c);
        a10 = _mm256_fmadd_ps(a10, b, c);
        a11 = _mm256_fmadd_ps(a11, b, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    a4 = _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7));
    a8 = _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11));
    a0 = _mm256_add_ps(_mm256_add_ps(a0, a4), a8);
    float lanes[8];
    _mm256_storeu_ps(lanes, a0);
    double s = 0.0;
    for (int i = 0; i < 8; i++) s += lanes[i];
    return s;
}
#endif

static double fma_loop_scalar(int64_t iters) {
    const float b = 0.999f, c = 0.001f;
    float a0 = 0.10f, a1 = 0.11f, a2 = 0.12f, a3 = 0.13f, a4 = 0.14f, a5 = 0.15f;
    float a6 = 0.16f, a7 = 0.17f, a8 = 0.18f, a9 = 0.19f, a10 = 0.20f, a11 = 0.21f;
    for (int64_t i = 0; i < iters; i++) {
        a0 = a0 * b + c;
        a1 = a1 * b + c;
        a2 = a2 * b + c;
        a3 = a3 * b + c;
        a4 = a4 * b + c;
        a5 = a5 * b + c;
        a6 = a6 * b + c;
        a7 = a7 * b + c;
        a8 = a8 * b + c;
        a9 = a9 * b + c;
        a10 = a10 * b + c;
        a11 = a11 * b + c;
    }
    return (double)(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
}

static bool have_fma(void) {
    const uint32_t need = ORION_CPU_AVX2 | ORION_CPU_FMA;
    return (orion_cpu_features() & need) == need;
}

typedef struct fma_task {
    int64_t     iters;
    bool        simd;
    padded_sink sink[BENCH_MAX_THREADS];
} fma_task;

static void fma_run_task(void *arg, int ith, int nth) {
    ORION_UNUSED(nth);
    fma_task *t = arg;
    double s;
#if defined(BENCH_X86)
    if (t->simd)
        s = fma_loop_avx2(t->iters);
    else
#endif
        s = fma_loop_scalar(t->iters);
    if (ith < BENCH_MAX_THREADS) t->sink[ith].d = s;
}

static volatile double fma_sink;

static double fma_time(orion_threadpool *pool, fma_task *t) {
    double t0 = bench_now();
    orion_threadpool_run(pool, fma_run_task, t);
    double dt = bench_now() - t0;
    fma_sink = t->sink[0].d;
    return dt;
}

void bench_fma_peak(orion_threadpool *pool, double seconds_per_rep, int reps, bench_fma *out) {
    static fma_task t;
    memset(out, 0, sizeof *out);
    t.simd = have_fma();
    int nth = pool ? orion_threadpool_n_threads(pool) : 1;
    double flops_per_iter = FMA_CHAINS * (t.simd ? 16.0 : 2.0);

    /* calibrate: grow the loop until it runs for a measurable time */
    t.iters = 1 << 16;
    double dt = fma_time(pool, &t);
    while (dt < 0.01 && t.iters < ((int64_t)1 << 40)) {
        t.iters *= 4;
        dt = fma_time(pool, &t);
    }
    double scale = dt > 0.0 ? seconds_per_rep / dt : 1.0;
    if (scale > 1.0) t.iters = (int64_t)((double)t.iters * scale);

    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        dt = fma_time(pool, &t);
        if (r == 0 || dt < best) best = dt;
    }
    out->reps = reps;
    out->chains = FMA_CHAINS;
    out->kind = t.simd ? "avx2+fma 256-bit" : "scalar mul+add";
    out->gflops = best > 0.0 ? flops_per_iter * (double)t.iters * nth / best / 1e9 : 0.0;
}
