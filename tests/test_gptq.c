/*
 * test_gptq.c — the GPTQ quantizer (src/kernels/quant_gptq.c).
 *
 * The problems are seeded: W (rows x n_in) Gaussian; calibration inputs
 * X = Z A with Z Gaussian and A a random mixing matrix with uneven column
 * scales, so H = X^T X is far from diagonal (correlated inputs of unequal
 * importance, as in a real layer). What is checked:
 *   - the output error ||X W^T - X Q^T||^2 of GPTQ is below that of the
 *     reference rule (round to nearest) and of the imatrix-calibrated
 *     quantizer (importance = diag H) by a clear factor, for q4_0, q4_1 and
 *     q8_0, on the calibration inputs and on held-out inputs of the same
 *     distribution (the ratios are printed);
 *   - the blocks GPTQ writes dequantize, with the reference and the SIMD
 *     dequantizers and orion_dequantize, bit for bit to the values the
 *     algorithm assumed (deq);
 *   - an independent textbook implementation (explicit H^-1, the OBS update
 *     and the removal of each quantized column from H^-1, no Cholesky) makes
 *     the same choices;
 *   - with a diagonal H there is nothing to compensate, and GPTQ gives the
 *     codes of round to nearest;
 *   - dead inputs (H_ii = 0): their weights do not matter (changing them
 *     changes no byte), an all-zero H gives all-zero weights;
 *   - the same bytes on 1 and 2 threads and for any row count (tiles of 4);
 *   - orion__gptq_output_error equals the error measured through X;
 *   - orion_convert with a Hessian callback (stories260K, seeded Hessians):
 *     asked exactly for the multiplied matrices of 32-block target types,
 *     writes exactly orion__quantize_gptq's bytes, reports GPTQ and the
 *     output error; a Hessian no damping repairs fails the conversion with
 *     the tensor's name and no file;
 *   - `orion quantize --gptq` end to end on stories260K, and its errors;
 *   - allocation failures (N, N+1, ...) give ORION_ERR_NOMEM, no leak;
 *   - bad arguments (n_in not a multiple of 32, float types, NULL, negative
 *     damping, non-finite or negative entries, a Hessian no damping makes
 *     positive definite, non-finite weights) fail with a status and a
 *     message; a mildly indefinite H is repaired by more damping.
 */
#include "test_util.h"

#include "core/core.h"
#include "kernels/kernels.h"
#include "orion.h"

#include <float.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static const orion_type GPTQ_TYPES[] = {ORION_TYPE_Q4_0, ORION_TYPE_Q4_1, ORION_TYPE_Q8_0};

/* ---- problems ------------------------------------------------------------------ */

typedef struct problem {
    int64_t n_rows, n_in, n_cal, n_test;
    float  *w;      /* n_rows x n_in */
    float  *x_cal;  /* n_cal x n_in */
    float  *x_test; /* n_test x n_in */
    double *h;      /* n_in x n_in, X_cal^T X_cal */
} problem;

/* X = Z A: A = diag(s) (I + 0.8 G / sqrt(n)) with s log-normal, so inputs
 * are correlated and of unequal scale. Dead columns (dead[i]) are zero. */
static void fill_inputs(test_rng *r, const float *a, int64_t n_in, int64_t n, const bool *dead, float *x) {
    double *z = xmalloc((size_t)n_in * sizeof(double));
    for (int64_t s = 0; s < n; s++) {
        for (int64_t k = 0; k < n_in; k++) z[k] = test_rng_normal(r);
        for (int64_t i = 0; i < n_in; i++) {
            double v = 0.0;
            for (int64_t k = 0; k < n_in; k++) v += z[k] * a[k * n_in + i];
            x[s * n_in + i] = dead && dead[i] ? 0.0f : (float)v;
        }
    }
    free(z);
}

static void hessian(const float *x, int64_t n, int64_t n_in, double *h) {
    memset(h, 0, (size_t)(n_in * n_in) * sizeof(double));
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + s * n_in;
        for (int64_t i = 0; i < n_in; i++) {
            if (xs[i] == 0.0f) continue;
            for (int64_t j = 0; j < n_in; j++) h[i * n_in + j] += (double)xs[i] * (double)xs[j];
        }
    }
}

static problem make_problem(uint64_t seed, int64_t n_rows, int64_t n_in, int64_t n_cal, int64_t n_test,
                            const bool *dead) {
    problem p = {n_rows, n_in, n_cal, n_test, NULL, NULL, NULL, NULL};
    test_rng r = {seed};
    p.w = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    p.x_cal = xmalloc((size_t)(n_cal * n_in) * sizeof(float));
    p.x_test = xmalloc((size_t)(n_test * n_in) * sizeof(float));
    p.h = xmalloc((size_t)(n_in * n_in) * sizeof(double));
    float *a = xmalloc((size_t)(n_in * n_in) * sizeof(float));
    test_fill_normal(&r, p.w, n_rows * n_in, 0.05f);
    for (int64_t i = 0; i < n_in; i++) {
        const double s = exp(0.7 * test_rng_normal(&r));
        for (int64_t k = 0; k < n_in; k++)
            a[k * n_in + i] = (float)(s * ((k == i ? 1.0 : 0.0) + 0.8 * test_rng_normal(&r) / sqrt((double)n_in)));
    }
    fill_inputs(&r, a, n_in, n_cal, dead, p.x_cal);
    fill_inputs(&r, a, n_in, n_test, dead, p.x_test);
    hessian(p.x_cal, n_cal, n_in, p.h);
    free(a);
    return p;
}

