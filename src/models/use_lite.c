/*
 * use_lite.c — the Universal Sentence Encoder lite (architecture
 * "use-lite"), converted from its TF.js graph by src/formats/tfjs.c. The
 * forward pass follows the graph node for node (docs/use-lite.md):
 *
 *   x    = e + (e + timing(pos))          e = token_embd[id]; the graph adds
 *                                          the embedding twice (scale 2)
 *   per layer (pre-LayerNorm, eps 1e-6):
 *     a   = attention(LN_attn(x))         fused qkv, heads of its own size,
 *                                          q * scale before q.k, softmax
 *     h   = W_out a + b + R(x)            R = res_proj (dense) when the width
 *                                          changes (layer 0: 256 -> 512), else x
 *     x   = h + W_down relu(W_up LN_ffn(h) + b_up) + b_down
 *   out  = tanh(W_pool mean(x over the text's tokens) + b_pool)
 *
 * The graph's L2 normalization is left to embed.c (encoder.h). The graph
 * runs a padded [batch, max_len] tensor and masks padded keys with -1e9
 * (exactly zero weight after softmax); we run only real tokens, packed, and
 * attend within each text, which is the same computation. Positions past
 * context_length (128) are dropped by the graph; tokenize truncates there.
 *
 * Weights stay in the mapped GGUF in their stored type and go through
 * orion_matmul; activations live in buffers sized at load for batch_size x
 * max_tokens tokens; orion_matmul's scratch comes from an arena sized at load.
 */
#include "models/encoder.h"

#include "core/core.h"
#include "kernels/kernels.h"
#include "models/unigram_vocab.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_LAYERS 16

typedef struct weight {
    const char *name;
    orion_type  type;
    const void *data;
    int64_t     n_out, n_in;  /* rows, row length */
} weight;

typedef struct layer {
    int64_t      d_in, d_att, d_out, n_head, head_dim;
    float        scale;
    const float *attn_norm_w, *attn_norm_b;
    weight       qkv;
    const float *qkv_b;
    weight       out;
    const float *out_b;
    bool         has_res;
    weight       res;
    const float *res_b;
    const float *ffn_norm_w, *ffn_norm_b;
    weight       up, down;
    const float *up_b, *down_b;
} layer;

typedef struct use_lite {
    int32_t           n_layer;
    int64_t           n_embd_in, n_embd, n_ff, n_vocab, ctx;
    float             eps, embd_scale;
    layer             layers[MAX_LAYERS];
    orion_type        embd_type;
    const uint8_t    *embd;        /* (n_vocab, n_embd_in) rows in embd_type */
    size_t            embd_row;
    const float      *inv_ts;      /* (n_embd_in / 2) */
    weight            pool;
    const float      *pool_b;
    orion_unigram    *vocab;
    int               max_tokens, batch_size, n_threads;
    orion_threadpool *tp;
    orion_arena      *arena;
    /* activations, each (batch_size * max_tokens, width) */
    int64_t           cap_tokens;
    float            *x, *xn, *qkv, *att, *o, *ff, *pooled, *scores;
    int64_t          *start, *len;  /* batch_size: each text's first row and token count */
    orion_llm_observer observer;
    void             *observer_user;
} use_lite;

static void use_free(void *state) {
    use_lite *m = state;
    if (!m) return;
    orion__unigram_free(m->vocab);
    orion_arena_free(m->arena);
    orion__free(m->x);
    orion__free(m->xn);
    orion__free(m->qkv);
    orion__free(m->att);
    orion__free(m->o);
    orion__free(m->ff);
    orion__free(m->pooled);
    orion__free(m->scores);
    orion__free(m->start);
    orion__free(m->len);
    orion__free(m);
}

