/*
 * dump.c - implements dump.h: a walk over a store snapshot that turns
 * LevelDB's records ('v' range, keycodec.h) into each key's visible state.
 *
 * A key's records arrive metadata first, then versions newest first. The
 * key itself is yielded lazily - before its first visible version, or at
 * its end if it has none but keeps a policy or horizon - so a key whose
 * versions have all expired and that has nothing else leaves no trace,
 * exactly as if the sweep had already removed it.
 */
#include "dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

struct tkv_eng_dump {
    tkv_store *store;
    tkv_store_snapshot *snap;
    tkv_store_iter *it;
    uint64_t at;
    bool started;  /* the iterator has been positioned */
    bool advance;  /* the current record was yielded: step before reading */
    bool in_key;   /* cur holds the key being walked */
    bool key_done; /* its key record was yielded */
    uint8_t *cur, *scratch;
    size_t clen;
    tkv_kmeta meta; /* cur's metadata (zero: none) */
    char err[256];
};

tkv_eng_dump *tkv_engine_dump_open(tkv_engine *e, uint64_t at)
{
    if (!e->store_open) {
        snprintf(e->errmsg, sizeof e->errmsg, "the store is not open (recovering from a failure)");
        return NULL;
    }
    tkv_eng_dump *d = calloc(1, sizeof *d);
    size_t room = tkv_kc_max(TKV_ENG_KEY_MAX);
    if (!d || !(d->cur = malloc(room)) || !(d->scratch = malloc(room)) ||
        !(d->snap = tkv_store_snapshot_new(e->store)) ||
        !(d->it = tkv_store_iter_new(e->store, d->snap))) {
        if (d) {
            tkv_store_snapshot_free(e->store, d->snap);
            free(d->cur);
            free(d->scratch);
        }
        free(d);
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return NULL;
    }
    d->store = e->store;
    d->at = at;
    /* Recovery reopens the store only when no load is out: a dump holds
     * the store (its snapshot and iterator) the same way. */
    e->loads_out++;
    return d;
}

void tkv_engine_dump_close(tkv_engine *e, tkv_eng_dump *d)
{
    if (!d)
        return;
    tkv_store_iter_free(d->it);
    tkv_store_snapshot_free(e->store, d->snap);
    e->loads_out--;
    free(d->cur);
    free(d->scratch);
    free(d);
}

const char *tkv_engine_dump_error(const tkv_eng_dump *d) { return d->err; }

/* ---- raw: a replica's full copy -------------------------------------------- */

int tkv_engine_dump_repl(tkv_eng_dump *d, tkv_eng_repl *out)
{
    char *v;
    size_t vlen;
    int rc = tkv_store_get(d->store, d->snap, ENG_REPL_KEY, sizeof ENG_REPL_KEY - 1, &v, &vlen,
                           d->err, sizeof d->err);
    if (rc < 0)
        return -1;
    memset(out, 0, sizeof *out);
    if (rc == 1) {
        rc = eng_repl_decode((const uint8_t *)v, vlen, out);
        tkv_store_free(v);
        if (rc < 0)
            snprintf(d->err, sizeof d->err, "malformed replication state record");
        return rc;
    }
    return 0; /* nothing written yet: offset 0, id empty */
}

int tkv_engine_dump_next_raw(tkv_eng_dump *d, const uint8_t **k, size_t *klen, const uint8_t **v,
                             size_t *vlen)
{
    for (;;) {
        if (!d->started) {
            tkv_store_iter_seek_first(d->it);
            d->started = true;
        } else {
            tkv_store_iter_next(d->it);
        }
        if (!tkv_store_iter_valid(d->it))
            return tkv_store_iter_status(d->it, d->err, sizeof d->err) < 0 ? -1 : 0;
        *k = tkv_store_iter_key(d->it, klen);
        /* The server's own state records stay its own. */
        if ((*klen == sizeof ENG_REPL_KEY - 1 && memcmp(*k, ENG_REPL_KEY, *klen) == 0) ||
            (*klen == sizeof ENG_SYNCING_KEY - 1 && memcmp(*k, ENG_SYNCING_KEY, *klen) == 0))
            continue;
        *v = tkv_store_iter_value(d->it, vlen);
        return 1;
    }
}

