/*
 * store_check.h - what test_store.c and test_store_crash.c share: the
 * model (a sorted array of records), the store under test with its
 * observer, the checks of every way of reading it against the model, and
 * the generator of version-shaped batches (what the engine writes).
 */
#ifndef TKV_TEST_STORE_CHECK_H
#define TKV_TEST_STORE_CHECK_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/rng.h"
#include "../common/tmpdir.h"
#include "keycodec.h"
#include "store.h"
#ifdef TKV_STORE_MEMORY
#include "store_mem.h"
#endif

/* The model holds the version-shaped tests' records too: encoded keys of
 * up to 15 bytes, values up to 100, a few thousand records. */
#define MAXK 32
#define MAXV 100
#define MAXN 4096
#define SHORTK 5  /* rand_key's keys */
#define SHORTV 24 /* the first test's values */

typedef struct rec {
    uint8_t k[MAXK];
    size_t kn;
    uint8_t v[MAXV];
    size_t vn;
} rec;

/* The model: records sorted by key, compared as unsigned bytes. */
typedef struct model {
    rec r[MAXN];
    size_t n;
} model;

static inline int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (an > bn) - (an < bn);
}

/* Index of the first record with key >= k. */
static inline size_t m_lower(const model *m, const void *k, size_t kn)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(m->r[mid].k, m->r[mid].kn, k, kn) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline void m_put(model *m, const void *k, size_t kn, const void *v, size_t vn)
{
    size_t i = m_lower(m, k, kn);
    if (i == m->n || key_cmp(m->r[i].k, m->r[i].kn, k, kn) != 0) {
        cr_assert_lt(m->n, MAXN);
        memmove(&m->r[i + 1], &m->r[i], (m->n - i) * sizeof m->r[0]);
        m->n++;
        memcpy(m->r[i].k, k, kn);
        m->r[i].kn = kn;
    }
    memcpy(m->r[i].v, v, vn);
    m->r[i].vn = vn;
}

static inline void m_del(model *m, const void *k, size_t kn)
{
    size_t i = m_lower(m, k, kn);
    if (i < m->n && key_cmp(m->r[i].k, m->r[i].kn, k, kn) == 0) {
        memmove(&m->r[i], &m->r[i + 1], (m->n - i - 1) * sizeof m->r[0]);
        m->n--;
    }
}

/* A drop: every version encoding under prefix p goes. */
static inline void m_drop(model *m, const void *p, size_t pn)
{
    size_t i = m_lower(m, p, pn), j = i;
    while (j < m->n && m->r[j].kn == pn + 8 && memcmp(m->r[j].k, p, pn) == 0)
        j++;
    /* p itself (a plain key) sorts before its versions and stays. */
    if (i < m->n && m->r[i].kn == pn && memcmp(m->r[i].k, p, pn) == 0 && j == i) {
        for (j = ++i; j < m->n && m->r[j].kn == pn + 8 && memcmp(m->r[j].k, p, pn) == 0;)
            j++;
    }
    memmove(&m->r[i], &m->r[j], (m->n - j) * sizeof m->r[0]);
    m->n -= j - i;
}

/* A copy of the records in use only: the model is big. */
static inline void m_copy(model *dst, const model *src)
{
    memcpy(dst->r, src->r, src->n * sizeof src->r[0]);
    dst->n = src->n;
}

/* Whether two models hold the same records (bytes past a record's key and
 * value are left over from others: not compared). */
static inline bool m_equal(const model *a, const model *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const rec *x = &a->r[i], *y = &b->r[i];
        if (key_cmp(x->k, x->kn, y->k, y->kn) != 0 || key_cmp(x->v, x->vn, y->v, y->vn) != 0)
            return false;
    }
    return true;
}

/* Replaying a batch onto a model: the observer's records, or a staged op. */
static inline void replay_put(void *ctx, const void *k, size_t kn, const void *v, size_t vn)
{
    m_put(ctx, k, kn, v, vn);
}

static inline void replay_del(void *ctx, const void *k, size_t kn) { m_del(ctx, k, kn); }
static inline void replay_drop(void *ctx, const void *p, size_t pn) { m_drop(ctx, p, pn); }

/* ---- the store under test --------------------------------------------------- */

static tkv_store *s;
static char *dir;
static model *live, *replica;
static size_t observed_batches, observed_records;
static bool observed_sync;

