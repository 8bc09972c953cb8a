/*
 * hf_model.c — Hugging Face model directories as a source for
 * orion_convert: config.json, the weights in safetensors (one
 * model.safetensors, or shards listed by model.safetensors.index.json), and
 * the tokenizer files, turned into llama.cpp's GGUF names and keys.
 *
 * Architectures (config.json "architectures"):
 *   BertModel, BertForMaskedLM  -> GGUF "bert"   (names with or without the
 *       "bert." prefix; position_ids, the pooler and the MLM head are dropped)
 *   LlamaForCausalLM, MistralForCausalLM -> GGUF "llama" (as llama.cpp writes
 *       Mistral v0.1; Mistral's sliding_window goes to
 *       llama.attention.sliding_window)
 *   LlavaForConditionalGeneration -> two files: the text model as above, and
 *       the CLIP vision tower + projector as llama.cpp's "mmproj" GGUF (the
 *       config and metadata side is in hf_llava.c; its tensors are a second
 *       table of specs here, routed by the names' prefixes)
 *
 * How it works: each architecture is a table of tensor specs — the HF name
 * (model-level, or per block after "layers.N." / "encoder.layer.N."), the
 * GGUF name, and the expected PyTorch shape in config terms (vocab x
 * hidden, ...). Opening the directory fills one slot per spec from the
 * safetensors files, so a missing, duplicated, unknown or misshapen tensor is
 * an error that names the file and the tensor, before anything is written.
 * The slots, in table order, are the GGUF tensors; their data points into
 * the mapped shards (nothing is copied). PyTorch's (out, in) row-major is
 * GGUF's ne = {in, out}, so bytes go across unchanged, with one exception:
 * HF stores llama's q and k rows per head as [first halves | second halves]
 * (the "rotate half" rope), where GGUF wants the pairs interleaved; like
 * llama.cpp's convert_hf_to_gguf.py we mark those tensors (rope_heads) and
 * orion_convert permutes their rows as it writes them.
 *
 * Tokenizers: tokenizer.model (SentencePiece, sentencepiece.c) for llama;
 * vocab.txt, or tokenizer.json's WordPiece vocabulary, for BERT, written in
 * llama.cpp's "phantom space" form. sentence-transformers' modules.json and
 * pooling config give BERT's pooling type and whether embeddings are
 * normalized.
 *
 * All JSON is hostile: wrong types, missing fields and out-of-range values
 * are errors naming the file and the field, never crashes or guesses.
 */
#include "formats/hf_model.h"
#include "formats/json.h"
#include "formats/safetensors.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_CONFIG ((size_t)16 << 20)
#define HF_MAX_INDEX ((size_t)64 << 20)
#define HF_MAX_VOCAB_TXT ((size_t)64 << 20)
#define HF_MAX_TOKENIZER_JSON ((size_t)256 << 20)
#define HF_MAX_VOCAB (1 << 24)
#define HF_MAX_NAME 4096
#define HF_PATH 4096

/* ---- typed JSON fields ----------------------------------------------------------- */

/* The member `name` of obj; NULL when absent or JSON null. */
static const cJSON *member(const cJSON *obj, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNull(it) ? NULL : it;
}

static orion_status get_int(const char *label, const cJSON *obj, const char *name, bool required, int64_t def,
                            int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *it = member(obj, name);
    if (!it) {
        if (required) return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is missing", label, name);
        *out = def;
        return ORION_OK;
    }
    int64_t v;
    if (!orion__json_integer(it, &v)) {
        if (cJSON_IsNumber(it))
            return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' = %g is not an integer", label, name,
                               it->valuedouble);
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is %s, expected an integer", label, name,
                           orion__json_kind(it));
    }
    if (v < lo || v > hi)
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' = %lld is out of range (%lld to %lld)", label, name,
                           (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return ORION_OK;
}

/* A number in (lo, hi]. */
static orion_status get_num(const char *label, const cJSON *obj, const char *name, double def, double lo, double hi,
                            double *out) {
    const cJSON *it = member(obj, name);
    if (!it) {
        *out = def;
        return ORION_OK;
    }
    if (!cJSON_IsNumber(it))
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is %s, expected a number", label, name,
                           orion__json_kind(it));
    double v = it->valuedouble;
    if (!isfinite(v) || v <= lo || v > hi)
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' = %g is out of range (above %g, at most %g)", label,
                           name, v, lo, hi);
    *out = v;
    return ORION_OK;
}

static orion_status get_bool(const char *label, const cJSON *obj, const char *name, bool def, bool *out) {
    const cJSON *it = member(obj, name);
    if (!it) {
        *out = def;
        return ORION_OK;
    }
    if (!cJSON_IsBool(it))
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is %s, expected true or false", label, name,
                           orion__json_kind(it));
    *out = cJSON_IsTrue(it);
    return ORION_OK;
}

const cJSON *orion__hf_member(const cJSON *obj, const char *name) {
    return member(obj, name);
}

orion_status orion__hf_get_int(const char *label, const cJSON *obj, const char *name, bool required, int64_t def,
                               int64_t lo, int64_t hi, int64_t *out) {
    return get_int(label, obj, name, required, def, lo, hi, out);
}

orion_status orion__hf_get_num(const char *label, const cJSON *obj, const char *name, double def, double lo,
                               double hi, double *out) {
    return get_num(label, obj, name, def, lo, hi, out);
}

orion_status orion__hf_get_bool(const char *label, const cJSON *obj, const char *name, bool def, bool *out) {
    return get_bool(label, obj, name, def, out);
}

/* bos_token_id / eos_token_id: an integer, a list of integers (the first is
 * used) or absent / null (-1). */
static orion_status get_token_id(const char *label, const cJSON *obj, const char *name, int64_t n_vocab,
                                 int64_t *out) {
    const cJSON *it = member(obj, name);
    *out = -1;
    if (!it) return ORION_OK;
    if (cJSON_IsArray(it)) {
        it = it->child;
        if (!it) return ORION_OK;
    }
    int64_t v;
    if (!orion__json_integer(it, &v))
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is %s, expected a token id", label, name,
                           orion__json_kind(it));
    if (v < 0 || v >= n_vocab)
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' = %lld is not a token id (vocab_size is %lld)", label,
                           name, (long long)v, (long long)n_vocab);
    *out = v;
    return ORION_OK;
}

static orion_status parse_root(const char *label, const void *data, size_t size, bool want_object, cJSON **out) {
    orion_status st = orion__json_parse(label, data, size, out);
    if (st != ORION_OK) return st;
    if (want_object ? !cJSON_IsObject(*out) : !cJSON_IsArray(*out)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: the document is %s %s, expected %s", label,
                         cJSON_IsArray(*out) || cJSON_IsObject(*out) ? "an" : "a", orion__json_kind(*out),
                         want_object ? "an object" : "an array");
        orion__json_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- config.json ------------------------------------------------------------------ */

static const struct {
    const char   *name;
    orion_hf_arch arch;
} known_archs[] = {
    {"BertModel", ORION_HF_BERT},
    {"BertForMaskedLM", ORION_HF_BERT},
    {"LlamaForCausalLM", ORION_HF_LLAMA},
    {"MistralForCausalLM", ORION_HF_MISTRAL},
    {"LlavaForConditionalGeneration", ORION_HF_LLAVA},
};

static orion_status parse_arch(const char *label, const cJSON *root, orion_hf_config *c) {
    const cJSON *a = member(root, "architectures");
    if (!a) return orion__fail(ORION_ERR_FORMAT, "%s: field 'architectures' is missing", label);
    if (!cJSON_IsArray(a))
        return orion__fail(ORION_ERR_FORMAT, "%s: field 'architectures' is %s, expected an array of strings", label,
                           orion__json_kind(a));
    const char *first = NULL;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsString(e) || !e->valuestring)
            return orion__fail(ORION_ERR_FORMAT, "%s: field 'architectures': entry %d is %s, expected a string",
                               label, i, orion__json_kind(e));
        if (!first) first = e->valuestring;
        for (size_t k = 0; k < ORION_ARRAY_LEN(known_archs); k++) {
            if (strcmp(e->valuestring, known_archs[k].name) == 0) {
                c->arch = known_archs[k].arch;
                snprintf(c->arch_name, sizeof c->arch_name, "%s", known_archs[k].name);
                return ORION_OK;
            }
        }
        i++;
    }
    if (!first) return orion__fail(ORION_ERR_FORMAT, "%s: field 'architectures' is empty", label);
    return orion__fail(ORION_ERR_UNSUPPORTED,
                       "%s: architecture '%.64s' is not supported (BertModel, BertForMaskedLM, LlamaForCausalLM, "
                       "MistralForCausalLM, LlavaForConditionalGeneration)",
                       label, first);
}

#define GET(call)                                 \
    do {                                          \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)

