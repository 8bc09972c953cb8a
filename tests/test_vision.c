/*
 * test_vision.c — images, LLaVA preprocessing, the CLIP encoder + projector
 * and image prompts, against an independent Pillow/PyTorch reference.
 *
 * tests/ref/clip_ref.py (written from the CLIP/ViT papers, HF's
 * CLIPVisionModel structure and LLaVA-1.5's preprocessing) writes test
 * images with Pillow (and its own PNG writer for Adam7 and 16-bit RGB), what
 * Pillow decodes them to, LLaVA's pad + BICUBIC resize at 336 px, the
 * normalized pixel values, two small seeded CLIP models in llama.cpp's
 * mmproj layout with their float64 projector outputs, and a tiny Llama
 * decoder. Checks:
 *   - decoding (PNG: RGB, RGBA, grey, palette, Adam7, 16-bit; JPEG: baseline,
 *     grey, progressive, Adobe CMYK; WebP: lossy, lossless, lossy + alpha)
 *     equals Pillow's convert("RGB") byte for byte;
 *   - pad to square + bicubic resize to 336 equals Pillow byte for byte;
 *     orion_clip_preprocess's floats equal the reference's exactly (bound 0);
 *   - the projector output is within 1e-4 (max |diff|) of PyTorch, with 1
 *     and 2 threads, for a quick-GELU model (select layer -2, llama.cpp's
 *     fc1 = "ffn_down" naming) and an erf-GELU one (feature_layer key,
 *     patch bias, role naming), and at the real ViT-L/14-336 shape with
 *     LLaVA-1.5 7B's projector for one image;
 *   - end to end: "USER: <image>\n... ASSISTANT:" through
 *     orion_llava_eval_prompt (KV cache f32): the logits after the prompt
 *     are within 1e-4 of PyTorch's, and 16 greedy tokens are the same;
 *   - bad images (empty, not an image, truncated PNG and JPEG, zero and huge
 *     declared sizes, over the caller's limits, missing file) fail with the
 *     right status and a message, and leak nothing.
 */
#include "test_greedy.h"

#include <orion.h>

#include <string.h>

#define PROJ_BOUND 1e-4
#define LOGIT_BOUND 1e-4
#define N_GEN 16

static char work_dir[64];
static bool ref_ok;

static int setup(void **state) {
    (void)state;
    snprintf(work_dir, sizeof work_dir, "/tmp/orion_vision_ref_XXXXXX");
    if (!mkdtemp(work_dir)) return -1;
    char arg[1100];
    snprintf(arg, sizeof arg, "make '%s'", work_dir);
    ref_ok = test_run_ref_script("clip_ref.py", arg, "torch, numpy and PIL (Debian: python3-torch python3-numpy "
                                                     "python3-pil)");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    test_remove_flat_dir(work_dir);
    return 0;
}

static void require_ref(void) {
    if (!ref_ok) fail_msg("the reference did not run: install python3-torch, python3-numpy and python3-pil "
                          "with scripts/setup.sh (see the messages above)");
}

static void path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", work_dir, name);
}

/* Reads a whole file from the work dir; *n gets its size. NULL if missing. */
static void *slurp(const char *name, size_t *n) {
    char path[512];
    path_in(path, sizeof path, name);
    return test_read_file(path, n);
}

static void *slurp_ext(const char *stem, const char *ext, size_t *n) {
    char name[300];
    snprintf(name, sizeof name, "%.200s%.32s", stem, ext);
    return slurp(name, n);
}

static void check_no_leak(size_t before) {
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    assert_int_equal(ms.bytes_in_use, before);
}

static size_t mem_now(void) {
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    return ms.bytes_in_use;
}

/* ---- decoding and preprocessing ---------------------------------------------------- */

