/*
 * embed_cache.c — the embedding cache (orion_cache_*): exact-text keys,
 * f16 vectors, bounded in bytes and entries, three eviction policies.
 *
 * Layout. Each entry is one allocation: the header below, then the
 * namespace bytes, the text bytes and the f16 vector (dim values). A chained
 * hash table (XXH3-64 of namespace and text; power-of-two buckets, doubled
 * when the load passes 1) finds entries; a lookup compares the stored hash,
 * namespace and text, so a collision is a miss, never a wrong vector. A
 * dense array of entry pointers gives O(1) random sampling for the score
 * policy.
 *
 * Policies.
 *  - LRU: one list; the tail goes first.
 *  - SCORE (the seed's): score = accesses / age in operations; an eviction
 *    samples 32 entries and removes the lowest score.
 *  - W-TinyLFU (Einziger, Friedman, Manes 2017; Caffeine's design): new
 *    entries enter a small LRU window (1% of the bounds). An entry pushed
 *    out of the window is a candidate for the main space, a segmented LRU
 *    (probation 20%, protected 80%); when the main space is full the
 *    candidate is admitted only if its estimated frequency beats that of
 *    the main space's victim (probation's tail). Frequencies come from a
 *    count-min sketch of 4 rows of 4-bit counters, fronted by a doorkeeper
 *    bloom filter (a key's first access sets a bit instead of a counter),
 *    and aged: after 10 x capacity accesses every counter is halved and the
 *    doorkeeper cleared, so old popularity fades. A hit in probation moves
 *    the entry to protected; protected's overflow drops back to probation.
 *
 * Every access (hit or miss) is recorded in the sketch; a put after a miss
 * is not counted again. One mutex guards everything; hits copy the vector
 * out under it (dim conversions of a few hundred halves: well under 1 µs).
 */
#include "core/core.h"
#include "core/fp16.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

enum { SEG_NONE = 0, SEG_WINDOW, SEG_PROBATION, SEG_PROTECTED, SEG_COUNT };

typedef struct entry entry;
struct entry {
    uint64_t hash;
    entry   *chain;        /* next in the bucket */
    entry   *prev, *next;  /* in its segment's list (head = most recent) */
    uint64_t born;         /* operation count at insertion (score policy) */
    uint32_t hits;         /* accesses since insertion, saturating */
    uint32_t slot;         /* index in cache->dense */
    uint32_t ns_len, text_len;
    int32_t  dim;
    uint8_t  seg;
    /* followed by ns bytes, text bytes, padding to 2, dim f16 values */
};

typedef struct seg_list {
    entry *head, *tail;
    size_t n, bytes;
} seg_list;

/* Count-min sketch with 4-bit counters (16 per u64) and a doorkeeper. */
typedef struct sketch {
    uint64_t *table;   /* width/16 words per row, 4 rows */
    uint64_t *door;    /* doorkeeper bits */
    size_t    width;   /* counters per row, a power of two */
    size_t    door_bits;
    uint64_t  additions, sample;  /* aging: halve after `sample` additions */
} sketch;

struct orion_cache {
    pthread_mutex_t     mu;
    orion_cache_policy  policy;
    size_t              max_bytes, max_entries;
    entry             **buckets;
    size_t              n_buckets;  /* power of two */
    entry             **dense;
    size_t              n, dense_cap;
    seg_list            seg[SEG_COUNT];
    size_t              bytes, bytes_f32;
    uint64_t            ops;
    uint64_t            rng;
    sketch              sk;
    uint64_t            hits, misses, inserts, evictions, rejections;
};

/* ---- helpers ---------------------------------------------------------------- */

static size_t entry_size(size_t ns_len, size_t text_len, int32_t dim) {
    size_t off = sizeof(entry) + ns_len + text_len;
    off = (off + 1) & ~(size_t)1;
    return off + 2 * (size_t)dim;
}

