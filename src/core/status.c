/*
 * status.c — status code names and the per-thread last-error message.
 *
 * A failing call formats its message into a thread-local buffer with
 * orion__fail(); the application reads it with orion_last_error() on the same
 * thread. No allocation, so it works when memory is exhausted.
 */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

#define ERROR_MSG_MAX 1024

static _Thread_local char last_error[ERROR_MSG_MAX];

const char *orion_version(void) {
    return "0.1.0";
}

const char *orion_status_str(orion_status status) {
    switch (status) {
    case ORION_OK:              return "ok";
    case ORION_ERR_INVALID_ARG: return "invalid argument";
    case ORION_ERR_NOMEM:       return "out of memory";
    case ORION_ERR_IO:          return "input/output error";
    case ORION_ERR_FORMAT:      return "malformed input";
    case ORION_ERR_UNSUPPORTED: return "unsupported";
    case ORION_ERR_RANGE:       return "out of range";
    case ORION_ERR_CANCELLED:   return "cancelled";
    case ORION_ERR_BUSY:        return "busy";
    case ORION_ERR_NOT_FOUND:   return "not found";
    case ORION_ERR_LIMIT:       return "limit exceeded";
    case ORION_ERR_INTERNAL:    return "internal error";
    }
    return "unknown status";
}

const char *orion_last_error(void) {
    return last_error;
}

orion_status orion__failv(orion_status status, const char *fmt, va_list ap) {
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    orion__log(ORION_LOG_DEBUG, "%s: %s", orion_status_str(status), last_error);
    return status;
}

orion_status orion__fail(orion_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    orion__failv(status, fmt, ap);
    va_end(ap);
    return status;
}

void orion__clear_error(void) {
    last_error[0] = '\0';
}
