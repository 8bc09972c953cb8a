/*
 * service.h — internal interfaces of the service layer (src/service/):
 *
 *   request.c  parsing embedding request bodies (OpenAI and Ollama shapes),
 *              writing JSON replies, base64 — pure functions, fuzzed by
 *              fuzz/fuzz_request.c;
 *   models.c   the table of served models and each model's batcher (one
 *              worker thread per model gathers concurrent requests into one
 *              forward pass). The one interface the server uses to reach
 *              models, so the model manager (issue 6) can replace it;
 *   metrics.c  counters and histograms, rendered as Prometheus text;
 *   server.c   libmicrohttpd glue, routing, auth, drain (orion_server_*);
 *   client.c   the C client (orion_client_*).
 */
#ifndef ORION_SERVICE_H
#define ORION_SERVICE_H

#include "core/core.h"

#include <pthread.h>
#include <stdint.h>

/* ---- request.c ------------------------------------------------------------ */

enum { ORION__API_OPENAI = 0, ORION__API_OLLAMA = 1 };

/* An HTTP-level error: status code, OpenAI error type and message. */
typedef struct orion__http_error {
    int  code;          /* 400, 404, 413, 503, ... */
    char type[40];      /* "invalid_request_error", "not_found_error", ... */
    char message[256];
} orion__http_error;

/* A parsed embedding request. Texts are copies (one block), owned here. */
typedef struct orion__embed_request {
    char     model[128];   /* "" when the body names none */
    int32_t  n;
    char   **texts;        /* n NUL-terminated texts (may contain no NUL inside) */
    size_t  *lens;         /* byte lengths */
    bool     base64;       /* encoding_format "base64" */
    int      dimensions;   /* 0 = not given */
    int      truncate;     /* -1 = not given, 0 = reject over-long, 1 = truncate */
    bool     single;       /* input was a string, not an array */
    int      keep_alive_zero; /* Ollama keep_alive == 0: unload after */
    void    *block;        /* the allocation behind texts/lens */
} orion__embed_request;

/* Parses a body of `len` bytes (not NUL-terminated) for `api`. Accepts
 * "input" as a string or an array of strings (at most max_inputs; an empty
 * array is an error). On error fills *err (400 with a message naming the
 * field) and returns ORION_ERR_FORMAT / ORION_ERR_LIMIT. Never reads past
 * len. Free with orion__embed_request_free (also after an error). */
orion_status orion__embed_request_parse(const char *body, size_t len, int api, int max_inputs,
                                        orion__embed_request *out, orion__http_error *err);
void         orion__embed_request_free(orion__embed_request *req);

/* Parses {"model": "..."} (for /api/unload); model[0] = 0 when absent. */
orion_status orion__model_request_parse(const char *body, size_t len, char *model, size_t model_size,
                                        orion__http_error *err);

/* A growing byte buffer on the counting allocator. */
typedef struct orion__buf {
    char  *p;
    size_t len, cap;
    bool   failed;   /* an append ran out of memory */
} orion__buf;

void orion__buf_append(orion__buf *b, const void *data, size_t n);
void orion__buf_puts(orion__buf *b, const char *s);
void orion__buf_printf(orion__buf *b, const char *fmt, ...) ORION_PRINTF(2, 3);
/* A JSON string literal (quotes included, escaped). */
void orion__buf_json_str(orion__buf *b, const char *s, size_t n);
/* n floats as a JSON array, each printed exactly (%.9g); NaN/inf as 0. */
void orion__buf_json_floats(orion__buf *b, const float *v, int32_t n);
/* n floats as base64 of their little-endian bytes, quoted. */
void orion__buf_b64_floats(orion__buf *b, const float *v, int32_t n);
void orion__buf_free(orion__buf *b);

/* Base64 (standard alphabet, padding). decode returns the bytes written or
 * -1 on bad input; out must hold 3 * (n / 4) bytes. */
