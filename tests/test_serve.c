/*
 * test_serve.c — the model server end to end.
 *
 *  - in process (orion_server_start on a free loopback port) with the
 *    built-in "hash:DIM" test model, whose vectors the test computes itself:
 *    the C client, the Unix socket (mode 0600), the cache (exact on a miss,
 *    f16 on a hit), batching under concurrency, every bad input over real
 *    HTTP (malformed JSON, wrong types, unknown model / endpoint / method,
 *    body and input limits, token limit with truncate:false, dimensions,
 *    API key, full queue -> 503 + Retry-After), clients that disconnect
 *    mid-request, metrics;
 *  - the real `orion serve` process ($ORION_BIN) on a free port, driven by
 *    the official npm clients `openai` and `ollama` (tests/ref/
 *    serve_client.mjs) and by the C client; SIGTERM drains, writes the cache
 *    snapshot and exits 0; a damaged snapshot is ignored at start;
 *  - generation with stories260K: /v1/completions equals greedy
 *    orion_llm_* in process; the npm clients' streamed (SSE, NDJSON) and
 *    whole replies agree; clients that leave mid-stream free their slot;
 *  - with a real sentence encoder (ORION_SERVE_TEST_MODEL, or
 *    models/use-lite.gguf in the source tree, or else the tiny BERT of
 *    tests/fixtures/make_hf_fixtures.py converted by `orion convert`),
 *    server vectors equal orion_embed_texts in process;
 *  - the model manager behind the server: lazy loads streamed on /events
 *    (load_started, load_progress, loaded), keep_alive (0 unloads after
 *    the request with an `unloaded`/keep_alive event, durations, -1, bad
 *    values: 400), Ollama's load / unload requests, POST /api/unload (404,
 *    409 while a stream holds the model, 200), reloads giving the same text
 *    and vectors, a registry model, --config's idle delay in the real
 *    process; the cache sized from a fake tree's budget and shrunk by
 *    pressure read from a fake PSI file; /events clients that leave and a
 *    stop with streams open; the event queue's drops; unsubscribing from
 *    the manager waiting for a delivery in progress.
 */
#include "test_util.h"
#include "test_http.h"

#include "core/core.h"
#include "orion.h"
#include "service/service.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

#define DIM 16

static void hash_expect(const char *text, float *out) {
    int32_t ids[64], n = 0;
    assert_int_equal(orion__hash_tokenize(text, strlen(text), 64, ids, 64, &n), ORION_OK);
    orion__hash_vector(ids, n, DIM, out);
}

static orion_server *start_server(orion_server_params *p) {
    orion_server *s = NULL;
    orion_status st = orion_server_start(p, &s);
    if (st != ORION_OK) fprintf(stderr, "server: %s\n", orion_last_error());
    assert_int_equal(st, ORION_OK);
    assert_true(orion_server_port(s) > 0);
    return s;
}

static orion_server_params hash_params(orion_server_model *models, const char *path) {
    orion_server_params p = orion_server_default_params();
    models[0].id = "hash";
    models[0].path = path;
    p.models = models;
    p.n_models = 1;
    p.port = 0;
    return p;
}

static int post(int port, const char *path, const char *body, const char *extra_headers, char *reply, size_t cap) {
    size_t n = strlen(body) + 512;
    char *req = malloc(n);
    int len = snprintf(req, n,
                       "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n%s\r\n%s",
                       path, strlen(body), extra_headers ? extra_headers : "", body);
    int code = raw_http(port, req, (size_t)len, reply, cap);
    free(req);
    return code;
}

/* The error body has the shape; returns its type. */
static void check_error_body(const char *reply, const char *type) {
    const char *body = strstr(reply, "\r\n\r\n");
    assert_non_null(body);
    cJSON *j = cJSON_Parse(body + 4);
    assert_non_null(j);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsObject(e));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    assert_true(cJSON_IsString(t));
    if (strcmp(t->valuestring, type) != 0) fprintf(stderr, "reply: %s\n", reply);
    assert_string_equal(t->valuestring, type);
    cJSON_Delete(j);
}

/* ---- in process, hash model ------------------------------------------------------ */

static void test_client_and_cache(void **state) {
    (void)state;
    orion_server_model models[1];
    char sock[128];
    snprintf(sock, sizeof sock, "/tmp/orion_test_serve_%d.sock", (int)getpid());
    orion_server_params p = hash_params(models, "hash:16");
    p.socket_path = sock;
    orion_server *s = start_server(&p);
    struct stat stt;
    assert_int_equal(stat(sock, &stt), 0);
    assert_int_equal(stt.st_mode & 0777, 0600);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", orion_server_port(s));
    const char *texts[] = {"the quick brown fox", "jumps over", "the lazy dog", "", "the quick brown fox"};
    float got[5 * DIM], want[DIM];
    for (int via = 0; via < 2; via++) {
        orion_client *c = NULL;
        assert_int_equal(orion_client_connect(via ? sock : url, NULL, &c), ORION_OK);
        int32_t dim = 0;
        orion_status st = orion_client_embed(c, NULL, texts, 5, got, 5 * DIM, &dim);
        if (st) fprintf(stderr, "%s\n", orion_last_error());
        assert_int_equal(st, ORION_OK);
        assert_int_equal(dim, DIM);
        for (int i = 0; i < 5; i++) {
            hash_expect(texts[i], want);
            for (int k = 0; k < DIM; k++) {
                float w = want[k];
                /* the first request misses (exact f32); later ones hit (f16) */
                if (via == 1) w = orion_fp16_to_fp32(orion_fp32_to_fp16(w));
                if (via == 0 && i == 4) w = got[k]; /* same text as 0 in one request: either */
                assert_true(got[i * DIM + k] == w);
            }
        }
        /* too small an output buffer, an unknown model */
        assert_int_equal(orion_client_embed(c, NULL, texts, 2, got, DIM, NULL), ORION_ERR_RANGE);
        assert_int_equal(orion_client_embed(c, "nope", texts, 2, got, 5 * DIM, NULL), ORION_ERR_NOT_FOUND);
        assert_non_null(strstr(orion_last_error(), "nope"));
        int code = 0;
        const char *body = NULL;
        assert_int_equal(orion_client_get(c, "/metrics", &code, &body, NULL), ORION_OK);
        assert_int_equal(code, 200);
        assert_non_null(strstr(body, "orion_cache_hits_total"));
        assert_non_null(strstr(body, "orion_request_duration_seconds_bucket{endpoint=\"/v1/embeddings\""));
        assert_non_null(strstr(body, "orion_batch_size_bucket"));
        assert_non_null(strstr(body, "orion_models_loaded 1"));
        orion_client_free(c);
    }
    orion_client *c = NULL;
    assert_int_equal(orion_client_connect("http://127.0.0.1:1", NULL, &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, NULL, texts, 1, got, DIM, NULL), ORION_ERR_IO);
    orion_client_free(c);
    assert_int_equal(orion_client_connect("ftp:/x", NULL, &c), ORION_OK); /* a path: fails at use */
    assert_int_equal(orion_client_embed(c, NULL, texts, 1, got, DIM, NULL), ORION_ERR_IO);
    orion_client_free(c);
    assert_int_equal(orion_client_connect("http://:80", NULL, &c), ORION_ERR_INVALID_ARG);
    assert_int_equal(orion_server_stop(s, 1000), ORION_OK);
    orion_server_free(s);
    assert_int_not_equal(access(sock, F_OK), 0); /* the socket is removed */
}