static void test_decode_and_resize(void **state) {
    (void)state;
    require_ref();
    size_t n_list;
    char *list = slurp("images.txt", &n_list);
    assert_non_null(list);
    list = realloc(list, n_list + 1);
    list[n_list] = '\0';
    const size_t mem0 = mem_now();
    const uint8_t fill[3] = {122, 116, 104}; /* int(CLIP mean * 255) */
    int n_images = 0;
    for (char *name = strtok(list, "\n"); name; name = strtok(NULL, "\n")) {
        char stem[256], path[512];
        snprintf(stem, sizeof stem, "%.*s", (int)(strrchr(name, '.') - name), name);
        path_in(path, sizeof path, name);
        size_t n_rgb, n_hw, n_r;
        uint8_t *rgb = slurp_ext(stem, ".rgb", &n_rgb), *r336 = slurp_ext(stem, ".r336", &n_r);
        char *hw = slurp_ext(stem, ".hw", &n_hw);
        assert_non_null(rgb);
        assert_non_null(r336);
        assert_non_null(hw);
        int w = 0, h = 0;
        assert_int_equal(sscanf(hw, "%d %d", &w, &h), 2);
        orion_image *img = NULL, *sq = NULL, *rs = NULL;
        orion_status st = orion_image_load(path, NULL, &img);
        if (st != ORION_OK) fail_msg("%s: %s", name, orion_last_error());
        assert_int_equal(img->width, w);
        assert_int_equal(img->height, h);
        assert_int_equal(n_rgb, (size_t)w * (size_t)h * 3);
        size_t diff = 0;
        for (size_t i = 0; i < n_rgb; i++) diff += img->rgb[i] != rgb[i];
        if (diff) fail_msg("%s: %zu of %zu decoded bytes differ from Pillow's", name, diff, n_rgb);
        assert_int_equal(orion_image_pad_square(img, fill, &sq), ORION_OK);
        assert_int_equal(orion_image_resize_bicubic(sq, 336, 336, &rs), ORION_OK);
        assert_int_equal(n_r, (size_t)336 * 336 * 3);
        int maxd = 0;
        for (size_t i = 0; i < n_r; i++) {
            int d = abs((int)rs->rgb[i] - (int)r336[i]);
            if (d > maxd) maxd = d;
            diff += d != 0;
        }
        printf("  %-18s %4d x %-4d decoded = Pillow; pad + bicubic 336: %zu bytes differ (max %d)\n", name, w, h,
               diff, maxd);
        if (diff) fail_msg("%s: padded + resized image differs from Pillow's in %zu bytes", name, diff);
        orion_image_free(img);
        orion_image_free(sq);
        orion_image_free(rs);
        free(rgb);
        free(r336);
        free(hw);
        n_images++;
    }
    assert_true(n_images >= 12);
    free(list);
    check_no_leak(mem0);
}

/* orion_clip_preprocess on the decoded images vs the reference's floats
 * (clip_quick is 32 px with CLIP's mean and std). */
static void test_preprocess(void **state) {
    (void)state;
    require_ref();
    char path[512];
    path_in(path, sizeof path, "clip_quick.gguf");
    orion_clip *clip = NULL;
    assert_int_equal(orion_clip_load(path, NULL, &clip), ORION_OK);
    static const char *const names[] = {"wide.png", "tall.png", "big.png", "tiny.png", "rgba.png", "photo.jpg",
                                        "rgb16.png"};
    float pix[3 * 32 * 32];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char stem[64];
        snprintf(stem, sizeof stem, "%.*s", (int)(strrchr(names[i], '.') - names[i]), names[i]);
        path_in(path, sizeof path, names[i]);
        orion_image *img = NULL;
        assert_int_equal(orion_image_load(path, NULL, &img), ORION_OK);
        assert_int_equal(orion_clip_preprocess(clip, img, pix), ORION_OK);
        size_t n;
        float *ref = slurp_ext(stem, ".pix32", &n);
        assert_non_null(ref);
        assert_int_equal(n, sizeof pix);
        double maxd = 0;
        for (size_t j = 0; j < 3 * 32 * 32; j++) maxd = fmax(maxd, fabs((double)pix[j] - ref[j]));
        printf("  %-10s pixel values: max |diff| %.3g\n", names[i], maxd);
        assert_true(maxd == 0.0);
        free(ref);
        orion_image_free(img);
    }
    orion_clip_free(clip);
}

/* ---- the encoder ---------------------------------------------------------------------- */