static int dump_fail(tkv_eng_dump *d, const char *why)
{
    if (!d->err[0])
        snprintf(d->err, sizeof d->err, "%s", why);
    return -1;
}

static bool key_worth(const tkv_eng_dump *d) { return d->meta.has_policy || d->meta.horizon > 0; }

static void yield_key(tkv_eng_dump *d, tkv_dump_rec *r)
{
    memset(r, 0, sizeof *r);
    r->is_key = true;
    r->key = d->cur;
    r->klen = (uint32_t)d->clen;
    r->own_policy = d->meta.has_policy;
    r->policy = d->meta.has_policy ? d->meta.policy : (tkv_policy){0, 0};
    r->horizon = d->meta.horizon;
    d->key_done = true;
}

/* The iterator sits on a version of cur: yields it if visible. */
static bool yield_version(tkv_eng_dump *d, const uint8_t *enc, size_t n, tkv_dump_rec *r)
{
    size_t blen;
    const uint8_t *b = tkv_store_iter_value(d->it, &blen);
    uint64_t ts = ~tkv_load_be64(enc + n - 8);
    uint64_t x = blob_expires(b, (uint32_t)blen);
    if (ts < d->meta.horizon || (x && x <= d->at))
        return false;
    memset(r, 0, sizeof *r);
    r->ts = ts;
    r->tombstone = blob_tombstone(b, (uint32_t)blen);
    r->expires = x;
    r->value = blob_value(b, (uint32_t)blen, &r->vlen);
    return true;
}

/* The record under the iterator starts a key other than cur: cur ends. */
static bool cur_ends(tkv_eng_dump *d, const uint8_t *key, size_t klen)
{
    return !d->in_key || klen != d->clen || memcmp(key, d->cur, klen) != 0;
}

int tkv_engine_dump_next(tkv_eng_dump *d, tkv_dump_rec *r)
{
    if (d->err[0])
        return -1;
    if (!d->started) {
        uint8_t v = TKV_KC_VERSION;
        tkv_store_iter_seek(d->it, &v, 1);
        d->started = true;
    } else if (d->advance) {
        tkv_store_iter_next(d->it);
    }
    d->advance = false;
    for (;;) {
        size_t n;
        const uint8_t *enc = tkv_store_iter_valid(d->it) ? tkv_store_iter_key(d->it, &n) : NULL;
        if (!enc || n == 0 || enc[0] != TKV_KC_VERSION) {
            if (d->in_key && !d->key_done && key_worth(d)) {
                yield_key(d, r);
                d->in_key = false;
                return 1;
            }
            if (tkv_store_iter_status(d->it, d->err, sizeof d->err) < 0)
                return -1;
            return 0;
        }
        bool is_meta;
        long klen = tkv_kc_decode_any(enc, n, d->scratch, &is_meta);
        if (klen <= 0)
            return dump_fail(d, "a malformed record in the store");
        if (cur_ends(d, d->scratch, (size_t)klen)) {
            if (d->in_key && !d->key_done && key_worth(d)) {
                yield_key(d, r); /* the iterator stays: the new key comes next */
                d->in_key = false;
                return 1;
            }
            uint8_t *t = d->cur;
            d->cur = d->scratch;
            d->scratch = t;
            d->clen = (size_t)klen;
            d->in_key = true;
            d->key_done = false;
            d->meta = (tkv_kmeta){.min_expiry = UINT64_MAX};
        }
        if (is_meta) {
            size_t vlen;
            const uint8_t *v = tkv_store_iter_value(d->it, &vlen);
            if (eng_meta_decode(v, vlen, &d->meta) < 0)
                return dump_fail(d, "a malformed metadata record in the store");
        } else if (yield_version(d, enc, n, r)) {
            if (!d->key_done) {
                /* The key first; this version again on the next call. */
                yield_key(d, r);
                return 1;
            }
            d->advance = true;
            return 1;
        }
        tkv_store_iter_next(d->it);
    }
}
