/*
 * server.c — the model server (orion_server_*): libmicrohttpd glue, routing,
 * the embedding endpoints in their OpenAI and Ollama shapes, model listing,
 * health, metrics, auth and the drain on stop.
 *
 * Threads. libmicrohttpd runs one thread per connection (plus its polling
 * thread); a request thread parses the body, serves what it can from the
 * cache, hands the misses to the model's batcher (models.c) and blocks until
 * they are embedded. A client that disconnects while its request waits is
 * noticed by libmicrohttpd when the reply is queued; the request's memory
 * is freed in the completion callback either way.
 *
 * Listening. TCP on host:port (loopback by default) and/or a Unix socket
 * that we create, chmod (0600 by default) and hand to a second daemon with
 * MHD_OPTION_LISTEN_SOCKET. Both daemons share the handler.
 *
 * Models. The server holds its models through a model manager (its own,
 * made from registry_path / config_path, or one the application lends):
 * models.c leases a model for each embedding pass or generation request.
 * The server subscribes once to the manager's events: each goes to the
 * /events streams (events.c); `pressure` events resize the cache (half at
 * high, a 1 MiB floor at critical, back when it eases); `unloaded` events
 * drop a generation model's extra slots.
 *
 * Stop. Both daemons are quiesced (no new connections), the /events streams
 * are ended, in-flight requests are waited for (up to the timeout), the
 * daemons are stopped, the manager subscription is removed, the batchers
 * are stopped and the models released (and the server's own manager
 * freed), then the cache snapshot is written.
 */
#include "service/dashboard.h"
#include "service/service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <xxhash.h>

struct orion_server {
    orion_server_params p;
    char               *host, *socket_path, *api_key, *cache_path;
    struct MHD_Daemon  *tcp, *unx;
    int                 unix_fd;
    bool                socket_bound; /* we created socket_path: removed at stop */
    int                 port;
    size_t              image_body;   /* body limit of the generation endpoints: room for one image (body_limit) */
    orion_manager      *mgr;
    bool                own_mgr;      /* made here: freed at stop */
    int                 mgr_sub;      /* subscription id, 0 = none */
    orion__events      *events;
    orion__dashboard   *dash;         /* the page at / and its endpoints (dashboard.c) */
    orion__models      *models;
    orion_cache        *cache;
    /* the cache's bounds: as configured, and now (pressure may lower them) */
    pthread_mutex_t     pressure_mu;
    size_t              cache_bytes, cache_entries, cache_cur_bytes, cache_cur_entries;
    uint64_t            cache_shrinks;
    orion__metrics      metrics;
    atomic_int          in_flight;    /* requests, /events streams excepted */
    atomic_bool         stopping;
    bool                stopped;
};

typedef struct req_state {
    orion__buf body;
    size_t     limit;      /* body bytes allowed (body_limit) */
    bool       too_large;
    bool       stream;     /* an /events stream: not counted in flight */
    double     t0;
} req_state;

orion_server_params orion_server_default_params(void) {
    orion_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 11435;
    p.socket_mode = 0600;
    p.load_eagerly = true;
    p.prefault = true;
    p.max_body = (size_t)4 << 20;
    p.max_inputs = 2048;
    p.max_tokens = 0;
    p.truncate = true;
    p.max_queue = 8192;
    p.max_connections = 256;
    p.max_images = 8;
    p.max_image_bytes = (size_t)20 << 20;
    p.image_timeout_ms = 10000;
    p.batching = true;
    p.batch_tokens = 8192;
    p.batch_wait_us = 2000;
    p.cache_bytes = ORION_CACHE_AUTO;
    p.cache_entries = ORION_CACHE_AUTO;
    p.cache_policy = ORION_CACHE_WTINYLFU;
    p.gen_slots = 2;
    return p;
}

/* ---- replies ------------------------------------------------------------------ */

static enum MHD_Result send_buf(struct MHD_Connection *c, int code, const char *ctype, orion__buf *b,
                                bool retry_after) {
    struct MHD_Response *r;
    if (b->failed) {
        orion__buf_free(b);
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"code\":500}}";
        r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        code = 500;
        ctype = "application/json";
    } else if (!b->p) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer_with_free_callback(b->len, b->p, orion__free);
        if (!r) orion__free(b->p);
    }
    memset(b, 0, sizeof *b);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, r);
    MHD_destroy_response(r);
    return ret;
}

int orion__send_buf(struct MHD_Connection *c, int code, const char *ctype, orion__buf *b) {
    return send_buf(c, code, ctype, b, code == 503) == MHD_YES ? 0 : -1;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const orion__http_error *err);

int orion__send_error(struct MHD_Connection *c, const orion__http_error *err) {
    return send_error(c, err) == MHD_YES ? 0 : -1;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const orion__http_error *err) {
    orion__buf b = {0};
    orion__error_body(&b, err);
    return send_buf(c, err->code, "application/json", &b, err->code == 503);
}

static enum MHD_Result send_err(struct MHD_Connection *c, int code, const char *type, const char *msg) {
    orion__http_error e;
    e.code = code;
    snprintf(e.type, sizeof e.type, "%s", type);
    snprintf(e.message, sizeof e.message, "%s", msg);
    return send_error(c, &e);
}