static orion_status get_u(const orion_gguf *g, const char *label, const char *key, int64_t lo, int64_t hi,
                          int64_t *out) {
    int64_t v = 0;
    orion_status st = orion_gguf_get_i64(g, key, &v);
    if (st != ORION_OK) return orion__fail(st == ORION_ERR_NOT_FOUND ? ORION_ERR_FORMAT : st, "%s: key %s: %s", label, key, orion_last_error());
    if (v < lo || v > hi) return orion__fail(ORION_ERR_FORMAT, "%s: %s = %lld out of range", label, key, (long long)v);
    *out = v;
    return ORION_OK;
}

static orion_status get_f(const orion_gguf *g, const char *label, const char *key, float *out) {
    double v;
    orion_status st = orion_gguf_get_f64(g, key, &v);
    if (st != ORION_OK) return orion__fail(ORION_ERR_FORMAT, "%s: key %s missing or not a number", label, key);
    if (!isfinite(v)) return orion__fail(ORION_ERR_FORMAT, "%s: %s is not finite", label, key);
    *out = (float)v;
    return ORION_OK;
}

/* A 1-D f32 tensor of n values. */
static orion_status get_vec(const orion_gguf *g, const char *label, const char *name, int64_t n, const float **out) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) return orion__fail(ORION_ERR_FORMAT, "%s: no tensor '%s'", label, name);
    if (t->type != ORION_TYPE_F32 || t->n_elems != n)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' must be %lld f32 values", label, name, (long long)n);
    *out = t->data;
    return ORION_OK;
}

/* A matrix of n_out rows of n_in, any type orion_matmul takes. */
static orion_status get_mat(const orion_gguf *g, const char *label, const char *name, int64_t n_in, int64_t n_out,
                            weight *w) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) return orion__fail(ORION_ERR_FORMAT, "%s: no tensor '%s'", label, name);
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out || t->type == ORION_TYPE_BF16)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' must be %lld x %lld (f32/f16/q8_0/q4_0/q4_1)", label,
                           name, (long long)n_in, (long long)n_out);
    *w = (weight){t->name, t->type, t->data, n_out, n_in};
    return ORION_OK;
}

#define TRY(x)                                 \
    do {                                       \
        if ((st = (x)) != ORION_OK) goto fail; \
    } while (0)

static orion_status load_vocab(const orion_gguf *g, const char *label, use_lite *m) {
    const orion_gguf_value *tok = orion_gguf_get(g, "tokenizer.ggml.tokens");
    const orion_gguf_value *sc = orion_gguf_get(g, "tokenizer.ggml.scores");
    char model[32] = "";
    orion_gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model);
    if (strcmp(model, "use-unigram") != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: tokenizer.ggml.model is \"%s\", not \"use-unigram\"", label, model);
    if (!tok || tok->type != ORION_GGUF_ARRAY || tok->v.arr.elem_type != ORION_GGUF_STRING || !sc ||
        sc->type != ORION_GGUF_ARRAY || sc->v.arr.items != NULL ||
        sc->v.arr.count != tok->v.arr.count || tok->v.arr.count < 2 || tok->v.arr.count > (1u << 24))
        return orion__fail(ORION_ERR_FORMAT, "%s: tokenizer.ggml.tokens / scores missing or mismatched", label);
    int64_t reserved = 6;
    if (orion_gguf_get(g, "use-lite.tokenizer.reserved_count")) {
        orion_status st = get_u(g, label, "use-lite.tokenizer.reserved_count", 1, (int64_t)tok->v.arr.count, &reserved);
        if (st != ORION_OK) return st;
    }
    int32_t n = (int32_t)tok->v.arr.count;
    const char **pieces = orion__malloc((size_t)n * sizeof *pieces);
    size_t *lens = orion__malloc((size_t)n * sizeof *lens);
    double *scores = orion__malloc((size_t)n * sizeof *scores);
    orion_status st = ORION_OK;
    if (!pieces || !lens || !scores) st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
    for (int32_t i = 0; st == ORION_OK && i < n; i++) {
        pieces[i] = tok->v.arr.items[i].v.str.ptr;
        lens[i] = (size_t)tok->v.arr.items[i].v.str.len;
        scores[i] = orion_gguf_array_f64(sc, (uint64_t)i);
        if (!isfinite(scores[i])) st = orion__fail(ORION_ERR_FORMAT, "%s: score %d is not finite", label, (int)i);
    }
    if (st == ORION_OK) st = orion__unigram_init(pieces, lens, scores, n, (int32_t)reserved, &m->vocab);
    orion__free(pieces);
    orion__free(lens);
    orion__free(scores);
    return st;
}

