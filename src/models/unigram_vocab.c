/*
 * unigram_vocab.c — the Universal Sentence Encoder lite's SentencePiece
 * unigram tokenizer, written to give exactly the ids of the JavaScript
 * tokenizer in npm's @energetic-ai/embeddings (lib/tokenizer.ts, from
 * tfjs-models' universal-sentence-encoder). What it does, and the quirks we
 * keep on purpose:
 *
 *   1. The text is NFKC-normalized (utf8proc; Node uses ICU, both Unicode
 *      15). Every U+0020 becomes U+2581 and, when the text is not empty, one
 *      U+2581 goes in front. Nothing else is touched: tabs and newlines stay.
 *   2. The text is cut into code points ("symbols"). A trie of the pieces
 *      (all but the reserved first six) over code points gives, at each
 *      start, every piece that matches there; when none does, the single
 *      symbol is a candidate with score 0 and id 0 (unknown).
 *   3. Viterbi: best[end] starts at 0 and 0 also means "unset", so a
 *      candidate replaces best[end] when best[end] == 0 or its score
 *      (piece score + best[start], summed in double) is >= best[end]: ties
 *      go to the later start, and a position that no piece reaches counts
 *      as score 0 for the pieces that start there.
 *   4. Backtracking steps back by the length of the chosen piece in UTF-16
 *      code units (JavaScript's String.length), not in symbols, starting
 *      from the last symbol; positions never set hold id 0.
 *   5. Consecutive unknown ids (0) are merged into one.
 *
 * Invalid UTF-8 reads as U+FFFD per maximal bad subsequence, as Node's
 * decoder does, so any byte string has a defined tokenization.
 */
#include "models/unigram_vocab.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct trie_node {
    int32_t index;  /* piece id ending here, or -1 */
    double  score;
} trie_node;

struct orion_unigram {
    int32_t    n_vocab;
    int32_t   *utf16_len;  /* n_vocab: JavaScript length of each piece */
    trie_node *nodes;      /* node 0 is the root */
    int32_t    n_nodes;
    /* children: open addressing, key = parent << 32 | code point */
    uint64_t  *keys;       /* UINT64_MAX = empty */
    int32_t   *child;
    uint64_t   mask;
};

#define EMPTY_KEY UINT64_MAX

static uint64_t hash_key(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static int32_t trie_child(const orion_unigram *u, int32_t parent, uint32_t cp) {
    uint64_t key = ((uint64_t)(uint32_t)parent << 32) | cp;
    for (uint64_t h = hash_key(key) & u->mask;; h = (h + 1) & u->mask) {
        if (u->keys[h] == key) return u->child[h];
        if (u->keys[h] == EMPTY_KEY) return -1;
    }
}

static void trie_set_child(orion_unigram *u, int32_t parent, uint32_t cp, int32_t c) {
    uint64_t key = ((uint64_t)(uint32_t)parent << 32) | cp;
    uint64_t h = hash_key(key) & u->mask;
    while (u->keys[h] != EMPTY_KEY) h = (h + 1) & u->mask;
    u->keys[h] = key;
    u->child[h] = c;
}

/* Decodes one code point of strict UTF-8 at s[0..n). Returns the bytes used
 * (>= 1); *cp = U+FFFD for a maximal invalid subsequence (WHATWG rule). */
static size_t utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    uint32_t v, lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *cp = 0xFFFD;
            return i;
        }
        v = (v << 6) | (s[i] & 0x3F);
        lo = 0x80, hi = 0xBF;
    }
    *cp = v;
    return i;
}

/* Strict decode into code points; returns the count, or -1 on a bad piece
 * when strict (pieces must be valid). cps may be NULL to count. */
static int64_t utf8_decode(const char *text, size_t len, uint32_t *cps, bool strict) {
    const uint8_t *s = (const uint8_t *)text;
    int64_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_next(s + i, len - i, &cp);
        if (strict && cp == 0xFFFD && !(k == 3 && s[i] == 0xEF && s[i + 1] == 0xBF && s[i + 2] == 0xBD)) return -1;
        if (cps) cps[n] = cp;
        n++;
        i += k;
    }
    return n;
}

