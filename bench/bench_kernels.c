/*
 * bench_kernels.c — `orion bench kernels [--json] [--threads N] [--quick]`:
 * measures the machine's limits and orion's matrix products beside them, in
 * one run, on one thread pool of N threads.
 *
 *   1. Read bandwidth (limits.c): a 1 GiB buffer (256 MiB with --quick)
 *      summed by every thread; best of several repetitions.
 *   2. FMA peak (limits.c): 12 independent FMA chains per thread in
 *      registers; best of several repetitions.
 *      Both are measured before and again after the kernels, and the best is
 *      kept: on a shared machine a burst of someone else's work during one of
 *      them would otherwise lower the yardstick the kernels are judged by.
 *   3. Matrix-vector products (orion_matmul, n_batch = 1) for f32, f16, bf16,
 *      q8_0, q4_0 and q4_1 weights, 4096 x 4096 and 14336 x 4096 (n_out x
 *      n_in). Each is timed twice: "cold", with a buffer of twice the L3 read
 *      between calls so the weights come from DRAM as they do in a model whose
 *      weights far exceed the caches, and "hot", back to back (a matrix that
 *      fits in L3 is then served from cache). GB/s counts weight bytes only.
 *   4. GEMM at batch 32 and 128 on 4096 x 4096 (1024 x 4096 with --quick),
 *      every type: GFLOP/s = 2 * n_out * n_in * batch / time.
 *   5. Encoder GEMM: M = 4096 rows (a batch of 32 texts x 128 tokens) times
 *      the matrices of a MiniLM-shaped BERT layer: 384 -> 384 (Q, K, V, O),
 *      384 -> 1536 (FFN up), 1536 -> 384 (FFN down) (n_in -> n_out), for
 *      f32, q8_0, q4_0 and q4_1 weights (M = 512 with --quick); GFLOP/s and
 *      the ratio to the FMA peak of the same run. Printed after the tables
 *      (text) or as "encoder_gemm" (JSON) by this file.
 *   6. The targets, PASS/MISS (informational; see bench_report.c).
 *
 * Weights are made with orion_quantize from seeded uniform data in [-1, 1);
 * the 4096-row matrices are the first rows of the 14336-row one. Each case
 * gets one warm-up call, then runs until a count or a time budget is reached
 * (at least a minimum count); the median is reported. orion_matmul draws its
 * scratch from an arena sized by orion_matmul_scratch_bytes(), reset before
 * each call, as a model would do per request. Every buffer comes from orion's
 * counting allocator, so the peak heap printed at the end is the run's total.
 *
 * Progress goes to stderr, results to stdout. Exit codes: 0 when everything
 * ran (whatever the targets say), 1 when something failed to run or could not
 * be allocated, 2 for a usage error.
 */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 64

/* What one run measures and how long it tries. */
typedef struct plan {
    bool   quick;
    bool   json;
    int    threads;
    size_t bw_bytes;      /* read-bandwidth buffer */
    int    bw_reps;
    double fma_rep_s;     /* seconds per FMA repetition */
    int    fma_reps;
    int    min_runs;      /* timed calls per case, after the warm-up ... */
    int    max_runs;
    double budget_s;      /* ... more than min_runs only while within this */
} plan;

static const orion_type BENCH_TYPES[BENCH_N_TYPES] = {
    ORION_TYPE_F32, ORION_TYPE_F16, ORION_TYPE_BF16,
    ORION_TYPE_Q8_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_1,
};

/* Progress on stderr, stamped with the seconds since the first call. */
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
    static double t0 = -1.0;
    double now = bench_now();
    if (t0 < 0.0) t0 = now;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "orion bench [%6.1f s]: ", now - t0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Formats an error message into dst (BENCH_ERR_LEN bytes), truncating. */
