/*
 * test_manager_lifecycle.c — the model manager on real GGUF files
 * (stories260K and re-typed copies made with orion_convert in a temporary
 * directory) with a fake /proc and /sys tree and an injected clock: memory
 * need from the GGUF, level selection by tier with fallback and the error
 * that says what was needed and free, LRU eviction at the tier's maximum,
 * pins, idle timers, Ollama keep-alive, explicit unload, the reaction to
 * pressure, progress, cancellation in the middle of a load leaving nothing
 * mapped or allocated, the registry file and `orion models`, an embed model,
 * allocation failures, events, and concurrent acquires with the monitor
 * thread running the timers.
 */
#include "test_util.h"

#include "orion.h"
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define GIB (1024ull * 1024 * 1024)
#define MIB (1024ull * 1024)

static char g_dir[256];
static char g_files[ORION_QLEVEL_COUNT][512];  /* stories260K at q4, q8, f16, f32 */

/* ---- the fake tree ---- */

static void set_psi(double some, double full) {
    char t[256];
    snprintf(t, sizeof t, "some avg10=%.2f avg60=0 avg300=0 total=0\nfull avg10=%.2f avg60=0 avg300=0 total=0\n", some,
             full);
    char proc[300];
    snprintf(proc, sizeof proc, "%s/proc", g_dir);
    test_write_file(proc, "pressure/memory", t);
}

/* meminfo of a machine with `total` bytes, most of them free */
static void set_machine(uint64_t total) {
    char t[256], proc[300];
    snprintf(t, sizeof t, "MemTotal: %llu kB\nMemAvailable: %llu kB\n", (unsigned long long)(total / 1024),
             (unsigned long long)(total / 1024 * 9 / 10));
    snprintf(proc, sizeof proc, "%s/proc", g_dir);
    test_write_file(proc, "meminfo", t);
    set_psi(0, 0);
}

/* ---- the clock ---- */

static _Atomic int64_t g_now_us;
static double fake_clock(void *user) {
    (void)user;
    return (double)atomic_load(&g_now_us) * 1e-6;
}
static void clock_set(double s) { atomic_store(&g_now_us, (int64_t)(s * 1e6)); }

/* ---- events ---- */

typedef struct rec_event {
    orion_manager_event_type type;
    char                     model[64];
    orion_unload_reason      reason;
    uint64_t                 bytes, total;
    double                   t;
    orion_pressure           pressure;
} rec_event;

typedef struct recorder {
    pthread_mutex_t lock;
    rec_event       ev[512];
    int             n;
} recorder;

static recorder g_rec;

static void on_event(const orion_manager_event *e, void *user) {
    recorder *r = user;
    pthread_mutex_lock(&r->lock);
    if (r->n < 512) {
        rec_event *x = &r->ev[r->n++];
        x->type = e->type;
        snprintf(x->model, sizeof x->model, "%s", e->model ? e->model : "");
        x->reason = e->reason;
        x->bytes = e->bytes;
        x->total = e->bytes_total;
        x->t = e->timestamp;
        x->pressure = e->pressure;
    }
    pthread_mutex_unlock(&r->lock);
}

static void rec_reset(void) {
    pthread_mutex_lock(&g_rec.lock);
    g_rec.n = 0;
    pthread_mutex_unlock(&g_rec.lock);
}

/* The events of a type, as "model:reason" strings joined by spaces. */
static void rec_list(orion_manager_event_type type, char *buf, size_t size) {
    buf[0] = '\0';
    pthread_mutex_lock(&g_rec.lock);
    for (int i = 0; i < g_rec.n; i++) {
        if (g_rec.ev[i].type != type) continue;
        size_t l = strlen(buf);
        if (type == ORION_EVENT_UNLOADED)
            snprintf(buf + l, size - l, "%s%s:%s", l ? " " : "", g_rec.ev[i].model,
                     orion_unload_reason_name(g_rec.ev[i].reason));
        else
            snprintf(buf + l, size - l, "%s%s", l ? " " : "", g_rec.ev[i].model);
    }
    pthread_mutex_unlock(&g_rec.lock);
}

/* ---- setup ---- */

