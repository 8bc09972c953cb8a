/*
 * gguf_write.c — writes GGUF v3 files that llama.cpp and orion both read.
 *
 * Metadata values are serialized into their on-disk bytes as soon as they
 * are set (so nested arrays and strings are deep-copied and the caller's
 * buffers may go away); tensors are recorded as (name, type, shape, pointer)
 * and their data is streamed from the caller's memory at write time, each
 * tensor placed at the next multiple of the alignment. The file is written
 * to PATH.tmp and renamed over PATH only when complete, so a failed or
 * interrupted write never leaves a half file under the final name.
 */
#include "formats/gguf_internal.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct wbuf {
    uint8_t *p;
    size_t   len, cap;
    bool     oom;
} wbuf;

typedef struct wkv {
    char *key;
    wbuf  bytes; /* u32 type + value payload */
} wkv;

typedef struct wtensor {
    char       *name;
    orion_type  type;
    int         n_dims;
    int64_t     ne[4];
    size_t      n_bytes;
    const void *data;
    orion_gguf_produce_fn fn; /* when set, data is produced at write time */
    void       *user;
} wtensor;

struct orion_gguf_writer {
    wkv     *kvs;
    size_t   n_kv, cap_kv;
    wtensor *tensors;
    size_t   n_tensors, cap_tensors;
    uint32_t alignment;
};

static void wb_put(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = orion__realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void wb_u32(wbuf *b, uint32_t v) { wb_put(b, &v, 4); }
static void wb_u64(wbuf *b, uint64_t v) { wb_put(b, &v, 8); }

static void wb_string(wbuf *b, const char *s, uint64_t len) {
    wb_u64(b, len);
    wb_put(b, s, (size_t)len);
}

orion_status orion_gguf_writer_init(orion_gguf_writer **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_gguf_writer_init: out is NULL");
    *out = orion__calloc(1, sizeof **out);
    if (!*out) return orion__fail(ORION_ERR_NOMEM, "gguf writer: cannot allocate the handle");
    (*out)->alignment = 32;
    return ORION_OK;
}

void orion_gguf_writer_free(orion_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        orion__free(w->kvs[i].key);
        orion__free(w->kvs[i].bytes.p);
    }
    for (size_t i = 0; i < w->n_tensors; i++) orion__free(w->tensors[i].name);
    orion__free(w->kvs);
    orion__free(w->tensors);
    orion__free(w);
}

/* Serializes the payload of v (without its type tag). */
static void put_payload(wbuf *b, const orion_gguf_value *v) {
    switch (v->type) {
    case ORION_GGUF_U8:  { uint8_t x = (uint8_t)v->v.u64;   wb_put(b, &x, 1); break; }
    case ORION_GGUF_I8:  { int8_t x = (int8_t)v->v.i64;     wb_put(b, &x, 1); break; }
    case ORION_GGUF_U16: { uint16_t x = (uint16_t)v->v.u64; wb_put(b, &x, 2); break; }
    case ORION_GGUF_I16: { int16_t x = (int16_t)v->v.i64;   wb_put(b, &x, 2); break; }
    case ORION_GGUF_U32: { uint32_t x = (uint32_t)v->v.u64; wb_put(b, &x, 4); break; }
    case ORION_GGUF_I32: { int32_t x = (int32_t)v->v.i64;   wb_put(b, &x, 4); break; }
    case ORION_GGUF_F32: { float x = (float)v->v.f64;       wb_put(b, &x, 4); break; }
    case ORION_GGUF_BOOL: { uint8_t x = v->v.b ? 1 : 0;     wb_put(b, &x, 1); break; }
    case ORION_GGUF_U64: wb_put(b, &v->v.u64, 8); break;
    case ORION_GGUF_I64: wb_put(b, &v->v.i64, 8); break;
    case ORION_GGUF_F64: wb_put(b, &v->v.f64, 8); break;
    case ORION_GGUF_STRING: wb_string(b, v->v.str.ptr, v->v.str.len); break;
    case ORION_GGUF_ARRAY: {
        wb_u32(b, (uint32_t)v->v.arr.elem_type);
        wb_u64(b, v->v.arr.count);
        size_t es = orion__gguf_scalar_size(v->v.arr.elem_type);
        if (es) {
            size_t bytes;
            if (!orion__mul_ok((size_t)v->v.arr.count, es, &bytes)) {
                b->oom = true;
                break;
            }
            wb_put(b, v->v.arr.raw, bytes);
        } else {
            for (uint64_t i = 0; i < v->v.arr.count && !b->oom; i++) put_payload(b, &v->v.arr.items[i]);
        }
        break;
    }
    }
}

