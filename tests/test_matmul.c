/*
 * test_matmul.c — the int8 activation kernels (quantize_q8a, dot_q8a,
 * dot_q8a_rows), the GEMM section of the kernel table, and orion_matmul.
 *
 * Weights are built directly as blocks from a seeded generator (random
 * quants and scales), so these tests do not depend on the quantizers. Every
 * result is compared with a double-precision sum computed here from the
 * dequantized weights and, for the quantized types, from the q8a-dequantized
 * activations (the reference quantize_q8a, which the SIMD one must match
 * byte for byte), so the only differences left are float roundings.
 *
 * The bound. Every kernel forms its result as a float sum of N terms, each
 * an exact integer (or product) times a rounded scale, added in some order;
 * such a sum is within about (N + c) * u * T of the exact value, where
 * u = 2^-24 and T is the sum of the absolute values of everything added,
 * T = sum_k mag(w_k) * |a_k| with mag(w) = |w| for float types, |d*q| for
 * q8_0, |d|*(q + 8) for q4_0 (the SIMD code applies the -8 offset as a
 * separate term) and |d|*q + |m| for q4_1. We use
 *     float weights:     tol = (n_in + 16) * u * T
 *     quantized weights: tol = (9 * n_blocks + 16) * u * T
 * (a SIMD dot has 8 lanes per block plus one offset term per block). Any
 * indexing or packing mistake gives errors of order T, far above this.
 */
#include "kernels/kernels.h"
#include "test_util.h"

#include <string.h>

#define U24 (1.0 / 16777216.0)

static orion_threadpool *pools[4]; /* pools[n]: n threads; pools[0] unused (NULL) */

/* ---- weights and references ---------------------------------------------- */

static const orion_type ALL_TYPES[] = {ORION_TYPE_F32,  ORION_TYPE_F16,  ORION_TYPE_BF16,
                                       ORION_TYPE_Q8_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_1};
static const orion_type Q_TYPES[] = {ORION_TYPE_Q8_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_1};

static bool is_quantized(orion_type t) {
    return t == ORION_TYPE_Q8_0 || t == ORION_TYPE_Q4_0 || t == ORION_TYPE_Q4_1;
}

static uint16_t rand_f16_scale(test_rng *r, double lo, double hi) {
    return orion_fp32_to_fp16((float)(lo + (hi - lo) * test_rng_uniform(r)));
}

/* Random W (n_out x n_in) of type t, plus its dequantized values and the
 * magnitudes used by the error bound, both [n_out][n_in] doubles. */
static void *make_weights(test_rng *r, orion_type t, int64_t n_out, int64_t n_in, double *deq, double *mag) {
    const size_t row_bytes = orion_type_row_bytes(t, n_in);
    unsigned char *w = malloc(row_bytes * (size_t)n_out + 1);
    assert_non_null(w);
    const int64_t nb = n_in / ORION_QK;
    for (int64_t o = 0; o < n_out; o++) {
        unsigned char *row = w + (size_t)o * row_bytes;
        double *dq = deq + o * n_in, *mg = mag + o * n_in;
        if (t == ORION_TYPE_F32) {
            float *f = (float *)row;
            for (int64_t k = 0; k < n_in; k++) {
                f[k] = (float)(test_rng_normal(r) * 0.5);
                dq[k] = f[k];
            }
        } else if (t == ORION_TYPE_F16 || t == ORION_TYPE_BF16) {
            uint16_t *h = (uint16_t *)row;
            for (int64_t k = 0; k < n_in; k++) {
                float v = (float)(test_rng_normal(r) * 0.5);
                h[k] = t == ORION_TYPE_F16 ? orion_fp32_to_fp16(v) : orion_fp32_to_bf16(v);
                dq[k] = t == ORION_TYPE_F16 ? orion_fp16_to_fp32(h[k]) : orion_bf16_to_fp32(h[k]);
            }
        } else if (t == ORION_TYPE_Q8_0) {
            orion_block_q8_0 *b = (orion_block_q8_0 *)row;
            for (int64_t i = 0; i < nb; i++) {
                b[i].d = rand_f16_scale(r, 0.001, 0.02);
                const double d = orion_fp16_to_fp32(b[i].d);
                for (int k = 0; k < ORION_QK; k++) {
                    /* the full int8 range, -128 included (files may hold it) */
                    b[i].qs[k] = (int8_t)(int)(test_rng_u64(r) % 256 - 128);
                    dq[i * ORION_QK + k] = d * b[i].qs[k];
                }
            }
        } else {
            const bool q41 = t == ORION_TYPE_Q4_1;
            for (int64_t i = 0; i < nb; i++) {
                uint16_t d16 = rand_f16_scale(r, 0.001, 0.05), m16 = 0;
                uint8_t *qs;
                if (q41) {
                    orion_block_q4_1 *b = (orion_block_q4_1 *)row + i;
                    m16 = rand_f16_scale(r, -0.4, 0.1);
                    b->d = d16;
                    b->m = m16;
                    qs = b->qs;
                } else {
                    orion_block_q4_0 *b = (orion_block_q4_0 *)row + i;
                    b->d = d16;
                    qs = b->qs;
                }
                const double d = orion_fp16_to_fp32(d16), m = orion_fp16_to_fp32(m16);
                for (int j = 0; j < ORION_QK / 2; j++) {
                    qs[j] = (uint8_t)test_rng_u64(r);
                    const int lo = qs[j] & 15, hi = qs[j] >> 4;
                    double *dl = &dq[i * ORION_QK + j], *dh = &dq[i * ORION_QK + j + 16];
                    double *ml = &mg[i * ORION_QK + j], *mh = &mg[i * ORION_QK + j + 16];
                    if (q41) {
                        *dl = d * lo + m;
                        *dh = d * hi + m;
                        *ml = fabs(d) * lo + fabs(m);
                        *mh = fabs(d) * hi + fabs(m);
                    } else {
                        *dl = d * (lo - 8);
                        *dh = d * (hi - 8);
                        *ml = fabs(d) * (lo + 8);
                        *mh = fabs(d) * (hi + 8);
                    }
                }
            }
        }
        if (t == ORION_TYPE_F32 || t == ORION_TYPE_F16 || t == ORION_TYPE_BF16 || t == ORION_TYPE_Q8_0)
            for (int64_t k = 0; k < n_in; k++) mg[k] = fabs(dq[k]);
    }
    return w;
}

