/*
 * bench_decode.c — `orion bench decode MODEL`: how fast a Llama/Mistral
 * model runs, and how close generation gets to the memory-bandwidth limit.
 *
 * What is measured, in one process and one run:
 *   - prefill: a batch of --prompt-tokens random token ids (seeded, the same
 *     every rep) through orion_llm_eval at positions 0.., logits for the last;
 *   - generation: --gen-tokens tokens one at a time at the following
 *     positions, each the argmax of the previous logits;
 *   - the machine's read bandwidth: bench_read_bandwidth (limits.c) on a pool
 *     of the same thread count, a buffer far larger than the last-level
 *     cache, before the reps, after each engine's rep and after the reps;
 *     the best of all is the limit's bandwidth.
 * On a shared machine the bandwidth drifts by tens of percent within
 * minutes (the probes after each rep are shown in the progress lines), so
 * best against best is a rough figure; the interleaved pairs below set each
 * generated token against a read taken at the same moment.
 * Each rep is prefill then generation; the best rep of each is reported (the
 * machine is shared: the best is the least disturbed), medians beside it.
 *
 * Interleaved (orion only, after the reps): the prompt again, then
 * --gen-tokens pairs of one generated token and one plain read
 * (bench_stream_read) of the weights a token streams, in the file's own
 * mapping (the same page-cache pages orion_llm reads), in an order that turns
 * with the pair. Each pair's ratio, the token's bytes per second over the
 * read's, is generation's share of the limit set by those very pages at that
 * moment; the median and quartiles over the pairs are printed. The read takes
 * as long as a token, so a drift of the machine's bandwidth (tens of percent
 * within minutes on a shared host) moves both sides of a pair alike.
 *
 * The limit: generating one token must stream every weight the token uses
 * once — all matrices, the output head, one row of the embedding table when
 * the head is untied (the whole table when tied: it is the head) — plus the
 * KV cache rows it attends to (K and V, f16, at the average position of the
 * generation, within the sliding window). bandwidth / those bytes is the
 * fastest generation the memory allows; we report our ratio to it.
 *
 * With --breakdown, each matrix role (attn_q, ..., ffn_down, output) is also
 * timed alone through orion_matmul over the model's own weights, every layer
 * in turn, caches flushed before each rep, at batch 1 and at the prompt's
 * batch: the matmuls' share of a token and of a prefill, their GB/s, and the
 * rest (attention, norms, rope, KV stores, thread hand-offs) by difference.
 *
 * With --vs-llamacpp the llama.cpp driver (bench/llamacpp_bench.c, built by
 * scripts/install-llamacpp.sh; path from ORION_LLAMACPP_BENCH or
 * bench/peers/llamacpp/bin) runs as a co-process on the same file with the
 * same thread count and token ids: it loads once and waits on a pipe; each of
 * our reps is followed by one of its reps, so both see the same machine
 * state, and the two are printed side by side with the ratio.
 */
#include "bench.h"
#include "peer.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DECODE_MAX_REPS 100

typedef struct decode_opts {
    const char *model;
    bool        json, quick, vs_llamacpp, breakdown;
    int         threads, prompt, gen, reps;
    uint64_t    seed;
    orion_type  kv_type;
} decode_opts;

/* One engine's results over the reps. */
typedef struct decode_runs {
    int    n;
    double prefill_tps[DECODE_MAX_REPS], gen_tps[DECODE_MAX_REPS];
    double load_s;
    bool   ok;
    char   error[256];
} decode_runs;

static int usage(void) {
    fprintf(stderr,
            "usage: orion bench decode MODEL [--json] [--threads N] [--prompt-tokens N] [--gen-tokens N]\n"
            "                              [--reps N] [--seed S] [--kv-type f16|f32|q8_0] [--vs-llamacpp] [--breakdown]\n"
            "                              [--quick]\n"
            "  prefill and generation tokens/s, bytes read per token, the bandwidth limit and our ratio to it;\n"
            "  --vs-llamacpp runs llama.cpp (scripts/install-llamacpp.sh) on the same file, interleaved;\n"
            "  --breakdown times each matrix role alone (batch 1 and the prompt's batch)\n");
    return 2;
}

static double best_of(const double *v, int n) {
    double b = 0.0;
    for (int i = 0; i < n; i++) b = v[i] > b ? v[i] : b;
    return b;
}

