/*
 * test_ops.c — tests of the elementwise kernels (ops_ref.c, x86/ops_avx2.c):
 * conversions, softmax, layernorm, rmsnorm, gelu, gelu_tanh, silu, add, mul,
 * scale.
 *
 * Three kinds of check:
 *   1. SIMD table against the reference table (orion__kernels_simd(); the
 *      comparisons are skipped when this CPU has no SIMD set) at the awkward
 *      lengths of test_util.h, on seeded data, with guard bytes around every
 *      output to catch tail overruns. Exact equality where the kernels
 *      promise it (conversions, add, mul, scale), documented bounds
 *      elsewhere.
 *   2. Both tables against double-precision computations of the same
 *      functions (softmax sums, normalized means and variances, gelu against
 *      double erfc, ...).
 *   3. Special values: the whole f16 and bf16 code spaces, every f16
 *      rounding boundary, masked (-inf) softmax rows, huge inputs, NaN,
 *      y aliasing x.
 *
 * Error unit: "u" is 2^-24 times the magnitude of the exact value (about one
 * f32 ulp), with a floor for results near underflow, given per test.
 * ctest runs this executable twice (normally and with ORION_FORCE_REF=1);
 * the tests address both tables directly, so both runs check everything.
 */
#include "kernels/kernels.h"

#include "core/fp16.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define U24 (1.0 / 16777216.0) /* 2^-24 */

/* ---- helpers --------------------------------------------------------------- */

static const orion_kernels *ref_k(void) {
    return orion__kernels_ref();
}

/* NULL when this CPU has no SIMD table. */
static const orion_kernels *simd_k(void) {
    return orion__kernels_simd();
}

/* The tables to check against double precision: ref, then SIMD if any. */
static int tables(const orion_kernels *out[2]) {
    int n = 0;
    out[n++] = ref_k();
    if (simd_k()) out[n++] = simd_k();
    return n;
}

/* A buffer of n elements with GUARD elements of canary bytes on each side.
 * GUARD is odd so the data is misaligned for vector loads. */
#define GUARD 5
#define CANARY 0xA5

typedef struct gbuf {
    unsigned char *base;
    size_t elem;
    int64_t n;
} gbuf;

static void *gbuf_new(gbuf *g, int64_t n, size_t elem) {
    size_t bytes = (size_t)(n + 2 * GUARD) * elem;
    g->base = malloc(bytes);
    assert_non_null(g->base);
    memset(g->base, CANARY, bytes);
    g->elem = elem;
    g->n = n;
    return g->base + GUARD * elem;
}

static void gbuf_check(const gbuf *g) {
    size_t gb = GUARD * g->elem;
    const unsigned char *tail = g->base + gb + (size_t)g->n * g->elem;
    for (size_t i = 0; i < gb; i++) {
        assert_int_equal(g->base[i], CANARY);
        assert_int_equal(tail[i], CANARY);
    }
}

static void gbuf_free(gbuf *g) {
    free(g->base);
    g->base = NULL;
}

static int same_bits(float a, float b) {
    return orion__f32_bits(a) == orion__f32_bits(b);
}

/* |got - want| in units of 2^-24 * max(|want|, floor). Infinities must
 * match exactly, NaN must meet NaN. */
static double err_u(float got, double want, double floor_) {
    if (isnan(want)) return isnan(got) ? 0.0 : INFINITY;
    if (isnan(got)) return INFINITY;
    if (isinf((float)want) || isinf(got)) return (got == (float)want) ? 0.0 : INFINITY;
    double scale = fabs(want) > floor_ ? fabs(want) : floor_;
    return fabs((double)got - want) / (scale * U24);
}

/* Running maximum of an error, with the input where it happened. */
typedef struct maxerr {
    double err;
    double at;
} maxerr;

static void maxerr_add(maxerr *m, double err, double at) {
    if (err > m->err || isnan(err)) {
        m->err = err;
        m->at = at;
    }
}

/* ---- conversions ----------------------------------------------------------- */

static int is_f16_nan(uint16_t h) {
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
}

static int is_bf16_nan(uint16_t h) {
    return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
}

/* Every f16 pattern: the table's f16 -> f32 equals core/fp16.h bit for bit,
 * and f32 -> f16 gives the pattern back (NaN: stays NaN). The SIMD table is
 * also compared with the reference, on the whole space and at each awkward
 * length. */
static void test_fp16_exhaustive(void **state) {
    (void)state;
    enum { N = 65536 };
    uint16_t *h = malloc(N * sizeof *h);
    uint16_t *h2 = malloc(N * sizeof *h2);
    float *f = malloc(N * sizeof *f);
    float *fr = malloc(N * sizeof *fr);
    assert_true(h && h2 && f && fr);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;

    const orion_kernels *t[2];
    int nt = tables(t);
    for (int k = 0; k < nt; k++) {
        t[k]->fp16_to_f32(h, f, N);
        for (int i = 0; i < N; i++) assert_true(same_bits(f[i], orion__fp16_to_fp32(h[i])));
        t[k]->f32_to_fp16(f, h2, N);
        for (int i = 0; i < N; i++) {
            if (is_f16_nan(h[i])) {
                assert_true(isnan(f[i]));
                assert_true(is_f16_nan(h2[i]));
                assert_int_equal(h2[i], orion__fp32_to_fp16(f[i]));
            } else {
                assert_int_equal(h2[i], h[i]);
            }
        }
    }
    const orion_kernels *s = simd_k();
    if (s) {
        /* Whole space in awkward chunks: tails go through the scalar path. */
        ref_k()->fp16_to_f32(h, fr, N);
        for (int L = 0; L < TEST_N_AWKWARD; L++) {
            int64_t len = TEST_AWKWARD_LENGTHS[L];
            for (int64_t i = 0; i < N; i += len) {
                int64_t m = ORION_MIN(len, N - i);
                s->fp16_to_f32(h + i, f + i, m);
            }
            assert_memory_equal(f, fr, N * sizeof *f);
        }
    }
    free(h);
    free(h2);
    free(f);
    free(fr);
}