static int group_setup(void **state) {
    (void)state;
    pthread_mutex_init(&g_rec.lock, NULL);
    snprintf(g_dir, sizeof g_dir, "/tmp/orion_mgrl_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    const char *shared = test_shared_dir();
    char src[512];
    snprintf(src, sizeof src, "%s/models/stories260K/stories260K.gguf", shared ? shared : "/work/shared");
    snprintf(g_files[ORION_QLEVEL_F32], sizeof g_files[0], "%s", src);
    static const struct { orion_qlevel l; orion_type t; const char *name; } conv[] = {
        {ORION_QLEVEL_Q4, ORION_TYPE_Q4_0, "s-q4_0.gguf"},
        {ORION_QLEVEL_Q8, ORION_TYPE_Q8_0, "s-q8_0.gguf"},
        {ORION_QLEVEL_F16, ORION_TYPE_F16, "s-f16.gguf"},
    };
    for (size_t i = 0; i < 3; i++) {
        snprintf(g_files[conv[i].l], sizeof g_files[0], "%s/%s", g_dir, conv[i].name);
        orion_convert_params cp = orion_convert_default_params();
        cp.type = conv[i].t;
        cp.keep_embd_q8 = false;
        cp.n_threads = 1;
        if (orion_convert(src, g_files[conv[i].l], &cp) != ORION_OK) {
            fprintf(stderr, "convert: %s\n", orion_last_error());
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A manager on the fake tree with `config` (JSON text or NULL), the fake
 * clock at 0, no monitor thread, and models a, b, c (all levels). */
static orion_manager *make_manager(uint64_t machine, const char *config, bool monitor) {
    set_machine(machine);
    clock_set(0);
    char proc[300], sys[300], cfg[300];
    snprintf(proc, sizeof proc, "%s/proc", g_dir);
    snprintf(sys, sizeof sys, "%s/sys", g_dir);
    test_mkdirs(sys);
    orion_manager_params mp = orion_manager_default_params();
    mp.profile.proc_root = proc;
    mp.profile.sys_root = sys;
    if (config) {
        test_write_file(g_dir, "config.json", config);
        snprintf(cfg, sizeof cfg, "%s/config.json", g_dir);
        mp.profile.config_path = cfg;
    }
    mp.clock = fake_clock;
    mp.monitor = monitor;
    mp.poll_ms = 10;
    mp.chunk_bytes = 64 * 1024;
    mp.n_threads = 1;
    orion_manager *mgr = NULL;
    orion_status st = orion_manager_init(&mp, &mgr);
    if (st != ORION_OK) fprintf(stderr, "%s\n", orion_last_error());
    assert_int_equal(st, ORION_OK);
    const char *ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        orion_model_entry e;
        memset(&e, 0, sizeof e);
        e.id = ids[i];
        e.task = ORION_TASK_GENERATE;
        e.arch = "llama";
        e.n_ctx = 256;
        for (int l = 0; l < ORION_QLEVEL_COUNT; l++) e.files[l] = g_files[l];
        assert_int_equal(orion_manager_register(mgr, &e), ORION_OK);
    }
    rec_reset();
    assert_true(orion_manager_subscribe(mgr, on_event, &g_rec) > 0);
    return mgr;
}

static orion_model_lease *acquire(orion_manager *mgr, const char *id, double keep_alive) {
    orion_acquire_params ap = orion_acquire_default_params();
    ap.keep_alive_s = keep_alive;
    orion_model_lease *l = NULL;
    orion_status st = orion_manager_acquire(mgr, id, &ap, &l);
    if (st != ORION_OK) fprintf(stderr, "acquire %s: %s\n", id, orion_last_error());
    assert_int_equal(st, ORION_OK);
    assert_non_null(l);
    return l;
}

static int n_loaded(orion_manager *mgr) { return orion_manager_status(mgr, NULL, 0); }

static bool is_loaded(orion_manager *mgr, const char *id) {
    orion_model_status s[8];
    int n = orion_manager_status(mgr, s, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (strcmp(s[i].id, id) == 0) return true;
    return false;
}

/* ---- tests ---- */

static void test_need(void **state) {
    (void)state;
    orion_model_need nd;
    assert_int_equal(orion_model_need_compute(g_files[ORION_QLEVEL_F32], ORION_TASK_GENERATE, 256, &nd), ORION_OK);
    /* stories260K: 5 layers, 4 KV heads of 8: 2 * 5 * 256 * 4 * 8 * 2 bytes */
    assert_int_equal(nd.kv, 2ull * 5 * 256 * 4 * 8 * 2);
    assert_true(nd.weights > 900000 && nd.weights < 1185376);
    assert_int_equal(nd.total, nd.weights + nd.kv + nd.scratch);
    /* the KV matches what the model allocates, and the scratch estimate covers its arena */
    orion_llm_params lp = orion_llm_default_params();
    lp.n_ctx = 256;
    lp.n_threads = 1;
    orion_llm *llm = NULL;
    assert_int_equal(orion_llm_load(g_files[ORION_QLEVEL_F32], &lp, &llm), ORION_OK);
    orion_llm_info info;
    orion_llm_get_info(llm, &info);
    assert_int_equal(nd.kv, info.kv_bytes);
    assert_int_equal(nd.weights, info.weight_bytes);
    assert_true(nd.scratch >= info.scratch_bytes * 9 / 10 && nd.scratch <= info.scratch_bytes * 3 / 2);
    printf("stories260K f32: weights %llu, kv %llu, scratch estimate %llu (arena %zu)\n",
           (unsigned long long)nd.weights, (unsigned long long)nd.kv, (unsigned long long)nd.scratch,
           info.scratch_bytes);
    orion_llm_free(llm);
    /* smaller levels need less */
    orion_model_need q4;
    assert_int_equal(orion_model_need_compute(g_files[ORION_QLEVEL_Q4], ORION_TASK_GENERATE, 256, &q4), ORION_OK);
    assert_true(q4.weights < nd.weights);
    assert_int_equal(orion_model_need_compute("/nonexistent.gguf", ORION_TASK_GENERATE, 0, &nd), ORION_ERR_NOT_FOUND);
}

static void test_level_by_tier(void **state) {
    (void)state;
    static const struct { uint64_t machine; orion_qlevel want; } cases[] = {
        {1 * GIB, ORION_QLEVEL_Q4}, {3 * GIB, ORION_QLEVEL_Q4}, {6 * GIB, ORION_QLEVEL_Q8}, {16 * GIB, ORION_QLEVEL_F16}};
    for (size_t i = 0; i < 4; i++) {
        orion_manager *mgr = make_manager(cases[i].machine, NULL, false);
        orion_model_lease *l = acquire(mgr, "a", ORION_KEEP_ALIVE_DEFAULT);
        assert_int_equal(orion_lease_level(l), cases[i].want);
        assert_non_null(orion_lease_llm(l));
        assert_null(orion_lease_embedder(l));
        orion_manager_release(mgr, l);
        orion_manager_free(mgr);
    }
    /* the config's level, globally and per model */
    orion_manager *mgr = make_manager(16 * GIB, "{\"level\": \"q8\", \"models\": {\"b\": {\"level\": \"f32\"}}}", false);
    orion_model_lease *a = acquire(mgr, "a", -1), *b = acquire(mgr, "b", -1);
    assert_int_equal(orion_lease_level(a), ORION_QLEVEL_Q8);
    assert_int_equal(orion_lease_level(b), ORION_QLEVEL_F32);
    orion_manager_release(mgr, a);
    orion_manager_release(mgr, b);
    orion_manager_free(mgr);
}

static void test_fallback_and_error(void **state) {
    (void)state;
    orion_model_need q8, f16;
    assert_int_equal(orion_model_need_compute(g_files[ORION_QLEVEL_Q8], ORION_TASK_GENERATE, 256, &q8), ORION_OK);
    assert_int_equal(orion_model_need_compute(g_files[ORION_QLEVEL_F16], ORION_TASK_GENERATE, 256, &f16), ORION_OK);
    assert_true(q8.total < f16.total);
    /* f16 asked, but only q8 fits the budget */
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"budget\": %llu, \"level\": \"f16\"}", (unsigned long long)(q8.total + f16.total) / 2);
    orion_manager *mgr = make_manager(16 * GIB, cfg, false);
    orion_model_lease *l = acquire(mgr, "a", -1);
    assert_int_equal(orion_lease_level(l), ORION_QLEVEL_Q8);
    /* beside the pinned one, nothing else fits: a clear error */
    orion_model_lease *l2 = NULL;
    assert_int_equal(orion_manager_acquire(mgr, "b", NULL, &l2), ORION_ERR_LIMIT);
    assert_null(l2);
    const char *msg = orion_last_error();
    printf("error: %s\n", msg);
    assert_non_null(strstr(msg, "needs"));
    assert_non_null(strstr(msg, "free"));
    assert_non_null(strstr(msg, "'b'"));
    orion_manager_release(mgr, l);
    /* once released, b replaces a (LRU) */
    l2 = acquire(mgr, "b", -1);
    assert_false(is_loaded(mgr, "a"));
    orion_manager_release(mgr, l2);
    assert_int_equal(orion_manager_acquire(mgr, "zzz", NULL, &l2), ORION_ERR_NOT_FOUND);
    orion_manager_free(mgr);
    /* a budget below the smallest level */
    mgr = make_manager(16 * GIB, "{\"budget\": 100000}", false);
    assert_int_equal(orion_manager_acquire(mgr, "a", NULL, &l2), ORION_ERR_LIMIT);
    assert_non_null(strstr(orion_last_error(), "smallest level"));
    assert_int_equal(n_loaded(mgr), 0);
    orion_manager_free(mgr);
}

static void test_lru(void **state) {
    (void)state;
    orion_manager *mgr = make_manager(16 * GIB, "{\"max_models\": 2}", false);
    char list[512];
    clock_set(1);
    orion_manager_release(mgr, acquire(mgr, "a", -1));
    clock_set(2);
    orion_manager_release(mgr, acquire(mgr, "b", -1));
    clock_set(3);
    orion_manager_release(mgr, acquire(mgr, "a", -1)); /* a is now more recent than b */
    assert_int_equal(n_loaded(mgr), 2);
    clock_set(4);
    orion_manager_release(mgr, acquire(mgr, "c", -1)); /* evicts b */
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "b:lru");
    assert_true(is_loaded(mgr, "a") && is_loaded(mgr, "c"));
    clock_set(5);
    orion_model_lease *b = acquire(mgr, "b", -1); /* evicts a */
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "b:lru a:lru");
    /* pinned models are never evicted */
    orion_model_lease *c = acquire(mgr, "c", -1);
    orion_model_lease *a = NULL;
    assert_int_equal(orion_manager_acquire(mgr, "a", NULL, &a), ORION_ERR_LIMIT);
    assert_non_null(strstr(orion_last_error(), "in use"));
    assert_true(is_loaded(mgr, "b") && is_loaded(mgr, "c"));
    /* the loaded events carry the timestamps of the clock */
    rec_list(ORION_EVENT_LOADED, list, sizeof list);
    assert_string_equal(list, "a b c b");
    orion_manager_release(mgr, b);
    orion_manager_release(mgr, c);
    orion_manager_free(mgr);
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_non_null(strstr(list, "b:shutdown"));
    assert_non_null(strstr(list, "c:shutdown"));
}

static void test_idle_and_keep_alive(void **state) {
    (void)state;
    char list[512];
    orion_manager *mgr = make_manager(16 * GIB, "{\"idle_unload\": 60, \"models\": {\"c\": {\"keep_alive\": \"2m\"}}}",
                                      false);
    clock_set(100);
    orion_model_lease *a = acquire(mgr, "a", ORION_KEEP_ALIVE_DEFAULT);
    clock_set(200); /* in use: no timer runs */
    assert_int_equal(orion_manager_tick(mgr), 0);
    orion_manager_release(mgr, a); /* expires at 260 */
    orion_model_status st[4];
    assert_int_equal(orion_manager_status(mgr, st, 4), 1);
    assert_true(st[0].expires == 260.0);
    assert_int_equal(st[0].refs, 0);
    clock_set(259.9);
    assert_int_equal(orion_manager_tick(mgr), 0);
    clock_set(260);
    assert_int_equal(orion_manager_tick(mgr), 1);
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "a:idle");
    /* keep_alive 0: unloaded when released */
    orion_manager_release(mgr, acquire(mgr, "a", 0));
    assert_false(is_loaded(mgr, "a"));
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "a:idle a:keep_alive");
    /* negative: forever */
    orion_manager_release(mgr, acquire(mgr, "a", -1));
    clock_set(1e9);
    assert_int_equal(orion_manager_tick(mgr), 0);
    assert_true(is_loaded(mgr, "a"));
    /* a duration per request, the latest request's wins */
    clock_set(1000);
    orion_manager_release(mgr, acquire(mgr, "b", 5));
    orion_manager_release(mgr, acquire(mgr, "b", 30));
    clock_set(1010);
    assert_int_equal(orion_manager_tick(mgr), 0);
    clock_set(1030);
    assert_int_equal(orion_manager_tick(mgr), 1);
    /* the per-model config: c keeps 2 minutes */
    clock_set(2000);
    orion_manager_release(mgr, acquire(mgr, "c", ORION_KEEP_ALIVE_DEFAULT));
    clock_set(2119);
    assert_int_equal(orion_manager_tick(mgr), 0);
    clock_set(2120);
    assert_int_equal(orion_manager_tick(mgr), 1);
    /* explicit unload */
    orion_model_lease *l = acquire(mgr, "b", -1);
    assert_int_equal(orion_manager_unload(mgr, "b"), ORION_ERR_BUSY);
    orion_manager_release(mgr, l);
    assert_int_equal(orion_manager_unload(mgr, "b"), ORION_OK);
    assert_int_equal(orion_manager_unload(mgr, "b"), ORION_ERR_NOT_FOUND);
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "a:idle a:keep_alive b:idle c:idle b:explicit");
    orion_manager_free(mgr);
}

