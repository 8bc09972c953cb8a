/*
 * safetensors.c — reads safetensors files, Hugging Face's tensor format.
 *
 * Layout:
 *   u64 N (little-endian) | N bytes of JSON (the header) | the data buffer
 * The header is one JSON object. Each member except "__metadata__" (an
 * object of strings) describes a tensor:
 *   "name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}
 * where begin and end are byte offsets into the data buffer, shape is in
 * PyTorch order (the last dimension varies fastest) and the bytes are
 * little-endian and row-major.
 *
 * The file is mapped read-only and never copied: each tensor's data points
 * into the mapping (only the header text is copied, to parse it). Everything
 * is treated as hostile: N is checked against the file size and capped at
 * ORION_ST_MAX_HEADER before anything is read; the header must be valid JSON
 * and an object; each entry must have a known dtype, a shape of at most 8
 * non-negative integer dimensions whose element count does not overflow, and
 * data_offsets [begin, end] with begin <= end <= data size and end - begin
 * exactly the tensor's byte size; names must be unique and tensors must not
 * overlap. Every error names the file, the tensor and the field.
 */
#include "formats/safetensors.h"
#include "formats/json.h"

#include <stdlib.h>
#include <string.h>

#define ST_MAX_NAME 4096 /* bytes of a tensor name */

struct orion_safetensors {
    const uint8_t          *file;       /* the whole file */
    size_t                  size;
    const uint8_t          *map;        /* the mapping when we mapped the file, else NULL */
    char                   *label;      /* path (or "<memory>") for messages */
    size_t                  data_start; /* 8 + N */
    size_t                  data_size;
    int64_t                 n;
    orion_st_tensor        *tensors;    /* n, in header order */
    char                   *names;      /* every name, NUL-separated */
    const orion_st_tensor **by_name;    /* n, sorted by name */
};

static const struct {
    const char *name;
    size_t      size;
} dtypes[ORION_ST_DTYPE_COUNT] = {
    [ORION_ST_F64] = {"F64", 8}, [ORION_ST_F32] = {"F32", 4}, [ORION_ST_F16] = {"F16", 2},
    [ORION_ST_BF16] = {"BF16", 2}, [ORION_ST_I64] = {"I64", 8}, [ORION_ST_I32] = {"I32", 4},
    [ORION_ST_I16] = {"I16", 2}, [ORION_ST_I8] = {"I8", 1},   [ORION_ST_U8] = {"U8", 1},
    [ORION_ST_BOOL] = {"BOOL", 1},
};

const char *orion__st_dtype_name(orion_st_dtype d) {
    return (unsigned)d < ORION_ST_DTYPE_COUNT ? dtypes[d].name : "?";
}

size_t orion__st_dtype_size(orion_st_dtype d) {
    return (unsigned)d < ORION_ST_DTYPE_COUNT ? dtypes[d].size : 0;
}

/* ---- one header entry ---------------------------------------------------------- */

static orion_status parse_dtype(const orion_safetensors *st, const char *name, const cJSON *entry,
                                orion_st_dtype *out) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(d) || !d->valuestring)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': field 'dtype' is %s, expected a string", st->label,
                           name, orion__json_kind(d));
    for (int i = 0; i < ORION_ST_DTYPE_COUNT; i++) {
        if (strcmp(d->valuestring, dtypes[i].name) == 0) {
            *out = (orion_st_dtype)i;
            return ORION_OK;
        }
    }
    return orion__fail(ORION_ERR_UNSUPPORTED,
                       "%s: tensor '%s': field 'dtype' is '%.40s', which orion does not support "
                       "(F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)",
                       st->label, name, d->valuestring);
}

static orion_status parse_shape(const orion_safetensors *st, const char *name, const cJSON *entry,
                                orion_st_tensor *t) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(s))
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': field 'shape' is %s, expected an array", st->label,
                           name, orion__json_kind(s));
    int n_dims = 0;
    int64_t n_elems = 1;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, s) {
        if (n_dims == ORION_ST_MAX_DIMS)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': field 'shape' has more than %d dimensions",
                               st->label, name, ORION_ST_MAX_DIMS);
        int64_t v;
        if (!orion__json_integer(dim, &v) || v < 0)
            return orion__fail(ORION_ERR_FORMAT,
                               "%s: tensor '%s': field 'shape': dimension %d is not a non-negative integer",
                               st->label, name, n_dims);
        if (v != 0 && n_elems > INT64_MAX / v)
            return orion__fail(ORION_ERR_FORMAT,
                               "%s: tensor '%s': field 'shape': dimension %d = %lld makes the element count overflow",
                               st->label, name, n_dims, (long long)v);
        t->shape[n_dims++] = v;
        n_elems *= v;
    }
    t->n_dims = n_dims;
    t->n_elems = n_elems;
    return ORION_OK;
}

