/*
 * cmd_chat.c — `orion chat MODEL`: an interactive conversation on standard
 * input and output. Each turn formats the whole conversation with the chat
 * template, tokenizes it with special pieces, and evaluates only the
 * positions after the longest prefix already in the KV cache, so earlier
 * turns are not recomputed. Lines starting with '/' are commands: /reset,
 * /quit, and with --mmproj /image FILE.
 *
 * Images (LLaVA-1.5): `/image FILE` encodes the image at once (CLIP +
 * projector) and attaches it to the next user message, which is then sent
 * as "<image>\n" + text (LLaVA's convention: the image before the words).
 * orion_llava_positions turns the formatted conversation into decoder
 * positions — a token id (>= 0), or -(k + 1) for a row of image k — so the
 * prefix comparison with the KV cache covers images too, and
 * orion_llava_eval_positions evaluates only what follows that prefix:
 * follow-up turns reuse the image rows already in the cache. The image embeddings
 * stay in memory (n_patches x n_embd floats each) until /reset, for when a
 * turn must re-evaluate from before an image.
 */
#include "cli.h"
#include "orion.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IMAGE_TAG "<image>"
#define MAX_IMAGES 64

typedef struct history {
    orion_chat_message *m;
    char              **owned;
    size_t              n, cap;
} history;

/* The images of the conversation, in the order they were attached. */
typedef struct images {
    float  *emb[MAX_IMAGES];
    int32_t rows[MAX_IMAGES]; /* n_patches each (orion_llava_positions) */
    int     n, n_sent;        /* attached; of those, already in a sent message */
    int32_t n_patches, n_embd;
} images;

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

static void images_clear(images *im, int keep) {
    while (im->n > keep) free(im->emb[--im->n]);
    if (im->n_sent > im->n) im->n_sent = im->n;
}