/* The activations as the kernels see them: f32 for float weights, the
 * reference q8a quantization for quantized weights. */
static void effective_x(orion_type t, const float *x, int64_t n_in, int64_t n_batch, double *xe) {
    if (!is_quantized(t)) {
        for (int64_t i = 0; i < n_in * n_batch; i++) xe[i] = x[i];
        return;
    }
    const int64_t nb = n_in / ORION_QK;
    orion_block_q8a *q = malloc(sizeof *q * (size_t)nb);
    assert_non_null(q);
    for (int64_t b = 0; b < n_batch; b++) {
        orion__kernels_ref()->quantize_q8a(x + b * n_in, q, n_in);
        for (int64_t i = 0; i < nb; i++)
            for (int k = 0; k < ORION_QK; k++) xe[b * n_in + i * ORION_QK + k] = (double)q[i].d * q[i].qs[k];
    }
    free(q);
}

static double tol_factor(orion_type t, int64_t n_in) {
    return is_quantized(t) ? (9.0 * (double)(n_in / ORION_QK) + 16.0) * U24 : ((double)n_in + 16.0) * U24;
}

/* ---- (a) quantize_q8a: SIMD bytes == reference bytes ----------------------- */

static void fill_activations(test_rng *r, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t blk = i / ORION_QK;
        switch (blk % 5) {
        case 0: x[i] = (float)test_rng_normal(r); break;
        case 1: x[i] = (float)(test_rng_student_t(r, 2) * 3.0); break; /* heavy tails */
        case 2: x[i] = (float)(test_rng_normal(r) * 1e-3); break;
        case 3: x[i] = 0.0f; break;                                     /* d = 0 */
        default: x[i] = (float)(test_rng_normal(r) * 1e4); break;
        }
    }
}

static void test_quantize_q8a_matches_ref(void **state) {
    (void)state;
    const orion_kernels *ref = orion__kernels_ref(), *simd = orion__kernels_simd();
    assert_non_null(ref->quantize_q8a);
    test_rng r = {1};
    for (int li = 0; li < TEST_N_AWKWARD; li++) {
        const int64_t nb = TEST_AWKWARD_LENGTHS[li], n = nb * ORION_QK;
        float *x = malloc(sizeof(float) * (size_t)n);
        orion_block_q8a *a = malloc(sizeof *a * (size_t)nb), *b = malloc(sizeof *b * (size_t)nb);
        assert_true(x && a && b);
        fill_activations(&r, x, n);
        ref->quantize_q8a(x, a, n);
        for (int64_t i = 0; i < nb; i++) {
            float amax = 0.0f;
            int sum = 0;
            for (int k = 0; k < ORION_QK; k++) {
                amax = fmaxf(amax, fabsf(x[i * ORION_QK + k]));
                assert_true(a[i].qs[k] >= -127 && a[i].qs[k] <= 127);
                sum += a[i].qs[k];
                /* each quant is within half a step of x/d (plus rounding of x*id) */
                if (a[i].d > 0.0f)
                    assert_true(fabs(x[i * ORION_QK + k] / a[i].d - a[i].qs[k]) <= 0.5 + 1e-4);
            }
            assert_true(a[i].d == amax / 127.0f);
            assert_true(a[i].s == a[i].d * (float)sum);
        }
        if (simd) {
            memset(b, 0x5a, sizeof *b * (size_t)nb);
            simd->quantize_q8a(x, b, n);
            assert_memory_equal(a, b, sizeof *a * (size_t)nb);
        }
        free(x);
        free(a);
        free(b);
    }
}

/* Ties round to even, identically in every version. */
static void test_quantize_q8a_ties(void **state) {
    (void)state;
    float x[2 * ORION_QK];
    for (int k = 0; k < ORION_QK; k++) x[k] = (float)(k % 8) - 3.5f; /* amax 3.5 */
    x[0] = 127.0f;                                                  /* d = 1, id = 1 */
    x[1] = 0.5f; x[2] = 1.5f; x[3] = 2.5f; x[4] = -0.5f; x[5] = -2.5f; x[6] = 126.5f; x[7] = -125.5f;
    for (int k = 0; k < ORION_QK; k++) x[ORION_QK + k] = (k & 1) ? 63.5f : -0.25f; /* d = 0.5, id = 2 */
    const int8_t want[8] = {127, 0, 2, 2, 0, -2, 126, -126};
    orion_block_q8a a[2], b[2];
    orion__kernels_ref()->quantize_q8a(x, a, 2 * ORION_QK);
    assert_true(a[0].d == 1.0f);
    assert_memory_equal(a[0].qs, want, sizeof want);
    assert_int_equal(a[1].qs[1], 127);
    assert_int_equal(a[1].qs[0], 0); /* -0.5 -> -0 */
    const orion_kernels *simd = orion__kernels_simd();
    if (simd) {
        simd->quantize_q8a(x, b, 2 * ORION_QK);
        assert_memory_equal(a, b, sizeof a);
    }
}

