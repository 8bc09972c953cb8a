/*
 * gemm_avx2.c — AVX2/FMA/F16C GEMM tiles and packers (the GEMM section of
 * the kernel table; gemm_ref.c is the specification, matmul.c the driver).
 *
 * Both tiles are in outer-product form: broadcast one weight (or 4 weight
 * bytes), multiply a vector of activations of several batch rows, and keep
 * one accumulator vector of batch rows per output. That leaves W in its
 * stored row-major order (only the small activation matrix is packed
 * batch-minor) and turns the per-tile result into a small transpose at the
 * end, once per tile and k chunk.
 *
 * Float tile, 6 outputs x 16 batch rows: per k, two loads of packed x (16
 * rows), six broadcasts of w[o][k], twelve FMAs into twelve ymm
 * accumulators (16 registers: 12 + 2 + 1 broadcast). The 12 independent
 * FMA chains cover the FMA latency (4 cycles x 2 pipes = 8 in flight). The
 * 6 weight rows of a k chunk (6 x KC_F floats) stay in L1 across all the
 * batch groups; packed x streams from L2. At most 8 valid batch rows: one
 * vector (6 chains).
 *
 * Int8 tile, 4 outputs x 8 batch rows, one block (32 k) at a time: packed
 * activations hold, for each 4 consecutive k, the 4 bytes of each of the 8
 * rows in one 32-byte vector; a weight broadcast of 4 bytes (w[o][k..k+3])
 * against it under _mm256_maddubs_epi16 gives, per batch row, two int16
 * pair sums. For q4_0/q4_1 the weights are unsigned nibbles (<= 15) and
 * |a| <= 127, so a maddubs lane is at most 2*15*127 = 3810 and the 8 steps
 * of a block sum to at most 30480 < 32767: they are accumulated in int16
 * and widened once per block with _mm256_madd_epi16(ones) into 8 int32 (one
 * per batch row). For q8_0 the weights are signed: |w| times sign(a, w) is
 * used (a lane is at most 2*128*127 = 32512), widened every step. The block
 * sum (exact) is converted to float and accumulated with one FMA by
 * d_w * d_a; q4_0 subtracts 8*sum(a) in integer first (exact), q4_1 adds
 * m_w * s_a with one more FMA.
 *
 * Measured on Zen 3 (2 cores): the int8 tile does about 1.7x the
 * multiply-adds per second of the float tile for q4_0/q4_1 (each maddubs is
 * 32 of them, but the broadcasts, int16 adds and the per-block scaling
 * share the 4 FP pipes), about 1.1x for q8_0 (sign, abs and a madd per
 * step: there is no int8 dot instruction without AVX-VNNI).
 *
 * The first tile of each weight panel also prefetches the next panel
 * (pf_cursor), spreading the requests over its k loop.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

/* In-place transpose of 8 vectors of 8 floats. */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Writes the first n floats of v to y (adding to y if acc). */
static inline void store_partial(float *y, __m256 v, int n, bool acc) {
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    for (int i = 0; i < n; i++) y[i] = acc ? y[i] + tmp[i] : tmp[i];
}

/* Prefetching the next weight panel from inside the tile spreads the
 * requests over the computation: issued all at once before the tile (about
 * 200 lines for a float panel) they fill the miss queues and stall it. */
typedef struct pf_cursor {
    const char *line;       /* next line to fetch */
    const char *row_end;    /* end of the current row */
    size_t      stride;
    size_t      bytes;
    int         rows_left;  /* rows after the current one */
    int         per_step;   /* prefetches per pf_step */
} pf_cursor;

static inline void pf_init(pf_cursor *c, const orion_gemm_prefetch *pf, int64_t steps) {
    memset(c, 0, sizeof *c);
    if (!pf || !pf->base || pf->n_rows <= 0 || pf->bytes == 0) return;
    const int64_t lines = (int64_t)pf->n_rows * (int64_t)((pf->bytes + 63) / 64 + 1);
    c->per_step = (int)((lines + ORION_MAX(steps, 1) - 1) / ORION_MAX(steps, 1));
    c->line = (const char *)((uintptr_t)pf->base & ~(uintptr_t)63);
    c->row_end = pf->base + pf->bytes;
    c->stride = pf->stride;
    c->bytes = pf->bytes;
    c->rows_left = pf->n_rows - 1;
}

