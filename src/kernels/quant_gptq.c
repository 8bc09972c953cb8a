/*
 * quant_gptq.c — GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ:
 * Accurate Post-Training Quantization for Generative Pre-trained
 * Transformers"): quantizes a weight matrix one input column at a time and
 * pushes each column's rounding error onto the columns not yet quantized,
 * so that the layer's output on calibration activations, not the weights,
 * stays close:
 *
 *     minimize  sum over rows w of (w - q)^T H (w - q),   H = X^T X
 *
 * where X (calibration rows x n_in) holds the inputs the matrix multiplies.
 * The output is ordinary q4_0 / q4_1 / q8_0 blocks (GGUF layouts, read by
 * every kernel and by llama.cpp unchanged); only the choice of levels and
 * block parameters differs from the per-block quantizers.
 *
 * Shapes: W is n_rows x n_in floats in GGUF order (a row is one output, n_in
 * along the block axis, blocks of 32 consecutive inputs); H is n_in x n_in
 * doubles, of which only the upper triangle (j >= i) is read.
 *
 * Preparation (orion__gptq_init), once per Hessian, in double:
 *   1. Dead inputs (H_ii == 0: the column never saw a non-zero activation)
 *      get H_ii = 1 and a zero row/column; their weights are set to 0.
 *   2. Damping: H_ii += lambda, lambda = damp * mean(diag H) (default damp
 *      0.01, the paper's). If H + lambda I is still not positive definite
 *      (a pivot <= 0), lambda is multiplied by 10 and the factorization
 *      retried, up to MAX_DAMP_TRIES times.
 *   3. U, the upper Cholesky factor of H^-1 (H^-1 = U^T U), which holds
 *      every quantity the column loop needs. It is computed without forming
 *      H^-1: the "reversed" Cholesky factorization H = V V^T with V upper
 *      (the ordinary Cholesky of H with rows and columns in reverse order)
 *      gives H^-1 = V^-T V^-1, so U = V^-1, one triangular inverse.
 *      Cost about n^3/3 multiply-adds; memory 2 n^2 doubles while
 *      preparing, n^2 kept.
 *
 * Quantization (orion__gptq_quantize_rows), per row, independently (rows
 * are processed ROW_TILE at a time to share the reads of U):
 *     for each column i:
 *       if i starts a block of 32: choose the block's parameters from the
 *         current (already error-updated) values of its 32 weights: by the
 *         reference rule of quant_ref.c (q4_1: d = (max-min)/15, m = min;
 *         q4_0: d = (value of largest magnitude)/-8; q8_0: d = max|x|/127),
 *         or, with search_scale, by the calibrated search of quant_calib.c
 *         weighted by 1/U_jj^2 (the cost GPTQ assigns to an error in column
 *         j); either way d (and m) are taken from the block as stored (f16)
 *       q   = the nearest level, clamped to the type's range; v = its value
 *             computed exactly as dequantize_row computes it (float)
 *       e   = (w_i - v) / U_ii
 *       w_k -= e * U_ik for every k > i
 * Cost about n_in^2/2 multiply-adds per row. The values the loop assumed (deq) are
 * bit-for-bit what the kernels' dequantize_row returns for the stored
 * blocks (tests/test_gptq.c checks it).
 *
 * Not done: the paper's "lazy batch" updates (a GPU cache optimization; the
 * row tile plays that role here) and act-order (columns by decreasing H_ii,
 * which needs every block's parameters fixed before its columns are
 * updated: "static groups"). Act-order was tried on the USE lite model at
 * q4_1: no better than the column order with the scale search, worse with
 * it (docs/quantization.md), so it was left out.
 *
 * Thread-safety: an orion__gptq is read-only after init; quantize_rows may
 * run on many threads at once with the same one.
 */
#include "kernels/kernels.h"
#include "core/fp16.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define QK ORION_QK
#define ROW_TILE ORION_GPTQ_TILE
#define MAX_DAMP_TRIES 6  /* damping x10 per retry when H is not positive definite */
#define MAX_N_IN (1 << 17)

