/*
 * quant_avx2.c — AVX2/FMA/F16C versions of the quantization section of the
 * kernel table (quantize_row, dequantize_row, dot_f32) for f16, bf16, q8_0,
 * q4_0, q4_1 and dot_f32 for f32. Compiled with -mavx2 -mfma -mf16c; only
 * installed when cpu.c has found those features.
 *
 * quantize_row and dequantize_row produce the same bytes as quant_ref.c for
 * every input (NaN, infinities, signed zeros and subnormals included; the
 * one exception: f16 -> f32 of a signalling-NaN f16 gives a quiet NaN here,
 * as vcvtph2ps quiets it, where the reference keeps the payload as is):
 *   - the scales are computed per block in scalar code with the reference's
 *     expressions; only the per-element work is vectorized;
 *   - max/min reductions ignore NaN as the reference's comparisons do
 *     (vmaxps/vminps return their second operand when one is NaN, so the
 *     running value is passed second); for the values whose sign of zero or
 *     first occurrence matters (q4_0's signed max, q4_1's min/max when 0) the
 *     first matching element is looked up as the reference finds it;
 *   - roundf (half away from zero) is trunc(p) + sign(p) when |p - trunc(p)|
 *     >= 0.5, exact for every float (vroundps alone rounds half to even);
 *   - the 4-bit rule trunc(x*id + 8.5) uses a separate multiply and add (no
 *     FMA: it rounds once instead of twice) and clamps to [0, 15], NaN -> 0,
 *     as the reference's helper does;
 *   - f32 -> f16 is vcvtps2ph with rounding mode 0 (nearest even, which is
 *     what orion__fp32_to_fp16 computes; MXCSR's DAZ must be clear, as it is
 *     by default), f32 -> bf16 the reference's integer rounding on 8 lanes;
 *   - dequantization multiplies (and for q4_1 adds) in the reference's order,
 *     again without FMA.
 *
 * dot_f32 keeps 8-lane (f32: 4 x 8-lane) FMA accumulators and sums them at
 * the end, so its result differs from the reference's sequential sum by
 * rounding only: both are within n * FLT_EPSILON * sum|w[i] * x[i]| of the
 * exact dot product (tests/test_quant.c checks this). For q8_0 and q4_0 the
 * block scale is applied once per block: d * sum(q * x), which is exact
 * algebra since d * q is exact in float (11-bit d times a <= 8-bit q).
 *
 * Rows of the float types may have any length (a scalar tail finishes the
 * last n % 8 elements); rows of the quantized types are whole blocks.
 */
#include "kernels/kernels.h"
#include "kernels/x86/avx2_util.h"
#include "core/fp16.h"

#include <float.h>
#include <immintrin.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------- */

/* Loads one block of 32 floats as 4 vectors. */
static inline void load_block(const float *x, __m256 v[4]) {
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
}

/* max |x| over a block, NaN ignored (the running value is the second
 * operand of vmaxps, so a NaN lane leaves it unchanged). */
static inline float block_amax(const __m256 v[4]) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax);
    return hmax_ps(amax);
}

/* Index of the first element of a block whose |x| equals a (a must be one of
 * them). */
static inline int first_abs_equal(const __m256 v[4], float a) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 va = _mm256_set1_ps(a);
    uint32_t mask = 0;
    for (int k = 0; k < 4; k++) {
        __m256 eq = _mm256_cmp_ps(_mm256_andnot_ps(sign, v[k]), va, _CMP_EQ_OQ);
        mask |= (uint32_t)_mm256_movemask_ps(eq) << (8 * k);
    }
    return __builtin_ctz(mask);
}

/* The reference's 4-bit code: trunc(t) clamped to [0, 15], NaN -> 0.
 * vmaxps(t, 0) returns 0 for NaN t. */
static inline __m256i trunc_q4(__m256 t) {
    t = _mm256_max_ps(t, _mm256_setzero_ps());
    t = _mm256_min_ps(t, _mm256_set1_ps(15.0f));
    return _mm256_cvttps_epi32(t);
}

