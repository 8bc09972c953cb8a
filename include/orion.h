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
/* Whether `path` can be read and starts with the GGUF magic (nothing else
 * is checked: orion_gguf_open validates). For choosing a reader. */
bool         orion_gguf_is_file(const char *path);
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
    /* With a Hessian H (see orion_convert_params.hessian): the relative
     * output error sqrt(sum (w - q)^T H (w - q) / sum w^T H w) over the
     * rows, i.e. of X W^T on the calibration inputs; -1 without one. */
    double      out_rel_err;
    bool        gptq;     /* quantized by GPTQ */
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
    /* Per-tensor types that override the rule above: "PATTERN=TYPE[,...]",
     * e.g. "attn_qkv=q8_0,pool_dense=f16"; the first PATTERN that occurs in
     * a tensor's name (a substring) gives its type. 1-D tensors stay f32 and
     * rows that do not fill whole blocks still fall back to f16. NULL: none. */
    const char  *tensor_types;
    /* llama2.c sources: the tokenizer.bin to embed (NULL: no vocabulary). */
    const char  *tokenizer;
    /* GPTQ (docs/quantization.md): NULL, or returns the Hessian of the
     * weight matrix `tensor_name`: H = X^T X over the calibration inputs X
     * (rows of n_in floats) that the matrix multiplies, n_in x n_in doubles,
     * row-major, of which the upper triangle (j >= i) is read; or NULL when
     * there is none. Called once per tensor, on the thread that called
     * orion_convert; the memory must stay valid until orion_convert returns
     * (it is not freed). A 2-D tensor whose target type (after the rule and
     * tensor_types) is q4_0, q4_1 or q8_0 and that has a Hessian is
     * quantized by GPTQ, to ordinary blocks; token_embd.weight never is (it
     * is read a row per token, not multiplied). With calibrate, GPTQ picks
     * each block's scale (and minimum) by the calibrated search, else by
     * the reference rule. Errors from GPTQ (a Hessian that no damping makes
     * positive definite, non-finite weights) fail the conversion. */
    const double *(*hessian)(void *user, const char *tensor_name, int64_t n_in);
    void         *hessian_user;
    /* GPTQ damping: this fraction of H's mean diagonal is added to its
     * diagonal (default 0.01); must be >= 0. */
    double        gptq_damp;
    int          n_threads;     /* 0 = all CPUs */
    /* Called as each tensor is written; may be NULL. */
    void       (*on_tensor)(void *user, int64_t index, int64_t count, const orion_tensor_report *report);
    void        *user;
    /* Hugging Face LLaVA directories (LlavaForConditionalGeneration) make
     * two files: the language model at dst and the CLIP image encoder +
     * projector, in llama.cpp's mmproj layout (docs/vision.md), here; NULL:
     * orion_convert_mmproj_path(dst). Not used for other sources. */
    const char  *mmproj;
} orion_convert_params;
/* The default mmproj path for dst: dst without a ".gguf" suffix, plus
 * ".mmproj.gguf" ("llava.gguf" -> "llava.mmproj.gguf"). ORION_ERR_RANGE
 * when it does not fit in size bytes. Thread-safe. */
orion_status orion_convert_mmproj_path(const char *dst, char *buf, size_t size);

orion_convert_params orion_convert_default_params(void);

/* Converts `src` to a GGUF file `dst`. src may be a GGUF file (re-typed:
 * this is `orion quantize`), a llama2.c checkpoint, or a Hugging Face model
 * directory (config.json, model.safetensors or sharded safetensors with
 * model.safetensors.index.json, and the tokenizer files) of a BertModel,
 * LlamaForCausalLM, MistralForCausalLM or LlavaForConditionalGeneration
 * (two files: see orion_convert_params.mmproj), written with llama.cpp's tensor
 * names and metadata keys (params->tokenizer is not used), or a TF.js
 * graph-model directory of the Universal Sentence Encoder lite (model.json,
 * its weight shards and vocab.json; docs/use-lite.md). Tensors are produced
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
/* Same as orion_llm_eval, with input vectors in place of token ids: emb
 * holds n rows of n_embd floats that enter the first layer where a token's
 * embedding row would (image embeddings from orion_clip_encode, spliced
 * into a prompt). The KV cache holds them like any other position.
 * Errors: ORION_ERR_RANGE past n_ctx, ORION_ERR_INVALID_ARG (NULL, n < 0,
 * a non-finite value). */
orion_status orion_llm_eval_embeddings(orion_llm *llm, const float *emb, int32_t n, int32_t pos,
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
    ORION_CHAT_VICUNA,    /* <s>system USER: user ASSISTANT: answer</s>USER: ... (LLaVA-1.5) */
} orion_chat_template;

typedef struct orion_chat_message {
    const char *role;     /* "system", "user" or "assistant" */
    const char *content;
} orion_chat_message;

/* Parses "llama2", "mistral", "chatml", "vicuna" or "auto". */
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


/* ------------------------------------------------------------------------ */
/* Vision: images, the CLIP image encoder, LLaVA prompts (docs/vision.md)    */
/* ------------------------------------------------------------------------ */

/* An 8-bit RGB image: rgb holds height rows of width pixels, 3 bytes each
 * (R, G, B), no padding. Owned by whoever the call that made it says. */
typedef struct orion_image {
    int32_t  width, height;
    uint8_t *rgb;            /* (height, width, 3) */
} orion_image;

/* Limits checked on the declared size before anything is allocated. */
typedef struct orion_image_limits {
    int32_t max_width, max_height;  /* default 16384 x 16384 */
    int64_t max_pixels;             /* width * height; default 1 << 26 (192 MiB of RGB) */
    size_t  max_bytes;              /* encoded size; default 64 MiB */
} orion_image_limits;

