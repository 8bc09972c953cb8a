/*
 * quant_calib.c — the calibrated quantizer: per block of 32, search the
 * scale (q8_0, q4_0) or scale and minimum (q4_1) that minimize the
 * importance-weighted squared error
 *
 *     E = sum_j w[j] * (x[j] - deq[j])^2
 *
 * where deq is what dequantize_row returns for the stored block (f16 scales
 * included) and w the block's slice of the per-column importance (all ones
 * when it is NULL). The output is an ordinary q8_0/q4_0/q4_1 block, read by
 * every kernel unchanged.
 *
 * How it works, per block:
 *   1. The row is first quantized by the reference rule; its block is the
 *      first candidate, so the result is never worse than the reference.
 *   2. Search without f16 rounding, by sweeping the inverse scale s over a
 *      window around the reference's (see "sweeps" below): every
 *      assignment of levels that nearest rounding gives for an s in the
 *      window is scored with its weighted least-squares fit, in O(1) per
 *      step, so the optimum over the window is found (up to the order of
 *      steps that fall in the same bucket of s):
 *        q8_0, q4_0 (w = d * l, l in [-127, 127] resp. [-8, 7]; q4_0 is
 *        swept for x and -x, i.e. with the block's largest value mapped to
 *        either end of its uneven level set): the scale
 *        d = sum(w x l) / sum(w l l), error sum(w x x) - sum(w x l)^2 / sum(w l l);
 *        q4_1 (w = d * l + m, l in [0, 15]): levels of x - m0 for a few
 *        offsets m0 above the block's min, each assignment scored with the
 *        2x2 weighted least-squares fit of (d, m).
 *   3. Round the best scale (and minimum) to f16, try it and its f16
 *      neighbours (one unit in the last place each way), re-deriving the
 *      nearest levels for each rounded scale, and measure the true error of
 *      each resulting block through dequantize_row. The best block replaces
 *      the reference block only when its error is strictly lower.
 *   4. With an importance vector, the search is also run with uniform
 *      weights and that block is a candidate too, so the weighted result is
 *      never worse than the unweighted one under the weighted metric.
 *
 * Checked against a brute-force search over every finite f16 scale (300
 * Gaussian and 300 Student-t blocks): q4_0 reaches the same RMSE, q8_0 is
 * within 0.1% (Gaussian) and 0.6% (Student-t) of it. Cost, on one core:
 * roughly 150 ns per weight for q8_0 and q4_0 and 300 ns for q4_1 (twice
 * that with an importance vector); this runs once, when a model is
 * converted, not at inference time.
 *
 * Blocks with a non-finite value, or whose importance sums to zero, keep
 * the reference block (weights that are negative or NaN count as zero).
 * Thread-safe: no state outside the call.
 */
#include "kernels/kernels.h"
#include "core/fp16.h"

#include <math.h>
#include <string.h>

#define QK ORION_QK

/* Windows of the sweeps, as inverse scales times the block's max |x| (q8_0,
 * q4_0) or range (q4_1): the reference sits at 127, 8 and 15. On Gaussian
 * and Student-t data, windows twice as wide found nothing better (q4_0 and
 * q4_1) or 0.1% of RMSE (q8_0); the cost grows with the width. */
#define Q8_S_LO 105.0f
#define Q8_S_HI 135.0f
#define Q4_S_LO 4.5f
#define Q4_S_HI 10.5f
#define ASYM_S_LO 12.0f
#define ASYM_S_HI 18.0f

/* Nearest level to v in [lo, hi] (v finite or infinite; halves round away
 * from zero). Inline arithmetic instead of roundf, which is a libm call. */
static inline int nearest_level(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (!(v < (float)hi)) return hi;
    int i = (int)v;                 /* truncates; |v| < 128 here */
    const float f = v - (float)i;   /* exact */
    if (f >= 0.5f) i++;
    else if (f <= -0.5f) i--;
    return i;
}

static double weighted_err(const float *x, const float *deq, const float *w) {
    double e = 0.0;
    for (int j = 0; j < QK; j++) {
        const double t = (double)x[j] - (double)deq[j];
        e += (double)w[j] * t * t;
    }
    return e;
}

/* ---- sweeps over the inverse scale ------------------------------------------
 * For a fixed inverse scale s the levels are l[j] = clamp(round(x'[j] * s)).
 * As s grows, each element's level steps by one at s = (k + 1/2) / |x'[j]|;
 * between two such events the assignment is constant. Sweeping the events
 * in order of s and scoring every assignment on the way with its weighted
 * least-squares scale (and minimum) finds the best assignment nearest
 * rounding gives for any s in the window. The events are ordered by a
 * counting sort into N_BUCKETS buckets of s (O(events), no comparisons);
 * within a bucket their order is arbitrary, which only means a few extra
 * assignments get scored: any assignment of levels with its least-squares
 * fit is a valid encoding. Sums are updated per event in O(1) and scores
 * are compared by cross-multiplication, so a step costs no division. */

