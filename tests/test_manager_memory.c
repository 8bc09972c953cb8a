/*
 * test_manager_memory.c — real memory: a synthetic model of a small real
 * shape (embd 512, ff 1536, 4 layers, 8 heads / 4 KV heads, the Llama 2
 * vocabulary, q8_0: about 48 MB) written to a temporary directory, loaded
 * through the manager with the real /proc and /sys.
 *
 *   - Two processes (fork, before any model is loaded) each load the model
 *     and run one token: the PSS of the model file's mappings is near the
 *     file size in one process alone and near half of it in each when both
 *     hold it, because both map the same page-cache pages.
 *   - Loading raises the process RSS by about the file size; unloading
 *     (munmap + MADV_DONTNEED, the model freed) brings it back down.
 * The figures are printed.
 */
#include "test_util.h"

#include "orion.h"
#include "models/synth.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MIB (1024.0 * 1024.0)

static char g_dir[256];
static char g_model[512];
static uint64_t g_size;

typedef struct vma_mem {
    uint64_t rss, pss;
} vma_mem;

/* Rss and Pss of this process's mappings of `path` (/proc/self/smaps). */
static vma_mem file_mem(const char *path) {
    vma_mem m = {0, 0};
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return m;
    char line[4096];
    bool in = false;
    size_t pl = strlen(path);
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            /* a header: "start-end perms offset dev inode  path" */
            size_t l = strlen(line);
            while (l && (line[l - 1] == '\n' || line[l - 1] == ' ')) line[--l] = '\0';
            in = l >= pl && strcmp(line + l - pl, path) == 0;
            continue;
        }
        if (!in) continue;
        if (sscanf(line, "Rss: %llu kB", &v) == 1) m.rss += v * 1024;
        else if (sscanf(line, "Pss: %llu kB", &v) == 1) m.pss += v * 1024;
    }
    fclose(f);
    return m;
}

