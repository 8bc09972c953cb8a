/*
 * fuzz_request.c — libFuzzer target for the model server's request parser
 * (src/service/request.c): the bytes are a request body, parsed in both the
 * OpenAI and the Ollama shape, as each generation request (completions,
 * chat, Ollama generate and chat) and as an unload request. Each parse must
 * succeed with texts inside the body's bounds, or fail with an HTTP error
 * code and message — never crash, leak or over-read. The reply writers run
 * on what parsed (JSON strings, floats, base64 round trip). Generation
 * bodies may carry images (OpenAI content parts with image_url data URLs,
 * Ollama "images" base64): a parse that succeeds has one "<image>" per image
 * in its texts and each image's bytes within the limit; the bytes are also
 * fed as a data URL and as base64 to the image helpers (src/service/
 * images.c). Seeds in fuzz/corpus/request.
 */
#include "service/service.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_tags(const char *s) {
    size_t k = 0;
    for (const char *p = strstr(s, ORION__IMAGE_TAG); p; p = strstr(p + 7, ORION__IMAGE_TAG)) k++;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int api = 0; api < 2; api++) {
        orion__embed_request req;
        orion__http_error err;
        memset(&err, 0, sizeof err);
        orion_status st = orion__embed_request_parse((const char *)data, size, api, 64, &req, &err);
        if (st != ORION_OK) {
            if (err.code < 400 || err.code > 599 || !err.message[0] || !err.type[0]) __builtin_trap();
        } else {
            if (req.n < 1 || req.n > 64 || req.dimensions < 0) __builtin_trap();
            orion__buf b = {0};
            for (int32_t i = 0; i < req.n; i++) {
                if (strlen(req.texts[i]) != req.lens[i] || req.lens[i] > size) __builtin_trap();
                orion__buf_json_str(&b, req.texts[i], req.lens[i]);
            }
            orion__buf_free(&b);
        }
        orion__embed_request_free(&req);
    }
    static const int GEN_EPS[4] = {ORION__EP_COMPLETIONS, ORION__EP_CHAT, ORION__EP_GENERATE, ORION__EP_OLLAMA_CHAT};
    for (int k = 0; k < 4; k++) {
        orion__gen_request g;
        orion__http_error gerr;
        memset(&gerr, 0, sizeof gerr);
        const orion__gen_limits lim = {3, 4096};
        if (orion__gen_request_parse((const char *)data, size, GEN_EPS[k], &lim, &g, &gerr) == ORION_OK) {
            if (!g.prompt && (g.n_msgs < 1 || !g.msgs)) __builtin_trap();
            size_t tags = g.prompt ? count_tags(g.prompt) : 0;
            for (int i = 0; i < g.n_msgs; i++) {
                if (!g.msgs[i].role || !g.msgs[i].content) __builtin_trap();
                tags += count_tags(g.msgs[i].content);
            }
            if (g.n_images < 0 || g.n_images > lim.max_images) __builtin_trap();
            if (g.n_images > 0 && tags != (size_t)g.n_images) __builtin_trap();
            for (int i = 0; i < g.n_images; i++) {
                const orion__gen_image *im = &g.images[i];
                if (!im->url == !im->data || im->len > lim.max_image_bytes) __builtin_trap();
                if (im->url && !orion__url_is_remote(im->url)) __builtin_trap();
            }
        } else if (gerr.code != 400 || !gerr.message[0]) {
            __builtin_trap();
        }
        orion__gen_request_free(&g);
    }
    /* the image helpers on the raw bytes: as a data URL and as base64 */
    {
        uint8_t *img = NULL;
        size_t n = 0;
        orion__http_error ierr;
        memset(&ierr, 0, sizeof ierr);
        if (orion__data_url_decode((const char *)data, size, 4096, 0, &img, &n, &ierr) == ORION_OK) {
            if (!img || n > 4096) __builtin_trap();
        } else if (img || (ierr.code != 400 && ierr.code != 500) || !ierr.message[0]) {
            __builtin_trap();
        }
        orion__free(img);
        img = NULL;
        if (orion__image_b64((const char *)data, size, 4096, 0, &img, &n, &ierr) == ORION_OK) {
            if (!img || n > 4096 || n > size) __builtin_trap();
        } else if (img || (ierr.code != 400 && ierr.code != 500)) {
            __builtin_trap();
        }
        orion__free(img);
    }
    char model[128];
    orion__http_error err;
    (void)orion__model_request_parse((const char *)data, size, model, sizeof model, &err);
    if (strlen(model) >= sizeof model) __builtin_trap();
    /* base64: decode what decodes, encode it back, and compare */
    if (size % 4 == 0 && size <= 4096) {
        uint8_t raw[3072 + 3];
        char back[4096 + 4];
        int64_t n = orion__b64_decode((const char *)data, size, raw);
        if (n >= 0) {
            size_t m = orion__b64_encode(raw, (size_t)n, back);
            if (m != size || memcmp(back, data, size) != 0) {
                /* only non-canonical padding bits may differ */
                if (m != size) __builtin_trap();
            }
        }
    }
    float v[16];
    memset(v, 0, sizeof v);
    memcpy(v, data, size < sizeof v ? size : sizeof v);
    orion__buf b = {0};
    orion__buf_json_floats(&b, v, 16);
    orion__buf_b64_floats(&b, v, 16);
    orion__buf_free(&b);
    return 0;
}
