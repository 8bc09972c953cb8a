/*
 * cmd_imatrix.c — `orion imatrix MODEL -f TEXT -o FILE [--ctx C]
 * [--chunks N]`: runs the model over a text and records, for every weight
 * matrix, the mean squared activation of each input column (the importance
 * the calibrated quantizer weighs errors by: `orion quantize --imatrix`).
 *
 * For a sentence encoder (bert, use-lite) the text file holds one text per
 * line, embedded in batches (--chunks caps the texts); --ctx is unused.
 *
 * The file uses llama.cpp's legacy imatrix layout, so either tool reads the
 * other's: i32 n_entries; per entry i32 name length, name, i32 ncall,
 * i32 n_values, f32 values (mean squared activation x ncall); then i32
 * chunks processed and the text file's name.
 */
#include "cli.h"
#include "orion.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char    *name;
    int64_t  n;
    double  *sum_sq;  /* n */
    int64_t  rows;    /* activation rows seen */
    int32_t  calls;
} entry;

typedef struct stats {
    entry *e;
    size_t n, cap;
    bool   oom;
} stats;

static void observe(void *user, const char *name, const float *x, int64_t n_rows, int64_t n_in) {
    stats *s = user;
    entry *e = NULL;
    for (size_t i = 0; i < s->n && !e; i++)
        if (strcmp(s->e[i].name, name) == 0) e = &s->e[i];
    if (!e) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 64;
            entry *ne = realloc(s->e, cap * sizeof *ne);
            if (!ne) {
                s->oom = true;
                return;
            }
            s->e = ne, s->cap = cap;
        }
        e = &s->e[s->n];
        e->name = strdup(name);
        e->sum_sq = calloc((size_t)n_in, sizeof(double));
        if (!e->name || !e->sum_sq) {
            free(e->name);
            free(e->sum_sq);
            s->oom = true;
            return;
        }
        e->n = n_in, e->rows = 0, e->calls = 0;
        s->n++;
    }
    if (e->n != n_in) return; /* one tensor, one width */
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < n_in; i++) e->sum_sq[i] += (double)x[r * n_in + i] * x[r * n_in + i];
    e->rows += n_rows;
    e->calls++;
}

static bool write_imatrix(const char *path, const stats *s, int32_t chunks, const char *dataset) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    int32_t n = (int32_t)s->n;
    bool ok = fwrite(&n, 4, 1, f) == 1;
    for (size_t i = 0; ok && i < s->n; i++) {
        const entry *e = &s->e[i];
        int32_t len = (int32_t)strlen(e->name), nval = (int32_t)e->n, ncall = e->calls > 0 ? e->calls : 1;
        ok = fwrite(&len, 4, 1, f) == 1 && fwrite(e->name, 1, (size_t)len, f) == (size_t)len &&
             fwrite(&ncall, 4, 1, f) == 1 && fwrite(&nval, 4, 1, f) == 1;
        for (int64_t j = 0; ok && j < e->n; j++) {
            float v = (float)(e->rows ? e->sum_sq[j] / (double)e->rows * ncall : 0.0);
            ok = fwrite(&v, 4, 1, f) == 1;
        }
    }
    int32_t dlen = (int32_t)strlen(dataset);
    ok = ok && fwrite(&chunks, 4, 1, f) == 1 && fwrite(&dlen, 4, 1, f) == 1 &&
         fwrite(dataset, 1, (size_t)dlen, f) == (size_t)dlen;
    return fclose(f) == 0 && ok;
}

static void free_stats(stats *s) {
    for (size_t i = 0; i < s->n; i++) free(s->e[i].name), free(s->e[i].sum_sq);
    free(s->e);
}

/* Encoders: every line of the text (up to max_texts, 0 = all) is embedded,
 * 32 at a time, with the observer on. */
