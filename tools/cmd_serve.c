/*
 * cmd_serve.c — `orion serve`: runs the model server until SIGTERM or
 * SIGINT, then drains in-flight requests, writes the cache snapshot and
 * exits 0. The signals are blocked before any thread starts and taken with
 * sigwait, so no handler runs inside library code.
 */
#include "cli.h"
#include "orion.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: orion serve [--host 127.0.0.1] [--port 11435] [--socket PATH] [--model ID=PATH ...]\n"
            "                   [--registry FILE] [--config FILE] [--api-key KEY] [--threads N] [--lazy] [--no-prefault] [-v]\n"
            "  models:   held by the model manager, which loads them on first use (or at start without\n"
            "            --lazy) and unloads idle ones (Ollama keep_alive, the tier's idle delay, LRU,\n"
            "            memory pressure). --model ID=PATH: a GGUF file (encoder or decoder);\n"
            "            --registry FILE: a JSON registry of models with a file per level (docs/manager.md);\n"
            "            --config FILE: the manager's config (budget, level, idle unload, thresholds).\n"
            "  generation: [--gen-slots N (2)] [--gen-ctx N]\n"
            "  images:   [--mmproj ID=PROJ ...] a LLaVA projector (llama.cpp mmproj GGUF) for --model ID, loaded\n"
            "            and unloaded with it (registry models: \"mmproj\" in the entry); then chat requests may\n"
            "            carry images (OpenAI image_url data: URLs, Ollama \"images\"). [--max-images N (8)]\n"
            "            [--max-image-bytes BYTES (20 MiB)] [--allow-remote-images: fetch http(s) image URLs]\n"
            "            [--image-timeout-ms MS (10000)]\n"
            "  limits:   [--max-body BYTES] [--max-inputs N] [--max-tokens N] [--no-truncate] [--max-queue N]\n"
            "  batching: [--no-batching] [--batch-tokens N] [--batch-wait-us US]\n"
            "  cache:    [--cache-mb N (0: off; default min(256, budget/32 MiB))] [--cache-entries N]\n"
            "            [--cache-policy wtinylfu|lru|score]\n"
            "            [--cache-file PATH (zstd snapshot read at start, written at exit)]\n"
            "  GET /events streams the manager's events (loads, progress, unloads, pressure) as SSE.\n"
            "  --port 0 picks a free port; the address is printed on stdout as 'listening on ...'.\n"
            "  --host '' serves on the socket only. Default model (no --model, no --registry):\n"
            "  use-lite=models/use-lite.gguf. A model path hash:DIM[:DELAY_US] is the built-in test model.\n");
}

#define MAX_MODELS 16

