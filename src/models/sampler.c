/*
 * sampler.c — next-token sampling: repetition penalty, then greedy or
 * temperature sampling restricted by top-k, top-p (nucleus) and min-p.
 *
 * Order (as llama.cpp's default chain): penalty on the logits of recent
 * tokens (divide positive logits, multiply negative ones), top-k, softmax at
 * temperature, top-p, min-p, renormalize, draw. temperature 0 is argmax of
 * the penalized logits. The generator is xorshift64*, seeded, so a seed
 * reproduces a run exactly.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float   v;
} cand;

struct orion_sampler {
    orion_sampler_params p;
    int                  n_vocab;
    uint64_t             rng;
    cand                *c; /* n_vocab */
};

orion_sampler_params orion_sampler_default_params(void) {
    orion_sampler_params p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0};
    return p;
}

orion_status orion_sampler_init(const orion_sampler_params *params, int n_vocab, orion_sampler **out) {
    if (!out || n_vocab <= 0) return orion__fail(ORION_ERR_INVALID_ARG, "orion_sampler_init: bad arguments");
    *out = NULL;
    orion_sampler_params p = params ? *params : orion_sampler_default_params();
    if (!(p.temperature >= 0.0f) || p.top_k < 0 || !(p.top_p > 0.0f && p.top_p <= 1.0f) ||
        !(p.min_p >= 0.0f && p.min_p < 1.0f) || !(p.repeat_penalty > 0.0f) || p.repeat_last_n < 0)
        return orion__fail(ORION_ERR_INVALID_ARG,
                           "sampler: temperature >= 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1), "
                           "repeat_penalty > 0 expected");
    orion_sampler *s = orion__calloc(1, sizeof *s);
    if (!s) return orion__fail(ORION_ERR_NOMEM, "sampler: out of memory");
    s->c = orion__malloc((size_t)n_vocab * sizeof *s->c);
    if (!s->c) {
        orion__free(s);
        return orion__fail(ORION_ERR_NOMEM, "sampler: out of memory");
    }
    s->p = p;
    s->n_vocab = n_vocab;
    s->rng = p.seed ^ 0x9e3779b97f4a7c15ull;
    if (!s->rng) s->rng = 1;
    *out = s;
    return ORION_OK;
}

void orion_sampler_free(orion_sampler *s) {
    if (!s) return;
    orion__free(s->c);
    orion__free(s);
}

static float next_uniform(orion_sampler *s) {
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (float)((s->rng * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f; /* [0, 1) */
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->v, y = ((const cand *)b)->v;
    if (x > y) return -1;
    if (x < y) return 1;
    return ((const cand *)a)->id - ((const cand *)b)->id;
}

int32_t orion_sampler_sample(orion_sampler *s, float *logits, const int32_t *history, int n_history) {
    const int n = s->n_vocab;
    if (s->p.repeat_penalty != 1.0f && history) {
        int from = n_history > s->p.repeat_last_n ? n_history - s->p.repeat_last_n : 0;
        for (int i = from; i < n_history; i++) {
            int32_t t = history[i];
            if (t < 0 || t >= n) continue;
            bool seen = false; /* penalize each token once */
            for (int j = from; j < i && !seen; j++) seen = history[j] == t;
            if (seen) continue;
            logits[t] = logits[t] > 0 ? logits[t] / s->p.repeat_penalty : logits[t] * s->p.repeat_penalty;
        }
    }
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    for (int i = 0; i < n; i++) s->c[i] = (cand){i, logits[i]};
    int m = n;
    if (s->p.top_k > 0 && s->p.top_k < m) m = s->p.top_k;
    qsort(s->c, (size_t)n, sizeof *s->c, cmp_desc); /* simple and exact; n is at most ~10^5 */
    float mx = s->c[0].v, sum = 0.0f;
    for (int i = 0; i < m; i++) {
        s->c[i].v = expf((s->c[i].v - mx) / s->p.temperature);
        sum += s->c[i].v;
    }
    for (int i = 0; i < m; i++) s->c[i].v /= sum;
    if (s->p.top_p < 1.0f) {
        float cum = 0.0f;
        for (int i = 0; i < m; i++) {
            cum += s->c[i].v;
            if (cum >= s->p.top_p) {
                m = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        float floor_p = s->c[0].v * s->p.min_p;
        int keep = 1;
        while (keep < m && s->c[keep].v >= floor_p) keep++;
        m = keep;
    }
    sum = 0.0f;
    for (int i = 0; i < m; i++) sum += s->c[i].v;
    float r = next_uniform(s) * sum, cum = 0.0f;
    for (int i = 0; i < m; i++) {
        cum += s->c[i].v;
        if (r < cum) return s->c[i].id;
    }
    return s->c[m - 1].id;
}
