/*
 * ops_avx2.c — AVX2/FMA/F16C versions of the elementwise kernels (the
 * references and their exact definitions are in ops_ref.c). Compiled with
 * -mavx2 -mfma -mf16c; installed only when cpu.c has found those features.
 *
 * Every loop works on 8 floats at a time. Tails (n % 8 elements) are
 * handled so that an element's result never depends on its position:
 *   - exact ops (conversions, add, mul, scale, the per-element step of the
 *     norms) finish with the same scalar operation as the reference;
 *   - ops built on the vector approximations below (softmax, gelu,
 *     gelu_tanh, silu) copy the tail into an 8-float buffer and run the same
 *     vector code on it.
 *
 * What matches the reference bit for bit:
 *   - f16 -> f32: F16C vcvtph2ps, except that it quiets signalling NaNs while
 *     core/fp16.h keeps them; those lanes are patched back (rare, tested
 *     before patching). f32 -> f16: vcvtps2ph with rounding mode 0 (nearest
 *     even). The test checks all 65536 halves and the f32 values around
 *     every f16 rounding boundary.
 *   - bf16 <-> f32: the integer rule of core/fp16.h, written with shifts.
 *   - add, mul, scale: the same single f32 operation.
 *   - layernorm, rmsnorm: the statistics are accumulated in double like the
 *     reference (only the order of the additions differs, ~1e-16 relative),
 *     and the per-element step uses the same f32 operations without FMA, so
 *     results are identical unless a double sum lands on a rounding boundary
 *     of the f32 mean or 1/std (then about 1 ulp).
 *
 * Vector approximations. "u" below is 2^-24 times the magnitude of the exact
 * value (at most one ulp, at least half of one); the figures are maxima
 * over every 23rd f32 of the range named, against double precision, for
 * results >= 2^-100 (smaller results pass through subnormal intermediates;
 * their absolute error stays below 1e-40).
 *   - exp8: n = round(x / ln2), r = x - n ln2 (Cody-Waite, two FMA steps),
 *     e^r = 1 + r + r^2 P(r), P of degree 5 fitted on [-ln2/2, ln2/2] (fit
 *     error 7e-10 relative), then multiplication by 2^(n/2) and 2^(n - n/2)
 *     so that results down to the subnormals round once and overflow gives
 *     +inf. Inputs are clamped to [-104, 89] (beyond, e^x rounds to 0 or
 *     +inf); NaN stays NaN. Error <= 0.99 ulp (1.36 u) on [-104, 89];
 *     subnormal results within 0.75 of the least subnormal; <= 2.0 u from
 *     glibc expf.
 *   - gelu8: gelu(x) = x Phi(x), Phi(x) = 1 - erfc(z)/2 for x >= 0 and
 *     erfc(z)/2 for x < 0, z = |x|/sqrt2. erfc(z) = exp(-z^2) K(w), with
 *     w = (1 - B z)/(1 + a z) (a = 0.4) mapping z in [0, 10.5] onto [1, -1]
 *     and K of degree 10 fitted to exp(z^2) erfc(z) for minimal relative
 *     error with f32 coefficients (4.5e-8). z^2 = x^2/2 is carried exactly
 *     as an f32 pair (FMA gives the low part), so exp(-z^2) has no argument
 *     error; for |x| > 14.8 the result is x or -0. No cancellation anywhere,
 *     so the error is relative: <= 10 u on [-20, 20] (5.6 u on [-5, 5]),
 *     10 u from the reference; absolute |err| <= 9.3e-8 max(1, |x|), far
 *     inside the required 1e-6 max(1, |x|).
 *   - silu8, gelu_tanh8: x sigmoid(a) with a = x or a = 2u, evaluated like
 *     the reference as x/(1 + e) or x e/(1 + e) with e = exp8(-|a|) (never
 *     overflows). u = sqrt(2/pi)(x + 0.044715x^3) uses the reference's f32
 *     operations, so both differ from the reference only through exp8:
 *     <= 4.0 u from it. silu <= 3.9 u; gelu_tanh inherits the f32 error of
 *     2u, ~(2 + 5|2u|) u relative (the same as the reference), which is
 *     < 1.2e-7 max(1, |x|) absolute.
 *   - softmax: exp8 of the f32 difference x - max, sum in double, multiply
 *     by f32(1/sum), as the reference: <= 4 u from it (2.9 u measured on the
 *     test data).
 *
 * Thread safety: no state; rows may be processed in parallel.
 */
