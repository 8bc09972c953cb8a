/*
 * images.c — the bytes of the images a generation request carries:
 *
 *   - base64 (Ollama's "images": [...], the payload of a data URL), decoded
 *     with the size checked before anything is allocated;
 *   - data URLs ("data:image/png;base64,...", OpenAI's image_url parts):
 *     an image media type and ";base64" are required;
 *   - remote http(s) URLs, fetched with libcurl only when the server allows
 *     them (--allow-remote-images): http and https only (redirects too, at
 *     most 3), a byte cap enforced while receiving (a body without a length
 *     is cut off at the cap), a total timeout, HTTP errors refused.
 *
 * The parsing functions are pure (fuzz/fuzz_request.c drives them through
 * the request parser); every failure is a 400 with a message that names
 * the image.
 */
#include "service/service.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* ---- base64 ------------------------------------------------------------------ */

orion_status orion__image_b64(const char *s, size_t n, size_t max_bytes, int index, uint8_t **out, size_t *len,
                              orion__http_error *err) {
    *out = NULL;
    *len = 0;
    if (n == 0) {
        orion__http_set(err, 400, "invalid_request_error", "image %d is empty", index);
        return ORION_ERR_FORMAT;
    }
    if (n % 4 != 0) {
        orion__http_set(err, 400, "invalid_request_error",
                        "image %d: bad base64 (%zu characters: not a multiple of 4)", index, n);
        return ORION_ERR_FORMAT;
    }
    size_t pad = (s[n - 1] == '=') + (n >= 2 && s[n - 2] == '=');
    size_t bytes = n / 4 * 3 - pad;
    if (bytes > max_bytes) {
        orion__http_set(err, 400, "invalid_request_error", "image %d is %zu bytes; the limit is %zu", index, bytes,
                        max_bytes);
        return ORION_ERR_LIMIT;
    }
    uint8_t *buf = orion__malloc(n / 4 * 3);
    if (!buf) {
        orion__http_set(err, 500, "server_error", "out of memory for image %d (%zu bytes)", index, bytes);
        return ORION_ERR_NOMEM;
    }
    int64_t k = orion__b64_decode(s, n, buf);
    if (k < 0) {
        orion__free(buf);
        orion__http_set(err, 400, "invalid_request_error", "image %d: bad base64", index);
        return ORION_ERR_FORMAT;
    }
    *out = buf;
    *len = (size_t)k;
    return ORION_OK;
}

/* ---- data URLs ---------------------------------------------------------------- */

bool orion__url_is_remote(const char *url) {
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

orion_status orion__data_url_decode(const char *url, size_t n, size_t max_bytes, int index, uint8_t **out,
                                    size_t *len, orion__http_error *err) {
    *out = NULL;
    *len = 0;
    if (n < 5 || strncasecmp(url, "data:", 5) != 0) {
        orion__http_set(err, 400, "invalid_request_error",
                        "image %d: expected a data URL (data:image/png;base64,...) or an http(s) URL", index);
        return ORION_ERR_FORMAT;
    }
    const char *comma = memchr(url, ',', n);
    if (!comma) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: the data URL has no ','", index);
        return ORION_ERR_FORMAT;
    }
    const char *meta = url + 5;
    size_t mlen = (size_t)(comma - meta);
    if (mlen < 6 || strncasecmp(meta, "image/", 6) != 0) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: the data URL's media type is not image/*",
                        index);
        return ORION_ERR_FORMAT;
    }
    if (mlen < 7 || strncasecmp(comma - 7, ";base64", 7) != 0) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: only base64 data URLs are supported", index);
        return ORION_ERR_FORMAT;
    }
    return orion__image_b64(comma + 1, n - (size_t)(comma + 1 - url), max_bytes, index, out, len, err);
}

/* ---- remote URLs ------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode       curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

orion_status orion__image_fetch_init(void) {
    pthread_once(&curl_once, curl_init);
    return curl_init_rc == CURLE_OK ? ORION_OK : orion__fail(ORION_ERR_IO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
}

typedef struct sink {
    orion__buf buf;
    size_t     cap;
    bool       too_large;
} sink;

static size_t on_data(char *p, size_t size, size_t nmemb, void *user) {
    sink *s = user;
    size_t n = size * nmemb;
    if (s->buf.len + n > s->cap) {
        s->too_large = true;
        return 0; /* aborts the transfer */
    }
    orion__buf_append(&s->buf, p, n);
    return s->buf.failed ? 0 : n;
}

orion_status orion__image_fetch(const char *url, size_t max_bytes, int timeout_ms, int index, uint8_t **out,
                                size_t *len, orion__http_error *err) {
    *out = NULL;
    *len = 0;
    if (!orion__url_is_remote(url)) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: only http and https URLs can be fetched", index);
        return ORION_ERR_FORMAT;
    }
    if (orion__image_fetch_init() != ORION_OK) {
        orion__http_set(err, 500, "server_error", "image %d: %.200s", index, orion_last_error());
        return ORION_ERR_IO;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        orion__http_set(err, 500, "server_error", "image %d: libcurl could not start", index);
        return ORION_ERR_NOMEM;
    }
    sink s = {.cap = max_bytes};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "orion");
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    orion_status st = ORION_OK;
    if (s.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: the URL's body is larger than %zu bytes", index,
                        max_bytes);
        st = ORION_ERR_LIMIT;
    } else if (s.buf.failed) {
        orion__http_set(err, 500, "server_error", "image %d: out of memory", index);
        st = ORION_ERR_NOMEM;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: fetching the URL took longer than %d ms", index,
                        timeout_ms);
        st = ORION_ERR_IO;
    } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: the URL answered HTTP %ld", index, code);
        st = ORION_ERR_IO;
    } else if (rc != CURLE_OK) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: cannot fetch the URL: %.180s", index,
                        cerr[0] ? cerr : curl_easy_strerror(rc));
        st = ORION_ERR_IO;
    } else if (s.buf.len == 0) {
        orion__http_set(err, 400, "invalid_request_error", "image %d: the URL's body is empty", index);
        st = ORION_ERR_FORMAT;
    }
    if (st != ORION_OK) {
        orion__buf_free(&s.buf);
        return st;
    }
    *out = (uint8_t *)s.buf.p;
    *len = s.buf.len;
    return ORION_OK;
}

/* ---- decoding ------------------------------------------------------------------ */

orion_status orion__image_decode(const uint8_t *data, size_t len, size_t max_bytes, int index, orion_image **out,
                                 orion__http_error *err) {
    orion_image_limits lim = orion_image_default_limits();
    lim.max_bytes = max_bytes;
    orion_status st = orion_image_load_memory(data, len, &lim, out);
    if (st == ORION_OK) return ORION_OK;
    if (st == ORION_ERR_NOMEM) orion__http_set(err, 500, "server_error", "image %d: out of memory", index);
    else orion__http_set(err, 400, "invalid_request_error", "image %d: %.200s", index, orion_last_error());
    return st;
}