static char *entry_ns(entry *e) { return (char *)(e + 1); }
static char *entry_text(entry *e) { return (char *)(e + 1) + e->ns_len; }
static uint16_t *entry_vec(entry *e) {
    size_t off = sizeof(entry) + e->ns_len + e->text_len;
    off = (off + 1) & ~(size_t)1;
    return (uint16_t *)((char *)e + off);
}
static size_t entry_bytes(const entry *e) { return entry_size(e->ns_len, e->text_len, e->dim); }

static uint64_t key_hash(const char *ns, size_t ns_len, const char *text, size_t len) {
    /* The namespace's hash seeds the text's hash, so ("ab","c") and
     * ("a","bc") differ. */
    return XXH3_64bits_withSeed(text, len, XXH3_64bits(ns, ns_len));
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- sketch ----------------------------------------------------------------- */

static size_t next_pow2(size_t x) {
    size_t p = 1;
    while (p < x && p < ((size_t)1 << 40)) p <<= 1;
    return p;
}

static orion_status sketch_init(sketch *s, size_t capacity) {
    memset(s, 0, sizeof *s);
    if (capacity < 16) capacity = 16;
    if (capacity > ((size_t)1 << 24)) capacity = (size_t)1 << 24;
    s->width = next_pow2(capacity);
    if (s->width < 64) s->width = 64;
    s->door_bits = s->width * 4;
    s->sample = 10 * (uint64_t)capacity;
    s->table = orion__calloc(4 * s->width / 16, sizeof(uint64_t));
    s->door = orion__calloc(s->door_bits / 64, sizeof(uint64_t));
    if (!s->table || !s->door) {
        orion__free(s->table);
        orion__free(s->door);
        memset(s, 0, sizeof *s);
        return orion__fail(ORION_ERR_NOMEM, "cache: no memory for the frequency sketch");
    }
    return ORION_OK;
}

static void sketch_free(sketch *s) {
    orion__free(s->table);
    orion__free(s->door);
    memset(s, 0, sizeof *s);
}

static size_t sketch_index(const sketch *s, uint64_t h, int row) {
    static const uint64_t seeds[4] = {0xc3a5c85c97cb3127ull, 0xb492b66fbe98f273ull, 0x9ae16a3b2f90404full,
                                      0xcbf29ce484222325ull};
    uint64_t x = (h ^ seeds[row]) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 32;
    return (size_t)(x & (s->width - 1));
}

static unsigned counter_get(const sketch *s, int row, size_t i) {
    const uint64_t *w = s->table + (size_t)row * (s->width / 16) + i / 16;
    return (unsigned)((*w >> (4 * (i % 16))) & 0xf);
}

static bool door_test_set(sketch *s, uint64_t h, bool set) {
    bool all = true;
    for (int k = 0; k < 2; k++) {
        size_t b = (size_t)((k ? (h >> 32) | (h << 32) : h) * 0xff51afd7ed558ccdull >> 20) & (s->door_bits - 1);
        uint64_t m = 1ull << (b % 64);
        if (!(s->door[b / 64] & m)) {
            all = false;
            if (set) s->door[b / 64] |= m;
        }
    }
    return all;
}

static unsigned sketch_estimate(const sketch *s, uint64_t h) {
    unsigned m = 15;
    for (int r = 0; r < 4; r++) {
        unsigned c = counter_get(s, r, sketch_index(s, h, r));
        if (c < m) m = c;
    }
    return m + (door_test_set((sketch *)s, h, false) ? 1u : 0u);
}

static void sketch_age(sketch *s) {
    size_t words = 4 * s->width / 16;
    for (size_t i = 0; i < words; i++) s->table[i] = (s->table[i] >> 1) & 0x7777777777777777ull;
    memset(s->door, 0, s->door_bits / 8);
    s->additions /= 2;
}

static void sketch_add(sketch *s, uint64_t h) {
    if (!s->table) return;
    if (!door_test_set(s, h, true)) {
        /* first sighting since the last reset: only the doorkeeper learns it */
    } else {
        /* conservative update: raise only the counters at the minimum */
        size_t idx[4];
        unsigned m = 15;
        for (int r = 0; r < 4; r++) {
            idx[r] = sketch_index(s, h, r);
            unsigned c = counter_get(s, r, idx[r]);
            if (c < m) m = c;
        }
        if (m < 15) {
            for (int r = 0; r < 4; r++) {
                if (counter_get(s, r, idx[r]) == m) {
                    uint64_t *w = s->table + (size_t)r * (s->width / 16) + idx[r] / 16;
                    *w += 1ull << (4 * (idx[r] % 16));
                }
            }
        }
    }
    if (++s->additions >= s->sample) sketch_age(s);
}

/* ---- lists ------------------------------------------------------------------ */

static void list_unlink(orion_cache *c, entry *e) {
    seg_list *l = &c->seg[e->seg];
    if (e->prev) e->prev->next = e->next; else l->head = e->next;
    if (e->next) e->next->prev = e->prev; else l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
    l->bytes -= entry_bytes(e);
    e->seg = SEG_NONE;
}

static void list_push_head(orion_cache *c, entry *e, int seg) {
    seg_list *l = &c->seg[seg];
    e->seg = (uint8_t)seg;
    e->prev = NULL;
    e->next = l->head;
    if (l->head) l->head->prev = e; else l->tail = e;
    l->head = e;
    l->n++;
    l->bytes += entry_bytes(e);
}

static void list_move_head(orion_cache *c, entry *e, int seg) {
    list_unlink(c, e);
    list_push_head(c, e, seg);
}

/* ---- table ------------------------------------------------------------------ */

static entry **bucket_of(orion_cache *c, uint64_t h) { return &c->buckets[h & (c->n_buckets - 1)]; }

static entry *table_find(orion_cache *c, uint64_t h, const char *ns, size_t ns_len, const char *text, size_t len) {
    for (entry *e = *bucket_of(c, h); e; e = e->chain) {
        if (e->hash == h && e->ns_len == ns_len && e->text_len == len && memcmp(entry_ns(e), ns, ns_len) == 0 &&
            memcmp(entry_text(e), text, len) == 0)
            return e;
    }
    return NULL;
}

static void table_grow(orion_cache *c) {
    size_t nb = c->n_buckets * 2;
    entry **b = orion__calloc(nb, sizeof *b);
    if (!b) return; /* stay at the higher load */
    for (size_t i = 0; i < c->n_buckets; i++) {
        entry *e = c->buckets[i];
        while (e) {
            entry *nx = e->chain;
            e->chain = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = nx;
        }
    }
    orion__free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

/* Removes e from everything and frees it. */
static void entry_remove(orion_cache *c, entry *e) {
    entry **pp = bucket_of(c, e->hash);
    while (*pp != e) pp = &(*pp)->chain;
    *pp = e->chain;
    if (e->seg != SEG_NONE) list_unlink(c, e);
    c->dense[e->slot] = c->dense[c->n - 1];
    c->dense[e->slot]->slot = e->slot;
    c->n--;
    c->bytes -= entry_bytes(e);
    c->bytes_f32 -= entry_bytes(e) + 2 * (size_t)e->dim;
    orion__free(e);
}

static void evict(orion_cache *c, entry *e) {
    entry_remove(c, e);
    c->evictions++;
}

/* ---- policies --------------------------------------------------------------- */

static bool over(const orion_cache *c, size_t n, size_t bytes, double frac) {
    if (c->max_entries && (double)n > frac * (double)c->max_entries) return true;
    if (c->max_bytes && (double)bytes > frac * (double)c->max_bytes) return true;
    return false;
}

static double score_of(const orion_cache *c, const entry *e) {
    double age = (double)(c->ops - e->born) + 1.0;
    return ((double)e->hits + 1.0) / age;
}

static entry *score_victim(orion_cache *c, const entry *keep) {
    entry *best = NULL;
    double bs = 0;
    int samples = c->n <= 32 ? (int)c->n : 32;
    for (int i = 0; i < samples; i++) {
        entry *e = c->n <= 32 ? c->dense[i] : c->dense[rng_next(&c->rng) % c->n];
        if (e == keep) continue;
        double s = score_of(c, e);
        if (!best || s < bs) {
            best = e;
            bs = s;
        }
    }
    return best;
}

#define WINDOW_FRAC    0.01
#define PROTECTED_FRAC 0.80 /* of the main space */

/* Makes room after the insertion of `fresh` (NULL: just enforce bounds). */
static void enforce(orion_cache *c, entry *fresh) {
    if (c->policy == ORION_CACHE_LRU) {
        while (c->n > 0 && over(c, c->n, c->bytes, 1.0)) evict(c, c->seg[SEG_WINDOW].tail);
        return;
    }
    if (c->policy == ORION_CACHE_SCORE) {
        while (c->n > 0 && over(c, c->n, c->bytes, 1.0)) {
            entry *v = score_victim(c, fresh);
            if (!v) v = fresh;
            if (v == fresh) fresh = NULL;
            evict(c, v);
        }
        return;
    }
    /* W-TinyLFU: drain the window's overflow into the main space. The window
     * always keeps its newest entry. */
    seg_list *w = &c->seg[SEG_WINDOW], *pr = &c->seg[SEG_PROBATION], *pt = &c->seg[SEG_PROTECTED];
    while (w->n > 1 && over(c, w->n, w->bytes, WINDOW_FRAC)) {
        entry *cand = w->tail;
        size_t cb = entry_bytes(cand);
        size_t main_n = pr->n + pt->n, main_b = pr->bytes + pt->bytes;
        bool admitted = true;
        while (over(c, main_n + 1, main_b + cb, 1.0 - WINDOW_FRAC) && main_n > 0) {
            entry *victim = pr->tail ? pr->tail : pt->tail;
            unsigned fc = sketch_estimate(&c->sk, cand->hash), fv = sketch_estimate(&c->sk, victim->hash);
            if (fc > fv) {
                main_n--;
                main_b -= entry_bytes(victim);
                evict(c, victim);
            } else {
                admitted = false;
                break;
            }
        }
        if (admitted) {
            list_move_head(c, cand, SEG_PROBATION);
        } else {
            c->rejections++;
            evict(c, cand);
        }
    }
    /* total bounds (an entry larger than the space, or a shrink) */
    while (c->n > 0 && over(c, c->n, c->bytes, 1.0)) {
        entry *v = pr->tail ? pr->tail : pt->tail ? pt->tail : w->tail;
        evict(c, v);
    }
}

/* Protected's overflow goes back to probation's head. */
static void protected_balance(orion_cache *c) {
    seg_list *pt = &c->seg[SEG_PROTECTED];
    double frac = (1.0 - WINDOW_FRAC) * PROTECTED_FRAC;
    while (pt->n > 1 && over(c, pt->n, pt->bytes, frac)) list_move_head(c, pt->tail, SEG_PROBATION);
}

static void on_hit(orion_cache *c, entry *e) {
    if (e->hits < UINT32_MAX) e->hits++;
    switch (c->policy) {
    case ORION_CACHE_LRU:
        list_move_head(c, e, SEG_WINDOW);
        break;
    case ORION_CACHE_SCORE:
        break;
    case ORION_CACHE_WTINYLFU:
        if (e->seg == SEG_WINDOW) {
            list_move_head(c, e, SEG_WINDOW);
        } else {
            list_move_head(c, e, SEG_PROTECTED);
            protected_balance(c);
        }
        break;
    }
}

/* ---- public API ------------------------------------------------------------- */

orion_cache_params orion_cache_default_params(void) {
    orion_cache_params p;
    memset(&p, 0, sizeof p);
    p.max_bytes = (size_t)256 << 20;
    p.max_entries = (size_t)1 << 20;
    p.policy = ORION_CACHE_WTINYLFU;
    return p;
}

const char *orion_cache_policy_name(orion_cache_policy policy) {
    switch (policy) {
    case ORION_CACHE_WTINYLFU: return "wtinylfu";
    case ORION_CACHE_LRU: return "lru";
    case ORION_CACHE_SCORE: return "score";
    }
    return "?";
}

orion_status orion_cache_policy_from_name(const char *name, orion_cache_policy *out) {
    static const orion_cache_policy all[] = {ORION_CACHE_WTINYLFU, ORION_CACHE_LRU, ORION_CACHE_SCORE};
    for (size_t i = 0; name && i < ORION_ARRAY_LEN(all); i++) {
        if (strcmp(name, orion_cache_policy_name(all[i])) == 0) {
            *out = all[i];
            return ORION_OK;
        }
    }
    return orion__fail(ORION_ERR_INVALID_ARG, "cache policy '%s': expected wtinylfu, lru or score",
                       name ? name : "(null)");
}

orion_status orion_cache_init(const orion_cache_params *params, orion_cache **out) {
    orion_cache_params p = params ? *params : orion_cache_default_params();
    if (!out) return orion__fail(ORION_ERR_INVALID_ARG, "orion_cache_init: out is NULL");
    *out = NULL;
    if (p.policy != ORION_CACHE_WTINYLFU && p.policy != ORION_CACHE_LRU && p.policy != ORION_CACHE_SCORE)
        return orion__fail(ORION_ERR_INVALID_ARG, "cache: unknown policy %d", (int)p.policy);
    orion_cache *c = orion__calloc(1, sizeof *c);
    if (!c) return orion__fail(ORION_ERR_NOMEM, "cache: no memory");
    c->policy = p.policy;
    c->max_bytes = p.max_bytes;
    c->max_entries = p.max_entries;
    c->rng = 0x5eed;
    c->n_buckets = 1024;
    c->buckets = orion__calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) goto fail;
    if (c->policy == ORION_CACHE_WTINYLFU) {
        size_t cap = c->max_entries ? c->max_entries : (c->max_bytes ? c->max_bytes / 512 : (size_t)1 << 20);
        if (c->max_bytes && c->max_bytes / 512 < cap) cap = c->max_bytes / 512;
        if (sketch_init(&c->sk, cap) != ORION_OK) goto fail;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) goto fail;
    *out = c;
    return ORION_OK;
fail:
    sketch_free(&c->sk);
    orion__free(c->buckets);
    orion__free(c);
    return orion__fail(ORION_ERR_NOMEM, "cache: no memory");
}

void orion_cache_free(orion_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) orion__free(c->dense[i]);
    orion__free(c->dense);
    orion__free(c->buckets);
    sketch_free(&c->sk);
    pthread_mutex_destroy(&c->mu);
    orion__free(c);
}

