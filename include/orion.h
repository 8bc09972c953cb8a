/*
 * orion.h — the one public header of orion, a local AI model runtime.
 *
 * Conventions (see docs/design.md):
 *   - Every public name starts with orion_ / ORION_.
 *   - Objects are opaque handles with a *_default_params() / *_init or *_load /
 *     *_free triple; every *_free(NULL) is a no-op.
 *   - Every call that can fail returns an orion_status (0 is success, negative
 *     is an error). The failing call also leaves a message naming the file,
 *     offset or field at fault; read it with orion_last_error() on the same
 *     thread. The library never calls exit() or abort() on bad input.
 *   - Logging goes to a callback the application sets; the library is quiet
 *     by default.
 *   - Thread safety is stated at each declaration. Unless said otherwise a
 *     handle may be used by one thread at a time.
 */
#ifndef ORION_H
#define ORION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ORION_VERSION_MAJOR 0
#define ORION_VERSION_MINOR 1
#define ORION_VERSION_PATCH 0

/* Returns the library version as "MAJOR.MINOR.PATCH". Static string. */
const char *orion_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                   */
/* ------------------------------------------------------------------------ */

typedef enum orion_status {
    ORION_OK                 = 0,
    ORION_ERR_INVALID_ARG    = -1,  /* a parameter is out of its domain      */
    ORION_ERR_NOMEM          = -2,  /* an allocation failed                   */
    ORION_ERR_IO             = -3,  /* open/read/write/mmap failed            */
    ORION_ERR_FORMAT         = -4,  /* a file or request is malformed         */
    ORION_ERR_UNSUPPORTED    = -5,  /* valid, but not something we support    */
    ORION_ERR_RANGE          = -6,  /* a size, count or offset is out of range */
    ORION_ERR_CANCELLED      = -7,  /* the caller cancelled the operation     */
    ORION_ERR_BUSY           = -8,  /* resource in use                        */
    ORION_ERR_NOT_FOUND      = -9,  /* no such model, tensor, key or file     */
    ORION_ERR_LIMIT          = -10, /* a configured limit (memory, size) hit  */
    ORION_ERR_INTERNAL       = -11, /* a bug in orion: please report          */
} orion_status;

/* Short English name of a status code ("out of memory"). Never NULL. */
const char *orion_status_str(orion_status status);

/* The message left by the last failing orion call on this thread, e.g.
 * "model.gguf: tensor 'blk.0.attn_q.weight': offset 123456 out of range".
 * Returns "" when no call has failed. Valid until the next orion call on this
 * thread. Thread-safe (the message is thread-local). */
const char *orion_last_error(void);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum orion_log_level {
    ORION_LOG_DEBUG = 0,
    ORION_LOG_INFO  = 1,
    ORION_LOG_WARN  = 2,
    ORION_LOG_ERROR = 3,
    ORION_LOG_NONE  = 4,
} orion_log_level;

/* Receives one message (no trailing newline). Called from whichever thread
 * logged; the callback must be thread-safe. */
typedef void (*orion_log_fn)(orion_log_level level, const char *msg, void *user);

/* Sets the log callback and the lowest level that reaches it. fn == NULL
 * silences the library (the default). Thread-safe. */
void orion_log_set(orion_log_fn fn, orion_log_level min_level, void *user);

/* A ready-made callback that writes "orion: LEVEL: msg" lines to stderr. */
void orion_log_to_stderr(orion_log_level level, const char *msg, void *user);

/* ------------------------------------------------------------------------ */
/* Memory accounting                                                         */
/* ------------------------------------------------------------------------ */

/* All heap memory orion allocates goes through one counting allocator. */
typedef struct orion_mem_stats {
    size_t   bytes_in_use;  /* live heap bytes allocated by orion            */
    size_t   bytes_peak;    /* high-water mark of bytes_in_use               */
    uint64_t n_allocs;      /* allocations made so far                       */
    uint64_t n_frees;       /* frees made so far                             */
    uint64_t n_failed;      /* allocations that failed                       */
} orion_mem_stats;

/* Fills *out with a snapshot of the counters. Thread-safe. */
void orion_mem_get_stats(orion_mem_stats *out);

/* Resets bytes_peak to the current bytes_in_use. Thread-safe. */
void orion_mem_reset_peak(void);

