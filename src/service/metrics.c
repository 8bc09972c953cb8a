/*
 * metrics.c — the server's counters, rendered as Prometheus text (format
 * 0.0.4) for GET /metrics: requests by endpoint and status, latency
 * histograms per endpoint, batch sizes, the cache, models and memory.
 */
#include "service/service.h"

#include <string.h>

const char *const orion__endpoint_names[ORION__EP_COUNT] = {
    "/v1/embeddings", "/api/embed", "/v1/models", "/api/tags", "/api/ps", "/api/unload", "/healthz", "/metrics",
    "/v1/completions", "/v1/chat/completions", "/api/generate", "/api/chat", "/events", "other"};

static const double LAT_BOUNDS[ORION__LAT_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                      0.05,   0.1,   0.25,  0.5,   1.0,  5.0};
static const char *const CLASS_NAMES[6] = {"2xx", "4xx", "404", "5xx", "503", "other"};

void orion__metrics_init(orion__metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void orion__metrics_destroy(orion__metrics *m) { pthread_mutex_destroy(&m->mu); }

void orion__metrics_observe(orion__metrics *m, int ep, int code, double seconds) {
    if (ep < 0 || ep >= ORION__EP_COUNT) ep = ORION__EP_OTHER;
    int cls = code == 404 ? 2 : code == 503 ? 4 : code >= 200 && code < 300 ? 0 : code >= 400 && code < 500 ? 1
              : code >= 500 ? 3 : 5;
    pthread_mutex_lock(&m->mu);
    m->requests[ep][cls]++;
    for (int b = 0; b < ORION__LAT_BUCKETS; b++) {
        if (seconds <= LAT_BOUNDS[b]) {
            m->lat_bucket[ep][b]++;
            break;
        }
    }
    m->lat_count[ep]++;
    m->lat_sum[ep] += seconds;
    pthread_mutex_unlock(&m->mu);
}

void orion__metrics_render(orion__metrics *m, orion__buf *b, orion__models *models, orion_cache *cache) {
    orion__metrics s;
    pthread_mutex_lock(&m->mu);
    memcpy(&s, m, sizeof s);
    pthread_mutex_unlock(&m->mu);

    orion__buf_puts(b, "# HELP orion_requests_total HTTP requests by endpoint and status class.\n"
                       "# TYPE orion_requests_total counter\n");
    for (int e = 0; e < ORION__EP_COUNT; e++) {
        for (int c = 0; c < 6; c++) {
            if (s.requests[e][c])
                orion__buf_printf(b, "orion_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
                                  orion__endpoint_names[e], CLASS_NAMES[c], (unsigned long long)s.requests[e][c]);
        }
    }
    orion__buf_puts(b, "# HELP orion_request_duration_seconds Request latency by endpoint.\n"
                       "# TYPE orion_request_duration_seconds histogram\n");
    for (int e = 0; e < ORION__EP_COUNT; e++) {
        if (!s.lat_count[e]) continue;
        uint64_t cum = 0;
        for (int k = 0; k < ORION__LAT_BUCKETS; k++) {
            cum += s.lat_bucket[e][k];
            orion__buf_printf(b, "orion_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                              orion__endpoint_names[e], LAT_BOUNDS[k], (unsigned long long)cum);
        }
        orion__buf_printf(b, "orion_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
                          orion__endpoint_names[e], (unsigned long long)s.lat_count[e]);
        orion__buf_printf(b, "orion_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", orion__endpoint_names[e],
                          s.lat_sum[e]);
        orion__buf_printf(b, "orion_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                          orion__endpoint_names[e], (unsigned long long)s.lat_count[e]);
    }

    orion__batch_stats bs;
    orion__models_batch_stats(models, &bs);
    static const char *const HB[8] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};
    orion__buf_puts(b, "# HELP orion_batch_size Inputs per forward pass.\n# TYPE orion_batch_size histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < 8; k++) {
        cum += bs.hist_inputs[k];
        orion__buf_printf(b, "orion_batch_size_bucket{le=\"%s\"} %llu\n", HB[k], (unsigned long long)cum);
    }
    orion__buf_printf(b, "orion_batch_size_sum %llu\norion_batch_size_count %llu\n", (unsigned long long)bs.inputs,
                      (unsigned long long)bs.passes);
    orion__buf_printf(b,
                      "# TYPE orion_batch_requests_total counter\norion_batch_requests_total %llu\n"
                      "# TYPE orion_queue_rejections_total counter\norion_queue_rejections_total %llu\n",
                      (unsigned long long)bs.requests, (unsigned long long)bs.rejected_queue);

    if (cache) {
        orion_cache_stats cs;
        orion_cache_get_stats(cache, &cs);
        orion__buf_printf(b,
                          "# TYPE orion_cache_hits_total counter\norion_cache_hits_total %llu\n"
                          "# TYPE orion_cache_misses_total counter\norion_cache_misses_total %llu\n"
                          "# TYPE orion_cache_evictions_total counter\norion_cache_evictions_total %llu\n"
                          "# TYPE orion_cache_rejections_total counter\norion_cache_rejections_total %llu\n"
                          "# TYPE orion_cache_entries gauge\norion_cache_entries %zu\n"
                          "# TYPE orion_cache_bytes gauge\norion_cache_bytes %zu\n"
                          "# TYPE orion_cache_max_bytes gauge\norion_cache_max_bytes %zu\n"
                          "# TYPE orion_cache_max_entries gauge\norion_cache_max_entries %zu\n",
                          (unsigned long long)cs.hits, (unsigned long long)cs.misses,
                          (unsigned long long)cs.evictions, (unsigned long long)cs.rejections, cs.entries, cs.bytes,
                          cs.max_bytes, cs.max_entries);
    }

    int n = orion__models_count(models), loaded = 0;
    size_t resident = 0;
    orion__buf refs = {0};
    orion__buf_puts(b, "# HELP orion_model_loaded 1 when the model's weights are loaded.\n"
                       "# TYPE orion_model_loaded gauge\n");
    orion__buf_puts(&refs, "# HELP orion_model_leases Leases held on the model (requests using it).\n"
                           "# TYPE orion_model_leases gauge\n");
    for (int i = 0; i < n; i++) {
        orion__model_desc d;
        orion__models_describe(models, i, &d);
        loaded += d.loaded;
        resident += d.resident_bytes;
        orion__buf_puts(b, "orion_model_loaded{model=");
        orion__buf_json_str(b, d.id, strlen(d.id));
        orion__buf_printf(b, "} %d\n", d.loaded ? 1 : 0);
        if (d.builtin) continue;
        orion__buf_puts(&refs, "orion_model_leases{model=");
        orion__buf_json_str(&refs, d.id, strlen(d.id));
        orion__buf_printf(&refs, "} %d\n", d.refs);
    }
    if (refs.p) orion__buf_append(b, refs.p, refs.len);
    orion__buf_free(&refs);
    orion_mem_stats ms;
    orion_mem_get_stats(&ms);
    orion__buf_printf(b,
                      "# TYPE orion_models_loaded gauge\norion_models_loaded %d\n"
                      "# HELP orion_model_resident_bytes Loaded models: resident file pages, heap, extra slots.\n"
                      "# TYPE orion_model_resident_bytes gauge\norion_model_resident_bytes %zu\n"
                      "# HELP orion_heap_bytes Bytes on orion's counting allocator.\n"
                      "# TYPE orion_heap_bytes gauge\norion_heap_bytes %zu\n"
                      "# TYPE orion_in_flight_requests gauge\norion_in_flight_requests %llu\n",
                      loaded, resident, ms.bytes_in_use, (unsigned long long)s.in_flight);
}