orion_image_limits orion_image_default_limits(void);

/* Decodes a PNG (libpng: any bit depth, palette, grey, alpha, interlaced), a
 * baseline/progressive JPEG (libjpeg-turbo: YCbCr, grey, CMYK/YCCK) or a
 * WebP (libwebp: lossy or lossless, not animated) into 8-bit RGB,
 * as Pillow's Image.open(..).convert("RGB") does: alpha is dropped, grey is
 * replicated, 16-bit samples keep their high byte, no gamma or EXIF
 * rotation. limits NULL: the defaults. *out (free with orion_image_free).
 * Errors: ORION_ERR_NOT_FOUND / ORION_ERR_IO (cannot read), ORION_ERR_FORMAT (not a
 * PNG/JPEG/WebP, truncated, corrupt), ORION_ERR_LIMIT (declared size over a limit),
 * ORION_ERR_UNSUPPORTED (animated WebP, an unknown JPEG colour space),
 * ORION_ERR_NOMEM. Thread-safe. */
orion_status orion_image_load(const char *path, const orion_image_limits *limits, orion_image **out);
orion_status orion_image_load_memory(const void *data, size_t size, const orion_image_limits *limits,
                                     orion_image **out);
/* A new image of width x height (pixels uninitialized); free with orion_image_free.
 * ORION_ERR_INVALID_ARG for a size <= 0, ORION_ERR_RANGE past 2^31 pixels. */
orion_status orion_image_new(int32_t width, int32_t height, orion_image **out);
void         orion_image_free(orion_image *img);

/* Pads to a square of side max(width, height) filled with `fill` (RGB), the
 * image centred with the offset rounded down, as LLaVA's expand2square. */
orion_status orion_image_pad_square(const orion_image *img, const uint8_t fill[3], orion_image **out);
/* Resizes with Pillow's BICUBIC filter (Image.resize(.., BICUBIC), Pillow
 * 9/10): a = -0.5, support widened by the scale when downscaling
 * (antialias), 22-bit fixed-point coefficients, horizontal pass then
 * vertical with 8-bit rounding between. Bit-exact with Pillow. */
orion_status orion_image_resize_bicubic(const orion_image *img, int32_t width, int32_t height, orion_image **out);

/* A CLIP vision transformer and its LLaVA projector from a llama.cpp mmproj
 * GGUF (general.architecture "clip", clip.vision.* keys, v.* and mm.0/mm.2
 * tensors). Weights stay mapped in their stored type (f32, f16, bf16, q8_0,
 * q4_0, q4_1). One thread at a time per handle. */
typedef struct orion_clip orion_clip;

typedef struct orion_clip_params {
    int n_threads;           /* 0 = all CPUs */
} orion_clip_params;

typedef struct orion_clip_info {
    int     image_size, patch_size, n_patches;  /* n_patches = (image_size / patch_size)^2 */
    int     n_embd, n_ff, n_head, n_layer;      /* the vision transformer */
    int     n_layer_used;    /* layers run: the feature layer (LLaVA: n_layer - 1) */
    int     n_mm_hidden;     /* projector: n_embd -> n_mm_hidden -> n_out */
    int     n_out;           /* length of one output vector (the decoder's n_embd) */
    bool    quick_gelu;      /* x * sigmoid(1.702 x) (CLIP); false: erf GELU */
    float   eps;
    float   image_mean[3], image_std[3];
    orion_type type;         /* type of the layers' matrices */
    size_t  weight_bytes;    /* tensor bytes used, in the mapping */
    size_t  scratch_bytes;   /* arenas */
} orion_clip_info;

orion_clip_params orion_clip_default_params(void);
/* Errors: ORION_ERR_IO, ORION_ERR_FORMAT (missing or misshapen tensor or
 * key), ORION_ERR_UNSUPPORTED (another projector type, several feature
 * layers), ORION_ERR_NOMEM. */
orion_status orion_clip_load(const char *path, const orion_clip_params *params, orion_clip **out);
void         orion_clip_free(orion_clip *clip);
void         orion_clip_get_info(const orion_clip *clip, orion_clip_info *out);

/* LLaVA-1.5's preprocessing: pad to square with the mean colour
 * (int(mean * 255) per channel), bicubic resize to image_size, x / 255,
 * (x - mean) / std. pixels: 3 * image_size^2 floats, channel-major (C, H, W)
 * as PyTorch's pixel_values. */
orion_status orion_clip_preprocess(const orion_clip *clip, const orion_image *img, float *pixels);
/* Runs the encoder and projector on preprocessed pixels: out gets n_patches
 * rows of n_out floats (class token dropped), patches in row-major order. */
orion_status orion_clip_encode_pixels(orion_clip *clip, const float *pixels, float *out);
/* preprocess + encode_pixels. */
orion_status orion_clip_encode(orion_clip *clip, const orion_image *img, float *out);

/* Evaluates a prompt with an image in it: the text before the first
 * "<image>" (tokenized with BOS when pos == 0, special pieces parsed), the
 * n_image image rows of image_emb (n_embd floats each), then the text after
 * it; each text part is tokenized on its own as orion_llm_tokenize_special
 * does (llama.cpp's llava does the same). Without "<image>" the image comes
 * first, then the text. Starts at position pos; *n_past gets the position after the
 * prompt; logits: NULL or n_vocab floats for the last position. text_tokens
 * (may be NULL) receives the text tokens, n_text_max at most, and
 * *n_text their count (for repetition penalties). Errors as
 * orion_llm_eval; ORION_ERR_RANGE when the prompt does not fit. */
