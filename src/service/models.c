/*
 * models.c — the service's table of models and each model's batcher.
 *
 * This is the one place the server reaches models through, so the model
 * manager (issue 6) can replace it: find a model by id, make sure it is
 * loaded, embed through its batcher, unload, describe.
 *
 * Batcher. Each model has one worker thread and a FIFO of jobs (a job is
 * one request's texts that missed the cache). Request threads queue a job
 * and wait on a condition variable. The worker takes the first job, then
 * keeps taking jobs until the gathered texts reach the token budget
 * (estimated from byte lengths) or the wait (2 ms by default) has passed
 * since it took the first — it waits only when the previous pass had
 * company or requests queued up during it, so a lone client pays no wait;
 * then it tokenizes every text, runs them all as
 * one orion_embed_tokens call (which sorts by length and pads per batch),
 * and hands each job its rows in order. With batching off it takes one job
 * at a time. Only the worker touches the embedder handle after it is
 * loaded, so handles need no locking of their own; loading happens under
 * the model's mutex (from the request thread on first use, or the worker).
 * Unloading is a request the worker carries out when its queue is empty.
 *
 * Backends. A model is either a GGUF sentence encoder (orion_embed_*) or,
 * for tests and benchmarks of the service itself, "hash:DIM[:US]": a
 * deterministic bag-of-words hashing model of DIM dimensions whose forward
 * pass sleeps US microseconds (to stand in for a real model's cost).
 */
#include "service/service.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

/* ---- backends ------------------------------------------------------------------ */

typedef struct backend {
    const char *kind;
    orion_status (*load)(const char *path, const orion_embed_params *p, void **h);
    void (*free)(void *h);
    void (*info)(const void *h, orion_embed_info *out);
    orion_status (*tokenize)(const void *h, const char *text, size_t len, int32_t *ids, int32_t n_max,
                             int32_t *n_out);
    orion_status (*embed)(void *h, const int32_t *const *ids, const int32_t *n_ids, int32_t n, float *out);
} backend;

static orion_status real_load(const char *path, const orion_embed_params *p, void **h) {
    return orion_embed_load(path, p, (orion_embedder **)h);
}
static void real_free(void *h) { orion_embed_free(h); }
static void real_info(const void *h, orion_embed_info *out) { orion_embed_get_info(h, out); }
static orion_status real_tokenize(const void *h, const char *text, size_t len, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    return orion_embed_tokenize(h, text, len, ids, n_max, n_out);
}
static orion_status real_embed(void *h, const int32_t *const *ids, const int32_t *n_ids, int32_t n, float *out) {
    return orion_embed_tokens(h, ids, n_ids, n, out);
}
static const backend REAL = {"gguf", real_load, real_free, real_info, real_tokenize, real_embed};

typedef struct hash_model {
    int dim, max_tokens, delay_us;
} hash_model;

