/*
 * tfjs.h — TensorFlow.js graph models (model.json + binary weight shards) as
 * a source for orion_convert, and the Universal Sentence Encoder lite's
 * mapping from its TF.js graph onto orion's "use-lite" GGUF layout (see
 * docs/use-lite.md). Internal to the formats layer.
 *
 * model.json is treated as hostile: every name, shape, dtype, quantization
 * entry and shard path is checked; shard files must hold exactly the bytes
 * the manifest lists; sizes are overflow-checked. Errors name the file and
 * the field (ORION_ERR_FORMAT, _UNSUPPORTED, _NOMEM, _IO, _NOT_FOUND).
 */
#ifndef ORION_TFJS_H
#define ORION_TFJS_H

#include "core/core.h"

#include <cjson/cJSON.h>

#define ORION_TFJS_MAX_DIMS 8

typedef enum orion_tfjs_dtype {
    ORION_TFJS_F32 = 0,  /* float32 (also what quantized float weights decode to) */
    ORION_TFJS_I32 = 1,  /* int32 */
    ORION_TFJS_BOOL = 2, /* bool, one byte each */
} orion_tfjs_dtype;

typedef struct orion_tfjs_weight {
    char            *name;
    orion_tfjs_dtype dtype;                      /* after dequantization */
    int              n_dims;                     /* 0 (scalar) .. ORION_TFJS_MAX_DIMS */
    int64_t          shape[ORION_TFJS_MAX_DIMS]; /* TF order: shape[n_dims-1] varies fastest */
    int64_t          n_elems;
    /* how it is stored: "" (as dtype), "uint8", "uint16" (value = min +
     * q * scale) or "float16" */
    char             quant[8];
    double           scale, min;
    int32_t          group;                      /* manifest group */
    size_t           offset, n_bytes;            /* in the group's concatenated shards */
    void            *data;                       /* decoded values (n_elems of dtype); NULL until loaded */
} orion_tfjs_weight;

typedef struct orion_tfjs_node {
    char        *name;
    char        *op;
    int32_t      n_inputs;
    char       **inputs;  /* as written: "name", "name:1" or "^control" */
    const cJSON *attr;    /* the node's "attr" object (may be NULL); lives in the model's document */
} orion_tfjs_node;

typedef struct orion_tfjs_group {
    int32_t n_paths;
    char  **paths;        /* file names relative to the model directory */
    size_t  n_bytes;      /* sum of its weights' stored bytes */
} orion_tfjs_group;

typedef struct orion_tfjs_model {
    cJSON            *doc;     /* the parsed model.json */
    char             *label;
    int32_t           n_nodes;
    orion_tfjs_node  *nodes;
    int32_t           n_weights;
    orion_tfjs_weight *weights;
    int32_t           n_groups;
    orion_tfjs_group *groups;
} orion_tfjs_model;

/* Parses model.json from memory: the graph (modelTopology.node: name, op,
 * input, attr) and the weightsManifest (groups of paths and weights with
 * name, shape, dtype and optional quantization). Weights are not read.
 * Layers models (no modelTopology.node) give ORION_ERR_UNSUPPORTED. */
orion_status orion__tfjs_parse(const char *label, const void *data, size_t size, orion_tfjs_model **out);
/* Reads every group's shard files from `dir`, checks their total size
 * against the manifest, and decodes each weight into w->data. */
orion_status orion__tfjs_load_weights(orion_tfjs_model *m, const char *dir);
/* orion__tfjs_parse(dir/model.json) + orion__tfjs_load_weights(dir). */
orion_status orion__tfjs_open(const char *dir, orion_tfjs_model **out);
void         orion__tfjs_free(orion_tfjs_model *m);

const orion_tfjs_node   *orion__tfjs_find_node(const orion_tfjs_model *m, const char *name);
const orion_tfjs_weight *orion__tfjs_find_weight(const orion_tfjs_model *m, const char *name);

/* True when `path` is a directory holding a model.json whose
 * modelTopology has a "node" array (a TF.js graph model). */
bool orion__tfjs_is_graph_dir(const char *path);

/* ---- the Universal Sentence Encoder lite -------------------------------------------- */

typedef struct orion_use_lite_tensor {
    char         name[48];  /* orion's name, e.g. "blk.0.attn_qkv.weight" */
    int          n_dims;    /* 1 or 2 */
    int64_t      ne[4];     /* GGUF order: ne[0] is the row length */
    const float *data;      /* owned by the orion_use_lite_src */
} orion_use_lite_tensor;

typedef struct orion_use_lite_src orion_use_lite_src;

/* Opens a TF.js USE-lite directory (model.json, shards, vocab.json): checks
 * that the graph has the structure docs/use-lite.md describes, reads the
 * hyper-parameters from its constants, and lays the weights out as GGUF
 * tensors (matrices transposed to rows of inputs). */
orion_status orion__use_lite_open(const char *dir, orion_use_lite_src **out);
void         orion__use_lite_free(orion_use_lite_src *s);
/* general.*, use-lite.* and tokenizer.* keys. */
orion_status orion__use_lite_write_metadata(const orion_use_lite_src *s, const char *name, orion_gguf_writer *w);
int64_t                      orion__use_lite_n_tensors(const orion_use_lite_src *s);
const orion_use_lite_tensor *orion__use_lite_tensor(const orion_use_lite_src *s, int64_t i);

#endif
