/*
 * gguf_read.c — reads GGUF v2/v3 files (the format of llama.cpp and Ollama).
 *
 * Layout (little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x   { string key | u32 type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data
 * where string = u64 length + bytes, and an array value = u32 element type +
 * u64 count + elements (arrays may nest).
 *
 * The file is mapped read-only and never copied: string values and tensor
 * data point into the mapping. Everything read is treated as hostile. A
 * cursor reads each field through one bounds check, so no read passes the
 * end; each count is checked against the bytes left (every element needs at
 * least a known number of bytes, so a count larger than the file is caught
 * before anything is allocated); sizes are multiplied with overflow checks;
 * nesting depth, string and name lengths are capped; tensor offsets must be
 * aligned, in range and must not overlap; keys and tensor names must be
 * unique. Every error names the field and the byte offset where it was found.
 */
#include "formats/gguf_internal.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC 0x46554747u         /* "GGUF" little-endian */
#define GGUF_MAX_KEY_LEN (1u << 16)    /* keys are short names */
#define GGUF_MAX_STRING_LEN (1u << 26) /* 64 MiB: chat templates, licences */
#define GGUF_MAX_NAME_LEN 4096         /* tensor names */
#define GGUF_MAX_DEPTH 16              /* nested arrays */
#define GGUF_MAX_ALIGNMENT (1u << 20)

/* ---- cursor ---------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *data;
    size_t         size;
    size_t         pos;
    const char    *label; /* file name for messages */
} cursor;

static orion_status truncated(const cursor *c, const char *what, size_t need) {
    return orion__fail(ORION_ERR_FORMAT, "%s: truncated: %s at byte %zu needs %zu bytes, %zu left", c->label,
                       what, c->pos, need, c->size - c->pos);
}

static orion_status read_bytes(cursor *c, void *out, size_t n, const char *what) {
    if (n > c->size - c->pos) return truncated(c, what, n);
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
    return ORION_OK;
}

static orion_status read_u32(cursor *c, uint32_t *v, const char *what) {
    return read_bytes(c, v, 4, what);
}

static orion_status read_u64(cursor *c, uint64_t *v, const char *what) {
    return read_bytes(c, v, 8, what);
}

/* Reads a GGUF string: u64 length + bytes, pointing into the file. */
static orion_status read_string(cursor *c, const char **ptr, uint64_t *len, uint64_t max_len,
                                const char *what) {
    size_t at = c->pos;
    orion_status st = read_u64(c, len, what);
    if (st != ORION_OK) return st;
    if (*len > max_len)
        return orion__fail(ORION_ERR_FORMAT, "%s: %s at byte %zu has length %llu, over the limit of %llu",
                           c->label, what, at, (unsigned long long)*len, (unsigned long long)max_len);
    if (*len > c->size - c->pos)
        return orion__fail(ORION_ERR_FORMAT, "%s: %s at byte %zu has length %llu but only %zu bytes are left",
                           c->label, what, at, (unsigned long long)*len, c->size - c->pos);
    *ptr = (const char *)c->data + c->pos;
    c->pos += (size_t)*len;
    return ORION_OK;
}

/* ---- value types --------------------------------------------------------------- */

static const char *const type_names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                         "bool", "string", "array", "u64", "i64", "f64"};

const char *orion_gguf_type_name(orion_gguf_type t) {
    return (unsigned)t < ORION_ARRAY_LEN(type_names) ? type_names[t] : "?";
}

/* Bytes of a fixed-size value type; 0 for string and array. */
size_t orion__gguf_scalar_size(orion_gguf_type t) {
    switch (t) {
    case ORION_GGUF_U8: case ORION_GGUF_I8: case ORION_GGUF_BOOL: return 1;
    case ORION_GGUF_U16: case ORION_GGUF_I16: return 2;
    case ORION_GGUF_U32: case ORION_GGUF_I32: case ORION_GGUF_F32: return 4;
    case ORION_GGUF_U64: case ORION_GGUF_I64: case ORION_GGUF_F64: return 8;
    case ORION_GGUF_STRING: case ORION_GGUF_ARRAY: return 0;
    }
    return 0;
}

