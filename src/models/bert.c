/*
 * bert.c — the BERT sentence encoder (architecture "bert": the MiniLM
 * family, converted from a sentence-transformers directory by
 * src/formats/hf_model.c with llama.cpp's tensor names and keys).
 *
 * Immutable weights stay in the mapped GGUF in their stored type (f32, f16,
 * bf16, q8_0, q4_0, q4_1) and are only pointed at; 1-D tensors (biases,
 * LayerNorm weights) are used in place when stored as aligned f32, else
 * converted once at load. The mutable state is one arena sized at load for
 * batch_size x max_tokens rows, plus one small arena per thread for the
 * attention products.
 *
 * A batch of n sequences of lengths L_i is held "packed": the R = sum L_i
 * real tokens are rows of one matrix, sequence i at rows [off_i, off_i+L_i).
 * That is a padded batch with a padding mask where the padded positions are
 * never computed: every matrix product runs over real rows only, and
 * attention looks only at its own sequence's rows. Per layer (post-LN, as
 * the BERT paper and Hugging Face's BertModel):
 *
 *   q, k, v = x Wq + bq, x Wk + bk, x Wv + bv            x: (R, E)
 *   per sequence and head h (head size d = E / n_head):
 *     ctx_h = softmax(q_h k_h^T / sqrt(d)) v_h           (L_i, d)
 *   x = LN(x + ctx Wo + bo)          (attn_output_norm)
 *   x = LN(x + gelu(x Wup + bup) Wdown + bdown)   (layer_output_norm; exact erf GELU)
 *
 * after x = LN(word[id] + position[p] + token_type[0]) (token_embd_norm),
 * with p = 0.. per sequence. Pooling: the mean of a sequence's rows, or its
 * first row ([CLS]). L2 normalization is embed.c's.
 *
 * Threads: matrix products go through orion_matmul on the pool (it splits
 * the work); attention is split over (sequence, head) jobs on the same pool,
 * each job running its two small products with orion_matmul on its own
 * thread and arena; row-wise ops (bias + GELU, residual + LayerNorm) are
 * split over rows.
 *
 * Tokens: BERT's [CLS] pieces [SEP], the pieces from the WordPiece tokenizer
 * (wordpiece.c) built from the file's vocabulary, truncated to
 * max_tokens - 2 pieces as sentence-transformers does.
 */
