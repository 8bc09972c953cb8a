/*
 * test_safetensors.c — the safetensors reader: a file with every dtype
 * written by the independent Python fixture script (tests/fixtures/
 * make_hf_fixtures.py, struct + json by hand) read back field by field and
 * byte by byte; a corpus of broken files crafted here byte by byte, each of
 * which must fail with its own message naming the file, tensor and field
 * (every truncation point of a valid file, header lengths near 2^64, headers
 * that are not JSON or not objects, unknown dtypes, bad shapes and offsets,
 * overlaps, duplicates); and out-of-memory at every allocation, cJSON's
 * included. Buffers are exact-size heap copies so ASan sees any over-read.
 */
#include "core/core.h"
#include "formats/safetensors.h"
#include "test_util.h"

#include <libgen.h>
#include <string.h>
#include <unistd.h>

static char fixtures[256]; /* the Python script's output directory */

static int setup(void **state) {
    (void)state;
    char src[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(fixtures, sizeof fixtures, "/tmp/orion_test_safetensors_%d", (int)getpid());
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "python3 '%s/fixtures/make_hf_fixtures.py' '%s' > /dev/null", dirname(src), fixtures);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_safetensors: cannot run the fixture script: %s\n", cmd);
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

/* ---- crafted files ------------------------------------------------------------ */

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
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* A file: u64 header length (given, or the header's own when ~0), the
 * header text, then `data_len` bytes 0, 1, 2, ... */
static bytes make_file_n(uint64_t header_len, const char *header, size_t data_len) {
    bytes b = {0};
    uint64_t n = header_len == ~0ull ? strlen(header) : header_len;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
    put(&b, le, 8);
    put(&b, header, strlen(header));
    for (size_t i = 0; i < data_len; i++) {
        uint8_t v = (uint8_t)i;
        put(&b, &v, 1);
    }
    return b;
}

static bytes make_file(const char *header, size_t data_len) {
    return make_file_n(~0ull, header, data_len);
}

/* Opens an exact-size heap copy; the handle and copy are freed by close_st. */
static uint8_t *held;

static orion_status open_bytes(const uint8_t *p, size_t len, orion_safetensors **out) {
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, p, len);
    orion_status st = orion__safetensors_open_memory(copy, len, "crafted.safetensors", out);
    if (st == ORION_OK) {
        assert_null(held);
        held = copy;
    } else {
        free(copy);
    }
    return st;
}

static void close_st(orion_safetensors *st) {
    orion__safetensors_free(st);
    free(held);
    held = NULL;
}

/* The crafted file must fail with `status` and a message containing the
 * file name and every needle given. */
static void expect_error_(bytes *b, orion_status status, const char *n1, const char *n2, const char *n3) {
    orion_safetensors *st = NULL;
    orion_status s = open_bytes(b->p, b->len, &st);
    const char *msg = orion_last_error();
    bool ok = s == status && strstr(msg, "crafted.safetensors") && strstr(msg, n1) && (!n2 || strstr(msg, n2)) &&
              (!n3 || strstr(msg, n3));
    if (!ok) fprintf(stderr, "expected status %d with '%s' '%s' '%s', got %d: '%s'\n", status, n1, n2 ? n2 : "",
                     n3 ? n3 : "", s, msg);
    assert_true(ok);
    assert_null(st);
    free(b->p);
    memset(b, 0, sizeof *b);
}
#define expect_error(b, status, ...) expect_error_x(b, status, __VA_ARGS__, NULL, NULL, NULL)
#define expect_error_x(b, status, n1, n2, n3, ...) expect_error_(b, status, n1, n2, n3)

static void expect_ok(bytes *b, int64_t n_tensors) {
    orion_safetensors *st = NULL;
    orion_status s = open_bytes(b->p, b->len, &st);
    if (s != ORION_OK) fprintf(stderr, "unexpected failure: %s\n", orion_last_error());
    assert_int_equal(s, ORION_OK);
    assert_int_equal(orion__safetensors_n_tensors(st), n_tensors);
    close_st(st);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- the Python-written file ---------------------------------------------------- */

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static const char *const dtype_names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};

/* Checks every tensor of all_dtypes.txt against the reader's view. */
static void check_all_dtypes(const orion_safetensors *st) {
    char path[512];
    snprintf(path, sizeof path, "%s/safetensors/all_dtypes.txt", fixtures);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int64_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char name[128], dtype[16];
        int n_dims, used = 0;
        assert_int_equal(sscanf(line, "tensor %127s %15s %d%n", name, dtype, &n_dims, &used), 3);
        const char *p = line + used;
        int64_t shape[8];
        for (int d = 0; d < n_dims; d++) {
            long long v;
            int k;
            assert_int_equal(sscanf(p, "%lld%n", &v, &k), 1);
            shape[d] = v;
            p += k;
        }
        unsigned long long begin, end;
        char hex[2048];
        int k;
        assert_int_equal(sscanf(p, "%llu %llu %2047s%n", &begin, &end, hex, &k), 3);
        const orion_st_tensor *t = orion__safetensors_find(st, name);
        assert_non_null(t);
        assert_string_equal(t->name, name);
        assert_string_equal(orion__st_dtype_name(t->dtype), dtype);
        assert_int_equal(t->n_dims, n_dims);
        int64_t ne = 1;
        for (int d = 0; d < n_dims; d++) {
            assert_int_equal(t->shape[d], shape[d]);
            ne *= shape[d];
        }
        assert_int_equal(t->n_elems, ne);
        assert_int_equal(t->offset, begin);
        assert_int_equal(t->n_bytes, end - begin);
        assert_int_equal(t->n_bytes, (size_t)ne * orion__st_dtype_size(t->dtype));
        if (strcmp(hex, "-") != 0) {
            size_t nb = strlen(hex) / 2;
            assert_int_equal(nb, t->n_bytes);
            for (size_t i = 0; i < nb; i++)
                assert_int_equal(((const uint8_t *)t->data)[i], hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
        }
        n++;
    }
    fclose(f);
    assert_int_equal(n, 12);
    assert_int_equal(orion__safetensors_n_tensors(st), n);
    /* every dtype appears; header order is kept */
    for (int d = 0; d < ORION_ST_DTYPE_COUNT; d++) {
        bool seen = false;
        for (int64_t i = 0; i < n; i++) seen |= orion__safetensors_tensor_at(st, i)->dtype == (orion_st_dtype)d;
        assert_true(seen);
        assert_string_equal(orion__st_dtype_name((orion_st_dtype)d), dtype_names[d]);
    }
    assert_string_equal(orion__safetensors_tensor_at(st, 0)->name, "f64.vector");
    assert_null(orion__safetensors_tensor_at(st, n));
    assert_null(orion__safetensors_tensor_at(st, -1));
    assert_null(orion__safetensors_find(st, "f32"));
    assert_null(orion__safetensors_find(st, "zzz"));
    assert_null(orion__safetensors_find(st, "__metadata__"));
}

static uint8_t *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n ? (size_t)n : 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void test_python_roundtrip(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/safetensors/all_dtypes.safetensors", fixtures);
    orion_safetensors *st = NULL;
    assert_int_equal(orion__safetensors_open(path, &st), ORION_OK);
    assert_string_equal(orion__safetensors_label(st), path);
    check_all_dtypes(st);
    const orion_st_tensor *t = orion__safetensors_find(st, "f32.matrix");
    float f[6];
    memcpy(f, t->data, sizeof f);
    assert_true(f[0] == 0.5f && f[1] == -1.0f && f[3] == 3.25f && f[5] == 1e-30f);
    orion__safetensors_free(st);

    /* the same through open_memory on an exact-size copy */
    size_t len;
    uint8_t *file = read_whole(path, &len);
    assert_int_equal(open_bytes(file, len, &st), ORION_OK);
    check_all_dtypes(st);
    assert_string_equal(orion__safetensors_label(st), "crafted.safetensors");
    close_st(st);

    /* the model files of the HF fixtures open too */
    const char *models[] = {"bert_prefixed/model.safetensors", "bert_plain/model.safetensors",
                            "llama_sharded/model-00001-of-00002.safetensors", "llama_tied/model.safetensors",
                            "mistral/model.safetensors"};
    for (size_t i = 0; i < ORION_ARRAY_LEN(models); i++) {
        snprintf(path, sizeof path, "%s/%s", fixtures, models[i]);
        assert_int_equal(orion__safetensors_open(path, &st), ORION_OK);
        assert_true(orion__safetensors_n_tensors(st) > 5);
        orion__safetensors_free(st);
    }
    free(file);
}

/* Every proper prefix of a valid file fails cleanly; single-byte
 * corruptions are accepted or rejected, never a crash. */
static void test_truncation_everywhere(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/safetensors/all_dtypes.safetensors", fixtures);
    size_t len;
    uint8_t *file = read_whole(path, &len);
    orion_safetensors *st = NULL;
    for (size_t cut = 0; cut < len; cut++) {
        orion_status s = open_bytes(file, cut, &st);
        assert_int_equal(s, ORION_ERR_FORMAT);
        assert_null(st);
        assert_non_null(strstr(orion_last_error(), "crafted.safetensors"));
    }
    assert_int_equal(open_bytes(file, len, &st), ORION_OK);
    close_st(st);
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 3; v++) {
            uint8_t saved = file[i];
            file[i] = (uint8_t)(v == 0 ? 0xff : v == 1 ? 0x00 : saved ^ 0x20);
            orion_status s = open_bytes(file, len, &st);
            if (s == ORION_OK) close_st(st);
            else assert_true(strlen(orion_last_error()) > 0);
            file[i] = saved;
        }
    }
    free(file);
}