bool orion__gguf_value_is_number_array(const orion_gguf_value *v) {
    return v && v->type == ORION_GGUF_ARRAY && orion__gguf_scalar_size(v->v.arr.elem_type) > 0;
}

bool orion__gguf_type_valid(uint32_t t) {
    return t <= ORION_GGUF_F64;
}

/* Decodes one little-endian scalar of type t at p into v. */
void orion__gguf_decode_scalar(orion_gguf_type t, const void *p, orion_gguf_value *v) {
    v->type = t;
    switch (t) {
    case ORION_GGUF_U8:  { uint8_t x;  memcpy(&x, p, 1); v->v.u64 = x; break; }
    case ORION_GGUF_I8:  { int8_t x;   memcpy(&x, p, 1); v->v.i64 = x; break; }
    case ORION_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v->v.u64 = x; break; }
    case ORION_GGUF_I16: { int16_t x;  memcpy(&x, p, 2); v->v.i64 = x; break; }
    case ORION_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v->v.u64 = x; break; }
    case ORION_GGUF_I32: { int32_t x;  memcpy(&x, p, 4); v->v.i64 = x; break; }
    case ORION_GGUF_F32: { float x;    memcpy(&x, p, 4); v->v.f64 = x; break; }
    case ORION_GGUF_BOOL: { uint8_t x; memcpy(&x, p, 1); v->v.b = x != 0; break; }
    case ORION_GGUF_U64: memcpy(&v->v.u64, p, 8); break;
    case ORION_GGUF_I64: memcpy(&v->v.i64, p, 8); break;
    case ORION_GGUF_F64: memcpy(&v->v.f64, p, 8); break;
    case ORION_GGUF_STRING: case ORION_GGUF_ARRAY: break;
    }
}

/* ---- the handle's owned allocations ----------------------------------------- */

static void *gguf_alloc(orion_gguf *g, size_t n, size_t size) {
    if (g->n_owned == g->cap_owned) {
        size_t cap = g->cap_owned ? g->cap_owned * 2 : 16;
        void **owned = orion__realloc(g->owned, cap * sizeof *owned);
        if (!owned) return NULL;
        g->owned = owned;
        g->cap_owned = cap;
    }
    void *p = orion__calloc(n ? n : 1, size);
    if (p) g->owned[g->n_owned++] = p;
    return p;
}

/* ---- values ------------------------------------------------------------------ */

static orion_status parse_value(orion_gguf *g, cursor *c, uint32_t type, orion_gguf_value *out, int depth,
                                const char *key);

static orion_status parse_array(orion_gguf *g, cursor *c, orion_gguf_value *out, int depth, const char *key) {
    size_t at = c->pos;
    if (depth >= GGUF_MAX_DEPTH)
        return orion__fail(ORION_ERR_FORMAT, "%s: key '%s': arrays nested deeper than %d levels at byte %zu",
                           c->label, key, GGUF_MAX_DEPTH, at);
    uint32_t elem = 0;
    uint64_t count = 0;
    orion_status st = read_u32(c, &elem, "array element type");
    if (st != ORION_OK) return st;
    if (!orion__gguf_type_valid(elem))
        return orion__fail(ORION_ERR_FORMAT, "%s: key '%s': unknown array element type %u at byte %zu", c->label,
                           key, elem, at);
    if ((st = read_u64(c, &count, "array length")) != ORION_OK) return st;
    out->type = ORION_GGUF_ARRAY;
    out->v.arr.elem_type = (orion_gguf_type)elem;
    out->v.arr.count = count;
    out->v.arr.raw = c->data + c->pos;
    out->v.arr.items = NULL;

    /* every element takes at least this many bytes: a count that cannot fit
     * in what is left of the file is rejected before any allocation */
    size_t esize = orion__gguf_scalar_size((orion_gguf_type)elem);
    size_t min_size = esize ? esize : (elem == ORION_GGUF_STRING ? 8 : 12);
    if (count > (c->size - c->pos) / min_size)
        return orion__fail(ORION_ERR_FORMAT,
                           "%s: key '%s': array of %llu %s at byte %zu cannot fit in the %zu bytes left", c->label,
                           key, (unsigned long long)count, orion_gguf_type_name((orion_gguf_type)elem), at,
                           c->size - c->pos);
    if (esize) {
        c->pos += (size_t)count * esize;
        return ORION_OK;
    }
    orion_gguf_value *items = gguf_alloc(g, (size_t)count, sizeof *items);
    if (!items)
        return orion__fail(ORION_ERR_NOMEM, "%s: key '%s': cannot allocate %llu array items", c->label, key,
                           (unsigned long long)count);
    for (uint64_t i = 0; i < count; i++) {
        if ((st = parse_value(g, c, elem, &items[i], depth + 1, key)) != ORION_OK) return st;
    }
    out->v.arr.items = items;
    return ORION_OK;
}

