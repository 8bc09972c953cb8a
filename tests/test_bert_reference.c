/*
 * test_bert_reference.c — orion's BERT sentence encoder (bert.c, embed.c)
 * against an independent PyTorch reference.
 *
 * tests/ref/bert_ref.py, written from the BERT paper rather than from
 * orion's code, builds a BertModel of all-MiniLM-L6-v2's exact shape with
 * seeded random weights and saves it as a sentence-transformers directory
 * (safetensors written by hand, bert-base-uncased's vocab.txt, mean pooling
 * and Normalize modules). The test converts it with orion_convert (f32),
 * tokenizes a few hundred generated texts of varied length with orion
 * (including the empty text and texts past the 256-piece truncation),
 * writes the ids, and has the script compute float64 embeddings of those
 * same ids (batched with a padding mask). Then:
 *   - batch 32 (length-sorted) and batch 1: every text's vector has cosine
 *     >= COS_MIN with the reference, also after the mean over all texts is
 *     removed (random models share a large common direction, see
 *     bert_ref.py); batched and unbatched agree within BATCH_DIFF;
 *   - CLS pooling and normalize = 0 against the reference's;
 *   - weights converted to f16, q8_0 and q4_0 stay close to the reference;
 *   - the hyper-parameters, tokens (truncation, [CLS]/[SEP]) and info;
 *   - bad input: a GGUF missing a tensor, a decoder file, bad parameters and
 *     bad ids give clear errors and leak nothing; every allocation of a load
 *     and of a call failed in turn gives a clean error and no leak;
 *   - `orion embed` (ORION_BIN) prints the same vectors as the library.
 * The measured numbers are printed. Needs python3 with torch and numpy
 * (Debian's python3-torch, python3-numpy); without them the test fails.
 */
#include "test_util.h"

#include <orion.h>

#include "core/core.h" /* orion__alloc_fail_after */

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The bar for f32 weights. */
#define COS_MIN 0.99999
/* Same bar for the vectors with the mean over all texts removed. */
#define CENTERED_COS_MIN 0.9999
/* Batched (length-sorted, packed) against one text at a time: max |diff|
 * of the unit vectors. Only summation order differs. */
#define BATCH_DIFF 2e-5

/* Texts: mostly short, some of 10-25 words, two past the truncation. The
 * PyTorch reference dominates the run time (Debian's torch links the
 * reference BLAS: about 1.5 GFLOP/s), so the token count is kept near 2500. */
#define N_TEXTS 200
/* With ORION_FORCE_REF=1 (scalar kernels) or in a sanitizer build, where
 * a forward pass costs 10-50x more: fewer texts, still including the
 * empty one, a one-word one and texts 5 and 60, past the truncation. */
#define N_TEXTS_SLOW 64
#define N_OPTION_TEXTS 48 /* CLS and normalize = 0 runs */
#define DIM 384
#define MAX_TOKENS 256
#define N_THREADS 2

static char    work_dir[64], model_dir[128], gguf_path[160];
static bool    ref_ok;
static int     n_texts;
static char   *texts[N_TEXTS];
static int32_t *ids[N_TEXTS], n_ids[N_TEXTS];
/* reference vectors, (n_texts, DIM) each: mean+norm, mean, cls+norm, cls */
enum { REF_MEAN_NORM, REF_MEAN, REF_CLS_NORM, REF_CLS, N_REFS };
static double *ref[N_REFS];

static double orion_test_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool env_flag(const char *name) {
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}

/* ---- texts ------------------------------------------------------------------------------- */

static const char *const words[] = {
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "sentence", "embedding", "model", "runs",
    "locally", "on", "a", "small", "computer", "with", "two", "cores", "and", "answers", "questions", "about",
    "documents", "café", "naïve", "résumé", "Zürich", "東京", "北京", "unbelievably", "transformers", "tokenization",
    "WordPiece", "hello", "world", "!", "?", ",", ".", "(", ")", "42", "3.14", "2026", "e-mail", "don't", "o'clock",
    "ÉCOLE", "Straße", "señor", "multilingual", "antidisestablishmentarianism", "😀", "#hashtag", "@user",
    "https://example.com/a?b=c", "x", "y", "z", "supercalifragilisticexpialidocious", "Ωmega", "δ", "ü",
};