/* Packs 32 codes in [0, 15] (q[0] = elements 0..7, ..., q[3] = 24..31) into
 * 16 bytes: byte j = code j | code (j + 16) << 4. */
static inline void pack_nibbles(const __m256i q[4], uint8_t *out) {
    /* packs interleaves the 128-bit lanes: 16-bit words hold the elements
     * 0-3, 8-11 | 4-7, 12-15 (and +16 for hi); hi and lo share the order. */
    __m256i lo = _mm256_packs_epi32(q[0], q[1]);
    __m256i hi = _mm256_packs_epi32(q[2], q[3]);
    __m256i c = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    c = _mm256_permute4x64_epi64(c, 0xD8); /* qwords 0,2,1,3 -> elements in order */
    __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storeu_si128((__m128i *)out, bytes);
}

/* 16 bytes of nibbles -> 32 codes as int32 (q[0] = elements 0..7, ...). */
static inline void unpack_nibbles(const uint8_t *in, __m256i q[4]) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m128i raw = _mm_loadu_si128((const __m128i *)in);
    __m128i lo = _mm_and_si128(raw, m4);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
    q[0] = _mm256_cvtepu8_epi32(lo);
    q[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
    q[2] = _mm256_cvtepu8_epi32(hi);
    q[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
}

/* ---- f16 ----------------------------------------------------------------- */

static void quantize_row_f16(const float *x, void *y, int64_t n) {
    uint16_t *h = (uint16_t *)y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i r = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(h + i), r);
    }
    for (; i < n; i++) h[i] = orion__fp32_to_fp16(x[i]);
}

static void dequantize_row_f16(const void *x, float *y, int64_t n) {
    const uint16_t *h = (const uint16_t *)x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) y[i] = orion__fp16_to_fp32(h[i]);
}

static float dot_f32_f16(int64_t n, const void *w, const float *x) {
    const uint16_t *h = (const uint16_t *)w;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i + 8)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += orion__fp16_to_fp32(h[i]) * x[i];
    return sum;
}

/* Attention over an f16 cache (the default KV type) for n_x queries that
 * share it (the query heads of one KV head). Both kernels go through the rows
 * a tile at a time: the tile's rows are converted to f32 once, into a buffer
 * that stays in L1, and every query then runs over the tile with plain loads.
 *   rows_dot: per query, 8 rows at a time, 8 accumulators reduced into one
 *   register of 8 scores; the rest one row at a time.
 *   rows_axpy: per query, 8 registers of outputs (64 values) over all rows
 *   of the tile, then the next 64; values past a multiple of 8 in scalar code.
 * The cache comes from DRAM (a token's weights stream through the last-level
 * cache between two attentions): while a tile is worked on, the tile after
 * the next is prefetched, a share before each query.
 * `orion bench attention` (TinyLlama shape, 1024 positions, one thread, ns
 * per layer and position, Zen 3, the cache laid out by head as orion_llm
 * does): 310-400 before (each row converted again per 4 queries, no
 * prefetch), 235-335 with tiles and the prefetch, 360-380 with tiles alone.
 * With the cache laid out by position (a head's rows a whole position
 * apart) the kernels before took 700-800 and the tiles 330-400.
 * Rows longer than the tile buffer take the reference kernels. */
#define TILE_FLOATS 4096
#define TILE_ROWS   32

static float dot_f32_f32(int64_t n, const void *w, const float *x);

/* Rows a tile holds for rows of n values: 1..TILE_ROWS, 0 when one row
 * does not fit. */
static inline int64_t tile_rows_for(int64_t n) {
    const int64_t r = TILE_FLOATS / n;
    return r > TILE_ROWS ? TILE_ROWS : r;
}

/* Converts rows [i0, i0 + m) into tile (m x n floats). */
static void load_tile_f16(const char *rows, size_t stride, int64_t n, int64_t i0, int64_t m, float *tile) {
    for (int64_t r = 0; r < m; r++) dequantize_row_f16(rows + (i0 + r) * (int64_t)stride, tile + r * n, n);
}

