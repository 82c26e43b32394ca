/*
 * read.c - GET, GET by ordinal, RANGE and COUNT, all built on one merged
 * cursor over a key's visible versions.
 *
 * The cursor walks the key's page and, below the page's watermark lo, the
 * key's LevelDB records, merging the two by timestamp (the page wins on a
 * tie: it may hold a staged write LevelDB has not seen) and skipping
 * versions that are not visible (expired, or before the retention horizon).
 * In a descending walk LevelDB is only touched once the walk passes below
 * lo, so the common read - a recent version of a resident key - never
 * leaves memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* ---- the LevelDB part ------------------------------------------------------ */

static void dcur_load(dcur *c)
{
    c->valid = eng_iter_match(c->k, c->it, &c->ts) && c->ts >= c->from && c->ts <= c->to;
}

/* LevelDB keeps a key's versions newest first: ascending in time is
 * LevelDB's backward direction. */
static void dcur_start(dcur *c)
{
    eng_key *k = c->k;
    if (!c->asc) {
        tkv_store_iter_seek(c->it, k->buf, eng_key_at(k, c->to));
        dcur_load(c);
        return;
    }
    tkv_store_iter_seek(c->it, k->buf, eng_key_at(k, c->from));
    uint64_t ts;
    if (eng_iter_match(k, c->it, &ts) && ts == c->from) {
        dcur_load(c);
        return;
    }
    if (tkv_store_iter_valid(c->it))
        tkv_store_iter_prev(c->it);
    else
        tkv_store_iter_seek_last(c->it);
    dcur_load(c);
}

static void dcur_next(dcur *c)
{
    if (c->asc)
        tkv_store_iter_prev(c->it);
    else
        tkv_store_iter_next(c->it);
    dcur_load(c);
}

/* ---- the merged cursor --------------------------------------------------------- */

vis eng_vis(tkv_engine *e, const tkv_kentry *E)
{
    vis v = {.horizon = 0, .now = 0, .check_expiry = false};
    if (E && E->meta) {
        v.horizon = E->meta->horizon;
        if (E->meta->min_expiry != UINT64_MAX) {
            v.now = eng_now(e);
            v.check_expiry = E->meta->min_expiry <= v.now;
        }
    }
    return v;
}

/* The LevelDB part covers [from, min(to, lo - 1)]; in a descending walk it
 * starts once the page has nothing left at or above lo. */
static void maybe_start_disk(vcur *c)
{
    uint64_t lo = c->E->lo;
    if (c->disk_on || lo == 0 || c->from >= lo)
        return;
    if (!c->asc) {
        bool page_left = c->pi >= c->pa && c->pi < c->pb;
        if (page_left && tkv_vpage_ts(c->E->page, (uint32_t)c->pi) >= lo)
            return;
    }
    if (c->e->nonblock) {
        /* An ascending walk needs every version from `from` up; a descending
         * one the versions down to `to` and then a chunk more. */
        uint64_t top = c->to < lo ? c->to : lo - 1;
        if (c->asc)
            eng_want_extend(c->e, c->k, lo, c->from, 0);
        else
            eng_want_extend(c->e, c->k, lo, top, eng_want_chunk(c->e));
        c->disk_on = true;
        c->disk_failed = true;
        return;
    }
    c->disk_on = true;
    c->e->touched_disk = true;
    c->dc = (dcur){.e = c->e,
                   .k = c->k,
                   .it = eng_iter(c->e),
                   .from = c->from,
                   .to = c->to < lo ? c->to : lo - 1,
                   .asc = c->asc};
    if (!c->dc.it) {
        c->disk_failed = true;
        return;
    }
    dcur_start(&c->dc);
}

/* Moves past the current entry's source position. */
static void advance(vcur *c)
{
    if (c->cur_page)
        c->pi += c->asc ? 1 : -1;
    else
        dcur_next(&c->dc);
}