static void test_projector(void **state) {
    (void)state;
    require_ref();
    size_t n;
    char *man = slurp("manifest.txt", &n);
    assert_non_null(man);
    man = realloc(man, n + 1);
    man[n] = '\0';
    int n_models = 0;
    for (char *line = strtok(man, "\n"); line; line = strtok(NULL, "\n")) {
        char name[32];
        int S, P, E, H, L, used, F, M, O;
        assert_int_equal(sscanf(line, "%31s %d %d %d %d %d %d %d %d %d", name, &S, &P, &E, &H, &L, &used, &F, &M, &O),
                         10);
        char path[512], file[64];
        snprintf(file, sizeof file, "%s.gguf", name);
        path_in(path, sizeof path, file);
        size_t n_pix, n_proj;
        float *pix = slurp_ext(name, ".pix", &n_pix), *ref = slurp_ext(name, ".proj", &n_proj);
        assert_non_null(pix);
        assert_non_null(ref);
        const int NP = (S / P) * (S / P);
        assert_int_equal(n_proj, sizeof(float) * (size_t)NP * (size_t)O);
        float *out = malloc(n_proj), *pix2 = malloc(n_pix);
        for (int threads = 1; threads <= 2; threads++) {
            const size_t mem0 = mem_now();
            orion_clip_params cp = orion_clip_default_params();
            cp.n_threads = threads;
            orion_clip *clip = NULL;
            if (orion_clip_load(path, &cp, &clip) != ORION_OK) fail_msg("%s: %s", name, orion_last_error());
            orion_clip_info in;
            orion_clip_get_info(clip, &in);
            assert_int_equal(in.image_size, S);
            assert_int_equal(in.patch_size, P);
            assert_int_equal(in.n_patches, NP);
            assert_int_equal(in.n_embd, E);
            assert_int_equal(in.n_head, H);
            assert_int_equal(in.n_layer, L);
            assert_int_equal(in.n_layer_used, used);
            assert_int_equal(in.n_ff, F);
            assert_int_equal(in.n_mm_hidden, M);
            assert_int_equal(in.n_out, O);
            /* the reference's pixels came from llava.png */
            orion_image *img = NULL;
            path_in(path, sizeof path, "llava.png");
            assert_int_equal(orion_image_load(path, NULL, &img), ORION_OK);
            assert_int_equal(orion_clip_preprocess(clip, img, pix2), ORION_OK);
            assert_memory_equal(pix, pix2, n_pix);
            if (orion_clip_encode_pixels(clip, pix, out) != ORION_OK) fail_msg("%s: %s", name, orion_last_error());
            double maxd = 0, maxv = 0;
            for (size_t i = 0; i < (size_t)NP * (size_t)O; i++) {
                maxd = fmax(maxd, fabs((double)out[i] - ref[i]));
                maxv = fmax(maxv, fabs((double)ref[i]));
            }
            printf("  %-10s %d thread(s): %d patches x %d, max |diff| %.2e (values up to %.2f), scratch %.2f MiB\n",
                   name, threads, NP, O, maxd, maxv, in.scratch_bytes / 1048576.0);
            if (!(maxd <= PROJ_BOUND)) fail_msg("%s: projector output differs by %g > %g", name, maxd, PROJ_BOUND);
            /* encode = preprocess + encode_pixels */
            float *out2 = malloc(n_proj);
            assert_int_equal(orion_clip_encode(clip, img, out2), ORION_OK);
            assert_memory_equal(out, out2, n_proj);
            free(out2);
            orion_image_free(img);
            orion_clip_free(clip);
            path_in(path, sizeof path, file);
            check_no_leak(mem0);
        }
        free(out);
        free(pix2);
        free(pix);
        free(ref);
        n_models++;
    }
    assert_int_equal(n_models, 2);
    free(man);
}

/* The real shape, one image: CLIP ViT-L/14-336 + LLaVA-1.5 7B's projector
 * (seeded, f32, 1.2 GB) against the float64 reference. Skipped with the
 * plain-C kernels forced (ORION_FORCE_REF): 390 GFLOP of scalar code would
 * take minutes, and the reference kernels are checked against the SIMD
 * ones by the kernel tests. */