/* The same for bf16: f32 = bits << 16, and the round trip is exact. */
static void test_bf16_exhaustive(void **state) {
    (void)state;
    enum { N = 65536 };
    uint16_t *h = malloc(N * sizeof *h);
    uint16_t *h2 = malloc(N * sizeof *h2);
    float *f = malloc(N * sizeof *f);
    assert_true(h && h2 && f);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    const orion_kernels *t[2];
    int nt = tables(t);
    for (int k = 0; k < nt; k++) {
        t[k]->bf16_to_f32(h, f, N);
        for (int i = 0; i < N; i++) assert_int_equal(orion__f32_bits(f[i]), (uint32_t)i << 16);
        t[k]->f32_to_bf16(f, h2, N);
        for (int i = 0; i < N; i++) {
            if (is_bf16_nan(h[i])) {
                assert_true(is_bf16_nan(h2[i]));
                assert_int_equal(h2[i], h[i] | 0x40u); /* quiet bit set, payload kept */
            } else {
                assert_int_equal(h2[i], h[i]);
            }
        }
    }
    free(h);
    free(h2);
    free(f);
}

/* f32 inputs that probe f32 -> f16 rounding: every f16 value, the midpoints
 * between neighbours and the floats either side of them (ties to even),
 * the overflow and underflow thresholds, NaN payloads, and random bit
 * patterns. Returns the count written (cap: room in x). */
static int64_t fp16_probe_inputs(float *x, int64_t cap, test_rng *rng) {
    int64_t n = 0;
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        float v = orion__fp16_to_fp32((uint16_t)h);
        float mid = (v + orion__fp16_to_fp32((uint16_t)(h + 1))) * 0.5f; /* exact */
        float c[5] = {v, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY),
                      nextafterf(v, INFINITY)};
        for (int j = 0; j < 5; j++) {
            assert_true(n + 2 <= cap);
            x[n++] = c[j];
            x[n++] = -c[j];
        }
    }
    const uint32_t special[] = {
        0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477ff001u, /* 65504 .. overflow tie */
        0x7f7fffffu, 0x7f800000u, 0x7f800001u, 0x7fbfffffu, /* max, inf, sNaN */
        0x7fc00000u, 0x7fc00001u, 0x7fffe000u, 0x7fffffffu, /* qNaN payloads */
        0x33000000u, 0x33000001u, 0x32ffffffu, 0x33800000u, /* 2^-25 (half the least subnormal) */
        0x387fe000u, 0x387ff000u, 0x387fffffu, 0x38800000u, /* subnormal/normal edge */
        0x00000001u, 0x00800000u, 0x00000000u, 0x3f800000u,
    };
    for (size_t j = 0; j < ORION_ARRAY_LEN(special); j++) {
        assert_true(n + 2 <= cap);
        x[n++] = orion__bits_f32(special[j]);
        x[n++] = orion__bits_f32(special[j] | 0x80000000u);
    }
    while (n < cap) x[n++] = orion__bits_f32((uint32_t)test_rng_u64(rng));
    return n;
}

/* SIMD f32 -> f16 gives the reference bytes on every probe. */
static void test_f32_to_fp16_rounding(void **state) {
    (void)state;
    const int64_t cap = 0x7c00 * 10 + 200000;
    float *x = malloc((size_t)cap * sizeof *x);
    uint16_t *hr = malloc((size_t)cap * sizeof *hr);
    uint16_t *hs = malloc((size_t)cap * sizeof *hs);
    assert_true(x && hr && hs);
    test_rng rng = {1};
    int64_t n = fp16_probe_inputs(x, cap, &rng);
    ref_k()->f32_to_fp16(x, hr, n);
    for (int64_t i = 0; i < n; i++) assert_int_equal(hr[i], orion__fp32_to_fp16(x[i]));
    /* Spot checks of the rule itself. */
    assert_int_equal(orion__fp32_to_fp16(65519.0f), 0x7bffu);
    assert_int_equal(orion__fp32_to_fp16(65520.0f), 0x7c00u);
    assert_int_equal(orion__fp32_to_fp16(ldexpf(1.0f, -25)), 0x0000u);                        /* tie: even */
    assert_int_equal(orion__fp32_to_fp16(ldexpf(3.0f, -25)), 0x0002u);                        /* tie: even */
    assert_int_equal(orion__fp32_to_fp16(1.0f + ldexpf(1.0f, -11)), 0x3c00u);                 /* tie: even */
    const orion_kernels *s = simd_k();
    if (s) {
        s->f32_to_fp16(x, hs, n);
        assert_memory_equal(hs, hr, (size_t)n * sizeof *hs);
    }
    free(x);
    free(hr);
    free(hs);
}