static char *make_text(test_rng *r, int i) {
    int n_words;
    if (i == 0) return strdup("");
    if (i == 1) n_words = 1;
    else if (i % 100 == 5 || i % 100 == 60) n_words = 200 + (int)(test_rng_uniform(r) * 60); /* past the truncation */
    else if (i % 25 == 3) n_words = 10 + (int)(test_rng_uniform(r) * 16);
    else n_words = 1 + (int)(test_rng_uniform(r) * 6);
    size_t cap = (size_t)n_words * 48 + 1, len = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    for (int w = 0; w < n_words; w++) {
        const char *word = words[test_rng_u64(r) % (sizeof words / sizeof words[0])];
        len += (size_t)snprintf(s + len, cap - len, "%s%s", w ? " " : "", word);
    }
    return s;
}

/* ---- setup: the model, the ids, the reference ------------------------------------------- */

static bool write_ids(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    int32_t n = n_texts;
    bool ok = fwrite(&n, 4, 1, f) == 1;
    for (int i = 0; i < n_texts && ok; i++)
        ok = fwrite(&n_ids[i], 4, 1, f) == 1 && fwrite(ids[i], 4, (size_t)n_ids[i], f) == (size_t)n_ids[i];
    return fclose(f) == 0 && ok;
}

static bool read_refs(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = true;
    for (int r = 0; r < N_REFS && ok; r++) {
        ref[r] = malloc(sizeof(double) * (size_t)n_texts * DIM);
        ok = ref[r] && fread(ref[r], sizeof(double), (size_t)n_texts * DIM, f) == (size_t)n_texts * DIM;
    }
    ok = ok && fgetc(f) == EOF;
    fclose(f);
    return ok;
}

static orion_embedder *load(const char *path, int batch, orion_pooling pooling, int normalize) {
    orion_embed_params p = orion_embed_default_params();
    p.n_threads = N_THREADS;
    p.batch_size = batch;
    p.pooling = pooling;
    p.normalize = normalize;
    orion_embedder *e = NULL;
    orion_status st = orion_embed_load(path, &p, &e);
    if (st != ORION_OK) fail_msg("orion_embed_load(%s): %s: %s", path, orion_status_str(st), orion_last_error());
    return e;
}

static int setup(void **state) {
    (void)state;
    n_texts = env_flag("ORION_FORCE_REF") ? N_TEXTS_SLOW : N_TEXTS;
#ifdef ORION_SANITIZED
    n_texts = N_TEXTS_SLOW;
#endif
    snprintf(work_dir, sizeof work_dir, "/tmp/orion_bert_ref_XXXXXX");
    if (!mkdtemp(work_dir)) return -1;
    snprintf(model_dir, sizeof model_dir, "%s/model", work_dir);
    snprintf(gguf_path, sizeof gguf_path, "%s/f32.gguf", work_dir);
    test_rng r = {20261126};
    for (int i = 0; i < n_texts; i++) texts[i] = make_text(&r, i);
    char arg[1100];
    snprintf(arg, sizeof arg, "make '%s'", model_dir);
    if (!test_run_ref_script("bert_ref.py", arg, "torch and numpy (Debian: python3-torch python3-numpy)")) return 0;
    orion_convert_params cp = orion_convert_default_params();
    cp.type = ORION_TYPE_F32;
    cp.n_threads = N_THREADS;
    orion_status st = orion_convert(model_dir, gguf_path, &cp);
    if (st != ORION_OK) {
        fprintf(stderr, "orion_convert: %s\n", orion_last_error());
        return 0;
    }
    orion_embed_params p = orion_embed_default_params();
    orion_embedder *e = NULL;
    if (orion_embed_load(gguf_path, &p, &e) != ORION_OK) {
        fprintf(stderr, "orion_embed_load: %s\n", orion_last_error());
        return 0;
    }
    for (int i = 0; i < n_texts; i++) {
        ids[i] = malloc(sizeof(int32_t) * MAX_TOKENS);
        if (orion_embed_tokenize(e, texts[i], strlen(texts[i]), ids[i], MAX_TOKENS, &n_ids[i]) != ORION_OK) {
            fprintf(stderr, "orion_embed_tokenize(text %d): %s\n", i, orion_last_error());
            orion_embed_free(e);
            return 0;
        }
    }
    orion_embed_free(e);
    char ids_path[256], out_path[256];
    snprintf(ids_path, sizeof ids_path, "%s/ids.bin", work_dir);
    snprintf(out_path, sizeof out_path, "%s/ref.bin", work_dir);
    if (!write_ids(ids_path)) return 0;
    snprintf(arg, sizeof arg, "embed '%s' '%s' '%s'", model_dir, ids_path, out_path);
    ref_ok = test_run_ref_script("bert_ref.py", arg, "torch and numpy") && read_refs(out_path);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < N_TEXTS; i++) {
        free(texts[i]);
        free(ids[i]);
    }
    for (int r = 0; r < N_REFS; r++) free(ref[r]);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", work_dir);
    return 0;
}

