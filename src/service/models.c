/*
 * models.c — the service's table of models: the one interface the server
 * reaches models through (find, ensure, embed, generate, unload, describe).
 *
 * Models are held by the model manager (src/manager/): `--model ID=PATH`
 * files are registered with it — the task from the GGUF architecture
 * ("llama" and "mistral" generate, anything else embeds), the level from
 * the type that holds most of the weight bytes, so the one file is found
 * at its own level whatever the tier prefers — and registry models are in
 * it already. Every use takes a lease (orion_manager_acquire), which loads
 * the model if the manager does not hold it and pins it until released;
 * the manager unloads idle ones (keep_alive, its tier's idle delay, LRU,
 * memory pressure). An embedding model's worker (batcher.c) leases it per
 * gathered pass; a generation request leases it for its whole reply
 * (gen_slots.c). The table itself only remembers what the last load said
 * (dim, arch, level) so that cache hits need no model at all.
 *
 * The built-in "hash:DIM" test model is not a file: the table holds it
 * itself, loaded on first use and unloaded on request, outside the manager.
 */
#include "service/models_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void orion__http_set(orion__http_error *err, int code, const char *type, const char *fmt, ...) {
    err->code = code;
    snprintf(err->type, sizeof err->type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void orion__lease_error(const char *id, orion_status st, orion__http_error *err) {
    char why[200];
    snprintf(why, sizeof why, "%s", orion_last_error());
    switch (st) {
    case ORION_ERR_LIMIT:
    case ORION_ERR_BUSY:
    case ORION_ERR_CANCELLED:
        orion__http_set(err, 503, "overloaded_error", "model '%.60s' cannot be loaded now: %.180s", id, why);
        break;
    case ORION_ERR_NOT_FOUND:
        orion__http_set(err, 404, "not_found_error", "model '%.60s': %.180s", id, why);
        break;
    default:
        orion__http_set(err, 500, "server_error", "model '%.60s' failed to load: %.180s", id, why);
        break;
    }
}

orion_status orion__model_lease(orion__model *x, double keep_alive, orion_model_lease **out, orion__http_error *err) {
    orion_acquire_params ap = orion_acquire_default_params();
    ap.keep_alive_s = keep_alive;
    ap.lazy = !x->owner->p.prefault;
    orion_status st = orion_manager_acquire(x->owner->mgr, x->id, &ap, out);
    if (st != ORION_OK) {
        *out = NULL;
        orion__lease_error(x->id, st, err);
    }
    return st;
}

void orion__model_ns(const orion__model *x, const orion_embed_info *info, bool with_level, orion_qlevel level,
                     char *ns, size_t size) {
    if (with_level) snprintf(ns, size, "%s|%s|t%d|%s", x->id, info->arch, info->max_tokens, orion_qlevel_name(level));
    else snprintf(ns, size, "%s|%s|t%d", x->id, info->arch, info->max_tokens);
}

/* ---- the table ------------------------------------------------------------------ */

orion_status orion__models_init(const orion__models_params *p, orion__models **out) {
    *out = NULL;
    if (!p->manager) return orion__fail(ORION_ERR_INVALID_ARG, "the table of models needs a manager");
    orion__models *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "no memory");
    m->p = *p;
    m->mgr = p->manager;
    if (m->p.batch_tokens <= 0) m->p.batch_tokens = 8192;
    if (m->p.batch_wait_us < 0) m->p.batch_wait_us = 0;
    if (m->p.max_queue <= 0) m->p.max_queue = 8192;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return ORION_OK;
}

static void model_destroy(orion__model *x) {
    if (!x) return;
    orion__batcher_stop(x);
    if (x->h) x->be->free(x->h);
    orion__slots_free(x);
    pthread_mutex_destroy(&x->mu);
    pthread_mutex_destroy(&x->clip_mu);
    pthread_cond_destroy(&x->cv);
    pthread_cond_destroy(&x->done_cv);
    pthread_cond_destroy(&x->slot_cv);
    orion__free(x);
}

void orion__models_free(orion__models *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) model_destroy(m->v[i]);
    orion__free(m->v);
    pthread_mutex_destroy(&m->mu);
    orion__free(m);
}

/* A GGUF file's architecture and the level of the type holding most of its
 * weight bytes. */