static orion_status parse_value(orion_gguf *g, cursor *c, uint32_t type, orion_gguf_value *out, int depth,
                                const char *key) {
    if (type == ORION_GGUF_STRING) {
        out->type = ORION_GGUF_STRING;
        return read_string(c, &out->v.str.ptr, &out->v.str.len, GGUF_MAX_STRING_LEN, "string value");
    }
    if (type == ORION_GGUF_ARRAY) return parse_array(g, c, out, depth, key);
    size_t n = orion__gguf_scalar_size((orion_gguf_type)type);
    if (n > c->size - c->pos) return truncated(c, "value", n);
    orion__gguf_decode_scalar((orion_gguf_type)type, c->data + c->pos, out);
    c->pos += n;
    return ORION_OK;
}

/* ---- header, metadata, tensor infos -------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const orion_gguf_tensor *x = *(const orion_gguf_tensor *const *)a;
    const orion_gguf_tensor *y = *(const orion_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Copies a length-counted name into a NUL-terminated string owned by g. */
static orion_status own_name(orion_gguf *g, cursor *c, const char *ptr, uint64_t len, size_t at, const char *what,
                             char **out) {
    if (len == 0) return orion__fail(ORION_ERR_FORMAT, "%s: empty %s at byte %zu", c->label, what, at);
    if (memchr(ptr, '\0', (size_t)len))
        return orion__fail(ORION_ERR_FORMAT, "%s: %s at byte %zu contains a NUL byte", c->label, what, at);
    char *s = gguf_alloc(g, (size_t)len + 1, 1);
    if (!s) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a %s", c->label, what);
    memcpy(s, ptr, (size_t)len);
    *out = s;
    return ORION_OK;
}

