/*
 * llama2c.c — reads llama2.c checkpoints (karpathy/llama2.c) and their
 * tokenizer.bin, and turns them into a GGUF with llama.cpp's names.
 *
 * Checkpoint layouts (all little-endian float32 after the header):
 *   legacy (version 0): 7 x i32 {dim, hidden_dim, n_layers, n_heads,
 *     n_kv_heads, vocab_size, seq_len}; vocab_size < 0 means the classifier
 *     is stored separately (unshared). Then token_embedding (vocab, dim),
 *     rms_att (layer, dim), wq (layer, dim, dim), wk (layer, kv_dim, dim),
 *     wv (layer, kv_dim, dim), wo (layer, dim, dim), rms_ffn (layer, dim),
 *     w1 (layer, hidden, dim), w2 (layer, dim, hidden), w3 (layer, hidden,
 *     dim), rms_final (dim), freq_cis_real and _imag (seq_len, head_size/2
 *     each, unused), and wcls (vocab, dim) when unshared.
 *   version 1: u32 magic "ak42", i32 version = 1, the 7 params, u8
 *     shared_classifier, zero padding to 256 bytes; then the norms first
 *     (rms_att for all layers, rms_ffn for all layers, rms_final), then
 *     token_embedding, wq, wk, wv, wo, w1, w2, w3, and wcls when unshared.
 * PyTorch stores a Linear weight as (out, in) row-major, which is exactly
 * GGUF's ne = {in, out}: tensors are copied byte for byte (llama2.c's rotary
 * embedding rotates adjacent pairs, llama.cpp's "normal" rope, so q and k
 * need no permutation).
 *
 * tokenizer.bin: i32 max_token_length, then per token {f32 score, i32 len,
 * len bytes}. Its export replaced SentencePiece's U+2581 with a space and
 * wrote BOS/EOS as "\n<s>\n" / "\n</s>\n"; both are undone here.
 *
 * The file is checked like any other: its size must equal exactly what the
 * header implies, every count is range-checked, and errors name the field.
 */
#include "formats/llama2c.h"

#include <stdio.h>
#include <string.h>

#define LLAMA2C_MAGIC 0x616b3432u
#define LLAMA2C_V1_HEADER 256

static int32_t rd_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Lays out the tensors of a checkpoint with the given params, in file
 * order, starting at `pos`; fails if the file is not exactly that long. */
static orion_status layout(orion_llama2c *m, const char *path, size_t pos) {
    const int64_t dim = m->dim, hid = m->hidden_dim, L = m->n_layers, V = m->vocab_size;
    const int64_t head = dim / m->n_heads, kv_dim = head * m->n_kv_heads;
    /* name, offset-in-floats is assigned as we go */
    size_t off = pos;
    size_t floats;
#define TAKE(field, count)                                                                           \
    do {                                                                                             \
        if (!orion__mul_ok((size_t)(count), 4, &floats) || off > m->size || floats > m->size - off)  \
            return orion__fail(ORION_ERR_FORMAT,                                                     \
                               "%s: truncated llama2.c checkpoint: %s needs %lld floats at byte %zu "  \
                               "but the file has %zu bytes",                                        \
                               path, #field, (long long)(count), off, m->size);                      \
        m->field = (const float *)(m->data + off);                                                   \
        off += floats;                                                                               \
    } while (0)
    if (m->version == 0) {
        TAKE(token_embd, V * dim);
        TAKE(rms_att, L * dim);
        TAKE(wq, L * dim * dim);
        TAKE(wk, L * kv_dim * dim);
        TAKE(wv, L * kv_dim * dim);
        TAKE(wo, L * dim * dim);
        TAKE(rms_ffn, L * dim);
        TAKE(w1, L * hid * dim);
        TAKE(w2, L * dim * hid);
        TAKE(w3, L * hid * dim);
        TAKE(rms_final, dim);
        const float *freq;
        size_t fbytes = (size_t)m->seq_len * (size_t)head * 4; /* real + imag, head/2 each */
        if (fbytes > m->size - off)
            return orion__fail(ORION_ERR_FORMAT, "%s: truncated llama2.c checkpoint: rotary tables missing", path);
        freq = (const float *)(m->data + off);
        (void)freq;
        off += fbytes;
    } else {
        TAKE(rms_att, L * dim);
        TAKE(rms_ffn, L * dim);
        TAKE(rms_final, dim);
        TAKE(token_embd, V * dim);
        TAKE(wq, L * dim * dim);
        TAKE(wk, L * kv_dim * dim);
        TAKE(wv, L * kv_dim * dim);
        TAKE(wo, L * dim * dim);
        TAKE(w1, L * hid * dim);
        TAKE(w2, L * dim * hid);
        TAKE(w3, L * hid * dim);
    }
    if (m->shared_classifier) m->wcls = m->token_embd;
    else TAKE(wcls, V * dim);
#undef TAKE
    if (off != m->size)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: llama2.c checkpoint has %zu bytes but its header implies %zu "
                           "(dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq_len %d)",
                           path, m->size, off, m->dim, m->hidden_dim, m->n_layers, m->n_heads, m->n_kv_heads,
                           m->vocab_size, m->seq_len);
    return ORION_OK;
}

