/*
 * llama.c — the Llama/Mistral decoder (orion_llm).
 *
 * Immutable weights stay in the mapped file in their stored type (GGUF, or a
 * llama2.c checkpoint read as f32) and are only pointed at; the mutable state
 * is the KV cache, allocated once for n_ctx positions, and an arena of
 * scratch sized at load for n_batch tokens. Per layer, for a batch of B
 * tokens at positions pos..pos+B-1:
 *
 *   xb = rmsnorm(x) * attn_norm                      x: (B, n_embd)
 *   q, k, v = Wq xb, Wk xb, Wv xb                    q: (B, n_head*hd), k, v: (B, n_head_kv*hd)
 *   rotate q and k (adjacent pairs, llama.cpp's "normal" rope, freq_base)
 *   append k, v to the cache (f16 by default)        cache: (layer, n_head_kv, n_ctx, hd)
 *   per token and head: softmax(q.K / sqrt(hd)) V over the causal (and, for
 *     Mistral, sliding) window; heads share KV heads in groups (GQA/MQA)
 *   x += Wo att
 *   xb = rmsnorm(x) * ffn_norm
 *   x += Wdown (silu(Wgate xb) * Wup xb)
 *
 * then logits = Woutput (rmsnorm(x) * output_norm), with Woutput = the token
 * embedding when the head is tied. Matrix products go through orion_matmul
 * (a GEMM for B > 1, matrix-vector for B == 1) on the model's thread pool;
 * attention is split over (token, head) pairs on the same pool.
 */
#include "formats/gguf_internal.h"
#include "formats/llama2c.h"
#include "kernels/kernels.h"
#include "models/spm_vocab.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct weight {
    orion_type  type;
    const void *data;  /* n_out rows of n_in elements */
    int64_t     n_in, n_out;
    size_t      row_bytes;
    const char *name;  /* tensor name (GGUF), NULL otherwise */
} weight;

typedef struct layer {
    const float *attn_norm, *ffn_norm; /* (n_embd) */
    weight       wq, wk, wv, wo;       /* (n_embd -> q_dim), (n_embd -> kv_dim) x2, (q_dim -> n_embd) */
    weight       gate, up, down;       /* (n_embd -> n_ff) x2, (n_ff -> n_embd) */
} layer;

struct orion_llm {
    orion_llm_info   info;
    orion_llm_observer observer;  /* sees every matrix product's input */
    void            *observer_user;
    orion_gguf      *gguf;   /* one of these two owns the mapping */
    orion_llama2c   *l2c;
    orion_spm_vocab *vocab;
    weight           tok_embd, output;
    const float     *output_norm;
    layer           *layers;
    float           *owned_norms;  /* norms converted to f32 when stored otherwise */
    int              n_batch;
    orion_type       kv_type;
    uint8_t         *kv_k, *kv_v;   /* (n_layer, n_head_kv, n_ctx, head_dim) in kv_type: a head's
                                       positions are contiguous, so attention streams them */
    size_t           kv_head_bytes; /* one position of one KV head: head_dim elements */
    float           *inv_freq;      /* (n_rot / 2) */
    orion_threadpool *pool;
    orion_arena     *arena;
    orion_chat_template chat_template;
};

orion_chat_template orion__chat_template_detect(const char *jinja, size_t len);

orion_llm_params orion_llm_default_params(void) {
    orion_llm_params p = {0, 256, 0, ORION_TYPE_F16, NULL};
    return p;
}

/* ---- loading ---------------------------------------------------------------------- */

static orion_status tensor_weight(const orion_gguf *g, const char *name, int64_t n_in, int64_t n_out, weight *w,
                                  bool optional) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) {
        if (optional) {
            memset(w, 0, sizeof *w);
            return ORION_OK;
        }
        return orion__fail(ORION_ERR_FORMAT, "model: tensor '%s' is missing", name);
    }
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
        return orion__fail(ORION_ERR_FORMAT, "model: tensor '%s' has shape %lld x %lld, expected %lld x %lld", name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)n_in, (long long)n_out);
    *w = (weight){t->type, t->data, n_in, n_out, orion_type_row_bytes(t->type, n_in), t->name};
    return ORION_OK;
}

/* A 1-D norm weight as f32: pointed to when stored as f32, else converted
 * into `scratch` (n floats). */
