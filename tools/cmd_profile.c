/*
 * cmd_profile.c — `orion profile`: the device (memory, cgroup limits, CPUs),
 * the memory budget, the policy tier with the config's overrides, and the
 * current memory pressure, as text or JSON (src/manager does the work).
 */
#include "cli.h"
#include "orion.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: orion profile [--json] [--config FILE] [--proc DIR] [--sys DIR]\n");
    return 2;
}

static void print_limit(FILE *f, uint64_t v, bool json) {
    if (v == ORION_NO_LIMIT) fputs(json ? "null" : "max", f);
    else if (json) fprintf(f, "%" PRIu64, v);
    else fprintf(f, "%.1f MiB", (double)v / 1048576.0);
}

int orion_cli_profile(int argc, char **argv) {
    bool json = false;
    orion_profile_params pp = orion_profile_default_params();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) json = true;
        else if (strcmp(a, "--config") == 0 && i + 1 < argc) pp.config_path = argv[++i];
        else if (strcmp(a, "--proc") == 0 && i + 1 < argc) pp.proc_root = argv[++i];
        else if (strcmp(a, "--sys") == 0 && i + 1 < argc) pp.sys_root = argv[++i];
        else return usage();
    }
    orion_device_profile p;
    if (orion_profile_read(&pp, &p) != ORION_OK) {
        fprintf(stderr, "orion profile: %s\n", orion_last_error());
        return 1;
    }
    orion_pressure_params mp = orion_pressure_default_params();
    mp.proc_root = pp.proc_root;
    mp.sys_root = pp.sys_root;
    mp.budget = p.budget;
    orion_pressure_monitor *mon = NULL;
    orion_pressure_sample s;
    memset(&s, 0, sizeof s);
    if (orion_pressure_monitor_init(&mp, &mon) == ORION_OK) orion_pressure_monitor_poll(mon, &s);
    orion_pressure_monitor_free(mon);
    char feats[256];
    orion_cpu_features_str(p.cpu_features, feats, sizeof feats);
    if (json) {
        printf("{\"memory\": {\"total\": %" PRIu64 ", \"available\": %" PRIu64 ", \"source\": \"%s\"},\n", p.mem_total,
               p.mem_available, p.from_sysinfo ? "sysinfo" : "meminfo");
        printf(" \"cgroup\": {\"version\": %d, \"dir\": \"%s\", \"max\": ", p.cgroup_version, p.cgroup_dir);
        print_limit(stdout, p.cg_max, true);
        printf(", \"high\": ");
        print_limit(stdout, p.cg_high, true);
        printf(", \"current\": %" PRIu64 "},\n", p.cg_current);
        printf(" \"cpu\": {\"count\": %d, \"features\": \"%s\"},\n", p.n_cpus, feats);
        printf(" \"budget\": %" PRIu64 ", \"available\": %" PRIu64 ",\n", p.budget, p.available);
        printf(" \"tier\": {\"name\": \"%s\", \"level\": \"%s\", \"max_models\": %d, \"idle_unload_s\": %g},\n",
               p.tier.name, orion_qlevel_name(p.tier.level), p.tier.max_models, p.tier.idle_unload_s);
        printf(" \"pressure\": {\"level\": \"%s\", \"some_avg10\": %.2f, \"full_avg10\": %.2f, \"avail_share\": %.4f}}\n",
               orion_pressure_name(s.level), s.some_avg10, s.full_avg10, s.avail_share);
        return 0;
    }
    printf("memory:    total %.1f MiB, available %.1f MiB (%s)\n", (double)p.mem_total / 1048576.0,
           (double)p.mem_available / 1048576.0, p.from_sysinfo ? "sysinfo" : "meminfo");
    if (p.cgroup_version) {
        printf("cgroup:    v%d %s: max ", p.cgroup_version, p.cgroup_dir);
        print_limit(stdout, p.cg_max, false);
        printf(", high ");
        print_limit(stdout, p.cg_high, false);
        printf(", current %.1f MiB\n", (double)p.cg_current / 1048576.0);
    } else {
        printf("cgroup:    none found\n");
    }
    printf("cpus:      %d (%s)\n", p.n_cpus, feats);
    printf("budget:    %.1f MiB (available %.1f MiB)\n", (double)p.budget / 1048576.0, (double)p.available / 1048576.0);
    printf("tier:      %s: %s, %d model%s, ", p.tier.name, orion_qlevel_name(p.tier.level), p.tier.max_models,
           p.tier.max_models == 1 ? "" : "s");
    if (p.tier.idle_unload_s < 0) printf("never unload when idle\n");
    else printf("unload after %g s idle\n", p.tier.idle_unload_s);
    printf("pressure:  %s (psi some %.2f full %.2f avg10, available %.1f%% of budget)\n", orion_pressure_name(s.level),
           s.some_avg10, s.full_avg10, s.avail_share * 100.0);
    return 0;
}
