/*
 * matmul.c — orion_matmul: y[b][o] = sum_i W[o][i] * x[b][i], threaded on
 * the pool by output rows, using the kernel table.
 *
 * Paths (chosen per call from the batch size and the table):
 *
 *  - Matrix-vector (n_batch <= MV_MAX_BATCH, or no GEMM tiles in the table).
 *    Quantized W: x is quantized once to q8a on the calling thread; each
 *    thread then takes a contiguous range of output rows (mv_task). With
 *    one batch row, the range is one dot_q8a_rows call (the kernel picks
 *    its order and prefetching); with more, groups of MV_BATCH_ROWS rows
 *    are each run with every batch row, so weights are read from memory
 *    once and reused from L1 (dot_q8a per row when the table has no
 *    dot_q8a_rows). Float W: a fixed range of rows per thread, with
 *    dot_f32.
 *
 *  - Float GEMM (f32, f16, bf16 W). Phase 1 (split by batch groups): pack
 *    x batch-minor, [n_in][16] floats per group of 16 rows. Phase 2 (split
 *    by outputs): tiles of ORION_GEMM_F_MO outputs times ORION_GEMM_F_NB
 *    batch rows (6 x 16: 12 ymm accumulators). Each thread loops
 *        for batch chunk of MC_F rows (W is read once per chunk):
 *          for output block of nc rows (y block of MC_F x nc floats, L2):
 *            for k chunk of KC_F (packed x of the chunk: 256 KiB, L2):
 *              for each 6-output panel of the block:
 *                copy/convert the panel to f32 (6 x KC_F, 12 KiB, L1)
 *                for each 16-row group: tile, adding into the y block
 *            copy the y block to y
 *    W is used in its stored row-major order: the tile broadcasts weights
 *    and keeps batch rows in vector lanes, so only the small activation
 *    matrix is ever transposed. The y block is a separate buffer because y's
 *    row stride (n_out floats, often a power of two) maps every batch row of
 *    a tile to the same cache sets. The first tile of each panel prefetches
 *    the next panel as it runs (measured on Zen 3, batch 32: +25%).
 *
 *  - Float GEMM split by batch rows (PATH_GEMM_F_ROWS: at least
 *    ROWS_MIN_BATCH rows per thread and W of at most ROWS_MAX_W_BYTES as
 *    f32, so it sits in L3: an encoder's 32 x 128 tokens times its 384 x 384,
 *    384 x 1536 and 1536 x 384 matrices). One phase: each thread takes a
 *    range of batch rows and computes every output for them:
 *        for batch chunk of MC_F rows:
 *          pack the chunk, [group][n_in][16] (per-thread buffer, L2)
 *          for output block of nc rows (y block as above):
 *            for k chunk (n_in in equal chunks of at most KC_F):
 *              for each 6-output panel: f32 W is read in place (its 6 rows
 *              x kc come to L1 with the first group and stay for the
 *              others), f16/bf16 are converted to the panel buffer
 *                for each 16-row group: tile
 *    Compared with the by-outputs path at M = 4096, it drops the shared
 *    packed copy of x (a round trip through DRAM: 6 to 24 MiB written, then
 *    read by every thread, about 13% of the time) and the weight copies;
 *    measured on Zen 3 with 2 threads: 70-80% -> 77-82% of the FMA peak.
 *
 *  - Several quantized weights over one input (orion__matmul_multi, at
 *    matrix-vector batch sizes: a decoder's q/k/v, or gate/up): x is
 *    quantized once and the rows of all the weights are split over the
 *    threads in one pool run, by bytes, so the small k and v matrices do
 *    not each cost a quantization and a hand-off to the pool.
 *
 *  - Quantized GEMM (q8_0, q4_0, q4_1 W). Phase 1 (split by batch groups):
 *    quantize x to q8a (once per call) and pack it into orion_gemm_qx
 *    blocks, 8 batch rows interleaved per block. Phase 2: work items of
 *    (batch chunk of MBG_Q groups) x (Q_UNIT outputs), taken in turn from a
 *    shared counter; per item, for k chunk of KC_Q blocks, for each 4-output
 *    panel: unpack the panel's weights to bytes (orion_gemm_qw, 64 x 160
 *    bytes, L1) and run the int8 tile over every 8-row group of the chunk
 *    (their packed activations, up to 16 x 64 x 352 bytes, stay in L2); the
 *    first tile prefetches the next panel. Only 2 passes over y for
 *    n_in = 4096, so the tiles add into y directly.
 *
 * Dynamic work items (a shared atomic counter; the rows path and the int8
 * phase 2): the machine is shared, and with a static split a thread that is
 * descheduled for a while made the others wait at the end of every call.
 *
 * Output ranges are multiples of 16 floats (a cache line) and of the tile
 * height, and batch ranges whole rows, so threads never write the same cache
 * line of y (when y is 64-byte aligned and n_out a multiple of 16).
 *
 * Scratch: one block, from the arena (rewound on return) or the counting
 * heap, laid out as [shared | per-thread x n_threads]; plan() computes it
 * for both orion_matmul and orion_matmul_scratch_bytes.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* matrix-vector: the weight row this far ahead is requested before each dot
 * product (with the quantized dots close to compute-bound, the hardware
 * prefetcher alone left the DRAM stream about 15% short on Zen 3) */
