/*
 * request.c — the service's request parser and reply writers: pure
 * functions on bytes, so fuzz/fuzz_request.c drives exactly what the server
 * runs.
 *
 * Bodies are parsed with cJSON (cJSON_ParseWithLength: never reads past
 * len; its nesting limit bounds recursion). Every field is type-checked and
 * a wrong one gives a 400 naming it. Texts are copied into one block so the
 * JSON tree can be freed at once. Replies are written by hand into a
 * growing buffer: floats with %.9g, which round-trips every f32 exactly.
 */
#include "service/service.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- errors ------------------------------------------------------------------ */

static orion_status bad(orion__http_error *err, orion_status st, int code, const char *type, const char *fmt, ...)
    ORION_PRINTF(5, 6);

static orion_status bad(orion__http_error *err, orion_status st, int code, const char *type, const char *fmt, ...) {
    if (err) {
        err->code = code;
        snprintf(err->type, sizeof err->type, "%s", type);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- parsing ------------------------------------------------------------------ */

void orion__embed_request_free(orion__embed_request *req) {
    if (!req) return;
    orion__free(req->block);
    req->block = NULL;
    req->texts = NULL;
    req->lens = NULL;
    req->n = 0;
}

orion_status orion__embed_request_parse(const char *body, size_t len, int api, int max_inputs,
                                        orion__embed_request *out, orion__http_error *err) {
    memset(out, 0, sizeof *out);
    out->truncate = -1;
    out->keep_alive = ORION_KEEP_ALIVE_DEFAULT;
    if (!body || len == 0)
        return bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "the request body is empty");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        /* cJSON's error pointer tells how far it got */
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= body && at <= body + len) ? (long)(at - body) : -1;
        return bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "malformed JSON body (near byte %ld)", off);
    }
    orion_status st = ORION_OK;
    if (!cJSON_IsObject(root)) {
        st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "the body must be a JSON object");
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'model' must be a string");
            goto done;
        }
        if (strlen(model->valuestring) >= sizeof out->model) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'model' is too long");
            goto done;
        }
        snprintf(out->model, sizeof out->model, "%s", model->valuestring);
    }
    if ((st = orion__keep_alive_field(cJSON_GetObjectItemCaseSensitive(root, "keep_alive"), &out->keep_alive, err)) !=
        ORION_OK)
        goto done;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!input && api == ORION__API_OLLAMA) input = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!input) {
        out->no_input = true;
        st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "missing 'input'");
        goto done;
    }
    int n = 0;
    if (cJSON_IsString(input)) {
        n = 1;
        out->single = true;
    } else if (cJSON_IsArray(input)) {
        n = cJSON_GetArraySize(input);
        if (n == 0) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'input' is an empty array");
            goto done;
        }
        if (n > max_inputs) {
            st = bad(err, ORION_ERR_LIMIT, 400, "invalid_request_error",
                     "'input' has %d items; at most %d per request", n, max_inputs);
            goto done;
        }
        int i = 0;
        for (const cJSON *it = input->child; it; it = it->next, i++) {
            if (!cJSON_IsString(it)) {
                st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error",
                         "'input[%d]' must be a string (token arrays are not supported)", i);
                goto done;
            }
        }
    } else {
        st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'input' must be a string or an array of strings");
        goto done;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt)) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'encoding_format' must be a string");
            goto done;
        }
        if (strcmp(fmt->valuestring, "base64") == 0) out->base64 = true;
        else if (strcmp(fmt->valuestring, "float") != 0) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error",
                     "'encoding_format' must be \"float\" or \"base64\"");
            goto done;
        }
    }
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    if (dims && !cJSON_IsNull(dims)) {
        if (!cJSON_IsNumber(dims) || dims->valuedouble != floor(dims->valuedouble) || dims->valuedouble < 1 ||
            dims->valuedouble > 1e6) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'dimensions' must be a positive integer");
            goto done;
        }
        out->dimensions = (int)dims->valuedouble;
    }
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(root, "truncate");
    if (trunc && !cJSON_IsNull(trunc)) {
        if (!cJSON_IsBool(trunc)) {
            st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'truncate' must be true or false");
            goto done;
        }
        out->truncate = cJSON_IsTrue(trunc) ? 1 : 0;
    }
    /* copy the texts into one block: n pointers, n lengths, the bytes */
    size_t bytes = 0;
    const cJSON *first = out->single ? input : input->child;
    int i = 0;
    for (const cJSON *it = first; it && i < n; it = it->next, i++) bytes += strlen(it->valuestring) + 1;
    size_t head = (size_t)n * (sizeof(char *) + sizeof(size_t));
    out->block = orion__malloc(head + bytes);
    if (!out->block) {
        st = bad(err, ORION_ERR_NOMEM, 500, "server_error", "out of memory for %d inputs", n);
        goto done;
    }
    out->texts = (char **)out->block;
    out->lens = (size_t *)((char *)out->block + (size_t)n * sizeof(char *));
    char *dst = (char *)out->block + head;
    i = 0;
    for (const cJSON *it = first; it && i < n; it = it->next, i++) {
        size_t l = strlen(it->valuestring);
        memcpy(dst, it->valuestring, l + 1);
        out->texts[i] = dst;
        out->lens[i] = l;
        dst += l + 1;
    }
    out->n = n;
