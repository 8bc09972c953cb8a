/*
 * manager.c — the model manager: registry, selection, progressive loading,
 * pins, LRU / idle / pressure unloading, keep-alive, events, accounting.
 *
 * One mutex guards the model table; a condition variable wakes callers that
 * wait for a model another thread is loading. Loading itself runs on the
 * acquiring thread with the mutex released (the model is marked LOADING so
 * nobody evicts or reloads it meanwhile):
 *
 *   1. map the file read-only (the same page-cache pages the model's own
 *      mapping will use, so nothing is stored twice);
 *   2. unless lazy, bring it in chunk by chunk: madvise(MADV_WILLNEED) to
 *      start read-ahead, then read one byte per page so the pages are really
 *      resident and mapped; after each chunk report (done, total) and check
 *      the cancellation token;
 *   3. build the model (orion_llm_load / orion_embed_load), whose map of
 *      the file is this same mapping (orion__file_map keeps one per file
 *      per process), pages already in.
 * A generation model may carry an image projector (the entry's mmproj, a
 * LLaVA CLIP GGUF): it is part of the model — its file is mapped and
 * brought in with the model's (progress counts both), orion_clip_load runs
 * after the decoder, its bytes are in the need (`encoder`), in mapped,
 * resident and heap, and it is freed and unmapped with the model.
 * Cancelling (or failing) at any step releases the mapping and whatever
 * the model allocated. The manager keeps its mapping while the model is
 * loaded: it is what `mapped` and `resident` (mincore) account for, and
 * unloading drops it with MADV_DONTNEED and unmaps it.
 *
 * Events are never delivered with the table mutex held: locked code queues
 * them in an `evq` on the stack and they go out after unlocking, so a
 * subscriber may call back into the manager.
 */
#include "manager/manager_internal.h"
#include "formats/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

void mgr__pressure_set_tick(orion_pressure_monitor *mon, void (*tick)(void *), void *user);

#define MAX_SUBS 16
#define EVQ_CAP  32

/* ---- cancellation ---- */

struct orion_cancel {
    atomic_bool set;
};

orion_status orion_cancel_init(orion_cancel **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_cancel_init: out is NULL");
    *out = orion__calloc(1, sizeof **out);
    if (!*out) return orion__fail(ORION_ERR_NOMEM, "cancel token: out of memory");
    atomic_init(&(*out)->set, false);
    return ORION_OK;
}
void orion_cancel_free(orion_cancel *c) { orion__free(c); }
void orion_cancel_set(orion_cancel *c) {
    if (c) atomic_store(&c->set, true);
}
bool orion_cancel_is_set(const orion_cancel *c) {
    return c && atomic_load(&((orion_cancel *)c)->set);
}

/* ---- names ---- */

const char *orion_unload_reason_name(orion_unload_reason r) {
    static const char *names[] = {"idle", "lru", "pressure", "explicit", "keep_alive", "shutdown"};
    return (unsigned)r < ORION_ARRAY_LEN(names) ? names[r] : "?";
}

const char *orion_manager_event_name(orion_manager_event_type t) {
    static const char *names[] = {"load_started", "load_progress", "loaded", "load_failed",
                                  "load_cancelled", "unloaded", "pressure"};
    return (unsigned)t < ORION_ARRAY_LEN(names) ? names[t] : "?";
}

/* ---- types ---- */

typedef enum mstate { ST_UNLOADED = 0, ST_LOADING, ST_LOADED } mstate;

typedef struct mmodel {
    /* registry */
    char       id[64];
    orion_task task;
    char       arch[32];
    char      *files[ORION_QLEVEL_COUNT];
    int        n_ctx;
    char      *mmproj;      /* the projector file, NULL: none */
    bool       have_enc_need;
    uint64_t   enc_need;    /* the projector's need, counted at every level */
    bool       have_need[ORION_QLEVEL_COUNT];
    orion_model_need need[ORION_QLEVEL_COUNT];
    /* config overrides */
    int        cfg_level;       /* -1 none */
    double     cfg_keep_alive;  /* ORION_KEEP_ALIVE_DEFAULT none */
    /* state */
    mstate          state;
    orion_qlevel    level;
    uint8_t        *map;        /* our mapping of the file */
    size_t          map_size;
    orion_llm      *llm;
    orion_embedder *emb;
    orion_clip     *clip;       /* the projector, NULL without one */
    uint8_t        *pmap;       /* our mapping of the projector file */
    size_t          pmap_size;
    uint64_t        clip_heap;  /* heap its load took (part of heap) */
    int             refs;
    double          last_used;
    double          expires;    /* < 0: never */
    uint64_t        heap, kv, need_total;
} mmodel;

struct orion_model_lease {
    mmodel *m;
    double  keep_alive;
};

typedef struct msub {
    int                    id;    /* 0: free (once busy is 0 too) */
    orion_manager_event_fn fn;
    void                  *user;
    int                    busy;  /* deliveries to it in progress */
} msub;

/* The deliveries running on this thread (innermost first), so that a
 * subscriber that unsubscribes itself from its callback does not wait for
 * its own call to return. */
typedef struct delivery {
    const orion_manager *mgr;
    int                  id;
    struct delivery     *outer;
} delivery;
static _Thread_local delivery *tl_delivery;

struct orion_manager {
    orion_manager_params p;
    char                 proc_root[512], sys_root[512];
    orion_device_profile profile;
    mgr_config           cfg;
    orion_pressure_monitor *mon;

    pthread_mutex_t lock;       /* models */
    pthread_cond_t  cond;       /* a load finished */
    mmodel        **models;
    int             n_models, cap_models;

    pthread_mutex_t sub_lock;
    pthread_cond_t  sub_cond;   /* a delivery finished */
    msub            subs[MAX_SUBS];
    int             next_sub;
};

/* Events queued under the lock, delivered after. */
typedef struct evq {
    orion_manager_event ev[EVQ_CAP];
    char                ids[EVQ_CAP][64];
    int                 n;
} evq;

static double mgr_now(orion_manager *mgr) {
    return mgr->p.clock ? mgr->p.clock(mgr->p.clock_user) : orion__now();
}

/* Calls every subscriber without the lock held. Each call is counted in
 * its slot's `busy`, so orion_manager_unsubscribe can wait for the calls in
 * progress: after it returns, the subscriber's `user` may be freed. */
static void emit(orion_manager *mgr, const orion_manager_event *ev) {
    for (int i = 0; i < MAX_SUBS; i++) {
        pthread_mutex_lock(&mgr->sub_lock);
        msub s = mgr->subs[i];
        if (s.id) mgr->subs[i].busy++;
        pthread_mutex_unlock(&mgr->sub_lock);
        if (!s.id) continue;
        delivery d = {mgr, s.id, tl_delivery};
        tl_delivery = &d;
        s.fn(ev, s.user);
        tl_delivery = d.outer;
        pthread_mutex_lock(&mgr->sub_lock);
        if (--mgr->subs[i].busy == 0) pthread_cond_broadcast(&mgr->sub_cond);
        pthread_mutex_unlock(&mgr->sub_lock);
    }
}