static inline void observe(void *ctx, const tkv_store_batch *b, bool sync)
{
    cr_assert_eq(ctx, &observed_batches, "the observer gets its own context");
    observed_batches++;
    observed_records += tkv_store_batch_size(b);
    observed_sync = sync;
    tkv_store_batch_iterate(b, replica, replay_put, replay_del, replay_drop);
}

/* The write buffer of the tests that want it flushed every few batches
 * (store.c keeps its own; the memory store has none and ignores it). */
#define SMALL_WB 4096

static size_t wb; /* the open store's write_buffer; 0: the default */

static inline tkv_store_opts store_opts(bool create)
{
    return (tkv_store_opts){.dir = dir, .write_buffer = wb, .create = create};
}

static inline void open_store(void)
{
    char err[256];
    dir = tmpdir_make("store");
    tkv_store_opts o = store_opts(true);
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    live = calloc(1, sizeof *live);
    replica = calloc(1, sizeof *replica);
    observed_batches = observed_records = 0;
    tkv_store_set_observer(s, observe, &observed_batches);
}

static inline void open_small_store(void)
{
    wb = SMALL_WB;
    open_store();
}

/* Idempotent: a test that skips calls it itself (Criterion runs no .fini
 * after cr_skip_test). */
static inline void close_store(void)
{
    tkv_store_close(s);
    tmpdir_remove(dir);
    free(live);
    free(replica);
    s = NULL;
    dir = NULL;
    live = replica = NULL;
}

static inline size_t rand_key(test_rng *r, uint8_t *k)
{
    static const uint8_t alpha[] = {0x00, 'a', 'b', 0xff};
    size_t n = test_rng_below(r, SHORTK + 1);
    for (size_t i = 0; i < n; i++)
        k[i] = alpha[test_rng_below(r, sizeof alpha)];
    return n;
}

/* Every record, walking forward from the start (or backward from the end),
 * is the model's, in order. */
static inline void check_walk(tkv_store_iter *it, const model *m, bool forward)
{
    if (forward)
        tkv_store_iter_seek_first(it);
    else
        tkv_store_iter_seek_last(it);
    for (size_t j = 0; j < m->n; j++) {
        const rec *want = &m->r[forward ? j : m->n - 1 - j];
        cr_assert(tkv_store_iter_valid(it), "record %zu of %zu missing", j, m->n);
        size_t kn, vn;
        const uint8_t *k = tkv_store_iter_key(it, &kn);
        const uint8_t *v = tkv_store_iter_value(it, &vn);
        cr_assert_eq(key_cmp(k, kn, want->k, want->kn), 0, "key %zu differs", j);
        cr_assert_eq(vn, want->vn);
        cr_assert(vn == 0 || memcmp(v, want->v, vn) == 0, "value %zu differs", j);
        if (forward)
            tkv_store_iter_next(it);
        else
            tkv_store_iter_prev(it);
    }
    cr_assert_not(tkv_store_iter_valid(it), "the store has more records than the model");
    cr_assert_eq(tkv_store_iter_status(it, NULL, 0), 0);
}

/* A seek lands on the model's lower bound; a step back from there lands on
 * the record before it. */
static inline void check_seek_at(tkv_store_iter *it, const model *m, const uint8_t *k, size_t kn)
{
    size_t i = m_lower(m, k, kn);
    tkv_store_iter_seek(it, k, kn);
    cr_assert_eq(tkv_store_iter_valid(it), i < m->n);
    if (i == m->n)
        return;
    size_t gn;
    const uint8_t *g = tkv_store_iter_key(it, &gn);
    cr_assert_eq(key_cmp(g, gn, m->r[i].k, m->r[i].kn), 0);
    tkv_store_iter_prev(it);
    cr_assert_eq(tkv_store_iter_valid(it), i > 0);
    if (i > 0) {
        g = tkv_store_iter_key(it, &gn);
        cr_assert_eq(key_cmp(g, gn, m->r[i - 1].k, m->r[i - 1].kn), 0);
    }
}

/* tkv_store_get agrees with the model for a random key (present or not). */
static inline void check_get_at(const tkv_store_snapshot *snap, const model *m, const uint8_t *k,
                                size_t kn)
{
    size_t i = m_lower(m, k, kn);
    bool present = i < m->n && key_cmp(m->r[i].k, m->r[i].kn, k, kn) == 0;
    char *v, err[256];
    size_t vn;
    int rc = tkv_store_get(s, snap, k, kn, &v, &vn, err, sizeof err);
    cr_assert_eq(rc, present ? 1 : 0, "%s", rc < 0 ? err : "");
    if (present) {
        cr_assert_eq(vn, m->r[i].vn);
        cr_assert(vn == 0 || memcmp(v, m->r[i].v, vn) == 0);
    } else {
        cr_assert_null(v);
    }
    tkv_store_free(v);
}