/* ------------------------------------------------------------------------ */
/* Arena: bump allocator for per-request scratch                             */
/* ------------------------------------------------------------------------ */

/* An arena owns one block of `capacity` bytes taken at init; allocations
 * bump a pointer and are released all at once by orion_arena_reset() or by
 * rewinding to a mark. It never grows: an allocation that does not fit
 * returns NULL, so scratch is bounded and known at load. Not thread-safe. */
typedef struct orion_arena orion_arena;

/* Creates an arena of `capacity` bytes. *out is set on success. */
orion_status orion_arena_init(size_t capacity, orion_arena **out);
void         orion_arena_free(orion_arena *arena);

/* Returns `size` bytes aligned to `align` (a power of two, at most 4096), or
 * NULL if the arena is full (the message says how much was asked and left). */
void  *orion_arena_alloc(orion_arena *arena, size_t size, size_t align);
/* Current position, to rewind to later (frees everything allocated since). */
size_t orion_arena_mark(const orion_arena *arena);
void   orion_arena_rewind(orion_arena *arena, size_t mark);
void   orion_arena_reset(orion_arena *arena);
size_t orion_arena_used(const orion_arena *arena);
size_t orion_arena_peak(const orion_arena *arena);
size_t orion_arena_capacity(const orion_arena *arena);

/* ------------------------------------------------------------------------ */
/* CPU features and kernel selection                                         */
/* ------------------------------------------------------------------------ */

typedef enum orion_cpu_feature {
    ORION_CPU_SSE3        = 1u << 0,
    ORION_CPU_SSSE3       = 1u << 1,
    ORION_CPU_SSE41       = 1u << 2,
    ORION_CPU_AVX         = 1u << 3,
    ORION_CPU_AVX2        = 1u << 4,
    ORION_CPU_FMA         = 1u << 5,
    ORION_CPU_F16C        = 1u << 6,
    ORION_CPU_AVX512F     = 1u << 7,
    ORION_CPU_AVX512BW    = 1u << 8,
    ORION_CPU_AVX512VNNI  = 1u << 9,
    ORION_CPU_AVX512BF16  = 1u << 10,
    ORION_CPU_AVXVNNI     = 1u << 11,
    ORION_CPU_NEON        = 1u << 16,
    ORION_CPU_DOTPROD     = 1u << 17,
} orion_cpu_feature;

/* Bit set of orion_cpu_feature found on this CPU (and enabled by the OS).
 * Detected once. Thread-safe. */
uint32_t orion_cpu_features(void);

/* Writes the feature names ("avx2 fma f16c ...") into buf. Returns buf. */
char *orion_cpu_features_str(uint32_t features, char *buf, size_t size);

/* Name of the kernel set chosen at start-up: "avx2" or "ref". The choice is
 * made once from the CPU features; ORION_FORCE_REF=1 in the environment
 * forces "ref", the plain-C reference kernels. Thread-safe. */
const char *orion_kernels_name(void);

/* Number of CPUs this process may run on (sched_getaffinity). */
int orion_cpu_count(void);

/* ------------------------------------------------------------------------ */
/* Thread pool                                                               */
/* ------------------------------------------------------------------------ */

/* A persistent pool of worker threads. orion_threadpool_run() calls a task on
 * every thread with (ith, nth) so the task splits its own work; the calling
 * thread takes part as ith == 0, and the call returns when all are done.
 * Workers spin briefly between tasks, then sleep. One run at a time: run() is
 * not re-entrant and must be called from one thread at a time. */
typedef struct orion_threadpool orion_threadpool;

typedef struct orion_threadpool_params {
    int n_threads;  /* total threads including the caller; 0 = orion_cpu_count() */
    int spin_us;    /* how long idle workers spin before sleeping (default 200) */
} orion_threadpool_params;

typedef void (*orion_task_fn)(void *arg, int ith, int nth);

orion_threadpool_params orion_threadpool_default_params(void);
orion_status orion_threadpool_init(const orion_threadpool_params *params,
                                   orion_threadpool **out);
void         orion_threadpool_free(orion_threadpool *pool);
int          orion_threadpool_n_threads(const orion_threadpool *pool);
/* Runs fn(arg, ith, nth) for ith in [0, nth) and waits. pool == NULL runs
 * fn(arg, 0, 1) on the caller. */
