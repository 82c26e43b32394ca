/*
 * load.c - loads: the engine's reads of LevelDB, taken off the thread that
 * serves requests (engine.h, "Loads").
 *
 * An operation in nonblocking mode that would read LevelDB records what it
 * needs in e->want and returns TKV_E_WOULD_BLOCK before changing anything.
 * The caller takes the want as a load, runs it on a reader thread, and
 * installs it on the engine's thread before running the operation again.
 * There are two kinds, matching memory's invariant (a resident key's page
 * holds every version at or after its lo):
 *
 *  - a fill: a key that is not resident gets its metadata and its newest
 *    versions, as the blocking fill does;
 *  - an extend: a resident key's versions below lo, down to a time and a
 *    chunk beyond it, after which lo moves down.
 *
 * Exactness rests on one test at install: no batch may have staged a
 * record of the key after the load read LevelDB. The writer publishes the
 * epoch of each batch it wrote (disk_epoch) before the next load can read;
 * a load notes that epoch before it creates its iterator, so every batch up
 * to it is in what the load read. Staging a record stamps the key's touch
 * slot with the staging epoch (eng_touch_record). If the slot is at or
 * below the noted epoch, LevelDB held exactly the key's committed state
 * when the load read it and nothing changed it since - whatever happened
 * to the key's residency in between - so the install adds only truth. A
 * rolled-back batch or a reopened store moves e->gen and makes every older
 * load stale.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "grow.h"

/* Versions a descending walk loads below its target at first; each further
 * attempt of the same operation loads four times more. */
#define CHUNK_FIRST 256u
#define CHUNK_MAX (1u << 22)

/* One key of a load: what to load, and what was loaded (its records are a
 * run of the load's recs, their bytes in the load's data). */
typedef struct load_item {
    /* what to load */
    bool fill, count;
    uint64_t horizon, now;
    bool check_expiry;
    uint32_t versions;
    uint64_t below, down_to;
    uint32_t extra;
    uint8_t *key; /* klen bytes, then tkv_kc_max(klen) bytes of encoding room */
    size_t klen;
    /* what was loaded */
    int rc; /* 0, -1 failed (the load's err), 1 larger than max_bytes */
    bool has_meta;
    tkv_kmeta meta;
    size_t r0, n;              /* its records: recs[r0, r0 + n), newest first */
    bool exhausted;            /* no version of the key older than the last loaded */
    uint64_t n_all, n_visible; /* a count */
    uint64_t next_expiry;      /* a count: the first time one it saw expires */
} load_item;

struct tkv_eng_load {
    uint64_t gen;
    bool closed;      /* taken on a closed store: reads nothing, fails */
    size_t max_bytes; /* per key */
    uint64_t seen;    /* every batch up to this epoch was in what the load read */
    char err[200];
    load_item *item;
    size_t nitems;
    fill_rec *recs; /* every item's records; offsets into data */
    size_t nrecs, cap;
    tkv_buf data;
};

/* ---- asking ----------------------------------------------------------------- */

/* The touch slot of a key, from its escaped bytes (what every record of the
 * key carries after the leading 'v'). */
static size_t touch_slot(const uint8_t *esc, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ esc[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32)) & (ENG_TOUCH_SLOTS - 1);
}

/* The escaped key inside a record key 'v' | escape(K) | 0x00 (0x00|0x01)...:
 * up to the first 0x00 that is not an escaped 0x00 0xff. */
static bool record_key(const uint8_t *rec, size_t n, size_t *len)
{
    if (n < 3 || rec[0] != TKV_KC_VERSION)
        return false;
    for (size_t i = 1; i + 1 < n; i++) {
        if (rec[i] != 0x00)
            continue;
        if (rec[i + 1] == 0xff) {
            i++;
            continue;
        }
        *len = i - 1;
        return true;
    }
    return false;
}

void eng_touch_record(tkv_engine *e, const uint8_t *rec, size_t n)
{
    size_t len;
    if (record_key(rec, n, &len))
        e->touch[touch_slot(rec + 1, len)] = e->stage.epoch;
}

