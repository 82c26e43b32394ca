/*
 * engine.c - implements the storage engine of engine.h.
 *
 * The invariant everything rests on: for a resident key E, E->page holds
 * exactly the versions of the key with ts >= E->lo, committed or staged.
 * Below lo the page may also hold staged versions (writes into the deep past)
 * until the next commit trims them; LevelDB holds the committed ones. When
 * lo > 0 the page always holds the key's newest version, so "newest" and
 * "next version" questions never need the disk.
 *
 * Exact key and version counts are kept as staged/committed pairs and
 * written with each batch, so they survive restarts and roll back with a
 * failed commit.
 */
#include "engine.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keycodec.h"
#include "keyindex.h"
#include "store.h"

#define BLOB_PLAIN 0x00
#define DEFAULT_FILL 256
#define DEFAULT_RESIDENT 4096

static const char COUNTERS_KEY[] = "mcounters";

typedef struct counters {
    uint64_t keys;
    uint64_t versions;
} counters;

typedef struct fill_rec {
    uint64_t ts;
    size_t off; /* into fillbuf */
    uint32_t len;
} fill_rec;

struct tkv_engine {
    tkv_engine_opts opts;
    tkv_store store;
    tkv_keyindex ix;
    leveldb_writebatch_t *batch;
    uint64_t batch_ops;       /* puts and deletes staged */
    uint32_t epoch;           /* increases with every commit attempt */
    tkv_kentry **dirty;       /* entries changed in this epoch */
    size_t ndirty, dirty_cap;
    counters cnt, cnt_committed;
    bool all_resident;        /* every key with versions is in the index */
    uint8_t *pfx;             /* encoded key scratch, room for the longest key */
    size_t plen;              /* length of the prefix currently in pfx */
    tkv_buf scratch;          /* disk values handed out by get */
    tkv_buf fillbuf;          /* blobs gathered while loading a key */
    fill_rec *recs;
    size_t nrecs_cap;
    size_t page_bytes;        /* allocator bytes of all pages */
    tkv_engine_stats st;
    char errmsg[256];
};

static uint64_t real_clock(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void set_prefix(tkv_engine *e, const uint8_t *key, size_t klen)
{
    e->plen = tkv_kc_prefix(e->pfx, key, klen);
}

/* Encodes (current prefix, ts) into pfx and returns its length. */
static size_t with_ts(tkv_engine *e, uint64_t ts)
{
    return tkv_kc_with_ts(e->pfx, e->plen, ts);
}

static bool iter_match(tkv_engine *e, leveldb_iterator_t *it, uint64_t *ts)
{
    if (!leveldb_iter_valid(it))
        return false;
    size_t n;
    const char *k = leveldb_iter_key(it, &n);
    return tkv_kc_match((const uint8_t *)k, n, e->pfx, e->plen, ts);
}

static int iter_failed(tkv_engine *e, leveldb_iterator_t *it)
{
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    if (!err)
        return 0;
    snprintf(e->errmsg, sizeof e->errmsg, "read failed: %s", err);
    leveldb_free(err);
    tkv_store_iter_drop(&e->store);
    return -1;
}

/* ---- memory bookkeeping ---------------------------------------------- */

static void account_page(tkv_engine *e, long delta)
{
    e->page_bytes = (size_t)((long)e->page_bytes + delta);
}

/* Makes room to track one more dirty entry before anything is staged, so
 * that recording it afterwards cannot fail. */
static int reserve_dirty(tkv_engine *e)
{
    if (e->ndirty < e->dirty_cap)
        return 0;
    size_t cap = e->dirty_cap ? e->dirty_cap * 2 : 64;
    tkv_kentry **d = realloc(e->dirty, cap * sizeof *d);
    if (!d) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return -1;
    }
    e->dirty = d;
    e->dirty_cap = cap;
    return 0;
}

static void mark_dirty(tkv_engine *e, tkv_kentry *E)
{
    if (E->dirty_epoch == e->epoch)
        return;
    e->dirty[e->ndirty++] = E;
    E->dirty_epoch = e->epoch;
}