static void test_projector_vitl(void **state) {
    (void)state;
    require_ref();
    if (getenv("ORION_FORCE_REF")) {
        printf("  skipped with the plain-C kernels (ORION_FORCE_REF): 390 GFLOP of scalar code\n");
        skip();
    }
    char arg[1100], path[512];
    snprintf(arg, sizeof arg, "vitl '%s'", work_dir);
    assert_true(test_run_ref_script("clip_ref.py", arg, "torch, numpy and PIL"));
    size_t n_pix, n_proj;
    float *pix = slurp("vitl.pix", &n_pix), *ref = slurp("vitl.proj", &n_proj);
    assert_non_null(pix);
    assert_non_null(ref);
    const size_t mem0 = mem_now();
    orion_clip_params cp = orion_clip_default_params();
    cp.n_threads = 2;
    orion_clip *clip = NULL;
    path_in(path, sizeof path, "vitl.gguf");
    if (orion_clip_load(path, &cp, &clip) != ORION_OK) fail_msg("vitl: %s", orion_last_error());
    orion_clip_info in;
    orion_clip_get_info(clip, &in);
    assert_int_equal(in.image_size, 336);
    assert_int_equal(in.n_patches, 576);
    assert_int_equal(in.n_embd, 1024);
    assert_int_equal(in.n_layer_used, 23);
    assert_int_equal(in.n_out, 4096);
    assert_int_equal(n_proj, sizeof(float) * 576 * 4096);
    orion_image *img = NULL;
    path_in(path, sizeof path, "llava.png");
    assert_int_equal(orion_image_load(path, NULL, &img), ORION_OK);
    float *pix2 = malloc(n_pix), *out = malloc(n_proj);
    assert_int_equal(orion_clip_preprocess(clip, img, pix2), ORION_OK);
    assert_memory_equal(pix, pix2, n_pix); /* preprocessing equal to the reference's */
    if (orion_clip_encode_pixels(clip, pix, out) != ORION_OK) fail_msg("vitl: %s", orion_last_error());
    double maxd = 0, maxv = 0, se = 0, sv = 0;
    for (size_t i = 0; i < (size_t)576 * 4096; i++) {
        const double d = (double)out[i] - ref[i];
        maxd = fmax(maxd, fabs(d));
        maxv = fmax(maxv, fabs((double)ref[i]));
        se += d * d;
        sv += (double)ref[i] * ref[i];
    }
    printf("  vitl       2 threads: 576 patches x 4096, max |diff| %.2e (values up to %.2f), rel RMS %.1e, "
           "weights %.1f MiB, scratch %.2f MiB\n",
           maxd, maxv, sqrt(se / sv), in.weight_bytes / 1048576.0, in.scratch_bytes / 1048576.0);
    if (!(maxd <= PROJ_BOUND)) fail_msg("vitl: projector output differs by %g > %g", maxd, PROJ_BOUND);
    free(out);
    free(pix2);
    orion_image_free(img);
    orion_clip_free(clip);
    check_no_leak(mem0);
    path_in(path, sizeof path, "vitl.gguf");
    unlink(path); /* 1.2 GB: not kept until teardown */
    free(pix);
    free(ref);
}

/* ---- end to end ---------------------------------------------------------------------------- */

