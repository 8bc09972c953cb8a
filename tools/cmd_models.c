/*
 * cmd_models.c — `orion models`: the models of a registry with the memory
 * each needs per quantization level and the level this device's tier picks;
 * with --load ID, loads one through the manager (progress on a terminal),
 * prints its accounting and the process's RSS and PSS, unloads it and
 * prints them again (src/manager does the work).
 */
#include "cli.h"
#include "orion.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int usage(void) {
    fprintf(stderr,
            "usage: orion models REGISTRY.json [--config FILE] [--proc DIR] [--sys DIR]\n"
            "                   [--load ID [--lazy] [--level q4|q8|f16|f32]]\n"
            "  Lists the models and their memory need per level; --load loads one, shows its\n"
            "  memory (mapped, resident, heap, KV; process RSS/PSS), unloads it and shows them again.\n");
    return 2;
}

static double mib(uint64_t b) { return (double)b / 1048576.0; }

static void on_progress(uint64_t done, uint64_t total, void *user) {
    (void)user;
    if (!isatty(2)) return;
    fprintf(stderr, "\rloading %5.1f / %.1f MiB", mib(done), mib(total));
    if (done == total) fputc('\n', stderr);
}

static void on_event(const orion_manager_event *e, void *user) {
    (void)user;
    if (e->type == ORION_EVENT_LOAD_PROGRESS) return;
    fprintf(stderr, "event: %-14s %-12s %s %.1f MiB%s%s\n", orion_manager_event_name(e->type),
            e->model ? e->model : "-", orion_qlevel_name(e->level), mib(e->bytes),
            e->type == ORION_EVENT_UNLOADED ? " reason " : "",
            e->type == ORION_EVENT_UNLOADED ? orion_unload_reason_name(e->reason) : "");
}

static void print_process(const char *when) {
    orion_process_memory pm;
    if (orion_process_memory_read(NULL, &pm) == ORION_OK)
        printf("process %-13s RSS %.1f MiB, PSS %.1f MiB (file %.1f, anon %.1f)\n", when, mib(pm.rss), mib(pm.pss),
               mib(pm.pss_file), mib(pm.pss_anon));
}

int orion_cli_models(int argc, char **argv) {
    orion_manager_params mp = orion_manager_default_params();
    const char *registry = NULL, *load = NULL;
    orion_acquire_params ap = orion_acquire_default_params();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 && i + 1 < argc) mp.profile.config_path = argv[++i];
        else if (strcmp(a, "--proc") == 0 && i + 1 < argc) mp.profile.proc_root = argv[++i];
        else if (strcmp(a, "--sys") == 0 && i + 1 < argc) mp.profile.sys_root = argv[++i];
        else if (strcmp(a, "--load") == 0 && i + 1 < argc) load = argv[++i];
        else if (strcmp(a, "--lazy") == 0) ap.lazy = true;
        else if (strcmp(a, "--level") == 0 && i + 1 < argc) {
            orion_qlevel l;
            if (orion_qlevel_from_name(argv[++i], &l) != ORION_OK) return usage();
            ap.level = (int)l;
        } else if (a[0] != '-' && !registry) registry = a;
        else return usage();
    }
    if (!registry) return usage();
    mp.registry_path = registry;
    mp.monitor = false;
    orion_manager *mgr = NULL;
    if (orion_manager_init(&mp, &mgr) != ORION_OK) {
        fprintf(stderr, "orion models: %s\n", orion_last_error());
        return 1;
    }
    orion_device_profile p;
    orion_manager_profile(mgr, &p);
    printf("budget %.1f MiB, tier %s: %s, %d models, pressure %s\n", mib(p.budget), p.tier.name,
           orion_qlevel_name(p.tier.level), p.tier.max_models, orion_pressure_name(orion_manager_pressure(mgr)));
    printf("%-20s %12s %12s %12s %12s   (need in MiB: weights + KV + scratch + image encoder)\n", "model", "q4", "q8",
           "f16", "f32");
    for (int i = 0; orion_manager_model_id(mgr, i); i++) {
        const char *id = orion_manager_model_id(mgr, i);
        printf("%-20s", id);
        for (int l = 0; l < ORION_QLEVEL_COUNT; l++) {
            orion_model_need nd;
            orion_status st = orion_manager_model_need(mgr, id, (orion_qlevel)l, &nd);
            if (st == ORION_OK) printf(" %11.1f%s", mib(nd.total), l == (int)p.tier.level ? "*" : " ");
            else if (st == ORION_ERR_NOT_FOUND) printf(" %12s", "-");
            else printf(" %12s", "error");
        }
        printf("\n");
    }
    int rc = 0;
    if (load) {
        orion_manager_subscribe(mgr, on_event, NULL);
        ap.on_progress = on_progress;
        ap.keep_alive_s = -1;
        print_process("before load");
        orion_model_lease *lease = NULL;
        if (orion_manager_acquire(mgr, load, &ap, &lease) != ORION_OK) {
            fprintf(stderr, "orion models: %s\n", orion_last_error());
            rc = 1;
        } else {
            orion_model_status s;
            if (orion_manager_status(mgr, &s, 1) >= 1) {
                printf("%s at %s: mapped %.1f MiB, resident %.1f MiB, heap %.1f MiB, KV %.1f MiB, need %.1f MiB",
                       s.id, orion_qlevel_name(s.level), mib(s.mapped), mib(s.resident), mib(s.heap), mib(s.kv),
                       mib(s.need));
                if (s.encoder) printf(" (image encoder: %.1f MiB of mapped + heap)", mib(s.encoder));
                printf("\n");
            }
            print_process("loaded");
            orion_manager_release(mgr, lease);
            if (orion_manager_unload(mgr, load) != ORION_OK) fprintf(stderr, "orion models: %s\n", orion_last_error());
            print_process("after unload");
        }
    }
    orion_manager_free(mgr);
    return rc;
}