static void test_pressure_reaction(void **state) {
    (void)state;
    char list[512];
    orion_manager *mgr = make_manager(16 * GIB, NULL, false);
    clock_set(1);
    orion_manager_release(mgr, acquire(mgr, "a", -1));
    clock_set(2);
    orion_manager_release(mgr, acquire(mgr, "b", -1));
    clock_set(3);
    orion_manager_release(mgr, acquire(mgr, "c", -1));
    orion_model_lease *a = acquire(mgr, "a", -1); /* in use */
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_LOW);
    assert_int_equal(n_loaded(mgr), 3);
    set_psi(35, 0); /* high: idle models go, least recent first, keeping the most recent */
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_HIGH);
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "b:pressure");
    assert_true(is_loaded(mgr, "a") && is_loaded(mgr, "c"));
    set_psi(80, 30); /* critical: every idle model, and loads are refused */
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_CRITICAL);
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "b:pressure c:pressure");
    assert_true(is_loaded(mgr, "a")); /* pinned */
    orion_model_lease *b = NULL;
    assert_int_equal(orion_manager_acquire(mgr, "b", NULL, &b), ORION_ERR_LIMIT);
    assert_non_null(strstr(orion_last_error(), "critical"));
    /* a loaded model may still be acquired */
    orion_model_lease *a2 = acquire(mgr, "a", -1);
    orion_manager_release(mgr, a2);
    set_psi(0, 0);
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_LOW);
    b = acquire(mgr, "b", -1);
    /* pressure events: high, critical, low */
    pthread_mutex_lock(&g_rec.lock);
    int k = 0;
    orion_pressure seen[8];
    for (int i = 0; i < g_rec.n; i++)
        if (g_rec.ev[i].type == ORION_EVENT_PRESSURE && k < 8) seen[k++] = g_rec.ev[i].pressure;
    pthread_mutex_unlock(&g_rec.lock);
    assert_int_equal(k, 3);
    assert_int_equal(seen[0], ORION_PRESSURE_HIGH);
    assert_int_equal(seen[1], ORION_PRESSURE_CRITICAL);
    assert_int_equal(seen[2], ORION_PRESSURE_LOW);
    orion_manager_release(mgr, a);
    orion_manager_release(mgr, b);
    orion_manager_free(mgr);
}