struct orion__gptq {
    int64_t  n;           /* n_in */
    double  *u;           /* n x n, row-major; the upper triangle is U */
    uint8_t *dead;        /* n: 1 for inputs that never saw an activation */
    double   damp_used;   /* the lambda that was added to the diagonal */
    bool     search_scale;
};

orion__gptq_params orion__gptq_default_params(void) {
    orion__gptq_params p;
    memset(&p, 0, sizeof p);
    p.damp = 0.01;
    return p;
}

/* ---- factorization ----------------------------------------------------------- */

/* Dot product of a[0..n) and b[0..n), four partial sums (the build forbids
 * reassociation, so this is written out). */
static double dot4(const double *a, const double *b, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++) s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

/* In place: the upper triangle of a (n x n) becomes V, upper triangular with
 * A = V V^T, where A is the symmetric matrix whose upper triangle a holds.
 * Columns are done from the last to the first:
 *   V_jj = sqrt(A_jj - sum_{k>j} V_jk^2),
 *   V_ij = (A_ij - sum_{k>j} V_ik V_jk) / V_jj   for i < j.
 * Returns false at a pivot that is not positive (A not positive definite). */
static bool cholesky_upper_reversed(double *a, int64_t n) {
    for (int64_t j = n - 1; j >= 0; j--) {
        double *rj = a + j * n;
        const double s = rj[j] - dot4(rj + j + 1, rj + j + 1, n - j - 1);
        if (!(s > 0.0) || !isfinite(s)) return false;
        const double vjj = sqrt(s);
        rj[j] = vjj;
        for (int64_t i = 0; i < j; i++) {
            double *ri = a + i * n;
            ri[j] = (ri[j] - dot4(ri + j + 1, rj + j + 1, n - j - 1)) / vjj;
        }
    }
    return true;
}

/* u = v^-1 for v upper triangular (upper triangles only; u's lower part is
 * left as is). Row by row from the bottom, as axpys over contiguous rows:
 *   U_ii = 1 / V_ii,  U_i,j = -(1 / V_ii) sum_{k=i+1..j} V_ik U_kj  (j > i). */
static void invert_upper(const double *v, double *u, int64_t n) {
    for (int64_t i = n - 1; i >= 0; i--) {
        const double *vi = v + i * n;
        double *ui = u + i * n;
        for (int64_t j = i + 1; j < n; j++) ui[j] = 0.0;
        for (int64_t k = i + 1; k < n; k++) {
            const double a = vi[k];
            if (a == 0.0) continue;
            const double *uk = u + k * n;
            for (int64_t j = k; j < n; j++) ui[j] += a * uk[j];
        }
        const double inv = 1.0 / vi[i];
        for (int64_t j = i + 1; j < n; j++) ui[j] = -inv * ui[j];
        ui[i] = inv;
    }
}

