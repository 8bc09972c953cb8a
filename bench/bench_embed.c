/*
 * bench_embed.c — `orion bench embed MODEL`: how fast a sentence encoder
 * runs a batch, against the machine's FMA peak, and optionally against ONNX
 * Runtime on the same model.
 *
 * What is measured, in one process and one run:
 *   - orion: --batch texts of exactly --seq token ids each ([CLS], seq-2
 *     word ids from a fixed LCG, [SEP]; every token real, so no padding)
 *     through the public orion_embed_tokens: one padded forward pass per
 *     call (batch_size = --batch, max_tokens = --seq). One warm-up call, then
 *     --reps timed calls.
 *   - the machine: FMA peak and read bandwidth (limits.c) on a pool of the
 *     same thread count, before and after the reps; the best is kept.
 *   - with --vs-ort ONNX: ONNX Runtime (node bench/ort_embed.js --serve, npm
 *     onnxruntime-node; intra-op threads = --threads, inter-op 1, all graph
 *     optimizations, sequential execution) on the same ids, as a co-process
 *     that loads once and runs one rep each time we have run one, so both
 *     see the same machine state. Only session.run is timed there.
 * The best rep of each engine is reported (the machine is shared: the best
 * is the least disturbed), medians beside it.
 *
 * FLOPs of one batch (B texts, T tokens, M = B*T, per layer, multiply-adds
 * counted as 2): the matrix products 2*M*E*E * 4 (Q, K, V, attention out) +
 * 2*M*E*F * 2 (FFN up, down), attention 2*B*T*T*E (Q K^T, all heads) +
 * 2*B*T*T*E (P V); LayerNorm, GELU, softmax, embeddings and pooling are
 * not counted. Achieved GFLOP/s = those / time; "% of peak" divides by the
 * FMA peak measured in the same run.
 *
 * Exit codes: 0 ran (whatever the ratios), 1 failure, 2 usage.
 */
#include "bench.h"
#include "peer.h"
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EMBED_MAX_REPS 100

typedef struct embed_opts {
    const char *model;
    const char *onnx;      /* --vs-ort file, or NULL */
    bool        json;
    int         threads, batch, seq, reps;
} embed_opts;

/* One engine's reps. */
typedef struct embed_runs {
    int    n;
    double s[EMBED_MAX_REPS];  /* seconds per batch */
    double load_s;
    bool   ok;
    char   error[320];
    char   version[64];
} embed_runs;

static int usage(void) {
    fprintf(stderr,
            "usage: orion bench embed MODEL [--batch 32] [--seq 128] [--threads N] [--reps N] [--json]\n"
            "                             [--vs-ort ONNX_FILE]\n"
            "  texts/s, tokens/s and GFLOP/s of one batch of --batch texts of exactly --seq tokens,\n"
            "  the FMA peak and read bandwidth measured in the same run, and the ratio to the peak;\n"
            "  --vs-ort runs ONNX Runtime (node bench/ort_embed.js) on the same ids, interleaved\n"
            "  (make the ONNX file with bench/minilm_onnx.py)\n");
    return 2;
}

static double best_s(const embed_runs *r) {
    double b = INFINITY;
    for (int i = 0; i < r->n; i++) b = r->s[i] < b ? r->s[i] : b;
    return r->n > 0 ? b : 0.0;
}

static double median_s(const embed_runs *r) {
    if (r->n <= 0) return 0.0;
    double s[EMBED_MAX_REPS];
    memcpy(s, r->s, sizeof(double) * (size_t)r->n);
    return bench_median(s, r->n);
}

/* FLOPs of one batch (see the file comment). */
static double batch_flops(const orion_embed_info *in, int batch, int seq) {
    const double B = batch, T = seq, M = B * T, E = in->n_embd, F = in->n_ff;
    return in->n_layer * (2.0 * M * E * E * 4.0 + 2.0 * M * E * F * 2.0 + 4.0 * B * T * T * E);
}

/* The ids: [CLS], seq-2 words from the LCG that bench/ort_embed.js uses, [SEP]. */
static void synthetic_ids(int32_t *ids, int batch, int seq, int n_vocab) {
    uint32_t s = 12345;
    for (int b = 0; b < batch; b++) {
        int32_t *row = ids + (size_t)b * (size_t)seq;
        row[0] = 101;
        for (int t = 1; t < seq - 1; t++) {
            s = s * 1103515245u + 12345u;
            uint32_t v = s >> 8;
            row[t] = n_vocab > 30000 ? 1000 + (int32_t)(v % 29000u) : (int32_t)(v % (uint32_t)n_vocab);
        }
        row[seq - 1] = n_vocab > 102 ? 102 : 0;
    }
}

