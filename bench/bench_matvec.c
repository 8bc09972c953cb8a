/*
 * bench_matvec.c — `orion bench matvec [--shape NAME] [--type T] [--pairs N]
 * [--threads N] [--json]`: the matrix-vector products of one generated
 * token of a decoder shape, against a plain read of the same bytes measured
 * right after (or before) each one.
 *
 * One "stack" is what a token's matrices cost in orion_llm: per layer, q/k/v
 * through one orion__matmul_multi, the attention output, gate/up through one
 * orion__matmul_multi, and down, all in weight type T (the output head and
 * attention are left out). The weights are one buffer of that many bytes,
 * far larger than the caches, walked in order, so every byte comes from
 * DRAM as in a model. Each pair times one stack and one bench_stream_read of
 * the same buffer on the same pool, alternating which goes first; the ratio
 * read time / stack time is the share of the plain read's rate the products
 * reach. On a shared machine whose bandwidth drifts by tens of percent from
 * minute to minute, a ratio taken within one pair is far steadier than one
 * taken against a bandwidth measured at another time; the median, quartiles
 * and best of the pairs are printed.
 *
 * Weight values do not change the speed: a few rows are quantized from
 * seeded random data and repeated through the buffer.
 */
#include "bench.h"
#include "cli.h"
#include "kernels/kernels.h"
#include "models/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS 1000

typedef struct matvec_opts {
    const orion_synth_shape *shape;
    orion_type               type;
    int                      pairs, threads;
    bool                     json;
} matvec_opts;

static int usage(void) {
    fprintf(stderr,
            "usage: orion bench matvec [--shape NAME] [--type T] [--pairs N] [--threads N] [--json]\n"
            "  one token's matrix-vector products of a decoder shape (default tinyllama-1.1b, q4_0),\n"
            "  each timed against a plain read of the same bytes (--pairs times, default 30)\n");
    return 2;
}

static int parse_args(int argc, char **argv, matvec_opts *o) {
    o->shape = orion__synth_shape_find("tinyllama-1.1b");
    o->type = ORION_TYPE_Q4_0;
    o->pairs = 30;
    o->threads = 0;
    o->json = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--shape") == 0 && v) {
            if (!bench_parse_shape("matvec", v, &o->shape)) return 2;
            i++;
        } else if (strcmp(a, "--type") == 0 && v) {
            if (orion_type_from_name(v, &o->type) != ORION_OK) {
                fprintf(stderr, "orion bench matvec: unknown type '%s'\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--pairs") == 0 && v) {
            if (!bench_int_option("matvec", a, v, 1, MAX_PAIRS, &o->pairs)) return 2;
            i++;
        } else if (strcmp(a, "--threads") == 0 && v) {
            if (!bench_int_option("matvec", a, v, 1, BENCH_MAX_THREADS, &o->threads)) return 2;
            i++;
        } else {
            fprintf(stderr, "orion bench matvec: unknown option or missing value '%s'\n", a);
            return usage();
        }
    }
    o->threads = bench_threads(o->threads);
    return 0;
}

/* One layer's matrices: n_out x n_in each, in the order a token uses them. */
enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, N_W };

typedef struct stack {
    int64_t  n_out[N_W], n_in[N_W];
    size_t   bytes[N_W], layer_bytes, total;
    int      n_layer;
    uint8_t *w;
} stack;

static void stack_shape(stack *s, const orion_synth_shape *sh, orion_type t) {
    const int64_t E = sh->n_embd, F = sh->n_ff, hd = sh->n_embd / sh->n_head, KD = hd * sh->n_head_kv;
    const int64_t out[N_W] = {E, KD, KD, E, F, F, E}, in[N_W] = {E, E, E, E, E, E, F};
    s->layer_bytes = 0;
    for (int i = 0; i < N_W; i++) {
        s->n_out[i] = out[i], s->n_in[i] = in[i];
        s->bytes[i] = (size_t)out[i] * orion_type_row_bytes(t, in[i]);
        s->layer_bytes += s->bytes[i];
    }
    s->n_layer = sh->n_layer;
    s->total = s->layer_bytes * (size_t)s->n_layer;
    s->w = NULL;
}

