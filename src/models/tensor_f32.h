/*
 * tensor_f32.h — a model's small 1-D tensors (norms, biases, embeddings of
 * a few values) as f32, shared by the encoders (bert.c, clip.c).
 */
#ifndef ORION_MODELS_TENSOR_F32_H
#define ORION_MODELS_TENSOR_F32_H

#include "orion.h"

/* Tensor `name` of exactly n values as f32: a pointer into the mapped file
 * when it is stored as aligned f32, else converted into owned[*used ..]
 * (capacity cap floats; *used advances). `label` names the model in errors:
 * a missing tensor or a wrong count is ORION_ERR_FORMAT, running out of
 * `owned` ORION_ERR_INTERNAL (the caller sized it). */
orion_status orion__tensor_f32(const orion_gguf *g, const char *label, const char *name, int64_t n, float *owned,
                               size_t cap, size_t *used, const float **out);

#endif
