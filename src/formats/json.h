/*
 * json.h — JSON for the formats layer: cJSON (Debian's libcjson) with its
 * allocations routed through orion's counting allocator, a parse call that
 * reports where and why a document is bad, and a helper that reads a small
 * text file whole. Internal to the formats layer.
 */
#ifndef ORION_JSON_H
#define ORION_JSON_H

#include "core/core.h"

#include <cjson/cJSON.h>

/* Parses `size` bytes of JSON (need not be NUL-terminated; the bytes are
 * copied, so `data` may go away afterwards). The document must be one JSON
 * value followed only by whitespace and must not contain NUL bytes; nesting
 * deeper than cJSON's limit (1000) is rejected. `label` names the source in
 * messages. On success *out is a tree to release with orion__json_free().
 * Errors: ORION_ERR_FORMAT (with the byte offset), ORION_ERR_NOMEM.
 * Thread-safe (cJSON's allocator hooks are installed once, process-wide:
 * orion owns cJSON's hooks, so an application that uses cJSON itself must not
 * install its own). */
orion_status orion__json_parse(const char *label, const void *data, size_t size, cJSON **out);
void         orion__json_free(cJSON *json);

/* True when `item` is a JSON number with an integral value that a double
 * holds exactly (|v| <= 2^53); the value goes to *out. */
bool orion__json_integer(const cJSON *item, int64_t *out);

/* Name of a JSON item's kind for messages: "string", "number", "object",
 * "array", "true", "false", "null", or "missing" for NULL. */
const char *orion__json_kind(const cJSON *item);

/* Reads the regular file `path` whole into a NUL-terminated buffer (free it
 * with orion__free). Files larger than `max_size` fail with ORION_ERR_LIMIT;
 * a missing file with ORION_ERR_NOT_FOUND. */
orion_status orion__read_small_file(const char *path, size_t max_size, char **out, size_t *size);

#endif
