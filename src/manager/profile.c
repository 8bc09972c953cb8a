/*
 * profile.c — the device profile and the policy tiers.
 *
 * Everything is read from text files under two roots that default to /proc
 * and /sys, so tests build fake trees: memory from PROC/meminfo (sysinfo(2)
 * when it is missing), the cgroup of this process from PROC/self/cgroup,
 * then its limits under SYS/fs/cgroup. cgroup v2 is tried first (the
 * "0::PATH" line, accepted when PATH's directory has memory.max; the limits
 * are the smallest along the path up to the root, since a parent's limit
 * binds its children); v1 second (the "memory" controller line, under
 * SYS/fs/cgroup/memory). Inside a container the path in /proc/self/cgroup
 * is often not visible under /sys (cgroup namespaces): the mount's root
 * directory is used then.
 *
 * The budget is the smallest of MemTotal, memory.max and memory.high (the
 * kernel throttles a cgroup above memory.high, so a runtime that plans to
 * live above it would be slowed down, not killed, but slowed badly). The
 * budget picks a tier; a JSON config (docs/manager.md) may override the
 * budget, the tier's fields, the pressure thresholds, and per model the
 * level, keep-alive and context.
 */
#include "manager/manager_internal.h"
#include "formats/json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* ---- small file readers ---- */

long mgr__read_file(const char *root, const char *rel, char *buf, size_t size) {
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof path || size == 0) return -1;
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t got = fread(buf, 1, size - 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    if (err) return -1;
    buf[got] = '\0';
    return (long)got;
}

bool mgr__read_limit(const char *root, const char *rel, uint64_t *out) {
    char buf[64];
    if (mgr__read_file(root, rel, buf, sizeof buf) <= 0) return false;
    char *s = buf;
    while (isspace((unsigned char)*s)) s++;
    if (strncmp(s, "max", 3) == 0) {
        *out = ORION_NO_LIMIT;
        return true;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno) return false;
    /* v1 writes "no limit" as the largest page-aligned signed value */
    *out = v >= ((uint64_t)1 << 62) ? ORION_NO_LIMIT : (uint64_t)v;
    return true;
}

bool mgr__meminfo_get(const char *text, const char *key, uint64_t *out) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            char *end;
            unsigned long long v = strtoull(p + kl + 1, &end, 10);
            if (end == p + kl + 1) return false;
            while (*end == ' ') end++;
            *out = strncmp(end, "kB", 2) == 0 ? (uint64_t)v * 1024 : (uint64_t)v;
            return true;
        }
    }
    return false;
}

void mgr__psi_parse(const char *text, double *some_avg10, double *full_avg10) {
    *some_avg10 = -1;
    *full_avg10 = -1;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        double *dst = strncmp(p, "some ", 5) == 0 ? some_avg10 : strncmp(p, "full ", 5) == 0 ? full_avg10 : NULL;
        if (!dst) continue;
        const char *a = strstr(p, "avg10=");
        const char *nl = strchr(p, '\n');
        if (a && (!nl || a < nl)) *dst = strtod(a + 6, NULL);
    }
}

bool mgr__kv_get(const char *text, const char *key, uint64_t *out) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            *out = strtoull(p + kl + 1, NULL, 10);
            return true;
        }
    }
    return false;
}

static bool file_exists(const char *root, const char *rel) {
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s", root, rel);
    struct stat sb;
    return n > 0 && (size_t)n < sizeof path && stat(path, &sb) == 0;
}

/* The path of `controller` ("" = the v2 line) in PROC/self/cgroup. */
static bool cgroup_line(const char *text, const char *controller, char *path, size_t size) {
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *c1 = strchr(p, ':');
        const char *nl = strchr(p, '\n');
        if (!nl) nl = p + strlen(p);
        if (!c1 || c1 > nl) continue;
        const char *c2 = memchr(c1 + 1, ':', (size_t)(nl - c1 - 1));
        if (!c2) continue;
        bool match;
        if (!*controller) {
            match = c2 == c1 + 1 && strncmp(p, "0:", 2) == 0;
        } else {
            match = false;
            const char *s = c1 + 1;
            size_t cl = strlen(controller);
            while (s < c2) {
                const char *comma = memchr(s, ',', (size_t)(c2 - s));
                const char *e = comma ? comma : c2;
                if ((size_t)(e - s) == cl && strncmp(s, controller, cl) == 0) match = true;
                s = e + 1;
            }
        }
        if (!match) continue;
        size_t len = (size_t)(nl - c2 - 1);
        if (len + 1 > size) return false;
        memcpy(path, c2 + 1, len);
        path[len] = '\0';
        /* strip "/" so "fs/cgroup" + path joins cleanly */
        return true;
    }
    return false;
}

