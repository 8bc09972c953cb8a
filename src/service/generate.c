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
 *
 * Images (gen_request.c puts one "<image>" in the text per image): before
 * the model is leased, remote URLs are fetched (only with
 * --allow-remote-images) and every image is decoded with the server's
 * limits, so a bad image is a 400 that costs no load; after, each is
 * encoded by the lease's projector (orion_lease_clip; one encode at a time
 * per model) and orion_llava_eval_images puts its rows where its tag
 * stands. Each request prefills its slot from position 0 — slots keep no
 * prefix from earlier requests — so image rows are never taken for text.
 */
#include "service/service.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

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
    orion_image  **imgs;        /* req.n_images decoded images (freed after the prefill) */
    float        **embs;        /* their projector rows */
} gen;

static void images_free(gen *g) {
    for (int i = 0; i < g->req.n_images; i++) {
        if (g->imgs) orion_image_free(g->imgs[i]);
        if (g->embs) orion__free(g->embs[i]);
    }
    orion__free(g->imgs);
    orion__free(g->embs);
    g->imgs = NULL;
    g->embs = NULL;
}

static void gen_free(gen *g) {
    if (!g) return;
    if (g->llm) orion__model_llm_release(g->m, g->slot, g->lease);
    images_free(g);
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

/* Before the lease: the model can take images, remote ones are fetched
 * (when allowed), all are decoded with the server's limits. */
static orion_status images_prepare(gen *g, orion__http_error *err) {
    const orion__models_params *p = orion__models_params_of(g->models);
    const size_t max_bytes = p->max_image_bytes ? p->max_image_bytes : (size_t)20 << 20;
    if (!orion__model_is_llm(g->m) || !orion__model_has_vision(g->m)) {
        orion__http_set(err, 400, "invalid_request_error",
                        "model '%.100s' takes no images: it has no projector (serve it with --mmproj ID=PROJ, or "
                        "\"mmproj\" in the registry)", orion__model_id(g->m));
        return ORION_ERR_UNSUPPORTED;
    }
    const int n = g->req.n_images;
    g->imgs = orion__calloc((size_t)n, sizeof *g->imgs);
    g->embs = orion__calloc((size_t)n, sizeof *g->embs);
    if (!g->imgs || !g->embs) {
        orion__http_set(err, 500, "server_error", "out of memory");
        return ORION_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        orion__gen_image *im = &g->req.images[i];
        orion_status st;
        if (im->url && !im->data) {
            if (!p->remote_images) {
                orion__http_set(err, 400, "invalid_request_error",
                                "image %d: remote image URLs are disabled; start orion serve with "
                                "--allow-remote-images (or send a data: URL)", i);
                return ORION_ERR_UNSUPPORTED;
            }
            st = orion__image_fetch(im->url, max_bytes, p->image_timeout_ms > 0 ? p->image_timeout_ms : 10000, i,
                                    &im->data, &im->len, err);
            if (st != ORION_OK) return st;
        }
        if ((st = orion__image_decode(im->data, im->len, max_bytes, i, &g->imgs[i], err)) != ORION_OK) return st;
        orion__free(im->data); /* the pixels are what is needed now */
        im->data = NULL;
        im->len = 0;
    }
    return ORION_OK;
}

/* The prompt into the slot's KV cache from position 0; *n gets the
 * positions. text: the prompt as given (BOS first, as /api/generate and
 * /v1/completions take it) or chat-formatted (which spells BOS itself). */
static orion_status prefill(gen *g, const char *text, bool chat, int32_t *n, orion__http_error *err) {
    orion_status st;
    *n = 0;
    if (g->req.n_images == 0) {
        st = chat ? orion_llm_tokenize_special(g->llm, text, strlen(text), false, g->toks, g->n_ctx, n)
                  : orion_llm_tokenize(g->llm, text, strlen(text), true, g->toks, g->n_ctx, n);
        if (st != ORION_OK || *n >= g->n_ctx || *n < 1) {
            if (*n >= g->n_ctx)
                orion__http_set(err, 400, "invalid_request_error", "the prompt has %d tokens; the context holds %d", *n,
                                g->n_ctx);
            else orion__http_set(err, 400, "invalid_request_error", "the prompt cannot be tokenized");
            return ORION_ERR_FORMAT;
        }
        if (orion_llm_eval(g->llm, g->toks, *n, 0, g->logits, false) != ORION_OK) {
            orion__http_set(err, 500, "server_error", "prefill failed");
            return ORION_ERR_INTERNAL;
        }
        return ORION_OK;
    }
    orion_clip *clip = orion_lease_clip(g->lease);
    if (!clip) {
        orion__http_set(err, 500, "server_error", "model '%.100s' was loaded without its projector",
                        orion__model_id(g->m));
        return ORION_ERR_INTERNAL;
    }
    orion_clip_info ci;
    orion_clip_get_info(clip, &ci);
    int32_t rows[64];
    for (int i = 0; i < g->req.n_images && i < 64; i++) {
        rows[i] = ci.n_patches;
        g->embs[i] = orion__malloc(sizeof(float) * (size_t)ci.n_patches * (size_t)ci.n_out);
        if (!g->embs[i]) {
            orion__http_set(err, 500, "server_error", "out of memory for the rows of image %d", i);
            return ORION_ERR_NOMEM;
        }
        if ((st = orion__model_encode_image(g->m, g->lease, g->imgs[i], g->embs[i])) != ORION_OK) {
            orion__http_set(err, 500, "server_error", "image %d: encoding failed: %.180s", i, orion_last_error());
            return st;
        }
        orion_image_free(g->imgs[i]);
        g->imgs[i] = NULL;
    }
    int32_t n_past = 0;
    st = orion_llava_eval_images(g->llm, text, !chat, (const float *const *)g->embs, rows, g->req.n_images, 0,
                                 g->logits, &n_past, g->toks, g->n_ctx);
    if (st == ORION_ERR_RANGE || (st == ORION_OK && n_past >= g->n_ctx)) {
        orion__http_set(err, 400, "invalid_request_error",
                        "the prompt with %d images of %d positions does not fit the context (%d positions)",
                        g->req.n_images, ci.n_patches, g->n_ctx);
        return ORION_ERR_RANGE;
    }
    if (st != ORION_OK) {
        orion__http_set(err, 500, "server_error", "prefill failed: %.200s", orion_last_error());
        return st;
    }
    *n = n_past;
    return ORION_OK;
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
    const orion__models_params *mp = orion__models_params_of(models);
    orion__gen_limits lim = {mp->max_images, mp->max_image_bytes};
    orion_status pst = orion__gen_request_parse(body, len, ep, &lim, &g->req, &err);
    if (pst != ORION_OK && !g->req.no_input) return fail_reply(c, g, &err);
    g->m = orion__models_find(models, g->req.model);
    if (!g->m) {
        err.code = 404;
        snprintf(err.type, sizeof err.type, "not_found_error");
        snprintf(err.message, sizeof err.message, "model '%.100s' not found", g->req.model);
        return fail_reply(c, g, &err);
    }
    if (pst != ORION_OK) return control_reply(c, g);
    if (g->req.n_images > 0 && images_prepare(g, &err) != ORION_OK) return fail_reply(c, g, &err);
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
    /* the prompt: as given, or the messages in the model's template */
    char *text = NULL;
    if (!g->req.prompt) {
        size_t need = 0;
        orion_chat_template t = orion_llm_chat_template(g->llm);
        orion_chat_format(t, g->req.msgs, (size_t)g->req.n_msgs, true, NULL, 0, &need);
        text = orion__malloc(need + 1);
        if (!text || orion_chat_format(t, g->req.msgs, (size_t)g->req.n_msgs, true, text, need + 1, &need) != ORION_OK) {
            orion__free(text);
            orion__http_set(&err, 500, "server_error", "out of memory");
            return fail_reply(c, g, &err);
        }
    }
    int32_t n = 0;
    orion_status st = prefill(g, text ? text : g->req.prompt, text != NULL, &n, &err);
    orion__free(text);
    images_free(g);
    if (st != ORION_OK) return fail_reply(c, g, &err);
    g->n_prompt = g->n_toks = n;
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
