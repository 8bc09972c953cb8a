/*
 * test_convert_llava.c — `orion convert` of Hugging Face LLaVA directories
 * (LlavaForConditionalGeneration) into the decoder GGUF and the mmproj GGUF,
 * and `orion quantize` of an mmproj, against an independent reference.
 *
 * tests/ref/llava_hf_ref.py writes two small seeded LLaVA directories
 * (transformers' old and new tensor names; single f32 file and f16 shards;
 * Llama and Mistral text models with partial text_configs; quick and erf
 * GELU towers; feature layer -2 of 3 and [2] of 4; two preprocessor
 * configs) with the real Llama-2 tokenizer, and computes from the HF-named
 * weights, in float64 PyTorch, the projector output for llava.png and the
 * greedy continuation of the LLaVA-1.5 prompt with HF's rotate-half rope.
 * Checks:
 *   - orion_convert writes both files (mmproj at the default path and at
 *     params.mmproj); the mmproj holds exactly the layers up to the feature
 *     layer, no post-layernorm, llama.cpp's names;
 *   - orion_clip on the mmproj (its own preprocessing of llava.png) is
 *     within 1e-4 of the reference; the decoder's logits after
 *     "USER: <image>\n... ASSISTANT:" within 1e-4, and 16 greedy tokens equal;
 *   - quantized mmproj files: q8_0's projector output within a relative RMS
 *     of 0.05 of f32 (see test_quantize_mmproj), q4_0 smaller and running;
 *     position embedding f32, patch embedding f16, matrices quantized;
 *   - the command line prints both paths; broken directories (missing or
 *     corrupt config, unsupported LLaVA options, a missing layer, a
 *     truncated shard, a preprocessor that resizes elsewhere) fail with a
 *     message naming the problem, a non-zero exit, and no leaks.
 */
#include "test_greedy.h"

#include <orion.h>

#include <string.h>

#define PROJ_BOUND 1e-4
#define LOGIT_BOUND 1e-4
#define N_GEN 16
/* q8_0: each weight is off by at most half a step of max|block| / 127,
 * a relative RMS of about 0.5% per matrix (docs/quantization.md: 0.0052 on
 * stories260K); eight matrices in a row, LayerNorm and attention amplify it
 * a few times at most. 0.05 leaves room yet is ten times below what q4_0
 * gives on the same weights. */
#define Q8_REL_BOUND 0.05

static char work_dir[64];
static bool ref_ok;

static int setup(void **state) {
    (void)state;
    snprintf(work_dir, sizeof work_dir, "/tmp/orion_llava_hf_XXXXXX");
    if (!mkdtemp(work_dir)) return -1;
    const char *shared = test_shared_dir();
    char arg[2200];
    snprintf(arg, sizeof arg, "make '%s' '%s/models/llama2-tokenizer/tokenizer.model'", work_dir,
             shared ? shared : "../shared");
    ref_ok = test_run_ref_script("llava_hf_ref.py", arg, "torch, numpy and PIL (Debian: python3-torch "
                                                         "python3-numpy python3-pil)");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work_dir);
    if (system(cmd) != 0) return -1;
    return 0;
}

static void require_ref(void) {
    if (!ref_ok) fail_msg("the reference did not run: install python3-torch, python3-numpy and python3-pil "
                          "with scripts/setup.sh, and have ../shared/models/llama2-tokenizer");
}

static void path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", work_dir, name);
}

static void *slurp(const char *name, size_t *n) {
    char path[512];
    path_in(path, sizeof path, name);
    return test_read_file(path, n);
}

