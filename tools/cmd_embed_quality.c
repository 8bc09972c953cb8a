/*
 * cmd_embed_quality.c — `orion embed-quality BASE MODEL... (--file F |
 * --jsonl F[:FIELD]) [--top-k K] [--json]`: what quantizing a sentence
 * encoder costs, measured on a corpus.
 *
 * Every model embeds every text. Against BASE (normally the f32 file):
 *   - cosine of each text's vector to BASE's: mean and minimum;
 *   - retrieval agreement: each text is a query against all the others; the
 *     share of BASE's top-K neighbours that the model also ranks in its top
 *     K, averaged over the queries.
 * The same two figures for BASE's own vectors stored as IEEE half floats
 * and as int8 with one scale per vector (what a vector store keeps).
 */
#include "cli.h"
#include "orion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define MAX_MODELS 16

typedef struct corpus {
    char  **texts;
    int32_t n, cap;
} corpus;

static int usage(void) {
    fprintf(stderr,
            "usage: orion embed-quality BASE MODEL... (--file F | --jsonl F[:FIELD]) [--top-k K] [--max-texts N]\n"
            "                           [--threads N] [--json]\n"
            "  cosine to BASE's vectors (mean, min) and top-K neighbour overlap for each MODEL, and for BASE's\n"
            "  vectors stored as f16 and int8; --file: one text per line; --jsonl: one JSON object per line,\n"
            "  the text in FIELD (default \"content\")\n");
    return 2;
}

static bool corpus_add(corpus *c, const char *s, size_t len) {
    if (c->n == c->cap) {
        int32_t cap = c->cap ? 2 * c->cap : 256;
        char **t = realloc(c->texts, sizeof(char *) * (size_t)cap);
        if (!t) return false;
        c->texts = t, c->cap = cap;
    }
    char *d = malloc(len + 1);
    if (!d) return false;
    memcpy(d, s, len);
    d[len] = 0;
    c->texts[c->n++] = d;
    return true;
}

static void corpus_free(corpus *c) {
    for (int32_t i = 0; i < c->n; i++) free(c->texts[i]);
    free(c->texts);
}

/* Reads lines; with field, each line is a JSON object and the text is that
 * member. Blank lines are skipped. */
static bool corpus_read(corpus *c, const char *path, const char *field, int32_t max_texts) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "orion embed-quality: cannot open %s\n", path);
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    bool ok = true;
    while (ok && c->n < max_texts && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (!field) {
            ok = corpus_add(c, line, (size_t)got);
            continue;
        }
        cJSON *o = cJSON_ParseWithLength(line, (size_t)got);
        const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
        if (!cJSON_IsString(v)) {
            fprintf(stderr, "orion embed-quality: %s:%ld: not a JSON object with a string \"%s\"\n", path, lineno,
                    field);
            ok = false;
        } else {
            ok = corpus_add(c, v->valuestring, strlen(v->valuestring));
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (ok && c->n < 2) {
        fprintf(stderr, "orion embed-quality: %s: need at least 2 texts\n", path);
        ok = false;
    }
    return ok;
}

static void normalize(float *v, int dim) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    float r = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < dim; i++) v[i] *= r;
}

static double cosine(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

/* The k nearest other texts of query q (by dot product of normalized
 * vectors), best first, into top. */
static void top_k(const float *v, int32_t n, int dim, int32_t q, int k, int32_t *top, double *score) {
    int have = 0;
    for (int32_t j = 0; j < n; j++) {
        if (j == q) continue;
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)v[(size_t)q * dim + d] * v[(size_t)j * dim + d];
        if (have == k && s <= score[k - 1]) continue;
        int at = have < k ? have++ : k - 1;
        while (at > 0 && score[at - 1] < s) {
            score[at] = score[at - 1], top[at] = top[at - 1];
            at--;
        }
        score[at] = s, top[at] = j;
    }
}

typedef struct quality {
    double cos_mean, cos_min, overlap;
} quality;

static bool compare(const float *base, const float *other, int32_t n, int dim, int k, quality *q) {
    int32_t *tb = malloc(sizeof(int32_t) * (size_t)k * 2);
    double  *sb = malloc(sizeof(double) * (size_t)k * 2);
    if (!tb || !sb) {
        free(tb), free(sb);
        return false;
    }
    q->cos_mean = 0, q->cos_min = 1;
    double ov = 0;
    for (int32_t i = 0; i < n; i++) {
        double c = cosine(base + (size_t)i * dim, other + (size_t)i * dim, dim);
        q->cos_mean += c;
        if (c < q->cos_min) q->cos_min = c;
        top_k(base, n, dim, i, k, tb, sb);
        top_k(other, n, dim, i, k, tb + k, sb + k);
        int hit = 0;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) hit += tb[a] == tb[k + b];
        ov += (double)hit / k;
    }
    q->cos_mean /= n;
    q->overlap = ov / n;
    free(tb), free(sb);
    return true;
}

