/*
 * quant_ref.c — the plain-C reference of the quantization section of the
 * kernel table: row conversion f32 -> type (quantize_row), type -> f32
 * (dequantize_row) and the dot product of a weight row of any type with f32
 * activations (dot_f32), for f32, f16, bf16, q8_0, q4_0 and q4_1.
 *
 * This file is the specification: every SIMD variant must produce the same
 * bytes (quantize, dequantize) or stay within the documented error bound of
 * this code (dot_f32). It is written for clarity and is never optimized.
 *
 * The quantizers follow the numeric rules of llama.cpp's reference
 * quantizers, so for finite inputs the bytes are those of a GGUF file
 * written by llama.cpp (per block of 32 values x[0..31]):
 *
 *   q8_0  amax = max|x|; d = amax / 127; id = d ? 1/d : 0;
 *         q = roundf(x * id) (half away from zero); d stored as f16.
 *   q4_0  max = the first x with the largest |x| (sign kept); d = max / -8;
 *         id = d ? 1/d : 0; q = min(15, trunc(x * id + 8.5));
 *         qs[j] = q[j] | q[j + 16] << 4; d stored as f16.
 *   q4_1  min, max of x; d = (max - min) / 15; id = d ? 1/d : 0;
 *         q = min(15, trunc((x - min) * id + 0.5)); d and m = min as f16.
 *
 * The scales are computed in float from the unrounded values and only then
 * rounded to f16, as llama.cpp does. Products and sums are separate roundings
 * (the build uses -ffp-contract=off), in the order written.
 *
 * Non-finite inputs and degenerate scales: C leaves a float -> int
 * conversion of an out-of-range value or NaN undefined, so every conversion
 * here goes through a clamping helper: NaN quantizes to the lowest code
 * (q8_0: 0), values beyond the range to its ends. NaNs are ignored when the
 * block's max/min are taken (a comparison with NaN is false). The same rules
 * are followed by the SIMD versions, so the bytes agree for every input.
 *
 * dot_f32 accumulates sum = sum + w[i] * x[i] in one float, i = 0 .. n-1 in
 * order, where w[i] is the weight as dequantize_row would return it. The
 * product is rounded before the addition.
 */
#include "kernels/kernels.h"
#include "core/fp16.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* float -> int with the q8_0 rule: round half away from zero, clamp to
 * [-127, 127]; NaN -> 0. */
static int round_q8(float v) {
    if (v != v) return 0;
    float r = roundf(v);
    if (r < -127.0f) return -127;
    if (r > 127.0f) return 127;
    return (int)r;
}

/* float -> int with the 4-bit rule: truncate toward zero (the values are
 * >= 0 for finite inputs, so this is floor), clamp to [0, 15]; NaN -> 0. */
static int trunc_q4(float v) {
    if (!(v >= 0.0f)) return 0;
    if (v >= 15.0f) return 15;
    return (int)v;
}

/* ---- f32 ------------------------------------------------------------------ */

static void quantize_row_f32(const float *x, void *y, int64_t n) {
    if (n > 0) memcpy(y, x, (size_t)n * sizeof(float));
}

static void dequantize_row_f32(const void *x, float *y, int64_t n) {
    if (n > 0) memcpy(y, x, (size_t)n * sizeof(float));
}

static float dot_f32_f32(int64_t n, const void *w, const float *x) {
    const float *ww = (const float *)w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += ww[i] * x[i];
    return sum;
}

/* ---- f16 ------------------------------------------------------------------ */

static void quantize_row_f16(const float *x, void *y, int64_t n) {
    uint16_t *h = (uint16_t *)y;
    for (int64_t i = 0; i < n; i++) h[i] = orion__fp32_to_fp16(x[i]);
}

static void dequantize_row_f16(const void *x, float *y, int64_t n) {
    const uint16_t *h = (const uint16_t *)x;
    for (int64_t i = 0; i < n; i++) y[i] = orion__fp16_to_fp32(h[i]);
}

static float dot_f32_f16(int64_t n, const void *w, const float *x) {
    const uint16_t *h = (const uint16_t *)w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += orion__fp16_to_fp32(h[i]) * x[i];
    return sum;
}

/* ---- bf16 ----------------------------------------------------------------- */

static void quantize_row_bf16(const float *x, void *y, int64_t n) {
    uint16_t *h = (uint16_t *)y;
    for (int64_t i = 0; i < n; i++) h[i] = orion__fp32_to_bf16(x[i]);
}

static void dequantize_row_bf16(const void *x, float *y, int64_t n) {
    const uint16_t *h = (const uint16_t *)x;
    for (int64_t i = 0; i < n; i++) y[i] = orion__bf16_to_fp32(h[i]);
}

static float dot_f32_bf16(int64_t n, const void *w, const float *x) {
    const uint16_t *h = (const uint16_t *)w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += orion__bf16_to_fp32(h[i]) * x[i];
    return sum;
}