#include "kernels/kernels.h"
#include "models/encoder.h"
#include "models/tensor_f32.h"
#include "models/wordpiece.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* MiniLM's max_seq_length in sentence-transformers: the default truncation
 * (capped at the model's positions). */
#define BERT_DEFAULT_MAX_TOKENS 256

typedef struct weight {
    orion_type  type;
    const void *data;  /* n_out rows of n_in elements */
    int64_t     n_in, n_out;
    size_t      row_bytes;
    const char *name;  /* tensor name, for the observer */
} weight;

typedef struct layer {
    weight       wq, wk, wv, wo;     /* (E -> E) each */
    weight       up, down;           /* (E -> F), (F -> E) */
    const float *bq, *bk, *bv, *bo;  /* (E) */
    const float *bup, *bdown;        /* (F), (E) */
    const float *ln1_w, *ln1_b;      /* attn_output_norm (E) */
    const float *ln2_w, *ln2_b;      /* layer_output_norm (E) */
} layer;

typedef struct bert {
    orion__encoder_desc desc;
    int                 n_head, head_dim, n_types;
    float               eps;
    weight              tok_embd;    /* (V, E) */
    weight              pos_embd;    /* (n_ctx_train, E) */
    weight              type_embd;   /* (n_types, E) */
    const float        *embd_ln_w, *embd_ln_b;  /* (E) */
    layer              *layers;
    float              *owned;       /* 1-D tensors converted to f32 */
    size_t              owned_used, owned_cap;
    orion__wordpiece   *wp;
    int32_t             cls_id, sep_id;
    int                 batch_size, max_tokens;
    orion_threadpool   *pool;        /* the caller's */
    int                 n_threads;
    orion_arena        *arena;       /* activations + matmul scratch */
    orion_arena       **attn_arenas; /* one per thread */
    orion_llm_observer  observer;
    void               *observer_user;
} bert;

/* ---- loading ----------------------------------------------------------------------------------- */

static orion_status get_dim(const orion_gguf *g, const char *key, bool required, int dflt, int *out) {
    uint64_t v;
    orion_status st = orion_gguf_get_u64(g, key, &v);
    if (st == ORION_ERR_NOT_FOUND && !required) {
        *out = dflt;
        return ORION_OK;
    }
    if (st != ORION_OK) return orion__fail(ORION_ERR_FORMAT, "bert: metadata key '%s' is missing or not an integer", key);
    if (v == 0 || v > (1u << 20)) return orion__fail(ORION_ERR_FORMAT, "bert: %s = %llu is out of range", key,
                                                     (unsigned long long)v);
    *out = (int)v;
    return ORION_OK;
}

static orion_status matrix(const orion_gguf *g, const char *label, const char *name, int64_t n_in, int64_t n_out,
                           weight *w) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' is missing", label, name);
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' has shape %lld x %lld, expected %lld x %lld", label, name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)n_in, (long long)n_out);
    if (t->type != ORION_TYPE_F32 && t->type != ORION_TYPE_F16 && t->type != ORION_TYPE_BF16 &&
        t->type != ORION_TYPE_Q8_0 && t->type != ORION_TYPE_Q4_0 && t->type != ORION_TYPE_Q4_1)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: tensor '%s' has an unsupported type", label, name);
    *w = (weight){t->type, t->data, n_in, n_out, orion_type_row_bytes(t->type, n_in), t->name};
    return ORION_OK;
}

static orion_status vector(bert *m, const orion_gguf *g, const char *label, const char *name, int64_t n,
                           const float **out) {
    return orion__tensor_f32(g, label, name, n, m->owned, m->owned_cap, &m->owned_used, out);
}

