/*
 * test_hf.c — Hugging Face model directories through orion_convert.
 *
 * tests/fixtures/make_hf_fixtures.py (Python's standard library only, no
 * orion code) writes tiny models — a BertModel with and without the "bert."
 * prefix (vocab.txt or tokenizer.json, with and without sentence-
 * transformers' modules.json and pooling config), a LlamaForCausalLM sharded
 * over two safetensors files with an index, a tied-embedding Llama with
 * grouped-query attention and head_dim != hidden/heads, and a
 * MistralForCausalLM with a sliding window — and, for each, the GGUF it must
 * become: every tensor's name, shape and bytes (q and k permuted in Python
 * the way llama.cpp states it), the metadata and the vocabulary. The
 * converted files are checked against that, bit for bit. Then broken
 * directories (bad config fields, unknown architectures, missing or
 * misnamed shards, unknown, misshapen, misaligned or duplicated tensors,
 * bad tokenizer files) must each fail with their own clear message; the
 * directory reader must survive out-of-memory at every allocation; and the
 * real llama2 tokenizer.model and bert-base-uncased vocab.txt must import
 * as they should.
 */
#include "core/core.h"
#include "formats/hf_model.h"
#include "formats/json.h"
#include "formats/llama2c.h"
#include "formats/sentencepiece.h"
#include "test_util.h"

#include <libgen.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char fixtures[256]; /* the Python script's output directory */

static int setup(void **state) {
    (void)state;
    char src[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(fixtures, sizeof fixtures, "/tmp/orion_test_hf_%d", (int)getpid());
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "python3 '%s/fixtures/make_hf_fixtures.py' '%s' > /dev/null", dirname(src), fixtures);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_hf: cannot run the fixture script: %s\n", cmd);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixtures);
    return system(cmd) == 0 ? 0 : -1;
}

static void fixture(char *buf, size_t n, const char *model, const char *file) {
    if (file) snprintf(buf, n, "%s/%s/%s", fixtures, model, file);
    else snprintf(buf, n, "%s/%s", fixtures, model);
}

static void out_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "%s/out_%s.gguf", fixtures, tag);
}

static uint8_t *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

/* Decodes lowercase hex ("-" is empty) into buf; returns the length. */
static size_t unhex(const char *hex, char *buf, size_t n) {
    if (strcmp(hex, "-") == 0) return 0;
    size_t len = strlen(hex) / 2;
    assert_true(len < n);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        buf[i] = (char)v;
    }
    buf[len] = '\0';
    return len;
}

/* ---- checking a converted file against expected.txt / expected.bin ------------ */

/* as_type < 0: tensors as the source stores them (byte-exact); otherwise
 * every tensor must be stored in as_type (f32 here) and equal the expected
 * values dequantized. */
static void check_gguf(const char *model, const orion_gguf *g, int as_type) {
    char path[512];
    fixture(path, sizeof path, model, "expected.bin");
    size_t blob_len;
    uint8_t *blob = read_whole(path, &blob_len);
    fixture(path, sizeof path, model, "expected.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int64_t n_tensors = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[16], key[256], val[8000];
        val[0] = '\0';
        int n = sscanf(line, "%15s %255s %7999s", kind, key, val);
        assert_true(n >= 2);
        if (strcmp(kind, "tensor") == 0) {
            char type[16];
            long long ne0, ne1, off, size;
            assert_int_equal(sscanf(line, "tensor %255s %15s %lld %lld %lld %lld", key, type, &ne0, &ne1, &off, &size),
                             6);
            const orion_gguf_tensor *t = orion_gguf_find_tensor(g, key);
            if (!t) fprintf(stderr, "%s: tensor %s missing\n", model, key);
            assert_non_null(t);
            assert_string_equal(orion_gguf_tensor_at(g, n_tensors)->name, key); /* same order */
            assert_int_equal(t->n_dims, ne1 ? 2 : 1);
            assert_int_equal(t->ne[0], ne0);
            assert_int_equal(t->ne[1], ne1 ? ne1 : 1);
            assert_true((size_t)(off + size) <= blob_len);
            orion_type src_type;
            assert_int_equal(orion_type_from_name(type, &src_type), ORION_OK);
            if (as_type < 0) {
                assert_string_equal(orion_type_name(t->type), type);
                assert_int_equal(t->n_bytes, (size_t)size);
                if (memcmp(t->data, blob + off, (size_t)size) != 0) fprintf(stderr, "%s: %s differs\n", model, key);
                assert_memory_equal(t->data, blob + off, (size_t)size);
            } else {
                assert_int_equal(t->type, as_type);
                int64_t ne = ne0 * (ne1 ? ne1 : 1);
                float *want = malloc((size_t)ne * sizeof(float));
                assert_int_equal(orion_dequantize(src_type, blob + off, want, ne), ORION_OK);
                assert_int_equal(t->n_bytes, (size_t)ne * sizeof(float));
                assert_memory_equal(t->data, want, (size_t)ne * sizeof(float));
                free(want);
            }
            n_tensors++;
        } else if (strcmp(kind, "notensor") == 0) {
            assert_null(orion_gguf_find_tensor(g, key));
        } else if (strcmp(kind, "nokey") == 0) {
            if (orion_gguf_get(g, key)) fprintf(stderr, "%s: key %s should be absent\n", model, key);
            assert_null(orion_gguf_get(g, key));
        } else if (strcmp(kind, "u32") == 0) {
            const orion_gguf_value *v = orion_gguf_get(g, key);
            if (!v) fprintf(stderr, "%s: key %s missing\n", model, key);
            assert_non_null(v);
            assert_int_equal(v->type, ORION_GGUF_U32);
            assert_int_equal(v->v.u64, strtoull(val, NULL, 10));
        } else if (strcmp(kind, "f32") == 0) {
            const orion_gguf_value *v = orion_gguf_get(g, key);
            assert_non_null(v);
            assert_int_equal(v->type, ORION_GGUF_F32);
            assert_true((float)v->v.f64 == (float)strtod(val, NULL));
        } else if (strcmp(kind, "bool") == 0) {
            const orion_gguf_value *v = orion_gguf_get(g, key);
            assert_non_null(v);
            assert_int_equal(v->type, ORION_GGUF_BOOL);
            assert_int_equal(v->v.b, atoi(val) != 0);
        } else if (strcmp(kind, "str") == 0) {
            char want[4096];
            size_t len = unhex(val, want, sizeof want);
            const orion_gguf_value *v = orion_gguf_get(g, key);
            assert_non_null(v);
            assert_int_equal(v->type, ORION_GGUF_STRING);
            assert_int_equal(v->v.str.len, len);
            assert_memory_equal(v->v.str.ptr, want, len);
        } else if (strcmp(kind, "tokens") == 0) {
            const orion_gguf_value *tok = orion_gguf_get(g, "tokenizer.ggml.tokens");
            const orion_gguf_value *types = orion_gguf_get(g, "tokenizer.ggml.token_type");
            const orion_gguf_value *scores = orion_gguf_get(g, "tokenizer.ggml.scores");
            assert_non_null(tok);
            assert_non_null(types);
            uint64_t count = strtoull(key, NULL, 10);
            assert_int_equal(tok->v.arr.count, count);
            assert_int_equal(types->v.arr.count, count);
            assert_int_equal(types->v.arr.elem_type, ORION_GGUF_I32);
            for (uint64_t i = 0; i < count; i++) {
                assert_non_null(fgets(line, sizeof line, f));
                unsigned long long id;
                int type;
                char score[64], hex[512], want[256];
                assert_int_equal(sscanf(line, "token %llu %d %63s %511s", &id, &type, score, hex), 4);
                assert_int_equal(id, i);
                size_t len = unhex(hex, want, sizeof want);
                const orion_gguf_value *s = &tok->v.arr.items[i];
                if (s->v.str.len != len || memcmp(s->v.str.ptr, want, len) != 0)
                    fprintf(stderr, "%s: token %llu is '%.*s', expected '%s'\n", model, id, (int)s->v.str.len,
                            s->v.str.ptr, want);
                assert_int_equal(s->v.str.len, len);
                assert_memory_equal(s->v.str.ptr, want, len);
                assert_int_equal(orion_gguf_array_i64(types, i), type);
                if (strcmp(score, "-") == 0) {
                    assert_null(scores);
                } else {
                    assert_non_null(scores);
                    assert_int_equal(scores->v.arr.elem_type, ORION_GGUF_F32);
                    assert_true((float)orion_gguf_array_f64(scores, i) == (float)strtod(score, NULL));
                }
            }
        } else {
            fail_msg("expected.txt: unknown line '%s'", line);
        }
    }
    fclose(f);
    assert_int_equal(orion_gguf_n_tensors(g), n_tensors);
    free(blob);
}

