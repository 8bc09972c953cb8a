/*
 * test_serve_vision.c — images in `orion serve` (LLaVA-1.5 models with a
 * projector), over real HTTP against an in-process server, on the tiny
 * seeded LLaVA pair tests/ref/clip_ref.py writes (lm.gguf + clip_quick.gguf,
 * llava.png):
 *
 *   - OpenAI /v1/chat/completions with an image_url data URL, Ollama
 *     /api/generate and /api/chat with "images": greedy replies equal
 *     orion_llava_eval_prompt + greedy on the same prompt and image in
 *     process (the chat ones on the model's template), and differ from the
 *     same request without the image; two images in one message equal a
 *     hand-made splice (text, rows, text, rows, text) through
 *     orion_llm_eval / orion_llm_eval_embeddings; the npm `openai` and
 *     `ollama` clients (streamed and not) give the same texts;
 *   - bad images: a model without a projector, bad base64, not an image,
 *     truncated, zero and 100000 x 100000 declared sizes, too many, too
 *     large, empty, non-image data URLs, a misplaced "<image>", remote URLs
 *     while disabled — each a 400 with a message, and the server answers
 *     a good request afterwards;
 *   - remote URLs (--allow-remote-images) against a small HTTP server of
 *     the test's own on 127.0.0.1: the fetched image gives the data URL's
 *     reply; 404, over the byte cap (with and without Content-Length), too
 *     slow, a redirect to file:// are 400s; an http redirect is followed;
 *   - the manager: need and status include the projector, /api/ps, /api/tags
 *     and /v1/models show it, unloading the model frees it (the counting
 *     allocator's bytes and /proc/self/maps back to before), a registry
 *     entry's relative "mmproj"; projectors for no model, for an embedding
 *     model, or files that are not projectors stop the server's start.
 */
#include "test_util.h"
#include "test_http.h"

#include "core/core.h"
#include "orion.h"
#include "service/service.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define N_NEW 12
#define GEN_CTX 96 /* the decoder's KV positions, in the server and the reference */

static char work_dir[64];
static bool ref_ok;
static char lm_path[512], proj_path[512], png_path[512];

static int setup(void **state) {
    (void)state;
    snprintf(work_dir, sizeof work_dir, "/tmp/orion_serve_vision_XXXXXX");
    if (!mkdtemp(work_dir)) return -1;
    char arg[1100];
    snprintf(arg, sizeof arg, "make '%s' > /dev/null", work_dir);
    ref_ok = test_run_ref_script("clip_ref.py", arg, "torch, numpy and PIL (Debian: python3-torch python3-numpy "
                                                     "python3-pil)");
    snprintf(lm_path, sizeof lm_path, "%s/lm.gguf", work_dir);
    snprintf(proj_path, sizeof proj_path, "%s/clip_quick.gguf", work_dir);
    snprintf(png_path, sizeof png_path, "%s/llava.png", work_dir);
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

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) abort();
    return p;
}

static uint8_t *slurp(const char *path, size_t *n) {
    uint8_t *buf = test_read_file(path, n);
    assert_non_null(buf);
    return buf;
}

static char *b64(const uint8_t *p, size_t n) {
    char *s = xmalloc((n + 2) / 3 * 4 + 1);
    s[orion__b64_encode(p, n, s)] = 0;
    return s;
}

static uint64_t mem_now(void) {
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    return ms.bytes_in_use;
}

/* ---- the in-process reference -------------------------------------------------------- */

typedef struct ref {
    orion_llm      *llm;
    orion_clip     *clip;
    orion_llm_info  li;
    orion_clip_info ci;
    float          *emb[2];  /* llava.png, grey.png */
} ref;

static void ref_open(ref *r) {
    memset(r, 0, sizeof *r);
    orion_llm_params lp = orion_llm_default_params();
    lp.n_threads = 2;
    lp.n_ctx = GEN_CTX;
    assert_int_equal(orion_llm_load(lm_path, &lp, &r->llm), ORION_OK);
    orion_clip_params cp = orion_clip_default_params();
    cp.n_threads = 2;
    assert_int_equal(orion_clip_load(proj_path, &cp, &r->clip), ORION_OK);
    orion_llm_get_info(r->llm, &r->li);
    orion_clip_get_info(r->clip, &r->ci);
    const char *names[2] = {"llava.png", "grey.png"};
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", work_dir, names[i]);
        orion_image *img = NULL;
        assert_int_equal(orion_image_load(path, NULL, &img), ORION_OK);
        r->emb[i] = malloc(sizeof(float) * (size_t)r->ci.n_patches * (size_t)r->ci.n_out);
        assert_int_equal(orion_clip_encode(r->clip, img, r->emb[i]), ORION_OK);
        orion_image_free(img);
    }
}

static void ref_close(ref *r) {
    for (int i = 0; i < 2; i++) free(r->emb[i]);
    orion_clip_free(r->clip);
    orion_llm_free(r->llm);
}

