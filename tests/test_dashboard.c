/*
 * test_dashboard.c — the memory dashboard of `orion serve` (docs/dashboard.md).
 *
 *  - the embedded assets: the page, its script and style are in the binary,
 *    served with their content types and a same-origin CSP; unknown asset
 *    paths are 404 with the JSON error body;
 *  - GET /api/profile (device, tier, every model with its task), POST
 *    /api/load (errors: unknown model, bad JSON, wrong method; a lazy model
 *    loaded), POST /api/load/cancel (nothing loading: 404; a load slowed by
 *    a subscriber that sleeps in load_progress is cancelled: 409 for the
 *    load, a load_cancelled event, nothing loaded), the API key on the /api/ endpoints
 *    but not on the page;
 *  - `orion ps` and `orion top --once` ($ORION_BIN) against the server;
 *  - end to end in headless Chromium (tests/ref/dashboard_e2e.mjs, through
 *    npm's playwright-core): the page with stories260K (lazy) and the hash
 *    model: no console errors, the default model shown, Load with progress,
 *    the chart moving, Unload with reason "explicit" in the event log;
 *    screenshots (desktop and phone) written to the build directory.
 *    Missing Chromium or playwright-core fails the test (scripts/setup.sh
 *    installs both).
 */
#include "test_util.h"
#include "test_http.h"

#include "core/core.h"
#include "orion.h"
#include "service/dashboard.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

static bool stories_path(char *path, size_t n) {
    const char *shared = test_shared_dir();
    snprintf(path, n, "%s/models/stories260K/stories260K.gguf", shared ? shared : "../shared");
    return access(path, R_OK) == 0;
}

static int request(int port, const char *method, const char *path, const char *body, const char *headers, char *reply,
                   size_t cap) {
    char req[4096];
    int len = snprintf(req, sizeof req,
                       "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\n%s\r\n%s",
                       method, path, body ? strlen(body) : 0, headers ? headers : "", body ? body : "");
    return raw_http(port, req, (size_t)len, reply, cap);
}