static void test_llava_generate(void **state) {
    (void)state;
    require_ref();
    char path[512];
    const size_t mem0 = mem_now();
    orion_llm_params lp = orion_llm_default_params();
    lp.kv_type = ORION_TYPE_F32;
    lp.n_ctx = 128;
    lp.n_batch = 7; /* prompt parts split over several batches */
    orion_llm *llm = NULL;
    orion_clip *clip = NULL;
    orion_image *img = NULL;
    path_in(path, sizeof path, "lm.gguf");
    if (orion_llm_load(path, &lp, &llm) != ORION_OK) fail_msg("%s", orion_last_error());
    path_in(path, sizeof path, "clip_quick.gguf");
    assert_int_equal(orion_clip_load(path, NULL, &clip), ORION_OK);
    path_in(path, sizeof path, "llava.png");
    assert_int_equal(orion_image_load(path, NULL, &img), ORION_OK);
    orion_clip_info ci;
    orion_clip_get_info(clip, &ci);
    orion_llm_info li;
    orion_llm_get_info(llm, &li);
    assert_int_equal(ci.n_out, li.n_embd);
    float *emb = malloc(sizeof(float) * (size_t)ci.n_patches * (size_t)ci.n_out);
    assert_int_equal(orion_clip_encode(clip, img, emb), ORION_OK);

    const char *prompt = "USER: <image>\nthe a and is it ASSISTANT:";
    int32_t text[64], n_text = 0, n_past = 0, n_before = 0, before[16];
    float *logits = malloc(sizeof(float) * (size_t)li.n_vocab);
    if (orion_llava_eval_prompt(llm, prompt, emb, ci.n_patches, 0, logits, &n_past, text, 64, &n_text) != ORION_OK)
        fail_msg("%s", orion_last_error());
    assert_int_equal(orion_llm_tokenize_special(llm, "USER: ", 6, true, before, 16, &n_before), ORION_OK);
    assert_int_equal(n_past, n_text + ci.n_patches);
    assert_memory_equal(before, text, sizeof(int32_t) * (size_t)n_before);

    /* the reference runs on the same token ids */
    char tok_path[512];
    path_in(tok_path, sizeof tok_path, "prompt.tok");
    FILE *f = fopen(tok_path, "wb");
    assert_non_null(f);
    int32_t hdr[2] = {n_before, n_text - n_before};
    assert_int_equal(fwrite(hdr, sizeof hdr, 1, f), 1);
    assert_int_equal(fwrite(text, sizeof(int32_t), (size_t)n_text, f), (size_t)n_text);
    fclose(f);
    char arg[1100];
    snprintf(arg, sizeof arg, "generate '%s'", work_dir);
    assert_true(test_run_ref_script("clip_ref.py", arg, "torch, numpy and PIL"));
    size_t n;
    float *ref_logits = slurp("prompt.logits", &n);
    int32_t *ref_gen = slurp("gen.tok", NULL);
    assert_non_null(ref_logits);
    assert_non_null(ref_gen);
    assert_int_equal(n, sizeof(float) * (size_t)li.n_vocab);
    double maxd = 0;
    for (int i = 0; i < li.n_vocab; i++) maxd = fmax(maxd, fabs((double)logits[i] - ref_logits[i]));

    const int same = test_greedy_match(llm, logits, li.n_vocab, n_past, ref_gen, N_GEN);
    printf("  prompt: %d text + %d image positions; logits max |diff| %.2e; greedy: %d of %d tokens as PyTorch\n",
           n_text, ci.n_patches, maxd, same, N_GEN);
    assert_true(maxd <= LOGIT_BOUND);
    assert_int_equal(same, N_GEN);

    /* without <image>: BOS, the image, then the text */
    assert_int_equal(orion_llava_eval_prompt(llm, "describe", emb, ci.n_patches, 0, NULL, &n_past, text, 64, &n_text),
                     ORION_OK);
    assert_int_equal(text[0], li.bos);
    assert_int_equal(n_past, n_text + ci.n_patches);
    /* errors */
    assert_int_equal(orion_llava_eval_prompt(llm, "x <image> y", emb, ci.n_patches, 100, NULL, &n_past, NULL, 0, NULL),
                     ORION_ERR_RANGE);
    emb[5] = NAN;
    assert_int_equal(orion_llm_eval_embeddings(llm, emb, 2, 0, NULL, false), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_llm_eval_embeddings(llm, NULL, 2, 0, NULL, false), ORION_ERR_INVALID_ARG);

    free(ref_logits);
    free(ref_gen);
    free(logits);
    free(emb);
    orion_image_free(img);
    orion_clip_free(clip);
    orion_llm_free(llm);
    check_no_leak(mem0);
}

/* ---- orion chat with /image -------------------------------------------------------- */

/* What `orion chat` prints for a reply of reference tokens: pieces up to
 * EOS or max, the first one's leading space dropped. */
static void reply_text(orion_llm *llm, const int32_t *gen, int n, int max, int32_t eos, char *out, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < n && i < max && gen[i] != eos; i++) {
        char piece[256];
        size_t k = orion_llm_token_to_piece(llm, gen[i], piece, sizeof piece);
        const char *p = piece;
        if (i == 0 && k > 0 && p[0] == ' ') p++, k--;
        assert_true(len + k < cap);
        memcpy(out + len, p, k);
        len += k;
    }
    out[len] = '\0';
}

/* The reference's greedy reply to a formatted conversation with the image
 * where "<image>" stands. */