/* Settles on the next visible entry at or after the sources' positions. */
static void pick(vcur *c)
{
    const tkv_vpage *p = c->E->page;
    for (;;) {
        maybe_start_disk(c);
        bool hp = c->pi >= c->pa && c->pi < c->pb;
        bool hd = c->disk_on && !c->disk_failed && c->dc.valid;
        if (hp && hd && tkv_vpage_ts(p, (uint32_t)c->pi) == c->dc.ts) {
            dcur_next(&c->dc); /* shadowed by the page */
            continue;
        }
        if (!hp && !hd) {
            c->valid = false;
            return;
        }
        c->cur_page = hp && (!hd || (c->asc ? tkv_vpage_ts(p, (uint32_t)c->pi) < c->dc.ts
                                            : tkv_vpage_ts(p, (uint32_t)c->pi) > c->dc.ts));
        if (c->cur_page) {
            c->ts = tkv_vpage_ts(p, (uint32_t)c->pi);
            c->blob = tkv_vpage_blob(p, (uint32_t)c->pi);
            c->len = tkv_vpage_len(p, (uint32_t)c->pi);
        } else {
            size_t vlen;
            c->ts = c->dc.ts;
            c->blob = (const uint8_t *)tkv_store_iter_value(c->dc.it, &vlen);
            c->len = (uint32_t)vlen;
        }
        if (vis_ok(&c->v, c->ts, c->blob, c->len)) {
            c->valid = true;
            return;
        }
        advance(c);
    }
}

void vcur_init(vcur *c, tkv_engine *e, eng_key *k, const tkv_kentry *E, const vis *v, bool asc,
               uint64_t from, uint64_t to)
{
    memset(c, 0, sizeof *c);
    c->e = e;
    c->k = k;
    c->E = E;
    c->v = *v;
    c->asc = asc;
    c->from = from > v->horizon ? from : v->horizon;
    c->to = to;
    const tkv_vpage *p = E->page;
    c->pa = (long)tkv_vpage_lower(p, c->from);
    c->pb =
        c->to == TKV_ENG_TS_MAX ? (long)tkv_vpage_count(p) : (long)tkv_vpage_lower(p, c->to + 1);
    if (c->from > c->to)
        c->pb = c->pa;
    c->pi = asc ? c->pa : c->pb - 1;
    if (c->from > c->to) {
        c->valid = false;
        return;
    }
    pick(c);
}

void vcur_next(vcur *c)
{
    if (!c->valid)
        return;
    advance(c);
    pick(c);
}

int vcur_error(vcur *c)
{
    if (c->disk_failed)
        return -1;
    return c->disk_on ? eng_iter_failed(c->e, c->dc.it) : 0;
}

/* ---- GET ------------------------------------------------------------------- */

static void count_read(tkv_engine *e)
{
    /* A read run again after a load went to LevelDB too, off the loop. */
    if (e->touched_disk || e->nb_attempt > 0)
        e->st.reads_disk++;
    else
        e->st.reads_mem++;
}

/* Looks a key up for a read; NULL with OK means it has no versions. */
static tkv_kentry *read_lookup(tkv_engine *e, eng_key *k, tkv_eng_rc *st)
{
    uint64_t fills = e->st.fills;
    e->touched_disk = false;
    tkv_kentry *E = eng_lookup(e, k, false, st);
    if (e->st.fills != fills)
        e->touched_disk = true;
    return E;
}

/* The first visible version after t, for validity intervals and misses. */
static tkv_eng_rc next_after(tkv_engine *e, eng_key *k, const tkv_kentry *E, const vis *v,
                             uint64_t t, tkv_answer *out)
{
    if (t == TKV_ENG_TS_MAX)
        return TKV_E_OK;
    vcur c;
    vcur_init(&c, e, k, E, v, true, t + 1, TKV_ENG_TS_MAX);
    if (c.valid) {
        out->has_next = true;
        out->next = c.ts;
    }
    return vcur_error(&c) < 0 ? eng_read_failed(e) : TKV_E_OK;
}

/* Fills out from the version under the cursor. A LevelDB value is copied:
 * the next walk moves the iterator. */
static tkv_eng_rc answer_from(tkv_engine *e, const vcur *c, tkv_answer *out)
{
    const uint8_t *blob = c->blob;
    if (!c->cur_page) {
        tkv_buf_reset(&e->scratch);
        if (tkv_buf_append(&e->scratch, c->blob, c->len) < 0) {
            snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
            return TKV_E_NOMEM;
        }
        blob = e->scratch.data;
    }
    out->ts = c->ts;
    if (blob_tombstone(blob, c->len)) {
        out->miss = TKV_EM_DELETED;
        out->at = c->ts;
        return TKV_E_NOT_FOUND;
    }
    out->value = blob_value(blob, c->len, &out->len);
    out->expires = blob_expires(blob, c->len);
    return TKV_E_OK;
}

/* A miss before the first visible version (or of a key without any). */
static tkv_eng_rc answer_none(tkv_engine *e, eng_key *k, const tkv_kentry *E, const vis *v,
                              uint64_t t, tkv_answer *out)
{
    tkv_eng_rc st = next_after(e, k, E, v, t, out);
    if (st != TKV_E_OK)
        return st;
    out->miss = out->has_next ? TKV_EM_BEFORE_FIRST : TKV_EM_NO_KEY;
    return TKV_E_NOT_FOUND;
}