#define MV_PREFETCH_ROWS 2
#define MV_BATCH_ROWS    8 /* matrix-vector, n_batch > 1: rows per dot_q8a_rows call (in L1) */
#define MV_MAX_ROWS_PER_CALL (1 << 20) /* matrix-vector, n_batch == 1 */
#define MV_MAX_BATCH 3    /* up to this many batch rows: matrix-vector path */
#define KC_F         512  /* float GEMM: k chunk */
#define MC_F         128  /* float GEMM: batch chunk (multiple of ORION_GEMM_F_NB) */
#define YBLOCK_F     (24 * 1024) /* float GEMM: floats of the y block kept in L2 */
#define YPAD_F       16   /* float GEMM: y block row padding (no 4 KiB strides) */
#define ROWS_MIN_BATCH 64 /* float GEMM split by batch rows: at least this many rows per thread ... */
#define ROWS_MAX_W_BYTES (16.0 * 1024 * 1024) /* ... and at most this many bytes of W as f32 (L3) */
#define KC_Q         64   /* int8 GEMM: k chunk, in blocks of 32 */
#define MBG_Q        16   /* int8 GEMM: batch chunk, in groups of ORION_GEMM_Q_NB */
#define Q_UNIT       64   /* int8 GEMM: outputs per work item (multiple of 16 and of ORION_GEMM_Q_MO) */
#define SCRATCH_ALIGN 64

typedef enum mm_path { PATH_MV_Q, PATH_MV_F, PATH_GEMM_F, PATH_GEMM_F_ROWS, PATH_GEMM_Q } mm_path;

typedef struct mm_plan {
    mm_path path;
    size_t  shared_bytes;  /* q8a activations (MV_Q) or packed activations (GEMM_Q) */
    size_t  thread_bytes;  /* per-thread buffers, a multiple of SCRATCH_ALIGN */
    size_t  total_bytes;
    int64_t nc;            /* GEMM_F: outputs per y block */
    int64_t kc;            /* GEMM_F: k chunk (n_in split into equal chunks of at most KC_F) */
    int64_t mc;            /* GEMM_F: batch rows per chunk */
} mm_plan;

typedef struct mm_task {
    const orion_kernels *k;
    mm_plan              plan;
    orion_type           wtype;
    const void          *w;
    size_t               row_bytes;  /* bytes of one W row */
    int64_t              n_out, n_in, n_blocks, n_batch;
    const float         *x;
    float               *y;
    unsigned char       *shared;
    unsigned char       *per_thread;
    atomic_llong         next;       /* next work item (dynamic paths), 0 before each run */
} mm_task;

static size_t round_up(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

/* Sets *out to a * b * c, false on overflow. */
static bool mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t ab;
    return orion__mul_ok(a, b, &ab) && orion__mul_ok(ab, c, out);
}

static bool have_gemm_f(const orion_kernels *k, orion_type t) {
    return k->gemm_f_tile && k->gemm_f_pack_x && k->gemm_f_load_w[t];
}

static bool have_gemm_q(const orion_kernels *k, orion_type t) {
    return k->quantize_q8a && k->gemm_q_pack_x && k->gemm_q_pack_w[t] && k->gemm_q_tile[t];
}

/* The k chunk: n_in in the fewest chunks of at most KC_F, of equal length
 * rounded up to 8 (1536 -> 3 x 512, 384 -> 384, 600 -> 2 x 304). */
static int64_t balanced_kc(int64_t n_in) {
    const int64_t n_chunks = (n_in + KC_F - 1) / KC_F;
    return ORION_MIN(n_in, ((n_in + n_chunks - 1) / n_chunks + 7) / 8 * 8);
}

/* Chooses the path and the scratch layout. Fails (with a message) when the
 * table cannot run this type (ORION_ERR_UNSUPPORTED) or the sizes overflow
 * (ORION_ERR_RANGE). */