static size_t mem_now(void) {
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    return ms.bytes_in_use;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* The projector output of an mmproj file for llava.png (n_patches x n_out,
 * malloc'd), with its info. */
static float *encode(const char *mmproj, orion_clip_info *info) {
    orion_clip *clip = NULL;
    orion_image *img = NULL;
    char path[512];
    if (orion_clip_load(mmproj, NULL, &clip) != ORION_OK) fail_msg("%s: %s", mmproj, orion_last_error());
    orion_clip_get_info(clip, info);
    path_in(path, sizeof path, "llava.png");
    assert_int_equal(orion_image_load(path, NULL, &img), ORION_OK);
    float *out = malloc(sizeof(float) * (size_t)info->n_patches * (size_t)info->n_out);
    if (orion_clip_encode(clip, img, out) != ORION_OK) fail_msg("%s: %s", mmproj, orion_last_error());
    orion_image_free(img);
    orion_clip_free(clip);
    return out;
}

/* Converts VARIANT and checks both files against the reference. */
static void convert_and_check(const char *variant, int n_layer, int n_used, bool quick, bool explicit_mmproj) {
    require_ref();
    const size_t mem0 = mem_now();
    char dir[512], out[512], mm[512], name[128];
    path_in(dir, sizeof dir, variant);
    snprintf(name, sizeof name, "%s-out.gguf", variant);
    path_in(out, sizeof out, name);
    snprintf(name, sizeof name, explicit_mmproj ? "%s-projector.gguf" : "%s-out.mmproj.gguf", variant);
    path_in(mm, sizeof mm, name);
    orion_convert_params p = orion_convert_default_params();
    p.n_threads = 2;
    if (explicit_mmproj) p.mmproj = mm;
    if (orion_convert(dir, out, &p) != ORION_OK) fail_msg("%s: %s", variant, orion_last_error());
    assert_true(file_exists(out));
    assert_true(file_exists(mm));

    /* the mmproj's layout */
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(mm, &g), ORION_OK);
    char s[64];
    assert_int_equal(orion_gguf_get_str(g, "general.architecture", s, sizeof s), ORION_OK);
    assert_string_equal(s, "clip");
    uint64_t bc = 0;
    assert_int_equal(orion_gguf_get_u64(g, "clip.vision.block_count", &bc), ORION_OK);
    assert_int_equal(bc, (uint64_t)n_used);
    char t[64];
    snprintf(t, sizeof t, "v.blk.%d.attn_q.weight", n_used - 1);
    assert_non_null(orion_gguf_find_tensor(g, t));
    snprintf(t, sizeof t, "v.blk.%d.attn_q.weight", n_used);
    assert_null(orion_gguf_find_tensor(g, t));
    assert_null(orion_gguf_find_tensor(g, "v.post_ln.weight"));
    const orion_gguf_tensor *fc1 = orion_gguf_find_tensor(g, "v.blk.0.ffn_down.weight"); /* llama.cpp's name */
    assert_non_null(fc1);
    assert_int_equal(fc1->ne[0], 64);
    assert_int_equal(fc1->ne[1], 96);
    const orion_gguf_tensor *pe = orion_gguf_find_tensor(g, "v.patch_embd.weight");
    assert_non_null(pe);
    assert_int_equal(pe->n_dims, 4);
    assert_int_equal(pe->ne[0], 8);
    assert_int_equal(pe->ne[2], 3);
    assert_int_equal(pe->ne[3], 64);
    orion_gguf_free(g);
    (void)n_layer;

    /* the projector */
    orion_clip_info ci;
    float *proj = encode(mm, &ci);
    assert_int_equal(ci.n_layer_used, n_used);
    assert_int_equal(ci.quick_gelu, quick);
    assert_int_equal(ci.n_patches, 16);
    assert_int_equal(ci.n_out, 64);
    snprintf(name, sizeof name, "%s.proj", variant);
    size_t n_ref;
    float *ref = slurp(name, &n_ref);
    assert_non_null(ref);
    assert_int_equal(n_ref, sizeof(float) * 16 * 64);
    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < 16 * 64; i++) {
        maxd = fmax(maxd, fabs((double)proj[i] - ref[i]));
        maxv = fmax(maxv, fabs((double)ref[i]));
    }
    printf("  %s: projector output max |diff| %.2e (values up to %.2f)\n", variant, maxd, maxv);
    if (!(maxd <= PROJ_BOUND)) fail_msg("%s: projector output differs by %g > %g", variant, maxd, PROJ_BOUND);

    /* the decoder with the image in the LLaVA-1.5 prompt */
    orion_llm_params lp = orion_llm_default_params();
    lp.kv_type = ORION_TYPE_F32;
    lp.n_ctx = 128;
    lp.n_threads = 2;
    orion_llm *llm = NULL;
    if (orion_llm_load(out, &lp, &llm) != ORION_OK) fail_msg("%s: %s", out, orion_last_error());
    orion_llm_info li;
    orion_llm_get_info(llm, &li);
    assert_int_equal(li.n_embd, ci.n_out);
    const char *prompt = "USER: <image>\nWhat is shown in this picture? ASSISTANT:";
    int32_t text[64], n_text = 0, n_past = 0, n_before = 0, before[16];
    float *logits = malloc(sizeof(float) * (size_t)li.n_vocab);
    if (orion_llava_eval_prompt(llm, prompt, proj, ci.n_patches, 0, logits, &n_past, text, 64, &n_text) != ORION_OK)
        fail_msg("%s", orion_last_error());
    assert_int_equal(orion_llm_tokenize_special(llm, "USER: ", 6, true, before, 16, &n_before), ORION_OK);
    assert_memory_equal(before, text, sizeof(int32_t) * (size_t)n_before);
    char tok_path[512];
    path_in(tok_path, sizeof tok_path, "prompt.tok");
    FILE *f = fopen(tok_path, "wb");
    assert_non_null(f);
    int32_t hdr[2] = {n_before, n_text - n_before};
    assert_int_equal(fwrite(hdr, sizeof hdr, 1, f), 1);
    assert_int_equal(fwrite(text, sizeof(int32_t), (size_t)n_text, f), (size_t)n_text);
    fclose(f);
    char arg[1100];
    snprintf(arg, sizeof arg, "generate '%s' %s", work_dir, variant);
    assert_true(test_run_ref_script("llava_hf_ref.py", arg, "torch, numpy and PIL"));
    size_t n;
    float *ref_logits = slurp("prompt.logits", &n);
    int32_t *ref_gen = slurp("gen.tok", NULL);
    assert_non_null(ref_logits);
    assert_non_null(ref_gen);
    assert_int_equal(n, sizeof(float) * (size_t)li.n_vocab);
    double lmax = 0;
    for (int i = 0; i < li.n_vocab; i++) lmax = fmax(lmax, fabs((double)logits[i] - ref_logits[i]));
    const int same = test_greedy_match(llm, logits, li.n_vocab, n_past, ref_gen, N_GEN);
    printf("  %s: %d text + %d image positions; logits max |diff| %.2e; greedy: %d of %d tokens as PyTorch\n",
           variant, n_text, ci.n_patches, lmax, same, N_GEN);
    assert_true(lmax <= LOGIT_BOUND);
    assert_int_equal(same, N_GEN);
    free(ref_logits);
    free(ref_gen);
    free(logits);
    orion_llm_free(llm);
    free(ref);
    free(proj);
    assert_int_equal(mem_now(), mem0);
}