static void test_bad_requests(void **state) {
    (void)state;
    orion_server_model models[1];
    orion_server_params p = hash_params(models, "hash:16");
    p.max_body = 4096;
    p.max_inputs = 4;
    p.max_tokens = 8;
    orion_server *s = start_server(&p);
    int port = orion_server_port(s);
    static char reply[1 << 16];
    struct {
        const char *path, *body;
        int         code;
        const char *type;
    } cases[] = {
        {"/v1/embeddings", "{\"input\": [\"a\"", 400, "invalid_request_error"},
        {"/v1/embeddings", "", 400, "invalid_request_error"},
        {"/v1/embeddings", "[1,2]", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"model\": 3, \"input\": \"a\"}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": 3}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": [\"a\", 2]}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": []}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": \"a\", \"encoding_format\": \"hex\"}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": \"a\", \"dimensions\": 8}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": \"a\", \"dimensions\": -1}", 400, "invalid_request_error"},
        {"/v1/embeddings", "{\"input\": \"a\", \"model\": \"missing\"}", 404, "not_found_error"},
        {"/api/embed", "{\"input\": \"a\", \"model\": \"missing\"}", 404, "not_found_error"},
        {"/api/embed", "{\"input\": \"a b c d e f g h i j\", \"truncate\": false}", 400, "invalid_request_error"},
        {"/api/embed", "{\"input\": \"a\", \"truncate\": \"no\"}", 400, "invalid_request_error"},
        {"/api/unload", "{\"model\": \"missing\"}", 404, "not_found_error"},
        {"/v2/whatever", "{}", 404, "not_found_error"},
    };
    for (size_t i = 0; i < ORION_ARRAY_LEN(cases); i++) {
        int code = post(port, cases[i].path, cases[i].body, NULL, reply, sizeof reply);
        if (code != cases[i].code) fprintf(stderr, "case %zu: %s\n", i, reply);
        assert_int_equal(code, cases[i].code);
        check_error_body(reply, cases[i].type);
    }
    /* what must succeed: dimensions equal to the model's, truncation */
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\": \"a\", \"dimensions\": 16}", NULL, reply, sizeof reply), 200);
    assert_int_equal(post(port, "/api/embed", "{\"input\": \"a b c d e f g h i j\"}", NULL, reply, sizeof reply), 200);
    assert_int_equal(post(port, "/api/embed", "{\"input\": \"a b c\", \"truncate\": false}", NULL, reply, sizeof reply), 200);
    /* wrong method */
    const char *get_embed = "GET /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(raw_http(port, get_embed, strlen(get_embed), reply, sizeof reply), 405);
    check_error_body(reply, "invalid_request_error");
    /* body over the limit: declared, and sent chunked */
    char *big = malloc(8192);
    memset(big, 'a', 8191);
    big[8191] = 0;
    memcpy(big, "{\"input\": \"", 11);
    assert_int_equal(post(port, "/v1/embeddings", big, NULL, reply, sizeof reply), 413);
    check_error_body(reply, "invalid_request_error");
    char *chunked = malloc(20000);
    int n = snprintf(chunked, 20000,
                     "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "1fff\r\n%s\r\n0\r\n\r\n",
                     big);
    assert_int_equal(raw_http(port, chunked, (size_t)n, reply, sizeof reply), 413);
    free(chunked);
    free(big);
    /* clients that leave: mid-body, and right after a full request */
    for (int i = 0; i < 20; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char *part = i % 2 ? "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp"
                                 : "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"input\":\"zz\"}";
        send(fd, part, strlen(part), MSG_NOSIGNAL);
        close(fd);
    }
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\": \"still here\"}", NULL, reply, sizeof reply), 200);
    /* unload (once the abandoned requests are done: 409 while the model is
     * in use): /api/ps empties at once, the next request loads it again */
    const char *mreq = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 200; i++) {
        raw_http(port, mreq, strlen(mreq), reply, sizeof reply);
        if (strstr(reply, "orion_in_flight_requests 1\n")) break; /* this one */
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    int code = 409;
    for (int i = 0; i < 200 && code == 409; i++) {
        code = post(port, "/api/unload", "{\"model\": \"hash\"}", NULL, reply, sizeof reply);
        if (code == 409) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(code, 200);
    assert_non_null(strstr(reply, "{\"model\":\"hash\",\"unloaded\":true}"));
    const char *ps = "GET /api/ps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_http(port, ps, strlen(ps), reply, sizeof reply);
    assert_non_null(strstr(reply, "\"models\":[]"));
    assert_int_equal(post(port, "/api/unload", "{\"model\": \"hash\"}", NULL, reply, sizeof reply), 404);
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\": \"back again\"}", NULL, reply, sizeof reply), 200);
    raw_http(port, ps, strlen(ps), reply, sizeof reply);
    assert_non_null(strstr(reply, "\"name\":\"hash\""));
    orion_server_free(s);
}

static void test_api_key(void **state) {
    (void)state;
    orion_server_model models[1];
    orion_server_params p = hash_params(models, "hash:16");
    p.api_key = "sekret";
    orion_server *s = start_server(&p);
    int port = orion_server_port(s);
    static char reply[1 << 14];
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\":\"a\"}", NULL, reply, sizeof reply), 401);
    check_error_body(reply, "authentication_error");
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\":\"a\"}", "Authorization: Bearer wrong\r\n", reply, sizeof reply), 401);
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\":\"a\"}", "Authorization: Bearer sekret\r\n", reply, sizeof reply), 200);
    const char *h = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(raw_http(port, h, strlen(h), reply, sizeof reply), 200);
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d", port);
    orion_client *c = NULL;
    const char *t[] = {"x"};
    float v[DIM];
    assert_int_equal(orion_client_connect(url, NULL, &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, NULL, t, 1, v, DIM, NULL), ORION_ERR_INVALID_ARG);
    orion_client_free(c);
    assert_int_equal(orion_client_connect(url, "sekret", &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, NULL, t, 1, v, DIM, NULL), ORION_OK);
    orion_client_free(c);
    orion_server_free(s);
}

typedef struct load_arg {
    int  port;
    int  id, n_req, ok, busy, wrong;
} load_arg;

static void *load_thread(void *p) {
    load_arg *a = p;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", a->port);
    orion_client *c = NULL;
    if (orion_client_connect(url, NULL, &c) != ORION_OK) return NULL;
    for (int r = 0; r < a->n_req; r++) {
        char t0[64], t1[64];
        snprintf(t0, sizeof t0, "client %d request %d first", a->id, r);
        snprintf(t1, sizeof t1, "client %d request %d second text", a->id, r);
        const char *texts[2] = {t0, t1};
        float got[2 * DIM], want[DIM];
        orion_status st = orion_client_embed(c, NULL, texts, 2, got, 2 * DIM, NULL);
        if (st == ORION_ERR_BUSY) {
            a->busy++;
            continue;
        }
        if (st != ORION_OK) continue;
        a->ok++;
        for (int i = 0; i < 2; i++) {
            hash_expect(texts[i], want);
            if (memcmp(want, got + i * DIM, sizeof want) != 0) a->wrong++;
        }
    }
    orion_client_free(c);
    return NULL;
}

static double metric(const char *text, const char *name) {
    const char *at = strstr(text, name);
    while (at && at > text && at[-1] != '\n') at = strstr(at + 1, name);
    return at ? atof(at + strlen(name)) : -1;
}

/* Concurrent requests are gathered into fewer forward passes, each request
 * gets its own rows back; with a tiny queue, some get 503 + Retry-After. */
