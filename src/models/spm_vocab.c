/*
 * spm_vocab.c — SentencePiece-style BPE tokenization as llama.cpp does it for
 * "llama" vocabularies (and as llama2.c's encoder does it: the two agree).
 *
 * Encoding:
 *   1. Prefix a space when the vocabulary asks for it and the text is not
 *      empty, then write every space as U+2581 ("▁").
 *   2. Split into UTF-8 characters: the initial symbols.
 *   3. Merge: among adjacent pairs whose concatenation is a piece, merge the
 *      one with the highest score (ties: the leftmost), and repeat. A binary
 *      heap holds the candidate pairs; entries made stale by an earlier merge
 *      are skipped when popped.
 *   4. Each final symbol becomes its piece id; a symbol with no piece (only
 *      possible for single characters) falls back to its bytes, <0xNN>.
 * Pieces are found through an open-addressing hash table built at load.
 */
#include "models/spm_vocab.h"
#include "formats/gguf_internal.h"
#include "formats/llama2c.h"

#include <stdio.h>
#include <string.h>

/* ---- hashing --------------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

int32_t orion__spm_vocab_find(const orion_spm_vocab *v, const char *s, size_t len) {
    uint32_t mask = v->n_slots - 1;
    for (uint32_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t e = v->slots[i];
        if (e == 0) return -1;
        int32_t id = (int32_t)e - 1;
        if (v->len[id] == len && memcmp(v->text[id], s, len) == 0) return id;
    }
}

static orion_status build_index(orion_spm_vocab *v) {
    uint32_t n_slots = 16;
    while (n_slots < 2u * (uint32_t)v->n) n_slots <<= 1;
    v->slots = orion__calloc(n_slots, sizeof *v->slots);
    if (!v->slots) return orion__fail(ORION_ERR_NOMEM, "vocabulary: cannot allocate the index");
    v->n_slots = n_slots;
    for (int32_t id = 0; id < v->n; id++) {
        /* the first of duplicate pieces wins, as in llama.cpp */
        if (orion__spm_vocab_find(v, v->text[id], v->len[id]) >= 0) continue;
        uint32_t mask = n_slots - 1;
        uint32_t i = hash_bytes(v->text[id], v->len[id]) & mask;
        while (v->slots[i]) i = (i + 1) & mask;
        v->slots[i] = (uint32_t)id + 1;
    }
    v->special = orion__malloc(sizeof(int32_t) * (size_t)v->n);
    if (!v->special) return orion__fail(ORION_ERR_NOMEM, "vocabulary: cannot allocate the index");
    v->n_special = 0;
    for (int32_t id = 0; id < v->n; id++)
        if ((v->type[id] == ORION_TOKEN_CONTROL || v->type[id] == ORION_TOKEN_USER_DEFINED) && v->len[id] > 0)
            v->special[v->n_special++] = id;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        v->byte_id[b] = orion__spm_vocab_find(v, name, 6);
    }
    return ORION_OK;
}

static orion_spm_vocab *vocab_new(int32_t n) {
    orion_spm_vocab *v = orion__calloc(1, sizeof *v);
    if (!v) return NULL;
    v->n = n;
    v->text = orion__calloc((size_t)n, sizeof *v->text);
    v->len = orion__calloc((size_t)n, sizeof *v->len);
    v->score = orion__calloc((size_t)n, sizeof *v->score);
    v->type = orion__calloc((size_t)n, sizeof *v->type);
    v->bos = 1, v->eos = 2, v->unk = 0;
    v->add_space_prefix = true;
    if (!v->text || !v->len || !v->score || !v->type) {
        orion__spm_vocab_free(v);
        return NULL;
    }
    return v;
}

void orion__spm_vocab_free(orion_spm_vocab *v) {
    if (!v) return;
    if (v->text)
        for (int32_t i = 0; i < v->n; i++) orion__free(v->text[i]);
    orion__free(v->text);
    orion__free(v->len);
    orion__free(v->score);
    orion__free(v->type);
    orion__free(v->slots);
    orion__free(v->special);
    orion__free(v);
}

