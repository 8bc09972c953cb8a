/*
 * test_gguf.c — the GGUF reader and writer: the real stories260K file,
 * write -> read round trips, and a corpus of broken files (crafted byte by
 * byte here) that must each give their own clear error, never a crash: every
 * truncation point of a valid file, wrong magic, unknown versions, counts and
 * lengths near 2^64, offsets out of range or misaligned, overlapping
 * tensors, unknown types, arrays nested 1000 deep, duplicates. Run under ASan
 * too, where the buffers are exact-size heap copies so any over-read is
 * caught.
 */
#include "core/core.h"
#include "test_util.h"

#include <string.h>
#include <unistd.h>

/* ---- a byte builder for crafted files ------------------------------------ */

typedef struct bytes {
    uint8_t *p;
    size_t   len, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void put_kv_u32(bytes *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, 4);
    put_u32(b, v);
}
static void put_tensor(bytes *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                       uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, offset);
}
static void pad_to(bytes *b, size_t align) {
    static const uint8_t z[64] = {0};
    while (b->len % align) put(b, z, 1);
}
static void put_zeros(bytes *b, size_t n) {
    for (size_t i = 0; i < n; i++) put(b, "", 1);
}

/* Opens a heap copy of exactly len bytes (so ASan sees any over-read). The
 * handle points into the copy, which close_bytes() frees with it. */
static uint8_t *held_copy;

static orion_status open_bytes(const uint8_t *p, size_t len, orion_gguf **out) {
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, p, len);
    orion_status st = orion_gguf_open_memory(copy, len, out);
    if (st == ORION_OK) {
        assert_null(held_copy);
        held_copy = copy;
    } else {
        free(copy);
    }
    return st;
}

static void close_bytes(orion_gguf *g) {
    orion_gguf_free(g);
    free(held_copy);
    held_copy = NULL;
}

/* Expects the crafted file to fail with `status` and a message containing
 * `needle`. */
