/* bench_main.c — `orion bench WHAT`: dispatches to the benchmarks. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int orion_cli_bench(int argc, char **argv) {
    if (argc < 1) {
        fprintf(stderr, "usage: orion bench kernels [--json] [--threads N] [--quick]\n"
                        "       orion bench decode MODEL [--json] [--threads N] [--prompt-tokens N] [--gen-tokens N]\n"
                        "                                [--reps N] [--vs-llamacpp]\n"
                        "       orion bench matvec [--shape NAME] [--type T] [--pairs N] [--threads N] [--json]\n"
                        "       orion bench attention [--shape NAME] [--positions N] [--pairs N] [--json]\n"
                        "       orion bench cache [--keys N] [--ops N] [--quick]\n"
                        "       orion bench serve MODEL [--seconds S] [--threads N]\n"
                        "       orion bench vision MMPROJ [--threads N] [--reps N] [--json]\n");
        return 2;
    }
    if (strcmp(argv[0], "kernels") == 0) return orion_cli_bench_kernels(argc - 1, argv + 1);
    if (strcmp(argv[0], "embed") == 0) return orion_cli_bench_embed(argc - 1, argv + 1);
    if (strcmp(argv[0], "decode") == 0) return orion_cli_bench_decode(argc - 1, argv + 1);
    if (strcmp(argv[0], "matvec") == 0) return orion_cli_bench_matvec(argc - 1, argv + 1);
    if (strcmp(argv[0], "attention") == 0) return orion_cli_bench_attention(argc - 1, argv + 1);
    if (strcmp(argv[0], "cache") == 0) return orion_cli_bench_cache(argc - 1, argv + 1);
    if (strcmp(argv[0], "serve") == 0) return orion_cli_bench_serve(argc - 1, argv + 1);
    if (strcmp(argv[0], "vision") == 0) return orion_cli_bench_vision(argc - 1, argv + 1);
    fprintf(stderr, "orion bench: unknown benchmark '%s' (expected: kernels, embed, decode, matvec, attention, cache, serve, vision)\n",
            argv[0]);
    return 2;
}