static char *dup_n(const char *s, size_t n) {
    char *d = orion__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int32_t id_or(const orion_gguf *g, const char *key, int32_t dflt, int32_t n) {
    uint64_t v;
    if (orion_gguf_get_u64(g, key, &v) != ORION_OK || v >= (uint64_t)n) return dflt;
    return (int32_t)v;
}

orion_status orion__spm_vocab_from_gguf(const orion_gguf *g, orion_spm_vocab **out) {
    *out = NULL;
    char model[32] = "";
    if (orion_gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model) != ORION_OK)
        return orion__fail(ORION_ERR_FORMAT, "model file has no tokenizer (tokenizer.ggml.model is missing)");
    if (strcmp(model, "llama") != 0)
        return orion__fail(ORION_ERR_UNSUPPORTED, "tokenizer model '%s' is not supported here (expected 'llama')",
                           model);
    const orion_gguf_value *tokens = orion_gguf_get(g, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != ORION_GGUF_ARRAY || tokens->v.arr.elem_type != ORION_GGUF_STRING ||
        tokens->v.arr.count == 0 || tokens->v.arr.count > (1u << 24))
        return orion__fail(ORION_ERR_FORMAT, "tokenizer.ggml.tokens must be a non-empty array of strings");
    int32_t n = (int32_t)tokens->v.arr.count;
    const orion_gguf_value *scores = orion_gguf_get(g, "tokenizer.ggml.scores");
    const orion_gguf_value *types = orion_gguf_get(g, "tokenizer.ggml.token_type");
    if (scores && (scores->type != ORION_GGUF_ARRAY || scores->v.arr.count != (uint64_t)n ||
                   !orion__gguf_value_is_number_array(scores)))
        return orion__fail(ORION_ERR_FORMAT, "tokenizer.ggml.scores must hold %d numbers", n);
    if (types && (types->type != ORION_GGUF_ARRAY || types->v.arr.count != (uint64_t)n ||
                  !orion__gguf_value_is_number_array(types)))
        return orion__fail(ORION_ERR_FORMAT, "tokenizer.ggml.token_type must hold %d numbers", n);
    orion_spm_vocab *v = vocab_new(n);
    if (!v) return orion__fail(ORION_ERR_NOMEM, "vocabulary: out of memory");
    for (int32_t i = 0; i < n; i++) {
        const orion_gguf_value *t = &tokens->v.arr.items[i];
        if (t->v.str.len > 4096 || memchr(t->v.str.ptr, '\0', (size_t)t->v.str.len)) {
            orion__spm_vocab_free(v);
            return orion__fail(ORION_ERR_FORMAT, "tokenizer.ggml.tokens[%d] is too long or holds a NUL byte", i);
        }
        v->text[i] = dup_n(t->v.str.ptr, (size_t)t->v.str.len);
        if (!v->text[i]) {
            orion__spm_vocab_free(v);
            return orion__fail(ORION_ERR_NOMEM, "vocabulary: out of memory");
        }
        v->len[i] = (uint32_t)t->v.str.len;
        v->score[i] = scores ? (float)orion_gguf_array_f64(scores, (uint64_t)i) : 0.0f;
        int64_t ty = types ? orion_gguf_array_i64(types, (uint64_t)i) : ORION_TOKEN_NORMAL;
        v->type[i] = (uint8_t)((ty >= 1 && ty <= 6) ? ty : ORION_TOKEN_NORMAL);
    }
    v->bos = id_or(g, "tokenizer.ggml.bos_token_id", 1 < n ? 1 : 0, n);
    v->eos = id_or(g, "tokenizer.ggml.eos_token_id", 2 < n ? 2 : 0, n);
    v->unk = id_or(g, "tokenizer.ggml.unknown_token_id", 0, n);
    bool prefix;
    if (orion_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &prefix) == ORION_OK) v->add_space_prefix = prefix;
    orion_status st = build_index(v);
    if (st != ORION_OK) {
        orion__spm_vocab_free(v);
        return st;
    }
    *out = v;
    return ORION_OK;
}

orion_status orion__spm_vocab_from_llama2c(const char *path, int32_t n_vocab, orion_spm_vocab **out) {
    *out = NULL;
    orion_llama2c_vocab *lv = NULL;
    orion_status st = orion__llama2c_vocab_load(path, n_vocab, &lv);
    if (st != ORION_OK) return st;
    orion_spm_vocab *v = vocab_new(n_vocab);
    if (!v) {
        orion__llama2c_vocab_free(lv);
        return orion__fail(ORION_ERR_NOMEM, "vocabulary: out of memory");
    }
    for (int32_t i = 0; i < n_vocab; i++) {
        v->text[i] = lv->tokens[i]; /* take ownership */
        lv->tokens[i] = NULL;
        v->len[i] = (uint32_t)strlen(v->text[i]);
        v->score[i] = lv->scores[i];
        v->type[i] = (uint8_t)lv->types[i];
    }
    orion__llama2c_vocab_free(lv);
    if ((st = build_index(v)) != ORION_OK) {
        orion__spm_vocab_free(v);
        return st;
    }
    *out = v;
    return ORION_OK;
}

