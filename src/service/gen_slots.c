/*
 * gen_slots.c — the slots of a generation model: a few handles, each with
 * its own KV cache, handed out first come first served (a ticket queue, so
 * no request starves).
 *
 * A request first leases the model from the manager (loading it if needed;
 * the lease pins it, so nothing it uses is unloaded under it), then waits
 * for its ticket and a free slot. Slot 0 is the manager's own handle (the
 * lease's orion_llm: its KV cache is the one the manager accounted for);
 * slots 1.. are handles of the same file the service loads on first use
 * (they map the same page-cache pages; each adds a KV cache and scratch).
 * When the manager unloads the model (idle, LRU, pressure, keep_alive 0,
 * explicit), the server's event subscriber calls orion__models_on_unloaded,
 * which frees the extra handles that are idle and marks the others stale
 * (freed at their release); the next request leases the model again, gets
 * the manager's new handle for slot 0 and reloads the others.
 */
#include "service/models_internal.h"

#include <stdio.h>
#include <string.h>

bool orion__model_is_llm(const orion__model *x) { return x->is_llm; }

/* Loads extra slot k (k >= 1) from the lease's file, under x->mu. */
static orion_status slot_load(orion__model *x, int k, const orion_model_lease *lease, const orion_llm_info *info0) {
    orion_llm_params lp = orion_llm_default_params();
    lp.n_threads = x->owner->p.n_threads > 0 ? x->owner->p.n_threads : 1;
    lp.n_ctx = info0->n_ctx;
    orion_status st = orion_llm_load(orion_lease_path(lease), &lp, &x->slots[k]);
    if (st != ORION_OK) {
        x->slots[k] = NULL;
        return st;
    }
    x->slot_stale[k] = false;
    ORION_LOG_I("model '%s': slot %d loaded (n_ctx %d)", x->id, k, info0->n_ctx);
    return ORION_OK;
}

orion_status orion__model_llm_acquire(orion__model *x, double keep_alive, orion_model_lease **lease_out,
                                      orion_llm **llm, int *slot, orion__http_error *err) {
    *lease_out = NULL;
    *llm = NULL;
    *slot = -1;
    if (!x->is_llm) {
        orion__http_set(err, 400, "invalid_request_error", "model '%.100s' is an embedding model; it cannot generate",
                        x->id);
        return ORION_ERR_UNSUPPORTED;
    }
    orion_model_lease *lease = NULL;
    orion_status st = orion__model_lease(x, keep_alive, &lease, err);
    if (st != ORION_OK) return st;
    orion_llm *llm0 = orion_lease_llm(lease);
    if (!llm0) {
        orion_manager_release(x->owner->mgr, lease);
        orion__http_set(err, 500, "server_error", "model '%.100s' is not a decoder", x->id);
        return ORION_ERR_UNSUPPORTED;
    }
    orion_llm_info info0;
    orion_llm_get_info(llm0, &info0);
    pthread_mutex_lock(&x->mu);
    x->llm_info = info0;
    x->llm_info_valid = true;
    snprintf(x->arch, sizeof x->arch, "%s", info0.arch);
    snprintf(x->path, sizeof x->path, "%s", orion_lease_path(lease));
    /* first come, first served: wait for our ticket, then a free slot */
    uint64_t me = x->ticket_next++;
    int k = -1;
    for (;;) {
        if (x->stop) break;
        if (me == x->ticket_serving) {
            for (int i = 0; i < x->n_slots && k < 0; i++) {
                if (!x->slot_busy[i]) k = i;
            }
            if (k >= 0) break;
        }
        pthread_cond_wait(&x->slot_cv, &x->mu);
    }
    x->ticket_serving++;
    pthread_cond_broadcast(&x->slot_cv);
    if (k < 0) {
        pthread_mutex_unlock(&x->mu);
        orion_manager_release(x->owner->mgr, lease);
        orion__http_set(err, 503, "overloaded_error", "the server is shutting down");
        return ORION_ERR_BUSY;
    }
    x->slot_busy[k] = true;
    x->last_used = orion__now();
    orion_llm *stale = NULL;
    st = ORION_OK;
    if (k > 0) {
        if (x->slots[k] && x->slot_stale[k]) {
            stale = x->slots[k];
            x->slots[k] = NULL;
        }
        if (!x->slots[k]) st = slot_load(x, k, lease, &info0);
    }
    if (st != ORION_OK) {
        char why[200];
        snprintf(why, sizeof why, "%s", orion_last_error());
        x->slot_busy[k] = false;
        pthread_cond_broadcast(&x->slot_cv);
        pthread_mutex_unlock(&x->mu);
        orion_llm_free(stale);
        orion_manager_release(x->owner->mgr, lease);
        orion__http_set(err, 500, "server_error", "model '%.60s': slot %d failed to load: %.160s", x->id, k, why);
        return st;
    }
    *llm = k == 0 ? llm0 : x->slots[k];
    pthread_mutex_unlock(&x->mu);
    orion_llm_free(stale);
    *slot = k;
    *lease_out = lease;
    return ORION_OK;
}

void orion__model_llm_release(orion__model *x, int slot, orion_model_lease *lease) {
    orion_llm *stale = NULL;
    pthread_mutex_lock(&x->mu);
    if (slot >= 0 && slot < x->n_slots) {
        x->slot_busy[slot] = false;
        if (slot > 0 && x->slot_stale[slot]) {
            stale = x->slots[slot];
            x->slots[slot] = NULL;
            x->slot_stale[slot] = false;
        }
    }
    x->last_used = orion__now();
    pthread_cond_broadcast(&x->slot_cv);
    pthread_mutex_unlock(&x->mu);
    orion_llm_free(stale);
    /* last: the keep_alive applies once the slot is free */
    orion_manager_release(x->owner->mgr, lease);
}

void orion__models_on_unloaded(orion__models *m, const char *id) {
    if (!m || !id) return;
    orion__model *x = NULL;
    for (int i = 0; i < m->n && !x; i++) {
        if (strcmp(m->v[i]->id, id) == 0) x = m->v[i];
    }
    if (!x || !x->is_llm) return;
    orion_llm *drop[ORION__MAX_GEN_SLOTS];
    int n = 0;
    pthread_mutex_lock(&x->mu);
    for (int k = 1; k < x->n_slots; k++) {
        if (!x->slots[k]) continue;
        if (x->slot_busy[k]) {
            x->slot_stale[k] = true; /* freed at its release */
        } else {
            drop[n++] = x->slots[k];
            x->slots[k] = NULL;
        }
    }
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < n; i++) orion_llm_free(drop[i]);
    if (n) ORION_LOG_I("model '%s': %d extra slot%s freed with the model", id, n, n == 1 ? "" : "s");
}

void orion__slots_free(orion__model *x) {
    for (int k = 1; k < x->n_slots; k++) {
        orion_llm_free(x->slots[k]);
        x->slots[k] = NULL;
    }
}
