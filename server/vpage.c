/*
 * vpage.c - implements the slotted version page of vpage.h.
 *
 * Every change of layout goes through rebuild(), which packs the live blobs
 * into a fresh allocation with a quarter of headroom (an eighth past 4 KiB):
 * growth is geometric in the live size, so a key written n times costs O(n)
 * copying overall, and a page never carries more than its headroom plus the
 * dead bytes of replaced versions between rebuilds.
 */
#include "vpage.h"

#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define HDR sizeof(tkv_vpage)
#define SLOT sizeof(tkv_vslot)

static size_t free_bytes(const tkv_vpage *p)
{
    return p->blob_lo - (HDR + (size_t)p->count * SLOT);
}

static size_t live_blob_bytes(const tkv_vpage *p) { return p->cap - p->blob_lo - p->dead; }

uint32_t tkv_vpage_lower(const tkv_vpage *p, uint64_t t)
{
    if (!p)
        return 0;
    uint32_t lo = 0, hi = p->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->slot[mid].ts < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long tkv_vpage_floor(const tkv_vpage *p, uint64_t t)
{
    if (!p || p->count == 0)
        return -1;
    /* Newest-first check: most reads ask for the latest version. */
    if (p->slot[p->count - 1].ts <= t)
        return (long)p->count - 1;
    uint32_t i = tkv_vpage_lower(p, t);
    if (i < p->count && p->slot[i].ts == t)
        return i;
    return (long)i - 1;
}

long tkv_vpage_find(const tkv_vpage *p, uint64_t ts)
{
    uint32_t i = tkv_vpage_lower(p, ts);
    return p && i < p->count && p->slot[i].ts == ts ? (long)i : -1;
}

size_t tkv_vpage_bytes(const tkv_vpage *p) { return p ? malloc_usable_size((void *)p) : 0; }

void tkv_vpage_free(tkv_vpage *p) { free(p); }

/* Copies p's live content into a new page with room for `extra` more bytes
 * (slots and blobs) plus headroom. Slot indexes are preserved. Frees p. */
static tkv_vpage *rebuild(tkv_vpage *p, size_t extra, size_t headroom_div)
{
    size_t count = p ? p->count : 0;
    size_t need = HDR + count * SLOT + (p ? live_blob_bytes(p) : 0) + extra;
    size_t cap = need + (headroom_div ? need / headroom_div : 0);
    if (cap > UINT32_MAX)
        return NULL;
    tkv_vpage *n = malloc(cap);
    if (!n)
        return NULL;
    n->count = (uint32_t)count;
    n->cap = (uint32_t)cap;
    n->dead = 0;
    uint32_t lo = (uint32_t)cap;
    for (size_t i = 0; i < count; i++) {
        uint32_t len = p->slot[i].len;
        lo -= len;
        memcpy((uint8_t *)n + lo, tkv_vpage_blob(p, (uint32_t)i), len);
        n->slot[i].ts = p->slot[i].ts;
        n->slot[i].off = lo;
        n->slot[i].len = len;
    }
    n->blob_lo = lo;
    free(p);
    return n;
}

long tkv_vpage_reserve(tkv_vpage **pp, uint32_t slots, size_t bytes)
{
    tkv_vpage *p = *pp;
    size_t need = (size_t)slots * SLOT + bytes;
    if (p && free_bytes(p) >= need)
        return 0;
    size_t before = tkv_vpage_bytes(p);
    tkv_vpage *n = rebuild(p, need, 0);
    if (!n)
        return LONG_MIN;
    *pp = n;
    return (long)tkv_vpage_bytes(n) - (long)before;
}

long tkv_vpage_put(tkv_vpage **pp, uint64_t ts, const void *a, uint32_t alen, const void *b,
                   uint32_t blen, bool *replaced)
{
    if ((uint64_t)alen + blen > UINT32_MAX)
        return LONG_MIN;
    uint32_t len = alen + blen;
    tkv_vpage *p = *pp;
    size_t before = tkv_vpage_bytes(p);
    uint32_t i = tkv_vpage_lower(p, ts);
    bool exists = p && i < p->count && p->slot[i].ts == ts;
    size_t need = (size_t)len + (exists ? 0 : SLOT);
    if (!p || free_bytes(p) < need) {
        /* Small pages grow by a quarter (fewer rebuilds, less
         * fragmentation); large ones by an eighth (less slack). */
        size_t live = p ? p->cap - p->dead - free_bytes(p) : 0;
        tkv_vpage *n = rebuild(p, need, live + need < 4096 ? 4 : 8);
        if (!n)
            return LONG_MIN;
        p = *pp = n;
    }
    if (exists) {
        p->dead += p->slot[i].len;
    } else {
        memmove(&p->slot[i + 1], &p->slot[i], (size_t)(p->count - i) * SLOT);
        p->count++;
    }
    p->blob_lo -= len;
    memcpy((uint8_t *)p + p->blob_lo, a, alen);
    if (blen)
        memcpy((uint8_t *)p + p->blob_lo + alen, b, blen);
    p->slot[i] = (tkv_vslot){.ts = ts, .off = p->blob_lo, .len = len};
    *replaced = exists;
    return (long)(tkv_vpage_bytes(p) - before);
}

long tkv_vpage_remove(tkv_vpage **pp, uint32_t from, uint32_t to)
{
    tkv_vpage *p = *pp;
    if (!p || from >= to || from >= p->count)
        return 0;
    if (to > p->count)
        to = p->count;
    size_t before = tkv_vpage_bytes(p);
    for (uint32_t i = from; i < to; i++)
        p->dead += p->slot[i].len;
    memmove(&p->slot[from], &p->slot[to], (size_t)(p->count - to) * SLOT);
    p->count -= to - from;
    if (p->count == 0) {
        free(p);
        *pp = NULL;
        return -(long)before;
    }
    /* Do not let removals pin memory: shrink once half the page is waste. */
    if (p->dead + free_bytes(p) > p->cap / 2)
        return tkv_vpage_compact(pp);
    return 0;
}

long tkv_vpage_compact(tkv_vpage **pp)
{
    if (!*pp)
        return 0;
    size_t before = tkv_vpage_bytes(*pp);
    /* rebuild() frees its input only once the new page exists. */
    tkv_vpage *n = rebuild(*pp, 0, 0);
    if (!n)
        return 0;
    *pp = n;
    return (long)tkv_vpage_bytes(n) - (long)before;
}