orion_status orion_llava_eval_prompt(orion_llm *llm, const char *prompt, const float *image_emb, int32_t n_image,
                                     int32_t pos, float *logits, int32_t *n_past, int32_t *text_tokens,
                                     int32_t n_text_max, int32_t *n_text);
/* The same with several images: image k's n_rows[k] rows (images[k], n_embd
 * floats each) take the place of the k-th "<image>" of the prompt (tags
 * after the n_images-th stay text); the text parts between are tokenized
 * one by one as above, BOS first when add_bos and pos == 0 (false for a
 * chat-formatted prompt that spells "<s>" itself). With add_bos, one image
 * and one tag it evaluates exactly what orion_llava_eval_prompt does. seq (may be NULL)
 * gets, for up to seq_max positions from pos on, the token id or -1 for an
 * image row. Errors: ORION_ERR_INVALID_ARG (fewer tags than images, NULL
 * rows), ORION_ERR_LIMIT (more than 64 images), as orion_llm_eval
 * otherwise (ORION_ERR_RANGE when the prompt does not fit). */
orion_status orion_llava_eval_images(orion_llm *llm, const char *prompt, bool add_bos, const float *const *images,
                                     const int32_t *n_rows, int32_t n_images, int32_t pos, float *logits,
                                     int32_t *n_past, int32_t *seq, int32_t seq_max);
/* The two halves of orion_llava_eval_images, for callers that keep a KV
 * prefix (orion chat): orion_llava_positions turns the prompt into decoder
 * positions without evaluating anything: seq[i] is a token id, or -(k + 1)
 * for a row of image k (n_rows[k] rows in place of the k-th "<image>";
 * tags after the n_images-th stay text; text parts tokenized one by one,
 * BOS first when add_bos). ORION_ERR_RANGE past cap positions,
 * ORION_ERR_INVALID_ARG for fewer tags than images.
 * orion_llava_eval_positions evaluates entries [from, n) of such a seq at
 * positions pos + i (image rows from images[k], n_embd floats each);
 * logits: NULL or n_vocab floats for position n - 1. Errors as
 * orion_llm_eval. */
orion_status orion_llava_positions(const orion_llm *llm, const char *prompt, bool add_bos, int32_t n_images,
                                   const int32_t *n_rows, int32_t *seq, int32_t cap, int32_t *n_seq);
orion_status orion_llava_eval_positions(orion_llm *llm, const int32_t *seq, int32_t from, int32_t n, int32_t pos,
                                        const float *const *images, float *logits);

/* ------------------------------------------------------------------------ */
/* Service: embedding cache, model server, client (docs/service.md)          */
/* ------------------------------------------------------------------------ */

/* ---- embedding cache ---- */

/* A cache of embedding vectors keyed by (namespace, exact text). The
 * namespace names the model and every option that changes the vector
 * ("minilm|pool=mean|norm=1"); the text is the exact input bytes. An XXH3
 * hash selects the slot and the stored namespace and text confirm it, so a
 * hash collision never returns a wrong vector. Vectors are stored as IEEE
 * half floats (F16C where present) and returned as f32. Capacity is bounded
 * both in bytes (entry overhead, key and vector) and in entries. All calls
 * are thread-safe (one mutex per cache). */
typedef struct orion_cache orion_cache;

typedef enum orion_cache_policy {
    ORION_CACHE_WTINYLFU = 0, /* W-TinyLFU: 1% LRU window, then a count-min-sketch
                                 (with doorkeeper and aging) admission filter in
                                 front of a segmented LRU (20% probation, 80%
                                 protected). The default. */
    ORION_CACHE_LRU      = 1, /* plain least-recently-used */
    ORION_CACHE_SCORE    = 2, /* the seed's rule: evict the lowest access count /
                                 age, among 32 sampled entries */
} orion_cache_policy;

typedef struct orion_cache_params {
    size_t             max_bytes;    /* default 256 MiB; 0 = no byte bound */
    size_t             max_entries;  /* default 1M; 0 = no entry bound */
    orion_cache_policy policy;
} orion_cache_params;

typedef struct orion_cache_stats {
    uint64_t hits, misses;
    uint64_t inserts;      /* entries stored */
    uint64_t evictions;    /* entries removed to make room (or by shrink) */
    uint64_t rejections;   /* new entries the admission filter turned away */
    size_t   entries;
    size_t   bytes;        /* bytes held: entries, keys and f16 vectors */
    size_t   bytes_f32;    /* what the same entries would take with f32 vectors */
    size_t   max_bytes, max_entries;
} orion_cache_stats;

orion_cache_params orion_cache_default_params(void);
orion_status orion_cache_init(const orion_cache_params *params, orion_cache **out);
void         orion_cache_free(orion_cache *cache);
const char  *orion_cache_policy_name(orion_cache_policy policy);  /* "wtinylfu", "lru", "score" */
orion_status orion_cache_policy_from_name(const char *name, orion_cache_policy *out);

/* Looks up (ns, text[0..len)). On a hit writes dim floats to out and returns
 * true; a miss (or a stored vector of another dim) returns false and counts
 * the access for the admission filter. */
bool orion_cache_get(orion_cache *cache, const char *ns, const char *text, size_t len, float *out, int32_t dim);
/* Stores a copy of vec (dim floats, rounded to f16) under (ns, text). An
 * existing entry is replaced. The policy may evict others or refuse the new
 * one (not an error). ORION_ERR_NOMEM, ORION_ERR_INVALID_ARG. */
orion_status orion_cache_put(orion_cache *cache, const char *ns, const char *text, size_t len, const float *vec,
                             int32_t dim);
/* Lowers (or raises) the bounds and evicts down to them at once: for memory
 * pressure. 0 keeps a bound unchanged. */