static uint64_t touch_of(const tkv_engine *e, const uint8_t *kbuf, const uint8_t *key, size_t klen)
{
    size_t plen = tkv_kc_prefix((uint8_t *)kbuf, key, klen);
    size_t len;
    bool ok = record_key(kbuf, plen, &len);
    return ok ? e->touch[touch_slot(kbuf + 1, len)] : UINT64_MAX;
}

uint32_t eng_want_chunk(const tkv_engine *e)
{
    uint32_t c = CHUNK_FIRST;
    for (unsigned i = 0; i < e->nb_attempt && c < CHUNK_MAX; i++)
        c *= 4;
    return c;
}

/* The key's item if the want has it already: a probing request may ask for
 * a key twice (MGET of the same key), and one load serves both. */
static eng_want_item *want_find(tkv_engine *e, const eng_key *k)
{
    for (size_t i = 0; i < e->want.n; i++) {
        eng_want_item *w = &e->want.item[i];
        if (w->klen == k->klen && memcmp(w->key, k->key, k->klen) == 0)
            return w;
    }
    return NULL;
}

static tkv_eng_rc want_add(tkv_engine *e, const eng_want_item *it)
{
    /* After a failed reopen there is no LevelDB handle to load from: the
     * operation fails now, as in blocking mode, instead of waiting for a
     * load that cannot read anything. */
    if (!e->store_open)
        return eng_store_closed(e);
    if (e->want.n < ENG_WANT_MAX && !want_find(e, &(eng_key){.key = it->key, .klen = it->klen}))
        e->want.item[e->want.n++] = *it;
    snprintf(e->errmsg, sizeof e->errmsg, "waiting for a load");
    return TKV_E_WOULD_BLOCK;
}

tkv_eng_rc eng_want_fill(tkv_engine *e, eng_key *k, uint32_t versions)
{
    return want_add(
        e, &(eng_want_item){.fill = true, .versions = versions, .key = k->key, .klen = k->klen});
}

tkv_eng_rc eng_want_extend(tkv_engine *e, eng_key *k, uint64_t below, uint64_t down_to,
                           uint32_t extra)
{
    return want_add(
        e, &(eng_want_item){
               .below = below, .down_to = down_to, .extra = extra, .key = k->key, .klen = k->klen});
}

tkv_eng_rc eng_want_count(tkv_engine *e, eng_key *k, uint64_t below, const vis *v)
{
    return want_add(e, &(eng_want_item){.count = true,
                                        .below = below,
                                        .horizon = v->horizon,
                                        .now = v->now,
                                        .check_expiry = v->check_expiry,
                                        .key = k->key,
                                        .klen = k->klen});
}

bool eng_counted_take(tkv_engine *e, const eng_key *k, const tkv_kentry *E, const vis *v,
                      uint64_t *all, uint64_t *visible)
{
    eng_counted *c = &e->counted;
    if (!c->valid)
        return false;
    c->valid = false;
    if (c->klen != k->klen || (k->klen && memcmp(c->key, k->key, k->klen) != 0) || c->lo != E->lo ||
        touch_of(e, e->kbuf, k->key, k->klen) != c->touch || c->horizon != v->horizon ||
        (v->check_expiry && v->now >= c->next_expiry))
        return false;
    *all = c->all;
    *visible = c->visible;
    return true;
}

void tkv_engine_set_nonblocking(tkv_engine *e, bool on, unsigned attempt)
{
    e->nonblock = on;
    e->nb_attempt = attempt;
    e->want.n = 0;
}

bool tkv_engine_load_room(const tkv_engine *e) { return e->want.n < ENG_WANT_MAX; }

