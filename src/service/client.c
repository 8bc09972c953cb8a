/*
 * client.c — the C client of the model server (orion_client_*): plain
 * sockets (TCP or a Unix socket) and HTTP/1.1, one request per connection
 * ("Connection: close"), so there is no connection state to go stale.
 * Embeddings are asked for as base64 (the exact f32 bytes, a third smaller
 * than decimal text) and decoded here.
 */
#include "service/service.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MAX_REPLY ((size_t)512 << 20)

struct orion_client {
    char       host[256];
    char       port[16];
    char      *sock_path;   /* NULL for TCP */
    char      *api_key;
    orion__buf reply;       /* the whole last reply */
    size_t     body_off, body_len;
};

orion_status orion_client_connect(const char *where, const char *api_key, orion_client **out) {
    if (!where || !*where || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_client_connect: no address");
    *out = NULL;
    orion_client *c = orion__calloc(1, sizeof *c);
    if (!c) return orion__fail(ORION_ERR_NOMEM, "no memory");
    if (strncmp(where, "http://", 7) == 0) {
        const char *h = where + 7, *end = h + strcspn(h, "/");
        const char *colon = memchr(h, ':', (size_t)(end - h));
        size_t hl = (size_t)((colon ? colon : end) - h);
        if (hl == 0 || hl >= sizeof c->host) goto bad;
        memcpy(c->host, h, hl);
        if (colon) {
            size_t pl = (size_t)(end - colon - 1);
            if (pl == 0 || pl >= sizeof c->port) goto bad;
            memcpy(c->port, colon + 1, pl);
            for (size_t i = 0; i < pl; i++) {
                if (c->port[i] < '0' || c->port[i] > '9') goto bad;
            }
        } else {
            snprintf(c->port, sizeof c->port, "11435");
        }
    } else {
        const char *p = strncmp(where, "unix:", 5) == 0 ? where + 5 : where;
        if (strncmp(where, "https://", 8) == 0) {
            orion__free(c);
            return orion__fail(ORION_ERR_UNSUPPORTED, "%s: https is not supported (use a local address)", where);
        }
        if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) goto bad;
        c->sock_path = orion__strdup(p);
        if (!c->sock_path) goto nomem;
        snprintf(c->host, sizeof c->host, "localhost");
    }
    if (api_key && *api_key && !(c->api_key = orion__strdup(api_key))) goto nomem;
    *out = c;
    return ORION_OK;
bad:
    orion_client_free(c);
    return orion__fail(ORION_ERR_INVALID_ARG, "'%s': expected http://HOST[:PORT] or a socket path", where);
nomem:
    orion_client_free(c);
    return orion__fail(ORION_ERR_NOMEM, "no memory");
}

void orion_client_free(orion_client *c) {
    if (!c) return;
    orion__free(c->sock_path);
    orion__free(c->api_key);
    orion__buf_free(&c->reply);
    orion__free(c);
}

static int open_conn(orion_client *c) {
    int fd = -1;
    if (c->sock_path) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c->sock_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            orion__fail(ORION_ERR_IO, "%s: %s", c->sock_path, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
    } else {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        /* "localhost" is the loopback address whatever the resolver says
         * (RFC 6761 6.3): a minimal system may have no /etc/hosts */
        bool local = strcasecmp(c->host, "localhost") == 0;
        if (local) hints.ai_flags = AI_NUMERICHOST;
        int rc = getaddrinfo(local ? "127.0.0.1" : c->host, c->port, &hints, &res);
        if (rc != 0) {
            orion__fail(ORION_ERR_IO, "%s: %s", c->host, gai_strerror(rc));
            return -1;
        }
        int err = 0;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd < 0) continue;
            if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
            err = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            orion__fail(ORION_ERR_IO, "http://%s:%s: %s", c->host, c->port, strerror(err ? err : ECONNREFUSED));
            return -1;
        }
    }
    struct timeval tv = {300, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Decodes a chunked body in place; returns its length or -1. */
static int64_t dechunk(char *p, size_t n) {
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        if (in >= n) return -1;
        unsigned long long sz = strtoull(p + in, &end, 16);
        char *crlf = strstr(p + in, "\r\n");
        if (!crlf || end == p + in) return -1;
        in = (size_t)(crlf - p) + 2;
        if (sz == 0) return (int64_t)out;
        if (sz > n - in) return -1;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz + 2;
    }
}

