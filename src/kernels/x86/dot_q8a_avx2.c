/*
 * dot_q8a_avx2.c — AVX2 versions of the int8 activation path (see
 * dot_q8a_ref.c for the specification).
 *
 * quantize_q8a gives the same bytes as the reference: the block maximum is
 * taken with vmaxps(|x|, acc) so a NaN is ignored as in the reference, the
 * scale and its inverse are computed by the same scalar expressions, and
 * vroundps(_MM_FROUND_TO_NEAREST_INT) rounds ties to even like the
 * reference's round_half_even.
 *
 * The dot products work on one 32-byte vector per block: quants become u8 in
 * k order, _mm256_maddubs_epi16 multiplies them with the signed activations
 * and adds pairs (|lane| <= 2*15*127 or 2*128*127, no saturation), then
 * _mm256_madd_epi16 with ones widens to 8 int32 partial sums, which are
 * exact. They are converted to float and scaled by d_w * d_a with one FMA.
 *   q8_0: weights are signed, so maddubs takes |w| as the unsigned operand
 *         and sign(a, w) as the signed one (same products).
 *   q4_0: the unsigned nibble q (0..15) is used, and the -8 offset is applied
 *         per block as -8 * d_w * s_a (s_a = d_a * sum(q_a)), the float form
 *         of isum(q*a) - 8*sum(a).
 *   q4_1: nibble products as q4_0, plus m_w * s_a per block.
 * Two blocks per iteration with separate accumulators hide the FMA latency.
 * dot_q8a_rows (a thread's whole range of rows per call): q8_0 and q4_0 go
 * one row after another with a software prefetch 2 KiB ahead, q4_0 two
 * blocks per step against activations prepared once per call (see the q4_0
 * section), q4_1 one row after another too.
 * Only the float summation order differs from the reference (and, for q4_0,
 * the offset being applied in float): the tests bound the difference by a
 * few roundings of the sum of absolute terms.
 */
#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"

#include <immintrin.h>

/* a literal: clang requires the rounding mode to be a constant expression */
#define ROUND_MODE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#include <string.h>

/* Bytes ahead in a row's stream that the one-row-at-a-time kernels (q8_0,
 * q4_0) prefetch; measured in the q4_0 section. */
#define PREFETCH_AHEAD 2048

static void quantize_q8a_avx2(const float *x, orion_block_q8a *y, int64_t n) {
    const int64_t nb = n / ORION_QK;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * ORION_QK;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        /* |x| first operand: vmaxps returns the second (acc) on NaN */
        __m256 amax = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_setzero_ps());
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, v1), amax);
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, v2), amax);
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, v3), amax);
        const float d = hmax_ps(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        v0 = _mm256_round_ps(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v0, vid), hi), lo), ROUND_MODE);
        v1 = _mm256_round_ps(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v1, vid), hi), lo), ROUND_MODE);
        v2 = _mm256_round_ps(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v2, vid), hi), lo), ROUND_MODE);
        v3 = _mm256_round_ps(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v3, vid), hi), lo), ROUND_MODE);
        __m256i i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1);
        __m256i i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3);
        const int sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        /* packs interleave the 128-bit lanes; the permute restores k order */
        __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        q = _mm256_permutevar8x32_epi32(q, perm);
        _mm256_storeu_si256((__m256i *)y[b].qs, q);
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

/* 32 nibbles of a q4 block as u8 in k order: low nibbles then high ones.
 * The 16 bytes go to both halves (a load), the upper half is shifted right
 * by 4 (per 64-bit lane; the bits that cross bytes are masked off). */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i sh = _mm256_srlv_epi64(raw, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(sh, _mm256_set1_epi8(15));
}

/* 8 int32 partial sums of u8 * s8 over a block, as floats (exact). */
static inline __m256 block_dot_u8s8(__m256i u, __m256i s) {
    const __m256i ones = _mm256_set1_epi16(1);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
}