static void test_batching_and_queue(void **state) {
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        orion_server_model models[1];
        /* a 20 ms forward pass, so requests pile up behind it */
        orion_server_params p = hash_params(models, "hash:16:20000");
        if (mode == 1) p.max_queue = 4;
        p.cache_bytes = 0;
        orion_server *s = start_server(&p);
        enum { T = 8 };
        pthread_t th[T];
        load_arg a[T];
        for (int i = 0; i < T; i++) {
            a[i] = (load_arg){orion_server_port(s), i, 5, 0, 0, 0};
            pthread_create(&th[i], NULL, load_thread, &a[i]);
        }
        int ok = 0, busy = 0;
        for (int i = 0; i < T; i++) {
            pthread_join(th[i], NULL);
            ok += a[i].ok;
            busy += a[i].busy;
            assert_int_equal(a[i].wrong, 0);
        }
        orion_client *c = NULL;
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", orion_server_port(s));
        orion_client_connect(url, NULL, &c);
        const char *body;
        int code;
        assert_int_equal(orion_client_get(c, "/metrics", &code, &body, NULL), ORION_OK);
        double passes = metric(body, "orion_batch_size_count "), inputs = metric(body, "orion_batch_size_sum ");
        print_message("mode %d: %d ok, %d busy; %.0f inputs in %.0f passes\n", mode, ok, busy, inputs, passes);
        if (mode == 0) {
            assert_int_equal(ok, T * 5);
            assert_true(passes < T * 5 * 0.6); /* gathered */
            assert_true(inputs == 2.0 * T * 5);
        } else {
            assert_true(busy > 0);
            assert_true(ok > 0);
            assert_true(metric(body, "orion_queue_rejections_total ") >= busy);
        }
        orion_client_free(c);
        orion_server_free(s);
    }
    /* a 503 carries Retry-After */
    orion_server_model models[1];
    orion_server_params p = hash_params(models, "hash:16:300000");
    p.max_queue = 1;
    p.cache_bytes = 0;
    p.batching = false; /* one job per pass: the second stays queued */
    orion_server *s = start_server(&p);
    /* the first request occupies the worker (300 ms), the second waits in
     * the queue, the third finds the queue full */
    load_arg a[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (load_arg){orion_server_port(s), i, 1, 0, 0, 0};
        pthread_create(&th[i], NULL, load_thread, &a[i]);
        struct timespec ts = {0, 80000000};
        nanosleep(&ts, NULL);
    }
    static char reply[1 << 14];
    int code = post(orion_server_port(s), "/v1/embeddings", "{\"input\":[\"x y\",\"z\"]}", NULL, reply, sizeof reply);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(a[0].ok + a[1].ok, 2);
    assert_int_equal(code, 503);
    assert_non_null(strstr(reply, "Retry-After: 1"));
    check_error_body(reply, "overloaded_error");
    orion_server_free(s);
}

/* ---- the real `orion serve` process -------------------------------------------------- */

typedef struct child {
    pid_t pid;
    int   port;
} child;

static bool spawn_server(child *ch, const char *const *extra, int n_extra) {
    const char *bin = getenv("ORION_BIN");
    if (!bin || access(bin, X_OK) != 0) return false;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        const char *argv[40] = {bin, "serve", "--port", "0"};
        int k = 4;
        for (int i = 0; i < n_extra && k < 38; i++) argv[k++] = extra[i];
        argv[k] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    ch->pid = pid;
    ch->port = 0;
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "127.0.0.1:");
        if (at) {
            ch->port = atoi(at + 10);
            break;
        }
    }
    fclose(f);
    if (ch->port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return false;
    }
    /* wait for /healthz */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ch->port);
    orion_client *c = NULL;
    orion_client_connect(url, NULL, &c);
    for (int i = 0; i < 200; i++) {
        int code = 0;
        if (orion_client_get(c, "/healthz", &code, NULL, NULL) == ORION_OK && code == 200) break;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    orion_client_free(c);
    return true;
}

static int stop_server(child *ch) {
    kill(ch->pid, SIGTERM);
    int status = 0;
    waitpid(ch->pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *run_capture(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - 1 - n, f)) > 0) {
        n += k;
        if (n == cap - 1) {
            cap *= 2;
            out = realloc(out, cap);
        }
    }
    out[n] = 0;
    int rc = pclose(f);
    if (rc != 0) {
        fprintf(stderr, "`%s` failed (%d): %s\n", cmd, rc, out);
        free(out);
        return NULL;
    }
    return out;
}

static bool have_node(void) { return system("node --version >/dev/null 2>&1") == 0; }

/* Vectors from the npm clients equal `want` (exact f32 or f16-rounded). */
static void check_rows(const cJSON *rows, const float *want, int n, int dim, const char *what) {
    assert_true(cJSON_IsArray(rows));
    assert_int_equal(cJSON_GetArraySize(rows), n);
    int i = 0;
    for (const cJSON *r = rows->child; r; r = r->next, i++) {
        assert_int_equal(cJSON_GetArraySize(r), dim);
        int k = 0;
        for (const cJSON *x = r->child; x; x = x->next, k++) {
            float w = want[i * dim + k], g = (float)x->valuedouble;
            bool exact = g == w, half = g == orion_fp16_to_fp32(orion_fp32_to_fp16(w));
            if (!exact && !half) {
                fprintf(stderr, "%s: row %d [%d]: got %.9g want %.9g\n", what, i, k, (double)g, (double)w);
                fail();
            }
        }
    }
}

static void npm_clients_against(int port, const char *model, const char *const *texts, int n, const float *want,
                                 int dim) {
    if (!have_node()) {
        print_message("node not found: npm client checks skipped\n");
        return;
    }
    char tdir[1024], cmd[8192], js[2048];
    test_tests_dir(tdir, sizeof tdir);
    /* texts as a JSON array, shell-quoted (the texts hold no single quotes) */
    size_t o = 0;
    js[o++] = '[';
    for (int i = 0; i < n; i++) o += (size_t)snprintf(js + o, sizeof js - o, "%s\"%s\"", i ? "," : "", texts[i]);
    js[o++] = ']';
    js[o] = 0;
#ifdef ORION_NPM_DIR
    const char *npm = ORION_NPM_DIR;
#else
    const char *npm = "third_party/npm/node_modules";
#endif
    snprintf(cmd, sizeof cmd, "node '%s/ref/serve_client.mjs' http://127.0.0.1:%d '%s' '%s' '%s'", tdir, port, model, js,
             npm);
    char *out = run_capture(cmd);
    assert_non_null(out);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    check_rows(cJSON_GetObjectItemCaseSensitive(j, "openai_b64"), want, n, dim, "openai base64");
    check_rows(cJSON_GetObjectItemCaseSensitive(j, "openai_float"), want, n, dim, "openai float");
    check_rows(cJSON_GetObjectItemCaseSensitive(j, "ollama"), want, n, dim, "ollama");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "openai_model")->valuestring, model);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "ollama_model")->valuestring, model);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(j, "err_openai")->valuedouble, 404);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(j, "err_ollama")->valuedouble, 404);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "ps");
    assert_true(cJSON_IsArray(ps) && cJSON_GetArraySize(ps) >= 1);
    assert_string_equal(ps->child->valuestring, model);
    cJSON_Delete(j);
    free(out);
}

/* openai (completions, chat streamed and not) and ollama (generate streamed
 * and not, chat) through the server: greedy texts agree with `want` and
 * with each other. */
static void npm_gen_against(int port, const char *model, const char *prompt, int n, const char *want) {
    if (!have_node()) return;
    char tdir[1024], cmd[4096];
    test_tests_dir(tdir, sizeof tdir);
#ifdef ORION_NPM_DIR
    const char *npm = ORION_NPM_DIR;
#else
    const char *npm = "third_party/npm/node_modules";
#endif
    snprintf(cmd, sizeof cmd, "node '%s/ref/serve_gen_client.mjs' http://127.0.0.1:%d '%s' '%s' %d '%s'", tdir, port,
             model, prompt, n, npm);
    char *out = run_capture(cmd);
    assert_non_null(out);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
#define STR(k) cJSON_GetObjectItemCaseSensitive(j, k)->valuestring
    assert_string_equal(STR("completion"), want);
    assert_string_equal(STR("gen_stream"), want);
    assert_string_equal(STR("gen_full"), want);
    assert_string_equal(STR("chat_stream"), STR("chat_full"));
    assert_string_equal(STR("ollama_chat"), STR("chat_full"));
    assert_true(strlen(STR("chat_full")) > 0);
    assert_string_equal(STR("chat_finish"), "length");
    assert_string_equal(STR("gen_done_reason"), "length");
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "gen_chunks")->valuedouble >= n / 2);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "chat_chunks")->valuedouble >= n / 2);
#undef STR
    cJSON_Delete(j);
    free(out);
}

