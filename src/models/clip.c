/*
 * clip.c — the CLIP vision transformer and LLaVA's MLP projector
 * (orion_clip), read from a llama.cpp "mmproj" GGUF.
 *
 * The file (convert_image_encoder_to_gguf.py's layout): general.architecture
 * "clip", clip.has_vision_encoder / clip.has_llava_projector, clip.projector_type
 * "mlp", clip.vision.{image_size, patch_size, embedding_length,
 * feed_forward_length, block_count, attention.head_count,
 * attention.layer_norm_epsilon, image_mean, image_std, feature_layer
 * (optional)}, clip.use_gelu; tensors v.patch_embd.weight (E x 3 x P x P
 * convolution, no bias; v.patch_embd.bias if present), v.class_embd (E),
 * v.position_embd.weight (n_patches + 1 rows of E), v.pre_ln.{weight,bias},
 * v.blk.N.{attn_q,attn_k,attn_v,attn_out,ln1,ln2}.{weight,bias}, the MLP's
 * two matrices, and mm.0 / mm.2 (weight, bias). The converter names CLIP's
 * mlp.fc1 "ffn_down" and mlp.fc2 "ffn_up"; the matrices' shapes say which is
 * which (fc1 maps E -> F), so either naming loads.
 *
 * The forward pass (HF's CLIPVisionModel, LLaVA-1.5's feature selection and
 * projector), for R = n_patches + 1 rows of E:
 *
 *   patches: (n_patches, 3 P P), patch (py, px) holds pixels[c][py P + ky][px P + kx]
 *   x[1..]  = patches Wpatch^T (+ b)       the stride-P convolution as one matmul
 *   x[0]    = class_embd;  x += position_embd;  x = LN(x) (pre_ln)
 *   per layer (pre-LN):  x += Wo attn(LN1(x)) + bo
 *                        x += W2 act(W1 LN2(x) + b1) + b2
 *     attn: per head (d = E / H), softmax(q k^T / sqrt(d)) v over all R rows
 *     act:  quick GELU x sigmoid(1.702 x) (CLIP), or erf GELU (clip.use_gelu)
 *   features = x after n_layer_used layers (LLaVA's select layer -2: all but
 *              the last layer; clip.vision.feature_layer when present), rows 1..
 *              (class token dropped)
 *   out = M2 gelu(M0 features + b0) + b2       (erf GELU, as nn.GELU())
 *
 * Weights stay in the mapping in their stored type; every product is an
 * orion_matmul on the pool. Attention runs as (head) jobs on the pool, each
 * with its own arena, as bert.c does; row-wise ops are split over rows.
 * Scratch is one arena sized at load for one image.
 */
#include "formats/gguf_internal.h"
#include "formats/mmproj.h"
#include "kernels/kernels.h"
#include "models/tensor_f32.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct weight {
    orion_type  type;
    const void *data;  /* n_out rows of n_in elements */
    int64_t     n_in, n_out;
    size_t      row_bytes;
} weight;

typedef struct layer {
    weight       wq, wk, wv, wo;             /* (E -> E) */
    weight       fc1, fc2;                   /* (E -> F), (F -> E) */
    const float *bq, *bk, *bv, *bo;          /* (E) */
    const float *b1, *b2;                    /* (F), (E) */
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* (E) */
} layer;

struct orion_clip {
    orion_clip_info    info;
    orion_gguf        *gguf;
    weight             patch;          /* (E rows of 3 P P) */
    const float       *patch_b;        /* (E) or NULL */
    const float       *cls;            /* (E) */
    weight             pos;            /* (n_patches + 1 rows of E) */
    const float       *pre_w, *pre_b;  /* (E) */
    layer             *layers;         /* (n_layer_used) */
    weight             mm0, mm2;       /* (E -> M), (M -> n_out) */
    const float       *mm0_b, *mm2_b;  /* (M), (n_out) */
    float             *owned;          /* 1-D tensors converted to f32 */
    size_t             owned_used, owned_cap;
    orion_threadpool  *pool;
    int                n_threads;
    orion_arena       *arena;          /* activations + matmul scratch */
    orion_arena      **attn_arenas;    /* (n_threads) */
};

orion_clip_params orion_clip_default_params(void) {
    orion_clip_params p = {0};
    return p;
}