static inline __m256 block_dot_s8s8(__m256i w, __m256i a) {
    return block_dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

/* Scales of one block pair as [d_w * d_a, t * s_a, ...]: the weight block
 * starts with its f16 scale d (and, for q4_1, the f16 minimum m right after,
 * then t = m; otherwise t = d); the q8a block starts with d_a, s_a. One
 * 4-byte load and one conversion for both f16 values, one multiply for both
 * products (the scalar f16 conversions and multiplies were the bottleneck). */
static inline __m128 block_scales(const void *wblock, const orion_block_q8a *x, bool has_min) {
    int32_t raw;
    memcpy(&raw, wblock, sizeof raw);
    __m128 w = _mm_cvtph_ps(_mm_cvtsi32_si128(raw)); /* [d, m or junk, 0, 0] */
    if (!has_min) w = _mm_moveldup_ps(w);             /* [d, d, 0, 0] */
    const __m128 a = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)&x->d)); /* [d_a, s_a, 0, 0] */
    return _mm_mul_ps(w, a);
}

/* d_w * d_a of a q8_0 block, in all lanes. */
static inline __m256 block_scale(const orion_block_q8_0 *w, const orion_block_q8a *x) {
    int32_t raw;
    memcpy(&raw, w, sizeof raw);
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(raw));
    return _mm256_broadcastss_ps(_mm_mul_ss(d, _mm_load_ss(&x->d)));
}

/* One q8_0 row: two blocks per step, two accumulators (FMA latency), each
 * block prefetching the weights PREFETCH_AHEAD bytes ahead. */
static float dot_q8a_q8_0_avx2(int64_t n, const void *w, const orion_block_q8a *x) {
    const orion_block_q8_0 *wb = w;
    const int64_t nb = n / ORION_QK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        _mm_prefetch((const char *)&wb[b] + PREFETCH_AHEAD, _MM_HINT_T0);
        _mm_prefetch((const char *)&wb[b + 1] + PREFETCH_AHEAD, _MM_HINT_T0);
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)wb[b].qs);
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)wb[b + 1].qs);
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)x[b + 1].qs);
        const __m256 s0 = block_scale(&wb[b], &x[b]);
        const __m256 s1 = block_scale(&wb[b + 1], &x[b + 1]);
        acc0 = _mm256_fmadd_ps(block_dot_s8s8(w0, a0), s0, acc0);
        acc1 = _mm256_fmadd_ps(block_dot_s8s8(w1, a1), s1, acc1);
    }
    if (b < nb) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)wb[b].qs);
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const __m256 s0 = block_scale(&wb[b], &x[b]);
        acc0 = _mm256_fmadd_ps(block_dot_s8s8(w0, a0), s0, acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* q4_0 and q4_1: nibble products; lane 1 of `extra` sums d_w * s_a (q4_0,
 * applied as -8 times it) or m_w * s_a (q4_1). Prefetches PREFETCH_AHEAD
 * bytes ahead, as q8_0. */
static inline float dot_q4(bool q41, int64_t nb, const uint8_t *w, size_t bb, const orion_block_q8a *x) {
    const size_t qoff = q41 ? 4 : 2; /* offset of qs in the block */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m128 extra0 = _mm_setzero_ps(), extra1 = _mm_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *w0 = w + (size_t)b * bb, *w1 = w0 + bb;
        _mm_prefetch((const char *)w0 + PREFETCH_AHEAD, _MM_HINT_T0);
        _mm_prefetch((const char *)w1 + PREFETCH_AHEAD, _MM_HINT_T0);
        const __m256i q0 = unpack_nibbles(w0 + qoff);
        const __m256i q1 = unpack_nibbles(w1 + qoff);
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)x[b + 1].qs);
        const __m128 p0 = block_scales(w0, &x[b], q41), p1 = block_scales(w1, &x[b + 1], q41);
        acc0 = _mm256_fmadd_ps(block_dot_u8s8(q0, a0), _mm256_broadcastss_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(block_dot_u8s8(q1, a1), _mm256_broadcastss_ps(p1), acc1);
        extra0 = _mm_add_ps(extra0, p0);
        extra1 = _mm_add_ps(extra1, p1);
    }
    if (b < nb) {
        const uint8_t *w0 = w + (size_t)b * bb;
        const __m256i q0 = unpack_nibbles(w0 + qoff);
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const __m128 p0 = block_scales(w0, &x[b], q41);
        acc0 = _mm256_fmadd_ps(block_dot_u8s8(q0, a0), _mm256_broadcastss_ps(p0), acc0);
        extra0 = _mm_add_ps(extra0, p0);
    }
    const float e = _mm_cvtss_f32(_mm_movehdup_ps(_mm_add_ps(extra0, extra1))); /* lane 1 */
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + (q41 ? e : -8.0f * e);
}

