/*
 * generate.c — the generation endpoints over orion_llm_*:
 *
 *   POST /v1/completions       OpenAI; "stream": true -> server-sent events
 *   POST /v1/chat/completions  OpenAI chat; SSE chunks with "delta"
 *   POST /api/generate         Ollama; streamed as NDJSON unless "stream": false
 *   POST /api/chat             Ollama chat; NDJSON
 *
 * A request leases its model from the manager (with the request's Ollama
 * keep_alive; the lease loads the model if needed and pins it until the
 * reply is done), takes one of its slots (a handle with its own KV cache;
 * first come, first served: gen_slots.c), tokenizes its prompt (chat:
 * formatted with the model's template and tokenized with special pieces),
 * prefills, then samples one token at a time. Streamed replies are produced
 * lazily by libmicrohttpd's content-reader callback, one token per call, so
 * a client that disconnects simply stops the generation (the free callback
 * releases the slot, then the lease). Pieces are emitted on UTF-8
 * boundaries: the bytes of a character split over byte-fallback tokens wait
 * for its last byte. Ollama's load / unload requests (no prompt or
 * messages; keep_alive 0 unloads) are answered without a slot.
 */
#include "service/service.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

/* ---- parsing ------------------------------------------------------------------- */

static orion_status gbad(orion__http_error *err, const char *msg) {
    err->code = 400;
    snprintf(err->type, sizeof err->type, "invalid_request_error");
    snprintf(err->message, sizeof err->message, "%s", msg);
    return ORION_ERR_FORMAT;
}

void orion__gen_request_free(orion__gen_request *req) {
    if (!req) return;
    orion__free(req->block);
    req->block = NULL;
    req->prompt = NULL;
    req->msgs = NULL;
    req->n_msgs = 0;
}

