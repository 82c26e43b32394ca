/*
 * engine_int.h - the engine's private state, shared by its three files:
 * engine.c (writes, commit, open/close), cache.c (what memory holds:
 * loading keys, trimming and evicting them) and read.c (GET and RANGE).
 * Nothing outside the engine includes this header.
 */
#ifndef TKV_ENGINE_INT_H
#define TKV_ENGINE_INT_H

#include <leveldb/c.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"
#include "keycodec.h"
#include "keyindex.h"
#include "store.h"

#define BLOB_PLAIN 0x00

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
    char *dir;                /* data directory (owned copy) */
    tkv_store store;
    bool store_open;          /* false after a failed reopen */
    bool broken;              /* a write failed: no more writes on this handle */
    uint64_t last_probe_us;   /* when broken: last check for recovery */
    tkv_keyindex ix;
    leveldb_writebatch_t *batch;
    uint64_t batch_ops;       /* puts and deletes staged */
    uint32_t epoch;           /* increases with every commit attempt */
    tkv_kentry **dirty;       /* entries changed in this epoch */
    size_t ndirty, dirty_cap;
    counters cnt, cnt_committed;
    bool all_resident;        /* every key with versions is in the index */
    tkv_kentry *hand;         /* eviction clock hand; NULL: start over */
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

static inline void eng_set_prefix(tkv_engine *e, const uint8_t *key, size_t klen)
{
    e->plen = tkv_kc_prefix(e->pfx, key, klen);
}

/* Encodes (current prefix, ts) into pfx and returns its length. */
static inline size_t eng_with_ts(tkv_engine *e, uint64_t ts)
{
    return tkv_kc_with_ts(e->pfx, e->plen, ts);
}

/* True if the iterator sits on a version of the current prefix's key. */
static inline bool eng_iter_match(tkv_engine *e, leveldb_iterator_t *it, uint64_t *ts)
{
    if (!leveldb_iter_valid(it))
        return false;
    size_t n;
    const char *k = leveldb_iter_key(it, &n);
    return tkv_kc_match((const uint8_t *)k, n, e->pfx, e->plen, ts);
}

/* engine.c */
int eng_iter_failed(tkv_engine *e, leveldb_iterator_t *it);
/* The store's iterator, or NULL (with errmsg set) if the store is closed. */
leveldb_iterator_t *eng_iter(tkv_engine *e);

/* cache.c */
size_t eng_mem_bytes(const tkv_engine *e);
void eng_account_page(tkv_engine *e, long delta);
int eng_reserve_dirty(tkv_engine *e);
void eng_mark_dirty(tkv_engine *e, tkv_kentry *E);
void eng_drop_entry(tkv_engine *e, tkv_kentry *E);
void eng_remove_slots(tkv_engine *e, tkv_kentry *E, uint32_t from, uint32_t to);
tkv_kentry *eng_lookup(tkv_engine *e, const uint8_t *key, size_t klen, bool create,
                       tkv_status *st);
void eng_trim(tkv_engine *e, tkv_kentry *E);

#endif