static void errorf(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errorf(char *dst, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, BENCH_ERR_LEN, fmt, ap);
    va_end(ap);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: orion bench kernels [--json] [--threads N] [--quick]\n"
            "\n"
            "Measures read bandwidth and FMA peak, then orion's matrix-vector and\n"
            "GEMM kernels beside them, and checks the performance targets.\n"
            "\n"
            "  --json        print one JSON object instead of tables\n"
            "  --threads N   threads to use (default: the CPUs this process may use, %d)\n"
            "  --quick       smaller buffers and fewer repetitions (a smoke run)\n",
            orion_cpu_count());
}

/* Returns 0, or 2 (usage error; message printed), or -1 (help printed). */
static int parse_args(int argc, char **argv, plan *p) {
    p->quick = false;
    p->json = false;
    p->threads = orion_cpu_count();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--json") == 0) {
            p->json = true;
        } else if (strcmp(a, "--quick") == 0) {
            p->quick = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "orion bench kernels: --threads needs a value\n");
                usage(stderr);
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(a, "--threads=", 10) == 0) {
            val = a + 10;
        } else {
            fprintf(stderr, "orion bench kernels: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (val) {
            char *end = NULL;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (errno != 0 || end == val || *end != '\0' || n < 1 || n > BENCH_MAX_THREADS) {
                fprintf(stderr, "orion bench kernels: --threads wants a number from 1 to %d, not '%s'\n",
                        BENCH_MAX_THREADS, val);
                usage(stderr);
                return 2;
            }
            p->threads = (int)n;
        }
    }
    if (p->quick) {
        p->bw_bytes = (size_t)256 << 20;
        p->bw_reps = 4;
        p->fma_rep_s = 0.02;
        p->fma_reps = 3;
        p->min_runs = 2;
        p->max_runs = 5;
        p->budget_s = 0.1;
    } else {
        p->bw_bytes = (size_t)1 << 30;
        p->bw_reps = 10;
        p->fma_rep_s = 0.1;
        p->fma_reps = 5;
        p->min_runs = 5;
        p->max_runs = 25;
        p->budget_s = 0.75;
    }
    if (p->threads > BENCH_MAX_THREADS) p->threads = BENCH_MAX_THREADS;
    return 0;
}

/* ---- data ----------------------------------------------------------------------- */

static void row_range(int64_t n, int ith, int nth, int64_t *begin, int64_t *end) {
    int64_t per = n / nth, extra = n % nth;
    *begin = ith * per + (ith < extra ? ith : extra);
    *end = *begin + per + (ith < extra ? 1 : 0);
}

/* Fills rows of floats; each row's numbers depend on (seed, row) only, so the
 * data is the same whatever the thread count. */
typedef struct gen_task {
    float   *x;        /* (n_rows, n_cols) */
    int64_t  n_rows, n_cols;
    uint64_t seed;
} gen_task;

static void gen_task_run(void *arg, int ith, int nth) {
    const gen_task *t = arg;
    int64_t r0, r1;
    row_range(t->n_rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        bench_rng g = {t->seed ^ ((uint64_t)r * 0xd1b54a32d192ed03ull)};
        float *row = t->x + r * t->n_cols;
        for (int64_t c = 0; c < t->n_cols; c++) row[c] = bench_rng_float(&g);
    }
}

/* Quantizes rows in parallel through the public orion_quantize (thread-safe);
 * a thread that fails keeps its own status and message. */
typedef struct quant_slot {
    orion_status st;
    char         msg[BENCH_ERR_LEN];
} quant_slot;

typedef struct quant_task {
    orion_type   type;
    const float *src;      /* (n_rows, n_per_row) */
    void        *dst;      /* n_rows * row_bytes */
    int64_t      n_rows, n_per_row;
    size_t       row_bytes;
    quant_slot   slot[BENCH_MAX_THREADS];
} quant_task;