/* ---- (b) dot_q8a: SIMD vs reference vs double ------------------------------ */

static void check_dot(const char *what, orion_type t, int64_t nb, double got, double exact, double tsum) {
    const double tol = tol_factor(t, nb * ORION_QK) * tsum + 1e-30;
    if (fabs(got - exact) > tol) {
        fail_msg("%s %s, %lld blocks: got %.9g, exact %.9g, |diff| %.3g > tol %.3g", what,
                 orion_type_name(t), (long long)nb, got, exact, fabs(got - exact), tol);
    }
}

static void test_dot_q8a(void **state) {
    (void)state;
    const orion_kernels *ref = orion__kernels_ref(), *simd = orion__kernels_simd();
    test_rng r = {2};
    for (size_t ti = 0; ti < ORION_ARRAY_LEN(Q_TYPES); ti++) {
        const orion_type t = Q_TYPES[ti];
        assert_non_null(ref->dot_q8a[t]);
        for (int li = 0; li < TEST_N_AWKWARD; li++) {
            const int64_t nb = TEST_AWKWARD_LENGTHS[li], n = nb * ORION_QK;
            double *deq = malloc(sizeof(double) * (size_t)n), *mag = malloc(sizeof(double) * (size_t)n);
            double *xe = malloc(sizeof(double) * (size_t)n);
            float *x = malloc(sizeof(float) * (size_t)n);
            orion_block_q8a *xq = malloc(sizeof *xq * (size_t)nb);
            assert_true(deq && mag && xe && x && xq);
            void *w = make_weights(&r, t, 1, n, deq, mag);
            fill_activations(&r, x, n);
            ref->quantize_q8a(x, xq, n);
            effective_x(t, x, n, 1, xe);
            double exact = 0.0, tsum = 0.0;
            for (int64_t k = 0; k < n; k++) {
                exact += deq[k] * xe[k];
                tsum += mag[k] * fabs(xe[k]);
            }
            const double rv = ref->dot_q8a[t](n, w, xq);
            check_dot("ref dot_q8a", t, nb, rv, exact, tsum);
            if (simd) {
                const double sv = simd->dot_q8a[t](n, w, xq);
                check_dot("simd dot_q8a", t, nb, sv, exact, tsum);
            }
            free(w);
            free(deq);
            free(mag);
            free(xe);
            free(x);
            free(xq);
        }
    }
}

/* dot_q8a_rows (1 to ROWS_TESTED rows per call, at awkward lengths) vs
 * the double sum, for the reference and the SIMD tables; rows past n_rows
 * must not be written. */
#define ROWS_TESTED 9
static void test_dot_q8a_rows(void **state) {
    (void)state;
    const orion_kernels *tabs[2] = {orion__kernels_ref(), orion__kernels_simd()};
    test_rng r = {5};
    for (size_t ti = 0; ti < ORION_ARRAY_LEN(Q_TYPES); ti++) {
        const orion_type t = Q_TYPES[ti];
        assert_non_null(tabs[0]->dot_q8a_rows[t]);
        for (int li = 0; li < TEST_N_AWKWARD; li++) {
            const int64_t nb = TEST_AWKWARD_LENGTHS[li], n = nb * ORION_QK;
            const int64_t mr = ROWS_TESTED;
            const size_t rb = orion_type_row_bytes(t, n);
            double *deq = malloc(sizeof(double) * (size_t)(n * mr)), *mag = malloc(sizeof(double) * (size_t)(n * mr));
            double *xe = malloc(sizeof(double) * (size_t)n);
            float *x = malloc(sizeof(float) * (size_t)n);
            orion_block_q8a *xq = malloc(sizeof *xq * (size_t)nb);
            assert_true(deq && mag && xe && x && xq);
            void *w = make_weights(&r, t, mr, n, deq, mag);
            fill_activations(&r, x, n);
            tabs[0]->quantize_q8a(x, xq, n);
            effective_x(t, x, n, 1, xe);
            for (int ki = 0; ki < 2; ki++) {
                if (!tabs[ki] || !tabs[ki]->dot_q8a_rows[t]) continue;
                for (int nr = 1; nr <= ROWS_TESTED; nr++) {
                    /* start at the last rows too, so a group ends at the end of W */
                    const int64_t r0 = mr - nr;
                    float out[ROWS_TESTED + 1];
                    for (int i = 0; i <= ROWS_TESTED; i++) out[i] = -12345.0f;
                    tabs[ki]->dot_q8a_rows[t](n, (const char *)w + (size_t)r0 * rb, rb, nr, xq, out);
                    for (int i = nr; i <= ROWS_TESTED; i++) assert_true(out[i] == -12345.0f);
                    for (int i = 0; i < nr; i++) {
                        double exact = 0.0, tsum = 0.0;
                        for (int64_t k = 0; k < n; k++) {
                            exact += deq[(r0 + i) * n + k] * xe[k];
                            tsum += mag[(r0 + i) * n + k] * fabs(xe[k]);
                        }
                        check_dot(ki ? "simd dot_q8a_rows" : "ref dot_q8a_rows", t, nb, out[i], exact, tsum);
                    }
                }
            }
            free(w);
            free(deq);
            free(mag);
            free(xe);
            free(x);
            free(xq);
        }
    }
}

/* ---- GEMM section: SIMD packers and tiles vs reference --------------------- */