#define MAX_EVENTS 2048
#define N_BUCKETS  64

typedef struct sweep_step {
    uint8_t j;   /* element */
    int8_t  dl;  /* +1 or -1 */
} sweep_step;

/* Levels of xp (already shifted / signed) at s_a into l, and the steps for
 * s in (s_a, s_b] into out, ordered by bucket of s. Returns their number. */
static int sweep_setup(const float *xp, int lo, int hi, float s_a, float s_b, int *l, sweep_step *out) {
    sweep_step ev[MAX_EVENTS];
    uint8_t bucket[MAX_EVENTS];
    int start[N_BUCKETS + 1];
    memset(start, 0, sizeof start);
    /* may be inf for a window of subnormal width: the guard below clamps */
    const float to_bucket = (float)N_BUCKETS / (s_b - s_a);
    int ne = 0;
    for (int j = 0; j < QK; j++) {
        l[j] = nearest_level(xp[j] * s_a, lo, hi);
        if (xp[j] == 0.0f) continue;
        const float inv = 1.0f / xp[j];
        const int dir = xp[j] > 0.0f ? 1 : -1;
        /* step k -> k + dir happens at s = (k + dir / 2) / xp */
        for (int k = l[j]; (dir > 0 ? k < hi : k > lo) && ne < MAX_EVENTS; k += dir) {
            const float t = ((float)k + 0.5f * (float)dir) * inv;
            if (t > s_b) break;
            if (t <= s_a) { /* rounding put it at the start: take it now */
                l[j] = k + dir;
                continue;
            }
            const float bt = (t - s_a) * to_bucket; /* > 0 */
            const int b = bt < (float)N_BUCKETS ? (int)bt : N_BUCKETS - 1;
            ev[ne] = (sweep_step){(uint8_t)j, (int8_t)dir};
            bucket[ne++] = (uint8_t)b;
            start[b + 1]++;
        }
    }
    for (int b = 0; b < N_BUCKETS; b++) start[b + 1] += start[b];
    for (int e = 0; e < ne; e++) out[start[bucket[e]]++] = ev[e];
    return ne;
}

/* Best symmetric fit so far: the error is sum(w x x) - sxl^2 / sll. */
typedef struct sym_best {
    double sxl, sll; /* sums of the best assignment (sll = 0: none yet) */
    float  sign;
} sym_best;

/* Symmetric levels w = d * l, l in [lo, hi], for sign * x. */
static void sweep_sym(const float *x, const float *w, float sign, int lo, int hi, float s_a, float s_b,
                      sym_best *best) {
    float xp[QK];
    int l[QK];
    sweep_step ev[MAX_EVENTS];
    for (int j = 0; j < QK; j++) xp[j] = sign * x[j];
    const int ne = sweep_setup(xp, lo, hi, s_a, s_b, l, ev);
    double sxl = 0.0, sll = 0.0;
    for (int j = 0; j < QK; j++) {
        sxl += (double)w[j] * xp[j] * l[j];
        sll += (double)w[j] * l[j] * l[j];
    }
    for (int e = -1; e < ne; e++) {
        if (e >= 0) {
            const int j = ev[e].j, l0 = l[j], l1 = l0 + ev[e].dl;
            sxl += (double)w[j] * xp[j] * (l1 - l0);
            sll += (double)w[j] * (double)(l1 * l1 - l0 * l0);
            l[j] = l1;
        }
        /* sxl^2 / sll > best.sxl^2 / best.sll */
        if (sxl > 0.0 && sll > 0.0 && (best->sll == 0.0 || sxl * sxl * best->sll > best->sxl * best->sxl * sll)) {
            best->sxl = sxl;
            best->sll = sll;
            best->sign = sign;
        }
    }
}

/* Best asymmetric fit so far, by its sums: the least-squares (d, m) of an
 * assignment has error sum(w x x) - num / det with
 * det = sw sll - sl^2 and num = sll sx^2 - 2 sl sx sxl + sw sxl^2. */
typedef struct asym_best {
    double num, det; /* det = 0: none yet */
    double sl, sll, sxl;
} asym_best;