static orion_status gguf_probe(const char *path, char *arch, size_t arch_size, orion_qlevel *level) {
    orion_gguf *g = NULL;
    orion_status st = orion_gguf_open(path, &g);
    if (st != ORION_OK) return st;
    snprintf(arch, arch_size, "%s", "");
    orion_gguf_get_str(g, "general.architecture", arch, arch_size);
    uint64_t bytes[ORION_QLEVEL_COUNT] = {0};
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) {
        const orion_gguf_tensor *t = orion_gguf_tensor_at(g, i);
        orion_qlevel l;
        switch (t->type) {
        case ORION_TYPE_Q4_0:
        case ORION_TYPE_Q4_1: l = ORION_QLEVEL_Q4; break;
        case ORION_TYPE_Q8_0: l = ORION_QLEVEL_Q8; break;
        case ORION_TYPE_F16:
        case ORION_TYPE_BF16: l = ORION_QLEVEL_F16; break;
        default: l = ORION_QLEVEL_F32; break;
        }
        bytes[l] += t->n_bytes;
    }
    orion_gguf_free(g);
    *level = ORION_QLEVEL_F32;
    for (int l = 0; l < ORION_QLEVEL_COUNT; l++)
        if (bytes[l] > bytes[*level]) *level = (orion_qlevel)l;
    return ORION_OK;
}

static orion_status table_push(orion__models *m, orion__model *x) {
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->v[i]->id, x->id) == 0) return orion__fail(ORION_ERR_INVALID_ARG, "model '%s' given twice", x->id);
    }
    if (m->n == m->cap) {
        int nc = m->cap ? 2 * m->cap : 4;
        orion__model **v = orion__realloc(m->v, (size_t)nc * sizeof *v);
        if (!v) return orion__fail(ORION_ERR_NOMEM, "no memory");
        m->v = v;
        m->cap = nc;
    }
    m->v[m->n++] = x;
    return ORION_OK;
}