static orion_status parse_common(const char *label, const cJSON *root, orion_hf_config *c) {
    orion_status st;
    GET(get_int(label, root, "vocab_size", true, 0, 1, HF_MAX_VOCAB, &c->vocab_size));
    GET(get_int(label, root, "hidden_size", true, 0, 1, 1 << 20, &c->hidden_size));
    GET(get_int(label, root, "intermediate_size", true, 0, 1, 1 << 22, &c->intermediate_size));
    GET(get_int(label, root, "num_hidden_layers", true, 0, 1, 4096, &c->n_layers));
    GET(get_int(label, root, "num_attention_heads", true, 0, 1, 4096, &c->n_heads));
    GET(get_int(label, root, "max_position_embeddings", true, 0, 1, 1 << 30, &c->context_length));
    return ORION_OK;
}

static orion_status parse_llama(const char *label, const cJSON *root, orion_hf_config *c) {
    orion_status st;
    GET(parse_common(label, root, c));
    GET(get_int(label, root, "num_key_value_heads", false, c->n_heads, 1, c->n_heads, &c->n_kv_heads));
    if (c->n_heads % c->n_kv_heads != 0)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: field 'num_attention_heads' = %lld is not a multiple of 'num_key_value_heads' = %lld",
                           label, (long long)c->n_heads, (long long)c->n_kv_heads);
    if (member(root, "head_dim")) {
        GET(get_int(label, root, "head_dim", true, 0, 2, 1 << 16, &c->head_dim));
    } else {
        if (c->hidden_size % c->n_heads != 0)
            return orion__fail(ORION_ERR_FORMAT,
                               "%s: field 'hidden_size' = %lld is not a multiple of 'num_attention_heads' = %lld",
                               label, (long long)c->hidden_size, (long long)c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    if (c->head_dim % 2 != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: the head size %lld is odd: rotary embeddings need pairs", label,
                           (long long)c->head_dim);
    if (c->n_heads * c->head_dim > (1 << 22))
        return orion__fail(ORION_ERR_FORMAT, "%s: %lld heads of %lld are too many", label, (long long)c->n_heads,
                           (long long)c->head_dim);
    GET(get_num(label, root, "rms_norm_eps", 1e-6, 0.0, 1.0, &c->norm_eps));
    GET(get_num(label, root, "rope_theta", 10000.0, 0.0, 1e12, &c->rope_theta));
    GET(get_bool(label, root, "tie_word_embeddings", false, &c->tie_word_embeddings));
    if (c->arch == ORION_HF_MISTRAL)
        GET(get_int(label, root, "sliding_window", false, 0, 1, 1 << 30, &c->sliding_window));
    GET(get_token_id(label, root, "bos_token_id", c->vocab_size, &c->bos_id));
    GET(get_token_id(label, root, "eos_token_id", c->vocab_size, &c->eos_id));

    const cJSON *rs = member(root, "rope_scaling");
    if (rs) {
        if (!cJSON_IsObject(rs))
            return orion__fail(ORION_ERR_FORMAT, "%s: field 'rope_scaling' is %s, expected an object or null", label,
                               orion__json_kind(rs));
        const cJSON *type = member(rs, "type");
        if (!type) type = member(rs, "rope_type");
        if (!cJSON_IsString(type) || !type->valuestring)
            return orion__fail(ORION_ERR_FORMAT, "%s: field 'rope_scaling.type' is %s, expected a string", label,
                               orion__json_kind(type));
        if (strcmp(type->valuestring, "linear") == 0) {
            const cJSON *f = member(rs, "factor");
            if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble) || f->valuedouble <= 0.0 || f->valuedouble > 1e6)
                return orion__fail(ORION_ERR_FORMAT, "%s: field 'rope_scaling.factor' must be a positive number",
                                   label);
            c->rope_linear_scale = f->valuedouble;
        } else if (strcmp(type->valuestring, "default") != 0) {
            return orion__fail(ORION_ERR_UNSUPPORTED,
                               "%s: field 'rope_scaling': type '%.32s' is not supported (only linear)", label,
                               type->valuestring);
        }
    }
    return ORION_OK;
}

orion_status orion__hf_parse_llama(const char *label, const cJSON *obj, orion_hf_config *c) {
    return parse_llama(label, obj, c);
}

static orion_status parse_bert(const char *label, const cJSON *root, orion_hf_config *c) {
    orion_status st;
    GET(parse_common(label, root, c));
    if (c->hidden_size % c->n_heads != 0)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: field 'hidden_size' = %lld is not a multiple of 'num_attention_heads' = %lld", label,
                           (long long)c->hidden_size, (long long)c->n_heads);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->hidden_size / c->n_heads;
    GET(get_int(label, root, "type_vocab_size", false, 2, 1, 1 << 16, &c->type_vocab_size));
    GET(get_num(label, root, "layer_norm_eps", 1e-12, 0.0, 1.0, &c->norm_eps));
    const cJSON *pe = member(root, "position_embedding_type");
    if (pe && (!cJSON_IsString(pe) || strcmp(pe->valuestring, "absolute") != 0))
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: field 'position_embedding_type' is %s%.32s%s: only \"absolute\" is supported", label,
                           cJSON_IsString(pe) ? "'" : orion__json_kind(pe), cJSON_IsString(pe) ? pe->valuestring : "",
                           cJSON_IsString(pe) ? "'" : "");
    c->bos_id = c->eos_id = -1;
    return ORION_OK;
}

orion_status orion__hf_config_parse(const char *label, const void *data, size_t size, orion_hf_config *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    orion_status st = parse_root(label, data, size, true, &root);
    if (st != ORION_OK) return st;
    if ((st = parse_arch(label, root, out)) == ORION_OK) {
        if (out->arch == ORION_HF_LLAVA) st = orion__hf_llava_config_parse(label, root, out);
        else st = out->arch == ORION_HF_BERT ? parse_bert(label, root, out) : parse_llama(label, root, out);
    }
    orion__json_free(root);
    return st;
}

/* ---- sentence-transformers: modules.json and the pooling config --------------------------------- */

/* A file or folder name inside the model directory: no '/', no "..". */
static bool safe_name(const char *s, size_t max) {
    size_t n = strlen(s);
    return n > 0 && n < max && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

orion_status orion__hf_modules_parse(const char *label, const void *data, size_t size, orion_hf_modules *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    orion_status st = parse_root(label, data, size, false, &root);
    if (st != ORION_OK) return st;
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, root) {
        if (!cJSON_IsObject(m)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: module %d is %s, expected an object", label, i,
                             orion__json_kind(m));
            break;
        }
        const cJSON *type = member(m, "type");
        if (!cJSON_IsString(type) || !type->valuestring) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: module %d: field 'type' is %s, expected a string", label, i,
                             orion__json_kind(type));
            break;
        }
        if (strcmp(type->valuestring, "sentence_transformers.models.Normalize") == 0) {
            out->normalize = true;
        } else if (strcmp(type->valuestring, "sentence_transformers.models.Pooling") == 0) {
            const cJSON *path = member(m, "path");
            if (!cJSON_IsString(path) || !path->valuestring) {
                st = orion__fail(ORION_ERR_FORMAT, "%s: module %d: field 'path' is %s, expected a string", label, i,
                                 orion__json_kind(path));
                break;
            }
            if (!safe_name(path->valuestring, sizeof out->pooling_path)) {
                st = orion__fail(ORION_ERR_FORMAT,
                                 "%s: module %d: field 'path' '%.64s' must name a folder in the model directory "
                                 "(no '/' or '..')",
                                 label, i, path->valuestring);
                break;
            }
            snprintf(out->pooling_path, sizeof out->pooling_path, "%s", path->valuestring);
        }
        i++;
    }
    orion__json_free(root);
    return st;
}

orion_status orion__hf_pooling_parse(const char *label, const void *data, size_t size, uint32_t *pooling_type) {
    *pooling_type = 0;
    cJSON *root = NULL;
    orion_status st = parse_root(label, data, size, true, &root);
    if (st != ORION_OK) return st;
    bool mean = false, cls = false;
    if ((st = get_bool(label, root, "pooling_mode_mean_tokens", false, &mean)) == ORION_OK &&
        (st = get_bool(label, root, "pooling_mode_cls_token", false, &cls)) == ORION_OK) {
        if (mean) *pooling_type = 1;
        else if (cls) *pooling_type = 2;
        else
            st = orion__fail(ORION_ERR_UNSUPPORTED,
                             "%s: the pooling mode is not supported: only pooling_mode_mean_tokens and "
                             "pooling_mode_cls_token are",
                             label);
    }
    orion__json_free(root);
    return st;
}

/* ---- model.safetensors.index.json ------------------------------------------------------------- */

