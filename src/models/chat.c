/*
 * chat.c — chat prompt formats: Llama 2's [INST] with <<SYS>>, Mistral's
 * [INST] (the system prompt joins the first user turn), ChatML, and
 * Vicuna v1 ("USER: ... ASSISTANT:", LLaVA-1.5's conv_vicuna_v1). The text
 * spells special pieces ("<s>", "</s>", "<|im_start|>") so that tokenizing it
 * with special-piece parsing gives the ids the model was trained on. A
 * model's own Jinja template is not executed; its markers pick one of these.
 */
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const names[] = {"auto", "llama2", "mistral", "chatml", "vicuna"};
#define N_NAMES ((int)(sizeof names / sizeof names[0]))

orion_status orion_chat_template_from_name(const char *name, orion_chat_template *out) {
    for (int i = 0; i < N_NAMES; i++)
        if (name && strcasecmp(name, names[i]) == 0) {
            *out = (orion_chat_template)i;
            return ORION_OK;
        }
    return orion__fail(ORION_ERR_NOT_FOUND, "unknown chat template '%s' (expected llama2, mistral, chatml, vicuna or auto)",
                       name ? name : "");
}

const char *orion_chat_template_name(orion_chat_template t) {
    return (unsigned)t < (unsigned)N_NAMES ? names[t] : "?";
}

/* Picks a template from a Jinja chat template's markers. */
orion_chat_template orion__chat_template_detect(const char *jinja, size_t len);

orion_chat_template orion__chat_template_detect(const char *jinja, size_t len) {
    char buf[8192];
    size_t n = ORION_MIN(len, sizeof buf - 1);
    if (!jinja || n == 0) return ORION_CHAT_LLAMA2;
    memcpy(buf, jinja, n);
    buf[n] = '\0';
    if (strstr(buf, "<|im_start|>")) return ORION_CHAT_CHATML;
    if (strstr(buf, "[INST]")) return strstr(buf, "<<SYS>>") ? ORION_CHAT_LLAMA2 : ORION_CHAT_MISTRAL;
    if (strstr(buf, "USER:") && strstr(buf, "ASSISTANT:")) return ORION_CHAT_VICUNA;
    return ORION_CHAT_LLAMA2;
}

typedef struct out_buf {
    char  *p;
    size_t size, len;
} out_buf;

static void put(out_buf *o, const char *s) {
    size_t n = strlen(s);
    if (o->len < o->size) {
        size_t k = ORION_MIN(n, o->size - o->len);
        memcpy(o->p + o->len, s, k);
    }
    o->len += n;
}

static bool role_is(const orion_chat_message *m, const char *r) {
    return m->role && strcmp(m->role, r) == 0;
}

orion_status orion_chat_format(orion_chat_template t, const orion_chat_message *msgs, size_t n_msgs,
                               bool add_assistant, char *buf, size_t size, size_t *needed) {
    if ((!msgs && n_msgs) || (!buf && size)) return orion__fail(ORION_ERR_INVALID_ARG, "chat: NULL argument");
    out_buf o = {buf, size ? size - 1 : 0, 0};
    for (size_t i = 0; i < n_msgs; i++) {
        if (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") && !role_is(&msgs[i], "assistant"))
            return orion__fail(ORION_ERR_INVALID_ARG, "chat: message %zu has role '%s' (system, user or assistant)",
                               i, msgs[i].role ? msgs[i].role : "(null)");
        if (!msgs[i].content) return orion__fail(ORION_ERR_INVALID_ARG, "chat: message %zu has no content", i);
    }
    if (t == ORION_CHAT_AUTO) t = ORION_CHAT_LLAMA2;
    if (t == ORION_CHAT_CHATML) {
        for (size_t i = 0; i < n_msgs; i++) {
            put(&o, "<|im_start|>");
            put(&o, msgs[i].role);
            put(&o, "\n");
            put(&o, msgs[i].content);
            put(&o, "<|im_end|>\n");
        }
        if (add_assistant) put(&o, "<|im_start|>assistant\n");
    } else if (t == ORION_CHAT_VICUNA) {
        /* LLaVA-1.5: BOS, "SYSTEM " when given, then "USER: u ASSISTANT: a</s>" */
        put(&o, "<s>");
        for (size_t i = 0; i < n_msgs; i++) {
            const orion_chat_message *m = &msgs[i];
            if (role_is(m, "system")) {
                put(&o, m->content);
                put(&o, " ");
            } else if (role_is(m, "user")) {
                put(&o, "USER: ");
                put(&o, m->content);
                put(&o, " ");
            } else {
                put(&o, "ASSISTANT: ");
                put(&o, m->content);
                put(&o, "</s>");
            }
        }
        if (add_assistant) put(&o, "ASSISTANT:");
    } else {
        /* [INST] formats: system text joins the next user turn */
        const char *system = NULL;
        bool started = false; /* Mistral: one BOS for the whole conversation */
        for (size_t i = 0; i < n_msgs; i++) {
            const orion_chat_message *m = &msgs[i];
            if (role_is(m, "system")) {
                system = m->content;
            } else if (role_is(m, "user")) {
                if (t == ORION_CHAT_LLAMA2 || !started) put(&o, "<s>");
                started = true;
                put(&o, "[INST] ");
                if (system) {
                    if (t == ORION_CHAT_LLAMA2) {
                        put(&o, "<<SYS>>\n");
                        put(&o, system);
                        put(&o, "\n<</SYS>>\n\n");
                    } else {
                        put(&o, system);
                        put(&o, "\n\n");
                    }
                    system = NULL;
                }
                put(&o, m->content);
                put(&o, " [/INST]");
            } else { /* assistant */
                put(&o, t == ORION_CHAT_LLAMA2 ? " " : "");
                put(&o, m->content);
                put(&o, t == ORION_CHAT_LLAMA2 ? " </s>" : "</s>");
            }
        }
        (void)add_assistant; /* the [INST] formats end with [/INST] already */
    }
    if (size) buf[ORION_MIN(o.len, size - 1)] = '\0';
    if (needed) *needed = o.len;
    if (o.len >= size) return orion__fail(ORION_ERR_RANGE, "chat: prompt of %zu bytes does not fit in %zu", o.len, size);
    return ORION_OK;
}
