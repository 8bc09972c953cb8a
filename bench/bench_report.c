/*
 * bench_report.c — prints the results of `orion bench kernels`: a table for
 * people, or one JSON object (written by hand with fprintf; strings escaped,
 * non-finite numbers and cases that did not run written as null).
 *
 * Also evaluates the targets of the kernel work, stated for this 2-core
 * machine at 2 threads (informational; they never change the exit code):
 *   - q4_0 and q8_0 matrix-vector (14336 x 4096, cold caches) >= 80% of the
 *     measured read bandwidth;
 *   - f32 GEMM >= 60% of the measured FMA peak;
 *   - int8 GEMM (q8_0, q4_0) >= 1.8x the f32 GEMM.
 * The GEMM targets are checked at each batch size. The limits are measured
 * before and after the kernels; when the two disagree by more than 15% the
 * report says the machine was busy and the ratios are unreliable.
 */
#include "bench.h"

#include <math.h>
#include <string.h>

/* ---- derived numbers ---------------------------------------------------------- */

static double mv_gbs(const bench_matvec *m, double s) {
    return (m && m->ran && s > 0.0) ? (double)m->weight_bytes / s / 1e9 : NAN;
}

static double gemm_gflops(const bench_gemm *g) {
    return (g && g->ran && g->s > 0.0)
               ? 2.0 * (double)g->n_out * (double)g->n_in * (double)g->batch / g->s / 1e9
               : NAN;
}

static double ratio(double a, double b) {
    return (isfinite(a) && isfinite(b) && b > 0.0) ? a / b : NAN;
}

/* True when the before and after measurements of both limits agree within
 * 15%: otherwise other work on the machine disturbed the run, and every
 * ratio to the limits (and every target) is suspect. */
static bool limits_stable(const bench_results *r) {
    double b = fmin(r->bw_gbs_before, r->bw_gbs_after), bm = fmax(r->bw_gbs_before, r->bw_gbs_after);
    double f = fmin(r->fma_gflops_before, r->fma_gflops_after);
    double fm = fmax(r->fma_gflops_before, r->fma_gflops_after);
    return bm > 0.0 && fm > 0.0 && b >= 0.85 * bm && f >= 0.85 * fm;
}

typedef struct target {
    char   name[64];    /* JSON key-like identifier */
    char   what[96];    /* what is measured, for the table */
    double value;       /* NAN when it could not be measured */
    double goal;
    bool   percent;     /* print value and goal as percentages (else as "x") */
} target;

#define MAX_TARGETS 8

static int collect_targets(const bench_results *r, target *out) {
    int n = 0;
    const int big = BENCH_N_MV_SHAPES - 1;
    const orion_type mv_types[2] = {ORION_TYPE_Q4_0, ORION_TYPE_Q8_0};
    for (int i = 0; i < 2; i++) {
        const bench_matvec *m = bench_find_matvec(r, big, mv_types[i]);
        target *t = &out[n++];
        snprintf(t->name, sizeof t->name, "matvec_%s_vs_read_bw", orion_type_name(mv_types[i]));
        snprintf(t->what, sizeof t->what, "matvec %s %lldx%lld cold, of read BW",
                 orion_type_name(mv_types[i]), (long long)r->mv_n_out[big], (long long)r->n_in);
        t->value = ratio(mv_gbs(m, m ? m->cold_s : 0.0), r->bw.gbs);
        t->goal = 0.80;
        t->percent = true;
    }
    for (int b = 0; b < BENCH_N_BATCHES; b++) {
        const bench_gemm *f = bench_find_gemm(r, b, ORION_TYPE_F32);
        target *t = &out[n++];
        snprintf(t->name, sizeof t->name, "gemm_f32_b%lld_vs_fma_peak", (long long)r->batches[b]);
        snprintf(t->what, sizeof t->what, "gemm f32 batch %lld, of FMA peak", (long long)r->batches[b]);
        t->value = ratio(gemm_gflops(f), r->fma.gflops);
        t->goal = 0.60;
        t->percent = true;
    }
    const orion_type int8_types[2] = {ORION_TYPE_Q8_0, ORION_TYPE_Q4_0};
    for (int i = 0; i < 2; i++) {
        for (int b = 0; b < BENCH_N_BATCHES; b++) {
            const bench_gemm *f = bench_find_gemm(r, b, ORION_TYPE_F32);
            const bench_gemm *q = bench_find_gemm(r, b, int8_types[i]);
            target *t = &out[n++];
            snprintf(t->name, sizeof t->name, "gemm_%s_b%lld_vs_f32", orion_type_name(int8_types[i]),
                     (long long)r->batches[b]);
            snprintf(t->what, sizeof t->what, "gemm %s batch %lld, vs f32 gemm",
                     orion_type_name(int8_types[i]), (long long)r->batches[b]);
            t->value = ratio(gemm_gflops(q), gemm_gflops(f));
            t->goal = 1.8;
            t->percent = false;
        }
    }
    return n;
}