/* ---- ONNX Runtime co-process -------------------------------------------------------- */

typedef struct peer {
    bench_peer co;
    char       script[PATH_MAX];
} peer;

static bool peer_start(peer *p, const embed_opts *o, char *err, size_t err_size) {
    memset(p, 0, sizeof *p);
    /* bench/ort_embed.js: $ORION_ORT_EMBED_JS, else under the current
     * directory, the orion binary's directory or up to three levels above */
    if (!bench_peer_find("ORION_ORT_EMBED_JS", "bench/ort_embed.js", 3, false, p->script, sizeof p->script)) {
        snprintf(err, err_size, "bench/ort_embed.js not found (set ORION_ORT_EMBED_JS)");
        return false;
    }
    char threads[16], batch[16], seq[16];
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(batch, sizeof batch, "%d", o->batch);
    snprintf(seq, sizeof seq, "%d", o->seq);
    char *args[] = {"node",  p->script, "--model", (char *)o->onnx, "--serve", "--threads", threads,
                    "--batch", batch,   "--seq",   seq,             "--warmup", "1",        NULL};
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "node %.200s", p->script);
    return bench_peer_start(&p->co, args, what, err, err_size);
}

static bool peer_rep(peer *p, double *s, char *err, size_t err_size) {
    char line[512];
    if (!bench_peer_rep(&p->co, line, sizeof line, "ONNX Runtime driver", err, err_size)) return false;
    *s = bench_json_num(line, "s");
    if (!(*s > 0.0)) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(err, err_size, "ONNX Runtime driver: %.200s", line);
        return false;
    }
    return true;
}

/* ---- report ------------------------------------------------------------------------ */

typedef struct machine {
    bench_fma       fma;
    bench_bandwidth bw;
} machine;

static void print_engine_json(FILE *f, const char *name, const embed_runs *r, const embed_opts *o, double flops,
                              double peak) {
    fprintf(f, "\"%s\": {\"ok\": %s", name, r->ok ? "true" : "false");
    if (r->ok) {
        const double b = best_s(r), m = median_s(r);
        fprintf(f, ", \"reps\": %d, \"best_s\": %.6f, \"median_s\": %.6f, \"load_s\": %.3f", r->n, b, m, r->load_s);
        fprintf(f, ", \"texts_per_s\": %.3f, \"tokens_per_s\": %.1f, \"gflops\": %.2f, \"peak_ratio\": %.4f",
                o->batch / b, (double)o->batch * o->seq / b, flops / b * 1e-9,
                peak > 0 ? flops / b * 1e-9 / peak : 0.0);
        fprintf(f, ", \"texts_per_s_median\": %.3f", o->batch / m);
        if (r->version[0]) fprintf(f, ", \"version\": \"%s\"", r->version);
        fprintf(f, ", \"times_s\": [");
        for (int i = 0; i < r->n; i++) fprintf(f, "%s%.6f", i ? ", " : "", r->s[i]);
        fprintf(f, "]");
    } else {
        fprintf(f, ", \"error\": \"");
        for (const char *c = r->error; *c; c++) {
            if (*c == '"' || *c == '\\') fputc('\\', f);
            fputc((unsigned char)*c < 0x20 ? ' ' : *c, f);
        }
        fprintf(f, "\"");
    }
    fprintf(f, "}");
}

static void print_json(const embed_opts *o, const orion_embed_info *in, const machine *mc, double flops,
                       const embed_runs *me, const embed_runs *ort) {
    FILE *f = stdout;
    fprintf(f, "{\"model\": \"");
    for (const char *c = o->model; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', f);
        fputc((unsigned char)*c < 0x20 ? ' ' : *c, f);
    }
    fprintf(f, "\", \"arch\": \"%s\", \"type\": \"%s\", \"n_layer\": %d, \"n_embd\": %d, \"n_head\": %d,"
               " \"n_ff\": %d",
            in->arch, orion_type_name(in->type), in->n_layer, in->n_embd, in->n_head, in->n_ff);
    fprintf(f, ", \"batch\": %d, \"seq\": %d, \"threads\": %d, \"kernels\": \"%s\"", o->batch, o->seq, o->threads,
            orion_kernels_name());
    fprintf(f, ", \"gflop_per_batch\": %.4f, \"fma_peak_gflops\": %.2f, \"read_gbs\": %.2f, ", flops * 1e-9,
            mc->fma.gflops, mc->bw.gbs);
    print_engine_json(f, "orion", me, o, flops, mc->fma.gflops);
    if (o->onnx) {
        fprintf(f, ", ");
        print_engine_json(f, "onnxruntime", ort, o, flops, mc->fma.gflops);
        if (me->ok && ort->ok) fprintf(f, ", \"orion_vs_ort\": %.3f", best_s(ort) / best_s(me));
    }
    fprintf(f, "}\n");
}