static void test_convert_old_names(void **state) {
    (void)state;
    convert_and_check("old", 3, 2, true, false);
}

static void test_convert_new_names(void **state) {
    (void)state;
    convert_and_check("new", 4, 2, false, true);
}

/* ---- orion quantize of an mmproj ------------------------------------------------------ */

static double rel_rms(const float *a, const float *ref, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(e / r);
}

static void test_quantize_mmproj(void **state) {
    (void)state;
    require_ref();
    char f32[512], q8[512], q4[512];
    path_in(f32, sizeof f32, "old-out.mmproj.gguf");
    if (!file_exists(f32)) convert_and_check("old", 3, 2, true, false);
    path_in(q8, sizeof q8, "old-q8_0.mmproj.gguf");
    path_in(q4, sizeof q4, "old-q4_0.mmproj.gguf");
    const size_t mem0 = mem_now();
    orion_convert_params p = orion_convert_default_params();
    p.type = ORION_TYPE_Q8_0;
    assert_int_equal(orion_convert(f32, q8, &p), ORION_OK);
    p.type = ORION_TYPE_Q4_0;
    assert_int_equal(orion_convert(f32, q4, &p), ORION_OK);
    /* types: matrices quantized; positions, norms, biases f32; patch f16 (rows of 8) */
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(q8, &g), ORION_OK);
    assert_int_equal(orion_gguf_find_tensor(g, "v.blk.0.attn_q.weight")->type, ORION_TYPE_Q8_0);
    assert_int_equal(orion_gguf_find_tensor(g, "v.blk.1.ffn_up.weight")->type, ORION_TYPE_Q8_0);
    assert_int_equal(orion_gguf_find_tensor(g, "mm.0.weight")->type, ORION_TYPE_Q8_0);
    assert_int_equal(orion_gguf_find_tensor(g, "mm.2.weight")->type, ORION_TYPE_Q8_0);
    assert_int_equal(orion_gguf_find_tensor(g, "v.position_embd.weight")->type, ORION_TYPE_F32);
    assert_int_equal(orion_gguf_find_tensor(g, "v.class_embd")->type, ORION_TYPE_F32);
    assert_int_equal(orion_gguf_find_tensor(g, "v.pre_ln.weight")->type, ORION_TYPE_F32);
    assert_int_equal(orion_gguf_find_tensor(g, "v.patch_embd.weight")->type, ORION_TYPE_F16);
    orion_gguf_free(g);

    size_t n_ref;
    float *ref = slurp("old.proj", &n_ref);
    assert_non_null(ref);
    orion_clip_info i32, i8, i4;
    float *o32 = encode(f32, &i32), *o8 = encode(q8, &i8), *o4 = encode(q4, &i4);
    const size_t n = 16 * 64;
    double e32 = rel_rms(o32, ref, n), e8 = rel_rms(o8, o32, n), e4 = rel_rms(o4, o32, n);
    bool finite = true;
    for (size_t i = 0; i < n; i++) finite = finite && isfinite(o4[i]);
    printf("  mmproj bytes: f32 %ld, q8_0 %ld, q4_0 %ld; weights used %zu / %zu / %zu\n", file_size(f32),
           file_size(q8), file_size(q4), i32.weight_bytes, i8.weight_bytes, i4.weight_bytes);
    printf("  projector output, relative RMS: f32 vs PyTorch %.2e, q8_0 vs f32 %.4f, q4_0 vs f32 %.4f\n", e32, e8,
           e4);
    assert_true(e32 < 1e-5);
    assert_true(e8 > 0.0 && e8 <= Q8_REL_BOUND);
    assert_true(finite && e4 > e8 && e4 < 1.0);
    assert_true(file_size(q8) < file_size(f32));
    assert_true(file_size(q4) < file_size(q8));
    assert_true(i4.weight_bytes < i8.weight_bytes && i8.weight_bytes < i32.weight_bytes);
    free(o32);
    free(o8);
    free(o4);
    free(ref);
    assert_int_equal(mem_now(), mem0);
}

