/*
 * cmd_top.c — `orion top [--server URL|SOCKET] [--interval S] [--once]
 * [--api-key KEY]`: a compact text view of a running `orion serve`,
 * refreshed every S seconds (2): memory (process RSS, budget and tier,
 * pressure), the loaded models, the embedding cache and the requests (rate
 * and p50 / p99 latency per endpoint over the last interval; with --once,
 * totals and latency since the server started).
 *
 * Sources: GET /api/profile (budget, tier, pressure; the dashboard's),
 * GET /api/ps (models), GET /metrics (RSS, cache, request counters and
 * latency histograms), the same the web dashboard reads (docs/dashboard.md).
 */
#include "cli.h"
#include "orion.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_EP 32
#define MAX_LE 24

typedef struct ep_stat {
    char   name[64];
    double total;
    int    n_le;
    double le[MAX_LE], cum[MAX_LE];  /* cumulative histogram, bounds ascending (+Inf last) */
} ep_stat;

typedef struct snapshot {
    ep_stat ep[MAX_EP];
    int     n_ep;
    double  rss, budget, pressure;
    double  cache_entries, cache_bytes, cache_hits, cache_misses, cache_evictions;
    bool    have_cache;
} snapshot;

static void usage(FILE *f) {
    fprintf(f, "usage: orion top [--server URL|SOCKET (http://127.0.0.1:11435)] [--interval S (2)] [--once]\n"
               "                 [--api-key KEY]\n"
               "  memory, pressure, loaded models, cache and request rates of a running orion serve\n");
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

static void dur(double s, char *out, size_t n) {
    if (s < 0) snprintf(out, n, "never");
    else if (s < 90) snprintf(out, n, "%.0f s", s);
    else if (s < 5400) snprintf(out, n, "%.0f min", s / 60.0);
    else snprintf(out, n, "%.1f h", s / 3600.0);
}

static ep_stat *ep_get(snapshot *s, const char *name) {
    for (int i = 0; i < s->n_ep; i++)
        if (strcmp(s->ep[i].name, name) == 0) return &s->ep[i];
    if (s->n_ep == MAX_EP) return NULL;
    ep_stat *e = &s->ep[s->n_ep++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

/* The value of label `key` in `labels` (the text between { and }). */
static bool label(const char *labels, const char *key, char *out, size_t n) {
    char pat[40];
    snprintf(pat, sizeof pat, "%s=\"", key);
    const char *p = strstr(labels, pat);
    if (!p) return false;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= n) return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return true;
}

/* Reads the Prometheus text: the gauges and counters we show. */
static void parse_metrics(char *text, snapshot *s) {
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *sp = strrchr(line, ' ');
        if (!sp) continue;
        double v = strtod(sp + 1, NULL);
        *sp = 0;
        char *br = strchr(line, '{');
        const char *labels = "";
        if (br) {
            *br = 0;
            labels = br + 1;
        }
        char ep[64], le[32];
        if (strcmp(line, "orion_process_resident_bytes") == 0) s->rss = v;
        else if (strcmp(line, "orion_memory_budget_bytes") == 0) s->budget = v;
        else if (strcmp(line, "orion_memory_pressure_level") == 0) s->pressure = v;
        else if (strcmp(line, "orion_cache_entries") == 0) s->cache_entries = v, s->have_cache = true;
        else if (strcmp(line, "orion_cache_bytes") == 0) s->cache_bytes = v;
        else if (strcmp(line, "orion_cache_hits_total") == 0) s->cache_hits = v;
        else if (strcmp(line, "orion_cache_misses_total") == 0) s->cache_misses = v;
        else if (strcmp(line, "orion_cache_evictions_total") == 0) s->cache_evictions = v;
        else if (strcmp(line, "orion_requests_total") == 0 && label(labels, "endpoint", ep, sizeof ep)) {
            ep_stat *e = ep_get(s, ep);
            if (e) e->total += v;
        } else if (strcmp(line, "orion_request_duration_seconds_bucket") == 0 &&
                   label(labels, "endpoint", ep, sizeof ep) && label(labels, "le", le, sizeof le)) {
            ep_stat *e = ep_get(s, ep);
            if (e && e->n_le < MAX_LE) {
                e->le[e->n_le] = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
                e->cum[e->n_le++] = v;
            }
        }
    }
}

/* The q-quantile of (cum - base) over the bounds, linear inside a bucket;
 * NAN without observations. */
static double quantile(const ep_stat *e, const ep_stat *base, double q) {
    double total = e->n_le ? e->cum[e->n_le - 1] - (base ? base->cum[e->n_le - 1] : 0) : 0;
    if (total <= 0) return NAN;
    double want = q * total, prev_le = 0, prev_n = 0;
    for (int i = 0; i < e->n_le; i++) {
        double n = e->cum[i] - (base ? base->cum[i] : 0);
        if (n >= want) {
            if (isinf(e->le[i])) return prev_le;
            double f = n > prev_n ? (want - prev_n) / (n - prev_n) : 1;
            return prev_le + (e->le[i] - prev_le) * f;
        }
        prev_le = e->le[i];
        prev_n = n;
    }
    return prev_le;
}

static int get(orion_client *c, const char *path, char **out) {
    int code = 0;
    const char *body = NULL;
    size_t len = 0;
    *out = NULL;
    if (orion_client_get(c, path, &code, &body, &len) != ORION_OK) return -1;
    if (code == 200) {
        *out = malloc(len + 1);
        if (!*out) return -1;
        memcpy(*out, body, len);
        (*out)[len] = 0;
    }
    return code;
}

static double num(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* One screen. prev (may be NULL) is the snapshot of `dt` seconds ago. */
static int show(orion_client *c, const char *server, snapshot *cur, const snapshot *prev, double dt) {
    static const char *const LEVELS[] = {"low", "medium", "high", "critical"};
    char *metrics = NULL, *ps = NULL, *profile = NULL;
    int code = get(c, "/metrics", &metrics);
    if (code != 200) {
        fprintf(stderr, "orion top: %s: %s\n", server, code < 0 ? orion_last_error() : "GET /metrics failed");
        free(metrics);
        return 1;
    }
    memset(cur, 0, sizeof *cur);
    parse_metrics(metrics, cur);
    free(metrics);
    get(c, "/api/ps", &ps);
    get(c, "/api/profile", &profile); /* absent on servers without the dashboard */
    cJSON *pj = profile ? cJSON_Parse(profile) : NULL, *sj = ps ? cJSON_Parse(ps) : NULL;
    free(profile);
    free(ps);

    char a[32], b[32], t[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(t, sizeof t, "%H:%M:%S", &tm);
    printf("orion top — %s — %s\n\n", server, t);
    human(cur->rss, a, sizeof a);
    human(cur->budget, b, sizeof b);
    int lvl = (int)cur->pressure;
    printf("memory    rss %s   budget %s", a, b);
    const cJSON *tier = pj ? cJSON_GetObjectItemCaseSensitive(pj, "tier") : NULL;
    if (tier) {
        char idle[32];
        dur(num(tier, "idle_unload_s", -1), idle, sizeof idle);
        printf(" (tier %s: %s, %d models, idle unload %s)", str(tier, "name"), str(tier, "level"),
               (int)num(tier, "max_models", 0), idle);
    }
    printf("   pressure %s\n", lvl >= 0 && lvl < 4 ? LEVELS[lvl] : "?");

    printf("\n%-20s %-6s %-10s %-10s %-6s %s\n", "MODEL", "LEVEL", "RESIDENT", "MAPPED", "USERS", "UNLOAD IN");
    const cJSON *models = sj ? cJSON_GetObjectItemCaseSensitive(sj, "models") : NULL, *m;
    int shown = 0;
    cJSON_ArrayForEach(m, models) {
        char idle[32];
        double e = num(m, "expires_in", -1);
        int refs = (int)num(m, "refs", 0);
        if (e < 0 && refs > 0) snprintf(idle, sizeof idle, "in use");
        else dur(e, idle, sizeof idle);
        human(num(m, "resident_bytes", 0), a, sizeof a);
        human(num(m, "mapped_bytes", 0), b, sizeof b);
        printf("%-20s %-6s %-10s %-10s %-6d %s\n", str(m, "name"), *str(m, "level") ? str(m, "level") : "-", a, b, refs,
               idle);
        shown++;
    }
    if (!shown) printf("(no model loaded)\n");
    cJSON_Delete(pj);
    cJSON_Delete(sj);

    if (cur->have_cache) {
        human(cur->cache_bytes, a, sizeof a);
        double acc = cur->cache_hits + cur->cache_misses;
        char rate[32] = "-";
        if (acc > 0) snprintf(rate, sizeof rate, "%.1f%%", 100.0 * cur->cache_hits / acc);
        printf("\ncache     %.0f entries   %s   hit rate %s   evictions %.0f\n", cur->cache_entries, a, rate,
               cur->cache_evictions);
    } else {
        printf("\ncache     off\n");
    }

    printf("\n%-22s %10s %10s %10s %10s\n", "ENDPOINT", "REQ/S", "P50 MS", "P99 MS", "TOTAL");
    for (int i = 0; i < cur->n_ep; i++) {
        const ep_stat *e = &cur->ep[i];
        if (e->total <= 0 || strcmp(e->name, "/events") == 0) continue;
        const ep_stat *o = NULL;
        for (int k = 0; prev && k < prev->n_ep; k++)
            if (strcmp(prev->ep[k].name, e->name) == 0 && prev->ep[k].n_le == e->n_le) o = &prev->ep[k];
        double p50 = quantile(e, o, 0.5), p99 = quantile(e, o, 0.99);
        if (isnan(p50)) { /* nothing in the interval: since the start */
            p50 = quantile(e, NULL, 0.5);
            p99 = quantile(e, NULL, 0.99);
        }
        char rate[32] = "-"; /* one screen: no interval to divide by */
        if (prev && dt > 0) snprintf(rate, sizeof rate, "%.2f", (e->total - (o ? o->total : 0)) / dt);
        printf("%-22s %10s %10.2f %10.2f %10.0f\n", e->name, rate, p50 * 1000.0, p99 * 1000.0, e->total);
    }
    fflush(stdout);
    return 0;
}

int orion_cli_top(int argc, char **argv) {
    const char *server = "http://127.0.0.1:11435", *key = NULL;
    double interval = 2.0;
    bool once = false;
    for (int i = 0; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--server") == 0 && v) server = argv[++i];
        else if (strcmp(argv[i], "--api-key") == 0 && v) key = argv[++i];
        else if (strcmp(argv[i], "--interval") == 0 && v) interval = atof(argv[++i]);
        else if (strcmp(argv[i], "--once") == 0) once = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "orion top: unknown option or missing value '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!(interval >= 0.1)) interval = 0.1;
    orion_client *c = NULL;
    if (orion_client_connect(server, key, &c) != ORION_OK) {
        fprintf(stderr, "orion top: %s\n", orion_last_error());
        return 1;
    }
    snapshot *s = calloc(2, sizeof *s);
    if (!s) {
        orion_client_free(c);
        return 1;
    }
    bool tty = isatty(1);
    int rc = 0, k = 0;
    for (;;) {
        if (!once && tty) printf("\033[H\033[2J");
        rc = show(c, server, &s[k & 1], k ? &s[(k + 1) & 1] : NULL, interval);
        if (rc || once) break;
        k++;
        struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
        if (!tty) printf("\n");
    }
    free(s);
    orion_client_free(c);
    return rc;
}