static orion_status check_params(const orion_llama2c *m, const char *path) {
    const int32_t p[7] = {m->dim, m->hidden_dim, m->n_layers, m->n_heads, m->n_kv_heads, m->vocab_size, m->seq_len};
    static const char *const names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                         "seq_len"};
    static const int32_t max[7] = {1 << 16, 1 << 18, 1024, 1024, 1024, 1 << 22, 1 << 22};
    for (int i = 0; i < 7; i++)
        if (p[i] <= 0 || p[i] > max[i])
            return orion__fail(ORION_ERR_FORMAT, "%s: llama2.c header field %s = %d is out of range (1..%d)", path,
                               names[i], p[i], max[i]);
    if (m->dim % m->n_heads != 0 || m->n_heads % m->n_kv_heads != 0 || (m->dim / m->n_heads) % 2 != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: llama2.c header: dim %d, heads %d, kv heads %d do not divide", path,
                           m->dim, m->n_heads, m->n_kv_heads);
    return ORION_OK;
}

orion_status orion__llama2c_open(const char *path, orion_llama2c **out) {
    *out = NULL;
    orion_llama2c *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    orion_status st = orion__file_map(path, &m->data, &m->size);
    if (st != ORION_OK) {
        orion__free(m);
        return st;
    }
    size_t pos;
    uint32_t magic = m->size >= 4 ? (uint32_t)rd_i32(m->data) : 0;
    if (magic == LLAMA2C_MAGIC) {
        if (m->size < LLAMA2C_V1_HEADER) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: truncated llama2.c v1 header", path);
            goto fail;
        }
        m->version = rd_i32(m->data + 4);
        if (m->version != 1) {
            st = orion__fail(ORION_ERR_UNSUPPORTED,
                             "%s: llama2.c checkpoint version %d is not supported (0 and 1 are; 2 is int8)", path,
                             m->version);
            goto fail;
        }
        const uint8_t *h = m->data + 8;
        m->dim = rd_i32(h), m->hidden_dim = rd_i32(h + 4), m->n_layers = rd_i32(h + 8);
        m->n_heads = rd_i32(h + 12), m->n_kv_heads = rd_i32(h + 16), m->vocab_size = rd_i32(h + 20);
        m->seq_len = rd_i32(h + 24);
        m->shared_classifier = h[28] != 0;
        pos = LLAMA2C_V1_HEADER;
    } else {
        if (m->size < 28) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: %zu bytes is too small for a llama2.c checkpoint", path, m->size);
            goto fail;
        }
        m->version = 0;
        m->dim = rd_i32(m->data), m->hidden_dim = rd_i32(m->data + 4), m->n_layers = rd_i32(m->data + 8);
        m->n_heads = rd_i32(m->data + 12), m->n_kv_heads = rd_i32(m->data + 16);
        m->vocab_size = rd_i32(m->data + 20), m->seq_len = rd_i32(m->data + 24);
        m->shared_classifier = m->vocab_size > 0;
        if (m->vocab_size < 0 && m->vocab_size != INT32_MIN) m->vocab_size = -m->vocab_size;
        pos = 28;
    }
    if ((st = check_params(m, path)) != ORION_OK) goto fail;
    if ((st = layout(m, path, pos)) != ORION_OK) goto fail;
    *out = m;
    return ORION_OK;