static void evq_push(orion_manager *mgr, evq *q, orion_manager_event_type type, const mmodel *m,
                     uint64_t bytes, orion_unload_reason reason) {
    if (q->n == EVQ_CAP) return;
    orion_manager_event *e = &q->ev[q->n];
    memset(e, 0, sizeof *e);
    e->type = type;
    if (m) {
        snprintf(q->ids[q->n], sizeof q->ids[q->n], "%s", m->id);
        e->model = q->ids[q->n];
        e->level = m->level;
    }
    e->bytes = bytes;
    e->reason = reason;
    e->timestamp = mgr_now(mgr);
    e->pressure = orion_pressure_monitor_level(mgr->mon);
    q->n++;
}

static void evq_flush(orion_manager *mgr, evq *q) {
    for (int i = 0; i < q->n; i++) emit(mgr, &q->ev[i]);
    q->n = 0;
}

int orion_manager_subscribe(orion_manager *mgr, orion_manager_event_fn fn, void *user) {
    if (!mgr || !fn) return orion__fail(ORION_ERR_INVALID_ARG, "manager subscribe: NULL argument");
    int id = orion__fail(ORION_ERR_LIMIT, "manager: more than %d subscribers", MAX_SUBS);
    pthread_mutex_lock(&mgr->sub_lock);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (!mgr->subs[i].id && !mgr->subs[i].busy) {
            id = mgr->next_sub++;
            mgr->subs[i] = (msub){id, fn, user, 0};
            break;
        }
    }
    pthread_mutex_unlock(&mgr->sub_lock);
    return id;
}

void orion_manager_unsubscribe(orion_manager *mgr, int id) {
    if (!mgr || id <= 0) return;
    int own = 0; /* calls to this subscriber on this thread's stack */
    for (const delivery *d = tl_delivery; d; d = d->outer) own += d->mgr == mgr && d->id == id;
    pthread_mutex_lock(&mgr->sub_lock);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (mgr->subs[i].id != id) continue;
        mgr->subs[i].id = 0;
        while (mgr->subs[i].busy > own) pthread_cond_wait(&mgr->sub_cond, &mgr->sub_lock);
    }
    pthread_mutex_unlock(&mgr->sub_lock);
}

/* ---- memory need from a GGUF ---- */

static uint64_t gguf_u64(const orion_gguf *g, const char *arch, const char *key, uint64_t dflt) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    uint64_t v;
    return orion_gguf_get_u64(g, k, &v) == ORION_OK ? v : dflt;
}

orion_status orion_model_need_compute(const char *path, orion_task task, int n_ctx, orion_model_need *out) {
    if (!path || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_model_need_compute: NULL argument");
    memset(out, 0, sizeof *out);
    orion_gguf *g = NULL;
    orion_status st = orion_gguf_open(path, &g);
    if (st != ORION_OK) return st;
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) out->weights += orion_gguf_tensor_at(g, i)->n_bytes;
    char arch[32] = "llama";
    orion_gguf_get_str(g, "general.architecture", arch, sizeof arch);
    uint64_t n_layer = gguf_u64(g, arch, "block_count", 0);
    uint64_t n_embd = gguf_u64(g, arch, "embedding_length", 0);
    uint64_t n_ff = gguf_u64(g, arch, "feed_forward_length", 4 * n_embd);
    uint64_t n_head = gguf_u64(g, arch, "attention.head_count", 1);
    uint64_t n_kv = gguf_u64(g, arch, "attention.head_count_kv", n_head);
    uint64_t hd = gguf_u64(g, arch, "attention.key_length", n_head ? n_embd / n_head : 0);
    uint64_t ctx_train = gguf_u64(g, arch, "context_length", 2048);
    const orion_gguf_value *toks = orion_gguf_get(g, "tokenizer.ggml.tokens");
    uint64_t n_vocab = toks && toks->type == ORION_GGUF_ARRAY ? toks->v.arr.count : 32000;
    uint64_t nt = (uint64_t)orion_cpu_count();
    if (task == ORION_TASK_GENERATE) {
        uint64_t ctx = n_ctx > 0 ? (uint64_t)n_ctx : ORION_MIN(ctx_train ? ctx_train : 2048, 4096);
        out->kv = 2 * n_layer * ctx * n_kv * hd * 2;
        /* as llama.c sizes its arena for a 256-token batch, plus matmul scratch */
        uint64_t B = 256, qd = n_head * hd, kd = n_kv * hd;
        uint64_t floats = B * (3 * n_embd + 2 * qd + 2 * kd + 2 * n_ff) + nt * (ctx + 128 + hd) + n_vocab + n_embd;
        /* the matmul scratch of the largest products, as orion_matmul asks */
        static const char *names[] = {"blk.0.attn_q.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
                                      "output.weight", "token_embd.weight"};
        size_t mm = 0;
        for (size_t i = 0; i < ORION_ARRAY_LEN(names); i++) {
            const orion_gguf_tensor *t = orion_gguf_find_tensor(g, names[i]);
            if (t && t->n_dims == 2)
                mm = ORION_MAX(mm, orion_matmul_scratch_bytes(t->type, t->ne[1], t->ne[0], (int64_t)B, (int)nt));
        }
        out->scratch = floats * 4 + mm + 64 * 64;
    } else {
        /* encoder (as bert.c sizes its arenas): a batch of 32 texts of up
         * to 256 tokens, plus one attention arena per thread */
        uint64_t T = 32 * 256, L = 256;
        out->scratch = T * (5 * n_embd + n_ff) * 4 + T * ORION_MAX(n_embd, n_ff) * 2 + nt * (3 * L * hd + L * L) * 4;
    }
    out->total = out->weights + out->kv + out->scratch;
    orion_gguf_free(g);
    return ORION_OK;
}

/* The projector's need: its tensor bytes, the arenas orion_clip_load sizes
 * for one image (six rows-by-E buffers plus the largest of the MLP, patch
 * and projector buffers, and the largest matmul scratch; one attention
 * arena per thread), and what one encode takes besides (the pixels, the
 * output rows). */
