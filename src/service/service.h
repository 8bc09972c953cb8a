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
 *   generate.c the generation endpoints; gen_request.c parses their bodies
 *              (pure, fuzzed) and images.c the images they carry (base64,
 *              data URLs, remote fetches with libcurl, decoding);
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

/* Fills *err (models.c). */
void orion__http_set(orion__http_error *err, int code, const char *type, const char *fmt, ...) ORION_PRINTF(4, 5);

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
    double   keep_alive;   /* Ollama keep_alive in seconds (0: unload after, -1: keep);
                              ORION_KEEP_ALIVE_DEFAULT when absent */
    bool     no_input;     /* no "input" at all: the parse fails (400), but for Ollama that
                              is a request to load (or, with keep_alive 0, unload) the model */
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

/* Reads an Ollama keep_alive field (NULL or null: ORION_KEEP_ALIVE_DEFAULT):
 * a number of seconds or a duration string (orion_keep_alive_parse); any
 * negative value becomes -1 (forever). 400 otherwise. */
struct cJSON;
orion_status orion__keep_alive_field(const struct cJSON *v, double *out, orion__http_error *err);

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

/* ---- models.c, batcher.c, encoders.c, gen_slots.c ---------------------------- */

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
    bool prefault;       /* acquire with lazy = !prefault */
    /* images in generation requests (docs/service.md) */
    bool   remote_images;   /* fetch http(s) image URLs (else 400) */
    int    max_images;      /* per request (0: 8) */
    size_t max_image_bytes; /* encoded bytes of one image (0: 20 MiB) */
    int    image_timeout_ms;/* a remote fetch, all of it (0: 10 s) */
    orion_manager *manager; /* GGUF models are held through it (borrowed; required) */
} orion__models_params;

#define ORION__MAX_GEN_SLOTS 16