static void test_header_errors(void **state) {
    (void)state;
    bytes b;
    b = make_file_n(~0ull, "", 0);
    b.len = 5;
    expect_error(&b, ORION_ERR_FORMAT, "truncated", "5 bytes");
    b = make_file_n(0xfffffffffffffff0ull, "{}", 0);
    expect_error(&b, ORION_ERR_FORMAT, "header length 18446744073709551600", "over the limit");
    b = make_file_n(ORION_ST_MAX_HEADER + 1, "{}", 0);
    expect_error(&b, ORION_ERR_FORMAT, "over the limit");
    b = make_file_n(1000, "{}", 10);
    expect_error(&b, ORION_ERR_FORMAT, "truncated: header length 1000", "12 bytes follow");
    b = make_file("", 0);
    expect_error(&b, ORION_ERR_FORMAT, "not valid JSON");
    b = make_file("{\"a\": {\"dtype\": \"F32\", ", 0);
    expect_error(&b, ORION_ERR_FORMAT, "not valid JSON");
    b = make_file("not json at all", 0);
    expect_error(&b, ORION_ERR_FORMAT, "not valid JSON", "byte 0");
    b = make_file("{} {}", 0);
    expect_error(&b, ORION_ERR_FORMAT, "unexpected text after the value at byte 3");
    b = make_file("[1, 2, 3]", 0);
    expect_error(&b, ORION_ERR_FORMAT, "the header is a JSON array, not an object");
    b = make_file("\"text\"", 0);
    expect_error(&b, ORION_ERR_FORMAT, "not an object");
    b = make_file("{\"a\x01\": 1}", 0);
    b.p[10] = '\0'; /* a NUL inside the header */
    expect_error(&b, ORION_ERR_FORMAT, "NUL byte at byte 2");
    /* deep nesting: cJSON's limit, not the stack */
    char deep[4200];
    size_t o = 0;
    deep[o++] = '{';
    memcpy(deep + o, "\"a\":", 4), o += 4;
    for (int i = 0; i < 2000; i++) deep[o++] = '[';
    deep[o] = '\0';
    b = make_file(deep, 0);
    expect_error(&b, ORION_ERR_FORMAT, "not valid JSON");
    b = make_file("{\"__metadata__\": [1]}", 0);
    expect_error(&b, ORION_ERR_FORMAT, "field '__metadata__' is array");
    b = make_file("{\"__metadata__\": {\"format\": 3}}", 0);
    expect_error(&b, ORION_ERR_FORMAT, "field '__metadata__'", "'format' is number");
    /* valid edge cases */
    b = make_file("{}", 0);
    expect_ok(&b, 0);
    b = make_file("  {\"__metadata__\": {\"k\": \"v\"}}    \n\t ", 0);
    expect_ok(&b, 0);
    b = make_file("{\"s\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [0, 4]}, "
                  "\"e\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [2, 2]}, "
                  "\"e2\": {\"dtype\": \"F16\", \"shape\": [3, 0], \"data_offsets\": [2, 2], \"extra\": 1}}",
                  4);
    expect_ok(&b, 3);
}

