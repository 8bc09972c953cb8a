/*
 * manager_internal.h — helpers shared by the files of the manager layer:
 * reading small text files under an injectable root, the config file, and
 * the cgroup lookup. Internal to src/manager.
 */
#ifndef ORION_MANAGER_INTERNAL_H
#define ORION_MANAGER_INTERNAL_H

#include "core/core.h"

#include <cjson/cJSON.h>

#define MGR_GIB ((uint64_t)1 << 30)

/* Reads ROOT/REL (at most size-1 bytes, NUL-terminated). Returns the length,
 * or -1 when the file cannot be read. */
long mgr__read_file(const char *root, const char *rel, char *buf, size_t size);
/* Reads a number or "max" (ORION_NO_LIMIT) from ROOT/REL. false if absent. */
bool mgr__read_limit(const char *root, const char *rel, uint64_t *out);
/* Value in bytes of "Key:  123 kB" in a meminfo-style text; false if absent. */
bool mgr__meminfo_get(const char *text, const char *key, uint64_t *out);
/* Parses "some avg10=1.00 ..." / "full avg10=..." lines; -1 when absent. */
void mgr__psi_parse(const char *text, double *some_avg10, double *full_avg10);
/* Value of "key N" lines (memory.events, memory.stat); false if absent. */
bool mgr__kv_get(const char *text, const char *key, uint64_t *out);

/* The cgroup directory of this process relative to sys_root ("fs/cgroup/..."),
 * and its version (0 none). */
int  mgr__cgroup_find(const char *proc_root, const char *sys_root, char *dir, size_t size);

/* Overrides from a config file (docs/manager.md). */
typedef struct mgr_model_cfg {
    char   id[64];
    int    level;          /* -1 = unset */
    double keep_alive_s;   /* ORION_KEEP_ALIVE_DEFAULT = unset */
    int    n_ctx;          /* 0 = unset */
} mgr_model_cfg;

typedef struct mgr_config {
    uint64_t budget;        /* 0 = unset */
    int      level;         /* -1 = unset */
    int      max_models;    /* 0 = unset */
    bool     has_idle;
    double   idle_unload_s;
    bool     has_thresholds;
    orion_pressure_thresholds thresholds;
    mgr_model_cfg *models;
    int            n_models;
} mgr_config;

orion_status mgr__config_read(const char *path, mgr_config *out);
void         mgr__config_free(mgr_config *cfg);
const mgr_model_cfg *mgr__config_model(const mgr_config *cfg, const char *id);
/* Applies the global overrides to the profile (budget, tier fields). */
void         mgr__config_apply(const mgr_config *cfg, orion_device_profile *p);
/* Reads the device without a config. */
orion_status mgr__profile_read_raw(const orion_profile_params *params, orion_device_profile *out);

orion_pressure_thresholds mgr__default_thresholds(void);

#endif
