/*
 * engine.c - implements the write operations of engine.h (PUT, tombstone,
 * DEL and the checks before them) and opening and closing the engine. What
 * memory holds lives in cache.c; reads in read.c; the staging batch, the
 * entries it dirties and committing it in commit.c; LevelDB behind
 * store.h.
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
 *
 * A write passes its key as an eng_key (engine_int.h) to everything that
 * encodes or seeks that key's records: there is no "current key" to set
 * first.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "engine_int.h"

#define DEFAULT_FILL 256

static uint64_t real_clock(void *ctx)
{
    (void)ctx;
    return tkv_clock_realtime_us();
}

int eng_iter_failed(tkv_engine *e, tkv_store_iter *it)
{
    char err[200];
    if (tkv_store_iter_status(it, err, sizeof err) == 0)
        return 0;
    snprintf(e->errmsg, sizeof e->errmsg, "read failed: %s", err);
    tkv_store_iter_release_shared(e->store);
    return -1;
}

tkv_store_iter *eng_iter(tkv_engine *e)
{
    if (e->store_open)
        return tkv_store_iter_shared(e->store);
    eng_store_closed(e);
    return NULL;
}

/* ---- writes ----------------------------------------------------------- */

uint64_t eng_now(tkv_engine *e) { return e->opts.clock(e->opts.clock_ctx); }

uint64_t tkv_engine_now(tkv_engine *e) { return eng_now(e); }

/* Whether a version of k (E) at ts exists. */
static int exists_below_lo(tkv_engine *e, eng_key *k, const tkv_kentry *E, uint64_t ts,
                           bool *exists)
{
    if (tkv_vpage_find(E->page, ts) >= 0) {
        *exists = true;
        return 0;
    }
    if (e->nonblock) {
        eng_want_extend(e, k, E->lo, ts, 0);
        return -1;
    }
    char *v;
    size_t vlen;
    if (!e->store_open) {
        eng_store_closed(e);
        return -1;
    }
    size_t n = eng_key_at(k, ts);
    int rc = tkv_store_get(e->store, NULL, k->buf, n, &v, &vlen, e->errmsg, sizeof e->errmsg);
    if (rc < 0)
        return -1;
    tkv_store_free(v);
    *exists = rc == 1;
    return 0;
}

/* The key's newest visible version: an expired version, or one below the
 * horizon, must not move a server-picked timestamp, or the answer would
 * depend on whether the sweep had deleted it yet. The merged cursor starts
 * at the top of the page, so this leaves memory only when the newest
 * resident versions are all invisible. */
static int newest_visible(tkv_engine *e, eng_key *k, const tkv_kentry *E, bool *has, uint64_t *ts)
{
    vis v = eng_vis(e, E);
    vcur c;
    vcur_init(&c, e, k, E, &v, false, 0, TKV_ENG_TS_MAX);
    *has = c.valid;
    *ts = c.valid ? c.ts : 0;
    return vcur_error(&c);
}

/* The timestamp of a write without one: the clock, but strictly after the
 * key's newest visible version and never below its horizon (a write there
 * would be refused). It may land on an invisible version, which it
 * replaces: nothing could read that one anyway. */
static tkv_eng_rc pick_ts(tkv_engine *e, eng_key *k, const tkv_kentry *E, uint64_t *ts)
{
    uint64_t now = eng_now(e), newest;
    bool has;
    if (newest_visible(e, k, E, &has, &newest) < 0)
        return eng_read_failed(e);
    if (has && newest == TKV_ENG_TS_MAX) {
        snprintf(e->errmsg, sizeof e->errmsg,
                 "the key has a version at the largest timestamp; no later one exists");
        return TKV_E_OUT_OF_RANGE;
    }
    *ts = has && newest >= now ? newest + 1 : now;
    if (E->meta && *ts < E->meta->horizon)
        *ts = E->meta->horizon;
    return TKV_E_OK;
}

/* The checks a write passes before anything is staged. */
static tkv_eng_rc check_write(tkv_engine *e, eng_key *k, tkv_kentry *E, uint64_t *ts, bool has_ts)
{
    tkv_eng_rc st;
    if (!has_ts && (st = pick_ts(e, k, E, ts)) != TKV_E_OK)
        return st;
    if (E->meta && *ts < E->meta->horizon) {
        snprintf(e->errmsg, sizeof e->errmsg,
                 "timestamp %llu is before the key's retention horizon %llu",
                 (unsigned long long)*ts, (unsigned long long)E->meta->horizon);
        return TKV_E_OUT_OF_RANGE;
    }
    return TKV_E_OK;
}

