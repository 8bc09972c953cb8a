/*
 * bench_cache.c — `orion bench cache`: hit rates of the embedding cache's
 * eviction policies (W-TinyLFU, LRU, the seed's access-count/age score) on
 * Zipf workloads (s = 0.8, 1.0, 1.2) and a scan-heavy one (Zipf 1.0 with
 * bursts of one-off keys), at a few capacities; then the error f16 storage
 * adds (cosine to the f32 vector: on synthetic unit vectors, and with
 * --model on 512 sentences embedded by a real encoder) and the bytes it
 * saves, and the cost of a hit and a put.
 *
 * Each access is a get; a miss is followed by a put of the key's vector,
 * as the server does. Keys are drawn from a universe of --keys distinct
 * texts; ranks are mapped to texts through a fixed shuffle.
 */
#include "core/core.h"
#include "cli.h"
#include "orion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct brng {
    uint64_t s;
} brng;

static uint64_t brng_u64(brng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double brng_unif(brng *r) { return (double)(brng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
static double brng_normal(brng *r) {
    double u1 = brng_unif(r), u2 = brng_unif(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Zipf(s) over ranks 0..n-1 by inverse CDF. */
typedef struct zipf {
    double *cdf;
    int     n;
} zipf;

static int zipf_init(zipf *z, int n, double s) {
    z->n = n;
    z->cdf = malloc((size_t)n * sizeof *z->cdf);
    if (!z->cdf) return -1;
    double sum = 0;
    for (int i = 0; i < n; i++) z->cdf[i] = (sum += 1.0 / pow(i + 1.0, s));
    for (int i = 0; i < n; i++) z->cdf[i] /= sum;
    return 0;
}

static int zipf_draw(const zipf *z, brng *r) {
    double u = brng_unif(r);
    int lo = 0, hi = z->n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (z->cdf[mid] < u) lo = mid + 1; else hi = mid;
    }
    return lo;
}

enum { W_ZIPF08, W_ZIPF10, W_ZIPF12, W_SCAN, W_COUNT };
static const char *WNAMES[W_COUNT] = {"zipf-0.8", "zipf-1.0", "zipf-1.2", "scan+zipf-1.0"};

#define DIM 8

static double run_workload(orion_cache_policy pol, size_t cap, int w, const zipf *z, const uint32_t *perm,
                           long ops) {
    orion_cache_params p = orion_cache_default_params();
    p.policy = pol;
    p.max_entries = cap;
    p.max_bytes = 0;
    orion_cache *c = NULL;
    if (orion_cache_init(&p, &c) != ORION_OK) return -1;
    brng r = {12345};
    float v[DIM] = {1, 2, 3, 4, 5, 6, 7, 8}, got[DIM];
    long hits = 0, counted = 0;
    uint64_t scan_key = 1ull << 40;
    char text[48];
    long warm = ops / 10;
    for (long i = 0; i < ops; i++) {
        uint64_t key;
        /* scan workload: blocks of 5000 Zipf accesses alternate with
         * 5000 one-off keys */
        if (w == W_SCAN && (i / 5000) % 2 == 1) key = scan_key++;
        else key = perm[zipf_draw(z, &r)];
        int n = snprintf(text, sizeof text, "document %llu", (unsigned long long)key);
        bool hit = orion_cache_get(c, "bench", text, (size_t)n, got, DIM);
        if (!hit) orion_cache_put(c, "bench", text, (size_t)n, v, DIM);
        if (i >= warm) {
            hits += hit;
            counted++;
        }
    }
    orion_cache_free(c);
    return (double)hits / (double)counted;
}

static void f16_error(int dim, int heavy, double *cos_min, double *cos_mean, double *max_abs) {
    brng r = {(uint64_t)dim * 31 + (uint64_t)heavy};
    float *v = malloc((size_t)dim * sizeof *v), *back = malloc((size_t)dim * sizeof *v);
    uint16_t *h = malloc((size_t)dim * sizeof *h);
    *cos_min = 1;
    *cos_mean = 0;
    *max_abs = 0;
    int trials = 2000;
    for (int t = 0; t < trials; t++) {
        double norm = 0;
        for (int i = 0; i < dim; i++) {
            double x = brng_normal(&r);
            if (heavy) { /* a few large outlier dimensions, as real sentence encoders have */
                if (i % 97 == 3) x *= 12.0;
            }
            v[i] = (float)x;
            norm += x * x;
        }
        for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / sqrt(norm)); /* unit vectors, as served */
        for (int i = 0; i < dim; i++) h[i] = orion_fp32_to_fp16(v[i]);
        for (int i = 0; i < dim; i++) back[i] = orion_fp16_to_fp32(h[i]);
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < dim; i++) {
            dot += (double)v[i] * back[i];
            na += (double)v[i] * v[i];
            nb += (double)back[i] * back[i];
            double e = fabs((double)v[i] - back[i]);
            if (e > *max_abs) *max_abs = e;
        }
        double cs = dot / sqrt(na * nb);
        if (cs < *cos_min) *cos_min = cs;
        *cos_mean += cs / trials;
    }
    free(v);
    free(back);
    free(h);
}

/* The f16 error on vectors from a real encoder: 512 sentences embedded by
 * `path`, each rounded to f16 and back. */
static int f16_error_model(const char *path) {
    orion_embedder *e = NULL;
    orion_embed_params p = orion_embed_default_params();
    if (orion_embed_load(path, &p, &e) != ORION_OK) {
        fprintf(stderr, "orion bench cache: %s\n", orion_last_error());
        return 1;
    }
    orion_embed_info info;
    orion_embed_get_info(e, &info);
    enum { N = 512 };
    static const char *const words[] = {"the", "model", "river", "quiet", "stone", "cache", "vector", "a", "runs",
                                        "under", "bright", "city", "small", "dog", "reads", "every", "night", "of"};
    char (*texts)[128] = malloc(sizeof(*texts) * N);
    const char **tp = malloc(sizeof(*tp) * N);
    float *v = malloc(sizeof(float) * (size_t)N * (size_t)info.dim);
    brng r = {99};
    for (int i = 0; i < N; i++) {
        int k = 0, nw = 3 + (int)(brng_u64(&r) % 14);
        for (int w = 0; w < nw; w++) k += snprintf(texts[i] + k, sizeof texts[i] - (size_t)k, "%s%s", w ? " " : "",
                                                   words[brng_u64(&r) % (sizeof words / sizeof words[0])]);
        tp[i] = texts[i];
    }
    if (orion_embed_texts(e, tp, NULL, N, v) != ORION_OK) {
        fprintf(stderr, "orion bench cache: %s\n", orion_last_error());
        return 1;
    }
    double cmin = 1, cmean = 0, mabs = 0;
    for (int i = 0; i < N; i++) {
        const float *x = v + (size_t)i * info.dim;
        double dot = 0, na = 0, nb = 0;
        for (int d = 0; d < info.dim; d++) {
            float y = orion_fp16_to_fp32(orion_fp32_to_fp16(x[d]));
            dot += (double)x[d] * y;
            na += (double)x[d] * x[d];
            nb += (double)y * y;
            if (fabs((double)x[d] - y) > mabs) mabs = fabs((double)x[d] - y);
        }
        double cs = dot / sqrt(na * nb);
        if (cs < cmin) cmin = cs;
        cmean += cs / N;
    }
    printf("%-6d %-22.22s %12.9f %12.3e %12.3e %10d %10d %7.1f%%\n", info.dim, info.name[0] ? info.name : info.arch,
           cmin, 1.0 - cmean, mabs, 4 * info.dim, 2 * info.dim, 50.0);
    free(texts);
    free(tp);
    free(v);
    orion_embed_free(e);
    return 0;
}

int orion_cli_bench_cache(int argc, char **argv) {
    int n_keys = 100000;
    long ops = 1000000;
    const char *model = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) n_keys = atoi(argv[++i]);
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) ops = atol(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) ops = 200000;
        else {
            fprintf(stderr, "usage: orion bench cache [--keys N] [--ops N] [--quick] [--model ENCODER.gguf]\n");
            return 2;
        }
    }
    if (n_keys < 100 || ops < 1000) {
        fprintf(stderr, "orion bench cache: --keys >= 100 and --ops >= 1000\n");
        return 2;
    }
    uint32_t *perm = malloc((size_t)n_keys * sizeof *perm);
    if (!perm) return 1;
    brng pr = {7};
    for (int i = 0; i < n_keys; i++) perm[i] = (uint32_t)i;
    for (int i = n_keys - 1; i > 0; i--) {
        int j = (int)(brng_u64(&pr) % (uint64_t)(i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    double svals[3] = {0.8, 1.0, 1.2};
    zipf zs[3];
    for (int i = 0; i < 3; i++) {
        if (zipf_init(&zs[i], n_keys, svals[i]) != 0) return 1;
    }
    size_t caps[3] = {(size_t)n_keys / 100, (size_t)n_keys / 20, (size_t)n_keys / 5};
    orion_cache_policy pols[3] = {ORION_CACHE_WTINYLFU, ORION_CACHE_LRU, ORION_CACHE_SCORE};
    printf("# embedding cache hit rates: %d distinct keys, %ld accesses (first 10%% not counted)\n", n_keys, ops);
    printf("%-14s %9s %9s %9s %9s\n", "workload", "capacity", "wtinylfu", "lru", "score");
    for (int w = 0; w < W_COUNT; w++) {
        const zipf *z = &zs[w == W_ZIPF08 ? 0 : w == W_ZIPF12 ? 2 : 1];
        for (int ci = 0; ci < 3; ci++) {
            printf("%-14s %9zu", WNAMES[w], caps[ci]);
            for (int p = 0; p < 3; p++) printf(" %8.2f%%", 100.0 * run_workload(pols[p], caps[ci], w, z, perm, ops));
            printf("\n");
            fflush(stdout);
        }
    }

    printf("\n# f16 storage: error against the f32 vector (unit vectors, 2000 each)\n");
    printf("%-6s %-22s %12s %12s %12s %10s %10s %8s\n", "dim", "vectors", "min cosine", "1-mean cos", "max |err|",
           "f32 bytes", "f16 bytes", "saved");
    int dims[3] = {384, 512, 768};
    for (int d = 0; d < 3; d++) {
        for (int heavy = 0; heavy < 2; heavy++) {
            double cmin, cmean, mabs;
            f16_error(dims[d], heavy, &cmin, &cmean, &mabs);
            printf("%-6d %-22s %12.9f %12.3e %12.3e %10d %10d %7.1f%%\n", dims[d],
                   heavy ? "gaussian+outlier dims" : "gaussian", cmin, 1.0 - cmean, mabs, 4 * dims[d], 2 * dims[d],
                   50.0);
        }
    }
    if (model && f16_error_model(model) != 0) return 1;
    /* whole-entry savings for a typical key: 60-byte text, 512-dim vector */
    {
        orion_cache *c = NULL;
        orion_cache_params p = orion_cache_default_params();
        if (orion_cache_init(&p, &c) == ORION_OK) {
            float v[512];
            for (int i = 0; i < 512; i++) v[i] = (float)i / 512;
            char text[64];
            for (int k = 0; k < 10000; k++) {
                int n = snprintf(text, sizeof text, "a sentence of about sixty bytes, number %08d......", k);
                orion_cache_put(c, "use-lite|norm=1", text, (size_t)n, v, 512);
            }
            orion_cache_stats s;
            orion_cache_get_stats(c, &s);
            printf("10000 entries (512-dim, ~60-byte texts): %zu bytes in f16, %zu in f32: %.1f%% saved\n", s.bytes,
                   s.bytes_f32, 100.0 * (1.0 - (double)s.bytes / (double)s.bytes_f32));
            /* cost of a hit and of a put */
            double t0 = orion__now();
            float got[512];
            int reps = 200000, hits = 0;
            for (int i = 0; i < reps; i++) {
                int n = snprintf(text, sizeof text, "a sentence of about sixty bytes, number %08d......", i % 10000);
                hits += orion_cache_get(c, "use-lite|norm=1", text, (size_t)n, got, 512);
            }
            double t1 = orion__now();
            for (int i = 0; i < reps; i++) {
                int n = snprintf(text, sizeof text, "another sentence of about sixty bytes, num %08d...", i);
                orion_cache_put(c, "use-lite|norm=1", text, (size_t)n, v, 512);
            }
            double t2 = orion__now();
            printf("hit (512-dim, incl. key formatting): %.0f ns; put: %.0f ns (%d hits)\n", 1e9 * (t1 - t0) / reps,
                   1e9 * (t2 - t1) / reps, hits);
            orion_cache_free(c);
        }
    }
    for (int i = 0; i < 3; i++) free(zs[i].cdf);
    free(perm);
    return 0;
}