/* Fills each matrix with 16 quantized random rows, repeated. */
static orion_status stack_fill(stack *s, orion_type t) {
    bench_rng rng = {0x6d617476ull}; /* "matv" */
    uint8_t *p = s->w;
    for (int l = 0; l < s->n_layer; l++)
        for (int i = 0; i < N_W; i++) {
            const size_t rb = orion_type_row_bytes(t, s->n_in[i]);
            const int64_t seed_rows = 16;
            float *src = malloc(sizeof(float) * (size_t)(seed_rows * s->n_in[i]));
            if (!src) return ORION_ERR_NOMEM;
            for (int64_t k = 0; k < seed_rows * s->n_in[i]; k++) src[k] = bench_rng_float(&rng);
            orion_status st = orion_quantize(t, src, p, seed_rows, s->n_in[i], NULL);
            free(src);
            if (st != ORION_OK) return st;
            for (int64_t r = seed_rows; r < s->n_out[i]; r++) memcpy(p + r * rb, p + (r % seed_rows) * rb, rb);
            p += s->bytes[i];
        }
    return ORION_OK;
}

/* One token's products; y holds the largest output. */
static orion_status stack_run(const stack *s, orion_threadpool *pool, orion_arena *arena, orion_type t,
                              const float *x, float *y) {
    const uint8_t *w = s->w;
    for (int l = 0; l < s->n_layer; l++) {
        const uint8_t *m[N_W];
        for (int i = 0; i < N_W; i++) m[i] = w, w += s->bytes[i];
        const orion__matmul_part qkv[3] = {{t, m[W_Q], s->n_out[W_Q], y},
                                           {t, m[W_K], s->n_out[W_K], y + s->n_out[W_Q]},
                                           {t, m[W_V], s->n_out[W_V], y + s->n_out[W_Q] + s->n_out[W_K]}};
        const orion__matmul_part gu[2] = {{t, m[W_GATE], s->n_out[W_GATE], y},
                                          {t, m[W_UP], s->n_out[W_UP], y + s->n_out[W_GATE]}};
        orion_status st;
        if ((st = orion__matmul_multi(pool, arena, s->n_in[W_Q], x, 1, qkv, 3)) != ORION_OK ||
            (st = orion_matmul(pool, arena, t, m[W_O], s->n_out[W_O], s->n_in[W_O], x, 1, y)) != ORION_OK ||
            (st = orion__matmul_multi(pool, arena, s->n_in[W_GATE], x, 1, gu, 2)) != ORION_OK ||
            (st = orion_matmul(pool, arena, t, m[W_DOWN], s->n_out[W_DOWN], s->n_in[W_DOWN], x, 1, y)) != ORION_OK)
            return st;
    }
    return ORION_OK;
}

