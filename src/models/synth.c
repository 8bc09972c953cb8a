/*
 * synth.c — writes synthetic Llama/Mistral GGUF models: the shape of a real
 * model (TinyLlama-1.1B, Llama-2-7B, Mistral-7B, or any dims), seeded random
 * weights and the real Llama 2 tokenizer, so that speed can be measured on a
 * model of the real size without downloading one.
 *
 * How it works: the metadata (llama.cpp's keys, general.architecture "llama"
 * for Mistral too, plus llama.attention.sliding_window) and the vocabulary
 * (a llama2.c tokenizer.bin read by orion__llama2c_vocab_load, which undoes
 * the export's ' ' and "\n<s>\n" changes and assigns the token types) are set
 * on a GGUF writer; every tensor is registered with a producer that runs at
 * write time (orion__gguf_writer_add_tensor_fn), so the process holds one
 * tensor, never the model: a 7B q4_0 file is written in ~one tensor's memory.
 *
 * A producer splits its rows into contiguous ranges over a thread pool; each
 * row draws N(0, 0.02^2) values (Box-Muller on splitmix64) from a generator
 * seeded by hash(seed, tensor name) + row, then converts them to the
 * tensor's type with orion_quantize (the reference rule's bytes). Identical
 * seeds give identical files whatever the thread count. Norms are 1.
 * orion__synth_write_tensors is that writer, shared with synth_clip.c (the
 * CLIP image encoders).
 */
#include "models/synth.h"

#include "formats/gguf_internal.h"
#include "formats/llama2c.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SYNTH_STDDEV 0.02f

static const orion_synth_shape SHAPES[] = {
    /* name              arch       embd  ff     layer head kv  vocab  ctx    swa   rope      eps */
    {"tinyllama-1.1b", "llama", 2048, 5632, 22, 32, 4, 32000, 2048, 0, 10000.0f, 1e-5f},
    {"llama-2-7b", "llama", 4096, 11008, 32, 32, 32, 32000, 4096, 0, 10000.0f, 1e-5f},
    {"mistral-7b", "mistral", 4096, 14336, 32, 32, 8, 32000, 32768, 4096, 10000.0f, 1e-5f},
    /* for tests: every matrix a multiple of 32 wide, GQA, the whole vocabulary */
    {"test-tiny", "llama", 64, 192, 2, 4, 2, 32000, 256, 32, 10000.0f, 1e-5f},
};

const orion_synth_shape *orion__synth_shape_at(int i) {
    return i >= 0 && i < (int)ORION_ARRAY_LEN(SHAPES) ? &SHAPES[i] : NULL;
}

const orion_synth_shape *orion__synth_shape_find(const char *name) {
    for (size_t i = 0; name && i < ORION_ARRAY_LEN(SHAPES); i++)
        if (strcmp(SHAPES[i].name, name) == 0) return &SHAPES[i];
    return NULL;
}

orion_synth_params orion__synth_default_params(void) {
    orion_synth_params p;
    memset(&p, 0, sizeof p);
    p.shape = SHAPES[0];
    p.type = ORION_TYPE_Q4_0;
    p.seed = 1;
    return p;
}