/* One request; leaves the reply in c->reply and the body at body_off. */
static orion_status request(orion_client *c, const char *method, const char *path, const char *body, size_t len,
                            int *status) {
    int fd = open_conn(c);
    if (fd < 0) return ORION_ERR_IO;
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: orion-client/%s\r\nAccept: */*\r\n"
                      "Connection: close\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s\r\n",
                      method, path, c->host, orion_version(), len, c->api_key ? "Authorization: Bearer " : "",
                      c->api_key ? c->api_key : "", c->api_key ? "\r\n" : "");
    if (hn < 0 || (size_t)hn >= sizeof head) {
        close(fd);
        return orion__fail(ORION_ERR_INVALID_ARG, "request head too long");
    }
    if (!send_all(fd, head, (size_t)hn) || (len && !send_all(fd, body, len))) {
        int e = errno;
        close(fd);
        return orion__fail(ORION_ERR_IO, "send: %s", strerror(e));
    }
    orion__buf *r = &c->reply;
    r->len = 0;
    r->failed = false;
    char tmp[65536];
    for (;;) {
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            return orion__fail(ORION_ERR_IO, "receive: %s", strerror(e));
        }
        if (k == 0) break;
        orion__buf_append(r, tmp, (size_t)k);
        if (r->failed || r->len > MAX_REPLY) {
            close(fd);
            return orion__fail(ORION_ERR_NOMEM, "reply too large");
        }
    }
    close(fd);
    orion__buf_append(r, "", 0);
    if (r->failed || !r->p) return orion__fail(ORION_ERR_IO, "the server closed the connection without a reply");
    int code = 0;
    if (sscanf(r->p, "HTTP/1.%*d %d", &code) != 1) return orion__fail(ORION_ERR_FORMAT, "not an HTTP reply");
    char *sep = strstr(r->p, "\r\n\r\n");
    if (!sep) return orion__fail(ORION_ERR_FORMAT, "truncated HTTP reply");
    c->body_off = (size_t)(sep + 4 - r->p);
    c->body_len = r->len - c->body_off;
    /* headers are case-insensitive */
    bool chunked = false;
    for (char *h = strstr(r->p, "\r\n"); h && h < sep; h = strstr(h + 2, "\r\n")) {
        if (strncasecmp(h + 2, "Transfer-Encoding:", 18) == 0 && strstr(h + 2, "chunked") &&
            strstr(h + 2, "chunked") < sep)
            chunked = true;
        if (strncasecmp(h + 2, "Content-Length:", 15) == 0) {
            unsigned long long cl = strtoull(h + 17, NULL, 10);
            if (cl > c->body_len) return orion__fail(ORION_ERR_IO, "reply cut short (%zu of %llu bytes)", c->body_len, cl);
            c->body_len = (size_t)cl;
        }
    }
    if (chunked) {
        int64_t bl = dechunk(r->p + c->body_off, c->body_len);
        if (bl < 0) return orion__fail(ORION_ERR_FORMAT, "bad chunked reply");
        c->body_len = (size_t)bl;
    }
    r->p[c->body_off + c->body_len] = 0;
    *status = code;
    return ORION_OK;
}

orion_status orion_client_get(orion_client *c, const char *path, int *http_status, const char **body, size_t *len) {
    if (!c || !path || path[0] != '/') return orion__fail(ORION_ERR_INVALID_ARG, "orion_client_get: bad path");
    int code = 0;
    orion_status st = request(c, "GET", path, NULL, 0, &code);
    if (st != ORION_OK) return st;
    if (http_status) *http_status = code;
    if (body) *body = c->reply.p + c->body_off;
    if (len) *len = c->body_len;
    return ORION_OK;
}

static orion_status status_error(int code, const char *body) {
    char msg[300] = "";
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    const cJSON *m = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
    if (cJSON_IsString(e)) m = e; /* Ollama's {"error": "..."} */
    snprintf(msg, sizeof msg, "%s", cJSON_IsString(m) ? m->valuestring : body);
    cJSON_Delete(j);
    orion_status st = code == 404 ? ORION_ERR_NOT_FOUND
                      : code == 503 ? ORION_ERR_BUSY
                      : code >= 400 && code < 500 ? ORION_ERR_INVALID_ARG
                                                  : ORION_ERR_IO;
    return orion__fail(st, "server said %d: %s", code, msg);
}

