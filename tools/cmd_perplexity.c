/*
 * cmd_perplexity.c — `orion perplexity MODEL -f TEXT [--ctx C] [--base BASE]
 * [--json]`: perplexity of a model on a text file and, against a base model,
 * the mean KL divergence and top-1 agreement of the next-token
 * distributions (see src/models/perplexity.c for the definitions).
 */
#include "cli.h"
#include "orion.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap > (1u << 30)) {
            free(buf);
            buf = NULL;
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

int orion_cli_perplexity(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *base_path = NULL, *tokenizer = NULL;
    int ctx = 0, threads = 0;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "-f") == 0 && has) file = argv[++i];
        else if (strcmp(a, "--base") == 0 && has) base_path = argv[++i];
        else if (strcmp(a, "--tokenizer") == 0 && has) tokenizer = argv[++i];
        else if (strcmp(a, "--ctx") == 0 && has) ctx = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0 && has) threads = atoi(argv[++i]);
        else if (strcmp(a, "--json") == 0) json = true;
        else if (a[0] == '-') {
            fprintf(stderr, "orion perplexity: unknown option '%s'\n", a);
            model = NULL;
            break;
        } else if (!model) model = a;
    }
    if (!model || !file || ctx < 0 || threads < 0) {
        fprintf(stderr, "usage: orion perplexity MODEL -f TEXT [--ctx C] [--base BASE_MODEL] [--json] "
                        "[--threads N] [--tokenizer FILE]\n");
        return 2;
    }
    size_t len = 0;
    char *text = read_text(file, &len);
    if (!text) {
        fprintf(stderr, "orion perplexity: cannot read %s\n", file);
        return 1;
    }
    orion_llm_params p = orion_llm_default_params();
    p.n_threads = threads;
    p.tokenizer = tokenizer;
    p.n_ctx = ctx > 0 ? ctx : 512;
    p.kv_type = ORION_TYPE_F32;
    orion_llm *llm = NULL, *base = NULL;
    int rc = 1;
    orion_perplexity_result r;
    if (orion_llm_load(model, &p, &llm) != ORION_OK || (base_path && orion_llm_load(base_path, &p, &base) != ORION_OK) ||
        orion_llm_perplexity(llm, base, text, len, p.n_ctx, &r) != ORION_OK) {
        fprintf(stderr, "orion perplexity: %s\n", orion_last_error());
        goto done;
    }
    if (json) {
        printf("{\"model\": \"%s\", \"ppl\": %.6f, \"nll_mean\": %.6f, \"nll_stderr\": %.6f, \"n_scored\": %lld, "
               "\"n_chunks\": %d",
               model, r.ppl, r.nll_mean, r.nll_stderr, (long long)r.n_scored, r.n_chunks);
        if (r.has_base)
            printf(", \"base\": \"%s\", \"base_ppl\": %.6f, \"kl_mean\": %.8f, \"kl_stderr\": %.8f, \"kl_max\": %.6f, "
                   "\"top1_agree\": %.6f",
                   base_path, r.base_ppl, r.kl_mean, r.kl_stderr, r.kl_max, r.top1_agree);
        printf("}\n");
    } else {
        printf("model:       %s\n", model);
        printf("perplexity:  %.4f  (mean NLL %.5f +/- %.5f over %lld positions in %d chunks)\n", r.ppl, r.nll_mean,
               r.nll_stderr, (long long)r.n_scored, r.n_chunks);
        if (r.has_base) {
            printf("base:        %s (perplexity %.4f)\n", base_path, r.base_ppl);
            printf("KL(base||m): mean %.6f +/- %.6f, max %.4f\n", r.kl_mean, r.kl_stderr, r.kl_max);
            printf("top-1 agree: %.2f%%\n", 100.0 * r.top1_agree);
        }
    }
    rc = 0;
done:
    orion_llm_free(llm);
    orion_llm_free(base);
    free(text);
    return rc;
}
