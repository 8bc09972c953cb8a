/*
 * calib_run.c — runs a model over a calibration text with an activation
 * observer: the part that `orion imatrix` (per-column importance) and
 * `orion quantize --gptq` (Hessians) share.
 *
 * A sentence encoder (bert, use-lite) reads the text as one text per line
 * and embeds the non-empty lines in batches of 32; a decoder tokenizes the
 * whole text and evaluates chunks of ctx tokens, each starting with BOS (the
 * chunk's first token is replaced by it), as llama.cpp's imatrix does; with
 * with_head it asks for every position's logits, so the output head runs
 * (and is observed) over the whole chunk.
 */
#include "calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)n + 1);
        if (text) {
            *len = fread(text, 1, (size_t)n, f);
            text[*len] = '\0';
        }
    }
    fclose(f);
    return text;
}

/* Every non-empty line (up to max_texts, 0 = all), 32 at a time. */
static int run_encoder(const char *cmd, orion_embedder *e, const char *text, size_t len, int max_texts,
                       orion_llm_observer fn, void *user, calib_result *res) {
    enum { BATCH = 32 };
    orion_embed_info in;
    orion_embed_get_info(e, &in);
    const char *batch[BATCH];
    size_t lens[BATCH];
    float *vec = malloc(sizeof(float) * BATCH * (size_t)in.dim);
    if (!vec) {
        fprintf(stderr, "orion %s: out of memory\n", cmd);
        return 1;
    }
    int rc = 1, n = 0;
    orion_embed_set_observer(e, fn, user);
    size_t at = 0;
    while (at < len && (!max_texts || n < max_texts)) {
        int b = 0;
        while (b < BATCH && at < len && (!max_texts || n + b < max_texts)) {
            const char *nl = memchr(text + at, '\n', len - at);
            size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
            if (l > 0) batch[b] = text + at, lens[b] = l, b++;
            at += l + 1;
        }
        if (b == 0) break;
        if (orion_embed_texts(e, batch, lens, b, vec) != ORION_OK) {
            fprintf(stderr, "orion %s: %s\n", cmd, orion_last_error());
            goto done;
        }
        n += b;
    }
    if (n == 0) {
        fprintf(stderr, "orion %s: no texts (one text per line)\n", cmd);
        goto done;
    }
    res->encoder = true;
    res->n = n;
    rc = 0;
done:
    orion_embed_set_observer(e, NULL, NULL);
    free(vec);
    return rc;
}

static int run_decoder(const char *cmd, const char *model, const char *text, size_t len, const calib_opts *o,
                       orion_llm_observer fn, void *user, calib_result *res) {
    orion_llm_params p = orion_llm_default_params();
    p.n_ctx = o->ctx;
    p.n_threads = o->n_threads;
    orion_llm *llm = NULL;
    int32_t *tok = NULL, n_tok = 0;
    float *logits = NULL;
    int rc = 1, chunks = 0;
    if (len > (size_t)INT32_MAX - 2) {
        fprintf(stderr, "orion %s: the text is too long\n", cmd);
        return 1;
    }
    if (orion_llm_load(model, &p, &llm) != ORION_OK) {
        fprintf(stderr, "orion %s: %s\n", cmd, orion_last_error());
        goto done;
    }
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    tok = malloc(sizeof(int32_t) * (len + 2));
    if (!tok || orion_llm_tokenize(llm, text, len, true, tok, (int32_t)len + 2, &n_tok) != ORION_OK) {
        fprintf(stderr, "orion %s: %s\n", cmd, tok ? orion_last_error() : "out of memory");
        goto done;
    }
    if (o->with_head && !(logits = malloc(sizeof(float) * (size_t)o->ctx * (size_t)in.n_vocab))) {
        fprintf(stderr, "orion %s: out of memory for the logits\n", cmd);
        goto done;
    }
    orion_llm_set_observer(llm, fn, user);
    for (int32_t at = 0; at + o->ctx <= n_tok && (!o->max_chunks || chunks < o->max_chunks); at += o->ctx, chunks++) {
        tok[at] = in.bos;
        if (orion_llm_eval(llm, tok + at, o->ctx, 0, logits, logits != NULL) != ORION_OK) {
            fprintf(stderr, "orion %s: %s\n", cmd, orion_last_error());
            goto done;
        }
    }
    orion_llm_set_observer(llm, NULL, NULL);
    if (chunks == 0) {
        fprintf(stderr, "orion %s: the text is shorter than one chunk of %d tokens (use a smaller --ctx)\n", cmd,
                o->ctx);
        goto done;
    }
    res->encoder = false;
    res->n = chunks;
    rc = 0;
done:
    free(tok);
    free(logits);
    orion_llm_free(llm);
    return rc;
}

int calib_run(const char *cmd, const char *model, const char *text_path, const calib_opts *o,
              orion_llm_observer fn, void *user, calib_result *res) {
    size_t len = 0;
    char *text = read_text(text_path, &len);
    if (!text) {
        fprintf(stderr, "orion %s: cannot read %s\n", cmd, text_path);
        return 1;
    }
    memset(res, 0, sizeof *res);
    int rc;
    /* a sentence encoder? (a decoder file fails here and goes on below) */
    orion_embed_params ep = orion_embed_default_params();
    ep.n_threads = o->n_threads;
    orion_embedder *e = NULL;
    if (orion_embed_load(model, &ep, &e) == ORION_OK) {
        rc = run_encoder(cmd, e, text, len, o->max_chunks, fn, user, res);
        orion_embed_free(e);
    } else {
        rc = run_decoder(cmd, model, text, len, o, fn, user, res);
    }
    free(text);
    return rc;
}
