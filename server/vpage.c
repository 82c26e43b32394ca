/*
 * vpage.c - implements the version page of vpage.h.
 *
 * Two paths change a page. place() works inside the allocation: an append
 * writes a slot and a blob; anything else first slides the newer blobs and
 * the later slots. build() makes a new allocation, used when the page is
 * full, when a timestamp falls outside what its base and delta width hold,
 * and to compact or reserve: it picks the narrowest widths and copies the
 * blobs in at most three runs (before the new version, the new version,
 * after it). A page under SMALL_PAGE bytes is built to fit exactly - at a
 * few versions per key, headroom would cost more than the versions' own
 * slots - and a larger one with an eighth of headroom, so a long history
 * is copied O(1) times per version overall.
 */
#include "vpage.h"

#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

#include "bigmem.h"

#define HDR sizeof(tkv_vpage)
#define SMALL_PAGE 1024

static void store(uint8_t *s, uint64_t v, unsigned w)
{
    switch (w) {
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(s, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(s, &x, 4);
        break;
    }
    default: memcpy(s, &v, 8); break;
    }
}

/* The widest delta a width holds, and the narrowest width for a span. */
static uint64_t span_max(unsigned tsw)
{
    return tsw == 0 ? UINT16_MAX : tsw == 1 ? UINT32_MAX : UINT64_MAX;
}

static unsigned tsw_for(uint64_t span)
{
    return span <= UINT16_MAX ? 0 : span <= UINT32_MAX ? 1 : 2;
}

static void set_slot(tkv_vpage *p, uint32_t i, uint64_t delta, uint32_t off)
{
    uint8_t *s = p->slot + (size_t)i * tkv_vpage_slot_size(p);
    store(s, delta, 2u << p->tsw);
    store(s + (2u << p->tsw), off, 2u << p->ow);
}

static void set_off(tkv_vpage *p, uint32_t i, uint32_t off)
{
    store(p->slot + (size_t)i * tkv_vpage_slot_size(p) + (2u << p->tsw), off, 2u << p->ow);
}

static uint32_t live_bytes(const tkv_vpage *p)
{
    return p && p->count ? tkv_vpage__off(p, (long)p->count - 1) : 0;
}

static size_t free_bytes(const tkv_vpage *p)
{
    return p->end - live_bytes(p) - (HDR + (size_t)p->count * tkv_vpage_slot_size(p));
}

/* Narrows [lo, hi) to the first slot whose delta (of type T) is >= d; one
 * loop per width, so each step is a load and a compare. */
#define LOWER_LOOP(T)                                         \
    do {                                                      \
        while (lo < hi) {                                     \
            uint32_t mid = lo + (hi - lo) / 2;                \
            T x;                                              \
            memcpy(&x, p->slot + (size_t)mid * sw, sizeof x); \
            if (x < d)                                        \
                lo = mid + 1;                                 \
            else                                              \
                hi = mid;                                     \
        }                                                     \
    } while (0)

uint32_t tkv_vpage_lower(const tkv_vpage *p, uint64_t t)
{
    if (!p || p->count == 0 || t <= p->base)
        return 0;
    uint64_t d = t - p->base;
    if (d > span_max(p->tsw))
        return p->count;
    uint32_t lo = 0, hi = p->count, sw = tkv_vpage_slot_size(p);
    switch (p->tsw) {
    case 0: LOWER_LOOP(uint16_t); break;
    case 1: LOWER_LOOP(uint32_t); break;
    default: LOWER_LOOP(uint64_t); break;
    }
    return lo;
}

long tkv_vpage_floor(const tkv_vpage *p, uint64_t t)
{
    if (!p || p->count == 0)
        return -1;
    /* Newest-first check: most reads ask for the latest version. */
    if (tkv_vpage_ts(p, p->count - 1) <= t)
        return (long)p->count - 1;
    uint32_t i = tkv_vpage_lower(p, t);
    if (i < p->count && tkv_vpage_ts(p, i) == t)
        return i;
    return (long)i - 1;
}

long tkv_vpage_find(const tkv_vpage *p, uint64_t ts)
{
    uint32_t i = tkv_vpage_lower(p, ts);
    return p && i < p->count && tkv_vpage_ts(p, i) == ts ? (long)i : -1;
}

size_t tkv_vpage_bytes(const tkv_vpage *p) { return p ? malloc_usable_size((void *)p) : 0; }

void tkv_vpage_free(tkv_vpage *p) { free(p); }

/* A version being put: at index i, replacing the version there if exists. */
typedef struct vput {
    uint32_t i;
    bool exists;
    uint64_t ts;
    const void *a, *b;
    uint32_t alen, blen;
} vput;

/* Widens [*mn, *mx] (empty while !*any) to take t. */
static void widen(uint64_t t, bool *any, uint64_t *mn, uint64_t *mx)
{
    if (!*any || t < *mn)
        *mn = t;
    if (!*any || t > *mx)
        *mx = t;
    *any = true;
}