void orion__hf_index_free(orion_hf_index *x) {
    if (!x) return;
    if (x->shards)
        for (int32_t i = 0; i < x->n_shards; i++) orion__free(x->shards[i]);
    if (x->names)
        for (int64_t i = 0; i < x->n_entries; i++) orion__free(x->names[i]);
    orion__free(x->shards);
    orion__free(x->names);
    orion__free(x->shard_of);
    orion__free(x);
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

orion_status orion__hf_index_parse(const char *label, const void *data, size_t size, orion_hf_index **out) {
    *out = NULL;
    cJSON *root = NULL;
    const char **sorted = NULL;
    orion_hf_index *x = NULL;
    orion_status st = parse_root(label, data, size, true, &root);
    if (st != ORION_OK) return st;
    const cJSON *wm = member(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: field 'weight_map' is %s, expected an object", label,
                         orion__json_kind(wm));
        goto done;
    }
    int n = cJSON_GetArraySize(wm);
    if (n <= 0) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: field 'weight_map' is empty", label);
        goto done;
    }
    /* validate, then collect the distinct shard names (sorted) */
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->valuestring) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: field 'weight_map': tensor '%.200s' maps to %s, expected a file name",
                             label, e->string ? e->string : "", orion__json_kind(e));
            goto done;
        }
        if (!safe_name(e->valuestring, 256)) {
            st = orion__fail(ORION_ERR_FORMAT,
                             "%s: field 'weight_map': tensor '%.200s': shard '%.64s' must be a file name in the "
                             "model directory (no '/' or '..')",
                             label, e->string ? e->string : "", e->valuestring);
            goto done;
        }
        size_t len = e->string ? strlen(e->string) : 0;
        if (len == 0 || len > HF_MAX_NAME) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: field 'weight_map': a tensor name has %zu bytes (1 to %d allowed)",
                             label, len, HF_MAX_NAME);
            goto done;
        }
    }
    sorted = orion__malloc((size_t)n * sizeof *sorted);
    x = orion__calloc(1, sizeof *x);
    if (!sorted || !x) goto nomem;
    x->names = orion__calloc((size_t)n, sizeof *x->names);
    x->shard_of = orion__calloc((size_t)n, sizeof *x->shard_of);
    x->shards = orion__calloc((size_t)n, sizeof *x->shards);
    if (!x->names || !x->shard_of || !x->shards) goto nomem;
    int k = 0;
    cJSON_ArrayForEach(e, wm) sorted[k++] = e->valuestring;
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_cstr);
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(sorted[i - 1], sorted[i]) == 0) continue;
        if (!(x->shards[x->n_shards] = orion__strdup(sorted[i]))) goto nomem;
        x->n_shards++;
    }
    cJSON_ArrayForEach(e, wm) {
        const char *key = e->valuestring;
        const char *const *hit = bsearch(&key, x->shards, (size_t)x->n_shards, sizeof *x->shards, cmp_cstr);
        x->shard_of[x->n_entries] = (int32_t)(hit - (const char *const *)x->shards);
        if (!(x->names[x->n_entries] = orion__strdup(e->string))) goto nomem;
        x->n_entries++;
    }
    /* each tensor once */
    for (int i = 0; i < n; i++) sorted[i] = x->names[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_cstr);
    for (int i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: field 'weight_map': tensor '%.200s' appears twice", label,
                             sorted[i]);
            goto done;
        }
    }
    goto done;
nomem:
    st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory reading the weight map", label);
done:
    orion__free(sorted);
    orion__json_free(root);
    if (st != ORION_OK) orion__hf_index_free(x);
    else *out = x;
    return st;
}

/* ---- vocabularies ------------------------------------------------------------------------------- */

/* A vocabulary of n tokens with `text_bytes` of string space (filled by the caller). */
static orion_vocab *vocab_alloc(int32_t n, size_t text_bytes, bool scores) {
    orion_vocab *v = orion__calloc(1, sizeof *v);
    if (!v) return NULL;
    v->n = n;
    v->tokens = orion__calloc((size_t)(n ? n : 1), sizeof *v->tokens);
    v->types = orion__calloc((size_t)(n ? n : 1), sizeof *v->types);
    v->scores = scores ? orion__calloc((size_t)(n ? n : 1), sizeof *v->scores) : NULL;
    v->text = orion__malloc(text_bytes ? text_bytes : 1);
    if (!v->tokens || !v->types || (scores && !v->scores) || !v->text) {
        orion__vocab_free(v);
        return NULL;
    }
    return v;
}

orion_status orion__hf_vocab_txt_parse(const char *label, const void *data, size_t size, orion_vocab **out) {
    *out = NULL;
    const char *p = data;
    if (size == 0) return orion__fail(ORION_ERR_FORMAT, "%s: empty vocabulary", label);
    const char *nul = memchr(p, '\0', size);
    if (nul) return orion__fail(ORION_ERR_FORMAT, "%s: NUL byte at byte %zu", label, (size_t)(nul - p));
    /* token i is line i (without its '\n'); a final newline ends the last line */
    size_t n = 0;
    for (size_t i = 0; i < size; i++) n += p[i] == '\n';
    if (p[size - 1] != '\n') n++;
    if (n > HF_MAX_VOCAB)
        return orion__fail(ORION_ERR_FORMAT, "%s: %zu tokens is over the limit of %d", label, n, HF_MAX_VOCAB);
    orion_vocab *v = vocab_alloc((int32_t)n, size + 1, false);
    if (!v) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a vocabulary of %zu tokens", label, n);
    memcpy(v->text, p, size);
    v->text[size] = '\0';
    char *s = v->text;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        v->tokens[i] = s;
        v->types[i] = ORION_SP_NORMAL;
        s = nl ? nl + 1 : s + strlen(s);
    }
    *out = v;
    return ORION_OK;
}

orion_status orion__hf_vocab_json_parse(const char *label, const void *data, size_t size, orion_vocab **out) {
    *out = NULL;
    cJSON *root = NULL;
    orion_vocab *v = NULL;
    orion_status st = parse_root(label, data, size, true, &root);
    if (st != ORION_OK) return st;
    const cJSON *model = member(root, "model");
    const cJSON *vocab = cJSON_IsObject(model) ? member(model, "vocab") : NULL;
    if (!cJSON_IsObject(model)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: field 'model' is %s, expected an object", label,
                         orion__json_kind(model));
        goto done;
    }
    if (cJSON_IsArray(vocab)) {
        st = orion__fail(ORION_ERR_UNSUPPORTED,
                         "%s: field 'model.vocab' is an array (a Unigram tokenizer): only WordPiece vocabularies "
                         "(an object of token -> id) are supported",
                         label);
        goto done;
    }
    if (!cJSON_IsObject(vocab)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: field 'model.vocab' is %s, expected an object of token -> id", label,
                         orion__json_kind(vocab));
        goto done;
    }
    int n = cJSON_GetArraySize(vocab);
    if (n <= 0 || n > HF_MAX_VOCAB) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: field 'model.vocab' has %d tokens (1 to %d allowed)", label, n,
                         HF_MAX_VOCAB);
        goto done;
    }
    size_t text = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id;
        if (!orion__json_integer(e, &id) || id < 0 || id >= n) {
            st = orion__fail(ORION_ERR_FORMAT,
                             "%s: field 'model.vocab': token '%.64s' has id %s, expected an integer from 0 to %d",
                             label, e->string ? e->string : "", orion__json_kind(e), n - 1);
            goto done;
        }
        text += strlen(e->string ? e->string : "") + 1;
    }
    if (!(v = vocab_alloc((int32_t)n, text, false))) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a vocabulary of %d tokens", label, n);
        goto done;
    }
    char *s = v->text;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id = (int64_t)e->valuedouble;
        if (v->tokens[id]) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: field 'model.vocab': id %lld is used by '%.64s' and '%.64s'",
                             label, (long long)id, v->tokens[id], e->string ? e->string : "");
            goto done;
        }
        size_t len = strlen(e->string ? e->string : "");
        memcpy(s, e->string ? e->string : "", len + 1);
        v->tokens[id] = s;
        v->types[id] = ORION_SP_NORMAL;
        s += len + 1;
    }
done:
    orion__json_free(root);
    if (st != ORION_OK) orion__vocab_free(v);
    else *out = v;
    return st;
}

static int32_t bert_token_type(const char *t) {
    if (strcmp(t, "[UNK]") == 0) return ORION_SP_UNKNOWN;
    if (strcmp(t, "[PAD]") == 0 || strcmp(t, "[CLS]") == 0 || strcmp(t, "[SEP]") == 0 || strcmp(t, "[MASK]") == 0)
        return ORION_SP_CONTROL;
    return ORION_SP_NORMAL;
}

