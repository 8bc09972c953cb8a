/*
 * test_synth.c — synthetic models (src/models/synth.c, `orion synth`) and the
 * `orion bench decode` smoke test.
 *
 *   - test-tiny of each architecture (llama, mistral) and each type (f32 f16
 *     bf16 q8_0 q4_0 q4_1) is written, loaded with orion_llm_load and run for
 *     a few tokens; the shape in orion_llm_info, the metadata (architecture
 *     "llama", sliding_window for Mistral only, the tokenizer's special ids
 *     and token types) and every tensor's type (the mixed rule: 1-D f32,
 *     token_embd/output q8_0 below q8_0) are checked;
 *   - the weights look like N(0, 0.02^2), norms are 1, and the bytes depend
 *     on the seed but not on the thread count;
 *   - --dims with a smaller vocabulary, and shapes that must be refused;
 *   - the CLI: `orion synth` writes a file (exit 0) or refuses bad arguments
 *     (exit 2), and `orion bench decode --json` on test-tiny prints one valid
 *     JSON object whose figures are positive, with the interleaved pairs'
 *     quartiles in order over the weights a token reads. Speed is never
 *     asserted.
 * Needs the Llama 2 tokenizer from ../shared (ORION_SHARED, set by ctest);
 * skipped without it. The CLI tests need ORION_BIN (set by ctest).
 */
#include "test_util.h"

#include "models/synth.h"

#include <ctype.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_tokenizer[1024];
static char g_dir[256];

static bool have_tokenizer(void) {
    const char *shared = test_shared_dir();
    if (!shared) return false;
    snprintf(g_tokenizer, sizeof g_tokenizer, "%s/models/llama2-tokenizer/tokenizer.bin", shared);
    return access(g_tokenizer, R_OK) == 0;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/orion_test_synth_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", g_dir, name);
}

static orion_synth_params tiny_params(const char *arch, orion_type type) {
    orion_synth_params p = orion__synth_default_params();
    p.shape = *orion__synth_shape_find("test-tiny");
    p.arch = arch;
    p.type = type;
    p.seed = 7;
    p.tokenizer = g_tokenizer;
    p.n_threads = 2;
    return p;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* ---- every arch x type --------------------------------------------------------- */

static orion_type expected_type(const orion_gguf_tensor *t, orion_type want) {
    if (t->n_dims == 1) return ORION_TYPE_F32;
    if ((strcmp(t->name, "token_embd.weight") == 0 || strcmp(t->name, "output.weight") == 0) &&
        (want == ORION_TYPE_Q4_0 || want == ORION_TYPE_Q4_1))
        return ORION_TYPE_Q8_0;
    return want;
}

static void check_one(const char *arch, orion_type type) {
    char path[512], name[64];
    snprintf(name, sizeof name, "tiny-%s-%s.gguf", arch, orion_type_name(type));
    path_in_dir(path, sizeof path, name);
    orion_synth_params p = tiny_params(arch, type);
    assert_int_equal(orion__synth_write(path, &p), ORION_OK);

    /* metadata and tensor types */
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(path, &g), ORION_OK);
    char s[64];
    assert_int_equal(orion_gguf_get_str(g, "general.architecture", s, sizeof s), ORION_OK);
    assert_string_equal(s, "llama");
    uint64_t v = 0;
    bool mistral = strcmp(arch, "mistral") == 0;
    orion_status swa = orion_gguf_get_u64(g, "llama.attention.sliding_window", &v);
    if (mistral) {
        assert_int_equal(swa, ORION_OK);
        assert_int_equal(v, 32);
    } else {
        assert_int_equal(swa, ORION_ERR_NOT_FOUND);
    }
    assert_int_equal(orion_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &v), ORION_OK);
    assert_int_equal(v, 1);
    assert_int_equal(orion_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &v), ORION_OK);
    assert_int_equal(v, 2);
    assert_int_equal(orion_gguf_n_tensors(g), 3 + 9 * 2);
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        if (t->type != expected_type(t, type))
            fail_msg("%s %s: tensor %s is %s, expected %s", arch, orion_type_name(type), t->name,
                     orion_type_name(t->type), orion_type_name(expected_type(t, type)));
    }
    orion_gguf_free(g);

    /* it loads with the right shape and runs */
    orion_llm_params lp = orion_llm_default_params();
    lp.n_threads = 1;
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(path, &lp, &llm), ORION_OK);
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    assert_string_equal(in.arch, "llama");
    assert_int_equal(in.n_embd, 64);
    assert_int_equal(in.n_ff, 192);
    assert_int_equal(in.n_layer, 2);
    assert_int_equal(in.n_head, 4);
    assert_int_equal(in.n_head_kv, 2);
    assert_int_equal(in.head_dim, 16);
    assert_int_equal(in.n_vocab, 32000);
    assert_int_equal(in.n_ctx_train, 256);
    assert_int_equal(in.sliding_window, mistral ? 32 : 0);
    assert_int_equal(in.bos, 1);
    assert_int_equal(in.eos, 2);
    int32_t toks[16], n = 0;
    assert_int_equal(orion_llm_tokenize(llm, "Hello world", 11, true, toks, 16, &n), ORION_OK);
    assert_true(n >= 3);
    assert_int_equal(toks[0], 1);
    assert_int_equal(toks[1], 15043); /* "▁Hello" in the Llama 2 vocabulary */
    float *logits = malloc(sizeof(float) * 32000);
    assert_non_null(logits);
    assert_int_equal(orion_llm_eval(llm, toks, n, 0, logits, false), ORION_OK);
    for (int i = 0; i < 32000; i++) assert_true(isfinite(logits[i]));
    free(logits);
    orion_llm_free(llm);
    remove(path);
}