size_t  orion__b64_encode(const uint8_t *in, size_t n, char *out);
int64_t orion__b64_decode(const char *in, size_t n, uint8_t *out);

/* The JSON error body {"error":{"message":..,"type":..,"code":..}}. */
void orion__error_body(orion__buf *b, const orion__http_error *err);

/* ---- models.c --------------------------------------------------------------- */

typedef struct orion__models orion__models;
typedef struct orion__model orion__model;

typedef struct orion__models_params {
    int  max_tokens;     /* per input, 0 = the model's own */
    bool truncate;
    int  max_queue;      /* queued inputs per model */
    bool batching;
    int  batch_tokens;
    int  batch_wait_us;
    int  n_threads;
    int  gen_slots;      /* generation models: concurrent sequences (default 2) */
    int  gen_ctx;        /* their KV positions (0 = the file's, capped at 4096) */
} orion__models_params;

#define ORION__MAX_GEN_SLOTS 16

/* What the server learns about one model. */
typedef struct orion__model_desc {
    char   id[128];
    char   path[1024];
    bool   loaded;
    bool   is_llm;
    char   arch[32];
    int    dim;
    int    max_tokens;
    size_t weight_bytes, resident_bytes;
    double last_used;    /* orion__now() of the last request, 0 = never */
} orion__model_desc;

/* Statistics of the batchers together (for /metrics). */
typedef struct orion__batch_stats {
    uint64_t passes;            /* forward passes run */
    uint64_t inputs;            /* inputs embedded */
    uint64_t requests;          /* jobs served */
    uint64_t hist_inputs[8];    /* inputs per pass: <=1, 2, 4, 8, 16, 32, 64, >64 */
    uint64_t rejected_queue;    /* jobs refused because the queue was full */
} orion__batch_stats;

orion_status orion__models_init(const orion__models_params *p, orion__models **out);
/* Stops every worker (finishing queued jobs) and frees. */
void         orion__models_free(orion__models *m);
/* Registers a model; loads it at once when `load`. */
orion_status orion__models_add(orion__models *m, const char *id, const char *path, bool load);
int          orion__models_count(orion__models *m);
/* Fills desc for model i (0 <= i < count). */
void         orion__models_describe(orion__models *m, int i, orion__model_desc *desc);
/* Finds a model by id (NULL or "" = the first); NULL when unknown. Models
 * live until orion__models_free. */
orion__model *orion__models_find(orion__models *m, const char *id);
const char   *orion__model_id(const orion__model *model);
/* Loads the model if it is not (in the caller's thread, under the model's
 * lock) and reports its dim and the cache namespace for its vectors. */
orion_status orion__model_ensure(orion__model *model, int32_t *dim, char *ns, size_t ns_size,
                                 orion__http_error *err);
/* Embeds n texts through the model's batcher: queues them, waits. out gets
 * n * dim floats; n_tokens (may be NULL) the tokens each input used.
 * truncate: -1 = the server's default. Errors fill *err (400 for an input
 * over the token limit, 503 when the queue is full, 500 otherwise). */
orion_status orion__model_embed(orion__model *model, const char *const *texts, const size_t *lens, int32_t n,
                                int truncate, float *out, int32_t *n_tokens, orion__http_error *err);
/* Frees the model's weights when idle (reloaded on the next request). */
orion_status orion__models_unload(orion__models *m, const char *id, orion__http_error *err);
void         orion__models_batch_stats(orion__models *m, orion__batch_stats *out);

/* Generation models. A model holds a few handles (slots), each with its own
 * KV cache over one shared weight mapping; requests get them first come,
 * first served (a ticket queue), so none starves. acquire blocks until a
 * slot is free (loading it on first use); release gives it back. */
bool         orion__model_is_llm(const orion__model *model);
orion_status orion__model_llm_acquire(orion__model *model, orion_llm **llm, int *slot, orion__http_error *err);
void         orion__model_llm_release(orion__model *model, int slot);

