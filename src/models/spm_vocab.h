/*
 * spm_vocab.h — a SentencePiece-style vocabulary (pieces, scores, types) and
 * its BPE tokenizer, loaded from GGUF metadata (tokenizer.ggml.*) or from a
 * llama2.c tokenizer.bin. Internal to the models layer.
 */
#ifndef ORION_SPM_VOCAB_H
#define ORION_SPM_VOCAB_H

#include "core/core.h"

enum {
    ORION_TOKEN_NORMAL = 1,
    ORION_TOKEN_UNKNOWN = 2,
    ORION_TOKEN_CONTROL = 3,
    ORION_TOKEN_USER_DEFINED = 4,
    ORION_TOKEN_UNUSED = 5,
    ORION_TOKEN_BYTE = 6,
};

typedef struct orion_spm_vocab {
    int32_t   n;
    char    **text;     /* n pieces, NUL-terminated, U+2581 for spaces */
    uint32_t *len;      /* byte length of each piece */
    float    *score;
    uint8_t  *type;
    int32_t   byte_id[256]; /* id of "<0xNN>", -1 when absent */
    uint32_t *slots;    /* open-addressing hash: piece -> id + 1 (0 = empty) */
    uint32_t  n_slots;  /* power of two */
    int32_t  *special;  /* ids of control and user-defined pieces */
    int32_t   n_special;
    int32_t   bos, eos, unk;
    bool      add_space_prefix;
} orion_spm_vocab;

/* From GGUF metadata. */
orion_status orion__spm_vocab_from_gguf(const orion_gguf *g, orion_spm_vocab **out);
/* From a llama2.c tokenizer.bin with n_vocab entries. */
orion_status orion__spm_vocab_from_llama2c(const char *path, int32_t n_vocab, orion_spm_vocab **out);
void         orion__spm_vocab_free(orion_spm_vocab *v);

/* id of a piece, or -1. */
int32_t orion__spm_vocab_find(const orion_spm_vocab *v, const char *s, size_t len);

/* Tokenizes text; see orion_llm_tokenize. parse_special: control and
 * user-defined pieces written in the text ("<s>", "<|im_start|>") become
 * their ids instead of being spelled out. */
orion_status orion__spm_tokenize(const orion_spm_vocab *v, const char *text, size_t len, bool add_bos,
                                 bool parse_special, int32_t *tokens, int32_t n_max, int32_t *n_out);
size_t orion__spm_token_to_piece(const orion_spm_vocab *v, int32_t token, char *buf, size_t size);

#endif