void orion_cache_shrink(orion_cache *cache, size_t max_bytes, size_t max_entries);
/* Removes every entry of a namespace (ns NULL: every entry). */
void orion_cache_clear(orion_cache *cache, const char *ns);
void orion_cache_get_stats(orion_cache *cache, orion_cache_stats *out);

/* Writes every entry to `path` as a zstd-compressed snapshot with a checksum
 * (to PATH.tmp, then renamed). ORION_ERR_IO. */
orion_status orion_cache_save(orion_cache *cache, const char *path);
/* Adds the entries of a snapshot (within the bounds). A missing file is
 * ORION_ERR_NOT_FOUND; a damaged one (truncated, bit flips, wrong magic) is
 * ORION_ERR_FORMAT and leaves the cache as it was. *n_loaded may be NULL. */
orion_status orion_cache_load(orion_cache *cache, const char *path, size_t *n_loaded);

/* ---- model server ---- */

/* The shared model service (`orion serve`): HTTP/1.1 on a loopback port
 * and/or a Unix socket, OpenAI- and Ollama-compatible embedding and
 * generation endpoints, dynamic batching per model, the embedding cache,
 * Prometheus metrics, the model manager's events as server-sent events.
 * Models are held through a model manager (orion_manager_*): a request
 * pins its model with a lease, loading it on first use, and the manager
 * unloads idle models (keep_alive, the tier's idle delay, LRU, memory
 * pressure). docs/service.md lists the endpoints, limits and error bodies.
 * A server runs on its own threads; start/stop/free from one thread. */
typedef struct orion_server orion_server;

typedef struct orion_server_model {
    const char *id;    /* the name clients use ("use-lite", "minilm") */
    const char *path;  /* a GGUF file: a sentence encoder ("bert", "use-lite") or a decoder
                          ("llama", "mistral"), registered with the manager at the level of
                          its weights' type; or "hash:DIM[:DELAY_US]", the built-in test
                          model, which the server holds itself (outside the manager) */
} orion_server_model;

/* cache_bytes / cache_entries: size the cache from the manager's tier. */
#define ORION_CACHE_AUTO ((size_t)-1)

typedef struct orion_server_params {
    const char *host;          /* default "127.0.0.1"; NULL or "" with port < 0: no TCP */
    int         port;          /* default 11435; 0 = any free port (see orion_server_port) */
    const char *socket_path;   /* Unix socket to listen on too (NULL: none) */
    int         socket_mode;   /* default 0600 */
    const char *api_key;       /* bearer token required on every endpoint but /healthz (NULL: none) */
    const orion_server_model *models;  /* models served besides the registry's; models[0] is the default */
    int         n_models;
    const orion_server_model *projectors; /* LLaVA projectors (llama.cpp mmproj GGUF): {id of a decoder in
                                  `models`, projector path}; loaded, accounted and unloaded with that
                                  model, which then takes images (registry models: "mmproj") */
    int         n_projectors;
    bool        load_eagerly;  /* load every model at start (default true) */
    bool        prefault;      /* bring a model's whole file into memory when it loads, with progress
                                  events (default true); false maps it only and pages come in as they are
                                  used: less resident memory for models that touch part of their file
                                  (an encoder's token-embedding table), slower first requests */
    /* the model manager */
    const char *registry_path; /* a manager registry (orion_manager_load_registry): its models are served
                                  too, after `models` (NULL: none) */
    const char *config_path;   /* manager config: budget, level, idle unload, thresholds (NULL: none) */
    struct orion_manager *manager; /* a manager to use (borrowed: it must outlive the server; the server
                                  registers `models` in it and subscribes to it; config_path must then be
                                  NULL). NULL: the server makes its own. */
    /* limits */
    size_t      max_body;      /* bytes of a request body (default 4 MiB): 413 beyond; the generation
                                  endpoints of a server with image models take at least one image's
                                  worth (4/3 max_image_bytes + 1 MiB) */
    int         max_inputs;    /* inputs per request (default 2048): 400 beyond */
    int         max_tokens;    /* tokens per input (default 0: the model's own; the server's own manager
                                  loads encoders with it, a lent manager with its embed_max_tokens) */
    bool        truncate;      /* longer inputs: truncate (default true) or 400 */
    int         max_queue;     /* queued inputs per model before 503 (default 8192) */
    int         max_connections; /* default 256 */
    /* images in generation requests (models with a projector) */
    int         max_images;    /* per request (default 8, at most 64): 400 beyond */
    size_t      max_image_bytes; /* encoded bytes of one image (default 20 MiB): 400 beyond */
    bool        allow_remote_images; /* fetch http(s) image URLs with libcurl (default false: 400) */
    int         image_timeout_ms; /* a remote image fetch, all of it (default 10000) */
    /* dynamic batching */
    bool        batching;      /* default true; false: one request per forward pass */
    int         batch_tokens;  /* token budget of one gathered pass (default 8192) */
    int         batch_wait_us; /* how long the first request waits for company (default 2000) */
    int         n_threads;     /* threads of each model's forward pass (0 = all CPUs; the server's own
                                  manager loads models with it; extra generation slots: 1 when 0) */
    /* generation models (llama, mistral GGUF files) */
    int         gen_slots;     /* sequences generated at once, each with its own KV cache (default 2) */
    int         gen_ctx;       /* KV positions per sequence (0 = the file's, capped at 4096) */
    /* the embedding cache; under high memory pressure it shrinks to half, at critical to 1 MiB */
    size_t      cache_bytes;   /* default ORION_CACHE_AUTO: min(256 MiB, budget / 32), at least 1 MiB;
                                  0 disables the cache */
    size_t      cache_entries; /* default ORION_CACHE_AUTO: the bytes / 256 */
    orion_cache_policy cache_policy;
    const char *cache_path;    /* snapshot read at start, written at stop (NULL: none) */
} orion_server_params;