int mgr__cgroup_find(const char *proc_root, const char *sys_root, char *dir, size_t size) {
    char text[4096], path[400], rel[520];
    dir[0] = '\0';
    if (mgr__read_file(proc_root, "self/cgroup", text, sizeof text) < 0) return 0;
    if (cgroup_line(text, "", path, sizeof path)) {
        snprintf(rel, sizeof rel, "fs/cgroup%s%s/memory.max", path[0] == '/' ? "" : "/", path);
        if (strcmp(path, "/") != 0 && file_exists(sys_root, rel)) {
            snprintf(dir, size, "fs/cgroup%s%s", path[0] == '/' ? "" : "/", path);
            return 2;
        }
        if (file_exists(sys_root, "fs/cgroup/memory.max") || file_exists(sys_root, "fs/cgroup/memory.current")) {
            snprintf(dir, size, "fs/cgroup");
            return 2;
        }
    }
    if (cgroup_line(text, "memory", path, sizeof path)) {
        snprintf(rel, sizeof rel, "fs/cgroup/memory%s%s/memory.limit_in_bytes", path[0] == '/' ? "" : "/", path);
        if (strcmp(path, "/") != 0 && file_exists(sys_root, rel)) {
            snprintf(dir, size, "fs/cgroup/memory%s%s", path[0] == '/' ? "" : "/", path);
            return 1;
        }
        if (file_exists(sys_root, "fs/cgroup/memory/memory.limit_in_bytes")) {
            snprintf(dir, size, "fs/cgroup/memory");
            return 1;
        }
    }
    return 0;
}

/* ---- tiers ---- */

static const orion_tier DEFAULT_TIERS[] = {
    {"small", 2 * MGR_GIB, ORION_QLEVEL_Q4, 1, 60.0},
    {"medium", 4 * MGR_GIB, ORION_QLEVEL_Q4, 2, 300.0},
    {"large", 8 * MGR_GIB, ORION_QLEVEL_Q8, 3, 600.0},
    {"xlarge", ORION_NO_LIMIT, ORION_QLEVEL_F16, 5, -1.0},
};

int orion_tier_defaults(orion_tier *tiers, int n) {
    int count = (int)ORION_ARRAY_LEN(DEFAULT_TIERS);
    for (int i = 0; i < n && i < count; i++) tiers[i] = DEFAULT_TIERS[i];
    return count;
}

orion_tier orion_tier_for_budget(uint64_t budget) {
    for (size_t i = 0; i < ORION_ARRAY_LEN(DEFAULT_TIERS); i++)
        if (budget <= DEFAULT_TIERS[i].max_budget) return DEFAULT_TIERS[i];
    return DEFAULT_TIERS[ORION_ARRAY_LEN(DEFAULT_TIERS) - 1];
}

static const char *QLEVEL_NAMES[ORION_QLEVEL_COUNT] = {"q4", "q8", "f16", "f32"};

const char *orion_qlevel_name(orion_qlevel level) {
    return (unsigned)level < ORION_QLEVEL_COUNT ? QLEVEL_NAMES[level] : "?";
}

orion_status orion_qlevel_from_name(const char *name, orion_qlevel *out) {
    static const struct { const char *name; orion_qlevel level; } names[] = {
        {"q4", ORION_QLEVEL_Q4},   {"q4_0", ORION_QLEVEL_Q4}, {"q4_1", ORION_QLEVEL_Q4}, {"4bit", ORION_QLEVEL_Q4},
        {"q8", ORION_QLEVEL_Q8},   {"q8_0", ORION_QLEVEL_Q8}, {"8bit", ORION_QLEVEL_Q8}, {"f16", ORION_QLEVEL_F16},
        {"bf16", ORION_QLEVEL_F16}, {"f32", ORION_QLEVEL_F32},
    };
    for (size_t i = 0; name && i < ORION_ARRAY_LEN(names); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return ORION_OK;
        }
    }
    return orion__fail(ORION_ERR_INVALID_ARG, "unknown quantization level '%s' (q4, q8, f16, f32)",
                       name ? name : "(null)");
}