static double median_of(const double *v, int n) {
    if (n <= 0) return 0.0;
    double s[DECODE_MAX_REPS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    return bench_median(s, n);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ---- what one generated token reads ---------------------------------------------- */

typedef struct token_bytes {
    size_t weight_bytes;   /* orion_llm_info.weight_bytes (a tied head once) */
    size_t embd_unread;    /* embedding-table bytes a token does not read (untied head) */
    double weights_read;   /* weight_bytes - embd_unread */
    double kv_read;        /* K and V rows attended, at the average position */
    double avg_ctx;        /* positions attended, on average */
    double total;
    char   wtype[16];      /* type of the layer matrices */
} token_bytes;

/* g: the model's GGUF, or NULL (another format: no tensor list). */
static void count_token_bytes(const decode_opts *o, const orion_gguf *g, const orion_llm_info *in,
                              token_bytes *tb) {
    memset(tb, 0, sizeof *tb);
    tb->weight_bytes = in->weight_bytes;
    snprintf(tb->wtype, sizeof tb->wtype, "?");
    if (g) {
        const orion_gguf_tensor *e = orion_gguf_find_tensor(g, "token_embd.weight");
        const orion_gguf_tensor *h = orion_gguf_find_tensor(g, "output.weight");
        const orion_gguf_tensor *q = orion_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        if (e && h && e->ne[1] > 0) tb->embd_unread = e->n_bytes - e->n_bytes / (size_t)e->ne[1];
        if (q) snprintf(tb->wtype, sizeof tb->wtype, "%s", orion_type_name(q->type));
    }
    tb->weights_read = (double)tb->weight_bytes - (double)tb->embd_unread;
    /* position p attends to min(p + 1, window) rows; p runs over [P, P + G) */
    double sum = 0.0;
    for (int i = 0; i < o->gen; i++) {
        double n = (double)o->prompt + i + 1;
        if (in->sliding_window > 0 && n > in->sliding_window) n = in->sliding_window;
        sum += n;
    }
    tb->avg_ctx = o->gen > 0 ? sum / o->gen : 0.0;
    /* K and V rows of every layer, in the cache's type */
    double kv_row = 2.0 * (double)in->n_layer * (double)in->n_head_kv *
                    (double)orion_type_row_bytes(o->kv_type, in->head_dim);
    tb->kv_read = kv_row * tb->avg_ctx;
    tb->total = tb->weights_read + tb->kv_read;
}

/* ---- orion ------------------------------------------------------------------------- */

typedef struct orion_side {
    orion_llm      *llm;
    orion_llm_info  info;
    int32_t        *tokens;  /* the prompt: random ids */
    float          *logits;  /* n_vocab */
} orion_side;

/* One rep: prefill, then generation. Fills the tokens/s. */
static orion_status orion_rep(orion_side *s, const decode_opts *o, double *prefill_tps, double *gen_tps) {
    double t0 = bench_now();
    orion_status st = orion_llm_eval(s->llm, s->tokens, o->prompt, 0, s->logits, false);
    if (st != ORION_OK) return st;
    double t1 = bench_now();
    int32_t next = argmax(s->logits, s->info.n_vocab);
    for (int i = 0; i < o->gen; i++) {
        if ((st = orion_llm_eval(s->llm, &next, 1, o->prompt + i, s->logits, false)) != ORION_OK) return st;
        next = argmax(s->logits, s->info.n_vocab);
    }
    double t2 = bench_now();
    *prefill_tps = t1 > t0 ? o->prompt / (t1 - t0) : 0.0;
    *gen_tps = t2 > t1 ? o->gen / (t2 - t1) : 0.0;
    return ORION_OK;
}

/* ---- interleaved: each token against a plain read of the weights it streams ------ */

#define MAX_SPANS 64

/* The tensor data a generated token reads, as runs of adjacent tensors in the
 * GGUF's mapping: every tensor but an untied token_embd (a token reads one
 * row of it, tb->embd_unread > 0). */
typedef struct weight_spans {
    int         n;
    const char *p[MAX_SPANS];
    size_t      bytes[MAX_SPANS];
    size_t      total;
} weight_spans;

static int cmp_tensor_offset(const void *a, const void *b) {
    const orion_gguf_tensor *x = *(const orion_gguf_tensor *const *)a, *y = *(const orion_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bool weight_spans_find(const orion_gguf *g, const token_bytes *tb, weight_spans *ws) {
    memset(ws, 0, sizeof *ws);
    if (!g) return false;
    const bool untied = tb->embd_unread > 0;
    const int64_t n = orion_gguf_n_tensors(g);
    const orion_gguf_tensor **t = malloc(sizeof *t * (size_t)(n > 0 ? n : 1));
    if (!t) return false;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const orion_gguf_tensor *e = orion_gguf_tensor_at(g, i);
        if (e && e->n_bytes > 0 && !(untied && strcmp(e->name, "token_embd.weight") == 0)) t[m++] = e;
    }
    qsort(t, (size_t)m, sizeof *t, cmp_tensor_offset);
    const size_t gap = orion_gguf_alignment(g); /* padding between tensors */
    bool ok = true;
    for (int64_t i = 0; i < m && ok; i++) {
        const char *p = t[i]->data;
        if (ws->n > 0 && p >= ws->p[ws->n - 1] + ws->bytes[ws->n - 1] &&
            p <= ws->p[ws->n - 1] + ws->bytes[ws->n - 1] + gap) {
            ws->bytes[ws->n - 1] = (size_t)(p - ws->p[ws->n - 1]) + t[i]->n_bytes;
        } else if (ws->n < MAX_SPANS) {
            ws->p[ws->n] = p;
            ws->bytes[ws->n++] = t[i]->n_bytes;
        } else {
            ok = false;
        }
    }
    free(t);
    for (int i = 0; i < ws->n; i++) ws->total += ws->bytes[i];
    return ok && ws->total > 0;
}

static double weight_spans_read(orion_threadpool *pool, const weight_spans *ws) {
    const double t0 = bench_now();
    for (int i = 0; i < ws->n; i++) bench_stream_read(pool, ws->p[i], ws->bytes[i]);
    return bench_now() - t0;
}

typedef struct interleaved {
    bool   ran;
    int    pairs;
    size_t read_bytes;
    double median, p25, p75;
} interleaved;

/* The prompt, then o->gen pairs of (one generated token, one read of the
 * weight spans), the order turning with the pair. */
static orion_status run_interleaved(orion_side *s, const decode_opts *o, const orion_gguf *g,
                                    orion_threadpool *pool, const token_bytes *tb, interleaved *out) {
    memset(out, 0, sizeof *out);
    weight_spans ws;
    double *ratio = malloc(sizeof(double) * (size_t)o->gen);
    orion_status st = ORION_OK;
    if (!ratio || !weight_spans_find(g, tb, &ws)) goto done;
    weight_spans_read(pool, &ws); /* warm-up: page tables */
    if ((st = orion_llm_eval(s->llm, s->tokens, o->prompt, 0, s->logits, false)) != ORION_OK) goto done;
    int32_t next = argmax(s->logits, s->info.n_vocab);
    for (int i = 0; i < o->gen; i++) {
        double t_tok = 0.0, t_read = 0.0;
        for (int k = 0; k < 2; k++) {
            if ((k == 0) == (i % 2 == 0)) {
                const double t0 = bench_now();
                if ((st = orion_llm_eval(s->llm, &next, 1, o->prompt + i, s->logits, false)) != ORION_OK) goto done;
                next = argmax(s->logits, s->info.n_vocab);
                t_tok = bench_now() - t0;
            } else {
                t_read = weight_spans_read(pool, &ws);
            }
        }
        ratio[i] = t_tok > 0 && ws.total > 0 ? (tb->total / t_tok) / ((double)ws.total / t_read) : 0.0;
    }
    out->ran = true;
    out->pairs = o->gen;
    out->read_bytes = ws.total;
    out->p25 = bench_quantile(ratio, o->gen, 0.25);
    out->p75 = bench_quantile(ratio, o->gen, 0.75);
    out->median = bench_median(ratio, o->gen);
done:
    free(ratio);
    return st;
}

/* ---- llama.cpp co-process ---------------------------------------------------------- */

typedef struct peer {
    bench_peer co;
    char       path[PATH_MAX];
} peer;

static bool peer_start(peer *p, const decode_opts *o, char *err, size_t err_size) {
    memset(p, 0, sizeof *p);
    /* the driver: $ORION_LLAMACPP_BENCH, else bench/peers/llamacpp/bin/llamacpp_bench
     * under the current directory, the orion binary's directory or two above */
    if (!bench_peer_find("ORION_LLAMACPP_BENCH", "bench/peers/llamacpp/bin/llamacpp_bench", 2, true, p->path,
                         sizeof p->path)) {
        snprintf(err, err_size, "llama.cpp driver not found (set ORION_LLAMACPP_BENCH or run "
                                "scripts/install-llamacpp.sh)");
        return false;
    }
    char threads[16], prompt[16], gen[16], seed[32];
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(prompt, sizeof prompt, "%d", o->prompt);
    snprintf(gen, sizeof gen, "%d", o->gen);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    char *args[] = {p->path,       (char *)o->model, "--threads", threads, "--prompt-tokens", prompt,
                    "--gen-tokens", gen,             "--seed",    seed,    "--serve",         NULL};
    return bench_peer_start(&p->co, args, p->path, err, err_size);
}

static bool peer_rep(peer *p, double *prefill_tps, double *gen_tps, char *err, size_t err_size) {
    char line[1024];
    if (!bench_peer_rep(&p->co, line, sizeof line, "llama.cpp driver", err, err_size)) return false;
    *prefill_tps = bench_json_num(line, "prefill_tps");
    *gen_tps = bench_json_num(line, "gen_tps");
    if (!(*prefill_tps > 0.0) || !(*gen_tps > 0.0)) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(err, err_size, "llama.cpp driver: %.200s", line);
        return false;
    }
    return true;
}

/* ---- per-role matmul times (--breakdown) ------------------------------------------ */

#define N_ROLES 8

typedef struct role_time {
    const char *name;
    orion_type  type;
    int64_t     n_out, n_in;
    int         count;         /* tensors of this role (layers, or 1) */
    size_t      bytes;         /* all of them */
    double      s_token;       /* best seconds for all of them at batch 1 */
    double      s_prompt;      /* best seconds at the prompt's batch */
    const void *data[1024];    /* each layer's weights, in the mapping */
} role_time;

typedef struct breakdown {
    bool      ran;
    int       n;
    role_time roles[N_ROLES];
    double    token_s, prompt_s; /* sums over the roles */
} breakdown;

/* Times every role over all layers: batch 1, then batch o->prompt; the best
 * of 3 reps, each after a cache flush (a read of flush_bytes of buf). */
static void run_breakdown(const decode_opts *o, const orion_gguf *g, orion_threadpool *pool, const void *flush,
                          size_t flush_bytes, breakdown *bd) {
    static const char *const roles[N_ROLES] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                               "ffn_gate", "ffn_up", "ffn_down", "output"};
    memset(bd, 0, sizeof *bd);
    if (!g) return;
    uint64_t n_layer = 0;
    char key[96], arch[32] = "";
    orion_gguf_get_str(g, "general.architecture", arch, sizeof arch);
    snprintf(key, sizeof key, "%s.block_count", arch);
    if (orion_gguf_get_u64(g, key, &n_layer) != ORION_OK || n_layer == 0 || n_layer > 1024) return;
    int64_t max_in = 0, max_out = 0;
    size_t scratch = 0;
    for (int r = 0; r < N_ROLES; r++) {
        role_time *rt = &bd->roles[bd->n];
        memset(rt, 0, sizeof *rt);
        rt->name = roles[r];
        int count = r == N_ROLES - 1 ? 1 : (int)n_layer;
        for (int l = 0; l < count; l++) {
            if (r == N_ROLES - 1) snprintf(key, sizeof key, "output.weight");
            else snprintf(key, sizeof key, "blk.%d.%s.weight", l, roles[r]);
            const orion_gguf_tensor *t = orion_gguf_find_tensor(g, key);
            if (!t && r == N_ROLES - 1) t = orion_gguf_find_tensor(g, "token_embd.weight"); /* tied head */
            if (!t || t->n_dims != 2) break;
            rt->type = t->type, rt->n_in = t->ne[0], rt->n_out = t->ne[1];
            rt->data[rt->count++] = t->data;
            rt->bytes += t->n_bytes;
        }
        if (rt->count != count) continue;
        max_in = rt->n_in > max_in ? rt->n_in : max_in;
        max_out = rt->n_out > max_out ? rt->n_out : max_out;
        for (int b = 0; b < 2; b++) {
            size_t sb = orion_matmul_scratch_bytes(rt->type, rt->n_out, rt->n_in, b ? o->prompt : 1, o->threads);
            scratch = sb > scratch ? sb : scratch;
        }
        bd->n++;
    }
    float *x = malloc(sizeof(float) * (size_t)max_in * (size_t)o->prompt);
    float *y = malloc(sizeof(float) * (size_t)max_out * (size_t)o->prompt);
    orion_arena *arena = NULL;
    if (!x || !y || orion_arena_init(scratch + 4096, &arena) != ORION_OK) goto done;
    bench_rng rng = {o->seed + 17};
    for (int64_t i = 0; i < max_in * o->prompt; i++) x[i] = bench_rng_float(&rng);
    for (int i = 0; i < bd->n; i++) {
        role_time *rt = &bd->roles[i];
        for (int pass = 0; pass < 2; pass++) {
            int64_t batch = pass == 0 ? 1 : o->prompt;
            double best = 0.0;
            for (int rep = 0; rep < 3; rep++) {
                bench_stream_read(pool, flush, flush_bytes);
                double t0 = bench_now();
                for (int l = 0; l < rt->count; l++) {
                    orion_arena_reset(arena);
                    if (orion_matmul(pool, arena, rt->type, rt->data[l], rt->n_out, rt->n_in, x, batch, y) !=
                        ORION_OK)
                        goto done;
                }
                double dt = bench_now() - t0;
                if (rep == 0 || dt < best) best = dt;
            }
            if (pass == 0) rt->s_token = best;
            else rt->s_prompt = best;
        }
        bd->token_s += rt->s_token;
        bd->prompt_s += rt->s_prompt;
    }
    bd->ran = true;
done:
    orion_arena_free(arena);
    free(x);
    free(y);
}

static void print_breakdown(const decode_opts *o, const breakdown *bd, const decode_runs *me) {
    double tok_s = me->ok ? 1.0 / best_of(me->gen_tps, me->n) : 0.0;
    double pre_s = me->ok ? o->prompt / best_of(me->prefill_tps, me->n) : 0.0;
    printf("\n  where the time goes: each matrix role alone through orion_matmul, all layers, caches flushed\n");
    printf("  %-12s %-5s %13s %5s %9s   %9s %7s   %10s %7s\n", "role", "type", "shape (in x out)", "x", "MB",
           "ms/token", "GB/s", "ms/prefill", "GFLOP/s");
    for (int i = 0; i < bd->n; i++) {
        const role_time *r = &bd->roles[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)r->n_in, (long long)r->n_out);
        double flops = 2.0 * (double)r->n_in * (double)r->n_out * r->count * o->prompt;
        printf("  %-12s %-5s %13s %5d %9.1f   %9.3f %7.2f   %10.2f %7.1f\n", r->name, orion_type_name(r->type), shape,
               r->count, (double)r->bytes / 1e6, r->s_token * 1e3, (double)r->bytes / r->s_token / 1e9,
               r->s_prompt * 1e3, flops / r->s_prompt / 1e9);
    }
    printf("  %-12s %-5s %13s %5s %9s   %9.3f %7s   %10.2f\n", "matmuls", "", "", "", "", bd->token_s * 1e3, "",
           bd->prompt_s * 1e3);
    if (me->ok) {
        printf("  %-12s %-5s %13s %5s %9s   %9.3f %7s   %10.2f\n", "measured", "", "", "", "", tok_s * 1e3, "",
               pre_s * 1e3);
        printf("  %-12s %-5s %13s %5s %9s   %9.3f %7s   %10.2f   (attention, norms, rope, KV, hand-offs)\n",
               "rest", "", "", "", "", (tok_s - bd->token_s) * 1e3, "", (pre_s - bd->prompt_s) * 1e3);
    }
}