/* Loads and encodes FILE as the next image. */
static bool image_attach(images *im, orion_clip *clip, const char *path) {
    if (im->n == MAX_IMAGES) {
        fprintf(stderr, "orion chat: at most %d images per conversation (use /reset)\n", MAX_IMAGES);
        return false;
    }
    orion_image *img = NULL;
    float *emb = malloc(sizeof(float) * (size_t)im->n_patches * (size_t)im->n_embd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!emb || orion_image_load(path, NULL, &img) != ORION_OK || orion_clip_encode(clip, img, emb) != ORION_OK) {
        fprintf(stderr, "orion chat: %s\n", emb ? orion_last_error() : "out of memory");
        orion_image_free(img);
        free(emb);
        return false;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "orion chat: image %d: %s, %d x %d -> %d positions, encoded in %.2f s\n", im->n + 1, path,
            img->width, img->height, im->n_patches,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    orion_image_free(img);
    im->rows[im->n] = im->n_patches;
    im->emb[im->n++] = emb;
    return true;
}

static int usage(void) {
    fprintf(stderr,
            "usage: orion chat MODEL [--template llama2|mistral|chatml|vicuna] [-s SYSTEM] [-n MAX_REPLY_TOKENS]\n"
            "                  [--temp T] [--top-p P] [--top-k K] [--seed S] [--threads N] [--ctx C]\n"
            "                  [--kv-type f16|f32|q8_0] [--tokenizer FILE] [--mmproj PROJ]\n"
            "  commands: /reset, /quit; with --mmproj (a LLaVA projector), /image FILE attaches a PNG,\n"
            "  JPEG or WebP to the next message (template auto picks vicuna, LLaVA-1.5's, when the model names none)\n");
    return 2;
}

int orion_cli_chat(int argc, char **argv) {
    const char *model = NULL, *system = NULL, *tmpl_name = "auto", *mmproj = NULL;
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
        else if (strcmp(a, "--mmproj") == 0 && has) mmproj = argv[++i];
        else if (strcmp(a, "--kv-type") == 0 && has) {
            if (orion_type_from_name(argv[++i], &lp.kv_type) != ORION_OK) {
                fprintf(stderr, "orion chat: --kv-type: %s\n", orion_last_error());
                return 2;
            }
        }
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
    orion_clip *clip = NULL;
    orion_sampler *smp = NULL;
    orion_clip_params cp = orion_clip_default_params();
    cp.n_threads = lp.n_threads;
    if (orion_llm_load(model, &lp, &llm) != ORION_OK || (mmproj && orion_clip_load(mmproj, &cp, &clip) != ORION_OK)) {
        fprintf(stderr, "orion chat: %s\n", orion_last_error());
        orion_llm_free(llm);
        return 1;
    }
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    images im = {0};
    if (clip) {
        orion_clip_info ci;
        orion_clip_get_info(clip, &ci);
        if (ci.n_out != in.n_embd) {
            fprintf(stderr, "orion chat: %s projects to %d values, but %s takes %d\n", mmproj, ci.n_out, model,
                    in.n_embd);
            orion_clip_free(clip);
            orion_llm_free(llm);
            return 1;
        }
        im.n_patches = ci.n_patches;
        im.n_embd = ci.n_out;
    }
    if (tmpl == ORION_CHAT_AUTO) {
        tmpl = orion_llm_chat_template(llm);
        if (clip && orion_llm_chat_template(llm) == ORION_CHAT_LLAMA2) tmpl = ORION_CHAT_VICUNA;
    }
    if (orion_sampler_init(&sp, in.n_vocab, &smp) != ORION_OK) {
        fprintf(stderr, "orion chat: %s\n", orion_last_error());
        orion_clip_free(clip);
        orion_llm_free(llm);
        return 1;
    }
    /* ChatML turns end with <|im_end|> */
    int32_t im_end = -1, n_special = 0;
    if (orion_llm_tokenize_special(llm, "<|im_end|>", 10, false, &im_end, 1, &n_special) != ORION_OK || n_special != 1)
        im_end = -1;

    bool tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "orion chat: %s, template %s, %d positions. /reset clears, /quit ends%s.\n", model,
                orion_chat_template_name(tmpl), in.n_ctx, clip ? ", /image FILE attaches an image" : "");
    history h = {0};
    if (system) history_add(&h, "system", system);
    size_t keep = h.n;
    int32_t *cache = malloc(sizeof(int32_t) * (size_t)in.n_ctx); /* positions in the KV cache */
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)in.n_ctx);
    float *logits = malloc(sizeof(float) * (size_t)in.n_vocab);
    char *text = NULL, *reply = malloc(1 << 16), *msg = NULL;
    size_t text_cap = 0;
    int n_cache = 0, rc = 0;
    char line[1 << 14];
    while (cache && seq && logits && reply) {
        if (tty) fputs("> ", stderr);
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            history_clear(&h, keep);
            images_clear(&im, 0);
            n_cache = 0;
            continue;
        }
        if (strncmp(line, "/image", 6) == 0 && (line[6] == ' ' || line[6] == '\0')) {
            const char *path = line + 6;
            while (*path == ' ') path++;
            if (!clip) fprintf(stderr, "orion chat: /image needs a projector: start with --mmproj PROJ\n");
            else if (!*path) fprintf(stderr, "orion chat: usage: /image FILE\n");
            else image_attach(&im, clip, path);
            continue;
        }
        if (!line[0]) continue;
        if (clip && strstr(line, IMAGE_TAG)) {
            fprintf(stderr, "orion chat: \"%s\" is reserved for images: attach one with /image FILE\n", IMAGE_TAG);
            continue;
        }
        /* the user's message, with "<image>\n" for each newly attached image */
        const int n_new = im.n - im.n_sent;
        free(msg);
        msg = malloc(strlen(line) + (size_t)n_new * (strlen(IMAGE_TAG) + 1) + 1);
        if (!msg) break;
        msg[0] = '\0';
        for (int i = 0; i < n_new; i++) strcat(strcat(msg, IMAGE_TAG), "\n");
        strcat(msg, line);
        if (!history_add(&h, "user", msg)) break;
        size_t need = 0;
        orion_chat_format(tmpl, h.m, h.n, true, NULL, 0, &need);
        if (need + 1 > text_cap) {
            free(text);
            text_cap = need + 1;
            text = malloc(text_cap);
            if (!text) break;
        }
        int32_t n_seq = 0;
        if (orion_chat_format(tmpl, h.m, h.n, true, text, text_cap, &need) != ORION_OK ||
            orion_llava_positions(llm, text, false, im.n, im.rows, seq, in.n_ctx, &n_seq) != ORION_OK ||
            n_seq == 0) {
            fprintf(stderr, "orion chat: %s (use /reset)\n", orion_last_error());
            history_clear(&h, h.n - 1);
            continue;
        }
        int common = 0;
        while (common < n_cache && common < n_seq - 1 && cache[common] == seq[common]) common++;
        if (orion_llava_eval_positions(llm, seq, common, n_seq, 0, (const float *const *)im.emb, logits) !=
            ORION_OK) {
            fprintf(stderr, "orion chat: %s (use /reset)\n", orion_last_error());
            history_clear(&h, h.n - 1);
            n_cache = 0;
            continue;
        }
        im.n_sent = im.n;
        memcpy(cache, seq, sizeof(int32_t) * (size_t)n_seq);
        n_cache = n_seq;
        size_t rlen = 0;
        for (int i = 0; i < max_reply && n_cache < in.n_ctx; i++) {
            /* the sampler's repetition window sees image rows as -1: never a token */
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
    images_clear(&im, 0);
    free(h.m);
    free(h.owned);
    free(text);
    free(msg);
    free(reply);
    free(cache);
    free(seq);
    free(logits);
    orion_sampler_free(smp);
    orion_clip_free(clip);
    orion_llm_free(llm);
    return rc;
}
