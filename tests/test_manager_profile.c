/*
 * test_manager_profile.c — the device profile, tiers, config and the
 * memory-pressure monitor, on fake /proc and /sys trees built in a temporary
 * directory: every tier, cgroup v2 (limit below RAM, "max", memory.high, a
 * parent's limit, a namespaced root), v1, missing files, and pressure level
 * transitions driven by rewriting the fake PSI, meminfo and memory.events
 * files (by polling and through the monitor thread).
 */
#include "test_util.h"

#include "orion.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define GIB (1024ull * 1024 * 1024)
#define MIB (1024ull * 1024)

/* ---- fake trees ---- */

typedef struct fake {
    char root[256];
    char proc[300], sys[300];
} fake;

static void fake_meminfo(fake *fk, uint64_t total, uint64_t avail) {
    char t[512];
    snprintf(t, sizeof t, "MemTotal:       %llu kB\nMemFree:        %llu kB\nMemAvailable:   %llu kB\nCached: 0 kB\n",
             (unsigned long long)(total / 1024), (unsigned long long)(avail / 2048),
             (unsigned long long)(avail / 1024));
    test_write_file(fk->proc, "meminfo", t);
}

static void fake_psi(const char *base, const char *rel, double some, double full) {
    char t[512];
    snprintf(t, sizeof t,
             "some avg10=%.2f avg60=0.00 avg300=0.00 total=1234\nfull avg10=%.2f avg60=0.00 avg300=0.00 total=99\n",
             some, full);
    test_write_file(base, rel, t);
}

static void fake_init(fake *fk) {
    snprintf(fk->root, sizeof fk->root, "/tmp/orion_mgr_XXXXXX");
    assert_non_null(mkdtemp(fk->root));
    snprintf(fk->proc, sizeof fk->proc, "%s/proc", fk->root);
    snprintf(fk->sys, sizeof fk->sys, "%s/sys", fk->root);
    test_mkdirs(fk->proc);
    test_mkdirs(fk->sys);
}

static void fake_free(fake *fk) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fk->root);
    assert_int_equal(system(cmd), 0);
}

/* A cgroup v2 process in /app.slice/svc with the given limits (NULL: absent). */
static void fake_cg2(fake *fk, const char *max, const char *high, const char *current) {
    test_write_file(fk->proc, "self/cgroup", "0::/app.slice/svc\n");
    if (max) test_write_file(fk->sys, "fs/cgroup/app.slice/svc/memory.max", max);
    if (high) test_write_file(fk->sys, "fs/cgroup/app.slice/svc/memory.high", high);
    if (current) test_write_file(fk->sys, "fs/cgroup/app.slice/svc/memory.current", current);
}

static orion_device_profile read_profile(const fake *fk, const char *config) {
    orion_profile_params pp = orion_profile_default_params();
    pp.proc_root = fk->proc;
    pp.sys_root = fk->sys;
    pp.config_path = config;
    orion_device_profile p;
    orion_status st = orion_profile_read(&pp, &p);
    if (st != ORION_OK) fprintf(stderr, "%s\n", orion_last_error());
    assert_int_equal(st, ORION_OK);
    return p;
}

/* ---- tiers ---- */

