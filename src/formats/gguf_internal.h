/*
 * gguf_internal.h — the GGUF handle's layout and helpers shared by the
 * reader (gguf_read.c) and the writer (gguf_write.c).
 */
#ifndef ORION_GGUF_INTERNAL_H
#define ORION_GGUF_INTERNAL_H

#include "core/core.h"

struct orion_gguf {
    const uint8_t     *data;        /* the whole file */
    size_t             size;
    const uint8_t     *map;         /* the mapping when we mapped the file, else NULL */
    char              *label;       /* path (or "<memory>") for messages */
    uint32_t           version;
    size_t             alignment;
    size_t             data_offset; /* start of the tensor data section */
    int64_t            n_kv;
    char             **keys;        /* n_kv NUL-terminated copies */
    orion_gguf_value  *values;      /* n_kv */
    int64_t            n_tensors;
    orion_gguf_tensor *tensors;     /* n_tensors */
    void             **owned;       /* every allocation above, freed together */
    size_t             n_owned, cap_owned;
};

/* A tensor whose bytes are produced at write time (so a converter holds one
 * tensor's output at a time, not the whole model): fn fills dst with exactly
 * n_bytes and returns a status; an error aborts the write. */
typedef orion_status (*orion_gguf_produce_fn)(void *user, void *dst, size_t n_bytes);

orion_status orion__gguf_writer_add_tensor_fn(orion_gguf_writer *w, const char *name, orion_type type, int n_dims,
                                              const int64_t *ne, orion_gguf_produce_fn fn, void *user);

size_t orion__gguf_scalar_size(orion_gguf_type t);
/* True for an array whose elements are numbers (or bools). */
bool   orion__gguf_value_is_number_array(const orion_gguf_value *v);
bool   orion__gguf_type_valid(uint32_t t);
void   orion__gguf_decode_scalar(orion_gguf_type t, const void *p, orion_gguf_value *v);

#endif