static void json_breakdown(FILE *f, const decode_opts *o, const breakdown *bd) {
    fprintf(f, "[");
    for (int i = 0; i < bd->n; i++) {
        const role_time *r = &bd->roles[i];
        fprintf(f,
                "%s{\"role\": \"%s\", \"type\": \"%s\", \"n_in\": %lld, \"n_out\": %lld, \"count\": %d, "
                "\"bytes\": %zu, \"token_s\": %.6f, \"prompt_s\": %.6f, \"prompt_tokens\": %d}",
                i ? ", " : "", r->name, orion_type_name(r->type), (long long)r->n_in, (long long)r->n_out, r->count,
                r->bytes, r->s_token, r->s_prompt, o->prompt);
    }
    fprintf(f, "]");
}

/* ---- report ------------------------------------------------------------------------ */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_runs(FILE *f, const decode_runs *r, double limit) {
    if (!r->ok) {
        fprintf(f, "null");
        return;
    }
    double g = best_of(r->gen_tps, r->n);
    fprintf(f,
            "{\"prefill_tokens_per_s\": %.3f, \"gen_tokens_per_s\": %.3f, \"prefill_median\": %.3f, "
            "\"gen_median\": %.3f, \"gen_ratio_to_limit\": %.4f, \"load_s\": %.3f, \"reps\": [",
            best_of(r->prefill_tps, r->n), g, median_of(r->prefill_tps, r->n), median_of(r->gen_tps, r->n),
            limit > 0 ? g / limit : 0.0, r->load_s);
    for (int i = 0; i < r->n; i++)
        fprintf(f, "%s[%.3f, %.3f]", i ? ", " : "", r->prefill_tps[i], r->gen_tps[i]);
    fprintf(f, "]}");
}

