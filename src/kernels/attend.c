/*
 * attend.c — the attention of a group of query heads over one KV head's
 * cached rows: scores with rows_dot, scaled and softmaxed per head, then the
 * weighted sum of values with rows_axpy. orion_llm runs it per (position,
 * KV head) job; `orion bench attention` times it with either kernel table.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

void orion__attend(const orion_kernels *k, orion_type kv_type, int64_t n, const void *K, const void *V,
                   size_t stride, int64_t hd, const float *q, int nh, float *scores, float *out) {
    k->rows_dot[kv_type](n, K, stride, hd, q, nh, scores);
    k->scale(scores, 1.0f / sqrtf((float)hd), scores, (int64_t)nh * n);
    for (int j = 0; j < nh; j++) k->softmax(scores + (size_t)j * (size_t)n, n);
    memset(out, 0, sizeof(float) * (size_t)nh * (size_t)hd);
    k->rows_axpy[kv_type](n, V, stride, hd, scores, nh, out);
}