static void drop_entry(tkv_engine *e, tkv_kentry *E)
{
    e->st.mem_versions -= tkv_vpage_count(E->page);
    account_page(e, -(long)tkv_vpage_bytes(E->page));
    tkv_vpage_free(E->page);
    E->page = NULL;
    tkv_keyindex_remove(&e->ix, E);
}

static void remove_slots(tkv_engine *e, tkv_kentry *E, uint32_t from, uint32_t to)
{
    uint32_t before = tkv_vpage_count(E->page);
    account_page(e, tkv_vpage_remove(&E->page, from, to));
    e->st.mem_versions -= before - tkv_vpage_count(E->page);
}

/* ---- loading keys from LevelDB ----------------------------------------- */

static int gather(tkv_engine *e, leveldb_iterator_t *it, size_t *n, bool *exhausted)
{
    uint32_t want = e->opts.fill_versions;
    tkv_buf_reset(&e->fillbuf);
    *n = 0;
    uint64_t ts;
    leveldb_iter_seek(it, (const char *)e->pfx, with_ts(e, TKV_TS_MAX));
    while (*n < want && iter_match(e, it, &ts)) {
        size_t vlen;
        const char *v = leveldb_iter_value(it, &vlen);
        if (*n == e->nrecs_cap) {
            size_t cap = e->nrecs_cap ? e->nrecs_cap * 2 : 64;
            fill_rec *r = realloc(e->recs, cap * sizeof *r);
            if (!r)
                return -1;
            e->recs = r;
            e->nrecs_cap = cap;
        }
        e->recs[*n] = (fill_rec){.ts = ts, .off = e->fillbuf.len, .len = (uint32_t)vlen};
        if (tkv_buf_append(&e->fillbuf, v, vlen) < 0)
            return -1;
        (*n)++;
        leveldb_iter_next(it);
    }
    *exhausted = !iter_match(e, it, &ts);
    return 0;
}

/* Makes key resident with its newest versions. The prefix must be set. */
static tkv_kentry *fill(tkv_engine *e, const uint8_t *key, size_t klen, tkv_status *st)
{
    leveldb_iterator_t *it = tkv_store_iter(&e->store);
    size_t n;
    bool exhausted;
    if (gather(e, it, &n, &exhausted) < 0) {
        *st = TKV_ST_INTERNAL;
        return NULL;
    }
    if (iter_failed(e, it) < 0) {
        *st = TKV_ST_STORAGE;
        return NULL;
    }
    tkv_kentry *E = tkv_keyindex_insert(&e->ix, key, klen);
    if (!E) {
        *st = TKV_ST_INTERNAL;
        return NULL;
    }
    /* Gathered newest first; append oldest first so every put is an append. */
    for (size_t i = n; i-- > 0;) {
        bool replaced;
        long d = tkv_vpage_put(&E->page, e->recs[i].ts, e->fillbuf.data + e->recs[i].off,
                               e->recs[i].len, NULL, 0, &replaced);
        if (d == LONG_MIN) {
            drop_entry(e, E);
            *st = TKV_ST_INTERNAL;
            return NULL;
        }
        account_page(e, d);
        e->st.mem_versions++;
    }
    E->lo = exhausted || n == 0 ? 0 : e->recs[n - 1].ts;
    e->st.fills++;
    return E;
}

/* The resident entry for key, loading it if needed. NULL with *st == OK
 * means the key certainly has no versions (only when create is false). */
static tkv_kentry *lookup(tkv_engine *e, const uint8_t *key, size_t klen, bool create,
                          tkv_status *st)
{
    *st = TKV_ST_OK;
    tkv_kentry *E = tkv_keyindex_find(&e->ix, key, klen);
    if (E) {
        E->ref = 1;
        return E;
    }
    if (e->all_resident) {
        if (!create)
            return NULL;
        E = tkv_keyindex_insert(&e->ix, key, klen);
        if (!E)
            *st = TKV_ST_INTERNAL;
        return E;
    }
    set_prefix(e, key, klen);
    return fill(e, key, klen, st);
}

/* ---- reads ------------------------------------------------------------ */

typedef struct disk_hit {
    bool found;
    uint64_t ts;
    const uint8_t *blob; /* in e->scratch */
    uint32_t len;
    bool has_above;
    uint64_t above;      /* smallest disk ts > the ts asked */
} disk_hit;

