/*
 * vpage.h - the resident versions of one key, in one allocation.
 *
 * A page is laid out like a database slotted page: a slot array sorted by
 * timestamp grows up from the header, the version blobs grow down from the
 * end. A floor lookup is a binary search over 16-byte slots that sit in a few
 * cache lines; appending a newer version (the common case) moves nothing;
 * writing into the past moves only slots, never blobs. Replaced and removed
 * blobs become dead bytes that the next rebuild drops.
 *
 * A blob is a version exactly as it is stored on disk (see engine.h), so
 * memory and LevelDB hold the same bytes and answer identically.
 */
#ifndef TKV_VPAGE_H
#define TKV_VPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv_vslot {
    uint64_t ts;  /* version timestamp */
    uint32_t off; /* blob offset from the page start */
    uint32_t len; /* blob length */
} tkv_vslot;

typedef struct tkv_vpage {
    uint32_t count;   /* slots in use */
    uint32_t cap;     /* bytes allocated, header included */
    uint32_t blob_lo; /* blobs occupy [blob_lo, cap) */
    uint32_t dead;    /* bytes in [blob_lo, cap) no slot refers to */
    tkv_vslot slot[]; /* ascending ts, unique */
} tkv_vpage;

static inline const uint8_t *tkv_vpage_blob(const tkv_vpage *p, uint32_t i)
{
    return (const uint8_t *)p + p->slot[i].off;
}

static inline uint32_t tkv_vpage_count(const tkv_vpage *p) { return p ? p->count : 0; }

/* Asks the cache for what a floor lookup in p reads first: the header and
 * the start of the slot array (a hint; p must be a live page). */
static inline void tkv_vpage_prefetch(const tkv_vpage *p)
{
    __builtin_prefetch(p);
    __builtin_prefetch((const char *)p + 64);
    __builtin_prefetch((const char *)p + 128);
}

/* First index whose ts >= t (count if none). NULL page: 0. */
uint32_t tkv_vpage_lower(const tkv_vpage *p, uint64_t t);

/* Index of the largest ts <= t, or -1. */
long tkv_vpage_floor(const tkv_vpage *p, uint64_t t);

/* Index of exactly ts, or -1. */
long tkv_vpage_find(const tkv_vpage *p, uint64_t ts);

/* Inserts or replaces the version at ts; its blob is the bytes of a then
 * the bytes of b (b may be NULL when blen is 0). *pp may be NULL (an empty
 * page) and may be reallocated. *replaced tells whether ts existed. Returns
 * the change in allocated bytes, or LONG_MIN if out of memory or the page
 * would pass 4 GiB (nothing changed then). */
long tkv_vpage_put(tkv_vpage **pp, uint64_t ts, const void *a, uint32_t alen, const void *b,
                   uint32_t blen, bool *replaced);

/* Makes room for `slots` more versions holding `bytes` of blobs in all, so
 * that many puts rebuild nothing (a bulk load: one allocation of the final
 * size instead of a geometric series of copies). *pp may be NULL. Returns
 * the change in allocated bytes, or LONG_MIN if out of memory (nothing
 * changed then). */
long tkv_vpage_reserve(tkv_vpage **pp, uint32_t slots, size_t bytes);

/* Removes slots [from, to). Frees the page when it becomes empty (then *pp
 * is NULL). Returns the change in allocated bytes (<= 0). */
long tkv_vpage_remove(tkv_vpage **pp, uint32_t from, uint32_t to);

/* Rewrites the page without dead bytes or headroom. Returns the change in
 * allocated bytes (<= 0); on allocation failure leaves the page as it is. */
long tkv_vpage_compact(tkv_vpage **pp);

/* Bytes the page occupies in the allocator. */
size_t tkv_vpage_bytes(const tkv_vpage *p);

void tkv_vpage_free(tkv_vpage *p);

#endif
