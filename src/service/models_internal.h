/*
 * models_internal.h — what the files behind the service's table of models
 * share (internal to src/service/):
 *
 *   models.c    the table: registering models with the manager, finding,
 *               describing, unloading, keep-alive, the manager's errors as
 *               HTTP errors;
 *   batcher.c   each embedding model's worker thread and job queue;
 *   encoders.c  the two encoder backends the batcher drives: GGUF sentence
 *               encoders (orion_embed_*) and the built-in "hash:DIM" model;
 *   gen_slots.c generation models' slots (handles with their own KV cache).
 *
 * Locks, outermost first: a model's `mu`, then the manager's locks (taken
 * inside orion_manager_* calls). The manager delivers its events without
 * its locks, and the server's subscriber takes a model's `mu` (to drop the
 * slots of an unloaded model): so no orion_manager_* call that can emit
 * (acquire, release, unload) is ever made with a model's `mu` held.
 */
#ifndef ORION_SERVICE_MODELS_INTERNAL_H
#define ORION_SERVICE_MODELS_INTERNAL_H

#include "service/service.h"

/* ---- encoders.c ---------------------------------------------------------------- */

typedef struct orion__encoder_backend {
    const char *kind;
    orion_status (*load)(const char *path, const orion_embed_params *p, void **h);
    void (*free)(void *h);
    void (*info)(const void *h, orion_embed_info *out);
    orion_status (*tokenize)(const void *h, const char *text, size_t len, int32_t *ids, int32_t n_max,
                             int32_t *n_out);
    orion_status (*embed)(void *h, const int32_t *const *ids, const int32_t *n_ids, int32_t n, float *out);
} orion__encoder_backend;

extern const orion__encoder_backend orion__encoder_gguf;  /* h: an orion_embedder (from a lease) */
extern const orion__encoder_backend orion__encoder_hash;  /* h: the hash model (load/free here) */

/* ---- the table ------------------------------------------------------------------- */

/* One request's texts that missed the cache, queued for the batcher. */
typedef struct orion__job orion__job;
struct orion__job {
    const char *const *texts;
    const size_t      *lens;
    int32_t            n;
    int                truncate;    /* -1 = the server's default */
    double             keep_alive;  /* for the lease of the pass (ORION_KEEP_ALIVE_DEFAULT: policy) */
    int32_t            dim;         /* what the request expects */
    float             *out;
    int32_t           *n_tokens;
    char               ns[256];     /* out: the cache namespace of the vectors */
    orion_status       st;
    orion__http_error  err;
    bool               done;
    orion__job        *next;
};

struct orion__model {
    orion__models  *owner;
    char            id[128];
    char            path[1024];     /* the file last loaded ("" until known) or "hash:..." */
    char            arch[32];       /* from the GGUF header, or the last load */
    bool            builtin;        /* "hash:DIM": held here, outside the manager */
    bool            is_llm;
    pthread_mutex_t mu;
    double          last_used;      /* orion__now() of the last request */
    /* embedding models: what the last load said (under mu) */
    orion_embed_info info;
    bool            info_valid;
    orion_qlevel    level;
    /* the built-in model's handle (NULL: unloaded) */
    const orion__encoder_backend *be;
    void           *h;
    /* the batcher */
    pthread_cond_t  cv;             /* work arrived / stop / unload */
    pthread_cond_t  done_cv;        /* a job finished */
    orion__job     *head, *tail;
    int64_t         queued;         /* inputs in the queue */
    bool            stop, unload_req, busy;
    pthread_t       worker;
    bool            worker_started;
    /* generation: slot 0 is the manager's handle (from the lease); slots
     * 1.. are handles of the same file the service loads, each with its own
     * KV cache, dropped when the manager unloads the model */
    orion_llm      *slots[ORION__MAX_GEN_SLOTS];
    bool            slot_busy[ORION__MAX_GEN_SLOTS];
    bool            slot_stale[ORION__MAX_GEN_SLOTS];
    int             n_slots;
    uint64_t        ticket_next, ticket_serving;
    pthread_cond_t  slot_cv;
    orion_llm_info  llm_info;
    bool            llm_info_valid;
    /* the image projector (a decoder's mmproj; "" without): the manager
     * loads it with the model; its handle is shared by the slots, so one
     * encode runs at a time (clip_mu, taken alone, never with mu) */
    char            mmproj[1024];
    pthread_mutex_t clip_mu;
};

struct orion__models {
    orion__models_params p;
    orion_manager       *mgr;
    pthread_mutex_t      mu;        /* the batch statistics */
    orion__model       **v;         /* fixed once the server runs */
    int                  n, cap;
    orion__batch_stats   stats;
};

/* Fills *err from a failed orion_manager_acquire of model `id`: 503 for
 * ORION_ERR_LIMIT / CANCELLED / BUSY (memory; Retry-After), 404 for
 * NOT_FOUND, 500 for load failures. Reads orion_last_error(). */
void orion__lease_error(const char *id, orion_status st, orion__http_error *err);
/* orion_manager_acquire with a keep_alive, errors as above. */
orion_status orion__model_lease(orion__model *x, double keep_alive, orion_model_lease **out, orion__http_error *err);
/* The cache namespace of an encoder's vectors: "ID|ARCH|tMAX_TOKENS[|LEVEL]". */
void orion__model_ns(const orion__model *x, const orion_embed_info *info, bool with_level, orion_qlevel level,
                     char *ns, size_t size);

/* batcher.c: starts / stops (finishing queued jobs) a model's worker. */
orion_status orion__batcher_start(orion__model *x);
void         orion__batcher_stop(orion__model *x);
/* The built-in model's handle, loaded if it is not (under x->mu). */
orion_status orion__builtin_load_locked(orion__model *x);

/* gen_slots.c: frees every extra slot handle (the table is being freed). */
void orion__slots_free(orion__model *x);

#endif /* ORION_SERVICE_MODELS_INTERNAL_H */
