/*
 * mmproj.c — the metadata of llama.cpp's mmproj GGUF layout (what
 * convert_image_encoder_to_gguf.py writes and src/models/clip.c reads):
 * one writer for orion convert (hf_llava.c) and orion synth (synth_clip.c).
 */
#include "formats/mmproj.h"

const float orion__clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float orion__clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

orion_status orion__mmproj_write_metadata(orion_gguf_writer *w, const orion__mmproj_meta *m) {
    orion_status st;
#define SET(call)                                 \
    do {                                          \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)
    SET(orion_gguf_writer_set_str(w, "general.architecture", "clip"));
    SET(orion_gguf_writer_set_str(w, "general.name", m->name));
    SET(orion_gguf_writer_set_str(w, "general.description", m->description));
    SET(orion_gguf_writer_set_bool(w, "clip.has_text_encoder", false));
    SET(orion_gguf_writer_set_bool(w, "clip.has_vision_encoder", true));
    SET(orion_gguf_writer_set_bool(w, "clip.has_llava_projector", true));
    SET(orion_gguf_writer_set_str(w, "clip.projector_type", "mlp"));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.image_size", (uint32_t)m->image_size));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.patch_size", (uint32_t)m->patch_size));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.embedding_length", (uint32_t)m->n_embd));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.feed_forward_length", (uint32_t)m->n_ff));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.projection_dim", (uint32_t)m->projection_dim));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.attention.head_count", (uint32_t)m->n_head));
    SET(orion_gguf_writer_set_f32(w, "clip.vision.attention.layer_norm_epsilon", m->norm_eps));
    SET(orion_gguf_writer_set_u32(w, "clip.vision.block_count", (uint32_t)m->block_count));
    if (m->feature_layer >= 0)
        SET(orion_gguf_writer_set_array(w, "clip.vision.feature_layer", ORION_GGUF_I32, &m->feature_layer, 1));
    SET(orion_gguf_writer_set_array(w, "clip.vision.image_mean", ORION_GGUF_F32, m->image_mean, 3));
    SET(orion_gguf_writer_set_array(w, "clip.vision.image_std", ORION_GGUF_F32, m->image_std, 3));
    SET(orion_gguf_writer_set_bool(w, "clip.use_gelu", m->use_gelu));
#undef SET
    return ORION_OK;
}
