/*
 * orion.c — entry point of the `orion` command line: dispatches to the
 * subcommands. Library errors are printed with orion_last_error().
 */
#include "orion.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: orion COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  version              print the version, CPU features and kernel set\n"
            "  info FILE            metadata, tensors and memory needed to run a GGUF file\n"
            "                       [--json] [--ctx N]\n"
            "  convert SRC OUT.gguf  llama2.c checkpoint, Hugging Face directory or GGUF to GGUF\n"
            "                       [--type T] [--tokenizer F]\n"
            "  quantize IN OUT --type T   re-type a GGUF: f32 f16 bf16 q8_0 q4_0 q4_1\n"
            "                       [--calibrate] [--imatrix FILE] [--per-tensor]\n"
            "  bench kernels        measure memory bandwidth, FMA peak and our kernels\n"
            "                       [--json] [--threads N] [--quick]\n"
            "  bench decode MODEL   prefill and generation tokens/s against the bandwidth limit\n"
            "                       [--json] [--threads N] [--prompt-tokens N] [--gen-tokens N] [--vs-llamacpp]\n"
            "  synth OUT.gguf       a model of a real shape with random weights: --shape NAME | --dims ...\n"
            "                       --type T [--arch llama|mistral] [--seed S] (--list: the shapes)\n"
            "  run MODEL -p PROMPT -n N   generate text [--temp T] [--top-k K] [--top-p P]\n"
            "                       [--min-p P] [--repeat-penalty R] [--seed S] [--threads N] [--ctx C]\n"
            "  imatrix MODEL -f TEXT -o FILE   per-column activation importance for quantize --imatrix\n"
            "  chat MODEL           interactive chat [--template llama2|mistral|chatml|vicuna] [--mmproj PROJ]\n"
            "  perplexity MODEL -f TEXT   perplexity [--ctx C] [--base MODEL: KL divergence, top-1] [--json]\n"
            "  embed MODEL [TEXT...]  sentence embeddings [--file F] [--format json|tsv|sim] [--batch N]\n"
            "                       [--threads N] [--max-tokens N] [--pooling mean|cls] [--no-normalize]\n"
            "                       or --server URL|SOCKET [--model ID]: through a running orion serve\n"
            "  embed-quality BASE MODEL...  what quantization costs an encoder: cosine to BASE,\n"
            "                       top-K neighbour overlap (--file F | --jsonl F[:FIELD]) [--top-k K] [--json]\n"
            "  serve                the model server [--port 11435] [--socket PATH] [--model ID=PATH ...] (--help)\n"
            "  ps                   models loaded in a running server [--server URL|SOCKET]\n"
            "  top                  memory, pressure, models, cache, requests of a running server\n"
            "                       [--server URL|SOCKET] [--interval S] [--once]\n"
            "  profile              device memory, cgroup limits, budget, policy tier, memory pressure\n"
            "                       [--json] [--config FILE] [--proc DIR] [--sys DIR]\n"
            "  models REGISTRY      models and their memory need per level [--config FILE]\n"
            "                       [--load ID [--lazy] [--level L]]: load, show memory, unload\n"
            "  help                 this text\n");
}

static int cmd_version(void) {
    char feats[256];
    printf("orion %s\n", orion_version());
    printf("cpu features: %s\n", orion_cpu_features_str(orion_cpu_features(), feats, sizeof feats));
    printf("kernels: %s\n", orion_kernels_name());
    printf("cpus: %d\n", orion_cpu_count());
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version();
    if (strcmp(cmd, "profile") == 0) return orion_cli_profile(argc - 2, argv + 2);
    if (strcmp(cmd, "models") == 0) return orion_cli_models(argc - 2, argv + 2);
    if (strcmp(cmd, "embed") == 0) return orion_cli_embed(argc - 2, argv + 2);
    if (strcmp(cmd, "embed-quality") == 0) return orion_cli_embed_quality(argc - 2, argv + 2);
    if (strcmp(cmd, "imatrix") == 0) return orion_cli_imatrix(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0) return orion_cli_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "ps") == 0) return orion_cli_ps(argc - 2, argv + 2);
    if (strcmp(cmd, "top") == 0) return orion_cli_top(argc - 2, argv + 2);
    if (strcmp(cmd, "chat") == 0) return orion_cli_chat(argc - 2, argv + 2);
    if (strcmp(cmd, "synth") == 0) return orion_cli_synth(argc - 2, argv + 2);
    if (strcmp(cmd, "perplexity") == 0) return orion_cli_perplexity(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0) return orion_cli_run(argc - 2, argv + 2);
    if (strcmp(cmd, "convert") == 0) return orion_cli_convert(argc - 2, argv + 2);
    if (strcmp(cmd, "quantize") == 0) return orion_cli_quantize(argc - 2, argv + 2);
    if (strcmp(cmd, "info") == 0) return orion_cli_info(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return orion_cli_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "orion: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