/* Bytes "[PAD<i>]" takes with its NUL. */
static size_t pad_name_bytes(int64_t i) {
    char buf[32];
    return (size_t)snprintf(buf, sizeof buf, "[PAD%lld]", (long long)i) + 1;
}

orion_status orion__hf_bert_vocab(const char *label, const orion_vocab *raw, int64_t n_vocab, orion_vocab **out) {
    *out = NULL;
    if (raw->n > n_vocab)
        return orion__fail(ORION_ERR_FORMAT, "%s: the vocabulary has %d tokens but config.json says vocab_size = %lld",
                           label, raw->n, (long long)n_vocab);
    size_t text = 0;
    for (int32_t i = 0; i < raw->n; i++) text += strlen(raw->tokens[i]) + 4; /* + U+2581 + NUL */
    for (int64_t i = raw->n; i < n_vocab; i++) text += pad_name_bytes(i);
    orion_vocab *v = vocab_alloc((int32_t)n_vocab, text, false);
    if (!v) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a vocabulary", label);
    char *s = v->text;
    for (int64_t i = 0; i < n_vocab; i++) {
        v->tokens[i] = s;
        if (i >= raw->n) {
            v->types[i] = ORION_SP_UNUSED;
            s += (size_t)sprintf(s, "[PAD%lld]", (long long)i) + 1;
            continue;
        }
        const char *t = raw->tokens[i];
        v->types[i] = bert_token_type(t);
        if (v->types[i] == ORION_SP_NORMAL) {
            if (strncmp(t, "##", 2) == 0) t += 2;
            else {
                memcpy(s, "\xe2\x96\x81", 3);
                s += 3;
            }
        }
        size_t len = strlen(t);
        memcpy(s, t, len + 1);
        s += len + 1;
    }
    *out = v;
    return ORION_OK;
}

/* llama: the SentencePiece pieces, padded to n_vocab with "[PAD<i>]" unused
 * tokens (score -1000) as llama.cpp does. Takes ownership of sp. */
static orion_status llama_vocab(const char *label, orion_vocab *sp, int64_t n_vocab, orion_vocab **out) {
    *out = NULL;
    if (sp->n > n_vocab) {
        int32_t n = sp->n;
        orion__vocab_free(sp);
        return orion__fail(ORION_ERR_FORMAT, "%s: %d pieces but config.json says vocab_size = %lld", label, n,
                           (long long)n_vocab);
    }
    if (sp->n == n_vocab) {
        *out = sp;
        return ORION_OK;
    }
    size_t text = 0;
    for (int32_t i = 0; i < sp->n; i++) text += strlen(sp->tokens[i]) + 1;
    for (int64_t i = sp->n; i < n_vocab; i++) text += pad_name_bytes(i);
    orion_vocab *v = vocab_alloc((int32_t)n_vocab, text, true);
    if (!v) {
        orion__vocab_free(sp);
        return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a vocabulary", label);
    }
    char *s = v->text;
    for (int64_t i = 0; i < n_vocab; i++) {
        v->tokens[i] = s;
        if (i < sp->n) {
            size_t len = strlen(sp->tokens[i]);
            memcpy(s, sp->tokens[i], len + 1);
            s += len + 1;
            v->scores[i] = sp->scores[i];
            v->types[i] = sp->types[i];
        } else {
            s += (size_t)sprintf(s, "[PAD%lld]", (long long)i) + 1;
            v->scores[i] = -1000.0f;
            v->types[i] = ORION_SP_UNUSED;
        }
    }
    orion__vocab_free(sp);
    *out = v;
    return ORION_OK;
}

/* ---- tensor specs ------------------------------------------------------------------------------- */

/* D_V*: the vision tower's; D_PATCH as cols: a convolution [rows, 3, P, P] */
typedef enum dim { D_NONE, D_VOCAB, D_HIDDEN, D_FF, D_Q, D_KV, D_CTX, D_TYPES, D_VHIDDEN, D_VFF, D_VPOS, D_PATCH } dim;

typedef struct spec {
    const char *hf;         /* name after the model prefix (per block: after "<block prefix>N.") */
    const char *gguf;       /* GGUF name (per block: after "blk.N.") */
    dim         rows, cols; /* PyTorch shape; cols == D_NONE: 1-D of `rows` */
    int         rope;       /* 1: q rows (n_heads), 2: k rows (n_kv_heads) */
} spec;

static const spec llama_globals[] = {
    {"embed_tokens.weight", "token_embd.weight", D_VOCAB, D_HIDDEN, 0},
    {"norm.weight", "output_norm.weight", D_HIDDEN, D_NONE, 0},
    {"lm_head.weight", "output.weight", D_VOCAB, D_HIDDEN, 0},
};
#define LLAMA_OUTPUT_SLOT 2

static const spec llama_blocks[] = {
    {"self_attn.q_proj.weight", "attn_q.weight", D_Q, D_HIDDEN, 1},
    {"self_attn.k_proj.weight", "attn_k.weight", D_KV, D_HIDDEN, 2},
    {"self_attn.v_proj.weight", "attn_v.weight", D_KV, D_HIDDEN, 0},
    {"self_attn.o_proj.weight", "attn_output.weight", D_HIDDEN, D_Q, 0},
    {"input_layernorm.weight", "attn_norm.weight", D_HIDDEN, D_NONE, 0},
    {"mlp.gate_proj.weight", "ffn_gate.weight", D_FF, D_HIDDEN, 0},
    {"mlp.down_proj.weight", "ffn_down.weight", D_HIDDEN, D_FF, 0},
    {"mlp.up_proj.weight", "ffn_up.weight", D_FF, D_HIDDEN, 0},
    {"post_attention_layernorm.weight", "ffn_norm.weight", D_HIDDEN, D_NONE, 0},
};

static const spec bert_globals[] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight", D_VOCAB, D_HIDDEN, 0},
    {"embeddings.token_type_embeddings.weight", "token_types.weight", D_TYPES, D_HIDDEN, 0},
    {"embeddings.position_embeddings.weight", "position_embd.weight", D_CTX, D_HIDDEN, 0},
    {"embeddings.LayerNorm.weight", "token_embd_norm.weight", D_HIDDEN, D_NONE, 0},
    {"embeddings.LayerNorm.bias", "token_embd_norm.bias", D_HIDDEN, D_NONE, 0},
};

static const spec bert_blocks[] = {
    {"attention.self.query.weight", "attn_q.weight", D_HIDDEN, D_HIDDEN, 0},
    {"attention.self.query.bias", "attn_q.bias", D_HIDDEN, D_NONE, 0},
    {"attention.self.key.weight", "attn_k.weight", D_HIDDEN, D_HIDDEN, 0},
    {"attention.self.key.bias", "attn_k.bias", D_HIDDEN, D_NONE, 0},
    {"attention.self.value.weight", "attn_v.weight", D_HIDDEN, D_HIDDEN, 0},
    {"attention.self.value.bias", "attn_v.bias", D_HIDDEN, D_NONE, 0},
    {"attention.output.dense.weight", "attn_output.weight", D_HIDDEN, D_HIDDEN, 0},
    {"attention.output.dense.bias", "attn_output.bias", D_HIDDEN, D_NONE, 0},
    {"attention.output.LayerNorm.weight", "attn_output_norm.weight", D_HIDDEN, D_NONE, 0},
    {"attention.output.LayerNorm.bias", "attn_output_norm.bias", D_HIDDEN, D_NONE, 0},
    {"intermediate.dense.weight", "ffn_up.weight", D_FF, D_HIDDEN, 0},
    {"intermediate.dense.bias", "ffn_up.bias", D_FF, D_NONE, 0},
    {"output.dense.weight", "ffn_down.weight", D_HIDDEN, D_FF, 0},
    {"output.dense.bias", "ffn_down.bias", D_HIDDEN, D_NONE, 0},
    {"output.LayerNorm.weight", "layer_output_norm.weight", D_HIDDEN, D_NONE, 0},
    {"output.LayerNorm.bias", "layer_output_norm.bias", D_HIDDEN, D_NONE, 0},
};

/* LLaVA's vision tower (names after "vision_tower.vision_model.") and
 * projector (after "multi_modal_projector.", here as "projector."), with
 * llama.cpp's mmproj names: its converter calls mlp.fc1 "ffn_down" and
 * mlp.fc2 "ffn_up" (clip.c reads either). post_layernorm is not written: the
 * features come from an earlier layer's output, and llama.cpp applies a
 * v.post_ln it finds. */
