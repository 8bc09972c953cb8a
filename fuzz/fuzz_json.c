/*
 * fuzz_json.c — libFuzzer target for the JSON and text readers of Hugging
 * Face model directories: config.json (LLaVA's included), LLaVA's
 * preprocessor_config.json, modules.json, the pooling config,
 * model.safetensors.index.json, tokenizer.json's vocabulary and vocab.txt
 * (then llama.cpp's BERT form of it). Every reader gets the same bytes; each
 * must accept them (and then hand out values inside their documented
 * ranges) or fail with a message — never crash, leak or over-read. Seeds in
 * fuzz/corpus/json.
 */
#include "formats/hf_model.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failed(orion_status st) {
    if (st != ORION_OK && orion_last_error()[0] == '\0') __builtin_trap();
}

static void check_vocab(const orion_vocab *v) {
    volatile size_t sink = 0;
    for (int32_t i = 0; i < v->n; i++) {
        if (!v->tokens[i] || v->types[i] < 1 || v->types[i] > 6) __builtin_trap();
        sink += strlen(v->tokens[i]);
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    orion_hf_config c;
    orion_status st = orion__hf_config_parse("config.json", data, size, &c);
    check_failed(st);
    if (st == ORION_OK) {
        if (c.vocab_size < 1 || c.hidden_size < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 ||
            c.n_heads % c.n_kv_heads != 0 || c.head_dim < 1 || c.context_length < 1 || !(c.norm_eps > 0.0) ||
            c.bos_id >= c.vocab_size || c.eos_id >= c.vocab_size)
            __builtin_trap();
        const orion_hf_vision *v = &c.vision;
        if (c.llava && (v->n_layers < 1 || v->feature_layer < 1 || v->feature_layer > v->n_layers ||
                        v->patch_size < 1 || v->image_size % v->patch_size != 0 || v->n_heads < 1 ||
                        v->hidden_size % v->n_heads != 0))
            __builtin_trap();
    }
    orion_hf_vision pv;
    memset(&pv, 0, sizeof pv);
    pv.image_size = 336;
    for (int i = 0; i < 3; i++) pv.image_mean[i] = 0.5f, pv.image_std[i] = 0.25f; /* the config's, kept when absent */
    st = orion__hf_preprocessor_parse("preprocessor_config.json", data, size, &pv);
    check_failed(st);
    if (st == ORION_OK)
        for (int i = 0; i < 3; i++)
            if (!isfinite(pv.image_mean[i]) || !(pv.image_std[i] > 0.0f)) __builtin_trap();
    orion_hf_modules m;
    check_failed(orion__hf_modules_parse("modules.json", data, size, &m));
    uint32_t pooling;
    st = orion__hf_pooling_parse("1_Pooling/config.json", data, size, &pooling);
    check_failed(st);
    if (st == ORION_OK && pooling != 1 && pooling != 2) __builtin_trap();

    orion_hf_index *x = NULL;
    st = orion__hf_index_parse("model.safetensors.index.json", data, size, &x);
    check_failed(st);
    if (st == ORION_OK) {
        for (int64_t i = 0; i < x->n_entries; i++)
            if (x->shard_of[i] < 0 || x->shard_of[i] >= x->n_shards || !x->names[i][0]) __builtin_trap();
        for (int32_t i = 0; i < x->n_shards; i++)
            if (strchr(x->shards[i], '/') || strstr(x->shards[i], "..")) __builtin_trap();
        orion__hf_index_free(x);
    }

    orion_vocab *v = NULL, *b = NULL;
    st = orion__hf_vocab_json_parse("tokenizer.json", data, size, &v);
    check_failed(st);
    if (st == ORION_OK) {
        check_vocab(v);
        orion__vocab_free(v);
    }
    st = orion__hf_vocab_txt_parse("vocab.txt", data, size, &v);
    check_failed(st);
    if (st == ORION_OK) {
        check_vocab(v);
        st = orion__hf_bert_vocab("vocab.txt", v, (int64_t)v->n + 3, &b);
        check_failed(st);
        if (st == ORION_OK) {
            check_vocab(b);
            orion__vocab_free(b);
        }
        orion__vocab_free(v);
    }
    return 0;
}
