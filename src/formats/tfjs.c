/*
 * tfjs.c — TensorFlow.js graph models, and the Universal Sentence Encoder
 * lite laid out as orion's "use-lite" GGUF tensors.
 *
 * A graph model is model.json: {"format": "graph-model", "modelTopology":
 * {"node": [{name, op, input: [...], attr: {...}}, ...]}, "weightsManifest":
 * [{"paths": [shard files], "weights": [{name, shape, dtype, quantization?}]}]}.
 * Each group's weights are stored back to back in the concatenation of its
 * shard files, in manifest order (so a weight may straddle two shards). We
 * read a group's shards into one buffer, check that they hold exactly the
 * bytes the manifest lists, and decode each weight to float32 / int32 / bool
 * (quantized entries: uint8 and uint16 as min + q * scale, float16 as half
 * floats).
 *
 * The USE-lite mapping (docs/use-lite.md) finds each weight by its name in
 * the graph, checks the few structural facts our forward pass relies on
 * (that the embedding enters layer 0 twice, the residual projection, ReLU,
 * tanh), reads the hyper-parameters from the graph's constants (heads, head
 * size, attention scale, layer-norm epsilon, maximum length) and transposes
 * TF's [in, out] matrices into GGUF's rows of inputs.
 */
#include "formats/tfjs.h"

#include "formats/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MODEL_JSON_MAX ((size_t)64 << 20)
#define VOCAB_JSON_MAX ((size_t)64 << 20)
#define GROUP_MAX_BYTES ((size_t)4 << 30)

/* ---- model.json -------------------------------------------------------------- */

static char *dup_str(const char *s) { return orion__strdup(s ? s : ""); }

void orion__tfjs_free(orion_tfjs_model *m) {
    if (!m) return;
    for (int32_t i = 0; i < m->n_nodes; i++) {
        orion_tfjs_node *n = &m->nodes[i];
        orion__free(n->name);
        orion__free(n->op);
        for (int32_t k = 0; k < n->n_inputs; k++) orion__free(n->inputs[k]);
        orion__free(n->inputs);
    }
    orion__free(m->nodes);
    for (int32_t i = 0; i < m->n_weights; i++) {
        orion__free(m->weights[i].name);
        orion__free(m->weights[i].data);
    }
    orion__free(m->weights);
    for (int32_t i = 0; i < m->n_groups; i++) {
        for (int32_t k = 0; k < m->groups[i].n_paths; k++) orion__free(m->groups[i].paths[k]);
        orion__free(m->groups[i].paths);
    }
    orion__free(m->groups);
    orion__json_free(m->doc);
    orion__free(m->label);
    orion__free(m);
}

/* A node or weight name as TensorFlow allows it: not empty, and without
 * the input syntax ("^name" for a control input, "name:1" for an output),
 * which would make it unreachable by name. */
static bool valid_name(const char *s) {
    return s[0] && s[0] != '^' && !strchr(s, ':');
}

static orion_status parse_nodes(orion_tfjs_model *m, const cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    m->nodes = orion__calloc((size_t)(n ? n : 1), sizeof *m->nodes);
    if (!m->nodes) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        int32_t i = m->n_nodes;
        if (!cJSON_IsObject(it)) return orion__fail(ORION_ERR_FORMAT, "%s: modelTopology.node[%d] is not an object", m->label, (int)i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(it, "op");
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(it, "input");
        const cJSON *attr = cJSON_GetObjectItemCaseSensitive(it, "attr");
        if (!cJSON_IsString(name) || !cJSON_IsString(op))
            return orion__fail(ORION_ERR_FORMAT, "%s: modelTopology.node[%d]: \"name\" and \"op\" must be strings", m->label,
                               (int)i);
        if (!valid_name(name->valuestring))
            return orion__fail(ORION_ERR_FORMAT, "%s: modelTopology.node[%d]: '%.80s' is not a valid node name", m->label,
                               (int)i, name->valuestring);
        if (input && !cJSON_IsArray(input))
            return orion__fail(ORION_ERR_FORMAT, "%s: node '%s': \"input\" is %s, not an array", m->label,
                               name->valuestring, orion__json_kind(input));
        if (attr && !cJSON_IsObject(attr))
            return orion__fail(ORION_ERR_FORMAT, "%s: node '%s': \"attr\" is %s, not an object", m->label,
                               name->valuestring, orion__json_kind(attr));
        orion_tfjs_node *nd = &m->nodes[i];
        m->n_nodes++;
        nd->attr = attr;
        if (!(nd->name = dup_str(name->valuestring)) || !(nd->op = dup_str(op->valuestring)))
            return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
        int ni = input ? cJSON_GetArraySize(input) : 0;
        nd->inputs = orion__calloc((size_t)(ni ? ni : 1), sizeof *nd->inputs);
        if (!nd->inputs) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
        const cJSON *in;
        if (input) cJSON_ArrayForEach(in, input) {
            if (!cJSON_IsString(in))
                return orion__fail(ORION_ERR_FORMAT, "%s: node '%s': input %d is %s, not a string", m->label,
                                   nd->name, (int)nd->n_inputs, orion__json_kind(in));
            if (!(nd->inputs[nd->n_inputs] = dup_str(in->valuestring)))
                return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
            nd->n_inputs++;
        }
    }
    return ORION_OK;
}

