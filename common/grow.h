/*
 * grow.h - overflow-checked growth of arrays by doubling.
 *
 * Every growable array in tkv doubles its capacity, so appending n
 * elements costs O(n) copies in all. The arithmetic is where such code
 * goes wrong (cap * 2 and cap * size can wrap), so it lives here once.
 */
#ifndef TKV_GROW_H
#define TKV_GROW_H

#include <stddef.h>

/* The capacity to grow to so that n elements fit: cap (or, if cap is 0,
 * first; or n if first is 0 too) doubled until it reaches n. Returns cap
 * itself if n already fits, 0 if doubling would overflow a size_t. For
 * buffers with their own realloc policy (an upper bound, a ring). */
size_t tkv_grow_cap(size_t cap, size_t n, size_t first);

/* Grows the array *arrp (a pointer to any object pointer, e.g. &v->items)
 * of *cap elements of elem bytes so that it holds at least n, with the
 * capacity tkv_grow_cap(*cap, n, first). On success updates *arrp and *cap
 * and returns 0; returns -1 if the size overflows or realloc fails, and
 * then leaves both unchanged (the old array stays valid). */
int tkv_grow(void *arrp, size_t *cap, size_t n, size_t elem, size_t first);

#endif
