/*
 * llamacpp_bench.c — the llama.cpp side of `orion bench decode --vs-llamacpp`:
 * a small C driver over llama.cpp's C API (libllama and the ggml CPU
 * backends that the npm package node-llama-cpp ships prebuilt).
 *
 * NOT part of the orion build: CMake compiles every .c file of bench/ into
 * the orion binary, so everything below is inside #ifdef ORION_LLAMACPP_DRIVER and the
 * file is empty there. scripts/install-llamacpp.sh builds it with
 *   gcc -DORION_LLAMACPP_DRIVER -I PEER/include bench/llamacpp_bench.c
 *       -L PEER/lib -lllama -lggml -lggml-base -Wl,-rpath,'$ORIGIN/../lib'
 * against the headers of the exact llama.cpp release the binaries were built
 * from (the package carries that source as a git bundle).
 *
 * How it measures (the same as orion's side, bench_decode.c): load the
 * backends from the library directory (ggml_backend_load_all_from_path picks
 * the best CPU variant for this machine), load the GGUF with llama.cpp's
 * defaults (mmap, weight repacking on; --no-repack turns the repacking of
 * q4_0 into llama.cpp's interleaved CPU layout off), a context of prompt + gen positions
 * with n_threads = n_threads_batch = --threads. A rep clears the KV cache,
 * decodes --prompt-tokens random ids (splitmix64 from --seed, in [3, n_vocab):
 * the same ids orion uses) as one batch, then generates --gen-tokens tokens
 * one at a time, each the argmax of the previous logits. Times are taken
 * after llama_synchronize.
 *
 * Output: JSON objects, one per line, on stdout; llama.cpp's own log is
 * silenced except for errors (stderr).
 *   {"ready": true, "load_s": ..., ...}      after loading
 *   {"prefill_tps": ..., "gen_tps": ..., "prefill_s": ..., "gen_s": ...}   per rep
 * With --serve it loads once, prints the ready line, then runs one rep for
 * each "rep" line read on stdin and exits at EOF or "quit" (orion drives it
 * this way, interleaving its reps with ours). Without --serve it runs one
 * warm-up rep and --reps reps, then a {"best_prefill_tps": .., "best_gen_tps": ..}
 * line. --check only prints the default parameters, to verify that the
 * header matches the library (sane defaults mean the struct layouts agree).
 */
#ifdef ORION_LLAMACPP_DRIVER

#include "llama.h"
#include "ggml-backend.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int check_defaults(void) {
    struct llama_model_params mp = llama_model_default_params();
    struct llama_context_params cp = llama_context_default_params();
    printf("{\"model_params\": {\"n_gpu_layers\": %d, \"vocab_only\": %d, \"check_tensors\": %d, "
           "\"use_extra_bufts\": %d, \"no_host\": %d, \"no_alloc\": %d},\n",
           mp.n_gpu_layers, mp.vocab_only, mp.check_tensors, mp.use_extra_bufts, mp.no_host, mp.no_alloc);
    printf(" \"context_params\": {\"n_ctx\": %u, \"n_batch\": %u, \"n_ubatch\": %u, \"n_seq_max\": %u, "
           "\"n_threads\": %d, \"n_threads_batch\": %d, \"flash_attn_type\": %d, \"rope_freq_base\": %g, "
           "\"yarn_attn_factor\": %g, \"type_k\": %d, \"type_v\": %d, \"embeddings\": %d, \"offload_kqv\": %d, "
           "\"no_perf\": %d, \"kv_unified\": %d}}\n",
           cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max, cp.n_threads, cp.n_threads_batch,
           (int)cp.flash_attn_type, cp.rope_freq_base, cp.yarn_attn_factor, (int)cp.type_k, (int)cp.type_v,
           cp.embeddings, cp.offload_kqv, cp.no_perf, cp.kv_unified);
    /* What llama.cpp's defaults have been for a long time: a wrong header
     * shifts fields and breaks at least one of these. */
    int ok = mp.vocab_only == 0 && mp.check_tensors == 0 && mp.use_extra_bufts == 1 && cp.n_ctx > 0 &&
             cp.n_ctx <= 1u << 20 && cp.n_batch >= cp.n_ubatch && cp.n_ubatch > 0 && cp.n_seq_max == 1 &&
             cp.n_threads > 0 && cp.n_threads <= 4096 && cp.n_threads_batch == cp.n_threads &&
             cp.type_k == GGML_TYPE_F16 && cp.type_v == GGML_TYPE_F16 && cp.embeddings == 0 &&
             cp.rope_freq_base == 0.0f;
    fprintf(stderr, "llamacpp_bench: default parameters %s\n", ok ? "look sane" : "look WRONG: header mismatch?");
    return ok ? 0 : 1;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct bench {
    struct llama_context *ctx;
    llama_token          *prompt;
    int32_t               n_prompt, n_gen, n_vocab;
} bench;

/* One rep; returns 0 and the times, or prints an error line and returns 1. */
static int rep(bench *b, double *prefill_s, double *gen_s) {
    llama_memory_clear(llama_get_memory(b->ctx), true);
    double t0 = now_s();
    int rc = llama_decode(b->ctx, llama_batch_get_one(b->prompt, b->n_prompt));
    if (rc != 0) {
        printf("{\"error\": \"llama_decode (prompt) returned %d\"}\n", rc);
        return 1;
    }
    llama_synchronize(b->ctx);
    double t1 = now_s();
    llama_token next = argmax(llama_get_logits_ith(b->ctx, -1), b->n_vocab);
    for (int32_t i = 0; i < b->n_gen; i++) {
        rc = llama_decode(b->ctx, llama_batch_get_one(&next, 1));
        if (rc != 0) {
            printf("{\"error\": \"llama_decode (token %d) returned %d\"}\n", i, rc);
            return 1;
        }
        next = argmax(llama_get_logits_ith(b->ctx, -1), b->n_vocab);
    }
    llama_synchronize(b->ctx);
    double t2 = now_s();
    *prefill_s = t1 - t0;
    *gen_s = t2 - t1;
    return 0;
}