static void require_ref(void) {
    if (!ref_ok)
        fail_msg("the PyTorch reference did not run: install python3-torch and python3-numpy with "
                 "scripts/setup.sh (see the messages above)");
}

/* ---- comparing ------------------------------------------------------------------------------ */

static double cosine(const float *a, const double *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

typedef struct agreement {
    double min_cos, max_cos, min_centered;
    int    worst;
} agreement;

/* Cosine of each of n vectors with the reference, plain and with the mean
 * over the n texts (of each side) removed. */
static agreement compare(const float *got, const double *want, int n) {
    agreement a = {2, -2, 2, -1};
    double *mg = calloc(DIM, sizeof(double)), *mw = calloc(DIM, sizeof(double));
    float *cg = malloc(sizeof(float) * DIM);
    double *cw = malloc(sizeof(double) * DIM);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < DIM; c++) {
            mg[c] += got[(size_t)i * DIM + c] / n;
            mw[c] += want[(size_t)i * DIM + c] / n;
        }
    for (int i = 0; i < n; i++) {
        double cs = cosine(got + (size_t)i * DIM, want + (size_t)i * DIM, DIM);
        if (!(cs >= a.min_cos)) a.min_cos = cs, a.worst = i;
        if (cs > a.max_cos) a.max_cos = cs;
        for (int c = 0; c < DIM; c++) {
            cg[c] = (float)(got[(size_t)i * DIM + c] - mg[c]);
            cw[c] = want[(size_t)i * DIM + c] - mw[c];
        }
        double cc = cosine(cg, cw, DIM);
        if (!(cc >= a.min_centered)) a.min_centered = cc;
    }
    free(mg), free(mw), free(cg), free(cw);
    return a;
}

static void check_agreement(const char *what, const float *got, const double *want, int n) {
    agreement a = compare(got, want, n);
    printf("  %-24s 1 - cosine: max %.2e min %.2e (worst: text %d, %d ids); centered: max %.2e\n", what,
           1 - a.min_cos, 1 - a.max_cos, a.worst, a.worst >= 0 ? n_ids[a.worst] : 0, 1 - a.min_centered);
    if (!(a.min_cos >= COS_MIN)) fail_msg("%s: text %d has cosine %.9f < %g", what, a.worst, a.min_cos, COS_MIN);
    if (!(a.min_centered >= CENTERED_COS_MIN))
        fail_msg("%s: centered cosine %.9f < %g", what, a.min_centered, CENTERED_COS_MIN);
}