static void iso_time(double unix_s, char *buf, size_t n) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- embeddings ----------------------------------------------------------------- */

static int embed_endpoint(orion_server *s, struct MHD_Connection *c, int api, const req_state *r) {
    orion__embed_request req;
    orion__http_error err;
    memset(&err, 0, sizeof err);
    float *vecs = NULL;
    int32_t *n_tok = NULL, *miss_idx = NULL;
    const char **miss_txt = NULL;
    size_t *miss_len = NULL;
    orion__buf b = {0};
    int code = 200;
    double t0 = orion__now();
    orion_status pst = orion__embed_request_parse(r->body.p, r->body.len, api, s->p.max_inputs, &req, &err);
    bool control = pst != ORION_OK && req.no_input && api == ORION__API_OLLAMA;
    if (pst != ORION_OK && !control) goto fail;
    orion__model *m = orion__models_find(s->models, req.model);
    if (!m) {
        orion__http_set(&err, 404, "not_found_error", "model '%.100s' not found", req.model);
        goto fail;
    }
    if (control) { /* Ollama: no input loads the model; with keep_alive 0 it unloads it */
        bool unloaded = false;
        if (orion__model_is_llm(m)) {
            orion__http_set(&err, 400, "invalid_request_error", "model '%.100s' generates text; it gives no embeddings",
                            orion__model_id(m));
            goto fail;
        }
        if (orion__model_control(m, req.keep_alive, &unloaded, &err) != ORION_OK) goto fail;
        orion__buf_puts(&b, "{\"model\":");
        orion__buf_json_str(&b, orion__model_id(m), strlen(orion__model_id(m)));
        orion__buf_printf(&b, ",\"embeddings\":[],\"total_duration\":%lld,\"load_duration\":0,\"prompt_eval_count\":0,"
                              "\"done_reason\":\"%s\"}",
                          (long long)((orion__now() - t0) * 1e9), unloaded ? "unload" : "load");
        send_buf(c, 200, "application/json", &b, false);
        goto done;
    }
    int32_t dim = 0;
    char ns[256];
    if (orion__model_ensure(m, &dim, ns, sizeof ns, &err) != ORION_OK) goto fail;
    if (req.dimensions && req.dimensions != dim) {
        err.code = 400;
        snprintf(err.type, sizeof err.type, "invalid_request_error");
        snprintf(err.message, sizeof err.message,
                 "model '%s' gives %d-dimensional vectors and cannot shorten them ('dimensions': %d)",
                 orion__model_id(m), dim, req.dimensions);
        goto fail;
    }
    int32_t n = req.n;
    vecs = orion__malloc((size_t)n * (size_t)dim * sizeof *vecs);
    n_tok = orion__calloc((size_t)n, sizeof *n_tok);
    miss_idx = orion__malloc((size_t)n * sizeof *miss_idx);
    miss_txt = orion__malloc((size_t)n * sizeof *miss_txt);
    miss_len = orion__malloc((size_t)n * sizeof *miss_len);
    if (!vecs || !n_tok || !miss_idx || !miss_txt || !miss_len) {
        err.code = 500;
        snprintf(err.type, sizeof err.type, "server_error");
        snprintf(err.message, sizeof err.message, "out of memory for %d inputs", n);
        goto fail;
    }
    /* the cache first; a truncate:false request skips it for its token check */
    int32_t n_miss = 0;
    for (int32_t i = 0; i < n; i++) {
        bool hit = s->cache && req.truncate != 0 &&
                   orion_cache_get(s->cache, ns, req.texts[i], req.lens[i], vecs + (size_t)i * dim, dim);
        if (!hit) {
            miss_idx[n_miss] = i;
            miss_txt[n_miss] = req.texts[i];
            miss_len[n_miss] = req.lens[i];
            n_miss++;
        }
    }
    int64_t tokens = 0;
    if (n_miss > 0) {
        float *mv = n_miss == n ? vecs : orion__malloc((size_t)n_miss * (size_t)dim * sizeof *mv);
        if (!mv) {
            err.code = 500;
            snprintf(err.type, sizeof err.type, "server_error");
            snprintf(err.message, sizeof err.message, "out of memory");
            goto fail;
        }
        orion_status st = orion__model_embed(m, miss_txt, miss_len, n_miss, req.truncate, req.keep_alive, dim, mv,
                                             n_tok, ns, sizeof ns, &err);
        if (st == ORION_OK) {
            for (int32_t k = 0; k < n_miss; k++) {
                int32_t i = miss_idx[k];
                tokens += n_tok[k];
                if (mv != vecs) memcpy(vecs + (size_t)i * dim, mv + (size_t)k * dim, (size_t)dim * sizeof *vecs);
                if (s->cache) orion_cache_put(s->cache, ns, req.texts[i], req.lens[i], vecs + (size_t)i * dim, dim);
            }
        }
        if (mv != vecs) orion__free(mv);
        if (st != ORION_OK) goto fail;
    } else {
        orion__model_keep_alive(m, req.keep_alive); /* the model was not needed */
    }
    if (api == ORION__API_OPENAI) {
        orion__buf_puts(&b, "{\"object\":\"list\",\"data\":[");
        for (int32_t i = 0; i < n; i++) {
            orion__buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
            if (req.base64) orion__buf_b64_floats(&b, vecs + (size_t)i * dim, dim);
            else orion__buf_json_floats(&b, vecs + (size_t)i * dim, dim);
            orion__buf_puts(&b, "}");
        }
        orion__buf_puts(&b, "],\"model\":");
        orion__buf_json_str(&b, orion__model_id(m), strlen(orion__model_id(m)));
        orion__buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)tokens,
                          (long long)tokens);
    } else {
        orion__buf_puts(&b, "{\"model\":");
        orion__buf_json_str(&b, orion__model_id(m), strlen(orion__model_id(m)));
        orion__buf_puts(&b, ",\"embeddings\":[");
        for (int32_t i = 0; i < n; i++) {
            if (i) orion__buf_puts(&b, ",");
            orion__buf_json_floats(&b, vecs + (size_t)i * dim, dim);
        }
        orion__buf_printf(&b, "],\"total_duration\":%lld,\"load_duration\":0,\"prompt_eval_count\":%lld}",
                          (long long)((orion__now() - t0) * 1e9), (long long)tokens);
    }
    send_buf(c, 200, "application/json", &b, false);
    goto done;