static orion_status encoder_need(const char *path, uint64_t *out) {
    orion_gguf *g = NULL;
    orion_status st = orion_gguf_open(path, &g);
    if (st != ORION_OK) return st;
    uint64_t w = 0;
    for (int64_t i = 0; i < orion_gguf_n_tensors(g); i++) w += orion_gguf_tensor_at(g, i)->n_bytes;
    uint64_t S = gguf_u64(g, "clip", "vision.image_size", 336), P = gguf_u64(g, "clip", "vision.patch_size", 14);
    uint64_t E = gguf_u64(g, "clip", "vision.embedding_length", 1024);
    uint64_t F = gguf_u64(g, "clip", "vision.feed_forward_length", 4 * E);
    uint64_t H = gguf_u64(g, "clip", "vision.attention.head_count", 16);
    const orion_gguf_tensor *m0 = orion_gguf_find_tensor(g, "mm.0.weight"), *m2 = orion_gguf_find_tensor(g, "mm.2.weight");
    uint64_t M = m0 && m0->n_dims == 2 ? (uint64_t)m0->ne[1] : E, O = m2 && m2->n_dims == 2 ? (uint64_t)m2->ne[1] : E;
    if (!P || !H || S > 4096 || P > S || E > (1 << 20) || F > (1 << 22) || M > (1 << 20) || O > (1 << 20)) {
        orion_gguf_free(g);
        return orion__fail(ORION_ERR_FORMAT, "%s: not a projector of a plausible shape", path);
    }
    const int nt = orion_cpu_count();
    uint64_t NP = (S / P) * (S / P), R = NP + 1, d = E / H;
    size_t mm = 0;
    static const char *names[] = {"v.patch_embd.weight", "v.blk.0.attn_q.weight", "v.blk.0.ffn_up.weight",
                                  "v.blk.0.ffn_down.weight", "mm.0.weight", "mm.2.weight"};
    for (size_t i = 0; i < ORION_ARRAY_LEN(names); i++) {
        const orion_gguf_tensor *t = orion_gguf_find_tensor(g, names[i]);
        if (!t || t->n_dims < 2) continue;
        int64_t n_out = t->ne[t->n_dims - 1], n_in = 1;
        for (int k = 0; k + 1 < t->n_dims; k++) n_in *= t->ne[k];
        mm = ORION_MAX(mm, orion_matmul_scratch_bytes(t->type, n_out, n_in, (int64_t)R, nt));
    }
    orion_gguf_free(g);
    size_t amm = ORION_MAX(orion_matmul_scratch_bytes(ORION_TYPE_F32, (int64_t)R, (int64_t)d, (int64_t)R, 1),
                           orion_matmul_scratch_bytes(ORION_TYPE_F32, (int64_t)d, (int64_t)R, (int64_t)R, 1));
    uint64_t big = ORION_MAX(R * F, ORION_MAX(NP * 3 * P * P, NP * M));
    uint64_t floats = 6 * R * E + big + (uint64_t)nt + 64 + 3 * S * S + NP * O;
    uint64_t attn = (3 * R * d + R * R) * 4 + amm + 8 * 64;
    *out = w + floats * 4 + mm + 32 * 64 + (uint64_t)nt * attn;
    return ORION_OK;
}

/* ---- registry ---- */

static mmodel *find_model(orion_manager *mgr, const char *id) {
    for (int i = 0; i < mgr->n_models; i++)
        if (strcmp(mgr->models[i]->id, id) == 0) return mgr->models[i];
    return NULL;
}

static void model_free(mmodel *m) {
    if (!m) return;
    for (int l = 0; l < ORION_QLEVEL_COUNT; l++) orion__free(m->files[l]);
    orion__free(m->mmproj);
    orion__free(m);
}

static void apply_model_cfg(orion_manager *mgr, mmodel *m) {
    const mgr_model_cfg *c = mgr__config_model(&mgr->cfg, m->id);
    m->cfg_level = c ? c->level : -1;
    m->cfg_keep_alive = c ? c->keep_alive_s : ORION_KEEP_ALIVE_DEFAULT;
    if (c && c->n_ctx) m->n_ctx = c->n_ctx;
}

orion_status orion_manager_register(orion_manager *mgr, const orion_model_entry *e) {
    if (!mgr || !e || !e->id || !*e->id) return orion__fail(ORION_ERR_INVALID_ARG, "manager register: no id");
    if (strlen(e->id) >= 64) return orion__fail(ORION_ERR_INVALID_ARG, "manager register: id '%s' too long", e->id);
    if (e->task != ORION_TASK_GENERATE && e->task != ORION_TASK_EMBED)
        return orion__fail(ORION_ERR_INVALID_ARG, "model '%s': bad task", e->id);
    bool any = false;
    for (int l = 0; l < ORION_QLEVEL_COUNT; l++) any |= e->files[l] != NULL;
    if (!any) return orion__fail(ORION_ERR_INVALID_ARG, "model '%s': no file", e->id);
    if (e->mmproj && e->task != ORION_TASK_GENERATE)
        return orion__fail(ORION_ERR_INVALID_ARG, "model '%s': a projector (mmproj) needs a generation model", e->id);
    mmodel *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "manager register: out of memory");
    snprintf(m->id, sizeof m->id, "%s", e->id);
    snprintf(m->arch, sizeof m->arch, "%s", e->arch ? e->arch : "");
    m->task = e->task;
    m->n_ctx = e->n_ctx;
    for (int l = 0; l < ORION_QLEVEL_COUNT; l++) {
        if (e->files[l] && !(m->files[l] = orion__strdup(e->files[l]))) {
            model_free(m);
            return orion__fail(ORION_ERR_NOMEM, "manager register: out of memory");
        }
    }
    if (e->mmproj && *e->mmproj && !(m->mmproj = orion__strdup(e->mmproj))) {
        model_free(m);
        return orion__fail(ORION_ERR_NOMEM, "manager register: out of memory");
    }
    apply_model_cfg(mgr, m);
    pthread_mutex_lock(&mgr->lock);
    orion_status st = ORION_OK;
    mmodel *old = find_model(mgr, e->id);
    if (old && old->state != ST_UNLOADED) {
        st = orion__fail(ORION_ERR_BUSY, "model '%s' is loaded: unload it before replacing it", e->id);
    } else if (old) {
        for (int i = 0; i < mgr->n_models; i++)
            if (mgr->models[i] == old) mgr->models[i] = m;
        model_free(old);
        m = NULL;
    } else {
        if (mgr->n_models == mgr->cap_models) {
            int cap = mgr->cap_models ? 2 * mgr->cap_models : 8;
            mmodel **nm = orion__realloc(mgr->models, (size_t)cap * sizeof *nm);
            if (!nm) st = orion__fail(ORION_ERR_NOMEM, "manager register: out of memory");
            else mgr->models = nm, mgr->cap_models = cap;
        }
        if (st == ORION_OK) mgr->models[mgr->n_models++] = m, m = NULL;
    }
    pthread_mutex_unlock(&mgr->lock);
    model_free(m);
    return st;
}

