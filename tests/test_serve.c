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
 *    server vectors equal orion_embed_texts in process.
 */
#include "test_util.h"

#include "core/core.h"
#include "orion.h"
#include "service/service.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
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

/* Sends raw bytes to 127.0.0.1:port, reads the whole reply (or gives up
 * after `read` false: closes at once). Returns the HTTP status. */
static int raw_http(int port, const char *req, size_t len, char *reply, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (k <= 0) break;
        off += (size_t)k;
    }
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(fd, reply + got, cap - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        if (got == cap - 1) break;
    }
    reply[got] = 0;
    close(fd);
    int code = 0;
    sscanf(reply, "HTTP/1.%*d %d", &code);
    return code;
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
    /* unload: /api/ps empties, the next request loads the model again */
    assert_int_equal(post(port, "/api/unload", "{\"model\": \"hash\"}", NULL, reply, sizeof reply), 200);
    const char *ps = "GET /api/ps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        raw_http(port, ps, strlen(ps), reply, sizeof reply);
        gone = strstr(reply, "\"models\":[]") != NULL;
        if (!gone) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(gone);
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
    if (!spawn_server(&ch, args, 2)) skip();
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