fail:
    code = err.code ? err.code : 500;
    if (!err.code) {
        err.code = 500;
        snprintf(err.type, sizeof err.type, "server_error");
        snprintf(err.message, sizeof err.message, "internal error");
    }
    send_error(c, &err);
done:
    orion__embed_request_free(&req);
    orion__free(vecs);
    orion__free(n_tok);
    orion__free(miss_idx);
    orion__free(miss_txt);
    orion__free(miss_len);
    orion__buf_free(&b);
    return code;
}

/* ---- listings ------------------------------------------------------------------- */

static void model_details(orion__buf *b, const orion__model_desc *d) {
    char digest[17];
    snprintf(digest, sizeof digest, "%016llx", (unsigned long long)XXH64(d->path, strlen(d->path), 0));
    struct stat stt;
    long long size = stat(d->path, &stt) == 0 ? (long long)stt.st_size : 0;
    char when[40];
    iso_time(stat(d->path, &stt) == 0 ? (double)stt.st_mtime : 0, when, sizeof when);
    orion__buf_puts(b, "{\"name\":");
    orion__buf_json_str(b, d->id, strlen(d->id));
    orion__buf_puts(b, ",\"model\":");
    orion__buf_json_str(b, d->id, strlen(d->id));
    orion__buf_printf(b, ",\"modified_at\":\"%s\",\"size\":%lld,\"digest\":\"%s\",", when, size, digest);
    orion__buf_puts(b, "\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":");
    orion__buf_json_str(b, d->arch, strlen(d->arch));
    orion__buf_puts(b, ",\"families\":[");
    orion__buf_json_str(b, d->arch, strlen(d->arch));
    if (d->vision) orion__buf_puts(b, ",\"clip\""); /* as Ollama lists a LLaVA model */
    orion__buf_printf(b, "],\"parameter_size\":\"\",\"quantization_level\":\"\"},\"dimensions\":%d", d->dim);
    if (d->vision) orion__buf_printf(b, ",\"projector_bytes\":%llu", (unsigned long long)d->projector_bytes);
}

static int list_endpoint(orion_server *s, struct MHD_Connection *c, int ep) {
    orion__buf b = {0};
    int n = orion__models_count(s->models);
    if (ep == ORION__EP_MODELS) {
        orion__buf_puts(&b, "{\"object\":\"list\",\"data\":[");
        for (int i = 0; i < n; i++) {
            orion__model_desc d;
            orion__models_describe(s->models, i, &d);
            orion__buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
            orion__buf_json_str(&b, d.id, strlen(d.id));
            orion__buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"orion\"");
            if (d.vision) orion__buf_printf(&b, ",\"vision\":true,\"projector_bytes\":%llu", (unsigned long long)d.projector_bytes);
            orion__buf_puts(&b, "}");
        }
        orion__buf_puts(&b, "]}");
    } else {
        orion__buf_puts(&b, "{\"models\":[");
        int k = 0;
        for (int i = 0; i < n; i++) {
            orion__model_desc d;
            orion__models_describe(s->models, i, &d);
            if (ep == ORION__EP_PS && !d.loaded) continue;
            if (k++) orion__buf_puts(&b, ",");
            model_details(&b, &d);
            if (ep == ORION__EP_PS) {
                /* Ollama's fields, then the manager's view */
                char when[40] = "9999-12-31T23:59:59Z"; /* kept until unloaded, or in use */
                if (d.expires_in >= 0) iso_time((double)time(NULL) + d.expires_in, when, sizeof when);
                orion__buf_printf(&b, ",\"expires_at\":\"%s\",\"size_vram\":0,\"resident_bytes\":%zu", when,
                                  d.resident_bytes);
                if (!d.builtin)
                    orion__buf_printf(&b,
                                      ",\"level\":\"%s\",\"refs\":%d,\"expires_in\":%.3f,\"mapped_bytes\":%llu,"
                                      "\"heap_bytes\":%llu,\"need_bytes\":%llu",
                                      d.level, d.refs, d.expires_in, (unsigned long long)d.mapped_bytes,
                                      (unsigned long long)d.heap_bytes, (unsigned long long)d.need_bytes);
            }
            orion__buf_puts(&b, "}");
        }
        orion__buf_puts(&b, "]}");
    }
    send_buf(c, 200, "application/json", &b, false);
    return 200;
}