/* ---- the profile ---- */

orion_profile_params orion_profile_default_params(void) {
    orion_profile_params p;
    memset(&p, 0, sizeof p);
    p.proc_root = "/proc";
    p.sys_root = "/sys";
    p.use_sysinfo = true;
    return p;
}

static void cgroup_limits(const char *sys_root, int version, const char *dir, orion_device_profile *p) {
    char rel[600];
    p->cg_max = p->cg_high = ORION_NO_LIMIT;
    p->cg_current = 0;
    if (version == 2) {
        /* the smallest limit from this cgroup up to the root */
        char d[520];
        snprintf(d, sizeof d, "%s", dir);
        for (;;) {
            uint64_t v;
            snprintf(rel, sizeof rel, "%s/memory.max", d);
            if (mgr__read_limit(sys_root, rel, &v)) p->cg_max = ORION_MIN(p->cg_max, v);
            snprintf(rel, sizeof rel, "%s/memory.high", d);
            if (mgr__read_limit(sys_root, rel, &v)) p->cg_high = ORION_MIN(p->cg_high, v);
            if (strcmp(d, "fs/cgroup") == 0) break;
            char *slash = strrchr(d, '/');
            if (!slash) break;
            *slash = '\0';
        }
        snprintf(rel, sizeof rel, "%s/memory.current", dir);
        uint64_t cur;
        if (mgr__read_limit(sys_root, rel, &cur) && cur != ORION_NO_LIMIT) p->cg_current = cur;
    } else if (version == 1) {
        uint64_t v;
        snprintf(rel, sizeof rel, "%s/memory.limit_in_bytes", dir);
        if (mgr__read_limit(sys_root, rel, &v)) p->cg_max = v;
        snprintf(rel, sizeof rel, "%s/memory.usage_in_bytes", dir);
        if (mgr__read_limit(sys_root, rel, &v) && v != ORION_NO_LIMIT) p->cg_current = v;
    }
}

orion_status mgr__profile_read_raw(const orion_profile_params *params, orion_device_profile *out) {
    orion_profile_params d = orion_profile_default_params();
    const orion_profile_params *pp = params ? params : &d;
    const char *proc = pp->proc_root ? pp->proc_root : "/proc";
    const char *sys = pp->sys_root ? pp->sys_root : "/sys";
    memset(out, 0, sizeof *out);

    char text[8192];
    bool have_total = false;
    if (mgr__read_file(proc, "meminfo", text, sizeof text) > 0) {
        have_total = mgr__meminfo_get(text, "MemTotal", &out->mem_total);
        if (!mgr__meminfo_get(text, "MemAvailable", &out->mem_available)) {
            uint64_t fr = 0, ca = 0, bu = 0;
            mgr__meminfo_get(text, "MemFree", &fr);
            mgr__meminfo_get(text, "Cached", &ca);
            mgr__meminfo_get(text, "Buffers", &bu);
            out->mem_available = fr + ca + bu;
        }
    }
    if (!have_total) {
        struct sysinfo si;
        if (!pp->use_sysinfo || sysinfo(&si) != 0)
            return orion__fail(ORION_ERR_NOT_FOUND, "%s/meminfo: missing or without MemTotal", proc);
        out->mem_total = (uint64_t)si.totalram * si.mem_unit;
        out->mem_available = (uint64_t)(si.freeram + si.bufferram) * si.mem_unit;
        out->from_sysinfo = true;
    }

    out->cgroup_version = mgr__cgroup_find(proc, sys, out->cgroup_dir, sizeof out->cgroup_dir);
    cgroup_limits(sys, out->cgroup_version, out->cgroup_dir, out);

    out->n_cpus = orion_cpu_count();
    out->cpu_features = orion_cpu_features();

    uint64_t limit = ORION_MIN(out->cg_max, out->cg_high);
    out->budget = ORION_MIN(out->mem_total, limit);
    out->available = out->mem_available;
    if (limit != ORION_NO_LIMIT) {
        uint64_t room = limit > out->cg_current ? limit - out->cg_current : 0;
        out->available = ORION_MIN(out->available, room);
    }
    out->tier = orion_tier_for_budget(out->budget);
    return ORION_OK;
}

