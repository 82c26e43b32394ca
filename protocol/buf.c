/*
 * buf.c - implements the growable byte buffer of buf.h.
 */
#include "buf.h"

#include <stdlib.h>

#include "grow.h"

void tkv_buf_init(tkv_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void tkv_buf_deinit(tkv_buf *b)
{
    if (!b)
        return;
    free(b->data);
    tkv_buf_init(b);
}

int tkv_buf_reserve(tkv_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    return tkv_grow(&b->data, &b->cap, b->len + extra, 1, 256);
}

int tkv_buf_append(tkv_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (tkv_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void tkv_buf_consume(tkv_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void tkv_buf_shrink(tkv_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep) {
        free(b->data);
        tkv_buf_init(b);
    }
}