typedef struct progress_rec {
    uint64_t      done[4096], total;
    int           n;
    int           cancel_after;
    orion_cancel *cancel;
} progress_rec;

static void on_progress(uint64_t done, uint64_t total, void *user) {
    progress_rec *p = user;
    if (p->n < 4096) p->done[p->n++] = done;
    p->total = total;
    if (p->cancel && p->n == p->cancel_after) orion_cancel_set(p->cancel);
}

static bool file_mapped(const char *path) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return false;
    char line[2048];
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (strstr(line, path)) found = true;
    fclose(f);
    return found;
}

static void test_progress_and_cancel(void **state) {
    (void)state;
    orion_manager *mgr = make_manager(16 * GIB, "{\"level\": \"f32\"}", false);
    const char *path = g_files[ORION_QLEVEL_F32];
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    /* progress: chunks of 64 KiB up to the file size */
    static progress_rec pr;
    memset(&pr, 0, sizeof pr);
    orion_acquire_params ap = orion_acquire_default_params();
    ap.on_progress = on_progress;
    ap.user = &pr;
    ap.keep_alive_s = -1;
    orion_model_lease *l = NULL;
    assert_int_equal(orion_manager_acquire(mgr, "a", &ap, &l), ORION_OK);
    assert_int_equal(pr.total, (uint64_t)sb.st_size);
    assert_int_equal(pr.n, (int)((sb.st_size + 65535) / 65536));
    for (int i = 1; i < pr.n; i++) assert_true(pr.done[i] > pr.done[i - 1]);
    assert_int_equal(pr.done[pr.n - 1], (uint64_t)sb.st_size);
    orion_model_status st;
    assert_int_equal(orion_manager_status(mgr, &st, 1), 1);
    assert_int_equal(st.mapped, (uint64_t)sb.st_size);
    assert_int_equal(st.resident, (uint64_t)sb.st_size); /* prefaulted */
    assert_int_equal(st.kv, 2ull * 5 * 256 * 4 * 8 * 2);
    assert_true(st.heap >= st.kv);
    assert_int_equal(st.refs, 1);
    orion_manager_release(mgr, l);
    assert_int_equal(orion_manager_unload(mgr, "a"), ORION_OK);
    assert_false(file_mapped(path));

    /* cancel after the third chunk: nothing stays mapped or allocated */
    orion_cancel *cancel = NULL;
    assert_int_equal(orion_cancel_init(&cancel), ORION_OK);
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    rec_reset();
    memset(&pr, 0, sizeof pr);
    pr.cancel = cancel;
    pr.cancel_after = 3;
    ap.cancel = cancel;
    assert_int_equal(orion_manager_acquire(mgr, "a", &ap, &l), ORION_ERR_CANCELLED);
    assert_null(l);
    assert_non_null(strstr(orion_last_error(), "cancelled"));
    assert_int_equal(pr.n, 3);
    orion_mem_get_stats(&after);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_false(file_mapped(path));
    assert_int_equal(n_loaded(mgr), 0);
    pthread_mutex_lock(&g_rec.lock);
    assert_int_equal(g_rec.n, 5); /* started, 3 progress, cancelled */
    assert_int_equal(g_rec.ev[0].type, ORION_EVENT_LOAD_STARTED);
    assert_int_equal(g_rec.ev[1].type, ORION_EVENT_LOAD_PROGRESS);
    assert_int_equal(g_rec.ev[3].total, (uint64_t)sb.st_size);
    assert_int_equal(g_rec.ev[4].type, ORION_EVENT_LOAD_CANCELLED);
    pthread_mutex_unlock(&g_rec.lock);
    /* a token set before the load: cancelled before anything is built */
    assert_int_equal(orion_manager_acquire(mgr, "a", &ap, &l), ORION_ERR_CANCELLED);
    orion_mem_get_stats(&after);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    /* lazy: no prefault, no progress */
    orion_cancel_free(cancel);
    memset(&pr, 0, sizeof pr);
    ap.cancel = NULL;
    ap.lazy = true;
    assert_int_equal(orion_manager_acquire(mgr, "a", &ap, &l), ORION_OK);
    assert_int_equal(pr.n, 0);
    orion_manager_release(mgr, l);
    orion_manager_free(mgr);
    assert_false(file_mapped(path));
}

