/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader: any byte string must
 * either open (and then every accessor works on it) or fail with a message;
 * never crash, over-read, leak or allocate without bound. Built by
 * `make fuzz` with clang; seeds come from fuzz/corpus/gguf and the real
 * stories260K file.
 */
#include "orion.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    orion_gguf *g = NULL;
    if (orion_gguf_open_memory(data, size, &g) != ORION_OK) {
        /* a failure always leaves a message */
        if (orion_last_error()[0] == '\0') __builtin_trap();
        return 0;
    }
    /* touch everything the reader handed out */
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < orion_gguf_n_kv(g); i++) {
        const char *key = orion_gguf_kv_key(g, i);
        const orion_gguf_value *v = orion_gguf_kv_value(g, i);
        sink += strlen(key);
        if (v->type == ORION_GGUF_STRING && v->v.str.len) sink += (uint8_t)v->v.str.ptr[v->v.str.len - 1];
        if (v->type == ORION_GGUF_ARRAY && v->v.arr.count) {
            if (v->v.arr.items) sink += v->v.arr.items[v->v.arr.count - 1].type;
            else sink += (uint64_t)orion_gguf_array_i64(v, v->v.arr.count - 1);
        }
        if (orion_gguf_get(g, key) == NULL) __builtin_trap();
    }
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        if (t->n_bytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->n_bytes - 1];
        if (orion_gguf_find_tensor(g, t->name) != t) __builtin_trap();
    }
    (void)sink;
    orion_gguf_free(g);
    return 0;
}
