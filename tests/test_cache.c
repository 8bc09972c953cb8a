/*
 * test_cache.c — the embedding cache (src/service/embed_cache.c): exact keys,
 * f16 storage, bounds for every policy, W-TinyLFU's scan resistance, shrink
 * (by policy, and growing back: the server's reaction to memory pressure),
 * concurrent use, snapshots (and damaged ones), out-of-memory paths.
 */
#include "test_util.h"

#include "core/core.h"
#include "orion.h"

#include <pthread.h>
#include <string.h>

static const orion_cache_policy ALL_POLICIES[] = {ORION_CACHE_WTINYLFU, ORION_CACHE_LRU, ORION_CACHE_SCORE};

static orion_cache *mk(orion_cache_policy pol, size_t max_bytes, size_t max_entries) {
    orion_cache_params p = orion_cache_default_params();
    p.policy = pol;
    p.max_bytes = max_bytes;
    p.max_entries = max_entries;
    orion_cache *c = NULL;
    assert_int_equal(orion_cache_init(&p, &c), ORION_OK);
    return c;
}

static void vec_for(int key, float *v, int dim) {
    test_rng r = {(uint64_t)key * 7919u + 1};
    for (int i = 0; i < dim; i++) v[i] = (float)test_rng_normal(&r);
}

static void put_key(orion_cache *c, int key, int dim) {
    char text[32];
    float v[64];
    snprintf(text, sizeof text, "text %d", key);
    vec_for(key, v, dim);
    assert_int_equal(orion_cache_put(c, "m", text, strlen(text), v, dim), ORION_OK);
}

static bool get_key(orion_cache *c, int key, int dim) {
    char text[32];
    float v[64];
    snprintf(text, sizeof text, "text %d", key);
    return orion_cache_get(c, "m", text, strlen(text), v, dim);
}

static void test_roundtrip_f16(void **state) {
    (void)state;
    orion_cache *c = mk(ORION_CACHE_WTINYLFU, 0, 0);
    enum { DIM = 37 };
    float v[DIM], got[DIM];
    test_rng r = {1};
    test_fill_normal(&r, v, DIM, 0.3f);
    v[0] = 0.0f;
    v[1] = 1e-6f;    /* subnormal in f16 */
    v[2] = 70000.0f; /* overflows to inf in f16 */
    assert_int_equal(orion_cache_put(c, "minilm|mean|norm", "hello", 5, v, DIM), ORION_OK);
    assert_true(orion_cache_get(c, "minilm|mean|norm", "hello", 5, got, DIM));
    for (int i = 0; i < DIM; i++) assert_true(got[i] == orion_fp16_to_fp32(orion_fp32_to_fp16(v[i])));
    /* every part of the key counts: namespace, exact bytes, length, dim */
    assert_false(orion_cache_get(c, "minilm|cls|norm", "hello", 5, got, DIM));
    assert_false(orion_cache_get(c, "minilm|mean|norm", "hello ", 6, got, DIM));
    assert_false(orion_cache_get(c, "minilm|mean|norm", "Hello", 5, got, DIM));
    assert_false(orion_cache_get(c, "minilm|mean|norm", "hell", 4, got, DIM));
    assert_false(orion_cache_get(c, "minilm|mean|norm", "hello", 5, got, DIM - 1));
    /* the namespace/text boundary is part of the key */
    assert_int_equal(orion_cache_put(c, "ab", "c", 1, v, DIM), ORION_OK);
    assert_false(orion_cache_get(c, "a", "bc", 2, got, DIM));
    /* empty text and embedded NULs */
    assert_int_equal(orion_cache_put(c, "m", "", 0, v, DIM), ORION_OK);
    assert_true(orion_cache_get(c, "m", "", 0, got, DIM));
    assert_int_equal(orion_cache_put(c, "m", "a\0b", 3, v, DIM), ORION_OK);
    assert_false(orion_cache_get(c, "m", "a\0c", 3, got, DIM));
    assert_true(orion_cache_get(c, "m", "a\0b", 3, got, DIM));
    /* replacing an entry */
    float w[DIM];
    for (int i = 0; i < DIM; i++) w[i] = 0.5f;
    assert_int_equal(orion_cache_put(c, "m", "", 0, w, DIM), ORION_OK);
    assert_true(orion_cache_get(c, "m", "", 0, got, DIM));
    assert_true(got[3] == 0.5f);
    orion_cache_stats s;
    orion_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 4);
    assert_true(s.bytes_f32 == s.bytes + 4 * 2 * DIM);
    assert_int_equal(s.hits, 4);
    assert_int_equal(s.misses, 7);
    /* bad arguments */
    assert_int_equal(orion_cache_put(c, "m", NULL, 3, v, DIM), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_cache_put(c, "m", "x", 1, v, 0), ORION_ERR_INVALID_ARG);
    char longns[300];
    memset(longns, 'n', sizeof longns - 1);
    longns[sizeof longns - 1] = 0;
    assert_int_equal(orion_cache_put(c, longns, "x", 1, v, DIM), ORION_ERR_RANGE);
    orion_cache_clear(c, "m");
    orion_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 2);
    orion_cache_clear(c, NULL);
    orion_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    orion_cache_free(c);
    orion_cache_free(NULL);
}