/* ---- q8_0 ----------------------------------------------------------------- */

static void quantize_row_q8_0(const float *x, void *y, int64_t n) {
    orion_block_q8_0 *b = (orion_block_q8_0 *)y;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        float amax = 0.0f;
        for (int j = 0; j < ORION_QK; j++) {
            float a = fabsf(xb[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = orion__fp32_to_fp16(d);
        for (int j = 0; j < ORION_QK; j++) b[i].qs[j] = (int8_t)round_q8(xb[j] * id);
    }
}

static void dequantize_row_q8_0(const void *x, float *y, int64_t n) {
    const orion_block_q8_0 *b = (const orion_block_q8_0 *)x;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float d = orion__fp16_to_fp32(b[i].d);
        for (int j = 0; j < ORION_QK; j++) y[i * ORION_QK + j] = (float)b[i].qs[j] * d;
    }
}

static float dot_f32_q8_0(int64_t n, const void *w, const float *x) {
    const orion_block_q8_0 *b = (const orion_block_q8_0 *)w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float d = orion__fp16_to_fp32(b[i].d);
        for (int j = 0; j < ORION_QK; j++) {
            const float wj = (float)b[i].qs[j] * d;
            sum += wj * x[i * ORION_QK + j];
        }
    }
    return sum;
}

/* ---- q4_0 ----------------------------------------------------------------- */