static void expect_error(bytes *b, orion_status status, const char *needle) {
    orion_gguf *g = NULL;
    orion_status st = open_bytes(b->p, b->len, &g);
    if (st != status || !strstr(orion_last_error(), needle)) {
        fprintf(stderr, "expected status %d with '%s', got %d: '%s'\n", status, needle, st, orion_last_error());
    }
    assert_int_equal(st, status);
    assert_null(g);
    assert_non_null(strstr(orion_last_error(), needle));
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- a valid small file, built by the writer -------------------------------- */

static float t_f32[2][4];
static uint8_t t_q8[2 * 34];
static uint8_t t_q4[2 * 18];

static char *write_small_file(void) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/orion_test_gguf_%d.gguf", (int)getpid());
    for (int i = 0; i < 8; i++) t_f32[i / 4][i % 4] = (float)i * 0.5f - 1.0f;
    float row[64];
    for (int i = 0; i < 64; i++) row[i] = sinf((float)i);
    assert_int_equal(orion_quantize(ORION_TYPE_Q8_0, row, t_q8, 2, 32, NULL), ORION_OK);
    assert_int_equal(orion_quantize(ORION_TYPE_Q4_0, row, t_q4, 1, 64, NULL), ORION_OK);

    orion_gguf_writer *w = NULL;
    assert_int_equal(orion_gguf_writer_init(&w), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_str(w, "general.architecture", "llama"), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_u32(w, "llama.block_count", 5), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_i32(w, "test.negative", -7), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_f32(w, "test.eps", 1e-5f), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_bool(w, "test.flag", true), ORION_OK);
    assert_int_equal(orion_gguf_writer_set_u64(w, "test.big", 1ull << 40), ORION_OK);
    const char *toks[] = {"<unk>", "<s>", "</s>", "h\xc3\xa9llo"};
    assert_int_equal(orion_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, 4), ORION_OK);
    float scores[4] = {0.0f, -1.5f, 2.25f, 3.0f};
    assert_int_equal(orion_gguf_writer_set_array(w, "tokenizer.ggml.scores", ORION_GGUF_F32, scores, 4), ORION_OK);
    /* a nested array: [[1, 2], [3]] of i32 */
    int32_t a1[2] = {1, 2}, a2[1] = {3};
    orion_gguf_value inner[2] = {
        {.type = ORION_GGUF_ARRAY, .v.arr = {ORION_GGUF_I32, 2, a1, NULL}},
        {.type = ORION_GGUF_ARRAY, .v.arr = {ORION_GGUF_I32, 1, a2, NULL}},
    };
    orion_gguf_value outer = {.type = ORION_GGUF_ARRAY, .v.arr = {ORION_GGUF_ARRAY, 2, NULL, inner}};
    assert_int_equal(orion_gguf_writer_set(w, "test.nested", &outer), ORION_OK);
    /* setting a key again replaces it in place */
    assert_int_equal(orion_gguf_writer_set_u32(w, "llama.block_count", 6), ORION_OK);

    int64_t ne_f32[2] = {4, 2}, ne_q8[2] = {32, 2}, ne_q4[1] = {64};
    assert_int_equal(orion_gguf_writer_add_tensor(w, "a.weight", ORION_TYPE_F32, 2, ne_f32, t_f32), ORION_OK);
    assert_int_equal(orion_gguf_writer_add_tensor(w, "b.weight", ORION_TYPE_Q8_0, 2, ne_q8, t_q8), ORION_OK);
    assert_int_equal(orion_gguf_writer_add_tensor(w, "c.weight", ORION_TYPE_Q4_0, 1, ne_q4, t_q4), ORION_OK);
    /* writer-side validation */
    int64_t bad_ne[1] = {33};
    assert_int_equal(orion_gguf_writer_add_tensor(w, "d", ORION_TYPE_Q8_0, 1, bad_ne, t_q8), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_gguf_writer_add_tensor(w, "a.weight", ORION_TYPE_F32, 2, ne_f32, t_f32),
                     ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_gguf_writer_set_alignment(w, 3), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_gguf_writer_write(w, path), ORION_OK);
    orion_gguf_writer_free(w);
    return path;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void test_roundtrip(void **state) {
    (void)state;
    char *path = write_small_file();
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(path, &g), ORION_OK);
    assert_int_equal(orion_gguf_version(g), 3);
    assert_int_equal(orion_gguf_alignment(g), 32);
    assert_int_equal(orion_gguf_n_kv(g), 9);
    assert_string_equal(orion_gguf_kv_key(g, 1), "llama.block_count"); /* kept its place */
    char buf[64];
    assert_int_equal(orion_gguf_get_str(g, "general.architecture", buf, sizeof buf), ORION_OK);
    assert_string_equal(buf, "llama");
    uint64_t u;
    int64_t i64;
    double f;
    bool b;
    assert_int_equal(orion_gguf_get_u64(g, "llama.block_count", &u), ORION_OK);
    assert_int_equal(u, 6);
    assert_int_equal(orion_gguf_get_i64(g, "test.negative", &i64), ORION_OK);
    assert_int_equal(i64, -7);
    assert_int_equal(orion_gguf_get_u64(g, "test.negative", &u), ORION_ERR_FORMAT); /* negative to unsigned */
    assert_int_equal(orion_gguf_get_f64(g, "test.eps", &f), ORION_OK);
    assert_true(f == (double)1e-5f);
    assert_int_equal(orion_gguf_get_bool(g, "test.flag", &b), ORION_OK);
    assert_true(b);
    assert_int_equal(orion_gguf_get_u64(g, "test.big", &u), ORION_OK);
    assert_true(u == 1ull << 40);
    assert_int_equal(orion_gguf_get_u64(g, "general.architecture", &u), ORION_ERR_FORMAT);
    assert_int_equal(orion_gguf_get_u64(g, "no.such.key", &u), ORION_ERR_NOT_FOUND);
    assert_non_null(strstr(orion_last_error(), "no.such.key"));

    const orion_gguf_value *toks = orion_gguf_get(g, "tokenizer.ggml.tokens");
    assert_non_null(toks);
    assert_int_equal(toks->v.arr.elem_type, ORION_GGUF_STRING);
    assert_int_equal(toks->v.arr.count, 4);
    assert_int_equal(toks->v.arr.items[3].v.str.len, 6);
    assert_memory_equal(toks->v.arr.items[3].v.str.ptr, "h\xc3\xa9llo", 6);
    const orion_gguf_value *scores = orion_gguf_get(g, "tokenizer.ggml.scores");
    assert_true(orion_gguf_array_f64(scores, 2) == 2.25);
    assert_true(orion_gguf_array_f64(scores, 99) == 0.0); /* out of range */
    const orion_gguf_value *nested = orion_gguf_get(g, "test.nested");
    assert_int_equal(nested->v.arr.count, 2);
    assert_int_equal(orion_gguf_array_i64(&nested->v.arr.items[0], 1), 2);
    assert_int_equal(orion_gguf_array_i64(&nested->v.arr.items[1], 0), 3);

    assert_int_equal(orion_gguf_n_tensors(g), 3);
    const orion_gguf_tensor *a = orion_gguf_find_tensor(g, "a.weight");
    const orion_gguf_tensor *bq = orion_gguf_find_tensor(g, "b.weight");
    const orion_gguf_tensor *c = orion_gguf_find_tensor(g, "c.weight");
    assert_non_null(a);
    assert_non_null(bq);
    assert_non_null(c);
    assert_null(orion_gguf_find_tensor(g, "z"));
    assert_int_equal(a->ne[0], 4);
    assert_int_equal(a->ne[1], 2);
    assert_int_equal(a->n_bytes, 32);
    assert_memory_equal(a->data, t_f32, 32);
    assert_int_equal(bq->type, ORION_TYPE_Q8_0);
    assert_memory_equal(bq->data, t_q8, sizeof t_q8);
    assert_int_equal(c->n_dims, 1);
    assert_memory_equal(c->data, t_q4, sizeof t_q4);
    for (int64_t i = 0; i < 3; i++) assert_int_equal(orion_gguf_tensor_at(g, i)->offset % 32, 0);
    orion_gguf_free(g);
    orion_gguf_free(NULL);
    unlink(path);
}