static orion_status use_load(orion_gguf *g, const char *label, const orion_embed_params *params,
                             orion_threadpool *pool, void **state, orion__encoder_desc *desc) {
    *state = NULL;
    if (!label) label = "<use-lite>";
    use_lite *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
    orion_status st;
    char name[64];
    int64_t v = 0;
    TRY(get_u(g, label, "use-lite.block_count", 1, MAX_LAYERS, &v));
    m->n_layer = (int32_t)v;
    TRY(get_u(g, label, "use-lite.input_embedding_length", 2, 1 << 16, &m->n_embd_in));
    TRY(get_u(g, label, "use-lite.embedding_length", 1, 1 << 16, &m->n_embd));
    TRY(get_u(g, label, "use-lite.feed_forward_length", 1, 1 << 18, &m->n_ff));
    TRY(get_u(g, label, "use-lite.context_length", 1, 1 << 16, &m->ctx));
    TRY(get_f(g, label, "use-lite.attention.layer_norm_epsilon", &m->eps));
    TRY(get_f(g, label, "use-lite.embedding_scale", &m->embd_scale));
    if (m->n_embd_in % 2) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: odd input embedding length", label);
        goto fail;
    }
    const orion_gguf_value *heads = orion_gguf_get(g, "use-lite.attention.head_count");
    const orion_gguf_value *hdim = orion_gguf_get(g, "use-lite.attention.key_length");
    const orion_gguf_value *scale = orion_gguf_get(g, "use-lite.attention.scale");
    if (!heads || !hdim || !scale || heads->type != ORION_GGUF_ARRAY || hdim->type != ORION_GGUF_ARRAY ||
        scale->type != ORION_GGUF_ARRAY || heads->v.arr.items || hdim->v.arr.items || scale->v.arr.items ||
        heads->v.arr.count != (uint64_t)m->n_layer || hdim->v.arr.count != (uint64_t)m->n_layer ||
        scale->v.arr.count != (uint64_t)m->n_layer) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: use-lite.attention.* arrays missing or not one per layer", label);
        goto fail;
    }
    /* the embedding */
    const orion_gguf_tensor *te = orion_gguf_find_tensor(g, "token_embd.weight");
    if (!te || te->n_dims != 2 || te->ne[0] != m->n_embd_in || te->ne[1] < 2 || te->type == ORION_TYPE_BF16) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: token_embd.weight missing or not %lld wide", label,
                         (long long)m->n_embd_in);
        goto fail;
    }
    m->embd_type = te->type;
    m->embd = te->data;
    m->n_vocab = te->ne[1];
    m->embd_row = orion_type_row_bytes(te->type, te->ne[0]);
    TRY(get_vec(g, label, "pos.inv_timescales", m->n_embd_in / 2, &m->inv_ts));
    int64_t d_in = m->n_embd_in, max_att = 0;
    for (int32_t L = 0; L < m->n_layer; L++) {
        layer *l = &m->layers[L];
        l->n_head = orion_gguf_array_i64(heads, (uint64_t)L);
        l->head_dim = orion_gguf_array_i64(hdim, (uint64_t)L);
        l->scale = (float)orion_gguf_array_f64(scale, (uint64_t)L);
        if (l->n_head < 1 || l->head_dim < 1 || l->n_head * l->head_dim > (1 << 16) || !isfinite(l->scale)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: layer %d: bad head count / size / scale", label, (int)L);
            goto fail;
        }
        l->d_in = d_in;
        l->d_att = l->n_head * l->head_dim;
        max_att = ORION_MAX(max_att, l->d_att);
#define T(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, (int)L), name)
        TRY(get_vec(g, label, T("attn_norm.weight"), d_in, &l->attn_norm_w));
        TRY(get_vec(g, label, T("attn_norm.bias"), d_in, &l->attn_norm_b));
        TRY(get_mat(g, label, T("attn_qkv.weight"), d_in, 3 * l->d_att, &l->qkv));
        TRY(get_vec(g, label, T("attn_qkv.bias"), 3 * l->d_att, &l->qkv_b));
        const orion_gguf_tensor *to = orion_gguf_find_tensor(g, T("attn_out.weight"));
        l->d_out = to && to->n_dims == 2 ? to->ne[1] : 0;
        if (l->d_out < 1 || l->d_out > (1 << 16)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: %s missing or malformed", label, name);
            goto fail;
        }
        TRY(get_mat(g, label, T("attn_out.weight"), l->d_att, l->d_out, &l->out));
        TRY(get_vec(g, label, T("attn_out.bias"), l->d_out, &l->out_b));
        l->has_res = orion_gguf_find_tensor(g, T("res_proj.weight")) != NULL;
        if (l->has_res) {
            TRY(get_mat(g, label, T("res_proj.weight"), d_in, l->d_out, &l->res));
            TRY(get_vec(g, label, T("res_proj.bias"), l->d_out, &l->res_b));
        } else if (d_in != l->d_out) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: layer %d changes width without res_proj", label, (int)L);
            goto fail;
        }
        TRY(get_vec(g, label, T("ffn_norm.weight"), l->d_out, &l->ffn_norm_w));
        TRY(get_vec(g, label, T("ffn_norm.bias"), l->d_out, &l->ffn_norm_b));
        TRY(get_mat(g, label, T("ffn_up.weight"), l->d_out, m->n_ff, &l->up));
        TRY(get_vec(g, label, T("ffn_up.bias"), m->n_ff, &l->up_b));
        TRY(get_mat(g, label, T("ffn_down.weight"), m->n_ff, l->d_out, &l->down));
        TRY(get_vec(g, label, T("ffn_down.bias"), l->d_out, &l->down_b));