orion_server_params orion_server_default_params(void);
/* Makes (or takes) the manager, registers the models, loads them (with
 * load_eagerly), binds and starts serving. The params and the strings they
 * point to are copied. Errors: ORION_ERR_IO (bind, socket), manager,
 * registry and model load errors, ORION_ERR_INVALID_ARG. */
orion_status orion_server_start(const orion_server_params *params, orion_server **out);
/* The TCP port in use (useful with port 0), or -1 without TCP. */
int          orion_server_port(const orion_server *server);
/* Stops accepting, ends the /events streams, waits up to timeout_ms for
 * in-flight requests to finish, stops the threads, releases the models
 * (and frees the manager the server made) and writes the cache snapshot.
 * Idempotent. */
orion_status orion_server_stop(orion_server *server, int timeout_ms);
/* Stops (if running) and frees. NULL is a no-op. */
void         orion_server_free(orion_server *server);

/* ---- client ---- */

/* A client of an orion server (or any server speaking /v1/embeddings):
 * plain sockets and HTTP/1.1, one request per connection. One thread at a
 * time per handle. */
typedef struct orion_client orion_client;

/* `where`: "http://host:port" (IPv4 or a name; port default 11435), or a
 * Unix socket path ("/run/orion.sock", or "unix:/run/orion.sock"). api_key
 * may be NULL. Nothing is sent until the first request. */
orion_status orion_client_connect(const char *where, const char *api_key, orion_client **out);
void         orion_client_free(orion_client *client);
/* Embeds n texts (NUL-terminated) with `model` (NULL: the server's
 * default) through POST /v1/embeddings. out receives n * dim floats where
 * dim is the model's; at most out_cap floats are written (ORION_ERR_RANGE
 * if n * dim is more). *dim_out may be NULL. Errors: ORION_ERR_IO (connect,
 * send, receive), ORION_ERR_NOT_FOUND (404: unknown model), ORION_ERR_BUSY
 * (503), ORION_ERR_INVALID_ARG (400, 401, 413), ORION_ERR_FORMAT (a reply
 * that does not parse); the message carries the server's error message. */
orion_status orion_client_embed(orion_client *client, const char *model, const char *const *texts, int32_t n,
                                float *out, size_t out_cap, int32_t *dim_out);
/* GET PATH; the body (NUL-terminated, owned by the client, valid until the
 * next call) and HTTP status come back. For /healthz, /metrics, /api/ps. */
orion_status orion_client_get(orion_client *client, const char *path, int *http_status, const char **body,
                              size_t *len);

/* ------------------------------------------------------------------------ */
/* Model manager (docs/manager.md)                                           */
/* ------------------------------------------------------------------------ */

/* The layer that decides which models are in memory, at which quantization
 * level, and gives memory back before the machine suffers: a device profile
 * (memory, cgroup limits, CPUs) that picks a policy tier, a memory-pressure
 * monitor, a registry of models with one file per quantization level, and
 * the lifecycle of loaded models (progressive loading with cancel, pins,
 * LRU and idle unloading, keep-alive, events). */

/* ---- device profile and policy tiers ---- */

/* Quantization levels, smallest first. */
typedef enum orion_qlevel {
    ORION_QLEVEL_Q4  = 0,  /* q4_0, q4_1 */
    ORION_QLEVEL_Q8  = 1,  /* q8_0 */
    ORION_QLEVEL_F16 = 2,  /* f16, bf16 */
    ORION_QLEVEL_F32 = 3,
    ORION_QLEVEL_COUNT = 4
} orion_qlevel;

/* "q4", "q8", "f16", "f32". */
const char  *orion_qlevel_name(orion_qlevel level);
/* Parses "q4", "q4_0", "q4_1", "4bit", "q8", "q8_0", "8bit", "f16", "bf16",
 * "f32" (case-insensitive). ORION_ERR_INVALID_ARG otherwise. */
orion_status orion_qlevel_from_name(const char *name, orion_qlevel *out);

#define ORION_NO_LIMIT UINT64_MAX

/* A policy tier: what a device with this much memory may hold. */
typedef struct orion_tier {
    char         name[16];        /* "small", "medium", "large", "xlarge" */
    uint64_t     max_budget;      /* the tier applies up to this budget (bytes, inclusive) */
    orion_qlevel level;           /* preferred quantization level */
    int          max_models;      /* models loaded at once */
    double       idle_unload_s;   /* unload after this long idle; < 0 = never */
} orion_tier;

/* The seed's tiers (GiB = 2^30 bytes): <= 2 GiB: q4, 1 model, 60 s;
 * <= 4 GiB: q4, 2, 300 s; <= 8 GiB: q8, 3, 600 s; more: f16, 5, never.
 * Writes at most n tiers; returns how many there are. */
int orion_tier_defaults(orion_tier *tiers, int n);

typedef struct orion_device_profile {
    /* physical memory: /proc/meminfo, sysinfo(2) when meminfo is unreadable */
    uint64_t mem_total;        /* MemTotal */
    uint64_t mem_available;    /* MemAvailable (MemFree + Cached when absent) */
    bool     from_sysinfo;     /* meminfo was missing: sysinfo(2) gave the figures */
    /* the cgroup of this process (found through PROC/self/cgroup) */
    int      cgroup_version;   /* 2, 1, or 0 when none was found */
    char     cgroup_dir[512];  /* its directory under SYS/fs/cgroup */
    uint64_t cg_max;           /* memory.max (v1: memory.limit_in_bytes); ORION_NO_LIMIT for "max" */
    uint64_t cg_high;          /* memory.high (v1: soft limit is not used: ORION_NO_LIMIT) */
    uint64_t cg_current;       /* memory.current (v1: memory.usage_in_bytes); 0 when unknown */
    /* CPUs */
    int      n_cpus;
    uint32_t cpu_features;     /* orion_cpu_feature bits */
    /* policy */
    uint64_t budget;           /* min(mem_total, cg_max, cg_high), or the config's budget */
    uint64_t available;        /* min(mem_available, cg limit - cg_current) */
    orion_tier tier;           /* the tier of the budget, with the config's overrides applied */
} orion_device_profile;