/* The real file: stories260K as published for llama.cpp. */
static void test_stories260k(void **state) {
    (void)state;
    char path[1024];
    const char *shared = test_shared_dir();
    if (!shared) skip();
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared);
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open(path, &g), ORION_OK);
    assert_int_equal(orion_gguf_version(g), 3);
    assert_int_equal(orion_gguf_n_kv(g), 19);
    assert_int_equal(orion_gguf_n_tensors(g), 48);
    uint64_t u;
    assert_int_equal(orion_gguf_get_u64(g, "llama.block_count", &u), ORION_OK);
    assert_int_equal(u, 5);
    assert_int_equal(orion_gguf_get_u64(g, "llama.attention.head_count_kv", &u), ORION_OK);
    assert_int_equal(u, 4);
    const orion_gguf_value *toks = orion_gguf_get(g, "tokenizer.ggml.tokens");
    assert_int_equal(toks->v.arr.count, 512);
    assert_int_equal(toks->v.arr.items[1].v.str.len, 3);
    assert_memory_equal(toks->v.arr.items[1].v.str.ptr, "<s>", 3);
    const orion_gguf_tensor *k = orion_gguf_find_tensor(g, "blk.0.attn_k.weight");
    assert_non_null(k);
    assert_int_equal(k->ne[0], 64);
    assert_int_equal(k->ne[1], 32);
    assert_int_equal(k->type, ORION_TYPE_F32);
    /* every tensor lies inside the file, after the header */
    size_t total = 0;
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) total += orion_gguf_tensor_at(g, i)->n_bytes;
    assert_true(orion_gguf_data_offset(g) + total <= orion_gguf_file_size(g));

    /* copy it through the writer (every key and tensor), read it back: the
     * same metadata values and bit-identical tensors */
    orion_gguf_writer *w = NULL;
    assert_int_equal(orion_gguf_writer_init(&w), ORION_OK);
    for (int64_t i = 0; i < orion_gguf_n_kv(g); i++)
        assert_int_equal(orion_gguf_writer_set(w, orion_gguf_kv_key(g, i), orion_gguf_kv_value(g, i)), ORION_OK);
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        assert_int_equal(orion_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data), ORION_OK);
    }
    char out[256];
    snprintf(out, sizeof out, "/tmp/orion_test_copy_%d.gguf", (int)getpid());
    assert_int_equal(orion_gguf_writer_write(w, out), ORION_OK);
    orion_gguf_writer_free(w);
    orion_gguf *h = NULL;
    assert_int_equal(orion_gguf_open(out, &h), ORION_OK);
    assert_int_equal(orion_gguf_n_kv(h), orion_gguf_n_kv(g));
    for (int64_t i = 0; i < orion_gguf_n_kv(g); i++) {
        const orion_gguf_value *x = orion_gguf_kv_value(g, i), *y = orion_gguf_kv_value(h, i);
        assert_string_equal(orion_gguf_kv_key(g, i), orion_gguf_kv_key(h, i));
        assert_int_equal(x->type, y->type);
        if (x->type == ORION_GGUF_ARRAY) {
            assert_int_equal(x->v.arr.count, y->v.arr.count);
            for (uint64_t j = 0; j < x->v.arr.count; j++) {
                if (x->v.arr.items) {
                    assert_int_equal(x->v.arr.items[j].v.str.len, y->v.arr.items[j].v.str.len);
                    assert_memory_equal(x->v.arr.items[j].v.str.ptr, y->v.arr.items[j].v.str.ptr,
                                        x->v.arr.items[j].v.str.len);
                } else {
                    assert_true(orion_gguf_array_f64(x, j) == orion_gguf_array_f64(y, j));
                }
            }
        } else if (x->type == ORION_GGUF_STRING) {
            assert_int_equal(x->v.str.len, y->v.str.len);
            assert_memory_equal(x->v.str.ptr, y->v.str.ptr, x->v.str.len);
        } else {
            assert_memory_equal(&x->v, &y->v, sizeof x->v.u64);
        }
    }
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i), *u2 = orion_gguf_find_tensor(h, t->name);
        assert_non_null(u2);
        assert_int_equal(t->n_bytes, u2->n_bytes);
        assert_memory_equal(t->data, u2->data, t->n_bytes);
    }
    orion_gguf_free(h);
    orion_gguf_free(g);
    unlink(out);
}