static void test_every_arch_and_type(void **state) {
    (void)state;
    if (!have_tokenizer()) skip();
    static const orion_type types[] = {ORION_TYPE_F32,  ORION_TYPE_F16,  ORION_TYPE_BF16,
                                       ORION_TYPE_Q8_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_1};
    static const char *const archs[] = {"llama", "mistral"};
    for (size_t a = 0; a < 2; a++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) check_one(archs[a], types[t]);
}

/* ---- values, vocabulary, determinism --------------------------------------------- */

static void test_values_and_vocab(void **state) {
    (void)state;
    if (!have_tokenizer()) skip();
    char path[512];
    path_in_dir(path, sizeof path, "values.gguf");
    orion_synth_params p = tiny_params("llama", ORION_TYPE_F32);
    assert_int_equal(orion__synth_write(path, &p), ORION_OK);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(path, &g), ORION_OK);

    const orion_gguf_tensor *w = orion_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    assert_non_null(w);
    assert_int_equal(w->ne[0], 192);
    assert_int_equal(w->ne[1], 64);
    double sum = 0.0, sq = 0.0, n = (double)w->n_elems;
    for (int64_t i = 0; i < w->n_elems; i++) {
        float x;
        memcpy(&x, (const char *)w->data + 4 * i, 4);
        sum += x, sq += (double)x * x;
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    assert_true(fabs(mean) < 0.002);
    assert_true(fabs(sd - 0.02) < 0.001);

    const orion_gguf_tensor *norm = orion_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    assert_non_null(norm);
    for (int64_t i = 0; i < norm->n_elems; i++) {
        float x;
        memcpy(&x, (const char *)norm->data + 4 * i, 4);
        assert_true(x == 1.0f);
    }
    /* two tensors of the same shape are not copies of each other */
    const orion_gguf_tensor *u = orion_gguf_find_tensor(g, "blk.1.ffn_up.weight");
    const orion_gguf_tensor *ga = orion_gguf_find_tensor(g, "blk.1.ffn_gate.weight");
    assert_true(memcmp(u->data, ga->data, u->n_bytes) != 0);

    /* the vocabulary: the export undone, types assigned */
    const orion_gguf_value *toks = orion_gguf_get(g, "tokenizer.ggml.tokens");
    const orion_gguf_value *types = orion_gguf_get(g, "tokenizer.ggml.token_type");
    assert_non_null(toks);
    assert_non_null(types);
    assert_int_equal(toks->v.arr.count, 32000);
#define TOKEN_IS(i, text)                                                  \
    assert_int_equal(toks->v.arr.items[i].v.str.len, strlen(text));         \
    assert_memory_equal(toks->v.arr.items[i].v.str.ptr, text, strlen(text))
    TOKEN_IS(0, "<unk>");
    TOKEN_IS(1, "<s>");
    TOKEN_IS(2, "</s>");
    TOKEN_IS(3, "<0x00>");
    TOKEN_IS(29871, "\xe2\x96\x81"); /* a lone U+2581 */
#undef TOKEN_IS
    assert_int_equal(orion_gguf_array_i64(types, 0), 2);
    assert_int_equal(orion_gguf_array_i64(types, 1), 3);
    assert_int_equal(orion_gguf_array_i64(types, 2), 3);
    assert_int_equal(orion_gguf_array_i64(types, 3), 6);
    assert_int_equal(orion_gguf_array_i64(types, 258), 6);
    assert_int_equal(orion_gguf_array_i64(types, 259), 1);
    orion_gguf_free(g);
    remove(path);
}

