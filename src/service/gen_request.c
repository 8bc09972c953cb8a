/*
 * gen_request.c — parsing the bodies of the generation endpoints
 * (/v1/completions, /v1/chat/completions, /api/generate, /api/chat): pure
 * functions on bytes, so fuzz/fuzz_request.c drives what the server runs.
 *
 * Every field is type-checked (400 naming it). Strings are copied into one
 * block so the JSON tree can be freed at once. Images:
 *
 *   - OpenAI chat: a message's content may be an array of parts,
 *     {"type":"text","text":..} and {"type":"image_url","image_url":{"url":..}}
 *     (or "image_url": "..."); the parts are joined with "\n" and each image
 *     part becomes "<image>" where it stands. Data URLs are decoded here;
 *     http(s) URLs are recorded for generate.c to fetch (or refuse).
 *   - Ollama: "images": [base64, ...] on /api/generate and on each
 *     /api/chat message. As Ollama and LLaVA-1.5 do, the images go before
 *     the text: "<image>\n" per image is prepended, unless the text already
 *     holds exactly one "<image>" per image (then they stand there).
 *
 * With images, the texts together must hold exactly one "<image>" per image
 * (a text that writes "<image>" itself would otherwise move the images).
 */
#include "service/service.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#define DEFAULT_MAX_IMAGES 8
#define DEFAULT_MAX_IMAGE_BYTES ((size_t)20 << 20)

static orion_status gbad(orion__http_error *err, const char *msg) {
    err->code = 400;
    snprintf(err->type, sizeof err->type, "invalid_request_error");
    snprintf(err->message, sizeof err->message, "%s", msg);
    return ORION_ERR_FORMAT;
}

void orion__gen_request_free(orion__gen_request *req) {
    if (!req) return;
    for (int i = 0; i < req->n_images; i++) {
        orion__free(req->images[i].data);
        orion__free(req->images[i].url);
    }
    orion__free(req->images);
    req->images = NULL;
    req->n_images = 0;
    orion__free(req->block);
    req->block = NULL;
    req->prompt = NULL;
    req->msgs = NULL;
    req->n_msgs = 0;
}