static void test_process_npm_clients_and_sigterm(void **state) {
    (void)state;
    char snap[128];
    snprintf(snap, sizeof snap, "/tmp/orion_test_serve_%d.cache", (int)getpid());
    unlink(snap);
    const char *args[] = {"--model", "hash=hash:16", "--cache-file", snap};
    child ch;
    if (!spawn_server(&ch, args, 4)) {
        print_message("ORION_BIN not set: skipped\n");
        skip();
    }
    const char *texts[] = {"hello world", "a second sentence", "and a third one here"};
    float want[3 * DIM];
    for (int i = 0; i < 3; i++) hash_expect(texts[i], want + i * DIM);
    npm_clients_against(ch.port, "hash", texts, 3, want, DIM);
    /* the C client too */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ch.port);
    orion_client *c = NULL;
    float got[3 * DIM];
    assert_int_equal(orion_client_connect(url, NULL, &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, "hash", texts, 3, got, 3 * DIM, NULL), ORION_OK);
    for (int i = 0; i < 3 * DIM; i++) assert_true(got[i] == orion_fp16_to_fp32(orion_fp32_to_fp16(want[i])));
    orion_client_free(c);
    assert_int_equal(stop_server(&ch), 0);
    /* the snapshot was written, and the next server starts warm */
    assert_int_equal(access(snap, F_OK), 0);
    assert_true(spawn_server(&ch, args, 4));
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ch.port);
    assert_int_equal(orion_client_connect(url, NULL, &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, "hash", texts, 3, got, 3 * DIM, NULL), ORION_OK);
    const char *body;
    int code;
    assert_int_equal(orion_client_get(c, "/metrics", &code, &body, NULL), ORION_OK);
    assert_true(metric(body, "orion_cache_hits_total ") >= 3);
    assert_true(metric(body, "orion_cache_misses_total ") == 0);
    orion_client_free(c);
    assert_int_equal(stop_server(&ch), 0);
    /* a damaged snapshot is ignored with a warning */
    FILE *f = fopen(snap, "r+b");
    assert_non_null(f);
    fseek(f, 30, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    assert_true(truncate(snap, 40) == 0);
    assert_true(spawn_server(&ch, args, 4));
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ch.port);
    assert_int_equal(orion_client_connect(url, NULL, &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, "hash", texts, 3, got, 3 * DIM, NULL), ORION_OK);
    for (int i = 0; i < 3 * DIM; i++) assert_true(got[i] == want[i]); /* cold again: exact */
    orion_client_free(c);
    assert_int_equal(stop_server(&ch), 0);
    unlink(snap);
}

/* SIGTERM while requests are in flight: they all finish, exit status 0. */
static void test_process_drain(void **state) {
    (void)state;
    const char *args[] = {"--model", "slow=hash:16:300000", "--cache-mb", "0"};
    child ch;
    if (!spawn_server(&ch, args, 4)) skip();
    load_arg a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (load_arg){ch.port, i, 1, 0, 0, 0};
        pthread_create(&th[i], NULL, load_thread, &a[i]);
    }
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    kill(ch.pid, SIGTERM);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += a[i].ok;
        assert_int_equal(a[i].wrong, 0);
    }
    int status = 0;
    waitpid(ch.pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(ok, 4);
}

/* ---- a real sentence encoder ----------------------------------------------------------- */

static bool real_model_path(char *buf, size_t n) {
    const char *env = getenv("ORION_SERVE_TEST_MODEL");
    if (env && access(env, R_OK) == 0) {
        snprintf(buf, n, "%s", env);
        return true;
    }
    char tdir[1024];
    test_tests_dir(tdir, sizeof tdir);
    snprintf(buf, n, "%s/../models/use-lite.gguf", tdir);
    if (access(buf, R_OK) == 0) return true;
    /* else a tiny BERT written by the fixture writer and converted by orion */
    const char *bin = getenv("ORION_BIN");
    if (!bin) return false;
    char dir[128], cmd[4096];
    snprintf(dir, sizeof dir, "/tmp/orion_test_serve_%d_hf", (int)getpid());
    snprintf(buf, n, "%s/tiny_bert.gguf", dir);
    snprintf(cmd, sizeof cmd,
             "python3 '%s/fixtures/make_hf_fixtures.py' '%s' >/dev/null && '%s' convert '%s/bert_prefixed' '%s' "
             ">/dev/null 2>&1",
             tdir, dir, bin, dir, buf);
    return system(cmd) == 0 && access(buf, R_OK) == 0;
}

static void test_real_model_matches_in_process(void **state) {
    (void)state;
    char path[1200];
    if (!real_model_path(path, sizeof path)) {
        print_message("no sentence encoder (ORION_SERVE_TEST_MODEL or models/use-lite.gguf): skipped\n");
        skip();
    }
    orion_embedder *e = NULL;
    orion_embed_params ep = orion_embed_default_params();
    if (orion_embed_load(path, &ep, &e) != ORION_OK) {
        print_message("%s: %s: skipped\n", path, orion_last_error());
        char rm[256];
        snprintf(rm, sizeof rm, "rm -rf /tmp/orion_test_serve_%d_hf", (int)getpid());
        if (system(rm) != 0) print_message("could not remove the fixture directory\n");
        skip();
    }
    orion_embed_info info;
    orion_embed_get_info(e, &info);
    const char *texts[] = {"The cat sat on the mat.", "A quick brown fox", "Embeddings for everyone",
                           "short", "Une phrase en fran\xc3\xa7" "ais."};
    enum { N = 5 };
    float *want = malloc(sizeof(float) * N * (size_t)info.dim), *got = malloc(sizeof(float) * N * (size_t)info.dim);
    assert_int_equal(orion_embed_texts(e, texts, NULL, N, want), ORION_OK);
    orion_embed_free(e);
    char spec[1300];
    snprintf(spec, sizeof spec, "enc=%s", path);
    const char *args[] = {"--model", spec};
    child ch;
    if (!spawn_server(&ch, args, 2)) {
        free(want);
        free(got);
        skip();
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ch.port);
    orion_client *c = NULL;
    int32_t dim = 0;
    assert_int_equal(orion_client_connect(url, NULL, &c), ORION_OK);
    assert_int_equal(orion_client_embed(c, "enc", texts, N, got, (size_t)N * info.dim, &dim), ORION_OK);
    assert_int_equal(dim, info.dim);
    /* misses: the very floats orion_embed_texts gives (batched with others
     * or not: the encoder's padding does not change a row) */
    float maxd = 0;
    for (int i = 0; i < N * dim; i++) maxd = fmaxf(maxd, fabsf(got[i] - want[i]));
    print_message("%s: %d-dim vectors, server vs in process: max |diff| %.3g\n", path, dim, (double)maxd);
    for (int i = 0; i < N * dim; i++) {
        if (fabsf(got[i] - want[i]) > 1e-5f) {
            fprintf(stderr, "[%d] %.9g vs %.9g\n", i, (double)got[i], (double)want[i]);
            fail();
        }
    }
    orion_client_free(c);
    npm_clients_against(ch.port, "enc", texts, 4, want, dim); /* no quote in the first 4 */
    assert_int_equal(stop_server(&ch), 0);
    free(want);
    free(got);
    char rm[256];
    snprintf(rm, sizeof rm, "rm -rf /tmp/orion_test_serve_%d_hf", (int)getpid());
    if (system(rm) != 0) print_message("could not remove the fixture directory\n");
}

/* ---- generation ------------------------------------------------------------------------- */

/* Greedy text the way the server makes it: BOS + prompt, temperature 0. */
static void greedy_in_process(const char *path, const char *prompt, int n_new, char *out, size_t cap) {
    orion_llm *llm = NULL;
    orion_llm_params lp = orion_llm_default_params();
    lp.n_threads = 1;
    assert_int_equal(orion_llm_load(path, &lp, &llm), ORION_OK);
    orion_llm_info info;
    orion_llm_get_info(llm, &info);
    int32_t toks[512], n = 0;
    assert_int_equal(orion_llm_tokenize(llm, prompt, strlen(prompt), true, toks, 256, &n), ORION_OK);
    float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
    assert_int_equal(orion_llm_eval(llm, toks, n, 0, logits, false), ORION_OK);
    orion_sampler_params sp = orion_sampler_default_params();
    sp.temperature = 0;
    sp.top_p = 1;
    sp.top_k = 0;
    orion_sampler *smp = NULL;
    assert_int_equal(orion_sampler_init(&sp, info.n_vocab, &smp), ORION_OK);
    size_t o = 0;
    for (int i = 0; i < n_new; i++) {
        int32_t hist = n < 64 ? n : 64;
        int32_t t = orion_sampler_sample(smp, logits, toks + n - hist, hist);
        if (t == info.eos) break;
        toks[n++] = t;
        o += orion_llm_token_to_piece(llm, t, out + o, cap - o - 1);
        assert_int_equal(orion_llm_eval(llm, &t, 1, n - 1, logits, false), ORION_OK);
    }
    out[o] = 0;
    orion_sampler_free(smp);
    free(logits);
    orion_llm_free(llm);
}

