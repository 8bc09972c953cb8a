/*
 * embed.c — the public sentence-embedding API (orion_embed_*): opens a GGUF
 * file, picks the architecture's encoder (encoder.h) by general.architecture,
 * and runs texts through it in batches.
 *
 * How a call runs: every text is tokenized first (ids kept in one growing
 * buffer); the texts are then ordered by token count (longest first, stable)
 * and cut into batches of batch_size, so each forward pass holds texts of
 * similar length (little padding work, balanced attention jobs). Each batch
 * is one forward pass; its pooled vectors are L2-normalized here when asked
 * (in double; a zero vector stays zero) and written to their text's place in
 * the output, so results come back in input order whatever the batching.
 *
 * The embedder owns the mapped file, the thread pool and the encoder's state
 * (weights pointed into the mapping, scratch arena sized at load). One
 * thread at a time per handle.
 */
#include "core/core.h"
#include "models/encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The encoders this build knows, by general.architecture. */
static const orion__encoder_ops *const encoders[] = {
    &orion__bert_ops,
    &orion__use_lite_ops,
};

struct orion_embedder {
    orion_embed_info            info;
    const orion__encoder_ops   *ops;
    void                       *state;
    orion_gguf                 *gguf;
    orion_threadpool           *pool;
    int                         batch_size;
    float                      *batch_out;  /* (batch_size, dim): one forward pass's pooled vectors */
    const int32_t             **batch_ids;  /* (batch_size) */
    int32_t                    *batch_len;  /* (batch_size) */
};

orion_embed_params orion_embed_default_params(void) {
    orion_embed_params p = {0, 0, 32, ORION_POOL_DEFAULT, -1};
    return p;
}

void orion_embed_free(orion_embedder *e) {
    if (!e) return;
    if (e->ops && e->state) e->ops->free(e->state);
    orion_threadpool_free(e->pool);
    orion_gguf_free(e->gguf);
    orion__free(e->batch_out);
    orion__free(e->batch_ids);
    orion__free(e->batch_len);
    orion__free(e);
}

orion_status orion_embed_load(const char *path, const orion_embed_params *params, orion_embedder **out) {
    if (!path || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_load: NULL argument");
    *out = NULL;
    orion_embed_params p = params ? *params : orion_embed_default_params();
    if (p.batch_size == 0) p.batch_size = 32;
    if (p.n_threads < 0 || p.n_threads > 1024 || p.max_tokens < 0 || p.max_tokens > (1 << 20) || p.batch_size < 1 ||
        p.batch_size > 4096)
        return orion__fail(ORION_ERR_INVALID_ARG,
                           "orion_embed_load: n_threads %d, max_tokens %d or batch_size %d out of range", p.n_threads,
                           p.max_tokens, p.batch_size);
    if (p.pooling != ORION_POOL_DEFAULT && p.pooling != ORION_POOL_MEAN && p.pooling != ORION_POOL_CLS)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_load: unknown pooling %d", (int)p.pooling);
    if (p.normalize < -1 || p.normalize > 1)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_load: normalize must be -1, 0 or 1 (it is %d)",
                           p.normalize);
    orion_embedder *e = orion__calloc(1, sizeof *e);
    if (!e) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    orion_status st;
    orion_embed_info *in = &e->info;
    if ((st = orion_gguf_open(path, &e->gguf)) != ORION_OK) goto fail;
    if (orion_gguf_get_str(e->gguf, "general.architecture", in->arch, sizeof in->arch) != ORION_OK) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: general.architecture is missing", path);
        goto fail;
    }
    for (size_t i = 0; i < ORION_ARRAY_LEN(encoders); i++)
        if (strcmp(encoders[i]->arch, in->arch) == 0) e->ops = encoders[i];
    if (!e->ops) {
        st = orion__fail(ORION_ERR_UNSUPPORTED, "%s: architecture '%s' is not a sentence encoder this build knows",
                         path, in->arch);
        goto fail;
    }
    if (orion_gguf_get_str(e->gguf, "general.name", in->name, sizeof in->name) != ORION_OK) in->name[0] = '\0';
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = p.n_threads;
    if ((st = orion_threadpool_init(&tp, &e->pool)) != ORION_OK) goto fail;
    p.n_threads = orion_threadpool_n_threads(e->pool);
    orion__encoder_desc d;
    memset(&d, 0, sizeof d);
    if ((st = e->ops->load(e->gguf, path, &p, e->pool, &e->state, &d)) != ORION_OK) goto fail;
    in->dim = d.dim;
    in->n_layer = d.n_layer, in->n_head = d.n_head, in->n_embd = d.n_embd, in->n_ff = d.n_ff;
    in->n_vocab = d.n_vocab, in->n_ctx_train = d.n_ctx_train;
    in->max_tokens = d.max_tokens;
    in->pooling = p.pooling != ORION_POOL_DEFAULT ? p.pooling : d.pooling;
    in->normalize = p.normalize < 0 ? d.normalize : p.normalize == 1;
    in->type = d.type;
    in->weight_bytes = d.weight_bytes;
    in->scratch_bytes = d.scratch_bytes;
    e->batch_size = p.batch_size;
    if (in->dim <= 0 || in->max_tokens < 1) {
        st = orion__fail(ORION_ERR_INTERNAL, "%s: the encoder reported dim %d, max_tokens %d", path, in->dim,
                         in->max_tokens);
        goto fail;
    }
    e->batch_out = orion__malloc(sizeof(float) * (size_t)p.batch_size * (size_t)in->dim);
    e->batch_ids = orion__malloc(sizeof *e->batch_ids * (size_t)p.batch_size);
    e->batch_len = orion__malloc(sizeof *e->batch_len * (size_t)p.batch_size);
    if (!e->batch_out || !e->batch_ids || !e->batch_len) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    *out = e;
    return ORION_OK;