static orion_status parse_offsets(const orion_safetensors *st, const char *name, const cJSON *entry,
                                  orion_st_tensor *t) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) != 2)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: tensor '%s': field 'data_offsets' is %s, expected an array [begin, end]", st->label,
                           name, cJSON_IsArray(o) ? "an array of the wrong length" : orion__json_kind(o));
    int64_t begin, end;
    if (!orion__json_integer(o->child, &begin) || begin < 0 || !orion__json_integer(o->child->next, &end) ||
        end < 0)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: tensor '%s': field 'data_offsets' must hold two non-negative integers", st->label,
                           name);
    if (begin > end)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': begin %lld is after end %lld",
                           st->label, name, (long long)begin, (long long)end);
    if ((uint64_t)end > st->data_size)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: tensor '%s': field 'data_offsets': end %lld is past the end of the data buffer "
                           "(%zu bytes)",
                           st->label, name, (long long)end, st->data_size);
    size_t need;
    size_t have = (size_t)(end - begin);
    if (!orion__mul_ok((size_t)t->n_elems, orion__st_dtype_size(t->dtype), &need) || need != have)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: tensor '%s': field 'data_offsets' spans %zu bytes but %lld elements of %s need %llu",
                           st->label, name, have, (long long)t->n_elems, orion__st_dtype_name(t->dtype),
                           (unsigned long long)((uint64_t)t->n_elems * orion__st_dtype_size(t->dtype)));
    t->offset = (uint64_t)begin;
    t->n_bytes = have;
    t->data = st->file + st->data_start + (size_t)begin;
    return ORION_OK;
}

static orion_status check_metadata(const orion_safetensors *st, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return orion__fail(ORION_ERR_FORMAT, "%s: field '__metadata__' is %s, expected an object of strings",
                           st->label, orion__json_kind(meta));
    const cJSON *v;
    cJSON_ArrayForEach(v, meta) {
        if (!cJSON_IsString(v))
            return orion__fail(ORION_ERR_FORMAT, "%s: field '__metadata__': value of '%.64s' is %s, expected a string",
                               st->label, v->string ? v->string : "", orion__json_kind(v));
    }
    return ORION_OK;
}

/* ---- the whole header ------------------------------------------------------------ */

static int cmp_by_name(const void *a, const void *b) {
    const orion_st_tensor *x = *(const orion_st_tensor *const *)a, *y = *(const orion_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const orion_st_tensor *x = *(const orion_st_tensor *const *)a, *y = *(const orion_st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Names unique (sorts by_name for find), tensors not overlapping. */
static orion_status check_unique(orion_safetensors *st) {
    if (st->n == 0) return ORION_OK;
    for (int64_t i = 0; i < st->n; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_by_name);
    for (int64_t i = 1; i < st->n; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", st->label,
                               st->by_name[i]->name);
    const orion_st_tensor **sorted = orion__malloc((size_t)st->n * sizeof *sorted);
    if (!sorted) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a sort buffer", st->label);
    for (int64_t i = 0; i < st->n; i++) sorted[i] = &st->tensors[i];
    qsort(sorted, (size_t)st->n, sizeof *sorted, cmp_by_offset);
    orion_status s = ORION_OK;
    const orion_st_tensor *prev = NULL; /* the non-empty tensor that ends last so far */
    for (int64_t i = 0; i < st->n && s == ORION_OK; i++) {
        const orion_st_tensor *t = sorted[i];
        if (t->n_bytes == 0) continue;
        if (prev && prev->offset + prev->n_bytes > t->offset)
            s = orion__fail(ORION_ERR_FORMAT,
                            "%s: tensors '%s' and '%s' overlap: field 'data_offsets' [%llu, %llu) and [%llu, %llu)",
                            st->label, prev->name, t->name, (unsigned long long)prev->offset,
                            (unsigned long long)(prev->offset + prev->n_bytes), (unsigned long long)t->offset,
                            (unsigned long long)(t->offset + t->n_bytes));
        if (!prev || t->offset + t->n_bytes > prev->offset + prev->n_bytes) prev = t;
    }
    orion__free(sorted);
    return s;
}

static orion_status parse_header(orion_safetensors *st) {
    if (st->size < 8)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: truncated: %zu bytes is too small for a safetensors file (the header length "
                           "takes 8)",
                           st->label, st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | st->file[i];
    if (n > ORION_ST_MAX_HEADER)
        return orion__fail(ORION_ERR_FORMAT, "%s: header length %llu is over the limit of %llu bytes", st->label,
                           (unsigned long long)n, (unsigned long long)ORION_ST_MAX_HEADER);
    if (n > st->size - 8)
        return orion__fail(ORION_ERR_FORMAT, "%s: truncated: header length %llu but only %zu bytes follow it",
                           st->label, (unsigned long long)n, st->size - 8);
    st->data_start = 8 + (size_t)n;
    st->data_size = st->size - st->data_start;

    cJSON *root = NULL;
    orion_status s = orion__json_parse(st->label, st->file + 8, (size_t)n, &root);
    if (s != ORION_OK) return s;
    if (!cJSON_IsObject(root)) {
        s = orion__fail(ORION_ERR_FORMAT, "%s: the header is a JSON %s, not an object", st->label,
                        orion__json_kind(root));
        goto done;
    }
    /* count the tensors and their names' bytes, then fill one block of each */
    size_t n_tensors = 0, name_bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if ((s = check_metadata(st, e)) != ORION_OK) goto done;
            continue;
        }
        size_t len = strlen(name);
        if (len == 0 || len > ST_MAX_NAME) {
            s = orion__fail(ORION_ERR_FORMAT, "%s: tensor '%.64s': its name has %zu bytes (1 to %d allowed)",
                            st->label, name, len, ST_MAX_NAME);
            goto done;
        }
        n_tensors++;
        name_bytes += len + 1;
    }
    st->tensors = orion__calloc(n_tensors ? n_tensors : 1, sizeof *st->tensors);
    st->by_name = orion__calloc(n_tensors ? n_tensors : 1, sizeof *st->by_name);
    st->names = orion__malloc(name_bytes ? name_bytes : 1);
    if (!st->tensors || !st->by_name || !st->names) {
        s = orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate the index of %zu tensors", st->label, n_tensors);
        goto done;
    }
    char *np = st->names;
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) continue;
        orion_st_tensor *t = &st->tensors[st->n];
        size_t len = strlen(name);
        memcpy(np, name, len + 1);
        t->name = np;
        np += len + 1;
        if (!cJSON_IsObject(e)) {
            s = orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': entry is %s, expected an object", st->label, name,
                            orion__json_kind(e));
            goto done;
        }
        if ((s = parse_dtype(st, name, e, &t->dtype)) != ORION_OK) goto done;
        if ((s = parse_shape(st, name, e, t)) != ORION_OK) goto done;
        if ((s = parse_offsets(st, name, e, t)) != ORION_OK) goto done;
        st->n++;
    }
    s = check_unique(st);
