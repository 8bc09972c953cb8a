/*
 * json.c — JSON parsing for the formats layer (config.json, safetensors
 * headers, tokenizer files) on top of cJSON.
 *
 * cJSON allocates through hooks installed once per process; ours send every
 * allocation through orion__malloc / orion__free, so the counting allocator
 * sees JSON trees too and out-of-memory tests can fail them. A hook that
 * fails sets a thread-local flag, which is how a NULL from cJSON is told
 * apart as "out of memory" rather than "malformed".
 *
 * The input is hostile: it is copied into a NUL-terminated buffer (cJSON
 * then never reads past a terminator, whatever the text), NUL bytes inside
 * it are rejected first (they would silently cut strings short), and after
 * the value only whitespace may follow.
 */
#include "formats/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Thread_local bool alloc_failed;

static void *json_malloc(size_t size) {
    void *p = orion__malloc(size);
    if (!p) alloc_failed = true;
    return p;
}

static void json_free(void *p) {
    orion__free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void) {
    cJSON_Hooks hooks = {json_malloc, json_free};
    cJSON_InitHooks(&hooks);
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

orion_status orion__json_parse(const char *label, const void *data, size_t size, cJSON **out) {
    *out = NULL;
    if (!data && size) return orion__fail(ORION_ERR_INVALID_ARG, "%s: no JSON data", label);
    pthread_once(&hooks_once, install_hooks);
    const char *nul = size ? memchr(data, '\0', size) : NULL;
    if (nul)
        return orion__fail(ORION_ERR_FORMAT, "%s: not valid JSON: NUL byte at byte %zu", label,
                           (size_t)(nul - (const char *)data));
    size_t alloc;
    if (!orion__add_ok(size, 1, &alloc)) return orion__fail(ORION_ERR_NOMEM, "%s: JSON too large", label);
    char *text = orion__malloc(alloc);
    if (!text) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate %zu bytes for JSON text", label, alloc);
    if (size) memcpy(text, data, size);
    text[size] = '\0';

    alloc_failed = false;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithOpts(text, &end, 0);
    orion_status st = ORION_OK;
    if (!json) {
        if (alloc_failed) st = orion__fail(ORION_ERR_NOMEM, "%s: out of memory while parsing JSON", label);
        else
            st = orion__fail(ORION_ERR_FORMAT, "%s: not valid JSON (error at byte %zu of %zu)", label,
                             end && end >= text && end <= text + size ? (size_t)(end - text) : size, size);
    } else {
        /* cJSON stops after the value; only whitespace may follow it */
        size_t at = end && end >= text && end <= text + size ? (size_t)(end - text) : size;
        while (at < size && is_space(text[at])) at++;
        if (at != size) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: not valid JSON: unexpected text after the value at byte %zu",
                             label, at);
            cJSON_Delete(json);
            json = NULL;
        }
    }
    orion__free(text);
    *out = json;
    return st;
}

void orion__json_free(cJSON *json) {
    if (json) cJSON_Delete(json);
}

bool orion__json_integer(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v) || fabs(v) > 9007199254740992.0) return false;
    *out = (int64_t)v;
    return true;
}

const char *orion__json_kind(const cJSON *item) {
    if (!item) return "missing";
    if (cJSON_IsString(item)) return "string";
    if (cJSON_IsNumber(item)) return "number";
    if (cJSON_IsObject(item)) return "object";
    if (cJSON_IsArray(item)) return "array";
    if (cJSON_IsTrue(item)) return "true";
    if (cJSON_IsFalse(item)) return "false";
    if (cJSON_IsNull(item)) return "null";
    return "invalid";
}

orion_status orion__read_small_file(const char *path, size_t max_size, char **out, size_t *size) {
    *out = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return orion__fail(errno == ENOENT ? ORION_ERR_NOT_FOUND : ORION_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return orion__fail(ORION_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_size) {
        close(fd);
        return orion__fail(ORION_ERR_LIMIT, "%s: %lld bytes is over the limit of %zu for this file", path,
                           (long long)sb.st_size, max_size);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = orion__malloc(n + 1);
    if (!buf) {
        close(fd);
        return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            orion__free(buf);
            return orion__fail(ORION_ERR_IO, "%s: read failed at byte %zu: %s", path, got,
                               r == 0 ? "unexpected end of file" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return ORION_OK;
}