/* What the server learns about one model. */
typedef struct orion__model_desc {
    char     id[128];
    char     path[1024];
    bool     loaded;
    bool     is_llm;
    bool     builtin;      /* the hash test model, held outside the manager */
    char     arch[32];
    int      dim;
    int      max_tokens;
    size_t   weight_bytes, resident_bytes;
    double   last_used;    /* orion__now() of the last request, 0 = never */
    /* from orion_manager_status while loaded */
    char     level[8];     /* "q4", "q8", "f16", "f32"; "" for the hash model */
    int      refs;         /* leases held */
    double   expires_in;   /* seconds until the idle unload; < 0: never, or in use */
    uint64_t mapped_bytes, heap_bytes, need_bytes;
    /* the image projector (mmproj), if the model has one */
    bool     vision;
    uint64_t projector_bytes; /* loaded: its mapping + heap (of mapped/heap above); else its file's size */
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
/* Stops every worker (finishing queued jobs), frees the service's own
 * handles and the table. Every lease must have been released (requests
 * finished). */
void         orion__models_free(orion__models *m);
/* Serves `path` as `id`: "hash:DIM[:US]" is held here; a GGUF file is
 * registered with the manager (task from its architecture, level from its
 * weights' type; mmproj, NULL or a projector for a decoder, goes with
 * it). Loads it at once when `load`. */
orion_status orion__models_add(orion__models *m, const char *id, const char *path, const char *mmproj, bool load);
/* Serves a model already in the manager's registry. */
orion_status orion__models_add_registered(orion__models *m, const char *id, bool load);
int          orion__models_count(orion__models *m);
/* Fills desc for model i (0 <= i < count). */
void         orion__models_describe(orion__models *m, int i, orion__model_desc *desc);
/* Finds a model by id (NULL or "" = the first); NULL when unknown. Models
 * live until orion__models_free; the table does not change once serving. */
orion__model *orion__models_find(orion__models *m, const char *id);
const char   *orion__model_id(const orion__model *model);
/* The vectors' dim and the cache namespace for them, from the last load
 * (loading the model once, through a lease, if it never was). */
orion_status orion__model_ensure(orion__model *model, int32_t *dim, char *ns, size_t ns_size,
                                 orion__http_error *err);
/* Embeds n texts through the model's batcher: queues them, waits. The pass
 * holds a lease on the model (acquired with the keep_alive of the latest
 * request in it). out gets n * dim floats (dim as ensure said); n_tokens
 * (may be NULL) the tokens each input used; ns the namespace the vectors
 * belong to (the level may differ from ensure's after a reload).
 * truncate: -1 = the server's default. Errors fill *err (400 for an input
 * over the token limit, 503 when the queue is full or memory is short, 500
 * otherwise). */
orion_status orion__model_embed(orion__model *model, const char *const *texts, const size_t *lens, int32_t n,
                                int truncate, double keep_alive, int32_t dim, float *out, int32_t *n_tokens,
                                char *ns, size_t ns_size, orion__http_error *err);
/* A request's keep_alive when it did not need the model (all cache hits):
 * 0 unloads it (unless in use), other values renew its timer if loaded. */
void         orion__model_keep_alive(orion__model *model, double keep_alive);
/* Ollama's load / unload requests (no input): keep_alive 0 unloads
 * (*unloaded = true; 409 while in use), anything else loads and applies the
 * keep_alive. */
orion_status orion__model_control(orion__model *model, double keep_alive, bool *unloaded, orion__http_error *err);
/* POST /api/unload: 404 for an unknown or unloaded model, 409 while in use. */
orion_status orion__models_unload(orion__models *m, const char *id, orion__http_error *err);
/* The manager unloaded `id`: its extra generation slots go too. */
void         orion__models_on_unloaded(orion__models *m, const char *id);
void         orion__models_batch_stats(orion__models *m, orion__batch_stats *out);

/* Generation models. A request leases the model from the manager (loading
 * it on first use), then takes a slot, first come first served (a ticket
 * queue), so none starves: slot 0 is the manager's handle, the others are
 * handles of the same file with their own KV cache. release gives the slot
 * back, then the lease. */
bool         orion__model_is_llm(const orion__model *model);
orion_status orion__model_llm_acquire(orion__model *model, double keep_alive, orion_model_lease **lease,
                                      orion_llm **llm, int *slot, orion__http_error *err);
void         orion__model_llm_release(orion__model *model, int slot, orion_model_lease *lease);
/* True when the model was given a projector (images can be sent to it). */
bool         orion__model_has_vision(const orion__model *model);
/* Encodes img with the lease's projector into out (n_patches * n_out
 * floats); one encode at a time per model (the slots share the handle). */
orion_status orion__model_encode_image(orion__model *model, orion_model_lease *lease, const orion_image *img,
                                       float *out);
/* The service's parameters (images: limits, remote fetches). */
const orion__models_params *orion__models_params_of(const orion__models *m);

/* The "hash:DIM" test model: whitespace words hashed to ids between [CLS]=1
 * and [SEP]=2 (at most max_tokens in all), and a deterministic unit vector
 * of dim floats from the ids. Exposed so tests can compute what the server
 * must answer. */
orion_status orion__hash_tokenize(const char *text, size_t len, int max_tokens, int32_t *ids, int32_t n_max,
                                  int32_t *n_out);
void         orion__hash_vector(const int32_t *ids, int32_t n, int dim, float *out);

/* ---- generate.c -------------------------------------------------------------- */

/* One image of a generation request: its encoded bytes, or a remote URL
 * that generate.c fetches (when allowed) before decoding. */
typedef struct orion__gen_image {
    uint8_t *data;      /* PNG / JPEG bytes (owned); NULL for a URL not fetched yet */
    size_t   len;
    char    *url;       /* http(s) URL (owned); NULL for inline data */
} orion__gen_image;

/* Limits the parser enforces on images. */
typedef struct orion__gen_limits {
    int    max_images;       /* per request */
    size_t max_image_bytes;  /* decoded bytes of one image */
} orion__gen_limits;

#define ORION__IMAGE_TAG "<image>"

/* A parsed generation request (/v1/completions, /v1/chat/completions,
 * /api/generate, /api/chat). Strings are owned by `block`. Images: the
 * prompt or the message texts hold one ORION__IMAGE_TAG per image, in
 * order, where its rows go (OpenAI: where the image part stands, the parts
 * joined with "\n"; Ollama: "<image>\n" before the text for each image,
 * unless the text places its own tags). */
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
    double              keep_alive;  /* Ollama endpoints; ORION_KEEP_ALIVE_DEFAULT when absent */
    bool                no_input;    /* Ollama: no prompt / messages; the parse fails (400), but the
                                        request loads (keep_alive 0: unloads) the model */
    orion__gen_image   *images;      /* n_images (owned) */
    int                 n_images;
    void               *block;
} orion__gen_request;