/* Floor lookup on disk for the key whose prefix is set: one seek, then one
 * step back for the next newer version. */
static int disk_floor(tkv_engine *e, uint64_t T, disk_hit *h)
{
    leveldb_iterator_t *it = tkv_store_iter(&e->store);
    memset(h, 0, sizeof *h);
    leveldb_iter_seek(it, (const char *)e->pfx, with_ts(e, T));
    uint64_t ts;
    if (iter_match(e, it, &ts)) {
        size_t vlen;
        const char *v = leveldb_iter_value(it, &vlen);
        tkv_buf_reset(&e->scratch);
        if (tkv_buf_append(&e->scratch, v, vlen) < 0)
            return -1;
        h->found = true;
        h->ts = ts;
        h->blob = e->scratch.data;
        h->len = (uint32_t)vlen;
    }
    if (leveldb_iter_valid(it))
        leveldb_iter_prev(it);
    else
        leveldb_iter_seek_to_last(it);
    if (iter_match(e, it, &ts)) {
        h->has_above = true;
        h->above = ts;
    }
    return iter_failed(e, it);
}

static void answer(tkv_answer *out, uint64_t ts, const uint8_t *blob, uint32_t len)
{
    out->ts = ts;
    out->value = blob + 1;
    out->len = len ? len - 1 : 0;
}

static tkv_status answer_below_lo(tkv_engine *e, const tkv_kentry *E, const uint8_t *key,
                                  size_t klen, uint64_t T, long i, tkv_answer *out)
{
    const tkv_vpage *p = E->page;
    set_prefix(e, key, klen);
    disk_hit d;
    if (disk_floor(e, T < E->lo ? T : E->lo - 1, &d) < 0)
        return TKV_ST_STORAGE;
    e->st.reads_disk++;
    /* The page holds the key's newest version (>= lo > T), so a next newer
     * one always exists in memory; the disk may know a closer one below lo. */
    uint32_t ni = (uint32_t)(i + 1);
    out->has_next = ni < tkv_vpage_count(p);
    out->next = out->has_next ? p->slot[ni].ts : 0;
    if (d.has_above && d.above < E->lo && (!out->has_next || d.above < out->next)) {
        out->next = d.above;
        out->has_next = true;
    }
    if (i >= 0 && (!d.found || p->slot[i].ts >= d.ts)) {
        answer(out, p->slot[i].ts, tkv_vpage_blob(p, (uint32_t)i), p->slot[i].len);
        return TKV_ST_OK;
    }
    if (d.found) {
        answer(out, d.ts, d.blob, d.len);
        return TKV_ST_OK;
    }
    out->miss = TKV_M_BEFORE_FIRST;
    return TKV_ST_NOT_FOUND;
}

tkv_status tkv_engine_get(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t T,
                          tkv_answer *out)
{
    memset(out, 0, sizeof *out);
    tkv_status st;
    tkv_kentry *E = lookup(e, key, klen, false, &st);
    if (st != TKV_ST_OK)
        return st;
    if (!E) {
        e->st.reads_mem++;
        out->miss = TKV_M_NO_KEY;
        return TKV_ST_NOT_FOUND;
    }
    out->dirty = E->dirty_epoch == e->epoch;
    const tkv_vpage *p = E->page;
    long i = tkv_vpage_floor(p, T);
    if (i >= 0 && p->slot[i].ts >= E->lo) {
        e->st.reads_mem++;
        answer(out, p->slot[i].ts, tkv_vpage_blob(p, (uint32_t)i), p->slot[i].len);
        out->has_next = (uint32_t)(i + 1) < p->count;
        out->next = out->has_next ? p->slot[i + 1].ts : 0;
        return TKV_ST_OK;
    }
    if (E->lo > 0)
        return answer_below_lo(e, E, key, klen, T, i, out);
    e->st.reads_mem++;
    if (tkv_vpage_count(p) == 0) {
        out->miss = TKV_M_NO_KEY;
    } else {
        out->miss = TKV_M_BEFORE_FIRST;
        out->has_next = true;
        out->next = p->slot[0].ts;
    }
    return TKV_ST_NOT_FOUND;
}