/* Greedy continuation from logits at position pos: the pieces up to EOS or n. */
static void greedy_from(ref *r, float *logits, int32_t pos, int n, char *out, size_t cap) {
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int v = 1; v < r->li.n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        if (best == r->li.eos) break;
        o += orion_llm_token_to_piece(r->llm, best, out + o, cap - o - 1);
        assert_int_equal(orion_llm_eval(r->llm, &best, 1, pos++, logits, false), ORION_OK);
    }
    out[o] = 0;
}

/* orion_llava_eval_prompt + greedy: the text `orion run --mmproj --image`
 * prints for this prompt (BOS first; the image where "<image>" stands). */
static void ref_llava(ref *r, const char *prompt, char *out, size_t cap) {
    float *logits = malloc(sizeof(float) * (size_t)r->li.n_vocab);
    int32_t n_past = 0;
    assert_int_equal(orion_llava_eval_prompt(r->llm, prompt, r->emb[0], r->ci.n_patches, 0, logits, &n_past, NULL, 0,
                                             NULL),
                     ORION_OK);
    greedy_from(r, logits, n_past, N_NEW, out, cap);
    free(logits);
}

/* A chat's reference: the message in the model's template; its "<s>" is
 * the BOS orion_llava_eval_prompt puts first. */
static void ref_chat(ref *r, const char *content, char *out, size_t cap) {
    orion_chat_message m = {"user", content};
    char text[1024];
    size_t need = 0;
    assert_int_equal(orion_chat_format(orion_llm_chat_template(r->llm), &m, 1, true, text, sizeof text, &need),
                     ORION_OK);
    assert_true(strncmp(text, "<s>", 3) == 0);
    ref_llava(r, text + 3, out, cap);
}

/* ---- HTTP helpers --------------------------------------------------------------------- */

static char *reply_buf(void) {
    static char buf[1 << 20];
    return buf;
}

static int post(int port, const char *path, const char *body, char *reply, size_t cap) {
    size_t n = strlen(body) + 512;
    char *req = malloc(n);
    int len = snprintf(req, n,
                       "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       path, strlen(body), body);
    int code = raw_http(port, req, (size_t)len, reply, cap);
    free(req);
    return code;
}

/* A 200, or the reply printed. */
static void expect_200(int port, const char *path, const char *body, char *reply) {
    int code = post(port, path, body, reply, 1 << 20);
    if (code != 200) fprintf(stderr, "%s: %.600s\n", path, reply);
    assert_int_equal(code, 200);
}

static int get(int port, const char *path, char *reply, size_t cap) {
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return raw_http(port, req, (size_t)n, reply, cap);
}

static cJSON *body_json(const char *reply) {
    const char *b = strstr(reply, "\r\n\r\n");
    assert_non_null(b);
    cJSON *j = cJSON_Parse(b + 4);
    if (!j) fprintf(stderr, "reply: %s\n", reply);
    assert_non_null(j);
    return j;
}

/* The generated text of a whole (non-streamed) reply. */
static void reply_text(const char *reply, int ep, char *out, size_t cap) {
    cJSON *j = body_json(reply);
    const cJSON *t = NULL;
    if (ep == ORION__EP_GENERATE) t = cJSON_GetObjectItemCaseSensitive(j, "response");
    else if (ep == ORION__EP_OLLAMA_CHAT)
        t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "message"), "content");
    else {
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "message"), "content");
    }
    assert_true(cJSON_IsString(t));
    snprintf(out, cap, "%s", t->valuestring);
    cJSON_Delete(j);
}

/* A 400 whose message contains `needle`. */
static void expect_400(int port, const char *path, const char *body, const char *needle) {
    char *reply = reply_buf();
    int code = post(port, path, body, reply, 1 << 20);
    if (code != 400) fprintf(stderr, "expected 400 for %.200s...: %.400s\n", body, reply);
    assert_int_equal(code, 400);
    cJSON *j = body_json(reply);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    assert_true(cJSON_IsString(msg));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "type")->valuestring, "invalid_request_error");
    if (!strstr(msg->valuestring, needle)) fprintf(stderr, "message '%s' lacks '%s'\n", msg->valuestring, needle);
    assert_non_null(strstr(msg->valuestring, needle));
    print_message("  400: %s\n", msg->valuestring);
    cJSON_Delete(j);
}

static orion_server *start(orion_server_params *p) {
    orion_server *s = NULL;
    orion_status st = orion_server_start(p, &s);
    if (st != ORION_OK) fprintf(stderr, "server: %s\n", orion_last_error());
    assert_int_equal(st, ORION_OK);
    return s;
}

static orion_server_model projector[1];

static orion_server_params vision_params(orion_server_model *models) {
    orion_server_params p = orion_server_default_params();
    models[0] = (orion_server_model){"llava", lm_path};
    models[1] = (orion_server_model){"plain", lm_path};
    projector[0] = (orion_server_model){"llava", proj_path};
    p.models = models;
    p.n_models = 2;
    p.projectors = projector;
    p.n_projectors = 1;
    p.port = 0;
    p.n_threads = 2;
    p.gen_ctx = GEN_CTX;
    p.cache_bytes = 0;
    return p;
}