/* The "hash:DIM" test model: whitespace words hashed to ids between [CLS]=1
 * and [SEP]=2 (at most max_tokens in all), and a deterministic unit vector
 * of dim floats from the ids. Exposed so tests can compute what the server
 * must answer. */
orion_status orion__hash_tokenize(const char *text, size_t len, int max_tokens, int32_t *ids, int32_t n_max,
                                  int32_t *n_out);
void         orion__hash_vector(const int32_t *ids, int32_t n, int dim, float *out);

/* ---- generate.c -------------------------------------------------------------- */

/* A parsed generation request (/v1/completions, /v1/chat/completions,
 * /api/generate, /api/chat). Strings are owned by `block`. */
typedef struct orion__gen_request {
    char                model[128];
    char               *prompt;      /* completions / generate; NULL for chat */
    orion_chat_message *msgs;        /* chat */
    int                 n_msgs;
    int                 max_tokens;  /* new tokens at most */
    float               temperature, top_p;
    int                 top_k;
    uint64_t            seed;
    bool                stream;
    void               *block;
} orion__gen_request;

/* Parses a body for endpoint ep (one of the four above); 400 on error. */
orion_status orion__gen_request_parse(const char *body, size_t len, int ep, orion__gen_request *out,
                                      orion__http_error *err);
void         orion__gen_request_free(orion__gen_request *req);

struct MHD_Connection;
/* Serves a generation endpoint: parses, waits for a slot, generates
 * (streamed as server-sent events or NDJSON, or as one JSON reply) and
 * queues the response. Returns the HTTP status. */
int orion__generate_serve(orion__models *models, struct MHD_Connection *c, int ep, const char *body, size_t len);

/* server.c: queue a reply (takes b's bytes) / an error reply. */
int orion__send_buf(struct MHD_Connection *c, int code, const char *ctype, orion__buf *b);
int orion__send_error(struct MHD_Connection *c, const orion__http_error *err);

/* ---- metrics.c -------------------------------------------------------------- */

enum {
    ORION__EP_EMBEDDINGS = 0, /* POST /v1/embeddings */
    ORION__EP_EMBED,          /* POST /api/embed */
    ORION__EP_MODELS,         /* GET /v1/models */
    ORION__EP_TAGS,           /* GET /api/tags */
    ORION__EP_PS,             /* GET /api/ps */
    ORION__EP_UNLOAD,         /* POST /api/unload */
    ORION__EP_HEALTH,         /* GET /healthz */
    ORION__EP_METRICS,        /* GET /metrics */
    ORION__EP_COMPLETIONS,    /* POST /v1/completions */
    ORION__EP_CHAT,           /* POST /v1/chat/completions */
    ORION__EP_GENERATE,       /* POST /api/generate */
    ORION__EP_OLLAMA_CHAT,    /* POST /api/chat */
    ORION__EP_OTHER,          /* anything else (404s) */
    ORION__EP_COUNT
};

#define ORION__LAT_BUCKETS 12

typedef struct orion__metrics {
    pthread_mutex_t mu;
    uint64_t requests[ORION__EP_COUNT][6];   /* by status class: 2xx, 4xx (but 404, 503), 404, 5xx, 503, other */
    uint64_t lat_bucket[ORION__EP_COUNT][ORION__LAT_BUCKETS];
    uint64_t lat_count[ORION__EP_COUNT];
    double   lat_sum[ORION__EP_COUNT];
    uint64_t in_flight;
} orion__metrics;

extern const char *const orion__endpoint_names[ORION__EP_COUNT];
void orion__metrics_init(orion__metrics *m);
void orion__metrics_destroy(orion__metrics *m);
void orion__metrics_observe(orion__metrics *m, int endpoint, int http_code, double seconds);
/* Appends the Prometheus text of everything: requests, latencies, batches,
 * the cache, models. cache may be NULL. */
void orion__metrics_render(orion__metrics *m, orion__buf *b, orion__models *models, orion_cache *cache);

#endif /* ORION_SERVICE_H */