static bool num_field(const cJSON *o, const char *key, double lo, double hi, double *out, orion__http_error *err,
                      orion_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return false;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        char msg[120];
        snprintf(msg, sizeof msg, "'%s' must be a number in [%g, %g]", key, lo, hi);
        *st = gbad(err, msg);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* ---- images -------------------------------------------------------------------- */

static size_t count_tags(const char *s, size_t n) {
    size_t k = 0, tl = strlen(ORION__IMAGE_TAG);
    for (size_t i = 0; i + tl <= n; i++) {
        if (memcmp(s + i, ORION__IMAGE_TAG, tl) == 0) {
            k++;
            i += tl - 1;
        }
    }
    return k;
}

/* Appends a slot for one more image (400 past the limit). */
static orion__gen_image *image_slot(orion__gen_request *out, const orion__gen_limits *lim, orion__http_error *err,
                                    orion_status *st) {
    if (out->n_images >= lim->max_images) {
        char msg[120];
        snprintf(msg, sizeof msg, "too many images: at most %d per request", lim->max_images);
        *st = gbad(err, msg);
        return NULL;
    }
    orion__gen_image *v = orion__realloc(out->images, (size_t)(out->n_images + 1) * sizeof *v);
    if (!v) {
        *st = gbad(err, "out of memory");
        return NULL;
    }
    out->images = v;
    orion__gen_image *im = &v[out->n_images++];
    memset(im, 0, sizeof *im);
    return im;
}

/* An image_url part: a data URL decoded now, an http(s) URL kept. */
static orion_status add_image_url(orion__gen_request *out, const orion__gen_limits *lim, const cJSON *part,
                                  orion__http_error *err) {
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
    const cJSON *url = cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
    if (!cJSON_IsString(url)) return gbad(err, "an image_url part needs 'image_url': {\"url\": \"...\"}");
    orion_status st = ORION_OK;
    int index = out->n_images;
    orion__gen_image *im = image_slot(out, lim, err, &st);
    if (!im) return st;
    const char *u = url->valuestring;
    if (orion__url_is_remote(u)) {
        if (!(im->url = orion__strdup(u))) return gbad(err, "out of memory");
        return ORION_OK;
    }
    return orion__data_url_decode(u, strlen(u), lim->max_image_bytes, index, &im->data, &im->len, err);
}

/* Ollama's "images": an array of base64 strings; *n gets their count. */
static orion_status add_b64_images(orion__gen_request *out, const orion__gen_limits *lim, const cJSON *arr, int *n,
                                   orion__http_error *err) {
    *n = 0;
    if (!arr || cJSON_IsNull(arr)) return ORION_OK;
    if (!cJSON_IsArray(arr)) return gbad(err, "'images' must be an array of base64 strings");
    for (const cJSON *it = arr->child; it; it = it->next) {
        if (!cJSON_IsString(it)) return gbad(err, "'images' must be an array of base64 strings");
        orion_status st = ORION_OK;
        int index = out->n_images;
        orion__gen_image *im = image_slot(out, lim, err, &st);
        if (!im) return st;
        st = orion__image_b64(it->valuestring, strlen(it->valuestring), lim->max_image_bytes, index, &im->data,
                              &im->len, err);
        if (st != ORION_OK) return st;
        (*n)++;
    }
    return ORION_OK;
}

/* Appends text with n_images Ollama images: "<image>\n" per image before
 * it, unless it holds exactly n_images tags itself. */
static orion_status put_ollama_text(orion__buf *b, const char *text, int n_images, orion__http_error *err) {
    size_t tags = count_tags(text, strlen(text));
    if (n_images > 0 && tags != 0 && tags != (size_t)n_images) {
        char msg[160];
        snprintf(msg, sizeof msg, "the text holds %zu \"%s\" for %d images: place one per image, or none", tags,
                 ORION__IMAGE_TAG, n_images);
        return gbad(err, msg);
    }
    for (int i = 0; n_images > 0 && tags == 0 && i < n_images; i++) orion__buf_puts(b, ORION__IMAGE_TAG "\n");
    orion__buf_puts(b, text);
    return ORION_OK;
}

/* OpenAI content: a string, or an array of text and image_url parts. */
static orion_status put_openai_content(orion__buf *b, orion__gen_request *out, const orion__gen_limits *lim,
                                       const cJSON *content, int i, orion__http_error *err) {
    char msg[128];
    if (cJSON_IsString(content)) {
        orion__buf_puts(b, content->valuestring);
        return ORION_OK;
    }
    if (!cJSON_IsArray(content)) {
        snprintf(msg, sizeof msg, "'messages[%d].content' must be a string or an array of parts", i);
        return gbad(err, msg);
    }
    int k = 0;
    for (const cJSON *part = content->child; part; part = part->next, k++) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsString(type)) {
            snprintf(msg, sizeof msg, "'messages[%d].content[%d]' needs a string 'type'", i, k);
            return gbad(err, msg);
        }
        if (k) orion__buf_puts(b, "\n");
        if (strcmp(type->valuestring, "text") == 0) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(text)) {
                snprintf(msg, sizeof msg, "'messages[%d].content[%d].text' must be a string", i, k);
                return gbad(err, msg);
            }
            orion__buf_puts(b, text->valuestring);
        } else if (strcmp(type->valuestring, "image_url") == 0) {
            orion_status st = add_image_url(out, lim, part, err);
            if (st != ORION_OK) return st;
            orion__buf_puts(b, ORION__IMAGE_TAG);
        } else {
            snprintf(msg, sizeof msg, "'messages[%d].content[%d].type' must be \"text\" or \"image_url\"", i, k);
            return gbad(err, msg);
        }
    }
    return ORION_OK;
}

/* ---- the request ------------------------------------------------------------------ */

/* The messages into out->block: roles and texts (with image tags) first
 * gathered NUL-separated in a buffer, then laid out after the array. */
