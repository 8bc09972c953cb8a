/*
 * hf_llava.c — the LLaVA side of Hugging Face directories
 * (LlavaForConditionalGeneration, the llava-1.5-hf layout): config.json's
 * text_config, vision_config and feature selection, preprocessor_config.json,
 * and the metadata of the image encoder's GGUF in llama.cpp's "mmproj"
 * layout (what convert_image_encoder_to_gguf.py writes and clip.c reads).
 * The tensors themselves are mapped by hf_model.c's spec tables.
 *
 * text_config may be partial: transformers fills what it leaves out from
 * the text model's config class, so orion does too, from a table of
 * LlamaConfig's and MistralConfig's defaults (LLaVA-1.5-hf's text_config
 * gives little more than vocab_size and max_position_embeddings; the rest
 * are the 7B defaults). The filled object then goes through the same checks
 * as a LlamaForCausalLM config.json.
 *
 * What clip.c computes, and so what is accepted: a CLIP vision tower
 * ("clip_vision_model", 3 channels, quick GELU or erf GELU), one feature
 * layer (vision_feature_layer, -2 for LLaVA-1.5: hidden_states[-2], the
 * output of all but the last layer) with the class token dropped
 * (vision_feature_select_strategy "default"), and the 2-layer MLP projector
 * with erf GELU (projector_hidden_act "gelu") and biases. Anything else is
 * ORION_ERR_UNSUPPORTED naming the field.
 *
 * The mmproj holds the layers up to the feature layer only: block_count and
 * clip.vision.feature_layer are both that number, so clip.c (and llama.cpp)
 * run exactly the layers LLaVA uses; the last layer of ViT-L/14 and the
 * post-layernorm, which LLaVA never applies, are not written.
 */
#include "formats/hf_model.h"
#include "formats/json.h"
#include "formats/mmproj.h"

#include <math.h>
#include <stdio.h>
#include <string.h>


#define GET(call)                                 \
    do {                                          \
        if ((st = (call)) != ORION_OK) return st; \
    } while (0)

/* ---- text_config ---------------------------------------------------------------------- */

typedef struct text_default {
    const char *key;
    double      llama, mistral; /* NAN: none (the parser's own default applies) */
} text_default;

/* transformers' LlamaConfig() and MistralConfig() defaults */
static const text_default text_defaults[] = {
    {"vocab_size", 32000, 32000},
    {"hidden_size", 4096, 4096},
    {"intermediate_size", 11008, 14336},
    {"num_hidden_layers", 32, 32},
    {"num_attention_heads", 32, 32},
    {"num_key_value_heads", NAN, 8},
    {"max_position_embeddings", 2048, 4096 * 32},
    {"sliding_window", NAN, 4096},
};

static orion_status text_arch(const char *label, const cJSON *text, orion_hf_arch *arch) {
    const cJSON *mt = orion__hf_member(text, "model_type");
    *arch = ORION_HF_LLAMA;
    if (!mt) return ORION_OK;
    if (!cJSON_IsString(mt) || !mt->valuestring)
        return orion__fail(ORION_ERR_FORMAT, "%s: field 'text_config.model_type' is %s, expected a string", label,
                           orion__json_kind(mt));
    if (strcmp(mt->valuestring, "llama") == 0) return ORION_OK;
    if (strcmp(mt->valuestring, "mistral") == 0) {
        *arch = ORION_HF_MISTRAL;
        return ORION_OK;
    }
    return orion__fail(ORION_ERR_UNSUPPORTED,
                       "%s: field 'text_config.model_type' = '%.32s': only llama and mistral language models are "
                       "supported",
                       label, mt->valuestring);
}

