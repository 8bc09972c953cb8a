/*
 * peer.c — a peer runtime as a co-process of `orion bench` (see peer.h).
 */
#include "peer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

bool bench_peer_find(const char *env_var, const char *rel, int levels_up, bool executable, char *out, size_t size) {
    int mode = executable ? X_OK : R_OK;
    const char *env = env_var ? getenv(env_var) : NULL;
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return access(out, mode) == 0;
    }
    if (access(rel, mode) == 0) {
        snprintf(out, size, "%s", rel);
        return true;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    for (int up = 0; up <= levels_up; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return false;
        *slash = '\0';
        if (snprintf(out, size, "%s/%s", exe, rel) < (int)size && access(out, mode) == 0) return true;
    }
    return false;
}

bool bench_peer_line(bench_peer *p, char *buf, size_t size) {
    for (;;) {
        if (!fgets(buf, (int)size, p->from)) return false;
        if (buf[0] == '{') return true;
    }
}

void bench_peer_stop(bench_peer *p) {
    if (p->to) fclose(p->to);
    if (p->from) fclose(p->from);
    if (p->pid > 0) {
        int status;
        /* it exits at end of input; give it a moment, then insist */
        for (int i = 0; i < 50 && waitpid(p->pid, &status, WNOHANG) == 0; i++) usleep(100000);
        if (waitpid(p->pid, &status, WNOHANG) == 0) {
            kill(p->pid, SIGTERM);
            waitpid(p->pid, &status, 0);
        }
    }
    memset(p, 0, sizeof *p);
}

bool bench_peer_start(bench_peer *p, char *const argv[], const char *what, char *err, size_t err_size) {
    memset(p, 0, sizeof *p);
    int in[2], out[2];
    if (pipe(in) != 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        return false;
    }
    if (pipe(out) != 0) {
        close(in[0]), close(in[1]);
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        return false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_size, "fork: %s", strerror(errno));
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return false;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "orion bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    if (!p->to || !p->from) {
        snprintf(err, err_size, "fdopen: %s", strerror(errno));
        bench_peer_stop(p);
        return false;
    }
    if (!bench_peer_line(p, p->info, sizeof p->info) || !strstr(p->info, "\"ready\"")) {
        snprintf(err, err_size, "%s did not start (see its messages above)", what);
        bench_peer_stop(p);
        return false;
    }
    p->info[strcspn(p->info, "\r\n")] = '\0';
    return true;
}

bool bench_peer_rep(bench_peer *p, char *line, size_t size, const char *what, char *err, size_t err_size) {
    if (fprintf(p->to, "rep\n") < 0 || fflush(p->to) != 0 || !bench_peer_line(p, line, size)) {
        snprintf(err, err_size, "%s stopped answering", what);
        return false;
    }
    return true;
}

double bench_json_num(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return NAN;
    char *end;
    double v = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? NAN : v;
}

void bench_json_str(const char *line, const char *key, char *out, size_t size) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    out[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= size) n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}