static const char *const *text_ptrs(void) {
    return (const char *const *)texts;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_info_and_tokens(void **state) {
    (void)state;
    require_ref();
    orion_embedder *e = load(gguf_path, 32, ORION_POOL_DEFAULT, -1);
    orion_embed_info in;
    orion_embed_get_info(e, &in);
    assert_string_equal(in.arch, "bert");
    assert_int_equal(in.dim, DIM);
    assert_int_equal(in.n_layer, 6);
    assert_int_equal(in.n_head, 12);
    assert_int_equal(in.n_embd, 384);
    assert_int_equal(in.n_ff, 1536);
    assert_int_equal(in.n_vocab, 30522);
    assert_int_equal(in.n_ctx_train, 512);
    assert_int_equal(in.max_tokens, MAX_TOKENS);
    assert_int_equal(in.pooling, ORION_POOL_MEAN);
    assert_true(in.normalize);
    assert_int_equal(in.type, ORION_TYPE_F32);
    assert_true(in.weight_bytes > 80u << 20 && in.weight_bytes < 100u << 20);
    assert_true(in.scratch_bytes > 0);
    printf("  weights %.1f MiB, scratch %.1f MiB (batch 32 x %d tokens)\n", in.weight_bytes / 1048576.0,
           in.scratch_bytes / 1048576.0, in.max_tokens);
    /* [CLS] ... [SEP]; the empty text is just the two; long texts stop at 256 */
    int n_trunc = 0;
    for (int i = 0; i < n_texts; i++) {
        assert_true(n_ids[i] >= 2 && n_ids[i] <= MAX_TOKENS);
        assert_int_equal(ids[i][0], 101);
        assert_int_equal(ids[i][n_ids[i] - 1], 102);
        n_trunc += n_ids[i] == MAX_TOKENS;
    }
    assert_int_equal(n_ids[0], 2);
    assert_true(n_trunc >= 2);
    /* a buffer too small: RANGE and the size needed */
    int32_t small[4], need = 0;
    assert_int_equal(orion_embed_tokenize(e, texts[5], strlen(texts[5]), small, 4, &need), ORION_ERR_RANGE);
    assert_int_equal(need, MAX_TOKENS);
    /* a smaller max_tokens truncates there */
    orion_embed_free(e);
    orion_embed_params p = orion_embed_default_params();
    p.max_tokens = 16;
    assert_int_equal(orion_embed_load(gguf_path, &p, &e), ORION_OK);
    int32_t buf[MAX_TOKENS];
    assert_int_equal(orion_embed_tokenize(e, texts[5], strlen(texts[5]), buf, MAX_TOKENS, &need), ORION_OK);
    assert_int_equal(need, 16);
    assert_memory_equal(buf, ids[5], sizeof(int32_t) * 15);
    assert_int_equal(buf[15], 102);
    orion_embed_free(e);
}

static float *batched_out;

static void test_batched_and_unbatched(void **state) {
    (void)state;
    require_ref();
    const size_t bytes = sizeof(float) * (size_t)n_texts * DIM;
    float *b1 = malloc(bytes);
    batched_out = malloc(bytes);
    orion_embedder *e = load(gguf_path, 32, ORION_POOL_DEFAULT, -1);
    double t0 = orion_test_now();
    assert_int_equal(orion_embed_texts(e, text_ptrs(), NULL, n_texts, batched_out), ORION_OK);
    double t1 = orion_test_now();
    orion_embed_free(e);
    long tok = 0;
    for (int i = 0; i < n_texts; i++) tok += n_ids[i];
    printf("  %d texts (%ld tokens): batch 32 in %.2f s (%s kernels, %d threads)\n", n_texts, tok, t1 - t0,
           orion_kernels_name(), N_THREADS);
    check_agreement("batch 32 vs reference", batched_out, ref[REF_MEAN_NORM], n_texts);

    e = load(gguf_path, 1, ORION_POOL_DEFAULT, -1);
    t0 = orion_test_now();
    assert_int_equal(orion_embed_texts(e, text_ptrs(), NULL, n_texts, b1), ORION_OK);
    t1 = orion_test_now();
    orion_embed_free(e);
    printf("  batch 1 in %.2f s\n", t1 - t0);
    check_agreement("batch 1 vs reference", b1, ref[REF_MEAN_NORM], n_texts);
    double md = 0;
    for (size_t i = 0; i < (size_t)n_texts * DIM; i++) md = fmax(md, fabs((double)b1[i] - batched_out[i]));
    printf("  batch 32 vs batch 1: max |diff| %.3g\n", md);
    assert_true(md <= BATCH_DIFF);
    free(b1);
}

/* The same ids through orion_embed_tokens give the same vectors as the texts. */
static void test_tokens_api(void **state) {
    (void)state;
    require_ref();
    if (!batched_out) skip();
    float *out = malloc(sizeof(float) * (size_t)n_texts * DIM);
    orion_embedder *e = load(gguf_path, 32, ORION_POOL_DEFAULT, -1);
    assert_int_equal(orion_embed_tokens(e, (const int32_t *const *)ids, n_ids, n_texts, out), ORION_OK);
    assert_memory_equal(out, batched_out, sizeof(float) * (size_t)n_texts * DIM);
    orion_embed_free(e);
    free(out);
}

static void test_options(void **state) {
    (void)state;
    require_ref();
    const int n = N_OPTION_TEXTS;
    float *out = malloc(sizeof(float) * (size_t)n * DIM);
    double *want = malloc(sizeof(double) * (size_t)n * DIM);
    struct {
        const char   *name;
        orion_pooling pooling;
        int           normalize;
        int           ref;
        int           batch;
    } runs[] = {
        {"cls, normalized", ORION_POOL_CLS, -1, REF_CLS_NORM, 8},
        {"cls, not normalized", ORION_POOL_CLS, 0, REF_CLS, 8},
        {"mean, not normalized", ORION_POOL_MEAN, 0, REF_MEAN, 8},
    };
    /* spread over the texts so long and short ones are in */
    const int32_t *sub_ids[N_OPTION_TEXTS];
    int32_t sub_n[N_OPTION_TEXTS];
    int idx[N_OPTION_TEXTS];
    for (int i = 0; i < n; i++) {
        idx[i] = (int)((long)i * n_texts / n);
        sub_ids[i] = ids[idx[i]];
        sub_n[i] = n_ids[idx[i]];
    }
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        orion_embedder *e = load(gguf_path, runs[r].batch, runs[r].pooling, runs[r].normalize);
        orion_embed_info in;
        orion_embed_get_info(e, &in);
        assert_int_equal(in.pooling, runs[r].pooling);
        assert_int_equal(in.normalize, runs[r].normalize != 0);
        assert_int_equal(orion_embed_tokens(e, sub_ids, sub_n, n, out), ORION_OK);
        orion_embed_free(e);
        for (int i = 0; i < n; i++)
            memcpy(want + (size_t)i * DIM, ref[runs[r].ref] + (size_t)idx[i] * DIM, sizeof(double) * DIM);
        check_agreement(runs[r].name, out, want, n);
        if (!runs[r].normalize) { /* the norms themselves must match too */
            for (int i = 0; i < n; i++) {
                double ng = 0, nw = 0;
                for (int c = 0; c < DIM; c++) {
                    ng += (double)out[(size_t)i * DIM + c] * out[(size_t)i * DIM + c];
                    nw += want[(size_t)i * DIM + c] * want[(size_t)i * DIM + c];
                }
                assert_true(fabs(sqrt(ng) - sqrt(nw)) <= 1e-4 * sqrt(nw));
            }
        }
    }
    free(out);
    free(want);
}