orion_status orion__synth_shape_check(const orion_synth_shape *s) {
    if (s->n_embd <= 0 || s->n_ff <= 0 || s->n_layer <= 0 || s->n_head <= 0 || s->n_head_kv <= 0 ||
        s->n_vocab < 0 || s->n_ctx <= 0 || s->sliding_window < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: every size must be positive (embd %d, ff %d, layers %d, "
                                                  "heads %d/%d, vocab %d, ctx %d)",
                           s->n_embd, s->n_ff, s->n_layer, s->n_head, s->n_head_kv, s->n_vocab, s->n_ctx);
    if (s->n_embd > (1 << 16) || s->n_ff > (1 << 18) || s->n_layer > 1024 || s->n_head > 1024 ||
        s->n_vocab > (1 << 22) || s->n_ctx > (1 << 22))
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: shape too large");
    if (s->n_embd % s->n_head != 0 || (s->n_embd / s->n_head) % 2 != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: n_embd %d is not n_head %d times an even head size",
                           s->n_embd, s->n_head);
    if (s->n_head % s->n_head_kv != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: n_head %d is not a multiple of n_head_kv %d", s->n_head,
                           s->n_head_kv);
    if (!(s->rope_freq_base > 0.0f) || !(s->rms_eps > 0.0f))
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: rope base and rms epsilon must be positive");
    return ORION_OK;
}

/* ---- random numbers --------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* FNV-1a of the name, mixed with the seed: each tensor has its own stream. */
static uint64_t tensor_seed(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    uint64_t s = seed ^ h;
    return splitmix64(&s);
}

/* n values ~ N(0, stddev^2): Box-Muller, two normals per 64-bit draw. */
static void fill_normal(uint64_t state, float *x, int64_t n, float stddev) {
    const float two_pi = 6.2831853071795864f;
    for (int64_t i = 0; i < n; i += 2) {
        uint64_t r = splitmix64(&state);
        float u1 = ((float)(uint32_t)(r >> 40) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] */
        float u2 = (float)((r >> 16) & 0xffffff) * (1.0f / 16777216.0f);       /* [0, 1) */
        float rad = stddev * sqrtf(-2.0f * logf(u1));
        x[i] = rad * cosf(two_pi * u2);
        if (i + 1 < n) x[i + 1] = rad * sinf(two_pi * u2);
    }
}

/* ---- tensors ------------------------------------------------------------------------ */

typedef orion_synth_tensor synth_tensor;

struct orion_synth_ctx {
    const orion_synth_params *p;
    orion_threadpool         *pool;
    float                    *rows;       /* per thread: one row of floats */
    int64_t                   row_stride; /* floats per thread */
    int64_t                   n_tensors;
    size_t                    bytes_done, bytes_total;
};

typedef struct row_task {
    const synth_tensor *t;
    uint8_t            *dst;
    uint64_t            seed;
    _Atomic int         failed; /* set by any thread whose conversion failed */
} row_task;

static void produce_rows(void *arg, int ith, int nth) {
    row_task *task = arg;
    const synth_tensor *t = task->t;
    const int64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3], n = t->ne[0];
    const int64_t r0 = n_rows * ith / nth, r1 = n_rows * (ith + 1) / nth;
    const size_t row_bytes = orion_type_row_bytes(t->type, n);
    float *x = t->ctx->rows + (size_t)ith * (size_t)t->ctx->row_stride;
    for (int64_t r = r0; r < r1; r++) {
        uint8_t *d = task->dst + (size_t)r * row_bytes;
        if (t->fill != ORION_SYNTH_RANDOM) {
            for (int64_t i = 0; i < n; i++) x[i] = t->fill == ORION_SYNTH_ONES ? 1.0f : 0.0f;
        } else {
            fill_normal(task->seed + (uint64_t)r * 0x632be59bd9b4e019ull, x, n, SYNTH_STDDEV);
        }
        if (t->type == ORION_TYPE_F32) {
            memcpy(d, x, row_bytes);
        } else if (orion_quantize(t->type, x, d, 1, n, NULL) != ORION_OK) {
            task->failed = 1;
        }
    }
}

static orion_status produce(void *user, void *dst, size_t n_bytes) {
    synth_tensor *t = user;
    struct orion_synth_ctx *c = t->ctx;
    if (n_bytes != t->bytes)
        return orion__fail(ORION_ERR_INTERNAL, "synth: tensor '%s': %zu bytes asked, %zu expected", t->name, n_bytes,
                           t->bytes);
    row_task task = {t, dst, tensor_seed(c->p->seed, t->name), 0};
    orion_threadpool_run(c->pool, produce_rows, &task);
    if (task.failed)
        return orion__fail(ORION_ERR_INTERNAL, "synth: tensor '%s': cannot convert to %s", t->name,
                           orion_type_name(t->type));
    c->bytes_done += n_bytes;
    if (c->p->on_tensor) {
        orion_synth_progress pr = {t->name,           t->type,       t->index,       c->n_tensors,
                                   t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3], n_bytes, c->bytes_done,
                                   c->bytes_total};
        c->p->on_tensor(c->p->user, &pr);
    }
    return ORION_OK;
}

/* The same rule as orion_convert (docs/quantization.md). */
static orion_type tensor_type(orion_type want, const char *name, int n_dims, int64_t ne0) {
    if (n_dims == 1) return ORION_TYPE_F32;
    orion_type to = want;
    if ((strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0) &&
        orion_type_bits_per_weight(to) < 8.5)
        to = ORION_TYPE_Q8_0;
    if (ne0 % orion_type_block_elems(to) != 0) to = ORION_TYPE_F16;
    return to;
}

/* llama.cpp's general.file_type (enum llama_ftype) for the weight type. */
static uint32_t file_type(orion_type t) {
    switch (t) {
    case ORION_TYPE_F32: return 0;
    case ORION_TYPE_F16: return 1;
    case ORION_TYPE_Q4_0: return 2;
    case ORION_TYPE_Q4_1: return 3;
    case ORION_TYPE_Q8_0: return 7;
    case ORION_TYPE_BF16: return 32;
    default: return 0;
    }
}