static void test_generation(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.gguf", shared ? shared : "../shared");
    if (access(path, R_OK) != 0) {
        print_message("%s missing: skipped\n", path);
        skip();
    }
    char want[4096];
    greedy_in_process(path, "Once upon a time", 24, want, sizeof want);
    char spec[1100];
    snprintf(spec, sizeof spec, "st=%s", path);
    const char *args[] = {"--model", spec, "--model", "emb=hash:16"};
    child ch;
    if (!spawn_server(&ch, args, 4)) skip();
    static char reply[1 << 16];
    /* raw HTTP: the completion equals the in-process greedy text */
    assert_int_equal(post(ch.port, "/v1/completions",
                          "{\"model\":\"st\",\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}",
                          NULL, reply, sizeof reply), 200);
    cJSON *j = cJSON_Parse(strstr(reply, "\r\n\r\n") + 4);
    assert_non_null(j);
    const cJSON *ch0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ch0, "text")->valuestring, want);
    cJSON_Delete(j);
    /* wrong kinds and bad bodies */
    assert_int_equal(post(ch.port, "/v1/embeddings", "{\"model\":\"st\",\"input\":\"x\"}", NULL, reply, sizeof reply), 400);
    assert_int_equal(post(ch.port, "/api/generate", "{\"model\":\"emb\",\"prompt\":\"x\"}", NULL, reply, sizeof reply), 400);
    assert_int_equal(post(ch.port, "/api/chat", "{\"model\":\"st\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
                          NULL, reply, sizeof reply), 400);
    check_error_body(reply, "invalid_request_error");
    assert_int_equal(post(ch.port, "/v1/chat/completions", "{\"model\":\"st\",\"messages\":\"hi\"}", NULL, reply, sizeof reply), 400);
    assert_int_equal(post(ch.port, "/v1/completions", "{\"model\":\"st\",\"prompt\":\"x\",\"temperature\":\"hot\"}", NULL, reply, sizeof reply), 400);
    /* clients that leave mid-stream release their slot: afterwards two
     * requests (the number of slots) still run */
    for (int i = 0; i < 4; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)ch.port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char *b = "{\"model\":\"st\",\"prompt\":\"Once\",\"options\":{\"num_predict\":100000}}";
        char req[512];
        int n = snprintf(req, sizeof req, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(b), b);
        send(fd, req, (size_t)n, MSG_NOSIGNAL);
        char tmp[512];
        assert_true(recv(fd, tmp, sizeof tmp, 0) > 0);
        close(fd);
    }
    npm_gen_against(ch.port, "st", "Once upon a time", 24, want);
    assert_int_equal(stop_server(&ch), 0);
}

/* ---- the model manager -------------------------------------------------------------------- */

static int http_get(int port, const char *path, char *reply, size_t cap) {
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return raw_http(port, req, (size_t)n, reply, cap);
}

static const char *body_of(const char *reply) {
    const char *b = strstr(reply, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

/* The loaded models in GET /api/ps, as "id:level" joined by spaces. */
static void ps_list(int port, char *out, size_t cap) {
    static char reply[1 << 16];
    assert_int_equal(http_get(port, "/api/ps", reply, sizeof reply), 200);
    cJSON *j = cJSON_Parse(body_of(reply));
    assert_non_null(j);
    out[0] = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "models")) {
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(m, "level");
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s:%s", l ? " " : "", cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring,
                 cJSON_IsString(lv) ? lv->valuestring : "-");
    }
    cJSON_Delete(j);
}

/* A field of model `id` in /api/ps (NaN when absent). */
static double ps_field(int port, const char *id, const char *key) {
    static char reply[1 << 16];
    assert_int_equal(http_get(port, "/api/ps", reply, sizeof reply), 200);
    cJSON *j = cJSON_Parse(body_of(reply));
    double v = NAN;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "models")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring, id) != 0) continue;
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(m, key);
        if (cJSON_IsNumber(f)) v = f->valuedouble;
        else if (cJSON_IsString(f) && strncmp(f->valuestring, "9999", 4) == 0) v = 1e18; /* "never" */
    }
    cJSON_Delete(j);
    return v;
}

static double metric_of(int port, const char *name) {
    static char reply[1 << 17];
    assert_int_equal(http_get(port, "/metrics", reply, sizeof reply), 200);
    return metric(body_of(reply), name);
}

/* A client of GET /events, reading with poll. */
typedef struct sse {
    int    fd;
    char   buf[1 << 17];
    size_t len;
} sse;

static bool sse_fill(sse *e, int ms) {
    struct pollfd pf = {e->fd, POLLIN, 0};
    if (poll(&pf, 1, ms) <= 0) return false;
    ssize_t k = recv(e->fd, e->buf + e->len, sizeof e->buf - 1 - e->len, 0);
    if (k <= 0) return false;
    e->len += (size_t)k;
    e->buf[e->len] = 0;
    return true;
}

/* True once a "data:" line holds every one of the needles (NULL-ended). */
static bool sse_has(sse *e, const char *const *needles) {
    for (const char *line = strstr(e->buf, "data: {"); line; line = strstr(line + 1, "data: {")) {
        const char *end = strchr(line, '\n');
        if (!end) break;
        bool all = true;
        for (const char *const *n = needles; *n && all; n++) {
            const char *at = strstr(line, *n);
            all = at && at < end;
        }
        if (all) return true;
    }
    return false;
}

static bool sse_wait(sse *e, const char *const *needles, int ms) {
    double until = orion__now() + ms / 1000.0;
    while (!sse_has(e, needles)) {
        double left = until - orion__now();
        if (left <= 0) return false;
        sse_fill(e, (int)(left * 1000) + 1);
    }
    return true;
}

static int sse_count(const sse *e, const char *needle) {
    int n = 0;
    for (const char *at = strstr(e->buf, needle); at; at = strstr(at + 1, needle)) n++;
    return n;
}