static void free_problem(problem *p) {
    free(p->w);
    free(p->x_cal);
    free(p->x_test);
    free(p->h);
}

/* sum over samples and rows of (x . (w_row - q_row))^2, through X itself */
static double output_error(const float *x, int64_t n, int64_t n_in, const float *w, const float *q,
                           int64_t n_rows) {
    double e = 0.0;
    for (int64_t s = 0; s < n; s++)
        for (int64_t r = 0; r < n_rows; r++) {
            double d = 0.0;
            for (int64_t i = 0; i < n_in; i++)
                d += (double)x[s * n_in + i] * ((double)w[r * n_in + i] - (double)q[r * n_in + i]);
            e += d * d;
        }
    return e;
}

static void dequantize(orion_type t, const void *q, int64_t n_rows, int64_t n_in, float *out) {
    assert_int_equal(orion_dequantize(t, q, out, n_rows * n_in), ORION_OK);
}

/* ---- output error against round to nearest and the imatrix quantizer ------------- */

static void test_output_error(void **state) {
    (void)state;
    const int64_t n_rows = 64, n_in = 256;
    problem p = make_problem(0x6e7e, n_rows, n_in, 2048, 2048, NULL);
    const size_t max_bytes = (size_t)n_rows * orion_type_row_bytes(ORION_TYPE_Q8_0, n_in);
    uint8_t *q = xmalloc(max_bytes);
    float *deq = xmalloc((size_t)(n_rows * n_in) * sizeof(float)), *back = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    float *imp = xmalloc((size_t)n_in * sizeof(float));
    for (int64_t i = 0; i < n_in; i++) imp[i] = (float)(p.h[i * n_in + i] / (double)p.n_cal);
    orion_threadpool_params tpp = orion_threadpool_default_params();
    tpp.n_threads = 2;
    orion_threadpool *pool = NULL;
    assert_int_equal(orion_threadpool_init(&tpp, &pool), ORION_OK);

    for (int ti = 0; ti < 3; ti++) {
        const orion_type t = GPTQ_TYPES[ti];
        double cal[4], test[4]; /* reference, imatrix, gptq, gptq + search */
        /* round to nearest, by the reference rule */
        assert_int_equal(orion_quantize(t, p.w, q, n_rows, n_in, NULL), ORION_OK);
        dequantize(t, q, n_rows, n_in, back);
        cal[0] = output_error(p.x_cal, p.n_cal, n_in, p.w, back, n_rows);
        test[0] = output_error(p.x_test, p.n_test, n_in, p.w, back, n_rows);
        /* the calibrated quantizer with the imatrix (diagonal of H) */
        orion_quant_params qp = orion_quant_default_params();
        qp.calibrate = true;
        qp.importance = imp;
        assert_int_equal(orion_quantize(t, p.w, q, n_rows, n_in, &qp), ORION_OK);
        dequantize(t, q, n_rows, n_in, back);
        cal[1] = output_error(p.x_cal, p.n_cal, n_in, p.w, back, n_rows);
        test[1] = output_error(p.x_test, p.n_test, n_in, p.w, back, n_rows);
        for (int s = 0; s < 2; s++) {
            orion__gptq_params gp = orion__gptq_default_params();
            gp.search_scale = s == 1;
            assert_int_equal(orion__quantize_gptq(t, p.w, n_rows, n_in, p.h, &gp, pool, q, deq), ORION_OK);
            dequantize(t, q, n_rows, n_in, back);
            assert_memory_equal(back, deq, (size_t)(n_rows * n_in) * sizeof(float));
            cal[2 + s] = output_error(p.x_cal, p.n_cal, n_in, p.w, back, n_rows);
            test[2 + s] = output_error(p.x_test, p.n_test, n_in, p.w, back, n_rows);
            /* the quadratic form agrees with the error measured through X */
            double e_h = 0.0;
            for (int64_t r = 0; r < n_rows; r++)
                e_h += orion__gptq_output_error(p.h, n_in, p.w + r * n_in, back + r * n_in, NULL);
            assert_true(fabs(e_h - cal[2 + s]) <= 1e-9 * cal[2 + s]);
        }
        print_message("%s output error, calibration / held-out inputs: reference %.4g / %.4g, imatrix %.4g / %.4g, "
                      "gptq %.4g / %.4g (x%.3f / x%.3f of reference, x%.3f / x%.3f of imatrix), "
                      "gptq+search %.4g / %.4g (x%.3f / x%.3f of imatrix)\n",
                      orion_type_name(t), cal[0], test[0], cal[1], test[1], cal[2], test[2], cal[2] / cal[0],
                      test[2] / test[0], cal[2] / cal[1], test[2] / test[1], cal[3], test[3], cal[3] / cal[1],
                      test[3] / test[1]);
        /* with the reference rule for block parameters, against round to
         * nearest by that rule; with the scale search, against the imatrix
         * quantizer, which searches scales too */
        assert_true(cal[2] < 0.8 * cal[0]);
        assert_true(test[2] < 0.8 * test[0]);
        assert_true(cal[3] < 0.8 * cal[1]);
        assert_true(test[3] < 0.8 * test[1]);
        assert_true(cal[3] < cal[2]);
    }
    orion_threadpool_free(pool);
    free(q);
    free(deq);
    free(back);
    free(imp);
    free_problem(&p);
}