/* Weights converted to f16, q8_0 and q4_0 (token embeddings q8_0 by the
 * mixed-precision rule) run in their stored type; cosine with the f32
 * reference stays above loose measured bounds (measured min: f16 1 - 1e-9,
 * q8_0 0.99989, q4_0 0.9863 on these random weights). */
static void test_quantized(void **state) {
    (void)state;
    require_ref();
    const struct {
        orion_type type;
        double     min_cos;
    } runs[] = {{ORION_TYPE_F16, 0.99999}, {ORION_TYPE_Q8_0, 0.9995}, {ORION_TYPE_Q4_0, 0.98}};
    const int n = N_OPTION_TEXTS;
    float *out = malloc(sizeof(float) * (size_t)n * DIM);
    double *want = malloc(sizeof(double) * (size_t)n * DIM);
    const int32_t *sub_ids[N_OPTION_TEXTS];
    int32_t sub_n[N_OPTION_TEXTS];
    for (int i = 0; i < n; i++) {
        int k = (int)((long)i * n_texts / n);
        sub_ids[i] = ids[k];
        sub_n[i] = n_ids[k];
        memcpy(want + (size_t)i * DIM, ref[REF_MEAN_NORM] + (size_t)k * DIM, sizeof(double) * DIM);
    }
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.gguf", work_dir, orion_type_name(runs[r].type));
        orion_convert_params cp = orion_convert_default_params();
        cp.type = (int)runs[r].type;
        cp.n_threads = N_THREADS;
        assert_int_equal(orion_convert(model_dir, path, &cp), ORION_OK);
        orion_embedder *e = load(path, 16, ORION_POOL_DEFAULT, -1);
        orion_embed_info in;
        orion_embed_get_info(e, &in);
        assert_int_equal(in.type, runs[r].type);
        assert_int_equal(orion_embed_tokens(e, sub_ids, sub_n, n, out), ORION_OK);
        orion_embed_free(e);
        agreement a = compare(out, want, n);
        printf("  %-5s weights (%.1f MiB): cosine min %.6f max %.6f, centered min %.6f\n",
               orion_type_name(runs[r].type), in.weight_bytes / 1048576.0, a.min_cos, a.max_cos, a.min_centered);
        assert_true(a.min_cos >= runs[r].min_cos);
        unlink(path);
    }
    free(out);
    free(want);
}

