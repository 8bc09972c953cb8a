/*
 * cpu.c — CPU feature detection, done once.
 *
 * x86: CPUID leaves 1 and 7, and XGETBV to check that the OS saves the YMM
 * (AVX) and ZMM (AVX-512) state; a feature the OS does not enable is treated
 * as absent. ARM64: the kernel's hwcaps (NEON is always there on AArch64).
 */
#include "core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ __volatile__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static uint32_t detect(void) {
    uint32_t a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & bit_SSE3) f |= ORION_CPU_SSE3;
    if (c & bit_SSSE3) f |= ORION_CPU_SSSE3;
    if (c & bit_SSE4_1) f |= ORION_CPU_SSE41;
    bool osxsave = (c & bit_OSXSAVE) != 0;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm = (xcr0 & 0x6) == 0x6;            /* XMM and YMM state */
    bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;   /* opmask, ZMM hi256, hi16 ZMM */
    if (ymm && (c & bit_AVX)) f |= ORION_CPU_AVX;
    if (ymm && (c & bit_FMA)) f |= ORION_CPU_FMA;
    if (ymm && (c & bit_F16C)) f |= ORION_CPU_F16C;
    uint32_t max = __get_cpuid_max(0, NULL);
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (ymm && (b & (1u << 5))) f |= ORION_CPU_AVX2;
        if (zmm && (b & (1u << 16))) f |= ORION_CPU_AVX512F;
        if (zmm && (b & (1u << 30))) f |= ORION_CPU_AVX512BW;
        if (zmm && (c & (1u << 11))) f |= ORION_CPU_AVX512VNNI;
        __cpuid_count(7, 1, a, b, c, d);
        if (ymm && (a & (1u << 4))) f |= ORION_CPU_AVXVNNI;
        if (zmm && (a & (1u << 5))) f |= ORION_CPU_AVX512BF16;
    }
    return f;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static uint32_t detect(void) {
    uint32_t f = ORION_CPU_NEON;
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) f |= ORION_CPU_DOTPROD;
    return f;
}
#else
static uint32_t detect(void) {
    return 0;
}
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint32_t features;

static void init_features(void) {
    features = detect();
}

uint32_t orion_cpu_features(void) {
    pthread_once(&once, init_features);
    return features;
}

char *orion_cpu_features_str(uint32_t f, char *buf, size_t size) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {ORION_CPU_SSE3, "sse3"},           {ORION_CPU_SSSE3, "ssse3"},
        {ORION_CPU_SSE41, "sse4.1"},        {ORION_CPU_AVX, "avx"},
        {ORION_CPU_AVX2, "avx2"},           {ORION_CPU_FMA, "fma"},
        {ORION_CPU_F16C, "f16c"},           {ORION_CPU_AVX512F, "avx512f"},
        {ORION_CPU_AVX512BW, "avx512bw"},   {ORION_CPU_AVX512VNNI, "avx512vnni"},
        {ORION_CPU_AVX512BF16, "avx512bf16"}, {ORION_CPU_AVXVNNI, "avxvnni"},
        {ORION_CPU_NEON, "neon"},           {ORION_CPU_DOTPROD, "dotprod"},
    };
    if (!buf || size == 0) return buf;
    buf[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < ORION_ARRAY_LEN(names); i++) {
        if (!(f & names[i].bit)) continue;
        int n = snprintf(buf + len, size - len, "%s%s", len ? " " : "", names[i].name);
        if (n < 0 || (size_t)n >= size - len) break;
        len += (size_t)n;
    }
    return buf;
}