#undef T
        d_in = l->d_out;
    }
    if (d_in != m->n_embd) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: the last layer is %lld wide, embedding_length says %lld", label,
                         (long long)d_in, (long long)m->n_embd);
        goto fail;
    }
    const orion_gguf_tensor *tp = orion_gguf_find_tensor(g, "pool_dense.weight");
    int64_t dim = tp && tp->n_dims == 2 ? tp->ne[1] : 0;
    if (dim < 1 || dim > (1 << 16)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: pool_dense.weight missing or malformed", label);
        goto fail;
    }
    TRY(get_mat(g, label, "pool_dense.weight", m->n_embd, dim, &m->pool));
    TRY(get_vec(g, label, "pool_dense.bias", dim, &m->pool_b));
    TRY(load_vocab(g, label, m));

    /* run-time sizes */
    m->max_tokens = params && params->max_tokens > 0 ? params->max_tokens : (int)m->ctx;
    if (m->max_tokens > m->ctx) m->max_tokens = (int)m->ctx;
    m->batch_size = params && params->batch_size > 0 ? params->batch_size : 32;
    m->tp = pool;
    m->n_threads = pool ? orion_threadpool_n_threads(pool) : 1;
    m->cap_tokens = (int64_t)m->batch_size * m->max_tokens;
    int64_t wmax = ORION_MAX(m->n_embd_in, m->n_embd);
    for (int32_t L = 0; L < m->n_layer; L++) wmax = ORION_MAX(wmax, m->layers[L].d_out);
    size_t cap = (size_t)m->cap_tokens, act = 0;
    m->x = orion__malloc(cap * (size_t)wmax * sizeof(float));
    m->xn = orion__malloc(cap * (size_t)wmax * sizeof(float));
    m->o = orion__malloc(cap * (size_t)wmax * sizeof(float));
    m->qkv = orion__malloc(cap * (size_t)(3 * max_att) * sizeof(float));
    m->att = orion__malloc(cap * (size_t)max_att * sizeof(float));
    m->ff = orion__malloc(cap * (size_t)ORION_MAX(m->n_ff, wmax) * sizeof(float));
    m->pooled = orion__malloc((size_t)m->batch_size * (size_t)wmax * sizeof(float));
    m->scores = orion__malloc((size_t)m->n_threads * (size_t)m->max_tokens * sizeof(float));
    act = cap * sizeof(float) * (size_t)(3 * wmax + 4 * max_att + ORION_MAX(m->n_ff, wmax)) +
          (size_t)m->batch_size * (size_t)wmax * 4 + (size_t)m->n_threads * (size_t)m->max_tokens * 4;
    m->start = orion__malloc((size_t)m->batch_size * sizeof *m->start);
    m->len = orion__malloc((size_t)m->batch_size * sizeof *m->len);
    if (!m->x || !m->xn || !m->o || !m->qkv || !m->att || !m->ff || !m->pooled || !m->scores || !m->start || !m->len) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory for activations", label);
        goto fail;
    }
    size_t scratch = 0;
    for (int32_t L = 0; L < m->n_layer; L++) {
        const layer *l = &m->layers[L];
        const weight *ws[5] = {&l->qkv, &l->out, &l->up, &l->down, l->has_res ? &l->res : &l->out};
        for (int k = 0; k < 5; k++)
            scratch = ORION_MAX(scratch, orion_matmul_scratch_bytes(ws[k]->type, ws[k]->n_out, ws[k]->n_in,
                                                                    m->cap_tokens, m->n_threads));
    }
    scratch = ORION_MAX(scratch, orion_matmul_scratch_bytes(m->pool.type, m->pool.n_out, m->pool.n_in,
                                                            m->batch_size, m->n_threads));
    scratch += 4096;
    TRY(orion_arena_init(scratch, &m->arena));

    if (desc) {
        memset(desc, 0, sizeof *desc);
        desc->dim = (int)dim;
        desc->n_layer = m->n_layer;
        desc->n_head = (int)m->layers[m->n_layer - 1].n_head;
        desc->n_embd = (int)m->n_embd;
        desc->n_ff = (int)m->n_ff;
        desc->n_vocab = (int)orion__unigram_n_vocab(m->vocab);
        desc->n_ctx_train = (int)m->ctx;
        desc->max_tokens = m->max_tokens;
        desc->pooling = ORION_POOL_MEAN;
        desc->normalize = true;
        desc->type = m->layers[m->n_layer - 1].up.type;
        size_t wb = 0;
        for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) wb += orion_gguf_tensor_at(g, i)->n_bytes;
        desc->weight_bytes = wb;
        desc->scratch_bytes = scratch + act;
    }
    *state = m;
    return ORION_OK;