static orion_status hash_load(const char *path, const orion_embed_params *p, void **h) {
    int dim = 0, delay = 0;
    if (sscanf(path, "hash:%d:%d", &dim, &delay) < 1 || dim < 1 || dim > 4096 || delay < 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: expected hash:DIM[:DELAY_US]", path);
    hash_model *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "no memory");
    m->dim = dim;
    m->delay_us = delay;
    m->max_tokens = p->max_tokens > 0 ? p->max_tokens : 64;
    *h = m;
    return ORION_OK;
}
static void hash_free(void *h) { orion__free(h); }
static void hash_info(const void *h, orion_embed_info *out) {
    const hash_model *m = h;
    memset(out, 0, sizeof *out);
    snprintf(out->arch, sizeof out->arch, "hash");
    snprintf(out->name, sizeof out->name, "hash-%d", m->dim);
    out->dim = m->dim;
    out->max_tokens = m->max_tokens;
    out->normalize = true;
}
static orion_status hash_tokenize(const void *h, const char *text, size_t len, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    const hash_model *m = h;
    return orion__hash_tokenize(text, len, m->max_tokens, ids, n_max, n_out);
}
static orion_status hash_embed(void *h, const int32_t *const *ids, const int32_t *n_ids, int32_t n, float *out) {
    const hash_model *m = h;
    for (int32_t i = 0; i < n; i++) orion__hash_vector(ids[i], n_ids[i], m->dim, out + (size_t)i * m->dim);
    if (m->delay_us) {
        struct timespec ts = {m->delay_us / 1000000, (long)(m->delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return ORION_OK;
}
static const backend HASH = {"hash", hash_load, hash_free, hash_info, hash_tokenize, hash_embed};

orion_status orion__hash_tokenize(const char *text, size_t len, int max_tokens, int32_t *ids, int32_t n_max,
                                  int32_t *n_out) {
    int32_t n = 0;
    if (n < n_max) ids[n] = 1; /* [CLS] */
    n++;
    size_t i = 0;
    while (i < len && n < max_tokens - 1) {
        while (i < len && text[i] == ' ') i++;
        size_t s = i;
        while (i < len && text[i] != ' ') i++;
        if (i > s) {
            if (n < n_max) ids[n] = 100 + (int32_t)(XXH3_64bits(text + s, i - s) % 30000);
            n++;
        }
    }
    if (n < n_max) ids[n] = 2; /* [SEP] */
    n++;
    *n_out = n;
    return n > n_max ? orion__fail(ORION_ERR_RANGE, "hash tokenize: %d ids do not fit in %d", n, n_max) : ORION_OK;
}

void orion__hash_vector(const int32_t *ids, int32_t n, int dim, float *out) {
    for (int d = 0; d < dim; d++) out[d] = 0;
    for (int32_t t = 0; t < n; t++) {
        uint64_t s = (uint64_t)ids[t] * 0x9e3779b97f4a7c15ull + (uint64_t)t;
        for (int d = 0; d < dim; d++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            out[d] += (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
        }
    }
    double nn = 0;
    for (int d = 0; d < dim; d++) nn += (double)out[d] * out[d];
    float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
    for (int d = 0; d < dim; d++) out[d] *= inv;
}

/* True for a GGUF file of a decoder (llama, mistral). */
static bool is_llm_file(const char *path) {
    orion_gguf *g = NULL;
    if (orion_gguf_open(path, &g) != ORION_OK) return false;
    char arch[64] = "";
    orion_gguf_get_str(g, "general.architecture", arch, sizeof arch);
    orion_gguf_free(g);
    return strcmp(arch, "llama") == 0 || strcmp(arch, "mistral") == 0;
}

/* ---- the table ------------------------------------------------------------------ */

typedef struct job job;
struct job {
    const char *const *texts;
    const size_t      *lens;
    int32_t            n;
    int                truncate;
    float             *out;
    int32_t           *n_tokens;
    orion_status       st;
    orion__http_error  err;
    bool               done;
    job               *next;
};

struct orion__model {
    orion__models  *owner;
    char            id[128], path[1024];
    const backend  *be;
    void           *h;            /* loaded handle or NULL */
    orion_embed_info info;        /* valid once loaded at least once */
    bool            info_valid;
    pthread_mutex_t mu;
    pthread_cond_t  cv;           /* work arrived / stop */
    pthread_cond_t  done_cv;      /* a job finished */
    job            *head, *tail;
    int64_t         queued;       /* inputs in the queue */
    bool            stop, unload_req, busy;
    pthread_t       worker;
    bool            worker_started;
    double          last_used;
    /* generation models: a pool of handles (each its own KV cache; the
     * weights are one shared mapping), handed out first come first served */
    bool            is_llm;
    orion_llm      *slots[ORION__MAX_GEN_SLOTS];
    bool            slot_busy[ORION__MAX_GEN_SLOTS];
    int             n_slots;
    uint64_t        ticket_next, ticket_serving;
    pthread_cond_t  slot_cv;
    orion_llm_info  llm_info;
};

struct orion__models {
    orion__models_params p;
    pthread_mutex_t      mu;        /* the table and the batch statistics */
    orion__model       **v;
    int                  n, cap;
    orion__batch_stats   stats;
};

static orion_status load_locked(orion__model *m) {
    if (m->h) return ORION_OK;
    orion_embed_params ep = orion_embed_default_params();
    ep.max_tokens = m->owner->p.max_tokens;
    ep.n_threads = m->owner->p.n_threads;
    ep.batch_size = 64;
    double t0 = orion__now();
    orion_status st = m->be->load(m->path, &ep, &m->h);
    if (st != ORION_OK) {
        m->h = NULL;
        return st;
    }
    m->be->info(m->h, &m->info);
    m->info_valid = true;
    ORION_LOG_I("model '%s' loaded from %s in %.0f ms (%s, dim %d, max %d tokens)", m->id, m->path,
                1e3 * (orion__now() - t0), m->info.arch, m->info.dim, m->info.max_tokens);
    return ORION_OK;
}

/* Loads generation slot k if it is not (under the model's lock). */
static orion_status llm_slot_load(orion__model *m, int k) {
    if (m->slots[k]) return ORION_OK;
    orion_llm_params lp = orion_llm_default_params();
    lp.n_threads = m->owner->p.n_threads > 0 ? m->owner->p.n_threads : 1;
    lp.n_ctx = m->owner->p.gen_ctx;
    orion_status st = orion_llm_load(m->path, &lp, &m->slots[k]);
    if (st != ORION_OK) {
        m->slots[k] = NULL;
        return st;
    }
    orion_llm_get_info(m->slots[k], &m->llm_info);
    ORION_LOG_I("model '%s' slot %d loaded from %s (%s, n_ctx %d)", m->id, k, m->path, m->llm_info.arch,
                m->llm_info.n_ctx);
    return ORION_OK;
}

static void finish(orion__model *m, job *j) {
    pthread_mutex_lock(&m->mu);
    j->done = true;
    pthread_cond_broadcast(&m->done_cv);
    pthread_mutex_unlock(&m->mu);
}

static void fail_job(job *j, int code, const char *type, const char *msg) {
    j->st = code == 503 ? ORION_ERR_BUSY : code == 400 ? ORION_ERR_LIMIT : ORION_ERR_INTERNAL;
    j->err.code = code;
    snprintf(j->err.type, sizeof j->err.type, "%s", type);
    snprintf(j->err.message, sizeof j->err.message, "%s", msg);
}

static int hist_bucket(int64_t n) {
    int b = 0;
    for (int64_t lim = 1; b < 7 && n > lim; lim *= 2) b++;
    return b;
}

/* Runs a gathered list of jobs as one pass. Called without the lock. */
static void run_jobs(orion__model *m, job *list) {
    int64_t total = 0, n_jobs = 0;
    for (job *j = list; j; j = j->next) {
        total += j->n;
        n_jobs++;
    }
    pthread_mutex_lock(&m->mu);
    orion_status st = load_locked(m);
    pthread_mutex_unlock(&m->mu);
    if (st != ORION_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "model '%s' failed to load: %s", m->id, orion_last_error());
        for (job *j = list, *nx; j; j = nx) {
            nx = j->next;
            fail_job(j, 500, "server_error", msg);
            finish(m, j);
        }
        return;
    }
    int cap = m->info.max_tokens > 0 ? m->info.max_tokens : 512;
    int dim = m->info.dim;
    int32_t **ids = orion__calloc((size_t)total, sizeof *ids);
    int32_t *n_ids = orion__calloc((size_t)total, sizeof *n_ids);
    int32_t *pool = orion__malloc((size_t)total * (size_t)cap * sizeof *pool);
    float *out = orion__malloc((size_t)total * (size_t)dim * sizeof *out);
    if (!ids || !n_ids || !pool || !out) {
        for (job *j = list, *nx; j; j = nx) {
            nx = j->next;
            fail_job(j, 500, "server_error", "out of memory for the batch");
            finish(m, j);
        }
        goto done;
    }
    /* tokenize; a job with an input over the limit (reject mode) fails alone */
    int64_t k = 0, ok_inputs = 0;
    for (job *j = list; j; j = j->next) {
        bool reject = j->truncate == 0 || (j->truncate < 0 && !m->owner->p.truncate);
        j->st = ORION_OK;
        int64_t k0 = k;
        for (int32_t i = 0; i < j->n && j->st == ORION_OK; i++) {
            int32_t nt = 0;
            orion_status ts = m->be->tokenize(m->h, j->texts[i], j->lens[i], pool + (k0 + i) * cap, cap, &nt);
            char msg[256];
            if (ts != ORION_OK) {
                snprintf(msg, sizeof msg, "input %d: %s", i, orion_last_error());
                fail_job(j, 400, "invalid_request_error", msg);
            } else if (reject && nt >= cap) {
                snprintf(msg, sizeof msg,
                         "input %d reaches the limit of %d tokens and would be truncated (send truncate: true to "
                         "allow it)", i, cap);
                fail_job(j, 400, "invalid_request_error", msg);
            }
            n_ids[k0 + i] = nt;
            if (j->n_tokens) j->n_tokens[i] = nt;
        }
        k = k0 + j->n;
        if (j->st != ORION_OK) continue;
        for (int32_t i = 0; i < j->n; i++) {
            ids[ok_inputs] = pool + (k0 + i) * cap;
            n_ids[ok_inputs++] = n_ids[k0 + i];
        }
    }
    if (ok_inputs > 0) {
        st = m->be->embed(m->h, (const int32_t *const *)ids, n_ids, (int32_t)ok_inputs, out);
        if (st != ORION_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "embedding failed: %s", orion_last_error());
            for (job *j = list; j; j = j->next) {
                if (j->st == ORION_OK) fail_job(j, 500, "server_error", msg);
            }
        }
    }
    int64_t r = 0;
    for (job *j = list, *nx; j; j = nx) {
        nx = j->next;
        if (j->st == ORION_OK) {
            memcpy(j->out, out + r * dim, (size_t)j->n * (size_t)dim * sizeof(float));
            r += j->n;
        }
        finish(m, j);
    }
    pthread_mutex_lock(&m->owner->mu);
    m->owner->stats.passes++;
    m->owner->stats.inputs += (uint64_t)ok_inputs;
    m->owner->stats.requests += (uint64_t)n_jobs;
    m->owner->stats.hist_inputs[hist_bucket(ok_inputs)]++;
    pthread_mutex_unlock(&m->owner->mu);
done:
    orion__free(ids);
    orion__free(n_ids);
    orion__free(pool);
    orion__free(out);
}

static int64_t est_tokens(const orion__model *m, const job *j) {
    int64_t t = 0;
    int cap = m->info_valid && m->info.max_tokens > 0 ? m->info.max_tokens : 512;
    for (int32_t i = 0; i < j->n; i++) t += ORION_MIN((int64_t)j->lens[i] / 4 + 2, (int64_t)cap);
    return t;
}

static void *worker_main(void *arg) {
    orion__model *m = arg;
    const orion__models_params *p = &m->owner->p;
    bool crowd = false; /* the last pass had company, or requests queued during it */
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->head && !m->stop) {
            if (m->unload_req) {
                if (m->h) {
                    m->be->free(m->h);
                    m->h = NULL;
                    ORION_LOG_I("model '%s' unloaded", m->id);
                }
                m->unload_req = false;
            }
            pthread_cond_wait(&m->cv, &m->mu);
        }
        if (!m->head) break; /* stop with an empty queue */
        /* take the first job, then gather company */
        job *list = m->head, *last = m->head;
        m->head = m->head->next;
        if (!m->head) m->tail = NULL;
        last->next = NULL;
        m->queued -= last->n;
        int64_t tokens = est_tokens(m, last);
        int gathered = 1;
        if (p->batching && !m->stop) {
            /* wait for company only when there has lately been some: a
             * lone client pays no wait */
            uint64_t deadline = orion__now_ns() + (crowd ? (uint64_t)p->batch_wait_us * 1000u : 0u);
            while (tokens < p->batch_tokens) {
                if (m->head) {
                    int64_t t = est_tokens(m, m->head);
                    if (tokens + t > p->batch_tokens) break;
                    job *j = m->head;
                    m->head = j->next;
                    if (!m->head) m->tail = NULL;
                    j->next = NULL;
                    last->next = j;
                    last = j;
                    m->queued -= j->n;
                    tokens += t;
                    gathered++;
                    continue;
                }
                uint64_t now = orion__now_ns();
                if (now >= deadline || m->stop) break;
                /* the condition variable runs on CLOCK_REALTIME: wait the remaining span */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t left = deadline - now;
                ts.tv_sec += (time_t)(left / 1000000000u);
                ts.tv_nsec += (long)(left % 1000000000u);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&m->cv, &m->mu, &ts);
            }
        }
        m->busy = true;
        pthread_mutex_unlock(&m->mu);
        run_jobs(m, list);
        pthread_mutex_lock(&m->mu);
        m->busy = false;
        crowd = gathered > 1 || m->head != NULL;
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

orion_status orion__models_init(const orion__models_params *p, orion__models **out) {
    *out = NULL;
    orion__models *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "no memory");
    m->p = *p;
    if (m->p.batch_tokens <= 0) m->p.batch_tokens = 8192;
    if (m->p.batch_wait_us < 0) m->p.batch_wait_us = 0;
    if (m->p.max_queue <= 0) m->p.max_queue = 8192;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return ORION_OK;
}

