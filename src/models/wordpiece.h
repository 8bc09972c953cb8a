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
    /* Added after the interface was fixed; zero keeps HF's behavior.
     * false (HF): the vocabulary's special tokens ([CLS], [SEP], [UNK], [PAD],
     * [MASK]; with types, every CONTROL/UNKNOWN/USER_DEFINED token) written
     * in the text become their own ids, as HF's added-token splitting does;
     * true: they are tokenized as plain text ("[", "cl", "##s", "]"). */
    bool plain_specials;
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
/* More on encode (added with the implementation):
 * - invalid UTF-8: each maximal ill-formed subsequence decodes to U+FFFD, as
 *   the WHATWG TextDecoder does, and cleaning drops U+FFFD, so the bytes
 *   vanish ("a\xFF" "b" encodes as "ab"); never an error.
 * - special tokens written in the text become their ids unless
 *   params.plain_specials (HF's behavior: "a [SEP] b" gives a, [SEP], b).
 * - ids may be NULL when n_max is 0 (count only); text may be NULL when len
 *   is 0. At most one id per byte. Errors: ORION_ERR_INVALID_ARG,
 *   ORION_ERR_RANGE (len > INT32_MAX), ORION_ERR_NOMEM (scratch grows with
 *   the longest run of text between spaces); *n_out is 0 then.
 * - thread-safe: any number of threads may encode with one tokenizer. */
orion_status orion__wordpiece_encode(const orion__wordpiece *wp, const char *text, size_t len, int32_t *ids,
                                     int32_t n_max, int32_t *n_out);

#endif
