/*
 * kernels.h — internal interface of the kernels layer: on-disk block layouts
 * (identical to GGUF/ggml), the activation block used by the int8 fast path,
 * and the table of kernel functions chosen once at start-up.
 *
 * How dispatch works: every kernel has a plain-C reference in a *_ref.c file
 * that is the specification and is never optimized. SIMD versions live in
 * per-ISA files (x86/NAME_avx2.c, compiled with -mavx2 -mfma -mf16c) and are
 * installed over the reference entries by their register function. dispatch.c
 * builds two tables: "ref" (references only) and the best SIMD table this CPU
 * runs; orion__kernels() returns the SIMD one unless ORION_FORCE_REF=1. Tests
 * compare every entry of the SIMD table with the reference table.
 *
 * Shapes: a "row" is n consecutive elements of one type; n is a multiple of
 * the type's block size (32 for the quantized types).
 */
#ifndef ORION_KERNELS_H
#define ORION_KERNELS_H

#include "core/core.h"

#include <assert.h>
#include <stdint.h>

#define ORION_QK 32 /* elements per quantized block, for every quantized type */

/* q8_0: w[i] = d * qs[i]. 34 bytes per 32 weights (8.5 bits/weight). */
typedef struct orion_block_q8_0 {
    uint16_t d;             /* scale, IEEE f16 */
    int8_t   qs[ORION_QK];  /* quants */
} orion_block_q8_0;
static_assert(sizeof(orion_block_q8_0) == 2 + ORION_QK, "q8_0 block must be 34 bytes");

/* q4_0: w[j] = d * ((qs[j] & 15) - 8), w[j+16] = d * ((qs[j] >> 4) - 8),
 * for j < 16. 18 bytes per 32 weights (4.5 bits/weight). */
typedef struct orion_block_q4_0 {
    uint16_t d;                 /* scale, IEEE f16 */
    uint8_t  qs[ORION_QK / 2];  /* nibbles: low = element j, high = j + 16 */
} orion_block_q4_0;
static_assert(sizeof(orion_block_q4_0) == 2 + ORION_QK / 2, "q4_0 block must be 18 bytes");

/* q4_1: w[j] = d * (qs[j] & 15) + m, w[j+16] = d * (qs[j] >> 4) + m.
 * 20 bytes per 32 weights (5 bits/weight). */
typedef struct orion_block_q4_1 {
    uint16_t d;                 /* scale, IEEE f16 */
    uint16_t m;                 /* minimum, IEEE f16 */
    uint8_t  qs[ORION_QK / 2];  /* nibbles, as q4_0 */
} orion_block_q4_1;
static_assert(sizeof(orion_block_q4_1) == 4 + ORION_QK / 2, "q4_1 block must be 20 bytes");

/* Activations quantized on the fly for the int8 dot products (never stored
 * in files): x[i] ~= d * qs[i], with qs in [-127, 127] (d = max|x| / 127,
 * round to nearest), and s = d * sum(qs) kept for the offset/min terms of
 * q4_0 and q4_1. 40 bytes per 32 activations. */
typedef struct orion_block_q8a {
    float  d;
    float  s;
    int8_t qs[ORION_QK];
} orion_block_q8a;
static_assert(sizeof(orion_block_q8a) == 8 + ORION_QK, "q8a block must be 40 bytes");

/* ---- type traits (types.c) ------------------------------------------------ */
typedef struct orion_type_traits {
    const char *name;
    int64_t     block_elems;   /* elements per block */
    size_t      block_bytes;   /* bytes per block */
    bool        quantized;     /* uses the int8 (q8a) dot path */
} orion_type_traits;

/* Traits of a supported type, NULL for any other id. */
const orion_type_traits *orion__type_traits(int type);

/* ---- the kernel table ------------------------------------------------------ */

typedef void  (*orion_quantize_row_fn)(const float *x, void *y, int64_t n);
typedef void  (*orion_dequantize_row_fn)(const void *x, float *y, int64_t n);
typedef float (*orion_dot_f32_fn)(int64_t n, const void *w, const float *x);
typedef float (*orion_dot_q8a_fn)(int64_t n, const void *w, const orion_block_q8a *x);

