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
 * "<image>" in order (the service's chat requests), in two steps that are
 * also public: orion_llava_positions (the prompt as token ids and image
 * rows, nothing evaluated) and orion_llava_eval_positions (a range of
 * them), so that orion chat can evaluate only what is not in its KV cache.
 */
#include "core/core.h"

#include <string.h>

#define IMAGE_TAG "<image>"

orion_status orion_llava_positions(const orion_llm *llm, const char *prompt, bool add_bos, int32_t n_images,
                                   const int32_t *n_rows, int32_t *seq, int32_t cap, int32_t *n_seq) {
    if (!llm || !prompt || n_images < 0 || (n_images > 0 && !n_rows) || !seq || cap < 0 || !n_seq)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_positions: bad arguments");
    int32_t n = 0;
    const char *text = prompt;
    for (int32_t k = 0;; k++) {
        const char *tag = k < n_images ? strstr(text, IMAGE_TAG) : NULL; /* tags past the images stay text */
        if (k < n_images && !tag)
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_positions: %d images but %d \"%s\" in the prompt",
                               n_images, k, IMAGE_TAG);
        if (k < n_images && n_rows[k] < 0)
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_positions: image %d has %d rows", k, n_rows[k]);
        const size_t len = tag ? (size_t)(tag - text) : strlen(text);
        int32_t got = 0;
        if (len || (k == 0 && add_bos)) {
            orion_status st = orion_llm_tokenize_special(llm, text, len, k == 0 && add_bos, seq + n, cap - n, &got);
            if (st != ORION_OK) return st;
            n += got;
        }
        if (!tag) break;
        if (n_rows[k] > cap - n)
            return orion__fail(ORION_ERR_RANGE, "orion_llava_positions: the prompt needs more than %d positions", cap);
        for (int32_t i = 0; i < n_rows[k]; i++) seq[n++] = -(k + 1);
        text = tag + strlen(IMAGE_TAG);
    }
    *n_seq = n;
    return ORION_OK;
}

orion_status orion_llava_eval_positions(orion_llm *llm, const int32_t *seq, int32_t from, int32_t n, int32_t pos,
                                        const float *const *images, float *logits) {
    if (!llm || (!seq && n > 0) || from < 0 || pos < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_positions: bad arguments");
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    for (int32_t i = from, j; i < n; i = j) {
        j = i + 1;
        orion_status st;
        if (seq[i] >= 0) {
            while (j < n && seq[j] >= 0) j++;
            st = orion_llm_eval(llm, seq + i, j - i, pos + i, j == n ? logits : NULL, false);
        } else {
            const int32_t k = -seq[i] - 1;
            int32_t first = i; /* the image's first row */
            while (first > 0 && seq[first - 1] == seq[i]) first--;
            while (j < n && seq[j] == seq[i]) j++;
            if (!images || !images[k])
                return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_positions: no rows for image %d", k);
            st = orion_llm_eval_embeddings(llm, images[k] + (size_t)(i - first) * (size_t)in.n_embd, j - i, pos + i,
                                           j == n ? logits : NULL, false);
        }
        if (st != ORION_OK) return st;
    }
    return ORION_OK;
}

/* Positions of the prompt from pos (allocated: *seq, freed by the caller),
 * then all of them evaluated. */
static orion_status eval_all(orion_llm *llm, const char *prompt, bool add_bos, const float *const *images,
                             const int32_t *n_rows, int32_t n_images, int32_t pos, float *logits, int32_t **seq,
                             int32_t *n) {
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    const int32_t cap = in.n_ctx > pos ? in.n_ctx - pos : 0;
    *n = 0;
    if (!(*seq = orion__malloc(sizeof(int32_t) * (size_t)ORION_MAX(cap, 1))))
        return orion__fail(ORION_ERR_NOMEM, "llava: out of memory for %d positions", cap);
    orion_status st = orion_llava_positions(llm, prompt, add_bos && pos == 0, n_images, n_rows, *seq, cap, n);
    if (st == ORION_OK) st = orion_llava_eval_positions(llm, *seq, 0, *n, pos, images, logits);
    return st;
}

orion_status orion_llava_eval_prompt(orion_llm *llm, const char *prompt, const float *image_emb, int32_t n_image,
                                     int32_t pos, float *logits, int32_t *n_past, int32_t *text_tokens,
                                     int32_t n_text_max, int32_t *n_text) {
    if (!llm || !prompt || (!image_emb && n_image > 0) || n_image < 0 || pos < 0 || !n_past ||
        (text_tokens && (!n_text || n_text_max < 0)))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_prompt: bad arguments");
    /* without "<image>" the image comes first */
    char *tagged = NULL;
    if (!strstr(prompt, IMAGE_TAG)) {
        const size_t len = strlen(prompt);
        if (!(tagged = orion__malloc(len + sizeof IMAGE_TAG)))
            return orion__fail(ORION_ERR_NOMEM, "orion_llava_eval_prompt: out of memory");
        memcpy(tagged, IMAGE_TAG, sizeof IMAGE_TAG - 1);
        memcpy(tagged + sizeof IMAGE_TAG - 1, prompt, len + 1);
    }
    const float *images[1] = {image_emb}; /* read only where rows are (n_image > 0) */
    int32_t *seq = NULL, n = 0;
    orion_status st = eval_all(llm, tagged ? tagged : prompt, true, images, &n_image, 1, pos, logits, &seq, &n);
    if (st == ORION_OK) {
        int32_t nt = 0;
        for (int32_t i = 0; i < n; i++)
            if (seq[i] >= 0 && text_tokens && nt < n_text_max) text_tokens[nt++] = seq[i];
        if (n_text) *n_text = nt;
        *n_past = pos + n;
    }
    orion__free(seq);
    orion__free(tagged);
    return st;
}

orion_status orion_llava_eval_images(orion_llm *llm, const char *prompt, bool add_bos, const float *const *images,
                                     const int32_t *n_rows, int32_t n_images, int32_t pos, float *logits,
                                     int32_t *n_past, int32_t *seq, int32_t seq_max) {
    if (!llm || !prompt || n_images < 0 || (n_images > 0 && (!images || !n_rows)) || pos < 0 || !n_past ||
        (seq && seq_max < 0))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_images: bad arguments");
    if (n_images > 64)
        return orion__fail(ORION_ERR_LIMIT, "orion_llava_eval_images: %d images (at most 64)", n_images);
    for (int32_t k = 0; k < n_images; k++)
        if (!images[k]) return orion__fail(ORION_ERR_INVALID_ARG, "orion_llava_eval_images: image %d has no rows", k);
    int32_t *all = NULL, n = 0;
    orion_status st = eval_all(llm, prompt, add_bos, images, n_rows, n_images, pos, logits, &all, &n);
    if (st == ORION_OK) {
        for (int32_t i = 0; seq && i < n && i < seq_max; i++) seq[i] = all[i] >= 0 ? all[i] : -1;
        *n_past = pos + n;
    }
    orion__free(all);
    return st;
}