static bool num_field(const cJSON *o, const char *key, double lo, double hi, double *out, orion__http_error *err,
                      orion_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return false;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        char msg[120];
        snprintf(msg, sizeof msg, "'%s' must be a number in [%g, %g]", key, lo, hi);
        *st = gbad(err, msg);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

orion_status orion__gen_request_parse(const char *body, size_t len, int ep, orion__gen_request *out,
                                      orion__http_error *err) {
    memset(out, 0, sizeof *out);
    out->keep_alive = ORION_KEEP_ALIVE_DEFAULT;
    bool ollama = ep == ORION__EP_GENERATE || ep == ORION__EP_OLLAMA_CHAT;
    bool chat = ep == ORION__EP_CHAT || ep == ORION__EP_OLLAMA_CHAT;
    out->max_tokens = ep == ORION__EP_COMPLETIONS ? 16 : 128;
    out->temperature = ollama ? 0.8f : 1.0f;
    out->top_p = 1.0f;
    out->stream = ollama; /* Ollama streams by default, OpenAI does not */
    out->seed = (uint64_t)time(NULL);
    if (!body || !len) return gbad(err, "the request body is empty");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return gbad(err, "malformed JSON body");
    orion_status st = ORION_OK;
    if (!cJSON_IsObject(root)) {
        st = gbad(err, "the body must be a JSON object");
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model) || strlen(model->valuestring) >= sizeof out->model) {
            st = gbad(err, "'model' must be a string (under 128 bytes)");
            goto done;
        }
        snprintf(out->model, sizeof out->model, "%s", model->valuestring);
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            st = gbad(err, "'stream' must be true or false");
            goto done;
        }
        out->stream = cJSON_IsTrue(stream);
    }
    const cJSON *opts = ollama ? cJSON_GetObjectItemCaseSensitive(root, "options") : root;
    if (ollama && opts && !cJSON_IsNull(opts) && !cJSON_IsObject(opts)) {
        st = gbad(err, "'options' must be an object");
        goto done;
    }
    if (opts && cJSON_IsObject(opts)) {
        double v;
        if (num_field(opts, "temperature", 0, 100, &v, err, &st)) out->temperature = (float)v;
        if (st) goto done;
        if (num_field(opts, "top_p", 0, 1, &v, err, &st)) out->top_p = (float)v;
        if (st) goto done;
        if (num_field(opts, "top_k", 0, 1e6, &v, err, &st)) out->top_k = (int)v;
        if (st) goto done;
        if (num_field(opts, "seed", -9e15, 9e15, &v, err, &st)) out->seed = (uint64_t)(int64_t)v;
        if (st) goto done;
        const char *mt = ollama ? "num_predict" : "max_tokens";
        if (num_field(opts, mt, -2, 1e6, &v, err, &st)) out->max_tokens = v < 0 ? 1 << 20 : (int)v;
        if (st) goto done;
        if (!ollama && num_field(opts, "max_completion_tokens", 0, 1e6, &v, err, &st)) out->max_tokens = (int)v;
        if (st) goto done;
    }
    /* the text: prompt, or messages; copied into one block */
    if (ollama && (st = orion__keep_alive_field(cJSON_GetObjectItemCaseSensitive(root, "keep_alive"), &out->keep_alive,
                                                err)) != ORION_OK)
        goto done;
    if (!chat) {
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (ollama && (!pr || cJSON_IsNull(pr) || (cJSON_IsString(pr) && !pr->valuestring[0]))) {
            out->no_input = true; /* Ollama: load (or with keep_alive 0 unload) the model */
            st = gbad(err, "missing 'prompt'");
            goto done;
        }
        if (cJSON_IsArray(pr) && cJSON_GetArraySize(pr) == 1) pr = pr->child;
        if (!cJSON_IsString(pr)) {
            st = gbad(err, "'prompt' must be a string");
            goto done;
        }
        size_t l = strlen(pr->valuestring);
        out->block = orion__malloc(l + 1);
        if (!out->block) {
            st = gbad(err, "out of memory");
            goto done;
        }
        memcpy(out->block, pr->valuestring, l + 1);
        out->prompt = out->block;
    } else {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
        int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : 0;
        if (ollama && (!msgs || cJSON_IsNull(msgs) || (cJSON_IsArray(msgs) && n == 0))) {
            out->no_input = true;
            st = gbad(err, "missing 'messages'");
            goto done;
        }
        if (n < 1 || n > 1024) {
            st = gbad(err, "'messages' must be an array of 1 to 1024 messages");
            goto done;
        }
        size_t bytes = (size_t)n * sizeof(orion_chat_message);
        int i = 0;
        for (const cJSON *m = msgs->child; m; m = m->next, i++) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
                char msg[96];
                snprintf(msg, sizeof msg, "'messages[%d]' needs string 'role' and 'content'", i);
                st = gbad(err, msg);
                goto done;
            }
            if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                strcmp(role->valuestring, "assistant")) {
                char msg[96];
                snprintf(msg, sizeof msg, "'messages[%d].role' must be system, user or assistant", i);
                st = gbad(err, msg);
                goto done;
            }
            bytes += strlen(role->valuestring) + strlen(content->valuestring) + 2;
        }
        out->block = orion__malloc(bytes);
        if (!out->block) {
            st = gbad(err, "out of memory");
            goto done;
        }
        out->msgs = out->block;
        char *dst = (char *)out->block + (size_t)n * sizeof(orion_chat_message);
        i = 0;
        for (const cJSON *m = msgs->child; m; m = m->next, i++) {
            const char *r = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
            const char *ct = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
            size_t rl = strlen(r) + 1, cl = strlen(ct) + 1;
            memcpy(dst, r, rl);
            out->msgs[i].role = dst;
            dst += rl;
            memcpy(dst, ct, cl);
            out->msgs[i].content = dst;
            dst += cl;
        }
        out->n_msgs = n;
    }
done:
    cJSON_Delete(root);
    if (st != ORION_OK) orion__gen_request_free(out);
    return st;
}

/* ---- generation state ---------------------------------------------------------------- */