static void test_failures(void **state) {
    (void)state;
    orion_manager *mgr = make_manager(16 * GIB, NULL, false);
    char list[256];
    /* an embed entry on a decoder file: the encoder loader refuses it */
    orion_model_entry e;
    memset(&e, 0, sizeof e);
    e.id = "emb";
    e.task = ORION_TASK_EMBED;
    e.files[ORION_QLEVEL_F32] = g_files[ORION_QLEVEL_F32];
    assert_int_equal(orion_manager_register(mgr, &e), ORION_OK);
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    orion_model_lease *l = NULL;
    assert_true(orion_manager_acquire(mgr, "emb", NULL, &l) != ORION_OK);
    assert_null(l);
    orion_mem_get_stats(&after);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    rec_list(ORION_EVENT_LOAD_FAILED, list, sizeof list);
    assert_string_equal(list, "emb");
    assert_false(file_mapped(g_files[ORION_QLEVEL_F32]));
    /* a file that is not a GGUF */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.gguf", g_dir);
    test_write_file(g_dir, "bad.gguf", "not a gguf file at all");
    e.id = "bad";
    e.task = ORION_TASK_GENERATE;
    e.files[ORION_QLEVEL_F32] = bad;
    assert_int_equal(orion_manager_register(mgr, &e), ORION_OK);
    assert_int_equal(orion_manager_acquire(mgr, "bad", NULL, &l), ORION_ERR_FORMAT);
    /* registering over a loaded model is refused */
    orion_model_lease *a = acquire(mgr, "a", -1);
    e.id = "a";
    assert_int_equal(orion_manager_register(mgr, &e), ORION_ERR_BUSY);
    e.files[ORION_QLEVEL_F32] = NULL;
    e.id = "none";
    assert_int_equal(orion_manager_register(mgr, &e), ORION_ERR_INVALID_ARG);
    orion_manager_release(mgr, a);
    orion_manager_free(mgr);
    orion_manager_free(NULL);
}