/* Before query j of n_x over a tile of m rows from i0: prefetches the j-th
 * share of the next tile's rows (spread over the queries, the prefetches
 * do not queue up behind each other). */
static inline void prefetch_next_tile(const char *rows, size_t stride, int64_t n, int64_t n_rows, int64_t i0,
                                      int64_t m, int j, int n_x) {
    const int64_t lo = i0 + 2 * m + m * j / n_x, hi0 = i0 + 2 * m + m * (j + 1) / n_x;
    const int64_t hi = hi0 < n_rows ? hi0 : n_rows;
    for (int64_t i = lo; i < hi; i++) orion__prefetch_lines(rows + i * (int64_t)stride, 2 * (size_t)n);
}

/* [sum(a0), ..., sum(a7)] */
static inline __m256 hsum8_ps(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6,
                              __m256 a7) {
    const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}

/* Dot products of m tile rows (n values each) with x into out[0..m). */
static void tile_dot(const float *tile, int64_t m, int64_t n, const float *x, float *out) {
    const int64_t n8 = n & ~(int64_t)7;
    int64_t r = 0;
    for (; r + 8 <= m; r += 8) {
        const float *t = tile + r * n;
        __m256 a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
        for (int64_t d = 0; d < n8; d += 8) {
            const __m256 xv = _mm256_loadu_ps(x + d);
            for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(t + i * n + d), xv, a[i]);
        }
        __m256 s = hsum8_ps(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        if (n8 < n) {
            float tail[8] = {0};
            for (int i = 0; i < 8; i++)
                for (int64_t d = n8; d < n; d++) tail[i] += t[i * n + d] * x[d];
            s = _mm256_add_ps(s, _mm256_loadu_ps(tail));
        }
        _mm256_storeu_ps(out + r, s);
    }
    for (; r < m; r++) out[r] = dot_f32_f32(n, tile + r * n, x);
}

/* y[0..64) += sum over the m tile rows of a[r] * row_r[d0 .. d0 + 64). */
static inline void tile_axpy64(const float *tile, int64_t m, int64_t n, int64_t d0, const float *a, float *y) {
    __m256 acc[8];
    for (int c = 0; c < 8; c++) acc[c] = _mm256_loadu_ps(y + 8 * c);
    for (int64_t r = 0; r < m; r++) {
        const __m256 s = _mm256_broadcast_ss(a + r);
        const float *t = tile + r * n + d0;
        for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(s, _mm256_loadu_ps(t + 8 * c), acc[c]);
    }
    for (int c = 0; c < 8; c++) _mm256_storeu_ps(y + 8 * c, acc[c]);
}

/* y[0..n) += sum over the m tile rows of a[r] * row_r. */
static void tile_axpy(const float *tile, int64_t m, int64_t n, const float *a, float *y) {
    const int64_t n8 = n & ~(int64_t)7;
    int64_t d = 0;
    for (; d + 64 <= n8; d += 64) tile_axpy64(tile, m, n, d, a, y + d);
    for (; d < n8; d += 8) {
        __m256 acc = _mm256_loadu_ps(y + d);
        for (int64_t r = 0; r < m; r++)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r), _mm256_loadu_ps(tile + r * n + d), acc);
        _mm256_storeu_ps(y + d, acc);
    }
    for (; d < n; d++) {
        float t = y[d];
        for (int64_t r = 0; r < m; r++) t += a[r] * tile[r * n + d];
        y[d] = t;
    }
}

/* One query over one tile: rows [i0, i0 + m) of n_rows, query j; in and
 * out are the kernel's (x and out for rows_dot, a and y for rows_axpy). */
typedef void (*tile_query_fn)(const float *tile, int64_t m, int64_t n, int64_t n_rows, int64_t i0, int j,
                              const float *in, float *out);

static inline void dot_query(const float *tile, int64_t m, int64_t n, int64_t n_rows, int64_t i0, int j,
                             const float *x, float *out) {
    tile_dot(tile, m, n, x + j * n, out + j * n_rows + i0);
}

