/*
 * unigram_vocab.h — the SentencePiece unigram tokenizer of the Universal
 * Sentence Encoder lite, reproducing the JavaScript tokenizer of npm's
 * @energetic-ai/embeddings (itself tfjs-models' USE tokenizer) token for
 * token, quirks included (see unigram_vocab.c). Internal to the models layer.
 */
#ifndef ORION_UNIGRAM_VOCAB_H
#define ORION_UNIGRAM_VOCAB_H

#include "core/core.h"

typedef struct orion_unigram orion_unigram;

/* Builds the tokenizer from n pieces (UTF-8, lens[i] bytes each) and their
 * scores (log probabilities, kept as doubles: the JS sums them in double).
 * The first n_reserved pieces are control symbols and never matched; piece
 * 0 is the unknown piece. Pieces that are not valid UTF-8 are rejected
 * (ORION_ERR_FORMAT). The caller's arrays are copied. */
orion_status orion__unigram_init(const char *const *pieces, const size_t *lens, const double *scores, int32_t n,
                                 int32_t n_reserved, orion_unigram **out);
void         orion__unigram_free(orion_unigram *u);
int32_t      orion__unigram_n_vocab(const orion_unigram *u);

/* Token ids of `text` (len bytes of UTF-8; invalid sequences read as
 * U+FFFD, as Node's decoder does): NFKC, spaces to U+2581 with one leading
 * U+2581, Viterbi over the pieces, runs of unknowns merged into one id 0.
 * Writes at most n_max ids; *n_out = the number of ids (all of them, even
 * past n_max). Empty text gives no ids. Thread-safe (u is read-only). */
orion_status orion__unigram_encode(const orion_unigram *u, const char *text, size_t len, int32_t *ids,
                                   int32_t n_max, int32_t *n_out);

#endif
