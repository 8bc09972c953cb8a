/*
 * encoders.c — the two encoder backends the batcher (batcher.c) drives
 * through one table of functions:
 *
 *   gguf  a GGUF sentence encoder (orion_embed_*); its handle comes from a
 *         manager lease, so load/free are only for completeness;
 *   hash  "hash:DIM[:DELAY_US]", a deterministic bag-of-words hashing model
 *         of DIM dimensions whose forward pass sleeps DELAY_US microseconds
 *         (to stand in for a real model's cost): the service's tests and
 *         `orion bench serve` measure the service itself with it. It is not
 *         a file, so the server holds it itself, outside the manager.
 */
#include "service/models_internal.h"

#include <stdio.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

static orion_status real_load(const char *path, const orion_embed_params *p, void **h) {
    return orion_embed_load(path, p, (orion_embedder **)h);
}
static void real_free(void *h) { orion_embed_free(h); }
static void real_info(const void *h, orion_embed_info *out) { orion_embed_get_info(h, out); }
static orion_status real_tokenize(const void *h, const char *text, size_t len, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    return orion_embed_tokenize(h, text, len, ids, n_max, n_out);
}
static orion_status real_embed(void *h, const int32_t *const *ids, const int32_t *n_ids, int32_t n, float *out) {
    return orion_embed_tokens(h, ids, n_ids, n, out);
}
const orion__encoder_backend orion__encoder_gguf = {"gguf", real_load, real_free, real_info, real_tokenize, real_embed};

typedef struct hash_model {
    int dim, max_tokens, delay_us;
} hash_model;

static orion_status hash_load(const char *path, const orion_embed_params *p, void **h) {
    int dim = 0, delay = 0;
    if (sscanf(path, "hash:%d:%d", &dim, &delay) < 1 || dim < 1 || dim > 4096 || delay < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: expected hash:DIM[:DELAY_US]", path);
    hash_model *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "no memory");
    m->dim = dim;
    m->delay_us = delay;
    m->max_tokens = p->max_tokens > 0 ? p->max_tokens : 64;
    *h = m;
    return ORION_OK;
}
static void hash_free(void *h) { orion__free(h); }
static void hash_info(const void *h, orion_embed_info *out) {
    const hash_model *m = h;
    memset(out, 0, sizeof *out);
    snprintf(out->arch, sizeof out->arch, "hash");
    snprintf(out->name, sizeof out->name, "hash-%d", m->dim);
    out->dim = m->dim;
    out->max_tokens = m->max_tokens;
    out->normalize = true;
}
static orion_status hash_tokenize(const void *h, const char *text, size_t len, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    const hash_model *m = h;
    return orion__hash_tokenize(text, len, m->max_tokens, ids, n_max, n_out);
}
static orion_status hash_embed(void *h, const int32_t *const *ids, const int32_t *n_ids, int32_t n, float *out) {
    const hash_model *m = h;
    for (int32_t i = 0; i < n; i++) orion__hash_vector(ids[i], n_ids[i], m->dim, out + (size_t)i * m->dim);
    if (m->delay_us) {
        struct timespec ts = {m->delay_us / 1000000, (long)(m->delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return ORION_OK;
}
const orion__encoder_backend orion__encoder_hash = {"hash", hash_load, hash_free, hash_info, hash_tokenize, hash_embed};

orion_status orion__hash_tokenize(const char *text, size_t len, int max_tokens, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    int32_t n = 0;
    if (n < n_max) ids[n] = 1; /* [CLS] */
    n++;
    size_t i = 0;
    while (i < len && n < max_tokens - 1) {
        while (i < len && text[i] == ' ') i++;
        size_t s = i;
        while (i < len && text[i] != ' ') i++;
        if (i > s) {
            if (n < n_max) ids[n] = 100 + (int32_t)(XXH3_64bits(text + s, i - s) % 30000);
            n++;
        }
    }
    if (n < n_max) ids[n] = 2; /* [SEP] */
    n++;
    *n_out = n;
    return n > n_max ? orion__fail(ORION_ERR_RANGE, "hash tokenize: %d ids do not fit in %d", n, n_max) : ORION_OK;
}

void orion__hash_vector(const int32_t *ids, int32_t n, int dim, float *out) {
    for (int d = 0; d < dim; d++) out[d] = 0;
    for (int32_t t = 0; t < n; t++) {
        uint64_t s = (uint64_t)ids[t] * 0x9e3779b97f4a7c15ull + (uint64_t)t;
        for (int d = 0; d < dim; d++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            out[d] += (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
        }
    }
    double nn = 0;
    for (int d = 0; d < dim; d++) nn += (double)out[d] * out[d];
    float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
    for (int d = 0; d < dim; d++) out[d] *= inv;
}