orion_status orion_profile_read(const orion_profile_params *params, orion_device_profile *out) {
    orion_status st = mgr__profile_read_raw(params, out);
    if (st != ORION_OK || !params || !params->config_path) return st;
    mgr_config cfg;
    if ((st = mgr__config_read(params->config_path, &cfg)) != ORION_OK) return st;
    mgr__config_apply(&cfg, out);
    mgr__config_free(&cfg);
    return ORION_OK;
}

/* ---- the config file ---- */

orion_pressure_thresholds mgr__default_thresholds(void) {
    orion_pressure_thresholds t;
    t.some_medium = 10.0;
    t.some_high = 30.0;
    t.full_high = 5.0;
    t.full_critical = 20.0;
    t.avail_medium = 0.25;
    t.avail_high = 0.10;
    t.avail_critical = 0.05;
    return t;
}

/* "3GiB", "512M", "2G", "1048576", or a number. */
static bool parse_bytes(const cJSON *v, uint64_t *out) {
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble < 0) return false;
        *out = (uint64_t)v->valuedouble;
        return true;
    }
    if (!cJSON_IsString(v)) return false;
    char *end;
    double x = strtod(v->valuestring, &end);
    if (end == v->valuestring || x < 0) return false;
    while (*end == ' ') end++;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1024.0; break;
    case 'M': mul = 1024.0 * 1024; break;
    case 'G': mul = 1024.0 * 1024 * 1024; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
    case 'B': case '\0': break;
    default: return false;
    }
    *out = (uint64_t)(x * mul);
    return true;
}

/* Seconds from a number or an Ollama duration string. */
static bool parse_seconds(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    return cJSON_IsString(v) && orion_keep_alive_parse(v->valuestring, out) == ORION_OK;
}

static bool parse_level(const cJSON *v, int *out) {
    orion_qlevel l = ORION_QLEVEL_Q4;
    if (!cJSON_IsString(v) || orion_qlevel_from_name(v->valuestring, &l) != ORION_OK) return false;
    *out = (int)l;
    return true;
}

orion_status orion_keep_alive_parse(const char *text, double *seconds) {
    if (!text || !seconds) return orion__fail(ORION_ERR_INVALID_ARG, "keep_alive: NULL argument");
    const char *s = text;
    while (isspace((unsigned char)*s)) s++;
    bool neg = *s == '-';
    if (neg || *s == '+') s++;
    if (!*s) return orion__fail(ORION_ERR_INVALID_ARG, "keep_alive '%s': empty", text);
    double total = 0;
    bool any_unit = false;
    while (*s) {
        char *end;
        double x = strtod(s, &end);
        if (end == s) return orion__fail(ORION_ERR_INVALID_ARG, "keep_alive '%s': expected a number", text);
        s = end;
        double mul;
        if (strncmp(s, "ms", 2) == 0) mul = 1e-3, s += 2;
        else if (strncmp(s, "us", 2) == 0) mul = 1e-6, s += 2;
        else if (*s == 'h') mul = 3600, s++;
        else if (*s == 'm') mul = 60, s++;
        else if (*s == 's') mul = 1, s++;
        else if (!*s && !any_unit) mul = 1; /* a bare number is seconds */
        else return orion__fail(ORION_ERR_INVALID_ARG, "keep_alive '%s': unknown unit", text);
        any_unit = true;
        total += x * mul;
        while (isspace((unsigned char)*s)) s++;
    }
    *seconds = neg ? -total : total;
    if (neg && total == 0) *seconds = 0;
    return ORION_OK;
}