/* ---- table ---------------------------------------------------------------------- */

static void put_num(FILE *f, int width, int prec, double v) {
    if (isfinite(v))
        fprintf(f, " %*.*f", width, prec, v);
    else
        fprintf(f, " %*s", width, "-");
}

static void put_pct(FILE *f, int width, double v) {
    if (isfinite(v))
        fprintf(f, " %*.1f%%", width - 1, 100.0 * v);
    else
        fprintf(f, " %*s", width, "-");
}

void bench_print_table(FILE *f, const bench_results *r) {
    double mib = 1024.0 * 1024.0;
    fprintf(f, "orion %s  bench kernels: kernels %s, %d thread%s (%d CPUs), L3 %.1f MiB%s\n",
            orion_version(), r->kernels, r->threads, r->threads == 1 ? "" : "s", r->cpus,
            (double)r->l3_bytes / mib, r->quick ? ", --quick" : "");
    fprintf(f, "cpu features: %s\n\n", r->cpu_features);

    fprintf(f, "Machine limits\n");
    fprintf(f, "  read bandwidth %10.2f GB/s      best of %d over a %zu MiB buffer, %s loads\n",
            r->bw.gbs, r->bw.reps, r->bw.bytes >> 20, r->bw.avx2 ? "avx2" : "64-bit scalar");
    fprintf(f, "                 %10s             (before the kernels %.2f, after %.2f)\n", "",
            r->bw_gbs_before, r->bw_gbs_after);
    fprintf(f, "  FMA peak       %10.2f GFLOP/s   best of %d, %d chains/thread, %s\n", r->fma.gflops,
            r->fma.reps, r->fma.chains, r->fma.kind);
    fprintf(f, "                 %10s             (before the kernels %.2f, after %.2f)\n", "",
            r->fma_gflops_before, r->fma_gflops_after);
    if (!limits_stable(r))
        fprintf(f, "  WARNING: the limits moved by more than 15%% between the two measurements:\n"
                   "  other work was running on this machine; ratios and targets are unreliable\n");
    fputc('\n', f);

    fprintf(f, "Matrix-vector, n_batch = 1  (GB/s = weight bytes / time per call; median of runs)\n");
    fprintf(f, "  cold: %zu MiB read between calls, so weights come from DRAM; hot: back to back\n",
            r->flush_bytes >> 20);
    fprintf(f, "  %-5s %13s %10s %6s %9s %9s %8s %9s %9s %8s\n", "type", "n_out x n_in", "weight MB",
            "in L3", "cold ms", "cold GB/s", "of BW", "hot ms", "hot GB/s", "of BW");
    for (int s = 0; s < BENCH_N_MV_SHAPES; s++) {
        for (int t = 0; t < BENCH_N_TYPES; t++) {
            const bench_matvec *m = &r->mv[s][t];
            fprintf(f, "  %-5s %6lld x %4lld %10.2f %6s", orion_type_name(m->type), (long long)m->n_out,
                    (long long)m->n_in, (double)m->weight_bytes / 1e6, m->fits_l3 ? "fits" : "no");
            if (!m->ran) {
                fprintf(f, "  error: %s\n", m->error[0] ? m->error : "not run");
                continue;
            }
            double cold = mv_gbs(m, m->cold_s), hot = mv_gbs(m, m->hot_s);
            put_num(f, 9, 3, m->cold_s * 1e3);
            put_num(f, 9, 2, cold);
            put_pct(f, 8, ratio(cold, r->bw.gbs));
            put_num(f, 9, 3, m->hot_s * 1e3);
            put_num(f, 9, 2, hot);
            put_pct(f, 8, ratio(hot, r->bw.gbs));
            fputc('\n', f);
        }
    }
    fprintf(f, "  (\"fits\": the matrix is no larger than L3, so hot calls may be served from cache)\n\n");

    fprintf(f, "GEMM, %lld x %lld weights  (GFLOP/s = 2 * n_out * n_in * batch / time per call)\n",
            (long long)r->gemm_n_out, (long long)r->n_in);
    fprintf(f, "  %-5s %6s %10s %9s %11s %8s\n", "type", "batch", "ms", "GFLOP/s", "of FMA peak",
            "vs f32");
    for (int b = 0; b < BENCH_N_BATCHES; b++) {
        double f32 = gemm_gflops(bench_find_gemm(r, b, ORION_TYPE_F32));
        for (int t = 0; t < BENCH_N_TYPES; t++) {
            const bench_gemm *g = &r->gemm[b][t];
            fprintf(f, "  %-5s %6lld", orion_type_name(g->type), (long long)g->batch);
            if (!g->ran) {
                fprintf(f, "  error: %s\n", g->error[0] ? g->error : "not run");
                continue;
            }
            double gf = gemm_gflops(g);
            put_num(f, 10, 3, g->s * 1e3);
            put_num(f, 9, 2, gf);
            put_pct(f, 11, ratio(gf, r->fma.gflops));
            double vs = ratio(gf, f32);
            if (isfinite(vs))
                fprintf(f, " %7.2fx\n", vs);
            else
                fprintf(f, " %8s\n", "-");
        }
    }
    fputc('\n', f);

    target tg[MAX_TARGETS];
    int nt = collect_targets(r, tg);
    fprintf(f, "Targets (stated for this 2-core machine at 2 threads; this run: %d thread%s)\n",
            r->threads, r->threads == 1 ? "" : "s");
    for (int i = 0; i < nt; i++) {
        const target *t = &tg[i];
        char goal[32], val[32];
        if (t->percent) {
            snprintf(goal, sizeof goal, ">= %.0f%%", 100.0 * t->goal);
            if (isfinite(t->value))
                snprintf(val, sizeof val, "%.1f%%", 100.0 * t->value);
            else
                snprintf(val, sizeof val, "-");
        } else {
            snprintf(goal, sizeof goal, ">= %.1fx", t->goal);
            if (isfinite(t->value))
                snprintf(val, sizeof val, "%.2fx", t->value);
            else
                snprintf(val, sizeof val, "-");
        }
        const char *verdict = !isfinite(t->value) ? "n/a" : (t->value >= t->goal ? "PASS" : "MISS");
        fprintf(f, "  %-40s %-8s measured %8s  %s\n", t->what, goal, val, verdict);
    }
    fputc('\n', f);

    fprintf(f, "Peak heap %.1f MiB (orion_mem_get_stats: the benchmark's buffers and orion's own)\n",
            (double)r->mem.bytes_peak / mib);
    if (r->scratch_bytes > 0)
        fprintf(f, "orion_matmul scratch arena %.2f MiB (orion_matmul_scratch_bytes)\n",
                (double)r->scratch_bytes / mib);
    else
        fprintf(f, "orion_matmul scratch: none asked (orion_matmul_scratch_bytes = 0)\n");
    fprintf(f, "Total %.1f s%s\n", r->total_s, r->failed ? "; SOME MEASUREMENTS FAILED" : "");
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

static void json_err(FILE *f, bool ran, const char *err) {
    if (ran)
        fputs("null", f);
    else
        json_str(f, err[0] ? err : "not run");
}

void bench_print_json(FILE *f, const bench_results *r) {
    fprintf(f, "{\n");
    fprintf(f, "  \"orion_version\": ");
    json_str(f, orion_version());
    fprintf(f, ",\n  \"device\": {\"cpu_features\": ");
    json_str(f, r->cpu_features);
    fprintf(f, ", \"kernels\": ");
    json_str(f, r->kernels);
    fprintf(f, ", \"threads\": %d, \"cpus\": %d, \"l3_bytes\": %zu},\n", r->threads, r->cpus,
            r->l3_bytes);
    fprintf(f, "  \"quick\": %s,\n", r->quick ? "true" : "false");

    fprintf(f, "  \"read_bandwidth_gbs\": ");
    json_num(f, r->bw.gbs);
    fprintf(f, ",\n  \"read_bandwidth\": {\"buffer_bytes\": %zu, \"reps\": %d, \"best_s\": ", r->bw.bytes,
            r->bw.reps);
    json_num(f, r->bw.best_s);
    fprintf(f, ", \"loads\": \"%s\", \"gbs_before_kernels\": ", r->bw.avx2 ? "avx2" : "scalar");
    json_num(f, r->bw_gbs_before);
    fprintf(f, ", \"gbs_after_kernels\": ");
    json_num(f, r->bw_gbs_after);
    fprintf(f, "},\n");

    fprintf(f, "  \"fma_peak_gflops\": ");
    json_num(f, r->fma.gflops);
    fprintf(f, ",\n  \"fma_peak\": {\"kind\": ");
    json_str(f, r->fma.kind ? r->fma.kind : "");
    fprintf(f, ", \"chains_per_thread\": %d, \"reps\": %d, \"gflops_before_kernels\": ", r->fma.chains,
            r->fma.reps);
    json_num(f, r->fma_gflops_before);
    fprintf(f, ", \"gflops_after_kernels\": ");
    json_num(f, r->fma_gflops_after);
    fprintf(f, "},\n");
    fprintf(f, "  \"limits_stable\": %s,\n", limits_stable(r) ? "true" : "false");
    fprintf(f, "  \"cache_flush_bytes\": %zu,\n", r->flush_bytes);

    fprintf(f, "  \"matvec\": [\n");
    bool first = true;
    for (int s = 0; s < BENCH_N_MV_SHAPES; s++) {
        for (int t = 0; t < BENCH_N_TYPES; t++) {
            const bench_matvec *m = &r->mv[s][t];
            double cold = mv_gbs(m, m->cold_s), hot = mv_gbs(m, m->hot_s);
            fprintf(f, "%s    {\"type\": \"%s\", \"n_out\": %lld, \"n_in\": %lld, \"weight_bytes\": %zu, "
                       "\"fits_l3\": %s,\n     \"cold_ms\": ",
                    first ? "" : ",\n", orion_type_name(m->type), (long long)m->n_out, (long long)m->n_in,
                    m->weight_bytes, m->fits_l3 ? "true" : "false");
            first = false;
            json_num(f, m->ran ? m->cold_s * 1e3 : NAN);
            fprintf(f, ", \"cold_gbs\": ");
            json_num(f, cold);
            fprintf(f, ", \"cold_ratio_read_bw\": ");
            json_num(f, ratio(cold, r->bw.gbs));
            fprintf(f, ", \"cold_runs\": %d,\n     \"hot_ms\": ", m->cold_runs);
            json_num(f, m->ran ? m->hot_s * 1e3 : NAN);
            fprintf(f, ", \"hot_gbs\": ");
            json_num(f, hot);
            fprintf(f, ", \"hot_ratio_read_bw\": ");
            json_num(f, ratio(hot, r->bw.gbs));
            fprintf(f, ", \"hot_runs\": %d, \"error\": ", m->hot_runs);
            json_err(f, m->ran, m->error);
            fputc('}', f);
        }
    }
    fprintf(f, "\n  ],\n");

    fprintf(f, "  \"gemm\": [\n");
    first = true;
    for (int b = 0; b < BENCH_N_BATCHES; b++) {
        double f32 = gemm_gflops(bench_find_gemm(r, b, ORION_TYPE_F32));
        for (int t = 0; t < BENCH_N_TYPES; t++) {
            const bench_gemm *g = &r->gemm[b][t];
            double gf = gemm_gflops(g);
            fprintf(f, "%s    {\"type\": \"%s\", \"n_out\": %lld, \"n_in\": %lld, \"batch\": %lld, \"ms\": ",
                    first ? "" : ",\n", orion_type_name(g->type), (long long)g->n_out, (long long)g->n_in,
                    (long long)g->batch);
            first = false;
            json_num(f, g->ran ? g->s * 1e3 : NAN);
            fprintf(f, ", \"gflops\": ");
            json_num(f, gf);
            fprintf(f, ", \"ratio_fma_peak\": ");
            json_num(f, ratio(gf, r->fma.gflops));
            fprintf(f, ", \"ratio_f32\": ");
            json_num(f, ratio(gf, f32));
            fprintf(f, ", \"runs\": %d, \"error\": ", g->runs);
            json_err(f, g->ran, g->error);
            fputc('}', f);
        }
    }
    fprintf(f, "\n  ],\n");

    target tg[MAX_TARGETS];
    int nt = collect_targets(r, tg);
    fprintf(f, "  \"targets\": [\n");
    for (int i = 0; i < nt; i++) {
        const target *t = &tg[i];
        fprintf(f, "    {\"name\": \"%s\", \"description\": ", t->name);
        json_str(f, t->what);
        fprintf(f, ", \"value\": ");
        json_num(f, t->value);
        fprintf(f, ", \"goal\": ");
        json_num(f, t->goal);
        fprintf(f, ", \"pass\": %s}%s\n",
                !isfinite(t->value) ? "null" : (t->value >= t->goal ? "true" : "false"),
                i + 1 < nt ? "," : "");
    }
    fprintf(f, "  ],\n");
    fprintf(f, "  \"targets_stated_for_threads\": 2,\n");
    fprintf(f, "  \"matmul_scratch_bytes\": %zu,\n", r->scratch_bytes);
    fprintf(f, "  \"peak_heap_bytes\": %zu,\n", r->mem.bytes_peak);
    fprintf(f, "  \"total_s\": ");
    json_num(f, r->total_s);
    fprintf(f, ",\n  \"ok\": %s\n}\n", r->failed ? "false" : "true");
}
