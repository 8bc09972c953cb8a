/*
 * perplexity.c — perplexity, and KL divergence / top-1 agreement against a
 * base model, as llama.cpp's perplexity tool defines them:
 *   - the text is tokenized once (with BOS) and cut into chunks of n tokens;
 *     each chunk's first token is replaced by BOS and the chunk is evaluated
 *     from position 0 with all logits;
 *   - positions [n/2, n-1) of each chunk are scored (the first half only
 *     gives context), each predicting the token after it;
 *   - NLL = -log softmax(logits)[next]; perplexity = exp(mean NLL);
 *   - KL(base || model) = sum_v p_base(v) (log p_base(v) - log p_model(v)).
 * Log-softmax is computed in double for the measures.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log-softmax of n logits into out (double) */
static void log_softmax(const float *logits, int n, double *out) {
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < n; i++) out[i] = (double)logits[i] - lse;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

orion_status orion_llm_perplexity(orion_llm *llm, orion_llm *base, const char *text, size_t len, int n_chunk,
                                  orion_perplexity_result *out) {
    if (!llm || !text || !out) return orion__fail(ORION_ERR_INVALID_ARG, "perplexity: NULL argument");
    memset(out, 0, sizeof *out);
    orion_llm_info in, bin;
    orion_llm_get_info(llm, &in);
    if (base) {
        orion_llm_get_info(base, &bin);
        if (bin.n_vocab != in.n_vocab)
            return orion__fail(ORION_ERR_INVALID_ARG, "perplexity: base model vocabulary %d differs from %d",
                               bin.n_vocab, in.n_vocab);
    }
    int n = n_chunk > 0 ? n_chunk : 512;
    n = ORION_MIN(n, in.n_ctx);
    if (base) n = ORION_MIN(n, bin.n_ctx);
    int32_t n_tok = 0;
    orion_status st = orion_llm_tokenize(llm, text, len, true, NULL, 0, &n_tok);
    if (st != ORION_OK && st != ORION_ERR_RANGE) return st;
    int32_t *tok = orion__malloc(sizeof(int32_t) * (size_t)(n_tok + 1));
    if (!tok) return orion__fail(ORION_ERR_NOMEM, "perplexity: out of memory");
    if ((st = orion_llm_tokenize(llm, text, len, true, tok, n_tok, &n_tok)) != ORION_OK) {
        orion__free(tok);
        return st;
    }
    if (n_tok < 2 * n) n = n_tok / 2; /* short texts: two chunks' worth at least */
    if (n < 16) {
        orion__free(tok);
        return orion__fail(ORION_ERR_RANGE, "perplexity: the text has %d tokens; at least 32 are needed", n_tok);
    }
    int n_chunks = n_tok / n;
    const int V = in.n_vocab;
    float *lg = orion__malloc(sizeof(float) * (size_t)n * (size_t)V);
    float *blg = base ? orion__malloc(sizeof(float) * (size_t)n * (size_t)V) : NULL;
    double *lp = orion__malloc(sizeof(double) * (size_t)V), *blp = orion__malloc(sizeof(double) * (size_t)V);
    int32_t *chunk = orion__malloc(sizeof(int32_t) * (size_t)n);
    double nll = 0, nll2 = 0, kl = 0, kl2 = 0, kl_max = 0, bnll = 0;
    int64_t scored = 0, agree = 0;
    if (!lg || (base && !blg) || !lp || !blp || !chunk) {
        st = orion__fail(ORION_ERR_NOMEM, "perplexity: cannot allocate logits for %d tokens x %d", n, V);
        goto done;
    }
    for (int c = 0; c < n_chunks; c++) {
        memcpy(chunk, tok + (size_t)c * n, sizeof(int32_t) * (size_t)n);
        chunk[0] = in.bos;
        if ((st = orion_llm_eval(llm, chunk, n, 0, lg, true)) != ORION_OK) goto done;
        if (base && (st = orion_llm_eval(base, chunk, n, 0, blg, true)) != ORION_OK) goto done;
        for (int i = n / 2; i < n - 1; i++) {
            const float *l = lg + (size_t)i * V;
            log_softmax(l, V, lp);
            double e = -lp[chunk[i + 1]];
            nll += e, nll2 += e * e;
            scored++;
            if (base) {
                const float *b = blg + (size_t)i * V;
                log_softmax(b, V, blp);
                double k = 0.0;
                for (int v = 0; v < V; v++) k += exp(blp[v]) * (blp[v] - lp[v]);
                if (k < 0) k = 0; /* rounding */
                kl += k, kl2 += k * k;
                if (k > kl_max) kl_max = k;
                agree += argmax(l, V) == argmax(b, V);
                bnll += -blp[chunk[i + 1]];
            }
        }
    }
    out->n_scored = scored;
    out->n_chunks = n_chunks;
    out->nll_mean = nll / (double)scored;
    out->nll_stderr = sqrt(fmax(0.0, nll2 / (double)scored - out->nll_mean * out->nll_mean) / (double)scored);
    out->ppl = exp(out->nll_mean);
    if (base) {
        out->has_base = true;
        out->kl_mean = kl / (double)scored;
        out->kl_stderr = sqrt(fmax(0.0, kl2 / (double)scored - out->kl_mean * out->kl_mean) / (double)scored);
        out->kl_max = kl_max;
        out->top1_agree = (double)agree / (double)scored;
        out->base_ppl = exp(bnll / (double)scored);
    }
done:
    orion__free(tok);
    orion__free(lg);
    orion__free(blg);
    orion__free(lp);
    orion__free(blp);
    orion__free(chunk);
    return st;
}