static const spec vision_globals[] = {
    {"embeddings.patch_embedding.weight", "v.patch_embd.weight", D_VHIDDEN, D_PATCH, 0},
    {"embeddings.class_embedding", "v.class_embd", D_VHIDDEN, D_NONE, 0},
    {"embeddings.position_embedding.weight", "v.position_embd.weight", D_VPOS, D_VHIDDEN, 0},
    {"pre_layrnorm.weight", "v.pre_ln.weight", D_VHIDDEN, D_NONE, 0},
    {"pre_layrnorm.bias", "v.pre_ln.bias", D_VHIDDEN, D_NONE, 0},
    {"projector.linear_1.weight", "mm.0.weight", D_HIDDEN, D_VHIDDEN, 0},
    {"projector.linear_1.bias", "mm.0.bias", D_HIDDEN, D_NONE, 0},
    {"projector.linear_2.weight", "mm.2.weight", D_HIDDEN, D_HIDDEN, 0},
    {"projector.linear_2.bias", "mm.2.bias", D_HIDDEN, D_NONE, 0},
};

static const spec vision_blocks[] = {
    {"self_attn.q_proj.weight", "attn_q.weight", D_VHIDDEN, D_VHIDDEN, 0},
    {"self_attn.q_proj.bias", "attn_q.bias", D_VHIDDEN, D_NONE, 0},
    {"self_attn.k_proj.weight", "attn_k.weight", D_VHIDDEN, D_VHIDDEN, 0},
    {"self_attn.k_proj.bias", "attn_k.bias", D_VHIDDEN, D_NONE, 0},
    {"self_attn.v_proj.weight", "attn_v.weight", D_VHIDDEN, D_VHIDDEN, 0},
    {"self_attn.v_proj.bias", "attn_v.bias", D_VHIDDEN, D_NONE, 0},
    {"self_attn.out_proj.weight", "attn_out.weight", D_VHIDDEN, D_VHIDDEN, 0},
    {"self_attn.out_proj.bias", "attn_out.bias", D_VHIDDEN, D_NONE, 0},
    {"layer_norm1.weight", "ln1.weight", D_VHIDDEN, D_NONE, 0},
    {"layer_norm1.bias", "ln1.bias", D_VHIDDEN, D_NONE, 0},
    {"mlp.fc1.weight", "ffn_down.weight", D_VFF, D_VHIDDEN, 0},
    {"mlp.fc1.bias", "ffn_down.bias", D_VFF, D_NONE, 0},
    {"mlp.fc2.weight", "ffn_up.weight", D_VHIDDEN, D_VFF, 0},
    {"mlp.fc2.bias", "ffn_up.bias", D_VHIDDEN, D_NONE, 0},
    {"layer_norm2.weight", "ln2.weight", D_VHIDDEN, D_NONE, 0},
    {"layer_norm2.bias", "ln2.bias", D_VHIDDEN, D_NONE, 0},
};

typedef struct arch_desc {
    const char        *prefix;       /* stripped when present: "bert." / "model." */
    const char        *block_prefix; /* "encoder.layer." / "layers." */
    const char        *gguf_block;   /* "blk." / "v.blk." */
    const spec        *globals;
    int                n_globals;
    const spec        *blocks;
    int                n_blocks;
    const char *const *drop;         /* names (after the prefix) that are not converted */
    const char *const *drop_prefix;  /* ... and name prefixes */
    const char *const *drop_block;   /* ... and per-block suffixes */
} arch_desc;

static const char *const bert_drop[] = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias", NULL};
static const char *const bert_drop_prefix[] = {"cls.predictions.", "cls.seq_relationship.", NULL};
static const char *const llama_drop_block[] = {"self_attn.rotary_emb.inv_freq", NULL};
static const char *const none[] = {NULL};
static const char *const vision_drop[] = {"embeddings.position_ids", "post_layernorm.weight", "post_layernorm.bias",
                                          NULL};

static const arch_desc bert_desc = {"bert.", "encoder.layer.", "blk.", bert_globals, (int)ORION_ARRAY_LEN(bert_globals),
                                    bert_blocks, (int)ORION_ARRAY_LEN(bert_blocks), bert_drop, bert_drop_prefix,
                                    none};
static const arch_desc llama_desc = {"model.", "layers.", "blk.", llama_globals, (int)ORION_ARRAY_LEN(llama_globals),
                                     llama_blocks, (int)ORION_ARRAY_LEN(llama_blocks), none, none, llama_drop_block};
static const arch_desc vision_desc = {"", "encoder.layers.", "v.blk.", vision_globals,
                                      (int)ORION_ARRAY_LEN(vision_globals), vision_blocks,
                                      (int)ORION_ARRAY_LEN(vision_blocks), vision_drop, none, none};

static int64_t dim_value(const orion_hf_config *c, dim d) {
    switch (d) {
    case D_NONE: return 1;
    case D_VOCAB: return c->vocab_size;
    case D_HIDDEN: return c->hidden_size;
    case D_FF: return c->intermediate_size;
    case D_Q: return c->n_heads * c->head_dim;
    case D_KV: return c->n_kv_heads * c->head_dim;
    case D_CTX: return c->context_length;
    case D_TYPES: return c->type_vocab_size;
    case D_VHIDDEN: return c->vision.hidden_size;
    case D_VFF: return c->vision.intermediate_size;
    case D_VPOS: {
        const int64_t side = c->vision.patch_size > 0 ? c->vision.image_size / c->vision.patch_size : 0;
        return side * side + 1;
    }
    case D_PATCH: return c->vision.patch_size;
    }
    return 0;
}

static bool in_list(const char *const *list, const char *s, bool prefix) {
    for (; *list; list++)
        if (prefix ? strncmp(s, *list, strlen(*list)) == 0 : strcmp(s, *list) == 0) return true;
    return false;
}

enum { SLOT_UNKNOWN = -1, SLOT_DROP = -2, SLOT_BAD_BLOCK = -3 };

/* The slot of a (prefix-stripped) name: globals first, then block-major. */
static int64_t find_slot(const arch_desc *a, int64_t n_layers, const char *name, int64_t *block) {
    *block = -1;
    for (int i = 0; i < a->n_globals; i++)
        if (strcmp(name, a->globals[i].hf) == 0) return i;
    if (in_list(a->drop, name, false) || in_list(a->drop_prefix, name, true)) return SLOT_DROP;
    size_t bl = strlen(a->block_prefix);
    if (strncmp(name, a->block_prefix, bl) != 0) return SLOT_UNKNOWN;
    const char *p = name + bl;
    int64_t b = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 10) b = b * 10 + (*p++ - '0'), digits++;
    if (digits == 0 || *p != '.' || (digits > 1 && name[bl] == '0')) return SLOT_UNKNOWN;
    p++;
    *block = b;
    if (in_list(a->drop_block, p, false)) return SLOT_DROP;
    for (int i = 0; i < a->n_blocks; i++) {
        if (strcmp(p, a->blocks[i].hf) == 0) {
            if (b >= n_layers) return SLOT_BAD_BLOCK;
            return a->n_globals + b * a->n_blocks + i;
        }
    }
    return SLOT_UNKNOWN;
}

/* ---- the model ---------------------------------------------------------------------------------- */

/* One GGUF file's tensors: a slot per spec (globals, then block-major). */
typedef struct table {
    const arch_desc *arch;
    orion_hf_tensor *slots;       /* n_slots, compacted to n_tensors once open */
    int64_t          n_slots, n_tensors;
    int64_t          n_layers;    /* blocks the config declares (all must be present) */
    int64_t          keep_layers; /* blocks written: the vision tower's up to the feature layer */
    const char      *shown;       /* name prefix for messages ("" or LLaVA's) */
    bool             text;        /* the text model (rope permutation, tied output) */
} table;

struct orion_hf_model {
    char               *dir;
    char                name[256];    /* the directory's base name, for general.name */
    orion_hf_config     cfg;
    orion_safetensors **shards;
    int32_t             n_shards;
    table               text;         /* the model, or LLaVA's language model */
    table               vision;       /* LLaVA's vision tower and projector; empty otherwise */
    orion_vocab        *vocab;
    /* llama */
    int64_t             bos_id, eos_id, unk_id;
    /* bert */
    uint32_t            pooling_type; /* 1 mean, 2 CLS */
    bool                normalize;
    int64_t             cls_id, sep_id, pad_id, mask_id;
};