static orion_status load_vocab(bert *m, const orion_gguf *g, const char *label) {
    const orion_gguf_value *toks = orion_gguf_get(g, "tokenizer.ggml.tokens");
    if (!toks || toks->type != ORION_GGUF_ARRAY || toks->v.arr.elem_type != ORION_GGUF_STRING || !toks->v.arr.items ||
        toks->v.arr.count == 0 || toks->v.arr.count > (1u << 24))
        return orion__fail(ORION_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or not an array of strings", label);
    const int32_t n = (int32_t)toks->v.arr.count;
    const orion_gguf_value *types = orion_gguf_get(g, "tokenizer.ggml.token_type");
    if (types && (types->type != ORION_GGUF_ARRAY || types->v.arr.items || types->v.arr.count != (uint64_t)n))
        return orion__fail(ORION_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be %d numbers", label, n);
    /* the GGUF strings are not NUL-terminated: copy them once */
    size_t text = 0;
    for (int32_t i = 0; i < n; i++) {
        const orion_gguf_value *s = &toks->v.arr.items[i];
        if (s->type != ORION_GGUF_STRING || s->v.str.len > 1024)
            return orion__fail(ORION_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%d] is not a short string", label, i);
        text += (size_t)s->v.str.len + 1;
    }
    char *buf = orion__malloc(text);
    const char **ptrs = orion__malloc(sizeof *ptrs * (size_t)n);
    int32_t *ty = types ? orion__malloc(sizeof *ty * (size_t)n) : NULL;
    orion_status st = ORION_OK;
    if (!buf || !ptrs || (types && !ty)) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory for the vocabulary", label);
        goto done;
    }
    char *p = buf;
    for (int32_t i = 0; i < n; i++) {
        const orion_gguf_value *s = &toks->v.arr.items[i];
        memcpy(p, s->v.str.ptr, (size_t)s->v.str.len);
        p[s->v.str.len] = '\0';
        ptrs[i] = p;
        p += s->v.str.len + 1;
        if (ty) ty[i] = (int32_t)orion_gguf_array_i64(types, (uint64_t)i);
    }
    orion__wordpiece_params wpp = orion__wordpiece_default_params();
    if ((st = orion__wordpiece_init(ptrs, ty, n, true, &wpp, &m->wp)) != ORION_OK) goto done;
    m->desc.n_vocab = n;
    uint64_t id;
    m->cls_id = orion_gguf_get_u64(g, "tokenizer.ggml.cls_token_id", &id) == ORION_OK && id < (uint64_t)n
                    ? (int32_t)id
                    : orion__wordpiece_id(m->wp, "[CLS]");
    m->sep_id = orion_gguf_get_u64(g, "tokenizer.ggml.seperator_token_id", &id) == ORION_OK && id < (uint64_t)n
                    ? (int32_t)id
                    : orion__wordpiece_id(m->wp, "[SEP]");
    if (m->cls_id < 0 || m->sep_id < 0)
        st = orion__fail(ORION_ERR_FORMAT, "%s: the vocabulary has no [CLS] or [SEP] token", label);
done:
    orion__free(buf);
    orion__free(ptrs);
    orion__free(ty);
    return st;
}

static size_t weight_bytes(const weight *w) {
    return w->row_bytes * (size_t)w->n_out;
}

/* Arena bytes for one forward pass of R rows. */
static size_t scratch_size(const bert *m, int64_t R) {
    const orion__encoder_desc *d = &m->desc;
    const size_t E = (size_t)d->n_embd, F = (size_t)d->n_ff;
    /* x, q, k, v, ctx (R x E each); h (R x F); the batch's offsets */
    size_t floats = (size_t)R * (5 * E + F) + 2 * (size_t)m->batch_size + (size_t)m->n_threads + 64;
    size_t mm = 0;
    for (int l = 0; l < d->n_layer; l++) {
        const layer *L = &m->layers[l];
        const weight *ws[6] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->up, &L->down};
        for (int i = 0; i < 6; i++)
            mm = ORION_MAX(mm, orion_matmul_scratch_bytes(ws[i]->type, ws[i]->n_out, ws[i]->n_in, R, m->n_threads));
    }
    return floats * sizeof(float) + mm + 16 * 64; /* alignment slack */
}

/* One thread's attention arena: a head's k (L x d), v^T (d x L), scores
 * (L x L), output (L x d), and the two products' scratch. */
static size_t attn_scratch_size(const bert *m) {
    const size_t L = (size_t)m->max_tokens, d = (size_t)m->head_dim;
    size_t mm = ORION_MAX(orion_matmul_scratch_bytes(ORION_TYPE_F32, (int64_t)L, (int64_t)d, (int64_t)L, 1),
                          orion_matmul_scratch_bytes(ORION_TYPE_F32, (int64_t)d, (int64_t)L, (int64_t)L, 1));
    return (3 * L * d + L * L) * sizeof(float) + mm + 8 * 64;
}

static void bert_free(void *state) {
    bert *m = state;
    if (!m) return;
    if (m->attn_arenas)
        for (int i = 0; i < m->n_threads; i++) orion_arena_free(m->attn_arenas[i]);
    orion__free(m->attn_arenas);
    orion_arena_free(m->arena);
    orion__wordpiece_free(m->wp);
    orion__free(m->layers);
    orion__free(m->owned);
    orion__free(m);
}