/* ---- loading ----------------------------------------------------------------------------------- */

static orion_status get_dim(const orion_gguf *g, const char *path, const char *key, int *out) {
    uint64_t v;
    if (orion_gguf_get_u64(g, key, &v) != ORION_OK)
        return orion__fail(ORION_ERR_FORMAT, "%s: metadata key '%s' is missing or not an integer", path, key);
    if (v == 0 || v > (1u << 20))
        return orion__fail(ORION_ERR_FORMAT, "%s: %s = %llu is out of range", path, key, (unsigned long long)v);
    *out = (int)v;
    return ORION_OK;
}

static bool supported_type(orion_type t) {
    return t == ORION_TYPE_F32 || t == ORION_TYPE_F16 || t == ORION_TYPE_BF16 || t == ORION_TYPE_Q8_0 ||
           t == ORION_TYPE_Q4_0 || t == ORION_TYPE_Q4_1;
}

/* A matrix of n_out rows of n_in: 2-D, or any rank whose first dimensions
 * multiply to n_in and whose last is n_out (the patch convolution). */
static orion_status matrix(const orion_gguf *g, const char *path, const char *name, int64_t n_in, int64_t n_out,
                           weight *w) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    int64_t inner = 1;
    for (int i = 0; i < t->n_dims - 1; i++) inner *= t->ne[i];
    if (t->n_dims < 2 || inner != n_in || t->ne[t->n_dims - 1] != n_out)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' has shape %lld x %lld, expected %lld x %lld", path, name,
                           (long long)inner, (long long)t->ne[t->n_dims - 1], (long long)n_in, (long long)n_out);
    if (!supported_type(t->type))
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: tensor '%s' has an unsupported type", path, name);
    *w = (weight){t->type, t->data, n_in, n_out, orion_type_row_bytes(t->type, n_in)};
    return ORION_OK;
}

static orion_status vector(orion_clip *c, const char *path, const char *name, int64_t n, const float **out) {
    return orion__tensor_f32(c->gguf, path, name, n, c->owned, c->owned_cap, &c->owned_used, out);
}

static size_t wbytes(const weight *w) {
    return w->row_bytes * (size_t)w->n_out;
}

static orion_status read_triple(const orion_gguf *g, const char *path, const char *key, const float dflt[3],
                                float out[3]) {
    const orion_gguf_value *v = orion_gguf_get(g, key);
    if (!v) {
        memcpy(out, dflt, 3 * sizeof(float));
        return ORION_OK;
    }
    if (v->type != ORION_GGUF_ARRAY || !orion__gguf_value_is_number_array(v) || v->v.arr.count != 3)
        return orion__fail(ORION_ERR_FORMAT, "%s: %s must be an array of 3 numbers", path, key);
    for (int i = 0; i < 3; i++) {
        double d = orion_gguf_array_f64(v, (uint64_t)i);
        if (!isfinite(d)) return orion__fail(ORION_ERR_FORMAT, "%s: %s[%d] is not finite", path, key, i);
        out[i] = (float)d;
    }
    return ORION_OK;
}

static size_t scratch_size(const orion_clip *c) {
    const orion_clip_info *in = &c->info;
    const size_t R = (size_t)in->n_patches + 1, E = (size_t)in->n_embd, F = (size_t)in->n_ff;
    const size_t NP = (size_t)in->n_patches, PP = 3 * (size_t)in->patch_size * (size_t)in->patch_size;
    size_t big = ORION_MAX(R * F, ORION_MAX(NP * PP, NP * (size_t)in->n_mm_hidden));
    size_t floats = 6 * R * E + big + (size_t)c->n_threads + 64;
    size_t mm = 0;
    const weight *ws[3] = {&c->patch, &c->mm0, &c->mm2};
    for (int i = 0; i < 3; i++)
        for (int64_t n = (int64_t)NP; n <= (int64_t)R; n++)
            mm = ORION_MAX(mm, orion_matmul_scratch_bytes(ws[i]->type, ws[i]->n_out, ws[i]->n_in, n, c->n_threads));
    for (int l = 0; l < in->n_layer_used; l++) {
        const layer *L = &c->layers[l];
        const weight *lw[6] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->fc1, &L->fc2};
        for (int i = 0; i < 6; i++)
            mm = ORION_MAX(mm, orion_matmul_scratch_bytes(lw[i]->type, lw[i]->n_out, lw[i]->n_in, (int64_t)R,
                                                          c->n_threads));
    }
    return floats * sizeof(float) + mm + 32 * 64; /* alignment slack: one 64-byte pad per allocation */
}

