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
    ORION_HF_LLAVA,   /* LlavaForConditionalGeneration: only while parsing; the
                         config then holds the text model's arch, llava set */
} orion_hf_arch;

/* A LLaVA directory's image side (hf_llava.c): the CLIP vision tower
 * ("vision_config"), the feature selection and the projector, and the
 * preprocessing from preprocessor_config.json. */
typedef struct orion_hf_vision {
    int64_t image_size, patch_size;
    int64_t hidden_size, intermediate_size, n_layers, n_heads;
    int64_t projection_dim;
    double  norm_eps;          /* layer_norm_eps */
    bool    quick_gelu;        /* hidden_act "quick_gelu" (CLIP); false: "gelu" */
    int64_t feature_layer;     /* hidden_states index 1..n_layers (LLaVA-1.5's -2: n_layers - 1) */
    int64_t image_token_index; /* -1 when config.json does not say */
    float   image_mean[3], image_std[3];
} orion_hf_vision;

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
    /* LlavaForConditionalGeneration: the fields above describe the text
     * model ("text_config", arch LLAMA or MISTRAL), vision the rest. */
    bool            llava;
    orion_hf_vision vision;
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
/* preprocessor_config.json of a LLaVA directory: image_mean and image_std
 * into v, and crop_size / size checked against v->image_size (orion pads to
 * a square and resizes straight to image_size, so a resize to another size
 * before a crop cannot be reproduced: ORION_ERR_UNSUPPORTED). */
orion_status orion__hf_preprocessor_parse(const char *label, const void *data, size_t size, orion_hf_vision *v);
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
 * tokenizer (tokenizer.model for llama/mistral/LLaVA; vocab.txt or
 * tokenizer.json for BERT, plus modules.json and the pooling config; LLaVA's
 * preprocessor_config.json). Errors name the file, tensor and field. Not
 * thread-safe while opening; read-only afterwards. */
orion_status orion__hf_open(const char *dir, orion_hf_model **out);
void         orion__hf_free(orion_hf_model *m);

const orion_hf_config *orion__hf_config(const orion_hf_model *m);
/* Sets general.*, the architecture's keys and tokenizer.* on w, with
 * llama.cpp's names. */
orion_status orion__hf_write_metadata(const orion_hf_model *m, orion_gguf_writer *w);
/* The tensors in GGUF order: the model-level ones, then per block. */
int64_t                orion__hf_n_tensors(const orion_hf_model *m);
const orion_hf_tensor *orion__hf_tensor(const orion_hf_model *m, int64_t i);

/* LLaVA directories also hold the image encoder and projector: its GGUF
 * (llama.cpp's "mmproj" layout, see hf_llava.c) has these keys and tensors.
 * orion__hf_n_vision_tensors is 0 for other models. */
orion_status           orion__hf_write_mmproj_metadata(const orion_hf_model *m, orion_gguf_writer *w);
int64_t                orion__hf_n_vision_tensors(const orion_hf_model *m);
const orion_hf_tensor *orion__hf_vision_tensor(const orion_hf_model *m, int64_t i);

/* ---- shared by hf_model.c and hf_llava.c -------------------------------------------- */

struct cJSON;
/* Typed members of a JSON object; each fails with ORION_ERR_FORMAT naming
 * label and field. get_int: an integer in [lo, hi] (def when absent and not
 * required); get_num: a finite number in (lo, hi]; get_bool. */
const struct cJSON *orion__hf_member(const struct cJSON *obj, const char *name);
orion_status orion__hf_get_int(const char *label, const struct cJSON *obj, const char *name, bool required,
                               int64_t def, int64_t lo, int64_t hi, int64_t *out);
orion_status orion__hf_get_num(const char *label, const struct cJSON *obj, const char *name, double def, double lo,
                               double hi, double *out);
orion_status orion__hf_get_bool(const char *label, const struct cJSON *obj, const char *name, bool def, bool *out);
/* The text model's fields of c from a Llama/Mistral config object (c->arch
 * set by the caller). */
orion_status orion__hf_parse_llama(const char *label, const struct cJSON *obj, orion_hf_config *c);
/* LlavaForConditionalGeneration's config.json root (hf_llava.c). */
orion_status orion__hf_llava_config_parse(const char *label, const struct cJSON *root, orion_hf_config *c);
/* The mmproj keys of a LLaVA config (hf_llava.c); name: general.name. */
orion_status orion__hf_llava_write_metadata(const orion_hf_config *c, const char *name, orion_gguf_writer *w);

#endif
