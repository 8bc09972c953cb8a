/*
 * test_tokenizer.c — orion's SentencePiece tokenizer against SentencePiece
 * itself, and its two vocabulary loaders against each other.
 *
 * tests/ref/spm_tokenize.py (Debian's python3-sentencepiece) reads the real
 * Llama 2 tokenizer.model from ../shared/models/llama2-tokenizer, writes a
 * tiny GGUF model carrying that vocabulary (pieces, scores and types taken
 * through sentencepiece's API), generates a deterministic corpus of about
 * 3,500 texts in 18 categories (ASCII, whitespace runs, punctuation, digits,
 * accented Latin, Greek, Cyrillic, CJK, emoji and ZWJ sequences, byte
 * fallback, long words, empty and single characters, NFKC-sensitive and
 * control-piece-looking text, random code points of all planes, indented
 * source code, mixtures) and stores sp.encode(text) for each.
 * The Llama 2 normalizer is the identity, so texts go to both unchanged.
 * This test checks:
 *   - orion_llm_tokenize(add_bos) gives BOS + sp.encode(text) for every text
 *     (mismatches are counted and shown per category; any fails the test);
 *   - decoding: the concatenated orion_llm_token_to_piece of the ids, less
 *     the one leading space the prefix added, is the text again, for every
 *     text SentencePiece round-trips (all but those containing U+2581);
 *   - the stories260K model's vocabulary loaded from the llama2.c
 *     tokenizer (tok512.bin) and from stories260K.gguf gives identical ids on
 *     the whole corpus, and both round-trip it through their byte pieces.
 * The script needs python3 with sentencepiece (scripts/setup.sh installs
 * it); without it the test fails, it does not skip.
 */
#include "test_util.h"

#include <orion.h>

#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CATS 32
#define MAX_IDS 4096

typedef struct text_ref {
    uint32_t       cat;
    bool           round_trips; /* sp.decode(sp.encode(text)) == text */
    const char    *text;        /* not NUL-terminated: may hold NUL bytes */
    size_t         len;
    const int32_t *ids;         /* BOS + sp.encode(text), unaligned-safe copy */
    uint32_t       n_ids;
} text_ref;

static char      work_dir[256], shared_model_dir[1024];
static bool      ref_ok;
static uint8_t  *corpus_buf;
static text_ref *texts;
static uint32_t  n_texts, n_cats;
static char      cat_names[MAX_CATS][32];

/* ---- running the reference script ------------------------------------------ */



static uint8_t *slurp(const char *path, size_t *len) {
    return test_read_file(path, len);
}

static bool take_u32(const uint8_t *buf, size_t len, size_t *pos, uint32_t *v) {
    if (len - *pos < 4) return false;
    memcpy(v, buf + *pos, 4);
    *pos += 4;
    return true;
}

/* corpus.bin: see spm_tokenize.py. */
static bool parse_corpus(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/corpus.bin", work_dir);
    size_t len = 0, pos = 0;
    corpus_buf = slurp(path, &len);
    if (!corpus_buf || !take_u32(corpus_buf, len, &pos, &n_cats) || n_cats > MAX_CATS) return false;
    for (uint32_t c = 0; c < n_cats; c++) {
        uint32_t n;
        if (!take_u32(corpus_buf, len, &pos, &n) || n >= sizeof cat_names[0] || len - pos < n) return false;
        memcpy(cat_names[c], corpus_buf + pos, n);
        cat_names[c][n] = '\0';
        pos += n;
    }
    if (!take_u32(corpus_buf, len, &pos, &n_texts) || n_texts > 100000) return false;
    texts = calloc(n_texts, sizeof *texts);
    if (!texts) return false;
    for (uint32_t i = 0; i < n_texts; i++) {
        text_ref *t = &texts[i];
        uint32_t flags, n;
        if (!take_u32(corpus_buf, len, &pos, &t->cat) || t->cat >= n_cats || !take_u32(corpus_buf, len, &pos, &flags) ||
            !take_u32(corpus_buf, len, &pos, &n) || len - pos < n)
            return false;
        t->round_trips = flags & 1;
        t->text = (const char *)corpus_buf + pos;
        t->len = n;
        pos += n;
        if (!take_u32(corpus_buf, len, &pos, &t->n_ids) || t->n_ids > MAX_IDS || (len - pos) / 4 < t->n_ids)
            return false;
        int32_t *ids = malloc(sizeof(int32_t) * (t->n_ids ? t->n_ids : 1));
        if (!ids) return false;
        memcpy(ids, corpus_buf + pos, 4 * (size_t)t->n_ids);
        t->ids = ids;
        pos += 4 * (size_t)t->n_ids;
    }
    return pos == len;
}

