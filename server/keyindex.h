/*
 * keyindex.h - the in-memory index of resident keys.
 *
 * A skiplist keeps the keys in byte order (what ordered scans and the
 * eviction hand walk), and a hash table over the same entries answers point
 * lookups in one or two cache misses instead of a dozen pointer hops. Each
 * entry carries its key bytes inline and a pointer to the key's version page
 * (vpage.h); the index itself knows nothing of versions.
 *
 * The hash is SipHash-1-3 (common/siphash.h) with a per-process random key,
 * so clients cannot choose keys that collide. Neither entries nor the table
 * keep it whole: a slot is a tagged pointer, and the table computes a key's
 * hash again when it moves the key (growth, deletion).
 */
#ifndef TKV_KEYINDEX_H
#define TKV_KEYINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "vpage.h"

#define TKV_SKIPLIST_MAXLEVEL 32

struct tkv_kmeta;

typedef struct tkv_kentry {
    tkv_vpage *page;        /* resident versions; NULL when none */
    struct tkv_kmeta *meta; /* policy, horizon, expiry; NULL when none */
    uint64_t lo;            /* page holds every version with ts >= lo; 0: all */
    uint64_t dirty_epoch;   /* commit epoch of the last uncommitted change (64 bits:
                               a batch or more per millisecond never wraps) */
    uint16_t klen;
    uint8_t height;            /* forward pointers in next[] */
    uint8_t ref;               /* recently used: the eviction hand spares it once */
    struct tkv_kentry *next[]; /* forward pointers, then klen key bytes */
} tkv_kentry;

static inline const uint8_t *tkv_kentry_key(const tkv_kentry *e)
{
    return (const uint8_t *)&e->next[e->height];
}

/* A hash table slot: an entry's address with TKV_HTAG_BITS bits of its key's
 * hash in the low bits, which the allocator's alignment leaves zero; 0 when
 * empty. Eight bytes rather than sixteen for (hash, entry); a probe still
 * compares the tag before it touches an entry, so it follows a wrong one
 * one time in 16. */
typedef uintptr_t tkv_hslot;
#define TKV_HTAG_BITS 4

typedef struct tkv_keyindex {
    tkv_kentry *head; /* sentinel holding TKV_SKIPLIST_MAXLEVEL pointers */
    int level;        /* levels in use, >= 1 */
    uint64_t count;   /* entries */
    tkv_hslot *tab;   /* open addressing, linear probing */
    size_t mask;      /* table size - 1 */
    uint64_t sip[2];  /* hash key */
    uint64_t rng;     /* level generator state */
    size_t bytes;     /* allocator bytes of entries and table */
} tkv_keyindex;

/* Returns 0, or -1 if out of memory. */
int tkv_keyindex_init(tkv_keyindex *ix);
/* Frees every entry with its page and metadata. NULL-safe. */
void tkv_keyindex_deinit(tkv_keyindex *ix);

tkv_kentry *tkv_keyindex_find(const tkv_keyindex *ix, const uint8_t *key, size_t klen);

/* Adds an entry for a key that is not present, with no page and lo = 0.
 * Returns it, or NULL if out of memory. */
tkv_kentry *tkv_keyindex_insert(tkv_keyindex *ix, const uint8_t *key, size_t klen);

/* Unlinks and frees e. The caller must have freed e->page and e->meta. */
void tkv_keyindex_remove(tkv_keyindex *ix, tkv_kentry *e);

/* First entry with key >= the given key, or NULL. */
tkv_kentry *tkv_keyindex_seek(const tkv_keyindex *ix, const uint8_t *key, size_t klen);

static inline tkv_kentry *tkv_keyindex_first(const tkv_keyindex *ix) { return ix->head->next[0]; }
static inline tkv_kentry *tkv_keyindex_next(const tkv_kentry *e) { return e->next[0]; }

/* Byte order of keys, shorter first on a common prefix (memcmp semantics). */
int tkv_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