/* SIMD f32 -> bf16 gives the reference bytes around every rounding boundary
 * of a sample of bf16 values, on specials and on random bit patterns. */
static void test_f32_to_bf16_rounding(void **state) {
    (void)state;
    const int64_t cap = 65536 * 5 + 200000;
    float *x = malloc((size_t)cap * sizeof *x);
    uint16_t *hr = malloc((size_t)cap * sizeof *hr);
    uint16_t *hs = malloc((size_t)cap * sizeof *hs);
    assert_true(x && hr && hs);
    int64_t n = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t mid = (h << 16) | 0x8000u; /* exactly halfway to the next bf16 */
        uint32_t c[5] = {h << 16, mid, mid - 1, mid + 1, (h << 16) | 1u};
        for (int j = 0; j < 5; j++) x[n++] = orion__bits_f32(c[j]);
    }
    test_rng rng = {2};
    while (n < cap) x[n++] = orion__bits_f32((uint32_t)test_rng_u64(&rng));
    ref_k()->f32_to_bf16(x, hr, n);
    for (int64_t i = 0; i < n; i++) assert_int_equal(hr[i], orion__fp32_to_bf16(x[i]));
    assert_int_equal(orion__fp32_to_bf16(orion__bits_f32(0x3f808000u)), 0x3f80u); /* tie: even */
    assert_int_equal(orion__fp32_to_bf16(orion__bits_f32(0x3f818000u)), 0x3f82u); /* tie: even */
    assert_int_equal(orion__fp32_to_bf16(orion__bits_f32(0x7f7fffffu)), 0x7f80u); /* max -> inf */
    const orion_kernels *s = simd_k();
    if (s) {
        s->f32_to_bf16(x, hs, n);
        assert_memory_equal(hs, hr, (size_t)n * sizeof *hs);
    }
    free(x);
    free(hr);
    free(hs);
}

/* All four conversions, SIMD vs reference at the awkward lengths, with
 * canaries around misaligned outputs. */
static void test_conversions_awkward(void **state) {
    (void)state;
    const orion_kernels *r = ref_k(), *s = simd_k();
    if (!s) skip();
    test_rng rng = {3};
    for (int L = 0; L < TEST_N_AWKWARD; L++) {
        int64_t n = TEST_AWKWARD_LENGTHS[L];
        gbuf gx, gh, gys, gyr, ghs, ghr;
        float *x = gbuf_new(&gx, n, sizeof(float));
        uint16_t *h = gbuf_new(&gh, n, sizeof(uint16_t));
        float *ys = gbuf_new(&gys, n, sizeof(float));
        float *yr = gbuf_new(&gyr, n, sizeof(float));
        uint16_t *hs = gbuf_new(&ghs, n, sizeof(uint16_t));
        uint16_t *hr = gbuf_new(&ghr, n, sizeof(uint16_t));
        test_fill_normal(&rng, x, n, 100.0f);
        if (n > 3) x[3] = NAN;
        for (int64_t i = 0; i < n; i++) h[i] = (uint16_t)test_rng_u64(&rng);

        s->f32_to_fp16(x, hs, n);
        r->f32_to_fp16(x, hr, n);
        assert_memory_equal(hs, hr, (size_t)n * sizeof *hs);
        s->f32_to_bf16(x, hs, n);
        r->f32_to_bf16(x, hr, n);
        assert_memory_equal(hs, hr, (size_t)n * sizeof *hs);
        s->fp16_to_f32(h, ys, n);
        r->fp16_to_f32(h, yr, n);
        assert_memory_equal(ys, yr, (size_t)n * sizeof *ys);
        s->bf16_to_f32(h, ys, n);
        r->bf16_to_f32(h, yr, n);
        assert_memory_equal(ys, yr, (size_t)n * sizeof *ys);

        gbuf_check(&gx);
        gbuf_check(&gh);
        gbuf_check(&gys);
        gbuf_check(&gyr);
        gbuf_check(&ghs);
        gbuf_check(&ghr);
        gbuf_free(&gx);
        gbuf_free(&gh);
        gbuf_free(&gys);
        gbuf_free(&gyr);
        gbuf_free(&ghs);
        gbuf_free(&ghr);
    }
}

/* ---- add, mul, scale --------------------------------------------------------- */

static void test_arith(void **state) {
    (void)state;
    const orion_kernels *t[2];
    int nt = tables(t);
    test_rng rng = {4};
    for (int L = 0; L < TEST_N_AWKWARD; L++) {
        int64_t n = TEST_AWKWARD_LENGTHS[L];
        gbuf ga, gb, gy, gz;
        float *a = gbuf_new(&ga, n, sizeof(float));
        float *b = gbuf_new(&gb, n, sizeof(float));
        float *y = gbuf_new(&gy, n, sizeof(float));
        float *z = gbuf_new(&gz, n, sizeof(float));
        test_fill_normal(&rng, a, n, 10.0f);
        test_fill_normal(&rng, b, n, 1e-3f);
        const float sc = -1.7f;
        for (int k = 0; k < nt; k++) {
            t[k]->add(a, b, y, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(y[i], a[i] + b[i]));
            t[k]->mul(a, b, y, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(y[i], a[i] * b[i]));
            t[k]->scale(a, sc, y, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(y[i], a[i] * sc));
            /* Aliasing: y == a, y == b. */
            memcpy(z, a, (size_t)n * sizeof *z);
            t[k]->add(z, b, z, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(z[i], a[i] + b[i]));
            memcpy(z, b, (size_t)n * sizeof *z);
            t[k]->mul(a, z, z, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(z[i], a[i] * b[i]));
            memcpy(z, a, (size_t)n * sizeof *z);
            t[k]->scale(z, sc, z, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(z[i], a[i] * sc));
        }
        gbuf_check(&ga);
        gbuf_check(&gb);
        gbuf_check(&gy);
        gbuf_check(&gz);
        gbuf_free(&ga);
        gbuf_free(&gb);
        gbuf_free(&gy);
        gbuf_free(&gz);
    }
}