static orion_status norm_weight(const orion_gguf *g, const char *name, int64_t n, float *scratch, const float **out) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) return orion__fail(ORION_ERR_FORMAT, "model: tensor '%s' is missing", name);
    if (t->n_elems != n)
        return orion__fail(ORION_ERR_FORMAT, "model: tensor '%s' has %lld elements, expected %lld", name,
                           (long long)t->n_elems, (long long)n);
    if (t->type == ORION_TYPE_F32 && ((uintptr_t)t->data % 4) == 0) {
        *out = t->data;
        return ORION_OK;
    }
    orion_status st = orion_dequantize(t->type, t->data, scratch, n);
    *out = scratch;
    return st;
}

static int get_u32(const orion_gguf *g, const char *arch, const char *suffix, int dflt, bool required,
                   orion_status *st) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint64_t v;
    if (orion_gguf_get_u64(g, key, &v) != ORION_OK) {
        if (required && *st == ORION_OK)
            *st = orion__fail(ORION_ERR_FORMAT, "model: metadata key '%s' is missing or not an integer", key);
        return dflt;
    }
    if (v > (1u << 24)) {
        if (*st == ORION_OK) *st = orion__fail(ORION_ERR_FORMAT, "model: %s = %llu is out of range", key,
                                               (unsigned long long)v);
        return dflt;
    }
    return (int)v;
}