/* An Ollama /api/generate body. */
static char *gen_body(const char *prompt_json, const char *images_json) {
    size_t n = strlen(prompt_json) + (images_json ? strlen(images_json) : 0) + 256;
    char *b = xmalloc(n);
    snprintf(b, n, "{\"model\":\"llava\",\"prompt\":%s%s%s,\"stream\":false,\"options\":{\"temperature\":0,"
                   "\"num_predict\":%d}}",
             prompt_json, images_json ? ",\"images\":" : "", images_json ? images_json : "", N_NEW);
    return b;
}

/* ---- replies equal the in-process reference ------------------------------------------ */

static void test_replies_match_llava(void **state) {
    (void)state;
    require_ref();
    ref r;
    ref_open(&r);
    size_t n_png, n_grey;
    uint8_t *png = slurp(png_path, &n_png);
    char grey_path[600];
    snprintf(grey_path, sizeof grey_path, "%s/grey.png", work_dir);
    uint8_t *grey = slurp(grey_path, &n_grey);
    char *png64 = b64(png, n_png), *grey64 = b64(grey, n_grey);
    size_t big = strlen(png64) + strlen(grey64) + 4096;
    char *body = xmalloc(big), *imgs = xmalloc(big);
    assert_non_null(body);
    assert_non_null(imgs);
    char want[1024], got[1024], plain[1024];

    orion_server_model models[2];
    orion_server_params p = vision_params(models);
    orion_server *s = start(&p);
    int port = orion_server_port(s);
    char *reply = reply_buf();

    /* Ollama generate: the prompt places the image */
    snprintf(imgs, big, "[\"%s\"]", png64);
    char *b = gen_body("\"USER: <image>\\nthe a and ASSISTANT:\"", imgs);
    expect_200(port, "/api/generate", b, reply);
    reply_text(reply, ORION__EP_GENERATE, got, sizeof got);
    free(b);
    ref_llava(&r, "USER: <image>\nthe a and ASSISTANT:", want, sizeof want);
    print_message("  generate, tag in the prompt: \"%s\"\n", got);
    assert_string_equal(got, want);
    /* no tag: "<image>\n" goes before the prompt */
    b = gen_body("\"the a and\"", imgs);
    expect_200(port, "/api/generate", b, reply);
    reply_text(reply, ORION__EP_GENERATE, got, sizeof got);
    free(b);
    ref_llava(&r, "<image>\nthe a and", want, sizeof want);
    assert_string_equal(got, want);
    /* the image matters: without it the same prompt continues otherwise */
    b = gen_body("\"<image>\\nthe a and\"", NULL);
    expect_200(port, "/api/generate", b, reply);
    reply_text(reply, ORION__EP_GENERATE, plain, sizeof plain);
    free(b);
    assert_true(strcmp(plain, want) != 0);

    /* Ollama chat and OpenAI chat: the model's template, the image before the text */
    ref_chat(&r, "<image>\nthe a and", want, sizeof want);
    snprintf(body, big,
             "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":\"the a and\",\"images\":[\"%s\"]}],"
             "\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":%d}}",
             png64, N_NEW);
    expect_200(port, "/api/chat", body, reply);
    reply_text(reply, ORION__EP_OLLAMA_CHAT, got, sizeof got);
    print_message("  chat with the image: \"%s\"\n", got);
    assert_string_equal(got, want);
    const char *forms[2] = {"{\"url\":\"data:image/png;base64,%s\"}", "\"data:image/png;base64,%s\""};
    for (int f = 0; f < 2; f++) {
        char part[64];
        snprintf(part, sizeof part, "%s", forms[f]);
        char *url = xmalloc(big);
        snprintf(url, big, part, png64);
        snprintf(body, big,
                 "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                 "\"image_url\":%s},{\"type\":\"text\",\"text\":\"the a and\"}]}],\"max_tokens\":%d,"
                 "\"temperature\":0}",
                 url, N_NEW);
        free(url);
        expect_200(port, "/v1/chat/completions", body, reply);
        reply_text(reply, ORION__EP_CHAT, got, sizeof got);
        assert_string_equal(got, want);
    }
    /* without the image the chat differs */
    assert_int_equal(post(port, "/api/chat",
                          "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":\"the a and\"}],"
                          "\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":12}}",
                          reply, 1 << 20),
                     200);
    reply_text(reply, ORION__EP_OLLAMA_CHAT, plain, sizeof plain);
    assert_true(strcmp(plain, want) != 0);

    /* two images where their parts stand: text, image, text, image, text,
     * checked against a splice made by hand */
    snprintf(body, big,
             "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"the\"},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}},{\"type\":\"text\","
             "\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}},"
             "{\"type\":\"text\",\"text\":\"is\"}]}],\"max_tokens\":6,\"temperature\":0}",
             png64, grey64);
    expect_200(port, "/v1/chat/completions", body, reply);
    reply_text(reply, ORION__EP_CHAT, got, sizeof got);
    {
        orion_chat_message m = {"user", "the\n<image>\na\n<image>\nis"};
        char text[1024];
        size_t need = 0;
        assert_int_equal(orion_chat_format(orion_llm_chat_template(r.llm), &m, 1, true, text, sizeof text, &need),
                         ORION_OK);
        const char *t1 = strstr(text, "<image>"), *t2 = strstr(t1 + 7, "<image>");
        assert_non_null(t2);
        const char *parts[3] = {text, t1 + 7, t2 + 7};
        size_t lens[3] = {(size_t)(t1 - text), (size_t)(t2 - (t1 + 7)), strlen(t2 + 7)};
        float *logits = malloc(sizeof(float) * (size_t)r.li.n_vocab);
        int32_t pos = 0, ids[256], n = 0;
        for (int k = 0; k < 3; k++) {
            assert_int_equal(orion_llm_tokenize_special(r.llm, parts[k], lens[k], false, ids, 256, &n), ORION_OK);
            assert_int_equal(orion_llm_eval(r.llm, ids, n, pos, logits, false), ORION_OK);
            pos += n;
            if (k < 2) {
                assert_int_equal(orion_llm_eval_embeddings(r.llm, r.emb[k], r.ci.n_patches, pos, NULL, false), ORION_OK);
                pos += r.ci.n_patches;
            }
        }
        greedy_from(&r, logits, pos, 6, want, sizeof want);
        free(logits);
    }
    print_message("  two images: \"%s\"\n", got);
    assert_string_equal(got, want);
    /* six images (96 positions) do not fit the 96-position context: 400 */
    snprintf(imgs, big, "[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"]", grey64, grey64, grey64, grey64, grey64,
             grey64);
    b = gen_body("\"x\"", imgs);
    expect_400(port, "/api/generate", b, "does not fit the context");
    free(b);

    /* the listings show the projector */
    assert_int_equal(get(port, "/api/ps", reply, 1 << 20), 200);
    cJSON *j = body_json(reply);
    bool seen = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "models")) {
        const cJSON *pb = cJSON_GetObjectItemCaseSensitive(it, "projector_bytes");
        const char *name = cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring;
        if (strcmp(name, "llava") == 0) {
            seen = true;
            struct stat sb;
            assert_int_equal(stat(proj_path, &sb), 0);
            assert_true(cJSON_IsNumber(pb) && pb->valuedouble > (double)sb.st_size);
            assert_true(cJSON_GetObjectItemCaseSensitive(it, "mapped_bytes")->valuedouble +
                            cJSON_GetObjectItemCaseSensitive(it, "heap_bytes")->valuedouble >= pb->valuedouble);
        } else {
            assert_null(pb);
        }
    }
    assert_true(seen);
    cJSON_Delete(j);
    assert_int_equal(get(port, "/api/tags", reply, 1 << 20), 200);
    assert_non_null(strstr(reply, "\"families\":[\"llama\",\"clip\"]"));
    assert_int_equal(get(port, "/v1/models", reply, 1 << 20), 200);
    assert_non_null(strstr(reply, "\"vision\":true"));
    assert_int_equal(get(port, "/api/profile", reply, 1 << 20), 200); /* the dashboard's data */
    assert_non_null(strstr(reply, "\"projector_bytes\":"));

    /* the npm clients, streamed and not */
    if (system("node --version >/dev/null 2>&1") == 0) {
        char tdir[1024], cmd[4096], png_json[1024];
        test_tests_dir(tdir, sizeof tdir);
#ifdef ORION_NPM_DIR
        const char *npm = ORION_NPM_DIR;
#else
        const char *npm = "third_party/npm/node_modules";
#endif
        snprintf(png_json, sizeof png_json, "%s/npm.json", work_dir);
        /* the expected texts' bytes, for the script to decode as the clients do */
        const char *want_files[2] = {"want_chat.txt", "want_gen.txt"};
        char wpath[2][600];
        for (int k = 0; k < 2; k++) {
            if (k == 0) ref_chat(&r, "<image>\nthe a and", want, sizeof want);
            else ref_llava(&r, "<image>\nthe a and", want, sizeof want);
            snprintf(wpath[k], sizeof wpath[k], "%s/%s", work_dir, want_files[k]);
            FILE *wf = fopen(wpath[k], "wb");
            assert_non_null(wf);
            fwrite(want, 1, strlen(want), wf);
            fclose(wf);
        }
        snprintf(cmd, sizeof cmd,
                 "node '%s/ref/serve_vision_client.mjs' http://127.0.0.1:%d llava '%s' 'the a and' %d '%s' '%s' '%s' > '%s'",
                 tdir, port, png_path, N_NEW, npm, wpath[0], wpath[1], png_json);
        assert_int_equal(system(cmd), 0);
        size_t n;
        char *out = (char *)slurp(png_json, &n);
        out[n] = 0;
        cJSON *o = cJSON_Parse(out);
        assert_non_null(o);
        const char *keys[5] = {"openai_full", "openai_stream", "ollama_chat", "ollama_chat_stream", "ollama_generate"};
        for (int k = 0; k < 5; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, k == 4 ? "want_generate" : "want_chat");
            assert_true(cJSON_IsString(v) && cJSON_IsString(w));
            if (strcmp(v->valuestring, w->valuestring) != 0)
                fprintf(stderr, "%s: '%s' vs '%s'\n", keys[k], v->valuestring, w->valuestring);
            assert_string_equal(v->valuestring, w->valuestring);
        }
        print_message("  npm openai and ollama clients: same texts\n");
        cJSON_Delete(o);
        free(out);
    } else {
        print_message("node not found: npm client checks skipped\n");
    }

    orion_server_free(s);
    free(body);
    free(imgs);
    free(png64);
    free(grey64);
    free(png);
    free(grey);
    ref_close(&r);
}

