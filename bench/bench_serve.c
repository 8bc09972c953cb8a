/*
 * bench_serve.c — `orion bench serve`: what the shared model service buys.
 *
 *  1. Memory: three client processes embedding through one `orion serve`
 *     versus three processes each loading the model and embedding in
 *     process. Resident set (RSS) and proportional set (PSS, which splits
 *     shared pages between their users) of every process, summed, sampled
 *     every 50 ms while all run; the peak sum is reported.
 *  2. Throughput and latency (p50, p99) with 1, 8 and 32 concurrent
 *     clients (threads of this process, one text per request, distinct
 *     texts, the cache off), batching on and off.
 *  3. The latency of a cache hit (one text asked again and again).
 *
 * The server and the workers are this same executable (/proc/self/exe),
 * run as `orion serve ...` and `orion bench serve --worker ...`.
 */
#include "core/core.h"
#include "cli.h"
#include "orion.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void make_text(char *buf, size_t n, int who, long i) {
    static const char *const words[] = {"model", "shared", "service", "vector", "cache", "batch", "token",
                                        "sentence", "local", "memory", "fast", "quiet", "river", "stone"};
    int k = snprintf(buf, n, "request %d %ld:", who, i);
    for (int w = 0; w < 10 && (size_t)k < n - 16; w++)
        k += snprintf(buf + k, n - (size_t)k, " %s", words[(size_t)(i * 7 + w * 3 + who) % 14]);
}

/* ---- workers (child processes) ------------------------------------------------------ */

static int worker_inproc(const char *path, double seconds) {
    orion_embedder *e = NULL;
    orion_embed_params p = orion_embed_default_params();
    p.n_threads = 1;
    if (orion_embed_load(path, &p, &e) != ORION_OK) {
        fprintf(stderr, "worker: %s\n", orion_last_error());
        return 1;
    }
    orion_embed_info info;
    orion_embed_get_info(e, &info);
    float *out = malloc(sizeof(float) * (size_t)info.dim * 8);
    double end = orion__now() + seconds;
    long i = 0;
    while (orion__now() < end) {
        char t[8][160];
        const char *tp[8];
        for (int k = 0; k < 8; k++) {
            make_text(t[k], sizeof t[k], getpid(), i++);
            tp[k] = t[k];
        }
        orion_embed_texts(e, tp, NULL, 8, out);
    }
    free(out);
    orion_embed_free(e);
    return 0;
}

static int worker_client(const char *url, double seconds) {
    orion_client *c = NULL;
    if (orion_client_connect(url, NULL, &c) != ORION_OK) return 1;
    float *out = malloc(sizeof(float) * 4096 * 8);
    double end = orion__now() + seconds;
    long i = 0;
    while (orion__now() < end) {
        char t[8][160];
        const char *tp[8];
        for (int k = 0; k < 8; k++) {
            make_text(t[k], sizeof t[k], getpid(), i++);
            tp[k] = t[k];
        }
        if (orion_client_embed(c, NULL, tp, 8, out, 4096 * 8, NULL) != ORION_OK) {
            fprintf(stderr, "client: %s\n", orion_last_error());
            break;
        }
    }
    free(out);
    orion_client_free(c);
    return 0;
}

/* ---- process helpers ---------------------------------------------------------------- */

static pid_t spawn(char *const argv[], int *stdout_fd) {
    int pfd[2] = {-1, -1};
    if (stdout_fd && pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (stdout_fd) {
            dup2(pfd[1], 1);
            close(pfd[0]);
        }
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    if (stdout_fd) {
        close(pfd[1]);
        *stdout_fd = pfd[0];
    }
    return pid;
}

static int g_threads = 0; /* the server's --threads */

/* Starts `orion serve --port 0 --model m=PATH EXTRA...`; returns its pid and port. */
static pid_t start_server(const char *model, const char *extra1, const char *extra2, const char *extra3,
                          int *port) {
    char spec[1200], threads[16];
    snprintf(spec, sizeof spec, "m=%s", model);
    snprintf(threads, sizeof threads, "%d", g_threads);
    char *argv[12] = {"orion", "serve", "--port", "0", "--model", spec, "--threads", threads, NULL, NULL, NULL, NULL};
    int k = 8;
    if (extra1) argv[k++] = (char *)extra1;
    if (extra2) argv[k++] = (char *)extra2;
    if (extra3) argv[k++] = (char *)extra3;
    argv[k] = NULL;
    int fd = -1;
    pid_t pid = spawn(argv, &fd);
    if (pid < 0) return -1;
    FILE *f = fdopen(fd, "r");
    char line[256];
    *port = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "127.0.0.1:");
        if (at) {
            *port = atoi(at + 10);
            break;
        }
    }
    if (f) fclose(f);
    if (*port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static void stop(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* Rss and Pss of a process in bytes (smaps_rollup). */
static void mem_of(pid_t pid, double *rss, double *pss) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    *rss = *pss = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        double kb;
        if (sscanf(line, "Rss: %lf", &kb) == 1) *rss = kb * 1024;
        if (sscanf(line, "Pss: %lf", &kb) == 1) *pss = kb * 1024;
    }
    fclose(f);
}