static orion_status load_gguf(orion_llm *m, const char *path) {
    orion_status st = orion_gguf_open(path, &m->gguf);
    if (st != ORION_OK) return st;
    const orion_gguf *g = m->gguf;
    orion_llm_info *in = &m->info;
    if (orion_gguf_get_str(g, "general.architecture", in->arch, sizeof in->arch) != ORION_OK)
        return orion__fail(ORION_ERR_FORMAT, "%s: general.architecture is missing", path);
    if (strcmp(in->arch, "llama") != 0 && strcmp(in->arch, "mistral") != 0)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: architecture '%s' is not a Llama/Mistral decoder", path,
                           in->arch);
    st = ORION_OK;
    in->n_embd = get_u32(g, in->arch, "embedding_length", 0, true, &st);
    in->n_ff = get_u32(g, in->arch, "feed_forward_length", 0, true, &st);
    in->n_layer = get_u32(g, in->arch, "block_count", 0, true, &st);
    in->n_head = get_u32(g, in->arch, "attention.head_count", 0, true, &st);
    in->n_head_kv = get_u32(g, in->arch, "attention.head_count_kv", in->n_head, false, &st);
    in->n_ctx_train = get_u32(g, in->arch, "context_length", 2048, false, &st);
    in->sliding_window = get_u32(g, in->arch, "attention.sliding_window", 0, false, &st);
    if (st != ORION_OK) return st;
    if (in->n_embd <= 0 || in->n_head <= 0 || in->n_layer <= 0 || in->n_ff <= 0 || in->n_head_kv <= 0 ||
        in->n_embd % in->n_head != 0 || in->n_head % in->n_head_kv != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: inconsistent shape (embd %d, heads %d/%d, layers %d, ff %d)", path,
                           in->n_embd, in->n_head, in->n_head_kv, in->n_layer, in->n_ff);
    in->head_dim = in->n_embd / in->n_head;
    in->n_rot = get_u32(g, in->arch, "rope.dimension_count", in->head_dim, false, &st);
    if (st != ORION_OK) return st;
    if (in->n_rot <= 0 || in->n_rot > in->head_dim || in->n_rot % 2)
        return orion__fail(ORION_ERR_FORMAT, "%s: rope.dimension_count %d does not fit head size %d", path, in->n_rot,
                           in->head_dim);
    char key[128];
    double d;
    snprintf(key, sizeof key, "%s.rope.freq_base", in->arch);
    in->rope_freq_base = orion_gguf_get_f64(g, key, &d) == ORION_OK ? (float)d : 10000.0f;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", in->arch);
    in->rms_eps = orion_gguf_get_f64(g, key, &d) == ORION_OK ? (float)d : 1e-5f;
    if (!(in->rope_freq_base > 0.0f) || !(in->rms_eps >= 0.0f))
        return orion__fail(ORION_ERR_FORMAT, "%s: bad rope.freq_base or rms epsilon", path);
    /* rope scaling: "linear" divides positions by the factor; others are
     * refused rather than run wrongly */
    char scaling[32] = "";
    snprintf(key, sizeof key, "%s.rope.scaling.type", in->arch);
    if (orion_gguf_get_str(g, key, scaling, sizeof scaling) == ORION_OK && strcmp(scaling, "none") != 0) {
        if (strcmp(scaling, "linear") != 0)
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: rope scaling '%s' is not supported (linear is)", path,
                               scaling);
        snprintf(key, sizeof key, "%s.rope.scaling.factor", in->arch);
        if (orion_gguf_get_f64(g, key, &d) != ORION_OK || !(d >= 1.0 && d <= 1024.0))
            return orion__fail(ORION_ERR_FORMAT, "%s: %s must be a number in [1, 1024]", path, key);
        in->rope_freq_scale = (float)(1.0 / d);
    }

    if ((st = orion__spm_vocab_from_gguf(g, &m->vocab)) != ORION_OK) return st;
    const orion_gguf_value *tmpl = orion_gguf_get(g, "tokenizer.chat_template");
    m->chat_template = (tmpl && tmpl->type == ORION_GGUF_STRING)
                           ? orion__chat_template_detect(tmpl->v.str.ptr, (size_t)tmpl->v.str.len)
                           : ORION_CHAT_LLAMA2;
    in->n_vocab = m->vocab->n;

    const int64_t E = in->n_embd, F = in->n_ff, QD = (int64_t)in->n_head * in->head_dim,
                  KD = (int64_t)in->n_head_kv * in->head_dim, V = in->n_vocab;
    if ((st = tensor_weight(g, "token_embd.weight", E, V, &m->tok_embd, false)) != ORION_OK) return st;
    if ((st = tensor_weight(g, "output.weight", E, V, &m->output, true)) != ORION_OK) return st;
    if (!m->output.data) m->output = m->tok_embd; /* tied head */
    m->owned_norms = orion__malloc(sizeof(float) * (size_t)E * (2 * (size_t)in->n_layer + 1));
    m->layers = orion__calloc((size_t)in->n_layer, sizeof *m->layers);
    if (!m->owned_norms || !m->layers) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    if ((st = norm_weight(g, "output_norm.weight", E, m->owned_norms, &m->output_norm)) != ORION_OK) return st;
    for (int l = 0; l < in->n_layer; l++) {
        layer *L = &m->layers[l];
        char n[96];
#define W(suffix, field, nin, nout)                                                           \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                                             \
    if ((st = tensor_weight(g, n, nin, nout, &L->field, false)) != ORION_OK) return st;
        W("attn_q.weight", wq, E, QD);
        W("attn_k.weight", wk, E, KD);
        W("attn_v.weight", wv, E, KD);
        W("attn_output.weight", wo, QD, E);
        W("ffn_gate.weight", gate, E, F);
        W("ffn_up.weight", up, E, F);
        W("ffn_down.weight", down, F, E);
#undef W
        float *base = m->owned_norms + E * (1 + 2 * (int64_t)l);
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
        if ((st = norm_weight(g, n, E, base, &L->attn_norm)) != ORION_OK) return st;
        snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", l);
        if ((st = norm_weight(g, n, E, base + E, &L->ffn_norm)) != ORION_OK) return st;
    }
    return ORION_OK;
}

static weight f32_weight(const float *p, int64_t n_in, int64_t n_out) {
    weight w = {ORION_TYPE_F32, p, n_in, n_out, (size_t)n_in * 4, NULL};
    return w;
}

orion_chat_template orion_llm_chat_template(const orion_llm *m) {
    return m->chat_template ? m->chat_template : ORION_CHAT_LLAMA2;
}