static void test_registry(void **state) {
    (void)state;
    char reg[1400], path[400];
    snprintf(reg, sizeof reg,
             "{\"models\": [\n"
             " {\"id\": \"stories\", \"task\": \"generate\", \"arch\": \"llama\", \"n_ctx\": 128,\n"
             "  \"files\": {\"q4_0\": \"s-q4_0.gguf\", \"q8_0\": \"s-q8_0.gguf\", \"f32\": \"%s\"}},\n"
             " {\"id\": \"enc\", \"task\": \"embed\", \"files\": {\"f16\": \"s-f16.gguf\"}}]}",
             g_files[ORION_QLEVEL_F32]);
    test_write_file(g_dir, "registry.json", reg);
    snprintf(path, sizeof path, "%s/registry.json", g_dir);
    orion_manager *mgr = make_manager(6 * GIB, NULL, false);
    assert_int_equal(orion_manager_load_registry(mgr, path), ORION_OK);
    orion_model_lease *l = acquire(mgr, "stories", -1);
    assert_int_equal(orion_lease_level(l), ORION_QLEVEL_Q8); /* the large tier's level, relative path */
    orion_llm_info info;
    orion_llm_get_info(orion_lease_llm(l), &info);
    assert_int_equal(info.n_ctx, 128);
    orion_manager_release(mgr, l);
    /* listing: a, b, c from make_manager, then the registry's */
    const char *want[] = {"a", "b", "c", "stories", "enc"};
    for (int i = 0; i < 5; i++) assert_string_equal(orion_manager_model_id(mgr, i), want[i]);
    assert_null(orion_manager_model_id(mgr, 5));
    orion_model_need nd, direct;
    assert_int_equal(orion_manager_model_need(mgr, "stories", ORION_QLEVEL_Q4, &nd), ORION_OK);
    assert_int_equal(orion_model_need_compute(g_files[ORION_QLEVEL_Q4], ORION_TASK_GENERATE, 128, &direct), ORION_OK);
    assert_int_equal(nd.total, direct.total);
    assert_int_equal(orion_manager_model_need(mgr, "stories", ORION_QLEVEL_F16, &nd), ORION_ERR_NOT_FOUND);
    assert_int_equal(orion_manager_model_need(mgr, "nope", ORION_QLEVEL_Q4, &nd), ORION_ERR_NOT_FOUND);
    assert_int_equal(orion_manager_model_need(mgr, "enc", ORION_QLEVEL_F16, &nd), ORION_OK);
    assert_int_equal(nd.kv, 0); /* encoders keep no KV cache */
    /* the command lists them and loads one */
    const char *bin = getenv("ORION_BIN");
    if (bin) {
        char cmd[2048], out[8192];
        snprintf(cmd, sizeof cmd, "'%s' models '%s' --load stories --level q4 2>&1", bin, path);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        assert_int_equal(pclose(p), 0);
        assert_non_null(strstr(out, "stories at q4: mapped"));
        assert_non_null(strstr(out, "after unload"));
        assert_non_null(strstr(out, "reason explicit"));
    }
    /* bad registries */
    const char *bad[] = {"{\"models\": {}}", "{\"models\": [{\"task\": \"generate\"}]}",
                         "{\"models\": [{\"id\": \"x\", \"task\": \"chat\", \"files\": {}}]}",
                         "{\"models\": [{\"id\": \"x\", \"files\": {\"q3\": \"a\"}}]}",
                         "{\"models\": [{\"id\": \"x\", \"files\": {}}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_write_file(g_dir, "registry.json", bad[i]);
        assert_true(orion_manager_load_registry(mgr, path) != ORION_OK);
    }
    orion_manager_free(mgr);
}