/* Asymmetric levels w = d * l + m, l in [0, 15], for the levels of x - m0. */
static void sweep_asym(const float *x, const float *w, double sw, double sx, float m0, float s_a, float s_b,
                       asym_best *best) {
    float xp[QK];
    int l[QK];
    sweep_step ev[MAX_EVENTS];
    for (int j = 0; j < QK; j++) xp[j] = x[j] - m0;
    const int ne = sweep_setup(xp, 0, 15, s_a, s_b, l, ev);
    double sl = 0.0, sll = 0.0, sxl = 0.0;
    for (int j = 0; j < QK; j++) {
        sl += (double)w[j] * l[j];
        sll += (double)w[j] * l[j] * l[j];
        sxl += (double)w[j] * x[j] * l[j];
    }
    for (int e = -1; e < ne; e++) {
        if (e >= 0) {
            const int j = ev[e].j, l0 = l[j], l1 = l0 + ev[e].dl;
            sl += (double)w[j] * (l1 - l0);
            sll += (double)w[j] * (double)(l1 * l1 - l0 * l0);
            sxl += (double)w[j] * x[j] * (l1 - l0);
            l[j] = l1;
        }
        const double det = sw * sll - sl * sl;
        if (!(det > 0.0) || !(sw * sxl - sl * sx > 0.0)) continue; /* need d > 0 */
        const double num = sll * sx * sx - 2.0 * sl * sx * sxl + sw * sxl * sxl;
        if (best->det == 0.0 || num * best->det > best->num * det) {
            best->num = num;
            best->det = det;
            best->sl = sl;
            best->sll = sll;
            best->sxl = sxl;
        }
    }
}

/* Writes the block for scale bits h (levels re-derived for the f16 scale). */
static void make_q8_0(const float *x, uint16_t h, orion_block_q8_0 *b) {
    const float d = orion__fp16_to_fp32(h);
    b->d = h;
    for (int j = 0; j < QK; j++) b->qs[j] = (int8_t)nearest_level(x[j] / d, -127, 127);
}