static void test_tiers(void **state) {
    (void)state;
    static const struct {
        uint64_t    total;
        const char *name;
        orion_qlevel level;
        int          max_models;
        double       idle;
    } cases[] = {
        {1536 * MIB, "small", ORION_QLEVEL_Q4, 1, 60},    {2 * GIB, "small", ORION_QLEVEL_Q4, 1, 60},
        {2 * GIB + 4096, "medium", ORION_QLEVEL_Q4, 2, 300}, {3 * GIB, "medium", ORION_QLEVEL_Q4, 2, 300},
        {6 * GIB, "large", ORION_QLEVEL_Q8, 3, 600},      {8 * GIB, "large", ORION_QLEVEL_Q8, 3, 600},
        {16 * GIB, "xlarge", ORION_QLEVEL_F16, 5, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake fk;
        fake_init(&fk);
        fake_meminfo(&fk, cases[i].total, cases[i].total / 2);
        orion_device_profile p = read_profile(&fk, NULL);
        assert_int_equal(p.mem_total, cases[i].total);
        assert_int_equal(p.mem_available, cases[i].total / 2);
        assert_int_equal(p.cgroup_version, 0);
        assert_int_equal(p.budget, cases[i].total);
        assert_string_equal(p.tier.name, cases[i].name);
        assert_int_equal(p.tier.level, cases[i].level);
        assert_int_equal(p.tier.max_models, cases[i].max_models);
        assert_true(p.tier.idle_unload_s == cases[i].idle);
        assert_true(p.n_cpus >= 1);
        fake_free(&fk);
    }
    orion_tier t[8];
    assert_int_equal(orion_tier_defaults(t, 8), 4);
    assert_true(t[3].max_budget == ORION_NO_LIMIT);
}

/* ---- cgroups ---- */

static void test_cgroup_v2_limit_below_ram(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 16 * GIB, 12 * GIB);
    fake_cg2(&fk, "1073741824\n", "max\n", "268435456\n");
    orion_device_profile p = read_profile(&fk, NULL);
    assert_int_equal(p.cgroup_version, 2);
    assert_string_equal(p.cgroup_dir, "fs/cgroup/app.slice/svc");
    assert_int_equal(p.cg_max, GIB);
    assert_true(p.cg_high == ORION_NO_LIMIT);
    assert_int_equal(p.cg_current, 256 * MIB);
    assert_int_equal(p.budget, GIB);
    assert_int_equal(p.available, 768 * MIB); /* room under the limit, not MemAvailable */
    assert_string_equal(p.tier.name, "small");
    fake_free(&fk);
}

static void test_cgroup_v2_max(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 6 * GIB, 5 * GIB);
    fake_cg2(&fk, "max\n", "max\n", "1000\n");
    orion_device_profile p = read_profile(&fk, NULL);
    assert_int_equal(p.cgroup_version, 2);
    assert_true(p.cg_max == ORION_NO_LIMIT);
    assert_int_equal(p.budget, 6 * GIB);
    assert_int_equal(p.available, 5 * GIB);
    assert_string_equal(p.tier.name, "large");
    fake_free(&fk);
}

static void test_cgroup_v2_high_and_parent(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 32 * GIB, 30 * GIB);
    /* memory.high below memory.max binds */
    fake_cg2(&fk, "8589934592\n", "3221225472\n", NULL);
    orion_device_profile p = read_profile(&fk, NULL);
    assert_int_equal(p.budget, 3 * GIB);
    assert_string_equal(p.tier.name, "medium");
    /* a parent's smaller limit binds the child */
    test_write_file(fk.sys, "fs/cgroup/app.slice/memory.max", "1610612736\n");
    p = read_profile(&fk, NULL);
    assert_int_equal(p.cg_max, 1536 * MIB);
    assert_int_equal(p.budget, 1536 * MIB);
    assert_string_equal(p.tier.name, "small");
    fake_free(&fk);
}

static void test_cgroup_v2_namespaced_root(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 64 * GIB, 60 * GIB);
    /* inside a container: "0::/" and the limits at the mount's root */
    test_write_file(fk.proc, "self/cgroup", "0::/\n");
    test_write_file(fk.sys, "fs/cgroup/memory.max", "536870912\n");
    test_write_file(fk.sys, "fs/cgroup/memory.current", "0\n");
    orion_device_profile p = read_profile(&fk, NULL);
    assert_int_equal(p.cgroup_version, 2);
    assert_string_equal(p.cgroup_dir, "fs/cgroup");
    assert_int_equal(p.budget, 512 * MIB);
    fake_free(&fk);
}