/* A LevelDB scan over one key's versions within [from, to], in ts order
 * (asc: oldest first, which is LevelDB's backward direction). */
typedef struct dcur {
    tkv_engine *e;
    leveldb_iterator_t *it;
    uint64_t from, to;
    bool asc;
    bool valid;
    uint64_t ts;
} dcur;

static void dcur_load(dcur *c)
{
    c->valid = iter_match(c->e, c->it, &c->ts) && c->ts >= c->from && c->ts <= c->to;
}

static void dcur_start(dcur *c)
{
    tkv_engine *e = c->e;
    if (!c->asc) {
        leveldb_iter_seek(c->it, (const char *)e->pfx, with_ts(e, c->to));
        dcur_load(c);
        return;
    }
    leveldb_iter_seek(c->it, (const char *)e->pfx, with_ts(e, c->from));
    uint64_t ts;
    if (iter_match(e, c->it, &ts) && ts == c->from) {
        dcur_load(c);
        return;
    }
    if (leveldb_iter_valid(c->it))
        leveldb_iter_prev(c->it);
    else
        leveldb_iter_seek_to_last(c->it);
    dcur_load(c);
}

static void dcur_next(dcur *c)
{
    if (c->asc)
        leveldb_iter_prev(c->it);
    else
        leveldb_iter_next(c->it);
    dcur_load(c);
}

typedef struct emitter {
    tkv_range_cb cb;
    void *ctx;
    uint64_t left;
    bool stopped;
} emitter;

static bool emit(emitter *em, uint64_t ts, const uint8_t *blob, uint32_t len)
{
    if (em->stopped || em->left == 0) {
        em->stopped = true;
        return false;
    }
    em->left--;
    if (!em->cb(em->ctx, ts, blob + 1, len ? len - 1 : 0))
        em->stopped = true;
    return !em->stopped;
}

/* Page slots [a, b) in order. */
static void emit_page(emitter *em, const tkv_vpage *p, uint32_t a, uint32_t b, bool asc)
{
    for (uint32_t k = 0; k < b - a && !em->stopped; k++) {
        uint32_t i = asc ? a + k : b - 1 - k;
        emit(em, p->slot[i].ts, tkv_vpage_blob(p, i), p->slot[i].len);
    }
}

/* Versions in [from, to] below lo: LevelDB merged with staged page slots
 * [a, b); on equal timestamps the page (newer state) wins. */
static int emit_merged(tkv_engine *e, emitter *em, const tkv_vpage *p, uint32_t a, uint32_t b,
                       uint64_t from, uint64_t to, bool asc)
{
    dcur c = {.e = e, .it = tkv_store_iter(&e->store), .from = from, .to = to, .asc = asc};
    dcur_start(&c);
    uint32_t k = 0, n = b - a;
    while (!em->stopped && (c.valid || k < n)) {
        uint32_t i = asc ? a + k : b - 1 - k;
        bool take_page = k < n && (!c.valid || (asc ? p->slot[i].ts <= c.ts
                                                    : p->slot[i].ts >= c.ts));
        if (take_page) {
            if (c.valid && p->slot[i].ts == c.ts)
                dcur_next(&c);
            emit(em, p->slot[i].ts, tkv_vpage_blob(p, i), p->slot[i].len);
            k++;
        } else {
            size_t vlen;
            const char *v = leveldb_iter_value(c.it, &vlen);
            emit(em, c.ts, (const uint8_t *)v, (uint32_t)vlen);
            dcur_next(&c);
        }
    }
    return iter_failed(e, c.it);
}

