/* bench_kernels.c — placeholder; filled in by its owner. */
#include "cli.h"

#include <stdio.h>

int orion_cli_bench_kernels(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "orion bench kernels: not implemented yet\n");
    return 1;
}