static orion_status plan(const orion_kernels *k, orion_type t, bool quantized, int64_t n_out, int64_t n_in,
                         int64_t n_batch, int n_threads, mm_plan *p) {
    memset(p, 0, sizeof *p);
    const size_t nb = (size_t)(n_in / ORION_QK);
    const size_t batch = (size_t)n_batch;
    bool ok = true;
    if (quantized) {
        const bool mv_ok = k->quantize_q8a && k->dot_q8a[t];
        const bool gemm_ok = have_gemm_q(k, t);
        if (!mv_ok && !gemm_ok)
            return orion__fail(ORION_ERR_UNSUPPORTED, "orion_matmul: no %s kernels in the '%s' table",
                               orion_type_name(t), k->name);
        if (mv_ok && (batch <= MV_MAX_BATCH || !gemm_ok)) {
            p->path = PATH_MV_Q;
            ok = mul3(batch, nb, sizeof(orion_block_q8a), &p->shared_bytes);
        } else {
            p->path = PATH_GEMM_Q;
            const size_t groups = (batch + ORION_GEMM_Q_NB - 1) / ORION_GEMM_Q_NB;
            size_t q8a_rows = 0, panel;
            ok = mul3(groups, nb, sizeof(orion_gemm_qx), &p->shared_bytes) &&
                 mul3(ORION_GEMM_Q_NB, nb, sizeof(orion_block_q8a), &q8a_rows);
            panel = (size_t)ORION_MIN((size_t)KC_Q, nb) * sizeof(orion_gemm_qw);
            p->thread_bytes = round_up(ORION_MAX(q8a_rows, panel), SCRATCH_ALIGN);
        }
    } else {
        const bool mv_ok = k->dot_f32[t] != NULL;
        const bool gemm_ok = have_gemm_f(k, t);
        if (!mv_ok && !gemm_ok)
            return orion__fail(ORION_ERR_UNSUPPORTED, "orion_matmul: no %s kernels in the '%s' table",
                               orion_type_name(t), k->name);
        if (mv_ok && (batch <= MV_MAX_BATCH || !gemm_ok)) {
            p->path = PATH_MV_F;
        } else if (n_batch >= ROWS_MIN_BATCH * (int64_t)n_threads &&
                   (double)n_out * (double)n_in * sizeof(float) <= ROWS_MAX_W_BYTES) {
            p->path = PATH_GEMM_F_ROWS;
            p->kc = balanced_kc(n_in);
            p->mc = MC_F;
            p->nc = (int64_t)ORION_MAX((size_t)48, YBLOCK_F / ((size_t)p->mc * 48) * 48);
            size_t xbuf = 0;
            ok = mul3((size_t)p->mc, (size_t)n_in, sizeof(float), &xbuf);
            p->thread_bytes = round_up((ORION_GEMM_F_MO * (size_t)p->kc + (size_t)p->mc * (size_t)(p->nc + YPAD_F)) *
                                           sizeof(float), SCRATCH_ALIGN) + round_up(xbuf, SCRATCH_ALIGN);
        } else {
            p->path = PATH_GEMM_F;
            const size_t groups = (batch + ORION_GEMM_F_NB - 1) / ORION_GEMM_F_NB;
            ok = mul3(groups * ORION_GEMM_F_NB, (size_t)n_in, sizeof(float), &p->shared_bytes);
            p->kc = balanced_kc(n_in);
            p->mc = MC_F;
            const size_t kc = (size_t)p->kc;
            const size_t mc = ORION_MIN((size_t)p->mc, batch);
            p->nc = (int64_t)ORION_MAX((size_t)48, YBLOCK_F / (mc * 48) * 48);
            p->thread_bytes = round_up((ORION_GEMM_F_MO * kc + mc * (size_t)(p->nc + YPAD_F)) * sizeof(float),
                                       SCRATCH_ALIGN);
        }
    }
    size_t threads_total = 0;
    ok = ok && orion__mul_ok(p->thread_bytes, (size_t)n_threads, &threads_total);
    p->shared_bytes = round_up(p->shared_bytes, SCRATCH_ALIGN);
    ok = ok && orion__add_ok(p->shared_bytes, threads_total, &p->total_bytes);
    if (!ok) return orion__fail(ORION_ERR_RANGE, "orion_matmul: scratch size overflows");
    return ORION_OK;
}

/* Output rows [*begin, *end) of thread ith: whole units of `unit` rows. */
static void split_rows(int64_t n, int64_t unit, int ith, int nth, int64_t *begin, int64_t *end) {
    const int64_t units = (n + unit - 1) / unit;
    *begin = ORION_MIN(n, units * ith / nth * unit);
    *end = ORION_MIN(n, units * (ith + 1) / nth * unit);
}

/* The weight panel after rows [o, o + MO) of the block [j0, j1) at k chunk
 * [k0, k0 + kc) (in bytes of a row: off, len): the block's next rows, else
 * its first rows at the next k chunk (up to kc_max long), else none. The
 * first tile of each panel prefetches it while it computes. */
static bool next_panel(const mm_task *t, int64_t o, int64_t mo, int64_t j0, int64_t j1, size_t off, size_t len,
                       size_t kc_max, orion_gemm_prefetch *pf) {
    pf->stride = t->row_bytes;
    if (o + mo < j1) {
        pf->base = (const char *)t->w + (size_t)(o + mo) * t->row_bytes + off;
        pf->bytes = len;
        pf->n_rows = (int)ORION_MIN(mo, j1 - o - mo);
        return true;
    }
    if (off + len < t->row_bytes) {
        pf->base = (const char *)t->w + (size_t)j0 * t->row_bytes + off + len;
        pf->bytes = ORION_MIN(kc_max, t->row_bytes - off - len);
        pf->n_rows = (int)ORION_MIN(mo, j1 - j0);
        return true;
    }
    return false;
}

/* ---- matrix-vector -------------------------------------------------------- */

/* Rows [o0, o1) of y = W x for n_batch quantized activation rows xq. */
static void mv_q_range(const orion_kernels *k, orion_type wtype, const void *w, size_t rb, int64_t n_in,
                       int64_t n_out, int64_t n_batch, const orion_block_q8a *xq, float *y, int64_t o0, int64_t o1) {
    const orion_dot_q8a_fn dot = k->dot_q8a[wtype];
    const orion_dot_q8a_rows_fn rows = k->dot_q8a_rows[wtype];
    const int64_t n_blocks = n_in / ORION_QK;
    if (rows && n_batch == 1) {
        /* the whole range in one call (in pieces that fit an int): the
         * kernel streams it */
        for (int64_t o = o0; o < o1; o += MV_MAX_ROWS_PER_CALL) {
            const int nr = (int)ORION_MIN((int64_t)MV_MAX_ROWS_PER_CALL, o1 - o);
            rows(n_in, (const char *)w + (size_t)o * rb, rb, nr, xq, y + o);
        }
        return;
    }
    if (rows) {
        /* groups of MV_BATCH_ROWS rows, each with every batch row while
         * the group is in L1 */
        for (int64_t o = o0; o < o1; o += MV_BATCH_ROWS) {
            const int nr = (int)ORION_MIN((int64_t)MV_BATCH_ROWS, o1 - o);
            const char *grp = (const char *)w + (size_t)o * rb;
            float out[MV_BATCH_ROWS];
            for (int64_t b = 0; b < n_batch; b++) {
                rows(n_in, grp, rb, nr, xq + b * n_blocks, out);
                for (int r = 0; r < nr; r++) y[b * n_out + o + r] = out[r];
            }
        }
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        const void *row = (const char *)w + (size_t)o * rb;
        if (o + MV_PREFETCH_ROWS < o1) orion__prefetch_lines((const char *)row + MV_PREFETCH_ROWS * rb, rb);
        for (int64_t b = 0; b < n_batch; b++) y[b * n_out + o] = dot(n_in, row, xq + b * n_blocks);
    }
}