typedef struct orion_profile_params {
    const char *proc_root;     /* default "/proc" (tests: a fake tree) */
    const char *sys_root;      /* default "/sys" */
    const char *config_path;   /* JSON config (see docs/manager.md); NULL: none */
    bool        use_sysinfo;   /* fall back to sysinfo(2) when meminfo is missing (default true) */
} orion_profile_params;

orion_profile_params orion_profile_default_params(void);
/* Reads the device and selects the tier. Missing cgroup files are not errors
 * (no limit); a missing meminfo without the sysinfo fallback is
 * ORION_ERR_NOT_FOUND; a bad config is ORION_ERR_FORMAT naming the field.
 * Thread-safe. */
orion_status orion_profile_read(const orion_profile_params *params, orion_device_profile *out);
/* The tier for `budget` among the defaults. */
orion_tier   orion_tier_for_budget(uint64_t budget);

/* ---- memory pressure ---- */

typedef enum orion_pressure {
    ORION_PRESSURE_LOW = 0,
    ORION_PRESSURE_MEDIUM,
    ORION_PRESSURE_HIGH,
    ORION_PRESSURE_CRITICAL,
} orion_pressure;

const char *orion_pressure_name(orion_pressure level);  /* "low", "medium", "high", "critical" */

/* Thresholds (docs/manager.md says where they come from). PSI values are
 * percentages of wall time (avg10); shares are of the budget. */
typedef struct orion_pressure_thresholds {
    double some_medium, some_high;        /* default 10, 30 */
    double full_high, full_critical;      /* default 5, 20 */
    double avail_medium, avail_high, avail_critical;  /* default 0.25, 0.10, 0.05 */
} orion_pressure_thresholds;

/* One reading. */
typedef struct orion_pressure_sample {
    double   some_avg10, full_avg10;        /* the larger of the system's and the cgroup's */
    double   cg_some_avg10, cg_full_avg10;  /* the cgroup's memory.pressure (-1: none) */
    uint64_t available, budget;
    double   avail_share;                   /* available / budget */
    uint64_t ev_high, ev_max, ev_oom;       /* memory.events increases since the last reading */
    orion_pressure level;
} orion_pressure_sample;

typedef struct orion_pressure_monitor orion_pressure_monitor;

typedef void (*orion_pressure_fn)(orion_pressure level, orion_pressure previous,
                                  const orion_pressure_sample *sample, void *user);

typedef struct orion_pressure_params {
    const char *proc_root, *sys_root;     /* as in orion_profile_params */
    uint64_t    budget;                   /* 0 = read the profile */
    orion_pressure_thresholds thresholds;
    int         poll_ms;                  /* polling period (default 1000) */
    bool        psi_triggers;             /* try PSI triggers (default true) */
    unsigned    trigger_stall_us;         /* some-stall per window that wakes us (default 100000) */
    unsigned    trigger_window_us;        /* default 1000000 */
} orion_pressure_params;

orion_pressure_params orion_pressure_default_params(void);
orion_status orion_pressure_monitor_init(const orion_pressure_params *params, orion_pressure_monitor **out);
/* Stops the thread (if started) and frees. NULL is a no-op. */
void         orion_pressure_monitor_free(orion_pressure_monitor *mon);
/* Adds a subscriber, told on every change of level (from the monitor's
 * thread, or the thread calling _poll). Returns an id > 0, or a negative
 * status. Thread-safe. */
int          orion_pressure_monitor_subscribe(orion_pressure_monitor *mon, orion_pressure_fn fn, void *user);
void         orion_pressure_monitor_unsubscribe(orion_pressure_monitor *mon, int id);
/* Reads the files now, updates the level and tells the subscribers if it
 * changed. *out may be NULL. Thread-safe. */
orion_status orion_pressure_monitor_poll(orion_pressure_monitor *mon, orion_pressure_sample *out);
/* Starts the monitor thread: PSI triggers with poll(POLLPRI) where the
 * kernel accepts them, polling every poll_ms otherwise. Idempotent. */
orion_status orion_pressure_monitor_start(orion_pressure_monitor *mon);
void         orion_pressure_monitor_stop(orion_pressure_monitor *mon);
/* The current level, and whether triggers are in use (false: polling). */
orion_pressure orion_pressure_monitor_level(orion_pressure_monitor *mon);
bool           orion_pressure_monitor_event_driven(orion_pressure_monitor *mon);
/* How many times the thread was woken by a PSI trigger, and how many
 * readings were taken (by the thread or _poll). Either may be NULL. */
void           orion_pressure_monitor_counts(orion_pressure_monitor *mon, uint64_t *triggered, uint64_t *readings);

/* ---- cancellation ---- */

/* A flag one thread sets and another checks (a load checks it between
 * chunks). Thread-safe. */
typedef struct orion_cancel orion_cancel;
orion_status orion_cancel_init(orion_cancel **out);
void         orion_cancel_free(orion_cancel *c);
void         orion_cancel_set(orion_cancel *c);
bool         orion_cancel_is_set(const orion_cancel *c);

/* ---- registry, loading, lifecycle ---- */

