/*
 * test_bench_cli.c — smoke test of `orion bench kernels`: runs the built CLI
 * (its path comes from ORION_BIN, set by ctest) through popen and checks that
 *   - `bench kernels --quick --json --threads 1` exits 0 and prints one valid
 *     JSON object (checked by a small recursive-descent validator) whose
 *     read bandwidth, FMA peak, peak heap and every matrix-vector and GEMM
 *     figure are positive numbers;
 *   - an unknown flag exits 2 with nothing on stdout;
 *   - `bench matvec` on the tiny decoder shape prints one JSON object whose
 *     pair ratios are positive and ordered, and bad options exit 2;
 *   - `bench attention` on the tiny decoder shape prints one JSON object
 *     whose times and rates are positive and consistent (KV rate = bytes /
 *     median time), and bad options exit 2;
 *   - `bench vision` on a tiny synthetic mmproj (`orion synth --arch clip
 *     --shape test-tiny`) prints one JSON object whose times, GFLOP/s,
 *     peak, bytes and RSS are positive and consistent with each other
 *     (GFLOP/s = GFLOP per image / median encode time, best <= median,
 *     the shape the file declares, one time per rep).
 * It never checks a performance target: timing belongs to the benchmark, not
 * to unit tests, which must pass on a loaded machine.
 */
#include "test_util.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>

/* ---- running the CLI ---------------------------------------------------------- */

/* Runs `"$ORION_BIN" args` and returns its stdout (malloc'd, NUL-terminated)
 * and exit code; NULL when ORION_BIN is unset or the command cannot start. */
static char *run_orion(const char *args, int *exit_code) {
    const char *bin = getenv("ORION_BIN");
    if (!bin || !*bin) return NULL;
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "'%s' %s", bin, args);
    if (n < 0 || (size_t)n >= sizeof cmd) return NULL;
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    if (!out) {
        pclose(p);
        return NULL;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger) break;
            out = bigger;
            cap *= 2;
        }
        size_t got = fread(out + len, 1, cap - len - 1, p);
        if (got == 0) break;
        len += got;
    }
    out[len] = '\0';
    int status = pclose(p);
    *exit_code = (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
    return out;
}

/* ---- a small JSON validator ------------------------------------------------------ */

typedef struct json_cursor {
    const char *p;
    int         depth;
} json_cursor;

static bool json_value(json_cursor *c);

static void json_ws(json_cursor *c) {
    while (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r') c->p++;
}

static bool json_string(json_cursor *c) {
    if (*c->p != '"') return false;
    c->p++;
    while (*c->p && *c->p != '"') {
        if ((unsigned char)*c->p < 0x20) return false;
        if (*c->p == '\\') {
            c->p++;
            if (*c->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)c->p[i])) return false;
                c->p += 4;
            } else if (!strchr("\"\\/bfnrt", *c->p) || !*c->p) {
                return false;
            }
        }
        c->p++;
    }
    if (*c->p != '"') return false;
    c->p++;
    return true;
}

static bool json_number(json_cursor *c) {
    const char *s = c->p;
    if (*s == '-') s++;
    if (*s == '0') {
        s++;
    } else if (isdigit((unsigned char)*s)) {
        while (isdigit((unsigned char)*s)) s++;
    } else {
        return false;
    }
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) return false;
        while (isdigit((unsigned char)*s)) s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return false;
        while (isdigit((unsigned char)*s)) s++;
    }
    c->p = s;
    return true;
}

static bool json_literal(json_cursor *c, const char *word) {
    size_t n = strlen(word);
    if (strncmp(c->p, word, n) != 0) return false;
    c->p += n;
    return true;
}