/* ---- the values assumed are the values stored ------------------------------------------ */

static void test_deq_exact(void **state) {
    (void)state;
    const int64_t n_rows = 9, n_in = 96;
    problem p = make_problem(0xdec0, n_rows, n_in, 300, 1, NULL);
    /* awkward weights: a huge outlier, a constant row, a zero row, ties */
    p.w[5] = 40.0f;
    for (int64_t i = 0; i < n_in; i++) p.w[2 * n_in + i] = 0.25f;
    for (int64_t i = 0; i < n_in; i++) p.w[3 * n_in + i] = 0.0f;
    for (int64_t i = 0; i < n_in; i++) p.w[4 * n_in + i] = (float)(i % 16) * 0.5f - 4.0f;
    uint8_t *q = xmalloc((size_t)n_rows * orion_type_row_bytes(ORION_TYPE_Q8_0, n_in));
    float *deq = xmalloc((size_t)(n_rows * n_in) * sizeof(float)), *back = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    const orion_kernels *tables[2] = {orion__kernels_ref(), orion__kernels_simd()};
    for (int ti = 0; ti < 3; ti++)
        for (int s = 0; s < 2; s++) {
            const orion_type t = GPTQ_TYPES[ti];
            orion__gptq_params gp = orion__gptq_default_params();
            gp.search_scale = s == 1;
            assert_int_equal(orion__quantize_gptq(t, p.w, n_rows, n_in, p.h, &gp, NULL, q, deq), ORION_OK);
            for (int k = 0; k < 2; k++) {
                if (!tables[k]) continue;
                tables[k]->dequantize_row[t](q, back, n_rows * n_in);
                for (int64_t i = 0; i < n_rows * n_in; i++)
                    if (memcmp(&back[i], &deq[i], sizeof(float)) != 0)
                        fail_msg("%s (search %d, %s table) element %lld: stored %.9g, assumed %.9g", orion_type_name(t),
                                 s, tables[k]->name, (long long)i, back[i], deq[i]);
            }
            /* the zero row stays exactly zero */
            for (int64_t i = 0; i < n_in; i++) assert_true(deq[3 * n_in + i] == 0.0f);
        }
    free(q);
    free(deq);
    free(back);
    free_problem(&p);
}

/* ---- an independent implementation ---------------------------------------------------------
 * The textbook form: keep Hinv = (H + lambda I)^-1 explicitly (Gauss-Jordan);
 * for each column i: e = (w_i - q_i) / Hinv_ii, w_F -= e Hinv_{i,F}, then
 * remove i: Hinv -= Hinv_{:,i} Hinv_{i,:} / Hinv_ii. Block parameters by the
 * reference rule from the current weights, levels by nearest rounding. */

static void invert(double *a, int64_t n) {
    double *b = xmalloc((size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n * n; i++) b[i] = 0.0;
    for (int64_t i = 0; i < n; i++) b[i * n + i] = 1.0;
    for (int64_t c = 0; c < n; c++) { /* SPD: no pivoting needed */
        const double piv = a[c * n + c];
        assert_true(piv > 0.0);
        for (int64_t j = 0; j < n; j++) a[c * n + j] /= piv, b[c * n + j] /= piv;
        for (int64_t r = 0; r < n; r++) {
            if (r == c) continue;
            const double f = a[r * n + c];
            for (int64_t j = 0; j < n; j++) a[r * n + j] -= f * a[c * n + j], b[r * n + j] -= f * b[c * n + j];
        }
    }
    memcpy(a, b, (size_t)(n * n) * sizeof(double));
    free(b);
}

static void textbook_gptq(orion_type t, const float *w_in, int64_t n_in, const double *h, double damp, float *out) {
    const int64_t n = n_in;
    double *hinv = xmalloc((size_t)(n * n) * sizeof(double)), *w = xmalloc((size_t)n * sizeof(double));
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) mean += h[i * n + i];
    mean /= (double)n;
    memcpy(hinv, h, (size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n; i++) hinv[i * n + i] += damp * mean;
    invert(hinv, n);
    for (int64_t i = 0; i < n; i++) w[i] = w_in[i];
    uint8_t blk[sizeof(orion_block_q8_0)];
    float d = 0.0f, m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) {
            float xb[32];
            for (int j = 0; j < 32; j++) xb[j] = (float)w[i + j];
            orion__kernels_ref()->quantize_row[t](xb, blk, 32);
            uint16_t hd, hm = 0;
            memcpy(&hd, blk, 2);
            if (t == ORION_TYPE_Q4_1) memcpy(&hm, blk + 2, 2);
            d = orion_fp16_to_fp32(hd);
            m = orion_fp16_to_fp32(hm);
        }
        float v;
        if (t == ORION_TYPE_Q4_1) {
            double l = d != 0.0f ? floor((w[i] - m) / d + 0.5) : 0.0;
            l = l < 0 ? 0 : l > 15 ? 15 : l;
            v = (float)l * d + m;
        } else {
            const double lo = t == ORION_TYPE_Q4_0 ? -8 : -127, hi = t == ORION_TYPE_Q4_0 ? 7 : 127;
            double l = d != 0.0f ? floor(w[i] / d + 0.5) : 0.0;
            l = l < lo ? lo : l > hi ? hi : l;
            v = (float)l * d;
        }
        out[i] = v;
        const double hii = hinv[i * n + i], e = (w[i] - v) / hii;
        for (int64_t k = i + 1; k < n; k++) w[k] -= e * hinv[i * n + k];
        for (int64_t r = i + 1; r < n; r++) {
            const double f = hinv[r * n + i] / hii;
            for (int64_t c = i + 1; c < n; c++) hinv[r * n + c] -= f * hinv[i * n + c];
        }
    }
    free(hinv);
    free(w);
}

