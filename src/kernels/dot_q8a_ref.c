/*
 * dot_q8a_ref.c — reference (specification) of the int8 activation path:
 * quantizing f32 activations to q8a blocks, and the dot product of one
 * quantized weight row (q8_0, q4_0, q4_1) with q8a activations, and of
 * dot_q8a_rows (several consecutive rows: this dot for each of them).
 *
 * quantize_q8a, per block of 32:
 *   amax = max |x_i| (NaN ignored), d = amax / 127, id = d ? 1/d : 0,
 *   v_i = x_i * id, clamped to [-127, 127] as v = v < 127 ? v : 127 and then
 *   v = v > -127 ? v : -127 (a NaN becomes 127; this is what vminps/vmaxps do
 *   with the operands in that order), q_i = v_i rounded to nearest, ties to
 *   even (what vroundps with _MM_FROUND_TO_NEAREST_INT does), s = d * sum(q).
 *   Multiplying by id (not dividing by d) is the rule: it is what a SIMD
 *   version does, and every version must produce identical bytes.
 *
 * dot_q8a, per block b: an exact integer sum isum_b, then one float term,
 * accumulated in block order in one float:
 *   q8_0: sum += (d_w * d_a) * isum(q_w * q_a)
 *   q4_0: sum += (d_w * d_a) * isum((q_w - 8) * q_a)
 *   q4_1: sum += (d_w * d_a) * isum(q_w * q_a) + m_w * s_a
 * SIMD versions reorder the float additions (and may apply the q4_0 offset
 * as -8 * d_w * s_a), so they agree with this within a few float roundings
 * of the sum of the absolute terms; the tests state the bound.
 */
#include "kernels/kernels.h"
#include "core/fp16.h"

#include <math.h>

/* Rounds v (|v| <= 127) to the nearest integer, ties to even. floor and the
 * subtraction are exact here, so this does not depend on the rounding mode. */
static float round_half_even(float v) {
    float r = floorf(v);
    float frac = v - r;
    if (frac > 0.5f || (frac == 0.5f && ((int)r & 1) != 0)) r += 1.0f;
    return r;
}

static void quantize_q8a_ref(const float *x, orion_block_q8a *y, int64_t n) {
    const int64_t nb = n / ORION_QK;
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * ORION_QK;
        float amax = 0.0f;
        for (int i = 0; i < ORION_QK; i++) {
            float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < ORION_QK; i++) {
            float v = xb[i] * id;
            v = v < 127.0f ? v : 127.0f;
            v = v > -127.0f ? v : -127.0f;
            int q = (int)round_half_even(v);
            y[b].qs[i] = (int8_t)q;
            sum += q;
        }
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

static float dot_q8a_q8_0_ref(int64_t n, const void *w, const orion_block_q8a *x) {
    const orion_block_q8_0 *wb = w;
    const int64_t nb = n / ORION_QK;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int i = 0; i < ORION_QK; i++) isum += (int32_t)wb[b].qs[i] * x[b].qs[i];
        sum += (orion__fp16_to_fp32(wb[b].d) * x[b].d) * (float)isum;
    }
    return sum;
}

static float dot_q8a_q4_0_ref(int64_t n, const void *w, const orion_block_q8a *x) {
    const orion_block_q4_0 *wb = w;
    const int64_t nb = n / ORION_QK;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < ORION_QK / 2; j++) {
            isum += ((int32_t)(wb[b].qs[j] & 15) - 8) * x[b].qs[j];
            isum += ((int32_t)(wb[b].qs[j] >> 4) - 8) * x[b].qs[j + ORION_QK / 2];
        }
        sum += (orion__fp16_to_fp32(wb[b].d) * x[b].d) * (float)isum;
    }
    return sum;
}

static float dot_q8a_q4_1_ref(int64_t n, const void *w, const orion_block_q8a *x) {
    const orion_block_q4_1 *wb = w;
    const int64_t nb = n / ORION_QK;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < ORION_QK / 2; j++) {
            isum += (int32_t)(wb[b].qs[j] & 15) * x[b].qs[j];
            isum += (int32_t)(wb[b].qs[j] >> 4) * x[b].qs[j + ORION_QK / 2];
        }
        sum += (orion__fp16_to_fp32(wb[b].d) * x[b].d) * (float)isum +
               orion__fp16_to_fp32(wb[b].m) * x[b].s;
    }
    return sum;
}

#define DOT_ROWS_REF(T)                                                                          \
    static void dot_q8a_rows_##T##_ref(int64_t n, const void *w, size_t row_bytes, int n_rows, \
                                       const orion_block_q8a *x, float *out) {                 \
        for (int r = 0; r < n_rows; r++)                                                         \
            out[r] = dot_q8a_##T##_ref(n, (const char *)w + (size_t)r * row_bytes, x);          \
    }
DOT_ROWS_REF(q8_0)
DOT_ROWS_REF(q4_0)
DOT_ROWS_REF(q4_1)

void orion__register_dot_q8a_ref(orion_kernels *k) {
    k->quantize_q8a = quantize_q8a_ref;
    k->dot_q8a[ORION_TYPE_Q8_0] = dot_q8a_q8_0_ref;
    k->dot_q8a[ORION_TYPE_Q4_0] = dot_q8a_q4_0_ref;
    k->dot_q8a[ORION_TYPE_Q4_1] = dot_q8a_q4_1_ref;
    k->dot_q8a_rows[ORION_TYPE_Q8_0] = dot_q8a_rows_q8_0_ref;
    k->dot_q8a_rows[ORION_TYPE_Q4_0] = dot_q8a_rows_q4_0_ref;
    k->dot_q8a_rows[ORION_TYPE_Q4_1] = dot_q8a_rows_q4_1_ref;
}
