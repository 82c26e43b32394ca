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

struct tkv_eng_load {
    /* what to load */
    bool fill;
    uint32_t versions;
    uint64_t below, down_to;
    uint32_t extra;
    uint64_t gen;
    size_t max_bytes;
    uint8_t *key; /* klen bytes, then tkv_kc_max(klen) bytes of encoding room */
    size_t klen;
    /* what was loaded */
    uint64_t seen; /* every batch up to this epoch was in what the load read */
    int rc;        /* 0, -1 failed (err), 1 larger than max_bytes */
    char err[200];
    bool has_meta;
    tkv_kmeta meta;
    fill_rec *recs; /* newest first */
    size_t n, cap;
    tkv_buf data;
    bool exhausted; /* no version of the key older than the last loaded */
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

tkv_eng_rc eng_want_fill(tkv_engine *e, eng_key *k, uint32_t versions)
{
    e->want =
        (eng_want){.set = true, .fill = true, .versions = versions, .key = k->key, .klen = k->klen};
    snprintf(e->errmsg, sizeof e->errmsg, "waiting for a load");
    return TKV_E_WOULD_BLOCK;
}

tkv_eng_rc eng_want_extend(tkv_engine *e, eng_key *k, uint64_t below, uint64_t down_to,
                           uint32_t extra)
{
    e->want = (eng_want){.set = true,
                         .below = below,
                         .down_to = down_to,
                         .extra = extra,
                         .key = k->key,
                         .klen = k->klen};
    snprintf(e->errmsg, sizeof e->errmsg, "waiting for a load");
    return TKV_E_WOULD_BLOCK;
}

void tkv_engine_set_nonblocking(tkv_engine *e, bool on, unsigned attempt)
{
    e->nonblock = on;
    e->nb_attempt = attempt;
    e->want.set = false;
}

tkv_eng_load *tkv_engine_load_take(tkv_engine *e)
{
    if (!e->want.set)
        return NULL;
    e->want.set = false;
    size_t klen = e->want.klen;
    tkv_eng_load *l = calloc(1, sizeof *l);
    if (!l || !(l->key = malloc(klen + tkv_kc_max(klen)))) {
        free(l);
        return NULL;
    }
    memcpy(l->key, e->want.key, klen);
    l->klen = klen;
    l->fill = e->want.fill;
    l->versions = e->want.versions;
    l->below = e->want.below;
    l->down_to = e->want.down_to;
    l->extra = e->want.extra;
    l->gen = e->gen;
    /* A key's share of the budget: what does not fit could not stay. */
    l->max_bytes = eng_key_budget(e);
    tkv_buf_init(&l->data);
    e->loads_out++;
    e->st.loads++;
    return l;
}

void tkv_engine_load_free(tkv_engine *e, tkv_eng_load *l)
{
    if (!l)
        return;
    e->loads_out--;
    free(l->key);
    free(l->recs);
    tkv_buf_deinit(&l->data);
    free(l);
}

/* ---- loading (any thread) -------------------------------------------------- */

/* An extend: the key's versions below l->below, newest first, down to
 * down_to and then `extra` more. */
static int gather_below(tkv_eng_load *l, eng_key *k, tkv_store_iter *it)
{
    tkv_store_iter_seek(it, k->buf, eng_key_at(k, l->below - 1));
    uint32_t extra = l->extra;
    uint64_t ts;
    while (eng_iter_match(k, it, &ts)) {
        if (ts < l->down_to) {
            if (extra == 0)
                break;
            extra--;
        }
        size_t vlen;
        const uint8_t *v = tkv_store_iter_value(it, &vlen);
        if (l->data.len + vlen > l->max_bytes)
            return 1;
        if (tkv_grow(&l->recs, &l->cap, l->n + 1, sizeof *l->recs, 64) < 0)
            return -1;
        l->recs[l->n++] = (fill_rec){.ts = ts, .off = l->data.len, .len = (uint32_t)vlen};
        if (tkv_buf_append(&l->data, v, vlen) < 0)
            return -1;
        tkv_store_iter_next(it);
    }
    l->exhausted = !eng_iter_match(k, it, &ts);
    return 0;
}

void tkv_engine_load_run(tkv_engine *e, tkv_eng_load *l)
{
    l->seen = atomic_load(&e->disk_epoch);
    tkv_store_iter *it = tkv_store_iter_new(e->store, NULL);
    if (!it) {
        l->rc = -1;
        snprintf(l->err, sizeof l->err, "out of memory");
        return;
    }
    eng_key k = eng_key_make(l->key + l->klen, l->key, l->klen);
    if (l->fill) {
        l->rc = eng_read_meta(it, l->key + l->klen, l->key, l->klen, &l->meta, &l->has_meta);
        if (l->rc < 0)
            snprintf(l->err, sizeof l->err, "malformed metadata record");
        else
            l->rc = eng_gather(&k, it, l->versions, l->max_bytes, &l->recs, &l->cap, &l->data,
                               &l->n, &l->exhausted);
    } else if (l->below > 0) {
        l->rc = gather_below(l, &k, it);
    } else {
        l->exhausted = true;
    }
    if (l->rc < 0 && !l->err[0])
        snprintf(l->err, sizeof l->err, "out of memory");
    char err[160];
    if (tkv_store_iter_status(it, err, sizeof err) < 0) {
        l->rc = -1;
        snprintf(l->err, sizeof l->err, "read failed: %s", err);
    }
    tkv_store_iter_free(it);
}

/* ---- installing (the engine's thread) --------------------------------------- */

/* Puts the loaded versions (all below E->lo's old value) under E's page in
 * one rebuild - each put an append - and lowers lo. The page wins on equal
 * timestamps: a staged version there is at least as new. */
static int install_below(tkv_engine *e, tkv_kentry *E, tkv_eng_load *l)
{
    tkv_vpage *np = NULL;
    uint32_t pn = tkv_vpage_count(E->page), pi = 0;
    size_t li = l->n;
    uint32_t added = 0;
    size_t blobs = l->data.len;
    for (uint32_t i = 0; i < pn; i++)
        blobs += E->page->slot[i].len;
    if (pn + l->n > 0 && tkv_vpage_reserve(&np, (uint32_t)(pn + l->n), blobs) == LONG_MIN)
        return -1;
    while (li > 0 || pi < pn) {
        bool from_load = li > 0 && (pi >= pn || l->recs[li - 1].ts < E->page->slot[pi].ts);
        if (li > 0 && pi < pn && l->recs[li - 1].ts == E->page->slot[pi].ts) {
            li--; /* shadowed by the page */
            continue;
        }
        bool replaced;
        long d;
        if (from_load) {
            const fill_rec *r = &l->recs[--li];
            d = tkv_vpage_put(&np, r->ts, l->data.data + r->off, r->len, NULL, 0, &replaced);
            added++;
        } else {
            d = tkv_vpage_put(&np, E->page->slot[pi].ts, tkv_vpage_blob(E->page, pi),
                              E->page->slot[pi].len, NULL, 0, &replaced);
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
    if (l->exhausted)
        E->lo = 0;
    else if (l->n > 0 && l->recs[l->n - 1].ts < l->down_to)
        E->lo = l->recs[l->n - 1].ts;
    else
        E->lo = l->down_to > 0 ? l->down_to : 1;
    return 0;
}

int tkv_engine_load_install(tkv_engine *e, tkv_eng_load *l)
{
    int installed = 0;
    tkv_kentry *E = tkv_keyindex_find(&e->ix, l->key, l->klen);
    uint8_t *kbuf = l->key + l->klen;
    bool fresh = l->rc == 0 && l->gen == e->gen && e->store_open &&
                 touch_of(e, kbuf, l->key, l->klen) <= l->seen;
    if (fresh && l->fill && !E && !e->all_resident) {
        eng_key k = eng_key_make(kbuf, l->key, l->klen);
        tkv_eng_rc st;
        E = eng_fill_from(e, &k, l->has_meta ? &l->meta : NULL, l->recs, l->n, l->data.data,
                          l->exhausted, &st);
        installed = E != NULL;
    } else if (fresh && !l->fill && E && E->lo == l->below && E->lo > 0) {
        installed = install_below(e, E, l) == 0;
        if (installed) {
            E->ref = 1;
            e->st.fills++;
        }
    }
    int rc = installed ? 1 : l->rc == 0 ? 0 : -1;
    if (rc == 0)
        e->st.loads_stale++;
    tkv_engine_load_free(e, l);
    return rc;
}
