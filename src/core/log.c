/*
 * log.c — the library's logging: one callback set by the application, quiet
 * by default. The callback and level are read atomically so orion_log_set()
 * may race with logging threads without tearing.
 */
#include "core/core.h"

#include <stdatomic.h>
#include <stdio.h>

typedef struct log_sink {
    orion_log_fn fn;
    void        *user;
} log_sink;

static _Atomic(int) min_level = ORION_LOG_NONE;
static log_sink sinks[2];          /* double buffer: writers flip the index */
static _Atomic(int) sink_index = 0;

void orion_log_set(orion_log_fn fn, orion_log_level level, void *user) {
    int next = 1 - atomic_load(&sink_index);
    sinks[next].fn = fn;
    sinks[next].user = user;
    atomic_store(&sink_index, next);
    atomic_store(&min_level, fn ? (int)level : ORION_LOG_NONE);
}

void orion_log_to_stderr(orion_log_level level, const char *msg, void *user) {
    static const char *names[] = {"debug", "info", "warning", "error", "none"};
    ORION_UNUSED(user);
    fprintf(stderr, "orion: %s: %s\n", names[level <= ORION_LOG_NONE ? level : ORION_LOG_NONE], msg);
}

bool orion__log_enabled(orion_log_level level) {
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void orion__log(orion_log_level level, const char *fmt, ...) {
    if (!orion__log_enabled(level)) return;
    log_sink sink = sinks[atomic_load(&sink_index)];
    if (!sink.fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sink.fn(level, buf, sink.user);
}