orion_status orion_manager_load_registry(orion_manager *mgr, const char *path) {
    if (!mgr || !path) return orion__fail(ORION_ERR_INVALID_ARG, "manager registry: NULL argument");
    char *text = NULL;
    size_t len = 0;
    orion_status st = orion__read_small_file(path, 4 << 20, &text, &len);
    if (st != ORION_OK) return st;
    cJSON *root = NULL;
    st = orion__json_parse(path, text, len, &root);
    orion__free(text);
    if (st != ORION_OK) return st;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = '\0';
    else dir[0] = '\0';
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsArray(models)) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: expected {\"models\": [...]}", path);
        goto done;
    }
    int idx = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, models) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *task = cJSON_GetObjectItemCaseSensitive(it, "task");
        const cJSON *arch = cJSON_GetObjectItemCaseSensitive(it, "arch");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(it, "n_ctx");
        const cJSON *files = cJSON_GetObjectItemCaseSensitive(it, "files");
        const cJSON *proj = cJSON_GetObjectItemCaseSensitive(it, "mmproj");
        orion_model_entry e;
        memset(&e, 0, sizeof e);
        char paths[ORION_QLEVEL_COUNT][1200], proj_path[1200];
        if (!cJSON_IsString(id)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: models[%d].id: expected a string", path, idx);
            goto done;
        }
        e.id = id->valuestring;
        if (task && (!cJSON_IsString(task) ||
                     (strcmp(task->valuestring, "embed") != 0 && strcmp(task->valuestring, "generate") != 0))) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: models[%d].task: expected \"embed\" or \"generate\"", path, idx);
            goto done;
        }
        e.task = task && strcmp(task->valuestring, "embed") == 0 ? ORION_TASK_EMBED : ORION_TASK_GENERATE;
        e.arch = cJSON_IsString(arch) ? arch->valuestring : NULL;
        if (ctx) {
            if (!cJSON_IsNumber(ctx) || ctx->valuedouble < 0 || ctx->valuedouble > 1 << 24) {
                st = orion__fail(ORION_ERR_FORMAT, "%s: models[%d].n_ctx: bad value", path, idx);
                goto done;
            }
            e.n_ctx = (int)ctx->valuedouble;
        }
        if (!cJSON_IsObject(files)) {
            st = orion__fail(ORION_ERR_FORMAT, "%s: models[%d].files: expected an object", path, idx);
            goto done;
        }
        const cJSON *f;
        cJSON_ArrayForEach(f, files) {
            orion_qlevel l;
            if (orion_qlevel_from_name(f->string, &l) != ORION_OK || !cJSON_IsString(f)) {
                st = orion__fail(ORION_ERR_FORMAT, "%s: models[%d].files.%s: unknown level or not a path", path, idx,
                                 f->string);
                goto done;
            }
            snprintf(paths[l], sizeof paths[l], "%s%s", f->valuestring[0] == '/' ? "" : dir, f->valuestring);
            e.files[l] = paths[l];
        }
        if (proj && !cJSON_IsNull(proj)) {
            if (!cJSON_IsString(proj) || !proj->valuestring[0]) {
                st = orion__fail(ORION_ERR_FORMAT, "%s: models[%d].mmproj: expected a path", path, idx);
                goto done;
            }
            snprintf(proj_path, sizeof proj_path, "%s%s", proj->valuestring[0] == '/' ? "" : dir, proj->valuestring);
            e.mmproj = proj_path;
        }
        if ((st = orion_manager_register(mgr, &e)) != ORION_OK) goto done;
        idx++;
    }
done:
    orion__json_free(root);
    return st;
}

/* ---- init / free ---- */

orion_manager_params orion_manager_default_params(void) {
    orion_manager_params p;
    memset(&p, 0, sizeof p);
    p.profile = orion_profile_default_params();
    p.monitor = true;
    p.poll_ms = 1000;
    p.chunk_bytes = 8u << 20;
    return p;
}

static void on_pressure(orion_pressure level, orion_pressure prev, const orion_pressure_sample *s, void *user);
static void monitor_tick(void *user);

orion_status orion_manager_init(const orion_manager_params *params, orion_manager **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_manager_init: out is NULL");
    *out = NULL;
    orion_manager_params d = orion_manager_default_params();
    orion_manager *mgr = orion__calloc(1, sizeof *mgr);
    if (!mgr) return orion__fail(ORION_ERR_NOMEM, "manager: out of memory");
    mgr->p = params ? *params : d;
    if (!mgr->p.chunk_bytes) mgr->p.chunk_bytes = d.chunk_bytes;
    if (mgr->p.poll_ms <= 0) mgr->p.poll_ms = d.poll_ms;
    snprintf(mgr->proc_root, sizeof mgr->proc_root, "%s", mgr->p.profile.proc_root ? mgr->p.profile.proc_root : "/proc");
    snprintf(mgr->sys_root, sizeof mgr->sys_root, "%s", mgr->p.profile.sys_root ? mgr->p.profile.sys_root : "/sys");
    mgr->p.profile.proc_root = mgr->proc_root;
    mgr->p.profile.sys_root = mgr->sys_root;
    mgr->p.profile.config_path = NULL;  /* read below, kept */
    mgr->p.registry_path = NULL;
    mgr->cfg.level = -1;
    mgr->cfg.thresholds = mgr__default_thresholds();
    pthread_mutex_init(&mgr->lock, NULL);
    pthread_cond_init(&mgr->cond, NULL);
    pthread_mutex_init(&mgr->sub_lock, NULL);
    pthread_cond_init(&mgr->sub_cond, NULL);
    mgr->next_sub = 1;

    orion_status st = mgr__profile_read_raw(&mgr->p.profile, &mgr->profile);
    if (st != ORION_OK) goto fail;
    const char *cfg_path = params ? params->profile.config_path : NULL;
    if (cfg_path) {
        if ((st = mgr__config_read(cfg_path, &mgr->cfg)) != ORION_OK) goto fail;
        mgr__config_apply(&mgr->cfg, &mgr->profile);
    }
    orion_pressure_params pp = orion_pressure_default_params();
    pp.proc_root = mgr->proc_root;
    pp.sys_root = mgr->sys_root;
    pp.budget = mgr->profile.budget;
    pp.thresholds = mgr->cfg.thresholds;
    pp.poll_ms = mgr->p.poll_ms;
    if ((st = orion_pressure_monitor_init(&pp, &mgr->mon)) != ORION_OK) goto fail;
    orion_pressure_monitor_subscribe(mgr->mon, on_pressure, mgr);
    orion_pressure_monitor_poll(mgr->mon, NULL);
    if (params && params->registry_path && (st = orion_manager_load_registry(mgr, params->registry_path)) != ORION_OK)
        goto fail;
    if (mgr->p.monitor) {
        mgr__pressure_set_tick(mgr->mon, monitor_tick, mgr);
        if ((st = orion_pressure_monitor_start(mgr->mon)) != ORION_OK) goto fail;
    }
    *out = mgr;
    return ORION_OK;
fail:
    orion_manager_free(mgr);
    return st;
}