static size_t process_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, rss = 0;
    int ok = fscanf(f, "%lu %lu", &size, &rss) == 2;
    fclose(f);
    return ok ? (size_t)rss * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* The manager's and the server's own gauges, after metrics.c's. */
static void server_metrics(orion_server *s, orion__buf *b) {
    orion_device_profile prof;
    orion_manager_profile(s->mgr, &prof);
    pthread_mutex_lock(&s->pressure_mu);
    uint64_t shrinks = s->cache_shrinks;
    pthread_mutex_unlock(&s->pressure_mu);
    int streams = 0;
    uint64_t published = 0, dropped = 0;
    orion__events_stats(s->events, &streams, &published, &dropped);
    orion__buf_printf(b,
                      "# HELP orion_memory_pressure_level The manager's memory pressure: 0 low, 1 medium, 2 high, "
                      "3 critical.\n# TYPE orion_memory_pressure_level gauge\norion_memory_pressure_level %d\n"
                      "# HELP orion_memory_budget_bytes The manager's memory budget (its tier: %s).\n"
                      "# TYPE orion_memory_budget_bytes gauge\norion_memory_budget_bytes %llu\n"
                      "# HELP orion_cache_shrinks_total Times memory pressure lowered the cache's bounds.\n"
                      "# TYPE orion_cache_shrinks_total counter\norion_cache_shrinks_total %llu\n"
                      "# HELP orion_events_subscribers Open /events streams.\n"
                      "# TYPE orion_events_subscribers gauge\norion_events_subscribers %d\n"
                      "# TYPE orion_events_published_total counter\norion_events_published_total %llu\n"
                      "# HELP orion_events_dropped_total Events dropped from full stream queues.\n"
                      "# TYPE orion_events_dropped_total counter\norion_events_dropped_total %llu\n",
                      (int)orion_manager_pressure(s->mgr), prof.tier.name, (unsigned long long)prof.budget,
                      (unsigned long long)shrinks, streams,
                      (unsigned long long)published, (unsigned long long)dropped);
}

/* ---- routing ---------------------------------------------------------------------- */

static int route(const char *url) {
    static const struct {
        const char *path;
        int         ep;
    } R[] = {{"/v1/embeddings", ORION__EP_EMBEDDINGS}, {"/api/embed", ORION__EP_EMBED}, {"/v1/models", ORION__EP_MODELS},
             {"/api/tags", ORION__EP_TAGS},             {"/api/ps", ORION__EP_PS},       {"/api/unload", ORION__EP_UNLOAD},
             {"/healthz", ORION__EP_HEALTH},            {"/metrics", ORION__EP_METRICS}, {"/embeddings", ORION__EP_EMBEDDINGS},
             {"/v1/completions", ORION__EP_COMPLETIONS}, {"/v1/chat/completions", ORION__EP_CHAT},
             {"/api/generate", ORION__EP_GENERATE},     {"/api/chat", ORION__EP_OLLAMA_CHAT},
             {"/events", ORION__EP_EVENTS}};
    for (size_t i = 0; i < ORION_ARRAY_LEN(R); i++) {
        if (strcmp(url, R[i].path) == 0) return R[i].ep;
    }
    return ORION__EP_OTHER;
}

static bool ep_is_post(int ep) {
    return ep == ORION__EP_EMBEDDINGS || ep == ORION__EP_EMBED || ep == ORION__EP_UNLOAD || ep == ORION__EP_COMPLETIONS ||
           ep == ORION__EP_CHAT || ep == ORION__EP_GENERATE || ep == ORION__EP_OLLAMA_CHAT;
}