static float *embed_all(const char *path, const corpus *c, int threads, int *dim, orion_embed_info *info) {
    orion_embed_params p = orion_embed_default_params();
    p.n_threads = threads;
    orion_embedder *e = NULL;
    if (orion_embed_load(path, &p, &e) != ORION_OK) {
        fprintf(stderr, "orion embed-quality: %s\n", orion_last_error());
        return NULL;
    }
    orion_embed_get_info(e, info);
    if (*dim && info->dim != *dim) {
        fprintf(stderr, "orion embed-quality: %s gives %d dimensions, the base %d\n", path, info->dim, *dim);
        orion_embed_free(e);
        return NULL;
    }
    *dim = info->dim;
    float *v = malloc(sizeof(float) * (size_t)c->n * (size_t)*dim);
    if (!v || orion_embed_texts(e, (const char *const *)c->texts, NULL, c->n, v) != ORION_OK) {
        fprintf(stderr, "orion embed-quality: %s: %s\n", path, v ? orion_last_error() : "out of memory");
        free(v);
        v = NULL;
    }
    orion_embed_free(e);
    if (v)
        for (int32_t i = 0; i < c->n; i++) normalize(v + (size_t)i * *dim, *dim);
    return v;
}

int orion_cli_embed_quality(int argc, char **argv) {
    const char *models[MAX_MODELS];
    int n_models = 0, k = 10, threads = 0;
    int32_t max_texts = 1 << 20;
    const char *file = NULL, *jsonl = NULL;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--file") == 0 && has) file = argv[++i];
        else if (strcmp(a, "--jsonl") == 0 && has) jsonl = argv[++i];
        else if (strcmp(a, "--top-k") == 0 && has) k = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0 && has) threads = atoi(argv[++i]);
        else if (strcmp(a, "--max-texts") == 0 && has) max_texts = atoi(argv[++i]);
        else if (strcmp(a, "--json") == 0) json = true;
        else if (a[0] == '-') {
            fprintf(stderr, "orion embed-quality: unknown option or missing value '%s'\n", a);
            return usage();
        } else if (n_models < MAX_MODELS) models[n_models++] = a;
        else return usage();
    }
    if (n_models < 1 || (!file == !jsonl) || k < 1 || k > 1000 || threads < 0 || max_texts < 2) return usage();

    corpus c = {0};
    char path[4096], *field = NULL;
    if (jsonl) {
        snprintf(path, sizeof path, "%s", jsonl);
        char *colon = strrchr(path, ':');
        if (colon && !strchr(colon, '/')) *colon = 0, field = colon + 1;
        else field = "content";
    } else {
        snprintf(path, sizeof path, "%s", file);
    }
    if (!corpus_read(&c, path, field, max_texts)) {
        corpus_free(&c);
        return 1;
    }
    if (k >= c.n) k = c.n - 1;

    int dim = 0, rc = 0;
    orion_embed_info info;
    float *base = embed_all(models[0], &c, threads, &dim, &info), *tmp = NULL;
    if (!base) {
        corpus_free(&c);
        return 1;
    }
    if (json) printf("{\"base\": \"%s\", \"texts\": %d, \"dim\": %d, \"top_k\": %d, \"results\": [\n", models[0], c.n, dim, k);
    else
        printf("base %s (%s, %s): %d texts, %d dimensions, top-%d neighbours\n\n"
               "  %-44s %10s %10s %12s\n",
               models[0], info.arch, orion_type_name(info.type), c.n, dim, k, "model / stored vectors", "cos mean",
               "cos min", "top-k overlap");
    tmp = malloc(sizeof(float) * (size_t)c.n * (size_t)dim);
    bool first = true;
    /* stored vectors: f16 and int8 (per-vector scale) of the base's */
    for (int s = 0; s < 2 && tmp; s++) {
        for (size_t i = 0; i < (size_t)c.n; i++) {
            const float *v = base + i * dim;
            float *o = tmp + i * dim;
            if (s == 0) {
                for (int d = 0; d < dim; d++) o[d] = orion_fp16_to_fp32(orion_fp32_to_fp16(v[d]));
            } else {
                float amax = 0;
                for (int d = 0; d < dim; d++) amax = fabsf(v[d]) > amax ? fabsf(v[d]) : amax;
                float sc = amax / 127.0f;
                for (int d = 0; d < dim; d++) o[d] = sc > 0 ? sc * (float)(int)lrintf(v[d] / sc) : 0.0f;
            }
        }
        quality q;
        if (!compare(base, tmp, c.n, dim, k, &q)) break;
        const char *what = s == 0 ? "stored as f16 (2 bytes a value)" : "stored as int8 (1 byte + a scale)";
        if (json)
            printf("%s  {\"stored\": \"%s\", \"cos_mean\": %.7f, \"cos_min\": %.7f, \"topk_overlap\": %.5f}", first ? "" : ",\n",
                   s == 0 ? "f16" : "int8", q.cos_mean, q.cos_min, q.overlap);
        else printf("  %-44s %10.7f %10.7f %11.2f%%\n", what, q.cos_mean, q.cos_min, 100.0 * q.overlap);
        first = false;
    }
    for (int m = 1; m < n_models && tmp; m++) {
        free(tmp);
        orion_embed_info mi;
        tmp = embed_all(models[m], &c, threads, &dim, &mi);
        quality q;
        if (!tmp || !compare(base, tmp, c.n, dim, k, &q)) {
            rc = 1;
            break;
        }
        if (json)
            printf(",\n  {\"model\": \"%s\", \"type\": \"%s\", \"weight_bytes\": %zu, \"cos_mean\": %.7f, \"cos_min\": %.7f, "
                   "\"topk_overlap\": %.5f}",
                   models[m], orion_type_name(mi.type), mi.weight_bytes, q.cos_mean, q.cos_min, q.overlap);
        else
            printf("  %-44.44s %10.7f %10.7f %11.2f%%\n", models[m], q.cos_mean, q.cos_min, 100.0 * q.overlap);
    }
    if (json) printf("\n]}\n");
    free(tmp);
    free(base);
    corpus_free(&c);
    return rc;
}