/* One thread's attention arena: a head's q, k (R x d), v^T (d x R), the
 * scores (R x R) and the two products' scratch. */
static size_t attn_scratch_size(const orion_clip *c) {
    const size_t L = (size_t)c->info.n_patches + 1, d = (size_t)(c->info.n_embd / c->info.n_head);
    size_t mm = ORION_MAX(orion_matmul_scratch_bytes(ORION_TYPE_F32, (int64_t)L, (int64_t)d, (int64_t)L, 1),
                          orion_matmul_scratch_bytes(ORION_TYPE_F32, (int64_t)d, (int64_t)L, (int64_t)L, 1));
    return (3 * L * d + L * L) * sizeof(float) + mm + 8 * 64;
}

void orion_clip_free(orion_clip *c) {
    if (!c) return;
    if (c->attn_arenas)
        for (int i = 0; i < c->n_threads; i++) orion_arena_free(c->attn_arenas[i]);
    orion__free(c->attn_arenas);
    orion_arena_free(c->arena);
    orion_threadpool_free(c->pool);
    orion__free(c->layers);
    orion__free(c->owned);
    orion_gguf_free(c->gguf);
    orion__free(c);
}

static orion_status load(orion_clip *c, const char *path) {
    orion_status st;
    if ((st = orion_gguf_open(path, &c->gguf)) != ORION_OK) return st;
    const orion_gguf *g = c->gguf;
    orion_clip_info *in = &c->info;
    char s[64];
    if (orion_gguf_get_str(g, "general.architecture", s, sizeof s) != ORION_OK || strcmp(s, "clip") != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: general.architecture is not 'clip' (not an mmproj file)", path);
    bool b;
    if (orion_gguf_get_bool(g, "clip.has_vision_encoder", &b) == ORION_OK && !b)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: the file has no vision encoder", path);
    if (orion_gguf_get_bool(g, "clip.has_llava_projector", &b) == ORION_OK && !b)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: the file has no LLaVA projector", path);
    if (orion_gguf_get_str(g, "clip.projector_type", s, sizeof s) == ORION_OK && strcmp(s, "mlp") != 0)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: projector type '%s' is not supported (mlp is)", path, s);
#define TRY(call)                             \
    do {                                      \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)
    TRY(get_dim(g, path, "clip.vision.image_size", &in->image_size));
    TRY(get_dim(g, path, "clip.vision.patch_size", &in->patch_size));
    TRY(get_dim(g, path, "clip.vision.embedding_length", &in->n_embd));
    TRY(get_dim(g, path, "clip.vision.feed_forward_length", &in->n_ff));
    TRY(get_dim(g, path, "clip.vision.block_count", &in->n_layer));
    TRY(get_dim(g, path, "clip.vision.attention.head_count", &in->n_head));
    if (in->image_size % in->patch_size != 0 || in->image_size > 4096 || in->n_embd % in->n_head != 0 ||
        in->n_layer > 1024)
        return orion__fail(ORION_ERR_FORMAT, "%s: inconsistent shape (image %d, patch %d, embd %d, heads %d, layers %d)",
                           path, in->image_size, in->patch_size, in->n_embd, in->n_head, in->n_layer);
    const int side = in->image_size / in->patch_size;
    in->n_patches = side * side;
    double eps = 1e-5;
    if (orion_gguf_get(g, "clip.vision.attention.layer_norm_epsilon") &&
        (orion_gguf_get_f64(g, "clip.vision.attention.layer_norm_epsilon", &eps) != ORION_OK || !(eps >= 0 && eps < 1)))
        return orion__fail(ORION_ERR_FORMAT, "%s: clip.vision.attention.layer_norm_epsilon must be in [0, 1)", path);
    in->eps = (float)eps;
    bool use_gelu = false;
    if (orion_gguf_get(g, "clip.use_gelu") && orion_gguf_get_bool(g, "clip.use_gelu", &use_gelu) != ORION_OK)
        return orion__fail(ORION_ERR_FORMAT, "%s: clip.use_gelu must be a bool", path);
    in->quick_gelu = !use_gelu;
    TRY(read_triple(g, path, "clip.vision.image_mean", orion__clip_mean, in->image_mean));
    TRY(read_triple(g, path, "clip.vision.image_std", orion__clip_std, in->image_std));
    for (int i = 0; i < 3; i++)
        if (!(in->image_std[i] > 0))
            return orion__fail(ORION_ERR_FORMAT, "%s: clip.vision.image_std must be positive", path);
    /* feature layer: hidden_states[f] is the output of f layers (0 = the
     * embeddings); LLaVA-1.5 takes -2, i.e. n_layer - 1 */
    in->n_layer_used = in->n_layer - 1;
    const orion_gguf_value *fl = orion_gguf_get(g, "clip.vision.feature_layer");
    if (fl) {
        if (fl->type != ORION_GGUF_ARRAY || !orion__gguf_value_is_number_array(fl) || fl->v.arr.count == 0)
            return orion__fail(ORION_ERR_FORMAT, "%s: clip.vision.feature_layer must be an array of integers", path);
        if (fl->v.arr.count > 1)
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: %llu feature layers (only one is supported)", path,
                               (unsigned long long)fl->v.arr.count);
        int64_t f = orion_gguf_array_i64(fl, 0);
        if (f < 1 || f > in->n_layer)
            return orion__fail(ORION_ERR_FORMAT, "%s: feature layer %lld is outside [1, %d]", path, (long long)f,
                               in->n_layer);
        in->n_layer_used = (int)f;
    }
    if (in->n_layer_used < 1)
        return orion__fail(ORION_ERR_FORMAT, "%s: %d layers leave no feature layer", path, in->n_layer);

    const int64_t E = in->n_embd, F = in->n_ff, P = in->patch_size, NP = in->n_patches;
    const orion_gguf_tensor *m0 = orion_gguf_find_tensor(g, "mm.0.weight"), *m2 = orion_gguf_find_tensor(g, "mm.2.weight");
    if (!m0 || !m2 || m0->n_dims != 2 || m2->n_dims != 2 || m0->ne[1] <= 0 || m0->ne[1] > (1 << 20) ||
        m2->ne[1] <= 0 || m2->ne[1] > (1 << 20))
        return orion__fail(ORION_ERR_FORMAT, "%s: projector tensors mm.0.weight / mm.2.weight are missing or not 2-D",
                           path);
    in->n_mm_hidden = (int)m0->ne[1];
    in->n_out = (int)m2->ne[1];
    const int64_t M = in->n_mm_hidden, O = in->n_out;

    /* 1-D tensors stored in another type than f32: patch bias, class token,
     * pre_ln (4 E); per layer 4 biases, 2 norms of 2, fc2's bias (9 E) and
     * fc1's (F); the projector's biases (M + O) */
    c->owned_cap = (size_t)E * (4 + 9 * (size_t)in->n_layer_used) + (size_t)F * (size_t)in->n_layer_used +
                   (size_t)(M + O);
    c->owned = orion__malloc(sizeof(float) * c->owned_cap);
    c->layers = orion__calloc((size_t)in->n_layer_used, sizeof *c->layers);
    if (!c->owned || !c->layers) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);

    TRY(matrix(g, path, "v.patch_embd.weight", 3 * P * P, E, &c->patch));
    if (orion_gguf_find_tensor(g, "v.patch_embd.bias")) TRY(vector(c, path, "v.patch_embd.bias", E, &c->patch_b));
    TRY(vector(c, path, "v.class_embd", E, &c->cls));
    TRY(matrix(g, path, "v.position_embd.weight", E, NP + 1, &c->pos));
    TRY(vector(c, path, "v.pre_ln.weight", E, &c->pre_w));
    TRY(vector(c, path, "v.pre_ln.bias", E, &c->pre_b));
    size_t bytes = wbytes(&c->patch) + wbytes(&c->pos) + (size_t)E * 4 * 3;
    for (int l = 0; l < in->n_layer_used; l++) {
        layer *L = &c->layers[l];
        char n[96];
#define MAT(suffix, field, nin, nout)                  \
    snprintf(n, sizeof n, "v.blk.%d.%s", l, suffix);   \
    TRY(matrix(g, path, n, nin, nout, &L->field));     \
    bytes += wbytes(&L->field);
#define VEC(suffix, field, len)                        \
    snprintf(n, sizeof n, "v.blk.%d.%s", l, suffix);   \
    TRY(vector(c, path, n, len, &L->field));           \
    bytes += (size_t)(len) * 4;
        MAT("attn_q.weight", wq, E, E);
        MAT("attn_k.weight", wk, E, E);
        MAT("attn_v.weight", wv, E, E);
        MAT("attn_out.weight", wo, E, E);
        VEC("attn_q.bias", bq, E);
        VEC("attn_k.bias", bk, E);
        VEC("attn_v.bias", bv, E);
        VEC("attn_out.bias", bo, E);
        VEC("ln1.weight", ln1_w, E);
        VEC("ln1.bias", ln1_b, E);
        VEC("ln2.weight", ln2_w, E);
        VEC("ln2.bias", ln2_b, E);
        /* fc1 (E -> F) is "ffn_down" in llama.cpp's files, "ffn_up" in
         * files that name it by role; the shape decides (legacy when E == F) */
        snprintf(n, sizeof n, "v.blk.%d.ffn_up.weight", l);
        const orion_gguf_tensor *up = orion_gguf_find_tensor(g, n);
        const bool up_is_fc1 = up && up->n_dims == 2 && up->ne[0] == E && up->ne[1] == F && E != F;
        const char *fc1 = up_is_fc1 ? "ffn_up" : "ffn_down", *fc2 = up_is_fc1 ? "ffn_down" : "ffn_up";
        char nm[64];
        snprintf(nm, sizeof nm, "%s.weight", fc1);
        MAT(nm, fc1, E, F);
        snprintf(nm, sizeof nm, "%s.weight", fc2);
        MAT(nm, fc2, F, E);
        snprintf(nm, sizeof nm, "%s.bias", fc1);
        VEC(nm, b1, F);
        snprintf(nm, sizeof nm, "%s.bias", fc2);
        VEC(nm, b2, E);
#undef MAT
#undef VEC
        if (l == 0) in->type = L->fc1.type;
    }
    TRY(matrix(g, path, "mm.0.weight", E, M, &c->mm0));
    TRY(matrix(g, path, "mm.2.weight", M, O, &c->mm2));
    TRY(vector(c, path, "mm.0.bias", M, &c->mm0_b));
    TRY(vector(c, path, "mm.2.bias", O, &c->mm2_b));
    in->weight_bytes = bytes + wbytes(&c->mm0) + wbytes(&c->mm2) + (size_t)(M + O) * 4;