tkv_eng_rc tkv_engine_check_put(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t ts,
                                bool has_ts)
{
    if (eng_writable(e) < 0)
        return TKV_E_STORAGE;
    tkv_eng_rc st;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = eng_lookup(e, &k, true, &st);
    if (st != TKV_E_OK)
        return st;
    if ((st = check_write(e, &k, E, &ts, has_ts)) != TKV_E_OK)
        return st;
    /* The PUT itself will ask whether a version exists at ts below lo: in
     * nonblocking mode that load must happen now, before a multi-write
     * request stages anything. */
    bool existed;
    if (e->nonblock && E->lo > 0 && ts < E->lo && exists_below_lo(e, &k, E, ts, &existed) < 0)
        return eng_read_failed(e);
    return TKV_E_OK;
}

/* Stages one version blob (header + value) of k at ts. */
static tkv_eng_rc stage_version(tkv_engine *e, eng_key *k, const uint8_t *hdr, uint32_t hlen,
                                const uint8_t *val, size_t vlen, uint64_t ts, bool has_ts,
                                uint64_t *out_ts, tkv_kentry **out_E)
{
    tkv_eng_rc st;
    tkv_kentry *E = eng_write_lookup(e, k, true, &st);
    if (st != TKV_E_OK)
        return st;
    if ((st = check_write(e, k, E, &ts, has_ts)) != TKV_E_OK)
        return st;
    bool existed = false;
    if (E->lo > 0 && ts < E->lo && exists_below_lo(e, k, E, ts, &existed) < 0)
        return eng_read_failed(e);
    bool new_key = E->lo == 0 && tkv_vpage_count(E->page) == 0;
    bool replaced;
    long d = tkv_vpage_put(&E->page, ts, hdr, hlen, val, (uint32_t)vlen, &replaced);
    if (d == LONG_MIN) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return TKV_E_NOMEM;
    }
    eng_account_page(e, d);
    if (!replaced)
        e->st.mem_versions++;
    long i = tkv_vpage_find(E->page, ts);
    /* The page holds every version at or above lo: a new version at the
     * top of it, at or above lo, is newer than any the store has, which
     * spares the store's flusher a look for older ones to merge with. */
    bool newest =
        !replaced && !existed && ts >= E->lo && (uint32_t)i + 1 == tkv_vpage_count(E->page);
    eng_stage_version(e, k->buf, eng_key_at(k, ts), tkv_vpage_blob(E->page, (uint32_t)i),
                      tkv_vpage_len(E->page, (uint32_t)i), newest);
    if (!replaced && !existed)
        e->cnt.versions++;
    if (new_key)
        e->cnt.keys++;
    E->ref = 1;
    eng_mark_dirty(e, E);
    *out_ts = ts;
    *out_E = E;
    return TKV_E_OK;
}

tkv_eng_rc tkv_engine_put(tkv_engine *e, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t ts, bool has_ts, uint64_t ttl_us, uint64_t *out_ts,
                          bool *dirty)
{
    uint64_t expires = 0;
    if (ttl_us) {
        uint64_t now = eng_now(e);
        expires = ttl_us > UINT64_MAX - now ? UINT64_MAX : now + ttl_us;
    }
    return tkv_engine_put_until(e, key, klen, val, vlen, ts, has_ts, expires, out_ts, dirty);
}

tkv_eng_rc tkv_engine_put_until(tkv_engine *e, const uint8_t *key, size_t klen, const uint8_t *val,
                                size_t vlen, uint64_t ts, bool has_ts, uint64_t expires,
                                uint64_t *out_ts, bool *dirty)
{
    *dirty = false;
    uint8_t hdr[9] = {BLOB_PLAIN};
    uint32_t hlen = 1;
    if (expires) {
        hdr[0] = BLOB_EXPIRES;
        tkv_store_be64(hdr + 1, expires);
        hlen = 9;
    }
    tkv_kentry *E;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_eng_rc st = stage_version(e, &k, hdr, hlen, val, vlen, ts, has_ts, out_ts, &E);
    if (st != TKV_E_OK)
        return st;
    *dirty = true;
    if (expires && (!E->meta || expires < E->meta->min_expiry)) {
        bool was = eng_meta_swept(E->meta);
        tkv_kmeta *m = eng_meta_get(e, E);
        if (!m) {
            tkv_engine_poison(e, "out of memory");
            return TKV_E_NOMEM;
        }
        m->min_expiry = expires;
        eng_meta_save(e, &k, E, was);
    }
    return TKV_E_OK;
}

