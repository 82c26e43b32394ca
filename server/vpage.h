/*
 * vpage.h - the resident versions of one key, in one allocation.
 *
 * The layout, which lives in this header and vpage.c alone (everything else
 * goes through the accessors below):
 *
 *     [ header 16 B | slot 0 | slot 1 | ... | free | blob n-1 | ... | blob 0 ]
 *     0                                             end - off(n-1)        end
 *
 * Slot i holds two unsigned little fields, packed without padding: the
 * timestamp as a delta from the page's base (2, 4 or 8 bytes, whichever
 * width the page's span of timestamps needs) and off(i), the bytes of blobs
 * 0..i together (2 bytes in a page under 64 KiB, else 4). The blobs are in
 * timestamp order, oldest at the end, each one right below the one before:
 * blob i lies at [end - off(i), end - off(i-1)) (off(-1) = 0), so a slot
 * needs no length and no dead bytes sit between live blobs.
 *
 * At 10 versions of 33-byte blobs spanning under 65 ms a version costs 4
 * bytes of slot instead of the 16 of a (ts, off, len) slot.
 *
 * The costs: a floor lookup is a binary search over the slots (a few cache
 * lines); appending a newer version writes one slot and one blob and moves
 * nothing; writing into the past, replacing a version or removing one
 * other than the oldest moves the newer blobs (memmove); removing the
 * oldest moves only slots. A version whose timestamp falls outside what the
 * page's base and width can hold, or that does not fit, rebuilds the page.
 * Small pages (under 1 KiB) are rebuilt to fit exactly, larger ones with an
 * eighth of headroom, so a page of a few versions carries no headroom and
 * appends to a long history stay O(1) amortized.
 *
 * A blob is a version exactly as it is stored on disk (see engine.h), so
 * memory and LevelDB hold the same bytes and answer identically.
 */
#ifndef TKV_VPAGE_H
#define TKV_VPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Most versions in one page: what the 29-bit count holds. */
#define TKV_VPAGE_COUNT_MAX ((1u << 29) - 1)

typedef struct tkv_vpage {
    uint64_t base;       /* slot timestamps are deltas from this */
    uint32_t end;        /* blobs end here (bytes from the page start) */
    uint32_t count : 29; /* versions; slots in use */
    uint32_t tsw : 2;    /* timestamp delta width: 2 << tsw bytes */
    uint32_t ow : 1;     /* offset width: 2 << ow bytes */
    uint8_t slot[];      /* count slots, ascending ts, unique */
} tkv_vpage;

/* Bytes of one slot in p. */
static inline uint32_t tkv_vpage_slot_size(const tkv_vpage *p)
{
    return (2u << p->tsw) + (2u << p->ow);
}

static inline uint64_t tkv_vpage__load(const uint8_t *s, unsigned w)
{
    switch (w) {
    case 2: {
        uint16_t v;
        memcpy(&v, s, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, s, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, s, 8);
        return v;
    }
    }
}

/* off(i): the bytes of blobs 0..i; off(-1) is 0. */
static inline uint32_t tkv_vpage__off(const tkv_vpage *p, long i)
{
    if (i < 0)
        return 0;
    const uint8_t *s = p->slot + (size_t)i * tkv_vpage_slot_size(p) + (2u << p->tsw);
    return (uint32_t)tkv_vpage__load(s, 2u << p->ow);
}

/* The timestamp of version i (i < count). */
static inline uint64_t tkv_vpage_ts(const tkv_vpage *p, uint32_t i)
{
    const uint8_t *s = p->slot + (size_t)i * tkv_vpage_slot_size(p);
    return p->base + tkv_vpage__load(s, 2u << p->tsw);
}

/* The length of version i's blob. */
static inline uint32_t tkv_vpage_len(const tkv_vpage *p, uint32_t i)
{
    return tkv_vpage__off(p, i) - tkv_vpage__off(p, (long)i - 1);
}

/* Version i's blob; valid until the page next changes. */
static inline const uint8_t *tkv_vpage_blob(const tkv_vpage *p, uint32_t i)
{
    return (const uint8_t *)p + p->end - tkv_vpage__off(p, i);
}

static inline uint32_t tkv_vpage_count(const tkv_vpage *p) { return p ? p->count : 0; }

/* Asks the cache for what a floor lookup in p reads first: the header, the
 * slots and, in a small page, the newest blobs that follow them (a hint; p
 * must be a live page). */
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
 * would pass 4 GiB or TKV_VPAGE_COUNT_MAX versions (nothing changed then). */
long tkv_vpage_put(tkv_vpage **pp, uint64_t ts, const void *a, uint32_t alen, const void *b,
                   uint32_t blen, bool *replaced);

/* Makes room for `slots` more versions, with timestamps in [lo, hi],
 * holding `bytes` of blobs in all, so that putting them rebuilds nothing
 * (a bulk load: one allocation of the final size instead of a series of
 * copies). *pp may be NULL. Returns the change in allocated bytes, or
 * LONG_MIN if out of memory or too large (nothing changed then). */
long tkv_vpage_reserve(tkv_vpage **pp, uint32_t slots, size_t bytes, uint64_t lo, uint64_t hi);

/* Removes versions [from, to). Frees the page when it becomes empty (then
 * *pp is NULL). Returns the change in allocated bytes (<= 0). */
long tkv_vpage_remove(tkv_vpage **pp, uint32_t from, uint32_t to);

/* Rewrites the page without free bytes, with the narrowest widths its
 * versions allow. Returns the change in allocated bytes (<= 0 but for the
 * allocator's rounding); on allocation failure leaves the page as it is. */
long tkv_vpage_compact(tkv_vpage **pp);

/* Bytes the page occupies in the allocator. */
size_t tkv_vpage_bytes(const tkv_vpage *p);

void tkv_vpage_free(tkv_vpage *p);

#endif