static void test_gemm_section_matches_ref(void **state) {
    (void)state;
    const orion_kernels *ref = orion__kernels_ref(), *simd = orion__kernels_simd();
    if (!simd) skip();
    test_rng r = {3};
    /* float: load_w, pack_x (bytes) and tile (bound) */
    const int64_t kcs[] = {1, 3, 8, 17, 64, 100};
    for (size_t ki = 0; ki < ORION_ARRAY_LEN(kcs); ki++) {
        const int64_t kc = kcs[ki], ld = kc + 5, k0 = 2;
        float x[ORION_GEMM_F_NB * 106], xpa[ORION_GEMM_F_NB * 100], xpb[ORION_GEMM_F_NB * 100];
        test_fill_normal(&r, x, ORION_GEMM_F_NB * ld, 1.0f);
        /* a prefetch hint must not change results (rows of 130 bytes, 100 apart, unaligned) */
        const orion_gemm_prefetch pf = {(const char *)x + 3, 100, 130, 3};
        for (int nbv = 1; nbv <= ORION_GEMM_F_NB; nbv++) {
            memset(xpb, 0x7f, sizeof xpb);
            ref->gemm_f_pack_x(x + k0, ld, nbv, kc, xpa);
            simd->gemm_f_pack_x(x + k0, ld, nbv, kc, xpb);
            assert_memory_equal(xpa, xpb, sizeof(float) * (size_t)(kc * ORION_GEMM_F_NB));
        }
        for (size_t ti = 0; ti < 3; ti++) {
            const orion_type t = ALL_TYPES[ti];
            double deq[ORION_GEMM_F_MO * 106], mag[ORION_GEMM_F_MO * 106];
            void *w = make_weights(&r, t, ORION_GEMM_F_MO, ld, deq, mag);
            float wa[ORION_GEMM_F_MO * 100], wb[ORION_GEMM_F_MO * 100];
            for (int no = 1; no <= ORION_GEMM_F_MO; no++) {
                ref->gemm_f_load_w[t](w, ld, no, k0, kc, wa);
                simd->gemm_f_load_w[t](w, ld, no, k0, kc, wb);
                assert_memory_equal(wa, wb, sizeof(float) * (size_t)(no * kc));
            }
            ref->gemm_f_load_w[t](w, ld, ORION_GEMM_F_MO, k0, kc, wa);
            ref->gemm_f_pack_x(x + k0, ld, ORION_GEMM_F_NB, kc, xpa);
            for (int no = 1; no <= ORION_GEMM_F_MO; no++) {
                for (int nbv = 1; nbv <= ORION_GEMM_F_NB; nbv += (nbv < 9 ? 1 : 7)) {
                    for (int acc = 0; acc < 2; acc++) {
                        float ya[ORION_GEMM_F_NB * 9], yb[ORION_GEMM_F_NB * 9];
                        for (int i = 0; i < ORION_GEMM_F_NB * 9; i++) ya[i] = yb[i] = (float)i * 0.25f;
                        ref->gemm_f_tile(kc, wa, kc, no, xpa, nbv, ya, 9, acc, NULL);
                        simd->gemm_f_tile(kc, wa, kc, no, xpa, nbv, yb, 9, acc, &pf);
                        for (int b = 0; b < ORION_GEMM_F_NB; b++) {
                            for (int o = 0; o < 9; o++) {
                                const int i = b * 9 + o;
                                if (b >= nbv || o >= no) {
                                    assert_true(yb[i] == (float)i * 0.25f); /* untouched */
                                    continue;
                                }
                                double tsum = acc ? fabs(ya[i]) : 0.0;
                                for (int64_t k = 0; k < kc; k++)
                                    tsum += fabs((double)wa[o * kc + k] * xpa[k * ORION_GEMM_F_NB + b]);
                                assert_true(fabs((double)ya[i] - yb[i]) <= 2 * tol_factor(t, kc) * tsum + 1e-30);
                            }
                        }
                    }
                }
            }
            free(w);
        }
    }
    /* quantized: pack_x, pack_w (bytes) and tiles (bound) */
    const int64_t nbs[] = {1, 2, 3, 5, 17};
    for (size_t ni = 0; ni < ORION_ARRAY_LEN(nbs); ni++) {
        const int64_t nb = nbs[ni], b0 = 1, ldb = nb + 2, n = ldb * ORION_QK;
        float *x = malloc(sizeof(float) * (size_t)(n * ORION_GEMM_Q_NB));
        orion_block_q8a *xq = malloc(sizeof *xq * (size_t)(ldb * ORION_GEMM_Q_NB));
        orion_gemm_qx *pxa = malloc(sizeof *pxa * (size_t)nb), *pxb = malloc(sizeof *pxb * (size_t)nb);
        orion_gemm_qw *pwa = malloc(sizeof *pwa * (size_t)nb), *pwb = malloc(sizeof *pwb * (size_t)nb);
        double *deq = malloc(sizeof(double) * (size_t)(n * ORION_GEMM_Q_MO));
        double *mag = malloc(sizeof(double) * (size_t)(n * ORION_GEMM_Q_MO));
        assert_true(x && xq && pxa && pxb && pwa && pwb && deq && mag);
        fill_activations(&r, x, n * ORION_GEMM_Q_NB);
        const orion_gemm_prefetch pf = {(const char *)x + 5, 96, 200, 4};
        for (int b = 0; b < ORION_GEMM_Q_NB; b++) ref->quantize_q8a(x + b * n, xq + b * ldb, n);
        for (int nbv = 1; nbv <= ORION_GEMM_Q_NB; nbv++) {
            memset(pxb, 0x3c, sizeof *pxb * (size_t)nb);
            ref->gemm_q_pack_x(xq + b0, ldb, nbv, nb, pxa);
            simd->gemm_q_pack_x(xq + b0, ldb, nbv, nb, pxb);
            assert_memory_equal(pxa, pxb, sizeof *pxa * (size_t)nb);
        }
        ref->gemm_q_pack_x(xq + b0, ldb, ORION_GEMM_Q_NB, nb, pxa);
        for (size_t ti = 0; ti < ORION_ARRAY_LEN(Q_TYPES); ti++) {
            const orion_type t = Q_TYPES[ti];
            void *w = make_weights(&r, t, ORION_GEMM_Q_MO, n, deq, mag);
            const size_t rb = orion_type_row_bytes(t, n);
            for (int no = 1; no <= ORION_GEMM_Q_MO; no++) {
                memset(pwb, 0x3c, sizeof *pwb * (size_t)nb);
                ref->gemm_q_pack_w[t](w, rb, no, b0, nb, pwa);
                simd->gemm_q_pack_w[t](w, rb, no, b0, nb, pwb);
                assert_memory_equal(pwa, pwb, sizeof *pwa * (size_t)nb);
            }
            ref->gemm_q_pack_w[t](w, rb, ORION_GEMM_Q_MO, b0, nb, pwa);
            for (int no = 1; no <= ORION_GEMM_Q_MO; no++) {
                for (int nbv = 1; nbv <= ORION_GEMM_Q_NB; nbv++) {
                    for (int acc = 0; acc < 2; acc++) {
                        float ya[ORION_GEMM_Q_NB * 7], yb[ORION_GEMM_Q_NB * 7];
                        for (int i = 0; i < ORION_GEMM_Q_NB * 7; i++) ya[i] = yb[i] = (float)i * 0.125f;
                        ref->gemm_q_tile[t](nb, pwa, pxa, no, nbv, ya, 7, acc, NULL);
                        simd->gemm_q_tile[t](nb, pwa, pxa, no, nbv, yb, 7, acc, &pf);
                        for (int b = 0; b < ORION_GEMM_Q_NB; b++) {
                            for (int o = 0; o < 7; o++) {
                                const int i = b * 7 + o;
                                if (b >= nbv || o >= no) {
                                    assert_true(yb[i] == (float)i * 0.125f);
                                    continue;
                                }
                                double tsum = acc ? fabs(ya[i]) : 0.0;
                                for (int64_t k = 0; k < nb * ORION_QK; k++) {
                                    const orion_block_q8a *a = &xq[b * ldb + b0 + k / ORION_QK];
                                    tsum += mag[o * n + b0 * ORION_QK + k] * fabs((double)a->d * a->qs[k % ORION_QK]);
                                }
                                if (fabs((double)ya[i] - yb[i]) > 2 * tol_factor(t, nb * ORION_QK) * tsum + 1e-30)
                                    fail_msg("%s tile nb %lld no %d nbv %d acc %d (o %d b %d): ref %.9g simd %.9g",
                                             orion_type_name(t), (long long)nb, no, nbv, acc, o, b, ya[i], yb[i]);
                            }
                        }
                    }
                }
            }
            free(w);
        }
        free(x);
        free(xq);
        free(pxa);
        free(pxb);
        free(pwa);
        free(pwb);
        free(deq);
        free(mag);
    }
}