typedef struct gen {
    orion__models *models;
    orion__model  *m;
    orion_llm     *llm;
    orion_model_lease *lease;   /* pins the model while the slot is held */
    int            slot;
    int            ep;
    orion__gen_request req;
    orion_sampler *smp;
    float         *logits;      /* n_vocab */
    int32_t       *toks;        /* n_ctx: prompt then generated */
    int32_t        n_prompt, n_toks, n_ctx, n_gen, eos;
    int            finish;      /* 0 running, 1 stop (EOS), 2 length */
    char           pending[8];  /* bytes of an unfinished UTF-8 character */
    int            n_pending;
    orion__buf     text;        /* everything generated (non-streamed replies) */
    orion__buf     out;         /* bytes not yet handed to libmicrohttpd */
    size_t         out_off;
    bool           sent_final, sent_role;
    char           id[48];
    long long      created;
    double         t0, t_prefill;
} gen;

static void gen_free(gen *g) {
    if (!g) return;
    if (g->llm) orion__model_llm_release(g->m, g->slot, g->lease);
    orion_sampler_free(g->smp);
    orion__free(g->logits);
    orion__free(g->toks);
    orion__gen_request_free(&g->req);
    orion__buf_free(&g->text);
    orion__buf_free(&g->out);
    orion__free(g);
}

