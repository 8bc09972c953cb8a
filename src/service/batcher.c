/*
 * batcher.c — each embedding model's worker thread and job queue: dynamic
 * batching of concurrent requests into shared forward passes.
 *
 * Request threads queue a job (one request's texts that missed the cache)
 * and wait on a condition variable. The worker takes the first job, then
 * keeps taking jobs until the gathered texts reach the token budget
 * (estimated from byte lengths) or the wait (2 ms by default) has passed
 * since it took the first — it waits only when the previous pass had
 * company or requests queued up during it, so a lone client pays no wait.
 * Then it leases the model from the manager (loading it if the manager had
 * unloaded it; the lease pins it for the pass), tokenizes every text, runs
 * them all as one orion_embed_tokens call (which sorts by length and pads
 * per batch), releases the lease with the keep_alive of the latest request
 * in the pass, and hands each job its rows in order. With batching off it
 * takes one job at a time. Only the worker runs the encoder, so a lease's
 * handle is used by one thread at a time.
 *
 * The built-in hash model is held by the model itself (x->h, loaded under
 * x->mu, used outside it only by the worker during a pass); keep_alive 0
 * unloads it when the worker finds its queue empty.
 */
#include "service/models_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

orion_status orion__builtin_load_locked(orion__model *m) {
    if (m->h) return ORION_OK;
    orion_embed_params ep = orion_embed_default_params();
    ep.max_tokens = m->owner->p.max_tokens;
    ep.n_threads = m->owner->p.n_threads;
    orion_status st = m->be->load(m->path, &ep, &m->h);
    if (st != ORION_OK) {
        m->h = NULL;
        return st;
    }
    m->be->info(m->h, &m->info);
    m->info_valid = true;
    snprintf(m->arch, sizeof m->arch, "%s", m->info.arch);
    ORION_LOG_I("model '%s' loaded (%s, dim %d, max %d tokens)", m->id, m->path, m->info.dim, m->info.max_tokens);
    return ORION_OK;
}

static void finish(orion__model *m, orion__job *j) {
    pthread_mutex_lock(&m->mu);
    j->done = true;
    pthread_cond_broadcast(&m->done_cv);
    pthread_mutex_unlock(&m->mu);
}

static void fail_job(orion__job *j, int code, const char *type, const char *msg) {
    j->st = code == 503 ? ORION_ERR_BUSY : code == 400 ? ORION_ERR_LIMIT : ORION_ERR_INTERNAL;
    j->err.code = code;
    snprintf(j->err.type, sizeof j->err.type, "%s", type);
    snprintf(j->err.message, sizeof j->err.message, "%s", msg);
}

static void fail_all(orion__model *m, orion__job *list, const orion__http_error *err) {
    for (orion__job *j = list, *nx; j; j = nx) {
        nx = j->next;
        fail_job(j, err->code, err->type, err->message);
        finish(m, j);
    }
}

static int hist_bucket(int64_t n) {
    int b = 0;
    for (int64_t lim = 1; b < 7 && n > lim; lim *= 2) b++;
    return b;
}

/* The encoder for one pass: the built-in handle, or a lease's. */
typedef struct pass_model {
    const orion__encoder_backend *be;
    void              *h;
    orion_model_lease *lease;
    orion_embed_info   info;
    char               ns[256];
} pass_model;