void orion__models_free(orion__models *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        orion__model *x = m->v[i];
        if (x->worker_started) {
            pthread_mutex_lock(&x->mu);
            x->stop = true;
            pthread_cond_broadcast(&x->cv);
            pthread_mutex_unlock(&x->mu);
            pthread_join(x->worker, NULL);
        }
        if (x->h) x->be->free(x->h);
        for (int k = 0; k < x->n_slots; k++) orion_llm_free(x->slots[k]);
        pthread_mutex_destroy(&x->mu);
        pthread_cond_destroy(&x->cv);
        pthread_cond_destroy(&x->done_cv);
        pthread_cond_destroy(&x->slot_cv);
        orion__free(x);
    }
    orion__free(m->v);
    pthread_mutex_destroy(&m->mu);
    orion__free(m);
}

orion_status orion__models_add(orion__models *m, const char *id, const char *path, bool load) {
    if (!id || !*id || !path || !*path) return orion__fail(ORION_ERR_INVALID_ARG, "a model needs an id and a path");
    if (strlen(id) >= 128 || strlen(path) >= 1024) return orion__fail(ORION_ERR_INVALID_ARG, "model id or path too long");
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->v[i]->id, id) == 0) return orion__fail(ORION_ERR_INVALID_ARG, "model '%s' given twice", id);
    }
    if (m->n == m->cap) {
        int nc = m->cap ? 2 * m->cap : 4;
        orion__model **v = orion__realloc(m->v, (size_t)nc * sizeof *v);
        if (!v) return orion__fail(ORION_ERR_NOMEM, "no memory");
        m->v = v;
        m->cap = nc;
    }
    orion__model *x = orion__calloc(1, sizeof *x);
    if (!x) return orion__fail(ORION_ERR_NOMEM, "no memory");
    x->owner = m;
    snprintf(x->id, sizeof x->id, "%s", id);
    snprintf(x->path, sizeof x->path, "%s", path);
    x->be = strncmp(path, "hash:", 5) == 0 ? &HASH : &REAL;
    x->is_llm = x->be == &REAL && is_llm_file(path);
    x->n_slots = m->p.gen_slots > 0 ? ORION_MIN(m->p.gen_slots, ORION__MAX_GEN_SLOTS) : 2;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    pthread_cond_init(&x->done_cv, NULL);
    pthread_cond_init(&x->slot_cv, NULL);
    if (x->is_llm) {
        if (load) {
            orion_status st = llm_slot_load(x, 0);
            if (st != ORION_OK) goto fail;
        }
        m->v[m->n++] = x;
        return ORION_OK;
    }
    if (load) {
        orion_status st = load_locked(x);
        if (st != ORION_OK) goto fail;
    }
    if (pthread_create(&x->worker, NULL, worker_main, x) != 0) {
        orion__fail(ORION_ERR_INTERNAL, "cannot start the worker of model '%s'", id);
        goto fail;
    }
    x->worker_started = true;
    m->v[m->n++] = x;
    return ORION_OK;
