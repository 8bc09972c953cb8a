/*
 * synth.h — synthetic models: Llama/Mistral decoders of real shapes with the
 * real Llama 2 tokenizer (synth.c), and CLIP image encoders with LLaVA's
 * projector as llama.cpp mmproj files (synth_clip.c); seeded random
 * weights. Internal to the models layer and the commands and tests built on
 * it (`orion synth`).
 */
#ifndef ORION_SYNTH_H
#define ORION_SYNTH_H

#include "core/core.h"

/* A model shape. Mistral files use architecture "llama" (as llama.cpp writes
 * them) and differ by llama.attention.sliding_window. */
typedef struct orion_synth_shape {
    const char *name;            /* "tinyllama-1.1b", ... ; NULL for --dims */
    const char *arch;            /* default architecture: "llama" or "mistral" */
    int         n_embd, n_ff, n_layer, n_head, n_head_kv;
    int         n_vocab;         /* 0 = every token of the tokenizer */
    int         n_ctx;           /* llama.context_length */
    int         sliding_window;  /* used when the architecture is "mistral" (0 = 4096) */
    float       rope_freq_base;
    float       rms_eps;
} orion_synth_shape;

/* The built-in shapes: tinyllama-1.1b, llama-2-7b, mistral-7b, test-tiny.
 * Static storage; NULL past the end / for an unknown name. */
const orion_synth_shape *orion__synth_shape_at(int i);
const orion_synth_shape *orion__synth_shape_find(const char *name);

/* What happened to one tensor (progress reports). */
typedef struct orion_synth_progress {
    const char *name;
    orion_type  type;
    int64_t     index, count;      /* tensor index and tensor count */
    int64_t     n_elems;
    size_t      bytes;             /* bytes of this tensor in the file */
    size_t      bytes_done;        /* tensor bytes produced so far, this one included */
    size_t      bytes_total;       /* tensor bytes of the whole file */
} orion_synth_progress;

/* A CLIP vision tower + LLaVA projector shape (an mmproj file). */
typedef struct orion_synth_clip_shape {
    const char *name;             /* "vit-l-14-336", ... */
    int         image_size, patch_size;
    int         n_embd, n_ff, n_layer, n_head;
    int         n_mm, n_out;      /* projector: n_embd -> n_mm -> n_out */
} orion_synth_clip_shape;

/* The built-in CLIP shapes: vit-l-14-336 (LLaVA-1.5 7B's, projector 1024 ->
 * 4096 -> 4096), vit-l-14-336-13b (projector to 5120), test-tiny. Static
 * storage; NULL past the end / for an unknown name. */
const orion_synth_clip_shape *orion__synth_clip_shape_at(int i);
const orion_synth_clip_shape *orion__synth_clip_shape_find(const char *name);

typedef struct orion_synth_params {
    const char       *arch;       /* "llama" or "mistral"; NULL = the shape's */
    /* non-NULL: write a CLIP mmproj of this shape instead (shape, arch and
     * tokenizer are not used) */
    const orion_synth_clip_shape *clip;
    orion_synth_shape shape;
    orion_type        type;       /* weight matrices: f32 f16 bf16 q8_0 q4_0 q4_1 */
    uint64_t          seed;
    const char       *tokenizer;  /* llama2.c tokenizer.bin (required) */
    int               n_threads;  /* 0 = all CPUs */
    /* Called after each tensor is produced (on the calling thread); may be NULL. */
    void            (*on_tensor)(void *user, const orion_synth_progress *p);
    void             *user;
} orion_synth_params;

orion_synth_params orion__synth_default_params(void);

/* Checks a shape (positive sizes, heads divide n_embd, even head size,
 * n_head a multiple of n_head_kv). ORION_ERR_INVALID_ARG with a message. */
orion_status orion__synth_shape_check(const orion_synth_shape *s);

/* Writes a GGUF model to `path` (PATH.tmp, renamed when complete):
 *   general.architecture "llama" (Mistral: plus llama.attention.sliding_window),
 *   llama.* hyper-parameters, tokenizer.ggml.* from the tokenizer (its first
 *   n_vocab tokens when the shape asks for fewer);
 *   weights ~ N(0, 0.02^2) from a generator seeded by (seed, tensor name, row),
 *   so the bytes depend on neither the thread count nor the tensor order;
 *   norms = 1. Types follow orion_convert's rule: 1-D tensors f32;
 *   token_embd/output q8_0 when `type` is smaller than q8_0; a matrix whose
 *   rows are not a multiple of the block size f16.
 * Tensors are generated one at a time while writing, rows split over a thread
 * pool, so memory holds one tensor. Errors: ORION_ERR_INVALID_ARG (shape,
 * type, arch), ORION_ERR_NOT_FOUND / _FORMAT (tokenizer), ORION_ERR_RANGE (more
 * tokens asked than the tokenizer has), ORION_ERR_IO, ORION_ERR_NOMEM.
 * Thread-safe (no shared state). */
orion_status orion__synth_write(const char *path, const orion_synth_params *params);

/* ---- shared by synth.c and synth_clip.c ---- */

typedef enum orion_synth_fill { ORION_SYNTH_RANDOM, ORION_SYNTH_ONES, ORION_SYNTH_ZEROS } orion_synth_fill;

/* One tensor to generate: n_dims, ne (ne[0] the row length, unused = 1),
 * its type and values; the writer fills the rest. */
typedef struct orion_synth_tensor {
    char                    name[64];
    orion_type              type;
    int                     n_dims;
    int64_t                 ne[4];
    orion_synth_fill        fill;     /* RANDOM: N(0, 0.02^2) */
    size_t                  bytes;
    int64_t                 index;
    struct orion_synth_ctx *ctx;
} orion_synth_tensor;

/* Registers ts[0..n) on w, produces them (rows on a pool of p->n_threads,
 * seeded by p->seed and each name, progress to p->on_tensor) and writes the
 * file. */
orion_status orion__synth_write_tensors(const char *path, orion_gguf_writer *w, orion_synth_tensor *ts, int64_t n,
                                        const orion_synth_params *p);
/* The clip branch of orion__synth_write (synth_clip.c). */
orion_status orion__synth_clip_write(const char *path, const orion_synth_params *p);

#endif