void         orion_threadpool_run(orion_threadpool *pool, orion_task_fn fn, void *arg);

/* ------------------------------------------------------------------------ */
/* Tensor types (same ids and block layouts as GGUF / ggml)                  */
/* ------------------------------------------------------------------------ */

typedef enum orion_type {
    ORION_TYPE_F32  = 0,
    ORION_TYPE_F16  = 1,
    ORION_TYPE_Q4_0 = 2,   /* 32 weights: f16 scale d, 16 bytes of nibbles; w = d*(q-8) */
    ORION_TYPE_Q4_1 = 3,   /* 32 weights: f16 d, f16 min m, 16 bytes;     w = d*q + m  */
    ORION_TYPE_Q8_0 = 8,   /* 32 weights: f16 scale d, 32 int8;           w = d*q      */
    ORION_TYPE_BF16 = 30,
    ORION_TYPE_COUNT = 31  /* one past the largest id (array sizing only) */
} orion_type;

/* True for the types above. */
bool        orion_type_is_supported(int type);
/* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"; "?" for others. */
const char *orion_type_name(orion_type type);
/* Parses a name as printed by orion_type_name (case-insensitive). */
orion_status orion_type_from_name(const char *name, orion_type *out);
/* Elements per block (1 for float types, 32 for the quantized ones). */
int64_t     orion_type_block_elems(orion_type type);
/* Bytes per block. */
size_t      orion_type_block_bytes(orion_type type);
/* Bytes of a row of n elements; n must be a multiple of the block size
 * (returns 0 otherwise). */
size_t      orion_type_row_bytes(orion_type type, int64_t n);
/* Bits per weight, e.g. 4.5 for q4_0. */
double      orion_type_bits_per_weight(orion_type type);

/* f16 and bf16 scalars (IEEE binary16; bfloat16 rounded to nearest even,
 * NaN kept quiet). Exact and thread-safe. */
float    orion_fp16_to_fp32(uint16_t h);
uint16_t orion_fp32_to_fp16(float f);
float    orion_bf16_to_fp32(uint16_t h);
uint16_t orion_fp32_to_bf16(float f);

/* ------------------------------------------------------------------------ */
/* Quantization                                                              */
/* ------------------------------------------------------------------------ */

typedef struct orion_quant_params {
    /* false: the reference rule (same bytes as llama.cpp's reference).
     * true: per block, search the scale (and minimum) that minimizes the
     * (importance-weighted) squared error. */
    bool         calibrate;
    /* Optional per-column importance, n_per_row values (e.g. mean squared
     * activations); NULL weighs every column equally. Used with calibrate. */
    const float *importance;
} orion_quant_params;

orion_quant_params orion_quant_default_params(void);

/* Converts n_rows rows of n_per_row floats (row-major) from src into dst in
 * `type`. dst must hold n_rows * orion_type_row_bytes(type, n_per_row) bytes.
 * n_per_row must be a multiple of the type's block size. Thread-safe. */
orion_status orion_quantize(orion_type type, const float *src, void *dst,
                            int64_t n_rows, int64_t n_per_row,
                            const orion_quant_params *params);

/* Converts n elements (a multiple of the block size) back to floats. */
orion_status orion_dequantize(orion_type type, const void *src, float *dst, int64_t n);

/* ------------------------------------------------------------------------ */
/* Matrix products                                                           */
/* ------------------------------------------------------------------------ */

/* y[b][o] = sum_i W[o][i] * x[b][i] for b < n_batch, o < n_out.
 *   W: n_out rows of n_in weights in `wtype`, row-major as GGUF stores them
 *      (n_out * orion_type_row_bytes(wtype, n_in) bytes);
 *   x: n_batch rows of n_in floats; y: n_batch rows of n_out floats.
 * Batch 1 runs as a matrix-vector product streaming W once; larger batches
 * run a cache-blocked GEMM. Quantized weights multiply activations that are
 * quantized to 8 bits on the fly (q8-style, 32 per block). Work is split on
 * `pool` (NULL = the calling thread only). `scratch` is an arena that
 * supplies temporary buffers (NULL = the library's counting heap).
 * Returns ORION_ERR_NOMEM when scratch is too small. */