/* ---- bad images ------------------------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

/* A copy of png with its IHDR size (and CRC) rewritten, as base64. */
static char *png_sized_b64(const uint8_t *png, size_t n, uint32_t w, uint32_t h) {
    uint8_t *c = malloc(n);
    memcpy(c, png, n);
    put_be32(c + 16, w);
    put_be32(c + 20, h);
    put_be32(c + 29, crc32_png(c + 12, 17));
    char *s = b64(c, n);
    free(c);
    return s;
}

static void expect_image_400(int port, const char *img64, const char *needle) {
    size_t n = strlen(img64) + 64;
    char *imgs = xmalloc(n);
    snprintf(imgs, n, "[\"%s\"]", img64);
    char *b = gen_body("\"describe\"", imgs);
    expect_400(port, "/api/generate", b, needle);
    free(b);
    free(imgs);
}

/* ---- the body limit ------------------------------------------------------------------- */

/* A body of about `bytes` for /api/generate: one image and a padding field
 * (ignored) that makes up the size. */
static char *padded_gen_body(const char *png64, size_t bytes) {
    char *b = xmalloc(bytes + strlen(png64) + 512);
    int n = sprintf(b, "{\"model\":\"llava\",\"prompt\":\"x\",\"images\":[\"%s\"],\"stream\":false,"
                       "\"options\":{\"temperature\":0,\"num_predict\":2},\"padding\":\"", png64);
    memset(b + n, 'p', bytes);
    strcpy(b + n + bytes, "\"}");
    return b;
}