/* ---- quantized matrix-vector over one or several weights ------------------- */

#define MV_MAX_PARTS 8

/* The quantized matrix-vector path, for one weight (orion_matmul) or
 * several over the same input (orion__matmul_multi). Thread ith takes the
 * 16-row units whose first byte, counted over all the parts in order, falls
 * in its share [ith, ith + 1) * total / nth: one contiguous stream per
 * thread (and per part it touches). Handing out small chunks from a shared
 * counter instead was measured 10% slower at 2 threads on Zen 3 (the
 * threads' streams interleave and restart every chunk). Letting a thread
 * that is done steal 16-row units from the back of the other's range cut
 * the time spent waiting from 5.5% to 2.3% of the samples but not the time
 * per token (the product is memory-bound), so it was not kept. */
typedef struct mv_task {
    const orion_kernels      *k;
    const orion__matmul_part *parts;
    int                       n_parts;
    int64_t                   n_in, n_batch;
    const orion_block_q8a    *xq;
    double                    total;  /* bytes of all the weights */
} mv_task;

static void mv_task_init(mv_task *t, const orion_kernels *k, const orion__matmul_part *parts, int n_parts,
                         int64_t n_in, int64_t n_batch, const orion_block_q8a *xq) {
    t->k = k, t->parts = parts, t->n_parts = n_parts, t->n_in = n_in, t->n_batch = n_batch, t->xq = xq;
    t->total = 0;
    for (int i = 0; i < n_parts; i++)
        t->total += (double)parts[i].n_out * (double)orion_type_row_bytes(parts[i].wtype, n_in);
}

static void task_mv_q(void *arg, int ith, int nth) {
    const mv_task *t = arg;
    const double lo = t->total * ith / nth, hi = t->total * (ith + 1) / nth;
    double at = 0;
    for (int i = 0; i < t->n_parts && at < hi; i++) {
        const orion__matmul_part *p = &t->parts[i];
        const size_t rb = orion_type_row_bytes(p->wtype, t->n_in);
        const double unit = 16.0 * (double)rb, bytes = (double)p->n_out * (double)rb;
        if (at + bytes > lo) {
            /* units [ceil((lo - at) / unit), ceil((hi - at) / unit)): the
             * same expressions for neighbouring threads, so no gap or overlap */
            const int64_t units = (p->n_out + 15) / 16;
            int64_t u0 = lo <= at ? 0 : (int64_t)ceil((lo - at) / unit);
            int64_t u1 = (int64_t)ceil((hi - at) / unit);
            u0 = ORION_MIN(u0, units), u1 = ORION_MIN(ORION_MAX(u1, u0), units);
            if (u1 > u0)
                mv_q_range(t->k, p->wtype, p->w, rb, t->n_in, p->n_out, t->n_batch, t->xq, p->y, u0 * 16,
                           ORION_MIN(u1 * 16, p->n_out));
        }
        at += bytes;
    }
}

static void task_mv_f(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    const orion_dot_f32_fn dot = t->k->dot_f32[t->wtype];
    int64_t o0, o1;
    split_rows(t->n_out, 16, ith, nth, &o0, &o1);
    for (int64_t o = o0; o < o1; o++) {
        const void *row = (const char *)t->w + (size_t)o * t->row_bytes;
        if (o + MV_PREFETCH_ROWS < o1) orion__prefetch_lines((const char *)row + MV_PREFETCH_ROWS * t->row_bytes, t->row_bytes);
        for (int64_t b = 0; b < t->n_batch; b++)
            t->y[b * t->n_out + o] = dot(t->n_in, row, t->x + b * t->n_in);
    }
}

/* ---- float GEMM ----------------------------------------------------------- */

/* Phase 1: pack x batch-minor, split by batch groups of ORION_GEMM_F_NB:
 * group g is [n_in][ORION_GEMM_F_NB] floats at shared + g * NB * n_in. */
static void task_pack_f(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    float *xp = (float *)t->shared;
    const int64_t n_in = t->n_in;
    const int64_t groups = (t->n_batch + ORION_GEMM_F_NB - 1) / ORION_GEMM_F_NB;
    for (int64_t g = groups * ith / nth; g < groups * (ith + 1) / nth; g++) {
        const int nbv = (int)ORION_MIN((int64_t)ORION_GEMM_F_NB, t->n_batch - g * ORION_GEMM_F_NB);
        for (int64_t k0 = 0; k0 < n_in; k0 += KC_F)
            t->k->gemm_f_pack_x(t->x + g * ORION_GEMM_F_NB * n_in + k0, n_in, nbv,
                                ORION_MIN((int64_t)KC_F, n_in - k0), xp + (g * n_in + k0) * ORION_GEMM_F_NB);
    }
}