orion_status orion_matmul(orion_threadpool *pool, orion_arena *scratch,
                          orion_type wtype, const void *w, int64_t n_out, int64_t n_in,
                          const float *x, int64_t n_batch, float *y);

/* Scratch bytes orion_matmul needs for this shape (for sizing arenas). */
size_t orion_matmul_scratch_bytes(orion_type wtype, int64_t n_out, int64_t n_in,
                                  int64_t n_batch, int n_threads);


/* ------------------------------------------------------------------------ */
/* GGUF files                                                                */
/* ------------------------------------------------------------------------ */

/* A GGUF file (v2 or v3, little-endian) opened read-only. The file is mapped
 * with mmap and every string and tensor points into the mapping: nothing is
 * copied. The file is treated as hostile: every count, length, dimension and
 * offset is checked against the file size and for overflow before use, and a
 * bad file gives ORION_ERR_FORMAT (or _UNSUPPORTED) with a message naming
 * the field and byte offset. A handle may be read from many threads at once. */
typedef struct orion_gguf orion_gguf;

typedef enum orion_gguf_type {
    ORION_GGUF_U8 = 0,  ORION_GGUF_I8 = 1,   ORION_GGUF_U16 = 2,  ORION_GGUF_I16 = 3,
    ORION_GGUF_U32 = 4, ORION_GGUF_I32 = 5,  ORION_GGUF_F32 = 6,  ORION_GGUF_BOOL = 7,
    ORION_GGUF_STRING = 8, ORION_GGUF_ARRAY = 9, ORION_GGUF_U64 = 10, ORION_GGUF_I64 = 11,
    ORION_GGUF_F64 = 12,
} orion_gguf_type;

/* One metadata value. Scalars are widened into u64 / i64 / f64 / b (the
 * field that matches `type`'s kind). Strings point into the file and are NOT
 * NUL-terminated. Arrays of numbers expose `raw`, count packed little-endian
 * elements of elem_type (possibly unaligned: read with memcpy or the
 * orion_gguf_array_* helpers); arrays of strings or arrays also have `items`. */
typedef struct orion_gguf_value {
    orion_gguf_type type;
    union {
        uint64_t u64;
        int64_t  i64;
        double   f64;
        bool     b;
        struct { const char *ptr; uint64_t len; } str;
        struct {
            orion_gguf_type                elem_type;
            uint64_t                       count;
            const void                    *raw;
            const struct orion_gguf_value *items;  /* NULL for number arrays */
        } arr;
    } v;
} orion_gguf_value;

typedef struct orion_gguf_tensor {
    const char *name;       /* NUL-terminated */
    orion_type  type;
    int         n_dims;     /* 1..4 */
    int64_t     ne[4];      /* elements per dimension, ne[0] = row length; unused = 1 */
    int64_t     n_elems;
    uint64_t    offset;     /* from the start of the data section */
    size_t      n_bytes;
    const void *data;       /* points into the mapping */
} orion_gguf_tensor;

/* Opens and validates `path`. *out is set on success. */
orion_status orion_gguf_open(const char *path, orion_gguf **out);
/* Same, over a caller's buffer that must outlive the handle (fuzzers, tests). */
orion_status orion_gguf_open_memory(const void *data, size_t size, orion_gguf **out);
void         orion_gguf_free(orion_gguf *gguf);

uint32_t     orion_gguf_version(const orion_gguf *gguf);
size_t       orion_gguf_alignment(const orion_gguf *gguf);
size_t       orion_gguf_file_size(const orion_gguf *gguf);
size_t       orion_gguf_data_offset(const orion_gguf *gguf);   /* start of tensor data */

int64_t                 orion_gguf_n_kv(const orion_gguf *gguf);
const char             *orion_gguf_kv_key(const orion_gguf *gguf, int64_t i);
const orion_gguf_value *orion_gguf_kv_value(const orion_gguf *gguf, int64_t i);
/* The value of `key`, or NULL when absent. */
const orion_gguf_value *orion_gguf_get(const orion_gguf *gguf, const char *key);

/* Typed look-ups: ORION_ERR_NOT_FOUND when absent, ORION_ERR_FORMAT when the
 * stored type does not convert (a negative number to unsigned, a string to a
 * number, ...). Integer getters accept any integer type in range; get_f64
 * accepts any number. get_str copies at most size-1 bytes plus a NUL. */
