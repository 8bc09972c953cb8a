/* ops_ref.c — placeholder; filled in by its owner. */
#include "kernels/kernels.h"

void orion__register_ops_ref(orion_kernels *k) {
    ORION_UNUSED(k);
}