static void test_cgroup_v1(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 16 * GIB, 10 * GIB);
    /* a hybrid host: the v2 line names no memory controller, v1 has it */
    test_write_file(fk.proc, "self/cgroup", "12:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/\n");
    test_write_file(fk.sys, "fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "3221225472\n");
    test_write_file(fk.sys, "fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "1073741824\n");
    orion_device_profile p = read_profile(&fk, NULL);
    assert_int_equal(p.cgroup_version, 1);
    assert_string_equal(p.cgroup_dir, "fs/cgroup/memory/docker/abc");
    assert_int_equal(p.cg_max, 3 * GIB);
    assert_int_equal(p.cg_current, GIB);
    assert_int_equal(p.budget, 3 * GIB);
    assert_int_equal(p.available, 2 * GIB);
    assert_string_equal(p.tier.name, "medium");
    /* v1's "unlimited" is a huge page-aligned number */
    test_write_file(fk.sys, "fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
    p = read_profile(&fk, NULL);
    assert_true(p.cg_max == ORION_NO_LIMIT);
    assert_int_equal(p.budget, 16 * GIB);
    fake_free(&fk);
}

static void test_missing_files(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    /* no meminfo: sysinfo(2) gives the real machine's figures */
    orion_device_profile p = read_profile(&fk, NULL);
    assert_true(p.from_sysinfo);
    assert_true(p.mem_total > 0);
    assert_int_equal(p.cgroup_version, 0);
    /* without the fallback it is an error naming the file */
    orion_profile_params pp = orion_profile_default_params();
    pp.proc_root = fk.proc;
    pp.sys_root = fk.sys;
    pp.use_sysinfo = false;
    assert_int_equal(orion_profile_read(&pp, &p), ORION_ERR_NOT_FOUND);
    assert_non_null(strstr(orion_last_error(), "meminfo"));
    /* meminfo without MemAvailable (old kernels): MemFree + Cached + Buffers */
    test_write_file(fk.proc, "meminfo", "MemTotal: 4194304 kB\nMemFree: 1024 kB\nBuffers: 1024 kB\nCached: 2048 kB\n");
    /* a cgroup file naming a directory that does not exist, and one without limits */
    test_write_file(fk.proc, "self/cgroup", "0::/gone.slice\n");
    p = read_profile(&fk, NULL);
    assert_int_equal(p.mem_available, 4096 * 1024);
    assert_int_equal(p.cgroup_version, 0);
    assert_int_equal(p.budget, 4 * GIB);
    fake_cg2(&fk, NULL, NULL, "12345\n");  /* memory.current only */
    test_write_file(fk.proc, "self/cgroup", "0::/app.slice/svc\n");
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.max", "garbage\n");
    p = read_profile(&fk, NULL);
    assert_int_equal(p.cgroup_version, 2);
    assert_true(p.cg_max == ORION_NO_LIMIT);
    assert_int_equal(p.budget, 4 * GIB);
    fake_free(&fk);
}

/* ---- config ---- */

static void test_config(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 16 * GIB, 12 * GIB);
    char cfg[400];
    snprintf(cfg, sizeof cfg, "%s/config.json", fk.root);
    test_write_file(fk.root, "config.json",
               "{\"budget\": \"3GiB\", \"level\": \"q8_0\", \"max_models\": 4, \"idle_unload\": \"90s\",\n"
               " \"models\": {\"m\": {\"level\": \"f16\", \"keep_alive\": \"10m\", \"n_ctx\": 128}}}");
    orion_device_profile p = read_profile(&fk, cfg);
    assert_int_equal(p.budget, 3 * GIB);
    assert_string_equal(p.tier.name, "medium");
    assert_int_equal(p.tier.level, ORION_QLEVEL_Q8);
    assert_int_equal(p.tier.max_models, 4);
    assert_true(p.tier.idle_unload_s == 90.0);
    /* budget only: the tier of that budget */
    test_write_file(fk.root, "config.json", "{\"budget\": 1073741824, \"idle_unload\": -1}");
    p = read_profile(&fk, cfg);
    assert_string_equal(p.tier.name, "small");
    assert_true(p.tier.idle_unload_s < 0);
    /* bad values name the field */
    const char *bad[] = {"{\"level\": \"q3\"}", "{\"max_models\": 0}", "{\"budget\": \"lots\"}",
                         "{\"models\": {\"m\": {\"keep_alive\": \"5 parsecs\"}}}", "[1, 2]", "{\"budget\": "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_write_file(fk.root, "config.json", bad[i]);
        orion_profile_params pp = orion_profile_default_params();
        pp.proc_root = fk.proc;
        pp.sys_root = fk.sys;
        pp.config_path = cfg;
        assert_int_equal(orion_profile_read(&pp, &p), ORION_ERR_FORMAT);
        assert_non_null(strstr(orion_last_error(), "config.json"));
    }
    fake_free(&fk);
}

static void test_keep_alive_and_levels(void **state) {
    (void)state;
    static const struct {
        const char *text;
        double      s;
    } ok[] = {{"300", 300}, {"0", 0}, {"-1", -1}, {"5m", 300}, {"1h30m", 5400}, {"10s", 10}, {"500ms", 0.5},
              {"-1m", -60}, {"2.5", 2.5}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double s = 12345;
        assert_int_equal(orion_keep_alive_parse(ok[i].text, &s), ORION_OK);
        assert_true(fabs(s - ok[i].s) < 1e-9);
    }
    const char *bad[] = {"", "abc", "5x", "m", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double s;
        assert_int_equal(orion_keep_alive_parse(bad[i], &s), ORION_ERR_INVALID_ARG);
    }
    orion_qlevel l;
    assert_int_equal(orion_qlevel_from_name("Q4_0", &l), ORION_OK);
    assert_int_equal(l, ORION_QLEVEL_Q4);
    assert_int_equal(orion_qlevel_from_name("bf16", &l), ORION_OK);
    assert_int_equal(l, ORION_QLEVEL_F16);
    assert_int_equal(orion_qlevel_from_name("q3_k", &l), ORION_ERR_INVALID_ARG);
    assert_string_equal(orion_qlevel_name(ORION_QLEVEL_Q8), "q8");
}

/* ---- pressure ---- */

typedef struct recorder {
    pthread_mutex_t lock;
    orion_pressure  levels[64], prevs[64];
    int             n;
} recorder;

static void record(orion_pressure level, orion_pressure prev, const orion_pressure_sample *s, void *user) {
    (void)s;
    recorder *r = user;
    pthread_mutex_lock(&r->lock);
    if (r->n < 64) r->levels[r->n] = level, r->prevs[r->n] = prev, r->n++;
    pthread_mutex_unlock(&r->lock);
}

static orion_pressure poll_level(orion_pressure_monitor *mon) {
    orion_pressure_sample s;
    assert_int_equal(orion_pressure_monitor_poll(mon, &s), ORION_OK);
    assert_int_equal(s.level, orion_pressure_monitor_level(mon));
    return s.level;
}

static void test_pressure_transitions(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 8 * GIB, 6 * GIB);
    fake_cg2(&fk, "max\n", "max\n", "0\n");
    fake_psi(fk.proc, "pressure/memory", 0, 0);
    fake_psi(fk.sys, "fs/cgroup/app.slice/svc/memory.pressure", 0, 0);
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    orion_pressure_params pp = orion_pressure_default_params();
    pp.proc_root = fk.proc;
    pp.sys_root = fk.sys;
    orion_pressure_monitor *mon = NULL;
    assert_int_equal(orion_pressure_monitor_init(&pp, &mon), ORION_OK);
    recorder r = {.n = 0};
    pthread_mutex_init(&r.lock, NULL);
    int id = orion_pressure_monitor_subscribe(mon, record, &r);
    assert_true(id > 0);
    orion_pressure_sample s;
    assert_int_equal(orion_pressure_monitor_poll(mon, &s), ORION_OK);
    assert_int_equal(s.level, ORION_PRESSURE_LOW);
    assert_int_equal(s.budget, 8 * GIB);
    assert_true(fabs(s.avail_share - 0.75) < 1e-9);
    assert_int_equal(r.n, 0);

    /* system PSI */
    fake_psi(fk.proc, "pressure/memory", 15, 0);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_MEDIUM);
    fake_psi(fk.proc, "pressure/memory", 35, 1);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_HIGH);
    fake_psi(fk.proc, "pressure/memory", 35, 6);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_HIGH); /* no change: no call */
    fake_psi(fk.proc, "pressure/memory", 80, 25);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_CRITICAL);
    fake_psi(fk.proc, "pressure/memory", 0, 0);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_LOW);
    /* the cgroup's PSI alone */
    fake_psi(fk.sys, "fs/cgroup/app.slice/svc/memory.pressure", 40, 0);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_HIGH);
    fake_psi(fk.sys, "fs/cgroup/app.slice/svc/memory.pressure", 0, 0);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_LOW);
    /* available memory as a share of the budget */
    fake_meminfo(&fk, 8 * GIB, 1536 * MIB); /* 18.75% */
    assert_int_equal(poll_level(mon), ORION_PRESSURE_MEDIUM);
    fake_meminfo(&fk, 8 * GIB, 600 * MIB); /* 7.3% */
    assert_int_equal(poll_level(mon), ORION_PRESSURE_HIGH);
    fake_meminfo(&fk, 8 * GIB, 300 * MIB); /* 3.7% */
    assert_int_equal(poll_level(mon), ORION_PRESSURE_CRITICAL);
    fake_meminfo(&fk, 8 * GIB, 6 * GIB);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_LOW);
    /* memory.events increases: one reading each */
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.events", "low 0\nhigh 3\nmax 0\noom 0\noom_kill 0\n");
    assert_int_equal(poll_level(mon), ORION_PRESSURE_MEDIUM);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_LOW);
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.events", "low 0\nhigh 3\nmax 2\noom 0\noom_kill 0\n");
    assert_int_equal(poll_level(mon), ORION_PRESSURE_HIGH);
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.events", "low 0\nhigh 3\nmax 2\noom 1\noom_kill 1\n");
    orion_pressure_monitor_poll(mon, &s);
    assert_int_equal(s.level, ORION_PRESSURE_CRITICAL);
    assert_int_equal(s.ev_oom, 2);
    assert_int_equal(poll_level(mon), ORION_PRESSURE_LOW);

    static const orion_pressure expect[] = {
        ORION_PRESSURE_MEDIUM, ORION_PRESSURE_HIGH, ORION_PRESSURE_CRITICAL, ORION_PRESSURE_LOW,
        ORION_PRESSURE_HIGH,   ORION_PRESSURE_LOW,  ORION_PRESSURE_MEDIUM,   ORION_PRESSURE_HIGH,
        ORION_PRESSURE_CRITICAL, ORION_PRESSURE_LOW, ORION_PRESSURE_MEDIUM,  ORION_PRESSURE_LOW,
        ORION_PRESSURE_HIGH,   ORION_PRESSURE_CRITICAL, ORION_PRESSURE_LOW};
    assert_int_equal(r.n, (int)(sizeof expect / sizeof expect[0]));
    for (int i = 0; i < r.n; i++) {
        assert_int_equal(r.levels[i], expect[i]);
        assert_int_equal(r.prevs[i], i ? expect[i - 1] : ORION_PRESSURE_LOW);
    }
    /* cgroup limit: room under memory.max counts as available */
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.max", "4294967296\n");
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.current", "4187593113\n"); /* 100 MiB left of a 8 GiB budget */
    assert_int_equal(poll_level(mon), ORION_PRESSURE_CRITICAL);
    orion_pressure_monitor_unsubscribe(mon, id);
    int before = r.n;
    test_write_file(fk.sys, "fs/cgroup/app.slice/svc/memory.current", "0\n");
    assert_int_equal(poll_level(mon), ORION_PRESSURE_LOW);
    assert_int_equal(r.n, before);
    orion_pressure_monitor_free(mon);
    pthread_mutex_destroy(&r.lock);
    fake_free(&fk);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int wait_level(recorder *r, orion_pressure want, int ms) {
    for (int t = 0; t < ms; t += 5) {
        pthread_mutex_lock(&r->lock);
        bool seen = r->n > 0 && r->levels[r->n - 1] == want;
        pthread_mutex_unlock(&r->lock);
        if (seen) return t;
        sleep_ms(5);
    }
    return -1;
}