static void test_deterministic(void **state) {
    (void)state;
    if (!have_tokenizer()) skip();
    char a[512], b[512], c[512];
    path_in_dir(a, sizeof a, "det-a.gguf");
    path_in_dir(b, sizeof b, "det-b.gguf");
    path_in_dir(c, sizeof c, "det-c.gguf");
    orion_synth_params p = tiny_params("llama", ORION_TYPE_Q4_0);
    p.n_threads = 1;
    assert_int_equal(orion__synth_write(a, &p), ORION_OK);
    p.n_threads = 2;
    assert_int_equal(orion__synth_write(b, &p), ORION_OK);
    p.seed = 8;
    assert_int_equal(orion__synth_write(c, &p), ORION_OK);
    size_t na, nb, nc;
    char *da = read_file(a, &na), *db = read_file(b, &nb), *dc = read_file(c, &nc);
    assert_non_null(da);
    assert_non_null(db);
    assert_non_null(dc);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    assert_true(nc == na);
    assert_true(memcmp(da, dc, na) != 0); /* (the names differ too, but so do the weights) */
    free(da), free(db), free(dc);
    remove(a), remove(b), remove(c);
}

/* --arch clip: an mmproj that orion_clip loads and runs, in the layout and
 * types the rule gives, the same bytes whatever the thread count. */