bool orion__hf_is_dir(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* buf = dir/a[/b] */
static orion_status join(char *buf, size_t n, const char *dir, const char *a, const char *b) {
    int len = b ? snprintf(buf, n, "%s/%s/%s", dir, a, b) : snprintf(buf, n, "%s/%s", dir, a);
    if (len < 0 || (size_t)len >= n)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: path too long for '%s'", dir, a);
    return ORION_OK;
}

static orion_status read_json_file(const char *path, size_t max, char **buf, size_t *size) {
    return orion__read_small_file(path, max, buf, size);
}

static orion_status load_config(orion_hf_model *m) {
    char path[HF_PATH], *buf = NULL;
    size_t size;
    orion_status st = join(path, sizeof path, m->dir, "config.json", NULL);
    if (st != ORION_OK) return st;
    if ((st = read_json_file(path, HF_MAX_CONFIG, &buf, &size)) != ORION_OK) {
        if (st == ORION_ERR_NOT_FOUND)
            st = orion__fail(st, "%s: no config.json: not a Hugging Face model directory", m->dir);
        return st;
    }
    st = orion__hf_config_parse(path, buf, size, &m->cfg);
    orion__free(buf);
    if (st != ORION_OK) return st;
    m->text = (table){m->cfg.arch == ORION_HF_BERT ? &bert_desc : &llama_desc, NULL, 0, 0, m->cfg.n_layers,
                      m->cfg.n_layers, m->cfg.llava ? "language_model.model." : "", true};
    if (m->cfg.llava)
        m->vision = (table){&vision_desc, NULL, 0, 0, m->cfg.vision.n_layers, m->cfg.vision.feature_layer,
                            "vision_tower.vision_model.", false};
    return ORION_OK;
}

static void shape_str(char *buf, size_t n, const orion_st_tensor *t) {
    size_t o = 0;
    buf[0] = '\0';
    for (int d = 0; d < t->n_dims && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
}

static bool strip(const char *name, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return false;
    *rest = name + n;
    return true;
}

/* LLaVA: which table a checkpoint name belongs to, and its name there.
 * Both layouts: transformers < 4.52 ("language_model.model.*",
 * "language_model.lm_head.*", "vision_tower.*", "multi_modal_projector.*")
 * and later ("model.language_model.*", "lm_head.*", "model.vision_tower.*",
 * "model.multi_modal_projector.*"). NULL: no table. */
static table *llava_route(orion_hf_model *m, const char *name, char *out, size_t n) {
    const char *rest;
    if (strcmp(name, "language_model.lm_head.weight") == 0 || strcmp(name, "lm_head.weight") == 0) {
        snprintf(out, n, "lm_head.weight");
        return &m->text;
    }
    if (strip(name, "language_model.model.", &rest) || strip(name, "model.language_model.", &rest)) {
        snprintf(out, n, "%s", rest);
        return &m->text;
    }
    if (strip(name, "vision_tower.vision_model.", &rest) || strip(name, "model.vision_tower.vision_model.", &rest)) {
        snprintf(out, n, "%s", rest);
        return &m->vision;
    }
    if (strip(name, "multi_modal_projector.", &rest) || strip(name, "model.multi_modal_projector.", &rest)) {
        snprintf(out, n, "projector.%s", rest);
        return &m->vision;
    }
    return NULL;
}

/* Puts one safetensors tensor into its slot (or drops it). */
static orion_status place(orion_hf_model *m, const orion_safetensors *file, const orion_st_tensor *t) {
    const orion_hf_config *c = &m->cfg;
    const char *label = orion__safetensors_label(file);
    char name[HF_MAX_NAME + 16];
    table *tb = &m->text;
    if (c->llava) {
        if (!(tb = llava_route(m, t->name, name, sizeof name)))
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: tensor '%s' is not part of a %s model as orion knows it",
                               label, t->name, c->arch_name);
    } else {
        snprintf(name, sizeof name, "%s", t->name);
    }
    const arch_desc *a = tb->arch;
    size_t pl = strlen(a->prefix);
    if (pl && strncmp(name, a->prefix, pl) == 0) memmove(name, name + pl, strlen(name + pl) + 1);
    /* old BERT checkpoints call LayerNorm's parameters gamma and beta */
    size_t nl = strlen(name);
    if (m->cfg.arch == ORION_HF_BERT && nl > 6 && strcmp(name + nl - 6, ".gamma") == 0) strcpy(name + nl - 6, ".weight");
    else if (m->cfg.arch == ORION_HF_BERT && nl > 5 && strcmp(name + nl - 5, ".beta") == 0) strcpy(name + nl - 5, ".bias");

    int64_t block;
    int64_t k = find_slot(a, tb->n_layers, name, &block);
    if (k == SLOT_DROP) return ORION_OK;
    if (k == SLOT_BAD_BLOCK)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' is in block %lld but config.json has %lld blocks", label,
                           t->name, (long long)block, (long long)tb->n_layers);
    if (k == SLOT_UNKNOWN)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: tensor '%s' is not part of a %s model as orion knows it",
                           label, t->name, c->arch_name);
    if (tb->text && c->arch != ORION_HF_BERT && k == LLAMA_OUTPUT_SLOT && c->tie_word_embeddings) return ORION_OK;
    const spec *sp = k < a->n_globals ? &a->globals[k] : &a->blocks[(k - a->n_globals) % a->n_blocks];
    orion_hf_tensor *s = &tb->slots[k];
    if (s->source)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensors '%s' and '%s' both map to '%s'", label, s->source, t->name,
                           s->name);
    orion_type type;
    switch (t->dtype) {
    case ORION_ST_F32: type = ORION_TYPE_F32; break;
    case ORION_ST_F16: type = ORION_TYPE_F16; break;
    case ORION_ST_BF16: type = ORION_TYPE_BF16; break;
    default:
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has dtype %s: only F32, F16 and BF16 weights can be converted", label,
                           t->name, orion__st_dtype_name(t->dtype));
    }
    int64_t rows = dim_value(c, sp->rows), cols = dim_value(c, sp->cols);
    int want_dims = sp->cols == D_NONE ? 1 : sp->cols == D_PATCH ? 4 : 2;
    bool ok = t->n_dims == want_dims && t->shape[0] == rows;
    if (ok && want_dims == 2) ok = t->shape[1] == cols;
    if (ok && want_dims == 4) ok = t->shape[1] == 3 && t->shape[2] == cols && t->shape[3] == cols;
    if (!ok) {
        char got[128];
        shape_str(got, sizeof got, t);
        if (want_dims == 1)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but config.json implies [%lld]",
                               label, t->name, got, (long long)rows);
        if (want_dims == 4)
            return orion__fail(ORION_ERR_FORMAT,
                               "%s: tensor '%s' has shape [%s] but config.json implies [%lld, 3, %lld, %lld]", label,
                               t->name, got, (long long)rows, (long long)cols, (long long)cols);
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but config.json implies [%lld, %lld]",
                           label, t->name, got, (long long)rows, (long long)cols);
    }
    size_t esize = orion__st_dtype_size(t->dtype);
    if ((uintptr_t)t->data % esize != 0)
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: tensor '%s': its data (field 'data_offsets' begins at %llu) is not aligned to its "
                           "%zu-byte elements",
                           label, t->name, (unsigned long long)t->offset, esize);
    if (k < a->n_globals) snprintf(s->name, sizeof s->name, "%s", sp->gguf);
    else snprintf(s->name, sizeof s->name, "%s%lld.%s", a->gguf_block, (long long)block, sp->gguf);
    s->source = t->name;
    s->type = type;
    s->n_dims = want_dims;
    s->ne[1] = s->ne[2] = s->ne[3] = 1;
    if (want_dims == 1) {
        s->ne[0] = rows;
    } else if (want_dims == 2) {
        s->ne[0] = cols, s->ne[1] = rows;
    } else { /* PyTorch's [out, 3, P, P] is GGUF's {P, P, 3, out} */
        s->ne[0] = cols, s->ne[1] = cols, s->ne[2] = 3, s->ne[3] = rows;
    }
    s->data = t->data;
    s->rope_heads = sp->rope == 1 ? c->n_heads : sp->rope == 2 ? c->n_kv_heads : 0;
    return ORION_OK;
}

/* Checks every slot of a table is filled (output.weight may be absent when
 * tied) and compacts the filled ones to the front, in slot order, leaving
 * out blocks from keep_layers on. */
static orion_status finish_tensors(orion_hf_model *m, table *tb) {
    const arch_desc *a = tb->arch;
    int64_t n = 0;
    for (int64_t k = 0; k < tb->n_slots; k++) {
        orion_hf_tensor *s = &tb->slots[k];
        const int64_t b = k < a->n_globals ? -1 : (k - a->n_globals) / a->n_blocks;
        if (!s->source) {
            if (tb->text && m->cfg.arch != ORION_HF_BERT && k == LLAMA_OUTPUT_SLOT && m->cfg.tie_word_embeddings)
                continue;
            const spec *sp = k < a->n_globals ? &a->globals[k] : &a->blocks[(k - a->n_globals) % a->n_blocks];
            if (k < a->n_globals) {
                const bool proj = strncmp(sp->hf, "projector.", 10) == 0; /* LLaVA's, see llava_route */
                return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s%s' is missing (it becomes GGUF '%s')", m->dir,
                                   proj ? "multi_modal_projector." : tb->shown, proj ? sp->hf + 10 : sp->hf,
                                   sp->gguf);
            }
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s%s%lld.%s' is missing (it becomes GGUF '%s%lld.%s')",
                               m->dir, tb->shown, a->block_prefix, (long long)b, sp->hf, a->gguf_block, (long long)b,
                               sp->gguf);
        }
        if (b >= tb->keep_layers) continue;
        if (n != k) tb->slots[n] = *s;
        n++;
    }
    tb->n_tensors = n;
    return ORION_OK;
}