static orion_status load_llama2c(orion_llm *m, const char *path, const char *tokenizer) {
    orion_status st = orion__llama2c_open(path, &m->l2c);
    if (st != ORION_OK) return st;
    const orion_llama2c *c = m->l2c;
    orion_llm_info *in = &m->info;
    snprintf(in->arch, sizeof in->arch, "llama");
    in->n_embd = c->dim, in->n_ff = c->hidden_dim, in->n_layer = c->n_layers;
    in->n_head = c->n_heads, in->n_head_kv = c->n_kv_heads, in->n_ctx_train = c->seq_len;
    in->head_dim = c->dim / c->n_heads, in->n_rot = in->head_dim;
    in->rope_freq_base = 10000.0f, in->rms_eps = 1e-5f;
    char tok_path[4096];
    if (!tokenizer) { /* tokenizer.bin next to the checkpoint */
        const char *slash = strrchr(path, '/');
        int dir = slash ? (int)(slash - path) + 1 : 0;
        snprintf(tok_path, sizeof tok_path, "%.*stokenizer.bin", dir, path);
        tokenizer = tok_path;
    }
    if ((st = orion__spm_vocab_from_llama2c(tokenizer, c->vocab_size, &m->vocab)) != ORION_OK) return st;
    in->n_vocab = c->vocab_size;
    const int64_t E = c->dim, F = c->hidden_dim, KD = (int64_t)in->head_dim * c->n_kv_heads;
    m->tok_embd = f32_weight(c->token_embd, E, c->vocab_size);
    m->output = f32_weight(c->wcls, E, c->vocab_size);
    m->output_norm = c->rms_final;
    m->layers = orion__calloc((size_t)in->n_layer, sizeof *m->layers);
    if (!m->layers) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t l = 0; l < in->n_layer; l++) {
        layer *L = &m->layers[l];
        L->attn_norm = c->rms_att + l * E;
        L->ffn_norm = c->rms_ffn + l * E;
        L->wq = f32_weight(c->wq + l * E * E, E, E);
        L->wk = f32_weight(c->wk + l * KD * E, E, KD);
        L->wv = f32_weight(c->wv + l * KD * E, E, KD);
        L->wo = f32_weight(c->wo + l * E * E, E, E);
        L->gate = f32_weight(c->w1 + l * F * E, E, F);
        L->down = f32_weight(c->w2 + l * E * F, F, E);
        L->up = f32_weight(c->w3 + l * F * E, E, F);
    }
    return ORION_OK;
}

static size_t weights_bytes(const orion_llm *m) {
    size_t n = m->tok_embd.row_bytes * (size_t)m->tok_embd.n_out;
    if (m->output.data != m->tok_embd.data) n += m->output.row_bytes * (size_t)m->output.n_out;
    for (int l = 0; l < m->info.n_layer; l++) {
        const layer *L = &m->layers[l];
        const weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++) n += ws[i]->row_bytes * (size_t)ws[i]->n_out;
        n += 2 * (size_t)m->info.n_embd * 4;
    }
    return n + (size_t)m->info.n_embd * 4;
}

/* Scratch for one batch: activations, attention scores per thread, and the
 * largest matmul's temporary buffers. */
static size_t scratch_size(const orion_llm *m, int n_threads) {
    const orion_llm_info *in = &m->info;
    const size_t B = (size_t)m->n_batch, E = (size_t)in->n_embd, F = (size_t)in->n_ff;
    const size_t QD = (size_t)in->n_head * (size_t)in->head_dim, KD = (size_t)in->n_head_kv * (size_t)in->head_dim;
    const size_t group = (size_t)(in->n_head / in->n_head_kv); /* most attention scores per thread: group x n_ctx */
    size_t floats = B * (3 * E + QD + 2 * KD + QD + 2 * F) +
                    (size_t)n_threads * (group * (size_t)in->n_ctx + 2 * 64 + (size_t)in->head_dim) +
                    (size_t)in->n_vocab + E;
    size_t mm = 0;
    for (int l = 0; l < in->n_layer; l++) {
        const layer *L = &m->layers[l];
        const weight *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (int i = 0; i < 7; i++)
            mm = ORION_MAX(mm, orion_matmul_scratch_bytes(ws[i]->type, ws[i]->n_out, ws[i]->n_in, (int64_t)B, n_threads));
    }
    mm = ORION_MAX(mm, orion_matmul_scratch_bytes(m->output.type, m->output.n_out, m->output.n_in, (int64_t)B, n_threads));
    return floats * sizeof(float) + mm + 64 * 64; /* alignment slack */
}