/* Every proper prefix of a valid file is rejected with a format error. */
static void test_truncation_everywhere(void **state) {
    (void)state;
    char *path = write_small_file();
    size_t len;
    uint8_t *file = read_file(path, &len);
    unlink(path);
    orion_gguf *g = NULL;
    assert_int_equal(open_bytes(file, len, &g), ORION_OK);
    /* the file is complete once the last tensor's bytes are there (the
     * writer's padding after it is optional) */
    size_t data_end = 0;
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        data_end = ORION_MAX(data_end, orion_gguf_data_offset(g) + (size_t)t->offset + t->n_bytes);
    }
    close_bytes(g);
    assert_true(data_end > 0 && data_end <= len);
    for (size_t cut = 0; cut < len; cut++) {
        orion_status st = open_bytes(file, cut, &g);
        if (cut >= data_end) {
            assert_int_equal(st, ORION_OK);
            close_bytes(g);
            continue;
        }
        assert_int_equal(st, ORION_ERR_FORMAT);
        assert_null(g);
        assert_true(strlen(orion_last_error()) > 0);
    }
    /* and every single-byte corruption is either accepted or rejected
     * cleanly (ASan/UBSan watch for the rest) */
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 3; v++) {
            uint8_t saved = file[i];
            file[i] = (uint8_t)(v == 0 ? 0xff : v == 1 ? 0x00 : saved ^ 0x80);
            if (open_bytes(file, len, &g) == ORION_OK) close_bytes(g);
            file[i] = saved;
        }
    }
    free(file);
}

static void test_header_errors(void **state) {
    (void)state;
    bytes b = {0};
    expect_error(&b, ORION_ERR_FORMAT, "too small");
    put(&b, "GGML", 4), put_u32(&b, 3), put_u64(&b, 0), put_u64(&b, 0);
    expect_error(&b, ORION_ERR_FORMAT, "not a GGUF file");
    put_header(&b, 1, 0, 0);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "version 1");
    put_header(&b, 99, 0, 0);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "unknown GGUF version 99");
    put_header(&b, 0x03000000u, 0, 0);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "big-endian");
    put_header(&b, 3, UINT64_MAX, 0);
    expect_error(&b, ORION_ERR_FORMAT, "tensor count");
    put_header(&b, 3, 0, UINT64_MAX - 1);
    expect_error(&b, ORION_ERR_FORMAT, "metadata count");
    put_header(&b, 3, 1ull << 62, 1ull << 62);
    expect_error(&b, ORION_ERR_FORMAT, "count");

    /* a valid empty file (v2 too) */
    put_header(&b, 2, 0, 0);
    orion_gguf *g = NULL;
    assert_int_equal(open_bytes(b.p, b.len, &g), ORION_OK);
    assert_int_equal(orion_gguf_version(g), 2);
    close_bytes(g);
    free(b.p);
}

