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
 * orion_llava_eval_images does the same for several images, one per
 * "<image>" in order (the service's chat requests).
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

/* Every "<image>" of the prompt (up to n_images) takes the rows of the next
 * image; the text between is tokenized part by part as above. seq gets one
 * entry per position: the token id, or -1 for an image row. */
orion_status orion_llava_eval_images(orion_llm *llm, const char *prompt, bool add_bos, const float *const *images,
                                     const int32_t *n_rows, int32_t n_images, int32_t pos, float *logits,
                                     int32_t *n_past, int32_t *seq, int32_t seq_max) {
    if (!llm || !prompt || n_images < 0 || (n_images > 0 && (!images || !n_rows)) || pos < 0 || !n_past ||
        (seq && seq_max < 0))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_images: bad arguments");
    const char *tags[64];
    if (n_images > (int32_t)ORION_ARRAY_LEN(tags))
        return orion__fail(ORION_ERR_LIMIT, "orion_llava_eval_images: %d images (at most %d)", n_images,
                           (int)ORION_ARRAY_LEN(tags));
    const char *p = prompt;
    for (int32_t k = 0; k < n_images; k++) {
        if (!images[k] || n_rows[k] < 0)
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_images: image %d has no rows", k);
        if (!(tags[k] = strstr(p, IMAGE_TAG)))
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_images: %d images but %d \"%s\" in the prompt",
                               n_images, k, IMAGE_TAG);
        p = tags[k] + strlen(IMAGE_TAG);
    }
    const size_t tail = strlen(p);
    int32_t at = pos, n_seq = 0;
    const char *text = prompt;
    orion_status st = ORION_OK;
    for (int32_t k = 0; k <= n_images && st == ORION_OK; k++) {
        const size_t len = k < n_images ? (size_t)(tags[k] - text) : tail;
        /* the logits come from the last position: this text unless it is
         * empty (then the image before it gave them) */
        const bool bos = k == 0 && add_bos && pos == 0;
        const bool text_last = k == n_images && (len > 0 || bos);
        const int32_t from = at;
        int32_t n_tok = 0;
        int32_t *toks = seq ? seq + ORION_MIN(n_seq, seq_max) : NULL;
        st = eval_text(llm, text, len, bos, &at, text_last ? logits : NULL, toks,
                       seq ? seq_max - ORION_MIN(n_seq, seq_max) : 0, &n_tok);
        n_seq += at - from;
        if (st != ORION_OK || k == n_images) break;
        const bool image_last = k == n_images - 1 && tail == 0;
        if (n_rows[k] > 0) {
            st = orion_llm_eval_embeddings(llm, images[k], n_rows[k], at, image_last ? logits : NULL, false);
            if (st != ORION_OK) break;
            for (int32_t i = 0; seq && i < n_rows[k] && n_seq + i < seq_max; i++) seq[n_seq + i] = -1;
            at += n_rows[k];
            n_seq += n_rows[k];
        }
        text = tags[k] + strlen(IMAGE_TAG);
    }
    if (st == ORION_OK) *n_past = at;
    return st;
}