static void test_matches_textbook(void **state) {
    (void)state;
    const int64_t n_rows = 24, n_in = 128;
    problem p = make_problem(0x7b00c, n_rows, n_in, 1024, 1, NULL);
    uint8_t *q = xmalloc((size_t)n_rows * orion_type_row_bytes(ORION_TYPE_Q8_0, n_in));
    float *deq = xmalloc((size_t)(n_rows * n_in) * sizeof(float)), *ref = xmalloc((size_t)n_in * sizeof(float));
    for (int ti = 0; ti < 3; ti++) {
        const orion_type t = GPTQ_TYPES[ti];
        assert_int_equal(orion__quantize_gptq(t, p.w, n_rows, n_in, p.h, NULL, NULL, q, deq), ORION_OK);
        int64_t same = 0, total = 0;
        double e_ours = 0.0, e_ref = 0.0;
        for (int64_t r = 0; r < n_rows; r++) {
            textbook_gptq(t, p.w + r * n_in, n_in, p.h, 0.01, ref);
            for (int64_t i = 0; i < n_in; i++) same += ref[i] == deq[r * n_in + i], total++;
            e_ours += orion__gptq_output_error(p.h, n_in, p.w + r * n_in, deq + r * n_in, NULL);
            e_ref += orion__gptq_output_error(p.h, n_in, p.w + r * n_in, ref, NULL);
        }
        print_message("%s: %lld of %lld values equal to the textbook implementation's; output error %.6g vs %.6g\n",
                      orion_type_name(t), (long long)same, (long long)total, e_ours, e_ref);
        /* the same choices, up to a rounding tie broken the other way */
        assert_true(same >= total - total / 100);
        assert_true(fabs(e_ours - e_ref) <= 0.01 * e_ref);
    }
    free(q);
    free(deq);
    free(ref);
    free_problem(&p);
}

/* ---- a diagonal Hessian: round to nearest ------------------------------------------------ */

static void test_diagonal_is_rtn(void **state) {
    (void)state;
    const int64_t n_rows = 16, n_in = 256;
    test_rng r = {0xd1a9};
    float *w = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    float *deq = xmalloc((size_t)(n_rows * n_in) * sizeof(float)), *rtn = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    double *h = xmalloc((size_t)(n_in * n_in) * sizeof(double));
    uint8_t *q = xmalloc((size_t)n_rows * orion_type_row_bytes(ORION_TYPE_Q8_0, n_in));
    test_fill_normal(&r, w, n_rows * n_in, 1.0f);
    memset(h, 0, (size_t)(n_in * n_in) * sizeof(double));
    for (int64_t i = 0; i < n_in; i++) h[i * n_in + i] = exp(test_rng_normal(&r));
    for (int ti = 0; ti < 3; ti++) {
        const orion_type t = GPTQ_TYPES[ti];
        assert_int_equal(orion__quantize_gptq(t, w, n_rows, n_in, h, NULL, NULL, q, deq), ORION_OK);
        assert_int_equal(orion_quantize(t, w, q, n_rows, n_in, NULL), ORION_OK);
        dequantize(t, q, n_rows, n_in, rtn);
        /* The reference rule picks codes for the unrounded scale, GPTQ for
         * the stored (f16) one: they may differ where that moves the nearest
         * level, and then GPTQ's value is the nearer one. */
        int64_t diff = 0;
        for (int64_t i = 0; i < n_rows * n_in; i++) {
            if (deq[i] == rtn[i]) continue;
            diff++;
            if (!(fabs((double)deq[i] - w[i]) <= fabs((double)rtn[i] - w[i])))
                fail_msg("%s element %lld: %.9g -> gptq %.9g, reference %.9g", orion_type_name(t), (long long)i,
                         w[i], deq[i], rtn[i]);
        }
        print_message("%s, diagonal H: %lld of %lld values differ from round to nearest\n", orion_type_name(t),
                      (long long)diff, (long long)(n_rows * n_in));
        assert_true(diff <= n_rows * n_in / 100);
    }
    free(w);
    free(deq);
    free(rtn);
    free(h);
    free(q);
}

/* ---- dead inputs ---------------------------------------------------------------------------- */

