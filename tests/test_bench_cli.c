/*
 * test_bench_cli.c — smoke test of `orion bench kernels`: runs the built CLI
 * (its path comes from ORION_BIN, set by ctest) through popen and checks that
 *   - `bench kernels --quick --json --threads 1` exits 0 and prints one valid
 *     JSON object (checked by a small recursive-descent validator) whose
 *     read bandwidth, FMA peak, peak heap and every matrix-vector and GEMM
 *     figure are positive numbers;
 *   - an unknown flag exits 2 with nothing on stdout.
 * It never checks a performance target: timing belongs to the benchmark, not
 * to unit tests, which must pass on a loaded machine.
 */
#include "test_util.h"

#include <ctype.h>
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

/* ---- tests ------------------------------------------------------------------------ */

static void test_quick_json(void **state) {
    (void)state;
    if (!getenv("ORION_BIN")) skip();
    int code = -1;
    char *out = run_orion("bench kernels --quick --json --threads 1", &code);
    assert_non_null(out);
    if (code != 0) fprintf(stderr, "orion exited %d; stdout:\n%s\n", code, out);
    assert_int_equal(code, 0);
    assert_true(json_is_object(out));

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
    int code = -1;
    char *out = run_orion("bench kernels --bogus 2>/dev/null", &code);
    assert_non_null(out);
    assert_int_equal(code, 2);
    assert_string_equal(out, ""); /* usage goes to stderr */
    free(out);

    out = run_orion("bench kernels --threads nope 2>/dev/null", &code);
    assert_non_null(out);
    assert_int_equal(code, 2);
    free(out);
}

static void test_json_validator(void **state) {
    (void)state;
    assert_true(json_is_object("{\"a\": [1, -2.5e3, true, null, \"x\\\"y\"], \"b\": {}}"));
    assert_false(json_is_object("{\"a\": nan}"));
    assert_false(json_is_object("{\"a\": 1,}"));
    assert_false(json_is_object("{\"a\": 1} trailing"));
    assert_false(json_is_object("[1]"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_validator),
        cmocka_unit_test(test_bad_flag),
        cmocka_unit_test(test_quick_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