static int setup(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) return 0; /* no models: the tests skip */
    snprintf(shared_model_dir, sizeof shared_model_dir, "%s/models", shared);
    snprintf(work_dir, sizeof work_dir, "/tmp/orion_tokenizer_XXXXXX");
    if (!mkdtemp(work_dir)) return -1;
    char args[2048];
    snprintf(args, sizeof args, "'%s/llama2-tokenizer/tokenizer.model' '%s'", shared_model_dir, work_dir);
    ref_ok = test_run_ref_script("spm_tokenize.py", args, "sentencepiece (Debian: python3-sentencepiece)") &&
             parse_corpus();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (uint32_t i = 0; texts && i < n_texts; i++) free((void *)texts[i].ids);
    free(texts);
    free(corpus_buf);
    if (work_dir[0]) test_remove_flat_dir(work_dir);
    return 0;
}

static void require_ref(void) {
    if (!shared_model_dir[0]) skip();
    if (!ref_ok)
        fail_msg("the SentencePiece reference did not run: install python3-sentencepiece with scripts/setup.sh "
                 "(see the messages above)");
}

/* ---- helpers ------------------------------------------------------------------- */

static orion_llm *load(const char *path, const char *tokenizer) {
    orion_llm_params p = orion_llm_default_params();
    p.n_ctx = 64;
    p.n_threads = 1;
    p.tokenizer = tokenizer;
    orion_llm *llm = NULL;
    orion_status st = orion_llm_load(path, &p, &llm);
    if (st != ORION_OK) fail_msg("orion_llm_load(%s): %s: %s", path, orion_status_str(st), orion_last_error());
    return llm;
}

/* ids of text (with BOS) into out[MAX_IDS]; returns the count. */
static int32_t tokenize(const orion_llm *llm, const text_ref *t, int32_t *out) {
    int32_t n = -1;
    orion_status st = orion_llm_tokenize(llm, t->text, t->len, true, out, MAX_IDS, &n);
    if (st != ORION_OK) fail_msg("tokenize: %s", orion_last_error());
    return n;
}

/* The text back from ids[1..n) (after BOS); the leading space the prefix
 * added is dropped. Returns the length written to out (size cap). */
static size_t detokenize(const orion_llm *llm, const int32_t *ids, int32_t n, char *out, size_t cap) {
    size_t len = 0;
    for (int32_t i = 1; i < n; i++) {
        char piece[256];
        size_t pn = orion_llm_token_to_piece(llm, ids[i], piece, sizeof piece);
        assert_true(pn <= sizeof piece);
        assert_true(len + pn <= cap);
        memcpy(out + len, piece, pn);
        len += pn;
    }
    if (len > 0 && out[0] == ' ') {
        memmove(out, out + 1, len - 1);
        len--;
    }
    return len;
}

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') putchar(c);
        else printf("\\x%02x", c);
    }
    if (n > 120) printf("...");
}

static void print_ids(const char *label, const int32_t *ids, int32_t n) {
    printf("      %s (%d):", label, n);
    for (int32_t i = 0; i < n && i < 24; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 24 ? " ..." : "");
}

/* ---- tests --------------------------------------------------------------------- */

static void test_llama2_vs_sentencepiece(void **state) {
    (void)state;
    require_ref();
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.gguf", work_dir);
    orion_llm *llm = load(path, NULL);
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    assert_int_equal(in.n_vocab, 32000);
    assert_int_equal(in.bos, 1);
    assert_int_equal(in.eos, 2);

    int32_t *ids = malloc(sizeof(int32_t) * MAX_IDS);
    assert_non_null(ids);
    uint32_t total[MAX_CATS] = {0}, bad[MAX_CATS] = {0}, n_bad = 0;
    uint64_t n_tokens = 0;
    for (uint32_t i = 0; i < n_texts; i++) {
        const text_ref *t = &texts[i];
        int32_t n = tokenize(llm, t, ids);
        n_tokens += (uint64_t)n;
        total[t->cat]++;
        if ((uint32_t)n == t->n_ids && memcmp(ids, t->ids, 4 * (size_t)n) == 0) {
            /* without BOS: the same ids less the first */
            int32_t m = -1;
            assert_int_equal(orion_llm_tokenize(llm, t->text, t->len, false, ids, MAX_IDS, &m), ORION_OK);
            assert_int_equal(m, n - 1);
            assert_memory_equal(ids, t->ids + 1, 4 * (size_t)m);
            continue;
        }
        if (bad[t->cat]++ < 3) {
            printf("    mismatch [%s] \"", cat_names[t->cat]);
            print_escaped(t->text, t->len);
            printf("\"\n");
            print_ids("sentencepiece", t->ids, (int32_t)t->n_ids);
            print_ids("orion        ", ids, n);
        }
        n_bad++;
    }
    printf("  Llama 2 vocabulary, orion vs SentencePiece: %u texts, %llu tokens, %u mismatches\n", n_texts,
           (unsigned long long)n_tokens, n_bad);
    for (uint32_t c = 0; c < n_cats; c++) printf("    %-16s %5u texts %5u mismatches\n", cat_names[c], total[c], bad[c]);
    assert_true(n_texts >= 2000);

    /* a buffer too small reports the size it needs */
    const char *s = "Hello world, this is a test.";
    int32_t small[2], need = 0;
    assert_int_equal(orion_llm_tokenize(llm, s, strlen(s), true, small, 2, &need), ORION_ERR_RANGE);
    assert_true(need > 2);

    /* the model behind the vocabulary is valid: zero weights give zero logits */
    float *logits = malloc(sizeof(float) * 32000);
    assert_non_null(logits);
    int32_t tok[2] = {1, 15043};
    assert_int_equal(orion_llm_eval(llm, tok, 2, 0, logits, false), ORION_OK);
    for (int v = 0; v < 32000; v++) assert_true(logits[v] == 0.0f);
    free(logits);
    free(ids);
    orion_llm_free(llm);
    assert_int_equal(n_bad, 0);
}