static inline void pf_step(pf_cursor *c) {
    for (int i = 0; i < c->per_step; i++) {
        if (c->line >= c->row_end) {
            if (c->rows_left == 0) {
                c->per_step = 0;
                return;
            }
            c->rows_left--;
            const char *row = c->row_end - c->bytes + c->stride;
            c->line = (const char *)((uintptr_t)row & ~(uintptr_t)63);
            c->row_end = row + c->bytes;
        }
        _mm_prefetch(c->line, _MM_HINT_T0);
        c->line += 64;
    }
}

/* ---- float weights ---------------------------------------------------------- */

static void load_w_f32_avx2(const void *w, int64_t ldw, int n_rows, int64_t k0, int64_t kc, float *dst) {
    const float *src = w;
    for (int r = 0; r < n_rows; r++) memcpy(dst + r * kc, src + r * ldw + k0, sizeof(float) * (size_t)kc);
}

static void load_w_f16_avx2(const void *w, int64_t ldw, int n_rows, int64_t k0, int64_t kc, float *dst) {
    const uint16_t *src = w;
    for (int r = 0; r < n_rows; r++) {
        const uint16_t *s = src + r * ldw + k0;
        float *d = dst + r * kc;
        int64_t k = 0;
        for (; k + 16 <= kc; k += 16) {
            _mm256_storeu_ps(d + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + k))));
            _mm256_storeu_ps(d + k + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + k + 8))));
        }
        for (; k < kc; k++) d[k] = _cvtsh_ss(s[k]);
    }
}

static void load_w_bf16_avx2(const void *w, int64_t ldw, int n_rows, int64_t k0, int64_t kc, float *dst) {
    const uint16_t *src = w;
    for (int r = 0; r < n_rows; r++) {
        const uint16_t *s = src + r * ldw + k0;
        float *d = dst + r * kc;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + k)));
            _mm256_storeu_ps(d + k, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
        for (; k < kc; k++) {
            uint32_t u = (uint32_t)s[k] << 16;
            memcpy(&d[k], &u, sizeof u);
        }
    }
}

static void pack_x_f_avx2(const float *x, int64_t ldx, int n_b, int64_t kc, float *dst) {
    enum { NB = ORION_GEMM_F_NB };
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (int h = 0; h < NB / 8; h++) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const int b = h * 8 + i;
                r[i] = b < n_b ? _mm256_loadu_ps(x + b * ldx + k) : _mm256_setzero_ps();
            }
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (k + i) * NB + h * 8, r[i]);
        }
    }
    for (; k < kc; k++)
        for (int b = 0; b < NB; b++) dst[k * NB + b] = b < n_b ? x[b * ldx + k] : 0.0f;
}

/* Stores the tile acc[o][h] (o < 6 outputs, h: batch rows 8h..8h+7). */
static void store_tile_f(__m256 acc[ORION_GEMM_F_MO][2], int halves, int n_o, int n_b, float *y, int64_t ldy,
                         bool accumulate) {
    for (int h = 0; h < halves; h++) {
        __m256 r[8];
        for (int o = 0; o < 6; o++) r[o] = acc[o][h];
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r); /* r[i]: batch row 8h+i, outputs 0..5 */
        const int nb = ORION_MIN(8, n_b - 8 * h);
        for (int i = 0; i < nb; i++) {
            float *yr = y + (int64_t)(8 * h + i) * ldy;
            if (n_o == 6) {
                __m128 lo = _mm256_castps256_ps128(r[i]);
                __m128 hi = _mm256_extractf128_ps(r[i], 1);
                if (accumulate) {
                    lo = _mm_add_ps(lo, _mm_loadu_ps(yr));
                    hi = _mm_add_ps(hi, _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(yr + 4))));
                }
                _mm_storeu_ps(yr, lo);
                _mm_storel_epi64((__m128i *)(yr + 4), _mm_castps_si128(hi)); /* unaligned 8 bytes */
            } else {
                store_partial(yr, r[i], n_o, accumulate);
            }
        }
    }
}

