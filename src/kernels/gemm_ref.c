/*
 * gemm_ref.c — reference GEMM tiles and packing (the specification of the
 * GEMM section of the kernel table; matmul.c drives them).
 *
 * The product is y[b][o] = sum_k W[o][k] * x[b][k], W stored row-major as in
 * GGUF (one row per output). A tile covers a few outputs o times a group of
 * batch rows b. The SIMD tiles (x86/gemm_avx2.c) hold the tile in registers
 * as one vector of batch rows per output ("outer-product form": broadcast a
 * weight, multiply a vector of activations), which needs the activations
 * packed batch-minor but leaves the large weight matrix in its stored order.
 * These reference versions use the same packed layouts (kernels.h) and
 * compute each output with plain loops, so the driver, the packers and the
 * tiles can be checked against them one by one.
 *
 * Float tiles sum in k order in one float per output. Quantized tiles take
 * an exact integer sum per block and accumulate, in block order,
 *   q8_0: (d_w*d_a) * isum(q_w*q_a)
 *   q4_0: (d_w*d_a) * isum((q_w-8)*q_a)
 *   q4_1: (d_w*d_a) * isum(q_w*q_a) + m_w*s_a
 * exactly like dot_q8a_ref.c.
 */
#include "kernels/kernels.h"
#include "core/fp16.h"

#include <string.h>

/* ---- float weights -------------------------------------------------------- */

static void load_w_f32_ref(const void *w, int64_t ldw, int n_rows, int64_t k0, int64_t kc,
                           float *dst) {
    const float *src = w;
    for (int r = 0; r < n_rows; r++)
        for (int64_t k = 0; k < kc; k++) dst[r * kc + k] = src[r * ldw + k0 + k];
}

static void load_w_f16_ref(const void *w, int64_t ldw, int n_rows, int64_t k0, int64_t kc,
                           float *dst) {
    const uint16_t *src = w;
    for (int r = 0; r < n_rows; r++)
        for (int64_t k = 0; k < kc; k++) dst[r * kc + k] = orion__fp16_to_fp32(src[r * ldw + k0 + k]);
}

static void load_w_bf16_ref(const void *w, int64_t ldw, int n_rows, int64_t k0, int64_t kc,
                            float *dst) {
    const uint16_t *src = w;
    for (int r = 0; r < n_rows; r++)
        for (int64_t k = 0; k < kc; k++) dst[r * kc + k] = orion__bf16_to_fp32(src[r * ldw + k0 + k]);
}

static void pack_x_f_ref(const float *x, int64_t ldx, int n_b, int64_t kc, float *dst) {
    for (int64_t k = 0; k < kc; k++)
        for (int b = 0; b < ORION_GEMM_F_NB; b++)
            dst[k * ORION_GEMM_F_NB + b] = b < n_b ? x[b * ldx + k] : 0.0f;
}

static void tile_f_ref(int64_t kc, const float *w, int64_t ldw, int n_o, const float *xp, int n_b,
                       float *y, int64_t ldy, bool acc, const orion_gemm_prefetch *pf) {
    (void)pf; /* a hint only */
    for (int o = 0; o < n_o; o++) {
        for (int b = 0; b < n_b; b++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < kc; k++) sum += w[o * ldw + k] * xp[k * ORION_GEMM_F_NB + b];
            y[b * ldy + o] = acc ? y[b * ldy + o] + sum : sum;
        }
    }
}

/* ---- quantized weights ---------------------------------------------------- */

static void pack_x_q_ref(const orion_block_q8a *x, int64_t ldx, int n_b, int64_t nb,
                         orion_gemm_qx *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qx *p = &dst[blk];
        memset(p, 0, sizeof *p);
        for (int b = 0; b < n_b; b++) {
            const orion_block_q8a *src = &x[b * ldx + blk];
            int32_t sum = 0;
            for (int k = 0; k < ORION_QK; k++) {
                p->qs[(k / 4) * 4 * ORION_GEMM_Q_NB + b * 4 + k % 4] = src->qs[k];
                sum += src->qs[k];
            }
            p->d[b] = src->d;
            p->s[b] = src->s;
            p->sum8[b] = 8 * sum;
        }
    }
}

static void pack_w_q8_0_ref(const void *w, size_t row_bytes, int n_rows, int64_t b0, int64_t nb,
                            orion_gemm_qw *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qw *p = &dst[blk];
        memset(p, 0, sizeof *p);
        for (int r = 0; r < n_rows; r++) {
            const orion_block_q8_0 *src =
                (const orion_block_q8_0 *)((const char *)w + (size_t)r * row_bytes) + b0 + blk;
            memcpy(p->qs[r], src->qs, ORION_QK);
            p->d[r] = orion__fp16_to_fp32(src->d);
        }
    }
}