static orion_status open_weights(orion_hf_model *m) {
    char path[HF_PATH], *buf = NULL;
    size_t size;
    orion_hf_index *index = NULL;
    orion_status st;
    if ((st = join(path, sizeof path, m->dir, "model.safetensors.index.json", NULL)) != ORION_OK) return st;
    if (is_file(path)) {
        if ((st = read_json_file(path, HF_MAX_INDEX, &buf, &size)) != ORION_OK) return st;
        st = orion__hf_index_parse(path, buf, size, &index);
        orion__free(buf);
        if (st != ORION_OK) return st;
        m->shards = orion__calloc((size_t)index->n_shards, sizeof *m->shards);
        if (!m->shards) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->dir);
            goto done;
        }
        for (int32_t i = 0; i < index->n_shards; i++) {
            char shard[HF_PATH];
            if ((st = join(shard, sizeof shard, m->dir, index->shards[i], NULL)) != ORION_OK) goto done;
            st = orion__safetensors_open(shard, &m->shards[i]);
            if (st == ORION_ERR_NOT_FOUND)
                st = orion__fail(st, "%s: shard '%s' listed in model.safetensors.index.json is missing", m->dir,
                                 index->shards[i]);
            if (st != ORION_OK) goto done;
            m->n_shards++;
        }
        int64_t in_shards = 0;
        for (int32_t i = 0; i < m->n_shards; i++) in_shards += orion__safetensors_n_tensors(m->shards[i]);
        for (int64_t e = 0; e < index->n_entries; e++) {
            const orion_safetensors *f = m->shards[index->shard_of[e]];
            const orion_st_tensor *t = orion__safetensors_find(f, index->names[e]);
            if (!t) {
                st = orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' is listed in model.safetensors.index.json but is "
                                 "not in its shard %s", m->dir, index->names[e], orion__safetensors_label(f));
                goto done;
            }
            if ((st = place(m, f, t)) != ORION_OK) goto done;
        }
        if (in_shards != index->n_entries) {
            /* some shard holds a tensor the index does not list: name it */
            for (int32_t i = 0; i < m->n_shards; i++) {
                for (int64_t j = 0; j < orion__safetensors_n_tensors(m->shards[i]); j++) {
                    const orion_st_tensor *t = orion__safetensors_tensor_at(m->shards[i], j);
                    bool listed = false;
                    for (int64_t e = 0; e < index->n_entries && !listed; e++)
                        listed = index->shard_of[e] == i && strcmp(index->names[e], t->name) == 0;
                    if (!listed) {
                        st = orion__fail(ORION_ERR_FORMAT,
                                         "%s: tensor '%s' is not listed in model.safetensors.index.json's weight_map",
                                         orion__safetensors_label(m->shards[i]), t->name);
                        goto done;
                    }
                }
            }
        }
    } else {
        if ((st = join(path, sizeof path, m->dir, "model.safetensors", NULL)) != ORION_OK) return st;
        m->shards = orion__calloc(1, sizeof *m->shards);
        if (!m->shards) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->dir);
        st = orion__safetensors_open(path, &m->shards[0]);
        if (st == ORION_ERR_NOT_FOUND)
            return orion__fail(st,
                               "%s: no model.safetensors or model.safetensors.index.json (PyTorch .bin weights are "
                               "not supported: save the model as safetensors)",
                               m->dir);
        if (st != ORION_OK) return st;
        m->n_shards = 1;
        for (int64_t j = 0; j < orion__safetensors_n_tensors(m->shards[0]); j++)
            if ((st = place(m, m->shards[0], orion__safetensors_tensor_at(m->shards[0], j))) != ORION_OK) return st;
    }
    if ((st = finish_tensors(m, &m->text)) == ORION_OK && m->cfg.llava) st = finish_tensors(m, &m->vision);
done:
    orion__hf_index_free(index);
    return st;
}

static int64_t find_token(const orion_vocab *v, const char *text) {
    for (int32_t i = 0; i < v->n; i++)
        if (v->types[i] != ORION_SP_NORMAL && strcmp(v->tokens[i], text) == 0) return i;
    return -1;
}

static orion_status load_llama_tokenizer(orion_hf_model *m) {
    char path[HF_PATH];
    orion_status st = join(path, sizeof path, m->dir, "tokenizer.model", NULL);
    if (st != ORION_OK) return st;
    orion_vocab *sp = NULL;
    if ((st = orion__sentencepiece_load(path, &sp)) != ORION_OK) {
        if (st == ORION_ERR_NOT_FOUND)
            st = orion__fail(ORION_ERR_UNSUPPORTED,
                             "%s: no tokenizer.model (SentencePiece): tokenizer.json-only (BPE) tokenizers are not "
                             "supported yet",
                             m->dir);
        return st;
    }
    if ((st = llama_vocab(path, sp, m->cfg.vocab_size, &m->vocab)) != ORION_OK) return st;
    m->bos_id = m->cfg.bos_id >= 0 ? m->cfg.bos_id : 1;
    m->eos_id = m->cfg.eos_id >= 0 ? m->cfg.eos_id : 2;
    m->unk_id = 0;
    for (int32_t i = 0; i < m->vocab->n; i++) {
        if (m->vocab->types[i] == ORION_SP_UNKNOWN) {
            m->unk_id = i;
            break;
        }
    }
    if (m->bos_id >= m->vocab->n || m->eos_id >= m->vocab->n)
        return orion__fail(ORION_ERR_FORMAT, "%s: bos/eos token ids %lld/%lld are not in the %d-token vocabulary",
                           path, (long long)m->bos_id, (long long)m->eos_id, m->vocab->n);
    return ORION_OK;
}

static orion_status load_bert_tokenizer(orion_hf_model *m) {
    char path[HF_PATH], *buf = NULL;
    size_t size;
    orion_vocab *raw = NULL;
    orion_status st = join(path, sizeof path, m->dir, "vocab.txt", NULL);
    if (st != ORION_OK) return st;
    if (is_file(path)) {
        if ((st = read_json_file(path, HF_MAX_VOCAB_TXT, &buf, &size)) != ORION_OK) return st;
        st = orion__hf_vocab_txt_parse(path, buf, size, &raw);
    } else {
        if ((st = join(path, sizeof path, m->dir, "tokenizer.json", NULL)) != ORION_OK) return st;
        if ((st = read_json_file(path, HF_MAX_TOKENIZER_JSON, &buf, &size)) != ORION_OK) {
            if (st == ORION_ERR_NOT_FOUND)
                st = orion__fail(st, "%s: no vocab.txt or tokenizer.json: the BERT vocabulary is missing", m->dir);
            return st;
        }
        st = orion__hf_vocab_json_parse(path, buf, size, &raw);
    }
    orion__free(buf);
    if (st == ORION_OK) st = orion__hf_bert_vocab(path, raw, m->cfg.vocab_size, &m->vocab);
    orion__vocab_free(raw);
    if (st != ORION_OK) return st;
    m->cls_id = find_token(m->vocab, "[CLS]");
    m->sep_id = find_token(m->vocab, "[SEP]");
    m->unk_id = find_token(m->vocab, "[UNK]");
    m->pad_id = find_token(m->vocab, "[PAD]");
    m->mask_id = find_token(m->vocab, "[MASK]");
    return ORION_OK;
}

/* Pooling and normalization from sentence-transformers' files, if any. */
static orion_status load_bert_pooling(orion_hf_model *m) {
    char path[HF_PATH], *buf = NULL;
    size_t size;
    orion_hf_modules mods = {false, "1_Pooling"};
    orion_status st = join(path, sizeof path, m->dir, "modules.json", NULL);
    if (st != ORION_OK) return st;
    bool have_modules = is_file(path);
    if (have_modules) {
        if ((st = read_json_file(path, HF_MAX_CONFIG, &buf, &size)) != ORION_OK) return st;
        st = orion__hf_modules_parse(path, buf, size, &mods);
        orion__free(buf);
        buf = NULL;
        if (st != ORION_OK) return st;
    }
    m->normalize = mods.normalize;
    m->pooling_type = 1; /* mean, unless the pooling config says otherwise */
    if (!mods.pooling_path[0]) return ORION_OK;
    if ((st = join(path, sizeof path, m->dir, mods.pooling_path, "config.json")) != ORION_OK) return st;
    if (!have_modules && !is_file(path)) return ORION_OK;
    if ((st = read_json_file(path, HF_MAX_CONFIG, &buf, &size)) != ORION_OK) return st;
    st = orion__hf_pooling_parse(path, buf, size, &m->pooling_type);
    orion__free(buf);
    return st;
}