orion_status orion_llm_load(const char *path, const orion_llm_params *params, orion_llm **out) {
    if (!path || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_llm_load: NULL argument");
    *out = NULL;
    orion_llm_params p = params ? *params : orion_llm_default_params();
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_batch > 8192)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llm_load: negative or huge n_ctx/n_batch/n_threads");
    if (p.kv_type != ORION_TYPE_F16 && p.kv_type != ORION_TYPE_F32 && p.kv_type != ORION_TYPE_Q8_0)
        return orion__fail(ORION_ERR_UNSUPPORTED, "orion_llm_load: KV cache type %s is not supported (f16, f32, q8_0)",
                           orion_type_is_supported((int)p.kv_type) ? orion_type_name(p.kv_type) : "?");
    orion_llm *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    orion_status st;
    m->info.rope_freq_scale = 1.0f;
    st = orion_gguf_is_file(path) ? load_gguf(m, path) : load_llama2c(m, path, p.tokenizer);
    if (st != ORION_OK) goto fail;

    orion_llm_info *in = &m->info;
    in->bos = m->vocab->bos;
    in->eos = m->vocab->eos;
    in->n_ctx = p.n_ctx ? p.n_ctx : ORION_MIN(in->n_ctx_train > 0 ? in->n_ctx_train : 2048, 4096);
    m->n_batch = p.n_batch ? p.n_batch : 256;
    m->n_batch = ORION_MIN(m->n_batch, in->n_ctx);
    m->kv_type = p.kv_type;
    in->weight_bytes = weights_bytes(m);

    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = p.n_threads;
    if ((st = orion_threadpool_init(&tp, &m->pool)) != ORION_OK) goto fail;

    /* A q8_0 cache stores each head's slice of a row as whole blocks of 32,
     * so a head's keys can be dotted and its values dequantized alone. */
    if (m->kv_type == ORION_TYPE_Q8_0 && in->head_dim % 32 != 0) {
        st = orion__fail(ORION_ERR_UNSUPPORTED, "%s: a q8_0 KV cache needs a head size that is a multiple of 32 (it is %d)",
                         path, in->head_dim);
        goto fail;
    }
    m->kv_head_bytes = orion_type_row_bytes(m->kv_type, in->head_dim);
    size_t kv_one; /* K or V: every layer, KV head and position */
    if (!orion__mul_ok(m->kv_head_bytes, (size_t)in->n_layer * (size_t)in->n_head_kv * (size_t)in->n_ctx, &kv_one)) {
        st = orion__fail(ORION_ERR_RANGE, "%s: KV cache size overflows", path);
        goto fail;
    }
    in->kv_bytes = 2 * kv_one;
    m->kv_k = orion__malloc_aligned(kv_one ? kv_one : 1, 64);
    m->kv_v = orion__malloc_aligned(kv_one ? kv_one : 1, 64);
    m->inv_freq = orion__malloc(sizeof(float) * (size_t)(in->n_rot / 2 + 1));
    if (!m->kv_k || !m->kv_v || !m->inv_freq) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate the KV cache (%zu bytes for %d positions)", path,
                         in->kv_bytes, in->n_ctx);
        goto fail;
    }
    for (int i = 0; i < in->n_rot / 2; i++)
        m->inv_freq[i] = in->rope_freq_scale / powf(in->rope_freq_base, (float)(2 * i) / (float)in->n_rot);
    in->scratch_bytes = scratch_size(m, orion_threadpool_n_threads(m->pool));
    if ((st = orion_arena_init(in->scratch_bytes, &m->arena)) != ORION_OK) goto fail;
    *out = m;
    return ORION_OK;
fail:
    orion_llm_free(m);
    return st;
}

void orion_llm_free(orion_llm *m) {
    if (!m) return;
    orion_arena_free(m->arena);
    orion_threadpool_free(m->pool);
    orion__free_aligned(m->kv_k);
    orion__free_aligned(m->kv_v);
    orion__free(m->inv_freq);
    orion__free(m->layers);
    orion__free(m->owned_norms);
    orion__spm_vocab_free(m->vocab);
    orion_gguf_free(m->gguf);
    orion__llama2c_free(m->l2c);
    orion__free(m);
}

void orion_llm_get_info(const orion_llm *m, orion_llm_info *out) {
    *out = m->info;
}

orion_status orion_llm_tokenize(const orion_llm *m, const char *text, size_t len, bool add_bos, int32_t *tokens,
                                int32_t n_max, int32_t *n_out) {
    return orion__spm_tokenize(m->vocab, text, len, add_bos, false, tokens, n_max, n_out);
}