fail:;
    char why[512];
    snprintf(why, sizeof why, "%s", orion_last_error());
    if (x->h) x->be->free(x->h);
    for (int i = 0; i < x->n_slots; i++) orion_llm_free(x->slots[i]);
    pthread_cond_destroy(&x->slot_cv);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    pthread_cond_destroy(&x->done_cv);
    orion__free(x);
    return orion__fail(ORION_ERR_IO, "model '%s': %s", id, why);
}

int orion__models_count(orion__models *m) { return m->n; }

void orion__models_describe(orion__models *m, int i, orion__model_desc *d) {
    memset(d, 0, sizeof *d);
    if (i < 0 || i >= m->n) return;
    orion__model *x = m->v[i];
    pthread_mutex_lock(&x->mu);
    snprintf(d->id, sizeof d->id, "%s", x->id);
    snprintf(d->path, sizeof d->path, "%s", x->path);
    d->loaded = x->h != NULL;
    d->is_llm = x->is_llm;
    if (x->is_llm) {
        for (int k = 0; k < x->n_slots; k++) {
            if (!x->slots[k]) continue;
            d->loaded = true;
            d->resident_bytes += x->llm_info.kv_bytes + x->llm_info.scratch_bytes;
        }
        if (d->loaded) d->resident_bytes += x->llm_info.weight_bytes; /* one mapping */
        snprintf(d->arch, sizeof d->arch, "%s", x->llm_info.arch);
        d->weight_bytes = x->llm_info.weight_bytes;
        d->max_tokens = x->llm_info.n_ctx;
    } else if (x->info_valid) {
        snprintf(d->arch, sizeof d->arch, "%s", x->info.arch);
        d->dim = x->info.dim;
        d->max_tokens = x->info.max_tokens;
        d->weight_bytes = x->info.weight_bytes;
        d->resident_bytes = d->loaded ? x->info.weight_bytes + x->info.scratch_bytes : 0;
    }
    d->last_used = x->last_used;
    pthread_mutex_unlock(&x->mu);
}

