/*
 * mmproj.h — llama.cpp's "mmproj" GGUF layout for a CLIP image encoder with
 * a LLaVA projector: its metadata keys, written in one place for every
 * writer (orion convert of a Hugging Face LLaVA directory, orion synth
 * --arch clip), and CLIP's preprocessing constants (mmproj.c).
 */
#ifndef ORION_MMPROJ_H
#define ORION_MMPROJ_H

#include "core/core.h"

/* OpenAI CLIP's normalization, the default of clip.vision.image_mean/std. */
extern const float orion__clip_mean[3], orion__clip_std[3];

typedef struct orion__mmproj_meta {
    const char *name, *description;
    int64_t     image_size, patch_size, n_embd, n_ff, n_head, projection_dim;
    int64_t     block_count;    /* the layers written */
    int32_t     feature_layer;  /* clip.vision.feature_layer; < 0: not written (select -2 of block_count) */
    float       norm_eps;
    const float *image_mean, *image_std; /* 3 each */
    bool        use_gelu;       /* clip.use_gelu: erf GELU; false: quick GELU */
} orion__mmproj_meta;

/* Sets the general.* and clip.* keys of an mmproj file. Errors from the writer. */
orion_status orion__mmproj_write_metadata(orion_gguf_writer *w, const orion__mmproj_meta *m);

#endif /* ORION_MMPROJ_H */