static void convert_and_check(const char *model, int type) {
    char dir[512], out[512];
    fixture(dir, sizeof dir, model, NULL);
    out_path(out, sizeof out, model);
    orion_convert_params p = orion_convert_default_params();
    p.type = type;
    p.n_threads = 2;
    orion_status st = orion_convert(dir, out, &p);
    if (st != ORION_OK) fprintf(stderr, "%s: %s\n", model, orion_last_error());
    assert_int_equal(st, ORION_OK);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(out, &g), ORION_OK);
    check_gguf(model, g, type);
    orion_gguf_free(g);
    unlink(out);
}

static void test_bert_prefixed(void **state) {
    (void)state;
    convert_and_check("bert_prefixed", -1);
}

static void test_bert_plain(void **state) {
    (void)state;
    convert_and_check("bert_plain", -1);
}

static void test_llama_sharded(void **state) {
    (void)state;
    convert_and_check("llama_sharded", -1);
}

static void test_llama_tied(void **state) {
    (void)state;
    convert_and_check("llama_tied", -1);
}

static void test_mistral(void **state) {
    (void)state;
    convert_and_check("mistral", -1);
}

/* --type f32 re-types every tensor: q and k go through the row converter
 * (not a copy) and must come out permuted all the same. */
static void test_retype(void **state) {
    (void)state;
    convert_and_check("llama_sharded", ORION_TYPE_F32); /* from f16 */
    convert_and_check("llama_tied", ORION_TYPE_F32);    /* from bf16 */
    convert_and_check("bert_plain", ORION_TYPE_F32);
    /* and a quantized target runs the type rule on a directory source */
    char dir[512], out[512];
    fixture(dir, sizeof dir, "mistral", NULL);
    out_path(out, sizeof out, "q8");
    orion_convert_params p = orion_convert_default_params();
    p.type = ORION_TYPE_Q8_0;
    assert_int_equal(orion_convert(dir, out, &p), ORION_OK);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(out, &g), ORION_OK);
    assert_int_equal(orion_gguf_find_tensor(g, "output_norm.weight")->type, ORION_TYPE_F32);
    assert_int_equal(orion_gguf_find_tensor(g, "blk.0.attn_q.weight")->type, ORION_TYPE_F16); /* rows of 16 */
    orion_gguf_free(g);
    unlink(out);
}

/* `orion convert DIR OUT.gguf` on the command line. */
static void test_cli(void **state) {
    (void)state;
    const char *bin = getenv("ORION_BIN");
    if (!bin) skip();
    char dir[512], out[512], cmd[2048];
    fixture(dir, sizeof dir, "llama_sharded", NULL);
    out_path(out, sizeof out, "cli");
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' > /dev/null 2>&1", bin, dir, out);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(out, &g), ORION_OK);
    check_gguf("llama_sharded", g, -1);
    orion_gguf_free(g);
    unlink(out);
    /* a broken directory: exit 1 and the message on stderr */
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' 2>&1 | grep -q 'no config.json'", bin, fixtures, out);
    assert_int_equal(system(cmd), 0);
}

/* ---- broken directories ------------------------------------------------------------ */