/* Phase 2: the float tiles, split by outputs. Loops, per thread:
 *   batch chunk of MC_F rows (W is read once per chunk)
 *     output block of nc rows: the tiles accumulate into a contiguous
 *     buffer of chunk x nc floats (96 KiB, in L2) rather than into y, whose
 *     row stride (n_out floats, often a power of two) would put every batch
 *     row in the same cache sets; it is copied to y after the k loop
 *       k chunk of KC_F (the packed x of the chunk, MC_F x KC_F floats, in L2)
 *         6-row weight panel, copied (and converted) to a contiguous buffer
 *         in L1; the next panel is prefetched
 *           every 16-row batch group of the chunk: one tile */
static void task_gemm_f(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    const orion_kernels *k = t->k;
    const int64_t n_in = t->n_in, n_out = t->n_out, nc = t->plan.nc, ldb = nc + YPAD_F;
    const float *xp = (const float *)t->shared;
    float *wbuf = (float *)(t->per_thread + (size_t)ith * t->plan.thread_bytes);
    const int64_t KC = t->plan.kc, MC = t->plan.mc;
    float *ybuf = wbuf + ORION_GEMM_F_MO * KC;
    const size_t elem = t->row_bytes / (size_t)n_in;
    int64_t o0, o1;
    split_rows(n_out, 48, ith, nth, &o0, &o1); /* 48: multiple of 6 rows and of 16 floats */
    if (o0 >= o1) return;

    for (int64_t b0 = 0; b0 < t->n_batch; b0 += MC) {
        const int64_t mc = ORION_MIN(MC, t->n_batch - b0);
        const int64_t g0 = b0 / ORION_GEMM_F_NB, g1 = (b0 + mc + ORION_GEMM_F_NB - 1) / ORION_GEMM_F_NB;
        for (int64_t j0 = o0; j0 < o1; j0 += nc) {
            const int64_t j1 = ORION_MIN(o1, j0 + nc);
            for (int64_t k0 = 0; k0 < n_in; k0 += KC) {
                const int64_t kc = ORION_MIN(KC, n_in - k0);
                for (int64_t o = j0; o < j1; o += ORION_GEMM_F_MO) {
                    const int no = (int)ORION_MIN((int64_t)ORION_GEMM_F_MO, j1 - o);
                    orion_gemm_prefetch pf;
                    const bool has_pf = next_panel(t, o, ORION_GEMM_F_MO, j0, j1, (size_t)k0 * elem, (size_t)kc * elem,
                                                   (size_t)KC * elem, &pf);
                    k->gemm_f_load_w[t->wtype]((const char *)t->w + (size_t)o * t->row_bytes, n_in, no, k0, kc, wbuf);
                    for (int64_t g = g0; g < g1; g++) {
                        const int64_t r = g * ORION_GEMM_F_NB - b0; /* first row of the group in the chunk */
                        const int nbv = (int)ORION_MIN((int64_t)ORION_GEMM_F_NB, mc - r);
                        k->gemm_f_tile(kc, wbuf, kc, no, xp + (g * n_in + k0) * ORION_GEMM_F_NB, nbv,
                                       ybuf + r * ldb + (o - j0), ldb, k0 > 0, g == g0 && has_pf ? &pf : NULL);
                    }
                }
            }
            for (int64_t r = 0; r < mc; r++)
                memcpy(t->y + (b0 + r) * n_out + j0, ybuf + r * ldb, sizeof(float) * (size_t)(j1 - j0));
        }
    }
}

/* The float GEMM split by batch rows, for many rows times a matrix that fits
 * in L3 (an encoder's 4096 tokens times 384 x 1536 weights): each thread
 * takes a range of batch rows and computes all outputs for them, so each
 * packs only its own rows, into a per-thread buffer that stays in L2 (the
 * shared packed copy of the by-outputs path made a round trip through DRAM,
 * about 13% of the time at these shapes), and no weights are copied for
 * f32: the tile reads W's rows in place (6 rows x kc, from L2/L3 for the
 * first 16-row group, from L1 for the next ones). Loops, per thread:
 *   batch chunk of mc rows: pack them, [group][n_in][16] (mc x n_in floats)
 *     output block of nc rows (y block of mc x nc floats, see task_gemm_f)
 *       k chunk of kc
 *         6-row weight panel (converted to f32 in L1 for f16/bf16)
 *           every 16-row group of the chunk: one tile */