static void quant_task_run(void *arg, int ith, int nth) {
    quant_task *t = arg;
    int64_t r0, r1;
    row_range(t->n_rows, ith, nth, &r0, &r1);
    quant_slot *s = &t->slot[ith];
    s->st = ORION_OK;
    s->msg[0] = '\0';
    if (r1 <= r0) return;
    s->st = orion_quantize(t->type, t->src + r0 * t->n_per_row,
                           (unsigned char *)t->dst + (size_t)r0 * t->row_bytes, r1 - r0,
                           t->n_per_row, NULL);
    if (s->st != ORION_OK) errorf(s->msg, "%s", orion_last_error());
}

/* ---- timing a matrix product ------------------------------------------------------ */

typedef struct mm_case {
    orion_threadpool *pool;
    orion_arena      *arena;    /* NULL: orion_matmul uses the library heap */
    orion_type        type;
    const void       *w;        /* (n_out, n_in) in type */
    int64_t           n_out, n_in, n_batch;
    const float      *x;        /* (n_batch, n_in) */
    float            *y;        /* (n_batch, n_out) */
} mm_case;

typedef struct flusher {
    orion_threadpool *pool;
    const void       *buf;
    size_t            bytes;
} flusher;

static orion_status mm_call(const mm_case *c) {
    if (c->arena) orion_arena_reset(c->arena);
    return orion_matmul(c->pool, c->arena, c->type, c->w, c->n_out, c->n_in, c->x, c->n_batch,
                        c->y);
}

/* One warm-up call, then timed calls (with the caches flushed before each
 * when fl is set): at least min_runs (1 when the warm-up alone took longer
 * than the budget), then more while within the budget, at most max_runs.
 * With --quick, a warm-up longer than the budget is itself the one sample.
 * On failure leaves a message in err. */
static orion_status time_case(const mm_case *c, const plan *p, const flusher *fl,
                              double *median_s, int *runs, char *err) {
    double samples[MAX_RUNS];
    if (fl) bench_stream_read(fl->pool, fl->buf, fl->bytes);
    double t0 = bench_now();
    orion_status st = mm_call(c);
    double warm = bench_now() - t0;
    int n = 0;
    if (st == ORION_OK && p->quick && warm > p->budget_s) {
        samples[n++] = warm; /* a smoke run of a slow kernel: one call is enough */
    } else if (st == ORION_OK) {
        int min_runs = warm > p->budget_s ? 1 : p->min_runs;
        int max_runs = p->max_runs < MAX_RUNS ? p->max_runs : MAX_RUNS;
        double start = bench_now();
        while (n < max_runs && (n < min_runs || bench_now() - start < p->budget_s)) {
            if (fl) bench_stream_read(fl->pool, fl->buf, fl->bytes);
            t0 = bench_now();
            st = mm_call(c);
            samples[n] = bench_now() - t0;
            if (st != ORION_OK) break;
            n++;
        }
    }
    if (st != ORION_OK) {
        const char *msg = orion_last_error();
        errorf(err, "orion_matmul: %s%s%s", orion_status_str(st), msg[0] ? ": " : "", msg);
        *median_s = 0.0;
        *runs = 0;
        return st;
    }
    *median_s = bench_median(samples, n);
    *runs = n;
    return ORION_OK;
}

static void oom(const char *what, size_t bytes);

/* ---- encoder GEMM shapes (section 5) --------------------------------------------------- */

#define ENC_N_TYPES  4
#define ENC_N_SHAPES 3

static const orion_type ENC_TYPES[ENC_N_TYPES] = {ORION_TYPE_F32, ORION_TYPE_Q8_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_1};
static const int64_t ENC_SHAPES[ENC_N_SHAPES][2] = {{384, 384}, {384, 1536}, {1536, 384}}; /* n_in, n_out */

typedef struct enc_gemm {
    orion_type type;
    int64_t    n_out, n_in, batch;
    double     s;      /* median seconds per call */
    int        runs;
    bool       ran;
    char       error[BENCH_ERR_LEN];
} enc_gemm;