static void test_pressure_thread_fake(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 8 * GIB, 6 * GIB);
    fake_psi(fk.proc, "pressure/memory", 0, 0);
    orion_pressure_params pp = orion_pressure_default_params();
    pp.proc_root = fk.proc;
    pp.sys_root = fk.sys;
    pp.poll_ms = 20;
    orion_pressure_monitor *mon = NULL;
    assert_int_equal(orion_pressure_monitor_init(&pp, &mon), ORION_OK);
    recorder r = {.n = 0};
    pthread_mutex_init(&r.lock, NULL);
    orion_pressure_monitor_subscribe(mon, record, &r);
    assert_int_equal(orion_pressure_monitor_start(mon), ORION_OK);
    assert_int_equal(orion_pressure_monitor_start(mon), ORION_OK); /* idempotent */
    /* a fake file takes no trigger: the thread polls */
    assert_false(orion_pressure_monitor_event_driven(mon));
    fake_psi(fk.proc, "pressure/memory", 50, 0);
    assert_true(wait_level(&r, ORION_PRESSURE_HIGH, 3000) >= 0);
    fake_meminfo(&fk, 8 * GIB, 100 * MIB);
    assert_true(wait_level(&r, ORION_PRESSURE_CRITICAL, 3000) >= 0);
    fake_psi(fk.proc, "pressure/memory", 0, 0);
    fake_meminfo(&fk, 8 * GIB, 6 * GIB);
    assert_true(wait_level(&r, ORION_PRESSURE_LOW, 3000) >= 0);
    orion_pressure_monitor_stop(mon);
    /* the fake PSI file was not overwritten by a trigger */
    char path[512], text[256];
    snprintf(path, sizeof path, "%s/pressure/memory", fk.proc);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "some avg10=0.00"));
    orion_pressure_monitor_free(mon);
    pthread_mutex_destroy(&r.lock);
    fake_free(&fk);
}