static bool value_ok(const orion_gguf_value *v, int depth) {
    if (!v || !orion__gguf_type_valid((uint32_t)v->type) || depth > 16) return false;
    if (v->type == ORION_GGUF_STRING) return v->v.str.ptr || v->v.str.len == 0;
    if (v->type != ORION_GGUF_ARRAY) return true;
    if (!orion__gguf_type_valid((uint32_t)v->v.arr.elem_type)) return false;
    if (orion__gguf_scalar_size(v->v.arr.elem_type)) return v->v.arr.raw || v->v.arr.count == 0;
    if (!v->v.arr.items && v->v.arr.count) return false;
    for (uint64_t i = 0; i < v->v.arr.count; i++) {
        if (v->v.arr.items[i].type != v->v.arr.elem_type || !value_ok(&v->v.arr.items[i], depth + 1)) return false;
    }
    return true;
}

orion_status orion_gguf_writer_set(orion_gguf_writer *w, const char *key, const orion_gguf_value *value) {
    if (!w || !key || !*key) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: missing key");
    if (!value_ok(value, 0))
        return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: key '%s': malformed value", key);
    wbuf b = {0};
    wb_u32(&b, (uint32_t)value->type);
    put_payload(&b, value);
    if (b.oom) {
        orion__free(b.p);
        return orion__fail(ORION_ERR_NOMEM, "gguf writer: key '%s': out of memory", key);
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) { /* replace in place, keep the order */
            orion__free(w->kvs[i].bytes.p);
            w->kvs[i].bytes = b;
            return ORION_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *kvs = orion__realloc(w->kvs, cap * sizeof *kvs);
        if (!kvs) {
            orion__free(b.p);
            return orion__fail(ORION_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->kvs = kvs;
        w->cap_kv = cap;
    }
    char *k = orion__strdup(key);
    if (!k) {
        orion__free(b.p);
        return orion__fail(ORION_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->kvs[w->n_kv].key = k;
    w->kvs[w->n_kv].bytes = b;
    w->n_kv++;
    return ORION_OK;
}

orion_status orion_gguf_writer_set_u32(orion_gguf_writer *w, const char *key, uint32_t v) {
    orion_gguf_value x = {.type = ORION_GGUF_U32, .v.u64 = v};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_i32(orion_gguf_writer *w, const char *key, int32_t v) {
    orion_gguf_value x = {.type = ORION_GGUF_I32, .v.i64 = v};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_u64(orion_gguf_writer *w, const char *key, uint64_t v) {
    orion_gguf_value x = {.type = ORION_GGUF_U64, .v.u64 = v};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_f32(orion_gguf_writer *w, const char *key, float v) {
    orion_gguf_value x = {.type = ORION_GGUF_F32, .v.f64 = v};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_bool(orion_gguf_writer *w, const char *key, bool v) {
    orion_gguf_value x = {.type = ORION_GGUF_BOOL, .v.b = v};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_str(orion_gguf_writer *w, const char *key, const char *v) {
    if (!v) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
    orion_gguf_value x = {.type = ORION_GGUF_STRING, .v.str = {v, strlen(v)}};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_array(orion_gguf_writer *w, const char *key, orion_gguf_type elem_type,
                                         const void *data, uint64_t n) {
    if (!orion__gguf_scalar_size(elem_type))
        return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: key '%s': set_array takes number types only",
                           key ? key : "");
    orion_gguf_value x = {.type = ORION_GGUF_ARRAY, .v.arr = {elem_type, n, data, NULL}};
    return orion_gguf_writer_set(w, key, &x);
}

orion_status orion_gguf_writer_set_str_array(orion_gguf_writer *w, const char *key, const char *const *strs,
                                             uint64_t n) {
    size_t bytes;
    if (!orion__mul_ok((size_t)n, sizeof(orion_gguf_value), &bytes))
        return orion__fail(ORION_ERR_NOMEM, "gguf writer: key '%s': array too large", key ? key : "");
    orion_gguf_value *items = orion__malloc(bytes ? bytes : 1);
    if (!items) return orion__fail(ORION_ERR_NOMEM, "gguf writer: key '%s': out of memory", key ? key : "");
    for (uint64_t i = 0; i < n; i++) {
        items[i].type = ORION_GGUF_STRING;
        items[i].v.str.ptr = strs[i] ? strs[i] : "";
        items[i].v.str.len = strs[i] ? strlen(strs[i]) : 0;
    }
    orion_gguf_value x = {.type = ORION_GGUF_ARRAY, .v.arr = {ORION_GGUF_STRING, n, NULL, items}};
    orion_status st = orion_gguf_writer_set(w, key, &x);
    orion__free(items);
    return st;
}

orion_status orion_gguf_writer_set_alignment(orion_gguf_writer *w, uint32_t alignment) {
    if (!w || alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 20))
        return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: alignment %u is not a power of two in [1, 2^20]",
                           alignment);
    w->alignment = alignment;
    return orion_gguf_writer_set_u32(w, "general.alignment", alignment);
}

static orion_status add_tensor(orion_gguf_writer *w, const char *name, orion_type type, int n_dims,
                               const int64_t *ne, const void *data, orion_gguf_produce_fn fn, void *user) {
    if (!w || !name || !*name || !ne) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: bad tensor arguments");
    if (strlen(name) > 4096) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor name too long");
    if (!orion_type_is_supported((int)type))
        return orion__fail(ORION_ERR_UNSUPPORTED, "gguf writer: tensor '%s': unsupported type %d", name, (int)type);
    if (n_dims < 1 || n_dims > 4)
        return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor '%s': %d dimensions", name, n_dims);
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}, .data = data, .fn = fn, .user = user};
    size_t rows = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor '%s': negative dimension", name);
        t.ne[d] = ne[d];
        if (d > 0 && !orion__mul_ok(rows, (size_t)ne[d], &rows))
            return orion__fail(ORION_ERR_RANGE, "gguf writer: tensor '%s': too large", name);
    }
    if (ne[0] % orion_type_block_elems(type) != 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor '%s': row length %lld is not a multiple of %lld",
                           name, (long long)ne[0], (long long)orion_type_block_elems(type));
    if (!orion__mul_ok(orion_type_row_bytes(type, ne[0]), rows, &t.n_bytes))
        return orion__fail(ORION_ERR_RANGE, "gguf writer: tensor '%s': too large", name);
    if (!data && !fn && t.n_bytes)
        return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor '%s': no data", name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor '%s' added twice", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        wtensor *ts = orion__realloc(w->tensors, cap * sizeof *ts);
        if (!ts) return orion__fail(ORION_ERR_NOMEM, "gguf writer: out of memory");
        w->tensors = ts;
        w->cap_tensors = cap;
    }
    if (!(t.name = orion__strdup(name))) return orion__fail(ORION_ERR_NOMEM, "gguf writer: out of memory");
    w->tensors[w->n_tensors++] = t;
    return ORION_OK;
}

orion_status orion_gguf_writer_add_tensor(orion_gguf_writer *w, const char *name, orion_type type, int n_dims,
                                          const int64_t *ne, const void *data) {
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL);
}

orion_status orion__gguf_writer_add_tensor_fn(orion_gguf_writer *w, const char *name, orion_type type, int n_dims,
                                              const int64_t *ne, orion_gguf_produce_fn fn, void *user) {
    if (!fn) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: tensor '%s': no producer", name ? name : "");
    return add_tensor(w, name, type, n_dims, ne, NULL, fn, user);
}

static size_t align_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

static bool write_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = ORION_MIN(n, sizeof zeros);
        if (fwrite(zeros, 1, k, f) != k) return false;
        n -= k;
    }
    return true;
}