/* ---- (c) orion_matmul against the double reference ------------------------ */

#define Y_GUARD 16

/* Runs orion_matmul and checks y (and the guard floats after it). */
static void run_and_check(orion_threadpool *pool, orion_arena *arena, orion_type t, const void *w,
                          int64_t n_out, int64_t n_in, const float *x, int64_t n_batch, const double *exact,
                          const double *tsum) {
    const size_t ny = (size_t)(n_out * n_batch);
    float *y = malloc(sizeof(float) * (ny + Y_GUARD));
    assert_non_null(y);
    for (size_t i = 0; i < ny + Y_GUARD; i++) y[i] = -12345.0f;
    orion_status st = orion_matmul(pool, arena, t, w, n_out, n_in, x, n_batch, y);
    if (st != ORION_OK) fail_msg("orion_matmul %s: %s", orion_type_name(t), orion_last_error());
    const double f = tol_factor(t, n_in);
    for (int64_t b = 0; b < n_batch; b++) {
        for (int64_t o = 0; o < n_out; o++) {
            const size_t i = (size_t)(b * n_out + o);
            const double tol = f * tsum[i] + 1e-30;
            if (!(fabs(y[i] - exact[i]) <= tol))
                fail_msg("%s n_out %lld n_in %lld batch %lld threads %d: y[%lld][%lld] = %.9g, exact %.9g, tol %.3g",
                         orion_type_name(t), (long long)n_out, (long long)n_in, (long long)n_batch,
                         orion_threadpool_n_threads(pool), (long long)b, (long long)o, y[i], exact[i], tol);
        }
    }
    for (size_t i = ny; i < ny + Y_GUARD; i++) assert_true(y[i] == -12345.0f);
    free(y);
}

typedef struct case_data {
    orion_type t;
    int64_t    n_out, n_in, n_batch;
    void      *w;
    float     *x;
    double    *exact, *tsum;
} case_data;

