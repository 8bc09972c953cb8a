/*
 * cmd_ps.c — `orion ps [--server URL|SOCKET] [--api-key KEY]`: the models a
 * running `orion serve` holds, as `ollama ps` prints them, from GET /api/ps:
 *
 *   NAME       SIZE       RESIDENT   PROCESSOR   UNTIL
 *   stories    1.4 MiB    1.1 MiB    100% CPU    4 minutes from now
 *
 * SIZE is the manager's computed need (weights, KV cache, scratch), or the
 * file's size for a model outside the manager; RESIDENT the bytes in memory
 * now (file pages resident plus the load's heap); UNTIL when the idle
 * unload comes ("Forever" when never, "in use" while requests hold it).
 */
#include "cli.h"
#include "orion.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: orion ps [--server URL|SOCKET (http://127.0.0.1:11435)] [--api-key KEY]\n"
               "  the models loaded in a running orion serve (GET /api/ps)\n");
}

static void human(double b, char *out, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024.0 && i < 4) {
        b /= 1024.0;
        i++;
    }
    snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void until(double s, int refs, char *out, size_t n) {
    if (s < 0) snprintf(out, n, "%s", refs > 0 ? "in use" : "Forever");
    else if (s < 90) snprintf(out, n, "%.0f seconds from now", s);
    else if (s < 5400) snprintf(out, n, "%.0f minutes from now", s / 60.0);
    else snprintf(out, n, "%.1f hours from now", s / 3600.0);
}

static double num(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int orion_cli_ps(int argc, char **argv) {
    const char *server = "http://127.0.0.1:11435", *key = NULL;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--server") == 0 || strcmp(argv[i], "--api-key") == 0) && i + 1 < argc) {
            if (argv[i][2] == 's') server = argv[++i];
            else key = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "orion ps: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    orion_client *c = NULL;
    if (orion_client_connect(server, key, &c) != ORION_OK) {
        fprintf(stderr, "orion ps: %s\n", orion_last_error());
        return 1;
    }
    int code = 0;
    const char *body = NULL;
    size_t len = 0;
    int rc = 1;
    if (orion_client_get(c, "/api/ps", &code, &body, &len) != ORION_OK) {
        fprintf(stderr, "orion ps: %s: %s\n", server, orion_last_error());
        goto done;
    }
    if (code != 200) {
        fprintf(stderr, "orion ps: %s: HTTP %d: %.300s\n", server, code, body ? body : "");
        goto done;
    }
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *models = j ? cJSON_GetObjectItemCaseSensitive(j, "models") : NULL;
    if (!cJSON_IsArray(models)) {
        fprintf(stderr, "orion ps: %s: not an /api/ps reply\n", server);
        cJSON_Delete(j);
        goto done;
    }
    printf("%-24s %-11s %-11s %-11s %s\n", "NAME", "SIZE", "RESIDENT", "PROCESSOR", "UNTIL");
    const cJSON *m;
    cJSON_ArrayForEach(m, models) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        char size[32], res[32], when[48];
        double need = num(m, "need_bytes", 0);
        human(need > 0 ? need : num(m, "size", 0), size, sizeof size);
        human(num(m, "resident_bytes", 0), res, sizeof res);
        until(num(m, "expires_in", -1), (int)num(m, "refs", 0), when, sizeof when);
        printf("%-24s %-11s %-11s %-11s %s\n", cJSON_IsString(name) ? name->valuestring : "?", size, res, "100% CPU",
               when);
    }
    cJSON_Delete(j);
    rc = 0;
done:
    orion_client_free(c);
    return rc;
}