orion_status orion_gguf_get_u64(const orion_gguf *gguf, const char *key, uint64_t *out);
orion_status orion_gguf_get_i64(const orion_gguf *gguf, const char *key, int64_t *out);
orion_status orion_gguf_get_f64(const orion_gguf *gguf, const char *key, double *out);
orion_status orion_gguf_get_bool(const orion_gguf *gguf, const char *key, bool *out);
orion_status orion_gguf_get_str(const orion_gguf *gguf, const char *key, char *buf, size_t size);

/* Element i of a number array as double / int64 (any numeric elem_type). */
double   orion_gguf_array_f64(const orion_gguf_value *arr, uint64_t i);
int64_t  orion_gguf_array_i64(const orion_gguf_value *arr, uint64_t i);

int64_t                  orion_gguf_n_tensors(const orion_gguf *gguf);
const orion_gguf_tensor *orion_gguf_tensor_at(const orion_gguf *gguf, int64_t i);
const orion_gguf_tensor *orion_gguf_find_tensor(const orion_gguf *gguf, const char *name);

/* Name of a metadata type ("u32", "string", "array", ...). */
const char *orion_gguf_type_name(orion_gguf_type type);

/* ---- writing ---- */

/* Builds a GGUF v3 file in memory (metadata) and writes it with the tensor
 * data the caller supplies. Keys keep the order they were first set in; a
 * key set twice keeps its place and takes the new value. Tensor data is not
 * copied: it must stay valid until orion_gguf_writer_write returns. */
typedef struct orion_gguf_writer orion_gguf_writer;

orion_status orion_gguf_writer_init(orion_gguf_writer **out);
void         orion_gguf_writer_free(orion_gguf_writer *w);
/* Deep-copies `value` (strings and nested arrays included) under `key`. */
orion_status orion_gguf_writer_set(orion_gguf_writer *w, const char *key, const orion_gguf_value *value);
orion_status orion_gguf_writer_set_u32(orion_gguf_writer *w, const char *key, uint32_t v);
orion_status orion_gguf_writer_set_i32(orion_gguf_writer *w, const char *key, int32_t v);
orion_status orion_gguf_writer_set_u64(orion_gguf_writer *w, const char *key, uint64_t v);
orion_status orion_gguf_writer_set_f32(orion_gguf_writer *w, const char *key, float v);
orion_status orion_gguf_writer_set_bool(orion_gguf_writer *w, const char *key, bool v);
orion_status orion_gguf_writer_set_str(orion_gguf_writer *w, const char *key, const char *v);
/* An array of n strings. */
orion_status orion_gguf_writer_set_str_array(orion_gguf_writer *w, const char *key,
                                             const char *const *strs, uint64_t n);
/* An array of n numbers of elem_type (U8..F64 but not STRING/ARRAY), packed
 * little-endian in `data`. */
orion_status orion_gguf_writer_set_array(orion_gguf_writer *w, const char *key,
                                         orion_gguf_type elem_type, const void *data, uint64_t n);
/* Adds a tensor: ne[0] is the row length (a multiple of the type's block
 * size); data holds orion_type_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3]. */
orion_status orion_gguf_writer_add_tensor(orion_gguf_writer *w, const char *name, orion_type type,
                                          int n_dims, const int64_t *ne, const void *data);
/* Sets general.alignment (a power of two, default 32). */
orion_status orion_gguf_writer_set_alignment(orion_gguf_writer *w, uint32_t alignment);
/* Writes the file (to PATH.tmp, then renamed over PATH). */
orion_status orion_gguf_writer_write(orion_gguf_writer *w, const char *path);


/* ------------------------------------------------------------------------ */
/* Converting and quantizing whole models                                    */
/* ------------------------------------------------------------------------ */

/* What happened to one tensor. */
typedef struct orion_tensor_report {
    const char *name;
    orion_type  from, to;
    int64_t     n_elems;
    size_t      bytes_in, bytes_out;
    double      rmse;     /* RMS of (stored value - source value); 0 when exact */
    double      rel_err;  /* rmse / RMS of the source values */
} orion_tensor_report;