/* Many keys that share prefixes and lengths: each returns its own vector. */
static void test_no_false_hits(void **state) {
    (void)state;
    orion_cache *c = mk(ORION_CACHE_LRU, 0, 0);
    enum { N = 20000, DIM = 4 };
    for (int k = 0; k < N; k++) put_key(c, k, DIM);
    for (int k = 0; k < N; k++) {
        char text[32];
        float got[DIM], want[DIM];
        snprintf(text, sizeof text, "text %d", k);
        assert_true(orion_cache_get(c, "m", text, strlen(text), got, DIM));
        vec_for(k, want, DIM);
        for (int i = 0; i < DIM; i++) assert_true(got[i] == orion_fp16_to_fp32(orion_fp32_to_fp16(want[i])));
    }
    assert_false(get_key(c, N, DIM));
    orion_cache_free(c);
}

static void test_bounds_every_policy(void **state) {
    (void)state;
    for (size_t p = 0; p < ORION_ARRAY_LEN(ALL_POLICIES); p++) {
        /* entry bound */
        orion_cache *c = mk(ALL_POLICIES[p], 0, 100);
        for (int k = 0; k < 1000; k++) {
            put_key(c, k % 300, 16);
            get_key(c, (k * 7) % 300, 16);
        }
        orion_cache_stats s;
        orion_cache_get_stats(c, &s);
        assert_true(s.entries <= 100);
        assert_true(s.entries >= 90);
        assert_true(s.evictions + s.rejections > 0);
        /* shrink to a quarter, then to a byte bound */
        orion_cache_shrink(c, 0, 25);
        orion_cache_get_stats(c, &s);
        assert_true(s.entries <= 25);
        orion_cache_shrink(c, 1000, 0);
        orion_cache_get_stats(c, &s);
        assert_true(s.bytes <= 1000);
        assert_int_equal(s.max_entries, 25);
        orion_cache_free(c);
        /* byte bound */
        c = mk(ALL_POLICIES[p], 20000, 0);
        for (int k = 0; k < 2000; k++) put_key(c, k, 64);
        orion_cache_get_stats(c, &s);
        assert_true(s.bytes <= 20000);
        assert_true(s.bytes > 15000);
        orion_cache_free(c);
    }
}

/* What the server does under memory pressure: shrink (evicting by the
 * policy: LRU keeps the most recent, W-TinyLFU the most used), then grow
 * back and fill again. */
static void test_shrink_by_policy_and_grow(void **state) {
    (void)state;
    for (size_t p = 0; p < 2; p++) {
        orion_cache_policy pol = p == 0 ? ORION_CACHE_LRU : ORION_CACHE_WTINYLFU;
        orion_cache *c = mk(pol, 0, 200);
        for (int k = 0; k < 200; k++) put_key(c, k, 16);
        /* keys 0..19 are the hot ones: read often, and last */
        for (int round = 0; round < 8; round++)
            for (int k = 0; k < 20; k++) assert_true(get_key(c, k, 16));
        orion_cache_stats s0, s;
        orion_cache_get_stats(c, &s0);
        orion_cache_shrink(c, 0, 20);
        orion_cache_get_stats(c, &s);
        assert_true(s.entries <= 20);
        assert_int_equal(s.max_entries, 20);
        assert_true(s.evictions - s0.evictions >= 180);
        int kept = 0;
        for (int k = 0; k < 20; k++) kept += get_key(c, k, 16);
        assert_true(kept >= 18); /* the hot keys survive the shrink */
        /* grow back: room for 200 again */
        orion_cache_shrink(c, 0, 200);
        for (int round = 0; round < 4; round++)
            for (int k = 1000; k < 1180; k++) {
                put_key(c, k, 16);
                get_key(c, k, 16);
            }
        orion_cache_get_stats(c, &s);
        assert_int_equal(s.max_entries, 200);
        assert_true(s.entries > 150);
        orion_cache_free(c);
    }
}

