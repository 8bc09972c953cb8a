/*
 * wordpiece.c — BERT's WordPiece tokenizer, matching Hugging Face's
 * BertTokenizer for uncased models as transformers.js runs it (the oracle of
 * tests/test_wordpiece.c).
 *
 * Encoding a text:
 *   1. Special tokens ([CLS], [SEP], [UNK], [PAD], [MASK]) written in the raw
 *      text are cut out first, longest match leftmost, and become their ids
 *      (HF's added-token splitting). The text between them is a "section",
 *      normalized on its own.
 *   2. UTF-8 is decoded; a byte sequence that is not valid UTF-8 (overlong,
 *      surrogate, > U+10FFFF, truncated, stray continuation) is one U+FFFD
 *      per maximal ill-formed subpart, as the WHATWG TextDecoder that gives
 *      JavaScript its strings does, so the next valid character is never
 *      swallowed. Cleaning then drops U+FFFD, so invalid bytes vanish:
 *      "a\xFFb" is "ab".
 *   3. Cleaning: drop NUL, U+FFFD and every Cc/Cf/Co/Cs character except
 *      tab, LF and CR; JavaScript's \s characters become a space.
 *   4. CJK ideographs get a space on each side. transformers.js tests UTF-16
 *      code units against BERT's ranges, so only the BMP ranges (U+3400-4DBF,
 *      U+4E00-9FFF, U+F900-FAFF) ever match; we do the same, and ideographs
 *      of the supplementary planes stay inside their words.
 *   5. Lower-casing: JavaScript's String.prototype.toLowerCase, i.e. the
 *      simple mapping plus U+0130 -> "i\u0307" and Greek final sigma
 *      (Σ -> ς at the end of a cased word, ICU's context rules).
 *   6. Accent stripping: NFD (with canonical ordering), then every Mn mark is
 *      removed.
 *   7. Splitting on spaces, then every punctuation character (ASCII
 *      21-2F, 3A-40, 5B-60, 7B-7E and the Unicode P* categories) is a word.
 *   8. Greedy longest-match WordPiece per word, continuations prefixed "##";
 *      a word of more than max_chars_per_word code points, or one that
 *      cannot be covered, is a single [UNK].
 * Steps 3-7 work on "chunks": runs of characters between spaces (and around
 * CJK ideographs). Spaces and ideographs are neither cased nor
 * case-ignorable and are NFD starters, so no step looks across them and each
 * chunk can be finished on its own in scratch buffers that grow with the
 * longest chunk.
 *
 * Unicode data comes from utf8proc (Unicode 15.0 in Debian 12's 2.8.0) plus
 * a small table of the marks and punctuation assigned since (see NEWER), so
 * that we agree with the oracle's Unicode 17 on every code point; case
 * mappings and decompositions of characters assigned after 15.0 are not
 * patched (they only matter inside words that are [UNK] either way).
 *
 * The vocabulary lives in an open-addressing hash table keyed by (is
 * continuation, bytes without "##"), so a word's pieces are looked up in
 * place without building "##" strings. Duplicate spellings: the last id wins,
 * as in HF's vocab map. Tokens typed CONTROL/UNKNOWN/USER_DEFINED (or, with
 * no types, the five names of step 1) are special and spelled as written in
 * both forms. [UNK] is required. Lookups never try a piece longer than the longest
 * key. The tokenizer is immutable after init; encode allocates its scratch
 * per call, so any number of threads may encode with one tokenizer.
 */
#include "models/wordpiece.h"
#include "core/core.h"

#include <string.h>
#include <utf8proc.h>

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4 };

typedef struct wp_key {
    uint32_t off;  /* into pool */
    uint32_t len;  /* bytes */
    uint8_t  cont; /* a "##" continuation piece */
} wp_key;

typedef struct wp_special {
    const char *text; /* into pool, as written in a text */
    uint32_t    len;
    int32_t     id;
} wp_special;

struct orion__wordpiece {
    orion__wordpiece_params params;
    int32_t                 n;         /* tokens */
    wp_key                 *keys;      /* (n) */
    char                   *pool;      /* every key's bytes, NUL-terminated */
    uint64_t               *slots;     /* (n_slots) key hash << 32 | id + 1; 0 = empty */
    uint32_t                n_slots;   /* power of two >= 2n */
    uint32_t                max_key;   /* longest key in bytes */
    int32_t                 unk;       /* id of [UNK] */
    wp_special             *specials;  /* (n_specials) */
    int32_t                 n_specials;
    uint8_t                 first[32]; /* bitmap: bytes that start a special */
};