static bool json_container(json_cursor *c, char open, char close) {
    if (*c->p != open || ++c->depth > 64) return false;
    c->p++;
    json_ws(c);
    if (*c->p == close) {
        c->p++;
        c->depth--;
        return true;
    }
    for (;;) {
        json_ws(c);
        if (open == '{') {
            if (!json_string(c)) return false;
            json_ws(c);
            if (*c->p != ':') return false;
            c->p++;
            json_ws(c);
        }
        if (!json_value(c)) return false;
        json_ws(c);
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p != close) return false;
        c->p++;
        c->depth--;
        return true;
    }
}

static bool json_value(json_cursor *c) {
    switch (*c->p) {
    case '{': return json_container(c, '{', '}');
    case '[': return json_container(c, '[', ']');
    case '"': return json_string(c);
    case 't': return json_literal(c, "true");
    case 'f': return json_literal(c, "false");
    case 'n': return json_literal(c, "null");
    default: return json_number(c);
    }
}

/* True when text is exactly one JSON object (whitespace around allowed). */
static bool json_is_object(const char *text) {
    json_cursor c = {text, 0};
    json_ws(&c);
    if (*c.p != '{') return false;
    if (!json_value(&c)) return false;
    json_ws(&c);
    return *c.p == '\0';
}

/* Counts the occurrences of "key": and checks each value is a number > 0
 * (null, strings and non-positive numbers fail). Returns the count, or -1. */
static int count_positive(const char *text, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    int n = 0;
    for (const char *s = strstr(text, pat); s; s = strstr(s + 1, pat)) {
        const char *v = s + strlen(pat);
        while (*v == ' ') v++;
        char *end = NULL;
        double d = strtod(v, &end);
        if (end == v || !(d > 0.0)) {
            print_error("key %s: value is not a positive number: %.40s\n", key, v);
            return -1;
        }
        n++;
    }
    return n;
}

/* The number after "key": (the first one), or NAN. */
static double json_get(const char *text, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *s = strstr(text, pat);
    if (!s) return NAN;
    char *end = NULL;
    double d = strtod(s + strlen(pat), &end);
    return end == s + strlen(pat) ? NAN : d;
}

/* Runs `orion ARGS`, which must exit 0 with one JSON object on stdout (the
 * caller frees it). */
static char *run_json(const char *args) {
    int code = -1;
    char *out = run_orion(args, &code);
    assert_non_null(out);
    if (code != 0) fprintf(stderr, "orion %s exited %d; stdout:\n%s\n", args, code, out);
    assert_int_equal(code, 0);
    assert_true(json_is_object(out));
    return out;
}