/* ---- softmax ----------------------------------------------------------------- */

/* Checks one softmax output against double precision: each element within
 * (6 + |x_i - max|) u of exp(x_i - max) / sum, floor FLT_MIN. The f32
 * subtraction x_i - max alone carries up to |x_i - max| u into the
 * exponential (reached just above powers of two); exp (<= 2 u), f32(1/sum)
 * (1 u) and the product (1 u) add at most 4 u. The row sums to 1 within
 * 1e-6. Returns the largest error / bound. */
static double softmax_check_double(const float *x, const float *y, int64_t n) {
    double max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = fmax(max, x[i]);
    double sum = 0.0, ysum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)x[i] - max);
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double want = exp((double)x[i] - max) / sum;
        double bound = 6.0 + fabs((double)x[i] - max);
        double e = err_u(y[i], want, FLT_MIN);
        assert_true(e <= bound);
        worst = fmax(worst, e / bound);
        ysum += y[i];
    }
    assert_true(fabs(ysum - 1.0) <= 1e-6);
    return worst;
}

static void test_softmax_awkward(void **state) {
    (void)state;
    const orion_kernels *t[2];
    int nt = tables(t);
    const orion_kernels *s = simd_k();
    test_rng rng = {5};
    maxerr vs_ref = {0, 0};
    double vs_double[2] = {0, 0};
    const float scales[] = {1.0f, 10.0f};
    for (size_t sc = 0; sc < ORION_ARRAY_LEN(scales); sc++) {
        for (int L = 0; L < TEST_N_AWKWARD; L++) {
            int64_t n = TEST_AWKWARD_LENGTHS[L];
            gbuf gx, gy[2];
            float *x = gbuf_new(&gx, n, sizeof(float));
            test_fill_normal(&rng, x, n, scales[sc]);
            float *y[2];
            for (int k = 0; k < nt; k++) {
                y[k] = gbuf_new(&gy[k], n, sizeof(float));
                memcpy(y[k], x, (size_t)n * sizeof(float));
                t[k]->softmax(y[k], n);
                gbuf_check(&gy[k]);
                vs_double[k] = fmax(vs_double[k], softmax_check_double(x, y[k], n));
            }
            if (s) {
                /* Same x - max; exp8 (1 u) vs expf (0.5 u), then the same
                 * scaling: within 4 u. */
                for (int64_t i = 0; i < n; i++) {
                    double e = err_u(y[1][i], y[0][i], FLT_MIN);
                    assert_true(e <= 4.0);
                    maxerr_add(&vs_ref, e, x[i]);
                }
            }
            for (int k = 0; k < nt; k++) gbuf_free(&gy[k]);
            gbuf_free(&gx);
        }
    }
    print_message("softmax: simd vs ref max %.2f u; vs double max %.3f (ref) %.3f (simd) of the bound\n",
                  vs_ref.err, vs_double[0], vs_double[1]);
}

static void test_softmax_special(void **state) {
    (void)state;
    const orion_kernels *t[2];
    int nt = tables(t);
    test_rng rng = {6};
    for (int k = 0; k < nt; k++) {
        const orion_kernels *kt = t[k];
        for (int L = 0; L < TEST_N_AWKWARD; L++) {
            int64_t n = TEST_AWKWARD_LENGTHS[L];
            float *x = malloc((size_t)n * sizeof *x);
            float *y = malloc((size_t)n * sizeof *y);
            assert_true(x && y);

            /* Masked attention: every third entry -inf; the others keep
             * their softmax, the masked ones are exactly 0. */
            test_fill_normal(&rng, x, n, 3.0f);
            for (int64_t i = 1; i < n; i += 3) x[i] = -INFINITY;
            memcpy(y, x, (size_t)n * sizeof *y);
            kt->softmax(y, n);
            float *xu = malloc((size_t)n * sizeof *xu), *yu = malloc((size_t)n * sizeof *yu);
            assert_true(xu && yu);
            int64_t m = 0;
            for (int64_t i = 0; i < n; i++) {
                if (x[i] == -INFINITY) {
                    assert_true(y[i] == 0.0f);
                } else {
                    xu[m] = x[i];
                    yu[m++] = y[i];
                }
            }
            softmax_check_double(xu, yu, m);
            free(xu);
            free(yu);

            /* A fully masked row gives zeros. */
            for (int64_t i = 0; i < n; i++) y[i] = -INFINITY;
            kt->softmax(y, n);
            for (int64_t i = 0; i < n; i++) assert_true(same_bits(y[i], 0.0f));

            /* Equal entries give 1/n (one rounding of e * f32(1/n)). */
            for (int64_t i = 0; i < n; i++) y[i] = 7.25f;
            kt->softmax(y, n);
            for (int64_t i = 0; i < n; i++) assert_true(err_u(y[i], 1.0 / (double)n, 0) <= 1.0);

            /* Huge magnitudes: no NaN, a one-hot row at the maximum. */
            for (int64_t i = 0; i < n; i++) y[i] = (i % 2) ? -FLT_MAX : 1e30f;
            y[n / 2] = FLT_MAX;
            kt->softmax(y, n);
            for (int64_t i = 0; i < n; i++) assert_true(y[i] == (i == n / 2 ? 1.0f : 0.0f));

            /* +inf in a row: the row is NaN (inf - inf). */
            test_fill_normal(&rng, y, n, 1.0f);
            y[0] = INFINITY;
            kt->softmax(y, n);
            for (int64_t i = 0; i < n; i++) assert_true(isnan(y[i]));

            /* NaN in a row with finite entries: the row is NaN. */
            test_fill_normal(&rng, y, n, 1.0f);
            y[n - 1] = NAN;
            kt->softmax(y, n);
            for (int64_t i = 0; i < n; i++) assert_true(isnan(y[i]));

            free(x);
            free(y);
        }
        float one[1] = {-3.0f};
        kt->softmax(one, 1);
        assert_true(one[0] == 1.0f);
        kt->softmax(one, 0); /* no-op */
        assert_true(one[0] == 1.0f);
    }
}

