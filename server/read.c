/*
 * read.c - GET and RANGE: answers from a key's page where the page is
 * authoritative (at or above its watermark lo), merged with LevelDB below
 * it. On equal timestamps the page wins: it holds the newer state (a staged
 * write not yet committed).
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

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
    memset(h, 0, sizeof *h);
    leveldb_iterator_t *it = eng_iter(e);
    if (!it)
        return -1;
    leveldb_iter_seek(it, (const char *)e->pfx, eng_with_ts(e, T));
    uint64_t ts;
    if (eng_iter_match(e, it, &ts)) {
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
    if (eng_iter_match(e, it, &ts)) {
        h->has_above = true;
        h->above = ts;
    }
    return eng_iter_failed(e, it);
}

/* A read counts as from disk if it loaded the key or merged with LevelDB. */
static void count_read(tkv_engine *e, bool disk)
{
    if (disk)
        e->st.reads_disk++;
    else
        e->st.reads_mem++;
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
    eng_set_prefix(e, key, klen);
    disk_hit d;
    if (disk_floor(e, T < E->lo ? T : E->lo - 1, &d) < 0)
        return TKV_ST_STORAGE;
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
    uint64_t fills = e->st.fills;
    tkv_kentry *E = eng_lookup(e, key, klen, false, &st);
    if (st != TKV_ST_OK)
        return st;
    bool loaded = e->st.fills != fills;
    if (!E) {
        e->st.reads_mem++;
        out->miss = TKV_M_NO_KEY;
        return TKV_ST_NOT_FOUND;
    }
    out->dirty = E->dirty_epoch == e->epoch;
    const tkv_vpage *p = E->page;
    long i = tkv_vpage_floor(p, T);
    if (i >= 0 && p->slot[i].ts >= E->lo) {
        count_read(e, loaded);
        answer(out, p->slot[i].ts, tkv_vpage_blob(p, (uint32_t)i), p->slot[i].len);
        out->has_next = (uint32_t)(i + 1) < p->count;
        out->next = out->has_next ? p->slot[i + 1].ts : 0;
        return TKV_ST_OK;
    }
    if (E->lo > 0) {
        count_read(e, true);
        return answer_below_lo(e, E, key, klen, T, i, out);
    }
    count_read(e, loaded);
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
    c->valid = eng_iter_match(c->e, c->it, &c->ts) && c->ts >= c->from && c->ts <= c->to;
}

static void dcur_start(dcur *c)
{
    tkv_engine *e = c->e;
    if (!c->asc) {
        leveldb_iter_seek(c->it, (const char *)e->pfx, eng_with_ts(e, c->to));
        dcur_load(c);
        return;
    }
    leveldb_iter_seek(c->it, (const char *)e->pfx, eng_with_ts(e, c->from));
    uint64_t ts;
    if (eng_iter_match(e, c->it, &ts) && ts == c->from) {
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
    dcur c = {.e = e, .it = eng_iter(e), .from = from, .to = to, .asc = asc};
    if (!c.it)
        return -1;
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
    return eng_iter_failed(e, c.it);
}

tkv_status tkv_engine_range(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t from,
                            uint64_t to, uint64_t limit, bool reverse, tkv_range_cb cb,
                            void *ctx, bool *dirty)
{
    *dirty = false;
    tkv_status st;
    uint64_t fills = e->st.fills;
    tkv_kentry *E = eng_lookup(e, key, klen, false, &st);
    bool loaded = e->st.fills != fills;
    if (st != TKV_ST_OK || !E || from > to || limit == 0) {
        if (st == TKV_ST_OK)
            count_read(e, loaded);
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
        count_read(e, loaded);
        emit_page(&em, p, hi_a, hi_b, !reverse);
        return TKV_ST_OK;
    }
    count_read(e, true);
    uint64_t low_to = to < lo ? to : lo - 1;
    uint32_t lo_a = tkv_vpage_lower(p, from), lo_b = tkv_vpage_lower(p, low_to + 1);
    eng_set_prefix(e, key, klen);
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