typedef struct enc_results {
    int64_t  batch;
    enc_gemm g[ENC_N_TYPES][ENC_N_SHAPES];
    size_t   bytes;   /* buffers and scratch of the section */
} enc_results;

/* Runs section 5 on its own buffers (freed on return); false when they
 * cannot be had (nothing ran) or some case failed. */
static bool run_encoder_gemm(orion_threadpool *pool, const plan *p, int threads, enc_results *er) {
    memset(er, 0, sizeof *er);
    er->batch = p->quick ? 512 : 4096;
    const int64_t max_dim = 1536;
    size_t scratch = 0;
    for (int t = 0; t < ENC_N_TYPES; t++)
        for (int s = 0; s < ENC_N_SHAPES; s++) {
            enc_gemm *g = &er->g[t][s];
            g->type = ENC_TYPES[t];
            g->n_in = ENC_SHAPES[s][0];
            g->n_out = ENC_SHAPES[s][1];
            g->batch = er->batch;
            size_t b = orion_matmul_scratch_bytes(g->type, g->n_out, g->n_in, g->batch, threads);
            if (b > scratch) scratch = b;
        }
    const size_t act = (size_t)er->batch * (size_t)max_dim * sizeof(float);
    const size_t wsrc = (size_t)max_dim * 384 * sizeof(float);
    float *x = bench_alloc(act), *y = bench_alloc(act), *src = bench_alloc(wsrc);
    void *w = bench_alloc(wsrc);
    orion_arena *arena = NULL;
    bool ok = x && y && src && w && (scratch == 0 || orion_arena_init(scratch, &arena) == ORION_OK);
    er->bytes = 2 * act + 2 * wsrc + scratch;
    if (ok) {
        gen_task gx = {x, er->batch, max_dim, 0x656e636fULL};   /* "enco" */
        orion_threadpool_run(pool, gen_task_run, &gx);
        gen_task gw = {src, max_dim, 384, 0x77656967ULL};       /* "weig" */
        orion_threadpool_run(pool, gen_task_run, &gw);
        bench_stream_fill(pool, y, act);
        for (int t = 0; t < ENC_N_TYPES; t++) {
            progress("encoder GEMM, %s: %lld rows x 384->384, 384->1536, 1536->384", orion_type_name(ENC_TYPES[t]),
                     (long long)er->batch);
            for (int s = 0; s < ENC_N_SHAPES; s++) {
                enc_gemm *g = &er->g[t][s];
                /* src holds 1536 x 384 floats: any of the shapes' n_out x n_in */
                orion_status st = orion_quantize(g->type, src, w, g->n_out, g->n_in, NULL);
                if (st != ORION_OK) {
                    errorf(g->error, "orion_quantize: %s: %s", orion_status_str(st), orion_last_error());
                    ok = false;
                    continue;
                }
                mm_case c = {pool, arena, g->type, w, g->n_out, g->n_in, g->batch, x, y};
                if (time_case(&c, p, NULL, &g->s, &g->runs, g->error) != ORION_OK) {
                    ok = false;
                    continue;
                }
                g->ran = true;
            }
        }
    } else {
        oom("the encoder GEMM buffers", er->bytes);
    }
    orion_arena_free(arena);
    bench_free(w);
    bench_free(src);
    bench_free(y);
    bench_free(x);
    return ok;
}

static double enc_gflops(const enc_gemm *g) {
    return g->ran && g->s > 0 ? 2.0 * (double)g->n_out * (double)g->n_in * (double)g->batch / g->s * 1e-9 : 0.0;
}