/* With an image model, the generation endpoints take one image's worth of
 * body (--max-image-bytes in base64 + 1 MiB) beyond --max-body; other
 * endpoints, and servers without image models, keep --max-body. */
static void test_body_limit(void **state) {
    (void)state;
    require_ref();
    size_t n_png;
    uint8_t *png = slurp(png_path, &n_png);
    char *png64 = b64(png, n_png);
    char *reply = reply_buf();
    for (int with_projector = 1; with_projector >= 0; with_projector--) {
        orion_server_model models[2];
        orion_server_params p = vision_params(models);
        p.max_body = 1 << 20;
        p.max_image_bytes = 3 << 20; /* generation bodies: 4 MiB (+ 4) of base64 + 1 MiB */
        if (!with_projector) {
            p.models = models + 1; /* "plain" only */
            p.n_models = 1;
            p.n_projectors = 0;
        }
        orion_server *s = start(&p);
        int port = orion_server_port(s);
        char *two = padded_gen_body(png64, (size_t)2 << 20), *six = padded_gen_body(png64, (size_t)6 << 20);
        if (with_projector) {
            expect_200(port, "/api/generate", two, reply);
            assert_int_equal(post(port, "/api/generate", six, reply, 1 << 20), 413);
            assert_non_null(strstr(reply, "larger than 5242884 bytes"));
        } else {
            assert_int_equal(post(port, "/api/generate", two, reply, 1 << 20), 413);
            assert_non_null(strstr(reply, "larger than 1048576 bytes"));
        }
        assert_int_equal(post(port, "/api/embed", two, reply, 1 << 20), 413); /* not a generation endpoint */
        print_message("  %s: a 2 MiB generation body %s\n", with_projector ? "image model" : "no image model",
                      with_projector ? "is taken, 6 MiB is 413" : "is 413");
        free(two);
        free(six);
        orion_server_free(s);
    }
    free(png64);
    free(png);
}

