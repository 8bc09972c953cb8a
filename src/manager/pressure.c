/*
 * pressure.c — the memory-pressure monitor.
 *
 * A reading combines three signals, each mapped to a level, and the level is
 * the highest of them (docs/manager.md gives the thresholds and where they
 * come from):
 *   - PSI: "some" and "full" avg10 of PROC/pressure/memory and of the
 *     cgroup's memory.pressure (the larger of the two is used);
 *   - available memory as a share of the budget: MemAvailable, or the room
 *     left under the cgroup's limit when that is smaller;
 *   - cgroup memory.events: increases of "high" (medium), "max" (high) and
 *     "oom"/"oom_kill" (critical) since the previous reading.
 *
 * The thread is event-driven where the kernel allows: it writes a PSI
 * trigger ("some STALL_US WINDOW_US") to the pressure file it keeps open and
 * waits in poll() for POLLPRI, which the kernel raises when the stall in a
 * window exceeds the threshold; it also wakes every poll_ms to see memory
 * and events that PSI does not show. Writing a trigger needs a kernel with
 * PSI, write access (CAP_SYS_RESOURCE before 6.x for the system file) and a
 * real pressure file; in fake trees and unprivileged containers it fails,
 * and the thread just polls. A pipe wakes the thread to stop it.
 *
 * Locks: `lock` guards the subscriber list; `poll_lock` serializes readings
 * so subscribers see level changes in order. Subscribers are called with
 * poll_lock held and must not call _poll themselves.
 */
#include "manager/manager_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define MAX_SUBS 16

typedef struct sub {
    int               id;
    orion_pressure_fn fn;
    void             *user;
} sub;

struct orion_pressure_monitor {
    orion_pressure_params p;
    char     proc_root[512], sys_root[512];
    int      cg_version;
    char     cg_dir[512];
    uint64_t budget;

    pthread_mutex_t lock;       /* subs */
    sub             subs[MAX_SUBS];
    int             next_id;

    pthread_mutex_t poll_lock;  /* readings and the level */
    _Atomic int     level;
    bool            have_events;
    uint64_t        last_high, last_max, last_oom;

    /* the thread */
    pthread_t   thread;
    bool        running;
    int         stop_pipe[2];
    _Atomic bool event_driven;
    void      (*tick)(void *user);
    void       *tick_user;
    _Atomic uint64_t n_triggered, n_readings;
};

static const char *LEVEL_NAMES[] = {"low", "medium", "high", "critical"};

const char *orion_pressure_name(orion_pressure level) {
    return (unsigned)level <= ORION_PRESSURE_CRITICAL ? LEVEL_NAMES[level] : "?";
}

orion_pressure_params orion_pressure_default_params(void) {
    orion_pressure_params p;
    memset(&p, 0, sizeof p);
    p.proc_root = "/proc";
    p.sys_root = "/sys";
    p.thresholds = mgr__default_thresholds();
    p.poll_ms = 1000;
    p.psi_triggers = true;
    p.trigger_stall_us = 100000;
    p.trigger_window_us = 1000000;
    return p;
}

orion_status orion_pressure_monitor_init(const orion_pressure_params *params, orion_pressure_monitor **out) {
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_pressure_monitor_init: out is NULL");
    *out = NULL;
    orion_pressure_params d = orion_pressure_default_params();
    const orion_pressure_params *pp = params ? params : &d;
    orion_pressure_monitor *m = orion__calloc(1, sizeof *m);
    if (!m) return orion__fail(ORION_ERR_NOMEM, "pressure monitor: out of memory");
    m->p = *pp;
    if (m->p.poll_ms <= 0) m->p.poll_ms = 1000;
    snprintf(m->proc_root, sizeof m->proc_root, "%s", pp->proc_root ? pp->proc_root : "/proc");
    snprintf(m->sys_root, sizeof m->sys_root, "%s", pp->sys_root ? pp->sys_root : "/sys");
    m->p.proc_root = m->proc_root;
    m->p.sys_root = m->sys_root;
    m->cg_version = mgr__cgroup_find(m->proc_root, m->sys_root, m->cg_dir, sizeof m->cg_dir);
    m->budget = pp->budget;
    if (!m->budget) {
        orion_profile_params prof = orion_profile_default_params();
        prof.proc_root = m->proc_root;
        prof.sys_root = m->sys_root;
        orion_device_profile dp;
        orion_status st = mgr__profile_read_raw(&prof, &dp);
        if (st != ORION_OK) {
            orion__free(m);
            return st;
        }
        m->budget = dp.budget;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->poll_lock, NULL);
    m->stop_pipe[0] = m->stop_pipe[1] = -1;
    m->next_id = 1;
    *out = m;
    return ORION_OK;
}