static void unload_locked(orion_manager *mgr, mmodel *m, orion_unload_reason reason, evq *q) {
    orion_clip_free(m->clip);
    orion_llm_free(m->llm);
    orion_embed_free(m->emb);
    m->clip = NULL;
    m->llm = NULL;
    m->emb = NULL;
    if (m->pmap) {
        madvise(m->pmap, m->pmap_size, MADV_DONTNEED);
        orion__file_unmap(m->pmap, m->pmap_size);
    }
    m->pmap = NULL;
    m->pmap_size = 0;
    m->clip_heap = 0;
    if (m->map) {
        /* the model above has let go of its reference to the mapping
         * (orion__file_map shares one per file), so this is the last one:
         * drop the pages from this process, then the mapping */
        madvise(m->map, m->map_size, MADV_DONTNEED);
        orion__file_unmap(m->map, m->map_size);
    }
    m->map = NULL;
    m->map_size = 0;
    m->state = ST_UNLOADED;
    m->refs = 0;
    m->heap = m->kv = 0;
    ORION_LOG_I("manager: unloaded '%s' (%s)", m->id, orion_unload_reason_name(reason));
    evq_push(mgr, q, ORION_EVENT_UNLOADED, m, m->need_total, reason);
}

void orion_manager_free(orion_manager *mgr) {
    if (!mgr) return;
    orion_pressure_monitor_stop(mgr->mon);
    evq q = {.n = 0};
    pthread_mutex_lock(&mgr->lock);
    for (int i = 0; i < mgr->n_models; i++) {
        if (mgr->models[i]->state == ST_LOADED) unload_locked(mgr, mgr->models[i], ORION_UNLOAD_SHUTDOWN, &q);
    }
    pthread_mutex_unlock(&mgr->lock);
    evq_flush(mgr, &q);
    orion_pressure_monitor_free(mgr->mon);
    for (int i = 0; i < mgr->n_models; i++) model_free(mgr->models[i]);
    orion__free(mgr->models);
    mgr__config_free(&mgr->cfg);
    pthread_mutex_destroy(&mgr->lock);
    pthread_cond_destroy(&mgr->cond);
    pthread_mutex_destroy(&mgr->sub_lock);
    pthread_cond_destroy(&mgr->sub_cond);
    orion__free(mgr);
}

/* ---- selection and eviction ---- */

static orion_status need_locked(mmodel *m, orion_qlevel l, orion_model_need *out) {
    if (m->mmproj && !m->have_enc_need) {
        orion_status st = encoder_need(m->mmproj, &m->enc_need);
        if (st != ORION_OK) return st;
        m->have_enc_need = true;
    }
    if (!m->have_need[l]) {
        orion_status st = orion_model_need_compute(m->files[l], m->task, m->n_ctx, &m->need[l]);
        if (st != ORION_OK) return st;
        m->need[l].encoder = m->mmproj ? m->enc_need : 0;
        m->need[l].total += m->need[l].encoder;
        m->have_need[l] = true;
    }
    *out = m->need[l];
    return ORION_OK;
}

const char *orion_manager_model_id(orion_manager *mgr, int i) {
    if (!mgr || i < 0) return NULL;
    pthread_mutex_lock(&mgr->lock);
    const char *id = i < mgr->n_models ? mgr->models[i]->id : NULL;
    pthread_mutex_unlock(&mgr->lock);
    return id;
}

orion_status orion_manager_model_need(orion_manager *mgr, const char *id, orion_qlevel level,
                                      orion_model_need *out) {
    if (!mgr || !id || !out || (unsigned)level >= ORION_QLEVEL_COUNT)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_manager_model_need: bad argument");
    pthread_mutex_lock(&mgr->lock);
    mmodel *m = find_model(mgr, id);
    orion_status st;
    if (!m) st = orion__fail(ORION_ERR_NOT_FOUND, "no model '%s' in the registry", id);
    else if (!m->files[level])
        st = orion__fail(ORION_ERR_NOT_FOUND, "model '%s' has no file at level %s", id, orion_qlevel_name(level));
    else st = need_locked(m, level, out);
    pthread_mutex_unlock(&mgr->lock);
    return st;
}

/* Bytes of the models that must stay: in use or being loaded. */
static uint64_t pinned_bytes(orion_manager *mgr) {
    uint64_t s = 0;
    for (int i = 0; i < mgr->n_models; i++) {
        mmodel *m = mgr->models[i];
        if (m->state == ST_LOADING || (m->state == ST_LOADED && m->refs > 0)) s += m->need_total;
    }
    return s;
}

static uint64_t loaded_bytes(orion_manager *mgr, int *count) {
    uint64_t s = 0;
    *count = 0;
    for (int i = 0; i < mgr->n_models; i++) {
        mmodel *m = mgr->models[i];
        if (m->state != ST_UNLOADED) s += m->need_total, (*count)++;
    }
    return s;
}

/* The least recently used idle model, or NULL. `skip` is not considered. */
static mmodel *lru_idle(orion_manager *mgr, const mmodel *skip) {
    mmodel *best = NULL;
    for (int i = 0; i < mgr->n_models; i++) {
        mmodel *m = mgr->models[i];
        if (m == skip || m->state != ST_LOADED || m->refs > 0) continue;
        if (!best || m->last_used < best->last_used) best = m;
    }
    return best;
}

/* ---- loading ---- */

typedef struct load_ctx {
    orion_manager              *mgr;
    mmodel                     *m;
    const orion_acquire_params *ap;
    const char                 *path;
} load_ctx;

/* What a load made: the mappings, the handles, the heap they took. */
typedef struct loaded {
    uint8_t        *map, *pmap;
    size_t          size, psize;
    orion_llm      *llm;
    orion_embedder *emb;
    orion_clip     *clip;
    uint64_t        heap, clip_heap, kv;
} loaded;

static void loaded_free(loaded *o) {
    orion_clip_free(o->clip);
    orion_llm_free(o->llm);
    orion_embed_free(o->emb);
    if (o->pmap) {
        madvise(o->pmap, o->psize, MADV_DONTNEED);
        orion__file_unmap(o->pmap, o->psize);
    }
    if (o->map) {
        madvise(o->map, o->size, MADV_DONTNEED);
        orion__file_unmap(o->map, o->size);
    }
    memset(o, 0, sizeof *o);
}

/* Brings [base, base + size) in chunk by chunk; done/total count over the
 * model's files together. */
