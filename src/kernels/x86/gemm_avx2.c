/* gemm_avx2.c — placeholder; filled in by its owner. */
#include "kernels/kernels.h"

void orion__register_gemm_avx2(orion_kernels *k) {
    ORION_UNUSED(k);
}
