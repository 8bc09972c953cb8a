/*
 * events.c — GET /events: the model manager's events as server-sent events.
 *
 * The server subscribes once to its manager and hands every event to
 * orion__events_publish, which formats it once,
 *
 *   event: loaded
 *   data: {"event":"loaded","model":"minilm","level":"q8","bytes":...}
 *
 * and appends a copy to the queue of each open stream. A queue is bounded
 * (256 by default): when a slow client lets it fill, the oldest message is
 * dropped and counted, and the client gets an `event: dropped` message
 * with the count before the next one.
 *
 * Each stream is one libmicrohttpd response produced by a content-reader
 * callback. The server runs a thread per connection, so the callback may
 * block: it waits on the hub's condition variable in slices of 200 ms;
 * between slices it checks whether the client has closed the connection
 * (a peek at the socket), so a client that goes away is unsubscribed
 * within a slice even when no event comes, and every 15 s of silence it
 * sends a comment line (": ping") for proxies. orion__events_close (server
 * stop) wakes every stream, which ends its response; the free callback of
 * the response unsubscribes it.
 */
#include "service/service.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#define SLICE_MS 200
#define PING_S   15.0

struct orion__event_stream {
    orion__events         *hub;
    char                 **q;            /* ring of cap messages */
    int                    cap, head, n;
    uint64_t               dropped;      /* dropped since the last notice */
    orion__event_stream   *prev, *next;
    /* the reader's state (its connection's thread only) */
    struct MHD_Connection *conn;
    char                  *cur;          /* the message being written */
    size_t                 cur_len, cur_off;
    double                 last_write;
};

struct orion__events {
    pthread_mutex_t      mu;
    pthread_cond_t       cv;        /* a message, or close */
    orion__event_stream *streams;
    int                  n_streams;
    int                  queue_cap;
    bool                 closed;
    uint64_t             published, dropped;
};

orion_status orion__events_init(int queue_cap, orion__events **out) {
    *out = orion__calloc(1, sizeof **out);
    if (!*out) return orion__fail(ORION_ERR_NOMEM, "no memory");
    (*out)->queue_cap = queue_cap > 0 ? queue_cap : 256;
    pthread_mutex_init(&(*out)->mu, NULL);
    pthread_cond_init(&(*out)->cv, NULL);
    return ORION_OK;
}

void orion__events_free(orion__events *h) {
    if (!h) return;
    while (h->streams) orion__events_unsubscribe(h->streams);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    orion__free(h);
}

