/*
 * calib_hessian.c — collects, per weight tensor, the Hessian of GPTQ's
 * layer-wise objective: H = X^T X, where X holds every input row the model
 * multiplied the tensor with over the calibration text (n_in x n_in,
 * double). It is an orion_llm_observer; orion_convert reads the result
 * through calib_hessians_get (orion_convert_params.hessian).
 *
 * How: each observed call's rows are taken in chunks of at most CHUNK rows,
 * transposed (Xc^T, n_in x m floats) and multiplied with themselves by
 * orion_matmul (f32, the GEMM path): Hc = Xc^T Xc, which is added to H in
 * double. So the products are summed in f32 over at most CHUNK rows (a
 * relative error of order sqrt(CHUNK) * 2^-24, far below GPTQ's 1% damping)
 * and in double beyond. Memory: n_in^2 doubles per tensor, plus one chunk's
 * scratch; the total is capped by max_bytes, checked before each new tensor
 * is allocated, with an error naming the bytes.
 */
#include "calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 1024

typedef struct hentry {
    char    *name;
    int64_t  n;      /* n_in */
    double  *h;      /* n x n */
    int64_t  rows;
} hentry;

struct calib_hessians {
    hentry           *e;
    int               n, cap;
    size_t            bytes, max_bytes;
    orion_threadpool *pool;
    float            *xt, *hc;  /* chunk scratch: n_in x CHUNK and n_in x n_in floats */
    int64_t           scratch_n;
    char              error[512];
};

calib_hessians *calib_hessians_new(size_t max_bytes, int n_threads) {
    calib_hessians *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->max_bytes = max_bytes;
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = n_threads;
    if (orion_threadpool_init(&tp, &h->pool) != ORION_OK) {
        free(h);
        return NULL;
    }
    return h;
}

void calib_hessians_free(calib_hessians *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) free(h->e[i].name), free(h->e[i].h);
    free(h->e);
    free(h->xt);
    free(h->hc);
    orion_threadpool_free(h->pool);
    free(h);
}

const char *calib_hessians_error(const calib_hessians *h) {
    return h->error[0] ? h->error : NULL;
}

int calib_hessians_count(const calib_hessians *h) {
    return h->n;
}

size_t calib_hessians_bytes(const calib_hessians *h) {
    return h->bytes;
}

static hentry *find(calib_hessians *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->e[i].name, name) == 0) return &h->e[i];
    return NULL;
}

static hentry *add(calib_hessians *h, const char *name, int64_t n) {
    size_t need = (size_t)n * (size_t)n * sizeof(double);
    if (n > 65536 || h->bytes + need > h->max_bytes || h->bytes + need < h->bytes) {
        snprintf(h->error, sizeof h->error,
                 "the GPTQ Hessians need more memory than the limit of %zu bytes: tensor '%s' (n_in %lld) needs "
                 "%zu bytes, which would bring the total to %zu bytes",
                 h->max_bytes, name, (long long)n, need, h->bytes + need);
        return NULL;
    }
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 32;
        hentry *ne = realloc(h->e, (size_t)cap * sizeof *ne);
        if (!ne) goto oom;
        h->e = ne, h->cap = cap;
    }
    hentry *e = &h->e[h->n];
    e->name = strdup(name);
    e->h = calloc((size_t)n * (size_t)n, sizeof(double));
    if (!e->name || !e->h) {
        free(e->name);
        free(e->h);
        goto oom;
    }
    e->n = n;
    e->rows = 0;
    h->n++;
    h->bytes += need;
    return e;
oom:
    snprintf(h->error, sizeof h->error, "out of memory for the GPTQ Hessian of '%s' (%zu bytes)", name, need);
    return NULL;
}

void calib_hessians_observe(void *user, const char *name, const float *x, int64_t n_rows, int64_t n_in) {
    calib_hessians *h = user;
    if (h->error[0] || n_rows <= 0 || n_in <= 0) return;
    hentry *e = find(h, name);
    if (!e && !(e = add(h, name, n_in))) return;
    if (e->n != n_in) return; /* one tensor, one width */
    if (h->scratch_n < n_in) {
        free(h->xt);
        free(h->hc);
        h->xt = malloc((size_t)n_in * CHUNK * sizeof(float));
        h->hc = malloc((size_t)n_in * (size_t)n_in * sizeof(float));
        h->scratch_n = n_in;
        if (!h->xt || !h->hc) {
            h->scratch_n = 0;
            snprintf(h->error, sizeof h->error, "out of memory for the GPTQ Hessian scratch (n_in %lld)",
                     (long long)n_in);
            return;
        }
    }
    const int64_t n = n_in;
    for (int64_t r0 = 0; r0 < n_rows; r0 += CHUNK) {
        const int64_t m = n_rows - r0 < CHUNK ? n_rows - r0 : CHUNK;
        for (int64_t r = 0; r < m; r++)
            for (int64_t i = 0; i < n; i++) h->xt[i * m + r] = x[(r0 + r) * n + i];
        /* hc[b][o] = sum_r xt[o][r] * xt[b][r] */
        if (orion_matmul(h->pool, NULL, ORION_TYPE_F32, h->xt, n, m, h->xt, n, h->hc) != ORION_OK) {
            snprintf(h->error, sizeof h->error, "GPTQ Hessian of '%s': %s", name, orion_last_error());
            return;
        }
        for (int64_t i = 0; i < n * n; i++) e->h[i] += (double)h->hc[i];
    }
    e->rows += n_rows;
}

const double *calib_hessians_get(void *user, const char *name, int64_t n_in) {
    calib_hessians *h = user;
    hentry *e = find(h, name);
    if (!e || e->n != n_in || e->rows == 0) return NULL;
    /* the f32 products are symmetric only up to rounding: make H exactly so */
    for (int64_t i = 0; i < e->n; i++)
        for (int64_t j = i + 1; j < e->n; j++) {
            const double v = 0.5 * (e->h[i * e->n + j] + e->h[j * e->n + i]);
            e->h[i * e->n + j] = e->h[j * e->n + i] = v;
        }
    return e->h;
}
