/*
 * bench_attention.c — `orion bench attention [--shape NAME] [--positions N]
 * [--pairs N] [--json]`: one generated token's attention over an f16 KV cache
 * of N positions in a decoder shape, on one thread, through orion's SIMD
 * kernels and through the plain-C reference kernels, each against a plain
 * read of the same K and V bytes.
 *
 * One "token" is what orion_llm does per layer and KV head: orion__attend
 * (kernels/attend.c) for the group's query heads: rows_dot with the cached
 * keys, scale, softmax per head, rows_axpy of the weights with the values.
 * The cache is laid out as in orion_llm ((layer, KV head, position, head
 * dim), f16: a head's positions are contiguous). Before each
 * timed run a buffer of twice the L3 cache is read: in a model a token's
 * weights stream through the caches between two attentions, and the cache
 * rows come from DRAM.
 *
 * Each pair times the SIMD kernels, the reference kernels and a plain read
 * (bench_stream_read) of the cache, one thread each, in an order that turns
 * with the pair; the medians over pairs are printed: time per token and per
 * position, KV bytes per second, the share of the plain read's rate (the
 * limit when attention is memory-bound) and the speed-up over the reference.
 * orion_llm runs the (KV head, position) jobs on its thread pool; one thread
 * here measures the kernels themselves.
 */
#include "bench.h"
#include "cli.h"
#include "kernels/kernels.h"
#include "models/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS 1000

typedef struct attn_opts {
    const orion_synth_shape *shape;
    int                      positions, pairs;
    bool                     json;
} attn_opts;

static int usage(void) {
    fprintf(stderr,
            "usage: orion bench attention [--shape NAME] [--positions N] [--pairs N] [--json]\n"
            "  one token's attention over an f16 KV cache of N positions (default 1024) of a decoder\n"
            "  shape (default tinyllama-1.1b), one thread, SIMD and reference kernels against a plain\n"
            "  read of the same bytes (--pairs times, default 15)\n");
    return 2;
}

static int parse_args(int argc, char **argv, attn_opts *o) {
    o->shape = orion__synth_shape_find("tinyllama-1.1b");
    o->positions = 1024;
    o->pairs = 15;
    o->json = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--shape") == 0 && v) {
            if (!bench_parse_shape("attention", v, &o->shape)) return 2;
            i++;
        } else if (strcmp(a, "--positions") == 0 && v) {
            if (!bench_int_option("attention", a, v, 1, 1 << 20, &o->positions)) return 2;
            i++;
        } else if (strcmp(a, "--pairs") == 0 && v) {
            if (!bench_int_option("attention", a, v, 1, MAX_PAIRS, &o->pairs)) return 2;
            i++;
        } else {
            fprintf(stderr, "orion bench attention: unknown option or missing value '%s'\n", a);
            return usage();
        }
    }
    return 0;
}

/* The cache and one token's buffers. */
typedef struct attn_case {
    int      n_layer, n_head, n_kv, hd, n;  /* n: positions attended */
    size_t   head_bytes;                    /* one position of one KV head: hd f16 */
    size_t   kv_bytes;                      /* K and V of every layer */
    uint8_t *k, *v;
    float   *q, *out, *scores;
} attn_case;

/* One token's attention with kernel table kt: every layer, every KV head. */
static void attn_token(const attn_case *c, const orion_kernels *kt) {
    const int group = c->n_head / c->n_kv;
    for (int l = 0; l < c->n_layer; l++) {
        const size_t layer = (size_t)c->n_kv * (size_t)c->n * c->head_bytes;
        const uint8_t *K = c->k + (size_t)l * layer, *V = c->v + (size_t)l * layer;
        for (int h = 0; h < c->n_kv; h++) {
            const size_t off = (size_t)h * (size_t)c->n * c->head_bytes;
            orion__attend(kt, ORION_TYPE_F16, c->n, K + off, V + off, c->head_bytes, c->hd,
                          c->q + (size_t)h * group * c->hd, group, c->scores, c->out + (size_t)h * group * c->hd);
        }
    }
}

/* Random f16 rows in [-1, 1). */
static void fill_f16(uint8_t *dst, size_t bytes, bench_rng *rng) {
    const orion_kernels *k = orion__kernels();
    float buf[256];
    for (size_t off = 0; off < bytes; off += sizeof buf / 2) {
        for (int i = 0; i < 256; i++) buf[i] = bench_rng_float(rng);
        const size_t n = bytes - off < sizeof buf / 2 ? (bytes - off) / 2 : 256;
        k->quantize_row[ORION_TYPE_F16](buf, dst + off, (int64_t)n);
    }
}

enum { T_SIMD, T_REF, T_READ, N_T };