typedef struct orion_kernels {
    const char *name; /* "ref", "avx2" */

    /* == quantization section (quant_ref.c, x86/quant_avx2.c) ============== */
    /* Row conversion f32 -> type, by the reference rule; every variant must
     * produce identical bytes. Indexed by orion_type; NULL = unsupported. */
    orion_quantize_row_fn   quantize_row[ORION_TYPE_COUNT];
    /* Row conversion type -> f32 (exact for the stored values). */
    orion_dequantize_row_fn dequantize_row[ORION_TYPE_COUNT];
    /* Dot product of one weight row (any type) with n f32 activations. */
    orion_dot_f32_fn        dot_f32[ORION_TYPE_COUNT];

    /* == activation int8 section (dot_q8a_ref.c, x86/dot_q8a_avx2.c) ======= */
    /* Quantize n f32 activations (n % 32 == 0) into n/32 q8a blocks. */
    void (*quantize_q8a)(const float *x, orion_block_q8a *y, int64_t n);
    /* Dot product of one weight row with q8a activations; set for the
     * quantized types (q8_0, q4_0, q4_1), NULL for float types. */
    orion_dot_q8a_fn        dot_q8a[ORION_TYPE_COUNT];

    /* == GEMM section (gemm_ref.c, x86/gemm_avx2.c; owned by matmul.c) ===== */
    /* Fields added by the GEMM implementation go here. */

    /* == elementwise section (ops_ref.c, x86/ops_avx2.c) =================== */
    void (*fp16_to_f32)(const uint16_t *x, float *y, int64_t n);
    void (*f32_to_fp16)(const float *x, uint16_t *y, int64_t n);  /* round to nearest even */
    void (*bf16_to_f32)(const uint16_t *x, float *y, int64_t n);
    void (*f32_to_bf16)(const float *x, uint16_t *y, int64_t n);  /* round to nearest even */
    /* In place, numerically stable (subtracts the max). */
    void (*softmax)(float *x, int64_t n);
    /* y = (x - mean) / sqrt(var + eps) * gamma + beta; gamma/beta may be NULL
     * (then 1 and 0). y may equal x. */
    void (*layernorm)(const float *x, float *y, int64_t n,
                      const float *gamma, const float *beta, float eps);
    /* y = x / sqrt(mean(x^2) + eps) * gamma; gamma may be NULL. y may equal x. */
    void (*rmsnorm)(const float *x, float *y, int64_t n, const float *gamma, float eps);
    void (*gelu)(const float *x, float *y, int64_t n);       /* 0.5x(1+erf(x/sqrt2)) */
    void (*gelu_tanh)(const float *x, float *y, int64_t n);  /* tanh approximation */
    void (*silu)(const float *x, float *y, int64_t n);       /* x * sigmoid(x) */
    void (*add)(const float *a, const float *b, float *y, int64_t n);
    void (*mul)(const float *a, const float *b, float *y, int64_t n);
    void (*scale)(const float *x, float s, float *y, int64_t n);
} orion_kernels;

/* The table in use: the best SIMD set for this CPU, or the references when
 * ORION_FORCE_REF=1 or no SIMD set applies. Built once; thread-safe. */
const orion_kernels *orion__kernels(void);
/* The plain-C reference table. */
const orion_kernels *orion__kernels_ref(void);
/* The best SIMD table this CPU can run, or NULL (ignores ORION_FORCE_REF, so
 * tests can compare it with the reference). */
const orion_kernels *orion__kernels_simd(void);

/* Register functions: each fills its section of the table. The *_avx2 ones
 * are called after the *_ref ones and override what they implement. */
void orion__register_quant_ref(orion_kernels *k);
void orion__register_dot_q8a_ref(orion_kernels *k);
void orion__register_gemm_ref(orion_kernels *k);
void orion__register_ops_ref(orion_kernels *k);
#if defined(ORION_HAVE_X86)
void orion__register_quant_avx2(orion_kernels *k);
void orion__register_dot_q8a_avx2(orion_kernels *k);
void orion__register_gemm_avx2(orion_kernels *k);
void orion__register_ops_avx2(orion_kernels *k);
#endif

/* Calibrated quantization (quant_calib.c): per block, search the scale (and
 * minimum) minimizing the importance-weighted squared error. importance may
 * be NULL (all ones); it holds n values (per column of the row). */
void orion__quantize_row_calibrated(orion_type type, const float *x, void *y,
                                    int64_t n, const float *importance);

#endif /* ORION_KERNELS_H */