/* ---- the vocabulary ---------------------------------------------------------- */

static uint32_t hash_key(const char *s, size_t n, bool cont) {
    uint32_t h = cont ? 0x9747b28cu : 2166136261u; /* FNV-1a, two bases */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

/* The slot's hash is compared first, so a probe past another key rarely
 * touches that key's bytes. */
static int32_t find(const orion__wordpiece *wp, const char *s, size_t n, bool cont) {
    if (n > wp->max_key) return -1;
    uint32_t mask = wp->n_slots - 1, h = hash_key(s, n, cont);
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t e = wp->slots[i];
        if (e == 0) return -1;
        if ((uint32_t)(e >> 32) != h) continue;
        int32_t id = (int32_t)(uint32_t)e - 1;
        const wp_key *k = &wp->keys[id];
        if (k->len == n && k->cont == cont && memcmp(wp->pool + k->off, s, n) == 0) return id;
    }
}

static void insert(orion__wordpiece *wp, int32_t id) {
    const wp_key *k = &wp->keys[id];
    uint32_t mask = wp->n_slots - 1, h = hash_key(wp->pool + k->off, k->len, k->cont);
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t e = wp->slots[i];
        const wp_key *o = e ? &wp->keys[(uint32_t)e - 1] : NULL;
        if (!o || ((uint32_t)(e >> 32) == h && o->len == k->len && o->cont == k->cont &&
                   memcmp(wp->pool + o->off, wp->pool + k->off, k->len) == 0)) {
            wp->slots[i] = (uint64_t)h << 32 | ((uint32_t)id + 1); /* a later duplicate replaces an earlier one */
            return;
        }
    }
}

static bool is_bert_special_name(const char *t) {
    return strcmp(t, "[PAD]") == 0 || strcmp(t, "[UNK]") == 0 || strcmp(t, "[CLS]") == 0 ||
           strcmp(t, "[SEP]") == 0 || strcmp(t, "[MASK]") == 0;
}

/* The key of a vocab.txt spelling: "##ing" -> (cont, "ing"), else as is. */
static void vocab_txt_key(const char *t, const char **key, bool *cont) {
    *cont = strncmp(t, "##", 2) == 0 && t[2] != '\0';
    *key = *cont ? t + 2 : t;
}

orion__wordpiece_params orion__wordpiece_default_params(void) {
    orion__wordpiece_params p;
    memset(&p, 0, sizeof p);
    p.lowercase = true;
    p.strip_accents = true;
    p.chinese_chars = true;
    p.max_chars_per_word = 100;
    p.plain_specials = false;
    return p;
}

void orion__wordpiece_free(orion__wordpiece *wp) {
    if (!wp) return;
    orion__free(wp->keys);
    orion__free(wp->pool);
    orion__free(wp->slots);
    orion__free(wp->specials);
    orion__free(wp);
}