static void test_bad_images(void **state) {
    (void)state;
    require_ref();
    size_t n_png, n_big;
    uint8_t *png = slurp(png_path, &n_png);
    char big_path[600];
    snprintf(big_path, sizeof big_path, "%s/big.png", work_dir);
    uint8_t *bigpng = slurp(big_path, &n_big);
    char *png64 = b64(png, n_png), *big64 = b64(bigpng, n_big);
    orion_server_model models[2];
    orion_server_params p = vision_params(models);
    p.max_images = 2;
    p.max_image_bytes = 64 << 10;
    p.max_body = 8 << 20;
    p.load_eagerly = false;
    orion_server *s = start(&p);
    int port = orion_server_port(s);
    char *reply = reply_buf();
    size_t cap = strlen(big64) + 4096;
    char *body = xmalloc(cap);
    assert_non_null(body);

    /* a model without a projector */
    snprintf(body, cap, "{\"model\":\"plain\",\"prompt\":\"x\",\"images\":[\"%s\"],\"stream\":false}", png64);
    expect_400(port, "/api/generate", body, "no projector");
    expect_image_400(port, "!!!notbase64", "bad base64");
    expect_image_400(port, "aGVsbG8gd29ybGQh", "not a PNG, JPEG or WebP");   /* "hello world!" */
    expect_image_400(port, "", "empty");
    char *half = b64(png, n_png / 2);
    expect_image_400(port, half, "image 0");                           /* truncated */
    free(half);
    char *zero = png_sized_b64(png, n_png, 0, 30);
    expect_image_400(port, zero, "IHDR");
    free(zero);
    char *huge = png_sized_b64(png, n_png, 100000, 100000);
    expect_image_400(port, huge, "over the limit");
    free(huge);
    expect_image_400(port, big64, "the limit is 65536");               /* oversized */
    snprintf(body, cap, "[\"%s\",\"%s\",\"%s\"]", png64, png64, png64);
    char *b = gen_body("\"x\"", body);
    expect_400(port, "/api/generate", b, "too many images");
    free(b);
    /* a misplaced tag, data URLs that are not base64 images, remote URLs while disabled */
    snprintf(body, cap, "[\"%s\"]", png64);
    b = gen_body("\"<image> and <image>\"", body);
    expect_400(port, "/api/generate", b, "place one per image");
    free(b);
    snprintf(body, cap,
             "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"<image>\"},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}}]}]}",
             png64);
    expect_400(port, "/v1/chat/completions", body, "may not write");
    const char *bad_urls[][2] = {{"data:text/plain;base64,aGVsbG8=", "not image/*"},
                                 {"data:image/png,rawbytes", "only base64"},
                                 {"file:///etc/passwd", "expected a data URL"},
                                 {"http://127.0.0.1:1/x.png", "remote image URLs are disabled; start orion serve with "
                                                              "--allow-remote-images"}};
    for (size_t i = 0; i < ORION_ARRAY_LEN(bad_urls); i++) {
        snprintf(body, cap,
                 "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                 "\"image_url\":{\"url\":\"%s\"}}]}]}",
                 bad_urls[i][0]);
        expect_400(port, "/v1/chat/completions", body, bad_urls[i][1]);
    }
    snprintf(body, cap, "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"audio\"}]}]}");
    expect_400(port, "/v1/chat/completions", body, "must be \"text\" or \"image_url\"");
    /* none of that loaded the model; a good request still works */
    assert_int_equal(get(port, "/api/ps", reply, 1 << 20), 200);
    assert_null(strstr(reply, "\"llava\""));
    snprintf(body, cap, "[\"%s\"]", png64);
    b = gen_body("\"the a and\"", body);
    expect_200(port, "/api/generate", b, reply);
    free(b);
    char got[1024];
    reply_text(reply, ORION__EP_GENERATE, got, sizeof got);
    assert_true(strlen(got) > 0);
    orion_server_free(s);
    free(body);
    free(png64);
    free(big64);
    free(png);
    free(bigpng);
}

/* ---- remote URLs ------------------------------------------------------------------------ */

/* A tiny HTTP server on 127.0.0.1: /llava.png, /big.png (with a length),
 * /stream.png (the big one without a length), /slow (never answers; the
 * connection stays open until the server stops),
 * /to-file (302 to file://), /to-png (302 to /llava.png), anything else 404. */
typedef struct mini {
    int            fd, port;
    pthread_t      th;
    atomic_bool    stop;
    const uint8_t *png, *big;
    size_t         n_png, n_big;
    int            held[8];  /* /slow connections, never answered, closed at stop */
    int            n_held;
} mini;

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        c += k;
        n -= (size_t)k;
    }
}

static void *mini_main(void *arg) {
    mini *m = arg;
    while (!atomic_load(&m->stop)) {
        int c = accept(m->fd, NULL, NULL);
        if (c < 0) continue;
        if (atomic_load(&m->stop)) {
            close(c);
            break;
        }
        char req[2048];
        ssize_t k = recv(c, req, sizeof req - 1, 0);
        req[k > 0 ? k : 0] = 0;
        char path[256] = "";
        sscanf(req, "GET %255s", path);
        char head[512];
        if (strcmp(path, "/llava.png") == 0 || strcmp(path, "/big.png") == 0) {
            bool big = path[1] == 'b';
            size_t n = big ? m->n_big : m->n_png;
            int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %zu\r\n"
                                                 "Connection: close\r\n\r\n", n);
            send_all(c, head, (size_t)hl);
            send_all(c, big ? m->big : m->png, n);
        } else if (strcmp(path, "/stream.png") == 0) {
            int hl = snprintf(head, sizeof head, "HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n");
            send_all(c, head, (size_t)hl);
            send_all(c, m->big, m->n_big);
        } else if (strcmp(path, "/slow") == 0 && m->n_held < 8) {
            m->held[m->n_held++] = c;
            continue;
        } else if (strcmp(path, "/to-file") == 0 || strcmp(path, "/to-png") == 0) {
            char loc[128];
            if (path[4] == 'f') snprintf(loc, sizeof loc, "file:///etc/passwd");
            else snprintf(loc, sizeof loc, "http://127.0.0.1:%d/llava.png", m->port);
            int hl = snprintf(head, sizeof head, "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n"
                                                 "Connection: close\r\n\r\n", loc);
            send_all(c, head, (size_t)hl);
        } else {
            int hl = snprintf(head, sizeof head, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            send_all(c, head, (size_t)hl);
        }
        close(c);
    }
    return NULL;
}