/* An embed model: a MiniLM-shaped BERT with random weights made by
 * tests/ref/bert_ref.py (needs torch), converted to q8_0, loaded through
 * the manager with orion_embed_load. */
static void test_embed_model(void **state) {
    (void)state;
    char dir[600], arg[700], gguf[700];
    snprintf(dir, sizeof dir, "%s/minilm", g_dir);
    snprintf(arg, sizeof arg, "make '%s'", dir);
    if (!test_run_ref_script("bert_ref.py", arg, "torch and numpy (Debian: python3-torch python3-numpy)")) skip();
    snprintf(gguf, sizeof gguf, "%s/minilm-q8_0.gguf", g_dir);
    orion_convert_params cp = orion_convert_default_params();
    cp.type = ORION_TYPE_Q8_0;
    cp.n_threads = 1;
    assert_int_equal(orion_convert(dir, gguf, &cp), ORION_OK);
    orion_manager *mgr = make_manager(3 * GIB, NULL, false);
    orion_model_entry e;
    memset(&e, 0, sizeof e);
    e.id = "minilm";
    e.task = ORION_TASK_EMBED;
    e.arch = "bert";
    e.files[ORION_QLEVEL_Q8] = gguf;
    assert_int_equal(orion_manager_register(mgr, &e), ORION_OK);
    orion_model_lease *l = acquire(mgr, "minilm", 0);
    assert_int_equal(orion_lease_level(l), ORION_QLEVEL_Q8); /* no q4 file: the next level up */
    assert_null(orion_lease_llm(l));
    orion_embedder *emb = orion_lease_embedder(l);
    assert_non_null(emb);
    orion_embed_info info;
    orion_embed_get_info(emb, &info);
    orion_model_need nd;
    assert_int_equal(orion_manager_model_need(mgr, "minilm", ORION_QLEVEL_Q8, &nd), ORION_OK);
    assert_int_equal(nd.weights, info.weight_bytes);
    assert_int_equal(nd.kv, 0);
    assert_true(nd.scratch >= info.scratch_bytes * 9 / 10 && nd.scratch <= info.scratch_bytes * 3 / 2);
    printf("minilm q8_0: weights %llu, scratch estimate %llu (arena %zu)\n", (unsigned long long)nd.weights,
           (unsigned long long)nd.scratch, info.scratch_bytes);
    float vec[1024];
    assert_true(info.dim > 0 && info.dim <= 1024);
    const char *text = "the manager loaded this encoder";
    assert_int_equal(orion_embed_texts(emb, &text, NULL, 1, vec), ORION_OK);
    orion_manager_release(mgr, l); /* keep_alive 0: unloaded now */
    assert_int_equal(n_loaded(mgr), 0);
    char list[256];
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "minilm:keep_alive");
    assert_false(file_mapped(gguf));
    orion_manager_free(mgr);
}

