/*
 * grow.c - implements the checked doubling of grow.h.
 */
#include "grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t tkv_grow_cap(size_t cap, size_t n, size_t first)
{
    size_t c = cap ? cap : first ? first : n;
    while (c < n) {
        if (c > SIZE_MAX / 2)
            return 0;
        c *= 2;
    }
    return c;
}

int tkv_grow(void *arrp, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n <= *cap)
        return 0;
    size_t c = tkv_grow_cap(*cap, n, first);
    if (c == 0 || c > SIZE_MAX / elem)
        return -1;
    /* arrp is a T ** for the caller's T; object pointers share one
     * representation on every platform tkv runs on (POSIX requires it), so
     * it is read and written as a void * through memcpy, which keeps the
     * callers free of casts. */
    void *old;
    memcpy(&old, arrp, sizeof old);
    void *p = realloc(old, c * elem);
    if (!p)
        return -1;
    memcpy(arrp, &p, sizeof p);
    *cap = c;
    return 0;
}