static void print_row(const char *name, const embed_runs *r, const embed_opts *o, double flops, double peak) {
    if (!r->ok) {
        printf("  %-12s not measured: %s\n", name, r->error);
        return;
    }
    const double b = best_s(r), m = median_s(r);
    printf("  %-12s %9.2f %9.2f %11.0f %9.1f %8.1f%%   %d reps\n", name, o->batch / b, o->batch / m,
           (double)o->batch * o->seq / b, flops / b * 1e-9, peak > 0 ? 100.0 * flops / b * 1e-9 / peak : 0.0, r->n);
}

static void print_table(const embed_opts *o, const orion_embed_info *in, const machine *mc, double flops,
                        const embed_runs *me, const embed_runs *ort) {
    printf("orion bench embed: %s\n", o->model);
    printf("  model        %s, %d layers, hidden %d, %d heads, FFN %d; weights %s (%.1f MiB)\n", in->arch,
           in->n_layer, in->n_embd, in->n_head, in->n_ff, orion_type_name(in->type),
           (double)in->weight_bytes / (1024.0 * 1024.0));
    printf("  batch        %d texts x %d tokens, %d thread%s, kernels %s; %.2f GFLOP per batch\n", o->batch, o->seq,
           o->threads, o->threads == 1 ? "" : "s", orion_kernels_name(), flops * 1e-9);
    printf("  machine      FMA peak %.1f GFLOP/s (%s), read bandwidth %.1f GB/s (best of before/after)\n\n",
           mc->fma.gflops, mc->fma.kind, mc->bw.gbs);
    printf("  %-12s %9s %9s %11s %9s %9s\n", "engine", "texts/s", "(median)", "tokens/s", "GFLOP/s", "of peak");
    print_row("orion", me, o, flops, mc->fma.gflops);
    if (o->onnx) {
        print_row("onnxruntime", ort, o, flops, mc->fma.gflops);
        if (me->ok && ort->ok)
            printf("  %-12s %9.2fx (best), %.2fx (median)\n", "orion/ORT", best_s(ort) / best_s(me),
                   median_s(ort) / median_s(me));
        if (ort->ok) printf("\n  onnxruntime-node %s, %s\n", ort->version, o->onnx);
    }
    printf("\n  timings are of a shared machine: compare best with best, and rerun to see the noise\n");
}

/* ---- the command ------------------------------------------------------------------- */