#undef TRY
    return ORION_OK;
}

orion_status orion_clip_load(const char *path, const orion_clip_params *params, orion_clip **out) {
    if (!path || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_clip_load: NULL argument");
    *out = NULL;
    orion_clip_params p = params ? *params : orion_clip_default_params();
    if (p.n_threads < 0 || p.n_threads > 1024)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_clip_load: n_threads %d is out of range", p.n_threads);
    orion_clip *c = orion__calloc(1, sizeof *c);
    if (!c) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    orion_status st = load(c, path);
    if (st != ORION_OK) goto fail;
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = p.n_threads;
    if ((st = orion_threadpool_init(&tp, &c->pool)) != ORION_OK) goto fail;
    c->n_threads = orion_threadpool_n_threads(c->pool);
    size_t main_bytes = scratch_size(c), attn_bytes = attn_scratch_size(c);
    if ((st = orion_arena_init(main_bytes, &c->arena)) != ORION_OK) goto fail;
    c->attn_arenas = orion__calloc((size_t)c->n_threads, sizeof *c->attn_arenas);
    if (!c->attn_arenas) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < c->n_threads; i++)
        if ((st = orion_arena_init(attn_bytes, &c->attn_arenas[i])) != ORION_OK) goto fail;
    c->info.scratch_bytes = main_bytes + attn_bytes * (size_t)c->n_threads;
    *out = c;
    return ORION_OK;
fail:
    orion_clip_free(c);
    return st;
}

