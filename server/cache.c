/*
 * cache.c - what the engine keeps in memory: loading keys from LevelDB,
 * trimming their pages, and evicting cold keys to hold the memory budget.
 *
 * The cache is organised per key (see engine.h for the invariant). A key is
 * loaded whole-or-suffix on first access; its page is trimmed to the
 * residency limits after each commit; and when the index passes the memory
 * budget, a clock sweep over the keys evicts those not used since the hand
 * last passed them. Evicting a key only ever drops copies: LevelDB holds
 * every committed version, so nothing is lost to the budget.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "grow.h"

/* Sweep steps per maintenance call: eviction never stalls the reactor for
 * long, even when most keys were used recently. */
#define EVICT_STEPS 20000

size_t eng_mem_bytes(const tkv_engine *e) { return e->ix.bytes + e->page_bytes; }

void eng_account_page(tkv_engine *e, long delta)
{
    e->page_bytes = (size_t)((long)e->page_bytes + delta);
}

void eng_drop_entry(tkv_engine *e, tkv_kentry *E)
{
    if (e->hand == E)
        e->hand = tkv_keyindex_next(E);
    if (E->page || E->lo > 0)
        e->all_resident = false; /* the index no longer knows this key */
    if (E->meta)
        e->all_resident = false; /* its metadata must be reloaded */
    e->st.mem_versions -= tkv_vpage_count(E->page);
    eng_account_page(e, -(long)tkv_vpage_bytes(E->page));
    tkv_vpage_free(E->page);
    E->page = NULL;
    free(E->meta);
    E->meta = NULL;
    tkv_keyindex_remove(&e->ix, E);
}

void eng_remove_slots(tkv_engine *e, tkv_kentry *E, uint32_t from, uint32_t to)
{
    uint32_t before = tkv_vpage_count(E->page);
    eng_account_page(e, tkv_vpage_remove(&E->page, from, to));
    e->st.mem_versions -= before - tkv_vpage_count(E->page);
}

/* ---- loading keys from LevelDB ------------------------------------------ */

/* Reads the key's metadata record, if any, and leaves the iterator on the
 * key's newest version: the record sorts right before it. kbuf has room
 * for the key's encoding. */
int eng_read_meta(tkv_store_iter *it, uint8_t *kbuf, const uint8_t *key, size_t klen, tkv_kmeta *m,
                  bool *found)
{
    size_t mlen = tkv_kc_meta(kbuf, key, klen);
    tkv_store_iter_seek(it, (const char *)kbuf, mlen);
    *found = false;
    if (!tkv_store_iter_valid(it))
        return 0;
    size_t n;
    const uint8_t *k = tkv_store_iter_key(it, &n);
    if (n != mlen || memcmp(k, kbuf, mlen) != 0)
        return 0;
    size_t vlen;
    const uint8_t *v = tkv_store_iter_value(it, &vlen);
    if (eng_meta_decode((const uint8_t *)v, vlen, m) < 0)
        return -1;
    *found = true;
    tkv_store_iter_next(it);
    return 0;
}

int eng_gather(eng_key *k, tkv_store_iter *it, uint32_t want, size_t max_bytes, fill_rec **recs,
               size_t *cap, tkv_buf *data, size_t *n, bool *exhausted)
{
    tkv_buf_reset(data);
    *n = 0;
    uint64_t ts;
    while (*n < want && eng_iter_match(k, it, &ts)) {
        size_t vlen;
        const uint8_t *v = tkv_store_iter_value(it, &vlen);
        if (data->len + vlen > max_bytes)
            return 1;
        if (tkv_grow(recs, cap, *n + 1, sizeof **recs, 64) < 0)
            return -1;
        (*recs)[*n] = (fill_rec){.ts = ts, .off = data->len, .len = (uint32_t)vlen};
        if (tkv_buf_append(data, v, vlen) < 0)
            return -1;
        (*n)++;
        tkv_store_iter_next(it);
    }
    *exhausted = !eng_iter_match(k, it, &ts);
    return 0;
}

tkv_kentry *eng_fill_from(tkv_engine *e, eng_key *k, const tkv_kmeta *m, const fill_rec *recs,
                          size_t n, const uint8_t *data, bool exhausted, tkv_eng_rc *st)
{
    tkv_kentry *E = tkv_keyindex_insert(&e->ix, k->key, k->klen);
    if (!E || (m && !(E->meta = malloc(sizeof *m)))) {
        if (E)
            eng_drop_entry(e, E);
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        *st = TKV_E_NOMEM;
        return NULL;
    }
    if (m)
        *E->meta = *m;
    size_t blobs = 0;
    for (size_t i = 0; i < n; i++)
        blobs += recs[i].len;
    long r = n ? tkv_vpage_reserve(&E->page, (uint32_t)n, blobs, recs[n - 1].ts, recs[0].ts) : 0;
    if (r == LONG_MIN) {
        eng_drop_entry(e, E);
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        *st = TKV_E_NOMEM;
        return NULL;
    }
    eng_account_page(e, r);
    /* Gathered newest first; append oldest first so every put is an append. */
    for (size_t i = n; i-- > 0;) {
        bool replaced;
        long d = tkv_vpage_put(&E->page, recs[i].ts, data + recs[i].off, recs[i].len, NULL, 0,
                               &replaced);
        if (d == LONG_MIN) {
            eng_drop_entry(e, E);
            snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
            *st = TKV_E_NOMEM;
            return NULL;
        }
        eng_account_page(e, d);
        e->st.mem_versions++;
    }
    E->lo = exhausted || n == 0 ? 0 : recs[n - 1].ts;
    e->st.fills++;
    *st = TKV_E_OK;
    return E;
}