bool orion_cache_get(orion_cache *c, const char *ns, const char *text, size_t len, float *out, int32_t dim) {
    if (!c || !ns || (!text && len) || !out || dim <= 0) return false;
    if (!text) text = "";
    size_t ns_len = strlen(ns);
    uint64_t h = key_hash(ns, ns_len, text, len);
    pthread_mutex_lock(&c->mu);
    c->ops++;
    if (c->policy == ORION_CACHE_WTINYLFU) sketch_add(&c->sk, h);
    entry *e = table_find(c, h, ns, ns_len, text, len);
    bool hit = e && e->dim == dim;
    if (hit) {
        on_hit(c, e);
        orion__kernels()->fp16_to_f32(entry_vec(e), out, dim);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Inserts a ready entry (hash, keys, vector filled). Under the lock. */
static void insert_locked(orion_cache *c, entry *e) {
    entry *old = table_find(c, e->hash, entry_ns(e), e->ns_len, entry_text(e), e->text_len);
    if (old) {
        e->hits = old->hits;
        entry_remove(c, old);
    }
    if (c->n == c->dense_cap) {
        size_t nc = c->dense_cap ? 2 * c->dense_cap : 1024;
        entry **d = orion__realloc(c->dense, nc * sizeof *d);
        if (!d) {
            orion__free(e);
            return;
        }
        c->dense = d;
        c->dense_cap = nc;
    }
    if (c->n >= c->n_buckets) table_grow(c);
    e->born = c->ops;
    e->slot = (uint32_t)c->n;
    c->dense[c->n++] = e;
    entry **b = bucket_of(c, e->hash);
    e->chain = *b;
    *b = e;
    c->bytes += entry_bytes(e);
    c->bytes_f32 += entry_bytes(e) + 2 * (size_t)e->dim;
    list_push_head(c, e, SEG_WINDOW);
    c->inserts++;
    enforce(c, e);
}

static entry *entry_new(const char *ns, size_t ns_len, const char *text, size_t len, int32_t dim) {
    entry *e = orion__malloc(entry_size(ns_len, len, dim));
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->hash = key_hash(ns, ns_len, text, len);
    e->ns_len = (uint32_t)ns_len;
    e->text_len = (uint32_t)len;
    e->dim = dim;
    memcpy(entry_ns(e), ns, ns_len);
    if (len) memcpy(entry_text(e), text, len);
    return e;
}

orion_status orion_cache_put(orion_cache *c, const char *ns, const char *text, size_t len, const float *vec,
                             int32_t dim) {
    if (!c || !ns || (!text && len) || !vec || dim <= 0)
        return orion__fail(ORION_ERR_INVALID_ARG, "orion_cache_put: bad arguments");
    if (!text) text = "";
    size_t ns_len = strlen(ns);
    if (ns_len > 255 || len > UINT32_MAX / 2 || dim > (1 << 24))
        return orion__fail(ORION_ERR_RANGE, "orion_cache_put: namespace (max 255 bytes), text or vector too large");
    /* Build the entry outside the lock: hashing and f16 conversion. */
    entry *e = entry_new(ns, ns_len, text, len, dim);
    if (!e) return orion__fail(ORION_ERR_NOMEM, "cache: no memory for an entry of %zu bytes",
                               entry_size(ns_len, len, dim));
    orion__kernels()->f32_to_fp16(vec, entry_vec(e), dim);
    pthread_mutex_lock(&c->mu);
    insert_locked(c, e);
    pthread_mutex_unlock(&c->mu);
    return ORION_OK;
}

void orion_cache_shrink(orion_cache *c, size_t max_bytes, size_t max_entries) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    if (max_bytes) c->max_bytes = max_bytes;
    if (max_entries) c->max_entries = max_entries;
    if (c->policy == ORION_CACHE_WTINYLFU) {
        enforce(c, NULL);
        protected_balance(c);
    } else {
        enforce(c, NULL);
    }
    pthread_mutex_unlock(&c->mu);
}

void orion_cache_clear(orion_cache *c, const char *ns) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    size_t ns_len = ns ? strlen(ns) : 0;
    for (size_t i = c->n; i-- > 0;) {
        entry *e = c->dense[i];
        if (!ns || (e->ns_len == ns_len && memcmp(entry_ns(e), ns, ns_len) == 0)) entry_remove(c, e);
    }
    pthread_mutex_unlock(&c->mu);
}