typedef struct orion_convert_params {
    /* Target type of the weight matrices; -1 keeps each tensor's type. The
     * mixed-precision rule (docs/quantization.md): 1-D tensors (norms,
     * biases) stay f32; token_embd.weight and output.weight are stored at
     * q8_0 when the target is smaller than q8_0 (unless keep_embd_q8 is
     * false); a matrix whose rows are not a multiple of 32 falls back to f16
     * when the target is a 32-block type. */
    int          type;
    bool         keep_embd_q8;  /* default true */
    bool         calibrate;     /* calibrated quantizer (see orion_quant_params) */
    /* Per-column importance from llama.cpp's imatrix file (legacy binary
     * format: mean squared activations per input column); NULL for none. */
    const char  *imatrix;
    /* llama2.c sources: the tokenizer.bin to embed (NULL: no vocabulary). */
    const char  *tokenizer;
    int          n_threads;     /* 0 = all CPUs */
    /* Called as each tensor is written; may be NULL. */
    void       (*on_tensor)(void *user, int64_t index, int64_t count, const orion_tensor_report *report);
    void        *user;
} orion_convert_params;

orion_convert_params orion_convert_default_params(void);

/* Converts `src` to a GGUF file `dst`. src may be a GGUF file (re-typed:
 * this is `orion quantize`), a llama2.c checkpoint, or a Hugging Face model
 * directory (config.json, model.safetensors or sharded safetensors with
 * model.safetensors.index.json, and the tokenizer files) of a BertModel,
 * LlamaForCausalLM or MistralForCausalLM, written with llama.cpp's tensor
 * names and metadata keys (params->tokenizer is not used). Tensors are produced
 * one at a time while writing, so memory holds one output tensor, not the
 * model. dst is replaced only when complete. */
orion_status orion_convert(const char *src, const char *dst, const orion_convert_params *params);


/* ------------------------------------------------------------------------ */
/* LLM: Llama / Mistral decoders                                             */
/* ------------------------------------------------------------------------ */

/* A decoder loaded from a GGUF file (architecture "llama"; Mistral files
 * use it too) or a llama2.c checkpoint. Weights stay in the mapped file in
 * their stored type. The KV cache is allocated once at load for n_ctx
 * positions; scratch comes from an arena sized at load. One thread at a time
 * per handle; several handles may share nothing but the file mapping. */
typedef struct orion_llm orion_llm;

typedef struct orion_llm_params {
    int         n_ctx;       /* KV cache positions; 0 = the model's context length (capped at 4096) */
    int         n_batch;     /* max tokens per prefill step (default 256) */
    int         n_threads;   /* 0 = all CPUs */
    orion_type  kv_type;     /* ORION_TYPE_F16 (default), ORION_TYPE_F32, or ORION_TYPE_Q8_0 (head size
                                a multiple of 32; 34 bytes per 32 values: 47% less than f16) */
    const char *tokenizer;   /* llama2.c checkpoints: path of tokenizer.bin */
} orion_llm_params;

typedef struct orion_llm_info {
    char     arch[32];
    int      n_vocab, n_ctx, n_ctx_train, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_rot;
    int      sliding_window;  /* 0 = none */
    float    rope_freq_base, rms_eps;
    float    rope_freq_scale;  /* 1 / linear rope scaling factor (1 = none) */
    int32_t  bos, eos;
    size_t   weight_bytes;    /* tensor bytes in the mapping */
    size_t   kv_bytes;        /* KV cache */
    size_t   scratch_bytes;   /* arena capacity */
} orion_llm_info;

orion_llm_params orion_llm_default_params(void);
orion_status     orion_llm_load(const char *path, const orion_llm_params *params, orion_llm **out);
void             orion_llm_free(orion_llm *llm);
void             orion_llm_get_info(const orion_llm *llm, orion_llm_info *out);

/* Tokenizes text (len bytes, UTF-8) with the model's SentencePiece vocabulary
 * as llama.cpp does (space prefix, highest-score merges, byte fallback).
 * Writes at most n_max ids; *n_out gets the number needed (> n_max means the
 * buffer was too small: ORION_ERR_RANGE). add_bos prepends BOS. */
orion_status orion_llm_tokenize(const orion_llm *llm, const char *text, size_t len, bool add_bos,
                                int32_t *tokens, int32_t n_max, int32_t *n_out);