static orion_status bert_load(orion_gguf *g, const char *label, const orion_embed_params *params,
                              orion_threadpool *pool, void **state, orion__encoder_desc *desc) {
    *state = NULL;
    bert *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
    orion__encoder_desc *d = &m->desc;
    orion_status st;
#define TRY(call)                                \
    do {                                         \
        if ((st = (call)) != ORION_OK) goto fail; \
    } while (0)
    TRY(get_dim(g, "bert.embedding_length", true, 0, &d->n_embd));
    TRY(get_dim(g, "bert.feed_forward_length", true, 0, &d->n_ff));
    TRY(get_dim(g, "bert.block_count", true, 0, &d->n_layer));
    TRY(get_dim(g, "bert.attention.head_count", true, 0, &d->n_head));
    TRY(get_dim(g, "bert.context_length", true, 0, &d->n_ctx_train));
    TRY(get_dim(g, "tokenizer.ggml.token_type_count", false, 2, &m->n_types));
    if (d->n_embd % d->n_head != 0 || d->n_layer > 1024) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: inconsistent shape (embd %d, heads %d, layers %d)", label, d->n_embd,
                         d->n_head, d->n_layer);
        goto fail;
    }
    m->n_head = d->n_head;
    m->head_dim = d->n_embd / d->n_head;
    double eps = 1e-12;
    if (orion_gguf_get(g, "bert.attention.layer_norm_epsilon") &&
        (orion_gguf_get_f64(g, "bert.attention.layer_norm_epsilon", &eps) != ORION_OK || !(eps >= 0.0 && eps < 1.0))) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: bert.attention.layer_norm_epsilon must be a number in [0, 1)", label);
        goto fail;
    }
    m->eps = (float)eps;
    uint64_t pooling = 1;
    if (orion_gguf_get(g, "bert.pooling_type") && orion_gguf_get_u64(g, "bert.pooling_type", &pooling) != ORION_OK)
        pooling = 99;
    if (pooling != 1 && pooling != 2) {
        st = orion__fail(ORION_ERR_UNSUPPORTED, "%s: bert.pooling_type must be 1 (mean) or 2 (CLS)", label);
        goto fail;
    }
    d->pooling = pooling == 2 ? ORION_POOL_CLS : ORION_POOL_MEAN;
    bool norm = false;
    if (orion_gguf_get(g, "orion.embedding.normalize") &&
        orion_gguf_get_bool(g, "orion.embedding.normalize", &norm) != ORION_OK) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: orion.embedding.normalize must be a bool", label);
        goto fail;
    }
    d->normalize = norm;
    d->dim = d->n_embd;

    /* truncation and batch */
    m->max_tokens = params->max_tokens > 0 ? params->max_tokens : ORION_MIN(BERT_DEFAULT_MAX_TOKENS, d->n_ctx_train);
    if (m->max_tokens < 2 || m->max_tokens > d->n_ctx_train) {
        st = orion__fail(ORION_ERR_RANGE, "%s: max_tokens %d is outside [2, %d] (the model's positions)", label,
                         m->max_tokens, d->n_ctx_train);
        goto fail;
    }
    d->max_tokens = m->max_tokens;
    m->batch_size = params->batch_size;
    m->pool = pool;
    m->n_threads = orion_threadpool_n_threads(pool);

    TRY(load_vocab(m, g, label));

    const int64_t E = d->n_embd, F = d->n_ff;
    TRY(matrix(g, label, "token_embd.weight", E, d->n_vocab, &m->tok_embd));
    TRY(matrix(g, label, "position_embd.weight", E, d->n_ctx_train, &m->pos_embd));
    TRY(matrix(g, label, "token_types.weight", E, m->n_types, &m->type_embd));
    m->owned_cap = (size_t)E * (2 + 10 * (size_t)d->n_layer) + (size_t)F * (size_t)d->n_layer;
    m->owned = orion__malloc(sizeof(float) * m->owned_cap);
    m->layers = orion__calloc((size_t)d->n_layer, sizeof *m->layers);
    if (!m->owned || !m->layers) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
        goto fail;
    }
    TRY(vector(m, g, label, "token_embd_norm.weight", E, &m->embd_ln_w));
    TRY(vector(m, g, label, "token_embd_norm.bias", E, &m->embd_ln_b));
    size_t wbytes = weight_bytes(&m->tok_embd) + weight_bytes(&m->pos_embd) + weight_bytes(&m->type_embd);
    d->type = m->tok_embd.type;
    for (int l = 0; l < d->n_layer; l++) {
        layer *L = &m->layers[l];
        char n[96];
#define MAT(suffix, field, nin, nout)                                 \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                    \
    TRY(matrix(g, label, n, nin, nout, &L->field));                   \
    wbytes += weight_bytes(&L->field);
#define VEC(suffix, field, len)                                       \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                    \
    TRY(vector(m, g, label, n, len, &L->field));                      \
    wbytes += (size_t)(len) * 4;
        MAT("attn_q.weight", wq, E, E);
        MAT("attn_k.weight", wk, E, E);
        MAT("attn_v.weight", wv, E, E);
        MAT("attn_output.weight", wo, E, E);
        MAT("ffn_up.weight", up, E, F);
        MAT("ffn_down.weight", down, F, E);
        VEC("attn_q.bias", bq, E);
        VEC("attn_k.bias", bk, E);
        VEC("attn_v.bias", bv, E);
        VEC("attn_output.bias", bo, E);
        VEC("ffn_up.bias", bup, F);
        VEC("ffn_down.bias", bdown, E);
        VEC("attn_output_norm.weight", ln1_w, E);
        VEC("attn_output_norm.bias", ln1_b, E);
        VEC("layer_output_norm.weight", ln2_w, E);
        VEC("layer_output_norm.bias", ln2_b, E);
#undef MAT
#undef VEC
        if (l == 0) d->type = L->up.type;
    }
    d->weight_bytes = wbytes + 2 * (size_t)E * 4;

    /* scratch: batch_size x max_tokens rows, checked for overflow */
    size_t rows;
    if (!orion__mul_ok((size_t)m->batch_size, (size_t)m->max_tokens, &rows) || rows > (1u << 26)) {
        st = orion__fail(ORION_ERR_RANGE, "%s: batch_size %d x max_tokens %d is too large", label, m->batch_size,
                         m->max_tokens);
        goto fail;
    }
    size_t main_bytes = scratch_size(m, (int64_t)rows), attn_bytes = attn_scratch_size(m);
    TRY(orion_arena_init(main_bytes, &m->arena));
    m->attn_arenas = orion__calloc((size_t)m->n_threads, sizeof *m->attn_arenas);
    if (!m->attn_arenas) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
        goto fail;
    }
    for (int i = 0; i < m->n_threads; i++) TRY(orion_arena_init(attn_bytes, &m->attn_arenas[i]));
    d->scratch_bytes = main_bytes + attn_bytes * (size_t)m->n_threads;