static orion_status parse_messages(const cJSON *msgs, int n, bool ollama, const orion__gen_limits *lim,
                                   orion__gen_request *out, orion__http_error *err) {
    orion__buf b = {0};
    orion_status st = ORION_OK;
    size_t *offs = orion__malloc(2 * (size_t)n * sizeof *offs);
    if (!offs) return gbad(err, "out of memory");
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        char msg[96];
        if (!cJSON_IsString(role) || (ollama ? !cJSON_IsString(content) : !content)) {
            snprintf(msg, sizeof msg, "'messages[%d]' needs string 'role' and 'content'", i);
            st = gbad(err, msg);
            break;
        }
        if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
            strcmp(role->valuestring, "assistant")) {
            snprintf(msg, sizeof msg, "'messages[%d].role' must be system, user or assistant", i);
            st = gbad(err, msg);
            break;
        }
        offs[2 * i] = b.len;
        orion__buf_append(&b, role->valuestring, strlen(role->valuestring) + 1);
        offs[2 * i + 1] = b.len;
        if (ollama) {
            int k = 0;
            st = add_b64_images(out, lim, cJSON_GetObjectItemCaseSensitive(m, "images"), &k, err);
            if (st == ORION_OK) st = put_ollama_text(&b, content->valuestring, k, err);
        } else {
            st = put_openai_content(&b, out, lim, content, i, err);
        }
        if (st != ORION_OK) break;
        orion__buf_append(&b, "", 1);
    }
    if (st == ORION_OK && b.failed) st = gbad(err, "out of memory");
    if (st == ORION_OK) {
        size_t head = (size_t)n * sizeof(orion_chat_message);
        out->block = orion__malloc(head + b.len);
        if (!out->block) {
            st = gbad(err, "out of memory");
        } else {
            out->msgs = out->block;
            char *dst = (char *)out->block + head;
            memcpy(dst, b.p, b.len);
            for (int j = 0; j < n; j++) {
                out->msgs[j].role = dst + offs[2 * j];
                out->msgs[j].content = dst + offs[2 * j + 1];
            }
            out->n_msgs = n;
        }
    }
    orion__buf_free(&b);
    orion__free(offs);
    return st;
}

/* With images, the texts hold exactly one tag per image. */
static orion_status check_tags(const orion__gen_request *out, orion__http_error *err) {
    if (out->n_images == 0) return ORION_OK;
    size_t tags = out->prompt ? count_tags(out->prompt, strlen(out->prompt)) : 0;
    for (int i = 0; i < out->n_msgs; i++) tags += count_tags(out->msgs[i].content, strlen(out->msgs[i].content));
    if (tags == (size_t)out->n_images) return ORION_OK;
    char msg[200];
    snprintf(msg, sizeof msg,
             "%d images but %zu \"%s\" in the text: the text may not write \"%s\" itself when images are sent",
             out->n_images, tags, ORION__IMAGE_TAG, ORION__IMAGE_TAG);
    return gbad(err, msg);
}

