/*
 * fuzz_sentencepiece.c — libFuzzer target for the tokenizer.model
 * (SentencePiece protobuf) reader: any bytes must decode to a vocabulary of
 * valid pieces or fail with a message; never crash, over-read or leak.
 * Seeds in fuzz/corpus/sentencepiece.
 */
#include "formats/sentencepiece.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    orion_vocab *v = NULL;
    if (orion__sentencepiece_parse(data, size, "tokenizer.model", &v) != ORION_OK) {
        if (orion_last_error()[0] == '\0') __builtin_trap();
        return 0;
    }
    volatile size_t sink = 0;
    for (int32_t i = 0; i < v->n; i++) {
        if (!v->tokens[i] || v->types[i] < 1 || v->types[i] > 6) __builtin_trap();
        size_t len = strlen(v->tokens[i]);
        if (len > size) __builtin_trap();
        uint32_t bits;
        memcpy(&bits, &v->scores[i], 4);
        sink += len + bits;
    }
    (void)sink;
    orion__vocab_free(v);
    return 0;
}