orion_status orion__wordpiece_init(const char *const *tokens, const int32_t *types, int32_t n, bool phantom_form,
                                   const orion__wordpiece_params *params, orion__wordpiece **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "wordpiece: NULL out");
    *out = NULL;
    if (!tokens || n <= 0 || n > (1 << 24))
        return orion__fail(ORION_ERR_INVALID_ARG, "wordpiece: need 1 to 2^24 tokens (got %d)", (int)n);
    orion__wordpiece_params p = params ? *params : orion__wordpiece_default_params();
    if (p.max_chars_per_word < 1)
        return orion__fail(ORION_ERR_INVALID_ARG, "wordpiece: max_chars_per_word must be >= 1");
    size_t pool_len = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!tokens[i]) return orion__fail(ORION_ERR_INVALID_ARG, "wordpiece: token %d is NULL", (int)i);
        size_t len = strlen(tokens[i]);
        if (len > 65535) return orion__fail(ORION_ERR_FORMAT, "wordpiece: token %d is longer than 65535 bytes", (int)i);
        pool_len += len + 1;
    }
    if (pool_len > UINT32_MAX) return orion__fail(ORION_ERR_RANGE, "wordpiece: the vocabulary is too large");
    orion__wordpiece *wp = orion__calloc(1, sizeof *wp);
    if (!wp) return orion__fail(ORION_ERR_NOMEM, "wordpiece: out of memory");
    wp->params = p;
    wp->n = n;
    wp->n_slots = 16;
    while (wp->n_slots < 2u * (uint32_t)n) wp->n_slots <<= 1;
    wp->keys = orion__calloc((size_t)n, sizeof *wp->keys);
    wp->pool = orion__malloc(pool_len ? pool_len : 1);
    wp->slots = orion__calloc(wp->n_slots, sizeof *wp->slots);
    bool *special = orion__calloc((size_t)n, sizeof *special);
    if (!wp->keys || !wp->pool || !wp->slots || !special) goto nomem;

    uint32_t off = 0;
    int32_t n_special = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *t = tokens[i];
        int32_t type = types ? types[i] : TYPE_NORMAL;
        if (!types && is_bert_special_name(t)) type = TYPE_CONTROL;
        const char *key;
        bool cont;
        if (type != TYPE_NORMAL) { /* control, unknown, user-defined, unused, byte: as written */
            key = t;
            cont = false;
            special[i] = type == TYPE_CONTROL || type == TYPE_UNKNOWN || type == TYPE_USER_DEFINED;
            if (special[i] && !t[0]) special[i] = false;
            n_special += special[i];
        } else if (phantom_form) { /* "▁the" starts a word, "ing" continues one */
            cont = strncmp(t, "\xe2\x96\x81", 3) != 0;
            key = cont ? t : t + 3;
        } else {
            vocab_txt_key(t, &key, &cont);
        }
        size_t len = strlen(key);
        memcpy(wp->pool + off, key, len + 1);
        wp->keys[i] = (wp_key){off, (uint32_t)len, cont};
        off += (uint32_t)len + 1;
        if (len > wp->max_key) wp->max_key = (uint32_t)len;
    }
    for (int32_t i = 0; i < n; i++) insert(wp, i);

    wp->unk = find(wp, "[UNK]", 5, false);
    if (wp->unk < 0) {
        orion__free(special);
        orion__wordpiece_free(wp);
        return orion__fail(ORION_ERR_FORMAT, "wordpiece: the vocabulary has no [UNK] token");
    }
    if (n_special > 0) {
        wp->specials = orion__calloc((size_t)n_special, sizeof *wp->specials);
        if (!wp->specials) goto nomem;
        for (int32_t i = 0; i < n; i++) {
            if (!special[i]) continue;
            const wp_key *k = &wp->keys[i];
            int32_t id = find(wp, wp->pool + k->off, k->len, false); /* a duplicate: the id the map holds */
            bool dup = false;
            for (int32_t j = 0; j < wp->n_specials; j++) dup |= wp->specials[j].id == id;
            if (dup) continue;
            wp->specials[wp->n_specials++] = (wp_special){wp->pool + k->off, k->len, id};
            uint8_t b = (uint8_t)wp->pool[k->off];
            wp->first[b >> 3] |= (uint8_t)(1u << (b & 7));
        }
    }
    orion__free(special);
    *out = wp;
    return ORION_OK;
nomem:
    orion__free(special);
    orion__wordpiece_free(wp);
    return orion__fail(ORION_ERR_NOMEM, "wordpiece: out of memory for %d tokens", (int)n);
}

int32_t orion__wordpiece_id(const orion__wordpiece *wp, const char *token) {
    if (!wp || !token) return -1;
    const char *key;
    bool cont;
    vocab_txt_key(token, &key, &cont);
    int32_t id = find(wp, key, strlen(key), cont);
    if (id < 0 && cont) id = find(wp, token, strlen(token), false); /* "##x" kept whole: a special */
    return id;
}

/* ---- character classes --------------------------------------------------------- */

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

/* Cased characters that are not Lu/Ll/Lt (Other_Lowercase, Other_Uppercase),
 * and Case_Ignorable characters that are not Mn/Me/Cf/Lm/Sk (Word_Break
 * MidLetter, MidNumLet, Single_Quote): from Unicode 17 (Node's
 * /\p{Cased}/u and /\p{Case_Ignorable}/u less the categories). */