/* ---- layernorm, rmsnorm ------------------------------------------------------- */

/* Double-precision layernorm; mag[i] = |xhat_i * gamma_i| + |beta_i|, the
 * scale the f32 errors are measured against (the result itself may cancel
 * to ~0). */
static void layernorm_double(const float *x, double *y, double *mag, int64_t n,
                             const float *gamma, const float *beta, float eps) {
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= (double)n;
    double inv = 1.0 / sqrt(var + (double)eps);
    for (int64_t i = 0; i < n; i++) {
        double v = ((double)x[i] - mean) * inv * (gamma ? gamma[i] : 1.0);
        y[i] = v + (beta ? beta[i] : 0.0);
        mag[i] = fabs(v) + (beta ? fabs((double)beta[i]) : 0.0);
    }
}

static void test_layernorm(void **state) {
    (void)state;
    const orion_kernels *t[2];
    int nt = tables(t);
    const orion_kernels *s = simd_k();
    test_rng rng = {7};
    maxerr vs_ref = {0, 0}, vs_double[2] = {{0, 0}, {0, 0}};
    const float offsets[] = {0.0f, 3.0f, -1e4f};
    const float eps = 1e-5f;
    for (size_t o = 0; o < ORION_ARRAY_LEN(offsets); o++) {
        for (int variant = 0; variant < 4; variant++) { /* gamma?, beta? */
            for (int L = 0; L < TEST_N_AWKWARD; L++) {
                int64_t n = TEST_AWKWARD_LENGTHS[L];
                gbuf gx, gg, gbt, gy[2];
                float *x = gbuf_new(&gx, n, sizeof(float));
                float *g = gbuf_new(&gg, n, sizeof(float));
                float *bt = gbuf_new(&gbt, n, sizeof(float));
                for (int64_t i = 0; i < n; i++) x[i] = offsets[o] + (float)test_rng_normal(&rng) * 2.0f;
                for (int64_t i = 0; i < n; i++) g[i] = 1.0f + 0.5f * (float)test_rng_normal(&rng);
                test_fill_normal(&rng, bt, n, 0.1f);
                const float *gamma = (variant & 1) ? g : NULL;
                const float *beta = (variant & 2) ? bt : NULL;
                double *yd = malloc((size_t)n * sizeof *yd), *mag = malloc((size_t)n * sizeof *mag);
                assert_true(yd && mag);
                layernorm_double(x, yd, mag, n, gamma, beta, eps);
                float *y[2];
                for (int k = 0; k < nt; k++) {
                    y[k] = gbuf_new(&gy[k], n, sizeof(float));
                    t[k]->layernorm(x, y[k], n, gamma, beta, eps);
                    gbuf_check(&gy[k]);
                    /* f32 steps after exact statistics: within 8 u of mag. */
                    for (int64_t i = 0; i < n; i++) {
                        double e = fabs((double)y[k][i] - yd[i]) / (mag[i] * U24 + 1e-30);
                        assert_true(e <= 8.0);
                        maxerr_add(&vs_double[k], e, x[i]);
                    }
                    /* y may equal x: same bits. */
                    float *z = malloc((size_t)n * sizeof *z);
                    assert_non_null(z);
                    memcpy(z, x, (size_t)n * sizeof *z);
                    t[k]->layernorm(z, z, n, gamma, beta, eps);
                    assert_memory_equal(z, y[k], (size_t)n * sizeof *z);
                    free(z);
                }
                if (s) {
                    /* Identical but for the order of the double sums: within 2 u. */
                    for (int64_t i = 0; i < n; i++) {
                        double e = fabs((double)y[1][i] - y[0][i]) / (mag[i] * U24 + 1e-30);
                        assert_true(e <= 2.0);
                        maxerr_add(&vs_ref, e, x[i]);
                    }
                }
                /* Without gamma/beta: mean 0 and variance var/(var+eps). */
                if (!gamma && !beta && n >= 2) {
                    for (int k = 0; k < nt; k++) {
                        double m = 0.0, v = 0.0, vx = 0.0, mx = 0.0;
                        for (int64_t i = 0; i < n; i++) m += y[k][i], mx += x[i];
                        m /= (double)n;
                        mx /= (double)n;
                        for (int64_t i = 0; i < n; i++) {
                            v += (y[k][i] - m) * (y[k][i] - m);
                            vx += (x[i] - mx) * (x[i] - mx);
                        }
                        v /= (double)n;
                        vx /= (double)n;
                        assert_true(fabs(m) <= 1e-6);
                        assert_true(fabs(v - vx / (vx + eps)) <= 1e-6);
                    }
                }
                for (int k = 0; k < nt; k++) gbuf_free(&gy[k]);
                free(yd);
                free(mag);
                gbuf_check(&gx);
                gbuf_free(&gx);
                gbuf_free(&gg);
                gbuf_free(&gbt);
            }
        }
    }
    /* A constant row: y = beta exactly (0 * inv), no NaN with eps > 0. */
    for (int k = 0; k < nt; k++) {
        float x[9], y[9], b[9];
        for (int i = 0; i < 9; i++) x[i] = 1234.5f, b[i] = (float)i;
        t[k]->layernorm(x, y, 9, NULL, b, eps);
        for (int i = 0; i < 9; i++) assert_true(y[i] == b[i]);
    }
    print_message("layernorm: simd vs ref max %.2f u; vs double max %.2f u (ref) %.2f u (simd)\n",
                  vs_ref.err, vs_double[0].err, vs_double[1].err);
}