static void print_encoder_table(FILE *f, const enc_results *er, double peak) {
    fprintf(f, "\nEncoder GEMM: %lld rows (batch x tokens) times a MiniLM layer's matrices;"
               " %% of the FMA peak (%.1f GFLOP/s)\n",
            (long long)er->batch, peak);
    fprintf(f, "  %-6s", "type");
    for (int s = 0; s < ENC_N_SHAPES; s++)
        fprintf(f, "   %4lld -> %-4lld        ", (long long)ENC_SHAPES[s][0], (long long)ENC_SHAPES[s][1]);
    fprintf(f, "\n");
    for (int t = 0; t < ENC_N_TYPES; t++) {
        fprintf(f, "  %-6s", orion_type_name(ENC_TYPES[t]));
        for (int s = 0; s < ENC_N_SHAPES; s++) {
            const enc_gemm *g = &er->g[t][s];
            if (g->ran)
                fprintf(f, "   %7.1f GFLOP/s %5.1f%%", enc_gflops(g),
                        peak > 0 ? 100.0 * enc_gflops(g) / peak : 0.0);
            else
                fprintf(f, "   %-22s", "failed");
        }
        fprintf(f, "\n");
    }
    for (int t = 0; t < ENC_N_TYPES; t++)
        for (int s = 0; s < ENC_N_SHAPES; s++)
            if (!er->g[t][s].ran && er->g[t][s].error[0])
                fprintf(f, "  %s: %s\n", orion_type_name(ENC_TYPES[t]), er->g[t][s].error);
}

/* The JSON array "encoder_gemm" (one object per case). */
static void print_encoder_json(FILE *f, const enc_results *er, double peak) {
    fprintf(f, "\"encoder_gemm\": [");
    bool first = true;
    for (int t = 0; t < ENC_N_TYPES; t++)
        for (int s = 0; s < ENC_N_SHAPES; s++) {
            const enc_gemm *g = &er->g[t][s];
            fprintf(f, "%s\n    {\"type\": \"%s\", \"batch\": %lld, \"n_in\": %lld, \"n_out\": %lld, \"ran\": %s",
                    first ? "" : ",", orion_type_name(g->type), (long long)g->batch, (long long)g->n_in,
                    (long long)g->n_out, g->ran ? "true" : "false");
            if (g->ran)
                fprintf(f, ", \"median_s\": %.6g, \"runs\": %d, \"achieved_gflops\": %.2f,"
                           " \"peak_ratio\": %.4f",
                        g->s, g->runs, enc_gflops(g), peak > 0 ? enc_gflops(g) / peak : 0.0);
            fprintf(f, "}");
            first = false;
        }
    fprintf(f, "\n  ]");
}

/* Prints the main JSON object with "encoder_gemm" added as its last member:
 * bench_report.c prints the object; its closing brace is replaced. */
static void print_json_with_encoder(FILE *f, const bench_results *r, const enc_results *er, bool enc_ran) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        bench_print_json(f, r);
        return;
    }
    bench_print_json(m, r);
    fclose(m);
    size_t end = len;
    while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == ' ')) end--;
    if (!enc_ran || end == 0 || buf[end - 1] != '}') {
        fwrite(buf, 1, len, f);
        free(buf);
        return;
    }
    fwrite(buf, 1, end - 1, f);
    fprintf(f, ",\n  ");
    print_encoder_json(f, er, r->fma.gflops);
    fprintf(f, "\n}\n");
    free(buf);
}

/* ---- the run ----------------------------------------------------------------------- */

const bench_matvec *bench_find_matvec(const bench_results *r, int shape, orion_type type) {
    for (int t = 0; t < BENCH_N_TYPES; t++)
        if (r->types[t] == type) return &r->mv[shape][t];
    return NULL;
}

const bench_gemm *bench_find_gemm(const bench_results *r, int batch_index, orion_type type) {
    for (int t = 0; t < BENCH_N_TYPES; t++)
        if (r->types[t] == type) return &r->gemm[batch_index][t];
    return NULL;
}

/* Marks every case of type index t as failed with msg (BENCH_ERR_LEN bytes). */
static void fail_type(bench_results *r, int t, const char *msg) {
    for (int s = 0; s < BENCH_N_MV_SHAPES; s++) memcpy(r->mv[s][t].error, msg, BENCH_ERR_LEN);
    for (int b = 0; b < BENCH_N_BATCHES; b++) memcpy(r->gemm[b][t].error, msg, BENCH_ERR_LEN);
    r->failed = true;
}