static orion__model *model_new(orion__models *m, const char *id) {
    orion__model *x = orion__calloc(1, sizeof *x);
    if (!x) return NULL;
    x->owner = m;
    snprintf(x->id, sizeof x->id, "%s", id);
    x->n_slots = m->p.gen_slots > 0 ? ORION_MIN(m->p.gen_slots, ORION__MAX_GEN_SLOTS) : 2;
    pthread_mutex_init(&x->mu, NULL);
    pthread_mutex_init(&x->clip_mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    pthread_cond_init(&x->done_cv, NULL);
    pthread_cond_init(&x->slot_cv, NULL);
    return x;
}

/* Loads a managed model once at start (eager loading): a lease, released
 * with the policy's keep-alive. */
static orion_status preload(orion__model *x, orion__http_error *err) {
    orion_model_lease *lease = NULL;
    orion_status st = orion__model_lease(x, ORION_KEEP_ALIVE_DEFAULT, &lease, err);
    if (st != ORION_OK) return st;
    orion_embedder *emb = orion_lease_embedder(lease);
    orion_llm *llm = orion_lease_llm(lease);
    pthread_mutex_lock(&x->mu);
    if (emb) {
        orion_embed_get_info(emb, &x->info);
        x->info_valid = true;
        x->level = orion_lease_level(lease);
        snprintf(x->arch, sizeof x->arch, "%s", x->info.arch);
    } else if (llm) {
        orion_llm_get_info(llm, &x->llm_info);
        x->llm_info_valid = true;
        snprintf(x->arch, sizeof x->arch, "%s", x->llm_info.arch);
    }
    snprintf(x->path, sizeof x->path, "%s", orion_lease_path(lease));
    pthread_mutex_unlock(&x->mu);
    orion_manager_release(x->owner->mgr, lease);
    return ORION_OK;
}

/* Adds x to the table, starts its batcher (embedding models) and loads it
 * when asked. Frees x on failure. */
static orion_status model_finish_add(orion__models *m, orion__model *x, bool load) {
    orion_status st = table_push(m, x);
    if (st != ORION_OK) {
        model_destroy(x);
        return st;
    }
    if (!x->is_llm && (st = orion__batcher_start(x)) != ORION_OK) return st; /* freed with the table */
    if (!load) return ORION_OK;
    if (x->builtin) {
        pthread_mutex_lock(&x->mu);
        st = orion__builtin_load_locked(x);
        pthread_mutex_unlock(&x->mu);
        return st;
    }
    orion__http_error err;
    st = preload(x, &err);
    return st == ORION_OK ? st : orion__fail(st, "%s", err.message);
}

orion_status orion__models_add(orion__models *m, const char *id, const char *path, const char *mmproj, bool load) {
    if (!id || !*id || !path || !*path) return orion__fail(ORION_ERR_INVALID_ARG, "a model needs an id and a path");
    if (strlen(id) >= 64 || strlen(path) >= 1024 || (mmproj && strlen(mmproj) >= 1024))
        return orion__fail(ORION_ERR_INVALID_ARG, "model id or path too long");
    if (mmproj && !*mmproj) mmproj = NULL;
    if (mmproj && strncmp(path, "hash:", 5) == 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "model '%s': the built-in test model takes no projector", id);
    orion__model *x = model_new(m, id);
    if (!x) return orion__fail(ORION_ERR_NOMEM, "no memory");
    snprintf(x->path, sizeof x->path, "%s", path);
    if (strncmp(path, "hash:", 5) == 0) {
        x->builtin = true;
        x->be = &orion__encoder_hash;
        snprintf(x->arch, sizeof x->arch, "hash");
        return model_finish_add(m, x, load);
    }
    orion_qlevel level;
    orion_status st = gguf_probe(path, x->arch, sizeof x->arch, &level);
    if (st != ORION_OK) {
        char why[400];
        snprintf(why, sizeof why, "%s", orion_last_error());
        model_destroy(x);
        return orion__fail(st, "model '%s': %s", id, why);
    }
    x->is_llm = strcmp(x->arch, "llama") == 0 || strcmp(x->arch, "mistral") == 0;
    if (mmproj && !x->is_llm) {
        model_destroy(x);
        return orion__fail(ORION_ERR_INVALID_ARG, "model '%s': a projector (--mmproj) needs a decoder (llama, mistral)",
                           id);
    }
    if (mmproj) {
        char parch[32];
        orion_qlevel plevel;
        st = gguf_probe(mmproj, parch, sizeof parch, &plevel);
        if (st != ORION_OK || strcmp(parch, "clip") != 0) {
            char why[400];
            snprintf(why, sizeof why, "%s", st != ORION_OK ? orion_last_error() : "not a projector (architecture is not 'clip')");
            model_destroy(x);
            return orion__fail(st != ORION_OK ? st : ORION_ERR_FORMAT, "model '%s': projector %s: %s", id, mmproj, why);
        }
        snprintf(x->mmproj, sizeof x->mmproj, "%s", mmproj);
    }
    orion_model_entry e;
    memset(&e, 0, sizeof e);
    e.id = id;
    e.task = x->is_llm ? ORION_TASK_GENERATE : ORION_TASK_EMBED;
    e.arch = x->arch;
    e.files[level] = path;
    e.n_ctx = x->is_llm ? m->p.gen_ctx : 0;
    e.mmproj = mmproj;
    if ((st = orion_manager_register(m->mgr, &e)) != ORION_OK) {
        model_destroy(x);
        return st;
    }
    return model_finish_add(m, x, load);
}

orion_status orion__models_add_registered(orion__models *m, const char *id, bool load) {
    orion_task task;
    orion_status st = orion_manager_model_task(m->mgr, id, &task);
    if (st != ORION_OK) return st;
    orion__model *x = model_new(m, id);
    if (!x) return orion__fail(ORION_ERR_NOMEM, "no memory");
    x->is_llm = task == ORION_TASK_GENERATE;
    if ((st = orion_manager_model_mmproj(m->mgr, id, x->mmproj, sizeof x->mmproj)) != ORION_OK) {
        model_destroy(x);
        return st;
    }
    return model_finish_add(m, x, load);
}

int orion__models_count(orion__models *m) { return m->n; }

void orion__models_describe(orion__models *m, int i, orion__model_desc *d) {
    memset(d, 0, sizeof *d);
    d->expires_in = -1;
    if (i < 0 || i >= m->n) return;
    orion__model *x = m->v[i];
    int extra = 0;
    pthread_mutex_lock(&x->mu);
    snprintf(d->id, sizeof d->id, "%s", x->id);
    snprintf(d->path, sizeof d->path, "%s", x->path);
    snprintf(d->arch, sizeof d->arch, "%s", x->arch);
    d->is_llm = x->is_llm;
    d->builtin = x->builtin;
    d->vision = x->mmproj[0] != 0;
    if (d->vision) {
        struct stat sb;
        d->projector_bytes = stat(x->mmproj, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    }
    if (x->is_llm && x->llm_info_valid) {
        d->weight_bytes = x->llm_info.weight_bytes;
        d->max_tokens = x->llm_info.n_ctx;
        for (int k = 1; k < x->n_slots; k++) extra += x->slots[k] != NULL;
        d->resident_bytes = (size_t)extra * (x->llm_info.kv_bytes + x->llm_info.scratch_bytes);
    } else if (!x->is_llm && x->info_valid) {
        d->dim = x->info.dim;
        d->max_tokens = x->info.max_tokens;
        d->weight_bytes = x->info.weight_bytes;
    }
    if (x->builtin) {
        d->loaded = x->h != NULL;
        d->resident_bytes = d->loaded ? x->info.weight_bytes + x->info.scratch_bytes : 0;
    }
    d->last_used = x->last_used;
    pthread_mutex_unlock(&x->mu);
    if (x->builtin) return;
    orion_model_status st[64];
    int n = orion_manager_status(m->mgr, st, 64);
    for (int k = 0; k < n && k < 64; k++) {
        if (strcmp(st[k].id, x->id) != 0) continue;
        d->loaded = true;
        snprintf(d->level, sizeof d->level, "%s", orion_qlevel_name(st[k].level));
        d->refs = st[k].refs;
        d->expires_in = st[k].expires < 0 ? -1 : ORION_MAX(0.0, st[k].expires - orion__now());
        d->mapped_bytes = st[k].mapped;
        d->heap_bytes = st[k].heap;
        d->need_bytes = st[k].need;
        if (d->vision) d->projector_bytes = st[k].encoder;
        d->resident_bytes += (size_t)(st[k].resident + st[k].heap);
    }
    if (!d->loaded) d->resident_bytes = 0;
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

bool orion__model_has_vision(const orion__model *model) { return model->mmproj[0] != 0; }

const orion__models_params *orion__models_params_of(const orion__models *m) { return &m->p; }

orion_status orion__model_encode_image(orion__model *x, orion_model_lease *lease, const orion_image *img,
                                       float *out) {
    orion_clip *clip = orion_lease_clip(lease);
    if (!clip) return orion__fail(ORION_ERR_UNSUPPORTED, "model '%s' has no projector", x->id);
    pthread_mutex_lock(&x->clip_mu);
    orion_status st = orion_clip_encode(clip, img, out);
    pthread_mutex_unlock(&x->clip_mu);
    return st;
}

orion_status orion__model_ensure(orion__model *x, int32_t *dim, char *ns, size_t ns_size, orion__http_error *err) {
    if (x->is_llm) {
        orion__http_set(err, 400, "invalid_request_error", "model '%.100s' generates text; it gives no embeddings", x->id);
        return ORION_ERR_UNSUPPORTED;
    }
    pthread_mutex_lock(&x->mu);
    x->last_used = orion__now();
    if (x->builtin && !x->info_valid && orion__builtin_load_locked(x) != ORION_OK)
        orion__http_set(err, 500, "server_error", "model '%.60s' failed to load: %.180s", x->id, orion_last_error());
    if (x->info_valid) {
        *dim = x->info.dim;
        orion__model_ns(x, &x->info, !x->builtin, x->level, ns, ns_size);
        pthread_mutex_unlock(&x->mu);
        return ORION_OK;
    }
    pthread_mutex_unlock(&x->mu);
    if (x->builtin) return ORION_ERR_IO;
    /* never loaded: load it once to learn its vectors (the pass will lease it again) */
    orion_status st = preload(x, err);
    if (st != ORION_OK) return st;
    pthread_mutex_lock(&x->mu);
    bool ok = x->info_valid;
    if (ok) {
        *dim = x->info.dim;
        orion__model_ns(x, &x->info, true, x->level, ns, ns_size);
    }
    pthread_mutex_unlock(&x->mu);
    if (!ok) {
        orion__http_set(err, 500, "server_error", "model '%.100s' is not a sentence encoder", x->id);
        return ORION_ERR_UNSUPPORTED;
    }
    return ORION_OK;
}

/* True when the manager holds x now. */
static bool manager_holds(orion__model *x) {
    orion_model_status st[64];
    int n = orion_manager_status(x->owner->mgr, st, 64);
    for (int k = 0; k < n && k < 64; k++)
        if (strcmp(st[k].id, x->id) == 0) return true;
    return false;
}

void orion__model_keep_alive(orion__model *x, double keep_alive) {
    if (keep_alive == ORION_KEEP_ALIVE_DEFAULT) return;
    if (x->builtin) {
        if (keep_alive == 0) {
            pthread_mutex_lock(&x->mu);
            x->unload_req = true;
            pthread_cond_signal(&x->cv);
            pthread_mutex_unlock(&x->mu);
        }
        return;
    }
    if (keep_alive == 0) {
        orion_manager_unload(x->owner->mgr, x->id); /* in use or not loaded: nothing to do */
        return;
    }
    if (!manager_holds(x)) return;
    orion__http_error err;
    orion_model_lease *lease = NULL;
    if (orion__model_lease(x, keep_alive, &lease, &err) == ORION_OK) orion_manager_release(x->owner->mgr, lease);
}

/* Frees the built-in model's handle now unless a pass uses it or jobs wait
 * (ORION_ERR_BUSY); ORION_ERR_NOT_FOUND when it is not loaded. */
static orion_status builtin_unload(orion__model *x) {
    orion_status st = ORION_OK;
    void *h = NULL;
    pthread_mutex_lock(&x->mu);
    if (!x->h) st = ORION_ERR_NOT_FOUND;
    else if (x->busy || x->head) st = ORION_ERR_BUSY;
    else {
        h = x->h;
        x->h = NULL;
        x->unload_req = false;
    }
    pthread_mutex_unlock(&x->mu);
    if (h) {
        x->be->free(h);
        ORION_LOG_I("model '%s' unloaded", x->id);
    }
    return st;
}

orion_status orion__model_control(orion__model *x, double keep_alive, bool *unloaded, orion__http_error *err) {
    *unloaded = false;
    if (keep_alive == 0) {
        *unloaded = true;
        orion_status st = x->builtin ? builtin_unload(x) : orion_manager_unload(x->owner->mgr, x->id);
        if (st == ORION_ERR_BUSY) {
            orion__http_set(err, 409, "conflict_error", "model '%.100s' is in use; retry when its requests end", x->id);
            return st;
        }
        return ORION_OK; /* unloaded now, or was not loaded */
    }
    if (x->builtin) {
        pthread_mutex_lock(&x->mu);
        orion_status st = orion__builtin_load_locked(x);
        pthread_mutex_unlock(&x->mu);
        if (st != ORION_OK) orion__http_set(err, 500, "server_error", "model '%.100s' failed to load", x->id);
        return st;
    }
    orion_model_lease *lease = NULL;
    orion_status st = orion__model_lease(x, keep_alive, &lease, err);
    if (st == ORION_OK) orion_manager_release(x->owner->mgr, lease);
    return st;
}

orion_status orion__models_unload(orion__models *m, const char *id, orion__http_error *err) {
    orion__model *x = id && *id ? orion__models_find(m, id) : NULL;
    if (!x) {
        orion__http_set(err, 404, "not_found_error", "model '%.100s' not found", id ? id : "");
        return ORION_ERR_NOT_FOUND;
    }
    orion_status st = x->builtin ? builtin_unload(x) : orion_manager_unload(m->mgr, x->id);
    if (st == ORION_ERR_NOT_FOUND) orion__http_set(err, 404, "not_found_error", "model '%.100s' is not loaded", x->id);
    else if (st == ORION_ERR_BUSY)
        orion__http_set(err, 409, "conflict_error", "model '%.100s' is in use; retry when its requests end", x->id);
    else if (st != ORION_OK) orion__http_set(err, 500, "server_error", "%.200s", orion_last_error());
    return st;
}

void orion__models_batch_stats(orion__models *m, orion__batch_stats *out) {
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}