#undef TRY
    *desc = *d;
    *state = m;
    return ORION_OK;
fail:
    bert_free(m);
    return st;
}

/* ---- tokens -------------------------------------------------------------------------------------- */

static orion_status bert_tokenize(const void *state, const char *text, size_t len, int max_tokens, int32_t *ids,
                                  int32_t n_max, int32_t *n_out) {
    const bert *m = state;
    if (max_tokens < 2) return orion__fail(ORION_ERR_INVALID_ARG, "bert: max_tokens %d leaves no room for [CLS] [SEP]",
                                           max_tokens);
    const int32_t cap = max_tokens - 2; /* word pieces kept */
    int32_t total = 0, dummy[1];
    const int32_t room = n_max >= 2 ? ORION_MIN(cap, n_max - 2) : 0;
    orion_status st = orion__wordpiece_encode(m->wp, text, len, n_max >= 2 ? ids + 1 : dummy, room, &total);
    if (st != ORION_OK) return st;
    const int32_t kept = ORION_MIN(total, cap);
    *n_out = kept + 2;
    if (*n_out > n_max) return ORION_OK; /* the caller reports the size */
    ids[0] = m->cls_id;
    ids[kept + 1] = m->sep_id;
    return ORION_OK;
}

/* ---- forward ------------------------------------------------------------------------------------ */