static void ref_reply(orion_llm *llm, const char *conv, int max, int32_t eos, char *out, size_t cap) {
    const char *tag = strstr(conv, "<image>");
    assert_non_null(tag);
    int32_t ids[512], nb = 0, na = 0;
    assert_int_equal(orion_llm_tokenize_special(llm, conv, (size_t)(tag - conv), false, ids, 512, &nb), ORION_OK);
    assert_int_equal(orion_llm_tokenize_special(llm, tag + 7, strlen(tag + 7), false, ids + nb, 512 - nb, &na),
                     ORION_OK);
    char tok_path[512];
    path_in(tok_path, sizeof tok_path, "prompt.tok");
    FILE *f = fopen(tok_path, "wb");
    assert_non_null(f);
    int32_t hdr[2] = {nb, na};
    assert_int_equal(fwrite(hdr, sizeof hdr, 1, f), 1);
    assert_int_equal(fwrite(ids, sizeof(int32_t), (size_t)(nb + na), f), (size_t)(nb + na));
    fclose(f);
    char arg[1100];
    snprintf(arg, sizeof arg, "generate '%s'", work_dir);
    assert_true(test_run_ref_script("clip_ref.py", arg, "torch, numpy and PIL"));
    int32_t *gen = slurp("gen.tok", NULL);
    assert_non_null(gen);
    reply_text(llm, gen, N_GEN, max, eos, out, cap);
    free(gen);
}

/* Two turns of `orion chat --mmproj` (vicuna template, greedy): the image
 * attached with /image, the second turn reusing the KV cache. Each reply
 * equals the PyTorch reference's greedy reply to the whole conversation so
 * far, and the replies depend on the image (a turn without it differs). */