/* Tokens in a llama2.c tokenizer.bin: i32 max_len, then {f32, i32 len, bytes}. */
static orion_status count_tokens(const char *path, int32_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return orion__fail(ORION_ERR_NOT_FOUND, "%s: cannot open the tokenizer (use --tokenizer)", path);
    int32_t n = 0, len;
    float score;
    orion_status st = ORION_OK;
    if (fread(&len, 4, 1, f) != 1) st = orion__fail(ORION_ERR_FORMAT, "%s: truncated tokenizer header", path);
    while (st == ORION_OK && fread(&score, 4, 1, f) == 1) {
        if (fread(&len, 4, 1, f) != 1 || len < 0 || len > (1 << 16) || fseek(f, len, SEEK_CUR) != 0 ||
            n == (1 << 22)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: bad token %d", path, n);
            break;
        }
        n++;
    }
    fclose(f);
    if (st == ORION_OK && n < 3) st = orion__fail(ORION_ERR_FORMAT, "%s: %d tokens is not a vocabulary", path, n);
    *out = n;
    return st;
}

static orion_status set_metadata(orion_gguf_writer *w, const orion_synth_params *p, const char *arch,
                                 const orion_llama2c_vocab *v, int32_t n_vocab) {
    const orion_synth_shape *s = &p->shape;
    char name[128];
    snprintf(name, sizeof name, "synthetic %s %s seed %llu", s->name ? s->name : "custom", orion_type_name(p->type),
             (unsigned long long)p->seed);
    orion_status st;
#define CHECK(call)                               \
    do {                                          \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)
    CHECK(orion_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK(orion_gguf_writer_set_str(w, "general.name", name));
    CHECK(orion_gguf_writer_set_u32(w, "general.file_type", file_type(p->type)));
    CHECK(orion_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab));
    CHECK(orion_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)s->n_ctx));
    CHECK(orion_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)s->n_embd));
    CHECK(orion_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)s->n_layer));
    CHECK(orion_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)s->n_ff));
    CHECK(orion_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(s->n_embd / s->n_head)));
    CHECK(orion_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)s->n_head));
    CHECK(orion_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)s->n_head_kv));
    CHECK(orion_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", s->rms_eps));
    CHECK(orion_gguf_writer_set_f32(w, "llama.rope.freq_base", s->rope_freq_base));
    if (strcmp(arch, "mistral") == 0)
        CHECK(orion_gguf_writer_set_u32(w, "llama.attention.sliding_window",
                                        (uint32_t)(s->sliding_window ? s->sliding_window : 4096)));
    CHECK(orion_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    CHECK(orion_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                          (uint64_t)n_vocab));
    CHECK(orion_gguf_writer_set_array(w, "tokenizer.ggml.scores", ORION_GGUF_F32, v->scores, (uint64_t)n_vocab));
    CHECK(orion_gguf_writer_set_array(w, "tokenizer.ggml.token_type", ORION_GGUF_I32, v->types, (uint64_t)n_vocab));
    CHECK(orion_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
    CHECK(orion_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    CHECK(orion_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    CHECK(orion_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));
    CHECK(orion_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false));
#undef CHECK
    return ORION_OK;
}

/* Fills ts (room for 3 + 9 * n_layer) in llama.cpp's naming. Returns the count. */
static int64_t list_tensors(const orion_synth_params *p, int32_t n_vocab, synth_tensor *ts) {
    const orion_synth_shape *s = &p->shape;
    const int64_t E = s->n_embd, F = s->n_ff, hd = s->n_embd / s->n_head, QD = hd * s->n_head,
                  KD = hd * s->n_head_kv, V = n_vocab;
    int64_t n = 0;
    char nm[64];
#define ADD(dims, n_in, n_out)                                                        \
    do {                                                                              \
        synth_tensor *t = &ts[n];                                                     \
        snprintf(t->name, sizeof t->name, "%s", nm);                                  \
        t->n_dims = dims, t->ne[0] = n_in, t->ne[1] = n_out, t->ne[2] = t->ne[3] = 1; \
        t->fill = dims == 1 ? ORION_SYNTH_ONES : ORION_SYNTH_RANDOM;                   \
        t->type = tensor_type(p->type, t->name, dims, n_in);                          \
        t->bytes = orion_type_row_bytes(t->type, n_in) * (size_t)(n_out);             \
        t->index = n++;                                                               \
    } while (0)
#define NAME(...) snprintf(nm, sizeof nm, __VA_ARGS__)
    NAME("token_embd.weight");
    ADD(2, E, V);
    for (int l = 0; l < s->n_layer; l++) {
        NAME("blk.%d.attn_norm.weight", l); ADD(1, E, 1);
        NAME("blk.%d.attn_q.weight", l); ADD(2, E, QD);
        NAME("blk.%d.attn_k.weight", l); ADD(2, E, KD);
        NAME("blk.%d.attn_v.weight", l); ADD(2, E, KD);
        NAME("blk.%d.attn_output.weight", l); ADD(2, QD, E);
        NAME("blk.%d.ffn_norm.weight", l); ADD(1, E, 1);
        NAME("blk.%d.ffn_gate.weight", l); ADD(2, E, F);
        NAME("blk.%d.ffn_up.weight", l); ADD(2, E, F);
        NAME("blk.%d.ffn_down.weight", l); ADD(2, F, E);
    }
    NAME("output_norm.weight"); ADD(1, E, 1);
    NAME("output.weight"); ADD(2, E, V);
#undef NAME
#undef ADD
    return n;
}

orion_status orion__synth_write_tensors(const char *path, orion_gguf_writer *w, orion_synth_tensor *ts, int64_t n,
                                        const orion_synth_params *p) {
    struct orion_synth_ctx ctx = {p, NULL, NULL, 0, n, 0, 0};
    orion_status st = ORION_OK;
    int64_t widest = 0;
    for (int64_t i = 0; i < n; i++) {
        ts[i].ctx = &ctx;
        ts[i].index = i;
        ts[i].bytes = orion_type_row_bytes(ts[i].type, ts[i].ne[0]) * (size_t)(ts[i].ne[1] * ts[i].ne[2] * ts[i].ne[3]);
        ctx.bytes_total += ts[i].bytes;
        widest = ORION_MAX(widest, ts[i].ne[0]);
        if ((st = orion__gguf_writer_add_tensor_fn(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, produce,
                                                   &ts[i])) != ORION_OK)
            return st;
    }
    orion_threadpool_params tp = orion_threadpool_default_params();
    tp.n_threads = p->n_threads;
    if ((st = orion_threadpool_init(&tp, &ctx.pool)) != ORION_OK) return st;
    ctx.row_stride = (widest + 15) & ~(int64_t)15;
    ctx.rows = orion__malloc(sizeof(float) * (size_t)ctx.row_stride * (size_t)orion_threadpool_n_threads(ctx.pool));
    if (!ctx.rows) st = orion__fail(ORION_ERR_NOMEM, "synth: out of memory");
    else st = orion_gguf_writer_write(w, path);
    orion__free(ctx.rows);
    orion_threadpool_free(ctx.pool);
    return st;
}

orion_status orion__synth_write(const char *path, const orion_synth_params *params) {
    if (!path || !params) return orion__fail(ORION_ERR_INVALID_ARG, "synth: NULL argument");
    const orion_synth_params *p = params;
    if (p->clip) return orion__synth_clip_write(path, p);
    const char *arch = p->arch ? p->arch : p->shape.arch ? p->shape.arch : "llama";
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "mistral") != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: architecture '%s' (expected llama or mistral)", arch);
    if (!orion_type_is_supported((int)p->type))
        return orion__fail(ORION_ERR_INVALID_ARG, "synth: unsupported weight type %d", (int)p->type);
    if (!p->tokenizer) return orion__fail(ORION_ERR_INVALID_ARG, "synth: no tokenizer given");
    orion_status st = orion__synth_shape_check(&p->shape);
    if (st != ORION_OK) return st;

    orion_llama2c_vocab *vocab = NULL;
    orion_gguf_writer *w = NULL;
    synth_tensor *ts = NULL;
    int32_t n_tok = 0;
    if ((st = count_tokens(p->tokenizer, &n_tok)) != ORION_OK) goto done;
    int32_t n_vocab = p->shape.n_vocab ? p->shape.n_vocab : n_tok;
    if (n_vocab > n_tok) {
        st = orion__fail(ORION_ERR_RANGE, "synth: vocabulary of %d tokens asked, %s has %d", n_vocab, p->tokenizer,
                         n_tok);
        goto done;
    }
    if ((st = orion__llama2c_vocab_load(p->tokenizer, n_tok, &vocab)) != ORION_OK) goto done;
    if ((st = orion_gguf_writer_init(&w)) != ORION_OK) goto done;
    if ((st = set_metadata(w, p, arch, vocab, n_vocab)) != ORION_OK) goto done;

    ts = orion__calloc(3 + 9 * (size_t)p->shape.n_layer, sizeof *ts);
    if (!ts) {
        st = orion__fail(ORION_ERR_NOMEM, "synth: out of memory");
        goto done;
    }
    st = orion__synth_write_tensors(path, w, ts, list_tensors(p, n_vocab, ts), p);
done:
    orion__free(ts);
    orion_gguf_writer_free(w);
    orion__llama2c_vocab_free(vocab);
    return st;
}