static orion_status parse_header(orion_gguf *g, cursor *c) {
    uint32_t magic = 0, version = 0;
    uint64_t n_tensors = 0, n_kv = 0;
    orion_status st;
    if (c->size < 24)
        return orion__fail(ORION_ERR_FORMAT, "%s: %zu bytes is too small for a GGUF header (24 bytes)", c->label,
                           c->size);
    read_u32(c, &magic, "magic");
    if (magic != GGUF_MAGIC)
        return orion__fail(ORION_ERR_FORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected 'GGUF')",
                           c->label, c->data[0], c->data[1], c->data[2], c->data[3]);
    read_u32(c, &version, "version");
    if (version == 1)
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (versions 2 and 3 are)",
                           c->label);
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && (version >> 16) != 0)
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", c->label);
        return orion__fail(ORION_ERR_UNSUPPORTED, "%s: unknown GGUF version %u (versions 2 and 3 are supported)",
                           c->label, version);
    }
    g->version = version;
    read_u64(c, &n_tensors, "tensor count");
    read_u64(c, &n_kv, "metadata count");
    /* a key-value takes >= 13 bytes (8 length + 1 key byte + 4 type), a
     * tensor info >= 25 (8 + 1 name byte + 4 n_dims + 4 type + 8 offset) */
    size_t left = c->size - c->pos;
    if (n_kv > left / 13)
        return orion__fail(ORION_ERR_FORMAT, "%s: metadata count %llu at byte 16 cannot fit in a %zu-byte file",
                           c->label, (unsigned long long)n_kv, c->size);
    if (n_tensors > left / 25)
        return orion__fail(ORION_ERR_FORMAT, "%s: tensor count %llu at byte 8 cannot fit in a %zu-byte file",
                           c->label, (unsigned long long)n_tensors, c->size);
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;

    g->keys = gguf_alloc(g, (size_t)n_kv, sizeof *g->keys);
    g->values = gguf_alloc(g, (size_t)n_kv, sizeof *g->values);
    g->tensors = gguf_alloc(g, (size_t)n_tensors, sizeof *g->tensors);
    if (!g->keys || !g->values || !g->tensors)
        return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate the index", c->label);

    for (uint64_t i = 0; i < n_kv; i++) {
        size_t at = c->pos;
        const char *kp;
        uint64_t klen;
        uint32_t type = 0;
        if ((st = read_string(c, &kp, &klen, GGUF_MAX_KEY_LEN, "metadata key")) != ORION_OK) return st;
        if ((st = own_name(g, c, kp, klen, at, "metadata key", &g->keys[i])) != ORION_OK) return st;
        size_t type_at = c->pos;
        if ((st = read_u32(c, &type, "metadata type")) != ORION_OK) return st;
        if (!orion__gguf_type_valid(type))
            return orion__fail(ORION_ERR_FORMAT, "%s: key '%s': unknown value type %u at byte %zu", c->label,
                               g->keys[i], type, type_at);
        if ((st = parse_value(g, c, type, &g->values[i], 0, g->keys[i])) != ORION_OK) return st;
    }

    /* general.alignment */
    g->alignment = 32;
    const orion_gguf_value *al = orion_gguf_get(g, "general.alignment");
    if (al) {
        if (al->type != ORION_GGUF_U32)
            return orion__fail(ORION_ERR_FORMAT, "%s: general.alignment has type %s, expected u32", c->label,
                               orion_gguf_type_name(al->type));
        if (al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)) != 0 || al->v.u64 > GGUF_MAX_ALIGNMENT)
            return orion__fail(ORION_ERR_FORMAT, "%s: general.alignment %llu is not a power of two in [1, %u]",
                               c->label, (unsigned long long)al->v.u64, GGUF_MAX_ALIGNMENT);
        g->alignment = (size_t)al->v.u64;
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        orion_gguf_tensor *t = &g->tensors[i];
        size_t at = c->pos;
        const char *np;
        uint64_t nlen;
        uint32_t n_dims = 0, type = 0;
        if ((st = read_string(c, &np, &nlen, GGUF_MAX_NAME_LEN, "tensor name")) != ORION_OK) return st;
        char *name;
        if ((st = own_name(g, c, np, nlen, at, "tensor name", &name)) != ORION_OK) return st;
        t->name = name;
        if ((st = read_u32(c, &n_dims, "tensor dimension count")) != ORION_OK) return st;
        if (n_dims < 1 || n_dims > 4)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s' at byte %zu has %u dimensions (1 to 4 allowed)",
                               c->label, name, at, n_dims);
        t->n_dims = (int)n_dims;
        int64_t n_elems = 1;
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne = 0;
            if ((st = read_u64(c, &ne, "tensor dimension")) != ORION_OK) return st;
            if (ne > (uint64_t)INT64_MAX || (ne != 0 && (uint64_t)n_elems > (uint64_t)INT64_MAX / ne))
                return orion__fail(ORION_ERR_FORMAT,
                                   "%s: tensor '%s': dimension %u = %llu makes the element count overflow",
                                   c->label, name, d, (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
            n_elems *= (int64_t)ne;
        }
        t->n_elems = n_elems;
        size_t type_at = c->pos;
        if ((st = read_u32(c, &type, "tensor type")) != ORION_OK) return st;
        if (!orion_type_is_supported((int)type))
            return orion__fail(ORION_ERR_UNSUPPORTED,
                               "%s: tensor '%s' has type id %u at byte %zu, which orion does not support "
                               "(f32, f16, bf16, q8_0, q4_0, q4_1)",
                               c->label, name, type, type_at);
        t->type = (orion_type)type;
        if ((st = read_u64(c, &t->offset, "tensor offset")) != ORION_OK) return st;
        int64_t blk = orion_type_block_elems(t->type);
        if (t->ne[0] % blk != 0)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': row length %lld is not a multiple of the %s block size %lld",
                               c->label, name, (long long)t->ne[0], orion_type_name(t->type), (long long)blk);
        size_t row = orion_type_row_bytes(t->type, t->ne[0]), rows = 1, bytes;
        if (t->ne[0] == 0) row = 0;
        bool ok = orion__mul_ok((size_t)t->ne[1], (size_t)t->ne[2], &rows) &&
                  orion__mul_ok(rows, (size_t)t->ne[3], &rows) && orion__mul_ok(row, rows, &bytes);
        if (!ok)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': byte size overflows", c->label, name);
        t->n_bytes = bytes;
    }

    /* tensor data: starts at the next multiple of the alignment */
    size_t data_off = c->pos;
    size_t rem = data_off % g->alignment;
    if (rem && !orion__add_ok(data_off, g->alignment - rem, &data_off))
        return orion__fail(ORION_ERR_FORMAT, "%s: data offset overflows", c->label);
    g->data_offset = data_off;
    if (n_tensors > 0 && data_off > c->size)
        return orion__fail(ORION_ERR_FORMAT, "%s: truncated: tensor data would start at byte %zu, past the end (%zu)",
                           c->label, data_off, c->size);
    size_t data_size = n_tensors > 0 ? c->size - data_off : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        orion_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return orion__fail(ORION_ERR_FORMAT, "%s: tensor '%s': offset %llu is not a multiple of the alignment %zu",
                               c->label, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return orion__fail(ORION_ERR_FORMAT,
                               "%s: tensor '%s': bytes [%llu, +%zu) of the data section run past its end (%zu bytes)",
                               c->label, t->name, (unsigned long long)t->offset, t->n_bytes, data_size);
        t->data = c->data + data_off + t->offset;
    }
    return ORION_OK;
}