static void test_dead_inputs(void **state) {
    (void)state;
    const int64_t n_rows = 33, n_in = 256;
    bool dead[256];
    for (int64_t i = 0; i < n_in; i++) dead[i] = i % 7 == 3 || (i >= 64 && i < 96); /* a whole block too */
    problem p = make_problem(0xdead, n_rows, n_in, 2048, 2048, dead);
    for (int64_t i = 0; i < n_in; i++)
        if (dead[i]) assert_true(p.h[i * n_in + i] == 0.0);
    const size_t bytes = (size_t)n_rows * orion_type_row_bytes(ORION_TYPE_Q8_0, n_in);
    uint8_t *q1 = xmalloc(bytes), *q2 = xmalloc(bytes);
    float *deq = xmalloc((size_t)(n_rows * n_in) * sizeof(float)), *w2 = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    float *rtn = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
    memcpy(w2, p.w, (size_t)(n_rows * n_in) * sizeof(float));
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < n_in; i++)
            if (dead[i]) w2[r * n_in + i] = 100.0f * (float)(r + 1);
    for (int ti = 0; ti < 3; ti++) {
        const orion_type t = GPTQ_TYPES[ti];
        assert_int_equal(orion__quantize_gptq(t, p.w, n_rows, n_in, p.h, NULL, NULL, q1, deq), ORION_OK);
        assert_int_equal(orion__quantize_gptq(t, w2, n_rows, n_in, p.h, NULL, NULL, q2, NULL), ORION_OK);
        /* dead weights never reach an output: they must not change a byte */
        assert_memory_equal(q1, q2, (size_t)n_rows * orion_type_row_bytes(t, n_in));
        for (int64_t i = 0; i < n_rows * n_in; i++) assert_true(isfinite(deq[i]));
        /* the block of dead inputs is all zero */
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t i = 64; i < 96; i++) assert_true(deq[r * n_in + i] == 0.0f);
        /* still better than round to nearest on the live inputs */
        assert_int_equal(orion_quantize(t, p.w, q2, n_rows, n_in, NULL), ORION_OK);
        dequantize(t, q2, n_rows, n_in, rtn);
        const double eg = output_error(p.x_test, p.n_test, n_in, p.w, deq, n_rows);
        const double er = output_error(p.x_test, p.n_test, n_in, p.w, rtn, n_rows);
        const double egc = output_error(p.x_cal, p.n_cal, n_in, p.w, deq, n_rows);
        const double erc = output_error(p.x_cal, p.n_cal, n_in, p.w, rtn, n_rows);
        print_message("%s with dead inputs: output error x%.3f (calibration) x%.3f (held-out) of round to nearest\n",
                      orion_type_name(t), egc / erc, eg / er);
        assert_true(egc < 0.8 * erc);
        assert_true(eg < 0.8 * er);
    }
    /* no input ever active: every weight is quantized as zero */
    memset(p.h, 0, (size_t)(n_in * n_in) * sizeof(double));
    for (int ti = 0; ti < 3; ti++) {
        assert_int_equal(orion__quantize_gptq(GPTQ_TYPES[ti], p.w, n_rows, n_in, p.h, NULL, NULL, q1, deq), ORION_OK);
        for (int64_t i = 0; i < n_rows * n_in; i++) assert_true(deq[i] == 0.0f);
    }
    free(q1);
    free(q2);
    free(deq);
    free(w2);
    free(rtn);
    free_problem(&p);
}

/* ---- threads and tiles --------------------------------------------------------------------- */

static void test_threads_and_tiles(void **state) {
    (void)state;
    const int64_t n_rows = 23, n_in = 64;
    problem p = make_problem(0x7111e, n_rows, n_in, 256, 1, NULL);
    const size_t rb = orion_type_row_bytes(ORION_TYPE_Q4_1, n_in);
    uint8_t *q1 = xmalloc((size_t)n_rows * rb), *q2 = xmalloc((size_t)n_rows * rb), *q3 = xmalloc(rb);
    orion_threadpool_params tpp = orion_threadpool_default_params();
    tpp.n_threads = 2;
    orion_threadpool *pool = NULL;
    assert_int_equal(orion_threadpool_init(&tpp, &pool), ORION_OK);
    assert_int_equal(orion__quantize_gptq(ORION_TYPE_Q4_1, p.w, n_rows, n_in, p.h, NULL, NULL, q1, NULL), ORION_OK);
    assert_int_equal(orion__quantize_gptq(ORION_TYPE_Q4_1, p.w, n_rows, n_in, p.h, NULL, pool, q2, NULL), ORION_OK);
    assert_memory_equal(q1, q2, (size_t)n_rows * rb);
    /* one row at a time through a prepared Hessian: the same bytes */
    orion__gptq *g = NULL;
    assert_int_equal(orion__gptq_init(p.h, n_in, NULL, &g), ORION_OK);
    assert_int_equal(orion__gptq_n_in(g), n_in);
    assert_true(orion__gptq_damping(g) > 0.0);
    for (int64_t r = 0; r < n_rows; r++) {
        assert_int_equal(orion__gptq_quantize_rows(g, ORION_TYPE_Q4_1, p.w + r * n_in, 1, q3, NULL), ORION_OK);
        assert_memory_equal(q3, q1 + (size_t)r * rb, rb);
    }
    assert_int_equal(orion__gptq_quantize_rows(g, ORION_TYPE_Q4_1, p.w, 0, q3, NULL), ORION_OK);
    orion__gptq_free(g);
    orion__gptq_free(NULL);
    orion_threadpool_free(pool);
    free(q1);
    free(q2);
    free(q3);
    free_problem(&p);
}

/* ---- bad arguments -------------------------------------------------------------------------- */

static void expect_fail(orion_status got, orion_status want, const char *what) {
    if (got != want) fail_msg("%s: status %d, want %d", what, (int)got, (int)want);
    const char *msg = orion_last_error();
    if (!msg || !strstr(msg, "gptq")) fail_msg("%s: message '%s' does not say gptq", what, msg ? msg : "(null)");
}

