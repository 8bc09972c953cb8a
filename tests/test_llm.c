/*
 * test_llm.c — the decoder end to end on the real stories260K model:
 *   - greedy generation reproduces llama2.c's own outputs (the texts in
 *     ../shared/reference/), from the GGUF file and from the llama2.c files,
 *     through the library and through `orion run` (whose stdout must carry
 *     the prompt and the generated text and nothing else);
 *   - evaluating a sequence in one batch, in chunks, and token by token
 *     gives the same logits (the KV cache and batching are consistent);
 *   - perplexity on tests/data/stories.txt, and the quantized models' KL
 *     divergence against f32 ordered as expected, with calibration lowering
 *     KL for q4_0 and q4_1;
 *   - bad inputs: out-of-range tokens, a full context, a missing tokenizer.
 */
#include "core/core.h"
#include "test_util.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ORION_TEST_DATA
#define ORION_TEST_DATA "tests/data"
#endif

static char dir[1024], ref_dir[1024];

static int setup(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (shared) {
        snprintf(dir, sizeof dir, "%s/models/stories260K", shared);
        snprintf(ref_dir, sizeof ref_dir, "%s/reference", shared);
    }
    return 0;
}

static char *slurp(const char *path, size_t *len) {
    return test_read_file(path, len);
}

/* Reference text without llama2.c's closing newline. */
static char *reference(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", ref_dir, name);
    size_t n;
    char *s = slurp(path, &n);
    assert_non_null(s);
    while (n > 0 && s[n - 1] == '\n') s[--n] = '\0';
    return s;
}

/* Greedy generation through the library, as `orion run` prints it. */
static char *generate(orion_llm *llm, const char *prompt, int n_predict) {
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    int32_t toks[1024], n = 0;
    assert_int_equal(orion_llm_tokenize(llm, prompt, strlen(prompt), true, toks, 64, &n), ORION_OK);
    float *logits = malloc(sizeof(float) * (size_t)in.n_vocab);
    size_t cap = 1 << 16, len = strlen(prompt);
    char *out = malloc(cap);
    memcpy(out, prompt, len);
    assert_int_equal(orion_llm_eval(llm, toks, n, 0, logits, false), ORION_OK);
    for (int i = 0; i < n_predict; i++) {
        int32_t best = 0;
        for (int v = 1; v < in.n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        if (best == in.eos || best == in.bos) break;
        char piece[64];
        size_t pn = orion_llm_token_to_piece(llm, best, piece, sizeof piece);
        const char *p = piece;
        if (n == 1 && pn > 0 && piece[0] == ' ') p++, pn--;
        assert_true(len + pn < cap);
        memcpy(out + len, p, pn);
        len += pn;
        toks[n] = best;
        assert_int_equal(orion_llm_eval(llm, &toks[n], 1, n, logits, false), ORION_OK);
        n++;
    }
    out[len] = '\0';
    free(logits);
    return out;
}

static void check_model(const char *model, const char *tokenizer) {
    orion_llm_params p = orion_llm_default_params();
    p.tokenizer = tokenizer;
    p.n_threads = 2;
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(model, &p, &llm), ORION_OK);
    char *want = reference("stories260K_t0_n256.txt");
    char *got = generate(llm, "", 256);
    if (strncmp(got, want, strlen(want)) != 0) fprintf(stderr, "got:\n%s\nwant:\n%s\n", got, want);
    assert_true(strncmp(got, want, strlen(want)) == 0);
    char *want200 = reference("stories260K_t0_n200.txt");
    assert_true(strncmp(got, want200, strlen(want200)) == 0);
    free(got);
    free(want);
    free(want200);
    want = reference("stories260K_t0_Zoo_n60.txt");
    got = generate(llm, "Zoo", 60);
    assert_true(strncmp(got, want, strlen(want)) == 0);
    free(got);
    free(want);
    orion_llm_free(llm);
}

static void test_greedy_gguf(void **state) {
    (void)state;
    if (!dir[0]) skip();
    char model[1200];
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir);
    check_model(model, NULL);
}

static void test_greedy_llama2c(void **state) {
    (void)state;
    if (!dir[0]) skip();
    char model[1200], tok[1200];
    snprintf(model, sizeof model, "%s/stories260K.bin", dir);
    snprintf(tok, sizeof tok, "%s/tok512.bin", dir);
    check_model(model, tok);
}

