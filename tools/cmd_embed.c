/*
 * cmd_embed.c — `orion embed MODEL [TEXT...] [--file F] [--format json|tsv|sim]
 * [--batch N] [--threads N] [--max-tokens N] [--pooling mean|cls]
 * [--no-normalize]`: sentence embeddings of the texts given as arguments
 * and/or the lines of a file (one text per line), in input order, on
 * standard output: --format json (the default) prints one JSON array of
 * vectors, one inner array per text, floats as %.9g (exact for f32); tsv
 * prints one line per text, values separated by tabs; sim prints the
 * cosine similarity of every pair of texts instead. Timings and memory go
 * to standard error.
 *
 * `orion embed --server WHERE [--model ID] [--api-key KEY] [TEXT...]` asks a
 * running `orion serve` instead (WHERE: http://host:port or a Unix socket
 * path), so a script shares the server's one copy of the model and its
 * cache rather than loading its own; the output is the same.
 */
#include "cli.h"
#include "orion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct text_list {
    char  **items;
    size_t  n, cap;
} text_list;

static int push(text_list *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **ni = realloc(l->items, cap * sizeof *ni);
        if (!ni) return -1;
        l->items = ni, l->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    l->items[l->n++] = c;
    return 0;
}

/* One text per line ("\n" or "\r\n"); a last line without a newline counts. */
static int read_lines(const char *path, text_list *l) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        if (push(l, line, len) != 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

static int usage(void) {
    fprintf(stderr, "usage: orion embed MODEL [TEXT...] [--file F] [--format json|tsv|sim] [--batch N] [--threads N]\n"
                    "                   [--max-tokens N] [--pooling mean|cls] [--no-normalize]\n"
                    "       orion embed --server http://HOST:PORT|SOCKET [--model ID] [--api-key KEY] [TEXT...]\n"
                    "                   [--file F] [--format json|tsv|sim]   (ask a running `orion serve`)\n");
    return 2;
}

/* --format sim: the cosine similarity of every pair of texts, one row per
 * text, then the texts numbered (a readable check that a model works). */
static void print_similarity(const float *out, size_t n, int dim, char *const *texts) {
    printf("cosine");
    for (size_t j = 0; j < n; j++) printf("%8zu", j + 1);
    fputc('\n', stdout);
    for (size_t i = 0; i < n; i++) {
        printf("%6zu", i + 1);
        const float *a = out + i * (size_t)dim;
        for (size_t j = 0; j < n; j++) {
            const float *b = out + j * (size_t)dim;
            double ab = 0, aa = 0, bb = 0;
            for (int c = 0; c < dim; c++) ab += (double)a[c] * b[c], aa += (double)a[c] * a[c], bb += (double)b[c] * b[c];
            printf("%8.3f", aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0);
        }
        fputc('\n', stdout);
    }
    for (size_t i = 0; i < n; i++) printf("%6zu  %s\n", i + 1, texts[i]);
}

static void print_vectors(const float *out, size_t n, int dim, const char *format, char *const *texts) {
    if (strcmp(format, "sim") == 0) {
        print_similarity(out, n, dim, texts);
        return;
    }
    if (strcmp(format, "json") == 0) {
        fputc('[', stdout);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",\n [" : "[", stdout);
            for (int c = 0; c < dim; c++) printf(c ? ", %.9g" : "%.9g", (double)out[i * (size_t)dim + (size_t)c]);
            fputc(']', stdout);
        }
        fputs("]\n", stdout);
    } else {
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < dim; c++) printf(c ? "\t%.9g" : "%.9g", (double)out[i * (size_t)dim + (size_t)c]);
            fputc('\n', stdout);
        }
    }
}

/* Through a server: the texts go in one request; the reply's dimension is
 * learned from a first one-text request when there is more than one. */
static int embed_remote(const char *where, const char *model_id, const char *api_key, const text_list *texts,
                        const char *format) {
    orion_client *c = NULL;
    float *out = NULL;
    int rc = 1;
    if (orion_client_connect(where, api_key, &c) != ORION_OK) {
        fprintf(stderr, "orion embed: %s\n", orion_last_error());
        return 1;
    }
    double t0 = now();
    int32_t dim = 0;
    float probe[8192];
    const char *empty = "";
    const char *const *items = texts->n ? (const char *const *)texts->items : &empty;
    if (orion_client_embed(c, model_id, items, 1, probe, sizeof probe / sizeof *probe, &dim) != ORION_OK) {
        fprintf(stderr, "orion embed: %s: %s\n", where, orion_last_error());
        goto done;
    }
    const size_t n = texts->n;
    out = malloc(sizeof(float) * (n ? n : 1) * (size_t)dim);
    if (!out) {
        fprintf(stderr, "orion embed: out of memory\n");
        goto done;
    }
    if (n > 1 && orion_client_embed(c, model_id, items, (int32_t)n, out, n * (size_t)dim, NULL) != ORION_OK) {
        fprintf(stderr, "orion embed: %s: %s\n", where, orion_last_error());
        goto done;
    }
    if (n == 1) memcpy(out, probe, sizeof(float) * (size_t)dim);
    double t1 = now();
    print_vectors(out, n, dim, format, texts->items);
    fprintf(stderr, "orion embed: %zu texts from %s (model %s, dim %d) in %.3f s\n", n, where,
            model_id ? model_id : "default", dim, t1 - t0);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(out);
    orion_client_free(c);
    return rc;
}