void orion_cache_get_stats(orion_cache *c, orion_cache_stats *out) {
    memset(out, 0, sizeof *out);
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    out->hits = c->hits;
    out->misses = c->misses;
    out->inserts = c->inserts;
    out->evictions = c->evictions;
    out->rejections = c->rejections;
    out->entries = c->n;
    out->bytes = c->bytes;
    out->bytes_f32 = c->bytes_f32;
    out->max_bytes = c->max_bytes;
    out->max_entries = c->max_entries;
    pthread_mutex_unlock(&c->mu);
}

/* ---- snapshots -------------------------------------------------------------
 * File: "ORNCACH1" | u64 raw size | u64 XXH64 of the raw bytes | zstd frame.
 * Raw: u64 n, then per entry: u32 ns_len, u32 text_len, i32 dim, u32 hits,
 * ns, text, dim little-endian f16 values. Entries are written coldest first
 * so that loading them in order leaves the hottest most recent. */

#define SNAP_MAGIC "ORNCACH1"
#define SNAP_MAX_RAW ((uint64_t)4 << 30)

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t snap_append_list(orion_cache *c, const seg_list *l, uint8_t *raw, size_t off) {
    ORION_UNUSED(c);
    for (entry *e = l->tail; e; e = e->prev) {
        put_u32(raw + off, e->ns_len);
        put_u32(raw + off + 4, e->text_len);
        put_u32(raw + off + 8, (uint32_t)e->dim);
        put_u32(raw + off + 12, e->hits);
        off += 16;
        memcpy(raw + off, entry_ns(e), e->ns_len);
        off += e->ns_len;
        memcpy(raw + off, entry_text(e), e->text_len);
        off += e->text_len;
        const uint16_t *v = entry_vec(e);
        for (int32_t i = 0; i < e->dim; i++) {
            raw[off++] = (uint8_t)(v[i] & 0xff);
            raw[off++] = (uint8_t)(v[i] >> 8);
        }
    }
    return off;
}

