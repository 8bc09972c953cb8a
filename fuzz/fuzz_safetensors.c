/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader: any byte
 * string must either open (and then every tensor it hands out lies inside
 * the buffer, has the size its dtype and shape imply, and is found by name)
 * or fail with a message; never crash, over-read, leak or allocate without
 * bound. Built by `make fuzz` with clang; seeds in fuzz/corpus/safetensors.
 */
#include "formats/safetensors.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    orion_safetensors *st = NULL;
    if (orion__safetensors_open_memory(data, size, NULL, &st) != ORION_OK) {
        if (orion_last_error()[0] == '\0') __builtin_trap(); /* a failure always says why */
        return 0;
    }
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < orion__safetensors_n_tensors(st); i++) {
        const orion_st_tensor *t = orion__safetensors_tensor_at(st, i);
        const uint8_t *p = t->data;
        if (p < data || p > data + size || t->n_bytes > (size_t)(data + size - p)) __builtin_trap();
        if (t->n_bytes != (size_t)t->n_elems * orion__st_dtype_size(t->dtype)) __builtin_trap();
        if (t->n_dims < 0 || t->n_dims > ORION_ST_MAX_DIMS) __builtin_trap();
        if (t->n_bytes) sink += p[0] + p[t->n_bytes - 1];
        sink += strlen(t->name);
        if (orion__safetensors_find(st, t->name) != t) __builtin_trap();
    }
    (void)sink;
    orion__safetensors_free(st);
    return 0;
}