static void print_json(const decode_opts *o, const orion_llm_info *in, const token_bytes *tb,
                       const bench_bandwidth *bw, double limit, const decode_runs *me, const interleaved *il,
                       const decode_runs *peer_runs, const char *peer_error, const breakdown *bd) {
    FILE *f = stdout;
    fprintf(f, "{\"model\": ");
    json_string(f, o->model);
    fprintf(f,
            ", \"arch\": \"%s\", \"weight_type\": \"%s\", \"n_layer\": %d, \"n_embd\": %d, \"n_vocab\": %d, "
            "\"threads\": %d, \"kernels\": \"%s\", \"prompt_tokens\": %d, \"gen_tokens\": %d, \"reps\": %d,\n",
            in->arch, tb->wtype, in->n_layer, in->n_embd, in->n_vocab, o->threads, orion_kernels_name(), o->prompt,
            o->gen, o->reps);
    fprintf(f,
            " \"bandwidth_gbs\": %.3f, \"bandwidth_buffer_bytes\": %zu, \"weight_bytes\": %zu, "
            "\"weight_bytes_read_per_token\": %.0f, \"kv_bytes_read_per_token\": %.0f, \"avg_positions\": %.1f, "
            "\"bytes_per_token\": %.0f, \"limit_tokens_per_s\": %.3f,\n",
            bw->gbs, bw->bytes, tb->weight_bytes, tb->weights_read, tb->kv_read, tb->avg_ctx, tb->total, limit);
    fprintf(f, " \"orion\": ");
    json_runs(f, me, limit);
    if (il->ran)
        fprintf(f,
                ",\n \"orion_interleaved\": {\"pairs\": %d, \"read_bytes\": %zu, \"gen_ratio_median\": %.4f, "
                "\"gen_ratio_p25\": %.4f, \"gen_ratio_p75\": %.4f}",
                il->pairs, il->read_bytes, il->median, il->p25, il->p75);
    fprintf(f, ",\n \"llamacpp\": ");
    json_runs(f, peer_runs, limit);
    if (peer_error && *peer_error) {
        fprintf(f, ", \"llamacpp_error\": ");
        json_string(f, peer_error);
    }
    if (me->ok && peer_runs->ok) {
        fprintf(f, ",\n \"prefill_ratio_vs_llamacpp\": %.4f, \"gen_ratio_vs_llamacpp\": %.4f",
                best_of(me->prefill_tps, me->n) / best_of(peer_runs->prefill_tps, peer_runs->n),
                best_of(me->gen_tps, me->n) / best_of(peer_runs->gen_tps, peer_runs->n));
    }
    if (bd->ran) {
        fprintf(f, ",\n \"breakdown\": ");
        json_breakdown(f, o, bd);
    }
    fprintf(f, "}\n");
}