/* `orion run` prints the prompt and the generation on stdout, nothing else */
static void test_cli_run(void **state) {
    (void)state;
    const char *bin = getenv("ORION_BIN");
    if (!dir[0] || !bin) skip();
    char cmd[4096], out[256];
    snprintf(out, sizeof out, "/tmp/orion_test_run_%d.txt", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s run %s/stories260K.gguf -p Zoo -n 60 --temp 0 --threads 2 > %s 2>/dev/null", bin,
             dir, out);
    assert_int_equal(system(cmd), 0);
    char *got = slurp(out, NULL), *want = reference("stories260K_t0_Zoo_n60.txt");
    assert_non_null(got);
    assert_true(strncmp(got, want, strlen(want)) == 0);
    free(got);
    free(want);
    /* errors: exit status 1 with a message, nothing on stdout */
    snprintf(cmd, sizeof cmd, "%s run /nonexistent.gguf -p x > %s 2>&1", bin, out);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    got = slurp(out, NULL);
    assert_non_null(strstr(got, "/nonexistent.gguf"));
    free(got);
    snprintf(cmd, sizeof cmd, "%s run --bogus > /dev/null 2>&1", bin);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    unlink(out);
}

/* One batch, chunks, and token by token give the same logits. */
static void test_batch_consistency(void **state) {
    (void)state;
    if (!dir[0]) skip();
    char model[1200];
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir);
    orion_llm_params p = orion_llm_default_params();
    p.kv_type = ORION_TYPE_F32;
    p.n_batch = 7; /* chunks of an awkward size */
    p.n_ctx = 64;
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(model, &p, &llm), ORION_OK);
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    const char *text = "Lily saw a big red ball in the park. She ran to it and";
    int32_t toks[64], n = 0;
    assert_int_equal(orion_llm_tokenize(llm, text, strlen(text), true, toks, 64, &n), ORION_OK);
    assert_true(n > 10);
    size_t V = (size_t)in.n_vocab;
    float *all = malloc(sizeof(float) * V * (size_t)n), *one = malloc(sizeof(float) * V);
    assert_int_equal(orion_llm_eval(llm, toks, n, 0, all, true), ORION_OK);
    double max_diff = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(orion_llm_eval(llm, &toks[i], 1, i, one, false), ORION_OK);
        for (size_t v = 0; v < V; v++) max_diff = fmax(max_diff, fabs(one[v] - all[(size_t)i * V + v]));
    }
    /* the same arithmetic up to the order of GEMM vs matrix-vector sums */
    assert_true(max_diff < 1e-4);
    /* the last row of all-logits equals the last-only logits */
    assert_int_equal(orion_llm_eval(llm, toks, n, 0, one, false), ORION_OK);
    for (size_t v = 0; v < V; v++) assert_true(fabs(one[v] - all[(size_t)(n - 1) * V + v]) < 1e-4);
    free(all);
    free(one);

    /* bad input */
    int32_t bad = in.n_vocab;
    assert_int_equal(orion_llm_eval(llm, &bad, 1, 0, NULL, false), ORION_ERR_INVALID_ARG);
    assert_non_null(strstr(orion_last_error(), "outside"));
    assert_int_equal(orion_llm_eval(llm, toks, 2, 63, NULL, false), ORION_ERR_RANGE);
    assert_non_null(strstr(orion_last_error(), "context full"));
    int32_t small[2], need = 0;
    assert_int_equal(orion_llm_tokenize(llm, text, strlen(text), true, small, 2, &need), ORION_ERR_RANGE);
    assert_int_equal(need, n);
    orion_llm_free(llm);

    orion_llm *none = NULL;
    char bin[1200];
    snprintf(bin, sizeof bin, "%s/stories260K.bin", dir);
    p.tokenizer = "/nonexistent/tokenizer.bin";
    assert_int_equal(orion_llm_load(bin, &p, &none), ORION_ERR_NOT_FOUND);
    assert_null(none);
}