static int dispatch(orion_server *s, struct MHD_Connection *c, const char *url, const char *method, req_state *r,
                    int ep) {
    if (ep == ORION__EP_OTHER) {
        orion__dashboard_req dr = {url, method, r->body.p, r->body.len, r->too_large, atomic_load(&s->stopping)};
        int code = orion__dashboard_serve(s->dash, c, &dr);
        if (code > 0) return code;
        char msg[200];
        snprintf(msg, sizeof msg, "no endpoint %.40s %.120s", method, url);
        send_err(c, 404, "not_found_error", msg);
        return 404;
    }
    if (s->api_key && ep != ORION__EP_HEALTH) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        size_t kl = strlen(s->api_key);
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != kl || memcmp(auth + 7, s->api_key, kl) != 0) {
            send_err(c, 401, "authentication_error", "missing or wrong API key (Authorization: Bearer KEY)");
            return 401;
        }
    }
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if ((ep_is_post(ep) && !post) || (!ep_is_post(ep) && !get)) {
        char msg[120];
        snprintf(msg, sizeof msg, "%s needs %s", orion__endpoint_names[ep], ep_is_post(ep) ? "POST" : "GET");
        send_err(c, 405, "invalid_request_error", msg);
        return 405;
    }
    if (r->too_large) {
        char msg[120];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", r->limit);
        send_err(c, 413, "invalid_request_error", msg);
        return 413;
    }
    if (atomic_load(&s->stopping) && ep != ORION__EP_METRICS) {
        send_err(c, 503, "overloaded_error", "the server is shutting down");
        return 503;
    }
    switch (ep) {
    case ORION__EP_EMBEDDINGS: return embed_endpoint(s, c, ORION__API_OPENAI, r);
    case ORION__EP_EMBED: return embed_endpoint(s, c, ORION__API_OLLAMA, r);
    case ORION__EP_COMPLETIONS:
    case ORION__EP_CHAT:
    case ORION__EP_GENERATE:
    case ORION__EP_OLLAMA_CHAT: return orion__generate_serve(s->models, c, ep, r->body.p, r->body.len);
    case ORION__EP_EVENTS: {
        int code = orion__events_serve(s->events, c);
        if (code == 200) { /* a stream, not a request in flight: stop ends it */
            r->stream = true;
            atomic_fetch_sub(&s->in_flight, 1);
        }
        return code;
    }
    case ORION__EP_MODELS:
    case ORION__EP_TAGS:
    case ORION__EP_PS: return list_endpoint(s, c, ep);
    case ORION__EP_UNLOAD: {
        orion__http_error err;
        char model[128];
        if (orion__model_request_parse(r->body.p, r->body.len, model, sizeof model, &err) != ORION_OK ||
            orion__models_unload(s->models, model, &err) != ORION_OK) {
            send_error(c, &err);
            return err.code;
        }
        orion__buf b = {0};
        orion__buf_puts(&b, "{\"model\":");
        const char *id = orion__model_id(orion__models_find(s->models, model));
        orion__buf_json_str(&b, id, strlen(id));
        orion__buf_puts(&b, ",\"unloaded\":true}");
        send_buf(c, 200, "application/json", &b, false);
        return 200;
    }
    case ORION__EP_HEALTH: {
        orion__buf b = {0};
        orion__buf_printf(&b, "{\"status\":\"ok\",\"models\":%d}", orion__models_count(s->models));
        send_buf(c, 200, "application/json", &b, false);
        return 200;
    }
    case ORION__EP_METRICS: {
        orion__buf b = {0};
        s->metrics.in_flight = (uint64_t)atomic_load(&s->in_flight);
        orion__metrics_render(&s->metrics, &b, s->models, s->cache);
        orion__buf_printf(&b, "# TYPE orion_process_resident_bytes gauge\norion_process_resident_bytes %zu\n",
                          process_rss());
        server_metrics(s, &b);
        send_buf(c, 200, "text/plain; version=0.0.4", &b, false);
        return 200;
    }
    default: break;
    }
    send_err(c, 500, "server_error", "unrouted endpoint");
    return 500;
}

/* The body limit of an endpoint: --max-body, except that the generation
 * endpoints of a server with image models also take one image of
 * --max-image-bytes in base64 (4/3 of it) plus 1 MiB of text, so that the
 * image limit, not the general one, decides about an image. */
static size_t body_limit(const orion_server *s, int ep) {
    const bool gen = ep == ORION__EP_CHAT || ep == ORION__EP_GENERATE || ep == ORION__EP_OLLAMA_CHAT;
    return gen && s->image_body > s->p.max_body ? s->image_body : s->p.max_body;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    ORION_UNUSED(version);
    orion_server *s = cls;
    req_state *r = *con_cls;
    if (!r) {
        r = orion__calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->t0 = orion__now();
        *con_cls = r;
        atomic_fetch_add(&s->in_flight, 1);
        r->limit = body_limit(s, route(url));
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > r->limit) r->too_large = true;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large) {
            if (r->body.len + *upload_size > r->limit) {
                r->too_large = true;
                orion__buf_free(&r->body);
            } else {
                orion__buf_append(&r->body, upload_data, *upload_size);
                if (r->body.failed) r->too_large = true;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int ep = route(url);
    int code = dispatch(s, c, url, method, r, ep);
    orion__metrics_observe(&s->metrics, ep, code, orion__now() - r->t0);
    return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    ORION_UNUSED(c);
    ORION_UNUSED(toe);
    orion_server *s = cls;
    req_state *r = *con_cls;
    if (!r) return;
    if (!r->stream) atomic_fetch_sub(&s->in_flight, 1);
    orion__buf_free(&r->body);
    orion__free(r);
    *con_cls = NULL;
}

/* ---- start / stop ------------------------------------------------------------------ */

static char *dup_or_null(const char *x) { return x && *x ? orion__strdup(x) : NULL; }

static struct MHD_Daemon *start_daemon(orion_server *s, int listen_fd, const struct sockaddr *addr, int port) {
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC;
    if (listen_fd >= 0)
        return MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
                                MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                MHD_OPTION_END);
    return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            120u, MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
}