static void case_init(test_rng *r, case_data *c, orion_type t, int64_t n_out, int64_t n_in, int64_t n_batch) {
    c->t = t;
    c->n_out = n_out;
    c->n_in = n_in;
    c->n_batch = n_batch;
    double *deq = malloc(sizeof(double) * (size_t)(n_out * n_in));
    double *mag = malloc(sizeof(double) * (size_t)(n_out * n_in));
    double *xe = malloc(sizeof(double) * (size_t)(n_batch * n_in));
    c->x = malloc(sizeof(float) * (size_t)(n_batch * n_in));
    c->exact = malloc(sizeof(double) * (size_t)(n_batch * n_out));
    c->tsum = malloc(sizeof(double) * (size_t)(n_batch * n_out));
    assert_true(deq && mag && xe && c->x && c->exact && c->tsum);
    c->w = make_weights(r, t, n_out, n_in, deq, mag);
    test_fill_normal(r, c->x, n_batch * n_in, 1.0f);
    effective_x(t, c->x, n_in, n_batch, xe);
    for (int64_t b = 0; b < n_batch; b++) {
        for (int64_t o = 0; o < n_out; o++) {
            double s = 0.0, a = 0.0;
            for (int64_t k = 0; k < n_in; k++) {
                s += deq[o * n_in + k] * xe[b * n_in + k];
                a += mag[o * n_in + k] * fabs(xe[b * n_in + k]);
            }
            c->exact[b * n_out + o] = s;
            c->tsum[b * n_out + o] = a;
        }
    }
    free(deq);
    free(mag);
    free(xe);
}

static void case_free(case_data *c) {
    free(c->w);
    free(c->x);
    free(c->exact);
    free(c->tsum);
}

static void test_matmul_shapes(void **state) {
    (void)state;
    static const int64_t outs[] = {1, 2, 3, 5, 7, 16, 17, 33, 65};
    static const int64_t blocks[] = {1, 2, 3, 5, 17};
    static const int64_t batches[] = {1, 2, 3, 4, 5, 7, 8, 16, 17, 33};
    test_rng r = {4};
    for (size_t ti = 0; ti < ORION_ARRAY_LEN(ALL_TYPES); ti++) {
        for (size_t oi = 0; oi < ORION_ARRAY_LEN(outs); oi++) {
            for (size_t ki = 0; ki < ORION_ARRAY_LEN(blocks); ki++) {
                for (size_t bi = 0; bi < ORION_ARRAY_LEN(batches); bi++) {
                    case_data c;
                    case_init(&r, &c, ALL_TYPES[ti], outs[oi], blocks[ki] * ORION_QK, batches[bi]);
                    for (int nt = 1; nt <= 3; nt++)
                        run_and_check(pools[nt], NULL, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
                    case_free(&c);
                }
            }
        }
    }
}

/* Larger shapes cross the k and batch chunks of the GEMM paths. */
static void test_matmul_chunks(void **state) {
    (void)state;
    test_rng r = {5};
    for (size_t ti = 0; ti < ORION_ARRAY_LEN(ALL_TYPES); ti++) {
        case_data c;
        case_init(&r, &c, ALL_TYPES[ti], 37, 96 * ORION_QK, 140);
        run_and_check(NULL, NULL, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
        run_and_check(pools[2], NULL, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
        case_free(&c);
    }
}

/* Float weights take any n_in: lengths that are not multiples of the vector
 * width or of the k chunk. */
static void test_matmul_float_odd_lengths(void **state) {
    (void)state;
    static const int64_t n_ins[] = {1, 7, 45, 600};
    static const int64_t batches[] = {1, 3, 5, 17, 40};
    test_rng r = {7};
    for (size_t ti = 0; ti < 3; ti++) {
        for (size_t ki = 0; ki < ORION_ARRAY_LEN(n_ins); ki++) {
            for (size_t bi = 0; bi < ORION_ARRAY_LEN(batches); bi++) {
                case_data c;
                case_init(&r, &c, ALL_TYPES[ti], 13, n_ins[ki], batches[bi]);
                for (int nt = 1; nt <= 3; nt++)
                    run_and_check(pools[nt], NULL, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
                case_free(&c);
            }
        }
    }
}

/* Many batch rows times a small matrix: the float GEMM split by batch rows
 * (PATH_GEMM_F_ROWS, at least 64 rows per thread), as an encoder runs it.
 * Awkward sizes: batch rows that end mid 16-row group and mid 128-row chunk,
 * output counts that end mid 6-row panel, n_in that is not a multiple of 8
 * (k chunks 2 x 504 for 1000) or of the vector width; every thread count
 * (1..3: the rows split unevenly) and the arena path. Quantized types take
 * the same shapes with n_in a multiple of 32. */
static void test_matmul_many_rows(void **state) {
    (void)state;
    static const struct { int64_t n_out, n_in, n_batch; } shapes[] = {
        {50, 45, 197}, {13, 1000, 261}, {7, 392, 129}, {96, 96, 300}, {1, 17, 200},
    };
    test_rng r = {11};
    for (size_t ti = 0; ti < ORION_ARRAY_LEN(ALL_TYPES); ti++) {
        const bool quantized = ti >= 3;
        for (size_t si = 0; si < ORION_ARRAY_LEN(shapes); si++) {
            int64_t n_in = shapes[si].n_in;
            if (quantized) n_in = (n_in + ORION_QK - 1) / ORION_QK * ORION_QK;
            case_data c;
            case_init(&r, &c, ALL_TYPES[ti], shapes[si].n_out, n_in, shapes[si].n_batch);
            for (int nt = 1; nt <= 3; nt++)
                run_and_check(pools[nt], NULL, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
            orion_arena *a = NULL;
            const size_t need = orion_matmul_scratch_bytes(c.t, c.n_out, c.n_in, c.n_batch, 3);
            assert_true(need > 0);
            assert_int_equal(orion_arena_init(need, &a), ORION_OK);
            run_and_check(pools[3], a, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
            orion_arena_free(a);
            case_free(&c);
        }
    }
}

/* ---- (d) argument errors -------------------------------------------------- */

static void test_matmul_errors(void **state) {
    (void)state;
    float w[64] = {0}, x[64] = {0}, y[4] = {0};
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, NULL, 1, 32, x, 1, y), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, 1, 32, NULL, 1, y), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, 1, 32, x, 1, NULL), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, -1, 32, x, 1, y), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, 1, -32, x, 1, y), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, 1, 32, x, -1, y), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_Q4_0, w, 1, 48, x, 1, y), ORION_ERR_INVALID_ARG);
    assert_non_null(strstr(orion_last_error(), "multiple"));
    assert_int_equal(orion_matmul(NULL, NULL, (orion_type)7, w, 1, 32, x, 1, y), ORION_ERR_UNSUPPORTED);
    assert_int_equal(orion_matmul(NULL, NULL, (orion_type)ORION_TYPE_COUNT, w, 1, 32, x, 1, y), ORION_ERR_UNSUPPORTED);
    assert_int_equal(orion_matmul(NULL, NULL, (orion_type)-3, w, 1, 32, x, 1, y), ORION_ERR_UNSUPPORTED);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, INT64_MAX / 2, 32, x, 1, y), ORION_ERR_RANGE);
    assert_int_equal(orion_matmul_scratch_bytes((orion_type)7, 1, 32, 1, 1), 0);
    assert_int_equal(orion_matmul_scratch_bytes(ORION_TYPE_Q8_0, 1, 33, 1, 1), 0);
    /* empty shapes are fine; n_in == 0 gives zeros */
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, 0, 32, x, 1, y), ORION_OK);
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_F32, w, 1, 32, x, 0, y), ORION_OK);
    y[0] = y[1] = 7.0f;
    assert_int_equal(orion_matmul(NULL, NULL, ORION_TYPE_Q4_0, w, 2, 0, x, 1, y), ORION_OK);
    assert_true(y[0] == 0.0f && y[1] == 0.0f);
}