static void test_tensor_errors(void **state) {
    (void)state;
    bytes b;
    b = make_file("{\"w\": 5}", 0);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "entry is number, expected an object");
    b = make_file("{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "name has 0 bytes");
    /* dtype */
    b = make_file("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'dtype' is missing");
    b = make_file("{\"w\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'dtype' is number");
    b = make_file("{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "tensor 'w'", "field 'dtype' is 'F8_E4M3'", "not support");
    b = make_file("{\"w\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_error(&b, ORION_ERR_UNSUPPORTED, "tensor 'w'", "'f32'");
    /* shape */
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'shape' is missing");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": \"2x2\", \"data_offsets\": [0, 16]}}", 16);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'shape' is string");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -2], \"data_offsets\": [0, 16]}}", 16);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'shape': dimension 1 is not a non-negative integer");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "dimension 0 is not a non-negative integer");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "dimension 0 is not");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 8]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "dimension 0 is not");
    b = make_file("{\"w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'shape' has more than 8 dimensions");
    b = make_file("{\"w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", 1);
    expect_ok(&b, 1);
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "dimension 1 = 4294967296 makes the element count overflow");
    b = make_file("{\"w\": {\"dtype\": \"F64\", \"shape\": [2147483648, 4294967295], \"data_offsets\": [0, 8]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets' spans 8 bytes");
    /* data_offsets */
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets' is missing");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets' is an array of the wrong length");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {\"0\": 4}}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets' is object");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets' must hold two non-negative integers");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, \"4\"]}}", 4);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "two non-negative integers");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets': begin 8 is after end 4");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 7);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "end 8 is past the end of the data buffer (7 bytes)");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [9007199254740000, "
                  "9007199254740004]}}",
                  8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "past the end of the data buffer");
    b = make_file("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "field 'data_offsets' spans 4 bytes but 2 elements of F32 need 8");
    b = make_file("{\"w\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'w'", "spans 16 bytes but 4 elements of BF16 need 8");
    /* overlaps and duplicates */
    b = make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                  "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                  12);
    expect_error(&b, ORION_ERR_FORMAT, "tensors 'a' and 'b' overlap", "[0, 8) and [4, 12)");
    b = make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
                  "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [16, 20]}, "
                  "\"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                  20);
    expect_error(&b, ORION_ERR_FORMAT, "tensors 'a' and 'c' overlap");
    b = make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                  "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                  8);
    expect_error(&b, ORION_ERR_FORMAT, "tensor 'a' appears twice");
    /* touching is fine, and so are holes between tensors */
    b = make_file("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                  "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}, "
                  "\"c\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [10, 12]}}",
                  16);
    expect_ok(&b, 3);
}