static void test_bad_args(void **state) {
    (void)state;
    const int64_t n = 64;
    double *h = xmalloc((size_t)(n * n) * sizeof(double));
    float w[2 * 64];
    uint8_t q[2 * 80];
    memset(h, 0, (size_t)(n * n) * sizeof(double));
    for (int64_t i = 0; i < n; i++) h[i * n + i] = 1.0;
    for (int i = 0; i < 2 * 64; i++) w[i] = (float)sin(i);
    const orion_type Q41 = ORION_TYPE_Q4_1;
    assert_int_equal(orion__quantize_gptq(Q41, w, 2, n, h, NULL, NULL, q, NULL), ORION_OK);

    expect_fail(orion__quantize_gptq(Q41, w, 1, 48, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "n_in 48");
    expect_fail(orion__quantize_gptq(Q41, w, 1, 0, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "n_in 0");
    expect_fail(orion__quantize_gptq(ORION_TYPE_F16, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_UNSUPPORTED, "f16");
    expect_fail(orion__quantize_gptq(ORION_TYPE_F32, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_UNSUPPORTED, "f32");
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, NULL, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "NULL H");
    expect_fail(orion__quantize_gptq(Q41, NULL, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "NULL W");
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, NULL, NULL, NULL, NULL), ORION_ERR_INVALID_ARG, "NULL dst");
    expect_fail(orion__quantize_gptq(Q41, w, -1, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "negative rows");
    orion__gptq_params gp = orion__gptq_default_params();
    gp.damp = -0.1;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, &gp, NULL, q, NULL), ORION_ERR_INVALID_ARG, "negative damping");
    gp.damp = NAN;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, &gp, NULL, q, NULL), ORION_ERR_INVALID_ARG, "NaN damping");
    orion__gptq *g = NULL;
    expect_fail(orion__gptq_init(h, n, NULL, NULL), ORION_ERR_INVALID_ARG, "NULL out");
    /* a prepared Hessian of 48 inputs can be made, but not used for blocks */
    double h48[48 * 48];
    memset(h48, 0, sizeof h48);
    for (int i = 0; i < 48; i++) h48[i * 48 + i] = 2.0;
    assert_int_equal(orion__gptq_init(h48, 48, NULL, &g), ORION_OK);
    expect_fail(orion__gptq_quantize_rows(g, Q41, w, 1, q, NULL), ORION_ERR_INVALID_ARG, "rows of 48");
    orion__gptq_free(g);

    /* bad Hessians */
    h[5 * n + 9] = NAN;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "NaN in H");
    h[5 * n + 9] = INFINITY;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "inf in H");
    h[5 * n + 9] = 0.0;
    h[7 * n + 7] = -1.0;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "negative H_ii");
    h[7 * n + 7] = 1.0;
    /* indefinite: eigenvalues 1 +- 1.5; damping 0.01 and 0.1 fail, 1 works */
    h[2 * n + 3] = h[3 * n + 2] = 1.5;
    assert_int_equal(orion__gptq_init(h, n, NULL, &g), ORION_OK);
    assert_true(orion__gptq_damping(g) > 0.5);
    orion__gptq_free(g);
    /* so indefinite that no damping up to 1e3 x the mean diagonal helps */
    h[2 * n + 3] = h[3 * n + 2] = 1e7;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "indefinite H");
    h[2 * n + 3] = h[3 * n + 2] = 0.0;
    /* non-finite weights */
    w[70] = NAN;
    expect_fail(orion__quantize_gptq(Q41, w, 2, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "NaN weight");
    w[70] = INFINITY;
    expect_fail(orion__quantize_gptq(Q41, w, 2, n, h, NULL, NULL, q, NULL), ORION_ERR_INVALID_ARG, "inf weight");
    w[70] = 0.5f;
    /* a scale outside f16: weights near FLT_MAX */
    for (int i = 0; i < 32; i++) w[i] = (i % 2 ? 1.0f : -1.0f) * 1e30f;
    expect_fail(orion__quantize_gptq(Q41, w, 1, n, h, NULL, NULL, q, NULL), ORION_ERR_RANGE, "huge weights");
    free(h);
}

/* ---- orion_convert with Hessians ---------------------------------------------------------- */

typedef struct hess_src {
    int     n_calls;
    char    names[64][64];
    double *h[64];
    int64_t n[64];
    bool    bad;    /* hand out an indefinite Hessian */
} hess_src;

/* A seeded correlated Hessian per tensor name (X = Z A, 4 n_in rows). */
static const double *hess_cb(void *user, const char *name, int64_t n_in) {
    hess_src *hs = user;
    assert_true(hs->n_calls < 64);
    const int k = hs->n_calls++;
    snprintf(hs->names[k], sizeof hs->names[k], "%s", name);
    hs->n[k] = n_in;
    problem p = make_problem(0x1000u + (uint64_t)k, 1, n_in, 4 * n_in, 1, NULL);
    hs->h[k] = p.h;
    p.h = NULL;
    free_problem(&p);
    if (hs->bad) hs->h[k][0 * n_in + 1] = hs->h[k][1 * n_in + 0] = 1e9 * (hs->h[k][0] + hs->h[k][n_in + 1]);
    return hs->h[k];
}

static void free_hess_src(hess_src *hs) {
    for (int i = 0; i < hs->n_calls; i++) free(hs->h[i]);
}

typedef struct reports {
    int                 n;
    orion_tensor_report r[64];
    char                names[64][64];
} reports;

