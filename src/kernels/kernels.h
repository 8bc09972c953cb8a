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

/* Requests bytes from p into the caches, a 64-byte line at a time (for reads
 * the hardware prefetchers do not foresee). On x86 an asm statement: GCC 12
 * deleted an inlined loop of nothing but __builtin_prefetch as dead code. */
static inline void orion__prefetch_lines(const void *p, size_t bytes) {
    const char *c = (const char *)p;
    for (size_t off = 0; off < bytes; off += 64) {
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("prefetcht0 %0" : : "m"(c[off]));
#else
        __builtin_prefetch(c + off, 0, 3);
#endif
    }
}

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

/* ---- packed GEMM operands (GEMM section; gemm_ref.c, x86/gemm_avx2.c) ----- */
#define ORION_GEMM_F_MO 6   /* float tile: outputs (weight rows) per tile */
#define ORION_GEMM_F_NB 16  /* float tile: batch rows per tile (two ymm of f32) */
#define ORION_GEMM_Q_MO 4   /* int8 tile: outputs per tile */
#define ORION_GEMM_Q_NB 8   /* int8 tile: batch rows per tile (one ymm of i32) */

/* ORION_GEMM_Q_NB batch rows of one q8a block, interleaved so that 4
 * consecutive k of the 8 rows fill one 32-byte vector:
 * qs[(k/4)*32 + b*4 + k%4] = row b's quant k. Rows past the batch are 0. */
typedef struct orion_gemm_qx {
    int8_t  qs[ORION_QK * ORION_GEMM_Q_NB];
    float   d[ORION_GEMM_Q_NB];     /* q8a scale of each row's block */
    float   s[ORION_GEMM_Q_NB];     /* q8a d * sum(qs) of each row's block */
    int32_t sum8[ORION_GEMM_Q_NB];  /* 8 * sum(qs), exact (q4_0 offset) */
} orion_gemm_qx;
static_assert(sizeof(orion_gemm_qx) == 352, "orion_gemm_qx must be 352 bytes");

/* ORION_GEMM_Q_MO weight rows of one block: quants as bytes in k order
 * (q4_0/q4_1: unsigned nibbles 0..15; q8_0: int8 bits), f32 scales and
 * minimums (m = 0 for q4_0 and q8_0). Rows past n_out are 0. */
typedef struct orion_gemm_qw {
    uint8_t qs[ORION_GEMM_Q_MO][ORION_QK];
    float   d[ORION_GEMM_Q_MO];
    float   m[ORION_GEMM_Q_MO];
} orion_gemm_qw;
static_assert(sizeof(orion_gemm_qw) == 160, "orion_gemm_qw must be 160 bytes");

/* Memory a GEMM tile should prefetch while it computes (the driver passes
 * the next weight panel): n_rows runs of `bytes` bytes, `stride` apart. */
typedef struct orion_gemm_prefetch {
    const char *base;
    size_t      stride;
    size_t      bytes;
    int         n_rows;
} orion_gemm_prefetch;

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
typedef void  (*orion_rows_dot_fn)(int64_t n_rows, const void *rows, size_t stride, int64_t n, const float *x,
                                   int n_x, float *out);
typedef void  (*orion_rows_axpy_fn)(int64_t n_rows, const void *rows, size_t stride, int64_t n, const float *a,
                                    int n_x, float *y);
