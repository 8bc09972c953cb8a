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
 * chunks processed and the text file's name. Running the model is
 * calib_run.c's job (shared with `orion quantize --gptq`).
 */
#include "calib.h"
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

int orion_cli_imatrix(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *out = NULL;
    calib_opts o = {256, 0, 0, false};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "-f") == 0 && has) file = argv[++i];
        else if (strcmp(a, "-o") == 0 && has) out = argv[++i];
        else if (strcmp(a, "--ctx") == 0 && has) o.ctx = atoi(argv[++i]);
        else if (strcmp(a, "--chunks") == 0 && has) o.max_chunks = atoi(argv[++i]);
        else if (strcmp(a, "--threads") == 0 && has) o.n_threads = atoi(argv[++i]);
        else if (a[0] == '-') { model = NULL; break; }
        else if (!model) model = a;
    }
    if (!model || !file || !out || o.ctx < 16 || o.max_chunks < 0 || o.n_threads < 0) {
        fprintf(stderr, "usage: orion imatrix MODEL.gguf -f TEXT -o FILE [--ctx C (>= 16)] [--chunks N] [--threads N]\n"
                        "  (a sentence encoder: one text per line; --chunks caps the texts)\n");
        return 2;
    }
    stats s = {0};
    calib_result res;
    int rc = 1;
    if (calib_run("imatrix", model, file, &o, observe, &s, &res) != 0) goto done;
    if (s.oom || s.n == 0) {
        fprintf(stderr, "orion imatrix: %s\n", s.oom ? "out of memory" : "the model made no matrix products");
        goto done;
    }
    if (!write_imatrix(out, &s, res.n, file)) {
        fprintf(stderr, "orion imatrix: cannot write %s\n", out);
        goto done;
    }
    if (res.encoder) printf("wrote %s: %zu tensors, %d texts\n", out, s.n, res.n);
    else printf("wrote %s: %zu tensors, %d chunks of %d tokens\n", out, s.n, res.n, o.ctx);
    rc = 0;
done:
    free_stats(&s);
    return rc;
}