orion_status orion__gptq_init(const double *h, int64_t n_in, const orion__gptq_params *params,
                              orion__gptq **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "gptq: NULL output");
    *out = NULL;
    const orion__gptq_params p = params ? *params : orion__gptq_default_params();
    if (!h) return orion__fail(ORION_ERR_INVALID_ARG, "gptq: NULL Hessian");
    if (n_in <= 0 || n_in > MAX_N_IN)
        return orion__fail(ORION_ERR_INVALID_ARG, "gptq: n_in %lld out of range [1, %d]", (long long)n_in, MAX_N_IN);
    if (!(p.damp >= 0.0) || !isfinite(p.damp))
        return orion__fail(ORION_ERR_INVALID_ARG, "gptq: damping %g must be finite and >= 0", p.damp);
    const int64_t n = n_in;
    size_t nn;
    if (!orion__mul_ok((size_t)n, (size_t)n, &nn) || !orion__mul_ok(nn, sizeof(double), &nn))
        return orion__fail(ORION_ERR_RANGE, "gptq: a %lld x %lld Hessian does not fit in memory", (long long)n,
                           (long long)n);

    orion_status st = ORION_OK;
    orion__gptq *g = orion__calloc(1, sizeof *g);
    double *a = NULL, *orig = NULL;
    if (!g) return orion__fail(ORION_ERR_NOMEM, "gptq: out of memory");
    g->n = n;
    g->search_scale = p.search_scale;
    g->dead = orion__calloc((size_t)n, 1);
    g->u = orion__malloc(nn);
    a = orion__malloc(nn);
    if (!g->dead || !g->u || !a) {
        st = orion__fail(ORION_ERR_NOMEM, "gptq: out of memory for %zu bytes of Hessian factors (n_in %lld)", 2 * nn,
                         (long long)n);
        goto fail;
    }
    /* The damped, dead-fixed upper triangle is built in g->u (free until the
     * end), so each retry restarts from it. */
    orig = g->u;
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = h[i * n + i];
        if (!isfinite(d) || d < 0.0) {
            st = orion__fail(ORION_ERR_INVALID_ARG, "gptq: Hessian diagonal %lld is %g (want finite and >= 0)",
                             (long long)i, d);
            goto fail;
        }
        g->dead[i] = d == 0.0;
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = i; j < n; j++) {
            double v = h[i * n + j];
            if (!isfinite(v)) {
                st = orion__fail(ORION_ERR_INVALID_ARG, "gptq: Hessian entry (%lld, %lld) is not finite",
                                 (long long)i, (long long)j);
                goto fail;
            }
            if (g->dead[i] || g->dead[j]) v = i == j ? 1.0 : 0.0;
            orig[i * n + j] = v;
        }
        mean += orig[i * n + i];
    }
    mean /= (double)n;
    double lambda = p.damp * mean;
    int tries = 0;
    for (;;) {
        for (int64_t i = 0; i < n; i++) {
            memcpy(a + i * n + i, orig + i * n + i, (size_t)(n - i) * sizeof(double));
            a[i * n + i] += lambda;
        }
        if (cholesky_upper_reversed(a, n)) break;
        if (++tries >= MAX_DAMP_TRIES) {
            st = orion__fail(ORION_ERR_INVALID_ARG,
                             "gptq: Hessian (n_in %lld) is not positive definite even with damping %g "
                             "(mean diagonal %g)",
                             (long long)n, lambda, mean);
            goto fail;
        }
        const double next = lambda > 0.0 ? 10.0 * lambda : 1e-4 * mean;
        ORION_LOG_W("gptq: Hessian (n_in %lld) not positive definite with damping %g; retrying with %g",
                    (long long)n, lambda, next);
        lambda = next;
    }
    invert_upper(a, g->u, n);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(g->u[i * n + i]) || !(g->u[i * n + i] > 0.0)) {
            st = orion__fail(ORION_ERR_RANGE, "gptq: Hessian (n_in %lld) is too ill-conditioned to invert",
                             (long long)n);
            goto fail;
        }
    }
    g->damp_used = lambda;
    orion__free(a);
    *out = g;
    return ORION_OK;
fail:
    orion__free(a);
    orion__gptq_free(g);
    return st;
}

void orion__gptq_free(orion__gptq *g) {
    if (!g) return;
    orion__free(g->u);
    orion__free(g->dead);
    orion__free(g);
}

int64_t orion__gptq_n_in(const orion__gptq *g) {
    return g->n;
}

double orion__gptq_damping(const orion__gptq *g) {
    return g->damp_used;
}

/* ---- block parameters and levels ---------------------------------------------------- */

typedef struct block_params {
    uint16_t hd, hm;  /* as stored (f16 bits); hm only for q4_1 */
    float    d, m;    /* their values */
} block_params;

/* Parameters for the 32 values x: the block that the reference rule (or
 * the calibrated search with importance imp) writes, read back. */
static void choose_params(orion_type type, const float *x, const float *imp, const orion_kernels *k,
                          block_params *bp) {
    union {
        orion_block_q8_0 q8_0;
        orion_block_q4_0 q4_0;
        orion_block_q4_1 q4_1;
    } b;
    if (imp) orion__quantize_row_calibrated(type, x, &b, QK, imp);
    else k->quantize_row[type](x, &b, QK);
    switch (type) {
    case ORION_TYPE_Q8_0: bp->hd = b.q8_0.d, bp->hm = 0; break;
    case ORION_TYPE_Q4_0: bp->hd = b.q4_0.d, bp->hm = 0; break;
    default: bp->hd = b.q4_1.d, bp->hm = b.q4_1.m; break;
    }
    bp->d = orion__fp16_to_fp32(bp->hd);
    bp->m = orion__fp16_to_fp32(bp->hm);
}