/* ---- encoding --------------------------------------------------------------------- */

typedef struct symbol {
    int32_t     prev, next; /* linked list over the text; -1 at the ends */
    const char *text;
    uint32_t    len;        /* 0 once merged into its left neighbour */
} symbol;

typedef struct bigram {
    int32_t  left, right;
    float    score;
    uint32_t len; /* combined length when queued (stale check) */
} bigram;

typedef struct heap {
    bigram *a;
    size_t  n, cap;
} heap;

/* a before b: higher score first, then the leftmost */
static bool bigram_before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bool heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *a = orion__realloc(h->a, cap * sizeof *a);
        if (!a) return false;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->a[i] = b;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&h->a[i], &h->a[p])) break;
        bigram t = h->a[i];
        h->a[i] = h->a[p];
        h->a[p] = t;
        i = p;
    }
    return true;
}

static bigram heap_pop(heap *h) {
    bigram top = h->a[0];
    h->a[0] = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && bigram_before(&h->a[l], &h->a[m])) m = l;
        if (r < h->n && bigram_before(&h->a[r], &h->a[m])) m = r;
        if (m == i) break;
        bigram t = h->a[i];
        h->a[i] = h->a[m];
        h->a[m] = t;
        i = m;
    }
    return top;
}

static bool try_bigram(const orion_spm_vocab *v, const symbol *sym, heap *h, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    uint32_t len = sym[left].len + sym[right].len;
    int32_t id = orion__spm_vocab_find(v, sym[left].text, len);
    if (id < 0) return true;
    bigram b = {left, right, v->score[id], len};
    return heap_push(h, b);
}

static int utf8_len(uint8_t c) {
    static const int lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

typedef struct out_tokens {
    int32_t *tokens;
    int32_t  n_max, n;
} out_tokens;

static void emit(out_tokens *o, int32_t id) {
    if (o->n < o->n_max) o->tokens[o->n] = id;
    o->n++;
}

/* BPE over one fragment of plain text (no special tokens in it). */
static orion_status tokenize_fragment(const orion_spm_vocab *v, const char *text, size_t len, bool space_prefix,
                                      out_tokens *o) {
    orion_status st = ORION_OK;
    char *buf = NULL;
    symbol *sym = NULL;
    heap h = {0};
    {
        /* 1. space prefix, spaces as U+2581 (3 bytes) */
        size_t spaces = space_prefix ? 1 : 0;
        for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
        size_t n = len + 2 * spaces + (space_prefix ? 1 : 0);
        buf = orion__malloc(n + 1);
        sym = orion__malloc((n + 1) * sizeof *sym);
        if (!buf || !sym) {
            st = orion__fail(ORION_ERR_NOMEM, "tokenize: out of memory");
            goto done;
        }
        size_t w = 0;
        if (space_prefix) memcpy(buf + w, "\xe2\x96\x81", 3), w += 3;
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ') memcpy(buf + w, "\xe2\x96\x81", 3), w += 3;
            else buf[w++] = text[i];
        }
        /* 2. characters */
        int32_t n_sym = 0;
        for (size_t i = 0; i < w;) {
            size_t cl = (size_t)utf8_len((uint8_t)buf[i]);
            if (cl > w - i) cl = w - i;
            sym[n_sym] = (symbol){n_sym - 1, -1, buf + i, (uint32_t)cl};
            if (n_sym > 0) sym[n_sym - 1].next = n_sym;
            n_sym++;
            i += cl;
        }
        /* 3. merges */
        for (int32_t i = 1; i < n_sym; i++)
            if (!try_bigram(v, sym, &h, i - 1, i)) goto nomem;
        while (h.n > 0) {
            bigram b = heap_pop(&h);
            symbol *l = &sym[b.left], *r = &sym[b.right];
            if (l->len == 0 || r->len == 0 || l->len + r->len != b.len) continue; /* stale */
            l->len += r->len;
            r->len = 0;
            l->next = r->next;
            if (r->next >= 0) sym[r->next].prev = b.left;
            if (!try_bigram(v, sym, &h, l->prev, b.left) || !try_bigram(v, sym, &h, b.left, l->next)) goto nomem;
        }
        /* 4. ids, with byte fallback */
        for (int32_t i = 0; i >= 0 && i < n_sym; i = sym[i].next) {
            int32_t id = orion__spm_vocab_find(v, sym[i].text, sym[i].len);
            if (id >= 0) {
                emit(o, id);
                continue;
            }
            for (uint32_t k = 0; k < sym[i].len; k++) {
                int32_t bid = v->byte_id[(uint8_t)sym[i].text[k]];
                emit(o, bid >= 0 ? bid : v->unk);
            }
        }
    }
    goto done;
nomem:
    st = orion__fail(ORION_ERR_NOMEM, "tokenize: out of memory");
done:
    orion__free(h.a);
    orion__free(sym);
    orion__free(buf);
    return st;
}

