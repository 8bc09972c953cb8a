/*
 * bench_args.c — what every `orion bench` command does with its arguments
 * and repetitions: integers in a range, the positional model, a decoder
 * shape by name, the default thread count, medians and quantiles. (limits.c holds the machine's measured limits.)
 */
#include "bench.h"

#include "core/core.h"
#include "models/synth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bench_int_option(const char *cmd, const char *flag, const char *v, long lo, long hi, int *out) {
    if (bench_parse_int(v, lo, hi, out)) return true;
    fprintf(stderr, "orion bench %s: %s wants %ld to %ld, not '%s'\n", cmd, flag, lo, hi, v);
    return false;
}

bool bench_parse_shape(const char *cmd, const char *name, const struct orion_synth_shape **out) {
    if ((*out = orion__synth_shape_find(name))) return true;
    char names[256] = "";
    for (int i = 0; orion__synth_shape_at(i); i++) {
        const size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", orion__synth_shape_at(i)->name);
    }
    fprintf(stderr, "orion bench %s: unknown shape '%s' (%s)\n", cmd, name, names);
    return false;
}

bool bench_parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

bool bench_take_model(const char *name, const char *a, const char **model) {
    if (a[0] == '-' && a[1]) {
        fprintf(stderr, "orion bench %s: unknown option or missing value: '%s'\n", name, a);
        return false;
    }
    if (*model) return false;
    *model = a;
    return true;
}

int bench_threads(int threads) {
    if (threads > 0) return threads;
    const int n = orion_cpu_count();
    return n < BENCH_MAX_THREADS ? n : BENCH_MAX_THREADS;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    if (n <= 0) return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_quantile(double *v, int n, double q) {
    if (n <= 0) return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    const int i = (int)(q * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}