static void sample_peak(const pid_t *pids, int n, double seconds, double *peak_rss, double *peak_pss) {
    *peak_rss = *peak_pss = 0;
    double end = orion__now() + seconds;
    while (orion__now() < end) {
        double rs = 0, ps = 0;
        for (int i = 0; i < n; i++) {
            double r, p;
            mem_of(pids[i], &r, &p);
            rs += r;
            ps += p;
        }
        if (rs > *peak_rss) *peak_rss = rs;
        if (ps > *peak_pss) *peak_pss = ps;
        sleep_ms(50);
    }
}

/* ---- load generator -------------------------------------------------------------------- */

typedef struct lg_arg {
    const char *url;
    int         id;
    double      end;
    bool        same_text;
    double     *lat;
    long        n, cap, errors;
} lg_arg;

static void *lg_thread(void *p) {
    lg_arg *a = p;
    orion_client *c = NULL;
    if (orion_client_connect(a->url, NULL, &c) != ORION_OK) return NULL;
    float *out = malloc(sizeof(float) * 4096);
    long i = 0;
    while (orion__now() < a->end && a->n < a->cap) {
        char t[160];
        make_text(t, sizeof t, a->same_text ? 0 : a->id, a->same_text ? 0 : i++); /* ids differ per run */
        const char *tp[1] = {t};
        double t0 = orion__now();
        if (orion_client_embed(c, NULL, tp, 1, out, 4096, NULL) != ORION_OK) {
            a->errors++;
            continue;
        }
        a->lat[a->n++] = orion__now() - t0;
    }
    free(out);
    orion_client_free(c);
    return NULL;
}

static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void load_run(const char *url, int clients, double seconds, bool same_text, double *rps, double *p50,
                     double *p99, long *errors) {
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    lg_arg *a = calloc((size_t)clients, sizeof *a);
    double t0 = orion__now(), end = t0 + seconds;
    for (int i = 0; i < clients; i++) {
        a[i] = (lg_arg){url, clients * 1000 + i, end, same_text, NULL, 0, 1 << 20, 0};
        a[i].lat = malloc(sizeof(double) * (size_t)a[i].cap);
        pthread_create(&th[i], NULL, lg_thread, &a[i]);
    }
    long total = 0;
    *errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += a[i].n;
        *errors += a[i].errors;
    }
    double wall = orion__now() - t0;
    double *all = malloc(sizeof(double) * (size_t)(total ? total : 1));
    long k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, a[i].lat, sizeof(double) * (size_t)a[i].n);
        k += a[i].n;
        free(a[i].lat);
    }
    qsort(all, (size_t)total, sizeof *all, cmp_d);
    *rps = (double)total / wall;
    *p50 = total ? all[total / 2] : 0;
    *p99 = total ? all[(long)((double)total * 0.99)] : 0;
    free(all);
    free(a);
    free(th);
}