/* Parses a body for endpoint ep (one of the four above); 400 on error
 * (lim NULL: 8 images of 20 MiB at most). Data URLs and base64 images are
 * decoded to bytes here; remote URLs are only recorded. */
orion_status orion__gen_request_parse(const char *body, size_t len, int ep, const orion__gen_limits *lim,
                                      orion__gen_request *out, orion__http_error *err);
void         orion__gen_request_free(orion__gen_request *req);

struct MHD_Connection;
/* Serves a generation endpoint: parses, waits for a slot, generates
 * (streamed as server-sent events or NDJSON, or as one JSON reply) and
 * queues the response. Returns the HTTP status. */
int orion__generate_serve(orion__models *models, struct MHD_Connection *c, int ep, const char *body, size_t len);

/* server.c: queue a reply (takes b's bytes) / an error reply. */
int orion__send_buf(struct MHD_Connection *c, int code, const char *ctype, orion__buf *b);
int orion__send_error(struct MHD_Connection *c, const orion__http_error *err);

/* ---- images.c ------------------------------------------------------------------ */

/* Decodes base64 image `index` (standard alphabet, padded) into *out
 * (orion__free): 400 for bad base64, an empty string or more than
 * max_bytes (checked before allocating). */
orion_status orion__image_b64(const char *s, size_t n, size_t max_bytes, int index, uint8_t **out, size_t *len,
                              orion__http_error *err);
/* A "data:image/...;base64,..." URL's bytes, as above; 400 for another
 * media type, a non-base64 data URL or anything that is not a data URL. */
orion_status orion__data_url_decode(const char *url, size_t n, size_t max_bytes, int index, uint8_t **out,
                                    size_t *len, orion__http_error *err);
/* True for an http:// or https:// URL. */
bool         orion__url_is_remote(const char *url);
/* libcurl's global init, once (the server calls it at start when remote
 * images are allowed, before its threads fetch). */
orion_status orion__image_fetch_init(void);
/* GETs an http(s) URL (redirects: http(s) only, at most 3) within
 * timeout_ms, at most max_bytes; 400 with a message on any failure. */
orion_status orion__image_fetch(const char *url, size_t max_bytes, int timeout_ms, int index, uint8_t **out,
                                size_t *len, orion__http_error *err);
/* orion_image_load_memory with the server's limits: 400 (500 for memory). */
orion_status orion__image_decode(const uint8_t *data, size_t len, size_t max_bytes, int index, orion_image **out,
                                 orion__http_error *err);

/* ---- events.c ------------------------------------------------------------------ */

/* The hub of GET /events streams (server-sent events). Thread-safe. */
typedef struct orion__events orion__events;
typedef struct orion__event_stream orion__event_stream;

/* queue_cap: messages each stream keeps before dropping its oldest (0: 256). */
orion_status orion__events_init(int queue_cap, orion__events **out);
/* Frees the hub and any stream still subscribed (after the daemons stopped). */
void         orion__events_free(orion__events *h);
/* Formats a manager event ("event: NAME\ndata: {json}\n\n") and queues it on
 * every stream. */
void         orion__events_publish(orion__events *h, const orion_manager_event *e);
void         orion__event_format(const orion_manager_event *e, orion__buf *b);
/* Ends every stream (their readers return) and refuses new ones. */
void         orion__events_close(orion__events *h);
void         orion__events_stats(orion__events *h, int *streams, uint64_t *published, uint64_t *dropped);
/* A stream: subscribe (ORION_ERR_BUSY once closed; queue_cap 0: the hub's),
 * take messages, unsubscribe (frees it). next waits up to timeout_ms and
 * returns 1 with *out (free with orion__free), 0 on timeout, -1 once the hub
 * is closed. After drops, the next message is "event: dropped" with their
 * count. */
orion_status orion__events_subscribe(orion__events *h, int queue_cap, orion__event_stream **out);
void         orion__events_unsubscribe(orion__event_stream *s);
int          orion__events_next(orion__event_stream *s, int timeout_ms, char **out);
/* Answers GET /events on c with a stream; returns the HTTP status. */
int          orion__events_serve(orion__events *h, struct MHD_Connection *c);

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
    ORION__EP_EVENTS,         /* GET /events */
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