static bool safe_path(const char *p) {
    if (!p[0] || strchr(p, '/') || strchr(p, '\\')) return false;
    if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0) return false;
    return true;
}

static orion_status parse_weight(orion_tfjs_model *m, int32_t group, const cJSON *it, orion_tfjs_weight *w) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(it, "quantization");
    if (!cJSON_IsString(name)) return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest[%d]: a weight has no name", m->label, (int)group);
    if (!valid_name(name->valuestring))
        return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest[%d]: '%.80s' is not a valid weight name", m->label,
                           (int)group, name->valuestring);
    if (!(w->name = dup_str(name->valuestring))) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
    w->group = group;
    if (!cJSON_IsArray(shape))
        return orion__fail(ORION_ERR_FORMAT, "%s: weight '%s': \"shape\" is %s, not an array", m->label, w->name,
                           orion__json_kind(shape));
    int nd = cJSON_GetArraySize(shape);
    if (nd > ORION_TFJS_MAX_DIMS)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: weight '%s': %d dimensions (at most %d)", m->label, w->name, nd,
                           ORION_TFJS_MAX_DIMS);
    w->n_dims = nd;
    size_t n = 1;
    for (int d = 0; d < nd; d++) {
        int64_t v;
        if (!orion__json_integer(cJSON_GetArrayItem(shape, d), &v) || v < 0 || v > ((int64_t)1 << 40))
            return orion__fail(ORION_ERR_FORMAT, "%s: weight '%s': shape[%d] is not a dimension", m->label, w->name, d);
        w->shape[d] = v;
        if (!orion__mul_ok(n, (size_t)v, &n) || n > ((size_t)1 << 40))
            return orion__fail(ORION_ERR_RANGE, "%s: weight '%s': too many elements", m->label, w->name);
    }
    w->n_elems = (int64_t)n;
    if (!cJSON_IsString(dtype))
        return orion__fail(ORION_ERR_FORMAT, "%s: weight '%s': \"dtype\" is %s, not a string", m->label, w->name,
                           orion__json_kind(dtype));
    size_t esize;
    if (strcmp(dtype->valuestring, "float32") == 0) w->dtype = ORION_TFJS_F32, esize = 4;
    else if (strcmp(dtype->valuestring, "int32") == 0) w->dtype = ORION_TFJS_I32, esize = 4;
    else if (strcmp(dtype->valuestring, "bool") == 0) w->dtype = ORION_TFJS_BOOL, esize = 1;
    else
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: weight '%s': dtype \"%.32s\" (we read float32, int32, bool)",
                           m->label, w->name, dtype->valuestring);
    if (q) {
        if (!cJSON_IsObject(q))
            return orion__fail(ORION_ERR_FORMAT, "%s: weight '%s': \"quantization\" is %s, not an object", m->label,
                               w->name, orion__json_kind(q));
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
        if (!cJSON_IsString(qd))
            return orion__fail(ORION_ERR_FORMAT, "%s: weight '%s': quantization has no dtype", m->label, w->name);
        if (w->dtype != ORION_TFJS_F32)
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: weight '%s': quantized %s weights", m->label, w->name,
                               dtype->valuestring);
        if (strcmp(qd->valuestring, "float16") == 0) {
            esize = 2;
        } else if (strcmp(qd->valuestring, "uint8") == 0 || strcmp(qd->valuestring, "uint16") == 0) {
            esize = qd->valuestring[4] == '8' ? 1 : 2;
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(q, "scale");
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(q, "min");
            if (!cJSON_IsNumber(sc) || !cJSON_IsNumber(mn) || !isfinite(sc->valuedouble) || !isfinite(mn->valuedouble))
                return orion__fail(ORION_ERR_FORMAT, "%s: weight '%s': %s quantization needs numeric scale and min",
                                   m->label, w->name, qd->valuestring);
            w->scale = sc->valuedouble;
            w->min = mn->valuedouble;
        } else {
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: weight '%s': quantization dtype \"%.32s\"", m->label,
                               w->name, qd->valuestring);
        }
        snprintf(w->quant, sizeof w->quant, "%s", qd->valuestring);
    }
    if (!orion__mul_ok(n, esize, &w->n_bytes))
        return orion__fail(ORION_ERR_RANGE, "%s: weight '%s': too many bytes", m->label, w->name);
    return ORION_OK;
}