fail:
    use_free(m);
    return st;
}

static orion_status use_tokenize(const void *state, const char *text, size_t len, int max_tokens, int32_t *ids,
                                 int32_t n_max, int32_t *n_out) {
    const use_lite *m = state;
    int32_t n = 0;
    orion_status st = orion__unigram_encode(m->vocab, text, len, ids, n_max, &n);
    if (st != ORION_OK) return st;
    int32_t lim = max_tokens > 0 ? max_tokens : m->max_tokens;
    if (lim > m->ctx) lim = (int32_t)m->ctx;
    *n_out = n < lim ? n : lim;
    return ORION_OK;
}

/* ---- forward ------------------------------------------------------------------- */

static orion_status mm(use_lite *m, const weight *w, const float *x, int64_t n, const float *bias, float *y) {
    if (m->observer) m->observer(m->observer_user, w->name, x, n, w->n_in);
    orion_status st = orion_matmul(m->tp, m->arena, w->type, w->data, w->n_out, w->n_in, x, n, y);
    if (st != ORION_OK) return st;
    if (bias)
        for (int64_t r = 0; r < n; r++) {
            float *yr = y + r * w->n_out;
            for (int64_t o = 0; o < w->n_out; o++) yr[o] += bias[o];
        }
    return ORION_OK;
}

