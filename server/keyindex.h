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

/* Levels of the skiplist: at p = 1/4, 16 levels serve 4^15 (10^9) keys
 * before searches lengthen; the height (1..16) fits the 4 tag bits of an
 * entry's first link. */
#define TKV_SKIPLIST_MAXLEVEL 16

struct tkv_kmeta;

/* An entry is 32 bytes, its tower and its key: with a 16-byte key and one
 * level (3 entries in 4), 56 bytes, which malloc serves from a 64-byte
 * chunk. The fields that would not fit share one word, and the height rides
 * in link[0]'s low bits (entries are 16-byte aligned). */
typedef struct tkv_kentry {
    tkv_vpage *page;           /* resident versions; NULL when none */
    struct tkv_kmeta *meta;    /* policy, horizon, expiry; NULL when none */
    uint64_t lo;               /* page holds every version with ts >= lo; 0: all */
    uint64_t dirty_epoch : 47; /* commit epoch of the last uncommitted change (47 bits:
                                  a batch waits for a LevelDB write, and at 200,000
                                  batches a second they last 22 years) */
    uint64_t ref : 1;          /* recently used: the eviction hand spares it once */
    uint64_t klen : 16;        /* key bytes, <= TKV_ENG_KEY_MAX */
    uintptr_t link[];          /* forward pointers, link[0] tagged with the height - 1;
                                  then klen key bytes */
} tkv_kentry;

#define TKV_KENTRY_LINK_TAG ((uintptr_t)(TKV_SKIPLIST_MAXLEVEL - 1))

/* Forward pointers in link[]. */
static inline unsigned tkv_kentry_height(const tkv_kentry *e)
{
    return (unsigned)(e->link[0] & TKV_KENTRY_LINK_TAG) + 1;
}

static inline const uint8_t *tkv_kentry_key(const tkv_kentry *e)
{
    return (const uint8_t *)&e->link[tkv_kentry_height(e)];
}

/* A hash table slot: an entry's address with TKV_HTAG_BITS bits of its key's
 * hash in the low bits, which the allocator's alignment leaves zero; 0 when
 * empty. Eight bytes rather than sixteen for (hash, entry); a probe still
 * compares the tag before it touches an entry, so it follows a wrong one
 * one time in 16. */
typedef uintptr_t tkv_hslot;
#define TKV_HTAG_BITS 4
#define TKV_HTAG_MASK (((uintptr_t)1 << TKV_HTAG_BITS) - 1)

/* A hash's tag: its top bits (the table's index is its low bits). */
static inline uintptr_t tkv_hslot_tag(uint64_t h) { return (uintptr_t)(h >> (64 - TKV_HTAG_BITS)); }

static inline tkv_kentry *tkv_hslot_entry(tkv_hslot s)
{
    return (tkv_kentry *)(s & ~TKV_HTAG_MASK);
}

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

static inline tkv_kentry *tkv_keyindex_next(const tkv_kentry *e)
{
    return (tkv_kentry *)(e->link[0] & ~TKV_KENTRY_LINK_TAG);
}
static inline tkv_kentry *tkv_keyindex_first(const tkv_keyindex *ix)
{
    return tkv_keyindex_next(ix->head);
}

/* Batched lookups, for prefetching: a key's hash, and the entry in its home
 * slot when the tag there matches (a guess: 4 bits of the hash, the key not
 * compared, and a collision may have moved it elsewhere; a wrong guess is a
 * live entry all the same). Prefetching the slot, then the entry, then its
 * page for many keys in turn lets the cache misses of a pipeline of lookups
 * overlap instead of following each other. */
uint64_t tkv_keyindex_hash(const tkv_keyindex *ix, const uint8_t *key, size_t klen);

static inline const tkv_hslot *tkv_keyindex_home(const tkv_keyindex *ix, uint64_t h)
{
    return &ix->tab[h & ix->mask];
}

static inline const tkv_kentry *tkv_keyindex_guess(const tkv_keyindex *ix, uint64_t h)
{
    tkv_hslot s = *tkv_keyindex_home(ix, h);
    return s && (s & TKV_HTAG_MASK) == tkv_hslot_tag(h) ? tkv_hslot_entry(s) : NULL;
}

/* Byte order of keys, shorter first on a common prefix (memcmp semantics). */
int tkv_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