void orion_clip_get_info(const orion_clip *c, orion_clip_info *out) {
    *out = c->info;
}

/* ---- preprocessing ------------------------------------------------------------------------------ */

orion_status orion_clip_preprocess(const orion_clip *c, const orion_image *img, float *pixels) {
    if (!c || !img || !pixels || !img->rgb || img->width <= 0 || img->height <= 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_clip_preprocess: bad arguments");
    const orion_clip_info *in = &c->info;
    /* LLaVA: tuple(int(x * 255) for x in image_mean), truncated */
    uint8_t fill[3];
    for (int i = 0; i < 3; i++) {
        double v = (double)in->image_mean[i] * 255.0;
        fill[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
    }
    orion_image *sq = NULL, *rs = NULL;
    orion_status st = orion_image_pad_square(img, fill, &sq);
    if (st == ORION_OK) st = orion_image_resize_bicubic(sq, in->image_size, in->image_size, &rs);
    if (st == ORION_OK) {
        /* HF: rescale in float64 then cast to float32; normalize in float32 */
        const size_t S2 = (size_t)in->image_size * (size_t)in->image_size;
        for (int ch = 0; ch < 3; ch++) {
            const float mean = in->image_mean[ch], sd = in->image_std[ch];
            float *dst = pixels + (size_t)ch * S2;
            for (size_t i = 0; i < S2; i++) {
                const float v = (float)((double)rs->rgb[3 * i + (size_t)ch] * (1.0 / 255.0));
                dst[i] = (v - mean) / sd;
            }
        }
    }
    orion_image_free(sq);
    orion_image_free(rs);
    return st;
}

/* ---- forward ------------------------------------------------------------------------------------- */

static orion_status matmul(orion_clip *c, const weight *w, const float *x, int64_t n, float *y) {
    size_t mark = orion_arena_mark(c->arena);
    orion_status st = orion_matmul(c->pool, c->arena, w->type, w->data, w->n_out, w->n_in, x, n, y);
    orion_arena_rewind(c->arena, mark);
    return st;
}

typedef enum row_op {
    ROW_LN,        /* y[r] = LN(x[r]) */
    ROW_BIAS,      /* x[r] += bias */
    ROW_BIAS_ACT,  /* x[r] = act(x[r] + bias) */
    ROW_RESID,     /* x[r] += t[r] + bias */
} row_op;

typedef struct row_task {
    row_op       op;
    int64_t      n_rows, n;
    float       *x, *y;
    const float *t, *bias, *gamma, *beta;
    float        eps;
    bool         quick;  /* ROW_BIAS_ACT: quick GELU, else erf GELU */
} row_task;

static void rows_run(void *arg, int ith, int nth) {
    const row_task *t = arg;
    const orion_kernels *k = orion__kernels();
    const int64_t per = (t->n_rows + nth - 1) / nth, r0 = per * ith, r1 = ORION_MIN(t->n_rows, r0 + per);
    for (int64_t r = r0; r < r1; r++) {
        float *x = t->x + r * t->n;
        switch (t->op) {
        case ROW_LN: k->layernorm(x, t->y + r * t->n, t->n, t->gamma, t->beta, t->eps); break;
        case ROW_BIAS:
            if (t->bias) k->add(x, t->bias, x, t->n);
            break;
        case ROW_BIAS_ACT:
            k->add(x, t->bias, x, t->n);
            if (t->quick)
                for (int64_t i = 0; i < t->n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
            else
                k->gelu(x, x, t->n);
            break;
        case ROW_RESID:
            k->add(x, t->t + r * t->n, x, t->n);
            k->add(x, t->bias, x, t->n);
            break;
        }
    }
}

static void rows(orion_clip *c, row_task *t) {
    if (t->n_rows * t->n < 16384 || c->n_threads == 1) rows_run(t, 0, 1);
    else orion_threadpool_run(c->pool, rows_run, t);
}

typedef struct attn_task {
    orion_clip   *c;
    int64_t       R;
    const float  *q, *k, *v;  /* (R, E) */
    float        *ctx;        /* (R, E) */
    orion_status *status;     /* (n_threads) */
} attn_task;

/* Jobs are heads, strided over threads: s = q_h k_h^T (R x R) scaled and
 * soft-maxed per row, o = s v_h (R x d), with k_h and v_h^T copied out. */
static void attention(void *arg, int ith, int nth) {
    attn_task *t = arg;
    orion_clip *c = t->c;
    const orion_kernels *k = orion__kernels();
    const int H = c->info.n_head, d = c->info.n_embd / H;
    const int64_t E = c->info.n_embd, L = t->R;
    const float scale = 1.0f / sqrtf((float)d);
    orion_arena *a = c->attn_arenas[ith];
    orion_status st = ORION_OK;
    for (int h = ith; h < H && st == ORION_OK; h += nth) {
        orion_arena_reset(a);
        float *qh = orion_arena_alloc(a, sizeof(float) * (size_t)(L * d), 64);
        float *kh = orion_arena_alloc(a, sizeof(float) * (size_t)(L * d), 64);
        float *vt = orion_arena_alloc(a, sizeof(float) * (size_t)(L * d), 64);
        float *sc = orion_arena_alloc(a, sizeof(float) * (size_t)(L * L), 64);
        float *o = qh;
        if (!qh || !kh || !vt || !sc) {
            st = orion__fail(ORION_ERR_NOMEM, "clip: attention scratch too small");
            break;
        }
        for (int64_t i = 0; i < L; i++) {
            const size_t row = (size_t)i * (size_t)E + (size_t)h * (size_t)d;
            memcpy(qh + i * d, t->q + row, sizeof(float) * (size_t)d);
            memcpy(kh + i * d, t->k + row, sizeof(float) * (size_t)d);
            for (int j = 0; j < d; j++) vt[(size_t)j * (size_t)L + (size_t)i] = t->v[row + (size_t)j];
        }
        size_t mark = orion_arena_mark(a);
        st = orion_matmul(NULL, a, ORION_TYPE_F32, kh, L, d, qh, L, sc);
        orion_arena_rewind(a, mark);
        if (st != ORION_OK) break;
        for (int64_t i = 0; i < L; i++) {
            k->scale(sc + i * L, scale, sc + i * L, L);
            k->softmax(sc + i * L, L);
        }
        st = orion_matmul(NULL, a, ORION_TYPE_F32, vt, d, L, sc, L, o);
        orion_arena_rewind(a, mark);
        if (st != ORION_OK) break;
        for (int64_t i = 0; i < L; i++)
            memcpy(t->ctx + (size_t)i * (size_t)E + (size_t)h * (size_t)d, o + i * d, sizeof(float) * (size_t)d);
    }
    t->status[ith] = st;
}

orion_status orion_clip_encode_pixels(orion_clip *c, const float *pixels, float *out) {
    if (!c || !pixels || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_clip_encode_pixels: NULL argument");
    const orion_clip_info *in = &c->info;
    const orion_kernels *k = orion__kernels();
    const int64_t E = in->n_embd, F = in->n_ff, NP = in->n_patches, R = NP + 1, P = in->patch_size;
    const int64_t S = in->image_size, side = S / P, PP = 3 * P * P;
    orion_arena *a = c->arena;
    orion_arena_reset(a);
    const size_t big_n = (size_t)ORION_MAX(R * F, ORION_MAX(NP * PP, NP * (int64_t)in->n_mm_hidden));
#define TAKE(type, count) (type *)orion_arena_alloc(a, sizeof(type) * (size_t)(count), 64)
    float *x = TAKE(float, R * E), *xn = TAKE(float, R * E), *q = TAKE(float, R * E), *kk = TAKE(float, R * E);
    float *v = TAKE(float, R * E), *ctx = TAKE(float, R * E), *big = TAKE(float, big_n);
    orion_status *status = TAKE(orion_status, c->n_threads);
#undef TAKE
    if (!x || !xn || !q || !kk || !v || !ctx || !big || !status)
        return orion__fail(ORION_ERR_NOMEM, "clip: scratch arena too small (%zu bytes)", orion_arena_capacity(a));
    /* patch embedding: the stride-P convolution as (NP, 3PP) x (3PP -> E) */
    for (int64_t py = 0; py < side; py++)
        for (int64_t px = 0; px < side; px++) {
            float *row = big + (py * side + px) * PP;
            for (int64_t ch = 0; ch < 3; ch++)
                for (int64_t ky = 0; ky < P; ky++)
                    memcpy(row + (ch * P + ky) * P, pixels + (ch * S + py * P + ky) * S + px * P, sizeof(float) * (size_t)P);
        }
    orion_status st = matmul(c, &c->patch, big, NP, x + E);
    if (st != ORION_OK) return st;
    row_task pb = {ROW_BIAS, NP, E, x + E, NULL, NULL, c->patch_b, NULL, NULL, 0, false};
    rows(c, &pb);
    memcpy(x, c->cls, sizeof(float) * (size_t)E);
    for (int64_t r = 0; r < R; r++) {
        k->dequantize_row[c->pos.type]((const uint8_t *)c->pos.data + (size_t)r * c->pos.row_bytes, xn, E);
        k->add(x + r * E, xn, x + r * E, E);
    }
    row_task pre = {ROW_LN, R, E, x, x, NULL, NULL, c->pre_w, c->pre_b, in->eps, false};
    rows(c, &pre);
    for (int l = 0; l < in->n_layer_used; l++) {
        const layer *L = &c->layers[l];
        row_task ln1 = {ROW_LN, R, E, x, xn, NULL, NULL, L->ln1_w, L->ln1_b, in->eps, false};
        rows(c, &ln1);
        if ((st = matmul(c, &L->wq, xn, R, q)) != ORION_OK) return st;
        if ((st = matmul(c, &L->wk, xn, R, kk)) != ORION_OK) return st;
        if ((st = matmul(c, &L->wv, xn, R, v)) != ORION_OK) return st;
        row_task bt = {ROW_BIAS, R, E, q, NULL, NULL, L->bq, NULL, NULL, 0, false};
        rows(c, &bt);
        bt.x = kk, bt.bias = L->bk;
        rows(c, &bt);
        bt.x = v, bt.bias = L->bv;
        rows(c, &bt);
        attn_task at = {c, R, q, kk, v, ctx, status};
        for (int i = 0; i < c->n_threads; i++) status[i] = ORION_OK;
        if (c->n_threads > 1) orion_threadpool_run(c->pool, attention, &at);
        else attention(&at, 0, 1);
        for (int i = 0; i < c->n_threads; i++)
            if (status[i] != ORION_OK) return status[i];
        if ((st = matmul(c, &L->wo, ctx, R, q)) != ORION_OK) return st;
        row_task r1 = {ROW_RESID, R, E, x, NULL, q, L->bo, NULL, NULL, 0, false};
        rows(c, &r1);
        row_task ln2 = {ROW_LN, R, E, x, xn, NULL, NULL, L->ln2_w, L->ln2_b, in->eps, false};
        rows(c, &ln2);
        if ((st = matmul(c, &L->fc1, xn, R, big)) != ORION_OK) return st;
        row_task act = {ROW_BIAS_ACT, R, F, big, NULL, NULL, L->b1, NULL, NULL, 0, in->quick_gelu};
        rows(c, &act);
        if ((st = matmul(c, &L->fc2, big, R, q)) != ORION_OK) return st;
        row_task r2 = {ROW_RESID, R, E, x, NULL, q, L->b2, NULL, NULL, 0, false};
        rows(c, &r2);
    }
    /* projector over the patch rows (class token dropped) */
    if ((st = matmul(c, &c->mm0, x + E, NP, big)) != ORION_OK) return st;
    row_task g1 = {ROW_BIAS_ACT, NP, in->n_mm_hidden, big, NULL, NULL, c->mm0_b, NULL, NULL, 0, false};
    rows(c, &g1);
    if ((st = matmul(c, &c->mm2, big, NP, out)) != ORION_OK) return st;
    row_task b2 = {ROW_BIAS, NP, in->n_out, out, NULL, NULL, c->mm2_b, NULL, NULL, 0, false};
    rows(c, &b2);
    return ORION_OK;
}

orion_status orion_clip_encode(orion_clip *c, const orion_image *img, float *out) {
    if (!c || !img || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_clip_encode: NULL argument");
    const size_t n = 3 * (size_t)c->info.image_size * (size_t)c->info.image_size;
    float *pixels = orion__malloc(sizeof(float) * n);
    if (!pixels) return orion__fail(ORION_ERR_NOMEM, "clip: out of memory for the pixels");
    orion_status st = orion_clip_preprocess(c, img, pixels);
    if (st == ORION_OK) st = orion_clip_encode_pixels(c, pixels, out);
    orion__free(pixels);
    return st;
}