static void test_rmsnorm(void **state) {
    (void)state;
    const orion_kernels *t[2];
    int nt = tables(t);
    const orion_kernels *s = simd_k();
    test_rng rng = {8};
    maxerr vs_ref = {0, 0}, vs_double[2] = {{0, 0}, {0, 0}};
    const float eps = 1e-6f;
    for (int variant = 0; variant < 2; variant++) {
        for (int L = 0; L < TEST_N_AWKWARD; L++) {
            int64_t n = TEST_AWKWARD_LENGTHS[L];
            gbuf gx, gg, gy[2];
            float *x = gbuf_new(&gx, n, sizeof(float));
            float *g = gbuf_new(&gg, n, sizeof(float));
            test_fill_normal(&rng, x, n, 3.0f);
            for (int64_t i = 0; i < n; i++) g[i] = 1.0f + 0.5f * (float)test_rng_normal(&rng);
            const float *gamma = variant ? g : NULL;
            double ss = 0.0;
            for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
            double inv = 1.0 / sqrt(ss / (double)n + (double)eps);
            float *y[2];
            for (int k = 0; k < nt; k++) {
                y[k] = gbuf_new(&gy[k], n, sizeof(float));
                t[k]->rmsnorm(x, y[k], n, gamma, eps);
                gbuf_check(&gy[k]);
                double ms = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    double want = x[i] * inv * (gamma ? gamma[i] : 1.0);
                    /* f32(1/rms), x * inv, * gamma: three roundings. */
                    double e = err_u(y[k][i], want, 1e-30);
                    assert_true(e <= 4.0);
                    maxerr_add(&vs_double[k], e, x[i]);
                    ms += (double)y[k][i] * y[k][i];
                }
                if (!gamma) assert_true(fabs(ms / (double)n - ss / (ss + eps * (double)n)) <= 1e-6);
                float *z = malloc((size_t)n * sizeof *z);
                assert_non_null(z);
                memcpy(z, x, (size_t)n * sizeof *z);
                t[k]->rmsnorm(z, z, n, gamma, eps);
                assert_memory_equal(z, y[k], (size_t)n * sizeof *z);
                free(z);
            }
            if (s) {
                /* Only the order of the double sum differs: f32(1/rms) may
                 * differ by 1 ulp, so within 2 u. */
                for (int64_t i = 0; i < n; i++) {
                    double e = err_u(y[1][i], y[0][i], 1e-30);
                    assert_true(e <= 2.0);
                    maxerr_add(&vs_ref, e, x[i]);
                }
            }
            for (int k = 0; k < nt; k++) gbuf_free(&gy[k]);
            gbuf_check(&gx);
            gbuf_free(&gx);
            gbuf_free(&gg);
        }
    }
    /* A zero row stays zero with eps > 0. */
    for (int k = 0; k < nt; k++) {
        float x[11] = {0}, y[11];
        t[k]->rmsnorm(x, y, 11, NULL, eps);
        for (int i = 0; i < 11; i++) assert_true(y[i] == 0.0f);
    }
    print_message("rmsnorm: simd vs ref max %.2f u; vs double max %.2f u (ref) %.2f u (simd)\n",
                  vs_ref.err, vs_double[0].err, vs_double[1].err);
}

/* ---- activations ------------------------------------------------------------- */

typedef void (*unary_fn)(const float *x, float *y, int64_t n);

static double gelu_d(double x) {
    return 0.5 * x * erfc(-x * 0.70710678118654752440);
}

