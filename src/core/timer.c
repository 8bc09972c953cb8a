/* timer.c — monotonic time, and environment flags. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t orion__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double orion__now(void) {
    return (double)orion__now_ns() * 1e-9;
}

bool orion__env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}