typedef enum orion_task {
    ORION_TASK_GENERATE = 0,
    ORION_TASK_EMBED    = 1,
} orion_task;

/* A model the manager may load. The strings are copied at registration. */
typedef struct orion_model_entry {
    const char *id;
    orion_task  task;
    const char *arch;                      /* informational ("llama", "bert") */
    const char *files[ORION_QLEVEL_COUNT]; /* one file per level, NULL where none */
    int         n_ctx;                     /* generate: KV positions (0 = the file's, capped at 4096) */
    const char *mmproj;                    /* generate: a LLaVA projector (llama.cpp mmproj GGUF) loaded,
                                              accounted and unloaded with the model, whatever the level;
                                              NULL: none (orion_lease_clip) */
} orion_model_entry;

/* What a model needs in memory at one level (from its GGUF). */
typedef struct orion_model_need {
    uint64_t weights;   /* tensor bytes */
    uint64_t kv;        /* 2 * n_layer * n_ctx * n_head_kv * head_dim * 2 (generate) */
    uint64_t scratch;   /* estimate of the arena */
    uint64_t encoder;   /* the projector (mmproj), 0 without: its tensor bytes, its arenas for one
                           image and the pixels and rows of one encode */
    uint64_t total;     /* weights + kv + scratch + encoder */
} orion_model_need;

/* Reads the GGUF header of `path` and computes its need (n_ctx as in
 * orion_model_entry). Errors from orion_gguf_open. Thread-safe. */
orion_status orion_model_need_compute(const char *path, orion_task task, int n_ctx, orion_model_need *out);

typedef enum orion_unload_reason {
    ORION_UNLOAD_IDLE = 0,
    ORION_UNLOAD_LRU,
    ORION_UNLOAD_PRESSURE,
    ORION_UNLOAD_EXPLICIT,
    ORION_UNLOAD_KEEP_ALIVE,  /* keep_alive 0: after the request */
    ORION_UNLOAD_SHUTDOWN,
} orion_unload_reason;

const char *orion_unload_reason_name(orion_unload_reason r);  /* "idle", "lru", ... */

typedef enum orion_manager_event_type {
    ORION_EVENT_LOAD_STARTED = 0,
    ORION_EVENT_LOAD_PROGRESS,
    ORION_EVENT_LOADED,
    ORION_EVENT_LOAD_FAILED,
    ORION_EVENT_LOAD_CANCELLED,
    ORION_EVENT_UNLOADED,
    ORION_EVENT_PRESSURE,
} orion_manager_event_type;

const char *orion_manager_event_name(orion_manager_event_type t);  /* "load_started", ... */

typedef struct orion_manager_event {
    orion_manager_event_type type;
    const char         *model;       /* id (NULL for pressure); valid during the call */
    orion_qlevel        level;       /* the level loaded */
    uint64_t            bytes;       /* progress: bytes done; loaded/unloaded: the model's need */
    uint64_t            bytes_total; /* progress: bytes to bring in */
    double              timestamp;   /* the manager's clock, seconds */
    orion_unload_reason reason;      /* UNLOADED */
    orion_status        status;      /* LOAD_FAILED */
    orion_pressure      pressure, previous;  /* PRESSURE (pressure also set on others) */
} orion_manager_event;

typedef void (*orion_manager_event_fn)(const orion_manager_event *ev, void *user);

typedef struct orion_manager orion_manager;

typedef struct orion_manager_params {
    orion_profile_params profile;     /* roots and config file */
    const char *registry_path;        /* JSON registry (NULL: register in code) */
    double    (*clock)(void *user);   /* seconds, monotonic; NULL = the real clock (tests inject one) */
    void       *clock_user;
    bool        monitor;              /* start the pressure thread, which also runs the idle timers (default true) */
    int         poll_ms;              /* monitor period (default 1000) */
    size_t      chunk_bytes;          /* prefault chunk (default 8 MiB) */
    int         n_threads;            /* threads of the loaded models (0 = all CPUs) */
    int         embed_max_tokens;     /* embed models: truncation (orion_embed_params.max_tokens; 0 = the model's) */
} orion_manager_params;

orion_manager_params orion_manager_default_params(void);
/* Reads the profile, config and registry; starts the monitor. */
orion_status orion_manager_init(const orion_manager_params *params, orion_manager **out);
/* Unloads everything (reason shutdown) and frees. Models still acquired
 * must have been released. NULL is a no-op. */
void         orion_manager_free(orion_manager *mgr);

/* Adds or replaces a model (not while it is loaded: ORION_ERR_BUSY). */
orion_status orion_manager_register(orion_manager *mgr, const orion_model_entry *entry);
/* Reads a registry file: {"models": [{"id", "task", "arch", "n_ctx",
 * "files": {"q4_0": PATH, "q8_0": PATH, ...}, "mmproj": PATH}]} ("mmproj"
 * optional); relative paths are taken from the file's directory. */
orion_status orion_manager_load_registry(orion_manager *mgr, const char *path);

/* The id of the i-th registered model (registration order), or NULL past
 * the end. Valid until the model is replaced or the manager freed. */
const char  *orion_manager_model_id(orion_manager *mgr, int i);
/* The need of model `id` at `level` (computed once from its GGUF, then
 * cached). ORION_ERR_NOT_FOUND for an unknown id or no file at that level.
 * Thread-safe. */
orion_status orion_manager_model_need(orion_manager *mgr, const char *id, orion_qlevel level,
                                      orion_model_need *out);

/* The task a registered model was entered with. ORION_ERR_NOT_FOUND for an
 * unknown id. Thread-safe. */
orion_status orion_manager_model_task(orion_manager *mgr, const char *id, orion_task *out);