static float dot_q8a_q4_0_avx2(int64_t n, const void *w, const orion_block_q8a *x) {
    return dot_q4(false, n / ORION_QK, w, sizeof(orion_block_q4_0), x);
}

static float dot_q8a_q4_1_avx2(int64_t n, const void *w, const orion_block_q8a *x) {
    return dot_q4(true, n / ORION_QK, w, sizeof(orion_block_q4_1), x);
}

/* ---- q4_0: two blocks at a time, one row after another (dot_q8a_rows) -------
 * Two blocks per step: the 16 quant bytes of blocks b and b+1 fill one
 * register (b low, b+1 high), so one and / shift / and gives the low
 * nibbles of both and the high nibbles of both. The two maddubs add into one
 * register whose low half belongs to b and high half to b+1 (|lane| <=
 * 4*8*128 after the -8 offset), so the widening, the int-to-float
 * conversion, the scale multiply and the FMA run once per pair instead of
 * once per block, and the two f16 weight scales are broadcast into
 * [d_b x4, d_b+1 x4] and converted together: about a third fewer vector
 * instructions per block than one block per step (1.23x on hot rows, best
 * of 400 runs, against the 4-row kernel this replaced).
 *
 * Rows are computed one after the other, each a single sequential stream.
 * Interleaving 4 rows (to share the activation loads, as the kernels did
 * before) ran at ~79% of a plain read of the same bytes on Zen 3 even with
 * the arithmetic taken out, one row at a time at ~93% (medians of 30 paired
 * runs over a TinyLlama layer stack, as `orion bench matvec` measures it).
 * So the activation
 * side of each pair (rearranged to match the nibble order, the -8 offset's
 * maddubs(8, a), and [d_a x4, d_a' x4]) is prepared once per call for up to
 * PAIR_CHUNK pairs (a 32 KiB stack buffer, read from L1/L2 as memory
 * operands), and every row reuses it. Longer rows take several chunks. An
 * odd last block goes through dot_q4.
 *
 * Each pair also prefetches the weights PREFETCH_AHEAD bytes ahead (on into
 * the next row, which follows in memory; a prefetch never faults). With the
 * arithmetic in the loop, the out-of-order window holds only a few hundred
 * bytes of demand loads, and the hardware prefetcher alone kept the stream
 * at ~78% of a plain read; 2 KiB ahead gave 85-96% (1, 1.5, 3, 4 and
 * 8 KiB measured within the noise of 2; medians of 30 paired runs). */
typedef struct pair_x {
    __m256i lo;   /* [a_b[0..15], a_b+1[0..15]] */
    __m256i hi;   /* [a_b[16..31], a_b+1[16..31]] */
    __m256i corr; /* maddubs(8, lo) + maddubs(8, hi): the -8 offset's pair sums */
    __m256  da;   /* [d_a(b) x4, d_a(b+1) x4] */
} pair_x;

#define PAIR_CHUNK 256      /* pairs prepared per pass: 16384 values, 32 KiB */

static void prepare_pairs(const orion_block_q8a *x, int64_t n_pairs, pair_x *px) {
    const __m256i eight = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < n_pairs; i++) {
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)x[2 * i].qs);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)x[2 * i + 1].qs);
        px[i].lo = _mm256_permute2x128_si256(a0, a1, 0x20);
        px[i].hi = _mm256_permute2x128_si256(a0, a1, 0x31);
        px[i].corr = _mm256_add_epi16(_mm256_maddubs_epi16(eight, px[i].lo), _mm256_maddubs_epi16(eight, px[i].hi));
        px[i].da = _mm256_set_m128(_mm_broadcast_ss(&x[2 * i + 1].d), _mm_broadcast_ss(&x[2 * i].d));
    }
}