static const char *body_of(const char *reply) {
    const char *b = strstr(reply, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void check_error(const char *reply, const char *type) {
    cJSON *j = cJSON_Parse(body_of(reply));
    assert_non_null(j);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsObject(e));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    if (!cJSON_IsString(t) || strcmp(t->valuestring, type) != 0) fprintf(stderr, "reply: %s\n", reply);
    assert_string_equal(t->valuestring, type);
    cJSON_Delete(j);
}

static orion_server *start(orion_server_params *p, orion_server_model *models, const char *stories) {
    models[0].id = "stories";
    models[0].path = stories;
    models[1].id = "hash";
    models[1].path = "hash:16";
    p->models = models;
    p->n_models = 2;
    p->port = 0;
    p->load_eagerly = false;
    orion_server *s = NULL;
    orion_status st = orion_server_start(p, &s);
    if (st != ORION_OK) fprintf(stderr, "server: %s\n", orion_last_error());
    assert_int_equal(st, ORION_OK);
    return s;
}

/* ---- assets ------------------------------------------------------------------------ */

static void test_assets(void **state) {
    (void)state;
    const orion__asset *a = orion__dashboard_asset("/");
    assert_non_null(a);
    assert_ptr_equal(a, orion__dashboard_asset("/index.html"));
    assert_string_equal(a->ctype, "text/html; charset=utf-8");
    assert_non_null(strstr((const char *)a->data, "/assets/app.js"));
    assert_int_equal(a->data[a->len], 0);
    const orion__asset *js = orion__dashboard_asset("/assets/app.js");
    assert_non_null(js);
    assert_non_null(strstr(js->ctype, "javascript"));
    assert_non_null(strstr((const char *)js->data, "new EventSource('/events')"));
    assert_non_null(orion__dashboard_asset("/assets/style.css"));
    assert_null(orion__dashboard_asset("/assets/../index.html"));
    assert_null(orion__dashboard_asset("/assets/"));
    assert_null(orion__dashboard_asset("/app.js"));
    assert_null(orion__dashboard_asset(NULL));
}

/* ---- endpoints --------------------------------------------------------------------- */

static void test_endpoints(void **state) {
    (void)state;
    char stories[1024];
    if (!stories_path(stories, sizeof stories)) {
        print_message("stories260K missing (../shared/models/stories260K)\n");
        fail();
    }
    static char reply[1 << 18];
    orion_server_params p = orion_server_default_params();
    orion_server_model models[2];
    orion_server *s = start(&p, models, stories);
    int port = orion_server_port(s);

    assert_int_equal(request(port, "GET", "/", NULL, NULL, reply, sizeof reply), 200);
    assert_non_null(strstr(reply, "Content-Type: text/html"));
    assert_non_null(strstr(reply, "Content-Security-Policy: default-src 'self'"));
    assert_non_null(strstr(body_of(reply), "<title>orion"));
    assert_int_equal(request(port, "GET", "/assets/app.js", NULL, NULL, reply, sizeof reply), 200);
    assert_non_null(strstr(reply, "Content-Type: text/javascript"));
    assert_int_equal(request(port, "GET", "/assets/nope.js", NULL, NULL, reply, sizeof reply), 404);
    check_error(reply, "not_found_error");
    assert_int_equal(request(port, "POST", "/", "{}", NULL, reply, sizeof reply), 405);
    check_error(reply, "invalid_request_error");

    /* the profile: device, tier, both models with their task */
    assert_int_equal(request(port, "GET", "/api/profile", NULL, NULL, reply, sizeof reply), 200);
    cJSON *j = cJSON_Parse(body_of(reply));
    assert_non_null(j);
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "budget")->valuedouble > 0);
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(j, "tier");
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(tier, "name")));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(tier, "level")));
    assert_true(cJSON_GetObjectItemCaseSensitive(tier, "max_models")->valueint >= 1);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(tier, "idle_unload_s")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "pressure")->valuestring, "low");
    assert_true(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "process"), "rss")->valuedouble >
                0);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "models");
    assert_int_equal(cJSON_GetArraySize(ms), 2);
    const cJSON *m0 = cJSON_GetArrayItem(ms, 0), *m1 = cJSON_GetArrayItem(ms, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m0, "id")->valuestring, "stories");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m0, "task")->valuestring, "generate");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m0, "default")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(m0, "loaded")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m1, "task")->valuestring, "embed");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m1, "builtin")));
    cJSON_Delete(j);

    /* load: errors, then the lazy model */
    assert_int_equal(request(port, "GET", "/api/load", NULL, NULL, reply, sizeof reply), 405);
    check_error(reply, "invalid_request_error");
    assert_int_equal(request(port, "POST", "/api/load", "{\"model\":\"nope\"}", NULL, reply, sizeof reply), 404);
    check_error(reply, "not_found_error");
    assert_int_equal(request(port, "POST", "/api/load", "{\"model\":", NULL, reply, sizeof reply), 400);
    check_error(reply, "invalid_request_error");
    assert_int_equal(request(port, "POST", "/api/load", "{\"model\":7}", NULL, reply, sizeof reply), 400);
    assert_int_equal(request(port, "POST", "/api/load", "{\"keep_alive\":\"soon\"}", NULL, reply, sizeof reply), 400);
    assert_int_equal(request(port, "POST", "/api/load/cancel", "{\"model\":\"stories\"}", NULL, reply, sizeof reply),
                     404);
    check_error(reply, "not_found_error");
    assert_int_equal(request(port, "POST", "/api/load", "{\"model\":\"stories\"}", NULL, reply, sizeof reply), 200);
    j = cJSON_Parse(body_of(reply));
    assert_non_null(j);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "loaded")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring, "stories");
    cJSON_Delete(j);
    assert_int_equal(request(port, "GET", "/api/ps", NULL, NULL, reply, sizeof reply), 200);
    assert_non_null(strstr(body_of(reply), "\"name\":\"stories\""));
    /* the built-in model, and the default (no body) */
    assert_int_equal(request(port, "POST", "/api/load", "{\"model\":\"hash\"}", NULL, reply, sizeof reply), 200);
    assert_int_equal(request(port, "POST", "/api/load", NULL, NULL, reply, sizeof reply), 200);
    assert_int_equal(request(port, "GET", "/api/profile", NULL, NULL, reply, sizeof reply), 200);
    assert_non_null(strstr(body_of(reply), "\"id\":\"hash\",\"task\":\"embed\""));
    j = cJSON_Parse(body_of(reply));
    ms = cJSON_GetObjectItemCaseSensitive(j, "models");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ms, 0), "loaded")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ms, 1), "loaded")));
    cJSON_Delete(j);
    orion_server_free(s);

    /* with an API key: the page is open, the data is not */
    p = orion_server_default_params();
    p.api_key = "sekrit";
    s = start(&p, models, stories);
    port = orion_server_port(s);
    assert_int_equal(request(port, "GET", "/", NULL, NULL, reply, sizeof reply), 200);
    assert_int_equal(request(port, "GET", "/api/profile", NULL, NULL, reply, sizeof reply), 401);
    check_error(reply, "authentication_error");
    assert_int_equal(request(port, "POST", "/api/load", "{}", NULL, reply, sizeof reply), 401);
    assert_int_equal(request(port, "GET", "/api/profile", NULL, "Authorization: Bearer sekrit\r\n", reply, sizeof reply),
                     200);
    orion_server_free(s);
}