#include "kernels/kernels.h"

#include "core/fp16.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- conversions ----------------------------------------------------------- */

/* vcvtph2ps sets the quiet bit of a signalling NaN; core/fp16.h keeps the
 * pattern as it is (exponent and payload moved over, quiet bit clear). Lanes
 * holding an sNaN (|h| in (0x7c00, 0x7e00)) get the bit cleared again; the
 * fix-up is skipped when no lane has one. */
static void fp16_to_f32_avx2(const uint16_t *x, float *y, int64_t n) {
    const __m128i abs_mask = _mm_set1_epi16(0x7fff);
    const __m128i inf_h = _mm_set1_epi16(0x7c00);
    const __m128i qnan_h = _mm_set1_epi16(0x7e00);
    const __m256i quiet_f = _mm256_set1_epi32(0x00400000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(x + i));
        __m256 f = _mm256_cvtph_ps(h);
        __m128i a = _mm_and_si128(h, abs_mask);
        __m128i snan = _mm_and_si128(_mm_cmpgt_epi16(a, inf_h), _mm_cmplt_epi16(a, qnan_h));
        if (ORION_UNLIKELY(!_mm_testz_si128(snan, snan))) {
            __m256i m = _mm256_and_si256(_mm256_cvtepi16_epi32(snan), quiet_f);
            f = _mm256_castsi256_ps(_mm256_andnot_si256(m, _mm256_castps_si256(f)));
        }
        _mm256_storeu_ps(y + i, f);
    }
    for (; i < n; i++) y[i] = orion__fp16_to_fp32(x[i]);
}

static void f32_to_fp16_avx2(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(y + i), h);
    }
    for (; i < n; i++) y[i] = orion__fp32_to_fp16(x[i]);
}

static void bf16_to_f32_avx2(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(x + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(w));
    }
    for (; i < n; i++) y[i] = orion__bf16_to_fp32(x[i]);
}

/* The rule of orion__fp32_to_bf16 on 8 lanes: NaN -> (bits >> 16) | 0x40,
 * otherwise (bits + 0x7fff + lsb) >> 16 (round to nearest even). */
static void f32_to_bf16_avx2(const float *x, uint16_t *y, int64_t n) {
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i bias = _mm256_set1_epi32(0x7fff);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf_bits = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i hi = _mm256_srli_epi32(u, 16);
        __m256i lsb = _mm256_and_si256(hi, one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), lsb), 16);
        __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf_bits);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, quiet), is_nan);
        /* Lanes hold values <= 0xffff: unsigned saturation keeps them. */
        __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(void *)(y + i), p);
    }
    for (; i < n; i++) y[i] = orion__fp32_to_bf16(x[i]);
}

/* ---- vector approximations ------------------------------------------------- */