orion_status orion_client_embed(orion_client *c, const char *model, const char *const *texts, int32_t n, float *out,
                                size_t out_cap, int32_t *dim_out) {
    if (!c || !texts || n <= 0 || !out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_client_embed: bad arguments");
    orion__buf b = {0};
    orion__buf_puts(&b, "{");
    if (model && *model) {
        orion__buf_puts(&b, "\"model\":");
        orion__buf_json_str(&b, model, strlen(model));
        orion__buf_puts(&b, ",");
    }
    orion__buf_puts(&b, "\"encoding_format\":\"base64\",\"input\":[");
    for (int32_t i = 0; i < n; i++) {
        if (!texts[i]) {
            orion__buf_free(&b);
            return orion__fail(ORION_ERR_INVALID_ARG, "orion_client_embed: text %d is NULL", i);
        }
        if (i) orion__buf_puts(&b, ",");
        orion__buf_json_str(&b, texts[i], strlen(texts[i]));
    }
    orion__buf_puts(&b, "]}");
    if (b.failed) {
        orion__buf_free(&b);
        return orion__fail(ORION_ERR_NOMEM, "no memory for the request");
    }
    int code = 0;
    orion_status st = request(c, "POST", "/v1/embeddings", b.p, b.len, &code);
    orion__buf_free(&b);
    if (st != ORION_OK) return st;
    const char *body = c->reply.p + c->body_off;
    if (code != 200) return status_error(code, body);
    cJSON *j = cJSON_ParseWithLength(body, c->body_len);
    if (!j) return orion__fail(ORION_ERR_FORMAT, "the reply is not JSON");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    int32_t dim = -1;
    if (!cJSON_IsArray(data) || cJSON_GetArraySize(data) != n) {
        st = orion__fail(ORION_ERR_FORMAT, "the reply has no 'data' array of %d embeddings", n);
        goto done;
    }
    int32_t row = 0;
    for (const cJSON *it = data->child; it; it = it->next, row++) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(it, "index");
        const cJSON *emb = cJSON_GetObjectItemCaseSensitive(it, "embedding");
        int32_t i = cJSON_IsNumber(idx) ? (int32_t)idx->valuedouble : row;
        if (i < 0 || i >= n) {
            st = orion__fail(ORION_ERR_FORMAT, "embedding index %d out of range", i);
            goto done;
        }
        int32_t d;
        if (cJSON_IsString(emb)) {
            size_t sl = strlen(emb->valuestring);
            if (sl % 4 || sl / 4 * 3 > (size_t)1 << 26) {
                st = orion__fail(ORION_ERR_FORMAT, "embedding %d: bad base64", i);
                goto done;
            }
            uint8_t *raw = orion__malloc(sl / 4 * 3 + 3);
            int64_t bl = raw ? orion__b64_decode(emb->valuestring, sl, raw) : -1;
            if (bl < 0 || bl % 4) {
                orion__free(raw);
                st = orion__fail(ORION_ERR_FORMAT, "embedding %d: bad base64", i);
                goto done;
            }
            d = (int32_t)(bl / 4);
            if (dim < 0) dim = d;
            if (d != dim || (size_t)n * (size_t)dim > out_cap) {
                orion__free(raw);
                st = d != dim ? orion__fail(ORION_ERR_FORMAT, "embeddings of different lengths")
                              : orion__fail(ORION_ERR_RANGE, "%d x %d floats do not fit in %zu", n, dim, out_cap);
                goto done;
            }
            for (int32_t k = 0; k < d; k++) {
                uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 |
                             (uint32_t)raw[4 * k + 3] << 24;
                memcpy(&out[(size_t)i * dim + k], &u, 4);
            }
            orion__free(raw);
        } else if (cJSON_IsArray(emb)) {
            d = cJSON_GetArraySize(emb);
            if (dim < 0) dim = d;
            if (d != dim || (size_t)n * (size_t)dim > out_cap) {
                st = d != dim ? orion__fail(ORION_ERR_FORMAT, "embeddings of different lengths")
                              : orion__fail(ORION_ERR_RANGE, "%d x %d floats do not fit in %zu", n, dim, out_cap);
                goto done;
            }
            int32_t k = 0;
            for (const cJSON *x = emb->child; x; x = x->next, k++) out[(size_t)i * dim + k] = (float)x->valuedouble;
        } else {
            st = orion__fail(ORION_ERR_FORMAT, "embedding %d is neither base64 nor an array", i);
            goto done;
        }
    }
    if (dim_out) *dim_out = dim;
done:
    cJSON_Delete(j);
    return st;
}