/* Same, but control and user-defined pieces written in the text ("<s>",
 * "</s>", "<|im_start|>") become their ids: for chat-formatted prompts. */
orion_status orion_llm_tokenize_special(const orion_llm *llm, const char *text, size_t len, bool add_bos,
                                        int32_t *tokens, int32_t n_max, int32_t *n_out);
/* The bytes a token stands for (byte tokens decoded, U+2581 as a space,
 * control tokens empty). Writes at most size bytes, returns the length. */
size_t orion_llm_token_to_piece(const orion_llm *llm, int32_t token, char *buf, size_t size);

/* Runs n tokens at positions [pos, pos + n) through the decoder, appending
 * them to the KV cache (entries at >= pos are overwritten). logits: NULL,
 * or n_vocab floats for the last token, or (all_logits) n * n_vocab floats.
 * Errors: ORION_ERR_RANGE past n_ctx, ORION_ERR_INVALID_ARG for bad ids. */
orion_status orion_llm_eval(orion_llm *llm, const int32_t *tokens, int32_t n, int32_t pos,
                            float *logits, bool all_logits);

/* Called before every matrix product with its input: n_rows rows of n_in
 * floats multiplying the weight tensor `weight_name` (GGUF models only).
 * For collecting activation statistics (orion imatrix). NULL removes it. */
typedef void (*orion_llm_observer)(void *user, const char *weight_name, const float *x, int64_t n_rows,
                                   int64_t n_in);
void orion_llm_set_observer(orion_llm *llm, orion_llm_observer fn, void *user);

/* ---- sampling ---- */

typedef struct orion_sampler_params {
    float    temperature;     /* 0 = greedy (argmax) */
    int      top_k;           /* 0 = off */
    float    top_p;           /* 1 = off */
    float    min_p;           /* 0 = off */
    float    repeat_penalty;  /* 1 = off */
    int      repeat_last_n;   /* tokens of history the penalty looks at */
    uint64_t seed;
} orion_sampler_params;

typedef struct orion_sampler orion_sampler;

orion_sampler_params orion_sampler_default_params(void);
orion_status orion_sampler_init(const orion_sampler_params *params, int n_vocab, orion_sampler **out);
void         orion_sampler_free(orion_sampler *s);
/* Picks a token from logits (n_vocab, modified in place by the penalty and
 * temperature); history holds the previous n_history tokens. */
int32_t      orion_sampler_sample(orion_sampler *s, float *logits, const int32_t *history, int n_history);


/* ---- quality measures ---- */

typedef struct orion_perplexity_result {
    double  ppl;          /* exp(mean negative log-likelihood) */
    double  nll_mean;     /* mean negative log-likelihood (nats) */
    double  nll_stderr;   /* its standard error */
    int64_t n_scored;     /* positions scored */
    int     n_chunks;
    /* with a base model (llama.cpp's quantization measures): */
    bool    has_base;
    double  kl_mean;      /* mean KL(base || model) of the next-token distributions */
    double  kl_stderr;
    double  kl_max;
    double  top1_agree;   /* share of positions where both argmaxes agree */
    double  base_ppl;
} orion_perplexity_result;

/* Perplexity of `llm` on text, as llama.cpp computes it: the text is
 * tokenized once and cut into chunks of n_chunk tokens, each starting with
 * BOS; the second half of each chunk is scored. With `base` (same
 * vocabulary), also KL divergence and top-1 agreement against it. n_chunk is
 * clamped to the models' contexts. ORION_ERR_RANGE if the text is shorter
 * than one chunk of 16 tokens. */
orion_status orion_llm_perplexity(orion_llm *llm, orion_llm *base, const char *text, size_t len, int n_chunk,
                                  orion_perplexity_result *out);


/* ---- chat prompts ---- */

typedef enum orion_chat_template {
    ORION_CHAT_AUTO = 0,  /* from the model's tokenizer.chat_template, else llama2 */
    ORION_CHAT_LLAMA2,    /* <s>[INST] <<SYS>>..<</SYS>> user [/INST] answer </s> */
    ORION_CHAT_MISTRAL,   /* <s>[INST] user [/INST]answer</s>[INST] ... */
    ORION_CHAT_CHATML,    /* <|im_start|>role\ncontent<|im_end|>\n */
} orion_chat_template;