static void sse_open(sse *e, int port) {
    memset(e, 0, sizeof *e);
    e->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(e->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_true(send(e->fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    /* the stream is live once its first comment arrives */
    double until = orion__now() + 5;
    while (!strstr(e->buf, ": orion events") && orion__now() < until) sse_fill(e, 100);
    assert_non_null(strstr(e->buf, "200 OK"));
    assert_non_null(strstr(e->buf, "text/event-stream"));
    assert_non_null(strstr(e->buf, ": orion events"));
}

static bool stories_path(char *path, size_t n) {
    const char *shared = test_shared_dir();
    snprintf(path, n, "%s/models/stories260K/stories260K.gguf", shared ? shared : "../shared");
    return access(path, R_OK) == 0;
}

/* The "response" of a non-streamed /api/generate reply, or "" on error. */
static void gen_text(int port, const char *model, const char *extra, char *out, size_t cap) {
    static char reply[1 << 16];
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"stream\":false,"
             "\"options\":{\"num_predict\":12,\"temperature\":0}%s}",
             model, extra ? extra : "");
    out[0] = 0;
    int code = post(port, "/api/generate", body, NULL, reply, sizeof reply);
    if (code != 200) fprintf(stderr, "%s\n", reply);
    assert_int_equal(code, 200);
    cJSON *j = cJSON_Parse(body_of(reply));
    assert_non_null(j);
    snprintf(out, cap, "%s", cJSON_GetObjectItemCaseSensitive(j, "response")->valuestring);
    cJSON_Delete(j);
}

/* Generation models through the manager: lazy loading streams load events,
 * keep_alive (0 unloads after the request, durations, -1, bad values),
 * Ollama's load / unload requests, POST /api/unload (404, 409 while a
 * stream holds the model, 200), a reload giving the same text, a registry
 * model, and a stream client that leaves being unsubscribed. */
static void test_manager_generation(void **state) {
    (void)state;
    char path[1024];
    if (!stories_path(path, sizeof path)) {
        print_message("%s missing: skipped\n", path);
        skip();
    }
    char reg[256];
    snprintf(reg, sizeof reg, "/tmp/orion_test_serve_%d_registry.json", (int)getpid());
    FILE *f = fopen(reg, "w");
    assert_non_null(f);
    fprintf(f, "{\"models\": [{\"id\": \"reg\", \"task\": \"generate\", \"n_ctx\": 256, \"files\": {\"f32\": \"%s\"}}]}",
            path);
    fclose(f);
    orion_server_model models[1] = {{"st", path}};
    orion_server_params p = orion_server_default_params();
    p.models = models;
    p.n_models = 1;
    p.registry_path = reg;
    p.port = 0;
    p.load_eagerly = false;
    orion_server *s = start_server(&p);
    int port = orion_server_port(s);
    static char reply[1 << 16];
    char list[512], first[512], again[512];

    sse ev;
    sse_open(&ev, port);
    ps_list(port, list, sizeof list);
    assert_string_equal(list, ""); /* lazy: nothing loaded */
    assert_int_equal(http_get(port, "/api/tags", reply, sizeof reply), 200);
    assert_non_null(strstr(reply, "\"name\":\"st\""));
    assert_non_null(strstr(reply, "\"name\":\"reg\""));
    assert_true(metric_of(port, "orion_events_subscribers ") == 1);

    /* first use loads the model: the stream tells it */
    gen_text(port, "st", NULL, first, sizeof first);
    assert_true(strlen(first) > 0);
    const char *started[] = {"\"event\":\"load_started\"", "\"model\":\"st\"", "\"level\":\"f32\"", NULL};
    const char *progress[] = {"\"event\":\"load_progress\"", "\"model\":\"st\"", "\"bytes_total\":1185376", NULL};
    const char *loaded[] = {"\"event\":\"loaded\"", "\"model\":\"st\"", "\"reason\":null", NULL};
    assert_true(sse_wait(&ev, started, 2000));
    assert_true(sse_wait(&ev, progress, 2000));
    assert_true(sse_wait(&ev, loaded, 2000));
    assert_non_null(strstr(ev.buf, "event: loaded\ndata: {"));
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "st:f32");
    assert_true(ps_field(port, "st", "refs") == 0);
    assert_true(metric_of(port, "orion_model_loaded{model=\"st\"} ") == 1);

    /* keep_alive: a duration renews the timer, -1 keeps it, 0 unloads after the reply */
    gen_text(port, "st", ",\"keep_alive\":\"10m\"", again, sizeof again);
    double left = ps_field(port, "st", "expires_in");
    assert_true(left > 590 && left <= 600);
    gen_text(port, "st", ",\"keep_alive\":-1", again, sizeof again);
    assert_true(ps_field(port, "st", "expires_at") == 1e18);
    gen_text(port, "st", ",\"keep_alive\":0", again, sizeof again);
    assert_string_equal(again, first);
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "");
    const char *ka_unload[] = {"\"event\":\"unloaded\"", "\"model\":\"st\"", "\"reason\":\"keep_alive\"", NULL};
    assert_true(sse_wait(&ev, ka_unload, 2000));

    /* bad keep_alive values */
    const char *bad[] = {"\"soon\"", "true", "\"5 parsecs\"", "[1]"};
    for (size_t i = 0; i < ORION_ARRAY_LEN(bad); i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"model\":\"st\",\"prompt\":\"x\",\"keep_alive\":%s}", bad[i]);
        assert_int_equal(post(port, "/api/generate", body, NULL, reply, sizeof reply), 400);
        check_error_body(reply, "invalid_request_error");
        snprintf(body, sizeof body, "{\"model\":\"st\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"keep_alive\":%s}",
                 bad[i]);
        assert_int_equal(post(port, "/api/chat", body, NULL, reply, sizeof reply), 400);
        check_error_body(reply, "invalid_request_error");
    }

    /* Ollama's load and unload requests: no prompt, keep_alive 0 to unload */
    assert_int_equal(post(port, "/api/generate", "{\"model\":\"st\"}", NULL, reply, sizeof reply), 200);
    assert_non_null(strstr(reply, "\"done_reason\":\"load\""));
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "st:f32");
    assert_int_equal(post(port, "/api/chat", "{\"model\":\"st\",\"messages\":[],\"keep_alive\":0}", NULL, reply,
                          sizeof reply), 200);
    assert_non_null(strstr(reply, "\"done_reason\":\"unload\""));
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "");

    /* POST /api/unload: unknown, not loaded, busy, done */
    assert_int_equal(post(port, "/api/unload", "{\"model\":\"nope\"}", NULL, reply, sizeof reply), 404);
    check_error_body(reply, "not_found_error");
    assert_int_equal(post(port, "/api/unload", "{\"model\":\"st\"}", NULL, reply, sizeof reply), 404);
    check_error_body(reply, "not_found_error");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *b = "{\"model\":\"st\",\"prompt\":\"Once\",\"options\":{\"num_predict\":100000}}";
    char req[512];
    int n = snprintf(req, sizeof req, "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(b), b);
    send(fd, req, (size_t)n, MSG_NOSIGNAL);
    char tmp[512];
    assert_true(recv(fd, tmp, sizeof tmp, 0) > 0); /* streaming: the model is leased */
    assert_true(ps_field(port, "st", "refs") == 1);
    assert_int_equal(post(port, "/api/unload", "{\"model\":\"st\"}", NULL, reply, sizeof reply), 409);
    check_error_body(reply, "conflict_error");
    assert_int_equal(post(port, "/api/generate", "{\"model\":\"st\",\"keep_alive\":0}", NULL, reply, sizeof reply), 409);
    close(fd); /* the server notices at its next write, frees the slot and the lease */
    int code = 0;
    for (int i = 0; i < 200 && code != 200; i++) {
        code = post(port, "/api/unload", "{\"model\":\"st:latest\"}", NULL, reply, sizeof reply);
        if (code != 200) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(code, 200);
    assert_non_null(strstr(reply, "{\"model\":\"st\",\"unloaded\":true}"));
    const char *explicit_unload[] = {"\"event\":\"unloaded\"", "\"model\":\"st\"", "\"reason\":\"explicit\"", NULL};
    assert_true(sse_wait(&ev, explicit_unload, 2000));
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "");

    /* reloaded on the next request: the same greedy text; three loads of st so far */
    gen_text(port, "st", NULL, again, sizeof again);
    assert_string_equal(again, first);
    assert_true(sse_wait(&ev, loaded, 2000));
    assert_int_equal(sse_count(&ev, "\"event\":\"loaded\",\"model\":\"st\""), 3);

    /* the registry's model (n_ctx 256 from the registry) */
    gen_text(port, "reg", NULL, again, sizeof again);
    assert_string_equal(again, first);
    ps_list(port, list, sizeof list);
    assert_non_null(strstr(list, "reg:f32"));

    /* a stream client that leaves is unsubscribed without any event coming */
    close(ev.fd);
    double subs = 1;
    for (int i = 0; i < 200 && subs != 0; i++) {
        subs = metric_of(port, "orion_events_subscribers ");
        if (subs != 0) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(subs == 0);
    orion_server_free(s);
    unlink(reg);
}

/* The real `orion serve` with --config: the config's idle delay unloads
 * the model (the manager's monitor thread runs the timer); --help names
 * the manager's options. */
static void test_process_config_idle(void **state) {
    (void)state;
    char path[1024];
    if (!stories_path(path, sizeof path)) skip();
    const char *bin = getenv("ORION_BIN");
    if (!bin) skip();
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' serve --help", bin);
    char *help = run_capture(cmd);
    assert_non_null(help);
    assert_non_null(strstr(help, "--registry FILE"));
    assert_non_null(strstr(help, "--config FILE"));
    free(help);
    char cfg[128], spec[1100];
    snprintf(cfg, sizeof cfg, "/tmp/orion_test_serve_%d_config.json", (int)getpid());
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("{\"idle_unload\": \"1s\"}", f);
    fclose(f);
    snprintf(spec, sizeof spec, "st=%s", path);
    const char *args[] = {"--model", spec, "--config", cfg, "--lazy"};
    child ch;
    if (!spawn_server(&ch, args, 5)) skip();
    sse ev;
    sse_open(&ev, ch.port);
    char text[512];
    gen_text(ch.port, "st", NULL, text, sizeof text);
    double left = ps_field(ch.port, "st", "expires_in");
    assert_true(isnan(left) || (left >= 0 && left <= 1.0)); /* NaN: already unloaded */
    const char *idle[] = {"\"event\":\"unloaded\"", "\"model\":\"st\"", "\"reason\":\"idle\"", NULL};
    assert_true(sse_wait(&ev, idle, 5000));
    char list[128];
    ps_list(ch.port, list, sizeof list);
    assert_string_equal(list, "");
    /* SIGTERM with the stream open: it ends, the server exits 0 */
    assert_int_equal(stop_server(&ch), 0);
    close(ev.fd);
    unlink(cfg);
}

/* An encoder through the manager: unloaded (explicitly and by keep_alive
 * 0), then asked again, it gives the same vectors; /api/embed without input
 * loads and unloads it. */
static void test_manager_embedding_reload(void **state) {
    (void)state;
    char path[1200];
    if (!real_model_path(path, sizeof path)) {
        print_message("no sentence encoder: skipped\n");
        skip();
    }
    orion_server_model models[1] = {{"enc", path}};
    orion_server_params p = orion_server_default_params();
    p.models = models;
    p.n_models = 1;
    p.port = 0;
    p.load_eagerly = false;
    p.cache_bytes = 0; /* every request reaches the model */
    orion_server *s = start_server(&p);
    int port = orion_server_port(s);
    sse ev;
    sse_open(&ev, port);
    static char r1[1 << 18], r2[1 << 18], r3[1 << 18];
    char list[256];
    const char *body = "{\"model\":\"enc\",\"input\":[\"The cat sat on the mat.\",\"A quick brown fox\"]}";
    assert_int_equal(post(port, "/api/embed", body, NULL, r1, sizeof r1), 200);
    ps_list(port, list, sizeof list);
    assert_true(strncmp(list, "enc:", 4) == 0);
    assert_int_equal(post(port, "/api/unload", "{\"model\":\"enc\"}", NULL, r2, sizeof r2), 200);
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "");
    /* reloaded: the same vectors; then keep_alive 0 unloads after the reply */
    const char *body0 = "{\"model\":\"enc\",\"input\":[\"The cat sat on the mat.\",\"A quick brown fox\"],\"keep_alive\":\"0s\"}";
    assert_int_equal(post(port, "/api/embed", body0, NULL, r2, sizeof r2), 200);
    const char *e1 = strstr(body_of(r1), "\"embeddings\":"), *e2 = strstr(body_of(r2), "\"embeddings\":");
    assert_non_null(e1);
    assert_non_null(e2);
    size_t l1 = (size_t)(strstr(e1, "]]") - e1);
    assert_true(l1 > 100);
    assert_memory_equal(e1, e2, l1 + 2);
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "");
    const char *ka[] = {"\"event\":\"unloaded\"", "\"model\":\"enc\"", "\"reason\":\"keep_alive\"", NULL};
    assert_true(sse_wait(&ev, ka, 2000));
    assert_int_equal(sse_count(&ev, "\"event\":\"loaded\",\"model\":\"enc\""), 2);
    /* no input: load, then unload */
    assert_int_equal(post(port, "/api/embed", "{\"model\":\"enc\"}", NULL, r3, sizeof r3), 200);
    assert_non_null(strstr(r3, "\"embeddings\":[]"));
    ps_list(port, list, sizeof list);
    assert_true(strncmp(list, "enc:", 4) == 0);
    assert_int_equal(post(port, "/api/embed", "{\"model\":\"enc\",\"keep_alive\":0}", NULL, r3, sizeof r3), 200);
    assert_non_null(strstr(r3, "\"done_reason\":\"unload\""));
    ps_list(port, list, sizeof list);
    assert_string_equal(list, "");
    /* /v1/embeddings still says 400 without input; a bad keep_alive is a 400 */
    assert_int_equal(post(port, "/v1/embeddings", "{\"model\":\"enc\"}", NULL, r3, sizeof r3), 400);
    assert_int_equal(post(port, "/api/embed", "{\"model\":\"enc\",\"input\":\"x\",\"keep_alive\":\"later\"}", NULL, r3,
                          sizeof r3), 400);
    check_error_body(r3, "invalid_request_error");
    close(ev.fd);
    orion_server_free(s);
}

