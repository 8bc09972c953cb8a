/*
 * fuzz_wordpiece.c — libFuzzer target for the WordPiece tokenizer
 * (src/models/wordpiece.c): any bytes, valid UTF-8 or not, must encode
 * without crashing, over-reading or leaking, to ids inside the vocabulary,
 * at most one id a byte; a shorter n_max must give the same count and a
 * prefix of the same ids; the vocab.txt and the GGUF ("phantom") spellings
 * of the vocabulary must agree. The vocabulary is bert-base-uncased's
 * vocab.txt from $ORION_SHARED or ../shared (fuzz.sh runs from the project
 * root), else a small built-in one. An input starting with 0x01 is instead a
 * vocabulary itself (one token a line, types from a leading digit) that init
 * must accept or refuse with a message, then encode its own bytes.
 * Seeds in fuzz/corpus/wordpiece.
 */
#include "models/wordpiece.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *SMALL[] = {"[PAD]",  "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "a",  "##b",   "un", "##aff",
                              "##able", "!",     ",",     "é",     "e",      "σ",   "ς",   "中", "##ing", "x"};

static char            **vocab;
static int32_t          *types;
static char            **phantom;
static int32_t           n_vocab;
static orion__wordpiece *wp_txt, *wp_ph;

static void load_vocab(void) {
    const char *shared = getenv("ORION_SHARED");
    char        path[1024];
    snprintf(path, sizeof path, "%s/models/bert-base-uncased/vocab.txt", shared ? shared : "../shared");
    FILE *f = fopen(path, "r");
    int   cap = 32768;
    vocab = malloc(sizeof *vocab * (size_t)cap);
    if (f) {
        char line[512];
        while (n_vocab < cap && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            vocab[n_vocab++] = strdup(line);
        }
        fclose(f);
    }
    if (n_vocab == 0)
        for (size_t i = 0; i < sizeof SMALL / sizeof SMALL[0]; i++) vocab[n_vocab++] = strdup(SMALL[i]);
    types = malloc(sizeof *types * (size_t)n_vocab);
    phantom = malloc(sizeof *phantom * (size_t)n_vocab);
    for (int32_t i = 0; i < n_vocab; i++) {
        const char *t = vocab[i];
        types[i] = strcmp(t, "[UNK]") == 0 ? 2
                   : (strcmp(t, "[PAD]") == 0 || strcmp(t, "[CLS]") == 0 || strcmp(t, "[SEP]") == 0 ||
                      strcmp(t, "[MASK]") == 0)
                       ? 3
                       : 1;
        phantom[i] = malloc(strlen(t) + 4);
        if (types[i] != 1)
            strcpy(phantom[i], t);
        else if (strncmp(t, "##", 2) == 0)
            strcpy(phantom[i], t + 2);
        else
            strcpy(phantom[i], "\xe2\x96\x81"), strcat(phantom[i], t);
    }
    if (orion__wordpiece_init((const char *const *)vocab, NULL, n_vocab, false, NULL, &wp_txt) != ORION_OK ||
        orion__wordpiece_init((const char *const *)phantom, types, n_vocab, true, NULL, &wp_ph) != ORION_OK)
        __builtin_trap();
}

static void check_encode(const orion__wordpiece *a, const orion__wordpiece *b, int32_t n, const uint8_t *data,
                         size_t size) {
    int32_t *ids = malloc(sizeof(int32_t) * (size + 1)), *ids2 = malloc(sizeof(int32_t) * (size + 1));
    int32_t  m = -1, m2 = -1;
    if (orion__wordpiece_encode(a, (const char *)data, size, ids, (int32_t)size + 1, &m) != ORION_OK) __builtin_trap();
    if (m < 0 || (size_t)m > size) __builtin_trap();
    for (int32_t i = 0; i < m; i++)
        if (ids[i] < 0 || ids[i] >= n) __builtin_trap();
    int32_t k = m / 2;
    if (orion__wordpiece_encode(a, (const char *)data, size, ids2, k, &m2) != ORION_OK || m2 != m ||
        memcmp(ids, ids2, sizeof(int32_t) * (size_t)k) != 0)
        __builtin_trap();
    if (b) {
        if (orion__wordpiece_encode(b, (const char *)data, size, ids2, (int32_t)size + 1, &m2) != ORION_OK || m2 != m ||
            memcmp(ids, ids2, sizeof(int32_t) * (size_t)m) != 0)
            __builtin_trap();
    }
    free(ids);
    free(ids2);
}

/* 0x01, then lines "<type digit><token>": a fuzzed vocabulary. */
static void fuzz_vocab(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *tok[64];
    int32_t     ty[64], n = 0;
    for (char *line = buf + 1, *nl; line && n < 64; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        ty[n] = (line[0] >= '1' && line[0] <= '6') ? line[0] - '0' : 1;
        tok[n++] = line[0] ? line + 1 : line;
    }
    bool              phantom_form = size > 1 && (data[1] & 1);
    orion__wordpiece *wp = NULL;
    orion_status      st = orion__wordpiece_init(tok, (data[size - 1] & 1) ? ty : NULL, n, phantom_form, NULL, &wp);
    if (st != ORION_OK) {
        if (wp || orion_last_error()[0] == '\0') __builtin_trap();
    } else {
        check_encode(wp, NULL, n, data, size);
        for (int32_t i = 0; i < n; i++)
            if (orion__wordpiece_id(wp, tok[i]) >= n) __builtin_trap();
    }
    orion__wordpiece_free(wp);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!wp_txt) load_vocab();
    if (size > 0 && data[0] == 0x01) {
        fuzz_vocab(data, size);
        return 0;
    }
    check_encode(wp_txt, wp_ph, n_vocab, data, size);
    return 0;
}