void orion_pressure_monitor_free(orion_pressure_monitor *mon) {
    if (!mon) return;
    orion_pressure_monitor_stop(mon);
    pthread_mutex_destroy(&mon->lock);
    pthread_mutex_destroy(&mon->poll_lock);
    orion__free(mon);
}

int orion_pressure_monitor_subscribe(orion_pressure_monitor *mon, orion_pressure_fn fn, void *user) {
    if (!mon || !fn) return orion__fail(ORION_ERR_INVALID_ARG, "pressure subscribe: NULL argument");
    pthread_mutex_lock(&mon->lock);
    int id = orion__fail(ORION_ERR_LIMIT, "pressure monitor: more than %d subscribers", MAX_SUBS);
    for (int i = 0; i < MAX_SUBS; i++) {
        if (mon->subs[i].id == 0) {
            id = mon->next_id++;
            mon->subs[i] = (sub){id, fn, user};
            break;
        }
    }
    pthread_mutex_unlock(&mon->lock);
    return id;
}

void orion_pressure_monitor_unsubscribe(orion_pressure_monitor *mon, int id) {
    if (!mon || id <= 0) return;
    pthread_mutex_lock(&mon->lock);
    for (int i = 0; i < MAX_SUBS; i++)
        if (mon->subs[i].id == id) mon->subs[i].id = 0;
    pthread_mutex_unlock(&mon->lock);
}

void mgr__pressure_set_tick(orion_pressure_monitor *mon, void (*tick)(void *), void *user);
void mgr__pressure_set_tick(orion_pressure_monitor *mon, void (*tick)(void *), void *user) {
    mon->tick = tick;
    mon->tick_user = user;
}

static orion_pressure level_of(const orion_pressure_thresholds *t, const orion_pressure_sample *s) {
    orion_pressure l = ORION_PRESSURE_LOW;
#define RAISE(x) do { if ((x) > l) l = (x); } while (0)
    if (s->some_avg10 >= t->some_medium) RAISE(ORION_PRESSURE_MEDIUM);
    if (s->some_avg10 >= t->some_high) RAISE(ORION_PRESSURE_HIGH);
    if (s->full_avg10 >= t->full_high) RAISE(ORION_PRESSURE_HIGH);
    if (s->full_avg10 >= t->full_critical) RAISE(ORION_PRESSURE_CRITICAL);
    if (s->avail_share >= 0) {
        if (s->avail_share < t->avail_medium) RAISE(ORION_PRESSURE_MEDIUM);
        if (s->avail_share < t->avail_high) RAISE(ORION_PRESSURE_HIGH);
        if (s->avail_share < t->avail_critical) RAISE(ORION_PRESSURE_CRITICAL);
    }
    if (s->ev_high) RAISE(ORION_PRESSURE_MEDIUM);
    if (s->ev_max) RAISE(ORION_PRESSURE_HIGH);
    if (s->ev_oom) RAISE(ORION_PRESSURE_CRITICAL);
#undef RAISE
    return l;
}