static void make_q4_0(const float *x, uint16_t h, orion_block_q4_0 *b) {
    const float d = orion__fp16_to_fp32(h);
    b->d = h;
    for (int j = 0; j < QK / 2; j++) {
        const int q0 = nearest_level(x[j] / d, -8, 7) + 8;
        const int q1 = nearest_level(x[j + QK / 2] / d, -8, 7) + 8;
        b->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* f16 bits with the magnitude moved by delta units in the last place;
 * false when that leaves the finite range. */
static bool f16_step(uint16_t h, int delta, bool allow_zero, uint16_t *out) {
    const int mag = (int)(h & 0x7fffu) + delta;
    if (mag < (allow_zero ? 0 : 1) || mag >= 0x7c00) return false;
    *out = (uint16_t)((h & 0x8000u) | (unsigned)mag);
    return true;
}

/* ---- q4_1: w = d * l + m ------------------------------------------------- */

static void make_q4_1(const float *x, uint16_t hd, uint16_t hm, orion_block_q4_1 *b) {
    const float d = orion__fp16_to_fp32(hd), m = orion__fp16_to_fp32(hm);
    b->d = hd;
    b->m = hm;
    for (int j = 0; j < QK / 2; j++) {
        const int q0 = nearest_level((x[j] - m) / d, 0, 15);
        const int q1 = nearest_level((x[j + QK / 2] - m) / d, 0, 15);
        b->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* Starting minima, as fractions of the block's range above its min. */
static const float m_steps[] = {0.0f, 0.05f, 0.10f, 0.15f};
#define N_M_STEPS ((int)ORION_ARRAY_LEN(m_steps))

/* Returns false when no fit was found. */
static bool search_asym(const float *x, const float *w, float *d_out, float *m_out) {
    float min = x[0], max = x[0];
    double sw = 0.0, sx = 0.0;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
        sw += w[j];
        sx += (double)w[j] * x[j];
    }
    const float range = max - min;
    if (!(range > 0.0f) || !isfinite(range) || !isfinite(ASYM_S_HI / range)) return false;
    asym_best best = {0.0, 0.0, 0.0, 0.0, 0.0};
    for (int a = 0; a < N_M_STEPS; a++) {
        const float m0 = min + m_steps[a] * range;
        sweep_asym(x, w, sw, sx, m0, ASYM_S_LO / range, ASYM_S_HI / range, &best);
    }
    if (best.det == 0.0) return false;
    *d_out = (float)((sw * best.sxl - best.sl * sx) / best.det);
    *m_out = (float)((best.sll * sx - best.sl * best.sxl) / best.det);
    return true;
}

/* ---- per block ------------------------------------------------------------ */

/* The best block (bytes into out, QK / block size) the search finds for
 * weights w, measured under the weights `metric`; *err its error. Returns
 * false when there is no candidate. */
static bool search_block(orion_type type, const float *x, const float *w, const float *metric,
                         const orion_kernels *k, void *out, double *err) {
    union {
        orion_block_q8_0 q8_0;
        orion_block_q4_0 q4_0;
        orion_block_q4_1 q4_1;
    } cand;
    const size_t bytes = orion_type_block_bytes(type);
    float deq[QK];
    bool found = false;
    *err = INFINITY;

    float amax = 0.0f;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    /* all zero, or so small that the window of inverse scales overflows */
    if (!(amax > 0.0f) || !isfinite(Q8_S_HI / amax)) return false;

    if (type == ORION_TYPE_Q8_0 || type == ORION_TYPE_Q4_0) {
        sym_best best = {0.0, 0.0, 1.0f};
        if (type == ORION_TYPE_Q8_0) {
            sweep_sym(x, w, 1.0f, -127, 127, Q8_S_LO / amax, Q8_S_HI / amax, &best);
        } else {
            sweep_sym(x, w, 1.0f, -8, 7, Q4_S_LO / amax, Q4_S_HI / amax, &best);
            sweep_sym(x, w, -1.0f, -8, 7, Q4_S_LO / amax, Q4_S_HI / amax, &best);
        }
        if (best.sll == 0.0) return false;
        const float d = best.sign * (float)(best.sxl / best.sll);
        if (d == 0.0f || !isfinite(d)) return false;
        const uint16_t h = orion__fp32_to_fp16(d);
        for (int delta = -1; delta <= 1; delta++) {
            uint16_t hh;
            if (!f16_step(h, delta, false, &hh)) continue;
            if (type == ORION_TYPE_Q8_0) make_q8_0(x, hh, &cand.q8_0);
            else make_q4_0(x, hh, &cand.q4_0);
            k->dequantize_row[type](&cand, deq, QK);
            const double e = weighted_err(x, deq, metric);
            if (e < *err) {
                *err = e;
                memcpy(out, &cand, bytes);
                found = true;
            }
        }
        return found;
    }

    /* q4_1 */
    float d = 0.0f, m = 0.0f;
    if (!search_asym(x, w, &d, &m)) return false;
    const uint16_t hd = orion__fp32_to_fp16(d), hm = orion__fp32_to_fp16(m);
    for (int dd = -1; dd <= 1; dd++) {
        uint16_t hdd;
        if (!f16_step(hd, dd, false, &hdd)) continue;
        for (int dm = -1; dm <= 1; dm++) {
            uint16_t hmm;
            if (!f16_step(hm, dm, true, &hmm)) continue;
            make_q4_1(x, hdd, hmm, &cand.q4_1);
            k->dequantize_row[type](&cand, deq, QK);
            const double e = weighted_err(x, deq, metric);
            if (e < *err) {
                *err = e;
                memcpy(out, &cand, bytes);
                found = true;
            }
        }
    }
    return found;
}

void orion__quantize_row_calibrated(orion_type type, const float *x, void *y, int64_t n,
                                    const float *importance) {
    const orion_kernels *k = orion__kernels();
    /* the reference rule first: the result for float types, and the first
     * candidate of every block */
    k->quantize_row[type](x, y, n);
    const orion_type_traits *tr = orion__type_traits((int)type);
    if (!tr || !tr->quantized) return;

    const size_t bytes = tr->block_bytes;
    static const float ones[QK] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                   1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    unsigned char best[sizeof(orion_block_q4_1) > sizeof(orion_block_q8_0) ? sizeof(orion_block_q4_1)
                                                                            : sizeof(orion_block_q8_0)];
    unsigned char cand[sizeof best];
    float deq[QK], wbuf[QK];

    for (int64_t i = 0; i < n / QK; i++) {
        const float *xb = x + i * QK;
        unsigned char *yb = (unsigned char *)y + (size_t)i * bytes;
        bool finite = true;
        for (int j = 0; j < QK; j++) finite = finite && isfinite(xb[j]);
        if (!finite) continue;

        const float *w = ones;
        if (importance) {
            double sum = 0.0;
            for (int j = 0; j < QK; j++) {
                const float v = importance[i * QK + j];
                wbuf[j] = (v > 0.0f && isfinite(v)) ? v : 0.0f;
                sum += wbuf[j];
            }
            if (!(sum > 0.0) || !isfinite(sum)) continue;
            w = wbuf;
        }

        k->dequantize_row[type](yb, deq, QK);
        double best_err = weighted_err(xb, deq, w);
        bool improved = false;
        double e;
        if (search_block(type, xb, w, w, k, cand, &e) && e < best_err) {
            best_err = e;
            memcpy(best, cand, bytes);
            improved = true;
        }
        if (w != ones && search_block(type, xb, ones, w, k, cand, &e) && e < best_err) {
            best_err = e;
            memcpy(best, cand, bytes);
            improved = true;
        }
        if (improved) memcpy(yb, best, bytes);
    }
}