static orion_status parse_manifest(orion_tfjs_model *m, const cJSON *arr) {
    int ng = cJSON_GetArraySize(arr);
    int64_t nw = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, arr) {
        const cJSON *ws = cJSON_IsObject(g) ? cJSON_GetObjectItemCaseSensitive(g, "weights") : NULL;
        if (!cJSON_IsArray(ws))
            return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest: each group needs a \"weights\" array", m->label);
        nw += cJSON_GetArraySize(ws);
    }
    if (nw > INT32_MAX / 2) return orion__fail(ORION_ERR_RANGE, "%s: too many weights", m->label);
    m->groups = orion__calloc((size_t)(ng ? ng : 1), sizeof *m->groups);
    m->weights = orion__calloc((size_t)(nw ? nw : 1), sizeof *m->weights);
    if (!m->groups || !m->weights) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
    cJSON_ArrayForEach(g, arr) {
        int32_t gi = m->n_groups++;
        orion_tfjs_group *grp = &m->groups[gi];
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(g, "paths");
        if (!cJSON_IsArray(paths))
            return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest[%d]: \"paths\" is %s, not an array", m->label,
                               (int)gi, orion__json_kind(paths));
        int np = cJSON_GetArraySize(paths);
        grp->paths = orion__calloc((size_t)(np ? np : 1), sizeof *grp->paths);
        if (!grp->paths) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
        const cJSON *p;
        cJSON_ArrayForEach(p, paths) {
            if (!cJSON_IsString(p) || !safe_path(p->valuestring) || strlen(p->valuestring) > 255)
                return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest[%d]: path %d is not a plain file name",
                                   m->label, (int)gi, (int)grp->n_paths);
            if (!(grp->paths[grp->n_paths] = dup_str(p->valuestring)))
                return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", m->label);
            grp->n_paths++;
        }
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(g, "weights"), *it;
        size_t off = 0;
        cJSON_ArrayForEach(it, ws) {
            orion_tfjs_weight *w = &m->weights[m->n_weights++];
            if (!cJSON_IsObject(it))
                return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest[%d]: a weight is not an object", m->label,
                                   (int)gi);
            orion_status st = parse_weight(m, gi, it, w);
            if (st != ORION_OK) return st;
            w->offset = off;
            if (!orion__add_ok(off, w->n_bytes, &off) || off > GROUP_MAX_BYTES)
                return orion__fail(ORION_ERR_RANGE, "%s: weightsManifest[%d]: more than %zu bytes", m->label, (int)gi,
                                   GROUP_MAX_BYTES);
        }
        grp->n_bytes = off;
        if (off > 0 && grp->n_paths == 0)
            return orion__fail(ORION_ERR_FORMAT, "%s: weightsManifest[%d]: weights but no paths", m->label, (int)gi);
    }
    return ORION_OK;
}

orion_status orion__tfjs_parse(const char *label, const void *data, size_t size, orion_tfjs_model **out) {
    *out = NULL;
    orion_tfjs_model *m = orion__calloc(1, sizeof *m);
    if (!m || !(m->label = dup_str(label))) {
        orion__free(m);
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
    }
    orion_status st = orion__json_parse(label, data, size, &m->doc);
    if (st != ORION_OK) goto fail;
    if (!cJSON_IsObject(m->doc)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: not a JSON object", label);
        goto fail;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m->doc, "format");
    if (fmt && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "graph-model") != 0)) {
        st = orion__fail(ORION_ERR_UNSUPPORTED, "%s: format is not \"graph-model\"", label);
        goto fail;
    }
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(m->doc, "modelTopology");
    const cJSON *nodes = cJSON_IsObject(topo) ? cJSON_GetObjectItemCaseSensitive(topo, "node") : NULL;
    if (!cJSON_IsArray(nodes)) {
        st = orion__fail(ORION_ERR_UNSUPPORTED, "%s: modelTopology has no \"node\" array (not a TF.js graph model)", label);
        goto fail;
    }
    if ((st = parse_nodes(m, nodes)) != ORION_OK) goto fail;
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(m->doc, "weightsManifest");
    if (!cJSON_IsArray(man)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: \"weightsManifest\" is %s, not an array", label, orion__json_kind(man));
        goto fail;
    }
    if ((st = parse_manifest(m, man)) != ORION_OK) goto fail;
    *out = m;
    return ORION_OK;
fail:
    orion__tfjs_free(m);
    return st;
}

/* ---- weights ------------------------------------------------------------------ */

static orion_status decode_weight(const orion_tfjs_model *m, orion_tfjs_weight *w, const uint8_t *src) {
    size_t esize = w->dtype == ORION_TFJS_BOOL ? 1 : 4;
    size_t n = (size_t)w->n_elems;
    w->data = orion__malloc(n ? n * esize : 1);
    if (!w->data) return orion__fail(ORION_ERR_NOMEM, "%s: weight '%s': out of memory", m->label, w->name);
    if (!w->quant[0]) {
        memcpy(w->data, src, n * esize); /* little-endian, as TF.js writes it */
        return ORION_OK;
    }
    float *f = w->data;
    if (strcmp(w->quant, "float16") == 0) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f[i] = orion_fp16_to_fp32(h);
        }
    } else if (strcmp(w->quant, "uint8") == 0) {
        for (size_t i = 0; i < n; i++) f[i] = (float)(w->min + (double)src[i] * w->scale);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t q;
            memcpy(&q, src + 2 * i, 2);
            f[i] = (float)(w->min + (double)q * w->scale);
        }
    }
    return ORION_OK;
}