static orion_status pass_begin(orion__model *m, double keep_alive, pass_model *pm, orion__http_error *err) {
    memset(pm, 0, sizeof *pm);
    if (m->builtin) {
        pthread_mutex_lock(&m->mu);
        orion_status st = orion__builtin_load_locked(m);
        pm->be = m->be;
        pm->h = m->h;
        pm->info = m->info;
        pthread_mutex_unlock(&m->mu);
        if (st != ORION_OK) {
            orion__http_set(err, 500, "server_error", "model '%.100s' failed to load: %.120s", m->id, orion_last_error());
            return st;
        }
        orion__model_ns(m, &pm->info, false, ORION_QLEVEL_F32, pm->ns, sizeof pm->ns);
        return ORION_OK;
    }
    orion_status st = orion__model_lease(m, keep_alive, &pm->lease, err);
    if (st != ORION_OK) return st;
    pm->be = &orion__encoder_gguf;
    pm->h = orion_lease_embedder(pm->lease);
    if (!pm->h) {
        orion_manager_release(m->owner->mgr, pm->lease);
        pm->lease = NULL;
        orion__http_set(err, 500, "server_error", "model '%.100s' is not a sentence encoder", m->id);
        return ORION_ERR_UNSUPPORTED;
    }
    pm->be->info(pm->h, &pm->info);
    orion_qlevel level = orion_lease_level(pm->lease);
    pthread_mutex_lock(&m->mu);
    m->info = pm->info;
    m->info_valid = true;
    m->level = level;
    snprintf(m->arch, sizeof m->arch, "%s", pm->info.arch);
    snprintf(m->path, sizeof m->path, "%s", orion_lease_path(pm->lease));
    pthread_mutex_unlock(&m->mu);
    orion__model_ns(m, &pm->info, true, level, pm->ns, sizeof pm->ns);
    return ORION_OK;
}

static void pass_end(orion__model *m, pass_model *pm) {
    if (pm->lease) orion_manager_release(m->owner->mgr, pm->lease);
    pm->lease = NULL;
    pm->h = NULL;
}

/* Runs a gathered list of jobs as one pass. Called without the lock. */
static void run_jobs(orion__model *m, orion__job *list) {
    int64_t total = 0, n_jobs = 0;
    double keep_alive = ORION_KEEP_ALIVE_DEFAULT;
    for (orion__job *j = list; j; j = j->next) {
        total += j->n;
        n_jobs++;
        keep_alive = j->keep_alive; /* the latest request's value wins, as in Ollama */
    }
    pass_model pm;
    orion__http_error perr;
    if (pass_begin(m, keep_alive, &pm, &perr) != ORION_OK) {
        fail_all(m, list, &perr);
        return;
    }
    int cap = pm.info.max_tokens > 0 ? pm.info.max_tokens : 512;
    int dim = pm.info.dim;
    int32_t **ids = orion__calloc((size_t)total, sizeof *ids);
    int32_t *n_ids = orion__calloc((size_t)total, sizeof *n_ids);
    int32_t *pool = orion__malloc((size_t)total * (size_t)cap * sizeof *pool);
    float *out = orion__malloc((size_t)total * (size_t)dim * sizeof *out);
    orion_status st;
    if (!ids || !n_ids || !pool || !out) {
        pass_end(m, &pm);
        orion__http_set(&perr, 500, "server_error", "out of memory for the batch");
        fail_all(m, list, &perr);
        goto done;
    }
    /* tokenize; a job with an input over the limit (reject mode), or one
     * that expects vectors of another size, fails alone */
    int64_t k = 0, ok_inputs = 0;
    for (orion__job *j = list; j; j = j->next) {
        bool reject = j->truncate == 0 || (j->truncate < 0 && !m->owner->p.truncate);
        j->st = ORION_OK;
        snprintf(j->ns, sizeof j->ns, "%s", pm.ns);
        int64_t k0 = k;
        k = k0 + j->n;
        if (j->dim != dim) {
            char msg[160];
            snprintf(msg, sizeof msg, "model '%.60s' now gives %d-dimensional vectors, not %d", m->id, dim, j->dim);
            fail_job(j, 500, "server_error", msg);
            continue;
        }
        for (int32_t i = 0; i < j->n && j->st == ORION_OK; i++) {
            int32_t nt = 0;
            orion_status ts = pm.be->tokenize(pm.h, j->texts[i], j->lens[i], pool + (k0 + i) * cap, cap, &nt);
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
        if (j->st != ORION_OK) continue;
        for (int32_t i = 0; i < j->n; i++) {
            ids[ok_inputs] = pool + (k0 + i) * cap;
            n_ids[ok_inputs++] = n_ids[k0 + i];
        }
    }
    if (ok_inputs > 0) {
        st = pm.be->embed(pm.h, (const int32_t *const *)ids, n_ids, (int32_t)ok_inputs, out);
        if (st != ORION_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "embedding failed: %s", orion_last_error());
            for (orion__job *j = list; j; j = j->next) {
                if (j->st == ORION_OK) fail_job(j, 500, "server_error", msg);
            }
        }
    }
    /* the model is not needed any more: its keep_alive applies from now */
    pass_end(m, &pm);
    if (m->builtin) { /* the latest request's keep_alive wins: 0 unloads once the queue is empty */
        pthread_mutex_lock(&m->mu);
        m->unload_req = keep_alive == 0;
        pthread_mutex_unlock(&m->mu);
    }
    /* counted before any reply goes out, so a client that has its answer
     * sees this pass in /metrics */
    pthread_mutex_lock(&m->owner->mu);
    m->owner->stats.passes++;
    m->owner->stats.inputs += (uint64_t)ok_inputs;
    m->owner->stats.requests += (uint64_t)n_jobs;
    m->owner->stats.hist_inputs[hist_bucket(ok_inputs)]++;
    pthread_mutex_unlock(&m->owner->mu);
    int64_t r = 0;
    for (orion__job *j = list, *nx; j; j = nx) {
        nx = j->next;
        if (j->st == ORION_OK) {
            memcpy(j->out, out + r * dim, (size_t)j->n * (size_t)dim * sizeof(float));
            r += j->n;
        }
        finish(m, j);
    }
done:
    orion__free(ids);
    orion__free(n_ids);
    orion__free(pool);
    orion__free(out);
}