static const cp_range CASED_EXTRA[] = {
    {0xAA, 0xAA},       {0xBA, 0xBA},       {0x2B0, 0x2B8},     {0x2C0, 0x2C1},     {0x2E0, 0x2E4},
    {0x345, 0x345},     {0x37A, 0x37A},     {0x10FC, 0x10FC},   {0x1D2C, 0x1D6A},   {0x1D78, 0x1D78},
    {0x1D9B, 0x1DBF},   {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},   {0x2160, 0x217F},
    {0x24B6, 0x24E9},   {0x2C7C, 0x2C7D},   {0xA69C, 0xA69D},   {0xA770, 0xA770},   {0xA7F1, 0xA7F4},
    {0xA7F8, 0xA7F9},   {0xAB5C, 0xAB5F},   {0xAB69, 0xAB69},   {0x10780, 0x10780}, {0x10783, 0x10785},
    {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x1E030, 0x1E06D}, {0x1F130, 0x1F149}, {0x1F150, 0x1F169},
    {0x1F170, 0x1F189},
};
static const uint32_t IGNORABLE_EXTRA[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,  0x5F4,  0x2018, 0x2019,
                                           0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};

/* Characters whose category changed after utf8proc's Unicode 15.0 in a way
 * that changes tokens (marks are stripped, punctuation splits): those
 * assigned as Mn or P* in 15.1-17.0, and U+1171E, Mn -> Mc in 16.0. Found by
 * tokenizing "a<c>b" for every code point with orion and transformers.js
 * (Node 20, ICU 78, Unicode 17); only these differed. */
typedef struct cp_cat {
    uint32_t lo, hi;
    int      cat;
} cp_cat;
static const cp_cat NEWER[] = {
    {0x0897, 0x0897, UTF8PROC_CATEGORY_MN},   {0x1ACF, 0x1ADD, UTF8PROC_CATEGORY_MN},
    {0x1AE0, 0x1AEB, UTF8PROC_CATEGORY_MN},   {0x1B4E, 0x1B4F, UTF8PROC_CATEGORY_PO},
    {0x1B7F, 0x1B7F, UTF8PROC_CATEGORY_PO},   {0x10D69, 0x10D6D, UTF8PROC_CATEGORY_MN},
    {0x10D6E, 0x10D6E, UTF8PROC_CATEGORY_PD}, {0x10ED0, 0x10ED0, UTF8PROC_CATEGORY_PO},
    {0x10EFA, 0x10EFC, UTF8PROC_CATEGORY_MN}, {0x113BB, 0x113C0, UTF8PROC_CATEGORY_MN},
    {0x113CE, 0x113CE, UTF8PROC_CATEGORY_MN}, {0x113D0, 0x113D0, UTF8PROC_CATEGORY_MN},
    {0x113D2, 0x113D2, UTF8PROC_CATEGORY_MN}, {0x113D4, 0x113D5, UTF8PROC_CATEGORY_PO},
    {0x113D7, 0x113D8, UTF8PROC_CATEGORY_PO}, {0x113E1, 0x113E2, UTF8PROC_CATEGORY_MN},
    {0x1171E, 0x1171E, UTF8PROC_CATEGORY_MC}, {0x11B60, 0x11B60, UTF8PROC_CATEGORY_MN},
    {0x11B62, 0x11B64, UTF8PROC_CATEGORY_MN}, {0x11B66, 0x11B66, UTF8PROC_CATEGORY_MN},
    {0x11BE1, 0x11BE1, UTF8PROC_CATEGORY_PO}, {0x11F5A, 0x11F5A, UTF8PROC_CATEGORY_MN},
    {0x1611E, 0x16129, UTF8PROC_CATEGORY_MN}, {0x1612D, 0x1612F, UTF8PROC_CATEGORY_MN},
    {0x16D6D, 0x16D6F, UTF8PROC_CATEGORY_PO}, {0x1E5EE, 0x1E5EF, UTF8PROC_CATEGORY_MN},
    {0x1E5FF, 0x1E5FF, UTF8PROC_CATEGORY_PO}, {0x1E6E3, 0x1E6E3, UTF8PROC_CATEGORY_MN},
    {0x1E6E6, 0x1E6E6, UTF8PROC_CATEGORY_MN}, {0x1E6EE, 0x1E6EF, UTF8PROC_CATEGORY_MN},
    {0x1E6F5, 0x1E6F5, UTF8PROC_CATEGORY_MN},
};

static int category(uint32_t c) {
    int cat = utf8proc_get_property((utf8proc_int32_t)c)->category;
    if (ORION_LIKELY(cat != UTF8PROC_CATEGORY_CN && c != 0x1171E)) return cat;
    if (c < 0x897) return cat;
    for (size_t i = 0; i < ORION_ARRAY_LEN(NEWER); i++)
        if (c >= NEWER[i].lo && c <= NEWER[i].hi) return NEWER[i].cat;
    return cat;
}