typedef struct attn_task {
    use_lite      *m;
    const layer   *l;
    const int64_t *start, *len;  /* per text: first token row, token count */
    int32_t        n_seq;
} attn_task;

static void attn_run(void *arg, int ith, int nth) {
    attn_task *t = arg;
    const layer *l = t->l;
    use_lite *m = t->m;
    const orion_kernels *k = orion__kernels();
    int64_t hd = l->head_dim, qkv_w = 3 * l->d_att;
    float *sc = m->scores + (size_t)ith * (size_t)m->max_tokens;
    float q[1024];
    orion_dot_f32_fn dot = k->dot_f32[ORION_TYPE_F32];
    int64_t jobs = (int64_t)t->n_seq * l->n_head;
    for (int64_t job = ith; job < jobs; job += nth) {
        int64_t s = job / l->n_head, h = job % l->n_head;
        int64_t s0 = t->start[s], n = t->len[s];
        for (int64_t i = 0; i < n; i++) {
            const float *qi = m->qkv + (s0 + i) * qkv_w + h * hd;
            float *out = m->att + (s0 + i) * l->d_att + h * hd;
            for (int64_t d = 0; d < hd && d < 1024; d++) q[d] = qi[d] * l->scale;
            for (int64_t j = 0; j < n; j++) {
                const float *kj = m->qkv + (s0 + j) * qkv_w + l->d_att + h * hd;
                sc[j] = dot(hd, kj, q);
            }
            k->softmax(sc, n);
            for (int64_t d = 0; d < hd; d++) out[d] = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                const float *vj = m->qkv + (s0 + j) * qkv_w + 2 * l->d_att + h * hd;
                float p = sc[j];
                for (int64_t d = 0; d < hd; d++) out[d] += p * vj[d];
            }
        }
    }
}

