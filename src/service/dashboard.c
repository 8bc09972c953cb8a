/*
 * dashboard.c — the memory dashboard of `orion serve` (docs/dashboard.md):
 * the page and its assets, /api/profile, and loading / cancelling a model
 * from the page.
 *
 * The page (web/index.html, app.js, style.css) is compiled in: CMake runs
 * cmake/embed_assets.cmake, which writes every file as a byte array into a
 * generated source (dashboard_assets.c in the build tree), so the binary
 * serves it with no files, CDN or network. Static files are answered with
 * a Content-Security-Policy that allows only this origin: the page runs no
 * inline script and loads nothing from elsewhere.
 *
 * Everything live comes from endpoints the server has anyway (/events,
 * /api/ps, /metrics, /api/unload); this file adds what the page needs and
 * nothing else needs:
 *
 *  - GET /api/profile: the manager's device profile and tier (budget,
 *    level, models at once, idle delay), the pressure level, the process's
 *    RSS/PSS, and every served model with its task and state (the Load
 *    buttons need the models that are not loaded, which /api/ps omits);
 *  - POST /api/load: acquires the model through the manager with a cancel
 *    token, then releases it at once, so its keep-alive (the request's, or
 *    the policy's) starts. The manager announces load_started,
 *    load_progress and loaded on /events while this request's thread does
 *    the work; the reply comes when the model is loaded. The built-in hash
 *    model, held outside the manager, is loaded directly (no events);
 *  - POST /api/load/cancel: sets the token of every load of that model in
 *    progress here; the manager checks it between chunks, frees what it had
 *    and reports load_cancelled; the load's request answers 409.
 *
 * Loads in progress are a small fixed table under one mutex (an entry is
 * added before the acquire and removed after it), so cancelling never
 * races with the token being freed.
 */
#include "service/dashboard.h"
#include "service/models_internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#define MAX_LOADS 32

typedef struct active_load {
    bool          used;
    char          id[128];
    orion_cancel *cancel;
} active_load;

struct orion__dashboard {
    orion_manager  *mgr;
    orion__models  *models;
    char           *api_key;
    pthread_mutex_t mu;          /* loads */
    active_load     loads[MAX_LOADS];
};

/* ---- assets ----------------------------------------------------------------------- */

const orion__asset *orion__dashboard_asset(const char *url) {
    if (!url) return NULL;
    if (strcmp(url, "/") == 0) url = "/index.html";
    for (int i = 0; i < orion__dashboard_n_assets; i++) {
        if (strcmp(orion__dashboard_assets[i].path, url) == 0) return &orion__dashboard_assets[i];
    }
    return NULL;
}

static int send_asset(struct MHD_Connection *c, const orion__asset *a) {
    struct MHD_Response *r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return 500;
    MHD_add_response_header(r, "Content-Type", a->ctype);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                            "connect-src 'self'; frame-ancestors 'none'");
    MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return 200;
}

/* ---- life ------------------------------------------------------------------------- */

orion_status orion__dashboard_init(orion_manager *mgr, orion__models *models, const char *api_key,
                                   orion__dashboard **out) {
    *out = NULL;
    orion__dashboard *d = orion__calloc(1, sizeof *d);
    if (!d) return orion__fail(ORION_ERR_NOMEM, "no memory");
    d->mgr = mgr;
    d->models = models;
    if (api_key && *api_key && !(d->api_key = orion__strdup(api_key))) {
        orion__free(d);
        return orion__fail(ORION_ERR_NOMEM, "no memory");
    }
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return ORION_OK;
}

void orion__dashboard_free(orion__dashboard *d) {
    if (!d) return;
    pthread_mutex_destroy(&d->mu);
    orion__free(d->api_key);
    orion__free(d);
}

int orion__dashboard_cancel(orion__dashboard *d, const char *id) {
    int n = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < MAX_LOADS; i++) {
        if (d->loads[i].used && strcmp(d->loads[i].id, id) == 0) {
            orion_cancel_set(d->loads[i].cancel);
            n++;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return n;
}

static bool loading(orion__dashboard *d, const char *id) {
    bool yes = false;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < MAX_LOADS && !yes; i++) yes = d->loads[i].used && strcmp(d->loads[i].id, id) == 0;
    pthread_mutex_unlock(&d->mu);
    return yes;
}

