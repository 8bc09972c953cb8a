/*
 * cmd_info.c — `orion info FILE [--json] [--ctx N]`: what a GGUF file holds
 * (metadata, tensors with type, shape and bytes, totals, bits per weight) and
 * what it needs in memory to run: the mapped weights, the KV cache at the
 * given context (f16), and an estimate of the scratch arena; the weight
 * bytes per tensor type. For a CLIP image encoder (an mmproj file) it loads
 * the encoder (one thread) and prints its shape, the weight bytes one image
 * uses and the scratch it allocates instead of the decoder's estimates.
 */
#include "cli.h"
#include "orion.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model_shape {
    char     arch[64];
    uint64_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx_train;
} model_shape;

static uint64_t get_arch_u64(const orion_gguf *g, const char *arch, const char *suffix) {
    char key[160];
    uint64_t v = 0;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (orion_gguf_get_u64(g, key, &v) != ORION_OK) v = 0;
    return v;
}

static void read_shape(const orion_gguf *g, model_shape *s) {
    memset(s, 0, sizeof *s);
    if (orion_gguf_get_str(g, "general.architecture", s->arch, sizeof s->arch) != ORION_OK) s->arch[0] = '\0';
    if (!s->arch[0]) return;
    s->n_layer = get_arch_u64(g, s->arch, "block_count");
    s->n_embd = get_arch_u64(g, s->arch, "embedding_length");
    s->n_head = get_arch_u64(g, s->arch, "attention.head_count");
    s->n_head_kv = get_arch_u64(g, s->arch, "attention.head_count_kv");
    if (!s->n_head_kv) s->n_head_kv = s->n_head;
    s->n_ff = get_arch_u64(g, s->arch, "feed_forward_length");
    s->n_ctx_train = get_arch_u64(g, s->arch, "context_length");
    const orion_gguf_value *tokens = orion_gguf_get(g, "tokenizer.ggml.tokens");
    if (tokens && tokens->type == ORION_GGUF_ARRAY) s->n_vocab = tokens->v.arr.count;
}

/* KV cache bytes at n_ctx in f16 (decoders only: encoders keep no cache). */
static uint64_t kv_bytes(const model_shape *s, uint64_t n_ctx) {
    if (!s->n_head || strcmp(s->arch, "bert") == 0) return 0;
    uint64_t head_dim = s->n_embd / s->n_head;
    return 2ull * s->n_layer * n_ctx * s->n_head_kv * head_dim * 2ull;
}

/* Scratch estimate: activations of one 512-token batch through a layer
 * (x, residual, q/k/v, ffn), the attention scores of one head over n_ctx
 * per token, and the logits. */
static uint64_t scratch_bytes(const model_shape *s, uint64_t n_ctx) {
    const uint64_t batch = 512;
    uint64_t act = batch * (6 * s->n_embd + 2 * s->n_ff);
    uint64_t scores = batch * n_ctx;
    uint64_t logits = s->n_vocab;
    return 4ull * (act + scores + logits);
}

/* Weight bytes and tensor counts per tensor type. */
typedef struct type_bytes {
    uint64_t bytes[ORION_TYPE_COUNT];
    int64_t  n[ORION_TYPE_COUNT];
} type_bytes;

static void count_types(const orion_gguf *g, type_bytes *tb) {
    memset(tb, 0, sizeof *tb);
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        if ((int)t->type >= 0 && (int)t->type < ORION_TYPE_COUNT) {
            tb->bytes[t->type] += t->n_bytes;
            tb->n[t->type]++;
        }
    }
}

static void print_types(FILE *f, const type_bytes *tb, bool json) {
    bool first = true;
    for (int t = 0; t < ORION_TYPE_COUNT; t++) {
        if (!tb->n[t]) continue;
        if (json)
            fprintf(f, "%s\"%s\": {\"tensors\": %" PRId64 ", \"bytes\": %" PRIu64 "}", first ? "" : ", ",
                    orion_type_name((orion_type)t), tb->n[t], tb->bytes[t]);
        else
            fprintf(f, "%s%s %.2f MiB (%" PRId64 " tensors)", first ? "" : ", ", orion_type_name((orion_type)t),
                    (double)tb->bytes[t] / 1048576.0, tb->n[t]);
        first = false;
    }
}