static bool is_cased(uint32_t c) {
    int cat = category(c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return true;
    for (size_t i = 0; i < ORION_ARRAY_LEN(CASED_EXTRA); i++)
        if (c >= CASED_EXTRA[i].lo && c <= CASED_EXTRA[i].hi) return true;
    return false;
}

static bool is_case_ignorable(uint32_t c) {
    int cat = category(c);
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
        cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK)
        return true;
    for (size_t i = 0; i < ORION_ARRAY_LEN(IGNORABLE_EXTRA); i++)
        if (c == IGNORABLE_EXTRA[i]) return true;
    return false;
}

/* JavaScript's \s: WhiteSpace and LineTerminator. */
static bool is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

/* Cc, Cf, Co, Cs, except tab, LF and CR (BERT counts those as spaces). */
static bool is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    if (c < 0x20 || c == 0x7F) return true;
    if (c < 0xA0) return c >= 0x80;
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
           cat == UTF8PROC_CATEGORY_CS;
}

static bool is_punct(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    int cat = category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* BERT's CJK ranges as transformers.js applies them (UTF-16 code units: the
 * supplementary-plane ranges can never match). */
static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF);
}

/* Next code point of s[*i..n); invalid UTF-8 gives U+FFFD and skips the
 * maximal ill-formed subpart (at least one byte), as WHATWG decoding does. */
static uint32_t next_cp(const uint8_t *s, size_t n, size_t *i) {
    uint8_t b = s[*i];
    if (b < 0x80) {
        (*i)++;
        return b;
    }
    int need;
    uint32_t cp;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1, cp = b & 0x1Fu;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2, cp = b & 0x0Fu;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3, cp = b & 0x07u;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    size_t j = *i + 1;
    for (int k = 0; k < need; k++, j++) {
        if (j >= n || s[j] < lo || s[j] > hi) {
            *i = j;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[j] & 0x3Fu);
        lo = 0x80, hi = 0xBF;
    }
    *i = j;
    return cp;
}

/* ---- encoding -------------------------------------------------------------------- */

/* Per-call scratch; every buffer grows by doubling. */
typedef struct wp_run {
    const orion__wordpiece *wp;
    int32_t                *ids;   /* (n_max) caller's */
    int32_t                 n_max;
    int64_t                 count; /* ids the text needs so far */
    uint32_t               *chunk; /* (cap_chunk) cleaned code points of a chunk */
    uint32_t               *low;   /* (cap_low) lower-cased */
    uint32_t               *nfd;   /* (cap_nfd) decomposed, ordered, marks removed */
    size_t                  n_chunk, cap_chunk, cap_low, cap_nfd;
    char                   *word;  /* (cap_word) a word's UTF-8 */
    uint32_t               *off;   /* (cap_off) byte offset of each character, + end */
    int32_t                *piece; /* (cap_piece) a word's piece ids */
    uint32_t               *tmp;   /* (cap_tmp) canonical ordering */
    size_t                  cap_word, cap_off, cap_piece, cap_tmp;
    bool                    wide;  /* the chunk holds a non-ASCII character */
    bool                    nomem;
} wp_run;

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64, bytes;
    while (c < need) c *= 2;
    if (!orion__mul_ok(c, elem, &bytes)) return false;
    void *q = orion__realloc(*p, bytes);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static void emit(wp_run *r, int32_t id) {
    if (r->count < r->n_max) r->ids[r->count] = id;
    r->count++;
}