static inline void axpy_query(const float *tile, int64_t m, int64_t n, int64_t n_rows, int64_t i0, int j,
                              const float *a, float *y) {
    tile_axpy(tile, m, n, a + j * n_rows + i0, y + j * n);
}

/* The tile loop both kernels share (rows of n values that fit a tile). */
static inline __attribute__((always_inline)) void over_tiles(int64_t n_rows, const char *rows, size_t stride,
                                                             int64_t n, int n_x, tile_query_fn fn,
                                                             const float *in, float *out) {
    const int64_t per_tile = tile_rows_for(n);
    float tile[TILE_FLOATS];
    for (int64_t i = 0; i < 2 * per_tile && i < n_rows; i++) orion__prefetch_lines(rows + i * (int64_t)stride, 2 * (size_t)n);
    for (int64_t i0 = 0; i0 < n_rows; i0 += per_tile) {
        const int64_t m = n_rows - i0 < per_tile ? n_rows - i0 : per_tile;
        load_tile_f16(rows, stride, n, i0, m, tile);
        for (int j = 0; j < n_x; j++) {
            prefetch_next_tile(rows, stride, n, n_rows, i0, m, j, n_x);
            fn(tile, m, n, n_rows, i0, j, in, out);
        }
    }
}

/* Rows longer than the tile buffer (no real head is) go to the reference
 * kernels. */
static void rows_dot_f16(int64_t n_rows, const void *rows, size_t stride, int64_t n, const float *x, int n_x,
                         float *out) {
    if (tile_rows_for(n) == 0) orion__kernels_ref()->rows_dot[ORION_TYPE_F16](n_rows, rows, stride, n, x, n_x, out);
    else over_tiles(n_rows, rows, stride, n, n_x, dot_query, x, out);
}

static void rows_axpy_f16(int64_t n_rows, const void *rows, size_t stride, int64_t n, const float *a, int n_x,
                          float *y) {
    if (tile_rows_for(n) == 0) orion__kernels_ref()->rows_axpy[ORION_TYPE_F16](n_rows, rows, stride, n, a, n_x, y);
    else over_tiles(n_rows, rows, stride, n, n_x, axpy_query, a, y);
}

/* ---- bf16 ---------------------------------------------------------------- */

/* 8 floats -> 8 bf16 with the reference's integer rounding. */
static inline __m128i f32_to_bf16_8(__m256 v) {
    const __m256i xi = _mm256_castps_si256(v);
    const __m256i absx = _mm256_and_si256(xi, _mm256_set1_epi32(0x7fffffff));
    const __m256i isnan = _mm256_cmpgt_epi32(absx, _mm256_set1_epi32(0x7f800000));
    const __m256i hi = _mm256_srli_epi32(xi, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(xi, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i quiet = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, isnan);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

static inline __m256 bf16_to_f32_8(const uint16_t *h) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static void quantize_row_bf16(const float *x, void *y, int64_t n) {
    uint16_t *h = (uint16_t *)y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(h + i), f32_to_bf16_8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) h[i] = orion__fp32_to_bf16(x[i]);
}

static void dequantize_row_bf16(const void *x, float *y, int64_t n) {
    const uint16_t *h = (const uint16_t *)x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bf16_to_f32_8(h + i));
    for (; i < n; i++) y[i] = orion__bf16_to_fp32(h[i]);
}