static void test_metadata_errors(void **state) {
    (void)state;
    bytes b = {0};
    /* key length near 2^64 */
    put_header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX - 7);
    put_zeros(&b, 16);
    expect_error(&b, ORION_ERR_FORMAT, "metadata key at byte 24 has length");
    /* string value longer than the file */
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 8);
    put_u64(&b, 1000);
    put(&b, "abc", 3);
    expect_error(&b, ORION_ERR_FORMAT, "only 3 bytes are left");
    /* empty key, key with NUL */
    put_header(&b, 3, 0, 1);
    put_str(&b, "");
    put_u32(&b, 4), put_u32(&b, 0);
    expect_error(&b, ORION_ERR_FORMAT, "empty metadata key");
    put_header(&b, 3, 0, 1);
    put_u64(&b, 3), put(&b, "a\0b", 3);
    put_u32(&b, 4), put_u32(&b, 0);
    expect_error(&b, ORION_ERR_FORMAT, "NUL byte");
    /* unknown value type */
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 13);
    put_u32(&b, 0);
    expect_error(&b, ORION_ERR_FORMAT, "unknown value type 13");
    /* array count that cannot fit */
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 9), put_u32(&b, 6), put_u64(&b, 1ull << 61);
    put_zeros(&b, 8);
    expect_error(&b, ORION_ERR_FORMAT, "cannot fit");
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 9), put_u32(&b, 8), put_u64(&b, UINT64_MAX);
    expect_error(&b, ORION_ERR_FORMAT, "cannot fit");
    /* unknown array element type */
    put_header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 9), put_u32(&b, 77), put_u64(&b, 1);
    expect_error(&b, ORION_ERR_FORMAT, "unknown array element type 77");
    /* arrays nested 1000 deep */
    put_header(&b, 3, 0, 1);
    put_str(&b, "deep");
    put_u32(&b, 9);
    for (int i = 0; i < 1000; i++) put_u32(&b, 9), put_u64(&b, 1);
    put_u32(&b, 4), put_u64(&b, 1), put_u32(&b, 7);
    expect_error(&b, ORION_ERR_FORMAT, "nested deeper than 16");
    /* duplicate key */
    put_header(&b, 3, 0, 2);
    put_kv_u32(&b, "a.b", 1);
    put_kv_u32(&b, "a.b", 2);
    expect_error(&b, ORION_ERR_FORMAT, "'a.b' appears twice");
    /* bad alignment: zero, not a power of two, wrong type */
    put_header(&b, 3, 0, 1);
    put_kv_u32(&b, "general.alignment", 0);
    expect_error(&b, ORION_ERR_FORMAT, "power of two");
    put_header(&b, 3, 0, 1);
    put_kv_u32(&b, "general.alignment", 48);
    expect_error(&b, ORION_ERR_FORMAT, "power of two");
    put_header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, 10), put_u64(&b, 32);
    expect_error(&b, ORION_ERR_FORMAT, "expected u32");
}

/* A file with one metadata key and the given tensor infos, then data. */
static void tensor_file(bytes *b, int n, const char *const *names, const uint32_t *types, const uint64_t *offsets,
                        const uint64_t *ne0, size_t data_bytes) {
    put_header(b, 3, (uint64_t)n, 1);
    put_kv_u32(b, "general.alignment", 32);
    for (int i = 0; i < n; i++) {
        uint64_t ne[2] = {ne0[i], 2};
        put_tensor(b, names[i], 2, ne, types[i], offsets[i]);
    }
    pad_to(b, 32);
    put_zeros(b, data_bytes);
}