typedef float (*orion_dot_q8a_fn)(int64_t n, const void *w, const orion_block_q8a *x);
typedef void  (*orion_dot_q8a_rows_fn)(int64_t n, const void *w, size_t row_bytes, int n_rows,
                                       const orion_block_q8a *x, float *out);

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
    /* Attention over cached rows of n values (row i at rows + i * stride
     * bytes; n a multiple of 32 for the block types) for n_x queries that
     * share them (the query heads of one KV head), query j's vector at
     * x + j * n:
     *   rows_dot:  out[j * n_rows + i] = dot_f32(n, row i, x_j) (within
     *              dot_f32's bound);
     *   rows_axpy: y_j[d] += sum over i < n_rows of a[j * n_rows + i] *
     *              row_i[d], rows in order, y_j at y + j * n (the weighted
     *              sums of values). */
    orion_rows_dot_fn       rows_dot[ORION_TYPE_COUNT];
    orion_rows_axpy_fn      rows_axpy[ORION_TYPE_COUNT];

    /* == activation int8 section (dot_q8a_ref.c, x86/dot_q8a_avx2.c) ======= */
    /* Quantize n f32 activations (n % 32 == 0) into n/32 q8a blocks. */
    void (*quantize_q8a)(const float *x, orion_block_q8a *y, int64_t n);
    /* Dot product of one weight row with q8a activations; set for the
     * quantized types (q8_0, q4_0, q4_1), NULL for float types. */
    orion_dot_q8a_fn        dot_q8a[ORION_TYPE_COUNT];
    /* out[r] = dot_q8a of weight row r (at w + r*row_bytes) with x, for
     * r < n_rows (any n_rows >= 1): a thread's whole range of rows in one
     * call, so a kernel can prepare the activation side once and choose its
     * own order over the rows. Same bound as dot_q8a. May be NULL (then
     * matmul.c calls dot_q8a per row). */
    orion_dot_q8a_rows_fn   dot_q8a_rows[ORION_TYPE_COUNT];

    /* == GEMM section (gemm_ref.c, x86/gemm_avx2.c; owned by matmul.c) ===== */
    /* Tiles of y[b][o] (+)= sum_k W[o][k] * x[b][k], outer-product form: a
     * tile holds a few outputs o (weights broadcast) times a vector of batch
     * rows b (activations packed batch-minor), so W is never transposed. The
     * packed layouts are fixed by the structs and constants above; any entry
     * may be NULL, and then matmul.c falls back to per-row dot products.
     *
     * Float weights (f32, f16, bf16), tile ORION_GEMM_F_MO x ORION_GEMM_F_NB: */
    /* Copies rows [0, n_rows) (n_rows <= ORION_GEMM_F_MO), columns [k0, k0+kc)
     * of W (row stride ldw elements of the type) into dst[n_rows][kc] as f32. */
    void (*gemm_f_load_w[ORION_TYPE_COUNT])(const void *w, int64_t ldw, int n_rows,
                                            int64_t k0, int64_t kc, float *dst);
    /* Packs n_b <= ORION_GEMM_F_NB rows of x (row stride ldx), kc columns from
     * x, into dst[kc][ORION_GEMM_F_NB], zero-filling rows n_b.. */
    void (*gemm_f_pack_x)(const float *x, int64_t ldx, int n_b, int64_t kc, float *dst);
    /* y[b][o] (+)= sum_{k<kc} w[o*ldw + k] * xp[k*NB + b] for o < n_o, b < n_b
     * (y row stride ldy); acc = false overwrites y, true adds to it. Reads
     * w rows [0, n_o) only. pf (may be NULL) is memory to prefetch meanwhile. */
    void (*gemm_f_tile)(int64_t kc, const float *w, int64_t ldw, int n_o,
                        const float *xp, int n_b, float *y, int64_t ldy, bool acc,
                        const orion_gemm_prefetch *pf);

    /* Quantized weights (q8_0, q4_0, q4_1) times q8a activations, tile
     * ORION_GEMM_Q_MO x ORION_GEMM_Q_NB, integer sums per block: */
    /* Packs n_b <= ORION_GEMM_Q_NB q8a rows (row r at x + r*ldx), nb blocks
     * each, into nb orion_gemm_qx blocks (zero rows for n_b..). */
    void (*gemm_q_pack_x)(const orion_block_q8a *x, int64_t ldx, int n_b, int64_t nb,
                          orion_gemm_qx *dst);
    /* Packs rows [0, n_rows) (n_rows <= ORION_GEMM_Q_MO; row r at
     * w + r*row_bytes), blocks [b0, b0+nb) into nb orion_gemm_qw blocks
     * (zero rows for n_rows..). */
    void (*gemm_q_pack_w[ORION_TYPE_COUNT])(const void *w, size_t row_bytes, int n_rows,
                                            int64_t b0, int64_t nb, orion_gemm_qw *dst);
    /* y[b][o] (+)= sum over nb blocks of the block dot products, for o < n_o,
     * b < n_b (y row stride ldy); acc and pf as above. */
    void (*gemm_q_tile[ORION_TYPE_COUNT])(int64_t nb, const orion_gemm_qw *w,
                                          const orion_gemm_qx *x, int n_o, int n_b,
                                          float *y, int64_t ldy, bool acc,
                                          const orion_gemm_prefetch *pf);

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

/* ---- attention (attend.c) ------------------------------------------------------
 * nh query heads that share one KV head (q: nh x hd floats) over n cached
 * rows of it (K and V: row i at + i * stride bytes, in kv_type), with the
 * kernels of table k: scores (nh x n floats, the caller's scratch) =
 * softmax(q K^T / sqrt(hd)) per head, out (nh x hd) = scores V. */
void orion__attend(const orion_kernels *k, orion_type kv_type, int64_t n, const void *K, const void *V,
                   size_t stride, int64_t hd, const float *q, int nh, float *scores, float *out);

/* Calibrated quantization (quant_calib.c): per block, search the scale (and
 * minimum) minimizing the importance-weighted squared error. importance may
 * be NULL (all ones); it holds n values (per column of the row). */