static float dot_f32_bf16(int64_t n, const void *w, const float *x) {
    const uint16_t *h = (const uint16_t *)w;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(bf16_to_f32_8(h + i), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(bf16_to_f32_8(h + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(bf16_to_f32_8(h + i), _mm256_loadu_ps(x + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += orion__bf16_to_fp32(h[i]) * x[i];
    return sum;
}

/* ---- f32 ----------------------------------------------------------------- */

static float dot_f32_f32(int64_t n, const void *w, const float *x) {
    const float *ww = (const float *)w;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(ww + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(ww + i), _mm256_loadu_ps(x + i), acc[0]);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += ww[i] * x[i];
    return sum;
}

/* ---- q8_0 ---------------------------------------------------------------- */

static void quantize_row_q8_0(const float *x, void *y, int64_t n) {
    orion_block_q8_0 *b = (orion_block_q8_0 *)y;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        __m256 v[4];
        load_block(x + i * ORION_QK, v);
        const float amax = block_amax(v);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = orion__fp32_to_fp16(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            const __m256 p = _mm256_mul_ps(v[k], vid);
            /* roundf(p): trunc, then one step away from zero when the
             * (exact) fraction is at least one half */
            const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(p, t));
            const __m256 step = _mm256_or_ps(_mm256_and_ps(p, sign), one);
            __m256 r = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), step));
            r = _mm256_and_ps(r, _mm256_cmp_ps(p, p, _CMP_ORD_Q)); /* NaN -> 0 */
            r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            q[k] = _mm256_cvttps_epi32(r);
        }
        /* int32 -> int8: packs interleaves the 128-bit lanes; the dword
         * permutation 0,4,1,5,2,6,3,7 puts the elements back in order */
        __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
        __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)b[i].qs, p8);
    }
}

static void dequantize_row_q8_0(const void *x, float *y, int64_t n) {
    const orion_block_q8_0 *b = (const orion_block_q8_0 *)x;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const __m256 vd = _mm256_set1_ps(orion__fp16_to_fp32(b[i].d));
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * k)));
            _mm256_storeu_ps(y + i * ORION_QK + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vd));
        }
    }
}

static float dot_f32_q8_0(int64_t n, const void *w, const float *x) {
    const orion_block_q8_0 *b = (const orion_block_q8_0 *)w;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        __m256 q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * k))));
        __m256 s0 = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
        __m256 s1 = _mm256_mul_ps(q[1], _mm256_loadu_ps(xb + 8));
        s0 = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xb + 16), s0);
        s1 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), s1);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(orion__fp16_to_fp32(b[i].d)), _mm256_add_ps(s0, s1), acc);
    }
    return hsum_ps(acc);
}

/* ---- q4_0 ---------------------------------------------------------------- */

static void quantize_row_q4_0(const float *x, void *y, int64_t n) {
    orion_block_q4_0 *b = (orion_block_q4_0 *)y;
    const __m256 h = _mm256_set1_ps(8.5f);
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        __m256 v[4];
        load_block(xb, v);
        const float amax = block_amax(v);
        /* the reference keeps the first value of largest |x|, and +0 when
         * every value is zero (or NaN) */
        const float max = amax > 0.0f ? xb[first_abs_equal(v, amax)] : 0.0f;
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = orion__fp32_to_fp16(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = trunc_q4(_mm256_add_ps(_mm256_mul_ps(v[k], vid), h));
        pack_nibbles(q, b[i].qs);
    }
}

static void dequantize_row_q4_0(const void *x, float *y, int64_t n) {
    const orion_block_q4_0 *b = (const orion_block_q4_0 *)x;
    const __m256i eight = _mm256_set1_epi32(8);
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const __m256 vd = _mm256_set1_ps(orion__fp16_to_fp32(b[i].d));
        __m256i q[4];
        unpack_nibbles(b[i].qs, q);
        for (int k = 0; k < 4; k++) {
            __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], eight));
            _mm256_storeu_ps(y + i * ORION_QK + 8 * k, _mm256_mul_ps(f, vd));
        }
    }
}

static float dot_f32_q4_0(int64_t n, const void *w, const float *x) {
    const orion_block_q4_0 *b = (const orion_block_q4_0 *)w;
    const __m256i eight = _mm256_set1_epi32(8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        __m256i qi[4];
        unpack_nibbles(b[i].qs, qi);
        __m256 q[4];
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvtepi32_ps(_mm256_sub_epi32(qi[k], eight));
        __m256 s0 = _mm256_mul_ps(q[0], _mm256_loadu_ps(xb));
        __m256 s1 = _mm256_mul_ps(q[1], _mm256_loadu_ps(xb + 8));
        s0 = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xb + 16), s0);
        s1 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xb + 24), s1);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(orion__fp16_to_fp32(b[i].d)), _mm256_add_ps(s0, s1), acc);
    }
    return hsum_ps(acc);
}