/* x * sigmoid(a) in double, the split the kernels use (no overflow). */
static double x_sigmoid_d(double x, double a) {
    double e = exp(-fabs(a));
    return x < 0.0 ? x * e / (1.0 + e) : x / (1.0 + e);
}

static double silu_d(double x) {
    return x_sigmoid_d(x, x);
}

static double gelu_tanh_arg(double x) { /* 2u */
    return 2.0 * 0.79788456080286535588 * (x + 0.044715 * x * x * x);
}

static double gelu_tanh_d(double x) {
    return x_sigmoid_d(x, gelu_tanh_arg(x));
}

/* One activation and its error budget, in u with floor 2^-100 (below it the
 * kernels go through subnormal intermediates; absolute errors stay < 1e-40):
 *   ref_u + ref_u_arg * |arg(x)|: reference vs double;
 *   simd_u: SIMD vs double; simd_ref_u: SIMD vs reference. */
typedef struct act_case {
    const char *name;
    size_t fn_offset; /* offsetof(orion_kernels, fn) */
    double (*exact)(double);
    double (*arg)(double); /* NULL: 0 */
    double ref_u, ref_u_arg, simd_u, simd_ref_u;
} act_case;

static unary_fn act_fn(const orion_kernels *k, const act_case *c) {
    unary_fn f;
    memcpy(&f, (const char *)k + c->fn_offset, sizeof f);
    return f;
}

#define ACT_FLOOR 0x1p-100

static void run_activation(const act_case *c) {
    const orion_kernels *t[2];
    int nt = tables(t);
    const orion_kernels *s = simd_k();

    /* Inputs: a dense sweep of [-20, 20], powers of two times a few
     * mantissas over the whole exponent range (tiny, huge, subnormal), and
     * seeded normal data. */
    /* The worst cases found by a dense sweep of every 5th f32. */
    const float hard[] = {-11.5239916f, -11.5175705f, -10.9606695f, -9.03501701f, -6.57491159f,
                          -3.21125126f, -2.95355821f, -0.292476267f, -0.140803203f, 0.00202662242f,
                          1.19744337f, 8.00984192f};
    int64_t cap = 10241 + 2 * 5 * 280 + 4096, n = 0;
    float *x = malloc((size_t)cap * sizeof *x);
    assert_non_null(x);
    for (size_t j = 0; j < ORION_ARRAY_LEN(hard); j++) x[n++] = hard[j];
    for (int i = -5120; i <= 5120; i++) x[n++] = (float)i / 256.0f;
    const float mant[] = {1.0f, 1.25f, 1.5f, 1.75f, 1.9999999f};
    for (int e = -149; e <= 127; e++) {
        for (size_t j = 0; j < ORION_ARRAY_LEN(mant); j++) {
            float v = ldexpf(mant[j], e);
            if (isinf(v)) continue;
            x[n++] = v;
            x[n++] = -v;
        }
    }
    test_rng rng = {9};
    while (n < cap) x[n++] = (float)(test_rng_normal(&rng) * 4.0);

    float *y[2];
    maxerr vs_double[2] = {{0, 0}, {0, 0}}, abs_bound[2] = {{0, 0}, {0, 0}}, vs_ref = {0, 0};
    for (int k = 0; k < nt; k++) {
        y[k] = malloc((size_t)n * sizeof(float));
        assert_non_null(y[k]);
        act_fn(t[k], c)(x, y[k], n);
        double budget_u = k == 0 ? c->ref_u : c->simd_u;
        for (int64_t i = 0; i < n; i++) {
            double want = c->exact(x[i]);
            double a = c->arg ? fabs(c->arg(x[i])) : 0.0;
            double e = err_u(y[k][i], want, ACT_FLOOR);
            double bound = budget_u + c->ref_u_arg * a;
            if (!(e <= bound)) {
                print_error("%s (%s): x=%.9g y=%.9g want=%.9g err %.2f u > %.2f\n", c->name,
                            t[k]->name, x[i], y[k][i], want, e, bound);
            }
            assert_true(e <= bound);
            maxerr_add(&vs_double[k], e, x[i]);
            /* The brief's absolute bound: 1e-6 * max(1, |x|). */
            double ab = fabs((double)y[k][i] - want) / fmax(1.0, fabs(x[i]));
            assert_true(ab <= 1e-6);
            maxerr_add(&abs_bound[k], ab, x[i]);
        }
    }
    if (s) {
        for (int64_t i = 0; i < n; i++) {
            double e = err_u(y[1][i], y[0][i], ACT_FLOOR);
            if (!(e <= c->simd_ref_u)) {
                print_error("%s: x=%.9g simd %.9g ref %.9g: %.2f u\n", c->name, x[i], y[1][i], y[0][i], e);
            }
            assert_true(e <= c->simd_ref_u);
            maxerr_add(&vs_ref, e, x[i]);
        }
    }
    print_message("%s: vs double max %.2f u at %g (ref), %.2f u at %g (simd); |err|/max(1,|x|) max %.2g (ref) "
                  "%.2g (simd); simd vs ref max %.2f u at %g\n",
                  c->name, vs_double[0].err, vs_double[0].at, vs_double[1].err, vs_double[1].at,
                  abs_bound[0].err, abs_bound[1].err, vs_ref.err, vs_ref.at);

    /* Awkward lengths: tails give the same values as full vectors (the
     * element's result does not depend on its position), canaries hold,
     * and y may equal x. */
    for (int k = 0; k < nt; k++) {
        unary_fn f = act_fn(t[k], c);
        for (int L = 0; L < TEST_N_AWKWARD; L++) {
            int64_t len = TEST_AWKWARD_LENGTHS[L];
            int64_t off = (L * 37) % 64;
            gbuf gy, gz;
            float *yy = gbuf_new(&gy, len, sizeof(float));
            float *z = gbuf_new(&gz, len, sizeof(float));
            f(x + off, yy, len);
            assert_memory_equal(yy, y[k] + off, (size_t)len * sizeof(float));
            memcpy(z, x + off, (size_t)len * sizeof(float));
            f(z, z, len);
            assert_memory_equal(z, yy, (size_t)len * sizeof(float));
            gbuf_check(&gy);
            gbuf_check(&gz);
            gbuf_free(&gy);
            gbuf_free(&gz);
        }
    }

    /* Special values: limits at +-100 and beyond, infinities, NaN. */
    const float sx[] = {100.0f, -100.0f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX, INFINITY, 0.0f, -0.0f, NAN};
    const size_t ns = ORION_ARRAY_LEN(sx);
    float sy[ORION_ARRAY_LEN(sx)];
    for (int k = 0; k < nt; k++) {
        act_fn(t[k], c)(sx, sy, (int64_t)ns);
        for (size_t i = 0; i + 1 < ns; i++) assert_false(isnan(sy[i]));
        assert_true(sy[0] == 100.0f);
        assert_true(fabsf(sy[1]) < 1e-40f && !(sy[1] > 0.0f));
        assert_true(sy[2] == 1e30f);
        assert_true(sy[3] == 0.0f);
        assert_true(sy[4] == FLT_MAX);
        assert_true(sy[5] == 0.0f);
        assert_true(sy[6] == INFINITY);
        assert_true(same_bits(sy[7], 0.0f));
        assert_true(same_bits(sy[8], -0.0f));
        assert_true(isnan(sy[9]));
        /* Documented: -inf gives NaN (-inf * 0). */
        float ninf = -INFINITY, yn = 0.0f;
        act_fn(t[k], c)(&ninf, &yn, 1);
        assert_true(isnan(yn));
    }
    for (int k = 0; k < nt; k++) free(y[k]);
    free(x);
}