/* Each of n command lines must be a usage error: exit 2, nothing on stdout. */
static void expect_usage_errors(const char *const *bad, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int code = -1;
        char *out = run_orion(bad[i], &code);
        assert_non_null(out);
        if (code != 2) fprintf(stderr, "%s: exit %d\n", bad[i], code);
        assert_int_equal(code, 2);
        assert_string_equal(out, "");
        free(out);
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_quick_json(void **state) {
    (void)state;
    if (!getenv("ORION_BIN")) skip();
    char *out = run_json("bench kernels --quick --json --threads 1");

    assert_int_equal(count_positive(out, "read_bandwidth_gbs"), 1);
    assert_int_equal(count_positive(out, "fma_peak_gflops"), 1);
    assert_int_equal(count_positive(out, "peak_heap_bytes"), 1);
    /* 6 types x 2 shapes of matrix-vector products, 6 types x 2 batches of GEMM */
    assert_int_equal(count_positive(out, "cold_gbs"), 12);
    assert_int_equal(count_positive(out, "hot_gbs"), 12);
    assert_int_equal(count_positive(out, "gflops"), 12);
    assert_non_null(strstr(out, "\"ok\": true"));
    assert_non_null(strstr(out, "\"kernels\": \""));
    assert_non_null(strstr(out, "\"threads\": 1,"));
    free(out);
}

static void test_bad_flag(void **state) {
    (void)state;
    if (!getenv("ORION_BIN")) skip();
    /* usage goes to stderr */
    const char *bad[] = {"bench kernels --bogus 2>/dev/null", "bench kernels --threads nope 2>/dev/null"};
    expect_usage_errors(bad, sizeof bad / sizeof bad[0]);
}

static void test_vision_json(void **state) {
    (void)state;
    if (!getenv("ORION_BIN")) skip();
    char dir[] = "/tmp/orion_bench_vision_XXXXXX", args[512];
    assert_non_null(mkdtemp(dir));
    int code = -1;
    snprintf(args, sizeof args, "synth --arch clip --shape test-tiny --type q8_0 --threads 1 '%s/tiny.gguf'", dir);
    char *out = run_orion(args, &code);
    assert_non_null(out);
    assert_int_equal(code, 0);
    free(out);
    snprintf(args, sizeof args, "bench vision '%s/tiny.gguf' --json --threads 1 --reps 2", dir);
    out = run_json(args);
    static const char *const positive[] = {"preprocess_s", "preprocess_best_s", "encode_s", "encode_best_s",
                                           "gflop_per_image", "gflops", "fma_peak_gflops", "peak_ratio",
                                           "file_bytes", "weight_bytes", "scratch_bytes", "peak_rss_added_bytes"};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        if (count_positive(out, positive[i]) != 1) fail_msg("%s: not one positive number", positive[i]);
    assert_true(json_get(out, "n_patches") == 16);
    assert_true(json_get(out, "image_size") == 32);
    assert_true(json_get(out, "n_layer") == 3);
    assert_true(json_get(out, "n_layer_used") == 2);
    assert_true(json_get(out, "reps") == 2);
    assert_true(json_get(out, "threads") == 1);
    assert_non_null(strstr(out, "\"type\": \"q8_0\""));
    const double enc = json_get(out, "encode_s"), gflop = json_get(out, "gflop_per_image");
    const double gflops = json_get(out, "gflops"), peak = json_get(out, "fma_peak_gflops");
    /* every number is printed with 9 significant digits */
    assert_true(fabs(gflops - gflop / enc) <= 1e-6 * gflops);
    assert_true(fabs(json_get(out, "peak_ratio") - gflops / peak) <= 1e-6 * json_get(out, "peak_ratio"));
    assert_true(json_get(out, "encode_best_s") <= enc);
    assert_true(json_get(out, "preprocess_best_s") <= json_get(out, "preprocess_s"));
    assert_true(json_get(out, "weight_bytes") <= json_get(out, "file_bytes"));
    /* the tiny shape's FLOPs, counted by hand: patches 2*16*64*192, 2 layers of
     * 8*17*64*64 + 4*17*64*128 + 4*17*17*64, projector 2*16*64*64 * 2 */
    const double want = 2.0 * 16 * 64 * 192 + 2 * (8.0 * 17 * 64 * 64 + 4.0 * 17 * 64 * 128 + 4.0 * 17 * 17 * 64) +
                        4.0 * 16 * 64 * 64;
    assert_true(fabs(gflop - want * 1e-9) < 1e-4);
    const char *times = strstr(out, "\"encode_times_s\": [");
    assert_non_null(times);
    int commas = 0;
    for (const char *c = times; *c && *c != ']'; c++) commas += *c == ',';
    assert_int_equal(commas, 1); /* two reps */
    free(out);
    /* a file that is not an mmproj: exit 1 */
    snprintf(args, sizeof args, "bench vision '%s/missing.gguf' --json 2>/dev/null", dir);
    out = run_orion(args, &code);
    assert_non_null(out);
    assert_int_equal(code, 1);
    free(out);
    out = run_orion("bench vision 2>/dev/null", &code);
    assert_non_null(out);
    assert_int_equal(code, 2);
    free(out);
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    assert_int_equal(system(args), 0);
}

static void test_json_validator(void **state) {
    (void)state;
    assert_true(json_is_object("{\"a\": [1, -2.5e3, true, null, \"x\\\"y\"], \"b\": {}}"));
    assert_false(json_is_object("{\"a\": nan}"));
    assert_false(json_is_object("{\"a\": 1,}"));
    assert_false(json_is_object("{\"a\": 1} trailing"));
    assert_false(json_is_object("[1]"));
}

/* `bench matvec` on the tiny shape: valid JSON whose ratios are positive and
 * ordered (p25 <= median <= p75 <= best) and whose rates are positive; bad
 * options and an unknown shape or type are usage errors. */
static void test_matvec_json(void **state) {
    (void)state;
    if (!getenv("ORION_BIN")) skip();
    char *out = run_json("bench matvec --shape test-tiny --pairs 5 --threads 2 --json");
    const double p25 = json_get(out, "ratio_p25"), med = json_get(out, "ratio_median");
    const double p75 = json_get(out, "ratio_p75"), best = json_get(out, "ratio_best");
    assert_true(p25 > 0 && p25 <= med && med <= p75 && p75 <= best);
    assert_true(json_get(out, "matvec_gbs_median") > 0 && json_get(out, "read_gbs_median") > 0);
    assert_true(json_get(out, "pairs") == 5 && json_get(out, "threads") == 2 && json_get(out, "layers") == 2);
    assert_non_null(strstr(out, "\"type\": \"q4_0\""));
    free(out);

    out = run_json("bench matvec --shape test-tiny --type q8_0 --pairs 2 --json");
    assert_non_null(strstr(out, "\"type\": \"q8_0\""));
    free(out);

    const char *bad[] = {"bench matvec --bogus 2>/dev/null", "bench matvec --shape nope 2>/dev/null",
                         "bench matvec --type q5_9 2>/dev/null", "bench matvec --pairs 0 2>/dev/null",
                         "bench matvec --pairs 2>/dev/null"};
    expect_usage_errors(bad, sizeof bad / sizeof bad[0]);
}

/* `bench attention` on the tiny shape: valid JSON, positive times, the KV
 * rate and the share of the plain read consistent with the times and the
 * cache size (2 layers x positions x KV heads x head dim, K and V, f16). */
static void test_attention_json(void **state) {
    (void)state;
    if (!getenv("ORION_BIN")) skip();
    char *out = run_json("bench attention --shape test-tiny --positions 100 --pairs 3 --json");
    const double simd = json_get(out, "simd_s"), ref = json_get(out, "ref_s"), rd = json_get(out, "read_s");
    const double bytes = json_get(out, "kv_bytes");
    assert_true(simd > 0 && ref > 0 && rd > 0);
    assert_true(json_get(out, "positions") == 100 && json_get(out, "pairs") == 3);
    assert_true(bytes > 0 && fmod(bytes, 2.0 * 2 * 100) == 0); /* K and V, f16, 2 layers, 100 positions */
    assert_true(fabs(json_get(out, "simd_gbs") - bytes / simd / 1e9) <= 1e-3 * (bytes / simd / 1e9) + 1e-3);
    assert_true(fabs(json_get(out, "speedup_vs_ref") - ref / simd) <= 1e-2 * (ref / simd));
    const double p25 = json_get(out, "read_share_p25"), p75 = json_get(out, "read_share_p75");
    assert_true(p25 > 0 && p25 <= p75);
    free(out);

    const char *bad[] = {"bench attention --bogus 2>/dev/null", "bench attention --shape nope 2>/dev/null",
                         "bench attention --positions 0 2>/dev/null", "bench attention --pairs 2>/dev/null"};
    expect_usage_errors(bad, sizeof bad / sizeof bad[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matvec_json),
        cmocka_unit_test(test_attention_json),
        cmocka_unit_test(test_json_validator),
        cmocka_unit_test(test_bad_flag),
        cmocka_unit_test(test_quick_json),
        cmocka_unit_test(test_vision_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