static void print_row(const char *name, const decode_runs *r, double limit) {
    double p = best_of(r->prefill_tps, r->n), g = best_of(r->gen_tps, r->n);
    printf("  %-16s %10.1f %10.1f   %10.2f %10.2f   %6.1f%%\n", name, p, median_of(r->prefill_tps, r->n), g,
           median_of(r->gen_tps, r->n), limit > 0 ? 100.0 * g / limit : 0.0);
}

static void print_table(const decode_opts *o, const orion_llm_info *in, const token_bytes *tb,
                        const bench_bandwidth *bw, double limit, const decode_runs *me, const interleaved *il,
                        const decode_runs *peer_runs, const char *peer_error, const peer *pr, const breakdown *bd) {
    printf("model:        %s\n", o->model);
    printf("              %s, %s, %d layers, embd %d, ff %d, heads %d/%d, vocab %d\n", in->arch, tb->wtype,
           in->n_layer, in->n_embd, in->n_ff, in->n_head, in->n_head_kv, in->n_vocab);
    printf("threads:      %d (kernels %s, %d CPUs)\n", o->threads, orion_kernels_name(), orion_cpu_count());
    printf("bandwidth:    %.2f GB/s streaming read, %d threads, %.0f MiB buffer, best of the runs\n", bw->gbs,
           o->threads, (double)bw->bytes / 1048576.0);
    printf("per token:    %.1f MB weights (of %.1f MB: one embedding row read) + %.2f MB KV in %s (%.0f positions on "
           "average) = %.1f MB\n",
           tb->weights_read / 1e6, (double)tb->weight_bytes / 1e6, tb->kv_read / 1e6, orion_type_name(o->kv_type),
           tb->avg_ctx, tb->total / 1e6);
    printf("limit:        %.2f tokens/s generation (bandwidth / bytes per token)\n", limit);
    const size_t l3 = bench_l3_bytes();
    if (l3 > 0 && tb->total < 4.0 * (double)l3)
        printf("note:         %.1f MB per token is under 4x the L3 cache (%.1f MB): the weights are served from\n"
               "              caches, not DRAM, and the bandwidth limit does not apply\n",
               tb->total / 1e6, (double)l3 / 1e6);
    printf("\n  %d tokens prefill, then %d generated one at a time; best and median of %d reps%s\n", o->prompt,
           o->gen, me->n, peer_runs->ok ? " (interleaved)" : "");
    printf("  %-16s %10s %10s   %10s %10s   %7s\n", "", "prefill", "(median)", "gen", "(median)", "of limit");
    if (me->ok) print_row("orion", me, limit);
    if (peer_runs->ok) {
        print_row("llama.cpp", peer_runs, limit);
        printf("  %-16s %10.2fx %21.2fx\n", "orion/llama.cpp",
               best_of(me->prefill_tps, me->n) / best_of(peer_runs->prefill_tps, peer_runs->n),
               best_of(me->gen_tps, me->n) / best_of(peer_runs->gen_tps, peer_runs->n));
        printf("\n  llama.cpp: %s\n", pr->co.info);
    } else if (o->vs_llamacpp) {
        printf("\n  llama.cpp: not measured: %s\n", peer_error);
    }
    if (il->ran)
        printf("\n  interleaved: %d generated tokens of orion, each beside a plain read of the %.1f MB of weights\n"
               "  it streams, in turn: generation at %.1f%% of the read's rate (median; quartiles %.1f%% .. %.1f%%)\n",
               il->pairs, (double)il->read_bytes / 1e6, 100 * il->median, 100 * il->p25, 100 * il->p75);
    else
        printf("\n  interleaved: not measured (the weights of %s could not be listed from GGUF tensors)\n", o->model);
    if (bd->ran) print_breakdown(o, bd, me);
    printf("\n  of limit: best generation / the limit from the best bandwidth of the run\n");
    printf("  timings are of a shared machine: compare best with best, and rerun to see the noise;\n"
           "  the interleaved ratio is the steady one\n");
}

