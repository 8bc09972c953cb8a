/*
 * tensor_f32.c — 1-D tensors as f32 (see tensor_f32.h).
 */
#include "models/tensor_f32.h"

#include "core/core.h"

#include <stdint.h>

orion_status orion__tensor_f32(const orion_gguf *g, const char *label, const char *name, int64_t n, float *owned,
                               size_t cap, size_t *used, const float **out) {
    const orion_gguf_tensor *t = orion_gguf_find_tensor(g, name);
    if (!t) return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' is missing", label, name);
    if (t->n_elems != n)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %lld", label, name,
                           (long long)t->n_elems, (long long)n);
    if (t->type == ORION_TYPE_F32 && ((uintptr_t)t->data % 4) == 0) {
        *out = t->data;
        return ORION_OK;
    }
    if (*used + (size_t)n > cap) return orion__fail(ORION_ERR_INTERNAL, "%s: too many converted 1-D tensors", label);
    float *dst = owned + *used;
    orion_status st = orion_dequantize(t->type, t->data, dst, n);
    if (st != ORION_OK) return orion__fail(st, "%s: tensor '%s': %s", label, name, orion_last_error());
    *used += (size_t)n;
    *out = dst;
    return ORION_OK;
}