/* ---- (e) scratch from an arena -------------------------------------------- */

static void test_matmul_arena(void **state) {
    (void)state;
    test_rng r = {6};
    const struct { orion_type t; int64_t n_out, n_in, n_batch; } cases[] = {
        {ORION_TYPE_Q4_0, 33, 5 * ORION_QK, 1},  {ORION_TYPE_Q8_0, 33, 5 * ORION_QK, 17},
        {ORION_TYPE_Q4_1, 20, 3 * ORION_QK, 9},  {ORION_TYPE_F16, 33, 5 * ORION_QK, 17},
        {ORION_TYPE_BF16, 7, 300, 40},           {ORION_TYPE_F32, 17, 64, 20},
    };
    for (size_t ci = 0; ci < ORION_ARRAY_LEN(cases); ci++) {
        case_data c;
        case_init(&r, &c, cases[ci].t, cases[ci].n_out, cases[ci].n_in, cases[ci].n_batch);
        for (int nt = 1; nt <= 3; nt++) {
            const size_t need = orion_matmul_scratch_bytes(c.t, c.n_out, c.n_in, c.n_batch, nt);
            if (need == 0) continue;
            /* too small (half, and none): ORION_ERR_NOMEM, y untouched, arena unchanged */
            float *yb = malloc(sizeof(float) * (size_t)(c.n_out * c.n_batch));
            assert_non_null(yb);
            for (int64_t i = 0; i < c.n_out * c.n_batch; i++) yb[i] = 3.0f;
            for (int half = 0; half < 2; half++) {
                orion_arena *small;
                assert_int_equal(orion_arena_init(half ? need / 2 : 0, &small), ORION_OK);
                assert_int_equal(orion_matmul(pools[nt], small, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, yb),
                                 ORION_ERR_NOMEM);
                assert_non_null(strstr(orion_last_error(), "scratch"));
                assert_int_equal(orion_arena_used(small), 0);
                orion_arena_free(small);
            }
            for (int64_t i = 0; i < c.n_out * c.n_batch; i++) assert_true(yb[i] == 3.0f);
            free(yb);

            /* the advertised size, with a sentinel area behind it that must
             * stay untouched; the arena is rewound on return */
            const size_t guard = 4096;
            orion_arena *a;
            assert_int_equal(orion_arena_init(need + guard, &a), ORION_OK);
            unsigned char *base = orion_arena_alloc(a, need + guard, 1);
            assert_non_null(base);
            memset(base, 0xab, need + guard);
            orion_arena_reset(a);
            run_and_check(pools[nt], a, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
            assert_int_equal(orion_arena_used(a), 0); /* rewound */
            for (size_t i = need; i < need + guard; i++) assert_int_equal(base[i], 0xab);
            orion_arena_free(a);
        }
        case_free(&c);
    }
}

/* The caller's own allocations in the arena survive every path, including
 * those that need no scratch (float matrix-vector): orion_matmul rewinds
 * only to where the arena was when it was called. */
static void test_matmul_arena_keeps_caller_allocations(void **state) {
    (void)state;
    test_rng r = {8};
    const struct { orion_type t; int64_t n_batch; } cases[] = {
        {ORION_TYPE_F32, 1}, {ORION_TYPE_F16, 2}, {ORION_TYPE_Q8_0, 1}, {ORION_TYPE_Q4_0, 9}, {ORION_TYPE_BF16, 20},
    };
    for (size_t ci = 0; ci < ORION_ARRAY_LEN(cases); ci++) {
        case_data c;
        case_init(&r, &c, cases[ci].t, 19, 3 * ORION_QK, cases[ci].n_batch);
        const size_t need = orion_matmul_scratch_bytes(c.t, c.n_out, c.n_in, c.n_batch, 2);
        orion_arena *a;
        assert_int_equal(orion_arena_init(need + 4096, &a), ORION_OK);
        unsigned char *mine = orion_arena_alloc(a, 1000, 8);
        assert_non_null(mine);
        memset(mine, 0x5c, 1000);
        const size_t used = orion_arena_used(a);
        run_and_check(pools[2], a, c.t, c.w, c.n_out, c.n_in, c.x, c.n_batch, c.exact, c.tsum);
        assert_int_equal(orion_arena_used(a), used);
        for (int i = 0; i < 1000; i++) assert_int_equal(mine[i], 0x5c);
        orion_arena_free(a);
        case_free(&c);
    }
}

/* ---- (f) several weights over one input ------------------------------------ */

/* orion__matmul_multi equals orion_matmul run on each part (bit for bit:
 * the same kernels on the same quantized input, only the split of the rows
 * over threads differs): q/k/v-like shapes with mixed types, row counts
 * that end mid 16-row unit, batch 1..3 (fused) and 5 (one by one), a float
 * part (one by one), every thread count, with and without an arena. */
static void test_matmul_multi(void **state) {
    (void)state;
    test_rng r = {12};
    static const struct { orion_type t[3]; int64_t n_out[3]; int n; } sets[] = {
        {{ORION_TYPE_Q4_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_0}, {256, 32, 32}, 3},
        {{ORION_TYPE_Q4_0, ORION_TYPE_Q8_0, ORION_TYPE_Q4_1}, {70, 17, 33}, 3},
        {{ORION_TYPE_Q8_0, ORION_TYPE_Q8_0, 0}, {1, 250, 0}, 2},
        {{ORION_TYPE_Q4_1, ORION_TYPE_F16, 0}, {40, 24, 0}, 2},
    };
    const int64_t n_in = 7 * ORION_QK;
    for (size_t si = 0; si < ORION_ARRAY_LEN(sets); si++) {
        for (int64_t n_batch = 1; n_batch <= 5; n_batch += n_batch == 3 ? 2 : 1) {
            case_data c[3];
            memset(c, 0, sizeof c);
            float *y[3], *want[3];
            orion__matmul_part parts[3];
            for (int i = 0; i < sets[si].n; i++) {
                case_init(&r, &c[i], sets[si].t[i], sets[si].n_out[i], n_in, n_batch);
                const size_t ny = (size_t)(c[i].n_out * n_batch);
                y[i] = malloc(sizeof(float) * ny);
                want[i] = malloc(sizeof(float) * ny);
                assert_non_null(y[i]);
                assert_non_null(want[i]);
                /* every part multiplies the first part's x */
                assert_int_equal(orion_matmul(pools[1], NULL, c[i].t, c[i].w, c[i].n_out, n_in, c[0].x, n_batch,
                                              want[i]), ORION_OK);
                parts[i] = (orion__matmul_part){c[i].t, c[i].w, c[i].n_out, y[i]};
            }
            for (int nt = 1; nt <= 3; nt++) {
                for (int use_arena = 0; use_arena < 2; use_arena++) {
                    orion_arena *a = NULL;
                    if (use_arena) assert_int_equal(orion_arena_init(1 << 20, &a), ORION_OK);
                    for (int i = 0; i < sets[si].n; i++)
                        for (int64_t j = 0; j < c[i].n_out * n_batch; j++) y[i][j] = NAN;
                    assert_int_equal(orion__matmul_multi(pools[nt], a, n_in, c[0].x, n_batch, parts, sets[si].n),
                                     ORION_OK);
                    for (int i = 0; i < sets[si].n; i++)
                        assert_memory_equal(y[i], want[i], sizeof(float) * (size_t)(c[i].n_out * n_batch));
                    if (a) assert_int_equal(orion_arena_used(a), 0);
                    orion_arena_free(a);
                }
            }
            /* a scratch arena too small: ORION_ERR_NOMEM */
            orion_arena *tiny = NULL;
            assert_int_equal(orion_arena_init(16, &tiny), ORION_OK);
            assert_int_equal(orion__matmul_multi(pools[2], tiny, n_in, c[0].x, n_batch, parts, sets[si].n),
                             ORION_ERR_NOMEM);
            orion_arena_free(tiny);
            for (int i = 0; i < sets[si].n; i++) {
                free(y[i]);
                free(want[i]);
                case_free(&c[i]);
            }
        }
    }
}

static int setup(void **state) {
    (void)state;
    for (int n = 1; n <= 3; n++) {
        orion_threadpool_params p = orion_threadpool_default_params();
        p.n_threads = n;
        if (orion_threadpool_init(&p, &pools[n]) != ORION_OK) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int n = 1; n <= 3; n++) orion_threadpool_free(pools[n]);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_q8a_matches_ref),
        cmocka_unit_test(test_quantize_q8a_ties),
        cmocka_unit_test(test_dot_q8a),
        cmocka_unit_test(test_dot_q8a_rows),
        cmocka_unit_test(test_gemm_section_matches_ref),
        cmocka_unit_test(test_matmul_shapes),
        cmocka_unit_test(test_matmul_chunks),
        cmocka_unit_test(test_matmul_float_odd_lengths),
        cmocka_unit_test(test_matmul_many_rows),
        cmocka_unit_test(test_matmul_errors),
        cmocka_unit_test(test_matmul_arena),
        cmocka_unit_test(test_matmul_arena_keeps_caller_allocations),
        cmocka_unit_test(test_matmul_multi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
