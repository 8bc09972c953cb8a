/*
 * llava.c — LLaVA prompts: text with an image spliced in.
 *
 * LLaVA feeds the decoder the token embeddings of the text before the image,
 * then the projector's output rows in place of the "<image>" placeholder
 * (one decoder position per patch: 576 for a 336 px ViT-L/14), then the text
 * after it. Each text part is tokenized on its own (BOS only at position 0,
 * special pieces parsed), as llama.cpp's llava does; the image rows go
 * through orion_llm_eval_embeddings, so the KV cache holds them like tokens
 * and generation continues from the position after the prompt.
 */
#include "core/core.h"

#include <string.h>

#define IMAGE_TAG "<image>"

static orion_status eval_text(orion_llm *llm, const char *text, size_t len, bool bos, int32_t *pos, float *logits,
                              int32_t *text_tokens, int32_t n_text_max, int32_t *n_text) {
    if (len == 0 && !bos) return ORION_OK;
    const int32_t cap = (int32_t)ORION_MIN(len + 8, (size_t)1 << 28);
    int32_t *toks = orion__malloc(sizeof(int32_t) * (size_t)cap);
    if (!toks) return orion__fail(ORION_ERR_NOMEM, "llava: out of memory for %d tokens", cap);
    int32_t n = 0;
    orion_status st = orion_llm_tokenize_special(llm, text, len, bos, toks, cap, &n);
    if (st == ORION_OK) st = orion_llm_eval(llm, toks, n, *pos, logits, false);
    if (st == ORION_OK) {
        for (int32_t i = 0; text_tokens && i < n && *n_text < n_text_max; i++) text_tokens[(*n_text)++] = toks[i];
        *pos += n;
    }
    orion__free(toks);
    return st;
}

orion_status orion_llava_eval_prompt(orion_llm *llm, const char *prompt, const float *image_emb, int32_t n_image,
                                     int32_t pos, float *logits, int32_t *n_past, int32_t *text_tokens,
                                     int32_t n_text_max, int32_t *n_text) {
    if (!llm || !prompt || (!image_emb && n_image > 0) || n_image < 0 || pos < 0 || !n_past ||
        (text_tokens && (!n_text || n_text_max < 0)))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_prompt: bad arguments");
    int32_t dummy = 0;
    if (!n_text) n_text = &dummy;
    *n_text = 0;
    const char *tag = strstr(prompt, IMAGE_TAG);
    const size_t len = strlen(prompt);
    const size_t before = tag ? (size_t)(tag - prompt) : 0;
    const char *after = tag ? tag + strlen(IMAGE_TAG) : prompt;
    const size_t after_len = len - (size_t)(after - prompt);
    int32_t p = pos;
    orion_status st = eval_text(llm, prompt, before, pos == 0, &p, after_len ? NULL : logits, text_tokens, n_text_max,
                                n_text);
    if (st != ORION_OK) return st;
    if (n_image > 0) {
        if ((st = orion_llm_eval_embeddings(llm, image_emb, n_image, p, after_len ? NULL : logits, false)) != ORION_OK)
            return st;
        p += n_image;
    }
    if (after_len && (st = eval_text(llm, after, after_len, false, &p, logits, text_tokens, n_text_max, n_text)) !=
                         ORION_OK)
        return st;
    *n_past = p;
    return ORION_OK;
}