static void task_gemm_f_rows(void *arg, int ith, int nth) {
    mm_task *t = arg;
    (void)nth;
    const orion_kernels *k = t->k;
    const int64_t n_in = t->n_in, n_out = t->n_out, nc = t->plan.nc, ldb = nc + YPAD_F;
    const int64_t KC = t->plan.kc, MC = t->plan.mc;
    float *wbuf = (float *)(t->per_thread + (size_t)ith * t->plan.thread_bytes);
    float *ybuf = wbuf + ORION_GEMM_F_MO * KC;
    float *xbuf = (float *)((unsigned char *)wbuf +
                            round_up((ORION_GEMM_F_MO * (size_t)KC + (size_t)MC * (size_t)ldb) * sizeof(float),
                                     SCRATCH_ALIGN));
    const size_t elem = t->row_bytes / (size_t)n_in;
    const bool direct = t->wtype == ORION_TYPE_F32; /* the tile reads W in place */

    /* chunks are taken in turn from a shared counter: on a shared machine a
     * thread that is descheduled for a while leaves its chunks to the others
     * instead of making them wait at the end */
    for (;;) {
        const int64_t b0 = (int64_t)atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed) * MC;
        if (b0 >= t->n_batch) break;
        const int64_t mc = ORION_MIN(MC, t->n_batch - b0);
        const int64_t ng = (mc + ORION_GEMM_F_NB - 1) / ORION_GEMM_F_NB;
        for (int64_t g = 0; g < ng; g++) {
            const int nbv = (int)ORION_MIN((int64_t)ORION_GEMM_F_NB, mc - g * ORION_GEMM_F_NB);
            k->gemm_f_pack_x(t->x + (b0 + g * ORION_GEMM_F_NB) * n_in, n_in, nbv, n_in,
                             xbuf + g * n_in * ORION_GEMM_F_NB);
        }
        for (int64_t j0 = 0; j0 < n_out; j0 += nc) {
            const int64_t j1 = ORION_MIN(n_out, j0 + nc);
            for (int64_t k0 = 0; k0 < n_in; k0 += KC) {
                const int64_t kc = ORION_MIN(KC, n_in - k0);
                for (int64_t o = j0; o < j1; o += ORION_GEMM_F_MO) {
                    const int no = (int)ORION_MIN((int64_t)ORION_GEMM_F_MO, j1 - o);
                    orion_gemm_prefetch pf;
                    const bool has_pf = next_panel(t, o, ORION_GEMM_F_MO, j0, j1, (size_t)k0 * elem, (size_t)kc * elem,
                                                   (size_t)KC * elem, &pf);
                    const float *wp = wbuf;
                    int64_t ldw = kc;
                    if (direct) {
                        wp = (const float *)t->w + o * n_in + k0;
                        ldw = n_in;
                    } else {
                        k->gemm_f_load_w[t->wtype]((const char *)t->w + (size_t)o * t->row_bytes, n_in, no, k0, kc,
                                                   wbuf);
                    }
                    for (int64_t g = 0; g < ng; g++) {
                        const int64_t r = g * ORION_GEMM_F_NB;
                        const int nbv = (int)ORION_MIN((int64_t)ORION_GEMM_F_NB, mc - r);
                        k->gemm_f_tile(kc, wp, ldw, no, xbuf + (g * n_in + k0) * ORION_GEMM_F_NB, nbv,
                                       ybuf + r * ldb + (o - j0), ldb, k0 > 0, g == 0 && has_pf ? &pf : NULL);
                    }
                }
            }
            for (int64_t r = 0; r < mc; r++)
                memcpy(t->y + (b0 + r) * n_out + j0, ybuf + r * ldb, sizeof(float) * (size_t)(j1 - j0));
        }
    }
}

/* ---- quantized GEMM ------------------------------------------------------- */

/* Phase 1: quantize and pack the activations, split by batch groups. */
static void task_pack_q(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    const orion_kernels *k = t->k;
    orion_block_q8a *rows = (orion_block_q8a *)(t->per_thread + (size_t)ith * t->plan.thread_bytes);
    orion_gemm_qx *xp = (orion_gemm_qx *)t->shared;
    const int64_t groups = (t->n_batch + ORION_GEMM_Q_NB - 1) / ORION_GEMM_Q_NB;
    for (int64_t g = groups * ith / nth; g < groups * (ith + 1) / nth; g++) {
        const int nbv = (int)ORION_MIN((int64_t)ORION_GEMM_Q_NB, t->n_batch - g * ORION_GEMM_Q_NB);
        for (int r = 0; r < nbv; r++)
            k->quantize_q8a(t->x + (g * ORION_GEMM_Q_NB + r) * t->n_in, rows + r * t->n_blocks, t->n_in);
        k->gemm_q_pack_x(rows, t->n_blocks, nbv, t->n_blocks, xp + g * t->n_blocks);
    }
}

/* Phase 2: the int8 tiles. Work items of (batch chunk of MBG_Q groups) x
 * (Q_UNIT outputs), chunk-major, taken in turn from a shared counter (see
 * task_gemm_f_rows); an item covers its outputs for all k. */