static void test_tensor_errors(void **state) {
    (void)state;
    bytes b = {0};
    const char *two[] = {"x", "y"};
    const char *one[] = {"x"};
    uint32_t f32s[] = {0, 0};
    uint64_t ne32[] = {32, 32};
    /* valid: two f32 tensors of 256 bytes each */
    tensor_file(&b, 2, two, f32s, (uint64_t[]){0, 256}, ne32, 512);
    orion_gguf *g = NULL;
    assert_int_equal(open_bytes(b.p, b.len, &g), ORION_OK);
    close_bytes(g);
    free(b.p);
    memset(&b, 0, sizeof b);

    tensor_file(&b, 2, two, f32s, (uint64_t[]){0, 128}, ne32, 512);
    expect_error(&b, ORION_ERR_FORMAT, "overlap");
    tensor_file(&b, 2, two, f32s, (uint64_t[]){0, 16}, ne32, 512);
    expect_error(&b, ORION_ERR_FORMAT, "not a multiple of the alignment");
    tensor_file(&b, 1, one, f32s, (uint64_t[]){512}, ne32, 512);
    expect_error(&b, ORION_ERR_FORMAT, "run past");
    tensor_file(&b, 1, one, f32s, (uint64_t[]){UINT64_MAX - 31}, ne32, 512);
    expect_error(&b, ORION_ERR_FORMAT, "run past");
    tensor_file(&b, 2, (const char *[]){"x", "x"}, f32s, (uint64_t[]){0, 256}, ne32, 512);
    expect_error(&b, ORION_ERR_FORMAT, "'x' appears twice");
    tensor_file(&b, 1, one, (uint32_t[]){12}, (uint64_t[]){0}, ne32, 512);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "type id 12");
    tensor_file(&b, 1, one, (uint32_t[]){9999}, (uint64_t[]){0}, ne32, 512);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "type id 9999");
    tensor_file(&b, 1, one, (uint32_t[]){8}, (uint64_t[]){0}, (uint64_t[]){33}, 512);
    expect_error(&b, ORION_ERR_FORMAT, "not a multiple of the q8_0 block size");
    /* dimensions: 0 or 5 of them, overflowing element counts */
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "x", 5, (uint64_t[]){1, 1, 1, 1, 1}, 0, 0);
    expect_error(&b, ORION_ERR_FORMAT, "5 dimensions");
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "x", 0, NULL, 0, 0);
    expect_error(&b, ORION_ERR_FORMAT, "0 dimensions");
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "x", 2, (uint64_t[]){1ull << 40, 1ull << 40}, 0, 0);
    expect_error(&b, ORION_ERR_FORMAT, "overflow");
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "x", 1, (uint64_t[]){UINT64_MAX}, 0, 0);
    expect_error(&b, ORION_ERR_FORMAT, "overflow");
    /* data section would start past the end */
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "x", 1, (uint64_t[]){0}, 0, 0);
    expect_error(&b, ORION_ERR_FORMAT, "past the end");
}

static void test_open_errors(void **state) {
    (void)state;
    orion_gguf *g = NULL;
    assert_int_equal(orion_gguf_open("/nonexistent/model.gguf", &g), ORION_ERR_NOT_FOUND);
    assert_non_null(strstr(orion_last_error(), "/nonexistent/model.gguf"));
    char path[256];
    snprintf(path, sizeof path, "/tmp/orion_test_empty_%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(orion_gguf_open(path, &g), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "empty file"));
    unlink(path);
    assert_int_equal(orion_gguf_open("/tmp", &g), ORION_ERR_IO);
    assert_int_equal(orion_gguf_open(NULL, &g), ORION_ERR_INVALID_ARG);
}

/* Fail allocation 0, 1, 2, ... while opening: always a clean NOMEM, no leak. */
static void test_open_under_oom(void **state) {
    (void)state;
    char *path = write_small_file();
    size_t len;
    uint8_t *file = read_file(path, &len);
    unlink(path);
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    bool opened = false;
    for (int n = 0; n < 200 && !opened; n++) {
        orion_gguf *g = NULL;
        orion__alloc_fail_after(n);
        orion_status st = orion_gguf_open_memory(file, len, &g);
        orion__alloc_fail_after(-1);
        if (st == ORION_OK) {
            opened = true;
            orion_gguf_free(g);
        } else {
            assert_int_equal(st, ORION_ERR_NOMEM);
            assert_null(g);
        }
        orion_mem_get_stats(&after);
        assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    }
    assert_true(opened);
    free(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_metadata_errors),
        cmocka_unit_test(test_tensor_errors),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_open_under_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