/* The start of every single-key answer: the key's entry and what is
 * visible of it. Returns OK with *E set, or the final status (NOT_FOUND:
 * no such key). */
static tkv_eng_rc answer_key(tkv_engine *e, eng_key *k, tkv_answer *out, tkv_kentry **E, vis *v)
{
    memset(out, 0, sizeof *out);
    tkv_eng_rc st;
    *E = read_lookup(e, k, &st);
    if (st != TKV_E_OK)
        return st;
    if (!*E) {
        count_read(e);
        out->miss = TKV_EM_NO_KEY;
        return TKV_E_NOT_FOUND;
    }
    out->dirty = eng_uncommitted(e, *E);
    *v = eng_vis(e, *E);
    return TKV_E_OK;
}

/* The common read: the version current at T is in the page at or above
 * lo, and no version can be hidden (no horizon past it, nothing expired).
 * Then the page alone answers - its next slot is the next version - in a
 * binary search, without the merged cursor. Returns false to fall back. */
static bool fast_get(tkv_engine *e, const tkv_kentry *E, const vis *v, uint64_t T, tkv_answer *out,
                     tkv_eng_rc *st)
{
    const tkv_vpage *p = E->page;
    if (v->check_expiry || !p)
        return false;
    long i = tkv_vpage_floor(p, T);
    if (i < 0 || tkv_vpage_ts(p, (uint32_t)i) < E->lo || tkv_vpage_ts(p, (uint32_t)i) < v->horizon)
        return false;
    const uint8_t *blob = tkv_vpage_blob(p, (uint32_t)i);
    uint32_t len = tkv_vpage_len(p, (uint32_t)i);
    out->ts = tkv_vpage_ts(p, (uint32_t)i);
    out->has_next = (uint32_t)(i + 1) < p->count;
    out->next = out->has_next ? tkv_vpage_ts(p, (uint32_t)i + 1) : 0;
    if (blob_tombstone(blob, len)) {
        out->miss = TKV_EM_DELETED;
        out->at = out->ts;
        *st = TKV_E_NOT_FOUND;
    } else {
        out->value = blob_value(blob, len, &out->len);
        out->expires = blob_expires(blob, len);
        *st = TKV_E_OK;
    }
    count_read(e);
    return true;
}

tkv_eng_rc tkv_engine_get(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t T,
                          tkv_answer *out)
{
    tkv_kentry *E;
    vis v;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_eng_rc st = answer_key(e, &k, out, &E, &v);
    if (st != TKV_E_OK)
        return st;
    if (fast_get(e, E, &v, T, out, &st))
        return st;
    if (T < v.horizon) {
        st = next_after(e, &k, E, &v, v.horizon - 1, out);
        count_read(e);
        out->miss = TKV_EM_BELOW_HORIZON;
        out->at = v.horizon;
        return st == TKV_E_OK ? TKV_E_NOT_FOUND : st;
    }
    vcur c;
    vcur_init(&c, e, &k, E, &v, false, 0, T);
    if (vcur_error(&c) < 0)
        return eng_read_failed(e);
    if (!c.valid) {
        st = answer_none(e, &k, E, &v, T, out);
        count_read(e);
        return st;
    }
    tkv_eng_rc found = answer_from(e, &c, out);
    if (found != TKV_E_OK && found != TKV_E_NOT_FOUND)
        return found;
    st = next_after(e, &k, E, &v, out->ts, out);
    count_read(e);
    return st == TKV_E_OK ? found : st;
}

tkv_eng_rc tkv_engine_get_nth(tkv_engine *e, const uint8_t *key, size_t klen, int64_t n,
                              tkv_answer *out)
{
    if (n == 0) {
        memset(out, 0, sizeof *out);
        snprintf(e->errmsg, sizeof e->errmsg, "versions are numbered from 1 (or -1, newest)");
        return TKV_E_OUT_OF_RANGE;
    }
    tkv_kentry *E;
    vis v;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_eng_rc st = answer_key(e, &k, out, &E, &v);
    if (st != TKV_E_OK)
        return st;
    vcur c;
    vcur_init(&c, e, &k, E, &v, n > 0, 0, TKV_ENG_TS_MAX);
    bool any = c.valid;
    uint64_t steps = n > 0 ? (uint64_t)n - 1 : (uint64_t)(-(n + 1));
    for (uint64_t i = 0; i < steps && c.valid; i++)
        vcur_next(&c);
    if (vcur_error(&c) < 0)
        return eng_read_failed(e);
    count_read(e);
    if (!c.valid) {
        out->miss = any ? TKV_EM_NO_SUCH_VERSION : TKV_EM_NO_KEY;
        return TKV_E_NOT_FOUND;
    }
    tkv_eng_rc found = answer_from(e, &c, out);
    if (found != TKV_E_OK && found != TKV_E_NOT_FOUND)
        return found;
    st = next_after(e, &k, E, &v, out->ts, out);
    return st == TKV_E_OK ? found : st;
}