static char scratch[512];

/* A fresh copy of a fixture model to break. */
static void fresh(const char *model) {
    char cmd[2048];
    snprintf(scratch, sizeof scratch, "%s/scratch", fixtures);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/%s' '%s'", scratch, fixtures, model, scratch);
    assert_int_equal(system(cmd), 0);
}

static void scratch_file(char *buf, size_t n, const char *file) {
    snprintf(buf, n, "%s/%s", scratch, file);
}

static void remove_file(const char *file) {
    char path[1024];
    scratch_file(path, sizeof path, file);
    assert_int_equal(unlink(path), 0);
}

/* Replaces (or with value NULL deletes) member `key` of the JSON object at
 * `parent` ("" = the root) in the scratch file. cJSON is driven through
 * orion's parse so all of it uses the same allocator hooks. */
static void edit_json(const char *file, const char *parent, const char *key, cJSON *value) {
    char path[1024];
    scratch_file(path, sizeof path, file);
    size_t len;
    uint8_t *text = read_whole(path, &len);
    cJSON *root = NULL;
    assert_int_equal(orion__json_parse(path, text, len, &root), ORION_OK);
    free(text);
    cJSON *obj = parent[0] ? cJSON_GetObjectItemCaseSensitive(root, parent) : root;
    assert_non_null(obj);
    if (value) {
        if (cJSON_GetObjectItemCaseSensitive(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
        else cJSON_AddItemToObject(obj, key, value);
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    }
    char *out = cJSON_PrintUnformatted(root);
    assert_non_null(out);
    write_text(path, out);
    cJSON_free(out);
    orion__json_free(root);
}

static cJSON *json_of(const char *text) {
    cJSON *j = NULL;
    assert_int_equal(orion__json_parse("test", text, strlen(text), &j), ORION_OK);
    return j;
}

/* Converting the scratch directory fails with `status` and a message that
 * contains `needle`. */
static void expect_fail(orion_status status, const char *needle) {
    char out[512];
    out_path(out, sizeof out, "bad");
    orion_status st = orion_convert(scratch, out, NULL);
    if (st != status || !strstr(orion_last_error(), needle))
        fprintf(stderr, "expected %d with '%s', got %d: '%s'\n", status, needle, st, orion_last_error());
    assert_int_equal(st, status);
    assert_non_null(strstr(orion_last_error(), needle));
    assert_int_equal(access(out, F_OK), -1); /* nothing written */
}

static void expect_ok(void) {
    char out[512];
    out_path(out, sizeof out, "ok");
    orion_status st = orion_convert(scratch, out, NULL);
    if (st != ORION_OK) fprintf(stderr, "unexpected: %s\n", orion_last_error());
    assert_int_equal(st, ORION_OK);
    unlink(out);
}

static void test_bad_config(void **state) {
    (void)state;
    const char *m = "llama_sharded";
    fresh(m), remove_file("config.json");
    expect_fail(ORION_ERR_NOT_FOUND, "no config.json: not a Hugging Face model directory");
    char path[1024];
    fresh(m), scratch_file(path, sizeof path, "config.json"), write_text(path, "{\"architectures\": [");
    expect_fail(ORION_ERR_FORMAT, "config.json: not valid JSON");
    fresh(m), scratch_file(path, sizeof path, "config.json"), write_text(path, "[1, 2]");
    expect_fail(ORION_ERR_FORMAT, "config.json: the document is an array, expected an object");
    fresh(m), edit_json("config.json", "", "hidden_size", NULL);
    expect_fail(ORION_ERR_FORMAT, "config.json: field 'hidden_size' is missing");
    fresh(m), edit_json("config.json", "", "hidden_size", cJSON_CreateString("16"));
    expect_fail(ORION_ERR_FORMAT, "field 'hidden_size' is string, expected an integer");
    fresh(m), edit_json("config.json", "", "hidden_size", cJSON_CreateNumber(16.5));
    expect_fail(ORION_ERR_FORMAT, "field 'hidden_size' = 16.5 is not an integer");
    fresh(m), edit_json("config.json", "", "num_hidden_layers", cJSON_CreateNumber(-1));
    expect_fail(ORION_ERR_FORMAT, "field 'num_hidden_layers' = -1 is out of range (1 to 4096)");
    fresh(m), edit_json("config.json", "", "vocab_size", cJSON_CreateNull());
    expect_fail(ORION_ERR_FORMAT, "field 'vocab_size' is missing");
    fresh(m), edit_json("config.json", "", "architectures", json_of("[\"GPT2LMHeadModel\"]"));
    expect_fail(ORION_ERR_UNSUPPORTED, "architecture 'GPT2LMHeadModel' is not supported");
    fresh(m), edit_json("config.json", "", "architectures", cJSON_CreateString("LlamaForCausalLM"));
    expect_fail(ORION_ERR_FORMAT, "field 'architectures' is string, expected an array of strings");
    fresh(m), edit_json("config.json", "", "architectures", json_of("[]"));
    expect_fail(ORION_ERR_FORMAT, "field 'architectures' is empty");
    fresh(m), edit_json("config.json", "", "architectures", json_of("[7]"));
    expect_fail(ORION_ERR_FORMAT, "field 'architectures': entry 0 is number");
    fresh(m), edit_json("config.json", "", "architectures", json_of("[\"Foo\", \"LlamaForCausalLM\"]"));
    expect_ok(); /* the first known one counts */
    fresh(m), edit_json("config.json", "", "num_key_value_heads", cJSON_CreateNumber(3));
    expect_fail(ORION_ERR_FORMAT, "'num_attention_heads' = 4 is not a multiple of 'num_key_value_heads' = 3");
    fresh(m), edit_json("config.json", "", "num_key_value_heads", cJSON_CreateNumber(8));
    expect_fail(ORION_ERR_FORMAT, "field 'num_key_value_heads' = 8 is out of range (1 to 4)");
    fresh(m), edit_json("config.json", "", "head_dim", cJSON_CreateNumber(5));
    expect_fail(ORION_ERR_FORMAT, "the head size 5 is odd");
    fresh(m), edit_json("config.json", "", "tie_word_embeddings", cJSON_CreateString("yes"));
    expect_fail(ORION_ERR_FORMAT, "field 'tie_word_embeddings' is string, expected true or false");
    fresh(m), edit_json("config.json", "", "rope_scaling", json_of("{\"type\": \"yarn\", \"factor\": 4}"));
    expect_fail(ORION_ERR_UNSUPPORTED, "field 'rope_scaling': type 'yarn' is not supported");
    fresh(m), edit_json("config.json", "", "rope_scaling", json_of("{\"type\": \"linear\", \"factor\": -1}"));
    expect_fail(ORION_ERR_FORMAT, "rope_scaling.factor");
    fresh(m), edit_json("config.json", "", "rope_scaling", cJSON_CreateNumber(2));
    expect_fail(ORION_ERR_FORMAT, "field 'rope_scaling' is number");
    fresh(m), edit_json("config.json", "", "bos_token_id", cJSON_CreateNumber(99));
    expect_fail(ORION_ERR_FORMAT, "field 'bos_token_id' = 99 is not a token id");
    fresh(m), edit_json("config.json", "", "eos_token_id", cJSON_CreateString("</s>"));
    expect_fail(ORION_ERR_FORMAT, "field 'eos_token_id' is string");
    fresh(m), edit_json("config.json", "", "rms_norm_eps", cJSON_CreateNumber(-1e-5));
    expect_fail(ORION_ERR_FORMAT, "field 'rms_norm_eps' = -1e-05 is out of range");
    fresh(m), edit_json("config.json", "", "rope_theta", cJSON_CreateTrue());
    expect_fail(ORION_ERR_FORMAT, "field 'rope_theta' is true, expected a number");
    /* config and weights disagree */
    fresh(m), edit_json("config.json", "", "hidden_size", cJSON_CreateNumber(32));
    expect_fail(ORION_ERR_FORMAT, "tensor 'model.embed_tokens.weight' has shape [40, 16] but config.json implies [40, 32]");
    fresh(m), edit_json("config.json", "", "intermediate_size", cJSON_CreateNumber(25));
    expect_fail(ORION_ERR_FORMAT, "'model.layers.0.mlp.gate_proj.weight' has shape [24, 16]");
    fresh(m), edit_json("config.json", "", "num_hidden_layers", cJSON_CreateNumber(1));
    expect_fail(ORION_ERR_FORMAT, "tensor 'model.layers.1.self_attn.q_proj.weight' is in block 1 but config.json has 1 blocks");
    fresh(m), edit_json("config.json", "", "num_hidden_layers", cJSON_CreateNumber(3));
    expect_fail(ORION_ERR_FORMAT, "tensor 'layers.2.self_attn.q_proj.weight' is missing (it becomes GGUF 'blk.2.attn_q.weight')");
    fresh(m), edit_json("config.json", "", "tie_word_embeddings", cJSON_CreateTrue());
    expect_ok(); /* lm_head.weight is then dropped */
    fresh("llama_tied"), edit_json("config.json", "", "tie_word_embeddings", cJSON_CreateFalse());
    expect_fail(ORION_ERR_FORMAT, "tensor 'lm_head.weight' is missing (it becomes GGUF 'output.weight')");
    /* not a directory of a model at all */
    fresh(m), remove_file("config.json"), remove_file("model.safetensors.index.json");
    expect_fail(ORION_ERR_NOT_FOUND, "no config.json");
}

/* A small safetensors file with the given header and data. */
static void write_safetensors(const char *file, const char *header, const void *data, size_t n) {
    char path[1024];
    scratch_file(path, sizeof path, file);
    size_t len = strlen(header), hl = (len + 7) / 8 * 8; /* padded with spaces, as writers do */
    uint8_t *buf = calloc(1, 8 + hl + n);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memset(buf + 8, ' ', hl);
    memcpy(buf + 8, header, len);
    if (n) memcpy(buf + 8 + hl, data, n);
    write_bytes(path, buf, 8 + hl + n);
    free(buf);
}

static void test_bad_weights(void **state) {
    (void)state;
    const char *m = "llama_sharded";
    const char *s1 = "model-00001-of-00002.safetensors", *s2 = "model-00002-of-00002.safetensors";
    fresh(m), remove_file(s2);
    expect_fail(ORION_ERR_NOT_FOUND,
                "shard 'model-00002-of-00002.safetensors' listed in model.safetensors.index.json is missing");
    fresh(m), edit_json("model.safetensors.index.json", "weight_map", "model.norm.weight",
                        cJSON_CreateString("../model-00002-of-00002.safetensors"));
    expect_fail(ORION_ERR_FORMAT, "tensor 'model.norm.weight': shard '../model-00002-of-00002.safetensors' must be a "
                                  "file name in the model directory (no '/' or '..')");
    fresh(m), edit_json("model.safetensors.index.json", "weight_map", "model.norm.weight",
                        cJSON_CreateString("/etc/passwd"));
    expect_fail(ORION_ERR_FORMAT, "no '/' or '..'");
    fresh(m), edit_json("model.safetensors.index.json", "weight_map", "model.norm.weight", cJSON_CreateNumber(2));
    expect_fail(ORION_ERR_FORMAT, "tensor 'model.norm.weight' maps to number, expected a file name");
    fresh(m), edit_json("model.safetensors.index.json", "", "weight_map", NULL);
    expect_fail(ORION_ERR_FORMAT, "model.safetensors.index.json: field 'weight_map' is missing");
    fresh(m), edit_json("model.safetensors.index.json", "", "weight_map", json_of("{}"));
    expect_fail(ORION_ERR_FORMAT, "field 'weight_map' is empty");
    fresh(m), edit_json("model.safetensors.index.json", "weight_map", "model.norm.weight", cJSON_CreateString(s1));
    expect_fail(ORION_ERR_FORMAT, "tensor 'model.norm.weight' is listed in model.safetensors.index.json but is not "
                                  "in its shard");
    fresh(m), edit_json("model.safetensors.index.json", "weight_map", "model.norm.weight", NULL);
    expect_fail(ORION_ERR_FORMAT, "tensor 'model.norm.weight' is not listed in model.safetensors.index.json's weight_map");
    fresh(m), remove_file("model.safetensors.index.json");
    expect_fail(ORION_ERR_NOT_FOUND, "no model.safetensors or model.safetensors.index.json");
    char path[1024];
    fresh(m), scratch_file(path, sizeof path, s2), write_text(path, "garbage");
    expect_fail(ORION_ERR_FORMAT, "model-00002-of-00002.safetensors: truncated: 7 bytes");

    /* a third shard with tensors that do not belong */
    float two[2] = {1, 2};
    fresh(m);
    write_safetensors("extra.safetensors", "{\"model.foo.weight\": {\"dtype\": \"F32\", \"shape\": [2], "
                                           "\"data_offsets\": [0, 8]}}", two, sizeof two);
    edit_json("model.safetensors.index.json", "weight_map", "model.foo.weight", cJSON_CreateString("extra.safetensors"));
    expect_fail(ORION_ERR_UNSUPPORTED, "tensor 'model.foo.weight' is not part of a LlamaForCausalLM model");
    static int32_t ints[40 * 16];
    fresh(m);
    write_safetensors("extra.safetensors", "{\"lm_head.weight\": {\"dtype\": \"I32\", \"shape\": [40, 16], "
                                           "\"data_offsets\": [0, 2560]}}", ints, sizeof ints);
    edit_json("model.safetensors.index.json", "weight_map", "lm_head.weight", cJSON_CreateString("extra.safetensors"));
    expect_fail(ORION_ERR_UNSUPPORTED, "tensor 'lm_head.weight' has dtype I32: only F32, F16 and BF16 weights can be "
                                       "converted");
    static uint8_t raw[1 + 40 * 16 * 2];
    fresh(m);
    write_safetensors("extra.safetensors", "{\"pad\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}, "
                                           "\"lm_head.weight\": {\"dtype\": \"F16\", \"shape\": [40, 16], "
                                           "\"data_offsets\": [1, 1281]}}", raw, sizeof raw);
    edit_json("model.safetensors.index.json", "weight_map", "lm_head.weight", cJSON_CreateString("extra.safetensors"));
    edit_json("model.safetensors.index.json", "weight_map", "pad", cJSON_CreateString("extra.safetensors"));
    expect_fail(ORION_ERR_UNSUPPORTED, "tensor 'lm_head.weight': its data (field 'data_offsets' begins at 1) is not "
                                       "aligned to its 2-byte elements");
    fresh(m);
    write_safetensors("extra.safetensors", "{\"model.lm_head.weight\": {\"dtype\": \"F16\", \"shape\": [40, 16], "
                                           "\"data_offsets\": [0, 1280]}}", raw, 1280);
    edit_json("model.safetensors.index.json", "weight_map", "model.lm_head.weight",
              cJSON_CreateString("extra.safetensors"));
    expect_fail(ORION_ERR_FORMAT, "both map to 'output.weight'");
    fresh(m);
    write_safetensors("extra.safetensors", "{\"model.layers.0.self_attn.q_proj.weight\": {\"dtype\": \"F16\", "
                                           "\"shape\": [16, 16], \"data_offsets\": [0, 512]}}", raw, 512);
    edit_json("model.safetensors.index.json", "weight_map", "model.layers.0.self_attn.q_proj.weight",
              cJSON_CreateString("extra.safetensors"));
    expect_fail(ORION_ERR_FORMAT, "is not listed in model.safetensors.index.json's weight_map");
    fresh(m);
    write_safetensors("extra.safetensors", "{\"model.layers.01.mlp.up_proj.weight\": {\"dtype\": \"F16\", "
                                           "\"shape\": [24, 16], \"data_offsets\": [0, 768]}}", raw, 768);
    edit_json("model.safetensors.index.json", "weight_map", "model.layers.01.mlp.up_proj.weight",
              cJSON_CreateString("extra.safetensors"));
    expect_fail(ORION_ERR_UNSUPPORTED, "tensor 'model.layers.01.mlp.up_proj.weight' is not part of");
}

static void test_bad_tokenizers(void **state) {
    (void)state;
    char path[1024];
    fresh("llama_sharded"), remove_file("tokenizer.model");
    expect_fail(ORION_ERR_UNSUPPORTED, "no tokenizer.model (SentencePiece)");
    fresh("llama_sharded"), scratch_file(path, sizeof path, "tokenizer.model");
    write_bytes(path, "\x0a\x04\x0a\x03<s>", 7); /* a piece whose text runs past its message */
    expect_fail(ORION_ERR_FORMAT, "tokenizer.model: piece text at byte 3 has length 3 but only 2 bytes are left");
    fresh("llama_tied"), scratch_file(path, sizeof path, "tokenizer.model");
    /* 45 pieces for a vocabulary of 44 */
    char big[45 * 8];
    size_t o = 0;
    for (int i = 0; i < 45; i++) {
        o += (size_t)sprintf(big + o, "\x0a\x04\x0a\x02");
        big[o++] = (char)('a' + i % 26);
        big[o++] = (char)('a' + i / 26);
    }
    write_bytes(path, big, o);
    expect_fail(ORION_ERR_FORMAT, "tokenizer.model: 45 pieces but config.json says vocab_size = 44");

    const char *b = "bert_prefixed";
    fresh(b), remove_file("vocab.txt");
    expect_fail(ORION_ERR_NOT_FOUND, "no vocab.txt or tokenizer.json");
    fresh(b), scratch_file(path, sizeof path, "vocab.txt");
    write_text(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\n");
    expect_fail(ORION_ERR_FORMAT, "vocab.txt: the vocabulary has 22 tokens but config.json says vocab_size = 20");
    fresh(b), scratch_file(path, sizeof path, "vocab.txt"), write_text(path, "");
    expect_fail(ORION_ERR_FORMAT, "vocab.txt: empty vocabulary");
    fresh(b), scratch_file(path, sizeof path, "modules.json"), write_text(path, "{\"a\": 1}");
    expect_fail(ORION_ERR_FORMAT, "modules.json: the document is an object, expected an array");
    fresh(b), scratch_file(path, sizeof path, "modules.json"), write_text(path, "[{\"path\": \"x\"}]");
    expect_fail(ORION_ERR_FORMAT, "modules.json: module 0: field 'type' is missing, expected a string");
    fresh(b), scratch_file(path, sizeof path, "modules.json");
    write_text(path, "[{\"path\": \"../x\", \"type\": \"sentence_transformers.models.Pooling\"}]");
    expect_fail(ORION_ERR_FORMAT, "module 0: field 'path' '../x' must name a folder in the model directory");
    fresh(b), scratch_file(path, sizeof path, "1_Pooling/config.json");
    write_text(path, "{\"pooling_mode_max_tokens\": true, \"pooling_mode_mean_tokens\": false}");
    expect_fail(ORION_ERR_UNSUPPORTED, "1_Pooling/config.json: the pooling mode is not supported");
    fresh(b), scratch_file(path, sizeof path, "1_Pooling/config.json");
    write_text(path, "{\"pooling_mode_cls_token\": \"yes\"}");
    expect_fail(ORION_ERR_FORMAT, "field 'pooling_mode_cls_token' is string, expected true or false");
    fresh(b), remove_file("1_Pooling/config.json");
    expect_fail(ORION_ERR_NOT_FOUND, "1_Pooling/config.json: cannot open");
    fresh(b), edit_json("config.json", "", "position_embedding_type", cJSON_CreateString("relative_key"));
    expect_fail(ORION_ERR_UNSUPPORTED, "field 'position_embedding_type' is 'relative_key': only \"absolute\"");
    fresh(b), edit_json("config.json", "", "architectures", json_of("[\"BertForMaskedLM\"]"));
    expect_ok();
    fresh("bert_plain"), edit_json("tokenizer.json", "model", "vocab", json_of("{\"a\": 0, \"b\": 0}"));
    expect_fail(ORION_ERR_FORMAT, "tokenizer.json: field 'model.vocab': id 0 is used by 'a' and 'b'");
    fresh("bert_plain"), edit_json("tokenizer.json", "model", "vocab", json_of("{\"a\": 0, \"b\": 2}"));
    expect_fail(ORION_ERR_FORMAT, "token 'b' has id number, expected an integer from 0 to 1");
    fresh("bert_plain"), edit_json("tokenizer.json", "model", "vocab", json_of("[[\"a\", 0.0]]"));
    expect_fail(ORION_ERR_UNSUPPORTED, "field 'model.vocab' is an array (a Unigram tokenizer)");
    fresh("bert_plain"), edit_json("tokenizer.json", "", "model", NULL);
    expect_fail(ORION_ERR_FORMAT, "tokenizer.json: field 'model' is missing");
}

/* Open each fixture directory failing allocation 0, 1, 2, ...: always a
 * clean NOMEM, no leak, and finally success. */
static void test_open_under_oom(void **state) {
    (void)state;
    const char *models[] = {"bert_prefixed", "bert_plain", "llama_sharded"};
    for (size_t k = 0; k < ORION_ARRAY_LEN(models); k++) {
        char dir[512];
        fixture(dir, sizeof dir, models[k], NULL);
        orion_mem_stats before, after;
        orion_mem_get_stats(&before);
        bool opened = false;
        for (int n = 0; n < 20000 && !opened; n++) {
            orion_hf_model *m = NULL;
            orion__alloc_fail_after(n);
            orion_status st = orion__hf_open(dir, &m);
            orion__alloc_fail_after(-1);
            if (st == ORION_OK) {
                opened = true;
                assert_true(orion__hf_n_tensors(m) > 10);
                orion__hf_free(m);
            } else {
                if (st != ORION_ERR_NOMEM) fprintf(stderr, "%s, allocation %d: %s\n", models[k], n, orion_last_error());
                assert_int_equal(st, ORION_ERR_NOMEM);
                assert_null(m);
            }
            orion_mem_get_stats(&after);
            assert_int_equal(after.bytes_in_use, before.bytes_in_use);
        }
        assert_true(opened);
    }
}

/* ---- the real tokenizer files -------------------------------------------------------- */

static void test_llama2_tokenizer_model(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) skip();
    char model[1024], bin[1024];
    snprintf(model, sizeof model, "%s/models/llama2-tokenizer/tokenizer.model", shared);
    snprintf(bin, sizeof bin, "%s/models/llama2-tokenizer/tokenizer.bin", shared);
    if (access(model, R_OK) != 0) skip();
    orion_vocab *v = NULL;
    assert_int_equal(orion__sentencepiece_load(model, &v), ORION_OK);
    assert_int_equal(v->n, 32000);
    assert_string_equal(v->tokens[0], "<unk>");
    assert_int_equal(v->types[0], ORION_SP_UNKNOWN);
    assert_string_equal(v->tokens[1], "<s>");
    assert_int_equal(v->types[1], ORION_SP_CONTROL);
    assert_string_equal(v->tokens[2], "</s>");
    assert_int_equal(v->types[2], ORION_SP_CONTROL);
    assert_string_equal(v->tokens[3], "<0x00>");
    assert_int_equal(v->types[3], ORION_SP_BYTE);
    assert_string_equal(v->tokens[258], "<0xFF>");
    assert_int_equal(v->types[258], ORION_SP_BYTE);
    assert_string_equal(v->tokens[259], "\xe2\x96\x81\xe2\x96\x81"); /* "▁▁" */
    assert_int_equal(v->types[259], ORION_SP_NORMAL);
    int counts[7] = {0};
    for (int32_t i = 0; i < v->n; i++) {
        assert_true(v->types[i] >= 1 && v->types[i] <= 6);
        counts[v->types[i]]++;
    }
    assert_int_equal(counts[ORION_SP_BYTE], 256);
    assert_int_equal(counts[ORION_SP_CONTROL], 2);
    assert_int_equal(counts[ORION_SP_UNKNOWN], 1);
    /* the same pieces and scores as llama2.c's export of this model */
    orion_llama2c_vocab *ref = NULL;
    assert_int_equal(orion__llama2c_vocab_load(bin, 32000, &ref), ORION_OK);
    for (int32_t i = 0; i < v->n; i++) {
        if (strcmp(v->tokens[i], ref->tokens[i]) != 0) fprintf(stderr, "piece %d: '%s' vs '%s'\n", i, v->tokens[i], ref->tokens[i]);
        assert_string_equal(v->tokens[i], ref->tokens[i]);
        assert_memory_equal(&v->scores[i], &ref->scores[i], sizeof(float));
    }
    orion__llama2c_vocab_free(ref);
    orion__vocab_free(v);
}

static void test_bert_vocab_txt(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/models/bert-base-uncased/vocab.txt", shared);
    if (access(path, R_OK) != 0) skip();
    size_t len;
    uint8_t *text = read_whole(path, &len);
    orion_vocab *raw = NULL, *v = NULL;
    assert_int_equal(orion__hf_vocab_txt_parse(path, text, len, &raw), ORION_OK);
    assert_int_equal(raw->n, 30522);
    assert_null(raw->scores);
    assert_string_equal(raw->tokens[1996], "the");
    assert_string_equal(raw->tokens[2015], "##s");
    assert_int_equal(orion__hf_bert_vocab(path, raw, 30522, &v), ORION_OK);
    assert_int_equal(v->n, 30522);
    static const struct {
        int id;
        const char *text;
        int type;
    } want[] = {
        {0, "[PAD]", 3}, {1, "\xe2\x96\x81[unused0]", 1}, {100, "[UNK]", 2}, {101, "[CLS]", 3}, {102, "[SEP]", 3},
        {103, "[MASK]", 3}, {1996, "\xe2\x96\x81the", 1}, {2015, "s", 1},
    };
    for (size_t i = 0; i < ORION_ARRAY_LEN(want); i++) {
        assert_string_equal(v->tokens[want[i].id], want[i].text);
        assert_int_equal(v->types[want[i].id], want[i].type);
    }
    int control = 0, unknown = 0;
    for (int32_t i = 0; i < v->n; i++) control += v->types[i] == 3, unknown += v->types[i] == 2;
    assert_int_equal(control, 4);
    assert_int_equal(unknown, 1);
    /* too small a vocab_size is an error, a larger one pads */
    orion__vocab_free(v);
    assert_int_equal(orion__hf_bert_vocab(path, raw, 30000, &v), ORION_ERR_FORMAT);
    assert_int_equal(orion__hf_bert_vocab(path, raw, 30524, &v), ORION_OK);
    assert_string_equal(v->tokens[30523], "[PAD30523]");
    assert_int_equal(v->types[30523], ORION_SP_UNUSED);
    orion__vocab_free(v);
    orion__vocab_free(raw);
    free(text);
}

/* Hostile tokenizer.model bytes: each fails with its own message. */
static void test_sentencepiece_errors(void **state) {
    (void)state;
    static const struct {
        const char *bytes;
        size_t      len;
        const char *needle;
    } cases[] = {
        {"", 0, "no pieces"},
        {"\x12\x00", 2, "no pieces"},                                          /* only an unknown field */
        {"\x0a", 1, "truncated piece (varint) at byte 1"},                      /* no length */
        {"\x0a\x05\x0a", 3, "piece at byte 1 has length 5 but only 1 bytes are left"},
        {"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 11, "overflows 64 bits"},
        {"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12, "overflows 64 bits"},
        {"\x08\x01", 2, "field 1 (pieces) at byte 1 has wire type 0, expected 2"},
        {"\x00\x01", 2, "field number 0"},
        {"\x0b\x0c", 2, "field 1 (pieces) at byte 1 has wire type 3"},
        {"\x13\x14", 2, "wire type 3, which is a (deprecated) group"},
        {"\x16\x00", 2, "field 2 at byte 1 has wire type 6, which is invalid"},
        {"\x11\x00\x00", 3, "truncated field 2 at byte 1 (8 bytes, 2 left)"},
        {"\x0a\x02\x08\x01", 4, "piece 0: field 1 at byte 3 has wire type 0, expected 2"},
        {"\x0a\x02\x10\x01", 4, "piece 0: field 2 at byte 3 has wire type 0, expected 5"},
        {"\x0a\x03\x15\x00\x00", 5, "piece 0: truncated score at byte 3"},
        {"\x0a\x02\x1a\x00", 4, "piece 0: field 3 at byte 3 has wire type 2, expected 0"},
        {"\x0a\x02\x18\x07", 4, "piece 0: type 7 at byte 3 is not a SentencePiece type (1 to 6)"},
        {"\x0a\x02\x18\x00", 4, "piece 0: type 0"},
        {"\x0a\x04\x0a\x02\x61\x00", 6, "piece 0 at byte 2: text contains a NUL byte"},
        {"\x0a\x02\x0a\x00\x0a\x02\x0a\x01", 8, "piece text at byte 7 has length 1 but only 0 bytes are left"},
    };
    for (size_t i = 0; i < ORION_ARRAY_LEN(cases); i++) {
        char *copy = malloc(cases[i].len ? cases[i].len : 1);
        memcpy(copy, cases[i].bytes, cases[i].len);
        orion_vocab *v = NULL;
        orion_status st = orion__sentencepiece_parse(copy, cases[i].len, "sp.model", &v);
        if (st != ORION_ERR_FORMAT || !strstr(orion_last_error(), cases[i].needle))
            fprintf(stderr, "case %zu: expected '%s', got %d '%s'\n", i, cases[i].needle, st, orion_last_error());
        assert_int_equal(st, ORION_ERR_FORMAT);
        assert_non_null(strstr(orion_last_error(), "sp.model"));
        assert_non_null(strstr(orion_last_error(), cases[i].needle));
        assert_null(v);
        free(copy);
    }
    /* a valid two-piece model: defaults, a repeated field, an unknown one */
    const char ok[] = "\x0a\x08\x0a\x01x\x15\x00\x00\x80\xbf"                 /* "x", score -1 */
                      "\x0a\x0c\x0a\x01y\x0a\x02yz\x18\x04\x20\x96\x01"      /* "yz" (last wins), user defined */
                      "\x1a\x00";                                          /* normalizer_spec */
    orion_vocab *v = NULL;
    assert_int_equal(orion__sentencepiece_parse(ok, sizeof ok - 1, "sp.model", &v), ORION_OK);
    assert_int_equal(v->n, 2);
    assert_string_equal(v->tokens[0], "x");
    assert_true(v->scores[0] == -1.0f);
    assert_int_equal(v->types[0], ORION_SP_NORMAL);
    assert_string_equal(v->tokens[1], "yz");
    assert_true(v->scores[1] == 0.0f);
    assert_int_equal(v->types[1], ORION_SP_USER_DEFINED);
    orion__vocab_free(v);
    /* every truncation of the real file's first kilobyte is clean */
    const char *shared = test_shared_dir();
    if (!shared) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/models/llama2-tokenizer/tokenizer.model", shared);
    if (access(path, R_OK) != 0) return;
    size_t len;
    uint8_t *file = read_whole(path, &len);
    for (size_t cut = 0; cut < 1024 && cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, file, cut);
        orion_status st = orion__sentencepiece_parse(copy, cut, "cut", &v);
        if (st == ORION_OK) orion__vocab_free(v);
        else assert_int_equal(st, ORION_ERR_FORMAT);
        free(copy);
    }
    free(file);
}

/* The JSON readers the fuzzer drives, on a few hostile inputs directly. */
static void test_json_readers(void **state) {
    (void)state;
    orion_hf_config c;
    const char *cfg = "{\"architectures\": [\"BertModel\"], \"vocab_size\": 10, \"hidden_size\": 8, "
                      "\"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 3, "
                      "\"max_position_embeddings\": 4}";
    assert_int_equal(orion__hf_config_parse("c.json", cfg, strlen(cfg), &c), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "'hidden_size' = 8 is not a multiple of 'num_attention_heads' = 3"));
    const char *cfg2 = "{\"architectures\": [\"MistralForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 8, "
                       "\"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                       "\"max_position_embeddings\": 4, \"sliding_window\": null, \"eos_token_id\": [3, 4], "
                       "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0}}";
    assert_int_equal(orion__hf_config_parse("c.json", cfg2, strlen(cfg2), &c), ORION_OK);
    assert_int_equal(c.arch, ORION_HF_MISTRAL);
    assert_int_equal(c.sliding_window, 0);
    assert_int_equal(c.eos_id, 3);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 4);
    assert_true(c.rope_linear_scale == 2.0);
    assert_true(c.norm_eps == 1e-6 && c.rope_theta == 10000.0);
    orion_hf_index *x = NULL;
    const char *idx = "{\"weight_map\": {\"a\": \"s2\", \"b\": \"s1\", \"c\": \"s2\"}}";
    assert_int_equal(orion__hf_index_parse("i.json", idx, strlen(idx), &x), ORION_OK);
    assert_int_equal(x->n_shards, 2);
    assert_string_equal(x->shards[0], "s1");
    assert_string_equal(x->shards[1], "s2");
    assert_int_equal(x->n_entries, 3);
    assert_string_equal(x->names[0], "a");
    assert_int_equal(x->shard_of[0], 1);
    assert_int_equal(x->shard_of[1], 0);
    orion__hf_index_free(x);
    const char *dup = "{\"weight_map\": {\"a\": \"s\", \"a\": \"s\"}}";
    assert_int_equal(orion__hf_index_parse("i.json", dup, strlen(dup), &x), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "tensor 'a' appears twice"));
    orion_hf_modules mods;
    const char *mj = "[{\"type\": \"sentence_transformers.models.Normalize\"}, 3]";
    assert_int_equal(orion__hf_modules_parse("m.json", mj, strlen(mj), &mods), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "module 1 is number"));
    uint32_t pool;
    const char *pj = "{\"pooling_mode_mean_tokens\": true, \"pooling_mode_cls_token\": true}";
    assert_int_equal(orion__hf_pooling_parse("p.json", pj, strlen(pj), &pool), ORION_OK);
    assert_int_equal(pool, 1);
    orion_vocab *v = NULL;
    assert_int_equal(orion__hf_vocab_txt_parse("v.txt", "a\r\n\nb", 5, &v), ORION_OK);
    assert_int_equal(v->n, 3);
    assert_string_equal(v->tokens[0], "a\r"); /* as HF's load_vocab: only '\n' is stripped */
    assert_string_equal(v->tokens[1], "");
    assert_string_equal(v->tokens[2], "b");
    orion__vocab_free(v);
    assert_int_equal(orion__hf_vocab_txt_parse("v.txt", "a\0b", 3, &v), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "NUL byte at byte 1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_prefixed),
        cmocka_unit_test(test_bert_plain),
        cmocka_unit_test(test_llama_sharded),
        cmocka_unit_test(test_llama_tied),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_retype),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_weights),
        cmocka_unit_test(test_bad_tokenizers),
        cmocka_unit_test(test_open_under_oom),
        cmocka_unit_test(test_llama2_tokenizer_model),
        cmocka_unit_test(test_bert_vocab_txt),
        cmocka_unit_test(test_sentencepiece_errors),
        cmocka_unit_test(test_json_readers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