static inline void check_seek(tkv_store_iter *it, const model *m, test_rng *r)
{
    uint8_t k[MAXK];
    size_t kn = rand_key(r, k);
    check_seek_at(it, m, k, kn);
}

static inline void check_get(const tkv_store_snapshot *snap, const model *m, test_rng *r)
{
    uint8_t k[MAXK];
    size_t kn = rand_key(r, k);
    check_get_at(snap, m, k, kn);
}

static inline void check_all(const tkv_store_snapshot *snap, const model *m, test_rng *r)
{
    tkv_store_iter *it = tkv_store_iter_new(s, snap);
    cr_assert_not_null(it);
    check_walk(it, m, true);
    check_walk(it, m, false);
    for (int j = 0; j < 8; j++) {
        check_seek(it, m, r);
        check_get(snap, m, r);
    }
    tkv_store_iter_free(it);
}


/* ---- version-shaped records and the write buffer ----------------------------
 *
 * store.c keeps written batches in its own log and a memory table (the
 * write buffer) and moves them to LevelDB in the background, storing the
 * versions of one key as chunks there. These tests write what the engine
 * writes - versions of a few keys at many timestamps (tkv_kc_encode),
 * metadata, server state and keys that only look like versions - with a
 * write buffer small enough to be flushed every few batches, and check
 * every read against the model across flushes, reopens, crashes and torn
 * log tails. Against the memory store (no write buffer, nothing outlives
 * the process) they check the same contract, minus the crash. */

/* User keys: the empty key, 0x00 and 0xff bytes, and keys that are
 * prefixes of others ("a" of "a\0" and "ab"), where escape() and the
 * 0x00 0x01 terminator decide the order. */
typedef struct bytes {
    const char *p;
    size_t n;
} bytes;

static const bytes ukeys[] = {
    {"", 0},      {"\0", 1}, {"a", 1},    {"a\0", 2},
    {"a\0\1", 3}, {"ab", 2}, {"\xff", 1}, {"\xff\0\xff", 3},
};
#define NUKEYS (sizeof ukeys / sizeof ukeys[0])

/* Keys stored as themselves: server state ('m'), and keys that share the
 * versions' leading byte without being versions: a bare 'v', a version
 * prefix alone, a prefix with another terminator, and keys just around
 * the 'v' range. (A longer key starting with a version prefix is not
 * allowed: store.h.) */
static const bytes okeys[] = {
    {"", 0},  {"m", 1},      {"mseq", 4},   {"m\0", 2},   {"m\xff\xff", 3},
    {"v", 1}, {"va\0\1", 4}, {"va\0\2", 4}, {"u\xff", 2}, {"w", 1},
};
#define NOKEYS (sizeof okeys / sizeof okeys[0])

/* The model's records whose keys start with user key ki's version prefix:
 * [*lo, *hi). */
static inline size_t m_versions(const model *m, size_t ki, uint8_t *p, size_t *lo, size_t *hi)
{
    size_t pn = tkv_kc_prefix(p, (const uint8_t *)ukeys[ki].p, ukeys[ki].n);
    *lo = m_lower(m, p, pn);
    p[pn - 1]++; /* 00 01 -> 00 02: just past every key with the prefix */
    *hi = m_lower(m, p, pn);
    p[pn - 1]--;
    return pn;
}

/* The timestamp of a random version of key ki in the model, if any. */
static inline bool some_version(test_rng *r, const model *m, size_t ki, uint64_t *ts)
{
    uint8_t p[MAXK];
    size_t lo, hi, pn = m_versions(m, ki, p, &lo, &hi);
    if (lo == hi)
        return false;
    const rec *x = &m->r[lo + test_rng_below(r, hi - lo)];
    return tkv_kc_match(x->k, x->kn, p, pn, ts);
}

/* A timestamp for a write or a probe of key ki: the ends of the range,
 * anywhere, an existing version (an overwrite), next to or between
 * existing ones (a late write into the past), or the clock's next tick. */
static inline uint64_t pick_ts(test_rng *r, const model *m, size_t ki, uint64_t *clock)
{
    uint64_t t, u;
    switch (test_rng_below(r, 10)) {
    case 0: return 0;
    case 1: return UINT64_MAX;
    case 2: return test_rng_next(r);
    case 3:
    case 4:
        if (some_version(r, m, ki, &t))
            return t;
        break;
    case 5:
        if (some_version(r, m, ki, &t))
            return test_rng_below(r, 2) ? t + 1 : t - 1; /* 0 - 1 wraps: fine */
        break;
    case 6:
        if (some_version(r, m, ki, &t) && some_version(r, m, ki, &u))
            return t / 2 + u / 2;
        break;
    default: break;
    }
    *clock += 1 + test_rng_below(r, 1000);
    return *clock;
}