/* Sets key to a number in obj, replacing a JSON null. */
static bool set_number(cJSON *obj, const char *key, double v) {
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static orion_status parse_text(const char *label, const cJSON *root, orion_hf_config *c) {
    const cJSON *text = orion__hf_member(root, "text_config");
    if (text && !cJSON_IsObject(text))
        return orion__fail(ORION_ERR_FORMAT, "%s: field 'text_config' is %s, expected an object", label,
                           orion__json_kind(text));
    orion_hf_arch arch = ORION_HF_LLAMA;
    orion_status st;
    if (text) GET(text_arch(label, text, &arch));
    cJSON *t = text ? cJSON_Duplicate(text, true) : cJSON_CreateObject();
    if (!t) return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
    /* vocab_size may sit at the top level only (older LLaVA configs) */
    const cJSON *top_vocab = orion__hf_member(root, "vocab_size");
    if (!orion__hf_member(t, "vocab_size") && top_vocab) {
        cJSON *copy = cJSON_Duplicate(top_vocab, true);
        cJSON_DeleteItemFromObjectCaseSensitive(t, "vocab_size");
        if (!copy || !cJSON_AddItemToObject(t, "vocab_size", copy)) {
            cJSON_Delete(copy);
            orion__json_free(t);
            return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
        }
    }
    for (size_t i = 0; i < ORION_ARRAY_LEN(text_defaults); i++) {
        const text_default *d = &text_defaults[i];
        double v = arch == ORION_HF_MISTRAL ? d->mistral : d->llama;
        if (isnan(v) || orion__hf_member(t, d->key)) continue;
        if (!set_number(t, d->key, v)) {
            orion__json_free(t);
            return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", label);
        }
    }
    char tlabel[600];
    snprintf(tlabel, sizeof tlabel, "%.500s: text_config", label);
    c->arch = arch;
    st = orion__hf_parse_llama(tlabel, t, c);
    orion__json_free(t);
    return st;
}

/* ---- vision_config and the feature selection ------------------------------------------ */

static orion_status get_str(const char *label, const cJSON *obj, const char *name, const char *def,
                            const char **out) {
    const cJSON *it = orion__hf_member(obj, name);
    *out = def;
    if (!it) return ORION_OK;
    if (!cJSON_IsString(it) || !it->valuestring)
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is %s, expected a string", label, name,
                           orion__json_kind(it));
    *out = it->valuestring;
    return ORION_OK;
}