static void test_chat_image(void **state) {
    (void)state;
    require_ref();
    const char *bin = getenv("ORION_BIN");
    if (!bin) skip();
    enum { MAXN = 8 };
    char lm[512], proj[512], png[512], in_path[512], out_path[512], cmd[4096];
    path_in(lm, sizeof lm, "lm.gguf");
    path_in(proj, sizeof proj, "clip_quick.gguf");
    path_in(png, sizeof png, "llava.png");
    path_in(in_path, sizeof in_path, "chat.in");
    path_in(out_path, sizeof out_path, "chat.out");
    orion_llm_params lp = orion_llm_default_params();
    lp.kv_type = ORION_TYPE_F32;
    lp.n_ctx = 128;
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(lm, &lp, &llm), ORION_OK);
    orion_llm_info li;
    orion_llm_get_info(llm, &li);

    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    fprintf(f, "/image %s/missing.png\n/image %s\nthe a and\nis it\n/reset\nthe a and\n/quit\n", work_dir, png);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "'%s' chat '%s' --mmproj '%s' --template vicuna --temp 0 -n %d --kv-type f32 --ctx 128 --threads 2 "
             "< '%s' > '%s'",
             bin, lm, proj, MAXN, in_path, out_path);
    int rc = system(cmd);
    assert_true(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    char *got = slurp("chat.out", NULL);
    assert_non_null(got);

    char r1[1024], r2[1024], r3[1024], conv[4096], want[4096];
    ref_reply(llm, "<s>USER: <image>\nthe a and ASSISTANT:", MAXN, li.eos, r1, sizeof r1);
    snprintf(conv, sizeof conv, "<s>USER: <image>\nthe a and ASSISTANT: %s</s>USER: is it ASSISTANT:", r1);
    ref_reply(llm, conv, MAXN, li.eos, r2, sizeof r2);
    /* after /reset the image is gone: the plain text turn, computed by orion itself */
    int32_t ids[64], n = 0;
    const char *plain = "<s>USER: the a and ASSISTANT:";
    assert_int_equal(orion_llm_tokenize_special(llm, plain, strlen(plain), false, ids, 64, &n), ORION_OK);
    float *logits = malloc(sizeof(float) * (size_t)li.n_vocab);
    assert_int_equal(orion_llm_eval(llm, ids, n, 0, logits, false), ORION_OK);
    int32_t gen[MAXN];
    for (int i = 0; i < MAXN; i++) {
        int32_t best = 0;
        for (int v = 1; v < li.n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        gen[i] = best;
        assert_int_equal(orion_llm_eval(llm, &best, 1, n + i, logits, false), ORION_OK);
    }
    reply_text(llm, gen, MAXN, MAXN, li.eos, r3, sizeof r3);
    snprintf(want, sizeof want, "%s\n%s\n%s\n", r1, r2, r3);
    if (strcmp(got, want) != 0) fprintf(stderr, "orion chat printed:\n[%s]\nexpected:\n[%s]\n", got, want);
    assert_string_equal(got, want);
    assert_true(strcmp(r1, r3) != 0); /* the image matters */
    printf("  chat: turn 1 \"%s\", turn 2 (KV reused) \"%s\", without the image \"%s\"\n", r1, r2, r3);
    free(logits);
    free(got);
    orion_llm_free(llm);
}

/* ---- bad input ------------------------------------------------------------------------------- */

static orion_status load_mem(const void *p, size_t n, const orion_image_limits *lim) {
    orion_image *img = (orion_image *)1;
    orion_status st = orion_image_load_memory(p, n, lim, &img);
    if (st != ORION_OK) {
        assert_null(img);
        assert_true(orion_last_error()[0] != '\0');
        printf("  %-40s -> %s\n", orion_status_str(st), orion_last_error());
    }
    orion_image_free(st == ORION_OK ? img : NULL);
    return st;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* PNG's CRC-32 (ISO 3309), bit by bit. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

/* Rewrites a PNG's IHDR size (and its CRC): IHDR data starts at byte 16. */
static void set_png_size(uint8_t *png, uint32_t w, uint32_t h) {
    put_be32(png + 16, w);
    put_be32(png + 20, h);
    put_be32(png + 29, crc32_png(png + 12, 17));
}

/* Rewrites a JPEG's SOF0/SOF2 height and width. */
static bool set_jpeg_size(uint8_t *j, size_t n, uint16_t w, uint16_t h) {
    for (size_t i = 2; i + 9 < n;) {
        if (j[i] != 0xff) return false;
        uint8_t m = j[i + 1];
        size_t len = (size_t)j[i + 2] << 8 | j[i + 3];
        if (m == 0xc0 || m == 0xc2) {
            j[i + 5] = (uint8_t)(h >> 8), j[i + 6] = (uint8_t)h, j[i + 7] = (uint8_t)(w >> 8), j[i + 8] = (uint8_t)w;
            return true;
        }
        i += 2 + len;
    }
    return false;
}

static void test_bad_images(void **state) {
    (void)state;
    require_ref();
    const size_t mem0 = mem_now();
    size_t n_png, n_jpg;
    uint8_t *png = slurp("wide.png", &n_png), *jpg = slurp("photo.jpg", &n_jpg);
    assert_non_null(png);
    assert_non_null(jpg);
    orion_image_limits lim = orion_image_default_limits();
    /* the originals load */
    assert_int_equal(load_mem(png, n_png, NULL), ORION_OK);
    assert_int_equal(load_mem(jpg, n_jpg, NULL), ORION_OK);
    assert_int_equal(load_mem("", 0, NULL), ORION_ERR_FORMAT);
    assert_int_equal(load_mem("hello, this is text", 19, NULL), ORION_ERR_FORMAT);
    assert_int_equal(load_mem(png, 8, NULL), ORION_ERR_FORMAT);          /* signature only */
    assert_int_equal(load_mem(png, n_png / 2, NULL), ORION_ERR_FORMAT);  /* truncated in IDAT */
    assert_int_equal(load_mem(png, 30, NULL), ORION_ERR_FORMAT);         /* truncated in IHDR */
    assert_int_equal(load_mem(jpg, n_jpg / 2, NULL), ORION_ERR_FORMAT);  /* truncated scan */
    assert_int_equal(load_mem(jpg, 3, NULL), ORION_ERR_FORMAT);          /* SOI only */
    assert_true(strstr(orion_last_error(), "JPEG") != NULL);
    /* WebP: truncated, header only, a VP8L declaring 16384 x 16384, animated */
    size_t n_webp, n_vp8l, n_anim;
    uint8_t *webp = slurp("lossy.webp", &n_webp), *vp8l = slurp("lossless.webp", &n_vp8l);
    uint8_t *anim = slurp("anim.webp", &n_anim);
    assert_non_null(webp);
    assert_non_null(vp8l);
    assert_non_null(anim);
    assert_int_equal(load_mem(webp, n_webp, NULL), ORION_OK);
    assert_int_equal(load_mem(webp, n_webp / 2, NULL), ORION_ERR_FORMAT);
    assert_int_equal(load_mem(webp, 12, NULL), ORION_ERR_FORMAT);
    assert_true(strstr(orion_last_error(), "WebP") != NULL);
    assert_true(n_vp8l > 25 && memcmp(vp8l + 12, "VP8L", 4) == 0 && vp8l[20] == 0x2f);
    uint32_t bits = (uint32_t)vp8l[21] | (uint32_t)vp8l[22] << 8 | (uint32_t)vp8l[23] << 16 | (uint32_t)vp8l[24] << 24;
    bits = (bits & 0xf0000000u) | 16383u | 16383u << 14; /* width - 1, height - 1 */
    for (int i = 0; i < 4; i++) vp8l[21 + i] = (uint8_t)(bits >> (8 * i));
    assert_int_equal(load_mem(vp8l, n_vp8l, NULL), ORION_ERR_LIMIT);
    assert_true(strstr(orion_last_error(), "16384 x 16384") != NULL);
    assert_int_equal(load_mem(anim, n_anim, NULL), ORION_ERR_UNSUPPORTED);
    free(webp);
    free(vp8l);
    free(anim);
    /* declared sizes: zero, huge, over the caller's limits */
    uint8_t *p2 = malloc(n_png);
    memcpy(p2, png, n_png);
    set_png_size(p2, 0, 30);
    assert_int_equal(load_mem(p2, n_png, NULL), ORION_ERR_FORMAT);
    set_png_size(p2, 1000000, 1000000);
    assert_int_equal(load_mem(p2, n_png, NULL), ORION_ERR_LIMIT);
    set_png_size(p2, 16384, 16384); /* within each dimension, over max_pixels */
    assert_int_equal(load_mem(p2, n_png, NULL), ORION_ERR_LIMIT);
    set_png_size(p2, 0x7fffffff, 1);
    assert_int_equal(load_mem(p2, n_png, NULL), ORION_ERR_LIMIT);
    set_png_size(p2, 45, 3000); /* plausible, but the data is for 30 rows */
    assert_int_equal(load_mem(p2, n_png, NULL), ORION_ERR_FORMAT);
    uint8_t *j2 = malloc(n_jpg);
    memcpy(j2, jpg, n_jpg);
    assert_true(set_jpeg_size(j2, n_jpg, 65000, 65000));
    assert_int_equal(load_mem(j2, n_jpg, NULL), ORION_ERR_LIMIT);
    assert_true(set_jpeg_size(j2, n_jpg, 64, 0));
    assert_int_equal(load_mem(j2, n_jpg, NULL), ORION_ERR_FORMAT);
    lim.max_width = 40;
    assert_int_equal(load_mem(png, n_png, &lim), ORION_ERR_LIMIT);
    lim = orion_image_default_limits();
    lim.max_pixels = 45 * 30 - 1;
    assert_int_equal(load_mem(png, n_png, &lim), ORION_ERR_LIMIT);
    lim = orion_image_default_limits();
    lim.max_bytes = n_png - 1;
    assert_int_equal(load_mem(png, n_png, &lim), ORION_ERR_LIMIT);
    lim.max_width = 0;
    assert_int_equal(load_mem(png, n_png, &lim), ORION_ERR_INVALID_ARG);
    /* a corrupt byte in the compressed data: a CRC error */
    memcpy(p2, png, n_png);
    p2[n_png / 2] ^= 0x55;
    assert_int_equal(load_mem(p2, n_png, NULL), ORION_ERR_FORMAT);
    orion_image *img = NULL;
    assert_int_equal(orion_image_load("/nonexistent/x.png", NULL, &img), ORION_ERR_NOT_FOUND);
    assert_int_equal(orion_image_new(0, 5, &img), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_image_new(1 << 30, 1 << 30, &img), ORION_ERR_RANGE);
    free(p2);
    free(j2);
    free(png);
    free(jpg);
    check_no_leak(mem0);
}

/* A projector file with a tensor missing or the wrong architecture fails
 * with a message naming it. */
static void test_bad_models(void **state) {
    (void)state;
    require_ref();
    char path[512];
    orion_clip *clip = NULL;
    path_in(path, sizeof path, "lm.gguf");
    assert_int_equal(orion_clip_load(path, NULL, &clip), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "clip"));
    path_in(path, sizeof path, "nonexistent.gguf");
    assert_int_not_equal(orion_clip_load(path, NULL, &clip), ORION_OK);
    assert_null(clip);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_and_resize), cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_projector),         cmocka_unit_test(test_projector_vitl),
        cmocka_unit_test(test_llava_generate),    cmocka_unit_test(test_chat_image),
        cmocka_unit_test(test_bad_images),        cmocka_unit_test(test_bad_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