static void mini_start(mini *m) {
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(m->fd >= 0);
    int one = 1;
    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(m->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(m->fd, 16), 0);
    socklen_t sl = sizeof sa;
    getsockname(m->fd, (struct sockaddr *)&sa, &sl);
    m->port = ntohs(sa.sin_port);
    atomic_init(&m->stop, false);
    assert_int_equal(pthread_create(&m->th, NULL, mini_main, m), 0);
}

static void mini_stop(mini *m) {
    atomic_store(&m->stop, true);
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* wakes accept */
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)m->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    pthread_join(m->th, NULL);
    for (int i = 0; i < m->n_held; i++) close(m->held[i]);
    close(m->fd);
}

static int chat_url(int port, const char *url, char *reply) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
             "{\"url\":\"%s\"}},{\"type\":\"text\",\"text\":\"the a and\"}]}],\"max_tokens\":%d,\"temperature\":0}",
             url, N_NEW);
    return post(port, "/v1/chat/completions", body, reply, 1 << 20);
}

static void test_remote_images(void **state) {
    (void)state;
    require_ref();
    mini m;
    memset(&m, 0, sizeof m);
    char big_path[600];
    snprintf(big_path, sizeof big_path, "%s/big.png", work_dir);
    uint8_t *png = slurp(png_path, &m.n_png), *big = slurp(big_path, &m.n_big);
    m.png = png;
    m.big = big;
    mini_start(&m);
    orion_server_model models[2];
    orion_server_params p = vision_params(models);
    p.allow_remote_images = true;
    p.image_timeout_ms = 700;
    p.max_image_bytes = 256 << 10;
    orion_server *s = start(&p);
    int port = orion_server_port(s);
    char *reply = reply_buf();
    char url[256], want[1024], got[1024];
    ref r;
    ref_open(&r);
    ref_chat(&r, "<image>\nthe a and", want, sizeof want);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/llava.png", m.port);
    assert_int_equal(chat_url(port, url, reply), 200);
    reply_text(reply, ORION__EP_CHAT, got, sizeof got);
    assert_string_equal(got, want);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/to-png", m.port);
    assert_int_equal(chat_url(port, url, reply), 200);
    reply_text(reply, ORION__EP_CHAT, got, sizeof got);
    assert_string_equal(got, want);
    const char *bad[][2] = {{"/missing.png", "HTTP 404"},
                            {"/big.png", "larger than 262144 bytes"},
                            {"/stream.png", "larger than 262144 bytes"},
                            {"/slow", "longer than 700 ms"},
                            {"/to-file", "cannot fetch"}};
    for (size_t i = 0; i < ORION_ARRAY_LEN(bad); i++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"model\":\"llava\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                 "\"image_url\":{\"url\":\"http://127.0.0.1:%d%s\"}}]}]}",
                 m.port, bad[i][0]);
        double t0 = orion__now();
        expect_400(port, "/v1/chat/completions", body, bad[i][1]);
        if (strcmp(bad[i][0], "/slow") == 0) assert_true(orion__now() - t0 < 1.9);
    }
    /* and still fine */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/llava.png", m.port);
    assert_int_equal(chat_url(port, url, reply), 200);
    orion_server_free(s);
    mini_stop(&m);
    ref_close(&r);
    free(png);
    free(big);
}

/* ---- the manager ------------------------------------------------------------------------- */

static bool maps_name(const char *path) {
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, path) != NULL;
    fclose(f);
    return found;
}