/* acc + the float partial sums of weight blocks wb, wb + 1 with pair px. */
static inline __m256 pair_step(const uint8_t *wb, const pair_x *px, __m256 acc) {
    const size_t bb = sizeof(orion_block_q4_0);
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    const __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(wb + 2))),
                                                _mm_loadu_si128((const __m128i *)(wb + bb + 2)), 1);
    const __m256i lo = _mm256_and_si256(raw, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, px->lo), _mm256_maddubs_epi16(hi, px->hi));
    p = _mm256_sub_epi16(p, px->corr);
    const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
    uint16_t d0, d1;
    memcpy(&d0, wb, sizeof d0);
    memcpy(&d1, wb + bb, sizeof d1);
    const __m128i dh = _mm_blend_epi32(_mm_set1_epi16((short)d0), _mm_set1_epi16((short)d1), 0xC);
    return _mm256_fmadd_ps(f, _mm256_mul_ps(_mm256_cvtph_ps(dh), px->da), acc);
}

static void dot_q8a_rows_q4_0_avx2(int64_t n, const void *w, size_t row_bytes, int n_rows,
                                   const orion_block_q8a *x, float *out) {
    const size_t bb = sizeof(orion_block_q4_0);
    const int64_t nb = n / ORION_QK, n_pairs = nb / 2;
    const uint8_t *wu = w;
    pair_x px[PAIR_CHUNK];
    for (int r = 0; r < n_rows; r++) out[r] = 0.0f;
    for (int64_t p0 = 0; p0 < n_pairs; p0 += PAIR_CHUNK) {
        const int64_t pc = ORION_MIN((int64_t)PAIR_CHUNK, n_pairs - p0);
        prepare_pairs(x + 2 * p0, pc, px);
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *wr = wu + (size_t)r * row_bytes + (size_t)(2 * p0) * bb;
            /* two accumulators hide the FMA latency */
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            int64_t i = 0;
            for (; i + 2 <= pc; i += 2) {
                _mm_prefetch((const char *)wr + (size_t)(2 * i) * bb + PREFETCH_AHEAD, _MM_HINT_T0);
                _mm_prefetch((const char *)wr + (size_t)(2 * i + 2) * bb + PREFETCH_AHEAD, _MM_HINT_T0);
                acc0 = pair_step(wr + (size_t)(2 * i) * bb, &px[i], acc0);
                acc1 = pair_step(wr + (size_t)(2 * i + 2) * bb, &px[i + 1], acc1);
            }
            if (i < pc) acc0 = pair_step(wr + (size_t)(2 * i) * bb, &px[i], acc0);
            out[r] += hsum_ps(_mm256_add_ps(acc0, acc1));
        }
    }
    if (nb % 2)
        for (int r = 0; r < n_rows; r++)
            out[r] += dot_q4(false, 1, wu + (size_t)r * row_bytes + (size_t)(nb - 1) * bb, bb, x + nb - 1);
}

/* q8_0: one row after another, as q4_0 (see there: each row a sequential
 * stream, prefetched ahead). Its activation loads are memory operands from
 * L1, so sharing them over interleaved rows saved little. */
static void dot_q8a_rows_q8_0_avx2(int64_t n, const void *w, size_t row_bytes, int n_rows,
                                   const orion_block_q8a *x, float *out) {
    for (int r = 0; r < n_rows; r++) out[r] = dot_q8a_q8_0_avx2(n, (const uint8_t *)w + (size_t)r * row_bytes, x);
}

/* q4_1: one row after another, one block per step (the pairing above
 * measured only 1.02x with q4_1's minimum). */
static void dot_q8a_rows_q4_1_avx2(int64_t n, const void *w, size_t row_bytes, int n_rows,
                                   const orion_block_q8a *x, float *out) {
    for (int r = 0; r < n_rows; r++)
        out[r] = dot_q4(true, n / ORION_QK, (const uint8_t *)w + (size_t)r * row_bytes, sizeof(orion_block_q4_1), x);
}

void orion__register_dot_q8a_avx2(orion_kernels *k) {
    k->quantize_q8a = quantize_q8a_avx2;
    k->dot_q8a[ORION_TYPE_Q8_0] = dot_q8a_q8_0_avx2;
    k->dot_q8a[ORION_TYPE_Q4_0] = dot_q8a_q4_0_avx2;
    k->dot_q8a[ORION_TYPE_Q4_1] = dot_q8a_q4_1_avx2;
    k->dot_q8a_rows[ORION_TYPE_Q8_0] = dot_q8a_rows_q8_0_avx2;
    k->dot_q8a_rows[ORION_TYPE_Q4_0] = dot_q8a_rows_q4_0_avx2;
    k->dot_q8a_rows[ORION_TYPE_Q4_1] = dot_q8a_rows_q4_1_avx2;
}