tkv_eng_load *tkv_engine_load_take(tkv_engine *e)
{
    size_t n = e->want.n;
    if (n == 0)
        return NULL;
    e->want.n = 0;
    tkv_eng_load *l = calloc(1, sizeof *l);
    if (!l || !(l->item = calloc(n, sizeof *l->item))) {
        free(l);
        return NULL;
    }
    l->nitems = n;
    tkv_buf_init(&l->data);
    for (size_t i = 0; i < n; i++) {
        const eng_want_item *w = &e->want.item[i];
        load_item *it = &l->item[i];
        if (!(it->key = malloc(w->klen + tkv_kc_max(w->klen)))) {
            l->nitems = i;
            e->loads_out++;
            tkv_engine_load_free(e, l);
            return NULL;
        }
        memcpy(it->key, w->key, w->klen);
        it->klen = w->klen;
        it->fill = w->fill;
        it->count = w->count;
        it->horizon = w->horizon;
        it->now = w->now;
        it->check_expiry = w->check_expiry;
        it->versions = w->versions;
        it->below = w->below;
        it->down_to = w->down_to;
        it->extra = w->extra;
    }
    l->gen = e->gen;
    /* Noted here, on the engine's thread: a reader thread must not read
     * store_open, and the store is not reopened while a load is out. */
    l->closed = !e->store_open;
    /* A key's share of the budget: what does not fit could not stay. */
    l->max_bytes = eng_key_budget(e);
    e->loads_out++;
    e->st.loads += n;
    e->st.load_waits++;
    return l;
}

void tkv_engine_load_free(tkv_engine *e, tkv_eng_load *l)
{
    if (!l)
        return;
    e->loads_out--;
    for (size_t i = 0; i < l->nitems; i++)
        free(l->item[i].key);
    free(l->item);
    free(l->recs);
    tkv_buf_deinit(&l->data);
    free(l);
}

/* ---- loading (any thread) -------------------------------------------------- */

/* Adds the iterator's record (of k, at ts) to the load. 1 if the item passed
 * max_bytes, -1 if out of memory. */
static int take_record(tkv_eng_load *l, load_item *it, tkv_store_iter *iter, uint64_t ts,
                       size_t item_bytes)
{
    size_t vlen;
    const uint8_t *v = tkv_store_iter_value(iter, &vlen);
    if (item_bytes + vlen > l->max_bytes)
        return 1;
    if (tkv_grow(&l->recs, &l->cap, l->nrecs + 1, sizeof *l->recs, 64) < 0)
        return -1;
    l->recs[l->nrecs++] = (fill_rec){.ts = ts, .off = l->data.len, .len = (uint32_t)vlen};
    if (tkv_buf_append(&l->data, v, vlen) < 0)
        return -1;
    it->n++;
    return 0;
}

/* A fill: the metadata, then the newest `versions` versions. */
static int gather_fill(tkv_eng_load *l, load_item *it, eng_key *k, tkv_store_iter *iter)
{
    if (eng_read_meta(iter, k->buf, it->key, it->klen, &it->meta, &it->has_meta) < 0) {
        snprintf(l->err, sizeof l->err, "malformed metadata record");
        return -1;
    }
    size_t d0 = l->data.len;
    uint64_t ts;
    while (it->n < it->versions && eng_iter_match(k, iter, &ts)) {
        int rc = take_record(l, it, iter, ts, l->data.len - d0);
        if (rc != 0)
            return rc;
        tkv_store_iter_next(iter);
    }
    it->exhausted = !eng_iter_match(k, iter, &ts);
    return 0;
}

/* An extend: the key's versions below `below`, newest first, down to
 * down_to and then `extra` more. */
static int gather_below(tkv_eng_load *l, load_item *it, eng_key *k, tkv_store_iter *iter)
{
    if (it->below == 0) {
        it->exhausted = true;
        return 0;
    }
    tkv_store_iter_seek(iter, k->buf, eng_key_at(k, it->below - 1));
    uint32_t extra = it->extra;
    size_t d0 = l->data.len;
    uint64_t ts;
    while (eng_iter_match(k, iter, &ts)) {
        if (ts < it->down_to) {
            if (extra == 0)
                break;
            extra--;
        }
        int rc = take_record(l, it, iter, ts, l->data.len - d0);
        if (rc != 0)
            return rc;
        tkv_store_iter_next(iter);
    }
    it->exhausted = !eng_iter_match(k, iter, &ts);
    return 0;
}