/* ---- cancel ------------------------------------------------------------------------ */

typedef struct slow_sub {
    atomic_int progress, cancelled, loaded;
} slow_sub;

static void slow_cb(const orion_manager_event *e, void *user) {
    slow_sub *x = user;
    if (e->type == ORION_EVENT_LOAD_PROGRESS) {
        atomic_fetch_add(&x->progress, 1);
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL); /* a slow disk: the load takes seconds */
    } else if (e->type == ORION_EVENT_LOAD_CANCELLED) atomic_fetch_add(&x->cancelled, 1);
    else if (e->type == ORION_EVENT_LOADED) atomic_fetch_add(&x->loaded, 1);
}

typedef struct load_arg {
    int  port;
    int  code;
    char reply[4096];
} load_arg;

static void *load_thread(void *p) {
    load_arg *a = p;
    a->code = request(a->port, "POST", "/api/load", "{\"model\":\"stories\"}", NULL, a->reply, sizeof a->reply);
    return NULL;
}

static void test_cancel(void **state) {
    (void)state;
    char stories[1024];
    if (!stories_path(stories, sizeof stories)) fail();
    orion_manager_params mp = orion_manager_default_params();
    mp.chunk_bytes = 16384; /* stories260K (1 MiB) in ~64 chunks, each slowed by 20 ms */
    mp.monitor = false;
    orion_manager *mgr = NULL;
    assert_int_equal(orion_manager_init(&mp, &mgr), ORION_OK);
    slow_sub sub = {0};
    int sid = orion_manager_subscribe(mgr, slow_cb, &sub);
    assert_true(sid > 0);
    orion_server_params p = orion_server_default_params();
    p.manager = mgr;
    orion_server_model models[2];
    orion_server *s = start(&p, models, stories);
    load_arg a = {.port = orion_server_port(s)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, load_thread, &a), 0);
    for (int i = 0; i < 500 && atomic_load(&sub.progress) < 2; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&sub.progress) >= 2);
    static char reply[1 << 16];
    assert_int_equal(request(a.port, "GET", "/api/profile", NULL, NULL, reply, sizeof reply), 200);
    assert_non_null(strstr(body_of(reply), "\"id\":\"stories\",\"task\":\"generate\""));
    assert_non_null(strstr(body_of(reply), "\"loading\":true"));
    assert_int_equal(request(a.port, "POST", "/api/load/cancel", "{\"model\":\"stories\"}", NULL, reply, sizeof reply),
                     200);
    assert_non_null(strstr(body_of(reply), "\"cancelled\":1"));
    pthread_join(t, NULL);
    if (a.code != 409) fprintf(stderr, "%s\n", a.reply);
    assert_int_equal(a.code, 409);
    check_error(a.reply, "conflict_error");
    assert_int_equal(atomic_load(&sub.cancelled), 1);
    assert_int_equal(atomic_load(&sub.loaded), 0);
    orion_model_status st[4];
    assert_int_equal(orion_manager_status(mgr, st, 4), 0);
    orion_server_free(s);
    orion_manager_unsubscribe(mgr, sid);
    orion_manager_free(mgr);
}

