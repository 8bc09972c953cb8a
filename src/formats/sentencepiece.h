/*
 * sentencepiece.h — a tokenizer vocabulary (token texts, scores, GGUF token
 * types) and the reader of SentencePiece's tokenizer.model that fills one
 * (see sentencepiece.c). Internal to the formats layer.
 */
#ifndef ORION_SENTENCEPIECE_H
#define ORION_SENTENCEPIECE_H

#include "core/core.h"

/* GGUF token types (llama.cpp's, and SentencePiece's piece types; the same
 * numbers as ORION_TOKEN_* in models/spm_vocab.h, which this layer cannot
 * include). */
enum {
    ORION_SP_NORMAL       = 1,
    ORION_SP_UNKNOWN      = 2,
    ORION_SP_CONTROL      = 3,
    ORION_SP_USER_DEFINED = 4,
    ORION_SP_UNUSED       = 5,
    ORION_SP_BYTE         = 6,
};

/* A vocabulary: token i is tokens[i] (NUL-terminated UTF-8 as GGUF stores
 * it, e.g. with U+2581 for a leading space), with scores[i] (NULL for
 * vocabularies without scores) and types[i]. Every array and string is
 * owned by the vocabulary; free it with orion__vocab_free(). */
typedef struct orion_vocab {
    int32_t  n;
    char   **tokens;
    float   *scores;
    int32_t *types;
    char    *text;    /* the block the token strings live in */
} orion_vocab;

void orion__vocab_free(orion_vocab *v);

/* Decodes a SentencePiece ModelProto (protobuf) from `size` bytes: its
 * repeated field 1 gives each piece's text, score and type. `label` names
 * the source in messages. The bytes are hostile: every varint, length and
 * wire type is checked and unknown fields are skipped. Errors:
 * ORION_ERR_FORMAT naming the piece and byte offset, ORION_ERR_NOMEM. */
orion_status orion__sentencepiece_parse(const void *data, size_t size, const char *label, orion_vocab **out);

/* Reads and decodes the file `path` (at most 256 MiB). */
orion_status orion__sentencepiece_load(const char *path, orion_vocab **out);

#endif