static void read_sample(orion_pressure_monitor *m, orion_pressure_sample *s) {
    char text[8192], rel[600];
    memset(s, 0, sizeof *s);
    s->budget = m->budget;
    double ss = -1, ff = -1;
    if (mgr__read_file(m->proc_root, "pressure/memory", text, sizeof text) > 0) mgr__psi_parse(text, &ss, &ff);
    s->cg_some_avg10 = s->cg_full_avg10 = -1;
    if (m->cg_version == 2) {
        snprintf(rel, sizeof rel, "%s/memory.pressure", m->cg_dir);
        if (mgr__read_file(m->sys_root, rel, text, sizeof text) > 0)
            mgr__psi_parse(text, &s->cg_some_avg10, &s->cg_full_avg10);
    }
    s->some_avg10 = ORION_MAX(ORION_MAX(ss, s->cg_some_avg10), 0.0);
    s->full_avg10 = ORION_MAX(ORION_MAX(ff, s->cg_full_avg10), 0.0);

    /* available memory */
    bool have_avail = false;
    uint64_t avail = ORION_NO_LIMIT;
    if (mgr__read_file(m->proc_root, "meminfo", text, sizeof text) > 0 &&
        mgr__meminfo_get(text, "MemAvailable", &avail))
        have_avail = true;
    if (m->cg_version) {
        uint64_t lim = ORION_NO_LIMIT, high = ORION_NO_LIMIT, cur = 0;
        if (m->cg_version == 2) {
            snprintf(rel, sizeof rel, "%s/memory.max", m->cg_dir);
            mgr__read_limit(m->sys_root, rel, &lim);
            snprintf(rel, sizeof rel, "%s/memory.high", m->cg_dir);
            mgr__read_limit(m->sys_root, rel, &high);
            snprintf(rel, sizeof rel, "%s/memory.current", m->cg_dir);
        } else {
            snprintf(rel, sizeof rel, "%s/memory.limit_in_bytes", m->cg_dir);
            mgr__read_limit(m->sys_root, rel, &lim);
            snprintf(rel, sizeof rel, "%s/memory.usage_in_bytes", m->cg_dir);
        }
        lim = ORION_MIN(lim, high);
        if (lim != ORION_NO_LIMIT && mgr__read_limit(m->sys_root, rel, &cur)) {
            uint64_t room = lim > cur ? lim - cur : 0;
            avail = have_avail ? ORION_MIN(avail, room) : room;
            have_avail = true;
        }
    }
    s->available = have_avail ? avail : 0;
    s->avail_share = have_avail && m->budget ? (double)avail / (double)m->budget : -1.0;

    /* memory.events deltas (v2) */
    if (m->cg_version == 2) {
        snprintf(rel, sizeof rel, "%s/memory.events", m->cg_dir);
        if (mgr__read_file(m->sys_root, rel, text, sizeof text) > 0) {
            uint64_t hi = 0, mx = 0, oom = 0, kill = 0;
            mgr__kv_get(text, "high", &hi);
            mgr__kv_get(text, "max", &mx);
            mgr__kv_get(text, "oom", &oom);
            mgr__kv_get(text, "oom_kill", &kill);
            oom += kill;
            if (m->have_events) {
                s->ev_high = hi > m->last_high ? hi - m->last_high : 0;
                s->ev_max = mx > m->last_max ? mx - m->last_max : 0;
                s->ev_oom = oom > m->last_oom ? oom - m->last_oom : 0;
            }
            m->last_high = hi, m->last_max = mx, m->last_oom = oom;
            m->have_events = true;
        }
    }
    s->level = level_of(&m->p.thresholds, s);
}

orion_status orion_pressure_monitor_poll(orion_pressure_monitor *mon, orion_pressure_sample *out) {
    if (!mon) return orion__fail(ORION_ERR_INVALID_ARG, "pressure poll: NULL monitor");
    pthread_mutex_lock(&mon->poll_lock);
    orion_pressure_sample s;
    read_sample(mon, &s);
    atomic_fetch_add(&mon->n_readings, 1);
    orion_pressure prev = (orion_pressure)atomic_exchange(&mon->level, (int)s.level);
    if (prev != s.level) {
        ORION_LOG_I("memory pressure: %s -> %s (some %.2f full %.2f avail %.3f of budget)",
                    orion_pressure_name(prev), orion_pressure_name(s.level), s.some_avg10, s.full_avg10,
                    s.avail_share);
        sub subs[MAX_SUBS];
        pthread_mutex_lock(&mon->lock);
        memcpy(subs, mon->subs, sizeof subs);
        pthread_mutex_unlock(&mon->lock);
        for (int i = 0; i < MAX_SUBS; i++)
            if (subs[i].id) subs[i].fn(s.level, prev, &s, subs[i].user);
    }
    pthread_mutex_unlock(&mon->poll_lock);
    if (out) *out = s;
    return ORION_OK;
}

orion_pressure orion_pressure_monitor_level(orion_pressure_monitor *mon) {
    return mon ? (orion_pressure)atomic_load(&mon->level) : ORION_PRESSURE_LOW;
}

bool orion_pressure_monitor_event_driven(orion_pressure_monitor *mon) {
    return mon && atomic_load(&mon->event_driven);
}

void orion_pressure_monitor_counts(orion_pressure_monitor *mon, uint64_t *triggered, uint64_t *readings) {
    if (triggered) *triggered = mon ? atomic_load(&mon->n_triggered) : 0;
    if (readings) *readings = mon ? atomic_load(&mon->n_readings) : 0;
}