static void on_report(void *user, int64_t index, int64_t count, const orion_tensor_report *r) {
    (void)index, (void)count;
    reports *rs = user;
    if (rs->n >= 64) return;
    rs->r[rs->n] = *r;
    snprintf(rs->names[rs->n], sizeof rs->names[rs->n], "%s", r->name);
    rs->r[rs->n].name = rs->names[rs->n];
    rs->n++;
}

static void test_convert_with_hessians(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) skip();
    char src[1024], out[256];
    snprintf(src, sizeof src, "%s/models/stories260K/stories260K.gguf", shared);
    if (access(src, R_OK) != 0) skip();
    snprintf(out, sizeof out, "/tmp/orion_test_gptq_%d.gguf", (int)getpid());

    hess_src hs;
    memset(&hs, 0, sizeof hs);
    reports rs;
    memset(&rs, 0, sizeof rs);
    orion_convert_params cp = orion_convert_default_params();
    cp.type = ORION_TYPE_Q4_1;
    cp.hessian = hess_cb;
    cp.hessian_user = &hs;
    cp.gptq_damp = 0.02;
    cp.on_tensor = on_report;
    cp.user = &rs;
    cp.n_threads = 2;
    assert_int_equal(orion_convert(src, out, &cp), ORION_OK);

    /* asked only for multiplied matrices of a 32-block target type:
     * attention and ffn_gate/up at q4_1, output.weight at q8_0; never
     * token_embd (a lookup table), norms, or ffn_down (rows of 172 -> f16) */
    assert_true(hs.n_calls == 6 * 5 + 1);
    for (int i = 0; i < hs.n_calls; i++) {
        assert_null(strstr(hs.names[i], "token_embd"));
        assert_null(strstr(hs.names[i], "ffn_down"));
        assert_null(strstr(hs.names[i], "norm"));
        assert_int_equal(hs.n[i], 64);
    }

    /* each such tensor holds exactly what orion__quantize_gptq writes */
    orion_gguf *a = NULL, *b = NULL;
    assert_int_equal(orion_gguf_open(src, &a), ORION_OK);
    assert_int_equal(orion_gguf_open(out, &b), ORION_OK);
    orion__gptq_params gp = orion__gptq_default_params();
    gp.damp = 0.02;
    int n_gptq = 0;
    for (int i = 0; i < hs.n_calls; i++) {
        const orion_gguf_tensor *ta = orion_gguf_find_tensor(a, hs.names[i]);
        const orion_gguf_tensor *tb = orion_gguf_find_tensor(b, hs.names[i]);
        assert_non_null(ta);
        assert_non_null(tb);
        assert_int_equal(ta->type, ORION_TYPE_F32);
        const orion_type want = strcmp(hs.names[i], "output.weight") == 0 ? ORION_TYPE_Q8_0 : ORION_TYPE_Q4_1;
        assert_int_equal(tb->type, want);
        const int64_t n_in = ta->ne[0], n_rows = ta->ne[1];
        uint8_t *q = xmalloc(tb->n_bytes);
        float *deq = xmalloc((size_t)(n_rows * n_in) * sizeof(float));
        assert_int_equal(orion__quantize_gptq(want, ta->data, n_rows, n_in, hs.h[i], &gp, NULL, q, deq), ORION_OK);
        assert_memory_equal(q, tb->data, tb->n_bytes);
        /* the report: GPTQ, and its output error recomputed */
        const orion_tensor_report *r = NULL;
        for (int k = 0; k < rs.n; k++)
            if (strcmp(rs.r[k].name, hs.names[i]) == 0) r = &rs.r[k];
        assert_non_null(r);
        assert_true(r->gptq);
        double oe = 0.0, oref = 0.0;
        for (int64_t row = 0; row < n_rows; row++) {
            const float *w = (const float *)ta->data + row * n_in;
            double rr = 0.0;
            oe += orion__gptq_output_error(hs.h[i], n_in, w, deq + row * n_in, &rr);
            oref += rr;
            /* the reference form alone agrees */
            assert_true(fabs(orion__gptq_output_error(hs.h[i], n_in, w, NULL, NULL) - rr) <= 1e-12 * rr);
        }
        assert_true(fabs(sqrt(oe / oref) - r->out_rel_err) <= 1e-9 + 1e-6 * r->out_rel_err);
        n_gptq++;
        free(q);
        free(deq);
    }
    assert_int_equal(n_gptq, 31);
    for (int k = 0; k < rs.n; k++) {
        bool asked = false;
        for (int i = 0; i < hs.n_calls; i++) asked = asked || strcmp(hs.names[i], rs.r[k].name) == 0;
        if (!asked) {
            assert_false(rs.r[k].gptq);
            assert_true(rs.r[k].out_rel_err == -1.0);
        }
    }
    orion_gguf_free(a);
    orion_gguf_free(b);
    free_hess_src(&hs);
    remove(out);

    /* a Hessian that no damping repairs fails the conversion, naming the
     * tensor, and leaves no file */
    memset(&hs, 0, sizeof hs);
    hs.bad = true;
    rs.n = 0;
    assert_int_equal(orion_convert(src, out, &cp), ORION_ERR_INVALID_ARG);
    assert_non_null(strstr(orion_last_error(), "tensor 'output.weight'")); /* the first one asked for */
    assert_non_null(strstr(orion_last_error(), "positive definite"));
    assert_int_not_equal(access(out, F_OK), 0);
    free_hess_src(&hs);
    /* bad damping */
    cp.gptq_damp = -1.0;
    assert_int_equal(orion_convert(src, out, &cp), ORION_ERR_INVALID_ARG);
    assert_non_null(strstr(orion_last_error(), "gptq_damp"));
}