static void test_pressure_real_system(void **state) {
    (void)state;
    /* the real /proc and /sys: triggers where the kernel takes them */
    orion_pressure_params pp = orion_pressure_default_params();
    pp.poll_ms = 50;
    orion_pressure_monitor *mon = NULL;
    assert_int_equal(orion_pressure_monitor_init(&pp, &mon), ORION_OK);
    assert_int_equal(orion_pressure_monitor_start(mon), ORION_OK);
    sleep_ms(120);
    orion_pressure_sample s;
    assert_int_equal(orion_pressure_monitor_poll(mon, &s), ORION_OK);
    printf("real system: pressure %s (some %.2f full %.2f, available %.1f%% of %.0f MiB), %s\n",
           orion_pressure_name(s.level), s.some_avg10, s.full_avg10, s.avail_share * 100.0,
           (double)s.budget / (double)MIB, orion_pressure_monitor_event_driven(mon) ? "PSI triggers" : "polling");
    orion_pressure_monitor_free(mon);
}

/* Opt-in (ORION_PSI_STRESS = a shell command that makes memory stall, run
 * in the background): the monitor thread on the real /proc with a polling
 * period of a minute must be woken by its PSI trigger. */
static void test_pressure_real_trigger(void **state) {
    (void)state;
    const char *stress = getenv("ORION_PSI_STRESS");
    if (!stress) skip();
    orion_pressure_params pp = orion_pressure_default_params();
    pp.poll_ms = 60000;
    pp.trigger_stall_us = 10000; /* 1% of the window: a test load stalls a few % */
    orion_pressure_monitor *mon = NULL;
    assert_int_equal(orion_pressure_monitor_init(&pp, &mon), ORION_OK);
    assert_int_equal(orion_pressure_monitor_start(mon), ORION_OK);
    sleep_ms(100);
    if (!orion_pressure_monitor_event_driven(mon)) {
        orion_pressure_monitor_free(mon);
        skip();
    }
    uint64_t trig = 0, reads = 0;
    orion_pressure_monitor_counts(mon, &trig, &reads);
    assert_int_equal(trig, 0);
    assert_int_equal(system(stress), 0);
    int t = 0;
    for (; t < 30000 && trig == 0; t += 50) {
        sleep_ms(50);
        orion_pressure_monitor_counts(mon, &trig, &reads);
    }
    orion_pressure_sample s;
    orion_pressure_monitor_poll(mon, &s);
    printf("PSI trigger woke the monitor after %d ms: %llu wake-ups, %llu readings; now some %.2f full %.2f (%s)\n", t,
           (unsigned long long)trig, (unsigned long long)reads, s.some_avg10, s.full_avg10,
           orion_pressure_name(s.level));
    assert_true(trig > 0);
    orion_pressure_monitor_free(mon);
}