int orion_cli_bench_embed(int argc, char **argv) {
    embed_opts o = {NULL, NULL, false, 0, 32, 128, 5};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--json") == 0) o.json = true;
        else if (strcmp(a, "--vs-ort") == 0 && has) o.onnx = argv[++i];
        else if (strcmp(a, "--threads") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, BENCH_MAX_THREADS, &o.threads)) return usage();
        } else if (strcmp(a, "--batch") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, 4096, &o.batch)) return usage();
        } else if (strcmp(a, "--seq") == 0 && has) {
            if (!bench_parse_int(argv[++i], 2, 1 << 16, &o.seq)) return usage();
        } else if (strcmp(a, "--reps") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, EMBED_MAX_REPS, &o.reps)) return usage();
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else if (!bench_take_model("embed", a, &o.model)) {
            return usage();
        }
    }
    if (!o.model) return usage();
    o.threads = bench_threads(o.threads);

    int rc = 1;
    orion_embedder *e = NULL;
    orion_threadpool *pool = NULL;
    int32_t *ids = NULL;
    const int32_t **rows = NULL;
    int32_t *lens = NULL;
    float *out = NULL;
    peer pr = {0};
    embed_runs me, ort;
    memset(&me, 0, sizeof me);
    memset(&ort, 0, sizeof ort);
    machine mc;
    memset(&mc, 0, sizeof mc);

    double t0 = bench_now();
    orion_embed_params ep = orion_embed_default_params();
    ep.n_threads = o.threads;
    ep.batch_size = o.batch;
    ep.max_tokens = o.seq;
    if (orion_embed_load(o.model, &ep, &e) != ORION_OK) {
        fprintf(stderr, "orion bench embed: %s\n", orion_last_error());
        return 1;
    }
    me.load_s = bench_now() - t0;
    orion_embed_info info;
    orion_embed_get_info(e, &info);
    if (info.max_tokens < o.seq) {
        fprintf(stderr, "orion bench embed: --seq %d is longer than the model allows (%d tokens)\n", o.seq,
                info.max_tokens);
        goto done;
    }
    const size_t n_ids = (size_t)o.batch * (size_t)o.seq;
    ids = malloc(sizeof *ids * n_ids);
    rows = malloc(sizeof *rows * (size_t)o.batch);
    lens = malloc(sizeof *lens * (size_t)o.batch);
    out = malloc(sizeof *out * (size_t)o.batch * (size_t)(info.dim > 0 ? info.dim : 1));
    if (!ids || !rows || !lens || !out) {
        fprintf(stderr, "orion bench embed: out of memory\n");
        goto done;
    }
    synthetic_ids(ids, o.batch, o.seq, info.n_vocab);
    for (int b = 0; b < o.batch; b++) {
        rows[b] = ids + (size_t)b * (size_t)o.seq;
        lens[b] = o.seq;
    }
    const double flops = batch_flops(&info, o.batch, o.seq);

    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = o.threads;
    if (orion_threadpool_init(&tp, &pool) != ORION_OK) {
        fprintf(stderr, "orion bench embed: %s\n", orion_last_error());
        goto done;
    }
    size_t bw_bytes = (size_t)256 << 20;
    size_t l3 = bench_l3_bytes();
    if (l3 * 8 > bw_bytes) bw_bytes = l3 * 8;
    if (!o.json) fprintf(stderr, "orion bench embed: FMA peak and read bandwidth...\n");
    bench_fma_peak(pool, 0.1, 5, &mc.fma);
    if (bench_read_bandwidth(pool, bw_bytes, 4, &mc.bw) != ORION_OK) {
        fprintf(stderr, "orion bench embed: cannot allocate %zu bytes for the bandwidth probe\n", bw_bytes);
        goto done;
    }

    if (o.onnx) {
        if (!o.json) fprintf(stderr, "orion bench embed: starting ONNX Runtime on %s...\n", o.onnx);
        if (!peer_start(&pr, &o, ort.error, sizeof ort.error)) {
            fprintf(stderr, "orion bench embed: %s\n", ort.error);
        } else {
            ort.ok = true;
            ort.load_s = bench_json_num(pr.co.info, "load_s");
            bench_json_str(pr.co.info, "ort_version", ort.version, sizeof ort.version);
        }
    }

    /* warm-up (not counted): faults the weights in, sizes the scratch */
    if (orion_embed_tokens(e, rows, lens, o.batch, out) != ORION_OK) {
        fprintf(stderr, "orion bench embed: %s\n", orion_last_error());
        goto done;
    }
    for (int r = 0; r < o.reps; r++) {
        double s0 = bench_now();
        if (orion_embed_tokens(e, rows, lens, o.batch, out) != ORION_OK) {
            fprintf(stderr, "orion bench embed: %s\n", orion_last_error());
            goto done;
        }
        me.s[r] = bench_now() - s0;
        me.n = r + 1;
        if (ort.ok) {
            if (peer_rep(&pr, &ort.s[r], ort.error, sizeof ort.error)) ort.n = r + 1;
            else ort.ok = false;
        }
        if (!o.json) {
            fprintf(stderr, "rep %d/%d: orion %.1f texts/s", r + 1, o.reps, o.batch / me.s[r]);
            if (ort.ok) fprintf(stderr, ", onnxruntime %.1f texts/s", o.batch / ort.s[r]);
            fprintf(stderr, "\n");
        }
    }
    me.ok = true;
    if (ort.ok && ort.n == 0) ort.ok = false;
    if (o.onnx && !ort.ok && !ort.error[0]) snprintf(ort.error, sizeof ort.error, "no rep completed");
    if (pr.co.pid > 0) bench_peer_stop(&pr.co);

    /* the limits again; the best of both is the yardstick */
    bench_fma fma2;
    bench_bandwidth bw2;
    bench_fma_peak(pool, 0.1, 5, &fma2);
    if (fma2.gflops > mc.fma.gflops) mc.fma = fma2;
    if (bench_read_bandwidth(pool, bw_bytes, 4, &bw2) == ORION_OK && bw2.gbs > mc.bw.gbs) mc.bw = bw2;

    if (o.json) print_json(&o, &info, &mc, flops, &me, &ort);
    else print_table(&o, &info, &mc, flops, &me, &ort);
    rc = 0;
done:
    if (pr.co.pid > 0) bench_peer_stop(&pr.co);
    orion_threadpool_free(pool);
    free(ids);
    free(rows);
    free(lens);
    free(out);
    orion_embed_free(e);
    return rc;
}
