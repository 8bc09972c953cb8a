/*
 * ops_ref.c — plain-C reference versions of the elementwise kernels: row
 * conversions f16/bf16 <-> f32, softmax, layernorm, rmsnorm, gelu, gelu_tanh,
 * silu, add, mul and scale.
 *
 * This file is the specification the SIMD versions (x86/ops_avx2.c) are
 * tested against, so it is written for clarity and a fixed order of
 * operations, never for speed. The build compiles it with
 * -ffp-contract=off, so a*b+c is two roundings here; the SIMD code repeats
 * the same operations where it promises the same bits.
 *
 * Precision ("u" is 2^-24 times the magnitude of the exact value, about one
 * f32 ulp; measured figures are maxima over every 23rd f32 of the range,
 * against double precision):
 *   - conversions: exact, by the integer rules of core/fp16.h (round to
 *     nearest even; NaN stays NaN, f16 signalling NaNs keep their bits).
 *   - add, mul, scale: one f32 operation per element, correctly rounded.
 *   - softmax: e_i = expf(x_i - max) (glibc expf: < 1 ulp), the sum of the
 *     e_i in double, each output e_i * f32(1 / sum). The f32 subtraction
 *     x_i - max is the main error: up to |x_i - max| u carried into the
 *     exponential, so each output is within (3 + |x_i - max|) u of the
 *     softmax of the given floats, and a row sums to 1 within ~2 u.
 *   - layernorm, rmsnorm: mean and variance (two passes) and the sum of
 *     squares are accumulated in double, so the statistics are exact to f32
 *     precision whatever n and the offset of the data; the mean is kept as an
 *     f32 pair hi + lo so that rows with |mean| >> std lose nothing when it is
 *     subtracted. The per-element step is f32 in the order written below:
 *     within a few u of |xhat * gamma| + |beta| (3.2 u measured).
 *   - gelu: 0.5 * x * erfc(-x / sqrt(2)) evaluated in double and rounded once
 *     (the same function as 0.5x(1 + erf(x/sqrt2)) without the cancellation
 *     of 1 + erf for x < 0): within 1 u for every x.
 *   - gelu_tanh: 0.5x(1 + tanh(u)) with u = sqrt(2/pi)(x + 0.044715x^3),
 *     evaluated as x sigmoid(2u) (the same function, free of the
 *     cancellation of 1 + tanh for x < 0). u is computed in f32 with five
 *     roundings, which the exponential turns into ~(2 + 5|2u|) u of relative
 *     error (210 u at x = -9, where the result is -1e-28): the absolute error
 *     stays below 1.2e-7 max(1, |x|).
 *   - silu: x sigmoid(x): within 3.7 u.
 *   x sigmoid(a) is computed as x / (1 + e) for x >= 0 and x e / (1 + e) for
 *   x < 0 with e = expf(-|a|), so the exponential never overflows.
 *
 * Special values: softmax of a row whose entries are all -inf is all zeros
 * (a fully masked attention row); a NaN entry stays NaN and, when the row
 * has a finite entry, makes the whole row NaN, as does +inf. gelu, gelu_tanh
 * and silu never produce NaN from a finite input: large positive x gives x,
 * large negative x gives -0 (or a tiny negative value); +inf gives +inf,
 * -inf gives NaN. layernorm with eps == 0 on a constant row divides 0 by 0
 * (NaN); use eps > 0.
 *
 * Aliasing: y may equal x (and, for add/mul, a or b); every element is read
 * before it is written. Partial overlap is not supported.
 * Thread safety: the functions keep no state; rows may be processed in
 * parallel.
 */
#include "kernels/kernels.h"

#include "core/fp16.h"

#include <math.h>

/* ---- conversions ----------------------------------------------------------- */

static void fp16_to_f32_ref(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = orion__fp16_to_fp32(x[i]);
}

static void f32_to_fp16_ref(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = orion__fp32_to_fp16(x[i]);
}

static void bf16_to_f32_ref(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = orion__bf16_to_fp32(x[i]);
}

static void f32_to_bf16_ref(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = orion__fp32_to_bf16(x[i]);
}

/* ---- softmax --------------------------------------------------------------- */

static void softmax_ref(float *x, int64_t n) {
    if (n <= 0) return;
    /* NaN compares false, so it never becomes the max. */
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] > max) max = x[i];
    }
    if (max == -INFINITY) {
        /* Every entry is -inf (or NaN): a fully masked row gives zeros. */
        for (int64_t i = 0; i < n; i++) {
            if (x[i] == -INFINITY) x[i] = 0.0f;
        }
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] - max);
        x[i] = e;
        sum += (double)e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * inv;
}

/* ---- normalization --------------------------------------------------------- */

static void layernorm_ref(const float *x, float *y, int64_t n, const float *gamma,
                          const float *beta, float eps) {
    if (n <= 0) return;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i];
    double mean = sum / (double)n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        ss += d * d;
    }
    double var = ss / (double)n;
    float inv = (float)(1.0 / sqrt(var + (double)eps));
    float m_hi = (float)mean;
    float m_lo = (float)(mean - (double)m_hi);
    for (int64_t i = 0; i < n; i++) {
        float v = ((x[i] - m_hi) - m_lo) * inv;
        if (gamma) v = v * gamma[i];
        if (beta) v = v + beta[i];
        y[i] = v;
    }
}

static void rmsnorm_ref(const float *x, float *y, int64_t n, const float *gamma, float eps) {
    if (n <= 0) return;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i]; /* exact products */
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] * inv;
        if (gamma) v = v * gamma[i];
        y[i] = v;
    }
}

/* ---- activations ----------------------------------------------------------- */

static void gelu_ref(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i];
        y[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
    }
}

/* x * sigmoid(a), where a has the sign of x (or is 0): with e = e^-|a|,
 * x / (1 + e) for x >= 0 and x e / (1 + e) for x < 0. The exponential never
 * overflows, so tiny negative results keep their precision. */
static float x_sigmoid(float x, float a) {
    float e = expf(-fabsf(a));
    return x < 0.0f ? x * e / (1.0f + e) : x / (1.0f + e);
}

static void gelu_tanh_ref(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = 0.7978845608f * (v + 0.044715f * v * v * v); /* sqrt(2/pi) */
        y[i] = x_sigmoid(v, 2.0f * u); /* 0.5(1 + tanh(u)) = sigmoid(2u) */
    }
}

static void silu_ref(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x_sigmoid(x[i], x[i]);
}

/* ---- arithmetic ------------------------------------------------------------ */

static void add_ref(const float *a, const float *b, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void mul_ref(const float *a, const float *b, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

static void scale_ref(const float *x, float s, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
}

void orion__register_ops_ref(orion_kernels *k) {
    k->fp16_to_f32 = fp16_to_f32_ref;
    k->f32_to_fp16 = f32_to_fp16_ref;
    k->bf16_to_f32 = bf16_to_f32_ref;
    k->f32_to_bf16 = f32_to_bf16_ref;
    k->softmax = softmax_ref;
    k->layernorm = layernorm_ref;
    k->rmsnorm = rmsnorm_ref;
    k->gelu = gelu_ref;
    k->gelu_tanh = gelu_tanh_ref;
    k->silu = silu_ref;
    k->add = add_ref;
    k->mul = mul_ref;
    k->scale = scale_ref;
}