int orion_cli_bench_attention(int argc, char **argv) {
    attn_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc;
    const orion_synth_shape *sh = o.shape;
    attn_case c = {sh->n_layer, sh->n_head, sh->n_head_kv, sh->n_embd / sh->n_head, o.positions, 0, 0,
                   NULL, NULL, NULL, NULL, NULL};
    c.head_bytes = (size_t)c.hd * 2;
    c.kv_bytes = 2 * (size_t)c.n_layer * (size_t)c.n_kv * (size_t)c.n * c.head_bytes;
    const orion_kernels *simd = orion__kernels(), *ref = orion__kernels_ref();
    const size_t l3 = bench_l3_bytes();
    const size_t flush_bytes = 2 * (l3 > 0 ? l3 : (size_t)64 << 20);

    orion_threadpool *one = NULL;
    uint8_t *flush = NULL;
    double *t[N_T] = {NULL, NULL, NULL};
    rc = 1;
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = 1;
    if (orion_threadpool_init(&tp, &one) != ORION_OK) {
        fprintf(stderr, "orion bench attention: %s\n", orion_last_error());
        goto done;
    }
    c.k = bench_alloc(c.kv_bytes / 2);
    c.v = bench_alloc(c.kv_bytes / 2);
    c.q = bench_alloc(sizeof(float) * (size_t)c.n_head * (size_t)c.hd);
    c.out = bench_alloc(sizeof(float) * (size_t)c.n_head * (size_t)c.hd);
    c.scores = bench_alloc(sizeof(float) * (size_t)(c.n_head / c.n_kv) * (size_t)c.n);
    flush = bench_alloc(flush_bytes);
    for (int i = 0; i < N_T; i++) t[i] = malloc(sizeof(double) * (size_t)o.pairs);
    if (!c.k || !c.v || !c.q || !c.out || !c.scores || !flush || !t[T_SIMD] || !t[T_REF] || !t[T_READ]) {
        fprintf(stderr, "orion bench attention: out of memory for a %.1f MB cache and its buffers\n",
                (double)c.kv_bytes / 1e6);
        goto done;
    }
    fprintf(stderr, "orion bench attention: %s, %d positions, %.1f MB of K and V per token; %d pairs...\n",
            sh->name, c.n, (double)c.kv_bytes / 1e6, o.pairs);
    bench_rng rng = {0x61747465ull}; /* "atte" */
    fill_f16(c.k, c.kv_bytes / 2, &rng);
    fill_f16(c.v, c.kv_bytes / 2, &rng);
    for (int i = 0; i < c.n_head * c.hd; i++) c.q[i] = bench_rng_float(&rng);
    bench_stream_fill(one, flush, flush_bytes);
    attn_token(&c, simd); /* warm-up: page tables */
    attn_token(&c, ref);
    for (int p = 0; p < o.pairs; p++) {
        for (int k = 0; k < N_T; k++) {
            const int which = (k + p) % N_T;
            bench_stream_read(one, flush, flush_bytes);
            const double t0 = bench_now();
            if (which == T_READ) { /* K, then V, as the kernels read them */
                bench_stream_read(one, c.k, c.kv_bytes / 2);
                bench_stream_read(one, c.v, c.kv_bytes / 2);
            } else {
                attn_token(&c, which == T_SIMD ? simd : ref);
            }
            t[which][p] = bench_now() - t0;
        }
    }
    double med[N_T], p25 = 0, p75 = 0;
    {
        double *ratio = malloc(sizeof(double) * (size_t)o.pairs);
        if (!ratio) goto done;
        for (int p = 0; p < o.pairs; p++) ratio[p] = t[T_READ][p] / t[T_SIMD][p];
        p25 = bench_quantile(ratio, o.pairs, 0.25), p75 = bench_quantile(ratio, o.pairs, 0.75);
        free(ratio);
    }
    for (int i = 0; i < N_T; i++) med[i] = bench_median(t[i], o.pairs);
    const double flops = 4.0 * c.n_layer * c.n_head * (double)c.hd * c.n; /* dot and axpy, 2 each */
    const double per_pos = (double)c.n_layer * c.n; /* ns per (layer, position) below */
    if (o.json) {
        printf("{\"shape\": \"%s\", \"positions\": %d, \"pairs\": %d, \"kv_bytes\": %zu, \"kernels\": \"%s\", "
               "\"simd_s\": %.6g, \"ref_s\": %.6g, \"read_s\": %.6g, \"simd_gbs\": %.3f, \"read_gbs\": %.3f, "
               "\"read_share_median\": %.4f, \"read_share_p25\": %.4f, \"read_share_p75\": %.4f, "
               "\"speedup_vs_ref\": %.3f, \"simd_gflops\": %.3f}\n",
               sh->name, c.n, o.pairs, c.kv_bytes, simd->name, med[T_SIMD], med[T_REF], med[T_READ],
               (double)c.kv_bytes / med[T_SIMD] / 1e9, (double)c.kv_bytes / med[T_READ] / 1e9,
               med[T_READ] / med[T_SIMD], p25, p75, med[T_REF] / med[T_SIMD], flops / med[T_SIMD] / 1e9);
    } else {
        printf("orion bench attention: %s, %d layers, %d heads / %d KV heads of %d, f16 cache, one thread\n",
               sh->name, c.n_layer, c.n_head, c.n_kv, c.hd);
        printf("  one token over %d positions: %.1f MB of K and V, %.1f MFLOP; caches flushed before each run\n",
               c.n, (double)c.kv_bytes / 1e6, flops / 1e6);
        printf("  medians of %d pairs (SIMD kernels, reference kernels, plain read, in turn)\n\n", o.pairs);
        printf("                   per token   per layer x position       KV rate      GFLOP/s\n");
        const char *names[N_T] = {simd->name, "ref (plain C)", "plain read"};
        for (int i = 0; i < N_T; i++)
            printf("  %-14s %9.3f ms  %14.1f ns  %11.2f GB/s  %9.2f\n", names[i], med[i] * 1e3,
                   med[i] / per_pos * 1e9, (double)c.kv_bytes / med[i] / 1e9, i == T_READ ? 0.0 : flops / med[i] / 1e9);
        printf("\n  %s: %.1f%% of the plain read's rate (quartiles %.1f%% .. %.1f%%), %.2fx the reference\n",
               simd->name, 100 * med[T_READ] / med[T_SIMD], 100 * p25, 100 * p75, med[T_REF] / med[T_SIMD]);
    }
    rc = 0;
done:
    for (int i = 0; i < N_T; i++) free(t[i]);
    bench_free(c.k);
    bench_free(c.v);
    bench_free(c.q);
    bench_free(c.out);
    bench_free(c.scores);
    bench_free(flush);
    orion_threadpool_free(one);
    return rc;
}