/* ---- bad input ----------------------------------------------------------------------------- */

/* Copies the model file without the tensor `drop`. */
static void write_without(const char *src, const char *dst, const char *drop) {
    orion_gguf *g = NULL;
    orion_gguf_writer *w = NULL;
    assert_int_equal(orion_gguf_open(src, &g), ORION_OK);
    assert_int_equal(orion_gguf_writer_init(&w), ORION_OK);
    for (int64_t i = 0; i < orion_gguf_n_kv(g); i++)
        assert_int_equal(orion_gguf_writer_set(w, orion_gguf_kv_key(g, i), orion_gguf_kv_value(g, i)), ORION_OK);
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        if (strcmp(t->name, drop) == 0) continue;
        assert_int_equal(orion_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), ORION_OK);
    }
    assert_int_equal(orion_gguf_writer_write(w, dst), ORION_OK);
    orion_gguf_writer_free(w);
    orion_gguf_free(g);
}

static void test_bad_input(void **state) {
    (void)state;
    require_ref();
    char path[256];
    snprintf(path, sizeof path, "%s/missing.gguf", work_dir);
    write_without(gguf_path, path, "blk.3.ffn_up.bias");
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    orion_embedder *e = (orion_embedder *)&e;
    assert_int_equal(orion_embed_load(path, NULL, &e), ORION_ERR_FORMAT);
    assert_null(e);
    printf("  missing tensor: %s\n", orion_last_error());
    assert_non_null(strstr(orion_last_error(), "blk.3.ffn_up.bias"));
    assert_non_null(strstr(orion_last_error(), "missing"));
    orion_mem_get_stats(&after);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    unlink(path);

    /* a file that is not a sentence encoder */
    snprintf(path, sizeof path, "%s/llama.gguf", work_dir);
    orion_gguf_writer *w = NULL;
    assert_int_equal(orion_gguf_writer_init(&w), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_str(w, "general.architecture", "llama"), ORION_OK);
    assert_int_equal(orion_gguf_writer_write(w, path), ORION_OK);
    orion_gguf_writer_free(w);
    assert_int_equal(orion_embed_load(path, NULL, &e), ORION_ERR_UNSUPPORTED);
    assert_non_null(strstr(orion_last_error(), "llama"));
    unlink(path);
    assert_int_not_equal(orion_embed_load("/nonexistent/x.gguf", NULL, &e), ORION_OK);
    assert_non_null(strstr(orion_last_error(), "/nonexistent/x.gguf"));

    /* parameters */
    orion_embed_params p = orion_embed_default_params();
    p.max_tokens = 513;
    assert_int_equal(orion_embed_load(gguf_path, &p, &e), ORION_ERR_RANGE);
    p = orion_embed_default_params();
    p.batch_size = -1;
    assert_int_equal(orion_embed_load(gguf_path, &p, &e), ORION_ERR_INVALID_ARG);
    p = orion_embed_default_params();
    p.normalize = 2;
    assert_int_equal(orion_embed_load(gguf_path, &p, &e), ORION_ERR_INVALID_ARG);
    orion_mem_get_stats(&after);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);

    /* ids */
    e = load(gguf_path, 4, ORION_POOL_DEFAULT, -1);
    float out[2 * DIM];
    int32_t bad[3] = {101, 30522, 102}, good[2] = {101, 102};
    const int32_t *seqs[2] = {good, bad};
    int32_t lens[2] = {2, 3};
    assert_int_equal(orion_embed_tokens(e, seqs, lens, 2, out), ORION_ERR_INVALID_ARG);
    assert_non_null(strstr(orion_last_error(), "30522"));
    lens[1] = 0;
    assert_int_equal(orion_embed_tokens(e, seqs, lens, 2, out), ORION_ERR_RANGE);
    lens[1] = MAX_TOKENS + 1;
    assert_int_equal(orion_embed_tokens(e, seqs, lens, 2, out), ORION_ERR_RANGE);
    assert_int_equal(orion_embed_texts(e, NULL, NULL, 0, NULL), ORION_OK);
    orion_embed_free(e);
    orion_embed_free(NULL);
    orion_mem_get_stats(&after);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
}