orion_status mgr__config_read(const char *path, mgr_config *out) {
    memset(out, 0, sizeof *out);
    out->level = -1;
    out->thresholds = mgr__default_thresholds();
    char *text = NULL;
    size_t len = 0;
    orion_status st = orion__read_small_file(path, 1 << 20, &text, &len);
    if (st != ORION_OK) return st;
    cJSON *root = NULL;
    st = orion__json_parse(path, text, len, &root);
    orion__free(text);
    if (st != ORION_OK) return st;
    const char *bad = NULL;
    if (!cJSON_IsObject(root)) {
        bad = "(top level: expected an object)";
        goto done;
    }
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "budget")) && !parse_bytes(v, &out->budget)) bad = "budget";
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "level")) && !parse_level(v, &out->level)) bad = "level";
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "max_models"))) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1000) bad = "max_models";
        else out->max_models = (int)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "idle_unload"))) {
        if (!parse_seconds(v, &out->idle_unload_s)) bad = "idle_unload";
        out->has_idle = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "thresholds"))) {
        if (!cJSON_IsObject(v)) bad = "thresholds";
        static const char *keys[] = {"some_medium", "some_high", "full_high", "full_critical",
                                     "avail_medium", "avail_high", "avail_critical"};
        double *dst[] = {&out->thresholds.some_medium,  &out->thresholds.some_high,  &out->thresholds.full_high,
                         &out->thresholds.full_critical, &out->thresholds.avail_medium, &out->thresholds.avail_high,
                         &out->thresholds.avail_critical};
        for (size_t i = 0; i < ORION_ARRAY_LEN(keys); i++) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, keys[i]);
            if (!t) continue;
            if (!cJSON_IsNumber(t) || t->valuedouble < 0) bad = keys[i];
            else *dst[i] = t->valuedouble;
        }
        out->has_thresholds = true;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "models"))) {
        if (!cJSON_IsObject(v)) {
            bad = "models";
            goto done;
        }
        int n = cJSON_GetArraySize(v);
        out->models = orion__calloc(n > 0 ? (size_t)n : 1, sizeof *out->models);
        if (!out->models) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, v) {
            mgr_model_cfg *mc = &out->models[out->n_models++];
            snprintf(mc->id, sizeof mc->id, "%s", m->string);
            mc->level = -1;
            mc->keep_alive_s = ORION_KEEP_ALIVE_DEFAULT;
            if (!cJSON_IsObject(m)) {
                bad = "models.<id>";
                break;
            }
            const cJSON *f;
            if ((f = cJSON_GetObjectItemCaseSensitive(m, "level")) && !parse_level(f, &mc->level)) bad = "models.<id>.level";
            if ((f = cJSON_GetObjectItemCaseSensitive(m, "keep_alive")) && !parse_seconds(f, &mc->keep_alive_s))
                bad = "models.<id>.keep_alive";
            if ((f = cJSON_GetObjectItemCaseSensitive(m, "n_ctx"))) {
                if (!cJSON_IsNumber(f) || f->valuedouble < 1 || f->valuedouble > 1 << 24) bad = "models.<id>.n_ctx";
                else mc->n_ctx = (int)f->valuedouble;
            }
        }
    }
done:
    orion__json_free(root);
    if (bad && st == ORION_OK) st = orion__fail(ORION_ERR_FORMAT, "%s: bad value for '%s'", path, bad);
    if (st != ORION_OK) mgr__config_free(out);
    return st;
}

void mgr__config_free(mgr_config *cfg) {
    if (!cfg) return;
    orion__free(cfg->models);
    cfg->models = NULL;
    cfg->n_models = 0;
}

const mgr_model_cfg *mgr__config_model(const mgr_config *cfg, const char *id) {
    for (int i = 0; cfg && i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].id, id) == 0) return &cfg->models[i];
    return NULL;
}

void mgr__config_apply(const mgr_config *cfg, orion_device_profile *p) {
    if (cfg->budget) {
        p->budget = cfg->budget;
        p->tier = orion_tier_for_budget(p->budget);
    }
    if (cfg->level >= 0) p->tier.level = (orion_qlevel)cfg->level;
    if (cfg->max_models > 0) p->tier.max_models = cfg->max_models;
    if (cfg->has_idle) p->tier.idle_unload_s = cfg->idle_unload_s;
}