orion_status orion_llm_tokenize_special(const orion_llm *m, const char *text, size_t len, bool add_bos,
                                        int32_t *tokens, int32_t n_max, int32_t *n_out) {
    return orion__spm_tokenize(m->vocab, text, len, add_bos, true, tokens, n_max, n_out);
}

size_t orion_llm_token_to_piece(const orion_llm *m, int32_t token, char *buf, size_t size) {
    return orion__spm_token_to_piece(m->vocab, token, buf, size);
}

/* ---- evaluation --------------------------------------------------------------------- */

void orion_llm_set_observer(orion_llm *m, orion_llm_observer fn, void *user) {
    m->observer = fn;
    m->observer_user = user;
}

static orion_status matmul(orion_llm *m, const weight *w, const float *x, int64_t n, float *y) {
    if (m->observer && w->name) m->observer(m->observer_user, w->name, x, n, w->n_in);
    size_t mark = orion_arena_mark(m->arena);
    orion_status st = orion_matmul(m->pool, m->arena, w->type, w->data, w->n_out, w->n_in, x, n, y);
    orion_arena_rewind(m->arena, mark);
    return st;
}

/* Several products with the same input x (q/k/v, gate/up): one activation
 * quantization and one pool pass at decode batch sizes. */
static orion_status matmul_same_x(orion_llm *m, const weight *const *w, float *const *y, int n, const float *x,
                                  int64_t B) {
    orion__matmul_part parts[3];
    for (int i = 0; i < n; i++) {
        if (m->observer && w[i]->name) m->observer(m->observer_user, w[i]->name, x, B, w[i]->n_in);
        parts[i] = (orion__matmul_part){w[i]->type, w[i]->data, w[i]->n_out, y[i]};
    }
    size_t mark = orion_arena_mark(m->arena);
    orion_status st = orion__matmul_multi(m->pool, m->arena, w[0]->n_in, x, B, parts, n);
    orion_arena_rewind(m->arena, mark);
    return st;
}

/* Rotates n_head heads of hd dims (first n_rot of each) at position pos. */
static void rope(const orion_llm *m, float *v, int n_head, int pos) {
    const int hd = m->info.head_dim, half = m->info.n_rot / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * m->inv_freq[i];
        float c = cosf(a), s = sinf(a);
        for (int h = 0; h < n_head; h++) {
            float *p = v + (size_t)h * hd + 2 * i;
            float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
    }
}

/* Where position pos of KV head h of layer l lies in cache (kv_k or kv_v):
 * a head's positions are one contiguous run. */
static uint8_t *kv_at(const orion_llm *m, uint8_t *cache, int l, int h, int pos) {
    const size_t run = (size_t)l * (size_t)m->info.n_head_kv + (size_t)h;
    return cache + (run * (size_t)m->info.n_ctx + (size_t)pos) * m->kv_head_bytes;
}

typedef struct attn_task {
    orion_llm   *m;
    int          layer, n_tokens, pos;
    int          heads_per_job; /* query heads of one KV head per job (all of them, or a split) */
    const float *q;      /* (B, n_head*hd) */
    float       *out;    /* (B, n_head*hd) */
    float       *work;   /* per thread: heads_per_job x n_ctx scores */
    size_t       work_stride;
} attn_task;

/* Jobs are (position, KV head, part of its query heads): the heads that
 * share a KV head go through rows_dot / rows_axpy together, so each cached
 * row is converted once for all of them. A KV head's query heads are split
 * over several jobs only when there would be fewer than two jobs per
 * thread (few KV heads, one position). */
static int attn_heads_per_job(const orion_llm_info *in, int n_tokens, int nth) {
    const int group = in->n_head / in->n_head_kv, groups = n_tokens * in->n_head_kv;
    int splits = (2 * nth + groups - 1) / groups;
    splits = splits < 1 ? 1 : splits > group ? group : splits;
    return (group + splits - 1) / splits;
}