static void tile_f_avx2(int64_t kc, const float *w, int64_t ldw, int n_o, const float *xp, int n_b, float *y,
                        int64_t ldy, bool accumulate, const orion_gemm_prefetch *pf) {
    pf_cursor pfc;
    pf_init(&pfc, pf, (kc + 1) / 2); /* one step every other k */
    enum { NB = ORION_GEMM_F_NB };
    /* rows past n_o read row 0 (valid memory) and are not stored */
    const float *w0 = w;
    const float *w1 = n_o > 1 ? w + ldw : w;
    const float *w2 = n_o > 2 ? w + 2 * ldw : w;
    const float *w3 = n_o > 3 ? w + 3 * ldw : w;
    const float *w4 = n_o > 4 ? w + 4 * ldw : w;
    const float *w5 = n_o > 5 ? w + 5 * ldw : w;
    __m256 acc[ORION_GEMM_F_MO][2];
    if (n_b > 8) {
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        /* unrolled: measured ~25% faster than the rolled loop on Zen 3 */
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; k++) {
            if ((k & 1) == 0 && pfc.per_step) pf_step(&pfc);
            const __m256 x0 = _mm256_loadu_ps(xp + k * NB), x1 = _mm256_loadu_ps(xp + k * NB + 8);
            __m256 v;
            v = _mm256_broadcast_ss(w0 + k); c00 = _mm256_fmadd_ps(v, x0, c00); c01 = _mm256_fmadd_ps(v, x1, c01);
            v = _mm256_broadcast_ss(w1 + k); c10 = _mm256_fmadd_ps(v, x0, c10); c11 = _mm256_fmadd_ps(v, x1, c11);
            v = _mm256_broadcast_ss(w2 + k); c20 = _mm256_fmadd_ps(v, x0, c20); c21 = _mm256_fmadd_ps(v, x1, c21);
            v = _mm256_broadcast_ss(w3 + k); c30 = _mm256_fmadd_ps(v, x0, c30); c31 = _mm256_fmadd_ps(v, x1, c31);
            v = _mm256_broadcast_ss(w4 + k); c40 = _mm256_fmadd_ps(v, x0, c40); c41 = _mm256_fmadd_ps(v, x1, c41);
            v = _mm256_broadcast_ss(w5 + k); c50 = _mm256_fmadd_ps(v, x0, c50); c51 = _mm256_fmadd_ps(v, x1, c51);
        }
        acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11;
        acc[2][0] = c20; acc[2][1] = c21; acc[3][0] = c30; acc[3][1] = c31;
        acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
        store_tile_f(acc, 2, n_o, n_b, y, ldy, accumulate);
    } else {
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; k++) {
            if ((k & 1) == 0 && pfc.per_step) pf_step(&pfc);
            const __m256 x0 = _mm256_loadu_ps(xp + k * NB);
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w0 + k), x0, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w1 + k), x0, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w2 + k), x0, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w3 + k), x0, c3);
            c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(w4 + k), x0, c4);
            c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(w5 + k), x0, c5);
        }
        acc[0][0] = c0; acc[1][0] = c1; acc[2][0] = c2; acc[3][0] = c3; acc[4][0] = c4; acc[5][0] = c5;
        store_tile_f(acc, 1, n_o, n_b, y, ldy, accumulate);
    }
}

/* ---- quantized weights ------------------------------------------------------ */

