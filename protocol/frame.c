/*
 * frame.c - implements the incremental frame decoder of frame.h.
 *
 * Buffer discipline: unconsumed bytes live in [start, end). Space is made by
 * first sliding them to the front, then by doubling, up to the size one
 * maximal frame needs. Growth follows received bytes only.
 */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "grow.h"

#define MIN_CAP 4096

void tkv_frame_reader_init(tkv_frame_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
}

void tkv_frame_reader_deinit(tkv_frame_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->end = 0;
}

/* The buffer never needs to exceed one maximal frame plus one read's worth of
 * following data; past that, callers wait until frames are consumed. */
static size_t cap_limit(const tkv_frame_reader *r)
{
    return r->max_frame + TKV_FRAME_HEADER + 64 * 1024;
}

static void compact(tkv_frame_reader *r)
{
    if (r->start == 0)
        return;
    size_t n = r->end - r->start;
    if (n)
        memmove(r->buf, r->buf + r->start, n);
    r->start = 0;
    r->end = n;
}

static int grow(tkv_frame_reader *r, size_t need)
{
    size_t cap = tkv_grow_cap(r->cap, need, MIN_CAP);
    if (cap == 0 || cap > cap_limit(r))
        cap = cap_limit(r) > need ? cap_limit(r) : need;
    uint8_t *p = realloc(r->buf, cap);
    if (!p)
        return TKV_FRAME_ENOMEM;
    r->buf = p;
    r->cap = cap;
    return 0;
}

int tkv_frame_reader_space(tkv_frame_reader *r, size_t want, uint8_t **p, size_t *avail)
{
    if (r->start == r->end)
        r->start = r->end = 0;
    if (r->cap - r->end < want) {
        compact(r);
        if (r->cap - r->end < want) {
            /* At the cap, offer what is left (possibly nothing): the caller
             * serves the pending frames before reading more. */
            size_t need = r->end + want;
            if (need > cap_limit(r))
                need = cap_limit(r);
            if (need > r->cap && grow(r, need) < 0)
                return TKV_FRAME_ENOMEM;
        }
    }
    *p = r->buf + r->end;
    *avail = r->cap - r->end;
    return 0;
}

void tkv_frame_reader_commit(tkv_frame_reader *r, size_t n) { r->end += n; }

int tkv_frame_reader_feed(tkv_frame_reader *r, const void *p, size_t n)
{
    const uint8_t *src = p;
    while (n > 0) {
        uint8_t *dst;
        size_t avail;
        /* Feeding is not bounded by the cap: a caller may hand over many
         * frames at once, so grow as needed when the limit is reached. */
        if (r->cap - r->end < n) {
            compact(r);
            if (r->cap - r->end < n && grow(r, r->end + n) < 0)
                return TKV_FRAME_ENOMEM;
        }
        if (tkv_frame_reader_space(r, 1, &dst, &avail) < 0)
            return TKV_FRAME_ENOMEM;
        size_t k = n < avail ? n : avail;
        memcpy(dst, src, k);
        tkv_frame_reader_commit(r, k);
        src += k;
        n -= k;
    }
    return 0;
}

int tkv_frame_reader_next(tkv_frame_reader *r, const uint8_t **frame, size_t *len)
{
    if (r->err)
        return r->err;
    size_t have = r->end - r->start;
    if (have < TKV_FRAME_HEADER)
        return TKV_FRAME_AGAIN;
    const uint8_t *h = r->buf + r->start;
    uint32_t n = tkv_load_be32(h);
    if (n > r->max_frame) {
        r->bad_len = n;
        r->err = TKV_FRAME_ETOOBIG;
        return r->err;
    }
    if (have - TKV_FRAME_HEADER < n)
        return TKV_FRAME_AGAIN;
    *frame = h + TKV_FRAME_HEADER;
    *len = n;
    r->start += TKV_FRAME_HEADER + (size_t)n;
    return TKV_FRAME_OK;
}

int tkv_frame_reader_peek(const tkv_frame_reader *r, size_t *pos, const uint8_t **frame,
                          size_t *len)
{
    if (r->err)
        return TKV_FRAME_AGAIN;
    size_t at = r->start + *pos;
    if (at > r->end || r->end - at < TKV_FRAME_HEADER)
        return TKV_FRAME_AGAIN;
    uint32_t n = tkv_load_be32(r->buf + at);
    /* An oversize length is next()'s to report, not a peek's. */
    if (n > r->max_frame || r->end - at - TKV_FRAME_HEADER < n)
        return TKV_FRAME_AGAIN;
    *frame = r->buf + at + TKV_FRAME_HEADER;
    *len = n;
    *pos += TKV_FRAME_HEADER + (size_t)n;
    return TKV_FRAME_OK;
}

void tkv_frame_reader_shrink(tkv_frame_reader *r, size_t keep)
{
    if (r->start == r->end && r->cap > keep) {
        free(r->buf);
        r->buf = NULL;
        r->cap = r->start = r->end = 0;
    }
}
