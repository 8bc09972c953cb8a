/*
 * cmd_synth.c — `orion synth`: writes a model of a real shape (a built-in
 * --shape or --dims) with seeded random weights in a chosen type and the real
 * Llama 2 tokenizer, for benchmarks and tests (the work is in
 * src/models/synth.c), or with --arch clip a CLIP image encoder + LLaVA
 * projector as an mmproj file (src/models/synth_clip.c). Shows a progress
 * bar on a terminal; prints one summary line on standard output at the end.
 */
#include "cli.h"
#include "models/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TOKENIZER "../shared/models/llama2-tokenizer/tokenizer.bin"

static int usage(void) {
    fprintf(stderr,
            "usage: orion synth [--arch llama|mistral] (--shape NAME | --dims E,FF,LAYERS,HEADS,KV_HEADS[,VOCAB])\n"
            "                   --type f32|f16|bf16|q8_0|q4_0|q4_1 [--seed S] [--ctx N] [--sliding-window N]\n"
            "                   [--tokenizer FILE] [--threads N] OUT.gguf\n"
            "       orion synth --arch clip --shape NAME --type T [--seed S] [--threads N] OUT.gguf\n"
            "       orion synth --list\n"
            "  Writes a model with random weights ~ N(0, 0.02^2) (norms 1) and the Llama 2 tokenizer\n"
            "  (default " DEFAULT_TOKENIZER "). Mistral: architecture \"llama\" plus\n"
            "  llama.attention.sliding_window (the shape's, else 4096), as llama.cpp writes it.\n"
            "  clip: a CLIP vision tower + LLaVA projector (llama.cpp's mmproj layout), biases 0.\n");
    return 2;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct progress {
    bool   tty;
    double t0;
} progress;

static void on_tensor(void *user, const orion_synth_progress *p) {
    progress *s = user;
    if (!s->tty) return;
    const int width = 30;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    int filled = (int)(frac * width);
    double dt = now_s() - s->t0;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %7.1f/%.1f MiB %5.1f s %-30.30s", filled, "##############################",
            width - filled, "", (int)(frac * 100.0), (double)p->bytes_done / 1048576.0,
            (double)p->bytes_total / 1048576.0, dt, p->name);
    if (p->index + 1 == p->count) fputc('\n', stderr);
    fflush(stderr);
}

static void list_clip_shapes(void) {
    printf("\n  %-16s %-8s %6s %6s %6s %6s %6s %6s %13s\n", "shape", "arch", "image", "patch", "embd", "ff", "layers",
           "heads", "projector");
    for (int i = 0; orion__synth_clip_shape_at(i); i++) {
        const orion_synth_clip_shape *s = orion__synth_clip_shape_at(i);
        char proj[32];
        snprintf(proj, sizeof proj, "%d -> %d", s->n_mm, s->n_out);
        printf("  %-16s %-8s %6d %6d %6d %6d %6d %6d %13s\n", s->name, "clip", s->image_size, s->patch_size,
               s->n_embd, s->n_ff, s->n_layer, s->n_head, proj);
    }
}

static void list_shapes(void) {
    printf("  %-16s %-8s %6s %6s %6s %6s %8s %6s %6s %6s\n", "shape", "arch", "embd", "ff", "layers", "heads",
           "kv heads", "vocab", "ctx", "window");
    for (int i = 0; orion__synth_shape_at(i); i++) {
        const orion_synth_shape *s = orion__synth_shape_at(i);
        printf("  %-16s %-8s %6d %6d %6d %6d %8d %6d %6d %6d\n", s->name, s->arch, s->n_embd, s->n_ff, s->n_layer,
               s->n_head, s->n_head_kv, s->n_vocab, s->n_ctx, strcmp(s->arch, "mistral") == 0 ? s->sliding_window : 0);
    }
}

/* "E,FF,LAYERS,HEADS,KV[,VOCAB]" into s. */
static bool parse_dims(const char *text, orion_synth_shape *s) {
    long v[6] = {0};
    int n = 0;
    const char *p = text;
    for (;;) {
        char *end;
        if (n == 6) return false; /* a seventh value */
        v[n] = strtol(p, &end, 10);
        if (end == p || v[n] <= 0 || v[n] > (1L << 22)) return false;
        n++;
        if (*end == '\0') break;
        if (*end != ',') return false;
        p = end + 1;
    }
    if (n < 5) return false;
    s->name = NULL;
    s->arch = "llama";
    s->n_embd = (int)v[0], s->n_ff = (int)v[1], s->n_layer = (int)v[2], s->n_head = (int)v[3];
    s->n_head_kv = (int)v[4], s->n_vocab = n == 6 ? (int)v[5] : 0;
    s->n_ctx = 2048, s->sliding_window = 0, s->rope_freq_base = 10000.0f, s->rms_eps = 1e-5f;
    return true;
}

