/*
 * peer.h — a peer runtime as a co-process of `orion bench` (llama.cpp's
 * driver for bench decode, ONNX Runtime's node script for bench embed).
 *
 * The protocol: the peer prints a one-line JSON object with "ready" when it
 * has loaded, then answers each "rep\n" on its standard input with one
 * JSON line of timings; it exits at end of input. Lines that do not start
 * with '{' (its own log) are skipped.
 */
#ifndef ORION_BENCH_PEER_H
#define ORION_BENCH_PEER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

typedef struct bench_peer {
    pid_t pid;
    FILE *to, *from;
    char  info[512]; /* its ready line, without the newline */
} bench_peer;

/* Finds `rel` (a path relative to the repository): $env_var when set, else
 * under the current directory, else under the orion binary's directory or
 * up to `levels_up` directories above it. `executable`: X_OK, else R_OK. */
bool bench_peer_find(const char *env_var, const char *rel, int levels_up, bool executable, char *out, size_t size);

/* Starts argv[0] (searched in PATH when it has no '/') with argv, its
 * standard input and output piped to us, and waits for its ready line.
 * `what` names it in errors. False with err filled on failure (nothing left
 * running). */
bool bench_peer_start(bench_peer *p, char *const argv[], const char *what, char *err, size_t err_size);

/* Sends "rep" and reads the answer line; false (err filled) when the peer
 * stopped answering. */
bool bench_peer_rep(bench_peer *p, char *line, size_t size, const char *what, char *err, size_t err_size);

/* One protocol line into buf; false at end of output. */
bool bench_peer_line(bench_peer *p, char *buf, size_t size);

/* Closes its input, waits up to 5 s for it to exit, then SIGTERM. Safe on a
 * peer that never started. */
void bench_peer_stop(bench_peer *p);

/* Number after "key": in a one-line JSON object; NAN when absent. */
double bench_json_num(const char *line, const char *key);
/* String after "key":" in a one-line JSON object (no escapes expected);
 * "" when absent. */
void bench_json_str(const char *line, const char *key, char *out, size_t size);

#endif