/* ---- q4_1 ---------------------------------------------------------------- */

/* The first element of a block equal to zero (there is one). */
static float first_zero(const float *xb) {
    for (int j = 0; j < ORION_QK; j++)
        if (xb[j] == 0.0f) return xb[j];
    return 0.0f;
}

static void quantize_row_q4_1(const float *x, void *y, int64_t n) {
    orion_block_q4_1 *b = (orion_block_q4_1 *)y;
    const __m256 h = _mm256_set1_ps(0.5f);
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        __m256 v[4];
        load_block(xb, v);
        __m256 vmin = _mm256_set1_ps(FLT_MAX), vmax = _mm256_set1_ps(-FLT_MAX);
        for (int k = 0; k < 4; k++) {
            vmin = _mm256_min_ps(v[k], vmin); /* NaN lanes keep the running value */
            vmax = _mm256_max_ps(v[k], vmax);
        }
        float min = hmin_ps(vmin), max = hmax_ps(vmax);
        /* the reference keeps the first occurrence, which only shows in the
         * sign of a zero */
        if (min == 0.0f) min = first_zero(xb);
        if (max == 0.0f) max = first_zero(xb);
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = orion__fp32_to_fp16(d);
        b[i].m = orion__fp32_to_fp16(min);
        const __m256 vid = _mm256_set1_ps(id), vm = _mm256_set1_ps(min);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = trunc_q4(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[k], vm), vid), h));
        pack_nibbles(q, b[i].qs);
    }
}

static void dequantize_row_q4_1(const void *x, float *y, int64_t n) {
    const orion_block_q4_1 *b = (const orion_block_q4_1 *)x;
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const __m256 vd = _mm256_set1_ps(orion__fp16_to_fp32(b[i].d));
        const __m256 vm = _mm256_set1_ps(orion__fp16_to_fp32(b[i].m));
        __m256i q[4];
        unpack_nibbles(b[i].qs, q);
        for (int k = 0; k < 4; k++) {
            __m256 f = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[k]), vd), vm);
            _mm256_storeu_ps(y + i * ORION_QK + 8 * k, f);
        }
    }
}

static float dot_f32_q4_1(int64_t n, const void *w, const float *x) {
    const orion_block_q4_1 *b = (const orion_block_q4_1 *)w;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / ORION_QK; i++) {
        const float *xb = x + i * ORION_QK;
        const __m256 vd = _mm256_set1_ps(orion__fp16_to_fp32(b[i].d));
        const __m256 vm = _mm256_set1_ps(orion__fp16_to_fp32(b[i].m));
        __m256i q[4];
        unpack_nibbles(b[i].qs, q);
        /* the weights as dequantize_row returns them: q * d + m */
        __m256 w0 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), vd), vm);
        __m256 w1 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[1]), vd), vm);
        __m256 w2 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[2]), vd), vm);
        __m256 w3 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[3]), vd), vm);
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xb), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), acc1);
        acc0 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), acc0);
        acc1 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), acc1);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- registration -------------------------------------------------------- */

void orion__register_quant_avx2(orion_kernels *k) {
    /* f32 quantize/dequantize stay memcpy (the reference) */
    k->quantize_row[ORION_TYPE_F16] = quantize_row_f16;
    k->quantize_row[ORION_TYPE_BF16] = quantize_row_bf16;
    k->quantize_row[ORION_TYPE_Q8_0] = quantize_row_q8_0;
    k->quantize_row[ORION_TYPE_Q4_0] = quantize_row_q4_0;
    k->quantize_row[ORION_TYPE_Q4_1] = quantize_row_q4_1;

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

    k->rows_dot[ORION_TYPE_F16] = rows_dot_f16;
    k->rows_axpy[ORION_TYPE_F16] = rows_axpy_f16;
}