orion_status orion__gen_request_parse(const char *body, size_t len, int ep, const orion__gen_limits *limits,
                                      orion__gen_request *out, orion__http_error *err) {
    memset(out, 0, sizeof *out);
    orion__gen_limits lim = {DEFAULT_MAX_IMAGES, DEFAULT_MAX_IMAGE_BYTES};
    if (limits && limits->max_images > 0) lim.max_images = limits->max_images;
    if (limits && limits->max_image_bytes > 0) lim.max_image_bytes = limits->max_image_bytes;
    out->keep_alive = ORION_KEEP_ALIVE_DEFAULT;
    bool ollama = ep == ORION__EP_GENERATE || ep == ORION__EP_OLLAMA_CHAT;
    bool chat = ep == ORION__EP_CHAT || ep == ORION__EP_OLLAMA_CHAT;
    out->max_tokens = ep == ORION__EP_COMPLETIONS ? 16 : 128;
    out->temperature = ollama ? 0.8f : 1.0f;
    out->top_p = 1.0f;
    out->stream = ollama; /* Ollama streams by default, OpenAI does not */
    out->seed = (uint64_t)time(NULL);
    if (!body || !len) return gbad(err, "the request body is empty");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return gbad(err, "malformed JSON body");
    orion_status st = ORION_OK;
    if (!cJSON_IsObject(root)) {
        st = gbad(err, "the body must be a JSON object");
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model) || strlen(model->valuestring) >= sizeof out->model) {
            st = gbad(err, "'model' must be a string (under 128 bytes)");
            goto done;
        }
        snprintf(out->model, sizeof out->model, "%s", model->valuestring);
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            st = gbad(err, "'stream' must be true or false");
            goto done;
        }
        out->stream = cJSON_IsTrue(stream);
    }
    const cJSON *opts = ollama ? cJSON_GetObjectItemCaseSensitive(root, "options") : root;
    if (ollama && opts && !cJSON_IsNull(opts) && !cJSON_IsObject(opts)) {
        st = gbad(err, "'options' must be an object");
        goto done;
    }
    if (opts && cJSON_IsObject(opts)) {
        double v;
        if (num_field(opts, "temperature", 0, 100, &v, err, &st)) out->temperature = (float)v;
        if (st) goto done;
        if (num_field(opts, "top_p", 0, 1, &v, err, &st)) out->top_p = (float)v;
        if (st) goto done;
        if (num_field(opts, "top_k", 0, 1e6, &v, err, &st)) out->top_k = (int)v;
        if (st) goto done;
        if (num_field(opts, "seed", -9e15, 9e15, &v, err, &st)) out->seed = (uint64_t)(int64_t)v;
        if (st) goto done;
        const char *mt = ollama ? "num_predict" : "max_tokens";
        if (num_field(opts, mt, -2, 1e6, &v, err, &st)) out->max_tokens = v < 0 ? 1 << 20 : (int)v;
        if (st) goto done;
        if (!ollama && num_field(opts, "max_completion_tokens", 0, 1e6, &v, err, &st)) out->max_tokens = (int)v;
        if (st) goto done;
    }
    /* the text: prompt, or messages; copied into one block */
    if (ollama && (st = orion__keep_alive_field(cJSON_GetObjectItemCaseSensitive(root, "keep_alive"), &out->keep_alive,
                                                err)) != ORION_OK)
        goto done;
    if (!chat) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (ollama && (!pr || cJSON_IsNull(pr) || (cJSON_IsString(pr) && !pr->valuestring[0]))) {
            out->no_input = true; /* Ollama: load (or with keep_alive 0 unload) the model */
            st = gbad(err, "missing 'prompt'");
            goto done;
        }
        if (cJSON_IsArray(pr) && cJSON_GetArraySize(pr) == 1) pr = pr->child;
        if (!cJSON_IsString(pr)) {
            st = gbad(err, "'prompt' must be a string");
            goto done;
        }
        int k = 0;
        orion__buf b = {0};
        if (ollama) st = add_b64_images(out, &lim, cJSON_GetObjectItemCaseSensitive(root, "images"), &k, err);
        if (st == ORION_OK) st = put_ollama_text(&b, pr->valuestring, k, err);
        if (st == ORION_OK) orion__buf_append(&b, "", 0); /* allocated and NUL-terminated even for "" */
        if (st == ORION_OK && b.failed) st = gbad(err, "out of memory");
        if (st != ORION_OK) {
            orion__buf_free(&b);
            goto done;
        }
        out->block = b.p; /* the buffer's bytes, NUL-terminated */
        out->prompt = out->block;
    } else {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
        int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : 0;
        if (ollama && (!msgs || cJSON_IsNull(msgs) || (cJSON_IsArray(msgs) && n == 0))) {
            out->no_input = true;
            st = gbad(err, "missing 'messages'");
            goto done;
        }
        if (n < 1 || n > 1024) {
            st = gbad(err, "'messages' must be an array of 1 to 1024 messages");
            goto done;
        }
        if ((st = parse_messages(msgs, n, ollama, &lim, out, err)) != ORION_OK) goto done;
    }
    st = check_tags(out, err);
done:
    cJSON_Delete(root);
    if (st != ORION_OK) orion__gen_request_free(out);
    return st;
}
