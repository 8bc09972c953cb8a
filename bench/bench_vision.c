/*
 * bench_vision.c — `orion bench vision MMPROJ`: how fast the CLIP image
 * encoder + LLaVA projector (orion_clip) turns one image into the decoder's
 * input rows, against the machine's FMA peak, and what memory it adds.
 *
 * What is measured, in one process and one run:
 *   - preprocessing (orion_clip_preprocess: pad to square, bicubic resize,
 *     normalize) of a seeded 640 x 480 RGB image, and the transformer +
 *     projector (orion_clip_encode_pixels) on its pixels, each timed
 *     separately: one warm-up (it faults the mapped weights in), then --reps
 *     timed runs; medians reported, the best beside them;
 *   - memory: the process's resident set before loading and its high-water
 *     mark (VmHWM) after the runs, so "peak RSS added" is what loading and
 *     encoding took (mapped weights touched + arenas + pixels); the weight
 *     bytes and the scratch arenas as orion_clip_get_info reports them; the
 *     file size;
 *   - the machine: FMA peak (limits.c) on a pool of the same thread count,
 *     before loading and after the runs; the better of the two is kept (on
 *     a shared machine one of them may be disturbed). It allocates nothing,
 *     so the high-water mark is the encoder's.
 *
 * FLOPs of one image (R = n_patches + 1 rows, E, F, M, O as in clip.c;
 * multiply-adds count 2): the patch convolution 2 NP E 3P^2; per layer run
 * 2 R E E * 4 (q, k, v, out) + 2 R E F * 2 (fc1, fc2) + 4 R R E (q k^T and
 * p v over all heads); the projector 2 NP E M + 2 NP M O. LayerNorm, GELU,
 * softmax and the bias adds are not counted. ViT-L/14-336 with LLaVA-1.5
 * 7B's projector: about 390 GFLOP.
 *
 * Exit codes: 0 ran, 1 failure, 2 usage.
 */
#include "bench.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VISION_MAX_REPS 100

typedef struct vision_opts {
    const char *model;
    bool        json;
    int         threads, reps;
} vision_opts;

static int usage(void) {
    fprintf(stderr, "usage: orion bench vision MMPROJ [--threads N] [--reps N] [--json]\n"
                    "  encode time of one image (preprocessing apart from the transformer + projector),\n"
                    "  GFLOP/s against the FMA peak measured in the same run, weight and scratch bytes,\n"
                    "  and the peak resident memory loading and encoding added\n");
    return 2;
}

/* A "Vm...:" line of /proc/self/status in bytes; 0 when unknown. */
static size_t proc_status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key), out = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            unsigned long long kb = 0;
            if (sscanf(line + klen + 1, "%llu", &kb) == 1) out = (size_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return out;
}

/* FLOPs of one image (see the file comment). */
static double image_flops(const orion_clip_info *in) {
    const double NP = in->n_patches, R = NP + 1, E = in->n_embd, F = in->n_ff, P = in->patch_size;
    const double M = in->n_mm_hidden, O = in->n_out;
    return 2.0 * NP * E * 3.0 * P * P + in->n_layer_used * (8.0 * R * E * E + 4.0 * R * E * F + 4.0 * R * R * E) +
           2.0 * NP * E * M + 2.0 * NP * M * O;
}

static double min_of(const double *v, int n) {
    double b = n > 0 ? v[0] : 0.0;
    for (int i = 1; i < n; i++) b = v[i] < b ? v[i] : b;
    return b;
}

static double median_of(const double *v, int n) {
    double s[VISION_MAX_REPS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    return bench_median(s, n);
}

static void put_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const char *c = s; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', f);
        fputc((unsigned char)*c < 0x20 ? ' ' : *c, f);
    }
    fputc('"', f);
}

typedef struct vision_result {
    orion_clip_info info;
    double          load_s;
    double          pre_s[VISION_MAX_REPS], enc_s[VISION_MAX_REPS];
    int             n;
    double          flops;
    size_t          file_bytes, rss_before, rss_peak;
    bench_fma       fma;
} vision_result;