static orion_status parse_vision(const char *label, const cJSON *root, orion_hf_vision *v) {
    orion_status st;
    const cJSON *vc = orion__hf_member(root, "vision_config");
    if (vc && !cJSON_IsObject(vc))
        return orion__fail(ORION_ERR_FORMAT, "%s: field 'vision_config' is %s, expected an object", label,
                           orion__json_kind(vc));
    char vl[600];
    snprintf(vl, sizeof vl, "%.500s: vision_config", label);
    /* LlavaConfig's default tower is CLIP ViT-L/14-336; a given
     * vision_config falls back on CLIPVisionConfig's defaults */
    const bool given = vc != NULL;
    const char *mt;
    GET(get_str(vl, vc, "model_type", "clip_vision_model", &mt));
    if (strcmp(mt, "clip_vision_model") != 0)
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: field 'model_type' = '%.32s': only CLIP vision towers (clip_vision_model) are "
                           "supported",
                           vl, mt);
    int64_t channels;
    GET(orion__hf_get_int(vl, vc, "num_channels", false, 3, 1, 64, &channels));
    if (channels != 3)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: field 'num_channels' = %lld: only RGB (3) is supported", vl,
                           (long long)channels);
    GET(orion__hf_get_int(vl, vc, "image_size", false, given ? 224 : 336, 1, 4096, &v->image_size));
    GET(orion__hf_get_int(vl, vc, "patch_size", false, given ? 32 : 14, 1, 4096, &v->patch_size));
    GET(orion__hf_get_int(vl, vc, "hidden_size", false, given ? 768 : 1024, 1, 1 << 16, &v->hidden_size));
    GET(orion__hf_get_int(vl, vc, "intermediate_size", false, given ? 3072 : 4096, 1, 1 << 18,
                          &v->intermediate_size));
    GET(orion__hf_get_int(vl, vc, "num_hidden_layers", false, given ? 12 : 24, 1, 1024, &v->n_layers));
    GET(orion__hf_get_int(vl, vc, "num_attention_heads", false, given ? 12 : 16, 1, 4096, &v->n_heads));
    GET(orion__hf_get_int(vl, vc, "projection_dim", false, given ? 512 : 768, 0, 1 << 20, &v->projection_dim));
    GET(orion__hf_get_num(vl, vc, "layer_norm_eps", 1e-5, 0.0, 1.0, &v->norm_eps));
    if (v->image_size % v->patch_size != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: image_size %lld is not a multiple of patch_size %lld", vl,
                           (long long)v->image_size, (long long)v->patch_size);
    if (v->hidden_size % v->n_heads != 0)
        return orion__fail(ORION_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", vl,
                           (long long)v->hidden_size, (long long)v->n_heads);
    const char *act;
    GET(get_str(vl, vc, "hidden_act", "quick_gelu", &act));
    if (strcmp(act, "quick_gelu") == 0) v->quick_gelu = true;
    else if (strcmp(act, "gelu") == 0) v->quick_gelu = false;
    else
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: field 'hidden_act' = '%.32s': only quick_gelu and gelu are supported", vl, act);

    /* LLaVA's feature selection and projector */
    GET(get_str(label, root, "projector_hidden_act", "gelu", &act));
    if (strcmp(act, "gelu") != 0)
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: field 'projector_hidden_act' = '%.32s': only gelu (LLaVA-1.5's mlp2x_gelu) is "
                           "supported",
                           label, act);
    bool bias;
    GET(orion__hf_get_bool(label, root, "multimodal_projector_bias", true, &bias));
    if (!bias)
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: field 'multimodal_projector_bias' is false: projectors without biases are not "
                           "supported",
                           label);
    const char *sel;
    GET(get_str(label, root, "vision_feature_select_strategy", "default", &sel));
    if (strcmp(sel, "full") == 0)
        return orion__fail(ORION_ERR_UNSUPPORTED,
                           "%s: field 'vision_feature_select_strategy' = 'full' (keep the class token) is not "
                           "supported, only 'default'",
                           label);
    if (strcmp(sel, "default") != 0)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: field 'vision_feature_select_strategy' = '%.32s', expected 'default' or 'full'",
                           label, sel);
    const cJSON *fl = orion__hf_member(root, "vision_feature_layer");
    int64_t layer = -2;
    if (fl) {
        if (cJSON_IsArray(fl)) {
            int n = cJSON_GetArraySize(fl);
            if (n != 1)
                return orion__fail(n == 0 ? ORION_ERR_FORMAT : ORION_ERR_UNSUPPORTED,
                                   "%s: field 'vision_feature_layer' lists %d layers: exactly one is supported",
                                   label, n);
            fl = fl->child;
        }
        if (!orion__json_integer(fl, &layer))
            return orion__fail(ORION_ERR_FORMAT, "%s: field 'vision_feature_layer' is %s, expected an integer", label,
                               orion__json_kind(fl));
    }
    /* hidden_states[i]: 0 is the embeddings, i the output of i layers */
    const int64_t f = layer >= 0 ? layer : v->n_layers + 1 + layer;
    if (f < 1 || f > v->n_layers)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: field 'vision_feature_layer' = %lld does not name a layer's output (1 to %lld, or -1 "
                           "to -%lld)",
                           label, (long long)layer, (long long)v->n_layers, (long long)v->n_layers);
    v->feature_layer = f;
    v->image_token_index = -1;
    const char *tok_key = orion__hf_member(root, "image_token_index") ? "image_token_index" : "image_token_id";
    GET(orion__hf_get_int(label, root, tok_key, false, -1, -1, INT32_MAX, &v->image_token_index));
    memcpy(v->image_mean, orion__clip_mean, sizeof orion__clip_mean);
    memcpy(v->image_std, orion__clip_std, sizeof orion__clip_std);
    return ORION_OK;
}

orion_status orion__hf_llava_config_parse(const char *label, const cJSON *root, orion_hf_config *c) {
    orion_status st;
    c->llava = true;
    GET(parse_vision(label, root, &c->vision));
    return parse_text(label, root, c);
}

/* ---- preprocessor_config.json ----------------------------------------------------------- */

static orion_status get_triple(const char *label, const cJSON *root, const char *name, bool positive, float out[3]) {
    const cJSON *a = orion__hf_member(root, name);
    if (!a) return ORION_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
        return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' must be an array of 3 numbers", label, name);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 1e6 ||
            (positive && !(e->valuedouble > 0.0)))
            return orion__fail(ORION_ERR_FORMAT, "%s: field '%s': entry %d is %s, expected a %snumber", label, name,
                               i, orion__json_kind(e), positive ? "positive " : "");
        out[i++] = (float)e->valuedouble;
    }
    return ORION_OK;
}

/* crop_size / size: an integer, or {"height", "width"} or {"shortest_edge"};
 * every side given must be image_size. */