/* Nearest integer to t in [lo, hi] (t may be NaN or infinite). */
static int clamp_round(double t, int lo, int hi) {
    if (!(t > (double)lo)) return lo;
    if (!(t < (double)hi)) return hi;
    return (int)floor(t + 0.5);
}

/* The stored code of value x (q4: 0..15; q8_0: -127..127) and its value as
 * dequantize_row computes it. */
static int quantize_value(orion_type type, const block_params *bp, double x, float *v) {
    int q;
    switch (type) {
    case ORION_TYPE_Q8_0:
        q = bp->d != 0.0f ? clamp_round(x / (double)bp->d, -127, 127) : 0;
        *v = (float)q * bp->d;
        return q;
    case ORION_TYPE_Q4_0:
        q = bp->d != 0.0f ? clamp_round(x / (double)bp->d, -8, 7) + 8 : 8;
        *v = (float)(q - 8) * bp->d;
        return q;
    default:
        q = bp->d != 0.0f ? clamp_round((x - (double)bp->m) / (double)bp->d, 0, 15) : 0;
        *v = (float)q * bp->d + bp->m;
        return q;
    }
}

static void store_block(orion_type type, const block_params *bp, const int *q, void *dst) {
    if (type == ORION_TYPE_Q8_0) {
        orion_block_q8_0 *b = dst;
        b->d = bp->hd;
        for (int j = 0; j < QK; j++) b->qs[j] = (int8_t)q[j];
        return;
    }
    uint8_t *qs;
    if (type == ORION_TYPE_Q4_0) {
        orion_block_q4_0 *b = dst;
        b->d = bp->hd;
        qs = b->qs;
    } else {
        orion_block_q4_1 *b = dst;
        b->d = bp->hd;
        b->m = bp->hm;
        qs = b->qs;
    }
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)(q[j] | (q[j + QK / 2] << 4));
}

/* ---- the column loop ------------------------------------------------------------------ */

static bool gptq_type_ok(orion_type type) {
    return type == ORION_TYPE_Q4_0 || type == ORION_TYPE_Q4_1 || type == ORION_TYPE_Q8_0;
}

/* Up to ROW_TILE rows; r: nt rows of n doubles (work). */
static orion_status quantize_tile(const orion__gptq *g, orion_type type, const float *w, int nt, int64_t row0,
                                  uint8_t *dst, size_t row_bytes, float *deq, double *r) {
    const int64_t n = g->n;
    const orion_kernels *k = orion__kernels();
    const size_t bb = orion_type_block_bytes(type);
    for (int t = 0; t < nt; t++)
        for (int64_t i = 0; i < n; i++) {
            const float x = w[(size_t)t * (size_t)n + (size_t)i];
            if (!isfinite(x))
                return orion__fail(ORION_ERR_INVALID_ARG, "gptq: weight (%lld, %lld) is not finite",
                                   (long long)(row0 + t), (long long)i);
            r[t * n + i] = g->dead[i] ? 0.0 : (double)x;
        }
    for (int64_t b0 = 0; b0 < n; b0 += QK) {
        block_params bp[ROW_TILE];
        int q[ROW_TILE][QK];
        float imp[QK];
        if (g->search_scale)
            for (int j = 0; j < QK; j++) {
                const double uu = g->u[(b0 + j) * n + b0 + j];
                imp[j] = g->dead[b0 + j] ? 0.0f : (float)(1.0 / (uu * uu));
            }
        for (int t = 0; t < nt; t++) {
            float xb[QK];
            for (int j = 0; j < QK; j++) xb[j] = (float)r[t * n + b0 + j];
            choose_params(type, xb, g->search_scale ? imp : NULL, k, &bp[t]);
            if (!isfinite(bp[t].d) || !isfinite(bp[t].m))
                return orion__fail(ORION_ERR_RANGE, "gptq: row %lld, block %lld: scale out of the f16 range",
                                   (long long)(row0 + t), (long long)(b0 / QK));
        }
        for (int64_t i = b0; i < b0 + QK; i++) {
            const double *ui = g->u + i * n;
            const double uii = ui[i];
            for (int t = 0; t < nt; t++) {
                double *rt = r + t * n;
                float v;
                q[t][i - b0] = quantize_value(type, &bp[t], rt[i], &v);
                if (deq) deq[(size_t)t * (size_t)n + (size_t)i] = v;
                const double e = (rt[i] - (double)v) / uii;
                rt[i] = (double)v;
                if (e == 0.0) continue;
                for (int64_t kk = i + 1; kk < n; kk++) rt[kk] -= e * ui[kk];
            }
        }
        for (int t = 0; t < nt; t++)
            store_block(type, &bp[t], q[t], dst + (size_t)t * row_bytes + (size_t)(b0 / QK) * bb);
    }
    return ORION_OK;
}