static void test_clip(void **state) {
    (void)state;
    char a[512], b[512];
    path_in_dir(a, sizeof a, "clip-a.gguf");
    path_in_dir(b, sizeof b, "clip-b.gguf");
    orion_synth_params p = orion__synth_default_params();
    p.clip = orion__synth_clip_shape_find("test-tiny");
    assert_non_null(p.clip);
    assert_null(orion__synth_clip_shape_find("vit-h"));
    assert_non_null(orion__synth_clip_shape_find("vit-l-14-336"));
    p.type = ORION_TYPE_Q4_0;
    p.n_threads = 1;
    assert_int_equal(orion__synth_write(a, &p), ORION_OK);
    p.n_threads = 2;
    assert_int_equal(orion__synth_write(b, &p), ORION_OK);
    size_t na, nb;
    char *da = read_file(a, &na), *db = read_file(b, &nb);
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da), free(db);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(a, &g), ORION_OK);
    assert_int_equal(orion_gguf_n_tensors(g), 9 + 16 * 3);
    assert_int_equal(orion_gguf_find_tensor(g, "v.blk.0.attn_q.weight")->type, ORION_TYPE_Q4_0);
    assert_int_equal(orion_gguf_find_tensor(g, "mm.2.weight")->type, ORION_TYPE_Q4_0);
    assert_int_equal(orion_gguf_find_tensor(g, "v.patch_embd.weight")->type, ORION_TYPE_F16); /* rows of 8 */
    assert_int_equal(orion_gguf_find_tensor(g, "v.position_embd.weight")->type, ORION_TYPE_F32);
    assert_int_equal(orion_gguf_find_tensor(g, "v.blk.2.ln2.bias")->type, ORION_TYPE_F32);
    const orion_gguf_tensor *fc1 = orion_gguf_find_tensor(g, "v.blk.1.ffn_down.weight"); /* llama.cpp's fc1 name */
    assert_int_equal(fc1->ne[0], 64);
    assert_int_equal(fc1->ne[1], 128);
    orion_gguf_free(g);
    orion_clip *clip = NULL;
    assert_int_equal(orion_clip_load(a, NULL, &clip), ORION_OK);
    orion_clip_info ci;
    orion_clip_get_info(clip, &ci);
    assert_int_equal(ci.n_patches, 16);
    assert_int_equal(ci.n_layer, 3);
    assert_int_equal(ci.n_layer_used, 2);
    assert_int_equal(ci.n_out, 64);
    assert_true(ci.quick_gelu);
    float *pix = calloc(3 * 32 * 32, sizeof(float)), *out = malloc(sizeof(float) * 16 * 64);
    assert_int_equal(orion_clip_encode_pixels(clip, pix, out), ORION_OK);
    double norm = 0;
    for (int i = 0; i < 16 * 64; i++) {
        assert_true(isfinite(out[i]));
        norm += (double)out[i] * out[i];
    }
    assert_true(norm > 0);
    free(pix), free(out);
    orion_clip_free(clip);
    /* a bad shape */
    orion_synth_clip_shape bad = *p.clip;
    bad.patch_size = 5;
    p.clip = &bad;
    assert_int_equal(orion__synth_write(a, &p), ORION_ERR_INVALID_ARG);
    remove(a), remove(b);
}

/* The q8_0 KV cache: logits within a small distance of the f32 cache's over
 * a 48-token sequence, 34/64 of the f16 cache's bytes, and a clear refusal
 * when the head size is not a multiple of 32. */
static void test_kv_cache_q8_0(void **state) {
    (void)state;
    if (!have_tokenizer()) skip();
    char path[512];
    path_in_dir(path, sizeof path, "kvq8.gguf");
    orion_synth_params p = tiny_params("mistral", ORION_TYPE_F32);
    p.shape.name = NULL;
    p.shape.n_embd = 128, p.shape.n_ff = 256, p.shape.n_layer = 2, p.shape.n_head = 4, p.shape.n_head_kv = 2;
    p.shape.n_vocab = 300;
    assert_int_equal(orion__synth_write(path, &p), ORION_OK);
    enum { T = 48 };
    int32_t toks[T];
    for (int i = 0; i < T; i++) toks[i] = (int32_t)(3 + (i * 37) % 290);
    float *logits[3];
    size_t kv_bytes[3];
    const orion_type kv[3] = {ORION_TYPE_F32, ORION_TYPE_F16, ORION_TYPE_Q8_0};
    int n_vocab = 0;
    for (int c = 0; c < 3; c++) {
        orion_llm_params lp = orion_llm_default_params();
        lp.n_ctx = 64, lp.n_threads = 2, lp.kv_type = kv[c];
        orion_llm *llm = NULL;
        assert_int_equal(orion_llm_load(path, &lp, &llm), ORION_OK);
        orion_llm_info in;
        orion_llm_get_info(llm, &in);
        n_vocab = in.n_vocab;
        kv_bytes[c] = in.kv_bytes;
        logits[c] = malloc(sizeof(float) * (size_t)T * (size_t)n_vocab);
        /* prefill half, then one token at a time: both paths read the cache */
        assert_int_equal(orion_llm_eval(llm, toks, T / 2, 0, logits[c], true), ORION_OK);
        for (int i = T / 2; i < T; i++)
            assert_int_equal(orion_llm_eval(llm, toks + i, 1, i, logits[c] + (size_t)i * n_vocab, false), ORION_OK);
        orion_llm_free(llm);
    }
    assert_true(kv_bytes[2] * 64 == kv_bytes[1] * 34);
    /* error relative to the logits' spread, f16 and q8_0 against f32 */
    double err[3] = {0}, spread = 0;
    for (size_t i = 0; i < (size_t)T * (size_t)n_vocab; i++) {
        spread += (double)logits[0][i] * logits[0][i];
        for (int c = 1; c < 3; c++) {
            double d = fabs((double)logits[c][i] - logits[0][i]);
            if (d > err[c]) err[c] = d;
        }
    }
    spread = sqrt(spread / ((double)T * n_vocab));
    print_message("kv cache: max |dlogit| f16 %.3g, q8_0 %.3g (logit rms %.3g); bytes f16 %zu, q8_0 %zu\n", err[1],
                  err[2], spread, kv_bytes[1], kv_bytes[2]);
    assert_true(err[1] > 0.0 && err[2] > 0.0); /* the caches really differ from f32 */
    assert_true(err[2] < 0.05 * spread);
    for (int c = 0; c < 3; c++) free(logits[c]);

    /* head size 16 (test-tiny): refused with a message naming the reason */
    char small[512];
    path_in_dir(small, sizeof small, "kvq8-small.gguf");
    orion_synth_params q = tiny_params(NULL, ORION_TYPE_F32);
    assert_int_equal(orion__synth_write(small, &q), ORION_OK);
    orion_llm_params lp = orion_llm_default_params();
    lp.kv_type = ORION_TYPE_Q8_0;
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(small, &lp, &llm), ORION_ERR_UNSUPPORTED);
    assert_null(llm);
    assert_non_null(strstr(orion_last_error(), "multiple of 32"));
    lp.kv_type = ORION_TYPE_Q4_0;
    assert_int_equal(orion_llm_load(small, &lp, &llm), ORION_ERR_UNSUPPORTED);
    remove(path), remove(small);
}