static inline size_t rand_value(test_rng *r, uint8_t *v)
{
    size_t vn = test_rng_below(r, test_rng_below(r, 5) ? 24 : MAXV + 1);
    for (size_t x = 0; x < vn; x++)
        v[x] = (uint8_t)test_rng_next(r);
    return vn;
}

static inline void put_both(tkv_store_batch *b, model *m, const void *k, size_t kn, const void *v,
                            size_t vn)
{
    tkv_store_batch_put(b, k, kn, v, vn);
    m_put(m, k, kn, v, vn);
}

static inline void del_both(tkv_store_batch *b, model *m, const void *k, size_t kn)
{
    tkv_store_batch_delete(b, k, kn);
    m_del(m, k, kn);
}

/* A drop of every version of key ki (one record). */
static inline void drop_both(tkv_store_batch *b, model *m, size_t ki)
{
    uint8_t p[MAXK];
    size_t pn = tkv_kc_prefix(p, (const uint8_t *)ukeys[ki].p, ukeys[ki].n);
    tkv_store_batch_drop(b, p, pn);
    m_drop(m, p, pn);
}

/* Deletes every record under key ki's version prefix, and its metadata:
 * one delete per version, or (drop) one drop for them all. */
static inline void del_key(tkv_store_batch *b, model *m, size_t ki, bool drop)
{
    uint8_t p[MAXK], k[MAXK];
    size_t lo, hi;
    m_versions(m, ki, p, &lo, &hi);
    if (drop)
        drop_both(b, m, ki);
    for (size_t i = hi; !drop && i-- > lo;) {
        size_t kn = m->r[i].kn;
        memcpy(k, m->r[i].k, kn);
        del_both(b, m, k, kn);
    }
    del_both(b, m, k, tkv_kc_meta(k, (const uint8_t *)ukeys[ki].p, ukeys[ki].n));
}

/* Adds a random batch of engine-shaped records to b, applying each to m as
 * it goes (within a batch the later record wins, as in the model). One
 * batch in sixty starts by deleting a key (every version and metadata,
 * half the time with a drop), so keys gather hundreds of versions; a few
 * drops come in mid-batch; past three quarters of MAXN, keys
 * are dropped until the model is back under. */
static inline void vbatch(test_rng *r, tkv_store_batch *b, model *m, uint64_t *clock)
{
    /* Now and then a batch bigger than the whole write buffer. */
    size_t ops = 1 + test_rng_below(r, test_rng_below(r, 50) ? 16 : 300);
    for (size_t j = 0; j < ops; j++) {
        size_t ki = test_rng_below(r, NUKEYS);
        const bytes *o = &okeys[test_rng_below(r, NOKEYS)];
        uint8_t k[MAXK], v[MAXV];
        size_t vn = rand_value(r, v);
        uint64_t ts, what = test_rng_below(r, 1000);
        if (m->n > MAXN * 3 / 4 || (j == 0 && test_rng_below(r, 60) == 0)) {
            del_key(b, m, ki, test_rng_below(r, 2));
        } else if (what < 8) {
            /* A drop in mid-batch: the batch's versions before it go, those
             * after it stay. */
            drop_both(b, m, ki);
        } else if (what < 550) {
            ts = pick_ts(r, m, ki, clock);
            put_both(b, m, k, tkv_kc_encode(k, (const uint8_t *)ukeys[ki].p, ukeys[ki].n, ts), v,
                     vn);
        } else if (what < 650) {
            if (!some_version(r, m, ki, &ts))
                ts = test_rng_next(r); /* a delete of nothing */
            del_both(b, m, k, tkv_kc_encode(k, (const uint8_t *)ukeys[ki].p, ukeys[ki].n, ts));
        } else if (what < 780) {
            put_both(b, m, k, tkv_kc_meta(k, (const uint8_t *)ukeys[ki].p, ukeys[ki].n), v, vn);
        } else if (what < 830) {
            del_both(b, m, k, tkv_kc_meta(k, (const uint8_t *)ukeys[ki].p, ukeys[ki].n));
        } else if (what < 950) {
            put_both(b, m, o->p, o->n, v, vn);
        } else {
            del_both(b, m, o->p, o->n);
        }
    }
}