static void pack_x_q_avx2(const orion_block_q8a *x, int64_t ldx, int n_b, int64_t nb, orion_gemm_qx *dst) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qx *p = &dst[blk];
        __m256 r[8];
        float d[8] = {0}, s[8] = {0};
        for (int b = 0; b < 8; b++) {
            if (b < n_b) {
                const orion_block_q8a *src = &x[b * ldx + blk];
                r[b] = _mm256_loadu_ps((const float *)src->qs); /* 8 groups of 4 bytes */
                d[b] = src->d;
                s[b] = src->s;
            } else {
                r[b] = _mm256_setzero_ps();
            }
        }
        transpose8(r); /* r[j]: bytes k = 4j..4j+3 of rows 0..7 */
        __m256i sum16 = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i v = _mm256_castps_si256(r[j]);
            _mm256_storeu_si256((__m256i *)(p->qs + 32 * j), v);
            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(ones8, v)); /* |lane| <= 8*254 */
        }
        const __m256i sum = _mm256_madd_epi16(sum16, ones16); /* row b's sum in lane b */
        _mm256_storeu_si256((__m256i *)p->sum8, _mm256_slli_epi32(sum, 3));
        memcpy(p->d, d, sizeof d);
        memcpy(p->s, s, sizeof s);
    }
}

static inline void unpack_nibbles_to(uint8_t *dst, const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m4 = _mm_set1_epi8(15);
    _mm_storeu_si128((__m128i *)dst, _mm_and_si128(raw, m4));
    _mm_storeu_si128((__m128i *)(dst + 16), _mm_and_si128(_mm_srli_epi16(raw, 4), m4));
}

static void pack_w_q8_0_avx2(const void *w, size_t row_bytes, int n_rows, int64_t b0, int64_t nb,
                             orion_gemm_qw *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qw *p = &dst[blk];
        for (int r = 0; r < ORION_GEMM_Q_MO; r++) {
            if (r < n_rows) {
                const orion_block_q8_0 *src =
                    (const orion_block_q8_0 *)((const char *)w + (size_t)r * row_bytes) + b0 + blk;
                _mm256_storeu_si256((__m256i *)p->qs[r], _mm256_loadu_si256((const __m256i *)src->qs));
                p->d[r] = _cvtsh_ss(src->d);
            } else {
                _mm256_storeu_si256((__m256i *)p->qs[r], _mm256_setzero_si256());
                p->d[r] = 0.0f;
            }
            p->m[r] = 0.0f;
        }
    }
}

static void pack_w_q4_0_avx2(const void *w, size_t row_bytes, int n_rows, int64_t b0, int64_t nb,
                             orion_gemm_qw *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qw *p = &dst[blk];
        for (int r = 0; r < ORION_GEMM_Q_MO; r++) {
            if (r < n_rows) {
                const orion_block_q4_0 *src =
                    (const orion_block_q4_0 *)((const char *)w + (size_t)r * row_bytes) + b0 + blk;
                unpack_nibbles_to(p->qs[r], src->qs);
                p->d[r] = _cvtsh_ss(src->d);
            } else {
                _mm256_storeu_si256((__m256i *)p->qs[r], _mm256_setzero_si256());
                p->d[r] = 0.0f;
            }
            p->m[r] = 0.0f;
        }
    }
}

static void pack_w_q4_1_avx2(const void *w, size_t row_bytes, int n_rows, int64_t b0, int64_t nb,
                             orion_gemm_qw *dst) {
    for (int64_t blk = 0; blk < nb; blk++) {
        orion_gemm_qw *p = &dst[blk];
        for (int r = 0; r < ORION_GEMM_Q_MO; r++) {
            if (r < n_rows) {
                const orion_block_q4_1 *src =
                    (const orion_block_q4_1 *)((const char *)w + (size_t)r * row_bytes) + b0 + blk;
                unpack_nibbles_to(p->qs[r], src->qs);
                p->d[r] = _cvtsh_ss(src->d);
                p->m[r] = _cvtsh_ss(src->m);
            } else {
                _mm256_storeu_si256((__m256i *)p->qs[r], _mm256_setzero_si256());
                p->d[r] = 0.0f;
                p->m[r] = 0.0f;
            }
        }
    }
}