/* Runs every matrix-vector and GEMM case of type index t. w holds
 * max_rows x n_in weights of the type; the smaller matrices are its first
 * rows. */
static void run_type_cases(bench_results *r, const plan *p, int t, const void *w, mm_case base,
                           const flusher *fl) {
    base.type = r->types[t];
    base.w = w;
    for (int s = 0; s < BENCH_N_MV_SHAPES; s++) {
        bench_matvec *m = &r->mv[s][t];
        mm_case c = base;
        c.n_out = m->n_out;
        c.n_batch = 1;
        if (time_case(&c, p, fl, &m->cold_s, &m->cold_runs, m->error) != ORION_OK ||
            time_case(&c, p, NULL, &m->hot_s, &m->hot_runs, m->error) != ORION_OK) {
            r->failed = true;
            continue;
        }
        m->ran = true;
    }
    for (int b = 0; b < BENCH_N_BATCHES; b++) {
        bench_gemm *g = &r->gemm[b][t];
        mm_case c = base;
        c.n_out = g->n_out;
        c.n_batch = g->batch;
        if (time_case(&c, p, NULL, &g->s, &g->runs, g->error) != ORION_OK) {
            r->failed = true;
            continue;
        }
        g->ran = true;
    }
}

static void setup_results(bench_results *r, const plan *p) {
    memset(r, 0, sizeof *r);
    r->threads = p->threads;
    r->cpus = orion_cpu_count();
    r->quick = p->quick;
    orion_cpu_features_str(orion_cpu_features(), r->cpu_features, sizeof r->cpu_features);
    r->kernels = orion_kernels_name();
    r->l3_bytes = bench_l3_bytes();
    size_t flush = r->l3_bytes * 2;
    if (flush < ((size_t)64 << 20)) flush = (size_t)64 << 20;
    if (flush > ((size_t)1 << 30)) flush = (size_t)1 << 30;
    r->flush_bytes = flush;

    r->n_in = 4096;
    r->mv_n_out[0] = 4096;
    r->mv_n_out[1] = 14336;
    r->batches[0] = 32;
    r->batches[1] = 128;
    r->gemm_n_out = p->quick ? 1024 : 4096;
    for (int t = 0; t < BENCH_N_TYPES; t++) {
        r->types[t] = BENCH_TYPES[t];
        for (int s = 0; s < BENCH_N_MV_SHAPES; s++) {
            bench_matvec *m = &r->mv[s][t];
            m->type = BENCH_TYPES[t];
            m->n_out = r->mv_n_out[s];
            m->n_in = r->n_in;
            m->weight_bytes = orion_type_row_bytes(m->type, m->n_in) * (size_t)m->n_out;
            m->fits_l3 = r->l3_bytes > 0 && m->weight_bytes <= r->l3_bytes;
        }
        for (int b = 0; b < BENCH_N_BATCHES; b++) {
            bench_gemm *g = &r->gemm[b][t];
            g->type = BENCH_TYPES[t];
            g->n_out = r->gemm_n_out;
            g->n_in = r->n_in;
            g->batch = r->batches[b];
        }
    }
}

/* Largest scratch any case asks for. */
static size_t max_scratch(const bench_results *r) {
    size_t m = 0;
    for (int t = 0; t < BENCH_N_TYPES; t++) {
        for (int s = 0; s < BENCH_N_MV_SHAPES; s++) {
            size_t b = orion_matmul_scratch_bytes(r->types[t], r->mv_n_out[s], r->n_in, 1, r->threads);
            if (b > m) m = b;
        }
        for (int b = 0; b < BENCH_N_BATCHES; b++) {
            size_t v = orion_matmul_scratch_bytes(r->types[t], r->gemm_n_out, r->n_in, r->batches[b],
                                                  r->threads);
            if (v > m) m = v;
        }
    }
    return m;
}

