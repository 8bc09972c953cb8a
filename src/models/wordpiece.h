/*
 * wordpiece.h — BERT's WordPiece tokenizer, as Hugging Face's BertTokenizer
 * (and transformers.js) runs it for uncased models: text cleaning, spaces
 * around CJK ideographs, lower-casing and accent stripping (NFD, marks
 * removed), whitespace and punctuation splitting, then greedy longest-match
 * WordPiece with "##" continuations; [UNK] for a word longer than
 * max_chars_per_word characters or one that cannot be covered.
 */
#ifndef ORION_MODELS_WORDPIECE_H
#define ORION_MODELS_WORDPIECE_H

#include "orion.h"

typedef struct orion__wordpiece orion__wordpiece;

typedef struct orion__wordpiece_params {
    bool lowercase;           /* uncased models: true */
    bool strip_accents;       /* uncased models: true (follows lowercase in HF) */
    bool chinese_chars;       /* spaces around CJK ideographs: true */
    int  max_chars_per_word;  /* 100 */
} orion__wordpiece_params;

orion__wordpiece_params orion__wordpiece_default_params(void);

/* Builds the tokenizer from the vocabulary in id order. types: GGUF token
 * types (NULL = all normal). phantom_form: the tokens are spelled as
 * llama.cpp's GGUF files spell them (a word-initial piece "▁the", a
 * continuation "ing" for "##ing"; control/unknown/unused tokens as is) rather
 * than as vocab.txt spells them ("the", "##ing"). The strings are copied. */
orion_status orion__wordpiece_init(const char *const *tokens, const int32_t *types, int32_t n, bool phantom_form,
                                   const orion__wordpiece_params *params, orion__wordpiece **out);
void orion__wordpiece_free(orion__wordpiece *wp);

/* Id of a token in vocab.txt spelling ("[CLS]", "the", "##ing"), -1 if none. */
int32_t orion__wordpiece_id(const orion__wordpiece *wp, const char *token);

/* Word-piece ids of text (len bytes; invalid UTF-8 is replaced as HF does),
 * without [CLS]/[SEP]. Writes at most n_max ids; *n_out = the number the
 * whole text needs (so a caller truncating at n_max just ignores the rest). */
orion_status orion__wordpiece_encode(const orion__wordpiece *wp, const char *text, size_t len, int32_t *ids,
                                     int32_t n_max, int32_t *n_out);

#endif