static orion_status open_unix(orion_server *s) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(s->socket_path) >= sizeof sa.sun_path)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: socket path too long", s->socket_path);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->socket_path);
    struct stat st;
    if (lstat(s->socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return orion__fail(ORION_ERR_IO, "%s: exists and is not a socket", s->socket_path);
        unlink(s->socket_path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return orion__fail(ORION_ERR_IO, "socket: %s", strerror(errno));
    /* bind under a tight umask so the socket is never wider than asked */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc == 0) s->socket_bound = true;
    if (rc != 0 || chmod(s->socket_path, (mode_t)s->p.socket_mode) != 0 || listen(fd, 128) != 0) {
        orion_status e = orion__fail(ORION_ERR_IO, "%s: %s", s->socket_path, strerror(errno));
        close(fd);
        return e;
    }
    s->unix_fd = fd;
    return ORION_OK;
}

/* ---- the manager's events ------------------------------------------------------------ */

/* Sets the cache's bounds for a pressure level: as configured when low or
 * medium, half at high, a floor of 1 MiB / 1024 entries at critical. */
static void cache_for_pressure(orion_server *s, orion_pressure level) {
    if (!s->cache) return;
    size_t tb = s->cache_bytes, te = s->cache_entries;
    if (level == ORION_PRESSURE_HIGH) {
        tb = ORION_MAX(tb / 2, (size_t)1);
        te = te ? ORION_MAX(te / 2, (size_t)1) : 0;
    } else if (level >= ORION_PRESSURE_CRITICAL) {
        tb = ORION_MIN(tb, (size_t)1 << 20);
        te = te ? ORION_MIN(te, (size_t)1024) : 0;
    }
    pthread_mutex_lock(&s->pressure_mu);
    if (tb != s->cache_cur_bytes || te != s->cache_cur_entries) {
        bool shrink = tb < s->cache_cur_bytes || te < s->cache_cur_entries;
        orion_cache_stats before, after;
        orion_cache_get_stats(s->cache, &before);
        orion_cache_shrink(s->cache, tb, te);
        orion_cache_get_stats(s->cache, &after);
        if (shrink) {
            s->cache_shrinks++;
            ORION_LOG_W("cache: memory pressure %s: bounds %.1f MiB / %zu entries (were %.1f MiB / %zu), "
                        "%llu entries evicted",
                        orion_pressure_name(level), (double)tb / 1048576.0, te, (double)s->cache_cur_bytes / 1048576.0,
                        s->cache_cur_entries, (unsigned long long)(after.evictions - before.evictions));
        } else {
            ORION_LOG_I("cache: memory pressure %s: bounds back to %.1f MiB / %zu entries", orion_pressure_name(level),
                        (double)tb / 1048576.0, te);
        }
        s->cache_cur_bytes = tb;
        s->cache_cur_entries = te;
    }
    pthread_mutex_unlock(&s->pressure_mu);
}

/* Called by the manager, without its locks, on the thread that caused the
 * event; never with a lock of ours held (models_internal.h). */
static void on_manager_event(const orion_manager_event *e, void *user) {
    orion_server *s = user;
    orion__events_publish(s->events, e);
    if (e->type == ORION_EVENT_PRESSURE) cache_for_pressure(s, e->pressure);
    else if (e->type == ORION_EVENT_UNLOADED) orion__models_on_unloaded(s->models, e->model);
}

/* ---- start / stop (continued) ------------------------------------------------------------ */

static orion_status start_models(orion_server *s, const orion_server_params *params) {
    orion_status st;
    if (params->manager) {
        s->mgr = params->manager;
    } else {
        orion_manager_params mp = orion_manager_default_params();
        mp.profile.config_path = params->config_path;
        mp.n_threads = params->n_threads;
        mp.embed_max_tokens = params->max_tokens;
        if ((st = orion_manager_init(&mp, &s->mgr)) != ORION_OK) return st;
        s->own_mgr = true;
    }
    if (params->registry_path && (st = orion_manager_load_registry(s->mgr, params->registry_path)) != ORION_OK)
        return st;
    orion__models_params mp;
    memset(&mp, 0, sizeof mp);
    mp.max_tokens = params->max_tokens;
    mp.truncate = params->truncate;
    mp.max_queue = params->max_queue;
    mp.batching = params->batching;
    mp.batch_tokens = params->batch_tokens;
    mp.batch_wait_us = params->batch_wait_us;
    mp.n_threads = params->n_threads;
    mp.gen_slots = params->gen_slots;
    mp.gen_ctx = params->gen_ctx;
    mp.prefault = params->prefault;
    mp.remote_images = params->allow_remote_images;
    mp.max_images = params->max_images > 0 ? ORION_MIN(params->max_images, 64) : 8;
    mp.max_image_bytes = params->max_image_bytes > 0 ? params->max_image_bytes : (size_t)20 << 20;
    mp.image_timeout_ms = params->image_timeout_ms > 0 ? params->image_timeout_ms : 10000;
    if (mp.remote_images && (st = orion__image_fetch_init()) != ORION_OK) return st;
    mp.manager = s->mgr;
    if ((st = orion__models_init(&mp, &s->models)) != ORION_OK) return st;
    for (int k = 0; k < params->n_projectors; k++) {
        const orion_server_model *pr = &params->projectors[k];
        bool found = false;
        for (int i = 0; i < params->n_models && !found; i++) found = pr->id && strcmp(pr->id, params->models[i].id) == 0;
        if (!found || !pr->path || !*pr->path)
            return orion__fail(ORION_ERR_INVALID_ARG, "projector for '%s': no such model among the served ones",
                               pr->id ? pr->id : "");
    }
    for (int i = 0; i < params->n_models; i++) {
        const char *mmproj = NULL;
        for (int k = 0; k < params->n_projectors; k++)
            if (strcmp(params->projectors[k].id, params->models[i].id) == 0) mmproj = params->projectors[k].path;
        if ((st = orion__models_add(s->models, params->models[i].id, params->models[i].path, mmproj,
                                    params->load_eagerly)) != ORION_OK)
            return st;
    }
    /* then every other model the manager knows: the registry's */
    for (int i = 0;; i++) {
        const char *id = orion_manager_model_id(s->mgr, i);
        if (!id) break;
        char copy[64];
        snprintf(copy, sizeof copy, "%s", id);
        orion__model *have = orion__models_find(s->models, copy);
        if (have && strcmp(orion__model_id(have), copy) == 0) continue; /* a --model */
        if ((st = orion__models_add_registered(s->models, copy, params->load_eagerly)) != ORION_OK) return st;
    }
    if (orion__models_count(s->models) == 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_server_start: no models to serve");
    /* a model with a projector (--mmproj or the registry's "mmproj"): the
     * generation endpoints take a body with one image (body_limit) */
    for (int i = 0;; i++) {
        const char *id = orion_manager_model_id(s->mgr, i);
        char path[8];
        if (!id) break;
        if (orion_manager_model_mmproj(s->mgr, id, path, sizeof path) == ORION_OK && path[0]) {
            s->image_body = mp.max_image_bytes / 3 * 4 + 4 + ((size_t)1 << 20);
            break;
        }
    }
    return ORION_OK;
}

static orion_status start_cache(orion_server *s, const orion_server_params *params) {
    size_t bytes = params->cache_bytes, entries = params->cache_entries;
    bool from_tier = bytes == ORION_CACHE_AUTO;
    if (from_tier) {
        orion_device_profile prof;
        orion_manager_profile(s->mgr, &prof);
        uint64_t b = prof.budget / 32;
        bytes = (size_t)ORION_MAX((uint64_t)1 << 20, ORION_MIN(b, (uint64_t)256 << 20));
    }
    if (entries == ORION_CACHE_AUTO) entries = ORION_MAX(bytes / 256, (size_t)1);
    if (bytes == 0) return ORION_OK;
    orion_cache_params cp = orion_cache_default_params();
    cp.max_bytes = bytes;
    cp.max_entries = entries;
    cp.policy = params->cache_policy;
    orion_status st = orion_cache_init(&cp, &s->cache);
    if (st != ORION_OK) return st;
    s->cache_bytes = s->cache_cur_bytes = bytes;
    s->cache_entries = s->cache_cur_entries = entries;
    ORION_LOG_I("cache: %.1f MiB, %zu entries%s", (double)bytes / 1048576.0, entries,
                from_tier ? " (budget / 32, at most 256 MiB)" : "");
    if (s->cache_path) {
        size_t n = 0;
        orion_status ls = orion_cache_load(s->cache, s->cache_path, &n);
        if (ls == ORION_OK) ORION_LOG_I("cache: %zu entries from %s", n, s->cache_path);
        else if (ls != ORION_ERR_NOT_FOUND) ORION_LOG_W("cache snapshot ignored: %s", orion_last_error());
    }
    return ORION_OK;
}

orion_status orion_server_start(const orion_server_params *params, orion_server **out) {
    if (!params || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_server_start: NULL argument");
    *out = NULL;
    if (params->n_models < 0 || (params->n_models > 0 && !params->models) || params->n_projectors < 0 ||
        (params->n_projectors > 0 && !params->projectors))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_server_start: bad model list");
    if (params->manager && params->config_path)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_server_start: a config file is for the server's own manager");
    bool want_tcp = params->host && *params->host && params->port >= 0;
    if (!want_tcp && !(params->socket_path && *params->socket_path))
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_server_start: neither a TCP address nor a socket path");
    orion_server *s = orion__calloc(1, sizeof *s);
    if (!s) return orion__fail(ORION_ERR_NOMEM, "no memory");
    orion_status st = ORION_OK;
    s->p = *params;
    s->unix_fd = -1;
    s->port = -1;
    orion__metrics_init(&s->metrics);
    pthread_mutex_init(&s->pressure_mu, NULL);
    s->host = dup_or_null(params->host);
    s->socket_path = dup_or_null(params->socket_path);
    s->api_key = dup_or_null(params->api_key);
    s->cache_path = dup_or_null(params->cache_path);
    s->p.registry_path = s->p.config_path = NULL; /* not kept */
    s->p.models = NULL;
    s->p.projectors = NULL;
    if (s->p.max_inputs <= 0) s->p.max_inputs = 2048;
    if (s->p.max_body == 0) s->p.max_body = (size_t)4 << 20;
    if (s->p.max_connections <= 0) s->p.max_connections = 256;
    if (s->p.socket_mode == 0) s->p.socket_mode = 0600;

    if ((st = orion__events_init(0, &s->events)) != ORION_OK) goto fail;
    if ((st = start_models(s, params)) != ORION_OK) goto fail;
    if ((st = start_cache(s, params)) != ORION_OK) goto fail;
    if ((st = orion__dashboard_init(s->mgr, s->models, s->api_key, &s->dash)) != ORION_OK) goto fail;
    /* the table is complete: from now on the manager's events reach it */
    s->mgr_sub = orion_manager_subscribe(s->mgr, on_manager_event, s);
    if (s->mgr_sub < 0) {
        st = (orion_status)s->mgr_sub;
        s->mgr_sub = 0;
        goto fail;
    }
    cache_for_pressure(s, orion_manager_pressure(s->mgr));
    if (want_tcp) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)params->port);
        const char *h = strcmp(s->host, "localhost") == 0 ? "127.0.0.1" : s->host;
        if (inet_pton(AF_INET, h, &sa.sin_addr) != 1) {
            struct addrinfo hints, *res = NULL;
            memset(&hints, 0, sizeof hints);
            hints.ai_family = AF_INET;
            if (getaddrinfo(h, NULL, &hints, &res) != 0 || !res) {
                st = orion__fail(ORION_ERR_INVALID_ARG, "host '%s': cannot resolve", s->host);
                goto fail;
            }
            sa.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
            freeaddrinfo(res);
        }
        if (s->api_key == NULL && (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
            ORION_LOG_W("listening on %s without an API key", s->host);
        s->tcp = start_daemon(s, -1, (const struct sockaddr *)&sa, params->port);
        if (!s->tcp) {
            st = orion__fail(ORION_ERR_IO, "cannot listen on %s:%d (in use?)", s->host, params->port);
            goto fail;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->tcp, MHD_DAEMON_INFO_LISTEN_FD);
        struct sockaddr_in bound;
        socklen_t bl = sizeof bound;
        if (di && getsockname(di->listen_fd, (struct sockaddr *)&bound, &bl) == 0) s->port = ntohs(bound.sin_port);
    }
    if (s->socket_path) {
        if ((st = open_unix(s)) != ORION_OK) goto fail;
        s->unx = start_daemon(s, s->unix_fd, NULL, 0);
        if (!s->unx) {
            st = orion__fail(ORION_ERR_IO, "%s: cannot serve on the socket", s->socket_path);
            goto fail;
        }
    }
    *out = s;
    return ORION_OK;
fail:;
    char why[512];
    snprintf(why, sizeof why, "%s", orion_last_error());
    orion__free(s->cache_path); /* a failed start writes no snapshot */
    s->cache_path = NULL;
    orion_server_free(s);
    return orion__fail(st, "%s", why);
}

int orion_server_port(const orion_server *s) { return s ? s->port : -1; }

orion_status orion_server_stop(orion_server *s, int timeout_ms) {
    if (!s || s->stopped) return ORION_OK;
    s->stopped = true;
    atomic_store(&s->stopping, true);
    MHD_socket q1 = MHD_INVALID_SOCKET, q2 = MHD_INVALID_SOCKET;
    if (s->tcp) q1 = MHD_quiesce_daemon(s->tcp);
    if (s->unx) q2 = MHD_quiesce_daemon(s->unx);
    /* the /events streams end now; they would never drain */
    orion__events_close(s->events);
    /* drain: requests already being read or embedded finish normally, and
     * the ended streams send their last chunk */
    double until = orion__now() + (timeout_ms > 0 ? timeout_ms : 0) / 1000.0;
    for (;;) {
        int streams = 0;
        uint64_t published, dropped;
        if (s->events) orion__events_stats(s->events, &streams, &published, &dropped);
        if ((atomic_load(&s->in_flight) == 0 && streams == 0) || orion__now() >= until) break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->in_flight) > 0) ORION_LOG_W("stopping with %d requests in flight", atomic_load(&s->in_flight));
    if (s->tcp) MHD_stop_daemon(s->tcp);
    if (s->unx) MHD_stop_daemon(s->unx);
    s->tcp = s->unx = NULL;
    if (q1 != MHD_INVALID_SOCKET) close(q1);
    if (q2 != MHD_INVALID_SOCKET && q2 != s->unix_fd) close(q2);
    if (s->unix_fd >= 0) {
        close(s->unix_fd);
        s->unix_fd = -1;
    }
    if (s->socket_bound) unlink(s->socket_path);
    s->socket_bound = false;
    /* no connection is left: no more leases are taken. Once unsubscribed
     * (which waits for a delivery in progress), no event reaches us. */
    if (s->mgr_sub > 0) orion_manager_unsubscribe(s->mgr, s->mgr_sub);
    s->mgr_sub = 0;
    orion__models_free(s->models);
    s->models = NULL;
    if (s->own_mgr) orion_manager_free(s->mgr);
    s->mgr = NULL;
    s->own_mgr = false;
    orion_status st = ORION_OK;
    if (s->cache && s->cache_path) {
        st = orion_cache_save(s->cache, s->cache_path);
        if (st != ORION_OK) ORION_LOG_W("cache snapshot not written: %s", orion_last_error());
    }
    return st;
}

void orion_server_free(orion_server *s) {
    if (!s) return;
    orion_server_stop(s, 0);
    orion__events_free(s->events);
    orion__dashboard_free(s->dash);
    orion_cache_free(s->cache);
    orion__metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->pressure_mu);
    orion__free(s->host);
    orion__free(s->socket_path);
    orion__free(s->api_key);
    orion__free(s->cache_path);
    orion__free(s);
}