/* ---- the command line and the browser ---------------------------------------------- */

static char *run_capture(const char *cmd, int *rc) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char *out = malloc(cap);
    while ((k = fread(out + n, 1, cap - 1 - n, f)) > 0) {
        n += k;
        if (n == cap - 1) {
            cap *= 2;
            out = realloc(out, cap);
        }
    }
    out[n] = 0;
    int st = pclose(f);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

static void test_cli_ps_top(void **state) {
    (void)state;
    const char *bin = getenv("ORION_BIN");
    char stories[1024];
    if (!bin || access(bin, X_OK) != 0 || !stories_path(stories, sizeof stories)) {
        print_message("ORION_BIN or stories260K missing\n");
        fail();
    }
    orion_server_params p = orion_server_default_params();
    orion_server_model models[2];
    orion_server *s = start(&p, models, stories);
    int port = orion_server_port(s);
    char cmd[2048], reply[8192];
    int rc;
    snprintf(cmd, sizeof cmd, "'%s' ps --server http://127.0.0.1:%d", bin, port);
    char *out = run_capture(cmd, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "UNTIL"));
    assert_null(strstr(out, "stories")); /* nothing loaded yet */
    free(out);
    assert_int_equal(request(port, "POST", "/api/load", "{\"model\":\"stories\"}", NULL, reply, sizeof reply), 200);
    out = run_capture(cmd, &rc);
    assert_int_equal(rc, 0);
    if (!strstr(out, "stories")) fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "stories"));
    assert_non_null(strstr(out, "CPU"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' top --once --server http://127.0.0.1:%d", bin, port);
    out = run_capture(cmd, &rc);
    assert_int_equal(rc, 0);
    if (!strstr(out, "budget")) fprintf(stderr, "%s", out);
    assert_non_null(strstr(out, "budget"));
    assert_non_null(strstr(out, "pressure"));
    assert_non_null(strstr(out, "stories"));
    assert_non_null(strstr(out, "cache"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' ps --server http://127.0.0.1:1 2>&1", bin);
    out = run_capture(cmd, &rc);
    assert_int_equal(rc, 1); /* nothing listens there: an error, not an empty list */
    free(out);
    orion_server_free(s);
}

static void test_browser_e2e(void **state) {
    (void)state;
    char stories[1024];
    if (!stories_path(stories, sizeof stories)) fail();
    if (system("node --version >/dev/null 2>&1") != 0) {
        print_message("node is missing: run scripts/setup.sh\n");
        fail();
    }
    orion_server_params p = orion_server_default_params();
    orion_server_model models[2];
    orion_server *s = start(&p, models, stories);
    char tdir[1024], cwd[1024], cmd[4096];
    test_tests_dir(tdir, sizeof tdir);
    assert_non_null(getcwd(cwd, sizeof cwd)); /* ctest runs us in the build directory */
#ifdef ORION_NPM_DIR
    const char *npm = ORION_NPM_DIR;
#else
    const char *npm = "third_party/npm/node_modules";
#endif
    snprintf(cmd, sizeof cmd, "node '%s/ref/dashboard_e2e.mjs' http://127.0.0.1:%d '%s' '%s' stories hash", tdir,
             orion_server_port(s), cwd, npm);
    int rc;
    char *out = run_capture(cmd, &rc);
    if (rc == 2) print_message("headless Chromium or playwright-core is missing: run scripts/setup.sh\n");
    if (rc != 0) fprintf(stderr, "dashboard_e2e.mjs: rc %d: %s\n", rc, out ? out : "");
    assert_int_equal(rc, 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "unload_reason")->valuestring, "explicit");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "console_errors")), 0);
    cJSON_Delete(j);
    free(out);
    orion_server_free(s);
    const char *shots[] = {"dashboard-desktop.png", "dashboard-phone.png"};
    for (int i = 0; i < 2; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", cwd, shots[i]);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 10000);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assets),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cli_ps_top),
        cmocka_unit_test(test_browser_e2e),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