orion__model *orion__models_find(orion__models *m, const char *id) {
    if (m->n == 0) return NULL;
    if (!id || !*id) return m->v[0];
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->v[i]->id, id) == 0) return m->v[i];
    }
    /* Ollama clients add a ":latest" tag */
    size_t l = strlen(id);
    if (l > 7 && strcmp(id + l - 7, ":latest") == 0) {
        for (int i = 0; i < m->n; i++) {
            if (strlen(m->v[i]->id) == l - 7 && strncmp(m->v[i]->id, id, l - 7) == 0) return m->v[i];
        }
    }
    return NULL;
}

const char *orion__model_id(const orion__model *model) { return model->id; }

orion_status orion__model_ensure(orion__model *x, int32_t *dim, char *ns, size_t ns_size, orion__http_error *err) {
    if (x->is_llm) {
        err->code = 400;
        snprintf(err->type, sizeof err->type, "invalid_request_error");
        snprintf(err->message, sizeof err->message, "model '%s' generates text; it gives no embeddings", x->id);
        return ORION_ERR_UNSUPPORTED;
    }
    pthread_mutex_lock(&x->mu);
    orion_status st = load_locked(x);
    if (st == ORION_OK) {
        x->unload_req = false;
        *dim = x->info.dim;
        snprintf(ns, ns_size, "%s|%s|t%d", x->id, x->info.arch, x->info.max_tokens);
        x->last_used = orion__now();
    } else {
        err->code = 500;
        snprintf(err->type, sizeof err->type, "server_error");
        snprintf(err->message, sizeof err->message, "model '%s' failed to load: %s", x->id, orion_last_error());
    }
    pthread_mutex_unlock(&x->mu);
    return st;
}