typedef struct orion_chat_message {
    const char *role;     /* "system", "user" or "assistant" */
    const char *content;
} orion_chat_message;

/* Parses "llama2", "mistral", "chatml" or "auto". */
orion_status orion_chat_template_from_name(const char *name, orion_chat_template *out);
const char  *orion_chat_template_name(orion_chat_template t);
/* The template a model asks for (its GGUF tokenizer.chat_template, matched
 * by its markers), or ORION_CHAT_LLAMA2 when it names none. */
orion_chat_template orion_llm_chat_template(const orion_llm *llm);

/* Writes the conversation as prompt text, special pieces spelled out (to be
 * tokenized with orion_llm_tokenize_special and no extra BOS), ending with
 * the assistant's cue when add_assistant. Writes at most size bytes plus a
 * NUL; *needed gets the full length. ORION_ERR_RANGE when it does not fit,
 * ORION_ERR_INVALID_ARG for an unknown role. */
orion_status orion_chat_format(orion_chat_template t, const orion_chat_message *msgs, size_t n_msgs,
                               bool add_assistant, char *buf, size_t size, size_t *needed);

/* ---- sentence embeddings ---- */

/* A sentence encoder loaded from a GGUF file: architecture "bert" (the
 * MiniLM family, converted from a sentence-transformers directory) or
 * "use-lite" (the Universal Sentence Encoder lite, converted from its TF.js
 * graph). Weights stay in the mapped file in their stored type. One thread
 * at a time per handle. */
typedef struct orion_embedder orion_embedder;

typedef enum orion_pooling {
    ORION_POOL_DEFAULT = 0,  /* what the file says */
    ORION_POOL_MEAN,         /* mean over the real (unpadded) tokens */
    ORION_POOL_CLS,          /* the first token's vector */
} orion_pooling;

typedef struct orion_embed_params {
    int           n_threads;   /* 0 = all CPUs */
    int           max_tokens;  /* truncation, special tokens included; 0 = the model's own (MiniLM: 256) */
    int           batch_size;  /* texts per forward pass (default 32) */
    orion_pooling pooling;
    int           normalize;   /* -1 = what the file says, 0 = off, 1 = L2-normalize */
} orion_embed_params;

typedef struct orion_embed_info {
    char    arch[32];
    char    name[96];
    int     dim;              /* length of an output vector */
    int     n_layer, n_head, n_embd, n_ff, n_vocab, n_ctx_train;
    int     max_tokens;       /* the truncation in force */
    orion_pooling pooling;
    bool    normalize;
    orion_type type;          /* type of the largest weight matrices */
    size_t  weight_bytes;     /* tensor bytes in the mapping */
    size_t  scratch_bytes;    /* arena capacity for one batch */
} orion_embed_info;

orion_embed_params orion_embed_default_params(void);
orion_status orion_embed_load(const char *path, const orion_embed_params *params, orion_embedder **out);
void         orion_embed_free(orion_embedder *e);
void         orion_embed_get_info(const orion_embedder *e, orion_embed_info *out);

/* Token ids the model sees for a text (special tokens included, truncated
 * to max_tokens). Writes at most n_max ids; *n_out gets the number needed
 * (> n_max: ORION_ERR_RANGE). */
orion_status orion_embed_tokenize(const orion_embedder *e, const char *text, size_t len, int32_t *ids,
                                  int32_t n_max, int32_t *n_out);

/* Embeds n texts (lens[i] bytes of UTF-8 each; lens NULL: NUL-terminated)
 * into out (n * dim floats, in input order). Texts are sorted by length and
 * run batch_size at a time, one padded forward pass per batch. */
orion_status orion_embed_texts(orion_embedder *e, const char *const *texts, const size_t *lens, int32_t n,
                               float *out);
/* Same from token ids (as orion_embed_tokenize gives them). */
orion_status orion_embed_tokens(orion_embedder *e, const int32_t *const *ids, const int32_t *n_ids, int32_t n,
                                float *out);

/* Collects the input of every matrix product (as orion_llm_set_observer),
 * for calibrating quantized encoders. NULL removes it. */
void orion_embed_set_observer(orion_embedder *e, orion_llm_observer fn, void *user);

#ifdef __cplusplus
}
#endif
#endif /* ORION_H */