static void print_json(const vision_opts *o, const vision_result *r) {
    const orion_clip_info *in = &r->info;
    const double enc = median_of(r->enc_s, r->n), pre = median_of(r->pre_s, r->n);
    const double gflops = enc > 0 ? r->flops / enc * 1e-9 : 0.0;
    FILE *f = stdout;
    fprintf(f, "{\"model\": ");
    put_json_string(f, o->model);
    fprintf(f, ", \"type\": \"%s\", \"image_size\": %d, \"patch_size\": %d, \"n_patches\": %d, \"n_layer\": %d,"
               " \"n_layer_used\": %d, \"n_embd\": %d, \"n_head\": %d, \"n_ff\": %d, \"n_mm_hidden\": %d,"
               " \"n_out\": %d",
            orion_type_name(in->type), in->image_size, in->patch_size, in->n_patches, in->n_layer, in->n_layer_used,
            in->n_embd, in->n_head, in->n_ff, in->n_mm_hidden, in->n_out);
    fprintf(f, ", \"threads\": %d, \"kernels\": \"%s\", \"reps\": %d, \"load_s\": %.4f", o->threads,
            orion_kernels_name(), r->n, r->load_s);
    fprintf(f, ", \"preprocess_s\": %.9g, \"preprocess_best_s\": %.9g, \"encode_s\": %.9g, \"encode_best_s\": %.9g",
            pre, min_of(r->pre_s, r->n), enc, min_of(r->enc_s, r->n));
    fprintf(f, ", \"gflop_per_image\": %.9g, \"gflops\": %.9g, \"fma_peak_gflops\": %.9g, \"peak_ratio\": %.9g",
            r->flops * 1e-9, gflops, r->fma.gflops, r->fma.gflops > 0 ? gflops / r->fma.gflops : 0.0);
    fprintf(f, ", \"file_bytes\": %zu, \"weight_bytes\": %zu, \"scratch_bytes\": %zu, \"rss_before_bytes\": %zu,"
               " \"peak_rss_added_bytes\": %zu",
            r->file_bytes, in->weight_bytes, in->scratch_bytes, r->rss_before,
            r->rss_peak > r->rss_before ? r->rss_peak - r->rss_before : 0);
    fprintf(f, ", \"encode_times_s\": [");
    for (int i = 0; i < r->n; i++) fprintf(f, "%s%.9g", i ? ", " : "", r->enc_s[i]);
    fprintf(f, "], \"preprocess_times_s\": [");
    for (int i = 0; i < r->n; i++) fprintf(f, "%s%.9g", i ? ", " : "", r->pre_s[i]);
    fprintf(f, "]}\n");
}

static void print_table(const vision_opts *o, const vision_result *r) {
    const orion_clip_info *in = &r->info;
    const double enc = median_of(r->enc_s, r->n), pre = median_of(r->pre_s, r->n);
    const double gflops = enc > 0 ? r->flops / enc * 1e-9 : 0.0, mib = 1048576.0;
    printf("orion bench vision: %s\n", o->model);
    printf("  encoder      %d px, patch %d (%d patches), %d of %d layers, embd %d, %d heads, FFN %d; "
           "projector %d -> %d -> %d; matrices %s\n",
           in->image_size, in->patch_size, in->n_patches, in->n_layer_used, in->n_layer, in->n_embd, in->n_head,
           in->n_ff, in->n_embd, in->n_mm_hidden, in->n_out, orion_type_name(in->type));
    printf("  run          %d thread%s, kernels %s, %d reps after a warm-up; %.1f GFLOP per image\n", o->threads,
           o->threads == 1 ? "" : "s", orion_kernels_name(), r->n, r->flops * 1e-9);
    printf("  preprocess   %8.2f ms median (best %.2f), 640 x 480 RGB -> %d x %d\n", pre * 1e3,
           min_of(r->pre_s, r->n) * 1e3, in->image_size, in->image_size);
    printf("  encode       %8.3f s median (best %.3f): %.1f GFLOP/s, %.1f%% of the FMA peak %.1f GFLOP/s (%s)\n",
           enc, min_of(r->enc_s, r->n), gflops, r->fma.gflops > 0 ? 100.0 * gflops / r->fma.gflops : 0.0,
           r->fma.gflops, r->fma.kind ? r->fma.kind : "");
    printf("  memory       file %.1f MiB; weights used %.1f MiB (mapped); scratch %.1f MiB; peak RSS added %.1f MiB\n",
           (double)r->file_bytes / mib, (double)in->weight_bytes / mib, (double)in->scratch_bytes / mib,
           (double)(r->rss_peak > r->rss_before ? r->rss_peak - r->rss_before : 0) / mib);
    printf("  load         %.3f s\n", r->load_s);
}

