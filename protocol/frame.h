/*
 * frame.h - incremental decoder for tkv's length-prefixed frames.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes. The
 * reader owns a buffer that bytes are fed into as they arrive - one at a time
 * or many frames at once - and hands out whole frames as pointers into that
 * buffer, so requests are parsed where they landed.
 *
 * A declared length is only a claim: it is checked against max_frame before
 * anything else, and the buffer grows with the bytes actually received, never
 * to the declared size up front. A peer that announces 8 MiB and sends one
 * byte costs one small buffer, not 8 MiB.
 */
#ifndef TKV_FRAME_H
#define TKV_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "byteorder.h"

#define TKV_FRAME_HEADER 4

enum {
    TKV_FRAME_OK = 0,       /* a frame was returned */
    TKV_FRAME_AGAIN = 1,    /* need more bytes */
    TKV_FRAME_ETOOBIG = -1, /* declared length above max_frame: the stream is unusable */
    TKV_FRAME_ENOMEM = -2,
};

typedef struct tkv_frame_reader {
    uint8_t *buf;     /* NULL until bytes arrive */
    size_t cap;       /* allocated size of buf */
    size_t start;     /* first unconsumed byte */
    size_t end;       /* one past the last received byte */
    size_t max_frame; /* largest accepted payload length */
    uint32_t bad_len; /* the offending length after ETOOBIG, for messages */
    int err;          /* sticky: once ETOOBIG, always ETOOBIG */
} tkv_frame_reader;

void tkv_frame_reader_init(tkv_frame_reader *r, size_t max_frame);
/* Frees the buffer. NULL-safe. */
void tkv_frame_reader_deinit(tkv_frame_reader *r);

/* Copies n bytes in. Returns 0 or TKV_FRAME_ENOMEM. Invalidates frames
 * returned earlier. */
int tkv_frame_reader_feed(tkv_frame_reader *r, const void *p, size_t n);

/* For reading straight from a socket: returns in *p a writable region of
 * *avail bytes, at least `want` unless the buffer is at its cap (then
 * possibly 0: serve the frames it holds first). Write into it, then call
 * tkv_frame_reader_commit() with the count written. Invalidates frames
 * returned earlier. Returns 0 or TKV_FRAME_ENOMEM. */
int tkv_frame_reader_space(tkv_frame_reader *r, size_t want, uint8_t **p, size_t *avail);
void tkv_frame_reader_commit(tkv_frame_reader *r, size_t n);

/* Returns TKV_FRAME_OK with the next whole frame's payload in *frame and *len
 * (valid until the next feed/space/shrink call), TKV_FRAME_AGAIN if the
 * frame is not complete, or TKV_FRAME_ETOOBIG. */
int tkv_frame_reader_next(tkv_frame_reader *r, const uint8_t **frame, size_t *len);

/* Looks at the whole frame *pos bytes past the next one without consuming
 * anything (start with *pos = 0; each call moves *pos past the frame it
 * returns). TKV_FRAME_OK with the payload as next() would give it, or
 * TKV_FRAME_AGAIN when no whole frame is there - also for an oversize
 * length, which only next() reports. For looking ahead at a pipeline. */
int tkv_frame_reader_peek(const tkv_frame_reader *r, size_t *pos, const uint8_t **frame,
                          size_t *len);

/* Bytes received but not yet returned as frames. */
static inline size_t tkv_frame_reader_pending(const tkv_frame_reader *r)
{
    return r->end - r->start;
}

/* If no bytes are pending and the buffer is larger than keep, frees it. */
void tkv_frame_reader_shrink(tkv_frame_reader *r, size_t keep);

/* Writes the 4-byte header for a payload of n bytes. */
static inline void tkv_frame_put_header(uint8_t out[4], uint32_t n) { tkv_store_be32(out, n); }

#endif