orion_status orion__unigram_init(const char *const *pieces, const size_t *lens, const double *scores, int32_t n,
                                 int32_t n_reserved, orion_unigram **out) {
    *out = NULL;
    if (n <= 0 || n_reserved < 1 || n_reserved > n || !pieces || !lens || !scores)
        return orion__fail(ORION_ERR_INVALID_ARG, "unigram: bad vocabulary (%d pieces, %d reserved)", (int)n,
                           (int)n_reserved);
    orion_unigram *u = orion__calloc(1, sizeof *u);
    if (!u) return orion__fail(ORION_ERR_NOMEM, "unigram: out of memory");
    u->n_vocab = n;
    size_t total = 1;
    for (int32_t i = 0; i < n; i++) {
        int64_t c = utf8_decode(pieces[i], lens[i], NULL, true);
        if (c < 0) {
            orion__unigram_free(u);
            return orion__fail(ORION_ERR_FORMAT, "unigram: piece %d is not valid UTF-8", (int)i);
        }
        total += (size_t)c;
    }
    if (total > INT32_MAX / 4) {
        orion__unigram_free(u);
        return orion__fail(ORION_ERR_RANGE, "unigram: vocabulary too large");
    }
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)total) cap <<= 1;
    u->mask = cap - 1;
    u->utf16_len = orion__calloc((size_t)n, sizeof *u->utf16_len);
    u->nodes = orion__malloc(total * sizeof *u->nodes);
    u->keys = orion__malloc((size_t)cap * sizeof *u->keys);
    u->child = orion__malloc((size_t)cap * sizeof *u->child);
    uint32_t *cps = orion__malloc(total * sizeof *cps);
    if (!u->utf16_len || !u->nodes || !u->keys || !u->child || !cps) {
        orion__free(cps);
        orion__unigram_free(u);
        return orion__fail(ORION_ERR_NOMEM, "unigram: out of memory");
    }
    memset(u->keys, 0xFF, (size_t)cap * sizeof *u->keys);
    u->nodes[0] = (trie_node){-1, 0.0};
    u->n_nodes = 1;
    for (int32_t i = 0; i < n; i++) {
        int64_t c = utf8_decode(pieces[i], lens[i], cps, true);
        int32_t l16 = 0;
        for (int64_t k = 0; k < c; k++) l16 += cps[k] >= 0x10000 ? 2 : 1;
        u->utf16_len[i] = l16;
        if (i < n_reserved || c == 0) continue;
        int32_t node = 0;
        for (int64_t k = 0; k < c; k++) {
            int32_t ch = trie_child(u, node, cps[k]);
            if (ch < 0) {
                ch = u->n_nodes++;
                u->nodes[ch] = (trie_node){-1, 0.0};
                trie_set_child(u, node, cps[k], ch);
            }
            node = ch;
        }
        u->nodes[node].index = i; /* a later duplicate wins, as in the JS trie */
        u->nodes[node].score = scores[i];
    }
    orion__free(cps);
    *out = u;
    return ORION_OK;
}

void orion__unigram_free(orion_unigram *u) {
    if (!u) return;
    orion__free(u->utf16_len);
    orion__free(u->nodes);
    orion__free(u->keys);
    orion__free(u->child);
    orion__free(u);
}

int32_t orion__unigram_n_vocab(const orion_unigram *u) { return u->n_vocab; }

/* NFKC of the code points cps[0..n) into *out (orion__malloc'd). */
static orion_status nfkc(const uint32_t *cps, int64_t n, int32_t **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    size_t blen = (size_t)n * 4; /* at most 4 bytes of UTF-8 per code point */
    uint8_t *buf = orion__malloc(blen + 1);
    if (!buf) return orion__fail(ORION_ERR_NOMEM, "unigram: out of memory");
    size_t b = 0;
    for (int64_t i = 0; i < n; i++) b += (size_t)utf8proc_encode_char((utf8proc_int32_t)cps[i], buf + b);
    utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE;
    utf8proc_ssize_t need = utf8proc_decompose(buf, (utf8proc_ssize_t)b, NULL, 0, opt);
    if (need < 0) {
        orion__free(buf);
        return orion__fail(ORION_ERR_FORMAT, "unigram: normalization failed: %s", utf8proc_errmsg(need));
    }
    int32_t *d = orion__malloc(((size_t)need + 1) * sizeof *d);
    if (!d) {
        orion__free(buf);
        return orion__fail(ORION_ERR_NOMEM, "unigram: out of memory");
    }
    utf8proc_ssize_t got = utf8proc_decompose(buf, (utf8proc_ssize_t)b, (utf8proc_int32_t *)d, need, opt);
    orion__free(buf);
    if (got < 0 || got > need) {
        orion__free(d);
        return orion__fail(ORION_ERR_FORMAT, "unigram: normalization failed");
    }
    got = utf8proc_normalize_utf32((utf8proc_int32_t *)d, got, opt);
    if (got < 0) {
        orion__free(d);
        return orion__fail(ORION_ERR_FORMAT, "unigram: normalization failed: %s", utf8proc_errmsg(got));
    }
    *out = d;
    *n_out = got;
    return ORION_OK;
}