tkv_status tkv_engine_range(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t limit, bool reverse, tkv_range_cb cb,
                            void *ctx, bool *dirty)
{
    *dirty = false;
    tkv_status st;
    tkv_kentry *E = lookup(e, key, klen, false, &st);
    if (st != TKV_ST_OK || !E || from > to || limit == 0) {
        if (st == TKV_ST_OK)
            e->st.reads_mem++;
        return st;
    }
    *dirty = E->dirty_epoch == e->epoch;
    const tkv_vpage *p = E->page;
    emitter em = {.cb = cb, .ctx = ctx, .left = limit};
    uint64_t lo = E->lo;
    /* [hi_a, hi_b): slots the page is authoritative for within the range. */
    uint32_t hi_a = tkv_vpage_lower(p, from > lo ? from : lo);
    uint32_t hi_b = to == TKV_TS_MAX ? tkv_vpage_count(p) : tkv_vpage_lower(p, to + 1);
    if (hi_b < hi_a)
        hi_b = hi_a;
    bool low = lo > 0 && from < lo;
    if (!low) {
        e->st.reads_mem++;
        emit_page(&em, p, hi_a, hi_b, !reverse);
        return TKV_ST_OK;
    }
    e->st.reads_disk++;
    uint64_t low_to = to < lo ? to : lo - 1;
    uint32_t lo_a = tkv_vpage_lower(p, from), lo_b = tkv_vpage_lower(p, low_to + 1);
    set_prefix(e, key, klen);
    int rc = 0;
    if (reverse) {
        emit_page(&em, p, hi_a, hi_b, false);
        if (!em.stopped)
            rc = emit_merged(e, &em, p, lo_a, lo_b, from, low_to, false);
    } else {
        rc = emit_merged(e, &em, p, lo_a, lo_b, from, low_to, true);
        emit_page(&em, p, hi_a, hi_b, true);
    }
    return rc < 0 ? TKV_ST_STORAGE : TKV_ST_OK;
}

/* ---- writes ----------------------------------------------------------- */

/* Whether a version at ts exists, for a key whose prefix is set. */
static int exists_below_lo(tkv_engine *e, const tkv_kentry *E, uint64_t ts, bool *exists)
{
    if (tkv_vpage_find(E->page, ts) >= 0) {
        *exists = true;
        return 0;
    }
    char *v;
    size_t vlen;
    int rc = tkv_store_get(&e->store, e->pfx, with_ts(e, ts), &v, &vlen, e->errmsg,
                           sizeof e->errmsg);
    if (rc < 0)
        return -1;
    leveldb_free(v);
    *exists = rc == 1;
    return 0;
}

static tkv_status pick_ts(tkv_engine *e, const tkv_kentry *E, uint64_t *ts)
{
    uint64_t now = e->opts.clock(e->opts.clock_ctx);
    uint32_t n = tkv_vpage_count(E->page);
    if (n == 0) {
        *ts = now;
        return TKV_ST_OK;
    }
    uint64_t newest = E->page->slot[n - 1].ts;
    if (newest == TKV_TS_MAX) {
        snprintf(e->errmsg, sizeof e->errmsg,
                 "the key has a version at the largest timestamp; no later one exists");
        return TKV_ST_OUT_OF_RANGE;
    }
    *ts = now > newest ? now : newest + 1;
    return TKV_ST_OK;
}

tkv_status tkv_engine_put(tkv_engine *e, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t ts, bool has_ts, uint64_t *out_ts, bool *dirty)
{
    *dirty = false;
    if (reserve_dirty(e) < 0)
        return TKV_ST_INTERNAL;
    tkv_status st;
    tkv_kentry *E = lookup(e, key, klen, true, &st);
    if (st != TKV_ST_OK)
        return st;
    if (!has_ts && (st = pick_ts(e, E, &ts)) != TKV_ST_OK)
        return st;
    set_prefix(e, key, klen);
    bool existed = false;
    if (E->lo > 0 && ts < E->lo) {
        if (exists_below_lo(e, E, ts, &existed) < 0)
            return TKV_ST_STORAGE;
    }
    bool new_key = E->lo == 0 && tkv_vpage_count(E->page) == 0;
    static const uint8_t hdr = BLOB_PLAIN;
    bool replaced;
    long d = tkv_vpage_put(&E->page, ts, &hdr, 1, val, (uint32_t)vlen, &replaced);
    if (d == LONG_MIN) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return TKV_ST_INTERNAL;
    }
    account_page(e, d);
    if (!replaced)
        e->st.mem_versions++;
    long i = tkv_vpage_find(E->page, ts);
    leveldb_writebatch_put(e->batch, (const char *)e->pfx, with_ts(e, ts),
                           (const char *)tkv_vpage_blob(E->page, (uint32_t)i),
                           E->page->slot[i].len);
    e->batch_ops++;
    if (!replaced && !existed)
        e->cnt.versions++;
    if (new_key)
        e->cnt.keys++;
    mark_dirty(e, E);
    *dirty = true;
    *out_ts = ts;
    return TKV_ST_OK;
}