/* ---- replies ---------------------------------------------------------------------- */

static int fail(struct MHD_Connection *c, int code, const char *type, const char *fmt, ...) ORION_PRINTF(4, 5);

static int fail(struct MHD_Connection *c, int code, const char *type, const char *fmt, ...) {
    orion__http_error e;
    e.code = code;
    snprintf(e.type, sizeof e.type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    orion__send_error(c, &e);
    return code;
}

static int send_json(struct MHD_Connection *c, orion__buf *b) {
    int code = b->failed ? 500 : 200;
    orion__send_buf(c, 200, "application/json", b);
    return code;
}

static void json_key_str(orion__buf *b, const char *key, const char *val) {
    orion__buf_printf(b, "\"%s\":", key);
    orion__buf_json_str(b, val, strlen(val));
}

/* A byte count, or null for "no limit". */
static void json_bytes(orion__buf *b, const char *key, uint64_t v) {
    if (v == ORION_NO_LIMIT) orion__buf_printf(b, "\"%s\":null", key);
    else orion__buf_printf(b, "\"%s\":%llu", key, (unsigned long long)v);
}

/* ---- GET /api/profile ------------------------------------------------------------- */

static int profile(orion__dashboard *d, struct MHD_Connection *c) {
    orion_device_profile p;
    orion_manager_profile(d->mgr, &p);
    orion_process_memory pm;
    if (orion_process_memory_read(NULL, &pm) != ORION_OK) memset(&pm, 0, sizeof pm);
    char feats[256];
    orion_cpu_features_str(p.cpu_features, feats, sizeof feats);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    orion__buf b = {0};
    orion__buf_puts(&b, "{\"device\":{");
    json_bytes(&b, "mem_total", p.mem_total);
    orion__buf_puts(&b, ",");
    json_bytes(&b, "mem_available", p.mem_available);
    orion__buf_printf(&b, ",\"cgroup_version\":%d,", p.cgroup_version);
    json_bytes(&b, "cgroup_max", p.cg_max);
    orion__buf_puts(&b, ",");
    json_bytes(&b, "cgroup_high", p.cg_high);
    orion__buf_puts(&b, ",");
    json_bytes(&b, "cgroup_current", p.cg_current);
    orion__buf_printf(&b, ",\"n_cpus\":%d,", p.n_cpus);
    json_key_str(&b, "cpu_features", feats);
    orion__buf_puts(&b, "},");
    json_bytes(&b, "budget", p.budget);
    orion__buf_puts(&b, ",");
    json_bytes(&b, "available", p.available);
    orion__buf_puts(&b, ",\"tier\":{");
    json_key_str(&b, "name", p.tier.name);
    orion__buf_puts(&b, ",");
    json_key_str(&b, "level", orion_qlevel_name(p.tier.level));
    orion__buf_printf(&b, ",\"max_models\":%d,\"idle_unload_s\":%.3f,", p.tier.max_models, p.tier.idle_unload_s);
    json_bytes(&b, "max_budget", p.tier.max_budget);
    orion__buf_puts(&b, "},");
    json_key_str(&b, "pressure", orion_pressure_name(orion_manager_pressure(d->mgr)));
    orion__buf_printf(&b, ",\"process\":{\"rss\":%llu,\"pss\":%llu},\"time\":%.3f,\"models\":[",
                      (unsigned long long)pm.rss, (unsigned long long)pm.pss,
                      (double)now.tv_sec + (double)now.tv_nsec * 1e-9);
    int n = orion__models_count(d->models);
    double t = orion__now();
    for (int i = 0; i < n; i++) {
        orion__model_desc m;
        orion__models_describe(d->models, i, &m);
        orion__buf_puts(&b, i ? ",{" : "{");
        json_key_str(&b, "id", m.id);
        orion__buf_puts(&b, ",");
        json_key_str(&b, "task", m.is_llm ? "generate" : "embed");
        orion__buf_puts(&b, ",");
        json_key_str(&b, "arch", m.arch);
        orion__buf_puts(&b, ",");
        json_key_str(&b, "level", m.level);
        orion__buf_printf(&b,
                          ",\"default\":%s,\"builtin\":%s,\"loaded\":%s,\"loading\":%s,\"refs\":%d,"
                          "\"last_used_ago\":",
                          i == 0 ? "true" : "false", m.builtin ? "true" : "false", m.loaded ? "true" : "false",
                          loading(d, m.id) ? "true" : "false", m.refs);
        if (m.last_used > 0) orion__buf_printf(&b, "%.3f", ORION_MAX(0.0, t - m.last_used));
        else orion__buf_puts(&b, "null");
        orion__buf_printf(&b, ",\"expires_in\":%.3f,\"resident_bytes\":%zu,\"need_bytes\":%llu", m.expires_in,
                          m.resident_bytes, (unsigned long long)m.need_bytes);
        if (m.vision) orion__buf_printf(&b, ",\"projector_bytes\":%llu", (unsigned long long)m.projector_bytes);
        orion__buf_puts(&b, "}");
    }
    orion__buf_puts(&b, "]}");
    return send_json(c, &b);
}

/* ---- POST /api/load, /api/load/cancel ---------------------------------------------- */

/* {"model": ID, "keep_alive": ...}: both optional (the default model; the
 * policy's keep-alive). */
static int parse_load(struct MHD_Connection *c, const orion__dashboard_req *r, char *model, size_t size,
                      double *keep_alive) {
    model[0] = 0;
    *keep_alive = ORION_KEEP_ALIVE_DEFAULT;
    if (!r->body || r->len == 0) return 0;
    cJSON *root = cJSON_ParseWithLength(r->body, r->len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(c, 400, "invalid_request_error", "the body must be a JSON object");
    }
    int code = 0;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    orion__http_error err;
    if (m && (!cJSON_IsString(m) || strlen(m->valuestring) >= size))
        code = fail(c, 400, "invalid_request_error", "'model' must be a string of fewer than %zu bytes", size);
    else if (orion__keep_alive_field(cJSON_GetObjectItemCaseSensitive(root, "keep_alive"), keep_alive, &err) !=
             ORION_OK)
        code = (orion__send_error(c, &err), err.code);
    else if (m) snprintf(model, size, "%s", m->valuestring);
    cJSON_Delete(root);
    return code;
}

/* The index of the served model `id` ("" = the default), or -1. */
static int model_index(orion__dashboard *d, const char *id, orion__model_desc *desc) {
    const orion__model *x = orion__models_find(d->models, id);
    if (!x) return -1;
    int n = orion__models_count(d->models);
    for (int i = 0; i < n; i++) {
        orion__models_describe(d->models, i, desc);
        if (strcmp(desc->id, orion__model_id(x)) == 0) return i;
    }
    return -1;
}

static int load(orion__dashboard *d, struct MHD_Connection *c, const orion__dashboard_req *r) {
    if (r->stopping) return fail(c, 503, "overloaded_error", "the server is shutting down");
    char id[128];
    double keep_alive;
    int code = parse_load(c, r, id, sizeof id, &keep_alive);
    if (code) return code;
    orion__model_desc desc;
    if (model_index(d, id, &desc) < 0) return fail(c, 404, "not_found_error", "model '%.100s' not found", id);
    double t0 = orion__now();
    orion__http_error err;
    if (desc.builtin) { /* held by the service itself: no manager, no events */
        bool unloaded;
        if (orion__model_control(orion__models_find(d->models, desc.id), keep_alive == 0 ? -1 : keep_alive,
                                 &unloaded, &err) != ORION_OK) {
            orion__send_error(c, &err);
            return err.code;
        }
    } else {
        orion_cancel *cancel = NULL;
        if (orion_cancel_init(&cancel) != ORION_OK) return fail(c, 500, "server_error", "out of memory");
        int slot = -1;
        pthread_mutex_lock(&d->mu);
        for (int i = 0; i < MAX_LOADS && slot < 0; i++) {
            if (!d->loads[i].used) {
                slot = i;
                d->loads[i].used = true;
                d->loads[i].cancel = cancel;
                snprintf(d->loads[i].id, sizeof d->loads[i].id, "%s", desc.id);
            }
        }
        pthread_mutex_unlock(&d->mu);
        if (slot < 0) {
            orion_cancel_free(cancel);
            return fail(c, 503, "overloaded_error", "too many loads in progress");
        }
        orion_acquire_params ap = orion_acquire_default_params();
        ap.keep_alive_s = keep_alive;
        ap.cancel = cancel;
        orion_model_lease *lease = NULL;
        orion_status st = orion_manager_acquire(d->mgr, desc.id, &ap, &lease);
        if (st != ORION_OK && st != ORION_ERR_CANCELLED) orion__lease_error(desc.id, st, &err); /* reads the message */
        pthread_mutex_lock(&d->mu);
        d->loads[slot].used = false;
        d->loads[slot].cancel = NULL;
        pthread_mutex_unlock(&d->mu);
        orion_cancel_free(cancel);
        if (st == ORION_ERR_CANCELLED)
            return fail(c, 409, "conflict_error", "the load of model '%.100s' was cancelled", desc.id);
        if (st != ORION_OK) {
            orion__send_error(c, &err);
            return err.code;
        }
        orion_manager_release(d->mgr, lease); /* the keep-alive starts now */
    }
    orion__models_describe(d->models, model_index(d, desc.id, &desc), &desc);
    orion__buf b = {0};
    orion__buf_puts(&b, "{");
    json_key_str(&b, "model", desc.id);
    orion__buf_puts(&b, ",");
    json_key_str(&b, "level", desc.level);
    orion__buf_printf(&b, ",\"loaded\":%s,\"seconds\":%.3f}", desc.loaded ? "true" : "false", orion__now() - t0);
    return send_json(c, &b);
}

static int cancel(orion__dashboard *d, struct MHD_Connection *c, const orion__dashboard_req *r) {
    char id[128];
    double keep_alive;
    int code = parse_load(c, r, id, sizeof id, &keep_alive);
    if (code) return code;
    orion__model_desc desc;
    if (model_index(d, id, &desc) < 0) return fail(c, 404, "not_found_error", "model '%.100s' not found", id);
    int n = orion__dashboard_cancel(d, desc.id);
    if (n == 0) return fail(c, 404, "not_found_error", "model '%.100s' is not being loaded", desc.id);
    orion__buf b = {0};
    orion__buf_puts(&b, "{");
    json_key_str(&b, "model", desc.id);
    orion__buf_printf(&b, ",\"cancelled\":%d}", n);
    return send_json(c, &b);
}

/* ---- routing ---------------------------------------------------------------------- */

static bool authorized(const orion__dashboard *d, struct MHD_Connection *c) {
    if (!d->api_key) return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t kl = strlen(d->api_key);
    return auth && strncmp(auth, "Bearer ", 7) == 0 && strlen(auth + 7) == kl && memcmp(auth + 7, d->api_key, kl) == 0;
}

int orion__dashboard_serve(orion__dashboard *d, struct MHD_Connection *c, const orion__dashboard_req *r) {
    if (!d || !r->url || !r->method) return 0;
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    bool post = strcmp(r->method, "POST") == 0;
    const orion__asset *a = orion__dashboard_asset(r->url);
    if (a) {
        if (!get) return fail(c, 405, "invalid_request_error", "%s needs GET", r->url);
        return send_asset(c, a);
    }
    enum { PROFILE, LOAD, CANCEL } what;
    if (strcmp(r->url, "/api/profile") == 0) what = PROFILE;
    else if (strcmp(r->url, "/api/load") == 0) what = LOAD;
    else if (strcmp(r->url, "/api/load/cancel") == 0) what = CANCEL;
    else return 0;
    if (!authorized(d, c)) return fail(c, 401, "authentication_error", "missing or wrong API key (Authorization: Bearer KEY)");
    if (what == PROFILE ? !get : !post)
        return fail(c, 405, "invalid_request_error", "%s needs %s", r->url, what == PROFILE ? "GET" : "POST");
    if (r->too_large) return fail(c, 413, "invalid_request_error", "the request body is too large");
    switch (what) {
    case PROFILE: return profile(d, c);
    case LOAD: return load(d, c, r);
    case CANCEL: return cancel(d, c, r);
    }
    return 0;
}