/* ---- the command line ---------------------------------------------------------------------- */

static void test_cli(void **state) {
    (void)state;
    require_ref();
    const char *bin = getenv("ORION_BIN");
    if (!bin) skip();
    char dir[512], out[512], log[512], cmd[2048];
    path_in(dir, sizeof dir, "old");
    path_in(out, sizeof out, "cli.gguf");
    path_in(log, sizeof log, "cli.log");
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' --threads 2 > '%s' 2>&1", bin, dir, out, log);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    char *text = slurp("cli.log", NULL);
    assert_non_null(text);
    char want[600];
    snprintf(want, sizeof want, "wrote %s\n", out);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "wrote %s/cli.mmproj.gguf (image encoder + projector)", work_dir);
    assert_non_null(strstr(text, want));
    free(text);
    /* a broken directory: a non-zero exit and the reason on stderr */
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' > '%s' 2>&1", bin, work_dir, out, log);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) != 0);
    text = slurp("cli.log", NULL);
    assert_non_null(strstr(text, "no config.json"));
    free(text);
}

/* ---- broken directories ------------------------------------------------------------------ */

/* A fresh copy of the "old" directory at WORK/broken. */
static void fresh(char *dir, size_t n) {
    char src[512], cmd[2200];
    path_in(src, sizeof src, "old");
    path_in(dir, n, "broken");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, src, dir);
    assert_int_equal(system(cmd), 0);
}

/* Replaces the first `from` in DIR/file with `to`. */
static void edit(const char *dir, const char *file, const char *from, const char *to) {
    char rel[600];
    snprintf(rel, sizeof rel, "broken/%s", file);
    size_t n;
    char *text = slurp(rel, &n);
    assert_non_null(text);
    char *at = strstr(text, from);
    if (!at) fail_msg("%s has no '%s'", file, from);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    free(text);
}