/* Stores the 4 x 8 tile acc[o] (lane b = batch row b) into y[b][o]. */
static void store_tile_q(const __m256 acc[4], int n_o, int n_b, float *y, int64_t ldy, bool accumulate) {
    const __m256 t0 = _mm256_unpacklo_ps(acc[0], acc[1]), t1 = _mm256_unpackhi_ps(acc[0], acc[1]);
    const __m256 t2 = _mm256_unpacklo_ps(acc[2], acc[3]), t3 = _mm256_unpackhi_ps(acc[2], acc[3]);
    const __m256 r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xee);
    /* row b: lanes b&3 of r[b&3], half b>>2 */
    __m128 rows[8] = {
        _mm256_castps256_ps128(r0), _mm256_castps256_ps128(r1),
        _mm256_castps256_ps128(r2), _mm256_castps256_ps128(r3),
        _mm256_extractf128_ps(r0, 1), _mm256_extractf128_ps(r1, 1),
        _mm256_extractf128_ps(r2, 1), _mm256_extractf128_ps(r3, 1),
    };
    for (int b = 0; b < n_b; b++) {
        float *yr = y + b * ldy;
        if (n_o == 4) {
            __m128 v = rows[b];
            if (accumulate) v = _mm_add_ps(v, _mm_loadu_ps(yr));
            _mm_storeu_ps(yr, v);
        } else {
            float tmp[4];
            _mm_storeu_ps(tmp, rows[b]);
            for (int o = 0; o < n_o; o++) yr[o] = accumulate ? yr[o] + tmp[o] : tmp[o];
        }
    }
}

static inline __m256i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* acc (int16) += maddubs(4 weight bytes of row r broadcast, activations). */
#define Q4_STEP(j, first)                                                                  \
    do {                                                                                   \
        const __m256i av = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * (j)));        \
        const __m256i p0 = _mm256_maddubs_epi16(bcast4(wb->qs[0] + 4 * (j)), av);         \
        const __m256i p1 = _mm256_maddubs_epi16(bcast4(wb->qs[1] + 4 * (j)), av);         \
        const __m256i p2 = _mm256_maddubs_epi16(bcast4(wb->qs[2] + 4 * (j)), av);         \
        const __m256i p3 = _mm256_maddubs_epi16(bcast4(wb->qs[3] + 4 * (j)), av);         \
        if (first) {                                                                       \
            a0 = p0; a1 = p1; a2 = p2; a3 = p3;                                            \
        } else {                                                                           \
            a0 = _mm256_add_epi16(a0, p0); a1 = _mm256_add_epi16(a1, p1);                  \
            a2 = _mm256_add_epi16(a2, p2); a3 = _mm256_add_epi16(a3, p3);                  \
        }                                                                                  \
    } while (0)

static inline void tile_q4(bool q41, int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o, int n_b,
                           float *y, int64_t ldy, bool accumulate, const orion_gemm_prefetch *pf) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    pf_cursor pfc;
    pf_init(&pfc, pf, nb);
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
    for (int64_t blk = 0; blk < nb; blk++) {
        const orion_gemm_qw *wb = &w[blk];
        const orion_gemm_qx *xb = &x[blk];
        if (pfc.per_step) pf_step(&pfc);
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < 8; j++) {
            const __m256i av = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * j));
            a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(bcast4(wb->qs[0] + 4 * j), av));
            a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(bcast4(wb->qs[1] + 4 * j), av));
            a2 = _mm256_add_epi16(a2, _mm256_maddubs_epi16(bcast4(wb->qs[2] + 4 * j), av));
            a3 = _mm256_add_epi16(a3, _mm256_maddubs_epi16(bcast4(wb->qs[3] + 4 * j), av));
        }
        __m256i i0 = _mm256_madd_epi16(a0, ones16), i1 = _mm256_madd_epi16(a1, ones16);
        __m256i i2 = _mm256_madd_epi16(a2, ones16), i3 = _mm256_madd_epi16(a3, ones16);
        if (!q41) {
            const __m256i s8 = _mm256_loadu_si256((const __m256i *)xb->sum8);
            i0 = _mm256_sub_epi32(i0, s8);
            i1 = _mm256_sub_epi32(i1, s8);
            i2 = _mm256_sub_epi32(i2, s8);
            i3 = _mm256_sub_epi32(i3, s8);
        }
        const __m256 da = _mm256_loadu_ps(xb->d);
        f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[0]), da), f0);
        f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[1]), da), f1);
        f2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[2]), da), f2);
        f3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[3]), da), f3);
        if (q41) {
            const __m256 sa = _mm256_loadu_ps(xb->s);
            f0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&wb->m[0]), sa, f0);
            f1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&wb->m[1]), sa, f1);
            f2 = _mm256_fmadd_ps(_mm256_broadcast_ss(&wb->m[2]), sa, f2);
            f3 = _mm256_fmadd_ps(_mm256_broadcast_ss(&wb->m[3]), sa, f3);
        }
    }
    const __m256 acc[4] = {f0, f1, f2, f3};
    store_tile_q(acc, n_o, n_b, y, ldy, accumulate);
}