void orion__events_close(orion__events *h) {
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->closed = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void orion__events_stats(orion__events *h, int *streams, uint64_t *published, uint64_t *dropped) {
    pthread_mutex_lock(&h->mu);
    *streams = h->n_streams;
    *published = h->published;
    *dropped = h->dropped;
    pthread_mutex_unlock(&h->mu);
}

/* ---- formatting --------------------------------------------------------------- */

static void json_name_or_null(orion__buf *b, const char *key, const char *v) {
    orion__buf_printf(b, ",\"%s\":", key);
    if (v) orion__buf_json_str(b, v, strlen(v));
    else orion__buf_puts(b, "null");
}

void orion__event_format(const orion_manager_event *e, orion__buf *b) {
    const char *name = orion_manager_event_name(e->type);
    bool pressure = e->type == ORION_EVENT_PRESSURE;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    orion__buf_printf(b, "event: %s\ndata: {\"event\":\"%s\"", name, name);
    json_name_or_null(b, "model", e->model);
    json_name_or_null(b, "level", e->model ? orion_qlevel_name(e->level) : NULL);
    orion__buf_printf(b, ",\"bytes\":%llu,\"bytes_total\":%llu,\"timestamp\":%.6f,\"time\":%.3f",
                      (unsigned long long)e->bytes, (unsigned long long)e->bytes_total, e->timestamp,
                      (double)now.tv_sec + (double)now.tv_nsec * 1e-9);
    json_name_or_null(b, "reason", e->type == ORION_EVENT_UNLOADED ? orion_unload_reason_name(e->reason) : NULL);
    json_name_or_null(b, "status", e->type == ORION_EVENT_LOAD_FAILED ? orion_status_str(e->status) : NULL);
    json_name_or_null(b, "pressure", orion_pressure_name(e->pressure));
    json_name_or_null(b, "previous", pressure ? orion_pressure_name(e->previous) : NULL);
    orion__buf_puts(b, "}\n\n");
}

/* ---- queues --------------------------------------------------------------------- */

void orion__events_publish(orion__events *h, const orion_manager_event *e) {
    if (!h) return;
    orion__buf b = {0};
    orion__event_format(e, &b);
    pthread_mutex_lock(&h->mu);
    h->published++;
    for (orion__event_stream *s = h->streams; s; s = s->next) {
        char *copy = b.failed ? NULL : orion__strdup(b.p);
        if (!copy || s->n == s->cap) { /* this one (no memory) or the oldest goes */
            s->dropped++;
            h->dropped++;
        }
        if (!copy) continue;
        if (s->n == s->cap) {
            orion__free(s->q[s->head]);
            s->head = (s->head + 1) % s->cap;
            s->n--;
        }
        s->q[(s->head + s->n) % s->cap] = copy;
        s->n++;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    orion__buf_free(&b);
}

orion_status orion__events_subscribe(orion__events *h, int queue_cap, orion__event_stream **out) {
    *out = NULL;
    orion__event_stream *s = orion__calloc(1, sizeof *s);
    if (!s) return orion__fail(ORION_ERR_NOMEM, "no memory");
    s->cap = queue_cap > 0 ? queue_cap : h->queue_cap;
    s->q = orion__calloc((size_t)s->cap, sizeof *s->q);
    if (!s->q) {
        orion__free(s);
        return orion__fail(ORION_ERR_NOMEM, "no memory");
    }
    s->hub = h;
    s->last_write = orion__now();
    pthread_mutex_lock(&h->mu);
    if (h->closed) {
        pthread_mutex_unlock(&h->mu);
        orion__free(s->q);
        orion__free(s);
        return orion__fail(ORION_ERR_BUSY, "the server is shutting down");
    }
    s->next = h->streams;
    if (h->streams) h->streams->prev = s;
    h->streams = s;
    h->n_streams++;
    pthread_mutex_unlock(&h->mu);
    *out = s;
    return ORION_OK;
}

void orion__events_unsubscribe(orion__event_stream *s) {
    if (!s) return;
    orion__events *h = s->hub;
    pthread_mutex_lock(&h->mu);
    if (s->prev) s->prev->next = s->next;
    else h->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    h->n_streams--;
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < s->n; i++) orion__free(s->q[(s->head + i) % s->cap]);
    orion__free(s->q);
    orion__free(s->cur);
    orion__free(s);
}

int orion__events_next(orion__event_stream *s, int timeout_ms, char **out) {
    orion__events *h = s->hub;
    *out = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int r = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        if (s->dropped) {
            orion__buf b = {0};
            orion__buf_printf(&b, "event: dropped\ndata: {\"event\":\"dropped\",\"dropped\":%llu}\n\n",
                              (unsigned long long)s->dropped);
            if (!b.failed) {
                s->dropped = 0;
                *out = b.p;
                r = 1;
            }
            break;
        }
        if (s->n > 0) {
            *out = s->q[s->head];
            s->q[s->head] = NULL;
            s->head = (s->head + 1) % s->cap;
            s->n--;
            r = 1;
            break;
        }
        if (h->closed) {
            r = -1;
            break;
        }
        if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT) {
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return r;
}

/* ---- the HTTP stream ----------------------------------------------------------------- */

/* True when the client has closed its end (a read would return 0). */
static bool peer_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char byte;
    ssize_t k = recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    ORION_UNUSED(pos);
    orion__event_stream *s = cls;
    while (!s->cur) {
        char *msg = NULL;
        int r = orion__events_next(s, SLICE_MS, &msg);
        if (r < 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (r > 0) {
            s->cur = msg;
        } else {
            if (peer_gone(s->conn)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (orion__now() - s->last_write < PING_S) continue;
            s->cur = orion__strdup(": ping\n\n");
            if (!s->cur) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        s->cur_len = strlen(s->cur);
        s->cur_off = 0;
    }
    size_t n = ORION_MIN(max, s->cur_len - s->cur_off);
    memcpy(buf, s->cur + s->cur_off, n);
    s->cur_off += n;
    if (s->cur_off == s->cur_len) {
        orion__free(s->cur);
        s->cur = NULL;
    }
    s->last_write = orion__now();
    return (ssize_t)n;
}

static void reader_free(void *cls) { orion__events_unsubscribe(cls); }

int orion__events_serve(orion__events *h, struct MHD_Connection *c) {
    orion__event_stream *s = NULL;
    orion__http_error err;
    if (orion__events_subscribe(h, 0, &s) != ORION_OK) {
        orion__http_set(&err, 503, "overloaded_error", "%s", orion_last_error());
        orion__send_error(c, &err);
        return 503;
    }
    s->conn = c;
    /* a first line, so the client sees the stream open at once */
    s->cur = orion__strdup(": orion events\n\n");
    s->cur_len = s->cur ? strlen(s->cur) : 0;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, reader_free);
    if (!r) {
        orion__events_unsubscribe(s);
        orion__http_set(&err, 500, "server_error", "out of memory");
        orion__send_error(c, &err);
        return 500;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return 200;
}