/* Keys unique, tensor names unique, tensors not overlapping. */
static orion_status check_unique(orion_gguf *g, const char *label) {
    size_t n = (size_t)ORION_MAX(g->n_kv, g->n_tensors);
    if (n == 0) return ORION_OK;
    const void **sorted = orion__malloc(n * sizeof *sorted);
    if (!sorted) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a sort buffer", label);
    orion_status st = ORION_OK;
    for (int64_t i = 0; i < g->n_kv; i++) sorted[i] = g->keys[i];
    qsort(sorted, (size_t)g->n_kv, sizeof *sorted, cmp_str_ptr);
    for (int64_t i = 1; i < g->n_kv && st == ORION_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = orion__fail(ORION_ERR_FORMAT, "%s: metadata key '%s' appears twice", label, (const char *)sorted[i]);
    for (int64_t i = 0; i < g->n_tensors && st == ORION_OK; i++) sorted[i] = g->tensors[i].name;
    if (st == ORION_OK) qsort(sorted, (size_t)g->n_tensors, sizeof *sorted, cmp_str_ptr);
    for (int64_t i = 1; i < g->n_tensors && st == ORION_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = orion__fail(ORION_ERR_FORMAT, "%s: tensor name '%s' appears twice", label, (const char *)sorted[i]);
    for (int64_t i = 0; i < g->n_tensors && st == ORION_OK; i++) sorted[i] = &g->tensors[i];
    if (st == ORION_OK) qsort(sorted, (size_t)g->n_tensors, sizeof *sorted, cmp_tensor_offset);
    for (int64_t i = 1; i < g->n_tensors && st == ORION_OK; i++) {
        const orion_gguf_tensor *a = sorted[i - 1], *b = sorted[i];
        if (a->n_bytes > 0 && b->n_bytes > 0 && a->offset + a->n_bytes > b->offset)
            st = orion__fail(ORION_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (bytes %llu+%zu and %llu)", label,
                             a->name, b->name, (unsigned long long)a->offset, a->n_bytes,
                             (unsigned long long)b->offset);
    }
    orion__free(sorted);
    return st;
}

static orion_status open_common(orion_gguf *g, const char *label) {
    cursor c = {g->data, g->size, 0, label};
    orion_status st = parse_header(g, &c);
    if (st == ORION_OK) st = check_unique(g, label);
    return st;
}

static orion_status new_handle(const char *label, orion_gguf **out) {
    orion_gguf *g = orion__calloc(1, sizeof *g);
    if (!g) return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a GGUF handle", label);
    g->label = orion__strdup(label);
    if (!g->label) {
        orion__free(g);
        return orion__fail(ORION_ERR_NOMEM, "%s: cannot allocate a GGUF handle", label);
    }
    *out = g;
    return ORION_OK;
}

orion_status orion_gguf_open_memory(const void *data, size_t size, orion_gguf **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size) return orion__fail(ORION_ERR_INVALID_ARG, "orion_gguf_open_memory: data is NULL");
    orion_gguf *g = NULL;
    orion_status st = new_handle("<memory>", &g);
    if (st != ORION_OK) return st;
    g->data = data;
    g->size = size;
    if ((st = open_common(g, g->label)) != ORION_OK) {
        orion_gguf_free(g);
        return st;
    }
    *out = g;
    return ORION_OK;
}

bool orion_gguf_is_file(const char *path) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return false;
    unsigned char magic[4] = {0};
    const bool ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return ok;
}