/* Out of memory at every allocation of a load and of a call: a clean
 * ORION_ERR_NOMEM (or the error it caused), nothing leaked. */
static void test_out_of_memory(void **state) {
    (void)state;
    require_ref();
    orion_embed_params p = orion_embed_default_params();
    p.n_threads = 1;
    p.batch_size = 4;
    p.max_tokens = 32;
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    int n_fail = 0;
    for (int64_t k = 0;; k++) {
        orion__alloc_fail_after(k);
        orion_embedder *e = NULL;
        orion_status st = orion_embed_load(gguf_path, &p, &e);
        if (st == ORION_OK) {
            float out[3 * DIM];
            orion__alloc_fail_after(-1);
            orion_mem_get_stats(&after);
            /* now fail each allocation of a call */
            for (int64_t j = 0;; j++) {
                orion__alloc_fail_after(j);
                st = orion_embed_texts(e, text_ptrs() + 1, NULL, 3, out);
                orion__alloc_fail_after(-1);
                if (st == ORION_OK) break;
                assert_int_equal(st, ORION_ERR_NOMEM);
                assert_true(j < 1000);
            }
            orion_embed_free(e);
            break;
        }
        orion__alloc_fail_after(-1);
        assert_null(e);
        assert_int_not_equal(st, ORION_OK);
        n_fail++;
        assert_true(k < 100000);
    }
    orion__alloc_fail_after(-1);
    orion_mem_get_stats(&after);
    printf("  load failed cleanly at each of its first %d allocations\n", n_fail);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
}

/* ---- the command line ------------------------------------------------------------------------- */

/* Appends s to buf as one shell word in single quotes (at most max bytes of s). */
static int shell_quote(char *buf, size_t size, const char *s, size_t max) {
    size_t n = 0;
    buf[n++] = ' ', buf[n++] = '\'';
    for (size_t i = 0; s[i] && i < max && n + 8 < size; i++) {
        if (s[i] == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else buf[n++] = s[i];
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return (int)n;
}

/* Runs cmd, returns its stdout (malloc'd). */
static char *run_capture(const char *cmd, int *rc) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    *rc = pclose(f);
    return buf;
}

/* Parses "[[a, b, ...], [...]]" into out (at most max floats); returns the
 * count of vectors and checks each has dim values. */
static int parse_json_vectors(const char *s, float *out, int max, int dim) {
    const char *p = strchr(s, '[');
    if (!p) return -1;
    p++;
    int n_vec = 0, n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == ',') p++;
        if (*p == ']') return n_vec;
        if (*p != '[') return -1;
        p++;
        int k = 0;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == ',') p++;
            if (*p == ']') {
                p++;
                break;
            }
            char *end;
            float v = strtof(p, &end);
            if (end == p || n >= max) return -1;
            out[n++] = v;
            k++;
            p = end;
        }
        if (k != dim) return -1;
        n_vec++;
    }
}