static void test_dims_and_bad_shapes(void **state) {
    (void)state;
    if (!have_tokenizer()) skip();
    char path[512];
    path_in_dir(path, sizeof path, "dims.gguf");
    orion_synth_params p = tiny_params(NULL, ORION_TYPE_Q8_0);
    p.shape.name = NULL;
    p.shape.n_embd = 96, p.shape.n_ff = 80, p.shape.n_layer = 1, p.shape.n_head = 3, p.shape.n_head_kv = 1;
    p.shape.n_vocab = 300;
    assert_int_equal(orion__synth_write(path, &p), ORION_OK);
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(path, NULL, &llm), ORION_OK);
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    assert_int_equal(in.n_vocab, 300);
    assert_int_equal(in.head_dim, 32);
    orion_llm_free(llm);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(path, &g), ORION_OK);
    /* ffn rows of 80 are not a multiple of 32: f16, as orion_convert does */
    assert_int_equal(orion_gguf_find_tensor(g, "blk.0.ffn_down.weight")->type, ORION_TYPE_F16);
    assert_int_equal(orion_gguf_find_tensor(g, "blk.0.ffn_up.weight")->type, ORION_TYPE_Q8_0);
    orion_gguf_free(g);
    remove(path);

    orion_synth_params bad = tiny_params("llama", ORION_TYPE_Q4_0);
    bad.shape.n_head = 5; /* 64 / 5 */
    assert_int_equal(orion__synth_write(path, &bad), ORION_ERR_INVALID_ARG);
    bad = tiny_params("llama", ORION_TYPE_Q4_0);
    bad.shape.n_head_kv = 3; /* 4 % 3 */
    assert_int_equal(orion__synth_write(path, &bad), ORION_ERR_INVALID_ARG);
    bad = tiny_params("falcon", ORION_TYPE_Q4_0);
    assert_int_equal(orion__synth_write(path, &bad), ORION_ERR_INVALID_ARG);
    bad = tiny_params("llama", ORION_TYPE_Q4_0);
    bad.shape.n_vocab = 40000; /* more than the tokenizer has */
    assert_int_equal(orion__synth_write(path, &bad), ORION_ERR_RANGE);
    bad = tiny_params("llama", ORION_TYPE_Q4_0);
    bad.tokenizer = "/nonexistent/tokenizer.bin";
    assert_int_equal(orion__synth_write(path, &bad), ORION_ERR_NOT_FOUND);
    assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
}