int orion_cli_serve(int argc, char **argv) {
    orion_server_params p = orion_server_default_params();
    orion_server_model models[MAX_MODELS];
    char *specs[MAX_MODELS];
    orion_server_model projs[MAX_MODELS]; /* --mmproj ID=PROJ: {model id, projector} */
    char *proj_specs[MAX_MODELS];
    int n_models = 0, n_projs = 0;
    bool verbose = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE                                                  \
    do {                                                            \
        if (!v) {                                                   \
            fprintf(stderr, "orion serve: %s needs a value\n", a);  \
            return 2;                                               \
        }                                                           \
        i++;                                                        \
    } while (0)
        if (strcmp(a, "--host") == 0) { NEED_VALUE; p.host = v; }
        else if (strcmp(a, "--port") == 0) { NEED_VALUE; p.port = atoi(v); }
        else if (strcmp(a, "--socket") == 0) { NEED_VALUE; p.socket_path = v; }
        else if (strcmp(a, "--api-key") == 0) { NEED_VALUE; p.api_key = v; }
        else if (strcmp(a, "--threads") == 0) { NEED_VALUE; p.n_threads = atoi(v); }
        else if (strcmp(a, "--lazy") == 0) p.load_eagerly = false;
        else if (strcmp(a, "--no-prefault") == 0) p.prefault = false;
        else if (strcmp(a, "--registry") == 0) { NEED_VALUE; p.registry_path = v; }
        else if (strcmp(a, "--config") == 0) { NEED_VALUE; p.config_path = v; }
        else if (strcmp(a, "--gen-slots") == 0) { NEED_VALUE; p.gen_slots = atoi(v); }
        else if (strcmp(a, "--gen-ctx") == 0) { NEED_VALUE; p.gen_ctx = atoi(v); }
        else if (strcmp(a, "--max-images") == 0) { NEED_VALUE; p.max_images = atoi(v); }
        else if (strcmp(a, "--max-image-bytes") == 0) { NEED_VALUE; p.max_image_bytes = strtoull(v, NULL, 10); }
        else if (strcmp(a, "--image-timeout-ms") == 0) { NEED_VALUE; p.image_timeout_ms = atoi(v); }
        else if (strcmp(a, "--allow-remote-images") == 0) p.allow_remote_images = true;
        else if (strcmp(a, "--mmproj") == 0) {
            NEED_VALUE;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1] || n_projs == MAX_MODELS) {
                fprintf(stderr, "orion serve: --mmproj wants ID=PROJ (at most %d)\n", MAX_MODELS);
                return 2;
            }
            proj_specs[n_projs] = strdup(v);
            if (!proj_specs[n_projs]) return 1;
            proj_specs[n_projs][eq - v] = 0;
            projs[n_projs].id = proj_specs[n_projs];
            projs[n_projs].path = proj_specs[n_projs] + (eq - v) + 1;
            n_projs++;
        }
        else if (strcmp(a, "--max-body") == 0) { NEED_VALUE; p.max_body = strtoull(v, NULL, 10); }
        else if (strcmp(a, "--max-inputs") == 0) { NEED_VALUE; p.max_inputs = atoi(v); }
        else if (strcmp(a, "--max-tokens") == 0) { NEED_VALUE; p.max_tokens = atoi(v); }
        else if (strcmp(a, "--no-truncate") == 0) p.truncate = false;
        else if (strcmp(a, "--max-queue") == 0) { NEED_VALUE; p.max_queue = atoi(v); }
        else if (strcmp(a, "--no-batching") == 0) p.batching = false;
        else if (strcmp(a, "--batch-tokens") == 0) { NEED_VALUE; p.batch_tokens = atoi(v); }
        else if (strcmp(a, "--batch-wait-us") == 0) { NEED_VALUE; p.batch_wait_us = atoi(v); }
        else if (strcmp(a, "--cache-mb") == 0) { NEED_VALUE; p.cache_bytes = (size_t)(atof(v) * 1048576.0); }
        else if (strcmp(a, "--cache-entries") == 0) { NEED_VALUE; p.cache_entries = strtoull(v, NULL, 10); }
        else if (strcmp(a, "--cache-file") == 0) { NEED_VALUE; p.cache_path = v; }
        else if (strcmp(a, "--cache-policy") == 0) {
            NEED_VALUE;
            if (orion_cache_policy_from_name(v, &p.cache_policy) != ORION_OK) {
                fprintf(stderr, "orion serve: %s\n", orion_last_error());
                return 2;
            }
        } else if (strcmp(a, "--model") == 0) {
            NEED_VALUE;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1] || n_models == MAX_MODELS) {
                fprintf(stderr, "orion serve: --model wants ID=PATH (at most %d)\n", MAX_MODELS);
                return 2;
            }
            specs[n_models] = strdup(v);
            if (!specs[n_models]) return 1;
            specs[n_models][eq - v] = 0;
            models[n_models].id = specs[n_models];
            models[n_models].path = specs[n_models] + (eq - v) + 1;
            n_models++;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) verbose = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "orion serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
#undef NEED_VALUE
    }
    int rc = 0;
    if (n_models == 0 && !p.registry_path) {
        models[0].id = "use-lite";
        models[0].path = "models/use-lite.gguf";
        specs[0] = NULL;
        n_models = 1;
    }
    p.models = models;
    p.n_models = n_models;
    p.projectors = projs;
    p.n_projectors = n_projs;
    orion_log_set(orion_log_to_stderr, verbose ? ORION_LOG_DEBUG : ORION_LOG_INFO, NULL);

    /* Block the stop signals in every thread; this one takes them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    orion_server *srv = NULL;
    orion_status st = orion_server_start(&p, &srv);
    if (st != ORION_OK) {
        fprintf(stderr, "orion serve: %s\n", orion_last_error());
        rc = 1;
        goto done;
    }
    if (orion_server_port(srv) >= 0) printf("listening on http://%s:%d\n", p.host, orion_server_port(srv));
    if (p.socket_path) printf("listening on unix:%s\n", p.socket_path);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "orion serve: %s: draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    st = orion_server_stop(srv, 30000);
    if (st != ORION_OK) fprintf(stderr, "orion serve: %s\n", orion_last_error());
    orion_server_free(srv);
done:
    for (int i = 0; i < n_models; i++) free(specs[i]);
    for (int i = 0; i < n_projs; i++) free(proj_specs[i]);
    return rc;
}