orion_status orion__unigram_encode(const orion_unigram *u, const char *text, size_t len, int32_t *ids,
                                   int32_t n_max, int32_t *n_out) {
    *n_out = 0;
    if (!text && len) return orion__fail(ORION_ERR_INVALID_ARG, "unigram: NULL text");
    if (len == 0) return ORION_OK;
    if (len > (size_t)INT32_MAX / 8) return orion__fail(ORION_ERR_RANGE, "unigram: text of %zu bytes too long", len);
    orion_status st = ORION_OK;
    uint32_t *raw = orion__malloc(len * sizeof *raw);
    if (!raw) return orion__fail(ORION_ERR_NOMEM, "unigram: out of memory");
    int64_t n_raw = utf8_decode(text, len, raw, false);
    int32_t *norm = NULL;
    int64_t n_norm = 0;
    st = nfkc(raw, n_raw, &norm, &n_norm);
    orion__free(raw);
    if (st != ORION_OK) return st;
    if (n_norm == 0) {
        orion__free(norm);
        return ORION_OK;
    }
    /* symbols: U+2581 + the text with spaces as U+2581 */
    int64_t n = n_norm + 1;
    uint32_t *sym = orion__malloc((size_t)n * sizeof *sym);
    double *best = orion__calloc((size_t)n + 1, sizeof *best);
    int32_t *words = orion__calloc((size_t)n + 1, sizeof *words);
    int32_t *res = orion__malloc((size_t)n * sizeof *res);
    if (!sym || !best || !words || !res) {
        st = orion__fail(ORION_ERR_NOMEM, "unigram: out of memory");
        goto done;
    }
    sym[0] = 0x2581;
    for (int64_t i = 0; i < n_norm; i++) sym[i + 1] = norm[i] == 0x20 ? 0x2581 : (uint32_t)norm[i];

    /* Viterbi, relaxing from each start in ascending order: the same order
     * in which the JS visits (end, start) pairs, so ties resolve alike. */
    for (int64_t i = 0; i < n; i++) {
        int32_t node = 0;
        bool any = false;
        for (int64_t j = i; j < n; j++) {
            node = trie_child(u, node, sym[j]);
            if (node < 0) break;
            const trie_node *t = &u->nodes[node];
            if (t->index < 0) continue;
            any = true;
            int64_t end = j + 1;
            double score = t->score + best[i];
            if (best[end] == 0.0 || score >= best[end]) {
                best[end] = score;
                words[end] = t->index;
            }
        }
        if (!any) { /* unknown single symbol: score 0, id 0 */
            double score = best[i];
            if (best[i + 1] == 0.0 || score >= best[i + 1]) {
                best[i + 1] = score;
                words[i + 1] = 0;
            }
        }
    }
    /* backtrack by JavaScript string lengths, merge unknown runs */
    int64_t n_res = 0;
    for (int64_t it = n; it > 0;) {
        int32_t id = words[it];
        if (!(n_res > 0 && res[n_res - 1] == 0 && id == 0)) res[n_res++] = id;
        int32_t step = u->utf16_len[id] > 0 ? u->utf16_len[id] : 1; /* the JS would loop forever on 0 */
        it -= step;
    }
    for (int64_t k = 0; k < n_res; k++)
        if (k < n_max && ids) ids[k] = res[n_res - 1 - k];
    *n_out = (int32_t)n_res;
done:
    orion__free(norm);
    orion__free(sym);
    orion__free(best);
    orion__free(words);
    orion__free(res);
    return st;
}
