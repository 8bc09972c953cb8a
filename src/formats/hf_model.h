/*
 * hf_model.h — Hugging Face model directories (config.json + safetensors +
 * tokenizer files) as a source for orion_convert, mapped to llama.cpp's GGUF
 * tensor names and metadata keys (see hf_model.c). Internal to the formats
 * layer; the JSON readers are exposed so the fuzzer can drive them.
 */
#ifndef ORION_HF_MODEL_H
#define ORION_HF_MODEL_H

#include "core/core.h"
#include "formats/sentencepiece.h"

typedef enum orion_hf_arch {
    ORION_HF_BERT,    /* BertModel, BertForMaskedLM */
    ORION_HF_LLAMA,   /* LlamaForCausalLM */
    ORION_HF_MISTRAL, /* MistralForCausalLM (GGUF architecture "llama") */
} orion_hf_arch;

/* What config.json says, checked and with defaults filled in. */
typedef struct orion_hf_config {
    orion_hf_arch arch;
    char          arch_name[64];     /* the matching entry of "architectures" */
    int64_t       vocab_size;
    int64_t       hidden_size;
    int64_t       intermediate_size;
    int64_t       n_layers;          /* num_hidden_layers */
    int64_t       n_heads;           /* num_attention_heads */
    int64_t       n_kv_heads;        /* num_key_value_heads (= n_heads when absent) */
    int64_t       head_dim;          /* head_dim (= hidden_size / n_heads when absent) */
    int64_t       context_length;    /* max_position_embeddings */
    int64_t       type_vocab_size;   /* BERT token types (default 2) */
    int64_t       sliding_window;    /* Mistral; 0 = none */
    double        norm_eps;          /* rms_norm_eps (llama) or layer_norm_eps (bert) */
    double        rope_theta;        /* default 10000 */
    double        rope_linear_scale; /* rope_scaling {"type": "linear"} factor; 0 = none */
    bool          tie_word_embeddings;
    int64_t       bos_id, eos_id;    /* -1 when config.json does not say */
} orion_hf_config;

/* sentence-transformers' modules.json: is there a Normalize module, and
 * where is the Pooling module's folder ("" when none is listed). */
typedef struct orion_hf_modules {
    bool normalize;
    char pooling_path[128];
} orion_hf_modules;

/* model.safetensors.index.json: the distinct shard files, and for each
 * tensor of "weight_map" its name and shard. Free with orion__hf_index_free. */
typedef struct orion_hf_index {
    int32_t  n_shards;
    char   **shards;     /* file names (no '/', no "..") */
    int64_t  n_entries;
    char   **names;      /* tensor names */
    int32_t *shard_of;   /* n_entries shard indices */
} orion_hf_index;

/* Parsers over a memory buffer (`label` names it in messages). Each fails
 * with ORION_ERR_FORMAT naming the file and field (a wrong type, a missing
 * required field, a value out of range), ORION_ERR_UNSUPPORTED (an unknown
 * architecture or pooling mode) or ORION_ERR_NOMEM. Thread-safe. */
orion_status orion__hf_config_parse(const char *label, const void *data, size_t size, orion_hf_config *out);
orion_status orion__hf_modules_parse(const char *label, const void *data, size_t size, orion_hf_modules *out);
/* 1_Pooling/config.json: *pooling_type = 1 (mean) or 2 (CLS). */
orion_status orion__hf_pooling_parse(const char *label, const void *data, size_t size, uint32_t *pooling_type);
orion_status orion__hf_index_parse(const char *label, const void *data, size_t size, orion_hf_index **out);
void         orion__hf_index_free(orion_hf_index *index);
/* WordPiece vocabularies as the files spell them (token i = line i of
 * vocab.txt; tokenizer.json's model.vocab object of token -> id). Types are
 * all NORMAL and scores NULL; see orion__hf_bert_vocab for the GGUF form. */
orion_status orion__hf_vocab_txt_parse(const char *label, const void *data, size_t size, orion_vocab **out);
orion_status orion__hf_vocab_json_parse(const char *label, const void *data, size_t size, orion_vocab **out);
/* llama.cpp's form of a BERT vocabulary: [PAD] [CLS] [SEP] [MASK] are
 * control tokens, [UNK] unknown, others normal; normal tokens are written
 * with a "phantom space" ("##ing" -> "ing", "the" -> "\u2581the"), as
 * convert_hf_to_gguf.py does. Pads to n_vocab with "[PAD<i>]" unused tokens. */
orion_status orion__hf_bert_vocab(const char *label, const orion_vocab *raw, int64_t n_vocab, orion_vocab **out);

/* ---- a whole model directory -------------------------------------------------------- */

typedef struct orion_hf_tensor {
    char        name[64];   /* GGUF name, e.g. "blk.0.attn_q.weight" */
    const char *source;     /* the safetensors name */
    orion_type  type;       /* f32, f16 or bf16 */
    int         n_dims;     /* 1 or 2 */
    int64_t     ne[4];      /* GGUF order: ne[0] is the row length; unused = 1 */
    const void *data;       /* points into a mapped shard */
    /* > 0: the rows are HF's rotate-half q or k of this many heads and must
     * be permuted to GGUF's interleaved layout as they are written */
    int64_t     rope_heads;
} orion_hf_tensor;

typedef struct orion_hf_model orion_hf_model;

/* True when `path` is a directory. */
bool orion__hf_is_dir(const char *path);

/* Opens the model directory `dir`: reads config.json, maps the safetensors
 * files (model.safetensors, or the shards listed by
 * model.safetensors.index.json, each opened once), maps every tensor to its
 * GGUF name and checks its shape against the config, and reads the
 * tokenizer (tokenizer.model for llama/mistral; vocab.txt or tokenizer.json
 * for BERT, plus modules.json and the pooling config). Errors name the file,
 * tensor and field. Not thread-safe while opening; read-only afterwards. */
orion_status orion__hf_open(const char *dir, orion_hf_model **out);
void         orion__hf_free(orion_hf_model *m);

const orion_hf_config *orion__hf_config(const orion_hf_model *m);
/* Sets general.*, the architecture's keys and tokenizer.* on w, with
 * llama.cpp's names. */
orion_status orion__hf_write_metadata(const orion_hf_model *m, orion_gguf_writer *w);
/* The tensors in GGUF order: the model-level ones, then per block. */
int64_t                orion__hf_n_tensors(const orion_hf_model *m);
const orion_hf_tensor *orion__hf_tensor(const orion_hf_model *m, int64_t i);

#endif
