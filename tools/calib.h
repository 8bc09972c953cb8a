/*
 * calib.h — calibration for the quantizers: run a model over a text with an
 * activation observer (calib_run.c; used by `orion imatrix` and by
 * `orion quantize/convert --gptq`), and collect the Hessians X^T X that GPTQ
 * needs, per weight tensor (calib_hessian.c).
 */
#ifndef ORION_CALIB_H
#define ORION_CALIB_H

#include "orion.h"

#include <stddef.h>
#include <stdint.h>

typedef struct calib_opts {
    int ctx;         /* decoders: tokens per chunk (>= 16) */
    int max_chunks;  /* decoders: chunks; encoders: texts; 0 = all */
    int n_threads;   /* 0 = all CPUs */
    /* decoders: also run the output head over every position, so it is
     * observed too (GPTQ; llama.cpp's imatrix leaves it out, and so does
     * orion imatrix) */
    bool with_head;
} calib_opts;

typedef struct calib_result {
    bool encoder;    /* a sentence encoder: one text per line */
    int  n;          /* texts (encoder) or chunks of ctx tokens (decoder) run */
} calib_result;

/* Runs `model` (a GGUF file) over the text file `text_path` with `fn`
 * observing the input of every matrix product. A sentence encoder
 * (orion_embed_load succeeds) embeds every non-empty line, 32 at a time; a
 * decoder evaluates the text's tokens in chunks of o->ctx, each starting
 * with BOS. Failures are printed to stderr as "orion CMD: why"; returns 0 on
 * success, 1 on failure (no texts or no whole chunk included). */
int calib_run(const char *cmd, const char *model, const char *text_path, const calib_opts *o,
              orion_llm_observer fn, void *user, calib_result *res);

/* ---- Hessians for GPTQ (calib_hessian.c) ------------------------------------
 * H = sum over observed rows x of x^T x (n_in x n_in, double), one per
 * weight tensor name, all of them together limited to max_bytes. Rows are
 * multiplied in f32 in chunks of at most 1024 rows (orion_matmul on the
 * collector's own pool) and the chunks summed in double. */
typedef struct calib_hessians calib_hessians;

/* NULL when out of memory. */
calib_hessians *calib_hessians_new(size_t max_bytes, int n_threads);
void            calib_hessians_free(calib_hessians *h);
/* An orion_llm_observer (user = the collector). After the first failure
 * (memory, the limit) it records nothing more: see calib_hessians_error. */
void            calib_hessians_observe(void *user, const char *name, const float *x, int64_t n_rows, int64_t n_in);
/* NULL while all is well, else why collection stopped. */
const char     *calib_hessians_error(const calib_hessians *h);
/* Tensors seen and the bytes their Hessians hold. */
int             calib_hessians_count(const calib_hessians *h);
size_t          calib_hessians_bytes(const calib_hessians *h);
/* For orion_convert_params.hessian (user = the collector): the full
 * symmetric H of `name`, or NULL when it was not seen with that width. */
const double   *calib_hessians_get(void *user, const char *name, int64_t n_in);

#endif
