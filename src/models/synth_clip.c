/*
 * synth_clip.c — synthetic CLIP image encoders with LLaVA's projector, as
 * llama.cpp "mmproj" GGUF files (the layout clip.c reads and `orion convert`
 * writes from a LLaVA directory): the real shape of CLIP ViT-L/14-336 and
 * LLaVA-1.5's projector, seeded random weights, for measuring speed and
 * memory without downloading a model.
 *
 * Keys: general.architecture "clip", clip.has_vision_encoder,
 * clip.has_llava_projector, clip.projector_type "mlp", clip.vision.* (image
 * and patch size, widths, heads, block_count, layer_norm_epsilon, CLIP's
 * image_mean / image_std), clip.use_gelu false (CLIP's quick GELU). No
 * feature_layer key: clip.c then runs LLaVA-1.5's select layer -2, all
 * blocks but the last (the last block is written, as llama.cpp's converter
 * writes it).
 *
 * Values (synth.c's generator, seeded by the seed and each name): matrices,
 * the class token and the position embeddings N(0, 0.02^2); LayerNorm
 * weights 1, biases 0. Types follow orion_convert's rule: 1-D tensors f32;
 * the position embeddings f32 unless the type is a float type; a matrix
 * whose rows do not fill whole blocks (the patch convolution's rows of
 * 3 * 14 * 14 = 588) f16; every other matrix the requested type.
 */
#include "models/synth.h"

#include "formats/gguf_internal.h"
#include "formats/mmproj.h"

#include <stdio.h>
#include <string.h>

static const orion_synth_clip_shape CLIP_SHAPES[] = {
    /* name               image patch  embd  ff    layer head  mm    out */
    {"vit-l-14-336", 336, 14, 1024, 4096, 24, 16, 4096, 4096},     /* LLaVA-1.5 7B */
    {"vit-l-14-336-13b", 336, 14, 1024, 4096, 24, 16, 5120, 5120}, /* LLaVA-1.5 13B */
    /* for tests: 16 patches, every matrix a multiple of 32 wide */
    {"test-tiny", 32, 8, 64, 128, 3, 4, 64, 64},
};

const orion_synth_clip_shape *orion__synth_clip_shape_at(int i) {
    return i >= 0 && i < (int)ORION_ARRAY_LEN(CLIP_SHAPES) ? &CLIP_SHAPES[i] : NULL;
}

const orion_synth_clip_shape *orion__synth_clip_shape_find(const char *name) {
    for (size_t i = 0; name && i < ORION_ARRAY_LEN(CLIP_SHAPES); i++)
        if (strcmp(CLIP_SHAPES[i].name, name) == 0) return &CLIP_SHAPES[i];
    return NULL;
}

static bool is_float(orion_type t) {
    return t == ORION_TYPE_F32 || t == ORION_TYPE_F16 || t == ORION_TYPE_BF16;
}

static orion_status set_metadata(orion_gguf_writer *w, const orion_synth_params *p) {
    const orion_synth_clip_shape *s = p->clip;
    char name[128];
    snprintf(name, sizeof name, "synthetic %s %s seed %llu", s->name ? s->name : "custom", orion_type_name(p->type),
             (unsigned long long)p->seed);
    const orion__mmproj_meta m = {
        .name = name, .description = "image encoder for LLaVA", .image_size = s->image_size,
        .patch_size = s->patch_size, .n_embd = s->n_embd, .n_ff = s->n_ff, .n_head = s->n_head,
        .projection_dim = 768, .block_count = s->n_layer, .feature_layer = -1, .norm_eps = 1e-5f,
        .image_mean = orion__clip_mean, .image_std = orion__clip_std, .use_gelu = false,
    };
    return orion__mmproj_write_metadata(w, &m);
}