static void tile_q4_0_avx2(int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o, int n_b, float *y,
                           int64_t ldy, bool accumulate, const orion_gemm_prefetch *pf) {
    tile_q4(false, nb, w, x, n_o, n_b, y, ldy, accumulate, pf);
}

static void tile_q4_1_avx2(int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o, int n_b, float *y,
                           int64_t ldy, bool accumulate, const orion_gemm_prefetch *pf) {
    tile_q4(true, nb, w, x, n_o, n_b, y, ldy, accumulate, pf);
}

static inline __m256i dot_s8(__m256i wv, __m256i av) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv));
}

static void tile_q8_0_avx2(int64_t nb, const orion_gemm_qw *w, const orion_gemm_qx *x, int n_o, int n_b, float *y,
                           int64_t ldy, bool accumulate, const orion_gemm_prefetch *pf) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    pf_cursor pfc;
    pf_init(&pfc, pf, nb);
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
    for (int64_t blk = 0; blk < nb; blk++) {
        const orion_gemm_qw *wb = &w[blk];
        const orion_gemm_qx *xb = &x[blk];
        if (pfc.per_step) pf_step(&pfc);
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        for (int j = 0; j < 8; j++) {
            const __m256i av = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * j));
            i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(dot_s8(bcast4(wb->qs[0] + 4 * j), av), ones16));
            i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(dot_s8(bcast4(wb->qs[1] + 4 * j), av), ones16));
            i2 = _mm256_add_epi32(i2, _mm256_madd_epi16(dot_s8(bcast4(wb->qs[2] + 4 * j), av), ones16));
            i3 = _mm256_add_epi32(i3, _mm256_madd_epi16(dot_s8(bcast4(wb->qs[3] + 4 * j), av), ones16));
        }
        const __m256 da = _mm256_loadu_ps(xb->d);
        f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[0]), da), f0);
        f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[1]), da), f1);
        f2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[2]), da), f2);
        f3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(_mm256_broadcast_ss(&wb->d[3]), da), f3);
    }
    const __m256 acc[4] = {f0, f1, f2, f3};
    store_tile_q(acc, n_o, n_b, y, ldy, accumulate);
}

void orion__register_gemm_avx2(orion_kernels *k) {
    k->gemm_f_load_w[ORION_TYPE_F32] = load_w_f32_avx2;
    k->gemm_f_load_w[ORION_TYPE_F16] = load_w_f16_avx2;
    k->gemm_f_load_w[ORION_TYPE_BF16] = load_w_bf16_avx2;
    k->gemm_f_pack_x = pack_x_f_avx2;
    k->gemm_f_tile = tile_f_avx2;

    k->gemm_q_pack_x = pack_x_q_avx2;
    k->gemm_q_pack_w[ORION_TYPE_Q8_0] = pack_w_q8_0_avx2;
    k->gemm_q_pack_w[ORION_TYPE_Q4_0] = pack_w_q4_0_avx2;
    k->gemm_q_pack_w[ORION_TYPE_Q4_1] = pack_w_q4_1_avx2;
    k->gemm_q_tile[ORION_TYPE_Q8_0] = tile_q8_0_avx2;
    k->gemm_q_tile[ORION_TYPE_Q4_0] = tile_q4_0_avx2;
    k->gemm_q_tile[ORION_TYPE_Q4_1] = tile_q4_1_avx2;
}