/* ---- the command line ------------------------------------------------------------- */

/* Runs `"$ORION_BIN" args` (stderr to /dev/null); returns stdout (malloc'd) and
 * the exit code, or NULL when ORION_BIN is unset. */
static char *run_orion(const char *args, int *exit_code) {
    const char *bin = getenv("ORION_BIN");
    if (!bin || !*bin) return NULL;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/dev/null", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t got;
    while (out && (got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 1024) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger) break;
            out = bigger, cap *= 2;
        }
    }
    if (out) out[len] = '\0';
    int status = pclose(p);
    *exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
    return out;
}

/* A small JSON reader: validates the document and records every number with
 * its path ("orion.gen_tokens_per_s"). */
typedef struct json_reader {
    const char *p;
    int         depth;
    char        path[256];
    char        keys[64][96];
    double      values[64];
    int         n;
} json_reader;

static bool j_value(json_reader *r);

static void j_ws(json_reader *r) {
    while (*r->p && isspace((unsigned char)*r->p)) r->p++;
}

static bool j_string(json_reader *r, char *out, size_t size) {
    if (*r->p != '"') return false;
    size_t n = 0;
    for (r->p++; *r->p != '"'; r->p++) {
        if (!*r->p || (unsigned char)*r->p < 0x20) return false;
        if (*r->p == '\\') {
            r->p++;
            if (*r->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)r->p[i])) return false;
                r->p += 4;
                continue;
            }
            if (!*r->p || !strchr("\"\\/bfnrt", *r->p)) return false;
        }
        if (out && n + 1 < size) out[n++] = *r->p;
    }
    if (out) out[n] = '\0';
    r->p++;
    return true;
}

static bool j_value(json_reader *r) {
    if (++r->depth > 32) return false;
    j_ws(r);
    bool ok = true;
    size_t plen = strlen(r->path);
    if (*r->p == '{') {
        r->p++;
        j_ws(r);
        if (*r->p == '}') r->p++;
        else
            for (;;) {
                char key[96];
                j_ws(r);
                if (!j_string(r, key, sizeof key)) return false;
                j_ws(r);
                if (*r->p++ != ':') return false;
                snprintf(r->path + plen, sizeof r->path - plen, "%s%s", plen ? "." : "", key);
                if (!j_value(r)) return false;
                r->path[plen] = '\0';
                j_ws(r);
                if (*r->p == ',') r->p++;
                else if (*r->p == '}') {
                    r->p++;
                    break;
                } else return false;
            }
    } else if (*r->p == '[') {
        r->p++;
        j_ws(r);
        if (*r->p == ']') r->p++;
        else
            for (;;) {
                if (!j_value(r)) return false;
                j_ws(r);
                if (*r->p == ',') r->p++;
                else if (*r->p == ']') {
                    r->p++;
                    break;
                } else return false;
            }
    } else if (*r->p == '"') {
        ok = j_string(r, NULL, 0);
    } else if (strncmp(r->p, "true", 4) == 0 || strncmp(r->p, "null", 4) == 0) {
        r->p += 4;
    } else if (strncmp(r->p, "false", 5) == 0) {
        r->p += 5;
    } else {
        char *end;
        double v = strtod(r->p, &end);
        if (end == r->p || !(*r->p == '-' || isdigit((unsigned char)*r->p))) return false;
        r->p = end;
        if (r->n < 64) {
            snprintf(r->keys[r->n], sizeof r->keys[0], "%s", r->path);
            r->values[r->n++] = v;
        }
    }
    r->depth--;
    return ok;
}

static bool json_parse(const char *text, json_reader *r) {
    memset(r, 0, sizeof *r);
    r->p = text;
    if (!j_value(r)) return false;
    j_ws(r);
    return *r->p == '\0';
}