static void quantize_row_q4_0(const float *x, void *y, int64_t n) {
    orion_block_q4_0 *b = (orion_block_q4_0 *)y;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        float amax = 0.0f, max = 0.0f; /* max: the first value of largest |x| */
        for (int j = 0; j < ORION_QK; j++) {
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = orion__fp32_to_fp16(d);
        for (int j = 0; j < ORION_QK / 2; j++) {
            const int q0 = trunc_q4(xb[j] * id + 8.5f);
            const int q1 = trunc_q4(xb[j + ORION_QK / 2] * id + 8.5f);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void dequantize_row_q4_0(const void *x, float *y, int64_t n) {
    const orion_block_q4_0 *b = (const orion_block_q4_0 *)x;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float d = orion__fp16_to_fp32(b[i].d);
        float *yb = y + i * ORION_QK;
        for (int j = 0; j < ORION_QK / 2; j++) {
            yb[j] = (float)((b[i].qs[j] & 15) - 8) * d;
            yb[j + ORION_QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static float dot_f32_q4_0(int64_t n, const void *w, const float *x) {
    const orion_block_q4_0 *b = (const orion_block_q4_0 *)w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float d = orion__fp16_to_fp32(b[i].d);
        const float *xb = x + i * ORION_QK;
        for (int j = 0; j < ORION_QK; j++) {
            const int q = j < ORION_QK / 2 ? (b[i].qs[j] & 15) : (b[i].qs[j - ORION_QK / 2] >> 4);
            const float wj = (float)(q - 8) * d;
            sum += wj * xb[j];
        }
    }
    return sum;
}

/* ---- q4_1 ----------------------------------------------------------------- */

static void quantize_row_q4_1(const float *x, void *y, int64_t n) {
    orion_block_q4_1 *b = (orion_block_q4_1 *)y;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        float min = FLT_MAX, max = -FLT_MAX; /* the first occurrences */
        for (int j = 0; j < ORION_QK; j++) {
            if (xb[j] < min) min = xb[j];
            if (xb[j] > max) max = xb[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = orion__fp32_to_fp16(d);
        b[i].m = orion__fp32_to_fp16(min);
        for (int j = 0; j < ORION_QK / 2; j++) {
            const int q0 = trunc_q4((xb[j] - min) * id + 0.5f);
            const int q1 = trunc_q4((xb[j + ORION_QK / 2] - min) * id + 0.5f);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void dequantize_row_q4_1(const void *x, float *y, int64_t n) {
    const orion_block_q4_1 *b = (const orion_block_q4_1 *)x;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float d = orion__fp16_to_fp32(b[i].d);
        const float m = orion__fp16_to_fp32(b[i].m);
        float *yb = y + i * ORION_QK;
        for (int j = 0; j < ORION_QK / 2; j++) {
            yb[j] = (float)(b[i].qs[j] & 15) * d + m;
            yb[j + ORION_QK / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static float dot_f32_q4_1(int64_t n, const void *w, const float *x) {
    const orion_block_q4_1 *b = (const orion_block_q4_1 *)w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float d = orion__fp16_to_fp32(b[i].d);
        const float m = orion__fp16_to_fp32(b[i].m);
        const float *xb = x + i * ORION_QK;
        for (int j = 0; j < ORION_QK; j++) {
            const int q = j < ORION_QK / 2 ? (b[i].qs[j] & 15) : (b[i].qs[j - ORION_QK / 2] >> 4);
            const float wj = (float)q * d + m;
            sum += wj * xb[j];
        }
    }
    return sum;
}

/* ---- rows of a cache (attention) ------------------------------------------ */

/* rows_dot is dot_f32 per row and query; rows_axpy dequantizes 32 values at
 * a time (one block of the block types) and accumulates a[j][i] * v in row
 * order, one query after another. */
#define ROWS_KERNELS(TYPE, NAME)                                                                             \
    static void rows_dot_##NAME(int64_t n_rows, const void *rows, size_t stride, int64_t n, const float *x,   \
                                int n_x, float *out) {                                                        \
        for (int j = 0; j < n_x; j++)                                                                         \
            for (int64_t i = 0; i < n_rows; i++)                                                              \
                out[j * n_rows + i] = dot_f32_##NAME(n, (const char *)rows + i * stride, x + j * n);          \
    }                                                                                                         \
    static void rows_axpy_##NAME(int64_t n_rows, const void *rows, size_t stride, int64_t n, const float *a,  \
                                 int n_x, float *y) {                                                         \
        float v[32];                                                                                          \
        for (int j = 0; j < n_x; j++)                                                                         \
            for (int64_t i = 0; i < n_rows; i++) {                                                            \
                const char *row = (const char *)rows + i * stride;                                            \
                for (int64_t d0 = 0; d0 < n; d0 += 32) {                                                      \
                    const int64_t c = n - d0 < 32 ? n - d0 : 32;                                              \
                    dequantize_row_##NAME(row + orion_type_row_bytes(TYPE, d0), v, c);                        \
                    for (int64_t d = 0; d < c; d++) y[j * n + d0 + d] += a[j * n_rows + i] * v[d];            \
                }                                                                                             \
            }                                                                                                 \
    }

ROWS_KERNELS(ORION_TYPE_F32, f32)
ROWS_KERNELS(ORION_TYPE_F16, f16)
ROWS_KERNELS(ORION_TYPE_BF16, bf16)
ROWS_KERNELS(ORION_TYPE_Q8_0, q8_0)
ROWS_KERNELS(ORION_TYPE_Q4_0, q4_0)
ROWS_KERNELS(ORION_TYPE_Q4_1, q4_1)

/* ---- registration --------------------------------------------------------- */

void orion__register_quant_ref(orion_kernels *k) {
    k->quantize_row[ORION_TYPE_F32] = quantize_row_f32;
    k->quantize_row[ORION_TYPE_F16] = quantize_row_f16;
    k->quantize_row[ORION_TYPE_BF16] = quantize_row_bf16;
    k->quantize_row[ORION_TYPE_Q8_0] = quantize_row_q8_0;
    k->quantize_row[ORION_TYPE_Q4_0] = quantize_row_q4_0;
    k->quantize_row[ORION_TYPE_Q4_1] = quantize_row_q4_1;

    k->dequantize_row[ORION_TYPE_F32] = dequantize_row_f32;
    k->dequantize_row[ORION_TYPE_F16] = dequantize_row_f16;
    k->dequantize_row[ORION_TYPE_BF16] = dequantize_row_bf16;
    k->dequantize_row[ORION_TYPE_Q8_0] = dequantize_row_q8_0;
    k->dequantize_row[ORION_TYPE_Q4_0] = dequantize_row_q4_0;
    k->dequantize_row[ORION_TYPE_Q4_1] = dequantize_row_q4_1;

    k->dot_f32[ORION_TYPE_F32] = dot_f32_f32;
    k->dot_f32[ORION_TYPE_F16] = dot_f32_f16;
    k->dot_f32[ORION_TYPE_BF16] = dot_f32_bf16;
    k->dot_f32[ORION_TYPE_Q8_0] = dot_f32_q8_0;
    k->dot_f32[ORION_TYPE_Q4_0] = dot_f32_q4_0;
    k->dot_f32[ORION_TYPE_Q4_1] = dot_f32_q4_1;

    k->rows_dot[ORION_TYPE_F32] = rows_dot_f32;
    k->rows_dot[ORION_TYPE_F16] = rows_dot_f16;
    k->rows_dot[ORION_TYPE_BF16] = rows_dot_bf16;
    k->rows_dot[ORION_TYPE_Q8_0] = rows_dot_q8_0;
    k->rows_dot[ORION_TYPE_Q4_0] = rows_dot_q4_0;
    k->rows_dot[ORION_TYPE_Q4_1] = rows_dot_q4_1;

    k->rows_axpy[ORION_TYPE_F32] = rows_axpy_f32;
    k->rows_axpy[ORION_TYPE_F16] = rows_axpy_f16;
    k->rows_axpy[ORION_TYPE_BF16] = rows_axpy_bf16;
    k->rows_axpy[ORION_TYPE_Q8_0] = rows_axpy_q8_0;
    k->rows_axpy[ORION_TYPE_Q4_0] = rows_axpy_q4_0;
    k->rows_axpy[ORION_TYPE_Q4_1] = rows_axpy_q4_1;
}