static void test_open_errors(void **state) {
    (void)state;
    orion_safetensors *st = NULL;
    assert_int_equal(orion__safetensors_open("/nonexistent/model.safetensors", &st), ORION_ERR_NOT_FOUND);
    assert_non_null(strstr(orion_last_error(), "/nonexistent/model.safetensors"));
    assert_null(st);
    char path[256];
    snprintf(path, sizeof path, "/tmp/orion_test_st_empty_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(orion__safetensors_open(path, &st), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "empty file"));
    unlink(path);
    assert_int_equal(orion__safetensors_open("/tmp", &st), ORION_ERR_IO);
    assert_int_equal(orion__safetensors_open(NULL, &st), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion__safetensors_open_memory(NULL, 4, NULL, &st), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion__safetensors_open_memory(NULL, 0, NULL, &st), ORION_ERR_FORMAT);
    assert_non_null(strstr(orion_last_error(), "<memory>"));
    orion__safetensors_free(NULL);
}

/* Fail allocation 0, 1, 2, ... while opening (cJSON's included): always a
 * clean NOMEM, and no byte leaked. */
static void test_open_under_oom(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/safetensors/all_dtypes.safetensors", fixtures);
    size_t len;
    uint8_t *file = read_whole(path, &len);
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    bool opened = false;
    int n;
    for (n = 0; n < 5000 && !opened; n++) {
        orion_safetensors *st = NULL;
        orion__alloc_fail_after(n);
        orion_status s = orion__safetensors_open_memory(file, len, NULL, &st);
        orion__alloc_fail_after(-1);
        if (s == ORION_OK) {
            opened = true;
            check_all_dtypes(st);
            orion__safetensors_free(st);
        } else {
            if (s != ORION_ERR_NOMEM) fprintf(stderr, "allocation %d: %s\n", n, orion_last_error());
            assert_int_equal(s, ORION_ERR_NOMEM);
            assert_null(st);
        }
        orion_mem_get_stats(&after);
        assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    }
    assert_true(opened);
    assert_true(n > 50); /* cJSON's allocations are counted too */
    free(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_roundtrip),  cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_header_errors),     cmocka_unit_test(test_tensor_errors),
        cmocka_unit_test(test_open_errors),       cmocka_unit_test(test_open_under_oom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