/* Fills ts (room for 9 + 16 * n_layer); returns the count. */
static int64_t list_tensors(const orion_synth_params *p, orion_synth_tensor *ts) {
    const orion_synth_clip_shape *s = p->clip;
    const int64_t E = s->n_embd, F = s->n_ff, P = s->patch_size, side = s->image_size / s->patch_size;
    int64_t n = 0;
    char nm[64];
    /* type: the requested one for matrices, by orion_convert's rule */
#define ADD(dims, e0, e1, e2, e3, how)                                                              \
    do {                                                                                            \
        orion_synth_tensor *t = &ts[n++];                                                           \
        memset(t, 0, sizeof *t);                                                                    \
        snprintf(t->name, sizeof t->name, "%s", nm);                                                \
        t->n_dims = dims, t->ne[0] = e0, t->ne[1] = e1, t->ne[2] = e2, t->ne[3] = e3, t->fill = how; \
        t->type = dims == 1 ? ORION_TYPE_F32 : p->type;                                             \
        if (t->ne[0] % orion_type_block_elems(t->type) != 0) t->type = ORION_TYPE_F16;              \
    } while (0)
#define NAME(...) snprintf(nm, sizeof nm, __VA_ARGS__)
    NAME("v.patch_embd.weight"); ADD(4, P, P, 3, E, ORION_SYNTH_RANDOM);
    NAME("v.class_embd"); ADD(1, E, 1, 1, 1, ORION_SYNTH_RANDOM);
    NAME("v.position_embd.weight"); ADD(2, E, side * side + 1, 1, 1, ORION_SYNTH_RANDOM);
    if (!is_float(p->type)) ts[n - 1].type = ORION_TYPE_F32; /* added, not multiplied */
    NAME("v.pre_ln.weight"); ADD(1, E, 1, 1, 1, ORION_SYNTH_ONES);
    NAME("v.pre_ln.bias"); ADD(1, E, 1, 1, 1, ORION_SYNTH_ZEROS);
    for (int l = 0; l < s->n_layer; l++) {
        static const char *const attn[4] = {"attn_q", "attn_k", "attn_v", "attn_out"};
        for (int i = 0; i < 4; i++) {
            NAME("v.blk.%d.%s.weight", l, attn[i]); ADD(2, E, E, 1, 1, ORION_SYNTH_RANDOM);
            NAME("v.blk.%d.%s.bias", l, attn[i]); ADD(1, E, 1, 1, 1, ORION_SYNTH_ZEROS);
        }
        NAME("v.blk.%d.ln1.weight", l); ADD(1, E, 1, 1, 1, ORION_SYNTH_ONES);
        NAME("v.blk.%d.ln1.bias", l); ADD(1, E, 1, 1, 1, ORION_SYNTH_ZEROS);
        /* llama.cpp's converter names mlp.fc1 (E -> F) "ffn_down" */
        NAME("v.blk.%d.ffn_down.weight", l); ADD(2, E, F, 1, 1, ORION_SYNTH_RANDOM);
        NAME("v.blk.%d.ffn_down.bias", l); ADD(1, F, 1, 1, 1, ORION_SYNTH_ZEROS);
        NAME("v.blk.%d.ffn_up.weight", l); ADD(2, F, E, 1, 1, ORION_SYNTH_RANDOM);
        NAME("v.blk.%d.ffn_up.bias", l); ADD(1, E, 1, 1, 1, ORION_SYNTH_ZEROS);
        NAME("v.blk.%d.ln2.weight", l); ADD(1, E, 1, 1, 1, ORION_SYNTH_ONES);
        NAME("v.blk.%d.ln2.bias", l); ADD(1, E, 1, 1, 1, ORION_SYNTH_ZEROS);
    }
    NAME("mm.0.weight"); ADD(2, E, s->n_mm, 1, 1, ORION_SYNTH_RANDOM);
    NAME("mm.0.bias"); ADD(1, s->n_mm, 1, 1, 1, ORION_SYNTH_ZEROS);
    NAME("mm.2.weight"); ADD(2, s->n_mm, s->n_out, 1, 1, ORION_SYNTH_RANDOM);
    NAME("mm.2.bias"); ADD(1, s->n_out, 1, 1, 1, ORION_SYNTH_ZEROS);
#undef NAME
#undef ADD
    return n;
}

orion_status orion__synth_clip_write(const char *path, const orion_synth_params *p) {
    const orion_synth_clip_shape *s = p->clip;
    if (!orion_type_is_supported((int)p->type))
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: unsupported weight type %d", (int)p->type);
    if (s->image_size <= 0 || s->patch_size <= 0 || s->image_size % s->patch_size != 0 || s->image_size > 4096 ||
        s->n_embd <= 0 || s->n_head <= 0 || s->n_embd % s->n_head != 0 || s->n_ff <= 0 || s->n_layer < 2 ||
        s->n_layer > 1024 || s->n_mm <= 0 || s->n_out <= 0 || s->n_embd > (1 << 16) || s->n_ff > (1 << 18) ||
        s->n_mm > (1 << 18) || s->n_out > (1 << 18))
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: bad CLIP shape (image %d, patch %d, embd %d, heads %d, "
                                                  "ff %d, layers %d, projector %d -> %d)",
                           s->image_size, s->patch_size, s->n_embd, s->n_head, s->n_ff, s->n_layer, s->n_mm, s->n_out);
    orion_gguf_writer *w = NULL;
    orion_synth_tensor *ts = NULL;
    orion_status st = orion_gguf_writer_init(&w);
    if (st != ORION_OK) return st;
    if ((st = set_metadata(w, p)) != ORION_OK) goto done;
    if (!(ts = orion__calloc(9 + 16 * (size_t)s->n_layer, sizeof *ts))) {
        st = orion__fail(ORION_ERR_NOMEM, "synth: out of memory");
        goto done;
    }
    st = orion__synth_write_tensors(path, w, ts, list_tensors(p, ts), p);
done:
    orion__free(ts);
    orion_gguf_writer_free(w);
    return st;
}
