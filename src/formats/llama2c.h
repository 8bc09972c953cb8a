/*
 * llama2c.h — llama2.c checkpoints and tokenizer.bin (see llama2c.c for the
 * layouts). Internal to the formats layer and the commands built on it.
 */
#ifndef ORION_LLAMA2C_H
#define ORION_LLAMA2C_H

#include "core/core.h"

typedef struct orion_llama2c {
    const uint8_t *data; /* the mapped file */
    size_t         size;
    int32_t        version; /* 0 legacy, 1 "ak42" */
    int32_t        dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool           shared_classifier;
    /* pointers into the mapping; shapes as PyTorch (out, in) */
    const float *token_embd; /* (vocab, dim) */
    const float *rms_att;    /* (layer, dim) */
    const float *wq;         /* (layer, dim, dim) */
    const float *wk;         /* (layer, kv_dim, dim) */
    const float *wv;         /* (layer, kv_dim, dim) */
    const float *wo;         /* (layer, dim, dim) */
    const float *rms_ffn;    /* (layer, dim) */
    const float *w1;         /* (layer, hidden, dim)  gate */
    const float *w2;         /* (layer, dim, hidden)  down */
    const float *w3;         /* (layer, hidden, dim)  up */
    const float *rms_final;  /* (dim) */
    const float *wcls;       /* (vocab, dim), = token_embd when shared */
} orion_llama2c;

typedef struct orion_llama2c_vocab {
    int32_t  n;
    char   **tokens; /* SentencePiece text (U+2581 for spaces), NUL-terminated */
    float   *scores;
    int32_t *types;  /* 1 normal, 2 unknown, 3 control, 6 byte */
} orion_llama2c_vocab;

orion_status orion__llama2c_open(const char *path, orion_llama2c **out);
void         orion__llama2c_free(orion_llama2c *m);
orion_status orion__llama2c_vocab_load(const char *path, int32_t n_vocab, orion_llama2c_vocab **out);
void         orion__llama2c_vocab_free(orion_llama2c_vocab *v);
/* Sets the llama.* and tokenizer.* metadata of m (and v, which may be NULL:
 * no tokenizer) on w, with llama.cpp's keys. */
orion_status orion__llama2c_write_metadata(const orion_llama2c *m, const orion_llama2c_vocab *v, const char *name,
                                           orion_gguf_writer *w);

/* The model's tensors, f32, pointing into the mapping, with llama.cpp's
 * names and shapes (ne[0] = row length). */
typedef struct orion_llama2c_tensor {
    char         name[48];
    int          n_dims;
    int64_t      ne[4];
    const float *data;
} orion_llama2c_tensor;

int64_t orion__llama2c_n_tensors(const orion_llama2c *m);
void    orion__llama2c_tensor(const orion_llama2c *m, int64_t i, orion_llama2c_tensor *out);

#endif