static orion_status prefault(load_ctx *c, uint8_t *base, size_t size, uint64_t *done, uint64_t total) {
    orion_manager *mgr = c->mgr;
    const orion_acquire_params *ap = c->ap;
    const long page = sysconf(_SC_PAGESIZE);
    size_t chunk = mgr->p.chunk_bytes;
    chunk = (chunk + (size_t)page - 1) / (size_t)page * (size_t)page;
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < size; off += chunk) {
        if (orion_cancel_is_set(ap->cancel))
            return orion__fail(ORION_ERR_CANCELLED, "%s: load cancelled at %" PRIu64 " of %" PRIu64 " bytes", c->path,
                               *done, total);
        size_t len = ORION_MIN(chunk, size - off);
        madvise(base + off, len, MADV_WILLNEED);
        for (size_t i = 0; i < len; i += (size_t)page) sink ^= base[off + i];
        *done += len;
        if (ap->on_progress) ap->on_progress(*done, total, ap->user);
        orion_manager_event e;
        memset(&e, 0, sizeof e);
        e.type = ORION_EVENT_LOAD_PROGRESS;
        e.model = c->m->id;
        e.level = c->m->level;
        e.bytes = *done;
        e.bytes_total = total;
        e.timestamp = mgr_now(mgr);
        e.pressure = orion_pressure_monitor_level(mgr->mon);
        emit(mgr, &e);
    }
    (void)sink;
    return ORION_OK;
}

static orion_status do_load(load_ctx *c, loaded *o) {
    orion_manager *mgr = c->mgr;
    const orion_acquire_params *ap = c->ap;
    const char *proj = c->m->mmproj;
    memset(o, 0, sizeof *o);
    const uint8_t *map = NULL;
    orion_status st = orion__file_map(c->path, &map, &o->size);
    if (st != ORION_OK) return st;
    o->map = (uint8_t *)map;
    if (proj) {
        if ((st = orion__file_map(proj, &map, &o->psize)) != ORION_OK) goto fail;
        o->pmap = (uint8_t *)map;
    }
    if (!ap->lazy) {
        uint64_t done = 0, total = (uint64_t)o->size + o->psize;
        if ((st = prefault(c, o->map, o->size, &done, total)) != ORION_OK) goto fail;
        if (o->pmap && (st = prefault(c, o->pmap, o->psize, &done, total)) != ORION_OK) goto fail;
    }
    if (orion_cancel_is_set(ap->cancel)) {
        st = orion__fail(ORION_ERR_CANCELLED, "%s: load cancelled before building the model", c->path);
        goto fail;
    }
    orion_mem_stats before, after;
    orion_mem_get_stats(&before);
    if (c->m->task == ORION_TASK_GENERATE) {
        orion_llm_params lp = orion_llm_default_params();
        lp.n_ctx = c->m->n_ctx;
        lp.n_threads = mgr->p.n_threads;
        if ((st = orion_llm_load(c->path, &lp, &o->llm)) != ORION_OK) goto fail;
        orion_llm_info info;
        orion_llm_get_info(o->llm, &info);
        o->kv = info.kv_bytes;
        if (proj) {
            orion_mem_stats mid;
            orion_mem_get_stats(&mid);
            orion_clip_params cp = orion_clip_default_params();
            cp.n_threads = mgr->p.n_threads;
            if ((st = orion_clip_load(proj, &cp, &o->clip)) != ORION_OK) goto fail;
            orion_clip_info ci;
            orion_clip_get_info(o->clip, &ci);
            if (ci.n_out != info.n_embd) {
                st = orion__fail(ORION_ERR_FORMAT, "%s: the projector gives rows of %d values, but %s takes %d", proj,
                                 ci.n_out, c->path, info.n_embd);
                goto fail;
            }
            orion_mem_stats end;
            orion_mem_get_stats(&end);
            o->clip_heap = end.bytes_in_use > mid.bytes_in_use ? end.bytes_in_use - mid.bytes_in_use : 0;
        }
    } else {
        orion_embed_params epar = orion_embed_default_params();
        epar.n_threads = mgr->p.n_threads;
        epar.max_tokens = mgr->p.embed_max_tokens;
        if ((st = orion_embed_load(c->path, &epar, &o->emb)) != ORION_OK) goto fail;
        o->kv = 0;
    }
    orion_mem_get_stats(&after);
    o->heap = after.bytes_in_use > before.bytes_in_use ? after.bytes_in_use - before.bytes_in_use : 0;
    if (orion_cancel_is_set(ap->cancel)) {
        st = orion__fail(ORION_ERR_CANCELLED, "%s: load cancelled", c->path);
        goto fail;
    }
    return ORION_OK;
fail:
    loaded_free(o);
    return st;
}

orion_acquire_params orion_acquire_default_params(void) {
    orion_acquire_params p;
    memset(&p, 0, sizeof p);
    p.keep_alive_s = ORION_KEEP_ALIVE_DEFAULT;
    p.level = -1;
    return p;
}

static double effective_keep_alive(orion_manager *mgr, const mmodel *m, double requested) {
    if (requested != ORION_KEEP_ALIVE_DEFAULT) return requested;
    if (m->cfg_keep_alive != ORION_KEEP_ALIVE_DEFAULT) return m->cfg_keep_alive;
    return mgr->profile.tier.idle_unload_s;
}

static orion_status make_lease(mmodel *m, const orion_acquire_params *ap, orion_model_lease **out) {
    orion_model_lease *l = orion__calloc(1, sizeof *l);
    if (!l) return orion__fail(ORION_ERR_NOMEM, "manager: out of memory");
    l->m = m;
    l->keep_alive = ap->keep_alive_s;
    *out = l;
    return ORION_OK;
}

static char *fmt_bytes(uint64_t b, char *buf, size_t size) {
    snprintf(buf, size, "%.1f MiB", (double)b / 1048576.0);
    return buf;
}