static void attention(void *arg, int ith, int nth) {
    attn_task *t = arg;
    orion_llm *m = t->m;
    const orion_llm_info *in = &m->info;
    const orion_kernels *k = orion__kernels();
    const int hd = in->head_dim, group = in->n_head / in->n_head_kv, per_job = t->heads_per_job;
    const int splits = (group + per_job - 1) / per_job;
    float *scores = t->work + (size_t)ith * t->work_stride;
    const int total = t->n_tokens * in->n_head_kv * splits;
    for (int job = ith; job < total; job += nth) {
        const int b = job / (in->n_head_kv * splits), rest = job % (in->n_head_kv * splits);
        const int kvh = rest / splits, h0 = kvh * group + (rest % splits) * per_job;
        const int nh = ORION_MIN(per_job, kvh * group + group - h0);
        const int p = t->pos + b;
        int start = 0;
        if (in->sliding_window > 0 && p - in->sliding_window + 1 > 0) start = p - in->sliding_window + 1;
        const int n = p - start + 1;
        const float *q = t->q + (size_t)b * in->n_head * hd + (size_t)h0 * hd;
        float *o = t->out + (size_t)b * in->n_head * hd + (size_t)h0 * hd;
        orion__attend(k, m->kv_type, n, kv_at(m, m->kv_k, t->layer, kvh, start),
                      kv_at(m, m->kv_v, t->layer, kvh, start), m->kv_head_bytes, hd, q, nh, scores, o);
    }
}

/* Stores the K or V row of one position (n_head_kv heads) into each head's
 * run of positions. */
static void store_kv(orion_llm *m, uint8_t *cache, int layer_i, int pos, const float *row) {
    const orion_kernels *k = orion__kernels();
    const int hd = m->info.head_dim;
    for (int h = 0; h < m->info.n_head_kv; h++) {
        uint8_t *dst = kv_at(m, cache, layer_i, h, pos);
        if (m->kv_type == ORION_TYPE_F32) memcpy(dst, row + (size_t)h * hd, (size_t)hd * sizeof(float));
        else k->quantize_row[m->kv_type](row + (size_t)h * hd, dst, hd);
    }
}

/* One batch of B positions from pos: the inputs are token ids, or (tokens
 * NULL) B rows of n_embd floats in emb. */
static orion_status eval_batch(orion_llm *m, const int32_t *tokens, const float *emb, int B, int pos, float *logits,
                               bool all) {
    const orion_llm_info *in = &m->info;
    const orion_kernels *k = orion__kernels();
    const int64_t E = in->n_embd, F = in->n_ff, QD = (int64_t)in->n_head * in->head_dim,
                  KD = (int64_t)in->n_head_kv * in->head_dim;
    const int nth = orion_threadpool_n_threads(m->pool);
    orion_arena *a = m->arena;
    size_t mark0 = orion_arena_mark(a);
#define TAKE(n) (float *)orion_arena_alloc(a, sizeof(float) * (size_t)(n), 64)
    float *x = TAKE(B * E), *xb = TAKE(B * E), *q = TAKE(B * QD), *kk = TAKE(B * KD), *vv = TAKE(B * KD);
    float *att = TAKE(B * QD), *tmp = TAKE(B * E), *g = TAKE(B * F), *u = TAKE(B * F);
    const int heads_per_job = attn_heads_per_job(in, B, nth);
    size_t work_stride = ((size_t)heads_per_job * (size_t)in->n_ctx + 15) & ~(size_t)15;
    float *work = TAKE(work_stride * (size_t)nth);
#undef TAKE
    orion_status st = ORION_OK;
    if (!x || !xb || !q || !kk || !vv || !att || !tmp || !g || !u || !work) {
        st = orion__fail(ORION_ERR_NOMEM, "llm: scratch arena too small (%zu bytes)", orion_arena_capacity(a));
        goto done;
    }
    if (!tokens) memcpy(x, emb, sizeof(float) * (size_t)B * (size_t)E);
    for (int b = 0; tokens && b < B; b++)
        k->dequantize_row[m->tok_embd.type]((const uint8_t *)m->tok_embd.data + (size_t)tokens[b] * m->tok_embd.row_bytes,
                                            x + (size_t)b * E, E);
    for (int l = 0; l < in->n_layer; l++) {
        const layer *L = &m->layers[l];
        for (int b = 0; b < B; b++) k->rmsnorm(x + b * E, xb + b * E, E, L->attn_norm, in->rms_eps);
        const weight *qkv_w[3] = {&L->wq, &L->wk, &L->wv};
        float *const qkv_y[3] = {q, kk, vv};
        if ((st = matmul_same_x(m, qkv_w, qkv_y, 3, xb, B)) != ORION_OK) goto done;
        for (int b = 0; b < B; b++) {
            rope(m, q + b * QD, in->n_head, pos + b);
            rope(m, kk + b * KD, in->n_head_kv, pos + b);
            store_kv(m, m->kv_k, l, pos + b, kk + b * KD);
            store_kv(m, m->kv_v, l, pos + b, vv + b * KD);
        }
        attn_task t = {m, l, B, pos, heads_per_job, q, att, work, work_stride};
        /* waking the pool costs microseconds: small attention runs here */
        double attn_flops = 4.0 * B * in->n_head * (double)in->head_dim * (pos + B);
        if (attn_flops < 256e3) attention(&t, 0, 1);
        else orion_threadpool_run(m->pool, attention, &t);
        if ((st = matmul(m, &L->wo, att, B, tmp)) != ORION_OK) goto done;
        k->add(x, tmp, x, B * E);
        for (int b = 0; b < B; b++) k->rmsnorm(x + b * E, xb + b * E, E, L->ffn_norm, in->rms_eps);
        const weight *gu_w[2] = {&L->gate, &L->up};
        float *const gu_y[2] = {g, u};
        if ((st = matmul_same_x(m, gu_w, gu_y, 2, xb, B)) != ORION_OK) goto done;
        k->silu(g, g, B * F);
        k->mul(g, u, g, B * F);
        if ((st = matmul(m, &L->down, g, B, tmp)) != ORION_OK) goto done;
        k->add(x, tmp, x, B * E);
    }
    if (logits) {
        int first = all ? 0 : B - 1, rows = all ? B : 1;
        for (int b = first; b < B; b++) k->rmsnorm(x + b * E, xb + (b - first) * E, E, m->output_norm, in->rms_eps);
        st = matmul(m, &m->output, xb, rows, logits);
    }
done:
    orion_arena_rewind(a, mark0);
    return st;
}