/* A key to seek or get: random bytes, a version (of a timestamp present,
 * near one or anywhere), a metadata key, a bare prefix, a key stored as
 * itself, or a record's key cut short. */
static inline size_t vprobe(test_rng *r, const model *m, uint8_t *k)
{
    static const uint8_t alpha[] = {0x00, 0x01, 'a', 'm', 'v', 'w', 0xfe, 0xff};
    size_t ki = test_rng_below(r, NUKEYS), n;
    const uint8_t *uk = (const uint8_t *)ukeys[ki].p;
    uint64_t clock = UINT64_MAX / 2;
    switch (test_rng_below(r, 8)) {
    case 0:
        n = test_rng_below(r, 13);
        for (size_t i = 0; i < n; i++)
            k[i] = alpha[test_rng_below(r, sizeof alpha)];
        return n;
    case 1: return tkv_kc_meta(k, uk, ukeys[ki].n);
    case 2: return tkv_kc_prefix(k, uk, ukeys[ki].n);
    case 3:
        n = okeys[ki % NOKEYS].n;
        memcpy(k, okeys[ki % NOKEYS].p, n);
        return n;
    case 4: {
        if (m->n == 0)
            return 0;
        const rec *x = &m->r[test_rng_below(r, m->n)];
        n = test_rng_below(r, x->kn + 1);
        memcpy(k, x->k, n);
        return n;
    }
    default: return tkv_kc_encode(k, uk, ukeys[ki].n, pick_ts(r, m, ki, &clock));
    }
}

/* After a seek to k, a random walk of steps back and forth (direction
 * changes are where merging iterators go wrong) matches the model. */
static inline void check_moves(tkv_store_iter *it, const model *m, const uint8_t *k, size_t kn,
                               test_rng *r)
{
    long i = (long)m_lower(m, k, kn), n = (long)m->n;
    tkv_store_iter_seek(it, k, kn);
    for (int step = 0;; step++) {
        cr_assert_eq(tkv_store_iter_valid(it), i >= 0 && i < n, "step %d: valid at %ld of %ld",
                     step, i, n);
        if (i < 0 || i == n)
            break;
        size_t gn, vn;
        const uint8_t *g = tkv_store_iter_key(it, &gn);
        const uint8_t *v = tkv_store_iter_value(it, &vn);
        cr_assert_eq(key_cmp(g, gn, m->r[i].k, m->r[i].kn), 0, "step %d: key %ld differs", step, i);
        cr_assert_eq(vn, m->r[i].vn, "step %d: value %ld differs", step, i);
        cr_assert(vn == 0 || memcmp(v, m->r[i].v, vn) == 0, "step %d: value %ld differs", step, i);
        if (step == 12)
            break;
        if (test_rng_below(r, 2)) {
            tkv_store_iter_next(it);
            i++;
        } else {
            tkv_store_iter_prev(it);
            i--;
        }
    }
    cr_assert_eq(tkv_store_iter_status(it, NULL, 0), 0);
}

/* Every way of reading (through snap, or the current state) agrees with m;
 * full walks only when asked, as they cost the most. */
static inline void vcheck(const tkv_store_snapshot *snap, const model *m, test_rng *r, bool walks)
{
    tkv_store_iter *it = tkv_store_iter_new(s, snap);
    cr_assert_not_null(it);
    if (walks) {
        check_walk(it, m, true);
        check_walk(it, m, false);
    }
    for (int j = 0; j < 6; j++) {
        uint8_t k[MAXK];
        size_t kn = vprobe(r, m, k);
        check_moves(it, m, k, kn, r);
        kn = vprobe(r, m, k);
        check_get_at(snap, m, k, kn);
    }
    tkv_store_iter_free(it);
}

static inline void write_ok(tkv_store_batch *b, bool sync)
{
    char err[256];
    cr_assert_eq(tkv_store_write(s, b, sync, err, sizeof err), 0, "%s", err);
    tkv_store_batch_clear(b);
}

static inline void flush_ok(void)
{
    char err[256];
    cr_assert_eq(tkv_store_flush(s, err, sizeof err), 0, "%s", err);
}

static inline void close_and_open(void)
{
    char err[256];
    tkv_store_close(s);
    s = NULL;
    tkv_store_opts o = store_opts(false);
    cr_assert_eq(tkv_store_open(&o, &s, err, sizeof err), 0, "%s", err);
    tkv_store_set_observer(s, observe, &observed_batches);
}
#endif