static void pack_w_q4_0_ref(const void *w, size_t row_bytes, int n_rows, int64_t b0, int64_t nb,
                            orion_gemm_qw *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qw *p = &dst[blk];
        memset(p, 0, sizeof *p);
        for (int r = 0; r < n_rows; r++) {
            const orion_block_q4_0 *src =
                (const orion_block_q4_0 *)((const char *)w + (size_t)r * row_bytes) + b0 + blk;
            for (int j = 0; j < ORION_QK / 2; j++) {
                p->qs[r][j] = src->qs[j] & 15;
                p->qs[r][j + ORION_QK / 2] = src->qs[j] >> 4;
            }
            p->d[r] = orion__fp16_to_fp32(src->d);
        }
    }
}

static void pack_w_q4_1_ref(const void *w, size_t row_bytes, int n_rows, int64_t b0, int64_t nb,
                            orion_gemm_qw *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qw *p = &dst[blk];
        memset(p, 0, sizeof *p);
        for (int r = 0; r < n_rows; r++) {
            const orion_block_q4_1 *src =
                (const orion_block_q4_1 *)((const char *)w + (size_t)r * row_bytes) + b0 + blk;
            for (int j = 0; j < ORION_QK / 2; j++) {
                p->qs[r][j] = src->qs[j] & 15;
                p->qs[r][j + ORION_QK / 2] = src->qs[j] >> 4;
            }
            p->d[r] = orion__fp16_to_fp32(src->d);
            p->m[r] = orion__fp16_to_fp32(src->m);
        }
    }
}

/* Exact integer sum over one block of (weight quant + offset) * activation
 * for output o and batch row b; signed_w reads the quants as int8. */
static int32_t block_isum(const orion_gemm_qw *w, const orion_gemm_qx *x, int o, int b,
                          bool signed_w, int32_t offset) {
    int32_t isum = 0;
    for (int k = 0; k < ORION_QK; k++) {
        int32_t q = signed_w ? (int32_t)(int8_t)w->qs[o][k] : (int32_t)w->qs[o][k];
        isum += (q + offset) * x->qs[(k / 4) * 4 * ORION_GEMM_Q_NB + b * 4 + k % 4];
    }
    return isum;
}

static void tile_q_ref(orion_type t, int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x,
                       int n_o, int n_b, float *y, int64_t ldy, bool acc) {
    for (int o = 0; o < n_o; o++) {
        for (int b = 0; b < n_b; b++) {
            float sum = 0.0f;
            for (int64_t blk = 0; blk < nb; blk++) {
                const float dd = w[blk].d[o] * x[blk].d[b];
                if (t == ORION_TYPE_Q8_0)
                    sum += dd * (float)block_isum(&w[blk], &x[blk], o, b, true, 0);
                else if (t == ORION_TYPE_Q4_0)
                    sum += dd * (float)block_isum(&w[blk], &x[blk], o, b, false, -8);
                else
                    sum += dd * (float)block_isum(&w[blk], &x[blk], o, b, false, 0) +
                           w[blk].m[o] * x[blk].s[b];
            }
            y[b * ldy + o] = acc ? y[b * ldy + o] + sum : sum;
        }
    }
}

static void tile_q8_0_ref(int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o,
                          int n_b, float *y, int64_t ldy, bool acc, const orion_gemm_prefetch *pf) {
    (void)pf;
    tile_q_ref(ORION_TYPE_Q8_0, nb, w, x, n_o, n_b, y, ldy, acc);
}

static void tile_q4_0_ref(int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o,
                          int n_b, float *y, int64_t ldy, bool acc, const orion_gemm_prefetch *pf) {
    (void)pf;
    tile_q_ref(ORION_TYPE_Q4_0, nb, w, x, n_o, n_b, y, ldy, acc);
}

static void tile_q4_1_ref(int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o,
                          int n_b, float *y, int64_t ldy, bool acc, const orion_gemm_prefetch *pf) {
    (void)pf;
    tile_q_ref(ORION_TYPE_Q4_1, nb, w, x, n_o, n_b, y, ldy, acc);
}

void orion__register_gemm_ref(orion_kernels *k) {
    k->gemm_f_load_w[ORION_TYPE_F32] = load_w_f32_ref;
    k->gemm_f_load_w[ORION_TYPE_F16] = load_w_f16_ref;
    k->gemm_f_load_w[ORION_TYPE_BF16] = load_w_bf16_ref;
    k->gemm_f_pack_x = pack_x_f_ref;
    k->gemm_f_tile = tile_f_ref;

    k->gemm_q_pack_x = pack_x_q_ref;
    k->gemm_q_pack_w[ORION_TYPE_Q8_0] = pack_w_q8_0_ref;
    k->gemm_q_pack_w[ORION_TYPE_Q4_0] = pack_w_q4_0_ref;
    k->gemm_q_pack_w[ORION_TYPE_Q4_1] = pack_w_q4_1_ref;
    k->gemm_q_tile[ORION_TYPE_Q8_0] = tile_q8_0_ref;
    k->gemm_q_tile[ORION_TYPE_Q4_0] = tile_q4_0_ref;
    k->gemm_q_tile[ORION_TYPE_Q4_1] = tile_q4_1_ref;
}