static void test_lru_order(void **state) {
    (void)state;
    orion_cache *c = mk(ORION_CACHE_LRU, 0, 3);
    put_key(c, 1, 8);
    put_key(c, 2, 8);
    put_key(c, 3, 8);
    assert_true(get_key(c, 1, 8)); /* 2 is now the oldest */
    put_key(c, 4, 8);
    assert_false(get_key(c, 2, 8));
    assert_true(get_key(c, 1, 8));
    assert_true(get_key(c, 3, 8));
    assert_true(get_key(c, 4, 8));
    orion_cache_free(c);
}

/* A hot set that is read often survives a long scan of one-off keys under
 * W-TinyLFU (and the score rule), but not under LRU. */
static void test_scan_resistance(void **state) {
    (void)state;
    double kept[3];
    for (size_t p = 0; p < ORION_ARRAY_LEN(ALL_POLICIES); p++) {
        orion_cache *c = mk(ALL_POLICIES[p], 0, 200);
        for (int round = 0; round < 20; round++) {
            for (int k = 0; k < 100; k++) {
                if (!get_key(c, k, 8)) put_key(c, k, 8);
            }
        }
        for (int k = 1000; k < 11000; k++) {
            if (!get_key(c, k, 8)) put_key(c, k, 8);
        }
        int n = 0;
        for (int k = 0; k < 100; k++) n += get_key(c, k, 8);
        kept[p] = n / 100.0;
        orion_cache_free(c);
    }
    print_message("hot set kept after a scan: wtinylfu %.2f lru %.2f score %.2f\n", kept[0], kept[1], kept[2]);
    assert_true(kept[0] >= 0.95);
    assert_true(kept[1] <= 0.05);
}

