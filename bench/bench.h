/*
 * bench.h — internal interface of `orion bench`: the machine-limit probes
 * (limits.c), the kernel measurements and their results (bench_kernels.c),
 * and the printers for the table and the JSON object (bench_report.c).
 *
 * Everything here runs on an orion_threadpool with (ith, nth) splitting, like
 * the kernels it measures. Times come from the monotonic clock; data comes
 * from a seeded generator, so every run multiplies the same matrices.
 */
#ifndef ORION_BENCH_H
#define ORION_BENCH_H

#include "orion.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Most threads a benchmark may use (per-thread sinks are sized by it). */
#define BENCH_MAX_THREADS 256

/* ---- small helpers (limits.c: clock, buffers, caches; bench_args.c: arguments, medians) */

/* Monotonic clock (CLOCK_MONOTONIC) in seconds. */
double bench_now(void);

/* Buffers of `bytes` bytes, 4096-byte aligned, taken from orion's counting
 * allocator so that orion_mem_get_stats() reports the benchmark's own memory
 * too. NULL on failure. bench_free(NULL) is a no-op. */
void *bench_alloc(size_t bytes);
void  bench_free(void *p);

/* Parses a whole decimal integer in [lo, hi]; false otherwise. */
bool bench_parse_int(const char *s, long lo, long hi, int *out);

/* FLAG V of `orion bench CMD`: V a whole number in [lo, hi] into *out, or
 * false after saying so on stderr. */
bool bench_int_option(const char *cmd, const char *flag, const char *v, long lo, long hi, int *out);

/* --shape NAME of `orion bench CMD`: the built-in decoder shape
 * (models/synth.h), or false after naming the shapes on stderr. */
struct orion_synth_shape;
bool bench_parse_shape(const char *cmd, const char *name, const struct orion_synth_shape **out);

/* The positional argument of `orion bench NAME` (the model): true when `a`
 * is taken as *model. false (the caller prints its usage) for a second
 * positional argument, or an option nobody recognized (said on stderr,
 * naming `name`). */
bool bench_take_model(const char *name, const char *a, const char **model);

/* --threads as given, or (0) the CPUs, at most BENCH_MAX_THREADS. */
int bench_threads(int threads);

/* Median of v[0..n) (sorts v in place); 0 when n <= 0. */
double bench_median(double *v, int n);

/* The q-th quantile (0..1, nearest rank) of v[0..n) (sorts v in place); 0
 * when n <= 0. */
double bench_quantile(double *v, int n, double q);

/* Size of the last-level (L3) cache in bytes, from sysfs, else sysconf;
 * 0 when unknown. */
size_t bench_l3_bytes(void);

/* Seeded generator (splitmix64): the same numbers on every machine. */
typedef struct bench_rng {
    uint64_t state;
} bench_rng;