static void test_llama2_decode(void **state) {
    (void)state;
    require_ref();
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.gguf", work_dir);
    orion_llm *llm = load(path, NULL);
    int32_t *ids = malloc(sizeof(int32_t) * MAX_IDS);
    size_t cap = 1 << 16;
    char *out = malloc(cap);
    assert_non_null(ids);
    assert_non_null(out);
    uint32_t checked = 0, bad = 0;
    for (uint32_t i = 0; i < n_texts; i++) {
        const text_ref *t = &texts[i];
        if (!t->round_trips) continue;
        int32_t n = tokenize(llm, t, ids);
        size_t len = detokenize(llm, ids, n, out, cap);
        checked++;
        if (len == t->len && memcmp(out, t->text, len) == 0) continue;
        if (bad++ < 5) {
            printf("    no round trip [%s] \"", cat_names[t->cat]);
            print_escaped(t->text, t->len);
            printf("\" -> \"");
            print_escaped(out, len);
            printf("\"\n");
        }
    }
    printf("  Llama 2 vocabulary, decoding: %u texts SentencePiece round-trips, %u do not come back\n", checked, bad);
    free(out);
    free(ids);
    orion_llm_free(llm);
    assert_true(checked > 2000);
    assert_int_equal(bad, 0);
}

static void test_stories_llama2c_vs_gguf(void **state) {
    (void)state;
    require_ref();
    char bin[1200], tok[1200], gguf[1200];
    snprintf(bin, sizeof bin, "%s/stories260K/stories260K.bin", shared_model_dir);
    snprintf(tok, sizeof tok, "%s/stories260K/tok512.bin", shared_model_dir);
    snprintf(gguf, sizeof gguf, "%s/stories260K/stories260K.gguf", shared_model_dir);
    orion_llm *a = load(bin, tok), *b = load(gguf, NULL);
    int32_t *ia = malloc(sizeof(int32_t) * MAX_IDS), *ib = malloc(sizeof(int32_t) * MAX_IDS);
    size_t cap = 1 << 16;
    char *out = malloc(cap);
    assert_non_null(ia);
    assert_non_null(ib);
    assert_non_null(out);
    uint32_t differ = 0, no_rt_a = 0, no_rt_b = 0, checked = 0;
    uint64_t n_tokens = 0;
    for (uint32_t i = 0; i < n_texts; i++) {
        const text_ref *t = &texts[i];
        int32_t na = tokenize(a, t, ia), nb = tokenize(b, t, ib);
        n_tokens += (uint64_t)na;
        if (na != nb || memcmp(ia, ib, 4 * (size_t)na) != 0) {
            if (differ++ < 3) {
                printf("    llama2.c and GGUF vocabularies differ on [%s] \"", cat_names[t->cat]);
                print_escaped(t->text, t->len);
                printf("\"\n");
                print_ids("tok512.bin      ", ia, na);
                print_ids("stories260K.gguf", ib, nb);
            }
        }
        if (!t->round_trips) continue;
        checked++;
        size_t len = detokenize(a, ia, na, out, cap);
        if (len != t->len || memcmp(out, t->text, len) != 0) no_rt_a++;
        len = detokenize(b, ib, nb, out, cap);
        if (len != t->len || memcmp(out, t->text, len) != 0) no_rt_b++;
    }
    printf("  stories260K, tok512.bin vs stories260K.gguf: %u texts, %llu tokens, %u differ; "
           "round trip failures %u / %u of %u\n",
           n_texts, (unsigned long long)n_tokens, differ, no_rt_a, no_rt_b, checked);
    free(out);
    free(ia);
    free(ib);
    orion_llm_free(a);
    orion_llm_free(b);
    assert_int_equal(differ, 0);
    assert_int_equal(no_rt_a, 0);
    assert_int_equal(no_rt_b, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_vs_sentencepiece),
        cmocka_unit_test(test_llama2_decode),
        cmocka_unit_test(test_stories_llama2c_vs_gguf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