done:
    cJSON_Delete(root);
    return st;
}

orion_status orion__keep_alive_field(const struct cJSON *v, double *out, orion__http_error *err) {
    *out = ORION_KEEP_ALIVE_DEFAULT;
    if (!v || cJSON_IsNull(v)) return ORION_OK;
    double s = 0;
    bool ok = false;
    if (cJSON_IsNumber(v)) {
        s = v->valuedouble;
        ok = true;
    } else if (cJSON_IsString(v)) {
        ok = orion_keep_alive_parse(v->valuestring, &s) == ORION_OK;
    }
    if (!ok || !isfinite(s))
        return bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error",
                   "'keep_alive' must be a number of seconds or a duration such as \"5m\" or \"1h30m\"");
    *out = s < 0 ? -1.0 : s; /* any negative value: keep the model loaded */
    return ORION_OK;
}

orion_status orion__model_request_parse(const char *body, size_t len, char *model, size_t model_size,
                                        orion__http_error *err) {
    model[0] = 0;
    if (!body || len == 0) return ORION_OK;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "malformed JSON body");
    orion_status st = ORION_OK;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(root)) st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "the body must be a JSON object");
    else if (m && !cJSON_IsString(m)) st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'model' must be a string");
    else if (m && strlen(m->valuestring) >= model_size)
        st = bad(err, ORION_ERR_FORMAT, 400, "invalid_request_error", "'model' is too long");
    else if (m) snprintf(model, model_size, "%s", m->valuestring);
    cJSON_Delete(root);
    return st;
}

/* ---- buffers ------------------------------------------------------------------ */

static bool buf_reserve(orion__buf *b, size_t extra) {
    if (b->failed) return false;
    size_t need;
    if (!orion__add_ok(b->len, extra + 1, &need)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = orion__realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void orion__buf_append(orion__buf *b, const void *data, size_t n) {
    if (!buf_reserve(b, n)) return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void orion__buf_puts(orion__buf *b, const char *s) { orion__buf_append(b, s, strlen(s)); }

void orion__buf_printf(orion__buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        orion__buf_append(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void orion__buf_json_str(orion__buf *b, const char *s, size_t n) {
    orion__buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            orion__buf_append(b, e, 2);
        } else if (ch < 0x20) {
            orion__buf_printf(b, "\\u%04x", ch);
        } else {
            orion__buf_append(b, &s[i], 1);
        }
    }
    orion__buf_append(b, "\"", 1);
}

void orion__buf_json_floats(orion__buf *b, const float *v, int32_t n) {
    if (!buf_reserve(b, (size_t)n * 17 + 2)) return;
    char *p = b->p + b->len;
    *p++ = '[';
    for (int32_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        float x = isfinite(v[i]) ? v[i] : 0.0f;
        p += snprintf(p, 17, "%.9g", (double)x);
    }
    *p++ = ']';
    *p = 0;
    b->len = (size_t)(p - b->p);
}

void orion__buf_b64_floats(orion__buf *b, const float *v, int32_t n) {
    size_t bytes = (size_t)n * 4;
    if (!buf_reserve(b, (bytes + 2) / 3 * 4 + 2)) return;
    uint8_t le[4 * 64];
    b->p[b->len++] = '"';
    /* chunks of 48 floats (192 bytes, a multiple of 3) */
    for (int32_t i = 0; i < n; i += 48) {
        int32_t k = ORION_MIN(48, n - i);
        for (int32_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, &v[i + j], 4);
            le[4 * j] = (uint8_t)u;
            le[4 * j + 1] = (uint8_t)(u >> 8);
            le[4 * j + 2] = (uint8_t)(u >> 16);
            le[4 * j + 3] = (uint8_t)(u >> 24);
        }
        b->len += orion__b64_encode(le, (size_t)k * 4, b->p + b->len);
    }
    b->p[b->len++] = '"';
    b->p[b->len] = 0;
}

void orion__buf_free(orion__buf *b) {
    orion__free(b->p);
    memset(b, 0, sizeof *b);
}

void orion__error_body(orion__buf *b, const orion__http_error *err) {
    orion__buf_puts(b, "{\"error\":{\"message\":");
    orion__buf_json_str(b, err->message, strlen(err->message));
    orion__buf_puts(b, ",\"type\":");
    orion__buf_json_str(b, err->type, strlen(err->type));
    orion__buf_printf(b, ",\"code\":%d}}", err->code);
}

/* ---- base64 ------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t orion__b64_encode(const uint8_t *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

static int b64_val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int64_t orion__b64_decode(const char *in, size_t n, uint8_t *out) {
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad) return -1;
                v[k] = b64_val(in[i + k]);
                if (v[k] < 0) return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2) out[o++] = (uint8_t)(x >> 8);
        if (pad < 1) out[o++] = (uint8_t)x;
    }
    return (int64_t)o;
}