static orion_status matmul(bert *m, const weight *w, const float *x, int64_t n, float *y) {
    if (m->observer) m->observer(m->observer_user, w->name, x, n, w->n_in);
    size_t mark = orion_arena_mark(m->arena);
    orion_status st = orion_matmul(m->pool, m->arena, w->type, w->data, w->n_out, w->n_in, x, n, y);
    orion_arena_rewind(m->arena, mark);
    return st;
}

/* Row-wise ops split over threads: y[r] = op(...) for r < n_rows. */
typedef enum row_op {
    ROW_BIAS,       /* x[r] += bias */
    ROW_BIAS_GELU,  /* x[r] = gelu(x[r] + bias) */
    ROW_RESID_LN,   /* x[r] = LN(x[r] + t[r] + bias) */
} row_op;

typedef struct row_task {
    row_op       op;
    int64_t      n_rows, n;
    float       *x;
    const float *t, *bias, *gamma, *beta;
    float        eps;
} row_task;

static void rows_run(void *arg, int ith, int nth) {
    const row_task *t = arg;
    const orion_kernels *k = orion__kernels();
    const int64_t per = (t->n_rows + nth - 1) / nth, r0 = per * ith, r1 = ORION_MIN(t->n_rows, r0 + per);
    for (int64_t r = r0; r < r1; r++) {
        float *x = t->x + r * t->n;
        switch (t->op) {
        case ROW_BIAS: k->add(x, t->bias, x, t->n); break;
        case ROW_BIAS_GELU:
            k->add(x, t->bias, x, t->n);
            k->gelu(x, x, t->n);
            break;
        case ROW_RESID_LN:
            k->add(x, t->t + r * t->n, x, t->n);
            k->add(x, t->bias, x, t->n);
            k->layernorm(x, x, t->n, t->gamma, t->beta, t->eps);
            break;
        }
    }
}

static void rows(bert *m, row_task *t) {
    if (t->n_rows * t->n < 16384) rows_run(t, 0, 1); /* waking the pool costs more */
    else orion_threadpool_run(m->pool, rows_run, t);
}

typedef struct attn_task {
    bert          *m;
    int            n_seq;
    const int32_t *off, *len;   /* (n_seq): first row and length of each sequence */
    const float   *q, *k, *v;   /* (R, E) */
    float         *ctx;         /* (R, E) */
    orion_status  *status;      /* (n_threads): each thread's first error */
} attn_task;

/* Jobs (sequence, head), strided over threads. Per job, with L rows and
 * head size d: kh = k_h (L x d), vt = v_h^T (d x L) copied contiguous;
 * s = q_h kh^T (L x L) scaled and soft-maxed per row; o = s vt^T (L x d). */