/* Runs n positions from pos in batches of n_batch: token ids, or (tokens
 * NULL) rows of n_embd input vectors; logits as orion_llm_eval says. */
static orion_status eval_chunks(orion_llm *m, const int32_t *tokens, const float *emb, int32_t n, int32_t pos,
                                float *logits, bool all_logits) {
    const size_t E = (size_t)m->info.n_embd;
    for (int32_t done = 0; done < n; done += m->n_batch) {
        int B = (int)ORION_MIN((int32_t)m->n_batch, n - done);
        float *lg = NULL;
        if (logits && all_logits) lg = logits + (size_t)done * (size_t)m->info.n_vocab;
        else if (logits && done + B == n) lg = logits;
        orion_status st = eval_batch(m, tokens ? tokens + done : NULL, tokens ? NULL : emb + (size_t)done * E, B,
                                     pos + done, lg, all_logits);
        if (st != ORION_OK) return st;
    }
    return ORION_OK;
}

orion_status orion_llm_eval(orion_llm *m, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
                            bool all_logits) {
    if (!m || (!tokens && n > 0) || n < 0 || pos < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llm_eval: bad arguments");
    if ((int64_t)pos + n > m->info.n_ctx)
        return orion__fail(ORION_ERR_RANGE, "context full: positions %d..%d do not fit in n_ctx %d", pos, pos + n - 1,
                           m->info.n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->info.n_vocab)
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_llm_eval: token %d at index %d is outside [0, %d)",
                               tokens[i], i, m->info.n_vocab);
    return eval_chunks(m, tokens, NULL, n, pos, logits, all_logits);
}

orion_status orion_llm_eval_embeddings(orion_llm *m, const float *emb, int32_t n, int32_t pos, float *logits,
                                       bool all_logits) {
    if (!m || (!emb && n > 0) || n < 0 || pos < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llm_eval_embeddings: bad arguments");
    if ((int64_t)pos + n > m->info.n_ctx)
        return orion__fail(ORION_ERR_RANGE, "context full: positions %d..%d do not fit in n_ctx %d", pos, pos + n - 1,
                           m->info.n_ctx);
    const size_t E = (size_t)m->info.n_embd;
    for (size_t i = 0; i < (size_t)n * E; i++)
        if (!isfinite(emb[i]))
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_llm_eval_embeddings: value %zu of row %zu is not finite",
                               i % E, i / E);
    return eval_chunks(m, NULL, emb, n, pos, logits, all_logits);
}