orion_status orion_manager_acquire(orion_manager *mgr, const char *id, const orion_acquire_params *params,
                                   orion_model_lease **out) {
    if (!mgr || !id || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_manager_acquire: NULL argument");
    *out = NULL;
    orion_acquire_params dap = orion_acquire_default_params();
    const orion_acquire_params *ap = params ? params : &dap;
    evq q = {.n = 0};
    orion_status st = ORION_OK;
    char b1[32], b2[32], b3[32];

    pthread_mutex_lock(&mgr->lock);
    mmodel *m = find_model(mgr, id);
    if (!m) {
        pthread_mutex_unlock(&mgr->lock);
        return orion__fail(ORION_ERR_NOT_FOUND, "no model '%s' in the registry", id);
    }
    while (m->state == ST_LOADING) pthread_cond_wait(&mgr->cond, &mgr->lock);
    if (m->state == ST_LOADED) {
        st = make_lease(m, ap, out);
        if (st == ORION_OK) {
            m->refs++;
            m->last_used = mgr_now(mgr);
            m->expires = -1;
        }
        pthread_mutex_unlock(&mgr->lock);
        return st;
    }
    if (orion_pressure_monitor_level(mgr->mon) == ORION_PRESSURE_CRITICAL) {
        pthread_mutex_unlock(&mgr->lock);
        return orion__fail(ORION_ERR_LIMIT, "model '%s': memory pressure is critical: not loading", id);
    }

    /* the level: the one asked, or the tier's, then smaller ones, then larger ones */
    int pref = ap->level >= 0 && ap->level < ORION_QLEVEL_COUNT ? ap->level
             : m->cfg_level >= 0                                  ? m->cfg_level
                                                                  : (int)mgr->profile.tier.level;
    const uint64_t budget = mgr->profile.budget;
    const uint64_t pinned = pinned_bytes(mgr);
    const uint64_t free_bytes = budget > pinned ? budget - pinned : 0;
    int order[ORION_QLEVEL_COUNT], n_order = 0;
    for (int l = pref; l >= 0; l--) order[n_order++] = l;
    for (int l = pref + 1; l < ORION_QLEVEL_COUNT; l++) order[n_order++] = l;
    int chosen = -1;
    uint64_t smallest = UINT64_MAX;
    orion_model_need need = {0};
    for (int i = 0; i < n_order && chosen < 0; i++) {
        int l = order[i];
        if (!m->files[l]) continue;
        orion_model_need nd;
        if ((st = need_locked(m, (orion_qlevel)l, &nd)) != ORION_OK) {
            pthread_mutex_unlock(&mgr->lock);
            return st;
        }
        smallest = ORION_MIN(smallest, nd.total);
        if (nd.total <= free_bytes) chosen = l, need = nd;
    }
    if (chosen < 0) {
        pthread_mutex_unlock(&mgr->lock);
        return orion__fail(ORION_ERR_LIMIT,
                           "model '%s': needs %s (%" PRIu64 " bytes) at its smallest level, but only %s (%" PRIu64
                           " bytes) of the %s budget is free beside the models in use",
                           id, fmt_bytes(smallest, b1, sizeof b1), smallest, fmt_bytes(free_bytes, b2, sizeof b2),
                           free_bytes, fmt_bytes(budget, b3, sizeof b3));
    }
    /* make room: the tier's count and the budget, least recently used first */
    for (;;) {
        int count;
        uint64_t used = loaded_bytes(mgr, &count);
        if (count < mgr->profile.tier.max_models && used + need.total <= budget) break;
        mmodel *victim = lru_idle(mgr, m);
        if (!victim) {
            if (count >= mgr->profile.tier.max_models) {
                pthread_mutex_unlock(&mgr->lock);
                evq_flush(mgr, &q);
                return orion__fail(ORION_ERR_LIMIT, "model '%s': the tier allows %d models loaded and all are in use",
                                   id, mgr->profile.tier.max_models);
            }
            break;
        }
        unload_locked(mgr, victim, ORION_UNLOAD_LRU, &q);
    }
    m->state = ST_LOADING;
    m->level = (orion_qlevel)chosen;
    m->need_total = need.total;
    evq_push(mgr, &q, ORION_EVENT_LOAD_STARTED, m, need.total, 0);
    const char *path = m->files[chosen];
    pthread_mutex_unlock(&mgr->lock);
    evq_flush(mgr, &q);

    ORION_LOG_I("manager: loading '%s' at %s from %s (need %s)", id, orion_qlevel_name((orion_qlevel)chosen), path,
                fmt_bytes(need.total, b1, sizeof b1));
    load_ctx c = {mgr, m, ap, path};
    loaded o;
    st = do_load(&c, &o);
    orion_model_lease *lease = NULL;
    if (st == ORION_OK && (st = make_lease(m, ap, &lease)) != ORION_OK) loaded_free(&o);

    pthread_mutex_lock(&mgr->lock);
    if (st == ORION_OK) {
        m->map = o.map;
        m->map_size = o.size;
        m->pmap = o.pmap;
        m->pmap_size = o.psize;
        m->llm = o.llm;
        m->emb = o.emb;
        m->clip = o.clip;
        m->heap = o.heap;
        m->clip_heap = o.clip_heap;
        m->kv = o.kv;
        m->refs = 1;
        m->last_used = mgr_now(mgr);
        m->expires = -1;
        m->state = ST_LOADED;
        evq_push(mgr, &q, ORION_EVENT_LOADED, m, m->need_total, 0);
    } else {
        m->state = ST_UNLOADED;
        evq_push(mgr, &q, st == ORION_ERR_CANCELLED ? ORION_EVENT_LOAD_CANCELLED : ORION_EVENT_LOAD_FAILED, m, 0, 0);
        q.ev[q.n - 1].status = st;
    }
    pthread_cond_broadcast(&mgr->cond);
    pthread_mutex_unlock(&mgr->lock);
    /* keep the message of a failure across the event callbacks */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", orion_last_error());
    evq_flush(mgr, &q);
    if (st != ORION_OK) return orion__fail(st, "%s", msg);
    *out = lease;
    return ORION_OK;
}

void orion_manager_release(orion_manager *mgr, orion_model_lease *lease) {
    if (!mgr || !lease) return;
    evq q = {.n = 0};
    pthread_mutex_lock(&mgr->lock);
    mmodel *m = lease->m;
    if (m->refs > 0) m->refs--;
    m->last_used = mgr_now(mgr);
    double ka = effective_keep_alive(mgr, m, lease->keep_alive);
    if (m->refs == 0) {
        if (ka == 0) unload_locked(mgr, m, ORION_UNLOAD_KEEP_ALIVE, &q);
        else m->expires = ka < 0 ? -1 : m->last_used + ka;
    }
    pthread_mutex_unlock(&mgr->lock);
    orion__free(lease);
    evq_flush(mgr, &q);
}

orion_llm *orion_lease_llm(const orion_model_lease *lease) { return lease ? lease->m->llm : NULL; }
orion_embedder *orion_lease_embedder(const orion_model_lease *lease) { return lease ? lease->m->emb : NULL; }
orion_qlevel orion_lease_level(const orion_model_lease *lease) { return lease ? lease->m->level : ORION_QLEVEL_Q4; }
const char *orion_lease_path(const orion_model_lease *lease) { return lease ? lease->m->files[lease->m->level] : NULL; }
orion_clip *orion_lease_clip(const orion_model_lease *lease) { return lease ? lease->m->clip : NULL; }

orion_status orion_manager_model_mmproj(orion_manager *mgr, const char *id, char *path, size_t size) {
    if (!mgr || !id || !path || !size)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_manager_model_mmproj: NULL argument");
    path[0] = '\0';
    pthread_mutex_lock(&mgr->lock);
    mmodel *m = find_model(mgr, id);
    if (m && m->mmproj) snprintf(path, size, "%s", m->mmproj);
    pthread_mutex_unlock(&mgr->lock);
    return m ? ORION_OK : orion__fail(ORION_ERR_NOT_FOUND, "no model '%s' in the registry", id);
}

orion_status orion_manager_model_task(orion_manager *mgr, const char *id, orion_task *out) {
    if (!mgr || !id || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_manager_model_task: NULL argument");
    pthread_mutex_lock(&mgr->lock);
    mmodel *m = find_model(mgr, id);
    if (m) *out = m->task;
    pthread_mutex_unlock(&mgr->lock);
    return m ? ORION_OK : orion__fail(ORION_ERR_NOT_FOUND, "no model '%s' in the registry", id);
}

orion_status orion_manager_unload(orion_manager *mgr, const char *id) {
    if (!mgr || !id) return orion__fail(ORION_ERR_INVALID_ARG, "orion_manager_unload: NULL argument");
    evq q = {.n = 0};
    orion_status st = ORION_OK;
    pthread_mutex_lock(&mgr->lock);
    mmodel *m = find_model(mgr, id);
    if (!m || m->state == ST_UNLOADED) st = orion__fail(ORION_ERR_NOT_FOUND, "model '%s' is not loaded", id);
    else if (m->state == ST_LOADING || m->refs > 0)
        st = orion__fail(ORION_ERR_BUSY, "model '%s' is in use (%d leases)", id, m->refs);
    else unload_locked(mgr, m, ORION_UNLOAD_EXPLICIT, &q);
    pthread_mutex_unlock(&mgr->lock);
    evq_flush(mgr, &q);
    return st;
}

/* Unloads idle models for the pressure level: high keeps the most recently
 * used idle model, critical keeps none. Called with the lock held. */
static int react_locked(orion_manager *mgr, orion_pressure level, evq *q) {
    if (level < ORION_PRESSURE_HIGH) return 0;
    int n = 0;
    for (;;) {
        int idle = 0;
        for (int i = 0; i < mgr->n_models; i++)
            idle += mgr->models[i]->state == ST_LOADED && mgr->models[i]->refs == 0;
        if (idle == 0 || (level == ORION_PRESSURE_HIGH && idle <= 1)) break;
        unload_locked(mgr, lru_idle(mgr, NULL), ORION_UNLOAD_PRESSURE, q);
        n++;
    }
    return n;
}

static int tick_locked(orion_manager *mgr, evq *q) {
    double now = mgr_now(mgr);
    int n = 0;
    for (int i = 0; i < mgr->n_models; i++) {
        mmodel *m = mgr->models[i];
        if (m->state == ST_LOADED && m->refs == 0 && m->expires >= 0 && now >= m->expires) {
            unload_locked(mgr, m, ORION_UNLOAD_IDLE, q);
            n++;
        }
    }
    return n;
}

int orion_manager_tick(orion_manager *mgr) {
    if (!mgr) return 0;
    evq q = {.n = 0};
    pthread_mutex_lock(&mgr->lock);
    int n = tick_locked(mgr, &q);
    n += react_locked(mgr, orion_pressure_monitor_level(mgr->mon), &q);
    pthread_mutex_unlock(&mgr->lock);
    evq_flush(mgr, &q);
    return n;
}

static void monitor_tick(void *user) { orion_manager_tick(user); }

static void on_pressure(orion_pressure level, orion_pressure prev, const orion_pressure_sample *s, void *user) {
    ORION_UNUSED(s);
    orion_manager *mgr = user;
    evq q = {.n = 0};
    pthread_mutex_lock(&mgr->lock);
    evq_push(mgr, &q, ORION_EVENT_PRESSURE, NULL, s->available, 0);
    q.ev[q.n - 1].pressure = level;
    q.ev[q.n - 1].previous = prev;
    react_locked(mgr, level, &q);
    pthread_mutex_unlock(&mgr->lock);
    evq_flush(mgr, &q);
}

orion_pressure orion_manager_check_pressure(orion_manager *mgr) {
    if (!mgr) return ORION_PRESSURE_LOW;
    orion_pressure_sample s;
    orion_pressure_monitor_poll(mgr->mon, &s);
    evq q = {.n = 0};
    pthread_mutex_lock(&mgr->lock);
    react_locked(mgr, s.level, &q);
    pthread_mutex_unlock(&mgr->lock);
    evq_flush(mgr, &q);
    return s.level;
}

orion_pressure orion_manager_pressure(orion_manager *mgr) { return mgr ? orion_pressure_monitor_level(mgr->mon) : 0; }

void orion_manager_profile(orion_manager *mgr, orion_device_profile *out) {
    if (mgr && out) *out = mgr->profile;
}

/* ---- accounting ---- */

uint64_t orion_resident_bytes(const void *addr, size_t len) {
    if (!addr || !len) return 0;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    size_t span = (uintptr_t)addr + len - start;
    size_t n = (span + page - 1) / page;
    unsigned char vec[4096];
    uint64_t res = 0;
    for (size_t done = 0; done < n;) {
        size_t k = ORION_MIN(n - done, sizeof vec);
        if (mincore((void *)(start + done * page), k * page, vec) != 0) return res;
        for (size_t i = 0; i < k; i++) res += (vec[i] & 1) ? page : 0;
        done += k;
    }
    return ORION_MIN(res, (uint64_t)span);
}

int orion_manager_status(orion_manager *mgr, orion_model_status *out, int n) {
    if (!mgr) return 0;
    int k = 0;
    pthread_mutex_lock(&mgr->lock);
    for (int i = 0; i < mgr->n_models; i++) {
        mmodel *m = mgr->models[i];
        if (m->state != ST_LOADED) continue;
        if (k < n && out) {
            orion_model_status *s = &out[k];
            memset(s, 0, sizeof *s);
            snprintf(s->id, sizeof s->id, "%s", m->id);
            s->level = m->level;
            s->loaded = true;
            s->refs = m->refs;
            s->mapped = m->map_size + m->pmap_size;
            s->resident = orion_resident_bytes(m->map, m->map_size) + orion_resident_bytes(m->pmap, m->pmap_size);
            s->heap = m->heap;
            s->encoder = m->clip ? m->pmap_size + m->clip_heap : 0;
            s->kv = m->kv;
            s->need = m->need_total;
            s->last_used = m->last_used;
            s->expires = m->refs > 0 ? -1 : m->expires;
        }
        k++;
    }
    pthread_mutex_unlock(&mgr->lock);
    return k;
}

orion_status orion_process_memory_read(const char *proc_root, orion_process_memory *out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_process_memory_read: out is NULL");
    memset(out, 0, sizeof *out);
    const char *root = proc_root ? proc_root : "/proc";
    char text[4096];
    if (mgr__read_file(root, "self/smaps_rollup", text, sizeof text) > 0) {
        mgr__meminfo_get(text, "Rss", &out->rss);
        mgr__meminfo_get(text, "Pss", &out->pss);
        mgr__meminfo_get(text, "Pss_Anon", &out->pss_anon);
        mgr__meminfo_get(text, "Pss_File", &out->pss_file);
        return ORION_OK;
    }
    if (mgr__read_file(root, "self/status", text, sizeof text) > 0 && mgr__meminfo_get(text, "VmRSS", &out->rss)) {
        out->pss = out->rss;
        return ORION_OK;
    }
    return orion__fail(ORION_ERR_NOT_FOUND, "%s/self/smaps_rollup: not readable", root);
}