orion_status orion_gguf_writer_write(orion_gguf_writer *w, const char *path) {
    if (!w || !path) return orion__fail(ORION_ERR_INVALID_ARG, "gguf writer: NULL argument");
    wbuf head = {0};
    wb_u32(&head, 0x46554747u);
    wb_u32(&head, 3);
    wb_u64(&head, (uint64_t)w->n_tensors);
    wb_u64(&head, (uint64_t)w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        wb_string(&head, w->kvs[i].key, strlen(w->kvs[i].key));
        wb_put(&head, w->kvs[i].bytes.p, w->kvs[i].bytes.len);
    }
    size_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        wb_string(&head, t->name, strlen(t->name));
        wb_u32(&head, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) wb_u64(&head, (uint64_t)t->ne[d]);
        wb_u32(&head, (uint32_t)t->type);
        wb_u64(&head, (uint64_t)offset);
        offset = align_up(offset + t->n_bytes, w->alignment);
    }
    if (head.oom) {
        orion__free(head.p);
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory building the header", path);
    }

    size_t plen = strlen(path);
    char *tmp = orion__malloc(plen + 5);
    if (!tmp) {
        orion__free(head.p);
        return orion__fail(ORION_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    orion_status st = ORION_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = orion__fail(ORION_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    bool ok = fwrite(head.p, 1, head.len, f) == head.len;
    size_t pos = head.len;
    ok = ok && write_zeros(f, align_up(pos, w->alignment) - pos);
    for (size_t i = 0; ok && st == ORION_OK && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (t->fn) {
            void *buf = orion__malloc_aligned(t->n_bytes ? t->n_bytes : 1, 64);
            if (!buf) {
                st = orion__fail(ORION_ERR_NOMEM, "%s: tensor '%s': cannot allocate %zu bytes", path, t->name,
                                 t->n_bytes);
                break;
            }
            st = t->fn(t->user, buf, t->n_bytes);
            ok = st == ORION_OK && fwrite(buf, 1, t->n_bytes, f) == t->n_bytes;
            orion__free_aligned(buf);
        } else {
            ok = fwrite(t->data, 1, t->n_bytes, f) == t->n_bytes;
        }
        ok = ok && write_zeros(f, align_up(t->n_bytes, w->alignment) - t->n_bytes);
    }
    if (fclose(f) != 0) ok = false;
    if (st != ORION_OK) { /* a producer failed: its message stands */
        remove(tmp);
        goto done;
    }
    if (!ok) {
        st = orion__fail(ORION_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        remove(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = orion__fail(ORION_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        remove(tmp);
    }
done:
    orion__free(tmp);
    orion__free(head.p);
    return st;
}
