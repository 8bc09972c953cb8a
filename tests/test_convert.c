/*
 * test_convert.c — orion_convert: the llama2.c stories260K checkpoint must
 * convert to tensors bit-identical to the published stories260K.gguf (and
 * the same vocabulary), GGUF -> GGUF re-typing follows the mixed-precision
 * rule and reports errors that match an independent recomputation, and bad
 * llama2.c files are rejected with clear messages.
 */
#include "core/core.h"
#include "test_util.h"

#include <string.h>
#include <unistd.h>

static char model_dir[1024];

static int setup(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) return 0;
    snprintf(model_dir, sizeof model_dir, "%s/models/stories260K", shared);
    return 0;
}

static void path_in(char *buf, size_t n, const char *file) {
    snprintf(buf, n, "%s/%s", model_dir, file);
}

static void tmp_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/orion_test_convert_%d_%s.gguf", (int)getpid(), tag);
}

static void test_llama2c_bit_identical(void **state) {
    (void)state;
    if (!model_dir[0]) skip();
    char bin[1100], tok[1100], ref[1100], out[256];
    path_in(bin, sizeof bin, "stories260K.bin");
    path_in(tok, sizeof tok, "tok512.bin");
    path_in(ref, sizeof ref, "stories260K.gguf");
    tmp_path(out, sizeof out, "l2c");
    orion_convert_params p = orion_convert_default_params();
    p.tokenizer = tok;
    assert_int_equal(orion_convert(bin, out, &p), ORION_OK);

    orion_gguf *a = NULL, *b = NULL;
    assert_int_equal(orion_gguf_open(out, &a), ORION_OK);
    assert_int_equal(orion_gguf_open(ref, &b), ORION_OK);
    assert_int_equal(orion_gguf_n_tensors(a), orion_gguf_n_tensors(b));
    for (int64_t i = 0; i < orion_gguf_n_tensors(b); i++) {
        const orion_gguf_tensor *tb = orion_gguf_tensor_at(b, i);
        const orion_gguf_tensor *ta = orion_gguf_find_tensor(a, tb->name);
        assert_non_null(ta);
        assert_string_equal(orion_gguf_tensor_at(a, i)->name, tb->name); /* same order too */
        assert_int_equal(ta->type, tb->type);
        assert_int_equal(ta->n_dims, tb->n_dims);
        for (int d = 0; d < 4; d++) assert_int_equal(ta->ne[d], tb->ne[d]);
        assert_int_equal(ta->n_bytes, tb->n_bytes);
        assert_memory_equal(ta->data, tb->data, tb->n_bytes);
    }
    /* the vocabulary: same tokens, scores and types */
    const char *keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
    for (int k = 0; k < 3; k++) {
        const orion_gguf_value *va = orion_gguf_get(a, keys[k]), *vb = orion_gguf_get(b, keys[k]);
        assert_non_null(va);
        assert_non_null(vb);
        assert_int_equal(va->v.arr.count, vb->v.arr.count);
        assert_int_equal(va->v.arr.elem_type, vb->v.arr.elem_type);
        for (uint64_t i = 0; i < vb->v.arr.count; i++) {
            if (k == 0) {
                assert_int_equal(va->v.arr.items[i].v.str.len, vb->v.arr.items[i].v.str.len);
                assert_memory_equal(va->v.arr.items[i].v.str.ptr, vb->v.arr.items[i].v.str.ptr,
                                    vb->v.arr.items[i].v.str.len);
            } else {
                assert_true(orion_gguf_array_f64(va, i) == orion_gguf_array_f64(vb, i));
            }
        }
    }
    const char *same[] = {"llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
                          "llama.attention.head_count_kv", "llama.block_count", "llama.rope.dimension_count",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (size_t k = 0; k < ORION_ARRAY_LEN(same); k++) {
        uint64_t x, y;
        assert_int_equal(orion_gguf_get_u64(a, same[k], &x), ORION_OK);
        assert_int_equal(orion_gguf_get_u64(b, same[k], &y), ORION_OK);
        assert_int_equal(x, y);
    }
    orion_gguf_free(a);
    orion_gguf_free(b);
    unlink(out);
}

typedef struct collected {
    int                 n;
    orion_tensor_report r[64];
    char                names[64][64];
} collected;

static void collect(void *user, int64_t index, int64_t count, const orion_tensor_report *r) {
    collected *c = user;
    assert_true(index < count);
    assert_int_equal(index, c->n);
    if (c->n < 64) {
        c->r[c->n] = *r;
        snprintf(c->names[c->n], sizeof c->names[0], "%s", r->name);
        c->r[c->n].name = c->names[c->n];
        c->n++;
    }
}

/* GGUF -> GGUF at each type: the rule, the sizes, and the reported errors
 * recomputed here from the two files. */
static void test_quantize_stories(void **state) {
    (void)state;
    if (!model_dir[0]) skip();
    char ref[1100], out[256];
    path_in(ref, sizeof ref, "stories260K.gguf");
    orion_gguf *src = NULL;
    assert_int_equal(orion_gguf_open(ref, &src), ORION_OK);
    const orion_type types[] = {ORION_TYPE_F16, ORION_TYPE_BF16, ORION_TYPE_Q8_0, ORION_TYPE_Q4_0, ORION_TYPE_Q4_1};
    for (size_t ti = 0; ti < ORION_ARRAY_LEN(types); ti++) {
        for (int calibrate = 0; calibrate < 2; calibrate++) {
            orion_type type = types[ti];
            if (calibrate && orion_type_block_elems(type) == 1) continue;
            tmp_path(out, sizeof out, orion_type_name(type));
            collected c = {0};
            orion_convert_params p = orion_convert_default_params();
            p.type = (int)type;
            p.calibrate = calibrate;
            p.n_threads = 2;
            p.on_tensor = collect;
            p.user = &c;
            assert_int_equal(orion_convert(ref, out, &p), ORION_OK);
            assert_int_equal(c.n, 48);
            orion_gguf *q = NULL;
            assert_int_equal(orion_gguf_open(out, &q), ORION_OK);
            assert_int_equal(orion_gguf_n_kv(q), orion_gguf_n_kv(src));
            for (int i = 0; i < c.n; i++) {
                const orion_tensor_report *r = &c.r[i];
                const orion_gguf_tensor *ts = orion_gguf_find_tensor(src, r->name);
                const orion_gguf_tensor *tq = orion_gguf_find_tensor(q, r->name);
                assert_non_null(tq);
                assert_int_equal(tq->type, r->to);
                assert_int_equal(tq->n_bytes, r->bytes_out);
                /* the rule */
                orion_type want = type;
                if (ts->n_dims == 1) want = ORION_TYPE_F32;
                else if ((strcmp(r->name, "token_embd.weight") == 0 || strcmp(r->name, "output.weight") == 0) &&
                         orion_type_bits_per_weight(type) < 8.5)
                    want = ORION_TYPE_Q8_0;
                else if (ts->ne[0] % orion_type_block_elems(want) != 0)
                    want = ORION_TYPE_F16; /* ffn_down: rows of 172 */
                assert_int_equal(r->to, want);
                /* recompute the error from the files */
                float *x = malloc((size_t)ts->n_elems * sizeof(float));
                float *y = malloc((size_t)ts->n_elems * sizeof(float));
                assert_int_equal(orion_dequantize(ts->type, ts->data, x, ts->n_elems), ORION_OK);
                assert_int_equal(orion_dequantize(tq->type, tq->data, y, tq->n_elems), ORION_OK);
                double se = 0, sr = 0;
                for (int64_t k = 0; k < ts->n_elems; k++) {
                    se += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
                    sr += (double)x[k] * x[k];
                }
                double rmse = sqrt(se / (double)ts->n_elems);
                assert_true(fabs(rmse - r->rmse) <= 1e-9 + 1e-6 * rmse);
                if (sr > 0) assert_true(fabs(sqrt(se / sr) - r->rel_err) <= 1e-9 + 1e-6 * r->rel_err);
                /* relative error bounds per type (sanity: 4-bit < 15%, 8-bit < 1%, f16 < 0.1%) */
                double bound = r->to == ORION_TYPE_F32 ? 0.0
                               : (r->to == ORION_TYPE_F16)  ? 1e-3
                               : (r->to == ORION_TYPE_BF16) ? 5e-3
                               : (r->to == ORION_TYPE_Q8_0) ? 1e-2
                                                            : 0.15;
                assert_true(r->rel_err <= bound);
                free(x);
                free(y);
            }
            orion_gguf_free(q);
            unlink(out);
        }
    }
    orion_gguf_free(src);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_bad_llama2c(void **state) {
    (void)state;
    char in[256], out[256];
    snprintf(in, sizeof in, "/tmp/orion_test_bad_%d.bin", (int)getpid());
    tmp_path(out, sizeof out, "bad");
    /* header only: the weights are missing */
    int32_t hdr[7] = {64, 172, 5, 8, 4, 512, 512};
    write_bytes(in, hdr, sizeof hdr);
    assert_int_equal(orion_convert(in, out, NULL), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "truncated llama2.c checkpoint"));
    /* nonsense header */
    int32_t bad[7] = {64, 172, 5, 7, 4, 512, 512}; /* 64 % 7 != 0 */
    write_bytes(in, bad, sizeof bad);
    assert_int_equal(orion_convert(in, out, NULL), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "do not divide"));
    int32_t neg[7] = {-1, 172, 5, 8, 4, 512, 512};
    write_bytes(in, neg, sizeof neg);
    assert_int_equal(orion_convert(in, out, NULL), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "dim = -1"));
    write_bytes(in, "xy", 2);
    assert_int_equal(orion_convert(in, out, NULL), ORION_ERR_FORMAT);
    /* a real checkpoint with one extra byte: the size must match exactly */
    if (model_dir[0]) {
        char bin[1100];
        path_in(bin, sizeof bin, "stories260K.bin");
        FILE *f = fopen(bin, "rb");
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc((size_t)n + 1);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        buf[n] = 0;
        write_bytes(in, buf, (size_t)n + 1);
        assert_int_equal(orion_convert(in, out, NULL), ORION_ERR_FORMAT);
        assert_non_null(strstr(orion_last_error(), "header implies"));
        /* and a tokenizer with the wrong vocabulary size */
        write_bytes(in, buf, (size_t)n);
        orion_convert_params p = orion_convert_default_params();
        char tok[256];
        snprintf(tok, sizeof tok, "/tmp/orion_test_tok_%d.bin", (int)getpid());
        write_bytes(tok, "\x07\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00", 12);
        p.tokenizer = tok;
        assert_int_equal(orion_convert(in, out, &p), ORION_ERR_FORMAT);
        assert_non_null(strstr(orion_last_error(), "token"));
        unlink(tok);
        free(buf);
    }
    assert_int_equal(orion_convert("/nonexistent.bin", out, NULL), ORION_ERR_NOT_FOUND);
    assert_int_equal(access(out, F_OK), -1); /* nothing written on failure */
    unlink(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2c_bit_identical),
        cmocka_unit_test(test_quantize_stories),
        cmocka_unit_test(test_bad_llama2c),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
