/*
 * fp16.h — exact scalar conversions between f32 and IEEE f16 / bfloat16,
 * written with integer operations so they are the same on every machine and
 * serve as the reference for the SIMD row conversions.
 */
#ifndef ORION_FP16_H
#define ORION_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t orion__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float orion__bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f16 -> f32, exact (subnormals, infinities and NaN included). */
static inline float orion__fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {                 /* inf / NaN */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {             /* normal */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {             /* zero */
        bits = sign;
    } else {                           /* subnormal: renormalize */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    return orion__bits_f32(bits);
}

/* f32 -> f16, round to nearest even, overflow to infinity, NaN kept quiet
 * (the same results as the F16C instruction vcvtps2ph with rounding mode 0). */
static inline uint16_t orion__fp32_to_fp16(float f) {
    uint32_t x = orion__f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (ax >= 0x38800000u) {                                   /* normal f16 */
        uint32_t mant_odd = (ax >> 13) & 1u;
        ax += 0xfffu + mant_odd;                               /* round to nearest even */
        return (uint16_t)(sign | ((ax - 0x38000000u) >> 13));
    }
    if (ax < 0x33000000u) return (uint16_t)sign;               /* < half the smallest subnormal */
    /* subnormal f16: value = m * 2^-24 */
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;                                 /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

static inline float orion__bf16_to_fp32(uint16_t h) {
    return orion__bits_f32((uint32_t)h << 16);
}

/* f32 -> bf16, round to nearest even; NaN stays NaN (quiet bit set). */
static inline uint16_t orion__fp32_to_bf16(float f) {
    uint32_t x = orion__f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#endif /* ORION_FP16_H */