int orion_cli_bench_serve(int argc, char **argv) {
    const char *model = NULL;
    double seconds = 3;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--worker-inproc") == 0 && i + 2 < argc) return worker_inproc(argv[i + 1], atof(argv[i + 2]));
        if (strcmp(argv[i], "--worker-client") == 0 && i + 2 < argc) return worker_client(argv[i + 1], atof(argv[i + 2]));
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) g_threads = atoi(argv[++i]);
        else if (!model && argv[i][0] != '-') model = argv[i];
        else {
            fprintf(stderr, "usage: orion bench serve MODEL.gguf|hash:DIM[:US] [--seconds S] [--threads N (the server's)]\n");
            return 2;
        }
    }
    if (!model) model = "models/use-lite.gguf";
    signal(SIGPIPE, SIG_IGN);
    printf("# orion bench serve: model %s, %g s per measurement, server threads %d (0: all), %d CPUs\n", model,
           seconds, g_threads, orion_cpu_count());

    /* 1. memory: shared server (with and without prefault) vs three copies */
    {
        char secs[32];
        snprintf(secs, sizeof secs, "%g", seconds + 1);
        double srss[2] = {0, 0}, spss[2] = {0, 0};
        for (int lazy = 0; lazy < 2; lazy++) {
            int port = 0;
            pid_t srv = start_server(model, "--cache-mb", "0", lazy ? "--no-prefault" : NULL, &port);
            if (srv < 0) {
                fprintf(stderr, "orion bench serve: the server did not start\n");
                return 1;
            }
            char url[64];
            snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
            pid_t pids[4] = {srv};
            for (int i = 0; i < 3; i++) {
                char *av[] = {"orion", "bench", "serve", "--worker-client", url, secs, NULL};
                pids[1 + i] = spawn(av, NULL);
            }
            sleep_ms(500);
            sample_peak(pids, 4, seconds, &srss[lazy], &spss[lazy]);
            for (int i = 1; i < 4; i++) waitpid(pids[i], NULL, 0);
            stop(srv);
        }
        pid_t w[3];
        for (int i = 0; i < 3; i++) {
            char *av[] = {"orion", "bench", "serve", "--worker-inproc", (char *)model, secs, NULL};
            w[i] = spawn(av, NULL);
        }
        sleep_ms(500);
        double crss, cpss;
        sample_peak(w, 3, seconds, &crss, &cpss);
        for (int i = 0; i < 3; i++) waitpid(w[i], NULL, 0);
        printf("\nmemory, peak while embedding (sum over processes):\n");
        static const char *const label[2] = {"one server + three client processes:", "the same, server --no-prefault:"};
        for (int lazy = 0; lazy < 2; lazy++)
            printf("  %-44s RSS %8.1f MiB  PSS %8.1f MiB\n", label[lazy], srss[lazy] / 1048576, spss[lazy] / 1048576);
        printf("  %-44s RSS %8.1f MiB  PSS %8.1f MiB\n", "three processes, each with the model:", crss / 1048576,
               cpss / 1048576);
        if (crss > 0 && cpss > 0)
            for (int lazy = 0; lazy < 2; lazy++)
                printf("  shared%s / three copies: RSS %.0f%%, PSS %.0f%%\n", lazy ? " (--no-prefault)" : "",
                       100 * srss[lazy] / crss, 100 * spss[lazy] / cpss);
    }

    /* 2. throughput and latency, batching on and off */
    printf("\nthroughput (one text per request, distinct texts, cache off):\n");
    printf("  %-9s %8s %10s %10s %10s %7s\n", "batching", "clients", "req/s", "p50 ms", "p99 ms", "errors");
    double rps32[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
        int port = 0;
        pid_t srv = start_server(model, "--cache-mb", "0", b ? "--no-batching" : NULL, &port);
        if (srv < 0) return 1;
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
        int levels[3] = {1, 8, 32};
        for (int l = 0; l < 3; l++) {
            double rps, p50, p99;
            long errs;
            load_run(url, levels[l], seconds, false, &rps, &p50, &p99, &errs);
            printf("  %-9s %8d %10.1f %10.2f %10.2f %7ld\n", b ? "off" : "on", levels[l], rps, 1e3 * p50, 1e3 * p99,
                   errs);
            fflush(stdout);
            if (levels[l] == 32) rps32[b] = rps;
        }
        stop(srv);
    }
    if (rps32[1] > 0) printf("  batching gain at 32 clients: %.2fx\n", rps32[0] / rps32[1]);

    /* 3. cache hits */
    {
        int port = 0;
        pid_t srv = start_server(model, NULL, NULL, NULL, &port);
        if (srv < 0) return 1;
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
        double rps, p50, p99;
        long errs;
        load_run(url, 1, seconds, true, &rps, &p50, &p99, &errs);
        printf("\ncache hit (one client, one text again and again, HTTP round trip included):\n"
               "  %.1f req/s, p50 %.3f ms, p99 %.3f ms\n",
               rps, 1e3 * p50, 1e3 * p99);
        stop(srv);
    }
    return 0;
}