static void expect_fail(const char *dir, orion_status want, const char *needle) {
    char out[512];
    path_in(out, sizeof out, "broken-out.gguf");
    const size_t mem0 = mem_now();
    orion_status st = orion_convert(dir, out, NULL);
    printf("  %-22s %s\n", orion_status_str(st), orion_last_error());
    if (st != want)
        fail_msg("status %s, want %s: %s", orion_status_str(st), orion_status_str(want), orion_last_error());
    if (!strstr(orion_last_error(), needle)) fail_msg("message '%s' lacks '%s'", orion_last_error(), needle);
    assert_int_equal(mem_now(), mem0);
    assert_false(file_exists(out));
}

static void test_bad_dirs(void **state) {
    (void)state;
    require_ref();
    char d[512], path[600];
    fresh(d, sizeof d);
    snprintf(path, sizeof path, "%s/config.json", d);
    unlink(path);
    expect_fail(d, ORION_ERR_NOT_FOUND, "no config.json");
    fresh(d, sizeof d);
    edit(d, "config.json", "{", "[");
    expect_fail(d, ORION_ERR_FORMAT, "config.json");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"vision_feature_select_strategy\": \"default\"",
         "\"vision_feature_select_strategy\": \"full\"");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "vision_feature_select_strategy");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"projector_hidden_act\": \"gelu\"", "\"projector_hidden_act\": \"relu\"");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "projector_hidden_act");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"vision_feature_layer\": -2", "\"vision_feature_layer\": -4");
    expect_fail(d, ORION_ERR_FORMAT, "vision_feature_layer");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"vision_feature_layer\": -2", "\"vision_feature_layer\": [-2, -1]");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "vision_feature_layer");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"hidden_act\": \"quick_gelu\"", "\"hidden_act\": \"silu\"");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "hidden_act");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"model_type\": \"clip_vision_model\"", "\"model_type\": \"siglip_vision_model\"");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "clip_vision_model");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"image_size\": 32", "\"image_size\": 30");
    expect_fail(d, ORION_ERR_FORMAT, "patch_size");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"text_config\": {", "\"text_config\": 7, \"x\": {");
    expect_fail(d, ORION_ERR_FORMAT, "text_config");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"model_type\": \"llama\"", "\"model_type\": \"gemma\"");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "text_config.model_type");
    /* the config and the weights disagree */
    fresh(d, sizeof d);
    edit(d, "config.json", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4");
    expect_fail(d, ORION_ERR_FORMAT, "vision_tower.vision_model.encoder.layers.3.self_attn.q_proj.weight' is missing");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2");
    expect_fail(d, ORION_ERR_FORMAT, "is in block 2 but config.json has 2 blocks");
    fresh(d, sizeof d);
    edit(d, "config.json", "\"intermediate_size\": 96", "\"intermediate_size\": 128"); /* text_config's */
    expect_fail(d, ORION_ERR_FORMAT, "mlp.gate_proj.weight' has shape [96, 64] but config.json implies [128, 64]");
    /* preprocessing orion cannot reproduce */
    fresh(d, sizeof d);
    edit(d, "preprocessor_config.json", "\"shortest_edge\": 32", "\"shortest_edge\": 36");
    expect_fail(d, ORION_ERR_UNSUPPORTED, "size");
    fresh(d, sizeof d);
    edit(d, "preprocessor_config.json", "\"image_std\": [", "\"image_std\": [0, ");
    expect_fail(d, ORION_ERR_FORMAT, "image_std");
    /* a truncated weights file */
    fresh(d, sizeof d);
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    assert_int_equal(truncate(path, file_size(path) / 2), 0);
    expect_fail(d, ORION_ERR_FORMAT, "model.safetensors");
    /* no tokenizer */
    fresh(d, sizeof d);
    snprintf(path, sizeof path, "%s/tokenizer.model", d);
    unlink(path);
    expect_fail(d, ORION_ERR_UNSUPPORTED, "tokenizer.model");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_old_names), cmocka_unit_test(test_convert_new_names),
        cmocka_unit_test(test_quantize_mmproj),   cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bad_dirs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