orion_status orion__tfjs_load_weights(orion_tfjs_model *m, const char *dir) {
    for (int32_t gi = 0; gi < m->n_groups; gi++) {
        orion_tfjs_group *g = &m->groups[gi];
        uint8_t *buf = orion__malloc(g->n_bytes ? g->n_bytes : 1);
        if (!buf) return orion__fail(ORION_ERR_NOMEM, "%s: group %d: out of memory", m->label, (int)gi);
        size_t have = 0;
        orion_status st = ORION_OK;
        for (int32_t p = 0; p < g->n_paths && st == ORION_OK; p++) {
            char path[4096];
            int len = snprintf(path, sizeof path, "%s/%s", dir, g->paths[p]);
            if (len < 0 || (size_t)len >= sizeof path) {
                st = orion__fail(ORION_ERR_RANGE, "%s: shard path too long", m->label);
                break;
            }
            const uint8_t *map = NULL;
            size_t size = 0;
            if ((st = orion__file_map(path, &map, &size)) != ORION_OK) break;
            if (size > g->n_bytes - have) {
                st = orion__fail(ORION_ERR_FORMAT,
                                 "%s: shard '%s' makes group %d longer than the %zu bytes its weights take", m->label,
                                 g->paths[p], (int)gi, g->n_bytes);
            } else {
                if (size) memcpy(buf + have, map, size);
                have += size;
            }
            orion__file_unmap(map, size);
        }
        if (st == ORION_OK && have != g->n_bytes)
            st = orion__fail(ORION_ERR_FORMAT, "%s: group %d's shards hold %zu bytes, its weights take %zu", m->label,
                             (int)gi, have, g->n_bytes);
        for (int32_t i = 0; i < m->n_weights && st == ORION_OK; i++)
            if (m->weights[i].group == gi) st = decode_weight(m, &m->weights[i], buf + m->weights[i].offset);
        orion__free(buf);
        if (st != ORION_OK) return st;
    }
    return ORION_OK;
}

orion_status orion__tfjs_open(const char *dir, orion_tfjs_model **out) {
    *out = NULL;
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/model.json", dir);
    if (len < 0 || (size_t)len >= sizeof path) return orion__fail(ORION_ERR_RANGE, "%s: path too long", dir);
    char *text = NULL;
    size_t size = 0;
    orion_status st = orion__read_small_file(path, MODEL_JSON_MAX, &text, &size);
    if (st != ORION_OK) return st;
    orion_tfjs_model *m = NULL;
    st = orion__tfjs_parse(path, text, size, &m);
    orion__free(text);
    if (st != ORION_OK) return st;
    if ((st = orion__tfjs_load_weights(m, dir)) != ORION_OK) {
        orion__tfjs_free(m);
        return st;
    }
    *out = m;
    return ORION_OK;
}

/* "name:1" and "^name" name the node "name" */
static bool same_node(const char *ref, const char *name) {
    if (ref[0] == '^') ref++;
    size_t n = strlen(name);
    return strncmp(ref, name, n) == 0 && (ref[n] == 0 || ref[n] == ':');
}

const orion_tfjs_node *orion__tfjs_find_node(const orion_tfjs_model *m, const char *name) {
    for (int32_t i = 0; i < m->n_nodes; i++)
        if (same_node(name, m->nodes[i].name))
            return &m->nodes[i];
    return NULL;
}

const orion_tfjs_weight *orion__tfjs_find_weight(const orion_tfjs_model *m, const char *name) {
    for (int32_t i = 0; i < m->n_weights; i++)
        if (same_node(name, m->weights[i].name))
            return &m->weights[i];
    return NULL;
}

bool orion__tfjs_is_graph_dir(const char *path) {
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return false;
    char p[4096];
    int len = snprintf(p, sizeof p, "%s/model.json", path);
    if (len < 0 || (size_t)len >= sizeof p) return false;
    char *text = NULL;
    size_t size = 0;
    if (orion__read_small_file(p, MODEL_JSON_MAX, &text, &size) != ORION_OK) {
        orion__clear_error();
        return false;
    }
    cJSON *doc = NULL;
    bool ok = false;
    if (orion__json_parse(p, text, size, &doc) == ORION_OK) {
        const cJSON *topo = cJSON_GetObjectItemCaseSensitive(doc, "modelTopology");
        ok = cJSON_IsObject(topo) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(topo, "node"));
    }
    orion__json_free(doc);
    orion__free(text);
    orion__clear_error();
    return ok;
}

/* ---- USE lite ------------------------------------------------------------------ */

#define USE_MAX_LAYERS 16
#define USE_MAX_TENSORS (4 + USE_MAX_LAYERS * 16)

struct orion_use_lite_src {
    orion_tfjs_model     *tf;
    int32_t               n_layer;
    int64_t               n_vocab;       /* pieces in vocab.json */
    int64_t               n_embd_in;     /* embedding width */
    int64_t               n_embd;        /* width after the first layer (output of the stack) */
    int64_t               n_ff;
    int64_t               n_head[USE_MAX_LAYERS];
    int64_t               head_dim[USE_MAX_LAYERS];
    float                 attn_scale[USE_MAX_LAYERS];
    float                 eps;
    float                 l2_eps;
    int64_t               max_len;
    float                 embd_scale;    /* how many times the embedding enters layer 0 */
    int64_t               n_tensors;
    orion_use_lite_tensor tensors[USE_MAX_TENSORS];
    float                *owned[USE_MAX_TENSORS];
    /* the vocabulary */
    char                **pieces;
    double               *scores;
};

#define PFX "module_apply_default/Encoder_en/KonaTransformer/"