/* e^x on 8 lanes; see the file comment for the method and its error. */
ALWAYS_INLINE __m256 exp8(__m256 x) {
    /* max/min return their second operand when one is NaN: NaN passes. */
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln2 = C1 + C2 with C1 = f32(ln2); FMA forms n*C1 exactly. */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693147182464599609375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-1.904654299957768e-09f), r);
    __m256 p = _mm256_set1_ps(1.989098091e-04f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.393364160e-03f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333310485e-03f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166646674e-02f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666666716e-01f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    /* n in [-150, 128]: both halves of the scale are normal powers of two. */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i e_bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, e_bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, e_bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* gelu(x) = x * Phi(x) on 8 lanes; see the file comment. */
ALWAYS_INLINE __m256 gelu8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    /* |x|, clamped where the result is already x or -0. min returns its
     * second operand for NaN: the clamp turns NaN into 14.8 here, and the
     * final x * phi brings the NaN back. */
    __m256 ax = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(14.8f));
    __m256 z = _mm256_mul_ps(ax, _mm256_set1_ps(0.70710678118654752f));
    /* w = (1 - B z) / (1 + a z) maps z in [0, 10.5] onto [1, -1]; computed
     * as one quotient so that its rounding error stays below 1 ulp of |w| <= 1
     * (K(w) has slope ~1, so that is ~1 ulp of K). */
    __m256 w = _mm256_div_ps(_mm256_fnmadd_ps(z, _mm256_set1_ps(0.5904762149f), _mm256_set1_ps(1.0f)),
                             _mm256_fmadd_ps(z, _mm256_set1_ps(0.4f), _mm256_set1_ps(1.0f)));
    __m256 k = _mm256_set1_ps(-5.562463230e-06f);
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(7.373130302e-06f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(7.093796012e-05f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(-9.047801723e-05f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(-9.819146944e-04f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(1.307571802e-04f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(1.792159118e-02f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(8.262251318e-02f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(2.171930373e-01f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(3.905839026e-01f));
    k = _mm256_fmadd_ps(k, w, _mm256_set1_ps(2.925478816e-01f));
    /* z^2 = x^2 / 2 = s_hi + s_lo exactly; e^-(s_hi + s_lo) ~ e^-s_hi (1 - s_lo). */
    __m256 q = _mm256_mul_ps(ax, ax);
    __m256 q_lo = _mm256_fmsub_ps(ax, ax, q);
    __m256 half = _mm256_set1_ps(0.5f);
    __m256 e = exp8(_mm256_mul_ps(q, _mm256_set1_ps(-0.5f)));
    e = _mm256_fnmadd_ps(e, _mm256_mul_ps(q_lo, half), e);
    /* x < 0: y = (x k / 2) e, e last so that a tiny e rounds only once;
     * x >= 0: y = x (1 - e k / 2). */
    __m256 hk = _mm256_mul_ps(k, half);
    __m256 y_neg = _mm256_mul_ps(_mm256_mul_ps(x, hk), e);
    __m256 y_pos = _mm256_mul_ps(x, _mm256_fnmadd_ps(hk, e, _mm256_set1_ps(1.0f)));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(y_pos, y_neg, neg);
}

/* x * sigmoid(a) for a with the sign of x (or a == 0) and e = exp8(-|a|):
 * x / (1 + e) for x >= 0 and x e / (1 + e) for x < 0, the split of the
 * reference, so no exponential ever overflows. */
ALWAYS_INLINE __m256 x_sigmoid8(__m256 x, __m256 a) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 e = exp8(_mm256_or_ps(a, sign)); /* e^-|a| */
    __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 num = _mm256_blendv_ps(x, _mm256_mul_ps(x, e), neg);
    return _mm256_div_ps(num, d);
}

/* gelu_tanh(x) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) by the
 * reference's f32 operations (no FMA), so only exp8 differs from it. */
ALWAYS_INLINE __m256 gelu_tanh8(__m256 x) {
    __m256 c = _mm256_mul_ps(_mm256_set1_ps(0.044715f), x);
    c = _mm256_mul_ps(c, x);
    c = _mm256_mul_ps(c, x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608f), _mm256_add_ps(x, c));
    return x_sigmoid8(x, _mm256_add_ps(u, u));
}

/* silu(x) = x sigmoid(x). */
ALWAYS_INLINE __m256 silu8(__m256 x) {
    return x_sigmoid8(x, x);
}

/* Applies f to a row, the tail through an 8-float buffer (padding lanes are
 * zero and never stored). Inlined, so f is a direct call. */
ALWAYS_INLINE void map_row(const float *x, float *y, int64_t n, __m256 (*f)(__m256)) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float buf[8] = {0};
        size_t rest = (size_t)(n - i);
        memcpy(buf, x + i, rest * sizeof(float));
        _mm256_storeu_ps(buf, f(_mm256_loadu_ps(buf)));
        memcpy(y + i, buf, rest * sizeof(float));
    }
}

static void gelu_avx2(const float *x, float *y, int64_t n) {
    map_row(x, y, n, gelu8);
}

static void gelu_tanh_avx2(const float *x, float *y, int64_t n) {
    map_row(x, y, n, gelu_tanh8);
}

static void silu_avx2(const float *x, float *y, int64_t n) {
    map_row(x, y, n, silu8);
}

/* ---- reductions -------------------------------------------------------------- */

ALWAYS_INLINE float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

ALWAYS_INLINE double hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* acc0 += lanes 0..3 of v, acc1 += lanes 4..7, in double. */
ALWAYS_INLINE void add8_to_pd(__m256 v, __m256d *acc0, __m256d *acc1) {
    *acc0 = _mm256_add_pd(*acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *acc1 = _mm256_add_pd(*acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/* ---- softmax ----------------------------------------------------------------- */

static void softmax_avx2(float *x, int64_t n) {
    if (n <= 0) return;
    int64_t i = 0;
    /* max(v, acc) returns acc when v is NaN: NaN never becomes the max,
     * as in the reference. */
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(_mm256_loadu_ps(x + i), vmax);
    float max = hmax8(vmax);
    for (; i < n; i++) {
        if (x[i] > max) max = x[i];
    }
    if (max == -INFINITY) {
        for (i = 0; i < n; i++) {
            if (x[i] == -INFINITY) x[i] = 0.0f;
        }
        return;
    }
    const __m256 vm = _mm256_set1_ps(max);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        add8_to_pd(e, &s0, &s1);
    }
    if (i < n) {
        /* Padding lanes are -inf: e^-inf = 0 adds nothing to the sum. */
        float buf[8];
        size_t rest = (size_t)(n - i);
        for (int j = 0; j < 8; j++) buf[j] = -INFINITY;
        memcpy(buf, x + i, rest * sizeof(float));
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf), vm));
        _mm256_storeu_ps(buf, e);
        add8_to_pd(e, &s0, &s1);
        memcpy(x + i, buf, rest * sizeof(float));
    }
    double sum = hsum4d(_mm256_add_pd(s0, s1));
    float inv = (float)(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++) x[i] = x[i] * inv;
}

/* ---- normalization ----------------------------------------------------------- */

static void layernorm_avx2(const float *x, float *y, int64_t n, const float *gamma,
                           const float *beta, float eps) {
    if (n <= 0) return;
    int64_t i = 0;
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) add8_to_pd(_mm256_loadu_ps(x + i), &a0, &a1);
    double sum = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < n; i++) sum += (double)x[i];
    double mean = sum / (double)n;

    const __m256d vmean = _mm256_set1_pd(mean);
    a0 = _mm256_setzero_pd();
    a1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vmean);
        __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vmean);
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(d0, d0));
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(d1, d1));
    }
    double ss = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < n; i++) {
        double d = (double)x[i] - mean;
        ss += d * d;
    }
    double var = ss / (double)n;
    float inv = (float)(1.0 / sqrt(var + (double)eps));
    float m_hi = (float)mean;
    float m_lo = (float)(mean - (double)m_hi);

    const __m256 vhi = _mm256_set1_ps(m_hi), vlo = _mm256_set1_ps(m_lo), vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vhi), vlo);
        v = _mm256_mul_ps(v, vinv);
        if (gamma) v = _mm256_mul_ps(v, _mm256_loadu_ps(gamma + i));
        if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = ((x[i] - m_hi) - m_lo) * inv;
        if (gamma) v = v * gamma[i];
        if (beta) v = v + beta[i];
        y[i] = v;
    }
}