/* Opens a pressure file and arms a trigger; -1 when the kernel refuses. */
static int open_trigger(const orion_pressure_monitor *m, const char *root, const char *rel) {
    char path[1200], trig[64];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    /* Only the kernel's pressure files (procfs, cgroup2fs) take triggers; a
     * regular file in a fake tree would take the write and lose its text. */
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0 || (sf.f_type != PROC_SUPER_MAGIC && sf.f_type != CGROUP2_SUPER_MAGIC)) {
        close(fd);
        return -1;
    }
    unsigned stall = m->p.trigger_stall_us, window = m->p.trigger_window_us;
    int n = snprintf(trig, sizeof trig, "some %u %u", stall, window);
    bool ok = write(fd, trig, (size_t)n + 1) >= 0;
    int err = ok ? 0 : errno;
    if (!ok && err == EINVAL && window % 2000000u != 0) {
        /* Without CAP_SYS_RESOURCE (root in most containers included),
         * kernels >= 6.4 take only windows that are multiples of 2 s: keep
         * the same share of stall over the longer window. */
        unsigned w2 = (window / 2000000u + 1) * 2000000u;
        stall = (unsigned)((uint64_t)stall * w2 / window);
        window = w2;
        n = snprintf(trig, sizeof trig, "some %u %u", stall, window);
        ok = write(fd, trig, (size_t)n + 1) >= 0;
        err = ok ? 0 : errno;
    }
    if (!ok) {
        ORION_LOG_D("%s: PSI trigger refused (%s): polling", path, strerror(err));
        close(fd);
        return -1;
    }
    ORION_LOG_D("%s: PSI trigger \"%s\"", path, trig);
    return fd;
}

static void *monitor_main(void *arg) {
    orion_pressure_monitor *m = arg;
    struct pollfd fds[3];
    int n = 0;
    fds[n++] = (struct pollfd){m->stop_pipe[0], POLLIN, 0};
    if (m->p.psi_triggers) {
        int fd = open_trigger(m, m->proc_root, "pressure/memory");
        if (fd >= 0) fds[n++] = (struct pollfd){fd, POLLPRI, 0};
        if (m->cg_version == 2) {
            char rel[600];
            snprintf(rel, sizeof rel, "%s/memory.pressure", m->cg_dir);
            fd = open_trigger(m, m->sys_root, rel);
            if (fd >= 0) fds[n++] = (struct pollfd){fd, POLLPRI, 0};
        }
    }
    atomic_store(&m->event_driven, n > 1);
    ORION_LOG_D("pressure monitor: %s", n > 1 ? "PSI triggers" : "polling");
    for (;;) {
        int r = poll(fds, (nfds_t)n, m->p.poll_ms);
        if (r < 0 && errno != EINTR) break;
        if (fds[0].revents) break;
        for (int i = 1; i < n; i++) {
            if (fds[i].revents & POLLPRI) atomic_fetch_add(&m->n_triggered, 1);
            if (fds[i].revents & (POLLERR | POLLNVAL)) { /* the cgroup went away: stop listening to it */
                close(fds[i].fd);
                fds[i] = fds[--n];
                i--;
                atomic_store(&m->event_driven, n > 1);
            }
        }
        orion_pressure_monitor_poll(m, NULL);
        if (m->tick) m->tick(m->tick_user);
    }
    for (int i = 1; i < n; i++) close(fds[i].fd);
    return NULL;
}

orion_status orion_pressure_monitor_start(orion_pressure_monitor *mon) {
    if (!mon) return orion__fail(ORION_ERR_INVALID_ARG, "pressure start: NULL monitor");
    if (mon->running) return ORION_OK;
    if (pipe2(mon->stop_pipe, O_CLOEXEC) != 0)
        return orion__fail(ORION_ERR_IO, "pressure monitor: pipe: %s", strerror(errno));
    orion_pressure_monitor_poll(mon, NULL);
    if (pthread_create(&mon->thread, NULL, monitor_main, mon) != 0) {
        close(mon->stop_pipe[0]);
        close(mon->stop_pipe[1]);
        mon->stop_pipe[0] = mon->stop_pipe[1] = -1;
        return orion__fail(ORION_ERR_NOMEM, "pressure monitor: cannot start its thread");
    }
    mon->running = true;
    return ORION_OK;
}

void orion_pressure_monitor_stop(orion_pressure_monitor *mon) {
    if (!mon || !mon->running) return;
    char c = 1;
    ssize_t w = write(mon->stop_pipe[1], &c, 1);
    ORION_UNUSED(w);
    pthread_join(mon->thread, NULL);
    close(mon->stop_pipe[0]);
    close(mon->stop_pipe[1]);
    mon->stop_pipe[0] = mon->stop_pipe[1] = -1;
    mon->running = false;
}