/* Length of the longest prefix of p[0..n) that ends on a UTF-8 boundary. */
static int utf8_complete(const char *p, int n) {
    int i = n - 1, back = 0;
    while (i >= 0 && back < 4 && ((unsigned char)p[i] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i < 0) return n;
    unsigned char lead = (unsigned char)p[i];
    int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return (n - i) < need ? i : n;
}

/* One step: samples a token and returns the bytes it adds (complete UTF-8
 * only) in piece/len; sets g->finish when done. */
static void gen_step(gen *g, char *piece, int *len) {
    *len = 0;
    if (g->finish) return;
    int32_t hist = g->n_toks < 64 ? g->n_toks : 64;
    int32_t t = orion_sampler_sample(g->smp, g->logits, g->toks + g->n_toks - hist, hist);
    if (t == g->eos) {
        g->finish = 1;
        return;
    }
    g->toks[g->n_toks++] = t;
    g->n_gen++;
    char buf[64];
    size_t pl = orion_llm_token_to_piece(g->llm, t, buf, sizeof buf);
    if (pl > sizeof buf) pl = sizeof buf;
    char all[72];
    memcpy(all, g->pending, (size_t)g->n_pending);
    memcpy(all + g->n_pending, buf, pl);
    int n = g->n_pending + (int)pl;
    int ok = utf8_complete(all, n);
    if (n - ok > (int)sizeof g->pending) ok = n;
    memcpy(piece, all, (size_t)ok);
    *len = ok;
    g->n_pending = n - ok;
    memcpy(g->pending, all + ok, (size_t)g->n_pending);
    orion__buf_append(&g->text, piece, (size_t)ok);
    if (g->n_gen >= g->req.max_tokens || g->n_toks >= g->n_ctx) {
        g->finish = 2;
        return;
    }
    if (orion_llm_eval(g->llm, &t, 1, g->n_toks - 1, g->logits, false) != ORION_OK) g->finish = 2;
}

static const char *finish_name(const gen *g) { return g->finish == 1 ? "stop" : "length"; }

static void iso_now(char *buf, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%09ldZ", ts.tv_nsec);
}

static void put_model(gen *g, orion__buf *b) {
    const char *id = orion__model_id(g->m);
    orion__buf_json_str(b, id, strlen(id));
}

/* The final Ollama fields. */
static void ollama_tail(gen *g, orion__buf *b) {
    double now = orion__now();
    orion__buf_printf(b,
                      ",\"done\":true,\"done_reason\":\"%s\",\"total_duration\":%lld,\"load_duration\":0,"
                      "\"prompt_eval_count\":%d,\"prompt_eval_duration\":%lld,\"eval_count\":%d,"
                      "\"eval_duration\":%lld}\n",
                      finish_name(g), (long long)((now - g->t0) * 1e9), g->n_prompt,
                      (long long)((g->t_prefill - g->t0) * 1e9), g->n_gen, (long long)((now - g->t_prefill) * 1e9));
}

/* Appends one streamed event for `piece` (or the closing events). */
static void stream_event(gen *g, const char *piece, int len, bool final) {
    orion__buf *b = &g->out;
    char when[48];
    switch (g->ep) {
    case ORION__EP_COMPLETIONS:
        if (len > 0 || final) {
            orion__buf_printf(b, "data: {\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,\"model\":", g->id,
                              g->created);
            put_model(g, b);
            orion__buf_puts(b, ",\"choices\":[{\"text\":");
            orion__buf_json_str(b, piece, (size_t)len);
            if (final) orion__buf_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}]}\n\n", finish_name(g));
            else orion__buf_puts(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        }
        if (final) orion__buf_puts(b, "data: [DONE]\n\n");
        break;
    case ORION__EP_CHAT:
        if (len > 0 || final || !g->sent_role) {
            orion__buf_printf(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                              g->id, g->created);
            put_model(g, b);
            orion__buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{");
            if (!g->sent_role) {
                orion__buf_puts(b, "\"role\":\"assistant\",");
                g->sent_role = true;
            }
            orion__buf_puts(b, "\"content\":");
            orion__buf_json_str(b, piece, (size_t)len);
            if (final) orion__buf_printf(b, "},\"finish_reason\":\"%s\"}]}\n\n", finish_name(g));
            else orion__buf_puts(b, "},\"finish_reason\":null}]}\n\n");
        }
        if (final) orion__buf_puts(b, "data: [DONE]\n\n");
        break;
    case ORION__EP_GENERATE:
    case ORION__EP_OLLAMA_CHAT:
        if (len == 0 && !final) break;
        iso_now(when, sizeof when);
        orion__buf_puts(b, "{\"model\":");
        put_model(g, b);
        orion__buf_printf(b, ",\"created_at\":\"%s\",", when);
        if (g->ep == ORION__EP_GENERATE) {
            orion__buf_puts(b, "\"response\":");
            orion__buf_json_str(b, piece, (size_t)len);
        } else {
            orion__buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
            orion__buf_json_str(b, piece, (size_t)len);
            orion__buf_puts(b, "}");
        }
        if (final) ollama_tail(g, b);
        else orion__buf_puts(b, ",\"done\":false}\n");
        break;
    default: break;
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    ORION_UNUSED(pos);
    gen *g = cls;
    while (g->out.len - g->out_off == 0) {
        if (g->sent_final) return MHD_CONTENT_READER_END_OF_STREAM;
        g->out.len = 0;
        g->out_off = 0;
        char piece[80];
        int len = 0;
        gen_step(g, piece, &len);
        if (g->finish) {
            /* flush an unfinished character as is, then close */
            if (g->n_pending) {
                memcpy(piece + len, g->pending, (size_t)g->n_pending);
                len += g->n_pending;
                g->n_pending = 0;
            }
            stream_event(g, piece, len, true);
            g->sent_final = true;
        } else {
            stream_event(g, piece, len, false);
        }
        if (g->out.failed) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = g->out.len - g->out_off;
    if (n > max) n = max;
    memcpy(buf, g->out.p + g->out_off, n);
    g->out_off += n;
    return (ssize_t)n;
}

static void reader_free(void *cls) { gen_free(cls); }

static void full_reply(gen *g, orion__buf *b) {
    int total = g->n_prompt + g->n_gen;
    const char *text = g->text.p ? g->text.p : "";
    switch (g->ep) {
    case ORION__EP_COMPLETIONS:
        orion__buf_printf(b, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,\"model\":", g->id, g->created);
        put_model(g, b);
        orion__buf_puts(b, ",\"choices\":[{\"text\":");
        orion__buf_json_str(b, text, g->text.len);
        orion__buf_printf(b,
                          ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%d,"
                          "\"completion_tokens\":%d,\"total_tokens\":%d}}",
                          finish_name(g), g->n_prompt, g->n_gen, total);
        break;
    case ORION__EP_CHAT:
        orion__buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", g->id, g->created);
        put_model(g, b);
        orion__buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        orion__buf_json_str(b, text, g->text.len);
        orion__buf_printf(b,
                          "},\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                          "\"total_tokens\":%d}}",
                          finish_name(g), g->n_prompt, g->n_gen, total);
        break;
    default: {
        char when[48];
        iso_now(when, sizeof when);
        orion__buf_puts(b, "{\"model\":");
        put_model(g, b);
        orion__buf_printf(b, ",\"created_at\":\"%s\",", when);
        if (g->ep == ORION__EP_GENERATE) {
            orion__buf_puts(b, "\"response\":");
            orion__buf_json_str(b, text, g->text.len);
        } else {
            orion__buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
            orion__buf_json_str(b, text, g->text.len);
            orion__buf_puts(b, "}");
        }
        ollama_tail(g, b);
        if (b->len && b->p[b->len - 1] == '\n') b->p[--b->len] = 0;
        break;
    }
    }
}

static int fail_reply(struct MHD_Connection *c, gen *g, orion__http_error *err) {
    orion__send_error(c, err);
    gen_free(g);
    return err->code;
}

/* Ollama's way to load or unload a model: /api/generate or /api/chat with
 * no prompt / messages, and keep_alive 0 to unload. */
static int control_reply(struct MHD_Connection *c, gen *g) {
    orion__http_error err;
    memset(&err, 0, sizeof err);
    if (!orion__model_is_llm(g->m)) {
        orion__http_set(&err, 400, "invalid_request_error", "model '%.100s' is an embedding model; it cannot generate",
                        orion__model_id(g->m));
        return fail_reply(c, g, &err);
    }
    bool unloaded = false;
    if (orion__model_control(g->m, g->req.keep_alive, &unloaded, &err) != ORION_OK) return fail_reply(c, g, &err);
    char when[48];
    iso_now(when, sizeof when);
    orion__buf b = {0};
    orion__buf_puts(&b, "{\"model\":");
    put_model(g, &b);
    orion__buf_printf(&b, ",\"created_at\":\"%s\",", when);
    if (g->ep == ORION__EP_GENERATE) orion__buf_puts(&b, "\"response\":\"\"");
    else orion__buf_puts(&b, "\"message\":{\"role\":\"assistant\",\"content\":\"\"}");
    orion__buf_printf(&b, ",\"done\":true,\"done_reason\":\"%s\"}", unloaded ? "unload" : "load");
    orion__send_buf(c, 200, "application/json", &b);
    gen_free(g);
    return 200;
}

int orion__generate_serve(orion__models *models, struct MHD_Connection *c, int ep, const char *body, size_t len) {
    orion__http_error err;
    memset(&err, 0, sizeof err);
    gen *g = orion__calloc(1, sizeof *g);
    if (!g) {
        err.code = 500;
        snprintf(err.type, sizeof err.type, "server_error");
        snprintf(err.message, sizeof err.message, "out of memory");
        orion__send_error(c, &err);
        return 500;
    }
    g->models = models;
    g->ep = ep;
    g->t0 = orion__now();
    g->created = (long long)time(NULL);
    orion_status pst = orion__gen_request_parse(body, len, ep, &g->req, &err);
    if (pst != ORION_OK && !g->req.no_input) return fail_reply(c, g, &err);
    g->m = orion__models_find(models, g->req.model);
    if (!g->m) {
        err.code = 404;
        snprintf(err.type, sizeof err.type, "not_found_error");
        snprintf(err.message, sizeof err.message, "model '%.100s' not found", g->req.model);
        return fail_reply(c, g, &err);
    }
    if (pst != ORION_OK) return control_reply(c, g);
    if (orion__model_llm_acquire(g->m, g->req.keep_alive, &g->lease, &g->llm, &g->slot, &err) != ORION_OK) {
        g->llm = NULL;
        return fail_reply(c, g, &err);
    }
    orion_llm_info info;
    orion_llm_get_info(g->llm, &info);
    g->n_ctx = info.n_ctx;
    g->eos = info.eos;
    g->toks = orion__malloc((size_t)g->n_ctx * sizeof *g->toks);
    g->logits = orion__malloc((size_t)info.n_vocab * sizeof *g->logits);
    orion_sampler_params sp = orion_sampler_default_params();
    sp.temperature = g->req.temperature;
    sp.top_p = g->req.top_p;
    sp.top_k = g->req.top_k;
    sp.seed = g->req.seed;
    if (!g->toks || !g->logits || orion_sampler_init(&sp, info.n_vocab, &g->smp) != ORION_OK) {
        err.code = 500;
        snprintf(err.type, sizeof err.type, "server_error");
        snprintf(err.message, sizeof err.message, "out of memory");
        return fail_reply(c, g, &err);
    }
    /* the prompt */
    orion_status st;
    int32_t n = 0;
    if (g->req.prompt) {
        st = orion_llm_tokenize(g->llm, g->req.prompt, strlen(g->req.prompt), true, g->toks, g->n_ctx, &n);
    } else {
        size_t need = 0;
        orion_chat_template t = orion_llm_chat_template(g->llm);
        orion_chat_format(t, g->req.msgs, (size_t)g->req.n_msgs, true, NULL, 0, &need);
        char *text = orion__malloc(need + 1);
        st = text ? orion_chat_format(t, g->req.msgs, (size_t)g->req.n_msgs, true, text, need + 1, &need)
                  : ORION_ERR_NOMEM;
        if (st == ORION_OK) st = orion_llm_tokenize_special(g->llm, text, need, false, g->toks, g->n_ctx, &n);
        orion__free(text);
    }
    if (st != ORION_OK || n >= g->n_ctx || n < 1) {
        err.code = 400;
        snprintf(err.type, sizeof err.type, "invalid_request_error");
        if (n >= g->n_ctx) snprintf(err.message, sizeof err.message, "the prompt has %d tokens; the context holds %d", n, g->n_ctx);
        else snprintf(err.message, sizeof err.message, "the prompt cannot be tokenized");
        return fail_reply(c, g, &err);
    }
    g->n_prompt = g->n_toks = n;
    if (orion_llm_eval(g->llm, g->toks, n, 0, g->logits, false) != ORION_OK) {
        err.code = 500;
        snprintf(err.type, sizeof err.type, "server_error");
        snprintf(err.message, sizeof err.message, "prefill failed");
        return fail_reply(c, g, &err);
    }
    g->t_prefill = orion__now();
    snprintf(g->id, sizeof g->id, "%s-%llx%04x", ep == ORION__EP_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)g->created, (unsigned)(orion__now_ns() & 0xffff));
    if (g->req.max_tokens <= 0) g->finish = 2;
    if (g->req.stream) {
        bool sse = ep == ORION__EP_COMPLETIONS || ep == ORION__EP_CHAT;
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, g, reader_free);
        if (!r) {
            gen_free(g);
            return 500;
        }
        MHD_add_response_header(r, "Content-Type", sse ? "text/event-stream" : "application/x-ndjson");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return 200;
    }
    char piece[80];
    int pl;
    while (!g->finish) gen_step(g, piece, &pl);
    if (g->n_pending) orion__buf_append(&g->text, g->pending, (size_t)g->n_pending);
    orion__buf b = {0};
    full_reply(g, &b);
    orion__send_buf(c, 200, "application/json", &b);
    gen_free(g);
    return 200;
}