static void oom(const char *what, size_t bytes) {
    fprintf(stderr, "orion bench kernels: out of memory: cannot allocate %zu bytes (%.1f MiB) for %s\n",
            bytes, (double)bytes / (1024.0 * 1024.0), what);
}

int orion_cli_bench_kernels(int argc, char **argv) {
    plan p;
    int rc = parse_args(argc, argv, &p);
    if (rc < 0) return 0;
    if (rc != 0) return rc;

    static bench_results res; /* large; one run per process */
    static enc_results enc;
    bool enc_ran = false;
    static quant_task qt;
    bench_results *r = &res;
    setup_results(r, &p);
    double t_start = bench_now();

    orion_threadpool *pool = NULL;
    void *flush_buf = NULL, *src = NULL, *w = NULL;
    float *x = NULL, *y = NULL;
    orion_arena *arena = NULL;
    char buf[128];
    rc = 1;

    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = p.threads;
    orion_status st = orion_threadpool_init(&tp, &pool);
    if (st != ORION_OK) {
        fprintf(stderr, "orion bench kernels: cannot start %d threads: %s: %s\n", p.threads,
                orion_status_str(st), orion_last_error());
        goto done;
    }
    progress("%d thread%s, kernels %s%s", p.threads, p.threads == 1 ? "" : "s", r->kernels,
             p.quick ? ", quick" : "");

    /* 1. read bandwidth */
    progress("read bandwidth (%zu MiB buffer)...", p.bw_bytes >> 20);
    if (bench_read_bandwidth(pool, p.bw_bytes, p.bw_reps, &r->bw) != ORION_OK) {
        oom("the read-bandwidth buffer", p.bw_bytes);
        goto done;
    }

    /* 2. FMA peak */
    progress("FMA peak...");
    bench_fma_peak(pool, p.fma_rep_s, p.fma_reps, &r->fma);
    r->bw_gbs_before = r->bw.gbs;
    r->fma_gflops_before = r->fma.gflops;

    /* buffers shared by every type */
    int64_t max_rows = r->mv_n_out[BENCH_N_MV_SHAPES - 1];
    if (r->gemm_n_out > max_rows) max_rows = r->gemm_n_out;
    int64_t max_batch = r->batches[BENCH_N_BATCHES - 1];
    size_t src_bytes = (size_t)max_rows * (size_t)r->n_in * sizeof(float);
    size_t x_bytes = (size_t)max_batch * (size_t)r->n_in * sizeof(float);
    size_t y_bytes = (size_t)max_batch * (size_t)max_rows * sizeof(float);

    flush_buf = bench_alloc(r->flush_bytes);
    if (!flush_buf) {
        oom("the cache-flush buffer", r->flush_bytes);
        goto done;
    }
    bench_stream_fill(pool, flush_buf, r->flush_bytes);
    src = bench_alloc(src_bytes);
    if (!src) {
        oom("the source weights", src_bytes);
        goto done;
    }
    x = bench_alloc(x_bytes);
    if (!x) {
        oom("the activations", x_bytes);
        goto done;
    }
    y = bench_alloc(y_bytes);
    if (!y) {
        oom("the outputs", y_bytes);
        goto done;
    }
    bench_stream_fill(pool, y, y_bytes);
    gen_task gw = {src, max_rows, r->n_in, 0x6f72696f6eull};   /* "orion" */
    orion_threadpool_run(pool, gen_task_run, &gw);
    gen_task gx = {x, max_batch, r->n_in, 0x61637473ull};      /* "acts" */
    orion_threadpool_run(pool, gen_task_run, &gx);

    r->scratch_bytes = max_scratch(r);
    if (r->scratch_bytes > 0) {
        st = orion_arena_init(r->scratch_bytes, &arena);
        if (st != ORION_OK) {
            oom("the orion_matmul scratch arena", r->scratch_bytes);
            goto done;
        }
    }

    flusher fl = {pool, flush_buf, r->flush_bytes};
    mm_case base = {pool, arena, ORION_TYPE_F32, NULL, 0, r->n_in, 1, x, y};

    /* 3 and 4: every type, one weight buffer at a time */
    for (int t = 0; t < BENCH_N_TYPES; t++) {
        orion_type type = r->types[t];
        size_t row_bytes = orion_type_row_bytes(type, r->n_in);
        size_t w_bytes = row_bytes * (size_t)max_rows;
        progress("%s: quantize %lld x %lld, then matrix-vector and GEMM", orion_type_name(type),
                 (long long)max_rows, (long long)r->n_in);
        w = bench_alloc(w_bytes);
        if (!w) {
            snprintf(buf, sizeof buf, "the %s weights", orion_type_name(type));
            oom(buf, w_bytes);
            goto done;
        }
        qt.type = type;
        qt.src = src;
        qt.dst = w;
        qt.n_rows = max_rows;
        qt.n_per_row = r->n_in;
        qt.row_bytes = row_bytes;
        orion_threadpool_run(pool, quant_task_run, &qt);
        bool quant_ok = true;
        for (int i = 0; i < p.threads && quant_ok; i++) {
            if (qt.slot[i].st != ORION_OK) {
                char msg[BENCH_ERR_LEN];
                errorf(msg, "orion_quantize: %s%s%s", orion_status_str(qt.slot[i].st),
                       qt.slot[i].msg[0] ? ": " : "", qt.slot[i].msg);
                fail_type(r, t, msg);
                quant_ok = false;
            }
        }
        if (quant_ok) run_type_cases(r, &p, t, w, base, &fl);
        bench_free(w);
        w = NULL;
    }

    /* the limits again, after the kernels (with their buffers freed): the best
     * of both is kept, so a burst of load from other processes during one of
     * them does not lower the yardstick; both are reported */
    bench_free(y);
    bench_free(x);
    bench_free(src);
    bench_free(flush_buf);
    y = x = NULL;
    src = flush_buf = NULL;
    /* 5. the encoder shapes, on buffers of their own */
    enc_ran = true;
    if (!run_encoder_gemm(pool, &p, p.threads, &enc)) r->failed = true;
    progress("read bandwidth and FMA peak again...");
    bench_bandwidth bw2;
    bench_fma fma2;
    if (bench_read_bandwidth(pool, p.bw_bytes, p.bw_reps, &bw2) != ORION_OK) {
        oom("the read-bandwidth buffer", p.bw_bytes);
        goto done;
    }
    bench_fma_peak(pool, p.fma_rep_s, p.fma_reps, &fma2);
    r->bw_gbs_after = bw2.gbs;
    r->fma_gflops_after = fma2.gflops;
    if (bw2.gbs > r->bw.gbs) r->bw = bw2;
    if (fma2.gflops > r->fma.gflops) r->fma = fma2;

    rc = r->failed ? 1 : 0;
    if (r->failed) fprintf(stderr, "orion bench kernels: some measurements failed to run (see the results)\n");

done:
    orion_arena_free(arena);
    bench_free(w);
    bench_free(y);
    bench_free(x);
    bench_free(src);
    bench_free(flush_buf);
    orion_threadpool_free(pool);
    if (rc == 0 || r->failed) {
        /* everything that ran is reported, failures included */
        orion_mem_get_stats(&r->mem);
        r->total_s = bench_now() - t_start;
        progress("done in %.1f s", r->total_s);
        if (p.json) {
            print_json_with_encoder(stdout, r, &enc, enc_ran);
        } else {
            bench_print_table(stdout, r);
            if (enc_ran) print_encoder_table(stdout, &enc, r->fma.gflops);
        }
        fflush(stdout);
    }
    return rc;
}