/* Writes s[0..len) as a quoted string with JSON escapes. */
static void put_quoted(FILE *f, const char *s, uint64_t len) {
    fputc('"', f);
    for (uint64_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void print_value(FILE *f, const orion_gguf_value *v, bool json) {
    switch (v->type) {
    case ORION_GGUF_U8: case ORION_GGUF_U16: case ORION_GGUF_U32: case ORION_GGUF_U64:
        fprintf(f, "%" PRIu64, v->v.u64);
        break;
    case ORION_GGUF_I8: case ORION_GGUF_I16: case ORION_GGUF_I32: case ORION_GGUF_I64:
        fprintf(f, "%" PRId64, v->v.i64);
        break;
    case ORION_GGUF_F32: case ORION_GGUF_F64:
        if (v->v.f64 != v->v.f64 || v->v.f64 > 1e308 || v->v.f64 < -1e308) fprintf(f, json ? "null" : "%g", v->v.f64);
        else fprintf(f, "%.9g", v->v.f64);
        break;
    case ORION_GGUF_BOOL:
        fputs(v->v.b ? "true" : "false", f);
        break;
    case ORION_GGUF_STRING: {
        uint64_t n = v->v.str.len, shown = json ? n : (n > 60 ? 60 : n);
        put_quoted(f, v->v.str.ptr, shown);
        if (shown < n) fprintf(f, "... (%" PRIu64 " bytes)", n);
        break;
    }
    case ORION_GGUF_ARRAY:
        if (json) {
            fprintf(f, "{\"type\": \"array\", \"elem_type\": \"%s\", \"count\": %" PRIu64 "}",
                    orion_gguf_type_name(v->v.arr.elem_type), v->v.arr.count);
        } else {
            fprintf(f, "[%s x %" PRIu64 "]", orion_gguf_type_name(v->v.arr.elem_type), v->v.arr.count);
        }
        break;
    }
}

int orion_cli_info(int argc, char **argv) {
    const char *path = NULL;
    bool json = false;
    uint64_t n_ctx = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--ctx") == 0 && i + 1 < argc) {
            char *end;
            n_ctx = strtoull(argv[++i], &end, 10);
            if (*end || n_ctx == 0 || n_ctx > (1u << 24)) {
                fprintf(stderr, "orion info: --ctx takes a positive integer\n");
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "orion info: unknown option '%s'\nusage: orion info FILE [--json] [--ctx N]\n", argv[i]);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "orion info: one file at a time\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: orion info FILE [--json] [--ctx N]\n");
        return 2;
    }
    orion_gguf *g = NULL;
    if (orion_gguf_open(path, &g) != ORION_OK) {
        fprintf(stderr, "orion info: %s\n", orion_last_error());
        return 1;
    }
    model_shape s;
    read_shape(g, &s);
    if (!n_ctx) n_ctx = s.n_ctx_train ? s.n_ctx_train : 2048;
    if (n_ctx > 4096 && !s.n_ctx_train) n_ctx = 4096;

    uint64_t weight_bytes = 0, n_params = 0;
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        weight_bytes += t->n_bytes;
        n_params += (uint64_t)t->n_elems;
    }
    uint64_t kv = kv_bytes(&s, n_ctx), scratch = s.arch[0] ? scratch_bytes(&s, n_ctx) : 0;
    type_bytes tb;
    count_types(g, &tb);
    /* an image encoder: its own numbers, from loading it */
    orion_clip_info ci;
    bool clip = strcmp(s.arch, "clip") == 0;
    if (clip) {
        orion_clip_params cp = orion_clip_default_params();
        cp.n_threads = 1;
        orion_clip *c = NULL;
        if (orion_clip_load(path, &cp, &c) != ORION_OK) {
            fprintf(stderr, "orion info: %s\n", orion_last_error());
            orion_gguf_free(g);
            return 1;
        }
        orion_clip_get_info(c, &ci);
        orion_clip_free(c);
        kv = 0;
        scratch = ci.scratch_bytes;
    }
    double bpw = n_params ? 8.0 * (double)weight_bytes / (double)n_params : 0.0;
    FILE *f = stdout;

    if (json) {
        fprintf(f, "{\n  \"file\": ");
        put_quoted(f, path, strlen(path));
        fprintf(f, ",\n  \"version\": %u,\n  \"file_bytes\": %zu,\n  \"alignment\": %zu,\n",
                orion_gguf_version(g), orion_gguf_file_size(g), orion_gguf_alignment(g));
        fprintf(f, "  \"architecture\": ");
        put_quoted(f, s.arch, strlen(s.arch));
        fprintf(f, ",\n  \"metadata\": {");
        for (int64_t i = 0; i < orion_gguf_n_kv(g); i++) {
            fprintf(f, "%s\n    ", i ? "," : "");
            put_quoted(f, orion_gguf_kv_key(g, i), strlen(orion_gguf_kv_key(g, i)));
            fprintf(f, ": ");
            print_value(f, orion_gguf_kv_value(g, i), true);
        }
        fprintf(f, "\n  },\n  \"tensors\": [");
        for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
            const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
            fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
            put_quoted(f, t->name, strlen(t->name));
            fprintf(f, ", \"type\": \"%s\", \"shape\": [", orion_type_name(t->type));
            for (int d = 0; d < t->n_dims; d++) fprintf(f, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            fprintf(f, "], \"bytes\": %zu, \"offset\": %" PRIu64 "}", t->n_bytes, t->offset);
        }
        fprintf(f, "\n  ],\n  \"n_tensors\": %" PRId64 ",\n  \"n_params\": %" PRIu64 ",\n", orion_gguf_n_tensors(g),
                n_params);
        fprintf(f, "  \"weight_bytes\": %" PRIu64 ",\n  \"bits_per_weight\": %.4f,\n", weight_bytes, bpw);
        fprintf(f, "  \"bytes_by_type\": {");
        print_types(f, &tb, true);
        fprintf(f, "},\n");
        if (clip)
            fprintf(f, "  \"vision\": {\"image_size\": %d, \"patch_size\": %d, \"n_patches\": %d, \"n_layer\": %d, "
                       "\"n_layer_used\": %d, \"n_embd\": %d, \"n_head\": %d, \"n_ff\": %d, \"n_mm_hidden\": %d, "
                       "\"n_out\": %d, \"quick_gelu\": %s, \"weight_bytes_used\": %zu, "
                       "\"scratch_bytes_1_thread\": %zu},\n",
                    ci.image_size, ci.patch_size, ci.n_patches, ci.n_layer, ci.n_layer_used, ci.n_embd, ci.n_head,
                    ci.n_ff, ci.n_mm_hidden, ci.n_out, ci.quick_gelu ? "true" : "false", ci.weight_bytes,
                    ci.scratch_bytes);
        fprintf(f, "  \"memory\": {\"ctx\": %" PRIu64 ", \"weights\": %" PRIu64 ", \"kv_cache\": %" PRIu64
                   ", \"scratch\": %" PRIu64 ", \"total\": %" PRIu64 "}\n}\n",
                n_ctx, weight_bytes, kv, scratch, weight_bytes + kv + scratch);
    } else {
        fprintf(f, "file:          %s\n", path);
        fprintf(f, "format:        GGUF v%u, %zu bytes, alignment %zu\n", orion_gguf_version(g),
                orion_gguf_file_size(g), orion_gguf_alignment(g));
        fprintf(f, "architecture:  %s\n", s.arch[0] ? s.arch : "(none)");
        fprintf(f, "\nmetadata (%" PRId64 " keys):\n", orion_gguf_n_kv(g));
        for (int64_t i = 0; i < orion_gguf_n_kv(g); i++) {
            fprintf(f, "  %-44s ", orion_gguf_kv_key(g, i));
            print_value(f, orion_gguf_kv_value(g, i), false);
            fputc('\n', f);
        }
        fprintf(f, "\ntensors (%" PRId64 "):\n", orion_gguf_n_tensors(g));
        fprintf(f, "  %-36s %-6s %-24s %12s\n", "name", "type", "shape", "bytes");
        for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
            const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
            char shape[64];
            int n = 0;
            for (int d = 0; d < t->n_dims && n < (int)sizeof shape; d++)
                n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? " x " : "", t->ne[d]);
            fprintf(f, "  %-36s %-6s %-24s %12zu\n", t->name, orion_type_name(t->type), shape, t->n_bytes);
        }
        fprintf(f, "\ntotals:        %" PRIu64 " parameters, %" PRIu64 " bytes of weights, %.2f bits per weight\n",
                n_params, weight_bytes, bpw);
        fprintf(f, "by type:       ");
        print_types(f, &tb, false);
        fputc('\n', f);
        if (clip) {
            fprintf(f, "vision:        %d px, patch %d (%d patches), %d layers (%d run), embd %d, %d heads, FFN %d, "
                       "%s GELU\n",
                    ci.image_size, ci.patch_size, ci.n_patches, ci.n_layer, ci.n_layer_used, ci.n_embd, ci.n_head,
                    ci.n_ff, ci.quick_gelu ? "quick" : "erf");
            fprintf(f, "projector:     %d -> %d -> %d (output: %d rows of %d per image)\n", ci.n_embd,
                    ci.n_mm_hidden, ci.n_out, ci.n_patches, ci.n_out);
            fprintf(f, "memory to run: %.2f MiB = weights used %.2f MiB (mapped) + scratch %.2f MiB (one image, one "
                       "thread)\n",
                    (double)(ci.weight_bytes + ci.scratch_bytes) / 1048576.0, (double)ci.weight_bytes / 1048576.0,
                    (double)ci.scratch_bytes / 1048576.0);
        } else
        fprintf(f, "memory to run: %.2f MiB = weights %.2f MiB (mapped) + KV cache %.2f MiB (f16, ctx %" PRIu64
                   ") + scratch %.2f MiB (estimate)\n",
                (double)(weight_bytes + kv + scratch) / 1048576.0, (double)weight_bytes / 1048576.0,
                (double)kv / 1048576.0, n_ctx, (double)scratch / 1048576.0);
    }
    orion_gguf_free(g);
    return 0;
}