/* A count: the key's versions below `below`, and those a reader sees -
 * read through, nothing kept. */
static int gather_count(load_item *it, eng_key *k, tkv_store_iter *iter)
{
    vis v = {.horizon = it->horizon, .now = it->now, .check_expiry = it->check_expiry};
    it->next_expiry = UINT64_MAX;
    tkv_store_iter_seek(iter, k->buf, eng_key_at(k, it->below - 1));
    uint64_t ts;
    while (eng_iter_match(k, iter, &ts)) {
        size_t len;
        const uint8_t *b = tkv_store_iter_value(iter, &len);
        it->n_all++;
        if (vis_ok(&v, ts, b, (uint32_t)len)) {
            it->n_visible++;
            /* The operation runs again later, at a later time: the count
             * holds until the first version counted visible expires. */
            uint64_t x = blob_expires(b, (uint32_t)len);
            if (x && x < it->next_expiry)
                it->next_expiry = x;
        }
        tkv_store_iter_next(iter);
    }
    return 0;
}

void tkv_engine_load_run(tkv_engine *e, tkv_eng_load *l)
{
    l->seen = atomic_load(&e->disk_epoch);
    if (l->closed) {
        for (size_t i = 0; i < l->nitems; i++)
            l->item[i].rc = -1;
        snprintf(l->err, sizeof l->err, "the store is closed (a reopen failed)");
        return;
    }
    tkv_store_iter *iter = tkv_store_iter_new(e->store, NULL);
    for (size_t i = 0; i < l->nitems; i++) {
        load_item *it = &l->item[i];
        it->r0 = l->nrecs;
        if (!iter) {
            it->rc = -1;
            snprintf(l->err, sizeof l->err, "out of memory");
            continue;
        }
        eng_key k = eng_key_make(it->key + it->klen, it->key, it->klen);
        it->rc = it->count  ? gather_count(it, &k, iter)
                 : it->fill ? gather_fill(l, it, &k, iter)
                            : gather_below(l, it, &k, iter);
        if (it->rc < 0 && !l->err[0])
            snprintf(l->err, sizeof l->err, "out of memory");
        if (it->rc > 0) {
            /* Too large: its records go, the next item reuses the room. */
            l->nrecs = it->r0;
            l->data.len = it->n ? l->recs[it->r0].off : l->data.len;
            it->n = 0;
        }
    }
    char err[160];
    if (iter && tkv_store_iter_status(iter, err, sizeof err) < 0) {
        for (size_t i = 0; i < l->nitems; i++)
            l->item[i].rc = -1;
        snprintf(l->err, sizeof l->err, "read failed: %s", err);
    }
    tkv_store_iter_free(iter);
}

/* ---- installing (the engine's thread) --------------------------------------- */

/* Puts the item's versions (all below E->lo's old value) under E's page in
 * one rebuild - each put an append - and lowers lo. The page wins on equal
 * timestamps: a staged version there is at least as new. */
