/*
 * cmd_run.c — `orion run MODEL -p PROMPT -n N [...]`: standard output gets
 * the prompt followed by the generated text, streamed as it comes, and
 * nothing else; timings and memory go to standard error. Ctrl-C stops
 * generation between tokens.
 *
 * With --mmproj PROJ --image FILE (LLaVA-1.5): the image is encoded by the
 * CLIP encoder + projector in PROJ and its rows take the place of "<image>"
 * in the prompt. A prompt without "<image>" is wrapped in LLaVA-1.5's
 * template, "USER: <image>\n{prompt} ASSISTANT:"; one with it is used as is.
 */
#include "cli.h"
#include "orion.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void) {
    fprintf(stderr,
            "usage: orion run MODEL [-p PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
            "                 [--repeat-penalty R] [--seed S] [--threads N] [--ctx C] [--kv-type f16|f32|q8_0]\n"
            "                 [--tokenizer FILE] [--mmproj PROJ --image FILE]\n"
            "  MODEL: a GGUF file or a llama2.c checkpoint (with --tokenizer, default tokenizer.bin beside it)\n"
            "  --mmproj, --image: a LLaVA-1.5 projector GGUF (llama.cpp's mmproj) and a PNG, JPEG or WebP image\n");
    return 2;
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

/* The --image path: encode the image, evaluate the spliced prompt, then
 * generate as below. */
static int run_llava(const char *model, const char *mmproj, const char *image_path, const char *prompt,
                     int n_predict, const orion_llm_params *lp, const orion_sampler_params *sp) {
    int rc = 1;
    orion_llm *llm = NULL;
    orion_clip *clip = NULL;
    orion_image *img = NULL;
    orion_sampler *smp = NULL;
    float *emb = NULL, *logits = NULL;
    int32_t *hist = NULL;
    char *text = NULL;
    double t0 = now_s();
    orion_clip_params cp = orion_clip_default_params();
    cp.n_threads = lp->n_threads;
    if (orion_llm_load(model, lp, &llm) != ORION_OK || orion_clip_load(mmproj, &cp, &clip) != ORION_OK ||
        orion_image_load(image_path, NULL, &img) != ORION_OK) {
        fprintf(stderr, "orion run: %s\n", orion_last_error());
        goto done;
    }
    orion_llm_info info;
    orion_llm_get_info(llm, &info);
    orion_clip_info ci;
    orion_clip_get_info(clip, &ci);
    if (ci.n_out != info.n_embd) {
        fprintf(stderr, "orion run: %s projects to %d values, but %s takes %d\n", mmproj, ci.n_out, model, info.n_embd);
        goto done;
    }
    double t_load = now_s() - t0;
    size_t plen = strlen(prompt);
    text = malloc(plen + 64);
    emb = malloc(sizeof(float) * (size_t)ci.n_patches * (size_t)ci.n_out);
    logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    const int32_t hist_cap = (int32_t)plen + 64 + n_predict;
    hist = malloc(sizeof(int32_t) * (size_t)hist_cap);
    if (!text || !emb || !logits || !hist) {
        fprintf(stderr, "orion run: out of memory\n");
        goto done;
    }
    if (strstr(prompt, "<image>")) snprintf(text, plen + 64, "%s", prompt);
    else snprintf(text, plen + 64, "USER: <image>\n%s ASSISTANT:", prompt);
    double t_enc0 = now_s();
    if (orion_clip_encode(clip, img, emb) != ORION_OK) {
        fprintf(stderr, "orion run: %s\n", orion_last_error());
        goto done;
    }
    double t_enc = now_s() - t_enc0, t_prefill0 = now_s();
    int32_t n_past = 0, n_hist = 0;
    if (orion_llava_eval_prompt(llm, text, emb, ci.n_patches, 0, logits, &n_past, hist, hist_cap, &n_hist) != ORION_OK ||
        orion_sampler_init(sp, info.n_vocab, &smp) != ORION_OK) {
        fprintf(stderr, "orion run: %s\n", orion_last_error());
        goto done;
    }
    double t_prefill = now_s() - t_prefill0;
    const int32_t n_prompt_pos = n_past, n_prompt_text = n_hist;
    if (n_past + n_predict > info.n_ctx) n_predict = info.n_ctx - n_past;
    signal(SIGINT, on_sigint);
    fputs(prompt, stdout);
    fflush(stdout);
    double t_gen0 = now_s();
    int n_gen = 0;
    char piece[256];
    while (n_gen < n_predict && !interrupted) {
        int32_t next = orion_sampler_sample(smp, logits, hist, n_hist);
        if (next == info.eos || next == info.bos) break;
        if (n_hist < hist_cap) hist[n_hist++] = next;
        size_t n = orion_llm_token_to_piece(llm, next, piece, sizeof piece);
        fwrite(piece, 1, n > sizeof piece ? sizeof piece : n, stdout);
        fflush(stdout);
        if (++n_gen == n_predict) break;
        if (orion_llm_eval(llm, &next, 1, n_past++, logits, false) != ORION_OK) {
            fprintf(stderr, "\norion run: %s\n", orion_last_error());
            goto done;
        }
    }
    fputc('\n', stdout);
    double t_gen = now_s() - t_gen0;
    fprintf(stderr, "\n%s + %s\n", model, mmproj);
    fprintf(stderr, "load:       %.3f s (kernels %s)\n", t_load, orion_kernels_name());
    fprintf(stderr, "image:      %d x %d -> %d patches encoded in %.3f s (encoder %s, %.2f MiB)\n", img->width,
            img->height, ci.n_patches, t_enc, orion_type_name(ci.type), ci.weight_bytes / 1048576.0);
    fprintf(stderr, "prefill:    %d positions (%d text, %d image) in %.3f s\n", n_prompt_pos, n_prompt_text,
            n_prompt_pos - n_prompt_text, t_prefill);
    fprintf(stderr, "generation: %d tokens in %.3f s = %.1f tokens/s\n", n_gen, t_gen, t_gen > 0 ? n_gen / t_gen : 0.0);
    rc = 0;
done:
    orion_sampler_free(smp);
    free(hist);
    free(text);
    free(logits);
    free(emb);
    orion_image_free(img);
    orion_clip_free(clip);
    orion_llm_free(llm);
    return rc;
}