fail:
    orion_embed_free(e);
    return st;
}

void orion_embed_get_info(const orion_embedder *e, orion_embed_info *out) {
    *out = e->info;
}

void orion_embed_set_observer(orion_embedder *e, orion_llm_observer fn, void *user) {
    if (e && e->ops->set_observer) e->ops->set_observer(e->state, fn, user);
}

orion_status orion_embed_tokenize(const orion_embedder *e, const char *text, size_t len, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    if (!e || (!text && len > 0) || !n_out || n_max < 0 || (!ids && n_max > 0))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_tokenize: bad arguments");
    *n_out = 0;
    orion_status st = e->ops->tokenize(e->state, text ? text : "", len, e->info.max_tokens, ids, n_max, n_out);
    if (st != ORION_OK) return st;
    if (*n_out > n_max)
        return orion__fail(ORION_ERR_RANGE, "orion_embed_tokenize: the text needs %d ids, the buffer holds %d",
                           (int)*n_out, (int)n_max);
    return ORION_OK;
}

/* ---- batching ------------------------------------------------------------------------------- */

typedef struct order_key {
    int32_t len, index;
} order_key;

/* longest first; ties in input order (qsort is not stable by itself) */
static int cmp_order(const void *a, const void *b) {
    const order_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static void l2_normalize(float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    if (!(s > 0)) return;
    const double inv = 1.0 / sqrt(s);
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
}

/* Runs n validated sequences in length-sorted batches; out in input order. */
static orion_status run_sorted(orion_embedder *e, const int32_t *const *ids, const int32_t *n_ids, int32_t n,
                               float *out) {
    order_key *order = orion__malloc(sizeof *order * (size_t)n);
    if (!order) return orion__fail(ORION_ERR_NOMEM, "orion_embed: out of memory for %d texts", (int)n);
    for (int32_t i = 0; i < n; i++) order[i] = (order_key){n_ids[i], i};
    qsort(order, (size_t)n, sizeof *order, cmp_order);
    const int dim = e->info.dim;
    orion_status st = ORION_OK;
    for (int32_t b0 = 0; b0 < n && st == ORION_OK; b0 += e->batch_size) {
        const int32_t nb = ORION_MIN(e->batch_size, n - b0);
        for (int32_t j = 0; j < nb; j++) {
            e->batch_ids[j] = ids[order[b0 + j].index];
            e->batch_len[j] = order[b0 + j].len;
        }
        st = e->ops->forward(e->state, e->batch_ids, e->batch_len, nb, e->info.pooling, e->batch_out);
        if (st != ORION_OK) break;
        for (int32_t j = 0; j < nb; j++) {
            float *dst = out + (size_t)order[b0 + j].index * (size_t)dim;
            memcpy(dst, e->batch_out + (size_t)j * (size_t)dim, sizeof(float) * (size_t)dim);
            if (e->info.normalize) l2_normalize(dst, dim);
        }
    }
    orion__free(order);
    return st;
}

orion_status orion_embed_tokens(orion_embedder *e, const int32_t *const *ids, const int32_t *n_ids, int32_t n,
                                float *out) {
    if (!e || n < 0 || (n > 0 && (!ids || !n_ids || !out)))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_tokens: bad arguments");
    for (int32_t i = 0; i < n; i++) {
        if (n_ids[i] < 1 || n_ids[i] > e->info.max_tokens)
            return orion__fail(ORION_ERR_RANGE, "orion_embed_tokens: text %d has %d ids, outside [1, %d] (max_tokens)",
                               (int)i, (int)n_ids[i], e->info.max_tokens);
        if (!ids[i]) return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_tokens: ids[%d] is NULL", (int)i);
        for (int32_t j = 0; j < n_ids[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= e->info.n_vocab)
                return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_tokens: text %d: id %d at %d is outside [0, %d)",
                                   (int)i, (int)ids[i][j], (int)j, e->info.n_vocab);
    }
    return n > 0 ? run_sorted(e, ids, n_ids, n, out) : ORION_OK;
}

orion_status orion_embed_texts(orion_embedder *e, const char *const *texts, const size_t *lens, int32_t n,
                               float *out) {
    if (!e || n < 0 || (n > 0 && (!texts || !out)))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_texts: bad arguments");
    if (n == 0) return ORION_OK;
    const int32_t max = e->info.max_tokens;
    /* all ids in one buffer: texts at offsets start[i] */
    size_t cap = (size_t)n * 16 + (size_t)max, used = 0;
    int32_t *buf = orion__malloc(sizeof *buf * cap);
    size_t *start = orion__malloc(sizeof *start * (size_t)n);
    int32_t *n_ids = orion__malloc(sizeof *n_ids * (size_t)n);
    const int32_t **ids = orion__malloc(sizeof *ids * (size_t)n);
    orion_status st = ORION_OK;
    if (!buf || !start || !n_ids || !ids) {
        st = orion__fail(ORION_ERR_NOMEM, "orion_embed_texts: out of memory for %d texts", (int)n);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!texts[i]) {
            st = orion__fail(ORION_ERR_INVALID_ARG, "orion_embed_texts: texts[%d] is NULL", (int)i);
            goto done;
        }
        if (cap - used < (size_t)max) { /* room for the longest text */
            size_t ncap = cap * 2 + (size_t)max;
            int32_t *nb = orion__realloc(buf, sizeof *buf * ncap);
            if (!nb) {
                st = orion__fail(ORION_ERR_NOMEM, "orion_embed_texts: out of memory for token ids");
                goto done;
            }
            buf = nb, cap = ncap;
        }
        const size_t len = lens ? lens[i] : strlen(texts[i]);
        int32_t got = 0;
        if ((st = e->ops->tokenize(e->state, texts[i], len, max, buf + used, max, &got)) != ORION_OK) goto done;
        if (got < 1 || got > max) {
            st = orion__fail(ORION_ERR_INTERNAL, "orion_embed_texts: text %d gave %d ids (max_tokens %d)", (int)i,
                             (int)got, (int)max);
            goto done;
        }
        start[i] = used;
        n_ids[i] = got;
        used += (size_t)got;
    }
    for (int32_t i = 0; i < n; i++) ids[i] = buf + start[i];
    st = run_sorted(e, ids, n_ids, n, out);
done:
    orion__free(buf);
    orion__free(start);
    orion__free(n_ids);
    orion__free(ids);
    return st;
}