/* LLaVA: preprocessor_config.json's mean, std and sizes; CLIP's when absent. */
static orion_status load_preprocessor(orion_hf_model *m) {
    char path[HF_PATH], *buf = NULL;
    size_t size;
    orion_status st = join(path, sizeof path, m->dir, "preprocessor_config.json", NULL);
    if (st != ORION_OK || !is_file(path)) return st;
    if ((st = read_json_file(path, HF_MAX_CONFIG, &buf, &size)) != ORION_OK) return st;
    st = orion__hf_preprocessor_parse(path, buf, size, &m->cfg.vision);
    orion__free(buf);
    return st;
}

static void base_name(const char *dir, char *out, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    size_t k = ORION_MIN(len - start, n - 1);
    memcpy(out, dir + start, k);
    out[k] = '\0';
    if (!out[0]) snprintf(out, n, "model");
}

orion_status orion__hf_open(const char *dir, orion_hf_model **out) {
    if (!dir || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion__hf_open: NULL argument");
    *out = NULL;
    if (!orion__hf_is_dir(dir)) return orion__fail(ORION_ERR_NOT_FOUND, "%s: not a directory", dir);
    orion_hf_model *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", dir);
    orion_status st;
    if (!(m->dir = orion__strdup(dir))) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    base_name(dir, m->name, sizeof m->name);
    if ((st = load_config(m)) != ORION_OK) goto fail;
    table *tbs[2] = {&m->text, &m->vision};
    for (int i = 0; i < (m->cfg.llava ? 2 : 1); i++) {
        table *tb = tbs[i];
        tb->n_slots = tb->arch->n_globals + tb->n_layers * tb->arch->n_blocks;
        if (!(tb->slots = orion__calloc((size_t)tb->n_slots, sizeof *tb->slots))) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory", dir);
            goto fail;
        }
    }
    if (m->cfg.llava && (st = load_preprocessor(m)) != ORION_OK) goto fail;
    if ((st = open_weights(m)) != ORION_OK) goto fail;
    if (m->cfg.arch == ORION_HF_BERT) {
        if ((st = load_bert_tokenizer(m)) != ORION_OK) goto fail;
        if ((st = load_bert_pooling(m)) != ORION_OK) goto fail;
    } else {
        if ((st = load_llama_tokenizer(m)) != ORION_OK) goto fail;
    }
    *out = m;
    return ORION_OK;
fail:
    orion__hf_free(m);
    return st;
}

void orion__hf_free(orion_hf_model *m) {
    if (!m) return;
    if (m->shards)
        for (int32_t i = 0; i < m->n_shards; i++) orion__safetensors_free(m->shards[i]);
    orion__free(m->shards);
    orion__free(m->text.slots);
    orion__free(m->vision.slots);
    orion__vocab_free(m->vocab);
    orion__free(m->dir);
    orion__free(m);
}

const orion_hf_config *orion__hf_config(const orion_hf_model *m) {
    return &m->cfg;
}

int64_t orion__hf_n_tensors(const orion_hf_model *m) {
    return m->text.n_tensors;
}

const orion_hf_tensor *orion__hf_tensor(const orion_hf_model *m, int64_t i) {
    return (i >= 0 && i < m->text.n_tensors) ? &m->text.slots[i] : NULL;
}

int64_t orion__hf_n_vision_tensors(const orion_hf_model *m) {
    return m->cfg.llava ? m->vision.n_tensors : 0;
}

const orion_hf_tensor *orion__hf_vision_tensor(const orion_hf_model *m, int64_t i) {
    return (m->cfg.llava && i >= 0 && i < m->vision.n_tensors) ? &m->vision.slots[i] : NULL;
}

/* ---- GGUF metadata ------------------------------------------------------------------------------ */

#define SET(call)                                 \
    do {                                          \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)

static orion_status write_vocab(const orion_vocab *v, orion_gguf_writer *w) {
    orion_status st;
    SET(orion_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n));
    if (v->scores)
        SET(orion_gguf_writer_set_array(w, "tokenizer.ggml.scores", ORION_GGUF_F32, v->scores, (uint64_t)v->n));
    SET(orion_gguf_writer_set_array(w, "tokenizer.ggml.token_type", ORION_GGUF_I32, v->types, (uint64_t)v->n));
    return ORION_OK;
}

static orion_status set_id(orion_gguf_writer *w, const char *key, int64_t id) {
    return id >= 0 ? orion_gguf_writer_set_u32(w, key, (uint32_t)id) : ORION_OK;
}

static orion_status write_bert(const orion_hf_model *m, orion_gguf_writer *w) {
    const orion_hf_config *c = &m->cfg;
    orion_status st;
    SET(orion_gguf_writer_set_str(w, "general.architecture", "bert"));
    SET(orion_gguf_writer_set_str(w, "general.name", m->name));
    SET(orion_gguf_writer_set_u32(w, "bert.context_length", (uint32_t)c->context_length));
    SET(orion_gguf_writer_set_u32(w, "bert.embedding_length", (uint32_t)c->hidden_size));
    SET(orion_gguf_writer_set_u32(w, "bert.feed_forward_length", (uint32_t)c->intermediate_size));
    SET(orion_gguf_writer_set_u32(w, "bert.attention.head_count", (uint32_t)c->n_heads));
    SET(orion_gguf_writer_set_u32(w, "bert.block_count", (uint32_t)c->n_layers));
    SET(orion_gguf_writer_set_f32(w, "bert.attention.layer_norm_epsilon", (float)c->norm_eps));
    SET(orion_gguf_writer_set_bool(w, "bert.attention.causal", false));
    SET(orion_gguf_writer_set_u32(w, "bert.pooling_type", m->pooling_type));
    SET(orion_gguf_writer_set_bool(w, "orion.embedding.normalize", m->normalize));
    SET(orion_gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)c->type_vocab_size));
    SET(orion_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert"));
    SET(write_vocab(m->vocab, w));
    SET(set_id(w, "tokenizer.ggml.unknown_token_id", m->unk_id));
    SET(set_id(w, "tokenizer.ggml.seperator_token_id", m->sep_id)); /* llama.cpp's spelling */
    SET(set_id(w, "tokenizer.ggml.padding_token_id", m->pad_id));
    SET(set_id(w, "tokenizer.ggml.cls_token_id", m->cls_id));
    SET(set_id(w, "tokenizer.ggml.mask_token_id", m->mask_id));
    return ORION_OK;
}

static orion_status write_llama(const orion_hf_model *m, orion_gguf_writer *w) {
    const orion_hf_config *c = &m->cfg;
    orion_status st;
    SET(orion_gguf_writer_set_str(w, "general.architecture", "llama"));
    SET(orion_gguf_writer_set_str(w, "general.name", m->name));
    SET(orion_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size));
    SET(orion_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->context_length));
    SET(orion_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->hidden_size));
    SET(orion_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->intermediate_size));
    SET(orion_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads));
    SET(orion_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads));
    SET(orion_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layers));
    SET(orion_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim));
    SET(orion_gguf_writer_set_f32(w, "llama.rope.freq_base", (float)c->rope_theta));
    SET(orion_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)c->norm_eps));
    if (c->head_dim * c->n_heads != c->hidden_size) {
        SET(orion_gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim));
        SET(orion_gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim));
    }
    if (c->rope_linear_scale > 0.0) {
        SET(orion_gguf_writer_set_str(w, "llama.rope.scaling.type", "linear"));
        SET(orion_gguf_writer_set_f32(w, "llama.rope.scaling.factor", (float)c->rope_linear_scale));
    }
    if (c->sliding_window > 0)
        SET(orion_gguf_writer_set_u32(w, "llama.attention.sliding_window", (uint32_t)c->sliding_window));
    SET(orion_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    SET(write_vocab(m->vocab, w));
    SET(set_id(w, "tokenizer.ggml.bos_token_id", m->bos_id));
    SET(set_id(w, "tokenizer.ggml.eos_token_id", m->eos_id));
    SET(set_id(w, "tokenizer.ggml.unknown_token_id", m->unk_id));
    return ORION_OK;
}

orion_status orion__hf_write_mmproj_metadata(const orion_hf_model *m, orion_gguf_writer *w) {
    if (!m->cfg.llava) return orion__fail(ORION_ERR_INVALID_ARG, "%s: not a LLaVA model: no image encoder", m->dir);
    return orion__hf_llava_write_metadata(&m->cfg, m->name, w);
}

orion_status orion__hf_write_metadata(const orion_hf_model *m, orion_gguf_writer *w) {
    return m->cfg.arch == ORION_HF_BERT ? write_bert(m, w) : write_llama(m, w);
}