fail:
    orion__llama2c_free(m);
    return st;
}

void orion__llama2c_free(orion_llama2c *m) {
    if (!m) return;
    if (m->data) orion__file_unmap(m->data, m->size);
    orion__free(m);
}

/* ---- tokenizer.bin ------------------------------------------------------------ */

void orion__llama2c_vocab_free(orion_llama2c_vocab *v) {
    if (!v) return;
    if (v->tokens)
        for (int32_t i = 0; i < v->n; i++) orion__free(v->tokens[i]);
    orion__free(v->tokens);
    orion__free(v->scores);
    orion__free(v->types);
    orion__free(v);
}

/* Undoes the llama2.c export: " " -> U+2581, "\n<s>\n" -> "<s>". */
static char *sentencepiece_text(const uint8_t *p, int32_t len) {
    if ((len == 5 && memcmp(p, "\n<s>\n", 5) == 0)) return orion__strdup("<s>");
    if ((len == 6 && memcmp(p, "\n</s>\n", 6) == 0)) return orion__strdup("</s>");
    int32_t spaces = 0;
    for (int32_t i = 0; i < len; i++) spaces += p[i] == ' ';
    char *s = orion__malloc((size_t)len + 2 * (size_t)spaces + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (int32_t i = 0; i < len; i++) {
        if (p[i] == ' ') {
            memcpy(s + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            s[o++] = (char)p[i];
        }
    }
    s[o] = '\0';
    return s;
}

/* SentencePiece token types as GGUF stores them. */
static int32_t token_type(const char *s, int32_t id) {
    if (id == 0 && strcmp(s, "<unk>") == 0) return 2;                       /* unknown */
    if (strcmp(s, "<s>") == 0 || strcmp(s, "</s>") == 0) return 3;          /* control */
    size_t n = strlen(s);
    if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') return 6; /* byte */
    return 1;                                                               /* normal */
}

orion_status orion__llama2c_vocab_load(const char *path, int32_t n_vocab, orion_llama2c_vocab **out) {
    *out = NULL;
    const uint8_t *data;
    size_t size;
    orion_status st = orion__file_map(path, &data, &size);
    if (st != ORION_OK) return st;
    orion_llama2c_vocab *v = orion__calloc(1, sizeof *v);
    if (!v) {
        orion__file_unmap(data, size);
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    }
    v->n = n_vocab;
    v->tokens = orion__calloc((size_t)n_vocab, sizeof *v->tokens);
    v->scores = orion__calloc((size_t)n_vocab, sizeof *v->scores);
    v->types = orion__calloc((size_t)n_vocab, sizeof *v->types);
    if (!v->tokens || !v->scores || !v->types) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t pos = 4;
    if (size < 4) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: truncated tokenizer header", path);
        goto done;
    }
    for (int32_t i = 0; i < n_vocab; i++) {
        if (size - pos < 8) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: truncated at token %d of %d (byte %zu)", path, i, n_vocab, pos);
            goto done;
        }
        memcpy(&v->scores[i], data + pos, 4);
        int32_t len = rd_i32(data + pos + 4);
        pos += 8;
        if (len < 0 || (size_t)len > size - pos || len > 1 << 16) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: token %d at byte %zu has bad length %d", path, i, pos - 4, len);
            goto done;
        }
        v->tokens[i] = sentencepiece_text(data + pos, len);
        if (!v->tokens[i]) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        v->types[i] = token_type(v->tokens[i], i);
        pos += (size_t)len;
    }
    if (pos != size)
        st = orion__fail(ORION_ERR_FORMAT, "%s: %zu trailing bytes after %d tokens (vocabulary size mismatch?)", path,
                         size - pos, n_vocab);
done:
    orion__file_unmap(data, size);
    if (st != ORION_OK) {
        orion__llama2c_vocab_free(v);
        return st;
    }
    *out = v;
    return ORION_OK;
}

/* ---- to GGUF --------------------------------------------------------------------- */