int orion_cli_embed(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *format = "json";
    const char *server = NULL, *model_id = NULL, *api_key = NULL;
    orion_embed_params p = orion_embed_default_params();
    text_list texts = {NULL, 0, 0};
    int rc = 1;
    orion_embedder *e = NULL;
    float *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--file") == 0 && has) file = argv[++i];
        else if (strcmp(a, "--server") == 0 && has) server = argv[++i];
        else if (strcmp(a, "--model") == 0 && has) model_id = argv[++i];
        else if (strcmp(a, "--api-key") == 0 && has) api_key = argv[++i];
        else if (strcmp(a, "--format") == 0 && has) format = argv[++i];
        else if (strcmp(a, "--batch") == 0 && has) p.batch_size = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0 && has) p.n_threads = atoi(argv[++i]);
        else if (strcmp(a, "--max-tokens") == 0 && has) p.max_tokens = atoi(argv[++i]);
        else if (strcmp(a, "--pooling") == 0 && has) {
            const char *v = argv[++i];
            if (strcmp(v, "mean") == 0) p.pooling = ORION_POOL_MEAN;
            else if (strcmp(v, "cls") == 0) p.pooling = ORION_POOL_CLS;
            else {
                fprintf(stderr, "orion embed: --pooling must be mean or cls\n");
                rc = usage();
                goto done;
            }
        } else if (strcmp(a, "--no-normalize") == 0) p.normalize = 0;
        else if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                if (!model && !server) model = argv[i];
                else if (push(&texts, argv[i], strlen(argv[i])) != 0) goto oom;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "orion embed: unknown option '%s'\n", a);
            rc = usage();
            goto done;
        } else if (!model && !server) model = a;
        else if (push(&texts, a, strlen(a)) != 0) goto oom;
    }
    if (model_id && !server) {
        fprintf(stderr, "orion embed: --model names a model of a server (--server); a file is given as MODEL\n");
        rc = usage();
        goto done;
    }
    if ((!model && !server) || (strcmp(format, "json") != 0 && strcmp(format, "tsv") != 0 && strcmp(format, "sim") != 0) || p.batch_size < 1 ||
        p.n_threads < 0 || p.max_tokens < 0) {
        rc = usage();
        goto done;
    }
    if (file && read_lines(file, &texts) != 0) {
        fprintf(stderr, "orion embed: cannot read %s\n", file);
        goto done;
    }
    if (server) {
        rc = embed_remote(server, model_id, api_key, &texts, format);
        goto done;
    }
    double t0 = now();
    if (orion_embed_load(model, &p, &e) != ORION_OK) {
        fprintf(stderr, "orion embed: %s\n", orion_last_error());
        goto done;
    }
    double t1 = now();
    orion_embed_info in;
    orion_embed_get_info(e, &in);
    const size_t n = texts.n;
    out = malloc(sizeof(float) * (n ? n : 1) * (size_t)in.dim);
    if (!out) goto oom;
    if (n > 0 && orion_embed_texts(e, (const char *const *)texts.items, NULL, (int32_t)n, out) != ORION_OK) {
        fprintf(stderr, "orion embed: %s\n", orion_last_error());
        goto done;
    }
    double t2 = now();
    print_vectors(out, n, in.dim, format, texts.items);
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    fprintf(stderr,
            "orion embed: %s (%s, %s, dim %d, max %d tokens, %s pooling%s): load %.3f s, %zu texts in %.3f s "
            "(%.1f texts/s); weights %.1f MiB mapped, scratch %.1f MiB, heap peak %.1f MiB\n",
            in.name[0] ? in.name : model, in.arch, orion_type_name(in.type), in.dim, in.max_tokens,
            in.pooling == ORION_POOL_CLS ? "CLS" : "mean", in.normalize ? ", normalized" : "", t1 - t0, n, t2 - t1,
            t2 > t1 ? (double)n / (t2 - t1) : 0.0, in.weight_bytes / 1048576.0, in.scratch_bytes / 1048576.0,
            ms.bytes_peak / 1048576.0);
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto done;
oom:
    fprintf(stderr, "orion embed: out of memory\n");
    rc = 1;
done:
    orion_embed_free(e);
    free(out);
    for (size_t i = 0; i < texts.n; i++) free(texts.items[i]);
    free(texts.items);
    return rc;
}