/* Stages deletes for every LevelDB version of the key whose prefix is set;
 * counts those below lo that the page does not hold. */
static int del_disk(tkv_engine *e, const tkv_kentry *E, uint64_t *extra)
{
    leveldb_iterator_t *it = tkv_store_iter(&e->store);
    leveldb_iter_seek(it, (const char *)e->pfx, with_ts(e, TKV_TS_MAX));
    uint64_t ts;
    *extra = 0;
    while (iter_match(e, it, &ts)) {
        size_t n;
        const char *k = leveldb_iter_key(it, &n);
        leveldb_writebatch_delete(e->batch, k, n);
        e->batch_ops++;
        bool in_page = E && tkv_vpage_find(E->page, ts) >= 0;
        if (!in_page && (!E || ts < E->lo))
            (*extra)++;
        leveldb_iter_next(it);
    }
    return iter_failed(e, it);
}

tkv_status tkv_engine_del(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t *removed,
                          bool *dirty)
{
    *removed = 0;
    *dirty = false;
    if (reserve_dirty(e) < 0)
        return TKV_ST_INTERNAL;
    tkv_kentry *E = tkv_keyindex_find(&e->ix, key, klen);
    if (!E && e->all_resident)
        return TKV_ST_OK;
    set_prefix(e, key, klen);
    uint64_t on_disk_only = 0;
    /* A complete page is the whole truth; otherwise LevelDB has more. */
    if ((!E || E->lo > 0) && del_disk(e, E, &on_disk_only) < 0)
        return TKV_ST_STORAGE;
    if (!E && !(E = tkv_keyindex_insert(&e->ix, key, klen))) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return TKV_ST_INTERNAL;
    }
    E->ref = 1;
    uint32_t n = tkv_vpage_count(E->page);
    for (uint32_t i = 0; i < n; i++) {
        leveldb_writebatch_delete(e->batch, (const char *)e->pfx,
                                  with_ts(e, E->page->slot[i].ts));
        e->batch_ops++;
    }
    *removed = n + on_disk_only;
    *dirty = E->dirty_epoch == e->epoch;
    remove_slots(e, E, 0, n);
    E->lo = 0; /* known to have no versions at all */
    if (*removed > 0) {
        e->cnt.versions -= *removed;
        e->cnt.keys--;
        mark_dirty(e, E);
        *dirty = true;
    }
    return TKV_ST_OK;
}

/* ---- commit ----------------------------------------------------------- */

bool tkv_engine_pending(const tkv_engine *e) { return e->batch_ops > 0; }

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* After a successful commit: drop staged deep-past versions (now on disk)
 * and hold each page to resident_versions, raising lo accordingly. */
static void trim(tkv_engine *e, tkv_kentry *E)
{
    if (E->lo > 0)
        remove_slots(e, E, 0, tkv_vpage_lower(E->page, E->lo));
    uint32_t n = tkv_vpage_count(E->page);
    if (n > e->opts.resident_versions) {
        remove_slots(e, E, 0, n - e->opts.resident_versions);
        E->lo = E->page->slot[0].ts;
    }
}

int tkv_engine_commit(tkv_engine *e)
{
    if (e->batch_ops == 0)
        return 0;
    if (memcmp(&e->cnt, &e->cnt_committed, sizeof e->cnt) != 0) {
        uint8_t v[16];
        put_be64(v, e->cnt.keys);
        put_be64(v + 8, e->cnt.versions);
        leveldb_writebatch_put(e->batch, COUNTERS_KEY, sizeof COUNTERS_KEY - 1,
                               (const char *)v, sizeof v);
    }
    int rc = tkv_store_write(&e->store, e->batch, e->opts.sync, e->errmsg, sizeof e->errmsg);
    leveldb_writebatch_clear(e->batch);
    tkv_store_iter_drop(&e->store);
    if (rc == 0) {
        e->st.commits++;
        e->st.commit_writes += e->batch_ops;
        e->cnt_committed = e->cnt;
        for (size_t i = 0; i < e->ndirty; i++)
            trim(e, e->dirty[i]);
    } else {
        e->st.commit_errors++;
        e->cnt = e->cnt_committed;
        for (size_t i = 0; i < e->ndirty; i++)
            drop_entry(e, e->dirty[i]);
        e->all_resident = false;
    }
    e->batch_ops = 0;
    e->ndirty = 0;
    e->epoch++;
    return rc;
}