/* Builds a new page of p's versions with v put (v may be NULL) and room for
 * more_slots versions in [lo, hi] holding more_bytes; `grow` adds headroom
 * to a large page. Returns NULL if out of memory or too large; p is left
 * to the caller. */
static tkv_vpage *build(const tkv_vpage *p, const vput *v, size_t more_slots, size_t more_bytes,
                        uint64_t lo, uint64_t hi, bool grow)
{
    uint32_t count = tkv_vpage_count(p);
    uint32_t k0 = v ? v->i : count;             /* old versions before v */
    uint32_t k1 = v ? v->i + v->exists : count; /* first old version after v */
    uint32_t vlen = v ? v->alen + v->blen : 0;
    size_t n = (size_t)count - (k1 - k0) + (v != NULL);
    if (n + more_slots > TKV_VPAGE_COUNT_MAX)
        return NULL;
    /* The timestamps the page must hold: p's, v's, and [lo, hi] reserved. */
    uint64_t mn = 0, mx = 0;
    bool any = false;
    if (count) {
        widen(tkv_vpage_ts(p, 0), &any, &mn, &mx);
        widen(tkv_vpage_ts(p, count - 1), &any, &mn, &mx);
    }
    if (v)
        widen(v->ts, &any, &mn, &mx);
    if (more_slots) {
        widen(lo, &any, &mn, &mx);
        widen(hi, &any, &mn, &mx);
    }
    unsigned tsw = tsw_for(mx - mn), ow;
    /* Keeping p's base where it costs no width lets p's slots be copied
     * as they are (growth by an append copies two runs of bytes). */
    uint64_t base = mn;
    if (count && p->base <= mn && tsw_for(mx - p->base) == tsw)
        base = p->base;
    uint32_t live = live_bytes(p);
    uint32_t pre = count ? tkv_vpage__off(p, (long)k0 - 1) : 0;
    uint32_t cut = count ? tkv_vpage__off(p, (long)k1 - 1) : 0; /* old bytes up to k1 */
    size_t blobs = (size_t)live - (cut - pre) + vlen;
    size_t need, cap;
    for (ow = 0;; ow++) {
        size_t sw = (2u << tsw) + (2u << ow);
        need = HDR + (n + more_slots) * sw + blobs + more_bytes;
        cap = grow && need >= SMALL_PAGE ? need + need / 8 : need;
        if (ow == 1 || cap <= UINT16_MAX)
            break;
    }
    if (cap > UINT32_MAX)
        return NULL;
    tkv_vpage *q = tkv_bigmem_alloc(cap);
    if (!q)
        return NULL;
    /* The allocator's rounding is free room too. */
    size_t usable = malloc_usable_size(q), lim = ow ? UINT32_MAX : UINT16_MAX;
    q->end = (uint32_t)(usable < lim ? usable : lim);
    q->base = base;
    q->tsw = tsw & 3;
    q->ow = ow & 1;
    q->count = (uint32_t)n & TKV_VPAGE_COUNT_MAX;
    uint8_t *qe = (uint8_t *)q + q->end;
    if (count) {
        const uint8_t *pe = (const uint8_t *)p + p->end;
        memcpy(qe - pre, pe - pre, pre);
        memcpy(qe - pre - vlen - (live - cut), pe - live, live - cut);
    }
    if (v) {
        memcpy(qe - pre - vlen, v->a, v->alen);
        if (v->blen)
            memcpy(qe - pre - vlen + v->alen, v->b, v->blen);
    }
    uint32_t j = 0;
    if (count && base == p->base && q->tsw == p->tsw && q->ow == p->ow) {
        size_t sw = tkv_vpage_slot_size(q);
        memcpy(q->slot, p->slot, k0 * sw);
        j = k0;
    }
    for (uint32_t i = j; i < k0; i++)
        set_slot(q, j++, tkv_vpage_ts(p, i) - base, tkv_vpage__off(p, i));
    if (v)
        set_slot(q, j++, v->ts - base, pre + vlen);
    for (uint32_t i = k1; i < count; i++)
        set_slot(q, j++, tkv_vpage_ts(p, i) - base, tkv_vpage__off(p, i) - cut + pre + vlen);
    return q;
}

/* Whether v can be put into p in place. */
static bool fits(const tkv_vpage *p, const vput *v)
{
    if (v->ts < p->base || v->ts - p->base > span_max(p->tsw))
        return false;
    if (!v->exists && p->count >= TKV_VPAGE_COUNT_MAX)
        return false;
    size_t len = (size_t)v->alen + v->blen;
    size_t old = v->exists ? tkv_vpage_len(p, v->i) : 0;
    size_t need = v->exists ? (len > old ? len - old : 0) : len + tkv_vpage_slot_size(p);
    return free_bytes(p) >= need;
}

/* Puts v into p in place (fits(p, v)): slides the newer blobs by the change
 * in length and, for a new version, the later slots by one. */