orion_status orion__gptq_quantize_rows(const orion__gptq *g, orion_type type, const float *w, int64_t n_rows,
                                       void *dst, float *deq) {
    if (!g || (n_rows > 0 && (!w || !dst)) || n_rows < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "gptq: NULL argument or negative row count");
    if (!gptq_type_ok(type))
        return orion__fail(ORION_ERR_UNSUPPORTED, "gptq: type %s is not supported (q4_0, q4_1, q8_0 are)",
                           orion_type_name(type));
    const int64_t n = g->n;
    if (n % QK != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "gptq: n_in %lld is not a multiple of the block size %d",
                           (long long)n, QK);
    if (n_rows == 0) return ORION_OK;
    double *r = orion__malloc((size_t)ROW_TILE * (size_t)n * sizeof(double));
    if (!r) return orion__fail(ORION_ERR_NOMEM, "gptq: out of memory for %d row buffers", ROW_TILE);
    const size_t row_bytes = orion_type_row_bytes(type, n);
    orion_status st = ORION_OK;
    for (int64_t r0 = 0; r0 < n_rows && st == ORION_OK; r0 += ROW_TILE) {
        const int nt = (int)ORION_MIN((int64_t)ROW_TILE, n_rows - r0);
        st = quantize_tile(g, type, w + (size_t)r0 * (size_t)n, nt, r0, (uint8_t *)dst + (size_t)r0 * row_bytes,
                           row_bytes, deq ? deq + (size_t)r0 * (size_t)n : NULL, r);
    }
    orion__free(r);
    return st;
}

/* ---- the whole matrix on a pool ---------------------------------------------------------- */

typedef struct gptq_task {
    const orion__gptq *g;
    orion_type         type;
    const float       *w;
    int64_t            n_rows;
    uint8_t           *dst;
    float             *deq;
    orion_status      *status; /* per thread */
    char             (*msg)[256];
} gptq_task;

static void gptq_rows_task(void *arg, int ith, int nth) {
    gptq_task *t = arg;
    const int64_t n = t->g->n;
    const size_t row_bytes = orion_type_row_bytes(t->type, n);
    t->status[ith] = ORION_OK;
    /* tiles of ROW_TILE rows, dealt round-robin */
    for (int64_t r0 = (int64_t)ith * ROW_TILE; r0 < t->n_rows; r0 += (int64_t)nth * ROW_TILE) {
        const int64_t nr = ORION_MIN((int64_t)ROW_TILE, t->n_rows - r0);
        orion_status st = orion__gptq_quantize_rows(t->g, t->type, t->w + (size_t)r0 * (size_t)n, nr,
                                                    t->dst + (size_t)r0 * row_bytes,
                                                    t->deq ? t->deq + (size_t)r0 * (size_t)n : NULL);
        if (st != ORION_OK) {
            t->status[ith] = st;
            snprintf(t->msg[ith], sizeof t->msg[ith], "%s", orion_last_error());
            return;
        }
    }
}