static void test_empty_tree_pressure(void **state) {
    (void)state;
    fake fk;
    fake_init(&fk);
    orion_pressure_params pp = orion_pressure_default_params();
    pp.proc_root = fk.proc;
    pp.sys_root = fk.sys;
    pp.budget = GIB;
    orion_pressure_monitor *mon = NULL;
    assert_int_equal(orion_pressure_monitor_init(&pp, &mon), ORION_OK);
    orion_pressure_sample s;
    assert_int_equal(orion_pressure_monitor_poll(mon, &s), ORION_OK);
    assert_int_equal(s.level, ORION_PRESSURE_LOW);
    assert_true(s.avail_share < 0); /* unknown */
    orion_pressure_monitor_free(mon);
    orion_pressure_monitor_free(NULL);
    fake_free(&fk);
}

/* ---- the command ---- */

static void test_cli_profile(void **state) {
    (void)state;
    const char *bin = getenv("ORION_BIN");
    if (!bin) skip();
    fake fk;
    fake_init(&fk);
    fake_meminfo(&fk, 16 * GIB, 12 * GIB);
    fake_cg2(&fk, "1073741824\n", "max\n", "0\n");
    fake_psi(fk.proc, "pressure/memory", 12, 0);
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' profile --json --proc '%s' --sys '%s'", bin, fk.proc, fk.sys);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "\"budget\": 1073741824"));
    assert_non_null(strstr(out, "\"name\": \"small\""));
    assert_non_null(strstr(out, "\"version\": 2"));
    assert_non_null(strstr(out, "\"level\": \"medium\""));
    snprintf(cmd, sizeof cmd, "'%s' profile --proc '%s' --sys '%s' >/dev/null", bin, fk.proc, fk.sys);
    assert_int_equal(system(cmd), 0);
    fake_free(&fk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_cgroup_v2_limit_below_ram),
        cmocka_unit_test(test_cgroup_v2_max),
        cmocka_unit_test(test_cgroup_v2_high_and_parent),
        cmocka_unit_test(test_cgroup_v2_namespaced_root),
        cmocka_unit_test(test_cgroup_v1),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_keep_alive_and_levels),
        cmocka_unit_test(test_pressure_transitions),
        cmocka_unit_test(test_pressure_thread_fake),
        cmocka_unit_test(test_pressure_real_system),
        cmocka_unit_test(test_pressure_real_trigger),
        cmocka_unit_test(test_empty_tree_pressure),
        cmocka_unit_test(test_cli_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
