/*
 * buf.h - a growable byte buffer.
 *
 * Used for reply and request encoding on both sides of the wire. Growth is
 * geometric so appending n bytes one piece at a time costs O(n) overall, and
 * a buffer can be shrunk back once drained so an idle connection does not
 * keep the memory of its largest burst.
 */
#ifndef TKV_BUF_H
#define TKV_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tkv_buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} tkv_buf;

/* Embeddable: zero-initialised is a valid empty buffer. */
void tkv_buf_init(tkv_buf *b);
/* Frees the storage; the buffer is empty and usable afterwards. NULL-safe. */
void tkv_buf_deinit(tkv_buf *b);

/* Ensures room for `extra` more bytes. Returns 0, or -1 if out of memory or
 * the size would overflow (the buffer is unchanged then). */
int tkv_buf_reserve(tkv_buf *b, size_t extra);

/* Appends n bytes. Returns 0 or -1 (out of memory; nothing appended). */
int tkv_buf_append(tkv_buf *b, const void *p, size_t n);

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void tkv_buf_consume(tkv_buf *b, size_t n);

/* Releases the allocation if the buffer is empty and holds more than
 * keep bytes, so a one-off burst does not pin memory forever. */
void tkv_buf_shrink(tkv_buf *b, size_t keep);

static inline void tkv_buf_reset(tkv_buf *b) { b->len = 0; }

static inline int tkv_buf_append_fast(tkv_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n)
        return tkv_buf_append(b, p, n);
    if (n) /* p may be NULL for an empty string */
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

#endif
