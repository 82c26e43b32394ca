/*
 * scan.c - SCAN: keys in byte order, resumable, a page at a time.
 *
 * The key space is the union of LevelDB's keys and the resident keys (the
 * skiplist is ordered for this), because a key written or deleted in the
 * current batch is only in memory until the commit. Where both know a key,
 * memory decides: a resident key without versions (deleted, not yet
 * committed) is not listed. The cursor is simply the last key returned: the
 * next page starts strictly after it, so a scan never repeats or skips a
 * key that exists throughout, whatever is written in between.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

typedef struct scan_ctx {
    tkv_engine *e;
    tkv_store_iter *it;
    const uint8_t *prefix;
    size_t plen;
    tkv_kentry *mem; /* next resident key, or NULL */
    uint8_t *dkey;   /* next LevelDB key (decoded), valid if has_disk */
    size_t dlen;
    bool has_disk;
} scan_ctx;

static bool has_prefix(const scan_ctx *c, const uint8_t *k, size_t n)
{
    return n >= c->plen && (c->plen == 0 || memcmp(k, c->prefix, c->plen) == 0);
}

static bool mem_listed(const tkv_kentry *E) { return E->page || E->lo > 0; }

/* Skips resident keys without versions; stops past the prefix. */
static void mem_settle(scan_ctx *c)
{
    while (c->mem && !mem_listed(c->mem))
        c->mem = tkv_keyindex_next(c->mem);
    if (c->mem && !has_prefix(c, tkv_kentry_key(c->mem), c->mem->klen))
        c->mem = NULL;
}

/* Moves the LevelDB side to the first key at or after the iterator that
 * has a version (a metadata record alone does not make a key). */
static void disk_settle(scan_ctx *c)
{
    c->has_disk = false;
    while (tkv_store_iter_valid(c->it)) {
        size_t n;
        const uint8_t *k = tkv_store_iter_key(c->it, &n);
        if (n == 0 || k[0] != TKV_KC_VERSION)
            return;
        bool is_meta;
        long klen = tkv_kc_decode_any((const uint8_t *)k, n, c->dkey, &is_meta);
        if (klen < 0) {
            tkv_store_iter_next(c->it);
            continue;
        }
        if (!has_prefix(c, c->dkey, (size_t)klen))
            return;
        if (!is_meta) {
            c->dlen = (size_t)klen;
            c->has_disk = true;
            return;
        }
        tkv_store_iter_next(c->it); /* the key's versions, if any, follow */
        eng_key dk = eng_key_make(c->e->keybuf, c->dkey, (size_t)klen);
        uint64_t ts;
        if (eng_iter_match(&dk, c->it, &ts)) {
            c->dlen = (size_t)klen;
            c->has_disk = true;
            return;
        }
    }
}

/* Past every record of the current LevelDB key: its prefix with the
 * terminator 0x00 0x02, just above all of its versions. */
static void disk_skip_key(scan_ctx *c)
{
    eng_key k = eng_key_make(c->e->keybuf, c->dkey, c->dlen);
    size_t plen;
    eng_key_prefix(&k, &plen);
    k.buf[plen - 1] = 0x02;
    tkv_store_iter_seek(c->it, k.buf, plen);
    disk_settle(c);
}

static void start(scan_ctx *c, const uint8_t *after, size_t alen)
{
    tkv_engine *e = c->e;
    const uint8_t *from = after ? after : c->prefix;
    size_t flen = after ? alen : c->plen;
    if (after && c->plen && tkv_key_cmp(after, alen, c->prefix, c->plen) < 0) {
        from = c->prefix;
        flen = c->plen;
        after = NULL;
    }
    c->mem = tkv_keyindex_seek(&e->ix, from, flen);
    if (after && c->mem && tkv_key_cmp(tkv_kentry_key(c->mem), c->mem->klen, after, alen) == 0)
        c->mem = tkv_keyindex_next(c->mem);
    mem_settle(c);
    eng_key k = eng_key_make(e->keybuf, from, flen);
    size_t plen;
    eng_key_prefix(&k, &plen);
    if (after)
        k.buf[plen - 1] = 0x02; /* strictly after every record of `after` */
    else
        plen -= 2; /* every key starting with the prefix */
    tkv_store_iter_seek(c->it, k.buf, plen);
    disk_settle(c);
}

tkv_eng_rc tkv_engine_scan(tkv_engine *e, const uint8_t *prefix, size_t plen, const uint8_t *after,
                           size_t alen, uint32_t count, tkv_scan_cb cb, void *ctx, bool *more,
                           bool *dirty)
{
    *more = false;
    *dirty = false;
    scan_ctx c = {.e = e, .it = eng_iter(e), .prefix = prefix, .plen = prefix ? plen : 0};
    if (!c.it)
        return TKV_E_STORAGE;
    c.dkey = malloc(TKV_ENG_KEY_MAX + 1);
    if (!c.dkey) {
        snprintf(e->errmsg, sizeof e->errmsg, "out of memory");
        return TKV_E_NOMEM;
    }
    start(&c, after, alen);
    uint32_t emitted = 0;
    while (c.mem || c.has_disk) {
        int cmp = !c.mem        ? 1
                  : !c.has_disk ? -1
                                : tkv_key_cmp(tkv_kentry_key(c.mem), c.mem->klen, c.dkey, c.dlen);
        if (emitted == count) {
            *more = true;
            break;
        }
        bool go_on;
        if (cmp <= 0) {
            *dirty |= eng_uncommitted(e, c.mem);
            go_on = cb(ctx, tkv_kentry_key(c.mem), c.mem->klen);
            if (cmp == 0)
                disk_skip_key(&c);
            c.mem = tkv_keyindex_next(c.mem);
            mem_settle(&c);
        } else {
            /* A resident key without versions hides its LevelDB records. */
            tkv_kentry *E = tkv_keyindex_find(&e->ix, c.dkey, c.dlen);
            *dirty |= E && eng_uncommitted(e, E);
            go_on = E ? true : cb(ctx, c.dkey, c.dlen);
            if (!E)
                emitted++;
            disk_skip_key(&c);
            if (!go_on)
                break;
            continue;
        }
        emitted++;
        if (!go_on)
            break;
    }
    int rc = eng_iter_failed(e, c.it);
    free(c.dkey);
    return rc < 0 ? TKV_E_STORAGE : TKV_E_OK;
}