/* ---- out of memory ------------------------------------------------------------------------ */

/* Fail allocation N, N+1, ...: every failure is a clean ORION_ERR_NOMEM
 * (ASan builds also check that nothing leaks), until the call succeeds. */
static void test_out_of_memory(void **state) {
    (void)state;
    const int64_t n_rows = 6, n_in = 64;
    problem p = make_problem(0x0e0e, n_rows, n_in, 256, 1, NULL);
    uint8_t *q = xmalloc((size_t)n_rows * orion_type_row_bytes(ORION_TYPE_Q4_1, n_in));
    orion_threadpool_params tpp = orion_threadpool_default_params();
    tpp.n_threads = 2;
    orion_threadpool *pool = NULL;
    assert_int_equal(orion_threadpool_init(&tpp, &pool), ORION_OK);
    int fails = 0;
    for (int64_t k = 0;; k++) {
        orion__alloc_fail_after(k);
        const orion_status st = orion__quantize_gptq(ORION_TYPE_Q4_1, p.w, n_rows, n_in, p.h, NULL, pool, q, NULL);
        orion__alloc_fail_after(-1);
        if (st == ORION_OK) break;
        assert_int_equal(st, ORION_ERR_NOMEM);
        assert_non_null(strstr(orion_last_error(), "out of memory"));
        fails++;
        assert_true(k < 100);
    }
    print_message("gptq: %d allocation failures reported cleanly\n", fails);
    assert_true(fails >= 4);
    orion_threadpool_free(pool);
    free(q);
    free_problem(&p);
}

/* ---- the command line ------------------------------------------------------------------------ */

static char *slurp_file(const char *path) {
    return test_read_file(path, NULL);
}

/* `orion quantize --gptq` on stories260K: runs, says what it calibrated on,
 * marks the tensors, writes a model that loads and runs; bad inputs exit 1
 * or 2 with a message. */
static void test_cli_gptq(void **state) {
    (void)state;
    const char *shared = test_shared_dir(), *bin = getenv("ORION_BIN");
    if (!shared || !bin) skip();
    char model[1024], text[1024], out[256], log[256], cmd[4096];
    snprintf(model, sizeof model, "%s/models/stories260K/stories260K.gguf", shared);
    if (access(model, R_OK) != 0) skip();
    snprintf(text, sizeof text, "%s/stories.txt", ORION_TEST_DATA);
    snprintf(out, sizeof out, "/tmp/orion_test_gptq_cli_%d.gguf", (int)getpid());
    snprintf(log, sizeof log, "/tmp/orion_test_gptq_cli_%d.txt", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s quantize %s %s --type q4_1 --gptq %s --ctx 64 --chunks 4 --calibrate --per-tensor "
             "--threads 2 > %s 2>&1", bin, model, out, text, log);
    assert_int_equal(system(cmd), 0);
    char *got = slurp_file(log);
    assert_non_null(got);
    assert_non_null(strstr(got, "gptq: Hessians of 36 tensors")); /* 5 x 7 + the head */
    assert_non_null(strstr(got, "from 4 chunks of 64 tokens"));
    assert_non_null(strstr(got, "blk.0.attn_q.weight              f32->q4_1(gptq)"));
    assert_non_null(strstr(got, "output.weight                    f32->q8_0(gptq)"));
    assert_null(strstr(got, "token_embd.weight                f32->q8_0(gptq)"));
    free(got);
    orion_llm *llm = NULL;
    orion_llm_params lp = orion_llm_default_params();
    lp.n_ctx = 32;
    assert_int_equal(orion_llm_load(out, &lp, &llm), ORION_OK);
    int32_t tok[4] = {1, 400, 401, 402};
    assert_int_equal(orion_llm_eval(llm, tok, 4, 0, NULL, false), ORION_OK);
    orion_llm_free(llm);
    unlink(out);
    /* errors */
    snprintf(cmd, sizeof cmd, "%s quantize %s %s --type q4_1 --gptq /nonexistent.txt > %s 2>&1", bin, model, out, log);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    got = slurp_file(log);
    assert_non_null(strstr(got, "/nonexistent.txt"));
    free(got);
    snprintf(cmd, sizeof cmd, "%s quantize %s %s --type q4_1 --gptq %s --ctx 100000 > %s 2>&1", bin, model, out,
             text, log);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    got = slurp_file(log);
    assert_non_null(strstr(got, "shorter than one chunk"));
    free(got);
    snprintf(cmd, sizeof cmd, "%s quantize %s %s --type q4_1 --gptq %s --gptq-damp x > /dev/null 2>&1", bin, model,
             out, text);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    assert_int_not_equal(access(out, F_OK), 0);
    unlink(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_error),
        cmocka_unit_test(test_deq_exact),
        cmocka_unit_test(test_matches_textbook),
        cmocka_unit_test(test_diagonal_is_rtn),
        cmocka_unit_test(test_dead_inputs),
        cmocka_unit_test(test_threads_and_tiles),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_convert_with_hessians),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_cli_gptq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