/* The special (control or user-defined) piece that text starts with, the
 * longest one if several do; -1 if none. */
static int32_t special_at(const orion_spm_vocab *v, const char *text, size_t len) {
    int32_t best = -1;
    for (int32_t i = 0; i < v->n_special; i++) {
        int32_t id = v->special[i];
        if (v->len[id] <= len && memcmp(text, v->text[id], v->len[id]) == 0 && (best < 0 || v->len[id] > v->len[best]))
            best = id;
    }
    return best;
}

orion_status orion__spm_tokenize(const orion_spm_vocab *v, const char *text, size_t len, bool add_bos,
                                 bool parse_special, int32_t *tokens, int32_t n_max, int32_t *n_out) {
    if (!text && len) return orion__fail(ORION_ERR_INVALID_ARG, "tokenize: NULL text");
    if (len > (1u << 28)) return orion__fail(ORION_ERR_RANGE, "tokenize: text of %zu bytes is too long", len);
    out_tokens o = {tokens, n_max < 0 ? 0 : n_max, 0};
    if (add_bos) emit(&o, v->bos);
    orion_status st = ORION_OK;
    /* Plain text fragments between special pieces get the space prefix when
     * they start the text or follow a special piece (as llama.cpp does). */
    bool prefix = v->add_space_prefix;
    size_t start = 0;
    for (size_t i = 0; parse_special && i < len; i++) {
        int32_t id = special_at(v, text + i, len - i);
        if (id < 0) continue;
        if (i > start && (st = tokenize_fragment(v, text + start, i - start, prefix, &o)) != ORION_OK) return st;
        emit(&o, id);
        prefix = v->add_space_prefix;
        i += v->len[id] - 1;
        start = i + 1;
    }
    if (start < len && (st = tokenize_fragment(v, text + start, len - start, prefix, &o)) != ORION_OK) return st;
    if (n_out) *n_out = o.n;
    if (o.n > o.n_max)
        return orion__fail(ORION_ERR_RANGE, "tokenize: %d tokens do not fit in a buffer of %d", o.n, o.n_max);
    return ORION_OK;
}

size_t orion__spm_token_to_piece(const orion_spm_vocab *v, int32_t token, char *buf, size_t size) {
    if (token < 0 || token >= v->n) return 0;
    const char *t = v->text[token];
    size_t n = 0;
    switch (v->type[token]) {
    case ORION_TOKEN_CONTROL:
    case ORION_TOKEN_UNUSED:
        return 0;
    case ORION_TOKEN_BYTE: {
        unsigned b;
        if (v->len[token] == 6 && sscanf(t, "<0x%02X>", &b) == 1) {
            if (size > 0) buf[0] = (char)b;
            return 1;
        }
        break;
    }
    case ORION_TOKEN_UNKNOWN: {
        static const char unk[] = "\xe2\x96\x85"; /* llama.cpp renders <unk> as U+2585 */
        for (size_t i = 0; i < 3 && i < size; i++) buf[i] = unk[i];
        return 3;
    }
    default:
        break;
    }
    for (uint32_t i = 0; i < v->len[token];) {
        if (i + 3 <= v->len[token] && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
            if (n < size) buf[n] = ' ';
            n++;
            i += 3;
        } else {
            if (n < size) buf[n] = t[i];
            n++;
            i++;
        }
    }
    return n;
}