int tkv_engine_sync(tkv_engine *e)
{
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    int rc = tkv_store_write(&e->store, b, true, e->errmsg, sizeof e->errmsg);
    leveldb_writebatch_destroy(b);
    return rc;
}

void tkv_engine_idle(tkv_engine *e) { tkv_store_iter_drop(&e->store); }

const char *tkv_engine_errmsg(const tkv_engine *e) { return e->errmsg; }

/* ---- open, close, stats ----------------------------------------------- */

static int load_state(tkv_engine *e, char *err, size_t errlen)
{
    char *v;
    size_t vlen;
    int rc = tkv_store_get(&e->store, COUNTERS_KEY, sizeof COUNTERS_KEY - 1, &v, &vlen, err,
                           errlen);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        if (vlen == 16) {
            e->cnt.keys = get_be64((const uint8_t *)v);
            e->cnt.versions = get_be64((const uint8_t *)v + 8);
        }
        leveldb_free(v);
    }
    e->cnt_committed = e->cnt;
    /* An empty database means every key that will ever exist passes through
     * memory first: misses need no disk lookup until something is evicted. */
    leveldb_iterator_t *it = tkv_store_iter(&e->store);
    const char first = TKV_KC_VERSION;
    leveldb_iter_seek(it, &first, 1);
    size_t n = 0;
    const char *k = leveldb_iter_valid(it) ? leveldb_iter_key(it, &n) : NULL;
    e->all_resident = !(k && n > 0 && k[0] == TKV_KC_VERSION);
    tkv_store_iter_drop(&e->store);
    return 0;
}

int tkv_engine_open(const tkv_engine_opts *o, tkv_engine **out, char *err, size_t errlen)
{
    *out = NULL;
    tkv_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->opts = *o;
    if (!e->opts.fill_versions)
        e->opts.fill_versions = DEFAULT_FILL;
    if (!e->opts.resident_versions)
        e->opts.resident_versions = DEFAULT_RESIDENT;
    if (!e->opts.clock)
        e->opts.clock = real_clock;
    e->epoch = 1;
    e->pfx = malloc(tkv_kc_max(TKV_KEY_MAX_LIMIT));
    e->batch = leveldb_writebatch_create();
    if (!e->pfx || tkv_keyindex_init(&e->ix) < 0) {
        snprintf(err, errlen, "out of memory");
        tkv_engine_close(e);
        return -1;
    }
    tkv_store_opts so = {.dir = o->dir, .block_cache = o->block_cache,
                         .write_buffer = o->write_buffer, .create = true};
    if (tkv_store_open(&e->store, &so, err, errlen) < 0 || load_state(e, err, errlen) < 0) {
        tkv_engine_close(e);
        return -1;
    }
    e->opts.dir = NULL; /* not owned; do not keep a pointer to it */
    *out = e;
    return 0;
}

void tkv_engine_close(tkv_engine *e)
{
    if (!e)
        return;
    tkv_store_close(&e->store);
    tkv_keyindex_deinit(&e->ix);
    if (e->batch)
        leveldb_writebatch_destroy(e->batch);
    free(e->pfx);
    free(e->dirty);
    free(e->recs);
    tkv_buf_deinit(&e->scratch);
    tkv_buf_deinit(&e->fillbuf);
    free(e);
}

void tkv_engine_stats_get(const tkv_engine *e, tkv_engine_stats *s)
{
    *s = e->st;
    s->keys = e->cnt.keys;
    s->versions = e->cnt.versions;
    s->mem_keys = e->ix.count;
    s->mem_bytes = e->ix.bytes + e->page_bytes;
}

char *tkv_engine_property(tkv_engine *e, const char *name)
{
    return tkv_store_property(&e->store, name);
}

int tkv_engine_repair(const char *dir, char *err, size_t errlen)
{
    return tkv_store_repair(dir, err, errlen);
}