static void task_gemm_q(void *arg, int ith, int nth) {
    mm_task *t = arg;
    (void)nth;
    const orion_kernels *k = t->k;
    const int64_t nblk = t->n_blocks, n_out = t->n_out;
    const orion_gemm_qx *xp = (const orion_gemm_qx *)t->shared;
    orion_gemm_qw *wp = (orion_gemm_qw *)(t->per_thread + (size_t)ith * t->plan.thread_bytes);
    const int64_t groups = (t->n_batch + ORION_GEMM_Q_NB - 1) / ORION_GEMM_Q_NB;
    const int64_t n_units = (n_out + Q_UNIT - 1) / Q_UNIT;
    const int64_t n_items = (groups + MBG_Q - 1) / MBG_Q * n_units;
    const size_t bb = t->row_bytes / (size_t)nblk; /* bytes per block */

    for (;;) {
        const int64_t item = (int64_t)atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
        if (item >= n_items) break;
        const int64_t g0 = item / n_units * MBG_Q, g1 = ORION_MIN(groups, g0 + MBG_Q);
        const int64_t o0 = item % n_units * Q_UNIT, o1 = ORION_MIN(n_out, o0 + Q_UNIT);
        for (int64_t kb = 0; kb < nblk; kb += KC_Q) {
            const int64_t kcb = ORION_MIN((int64_t)KC_Q, nblk - kb);
            for (int64_t o = o0; o < o1; o += ORION_GEMM_Q_MO) {
                const int no = (int)ORION_MIN((int64_t)ORION_GEMM_Q_MO, o1 - o);
                orion_gemm_prefetch pf;
                const bool has_pf = next_panel(t, o, ORION_GEMM_Q_MO, o0, o1, (size_t)kb * bb, (size_t)kcb * bb,
                                               (size_t)KC_Q * bb, &pf);
                k->gemm_q_pack_w[t->wtype]((const char *)t->w + (size_t)o * t->row_bytes, t->row_bytes,
                                           no, kb, kcb, wp);
                for (int64_t g = g0; g < g1; g++) {
                    const int nbv = (int)ORION_MIN((int64_t)ORION_GEMM_Q_NB, t->n_batch - g * ORION_GEMM_Q_NB);
                    k->gemm_q_tile[t->wtype](kcb, wp, xp + g * nblk + kb, no, nbv,
                                             t->y + g * ORION_GEMM_Q_NB * n_out + o, n_out, kb > 0,
                                             g == g0 && has_pf ? &pf : NULL);
                }
            }
        }
    }
}

/* ---- public entry points -------------------------------------------------- */

static orion_status check_args(orion_type wtype, int64_t n_out, int64_t n_in, int64_t n_batch,
                               const orion_type_traits **traits) {
    const orion_type_traits *tr = orion__type_traits((int)wtype);
    if (!tr) return orion__fail(ORION_ERR_UNSUPPORTED, "orion_matmul: unsupported weight type id %d", (int)wtype);
    if (n_out < 0 || n_in < 0 || n_batch < 0)
        return orion__fail(ORION_ERR_INVALID_ARG,
                           "orion_matmul: negative size (n_out %lld, n_in %lld, n_batch %lld)",
                           (long long)n_out, (long long)n_in, (long long)n_batch);
    if (n_in % tr->block_elems != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_matmul: n_in %lld is not a multiple of %lld for %s",
                           (long long)n_in, (long long)tr->block_elems, tr->name);
    /* every element index and byte count must fit: n_out*row_bytes, n_batch*n_in, n_batch*n_out */
    size_t bytes;
    const size_t row_bytes = orion_type_row_bytes(wtype, n_in);
    if (!orion__mul_ok((size_t)n_out, row_bytes, &bytes) || bytes > (size_t)INT64_MAX ||
        !orion__mul_ok((size_t)n_batch, (size_t)n_in * sizeof(float), &bytes) || bytes > (size_t)INT64_MAX ||
        !orion__mul_ok((size_t)n_batch, (size_t)n_out * sizeof(float), &bytes) || bytes > (size_t)INT64_MAX ||
        (size_t)n_in > SIZE_MAX / sizeof(float) || (size_t)n_out > SIZE_MAX / sizeof(float))
        return orion__fail(ORION_ERR_RANGE, "orion_matmul: sizes overflow (n_out %lld, n_in %lld, n_batch %lld)",
                           (long long)n_out, (long long)n_in, (long long)n_batch);
    *traits = tr;
    return ORION_OK;
}

size_t orion_matmul_scratch_bytes(orion_type wtype, int64_t n_out, int64_t n_in, int64_t n_batch,
                                  int n_threads) {
    const orion_type_traits *tr = NULL;
    if (check_args(wtype, n_out, n_in, n_batch, &tr) != ORION_OK) return 0;
    if (n_out == 0 || n_batch == 0 || n_in == 0) return 0;
    if (n_threads < 1) n_threads = 1;
    mm_plan p;
    if (plan(orion__kernels(), wtype, tr->quantized, n_out, n_in, n_batch, n_threads, &p) != ORION_OK) return 0;
    if (p.total_bytes == 0) return 0;
    return p.total_bytes > SIZE_MAX - SCRATCH_ALIGN ? SIZE_MAX : p.total_bytes + SCRATCH_ALIGN;
}

