/*
 * memtab.h - the store's write buffer: a sorted memory table of records
 * (key, sequence number, put or delete, value), as LevelDB's memtable, in
 * which the versions of one tkv key (chunk.h's version encodings) are kept
 * together, as the chunk they will become (memtab.c says why).
 *
 * One writer at a time adds records; any number of readers on other
 * threads read at once without locks. Memory comes from an arena freed with
 * the table, which lives as long as its last reference.
 *
 * A reader sees the table as of a sequence number S: for each key, the
 * record with the largest sequence number <= S - unless a drop of the
 * key's versions at or before S came after it (tkv_memtab_drop). A writer gives every record
 * a sequence number above every one a reader may have seen (the store
 * publishes a batch's last one only once the whole batch is added).
 */
#ifndef TKV_MEMTAB_H
#define TKV_MEMTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv_memtab tkv_memtab;
typedef struct tkv_mnode tkv_mnode;
typedef struct vnode vnode;
typedef struct mrec mrec;

/* A new table with one reference; NULL if out of memory. */
tkv_memtab *tkv_memtab_new(void);
void tkv_memtab_ref(tkv_memtab *m);
/* Drops a reference; the last one frees the table. NULL-safe. */
void tkv_memtab_unref(tkv_memtab *m);

/* Adds a record (the writer only). Keys and values are copied. newest: a
 * version the caller knows is newer than every version of its key stored
 * anywhere (store.h's tkv_store_batch_put_newest). Returns 0, or -1 if out
 * of memory. */
int tkv_memtab_add(tkv_memtab *m, uint64_t seq, bool del, bool newest, const void *k, size_t klen,
                   const void *v, size_t vlen);

/* The most keys tkv_memtab_prefetch takes at once. */
#define TKV_MEMTAB_PREFETCH_MAX 16

/* A hint for the writer, before it adds records with these keys (at most
 * TKV_MEMTAB_PREFETCH_MAX): brings into the cache what the adds will read -
 * each key's hash slot and, for a key new to the table, the skiplist path
 * to its place - walking all the keys' paths in step, so that their cache
 * misses overlap instead of following one another. Changes nothing. */
void tkv_memtab_prefetch(const tkv_memtab *m, const uint8_t *const *k, const size_t *klen, int n);

/* Adds a drop of key p, a version prefix (chunk.h), at seq (the writer
 * only): a reader at seq or later sees none of p's versions written before
 * it, in this table or in any older source - a point read of one gets 2 (a
 * delete) - and the versions written after it as usual. Returns 0, or -1
 * if out of memory. */
int tkv_memtab_drop(tkv_memtab *m, uint64_t seq, const void *p, size_t plen);

/* Whether a reader at seq sees a drop of prefix p in this table (so older
 * sources hold nothing of p for it). Cheap when the table has no drop. */
bool tkv_memtab_dropped(const tkv_memtab *m, uint64_t seq, const void *p, size_t plen);

/* Whether the table holds any drop: one a reader's sequence number covers
 * was flagged before that number was published. */
bool tkv_memtab_has_drops(const tkv_memtab *m);

/* Calls fn for each prefix dropped in the table, once each, in no order.
 * For a frozen table (the writer done with it). */
void tkv_memtab_each_dropped(const tkv_memtab *m, void *ctx,
                             void (*fn)(void *ctx, const uint8_t *p, size_t plen));

/* Arena bytes the table holds (what the write buffer's size counts). */
size_t tkv_memtab_bytes(const tkv_memtab *m);
/* Records added. */
size_t tkv_memtab_count(const tkv_memtab *m);

/* The newest record for k at or before seq: 1 a put (*v, *vlen point into
 * the table), 2 a delete, 0 none. */
int tkv_memtab_get(const tkv_memtab *m, uint64_t seq, const void *k, size_t klen, const uint8_t **v,
                   size_t *vlen);

/* A cursor showing, for each key, its newest record at or before seq
 * (deletes included: the caller decides what they hide). The caller holds
 * a reference to the table while using it, and deinits it after. */
typedef struct tkv_memtab_iter {
    const tkv_memtab *m;
    uint64_t seq;
    const tkv_mnode *n; /* NULL: not valid */
    const vnode *v;     /* in a group: the version */
    const mrec *rec;
    uint8_t *kbuf; /* a version's encoding, composed */
    size_t kcap;
} tkv_memtab_iter;

void tkv_memtab_iter_init(tkv_memtab_iter *it, const tkv_memtab *m, uint64_t seq);
void tkv_memtab_iter_deinit(tkv_memtab_iter *it);
void tkv_memtab_iter_seek(tkv_memtab_iter *it, const void *k, size_t klen);
void tkv_memtab_iter_seek_first(tkv_memtab_iter *it);
void tkv_memtab_iter_seek_last(tkv_memtab_iter *it);
void tkv_memtab_iter_next(tkv_memtab_iter *it);
void tkv_memtab_iter_prev(tkv_memtab_iter *it);
static inline bool tkv_memtab_iter_valid(const tkv_memtab_iter *it) { return it->n != NULL; }
const uint8_t *tkv_memtab_iter_key(const tkv_memtab_iter *it, size_t *klen);
const uint8_t *tkv_memtab_iter_value(const tkv_memtab_iter *it, size_t *vlen);
bool tkv_memtab_iter_is_del(const tkv_memtab_iter *it);
/* On a version: whether every record its key got in this table was a
 * "newest" put (so none of them overlaps what is stored elsewhere). For a
 * frozen table (the writer done with it). */
bool tkv_memtab_iter_group_newest(const tkv_memtab_iter *it);
/* On a version: whether the reader sees a drop of its key in this table
 * (every version it shows of the key came after the drop). */
bool tkv_memtab_iter_group_dropped(const tkv_memtab_iter *it);

#endif