int orion_cli_run(int argc, char **argv) {
    const char *model = NULL, *prompt = "", *mmproj = NULL, *image_path = NULL;
    int n_predict = 128;
    orion_llm_params lp = orion_llm_default_params();
    orion_sampler_params sp = orion_sampler_default_params();
    sp.seed = (uint64_t)time(NULL);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        double v;
        bool has = i + 1 < argc;
#define NUM(flag, lo, hi, dst)                                                   \
    if (strcmp(a, flag) == 0) {                                                  \
        if (!has || !parse_num(argv[++i], lo, hi, &v)) {                         \
            fprintf(stderr, "orion run: %s takes a number in [%g, %g]\n", flag, (double)(lo), (double)(hi)); \
            return 2;                                                            \
        }                                                                        \
        dst;                                                                     \
        continue;                                                                \
    }
        NUM("-n", 0, 1e7, n_predict = (int)v)
        NUM("--temp", 0, 100, sp.temperature = (float)v)
        NUM("--top-k", 0, 1e7, sp.top_k = (int)v)
        NUM("--top-p", 1e-6, 1, sp.top_p = (float)v)
        NUM("--min-p", 0, 0.999, sp.min_p = (float)v)
        NUM("--repeat-penalty", 1e-3, 100, sp.repeat_penalty = (float)v)
        NUM("--seed", 0, 1.8e19, sp.seed = (uint64_t)v)
        NUM("--threads", 0, 1024, lp.n_threads = (int)v)
        NUM("--ctx", 1, 1 << 20, lp.n_ctx = (int)v)
#undef NUM
        if ((strcmp(a, "-p") == 0 || strcmp(a, "--prompt") == 0) && has) prompt = argv[++i];
        else if (strcmp(a, "--tokenizer") == 0 && has) lp.tokenizer = argv[++i];
        else if (strcmp(a, "--mmproj") == 0 && has) mmproj = argv[++i];
        else if (strcmp(a, "--image") == 0 && has) image_path = argv[++i];
        else if (strcmp(a, "--kv-type") == 0 && has) {
            if (orion_type_from_name(argv[++i], &lp.kv_type) != ORION_OK) {
                fprintf(stderr, "orion run: --kv-type: %s\n", orion_last_error());
                return 2;
            }
        }
        else if (a[0] == '-') {
            fprintf(stderr, "orion run: unknown option '%s'\n", a);
            return usage();
        } else if (!model) model = a;
        else return usage();
    }
    if (!model) return usage();
    if (!mmproj != !image_path) {
        fprintf(stderr, "orion run: --mmproj and --image go together\n");
        return 2;
    }
    if (image_path) return run_llava(model, mmproj, image_path, prompt, n_predict, &lp, &sp);

    double t0 = now_s();
    orion_llm *llm = NULL;
    if (orion_llm_load(model, &lp, &llm) != ORION_OK) {
        fprintf(stderr, "orion run: %s\n", orion_last_error());
        return 1;
    }
    orion_llm_info info;
    orion_llm_get_info(llm, &info);
    double t_load = now_s() - t0;

    int rc = 1;
    size_t plen = strlen(prompt);
    int32_t cap = (int32_t)plen + 8, n_prompt = 0;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(cap + n_predict + 1));
    float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    orion_sampler *smp = NULL;
    if (!tokens || !logits) {
        fprintf(stderr, "orion run: out of memory\n");
        goto done;
    }
    if (orion_llm_tokenize(llm, prompt, plen, true, tokens, cap, &n_prompt) != ORION_OK ||
        orion_sampler_init(&sp, info.n_vocab, &smp) != ORION_OK) {
        fprintf(stderr, "orion run: %s\n", orion_last_error());
        goto done;
    }
    if (n_prompt + n_predict > info.n_ctx) {
        n_predict = info.n_ctx - n_prompt;
        fprintf(stderr, "orion run: context of %d positions: generating at most %d tokens\n", info.n_ctx,
                n_predict > 0 ? n_predict : 0);
        if (n_predict <= 0) goto done;
    }
    signal(SIGINT, on_sigint);
    fputs(prompt, stdout);
    fflush(stdout);

    double t_prefill0 = now_s();
    if (orion_llm_eval(llm, tokens, n_prompt, 0, logits, false) != ORION_OK) {
        fprintf(stderr, "\norion run: %s\n", orion_last_error());
        goto done;
    }
    double t_prefill = now_s() - t_prefill0, t_gen0 = now_s(), t_first = 0.0;
    int n_gen = 0, pos = n_prompt;
    char piece[256];
    while (n_gen < n_predict && !interrupted) {
        int32_t next = orion_sampler_sample(smp, logits, tokens, pos);
        if (n_gen == 0) t_first = now_s() - t_prefill0;
        if (next == info.eos || next == info.bos) break;
        tokens[pos] = next;
        size_t n = orion_llm_token_to_piece(llm, next, piece, sizeof piece);
        if (n > sizeof piece) n = sizeof piece;
        const char *s = piece;
        /* the space the tokenizer prefixed to the text is not part of it */
        if (pos == 1 && tokens[0] == info.bos && n > 0 && s[0] == ' ') s++, n--;
        fwrite(s, 1, n, stdout);
        fflush(stdout);
        n_gen++;
        if (n_gen == n_predict) break;
        if (orion_llm_eval(llm, &tokens[pos], 1, pos, logits, false) != ORION_OK) {
            fprintf(stderr, "\norion run: %s\n", orion_last_error());
            goto done;
        }
        pos++;
    }
    fputc('\n', stdout);
    fflush(stdout);
    double t_gen = now_s() - t_gen0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    fprintf(stderr, "\n%s%s\n", interrupted ? "interrupted\n" : "", model);
    fprintf(stderr, "load:       %.3f s (kernels %s, %d threads)\n", t_load, orion_kernels_name(),
            lp.n_threads ? lp.n_threads : orion_cpu_count());
    fprintf(stderr, "prefill:    %d tokens in %.3f s = %.1f tokens/s\n", n_prompt, t_prefill,
            t_prefill > 0 ? n_prompt / t_prefill : 0.0);
    fprintf(stderr, "first token: %.1f ms after the prompt was submitted\n", t_first * 1e3);
    fprintf(stderr, "generation: %d tokens in %.3f s = %.1f tokens/s\n", n_gen, t_gen,
            t_gen > 0 ? n_gen / t_gen : 0.0);
    fprintf(stderr, "memory:     weights %.2f MiB mapped, KV cache %.2f MiB (%d positions), scratch %.2f MiB, "
                    "heap %.2f MiB peak, peak RSS %.2f MiB\n",
            info.weight_bytes / 1048576.0, info.kv_bytes / 1048576.0, info.n_ctx, info.scratch_bytes / 1048576.0,
            ms.bytes_peak / 1048576.0, ru.ru_maxrss / 1024.0);
    rc = 0;
done:
    orion_sampler_free(smp);
    free(tokens);
    free(logits);
    orion_llm_free(llm);
    return rc;
}