static orion_status use_forward(void *state, const int32_t *const *ids, const int32_t *n_ids, int32_t n,
                                orion_pooling pooling, float *out) {
    use_lite *m = state;
    if (n < 0 || n > m->batch_size || (n > 0 && (!ids || !n_ids || !out)))
        return orion__fail(ORION_ERR_INVALID_ARG, "use-lite: batch of %d (at most %d)", (int)n, m->batch_size);
    int64_t *start = m->start, *len = m->len, M = 0;
    for (int32_t s = 0; s < n; s++) {
        int64_t ln = n_ids[s];
        if (ln < 0) return orion__fail(ORION_ERR_INVALID_ARG, "use-lite: text %d has %lld ids", (int)s, (long long)ln);
        if (ln > m->max_tokens) ln = m->max_tokens; /* the graph drops positions past its maximum */
        start[s] = M;
        len[s] = ln;
        M += ln;
        for (int64_t i = 0; i < ln; i++)
            if (ids[s][i] < 0 || ids[s][i] >= m->n_vocab)
                return orion__fail(ORION_ERR_INVALID_ARG, "use-lite: text %d: token id %d out of range", (int)s,
                                   (int)ids[s][i]);
    }
    const orion_kernels *k = orion__kernels();
    orion_status st;
    /* input: e + (e + timing), as the graph adds them */
    int64_t E = m->n_embd_in, half = E / 2;
    for (int32_t s = 0; s < n; s++)
        for (int64_t i = 0; i < len[s]; i++) {
            float *x = m->x + (start[s] + i) * E;
            float *e = m->xn;  /* one row of scratch */
            k->dequantize_row[m->embd_type](m->embd + (size_t)ids[s][i] * m->embd_row, e, E);
            for (int64_t c = 0; c < half; c++) {
                float a = (float)i * m->inv_ts[c];
                float t0 = sinf(a), t1 = cosf(a);
                if (m->embd_scale == 2.0f) {
                    x[c] = e[c] + (e[c] + t0);
                    x[half + c] = e[half + c] + (e[half + c] + t1);
                } else {
                    x[c] = m->embd_scale * e[c] + t0;
                    x[half + c] = m->embd_scale * e[half + c] + t1;
                }
            }
        }
    for (int32_t L = 0; L < m->n_layer; L++) {
        const layer *l = &m->layers[L];
        for (int64_t r = 0; r < M; r++)
            k->layernorm(m->x + r * l->d_in, m->xn + r * l->d_in, l->d_in, l->attn_norm_w, l->attn_norm_b, m->eps);
        if ((st = mm(m, &l->qkv, m->xn, M, l->qkv_b, m->qkv)) != ORION_OK) return st;
        attn_task t = {m, l, start, len, n};
        if (l->head_dim > 1024) return orion__fail(ORION_ERR_UNSUPPORTED, "use-lite: head size above 1024");
        orion_threadpool_run(m->tp, attn_run, &t);
        if ((st = mm(m, &l->out, m->att, M, l->out_b, m->o)) != ORION_OK) return st;
        /* h = o + R(x), into o */
        if (l->has_res) {
            if ((st = mm(m, &l->res, m->x, M, l->res_b, m->xn)) != ORION_OK) return st;
            k->add(m->o, m->xn, m->o, M * l->d_out);
        } else {
            k->add(m->o, m->x, m->o, M * l->d_out);
        }
        for (int64_t r = 0; r < M; r++)
            k->layernorm(m->o + r * l->d_out, m->xn + r * l->d_out, l->d_out, l->ffn_norm_w, l->ffn_norm_b, m->eps);
        if ((st = mm(m, &l->up, m->xn, M, l->up_b, m->ff)) != ORION_OK) return st;
        for (int64_t i = 0; i < M * m->n_ff; i++) m->ff[i] = m->ff[i] > 0.0f ? m->ff[i] : 0.0f;
        if ((st = mm(m, &l->down, m->ff, M, l->down_b, m->x)) != ORION_OK) return st;
        k->add(m->x, m->o, m->x, M * l->d_out); /* x = ffn + h */
    }
    /* pooling: the mean over the text's tokens (sum / max(len, 1)), or the first token */
    int64_t D = m->n_embd;
    for (int32_t s = 0; s < n; s++) {
        float *p = m->pooled + (int64_t)s * D;
        for (int64_t c = 0; c < D; c++) p[c] = 0.0f;
        if (pooling == ORION_POOL_CLS) {
            if (len[s] > 0) memcpy(p, m->x + start[s] * D, (size_t)D * sizeof *p);
            continue;
        }
        for (int64_t i = 0; i < len[s]; i++) k->add(p, m->x + (start[s] + i) * D, p, D);
        float div = (float)(len[s] > 1 ? len[s] : 1);
        for (int64_t c = 0; c < D; c++) p[c] /= div;
    }
    if (n > 0) {
        if ((st = mm(m, &m->pool, m->pooled, n, m->pool_b, out)) != ORION_OK) return st;
        for (int64_t i = 0; i < (int64_t)n * m->pool.n_out; i++) out[i] = tanhf(out[i]);
    }
    return ORION_OK;
}

static void use_set_observer(void *state, orion_llm_observer fn, void *user) {
    use_lite *m = state;
    m->observer = fn;
    m->observer_user = user;
}

const orion__encoder_ops orion__use_lite_ops = {
    "use-lite", use_load, use_free, use_tokenize, use_forward, use_set_observer,
};