orion_status orion_gguf_open(const char *path, orion_gguf **out) {
    if (!out || !path) return orion__fail(ORION_ERR_INVALID_ARG, "orion_gguf_open: NULL argument");
    *out = NULL;
    const uint8_t *map;
    size_t size;
    orion_status st = orion__file_map(path, &map, &size);
    if (st != ORION_OK) return st;
    orion_gguf *g = NULL;
    if ((st = new_handle(path, &g)) != ORION_OK) {
        orion__file_unmap(map, size);
        return st;
    }
    g->map = map;
    g->data = map;
    g->size = size;
    if ((st = open_common(g, path)) != ORION_OK) {
        orion_gguf_free(g);
        return st;
    }
    *out = g;
    return ORION_OK;
}

void orion_gguf_free(orion_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_owned; i++) orion__free(g->owned[i]);
    orion__free(g->owned);
    if (g->map) orion__file_unmap(g->map, g->size);
    orion__free(g->label);
    orion__free(g);
}

/* ---- accessors ------------------------------------------------------------------ */

uint32_t orion_gguf_version(const orion_gguf *g) { return g->version; }
size_t orion_gguf_alignment(const orion_gguf *g) { return g->alignment; }
size_t orion_gguf_file_size(const orion_gguf *g) { return g->size; }
size_t orion_gguf_data_offset(const orion_gguf *g) { return g->data_offset; }
int64_t orion_gguf_n_kv(const orion_gguf *g) { return g->n_kv; }
int64_t orion_gguf_n_tensors(const orion_gguf *g) { return g->n_tensors; }

const char *orion_gguf_kv_key(const orion_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? g->keys[i] : NULL;
}

const orion_gguf_value *orion_gguf_kv_value(const orion_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? &g->values[i] : NULL;
}

const orion_gguf_value *orion_gguf_get(const orion_gguf *g, const char *key) {
    /* linear: files have tens of keys, and look-ups happen at load */
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->keys[i] && strcmp(g->keys[i], key) == 0) return &g->values[i];
    return NULL;
}

