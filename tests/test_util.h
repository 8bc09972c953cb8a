/*
 * test_util.h — helpers shared by the test executables: a seeded generator
 * (splitmix64 + Box-Muller, so data is the same on every machine), the
 * awkward lengths every kernel is checked at, and cmocka glue.
 */
#ifndef ORION_TEST_UTIL_H
#define ORION_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct test_rng {
    uint64_t state;
} test_rng;

static inline uint64_t test_rng_u64(test_rng *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static inline double test_rng_uniform(test_rng *r) {
    return (double)(test_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* standard normal */
static inline double test_rng_normal(test_rng *r) {
    double u1 = test_rng_uniform(r), u2 = test_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Student-t with nu degrees of freedom (heavy tails for nu small). */
static inline double test_rng_student_t(test_rng *r, int nu) {
    double chi2 = 0.0;
    for (int i = 0; i < nu; i++) {
        double g = test_rng_normal(r);
        chi2 += g * g;
    }
    return test_rng_normal(r) / sqrt(chi2 / nu);
}

static inline void test_fill_normal(test_rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(test_rng_normal(r) * scale);
}

/* The awkward lengths kernels are tested at (in elements for float kernels,
 * in blocks for quantized ones). */
static const int64_t TEST_AWKWARD_LENGTHS[] = {1,  2,  3,  5,   7,   8,   15,  16,  17,  31,  32,  33,
                                               63, 64, 65, 127, 128, 129, 255, 257, 511, 513, 1023};
#define TEST_N_AWKWARD ((int)(sizeof TEST_AWKWARD_LENGTHS / sizeof TEST_AWKWARD_LENGTHS[0]))

/* Path to ../shared (ORION_SHARED, set by ctest), or NULL. */
static inline const char *test_shared_dir(void) {
    return getenv("ORION_SHARED");
}

/* The tests/ directory of the source tree. */
static inline void test_tests_dir(char *buf, size_t n) {
#ifdef ORION_TEST_DIR
    snprintf(buf, n, "%s", ORION_TEST_DIR);
#else
    snprintf(buf, n, "tests");
#endif
}

/* Runs tests/ref/SCRIPT ARGS (ARGS already shell-quoted) under the first
 * python that has the modules the script needs (the scripts exit 77 when
 * they are missing): $ORION_PYTHON, Debian's /usr/bin/python3 (where the
 * python3-* packages install), then python3 on PATH. `needs` names the
 * modules for the message when none has them. */
static inline bool test_run_ref_script(const char *script, const char *args, const char *needs) {
    char dir[1024];
    test_tests_dir(dir, sizeof dir);
    const char *cands[3] = {getenv("ORION_PYTHON"), "/usr/bin/python3", "python3"};
    for (int i = 0; i < 3; i++) {
        if (!cands[i] || !cands[i][0]) continue;
        if (cands[i][0] == '/' && access(cands[i], X_OK) != 0) continue;
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "'%s' '%s/ref/%s' %s", cands[i], dir, script, args);
        int rc = system(cmd);
        if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0) return true;
        if (rc != -1 && WIFEXITED(rc) && (WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127)) continue;
        fprintf(stderr, "`%s` failed (status %d)\n", cmd, rc);
        return false;
    }
    fprintf(stderr, "no python3 with %s to run tests/ref/%s: run scripts/setup.sh\n", needs, script);
    return false;
}

/* ---- files for fake trees and scratch directories ---- */

/* Reads a whole file into a malloc'd buffer with a NUL after its last byte
 * (so a text file is a string); *n (may be NULL) gets its size (0 on
 * failure). NULL when it cannot be opened or read. */
static inline void *test_read_file(const char *path, size_t *n) {
    if (n) *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)sz + 1)) != NULL && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[sz] = '\0';
    if (n) *n = (size_t)sz;
    return buf;
}

/* mkdir -p */
static inline void test_mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

/* Writes BASE/REL (creating its directories) through a temporary file and
 * rename, so a reader polling it never sees half a file. */
static inline void test_write_file(const char *base, const char *rel, const char *text) {
    char path[1024], dir[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    test_mkdirs(dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

/* Removes a directory of plain files (no subdirectories). */
static inline void test_remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

#endif /* ORION_TEST_UTIL_H */
