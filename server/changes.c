/*
 * changes.c - implements changes.h: a committed batch's records as the
 * changes of the change feed.
 *
 * A batch's records are the store's own (keycodec.h): a put of a version
 * record is a version written (its blob says tombstone, expiry, value), a
 * delete of one is a version removed - DEL of a whole key or the sweep;
 * the engine never rewrites a version in place - a drop of a key's version
 * prefix is all of them removed at once (DEL), and a put or delete of a
 * key's metadata record is a metadata change. Records under other leading
 * bytes (the sweep index, replication state) are the server's own and
 * are skipped.
 *
 * A batch is read twice: once to count the changes that pass the filter,
 * once to write them, so each push can say how many of its batch follow
 * (the client resumes only from a whole batch). Batches are bounded by
 * the group commit, and decoding is a walk over bytes already in memory.
 */
#include "changes.h"

#include <string.h>

#include "engine_int.h"
#include "frame.h"

int tkv_change_of_rec(const tkv_repl_rec *rec, uint8_t *keybuf, tkv_wchange *c)
{
    memset(c, 0, sizeof *c);
    if (rec->klen < 1 || rec->key[0] != TKV_KC_VERSION)
        return 0;
    if (rec->drop) {
        /* The prefix of every version: decoded as one of them. */
        long kl = tkv_kc_decode_prefix(rec->key, rec->klen, keybuf);
        if (kl < 0)
            return -1;
        c->kind = TKV_WK_DROP;
        c->key = keybuf;
        c->klen = (uint32_t)kl;
        return 1;
    }
    bool is_meta = false;
    long kl = tkv_kc_decode_any(rec->key, rec->klen, keybuf, &is_meta);
    if (kl < 0)
        return -1;
    c->key = keybuf;
    c->klen = (uint32_t)kl;
    if (is_meta) {
        c->kind = TKV_WK_META;
        tkv_kmeta m;
        if (!rec->has_value)
            return 1; /* removed with the key: no horizon, no policy */
        if (eng_meta_decode(rec->value, rec->vlen, &m) < 0)
            return -1;
        c->horizon = m.horizon;
        if (m.has_policy) {
            c->keep_versions = m.policy.versions;
            c->keep_age = m.policy.age_us;
        }
        return 1;
    }
    c->ts = ~tkv_load_be64(rec->key + rec->klen - 8);
    if (!rec->has_value) {
        c->kind = TKV_WK_REMOVE;
        return 1;
    }
    c->kind = TKV_WK_WRITE;
    if (rec->vlen < 1 || ((rec->value[0] & BLOB_EXPIRES) && rec->vlen < 9))
        return -1;
    c->expires = blob_expires(rec->value, rec->vlen);
    if (!blob_tombstone(rec->value, rec->vlen))
        c->value = blob_value(rec->value, rec->vlen, &c->vlen);
    return 1;
}

bool tkv_wfilter_match(const tkv_wfilter *f, const tkv_wchange *c)
{
    if (f->asof) {
        /* GET key as of `at` reads the newest visible version at or before
         * `at`: a version after it never matters; the metadata (horizon,
         * policy) always may. */
        if (c->klen != f->plen || memcmp(c->key, f->prefix, f->plen) != 0)
            return false;
        return c->kind == TKV_WK_META || c->kind == TKV_WK_DROP || c->ts <= f->at;
    }
    return c->klen >= f->plen && (f->plen == 0 || memcmp(c->key, f->prefix, f->plen) == 0);
}

/* One pass over the batch: counts the changes that pass f, or (out set)
 * writes them, `total` in all. Returns the count, -1 malformed, -2 memory. */
static long pass(const uint8_t *p, size_t n, const tkv_wfilter *f, tkv_buf *scratch, tkv_buf *out,
                 long total, uint64_t end)
{
    tkv_repl_frame fr;
    tkv_repl_rec rec;
    tkv_wchange c;
    long k = 0;
    int rc;
    if (tkv_repl_decode(p, n, &fr) < 0 || fr.tag != TKV_RF_BATCH)
        return -1;
    while ((rc = tkv_repl_next_rec(&fr, &rec)) == 1) {
        if (scratch->cap < rec.klen) {
            scratch->len = 0;
            if (tkv_buf_reserve(scratch, rec.klen) < 0)
                return -2;
        }
        int got = tkv_change_of_rec(&rec, scratch->data, &c);
        if (got < 0)
            return -1;
        if (got == 0 || !tkv_wfilter_match(f, &c))
            continue;
        k++;
        if (!out)
            continue;
        c.offset = end;
        c.left = (uint64_t)(total - k);
        if (tkv_watch_put(out, &c) < 0)
            return -2;
    }
    return rc < 0 ? -1 : k;
}

long tkv_changes_of_batch(const uint8_t *p, size_t n, const tkv_wfilter *f, tkv_buf *scratch,
                          tkv_buf *out, uint64_t *end)
{
    tkv_repl_frame fr;
    if (tkv_repl_decode(p, n, &fr) < 0 || fr.tag != TKV_RF_BATCH)
        return -1;
    *end = fr.offset + TKV_FRAME_HEADER + n;
    long total = pass(p, n, f, scratch, NULL, 0, *end);
    if (total <= 0)
        return total;
    size_t mark = out->len;
    long k = pass(p, n, f, scratch, out, total, *end);
    if (k != total) {
        out->len = mark;
        return k < 0 ? k : -1;
    }
    return k;
}