static void test_cli(void **state) {
    (void)state;
    require_ref();
    const char *bin = getenv("ORION_BIN");
    if (!bin) skip();
    /* texts 1..6 as arguments, and the same through --file */
    const int n = 6;
    char cmd[8192], file[256];
    snprintf(file, sizeof file, "%s/texts.txt", work_dir);
    FILE *f = fopen(file, "w");
    int len = snprintf(cmd, sizeof cmd, "'%s' embed '%s' --format json --threads 2 --batch 4", bin, gguf_path);
    for (int i = 1; i <= n; i++) {
        fprintf(f, "%s\n", texts[i]);
        len += shell_quote(cmd + len, sizeof cmd - (size_t)len, texts[i], 300);
    }
    fclose(f);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " 2>/dev/null");
    /* the library's vectors (texts cut at 300 bytes as the command line has them) */
    char *cut[6];
    for (int i = 0; i < n; i++) cut[i] = strndup(texts[i + 1], 300);
    float want[6 * DIM], got[6 * DIM];
    orion_embedder *e = load(gguf_path, 32, ORION_POOL_DEFAULT, -1);
    assert_int_equal(orion_embed_texts(e, (const char *const *)cut, NULL, n, want), ORION_OK);
    orion_embed_free(e);
    int rc;
    char *outp = run_capture(cmd, &rc);
    assert_non_null(outp);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    assert_int_equal(parse_json_vectors(outp, got, 6 * DIM, DIM), n);
    double md = 0;
    for (int i = 0; i < n * DIM; i++) md = fmax(md, fabs((double)got[i] - want[i]));
    printf("  orion embed --format json vs library: max |diff| %.3g\n", md);
    assert_true(md <= 1e-6);
    free(outp);
    /* --file, all the (uncut) lines */
    for (int i = 0; i < n; i++) free(cut[i]);
    e = load(gguf_path, 32, ORION_POOL_DEFAULT, -1);
    assert_int_equal(orion_embed_texts(e, (const char *const *)texts + 1, NULL, n, want), ORION_OK);
    orion_embed_free(e);
    snprintf(cmd, sizeof cmd, "'%s' embed '%s' --file '%s' --format json 2>/dev/null", bin, gguf_path, file);
    outp = run_capture(cmd, &rc);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    assert_int_equal(parse_json_vectors(outp, got, 6 * DIM, DIM), n);
    md = 0;
    for (int i = 0; i < n * DIM; i++) md = fmax(md, fabs((double)got[i] - want[i]));
    assert_true(md <= 1e-6);
    free(outp);
    /* tsv: one line per text, dim tab-separated values */
    snprintf(cmd, sizeof cmd, "'%s' embed '%s' --file '%s' --format tsv 2>/dev/null | awk -F'\\t' '{print NF}'",
             bin, gguf_path, file);
    outp = run_capture(cmd, &rc);
    int lines = 0;
    for (char *p = outp; (p = strstr(p, "384\n")) != NULL; p += 4) lines++;
    assert_int_equal(lines, n);
    free(outp);
    /* errors: exit 1 with the message; usage: exit 2 */
    snprintf(cmd, sizeof cmd, "'%s' embed /nonexistent.gguf hello 2>&1", bin);
    outp = run_capture(cmd, &rc);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    assert_non_null(strstr(outp, "nonexistent"));
    free(outp);
    snprintf(cmd, sizeof cmd, "'%s' embed '%s' --pooling max hello 2>&1", bin, gguf_path);
    outp = run_capture(cmd, &rc);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    free(outp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_tokens), cmocka_unit_test(test_batched_and_unbatched),
        cmocka_unit_test(test_tokens_api),      cmocka_unit_test(test_options),
        cmocka_unit_test(test_quantized),       cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