static orion_status check_size(const char *label, const cJSON *root, const char *name, int64_t image_size) {
    const cJSON *it = orion__hf_member(root, name);
    if (!it) return ORION_OK;
    static const char *const sides[] = {"height", "width", "shortest_edge"};
    int64_t got[3] = {image_size, image_size, image_size};
    orion_status st;
    if (cJSON_IsObject(it)) {
        int n = 0;
        for (int i = 0; i < 3; i++) {
            if (!orion__hf_member(it, sides[i])) continue;
            char fl[80];
            snprintf(fl, sizeof fl, "%s.%s", name, sides[i]);
            const cJSON *side = orion__hf_member(it, sides[i]);
            int64_t v;
            if (!orion__json_integer(side, &v) || v < 1 || v > (1 << 20))
                return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' is %s, expected a positive integer", label, fl,
                                   orion__json_kind(side));
            got[i] = v, n++;
        }
        if (n == 0)
            return orion__fail(ORION_ERR_FORMAT, "%s: field '%s' has no height, width or shortest_edge", label, name);
    } else {
        GET(orion__hf_get_int(label, root, name, true, 0, 1, 1 << 20, &got[0]));
        got[1] = got[0];
    }
    for (int i = 0; i < 3; i++)
        if (got[i] != image_size)
            return orion__fail(ORION_ERR_UNSUPPORTED,
                               "%s: field '%s' = %lld but the vision tower's image_size is %lld: orion pads to a "
                               "square and resizes straight to image_size",
                               label, name, (long long)got[i], (long long)image_size);
    return ORION_OK;
}

orion_status orion__hf_preprocessor_parse(const char *label, const void *data, size_t size, orion_hf_vision *v) {
    cJSON *root = NULL;
    orion_status st = orion__json_parse(label, data, size, &root);
    if (st != ORION_OK) return st;
    float mean[3], sd[3];
    memcpy(mean, v->image_mean, sizeof mean);
    memcpy(sd, v->image_std, sizeof sd);
    bool normalize = true, rescale = true;
    int64_t resample = 3;
    double factor = 1.0 / 255.0;
    if (!cJSON_IsObject(root)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: the document is %s, expected an object", label,
                         orion__json_kind(root));
    } else if ((st = get_triple(label, root, "image_mean", false, mean)) == ORION_OK &&
               (st = get_triple(label, root, "image_std", true, sd)) == ORION_OK &&
               (st = check_size(label, root, "crop_size", v->image_size)) == ORION_OK &&
               (st = check_size(label, root, "size", v->image_size)) == ORION_OK &&
               (st = orion__hf_get_bool(label, root, "do_normalize", true, &normalize)) == ORION_OK &&
               (st = orion__hf_get_bool(label, root, "do_rescale", true, &rescale)) == ORION_OK &&
               (st = orion__hf_get_int(label, root, "resample", false, 3, 0, 5, &resample)) == ORION_OK &&
               (st = orion__hf_get_num(label, root, "rescale_factor", 1.0 / 255.0, 0.0, 1.0, &factor)) == ORION_OK) {
        if (!normalize || !rescale || resample != 3 || fabs(factor - 1.0 / 255.0) > 1e-12)
            st = orion__fail(ORION_ERR_UNSUPPORTED,
                             "%s: only CLIP's preprocessing is supported (do_rescale and do_normalize true, "
                             "rescale_factor 1/255, resample 3 = bicubic)",
                             label);
    }
    orion__json_free(root);
    if (st == ORION_OK) {
        memcpy(v->image_mean, mean, sizeof mean);
        memcpy(v->image_std, sd, sizeof sd);
    }
    return st;
}

/* ---- the mmproj's metadata ------------------------------------------------------------------ */

orion_status orion__hf_llava_write_metadata(const orion_hf_config *c, const char *name, orion_gguf_writer *w) {
    const orion_hf_vision *v = &c->vision;
    /* the layers written: up to the feature layer */
    const orion__mmproj_meta m = {
        .name = name, .description = "image encoder for LLaVA", .image_size = v->image_size,
        .patch_size = v->patch_size, .n_embd = v->hidden_size, .n_ff = v->intermediate_size, .n_head = v->n_heads,
        .projection_dim = v->projection_dim, .block_count = v->feature_layer,
        .feature_layer = (int32_t)v->feature_layer, .norm_eps = (float)v->norm_eps, .image_mean = v->image_mean,
        .image_std = v->image_std, .use_gelu = !v->quick_gelu,
    };
    return orion__mmproj_write_metadata(w, &m);
}