typedef struct worker_arg {
    orion_cache *c;
    int          id;
    int          bad;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    test_rng r = {(uint64_t)a->id + 99};
    for (int i = 0; i < 20000; i++) {
        int k = (int)(test_rng_u64(&r) % 500);
        char text[32];
        float got[16], want[16];
        snprintf(text, sizeof text, "text %d", k);
        vec_for(k, want, 16);
        if (orion_cache_get(a->c, "m", text, strlen(text), got, 16)) {
            for (int j = 0; j < 16; j++) {
                if (got[j] != orion_fp16_to_fp32(orion_fp32_to_fp16(want[j]))) a->bad++;
            }
        } else {
            orion_cache_put(a->c, "m", text, strlen(text), want, 16);
        }
        if (i % 5000 == 4999 && a->id == 0) orion_cache_shrink(a->c, 0, 300 - i / 100);
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    for (size_t p = 0; p < ORION_ARRAY_LEN(ALL_POLICIES); p++) {
        orion_cache *c = mk(ALL_POLICIES[p], 0, 300);
        pthread_t th[4];
        worker_arg args[4];
        for (int t = 0; t < 4; t++) {
            args[t] = (worker_arg){c, t, 0};
            assert_int_equal(pthread_create(&th[t], NULL, worker, &args[t]), 0);
        }
        for (int t = 0; t < 4; t++) {
            pthread_join(th[t], NULL);
            assert_int_equal(args[t].bad, 0);
        }
        orion_cache_stats s;
        orion_cache_get_stats(c, &s);
        assert_int_equal(s.hits + s.misses, 80000);
        assert_true(s.entries <= 300);
        orion_cache_free(c);
    }
}

static void snap_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "/tmp/orion_test_cache_%d_%s", (int)getpid(), name);
}

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void test_snapshot(void **state) {
    (void)state;
    char path[256], bad[256];
    snap_path(path, sizeof path, "ok");
    snap_path(bad, sizeof bad, "bad");
    orion_cache *c = mk(ORION_CACHE_WTINYLFU, 0, 0);
    for (int k = 0; k < 500; k++) put_key(c, k, 24);
    assert_int_equal(orion_cache_save(c, path), ORION_OK);
    orion_cache_free(c);

    c = mk(ORION_CACHE_WTINYLFU, 0, 0);
    size_t n = 0;
    assert_int_equal(orion_cache_load(c, path, &n), ORION_OK);
    assert_int_equal(n, 500);
    for (int k = 0; k < 500; k++) assert_true(get_key(c, k, 24));
    orion_cache_free(c);

    /* missing file */
    c = mk(ORION_CACHE_LRU, 0, 0);
    assert_int_equal(orion_cache_load(c, "/nonexistent/orion.cache", &n), ORION_ERR_NOT_FOUND);

    /* damaged files: every truncation length class and bit flips all over */
    size_t size;
    uint8_t *good = read_all(path, &size);
    size_t cuts[] = {0, 7, 8, 23, 24, 25, size / 2, size - 1};
    for (size_t i = 0; i < ORION_ARRAY_LEN(cuts); i++) {
        write_bytes(bad, good, cuts[i]);
        assert_int_equal(orion_cache_load(c, bad, &n), ORION_ERR_FORMAT);
        assert_int_equal(n, 0);
    }
    uint8_t *flip = malloc(size);
    test_rng r = {5};
    for (int t = 0; t < 200; t++) {
        memcpy(flip, good, size);
        size_t at = (size_t)(test_rng_u64(&r) % size);
        flip[at] ^= (uint8_t)(1u << (test_rng_u64(&r) % 8));
        write_bytes(bad, flip, size);
        assert_int_equal(orion_cache_load(c, bad, &n), ORION_ERR_FORMAT);
    }
    orion_cache_stats s;
    orion_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 0); /* nothing from a damaged file got in */
    /* a snapshot into a small cache keeps within bounds */
    orion_cache_free(c);
    c = mk(ORION_CACHE_LRU, 0, 50);
    assert_int_equal(orion_cache_load(c, path, &n), ORION_OK);
    orion_cache_get_stats(c, &s);
    assert_int_equal(s.entries, 50);
    assert_true(get_key(c, 499, 24)); /* the most recent survive */
    orion_cache_free(c);
    free(flip);
    free(good);
    unlink(path);
    unlink(bad);
}

static void test_out_of_memory(void **state) {
    (void)state;
    /* init: fail allocation 0, 1, 2, ... until it succeeds */
    for (int64_t n = 0;; n++) {
        orion__alloc_fail_after(n);
        orion_cache *c = NULL;
        orion_cache_params p = orion_cache_default_params();
        p.max_entries = 1000;
        orion_status st = orion_cache_init(&p, &c);
        orion__alloc_fail_after(-1);
        if (st == ORION_OK) {
            orion_cache_free(c);
            break;
        }
        assert_int_equal(st, ORION_ERR_NOMEM);
        assert_null(c);
        assert_true(n < 20);
    }
    /* puts under failing allocations leave a consistent cache */
    orion_cache *c = mk(ORION_CACHE_WTINYLFU, 0, 2000);
    for (int k = 0; k < 3000; k++) {
        if (k % 3 == 0) orion__alloc_fail_after(0);
        char text[32];
        float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        snprintf(text, sizeof text, "t%d", k);
        orion_status st = orion_cache_put(c, "m", text, strlen(text), v, 8);
        orion__alloc_fail_after(-1);
        assert_true(st == ORION_OK || st == ORION_ERR_NOMEM);
    }
    orion_cache_stats s;
    orion_cache_get_stats(c, &s);
    assert_true(s.entries <= 2000);
    orion_cache_free(c);
}

static void test_policy_names(void **state) {
    (void)state;
    for (size_t p = 0; p < ORION_ARRAY_LEN(ALL_POLICIES); p++) {
        orion_cache_policy q;
        assert_int_equal(orion_cache_policy_from_name(orion_cache_policy_name(ALL_POLICIES[p]), &q), ORION_OK);
        assert_int_equal(q, ALL_POLICIES[p]);
    }
    orion_cache_policy q;
    assert_int_equal(orion_cache_policy_from_name("lfu", &q), ORION_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_f16),  cmocka_unit_test(test_no_false_hits),
        cmocka_unit_test(test_bounds_every_policy), cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_scan_resistance), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_snapshot),       cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_policy_names),  cmocka_unit_test(test_shrink_by_policy_and_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