orion_status orion__quantize_gptq(orion_type type, const float *w, int64_t n_rows, int64_t n_in,
                                  const double *h, const orion__gptq_params *params, orion_threadpool *pool,
                                  void *dst, float *deq) {
    if (!gptq_type_ok(type))
        return orion__fail(ORION_ERR_UNSUPPORTED, "gptq: type %s is not supported (q4_0, q4_1, q8_0 are)",
                           orion_type_name(type));
    if (n_in <= 0 || n_in % QK != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "gptq: n_in %lld is not a positive multiple of the block size %d",
                           (long long)n_in, QK);
    if (n_rows < 0 || (n_rows > 0 && (!w || !dst)))
        return orion__fail(ORION_ERR_INVALID_ARG, "gptq: NULL buffer or negative row count");
    orion__gptq *g = NULL;
    orion_status st = orion__gptq_init(h, n_in, params, &g);
    if (st != ORION_OK) return st;
    const int nth = pool ? orion_threadpool_n_threads(pool) : 1;
    orion_status *status = orion__calloc((size_t)nth, sizeof *status);
    char (*msg)[256] = orion__calloc((size_t)nth, sizeof *msg);
    if (!status || !msg) {
        st = orion__fail(ORION_ERR_NOMEM, "gptq: out of memory");
        goto done;
    }
    gptq_task t = {g, type, w, n_rows, dst, deq, status, msg};
    orion_threadpool_run(pool, gptq_rows_task, &t);
    for (int i = 0; i < nth && st == ORION_OK; i++)
        if (status[i] != ORION_OK) st = orion__fail(status[i], "%s", msg[i]);
done:
    orion__free(status);
    orion__free(msg);
    orion__gptq_free(g);
    return st;
}

/* ---- measuring -------------------------------------------------------------------------- */

double orion__gptq_output_error(const double *h, int64_t n, const float *w, const float *q, double *ref) {
    /* d^T H d = sum_i H_ii d_i^2 + 2 sum_{i<j} H_ij d_i d_j (d = w - q, or w),
     * upper triangle only, both forms in one pass over H; four partial
     * sums per row of H (the build forbids reassociation otherwise) */
    double diag = 0.0, off = 0.0, rdiag = 0.0, roff = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double di = (double)w[i] - (q ? (double)q[i] : 0.0), wi = (double)w[i];
        const double *hi = h + i * n;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0;
        int64_t j = i + 1;
        if (q) {
            for (; j + 4 <= n; j += 4) {
                s0 += hi[j] * ((double)w[j] - (double)q[j]);
                s1 += hi[j + 1] * ((double)w[j + 1] - (double)q[j + 1]);
                s2 += hi[j + 2] * ((double)w[j + 2] - (double)q[j + 2]);
                s3 += hi[j + 3] * ((double)w[j + 3] - (double)q[j + 3]);
                t0 += hi[j] * (double)w[j];
                t1 += hi[j + 1] * (double)w[j + 1];
                t2 += hi[j + 2] * (double)w[j + 2];
                t3 += hi[j + 3] * (double)w[j + 3];
            }
            for (; j < n; j++) s0 += hi[j] * ((double)w[j] - (double)q[j]), t0 += hi[j] * (double)w[j];
        } else {
            for (; j + 4 <= n; j += 4) {
                t0 += hi[j] * (double)w[j];
                t1 += hi[j + 1] * (double)w[j + 1];
                t2 += hi[j + 2] * (double)w[j + 2];
                t3 += hi[j + 3] * (double)w[j + 3];
            }
            for (; j < n; j++) t0 += hi[j] * (double)w[j];
            s0 = t0, s1 = t1, s2 = t2, s3 = t3;
        }
        diag += hi[i] * di * di;
        off += di * ((s0 + s1) + (s2 + s3));
        rdiag += hi[i] * wi * wi;
        roff += wi * ((t0 + t1) + (t2 + t3));
    }
    if (ref) *ref = rdiag + 2.0 * roff;
    return diag + 2.0 * off;
}