int orion_cli_bench_vision(int argc, char **argv) {
    vision_opts o = {NULL, false, 0, 3};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--json") == 0) o.json = true;
        else if (strcmp(a, "--threads") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, BENCH_MAX_THREADS, &o.threads)) return usage();
        } else if (strcmp(a, "--reps") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, VISION_MAX_REPS, &o.reps)) return usage();
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else if (!bench_take_model("vision", a, &o.model)) {
            return usage();
        }
    }
    if (!o.model) return usage();
    o.threads = bench_threads(o.threads);

    int rc = 1;
    vision_result *r = calloc(1, sizeof *r);
    orion_clip *clip = NULL;
    orion_image *img = NULL;
    orion_threadpool *pool = NULL;
    float *pixels = NULL, *out = NULL;
    if (!r) {
        fprintf(stderr, "orion bench vision: out of memory\n");
        return 1;
    }
    struct stat sb;
    r->file_bytes = stat(o.model, &sb) == 0 ? (size_t)sb.st_size : 0;
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = o.threads;
    if (orion_threadpool_init(&tp, &pool) != ORION_OK) {
        fprintf(stderr, "orion bench vision: %s\n", orion_last_error());
        goto done;
    }
    if (!o.json) fprintf(stderr, "orion bench vision: FMA peak...\n");
    bench_fma_peak(pool, 0.1, 5, &r->fma);
    r->rss_before = proc_status_bytes("VmRSS");

    double t0 = bench_now();
    orion_clip_params cp = orion_clip_default_params();
    cp.n_threads = o.threads;
    if (orion_clip_load(o.model, &cp, &clip) != ORION_OK) {
        fprintf(stderr, "orion bench vision: %s\n", orion_last_error());
        goto done;
    }
    r->load_s = bench_now() - t0;
    orion_clip_get_info(clip, &r->info);
    r->flops = image_flops(&r->info);
    /* a seeded 640 x 480 image: preprocessing pads and downscales it */
    if (orion_image_new(640, 480, &img) != ORION_OK) {
        fprintf(stderr, "orion bench vision: %s\n", orion_last_error());
        goto done;
    }
    bench_rng rng = {42};
    for (size_t i = 0; i < (size_t)640 * 480 * 3; i++) img->rgb[i] = (uint8_t)(bench_rng_u64(&rng) >> 56);
    pixels = malloc(sizeof(float) * 3 * (size_t)r->info.image_size * (size_t)r->info.image_size);
    out = malloc(sizeof(float) * (size_t)r->info.n_patches * (size_t)r->info.n_out);
    if (!pixels || !out) {
        fprintf(stderr, "orion bench vision: out of memory\n");
        goto done;
    }
    for (int rep = -1; rep < o.reps; rep++) { /* rep -1: the warm-up */
        double s0 = bench_now();
        if (orion_clip_preprocess(clip, img, pixels) != ORION_OK) {
            fprintf(stderr, "orion bench vision: %s\n", orion_last_error());
            goto done;
        }
        double s1 = bench_now();
        if (orion_clip_encode_pixels(clip, pixels, out) != ORION_OK) {
            fprintf(stderr, "orion bench vision: %s\n", orion_last_error());
            goto done;
        }
        double s2 = bench_now();
        if (rep >= 0) {
            r->pre_s[rep] = s1 - s0;
            r->enc_s[rep] = s2 - s1;
            r->n = rep + 1;
        }
        if (!o.json)
            fprintf(stderr, "%s %d/%d: preprocess %.2f ms, encode %.3f s\n", rep < 0 ? "warm-up" : "rep",
                    rep < 0 ? 1 : rep + 1, rep < 0 ? 1 : o.reps, (s1 - s0) * 1e3, s2 - s1);
    }
    r->rss_peak = proc_status_bytes("VmHWM");
    bench_fma after;
    bench_fma_peak(pool, 0.1, 5, &after);
    if (after.gflops > r->fma.gflops) r->fma = after;
    if (o.json) print_json(&o, r);
    else print_table(&o, r);
    rc = 0;
done:
    orion_threadpool_free(pool);
    orion_image_free(img);
    orion_clip_free(clip);
    free(pixels);
    free(out);
    free(r);
    return rc;
}