static void attention(void *arg, int ith, int nth) {
    attn_task *t = arg;
    bert *m = t->m;
    const orion_kernels *k = orion__kernels();
    const int H = m->n_head, d = m->head_dim;
    const int64_t E = m->desc.n_embd;
    const float scale = 1.0f / sqrtf((float)d);
    orion_arena *a = m->attn_arenas[ith];
    orion_status st = ORION_OK;
    for (int job = ith; job < t->n_seq * H && st == ORION_OK; job += nth) {
        const int s = job / H, h = job % H;
        const int64_t L = t->len[s], r0 = t->off[s];
        orion_arena_reset(a);
        float *qh = orion_arena_alloc(a, sizeof(float) * (size_t)(L * d), 64);
        float *kh = orion_arena_alloc(a, sizeof(float) * (size_t)(L * d), 64);
        float *vt = orion_arena_alloc(a, sizeof(float) * (size_t)(L * d), 64);
        float *sc = orion_arena_alloc(a, sizeof(float) * (size_t)(L * L), 64);
        float *o = qh; /* q_h is dead once the scores exist */
        if (!qh || !kh || !vt || !sc) {
            st = orion__fail(ORION_ERR_NOMEM, "bert: attention scratch too small for %lld tokens", (long long)L);
            break;
        }
        for (int64_t i = 0; i < L; i++) {
            const size_t row = (size_t)(r0 + i) * (size_t)E + (size_t)h * (size_t)d;
            memcpy(qh + i * d, t->q + row, sizeof(float) * (size_t)d);
            memcpy(kh + i * d, t->k + row, sizeof(float) * (size_t)d);
            for (int c = 0; c < d; c++) vt[(size_t)c * (size_t)L + (size_t)i] = t->v[row + (size_t)c];
        }
        size_t mark = orion_arena_mark(a);
        st = orion_matmul(NULL, a, ORION_TYPE_F32, kh, L, d, qh, L, sc); /* sc[i][j] = q_i . k_j */
        orion_arena_rewind(a, mark);
        if (st != ORION_OK) break;
        for (int64_t i = 0; i < L; i++) {
            k->scale(sc + i * L, scale, sc + i * L, L);
            k->softmax(sc + i * L, L);
        }
        st = orion_matmul(NULL, a, ORION_TYPE_F32, vt, d, L, sc, L, o); /* o[i][c] = sum_j p_ij v_jc */
        orion_arena_rewind(a, mark);
        if (st != ORION_OK) break;
        for (int64_t i = 0; i < L; i++)
            memcpy(t->ctx + (size_t)(r0 + i) * (size_t)E + (size_t)h * (size_t)d, o + i * d, sizeof(float) * (size_t)d);
    }
    t->status[ith] = st;
}