orion_status orion__model_embed(orion__model *x, const char *const *texts, const size_t *lens, int32_t n,
                                int truncate, float *out, int32_t *n_tokens, orion__http_error *err) {
    job j;
    memset(&j, 0, sizeof j);
    j.texts = texts;
    j.lens = lens;
    j.n = n;
    j.truncate = truncate;
    j.out = out;
    j.n_tokens = n_tokens;
    pthread_mutex_lock(&x->mu);
    if (x->stop) {
        pthread_mutex_unlock(&x->mu);
        fail_job(&j, 503, "overloaded_error", "the server is shutting down");
        *err = j.err;
        return ORION_ERR_BUSY;
    }
    if (x->queued > 0 && x->queued + n > x->owner->p.max_queue) {
        pthread_mutex_unlock(&x->mu);
        pthread_mutex_lock(&x->owner->mu);
        x->owner->stats.rejected_queue++;
        pthread_mutex_unlock(&x->owner->mu);
        char msg[256];
        snprintf(msg, sizeof msg, "the queue of model '%s' is full (%d inputs); retry shortly", x->id,
                 x->owner->p.max_queue);
        fail_job(&j, 503, "overloaded_error", msg);
        *err = j.err;
        return ORION_ERR_BUSY;
    }
    if (x->tail) x->tail->next = &j; else x->head = &j;
    x->tail = &j;
    x->queued += n;
    x->last_used = orion__now();
    pthread_cond_signal(&x->cv);
    while (!j.done) pthread_cond_wait(&x->done_cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
    if (j.st != ORION_OK) *err = j.err;
    return j.st;
}

orion_status orion__models_unload(orion__models *m, const char *id, orion__http_error *err) {
    orion__model *x = orion__models_find(m, id);
    if (!x) {
        err->code = 404;
        snprintf(err->type, sizeof err->type, "not_found_error");
        snprintf(err->message, sizeof err->message, "model '%s' not found", id ? id : "");
        return ORION_ERR_NOT_FOUND;
    }
    pthread_mutex_lock(&x->mu);
    x->unload_req = true;
    pthread_cond_signal(&x->cv);
    if (x->is_llm) {
        for (int k = 0; k < x->n_slots; k++) {
            if (x->slots[k] && !x->slot_busy[k]) {
                orion_llm_free(x->slots[k]);
                x->slots[k] = NULL;
            }
        }
        x->unload_req = false;
    }
    pthread_mutex_unlock(&x->mu);
    return ORION_OK;
}

bool orion__model_is_llm(const orion__model *x) { return x->is_llm; }

orion_status orion__model_llm_acquire(orion__model *x, orion_llm **llm, int *slot, orion__http_error *err) {
    if (!x->is_llm) {
        err->code = 400;
        snprintf(err->type, sizeof err->type, "invalid_request_error");
        snprintf(err->message, sizeof err->message, "model '%s' is an embedding model; it cannot generate", x->id);
        return ORION_ERR_UNSUPPORTED;
    }
    pthread_mutex_lock(&x->mu);
    /* first come, first served: wait for our ticket, then a free slot */
    uint64_t me = x->ticket_next++;
    int k = -1;
    for (;;) {
        if (x->stop) break;
        if (me == x->ticket_serving) {
            for (int i = 0; i < x->n_slots && k < 0; i++) {
                if (!x->slot_busy[i]) k = i;
            }
            if (k >= 0) break;
        }
        pthread_cond_wait(&x->slot_cv, &x->mu);
    }
    x->ticket_serving++;
    pthread_cond_broadcast(&x->slot_cv);
    if (k < 0) {
        pthread_mutex_unlock(&x->mu);
        err->code = 503;
        snprintf(err->type, sizeof err->type, "overloaded_error");
        snprintf(err->message, sizeof err->message, "the server is shutting down");
        return ORION_ERR_BUSY;
    }
    x->slot_busy[k] = true;
    x->last_used = orion__now();
    orion_status st = llm_slot_load(x, k);
    if (st != ORION_OK) {
        x->slot_busy[k] = false;
        pthread_cond_broadcast(&x->slot_cv);
        pthread_mutex_unlock(&x->mu);
        err->code = 500;
        snprintf(err->type, sizeof err->type, "server_error");
        char why[256];
        snprintf(why, sizeof why, "%s", orion_last_error());
        snprintf(err->message, sizeof err->message, "model '%.60s' failed to load: %.160s", x->id, why);
        return st;
    }
    *llm = x->slots[k];
    *slot = k;
    pthread_mutex_unlock(&x->mu);
    return ORION_OK;
}

void orion__model_llm_release(orion__model *x, int slot) {
    pthread_mutex_lock(&x->mu);
    if (slot >= 0 && slot < x->n_slots) x->slot_busy[slot] = false;
    x->last_used = orion__now();
    pthread_cond_broadcast(&x->slot_cv);
    pthread_mutex_unlock(&x->mu);
}

void orion__models_batch_stats(orion__models *m, orion__batch_stats *out) {
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}