void orion__use_lite_free(orion_use_lite_src *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_tensors; i++) orion__free(s->owned[i]);
    if (s->pieces)
        for (int64_t i = 0; i < s->n_vocab; i++) orion__free(s->pieces[i]);
    orion__free(s->pieces);
    orion__free(s->scores);
    orion__tfjs_free(s->tf);
    orion__free(s);
}

static const orion_tfjs_weight *need_weight(const orion_use_lite_src *s, const char *name, orion_status *st) {
    const orion_tfjs_weight *w = orion__tfjs_find_weight(s->tf, name);
    if (!w) *st = orion__fail(ORION_ERR_FORMAT, "%s: USE lite: no weight '%s'", s->tf->label, name);
    return w;
}

static const orion_tfjs_node *need_node(const orion_use_lite_src *s, const char *name, const char *op,
                                        int min_inputs, orion_status *st) {
    const orion_tfjs_node *n = orion__tfjs_find_node(s->tf, name);
    if (!n || strcmp(n->op, op) != 0 || n->n_inputs < min_inputs) {
        *st = orion__fail(ORION_ERR_UNSUPPORTED, "%s: USE lite: expected a %s node '%s' with %d inputs", s->tf->label,
                          op, name, min_inputs);
        return NULL;
    }
    return n;
}

/* A scalar constant (a weight of one element) as double. */
static bool const_scalar(const orion_use_lite_src *s, const char *name, double *out) {
    const orion_tfjs_weight *w = orion__tfjs_find_weight(s->tf, name);
    if (!w || w->n_elems != 1 || !w->data) return false;
    if (w->dtype == ORION_TFJS_F32) *out = ((const float *)w->data)[0];
    else if (w->dtype == ORION_TFJS_I32) *out = ((const int32_t *)w->data)[0];
    else return false;
    return true;
}

/* Adds tensor `name` from weight `wname`: transpose: the weight's last two
 * dims are [in, out] and become GGUF rows of `in` (ne = {in, out}); else it
 * is copied as is with ne[0] = its last dim. Checks the element count. */
static orion_status add_tensor(orion_use_lite_src *s, const char *name, const char *wname, int64_t rows_in,
                               int64_t cols_out, bool transpose) {
    orion_status st = ORION_OK;
    const orion_tfjs_weight *w = need_weight(s, wname, &st);
    if (!w) return st;
    int64_t n = rows_in * (cols_out > 0 ? cols_out : 1);
    if (w->dtype != ORION_TFJS_F32 || w->n_elems != n)
        return orion__fail(ORION_ERR_FORMAT, "%s: USE lite: weight '%s' has %lld elements, expected %lld float32",
                           s->tf->label, wname, (long long)w->n_elems, (long long)n);
    if (s->n_tensors >= USE_MAX_TENSORS) return orion__fail(ORION_ERR_RANGE, "%s: USE lite: too many tensors", s->tf->label);
    float *d = orion__malloc((size_t)n * sizeof *d);
    if (!d) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", s->tf->label);
    const float *src = w->data;
    orion_use_lite_tensor *t = &s->tensors[s->n_tensors];
    s->owned[s->n_tensors++] = d;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->data = d;
    t->ne[2] = t->ne[3] = 1;
    if (cols_out <= 0) {
        memcpy(d, src, (size_t)n * sizeof *d);
        t->n_dims = 1;
        t->ne[0] = rows_in;
        t->ne[1] = 1;
    } else if (transpose) {
        for (int64_t i = 0; i < rows_in; i++)
            for (int64_t o = 0; o < cols_out; o++) d[o * rows_in + i] = src[i * cols_out + o];
        t->n_dims = 2;
        t->ne[0] = rows_in;
        t->ne[1] = cols_out;
    } else { /* already rows: rows_in rows of cols_out */
        memcpy(d, src, (size_t)n * sizeof *d);
        t->n_dims = 2;
        t->ne[0] = cols_out;
        t->ne[1] = rows_in;
    }
    return ORION_OK;
}

/* The last dimension and the product of the others of weight `wname`. */
static bool weight_dims(const orion_use_lite_src *s, const char *wname, int64_t *rows, int64_t *cols) {
    const orion_tfjs_weight *w = orion__tfjs_find_weight(s->tf, wname);
    if (!w || w->n_dims < 1) return false;
    *cols = w->shape[w->n_dims - 1];
    *rows = *cols ? w->n_elems / *cols : 0;
    return true;
}

static orion_status load_vocab(orion_use_lite_src *s, const char *dir) {
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (len < 0 || (size_t)len >= sizeof path) return orion__fail(ORION_ERR_RANGE, "%s: path too long", dir);
    char *text = NULL;
    size_t size = 0;
    orion_status st = orion__read_small_file(path, VOCAB_JSON_MAX, &text, &size);
    if (st != ORION_OK) return st;
    cJSON *doc = NULL;
    st = orion__json_parse(path, text, size, &doc);
    orion__free(text);
    if (st != ORION_OK) return st;
    int n = cJSON_IsArray(doc) ? cJSON_GetArraySize(doc) : 0;
    if (n < 7) {
        orion__json_free(doc);
        return orion__fail(ORION_ERR_FORMAT, "%s: expected an array of [piece, score] pairs", path);
    }
    s->pieces = orion__calloc((size_t)n, sizeof *s->pieces);
    s->scores = orion__calloc((size_t)n, sizeof *s->scores);
    if (!s->pieces || !s->scores) {
        orion__json_free(doc);
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    }
    s->n_vocab = n;
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, doc) {
        const cJSON *p = cJSON_GetArrayItem(it, 0), *sc = cJSON_GetArrayItem(it, 1);
        /* a null score (vocab.json has seven, ':' among them) is 0 to the JS
         * tokenizer: null + number == number */
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2 || !cJSON_IsString(p) ||
            !(cJSON_IsNull(sc) || (cJSON_IsNumber(sc) && isfinite(sc->valuedouble)))) {
            orion__json_free(doc);
            return orion__fail(ORION_ERR_FORMAT, "%s: entry %d is not a [piece, score] pair", path, i);
        }
        if (!(s->pieces[i] = dup_str(p->valuestring))) {
            orion__json_free(doc);
            return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
        }
        s->scores[i] = cJSON_IsNull(sc) ? 0.0 : sc->valuedouble;
        i++;
    }
    orion__json_free(doc);
    return ORION_OK;
}