static int install_below(tkv_engine *e, tkv_kentry *E, const tkv_eng_load *l, const load_item *it)
{
    const fill_rec *recs = it->n ? l->recs + it->r0 : NULL;
    tkv_vpage *np = NULL;
    uint32_t pn = tkv_vpage_count(E->page), pi = 0;
    size_t li = it->n;
    uint32_t added = 0;
    size_t blobs = 0;
    for (size_t i = 0; i < it->n; i++)
        blobs += recs[i].len;
    for (uint32_t i = 0; i < pn; i++)
        blobs += tkv_vpage_len(E->page, i);
    /* The timestamps np will hold (recs newest first, the page ascending). */
    uint64_t ts_lo = UINT64_MAX, ts_hi = 0;
    if (it->n > 0) {
        ts_lo = recs[it->n - 1].ts;
        ts_hi = recs[0].ts;
    }
    if (pn > 0) {
        ts_lo = tkv_vpage_ts(E->page, 0) < ts_lo ? tkv_vpage_ts(E->page, 0) : ts_lo;
        ts_hi = tkv_vpage_ts(E->page, pn - 1) > ts_hi ? tkv_vpage_ts(E->page, pn - 1) : ts_hi;
    }
    if (pn + it->n > 0 &&
        tkv_vpage_reserve(&np, (uint32_t)(pn + it->n), blobs, ts_lo, ts_hi) == LONG_MIN)
        return -1;
    while (li > 0 || pi < pn) {
        bool from_load = li > 0 && (pi >= pn || recs[li - 1].ts < tkv_vpage_ts(E->page, pi));
        if (li > 0 && pi < pn && recs[li - 1].ts == tkv_vpage_ts(E->page, pi)) {
            li--; /* shadowed by the page */
            continue;
        }
        bool replaced;
        long d;
        if (from_load) {
            const fill_rec *r = &recs[--li];
            d = tkv_vpage_put(&np, r->ts, l->data.data + r->off, r->len, NULL, 0, &replaced);
            added++;
        } else {
            d = tkv_vpage_put(&np, tkv_vpage_ts(E->page, pi), tkv_vpage_blob(E->page, pi),
                              tkv_vpage_len(E->page, pi), NULL, 0, &replaced);
            pi++;
        }
        if (d == LONG_MIN) {
            tkv_vpage_free(np);
            return -1;
        }
    }
    eng_account_page(e, (long)tkv_vpage_bytes(np) - (long)tkv_vpage_bytes(E->page));
    tkv_vpage_free(E->page);
    E->page = np;
    e->st.mem_versions += added;
    if (it->exhausted)
        E->lo = 0;
    else if (it->n > 0 && recs[it->n - 1].ts < it->down_to)
        E->lo = recs[it->n - 1].ts;
    else
        E->lo = it->down_to > 0 ? it->down_to : 1;
    return 0;
}

/* 1 installed, 0 stale, -1 failed or too large. */
static int install_item(tkv_engine *e, const tkv_eng_load *l, load_item *it)
{
    if (it->rc != 0)
        return -1;
    tkv_kentry *E = tkv_keyindex_find(&e->ix, it->key, it->klen);
    uint8_t *kbuf = it->key + it->klen;
    uint64_t touch = touch_of(e, kbuf, it->key, it->klen);
    bool fresh = l->gen == e->gen && e->store_open && touch <= l->seen;
    if (it->count) {
        /* Kept for the operation that asked, run again next. */
        if (!fresh || !E || E->lo != it->below)
            return 0;
        eng_counted *c = &e->counted;
        if (tkv_grow(&c->key, &c->kcap, it->klen, 1, 64) < 0)
            return -1;
        if (it->klen)
            memcpy(c->key, it->key, it->klen);
        *c = (eng_counted){.valid = true,
                           .key = c->key,
                           .klen = it->klen,
                           .kcap = c->kcap,
                           .lo = it->below,
                           .touch = touch,
                           .all = it->n_all,
                           .visible = it->n_visible,
                           .horizon = it->horizon,
                           .next_expiry = it->next_expiry};
        return 1;
    }
    if (fresh && it->fill && !E && !e->all_resident) {
        eng_key k = eng_key_make(kbuf, it->key, it->klen);
        tkv_eng_rc st;
        E = eng_fill_from(e, &k, it->has_meta ? &it->meta : NULL, it->n ? l->recs + it->r0 : NULL,
                          it->n, l->data.data, it->exhausted, &st);
        return E ? 1 : -1;
    }
    if (fresh && !it->fill && E && E->lo == it->below && E->lo > 0) {
        if (install_below(e, E, l, it) < 0)
            return -1;
        E->ref = 1;
        e->st.fills++;
        return 1;
    }
    return 0;
}

int tkv_engine_load_install(tkv_engine *e, tkv_eng_load *l)
{
    int rc = 1;
    for (size_t i = 0; i < l->nitems; i++) {
        int r = install_item(e, l, &l->item[i]);
        if (r == 0)
            e->st.loads_stale++;
        if (r < rc)
            rc = r;
    }
    tkv_engine_load_free(e, l);
    return rc;
}
