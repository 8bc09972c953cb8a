/*
 * types.c — the tensor types orion stores weights in: their traits (block
 * size and bytes, as GGUF/ggml define them), names, and the public quantize /
 * dequantize entry points, which run row by row through the kernel table.
 */
#include "kernels/kernels.h"
#include "core/fp16.h"

#include <strings.h>

static const orion_type_traits traits[ORION_TYPE_COUNT] = {
    [ORION_TYPE_F32]  = {"f32", 1, 4, false},
    [ORION_TYPE_F16]  = {"f16", 1, 2, false},
    [ORION_TYPE_BF16] = {"bf16", 1, 2, false},
    [ORION_TYPE_Q8_0] = {"q8_0", ORION_QK, sizeof(orion_block_q8_0), true},
    [ORION_TYPE_Q4_0] = {"q4_0", ORION_QK, sizeof(orion_block_q4_0), true},
    [ORION_TYPE_Q4_1] = {"q4_1", ORION_QK, sizeof(orion_block_q4_1), true},
};

const orion_type_traits *orion__type_traits(int type) {
    if (type < 0 || type >= ORION_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

bool orion_type_is_supported(int type) {
    return orion__type_traits(type) != NULL;
}

const char *orion_type_name(orion_type type) {
    const orion_type_traits *t = orion__type_traits((int)type);
    return t ? t->name : "?";
}

orion_status orion_type_from_name(const char *name, orion_type *out) {
    if (!name || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_type_from_name: NULL argument");
    for (int i = 0; i < ORION_TYPE_COUNT; i++) {
        if (traits[i].name && strcasecmp(traits[i].name, name) == 0) {
            *out = (orion_type)i;
            return ORION_OK;
        }
    }
    return orion__fail(ORION_ERR_NOT_FOUND,
                       "unknown tensor type '%s' (expected f32, f16, bf16, q8_0, q4_0 or q4_1)", name);
}

int64_t orion_type_block_elems(orion_type type) {
    const orion_type_traits *t = orion__type_traits((int)type);
    return t ? t->block_elems : 0;
}

size_t orion_type_block_bytes(orion_type type) {
    const orion_type_traits *t = orion__type_traits((int)type);
    return t ? t->block_bytes : 0;
}

size_t orion_type_row_bytes(orion_type type, int64_t n) {
    const orion_type_traits *t = orion__type_traits((int)type);
    if (!t || n < 0 || n % t->block_elems != 0) return 0;
    size_t blocks = (size_t)(n / t->block_elems), bytes;
    return orion__mul_ok(blocks, t->block_bytes, &bytes) ? bytes : 0;
}

double orion_type_bits_per_weight(orion_type type) {
    const orion_type_traits *t = orion__type_traits((int)type);
    return t ? 8.0 * (double)t->block_bytes / (double)t->block_elems : 0.0;
}

float orion_fp16_to_fp32(uint16_t h) { return orion__fp16_to_fp32(h); }
uint16_t orion_fp32_to_fp16(float f) { return orion__fp32_to_fp16(f); }
float orion_bf16_to_fp32(uint16_t h) { return orion__bf16_to_fp32(h); }
uint16_t orion_fp32_to_bf16(float f) { return orion__fp32_to_bf16(f); }

orion_quant_params orion_quant_default_params(void) {
    orion_quant_params p = {false, NULL};
    return p;
}

static orion_status check_shape(orion_type type, int64_t n_rows, int64_t n_per_row, const char *what) {
    const orion_type_traits *t = orion__type_traits((int)type);
    if (!t) return orion__fail(ORION_ERR_UNSUPPORTED, "%s: unsupported tensor type id %d", what, (int)type);
    if (n_rows < 0 || n_per_row < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: negative shape %lld x %lld", what,
                           (long long)n_rows, (long long)n_per_row);
    if (n_per_row % t->block_elems != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: row length %lld is not a multiple of the %s block size %lld",
                           what, (long long)n_per_row, t->name, (long long)t->block_elems);
    return ORION_OK;
}

orion_status orion_quantize(orion_type type, const float *src, void *dst, int64_t n_rows,
                            int64_t n_per_row, const orion_quant_params *params) {
    orion_status st = check_shape(type, n_rows, n_per_row, "orion_quantize");
    if (st != ORION_OK) return st;
    if ((!src || !dst) && n_rows * n_per_row > 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_quantize: NULL buffer");
    orion_quant_params p = params ? *params : orion_quant_default_params();
    const orion_kernels *k = orion__kernels();
    size_t row_bytes = orion_type_row_bytes(type, n_per_row);
    bool calibrated = p.calibrate && orion__type_traits((int)type)->quantized;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *x = src + r * n_per_row;
        void *y = (char *)dst + (size_t)r * row_bytes;
        if (calibrated)
            orion__quantize_row_calibrated(type, x, y, n_per_row, p.importance);
        else
            k->quantize_row[type](x, y, n_per_row);
    }
    return ORION_OK;
}

orion_status orion_dequantize(orion_type type, const void *src, float *dst, int64_t n) {
    orion_status st = check_shape(type, 1, n, "orion_dequantize");
    if (st != ORION_OK) return st;
    if ((!src || !dst) && n > 0) return orion__fail(ORION_ERR_INVALID_ARG, "orion_dequantize: NULL buffer");
    orion__kernels()->dequantize_row[type](src, dst, n);
    return ORION_OK;
}