static int imatrix_encoder(orion_embedder *e, char *text, size_t len, int max_texts, const char *file,
                           const char *out) {
    stats s = {0};
    int rc = 1, n = 0;
    orion_embed_info in;
    orion_embed_get_info(e, &in);
    enum { BATCH = 32 };
    const char *batch[BATCH];
    size_t lens[BATCH];
    float *vec = malloc(sizeof(float) * BATCH * (size_t)in.dim);
    if (!vec) {
        fprintf(stderr, "orion imatrix: out of memory\n");
        return 1;
    }
    orion_embed_set_observer(e, observe, &s);
    size_t at = 0;
    while (at < len && (!max_texts || n < max_texts)) {
        int b = 0;
        while (b < BATCH && at < len && (!max_texts || n + b < max_texts)) {
            char *nl = memchr(text + at, '\n', len - at);
            size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
            if (l > 0) batch[b] = text + at, lens[b] = l, b++;
            at += l + 1;
        }
        if (b == 0) break;
        if (orion_embed_texts(e, batch, lens, b, vec) != ORION_OK) {
            fprintf(stderr, "orion imatrix: %s\n", orion_last_error());
            goto done;
        }
        n += b;
    }
    if (n == 0 || s.oom || s.n == 0) {
        fprintf(stderr, "orion imatrix: %s\n", s.oom ? "out of memory" : "no texts (one text per line)");
        goto done;
    }
    if (!write_imatrix(out, &s, n, file)) {
        fprintf(stderr, "orion imatrix: cannot write %s\n", out);
        goto done;
    }
    printf("wrote %s: %zu tensors, %d texts\n", out, s.n, n);
    rc = 0;
done:
    orion_embed_set_observer(e, NULL, NULL);
    free_stats(&s);
    free(vec);
    return rc;
}

int orion_cli_imatrix(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *out = NULL;
    int ctx = 256, max_chunks = 0, threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "-f") == 0 && has) file = argv[++i];
        else if (strcmp(a, "-o") == 0 && has) out = argv[++i];
        else if (strcmp(a, "--ctx") == 0 && has) ctx = atoi(argv[++i]);
        else if (strcmp(a, "--chunks") == 0 && has) max_chunks = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0 && has) threads = atoi(argv[++i]);
        else if (a[0] == '-') { model = NULL; break; }
        else if (!model) model = a;
    }
    if (!model || !file || !out || ctx < 16 || max_chunks < 0 || threads < 0) {
        fprintf(stderr, "usage: orion imatrix MODEL.gguf -f TEXT -o FILE [--ctx C (>= 16)] [--chunks N] [--threads N]\n"
                        "  (a sentence encoder: one text per line; --chunks caps the texts)\n");
        return 2;
    }
    FILE *tf = fopen(file, "rb");
    if (!tf) {
        fprintf(stderr, "orion imatrix: cannot read %s\n", file);
        return 1;
    }
    fseek(tf, 0, SEEK_END);
    long len = ftell(tf);
    fseek(tf, 0, SEEK_SET);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)len, tf) : 0;
    fclose(tf);
    if (!text) return 1;
    {
        /* a sentence encoder? (a decoder file fails here and goes on below) */
        orion_embed_params ep = orion_embed_default_params();
        ep.n_threads = threads;
        orion_embedder *e = NULL;
        if (orion_embed_load(model, &ep, &e) == ORION_OK) {
            int erc = imatrix_encoder(e, text, got, max_chunks, file, out);
            orion_embed_free(e);
            free(text);
            return erc;
        }
    }
    orion_llm_params p = orion_llm_default_params();
    p.n_ctx = ctx;
    p.n_threads = threads;
    orion_llm *llm = NULL;
    stats s = {0};
    int32_t *tok = NULL, n_tok = 0;
    int rc = 1, chunks = 0;
    if (orion_llm_load(model, &p, &llm) != ORION_OK) {
        fprintf(stderr, "orion imatrix: %s\n", orion_last_error());
        goto done;
    }
    orion_llm_info in;
    orion_llm_get_info(llm, &in);
    tok = malloc(sizeof(int32_t) * (got + 2));
    if (!tok || orion_llm_tokenize(llm, text, got, true, tok, (int32_t)got + 2, &n_tok) != ORION_OK) {
        fprintf(stderr, "orion imatrix: %s\n", orion_last_error());
        goto done;
    }
    orion_llm_set_observer(llm, observe, &s);
    for (int32_t at = 0; at + ctx <= n_tok && (!max_chunks || chunks < max_chunks); at += ctx, chunks++) {
        tok[at] = in.bos;
        if (orion_llm_eval(llm, tok + at, ctx, 0, NULL, false) != ORION_OK) {
            fprintf(stderr, "orion imatrix: %s\n", orion_last_error());
            goto done;
        }
    }
    if (chunks == 0 || s.oom || s.n == 0) {
        fprintf(stderr, "orion imatrix: %s\n", s.oom ? "out of memory"
                                                     : "the text is shorter than one chunk (use a smaller --ctx)");
        goto done;
    }
    if (!write_imatrix(out, &s, chunks, file)) {
        fprintf(stderr, "orion imatrix: cannot write %s\n", out);
        goto done;
    }
    printf("wrote %s: %zu tensors, %d chunks of %d tokens\n", out, s.n, chunks, ctx);
    rc = 0;
done:
    free_stats(&s);
    free(tok);
    free(text);
    orion_llm_free(llm);
    return rc;
}