/* Adds an event subscriber (at most 16); returns an id > 0 or a negative
 * status. It is called without the manager's locks held, from the thread
 * that caused the event. Unsubscribing waits for calls to it in progress
 * on other threads, so once it returns `user` may be freed; a subscriber
 * may unsubscribe itself from its own callback. Thread-safe. */
int  orion_manager_subscribe(orion_manager *mgr, orion_manager_event_fn fn, void *user);
void orion_manager_unsubscribe(orion_manager *mgr, int id);

#define ORION_KEEP_ALIVE_DEFAULT (-0.5)  /* sentinel: the model's / tier's delay */
/* Parses an Ollama keep_alive: a number of seconds ("300", "0", "-1") or a
 * duration ("5m", "1h30m", "10s", "500ms"). Negative = forever. */
orion_status orion_keep_alive_parse(const char *text, double *seconds);

typedef struct orion_acquire_params {
    /* Ollama keep_alive for after this request: 0 = unload when released,
     * < 0 = keep forever, > 0 = seconds; ORION_KEEP_ALIVE_DEFAULT = policy. */
    double        keep_alive_s;
    bool          lazy;          /* map only, no prefault */
    orion_cancel *cancel;        /* checked between chunks; may be NULL */
    void        (*on_progress)(uint64_t done, uint64_t total, void *user);  /* on the calling thread */
    void         *user;
    int           level;         /* force a level (orion_qlevel), -1 = the tier's */
} orion_acquire_params;

orion_acquire_params orion_acquire_default_params(void);

/* A model pinned for one user: never unloaded until released. */
typedef struct orion_model_lease orion_model_lease;

/* Pins model `id`, loading it first if needed (on the calling thread; a
 * second caller of a model being loaded waits). Selection: the tier's (or
 * the config's) level when its need fits beside the models in use, else a
 * smaller level, else ORION_ERR_LIMIT with the bytes needed and free. Idle
 * models are unloaded, least recently used first, to stay within the
 * tier's maximum and the budget. Errors: ORION_ERR_NOT_FOUND (id),
 * ORION_ERR_LIMIT (memory, or pressure critical), ORION_ERR_CANCELLED,
 * load errors. Thread-safe. */
orion_status orion_manager_acquire(orion_manager *mgr, const char *id, const orion_acquire_params *params,
                                   orion_model_lease **out);
/* Unpins; the keep-alive of the acquire applies from now. NULL is a no-op.
 * Thread-safe. */
void         orion_manager_release(orion_manager *mgr, orion_model_lease *lease);
/* The loaded model (the one matching the entry's task; NULL otherwise). The
 * lease keeps it alive; use it from one thread at a time. */
orion_llm      *orion_lease_llm(const orion_model_lease *lease);
orion_embedder *orion_lease_embedder(const orion_model_lease *lease);
orion_qlevel    orion_lease_level(const orion_model_lease *lease);
/* The file the leased model was loaded from; valid while the lease is held. */
const char     *orion_lease_path(const orion_model_lease *lease);
/* The model's image encoder + projector (its entry's mmproj), or NULL when
 * it has none. Alive while the lease is held; one thread at a time (the
 * lease's holders share it). */
orion_clip     *orion_lease_clip(const orion_model_lease *lease);
/* Copies model `id`'s projector path into path ("" when it has none).
 * ORION_ERR_NOT_FOUND for an unknown id. Thread-safe. */
orion_status    orion_manager_model_mmproj(orion_manager *mgr, const char *id, char *path, size_t size);

/* Unloads `id` now. ORION_ERR_BUSY while acquired, ORION_ERR_NOT_FOUND when
 * not loaded. Thread-safe. */
orion_status orion_manager_unload(orion_manager *mgr, const char *id);
/* Runs the idle timers against the clock (the monitor thread calls it every
 * poll_ms; tests with an injected clock call it). Returns the number unloaded. */
int          orion_manager_tick(orion_manager *mgr);
/* Reads the pressure now and reacts (high: unload idle models, LRU first,
 * keeping the most recent; critical: unload every idle model and refuse
 * loads). Returns the level. */
orion_pressure orion_manager_check_pressure(orion_manager *mgr);

typedef struct orion_model_status {
    char         id[64];
    orion_qlevel level;
    bool         loaded;
    int          refs;           /* active leases */
    uint64_t     mapped;         /* bytes of the file mapping */
    uint64_t     resident;       /* of those, in memory (mincore) */
    uint64_t     heap;           /* counting-allocator bytes taken by the load */
    uint64_t     kv;             /* KV cache bytes */
    uint64_t     need;           /* the computed need */
    uint64_t     encoder;        /* the projector's part of mapped + heap (0 without one) */
    double       last_used;      /* clock */
    double       expires;        /* clock time of the idle unload; < 0 = never */
} orion_model_status;

typedef struct orion_process_memory {
    uint64_t rss, pss;           /* /proc/self/smaps_rollup (rss from status if absent) */
    uint64_t pss_file, pss_anon;
} orion_process_memory;

/* Copies the state of up to n loaded models; returns how many are loaded. */
int          orion_manager_status(orion_manager *mgr, orion_model_status *out, int n);
/* The profile the manager runs with. */
void         orion_manager_profile(orion_manager *mgr, orion_device_profile *out);
orion_pressure orion_manager_pressure(orion_manager *mgr);
/* RSS and PSS of this process (proc_root/self/smaps_rollup). */
orion_status orion_process_memory_read(const char *proc_root, orion_process_memory *out);
/* Resident bytes of [addr, addr+len) by mincore (page cache residency for
 * file mappings). */
uint64_t     orion_resident_bytes(const void *addr, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* ORION_H */