static orion_status bert_forward(void *state, const int32_t *const *ids, const int32_t *n_ids, int32_t n,
                                 orion_pooling pooling, float *out) {
    bert *m = state;
    const orion__encoder_desc *d = &m->desc;
    const orion_kernels *k = orion__kernels();
    if (n <= 0 || n > m->batch_size || !ids || !n_ids || !out)
        return orion__fail(ORION_ERR_INVALID_ARG, "bert: bad batch of %d sequences (batch_size %d)", (int)n,
                           m->batch_size);
    int64_t R = 0;
    for (int32_t i = 0; i < n; i++) {
        if (n_ids[i] < 1 || n_ids[i] > m->max_tokens)
            return orion__fail(ORION_ERR_RANGE, "bert: sequence %d has %d tokens, outside [1, %d]", (int)i,
                               (int)n_ids[i], m->max_tokens);
        for (int32_t j = 0; j < n_ids[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= d->n_vocab)
                return orion__fail(ORION_ERR_INVALID_ARG, "bert: sequence %d: token %d at %d is outside [0, %d)",
                                   (int)i, (int)ids[i][j], (int)j, d->n_vocab);
        R += n_ids[i];
    }
    const int64_t E = d->n_embd, F = d->n_ff;
    orion_arena *a = m->arena;
    orion_arena_reset(a);
#define TAKE(type, count) (type *)orion_arena_alloc(a, sizeof(type) * (size_t)(count), 64)
    float *x = TAKE(float, R * E), *q = TAKE(float, R * E), *kk = TAKE(float, R * E), *v = TAKE(float, R * E);
    float *ctx = TAKE(float, R * E), *h = TAKE(float, R * F);
    int32_t *off = TAKE(int32_t, n), *len = TAKE(int32_t, n);
    orion_status *status = TAKE(orion_status, m->n_threads);
#undef TAKE
    if (!x || !q || !kk || !v || !ctx || !h || !off || !len || !status)
        return orion__fail(ORION_ERR_NOMEM, "bert: scratch arena too small (%zu bytes) for %lld tokens",
                           orion_arena_capacity(a), (long long)R);
    /* embeddings: word + position + token type 0, then LayerNorm */
    int64_t r = 0;
    float *tmp = ctx; /* free until attention */
    for (int32_t i = 0; i < n; i++) {
        off[i] = (int32_t)r;
        len[i] = n_ids[i];
        for (int32_t p = 0; p < n_ids[i]; p++, r++) {
            float *xr = x + r * E;
            k->dequantize_row[m->tok_embd.type]((const uint8_t *)m->tok_embd.data +
                                                    (size_t)ids[i][p] * m->tok_embd.row_bytes, xr, E);
            k->dequantize_row[m->pos_embd.type]((const uint8_t *)m->pos_embd.data + (size_t)p * m->pos_embd.row_bytes,
                                                tmp, E);
            k->add(xr, tmp, xr, E);
            k->dequantize_row[m->type_embd.type](m->type_embd.data, tmp, E);
            k->add(xr, tmp, xr, E);
            k->layernorm(xr, xr, E, m->embd_ln_w, m->embd_ln_b, m->eps);
        }
    }
    orion_status st = ORION_OK;
    for (int l = 0; l < d->n_layer; l++) {
        const layer *L = &m->layers[l];
        if ((st = matmul(m, &L->wq, x, R, q)) != ORION_OK) return st;
        if ((st = matmul(m, &L->wk, x, R, kk)) != ORION_OK) return st;
        if ((st = matmul(m, &L->wv, x, R, v)) != ORION_OK) return st;
        row_task bt = {ROW_BIAS, R, E, q, NULL, L->bq, NULL, NULL, 0};
        rows(m, &bt);
        bt.x = kk, bt.bias = L->bk;
        rows(m, &bt);
        bt.x = v, bt.bias = L->bv;
        rows(m, &bt);
        attn_task at = {m, n, off, len, q, kk, v, ctx, status};
        for (int i = 0; i < m->n_threads; i++) status[i] = ORION_OK;
        if (m->n_threads > 1 && (int64_t)n * m->n_head > 1) orion_threadpool_run(m->pool, attention, &at);
        else attention(&at, 0, 1);
        for (int i = 0; i < m->n_threads; i++)
            if (at.status[i] != ORION_OK) return at.status[i];
        float *t = q; /* q is dead after attention */
        if ((st = matmul(m, &L->wo, ctx, R, t)) != ORION_OK) return st;
        row_task ln1 = {ROW_RESID_LN, R, E, x, t, L->bo, L->ln1_w, L->ln1_b, m->eps};
        rows(m, &ln1);
        if ((st = matmul(m, &L->up, x, R, h)) != ORION_OK) return st;
        row_task gt = {ROW_BIAS_GELU, R, F, h, NULL, L->bup, NULL, NULL, 0};
        rows(m, &gt);
        if ((st = matmul(m, &L->down, h, R, t)) != ORION_OK) return st;
        row_task ln2 = {ROW_RESID_LN, R, E, x, t, L->bdown, L->ln2_w, L->ln2_b, m->eps};
        rows(m, &ln2);
    }
    /* pooling */
    for (int32_t i = 0; i < n; i++) {
        float *o = out + (size_t)i * (size_t)E;
        const float *xs = x + (size_t)off[i] * (size_t)E;
        if (pooling == ORION_POOL_CLS) {
            memcpy(o, xs, sizeof(float) * (size_t)E);
            continue;
        }
        for (int64_t c = 0; c < E; c++) {
            double s = 0;
            for (int32_t p = 0; p < len[i]; p++) s += xs[(size_t)p * (size_t)E + (size_t)c];
            o[c] = (float)(s / len[i]);
        }
    }
    return ORION_OK;
}

static void bert_set_observer(void *state, orion_llm_observer fn, void *user) {
    bert *m = state;
    m->observer = fn;
    m->observer_user = user;
}

const orion__encoder_ops orion__bert_ops = {
    "bert", bert_load, bert_free, bert_tokenize, bert_forward, bert_set_observer,
};