/* Budgets in u (floor 2^-100). Measured maxima over every 23rd f32 of the
 * range ([-20, 20] for gelu and gelu_tanh, [-120, 120] for silu), against
 * double precision:
 *   gelu: ref 1.0 u (the double function rounded once: <= 1 u by
 *     construction); SIMD 10.0 u (5.6 u on [-5, 5]); SIMD vs ref 10.0 u.
 *   silu: ref 3.7 u; SIMD 3.9 u; SIMD vs ref 4.0 u.
 *   gelu_tanh: 2u is computed in f32 with five roundings, so the argument
 *     of the exponential is off by up to ~5|2u| u and both versions are
 *     within ~(2 + 5|2u|) u of the double function (measured: 210 u at
 *     x = -9.04, where 2u = 67 and the result is -1e-28); SIMD vs ref 4.0 u
 *     (they share 2u, only exp differs). */
static void test_gelu(void **state) {
    (void)state;
    const act_case c = {"gelu", offsetof(orion_kernels, gelu), gelu_d, NULL, 1.01, 0.0, 12.0, 12.0};
    run_activation(&c);
}

static void test_gelu_tanh(void **state) {
    (void)state;
    const act_case c = {"gelu_tanh", offsetof(orion_kernels, gelu_tanh), gelu_tanh_d, gelu_tanh_arg,
                        6.0, 5.0, 6.0, 6.0};
    run_activation(&c);
}

static void test_silu(void **state) {
    (void)state;
    const act_case c = {"silu", offsetof(orion_kernels, silu), silu_d, NULL, 5.0, 0.0, 5.0, 6.0};
    run_activation(&c);
}

/* The table in use is one of the two, and has every elementwise entry. */
static void test_table_complete(void **state) {
    (void)state;
    const orion_kernels *a = orion__kernels();
    assert_true(a == ref_k() || a == simd_k());
    const orion_kernels *t[2];
    int nt = tables(t);
    for (int k = 0; k < nt; k++) {
        assert_non_null(t[k]->fp16_to_f32);
        assert_non_null(t[k]->f32_to_fp16);
        assert_non_null(t[k]->bf16_to_f32);
        assert_non_null(t[k]->f32_to_bf16);
        assert_non_null(t[k]->softmax);
        assert_non_null(t[k]->layernorm);
        assert_non_null(t[k]->rmsnorm);
        assert_non_null(t[k]->gelu);
        assert_non_null(t[k]->gelu_tanh);
        assert_non_null(t[k]->silu);
        assert_non_null(t[k]->add);
        assert_non_null(t[k]->mul);
        assert_non_null(t[k]->scale);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_fp16_exhaustive),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_f32_to_fp16_rounding),
        cmocka_unit_test(test_f32_to_bf16_rounding),
        cmocka_unit_test(test_conversions_awkward),
        cmocka_unit_test(test_arith),
        cmocka_unit_test(test_softmax_awkward),
        cmocka_unit_test(test_softmax_special),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_gelu_tanh),
        cmocka_unit_test(test_silu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