void orion__quantize_row_calibrated(orion_type type, const float *x, void *y,
                                    int64_t n, const float *importance);

/* ---- GPTQ (quant_gptq.c) ------------------------------------------------------
 * Quantizes a weight matrix W (n_rows x n_in floats, GGUF order: a row is one
 * output, blocks of 32 consecutive inputs) to q4_0, q4_1 or q8_0 blocks so
 * that sum over rows of (w - q)^T H (w - q) is small, where H = X^T X
 * (n_in x n_in doubles, only the upper triangle j >= i is read) holds the
 * calibration inputs the matrix multiplies. The blocks are ordinary GGUF
 * blocks. Algorithm and costs: the comment at the top of quant_gptq.c. */
#define ORION_GPTQ_TILE 4 /* rows quantize_rows processes together (they share U's reads) */

typedef struct orion__gptq_params {
    /* lambda = damp * mean(diag H) is added to H's diagonal (default 0.01);
     * >= 0. Multiplied by 10 per retry while H is not positive definite. */
    double damp;
    /* false: each block's parameters by the reference rule (quant_ref.c)
     * from the block's error-updated weights; true: by the calibrated search
     * (quant_calib.c) weighted by GPTQ's per-column cost 1/U_jj^2. */
    bool   search_scale;
} orion__gptq_params;

orion__gptq_params orion__gptq_default_params(void);

/* The factored Hessian: prepared once, then used for any number of rows. */
typedef struct orion__gptq orion__gptq;

/* Factors h (n_in x n_in; the caller keeps it, it is not referenced after
 * the call). Memory: 2 * n_in^2 doubles while it runs, n_in^2 kept. Errors:
 * ORION_ERR_INVALID_ARG (NULL, n_in out of [1, 131072], a negative or
 * non-finite entry, not positive definite after 6 dampings),
 * ORION_ERR_NOMEM, ORION_ERR_RANGE. Dead inputs (H_ii == 0) are allowed:
 * their weights are quantized as 0. */
orion_status orion__gptq_init(const double *h, int64_t n_in, const orion__gptq_params *params,
                              orion__gptq **out);
void         orion__gptq_free(orion__gptq *g); /* NULL is a no-op */
int64_t      orion__gptq_n_in(const orion__gptq *g);
/* The damping actually added to the diagonal (after any retries). */
double       orion__gptq_damping(const orion__gptq *g);

/* Quantizes n_rows rows of n_in floats (w, row-major) into dst
 * (n_rows * orion_type_row_bytes(type, n_in) bytes). deq (may be NULL;
 * n_rows x n_in floats) receives the values the algorithm assumed, which are
 * exactly what dequantize_row returns for dst. n_in must be a multiple of
 * 32. Allocates ORION_GPTQ_TILE rows of doubles. Errors: ORION_ERR_UNSUPPORTED
 * (type), ORION_ERR_INVALID_ARG (NULL, shape, a non-finite weight),
 * ORION_ERR_RANGE (a block's scale outside f16), ORION_ERR_NOMEM. Rows are
 * independent, so callers may split them over threads with one g. */
orion_status orion__gptq_quantize_rows(const orion__gptq *g, orion_type type, const float *w, int64_t n_rows,
                                       void *dst, float *deq);

/* init + quantize_rows over the pool (NULL: the calling thread) + free. */
orion_status orion__quantize_gptq(orion_type type, const float *w, int64_t n_rows, int64_t n_in,
                                  const double *h, const orion__gptq_params *params, orion_threadpool *pool,
                                  void *dst, float *deq);

/* (w - q)^T H (w - q) for one row of n values (q NULL: w^T H w), H read
 * from its upper triangle: the output error that GPTQ minimizes. ref (may
 * be NULL) receives w^T H w from the same pass. */
double orion__gptq_output_error(const double *h, int64_t n, const float *w, const float *q, double *ref);

/* One weight of orion__matmul_multi: y (n_batch rows of n_out floats) = W x. */
typedef struct orion__matmul_part {
    orion_type  wtype;
    const void *w;
    int64_t     n_out;
    float      *y;
} orion__matmul_part;

/* orion_matmul of every part with the same x (n_batch rows of n_in floats).
 * At matrix-vector batch sizes with quantized weights, x is quantized once
 * and all the parts run in one pass of the pool (rows split by bytes);
 * otherwise the parts run one after the other. Errors as orion_matmul. */
orion_status orion__matmul_multi(orion_threadpool *pool, orion_arena *scratch, int64_t n_in, const float *x,
                                 int64_t n_batch, const orion__matmul_part *parts, int n_parts);

#endif /* ORION_KERNELS_H */