/* Perplexity and the quality of each weight type against f32. */
static void test_quality(void **state) {
    (void)state;
    if (!dir[0]) skip();
    char model[1200], text_path[1200];
    snprintf(model, sizeof model, "%s/stories260K.gguf", dir);
    snprintf(text_path, sizeof text_path, "%s/stories.txt", ORION_TEST_DATA);
    size_t len;
    char *text = slurp(text_path, &len);
    assert_non_null(text);
    orion_llm_params p = orion_llm_default_params();
    p.n_ctx = 256;
    p.kv_type = ORION_TYPE_F32;
    orion_llm *base = NULL;
    assert_int_equal(orion_llm_load(model, &p, &base), ORION_OK);
    orion_perplexity_result r0;
    assert_int_equal(orion_llm_perplexity(base, NULL, text, len, 256, &r0), ORION_OK);
    /* a 260K-parameter model trained on such stories: low but not trivial */
    assert_true(r0.ppl > 1.5 && r0.ppl < 12.0);
    assert_true(r0.n_scored > 500);

    struct {
        orion_type type;
        bool       calibrate;
        double     kl;
    } rows[] = {{ORION_TYPE_F16, false, 0}, {ORION_TYPE_Q8_0, false, 0}, {ORION_TYPE_Q4_0, false, 0},
                {ORION_TYPE_Q4_0, true, 0}, {ORION_TYPE_Q4_1, false, 0}, {ORION_TYPE_Q4_1, true, 0}};
    printf("\n  %-6s %-10s %10s %12s %8s\n", "type", "quantizer", "ppl", "KL vs f32", "top-1");
    printf("  %-6s %-10s %10.4f %12s %8s\n", "f32", "-", r0.ppl, "0", "100%");
    for (size_t i = 0; i < ORION_ARRAY_LEN(rows); i++) {
        char out[256];
        snprintf(out, sizeof out, "/tmp/orion_test_quality_%d.gguf", (int)getpid());
        orion_convert_params cp = orion_convert_default_params();
        cp.type = (int)rows[i].type;
        cp.calibrate = rows[i].calibrate;
        assert_int_equal(orion_convert(model, out, &cp), ORION_OK);
        orion_llm *q = NULL;
        assert_int_equal(orion_llm_load(out, &p, &q), ORION_OK);
        orion_perplexity_result r;
        assert_int_equal(orion_llm_perplexity(q, base, text, len, 256, &r), ORION_OK);
        assert_true(r.has_base);
        assert_true(fabs(r.base_ppl - r0.ppl) < 1e-6 * r0.ppl);
        printf("  %-6s %-10s %10.4f %12.6f %7.2f%%\n", orion_type_name(rows[i].type),
               rows[i].calibrate ? "calibrated" : "reference", r.ppl, r.kl_mean, 100 * r.top1_agree);
        rows[i].kl = r.kl_mean;
        orion_llm_free(q);
        unlink(out);
    }
    /* more bits, less divergence */
    assert_true(rows[0].kl < rows[1].kl && rows[1].kl < rows[2].kl);
    assert_true(rows[0].kl < 1e-4 && rows[1].kl < 5e-3 && rows[2].kl < 0.2);
    /* calibration lowers KL for the 4-bit types */
    assert_true(rows[3].kl < rows[2].kl);
    assert_true(rows[5].kl < rows[4].kl);
    orion_llm_free(base);
    free(text);
}

/* `orion imatrix` writes llama.cpp's layout, which `orion quantize
 * --imatrix` reads back: one entry per weight matrix the layers multiply,
 * positive mean squares. */
static void test_imatrix(void **state) {
    (void)state;
    const char *bin = getenv("ORION_BIN");
    if (!dir[0] || !bin) skip();
    char im[256], q[256], cmd[4096];
    snprintf(im, sizeof im, "/tmp/orion_test_imatrix_%d.dat", (int)getpid());
    snprintf(q, sizeof q, "/tmp/orion_test_imatrix_%d.gguf", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s imatrix %s/stories260K.gguf -f %s/stories.txt -o %s --ctx 64 --chunks 4 > /dev/null",
             bin, dir, ORION_TEST_DATA, im);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(im, "rb");
    assert_non_null(f);
    int32_t n = 0, len = 0, ncall = 0, nval = 0;
    assert_int_equal(fread(&n, 4, 1, f), 1);
    assert_int_equal(n, 35); /* 5 layers x (q, k, v, output, gate, up, down) */
    assert_int_equal(fread(&len, 4, 1, f), 1);
    assert_true(len > 0 && len < 64);
    char name[64] = {0};
    assert_int_equal(fread(name, 1, (size_t)len, f), (size_t)len);
    assert_non_null(strstr(name, "blk.0."));
    assert_int_equal(fread(&ncall, 4, 1, f), 1);
    assert_int_equal(fread(&nval, 4, 1, f), 1);
    assert_true(ncall >= 4);
    assert_int_equal(nval, 64);
    for (int i = 0; i < nval; i++) {
        float v;
        assert_int_equal(fread(&v, 4, 1, f), 1);
        assert_true(v > 0.0f && isfinite(v));
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s quantize %s/stories260K.gguf %s --type q4_1 --imatrix %s > /dev/null", bin, dir, q, im);
    assert_int_equal(system(cmd), 0);
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(q, NULL, &llm), ORION_OK);
    orion_llm_free(llm);
    /* a broken imatrix file is refused by name */
    f = fopen(im, "wb");
    fwrite("\x05\x00\x00\x00\xff\xff", 1, 6, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s quantize %s/stories260K.gguf %s --type q4_1 --imatrix %s 2>/dev/null >/dev/null",
             bin, dir, q, im);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    unlink(im);
    unlink(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_gguf),   cmocka_unit_test(test_greedy_llama2c),
        cmocka_unit_test(test_cli_run),       cmocka_unit_test(test_batch_consistency),
        cmocka_unit_test(test_quality),       cmocka_unit_test(test_imatrix),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