tkv_eng_rc tkv_engine_tombstone(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t ts,
                                bool has_ts, uint64_t *out_ts, bool *dirty)
{
    *dirty = false;
    static const uint8_t hdr = BLOB_TOMBSTONE;
    tkv_kentry *E;
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_eng_rc st = stage_version(e, &k, &hdr, 1, NULL, 0, ts, has_ts, out_ts, &E);
    *dirty = st == TKV_E_OK;
    return st;
}

/* Counts the key's versions in LevelDB that the page does not hold - those
 * below E->lo (the page holds every version at or above it): *all of
 * them, and the *visible ones, those v lets a reader see. DEL needs the
 * numbers, not the versions (one drop deletes them all). In nonblocking
 * mode a reader thread counts (eng_want_count), and DEL runs again. */
static int count_disk(tkv_engine *e, eng_key *k, const tkv_kentry *E, const vis *v, uint64_t *all,
                      uint64_t *visible)
{
    *all = *visible = 0;
    if (eng_counted_take(e, k, E, v, all, visible)) {
        /* The load counted versions below lo that the page holds too
         * (written into the past since the key was loaded): the count is
         * taken only if every batch that touched the key was on disk. */
        uint32_t below = tkv_vpage_lower(E->page, E->lo);
        uint64_t seen_visible = 0;
        for (uint32_t i = 0; i < below; i++)
            seen_visible += vis_ok(v, tkv_vpage_ts(E->page, i), tkv_vpage_blob(E->page, i),
                                   tkv_vpage_len(E->page, i));
        *all -= below < *all ? below : *all;
        *visible -= seen_visible < *visible ? seen_visible : *visible;
        return 0;
    }
    if (e->nonblock) {
        eng_want_count(e, k, E->lo, v);
        return -1;
    }
    tkv_store_iter *it = eng_iter(e);
    if (!it)
        return -1;
    tkv_store_iter_seek(it, k->buf, eng_key_at(k, E->lo - 1));
    uint64_t ts;
    while (eng_iter_match(k, it, &ts)) {
        if (tkv_vpage_find(E->page, ts) < 0) {
            size_t len;
            const uint8_t *b = tkv_store_iter_value(it, &len);
            (*all)++;
            *visible += vis_ok(v, ts, b, (uint32_t)len);
        }
        tkv_store_iter_next(it);
    }
    return eng_iter_failed(e, it);
}

/* How many of the page's versions a reader can see. DEL reports what is
 * visible, not what is stored: expired versions and those below the
 * horizon are already gone for every reader, whether or not the sweep has
 * deleted them. Only a key with metadata can hold invisible versions. */
static uint64_t page_visible(const tkv_kentry *E, const vis *v)
{
    uint32_t n = tkv_vpage_count(E->page);
    if (!E->meta)
        return n;
    if (!v->check_expiry)
        return n - tkv_vpage_lower(E->page, v->horizon);
    uint64_t c = 0;
    for (uint32_t i = tkv_vpage_lower(E->page, v->horizon); i < n; i++)
        c += vis_ok(v, tkv_vpage_ts(E->page, i), tkv_vpage_blob(E->page, i),
                    tkv_vpage_len(E->page, i));
    return c;
}