int orion_cli_synth(int argc, char **argv) {
    orion_synth_params p = orion__synth_default_params();
    p.tokenizer = DEFAULT_TOKENIZER;
    const char *out = NULL;
    bool have_shape = false, have_type = false;
    long ctx = 0, window = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--list") == 0) {
            list_shapes();
            list_clip_shapes();
            return 0;
        } else if (strcmp(a, "--arch") == 0 && has) {
            p.arch = argv[++i];
            if (strcmp(p.arch, "llama") != 0 && strcmp(p.arch, "mistral") != 0 && strcmp(p.arch, "clip") != 0) {
                fprintf(stderr, "orion synth: --arch takes llama, mistral or clip\n");
                return 2;
            }
        } else if (strcmp(a, "--shape") == 0 && has && p.arch && strcmp(p.arch, "clip") == 0) {
            if (!(p.clip = orion__synth_clip_shape_find(argv[++i]))) {
                fprintf(stderr, "orion synth: unknown clip shape '%s'; the shapes are:\n", argv[i]);
                list_clip_shapes();
                return 2;
            }
            have_shape = true;
        } else if (strcmp(a, "--shape") == 0 && has) {
            const orion_synth_shape *s = orion__synth_shape_find(argv[++i]);
            if (!s) {
                fprintf(stderr, "orion synth: unknown shape '%s'; the shapes are:\n", argv[i]);
                list_shapes();
                return 2;
            }
            p.shape = *s;
            have_shape = true;
        } else if (strcmp(a, "--dims") == 0 && has) {
            if (!parse_dims(argv[++i], &p.shape)) {
                fprintf(stderr, "orion synth: --dims takes E,FF,LAYERS,HEADS,KV_HEADS[,VOCAB] (positive integers)\n");
                return 2;
            }
            have_shape = true;
        } else if (strcmp(a, "--type") == 0 && has) {
            if (orion_type_from_name(argv[++i], &p.type) != ORION_OK) {
                fprintf(stderr, "orion synth: %s\n", orion_last_error());
                return 2;
            }
            have_type = true;
        } else if (strcmp(a, "--seed") == 0 && has) {
            char *end;
            p.seed = strtoull(argv[++i], &end, 0);
            if (*end || end == argv[i]) return usage();
        } else if (strcmp(a, "--ctx") == 0 && has) {
            ctx = strtol(argv[++i], NULL, 10);
            if (ctx <= 0 || ctx > (1L << 22)) return usage();
        } else if (strcmp(a, "--sliding-window") == 0 && has) {
            window = strtol(argv[++i], NULL, 10);
            if (window <= 0 || window > (1L << 22)) return usage();
        } else if (strcmp(a, "--tokenizer") == 0 && has) {
            p.tokenizer = argv[++i];
        } else if (strcmp(a, "--threads") == 0 && has) {
            p.n_threads = atoi(argv[++i]);
            if (p.n_threads < 0 || p.n_threads > 1024) return usage();
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "orion synth: unknown option or missing value: '%s'\n", a);
            return usage();
        } else if (!out) {
            out = a;
        } else {
            return usage();
        }
    }
    if (!out || !have_shape || !have_type) return usage();
    if (p.arch && strcmp(p.arch, "clip") == 0 && !p.clip) {
        fprintf(stderr, "orion synth: --arch clip takes --shape (after --arch): one of\n");
        list_clip_shapes();
        return 2;
    }
    if (ctx) p.shape.n_ctx = (int)ctx;
    if (window) p.shape.sliding_window = (int)window; /* written for --arch mistral */

    progress s = {isatty(STDERR_FILENO) != 0, now_s()};
    p.on_tensor = on_tensor;
    p.user = &s;
    if (orion__synth_write(out, &p) != ORION_OK) {
        if (s.tty) fputc('\n', stderr);
        fprintf(stderr, "orion synth: %s\n", orion_last_error());
        return 1;
    }
    orion_gguf *g = NULL;
    size_t bytes = 0;
    int64_t n_tensors = 0;
    if (orion_gguf_open(out, &g) == ORION_OK) {
        bytes = orion_gguf_file_size(g);
        n_tensors = orion_gguf_n_tensors(g);
    }
    double params = 0.0;
    for (int64_t i = 0; i < n_tensors; i++) params += (double)orion_gguf_tensor_at(g, i)->n_elems;
    orion_gguf_free(g);
    const char *shape_name = p.clip ? p.clip->name : p.shape.name ? p.shape.name : "custom";
    printf("wrote %s: %s %s, %s, %lld tensors, %.3g B parameters, %.1f MiB, %.1f s\n", out,
           p.arch ? p.arch : p.shape.arch, shape_name, orion_type_name(p.type),
           (long long)n_tensors, params / 1e9, (double)bytes / 1048576.0, now_s() - s.t0);
    return 0;
}
