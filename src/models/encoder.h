/*
 * encoder.h — what a sentence-encoder architecture provides to embed.c
 * (the public orion_embed_* API: batching, length buckets, normalization).
 *
 * Each architecture (bert.c: "bert"; use_lite.c: "use-lite") exports one
 * orion__encoder_ops table. embed.c opens the GGUF file, reads
 * general.architecture, and hands the file to the matching table's load.
 */
#ifndef ORION_MODELS_ENCODER_H
#define ORION_MODELS_ENCODER_H

#include "orion.h"

/* What load reports about the model it built. */
typedef struct orion__encoder_desc {
    int           dim;            /* output vector length */
    int           n_layer, n_head, n_embd, n_ff, n_vocab, n_ctx_train;
    int           max_tokens;     /* default truncation (special tokens included) */
    orion_pooling pooling;        /* the file's pooling (bert: mean or CLS) */
    bool          normalize;      /* the file says: L2-normalize the output */
    orion_type    type;           /* type of the largest weight matrices */
    size_t        weight_bytes;
    size_t        scratch_bytes;  /* arena capacity for one batch of batch_size x max_tokens */
} orion__encoder_desc;

typedef struct orion__encoder_ops {
    const char *arch;  /* general.architecture */
    /* Builds the model from an opened file (which the caller keeps open
     * and frees after the model). params are already defaulted: n_threads,
     * batch_size and max_tokens (0 = the model's own) are set; pooling may
     * override the file's. */
    orion_status (*load)(orion_gguf *g, const char *label, const orion_embed_params *params,
                         orion_threadpool *pool, void **state, orion__encoder_desc *desc);
    void (*free)(void *state);
    /* The ids of one text, special tokens included, truncated to max_tokens
     * as the model's reference implementation does. Writes at most n_max;
     * *n_out = the number needed. */
    orion_status (*tokenize)(const void *state, const char *text, size_t len, int max_tokens, int32_t *ids,
                             int32_t n_max, int32_t *n_out);
    /* One padded forward pass over n sequences (n <= batch_size, each
     * 1..max_tokens ids). Writes n * dim floats: the pooled output, before
     * any L2 normalization (embed.c applies it). pooling: MEAN or CLS. */
    orion_status (*forward)(void *state, const int32_t *const *ids, const int32_t *n_ids, int32_t n,
                            orion_pooling pooling, float *out);
    /* Optional: see orion_embed_set_observer. */
    void (*set_observer)(void *state, orion_llm_observer fn, void *user);
} orion__encoder_ops;

extern const orion__encoder_ops orion__bert_ops;      /* bert.c */
extern const orion__encoder_ops orion__use_lite_ops;  /* use_lite.c */

#endif