const orion_gguf_tensor *orion_gguf_tensor_at(const orion_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const orion_gguf_tensor *orion_gguf_find_tensor(const orion_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static bool is_signed(orion_gguf_type t) {
    return t == ORION_GGUF_I8 || t == ORION_GGUF_I16 || t == ORION_GGUF_I32 || t == ORION_GGUF_I64;
}

static bool is_unsigned(orion_gguf_type t) {
    return t == ORION_GGUF_U8 || t == ORION_GGUF_U16 || t == ORION_GGUF_U32 || t == ORION_GGUF_U64;
}

static orion_status lookup(const orion_gguf *g, const char *key, const orion_gguf_value **v) {
    *v = orion_gguf_get(g, key);
    if (!*v) return orion__fail(ORION_ERR_NOT_FOUND, "%s: metadata key '%s' is missing", g->label, key);
    return ORION_OK;
}

static orion_status wrong_type(const orion_gguf *g, const char *key, orion_gguf_type t, const char *want) {
    return orion__fail(ORION_ERR_FORMAT, "%s: metadata key '%s' has type %s, expected %s", g->label, key,
                       orion_gguf_type_name(t), want);
}

orion_status orion_gguf_get_u64(const orion_gguf *g, const char *key, uint64_t *out) {
    const orion_gguf_value *v;
    orion_status st = lookup(g, key, &v);
    if (st != ORION_OK) return st;
    if (is_unsigned(v->type)) *out = v->v.u64;
    else if (is_signed(v->type) && v->v.i64 >= 0) *out = (uint64_t)v->v.i64;
    else return wrong_type(g, key, v->type, "a non-negative integer");
    return ORION_OK;
}

orion_status orion_gguf_get_i64(const orion_gguf *g, const char *key, int64_t *out) {
    const orion_gguf_value *v;
    orion_status st = lookup(g, key, &v);
    if (st != ORION_OK) return st;
    if (is_signed(v->type)) *out = v->v.i64;
    else if (is_unsigned(v->type) && v->v.u64 <= (uint64_t)INT64_MAX) *out = (int64_t)v->v.u64;
    else return wrong_type(g, key, v->type, "an integer");
    return ORION_OK;
}

orion_status orion_gguf_get_f64(const orion_gguf *g, const char *key, double *out) {
    const orion_gguf_value *v;
    orion_status st = lookup(g, key, &v);
    if (st != ORION_OK) return st;
    if (v->type == ORION_GGUF_F32 || v->type == ORION_GGUF_F64) *out = v->v.f64;
    else if (is_signed(v->type)) *out = (double)v->v.i64;
    else if (is_unsigned(v->type)) *out = (double)v->v.u64;
    else return wrong_type(g, key, v->type, "a number");
    return ORION_OK;
}

orion_status orion_gguf_get_bool(const orion_gguf *g, const char *key, bool *out) {
    const orion_gguf_value *v;
    orion_status st = lookup(g, key, &v);
    if (st != ORION_OK) return st;
    if (v->type != ORION_GGUF_BOOL) return wrong_type(g, key, v->type, "bool");
    *out = v->v.b;
    return ORION_OK;
}

orion_status orion_gguf_get_str(const orion_gguf *g, const char *key, char *buf, size_t size) {
    const orion_gguf_value *v;
    orion_status st = lookup(g, key, &v);
    if (st != ORION_OK) return st;
    if (v->type != ORION_GGUF_STRING) return wrong_type(g, key, v->type, "string");
    if (!buf || size == 0) return orion__fail(ORION_ERR_INVALID_ARG, "orion_gguf_get_str: no buffer");
    size_t n = (size_t)ORION_MIN(v->v.str.len, (uint64_t)(size - 1));
    memcpy(buf, v->v.str.ptr, n);
    buf[n] = '\0';
    return ORION_OK;
}

double orion_gguf_array_f64(const orion_gguf_value *arr, uint64_t i) {
    if (!arr || arr->type != ORION_GGUF_ARRAY || i >= arr->v.arr.count) return 0.0;
    size_t es = orion__gguf_scalar_size(arr->v.arr.elem_type);
    if (!es) return 0.0;
    orion_gguf_value v;
    orion__gguf_decode_scalar(arr->v.arr.elem_type, (const uint8_t *)arr->v.arr.raw + i * es, &v);
    if (v.type == ORION_GGUF_F32 || v.type == ORION_GGUF_F64) return v.v.f64;
    if (is_signed(v.type)) return (double)v.v.i64;
    if (v.type == ORION_GGUF_BOOL) return v.v.b;
    return (double)v.v.u64;
}

int64_t orion_gguf_array_i64(const orion_gguf_value *arr, uint64_t i) {
    if (!arr || arr->type != ORION_GGUF_ARRAY || i >= arr->v.arr.count) return 0;
    size_t es = orion__gguf_scalar_size(arr->v.arr.elem_type);
    if (!es) return 0;
    orion_gguf_value v;
    orion__gguf_decode_scalar(arr->v.arr.elem_type, (const uint8_t *)arr->v.arr.raw + i * es, &v);
    if (v.type == ORION_GGUF_F32 || v.type == ORION_GGUF_F64)
        return (v.v.f64 > -9.2e18 && v.v.f64 < 9.2e18) ? (int64_t)v.v.f64 : 0; /* NaN, huge: 0 */
    if (is_signed(v.type)) return v.v.i64;
    if (v.type == ORION_GGUF_BOOL) return v.v.b;
    return (int64_t)v.v.u64;
}
