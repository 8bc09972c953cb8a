/*
 * fuzz_tfjs.c — libFuzzer target for the TF.js model.json reader
 * (orion__tfjs_parse): any byte string must either parse (and then every
 * weight lies inside its group's byte range, has the byte size its dtype,
 * quantization and shape imply, every group's size is the sum of its
 * weights, every node has a name, an op and its inputs, and look-ups by
 * name find what they should) or fail with a message; never crash,
 * over-read, leak or allocate without bound. Built by `make fuzz` with
 * clang; seeds in fuzz/corpus/tfjs.
 */
#include "formats/tfjs.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    orion_tfjs_model *m = NULL;
    if (orion__tfjs_parse("fuzz.json", data, size, &m) != ORION_OK) {
        if (orion_last_error()[0] == '\0') __builtin_trap(); /* a failure always says why */
        if (m) __builtin_trap();
        return 0;
    }
    volatile size_t sink = 0;
    for (int32_t g = 0; g < m->n_groups; g++) {
        size_t sum = 0;
        for (int32_t i = 0; i < m->n_weights; i++) {
            const orion_tfjs_weight *w = &m->weights[i];
            if (w->group != g) continue;
            if (w->offset != sum) __builtin_trap();
            sum += w->n_bytes;
        }
        if (sum != m->groups[g].n_bytes) __builtin_trap();
        for (int32_t p = 0; p < m->groups[g].n_paths; p++) {
            const char *s = m->groups[g].paths[p];
            if (!s[0] || strchr(s, '/') || strcmp(s, "..") == 0) __builtin_trap();
        }
    }
    for (int32_t i = 0; i < m->n_weights; i++) {
        const orion_tfjs_weight *w = &m->weights[i];
        if (w->group < 0 || w->group >= m->n_groups) __builtin_trap();
        if (w->n_dims < 0 || w->n_dims > ORION_TFJS_MAX_DIMS || w->data) __builtin_trap();
        int64_t n = 1;
        for (int d = 0; d < w->n_dims; d++) n *= w->shape[d];
        if (n != w->n_elems) __builtin_trap();
        size_t es = w->dtype == ORION_TFJS_BOOL ? 1 : 4;
        if (w->quant[0]) es = strcmp(w->quant, "uint8") == 0 ? 1 : 2;
        if (w->n_bytes != (size_t)w->n_elems * es) __builtin_trap();
        const orion_tfjs_weight *f = orion__tfjs_find_weight(m, w->name);
        if (!f || strcmp(f->name, w->name) != 0) __builtin_trap();
    }
    for (int32_t i = 0; i < m->n_nodes; i++) {
        const orion_tfjs_node *n = &m->nodes[i];
        sink += strlen(n->name) + strlen(n->op);
        for (int32_t k = 0; k < n->n_inputs; k++) sink += strlen(n->inputs[k]);
        const orion_tfjs_node *f = orion__tfjs_find_node(m, n->name);
        if (!f || strcmp(f->name, n->name) != 0) __builtin_trap();
    }
    (void)sink;
    orion__tfjs_free(m);
    return 0;
}