#define NAME(...) (snprintf(nb, sizeof nb, __VA_ARGS__), nb)
#define CHECK(x)                                   \
    do {                                           \
        if ((st = (x)) != ORION_OK) goto fail;     \
    } while (0)
#define REQUIRE(cond, ...)                                        \
    do {                                                          \
        if (!(cond)) {                                            \
            st = orion__fail(ORION_ERR_UNSUPPORTED, __VA_ARGS__); \
            goto fail;                                            \
        }                                                         \
    } while (0)

orion_status orion__use_lite_open(const char *dir, orion_use_lite_src **out) {
    *out = NULL;
    orion_use_lite_src *s = orion__calloc(1, sizeof *s);
    if (!s) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", dir);
    orion_status st = ORION_OK;
    char nb[512], nb2[512];
    const char *lab;
    CHECK(orion__tfjs_open(dir, &s->tf));
    lab = s->tf->label;
    CHECK(load_vocab(s, dir));

    /* the input: SparseToDense of token ids, positions clipped to max_len */
    const orion_tfjs_node *n;
    double v;
    if (!(n = need_node(s, PFX "ClipToMaxLength/Less", "Less", 2, &st))) goto fail;
    REQUIRE(const_scalar(s, n->inputs[1], &v) && v >= 1 && v <= 65536, "%s: USE lite: no maximum length", lab);
    s->max_len = (int64_t)v;
    if (!(n = need_node(s, PFX "Encode/SparseToDense", "SparseToDense", 4, &st))) goto fail;
    REQUIRE(const_scalar(s, n->inputs[3], &v) && v < 0, "%s: USE lite: SparseToDense's default must be negative "
                                                        "(token 0 is a real token)", lab);
    /* the embedding: Layer_0/add = Scatter(embedding) + Scatter(GatherNd(Scatter(embedding)) + timing) */
    if (!(n = need_node(s, PFX "Encode/TransformerStack/Layer_0/add", "Add", 2, &st))) goto fail;
    {
        const orion_tfjs_node *g = need_node(s, PFX "Encode/TransformerStack/Layer_0/AddTimingSignal/Gather/GatherNd",
                                             "GatherNd", 2, &st);
        if (!g) goto fail;
        bool twice = same_node(n->inputs[0], PFX "Encode/Scatter/ScatterNd") &&
                     same_node(n->inputs[1], PFX "Encode/TransformerStack/Layer_0/AddTimingSignal/Scatter/ScatterNd") &&
                     same_node(g->inputs[0], PFX "Encode/Scatter/ScatterNd");
        REQUIRE(twice, "%s: USE lite: layer 0's input is not embedding + (embedding + timing signal)", lab);
        s->embd_scale = 2.0f;
    }
    int64_t rows, cols;
    REQUIRE(weight_dims(s, "module/Embeddings_en", &rows, &cols), "%s: USE lite: no module/Embeddings_en", lab);
    REQUIRE(rows >= s->n_vocab && cols > 0 && cols % 2 == 0, "%s: USE lite: embedding of %lld x %lld for %lld pieces",
            lab, (long long)rows, (long long)cols, (long long)s->n_vocab);
    s->n_embd_in = cols;
    CHECK(add_tensor(s, "token_embd.weight", "module/Embeddings_en", rows, cols, false));
    CHECK(add_tensor(s, "pos.inv_timescales",
                     PFX "Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", cols / 2, 0,
                     false));
    if (!need_node(s, PFX "Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/Sin", "Sin", 1, &st) ||
        !need_node(s, PFX "Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/Cos", "Cos", 1, &st))
        goto fail;
    if (!(n = need_node(s, PFX "Encode/TransformerStack/Layer_0/TransformerLayer/layer_prepostprocess/layer_norm/add",
                        "Add", 2, &st)))
        goto fail;
    REQUIRE(const_scalar(s, n->inputs[1], &v) && v > 0 && v < 1, "%s: USE lite: no layer-norm epsilon", lab);
    s->eps = (float)v;

    int64_t d_in = s->n_embd_in;
    for (int32_t L = 0;; L++) {
        const char *kq = NAME("module/Encoder_en/KonaTransformer/Encode/Layer_%d/TransformerLayer/MultiheadAttention/"
                              "qkv_transform_single/kernel/part_0", (int)L);
        if (!orion__tfjs_find_weight(s->tf, kq)) break;
        char kqbuf[512];
        snprintf(kqbuf, sizeof kqbuf, "%s", kq);
        kq = kqbuf;
        REQUIRE(L < USE_MAX_LAYERS, "%s: USE lite: more than %d layers", lab, USE_MAX_LAYERS);
        s->n_layer = L + 1;
        const char *TS = PFX "Encode/TransformerStack/Layer_";
        const char *EL = PFX "Encode/Layer_";
        char t[64];
        /* heads and head size: the split_heads reshape's shape constants */
        if (!(n = need_node(s, NAME("%s%d/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/"
                                    "shape", TS, (int)L), "Pack", 4, &st)))
            goto fail;
        double h, hd, sc;
        REQUIRE(const_scalar(s, n->inputs[2], &h) && const_scalar(s, n->inputs[3], &hd) && h >= 1 && hd >= 1 &&
                    h * hd <= 65536,
                "%s: USE lite: layer %d: no head count / size", lab, (int)L);
        REQUIRE(const_scalar(s, NAME("%s%d/TransformerLayer/MultiheadAttention/mul/y", TS, (int)L), &sc) && sc > 0,
                "%s: USE lite: layer %d: no attention scale", lab, (int)L);
        s->n_head[L] = (int64_t)h;
        s->head_dim[L] = (int64_t)hd;
        s->attn_scale[L] = (float)sc;
        int64_t d_att = s->n_head[L] * s->head_dim[L];
        REQUIRE(weight_dims(s, kq, &rows, &cols) && rows == d_in && cols == 3 * d_att,
                "%s: USE lite: layer %d: qkv kernel is %lld x %lld, expected %lld x %lld", lab, (int)L,
                (long long)rows, (long long)cols, (long long)d_in, (long long)(3 * d_att));
        snprintf(t, sizeof t, "blk.%d.attn_norm.weight", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_scale/"
                                    "ConcatPartitions/concat", EL, (int)L), d_in, 0, false));
        snprintf(t, sizeof t, "blk.%d.attn_norm.bias", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_bias/"
                                    "ConcatPartitions/concat", EL, (int)L), d_in, 0, false));
        snprintf(t, sizeof t, "blk.%d.attn_qkv.weight", (int)L);
        CHECK(add_tensor(s, t, kq, d_in, 3 * d_att, true));
        snprintf(t, sizeof t, "blk.%d.attn_qkv.bias", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/"
                                    "ConcatPartitions/concat", EL, (int)L), 3 * d_att, 0, false));
        const char *ko = NAME("module/Encoder_en/KonaTransformer/Encode/Layer_%d/TransformerLayer/MultiheadAttention/"
                              "output_transform_single/kernel/part_0", (int)L);
        int64_t d_out;
        REQUIRE(weight_dims(s, ko, &rows, &d_out) && rows == d_att && d_out > 0,
                "%s: USE lite: layer %d: bad output transform", lab, (int)L);
        snprintf(nb2, sizeof nb2, "%s", ko);
        snprintf(t, sizeof t, "blk.%d.attn_out.weight", (int)L);
        CHECK(add_tensor(s, t, nb2, d_att, d_out, true));
        snprintf(t, sizeof t, "blk.%d.attn_out.bias", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/MultiheadAttention/output_transform_single/bias/"
                                    "ConcatPartitions/concat", EL, (int)L), d_out, 0, false));
        /* the residual: a dense projection when the width changes */
        const char *kd = NAME("%s%d/TransformerLayer/dense/kernel/ConcatPartitions/concat", EL, (int)L);
        if (orion__tfjs_find_weight(s->tf, kd)) {
            snprintf(nb2, sizeof nb2, "%s", kd);
            snprintf(t, sizeof t, "blk.%d.res_proj.weight", (int)L);
            CHECK(add_tensor(s, t, nb2, d_in, d_out, true));
            snprintf(t, sizeof t, "blk.%d.res_proj.bias", (int)L);
            CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/dense/bias/ConcatPartitions/concat", EL, (int)L), d_out,
                             0, false));
        } else {
            REQUIRE(d_in == d_out, "%s: USE lite: layer %d changes width without a projection", lab, (int)L);
        }
        snprintf(t, sizeof t, "blk.%d.ffn_norm.weight", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_scale/"
                                    "ConcatPartitions/concat", EL, (int)L), d_out, 0, false));
        snprintf(t, sizeof t, "blk.%d.ffn_norm.bias", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_bias/"
                                    "ConcatPartitions/concat", EL, (int)L), d_out, 0, false));
        const char *k1 = NAME("%s%d/TransformerLayer/FFN/conv1/Tensordot/Reshape_1", TS, (int)L);
        int64_t ff;
        REQUIRE(weight_dims(s, k1, &rows, &ff) && rows == d_out && ff > 0, "%s: USE lite: layer %d: bad FFN", lab,
                (int)L);
        snprintf(nb2, sizeof nb2, "%s", k1);
        snprintf(t, sizeof t, "blk.%d.ffn_up.weight", (int)L);
        CHECK(add_tensor(s, t, nb2, d_out, ff, true));
        snprintf(t, sizeof t, "blk.%d.ffn_up.bias", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat", EL, (int)L), ff, 0,
                         false));
        snprintf(t, sizeof t, "blk.%d.ffn_down.weight", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/FFN/conv2/Tensordot/Reshape_1", TS, (int)L), ff, d_out,
                         true));
        snprintf(t, sizeof t, "blk.%d.ffn_down.bias", (int)L);
        CHECK(add_tensor(s, t, NAME("%s%d/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat", EL, (int)L), d_out,
                         0, false));
        if (!need_node(s, NAME("%s%d/TransformerLayer/FFN/conv1/Relu", TS, (int)L), "Relu", 1, &st)) goto fail;
        if (L > 0) REQUIRE(ff == s->n_ff, "%s: USE lite: FFN widths differ across layers", lab);
        s->n_ff = ff;
        d_in = d_out;
    }
    REQUIRE(s->n_layer > 0, "%s: USE lite: no transformer layers", lab);
    s->n_embd = d_in;
    /* pooling and the final layer */
    if (!need_node(s, PFX "div", "RealDiv", 2, &st)) goto fail;
    if (!need_node(s, "module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/Tanh", "Tanh", 1, &st)) goto fail;
    REQUIRE(weight_dims(s, "module/Encoder_en/hidden_layers/tanh_layer_0/weights", &rows, &cols) && rows == s->n_embd &&
                cols > 0,
            "%s: USE lite: bad final layer", lab);
    CHECK(add_tensor(s, "pool_dense.weight", "module/Encoder_en/hidden_layers/tanh_layer_0/weights", rows, cols, true));
    CHECK(add_tensor(s, "pool_dense.bias", "module/Encoder_en/hidden_layers/tanh_layer_0/bias", cols, 0, false));
    REQUIRE(const_scalar(s, "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", &v) && v > 0,
            "%s: USE lite: no l2_normalize epsilon", lab);
    s->l2_eps = (float)v;
    *out = s;
    return ORION_OK;