static void print_rep(const bench *b, double prefill_s, double gen_s) {
    printf("{\"prefill_tps\": %.3f, \"gen_tps\": %.3f, \"prefill_s\": %.6f, \"gen_s\": %.6f}\n",
           prefill_s > 0 ? b->n_prompt / prefill_s : 0.0, gen_s > 0 ? b->n_gen / gen_s : 0.0, prefill_s, gen_s);
    fflush(stdout);
}

/* The directory of the backends: $LLAMACPP_LIB, else ../lib beside this binary. */
static void lib_dir(char *out, size_t size) {
    const char *env = getenv("LLAMACPP_LIB");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, size, ".");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    if (snprintf(out, size, "%s/../lib", exe) >= (int)size) snprintf(out, size, ".");
}

static int usage(void) {
    fprintf(stderr, "usage: llamacpp_bench MODEL.gguf [--threads N] [--prompt-tokens N] [--gen-tokens N] "
                    "[--reps N] [--seed S] [--serve] [--no-repack]\n"
                    "       llamacpp_bench --check\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *model_path = NULL;
    int threads = 1, n_prompt = 128, n_gen = 128, reps = 3;
    unsigned long long seed = 1;
    int serve = 0, repack = 1;
    llama_log_set(quiet_log, NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--check") == 0) return check_defaults();
        else if (strcmp(a, "--serve") == 0) serve = 1;
        else if (strcmp(a, "--no-repack") == 0) repack = 0;
        else if (strcmp(a, "--threads") == 0 && has) threads = atoi(argv[++i]);
        else if (strcmp(a, "--prompt-tokens") == 0 && has) n_prompt = atoi(argv[++i]);
        else if (strcmp(a, "--gen-tokens") == 0 && has) n_gen = atoi(argv[++i]);
        else if (strcmp(a, "--reps") == 0 && has) reps = atoi(argv[++i]);
        else if (strcmp(a, "--seed") == 0 && has) seed = strtoull(argv[++i], NULL, 10);
        else if (a[0] == '-') return usage();
        else model_path = a;
    }
    if (!model_path || threads < 1 || n_prompt < 1 || n_gen < 1 || reps < 1) return usage();

    char dir[PATH_MAX];
    lib_dir(dir, sizeof dir);
    double t0 = now_s();
    ggml_backend_load_all_from_path(dir);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = repack != 0;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        printf("{\"error\": \"cannot load the model\"}\n");
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n_prompt + n_gen);
    cp.n_batch = (uint32_t)(n_prompt > 512 ? n_prompt : 512);
    cp.n_ubatch = cp.n_batch;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        printf("{\"error\": \"cannot create the context\"}\n");
        llama_model_free(model);
        return 1;
    }
    double load_s = now_s() - t0;

    bench b = {ctx, NULL, n_prompt, n_gen, llama_vocab_n_tokens(llama_model_get_vocab(model))};
    b.prompt = malloc(sizeof(llama_token) * (size_t)n_prompt);
    if (!b.prompt) return 1;
    uint64_t state = seed;
    for (int i = 0; i < n_prompt; i++)
        b.prompt[i] = b.n_vocab > 3 ? 3 + (llama_token)(splitmix64(&state) % (uint64_t)(b.n_vocab - 3)) : 0;

    char desc[256];
    llama_model_desc(model, desc, sizeof desc);
    printf("{\"ready\": true, \"load_s\": %.3f, \"threads\": %d, \"n_vocab\": %d, \"repack\": %s, \"model\": ",
           load_s, threads, b.n_vocab, repack ? "true" : "false");
    json_string(desc);
    printf(", \"flash_attn_type\": %d, \"backends\": ", (int)cp.flash_attn_type);
    json_string(dir);
    printf(", \"system_info\": ");
    json_string(llama_print_system_info());
    printf("}\n");
    fflush(stdout);

    int rc = 0;
    double ps, gs;
    if (serve) {
        char line[64];
        while (fgets(line, sizeof line, stdin)) {
            if (strncmp(line, "quit", 4) == 0) break;
            if (strncmp(line, "rep", 3) != 0) continue;
            if (rep(&b, &ps, &gs) != 0) {
                fflush(stdout);
                continue;
            }
            print_rep(&b, ps, gs);
        }
    } else {
        double best_p = 0.0, best_g = 0.0;
        rc = rep(&b, &ps, &gs); /* warm-up */
        for (int r = 0; rc == 0 && r < reps; r++) {
            if ((rc = rep(&b, &ps, &gs)) != 0) break;
            print_rep(&b, ps, gs);
            if (n_prompt / ps > best_p) best_p = n_prompt / ps;
            if (n_gen / gs > best_g) best_g = n_gen / gs;
        }
        if (rc == 0) printf("{\"best_prefill_tps\": %.3f, \"best_gen_tps\": %.3f}\n", best_p, best_g);
    }
    free(b.prompt);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return rc;
}

#else
/* Built only by scripts/install-llamacpp.sh (see above); empty in orion's build. */
typedef int orion_llamacpp_bench_not_built;
#endif
