/*
 * cmd_chat.c — `orion chat MODEL`: an interactive conversation on standard
 * input and output. Each turn formats the whole conversation with the chat
 * template, tokenizes it with special pieces, and evaluates only the tokens
 * after the longest prefix already in the KV cache, so earlier turns are not
 * recomputed. Lines starting with '/' are commands: /reset, /quit.
 */
#include "cli.h"
#include "orion.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct history {
    orion_chat_message *m;
    char              **owned;
    size_t              n, cap;
} history;

static bool history_add(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        orion_chat_message *m = realloc(h->m, cap * sizeof *m);
        if (!m) return false;
        h->m = m;
        char **o = realloc(h->owned, cap * sizeof *o);
        if (!o) return false;
        h->owned = o;
        h->cap = cap;
    }
    char *c = strdup(content);
    if (!c) return false;
    h->owned[h->n] = c;
    h->m[h->n].role = role;
    h->m[h->n].content = c;
    h->n++;
    return true;
}

static void history_clear(history *h, size_t keep) {
    while (h->n > keep) free(h->owned[--h->n]);
}

static int usage(void) {
    fprintf(stderr, "usage: orion chat MODEL [--template llama2|mistral|chatml] [-s SYSTEM] [-n MAX_REPLY_TOKENS]\n"
                    "                  [--temp T] [--top-p P] [--top-k K] [--seed S] [--threads N] [--ctx C]\n"
                    "                  [--tokenizer FILE]\n");
    return 2;
}

int orion_cli_chat(int argc, char **argv) {
    const char *model = NULL, *system = NULL, *tmpl_name = "auto";
    int max_reply = 256;
    orion_llm_params lp = orion_llm_default_params();
    orion_sampler_params sp = orion_sampler_default_params();
    sp.seed = (uint64_t)time(NULL);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--template") == 0 && has) tmpl_name = argv[++i];
        else if (strcmp(a, "-s") == 0 && has) system = argv[++i];
        else if (strcmp(a, "-n") == 0 && has) max_reply = atoi(argv[++i]);
        else if (strcmp(a, "--temp") == 0 && has) sp.temperature = (float)atof(argv[++i]);
        else if (strcmp(a, "--top-p") == 0 && has) sp.top_p = (float)atof(argv[++i]);
        else if (strcmp(a, "--top-k") == 0 && has) sp.top_k = atoi(argv[++i]);
        else if (strcmp(a, "--seed") == 0 && has) sp.seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--threads") == 0 && has) lp.n_threads = atoi(argv[++i]);
        else if (strcmp(a, "--ctx") == 0 && has) lp.n_ctx = atoi(argv[++i]);
        else if (strcmp(a, "--tokenizer") == 0 && has) lp.tokenizer = argv[++i];
        else if (a[0] == '-') return usage();
        else if (!model) model = a;
        else return usage();
    }
    if (!model || max_reply <= 0) return usage();
    orion_chat_template tmpl;
    if (orion_chat_template_from_name(tmpl_name, &tmpl) != ORION_OK) {
        fprintf(stderr, "orion chat: %s\n", orion_last_error());
        return 2;
    }
    orion_llm *llm = NULL;
    orion_sampler *smp = NULL;
    if (orion_llm_load(model, &lp, &llm) != ORION_OK) {
        fprintf(stderr, "orion chat: %s\n", orion_last_error());
        return 1;
    }
    if (tmpl == ORION_CHAT_AUTO) tmpl = orion_llm_chat_template(llm);
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    if (orion_sampler_init(&sp, in.n_vocab, &smp) != ORION_OK) {
        fprintf(stderr, "orion chat: %s\n", orion_last_error());
        orion_llm_free(llm);
        return 1;
    }
    /* ChatML turns end with <|im_end|> */
    int32_t im_end = -1, n_special = 0;
    if (orion_llm_tokenize_special(llm, "<|im_end|>", 10, false, &im_end, 1, &n_special) != ORION_OK || n_special != 1)
        im_end = -1;

    bool tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "orion chat: %s, template %s, %d positions. /reset clears, /quit ends.\n", model,
                     orion_chat_template_name(tmpl), in.n_ctx);
    history h = {0};
    if (system) history_add(&h, "system", system);
    size_t keep = h.n;
    int32_t *cache = malloc(sizeof(int32_t) * (size_t)in.n_ctx); /* tokens in the KV cache */
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)in.n_ctx);
    float *logits = malloc(sizeof(float) * (size_t)in.n_vocab);
    char *text = NULL, *reply = malloc(1 << 16);
    size_t text_cap = 0;
    int n_cache = 0, rc = 0;
    char line[1 << 14];
    while (cache && prompt && logits && reply) {
        if (tty) fputs("> ", stderr);
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            history_clear(&h, keep);
            n_cache = 0;
            continue;
        }
        if (!line[0]) continue;
        if (!history_add(&h, "user", line)) break;
        size_t need = 0;
        orion_chat_format(tmpl, h.m, h.n, true, NULL, 0, &need);
        if (need + 1 > text_cap) {
            free(text);
            text_cap = need + 1;
            text = malloc(text_cap);
            if (!text) break;
        }
        int32_t n_prompt = 0;
        if (orion_chat_format(tmpl, h.m, h.n, true, text, text_cap, &need) != ORION_OK ||
            orion_llm_tokenize_special(llm, text, need, false, prompt, in.n_ctx, &n_prompt) != ORION_OK) {
            fprintf(stderr, "orion chat: %s (use /reset)\n", orion_last_error());
            history_clear(&h, h.n - 1);
            continue;
        }
        int common = 0;
        while (common < n_cache && common < n_prompt - 1 && cache[common] == prompt[common]) common++;
        if (orion_llm_eval(llm, prompt + common, n_prompt - common, common, logits, false) != ORION_OK) {
            fprintf(stderr, "orion chat: %s (use /reset)\n", orion_last_error());
            history_clear(&h, h.n - 1);
            n_cache = 0;
            continue;
        }
        memcpy(cache, prompt, sizeof(int32_t) * (size_t)n_prompt);
        n_cache = n_prompt;
        size_t rlen = 0;
        for (int i = 0; i < max_reply && n_cache < in.n_ctx; i++) {
            int32_t t = orion_sampler_sample(smp, logits, cache, n_cache);
            if (t == in.eos || t == im_end) break;
            char piece[256];
            size_t n = orion_llm_token_to_piece(llm, t, piece, sizeof piece);
            if (n > sizeof piece) n = sizeof piece;
            const char *p = piece;
            if (i == 0 && n > 0 && p[0] == ' ') p++, n--; /* the template's own space */
            fwrite(p, 1, n, stdout);
            fflush(stdout);
            if (rlen + n < (1 << 16)) memcpy(reply + rlen, p, n), rlen += n;
            cache[n_cache] = t;
            if (orion_llm_eval(llm, &t, 1, n_cache, logits, false) != ORION_OK) {
                fprintf(stderr, "\norion chat: %s\n", orion_last_error());
                break;
            }
            n_cache++;
        }
        fputc('\n', stdout);
        fflush(stdout);
        reply[rlen] = '\0';
        history_add(&h, "assistant", reply);
    }
    history_clear(&h, 0);
    free(h.m);
    free(h.owned);
    free(text);
    free(reply);
    free(cache);
    free(prompt);
    free(logits);
    orion_sampler_free(smp);
    orion_llm_free(llm);
    return rc;
}