/* Makes k resident with its newest `want` versions. */
static tkv_kentry *fill(tkv_engine *e, eng_key *k, uint32_t want, tkv_eng_rc *st)
{
    tkv_store_iter *it = eng_iter(e);
    if (!it) {
        *st = TKV_E_STORAGE;
        return NULL;
    }
    size_t n;
    bool exhausted, has_meta;
    tkv_kmeta meta;
    if (eng_read_meta(it, e->kbuf, k->key, k->klen, &meta, &has_meta) < 0) {
        snprintf(e->errmsg, sizeof e->errmsg, "malformed metadata record");
        *st = TKV_E_STORAGE;
        return NULL;
    }
    if (eng_gather(k, it, want, SIZE_MAX, &e->recs, &e->nrecs_cap, &e->fillbuf, &n, &exhausted) <
        0) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        *st = TKV_E_NOMEM;
        return NULL;
    }
    if (eng_iter_failed(e, it) < 0) {
        *st = TKV_E_STORAGE;
        return NULL;
    }
    return eng_fill_from(e, k, has_meta ? &meta : NULL, e->recs, n, e->fillbuf.data, exhausted, st);
}

tkv_kentry *eng_lookup(tkv_engine *e, eng_key *k, bool create, tkv_eng_rc *st)
{
    *st = TKV_E_OK;
    tkv_kentry *E = tkv_keyindex_find(&e->ix, k->key, k->klen);
    if (E) {
        E->ref = 1;
        return E;
    }
    if (e->all_resident) {
        if (!create)
            return NULL;
        E = tkv_keyindex_insert(&e->ix, k->key, k->klen);
        if (!E) {
            snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
            *st = TKV_E_NOMEM;
        }
        return E;
    }
    /* A write needs the newest version at most (and the metadata): loading
     * more of a cold key would make ingest read what it writes past. */
    uint32_t want = create ? 1 : e->opts.fill_versions;
    if (e->nonblock) {
        *st = eng_want_fill(e, k, want);
        return NULL;
    }
    return fill(e, k, want, st);
}

tkv_kentry *eng_write_lookup(tkv_engine *e, eng_key *k, bool create, tkv_eng_rc *st)
{
    if (eng_writable(e) < 0) {
        *st = TKV_E_STORAGE;
        return NULL;
    }
    if (eng_reserve_dirty(e) < 0) {
        *st = TKV_E_NOMEM;
        return NULL;
    }
    return eng_lookup(e, k, create, st);
}

/* ---- holding the budget ---------------------------------------------------- */

/* The share of --max-memory one key's page may keep: a single huge key must
 * not crowd out every other, yet a hot key's history still fits. */
#define KEY_BUDGET_DIV 16

size_t eng_key_budget(const tkv_engine *e)
{
    return e->opts.max_memory ? e->opts.max_memory / KEY_BUDGET_DIV : SIZE_MAX;
}

/* After a successful commit: drops staged deep-past versions (now on disk)
 * and holds the page to the residency limits, raising lo accordingly. The
 * newest version always stays. */
void eng_trim(tkv_engine *e, tkv_kentry *E)
{
    if (E->lo > 0)
        eng_remove_slots(e, E, 0, tkv_vpage_lower(E->page, E->lo));
    uint32_t n = tkv_vpage_count(E->page);
    uint32_t drop = n > e->opts.resident_versions ? n - e->opts.resident_versions : 0;
    size_t live = 0, cap = eng_key_budget(e);
    /* The whole page within the key's budget: no need to walk it. */
    uint32_t stop = tkv_vpage_bytes(E->page) <= cap ? n : drop;
    for (uint32_t i = n; i-- > stop;) {
        live += tkv_vpage_len(E->page, i) + tkv_vpage_slot_size(E->page);
        if (live > cap && i + 1 < n) {
            drop = i + 1;
            break;
        }
    }
    if (drop > 0) {
        eng_remove_slots(e, E, 0, drop);
        E->lo = tkv_vpage_ts(E->page, 0);
    }
}

/* A clock sweep: a key used since the hand last passed gets a second
 * chance; one that was not is evicted. */
static void evict(tkv_engine *e, size_t target)
{
    for (int steps = 0; steps < EVICT_STEPS && eng_mem_bytes(e) > target; steps++) {
        tkv_kentry *E = e->hand ? e->hand : tkv_keyindex_first(&e->ix);
        if (!E)
            return;
        e->hand = tkv_keyindex_next(E);
        if (E->ref) {
            E->ref = 0;
            continue;
        }
        if (eng_uncommitted(e, E))
            continue; /* its batch may still need it for a rollback */
        eng_drop_entry(e, E);
        e->st.evictions++;
    }
}

void tkv_engine_maintain(tkv_engine *e)
{
    if (!e->opts.max_memory)
        return;
    if (eng_mem_bytes(e) > e->opts.max_memory)
        evict(e, e->opts.max_memory - e->opts.max_memory / 20);
}