tkv_eng_rc tkv_engine_del(tkv_engine *e, const uint8_t *key, size_t klen, uint64_t *removed,
                          bool *dirty)
{
    *removed = 0;
    *dirty = false;
    tkv_eng_rc st;
    /* Loading the key brings its metadata along, which goes too. */
    eng_key k = eng_key_make(e->keybuf, key, klen);
    tkv_kentry *E = eng_write_lookup(e, &k, false, &st);
    if (st != TKV_E_OK)
        return st;
    if (!E)
        return TKV_E_OK;
    vis v = eng_vis(e, E);
    uint64_t disk_all = 0, disk_visible = 0;
    /* A complete page is the whole truth; otherwise LevelDB has more. */
    if (E->lo > 0 && count_disk(e, &k, E, &v, &disk_all, &disk_visible) < 0)
        return eng_read_failed(e);
    E->ref = 1;
    uint32_t n = tkv_vpage_count(E->page);
    uint64_t stored = n + disk_all;
    /* One record for all of them, however many: the store deletes them in
     * the background, and readers never see them again. */
    size_t plen;
    const uint8_t *prefix = eng_key_prefix(&k, &plen);
    if (stored > 0)
        eng_stage_drop(e, prefix, plen);
    *removed = page_visible(E, &v) + disk_visible;
    *dirty = eng_uncommitted(e, E);
    eng_remove_slots(e, E, 0, n);
    E->lo = 0; /* known to have no versions at all */
    if (E->meta) {
        bool was = eng_meta_swept(E->meta);
        free(E->meta);
        E->meta = NULL;
        eng_meta_save(e, &k, E, was);
        *dirty = true;
    }
    if (stored > 0) {
        e->cnt.versions -= stored;
        e->cnt.keys--;
        eng_mark_dirty(e, E);
        *dirty = true;
    }
    return TKV_E_OK;
}

void tkv_engine_idle(tkv_engine *e)
{
    if (e->store_open)
        tkv_store_iter_release_shared(e->store);
}

const char *tkv_engine_errmsg(const tkv_engine *e) { return e->errmsg; }

/* ---- open, close, stats ----------------------------------------------- */

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
    /* No count limit by default: a deep history stays resident as long as
     * it fits the key's share of the budget, so reads of its past never
     * leave memory. */
    if (!e->opts.resident_versions)
        e->opts.resident_versions = UINT32_MAX;
    if (!e->opts.clock)
        e->opts.clock = real_clock;
    e->dir = strdup(o->dir ? o->dir : ".");
    e->keybuf = malloc(tkv_kc_max(TKV_ENG_KEY_MAX));
    e->kbuf = malloc(tkv_kc_max(TKV_ENG_KEY_MAX));
    e->touch = calloc(ENG_TOUCH_SLOTS, sizeof *e->touch);
    e->all_resident = true;
    e->repl_feed = o->repl_feed; /* a primary that feeds replicas, if asked */
    if (!e->dir || !e->keybuf || !e->kbuf || !e->touch || tkv_keyindex_init(&e->ix) < 0 ||
        eng_batch_init(&e->stage, 1) < 0 || eng_batch_init(&e->flight, 0) < 0) {
        snprintf(err, errlen, "out of memory");
        tkv_engine_close(e);
        return -1;
    }
    e->opts.dir = e->dir;
    tkv_store_opts so = eng_store_opts(e);
    if (tkv_store_open(&so, &e->store, err, errlen) < 0) {
        tkv_engine_close(e);
        return -1;
    }
    e->store_open = true;
    if (eng_load_state(e, false, err, errlen) < 0) {
        tkv_engine_close(e);
        return -1;
    }
    if (eng_writer_start(e) < 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        tkv_engine_close(e);
        return -1;
    }
    *out = e;
    return 0;
}

void tkv_engine_close(tkv_engine *e)
{
    if (!e)
        return;
    if (e->in_flight) {
        uint64_t failed;
        tkv_engine_commit(e); /* never leave the writer mid-batch */
        tkv_engine_commit_finish(e, &failed);
    }
    eng_writer_stop(e);
    tkv_store_close(e->store);
    tkv_keyindex_deinit(&e->ix);
    eng_batch_free(&e->stage);
    eng_batch_free(&e->flight);
    eng_sweep_free(e);
    free(e->dir);
    free(e->keybuf);
    free(e->counted.key);
    free(e->kbuf);
    free(e->touch);
    free(e->recs);
    tkv_buf_deinit(&e->feed);
    tkv_buf_deinit(&e->feed_out);
    tkv_buf_deinit(&e->applied_stage);
    tkv_buf_deinit(&e->applied_flight);
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
    s->mem_bytes = eng_mem_bytes(e);
    s->max_memory = e->opts.max_memory;
}

char *tkv_engine_property(tkv_engine *e, const char *name)
{
    return e->store_open ? tkv_store_property(e->store, name) : NULL;
}

int tkv_engine_repair(const char *dir, char *err, size_t errlen)
{
    return tkv_store_repair(dir, err, errlen);
}