done:
    orion__json_free(root);
    return s;
}

/* ---- handles ----------------------------------------------------------------------- */

static orion_status new_handle(const char *label, orion_safetensors **out) {
    orion_safetensors *st = orion__calloc(1, sizeof *st);
    if (!st) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a safetensors handle", label);
    st->label = orion__strdup(label);
    if (!st->label) {
        orion__free(st);
        return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a safetensors handle", label);
    }
    *out = st;
    return ORION_OK;
}

orion_status orion__safetensors_open_memory(const void *data, size_t size, const char *label,
                                            orion_safetensors **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion__safetensors_open_memory: out is NULL");
    *out = NULL;
    if (!data && size) return orion__fail(ORION_ERR_INVALID_ARG, "orion__safetensors_open_memory: data is NULL");
    orion_safetensors *st = NULL;
    orion_status s = new_handle(label ? label : "<memory>", &st);
    if (s != ORION_OK) return s;
    st->file = data;
    st->size = size;
    if ((s = parse_header(st)) != ORION_OK) {
        orion__safetensors_free(st);
        return s;
    }
    *out = st;
    return ORION_OK;
}

orion_status orion__safetensors_open(const char *path, orion_safetensors **out) {
    if (!out || !path) return orion__fail(ORION_ERR_INVALID_ARG, "orion__safetensors_open: NULL argument");
    *out = NULL;
    const uint8_t *map;
    size_t size;
    orion_status s = orion__file_map(path, &map, &size);
    if (s != ORION_OK) return s;
    orion_safetensors *st = NULL;
    if ((s = new_handle(path, &st)) != ORION_OK) {
        orion__file_unmap(map, size);
        return s;
    }
    st->map = map;
    st->file = map;
    st->size = size;
    if ((s = parse_header(st)) != ORION_OK) {
        orion__safetensors_free(st);
        return s;
    }
    *out = st;
    return ORION_OK;
}

void orion__safetensors_free(orion_safetensors *st) {
    if (!st) return;
    if (st->map) orion__file_unmap(st->map, st->size);
    orion__free(st->tensors);
    orion__free(st->by_name);
    orion__free(st->names);
    orion__free(st->label);
    orion__free(st);
}

const char *orion__safetensors_label(const orion_safetensors *st) {
    return st->label;
}

int64_t orion__safetensors_n_tensors(const orion_safetensors *st) {
    return st->n;
}

const orion_st_tensor *orion__safetensors_tensor_at(const orion_safetensors *st, int64_t i) {
    return (i >= 0 && i < st->n) ? &st->tensors[i] : NULL;
}

const orion_st_tensor *orion__safetensors_find(const orion_safetensors *st, const char *name) {
    int64_t lo = 0, hi = st->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
