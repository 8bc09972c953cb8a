/*
 * dispatch.c — builds the kernel tables once and picks the one in use.
 *
 * The reference table is filled by the *_ref register functions. The SIMD
 * table starts as a copy of the reference table and is overridden by the
 * register functions of the best ISA this CPU supports, so an op without a
 * SIMD version falls back to its reference. ORION_FORCE_REF=1 selects the
 * reference table.
 */
#include "kernels/kernels.h"

#include <pthread.h>
#include <string.h>

static orion_kernels ref_table;
static orion_kernels simd_table;
static bool have_simd;
static const orion_kernels *active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    memset(&ref_table, 0, sizeof ref_table);
    ref_table.name = "ref";
    orion__register_quant_ref(&ref_table);
    orion__register_dot_q8a_ref(&ref_table);
    orion__register_gemm_ref(&ref_table);
    orion__register_ops_ref(&ref_table);

#if defined(ORION_HAVE_X86)
    const uint32_t need = ORION_CPU_AVX2 | ORION_CPU_FMA | ORION_CPU_F16C;
    if ((orion_cpu_features() & need) == need) {
        simd_table = ref_table;
        simd_table.name = "avx2";
        orion__register_quant_avx2(&simd_table);
        orion__register_dot_q8a_avx2(&simd_table);
        orion__register_gemm_avx2(&simd_table);
        orion__register_ops_avx2(&simd_table);
        have_simd = true;
    }
#endif
    active = (have_simd && !orion__env_flag("ORION_FORCE_REF")) ? &simd_table : &ref_table;
}

const orion_kernels *orion__kernels(void) {
    pthread_once(&once, build_tables);
    return active;
}

const orion_kernels *orion__kernels_ref(void) {
    pthread_once(&once, build_tables);
    return &ref_table;
}

const orion_kernels *orion__kernels_simd(void) {
    pthread_once(&once, build_tables);
    return have_simd ? &simd_table : NULL;
}

const char *orion_kernels_name(void) {
    return orion__kernels()->name;
}
