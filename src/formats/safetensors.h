/*
 * safetensors.h — reads safetensors files (Hugging Face's tensor format; see
 * safetensors.c for the layout and the checks). Internal to the formats
 * layer: the Hugging Face importer (hf_model.c) and the fuzzer use it.
 */
#ifndef ORION_SAFETENSORS_H
#define ORION_SAFETENSORS_H

#include "core/core.h"

#define ORION_ST_MAX_DIMS 8
/* The JSON header may not be larger than this. */
#define ORION_ST_MAX_HEADER ((uint64_t)100 << 20)

typedef enum orion_st_dtype {
    ORION_ST_F64,
    ORION_ST_F32,
    ORION_ST_F16,
    ORION_ST_BF16,
    ORION_ST_I64,
    ORION_ST_I32,
    ORION_ST_I16,
    ORION_ST_I8,
    ORION_ST_U8,
    ORION_ST_BOOL,
    ORION_ST_DTYPE_COUNT
} orion_st_dtype;

typedef struct orion_st_tensor {
    const char    *name;     /* NUL-terminated, owned by the handle */
    orion_st_dtype dtype;
    int            n_dims;   /* 0 (a scalar) .. ORION_ST_MAX_DIMS */
    int64_t        shape[ORION_ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] varies fastest */
    int64_t        n_elems;
    uint64_t       offset;   /* data_offsets[0], from the start of the data buffer */
    size_t         n_bytes;  /* data_offsets[1] - data_offsets[0] */
    const void    *data;     /* points into the file: not copied, maybe unaligned */
} orion_st_tensor;

typedef struct orion_safetensors orion_safetensors;

/* Maps `path` read-only and validates it. *out is set on success. Errors:
 * ORION_ERR_NOT_FOUND / _IO (the file), _FORMAT (malformed, message names
 * the file, tensor and field), _UNSUPPORTED (a dtype orion does not know),
 * _NOMEM. A handle may be read from many threads at once. */
orion_status orion__safetensors_open(const char *path, orion_safetensors **out);
/* Same over a caller's buffer, which must outlive the handle. `label` names
 * it in messages (NULL: "<memory>"). */
orion_status orion__safetensors_open_memory(const void *data, size_t size, const char *label,
                                            orion_safetensors **out);
void         orion__safetensors_free(orion_safetensors *st);

const char            *orion__safetensors_label(const orion_safetensors *st);
int64_t                orion__safetensors_n_tensors(const orion_safetensors *st);
/* Tensors in the order of the header; NULL when i is out of range. */
const orion_st_tensor *orion__safetensors_tensor_at(const orion_safetensors *st, int64_t i);
/* The tensor called `name`, or NULL. O(log n). */
const orion_st_tensor *orion__safetensors_find(const orion_safetensors *st, const char *name);

/* "F32", "BF16", ... and the bytes of one element. */
const char *orion__st_dtype_name(orion_st_dtype dtype);
size_t      orion__st_dtype_size(orion_st_dtype dtype);

#endif