static void test_manager_projector(void **state) {
    (void)state;
    require_ref();
    orion_manager_params mp = orion_manager_default_params();
    mp.monitor = false;
    mp.n_threads = 2;
    orion_manager *mgr = NULL;
    assert_int_equal(orion_manager_init(&mp, &mgr), ORION_OK);
    /* a registry with a relative "mmproj" */
    char reg[600];
    snprintf(reg, sizeof reg, "%s/registry.json", work_dir);
    FILE *f = fopen(reg, "w");
    assert_non_null(f);
    fprintf(f, "{\"models\":[{\"id\":\"llava\",\"task\":\"generate\",\"files\":{\"f32\":\"lm.gguf\"},"
               "\"mmproj\":\"clip_quick.gguf\"},{\"id\":\"lm\",\"task\":\"generate\",\"files\":{\"f32\":\"lm.gguf\"}}]}");
    fclose(f);
    assert_int_equal(orion_manager_load_registry(mgr, reg), ORION_OK);
    char got[1024];
    assert_int_equal(orion_manager_model_mmproj(mgr, "llava", got, sizeof got), ORION_OK);
    assert_string_equal(got, proj_path);
    assert_int_equal(orion_manager_model_mmproj(mgr, "lm", got, sizeof got), ORION_OK);
    assert_string_equal(got, "");
    assert_int_equal(orion_manager_model_mmproj(mgr, "nope", got, sizeof got), ORION_ERR_NOT_FOUND);
    /* an embedding model takes no projector; a bad registry value is refused */
    orion_model_entry e = {0};
    e.id = "emb";
    e.task = ORION_TASK_EMBED;
    e.files[ORION_QLEVEL_F32] = lm_path;
    e.mmproj = proj_path;
    assert_int_equal(orion_manager_register(mgr, &e), ORION_ERR_INVALID_ARG);
    f = fopen(reg, "w");
    fprintf(f, "{\"models\":[{\"id\":\"x\",\"files\":{\"f32\":\"lm.gguf\"},\"mmproj\":7}]}");
    fclose(f);
    assert_int_equal(orion_manager_load_registry(mgr, reg), ORION_ERR_FORMAT);

    /* need: the decoder's plus the encoder's */
    orion_model_need with, without;
    assert_int_equal(orion_manager_model_need(mgr, "llava", ORION_QLEVEL_F32, &with), ORION_OK);
    assert_int_equal(orion_manager_model_need(mgr, "lm", ORION_QLEVEL_F32, &without), ORION_OK);
    assert_int_equal(without.encoder, 0);
    assert_true(with.encoder > 0);
    assert_int_equal(with.total, without.total + with.encoder);
    assert_int_equal(with.weights, without.weights);

    const uint64_t mem0 = mem_now();
    assert_false(maps_name(proj_path));
    orion_model_lease *lease = NULL;
    assert_int_equal(orion_manager_acquire(mgr, "llava", NULL, &lease), ORION_OK);
    orion_clip *clip = orion_lease_clip(lease);
    assert_non_null(clip);
    orion_clip_info ci;
    orion_clip_get_info(clip, &ci);
    /* the encoder's need covers what it holds: its tensors and arenas */
    assert_true(with.encoder >= ci.weight_bytes + ci.scratch_bytes);
    assert_true(maps_name(proj_path));
    orion_model_status st[4];
    assert_int_equal(orion_manager_status(mgr, st, 4), 1);
    struct stat s_lm, s_proj;
    assert_int_equal(stat(lm_path, &s_lm), 0);
    assert_int_equal(stat(proj_path, &s_proj), 0);
    assert_int_equal(st[0].mapped, (uint64_t)(s_lm.st_size + s_proj.st_size));
    assert_true(st[0].resident >= (uint64_t)s_proj.st_size); /* prefaulted, both files */
    assert_true(st[0].encoder >= (uint64_t)s_proj.st_size + ci.scratch_bytes);
    assert_true(st[0].heap >= st[0].encoder - (uint64_t)s_proj.st_size + st[0].kv);
    assert_int_equal(st[0].need, with.total);
    print_message("  need %llu (encoder %llu); mapped %llu, heap %llu, encoder part %llu\n",
                  (unsigned long long)with.total, (unsigned long long)with.encoder, (unsigned long long)st[0].mapped,
                  (unsigned long long)st[0].heap, (unsigned long long)st[0].encoder);
    /* a model without one has none */
    orion_model_lease *l2 = NULL;
    assert_int_equal(orion_manager_acquire(mgr, "lm", NULL, &l2), ORION_OK);
    assert_null(orion_lease_clip(l2));
    orion_manager_release(mgr, l2);
    assert_int_equal(orion_manager_unload(mgr, "lm"), ORION_OK);
    /* unloading frees the projector with the model */
    orion_manager_release(mgr, lease);
    assert_int_equal(orion_manager_unload(mgr, "llava"), ORION_OK);
    assert_int_equal(mem_now(), mem0);
    assert_false(maps_name(proj_path));
    orion_manager_free(mgr);
}

/* Projectors that cannot be: for no served model, not a projector file,
 * for an embedding model; the server does not start, and says why. */
static void test_server_projector_args(void **state) {
    (void)state;
    require_ref();
    orion_server_model models[2];
    orion_server_params p = vision_params(models);
    orion_server *s = NULL;
    const orion_server_model bad[3] = {{"nope", proj_path}, {"llava", lm_path}, {"plain", proj_path}};
    const char *needles[3] = {"no such model", "not a projector", NULL};
    models[1].path = "hash:16"; /* "plain" becomes the built-in encoder */
    for (int i = 0; i < 3; i++) {
        p.projectors = &bad[i];
        p.n_projectors = 1;
        assert_int_not_equal(orion_server_start(&p, &s), ORION_OK);
        assert_null(s);
        print_message("  refused: %s\n", orion_last_error());
        if (needles[i]) assert_non_null(strstr(orion_last_error(), needles[i]));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manager_projector),
        cmocka_unit_test(test_replies_match_llava),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_remote_images),
        cmocka_unit_test(test_server_projector_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