int orion_cli_bench_matvec(int argc, char **argv) {
    matvec_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc;
    stack s;
    stack_shape(&s, o.shape, o.type);
    const int64_t max_in = o.shape->n_ff > o.shape->n_embd ? o.shape->n_ff : o.shape->n_embd;
    const int64_t max_out = 2 * (int64_t)o.shape->n_ff + 2 * o.shape->n_embd;

    orion_threadpool *pool = NULL;
    orion_arena *arena = NULL;
    float *x = NULL, *y = NULL;
    double *ratio = NULL, *stack_gbs = NULL, *read_gbs = NULL;
    rc = 1;
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = o.threads;
    if (orion_threadpool_init(&tp, &pool) != ORION_OK) {
        fprintf(stderr, "orion bench matvec: cannot start %d threads: %s\n", o.threads, orion_last_error());
        goto done;
    }
    size_t scratch = 0;
    for (int i = 0; i < N_W; i++) {
        size_t b = orion_matmul_scratch_bytes(o.type, s.n_out[i], s.n_in[i], 1, o.threads);
        scratch = b > scratch ? b : scratch;
    }
    s.w = bench_alloc(s.total);
    x = bench_alloc(sizeof(float) * (size_t)max_in);
    y = bench_alloc(sizeof(float) * (size_t)max_out);
    ratio = malloc(sizeof(double) * (size_t)o.pairs);
    stack_gbs = malloc(sizeof(double) * (size_t)o.pairs);
    read_gbs = malloc(sizeof(double) * (size_t)o.pairs);
    if (!s.w || !x || !y || !ratio || !stack_gbs || !read_gbs ||
        orion_arena_init(scratch + 4096, &arena) != ORION_OK) {
        fprintf(stderr, "orion bench matvec: out of memory for %.1f MiB of weights and their buffers\n",
                (double)s.total / 1048576.0);
        goto done;
    }
    fprintf(stderr, "orion bench matvec: %s, %s, %d layers, %.1f MB per token; %d pairs...\n", o.shape->name,
            orion_type_name(o.type), s.n_layer, (double)s.total / 1e6, o.pairs);
    orion_status st = stack_fill(&s, o.type);
    if (st != ORION_OK) {
        fprintf(stderr, "orion bench matvec: cannot make the weights: %s: %s\n", orion_status_str(st), orion_last_error());
        goto done;
    }
    bench_rng rng = {0x78ull};
    for (int64_t i = 0; i < max_in; i++) x[i] = bench_rng_float(&rng);
    /* warm-up: page tables, pool threads awake */
    bench_stream_read(pool, s.w, s.total);
    if ((st = stack_run(&s, pool, arena, o.type, x, y)) != ORION_OK) {
        fprintf(stderr, "orion bench matvec: %s: %s\n", orion_status_str(st), orion_last_error());
        goto done;
    }
    for (int p = 0; p < o.pairs; p++) {
        double t_stack = 0, t_read = 0;
        for (int k = 0; k < 2; k++) {
            if ((k == 0) == (p % 2 == 0)) {
                double t0 = bench_now();
                stack_run(&s, pool, arena, o.type, x, y);
                t_stack = bench_now() - t0;
            } else {
                t_read = bench_stream_read(pool, s.w, s.total);
            }
        }
        ratio[p] = t_read / t_stack;
        stack_gbs[p] = (double)s.total / t_stack / 1e9;
        read_gbs[p] = (double)s.total / t_read / 1e9;
    }
    const double best = bench_quantile(ratio, o.pairs, 1.0), p75 = bench_quantile(ratio, o.pairs, 0.75),
                 med = bench_quantile(ratio, o.pairs, 0.5), p25 = bench_quantile(ratio, o.pairs, 0.25);
    const double med_stack = bench_median(stack_gbs, o.pairs), med_read = bench_median(read_gbs, o.pairs);
    if (o.json) {
        printf("{\"shape\": \"%s\", \"type\": \"%s\", \"threads\": %d, \"layers\": %d, \"bytes_per_token\": %zu, "
               "\"pairs\": %d, \"ratio_median\": %.4f, \"ratio_p25\": %.4f, \"ratio_p75\": %.4f, \"ratio_best\": %.4f, "
               "\"matvec_gbs_median\": %.3f, \"read_gbs_median\": %.3f}\n",
               o.shape->name, orion_type_name(o.type), o.threads, s.n_layer, s.total, o.pairs, med, p25, p75, best,
               med_stack, med_read);
    } else {
        printf("orion bench matvec: %s, %s weights, %d threads (kernels %s)\n", o.shape->name,
               orion_type_name(o.type), o.threads, orion__kernels()->name);
        printf("  one token's products: %d layers x (q/k/v, output, gate/up, down) = %.1f MB\n",
               s.n_layer, (double)s.total / 1e6);
        printf("  %d pairs, each the products and a plain read of the same bytes, in turn\n", o.pairs);
        const size_t l3 = bench_l3_bytes();
        if (l3 > 0 && s.total < 4 * l3)
            printf("  note: %.1f MB is under 4x the L3 cache (%.1f MB): this measures caches, not DRAM\n",
                   (double)s.total / 1e6, (double)l3 / 1e6);
        printf("\n");
        printf("  products vs plain read:  median %5.1f%%   quartiles %5.1f%% .. %5.1f%%   best %5.1f%%\n",
               100 * med, 100 * p25, 100 * p75, 100 * best);
        printf("  median rates:            products %.2f GB/s, plain read %.2f GB/s\n", med_stack, med_read);
        printf("\n  (output head and attention not included; `orion bench decode` runs a whole model)\n");
    }
    rc = 0;
done:
    free(ratio);
    free(stack_gbs);
    free(read_gbs);
    bench_free(s.w);
    bench_free(x);
    bench_free(y);
    orion_arena_free(arena);
    orion_threadpool_free(pool);
    return rc;
}