static int64_t est_tokens(const orion__model *m, const orion__job *j) {
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
        orion__job *list = m->head, *last = m->head;
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
                    orion__job *j = m->head;
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

orion_status orion__batcher_start(orion__model *x) {
    if (pthread_create(&x->worker, NULL, worker_main, x) != 0)
        return orion__fail(ORION_ERR_INTERNAL, "cannot start the worker of model '%s'", x->id);
    x->worker_started = true;
    return ORION_OK;
}

void orion__batcher_stop(orion__model *x) {
    if (!x->worker_started) return;
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->worker, NULL);
    x->worker_started = false;
}

orion_status orion__model_embed(orion__model *x, const char *const *texts, const size_t *lens, int32_t n,
                                int truncate, double keep_alive, int32_t dim, float *out, int32_t *n_tokens,
                                char *ns, size_t ns_size, orion__http_error *err) {
    orion__job j;
    memset(&j, 0, sizeof j);
    j.texts = texts;
    j.lens = lens;
    j.n = n;
    j.truncate = truncate;
    j.keep_alive = keep_alive;
    j.dim = dim;
    j.out = out;
    j.n_tokens = n_tokens;
    pthread_mutex_lock(&x->mu);
    if (x->stop) {
        pthread_mutex_unlock(&x->mu);
        orion__http_set(err, 503, "overloaded_error", "the server is shutting down");
        return ORION_ERR_BUSY;
    }
    if (x->queued > 0 && x->queued + n > x->owner->p.max_queue) {
        pthread_mutex_unlock(&x->mu);
        pthread_mutex_lock(&x->owner->mu);
        x->owner->stats.rejected_queue++;
        pthread_mutex_unlock(&x->owner->mu);
        orion__http_set(err, 503, "overloaded_error", "the queue of model '%.100s' is full (%d inputs); retry shortly",
                        x->id, x->owner->p.max_queue);
        return ORION_ERR_BUSY;
    }
    if (x->tail) x->tail->next = &j; else x->head = &j;
    x->tail = &j;
    x->queued += n;
    x->last_used = orion__now();
    pthread_cond_signal(&x->cv);
    while (!j.done) pthread_cond_wait(&x->done_cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
    if (j.st != ORION_OK) {
        *err = j.err;
        return j.st;
    }
    snprintf(ns, ns_size, "%s", j.ns);
    return ORION_OK;
}