fail:
    orion__use_lite_free(s);
    return st;
}

int64_t orion__use_lite_n_tensors(const orion_use_lite_src *s) { return s->n_tensors; }

const orion_use_lite_tensor *orion__use_lite_tensor(const orion_use_lite_src *s, int64_t i) {
    return i >= 0 && i < s->n_tensors ? &s->tensors[i] : NULL;
}

orion_status orion__use_lite_write_metadata(const orion_use_lite_src *s, const char *name, orion_gguf_writer *w) {
    orion_status st;
#define SET(x)                                 \
    do {                                       \
        if ((st = (x)) != ORION_OK) return st; \
    } while (0)
    SET(orion_gguf_writer_set_str(w, "general.architecture", "use-lite"));
    SET(orion_gguf_writer_set_str(w, "general.name", name && name[0] ? name : "universal-sentence-encoder-lite"));
    SET(orion_gguf_writer_set_u32(w, "use-lite.block_count", (uint32_t)s->n_layer));
    SET(orion_gguf_writer_set_u32(w, "use-lite.input_embedding_length", (uint32_t)s->n_embd_in));
    SET(orion_gguf_writer_set_u32(w, "use-lite.embedding_length", (uint32_t)s->n_embd));
    SET(orion_gguf_writer_set_u32(w, "use-lite.feed_forward_length", (uint32_t)s->n_ff));
    SET(orion_gguf_writer_set_u32(w, "use-lite.context_length", (uint32_t)s->max_len));
    uint32_t heads[USE_MAX_LAYERS], hdim[USE_MAX_LAYERS];
    for (int32_t L = 0; L < s->n_layer; L++) heads[L] = (uint32_t)s->n_head[L], hdim[L] = (uint32_t)s->head_dim[L];
    SET(orion_gguf_writer_set_array(w, "use-lite.attention.head_count", ORION_GGUF_U32, heads, (uint64_t)s->n_layer));
    SET(orion_gguf_writer_set_array(w, "use-lite.attention.key_length", ORION_GGUF_U32, hdim, (uint64_t)s->n_layer));
    SET(orion_gguf_writer_set_array(w, "use-lite.attention.scale", ORION_GGUF_F32, s->attn_scale, (uint64_t)s->n_layer));
    SET(orion_gguf_writer_set_f32(w, "use-lite.attention.layer_norm_epsilon", s->eps));
    SET(orion_gguf_writer_set_f32(w, "use-lite.embedding_scale", s->embd_scale));
    SET(orion_gguf_writer_set_f32(w, "use-lite.l2_epsilon", s->l2_eps));
    SET(orion_gguf_writer_set_str(w, "use-lite.pooling", "mean"));
    SET(orion_gguf_writer_set_bool(w, "use-lite.normalize", true));
    SET(orion_gguf_writer_set_str(w, "tokenizer.ggml.model", "use-unigram"));
    SET(orion_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)s->pieces,
                                        (uint64_t)s->n_vocab));
    /* f64: the JS tokenizer sums these as doubles, and f32 would move ties */
    SET(orion_gguf_writer_set_array(w, "tokenizer.ggml.scores", ORION_GGUF_F64, s->scores, (uint64_t)s->n_vocab));
    SET(orion_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    SET(orion_gguf_writer_set_u32(w, "use-lite.tokenizer.reserved_count", 6));
#undef SET
    return ORION_OK;
}