static size_t put_utf8(char *d, uint32_t c) {
    if (c < 0x80) {
        d[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        d[0] = (char)(0xC0 | (c >> 6));
        d[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | (c >> 12));
        d[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        d[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (c >> 18));
    d[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    d[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Greedy longest-match WordPiece over one word of n code points. */
static void encode_word(wp_run *r, const uint32_t *cps, size_t n) {
    const orion__wordpiece *wp = r->wp;
    if (n == 0) return;
    if (n > (size_t)wp->params.max_chars_per_word) {
        emit(r, wp->unk);
        return;
    }
    if (!grow((void **)&r->word, &r->cap_word, 4 * n, 1) || !grow((void **)&r->off, &r->cap_off, n + 1, 4)) {
        r->nomem = true;
        return;
    }
    if (!grow((void **)&r->piece, &r->cap_piece, n, 4)) {
        r->nomem = true;
        return;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        r->off[i] = (uint32_t)len;
        len += put_utf8(r->word + len, cps[i]);
    }
    r->off[n] = (uint32_t)len;
    size_t n_piece = 0, start = 0;
    while (start < n) {
        size_t end = n;
        while (end > start && r->off[end] - r->off[start] > wp->max_key) end--;
        int32_t id = -1;
        for (; end > start; end--) {
            id = find(wp, r->word + r->off[start], r->off[end] - r->off[start], start > 0);
            if (id >= 0) break;
        }
        if (id < 0) {
            emit(r, wp->unk);
            return;
        }
        r->piece[n_piece++] = id;
        start = end;
    }
    for (size_t i = 0; i < n_piece; i++) emit(r, r->piece[i]);
}

/* σ or ς for the Σ at chunk[i]: final when a cased letter comes before it and
 * none after, skipping case-ignorable characters. A character both cased and
 * case-ignorable (ʰ) is skipped, as V8/ICU does (checked by the test). */
static uint32_t lower_sigma(const uint32_t *c, size_t n, size_t i) {
    bool before = false, after = false;
    for (size_t j = i; j-- > 0;) {
        if (is_case_ignorable(c[j])) continue;
        before = is_cased(c[j]);
        break;
    }
    for (size_t j = i + 1; j < n; j++) {
        if (is_case_ignorable(c[j])) continue;
        after = is_cased(c[j]);
        break;
    }
    return before && !after ? 0x3C2 : 0x3C3;
}

static int ccc(uint32_t c) {
    return c < 0x300 ? 0 : utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
}

/* Canonical ordering: a stable sort of each run of non-starters by combining
 * class; insertion sort for short runs, counting sort for long ones so that
 * a hostile text stays linear. */
static bool canonical_order(wp_run *r, uint32_t *c, size_t n) {
    for (size_t a = 0; a < n;) {
        if (ccc(c[a]) == 0) {
            a++;
            continue;
        }
        size_t b = a + 1;
        while (b < n && ccc(c[b]) != 0) b++;
        if (b - a <= 16) {
            for (size_t i = a + 1; i < b; i++) {
                uint32_t x = c[i];
                int cx = ccc(x);
                size_t j = i;
                for (; j > a && ccc(c[j - 1]) > cx; j--) c[j] = c[j - 1];
                c[j] = x;
            }
        } else {
            if (!grow((void **)&r->tmp, &r->cap_tmp, b - a, 4)) return false;
            size_t start[257] = {0};
            for (size_t i = a; i < b; i++) start[ccc(c[i]) + 1]++;
            for (int k = 1; k <= 256; k++) start[k] += start[k - 1];
            for (size_t i = a; i < b; i++) r->tmp[start[ccc(c[i])]++] = c[i];
            memcpy(c + a, r->tmp, sizeof *c * (b - a));
        }
        a = b;
    }
    return true;
}

/* Normalizes the current chunk (lower-case, NFD, marks removed), splits it at
 * punctuation and encodes its words. */
static void flush_chunk(wp_run *r) {
    size_t n = r->n_chunk;
    r->n_chunk = 0;
    if (n == 0 || r->nomem) return;
    const orion__wordpiece_params *p = &r->wp->params;
    uint32_t *cur = r->chunk;

    bool wide = r->wide;
    r->wide = false;
    if (!wide) { /* the common case, all ASCII: lower-case in place; NFD is the identity */
        if (p->lowercase)
            for (size_t i = 0; i < n; i++) cur[i] += (cur[i] >= 'A' && cur[i] <= 'Z') ? 32 : 0;
        goto split;
    }
    if (p->lowercase) {
        if (!grow((void **)&r->low, &r->cap_low, 2 * n, 4)) goto nomem;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t c = cur[i];
            if (c < 0x80) r->low[m++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
            else if (c == 0x130) r->low[m++] = 'i', r->low[m++] = 0x307;
            else if (c == 0x3A3) r->low[m++] = lower_sigma(cur, n, i);
            else r->low[m++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        }
        cur = r->low;
        n = m;
    }
    if (p->strip_accents) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t c = cur[i];
            if (!grow((void **)&r->nfd, &r->cap_nfd, m + 8, 4)) goto nomem;
            if (c < 0xC0) {
                r->nfd[m++] = c;
                continue;
            }
            utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, (utf8proc_int32_t *)r->nfd + m, 8,
                                                         UTF8PROC_DECOMPOSE, NULL);
            if (k < 0 || k > 8) r->nfd[m++] = c; /* cannot happen for a scalar value */
            else m += (size_t)k;
        }
        /* Marks go first: the canonical ordering of what remains is the same
         * (a stable sort keeps the relative order of any subset), and the
         * non-starters left to order are few (Mc with a combining class). */
        size_t w = 0;
        for (size_t i = 0; i < m; i++)
            if (r->nfd[i] < 0x300 || category(r->nfd[i]) != UTF8PROC_CATEGORY_MN) r->nfd[w++] = r->nfd[i];
        if (!canonical_order(r, r->nfd, w)) goto nomem;
        cur = r->nfd;
        n = w;
    }
split:;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cur[i];
        if (is_space(c)) {
            encode_word(r, cur + start, i - start);
            start = i + 1;
        } else if (is_punct(c)) {
            encode_word(r, cur + start, i - start);
            encode_word(r, cur + i, 1);
            start = i + 1;
        }
    }
    encode_word(r, cur + start, n - start);
    return;
nomem:
    r->nomem = true;
}

static void push_cp(wp_run *r, uint32_t c) {
    if (r->n_chunk == r->cap_chunk && !grow((void **)&r->chunk, &r->cap_chunk, r->n_chunk + 1, 4)) {
        r->nomem = true;
        return;
    }
    r->chunk[r->n_chunk++] = c;
    r->wide |= c >= 0x80;
}

/* One section: text between special tokens. */
static void encode_section(wp_run *r, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n && !r->nomem) {
        uint32_t c = next_cp(s, n, &i);
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_space(c)) {
            flush_chunk(r);
        } else if (r->wp->params.chinese_chars && is_cjk(c)) {
            flush_chunk(r);
            push_cp(r, c);
            flush_chunk(r);
        } else {
            push_cp(r, c);
        }
    }
    flush_chunk(r);
}

/* The longest special token at s[0..n), or -1. */
static int32_t match_special(const orion__wordpiece *wp, const uint8_t *s, size_t n, size_t *len) {
    int32_t best = -1;
    size_t best_len = 0;
    for (int32_t k = 0; k < wp->n_specials; k++) {
        const wp_special *sp = &wp->specials[k];
        if (sp->len <= n && sp->len > best_len && memcmp(s, sp->text, sp->len) == 0) {
            best = k;
            best_len = sp->len;
        }
    }
    *len = best_len;
    return best < 0 ? -1 : wp->specials[best].id;
}

orion_status orion__wordpiece_encode(const orion__wordpiece *wp, const char *text, size_t len, int32_t *ids,
                                     int32_t n_max, int32_t *n_out) {
    if (n_out) *n_out = 0;
    if (!wp || !n_out || (!text && len > 0) || n_max < 0 || (!ids && n_max > 0))
        return orion__fail(ORION_ERR_INVALID_ARG, "wordpiece_encode: bad arguments");
    if (len > (size_t)INT32_MAX) /* at most one id per byte: the count must fit */
        return orion__fail(ORION_ERR_RANGE, "wordpiece_encode: a text of %zu bytes is too long", len);
    wp_run r;
    memset(&r, 0, sizeof r);
    r.wp = wp;
    r.ids = ids;
    r.n_max = n_max;
    const uint8_t *s = (const uint8_t *)text;
    size_t sec = 0;
    if (!wp->params.plain_specials && wp->n_specials > 0) {
        for (size_t i = 0; i < len && !r.nomem;) {
            size_t mlen;
            int32_t id;
            if (!(wp->first[s[i] >> 3] & (1u << (s[i] & 7))) || (id = match_special(wp, s + i, len - i, &mlen)) < 0) {
                i++;
                continue;
            }
            encode_section(&r, s + sec, i - sec);
            emit(&r, id);
            i += mlen;
            sec = i;
        }
    }
    if (!r.nomem && sec < len) encode_section(&r, s + sec, len - sec);
    orion__free(r.chunk);
    orion__free(r.low);
    orion__free(r.nfd);
    orion__free(r.word);
    orion__free(r.off);
    orion__free(r.piece);
    orion__free(r.tmp);
    if (r.nomem) return orion__fail(ORION_ERR_NOMEM, "wordpiece_encode: out of memory");
    *n_out = (int32_t)r.count;
    return ORION_OK;
}