static inline uint64_t bench_rng_u64(bench_rng *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float bench_rng_float(bench_rng *r) {
    return (float)(bench_rng_u64(r) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* ---- machine limits (limits.c) --------------------------------------------- */

/* Reads `bytes` bytes of buf on every thread of pool (each thread sums its
 * share with independent accumulators; AVX2 loads where the CPU has them) and
 * returns the elapsed seconds. Also used to push other data out of the caches. */
double bench_stream_read(orion_threadpool *pool, const void *buf, size_t bytes);

/* Fills buf (bytes) with a non-zero pattern on every thread of pool, so that
 * each page is touched (and faulted in) before anything is timed. */
void bench_stream_fill(orion_threadpool *pool, void *buf, size_t bytes);

/* Read bandwidth: streams a buffer of `bytes` bytes `reps` times and keeps the
 * best repetition. Returns ORION_ERR_NOMEM when the buffer cannot be had. */
typedef struct bench_bandwidth {
    double gbs;        /* best bytes / second / 1e9 */
    double best_s;     /* seconds of the best repetition */
    size_t bytes;      /* buffer size */
    int    reps;
    bool   avx2;       /* AVX2 loads (else 64-bit scalar loads) */
} bench_bandwidth;
orion_status bench_read_bandwidth(orion_threadpool *pool, size_t bytes, int reps,
                                  bench_bandwidth *out);

/* FMA peak: every thread runs a register-only loop of independent FMA chains
 * for about `seconds_per_rep` seconds, `reps` times; the best repetition is
 * kept. With AVX2+FMA each _mm256_fmadd_ps counts 16 flops; the scalar
 * fallback counts 2 flops per multiply-add. */
typedef struct bench_fma {
    double      gflops;  /* best flops / second / 1e9, all threads */
    int         reps;
    int         chains;  /* independent accumulators per thread */
    const char *kind;    /* "avx2+fma 256-bit" or "scalar mul+add" */
} bench_fma;
void bench_fma_peak(orion_threadpool *pool, double seconds_per_rep, int reps, bench_fma *out);

/* ---- results (bench_kernels.c fills them, bench_report.c prints them) ------- */

#define BENCH_N_TYPES     6
#define BENCH_N_MV_SHAPES 2
#define BENCH_N_BATCHES   2
#define BENCH_ERR_LEN     256

/* One matrix-vector case: n_out x n_in weights of one type, batch 1. */
typedef struct bench_matvec {
    orion_type type;
    int64_t    n_out, n_in;
    size_t     weight_bytes;  /* orion_type_row_bytes(type, n_in) * n_out */
    bool       fits_l3;       /* weight_bytes <= L3 size */
    double     cold_s;        /* median seconds per call, caches flushed before each */
    int        cold_runs;
    double     hot_s;         /* median seconds per call, back to back */
    int        hot_runs;
    bool       ran;           /* false: not run (error or skipped) */
    char       error[BENCH_ERR_LEN]; /* "" when it ran */
} bench_matvec;

/* One GEMM case: n_out x n_in weights times n_batch activation rows. */
typedef struct bench_gemm {
    orion_type type;
    int64_t    n_out, n_in, batch;
    double     s;             /* median seconds per call */
    int        runs;
    bool       ran;
    char       error[BENCH_ERR_LEN];
} bench_gemm;

typedef struct bench_results {
    /* run configuration and device */
    int    threads;
    int    cpus;
    bool   quick;
    char   cpu_features[256];
    const char *kernels;      /* orion_kernels_name() */
    size_t l3_bytes;
    size_t flush_bytes;       /* bytes read between cold calls to empty the caches */

    bench_bandwidth bw;       /* the better of the two measurements */
    bench_fma       fma;
    double bw_gbs_before, bw_gbs_after;         /* measured before / after the kernels */
    double fma_gflops_before, fma_gflops_after;

    orion_type   types[BENCH_N_TYPES];
    int64_t      mv_n_out[BENCH_N_MV_SHAPES];
    int64_t      n_in;
    int64_t      batches[BENCH_N_BATCHES];
    int64_t      gemm_n_out;
    bench_matvec mv[BENCH_N_MV_SHAPES][BENCH_N_TYPES];
    bench_gemm   gemm[BENCH_N_BATCHES][BENCH_N_TYPES];

    size_t scratch_bytes;     /* arena given to orion_matmul (0 = library heap) */
    orion_mem_stats mem;      /* orion_mem_get_stats() at the end */
    double total_s;           /* wall time of the whole run */
    bool   failed;            /* some measurement could not run */
} bench_results;

/* Finds the result of a type in a row of results, or NULL. */
const bench_matvec *bench_find_matvec(const bench_results *r, int shape, orion_type type);
const bench_gemm   *bench_find_gemm(const bench_results *r, int batch_index, orion_type type);

/* ---- report (bench_report.c) -------------------------------------------------- */

/* Human-readable tables, then the targets. */
void bench_print_table(FILE *f, const bench_results *r);
/* One JSON object with every number. */
void bench_print_json(FILE *f, const bench_results *r);

#endif /* ORION_BENCH_H */