static void place(tkv_vpage *p, const vput *v)
{
    uint32_t len = v->alen + v->blen, sw = tkv_vpage_slot_size(p);
    uint32_t pre = tkv_vpage__off(p, (long)v->i - 1);
    uint32_t old = v->exists ? tkv_vpage__off(p, v->i) - pre : 0;
    uint32_t live = live_bytes(p);
    uint8_t *pe = (uint8_t *)p + p->end;
    if (len != old && live > pre + old)
        memmove(pe - ((size_t)live + len - old), pe - live, live - pre - old);
    if (!v->exists) {
        memmove(p->slot + (size_t)(v->i + 1) * sw, p->slot + (size_t)v->i * sw,
                (size_t)(p->count - v->i) * sw);
        p->count++;
    }
    memcpy(pe - pre - len, v->a, v->alen);
    if (v->blen)
        memcpy(pe - pre - len + v->alen, v->b, v->blen);
    set_slot(p, v->i, v->ts - p->base, pre + len);
    /* Offsets are sums: every later one moves by the change in length
     * (unsigned wrap-around makes a shrink come out right). */
    for (uint32_t j = v->i + 1; j < p->count; j++)
        set_off(p, j, tkv_vpage__off(p, j) + len - old);
}

long tkv_vpage_put(tkv_vpage **pp, uint64_t ts, const void *a, uint32_t alen, const void *b,
                   uint32_t blen, bool *replaced)
{
    if ((uint64_t)alen + blen > UINT32_MAX)
        return LONG_MIN;
    tkv_vpage *p = *pp;
    size_t before = tkv_vpage_bytes(p);
    uint32_t n = tkv_vpage_count(p);
    /* Newest-first check: most writes append. */
    uint32_t i = n && tkv_vpage_ts(p, n - 1) < ts ? n : tkv_vpage_lower(p, ts);
    vput v = {.i = i,
              .exists = i < n && tkv_vpage_ts(p, i) == ts,
              .ts = ts,
              .a = a,
              .alen = alen,
              .b = b,
              .blen = blen};
    if (p && fits(p, &v)) {
        place(p, &v);
    } else {
        tkv_vpage *q = build(p, &v, 0, 0, 0, 0, true);
        if (!q)
            return LONG_MIN;
        free(p);
        *pp = q;
    }
    *replaced = v.exists;
    return (long)tkv_vpage_bytes(*pp) - (long)before;
}

long tkv_vpage_reserve(tkv_vpage **pp, uint32_t slots, size_t bytes, uint64_t lo, uint64_t hi)
{
    tkv_vpage *p = *pp;
    if (hi < lo)
        hi = lo;
    if (p && lo >= p->base && hi - p->base <= span_max(p->tsw) &&
        (size_t)p->count + slots <= TKV_VPAGE_COUNT_MAX &&
        free_bytes(p) >= (size_t)slots * tkv_vpage_slot_size(p) + bytes)
        return 0;
    size_t before = tkv_vpage_bytes(p);
    tkv_vpage *q = build(p, NULL, slots, bytes, lo, hi, false);
    if (!q)
        return LONG_MIN;
    free(p);
    *pp = q;
    return (long)tkv_vpage_bytes(q) - (long)before;
}

long tkv_vpage_remove(tkv_vpage **pp, uint32_t from, uint32_t to)
{
    tkv_vpage *p = *pp;
    if (!p || from >= to || from >= p->count)
        return 0;
    if (to > p->count)
        to = p->count;
    size_t before = tkv_vpage_bytes(p);
    if (to - from == p->count) {
        free(p);
        *pp = NULL;
        return -(long)before;
    }
    uint32_t sw = tkv_vpage_slot_size(p), live = live_bytes(p);
    uint32_t lo = tkv_vpage__off(p, (long)from - 1), hi = tkv_vpage__off(p, (long)to - 1);
    uint32_t r = hi - lo;
    uint8_t *pe = (uint8_t *)p + p->end;
    if (from == 0)
        p->end -= r; /* the oldest blobs lie at the end: just leave them */
    else
        memmove(pe - live + r, pe - live, live - hi);
    memmove(p->slot + (size_t)from * sw, p->slot + (size_t)to * sw, (size_t)(p->count - to) * sw);
    p->count -= to - from;
    for (uint32_t j = from; j < p->count; j++)
        set_off(p, j, tkv_vpage__off(p, j) - r);
    /* Do not let removals pin memory: shrink once half the page is waste. */
    size_t used = HDR + (size_t)p->count * sw + live - r;
    if (before - used > before / 2)
        return tkv_vpage_compact(pp);
    return 0;
}

long tkv_vpage_compact(tkv_vpage **pp)
{
    if (!*pp)
        return 0;
    size_t before = tkv_vpage_bytes(*pp);
    tkv_vpage *n = build(*pp, NULL, 0, 0, 0, 0, false);
    if (!n)
        return 0;
    free(*pp);
    *pp = n;
    return (long)tkv_vpage_bytes(n) - (long)before;
}