static double json_get(const json_reader *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->keys[i], key) == 0) return r->values[i];
    return NAN;
}

static void test_cli(void **state) {
    (void)state;
    if (!have_tokenizer() || !getenv("ORION_BIN")) skip();
    char path[512], args[2048];
    path_in_dir(path, sizeof path, "cli.gguf");
    int rc = -1;
    snprintf(args, sizeof args, "synth --shape test-tiny --arch mistral --type q4_1 --seed 3 --tokenizer '%s' '%s'",
             g_tokenizer, path);
    char *out = run_orion(args, &rc);
    assert_non_null(out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "wrote "));
    free(out);
    assert_int_equal(access(path, R_OK), 0);

    static const char *const bad[] = {
        "synth --shape nonesuch --type q4_0 x.gguf",
        "synth --shape test-tiny x.gguf",                     /* no type */
        "synth --dims 64,192,2 --type q4_0 x.gguf",           /* too few dims */
        "synth --dims 64,192,2,4,2,300,7 --type q4_0 x.gguf", /* too many */
        "synth --shape test-tiny --type q5_0 x.gguf",
        "synth --shape test-tiny --arch gpt2 --type q4_0 x.gguf",
        "bench decode",
        "bench decode x.gguf --gen-tokens 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = run_orion(bad[i], &rc);
        assert_non_null(out);
        if (rc != 2) fail_msg("'orion %s' exited %d, expected 2", bad[i], rc);
        free(out);
    }

    snprintf(args, sizeof args,
             "bench decode '%s' --json --quick --threads 1 --prompt-tokens 16 --gen-tokens 8 --reps 2", path);
    out = run_orion(args, &rc);
    assert_non_null(out);
    assert_int_equal(rc, 0);
    json_reader r;
    if (!json_parse(out, &r)) fail_msg("not one JSON object: %.300s", out);
    static const char *const positive[] = {
        "bandwidth_gbs", "weight_bytes", "weight_bytes_read_per_token", "kv_bytes_read_per_token", "bytes_per_token",
        "limit_tokens_per_s", "orion.prefill_tokens_per_s", "orion.gen_tokens_per_s", "orion.gen_ratio_to_limit",
        "n_layer", "threads"};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        double v = json_get(&r, positive[i]);
        if (!(v > 0.0)) fail_msg("%s = %g, expected a positive number", positive[i], v);
    }
    assert_true(json_get(&r, "prompt_tokens") == 16);
    assert_true(json_get(&r, "gen_tokens") == 8);
    /* interleaved: one pair per generated token, quartiles in order, and the
     * read covers the weights a token streams (all but the untied embedding
     * table; the padding between tensors is read too) */
    assert_true(json_get(&r, "orion_interleaved.pairs") == 8);
    const double p25 = json_get(&r, "orion_interleaved.gen_ratio_p25"),
                 med = json_get(&r, "orion_interleaved.gen_ratio_median"),
                 p75 = json_get(&r, "orion_interleaved.gen_ratio_p75");
    if (!(p25 > 0 && p25 <= med && med <= p75)) fail_msg("interleaved quartiles %g %g %g", p25, med, p75);
    const double read = json_get(&r, "orion_interleaved.read_bytes");
    if (!(read >= 0.9 * json_get(&r, "weight_bytes_read_per_token") && read <= json_get(&r, "weight_bytes") + 65536))
        fail_msg("interleaved read %g bytes, weights read per token %g of %g", read,
                 json_get(&r, "weight_bytes_read_per_token"), json_get(&r, "weight_bytes"));
    /* positions attended on average: 16 + (1 + ... + 8) / 8 = 20.5, capped by the window (32) */
    assert_true(fabs(json_get(&r, "avg_positions") - 20.5) < 1e-9);
    free(out);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_arch_and_type),
        cmocka_unit_test(test_values_and_vocab),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_dims_and_bad_shapes),
        cmocka_unit_test(test_kv_cache_q8_0),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