/* Out of memory: fail allocation n, n+1, ... inside init, config and
 * registry reading, register and acquire; every failure must clean up. */
static void test_out_of_memory(void **state) {
    (void)state;
    set_machine(16 * GIB);
    char proc[300], sys[300], cfg[300], reg[300], text[1200];
    snprintf(proc, sizeof proc, "%s/proc", g_dir);
    snprintf(sys, sizeof sys, "%s/sys", g_dir);
    test_write_file(g_dir, "oom-config.json", "{\"max_models\": 2, \"models\": {\"s\": {\"keep_alive\": 5}}}");
    snprintf(text, sizeof text, "{\"models\": [{\"id\": \"s\", \"files\": {\"q8\": \"%s\"}}]}",
             g_files[ORION_QLEVEL_Q8]);
    test_write_file(g_dir, "oom-registry.json", text);
    snprintf(cfg, sizeof cfg, "%s/oom-config.json", g_dir);
    snprintf(reg, sizeof reg, "%s/oom-registry.json", g_dir);
    orion_mem_stats base;
    orion_mem_get_stats(&base);
    int n_fail = 0;
    for (int64_t n = 0; n < 10000; n++) {
        orion__alloc_fail_after(n);
        orion_manager_params mp = orion_manager_default_params();
        mp.profile.proc_root = proc;
        mp.profile.sys_root = sys;
        mp.profile.config_path = cfg;
        mp.registry_path = reg;
        mp.monitor = false;
        mp.n_threads = 1;
        mp.clock = fake_clock;
        orion_manager *mgr = NULL;
        orion_status st = orion_manager_init(&mp, &mgr);
        orion_model_lease *l = NULL;
        if (st == ORION_OK) st = orion_manager_acquire(mgr, "s", NULL, &l);
        orion__alloc_fail_after(-1);
        if (l) orion_manager_release(mgr, l);
        orion_manager_free(mgr);
        orion_mem_stats now;
        orion_mem_get_stats(&now);
        assert_int_equal(now.bytes_in_use, base.bytes_in_use);
        if (st == ORION_OK) break;
        assert_true(st == ORION_ERR_NOMEM || st == ORION_ERR_FORMAT || st == ORION_ERR_IO);
        n_fail++;
    }
    printf("out of memory at each of %d allocations: cleaned up\n", n_fail);
    assert_true(n_fail > 10);
}

typedef struct racer {
    orion_manager     *mgr;
    orion_model_lease *lease;
    orion_status       st;
} racer;

static void *race_main(void *arg) {
    racer *r = arg;
    orion_acquire_params ap = orion_acquire_default_params();
    ap.keep_alive_s = 1;
    r->st = orion_manager_acquire(r->mgr, "a", &ap, &r->lease);
    return NULL;
}

static void test_concurrent_and_thread(void **state) {
    (void)state;
    char list[512];
    orion_manager *mgr = make_manager(16 * GIB, "{\"level\": \"f32\"}", true);
    racer r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){mgr, NULL, ORION_OK};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) assert_int_equal(r[i].st, ORION_OK);
    rec_list(ORION_EVENT_LOADED, list, sizeof list);
    assert_string_equal(list, "a"); /* loaded once */
    orion_model_status st;
    assert_int_equal(orion_manager_status(mgr, &st, 1), 1);
    assert_int_equal(st.refs, 4);
    for (int i = 0; i < 4; i++) orion_manager_release(mgr, r[i].lease);
    /* the monitor thread runs the idle timer once the clock passes it */
    clock_set(5);
    for (int t = 0; t < 300 && n_loaded(mgr) > 0; t++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(n_loaded(mgr), 0);
    rec_list(ORION_EVENT_UNLOADED, list, sizeof list);
    assert_string_equal(list, "a:idle");
    /* and reacts to pressure on its own */
    orion_manager_release(mgr, acquire(mgr, "a", -1));
    clock_set(6);
    orion_manager_release(mgr, acquire(mgr, "b", -1));
    set_psi(90, 50);
    for (int t = 0; t < 300 && n_loaded(mgr) > 0; t++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(n_loaded(mgr), 0);
    assert_int_equal(orion_manager_pressure(mgr), ORION_PRESSURE_CRITICAL);
    set_psi(0, 0);
    orion_manager_free(mgr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_need),
        cmocka_unit_test(test_level_by_tier),
        cmocka_unit_test(test_fallback_and_error),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_idle_and_keep_alive),
        cmocka_unit_test(test_pressure_reaction),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_embed_model),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_concurrent_and_thread),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