static int group_setup(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    char tok[512];
    snprintf(tok, sizeof tok, "%s/models/llama2-tokenizer/tokenizer.bin", shared ? shared : "/work/shared");
    struct stat sb;
    if (stat(tok, &sb) != 0) {
        fprintf(stderr, "no %s: skipping the memory tests\n", tok);
        g_model[0] = '\0';
        return 0;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/orion_mgrm_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_model, sizeof g_model, "%s/small-q8_0.gguf", g_dir);
    orion_synth_params sp = orion__synth_default_params();
    sp.shape = (orion_synth_shape){NULL, "llama", 512, 1536, 4, 8, 4, 0, 2048, 0, 10000.0f, 1e-5f};
    sp.type = ORION_TYPE_Q8_0;
    sp.seed = 7;
    sp.tokenizer = tok;
    sp.n_threads = 1; /* no worker threads before the fork */
    if (orion__synth_write(g_model, &sp) != ORION_OK) {
        fprintf(stderr, "synth: %s\n", orion_last_error());
        return -1;
    }
    if (stat(g_model, &sb) != 0) return -1;
    g_size = (uint64_t)sb.st_size;
    printf("model: %s, %.1f MiB\n", g_model, (double)g_size / MIB);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (!g_dir[0]) return 0;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static orion_manager *make_manager(void) {
    orion_manager_params mp = orion_manager_default_params();
    mp.monitor = false;
    mp.n_threads = 1;
    orion_manager *mgr = NULL;
    if (orion_manager_init(&mp, &mgr) != ORION_OK) return NULL;
    orion_model_entry e;
    memset(&e, 0, sizeof e);
    e.id = "small";
    e.task = ORION_TASK_GENERATE;
    e.n_ctx = 128;
    for (int l = 0; l < ORION_QLEVEL_COUNT; l++) e.files[l] = g_model;
    if (orion_manager_register(mgr, &e) != ORION_OK) {
        orion_manager_free(mgr);
        return NULL;
    }
    return mgr;
}

/* Acquires the model and runs one token through it (a request served). */
static orion_model_lease *load_and_run(orion_manager *mgr) {
    orion_acquire_params ap = orion_acquire_default_params();
    ap.keep_alive_s = -1;
    orion_model_lease *l = NULL;
    if (orion_manager_acquire(mgr, "small", &ap, &l) != ORION_OK) {
        fprintf(stderr, "acquire: %s\n", orion_last_error());
        return NULL;
    }
    int32_t tok = 1;
    if (orion_llm_eval(orion_lease_llm(l), &tok, 1, 0, NULL, false) != ORION_OK) {
        orion_manager_release(mgr, l);
        return NULL;
    }
    return l;
}

static bool read_all(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

static void test_memory(void **state) {
    (void)state;
    if (!g_model[0]) skip();
    int p2c[2], c2p[2];
    assert_int_equal(pipe(p2c), 0);
    assert_int_equal(pipe(c2p), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the second process: wait, load, measure, report, wait, exit */
        char c;
        close(p2c[1]);
        close(c2p[0]);
        if (!read_all(p2c[0], &c, 1)) _exit(2);
        orion_manager *mgr = make_manager();
        if (!mgr) _exit(3);
        orion_model_lease *l = load_and_run(mgr);
        if (!l) _exit(4);
        vma_mem m = file_mem(g_model);
        if (write(c2p[1], &m, sizeof m) != (ssize_t)sizeof m) _exit(5);
        if (!read_all(p2c[0], &c, 1)) _exit(6);
        orion_manager_release(mgr, l);
        orion_manager_free(mgr);
        _exit(0);
    }
    close(p2c[0]);
    close(c2p[1]);

    orion_process_memory r0, r1, r2;
    assert_int_equal(orion_process_memory_read(NULL, &r0), ORION_OK);
    orion_manager *mgr = make_manager();
    assert_non_null(mgr);
    orion_model_lease *l = load_and_run(mgr);
    assert_non_null(l);
    assert_int_equal(orion_process_memory_read(NULL, &r1), ORION_OK);
    vma_mem alone = file_mem(g_model);
    orion_model_status st;
    assert_int_equal(orion_manager_status(mgr, &st, 1), 1);

    /* the second process loads the same file */
    assert_int_equal(write(p2c[1], "g", 1), 1);
    vma_mem child;
    assert_true(read_all(c2p[0], &child, sizeof child));
    vma_mem shared = file_mem(g_model);
    assert_int_equal(write(p2c[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(p2c[1]);
    close(c2p[0]);
    vma_mem after_child = file_mem(g_model);

    orion_manager_release(mgr, l);
    assert_int_equal(orion_manager_unload(mgr, "small"), ORION_OK);
    assert_int_equal(orion_process_memory_read(NULL, &r2), ORION_OK);
    vma_mem gone = file_mem(g_model);
    orion_manager_free(mgr);

    const double F = (double)g_size;
    printf("file %.1f MiB; manager: mapped %.1f MiB, resident %.1f MiB (mincore), heap %.2f MiB, kv %.2f MiB\n",
           F / MIB, (double)st.mapped / MIB, (double)st.resident / MIB, (double)st.heap / MIB, (double)st.kv / MIB);
    printf("process RSS / PSS: before load %.1f / %.1f MiB, loaded %.1f / %.1f MiB, after unload %.1f / %.1f MiB\n",
           (double)r0.rss / MIB, (double)r0.pss / MIB, (double)r1.rss / MIB, (double)r1.pss / MIB,
           (double)r2.rss / MIB, (double)r2.pss / MIB);
    printf("model file mappings, RSS / PSS: one process %.1f / %.1f MiB; two processes: this %.1f / %.1f MiB, "
           "the other %.1f / %.1f MiB; after the other exits %.1f / %.1f MiB; after unload %.1f / %.1f MiB\n",
           (double)alone.rss / MIB, (double)alone.pss / MIB, (double)shared.rss / MIB, (double)shared.pss / MIB,
           (double)child.rss / MIB, (double)child.pss / MIB, (double)after_child.rss / MIB,
           (double)after_child.pss / MIB, (double)gone.rss / MIB, (double)gone.pss / MIB);

    assert_int_equal(st.mapped, g_size);
    assert_true((double)st.resident >= 0.99 * F);
    /* one process: the whole file, counted once in PSS */
    assert_true((double)alone.pss >= 0.9 * F && (double)alone.pss <= 1.1 * F);
    /* two processes: about half each */
    assert_true((double)shared.pss >= 0.4 * F && (double)shared.pss <= 0.6 * F);
    assert_true((double)child.pss >= 0.4 * F && (double)child.pss <= 0.6 * F);
    assert_true((double)after_child.pss >= 0.9 * F);
    /* loading raised RSS by at least the file; unloading gave it back */
    assert_true((double)r1.rss - (double)r0.rss >= 0.9 * F);
    assert_true((double)r1.rss - (double)r2.rss >= 0.9 * F);
    /* freed heap may stay with the allocator (glibc arenas, ASan's quarantine) */
    assert_true((double)r2.rss <= (double)r0.rss + 0.1 * F + (double)st.heap);
    assert_int_equal(gone.rss, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