/* ---- a manager on a fake /proc, /sys tree ---- */

static void mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *q = tmp + 1; *q; q++) {
        if (*q == '/') {
            *q = '\0';
            mkdir(tmp, 0755);
            *q = '/';
        }
    }
    mkdir(tmp, 0755);
}

static void write_text(const char *dir, const char *rel, const char *text) {
    char path[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char d[1024];
    snprintf(d, sizeof d, "%s", path);
    *strrchr(d, '/') = '\0';
    mkdirs(d);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void set_psi(const char *root, double some, double full) {
    char t[256];
    snprintf(t, sizeof t, "some avg10=%.2f avg60=0 avg300=0 total=0\nfull avg10=%.2f avg60=0 avg300=0 total=0\n", some,
             full);
    write_text(root, "proc/pressure/memory", t);
}

/* A manager whose machine has 4 GiB, no monitor thread: pressure changes
 * when the test rewrites the PSI file and calls orion_manager_check_pressure. */
static orion_manager *fake_manager(char *root, size_t n) {
    snprintf(root, n, "/tmp/orion_test_serve_XXXXXX");
    assert_non_null(mkdtemp(root));
    write_text(root, "proc/meminfo", "MemTotal: 4194304 kB\nMemAvailable: 3774873 kB\n");
    set_psi(root, 0, 0);
    char proc[300], sys[300];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(sys, sizeof sys, "%s/sys", root);
    mkdirs(sys);
    orion_manager_params mp = orion_manager_default_params();
    mp.profile.proc_root = proc;
    mp.profile.sys_root = sys;
    mp.monitor = false;
    orion_manager *mgr = NULL;
    assert_int_equal(orion_manager_init(&mp, &mgr), ORION_OK);
    return mgr;
}

static void rm_tree(const char *root) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* The cache is sized from the manager's tier, halves at high pressure,
 * drops to its floor at critical (evicting), and grows back when the
 * pressure eases; /metrics and /events tell. The server runs on a manager
 * the test lends it, and leaves it usable. */
static void test_pressure_shrinks_cache(void **state) {
    (void)state;
    char root[128];
    orion_manager *mgr = fake_manager(root, sizeof root);
    orion_server_model models[1];
    orion_server_params p = hash_params(models, "hash:16");
    p.manager = mgr;
    p.config_path = "x.json";
    orion_server *bad = NULL;
    assert_int_equal(orion_server_start(&p, &bad), ORION_ERR_INVALID_ARG); /* a config is for its own manager */
    p.config_path = NULL;
    orion_server *s = start_server(&p);
    int port = orion_server_port(s);
    /* 4 GiB: 4 GiB / 32 = 128 MiB, entries bytes / 256 */
    assert_true(metric_of(port, "orion_cache_max_bytes ") == 128.0 * 1048576);
    assert_true(metric_of(port, "orion_cache_max_entries ") == 128.0 * 1048576 / 256);
    assert_true(metric_of(port, "orion_memory_budget_bytes ") == 4096.0 * 1048576);
    assert_true(metric_of(port, "orion_memory_pressure_level ") == 0);
    sse ev;
    sse_open(&ev, port);
    /* 1500 entries */
    size_t cap = 1500 * 24 + 64;
    char *body = malloc(cap);
    size_t o = (size_t)snprintf(body, cap, "{\"input\":[");
    for (int i = 0; i < 1500; i++) o += (size_t)snprintf(body + o, cap - o, "%s\"text %d\"", i ? "," : "", i);
    snprintf(body + o, cap - o, "]}");
    static char reply[1 << 20];
    assert_int_equal(post(port, "/v1/embeddings", body, NULL, reply, sizeof reply), 200);
    assert_true(metric_of(port, "orion_cache_entries ") == 1500);

    set_psi(root, 40, 0); /* high */
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_HIGH);
    assert_true(metric_of(port, "orion_memory_pressure_level ") == 2);
    assert_true(metric_of(port, "orion_cache_max_bytes ") == 64.0 * 1048576);
    assert_true(metric_of(port, "orion_cache_shrinks_total ") == 1);
    assert_true(metric_of(port, "orion_cache_entries ") == 1500);
    const char *high[] = {"\"event\":\"pressure\"", "\"model\":null", "\"pressure\":\"high\"", "\"previous\":\"low\"", NULL};
    assert_true(sse_wait(&ev, high, 2000));

    set_psi(root, 40, 25); /* critical */
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_CRITICAL);
    assert_true(metric_of(port, "orion_cache_max_bytes ") == 1048576);
    assert_true(metric_of(port, "orion_cache_max_entries ") == 1024);
    assert_true(metric_of(port, "orion_cache_entries ") <= 1024);
    assert_true(metric_of(port, "orion_cache_evictions_total ") >= 1500 - 1024);
    assert_true(metric_of(port, "orion_cache_shrinks_total ") == 2);
    /* still serving (from the cache and the model) */
    assert_int_equal(post(port, "/v1/embeddings", "{\"input\":[\"text 1499\",\"new one\"]}", NULL, reply, sizeof reply), 200);

    set_psi(root, 0, 0); /* low again: the bounds come back */
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_LOW);
    assert_true(metric_of(port, "orion_cache_max_bytes ") == 128.0 * 1048576);
    assert_true(metric_of(port, "orion_cache_shrinks_total ") == 2);
    const char *low[] = {"\"event\":\"pressure\"", "\"pressure\":\"low\"", "\"previous\":\"critical\"", NULL};
    assert_true(sse_wait(&ev, low, 2000));
    free(body);
    close(ev.fd);
    orion_server_free(s);
    /* the server is gone and unsubscribed: the manager goes on alone */
    set_psi(root, 40, 0);
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_HIGH);
    orion_manager_free(mgr);
    rm_tree(root);
}