/* ---- RANGE and COUNT ------------------------------------------------------------ */

tkv_eng_rc tkv_engine_range(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t limit, bool reverse, tkv_range_cb cb, void *ctx,
                            bool *dirty)
{
    *dirty = false;
    tkv_eng_rc st;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = read_lookup(e, &k, &st);
    if (st != TKV_E_OK)
        return st;
    if (!E || from > to || limit == 0) {
        count_read(e);
        return TKV_E_OK;
    }
    *dirty = eng_uncommitted(e, E);
    vis v = eng_vis(e, E);
    vcur c;
    vcur_init(&c, e, &k, E, &v, !reverse, from, to);
    for (uint64_t n = 0; c.valid && n < limit; n++) {
        tkv_entry_view ev = {.ts = c.ts, .expires = blob_expires(c.blob, c.len)};
        if (!blob_tombstone(c.blob, c.len))
            ev.value = blob_value(c.blob, c.len, &ev.len);
        if (!cb(ctx, &ev))
            break;
        vcur_next(&c);
    }
    count_read(e);
    return vcur_error(&c) < 0 ? eng_read_failed(e) : TKV_E_OK;
}

tkv_eng_rc tkv_engine_count(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t *n, bool *dirty)
{
    *n = 0;
    *dirty = false;
    tkv_eng_rc st;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = read_lookup(e, &k, &st);
    if (st != TKV_E_OK)
        return st;
    if (!E || from > to) {
        count_read(e);
        return TKV_E_OK;
    }
    *dirty = eng_uncommitted(e, E);
    vis v = eng_vis(e, E);
    uint64_t lo_bound = from > v.horizon ? from : v.horizon;
    if (!v.check_expiry && (E->lo == 0 || lo_bound >= E->lo)) {
        /* Every stored version in range is visible and in the page. */
        const tkv_vpage *p = E->page;
        uint32_t a = tkv_vpage_lower(p, lo_bound);
        uint32_t b = to == TKV_ENG_TS_MAX ? tkv_vpage_count(p) : tkv_vpage_lower(p, to + 1);
        *n = lo_bound > to || b < a ? 0 : b - a;
        count_read(e);
        return TKV_E_OK;
    }
    vcur c;
    vcur_init(&c, e, &k, E, &v, true, from, to);
    while (c.valid) {
        (*n)++;
        vcur_next(&c);
    }
    count_read(e);
    return vcur_error(&c) < 0 ? eng_read_failed(e) : TKV_E_OK;
}

void tkv_engine_prefetch(const tkv_engine *e, const tkv_eng_kref *keys, size_t n)
{
    uint64_t h[TKV_ENG_PREFETCH_MAX];
    const tkv_kentry *E[TKV_ENG_PREFETCH_MAX];
    if (n > TKV_ENG_PREFETCH_MAX)
        n = TKV_ENG_PREFETCH_MAX;
    /* Each stage reads what the one before asked for: by the time it comes
     * back to the first key, that key's line has had n lookups' time to
     * arrive. */
    for (size_t i = 0; i < n; i++) {
        h[i] = tkv_keyindex_hash(&e->ix, keys[i].key, keys[i].len);
        __builtin_prefetch(tkv_keyindex_home(&e->ix, h[i]));
    }
    for (size_t i = 0; i < n; i++) {
        E[i] = tkv_keyindex_guess(&e->ix, h[i]);
        if (E[i]) {
            /* The entry and the line after it, where the key bytes of a
             * short key end: tkv_kentry_key() would read the entry's
             * height, waiting for the very miss being prefetched. */
            __builtin_prefetch(E[i]);
            __builtin_prefetch((const char *)E[i] + 64);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!E[i])
            continue;
        if (E[i]->page)
            tkv_vpage_prefetch(E[i]->page);
        if (E[i]->meta)
            __builtin_prefetch(E[i]->meta);
    }
}