orion_status orion_matmul(orion_threadpool *pool, orion_arena *scratch, orion_type wtype, const void *w,
                          int64_t n_out, int64_t n_in, const float *x, int64_t n_batch, float *y) {
    const orion_type_traits *tr = NULL;
    orion_status st = check_args(wtype, n_out, n_in, n_batch, &tr);
    if (st != ORION_OK) return st;
    if (n_out == 0 || n_batch == 0) return ORION_OK;
    if (!y) return orion__fail(ORION_ERR_INVALID_ARG, "orion_matmul: y is NULL");
    if (n_in == 0) {
        memset(y, 0, (size_t)n_batch * (size_t)n_out * sizeof(float));
        return ORION_OK;
    }
    if (!w || !x) return orion__fail(ORION_ERR_INVALID_ARG, "orion_matmul: %s is NULL", !w ? "w" : "x");

    const orion_kernels *k = orion__kernels();
    const int nth = orion_threadpool_n_threads(pool);
    mm_task t;
    memset(&t, 0, sizeof t);
    st = plan(k, wtype, tr->quantized, n_out, n_in, n_batch, nth, &t.plan);
    if (st != ORION_OK) return st;
    t.k = k;
    t.wtype = wtype;
    t.w = w;
    t.row_bytes = orion_type_row_bytes(wtype, n_in);
    t.n_out = n_out;
    t.n_in = n_in;
    t.n_blocks = n_in / ORION_QK;
    t.n_batch = n_batch;
    t.x = x;
    t.y = y;

    unsigned char *mem = NULL;
    /* taken before any branch: the rewind below must never drop the
     * caller's own allocations in the arena */
    size_t mark = scratch ? orion_arena_mark(scratch) : 0;
    if (t.plan.total_bytes > 0) {
        if (scratch) {
            mem = orion_arena_alloc(scratch, t.plan.total_bytes, SCRATCH_ALIGN);
            if (!mem)
                return orion__fail(ORION_ERR_NOMEM,
                                   "orion_matmul: scratch arena too small: %zu bytes needed, %zu of %zu free",
                                   t.plan.total_bytes + SCRATCH_ALIGN,
                                   orion_arena_capacity(scratch) - orion_arena_used(scratch),
                                   orion_arena_capacity(scratch));
        } else {
            mem = orion__malloc_aligned(t.plan.total_bytes, SCRATCH_ALIGN);
            if (!mem)
                return orion__fail(ORION_ERR_NOMEM, "orion_matmul: cannot allocate %zu bytes of scratch",
                                   t.plan.total_bytes);
        }
        t.shared = mem;
        t.per_thread = mem + t.plan.shared_bytes;
    }

    switch (t.plan.path) {
    case PATH_MV_Q: {
        for (int64_t b = 0; b < n_batch; b++)
            k->quantize_q8a(x + b * n_in, (orion_block_q8a *)t.shared + b * t.n_blocks, n_in);
        const orion__matmul_part part = {wtype, w, n_out, y};
        mv_task mt;
        mv_task_init(&mt, k, &part, 1, n_in, n_batch, (const orion_block_q8a *)t.shared);
        orion_threadpool_run(pool, task_mv_q, &mt);
        break;
    }
    case PATH_MV_F:
        orion_threadpool_run(pool, task_mv_f, &t);
        break;
    case PATH_GEMM_F:
        orion_threadpool_run(pool, task_pack_f, &t);
        orion_threadpool_run(pool, task_gemm_f, &t);
        break;
    case PATH_GEMM_F_ROWS:
        atomic_store(&t.next, 0);
        orion_threadpool_run(pool, task_gemm_f_rows, &t);
        break;
    case PATH_GEMM_Q:
        orion_threadpool_run(pool, task_pack_q, &t);
        atomic_store(&t.next, 0);
        orion_threadpool_run(pool, task_gemm_q, &t);
        break;
    }

    if (scratch)
        orion_arena_rewind(scratch, mark);
    else
        orion__free_aligned(mem);
    return ORION_OK;
}

/* ---- several weights, one input ------------------------------------------- */

orion_status orion__matmul_multi(orion_threadpool *pool, orion_arena *scratch, int64_t n_in, const float *x,
                                 int64_t n_batch, const orion__matmul_part *parts, int n_parts) {
    const orion_kernels *k = orion__kernels();
    bool fused = n_parts > 1 && n_parts <= MV_MAX_PARTS && n_batch >= 1 && n_batch <= MV_MAX_BATCH && n_in > 0 &&
                 n_in % ORION_QK == 0 && k->quantize_q8a && x;
    for (int i = 0; fused && i < n_parts; i++) {
        const orion__matmul_part *p = &parts[i];
        const orion_type_traits *tr = NULL;
        if (check_args(p->wtype, p->n_out, n_in, n_batch, &tr) != ORION_OK || !tr->quantized || !k->dot_q8a[p->wtype] ||
            !p->w || !p->y || p->n_out <= 0)
            fused = false;
    }
    if (!fused) {
        for (int i = 0; i < n_parts; i++) {
            orion_status st = orion_matmul(pool, scratch, parts[i].wtype, parts[i].w, parts[i].n_out, n_in, x, n_batch,
                                           parts[i].y);
            if (st != ORION_OK) return st;
        }
        return ORION_OK;
    }
    const size_t nb = (size_t)(n_in / ORION_QK), bytes = (size_t)n_batch * nb * sizeof(orion_block_q8a);
    const size_t mark = scratch ? orion_arena_mark(scratch) : 0;
    orion_block_q8a *xq = scratch ? orion_arena_alloc(scratch, bytes, SCRATCH_ALIGN)
                                  : orion__malloc_aligned(bytes, SCRATCH_ALIGN);
    if (!xq)
        return orion__fail(ORION_ERR_NOMEM, "orion_matmul: %zu bytes of scratch for the quantized input", bytes);
    for (int64_t b = 0; b < n_batch; b++) k->quantize_q8a(x + b * n_in, xq + (size_t)b * nb, n_in);
    mv_task t;
    mv_task_init(&t, k, parts, n_parts, n_in, n_batch, xq);
    orion_threadpool_run(pool, task_mv_q, &t);
    if (scratch) orion_arena_rewind(scratch, mark);
    else orion__free_aligned(xq);
    return ORION_OK;
}