orion_status orion_cache_save(orion_cache *c, const char *path) {
    if (!c || !path) return orion__fail(ORION_ERR_INVALID_ARG, "orion_cache_save: bad arguments");
    orion_status st = ORION_OK;
    uint8_t *raw = NULL, *comp = NULL;
    FILE *f = NULL;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return orion__fail(ORION_ERR_INVALID_ARG, "%s: path too long", path);
    pthread_mutex_lock(&c->mu);
    size_t raw_size = 8;
    for (size_t i = 0; i < c->n; i++) {
        entry *e = c->dense[i];
        raw_size += 16 + e->ns_len + e->text_len + 2 * (size_t)e->dim;
    }
    raw = orion__malloc(raw_size);
    if (!raw) {
        pthread_mutex_unlock(&c->mu);
        return orion__fail(ORION_ERR_NOMEM, "%s: no memory for a %zu-byte snapshot", path, raw_size);
    }
    put_u64(raw, c->n);
    size_t off = 8;
    /* coldest first: probation, window, protected (LRU order within each) */
    off = snap_append_list(c, &c->seg[SEG_PROBATION], raw, off);
    off = snap_append_list(c, &c->seg[SEG_WINDOW], raw, off);
    off = snap_append_list(c, &c->seg[SEG_PROTECTED], raw, off);
    pthread_mutex_unlock(&c->mu);
    size_t bound = ZSTD_compressBound(off);
    comp = orion__malloc(24 + bound);
    if (!comp) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: no memory to compress the snapshot", path);
        goto done;
    }
    size_t zn = ZSTD_compress(comp + 24, bound, raw, off, 3);
    if (ZSTD_isError(zn)) {
        st = orion__fail(ORION_ERR_INTERNAL, "%s: zstd: %s", path, ZSTD_getErrorName(zn));
        goto done;
    }
    memcpy(comp, SNAP_MAGIC, 8);
    put_u64(comp + 8, off);
    put_u64(comp + 16, XXH64(raw, off, 0));
    f = fopen(tmp, "wb");
    if (!f) {
        st = orion__fail(ORION_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (fwrite(comp, 1, 24 + zn, f) != 24 + zn || fflush(f) != 0) {
        st = orion__fail(ORION_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (fclose(f) != 0) {
        f = NULL;
        st = orion__fail(ORION_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto done;
    }
    f = NULL;
    if (rename(tmp, path) != 0) st = orion__fail(ORION_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
done:
    if (f) fclose(f);
    if (st != ORION_OK) unlink(tmp);
    orion__free(raw);
    orion__free(comp);
    return st;
}

orion_status orion_cache_load(orion_cache *c, const char *path, size_t *n_loaded) {
    if (n_loaded) *n_loaded = 0;
    if (!c || !path) return orion__fail(ORION_ERR_INVALID_ARG, "orion_cache_load: bad arguments");
    if (access(path, F_OK) != 0) return orion__fail(ORION_ERR_NOT_FOUND, "%s: no snapshot", path);
    const uint8_t *data = NULL;
    size_t size = 0;
    orion_status st = orion__file_map(path, &data, &size);
    if (st != ORION_OK) return st;
    uint8_t *raw = NULL;
    entry **batch = NULL;
    uint64_t n = 0, built = 0;
    if (size < 24 || memcmp(data, SNAP_MAGIC, 8) != 0) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: not a cache snapshot (bad magic or too short)", path);
        goto done;
    }
    uint64_t raw_size = get_u64(data + 8), sum = get_u64(data + 16);
    unsigned long long fcs = ZSTD_getFrameContentSize(data + 24, size - 24);
    if (raw_size < 8 || raw_size > SNAP_MAX_RAW || fcs != raw_size) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: snapshot sizes disagree (header %llu, frame %llu)", path,
                         (unsigned long long)raw_size, fcs);
        goto done;
    }
    raw = orion__malloc((size_t)raw_size);
    if (!raw) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: no memory for %llu bytes", path, (unsigned long long)raw_size);
        goto done;
    }
    size_t got = ZSTD_decompress(raw, (size_t)raw_size, data + 24, size - 24);
    if (ZSTD_isError(got) || got != raw_size) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: damaged snapshot: %s", path,
                         ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
        goto done;
    }
    if (XXH64(raw, got, 0) != sum) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: damaged snapshot: checksum mismatch", path);
        goto done;
    }
    /* Build every entry first; the cache changes only if all parse. */
    n = get_u64(raw);
    if (n > (raw_size - 8) / 16) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: entry count %llu too large", path, (unsigned long long)n);
        goto done;
    }
    batch = orion__calloc(n ? n : 1, sizeof *batch);
    if (!batch) {
        st = orion__fail(ORION_ERR_NOMEM, "%s: no memory", path);
        goto done;
    }
    size_t off = 8;
    for (; built < n; built++) {
        if (raw_size - off < 16) break;
        uint32_t ns_len = get_u32(raw + off), text_len = get_u32(raw + off + 4);
        int32_t dim = (int32_t)get_u32(raw + off + 8);
        uint32_t hits = get_u32(raw + off + 12);
        off += 16;
        uint64_t need = (uint64_t)ns_len + text_len + 2 * (uint64_t)(uint32_t)dim;
        if (dim <= 0 || dim > (1 << 24) || need > raw_size - off) break;
        char nsbuf[256];
        if (ns_len >= sizeof nsbuf || memchr(raw + off, 0, ns_len)) break;
        memcpy(nsbuf, raw + off, ns_len);
        entry *e = entry_new(nsbuf, ns_len, (const char *)raw + off + ns_len, text_len, dim);
        if (!e) {
            st = orion__fail(ORION_ERR_NOMEM, "%s: no memory", path);
            goto done;
        }
        e->hits = hits;
        off += ns_len + text_len;
        uint16_t *v = entry_vec(e);
        for (int32_t i = 0; i < dim; i++, off += 2) v[i] = (uint16_t)(raw[off] | (raw[off + 1] << 8));
        batch[built] = e;
    }
    if (built != n || off != raw_size) {
        st = orion__fail(ORION_ERR_FORMAT, "%s: damaged snapshot: entry %llu does not parse", path,
                         (unsigned long long)built);
        goto done;
    }
    pthread_mutex_lock(&c->mu);
    for (uint64_t i = 0; i < n; i++) {
        insert_locked(c, batch[i]);
        batch[i] = NULL;
    }
    c->inserts -= n; /* loading is not inserting */
    pthread_mutex_unlock(&c->mu);
    if (n_loaded) *n_loaded = (size_t)n;
done:
    if (batch) {
        for (uint64_t i = 0; i < built; i++) orion__free(batch[i]);
        orion__free(batch);
    }
    orion__free(raw);
    orion__file_unmap(data, size);
    return st;
}