/* ---- the command ----------------------------------------------------------------- */

/* The read bandwidth right after a rep: the best of 2 passes over buf (one
 * buffer, filled once, for every probe), folded into the best of the run;
 * 0 without a buffer. */
static double probe_after_rep(orion_threadpool *pool, const void *buf, size_t bytes, bench_bandwidth *best) {
    if (!buf) return 0.0;
    double dt = bench_stream_read(pool, buf, bytes);
    const double dt2 = bench_stream_read(pool, buf, bytes);
    if (dt2 < dt) dt = dt2;
    const double gbs = dt > 0 ? (double)bytes / dt / 1e9 : 0.0;
    if (gbs > best->gbs) {
        best->gbs = gbs;
        best->best_s = dt;
    }
    return gbs;
}

int orion_cli_bench_decode(int argc, char **argv) {
    decode_opts o = {NULL, false, false, false, false, 0, 128, 128, 3, 1, ORION_TYPE_F16};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--json") == 0) o.json = true;
        else if (strcmp(a, "--quick") == 0) o.quick = true;
        else if (strcmp(a, "--vs-llamacpp") == 0) o.vs_llamacpp = true;
        else if (strcmp(a, "--breakdown") == 0) o.breakdown = true;
        else if (strcmp(a, "--threads") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, BENCH_MAX_THREADS, &o.threads)) return usage();
        } else if (strcmp(a, "--prompt-tokens") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, 1 << 16, &o.prompt)) return usage();
        } else if (strcmp(a, "--gen-tokens") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, 1 << 16, &o.gen)) return usage();
        } else if (strcmp(a, "--reps") == 0 && has) {
            if (!bench_parse_int(argv[++i], 1, DECODE_MAX_REPS, &o.reps)) return usage();
        } else if (strcmp(a, "--kv-type") == 0 && has) {
            if (orion_type_from_name(argv[++i], &o.kv_type) != ORION_OK) {
                fprintf(stderr, "orion bench decode: --kv-type: %s\n", orion_last_error());
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0 && has) {
            int s;
            if (!bench_parse_int(argv[++i], 0, INT_MAX, &s)) return usage();
            o.seed = (uint64_t)s;
        } else if (!bench_take_model("decode", a, &o.model)) {
            return usage();
        }
    }
    if (!o.model) return usage();
    o.threads = bench_threads(o.threads);

    int rc = 1;
    orion_side s = {0};
    orion_threadpool *pool = NULL;
    peer pr = {0};
    decode_runs me, them;
    memset(&me, 0, sizeof me);
    memset(&them, 0, sizeof them);
    char peer_error[320] = "";
    void *probe_buf = NULL; /* the bandwidth probes after each rep */
    orion_gguf *g = NULL;
    static breakdown bd; /* large: the weight pointers */
    memset(&bd, 0, sizeof bd);

    double t0 = bench_now();
    orion_llm_params lp = orion_llm_default_params();
    lp.n_threads = o.threads;
    lp.kv_type = o.kv_type;
    lp.n_ctx = o.prompt + o.gen;
    lp.n_batch = o.prompt <= 8192 ? o.prompt : 512;
    if (orion_llm_load(o.model, &lp, &s.llm) != ORION_OK) {
        fprintf(stderr, "orion bench decode: %s\n", orion_last_error());
        return 1;
    }
    me.load_s = bench_now() - t0;
    orion_llm_get_info(s.llm, &s.info);
    s.tokens = malloc(sizeof(int32_t) * (size_t)o.prompt);
    s.logits = malloc(sizeof(float) * (size_t)s.info.n_vocab);
    if (!s.tokens || !s.logits) {
        fprintf(stderr, "orion bench decode: out of memory\n");
        goto done;
    }
    /* The same ids as the llama.cpp driver draws: splitmix64(seed), in [3, n_vocab). */
    bench_rng rng = {o.seed};
    for (int i = 0; i < o.prompt; i++)
        s.tokens[i] = s.info.n_vocab > 3 ? 3 + (int32_t)(bench_rng_u64(&rng) % (uint64_t)(s.info.n_vocab - 3)) : 0;

    /* the file's tensors (NULL for a llama2.c file): bytes per token, the
     * interleaved reads and the breakdown */
    if (orion_gguf_is_file(o.model) && orion_gguf_open(o.model, &g) != ORION_OK) g = NULL;
    token_bytes tb;
    count_token_bytes(&o, g, &s.info, &tb);

    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = o.threads;
    if (orion_threadpool_init(&tp, &pool) != ORION_OK) {
        fprintf(stderr, "orion bench decode: %s\n", orion_last_error());
        goto done;
    }
    size_t l3 = bench_l3_bytes();
    size_t bw_bytes = o.quick ? (size_t)64 << 20 : (size_t)256 << 20;
    if (!o.quick && l3 * 8 > bw_bytes) bw_bytes = l3 * 8;
    int bw_reps = o.quick ? 2 : 5;
    bench_bandwidth bw, bw2;
    if (bench_read_bandwidth(pool, bw_bytes, bw_reps, &bw) != ORION_OK) {
        fprintf(stderr, "orion bench decode: cannot allocate %zu bytes for the bandwidth probe\n", bw_bytes);
        goto done;
    }

    if (o.vs_llamacpp && o.kv_type != ORION_TYPE_F16) {
        /* the driver runs llama.cpp with its default f16 cache: not the same work */
        snprintf(peer_error, sizeof peer_error, "--vs-llamacpp compares with an f16 KV cache only");
        fprintf(stderr, "orion bench decode: %s\n", peer_error);
    } else if (o.vs_llamacpp) {
        if (!peer_start(&pr, &o, peer_error, sizeof peer_error)) {
            fprintf(stderr, "orion bench decode: %s\n", peer_error);
        } else {
            them.ok = true;
            them.load_s = bench_json_num(pr.co.info, "load_s");
        }
    }

    probe_buf = bench_alloc(bw_bytes);
    if (probe_buf) bench_stream_fill(pool, probe_buf, bw_bytes);

    /* Warm-up (not counted): faults the mapped weights in, wakes the threads. */
    double p_tps, g_tps;
    if (orion_rep(&s, &o, &p_tps, &g_tps) != ORION_OK) {
        fprintf(stderr, "orion bench decode: %s\n", orion_last_error());
        goto done;
    }
    if (them.ok && !peer_rep(&pr, &p_tps, &g_tps, peer_error, sizeof peer_error)) them.ok = false;
    for (int r = 0; r < o.reps; r++) {
        if (orion_rep(&s, &o, &me.prefill_tps[r], &me.gen_tps[r]) != ORION_OK) {
            fprintf(stderr, "orion bench decode: %s\n", orion_last_error());
            goto done;
        }
        me.n = r + 1;
        const double me_bw = probe_after_rep(pool, probe_buf, bw_bytes, &bw);
        double them_bw = 0.0;
        if (them.ok) {
            if (peer_rep(&pr, &them.prefill_tps[r], &them.gen_tps[r], peer_error, sizeof peer_error)) {
                them.n = r + 1;
                them_bw = probe_after_rep(pool, probe_buf, bw_bytes, &bw);
            } else {
                them.ok = false;
            }
        }
        if (!o.json) {
            fprintf(stderr, "rep %d/%d: orion %.1f / %.2f tokens/s", r + 1, o.reps, me.prefill_tps[r],
                    me.gen_tps[r]);
            if (them.ok) fprintf(stderr, ", llama.cpp %.1f / %.2f", them.prefill_tps[r], them.gen_tps[r]);
            fprintf(stderr, " (prefill / generation); read %.2f GB/s after orion", me_bw);
            if (them.ok) fprintf(stderr, ", %.2f after llama.cpp", them_bw);
            fprintf(stderr, "\n");
        }
    }
    me.ok = true;
    interleaved il;
    if (run_interleaved(&s, &o, g, pool, &tb, &il) != ORION_OK) {
        fprintf(stderr, "orion bench decode: %s\n", orion_last_error());
        goto done;
    }
    if (them.ok && them.n == 0) them.ok = false;
    if (!them.ok && o.vs_llamacpp && !peer_error[0]) snprintf(peer_error, sizeof peer_error, "no rep completed");
    if (bench_read_bandwidth(pool, bw_bytes, bw_reps, &bw2) == ORION_OK && bw2.gbs > bw.gbs) bw = bw2;
    double limit = tb.total > 0 ? bw.gbs * 1e9 / tb.total : 0.0;

    if (o.breakdown) {
        void *flush = bench_alloc(bw_bytes);
        if (flush) {
            bench_stream_fill(pool, flush, bw_bytes);
            run_breakdown(&o, g, pool, flush, bw_bytes, &bd);
            bench_free(flush);
        }
        if (!bd.ran) fprintf(stderr, "orion bench decode: --breakdown: not a GGUF Llama model, or %s\n",
                             orion_last_error());
    }
    if (o.json) print_json(&o, &s.info, &tb, &bw, limit, &me, &il, &them, peer_error, &bd);
    else print_table(&o, &s.info, &tb, &bw, limit, &me, &il, &them, peer_error, &pr, &bd);
    rc = 0;
done:
    bench_free(probe_buf);
    orion_gguf_free(g);
    if (pr.co.pid > 0) bench_peer_stop(&pr.co);
    orion_threadpool_free(pool);
    free(s.tokens);
    free(s.logits);
    orion_llm_free(s.llm);
    return rc;
}