/* stop returns promptly with /events streams open: they end. */
static void test_stop_with_open_events(void **state) {
    (void)state;
    orion_server_model models[1];
    orion_server_params p = hash_params(models, "hash:16");
    orion_server *s = start_server(&p);
    int port = orion_server_port(s);
    sse a, b;
    sse_open(&a, port);
    sse_open(&b, port);
    assert_true(metric_of(port, "orion_events_subscribers ") == 2);
    double t0 = orion__now();
    assert_int_equal(orion_server_stop(s, 5000), ORION_OK);
    double took = orion__now() - t0;
    print_message("stop with two open /events streams: %.3f s\n", took);
    assert_true(took < 1.0);
    /* each stream was ended: the last chunk, then the connection closes */
    while (sse_fill(&a, 1000)) {}
    assert_non_null(strstr(a.buf, "\r\n0\r\n\r\n"));
    close(a.fd);
    close(b.fd);
    orion_server_free(s);
}

/* The hub on its own: a full queue drops its oldest messages and says so. */
static void test_events_queue(void **state) {
    (void)state;
    orion__events *h = NULL;
    assert_int_equal(orion__events_init(0, &h), ORION_OK);
    orion__event_stream *st = NULL;
    assert_int_equal(orion__events_subscribe(h, 4, &st), ORION_OK);
    char *msg = NULL;
    assert_int_equal(orion__events_next(st, 10, &msg), 0); /* nothing yet */
    for (int i = 0; i < 10; i++) {
        orion_manager_event e;
        memset(&e, 0, sizeof e);
        e.type = i % 2 ? ORION_EVENT_LOAD_PROGRESS : ORION_EVENT_UNLOADED;
        e.model = "m\"x";
        e.bytes = (uint64_t)i;
        e.reason = ORION_UNLOAD_IDLE;
        orion__events_publish(h, &e);
    }
    assert_int_equal(orion__events_next(st, 10, &msg), 1);
    assert_string_equal(msg, "event: dropped\ndata: {\"event\":\"dropped\",\"dropped\":6}\n\n");
    orion__free(msg);
    for (int i = 6; i < 10; i++) {
        assert_int_equal(orion__events_next(st, 10, &msg), 1);
        char want[64];
        snprintf(want, sizeof want, "\"bytes\":%d,", i);
        assert_non_null(strstr(msg, want));
        assert_non_null(strstr(msg, "\"model\":\"m\\\"x\""));
        if (i % 2 == 0) assert_non_null(strstr(msg, "\"reason\":\"idle\""));
        else assert_non_null(strstr(msg, "\"reason\":null"));
        cJSON *j = cJSON_Parse(strstr(msg, "data: ") + 6);
        assert_non_null(j);
        cJSON_Delete(j);
        orion__free(msg);
    }
    int n = 0;
    uint64_t published = 0, dropped = 0;
    orion__events_stats(h, &n, &published, &dropped);
    assert_int_equal(n, 1);
    assert_int_equal(published, 10);
    assert_int_equal(dropped, 6);
    orion__events_close(h);
    assert_int_equal(orion__events_next(st, 1000, &msg), -1);
    orion__event_stream *late = NULL;
    assert_int_equal(orion__events_subscribe(h, 0, &late), ORION_ERR_BUSY);
    orion__events_unsubscribe(st);
    orion__events_free(h);
}

/* What the server relies on: orion_manager_unsubscribe waits for a call to
 * the subscriber in progress on another thread, and a subscriber may
 * unsubscribe itself from its callback. */
typedef struct slow_sub {
    orion_manager *mgr;
    atomic_int     entered, finished;
    int            self_id;
} slow_sub;

static void slow_cb(const orion_manager_event *e, void *user) {
    slow_sub *x = user;
    if (e->type != ORION_EVENT_PRESSURE) return;
    atomic_fetch_add(&x->entered, 1);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    if (x->self_id) orion_manager_unsubscribe(x->mgr, x->self_id);
    atomic_fetch_add(&x->finished, 1);
}

typedef struct poke_arg {
    orion_manager *mgr;
    const char    *root;
} poke_arg;

static void *poke_main(void *arg) {
    poke_arg *a = arg;
    orion_manager_check_pressure(a->mgr);
    return NULL;
}

static void test_manager_unsubscribe_waits(void **state) {
    (void)state;
    char root[128];
    orion_manager *mgr = fake_manager(root, sizeof root);
    slow_sub x;
    memset(&x, 0, sizeof x);
    x.mgr = mgr;
    int id = orion_manager_subscribe(mgr, slow_cb, &x);
    assert_true(id > 0);
    set_psi(root, 40, 0);
    poke_arg a = {mgr, root};
    pthread_t th;
    pthread_create(&th, NULL, poke_main, &a);
    while (!atomic_load(&x.entered)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    orion_manager_unsubscribe(mgr, id); /* returns only after the call is done */
    assert_int_equal(atomic_load(&x.finished), 1);
    pthread_join(th, NULL);
    /* a subscriber that unsubscribes itself does not wait for itself */
    slow_sub y;
    memset(&y, 0, sizeof y);
    y.mgr = mgr;
    y.self_id = orion_manager_subscribe(mgr, slow_cb, &y);
    assert_true(y.self_id > 0);
    set_psi(root, 0, 0);
    assert_int_equal(orion_manager_check_pressure(mgr), ORION_PRESSURE_LOW);
    assert_int_equal(atomic_load(&y.finished), 1);
    set_psi(root, 40, 0);
    orion_manager_check_pressure(mgr);
    assert_int_equal(atomic_load(&y.entered), 1); /* gone */
    orion_manager_free(mgr);
    rm_tree(root);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_and_cache),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_batching_and_queue),
        cmocka_unit_test(test_process_npm_clients_and_sigterm),
        cmocka_unit_test(test_process_drain),
        cmocka_unit_test(test_real_model_matches_in_process),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_manager_generation),
        cmocka_unit_test(test_process_config_idle),
        cmocka_unit_test(test_manager_embedding_reload),
        cmocka_unit_test(test_pressure_shrinks_cache),
        cmocka_unit_test(test_stop_with_open_events),
        cmocka_unit_test(test_events_queue),
        cmocka_unit_test(test_manager_unsubscribe_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