orion_status orion__llama2c_write_metadata(const orion_llama2c *m, const orion_llama2c_vocab *v, const char *name,
                                           orion_gguf_writer *w) {
    orion_status st = ORION_OK;
    const int64_t head = m->dim / m->n_heads;
#define CHECK(call)                         \
    do {                                    \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)
    if (v) {
        CHECK(orion_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                              (uint64_t)v->n));
        CHECK(orion_gguf_writer_set_array(w, "tokenizer.ggml.scores", ORION_GGUF_F32, v->scores, (uint64_t)v->n));
        CHECK(orion_gguf_writer_set_array(w, "tokenizer.ggml.token_type", ORION_GGUF_I32, v->types, (uint64_t)v->n));
        CHECK(orion_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    }
    CHECK(orion_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK(orion_gguf_writer_set_str(w, "general.name", name ? name : "llama"));
    if (v) {
        CHECK(orion_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
        CHECK(orion_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
        CHECK(orion_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    }
    CHECK(orion_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)m->seq_len));
    CHECK(orion_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)m->dim));
    CHECK(orion_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)m->hidden_dim));
    CHECK(orion_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)m->n_heads));
    CHECK(orion_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)m->n_kv_heads));
    CHECK(orion_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)m->n_layers));
    CHECK(orion_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)head));
    CHECK(orion_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));

#undef CHECK
    return ORION_OK;
}

int64_t orion__llama2c_n_tensors(const orion_llama2c *m) {
    return 3 + 9 * (int64_t)m->n_layers;
}

/* Tensor i in llama.cpp's order: token_embd, output_norm, output, then per
 * layer q, k, v, output, attn_norm, ffn_gate, ffn_down, ffn_up, ffn_norm. */
void orion__llama2c_tensor(const orion_llama2c *m, int64_t i, orion_llama2c_tensor *t) {
    const int64_t dim = m->dim, hid = m->hidden_dim, kv_dim = dim / m->n_heads * m->n_kv_heads;
    memset(t, 0, sizeof *t);
    t->ne[0] = t->ne[1] = t->ne[2] = t->ne[3] = 1;
    if (i < 3) {
        static const char *const names[3] = {"token_embd.weight", "output_norm.weight", "output.weight"};
        snprintf(t->name, sizeof t->name, "%s", names[i]);
        t->n_dims = i == 1 ? 1 : 2;
        t->ne[0] = dim;
        t->ne[1] = i == 1 ? 1 : m->vocab_size;
        t->data = i == 0 ? m->token_embd : i == 1 ? m->rms_final : m->wcls;
        return;
    }
    int64_t l = (i - 3) / 9, which = (i - 3) % 9;
    static const char *const suffix[9] = {"attn_q.weight",   "attn_k.weight",   "attn_v.weight",
                                          "attn_output.weight", "attn_norm.weight", "ffn_gate.weight",
                                          "ffn_down.weight", "ffn_up.weight",   "ffn_norm.weight"};
    snprintf(t->name, sizeof t->name, "blk.%d.%s", (int)l, suffix[which]);
    t->n_dims = 2;
    switch (which) {
    case 0: t->ne[0] = dim, t->ne[1] = dim, t->data = m->wq + l * dim * dim; break;
    case 1: t->ne[0] = dim, t->ne[1] = kv_dim, t->data = m->wk + l * kv_dim * dim; break;
    case 2: t->ne[0] = dim, t->ne[1] = kv_dim, t->data = m->wv + l * kv_dim * dim; break;
    case 3: t->ne[0] = dim, t->ne[1] = dim, t->data = m->wo + l * dim * dim; break;
    case 4: t->n_dims = 1, t->ne[0] = dim, t->data = m->rms_att + l * dim; break;
    case 5: t->ne[0] = dim, t->ne[1] = hid, t->data = m->w1 + l * hid * dim; break;
    case 6: t->ne[0] = hid, t->ne[1] = dim, t->data = m->w2 + l * dim * hid; break;
    case 7: t->ne[0] = dim, t->ne[1] = hid, t->data = m->w3 + l * hid * dim; break;
    default: t->n_dims = 1, t->ne[0] = dim, t->data = m->rms_ffn + l * dim; break;
    }
}