static void rmsnorm_avx2(const float *x, float *y, int64_t n, const float *gamma, float eps) {
    if (n <= 0) return;
    int64_t i = 0;
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(d0, d0)); /* exact products */
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(d1, d1));
    }
    double ss = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < n; i++) ss += (double)x[i] * (double)x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));

    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv);
        if (gamma) v = _mm256_mul_ps(v, _mm256_loadu_ps(gamma + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = x[i] * inv;
        if (gamma) v = v * gamma[i];
        y[i] = v;
    }
}

/* ---- arithmetic -------------------------------------------------------------- */

static void add_avx2(const float *a, const float *b, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = a[i] + b[i];
}

static void mul_avx2(const float *a, const float *b, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = a[i] * b[i];
}

static void scale_avx2(const float *x, float s, float *y, int64_t n) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; i++) y[i] = x[i] * s;
}

void orion__register_ops_avx2(orion_kernels *k) {
    k->fp16_to_f32 = fp16_to_f32_avx2;
    k->f32_to_fp16 = f32_to_fp16_avx2;
    k->bf16_to_f32 = bf16_to_f32_avx2;
    k->f32_to_bf16 = f32_to_bf16_avx2;
    k->softmax = softmax_avx2;
    k->layernorm = layernorm_avx2;
    k->rmsnorm = rmsnorm_avx2;
    k->gelu = gelu_avx2;
    k->gelu_tanh = gelu_tanh_avx2;
    k->silu = silu_avx2;
    k->add = add_avx2;
    k->mul = mul_avx2;
    k->scale = scale_avx2;
}
